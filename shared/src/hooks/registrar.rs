//! The registration plugin contract of the hooks pattern: tell a producer to deliver to the
//! receiver URL (and stop, pause, resume), plus the small JSON-over-HTTP helper plugins use.
//!
//! A registrar knows its own parameters and its producer's API. It knows nothing about
//! triggers, rules, bindings, secrets storage or the receiver: the feed hands it the URL and
//! the secret, and stores whatever id it returns.

use std::fmt;
use std::time::Duration;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC};
use serde_json::Value;

use crate::params::{ParamError, Params};
use crate::secret::Secret;

/// Path-segment encoding: only RFC 3986 unreserved characters stay as they are.
pub const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// Where and how the producer must deliver.
#[derive(Clone, Debug)]
pub struct Endpoint {
    /// The receiver URL.
    pub url: String,
    /// The bearer token / HMAC key the receiver checks.
    pub secret: Secret,
    /// False: register it paused (the trigger is paused), where the producer can.
    pub active: bool,
}

/// A producer API call that failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RegistrationError {
    /// The producer refused the credentials (401/403).
    Unauthorized(String),
    /// The producer rejected the request (another 4xx).
    Rejected {
        /// HTTP status.
        status: u16,
        /// What it said.
        message: String,
    },
    /// The producer failed (5xx) or gave an answer we cannot use.
    Server(String),
    /// The producer's rate limit (429, or 403 with rate-limit headers): retry later.
    RateLimited(String),
    /// No HTTP answer.
    Transport(String),
}

impl fmt::Display for RegistrationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RegistrationError::Unauthorized(m)
            | RegistrationError::Server(m)
            | RegistrationError::Transport(m)
            | RegistrationError::RateLimited(m) => f.write_str(m),
            RegistrationError::Rejected { message, .. } => f.write_str(message),
        }
    }
}

impl std::error::Error for RegistrationError {}

/// A registration plugin: one producer's webhook API.
pub trait Registrar {
    /// The `source` value that selects this plugin.
    fn name(&self) -> &'static str;
    /// The parameters this plugin reads; a change to any of them means re-registering.
    fn params(&self) -> &'static [&'static str];
    /// Which of them are secrets (redacted by READ).
    fn secret_params(&self) -> &'static [&'static str];
    /// Checks the plugin's parameters without any I/O.
    fn validate(&self, params: &Params) -> Result<(), ParamError>;
    /// Registers the endpoint; returns the producer's id for it (`None`: nothing registered).
    fn register(&self, params: &Params, endpoint: &Endpoint) -> Result<Option<String>, RegistrationError>;
    /// Changes registration `id` in place to `params` and `endpoint`; returns the id it has
    /// now. `None`: this producer cannot, so the feed registers anew and removes the old one.
    fn update(&self, params: &Params, id: &str, endpoint: &Endpoint) -> Option<Result<String, RegistrationError>> {
        let _ = (params, id, endpoint);
        None
    }
    /// Removes the registration; one that is already gone counts as removed.
    fn unregister(&self, params: &Params, id: &str) -> Result<(), RegistrationError>;
    /// Stops or resumes deliveries at the producer, when it can.
    fn set_active(&self, params: &Params, id: &str, active: bool) -> Result<(), RegistrationError>;
    /// True when the producer still needs the token from the user even after `register`
    /// (MinIO: an administrator sets it on the webhook target), so CREATE prints it.
    fn needs_token(&self, params: &Params) -> bool {
        let _ = params;
        false
    }
    /// Config entries that go with registration `id` (e.g. the SNS topic the receiver checks);
    /// the feed stores them next to the id whenever it stores one.
    fn registration_config(&self, id: &str) -> Vec<(&'static str, Value)> {
        let _ = id;
        Vec::new()
    }
    /// Called once the feed has stored registration `id` and its `registration_config`: a
    /// producer that sent the receiver something it could only answer after that (SNS's
    /// subscription confirmation, sent while `register` ran) is asked to send it again.
    fn after_stored(&self, params: &Params, id: &str, endpoint: &Endpoint) -> Result<(), RegistrationError> {
        let _ = (params, id, endpoint);
        Ok(())
    }
    /// What the producer says about registration `id` now, for READ (`None`: nothing to say);
    /// a registration that cannot deliver says so in `problem`.
    fn status(&self, params: &Params, id: &str) -> Option<Value> {
        let _ = (params, id);
        None
    }
    /// Where registration `id` lives and the one command (no secret in it) that removes it, for
    /// a user to run when `unregister` failed.
    fn removal(&self, params: &Params, id: &str) -> (String, String);
}

/// The `none` source: nothing is registered, the user configures the producer.
pub struct Unregistered;

impl Registrar for Unregistered {
    fn name(&self) -> &'static str {
        "none"
    }
    fn params(&self) -> &'static [&'static str] {
        &[]
    }
    fn secret_params(&self) -> &'static [&'static str] {
        &[]
    }
    fn validate(&self, _: &Params) -> Result<(), ParamError> {
        Ok(())
    }
    fn register(&self, _: &Params, _: &Endpoint) -> Result<Option<String>, RegistrationError> {
        Ok(None)
    }
    fn unregister(&self, _: &Params, _: &str) -> Result<(), RegistrationError> {
        Ok(())
    }
    fn set_active(&self, _: &Params, _: &str, _: bool) -> Result<(), RegistrationError> {
        Ok(())
    }
    fn removal(&self, _: &Params, id: &str) -> (String, String) {
        (format!("nowhere (nothing was registered for {id})"), String::new())
    }
}

/// An HTTP method a plugin uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// GET.
    Get,
    /// POST.
    Post,
    /// PATCH.
    Patch,
    /// DELETE.
    Delete,
}

/// A JSON-over-HTTP client for producer APIs: never errors on a status, with timeouts.
pub struct Http {
    agent: ureq::Agent,
}

impl Default for Http {
    fn default() -> Self {
        Http::new()
    }
}

impl Http {
    /// A client with 5 s connect and 30 s overall timeouts.
    pub fn new() -> Http {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(5)))
            .timeout_global(Some(Duration::from_secs(30)))
            .user_agent("owfeed-hooks")
            .build()
            .new_agent();
        Http { agent }
    }

    /// Sends one request; `what` names it in errors. `auth` is the whole `Authorization`
    /// value; `headers` go with it (the default `Accept` is `application/json`).
    pub fn send(&self, call: &Call<'_>) -> Result<Reply, RegistrationError> {
        let what = call.what;
        let transport = |e: ureq::Error| RegistrationError::Transport(format!("{what}: {e}"));
        let accept = call.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case("accept")).map(|(_, v)| *v);
        let result = match call.method {
            Method::Get | Method::Delete => {
                let mut req =
                    if call.method == Method::Get { self.agent.get(call.url) } else { self.agent.delete(call.url) };
                req = req.header("Accept", accept.unwrap_or("application/json"));
                for (k, v) in call.headers.iter().filter(|(k, _)| !k.eq_ignore_ascii_case("accept")) {
                    req = req.header(*k, *v);
                }
                if let Some(a) = &call.auth {
                    req = req.header("Authorization", a.expose());
                }
                req.call()
            }
            Method::Post | Method::Patch => {
                let mut req =
                    if call.method == Method::Post { self.agent.post(call.url) } else { self.agent.patch(call.url) };
                req = req.header("Accept", accept.unwrap_or("application/json"));
                for (k, v) in call.headers.iter().filter(|(k, _)| !k.eq_ignore_ascii_case("accept")) {
                    req = req.header(*k, *v);
                }
                if let Some(a) = &call.auth {
                    req = req.header("Authorization", a.expose());
                }
                req.send_json(call.body.unwrap_or(&Value::Null))
            }
        };
        let mut response = result.map_err(transport)?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_ascii_lowercase(), v.to_str().unwrap_or_default().to_string()))
            .collect();
        let text = response.body_mut().with_config().limit(1024 * 1024).read_to_string().map_err(transport)?;
        let body = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Ok(Reply { status, body, headers })
    }

    /// Like `send`, but a non-2xx status is an error (see [`status_error`]); 404 and 410 are
    /// `Ok(None)` when `missing_ok`.
    pub fn expect_ok(&self, call: &Call<'_>, missing_ok: bool) -> Result<Option<Value>, RegistrationError> {
        let reply = self.send(call)?;
        match reply.status {
            200..=299 => Ok(Some(reply.body)),
            404 | 410 if missing_ok => Ok(None),
            _ => Err(status_error(&reply, call)),
        }
    }
}

/// One producer API call.
pub struct Call<'a> {
    /// The method.
    pub method: Method,
    /// The URL.
    pub url: &'a str,
    /// The whole `Authorization` value.
    pub auth: Option<Secret>,
    /// Extra headers.
    pub headers: &'a [(&'a str, &'a str)],
    /// The JSON body.
    pub body: Option<&'a Value>,
    /// What the call does, for error messages.
    pub what: &'a str,
    /// Secret values the call sends (the auth header's and the body's): never repeated in an
    /// error, whatever the producer echoes.
    pub secrets: Vec<Secret>,
}

/// A producer's answer.
#[derive(Clone, Debug)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// The JSON body (`Null` when empty, a string when not JSON).
    pub body: Value,
    /// Response headers, names in lower case.
    pub headers: Vec<(String, String)>,
}

impl Reply {
    /// A header by lower-case name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// True for a rate-limit answer: 429, or 403 with `Retry-After` or no requests remaining.
    pub fn rate_limited(&self) -> bool {
        self.status == 429
            || (self.status == 403
                && (self.header("retry-after").is_some() || self.header("x-ratelimit-remaining") == Some("0")))
    }
}

/// What the producer said: its `message` (or `error`) and any `errors[].message` (GitHub's
/// validation details), at most 300 characters, with every secret of the call replaced.
pub fn producer_said(body: &Value, secrets: &[Secret]) -> Option<String> {
    let main = body.get("message").or_else(|| body.get("error")).and_then(Value::as_str).or_else(|| body.as_str());
    let details: Vec<&str> = body
        .get("errors")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|e| e.get("message").and_then(Value::as_str).or_else(|| e.as_str()))
        .collect();
    let mut said = main.unwrap_or_default().trim().to_string();
    if !details.is_empty() {
        let joined = details.join("; ");
        said = if said.is_empty() { joined } else { format!("{said}: {joined}") };
    }
    for secret in secrets {
        let value = secret.expose();
        if !value.is_empty() {
            said = said.replace(value, crate::secret::REDACTED);
        }
    }
    let said: String = said.chars().take(300).collect();
    (!said.trim().is_empty()).then_some(said)
}

/// Maps a failed answer to an error naming the call and quoting the producer's message.
pub fn status_error(reply: &Reply, call: &Call<'_>) -> RegistrationError {
    let message = match producer_said(&reply.body, &call.secrets) {
        Some(s) => format!("{}: HTTP {} ({s})", call.what, reply.status),
        None => format!("{}: HTTP {}", call.what, reply.status),
    };
    if reply.rate_limited() {
        let after = reply.header("retry-after").map(|s| format!(", retry after {s} s")).unwrap_or_default();
        return RegistrationError::RateLimited(format!("{message}: rate limited{after}"));
    }
    match reply.status {
        401 | 403 => RegistrationError::Unauthorized(message),
        status @ 400..=499 => RegistrationError::Rejected { status, message },
        _ => RegistrationError::Server(message),
    }
}

/// A URL without trailing slashes, checked to be http(s); errors name `param`.
pub fn base_url(params: &Params, param: &str, default: Option<&str>) -> Result<String, ParamError> {
    let raw = match (params.str(param)?, default) {
        (Some(s), _) => s,
        (None, Some(d)) => d.to_string(),
        (None, None) => return Err(ParamError::missing(param, "an http(s) URL")),
    };
    let url = raw.trim().trim_end_matches('/').to_string();
    let lower = url.to_ascii_lowercase();
    let rest = lower.strip_prefix("https://").or_else(|| lower.strip_prefix("http://"));
    match rest {
        Some(host) if !host.is_empty() && !url.contains(char::is_whitespace) => Ok(url),
        _ => Err(ParamError::invalid(param, "an http(s) URL", &Value::String(raw))),
    }
}
