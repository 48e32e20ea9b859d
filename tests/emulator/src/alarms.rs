//! The built-in `/whisk.system/alarms` package: the `interval`, `alarm` (cron) and `once` feed
//! actions, implemented natively, and the firing of alarms.
//!
//! The feed actions speak the feed protocol (`lifecycleEvent` CREATE/READ/UPDATE/DELETE/PAUSE/
//! UNPAUSE, `triggerName`, `authKey`) and answer `{"error": …}` on failure like the real provider.
//! Firing goes through the normal REST handler (so throttling and injected faults apply) and
//! follows the provider's fire policy: 4xx other than 408/409/429 disables the alarm; other
//! failures retry up to 10 times with `max(1, n²)` units of backoff; still 429 then disables.
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

fn error(msg: impl Into<String>) -> Value {
    json!({"error": msg.into()})
}

fn string_param<'a>(params: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    params.get(name).and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// Runs a feed action invocation; returns the action result.
pub(crate) fn run_feed(inner: &Arc<Inner>, kind: AlarmKind, params: &Map<String, Value>, caller: &Identity) -> Value {
    match feed(inner, kind, params, caller) {
        Ok(v) => v,
        Err(msg) => error(msg),
    }
}

fn feed(inner: &Arc<Inner>, kind: AlarmKind, params: &Map<String, Value>, caller: &Identity) -> Result<Value, String> {
    let event = string_param(params, "lifecycleEvent")
        .ok_or("alarms: 'lifecycleEvent' is required (CREATE, READ, UPDATE, DELETE, PAUSE or UNPAUSE)")?
        .to_ascii_uppercase();
    let trigger_name =
        string_param(params, "triggerName").ok_or("alarms: 'triggerName' is required, as /namespace/trigger")?;
    let parts: Vec<&str> = trigger_name.trim_start_matches('/').split('/').collect();
    let (ns, tname) = match parts.as_slice() {
        [ns, t] if !ns.is_empty() && !t.is_empty() => (if *ns == "_" { caller.namespace.as_str() } else { ns }, *t),
        _ => return Err(format!("alarms: 'triggerName' must be /namespace/trigger, got '{trigger_name}'")),
    };
    let trigger = format!("/{ns}/{tname}");
    let key = string_param(params, "authKey").ok_or("alarms: 'authKey' is required")?;
    let key_ns = inner.namespace_of_key(key).ok_or("alarms: the authKey is not valid (status 401)")?;
    match event.as_str() {
        "CREATE" => {
            let status = server::handle(
                inner,
                &Req::internal("GET", &format!("/api/v1/namespaces/{ns}/triggers/{tname}"), key, Vec::new()),
            )
            .status;
            if status != 200 {
                return Err(format!("alarms: cannot read trigger {trigger} with the given authKey (status {status})"));
            }
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
                    return Err("alarms: 'minutes' is required: an integer greater than 0".into())
                }
                AlarmKind::Cron if alarm.cron.is_none() => {
                    return Err("alarms: 'cron' is required: a cron expression of 5 fields".into())
                }
                AlarmKind::Once if alarm.date.is_none() => {
                    return Err("alarms: 'date' is required: a future date (ISO 8601 or epoch ms)".into())
                }
                _ => {}
            }
            if kind == AlarmKind::Once && alarm.date.is_some_and(|d| d <= now_ms() as i64) {
                return Err("alarms: 'date' must be in the future".into());
            }
            alarm.next = first_fire(&alarm, now_ms() as i64);
            let mut alarms = lock(&inner.alarms);
            if alarms.contains_key(&trigger) {
                return Err(format!("alarms: trigger {trigger} already has an alarm (status 409)"));
            }
            alarms.insert(trigger, alarm);
            Ok(json!({}))
        }
        "DELETE" => {
            let mut alarms = lock(&inner.alarms);
            let alarm =
                alarms.get(&trigger).ok_or_else(|| format!("alarms: no alarm for trigger {trigger} (status 404)"))?;
            check_owner(inner, alarm, &key_ns)?;
            alarms.remove(&trigger);
            Ok(json!({}))
        }
        "READ" => {
            let alarms = lock(&inner.alarms);
            let alarm =
                alarms.get(&trigger).ok_or_else(|| format!("alarms: no alarm for trigger {trigger} (status 404)"))?;
            check_owner(inner, alarm, &key_ns)?;
            Ok(describe(alarm))
        }
        "UPDATE" => {
            let mut alarms = lock(&inner.alarms);
            let alarm = alarms
                .get_mut(&trigger)
                .ok_or_else(|| format!("alarms: no alarm for trigger {trigger} (status 404)"))?;
            check_owner(inner, alarm, &key_ns)?;
            let mut updated = alarm.clone();
            if !apply(&mut updated, params)? {
                return Err("alarms: no updatable parameters were specified (status 400)".into());
            }
            updated.date_changed = now_ms();
            updated.next = first_fire(&updated, now_ms() as i64);
            *alarm = updated;
            Ok(json!({}))
        }
        "PAUSE" | "UNPAUSE" => {
            let mut alarms = lock(&inner.alarms);
            let alarm = alarms
                .get_mut(&trigger)
                .ok_or_else(|| format!("alarms: no alarm for trigger {trigger} (status 404)"))?;
            check_owner(inner, alarm, &key_ns)?;
            alarm.active = event == "UNPAUSE";
            alarm.date_changed = now_ms();
            alarm.reason = if alarm.active {
                None
            } else {
                Some(json!({"kind": "MANUAL", "statusCode": null, "message": "Paused by the user"}))
            };
            if alarm.active {
                alarm.next = first_fire(alarm, now_ms() as i64);
            }
            Ok(json!({}))
        }
        other => Err(format!(
            "alarms: unknown lifecycleEvent '{other}'; expected CREATE, READ, UPDATE, DELETE, PAUSE or UNPAUSE"
        )),
    }
}

fn check_owner(inner: &Inner, alarm: &Alarm, key_ns: &str) -> Result<(), String> {
    if inner.namespace_of_key(&alarm.key).as_deref() == Some(key_ns) {
        Ok(())
    } else {
        Err(format!("alarms: the authKey does not own the alarm of {} (status 403)", alarm.trigger))
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
        .ok_or_else(|| format!("alarms: 'minutes' must be an integer greater than 0, got {v}"))?;
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
        AlarmKind::Interval => Some(alarm.start.unwrap_or(now.saturating_add(30_000)).max(now)),
        AlarmKind::Cron => next_cron(alarm, alarm.start.unwrap_or(now).max(now)),
        AlarmKind::Once => alarm.date,
    };
    next.filter(|n| alarm.stop.is_none_or(|s| *n <= s))
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
        "dateChangedISO": iso(alarm.date_changed as i64),
    });
    // like the provider, an active alarm has no "reason"
    if let Some(r) = &alarm.reason {
        status["reason"] = r.clone();
    }
    json!({"config": config, "status": status})
}

/// Every alarm's READ result, keyed by trigger.
pub(crate) fn describe_all(inner: &Inner) -> Value {
    let alarms = lock(&inner.alarms);
    Value::Object(alarms.iter().map(|(k, a)| (k.clone(), describe(a))).collect())
}

/// Fires every active alarm once, in trigger order.
pub(crate) fn fire_all(inner: &Arc<Inner>) -> Vec<(String, u16)> {
    let triggers: Vec<String> = lock(&inner.alarms).iter().filter(|(_, a)| a.active).map(|(k, _)| k.clone()).collect();
    triggers.into_iter().filter_map(|t| fire_one(inner, &t).map(|s| (t, s))).collect()
}

/// Fires one active alarm (retries included); returns the last fire status.
pub(crate) fn fire_one(inner: &Arc<Inner>, trigger: &str) -> Option<u16> {
    let alarm = lock(&inner.alarms).get(trigger).cloned().filter(|a| a.active)?;
    if alarm.stop.is_some_and(|s| s < now_ms() as i64) {
        return None;
    }
    let (ns, tname) = trigger.trim_start_matches('/').split_once('/')?;
    let path = format!("/api/v1/namespaces/{ns}/triggers/{tname}");
    let body = alarm.payload.to_string().into_bytes();
    let unit = inner.config.alarm_retry_unit;
    let mut status = 0;
    for attempt in 0..=10u32 {
        if attempt > 0 {
            std::thread::sleep(unit * attempt.pow(2).max(1));
            if inner.stopping.load(Ordering::SeqCst) {
                return Some(status);
            }
        }
        status = server::handle(inner, &Req::internal("POST", &path, &alarm.key, body.clone())).status;
        if (200..300).contains(&status) {
            after_fire(inner, &alarm);
            return Some(status);
        }
        if (400..500).contains(&status) && ![408, 409, 429].contains(&status) {
            disable(inner, trigger, status);
            return Some(status);
        }
    }
    if status == 429 {
        disable(inner, trigger, status);
    }
    Some(status)
}

fn disable(inner: &Inner, trigger: &str, status: u16) {
    if let Some(a) = lock(&inner.alarms).get_mut(trigger) {
        a.active = false;
        a.date_changed = now_ms();
        a.reason = Some(json!({
            "kind": "AUTO",
            "statusCode": status,
            "message": format!("Automatically disabled after receiving a {status} status code when firing the trigger"),
        }));
    }
}

/// A `once` alarm is done after its fire; `deleteAfterFire` also removes the trigger (and rules).
fn after_fire(inner: &Arc<Inner>, alarm: &Alarm) {
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
        if let Some(a) = lock(&inner.alarms).get_mut(&alarm.trigger) {
            a.active = false;
            a.date_changed = now_ms();
            a.next = None;
            a.reason = Some(json!({"kind": "AUTO", "statusCode": null, "message": "Trigger fired once"}));
        }
        return;
    }
    lock(&inner.alarms).remove(&alarm.trigger);
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
            std::thread::spawn(move || fire_one(&inner, &t));
        }
    }
}
