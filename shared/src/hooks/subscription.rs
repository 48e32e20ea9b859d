//! CloudEvents Subscriptions API managers as a registration plugin (`source=subscription`).
//!
//! CREATE posts `{manager}/subscriptions` with `sink` = the receiver URL, protocol `HTTP` and
//! an `Authorization: Bearer <secret>` header in `protocolsettings`, plus the user's `types`,
//! `filters` and `subscriptionSource`; DELETE deletes `{manager}/subscriptions/{id}` (already
//! gone is fine). The API has no pause: PAUSE is handled by the receiver alone. Calls carry
//! `Authorization: Bearer <managerToken>` when one is given. This plugin knows nothing about
//! triggers or the receiver.

use percent_encoding::utf8_percent_encode;
use serde_json::{json, Map, Value};

use super::filters_from_params;
use super::registrar::{base_url, Endpoint, Http, Method, Registrar, RegistrationError, SEGMENT};
use crate::params::{ParamError, Params};
use crate::secret::Secret;

/// The Subscriptions API registration plugin.
#[derive(Default)]
pub struct Subscriptions {
    http: Http,
}

impl Subscriptions {
    /// A plugin with its own HTTP client.
    pub fn new() -> Subscriptions {
        Subscriptions { http: Http::new() }
    }

    fn auth(params: &Params) -> Result<Option<Secret>, ParamError> {
        Ok(params.secret("managerToken")?.map(|t| Secret::new(format!("Bearer {}", t.expose()))))
    }

    fn bad(e: ParamError) -> RegistrationError {
        RegistrationError::Rejected { status: 400, message: e.to_string() }
    }

    /// The subscription document for `endpoint`.
    fn document(params: &Params, endpoint: &Endpoint) -> Result<Value, ParamError> {
        let mut doc = Map::new();
        if let Some(source) = params.str("subscriptionSource")? {
            doc.insert("source".into(), json!(source));
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
            "protocolsettings".into(),
            json!({ "headers": { "Authorization": format!("Bearer {}", endpoint.secret.expose()) } }),
        );
        Ok(Value::Object(doc))
    }
}

impl Registrar for Subscriptions {
    fn name(&self) -> &'static str {
        "subscription"
    }

    fn params(&self) -> &'static [&'static str] {
        &["manager", "managerToken", "types", "filters", "subscriptionSource"]
    }

    fn secret_params(&self) -> &'static [&'static str] {
        &["managerToken"]
    }

    fn validate(&self, params: &Params) -> Result<(), ParamError> {
        base_url(params, "manager", None)?;
        Subscriptions::auth(params)?;
        params.list("types")?;
        params.str("subscriptionSource")?;
        filters_from_params(params)?;
        Ok(())
    }

    fn register(&self, params: &Params, endpoint: &Endpoint) -> Result<Option<String>, RegistrationError> {
        let manager = base_url(params, "manager", None).map_err(Subscriptions::bad)?;
        let doc = Subscriptions::document(params, endpoint).map_err(Subscriptions::bad)?;
        let auth = Subscriptions::auth(params).map_err(Subscriptions::bad)?;
        let what = format!("creating a subscription at {manager}");
        let url = format!("{manager}/subscriptions");
        let answer =
            self.http.expect_ok(Method::Post, &url, auth.as_ref(), Some(&doc), &what, false)?.unwrap_or(Value::Null);
        match answer.get("id") {
            Some(Value::String(s)) if !s.is_empty() => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            _ => Err(RegistrationError::Server(format!("{what}: the answer has no subscription id"))),
        }
    }

    fn unregister(&self, params: &Params, id: &str) -> Result<(), RegistrationError> {
        let manager = base_url(params, "manager", None).map_err(Subscriptions::bad)?;
        let auth = Subscriptions::auth(params).map_err(Subscriptions::bad)?;
        let url = format!("{manager}/subscriptions/{}", utf8_percent_encode(id, SEGMENT));
        let what = format!("deleting subscription {id} at {manager}");
        self.http.expect_ok(Method::Delete, &url, auth.as_ref(), None, &what, true).map(|_| ())
    }

    fn set_active(&self, _: &Params, _: &str, _: bool) -> Result<(), RegistrationError> {
        Ok(())
    }

    fn removal(&self, params: &Params, id: &str) -> (String, String) {
        let manager = base_url(params, "manager", None).unwrap_or_default();
        let url = format!("{manager}/subscriptions/{}", utf8_percent_encode(id, SEGMENT));
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

    #[test]
    fn document_carries_sink_protocol_and_the_secret_header() {
        let params = Params::from_value(json!({
            "manager": "http://m",
            "types": "a.b, c.d",
            "subscriptionSource": "/src",
            "filters": "[{\"prefix\": {\"type\": \"a.\"}}]",
        }))
        .unwrap();
        let endpoint =
            Endpoint { url: "https://h/api/v1/web/ns/t.owfeed-hook/receive.http".into(), secret: Secret::new("s3") };
        let doc = Subscriptions::document(&params, &endpoint).unwrap();
        assert_eq!(
            doc,
            json!({
                "source": "/src",
                "types": ["a.b", "c.d"],
                "filters": [{"prefix": {"type": "a."}}],
                "sink": "https://h/api/v1/web/ns/t.owfeed-hook/receive.http",
                "protocol": "HTTP",
                "protocolsettings": {"headers": {"Authorization": "Bearer s3"}},
            })
        );
        let bad = Params::from_value(json!({"manager": "http://m", "filters": [{"sql": "x"}]})).unwrap();
        assert_eq!(Subscriptions::new().validate(&bad).unwrap_err().name, "filters");
        let bad = Params::from_value(json!({"manager": "m"})).unwrap();
        assert_eq!(Subscriptions::new().validate(&bad).unwrap_err().name, "manager");
    }
}
