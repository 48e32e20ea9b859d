//! Web actions: `/api/v1/web/{ns}/{pkg|default}/{action}.{ext}[/path]`.
//!
//! Builds the action parameters from the HTTP request (`__ow_method`, `__ow_headers`, `__ow_path`,
//! raw mode `__ow_query`/`__ow_body`, otherwise query and JSON/form body merged), runs the action
//! blocking as the namespace in the URL, and shapes the HTTP response from the result
//! (`.http`: `{statusCode, headers, body}`; `.json`: the result as JSON). It does not implement
//! `require-whisk-auth` or result projections.

use std::sync::Arc;

use base64::Engine;
use serde_json::{json, Map, Value};

use crate::invoker::{self, Job};
use crate::server::{parse_query, percent_decode, resolve_action, Identity, Req, Resp};
use crate::store::{kv_get, kv_to_map, kv_truthy, random_hex};
use crate::{lock, Inner};

const EXTENSIONS: [&str; 5] = ["http", "json", "html", "svg", "text"];

const CORS_METHODS: &str = "OPTIONS, GET, DELETE, POST, PUT, HEAD, PATCH";
const CORS_HEADERS: &str = "Authorization, Origin, X-Requested-With, Content-Type, Accept, User-Agent";

/// True for content types whose bodies are text (everything else is base64 in params/results).
fn is_text(content_type: &str) -> bool {
    let ct = content_type.to_ascii_lowercase();
    ct.is_empty()
        || ct.starts_with("text/")
        || ct.contains("json")
        || ct.contains("xml")
        || ct.contains("javascript")
        || ct.starts_with("application/x-www-form-urlencoded")
}

fn is_json(content_type: &str) -> bool {
    content_type.to_ascii_lowercase().contains("json")
}

fn not_found() -> Resp {
    Resp::error(404, "The requested resource does not exist.")
}

/// Serves one web action request; `rest` is the path after `/api/v1/web/`.
pub(crate) fn handle(inner: &Arc<Inner>, req: &Req, rest: &str) -> Resp {
    let segs: Vec<&str> = rest.splitn(4, '/').collect();
    if segs.len() < 3 {
        return not_found();
    }
    let ns = percent_decode(segs[0]);
    let pkg = percent_decode(segs[1]);
    let last = percent_decode(segs[2]);
    let extra = segs.get(3).map(|p| format!("/{p}")).unwrap_or_default();
    let (name, ext) = match last.rsplit_once('.') {
        Some((n, e)) if EXTENSIONS.contains(&e) => (n.to_string(), e.to_string()),
        _ => (last.clone(), "http".to_string()),
    };
    let Some(key) = inner.keys.get(&ns).cloned() else { return not_found() };
    let owner = Identity { namespace: ns.clone(), key };
    let resolved = {
        let st = lock(&inner.store);
        let pkg = if pkg == "default" { None } else { Some(pkg.as_str()) };
        match resolve_action(&st, &ns, &ns, pkg, &name) {
            Ok(r) => r,
            Err(_) => return not_found(),
        }
    };
    let annotations = resolved.action.meta.annotations.clone();
    if !kv_truthy(&annotations, "web-export") {
        return not_found();
    }
    let custom_options = kv_truthy(&annotations, "web-custom-options");
    if req.method == "OPTIONS" && !custom_options {
        let mut resp = Resp::empty(200);
        add_cors(&mut resp, req);
        return resp;
    }
    let raw = kv_get(&annotations, "raw-http").is_some_and(|_| kv_truthy(&annotations, "raw-http"));
    let (request_params, unparsed_body) = match request_params(req, raw) {
        Ok(p) => p,
        Err(msg) => return Resp::error(400, &msg),
    };
    let final_params = kv_truthy(&annotations, "final");
    let defined = kv_to_map(&resolved.action.meta.parameters);
    let forbidden = request_params.keys().any(|k| k.starts_with("__ow_") || (final_params && defined.contains_key(k)));
    if forbidden {
        return Resp::error(400, "Request defines parameters that are not allowed (e.g., reserved properties).");
    }
    let mut params = resolved.params;
    params.extend(request_params);
    let headers: Map<String, Value> =
        req.headers.iter().map(|(k, v)| (k.to_ascii_lowercase(), Value::String(v.clone()))).collect();
    params.insert("__ow_method".into(), json!(req.method.to_ascii_lowercase()));
    params.insert("__ow_headers".into(), Value::Object(headers));
    params.insert("__ow_path".into(), json!(extra));
    if raw {
        params.insert("__ow_query".into(), json!(req.query));
        params.insert("__ow_body".into(), json!(raw_body(req)));
    } else if let Some(body) = unparsed_body {
        params.insert("__ow_body".into(), json!(body));
    }
    let job = Job { action: resolved.action, params, identity: owner, activation_id: random_hex(16), cause: None };
    let activation_id = job.activation_id.clone();
    let mut resp = match invoker::run_blocking(inner, job, inner.config.blocking_wait) {
        None => Resp::json(202, &json!({"activationId": activation_id})),
        Some(record) => {
            let result = record["response"]["result"].clone();
            match record["response"]["statusCode"].as_u64() {
                Some(0) => shape(&ext, &result),
                Some(1) => match &result["error"] {
                    e @ Value::Object(m)
                        if ext == "http" && (m.contains_key("statusCode") || m.contains_key("body")) =>
                    {
                        shape(&ext, e)
                    }
                    e => Resp::json(400, &json!({"error": e, "code": random_hex(16)})),
                },
                _ => Resp::error(502, "The action did not produce a valid response."),
            }
        }
    };
    resp.headers.push(("x-openwhisk-activation-id".to_string(), activation_id));
    if !custom_options {
        add_cors(&mut resp, req);
    }
    resp
}

fn add_cors(resp: &mut Resp, req: &Req) {
    let allow_headers = req.header("access-control-request-headers").unwrap_or(CORS_HEADERS).to_string();
    resp.headers.push(("Access-Control-Allow-Origin".to_string(), "*".to_string()));
    resp.headers.push(("Access-Control-Allow-Methods".to_string(), CORS_METHODS.to_string()));
    resp.headers.push(("Access-Control-Allow-Headers".to_string(), allow_headers));
}

/// The raw body: base64 for binary or JSON content, plain text otherwise.
fn raw_body(req: &Req) -> String {
    let ct = req.header("content-type").unwrap_or("");
    if req.body.is_empty() {
        return String::new();
    }
    if is_json(ct) || !is_text(ct) {
        base64::engine::general_purpose::STANDARD.encode(&req.body)
    } else {
        String::from_utf8_lossy(&req.body).into_owned()
    }
}

/// Parameters the caller supplies in non-raw mode (query, then a JSON object or form body), and
/// the body as `__ow_body` when it is neither.
fn request_params(req: &Req, raw: bool) -> Result<(Map<String, Value>, Option<String>), String> {
    let mut params = Map::new();
    if raw {
        return Ok((params, None));
    }
    for (k, v) in parse_query(&req.query) {
        params.insert(k, Value::String(v));
    }
    if req.body.iter().all(u8::is_ascii_whitespace) {
        return Ok((params, None));
    }
    let ct = req.header("content-type").unwrap_or("").to_ascii_lowercase();
    if is_json(&ct) {
        match serde_json::from_slice::<Value>(&req.body) {
            Ok(Value::Object(m)) => params.extend(m),
            Ok(_) => return Ok((params, Some(raw_body(req)))),
            Err(e) => return Err(format!("The request content was malformed: {e}")),
        }
    } else if ct.starts_with("application/x-www-form-urlencoded") {
        for (k, v) in parse_query(&String::from_utf8_lossy(&req.body)) {
            params.insert(k, Value::String(v));
        }
    } else {
        return Ok((params, Some(raw_body(req))));
    }
    Ok((params, None))
}

/// Shapes the HTTP response from a successful result.
fn shape(ext: &str, result: &Value) -> Resp {
    match ext {
        "json" => Resp::json(200, result),
        // apache/openwhisk WebActions.scala (resultAsHtml/resultAsSvg/resultAsText, :188-225):
        // `body` first, then the extension's own field; `.text` prints any JSON value (objects
        // pretty-printed) with 200 and answers 404 without either field.
        "html" | "svg" => {
            let (field, ct) = if ext == "svg" { ("svg", "image/svg+xml") } else { ("html", "text/html") };
            match result.get("body").or_else(|| result.get(field)).and_then(Value::as_str) {
                Some(s) => Resp {
                    status: 200,
                    headers: vec![("Content-Type".to_string(), ct.to_string())],
                    body: s.as_bytes().to_vec(),
                },
                None => Resp::error(400, &format!("Response is not valid '{ct}'.")),
            }
        }
        "text" => {
            let text = match result.get("body").or_else(|| result.get("text")) {
                Some(Value::String(s)) => s.clone(),
                Some(v @ (Value::Object(_) | Value::Array(_))) => serde_json::to_string_pretty(v).unwrap_or_default(),
                Some(v) => v.to_string(),
                None => return Resp::error(404, "The requested property does not exist."),
            };
            Resp {
                status: 200,
                headers: vec![("Content-Type".to_string(), "text/plain; charset=UTF-8".to_string())],
                body: text.into_bytes(),
            }
        }
        _ => shape_http(result),
    }
}

fn shape_http(result: &Value) -> Resp {
    let mut headers: Vec<(String, String)> = Vec::new();
    if let Some(h) = result.get("headers").and_then(Value::as_object) {
        for (k, v) in h {
            let v = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            headers.push((k.clone(), v));
        }
    }
    let content_type = headers.iter().find(|(k, _)| k.eq_ignore_ascii_case("content-type")).map(|(_, v)| v.clone());
    let body = result.get("body");
    let status = match result.get("statusCode").and_then(Value::as_u64).and_then(|s| u16::try_from(s).ok()) {
        Some(s) => s,
        None if body.is_none() => 204,
        None => 200,
    };
    let bytes = match body {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => match &content_type {
            Some(ct) if !is_text(ct) => match base64::engine::general_purpose::STANDARD.decode(s) {
                Ok(b) => b,
                Err(_) => {
                    return Resp::error(
                        400,
                        "The action did not produce a valid base64 body for a binary content type.",
                    )
                }
            },
            Some(_) => s.as_bytes().to_vec(),
            None => {
                headers.push(("Content-Type".to_string(), "text/html".to_string()));
                s.as_bytes().to_vec()
            }
        },
        Some(other) => {
            if content_type.is_none() {
                headers.push(("Content-Type".to_string(), "application/json".to_string()));
            }
            other.to_string().into_bytes()
        }
    };
    Resp { status, headers, body: bytes }
}
