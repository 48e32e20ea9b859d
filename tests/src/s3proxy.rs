//! A fault-injecting HTTP proxy to put in front of a real S3 server.
//!
//! It forwards every request byte for byte (Host header included, so SigV4 signatures still
//! verify upstream) and, when a rule matches, answers with a fault instead: a status code,
//! invalid XML, a cut-off body, a delay, or a hang that never reaches upstream. Rules can let
//! the first N matching requests through, so a fault lands in the middle of a paginated listing.
//!
//! It can also play a store with another conditional-write dialect (`Conditionals`): refuse
//! the quoted `If-Match`, or ignore `If-Match` or every conditional header. Changing a signed
//! header breaks SigV4, so those requests are re-signed with the upstream's credentials.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use owfeed_s3::S3Config;

/// Marks the log lines of upstream answers (`FaultProxy::answered`), which `count` skips.
const ANSWERED: &str = "=> ";

/// What a matching request gets instead of the upstream answer.
#[derive(Clone, Debug, PartialEq)]
pub enum Fault {
    /// This status with an S3 `<Error>` body.
    Status(u16),
    /// 200 with a body that is not XML.
    InvalidXml,
    /// 200 with the first half of the upstream body (a cut listing).
    Truncated,
    /// The upstream answer, after this delay.
    Delay(Duration),
    /// No answer for this long, then a 503; the request never reaches upstream. Held past an
    /// action's time limit, it is a process killed before this request took effect.
    Hang(Duration),
    /// The upstream listing page without the object with this key (a server that loses a key
    /// across page boundaries).
    OmitKey(&'static str),
    /// The upstream listing page with every second object left out (a half-empty listing).
    HalfKeys,
}

/// When to inject a fault.
#[derive(Clone, Debug)]
pub struct Rule {
    /// The request's method must be this (`GET`, `PUT`…).
    pub method: &'static str,
    /// The request's path-and-query must contain this (`list-type=2` for listings).
    pub contains: &'static str,
    /// Let this many matching requests through first.
    pub skip: usize,
    /// Then fault this many (after which the rule is spent).
    pub count: usize,
    /// The fault.
    pub fault: Fault,
}

/// How the proxy treats conditional PUTs: the dialects of real stores.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Conditionals {
    /// Forwarded as sent.
    Honest,
    /// `If-Match: "<etag>"` always answers 412; `If-Match: <etag>` works (DigitalOcean Spaces
    /// and an on-prem store seen in the field).
    QuotedIfMatchRefused,
    /// `If-Match` is dropped, `If-None-Match` honoured.
    IfMatchIgnored,
    /// Both conditional headers are dropped (stores that honour them only on reads).
    AllIgnored,
    /// Any conditional PUT answers `400 NotImplemented` (Alibaba OSS).
    NotImplemented,
}

/// The dialect and the credentials to re-sign rewritten requests with.
type DialectSetting = Option<(Conditionals, S3Config)>;

/// A running proxy; stops serving when dropped.
pub struct FaultProxy {
    url: String,
    rules: Arc<Mutex<Vec<Rule>>>,
    log: Arc<Mutex<Vec<String>>>,
    dialect: Arc<Mutex<DialectSetting>>,
    server: Arc<tiny_http::Server>,
}

impl FaultProxy {
    /// Starts a proxy on 127.0.0.1 forwarding to `upstream` (`http://127.0.0.1:PORT`).
    pub fn start(upstream: &str) -> anyhow::Result<FaultProxy> {
        let upstream_addr = upstream.trim_start_matches("http://").trim_end_matches('/').to_string();
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").map_err(|e| anyhow::anyhow!("proxy bind: {e}"))?);
        let port = server.server_addr().to_ip().map(|a| a.port()).unwrap_or(0);
        let rules: Arc<Mutex<Vec<Rule>>> = Arc::default();
        let log: Arc<Mutex<Vec<String>>> = Arc::default();
        let dialect: Arc<Mutex<DialectSetting>> = Arc::default();
        for _ in 0..4 {
            let (server, rules, log, upstream) = (server.clone(), rules.clone(), log.clone(), upstream_addr.clone());
            let dialect = dialect.clone();
            thread::spawn(move || {
                while let Ok(req) = server.recv() {
                    handle(req, &upstream, &rules, &log, &dialect);
                }
            });
        }
        Ok(FaultProxy { url: format!("http://127.0.0.1:{port}"), rules, log, dialect, server })
    }

    /// Plays a store with this conditional-write dialect; `signer` holds the upstream's
    /// credentials (its endpoint is ignored) to re-sign the requests the proxy rewrites.
    pub fn set_conditionals(&self, mode: Conditionals, signer: S3Config) {
        *self.dialect.lock().unwrap() = Some((mode, signer));
    }

    /// The proxy's endpoint, to use instead of the upstream's.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Adds a rule.
    pub fn add(&self, rule: Rule) {
        self.rules.lock().unwrap().push(rule);
    }

    /// Removes every rule, spent or not.
    pub fn clear(&self) {
        self.rules.lock().unwrap().clear();
    }

    /// How many requests whose `METHOD path?query` line contains `needle` went through.
    pub fn count(&self, needle: &str) -> usize {
        self.log.lock().unwrap().iter().filter(|l| !l.starts_with(ANSWERED) && l.contains(needle)).count()
    }

    /// How many requests containing `needle` the upstream answered with `status` (a web
    /// server's 200s and 304s).
    pub fn answered(&self, status: u16, needle: &str) -> usize {
        let prefix = format!("{ANSWERED}{status} ");
        self.log.lock().unwrap().iter().filter(|l| l.starts_with(&prefix) && l.contains(needle)).count()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.server.unblock();
    }
}

fn pick_fault(rules: &Mutex<Vec<Rule>>, method: &str, url: &str) -> Option<Fault> {
    let mut rules = rules.lock().unwrap();
    for rule in rules.iter_mut() {
        if rule.count > 0 && rule.method == method && url.contains(rule.contains) {
            if rule.skip > 0 {
                rule.skip -= 1;
                return None;
            }
            rule.count -= 1;
            return Some(rule.fault.clone());
        }
    }
    None
}

/// What the dialect does to a conditional PUT: refuse it, or forward these headers re-signed.
enum Rewrite {
    /// Answer with this status and S3 error code instead.
    Refuse(u16, &'static str),
    Forward(Vec<(String, String)>),
}

/// Applies the dialect to a PUT's headers; `None` when nothing changes.
fn rewrite(mode: Conditionals, headers: &[(String, String)]) -> Option<Rewrite> {
    let if_match = headers.iter().find(|(k, _)| k.eq_ignore_ascii_case("if-match")).map(|(_, v)| v.clone());
    let has_none_match = headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("if-none-match"));
    let without = |names: &[&str]| -> Vec<(String, String)> {
        headers.iter().filter(|(k, _)| !names.iter().any(|n| k.eq_ignore_ascii_case(n))).cloned().collect()
    };
    match mode {
        Conditionals::Honest => None,
        Conditionals::QuotedIfMatchRefused => match if_match {
            Some(v) if v.starts_with('"') => Some(Rewrite::Refuse(412, "PreconditionFailed")),
            // The upstream speaks RFC 7232: hand it the quoted form of what this store accepts.
            Some(v) => {
                let mut h = without(&["if-match"]);
                h.push(("If-Match".to_string(), format!("\"{v}\"")));
                Some(Rewrite::Forward(h))
            }
            None => None,
        },
        Conditionals::IfMatchIgnored => if_match.map(|_| Rewrite::Forward(without(&["if-match"]))),
        Conditionals::AllIgnored => {
            (if_match.is_some() || has_none_match).then(|| Rewrite::Forward(without(&["if-match", "if-none-match"])))
        }
        Conditionals::NotImplemented => {
            (if_match.is_some() || has_none_match).then_some(Rewrite::Refuse(400, "NotImplemented"))
        }
    }
}

/// Signs `headers` again for `method url` with `signer`'s credentials (SigV4 covers them).
fn resign(signer: &S3Config, method: &str, url: &str, headers: &[(String, String)], body: &[u8]) -> String {
    let host = headers.iter().find(|(k, _)| k.eq_ignore_ascii_case("host")).map(|(_, v)| v.clone()).unwrap_or_default();
    let mut request = http::Request::builder().method(method).uri(format!("http://{host}{url}"));
    let drop = ["host", "authorization", "x-amz-date", "x-amz-content-sha256", "connection", "content-length"];
    for (k, v) in headers {
        if !drop.iter().any(|d| k.eq_ignore_ascii_case(d)) {
            request = request.header(k.as_str(), v.as_str());
        }
    }
    let mut request = request.body(body.to_vec()).expect("a request the proxy received is valid");
    owfeed_s3::sign_request(signer, &mut request, std::time::SystemTime::now()).expect("re-sign");
    let mut head = format!("{method} {url} HTTP/1.1\r\nHost: {host}\r\n");
    for (k, v) in request.headers() {
        head.push_str(&format!("{}: {}\r\n", k.as_str(), v.to_str().unwrap_or_default()));
    }
    head
}

fn handle(
    mut req: tiny_http::Request,
    upstream: &str,
    rules: &Mutex<Vec<Rule>>,
    log: &Mutex<Vec<String>>,
    dialect: &Mutex<DialectSetting>,
) {
    let method = req.method().as_str().to_string();
    let url = req.url().to_string();
    log.lock().unwrap().push(format!("{method} {url}"));
    let fault = pick_fault(rules, &method, &url);
    if let Some(Fault::Status(code)) = fault {
        let body = format!(
            "<?xml version=\"1.0\"?><Error><Code>InternalError</Code><Message>injected {code}</Message></Error>"
        );
        let _ = req.respond(tiny_http::Response::from_string(body).with_status_code(code));
        return;
    }
    if let Some(Fault::Hang(d)) = fault {
        thread::sleep(d);
        let _ = req.respond(tiny_http::Response::empty(503));
        return;
    }
    if let Some(Fault::InvalidXml) = fault {
        let _ = req
            .respond(tiny_http::Response::from_string("<ListBucketResult><Contents><Key>oops").with_status_code(200));
        return;
    }
    if let Some(Fault::Delay(d)) = &fault {
        thread::sleep(*d);
    }
    let mut body = Vec::new();
    let _ = req.as_reader().read_to_end(&mut body);
    let headers: Vec<(String, String)> =
        req.headers().iter().map(|h| (h.field.as_str().as_str().to_string(), h.value.as_str().to_string())).collect();
    let setting = dialect.lock().unwrap().clone();
    let rewritten = match setting {
        Some((mode, signer)) if method == "PUT" => rewrite(mode, &headers).map(|r| (r, signer)),
        _ => None,
    };
    let mut head = match rewritten {
        Some((Rewrite::Refuse(status, code), _)) => {
            let body = format!(
                "<?xml version=\"1.0\"?><Error><Code>{code}</Code><Message>refused by the proxy's dialect</Message></Error>"
            );
            let _ = req.respond(tiny_http::Response::from_string(body).with_status_code(status));
            return;
        }
        Some((Rewrite::Forward(h), signer)) => resign(&signer, &method, &url, &h, &body),
        None => {
            let mut head = format!("{method} {url} HTTP/1.1\r\n");
            for (name, value) in &headers {
                if name.eq_ignore_ascii_case("connection") || name.eq_ignore_ascii_case("content-length") {
                    continue;
                }
                head.push_str(&format!("{name}: {value}\r\n"));
            }
            head
        }
    };
    head.push_str(&format!("Content-Length: {}\r\nConnection: close\r\n\r\n", body.len()));
    let answer = (|| -> std::io::Result<Vec<u8>> {
        let mut s = TcpStream::connect(upstream)?;
        s.write_all(head.as_bytes())?;
        s.write_all(&body)?;
        let mut out = Vec::new();
        s.read_to_end(&mut out)?;
        Ok(out)
    })();
    let Ok(raw) = answer else {
        let _ = req.respond(tiny_http::Response::empty(502));
        return;
    };
    let (status, headers, mut resp_body) = parse_response(&raw);
    log.lock().unwrap().push(format!("{ANSWERED}{status} {method} {url}"));
    match &fault {
        Some(Fault::Truncated) => resp_body.truncate(resp_body.len() / 2),
        Some(Fault::OmitKey(key)) => resp_body = omit_contents(&resp_body, |_, k| k == *key),
        Some(Fault::HalfKeys) => resp_body = omit_contents(&resp_body, |i, _| i % 2 == 1),
        _ => {}
    }
    let mut response = tiny_http::Response::from_data(resp_body).with_status_code(status);
    for (k, v) in headers {
        let skip = ["content-length", "transfer-encoding", "connection", "date", "server"];
        if skip.iter().any(|s| k.eq_ignore_ascii_case(s)) {
            continue;
        }
        if let Ok(h) = tiny_http::Header::from_bytes(k.as_bytes(), v.as_bytes()) {
            response.add_header(h);
        }
    }
    let _ = req.respond(response);
}

/// A ListObjectsV2 body without the `<Contents>` elements `drop(index, key)` selects.
fn omit_contents(body: &[u8], drop: impl Fn(usize, &str) -> bool) -> Vec<u8> {
    let text = String::from_utf8_lossy(body);
    let mut out = String::with_capacity(text.len());
    let mut rest: &str = &text;
    let mut index = 0;
    while let Some(start) = rest.find("<Contents>") {
        let Some(len) = rest[start..].find("</Contents>") else { break };
        let end = start + len + "</Contents>".len();
        let element = &rest[start..end];
        let key = element.split("<Key>").nth(1).and_then(|k| k.split("</Key>").next()).unwrap_or_default();
        out.push_str(&rest[..start]);
        if !drop(index, key) {
            out.push_str(element);
        }
        index += 1;
        rest = &rest[end..];
    }
    out.push_str(rest);
    out.into_bytes()
}

/// Splits an HTTP/1.1 response (read to EOF) into status, headers and de-chunked body.
fn parse_response(raw: &[u8]) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4).unwrap_or(raw.len());
    let head = String::from_utf8_lossy(&raw[..split]);
    let mut lines = head.split("\r\n");
    let status = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|s| s.parse().ok()).unwrap_or(502);
    let headers: Vec<(String, String)> =
        lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_string(), v.trim().to_string())).collect();
    let chunked = headers.iter().any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    let mut body = raw[split..].to_vec();
    if chunked {
        body = dechunk(&body);
    }
    (status, headers, body)
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = b.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(String::from_utf8_lossy(&b[..eol]).trim(), 16).unwrap_or(0);
        if size == 0 || b.len() < eol + 2 + size {
            break;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + size]);
        b = &b[(eol + 4 + size).min(b.len())..];
    }
    out
}
