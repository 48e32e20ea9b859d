//! The hooks pattern: a producer (GitHub, a CloudEvents Subscriptions API manager, anything
//! that can POST) delivers to a per-trigger receiver web action, which verifies each request
//! and fires the user's trigger.
//!
//! This module is the receiver's decision logic as a plain function ([`process`]) from an
//! HTTP request ([`HookRequest`]) and the hook's config ([`HookConfig`]) to either an HTTP
//! answer or a list of CloudEvents to fire. It does no I/O: firing is `receiver`'s job, the
//! lifecycle is `feed`'s, and talking to producers is the registration plugins' (the contract
//! in `registrar`; `registrar::Unregistered` here, the others in their features: `crate::github`,
//! `crate::subscription`, `crate::s3::notify`). Which sources exist is the registry's (`crate::registry::HOOK_SOURCES`): the
//! pattern reaches a source's registrar, delivery format and companion through the extension
//! points in `extension`, and names no feature.
//!
//! Files: `extension` (the extension points), `registrar` (the registration contract and its
//! HTTP helper), `feed` (the hook feed action), `receiver` (the `receive` web action), `tests`
//! (table tests of `process`).
//!
//! # What `process` does, in order
//! 1. `OPTIONS`: the CloudEvents webhook abuse-protection handshake. It needs no token (Azure
//!    Event Grid sends none); consent only lets a producer try, every delivery is still
//!    authenticated. An allowed `WebHook-Request-Origin` (`allowedOrigins`, default `*`) gets
//!    `WebHook-Allowed-Origin` (the origin echoed) and `WebHook-Allowed-Rate` (`allowedRate`,
//!    default `*`); any other origin gets 403 without them. A `WebHook-Request-Callback` is
//!    never called: we always answer synchronously, so a callback is not needed.
//! 2. Methods other than `POST` (and `OPTIONS`): 405.
//! 3. A body over `maxBodyBytes` (default 1 MiB): 413.
//! 4. Authentication, constant time: `Authorization: Bearer <secret>`, `?access_token=<secret>`
//!    or GitHub's `X-Hub-Signature-256: sha256=<HMAC-SHA256(secret, raw body)>`. Else 401.
//! 5. Mode by `Content-Type` (case-insensitive): `application/cloudevents-batch+json` (batched),
//!    `application/cloudevents+json` (structured), other `application/cloudevents…` formats
//!    415; a request with any `ce-*` header is binary mode (values percent-decoded once, bad
//!    escapes and non-UTF-8 rejected); anything else is a plain delivery wrapped into a
//!    CloudEvent. Malformed events: 400.
//! 6. Subscription filters (`filters`): events that do not match are accepted and not fired.
//!
//! # Plain deliveries
//! `id` is the delivery id header (`X-GitHub-Delivery`, `Webhook-Id`, `X-Delivery-Id`,
//! `X-Request-Id`) or else a SHA-256 of the body, so a redelivery keeps its id. `type` is
//! `com.github.<X-GitHub-Event>` for GitHub, [`GENERIC_TYPE`] otherwise. `source` is the
//! repository's URL for GitHub, else the hook's URL. `data` is the JSON body, the text of a
//! `text/*` body, or `data_base64` for anything else. GitHub's `ping` is answered and not fired.
//!
//! # Requests authenticated only by a body signature
//! `X-Hub-Signature-256` covers the body alone, so such a request takes its mode and every
//! identifying attribute from the body (see `signed_events`): a replay with new headers fires
//! the same event again, never a new one.

pub mod extension;
pub mod feed;
pub mod receiver;
pub mod registrar;

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::events::{decode_header_value, hex, validate_cloud_event};
use crate::filter::{matches_all, parse_filters, SubscriptionFilter};
use crate::openwhisk::OwError;
use crate::params::{ParamError, Params};
use crate::secret::Secret;
use extension::{Fired, HookSource, Mapping};

/// The event type of a plain (non-CloudEvents, non-GitHub) delivery.
pub const GENERIC_TYPE: &str = "org.openwhisk.feeds.hooks.received";
/// The event type of a signed GitHub delivery: GitHub's event name is in no signed part of
/// the request, so it is the unsigned extension attribute `githubevent`, not the type.
pub const GITHUB_SIGNED_TYPE: &str = "com.github.webhook";
/// Default `maxBodyBytes`: OpenWhisk's own request limit.
pub const DEFAULT_MAX_BODY_BYTES: u64 = 1024 * 1024;
/// Largest accepted `maxBodyBytes`.
pub const MAX_BODY_BYTES_LIMIT: u64 = 50 * 1024 * 1024;
/// `Retry-After` seconds when OpenWhisk throttles without saying how long.
pub const DEFAULT_RETRY_AFTER_SECS: u64 = 60;
/// `Retry-After` seconds after a platform failure.
const SERVER_RETRY_AFTER_SECS: u64 = 30;

/// Headers that carry a producer's delivery id, most specific first.
const DELIVERY_ID_HEADERS: [&str; 4] = ["x-github-delivery", "webhook-id", "x-delivery-id", "x-request-id"];

/// Where a hook's deliveries come from (parameter `source`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceKind {
    /// A GitHub repository webhook, signed with `X-Hub-Signature-256`.
    GitHub,
    /// A CloudEvents Subscriptions API manager, sending `Authorization: Bearer`.
    Subscription,
    /// S3 bucket notifications, mapped to the S3 feed's events by the S3 feature.
    S3,
    /// Nothing registered: the user configures the producer with the URL and token.
    None,
}

impl SourceKind {
    /// Every accepted value, for error messages.
    pub const ALL: &'static str = "github, subscription, s3 or none";

    /// Parses the `source` parameter (case-insensitive).
    pub fn parse(value: &str) -> Option<SourceKind> {
        match value.trim().to_ascii_lowercase().as_str() {
            "github" => Some(SourceKind::GitHub),
            "subscription" => Some(SourceKind::Subscription),
            "s3" => Some(SourceKind::S3),
            "none" => Some(SourceKind::None),
            _ => None,
        }
    }

    /// The parameter value naming this kind.
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::GitHub => "github",
            SourceKind::Subscription => "subscription",
            SourceKind::S3 => "s3",
            SourceKind::None => "none",
        }
    }

    /// Reads the required `source` parameter.
    pub fn from_params(params: &Params) -> Result<SourceKind, ParamError> {
        let raw = params.required_str("source")?;
        SourceKind::parse(&raw).ok_or_else(|| ParamError::invalid("source", SourceKind::ALL, &Value::String(raw)))
    }
}

/// `WebHook-Allowed-Rate`: requests per minute, or `*` for any.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AllowedRate {
    /// No limit.
    Any,
    /// At most this many per minute.
    PerMinute(u64),
}

/// What the receiver needs to judge a request; read from the hook's binding parameters.
#[derive(Clone, Debug)]
pub struct HookConfig {
    /// Where deliveries come from.
    pub source: SourceKind,
    /// The bearer token and HMAC key.
    pub secret: Secret,
    /// Subscription filters; all must match for an event to fire.
    pub filters: Vec<SubscriptionFilter>,
    /// Origins the handshake consents to; `*` allows any.
    pub allowed_origins: Vec<String>,
    /// The rate the handshake grants.
    pub allowed_rate: AllowedRate,
    /// Largest accepted body.
    pub max_body_bytes: u64,
    /// The receiver's URL (the `source` of wrapped plain deliveries).
    pub url: Option<String>,
    /// `owner/repo`, for the `source` of GitHub deliveries without a repository in the body.
    pub repository: Option<String>,
    /// A paused hook accepts deliveries and fires nothing.
    pub paused: bool,
    /// The producer's id for this hook (GitHub's hook id), when one is registered.
    pub registration: Option<String>,
    /// The trigger (`/namespace/name`): salts the ids of S3 notification events, as polling does.
    pub trigger_name: Option<String>,
    /// For a source whose deliveries are its producer's own format: how they become events.
    pub mapping: Option<Arc<dyn Mapping>>,
}

/// Reads and checks `filters` (a JSON array, or a string holding one).
pub fn filters_from_params(params: &Params) -> Result<Vec<SubscriptionFilter>, ParamError> {
    let Some(raw) = params.raw("filters") else { return Ok(Vec::new()) };
    let value = match raw {
        Value::String(s) => serde_json::from_str::<Value>(s)
            .map_err(|_| ParamError::invalid("filters", "a JSON array of subscription filters", raw))?,
        other => other.clone(),
    };
    parse_filters(&value).map_err(|e| ParamError::invalid("filters", &format!("subscription filters ({e})"), raw))
}

impl HookConfig {
    /// Reads the config of a hook of one of `sources`; `secret` is required. Errors name the
    /// parameter.
    pub fn from_params(params: &Params, sources: &[HookSource]) -> Result<HookConfig, ParamError> {
        let source = SourceKind::from_params(params)?;
        let secret = params.required_secret("secret")?;
        let filters = filters_from_params(params)?;
        let entry = HookSource::find(sources, source).ok_or_else(|| {
            ParamError::invalid("source", "a source this receiver serves", &Value::String(source.as_str().into()))
        })?;
        let mapping = entry.deliveries.map(|d| d.mapping(params)).transpose()?;
        let allowed_origins = match params.list("allowedOrigins")? {
            None => vec!["*".to_string()],
            Some(list) if list.is_empty() => {
                return Err(ParamError::invalid(
                    "allowedOrigins",
                    "a non-empty list of origins or *",
                    params.raw("allowedOrigins").unwrap_or(&Value::Null),
                ))
            }
            Some(list) => list,
        };
        let allowed_rate = match params.str("allowedRate")? {
            None => AllowedRate::Any,
            Some(s) if s.trim() == "*" => AllowedRate::Any,
            Some(_) => AllowedRate::PerMinute(params.u64_in("allowedRate", 1, 1_000_000)?.unwrap_or(1)),
        };
        let max_body_bytes = params.u64_in("maxBodyBytes", 1, MAX_BODY_BYTES_LIMIT)?.unwrap_or(DEFAULT_MAX_BODY_BYTES);
        Ok(HookConfig {
            source,
            secret,
            filters,
            allowed_origins,
            allowed_rate,
            max_body_bytes,
            url: params.str("url")?,
            repository: params.str("repository")?,
            paused: params.bool("paused")?.unwrap_or(false),
            registration: params.str("registration")?.filter(|r| !r.is_empty()),
            trigger_name: params.str("triggerName")?,
            mapping,
        })
    }

    fn allows_origin(&self, origin: &str) -> bool {
        self.allowed_origins.iter().any(|o| o == "*" || o.eq_ignore_ascii_case(origin))
    }
}

/// One HTTP request to the receiver, as a raw-HTTP web action sees it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HookRequest {
    /// Upper-case method.
    pub method: String,
    /// Headers with lower-case names.
    pub headers: BTreeMap<String, String>,
    /// The raw query string, without `?`.
    pub query: String,
    /// The raw body.
    pub body: Vec<u8>,
}

impl HookRequest {
    /// Builds the request from raw-HTTP web action parameters (`__ow_method`, `__ow_headers`,
    /// `__ow_query`, `__ow_body`).
    pub fn from_params(params: &Params) -> HookRequest {
        let text = |name: &str| params.raw(name).and_then(Value::as_str).unwrap_or_default().to_string();
        let mut headers = BTreeMap::new();
        if let Some(Value::Object(map)) = params.raw("__ow_headers") {
            for (k, v) in map {
                let v = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                headers.insert(k.to_ascii_lowercase(), v);
            }
        }
        let content_type = headers.get("content-type").cloned().unwrap_or_default();
        HookRequest {
            method: text("__ow_method").to_ascii_uppercase(),
            query: text("__ow_query"),
            body: decode_ow_body(&text("__ow_body"), &content_type),
            headers,
        }
    }

    /// A header by lower-case name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    fn content_type(&self) -> String {
        self.header("content-type").unwrap_or_default().trim().to_ascii_lowercase()
    }

    /// The first value of a query parameter, percent-decoded.
    pub fn query_param(&self, name: &str) -> Option<String> {
        self.query.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let decode =
                |s: &str| percent_encoding::percent_decode_str(&s.replace('+', " ")).decode_utf8_lossy().into_owned();
            (decode(k) == name).then(|| decode(v))
        })
    }
}

/// The media type without parameters, lower case.
fn media_type(content_type: &str) -> String {
    content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase()
}

fn is_json_type(content_type: &str) -> bool {
    let mt = media_type(content_type);
    mt == "application/json" || mt.ends_with("+json") || mt == "text/json"
}

fn is_text_type(content_type: &str) -> bool {
    let mt = media_type(content_type);
    mt.starts_with("text/")
        || mt == "application/x-www-form-urlencoded"
        || mt == "application/xml"
        || mt == "application/javascript"
}

/// Types OpenWhisk always passes as base64, whatever their parameters say.
fn is_binary_type(content_type: &str) -> bool {
    let mt = media_type(content_type);
    ["image/", "audio/", "video/"].iter().any(|p| mt.starts_with(p))
        || ["application/octet-stream", "application/zip", "application/gzip", "application/pdf"].contains(&mt.as_str())
}

/// True when `bytes` is one JSON text (checked without building it).
fn is_json(bytes: &[u8]) -> bool {
    serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok()
}

/// Recovers the raw body from `__ow_body`.
///
/// OpenWhisk (raw HTTP) passes base64 when the content type is binary to Akka HTTP or is
/// `application/json`, and plain text otherwise; which side of that line a type such as
/// `application/cloudevents+json` falls on depends on its parameters. So: binary types are
/// base64-decoded; a JSON type is taken as text only when its text is JSON and its base64
/// decoding is not (so a body that is not valid JSON is judged, and sized, as the bytes the
/// producer sent, not as their base64); text types, and unknown types with a `charset`, are
/// taken as they are; other types are base64-decoded when they decode.
pub fn decode_ow_body(raw: &str, content_type: &str) -> Vec<u8> {
    if raw.is_empty() {
        return Vec::new();
    }
    let decoded = || BASE64.decode(raw.trim()).ok();
    if is_json_type(content_type) {
        return match decoded() {
            Some(bytes) if is_json(&bytes) || !is_json(raw.as_bytes()) => bytes,
            _ => raw.as_bytes().to_vec(),
        };
    }
    if is_binary_type(content_type) {
        return decoded().unwrap_or_else(|| raw.as_bytes().to_vec());
    }
    if is_text_type(content_type) || content_type.to_ascii_lowercase().contains("charset=") {
        return raw.as_bytes().to_vec();
    }
    decoded().unwrap_or_else(|| raw.as_bytes().to_vec())
}

/// The receiver's HTTP answer.
#[derive(Clone, Debug, PartialEq)]
pub struct HookResponse {
    /// HTTP status.
    pub status: u16,
    /// Response headers.
    pub headers: Vec<(String, String)>,
    /// JSON body (`Null` for none).
    pub body: Value,
}

impl HookResponse {
    /// A response with a JSON body and no extra headers.
    pub fn new(status: u16, body: Value) -> HookResponse {
        HookResponse { status, headers: Vec::new(), body }
    }

    /// An error answer: `{"error": message}`.
    pub fn error(status: u16, message: impl Into<String>) -> HookResponse {
        HookResponse::new(status, json!({ "error": message.into() }))
    }

    /// Adds a header.
    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> HookResponse {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    /// The web action result: `{statusCode, headers, body}`.
    pub fn to_web_result(&self) -> Value {
        let headers: Map<String, Value> =
            self.headers.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect();
        let mut out = json!({ "statusCode": self.status, "headers": headers });
        if !self.body.is_null() {
            out["body"] = self.body.clone();
        }
        out
    }
}

/// What the receiver does with a request.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// Answer without firing anything.
    Respond(HookResponse),
    /// Fire these events (in order), then answer with [`after_fire`].
    Fire {
        /// The accepted payloads that passed the filters, typed.
        events: Vec<Fired>,
        /// How many accepted events the filters dropped.
        filtered: usize,
    },
}

/// Judges one request: handshake, method, size, authentication, parsing, filters. No I/O.
pub fn process(config: &HookConfig, req: &HookRequest) -> Outcome {
    match process_inner(config, req) {
        Ok(outcome) => outcome,
        Err(response) => Outcome::Respond(response),
    }
}

/// `Err` is a refusal; an early answer that is no refusal (handshake, ping, paused) is an
/// `Ok(Outcome::Respond)`.
fn process_inner(config: &HookConfig, req: &HookRequest) -> Result<Outcome, HookResponse> {
    match req.method.as_str() {
        "OPTIONS" => return Ok(Outcome::Respond(handshake(config, req))),
        "POST" => {}
        other => {
            return Err(HookResponse::error(405, format!("method {other} not allowed: deliver with POST"))
                .with_header("Allow", "POST, OPTIONS"))
        }
    }
    config.check_size(req)?;
    let Some(auth) = authenticate(config, req) else {
        return Err(HookResponse::error(
            401,
            "not authenticated: expected Authorization: Bearer <token>, ?access_token=<token> or a valid X-Hub-Signature-256",
        ));
    };
    check_github_hook(config, req)?;
    if req.header("x-github-event").map(str::trim) == Some("ping") {
        return Ok(Outcome::Respond(HookResponse::new(200, json!({ "status": "pong" }))));
    }
    if let Some(mapping) = &config.mapping {
        // Only the token proves the sender: a producer with its own format signs nothing with
        // the hook's secret.
        if auth != Auth::Token {
            return Err(HookResponse::error(
                401,
                format!(
                    "not authenticated: {} deliveries need Authorization: Bearer <token> or ?access_token=<token>",
                    config.source.as_str()
                ),
            ));
        }
        return Ok(mapping.map(config, &req.body));
    }
    let events = match auth {
        Auth::Token => parse_events(config, req)?,
        Auth::Signature => signed_events(config, req)?,
    };
    if config.paused {
        let answer = HookResponse::new(202, json!({ "status": "paused", "fired": 0, "dropped": events.len() }));
        return Ok(Outcome::Respond(answer));
    }
    let total = events.len();
    let events: Vec<Fired> = events.into_iter().filter(|e| matches_all(&config.filters, e)).map(Fired::event).collect();
    Ok(Outcome::Fire { filtered: total - events.len(), events })
}

impl HookConfig {
    /// 413 for a body over `maxBodyBytes`.
    pub fn check_size(&self, req: &HookRequest) -> Result<(), HookResponse> {
        if req.body.len() as u64 > self.max_body_bytes {
            return Err(HookResponse::error(
                413,
                format!(
                    "body of {} bytes is over the limit of {} bytes (maxBodyBytes)",
                    req.body.len(),
                    self.max_body_bytes
                ),
            ));
        }
        Ok(())
    }
}

/// A delivery from another GitHub hook than the one registered (an old hook left at GitHub
/// after a re-registration, or a delivery replayed to the wrong endpoint) is refused.
fn check_github_hook(config: &HookConfig, req: &HookRequest) -> Result<(), HookResponse> {
    let Some(registered) = config.registration.as_deref().filter(|_| config.source == SourceKind::GitHub) else {
        return Ok(());
    };
    let from_header = req.header("x-github-hook-id").map(|h| h.trim().to_string());
    // A ping names its hook in the signed body too.
    let from_body = serde_json::from_slice::<Value>(&req.body)
        .ok()
        .and_then(|b| b.get("hook_id").map(|v| v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())));
    for given in [from_header, from_body].into_iter().flatten() {
        if given != registered {
            return Err(HookResponse::error(
                403,
                "the delivery comes from another GitHub hook than the one registered for this trigger",
            ));
        }
    }
    Ok(())
}

/// The abuse-protection handshake (CloudEvents HTTP webhook, section 4).
fn handshake(config: &HookConfig, req: &HookRequest) -> HookResponse {
    let Some(origin) = req.header("webhook-request-origin").map(str::trim).filter(|o| !o.is_empty()) else {
        return HookResponse::error(
            400,
            "OPTIONS without WebHook-Request-Origin: only the webhook handshake is served",
        )
        .with_header("Allow", "POST, OPTIONS");
    };
    // The origin is echoed in a header: anything but a plain token is refused, not echoed.
    if !origin.bytes().all(|b| b.is_ascii_graphic()) || origin.len() > 255 {
        return HookResponse::error(
            400,
            "WebHook-Request-Origin must be a host name (visible ASCII, no spaces or control characters)",
        );
    }
    if !config.allows_origin(origin) {
        return HookResponse::error(403, format!("origin {origin:?} is not in allowedOrigins"));
    }
    let rate = match config.allowed_rate {
        AllowedRate::Any => "*".to_string(),
        AllowedRate::PerMinute(n) => n.to_string(),
    };
    HookResponse::new(200, Value::Null)
        .with_header("WebHook-Allowed-Origin", origin)
        .with_header("WebHook-Allowed-Rate", rate)
        .with_header("Allow", "POST, OPTIONS")
}

/// Byte comparison whose time does not depend on where the inputs differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Strict hex: digits and letters a-f only (`from_str_radix` alone would take a `+` sign).
fn hex_decode(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok()).collect()
}

/// GitHub's `X-Hub-Signature-256` value for `body`: `sha256=<hex HMAC-SHA256>`.
pub fn github_signature(secret: &Secret, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.expose().as_bytes()).expect("HMAC takes any key length");
    mac.update(body);
    format!("sha256={}", hex(&mac.finalize().into_bytes()))
}

fn valid_signature(secret: &Secret, body: &[u8], header: &str) -> bool {
    let Some(given) = header.trim().strip_prefix("sha256=").and_then(hex_decode) else { return false };
    let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(secret.expose().as_bytes()) else { return false };
    mac.update(body);
    mac.verify_slice(&given).is_ok()
}

/// How a request proved it comes from the hook's producer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Auth {
    /// The bearer token or `access_token`: whoever holds it speaks for the producer, headers included.
    Token,
    /// Only `X-Hub-Signature-256`, which covers the body and nothing else.
    Signature,
}

fn authenticate(config: &HookConfig, req: &HookRequest) -> Option<Auth> {
    if token_matches(config, req) {
        return Some(Auth::Token);
    }
    match req.header("x-hub-signature-256") {
        Some(sig) if valid_signature(&config.secret, &req.body, sig) => Some(Auth::Signature),
        _ => None,
    }
}

fn token_matches(config: &HookConfig, req: &HookRequest) -> bool {
    let secret = config.secret.expose().as_bytes();
    if let Some(auth) = req.header("authorization") {
        // Compare bytes: the header may hold any UTF-8, and a char boundary need not fall at 7.
        let auth = auth.trim().as_bytes();
        if auth.len() > 7
            && auth[..7].eq_ignore_ascii_case(b"bearer ")
            && constant_time_eq(auth[7..].trim_ascii(), secret)
        {
            return true;
        }
    }
    match req.query_param("access_token") {
        Some(token) => constant_time_eq(token.as_bytes(), secret),
        None => false,
    }
}

fn bad_request(message: impl Into<String>) -> HookResponse {
    HookResponse::error(400, message)
}

fn parse_json(body: &[u8], what: &str) -> Result<Value, HookResponse> {
    serde_json::from_slice(body).map_err(|e| bad_request(format!("{what}: body is not valid JSON: {e}")))
}

fn checked(event: Value) -> Result<Value, HookResponse> {
    validate_cloud_event(&event).map_err(|e| bad_request(e.to_string()))?;
    Ok(event)
}

/// The events a request carries, by mode.
fn parse_events(config: &HookConfig, req: &HookRequest) -> Result<Vec<Value>, HookResponse> {
    let ct = req.content_type();
    let mt = media_type(&ct);
    if mt == "application/cloudevents-batch+json" {
        let Value::Array(items) = parse_json(&req.body, "batched mode")? else {
            return Err(bad_request("batched mode: expected a JSON array of CloudEvents"));
        };
        return items.into_iter().map(checked).collect();
    }
    if mt == "application/cloudevents+json" {
        return Ok(vec![checked(parse_json(&req.body, "structured mode")?)?]);
    }
    if mt.starts_with("application/cloudevents") {
        return Err(HookResponse::error(415, format!("event format {mt} is not supported: use JSON")));
    }
    if req.headers.keys().any(|k| k.starts_with("ce-")) {
        return Ok(vec![binary_event(req, &ct)?]);
    }
    Ok(vec![plain_event(config, req, &ct)?])
}

/// The events of a request authenticated only by a body signature. Everything that decides
/// what is fired comes from the signed body: the mode (a JSON object with `specversion` is a
/// structured CloudEvent, an array of them a batch, anything else a plain delivery), and for a
/// plain delivery `id` (a hash of the body), `source` (the body's repository, else the config)
/// and `type` (by the configured `source`). `ce-*`, `Content-Type` and the delivery headers are
/// not signed: they cannot change id, type, source or mode. GitHub's event name and delivery
/// id are kept as the extension attributes `githubevent` and `githubdelivery`, which are not
/// covered by the signature.
fn signed_events(config: &HookConfig, req: &HookRequest) -> Result<Vec<Value>, HookResponse> {
    let body_json = serde_json::from_slice::<Value>(&req.body).ok();
    let is_event = |v: &Value| v.get("specversion").is_some();
    match &body_json {
        Some(v) if is_event(v) => return Ok(vec![checked(v.clone())?]),
        Some(Value::Array(items)) if items.first().is_some_and(is_event) => {
            return items.iter().cloned().map(checked).collect()
        }
        _ => {}
    }
    let digest = Sha256::digest(&req.body);
    let mut event = Map::new();
    event.insert("specversion".into(), json!("1.0"));
    event.insert("id".into(), json!(format!("sha256-{}", hex(&digest[..16]))));
    event.insert("source".into(), json!(body_source(config, body_json.as_ref())));
    let kind = match config.source {
        SourceKind::GitHub => GITHUB_SIGNED_TYPE,
        _ => GENERIC_TYPE,
    };
    event.insert("type".into(), json!(kind));
    if let Some(action) = body_json.as_ref().and_then(|b| b.get("action")).and_then(Value::as_str) {
        event.insert("subject".into(), json!(action));
    }
    event.insert("time".into(), json!(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)));
    for (header, attribute) in [("x-github-event", "githubevent"), ("x-github-delivery", "githubdelivery")] {
        let value = req.header(header).map(str::trim).filter(|v| !v.is_empty() && v.len() <= 200);
        if let Some(v) = value.filter(|v| v.bytes().all(|b| b.is_ascii_graphic())) {
            event.insert(attribute.into(), json!(v));
        }
    }
    match body_json {
        Some(data) if !req.body.is_empty() => {
            event.insert("datacontenttype".into(), json!("application/json"));
            event.insert("data".into(), data);
        }
        _ if !req.body.is_empty() => {
            event.insert("datacontenttype".into(), json!("application/octet-stream"));
            event.insert("data_base64".into(), json!(BASE64.encode(&req.body)));
        }
        _ => {}
    }
    Ok(vec![checked(Value::Object(event))?])
}

/// The `source` of a wrapped delivery: the repository in the body, else the config's.
fn body_source(config: &HookConfig, body_json: Option<&Value>) -> String {
    let from_body = body_json.and_then(|b| b.pointer("/repository/html_url")).and_then(Value::as_str);
    match (config.source, from_body) {
        (_, Some(url)) => url.to_string(),
        (SourceKind::GitHub, None) => config
            .repository
            .as_ref()
            .map(|r| format!("https://github.com/{r}"))
            .unwrap_or_else(|| "https://github.com".to_string()),
        _ => config.url.clone().unwrap_or_else(|| "/owfeed/hook".to_string()),
    }
}

/// Puts the body into `event` as `data` (JSON, or text) or `data_base64`.
fn put_data(event: &mut Map<String, Value>, body: &[u8], content_type: &str) -> Result<(), HookResponse> {
    if body.is_empty() {
        return Ok(());
    }
    if is_json_type(content_type) {
        event.insert("data".into(), parse_json(body, "data")?);
    } else if media_type(content_type).starts_with("text/") && std::str::from_utf8(body).is_ok() {
        event.insert("data".into(), Value::String(String::from_utf8_lossy(body).into_owned()));
    } else {
        event.insert("data_base64".into(), Value::String(BASE64.encode(body)));
    }
    Ok(())
}

fn binary_event(req: &HookRequest, content_type: &str) -> Result<Value, HookResponse> {
    let mut event = Map::new();
    for (name, raw) in &req.headers {
        let Some(attr) = name.strip_prefix("ce-") else { continue };
        let value = decode_header_value(raw).map_err(|e| bad_request(format!("header ce-{attr}: {e}")))?;
        event.insert(attr.to_string(), Value::String(value));
    }
    if let Some(ct) = req.header("content-type").map(str::trim).filter(|c| !c.is_empty()) {
        event.insert("datacontenttype".into(), Value::String(ct.to_string()));
    }
    put_data(&mut event, &req.body, content_type)?;
    checked(Value::Object(event))
}

fn plain_event(config: &HookConfig, req: &HookRequest, content_type: &str) -> Result<Value, HookResponse> {
    let github_event = req.header("x-github-event").map(str::trim).filter(|e| !e.is_empty());
    let id = DELIVERY_ID_HEADERS
        .iter()
        .find_map(|h| req.header(h).map(str::trim).filter(|v| !v.is_empty()))
        .map(str::to_string)
        .unwrap_or_else(|| {
            let digest = Sha256::digest(&req.body);
            format!("sha256-{}", hex(&digest[..16]))
        });
    let mut event = Map::new();
    event.insert("specversion".into(), json!("1.0"));
    event.insert("id".into(), json!(id));
    let body_json = if is_json_type(content_type) { serde_json::from_slice::<Value>(&req.body).ok() } else { None };
    let source = match github_event {
        Some(_) => body_json
            .as_ref()
            .and_then(|b| b.pointer("/repository/html_url"))
            .and_then(Value::as_str)
            .map(str::to_string)
            .or_else(|| config.repository.as_ref().map(|r| format!("https://github.com/{r}")))
            .unwrap_or_else(|| "https://github.com".to_string()),
        None => config.url.clone().unwrap_or_else(|| "/owfeed/hook".to_string()),
    };
    event.insert("source".into(), json!(source));
    let kind = match github_event {
        Some(e) => format!("com.github.{e}"),
        None => GENERIC_TYPE.to_string(),
    };
    event.insert("type".into(), json!(kind));
    if let Some(action) = body_json.as_ref().and_then(|b| b.get("action")).and_then(Value::as_str) {
        event.insert("subject".into(), json!(action));
    }
    event.insert("time".into(), json!(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)));
    let ct = req.header("content-type").map(str::trim).filter(|c| !c.is_empty());
    if let Some(ct) = ct {
        event.insert("datacontenttype".into(), json!(ct));
    }
    put_data(&mut event, &req.body, content_type)?;
    checked(Value::Object(event))
}

/// The answer after firing: `fired` events went out, then `error` (if any) stopped the rest.
pub fn after_fire(fired: usize, filtered: usize, error: Option<&OwError>) -> HookResponse {
    let body = |extra: Option<String>| {
        let mut b = json!({ "fired": fired, "filtered": filtered });
        if let Some(e) = extra {
            b["error"] = json!(e);
        }
        b
    };
    match error {
        None => HookResponse::new(202, body(None)),
        Some(OwError::Throttled { retry_after, .. }) => {
            let secs = retry_after.map(|d| d.as_secs().max(1)).unwrap_or(DEFAULT_RETRY_AFTER_SECS);
            HookResponse::new(429, body(Some("the trigger is throttled: retry later".into())))
                .with_header("Retry-After", secs.to_string())
        }
        Some(OwError::NotFound(_)) => {
            HookResponse::new(410, body(Some("the trigger no longer exists: stop sending".into())))
        }
        Some(OwError::BadRequest { status: 413, .. }) => {
            HookResponse::new(413, body(Some("the event is too large to fire".into())))
        }
        Some(e) if e.is_retryable() => HookResponse::new(503, body(Some(format!("could not fire the trigger: {e}"))))
            .with_header("Retry-After", SERVER_RETRY_AFTER_SECS.to_string()),
        Some(e) => HookResponse::new(500, body(Some(format!("could not fire the trigger: {e}")))),
    }
}

/// `Retry-After` seconds after a delivery cut because the receiver ran out of time: the
/// retry can start at once (the next activation has its whole time).
pub const OUT_OF_TIME_RETRY_AFTER_SECS: u64 = 1;

/// The answer when the receiver stopped firing because its time was up: `fired` events went
/// out and the rest did not. 503 with `Retry-After`, which every producer that retries
/// (CloudEvents webhooks, SNS: 5xx) takes as "try again", never as delivered.
pub fn out_of_time(fired: usize, filtered: usize) -> HookResponse {
    let error = "the receiver's time ran out before every event was fired: retry to deliver the rest";
    HookResponse::new(503, json!({ "fired": fired, "filtered": filtered, "error": error }))
        .with_header("Retry-After", OUT_OF_TIME_RETRY_AFTER_SECS.to_string())
}

#[cfg(test)]
mod tests;
