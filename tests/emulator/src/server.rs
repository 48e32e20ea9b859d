//! HTTP serving and routing: worker threads, Basic auth, fault injection, the `/api/v1` entity
//! endpoints (namespaces, triggers and fires, rules, packages, actions and invokes, activations)
//! and the `/__emulator` control endpoints.
//!
//! It decides who may do what and shapes documents; it does not run actions (`invoker`), emulate the
//! alarms provider (`alarms`) or serve web actions (`web`).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use serde_json::{json, Map, Value};

use crate::invoker::{self, Job};
use crate::store::{
    bump_version, kv_to_map, now_ms, random_hex, validate_kv, Action, Code, Meta, Package, Rule, RuleLink, Store,
    Trigger,
};
use crate::{alarms, lock, web, FaultRule, Inner};

/// A request as the router sees it (HTTP or internal, e.g. an alarm firing its trigger).
pub(crate) struct Req {
    pub method: String,
    /// Path without the query, not yet percent-decoded.
    pub path: String,
    /// Raw query string without `?`.
    pub query: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Req {
    /// A header value by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// A decoded query parameter.
    pub fn query_param(&self, name: &str) -> Option<String> {
        parse_query(&self.query).into_iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }

    /// An internal request authenticated with `key`.
    pub fn internal(method: &str, path: &str, key: &str, body: Vec<u8>) -> Req {
        let auth = base64::engine::general_purpose::STANDARD.encode(key);
        Req {
            method: method.to_string(),
            path: path.to_string(),
            query: String::new(),
            headers: vec![
                ("Authorization".to_string(), format!("Basic {auth}")),
                ("Content-Type".to_string(), "application/json".to_string()),
            ],
            body,
        }
    }
}

/// A response before it is written.
pub(crate) struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn json(status: u16, v: &Value) -> Resp {
        Resp {
            status,
            headers: vec![("Content-Type".to_string(), "application/json".to_string())],
            body: v.to_string().into_bytes(),
        }
    }

    pub fn empty(status: u16) -> Resp {
        Resp { status, headers: Vec::new(), body: Vec::new() }
    }

    /// OpenWhisk error body `{"error": msg, "code": txid}`.
    pub fn error(status: u16, msg: &str) -> Resp {
        Resp::json(status, &json!({"error": msg, "code": random_hex(16)}))
    }

    /// The body parsed as JSON (`Null` when it is not JSON).
    pub fn body_json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// An API failure: status and message.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub status: u16,
    pub message: String,
}

impl ApiError {
    pub fn new(status: u16, message: impl Into<String>) -> ApiError {
        ApiError { status, message: message.into() }
    }
    pub fn not_found() -> ApiError {
        ApiError::new(404, "The requested resource does not exist.")
    }
    pub fn forbidden(what: &str) -> ApiError {
        ApiError::new(403, format!("The supplied authentication is not authorized to access '{what}'."))
    }
    pub fn conflict() -> ApiError {
        ApiError::new(409, "The requested resource already exists.")
    }
    pub fn bad(message: impl Into<String>) -> ApiError {
        ApiError::new(400, message)
    }
}

impl From<ApiError> for Resp {
    fn from(e: ApiError) -> Resp {
        Resp::error(e.status, &e.message)
    }
}

/// The authenticated subject.
#[derive(Clone, Debug)]
pub(crate) struct Identity {
    pub namespace: String,
    /// `uuid:key`.
    pub key: String,
}

/// Serves requests until the emulator stops.
pub(crate) fn worker(inner: &Arc<Inner>, server: &tiny_http::Server) {
    while !inner.stopping.load(Ordering::SeqCst) {
        let mut rq = match server.recv_timeout(Duration::from_millis(200)) {
            Ok(Some(rq)) => rq,
            Ok(None) => continue,
            Err(_) => {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        let (path, query) = match rq.url().split_once('?') {
            Some((p, q)) => (p.to_string(), q.to_string()),
            None => (rq.url().to_string(), String::new()),
        };
        let headers = rq
            .headers()
            .iter()
            .map(|h| (h.field.as_str().as_str().to_string(), h.value.as_str().to_string()))
            .collect();
        let mut body = Vec::new();
        let resp = match rq.as_reader().read_to_end(&mut body) {
            Ok(_) => {
                let req = Req { method: rq.method().as_str().to_uppercase(), path, query, headers, body };
                handle(inner, &req)
            }
            Err(e) => Resp::error(400, &format!("cannot read the request body: {e}")),
        };
        let mut out = tiny_http::Response::from_data(resp.body).with_status_code(resp.status);
        for (k, v) in resp.headers {
            if let Ok(h) = tiny_http::Header::from_bytes(k.as_bytes(), v.as_bytes()) {
                out.add_header(h);
            }
        }
        let _ = rq.respond(out);
    }
}

/// Routes one request.
pub(crate) fn handle(inner: &Arc<Inner>, req: &Req) -> Resp {
    if let Some(rest) = req.path.strip_prefix("/__emulator/") {
        return control(inner, req, rest);
    }
    if let Some(resp) = injected_fault(inner, req) {
        return resp;
    }
    let path = req.path.trim_end_matches('/');
    if path.is_empty() || path == "/api/v1" || path == "/api" {
        return Resp::json(200, &info(inner));
    }
    if let Some(rest) = req.path.strip_prefix("/api/v1/web/") {
        return web::handle(inner, req, rest);
    }
    let Some(rest) = req.path.strip_prefix("/api/v1/namespaces") else {
        return ApiError::not_found().into();
    };
    let id = match authenticate(inner, req) {
        Some(id) => id,
        None => return Resp::error(401, "The supplied authentication is invalid"),
    };
    let segs: Vec<String> = if rest.is_empty() || rest == "/" {
        Vec::new()
    } else {
        rest.trim_start_matches('/').split('/').map(percent_decode).collect()
    };
    match route(inner, req, &id, &segs) {
        Ok(resp) => resp,
        Err(e) => e.into(),
    }
}

fn info(inner: &Inner) -> Value {
    json!({
        "description": "OpenWhisk API emulator",
        "api_paths": ["/api/v1"],
        "api_host": inner.url,
        "runtimes": {"rust": [{"kind": "rust:1.34", "default": true}], "blackbox": [{"kind": "blackbox"}]},
        "limits": limits(inner),
    })
}

fn limits(inner: &Inner) -> Value {
    let fires = (*lock(&inner.fires_per_minute)).map(Value::from).unwrap_or(json!(60));
    let limits = *lock(&inner.invocation_limits);
    json!({
        "concurrentInvocations": limits.concurrent.unwrap_or(30),
        "firesPerMinute": fires,
        "invocationsPerMinute": limits.per_minute.unwrap_or(60),
        "actions_sequence_maxLength": 50,
        "min_action_duration": 100,
        "max_action_duration": 300000,
        "min_action_memory": 134217728,
        "max_action_memory": 536870912,
    })
}

fn authenticate(inner: &Inner, req: &Req) -> Option<Identity> {
    let value = req.header("authorization")?;
    let encoded = value.strip_prefix("Basic ").or_else(|| value.strip_prefix("basic "))?;
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
    let key = String::from_utf8(decoded).ok()?;
    let namespace = inner.namespace_of_key(&key)?;
    Some(Identity { namespace, key })
}

fn injected_fault(inner: &Inner, req: &Req) -> Option<Resp> {
    let mut faults = lock(&inner.faults);
    let idx = faults.iter().position(|f| {
        let method_ok = match f.method.as_deref() {
            None | Some("*") | Some("") => true,
            Some(m) => m.eq_ignore_ascii_case(&req.method),
        };
        method_ok && req.path.contains(&f.path_contains) && f.count > 0
    })?;
    let fault = faults[idx].clone();
    faults[idx].count -= 1;
    if faults[idx].count == 0 {
        faults.remove(idx);
    }
    if fault.delay_ms > 0 {
        // Other requests (and other faults) must not wait behind this one.
        drop(faults);
        std::thread::sleep(Duration::from_millis(fault.delay_ms));
        return None;
    }
    Some(match fault.body {
        Some(body) => Resp::json(fault.status, &body),
        None => Resp::error(fault.status, "injected fault"),
    })
}

fn route(inner: &Arc<Inner>, req: &Req, id: &Identity, segs: &[String]) -> Result<Resp, ApiError> {
    if segs.is_empty() {
        return match req.method.as_str() {
            "GET" => Ok(Resp::json(200, &json!([id.namespace]))),
            _ => Err(ApiError::new(405, "method not allowed")),
        };
    }
    let ns = if segs[0] == "_" { id.namespace.clone() } else { segs[0].clone() };
    let rest = &segs[1..];
    match (req.method.as_str(), rest.first().map(String::as_str)) {
        ("GET", None) => {
            own(id, &ns, &ns)?;
            let st = lock(&inner.store);
            Ok(Resp::json(
                200,
                &json!({
                    "actions": list_actions(&st, &ns, None),
                    "packages": list_packages(&st, &ns, false),
                    "triggers": list_simple(st.triggers.values().map(|t| &t.meta), &ns),
                    "rules": list_simple(st.rules.values().map(|r| &r.meta), &ns),
                }),
            ))
        }
        ("GET", Some("limits")) if rest.len() == 1 => {
            own(id, &ns, &ns)?;
            Ok(Resp::json(200, &limits(inner)))
        }
        (_, Some("triggers")) => triggers(inner, req, id, &ns, &rest[1..]),
        (_, Some("rules")) => rules(inner, req, id, &ns, &rest[1..]),
        (_, Some("packages")) => packages(inner, req, id, &ns, &rest[1..]),
        (_, Some("actions")) => actions(inner, req, id, &ns, &rest[1..]),
        (_, Some("activations")) => activations(inner, req, id, &ns, &rest[1..]),
        _ => Err(ApiError::not_found()),
    }
}

/// Requires the caller to own `ns`; `what` names the entity in the 403 message.
fn own(id: &Identity, ns: &str, what: &str) -> Result<(), ApiError> {
    if id.namespace == ns {
        Ok(())
    } else {
        Err(ApiError::forbidden(what))
    }
}

fn body_object(req: &Req) -> Result<Map<String, Value>, ApiError> {
    if req.body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(&req.body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(ApiError::bad("The request content was malformed: expected a JSON object")),
        Err(e) => Err(ApiError::bad(format!("The request content was malformed: {e}"))),
    }
}

fn overwrite(req: &Req) -> bool {
    req.query_param("overwrite").is_some_and(|v| v == "true")
}

fn list_simple<'a>(metas: impl Iterator<Item = &'a Meta>, ns: &str) -> Value {
    Value::Array(
        metas
            .filter(|m| m.namespace == ns)
            .map(|m| {
                json!({"namespace": m.namespace, "name": m.name, "version": m.version, "publish": m.publish,
                       "annotations": m.annotations, "updated": m.updated})
            })
            .collect(),
    )
}

/// Applies the fields common to all entities from a PUT body (absent fields are kept on update).
fn apply_meta(meta: &mut Meta, body: &Map<String, Value>) -> Result<(), ApiError> {
    if body.contains_key("parameters") {
        meta.parameters = validate_kv("parameters", body.get("parameters")).map_err(ApiError::bad)?;
    }
    if body.contains_key("annotations") {
        meta.annotations = validate_kv("annotations", body.get("annotations")).map_err(ApiError::bad)?;
    }
    if let Some(p) = body.get("publish") {
        meta.publish = p.as_bool().ok_or_else(|| ApiError::bad("'publish' must be a boolean"))?;
    }
    Ok(())
}

/// Starts a new entity or an update of an existing one (409 unless overwrite).
fn begin_put(existing: Option<&Meta>, ns: &str, name: &str, overwrite: bool) -> Result<Meta, ApiError> {
    match existing {
        Some(_) if !overwrite => Err(ApiError::conflict()),
        Some(m) => {
            let mut m = m.clone();
            m.version = bump_version(&m.version);
            m.updated = now_ms();
            Ok(m)
        }
        None => Ok(Meta::new(ns, name)),
    }
}

fn check_name_free(st: &Store, key: &str, collection: &str) -> Result<(), ApiError> {
    match st.collection_of(key) {
        Some(c) if c != collection => {
            Err(ApiError::new(409, "Resource by this name exists but is not in this collection."))
        }
        _ => Ok(()),
    }
}

fn single_name(rest: &[String]) -> Result<&str, ApiError> {
    match rest {
        [name] if !name.is_empty() => Ok(name),
        _ => Err(ApiError::not_found()),
    }
}

// ---------------------------------------------------------------- triggers

fn triggers(inner: &Arc<Inner>, req: &Req, id: &Identity, ns: &str, rest: &[String]) -> Result<Resp, ApiError> {
    if rest.is_empty() || (rest.len() == 1 && rest[0].is_empty()) {
        own(id, ns, ns)?;
        let st = lock(&inner.store);
        return Ok(Resp::json(200, &list_simple(st.triggers.values().map(|t| &t.meta), ns)));
    }
    let name = single_name(rest)?;
    let key = format!("{ns}/{name}");
    own(id, ns, &key)?;
    match req.method.as_str() {
        "GET" => {
            let st = lock(&inner.store);
            st.triggers.get(&key).map(|t| Resp::json(200, &t.to_json())).ok_or_else(ApiError::not_found)
        }
        "PUT" => {
            let body = body_object(req)?;
            let mut st = lock(&inner.store);
            check_name_free(&st, &key, "triggers")?;
            let existing = st.triggers.get(&key);
            let mut meta = begin_put(existing.map(|t| &t.meta), ns, name, overwrite(req))?;
            let rules = existing.map(|t| t.rules.clone()).unwrap_or_default();
            apply_meta(&mut meta, &body)?;
            let t = Trigger { meta, rules };
            let doc = t.to_json();
            st.triggers.insert(key, t);
            Ok(Resp::json(200, &doc))
        }
        "DELETE" => {
            let mut st = lock(&inner.store);
            st.triggers.remove(&key).map(|t| Resp::json(200, &t.to_json())).ok_or_else(ApiError::not_found)
        }
        "POST" => fire(inner, req, id, ns, name),
        _ => Err(ApiError::new(405, "method not allowed")),
    }
}

/// Fires a trigger: 429 throttled, 404 missing, 204 no active rule, else 202 and one async
/// invocation per active rule, as the controller does it (apache/openwhisk core/controller/src/
/// main/scala/org/apache/openwhisk/core/controller/Triggers.scala:136-197): the payload merged
/// over `__ow_headers` (the request's headers, lowercased), over the trigger's parameters; each
/// rule's action invoked through the actions API with the firing identity's key (:330-420), so
/// the invocation throttles apply and a refusal is only a line in the trigger's activation.
fn fire(inner: &Arc<Inner>, req: &Req, id: &Identity, ns: &str, name: &str) -> Result<Resp, ApiError> {
    throttle(inner, &id.namespace)?;
    let payload = body_object(req)?;
    let key = format!("{ns}/{name}");
    let (trigger, resolved) = {
        let st = lock(&inner.store);
        let trigger = st.triggers.get(&key).cloned().ok_or_else(ApiError::not_found)?;
        let resolved: Vec<(String, String, Result<invoker::Resolved, ApiError>)> = trigger
            .rules
            .iter()
            .filter(|(_, l)| l.status == "active")
            .map(|(rule, l)| (rule.clone(), l.action.clone(), resolve_fqn(&st, &id.namespace, &l.action)))
            .collect();
        (trigger, resolved)
    };
    if resolved.is_empty() {
        return Ok(Resp::empty(204));
    }
    let mut params = kv_to_map(&trigger.meta.parameters);
    params.insert("__ow_headers".to_string(), ow_headers(req));
    params.extend(payload.clone());
    let trigger_activation = random_hex(16);
    let mut logs = Vec::new();
    for (rule, action, res) in resolved {
        let action_name = action.trim_start_matches('/').to_string();
        let invoked = res.and_then(|r| {
            invoker::check_throttles(inner, &id.namespace).map_err(|(status, msg)| ApiError::new(status, msg))?;
            Ok(r)
        });
        match invoked {
            Ok(r) => {
                let activation_id = random_hex(16);
                logs.push(json!({"statusCode": 0, "success": true, "activationId": activation_id,
                                 "rule": rule, "action": action_name}));
                let mut p = r.params.clone();
                p.extend(params.clone());
                invoker::spawn(
                    inner,
                    Job {
                        action: r.action,
                        params: p,
                        identity: id.clone(),
                        activation_id,
                        cause: Some(trigger_activation.clone()),
                    },
                );
            }
            // ApplicationError (1) for a 4xx, WhiskError (3) for a 5xx (Triggers.scala:366-372)
            Err(e) => logs.push(json!({"statusCode": if e.status >= 500 { 3 } else { 1 }, "success": false,
                                        "error": e.message, "rule": rule, "action": action_name})),
        }
    }
    let now = now_ms();
    let record = json!({
        "namespace": id.namespace, "name": name, "version": trigger.meta.version, "subject": id.namespace,
        "activationId": trigger_activation, "start": now, "end": now, "duration": 0, "statusCode": 0,
        // the controller records the fire payload alone, not the merged trigger parameters
        "response": {"status": "success", "statusCode": 0, "success": true, "result": Value::Object(payload)},
        "logs": logs.iter().map(Value::to_string).collect::<Vec<_>>(),
        "annotations": [], "publish": false,
    });
    lock(&inner.store).activations.push(record);
    Ok(Resp::json(202, &json!({"activationId": trigger_activation})))
}

/// The trigger fire throttle: a fixed calendar-minute bucket per namespace, every attempt
/// counted (apache/openwhisk .../entitlement/RateThrottler.scala:33-110, Entitlement.scala:365-370).
/// `__ow_headers` of a fire: every request header, lowercased, but those pekko-http keeps on
/// the entity rather than in `request.headers` (Content-Type, Content-Length,
/// Transfer-Encoding) and its synthetic Timeout-Access (Triggers.scala:160-166).
fn ow_headers(req: &Req) -> Value {
    let skip = ["content-type", "content-length", "transfer-encoding", "timeout-access"];
    let mut headers = Map::new();
    for (k, v) in &req.headers {
        let k = k.to_ascii_lowercase();
        if !skip.contains(&k.as_str()) {
            headers.insert(k, Value::String(v.clone()));
        }
    }
    Value::Object(headers)
}

fn throttle(inner: &Inner, ns: &str) -> Result<(), ApiError> {
    let Some(limit) = *lock(&inner.fires_per_minute) else { return Ok(()) };
    let count = invoker::count_in_minute(&inner.fires, ns);
    if count > limit {
        lock(&inner.refusals).entry(ns.to_string()).or_default().fires += 1;
        return Err(ApiError::new(
            429,
            format!("Too many requests in the last minute (count: {count}, allowed: {limit})."),
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------- rules

/// Qualifies an entity reference (`t`, `/ns/t`, `/_/pkg/a`, `pkg/a`) as `/ns/...`.
fn qualify(reference: &str, caller_ns: &str) -> Result<String, ApiError> {
    let r = reference.trim();
    if r.is_empty() {
        return Err(ApiError::bad("entity reference is empty"));
    }
    let full = match r.strip_prefix('/') {
        Some(rest) => {
            let (ns, tail) = rest.split_once('/').ok_or_else(|| ApiError::bad(format!("'{r}' has no entity name")))?;
            let ns = if ns == "_" { caller_ns } else { ns };
            format!("/{ns}/{tail}")
        }
        None => format!("/{caller_ns}/{r}"),
    };
    let parts = full[1..].split('/').count();
    if full[1..].split('/').any(str::is_empty) || !(2..=3).contains(&parts) {
        return Err(ApiError::bad(format!("'{r}' is not a valid entity name")));
    }
    Ok(full)
}

fn rules(inner: &Arc<Inner>, req: &Req, id: &Identity, ns: &str, rest: &[String]) -> Result<Resp, ApiError> {
    if rest.is_empty() || (rest.len() == 1 && rest[0].is_empty()) {
        own(id, ns, ns)?;
        let st = lock(&inner.store);
        return Ok(Resp::json(200, &list_simple(st.rules.values().map(|r| &r.meta), ns)));
    }
    let name = single_name(rest)?;
    let key = format!("{ns}/{name}");
    own(id, ns, &key)?;
    match req.method.as_str() {
        "GET" => {
            let st = lock(&inner.store);
            let rule = st.rules.get(&key).ok_or_else(ApiError::not_found)?;
            Ok(Resp::json(200, &rule.to_json(&rule_status(&st, rule, &key))))
        }
        "PUT" => {
            let body = body_object(req)?;
            let trigger = body.get("trigger").and_then(Value::as_str);
            let action = body.get("action").and_then(Value::as_str);
            let mut st = lock(&inner.store);
            check_name_free(&st, &key, "rules")?;
            let existing = st.rules.get(&key).cloned();
            let mut meta = begin_put(existing.as_ref().map(|r| &r.meta), ns, name, overwrite(req))?;
            apply_meta(&mut meta, &body)?;
            let trigger = match (trigger, &existing) {
                (Some(t), _) => qualify(t, ns)?,
                (None, Some(r)) => r.trigger.clone(),
                (None, None) => return Err(ApiError::bad("rule: 'trigger' is required")),
            };
            let action = match (action, &existing) {
                (Some(a), _) => qualify(a, ns)?,
                (None, Some(r)) => r.action.clone(),
                (None, None) => return Err(ApiError::bad("rule: 'action' is required")),
            };
            let tkey = trigger.trim_start_matches('/').to_string();
            if !tkey.starts_with(&format!("{ns}/")) {
                return Err(ApiError::forbidden(&tkey));
            }
            if !st.triggers.contains_key(&tkey) {
                return Err(ApiError::bad(format!("rule: trigger '{trigger}' does not exist")));
            }
            if let Err(e) = resolve_fqn(&st, ns, &action) {
                return Err(ApiError::bad(format!("rule: action '{action}' cannot be used: {}", e.message)));
            }
            let mut status = "active".to_string();
            if let Some(old) = &existing {
                let old_tkey = old.trigger.trim_start_matches('/').to_string();
                if let Some(t) = st.triggers.get_mut(&old_tkey) {
                    if let Some(link) = t.rules.remove(&key) {
                        status = link.status;
                    }
                }
            }
            if let Some(t) = st.triggers.get_mut(&tkey) {
                t.rules.insert(key.clone(), RuleLink { action: action.clone(), status: status.clone() });
            }
            let rule = Rule { meta, trigger, action };
            let doc = rule.to_json(&status);
            st.rules.insert(key, rule);
            Ok(Resp::json(200, &doc))
        }
        "POST" => {
            let body = body_object(req)?;
            let status = match body.get("status").and_then(Value::as_str) {
                Some(s @ ("active" | "inactive")) => s.to_string(),
                _ => return Err(ApiError::bad("rule: 'status' must be \"active\" or \"inactive\"")),
            };
            let mut st = lock(&inner.store);
            let rule = st.rules.get(&key).cloned().ok_or_else(ApiError::not_found)?;
            let tkey = rule.trigger.trim_start_matches('/').to_string();
            let t = st
                .triggers
                .get_mut(&tkey)
                .ok_or_else(|| ApiError::new(404, format!("rule: its trigger '{}' does not exist", rule.trigger)))?;
            t.rules.insert(key.clone(), RuleLink { action: rule.action.clone(), status: status.clone() });
            Ok(Resp::json(200, &rule.to_json(&status)))
        }
        "DELETE" => {
            let mut st = lock(&inner.store);
            let rule = st.rules.remove(&key).ok_or_else(ApiError::not_found)?;
            let status = st
                .triggers
                .get_mut(rule.trigger.trim_start_matches('/'))
                .and_then(|t| t.rules.remove(&key))
                .map(|l| l.status)
                .unwrap_or_else(|| "inactive".to_string());
            Ok(Resp::json(200, &rule.to_json(&status)))
        }
        _ => Err(ApiError::new(405, "method not allowed")),
    }
}

fn rule_status(st: &Store, rule: &Rule, key: &str) -> String {
    st.triggers
        .get(rule.trigger.trim_start_matches('/'))
        .and_then(|t| t.rules.get(key))
        .map(|l| l.status.clone())
        .unwrap_or_else(|| "inactive".to_string())
}

// ---------------------------------------------------------------- packages

/// A page of a namespace's packages as the controller lists them: newest update first, `skip`
/// and `limit` (default 30, 0 meaning the maximum of 200, more refused) applied, each summary
/// with its annotations and binding but no parameters (apache/openwhisk core/controller/.../
/// controller/Packages.scala:205-228, RestAPIs.scala:115-126, WhiskStore.scala:217 (`descending
/// = true`), common/scala/src/main/resources/application.conf:518-520, and the `packages` view
/// of ansible/files/whisks_design_document_for_entities_db_v2.1.0.json).
fn list_packages_page(st: &Store, ns: &str, only_public: bool, req: &Req) -> Result<Value, ApiError> {
    let (skip, limit) = list_window(req)?;
    let mut all: Vec<&Package> =
        st.packages.values().filter(|p| p.meta.namespace == ns && (!only_public || p.meta.publish)).collect();
    all.sort_by(|a, b| b.meta.updated.cmp(&a.meta.updated).then_with(|| b.meta.name.cmp(&a.meta.name)));
    let page: Vec<&Package> = all.into_iter().skip(skip).take(limit).collect();
    Ok(summaries(page.into_iter()))
}

/// `skip` and `limit` of a list of packages (RestAPIs.scala:115-140; messages
/// common/scala/.../http/ErrorResponse.scala:185-196).
fn list_window(req: &Req) -> Result<(usize, usize), ApiError> {
    let not_integer = |v: &str| ApiError::bad(format!("The value '{v}' is not an integer for packages."));
    let skip = match req.query_param("skip") {
        None => 0,
        Some(s) => match s.parse::<i64>() {
            Ok(n) if n >= 0 => n as usize,
            Ok(n) => {
                return Err(ApiError::bad(format!("The value '{n}' is not greater than or equal to 0 for packages.")))
            }
            Err(_) => return Err(not_integer(&s)),
        },
    };
    let limit = match req.query_param("limit") {
        None => 30,
        Some(l) => match l.parse::<i64>() {
            Ok(0) => 200,
            Ok(n) if (1..=200).contains(&n) => n as usize,
            Ok(n) => {
                return Err(ApiError::bad(format!("The value '{n}' is not in the range of 0 to 200 for packages.")))
            }
            Err(_) => return Err(not_integer(&l)),
        },
    };
    Ok((skip, limit))
}

fn list_packages(st: &Store, ns: &str, only_public: bool) -> Value {
    summaries(st.packages.values().filter(|p| p.meta.namespace == ns && (!only_public || p.meta.publish)))
}

fn summaries<'a>(packages: impl Iterator<Item = &'a Package>) -> Value {
    Value::Array(
        packages
            .map(|p| {
                let binding = match &p.binding {
                    Some((bns, bname)) => json!({"namespace": bns, "name": bname}),
                    None => json!(false),
                };
                json!({"namespace": p.meta.namespace, "name": p.meta.name, "version": p.meta.version,
                       "publish": p.meta.publish, "annotations": p.meta.annotations, "binding": binding,
                       "updated": p.meta.updated})
            })
            .collect(),
    )
}

fn packages(inner: &Arc<Inner>, req: &Req, id: &Identity, ns: &str, rest: &[String]) -> Result<Resp, ApiError> {
    if rest.is_empty() || (rest.len() == 1 && rest[0].is_empty()) {
        let st = lock(&inner.store);
        return Ok(Resp::json(200, &list_packages_page(&st, ns, id.namespace != ns, req)?));
    }
    let name = single_name(rest)?;
    let key = format!("{ns}/{name}");
    match req.method.as_str() {
        "GET" => {
            let st = lock(&inner.store);
            let p = st.packages.get(&key);
            if id.namespace != ns && !p.is_some_and(|p| p.meta.publish) {
                return Err(ApiError::forbidden(&key));
            }
            if inner.config.shared_packages_execute_only {
                // Packages.scala:188-190 (fetch) and :343-344 (mergePackageWithBinding);
                // messages from common/scala/.../http/ErrorResponse.scala:270-273.
                if id.namespace != ns {
                    let msg = format!("GET not permitted for '{ns}/{name}' since it's a shared package");
                    return Err(ApiError::new(403, msg));
                }
                if p.and_then(|p| p.binding.as_ref()).is_some_and(|(bns, _)| bns != ns) {
                    let msg = format!("GET not permitted since {name} is a binding of a shared package");
                    return Err(ApiError::new(403, msg));
                }
            }
            st.package_json(&key).map(|d| Resp::json(200, &d)).ok_or_else(ApiError::not_found)
        }
        "PUT" => {
            own(id, ns, &key)?;
            let body = body_object(req)?;
            let mut st = lock(&inner.store);
            check_name_free(&st, &key, "packages")?;
            let existing = st.packages.get(&key).cloned();
            let mut meta = begin_put(existing.as_ref().map(|p| &p.meta), ns, name, overwrite(req))?;
            apply_meta(&mut meta, &body)?;
            let binding = match body.get("binding") {
                Some(Value::Object(b)) if !b.is_empty() => {
                    let bns = b.get("namespace").and_then(Value::as_str).unwrap_or("_");
                    let bns = if bns == "_" { ns } else { bns };
                    let bname = b
                        .get("name")
                        .and_then(Value::as_str)
                        .ok_or_else(|| ApiError::bad("package: 'binding.name' is required"))?;
                    let target = st.packages.get(&format!("{bns}/{bname}")).ok_or_else(|| {
                        ApiError::bad(format!("package: binding target '/{bns}/{bname}' does not exist"))
                    })?;
                    if target.binding.is_some() {
                        return Err(ApiError::bad("package: cannot bind to another package binding"));
                    }
                    if bns != ns && !target.meta.publish {
                        return Err(ApiError::forbidden(&format!("{bns}/{bname}")));
                    }
                    Some((bns.to_string(), bname.to_string()))
                }
                Some(Value::Object(_)) | Some(Value::Null) | Some(Value::Bool(false)) => None,
                Some(_) => return Err(ApiError::bad("package: 'binding' must be an object {namespace, name}")),
                None => existing.as_ref().and_then(|p| p.binding.clone()),
            };
            st.packages.insert(key.clone(), Package { meta, binding });
            Ok(Resp::json(200, &st.package_json(&key).unwrap_or(Value::Null)))
        }
        "DELETE" => {
            own(id, ns, &key)?;
            let mut st = lock(&inner.store);
            if !st.packages.contains_key(&key) {
                return Err(ApiError::not_found());
            }
            let prefix = format!("{key}/");
            let n = st.actions.keys().filter(|k| k.starts_with(&prefix)).count();
            if n > 0 {
                let what = if n == 1 { "entity" } else { "entities" };
                return Err(ApiError::new(409, format!("Package not empty (contains {n} {what})")));
            }
            let doc = st.package_json(&key).unwrap_or(Value::Null);
            st.packages.remove(&key);
            Ok(Resp::json(200, &doc))
        }
        _ => Err(ApiError::new(405, "method not allowed")),
    }
}

// ---------------------------------------------------------------- actions

fn list_actions(st: &Store, ns: &str, pkg: Option<&str>) -> Value {
    let prefix = match pkg {
        Some(p) => format!("{ns}/{p}/"),
        None => format!("{ns}/"),
    };
    Value::Array(
        st.actions
            .iter()
            .filter(|(k, _)| k.starts_with(&prefix))
            .map(|(_, a)| {
                let mut d = a.to_json(false);
                if let Some(m) = d.as_object_mut() {
                    m.remove("parameters");
                }
                d
            })
            .collect(),
    )
}

/// Resolves `/ns/[pkg/]a` for a caller in `caller_ns` (entitlement and bindings included).
pub(crate) fn resolve_fqn(st: &Store, caller_ns: &str, fqn: &str) -> Result<invoker::Resolved, ApiError> {
    let parts: Vec<&str> = fqn.trim_start_matches('/').split('/').collect();
    match parts.as_slice() {
        [ns, a] => resolve_action(st, caller_ns, ns, None, a),
        [ns, p, a] => resolve_action(st, caller_ns, ns, Some(p), a),
        _ => Err(ApiError::bad(format!("'{fqn}' is not a valid action name"))),
    }
}

/// Finds the action `ns/[pkg/]name` for a caller, following a binding, with parameters merged
/// as the controller does: package < binding < action.
pub(crate) fn resolve_action(
    st: &Store,
    caller_ns: &str,
    ns: &str,
    pkg: Option<&str>,
    name: &str,
) -> Result<invoker::Resolved, ApiError> {
    let (action_key, mut params) = match pkg {
        None => {
            if caller_ns != ns {
                return Err(ApiError::forbidden(&format!("{ns}/{name}")));
            }
            (format!("{ns}/{name}"), Map::new())
        }
        Some(p) => {
            let pkey = format!("{ns}/{p}");
            let package = st.packages.get(&pkey);
            if caller_ns != ns && !package.is_some_and(|p| p.meta.publish) {
                return Err(ApiError::forbidden(&pkey));
            }
            let package = package.ok_or_else(ApiError::not_found)?;
            match &package.binding {
                Some((bns, bname)) => {
                    let target = st.packages.get(&format!("{bns}/{bname}")).ok_or_else(ApiError::not_found)?;
                    if bns != caller_ns && !target.meta.publish {
                        return Err(ApiError::forbidden(&format!("{bns}/{bname}")));
                    }
                    let mut params = kv_to_map(&target.meta.parameters);
                    params.extend(kv_to_map(&package.meta.parameters));
                    (format!("{bns}/{bname}/{name}"), params)
                }
                None => (format!("{pkey}/{name}"), kv_to_map(&package.meta.parameters)),
            }
        }
    };
    let action = st.actions.get(&action_key).cloned().ok_or_else(ApiError::not_found)?;
    params.extend(kv_to_map(&action.meta.parameters));
    Ok(invoker::Resolved { action, params })
}

fn actions(inner: &Arc<Inner>, req: &Req, id: &Identity, ns: &str, rest: &[String]) -> Result<Resp, ApiError> {
    let (pkg, name) = match rest {
        [] => (None, ""),
        [n] => (None, n.as_str()),
        [p, n] => (Some(p.as_str()), n.as_str()),
        _ => return Err(ApiError::not_found()),
    };
    if name.is_empty() {
        if req.method != "GET" {
            return Err(ApiError::new(405, "method not allowed"));
        }
        let st = lock(&inner.store);
        if let Some(p) = pkg {
            // listing a package's actions follows a binding, like the controller
            let pkey = format!("{ns}/{p}");
            let package = st.packages.get(&pkey);
            if id.namespace != ns && !package.is_some_and(|p| p.meta.publish) {
                return Err(ApiError::forbidden(&pkey));
            }
            let package = package.ok_or_else(ApiError::not_found)?;
            let list = match &package.binding {
                Some((bns, bname)) => list_actions(&st, bns, Some(bname)),
                None => list_actions(&st, ns, Some(p)),
            };
            return Ok(Resp::json(200, &list));
        }
        own(id, ns, ns)?;
        return Ok(Resp::json(200, &list_actions(&st, ns, None)));
    }
    let key = match pkg {
        Some(p) => format!("{ns}/{p}/{name}"),
        None => format!("{ns}/{name}"),
    };
    match req.method.as_str() {
        "GET" => {
            let st = lock(&inner.store);
            let r = resolve_action(&st, &id.namespace, ns, pkg, name)?;
            let with_code = req.query_param("code").is_none_or(|c| c != "false");
            let mut doc = r.action.to_json(with_code);
            let list: Vec<Value> = r.params.into_iter().map(|(k, v)| json!({"key": k, "value": v})).collect();
            doc["parameters"] = Value::Array(list);
            Ok(Resp::json(200, &doc))
        }
        "PUT" => {
            own(id, ns, &key)?;
            let body = body_object(req)?;
            let doc = put_action(inner, req, ns, pkg, name, &key, &body)?;
            invoker::purge(inner, &format!("/{key}"));
            Ok(Resp::json(200, &doc))
        }
        "DELETE" => {
            own(id, ns, &key)?;
            let removed = lock(&inner.store).actions.remove(&key).ok_or_else(ApiError::not_found)?;
            invoker::purge(inner, &format!("/{key}"));
            Ok(Resp::json(200, &removed.to_json(false)))
        }
        "POST" => {
            let payload = body_object(req)?;
            let resolved = {
                let st = lock(&inner.store);
                resolve_action(&st, &id.namespace, ns, pkg, name)?
            };
            invoker::check_throttles(inner, &id.namespace).map_err(|(status, msg)| ApiError::new(status, msg))?;
            let mut params = resolved.params;
            params.extend(payload);
            let blocking = req.query_param("blocking").is_some_and(|v| v == "true");
            let result_only = req.query_param("result").is_some_and(|v| v == "true");
            let job = Job {
                action: resolved.action,
                params,
                identity: id.clone(),
                activation_id: random_hex(16),
                cause: None,
            };
            let activation_id = job.activation_id.clone();
            if !blocking {
                invoker::spawn(inner, job);
                return Ok(Resp::json(202, &json!({"activationId": activation_id})));
            }
            match invoker::run_blocking(inner, job, inner.config.blocking_wait) {
                Some(record) => {
                    let status = match record["response"]["statusCode"].as_u64() {
                        Some(0) => 200,
                        Some(3) => 500,
                        _ => 502,
                    };
                    let body = if result_only { record["response"]["result"].clone() } else { record };
                    Ok(Resp::json(status, &body))
                }
                None => Ok(Resp::json(202, &json!({"activationId": activation_id}))),
            }
        }
        _ => Err(ApiError::new(405, "method not allowed")),
    }
}

fn put_action(
    inner: &Arc<Inner>,
    req: &Req,
    ns: &str,
    pkg: Option<&str>,
    name: &str,
    key: &str,
    body: &Map<String, Value>,
) -> Result<Value, ApiError> {
    let mut st = lock(&inner.store);
    if let Some(p) = pkg {
        let package = st.packages.get(&format!("{ns}/{p}")).ok_or_else(ApiError::not_found)?;
        if package.binding.is_some() {
            return Err(ApiError::bad("action: cannot create an action in a package binding"));
        }
    }
    check_name_free(&st, key, "actions")?;
    let existing = st.actions.get(key).cloned();
    let namespace = match pkg {
        Some(p) => format!("{ns}/{p}"),
        None => ns.to_string(),
    };
    let mut meta = begin_put(existing.as_ref().map(|a| &a.meta), &namespace, name, overwrite(req))?;
    apply_meta(&mut meta, body)?;
    let code = match (body.get("exec"), &existing) {
        (Some(exec), _) => parse_exec(exec)?,
        (None, Some(a)) => a.code.clone(),
        (None, None) => return Err(ApiError::bad("action: 'exec' is required")),
    };
    let limits = body.get("limits").cloned().unwrap_or(json!({}));
    let timeout_ms = match limits.get("timeout") {
        Some(t) => t
            .as_u64()
            .filter(|t| (100..=300_000).contains(t))
            .ok_or_else(|| ApiError::bad("action: 'limits.timeout' must be between 100 and 300000 milliseconds"))?,
        None => existing.as_ref().map(|a| a.timeout_ms).unwrap_or(60_000),
    };
    let memory_mb = match limits.get("memory") {
        Some(m) => m
            .as_u64()
            .filter(|m| (128..=512).contains(m))
            .ok_or_else(|| ApiError::bad("action: 'limits.memory' must be between 128 and 512 MB"))?,
        None => existing.as_ref().map(|a| a.memory_mb).unwrap_or(256),
    };
    let mut annotations = meta.annotations.as_array().cloned().unwrap_or_default();
    annotations.retain(|a| a["key"] != "exec");
    let action_kind = match &code {
        Code::Zip { kind, .. } => kind.clone(),
        Code::Alarm(_) => "nodejs:20".to_string(),
    };
    annotations.push(json!({"key": "exec", "value": action_kind}));
    meta.annotations = Value::Array(annotations);
    let action = Action { meta, code, timeout_ms, memory_mb };
    let doc = action.to_json(false);
    st.actions.insert(key.to_string(), action);
    Ok(doc)
}

fn parse_exec(exec: &Value) -> Result<Code, ApiError> {
    let kind =
        exec.get("kind").and_then(Value::as_str).ok_or_else(|| ApiError::bad("action: 'exec.kind' is required"))?;
    if kind == "sequence" {
        return Err(ApiError::bad("action: sequences are not supported by the emulator"));
    }
    let code = exec.get("code").and_then(Value::as_str).ok_or_else(|| {
        ApiError::bad("action: 'exec.code' is required (a base64 zip holding a top-level 'exec' binary)")
    })?;
    let zip = base64::engine::general_purpose::STANDARD
        .decode(code.trim())
        .map_err(|e| ApiError::bad(format!("action: 'exec.code' must be a base64 zip: {e}")))?;
    invoker::check_zip(&zip).map_err(ApiError::bad)?;
    Ok(Code::Zip { kind: kind.to_string(), code: code.trim().to_string() })
}

// ---------------------------------------------------------------- activations

fn activations(inner: &Arc<Inner>, req: &Req, id: &Identity, ns: &str, rest: &[String]) -> Result<Resp, ApiError> {
    own(id, ns, ns)?;
    if req.method != "GET" {
        return Err(ApiError::new(405, "method not allowed"));
    }
    let st = lock(&inner.store);
    let mine = st.activations.iter().filter(|a| a["namespace"] == ns);
    match rest {
        [] => {
            let name = req.query_param("name");
            let limit: usize = req.query_param("limit").and_then(|l| l.parse().ok()).unwrap_or(30).clamp(1, 200);
            let skip: usize = req.query_param("skip").and_then(|l| l.parse().ok()).unwrap_or(0);
            let docs = req.query_param("docs").is_some_and(|d| d == "true");
            let since = req.query_param("since").and_then(|s| s.parse::<u64>().ok());
            let list: Vec<Value> = mine
                .rev()
                .filter(|a| {
                    name.as_deref().is_none_or(|n| a["name"] == n || a["name"] == n.rsplit('/').next().unwrap_or(n))
                })
                .filter(|a| since.is_none_or(|s| a["start"].as_u64().unwrap_or(0) >= s))
                .skip(skip)
                .take(limit)
                .map(|a| {
                    let mut a = a.clone();
                    if !docs {
                        if let Some(m) = a.as_object_mut() {
                            m.remove("logs");
                            m.remove("response");
                        }
                    }
                    a
                })
                .collect();
            Ok(Resp::json(200, &Value::Array(list)))
        }
        [aid, tail @ ..] => {
            let record = mine.clone().find(|a| a["activationId"] == aid.as_str()).ok_or_else(ApiError::not_found)?;
            match tail {
                [] => Ok(Resp::json(200, record)),
                [t] if t == "logs" => Ok(Resp::json(200, &json!({"logs": record["logs"]}))),
                [t] if t == "result" => Ok(Resp::json(200, &record["response"])),
                _ => Err(ApiError::not_found()),
            }
        }
    }
}

// ---------------------------------------------------------------- control

fn control(inner: &Arc<Inner>, req: &Req, rest: &str) -> Resp {
    let segs: Vec<String> = rest.trim_end_matches('/').split('/').map(percent_decode).collect();
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    match (req.method.as_str(), segs.as_slice()) {
        ("POST", ["alarms", "fire"]) => {
            let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
            let fired: Vec<(String, u16)> = match body.get("trigger").and_then(Value::as_str) {
                Some(t) => alarms::fire_one(inner, t).map(|s| vec![(t.to_string(), s)]).unwrap_or_default(),
                None => alarms::fire_all(inner),
            };
            let list: Vec<Value> = fired.into_iter().map(|(t, s)| json!({"trigger": t, "status": s})).collect();
            Resp::json(200, &json!({"fired": list}))
        }
        ("GET", ["alarms"]) => Resp::json(200, &alarms::describe_all(inner)),
        ("GET", ["activations", ns]) => {
            let st = lock(&inner.store);
            let list: Vec<Value> = st.activations.iter().filter(|a| a["namespace"] == *ns).cloned().collect();
            Resp::json(200, &Value::Array(list))
        }
        ("POST", ["wait-idle"]) => {
            let ms = req.query_param("timeout_ms").and_then(|t| t.parse().ok()).unwrap_or(10_000);
            let idle = invoker::wait_idle(inner, Duration::from_millis(ms));
            Resp::json(200, &json!({"idle": idle}))
        }
        ("POST", ["faults"]) => match serde_json::from_slice::<FaultRule>(&req.body) {
            Ok(rule) => {
                lock(&inner.faults).push(rule);
                Resp::json(200, &json!({"ok": true}))
            }
            Err(e) => Resp::error(400, &format!("fault rule: {e}")),
        },
        ("DELETE", ["faults"]) => {
            lock(&inner.faults).clear();
            Resp::json(200, &json!({"ok": true}))
        }
        ("PUT", ["invocation-limits"]) => match serde_json::from_slice::<crate::InvocationLimits>(&req.body) {
            Ok(limits) => {
                *lock(&inner.invocation_limits) = limits;
                lock(&inner.invocations).clear();
                Resp::json(200, &json!({"ok": true}))
            }
            Err(e) => Resp::error(400, &format!("invocation-limits: {e}")),
        },
        ("PUT", ["fires-per-minute"]) => {
            let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
            match &body["limit"] {
                Value::Null => *lock(&inner.fires_per_minute) = None,
                v => match v.as_u64().and_then(|n| u32::try_from(n).ok()) {
                    Some(n) => *lock(&inner.fires_per_minute) = Some(n),
                    None => {
                        return Resp::error(400, "fires-per-minute: 'limit' must be a non-negative integer or null")
                    }
                },
            }
            lock(&inner.fires).clear();
            Resp::json(200, &json!({"ok": true}))
        }
        ("GET", ["keys", ns]) => match inner.keys.get(*ns) {
            Some(k) => Resp::json(200, &json!({"namespace": ns, "key": k})),
            None => Resp::error(404, &format!("no namespace '{ns}'")),
        },
        _ => Resp::error(404, "unknown emulator control path"),
    }
}

// ---------------------------------------------------------------- url helpers

/// Decodes `%XX` escapes (and nothing else); invalid escapes stay as they are.
pub(crate) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = |b: u8| (b as char).to_digit(16);
            if let (Some(&h), Some(&l)) = (bytes.get(i + 1), bytes.get(i + 2)) {
                if let (Some(h), Some(l)) = (hex(h), hex(l)) {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Splits a query string into decoded pairs (`+` is a space).
pub(crate) fn parse_query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(&k.replace('+', " ")), percent_decode(&v.replace('+', " ")))
        })
        .collect()
}
