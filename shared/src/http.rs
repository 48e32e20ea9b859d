//! The one HTTP edge for plugins and registrars that speak plain HTTP(S) (CouchDB, web
//! resources, producer APIs): a small blocking client over ureq.
//!
//! It owns what every such caller needs and gets wrong alone: TLS from the user's
//! `caCertificate`/`insecureSkipTlsVerify` (`HttpTls`), bounded connect and request times,
//! a per-request deadline (a long poll ends at it with `HttpError::Timeout`), a body size
//! limit, JSON bodies, and the classification of a failure into a `SourceError` a user can
//! act on. Any status is an answer (`Response`); the caller decides what it means, and
//! `Response::error` says it in the usual words.
//!
//! Messages are secret-safe by construction: they name the request by the caller's `what`
//! (never its URL, which may carry user-info or a token in the query), never quote a
//! response body (servers echo requests back), and pass through `secret::redact_text`. A URL
//! with user-info is refused before anything is sent: credentials go in `Request::auth`.
//! It knows nothing about feeds.

use std::fmt;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::params::{ParamError, Params};
use crate::secret::{self, Secret};
use crate::source::SourceError;

/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest a request may take when it has no deadline of its own.
const DEFAULT_REQUEST_TIME: Duration = Duration::from_secs(30);
/// The largest body read by default.
const DEFAULT_MAX_BODY: u64 = 32 * 1024 * 1024;

/// How a server's certificate is checked: configuration, never code.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HttpTls {
    /// PEM certificates trusted instead of the public roots.
    pub ca_pem: Option<String>,
    /// No verification at all.
    pub insecure: bool,
    /// The parameter names, for messages: (CA certificate, skip verification).
    names: (&'static str, &'static str),
}

/// The usual parameter names of `HttpTls`.
pub const TLS_PARAMS: [&str; 2] = ["caCertificate", "insecureSkipTlsVerify"];

impl HttpTls {
    /// Reads `caCertificate` (PEM) and `insecureSkipTlsVerify`; errors name them.
    pub fn from_params(params: &Params) -> Result<HttpTls, ParamError> {
        HttpTls::from_named_params(params, TLS_PARAMS[0], TLS_PARAMS[1])
    }

    /// The same under other parameter names.
    fn from_named_params(params: &Params, ca: &'static str, insecure: &'static str) -> Result<HttpTls, ParamError> {
        let ca_pem = params.str(ca)?.filter(|c| !c.trim().is_empty());
        let tls = HttpTls { ca_pem, insecure: params.bool(insecure)?.unwrap_or(false), names: (ca, insecure) };
        tls.config().map_err(|e| ParamError {
            name: ca.to_string(),
            expected: format!("PEM certificates ({e})"),
            got: None,
        })?;
        Ok(tls)
    }

    fn config(&self) -> Result<ureq::tls::TlsConfig, String> {
        owfeed_s3::tls_config(self.ca_pem.as_deref(), self.insecure, self.names().0)
    }

    fn names(&self) -> (&'static str, &'static str) {
        if self.names.0.is_empty() {
            (TLS_PARAMS[0], TLS_PARAMS[1])
        } else {
            self.names
        }
    }

    /// What CREATE and READ say about it (`notices`), when it is not the default.
    pub fn notice(&self, server: &str) -> Option<String> {
        let (ca, insecure) = self.names();
        if self.insecure {
            Some(format!("{insecure}: the certificate of {server} is NOT verified; prefer -p {ca} with its CA"))
        } else {
            self.ca_pem.as_ref().map(|pem| {
                format!(
                    "{ca}: {server} is verified against the {} certificate(s) given",
                    pem.matches("-----BEGIN CERTIFICATE-----").count()
                )
            })
        }
    }
}

/// An HTTP method.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// GET.
    Get,
    /// HEAD.
    Head,
    /// PUT.
    Put,
    /// POST.
    Post,
    /// PATCH.
    Patch,
    /// DELETE.
    Delete,
}

/// A request body.
#[derive(Clone, Debug, PartialEq)]
pub enum Body<'a> {
    /// No body.
    Empty,
    /// JSON, sent with `Content-Type: application/json`.
    Json(&'a Value),
    /// An HTML form (`application/x-www-form-urlencoded`); values may be secrets.
    Form(&'a [(&'a str, &'a str)]),
    /// Raw bytes with their content type.
    Bytes(&'a [u8], &'a str),
}

/// One request. Build it with `Request::get(url, what)` and the `with_…` methods.
#[derive(Clone, Debug)]
pub struct Request<'a> {
    /// The method.
    pub method: Method,
    /// The URL, without user-info.
    pub url: &'a str,
    /// Names the request in every message ("CouchDB database 'orders'"): never the URL.
    pub what: &'a str,
    /// Query pairs, percent-encoded when sent.
    pub query: Vec<(&'a str, &'a str)>,
    /// Extra headers (`If-None-Match`, …); `Accept` defaults to `application/json`.
    pub headers: Vec<(&'a str, &'a str)>,
    /// The whole `Authorization` value (`Basic …`, `Bearer …`).
    pub auth: Option<&'a Secret>,
    /// The body.
    pub body: Body<'a>,
    /// The request ends by this instant (`HttpError::Timeout`), if it is earlier than the
    /// client's own limit.
    pub deadline: Option<Instant>,
}

impl<'a> Request<'a> {
    /// A request with no query, headers, auth, body or deadline.
    pub fn new(method: Method, url: &'a str, what: &'a str) -> Request<'a> {
        Request {
            method,
            url,
            what,
            query: Vec::new(),
            headers: Vec::new(),
            auth: None,
            body: Body::Empty,
            deadline: None,
        }
    }

    /// A GET.
    pub fn get(url: &'a str, what: &'a str) -> Request<'a> {
        Request::new(Method::Get, url, what)
    }

    /// Adds a query pair.
    pub fn with_query(mut self, name: &'a str, value: &'a str) -> Request<'a> {
        self.query.push((name, value));
        self
    }

    /// Adds a header.
    pub fn with_header(mut self, name: &'a str, value: &'a str) -> Request<'a> {
        self.headers.push((name, value));
        self
    }

    /// Sets the whole `Authorization` value.
    pub fn with_auth(mut self, auth: Option<&'a Secret>) -> Request<'a> {
        self.auth = auth;
        self
    }

    /// Sets the body.
    pub fn with_body(mut self, body: Body<'a>) -> Request<'a> {
        self.body = body;
        self
    }

    /// Ends the request by `deadline`.
    pub fn until(mut self, deadline: Option<Instant>) -> Request<'a> {
        self.deadline = deadline;
        self
    }
}

/// An answer of any status.
#[derive(Clone, Debug, PartialEq)]
pub struct Response {
    /// The HTTP status.
    pub status: u16,
    /// Headers, names lowercased.
    pub headers: Vec<(String, String)>,
    /// The whole body.
    pub body: Vec<u8>,
    /// The request's `what`, for messages.
    what: String,
}

impl Response {
    /// The first value of a header (name in any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// True for 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body as JSON; an unparsable body is a `Transient` error that does not quote it.
    pub fn json(&self) -> Result<Value, SourceError> {
        serde_json::from_slice(&self.body).map_err(|e| {
            SourceError::Transient(clean(&format!(
                "{}: the answer (HTTP {}, {} bytes) is not JSON ({:?} error at line {} column {}): retried next time",
                self.what,
                self.status,
                self.body.len(),
                e.classify(),
                e.line(),
                e.column()
            )))
        })
    }

    /// A short server-written reason (`reason`, `message` or `error` of a JSON body), for
    /// callers whose server writes its own words there rather than echoing the request.
    /// Shortened and scrubbed of known secrets.
    pub fn reason(&self) -> Option<String> {
        let body: Value = serde_json::from_slice(&self.body).ok()?;
        let text = ["reason", "message", "error"].iter().find_map(|k| body.get(*k).and_then(Value::as_str))?;
        // Scrubbed before it is cut: a secret cut in half would no longer be recognised.
        let text: String = clean(text.trim()).chars().take(200).collect();
        Some(text).filter(|t| !t.is_empty())
    }

    /// This answer as the usual error: 401/403 `Unauthorized`, 404/410 `NotFound`, 408/429
    /// and 5xx `Transient`, any other status `Config`. Quotes no body.
    pub fn error(&self) -> SourceError {
        status_error(self.status, &self.what)
    }

    /// The body as JSON when the status is 2xx, else `error()`.
    pub fn ok_json(&self) -> Result<Value, SourceError> {
        if self.is_success() {
            self.json()
        } else {
            Err(self.error())
        }
    }
}

/// The usual error for a non-2xx status of the request `what`.
pub fn status_error(status: u16, what: &str) -> SourceError {
    let what = clean(what);
    match status {
        401 | 403 => {
            SourceError::Unauthorized(format!("{what}: not authorized (HTTP {status}): check the credentials"))
        }
        404 | 410 => SourceError::NotFound(format!("{what}: not found (HTTP {status})")),
        408 | 429 | 500..=599 => {
            SourceError::Transient(format!("{what}: server busy or failing (HTTP {status}): retried next time"))
        }
        _ => SourceError::Config(format!("{what}: request rejected (HTTP {status})")),
    }
}

/// A request that got no (whole) answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HttpError {
    /// The deadline or the client's limit passed while waiting for (or reading) the answer:
    /// for a long poll, nothing new. Failing to connect in time is `Transport`.
    Timeout(String),
    /// TLS failed: the user must fix the certificate settings or the scheme.
    Tls(String),
    /// Refused before sending (a URL with user-info, an unusable URL).
    Invalid(String),
    /// No answer, or the body was cut or too large.
    Transport(String),
}

impl HttpError {
    /// The message.
    pub fn message(&self) -> &str {
        match self {
            HttpError::Timeout(m) | HttpError::Tls(m) | HttpError::Invalid(m) | HttpError::Transport(m) => m,
        }
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for HttpError {}

impl From<HttpError> for SourceError {
    fn from(e: HttpError) -> SourceError {
        match e {
            HttpError::Timeout(m) | HttpError::Transport(m) => SourceError::Transient(m),
            HttpError::Tls(m) | HttpError::Invalid(m) => SourceError::Config(m),
        }
    }
}

/// How a client is built.
#[derive(Clone, Debug)]
pub struct HttpConfig {
    /// Certificate checking.
    pub tls: HttpTls,
    /// The longest any request may take (a request's own deadline may only shorten it).
    pub request_time: Duration,
    /// The largest body read.
    pub max_body: u64,
    /// Follow redirects (ureq's: up to 10, dropping `Authorization` across hosts but keeping
    /// every other header). Off, a 3xx is an answer like any other, for a caller that decides
    /// itself where its headers may go (`sources::http`).
    pub follow_redirects: bool,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            tls: HttpTls::default(),
            request_time: DEFAULT_REQUEST_TIME,
            max_body: DEFAULT_MAX_BODY,
            follow_redirects: true,
        }
    }
}

/// A blocking HTTP(S) client: statuses are answers, failures are `HttpError`s.
pub struct HttpClient {
    agent: ureq::Agent,
    config: HttpConfig,
}

impl fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClient").field("config", &self.config).finish_non_exhaustive()
    }
}

impl HttpClient {
    /// A client; fails (naming the TLS parameter) when the CA certificates do not parse.
    pub fn new(config: HttpConfig) -> Result<HttpClient, String> {
        let mut builder = ureq::Agent::config_builder();
        if config.tls != HttpTls::default() {
            builder = builder.tls_config(config.tls.config()?);
        }
        if !config.follow_redirects {
            builder = builder.max_redirects(0);
        }
        let agent = owfeed_s3::http_agent(
            builder
                .http_status_as_error(false)
                .timeout_connect(Some(CONNECT_TIMEOUT))
                .timeout_global(Some(config.request_time))
                .user_agent("owfeed")
                .build(),
        );
        Ok(HttpClient { agent, config })
    }

    /// Sends one request and reads the whole answer within the size limit and the deadline.
    pub fn send(&self, request: &Request<'_>) -> Result<Response, HttpError> {
        let what = clean(request.what);
        if has_userinfo(request.url) {
            return Err(HttpError::Invalid(format!(
                "{what}: the URL holds credentials (user-info); give them as parameters instead"
            )));
        }
        let time = self.request_time(request.deadline);
        if time.is_zero() {
            return Err(HttpError::Timeout(format!("{what}: no time left before the deadline")));
        }
        let result = match request.method {
            Method::Get | Method::Head | Method::Delete => {
                let builder = match request.method {
                    Method::Get => self.agent.get(request.url),
                    Method::Head => self.agent.head(request.url),
                    _ => self.agent.delete(request.url),
                };
                prepare(builder, request, time).call()
            }
            Method::Put | Method::Post | Method::Patch => {
                let builder = match request.method {
                    Method::Put => self.agent.put(request.url),
                    Method::Post => self.agent.post(request.url),
                    _ => self.agent.patch(request.url),
                };
                let builder = prepare(builder, request, time);
                match &request.body {
                    Body::Empty => builder.send_empty(),
                    // Value's Display is compact and not generic (ureq's send_json pretty-prints).
                    Body::Json(v) => builder.header("Content-Type", "application/json").send(v.to_string()),
                    Body::Form(pairs) => builder.send_form(pairs.iter().copied()),
                    Body::Bytes(bytes, content_type) => builder.header("Content-Type", *content_type).send(*bytes),
                }
            }
        };
        let mut response = result.map_err(|e| self.failure(&what, request, e))?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_ascii_lowercase(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect();
        let body = if request.method == Method::Head {
            Vec::new()
        } else {
            response
                .body_mut()
                .with_config()
                .limit(self.config.max_body)
                .read_to_vec()
                .map_err(|e| self.failure(&what, request, e))?
        };
        Ok(Response { status, headers, body, what })
    }

    /// Sends a request and returns its JSON body when the status is 2xx; any failure is a
    /// `SourceError`.
    pub fn json(&self, request: &Request<'_>) -> Result<Value, SourceError> {
        self.send(request)?.ok_json()
    }

    fn request_time(&self, deadline: Option<Instant>) -> Duration {
        match deadline {
            Some(d) => d.saturating_duration_since(Instant::now()).min(self.config.request_time),
            None => self.config.request_time,
        }
    }

    fn failure(&self, what: &str, request: &Request<'_>, error: ureq::Error) -> HttpError {
        let https = request.url.starts_with("https://");
        let (ca, insecure) = self.config.tls.names();
        let tls_advice = if self.config.tls.ca_pem.is_some() {
            format!("check the scheme, and that {ca} holds the CA that signed the server's certificate")
        } else {
            format!("check the scheme; for a private CA or a self-signed certificate give the CA's PEM as -p {ca} (or, not recommended, -p {insecure} true)")
        };
        let message = |m: String| clean(&m);
        match &error {
            // No connection is not a quiet wait: a long poll must not read it as "nothing new".
            ureq::Error::Timeout(ureq::Timeout::Connect | ureq::Timeout::Resolve) => HttpError::Transport(message(
                format!("{what}: no connection within {} s (host unreachable?)", CONNECT_TIMEOUT.as_secs()),
            )),
            ureq::Error::Timeout(_) => HttpError::Timeout(message(format!(
                "{what}: no answer within {} ms",
                self.request_time(request.deadline).max(Duration::from_millis(1)).as_millis()
            ))),
            ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => {
                HttpError::Timeout(message(format!("{what}: no answer in time")))
            }
            ureq::Error::Tls(_) | ureq::Error::Rustls(_) | ureq::Error::TlsRequired => {
                HttpError::Tls(message(format!("{what}: TLS: {error}: {tls_advice}")))
            }
            // rustls reports handshake and certificate failures as InvalidData I/O errors.
            ureq::Error::Io(io) if https && io.kind() == std::io::ErrorKind::InvalidData => {
                HttpError::Tls(message(format!("{what}: TLS: {io}: {tls_advice}")))
            }
            ureq::Error::HostNotFound => HttpError::Transport(message(format!("{what}: host not found (DNS)"))),
            ureq::Error::BodyExceedsLimit(limit) => {
                HttpError::Transport(message(format!("{what}: the answer is larger than the {limit}-byte limit")))
            }
            ureq::Error::BadUri(_) | ureq::Error::Http(_) => {
                HttpError::Invalid(message(format!("{what}: not a usable URL")))
            }
            ureq::Error::Protocol(_) => HttpError::Transport(message(format!(
                "{what}: the server did not speak HTTP: check the scheme and port"
            ))),
            _ => HttpError::Transport(message(format!("{what}: {error}"))),
        }
    }
}

/// Applies what every request carries: its time limit, `Accept`, headers, auth and query.
fn prepare<B>(builder: ureq::RequestBuilder<B>, request: &Request<'_>, time: Duration) -> ureq::RequestBuilder<B> {
    let mut builder = builder.config().timeout_global(Some(time)).build();
    if !request.headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("accept")) {
        builder = builder.header("Accept", "application/json");
    }
    for (k, v) in &request.headers {
        builder = builder.header(*k, *v);
    }
    if let Some(auth) = request.auth {
        builder = builder.header("Authorization", auth.expose());
    }
    builder.query_pairs(request.query.iter().copied())
}

/// True when `url`'s authority holds user-info (`scheme://user:pass@host`).
pub fn has_userinfo(url: &str) -> bool {
    url.split_once("://").is_some_and(|(_, rest)| rest.split(['/', '?', '#']).next().is_some_and(|a| a.contains('@')))
}

/// `url` as it may be shown: no user-info, no query, no fragment.
pub fn display_url(url: &str) -> String {
    let no_query = url.split(['?', '#']).next().unwrap_or_default();
    match no_query.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            format!("{scheme}://{host}{path}")
        }
        None => no_query.to_string(),
    }
}

/// The origin of an `http(s)` URL (RFC 6454: scheme, host, port), normalised:
/// `https://host:443`. `None` for anything else (another scheme, no host, user-info).
pub fn origin(url: &str) -> Option<String> {
    let uri: ureq::http::Uri = url.trim().parse().ok()?;
    let scheme = uri.scheme_str()?.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => 80,
        "https" => 443,
        _ => return None,
    };
    let authority = uri.authority()?;
    if authority.as_str().contains('@') || authority.host().is_empty() {
        return None;
    }
    let port = authority.port_u16().unwrap_or(default_port);
    Some(format!("{scheme}://{}:{port}", authority.host().to_ascii_lowercase()))
}

/// Where a redirect's `Location` leads from `base`: absolute, scheme-relative (`//host/p`),
/// absolute-path (`/p`) or relative to `base`'s directory (RFC 9110 10.2.2, RFC 3986 5.2,
/// without dot-segment removal, which the server does). `None` when it is not an `http(s)`
/// URL. The fragment is dropped.
pub fn resolve_location(base: &str, location: &str) -> Option<String> {
    let location = location.trim().split('#').next().unwrap_or_default();
    let base_origin = base.split_once("://").map(|(scheme, rest)| {
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        (scheme, &rest[..authority_end], &rest[authority_end..])
    })?;
    let (scheme, authority, path) = base_origin;
    let has_scheme = location.split_once(':').is_some_and(|(s, _)| {
        s.starts_with(|c: char| c.is_ascii_alphabetic())
            && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    });
    let resolved = if has_scheme {
        location.to_string()
    } else if let Some(rest) = location.strip_prefix("//") {
        format!("{scheme}://{rest}")
    } else if location.starts_with('/') {
        format!("{scheme}://{authority}{location}")
    } else {
        let path = path.split(['?', '#']).next().unwrap_or_default();
        let dir = &path[..path.rfind('/').map_or(0, |i| i + 1)];
        let dir = if dir.is_empty() { "/" } else { dir };
        format!("{scheme}://{authority}{dir}{location}")
    };
    origin(&resolved).map(|_| resolved)
}

/// A `Basic` `Authorization` value for a user and password.
pub fn basic_auth(user: &str, password: &Secret) -> Secret {
    use base64::Engine as _;
    let pair = format!("{user}:{}", password.expose());
    // The pair's base64 form alone is what a server echoing the header would show.
    secret::remember(&pair);
    Secret::new(format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair)))
}

/// A `Bearer` `Authorization` value for a token.
pub fn bearer(token: &Secret) -> Secret {
    Secret::new(format!("Bearer {}", token.expose()))
}

/// A message scrubbed of user-info and every known secret.
fn clean(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for (i, word) in text.split(' ').enumerate() {
        if i > 0 {
            out.push(' ');
        }
        if has_userinfo(word) {
            out.push_str(&display_url(word));
        } else {
            out.push_str(word);
        }
    }
    secret::redact_text(&out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;
    use std::sync::mpsc;
    use std::thread;

    /// A one-connection HTTP server on 127.0.0.1:0 that answers `answer` after `delay` and
    /// hands back the request head and body it received.
    fn serve(answer: &'static str, delay: Duration) -> (String, mpsc::Receiver<(String, String)>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut head = String::new();
            let mut length = 0;
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
            tx.send((head, String::from_utf8(body).unwrap())).unwrap();
            thread::sleep(delay);
            let _ = (&stream).write_all(answer.as_bytes());
            // Held open a while: a body shorter than its Content-Length is then a wait, not a cut.
            thread::sleep(Duration::from_secs(2));
        });
        (url, rx)
    }

    fn client() -> HttpClient {
        HttpClient::new(HttpConfig::default()).unwrap()
    }

    #[test]
    fn a_json_request_carries_auth_query_headers_and_body() {
        let _guard = crate::secret::TEST_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let (url, rx) =
            serve("HTTP/1.1 201 Created\r\nETag: \"v1\"\r\nContent-Length: 11\r\n\r\n{\"ok\":true}", Duration::ZERO);
        let url = format!("{url}/db/doc");
        let auth = basic_auth("admin", &Secret::new("http-test-pw"));
        let body = json!({"a": 1});
        let request = Request::new(Method::Put, &url, "CouchDB document 'doc'")
            .with_query("since", "12-g1AA+/=")
            .with_header("If-None-Match", "\"v0\"")
            .with_auth(Some(&auth))
            .with_body(Body::Json(&body));
        let response = client().send(&request).unwrap();
        assert_eq!((response.status, response.header("ETAG")), (201, Some("\"v1\"")));
        assert_eq!(response.ok_json().unwrap(), json!({"ok": true}));
        let (head, sent) = rx.recv().unwrap();
        assert!(head.starts_with("PUT /db/doc?since=12-g1AA%2B%2F%3D HTTP/1.1"), "{head}");
        let head = head.to_ascii_lowercase();
        assert!(head.contains("authorization: basic ywrtaw46ahr0cc10zxn0lxb3"), "{head}");
        assert!(head.contains("if-none-match: \"v0\""), "{head}");
        assert!(head.contains("content-type: application/json"), "{head}");
        assert!(head.contains("accept: application/json"), "{head}");
        assert_eq!(sent, r#"{"a":1}"#);
        crate::secret::forget_all();
    }

    #[test]
    fn statuses_become_errors_a_user_can_act_on_without_quoting_the_body() {
        let _guard = crate::secret::TEST_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        #[track_caller]
        fn check(status: u16, expected: SourceError) {
            let response = Response {
                status,
                headers: Vec::new(),
                body: br#"{"error":"echo","reason":"you sent hunter2"}"#.to_vec(),
                what: "CouchDB database 'db'".into(),
            };
            assert_eq!(response.ok_json(), Err(expected));
        }
        check(
            401,
            SourceError::Unauthorized("CouchDB database 'db': not authorized (HTTP 401): check the credentials".into()),
        );
        check(
            403,
            SourceError::Unauthorized("CouchDB database 'db': not authorized (HTTP 403): check the credentials".into()),
        );
        check(404, SourceError::NotFound("CouchDB database 'db': not found (HTTP 404)".into()));
        check(410, SourceError::NotFound("CouchDB database 'db': not found (HTTP 410)".into()));
        check(
            429,
            SourceError::Transient(
                "CouchDB database 'db': server busy or failing (HTTP 429): retried next time".into(),
            ),
        );
        check(
            503,
            SourceError::Transient(
                "CouchDB database 'db': server busy or failing (HTTP 503): retried next time".into(),
            ),
        );
        check(400, SourceError::Config("CouchDB database 'db': request rejected (HTTP 400)".into()));
        // reason() is opt-in and scrubbed of known secrets.
        Secret::new("hunter2");
        let response = Response {
            status: 400,
            headers: Vec::new(),
            body: br#"{"reason":"you sent hunter2"}"#.to_vec(),
            what: String::new(),
        };
        assert_eq!(response.reason().as_deref(), Some("you sent [redacted]"));
        // A secret where the reason is cut is scrubbed whole, not cut in half first.
        let long = format!("{{\"reason\":\"{}hunter2\"}}", "x".repeat(196));
        let response = Response { status: 400, headers: Vec::new(), body: long.into_bytes(), what: String::new() };
        assert!(!response.reason().unwrap().contains("hunt"), "{:?}", response.reason());
        crate::secret::forget_all();
    }

    #[test]
    fn a_body_that_is_not_json_is_transient_and_not_quoted() {
        let response = Response { status: 200, headers: Vec::new(), body: b"<html>secret".to_vec(), what: "w".into() };
        let err = response.json().unwrap_err();
        assert!(matches!(err, SourceError::Transient(_)), "{err:?}");
        assert!(!err.message().contains("secret"), "{err}");
    }

    #[test]
    fn a_request_ends_at_its_deadline() {
        let (url, _rx) = serve("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}", Duration::from_secs(5));
        let start = Instant::now();
        let request = Request::get(&url, "long poll").until(Some(start + Duration::from_millis(300)));
        let err = client().send(&request).unwrap_err();
        assert!(matches!(err, HttpError::Timeout(_)), "{err:?}");
        assert!(start.elapsed() < Duration::from_secs(2), "{:?}", start.elapsed());
        let past = Request::get(&url, "late").until(Some(Instant::now() - Duration::from_millis(1)));
        assert!(matches!(client().send(&past), Err(HttpError::Timeout(_))));
    }

    #[test]
    fn a_body_cut_by_the_deadline_is_a_timeout() {
        // Headers at once, then nothing: what a long poll with no change looks like.
        let (url, _rx) = serve("HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n{\"results\":[", Duration::ZERO);
        let request = Request::get(&url, "long poll").until(Some(Instant::now() + Duration::from_millis(300)));
        let err = client().send(&request).unwrap_err();
        assert!(matches!(err, HttpError::Timeout(_)), "{err:?}");
    }

    #[test]
    fn a_url_with_credentials_is_refused_and_never_shown() {
        let err = client().send(&Request::get("http://admin:pw@127.0.0.1:1/db", "CouchDB")).unwrap_err();
        assert!(matches!(err, HttpError::Invalid(_)), "{err:?}");
        assert!(!err.message().contains("pw"), "{err}");
        assert_eq!(display_url("https://u:p@host:5984/db?token=x#f"), "https://host:5984/db");
        assert_eq!(display_url("http://host/db"), "http://host/db");
        assert_eq!(clean("at http://u:p@h/x now"), "at http://h/x now");
    }

    #[test]
    fn origins_and_redirect_locations() {
        assert_eq!(origin("https://Example.COM/a?b").as_deref(), Some("https://example.com:443"));
        assert_eq!(origin("http://h:8080").as_deref(), Some("http://h:8080"));
        assert_eq!(origin("http://h:80/x"), origin("http://h/y"));
        assert_ne!(origin("http://h/x"), origin("https://h/x"));
        assert_eq!(origin("ftp://h/x"), None);
        assert_eq!(origin("https://u:p@h/x"), None);
        assert_eq!(origin("not a url"), None);
        let base = "https://h:8443/dir/page.json?q=1";
        for (location, expected) in [
            ("https://other/x", Some("https://other/x")),
            ("//other:81/x", Some("https://other:81/x")),
            ("/root", Some("https://h:8443/root")),
            ("sibling?x=1#frag", Some("https://h:8443/dir/sibling?x=1")),
            ("ftp://other/x", None),
            ("javascript:alert(1)", None),
        ] {
            assert_eq!(resolve_location(base, location).as_deref(), expected, "{location}");
        }
        assert_eq!(resolve_location("http://h", "x").as_deref(), Some("http://h/x"));
    }

    #[test]
    fn an_unreachable_server_is_transient() {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let url = format!("http://127.0.0.1:{port}/");
        let err: SourceError = client().send(&Request::get(&url, "CouchDB")).unwrap_err().into();
        assert!(matches!(err, SourceError::Transient(_)), "{err:?}");
        assert!(err.message().starts_with("CouchDB: "), "{err}");
    }

    #[test]
    fn tls_parameters_are_validated_by_name_and_noticed() {
        let params = Params::from_value(json!({"caCertificate": "nope"})).unwrap();
        let err = HttpTls::from_params(&params).unwrap_err();
        assert_eq!(err.name, "caCertificate");
        let params = Params::from_value(json!({"insecureSkipTlsVerify": "maybe"})).unwrap();
        assert_eq!(HttpTls::from_params(&params).unwrap_err().name, "insecureSkipTlsVerify");
        let params = Params::from_value(json!({"insecureSkipTlsVerify": true})).unwrap();
        let tls = HttpTls::from_params(&params).unwrap();
        assert_eq!(
            tls.notice("CouchDB at https://h").unwrap(),
            "insecureSkipTlsVerify: the certificate of CouchDB at https://h is NOT verified; prefer -p caCertificate with its CA"
        );
        assert_eq!(HttpTls::default().notice("x"), None);
        assert!(HttpClient::new(HttpConfig { tls, ..HttpConfig::default() }).is_ok());
    }
}
