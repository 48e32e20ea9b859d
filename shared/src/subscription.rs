//! The Subscriptions feature: CloudEvents Subscriptions API managers as a registration plugin
//! of the hooks pattern (`source=subscription`).
//!
//! CREATE posts `{manager}/subscriptions` with `sink` = the receiver URL, protocol `HTTP`, the
//! secret as the spec's write-only `sinkcredential` (an `ACCESSTOKEN` of type bearer that never
//! expires) and, for managers that predate it, as an `Authorization: Bearer <secret>` header in
//! `protocolsettings` (which a manager only SHOULD support), plus the user's `types`, `filters`,
//! `subscriptionSource` (a URI-reference) and `config`; DELETE deletes `{manager}/subscriptions/{id}` (already
//! gone is fine). The API has no pause: PAUSE is handled by the receiver alone. Calls carry
//! `Authorization: Bearer <managerToken>` when one is given. This plugin knows nothing about
//! triggers or the receiver.

use std::fmt;

use percent_encoding::utf8_percent_encode;
use serde_json::{json, Map, Value};

use crate::hooks::filters_from_params;
use crate::hooks::registrar::{
    base_url, Call, Endpoint, Http, Method, Registrar, RegistrationError, RegistrationId, SEGMENT,
};
use crate::params::{ParamError, Params};
use crate::secret::Secret;
use crate::source::ParamSpec;

/// A subscription's id as its manager gives it and the feed stores it: any non-empty string
/// (percent-encoded where it goes into a URL).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubscriptionId(String);

impl RegistrationId for SubscriptionId {
    const FORM: &'static str = "the manager's subscription id, a non-empty string";
    fn parse(stored: &str) -> Option<SubscriptionId> {
        (!stored.is_empty()).then(|| SubscriptionId(stored.to_string()))
    }
    fn to_stored(&self) -> String {
        self.0.clone()
    }
}

impl fmt::Display for SubscriptionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl SubscriptionId {
    /// Its URL at `manager`.
    fn url(&self, manager: &str) -> String {
        format!("{manager}/subscriptions/{}", utf8_percent_encode(&self.0, SEGMENT))
    }
}

/// The Subscriptions API registration plugin.
/// Its requests go through the process's one producer client (`Http::shared`).
pub struct Subscriptions;

impl Subscriptions {
    /// `managerToken`, read once per call; an error names it.
    fn token(params: &Params) -> Result<Option<Secret>, ParamError> {
        params.secret("managerToken")
    }

    /// A call to the manager, with `Authorization: Bearer <token>` when there is a token;
    /// `secret` is the hook secret in its body, if any.
    fn call<'a>(
        token: Option<Secret>,
        method: Method,
        url: &'a str,
        body: Option<&'a Value>,
        what: &'a str,
        secret: Option<&Secret>,
    ) -> Call<'a> {
        let auth = token.as_ref().map(|t| Secret::new(format!("Bearer {}", t.expose())));
        let mut secrets: Vec<Secret> = token.into_iter().collect();
        secrets.extend(secret.cloned());
        Call { method, url, auth, headers: &[], body, what, secrets }
    }

    fn bad(e: ParamError) -> RegistrationError {
        RegistrationError::Rejected { status: 400, message: e.to_string() }
    }

    /// `subscriptionSource`: a CloudEvents `source`, a URI-reference (RFC 3986 characters only).
    fn source(params: &Params) -> Result<Option<String>, ParamError> {
        let Some(raw) = params.str("subscriptionSource")? else { return Ok(None) };
        let bytes = raw.as_bytes();
        let escapes_ok = bytes
            .iter()
            .enumerate()
            .filter(|(_, b)| **b == b'%')
            .all(|(i, _)| bytes.get(i + 1..i + 3).is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)));
        let chars_ok = !raw.is_empty()
            && raw.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~:/?#[]@!$&'()*+,;=%".contains(&b));
        if chars_ok && escapes_ok {
            Ok(Some(raw))
        } else {
            Err(ParamError::invalid("subscriptionSource", "a URI-reference (e.g. /orders or https://x/y)", &json!(raw)))
        }
    }

    /// `config`: the manager's own settings, a JSON object (or a string holding one).
    fn config(params: &Params) -> Result<Option<Map<String, Value>>, ParamError> {
        let Some(raw) = params.raw("config") else { return Ok(None) };
        let value = match raw {
            Value::String(s) => serde_json::from_str::<Value>(s).unwrap_or(Value::Null),
            other => other.clone(),
        };
        match value {
            Value::Object(m) => Ok(Some(m)),
            _ => Err(ParamError::invalid("config", "a JSON object of the manager's settings", raw)),
        }
    }

    /// The subscription document for `endpoint`.
    fn document(params: &Params, endpoint: &Endpoint) -> Result<Value, ParamError> {
        let mut doc = Map::new();
        if let Some(source) = Subscriptions::source(params)? {
            doc.insert("source".into(), json!(source));
        }
        if let Some(config) = Subscriptions::config(params)? {
            doc.insert("config".into(), Value::Object(config));
        }
        if let Some(types) = params.list("types")? {
            doc.insert("types".into(), json!(types));
        }
        filters_from_params(params)?;
        if let Some(filters) = params.raw("filters") {
            let filters = match filters {
                Value::String(s) => serde_json::from_str(s).unwrap_or(Value::Null),
                other => other.clone(),
            };
            doc.insert("filters".into(), filters);
        }
        doc.insert("sink".into(), json!(endpoint.url));
        doc.insert("protocol".into(), json!("HTTP"));
        doc.insert(
            "sinkcredential".into(),
            json!({
                "credentialtype": "ACCESSTOKEN",
                "accesstoken": endpoint.secret.expose(),
                "accesstokentype": "bearer",
                // The token lives as long as the trigger.
                "accesstokenexpiresutc": "9999-12-31T23:59:59Z",
            }),
        );
        doc.insert(
            "protocolsettings".into(),
            json!({ "headers": { "Authorization": format!("Bearer {}", endpoint.secret.expose()) } }),
        );
        Ok(Value::Object(doc))
    }
}

impl Registrar for Subscriptions {
    type Id = SubscriptionId;

    fn name(&self) -> &'static str {
        "subscription"
    }

    fn params(&self) -> &'static [ParamSpec] {
        &[
            ParamSpec { name: "manager", secret: false, required: true, doc: "the Subscriptions API manager's URL" },
            ParamSpec { name: "managerToken", secret: true, required: false, doc: "the manager's bearer token" },
            ParamSpec { name: "types", secret: false, required: false, doc: "CloudEvents types to subscribe to" },
            ParamSpec { name: "filters", secret: false, required: false, doc: "Subscriptions API filters" },
            ParamSpec {
                name: "subscriptionSource",
                secret: false,
                required: false,
                doc: "the subscription's source, a URI-reference",
            },
            ParamSpec {
                name: "config",
                secret: false,
                required: false,
                doc: "a JSON object of the manager's settings",
            },
        ]
    }

    fn validate(&self, params: &Params) -> Result<(), ParamError> {
        base_url(params, "manager", None)?;
        Subscriptions::token(params)?;
        params.list("types")?;
        Subscriptions::source(params)?;
        Subscriptions::config(params)?;
        filters_from_params(params)?;
        Ok(())
    }

    fn register(&self, params: &Params, endpoint: &Endpoint) -> Result<Option<SubscriptionId>, RegistrationError> {
        let manager = base_url(params, "manager", None).map_err(Subscriptions::bad)?;
        let doc = Subscriptions::document(params, endpoint).map_err(Subscriptions::bad)?;
        let token = Subscriptions::token(params).map_err(Subscriptions::bad)?;
        let what = format!("creating a subscription at {manager}");
        let url = format!("{manager}/subscriptions");
        let call = Subscriptions::call(token, Method::Post, &url, Some(&doc), &what, Some(&endpoint.secret));
        let answer = Http::shared().expect_ok(&call, false)?.unwrap_or(Value::Null);
        match answer.get("id") {
            Some(Value::String(s)) if !s.is_empty() => Ok(Some(SubscriptionId(s.clone()))),
            Some(Value::Number(n)) => Ok(Some(SubscriptionId(n.to_string()))),
            _ => Err(RegistrationError::Server(format!("{what}: the answer has no subscription id"))),
        }
    }

    fn unregister(&self, params: &Params, id: &SubscriptionId) -> Result<(), RegistrationError> {
        let manager = base_url(params, "manager", None).map_err(Subscriptions::bad)?;
        let token = Subscriptions::token(params).map_err(Subscriptions::bad)?;
        let url = id.url(&manager);
        let what = format!("deleting subscription {id} at {manager}");
        Http::shared().expect_ok(&Subscriptions::call(token, Method::Delete, &url, None, &what, None), true).map(|_| ())
    }

    fn set_active(&self, _: &Params, _: &SubscriptionId, _: bool) -> Result<(), RegistrationError> {
        Ok(())
    }

    fn removal(&self, params: &Params, id: &SubscriptionId) -> (String, String) {
        let manager = base_url(params, "manager", None).unwrap_or_default();
        let url = id.url(&manager);
        let auth = match params.has("managerToken") {
            true => " -H \"Authorization: Bearer $MANAGER_TOKEN\"",
            false => "",
        };
        (format!("subscription manager {manager}, subscription {id}"), format!("curl -X DELETE{auth} {url}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The registration stored today is the manager's `id` as it answered it (a string, or a
    /// number written in decimal): any non-empty string reads back as itself.
    #[test]
    fn stored_subscription_ids_of_existing_triggers_parse() {
        for stored in ["42", "sub-1", "0f8fad5b-d9cb-469f-a165-70867728950e", "a/b c?d"] {
            let id = SubscriptionId::parse(stored).unwrap_or_else(|| panic!("{stored}"));
            assert_eq!(id.to_stored(), stored);
        }
        assert_eq!(SubscriptionId::parse(""), None);
        let id = SubscriptionId::parse("a/b c?d").unwrap();
        assert_eq!(id.url("http://m"), "http://m/subscriptions/a%2Fb%20c%3Fd");
    }

    #[test]
    fn document_carries_sink_protocol_and_the_secret_header() {
        let params = Params::from_value(json!({
            "manager": "http://m",
            "types": "a.b, c.d",
            "subscriptionSource": "/src",
            "filters": "[{\"prefix\": {\"type\": \"a.\"}}]",
        }))
        .unwrap();
        let endpoint = Endpoint {
            url: "https://h/api/v1/web/ns/t.owfeed-hook/receive.http".into(),
            secret: Secret::new("s3"),
            active: true,
        };
        let doc = Subscriptions::document(&params, &endpoint).unwrap();
        assert_eq!(
            doc,
            json!({
                "source": "/src",
                "types": ["a.b", "c.d"],
                "filters": [{"prefix": {"type": "a."}}],
                "sink": "https://h/api/v1/web/ns/t.owfeed-hook/receive.http",
                "protocol": "HTTP",
                "sinkcredential": {
                    "credentialtype": "ACCESSTOKEN", "accesstoken": "s3", "accesstokentype": "bearer",
                    "accesstokenexpiresutc": "9999-12-31T23:59:59Z",
                },
                "protocolsettings": {"headers": {"Authorization": "Bearer s3"}},
            })
        );
        let with = |extra: Value| {
            let mut p = json!({"manager": "http://m"});
            p.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            Subscriptions.validate(&Params::from_value(p).unwrap())
        };
        for good in ["/orders", "https://x.example/a?b=c#d", "urn:event:from:x", "a%20b"] {
            assert!(with(json!({"subscriptionSource": good})).is_ok(), "{good}");
        }
        for bad in ["two words", "", "a%zz", "é"] {
            assert_eq!(with(json!({"subscriptionSource": bad})).unwrap_err().name, "subscriptionSource", "{bad}");
        }
        assert!(with(json!({"config": {"topic": "orders"}})).is_ok());
        assert!(with(json!({"config": "{\"topic\": \"orders\"}"})).is_ok());
        assert_eq!(with(json!({"config": "topic=orders"})).unwrap_err().name, "config");
        let bad = Params::from_value(json!({"manager": "http://m", "filters": [{"sql": "x"}]})).unwrap();
        assert_eq!(Subscriptions.validate(&bad).unwrap_err().name, "filters");
        let bad = Params::from_value(json!({"manager": "m"})).unwrap();
        assert_eq!(Subscriptions.validate(&bad).unwrap_err().name, "manager");
    }
}
