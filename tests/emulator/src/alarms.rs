//! The built-in `/whisk.system/alarms` package: the `interval`, `alarm` (cron) and `once` feed
//! actions, implemented natively, and the firing of alarms.
//!
//! The feed actions behave like apache/openwhisk-package-alarms (action/alarm.js,
//! action/alarmWebAction.js, action/lib/*.js): CREATE, READ, UPDATE and DELETE only (PAUSE and
//! UNPAUSE answer `{"error": "unsupported lifecycleEvent"}`), results `{"status": "success"}`
//! and errors `{"error": {"error": …}}`, alarms owned by trigger *and* key, CREATE on an existing
//! alarm an upsert that re-enables it, UPDATE a success whenever an updatable parameter is given.
//! Firing goes through the normal REST handler (so throttling and injected faults apply) and
//! follows the provider's fire policy (provider/lib/utils.js): a 4xx other than 408/409/429
//! disables the alarm; other failures retry up to 10 times after `max(1, throttled²)` units;
//! an alarm throttled on all 10 retries is disabled. An interval alarm first fires one interval
//! after its start (default: 30 s after CREATE).
//! It does not handle time zones (cron runs in UTC).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Map, Value};

use crate::server::{self, Identity, Req};
use crate::store::{now_ms, Action, Code, Meta, Package, Store};
use crate::{lock, Inner, SYSTEM_NAMESPACE};

/// Which alarms feed action.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AlarmKind {
    /// `minutes` between fires.
    Interval,
    /// A cron schedule.
    Cron,
    /// A single date.
    Once,
}

/// One registered alarm (keyed by `/ns/t`).
#[derive(Clone, Debug)]
pub(crate) struct Alarm {
    pub trigger: String,
    pub kind: AlarmKind,
    pub minutes: Option<u64>,
    pub cron: Option<String>,
    pub schedule: Option<alarms_cron::Pattern>,
    pub date: Option<i64>,
    pub delete_after_fire: Value,
    pub payload: Value,
    pub start: Option<i64>,
    pub stop: Option<i64>,
    /// The credential the trigger is fired with (the authKey given at CREATE).
    pub key: String,
    pub active: bool,
    pub date_changed: u64,
    pub reason: Option<Value>,
    /// Next wall-clock fire (ms), for realtime mode.
    pub next: Option<i64>,
}

/// Adds the shared alarms package and its three feed actions to the store.
pub(crate) fn install_package(st: &mut Store) {
    let mut meta = Meta::new(SYSTEM_NAMESPACE, "alarms");
    meta.publish = true;
    meta.annotations = json!([{"key": "description", "value": "Alarms and periodic utility"}]);
    st.packages.insert(format!("{SYSTEM_NAMESPACE}/alarms"), Package { meta, binding: None });
    for (name, kind) in [("interval", AlarmKind::Interval), ("alarm", AlarmKind::Cron), ("once", AlarmKind::Once)] {
        let mut meta = Meta::new(&format!("{SYSTEM_NAMESPACE}/alarms"), name);
        meta.annotations = json!([{"key": "feed", "value": true}, {"key": "exec", "value": "nodejs:20"}]);
        let action = Action { meta, code: Code::Alarm(kind), timeout_ms: 60_000, memory_mb: 256 };
        st.actions.insert(format!("{SYSTEM_NAMESPACE}/alarms/{name}"), action);
    }
}

/// The provider's error result for a failure of its web action: `common.sendError` builds
/// `{statusCode, body: {error, message?}}` (openwhisk-package-alarms action/lib/common.js:105-116),
/// the feed action's `requestHelper` rejects with that body (common.js:33-40) and the nodejs
/// runtime wraps a rejection as `{"error": <value>}`.
fn error(msg: impl Into<String>) -> Value {
    json!({"error": {"error": msg.into()}})
}

fn string_param<'a>(params: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    params.get(name).and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// The provider's alarm document id: `{apikey}/{namespace}/{name}` (action/lib/config.js:22-28),
/// so an alarm belongs to the key that created it as well as to the trigger.
fn alarm_id(key: &str, trigger: &str) -> String {
    format!("{key}{trigger}")
}

/// Runs a feed action invocation; returns the action result.
pub(crate) fn run_feed(inner: &Arc<Inner>, kind: AlarmKind, params: &Map<String, Value>, caller: &Identity) -> Value {
    // action/alarm.js:29-52: only these four map to the web action; anything else (PAUSE,
    // UNPAUSE) is rejected with this string.
    let event = params.get("lifecycleEvent").and_then(Value::as_str).unwrap_or_default();
    if !["CREATE", "READ", "UPDATE", "DELETE"].contains(&event) {
        return json!({"error": "unsupported lifecycleEvent"});
    }
    match feed(inner, kind, event, params, caller) {
        Ok(v) => v,
        Err(msg) => error(msg),
    }
}

/// The success body of CREATE, UPDATE and DELETE (action/alarmWebAction.js:161-165, 337-341, 363-367).
fn success() -> Value {
    json!({"status": "success"})
}

/// The updatable parameters UPDATE considers for an alarm of `kind` (action/alarmWebAction.js:240-323):
/// UPDATE succeeds when one is given, changed or not.
fn updatable_given(kind: AlarmKind, params: &Map<String, Value>) -> bool {
    let given = |name: &str| params.get(name).is_some_and(|v| !v.is_null() && v != "" && v != &json!(false));
    let specific: &[&str] = match kind {
        AlarmKind::Interval => &["minutes", "startDate", "stopDate"],
        AlarmKind::Cron => &["cron", "timezone", "startDate", "stopDate"],
        AlarmKind::Once => &["date", "deleteAfterFire"],
    };
    given("trigger_payload")
        || specific.iter().any(|p| given(p))
        || (kind == AlarmKind::Cron && params.contains_key("strict"))
}

fn feed(
    inner: &Arc<Inner>,
    kind: AlarmKind,
    event: &str,
    params: &Map<String, Value>,
    caller: &Identity,
) -> Result<Value, String> {
    // alarmWebAction.js:26-28
    let trigger_name = string_param(params, "triggerName").ok_or("no trigger name parameter was provided")?;
    // action/lib/common.js:50-53: the trigger is always in the invoking namespace.
    let tname = trigger_name.trim_start_matches('/').rsplit('/').next().unwrap_or_default();
    let ns = caller.namespace.as_str();
    let trigger = format!("/{ns}/{tname}");
    let key = string_param(params, "authKey").unwrap_or_default();
    let id = alarm_id(key, &trigger);
    // common.js:64-88: the trigger must be readable with the given key (DELETE tolerates 404).
    let auth = server::handle(
        inner,
        &Req::internal("GET", &format!("/api/v1/namespaces/{ns}/triggers/{tname}"), key, Vec::new()),
    )
    .status;
    if auth != 200 && !(event == "DELETE" && auth == 404) {
        return Err("Trigger authentication request failed.".into());
    }
    // Database.js:91-115, 189-191
    let not_found = || format!("could not find trigger {trigger} in the database");
    match event {
        "CREATE" => {
            let mut alarm = Alarm {
                trigger: trigger.clone(),
                kind,
                minutes: None,
                cron: None,
                schedule: None,
                date: None,
                delete_after_fire: json!(false),
                payload: json!({}),
                start: None,
                stop: None,
                key: key.to_string(),
                active: true,
                date_changed: now_ms(),
                reason: None,
                next: None,
            };
            apply(&mut alarm, params)?;
            match kind {
                AlarmKind::Interval if alarm.minutes.is_none() => {
                    return Err("interval trigger feed is missing the minutes parameter".into())
                }
                AlarmKind::Cron if alarm.cron.is_none() => {
                    return Err("alarms trigger feed is missing the cron parameter".into())
                }
                AlarmKind::Once if alarm.date.is_none() => {
                    return Err("alarms once trigger feed is missing the date parameter".into())
                }
                _ => {}
            }
            if kind == AlarmKind::Once && alarm.date.is_some_and(|d| d <= now_ms() as i64) {
                return Err("date parameter must be in the future".into());
            }
            if kind == AlarmKind::Interval && alarm.start.is_none() {
                // alarmWebAction.js:120-124: an interval alarm starts 30 s from now.
                alarm.start = Some(now_ms() as i64 + 30_000);
            }
            alarm.next = first_fire(&alarm, now_ms() as i64);
            // Database.js:64-89: a 409 on insert updates the existing document instead, with
            // the new fields and status active (an upsert that also re-enables).
            lock(&inner.alarms).insert(id, alarm);
            Ok(success())
        }
        "DELETE" => {
            lock(&inner.alarms).remove(&id).ok_or_else(not_found)?;
            Ok(success())
        }
        "READ" => {
            let alarms = lock(&inner.alarms);
            Ok(describe(alarms.get(&id).ok_or_else(not_found)?))
        }
        "UPDATE" => {
            let mut alarms = lock(&inner.alarms);
            let alarm = alarms.get_mut(&id).ok_or_else(not_found)?;
            if !updatable_given(alarm.kind, params) {
                return Err("no updatable parameters were specified".into());
            }
            let mut updated = alarm.clone();
            apply(&mut updated, params)?;
            // Database.js:197-208: an update re-enables the alarm.
            updated.active = true;
            updated.reason = None;
            updated.date_changed = now_ms();
            updated.next = first_fire(&updated, now_ms() as i64);
            *alarm = updated;
            Ok(success())
        }
        _ => Err("unsupported lifecycleEvent".into()),
    }
}

/// Reads a date parameter: ISO 8601 / RFC 3339 string or epoch milliseconds.
fn date_param(params: &Map<String, Value>, name: &str) -> Result<Option<i64>, String> {
    match params.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n.as_i64().map(Some).ok_or_else(|| format!("alarms: '{name}' must be a date")),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => {
            if let Ok(ms) = s.parse::<i64>() {
                return Ok(Some(ms));
            }
            chrono::DateTime::parse_from_rfc3339(s)
                .map(|d| Some(d.timestamp_millis()))
                .map_err(|_| format!("alarms: '{name}' must be an ISO 8601 date or epoch milliseconds, got '{s}'"))
        }
        Some(_) => Err(format!("alarms: '{name}' must be a date")),
    }
}

/// Parses a cron expression with the provider's node cron 1.8.2 rules (`alarms-cron`: Sunday
/// = 0, January = 0). The real web action validates with 1.7.0, which also takes what 1.8.2
/// rejects (e.g. day-of-week 7), and the provider then disables that alarm on initialization
/// (apache/openwhisk-package-alarms `provider/lib/utils.js:376-397`); the emulator refuses it
/// at once with the web action's message (`action/alarmWebAction.js:108`).
fn parse_cron(expr: &str) -> Result<alarms_cron::Pattern, String> {
    alarms_cron::Pattern::parse(expr).map_err(|_| format!("cron pattern '{expr}' is not valid"))
}

/// Applies the updatable parameters present in `params`; true when something changed.
fn apply(alarm: &mut Alarm, params: &Map<String, Value>) -> Result<bool, String> {
    let mut changed = false;
    if let Some(v) = params.get("minutes") {
        let minutes = match v {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.trim().parse::<u64>().ok(),
            _ => None,
        }
        .filter(|m| *m > 0)
        // action/alarmWebAction.js:83-90
        .ok_or("the minutes parameter must be an integer greater than zero")?;
        changed |= alarm.minutes != Some(minutes);
        alarm.minutes = Some(minutes);
    }
    if let Some(v) = params.get("cron") {
        let expr = v.as_str().ok_or("alarms: 'cron' must be a string")?;
        let schedule = parse_cron(expr)?;
        changed |= alarm.cron.as_deref() != Some(expr);
        alarm.cron = Some(expr.to_string());
        alarm.schedule = Some(schedule);
    }
    if let Some(d) = date_param(params, "date")? {
        changed |= alarm.date != Some(d);
        alarm.date = Some(d);
    }
    if let Some(d) = date_param(params, "startDate")? {
        changed |= alarm.start != Some(d);
        alarm.start = Some(d);
    }
    if let Some(d) = date_param(params, "stopDate")? {
        changed |= alarm.stop != Some(d);
        alarm.stop = Some(d);
    }
    if let (Some(start), Some(stop)) = (alarm.start, alarm.stop) {
        if stop <= start {
            return Err("alarms: 'stopDate' must be after 'startDate'".into());
        }
    }
    if let Some(v) = params.get("trigger_payload") {
        let payload = match v {
            Value::Object(_) => v.clone(),
            Value::String(s) => match serde_json::from_str::<Value>(s) {
                Ok(o @ Value::Object(_)) => o,
                _ => return Err("alarms: 'trigger_payload' must be a JSON object".into()),
            },
            Value::Null => json!({}),
            _ => return Err("alarms: 'trigger_payload' must be a JSON object".into()),
        };
        changed |= alarm.payload != payload;
        alarm.payload = payload;
    }
    if let Some(v) = params.get("deleteAfterFire") {
        changed |= alarm.delete_after_fire != *v;
        alarm.delete_after_fire = v.clone();
    }
    Ok(changed)
}

/// The first wall-clock fire time at or after `now`.
fn first_fire(alarm: &Alarm, now: i64) -> Option<i64> {
    let next = match alarm.kind {
        AlarmKind::Interval => interval_first_fire(alarm, now),
        AlarmKind::Cron => next_cron(alarm, alarm.start.unwrap_or(now).max(now)),
        AlarmKind::Once => alarm.date,
    };
    next.filter(|n| alarm.stop.is_none_or(|s| *n <= s))
}

/// provider/lib/intervalAlarm.js:52-79: the interval starts at the start date (or at the next
/// interval boundary after it when it has passed) and `setInterval` fires one interval later.
fn interval_first_fire(alarm: &Alarm, now: i64) -> Option<i64> {
    let period = i64::try_from(alarm.minutes?).ok()?.checked_mul(60_000)?;
    let start = alarm.start.unwrap_or(now.saturating_add(30_000));
    let begin = if start > now { start } else { start + period * ((now - start) / period + 1) };
    begin.checked_add(period)
}

fn next_cron(alarm: &Alarm, after_ms: i64) -> Option<i64> {
    alarm.schedule.as_ref()?.next_after(after_ms)
}

/// The READ result: `{config, status}` (the authKey is never shown).
fn describe(alarm: &Alarm) -> Value {
    let iso = |ms: i64| chrono::DateTime::from_timestamp_millis(ms).map(|d| d.to_rfc3339());
    let mut config = json!({
        "name": alarm.trigger.rsplit('/').next().unwrap_or_default(),
        "namespace": alarm.trigger.trim_start_matches('/').split('/').next().unwrap_or_default(),
        "payload": alarm.payload,
        // ALARM_DELAY_DEFAULT_STRICT unset: false (action/alarmWebAction.js:194-198)
        "strict": false,
    });
    match alarm.kind {
        AlarmKind::Interval => config["minutes"] = json!(alarm.minutes),
        AlarmKind::Cron => config["cron"] = json!(alarm.cron),
        AlarmKind::Once => {
            config["date"] = json!(alarm.date.and_then(iso));
            config["deleteAfterFire"] = alarm.delete_after_fire.clone();
        }
    }
    if let Some(s) = alarm.start {
        config["startDate"] = json!(iso(s));
    }
    if let Some(s) = alarm.stop {
        config["stopDate"] = json!(iso(s));
    }
    let mut status = json!({
        "active": alarm.active,
        "dateChanged": alarm.date_changed,
        // moment(…).utc().format(): seconds and `Z` (action/alarmWebAction.js:189-190)
        "dateChangedISO": chrono::DateTime::from_timestamp_millis(alarm.date_changed as i64)
            .map(|d| d.format("%Y-%m-%dT%H:%M:%SZ").to_string()),
    });
    // like the provider, an active alarm has no "reason"
    if let Some(r) = &alarm.reason {
        status["reason"] = r.clone();
    }
    json!({"config": config, "status": status})
}

/// Every alarm's READ result, keyed by trigger, plus (control API only) `nextFire`, the
/// wall-clock time in ms of its next fire in realtime mode.
pub(crate) fn describe_all(inner: &Inner) -> Value {
    let alarms = lock(&inner.alarms);
    let with_next = |a: &Alarm| {
        let mut d = describe(a);
        d["nextFire"] = json!(a.next);
        d
    };
    Value::Object(alarms.values().map(|a| (a.trigger.clone(), with_next(a))).collect())
}

/// Fires every active alarm once, in trigger order.
pub(crate) fn fire_all(inner: &Arc<Inner>) -> Vec<(String, u16)> {
    let mut ids: Vec<(String, String)> =
        lock(&inner.alarms).iter().filter(|(_, a)| a.active).map(|(k, a)| (a.trigger.clone(), k.clone())).collect();
    ids.sort();
    ids.into_iter().filter_map(|(t, id)| fire_id(inner, &id).map(|s| (t, s))).collect()
}

/// Fires every active alarm of `trigger` (one per key that created one); the last status.
pub(crate) fn fire_one(inner: &Arc<Inner>, trigger: &str) -> Option<u16> {
    let ids: Vec<String> =
        lock(&inner.alarms).iter().filter(|(_, a)| a.active && a.trigger == trigger).map(|(k, _)| k.clone()).collect();
    let mut last = None;
    for id in ids {
        last = fire_id(inner, &id).or(last);
    }
    last
}

/// Fires one alarm with the provider's policy (provider/lib/utils.js:101-174): a 4xx other
/// than 408, 409 and 429 disables it at once; anything else is retried up to 10 times after
/// `max(1 s, throttled² s)`, where `throttled` counts the 429s, and an alarm throttled on all
/// 10 retries is disabled.
fn fire_id(inner: &Arc<Inner>, id: &str) -> Option<u16> {
    let alarm = lock(&inner.alarms).get(id).cloned().filter(|a| a.active)?;
    if alarm.stop.is_some_and(|s| s < now_ms() as i64) {
        return None;
    }
    let (ns, tname) = alarm.trigger.trim_start_matches('/').split_once('/')?;
    let path = format!("/api/v1/namespaces/{ns}/triggers/{tname}");
    let body = alarm.payload.to_string().into_bytes();
    let unit = inner.config.alarm_retry_unit;
    const RETRY_ATTEMPTS: u32 = 10; // provider/lib/constants.js
    let mut throttled = 0u32;
    let mut retry = 0u32;
    loop {
        let status = server::handle(inner, &Req::internal("POST", &path, &alarm.key, body.clone())).status;
        if (200..300).contains(&status) {
            after_fire(inner, &alarm, id);
            return Some(status);
        }
        if (400..500).contains(&status) && ![408, 409, 429].contains(&status) {
            let message =
                format!("Trigger automatically disabled: Received a {status} status code when firing the trigger");
            disable(inner, id, status, message);
            return Some(status);
        }
        if retry >= RETRY_ATTEMPTS {
            if throttled == RETRY_ATTEMPTS {
                let message =
                    "Automatically disabled after continuously receiving a 429 status code when firing the trigger";
                disable(inner, id, 429, message.to_string());
            }
            return Some(status);
        }
        if status == 429 {
            throttled += 1;
        }
        std::thread::sleep(unit * throttled.pow(2).max(1));
        if inner.stopping.load(Ordering::SeqCst) {
            return Some(status);
        }
        retry += 1;
    }
}

/// provider/lib/utils.js:243-256: `{active: false, reason: {kind: AUTO, statusCode, message}}`.
fn disable(inner: &Inner, id: &str, status: u16, message: String) {
    if let Some(a) = lock(&inner.alarms).get_mut(id) {
        a.active = false;
        a.date_changed = now_ms();
        a.reason = Some(json!({"kind": "AUTO", "statusCode": status, "message": message}));
    }
}

/// A `once` alarm is done after its fire; `deleteAfterFire` also removes the trigger (and rules).
fn after_fire(inner: &Arc<Inner>, alarm: &Alarm, id: &str) {
    if alarm.kind != AlarmKind::Once {
        return;
    }
    let delete = match &alarm.delete_after_fire {
        Value::Bool(b) => *b,
        Value::String(s) => s == "true" || s == "rules",
        _ => false,
    };
    let with_rules = alarm.delete_after_fire == "rules";
    if !delete {
        if let Some(a) = lock(&inner.alarms).get_mut(id) {
            a.active = false;
            a.date_changed = now_ms();
            a.next = None;
            a.reason = Some(json!({"kind": "AUTO", "statusCode": null, "message": "Trigger fired once"}));
        }
        return;
    }
    lock(&inner.alarms).remove(id);
    let Some((ns, tname)) = alarm.trigger.trim_start_matches('/').split_once('/') else { return };
    let tpath = format!("/api/v1/namespaces/{ns}/triggers/{tname}");
    if with_rules {
        let doc = server::handle(inner, &Req::internal("GET", &tpath, &alarm.key, Vec::new())).body_json();
        if let Some(rules) = doc["rules"].as_object() {
            for rule in rules.keys() {
                if let Some((rns, rname)) = rule.split_once('/') {
                    let rpath = format!("/api/v1/namespaces/{rns}/rules/{rname}");
                    server::handle(inner, &Req::internal("DELETE", &rpath, &alarm.key, Vec::new()));
                }
            }
        }
    }
    server::handle(inner, &Req::internal("DELETE", &tpath, &alarm.key, Vec::new()));
}

/// Sandbox mode: fires alarms when their wall-clock time comes.
pub(crate) fn realtime_loop(inner: &Arc<Inner>) {
    while !inner.stopping.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(250));
        let now = now_ms() as i64;
        let due: Vec<String> = {
            let mut alarms = lock(&inner.alarms);
            let mut due = Vec::new();
            for (k, a) in alarms.iter_mut() {
                if a.active && a.next.is_some_and(|n| n <= now) {
                    due.push(k.clone());
                    a.next = match a.kind {
                        AlarmKind::Interval => a
                            .minutes
                            .map(|m| now.saturating_add(i64::try_from(m).unwrap_or(i64::MAX).saturating_mul(60_000))),
                        AlarmKind::Cron => next_cron(a, now),
                        AlarmKind::Once => None,
                    }
                    .filter(|n| a.stop.is_none_or(|s| *n <= s));
                }
            }
            due
        };
        for t in due {
            let inner = inner.clone();
            std::thread::spawn(move || fire_id(&inner, &t));
        }
    }
}
