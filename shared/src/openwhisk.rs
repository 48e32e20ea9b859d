//! OpenWhisk REST client (blocking, on `ureq`): triggers, rules, packages, actions, activations.
//!
//! Owns: parsing API keys (`AuthKey`) and entity names (`QualifiedName`), building
//! `/api/v1/namespaces/…` paths with percent-encoded segments, and mapping HTTP answers to
//! `OwError` by what a caller can do about them (not found, conflict, throttled…). It does not
//! retry, resolve the `_` namespace, or know anything about feeds: callers decide.
//! The key only ever leaves this module in the `Authorization` header; errors and `Debug`
//! output show the uuid at most.

use std::fmt;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::{json, Map, Value};

use crate::secret::Secret;

/// An OpenWhisk API key, `<uuid>:<key>`; the key part is a `Secret`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthKey {
    /// The subject's uuid (the Basic-auth user name).
    pub uuid: String,
    /// The key (the Basic-auth password).
    pub key: Secret,
}

impl AuthKey {
    /// Parses `<uuid>:<key>`; the error never contains the key.
    pub fn parse(s: &str) -> Result<AuthKey, String> {
        let s = s.trim();
        let Some((uuid, key)) = s.split_once(':') else {
            return Err("authKey: expected <uuid>:<key>, found no ':'".to_string());
        };
        if uuid.is_empty() {
            return Err("authKey: expected <uuid>:<key>, the uuid part is empty".to_string());
        }
        if key.is_empty() {
            return Err("authKey: expected <uuid>:<key>, the key part is empty".to_string());
        }
        Ok(AuthKey { uuid: uuid.to_string(), key: Secret::new(key) })
    }

    /// The whole `uuid:key` as a `Secret` (e.g. to pass on as an `authKey` parameter).
    pub fn to_secret(&self) -> Secret {
        Secret::new(format!("{}:{}", self.uuid, self.key.expose()))
    }

    fn basic_auth_header(&self) -> String {
        let raw = format!("{}:{}", self.uuid, self.key.expose());
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(raw))
    }
}

/// A fully qualified entity name: `/namespace/[package/]name`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct QualifiedName {
    /// The namespace; `_` means the caller's own.
    pub namespace: String,
    /// The package, for actions in a package.
    pub package: Option<String>,
    /// The entity's own name.
    pub name: String,
}

impl fmt::Display for QualifiedName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.package {
            Some(p) => write!(f, "/{}/{}/{}", self.namespace, p, self.name),
            None => write!(f, "/{}/{}", self.namespace, self.name),
        }
    }
}

/// Path-segment encoding: everything but RFC 3986 unreserved characters, so spaces, `@`,
/// `/`, `?` and `#` in a name cannot change the URL's shape.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

fn encode(segment: &str) -> String {
    utf8_percent_encode(segment, SEGMENT).to_string()
}

impl QualifiedName {
    /// A name from its parts.
    pub fn new(namespace: &str, package: Option<&str>, name: &str) -> QualifiedName {
        QualifiedName { namespace: namespace.to_string(), package: package.map(str::to_string), name: name.to_string() }
    }

    /// Parses `/ns/name`, `/ns/pkg/name`, `name` or `pkg/name` (relative names get `default_namespace`).
    pub fn parse(s: &str, default_namespace: &str) -> Result<QualifiedName, String> {
        let expected = "expected /namespace/[package/]name or [package/]name";
        let (absolute, rest) = match s.strip_prefix('/') {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        let parts: Vec<&str> = rest.split('/').collect();
        if parts.iter().any(|p| p.trim().is_empty()) {
            return Err(format!("entity name '{s}': {expected}, found an empty part"));
        }
        match (absolute, parts.as_slice()) {
            (true, [ns, name]) => Ok(QualifiedName::new(ns, None, name)),
            (true, [ns, pkg, name]) => Ok(QualifiedName::new(ns, Some(pkg), name)),
            (false, [_] | [_, _]) if default_namespace.trim().is_empty() => {
                Err(format!("entity name '{s}': relative name but no default namespace"))
            }
            (false, [name]) => Ok(QualifiedName::new(default_namespace, None, name)),
            (false, [pkg, name]) => Ok(QualifiedName::new(default_namespace, Some(pkg), name)),
            _ => Err(format!("entity name '{s}': {expected}, found {} parts", parts.len())),
        }
    }

    /// `/namespaces/{ns}/{collection}/[{pkg}/]{name}`, each segment percent-encoded.
    pub fn path(&self, collection: &str) -> String {
        let mut out = format!("/namespaces/{}/{}/", encode(&self.namespace), collection);
        if let Some(p) = &self.package {
            out.push_str(&encode(p));
            out.push('/');
        }
        out.push_str(&encode(&self.name));
        out
    }
}

/// A failed OpenWhisk call, by what the caller can do about it.
#[derive(Clone, Debug, PartialEq)]
pub enum OwError {
    /// 404: the entity does not exist (or is not visible to this key).
    NotFound(String),
    /// 409: the entity exists (create without overwrite) or a concurrent update.
    Conflict(String),
    /// 429: over a rate limit; retry after the hint when given.
    Throttled {
        /// The server's message.
        message: String,
        /// From `Retry-After`, when present.
        retry_after: Option<Duration>,
    },
    /// 401/403: the key is wrong or not allowed.
    Unauthorized(String),
    /// 400/413 and other 4xx: the request itself is wrong.
    BadRequest {
        /// The HTTP status.
        status: u16,
        /// The server's message.
        message: String,
    },
    /// 502 from a blocking invoke: the action ran and returned an error result.
    Application(Value),
    /// 202 from a blocking invoke: still running after the blocking wait.
    Accepted(String),
    /// 5xx: the platform failed; retry later.
    Server {
        /// The HTTP status.
        status: u16,
        /// The server's message.
        message: String,
    },
    /// No HTTP answer (connection refused, timeout, TLS).
    Transport(String),
}

impl OwError {
    /// True for a 404.
    pub fn is_not_found(&self) -> bool {
        matches!(self, OwError::NotFound(_))
    }

    /// True when the same call may succeed later (throttled, 5xx, no answer).
    pub fn is_retryable(&self) -> bool {
        matches!(self, OwError::Throttled { .. } | OwError::Server { .. } | OwError::Transport(_))
    }
}

impl fmt::Display for OwError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OwError::NotFound(m) | OwError::Conflict(m) | OwError::Unauthorized(m) | OwError::Transport(m) => {
                f.write_str(m)
            }
            OwError::BadRequest { message, .. } | OwError::Server { message, .. } => f.write_str(message),
            OwError::Throttled { message, retry_after: Some(d) } => {
                write!(f, "{message} (retry after {} s)", d.as_secs())
            }
            OwError::Throttled { message, retry_after: None } => f.write_str(message),
            OwError::Application(result) => {
                let detail = match result.get("error") {
                    Some(Value::String(s)) => s.clone(),
                    Some(other) => other.to_string(),
                    None => result.to_string(),
                };
                write!(f, "action failed: {}", shorten(&detail))
            }
            OwError::Accepted(id) => write!(f, "action still running after the blocking wait (activation {id})"),
        }
    }
}

impl std::error::Error for OwError {}

fn shorten(s: &str) -> String {
    const MAX: usize = 300;
    let s = s.trim();
    if s.chars().count() <= MAX {
        s.to_string()
    } else {
        let head: String = s.chars().take(MAX - 3).collect();
        format!("{head}...")
    }
}

/// Maps a non-2xx answer to an error naming `what` (e.g. "trigger /ns/t"). No I/O.
fn status_error(status: u16, body: &Value, retry_after: Option<&str>, what: &str) -> OwError {
    let server = match body.get("error") {
        Some(Value::String(s)) => Some(s.as_str()),
        _ => body.as_str(),
    }
    .map(|s| shorten(s).trim_end_matches('.').to_string())
    .filter(|s| !s.is_empty());
    let with = |kind: &str| match &server {
        Some(s) => format!("{what}: {kind} ({s})"),
        None => format!("{what}: {kind}"),
    };
    match status {
        404 => OwError::NotFound(with("not found")),
        409 => OwError::Conflict(with("conflict")),
        429 => OwError::Throttled {
            message: with("throttled"),
            retry_after: retry_after.and_then(|s| s.trim().parse::<u64>().ok()).map(Duration::from_secs),
        },
        401 | 403 => OwError::Unauthorized(with(&format!("not authorized (HTTP {status})"))),
        500..=599 => OwError::Server { status, message: with(&format!("server error (HTTP {status})")) },
        _ => OwError::BadRequest { status, message: with(&format!("request rejected (HTTP {status})")) },
    }
}

/// Turns `{"k": v, …}` into OpenWhisk's `[{"key": k, "value": v}, …]`.
pub fn key_values(map: &Map<String, Value>) -> Value {
    Value::Array(map.iter().map(|(k, v)| json!({ "key": k, "value": v })).collect())
}

/// Turns `[{"key": k, "value": v}, …]` back into a map; anything else gives an empty map.
pub fn from_key_values(list: &Value) -> Map<String, Value> {
    let mut out = Map::new();
    if let Value::Array(items) = list {
        for item in items {
            if let Some(Value::String(k)) = item.get("key") {
                out.insert(k.clone(), item.get("value").cloned().unwrap_or(Value::Null));
            }
        }
    }
    out
}

/// Longest any request may take: a blocking invoke waits up to 60 s on the server.
const MAX_REQUEST_TIME: Duration = Duration::from_secs(65);

/// How the OpenWhisk API host's certificate is checked: self-hosted OpenWhisk often has a
/// private CA or a self-signed certificate. From the parameters `apiHostCaCertificate` (PEM)
/// and `apiHostInsecureSkipTlsVerify`, set by the deployer on the package or by the user at
/// CREATE (then kept in the feed's config binding for the poller).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ApiTls {
    /// PEM certificates trusted instead of the public roots.
    pub ca_pem: Option<String>,
    /// No verification at all.
    pub insecure: bool,
}

/// The parameter names of `ApiTls`.
const API_TLS_PARAMS: [&str; 2] = ["apiHostCaCertificate", "apiHostInsecureSkipTlsVerify"];

impl ApiTls {
    /// Reads and checks the parameters; errors name them.
    pub fn from_params(params: &crate::params::Params) -> Result<ApiTls, crate::params::ParamError> {
        let ca_pem = params.str(API_TLS_PARAMS[0])?.filter(|c| !c.trim().is_empty());
        let insecure = params.bool(API_TLS_PARAMS[1])?.unwrap_or(false);
        let tls = ApiTls { ca_pem, insecure };
        tls.config().map_err(|e| crate::params::ParamError {
            name: API_TLS_PARAMS[0].to_string(),
            expected: format!("PEM certificates ({e})"),
            got: None,
        })?;
        Ok(tls)
    }

    fn config(&self) -> Result<ureq::tls::TlsConfig, String> {
        // The same PEM handling as the S3 client's `caCertificate`.
        owfeed_s3::tls_config(self.ca_pem.as_deref(), self.insecure, API_TLS_PARAMS[0])
    }

    /// What READ and CREATE say about it, when it is not the default.
    pub fn notice(&self, api_host: &str) -> Option<String> {
        if self.insecure {
            Some(format!(
                "apiHostInsecureSkipTlsVerify: the certificate of the OpenWhisk API host {api_host} is NOT verified; prefer -p apiHostCaCertificate with its CA"
            ))
        } else {
            self.ca_pem.as_ref().map(|pem| {
                format!(
                    "apiHostCaCertificate: the OpenWhisk API host {api_host} is verified against the {} certificate(s) given",
                    pem.matches("-----BEGIN CERTIFICATE-----").count()
                )
            })
        }
    }
}

/// Talks to one OpenWhisk API host with one key.
pub struct Client {
    base: String,
    auth: AuthKey,
    agent: ureq::Agent,
    /// No request runs past this (the activation's deadline), when set.
    deadline: Option<SystemTime>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client").field("base", &self.base).field("auth", &self.auth).finish_non_exhaustive()
    }
}

#[derive(Clone, Copy)]
enum Method {
    Get,
    Put,
    Post,
    Delete,
}

/// An HTTP answer of any status, its body parsed as JSON when it is JSON.
struct Answer {
    status: u16,
    body: Value,
    retry_after: Option<String>,
}

/// The agent every client uses: statuses are answers, not errors; bounded connect and request
/// times; the API host's TLS settings when they are not the defaults.
fn agent(tls: Option<ureq::tls::TlsConfig>) -> ureq::Agent {
    let mut config = ureq::Agent::config_builder();
    if let Some(tls) = tls {
        config = config.tls_config(tls);
    }
    owfeed_s3::http_agent(
        config
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(5)))
            .timeout_global(Some(MAX_REQUEST_TIME))
            .user_agent("owfeed")
            .build(),
    )
}

impl Client {
    /// A client for `api_host` (`host[:port]` means https; a scheme is kept as given).
    pub fn new(api_host: &str, auth: AuthKey) -> Client {
        let host = api_host.trim().trim_end_matches('/');
        let host = if host.contains("://") { host.to_string() } else { format!("https://{host}") };
        Client { base: format!("{host}/api/v1"), auth, agent: agent(None), deadline: None }
    }

    /// The same client, checking the API host's certificate as `tls` says.
    pub fn with_tls(mut self, tls: &ApiTls) -> Result<Client, String> {
        if *tls == ApiTls::default() {
            return Ok(self);
        }
        self.agent = agent(Some(tls.config()?));
        Ok(self)
    }

    /// The same client, with every request bounded by the time left before `deadline` (an
    /// activation's), so a hung request cannot outlive the activation.
    pub fn until(mut self, deadline: Option<SystemTime>) -> Client {
        self.deadline = deadline;
        self
    }

    /// How long the next request may take.
    fn request_time(&self) -> Duration {
        match self.deadline {
            // At least a moment, so the request fails as a timeout rather than not at all.
            Some(d) => d
                .duration_since(SystemTime::now())
                .unwrap_or_default()
                .clamp(Duration::from_millis(200), MAX_REQUEST_TIME),
            None => MAX_REQUEST_TIME,
        }
    }

    /// The key this client sends.
    pub fn auth(&self) -> &AuthKey {
        &self.auth
    }

    /// The API base URL, `{scheme}://{host}/api/v1`.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
        what: &str,
    ) -> Result<Answer, OwError> {
        let url = format!("{}{}", self.base, path);
        let auth = self.auth.basic_auth_header();
        let transport = |e: ureq::Error| {
            let tls = match &e {
                ureq::Error::Tls(_) | ureq::Error::Rustls(_) => true,
                // rustls reports certificate failures as InvalidData I/O errors.
                ureq::Error::Io(io) => url.starts_with("https://") && io.kind() == std::io::ErrorKind::InvalidData,
                _ => false,
            };
            if tls {
                OwError::Transport(format!(
                    "{what}: TLS: {e}: for a self-hosted API host with a private CA or a self-signed certificate, give its CA's PEM as -p apiHostCaCertificate (or, not recommended, -p apiHostInsecureSkipTlsVerify true), on the package or at CREATE"
                ))
            } else {
                OwError::Transport(format!("{what}: {e}"))
            }
        };
        let result = match method {
            Method::Get | Method::Delete => {
                let req = if matches!(method, Method::Get) { self.agent.get(&url) } else { self.agent.delete(&url) };
                req.config()
                    .timeout_global(Some(self.request_time()))
                    .build()
                    .header("Authorization", &auth)
                    .header("Accept", "application/json")
                    .query_pairs(query.iter().copied())
                    .call()
            }
            Method::Put | Method::Post => {
                let req = if matches!(method, Method::Put) { self.agent.put(&url) } else { self.agent.post(&url) };
                let req = req
                    .config()
                    .timeout_global(Some(self.request_time()))
                    .build()
                    .header("Authorization", &auth)
                    .header("Accept", "application/json")
                    .header("Content-Type", "application/json")
                    .query_pairs(query.iter().copied());
                // Value's Display is compact and not generic: ureq's send_json pretty-prints
                // through code instantiated here, which is slow for action zips of megabytes.
                let body = body.map_or_else(|| "{}".to_string(), Value::to_string);
                req.send(body)
            }
        };
        let mut response = result.map_err(transport)?;
        let status = response.status().as_u16();
        let retry_after = response.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_string);
        let text = response.body_mut().with_config().limit(8 * 1024 * 1024).read_to_string().map_err(transport)?;
        let body = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Ok(Answer { status, body, retry_after })
    }

    fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
        what: &str,
    ) -> Result<Value, OwError> {
        let answer = self.send(method, path, query, body, what)?;
        if (200..300).contains(&answer.status) {
            Ok(answer.body)
        } else {
            Err(status_error(answer.status, &answer.body, answer.retry_after.as_deref(), what))
        }
    }

    fn put(
        &self,
        collection: &str,
        kind: &str,
        name: &QualifiedName,
        body: &Value,
        overwrite: bool,
    ) -> Result<Value, OwError> {
        let query: &[(&str, &str)] = if overwrite { &[("overwrite", "true")] } else { &[] };
        self.call(Method::Put, &name.path(collection), query, Some(body), &format!("{kind} {name}"))
    }

    fn get(&self, collection: &str, kind: &str, name: &QualifiedName) -> Result<Value, OwError> {
        self.call(Method::Get, &name.path(collection), &[], None, &format!("{kind} {name}"))
    }

    fn delete(&self, collection: &str, kind: &str, name: &QualifiedName) -> Result<(), OwError> {
        self.call(Method::Delete, &name.path(collection), &[], None, &format!("{kind} {name}")).map(|_| ())
    }

    /// `GET` a trigger document.
    pub fn get_trigger(&self, name: &QualifiedName) -> Result<Value, OwError> {
        self.get("triggers", "trigger", name)
    }

    /// `PUT` a trigger (`overwrite` replaces each field sent whole).
    pub fn put_trigger(&self, name: &QualifiedName, body: &Value, overwrite: bool) -> Result<Value, OwError> {
        self.put("triggers", "trigger", name, body, overwrite)
    }

    /// `DELETE` a trigger (its rules and feed are left alone, as OpenWhisk does).
    pub fn delete_trigger(&self, name: &QualifiedName) -> Result<(), OwError> {
        self.delete("triggers", "trigger", name)
    }

    /// Fires a trigger: `Some(activationId)` on 202, `None` on 204 (no active rule).
    pub fn fire_trigger(&self, name: &QualifiedName, payload: &Value) -> Result<Option<String>, OwError> {
        // Defence in depth: no payload speaks for the platform (`__ow_headers` would reach the
        // rule's action in place of the fire's own headers), whatever state or input it came from.
        let stripped;
        let payload = if crate::events::has_reserved(payload) {
            let mut copy = payload.clone();
            let n = crate::events::strip_reserved(&mut copy);
            crate::runtime::log(&format!("fire {name}: removed {n} platform-reserved __ow_* fields from the payload"));
            stripped = copy;
            &stripped
        } else {
            payload
        };
        let body = self.call(Method::Post, &name.path("triggers"), &[], Some(payload), &format!("trigger {name}"))?;
        Ok(body.get("activationId").and_then(Value::as_str).map(str::to_string))
    }

    /// `GET` a rule document.
    pub fn get_rule(&self, name: &QualifiedName) -> Result<Value, OwError> {
        self.get("rules", "rule", name)
    }

    /// `PUT` a rule from `trigger` to `action` (new rules are active).
    pub fn put_rule(
        &self,
        name: &QualifiedName,
        trigger: &QualifiedName,
        action: &QualifiedName,
        overwrite: bool,
    ) -> Result<Value, OwError> {
        let body = json!({ "trigger": trigger.to_string(), "action": action.to_string() });
        self.put("rules", "rule", name, &body, overwrite)
    }

    /// Enables or disables a rule (200 even when already in that state).
    pub fn set_rule_active(&self, name: &QualifiedName, active: bool) -> Result<(), OwError> {
        let body = json!({ "status": if active { "active" } else { "inactive" } });
        self.call(Method::Post, &name.path("rules"), &[], Some(&body), &format!("rule {name}")).map(|_| ())
    }

    /// `DELETE` a rule (in any state).
    pub fn delete_rule(&self, name: &QualifiedName) -> Result<(), OwError> {
        self.delete("rules", "rule", name)
    }

    /// `GET` a package or binding document.
    pub fn get_package(&self, name: &QualifiedName) -> Result<Value, OwError> {
        self.get("packages", "package", name)
    }

    /// `PUT` a package or binding (`{"binding": {"namespace", "name"}, "parameters": […]}`).
    pub fn put_package(&self, name: &QualifiedName, body: &Value, overwrite: bool) -> Result<Value, OwError> {
        self.put("packages", "package", name, body, overwrite)
    }

    /// One page of the caller's packages and bindings (`limit` at most 200), newest update
    /// first: each with its `annotations` and `binding`, without parameters (apache/openwhisk
    /// core/controller/.../controller/Packages.scala:205-228, the `packages` view of
    /// ansible/files/whisks_design_document_for_entities_db_v2.1.0.json).
    pub fn list_packages(&self, limit: u32, skip: u32) -> Result<Value, OwError> {
        let (limit, skip) = (limit.to_string(), skip.to_string());
        let query = [("limit", limit.as_str()), ("skip", skip.as_str())];
        self.call(Method::Get, "/namespaces/_/packages", &query, None, "packages")
    }

    /// `DELETE` a package or binding.
    pub fn delete_package(&self, name: &QualifiedName) -> Result<(), OwError> {
        self.delete("packages", "package", name)
    }

    /// `GET` an action document.
    pub fn get_action(&self, name: &QualifiedName) -> Result<Value, OwError> {
        self.get("actions", "action", name)
    }

    /// `PUT` an action (`{"exec": …, "limits": …, "annotations": […]}`).
    pub fn put_action(&self, name: &QualifiedName, body: &Value, overwrite: bool) -> Result<Value, OwError> {
        self.put("actions", "action", name, body, overwrite)
    }

    /// `DELETE` an action.
    pub fn delete_action(&self, name: &QualifiedName) -> Result<(), OwError> {
        self.delete("actions", "action", name)
    }

    /// Invokes an action. Blocking: 200 gives the result, 502 `Application(result)`,
    /// 202 `Accepted(activationId)`. Non-blocking: the `{"activationId"}` answer.
    pub fn invoke(&self, name: &QualifiedName, params: &Value, blocking: bool) -> Result<Value, OwError> {
        let what = format!("action {name}");
        let query: &[(&str, &str)] = if blocking { &[("blocking", "true"), ("result", "true")] } else { &[] };
        let answer = self.send(Method::Post, &name.path("actions"), query, Some(params), &what)?;
        match answer.status {
            202 if blocking => Err(OwError::Accepted(
                answer.body.get("activationId").and_then(Value::as_str).unwrap_or_default().to_string(),
            )),
            200..=299 => Ok(answer.body),
            502 if blocking => Err(OwError::Application(answer.body)),
            status => Err(status_error(status, &answer.body, answer.retry_after.as_deref(), &what)),
        }
    }

    /// `GET /namespaces/_/activations/{id}`: the activation record.
    pub fn get_activation(&self, id: &str) -> Result<Value, OwError> {
        let path = format!("/namespaces/_/activations/{}", encode(id));
        self.call(Method::Get, &path, &[], None, &format!("activation {id}"))
    }

    /// The newest activations (full records), optionally of one entity (`name` or `pkg/name`).
    pub fn list_activations(&self, name: Option<&str>, limit: u32) -> Result<Value, OwError> {
        let limit = limit.to_string();
        let mut query = vec![("limit", limit.as_str()), ("docs", "true")];
        if let Some(n) = name {
            query.push(("name", n));
        }
        self.call(Method::Get, "/namespaces/_/activations", &query, None, "activations")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_key_parses_and_never_shows_the_key() {
        let k = AuthKey::parse(
            " 23bc46b1-71f6-4ed5-8c54-816aa4f8c502:123zO3xZCLrMN6v2BKK1dXYFpXlPkccOFqm12CdAsMgRU4VrNZ9lyGVCGuMDGIwP\n",
        )
        .unwrap();
        assert_eq!(k.uuid, "23bc46b1-71f6-4ed5-8c54-816aa4f8c502");
        assert_eq!(k.key.expose(), "123zO3xZCLrMN6v2BKK1dXYFpXlPkccOFqm12CdAsMgRU4VrNZ9lyGVCGuMDGIwP");
        assert_eq!(
            k.to_secret().expose(),
            "23bc46b1-71f6-4ed5-8c54-816aa4f8c502:123zO3xZCLrMN6v2BKK1dXYFpXlPkccOFqm12CdAsMgRU4VrNZ9lyGVCGuMDGIwP"
        );
        assert!(!format!("{k:?}").contains("123zO3"), "{k:?}");
        let client = Client::new("example.com", k);
        assert!(!format!("{client:?}").contains("123zO3"), "{client:?}");
        assert_eq!(client.base_url(), "https://example.com/api/v1");
    }

    #[test]
    fn auth_key_errors_name_the_problem_without_the_key() {
        for (input, detail) in [
            ("supersecretkey", "no ':'"),
            (":supersecretkey", "the uuid part is empty"),
            ("uuid:", "the key part is empty"),
            ("", "no ':'"),
        ] {
            let err = AuthKey::parse(input).unwrap_err();
            assert!(err.starts_with("authKey: expected <uuid>:<key>"), "{err}");
            assert!(err.contains(detail), "{input:?}: {err}");
            assert!(!err.contains("supersecret"), "{err}");
        }
    }

    #[track_caller]
    fn check_name(input: &str, expected: Result<(&str, Option<&str>, &str), &str>) {
        let got = QualifiedName::parse(input, "me");
        match expected {
            Ok((ns, pkg, name)) => assert_eq!(got, Ok(QualifiedName::new(ns, pkg, name)), "{input}"),
            Err(fragment) => {
                let err = got.unwrap_err();
                assert!(err.contains(fragment), "{input}: {err}");
                assert!(err.contains(&format!("'{input}'")), "{input}: {err}");
            }
        }
    }

    #[test]
    fn qualified_names() {
        check_name("/ns/t", Ok(("ns", None, "t")));
        check_name("/ns/pkg/a", Ok(("ns", Some("pkg"), "a")));
        check_name("/_/t", Ok(("_", None, "t")));
        check_name("t", Ok(("me", None, "t")));
        check_name("pkg/a", Ok(("me", Some("pkg"), "a")));
        check_name("my trigger@1", Ok(("me", None, "my trigger@1")));
        check_name("", Err("empty part"));
        check_name("/ns", Err("found 1 parts"));
        check_name("/ns/", Err("empty part"));
        check_name("//t", Err("empty part"));
        check_name("a//b", Err("empty part"));
        check_name("/a/b/c/d", Err("found 4 parts"));
        check_name("a/b/c", Err("found 3 parts"));
        assert!(QualifiedName::parse("t", "").unwrap_err().contains("no default namespace"));
        assert_eq!(QualifiedName::parse("/ns/pkg/a", "").unwrap().to_string(), "/ns/pkg/a");
    }

    #[test]
    fn paths_encode_each_segment() {
        assert_eq!(QualifiedName::new("ns", None, "t").path("triggers"), "/namespaces/ns/triggers/t");
        assert_eq!(
            QualifiedName::new("a@b.com_dev", Some("my pkg"), "x/y?z#").path("actions"),
            "/namespaces/a%40b.com_dev/actions/my%20pkg/x%2Fy%3Fz%23"
        );
        assert_eq!(QualifiedName::new("_", None, "a-b.c~d").path("rules"), "/namespaces/_/rules/a-b.c~d");
    }

    #[test]
    fn status_mapping() {
        let body = json!({"error": "The requested resource does not exist.", "code": "tx1"});
        let e = status_error(404, &body, None, "trigger /ns/t");
        assert!(e.is_not_found());
        assert_eq!(e.to_string(), "trigger /ns/t: not found (The requested resource does not exist)");
        assert_eq!(status_error(404, &Value::Null, None, "rule /ns/r").to_string(), "rule /ns/r: not found");

        assert!(matches!(status_error(409, &body, None, "x"), OwError::Conflict(_)));
        let e = status_error(429, &json!({"error": "Too many requests"}), Some(" 7 "), "trigger /ns/t");
        assert_eq!(
            e,
            OwError::Throttled {
                message: "trigger /ns/t: throttled (Too many requests)".to_string(),
                retry_after: Some(Duration::from_secs(7)),
            }
        );
        assert_eq!(e.to_string(), "trigger /ns/t: throttled (Too many requests) (retry after 7 s)");
        assert!(e.is_retryable());
        let e = status_error(429, &Value::Null, Some("Wed, 21 Oct 2015 07:28:00 GMT"), "x");
        assert!(matches!(e, OwError::Throttled { retry_after: None, .. }));
        assert!(matches!(status_error(401, &Value::Null, None, "x"), OwError::Unauthorized(_)));
        let e = status_error(403, &Value::Null, None, "action /ns/a");
        assert_eq!(e.to_string(), "action /ns/a: not authorized (HTTP 403)");
        let e = status_error(503, &Value::String("<html>bad gateway</html>".into()), None, "x");
        assert_eq!(
            e,
            OwError::Server { status: 503, message: "x: server error (HTTP 503) (<html>bad gateway</html>)".into() }
        );
        assert!(e.is_retryable());
        let e = status_error(413, &Value::Null, None, "trigger /ns/t");
        assert_eq!(
            e,
            OwError::BadRequest { status: 413, message: "trigger /ns/t: request rejected (HTTP 413)".into() }
        );
        assert!(!e.is_retryable());
        assert!(matches!(status_error(400, &Value::Null, None, "x"), OwError::BadRequest { status: 400, .. }));
    }

    #[test]
    fn other_errors_display() {
        assert_eq!(OwError::Application(json!({"error": "boom"})).to_string(), "action failed: boom");
        assert_eq!(OwError::Application(json!({"error": {"code": 1}})).to_string(), "action failed: {\"code\":1}");
        assert!(OwError::Accepted("abc".into()).to_string().contains("abc"));
    }

    #[test]
    fn key_value_lists_round_trip() {
        let map = json!({"a": 1, "b": {"c": [true]}}).as_object().unwrap().clone();
        let list = key_values(&map);
        assert_eq!(list, json!([{"key": "a", "value": 1}, {"key": "b", "value": {"c": [true]}}]));
        assert_eq!(from_key_values(&list), map);
        assert!(from_key_values(&Value::Null).is_empty());
        assert!(from_key_values(&json!({"key": "a"})).is_empty());
        assert_eq!(
            from_key_values(&json!([{"key": "a"}, {"value": 2}, 3])),
            json!({"a": null}).as_object().unwrap().clone()
        );
    }

    #[test]
    fn unreachable_host_is_a_transport_error() {
        // Port 1 on loopback: nothing listens there, so the connection is refused at once.
        let client = Client::new("http://127.0.0.1:1", AuthKey::parse("u:secretkey").unwrap());
        let err = client.get_trigger(&QualifiedName::new("_", None, "t")).unwrap_err();
        assert!(matches!(err, OwError::Transport(_)), "{err:?}");
        assert!(err.to_string().starts_with("trigger /_/t: "), "{err}");
        assert!(!err.to_string().contains("secretkey"), "{err}");
    }
}
