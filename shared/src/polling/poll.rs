//! The `poll` action: lease, state, pass, events, delivery and the poll's status; and the
//! dry run.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Value};

use super::baseline::recover;
use super::change_hook::{open_all, ChangeHook};
use super::entities::{teardown, teardown_plan, Helpers};
use super::extensions::Extensions;
use super::log::{baseline_cursor, read_after, record_events, LogPoller, LogSettings, Since, TriggerFire};
use super::opened::{find_source, source_error, state_blobs, Opened};
use super::outbox::{fire_and_commit, paced_batch, Ended};
use super::pass::{run_pass_with, Pass, PassLimits, MIN_KEYS_PER_RANGE};
use super::versions::Memo;
use super::{config_dialect, iso, margins, PollSettings, CONFIG_DIALECT, CONFIG_SOURCE, CONFIG_TRIGGER};
use crate::budget::{now_ms, Budget};
use crate::change::Change;
use crate::delivery::{deliver_paced, NamespacePace, TriggerPace};
use crate::events::{cloud_event, EventContext};
use crate::openwhisk::{AuthKey, Client, QualifiedName};
use crate::params::{ParamError, Params};
use crate::runtime::{ActionError, Context};
use crate::source::{AnySource, Lister, LogReader};
use crate::state::{Rebaseline, Snapshot, State};
use crate::store::{LeaseError, LoadError, PollOutcome, PollStatus, StateStore};

/// The `poll` action's handler, over what the registry gives (`crate::registry::POLLING`; a
/// list of sources alone gives no named store and no change hooks). Invoked through the
/// namespace scheduler's binding (no `triggerName`: the scheduler's alarm, or a manual tick)
/// it is the tick that polls every trigger due ([`super::tick`]); invoked through a trigger's
/// config binding (a feed made before the scheduler, whose own alarm still runs, or a poll by
/// hand) it polls that trigger once, and moves a feed with an alarm of its own to the
/// scheduler. Every result, errors included, names the trigger, so READ can find the poll's
/// activation when the state store could not record its status.
pub fn poll<'a>(ctx: &Context, params: Params, ext: impl Into<Extensions<'a>>) -> Result<Value, ActionError> {
    let ext = ext.into();
    let Some(name) = params.str(CONFIG_TRIGGER)? else { return super::tick::tick(ctx, params, &ext) };
    let mut result = poll_once(ctx, params.clone(), &ext, None).map_err(|e| crate::stall::tag_error(e, Some(&name)))?;
    if let Value::Object(r) = &mut result {
        r.insert("trigger".into(), json!(name));
        if r.get("status") != Some(&json!(PollOutcome::TriggerGone)) {
            if let Some(moved) = super::scheduler::migrate_after_poll(ctx, &params) {
                r.insert("migrated".into(), moved);
            }
        }
    }
    Ok(result)
}

/// What a poll run by the scheduler's tick shares with the others.
pub(super) struct Share<'a> {
    /// The namespace's fire pace.
    pub(super) pace: &'a NamespacePace,
    /// When listing (or reading a log, in poll mode) must stop: a large listing checkpoints
    /// and goes on in the next tick, while the poll may still wait for its turn to fire.
    pub(super) list_until: std::time::SystemTime,
}

/// One poll of the trigger whose config is `params`, with the trigger's own fire pace, within
/// the namespace's when the scheduler polls it.
pub(super) fn poll_once(
    ctx: &Context,
    params: Params,
    ext: &Extensions,
    share: Option<&Share>,
) -> Result<Value, ActionError> {
    let job = PollRun::prepare(ctx, params, ext, share)?;
    let lease = match job.store.acquire(&ctx.activation_id, job.started, job.lease_expires()) {
        Ok(lease) => lease,
        Err(LeaseError::Busy { holder, expires_ms }) => {
            return Ok(json!({ "status": PollOutcome::Busy, "holder": holder, "until": iso(expires_ms) }));
        }
        Err(LeaseError::Store(e)) => return Err(ActionError::new(format!("taking the poll lease: {e}"))),
    };
    let mut status = PollStatus { started_ms: job.started, outcome: PollOutcome::Ok, ..PollStatus::default() };
    let outcome = job.run(ext, &mut status);
    status.duration_ms = now_ms().saturating_sub(job.started);
    if let Err(e) = &outcome {
        status.outcome = PollOutcome::Error;
        status.error = Some(e.message.clone());
    }
    if matches!(outcome, Ok(Ended::TriggerGone)) {
        return Ok(job.tear_down());
    }
    if let Err(e) = job.store.release(lease, status.clone()) {
        crate::runtime::log(&format!("poll: could not release the lease: {e}"));
    }
    record_dialect_change(&job.client, &job.store, &job.trigger, &job.params);
    outcome?;
    Ok(poll_result(&job.opened, status))
}

/// What one poll works with: the trigger's config, the opened source, its state store and
/// the activation's time.
struct PollRun<'a> {
    params: Params,
    source: AnySource<'a>,
    trigger: QualifiedName,
    client: Client,
    opened: Opened,
    settings: PollSettings,
    /// The core's log parameters, for a log source.
    log_settings: Option<LogSettings>,
    store: StateStore,
    /// The activation's time, less the commit margin.
    budget: Budget,
    commit_margin: Duration,
    /// Time kept after listing for committing and firing.
    list_margin: Duration,
    /// The namespace's fire pace and the end of listing, under the scheduler.
    share: Option<&'a Share<'a>>,
    started: u64,
}

impl<'a> PollRun<'a> {
    /// Reads the trigger's config, opens its source and its state store.
    fn prepare(
        ctx: &Context,
        params: Params,
        ext: &Extensions<'a>,
        share: Option<&'a Share<'a>>,
    ) -> Result<PollRun<'a>, ActionError> {
        let started = now_ms();
        let source = find_source(ext.sources, &params.required_str(CONFIG_SOURCE)?)?;
        let trigger_name = params.required_str(CONFIG_TRIGGER)?;
        let trigger = QualifiedName::parse(&trigger_name, &ctx.namespace).map_err(|e| {
            ParamError::invalid(CONFIG_TRIGGER, &format!("/namespace/trigger ({e})"), &trigger_name.clone().into())
        })?;
        let (commit_margin, list_margin) = margins(ctx.time_left());
        let client = client_of(ctx, &params, commit_margin)?;
        let opened = Opened::open(source, &params)?;
        let settings = PollSettings::from_params(&params, &opened.source_uri())?;
        let log_settings = match &opened {
            Opened::Log(_) => Some(LogSettings::from_params(&params)?),
            Opened::Snapshot(_) => None,
        };
        let blobs = state_blobs(&opened, &params, ext)?;
        let key = crate::store::stored_key(&params);
        let store =
            StateStore::new(blobs, &trigger).with_dialect(config_dialect(&params)).with_key(key.as_ref()).remembering();
        let budget = Budget::new(ctx.deadline, commit_margin);
        Ok(PollRun {
            params,
            source,
            trigger,
            client,
            opened,
            settings,
            log_settings,
            store,
            budget,
            commit_margin,
            list_margin,
            share,
            started,
        })
    }

    /// The lease runs to the deadline plus the commit margin: the whole activation, connection
    /// mode included.
    fn lease_expires(&self) -> u64 {
        self.budget.deadline_ms().unwrap_or(self.started + 60_000) + self.commit_margin.as_millis() as u64
    }

    /// When listing must stop at the latest (in a scheduler tick).
    fn list_cap(&self) -> Option<std::time::SystemTime> {
        self.share.map(|s| s.list_until)
    }

    /// The trigger's fire pace. Under the scheduler each fire also costs the rule invocations
    /// it causes: the trigger's active rules, asked once, when it first fires.
    fn pace(&self) -> TriggerPace<'_> {
        match self.share {
            Some(share) => TriggerPace::within(self.settings.max_fires_per_minute, share.pace, || {
                active_rules(&self.client, &self.trigger)
            }),
            None => TriggerPace::own(self.settings.max_fires_per_minute),
        }
    }

    /// Polls with the source's poller: a log reader's or a lister's.
    fn run(&self, ext: &Extensions, status: &mut PollStatus) -> Result<Ended, ActionError> {
        match (&self.opened, &self.log_settings) {
            (Opened::Log(reader), Some(log)) => self.run_log(reader.as_ref(), log, status),
            (Opened::Snapshot(lister), _) => self.run_snapshot(lister.as_ref(), ext, status),
            (Opened::Log(_), None) => Err(ActionError::new("a log source without its settings")),
        }
    }

    /// Reads the log after the stored cursor ([`LogPoller`]).
    fn run_log(
        &self,
        reader: &dyn LogReader,
        log: &LogSettings,
        status: &mut PollStatus,
    ) -> Result<Ended, ActionError> {
        let mut fire = TriggerFire {
            client: &self.client,
            trigger: &self.trigger,
            batch: self.settings.batch,
            pace: self.pace(),
            wrap: reader.legacy_batch_key().filter(|_| self.settings.format == crate::events::Format::Legacy),
        };
        let mut poller = LogPoller {
            reader,
            store: &self.store,
            settings: &self.settings,
            log,
            salt: self.trigger.to_string(),
            fire: &mut fire,
            list_margin: self.list_margin,
            list_cap: self.list_cap(),
        };
        poller.run(&self.budget, status)
    }

    /// Lists the source and diffs it with the stored snapshot ([`Poller`]).
    fn run_snapshot(
        &self,
        lister: &dyn Lister,
        ext: &Extensions,
        status: &mut PollStatus,
    ) -> Result<Ended, ActionError> {
        // The features with a say over this poll's changes (S3's reconcile, by its config).
        let hooks = match self.source {
            AnySource::Snapshot(s) => open_all(ext.change_hooks, &self.params, s, &self.trigger)?,
            AnySource::Log(_) => Vec::new(),
        };
        let poller = Poller {
            hooks: std::cell::RefCell::new(hooks),
            lister,
            store: &self.store,
            settings: &self.settings,
            client: &self.client,
            trigger: &self.trigger,
            list_margin: self.list_margin,
            list_cap: self.list_cap(),
            pace: std::cell::RefCell::new(self.pace()),
        };
        poller.run(&self.budget, status)
    }

    /// The trigger is gone: the feed's entities and state go too.
    fn tear_down(&self) -> Value {
        let helpers = Helpers::for_trigger(&self.trigger);
        let (alarms, schedule) = teardown_plan(&self.params);
        let problems = teardown(&self.client, &helpers, &alarms, &schedule, Some(&self.store));
        json!({ "status": PollOutcome::TriggerGone, "trigger": self.trigger.to_string(), "problems": problems })
    }
}

/// The OpenWhisk client of the activation's API key. Every OpenWhisk request ends before the
/// commit margin: a hung fire must leave the poll time to commit what it delivered, or all of
/// it is fired again by the next poll.
fn client_of(ctx: &Context, params: &Params, commit_margin: Duration) -> Result<Client, ActionError> {
    let key = ctx.api_key.as_ref().ok_or_else(|| {
        ActionError::new("poll: no API key in the activation (the action needs the provide-api-key annotation)")
    })?;
    let auth =
        AuthKey::parse(key.expose()).map_err(|_| ActionError::new("poll: the activation's API key is malformed"))?;
    let api_host = ctx.api_host.clone().ok_or_else(|| ActionError::new("runtime: __OW_API_HOST is not set"))?;
    let tls = crate::openwhisk::ApiTls::from_params(params)?;
    Ok(Client::new(&api_host, auth)
        .with_tls(&tls)
        .map_err(ActionError::new)?
        .until(ctx.deadline.map(|d| d - commit_margin)))
}

/// The poll's result: its status, in the words of the source's shape.
fn poll_result(opened: &Opened, status: PollStatus) -> Value {
    let mut result = match opened {
        Opened::Snapshot(_) => json!({
            "status": status.outcome,
            "listed": status.listed,
            "changes": status.changes,
            "fired": status.fired,
            "pending": status.pending,
            "tracked": status.tracked,
            "deletes": {
                "confirmed": status.deletes_confirmed,
                "refuted": status.deletes_refuted,
                "held": status.deletes_held,
            },
        }),
        Opened::Log(_) => json!({
            "status": status.outcome,
            "read": status.listed,
            "changes": status.changes,
            "fired": status.fired,
            "pending": status.pending,
        }),
    };
    // An `error` field, even null, makes OpenWhisk record an application error.
    if let Some(problem) = status.error {
        result["problem"] = json!(problem);
    }
    result
}

/// The trigger's active rules (each fire invokes every one); 1 when they cannot be counted.
fn active_rules(client: &Client, trigger: &QualifiedName) -> u32 {
    match client.get_trigger(trigger) {
        Ok(doc) => doc["rules"]
            .as_object()
            .map(|rules| rules.values().filter(|r| r["status"] == "active").count() as u32)
            .unwrap_or(1),
        Err(_) => 1,
    }
}

/// Records in the feed's config the dialect a re-probe switched to, so later polls start
/// with it; a failure only costs the next poll another re-probe.
fn record_dialect_change(client: &Client, store: &StateStore, trigger: &QualifiedName, seen: &Params) {
    if let Some(dialect) = store.dialect_changed() {
        let binding = Helpers::for_trigger(trigger).config;
        match crate::stall::set_config_param(client, &binding, CONFIG_DIALECT, json!(dialect.as_str()), seen) {
            Ok(true) => {}
            Ok(false) => crate::runtime::log("poll: the feed config changed meanwhile; the dialect is not recorded"),
            Err(e) => crate::runtime::log(&format!("poll: could not record the conditional-write dialect: {e}")),
        }
    }
}

/// The events for `changes` that pass the filter, in the configured format; the first `limit`.
fn build_events(
    lister: &dyn Lister,
    settings: &PollSettings,
    id_salt: &str,
    changes: &[Change],
    seq: u64,
    limit: usize,
) -> Vec<Value> {
    let ectx = EventContext {
        source: lister.source_uri(),
        type_prefix: lister.event_type_prefix().to_string(),
        data_context: lister.data_context(),
        id_salt: id_salt.to_string(),
    };
    let now = chrono::Utc::now();
    let mut events = Vec::new();
    for change in changes.iter().filter(|c| settings.filter.matches(c)).take(limit) {
        let ce = cloud_event(&ectx, change, seq, now);
        events.push(settings.format.payload(ce, || lister.legacy_event(change)));
    }
    events
}

/// Runs the poll logic once without OpenWhisk and without writing anything: what would fire
/// (against the stored state when `triggerName` is given, else against an empty snapshot)
/// and how large the state would be. Progress goes to stderr.
pub fn dry_run<'a>(params: Params, ext: impl Into<Extensions<'a>>) -> Result<Value, ActionError> {
    let ext = ext.into();
    let source = match params.str(CONFIG_SOURCE)? {
        Some(name) => find_source(ext.sources, &name)?,
        None => *ext.sources.first().ok_or_else(|| ActionError::new("no source compiled in"))?,
    };
    let opened = Opened::open(source, &params)?;
    let settings = PollSettings::from_params(&params, &opened.source_uri())?;
    opened.probe().map_err(source_error)?;
    let blobs = state_blobs(&opened, &params, &ext).ok();
    let trigger = match params.str(CONFIG_TRIGGER)? {
        Some(t) => Some(QualifiedName::parse(&t, "_").map_err(|e| {
            ParamError::invalid(CONFIG_TRIGGER, &format!("/namespace/trigger ({e})"), &t.clone().into())
        })?),
        None => None,
    };
    let store = match (&trigger, blobs) {
        (Some(trigger), Some(blobs)) => {
            Some(StateStore::new(blobs, trigger).with_key(crate::store::stored_key(&params).as_ref()))
        }
        _ => None,
    };
    match &opened {
        Opened::Snapshot(lister) => dry_run_snapshot(lister.as_ref(), &settings, trigger.as_ref(), store),
        Opened::Log(reader) => dry_run_log(reader.as_ref(), &params, &settings, trigger.as_ref(), store),
    }
}

/// What a dry run compares with: the stored state, and whether it was authenticated.
fn against(store: &StateStore, verified: bool) -> String {
    if verified {
        store.location()
    } else {
        format!("{} (not authenticated: read without a stateKey; give the feed's to check it)", store.location())
    }
}

/// The dry run of a log source: the records after the stored cursor (or after `since`, by
/// default from the start of the log), up to `maxChangesPerPoll`.
fn dry_run_log(
    reader: &dyn LogReader,
    params: &Params,
    settings: &PollSettings,
    trigger: Option<&QualifiedName>,
    store: Option<StateStore>,
) -> Result<Value, ActionError> {
    let given = if params.has("since") { LogSettings::from_params(params)?.since } else { Since::Start };
    let stored = match &store {
        Some(store) => match store.peek() {
            Ok(Some((state, verified))) => state.log.map(|l| (l.cursor, against(store, verified))),
            Ok(None) => None,
            Err(e) => return Err(ActionError::new(format!("reading {}: {e}", store.location()))),
        },
        None => None,
    };
    let (after, against) = match stored {
        Some((cursor, location)) => (cursor, location),
        None => (
            baseline_cursor(reader, &given).map_err(source_error)?,
            "the since parameter (default: 0, the start of the log)".to_string(),
        ),
    };
    let salt = trigger.map(|t| t.to_string()).unwrap_or_default();
    let read = read_after(reader, after.as_deref(), settings.max_changes, None, &Budget::new(None, Duration::ZERO))
        .map_err(source_error)?;
    let events = record_events(reader, settings, &salt, &read.records, chrono::Utc::now());
    let shown: Vec<Value> = events.iter().take(100).cloned().collect();
    Ok(json!({
        "against": against,
        "cursor": after,
        "cursorAfter": read.cursor,
        "read": read.records.len(),
        "more": read.cut,
        "wouldFire": events.len(),
        "events": shown,
        "eventsShown": shown.len(),
    }))
}

/// Events a dry run shows (it counts the others).
const DRY_RUN_SHOWN: usize = 100;

/// The dry run of a snapshot source: a full listing against the stored snapshot, or an
/// empty one. It lists in passes of at most `maxChangesPerPoll` changes, each resuming where
/// the previous one stopped, as successive polls would, and keeps of their changes only the
/// counts and the first events: a dry run of any bucket needs the memory of a poll.
fn dry_run_snapshot(
    lister: &dyn Lister,
    settings: &PollSettings,
    trigger: Option<&QualifiedName>,
    store: Option<StateStore>,
) -> Result<Value, ActionError> {
    let reserved = store.as_ref().and_then(|s| s.reserved_prefix());
    let (old, seq, against, kept) = match store {
        Some(store) => match store.peek() {
            Ok(Some((state, verified))) => (state.snapshot, state.seq + 1, against(&store, verified), state.versions),
            Ok(None) => {
                let against = format!("{} (missing: every entry counts as created)", store.location());
                (Snapshot::default(), 1, against, None)
            }
            Err(e) => return Err(ActionError::new(format!("reading {}: {e}", store.location()))),
        },
        None => (Snapshot::default(), 1, "an empty snapshot (every entry counts as created)".to_string(), None),
    };
    let salt = trigger.map(|t| t.to_string()).unwrap_or_default();
    let limits = PassLimits {
        parallelism: settings.parallelism,
        min_keys_per_range: MIN_KEYS_PER_RANGE,
        emit: true,
        max_changes: settings.max_changes,
        progress: true,
    };
    let memo = Memo::new(lister, kept.as_ref());
    let (mut snapshot, mut resume) = (old, Vec::new());
    let (mut listed, mut changes, mut would_fire, mut shown) = (0, 0, 0, Vec::new());
    loop {
        let budget = Budget::new(None, Duration::ZERO);
        let pass = run_pass_with(lister, &snapshot, &memo, &resume, reserved.clone(), &budget, limits)
            .map_err(source_error)?
            .ok_or_else(|| ActionError::new("the listing returned nothing"))?;
        if pass.listed == 0 && pass.resume == resume && !resume.is_empty() {
            return Err(ActionError::new("the listing makes no progress"));
        }
        listed += pass.listed;
        changes += pass.changes.len();
        would_fire += pass.changes.iter().filter(|c| settings.filter.matches(c)).count();
        if shown.len() < DRY_RUN_SHOWN {
            shown.extend(build_events(lister, settings, &salt, &pass.changes, seq, DRY_RUN_SHOWN - shown.len()));
        }
        (snapshot, resume) = (pass.snapshot, pass.resume);
        if resume.is_empty() {
            break;
        }
    }
    let mut state = State::new(settings.scope.clone());
    state.snapshot = snapshot;
    state.versions = memo.finish(&state.snapshot);
    state.seq = seq;
    state.baselined = true;
    let state_bytes = state.encode().len();
    Ok(json!({
        "against": against,
        "listed": listed,
        "changes": changes,
        "wouldFire": would_fire,
        "eventsShown": shown.len(),
        "events": shown,
        "stateBytes": state_bytes,
        "stateBytesPerObject": if listed > 0 { state_bytes as f64 / listed as f64 } else { 0.0 },
    }))
}

/// One poll's collaborators.
struct Poller<'a> {
    /// The features with a say over this poll's changes before the commit (`change_hook`).
    hooks: std::cell::RefCell<Vec<Box<dyn ChangeHook>>>,
    lister: &'a dyn Lister,
    store: &'a StateStore,
    settings: &'a PollSettings,
    client: &'a Client,
    trigger: &'a QualifiedName,
    /// Time kept after listing for committing and firing.
    list_margin: Duration,
    /// When listing must stop at the latest (in a scheduler tick).
    list_cap: Option<std::time::SystemTime>,
    /// The poll's fires so far, per calendar minute (and its turn in the namespace's pace).
    pace: std::cell::RefCell<TriggerPace<'a>>,
}

impl Poller<'_> {
    /// One poll: the stored state, the outbox an earlier poll left, a pass, its commit, and
    /// the fires.
    fn run(&self, budget: &Budget, status: &mut PollStatus) -> Result<Ended, ActionError> {
        let Some((mut state, mut etag)) = self.load(budget, status)? else { return Ok(Ended::Normally) };
        status.tracked = Some(state.snapshot.len() as u64);
        // Events an earlier poll committed but did not fire go first, in order.
        if let Some(ended) = self.deliver(&mut state, &mut etag, budget, status)? {
            return Ok(ended);
        }
        rescope(&mut state, &self.settings.scope);
        let kept = state.versions.take();
        let Some(listed) = self.list(&state, kept.as_ref(), budget, status)? else { return Ok(Ended::Normally) };
        let whole = listed.whole;
        if !self.commit_pass(&mut state, &mut etag, listed, budget, status)? {
            return Ok(Ended::Normally);
        }
        status.tracked = Some(state.snapshot.len() as u64);
        if whole {
            for hook in self.hooks.borrow().iter() {
                hook.after_whole_listing();
            }
        }
        Ok(self.deliver(&mut state, &mut etag, budget, status)?.unwrap_or(Ended::Normally))
    }

    /// The stored state and its etag; a missing or rejected one is replaced (`recover`), and
    /// `None` says the poll ends there.
    fn load(&self, budget: &Budget, status: &mut PollStatus) -> Result<Option<(State, String)>, ActionError> {
        let (why, cause) = match self.store.load() {
            Ok(Some(found)) => return Ok(Some(found)),
            Ok(None) => ("state object missing".to_string(), "missing"),
            Err(LoadError::Corrupt(e)) => (format!("state object rejected ({e})"), "rejected"),
            Err(LoadError::Store(e)) => return Err(ActionError::new(format!("reading the feed state: {e}"))),
        };
        let list_budget = budget.with_margin(self.list_margin).capped(self.list_cap);
        recover(self.lister, self.store, self.settings, &list_budget, &why, cause, status)
    }

    /// A pass over the stored snapshot, from where the last one stopped, after the change
    /// hooks read what they judge by (S3's reconcile: the push markers); `None` when it listed
    /// nothing in time.
    fn list<'k>(
        &self,
        state: &State,
        kept: Option<&'k BTreeMap<String, String>>,
        budget: &Budget,
        status: &mut PollStatus,
    ) -> Result<Option<Listed<'k>>, ActionError> {
        let list_budget = budget.with_margin(self.list_margin).capped(self.list_cap);
        for hook in self.hooks.borrow_mut().iter_mut() {
            hook.before_listing(state.whole_listing_started_ms)?;
        }
        let started_ms = now_ms();
        // Until the first complete pass (the baseline) nothing fires.
        let limits = PassLimits::poll(self.settings, state.baselined);
        let memo = Memo::new(self.lister, kept);
        let reserved = self.store.reserved_prefix();
        let pass = run_pass_with(self.lister, &state.snapshot, &memo, &state.resume, reserved, &list_budget, limits)
            .map_err(source_error)?;
        let Some(pass) = pass else {
            status.outcome = PollOutcome::Partial;
            return Ok(None);
        };
        status.listed = pass.listed;
        let whole = state.resume.is_empty() && pass.resume.is_empty();
        Ok(Some(Listed { pass, memo, started_ms, whole }))
    }

    /// Takes a pass into the state: its deletes confirmed, its events in the outbox, committed
    /// before anything fires when anything changed; false when another poll committed first.
    fn commit_pass(
        &self,
        state: &mut State,
        etag: &mut String,
        listed: Listed,
        budget: &Budget,
        status: &mut PollStatus,
    ) -> Result<bool, ActionError> {
        let Listed { mut pass, memo, started_ms, whole } = listed;
        let emit = state.baselined;
        // Holding or refuting deletes changes no entry, but must still be committed.
        let deletes_before = (state.stats.held_deletes, state.stats.deletes_refuted);
        if emit {
            self.check_deletes(&mut pass, state, budget, status)?;
        }
        let seq = state.seq + 1;
        let events = if emit { self.events_of(&pass.changes, seq) } else { Vec::new() };
        status.changes = events.len() as u64;
        let progressed = !pass.changes.is_empty()
            || pass.resume != state.resume
            || !state.baselined
            || (state.stats.held_deletes, state.stats.deletes_refuted) != deletes_before;
        if whole {
            state.whole_listing_started_ms = Some(started_ms);
        }
        if pass.resume.is_empty() {
            state.baselined = true;
        } else {
            status.outcome = PollOutcome::Partial;
        }
        state.resume = std::mem::take(&mut pass.resume);
        state.snapshot = pass.snapshot;
        state.versions = memo.finish(&state.snapshot);
        state.outbox.extend(events);
        if !progressed {
            return Ok(true);
        }
        state.seq = seq;
        state.stats.objects = state.snapshot.len() as u64;
        state.stats.last_change_ms = Some(now_ms());
        self.commit(state, etag, status)
    }

    /// Commits `state` over `etag`; false when another poll committed first: it owns these
    /// changes, this one fires nothing.
    fn commit(&self, state: &State, etag: &mut String, status: &mut PollStatus) -> Result<bool, ActionError> {
        match self.store.commit(state, etag) {
            Ok(new) => *etag = new,
            Err(crate::source::StoreError::Conflict) => {
                status.outcome = PollOutcome::Conflict;
                return Ok(false);
            }
            Err(e) => return Err(ActionError::new(format!("committing the feed state: {e}"))),
        }
        Ok(true)
    }

    /// The events of a pass's `changes`: those the change hooks keep, built, then marked by them.
    fn events_of(&self, changes: &[Change], seq: u64) -> Vec<Value> {
        let hooks = self.hooks.borrow();
        let trigger = self.trigger.to_string();
        if hooks.is_empty() {
            return build_events(self.lister, self.settings, &trigger, changes, seq, usize::MAX);
        }
        let kept = hooks.iter().fold(changes.to_vec(), |kept, hook| hook.keep(&kept));
        let mut events = build_events(self.lister, self.settings, &trigger, &kept, seq, usize::MAX);
        for hook in hooks.iter() {
            hook.mark(&mut events);
        }
        events
    }

    /// Confirms the pass's deletes with the source before they are committed
    /// (`deletes::check_deletes`) and counts what it found.
    fn check_deletes(
        &self,
        pass: &mut Pass,
        state: &mut State,
        budget: &Budget,
        status: &mut PollStatus,
    ) -> Result<(), ActionError> {
        let facts = crate::deletes::PassFacts {
            old_len: state.snapshot.len(),
            whole: state.resume.is_empty() && pass.resume.is_empty(),
            held_before: state.stats.held_deletes,
        };
        let check = crate::deletes::check_deletes(
            self.lister,
            &mut pass.changes,
            &mut pass.snapshot,
            facts,
            self.settings.verify_deletes,
            budget,
        )
        .map_err(|e| ActionError::new(format!("confirming deletes: {e}")))?;
        state.stats.held_deletes = check.held;
        state.stats.deletes_confirmed += check.confirmed;
        state.stats.deletes_refuted += check.refuted;
        status.deletes_confirmed = check.confirmed;
        status.deletes_refuted = check.refuted;
        status.deletes_held = check.held;
        if check.refuted > 0 {
            crate::runtime::log(&format!(
                "the listing omitted {} existing objects: their deletes were refuted",
                check.refuted
            ));
        }
        Ok(())
    }

    /// Fires the outbox and commits what was delivered; `Some` when the poll must end.
    fn deliver(
        &self,
        state: &mut State,
        etag: &mut String,
        budget: &Budget,
        status: &mut PollStatus,
    ) -> Result<Option<Ended>, ActionError> {
        let fire = |outbox: &[Value]| {
            let mut pace = self.pace.borrow_mut();
            let batch = paced_batch(self.settings.batch, outbox.len(), &*pace, budget);
            deliver_paced(self.client, self.trigger, outbox, batch, budget, &mut *pace)
        };
        fire_and_commit(state, etag, status, fire, |state, etag| self.store.commit(state, etag))
    }
}

/// A pass of a poll, with what its commit needs.
struct Listed<'k> {
    pass: Pass,
    /// The versions the pass saw, kept with the snapshot.
    memo: Memo<'k>,
    /// When the listing started.
    started_ms: u64,
    /// True when this pass listed everything, from the start.
    whole: bool,
}

/// What the snapshot covers changed (UPDATE of prefix or bucket): the feed starts over
/// quietly, from the next complete listing.
fn rescope(state: &mut State, scope: &str) {
    if state.scope == scope {
        return;
    }
    let reason = format!(
        "what the feed watches changed from {} to {scope} (UPDATE): re-baselined silently from the next complete \
         listing",
        state.scope
    );
    state.rebaselined = Some(Rebaseline { at_ms: now_ms(), reason, cause: "scope".into(), ..Rebaseline::default() });
    state.snapshot = Snapshot::default();
    state.versions = None;
    state.resume = Vec::new();
    state.baselined = false;
    state.scope = scope.to_string();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `triggerName` that is not a string (nor a number) is an error naming it, not a tick of the
    /// namespace scheduler.
    #[test]
    fn a_trigger_name_that_is_not_a_string_is_an_error_naming_it() {
        let ctx = Context {
            api_host: None,
            api_key: None,
            namespace: "ns".to_string(),
            action_name: "/ns/owfeed/poll".to_string(),
            activation_id: "a1".to_string(),
            deadline: None,
        };
        let params = Params::from_value(json!({ CONFIG_TRIGGER: ["t"] })).unwrap();
        let e = poll(&ctx, params, Extensions::sources(&[])).unwrap_err();
        assert!(e.message.contains(CONFIG_TRIGGER), "{}", e.message);
        assert_eq!(e.details, Some(json!({ "parameter": CONFIG_TRIGGER })));
    }
}
