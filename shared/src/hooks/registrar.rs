//! The registration plugin contract of the hooks pattern: tell a producer to deliver to the
//! receiver URL (and stop, pause, resume), plus the small JSON-over-HTTP helper plugins use.
//!
//! A registrar knows its own parameters and its producer's API. It knows nothing about
//! triggers, rules, bindings, secrets storage or the receiver: the feed hands it the URL and
//! the secret, and stores the registration it returns.
//!
//! # A registration is typed, and read in one place
//! Each registrar names its registration type ([`Registrar::Id`], a [`RegistrationId`]: S3's
//! notification Id, topic and subscription; GitHub's numeric hook id; a subscription id) and
//! gets it typed in every call. The feed cannot know these types (it holds registrars as
//! `dyn`), so it stores and hands back a [`StoredRegistration`], the string in the hook config,
//! whose format is the registrar's and never changes. [`AnyRegistrar`], implemented for every
//! [`Registrar`], is the adapter between the two: the one place a stored registration is
//! parsed (once per call), and where one that does not parse becomes a named error
//! ([`RegistrationError::Unreadable`]) instead of a silent "nothing to do".

use std::fmt;
use std::time::Duration;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC};
use serde_json::Value;

use crate::http::{self, Body, HttpClient, HttpConfig, Request};
use crate::params::{ParamError, Params};
use crate::secret::Secret;
use crate::source::ParamSpec;

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
    /// A stored registration its registrar cannot read (the hook config was changed by hand,
    /// or not made by this feed): nothing was asked of the producer.
    Unreadable(String),
}

impl fmt::Display for RegistrationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RegistrationError::Unauthorized(m)
            | RegistrationError::Server(m)
            | RegistrationError::Transport(m)
            | RegistrationError::RateLimited(m)
            | RegistrationError::Unreadable(m) => f.write_str(m),
            RegistrationError::Rejected { message, .. } => f.write_str(message),
        }
    }
}

impl std::error::Error for RegistrationError {}

/// A registration as the feed stores it (the hook config's `registration`) and hands back to
/// its registrar: the registrar's own stored form, opaque to the feed, which never parses it.
/// Only [`AnyRegistrar`] turns it into the registrar's [`RegistrationId`], once per call.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct StoredRegistration(String);

impl StoredRegistration {
    /// A registration read from the hook config (`None` for an empty one: nothing registered).
    pub fn from_stored(stored: &str) -> Option<StoredRegistration> {
        (!stored.is_empty()).then(|| StoredRegistration(stored.to_string()))
    }

    /// The stored form, as written to the hook config.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StoredRegistration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A registrar's typed registration: read once from its stored form where the feed hands it
/// back, and written in that same form (stored formats never change: old triggers keep
/// working).
pub trait RegistrationId: Sized {
    /// What a stored registration of this kind looks like, for the error naming one that is not.
    const FORM: &'static str;
    /// Reads the stored form; `None` when it is not one of this kind.
    fn parse(stored: &str) -> Option<Self>;
    /// The stored form (`parse` of it gives this value back).
    fn to_stored(&self) -> String;
}

/// A registration plugin: one producer's webhook API, over its own typed registration
/// ([`Registrar::Id`]). The feed holds it as a [`AnyRegistrar`], which parses the stored
/// registration once per call and says what is wrong with one that does not parse.
pub trait Registrar {
    /// The producer's registration, typed.
    type Id: RegistrationId;
    /// The `source` value that selects this plugin.
    fn name(&self) -> &'static str;
    /// The parameters this plugin reads (secret ones are redacted by READ); a change to any of
    /// them means re-registering.
    fn params(&self) -> &'static [ParamSpec];
    /// Checks the plugin's parameters without any I/O.
    fn validate(&self, params: &Params) -> Result<(), ParamError>;
    /// Registers the endpoint; returns the producer's registration (`None`: nothing registered).
    fn register(&self, params: &Params, endpoint: &Endpoint) -> Result<Option<Self::Id>, RegistrationError>;
    /// Changes registration `id` in place to `params` and `endpoint`; returns the registration
    /// it is now. `None`: this producer cannot, so the feed registers anew and removes the old one.
    fn update(
        &self,
        params: &Params,
        id: &Self::Id,
        endpoint: &Endpoint,
    ) -> Option<Result<Self::Id, RegistrationError>> {
        let _ = (params, id, endpoint);
        None
    }
    /// Removes the registration; one that is already gone counts as removed.
    fn unregister(&self, params: &Params, id: &Self::Id) -> Result<(), RegistrationError>;
    /// Stops or resumes deliveries at the producer, when it can.
    fn set_active(&self, params: &Params, id: &Self::Id, active: bool) -> Result<(), RegistrationError>;
    /// True when the producer still needs the token from the user even after `register`
    /// (MinIO: an administrator sets it on the webhook target), so CREATE prints it.
    fn needs_token(&self, params: &Params) -> bool {
        let _ = params;
        false
    }
    /// Config entries that go with registration `id` (e.g. the SNS topic the receiver checks);
    /// the feed stores them next to the registration whenever it stores one.
    fn registration_config(&self, id: &Self::Id) -> Vec<(&'static str, Value)> {
        let _ = id;
        Vec::new()
    }
    /// Called once the feed has stored registration `id` and its `registration_config`: a
    /// producer that sent the receiver something it could only answer after that (SNS's
    /// subscription confirmation, sent while `register` ran) is asked to send it again.
    fn after_stored(&self, params: &Params, id: &Self::Id, endpoint: &Endpoint) -> Result<(), RegistrationError> {
        let _ = (params, id, endpoint);
        Ok(())
    }
    /// What the producer says about registration `id` of `endpoint` now, for READ (`None`:
    /// nothing to say); a registration that cannot deliver says so in `problem`.
    /// `endpoint.active` is false while the hook is paused (a paused registration may be
    /// switched off at the producer on purpose).
    fn status(&self, params: &Params, id: &Self::Id, endpoint: &Endpoint) -> Option<Value> {
        let _ = (params, id, endpoint);
        None
    }
    /// Where registration `id` lives and the one command (no secret in it) that removes it, for
    /// a user to run when `unregister` failed.
    fn removal(&self, params: &Params, id: &Self::Id) -> (String, String);
}

/// A [`Registrar`] as the feed and the registry hold it (`&dyn AnyRegistrar`): the same calls
/// over [`StoredRegistration`]s. Every registrar is one; each call parses the stored
/// registration once, here, and one that does not parse is an [`RegistrationError::Unreadable`]
/// (READ shows it as the producer's `problem`, DELETE names it in `notRemoved`, UPDATE
/// registers anew and names the old one in `problems`), never a panic and never "removed".
pub trait AnyRegistrar {
    /// [`Registrar::name`].
    fn name(&self) -> &'static str;
    /// [`Registrar::params`].
    fn params(&self) -> &'static [ParamSpec];
    /// [`Registrar::validate`].
    fn validate(&self, params: &Params) -> Result<(), ParamError>;
    /// [`Registrar::register`], the registration in its stored form.
    fn register(&self, params: &Params, endpoint: &Endpoint) -> Result<Option<StoredRegistration>, RegistrationError>;
    /// [`Registrar::update`]; `None` too for a stored registration that does not parse (the feed
    /// then registers anew, and removing the old one names what is wrong with it).
    fn update(
        &self,
        params: &Params,
        stored: &StoredRegistration,
        endpoint: &Endpoint,
    ) -> Option<Result<StoredRegistration, RegistrationError>>;
    /// [`Registrar::unregister`].
    fn unregister(&self, params: &Params, stored: &StoredRegistration) -> Result<(), RegistrationError>;
    /// [`Registrar::set_active`].
    fn set_active(&self, params: &Params, stored: &StoredRegistration, active: bool) -> Result<(), RegistrationError>;
    /// [`Registrar::needs_token`].
    fn needs_token(&self, params: &Params) -> bool;
    /// [`Registrar::registration_config`]; nothing for a stored registration that does not parse.
    fn registration_config(&self, stored: &StoredRegistration) -> Vec<(&'static str, Value)>;
    /// [`Registrar::after_stored`].
    fn after_stored(
        &self,
        params: &Params,
        stored: &StoredRegistration,
        endpoint: &Endpoint,
    ) -> Result<(), RegistrationError>;
    /// [`Registrar::status`]; a `problem` naming what is wrong with a stored registration that
    /// does not parse.
    fn status(&self, params: &Params, stored: &StoredRegistration, endpoint: &Endpoint) -> Option<Value>;
    /// [`Registrar::removal`]; for a stored registration that does not parse, what is wrong
    /// with it and no command.
    fn removal(&self, params: &Params, stored: &StoredRegistration) -> (String, String);
}

/// Reads `stored` as `R`'s registration: the one parse of a stored registration.
fn typed<R: Registrar + ?Sized>(registrar: &R, stored: &StoredRegistration) -> Result<R::Id, RegistrationError> {
    R::Id::parse(stored.as_str()).ok_or_else(|| {
        let shown: String = stored.as_str().chars().take(120).collect();
        RegistrationError::Unreadable(format!(
            "the stored registration {shown:?} of source {} cannot be read (expected {}): the hook config was \
             changed by hand or not made by this feed; remove the registration at the producer by hand",
            registrar.name(),
            R::Id::FORM
        ))
    })
}

fn stored<I: RegistrationId>(id: I) -> StoredRegistration {
    StoredRegistration(id.to_stored())
}

impl<R: Registrar> AnyRegistrar for R {
    fn name(&self) -> &'static str {
        Registrar::name(self)
    }
    fn params(&self) -> &'static [ParamSpec] {
        Registrar::params(self)
    }
    fn validate(&self, params: &Params) -> Result<(), ParamError> {
        Registrar::validate(self, params)
    }
    fn register(&self, params: &Params, endpoint: &Endpoint) -> Result<Option<StoredRegistration>, RegistrationError> {
        Ok(Registrar::register(self, params, endpoint)?.map(stored))
    }
    fn update(
        &self,
        params: &Params,
        old: &StoredRegistration,
        endpoint: &Endpoint,
    ) -> Option<Result<StoredRegistration, RegistrationError>> {
        let id = typed(self, old).ok()?;
        Registrar::update(self, params, &id, endpoint).map(|r| r.map(stored))
    }
    fn unregister(&self, params: &Params, old: &StoredRegistration) -> Result<(), RegistrationError> {
        Registrar::unregister(self, params, &typed(self, old)?)
    }
    fn set_active(&self, params: &Params, old: &StoredRegistration, active: bool) -> Result<(), RegistrationError> {
        Registrar::set_active(self, params, &typed(self, old)?, active)
    }
    fn needs_token(&self, params: &Params) -> bool {
        Registrar::needs_token(self, params)
    }
    fn registration_config(&self, old: &StoredRegistration) -> Vec<(&'static str, Value)> {
        typed(self, old).map(|id| Registrar::registration_config(self, &id)).unwrap_or_default()
    }
    fn after_stored(
        &self,
        params: &Params,
        old: &StoredRegistration,
        endpoint: &Endpoint,
    ) -> Result<(), RegistrationError> {
        Registrar::after_stored(self, params, &typed(self, old)?, endpoint)
    }
    fn status(&self, params: &Params, old: &StoredRegistration, endpoint: &Endpoint) -> Option<Value> {
        match typed(self, old) {
            Ok(id) => Registrar::status(self, params, &id, endpoint),
            Err(e) => Some(serde_json::json!({ "problem": e.to_string() })),
        }
    }
    fn removal(&self, params: &Params, old: &StoredRegistration) -> (String, String) {
        match typed(self, old) {
            Ok(id) => Registrar::removal(self, params, &id),
            Err(e) => (format!("unknown: {e}"), String::new()),
        }
    }
}

/// The `none` source's registration: there never is one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoRegistration {}

impl RegistrationId for NoRegistration {
    const FORM: &'static str = "nothing: source none registers nothing";
    fn parse(_: &str) -> Option<NoRegistration> {
        None
    }
    fn to_stored(&self) -> String {
        match *self {}
    }
}

/// The `none` source: nothing is registered, the user configures the producer.
pub struct Unregistered;

impl Registrar for Unregistered {
    type Id = NoRegistration;
    fn name(&self) -> &'static str {
        "none"
    }
    fn params(&self) -> &'static [ParamSpec] {
        &[]
    }
    fn validate(&self, _: &Params) -> Result<(), ParamError> {
        Ok(())
    }
    fn register(&self, _: &Params, _: &Endpoint) -> Result<Option<NoRegistration>, RegistrationError> {
        Ok(None)
    }
    fn unregister(&self, _: &Params, id: &NoRegistration) -> Result<(), RegistrationError> {
        match *id {}
    }
    fn set_active(&self, _: &Params, id: &NoRegistration, _: bool) -> Result<(), RegistrationError> {
        match *id {}
    }
    fn removal(&self, _: &Params, id: &NoRegistration) -> (String, String) {
        match *id {}
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
/// It is a thin layer over the crate's one HTTP edge, `http::HttpClient`.
pub struct Http {
    client: HttpClient,
}

impl Default for Http {
    fn default() -> Self {
        Http::new()
    }
}

/// The largest producer answer read.
const MAX_REPLY: u64 = 1024 * 1024;
/// How producers see us (GitHub requires a user agent; tests tell our calls apart by it).
const USER_AGENT: &str = "owfeed-hooks";

impl Http {
    /// The process's one producer client (registrars are `const` registry entries, so they
    /// hold none of their own).
    pub fn shared() -> &'static Http {
        static SHARED: std::sync::OnceLock<Http> = std::sync::OnceLock::new();
        SHARED.get_or_init(Http::new)
    }

    /// A client with 5 s connect and 30 s overall timeouts and a 1 MiB answer limit.
    pub fn new() -> Http {
        let config = HttpConfig { request_time: Duration::from_secs(30), max_body: MAX_REPLY, ..HttpConfig::default() };
        // Only CA certificates can fail to parse, and the public roots need none.
        let client = HttpClient::new(config).expect("the default TLS configuration always builds");
        Http { client }
    }

    /// Sends one request; `what` names it in errors. `auth` is the whole `Authorization`
    /// value; `headers` go with it (the default `Accept` is `application/json`).
    pub fn send(&self, call: &Call<'_>) -> Result<Reply, RegistrationError> {
        let method = match call.method {
            Method::Get => http::Method::Get,
            Method::Post => http::Method::Post,
            Method::Patch => http::Method::Patch,
            Method::Delete => http::Method::Delete,
        };
        let mut request = Request::new(method, call.url, call.what).with_auth(call.auth.as_ref());
        request.headers.extend(call.headers.iter().copied());
        if !call.headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("user-agent")) {
            request.headers.push(("User-Agent", USER_AGENT));
        }
        if matches!(call.method, Method::Post | Method::Patch) {
            request.body = Body::Json(call.body.unwrap_or(&Value::Null));
        }
        let response = self.client.send(&request).map_err(|e| RegistrationError::Transport(e.to_string()))?;
        let body = if response.body.trim_ascii().is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&response.body)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&response.body).into_owned()))
        };
        Ok(Reply { status: response.status, body, headers: response.headers })
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;
    use std::sync::mpsc;
    use std::thread;

    /// A one-connection server that answers `answer` and hands back the request head and body.
    fn serve(answer: Vec<u8>) -> (String, mpsc::Receiver<(String, String)>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let (mut head, mut length) = (String::new(), 0);
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap();
                }
                head.push_str(&line);
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            tx.send((head.to_ascii_lowercase(), String::from_utf8(body).unwrap())).unwrap();
            let _ = (&stream).write_all(&answer);
        });
        (url, rx)
    }

    /// A registration of the form `n<digits>`, and a registrar that records the typed
    /// registrations it is handed.
    #[derive(Clone, Debug, PartialEq, Eq)]
    struct Numbered(u32);

    impl RegistrationId for Numbered {
        const FORM: &'static str = "n<digits>";
        fn parse(stored: &str) -> Option<Numbered> {
            stored.strip_prefix('n')?.parse().ok().map(Numbered)
        }
        fn to_stored(&self) -> String {
            format!("n{}", self.0)
        }
    }

    #[derive(Default)]
    struct Recording(std::sync::Mutex<Vec<(&'static str, u32)>>);

    impl Recording {
        fn saw(&self, call: &'static str, id: &Numbered) {
            self.0.lock().unwrap().push((call, id.0));
        }
    }

    impl Registrar for Recording {
        type Id = Numbered;
        fn name(&self) -> &'static str {
            "numbered"
        }
        fn params(&self) -> &'static [ParamSpec] {
            &[]
        }
        fn validate(&self, _: &Params) -> Result<(), ParamError> {
            Ok(())
        }
        fn register(&self, _: &Params, _: &Endpoint) -> Result<Option<Numbered>, RegistrationError> {
            Ok(Some(Numbered(7)))
        }
        fn update(&self, _: &Params, id: &Numbered, _: &Endpoint) -> Option<Result<Numbered, RegistrationError>> {
            self.saw("update", id);
            Some(Ok(Numbered(id.0 + 1)))
        }
        fn unregister(&self, _: &Params, id: &Numbered) -> Result<(), RegistrationError> {
            self.saw("unregister", id);
            Ok(())
        }
        fn set_active(&self, _: &Params, id: &Numbered, _: bool) -> Result<(), RegistrationError> {
            self.saw("set_active", id);
            Ok(())
        }
        fn registration_config(&self, id: &Numbered) -> Vec<(&'static str, Value)> {
            vec![("number", json!(id.0))]
        }
        fn status(&self, _: &Params, id: &Numbered, _: &Endpoint) -> Option<Value> {
            self.saw("status", id);
            Some(json!({"number": id.0}))
        }
        fn removal(&self, _: &Params, id: &Numbered) -> (String, String) {
            (format!("number {}", id.0), format!("rm {}", id.0))
        }
    }

    /// The feed's view (`AnyRegistrar`) hands each registrar its own typed registration, parsed
    /// from the stored string, and stores what it returns in the same form.
    #[test]
    fn a_stored_registration_reaches_its_registrar_typed_and_is_stored_back_as_it_was() {
        let (registrar, params) = (Recording::default(), Params::default());
        let endpoint = Endpoint { url: "https://r".into(), secret: Secret::new("registrar-typed"), active: true };
        let any: &dyn AnyRegistrar = &registrar;
        let made = any.register(&params, &endpoint).unwrap().unwrap();
        assert_eq!(made.as_str(), "n7");
        let stored = StoredRegistration::from_stored("n41").unwrap();
        assert_eq!(any.update(&params, &stored, &endpoint).unwrap().unwrap().as_str(), "n42");
        any.unregister(&params, &stored).unwrap();
        any.set_active(&params, &stored, false).unwrap();
        assert_eq!(any.status(&params, &stored, &endpoint), Some(json!({"number": 41})));
        assert_eq!(any.registration_config(&stored), vec![("number", json!(41))]);
        assert_eq!(any.removal(&params, &stored), ("number 41".to_string(), "rm 41".to_string()));
        assert_eq!(
            *registrar.0.lock().unwrap(),
            [("update", 41), ("unregister", 41), ("set_active", 41), ("status", 41)]
        );
        assert_eq!(StoredRegistration::from_stored(""), None);
    }

    /// A stored registration that does not parse never reaches the registrar: removing or
    /// pausing it is an error naming the source, the value and the form expected (never a
    /// silent success), READ's producer status and DELETE's `notRemoved` say the same, and
    /// UPDATE registers anew.
    #[test]
    fn a_stored_registration_that_does_not_parse_is_a_named_error() {
        let (registrar, params) = (Recording::default(), Params::default());
        let endpoint = Endpoint { url: "https://r".into(), secret: Secret::new("registrar-typed"), active: true };
        let any: &dyn AnyRegistrar = &registrar;
        let bad = StoredRegistration::from_stored("owfeed-1;topic=x").unwrap();
        let expected =
            "the stored registration \"owfeed-1;topic=x\" of source numbered cannot be read (expected n<digits>)";
        for err in [
            any.unregister(&params, &bad).unwrap_err(),
            any.set_active(&params, &bad, true).unwrap_err(),
            any.after_stored(&params, &bad, &endpoint).unwrap_err(),
        ] {
            assert!(matches!(&err, RegistrationError::Unreadable(m) if m.starts_with(expected)), "{err:?}");
        }
        let status = any.status(&params, &bad, &endpoint).unwrap();
        assert!(status["problem"].as_str().unwrap().starts_with(expected), "{status}");
        let (place, command) = any.removal(&params, &bad);
        assert!(place.starts_with(&format!("unknown: {expected}")) && command.is_empty(), "{place}");
        assert!(any.update(&params, &bad, &endpoint).is_none());
        assert!(any.registration_config(&bad).is_empty());
        assert!(registrar.0.lock().unwrap().is_empty());
        // Source none never stores one: any stored value is unreadable, never "removed".
        let none: &dyn AnyRegistrar = &Unregistered;
        let err = none.unregister(&params, &StoredRegistration::from_stored("42").unwrap()).unwrap_err();
        assert!(err.to_string().contains("of source none cannot be read"), "{err}");
    }

    fn call<'a>(method: Method, url: &'a str, body: Option<&'a Value>) -> Call<'a> {
        Call {
            method,
            url,
            auth: Some(Secret::new("Bearer registrar-test-token")),
            headers: &[],
            body,
            what: "create the hook",
            secrets: Vec::new(),
        }
    }

    #[test]
    fn a_call_goes_out_with_our_agent_json_and_auth_and_any_status_is_an_answer() {
        let _guard = crate::secret::TEST_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let answer = b"HTTP/1.1 422 Unprocessable\r\nX-Thing: a\r\nContent-Length: 17\r\n\r\n{\"message\":\"no\"}\n";
        let (url, rx) = serve(answer.to_vec());
        let doc = json!({"url": "https://r"});
        let reply = Http::new().send(&call(Method::Patch, &url, Some(&doc))).unwrap();
        assert_eq!((reply.status, &reply.body, reply.header("x-thing")), (422, &json!({"message": "no"}), Some("a")));
        let (head, sent) = rx.recv().unwrap();
        assert!(head.starts_with("patch / http/1.1"), "{head}");
        for line in [
            "user-agent: owfeed-hooks",
            "accept: application/json",
            "authorization: bearer registrar-test-token",
            "content-type: application/json",
        ] {
            assert!(head.contains(line), "{line} in {head}");
        }
        assert_eq!(sent, r#"{"url":"https://r"}"#);

        // A POST without a body sends JSON null; a non-JSON answer is a string, an empty one null.
        let (url, rx) = serve(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello".to_vec());
        assert_eq!(Http::new().send(&call(Method::Post, &url, None)).unwrap().body, json!("hello"));
        assert_eq!(rx.recv().unwrap().1, "null");
        let (url, _rx) = serve(b"HTTP/1.1 204 No Content\r\n\r\n".to_vec());
        assert_eq!(Http::new().send(&call(Method::Delete, &url, None)).unwrap().body, Value::Null);
        crate::secret::forget_all();
    }

    #[test]
    fn an_answer_over_one_mib_or_no_answer_is_a_transport_error_naming_the_call_only() {
        let _guard = crate::secret::TEST_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let mut big = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", MAX_REPLY + 1).into_bytes();
        big.resize(big.len() + MAX_REPLY as usize + 1, b' ');
        let (url, _rx) = serve(big);
        let err = Http::new().send(&call(Method::Get, &url, None)).unwrap_err();
        assert!(matches!(&err, RegistrationError::Transport(m) if m.starts_with("create the hook: ")), "{err:?}");

        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let url = format!("http://127.0.0.1:{port}/hooks?access_token=registrar-query-token");
        Secret::new("registrar-query-token");
        let err = Http::new().send(&call(Method::Get, &url, None)).unwrap_err();
        assert!(matches!(&err, RegistrationError::Transport(m) if m.starts_with("create the hook: ")), "{err:?}");
        assert!(!err.to_string().contains("registrar-") && !err.to_string().contains("127.0.0.1"), "{err}");
        crate::secret::forget_all();
    }
}
