//! A fake GitHub REST API for the hooks tests: repository webhooks (create, get, patch, delete
//! under `/repos/{owner}/{repo}/hooks`) and the repository itself (`GET /repos/{owner}/{repo}`
//! with `permissions.admin`), with bearer-token checks, recording every call.
//!
//! It behaves as api.github.com (REST 2022-11-28) where our code depends on it: a hook whose
//! `config.url` is already used by a hook with overlapping `events` is refused with 422
//! "Validation Failed" and `errors[].message` "Hook already exists on this repository" (on
//! create and on patch); a patch's `config` replaces the whole config (without `secret` the
//! secret is gone); hooks of a repository the token cannot administer answer 404, like a
//! missing hook ([`FakeGitHub::revoke_admin`]); [`FakeGitHub::rate_limit`] answers the next calls
//! with 403 and `x-ratelimit-remaining: 0`. The secret is kept (GitHub returns `********`).
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
    /// Every header, names in lower case.
    pub headers: BTreeMap<String, String>,
    /// The JSON body (`Null` when none).
    pub body: Value,
}

impl Call {
    /// Records a request as received (the body is read; the request stays to be answered).
    pub fn read(req: &mut tiny_http::Request) -> Call {
        let mut text = String::new();
        let _ = req.as_reader().read_to_string(&mut text);
        let auth = req.headers().iter().find(|h| h.field.equiv("authorization")).map(|h| h.value.to_string());
        let headers = req
            .headers()
            .iter()
            .map(|h| (h.field.as_str().as_str().to_ascii_lowercase(), h.value.to_string()))
            .collect();
        Call {
            method: req.method().to_string().to_ascii_uppercase(),
            path: req.url().to_string(),
            auth,
            headers,
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
    /// The token lost admin rights: hooks answer 404, the repository `permissions.admin: false`.
    no_admin: bool,
    /// How many of the next calls answer with a rate-limit 403.
    rate_limited: u32,
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
                let mut extra = Vec::new();
                let (status, body) = {
                    let mut st = st.lock().unwrap();
                    if st.rate_limited > 0 {
                        st.rate_limited -= 1;
                        extra = vec![("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", "1893456000")];
                        (403, json!({"message": "API rate limit exceeded for user ID 1."}))
                    } else {
                        answer(&mut st, &call, &tok)
                    }
                };
                st.lock().unwrap().calls.push(call);
                let header = tiny_http::Header::from_bytes("Content-Type", "application/json").expect("header");
                let bytes = if body.is_null() { Vec::new() } else { body.to_string().into_bytes() };
                let mut response = tiny_http::Response::from_data(bytes).with_status_code(status).with_header(header);
                for (k, v) in extra {
                    response = response.with_header(tiny_http::Header::from_bytes(k, v).expect("header"));
                }
                let _ = req.respond(response);
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

    /// The hooks of `owner/repo` that exist now, by id (the secret as stored, not masked).
    pub fn hooks(&self, repo: &str) -> BTreeMap<u64, Value> {
        self.state.lock().unwrap().hooks.get(repo).cloned().unwrap_or_default()
    }

    /// The token loses its admin rights on every repository.
    pub fn revoke_admin(&self) {
        self.state.lock().unwrap().no_admin = true;
    }

    /// The next `calls` calls answer 403 with `x-ratelimit-remaining: 0`.
    pub fn rate_limit(&self, calls: u32) {
        self.state.lock().unwrap().rate_limited = calls;
    }
}

/// GitHub's answer to a hook that duplicates another (same URL, overlapping events).
fn duplicate() -> (u16, Value) {
    (
        422,
        json!({
            "message": "Validation Failed",
            "errors": [{"resource": "Hook", "code": "custom", "message": "Hook already exists on this repository"}],
            "documentation_url": "https://docs.github.com/rest/repos/webhooks#create-a-repository-webhook",
            "status": "422",
        }),
    )
}

fn events_overlap(a: &Value, b: &Value) -> bool {
    let list = |v: &Value| -> Vec<String> {
        v.as_array().map(|l| l.iter().filter_map(Value::as_str).map(str::to_string).collect()).unwrap_or_default()
    };
    let (a, b) = (list(a), list(b));
    a.iter().any(|e| e == "*" || b.contains(e)) || b.iter().any(|e| e == "*")
}

/// True when another hook than `except` has this URL and overlapping events.
fn duplicates(hooks: &BTreeMap<u64, Value>, except: Option<u64>, hook: &Value) -> bool {
    hooks.iter().any(|(id, other)| {
        Some(*id) != except
            && other.pointer("/config/url") == hook.pointer("/config/url")
            && events_overlap(&other["events"], &hook["events"])
    })
}

/// A hook as GitHub returns it: the secret masked.
fn shown(hook: &Value) -> Value {
    let mut hook = hook.clone();
    if hook["config"].get("secret").is_some() {
        hook["config"]["secret"] = json!("********");
    }
    hook
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
        ("GET", ["repos", owner, repo]) => {
            (200, json!({"full_name": format!("{owner}/{repo}"), "permissions": {"admin": !st.no_admin, "pull": true}}))
        }
        (_, ["repos", _, _, "hooks", ..]) if st.no_admin => not_found,
        ("POST", ["repos", owner, repo, "hooks"]) => {
            if call.body.pointer("/config/url").and_then(Value::as_str).is_none() {
                return (422, json!({"message": "Validation Failed", "errors": [{"message": "url is missing"}]}));
            }
            let hooks = st.hooks.entry(format!("{owner}/{repo}")).or_default();
            let mut hook = call.body.clone();
            if hook.get("events").is_none() {
                hook["events"] = json!(["push"]);
            }
            if duplicates(hooks, None, &hook) {
                return duplicate();
            }
            st.next_id += 1;
            let id = st.next_id;
            hook["id"] = json!(id);
            hook["type"] = json!("Repository");
            st.hooks.entry(format!("{owner}/{repo}")).or_default().insert(id, hook.clone());
            (201, shown(&hook))
        }
        (method, ["repos", owner, repo, "hooks", id]) => {
            let repo = format!("{owner}/{repo}");
            let Ok(id) = id.parse::<u64>() else { return not_found };
            let hooks = st.hooks.entry(repo).or_default();
            let Some(hook) = hooks.get(&id).cloned() else { return not_found };
            match method {
                "GET" => (200, shown(&hook)),
                "PATCH" => {
                    let mut next = hook.clone();
                    for field in ["active", "events", "config"] {
                        if let Some(v) = call.body.get(field) {
                            next[field] = v.clone();
                        }
                    }
                    if duplicates(hooks, Some(id), &next) {
                        return duplicate();
                    }
                    hooks.insert(id, next.clone());
                    (200, shown(&next))
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
