//! The per-trigger helper entities (the config binding, and for a feed made before the
//! namespace scheduler its alarm trigger and rule), the alarms feed that drives an alarm
//! trigger, and the feed's teardown.

use serde_json::{json, Value};

use super::{DEFAULT_ALARMS_PACKAGE, DEFAULT_INTERVAL_MINUTES};
use crate::lifecycle::ignore_missing;
use crate::openwhisk::{Client, OwError, QualifiedName};
use crate::params::{ParamError, Params};
use crate::schedule::Schedule;
use crate::store::StateStore;

/// The entities of a polling feed in the user's namespace, named after the trigger: the config
/// binding, and for a feed made before the namespace scheduler its own alarm trigger and rule.
pub(super) struct Helpers {
    pub(super) alarm: QualifiedName,
    pub(super) rule: QualifiedName,
    pub(super) config: QualifiedName,
}

impl Helpers {
    pub(super) fn for_trigger(trigger: &QualifiedName) -> Helpers {
        // Triggers, rules and packages share one name space per namespace: distinct suffixes.
        let ns = &trigger.namespace;
        let config = format!("{}.owfeed", trigger.name);
        Helpers {
            alarm: QualifiedName::new(ns, None, &format!("{}.owfeed-alarm", trigger.name)),
            rule: QualifiedName::new(ns, None, &format!("{}.owfeed-rule", trigger.name)),
            config: QualifiedName::new(ns, None, &config),
        }
    }
}

/// The alarms package from `alarmsPackage` (default `/whisk.system/alarms`).
pub(super) fn alarms_package(params: &Params) -> Result<QualifiedName, ParamError> {
    let name = params.str("alarmsPackage")?.unwrap_or_else(|| DEFAULT_ALARMS_PACKAGE.to_string());
    QualifiedName::parse(&name, "whisk.system")
        .ok()
        .filter(|q| q.package.is_none())
        .ok_or_else(|| ParamError::invalid("alarmsPackage", "/namespace/package", &name.clone().into()))
}

/// What tearing a feed down needs from its stored config, with defaults for a broken one:
/// DELETE must get as far as it can.
pub(super) fn teardown_plan(config: &Params) -> (QualifiedName, Schedule) {
    let schedule = Schedule::from_params(config, DEFAULT_INTERVAL_MINUTES).unwrap_or(Schedule::Interval(1));
    (alarms_package(config).unwrap_or_else(|_| default_alarms()), schedule)
}

/// The helper trigger's body: annotated with the alarms feed that drives it.
pub(super) fn alarm_trigger_body(alarms: &QualifiedName, schedule: &Schedule) -> Value {
    let feed_name = format!("{alarms}/{}", schedule.alarm_feed());
    json!({ "annotations": [{ "key": "feed", "value": feed_name }], "parameters": [] })
}

/// Invokes an alarms feed action for the helper trigger (the recipe of the feeds docs).
pub(super) fn alarm_feed(
    client: &Client,
    alarms: &QualifiedName,
    schedule: &Schedule,
    event: &str,
    helper: &QualifiedName,
) -> Result<Value, OwError> {
    let action = QualifiedName::new(&alarms.namespace, Some(&alarms.name), schedule.alarm_feed());
    let mut params = json!({
        "lifecycleEvent": event,
        "triggerName": helper.to_string(),
        "authKey": client.auth().to_secret().expose(),
        "trigger_payload": {},
    });
    if let (Value::Object(p), Value::Object(extra)) = (&mut params, schedule.alarm_params()) {
        p.extend(extra);
    }
    client.invoke(&action, &params, true)
}

/// Removes the feed: its own alarm, rule and helper trigger if it was made before the
/// namespace scheduler, the state, and the config binding (which is its registration with the
/// scheduler); each step tolerates what is already gone. The scheduler stays: it removes
/// itself once no trigger is registered.
pub(super) fn teardown(
    client: &Client,
    helpers: &Helpers,
    alarms: &QualifiedName,
    schedule: &Schedule,
    store: Option<&StateStore>,
) -> Vec<String> {
    let mut problems = super::scheduler::remove_legacy(client, helpers, alarms, schedule);
    if let Some(store) = store {
        if let Err(e) = store.delete_all() {
            problems.push(format!("state {}: {e}", store.location()));
        }
    }
    if let Err(e) = ignore_missing(client.delete_package(&helpers.config)) {
        problems.push(format!("package {}: {e}", helpers.config));
    }
    problems
}

pub(super) fn default_alarms() -> QualifiedName {
    QualifiedName::new("whisk.system", None, "alarms")
}

/// An alarms feed error in one line: the provider's errors are `{"error": "…"}` or, from its
/// web action, `{"error": {"error": "…", "message": "…"}}` (action/lib/common.js:105-116).
pub(super) fn describe_invoke_error(e: &OwError) -> String {
    match e {
        OwError::Application(result) => match result.get("error") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Object(inner)) => {
                let text = |k: &str| inner.get(k).and_then(Value::as_str).map(str::to_string);
                match (text("error"), text("message")) {
                    (Some(e), Some(m)) => format!("{e} ({m})"),
                    (Some(e), None) => e,
                    _ => Value::Object(inner.clone()).to_string(),
                }
            }
            Some(other) => other.to_string(),
            None => result.to_string(),
        },
        e => e.to_string(),
    }
}
