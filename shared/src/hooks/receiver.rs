//! The `receive` web action (raw HTTP): builds the request from `__ow_*` parameters, reads the
//! hook config the per-trigger binding merged in, lets [`super::process`] judge it, fires the
//! accepted events at the user's trigger with the activation's own key, and answers with
//! `{statusCode, headers, body}`.
//!
//! It always answers with an HTTP result (never an action error), logs one line per request
//! without parameters or headers (they carry tokens), and knows nothing about producers.

use serde_json::{json, Value};

use super::{after_fire, process, HookConfig, HookRequest, HookResponse, Outcome};
use crate::openwhisk::{AuthKey, Client, QualifiedName};
use crate::params::Params;
use crate::runtime::{log, ActionError, Context};

/// The receiver's handler.
pub fn receive(ctx: &Context, params: Params) -> Result<Value, ActionError> {
    let response = handle(ctx, &params);
    log(&format!("receive: {} {}", params.raw("__ow_method").and_then(Value::as_str).unwrap_or("?"), response.status));
    Ok(response.to_web_result())
}

fn handle(ctx: &Context, params: &Params) -> HookResponse {
    if !params.has("__ow_method") {
        return HookResponse::error(400, "receive is a raw HTTP web action: call it through its web URL");
    }
    // Without a secret this is the shared package's action itself, not a hook's binding.
    if !params.has("secret") {
        return HookResponse::error(404, "no hook is configured at this URL");
    }
    let config = match HookConfig::from_params(params) {
        Ok(c) => c,
        Err(e) => return HookResponse::error(500, format!("the hook's config is invalid: {e}")),
    };
    let request = HookRequest::from_params(params);
    let (events, filtered) = match process(&config, &request) {
        Outcome::Respond(r) => return r,
        Outcome::Fire { events, filtered } => (events, filtered),
    };
    let client = match client(ctx, params) {
        Ok(c) => c,
        Err(message) => return HookResponse::error(500, message),
    };
    let trigger = match params.str("triggerName").ok().flatten().map(|t| QualifiedName::parse(&t, &ctx.namespace)) {
        Some(Ok(t)) => t,
        _ => return HookResponse::error(500, "the hook's config has no valid triggerName"),
    };
    let mut fired = 0;
    for event in &events {
        if let Err(e) = client.fire_trigger(&trigger, event) {
            log(&format!("receive: firing {trigger}: {e}"));
            return after_fire(fired, filtered, Some(&e));
        }
        fired += 1;
    }
    let mut response = after_fire(fired, filtered, None);
    if let Value::Object(body) = &mut response.body {
        body.insert("ids".into(), json!(events.iter().map(|e| e["id"].clone()).collect::<Vec<_>>()));
    }
    response
}

fn client(ctx: &Context, params: &Params) -> Result<Client, String> {
    let key = ctx.api_key.as_ref().ok_or("receive: no API key in the activation (needs provide-api-key)")?;
    let auth =
        AuthKey::parse(key.expose()).map_err(|_| "receive: the activation's API key is malformed".to_string())?;
    let host = ctx.api_host.as_deref().ok_or("receive: __OW_API_HOST is not set")?;
    // A self-hosted API host with a private CA: the package's or the hook's TLS parameters.
    let tls = crate::openwhisk::ApiTls::from_params(params).map_err(|e| format!("receive: {e}"))?;
    Client::new(host, auth).with_tls(&tls)
}
