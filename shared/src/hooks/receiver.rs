//! The `receive` web action (raw HTTP): builds the request from `__ow_*` parameters, reads the
//! hook config the per-trigger binding merged in, lets [`super::process`] judge it, fires the
//! accepted events at the user's trigger with the activation's own key, and answers with
//! `{statusCode, headers, body}`.
//!
//! It always answers with an HTTP result (never an action error), logs one line per request
//! without parameters or headers (they carry tokens), and knows nothing about producers.
//!
//! # Batches cut by a failed fire
//! Fires stop at the first failure (429 when the namespace's fire rate is used up). For a
//! request carrying more than one event, the ids delivered so far are then kept in a small
//! per-trigger record in the user's namespace, the package `{trigger}.owfeed-hook-batches`
//! (parameter `batches`: SHA-256 of the body → delivered ids, the newest [`MAX_BATCHES`]),
//! and the answer names `delivered` and `pending` ids. A retry of the same body skips the
//! delivered events (`skipped`) and fires the rest; when it completes, its entry is removed.
//! Two retries of one batch racing each other can both fire its pending events (at least once).
//!
//! # The last failure
//! A producer sees a failed delivery in our answer, the trigger's owner would not: so the same
//! record keeps `lastFailure` (`at`, the `status` answered, the `error`), written only when a
//! fire fails or the receiver fails on its side (500, 502: an invalid config, an SNS
//! certificate it cannot fetch), and READ shows it. Refusals of what a sender got wrong (4xx)
//! write nothing, so strangers cannot make us write. Successes write nothing (no cost per
//! delivery), so it stays, with its time, until the next failure replaces it or DELETE
//! removes the record.

use std::collections::BTreeSet;

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use super::sns::{self, SnsTrust};
use super::{after_fire, process, HookConfig, HookRequest, HookResponse, Outcome};
use crate::openwhisk::{from_key_values, key_values, AuthKey, Client, OwError, QualifiedName};
use crate::params::Params;
use crate::runtime::{log, ActionError, Context};

/// The receiver's handler, as shipped: SNS messages are trusted from AWS's SNS hosts only.
pub fn receive(ctx: &Context, params: Params) -> Result<Value, ActionError> {
    receive_with(ctx, params, &SnsTrust::aws())
}

/// The receiver's handler with the SNS trust given by the binary (see `sns`, "The test
/// switch"): only a test fixture passes anything but [`SnsTrust::aws`].
pub fn receive_with(ctx: &Context, params: Params, trust: &SnsTrust) -> Result<Value, ActionError> {
    let response = handle(ctx, &params, trust);
    log(&format!("receive: {} {}", params.raw("__ow_method").and_then(Value::as_str).unwrap_or("?"), response.status));
    Ok(response.to_web_result())
}

fn handle(ctx: &Context, params: &Params, trust: &SnsTrust) -> HookResponse {
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
    // SNS signs instead of sending our token, and needs I/O to be checked (`sns`).
    let outcome = if sns::is_sns(&config, &request) {
        sns::receive(&config, params, &request, trust)
    } else {
        process(&config, &request)
    };
    let (events, filtered) = match outcome {
        // A fault on our side or at SNS (an invalid config, a certificate that cannot be
        // fetched) stops every delivery as surely as a failed fire: it is recorded too. Not
        // the 503 that asks SNS to retry a confirmation sent before CREATE stored the topic.
        Outcome::Respond(r) if matches!(r.status, 500 | 502) => {
            note_failure(ctx, params, &request.body, &r);
            return r;
        }
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
    let batch = (events.len() > 1).then(|| BatchRecord::load(&client, &trigger, &request.body));
    let batched = batch.is_some();
    let earlier: BTreeSet<String> = batch.as_ref().map(BatchRecord::delivered).unwrap_or_default();
    let id_of = payload_id;
    let mut fired_ids = Vec::new();
    let mut skipped = Vec::new();
    let mut failure = None;
    for event in &events {
        let id = id_of(event);
        if earlier.contains(&id) {
            skipped.push(id);
            continue;
        }
        if let Err(e) = client.fire_trigger(&trigger, event) {
            log(&format!("receive: firing {trigger}: {e}"));
            failure = Some(e);
            break;
        }
        fired_ids.push(id);
    }
    // S3 push reconcile (hooks/reconcile.rs): markers of what was fired, after the fire.
    let fired: Vec<&Value> = events.iter().filter(|e| fired_ids.contains(&id_of(e))).collect();
    super::reconcile::record_pushed(params, &fired);
    let mut response = after_fire(fired_ids.len(), filtered, failure.as_ref());
    let delivered: Vec<String> =
        events.iter().map(id_of).filter(|id| earlier.contains(id) || fired_ids.contains(id)).collect();
    let failed = failure.as_ref().map(|_| failure_note(&response));
    // A failure of a single event needs the record too, for `lastFailure`.
    let record = batch.or_else(|| failed.is_some().then(|| BatchRecord::load(&client, &trigger, &request.body)));
    if let Some(record) = record {
        let cut = if batched { failure.as_ref().map(|_| delivered.as_slice()) } else { None };
        record.save(&client, cut, failed);
    }
    if let Value::Object(body) = &mut response.body {
        body.insert("ids".into(), json!(fired_ids));
        if !skipped.is_empty() {
            body.insert("skipped".into(), json!(skipped));
        }
        if failure.is_some() {
            let pending: Vec<String> = events.iter().map(id_of).filter(|id| !delivered.contains(id)).collect();
            body.insert("delivered".into(), json!(delivered));
            body.insert("pending".into(), json!(pending));
        }
    }
    response
}

/// `lastFailure` for an answer that reports a failure.
fn failure_note(response: &HookResponse) -> Value {
    let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    json!({ "at": at, "status": response.status, "error": response.body["error"] })
}

/// Records `response` as the hook's `lastFailure` when no event got as far as a fire.
fn note_failure(ctx: &Context, params: &Params, body: &[u8], response: &HookResponse) {
    let trigger = params.str("triggerName").ok().flatten().and_then(|t| QualifiedName::parse(&t, &ctx.namespace).ok());
    match (client(ctx, params), trigger) {
        (Ok(client), Some(trigger)) => {
            BatchRecord::load(&client, &trigger, body).save(&client, None, Some(failure_note(response)))
        }
        _ => log("receive: cannot record the failure: no API key or no triggerName"),
    }
}

/// The id a fired payload is known by: the event's `id`, or for a `{"events": [...]}` batch
/// (S3 notifications with `batch`) its events' ids joined by commas.
fn payload_id(payload: &Value) -> String {
    if let Some(id) = payload["id"].as_str() {
        return id.to_string();
    }
    let ids = payload["events"].as_array().into_iter().flatten().filter_map(|e| e["id"].as_str());
    ids.collect::<Vec<_>>().join(",")
}

/// How many cut batches the per-trigger record keeps.
pub const MAX_BATCHES: usize = 20;

/// The per-trigger record of batches cut by a failed fire: `{trigger}.owfeed-hook-batches`.
pub fn batches_record_for(trigger: &QualifiedName) -> QualifiedName {
    QualifiedName::new(&trigger.namespace, None, &format!("{}.owfeed-hook-batches", trigger.name))
}

/// One batch's view of the record: the record as read, and the batch's key in it.
struct BatchRecord {
    name: QualifiedName,
    key: String,
    batches: Map<String, Value>,
    last_failure: Option<Value>,
}

impl BatchRecord {
    /// Reads the record; an unreadable one counts as empty (events may then fire again).
    fn load(client: &Client, trigger: &QualifiedName, body: &[u8]) -> BatchRecord {
        let name = batches_record_for(trigger);
        let digest = Sha256::digest(body);
        let key: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        let mut params = match client.get_package(&name) {
            Ok(doc) => from_key_values(&doc["parameters"]),
            Err(OwError::NotFound(_)) => Map::new(),
            Err(e) => {
                log(&format!("receive: reading {name}: {e}"));
                Map::new()
            }
        };
        let batches = match params.remove("batches") {
            Some(Value::Object(m)) => m,
            _ => Map::new(),
        };
        let last_failure = params.remove("lastFailure").filter(Value::is_object);
        BatchRecord { name, key, batches, last_failure }
    }

    /// The ids of this batch delivered by earlier requests.
    fn delivered(&self) -> BTreeSet<String> {
        let ids = self.batches.get(&self.key).and_then(|b| b.get("delivered")).and_then(Value::as_array);
        ids.into_iter().flatten().filter_map(Value::as_str).map(str::to_string).collect()
    }

    /// Stores `delivered` for a cut batch (`Some`), or forgets a completed one (`None`), and
    /// `failure` as `lastFailure`; writes only what changed.
    fn save(mut self, client: &Client, delivered: Option<&[String]>, failure: Option<Value>) {
        let had = self.batches.contains_key(&self.key);
        let failed = failure.is_some();
        if failed {
            self.last_failure = failure;
        }
        match delivered {
            Some(ids) => {
                let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
                self.batches.insert(self.key.clone(), json!({ "delivered": ids, "at": at }));
                while self.batches.len() > MAX_BATCHES {
                    let oldest = self
                        .batches
                        .iter()
                        .min_by_key(|(_, v)| v["at"].as_str().unwrap_or_default().to_string())
                        .map(|(k, _)| k.clone());
                    oldest.map(|k| self.batches.remove(&k));
                }
            }
            None if had => {
                self.batches.remove(&self.key);
            }
            None if failed => {}
            None => return,
        }
        let result = if self.batches.is_empty() && self.last_failure.is_none() {
            client.delete_package(&self.name).or_else(|e| if e.is_not_found() { Ok(()) } else { Err(e) })
        } else {
            let mut params = Map::new();
            if !self.batches.is_empty() {
                params.insert("batches".to_string(), Value::Object(self.batches));
            }
            if let Some(failure) = self.last_failure {
                params.insert("lastFailure".to_string(), failure);
            }
            client.put_package(&self.name, &json!({ "parameters": key_values(&params) }), true).map(|_| ())
        };
        if let Err(e) = result {
            log(&format!("receive: writing {}: {e}", self.name));
        }
    }
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
