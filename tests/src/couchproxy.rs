//! A proxy in front of pouchdb-server that plays what CouchDB 2.x+ and Cloudant do and
//! pouchdb-server cannot show (/work/shared/reference/couchdb.md §1, §5): opaque string
//! sequences, a 400 on a `since` it no longer accepts, a rewind to 0, and a `_changes` answer
//! cut by a server error (200 without `last_seq`). Everything else is forwarded as it is.
//!
//! It also plays the server's authentication, which pouchdb-server (no users) has none of:
//! Basic with one user and password, or Cloudant's IAM (an IBM Cloud IAM token endpoint at
//! `/identity/token` exchanging one API key for Bearer tokens), and a server that echoes the
//! whole request, credentials included, into its error bodies. `Authorization` never goes
//! upstream.

use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use base64::Engine as _;
use serde_json::Value;

/// What the proxy plays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Play {
    /// Forwards everything unchanged.
    Honest,
    /// CouchDB 2.x+ sequences: every integer `seq`, `last_seq` and `update_seq` N in an answer
    /// becomes the string [`string_seq`]`(N)`, and a `since` must come back as exactly such a
    /// string (anything else is a 400), which is turned back into N upstream.
    StringSeqs,
    /// `_changes` with a `since` other than `0` or `now` answers 400 "Malformed sequence
    /// supplied in 'since' parameter." (CouchDB 2.x+ for a malformed or 1.x-style sequence).
    RejectSince,
    /// Like `RejectSince`, but only for integer sequences below this one: the sequences of a
    /// database that was deleted and re-created are refused, newer ones work.
    RejectSinceBelow(u64),
    /// `_changes` is forwarded with `since=0` whatever was asked (a shard copy that no longer
    /// matches the sequence restarts from 0: rows repeat).
    Rewind,
    /// `_changes` answers 200 with the rows but no `last_seq` (an error written into the body
    /// after streaming began).
    NoLastSeq,
    /// Every request answers this status with a CouchDB error body whose `reason` quotes the
    /// whole request: method, URL, headers (credentials included) and the decoded Basic pair.
    Echo(u16),
}

/// A request held without reaching upstream, then answered 503: held past an action's time
/// limit, it is a process killed before that request took effect.
#[derive(Clone, Debug)]
pub struct Hold {
    /// The request's method (`PUT`…).
    pub method: &'static str,
    /// Its path-and-query, percent-decoded, must contain this.
    pub contains: String,
    /// Let this many matching requests through first.
    pub skip: usize,
    /// Then hold this many.
    pub count: usize,
    /// For this long.
    pub hold: Duration,
}

/// Which credentials the proxy requires.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Auth {
    /// None (pouchdb-server's admin party).
    #[default]
    Open,
    /// `Authorization: Basic` with exactly this user and password, else 401.
    Basic(String, String),
    /// A Bearer token issued by `/identity/token` for this API key, else 401.
    Iam(String),
}

/// What the proxy's authentication saw.
#[derive(Default)]
struct AuthState {
    auth: Auth,
    issued: Vec<String>,
    exchanges: usize,
}

/// The opaque sequence the proxy shows for pouchdb-server's integer `n`: the shape of a
/// CouchDB 3 sequence (`N-g1AAAA…`, base64url), with characters a URL query must encode.
pub fn string_seq(n: u64) -> String {
    format!("{n}-g1AAAAFTeJzLYWBgYM5gTmHQSklKzi9KdUhJMtLLTMrVNTAw1Ms_z8kvTcnILyjfpzM+/={n}")
}

/// A running proxy; stops serving when dropped.
pub struct CouchProxy {
    /// `http://127.0.0.1:PORT`, to use instead of the server's URL.
    pub url: String,
    play: Arc<Mutex<Play>>,
    sinces: Arc<Mutex<Vec<String>>>,
    auth: Arc<Mutex<AuthState>>,
    holds: Arc<Mutex<Vec<Hold>>>,
    log: Arc<Mutex<Vec<String>>>,
    server: Arc<tiny_http::Server>,
}

impl CouchProxy {
    /// Starts a proxy on 127.0.0.1 forwarding to `upstream` (`http://127.0.0.1:PORT`).
    pub fn start(upstream: &str) -> anyhow::Result<CouchProxy> {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").map_err(|e| anyhow::anyhow!("proxy bind: {e}"))?);
        let port = server.server_addr().to_ip().map(|a| a.port()).unwrap_or(0);
        let play = Arc::new(Mutex::new(Play::Honest));
        let sinces: Arc<Mutex<Vec<String>>> = Arc::default();
        let auth: Arc<Mutex<AuthState>> = Arc::default();
        let holds: Arc<Mutex<Vec<Hold>>> = Arc::default();
        let log: Arc<Mutex<Vec<String>>> = Arc::default();
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(120)))
            .build()
            .new_agent();
        for _ in 0..4 {
            let (server, play, sinces, agent) = (server.clone(), play.clone(), sinces.clone(), agent.clone());
            let (auth, holds, log) = (auth.clone(), holds.clone(), log.clone());
            let upstream = upstream.trim_end_matches('/').to_string();
            thread::spawn(move || {
                while let Ok(request) = server.recv() {
                    let line = format!("{} {}", request.method(), decode(request.url()));
                    log.lock().unwrap().push(line.clone());
                    if let Some(hold) = pick_hold(&holds, request.method().as_str(), &line) {
                        // Held on a thread of its own, so other requests go on meanwhile.
                        thread::spawn(move || {
                            thread::sleep(hold);
                            let _ = request.respond(tiny_http::Response::from_string("{}").with_status_code(503));
                        });
                        continue;
                    }
                    handle(request, &upstream, &agent, &play, &sinces, &auth);
                }
            });
        }
        let url = format!("http://127.0.0.1:{port}");
        Ok(CouchProxy { url, play, sinces, auth, holds, log, server })
    }

    /// Plays `play` from the next request on.
    pub fn play(&self, play: Play) {
        *self.play.lock().unwrap() = play;
    }

    /// Requires these credentials from the next request on.
    pub fn require(&self, auth: Auth) {
        self.auth.lock().unwrap().auth = auth;
    }

    /// Forgets every IAM token issued (they expired or were revoked).
    pub fn revoke_tokens(&self) {
        self.auth.lock().unwrap().issued.clear();
    }

    /// How many IAM token exchanges succeeded.
    pub fn token_exchanges(&self) -> usize {
        self.auth.lock().unwrap().exchanges
    }

    /// Holds matching requests from the next one on.
    pub fn hold(&self, hold: Hold) {
        self.holds.lock().unwrap().push(hold);
    }

    /// Drops every hold rule, spent or not.
    pub fn clear_holds(&self) {
        self.holds.lock().unwrap().clear();
    }

    /// How many requests whose `METHOD path?query` line (decoded) contains `needle` arrived.
    pub fn count(&self, needle: &str) -> usize {
        self.log.lock().unwrap().iter().filter(|l| l.contains(needle)).count()
    }

    /// Every `since` a `_changes` request carried, decoded, in order.
    pub fn sinces(&self) -> Vec<String> {
        self.sinces.lock().unwrap().clone()
    }
}

impl Drop for CouchProxy {
    fn drop(&mut self) {
        self.server.unblock();
    }
}

fn handle(
    mut request: tiny_http::Request,
    upstream: &str,
    agent: &ureq::Agent,
    play: &Mutex<Play>,
    sinces: &Mutex<Vec<String>>,
    auth: &Mutex<AuthState>,
) {
    let play = *play.lock().unwrap();
    let reply = |status: u16, body: String| tiny_http::Response::from_string(body).with_status_code(status);
    let authorization = request
        .headers()
        .iter()
        .find(|h| h.field.equiv("authorization"))
        .map(|h| h.value.as_str().to_string())
        .unwrap_or_default();
    if let Play::Echo(status) = play {
        let decoded = authorization
            .strip_prefix("Basic ")
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        let headers: Vec<String> = request.headers().iter().map(|h| format!("{}: {}", h.field, h.value)).collect();
        let echo = format!("{} {} {} decoded {decoded}", request.method(), request.url(), headers.join(" | "));
        let body = serde_json::json!({"error": "echo", "reason": echo}).to_string();
        let _ = request.respond(reply(status, body));
        return;
    }
    if request.url() == "/identity/token" {
        let mut body = String::new();
        let _ = request.as_reader().read_to_string(&mut body);
        let mut state = auth.lock().unwrap();
        let key = body.split('&').find_map(|p| p.strip_prefix("apikey=")).map(decode).unwrap_or_default();
        let grant = body.contains("grant_type=urn%3Aibm%3Aparams%3Aoauth%3Agrant-type%3Aapikey");
        if !(grant && matches!(&state.auth, Auth::Iam(k) if *k == key)) {
            let refused = r#"{"errorCode":"BXNIM0415E","errorMessage":"Provided API key could not be found."}"#;
            let _ = request.respond(reply(400, refused.into()));
            return;
        }
        state.exchanges += 1;
        let token = format!("iam-token-{}", state.exchanges);
        state.issued.push(token.clone());
        let body = serde_json::json!({"access_token": token, "token_type": "Bearer", "expires_in": 3600});
        let _ = request.respond(reply(200, body.to_string()));
        return;
    }
    let allowed = {
        let state = auth.lock().unwrap();
        match &state.auth {
            Auth::Open => true,
            Auth::Basic(user, password) => {
                let pair = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
                authorization == format!("Basic {pair}")
            }
            Auth::Iam(_) => authorization.strip_prefix("Bearer ").is_some_and(|t| state.issued.iter().any(|i| i == t)),
        }
    };
    if !allowed {
        let _ =
            request.respond(reply(401, r#"{"error":"unauthorized","reason":"Name or password is incorrect."}"#.into()));
        return;
    }
    let (path, query) = request
        .url()
        .split_once('?')
        .map_or((request.url().to_string(), String::new()), |(p, q)| (p.to_string(), q.to_string()));
    let changes = path.ends_with("/_changes");
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect();
    let since = pairs.iter().find(|(k, _)| k == "since").map(|(_, v)| v.clone());
    if changes {
        if let Some(s) = &since {
            sinces.lock().unwrap().push(s.clone());
        }
    }
    let malformed = r#"{"error":"bad_request","reason":"Malformed sequence supplied in 'since' parameter."}"#;
    if changes {
        for (k, v) in pairs.iter_mut() {
            if k != "since" || v == "0" || v == "now" {
                continue;
            }
            match play {
                Play::RejectSince => {
                    let _ = request.respond(reply(400, malformed.into()));
                    return;
                }
                Play::RejectSinceBelow(n) if v.parse::<u64>().is_ok_and(|v| v < n) => {
                    let _ = request.respond(reply(400, malformed.into()));
                    return;
                }
                Play::Rewind => *v = "0".into(),
                Play::StringSeqs => {
                    let n = v.split('-').next().and_then(|n| n.parse::<u64>().ok());
                    match n.filter(|n| string_seq(*n) == *v) {
                        Some(n) => *v = n.to_string(),
                        None => {
                            let _ = request.respond(reply(400, malformed.into()));
                            return;
                        }
                    }
                }
                _ => {}
            }
        }
    }
    let query: Vec<String> = pairs.iter().map(|(k, v)| format!("{}={}", encode(k), encode(v))).collect();
    let url =
        if query.is_empty() { format!("{upstream}{path}") } else { format!("{upstream}{path}?{}", query.join("&")) };
    let mut body = Vec::new();
    let _ = request.as_reader().read_to_end(&mut body);
    let mut builder = ureq::http::Request::builder().method(request.method().as_str()).uri(&url);
    for header in request.headers() {
        let name = header.field.as_str().as_str();
        if ["content-type", "accept"].iter().any(|h| name.eq_ignore_ascii_case(h)) {
            builder = builder.header(name, header.value.as_str());
        }
    }
    let Ok(upstream_request) = builder.body(body) else {
        let _ = request.respond(reply(400, "{}".into()));
        return;
    };
    let result = if upstream_request.body().is_empty() && upstream_request.method() != "PUT" {
        agent.run(upstream_request.map(|_| ()))
    } else {
        agent.run(upstream_request)
    };
    let (status, text) = match result {
        Ok(mut r) => (r.status().as_u16(), r.body_mut().read_to_string().unwrap_or_default()),
        Err(e) => (502, format!("{{\"error\":\"proxy\",\"reason\":\"{e}\"}}")),
    };
    let text = match (play, serde_json::from_str::<Value>(&text)) {
        (Play::StringSeqs, Ok(mut v)) => {
            stringify_seqs(&mut v);
            v.to_string()
        }
        (Play::NoLastSeq, Ok(mut v)) if changes => {
            if let Some(m) = v.as_object_mut() {
                m.remove("last_seq");
                m.insert("error".into(), Value::from("unknown_error"));
                m.insert("reason".into(), Value::from("function_clause"));
            }
            v.to_string()
        }
        _ => text,
    };
    let header = tiny_http::Header::from_bytes("Content-Type", "application/json").expect("a valid header");
    let _ = request.respond(reply(status, text).with_header(header));
}

fn pick_hold(holds: &Mutex<Vec<Hold>>, method: &str, line: &str) -> Option<Duration> {
    let mut holds = holds.lock().unwrap();
    for hold in holds.iter_mut() {
        if hold.count > 0 && hold.method == method && line.contains(&hold.contains) {
            if hold.skip > 0 {
                hold.skip -= 1;
                return None;
            }
            hold.count -= 1;
            return Some(hold.hold);
        }
    }
    None
}

fn stringify_seqs(v: &mut Value) {
    let string = |s: &mut Value| {
        if let Some(n) = s.as_u64() {
            *s = Value::String(string_seq(n));
        }
    };
    if let Some(m) = v.as_object_mut() {
        for key in ["seq", "last_seq", "update_seq"] {
            if let Some(s) = m.get_mut(key) {
                string(s);
            }
        }
        if let Some(Value::Array(rows)) = m.get_mut("results") {
            rows.iter_mut().for_each(stringify_seqs);
        }
    }
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                match u8::from_str_radix(std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"), 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
