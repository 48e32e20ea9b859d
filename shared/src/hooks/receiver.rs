//! The `receive` web action (raw HTTP): builds the request from `__ow_*` parameters, reads the
//! hook config the per-trigger binding merged in, lets [`super::process`] judge it, fires the
//! accepted events at the user's trigger with the activation's own key, and answers with
//! `{statusCode, headers, body}`.
//!
//! It always answers with an HTTP result (never an action error), logs one line per request
//! without parameters or headers (they carry tokens), and knows no producer by name: a
//! source's own delivery format and signature come through its [`Mapping`], what lives with
//! the registration hears of each fire through its [`super::extension::Companion`].
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
//! # Time
//! A delivery must be answered before anyone stops waiting for it: the activation's deadline,
//! the controller's wait for a web action's result (60 s, after which it answers the producer
//! 202 with only the activation id, which a producer takes for success), and the producer's
//! own wait (SNS 15 s, GitHub 10 s). So firing stops at the earliest of those minus a margin
//! for the record and the answer ([`Times`]); a fire is not started when the slowest fire so
//! far would not end before then, every OpenWhisk request is bounded by that time, and a
//! delivery cut this way is recorded like a throttled one and answered 503 with
//! `Retry-After` ([`super::out_of_time`]): a producer that retries until 2xx delivers every
//! event, each once.
//!
//! # The last failure
//! A producer sees a failed delivery in our answer, the trigger's owner would not: so the same
//! record keeps `lastFailure` (`at`, the `status` answered, the `error`), written only when a
//! fire fails, the time runs out, or the receiver fails on its side after the request was
//! verified (an SNS subscription it could not confirm), and READ shows it. **Nothing that has
//! not been verified writes in the namespace**: refusals of what a sender got wrong (4xx) and
//! failures before verification (an invalid config, an SNS certificate that cannot be
//! fetched: the request could be anyone's) write nothing, so strangers cannot make us write.
//! Successes write nothing (no cost per delivery), except an SNS notification's `MessageId`
//! (below), so `lastFailure` stays, with its time, until the next failure replaces it or
//! DELETE removes the record.
//!
//! # Signed messages
//! A message its source verified by signature (an SNS notification: [`Verified`]) is one
//! delivery whatever its bytes: its cut batch is kept under its record key (every variant of a
//! signed message, unsigned fields or whitespace changed, shares it), and once delivered, its
//! message id is remembered (parameter `messages`, with the message's time) for the source's
//! replay window, the newest [`MAX_MESSAGES`]: a replay is answered 200 `duplicate` and fires
//! nothing. Older messages the source refuses by their time.

use std::collections::BTreeSet;
use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use super::extension::{Fired, HookSource, Mapping, Verified};
use super::{after_fire, out_of_time, process, HookConfig, HookRequest, HookResponse, Outcome, SourceKind};
use crate::openwhisk::{from_key_values, key_values, AuthKey, Client, OwError, QualifiedName};
use crate::params::Params;
use crate::runtime::{log, ActionError, Context};

/// The receiver's handler for the hook sources `sources` (the binary passes the registry's).
pub fn receive(ctx: &Context, params: Params, sources: &[HookSource]) -> Result<Value, ActionError> {
    let response = handle(ctx, &params, sources);
    log(&format!("receive: {} {}", params.raw("__ow_method").and_then(Value::as_str).unwrap_or("?"), response.status));
    Ok(response.to_web_result())
}

fn handle(ctx: &Context, params: &Params, sources: &[HookSource]) -> HookResponse {
    let started = SystemTime::now();
    if !params.has("__ow_method") {
        return HookResponse::error(400, "receive is a raw HTTP web action: call it through its web URL");
    }
    // Without a secret this is the shared package's action itself, not a hook's binding.
    if !params.has("secret") {
        return HookResponse::error(404, "no hook is configured at this URL");
    }
    let config = match HookConfig::from_params(params, sources) {
        // Not recorded: the request that found it is not verified (nothing unverified writes).
        Err(e) => return HookResponse::error(500, format!("the hook's config is invalid: {e}")),
        Ok(c) => c,
    };
    let request = HookRequest::from_params(params);
    // A source that signs instead of sending our token (SNS) checks its requests itself, with I/O.
    let own = config.mapping.as_deref().filter(|m| m.verifies_itself(&request));
    let (outcome, message) = match own {
        Some(mapping) => mapping.verify(&config, params, &request),
        None => (process(&config, &request), None),
    };
    let times = Times::new(started, ctx.time_left(), producer_wait(&config, own));
    let key = record_key(&request.body, message.as_ref());
    let (events, filtered) = match outcome {
        // A fault on our side after the request was verified (an SNS subscription it could
        // not confirm) stops deliveries as surely as a failed fire: it is recorded too. A
        // request not verified writes nothing, whatever it got.
        Outcome::Respond(r) if r.status >= 500 && message.is_some() => {
            note_failure(ctx, params, key, &r, &times);
            return r;
        }
        Outcome::Respond(r) => return r,
        Outcome::Fire { events, filtered } => (events, filtered),
    };
    let client = match client(ctx, params) {
        Ok(c) => c.until(Some(times.answer_by)),
        Err(message) => return HookResponse::error(500, message),
    };
    let trigger = match params.str("triggerName").ok().flatten().map(|t| QualifiedName::parse(&t, &ctx.namespace)) {
        Some(Ok(t)) => t,
        _ => return HookResponse::error(500, "the hook's config has no valid triggerName"),
    };
    let batch = (events.len() > 1 || message.is_some()).then(|| BatchRecord::load(&client, &trigger, key.clone()));
    if let (Some(record), Some(m)) = (&batch, &message) {
        if record.delivered_message(&m.message_id) {
            log(&format!("receive: message {} was delivered before: nothing fired", m.message_id));
            return HookResponse::new(200, json!({ "status": "duplicate", "messageId": m.message_id, "fired": 0 }));
        }
    }
    let batched = events.len() > 1;
    let earlier: BTreeSet<String> = batch.as_ref().map(BatchRecord::delivered).unwrap_or_default();
    let id_of = |fired: &Fired| fired.id.clone();
    // Every fire ends by `fire_until`; one that may not is not started.
    let client = client.until(Some(times.fire_until));
    let Fires { fired_ids, skipped, failure, out_of_time_at } = fire_all(&client, &trigger, &events, &earlier, &times);
    let client = client.until(Some(times.answer_by));
    if let Some(id) = &out_of_time_at {
        log(&format!("receive: out of time before firing {id}: {} fired, the rest is for the retry", fired_ids.len()));
    }
    // What lives with the registration hears of what was fired, after the fire.
    if let Some(hook) = HookSource::find(sources, config.source).and_then(|s| s.fired) {
        let fired: Vec<&Fired> = events.iter().filter(|e| fired_ids.contains(&e.id)).collect();
        if !fired.is_empty() {
            // A third of the time kept after the last fire stays for the record and the answer.
            let kept = times.answer_by.duration_since(times.fire_until).unwrap_or_default();
            hook.after_fire(params, &fired, times.answer_by - kept / 3);
        }
    }
    let cut = failure.is_some() || out_of_time_at.is_some();
    let mut response = match out_of_time_at {
        Some(_) => out_of_time(fired_ids.len(), filtered),
        None => after_fire(fired_ids.len(), filtered, failure.as_ref()),
    };
    let delivered: Vec<String> =
        events.iter().map(id_of).filter(|id| earlier.contains(id) || fired_ids.contains(id)).collect();
    let failed = cut.then(|| failure_note(&response));
    // A failure of a single event needs the record too, for `lastFailure`.
    let record = batch.or_else(|| failed.is_some().then(|| BatchRecord::load(&client, &trigger, key.clone())));
    if let Some(record) = record {
        let outcome = if batched && cut { Batch::Cut(&delivered) } else { Batch::Done };
        let completed = message.as_ref().filter(|_| !cut);
        record.save(&client, outcome, failed, completed);
    }
    if let Value::Object(body) = &mut response.body {
        body.insert("ids".into(), json!(fired_ids));
        if !skipped.is_empty() {
            body.insert("skipped".into(), json!(skipped));
        }
        if cut {
            let pending: Vec<String> = events.iter().map(id_of).filter(|id| !delivered.contains(id)).collect();
            body.insert("delivered".into(), json!(delivered));
            body.insert("pending".into(), json!(pending));
        }
    }
    response
}

/// What became of a delivery's fires.
struct Fires {
    /// Ids fired now, in order.
    fired_ids: Vec<String>,
    /// Ids an earlier request of the same delivery fired (not fired again).
    skipped: Vec<String>,
    /// The fire that failed, which stopped the rest.
    failure: Option<OwError>,
    /// The id not fired because the time was up, which stopped the rest.
    out_of_time_at: Option<String>,
}

/// Fires `events` in order at `trigger`, skipping those delivered `earlier`, until one fails
/// or the next may not end in time (see [`Times::may_start`]).
fn fire_all(
    client: &Client,
    trigger: &QualifiedName,
    events: &[Fired],
    earlier: &BTreeSet<String>,
    times: &Times,
) -> Fires {
    let mut fires = Fires { fired_ids: Vec::new(), skipped: Vec::new(), failure: None, out_of_time_at: None };
    let mut slowest = Duration::ZERO;
    for event in events {
        if earlier.contains(&event.id) {
            fires.skipped.push(event.id.clone());
            continue;
        }
        if !times.may_start(slowest) {
            fires.out_of_time_at = Some(event.id.clone());
            break;
        }
        let start = Instant::now();
        if let Err(e) = client.fire_trigger(trigger, &event.payload) {
            log(&format!("receive: firing {trigger}: {e}"));
            fires.failure = Some(e);
            break;
        }
        slowest = slowest.max(start.elapsed());
        fires.fired_ids.push(event.id.clone());
    }
    fires
}

/// How long a producer waits for the answer, when it says: a source that verifies its own
/// requests says for them ([`Mapping::producer_wait`]); GitHub "Your server should respond
/// with a 2XX response within 10 seconds"
/// (docs.github.com/en/webhooks/using-webhooks/best-practices-for-using-webhooks; GitHub
/// Enterprise Server's page says 30 s: the shorter one is kept).
pub fn producer_wait(config: &HookConfig, own: Option<&dyn Mapping>) -> Option<Duration> {
    if let Some(mapping) = own {
        mapping.producer_wait()
    } else if config.source == SourceKind::GitHub {
        Some(GITHUB_WAIT)
    } else {
        None
    }
}

/// GitHub's wait for an answer.
pub const GITHUB_WAIT: Duration = Duration::from_secs(10);
/// How long the controller waits for a web action's result before it answers 202 with the
/// activation id alone (apache/openwhisk common/scala/src/main/resources/application.conf:601
/// `max-wait-for-blocking-activation = 60 seconds`, used for web actions at core/controller/src/
/// main/scala/org/apache/openwhisk/core/controller/WebActions.scala:442 and answered 202 at
/// 692-697).
pub const PLATFORM_WAIT: Duration = Duration::from_secs(60);
/// What may have gone by of a wait before our code ran (routing, a container's start).
pub const START_ALLOWANCE: Duration = Duration::from_secs(2);
/// Kept before the activation's deadline for the result to reach the platform.
const DEADLINE_MARGIN: Duration = Duration::from_millis(500);
/// Kept after the last fire for the record and the answer (a third of the time when it is short).
pub const ANSWER_MARGIN: Duration = Duration::from_secs(3);
/// The least time a fire is given before it is started.
const MIN_FIRE_TIME: Duration = Duration::from_millis(200);

/// When a delivery's work must end (see the module doc, "Time").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Times {
    /// No fire runs past this.
    pub fire_until: SystemTime,
    /// The answer is on its way by then: the record's requests end by it.
    pub answer_by: SystemTime,
}

impl Times {
    /// The times of a delivery that started at `started`, with `time_left` before the
    /// activation's deadline and a producer that waits `producer_wait`.
    pub fn new(started: SystemTime, time_left: Option<Duration>, producer_wait: Option<Duration>) -> Times {
        let mut budget = PLATFORM_WAIT.saturating_sub(START_ALLOWANCE);
        if let Some(wait) = producer_wait {
            budget = budget.min(wait.saturating_sub(START_ALLOWANCE));
        }
        if let Some(left) = time_left {
            budget = budget.min(left.saturating_sub(DEADLINE_MARGIN));
        }
        let answer_by = started + budget;
        Times { fire_until: answer_by - ANSWER_MARGIN.min(budget / 3), answer_by }
    }

    /// Whether a fire may start now: twice the slowest fire so far (at least
    /// [`MIN_FIRE_TIME`]) still ends before `fire_until`.
    pub fn may_start(&self, slowest: Duration) -> bool {
        let left = self.fire_until.duration_since(SystemTime::now()).unwrap_or_default();
        left >= (slowest * 2).max(MIN_FIRE_TIME)
    }
}

/// The key of a delivery in the record: a verified message's own (every variant of a signed
/// message is the same delivery), else a SHA-256 of the body.
fn record_key(body: &[u8], message: Option<&Verified>) -> String {
    match message {
        Some(m) => m.record_key.clone(),
        None => crate::events::hex(&Sha256::digest(body)),
    }
}

/// `lastFailure` for an answer that reports a failure.
fn failure_note(response: &HookResponse) -> Value {
    let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    json!({ "at": at, "status": response.status, "error": response.body["error"] })
}

/// Records `response` as the hook's `lastFailure` when no event got as far as a fire (only
/// for a verified request).
fn note_failure(ctx: &Context, params: &Params, key: String, response: &HookResponse, times: &Times) {
    let trigger = params.str("triggerName").ok().flatten().and_then(|t| QualifiedName::parse(&t, &ctx.namespace).ok());
    match (client(ctx, params), trigger) {
        (Ok(client), Some(trigger)) => {
            let client = client.until(Some(times.answer_by));
            BatchRecord::load(&client, &trigger, key).save(
                &client,
                Batch::Untouched,
                Some(failure_note(response)),
                None,
            )
        }
        _ => log("receive: cannot record the failure: no API key or no triggerName"),
    }
}

/// How many cut batches the per-trigger record keeps.
pub const MAX_BATCHES: usize = 20;
/// How many delivered signed messages the per-trigger record keeps (the newest by their
/// time, at most their source's replay window old).
pub const MAX_MESSAGES: usize = 500;

/// The per-trigger record of batches cut by a failed fire: `{trigger}.owfeed-hook-batches`.
pub fn batches_record_for(trigger: &QualifiedName) -> QualifiedName {
    QualifiedName::new(&trigger.namespace, None, &format!("{}.owfeed-hook-batches", trigger.name))
}

/// What became of a delivery's batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Batch<'a> {
    /// Cut: these ids are delivered (earlier requests' included).
    Cut(&'a [String]),
    /// Every event delivered: its entry, if any, is forgotten.
    Done,
    /// Nothing fired: its entry, if any, stays.
    Untouched,
}

/// One batch's view of the record: the record as read, and the batch's key in it.
struct BatchRecord {
    name: QualifiedName,
    key: String,
    batches: Map<String, Value>,
    last_failure: Option<Value>,
    /// Delivered SNS messages: `MessageId` → `Timestamp`.
    messages: Map<String, Value>,
}

impl BatchRecord {
    /// Reads the record; an unreadable one counts as empty (events may then fire again).
    fn load(client: &Client, trigger: &QualifiedName, key: String) -> BatchRecord {
        let name = batches_record_for(trigger);
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
        let messages = match params.remove("messages") {
            Some(Value::Object(m)) => m,
            _ => Map::new(),
        };
        BatchRecord { name, key, batches, last_failure, messages }
    }

    /// True when the SNS message `id` was delivered whole before.
    fn delivered_message(&self, id: &str) -> bool {
        self.messages.contains_key(id)
    }

    /// The ids of this batch delivered by earlier requests.
    fn delivered(&self) -> BTreeSet<String> {
        let ids = self.batches.get(&self.key).and_then(|b| b.get("delivered")).and_then(Value::as_array);
        ids.into_iter().flatten().filter_map(Value::as_str).map(str::to_string).collect()
    }

    /// Stores what became of this delivery's batch, `failure` as `lastFailure`, and a
    /// delivered SNS message; writes only what changed.
    fn save(mut self, client: &Client, batch: Batch<'_>, failure: Option<Value>, message: Option<&Verified>) {
        let had = self.batches.contains_key(&self.key);
        let failed = failure.is_some();
        if failed {
            self.last_failure = failure;
        }
        let remembered = message.is_some();
        if let Some(m) = message {
            self.remember(m);
        }
        match batch {
            Batch::Cut(ids) => {
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
            Batch::Done if had => {
                self.batches.remove(&self.key);
            }
            _ if failed || remembered => {}
            _ => return,
        }
        let result = if self.batches.is_empty() && self.last_failure.is_none() && self.messages.is_empty() {
            client.delete_package(&self.name).or_else(|e| if e.is_not_found() { Ok(()) } else { Err(e) })
        } else {
            let mut params = Map::new();
            if !self.batches.is_empty() {
                params.insert("batches".to_string(), Value::Object(self.batches));
            }
            if let Some(failure) = self.last_failure {
                params.insert("lastFailure".to_string(), failure);
            }
            if !self.messages.is_empty() {
                params.insert("messages".to_string(), Value::Object(self.messages));
            }
            client.put_package(&self.name, &json!({ "parameters": key_values(&params) }), true).map(|_| ())
        };
        if let Err(e) = result {
            log(&format!("receive: writing {}: {e}", self.name));
        }
    }
}

impl BatchRecord {
    /// Adds a delivered SNS message, dropping those older than the replay window (their
    /// `Timestamp` refuses them anyway) and, past [`MAX_MESSAGES`], the oldest.
    fn remember(&mut self, message: &Verified) {
        self.messages.insert(message.message_id.clone(), json!(message.timestamp));
        let oldest = chrono::Utc::now() - chrono::Duration::from_std(message.replay_window).unwrap_or_default();
        let stamp =
            |v: &Value| v.as_str().and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok()).map(|t| t.to_utc());
        self.messages.retain(|_, at| stamp(at).is_some_and(|t| t >= oldest));
        if self.messages.len() > MAX_MESSAGES {
            let mut by_age: Vec<(String, chrono::DateTime<chrono::Utc>)> =
                self.messages.iter().filter_map(|(k, v)| stamp(v).map(|t| (k.clone(), t))).collect();
            by_age.sort_by_key(|(_, t)| *t);
            for (k, _) in by_age.iter().take(self.messages.len() - MAX_MESSAGES) {
                self.messages.remove(k);
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn verified(message_id: String, timestamp: String) -> Verified {
        let record_key = format!("sns:{message_id}");
        Verified { message_id, timestamp, record_key, replay_window: Duration::from_secs(3900) }
    }

    fn secs(t: SystemTime, from: SystemTime) -> f64 {
        t.duration_since(from).unwrap().as_secs_f64()
    }

    /// The answer comes before anyone stops waiting: the activation's deadline, the
    /// controller's 60 s wait for a web action, SNS's 15 s, GitHub's 10 s (less what went by
    /// before our code ran); firing stops a margin earlier.
    #[test]
    fn a_delivery_ends_before_the_first_of_the_waits() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let t = Times::new(t0, Some(Duration::from_secs(60)), None);
        assert_eq!((secs(t.fire_until, t0), secs(t.answer_by, t0)), (55.0, 58.0), "the controller's wait");
        let t = Times::new(t0, Some(Duration::from_secs(300)), None);
        assert_eq!(secs(t.answer_by, t0), 58.0, "a longer limit does not make the controller wait longer");
        let t = Times::new(t0, Some(Duration::from_secs(60)), Some(Duration::from_secs(15)));
        assert_eq!((secs(t.fire_until, t0), secs(t.answer_by, t0)), (10.0, 13.0), "SNS's 15 s");
        let t = Times::new(t0, Some(Duration::from_secs(60)), Some(GITHUB_WAIT));
        assert_eq!(secs(t.answer_by, t0), 8.0, "GitHub");
        let t = Times::new(t0, Some(Duration::from_secs(6)), None);
        assert!(
            (secs(t.fire_until, t0) - (5.5 - 5.5 / 3.0)).abs() < 1e-6,
            "a short limit keeps a third for the answer"
        );
        assert_eq!(secs(t.answer_by, t0), 5.5);
        let t = Times::new(SystemTime::now(), Some(Duration::from_secs(6)), None);
        assert!(t.may_start(Duration::ZERO) && t.may_start(Duration::from_secs(1)));
        assert!(!t.may_start(Duration::from_secs(2)), "twice the slowest fire must still fit");
        let past = Times::new(SystemTime::now() - Duration::from_secs(100), None, None);
        assert!(!past.may_start(Duration::ZERO));
    }

    #[test]
    fn sns_messages_are_remembered_for_the_replay_window_the_newest_first() {
        let mut record = BatchRecord {
            name: QualifiedName::new("ns", None, "t.owfeed-hook-batches"),
            key: "k".into(),
            batches: Map::new(),
            last_failure: None,
            messages: Map::new(),
        };
        let now = chrono::Utc::now();
        let stamp =
            |ago: i64| (now - chrono::Duration::seconds(ago)).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        record.messages.insert("ancient".into(), json!(stamp(4000)));
        for i in 0..MAX_MESSAGES {
            record.remember(&verified(format!("m-{i}"), stamp(3000 - i as i64)));
        }
        assert!(!record.delivered_message("ancient"), "older than the window: refused by its Timestamp anyway");
        assert_eq!(record.messages.len(), MAX_MESSAGES);
        record.remember(&verified("new".into(), stamp(0)));
        assert_eq!(record.messages.len(), MAX_MESSAGES);
        assert!(record.delivered_message("new") && !record.delivered_message("m-0"), "the oldest goes");
        assert_eq!(record_key(b"body", None).len(), 64);
        let m = verified("abc".into(), stamp(0));
        assert_eq!(record_key(b"any variant", Some(&m)), record_key(b"another", Some(&m)));
    }
}
