//! A proxy in front of moto that plays the bucket-notification dialect of an S3 server this
//! machine cannot run (Ceph RGW, MinIO), as their documentation describes it; everything else
//! (topic calls, HEAD bucket, objects) goes to moto unchanged, signatures included.
//!
//! moto cannot play these parts itself: it refuses MinIO's `arn:minio:sqs:…` queue ARNs
//! (InvalidNotificationARN), has no `DELETE /{bucket}?notification=id` (its bucket DELETE
//! would delete the bucket), and replaces the whole document on PUT where RGW merges by `Id`.
//! The proxy answers `?notification` requests from its own per-bucket store, without checking
//! their signatures (moto checks every request the proxy forwards):
//!
//! * **Ceph** (ceph/ceph doc/radosgw/s3-notification-compatibility.rst and
//!   src/rgw/rgw_rest_pubsub.cc `RGWPSCreateNotifOp`; reference notes s3-notifications.md §4):
//!   PUT accepts `TopicConfiguration` only, each with an `Id`, and adds or replaces the listed
//!   Ids, keeping the others; an empty configuration deletes them all (PR #43940);
//!   `DELETE ?notification=<id>` removes one (an unknown id is not an error), `DELETE
//!   ?notification` all. `CreateTopic` with a `push-endpoint` attribute goes to moto's SNS,
//!   which keeps it; the proxy records every topic call's form so tests can read it.
//! * **MinIO** (minio/minio docs/bucket/notifications/README.md, internal/event/arn.go;
//!   reference notes §5): PUT replaces the whole document; it accepts only
//!   `QueueConfiguration` entries whose `Queue` is `arn:minio:sqs:…` and refuses topic and
//!   function configurations.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::thread;

use owfeed_s3::{decode_form, parse_xml, XmlElement};

/// Which server's notification dialect the proxy plays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// Ceph RGW: merge by `Id`, `DELETE ?notification[=id]`, topics only.
    Ceph,
    /// MinIO: replace on PUT, `QueueConfiguration` with `arn:minio:sqs:` ARNs only.
    Minio,
}

type Docs = Arc<Mutex<HashMap<String, Vec<XmlElement>>>>;
type Forms = Arc<Mutex<Vec<Vec<(String, String)>>>>;
type Flag = Arc<std::sync::atomic::AtomicBool>;

/// A running dialect proxy; stops serving when dropped.
pub struct DialectProxy {
    url: String,
    docs: Docs,
    forms: Forms,
    echo: Flag,
    server: Arc<tiny_http::Server>,
}

impl DialectProxy {
    /// Starts a proxy on 127.0.0.1 in front of `upstream` (`http://127.0.0.1:PORT`).
    pub fn start(upstream: &str, dialect: Dialect) -> anyhow::Result<DialectProxy> {
        let upstream = upstream.trim_start_matches("http://").trim_end_matches('/').to_string();
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").map_err(|e| anyhow::anyhow!("proxy bind: {e}"))?);
        let port = server.server_addr().to_ip().map(|a| a.port()).unwrap_or(0);
        let docs: Docs = Arc::default();
        let forms: Forms = Arc::default();
        let echo: Flag = Arc::default();
        for _ in 0..2 {
            let (server, docs, forms, upstream) = (server.clone(), docs.clone(), forms.clone(), upstream.clone());
            let echo = echo.clone();
            thread::spawn(move || {
                while let Ok(req) = server.recv() {
                    handle(req, &upstream, dialect, &docs, &forms, &echo);
                }
            });
        }
        Ok(DialectProxy { url: format!("http://127.0.0.1:{port}"), docs, forms, echo, server })
    }

    /// The proxy's endpoint.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The bucket's notification entries, in the order the server keeps them.
    pub fn entries(&self, bucket: &str) -> Vec<XmlElement> {
        self.docs.lock().unwrap().get(bucket).cloned().unwrap_or_default()
    }

    /// From now on refuses every topic call with a 400 whose message repeats the request: its
    /// raw form, every decoded value and every header (a server that echoes what it was sent).
    pub fn refuse_topics_echoing(&self) {
        self.echo.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// The decoded forms of every topic (Query API) call, in order.
    pub fn topic_calls(&self) -> Vec<Vec<(String, String)>> {
        self.forms.lock().unwrap().clone()
    }
}

impl Drop for DialectProxy {
    fn drop(&mut self) {
        self.server.unblock();
    }
}

fn error(status: u16, code: &str, message: &str) -> tiny_http::Response<std::io::Cursor<Vec<u8>>> {
    let body = format!("<?xml version=\"1.0\"?><Error><Code>{code}</Code><Message>{message}</Message></Error>");
    tiny_http::Response::from_string(body).with_status_code(status)
}

fn handle(mut req: tiny_http::Request, upstream: &str, dialect: Dialect, docs: &Docs, forms: &Forms, echo: &Flag) {
    let method = req.method().as_str().to_string();
    let url = req.url().to_string();
    let mut body = Vec::new();
    let _ = req.as_reader().read_to_end(&mut body);
    let (path, query) = url.split_once('?').unwrap_or((&url, ""));
    let notification = query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == "notification").then(|| decode_form(v).unwrap_or_default())
    });
    let bucket = path.trim_start_matches('/').to_string();
    if let Some(id) = notification.filter(|_| !bucket.is_empty() && !bucket.contains('/')) {
        let response = notification_call(dialect, docs, &method, &bucket, &id, &body);
        let _ = req.respond(response);
        return;
    }
    if method == "POST" {
        let form: Vec<(String, String)> = String::from_utf8_lossy(&body)
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (decode_form(k).unwrap_or_default(), decode_form(v).unwrap_or_default()))
            .collect();
        forms.lock().unwrap().push(form.clone());
        if echo.load(std::sync::atomic::Ordering::SeqCst) {
            let headers: Vec<String> = req.headers().iter().map(|h| format!("{}: {}", h.field, h.value)).collect();
            let values: Vec<String> = form.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let said = format!(
                "invalid request {} {} {}",
                String::from_utf8_lossy(&body),
                values.join(" "),
                headers.join(" ")
            );
            let body = format!(
                "<ErrorResponse><Error><Type>Sender</Type><Code>InvalidArgument</Code><Message>{}</Message></Error></ErrorResponse>",
                quick_xml_escape(&said)
            );
            let _ = req.respond(tiny_http::Response::from_string(body).with_status_code(400));
            return;
        }
    }
    let headers: Vec<(String, String)> =
        req.headers().iter().map(|h| (h.field.as_str().as_str().to_string(), h.value.as_str().to_string())).collect();
    let response = match forward(upstream, &method, &url, &headers, &body) {
        Some((status, payload)) => tiny_http::Response::from_data(payload).with_status_code(status),
        None => tiny_http::Response::from_data(Vec::new()).with_status_code(502),
    };
    let _ = req.respond(response);
}

/// Sends a request to `upstream` (`host:port`) with its headers as received, `Host` included,
/// so a SigV4 signature made for the proxy still verifies there; returns status and body
/// (`None`: no answer).
pub fn forward(
    upstream: &str,
    method: &str,
    url: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> Option<(u16, Vec<u8>)> {
    let mut head = format!("{method} {url} HTTP/1.1\r\n");
    for (name, value) in headers {
        if !name.eq_ignore_ascii_case("connection") && !name.eq_ignore_ascii_case("content-length") {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    head.push_str(&format!("Content-Length: {}\r\nConnection: close\r\n\r\n", body.len()));
    let answer = (|| -> std::io::Result<Vec<u8>> {
        let mut s = TcpStream::connect(upstream)?;
        s.write_all(head.as_bytes())?;
        s.write_all(body)?;
        let mut out = Vec::new();
        s.read_to_end(&mut out)?;
        Ok(out)
    })();
    let raw = answer.ok()?;
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4).unwrap_or(raw.len());
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(502);
    let chunked = head.to_ascii_lowercase().contains("transfer-encoding: chunked");
    let mut payload = raw[split..].to_vec();
    if chunked {
        let mut out = Vec::new();
        let mut b: &[u8] = &payload;
        while let Some(eol) = b.windows(2).position(|w| w == b"\r\n") {
            let size = usize::from_str_radix(String::from_utf8_lossy(&b[..eol]).trim(), 16).unwrap_or(0);
            if size == 0 || b.len() < eol + 2 + size {
                break;
            }
            out.extend_from_slice(&b[eol + 2..eol + 2 + size]);
            b = &b[(eol + 4 + size).min(b.len())..];
        }
        payload = out;
    }
    Some((status, payload))
}

fn notification_call(
    dialect: Dialect,
    docs: &Docs,
    method: &str,
    bucket: &str,
    id: &str,
    body: &[u8],
) -> tiny_http::Response<std::io::Cursor<Vec<u8>>> {
    let mut docs = docs.lock().unwrap();
    let entries = docs.entry(bucket.to_string()).or_default();
    match method {
        "GET" => {
            let root = XmlElement {
                name: "NotificationConfiguration".into(),
                text: String::new(),
                children: entries.iter().filter(|e| id.is_empty() || e.child_text("Id") == Some(id)).cloned().collect(),
            };
            tiny_http::Response::from_string(root.to_xml("xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\""))
        }
        "PUT" => {
            let Ok(root) = parse_xml(body) else { return error(400, "MalformedXML", "not XML") };
            if root.name != "NotificationConfiguration" {
                return error(400, "MalformedXML", "expected NotificationConfiguration");
            }
            match dialect {
                Dialect::Ceph => {
                    if root.children.is_empty() {
                        entries.clear();
                        return tiny_http::Response::from_string("");
                    }
                    for entry in &root.children {
                        if entry.name != "TopicConfiguration" {
                            return error(400, "InvalidArgument", "only TopicConfiguration is supported");
                        }
                        if entry.child_text("Id").is_none_or(str::is_empty) {
                            return error(400, "InvalidArgument", "missing notification id");
                        }
                    }
                    for entry in root.children {
                        let new_id = entry.child_text("Id").map(str::to_string);
                        match entries.iter_mut().find(|e| e.child_text("Id").map(str::to_string) == new_id) {
                            Some(slot) => *slot = entry,
                            None => entries.push(entry),
                        }
                    }
                }
                Dialect::Minio => {
                    for entry in &root.children {
                        let queue = entry.child_text("Queue").unwrap_or_default();
                        if entry.name != "QueueConfiguration" || !queue.starts_with("arn:minio:sqs:") {
                            return error(
                                400,
                                "InvalidArgument",
                                "A specified destination ARN does not exist or is not well-formed. Verify the destination ARN.",
                            );
                        }
                    }
                    *entries = root.children;
                }
            }
            tiny_http::Response::from_string("")
        }
        "DELETE" if dialect == Dialect::Ceph => {
            if id.is_empty() {
                entries.clear();
            } else {
                entries.retain(|e| e.child_text("Id") != Some(id));
            }
            tiny_http::Response::from_string("").with_status_code(204)
        }
        _ => error(405, "MethodNotAllowed", "not supported here"),
    }
}

fn quick_xml_escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}
