//! The namespace scheduler: one alarm, one rule and one binding per namespace (for each package
//! of ours the namespace uses) drive every polling trigger, instead of an alarm and a rule per
//! trigger. Each trigger costs the namespace's quotas what it fires, not an alarm fire and an
//! invocation every minute.
//!
//! Entities, in the user's namespace, named after our package `{pkg}`:
//! * `{pkg}.scheduler`: a binding of our package (its parameters may hold the namespace's
//!   budgets, [`Budgets`]); its annotation [`RECORD`] is what the ticks recorded ([`Record`]);
//! * `{pkg}.scheduler-tick`: a trigger with a `/whisk.system/alarms/alarm` alarm firing at the
//!   start of every minute ([`EVERY_MINUTE`]);
//! * `{pkg}.scheduler-rule`: from that trigger to `{pkg}.scheduler/poll`, whose activation
//!   without a `triggerName` is the tick (`polling::tick`).
//!
//! The registry is the triggers' own config bindings: each carries the annotation
//! [`REGISTRATION`] (schedule, phase, mode, paused), which listing the namespace's packages
//! shows without their parameters, so a tick lists the registry in a few requests and reads
//! only the due triggers' configs. Nothing shared is written by CREATE, UPDATE, PAUSE or
//! DELETE beyond the trigger's own binding, so concurrent lifecycle calls cannot race on a
//! registry. CREATE, UPDATE, UNPAUSE and READ [`ensure`] the scheduler (idempotent; it also
//! repairs an alarm the provider disabled); a tick that saw no active trigger twice removes it,
//! then lists again and makes it anew if a CREATE registered one meanwhile (a CREATE writes
//! its binding before it ensures the scheduler, so one of the two always leaves it in place).
//!
//! Feeds made before the scheduler have an alarm, a rule and a helper trigger of their own
//! (`{trigger}.owfeed-alarm`, `{trigger}.owfeed-rule`); [`migrate`] registers such a feed and
//! removes them, on its next poll or on UPDATE, PAUSE or UNPAUSE.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{json, Value};

use super::entities::{alarm_feed, alarm_trigger_body, describe_invoke_error, Helpers};
use super::log::Mode;
use super::DEFAULT_INTERVAL_MINUTES;
use crate::delivery::NamespaceLimits;
use crate::lifecycle::{ignore_missing, read_binding};
use crate::openwhisk::{from_key_values, Client, OwError, QualifiedName};
use crate::params::{ParamError, Params};
use crate::runtime::ActionError;
use crate::schedule::Schedule;

/// Annotation of a trigger's config binding: its registration with the scheduler.
const REGISTRATION: &str = "owfeedSchedule";
/// Annotation of the scheduler's binding: what the ticks recorded.
const RECORD: &str = "owfeedScheduler";
/// The scheduler's alarm fires at the start of every minute (UTC): ticks then fall inside one
/// calendar minute, the window of OpenWhisk's fire and invocation throttles.
const EVERY_MINUTE: &str = "* * * * *";
/// Largest page of a list request (apache/openwhisk common/scala/src/main/resources/
/// application.conf:519, `max-list-limit`).
const LIST_PAGE: u32 = 200;

/// The scheduler's entities for one package of ours in one namespace.
#[derive(Clone, Debug)]
pub(super) struct Scheduler {
    /// Our package (`/ns/pkg`), which the binding binds.
    pub(super) package: QualifiedName,
    /// `{pkg}.scheduler`.
    pub(super) binding: QualifiedName,
    /// `{pkg}.scheduler-tick`: the alarm's trigger.
    pub(super) alarm: QualifiedName,
    /// `{pkg}.scheduler-rule`.
    pub(super) rule: QualifiedName,
    /// `{pkg}.scheduler/poll`: the tick.
    pub(super) poll: QualifiedName,
}

impl Scheduler {
    /// The scheduler of `package` in `namespace`.
    pub(super) fn new(namespace: &str, package: &QualifiedName) -> Scheduler {
        let base = format!("{}.scheduler", package.name);
        Scheduler {
            package: package.clone(),
            alarm: QualifiedName::new(namespace, None, &format!("{base}-tick")),
            rule: QualifiedName::new(namespace, None, &format!("{base}-rule")),
            poll: QualifiedName::new(namespace, Some(&base), "poll"),
            binding: QualifiedName::new(namespace, None, &base),
        }
    }

    /// The alarms feed schedule of the scheduler's alarm.
    pub(super) fn schedule() -> Schedule {
        Schedule::Cron(EVERY_MINUTE.to_string())
    }

    /// What CREATE and READ show about the entities.
    pub(super) fn names(&self) -> SchedulerNames {
        SchedulerNames {
            alarm_trigger: self.alarm.to_string(),
            rule: self.rule.to_string(),
            binding: self.binding.to_string(),
        }
    }
}

/// A trigger's registration with the scheduler: the annotation [`REGISTRATION`] of its config
/// binding.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Registration {
    /// The user's trigger, `/ns/name`.
    pub(super) trigger: String,
    /// When it polls.
    pub(super) schedule: Schedule,
    /// Its minute within an interval (`Schedule::phase`), kept so it never moves.
    pub(super) phase: u64,
    /// Paused: listed, never polled.
    pub(super) paused: bool,
    /// `connection`: held open by the tick for its whole window.
    pub(super) mode: Mode,
}

impl Registration {
    /// The registration of `trigger` polling on `schedule`.
    pub(super) fn new(trigger: &QualifiedName, schedule: Schedule, mode: Mode, paused: bool) -> Registration {
        let trigger = trigger.to_string();
        let phase = schedule.phase(&trigger);
        Registration { trigger, schedule, phase, paused, mode }
    }

    /// The registration of a stored config (its schedule and mode), `paused` or not.
    fn of_config(trigger: &QualifiedName, config: &Params, paused: bool) -> Registration {
        let schedule = Schedule::from_params(config, DEFAULT_INTERVAL_MINUTES).unwrap_or(Schedule::Interval(1));
        let mode = super::log::LogSettings::from_params(config).map(|l| l.mode).unwrap_or(Mode::Poll);
        Registration::new(trigger, schedule, mode, paused)
    }

    fn to_value(&self) -> Value {
        json!({
            "v": 1,
            "trigger": self.trigger,
            "schedule": self.schedule.to_params(),
            "phase": self.phase,
            "paused": self.paused,
            "mode": self.mode.as_str(),
        })
    }

    fn from_value(v: &Value) -> Option<Registration> {
        let schedule = Params::from_value(v.get("schedule")?.clone()).ok()?;
        let schedule = Schedule::from_params(&schedule, DEFAULT_INTERVAL_MINUTES).ok()?;
        let mode = match v["mode"].as_str() {
            Some("connection") => Mode::Connection,
            _ => Mode::Poll,
        };
        Some(Registration {
            trigger: v["trigger"].as_str()?.to_string(),
            phase: v["phase"].as_u64().unwrap_or(0),
            paused: v["paused"].as_bool().unwrap_or(false),
            schedule,
            mode,
        })
    }

    /// The binding's annotations holding this registration.
    pub(super) fn annotations(&self) -> Value {
        json!([{ "key": REGISTRATION, "value": self.to_value() }])
    }

    /// The registration among a binding's `annotations`, if any.
    pub(super) fn from_annotations(annotations: &Value) -> Option<Registration> {
        from_key_values(annotations).get(REGISTRATION).and_then(Registration::from_value)
    }

    /// True when the scheduler polls it in some minute of `first..=last`.
    pub(super) fn due_between(&self, first: u64, last: u64) -> bool {
        !self.paused && self.schedule.due_between(first, last, self.phase)
    }
}

/// Budget parameters: on our package (the deployer's, for every namespace) or on the
/// namespace's scheduler binding (`wsk package update {pkg}.scheduler -p …`).
pub const BUDGET_PARAMS: [&str; 5] = [
    "namespaceFiresPerMinute",
    "namespaceInvocationsPerMinute",
    "namespaceConcurrency",
    "namespaceFireBurst",
    super::memory::POLL_MEMORY_PARAM,
];

/// Default fires per minute for every feed of a namespace together: of OpenWhisk's default 60
/// (apache/openwhisk ansible/group_vars/all:82) the scheduler's alarm takes 1, and 9 stay for
/// the user's own triggers.
pub const DEFAULT_NAMESPACE_FIRES: u64 = 50;
/// Default invocations per minute the feeds may cause: their fires' rule invocations and the
/// scheduler's own activations, of the default 60; 5 stay for the user's own invocations.
pub const DEFAULT_NAMESPACE_INVOCATIONS: u64 = 55;
/// Default scheduler activations at once (the tick and the activations it fans out to), of the
/// default 30 concurrent invocations.
pub const DEFAULT_NAMESPACE_CONCURRENCY: u64 = 3;
/// Default fires sent back to back before the pace spreads them over the minute.
pub const DEFAULT_FIRE_BURST: u64 = 5;

/// The namespace's budgets for its feeds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Budgets {
    /// Fires and invocations per minute, and the burst.
    pub(super) limits: NamespaceLimits,
    /// Scheduler activations at once.
    pub(super) concurrency: u32,
    /// The poll action's memory, in MiB (`pollMemoryMiB`, `memory::action_mib`).
    pub(super) poll_memory_mib: u64,
}

impl Budgets {
    /// Reads [`BUDGET_PARAMS`] with their defaults.
    pub(super) fn from_params(params: &Params) -> Result<Budgets, ParamError> {
        let get = |name: &str, max: u64, default: u64| -> Result<u32, ParamError> {
            Ok(params.u64_in(name, 1, max)?.unwrap_or(default) as u32)
        };
        Ok(Budgets {
            limits: NamespaceLimits {
                fires_per_minute: get("namespaceFiresPerMinute", 100_000, DEFAULT_NAMESPACE_FIRES)?,
                invocations_per_minute: get("namespaceInvocationsPerMinute", 1_000_000, DEFAULT_NAMESPACE_INVOCATIONS)?,
                burst: get("namespaceFireBurst", 10_000, DEFAULT_FIRE_BURST)?,
            },
            concurrency: get("namespaceConcurrency", 1_000, DEFAULT_NAMESPACE_CONCURRENCY)?,
            poll_memory_mib: super::memory::action_mib(params)?,
        })
    }

    /// What one scheduler activation's polls may hold together, in KiB.
    pub(super) fn poll_memory_kib(&self) -> u64 {
        super::memory::budget_kib(self.poll_memory_mib)
    }

    /// As READ shows them.
    pub(super) fn to_value(self) -> Value {
        json!({
            "namespaceFiresPerMinute": self.limits.fires_per_minute,
            "namespaceInvocationsPerMinute": self.limits.invocations_per_minute,
            "namespaceConcurrency": self.concurrency,
            "namespaceFireBurst": self.limits.burst,
            "pollMemoryMiB": self.poll_memory_mib,
        })
    }
}

// The record is written with serde and read by hand (`from_value`): serde's derived
// Deserialize of these types cost about 30 kB in each action binary.

/// The tick running now, as it claimed it.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Claim {
    /// Its activation.
    pub(super) activation: String,
    /// When it started (epoch ms).
    pub(super) started_ms: u64,
}

/// What one finished tick did.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct TickSummary {
    /// Its activation.
    pub(super) activation: String,
    /// When it started (epoch ms) and for how long it ran.
    pub(super) started_ms: u64,
    /// How long it ran.
    pub(super) duration_ms: u64,
    /// Triggers registered (paused included).
    pub(super) registered: u64,
    /// Of them paused.
    pub(super) paused: u64,
    /// Bindings of our package without a registration: feeds that still have an alarm of their own.
    pub(super) legacy: u64,
    /// Triggers due in this tick (its own and its fan-out's).
    pub(super) due: u64,
    /// Triggers this activation polled.
    pub(super) polled: u64,
    /// Due triggers no activation had time for (polled by the next tick).
    pub(super) not_polled: u64,
    /// Polls that failed.
    pub(super) errors: u64,
    /// Polls that found the lease held.
    pub(super) busy: u64,
    /// Events fired.
    pub(super) fired: u64,
    /// Events left in outboxes.
    pub(super) pending: u64,
    /// Connection-mode triggers held.
    pub(super) connection: u64,
    /// Activations fanned out to.
    pub(super) children: u64,
    /// Mean wall time of a poll (not connection mode), for planning the next tick's fan-out.
    pub(super) ms_per_poll: u64,
    /// The first problems (trigger: error).
    pub(super) problems: Vec<String>,
}

/// What the ticks keep between them (the scheduler binding's annotation [`RECORD`]).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Record {
    /// The tick running now, if one claimed the minute and has not finished.
    pub(super) running: Option<Claim>,
    /// The last finished tick.
    pub(super) last: Option<TickSummary>,
    /// The calendar minute the last tick ran in, and what it counted there.
    pub(super) spent_minute: u64,
    /// Fires counted in `spent_minute`.
    pub(super) spent_fires: u32,
    /// Invocations counted in `spent_minute`.
    pub(super) spent_invocations: u32,
    /// Config bindings to poll in the next tick whatever their schedule: left with pending
    /// events, a resumable listing, or no time.
    pub(super) backlog: Vec<String>,
    /// Activations the last tick fanned out to (the next tick reads their backlog).
    pub(super) children: Vec<String>,
    /// Ticks in a row that found no active trigger.
    pub(super) idle_ticks: u32,
    /// The alarms package the scheduler's alarm was made with.
    pub(super) alarms: Option<String>,
    /// Objects in the snapshots of large feeds, by config binding, as their polls last said:
    /// what the tick admits their polls by (`memory.rs`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub(super) sizes: BTreeMap<String, u64>,
}

/// `v[key]` as a number (0 when missing or not one).
fn number(v: &Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or(0)
}

/// `v[key]` as a small number (0 when missing, not one, or too large).
fn small(v: &Value, key: &str) -> u32 {
    u32::try_from(number(v, key)).unwrap_or(0)
}

/// `v[key]` as a string ("" when missing or not one).
fn text(v: &Value, key: &str) -> String {
    v[key].as_str().unwrap_or_default().to_string()
}

/// `v` as sizes by binding (what is not a number is left out).
fn sizes(v: &Value) -> BTreeMap<String, u64> {
    v.as_object().map(|m| m.iter().filter_map(|(k, n)| Some((k.clone(), n.as_u64()?))).collect()).unwrap_or_default()
}

/// `v[key]` as a list of strings (what is not a string is left out).
fn texts(v: &Value, key: &str) -> Vec<String> {
    v[key].as_array().map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect()).unwrap_or_default()
}

impl Claim {
    fn from_value(v: &Value) -> Option<Claim> {
        v.is_object().then(|| Claim { activation: text(v, "activation"), started_ms: number(v, "startedMs") })
    }
}

impl TickSummary {
    fn from_value(v: &Value) -> Option<TickSummary> {
        v.is_object().then(|| TickSummary {
            activation: text(v, "activation"),
            started_ms: number(v, "startedMs"),
            duration_ms: number(v, "durationMs"),
            registered: number(v, "registered"),
            paused: number(v, "paused"),
            legacy: number(v, "legacy"),
            due: number(v, "due"),
            polled: number(v, "polled"),
            not_polled: number(v, "notPolled"),
            errors: number(v, "errors"),
            busy: number(v, "busy"),
            fired: number(v, "fired"),
            pending: number(v, "pending"),
            connection: number(v, "connection"),
            children: number(v, "children"),
            ms_per_poll: number(v, "msPerPoll"),
            problems: texts(v, "problems"),
        })
    }
}

impl Record {
    /// The record among a binding's `annotations` (a default one when there is none; what is
    /// missing or malformed in it reads as its default).
    pub(super) fn from_annotations(annotations: &Value) -> Record {
        let Some(v) = from_key_values(annotations).get(RECORD).cloned() else { return Record::default() };
        Record {
            running: Claim::from_value(&v["running"]),
            last: TickSummary::from_value(&v["last"]),
            spent_minute: number(&v, "spentMinute"),
            spent_fires: small(&v, "spentFires"),
            spent_invocations: small(&v, "spentInvocations"),
            backlog: texts(&v, "backlog"),
            children: texts(&v, "children"),
            idle_ticks: small(&v, "idleTicks"),
            alarms: v["alarms"].as_str().map(str::to_string),
            sizes: sizes(&v["sizes"]),
        }
    }
}

/// The scheduler binding's document, or `None` when there is none.
pub(super) fn read_doc(client: &Client, s: &Scheduler) -> Result<Option<Value>, ActionError> {
    read_binding(client, &s.binding, "scheduler binding")
}

/// Replaces the record (the binding's parameters and binding stay as they are).
pub(super) fn write_record(client: &Client, s: &Scheduler, record: &Record) -> Result<(), OwError> {
    let value = serde_json::to_value(record).unwrap_or(Value::Null);
    client.put_package(&s.binding, &json!({ "annotations": [{ "key": RECORD, "value": value }] }), true).map(|_| ())
}

/// The alarms package the scheduler's alarm uses: the one it was made with, else `requested`.
pub(super) fn alarms_of(record: &Record, requested: &QualifiedName) -> QualifiedName {
    record
        .alarms
        .as_deref()
        .and_then(|a| QualifiedName::parse(a, "whisk.system").ok())
        .unwrap_or_else(|| requested.clone())
}

/// What [`ensure`] found and did.
#[derive(Clone, Debug)]
pub(super) struct Ensured {
    /// The alarm's health as the alarms provider reports it (after any repair).
    pub(super) alarm: Value,
    /// What was repaired, when something was: the alarm (disabled by the provider, or gone) or
    /// the rule (disabled).
    pub(super) repaired: Vec<String>,
    /// True when this call made the scheduler (it did not exist).
    pub(super) made: bool,
}

/// Makes sure the scheduler exists and works: the binding, the alarm trigger, the rule
/// (enabled) and the alarm (registered and active at the alarms provider). Idempotent; an
/// alarm the provider disabled (a 4xx, or 10 throttled retries) is made again, which
/// re-enables it (openwhisk-package-alarms action/lib/Database.js:64-89).
pub(super) fn ensure(client: &Client, s: &Scheduler, alarms: &QualifiedName) -> Result<Ensured, ActionError> {
    ensure_tracked(client, s, alarms, &std::cell::Cell::new(false))
}

/// [`ensure`], setting `made` as soon as it has made the scheduler's binding (a failed CREATE
/// removes what it made).
pub(super) fn ensure_tracked(
    client: &Client,
    s: &Scheduler,
    alarms: &QualifiedName,
    made_it: &std::cell::Cell<bool>,
) -> Result<Ensured, ActionError> {
    let fail = |what: &str, e: String| ActionError::new(format!("namespace scheduler: {what}: {e}"));
    let body = json!({
        "binding": { "namespace": s.package.namespace, "name": s.package.name },
        "parameters": [],
    });
    let mut made = false;
    let mut record = Record::default();
    match client.put_package(&s.binding, &body, false) {
        Ok(_) => {
            made = true;
            made_it.set(true);
        }
        Err(OwError::Conflict(_)) => {
            let doc = read_doc(client, s)?.unwrap_or_default();
            let bound = &doc["binding"];
            let ours = bound["namespace"] == s.package.namespace.as_str() && bound["name"] == s.package.name.as_str();
            if !ours {
                return Err(fail(
                    &format!("{} exists but is not a binding of {}", s.binding, s.package),
                    format!("it binds {bound}; delete or rename it"),
                ));
            }
            record = Record::from_annotations(&doc["annotations"]);
        }
        Err(e) => return Err(fail(&format!("creating the binding {}", s.binding), e.to_string())),
    }
    let alarms = alarms_of(&record, alarms);
    match client.put_trigger(&s.alarm, &alarm_trigger_body(&alarms, &Scheduler::schedule()), false) {
        Ok(_) | Err(OwError::Conflict(_)) => {}
        Err(e) => return Err(fail(&format!("creating the trigger {}", s.alarm), e.to_string())),
    }
    let mut repaired = Vec::new();
    match client.put_rule(&s.rule, &s.alarm, &s.poll, false) {
        Ok(_) => {}
        Err(OwError::Conflict(_)) => {
            let rule = client.get_rule(&s.rule).map_err(|e| fail(&format!("rule {}", s.rule), e.to_string()))?;
            if rule["status"] != "active" {
                client
                    .set_rule_active(&s.rule, true)
                    .map_err(|e| fail(&format!("enabling the rule {}", s.rule), e.to_string()))?;
                repaired.push(format!("the rule {} was disabled: enabled", s.rule));
            }
        }
        Err(e) => return Err(fail(&format!("creating the rule {}", s.rule), e.to_string())),
    }
    let health = alarm_health(client, &alarms, &s.alarm);
    let alarm = if health["active"] == true {
        health
    } else {
        alarm_feed(client, &alarms, &Scheduler::schedule(), "CREATE", &s.alarm).map_err(|e| {
            fail(&format!("creating the alarm of {} with {alarms}", s.alarm), describe_invoke_error(&e))
        })?;
        if !made && health["active"] == false {
            repaired.push(format!(
                "the alarm of {} was not active ({}): made again",
                s.alarm,
                describe_health(&health)
            ));
        }
        alarm_health(client, &alarms, &s.alarm)
    };
    if made || record.alarms.is_none() {
        record.alarms = Some(alarms.to_string());
        // Best effort: without it a later ensure uses the alarms package it is given.
        if let Err(e) = write_record(client, s, &record) {
            crate::runtime::log(&format!("namespace scheduler: recording the alarms package: {e}"));
        }
    }
    Ok(Ensured { alarm, repaired, made })
}

/// The alarm's health in one phrase.
fn describe_health(health: &Value) -> String {
    match (&health["reason"], &health["error"]) {
        (Value::String(r), _) => r.clone(),
        (Value::Object(r), _) => r
            .get("message")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| Value::Object(r.clone()).to_string()),
        (_, Value::String(e)) => e.clone(),
        _ => health.to_string(),
    }
}

/// The scheduler alarm's health as the alarms provider reports it on READ.
pub(super) fn alarm_health(client: &Client, alarms: &QualifiedName, alarm: &QualifiedName) -> Value {
    super::feed::alarm_health(client, alarms, &Scheduler::schedule(), alarm)
}

/// Removes the scheduler: the rule, the alarm, the alarm's trigger, and the binding unless it
/// holds parameters of the user's (budgets). Each step tolerates what is already gone.
pub(super) fn remove(client: &Client, s: &Scheduler, alarms: &QualifiedName) -> Vec<String> {
    let mut problems = Vec::new();
    if let Err(e) = ignore_missing(client.delete_rule(&s.rule)) {
        problems.push(format!("rule {}: {e}", s.rule));
    }
    let _ = alarm_feed(client, alarms, &Scheduler::schedule(), "DELETE", &s.alarm);
    if let Err(e) = ignore_missing(client.delete_trigger(&s.alarm)) {
        problems.push(format!("trigger {}: {e}", s.alarm));
    }
    match read_doc(client, s) {
        Ok(Some(doc)) if from_key_values(&doc["parameters"]).is_empty() => {
            if let Err(e) = ignore_missing(client.delete_package(&s.binding)) {
                problems.push(format!("binding {}: {e}", s.binding));
            }
        }
        Ok(_) => {}
        Err(e) => problems.push(e.message),
    }
    problems
}

/// Removes the scheduler when no active trigger is registered: removes it, lists the registry
/// again, and makes it anew if a trigger registered meanwhile (every registration is written
/// before its CREATE or UNPAUSE makes sure of the scheduler, so this listing sees it).
/// `Ok(true)` when it stayed removed.
pub(super) fn remove_unless_needed(
    client: &Client,
    s: &Scheduler,
    alarms: &QualifiedName,
) -> Result<bool, ActionError> {
    let problems = remove(client, s, alarms);
    if !problems.is_empty() {
        crate::runtime::log(&format!("namespace scheduler: could not remove: {}", problems.join("; ")));
    }
    let needed = list(client, &s.package)
        .map(|l| l.iter().any(|l| l.registration.as_ref().is_some_and(|r| !r.paused)))
        // When the registry cannot be read, the scheduler stays rather than strand a trigger.
        .unwrap_or(true);
    if needed {
        ensure(client, s, alarms)?;
    }
    Ok(!needed)
}

/// One of our package's bindings in the namespace.
#[derive(Clone, Debug)]
pub(super) struct Listed {
    /// The binding's name (`{trigger}.owfeed` for a polling feed).
    pub(super) binding: String,
    /// Its registration, when it is a registered polling feed.
    pub(super) registration: Option<Registration>,
}

/// Every binding of `package` in the caller's namespace, page by page. A binding updated while
/// the pages are read may move between pages (the list is ordered by update time) and be
/// missed by this listing; the next one sees it.
pub(super) fn list(client: &Client, package: &QualifiedName) -> Result<Vec<Listed>, OwError> {
    let mut out: Vec<Listed> = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    let mut skip = 0;
    loop {
        let page = client.list_packages(LIST_PAGE, skip)?;
        let items = page.as_array().cloned().unwrap_or_default();
        for item in &items {
            let bound = &item["binding"];
            if bound["namespace"] != package.namespace.as_str() || bound["name"] != package.name.as_str() {
                continue;
            }
            let Some(name) = item["name"].as_str() else { continue };
            if seen.insert(name.to_string()) {
                let registration = Registration::from_annotations(&item["annotations"]);
                out.push(Listed { binding: name.to_string(), registration });
            }
        }
        if items.len() < LIST_PAGE as usize {
            return Ok(out);
        }
        skip += items.len() as u32;
    }
}

/// Registers a trigger's config binding with the scheduler (its annotation only; the
/// parameters stay).
pub(super) fn register(client: &Client, binding: &QualifiedName, registration: &Registration) -> Result<(), OwError> {
    client.put_package(binding, &json!({ "annotations": registration.annotations() }), true).map(|_| ())
}

/// True when the trigger still has a rule of its own (a feed made before the scheduler).
pub(super) fn has_legacy_rule(client: &Client, helpers: &Helpers) -> Result<Option<bool>, OwError> {
    match client.get_rule(&helpers.rule) {
        Ok(rule) => Ok(Some(rule["status"] == "active")),
        Err(OwError::NotFound(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Removes a feed's own alarm, rule and helper trigger (made before the scheduler); what is
/// already gone is fine, and nothing is asked of the alarms provider for a feed that never
/// had a helper trigger.
pub(super) fn remove_legacy(
    client: &Client,
    helpers: &Helpers,
    alarms: &QualifiedName,
    schedule: &Schedule,
) -> Vec<String> {
    let mut problems = Vec::new();
    if let Err(e) = ignore_missing(client.delete_rule(&helpers.rule)) {
        problems.push(format!("rule {}: {e}", helpers.rule));
    }
    match client.get_trigger(&helpers.alarm) {
        Err(OwError::NotFound(_)) => {}
        _ => {
            // The alarms provider answers an error when it has no such alarm: nothing to undo then.
            let _ = alarm_feed(client, alarms, schedule, "DELETE", &helpers.alarm);
            if let Err(e) = ignore_missing(client.delete_trigger(&helpers.alarm)) {
                problems.push(format!("trigger {}: {e}", helpers.alarm));
            }
        }
    }
    problems
}

/// Moves a feed made before the scheduler onto it: registers its binding (`paused` as its rule
/// was), makes sure the scheduler runs, then removes the feed's own alarm, rule and helper
/// trigger. Registering first: a poll by both for a moment is kept apart by the lease.
pub(super) fn migrate(
    client: &Client,
    trigger: &QualifiedName,
    config: &Params,
    package: &QualifiedName,
    paused: bool,
) -> Result<Value, ActionError> {
    let helpers = Helpers::for_trigger(trigger);
    let registration = Registration::of_config(trigger, config, paused);
    register(client, &helpers.config, &registration)
        .map_err(|e| ActionError::new(format!("registering {} with the namespace scheduler: {e}", helpers.config)))?;
    let s = Scheduler::new(&trigger.namespace, package);
    let (alarms, schedule) = super::entities::teardown_plan(config);
    if !paused {
        ensure(client, &s, &alarms)?;
    }
    let problems = remove_legacy(client, &helpers, &alarms, &schedule);
    Ok(json!({
        "from": helpers.alarm.to_string(),
        "to": s.alarm.to_string(),
        "paused": paused,
        "notRemoved": problems,
    }))
}

/// After a poll of one trigger through its own binding: when the trigger still has its own
/// rule (it was made before the scheduler, and its alarm invoked this poll), moves it to the
/// scheduler. `None` when there was nothing to move; failures are logged and shown, never
/// fail the poll (the feed keeps polling on its own alarm).
pub(super) fn migrate_after_poll(ctx: &crate::runtime::Context, config: &Params) -> Option<Value> {
    let trigger = QualifiedName::parse(&config.str(super::CONFIG_TRIGGER).ok()??, &ctx.namespace).ok()?;
    let package = QualifiedName::parse(ctx.package()?, &ctx.namespace).ok()?;
    let key = ctx.api_key.as_ref()?;
    let auth = crate::openwhisk::AuthKey::parse(key.expose()).ok()?;
    let tls = crate::openwhisk::ApiTls::from_params(config).ok()?;
    let client = Client::new(ctx.api_host.as_deref()?, auth).with_tls(&tls).ok()?.until(ctx.deadline);
    let helpers = Helpers::for_trigger(&trigger);
    let result = match has_legacy_rule(&client, &helpers) {
        Ok(None) => return None,
        Ok(Some(active)) => migrate(&client, &trigger, config, &package, !active),
        Err(e) => Err(ActionError::new(format!("checking for the feed's own rule: {e}"))),
    };
    Some(result.unwrap_or_else(|e| {
        crate::runtime::log(&format!("poll: moving {trigger} to the namespace scheduler: {e}"));
        json!({ "error": e.message })
    }))
}

/// The scheduler's entities, as CREATE and READ name them.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SchedulerNames {
    /// The alarm's trigger.
    pub alarm_trigger: String,
    /// The rule from it to `poll`.
    pub rule: String,
    /// The binding the rule invokes `poll` through.
    pub binding: String,
}

/// READ's picture of the namespace (`status.scheduler`): its one definition.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SchedulerStatus {
    /// Its entities.
    #[serde(flatten)]
    pub names: SchedulerNames,
    /// The alarm's health, as the alarms provider reports it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alarm: Option<Value>,
    /// Why the scheduler does not work (no trigger of the namespace is polled).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// What READ found broken and made again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repaired: Option<Vec<String>>,
    /// The namespace budgets in force (or the error in them).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub budgets: Option<Value>,
    /// What the last tick saw and did.
    #[serde(flatten)]
    pub last_tick: Option<LastTick>,
    /// Triggers waiting for their turn at the fire budget.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backlog: Option<usize>,
    /// Fires spent this minute, while the minute lasts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fires_this_minute: Option<u32>,
    /// The tick running now, if one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tick_running: Option<TickRunning>,
}

/// The last tick, as READ shows it.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LastTick {
    /// When it started (RFC 3339).
    pub last_tick: String,
    /// How long it took.
    pub last_tick_duration_ms: u64,
    /// Triggers registered.
    pub registered: u64,
    /// Of which paused.
    pub paused: u64,
    /// Of which due.
    pub due: u64,
    /// Polled by it.
    pub polled_last_tick: u64,
    /// Due and not polled (the next tick goes on).
    pub not_polled_last_tick: u64,
    /// Events pending in the triggers it polled.
    pub events_pending: u64,
    /// Connection-mode triggers it served.
    pub connection_mode: u64,
    /// Child activations it fanned out to.
    pub fanned_out_to: u64,
    /// Feeds still polled by their own alarm (not moved yet).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub with_own_alarm: Option<u64>,
    /// Its first errors.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
}

/// The tick running now.
#[derive(Clone, Debug, Default, Serialize)]
pub struct TickRunning {
    /// Its activation.
    pub activation: String,
    /// Since when (RFC 3339).
    pub since: String,
}

impl SchedulerStatus {
    /// Every field READ's `status.scheduler` can show, by its JSON name: what README names.
    pub fn fields() -> Vec<String> {
        // A literal naming every field (no `..`), so a new field cannot be left out here.
        let every = SchedulerStatus {
            names: SchedulerNames::default(),
            alarm: Some(Value::Null),
            problem: Some(String::new()),
            repaired: Some(Vec::new()),
            budgets: Some(Value::Null),
            last_tick: Some(LastTick {
                last_tick: String::new(),
                last_tick_duration_ms: 0,
                registered: 0,
                paused: 0,
                due: 0,
                polled_last_tick: 0,
                not_polled_last_tick: 0,
                events_pending: 0,
                connection_mode: 0,
                fanned_out_to: 0,
                with_own_alarm: Some(0),
                problems: vec![String::new()],
            }),
            backlog: Some(0),
            fires_this_minute: Some(0),
            tick_running: Some(TickRunning::default()),
        };
        super::field_names(every)
    }

    /// True when its alarm is active and nothing is wrong: polls run.
    pub(super) fn working(&self) -> bool {
        self.problem.is_none() && self.alarm.as_ref().is_some_and(|a| a["active"] == true)
    }
}

/// READ's picture of the namespace: the scheduler's entities and health (repaired when a
/// trigger is active and the scheduler is not: the alarm disabled or gone, the rule disabled),
/// what the last tick saw and did, and the budgets. `budget_params` are the feed action's
/// (our package's) parameters; the binding's override them.
pub(super) fn namespace_status(
    client: &Client,
    s: &Scheduler,
    requested_alarms: &QualifiedName,
    budget_params: &Params,
    repair: bool,
) -> SchedulerStatus {
    let mut out = SchedulerStatus { names: s.names(), ..SchedulerStatus::default() };
    let doc = match read_doc(client, s) {
        Ok(doc) => doc,
        Err(e) => {
            out.problem = Some(e.message);
            return out;
        }
    };
    let record = doc.as_ref().map(|d| Record::from_annotations(&d["annotations"])).unwrap_or_default();
    let alarms = alarms_of(&record, requested_alarms);
    let health = alarm_health(client, &alarms, &s.alarm);
    let rule_active = client.get_rule(&s.rule).map(|r| r["status"] == "active").ok();
    let working = doc.is_some() && health["active"] == true && rule_active == Some(true);
    if working || !repair {
        out.alarm = Some(health);
    } else {
        match ensure(client, s, &alarms) {
            Ok(done) => {
                let mut repaired = done.repaired.clone();
                if repaired.is_empty() {
                    repaired.push(format!(
                        "the scheduler was not working (binding {}, rule active {:?}, alarm {}): made again",
                        if doc.is_some() { "present" } else { "missing" },
                        rule_active,
                        describe_health(&health)
                    ));
                }
                out.repaired = Some(repaired);
                out.alarm = Some(done.alarm);
            }
            Err(e) => {
                out.alarm = Some(health);
                out.problem = Some(format!(
                    "{}: no trigger of this namespace is polled; READ, UPDATE or CREATE of any feed tries again",
                    e.message
                ));
            }
        }
    }
    let mut merged = budget_params.clone();
    if let Some(doc) = &doc {
        for (k, v) in from_key_values(&doc["parameters"]) {
            merged.insert(&k, v);
        }
    }
    out.budgets = Some(match Budgets::from_params(&merged) {
        Ok(b) => b.to_value(),
        Err(e) => json!({ "error": e.to_string() }),
    });
    out.last_tick = record.last.as_ref().map(|last| LastTick {
        last_tick: super::iso(last.started_ms),
        last_tick_duration_ms: last.duration_ms,
        registered: last.registered,
        paused: last.paused,
        due: last.due,
        polled_last_tick: last.polled,
        not_polled_last_tick: last.not_polled,
        events_pending: last.pending,
        connection_mode: last.connection,
        fanned_out_to: last.children,
        with_own_alarm: (last.legacy > 0).then_some(last.legacy),
        problems: last.problems.clone(),
    });
    out.backlog = Some(record.backlog.len());
    if record.spent_minute == crate::budget::now_ms() / 60_000 {
        out.fires_this_minute = Some(record.spent_fires);
    }
    out.tick_running = record
        .running
        .as_ref()
        .map(|r| TickRunning { activation: r.activation.clone(), since: super::iso(r.started_ms) });
    out
}

/// The bindings' parameters, by name: a binding's `parameters` as `Params`.
pub(super) fn params_of(doc: &Value) -> Result<Params, ParamError> {
    Params::from_value(Value::Object(from_key_values(&doc["parameters"])))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registrations_round_trip_through_annotations() {
        let t = QualifiedName::new("guest", None, "t");
        let r = Registration::new(&t, Schedule::Interval(5), Mode::Connection, true);
        assert!(r.phase < 5);
        let back = Registration::from_annotations(&r.annotations()).unwrap();
        assert_eq!(back, r);
        let cron = Registration::new(&t, Schedule::Cron("0 9 * * 0".into()), Mode::Poll, false);
        assert_eq!(Registration::from_annotations(&cron.annotations()).unwrap(), cron);
        assert_eq!(Registration::from_annotations(&json!([{"key": "other", "value": 1}])), None);
        assert_eq!(Registration::from_annotations(&json!("junk")), None);
    }

    #[test]
    fn budgets_have_defaults_that_leave_the_user_room_and_name_a_bad_value() {
        let b = Budgets::from_params(&Params::default()).unwrap();
        assert_eq!((b.limits.fires_per_minute, b.limits.invocations_per_minute, b.concurrency), (50, 55, 3));
        let bad = Params::from_value(json!({"namespaceFiresPerMinute": 0})).unwrap();
        assert_eq!(Budgets::from_params(&bad).unwrap_err().name, "namespaceFiresPerMinute");
    }

    #[test]
    fn a_record_survives_its_annotation_and_a_missing_one_is_empty() {
        // Every field set, so the hand-written reader is checked against the serialized names.
        let r = Record {
            running: Some(Claim { activation: "a1".into(), started_ms: 2 }),
            last: Some(TickSummary {
                activation: "a0".into(),
                started_ms: 3,
                duration_ms: 4,
                registered: 5,
                paused: 6,
                legacy: 7,
                due: 8,
                polled: 9,
                not_polled: 10,
                errors: 11,
                busy: 12,
                fired: 13,
                pending: 14,
                connection: 15,
                children: 16,
                ms_per_poll: 17,
                problems: vec!["/ns/t: failed".into()],
            }),
            spent_minute: 18,
            spent_fires: 19,
            spent_invocations: 20,
            backlog: vec!["t.owfeed".into()],
            children: vec!["a2".into()],
            idle_ticks: 21,
            alarms: Some("/whisk.system/alarms".into()),
            sizes: BTreeMap::from([("big.owfeed".to_string(), 1_000_000)]),
        };
        let annotations = json!([{ "key": RECORD, "value": serde_json::to_value(&r).unwrap() }]);
        assert_eq!(Record::from_annotations(&annotations), r);
        assert_eq!(Record::from_annotations(&json!([])), Record::default());
    }
}
