//! The per-trigger helper entities (alarm trigger, rule, config binding), their teardown, and
//! the baseline: what both the feed action and the poll need.

use serde_json::{json, Value};

use super::extensions::Extensions;
use super::pass::{run_pass_with, PassLimits};
use super::versions::Memo;
use super::{PollSettings, CONFIG_SOURCE, DEFAULT_ALARMS_PACKAGE, DEFAULT_INTERVAL_MINUTES, MAX_BATCH};
use crate::budget::Budget;
use crate::change::{Change, ChangeKind, Entry, Record};
use crate::delivery::{DeliveryOutcome, DeliveryReport, Pace};
use crate::lifecycle::ignore_missing;
use crate::openwhisk::{Client, OwError, QualifiedName};
use crate::params::{ParamError, Params};
use crate::runtime::ActionError;
use crate::schedule::Schedule;
use crate::source::{AnySource, BlobStore, Lister, LogReader, SourceError, StoreError};
use crate::state::{Rebaseline, State};
use crate::store::{PollOutcome, PollStatus, StateStore};

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

/// The state store: the source's own, else the one the user names (`stateBucket`…), so a
/// source without a store of its own still works.
pub(super) fn state_blobs(
    opened: &Opened,
    params: &Params,
    ext: &Extensions,
) -> Result<Box<dyn BlobStore>, ParamError> {
    if let Some(blobs) = opened.blob_store() {
        return Ok(blobs);
    }
    ext.named_store(params)?.ok_or_else(|| {
        ParamError::missing(
            "stateBucket",
            "a bucket for the feed state (this source keeps none of its own), reached with endpoint, \
             accessKeyId and secretAccessKey as for the S3 source",
        )
    })
}

/// The source called `name` among `sources`; the error lists the known names.
pub(super) fn find_source<'a>(sources: &[AnySource<'a>], name: &str) -> Result<AnySource<'a>, ParamError> {
    sources.iter().copied().find(|s| s.name() == name).ok_or_else(|| {
        let known: Vec<&str> = sources.iter().map(|s| s.name()).collect();
        ParamError::invalid(CONFIG_SOURCE, &format!("one of: {}", known.join(", ")), &name.into())
    })
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

pub(super) fn source_error(e: SourceError) -> ActionError {
    ActionError::new(e.to_string())
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

/// A fresh state: empty when `fire_existing` (the first poll fires everything), else a
/// silent baseline pass, resumed by later polls if it does not finish in time.
pub(super) fn baseline(
    lister: &dyn Lister,
    store: &StateStore,
    settings: &PollSettings,
    budget: &Budget,
) -> Result<State, SourceError> {
    let mut state = State::new(settings.scope.clone());
    if settings.fire_existing {
        state.baselined = true;
        return Ok(state);
    }
    let memo = Memo::new(lister, None);
    if let Some(pass) = run_pass_with(
        lister,
        &state.snapshot,
        &memo,
        &[],
        store.reserved_prefix(),
        budget,
        PassLimits::silent(settings.parallelism),
    )? {
        state.baselined = pass.resume.is_empty();
        state.resume = pass.resume;
        state.snapshot = pass.snapshot;
        state.versions = memo.finish(&state.snapshot);
    }
    Ok(state)
}

/// Replaces a missing or rejected state (`why`, `cause`) so the feed goes on, and records
/// when and why in the new state, which READ shows until an UPDATE acknowledges it. With the
/// last authenticated state this poller's process holds (`StateStore::last_good`; never the
/// rejected one), the poll goes on with it (`Some`): its outbox fires and the listing is diffed
/// against its snapshot, so changes made since are reported. Without one, a silent baseline
/// (`None`: the poll ends), so the feed goes on without flooding false events.
pub(super) fn recover(
    lister: &dyn Lister,
    store: &StateStore,
    settings: &PollSettings,
    list_budget: &Budget,
    why: &str,
    cause: &str,
    status: &mut PollStatus,
) -> Result<Option<(State, String)>, ActionError> {
    let good = store.last_good();
    let recovered = good.is_some();
    let (mut state, what) = match good {
        Some(state) => {
            let what = format!(
                "replaced by the last authenticated state this poller held (write {}); changes since then are reported",
                state.writes
            );
            (state, what)
        }
        None => {
            let state = baseline(lister, store, settings, list_budget).map_err(source_error)?;
            (state, "re-baselined, changes since the last good poll were not reported".to_string())
        }
    };
    let reason = format!("{why}: {what}");
    let at_ms = crate::budget::now_ms();
    state.rebaselined =
        Some(Rebaseline { at_ms, reason: reason.clone(), cause: cause.into(), ..Rebaseline::default() });
    let etag = store.overwrite(&state).map_err(|e| ActionError::new(format!("writing the feed state: {e}")))?;
    status.outcome = PollOutcome::Rebaselined;
    status.error = Some(reason);
    Ok(recovered.then_some((state, etag)))
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

pub(super) fn iso(ms: u64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms as i64).map(|t| t.to_rfc3339()).unwrap_or_default()
}

/// A source opened with a feed's parameters: a lister or a log reader.
pub(super) enum Opened {
    /// A snapshot source's lister.
    Snapshot(Box<dyn Lister>),
    /// A log source's reader.
    Log(Box<dyn LogReader>),
}

impl Opened {
    /// Validates the parameters and opens `source`.
    pub(super) fn open(source: AnySource<'_>, params: &Params) -> Result<Opened, ParamError> {
        Ok(match source {
            AnySource::Snapshot(s) => Opened::Snapshot(s.open(params)?),
            AnySource::Log(s) => Opened::Log(s.open(params)?),
        })
    }

    /// The CloudEvents `source` of the feed's events.
    pub(super) fn source_uri(&self) -> String {
        match self {
            Opened::Snapshot(l) => l.source_uri(),
            Opened::Log(r) => r.source_uri(),
        }
    }

    /// One cheap request that proves the config works.
    pub(super) fn probe(&self) -> Result<(), SourceError> {
        match self {
            Opened::Snapshot(l) => l.probe(),
            Opened::Log(r) => r.probe(),
        }
    }

    /// What CREATE and READ show as `notices`.
    pub(super) fn notices(&self) -> Vec<String> {
        match self {
            Opened::Snapshot(l) => l.notices(),
            Opened::Log(r) => r.notices(),
        }
    }

    /// The source's own blob store, if it offers one.
    pub(super) fn blob_store(&self) -> Option<Box<dyn BlobStore>> {
        match self {
            Opened::Snapshot(l) => l.blob_store(),
            Opened::Log(r) => r.blob_store(),
        }
    }

    /// True when the source has a legacy payload shape (`format=legacy`).
    pub(super) fn has_legacy_format(&self) -> bool {
        match self {
            Opened::Snapshot(l) => {
                let entry = Entry { key: "k".to_string(), version: "v".to_string(), attrs: Default::default() };
                let change =
                    Change { kind: ChangeKind::Created, key: "k".to_string(), entry: Some(entry), old_version: None };
                l.legacy_event(&change).is_some()
            }
            Opened::Log(r) => {
                let record = Record {
                    id: "k@1".to_string(),
                    key: "k".to_string(),
                    kind: ChangeKind::Created,
                    attrs: Default::default(),
                    time: None,
                };
                r.legacy_event(&record).is_some()
            }
        }
    }
}

/// How a poll ended when it did not fail.
pub(super) enum Ended {
    Normally,
    TriggerGone,
}

/// Fires the outbox with `fire` and commits what was delivered with `commit` (the snapshot
/// poll and the log poll alike); `Some` when the poll must end. A failed commit only means the
/// delivered events fire again, with the same ids.
pub(super) fn fire_and_commit(
    state: &mut State,
    etag: &mut String,
    status: &mut PollStatus,
    fire: impl FnOnce(&[Value]) -> DeliveryReport,
    commit: impl FnOnce(&State, &str) -> Result<String, StoreError>,
) -> Result<Option<Ended>, ActionError> {
    if state.outbox.is_empty() {
        return Ok(None);
    }
    let report = fire(&state.outbox);
    if report.delivered > 0 {
        state.outbox.drain(..report.delivered);
        state.stats.events_fired += report.delivered as u64;
        status.fired += report.delivered as u64;
        match commit(state, etag) {
            Ok(new) => *etag = new,
            Err(StoreError::Conflict) => {
                status.outcome = PollOutcome::Conflict;
                status.pending = state.outbox.len() as u64;
                return Ok(Some(Ended::Normally));
            }
            Err(e) => return Err(ActionError::new(format!("committing delivered events: {e}"))),
        }
    }
    status.pending = state.outbox.len() as u64;
    match report.outcome {
        DeliveryOutcome::Done => Ok(None),
        DeliveryOutcome::OutOfTime => {
            status.outcome = PollOutcome::Partial;
            Ok(Some(Ended::Normally))
        }
        DeliveryOutcome::TriggerGone => Ok(Some(Ended::TriggerGone)),
        DeliveryOutcome::Failed(msg) => Err(ActionError::new(msg)),
    }
}

/// Events per fire for a backlog of `pending`: the configured `batch`, grown up to `MAX_BATCH`
/// when the fires the pace allows in the time left cannot carry the backlog. A `batch` of 1
/// stays 1: the user's action expects single events, not `{"events": […]}`.
pub(super) fn paced_batch(batch: usize, pending: usize, pace: &dyn Pace, budget: &Budget) -> usize {
    if batch <= 1 {
        return 1;
    }
    let fires = pace.capacity(budget.remaining()).max(1);
    batch.max(pending.div_ceil(fires)).min(MAX_BATCH as usize)
}
