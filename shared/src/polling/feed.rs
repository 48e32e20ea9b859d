//! The feed action: CREATE, READ, UPDATE, DELETE, PAUSE and UNPAUSE of a polling feed.

use serde_json::{json, Value};

use super::baseline::baseline;
use super::entities::{
    alarm_feed, alarms_package, default_alarms, describe_invoke_error, teardown, teardown_plan, Helpers,
};
use super::extensions::{Extensions, NamedStore};
use super::log::{cursor_stall, log_baseline, log_facts, log_lag, LogSettings, Mode, Since};
use super::opened::{find_source, source_error, state_blobs, Opened};
use super::scheduler::{self, Registration, Scheduler};
use super::status::{Deletes, ReadStatus, Rebaselined, SchedulerView, SnapshotFacts, WriteDialect};
use super::{
    config_dialect, dialect_fields, iso, margins, PollSettings, CONFIG_ACKNOWLEDGED, CONFIG_DIALECT, CONFIG_SOURCE,
    CONFIG_TRIGGER, DEFAULT_INTERVAL_MINUTES,
};
use crate::budget::{now_ms, Budget};
use crate::events::Format;
use crate::lifecycle::{ignore_missing, read_binding, redact, Feed, FeedRequest, Undo};
use crate::openwhisk::{Client, OwError, QualifiedName};
use crate::params::{ParamError, Params};
use crate::runtime::ActionError;
use crate::schedule::Schedule;
use crate::secret::Secret;
use crate::source::{AnySource, LogSource, Source};
use crate::state::State;
use crate::store::{
    key_request, resolve_key, stored_key, DialectProbe, LoadError, Resealed, StateStore, CONFIG_STATE_KEY,
};

/// Everything CREATE and UPDATE check before they make anything.
struct Validated {
    schedule: Schedule,
    settings: PollSettings,
    /// The core's log parameters, for a log source.
    log: Option<LogSettings>,
    opened: Opened,
    alarms: QualifiedName,
}

/// A feed action for any polling source.
pub struct PollingFeed<'a> {
    /// The sources `-p source` picks from; the first is the default.
    sources: Vec<AnySource<'a>>,
    /// The store a user names for a source without one of its own.
    named_store: Option<&'a dyn NamedStore>,
}

impl<'a> PollingFeed<'a> {
    /// The feed for `source` alone (with no named store: the source keeps its state itself).
    pub fn new(source: &'a dyn Source) -> PollingFeed<'a> {
        PollingFeed { sources: vec![AnySource::Snapshot(source)], named_store: None }
    }

    /// The feed for the log source `source` alone (with no named store).
    pub fn log(source: &'a dyn LogSource) -> PollingFeed<'a> {
        PollingFeed { sources: vec![AnySource::Log(source)], named_store: None }
    }

    /// The feed for every source in `sources`, picked by `-p source`; the first one when the
    /// parameter is absent (with no named store).
    pub fn registry(sources: &[AnySource<'a>]) -> PollingFeed<'a> {
        PollingFeed { sources: sources.to_vec(), named_store: None }
    }

    /// The feed for what the registry gives (`crate::registry::POLLING`): its sources, picked
    /// by `-p source`, and its named store.
    pub fn with(ext: Extensions<'a>) -> PollingFeed<'a> {
        PollingFeed { sources: ext.sources.to_vec(), named_store: ext.named_store }
    }

    /// What this feed was given, as the helpers take it.
    fn ext(&self) -> Extensions<'_> {
        Extensions { sources: &self.sources, named_store: self.named_store, change_hooks: &[] }
    }

    /// UPDATE's parameters: the stored ones with the given ones over them (`null` removes
    /// one); the source cannot change, and a newly given `interval` or `cron` replaces the other.
    fn merged(&self, old: &Params, given: &Params) -> Result<Params, ActionError> {
        let old_source = self.source_of(old)?.name();
        if given.str(CONFIG_SOURCE)?.is_some_and(|s| s != old_source) {
            // The state belongs to the old source: a new one starts with DELETE and CREATE.
            return Err(ParamError::invalid(
                CONFIG_SOURCE,
                &format!("{old_source} (the source of a feed cannot change: delete and create the trigger)"),
                &given.str(CONFIG_SOURCE)?.unwrap_or_default().into(),
            )
            .into());
        }
        let mut merged = old.clone();
        for (k, v) in given.as_map() {
            if v.is_null() {
                merged.remove(k);
            } else {
                merged.insert(k, v.clone());
            }
        }
        // interval and cron exclude each other: the newly given one wins.
        if given.has("cron") && !given.has("interval") {
            merged.remove("interval");
        }
        if given.has("interval") && !given.has("cron") {
            merged.remove("cron");
        }
        Ok(merged)
    }

    /// The source `params` (a request's or a stored config) name, or the default.
    fn source_of(&self, params: &Params) -> Result<AnySource<'a>, ParamError> {
        let default = *self.sources.first().ok_or_else(|| ParamError::missing(CONFIG_SOURCE, "a source"))?;
        match params.str(CONFIG_SOURCE)? {
            None => Ok(default),
            Some(name) => find_source(&self.sources, &name),
        }
    }

    fn validate(&self, params: &Params) -> Result<Validated, ActionError> {
        crate::schedule::refuse_unsupported(params)?;
        let schedule = Schedule::from_params(params, DEFAULT_INTERVAL_MINUTES)?;
        let source = self.source_of(params)?;
        let opened = Opened::open(source, params)?;
        let settings = PollSettings::from_params(params, &opened.source_uri())?;
        let log = match source {
            AnySource::Log(_) => Some(LogSettings::from_params(params)?),
            AnySource::Snapshot(_) => {
                if params.str("mode")?.is_some_and(|m| m.trim() != Mode::Poll.as_str()) {
                    return Err(ParamError::invalid(
                        "mode",
                        "poll (connection mode is for log sources)",
                        params.raw("mode").unwrap_or(&Value::Null),
                    )
                    .into());
                }
                None
            }
        };
        if settings.format == Format::Legacy && !opened.has_legacy_format() {
            return Err(ParamError::invalid(
                "format",
                "cloudevents (this source has no legacy format)",
                &"legacy".into(),
            )
            .into());
        }
        let alarms = alarms_package(params)?;
        Ok(Validated { schedule, settings, log, opened, alarms })
    }

    /// The stored config: the user's parameters plus what `poll` needs to find its way.
    fn config(&self, req: &FeedRequest, params: &Params) -> Result<Params, ParamError> {
        let mut config = params.clone();
        config.insert(CONFIG_SOURCE, json!(self.source_of(params)?.name()));
        config.insert(CONFIG_TRIGGER, json!(req.trigger.to_string()));
        Ok(config)
    }

    fn secret_params(&self, config: &Params) -> Vec<&'static str> {
        // A config naming no known source redacts every secret any source knows.
        let sources = match self.source_of(config) {
            Ok(source) => vec![source],
            Err(_) => self.sources.clone(),
        };
        let own = sources.into_iter().flat_map(|s| s.params()).filter(|p| p.secret).map(|p| p.name);
        own.chain(self.ext().named_store_secrets()).chain([CONFIG_STATE_KEY]).collect()
    }
}

/// This feed action's package: the config binding binds to it and the namespace scheduler is
/// named after it, so it must be known.
fn own_package(req: &FeedRequest) -> Result<QualifiedName, ActionError> {
    match &req.package {
        Some(p) => Ok(p.clone()),
        None => Err(ActionError::new("runtime: cannot tell this feed action's package from its name")),
    }
}

/// The mode a validated config polls in (connection mode is for log sources).
fn mode_of(v: &Validated) -> Mode {
    v.log.as_ref().map_or(Mode::Poll, |l| l.mode)
}

impl Feed for PollingFeed<'_> {
    fn create(&self, req: &FeedRequest) -> Result<Value, ActionError> {
        let v = self.validate(&req.params)?;
        let package = own_package(req)?;
        v.opened.probe().map_err(source_error)?;
        let helpers = Helpers::for_trigger(&req.trigger);
        // The state's key: given, or kept from an earlier attempt of this CREATE (whose state
        // it sealed), or new.
        let kept = req.read_config(&helpers.config, "feed config").ok().flatten().and_then(|c| stored_key(&c));
        let (key, _) = resolve_key(key_request(&req.params)?, kept).map_err(ActionError::new)?;
        let blobs = state_blobs(&v.opened, &req.params, &self.ext())?;
        let store = StateStore::new(blobs, &req.trigger).with_key(Some(&key));
        let probe = store
            .probe_dialect()
            .map_err(|e| ActionError::new(format!("cannot write the feed state at {}: {e}", store.location())))?;
        let store = store.with_dialect(probe.dialect);
        let client = &req.client;
        let sched = Scheduler::new(&req.trigger.namespace, &package);
        let mut config = self.config(req, &req.params)?;
        config.insert(CONFIG_DIALECT, json!(probe.dialect.as_str()));
        config.insert(CONFIG_STATE_KEY, json!(key.expose()));
        config.remove(CONFIG_ACKNOWLEDGED);
        let mut undo = Undo::new();
        // Undone last: a scheduler this CREATE made goes once the registration is gone, unless
        // another trigger registered meanwhile.
        let made = std::cell::Cell::new(false);
        undo.push("namespace scheduler", || {
            if made.get() {
                scheduler::remove_unless_needed(client, &sched, &v.alarms).map(|_| ()).map_err(|e| e.message)
            } else {
                Ok(())
            }
        });

        if let Err(e) = req.write_config(&helpers.config, &config) {
            return Err(undo.fail_with(ActionError::new(format!("creating the feed config {}: {e}", helpers.config))));
        }
        undo.push("feed config", || ignore_missing(client.delete_package(&helpers.config)));

        let result = (|| -> Result<scheduler::Ensured, ActionError> {
            if first_state(req, &v, &store)? {
                undo.push("feed state", || store.delete_all().map_err(|e| e.to_string()));
            }
            // Registered with the state in place, then the scheduler made sure of: a tick that
            // removes an idle scheduler lists again after removing it and sees this binding.
            let registration = Registration::new(&req.trigger, v.schedule.clone(), mode_of(&v), false);
            scheduler::register(client, &helpers.config, &registration).map_err(|e| {
                ActionError::new(format!("registering {} with the namespace scheduler: {e}", helpers.config))
            })?;
            let ensured = scheduler::ensure_tracked(client, &sched, &v.alarms, &made)?;
            // A CREATE over a feed made before the scheduler: its own alarm and rule go.
            let left = scheduler::remove_legacy(client, &helpers, &v.alarms, &v.schedule);
            if !left.is_empty() {
                crate::runtime::log(&format!("CREATE: could not remove the feed's own alarm: {}", left.join("; ")));
            }
            Ok(ensured)
        })();
        let ensured = match result {
            Ok(ensured) => ensured,
            Err(e) => return Err(undo.fail_with(e)),
        };
        undo.commit();
        Ok(created(req, &v, &store, &helpers, &sched, &probe, ensured))
    }

    fn read(&self, req: &FeedRequest) -> Result<Value, ActionError> {
        let helpers = Helpers::for_trigger(&req.trigger);
        let doc = read_binding(&req.client, &helpers.config, "feed config")?.ok_or_else(|| {
            ActionError::new(format!("trigger {} has no feed config: was it created with this feed?", req.trigger))
        })?;
        let config = scheduler::params_of(&doc)?;
        let registration = Registration::from_annotations(&doc["annotations"]);
        let mut status = ReadStatus::default();
        let sched = own_package(req).map(|p| Scheduler::new(&req.trigger.namespace, &p));
        let own_alarm = scheduling_status(req, &helpers, registration.as_ref(), sched.as_ref(), &config, &mut status);
        status.writes = Some(WriteDialect::of(config_dialect(&config)));
        let opened = self.source_of(&config).and_then(|s| Opened::open(s, &config)).map_err(ActionError::from);
        status.notices = opened.as_ref().map(|o| o.notices()).unwrap_or_default();
        status.notices.extend(api_tls_notice(req, &config).or_else(|| api_tls_notice(req, &req.params)));
        let blobs = match &opened {
            Ok(o) => state_blobs(o, &config, &self.ext()).map(Some).map_err(ActionError::from),
            Err(e) => Err(e.clone()),
        };
        match (blobs, opened) {
            (Ok(Some(blobs)), Ok(opened)) => {
                let key = stored_key(&config);
                let store = StateStore::new(blobs, &req.trigger).with_key(key.as_ref());
                let seen = StateSeen {
                    req,
                    config: &config,
                    helpers: &helpers,
                    opened: &opened,
                    keyed: key.is_some(),
                    own_alarm,
                    scheduler_binding: sched.as_ref().ok().map(|s| s.binding.name.as_str()),
                };
                state_status(&seen, &store, &mut status);
            }
            (Ok(None), _) => {}
            (Err(e), _) | (_, Err(e)) => status.config_error = Some(e.to_string()),
        }
        Ok(json!({ "config": redact(&config, &self.secret_params(&config)), "status": status.to_value() }))
    }

    fn update(&self, req: &FeedRequest) -> Result<Value, ActionError> {
        let helpers = Helpers::for_trigger(&req.trigger);
        let old_doc = read_binding(&req.client, &helpers.config, "feed config")?
            .ok_or_else(|| ActionError::new(format!("trigger {} has no feed config: create it first", req.trigger)))?;
        let old = scheduler::params_of(&old_doc)?;
        let mut merged = self.merged(&old, &req.params)?;
        // The state's key: kept, rotated (`-p stateKey new`), or added to a feed created before
        // keys existed; a new key re-seals the state below.
        let old_key = stored_key(&old);
        let (key, rekeyed) = resolve_key(key_request(&req.params)?, old_key.clone()).map_err(ActionError::new)?;
        merged.insert(CONFIG_STATE_KEY, json!(key.expose()));
        let v = self.validate(&merged)?;
        v.opened.probe().map_err(source_error)?;
        // The store may have changed (endpoint, stateBucket): probe its dialect again.
        let store =
            StateStore::new(state_blobs(&v.opened, &merged, &self.ext())?, &req.trigger).with_key(old_key.as_ref());
        let dialect = store
            .probe_dialect()
            .map(|p| p.dialect)
            .map_err(|e| ActionError::new(format!("cannot write the feed state: {e}")))?;
        let package = own_package(req)?;
        // Before the config names the new key, so a poll that reads the new config finds the
        // state sealed with it.
        let resealed = if rekeyed { Some(reseal(&store.with_dialect(dialect), &key)?) } else { None };
        let mut config = self.config(req, &merged)?;
        config.insert(CONFIG_DIALECT, json!(dialect.as_str()));
        // An UPDATE acknowledges what READ reported about a replaced state.
        config.insert(CONFIG_ACKNOWLEDGED, json!(now_ms()));
        // A paused feed stays paused; a feed with its own alarm (made before the scheduler)
        // keeps the state of its rule and moves to the scheduler.
        let (paused, own_alarm) = kept_pause(req, &helpers, &old_doc)?;
        let registration = Registration::new(&req.trigger, v.schedule.clone(), mode_of(&v), paused);
        req.write_config_annotated(&helpers.config, &config, Some(&registration.annotations()))
            .map_err(|e| ActionError::new(format!("updating the feed config {}: {e}", helpers.config)))?;
        let sched = Scheduler::new(&req.trigger.namespace, &package);
        let mut alarm = if paused { "paused" } else { "namespace scheduler" };
        if !paused {
            // A scheduler the provider disabled (or that is gone) is made again: UPDATE is a
            // documented repair.
            if !scheduler::ensure(&req.client, &sched, &v.alarms)?.repaired.is_empty() {
                alarm = "re-created";
            }
        }
        if own_alarm {
            let (old_alarms, old_schedule) = teardown_plan(&old);
            let left = scheduler::remove_legacy(&req.client, &helpers, &old_alarms, &old_schedule);
            if !left.is_empty() {
                return Err(ActionError::new(format!(
                    "the feed moved to the namespace scheduler but its own alarm could not be removed: {}",
                    left.join("; ")
                )));
            }
            alarm = "moved to the namespace scheduler";
        }
        let mut result = json!({
            "status": "updated",
            "trigger": req.trigger.to_string(),
            "schedule": v.schedule.to_params(),
            "alarm": alarm,
            "scheduler": sched.names(),
            "stateAuthentication": STATE_AUTHENTICATION,
        });
        if let Some(resealed) = resealed {
            let what = if old_key.is_some() { "rotated" } else { "added: the state is authenticated from now on" };
            result["stateKey"] = json!(what);
            result["stateResealed"] = resealed;
        }
        if let (Value::Object(r), Value::Object(d)) = (&mut result, dialect_fields(dialect)) {
            r.extend(d);
        }
        Ok(result)
    }

    fn delete(&self, req: &FeedRequest) -> Result<Value, ActionError> {
        let helpers = Helpers::for_trigger(&req.trigger);
        let config = req.read_config(&helpers.config, "feed config")?;
        let (alarms, schedule, store) = match &config {
            Some(config) => {
                let (alarms, schedule) = teardown_plan(config);
                let store = self
                    .source_of(config)
                    .ok()
                    .and_then(|s| Opened::open(s, config).ok())
                    .and_then(|o| state_blobs(&o, config, &self.ext()).ok())
                    .map(|b| {
                        // The state is keyed by the resolved trigger name stored at CREATE; a
                        // stored name that is not a string is read as none: DELETE gets as far
                        // as it can, here with the trigger being deleted.
                        let stored = config.str(CONFIG_TRIGGER).ok().flatten();
                        let name = stored
                            .and_then(|s| QualifiedName::parse(&s, "_").ok())
                            .unwrap_or_else(|| req.trigger.clone());
                        StateStore::new(b, &name)
                    });
                (alarms, schedule, store)
            }
            None => (default_alarms(), Schedule::Interval(1), None),
        };
        let problems = teardown(&req.client, &helpers, &alarms, &schedule, store.as_ref());
        if problems.is_empty() {
            Ok(json!({ "status": "deleted", "trigger": req.trigger.to_string() }))
        } else {
            Err(ActionError::new(format!("could not remove: {}", problems.join("; "))))
        }
    }

    fn pause(&self, req: &FeedRequest) -> Result<Value, ActionError> {
        set_active(req, false)
    }

    fn unpause(&self, req: &FeedRequest) -> Result<Value, ActionError> {
        set_active(req, true)
    }
}

/// PAUSE and UNPAUSE: the trigger's registration says it is paused, and the scheduler does
/// not poll it (it spends nothing of the namespace's quotas); no other trigger is touched.
/// UNPAUSE also makes sure the scheduler runs (a scheduler whose triggers were all paused
/// removes itself). A feed made before the scheduler moves to it here: its own alarm and rule
/// go (the alarms provider has no PAUSE, openwhisk-package-alarms action/alarm.js:47-52). The
/// user's trigger, the config and the state stay, and events pending in the outbox wait. Both
/// are idempotent.
pub(super) fn set_active(req: &FeedRequest, active: bool) -> Result<Value, ActionError> {
    let helpers = Helpers::for_trigger(&req.trigger);
    let doc = read_binding(&req.client, &helpers.config, "feed config")?
        .ok_or_else(|| ActionError::new(format!("trigger {} has no feed config: create it first", req.trigger)))?;
    let config = scheduler::params_of(&doc)?;
    let package = own_package(req)?;
    let mut result = json!({ "status": if active { "active" } else { "paused" }, "trigger": req.trigger.to_string() });
    match Registration::from_annotations(&doc["annotations"]) {
        Some(mut reg) => {
            reg.paused = !active;
            scheduler::register(&req.client, &helpers.config, &reg)
                .map_err(|e| ActionError::new(format!("updating the feed config {}: {e}", helpers.config)))?;
            if active {
                let (alarms, _) = teardown_plan(&config);
                let sched = Scheduler::new(&req.trigger.namespace, &package);
                let ensured = scheduler::ensure(&req.client, &sched, &alarms)?;
                if !ensured.repaired.is_empty() {
                    result["repaired"] = json!(ensured.repaired);
                }
            }
        }
        None => {
            result["migrated"] = scheduler::migrate(&req.client, &req.trigger, &config, &package, !active)?;
        }
    }
    Ok(result)
}

/// True when the alarms provider says it has no alarm for the trigger: `could not find trigger
/// … in the database` (openwhisk-package-alarms action/lib/Database.js:109 and :191).
fn alarm_missing(e: &OwError) -> bool {
    match e {
        OwError::Application(result) => result.to_string().contains("could not find trigger"),
        OwError::NotFound(_) => true,
        _ => false,
    }
}

/// The helper alarm's health as the alarms provider reports it on READ (`status.active`, and
/// `status.reason` when it disabled the alarm: action/alarmWebAction.js:187-192).
pub(super) fn alarm_health(
    client: &Client,
    alarms: &QualifiedName,
    schedule: &Schedule,
    helper: &QualifiedName,
) -> Value {
    match alarm_feed(client, alarms, schedule, "READ", helper) {
        Ok(doc) => {
            let mut out = json!({ "active": doc["status"]["active"].as_bool().unwrap_or(false) });
            if let Some(reason) = doc["status"].get("reason").filter(|r| !r.is_null()) {
                out["reason"] = reason.clone();
            }
            out
        }
        Err(e) if alarm_missing(&e) => json!({ "active": false, "reason": "no alarm registered" }),
        Err(e) => json!({ "active": null, "error": describe_invoke_error(&e) }),
    }
}

/// The notice about the API host's TLS settings in `params`, if they are not the default.
fn api_tls_notice(req: &FeedRequest, params: &Params) -> Option<String> {
    let tls = crate::openwhisk::ApiTls::from_params(params).ok()?;
    tls.notice(req.ctx.api_host.as_deref().unwrap_or("(unknown)"))
}

/// What CREATE and UPDATE say the state is protected with.
const STATE_AUTHENTICATION: &str = "hmac-sha256 (stateKey)";

/// What READ says the next poll does with a missing or rejected state.
const REPLACED: &str =
    "the next poll replaces it with the last authenticated state the poll's process still holds, if \
it does (changes since then are reported), else re-baselines silently (changes made since the last good poll are not \
reported); READ then shows rebaselined until an UPDATE acknowledges it";

/// CREATE's result: what was made, where the state lives and how it is protected, the
/// store's conditional-write dialect, the scheduler, and the notices.
fn created(
    req: &FeedRequest,
    v: &Validated,
    store: &StateStore,
    helpers: &Helpers,
    sched: &Scheduler,
    probe: &DialectProbe,
    ensured: scheduler::Ensured,
) -> Value {
    let mut result = json!({
        "status": "created",
        "trigger": req.trigger.to_string(),
        "schedule": v.schedule.to_params(),
        "state": store.location(),
        "stateAuthentication": STATE_AUTHENTICATION,
        "conditionalWriteProbe": probe,
        "helpers": {
            "config": helpers.config.to_string(),
            "scheduler": sched.names(),
        },
        "scheduler": { "alarm": ensured.alarm, "made": ensured.made },
    });
    if !ensured.repaired.is_empty() {
        result["scheduler"]["repaired"] = json!(ensured.repaired);
    }
    if let (Value::Object(r), Value::Object(d)) = (&mut result, dialect_fields(probe.dialect)) {
        r.extend(d);
    }
    if let (Opened::Log(_), Some(log)) = (&v.opened, &v.log) {
        result["mode"] = json!(log.mode.as_str());
    }
    let mut notices = v.opened.notices();
    notices.extend(api_tls_notice(req, &req.params));
    if !notices.is_empty() {
        result["notices"] = json!(notices);
    }
    result
}

/// The feed's first state, unless a state is already in place (a retried CREATE, as wskdeploy
/// retries, keeps it and its pending events): the source's baseline. True when it wrote one.
fn first_state(req: &FeedRequest, v: &Validated, store: &StateStore) -> Result<bool, ActionError> {
    match store.load() {
        Ok(Some(_)) => Ok(false),
        Ok(None) | Err(LoadError::Corrupt(_)) => {
            let (commit, list) = margins(req.ctx.time_left());
            let budget = Budget::new(req.ctx.deadline, list + commit);
            let state = match (&v.opened, &v.log) {
                (Opened::Log(reader), log) => {
                    log_baseline(reader.as_ref(), log.as_ref().map_or(&Since::Now, |l| &l.since))
                }
                (Opened::Snapshot(lister), _) => baseline(lister.as_ref(), store, &v.settings, &budget),
            }
            .map_err(source_error)?;
            store.overwrite(&state).map_err(|e| ActionError::new(format!("writing the feed state: {e}")))?;
            Ok(true)
        }
        Err(LoadError::Store(e)) => Err(ActionError::new(format!("reading the feed state: {e}"))),
    }
}

/// Re-seals the state with UPDATE's new key; what was done, for UPDATE's result.
fn reseal(store: &StateStore, key: &Secret) -> Result<Value, ActionError> {
    let done = store.reseal(key).map_err(|e| ActionError::new(format!("re-sealing the feed state: {e}")))?;
    Ok(match done {
        Resealed::Nothing => json!("no state yet"),
        Resealed::Done => json!("the state was re-sealed with the new key"),
        Resealed::Rejected(why) => json!(format!(
            "the stored state was not trusted ({why}) and was left for the next poll to replace (READ then says so)"
        )),
    })
}

/// Whether UPDATE keeps the feed paused, and whether it has an alarm of its own (made before
/// the scheduler, its rule's state says whether it is paused).
fn kept_pause(req: &FeedRequest, helpers: &Helpers, old_doc: &Value) -> Result<(bool, bool), ActionError> {
    Ok(match Registration::from_annotations(&old_doc["annotations"]) {
        Some(reg) => (reg.paused, false),
        None => match scheduler::has_legacy_rule(&req.client, helpers) {
            Ok(Some(active)) => (!active, true),
            Ok(None) => (false, false),
            Err(e) => return Err(ActionError::new(format!("rule {}: {e}", helpers.rule))),
        },
    })
}

/// READ's account of what runs the feed's polls: the namespace scheduler it is registered
/// with (made again here, as by any CREATE or UPDATE, when it does not work), or, for a feed
/// made before the scheduler, its own alarm and rule. Returns that own alarm's schedule while
/// it is active: its next poll is one interval after the last.
fn scheduling_status(
    req: &FeedRequest,
    helpers: &Helpers,
    registration: Option<&Registration>,
    sched: Result<&Scheduler, &ActionError>,
    config: &Params,
    s: &mut ReadStatus,
) -> Option<Schedule> {
    let (alarms, plan) = teardown_plan(config);
    let Some(reg) = registration else {
        return own_alarm_status(req, helpers, &alarms, &plan, config, s);
    };
    let sched = match sched {
        Ok(sched) => sched,
        Err(e) => {
            s.active = false;
            s.problem = Some(e.message.clone());
            return None;
        }
    };
    let ns = scheduler::namespace_status(&req.client, sched, &alarms, &req.params, !reg.paused);
    let working = ns.working();
    s.active = !reg.paused && working;
    s.paused = Some(reg.paused);
    s.registered = Some(true);
    s.rule = Some(sched.rule.to_string());
    s.alarm = ns.alarm.clone();
    if !reg.paused && !working {
        s.problem = Some(format!(
            "the namespace scheduler ({}) is not working, so no polls run: {}",
            sched.alarm,
            ns.problem.as_deref().unwrap_or("its alarm is not active")
        ));
    }
    if s.active {
        s.next_poll = reg.schedule.next_due(now_ms(), reg.phase).map(iso);
    }
    s.scheduler = Some(SchedulerView::Registered(Box::new(ns)));
    None
}

/// READ of a feed made before the namespace scheduler: its own alarm and rule poll it.
fn own_alarm_status(
    req: &FeedRequest,
    helpers: &Helpers,
    alarms: &QualifiedName,
    plan: &Schedule,
    config: &Params,
    s: &mut ReadStatus,
) -> Option<Schedule> {
    let rule = req.client.get_rule(&helpers.rule);
    let rule_active = rule.as_ref().is_ok_and(|r| r["status"] == "active");
    s.active = rule_active;
    s.paused = Some(rule.is_ok() && !rule_active);
    s.registered = Some(false);
    s.rule = Some(helpers.rule.to_string());
    if let Err(e) = &rule {
        s.error = Some(format!("rule {}: {e}", helpers.rule));
        s.problem = Some(format!(
            "not registered with the namespace scheduler and no alarm of its own: no polls run; UPDATE or UNPAUSE \
             registers it (wsk trigger update {} -p …)",
            req.trigger.name
        ));
        return None;
    }
    let health = alarm_health(&req.client, alarms, plan, &helpers.alarm);
    if rule_active && health["active"] == false {
        s.active = false;
        s.problem = Some(format!(
            "the alarm of {} is disabled, so no polls run: an UPDATE of the feed (wsk trigger update {} -p …) or \
             UNPAUSE moves it to the namespace scheduler",
            helpers.alarm, req.trigger.name
        ));
    }
    s.alarm = Some(health);
    s.scheduler = Some(SchedulerView::NotRegistered(format!(
        "not registered: this feed still has its own alarm ({}); its next poll, or an UPDATE, PAUSE or UNPAUSE, \
         moves it to the namespace scheduler",
        helpers.alarm
    )));
    Schedule::from_params(config, DEFAULT_INTERVAL_MINUTES).ok().filter(|_| s.active)
}

/// What READ's state part needs to know of the feed.
struct StateSeen<'r> {
    req: &'r FeedRequest<'r>,
    config: &'r Params,
    helpers: &'r Helpers,
    opened: &'r Opened,
    /// True when the feed has a `stateKey`.
    keyed: bool,
    /// The feed's own alarm's schedule, for one made before the namespace scheduler.
    own_alarm: Option<Schedule>,
    /// The namespace scheduler's binding, whose ticks list this feed's polls.
    scheduler_binding: Option<&'r str>,
}

/// READ's account of the feed's state and polls: where the state lives and how it is
/// authenticated, the source's facts, the newest polls (from the lease and the activations),
/// a stall, and the re-baseline not yet acknowledged.
fn state_status(seen: &StateSeen, store: &StateStore, s: &mut ReadStatus) {
    let (req, config) = (seen.req, seen.config);
    let location = store.location();
    s.state_authentication = Some(if seen.keyed { STATE_AUTHENTICATION } else { "none" });
    if !seen.keyed {
        s.state_warning = Some(format!(
            "the feed state is not authenticated (the feed was created before owfeed sealed its state): anyone who \
             can write {location} can make this feed fire events of their choosing; `wsk trigger update {}` \
             adds a stateKey and seals the state",
            req.trigger.name
        ));
    }
    s.state = Some(location);
    let acknowledged = config.u64_in(CONFIG_ACKNOWLEDGED, 0, u64::MAX).ok().flatten().unwrap_or(0);
    // The lease blob first: its authenticated write number tells a rolled-back state.
    let lease = store.lease_doc();
    let loaded = match store.load() {
        Ok(Some((state, _))) => Some(state),
        Ok(None) => {
            s.state_error = Some(format!("no state object: {REPLACED}"));
            None
        }
        Err(LoadError::Corrupt(e)) => {
            s.state_error = Some(format!("state object rejected ({e}): {REPLACED}"));
            None
        }
        Err(LoadError::Store(e)) => {
            s.state_error = Some(format!(
                "{e}: the state cannot be read now; polls retry, and once the store answers the next poll reports \
                 the changes made meanwhile (nothing is re-baselined)"
            ));
            None
        }
    };
    if let Some(state) = &loaded {
        s.events_pending = Some(state.outbox.len());
        s.events_fired = Some(state.stats.events_fired);
        let record = match seen.opened {
            Opened::Log(_) => state.log.as_ref().and_then(|l| l.rebaselined.as_ref()),
            Opened::Snapshot(_) => state.rebaselined.as_ref(),
        };
        s.rebaselined = Rebaselined::shown(record, acknowledged, &req.trigger.name);
        match seen.opened {
            Opened::Log(_) => s.log = Some(log_facts(state, LogSettings::from_params(config).ok().as_ref())),
            Opened::Snapshot(_) => s.snapshot = Some(snapshot_facts(state)),
        }
    }
    let doc = lease.as_ref().ok().and_then(|l| l.as_ref()).map(|(doc, _)| doc);
    s.lease_rejected = doc.and_then(|d| d.rejected.clone());
    let trigger = config.str(CONFIG_TRIGGER).ok().flatten().unwrap_or_else(|| req.trigger.to_string());
    let mut bindings = vec![seen.helpers.config.name.as_str()];
    bindings.extend(seen.scheduler_binding);
    let activations =
        crate::stall::poll_activations(&req.client, &bindings, &trigger).map_err(|e| format!("poll activations: {e}"));
    s.polls = Some(crate::stall::report(doc, activations, now_ms()));
    if let Err(e) = &lease {
        s.lease_error = Some(e.to_string());
    }
    let last = doc.and_then(|d| d.status.as_ref());
    if let Some(next) = last.and_then(|l| seen.own_alarm.as_ref().and_then(|sch| sch.next_poll(l.started_ms, now_ms())))
    {
        s.next_poll = Some(iso(next));
    }
    s.last_poll_duration_ms = last.map(|l| l.duration_ms);
    if let Some(state) = &loaded {
        cursor_stall(s, state);
        if let Opened::Log(reader) = seen.opened {
            log_lag(s, reader.as_ref(), state);
        }
    }
}

/// A snapshot feed's facts from its state.
fn snapshot_facts(state: &State) -> SnapshotFacts {
    SnapshotFacts {
        objects_tracked: state.snapshot.len(),
        baselined: state.baselined,
        listing_in_progress: !state.resume.is_empty(),
        deletes: Deletes {
            confirmed: state.stats.deletes_confirmed,
            refuted: state.stats.deletes_refuted,
            held_for_next_poll: state.stats.held_deletes,
        },
    }
}
