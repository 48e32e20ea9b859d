//! A fake CloudEvents Subscriptions API manager for the hooks tests: create, get and delete
//! `/subscriptions[/{id}]`, an optional bearer-token check, every call recorded, and
//! [`FakeManager::deliver`] to send an event to a subscription's sink the way a manager would
//! (structured mode). Filters are stored, not applied.
//!
//! As the spec (cloudevents/spec subscriptions/spec.md, `sinkcredential`) says: an
//! `ACCESSTOKEN` sink credential is sent as `Authorization: <accesstokentype> <accesstoken>`
//! and never returned by GET; `protocolsettings.headers` are a SHOULD, so
//! [`FakeManager::ignoring_headers`] is a manager that drops them.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use serde_json::{json, Value};

pub use crate::fake_github::Call;

#[derive(Default)]
struct State {
    calls: Vec<Call>,
    subscriptions: BTreeMap<String, Value>,
    next_id: u64,
    ignore_headers: bool,
}

/// A running fake manager on 127.0.0.1; stops on drop.
pub struct FakeManager {
    url: String,
    state: Arc<Mutex<State>>,
    server: Arc<tiny_http::Server>,
    thread: Option<JoinHandle<()>>,
}

impl FakeManager {
    /// Starts the fake; with `token`, only `Authorization: Bearer {token}` is accepted.
    pub fn start(token: Option<&str>) -> FakeManager {
        FakeManager::start_with(token, false)
    }

    /// Starts a manager that does not support `protocolsettings.headers` (the spec's SHOULD).
    pub fn ignoring_headers(token: Option<&str>) -> FakeManager {
        FakeManager::start_with(token, true)
    }

    fn start_with(token: Option<&str>, ignore_headers: bool) -> FakeManager {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("bind fake manager"));
        let port = server.server_addr().to_ip().expect("ip address").port();
        let state = Arc::new(Mutex::new(State { ignore_headers, ..State::default() }));
        let (s, st, tok) = (server.clone(), state.clone(), token.map(str::to_string));
        let thread = std::thread::spawn(move || {
            while let Ok(mut req) = s.recv() {
                let call = Call::read(&mut req);
                let (status, body) = answer(&mut st.lock().unwrap(), &call, tok.as_deref());
                st.lock().unwrap().calls.push(call);
                let header = tiny_http::Header::from_bytes("Content-Type", "application/json").expect("header");
                let bytes = if body.is_null() { Vec::new() } else { body.to_string().into_bytes() };
                let _ = req.respond(tiny_http::Response::from_data(bytes).with_status_code(status).with_header(header));
            }
        });
        FakeManager { url: format!("http://127.0.0.1:{port}"), state, server, thread: Some(thread) }
    }

    /// The manager's base URL (the feed's `manager`).
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// Every call so far, oldest first.
    pub fn calls(&self) -> Vec<Call> {
        self.state.lock().unwrap().calls.clone()
    }

    /// The subscriptions that exist now, by id, as stored (credentials included).
    pub fn subscriptions(&self) -> BTreeMap<String, Value> {
        self.state.lock().unwrap().subscriptions.clone()
    }

    /// Posts `event` in structured mode to the subscription's sink with its configured
    /// headers; returns the HTTP status.
    pub fn deliver(&self, id: &str, event: &Value) -> u16 {
        let sub = self.subscriptions().get(id).cloned().expect("no such subscription");
        let sink = sub["sink"].as_str().expect("sink").to_string();
        let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        let mut req = agent.post(&sink).header("Content-Type", "application/cloudevents+json");
        let credential = &sub["sinkcredential"];
        let with_credential = credential["credentialtype"] == "ACCESSTOKEN";
        if let Some(Value::Object(headers)) = sub.pointer("/protocolsettings/headers") {
            for (k, v) in headers.iter().filter(|(k, _)| !(with_credential && k.eq_ignore_ascii_case("authorization")))
            {
                req = req.header(k, v.as_str().unwrap_or_default());
            }
        }
        if with_credential {
            let kind = credential["accesstokentype"].as_str().unwrap_or("bearer");
            // RFC 6750: the scheme is case-insensitive; send it as most servers spell it.
            let scheme = if kind.eq_ignore_ascii_case("bearer") { "Bearer" } else { kind };
            let token = credential["accesstoken"].as_str().unwrap_or_default();
            req = req.header("Authorization", format!("{scheme} {token}"));
        }
        match req.send(event.to_string()) {
            Ok(resp) => resp.status().as_u16(),
            Err(_) => 0,
        }
    }
}

impl Drop for FakeManager {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn answer(st: &mut State, call: &Call, token: Option<&str>) -> (u16, Value) {
    if let Some(t) = token {
        if call.auth.as_deref() != Some(&format!("Bearer {t}")) {
            return (401, json!({"error": "unauthorized"}));
        }
    }
    let parts: Vec<String> =
        call.path.split('?').next().unwrap_or("").trim_matches('/').split('/').map(decode).collect();
    let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
    match (call.method.as_str(), parts.as_slice()) {
        ("POST", ["subscriptions"]) => {
            if call.body.get("sink").and_then(Value::as_str).is_none() {
                return (400, json!({"error": "sink is required"}));
            }
            st.next_id += 1;
            let id = format!("sub-{}", st.next_id);
            let mut sub = call.body.clone();
            sub["id"] = json!(id);
            if st.ignore_headers {
                if let Some(settings) = sub.get_mut("protocolsettings").and_then(Value::as_object_mut) {
                    settings.remove("headers");
                }
            }
            st.subscriptions.insert(id, sub.clone());
            (201, shown(&sub))
        }
        ("GET", ["subscriptions", id]) => match st.subscriptions.get(*id) {
            Some(sub) => (200, shown(sub)),
            None => (404, json!({"error": "not found"})),
        },
        ("DELETE", ["subscriptions", id]) => match st.subscriptions.remove(*id) {
            Some(_) => (204, Value::Null),
            None => (404, json!({"error": "not found"})),
        },
        _ => (404, json!({"error": "not found"})),
    }
}

/// A subscription as GET returns it: the sink credential's secrets left out.
fn shown(sub: &Value) -> Value {
    let mut sub = sub.clone();
    if let Some(c) = sub.get_mut("sinkcredential").and_then(Value::as_object_mut) {
        c.remove("accesstoken");
        c.remove("refreshtoken");
        c.remove("secret");
    }
    sub
}

/// Percent-decodes one path segment, as a real server would before routing.
fn decode(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
