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

/// pekko-http's registered non-binary media types (apache/pekko-http de0c3e19 http-core/src/
/// main/scala/org/apache/pekko/http/scaladsl/model/MediaType.scala:351-544: `awfc`, `awoc`,
/// `txt`, `txtfc`).
const TEXT_MEDIA_TYPES: &str = "application/atom+xml application/base64 application/javascript application/json \
     application/json-patch+json application/merge-patch+json application/problem+json \
     application/problem+xml application/rss+xml application/soap+xml application/vnd.api+json \
     application/vnd.google-earth.kml+xml application/x-latex application/x-vrml \
     application/x-www-form-urlencoded application/xhtml+xml application/xml application/xml-dtd \
     text/asp text/cache-manifest text/calendar text/css text/csv text/event-stream text/html \
     text/markdown text/mcf text/plain text/richtext text/tab-separated-values text/uri-list \
     text/vnd.wap.wml text/vnd.wap.wmlscript text/x-asm text/x-c text/x-component text/x-h \
     text/x-java-source text/x-pascal text/x-script text/x-scriptcsh text/x-scriptelisp \
     text/x-scriptksh text/x-scriptlisp text/x-scriptperl text/x-scriptperl-module \
     text/x-scriptphyton text/x-scriptrexx text/x-scriptscheme text/x-scriptsh text/x-scripttcl \
     text/x-scripttcsh text/x-scriptzsh text/x-server-parsed-html text/x-setext text/x-sgml \
     text/x-speech text/x-uuencode text/x-vcalendar text/x-vcard text/xml";

/// pekko-http's registered binary media types (same file: `abin`, `aud`, `img`, `msg`, `vid`,
/// `fnt`); `multipart/*` is binary too (:308).
const BINARY_MEDIA_TYPES: &str = "application/cbor application/gnutar application/grpc+proto application/java-archive \
     application/lha application/lzx application/msword application/octet-stream application/pdf \
     application/postscript application/vnd.google-earth.kmz application/vnd.ms-excel \
     application/vnd.ms-excel.addin.macroenabled.12 \
     application/vnd.ms-excel.sheet.binary.macroenabled.12 \
     application/vnd.ms-excel.sheet.macroenabled.12 \
     application/vnd.ms-excel.template.macroenabled.12 application/vnd.ms-fontobject \
     application/vnd.ms-powerpoint application/vnd.ms-powerpoint.addin.macroenabled.12 \
     application/vnd.ms-powerpoint.presentation.macroenabled.12 \
     application/vnd.ms-powerpoint.slideshow.macroenabled.12 \
     application/vnd.ms-word.document.macroenabled.12 \
     application/vnd.ms-word.template.macroenabled.12 application/vnd.oasis.opendocument.chart \
     application/vnd.oasis.opendocument.database application/vnd.oasis.opendocument.formula \
     application/vnd.oasis.opendocument.graphics application/vnd.oasis.opendocument.image \
     application/vnd.oasis.opendocument.presentation \
     application/vnd.oasis.opendocument.spreadsheet application/vnd.oasis.opendocument.text \
     application/vnd.oasis.opendocument.text-master application/vnd.oasis.opendocument.text-web \
     application/vnd.openxmlformats-officedocument.presentationml.presentation \
     application/vnd.openxmlformats-officedocument.presentationml.slide \
     application/vnd.openxmlformats-officedocument.presentationml.slideshow \
     application/vnd.openxmlformats-officedocument.presentationml.template \
     application/vnd.openxmlformats-officedocument.spreadsheetml.sheet \
     application/vnd.openxmlformats-officedocument.spreadsheetml.template \
     application/vnd.openxmlformats-officedocument.wordprocessingml.document \
     application/vnd.openxmlformats-officedocument.wordprocessingml.template \
     application/x-7z-compressed application/x-ace-compressed application/x-apple-diskimage \
     application/x-arc-compressed application/x-bzip application/x-bzip2 \
     application/x-chrome-extension application/x-compress application/x-compressed \
     application/x-debian-package application/x-dvi application/x-font-opentype \
     application/x-font-truetype application/x-gtar application/x-gzip \
     application/x-rar-compressed application/x-redhat-package-manager \
     application/x-shockwave-flash application/x-tar application/x-tex application/x-texinfo \
     application/x-x509-ca-cert application/x-xpinstall application/zip audio/aiff audio/basic \
     audio/midi audio/mod audio/mpeg audio/ogg audio/voc audio/vorbis audio/voxware audio/wav \
     audio/webm audio/x-pn-realaudio audio/x-psid audio/xm font/woff font/woff2 image/gif \
     image/jpeg image/pict image/png image/svg+xml image/tiff image/webp image/x-icon \
     image/x-ms-bmp image/x-pcx image/x-pict image/x-quicktime image/x-rgb image/x-xbitmap \
     image/x-xpixmap message/delivery-status message/http message/rfc822 video/avs-video \
     video/divx video/gl video/mp4 video/mpeg video/ogg video/quicktime video/webm video/x-dv \
     video/x-flv video/x-motion-jpeg video/x-ms-asf video/x-msvideo video/x-sgi-movie";

/// The media type (lower case) and whether parameters other than `charset` are present, and
/// whether a charset is.
fn parse_content_type(content_type: &str) -> (String, bool, bool) {
    let mut parts = content_type.split(';');
    let media_type = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
    let (mut charset, mut other) = (false, false);
    for p in parts.filter(|p| !p.trim().is_empty()) {
        if p.trim().to_ascii_lowercase().starts_with("charset=") {
            charset = true;
        } else {
            other = true;
        }
    }
    (media_type, other, charset)
}

/// Whether pekko-http parses a request's Content-Type as a binary media type: registered types
/// as registered, `multipart/*` binary, an unregistered type binary unless it has a charset
/// (http-core/.../impl/model/parser/CommonActions.scala:45-63).
fn is_binary(content_type: &str) -> bool {
    let (mt, _, charset) = parse_content_type(content_type);
    let listed = |list: &str| list.split_whitespace().any(|t| t == mt);
    if mt.starts_with("multipart/") || listed(BINARY_MEDIA_TYPES) {
        return true;
    }
    !listed(TEXT_MEDIA_TYPES) && !charset
}

/// `__ow_body` is base64 exactly for binary media types and `application/json` itself
/// (apache/openwhisk core/controller/.../WebActions.scala:614-625); other types are UTF-8 text.
fn body_is_base64(content_type: &str) -> bool {
    let (mt, other_params, _) = parse_content_type(content_type);
    is_binary(content_type) || (mt == "application/json" && !other_params)
}

/// `application/json` or any `+json` type (WebActions.scala:311-313).
fn is_json(content_type: &str) -> bool {
    let (mt, _, _) = parse_content_type(content_type);
    mt == "application/json" || mt.ends_with("+json")
}

/// The request's content type as pekko-http sees it: the header, or `application/octet-stream`
/// for a body without one, or none for an empty body without one
/// (http-core/.../impl/engine/parsing/HttpMessageParser.scala:390-397).
fn request_content_type(req: &Req) -> Option<String> {
    match req.header("content-type") {
        Some(ct) => Some(ct.trim().to_string()),
        None if req.body.is_empty() => None,
        None => Some("application/octet-stream".to_string()),
    }
}

/// Whether a response body with this content type is text (else the action gives base64).
fn is_text(content_type: &str) -> bool {
    !is_binary(content_type)
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
    // pekko keeps Content-Type, Content-Length and Transfer-Encoding on the entity, not in
    // request.headers; the controller adds the entity's content type back, drops Timeout-Access
    // (WebActions.scala:110-118, :422-435).
    let skip = ["content-type", "content-length", "transfer-encoding", "timeout-access"];
    let mut headers: Map<String, Value> = req
        .headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), Value::String(v.clone())))
        .filter(|(k, _)| !skip.contains(&k.as_str()))
        .collect();
    if let Some(ct) = request_content_type(req) {
        headers.insert("content-type".into(), Value::String(ct));
    }
    params.insert("__ow_method".into(), json!(req.method.to_ascii_lowercase()));
    params.insert("__ow_headers".into(), Value::Object(headers));
    params.insert("__ow_path".into(), json!(extra));
    if raw {
        params.insert("__ow_query".into(), json!(req.query));
        params.insert("__ow_body".into(), json!(raw_body(req)));
    } else if let Some(body) = unparsed_body {
        params.insert("__ow_body".into(), body);
    }
    // the owner's invocation throttles apply (WebActions.scala:760-766, Entitlement.scala:293-300)
    if let Err((status, message)) = invoker::check_throttles(inner, &owner.namespace) {
        let mut resp = Resp::error(status, &message);
        add_cors(&mut resp, req);
        return resp;
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
                // a developer or whisk error (crash, timeout, bad result): WebActions.scala:686-689,
                // common/.../http/ErrorResponse.scala:218
                _ => Resp::json(
                    400,
                    &json!({"error": "There was an error processing your request.", "code": random_hex(16)}),
                ),
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

/// The raw body: base64 for binary media types and `application/json`, UTF-8 text otherwise.
fn raw_body(req: &Req) -> String {
    let ct = request_content_type(req).unwrap_or_default();
    if req.body.is_empty() {
        return String::new();
    }
    if body_is_base64(&ct) {
        base64::engine::general_purpose::STANDARD.encode(&req.body)
    } else {
        String::from_utf8_lossy(&req.body).into_owned()
    }
}

/// Parameters the caller supplies in non-raw mode (query, then a JSON object or form body), and
/// the body as `__ow_body` when it is neither.
fn request_params(req: &Req, raw: bool) -> Result<(Map<String, Value>, Option<Value>), String> {
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
    let ct = request_content_type(req).unwrap_or_default();
    if is_json(&ct) {
        // a JSON body that is not an object is __ow_body as JSON (WebActions.scala:131-137)
        match serde_json::from_slice::<Value>(&req.body) {
            Ok(Value::Object(m)) => params.extend(m),
            Ok(other) => return Ok((params, Some(other))),
            Err(e) => return Err(format!("The request content was malformed: {e}")),
        }
    } else if parse_content_type(&ct).0 == "application/x-www-form-urlencoded" {
        for (k, v) in parse_query(&String::from_utf8_lossy(&req.body)) {
            params.insert(k, Value::String(v));
        }
    } else {
        return Ok((params, Some(Value::String(raw_body(req)))));
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
