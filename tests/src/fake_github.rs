//! A fake GitHub REST API for the hooks tests: repository webhooks only (create, get, patch,
//! delete under `/repos/{owner}/{repo}/hooks`), with bearer-token checks, recording every call.
//!
//! It does not deliver events by itself: a test posts to the hook's URL the way GitHub would,
//! using the secret the fake recorded. Repositories named `missing` answer 404.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use serde_json::{json, Value};

/// One API call as received.
#[derive(Clone, Debug)]
pub struct Call {
    /// HTTP method.
    pub method: String,
    /// Path (query included).
    pub path: String,
    /// The `Authorization` header.
    pub auth: Option<String>,
    /// The JSON body (`Null` when none).
    pub body: Value,
}

impl Call {
    /// Records a request as received (the body is read; the request stays to be answered).
    pub fn read(req: &mut tiny_http::Request) -> Call {
        let mut text = String::new();
        let _ = req.as_reader().read_to_string(&mut text);
        let auth = req.headers().iter().find(|h| h.field.equiv("authorization")).map(|h| h.value.to_string());
        Call {
            method: req.method().to_string().to_ascii_uppercase(),
            path: req.url().to_string(),
            auth,
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
        }
    }
}

#[derive(Default)]
struct State {
    calls: Vec<Call>,
    /// `owner/repo` → hook id → hook document.
    hooks: BTreeMap<String, BTreeMap<u64, Value>>,
    next_id: u64,
}

/// A running fake GitHub API on 127.0.0.1; stops on drop.
pub struct FakeGitHub {
    url: String,
    token: String,
    state: Arc<Mutex<State>>,
    server: Arc<tiny_http::Server>,
    thread: Option<JoinHandle<()>>,
}

impl FakeGitHub {
    /// Starts the fake; it accepts `Authorization: Bearer {token}` only.
    pub fn start(token: &str) -> FakeGitHub {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("bind fake GitHub"));
        let port = server.server_addr().to_ip().expect("ip address").port();
        let state = Arc::new(Mutex::new(State { next_id: 1000, ..State::default() }));
        let (s, st, tok) = (server.clone(), state.clone(), token.to_string());
        let thread = std::thread::spawn(move || {
            while let Ok(mut req) = s.recv() {
                let call = Call::read(&mut req);
                let (status, body) = answer(&mut st.lock().unwrap(), &call, &tok);
                st.lock().unwrap().calls.push(call);
                let header = tiny_http::Header::from_bytes("Content-Type", "application/json").expect("header");
                let bytes = if body.is_null() { Vec::new() } else { body.to_string().into_bytes() };
                let _ = req.respond(tiny_http::Response::from_data(bytes).with_status_code(status).with_header(header));
            }
        });
        FakeGitHub {
            url: format!("http://127.0.0.1:{port}"),
            token: token.to_string(),
            state,
            server,
            thread: Some(thread),
        }
    }

    /// The API base URL (the feed's `githubApi`).
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// The token it accepts.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Every call so far, oldest first.
    pub fn calls(&self) -> Vec<Call> {
        self.state.lock().unwrap().calls.clone()
    }

    /// The hooks of `owner/repo` that exist now, by id.
    pub fn hooks(&self, repo: &str) -> BTreeMap<u64, Value> {
        self.state.lock().unwrap().hooks.get(repo).cloned().unwrap_or_default()
    }
}

impl Drop for FakeGitHub {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn answer(st: &mut State, call: &Call, token: &str) -> (u16, Value) {
    if call.auth.as_deref() != Some(&format!("Bearer {token}")) {
        return (401, json!({"message": "Bad credentials"}));
    }
    let parts: Vec<&str> = call.path.split('?').next().unwrap_or("").trim_matches('/').split('/').collect();
    let not_found = (404, json!({"message": "Not Found"}));
    match (call.method.as_str(), parts.as_slice()) {
        (_, ["repos", _, "missing", ..]) => not_found,
        ("POST", ["repos", owner, repo, "hooks"]) => {
            if call.body.pointer("/config/url").and_then(Value::as_str).is_none() {
                return (422, json!({"message": "Validation Failed"}));
            }
            st.next_id += 1;
            let id = st.next_id;
            let mut hook = call.body.clone();
            hook["id"] = json!(id);
            hook["type"] = json!("Repository");
            // GitHub never returns the secret.
            if hook["config"].get("secret").is_some() {
                hook["config"]["secret"] = json!("********");
            }
            st.hooks.entry(format!("{owner}/{repo}")).or_default().insert(id, hook.clone());
            (201, hook)
        }
        (method, ["repos", owner, repo, "hooks", id]) => {
            let repo = format!("{owner}/{repo}");
            let Ok(id) = id.parse::<u64>() else { return not_found };
            let hooks = st.hooks.entry(repo).or_default();
            let Some(hook) = hooks.get_mut(&id) else { return not_found };
            match method {
                "GET" => (200, hook.clone()),
                "PATCH" => {
                    if let Some(active) = call.body.get("active") {
                        hook["active"] = active.clone();
                    }
                    (200, hook.clone())
                }
                "DELETE" => {
                    hooks.remove(&id);
                    (204, Value::Null)
                }
                _ => (405, json!({"message": "Method Not Allowed"})),
            }
        }
        _ => not_found,
    }
}
