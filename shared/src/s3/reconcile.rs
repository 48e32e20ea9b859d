//! Reconcile for S3 push: `owfeed/hook -p source s3 -p reconcile SCHEDULE` also runs the
//! polling S3 feed of the same bucket on that schedule, as a safety net for notifications
//! that were lost (every provider's are best effort).
//!
//! The hook feed's lifecycle events drive a polling feed for the same trigger through the
//! polling feed's own CREATE, READ, UPDATE, DELETE, PAUSE and UNPAUSE ([`PollingFeed`] over the
//! S3 source), with the parameters [`polling_params`] derives from the hook's config and the
//! flag [`CONFIG_RECONCILE`] in its config. So the reconcile is an ordinary polling feed
//! (helper alarm, rule to `poll`, config binding `{trigger}.owfeed`, state in the bucket)
//! whose poll suppresses the changes the receiver marked as pushed and marks the rest
//! `reconciled` (`markers`). The receiver writes those markers ([`record_pushed`]).
//!
//! Ids: a reconciled event has the polling feed's id (a hash over the poll's commit sequence),
//! a pushed one its notification's: the two cannot agree, since a notification does not know
//! which poll will see its change, and a poll does not know the notification's sequencer. So a
//! change is kept from firing twice by the markers, not by ids.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::SystemTime;

use serde_json::{json, Value};

use super::markers::{Pushed, CONFIG_RECONCILE};
use super::source::S3Source;
use crate::hooks::extension::{Companion, FireHook, Fired};
use crate::lifecycle::{Feed, FeedRequest};
use crate::openwhisk::{ApiTls, Client, QualifiedName};
use crate::params::{ParamError, Params};
use crate::polling::PollingFeed;
use crate::runtime::{log, ActionError};
use crate::schedule::Schedule;
use crate::source::Source;

/// The hook parameter: when the reconcile runs (minutes, `hourly`, `daily`, or a cron
/// expression of the alarms package).
pub const PARAM: &str = "reconcile";

/// Hook parameters the reconcile's polling feed takes over as they are (`stateKey`: the
/// receiver seals its push markers with the key the reconcile verifies them with).
const PASSED: [&str; 25] = [
    crate::store::CONFIG_STATE_KEY,
    "endpoint",
    "bucket",
    "accessKeyId",
    "secretAccessKey",
    "sessionToken",
    "region",
    "pathStyle",
    "prefix",
    "suffix",
    "format",
    "batch",
    "stateBucket",
    "statePrefix",
    "pageSize",
    "caCertificate",
    "insecureSkipTlsVerify",
    "urlEncoding",
    "alarmsPackage",
    "maxChangesPerPoll",
    "parallelism",
    "maxFiresPerMinute",
    "verifyDeletes",
    "apiHostCaCertificate",
    "apiHostInsecureSkipTlsVerify",
];

/// The schedule a `reconcile` value names, as polling parameters (`interval` or `cron`).
pub fn schedule(value: &Value) -> Result<Value, ParamError> {
    let bad = || {
        ParamError::invalid(
            PARAM,
            "minutes (1 to 10080), hourly, daily, or a cron expression of the alarms package",
            value,
        )
    };
    let params = match value {
        Value::Number(_) => json!({ "interval": value }),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "hourly" => json!({ "interval": 60 }),
            "daily" => json!({ "interval": 1440 }),
            t if !t.is_empty() && t.chars().all(|c| c.is_ascii_digit()) => {
                json!({ "interval": t.parse::<u64>().map_err(|_| bad())? })
            }
            _ => json!({ "cron": s.trim() }),
        },
        _ => return Err(bad()),
    };
    let p = Params::from_value(params.clone()).map_err(|_| bad())?;
    Schedule::from_params(&p, 60).map_err(|e| ParamError { name: PARAM.to_string(), ..e })?;
    Ok(params)
}

/// The polling feed's parameters for a hook config with `reconcile`; `None` without.
pub fn polling_params(hook: &Params) -> Result<Option<Params>, ParamError> {
    let Some(value) = hook.raw(PARAM).filter(|v| !v.is_null()) else { return Ok(None) };
    if hook.str("source")?.as_deref() != Some("s3") {
        return Err(ParamError::invalid(PARAM, "no reconcile (it is for source s3 only)", value));
    }
    let mut p = Params::default();
    for name in PASSED {
        if let Some(v) = hook.raw(name) {
            p.insert(name, v.clone());
        }
    }
    // Push reports an overwrite as `created`; the reconcile knows it is `updated`, and must
    // not let the filter drop a lost overwrite the trigger would have got by push.
    if let Some(events) = hook.list("events")? {
        let mut events: Vec<String> = events.into_iter().map(|e| e.trim().to_ascii_lowercase()).collect();
        if events.iter().any(|e| e == "created") && !events.iter().any(|e| e == "updated") {
            events.push("updated".to_string());
        }
        p.insert("events", json!(events));
    }
    if let Value::Object(s) = schedule(value)? {
        for (k, v) in s {
            p.insert(&k, v);
        }
    }
    p.insert(CONFIG_RECONCILE, json!(true));
    Ok(Some(p))
}

/// Checks the reconcile's parameters, before anything is made (no I/O).
pub fn validate(hook: &Params) -> Result<(), ActionError> {
    if let Some(p) = polling_params(hook)? {
        S3Source.open(&p)?;
    }
    Ok(())
}

/// The polling feed's request: the same trigger and event, the derived parameters.
fn sub_request<'a>(req: &FeedRequest<'a>, params: Params) -> Result<FeedRequest<'a>, ActionError> {
    let tls_from = if params.has("apiHostCaCertificate") || params.has("apiHostInsecureSkipTlsVerify") {
        &params
    } else {
        &req.params
    };
    let tls = ApiTls::from_params(tls_from)?;
    let host = req.client.base_url().trim_end_matches("/api/v1");
    let client = Client::new(host, req.client.auth().clone()).with_tls(&tls).map_err(ActionError::new)?;
    Ok(FeedRequest {
        ctx: req.ctx,
        event: req.event,
        trigger: req.trigger.clone(),
        trigger_doc: req.trigger_doc.clone(),
        client,
        package: req.package.clone(),
        params,
    })
}

fn feed() -> PollingFeed<'static> {
    PollingFeed::new(&S3Source)
}

fn context(what: &str, e: ActionError) -> ActionError {
    ActionError { message: format!("reconcile: {what}: {}", e.message), ..e }
}

/// CREATE: the reconcile's polling feed, when the hook config asks for one (transactional:
/// a failure leaves none of it).
pub fn create(req: &FeedRequest, hook: &Params) -> Result<Option<Value>, ActionError> {
    let Some(params) = polling_params(hook)? else { return Ok(None) };
    feed().create(&sub_request(req, params)?).map(Some).map_err(|e| context("creating the polling", e))
}

/// READ: the reconcile's status as the polling feed reports it (stalls included).
pub fn read(req: &FeedRequest, hook: &Params) -> Option<Value> {
    // A stored `reconcile` that no longer reads is said, not hidden.
    if let Err(e) = polling_params(hook) {
        return Some(json!({ "error": format!("reconcile: {e}") }));
    }
    polling_params(hook).ok().flatten()?;
    let result = sub_request(req, Params::default()).and_then(|sub| feed().read(&sub));
    Some(match result {
        Ok(doc) => doc["status"].clone(),
        Err(e) => json!({ "error": format!("reconcile: {}", e.message) }),
    })
}

/// UPDATE: creates, updates or deletes the reconcile as the merged hook config says.
pub fn update(req: &FeedRequest, old: &Params, merged: &Params) -> Result<Option<Value>, ActionError> {
    let before = polling_params(old).ok().flatten();
    let after = polling_params(merged)?;
    match (before, after) {
        (None, None) => Ok(None),
        (None, Some(p)) => feed().create(&sub_request(req, p)?).map(Some).map_err(|e| context("creating", e)),
        (Some(_), None) => {
            feed().delete(&sub_request(req, Params::default())?).map(Some).map_err(|e| context("deleting", e))
        }
        (Some(b), Some(mut p)) => {
            // Parameters the hook no longer has are removed from the polling config too.
            for k in b.as_map().keys() {
                if !p.has(k) {
                    p.insert(k, Value::Null);
                }
            }
            feed().update(&sub_request(req, p)?).map(Some).map_err(|e| context("updating", e))
        }
    }
}

/// DELETE: removes the reconcile's alarm, rule, config and state (`config` is the hook's,
/// `None` when it could not be read: then whatever is there is removed).
pub fn delete(req: &FeedRequest, hook: Option<&Params>) -> Result<(), ActionError> {
    // Lenient on purpose: DELETE removes whatever is there, even under a config that no longer reads.
    if hook.is_some_and(|h| polling_params(h).ok().flatten().is_none() && !h.has(PARAM)) {
        return Ok(());
    }
    let sub = sub_request(req, Params::default())?;
    feed().delete(&sub).map(|_| ()).map_err(|e| ActionError { message: format!("reconcile: {}", e.message), ..e })
}

/// PAUSE and UNPAUSE of the reconcile, when there is one (a `reconcile` that does not read
/// is an error naming it).
pub fn set_active(req: &FeedRequest, hook: &Params, active: bool) -> Result<(), ActionError> {
    if polling_params(hook)?.is_none() {
        return Ok(());
    }
    let sub = sub_request(req, Params::default())?;
    let result = if active { feed().unpause(&sub) } else { feed().pause(&sub) };
    result.map(|_| ()).map_err(|e| context(if active { "unpausing" } else { "pausing" }, e))
}

/// The reconcile as the hooks pattern's companion of an S3 hook's registration.
pub struct Reconcile;

impl Companion for Reconcile {
    fn name(&self) -> &'static str {
        PARAM
    }
    fn wanted(&self, config: &Params) -> Result<bool, ParamError> {
        Ok(polling_params(config)?.is_some())
    }
    fn validate(&self, config: &Params) -> Result<(), ActionError> {
        validate(config)
    }
    fn create(&self, req: &FeedRequest, config: &Params) -> Result<Option<Value>, ActionError> {
        create(req, config)
    }
    fn read(&self, req: &FeedRequest, config: &Params) -> Option<Value> {
        read(req, config)
    }
    fn update(&self, req: &FeedRequest, old: &Params, merged: &Params) -> Result<Option<Value>, ActionError> {
        update(req, old, merged)
    }
    fn delete(&self, req: &FeedRequest, config: Option<&Params>) -> Result<(), ActionError> {
        delete(req, config)
    }
    fn set_active(&self, req: &FeedRequest, config: &Params, active: bool) -> Result<(), ActionError> {
        set_active(req, config, active)
    }
}

/// The reconcile's receiver half: the push markers after each fire.
pub struct PushMarkers;

impl FireHook for PushMarkers {
    fn after_fire(&self, config: &Params, fired: &[&Fired], until: SystemTime) {
        record_pushed(config, fired, until)
    }
}

/// The receiver's side: after `fired` reached the trigger, writes the push marker of each S3
/// change in them (`Fired::marks`, made by `push`), so the reconcile does not fire them again.
/// The writes run on a thread of their own, waited for until `until` only: a store that is
/// slow or hangs must not hold the receiver's answer past the producer's wait (the producer
/// would deliver again, and the platform kill the activation). A marker that is not written,
/// by then or at all, is logged: the reconcile then fires that change again (a duplicate,
/// never a loss).
pub fn record_pushed(hook: &Params, fired: &[&Fired], until: SystemTime) {
    match polling_params(hook) {
        _ if fired.is_empty() => return,
        Ok(None) => return,
        Ok(Some(_)) => {}
        Err(e) => return log(&format!("receive: {e}: push markers not written")),
    }
    let trigger = match hook.str("triggerName").ok().flatten().map(|t| QualifiedName::parse(&t, "_")) {
        Some(Ok(t)) => t,
        _ => return log("receive: no triggerName: push markers not written"),
    };
    let marks: Vec<Value> = fired.iter().flat_map(|f| f.marks.iter().cloned()).collect();
    if marks.is_empty() {
        return;
    }
    let (total, hook) = (marks.len(), hook.clone());
    let written = Arc::new(AtomicUsize::new(0));
    let (done, finished) = mpsc::channel();
    let progress = Arc::clone(&written);
    std::thread::spawn(move || {
        write_markers(&hook, &trigger, &marks, &progress);
        let _ = done.send(());
    });
    let wait = until.duration_since(SystemTime::now()).unwrap_or_default();
    if finished.recv_timeout(wait).is_err() {
        log(&format!(
            "receive: the answer is due with {} of {total} push markers written: the rest are written while the \
             process lives; those never written make the reconcile fire their changes again",
            written.load(Ordering::SeqCst)
        ));
    }
}

/// Writes the push markers `marks` of `trigger`; `written` counts those that were.
fn write_markers(hook: &Params, trigger: &QualifiedName, marks: &[Value], written: &AtomicUsize) {
    let blobs = match S3Source.open(hook).ok().and_then(|l| l.blob_store()) {
        Some(b) => b,
        None => return log("receive: the hook's S3 parameters are invalid: push markers not written"),
    };
    // Sealed with the feed's key, which the reconcile's config holds too (see `polling_params`).
    let seal = crate::store::stored_key(hook).map(|k| crate::store::seal_for(&k, trigger));
    let now = crate::budget::now_ms();
    let mut failed = 0;
    for mark in marks {
        let deleted = mark["change"] == "deleted";
        match Pushed::write(blobs.as_ref(), trigger, seal.as_ref(), now, deleted, mark) {
            Ok(()) => {
                written.fetch_add(1, Ordering::SeqCst);
            }
            Err(e) => {
                failed += 1;
                log(&format!("receive: writing a push marker: {e}"));
            }
        }
    }
    if failed > 0 {
        log(&format!("receive: {failed} push markers not written: the reconcile fires those changes again"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(v: Value) -> Params {
        Params::from_value(v).unwrap()
    }

    #[test]
    fn schedules_in_every_accepted_form() {
        assert_eq!(schedule(&json!(60)).unwrap(), json!({"interval": 60}));
        assert_eq!(schedule(&json!("hourly")).unwrap(), json!({"interval": 60}));
        assert_eq!(schedule(&json!("Daily")).unwrap(), json!({"interval": 1440}));
        assert_eq!(schedule(&json!("15")).unwrap(), json!({"interval": 15}));
        assert_eq!(schedule(&json!("0 * * * *")).unwrap(), json!({"cron": "0 * * * *"}));
        for bad in [json!(0), json!("every hour"), json!(true), json!("0 * * * * * *"), json!(100000)] {
            assert_eq!(schedule(&bad).unwrap_err().name, "reconcile", "{bad}");
        }
    }

    #[test]
    fn polling_params_take_the_s3_settings_and_widen_created_to_updated() {
        let hook = p(json!({"source": "s3", "provider": "ceph", "endpoint": "http://s3", "bucket": "b",
            "accessKeyId": "AK", "secretAccessKey": "SK", "events": ["created"], "secret": "x".repeat(16),
            "reconcile": "hourly", "triggerName": "/ns/t"}));
        let got = polling_params(&hook).unwrap().unwrap();
        assert_eq!(
            got.as_map().clone(),
            json!({"endpoint": "http://s3", "bucket": "b", "accessKeyId": "AK", "secretAccessKey": "SK",
                "events": ["created", "updated"], "interval": 60, "reconcile": true})
            .as_object()
            .unwrap()
            .clone()
        );
        let mut none = hook.clone();
        none.remove("reconcile");
        assert!(polling_params(&none).unwrap().is_none());
        let mut github = hook.clone();
        github.insert("source", json!("github"));
        assert_eq!(polling_params(&github).unwrap_err().name, "reconcile");
        let mut no_key = hook;
        no_key.remove("accessKeyId");
        assert_eq!(validate(&no_key).unwrap_err().details.unwrap()["parameter"], "accessKeyId");
    }

    /// The reconcile is a polling S3 feed made from the hook's parameters: every parameter of
    /// the S3 source and of the polling core is passed on as the hook has it, or is set by the
    /// reconcile itself. A parameter added to either fails here until it is decided.
    #[test]
    fn every_s3_and_core_parameter_is_passed_or_decided() {
        // The schedule comes from `reconcile`; `events` is widened (created → updated too);
        // a reconcile's baseline is silent, whatever `fireExisting` the hook was given.
        const DECIDED_HERE: [&str; 4] = ["interval", "cron", "events", "fireExisting"];
        for name in S3Source.params().iter().map(|p| p.name).chain(crate::polling::CORE_PARAMS) {
            assert!(PASSED.contains(&name) || DECIDED_HERE.contains(&name), "{name}");
        }
    }
}
