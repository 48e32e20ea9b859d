//! A fault-injecting HTTP proxy to put in front of a real S3 server.
//!
//! It forwards every request byte for byte (Host header included, so SigV4 signatures still
//! verify upstream) and, when a rule matches, answers with a fault instead: a status code,
//! invalid XML, a cut-off body, a delay, or a hang that never reaches upstream. Rules can let
//! the first N matching requests through, so a fault lands in the middle of a paginated listing.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

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

/// A running proxy; stops serving when dropped.
pub struct FaultProxy {
    url: String,
    rules: Arc<Mutex<Vec<Rule>>>,
    log: Arc<Mutex<Vec<String>>>,
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
        for _ in 0..4 {
            let (server, rules, log, upstream) = (server.clone(), rules.clone(), log.clone(), upstream_addr.clone());
            thread::spawn(move || {
                while let Ok(req) = server.recv() {
                    handle(req, &upstream, &rules, &log);
                }
            });
        }
        Ok(FaultProxy { url: format!("http://127.0.0.1:{port}"), rules, log, server })
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
        self.log.lock().unwrap().iter().filter(|l| l.contains(needle)).count()
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

fn handle(mut req: tiny_http::Request, upstream: &str, rules: &Mutex<Vec<Rule>>, log: &Mutex<Vec<String>>) {
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
    let mut head = format!("{method} {url} HTTP/1.1\r\n");
    for h in req.headers() {
        let name = h.field.as_str().as_str();
        if name.eq_ignore_ascii_case("connection") || name.eq_ignore_ascii_case("content-length") {
            continue;
        }
        head.push_str(&format!("{}: {}\r\n", name, h.value.as_str()));
    }
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
    if let Some(Fault::Truncated) = fault {
        resp_body.truncate(resp_body.len() / 2);
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
