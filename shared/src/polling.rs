//! The polling pattern, generic over any `Source`: the feed action (`PollingFeed`) and the
//! `poll` action (`poll`).
//!
//! CREATE makes, in the user's namespace and with the user's key: a package binding holding
//! the feed's config (credentials included: never on the shared package), the first state
//! (a baseline, so existing entries do not fire), a helper alarm trigger driven by
//! `/whisk.system/alarms`, and a rule from that trigger to `poll` through the binding, so
//! `poll` receives the config as its parameters. A failed CREATE undoes what it made.
//!
//! A poll takes the lease, delivers what an earlier poll left in the outbox, lists the source
//! and diffs it against the snapshot (streaming merge), commits the new snapshot with the new
//! events appended to the outbox (conditional write), then fires the outbox and commits what
//! was delivered. A failed listing changes nothing. When the user's trigger is gone the
//! poller removes its helpers and state.
//!
//! Plugins only list; everything here works the same for any source.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{json, Map, Value};

use crate::budget::{now_ms, Budget};
use crate::delivery::{deliver_paced, DeliveryOutcome, FirePace};
use crate::diff::{diff_unordered, DiffError, DiffOptions, DiffOutput, Differ, OutsideRange};
use crate::events::{cloud_event, Change, EventContext, Format};
use crate::filter::ChangeFilter;
use crate::lifecycle::{ignore_missing, redact, Feed, FeedRequest, Undo};
use crate::openwhisk::{AuthKey, Client, OwError, QualifiedName};
use crate::params::{ParamError, Params};
use crate::runtime::{ActionError, Context};
use crate::schedule::Schedule;
use crate::source::{BlobStore, Flow, ListRange, Lister, Source, SourceError};
use crate::state::{Snapshot, SnapshotWriter, State};
use crate::store::{Dialect, LeaseError, LoadError, PollStatus, StateStore, NO_CONDITIONAL_WRITES};

/// Default polling interval in minutes.
pub const DEFAULT_INTERVAL_MINUTES: u64 = 1;
/// Where the alarms package lives unless the `alarmsPackage` parameter says otherwise.
pub const DEFAULT_ALARMS_PACKAGE: &str = "/whisk.system/alarms";
/// Most events in one fire (`batch`): keeps a fire well under the 1 MB payload limit.
pub const MAX_BATCH: u64 = 100;
/// Time kept at the end of an activation for the final state commit (at most).
const COMMIT_MARGIN: Duration = Duration::from_secs(5);
/// Time kept at the end of a listing for committing and firing what it found (at most).
const LIST_MARGIN: Duration = Duration::from_secs(10);

/// The commit and listing margins for an activation with `total` time: the fixed margins,
/// or a tenth and a fifth of the time for short activations, so they still make progress.
fn margins(total: Option<Duration>) -> (Duration, Duration) {
    match total {
        Some(t) => (COMMIT_MARGIN.min(t / 10), LIST_MARGIN.min(t / 5)),
        None => (Duration::ZERO, Duration::ZERO),
    }
}

/// Default of `maxChangesPerPoll`: most changes one listing pass collects before it
/// checkpoints. It bounds the outbox (and a poll's memory) when a burst of changes lands;
/// the next poll resumes the listing where this one stopped.
pub const DEFAULT_MAX_CHANGES_PER_POLL: u64 = 10_000;

/// Config keys the core adds to what the user passed.
const CONFIG_SOURCE: &str = "source";
const CONFIG_TRIGGER: &str = "triggerName";
/// Config key of the state store's conditional-write dialect, found by CREATE's probe.
pub const CONFIG_DIALECT: &str = "conditionalWriteDialect";

/// The dialect the feed's config records; feeds created before it was recorded use `quoted`.
fn config_dialect(config: &Params) -> Dialect {
    config.str(CONFIG_DIALECT).ok().flatten().and_then(|d| Dialect::parse(&d)).unwrap_or(Dialect::Quoted)
}

/// CREATE's, UPDATE's and READ's words about the dialect.
fn dialect_fields(dialect: Dialect) -> Value {
    let mut v = json!({ "conditionalWrites": dialect.conditional(), "conditionalWriteDialect": dialect.as_str() });
    if !dialect.conditional() {
        v["conditionalWritesWarning"] = json!(NO_CONDITIONAL_WRITES);
    }
    v
}

/// Default of `maxFiresPerMinute`: half of OpenWhisk's default 60 fires per minute and
/// namespace (apache/openwhisk ansible/group_vars/all:82), leaving the rest to the helper alarms
/// (one fire per interval each) and the user's other triggers.
pub const DEFAULT_MAX_FIRES_PER_MINUTE: u64 = 30;

/// Parameters the core reads (the source reads its own); never secrets.
pub const CORE_PARAMS: [&str; 13] = [
    "interval",
    "cron",
    "prefix",
    "suffix",
    "events",
    "format",
    "batch",
    "fireExisting",
    "alarmsPackage",
    "maxChangesPerPoll",
    "parallelism",
    "maxFiresPerMinute",
    "verifyDeletes",
];

/// How a poller turns changes into fires.
#[derive(Clone, Debug)]
pub struct PollSettings {
    /// CloudEvents or the source's legacy shape.
    pub format: Format,
    /// Events per fire.
    pub batch: usize,
    /// Which changes fire.
    pub filter: ChangeFilter,
    /// Fire `created` for entries that exist at CREATE.
    pub fire_existing: bool,
    /// What the snapshot covers; a change means a silent re-baseline.
    pub scope: String,
    /// A listing pass checkpoints once it found this many changes.
    pub max_changes: usize,
    /// Key ranges listed at once for large snapshots.
    pub parallelism: usize,
    /// Fires a poll sends per calendar minute at most.
    pub max_fires_per_minute: u32,
    /// Most deletes per poll confirmed one by one before they are reported.
    pub verify_deletes: usize,
}

impl PollSettings {
    /// Reads and checks the core's parameters.
    pub fn from_params(params: &Params, lister: &dyn Lister) -> Result<PollSettings, ParamError> {
        let format = match params.str("format")? {
            Some(f) => Format::parse(&f)?,
            None => Format::CloudEvents,
        };
        let batch = params.u64_in("batch", 1, MAX_BATCH)?.unwrap_or(1) as usize;
        let filter = ChangeFilter::from_params(params)?;
        let fire_existing = params.bool("fireExisting")?.unwrap_or(false);
        let scope = format!("{}?prefix={}", lister.source_uri(), params.str("prefix")?.unwrap_or_default());
        let max_changes =
            params.u64_in("maxChangesPerPoll", 1, 1_000_000)?.unwrap_or(DEFAULT_MAX_CHANGES_PER_POLL) as usize;
        let parallelism = params.u64_in("parallelism", 1, 16)?.unwrap_or(DEFAULT_PARALLELISM) as usize;
        let max_fires_per_minute =
            params.u64_in("maxFiresPerMinute", 1, 10_000)?.unwrap_or(DEFAULT_MAX_FIRES_PER_MINUTE) as u32;
        let verify_deletes =
            params.u64_in("verifyDeletes", 0, 10_000)?.unwrap_or(crate::deletes::DEFAULT_VERIFY_DELETES) as usize;
        Ok(PollSettings {
            format,
            batch,
            filter,
            fire_existing,
            scope,
            max_changes,
            parallelism,
            max_fires_per_minute,
            verify_deletes,
        })
    }
}

/// Everything CREATE and UPDATE check before they make anything.
struct Validated {
    schedule: Schedule,
    settings: PollSettings,
    lister: Box<dyn Lister>,
    alarms: QualifiedName,
}

/// The entities a polling feed makes in the user's namespace, named after the trigger.
struct Helpers {
    alarm: QualifiedName,
    rule: QualifiedName,
    config: QualifiedName,
    poll: QualifiedName,
}

impl Helpers {
    fn for_trigger(trigger: &QualifiedName) -> Helpers {
        // Triggers, rules and packages share one name space per namespace: distinct suffixes.
        let ns = &trigger.namespace;
        let config = format!("{}.owfeed", trigger.name);
        Helpers {
            alarm: QualifiedName::new(ns, None, &format!("{}.owfeed-alarm", trigger.name)),
            rule: QualifiedName::new(ns, None, &format!("{}.owfeed-rule", trigger.name)),
            poll: QualifiedName::new(ns, Some(&config), "poll"),
            config: QualifiedName::new(ns, None, &config),
        }
    }
}

/// A feed action for any polling source.
pub struct PollingFeed<'a> {
    /// The sources `-p source` picks from; the first is the default.
    sources: Vec<&'a dyn Source>,
}

impl<'a> PollingFeed<'a> {
    /// The feed for `source` alone.
    pub fn new(source: &'a dyn Source) -> PollingFeed<'a> {
        PollingFeed { sources: vec![source] }
    }

    /// The feed for every source in `sources` (the registry), picked by `-p source`; the
    /// first one when the parameter is absent.
    pub fn registry(sources: &[&'a dyn Source]) -> PollingFeed<'a> {
        PollingFeed { sources: sources.to_vec() }
    }

    /// The source `params` (a request's or a stored config) name, or the default.
    fn source_of(&self, params: &Params) -> Result<&'a dyn Source, ParamError> {
        let default = *self.sources.first().ok_or_else(|| ParamError::missing(CONFIG_SOURCE, "a source"))?;
        match params.str(CONFIG_SOURCE)? {
            None => Ok(default),
            Some(name) => find_source(&self.sources, &name),
        }
    }

    fn validate(&self, params: &Params) -> Result<Validated, ActionError> {
        let schedule = Schedule::from_params(params, DEFAULT_INTERVAL_MINUTES)?;
        let lister = self.source_of(params)?.open(params)?;
        let settings = PollSettings::from_params(params, lister.as_ref())?;
        if settings.format == Format::Legacy && lister.legacy_event(&sample_change()).is_none() {
            return Err(ParamError::invalid(
                "format",
                "cloudevents (this source has no legacy format)",
                &"legacy".into(),
            )
            .into());
        }
        let alarms = alarms_package(params)?;
        Ok(Validated { schedule, settings, lister, alarms })
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
        own.chain(crate::sources::named_store_secrets()).collect()
    }
}

/// The state store: the source's own, else the one the user names (`stateBucket`…), so a
/// source without a store of its own still works.
fn state_blobs(lister: &dyn Lister, params: &Params) -> Result<Box<dyn BlobStore>, ParamError> {
    if let Some(blobs) = lister.blob_store() {
        return Ok(blobs);
    }
    crate::sources::named_store(params)?.ok_or_else(|| {
        ParamError::missing(
            "stateBucket",
            "a bucket for the feed state (this source keeps none of its own), reached with endpoint, \
             accessKeyId and secretAccessKey as for the S3 source",
        )
    })
}

/// The source called `name` among `sources`; the error lists the known names.
fn find_source<'a>(sources: &[&'a dyn Source], name: &str) -> Result<&'a dyn Source, ParamError> {
    sources.iter().copied().find(|s| s.name() == name).ok_or_else(|| {
        let known: Vec<&str> = sources.iter().map(|s| s.name()).collect();
        ParamError::invalid(CONFIG_SOURCE, &format!("one of: {}", known.join(", ")), &name.into())
    })
}

/// The alarms package from `alarmsPackage` (default `/whisk.system/alarms`).
fn alarms_package(params: &Params) -> Result<QualifiedName, ParamError> {
    let name = params.str("alarmsPackage")?.unwrap_or_else(|| DEFAULT_ALARMS_PACKAGE.to_string());
    QualifiedName::parse(&name, "whisk.system")
        .ok()
        .filter(|q| q.package.is_none())
        .ok_or_else(|| ParamError::invalid("alarmsPackage", "/namespace/package", &name.clone().into()))
}

/// What tearing a feed down needs from its stored config, with defaults for a broken one:
/// DELETE must get as far as it can.
fn teardown_plan(config: &Params) -> (QualifiedName, Schedule) {
    let schedule = Schedule::from_params(config, DEFAULT_INTERVAL_MINUTES).unwrap_or(Schedule::Interval(1));
    (alarms_package(config).unwrap_or_else(|_| default_alarms()), schedule)
}

/// The helper trigger's body: annotated with the alarms feed that drives it.
fn alarm_trigger_body(alarms: &QualifiedName, schedule: &Schedule) -> Value {
    let feed_name = format!("{alarms}/{}", schedule.alarm_feed());
    json!({ "annotations": [{ "key": "feed", "value": feed_name }], "parameters": [] })
}

/// This feed action's package: the config binding binds to it, so it must be known.
fn own_package(req: &FeedRequest) -> Result<(), ActionError> {
    match req.package {
        Some(_) => Ok(()),
        None => Err(ActionError::new("runtime: cannot tell this feed action's package from its name")),
    }
}

fn sample_change() -> Change {
    Change {
        kind: crate::events::ChangeKind::Created,
        key: "k".to_string(),
        entry: Some(crate::source::Entry { key: "k".to_string(), version: "v".to_string(), attrs: Map::new() }),
        old_version: None,
    }
}

fn source_error(e: SourceError) -> ActionError {
    ActionError::new(e.to_string())
}

/// Invokes an alarms feed action for the helper trigger (the recipe of the feeds docs).
fn alarm_feed(
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

/// Removes every helper and the state; each step tolerates what is already gone.
fn teardown(
    client: &Client,
    helpers: &Helpers,
    alarms: &QualifiedName,
    schedule: &Schedule,
    store: Option<&StateStore>,
) -> Vec<String> {
    let mut problems = Vec::new();
    if let Err(e) = ignore_missing(client.delete_rule(&helpers.rule)) {
        problems.push(format!("rule {}: {e}", helpers.rule));
    }
    // The alarms provider answers an error when it has no such alarm: nothing to undo then.
    let _ = alarm_feed(client, alarms, schedule, "DELETE", &helpers.alarm);
    if let Err(e) = ignore_missing(client.delete_trigger(&helpers.alarm)) {
        problems.push(format!("trigger {}: {e}", helpers.alarm));
    }
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

/// What one listing pass found.
struct Pass {
    snapshot: Snapshot,
    changes: Vec<Change>,
    /// Where the next pass resumes; `None` when this pass reached the end.
    cursor: Option<String>,
    listed: u64,
}

/// Fewest old keys per range worth a listing thread of its own.
const MIN_KEYS_PER_RANGE: usize = 5_000;
/// Default of `parallelism`: key ranges listed at once once the snapshot is large enough.
pub const DEFAULT_PARALLELISM: u64 = 4;

/// What a pass keeps and when it stops early.
#[derive(Clone, Copy)]
struct PassLimits {
    /// How many key ranges to list at once.
    parallelism: usize,
    /// Fewest old keys a range must have for the listing to be split.
    min_keys_per_range: usize,
    /// Keep the changes (false: a silent baseline only counts them).
    emit: bool,
    /// Checkpoint once this many changes were found.
    max_changes: usize,
    /// Log progress on stderr every 10 000 entries.
    progress: bool,
}

impl PassLimits {
    /// A silent pass (a baseline): one range, listed to the end or the deadline.
    fn silent() -> PassLimits {
        PassLimits {
            parallelism: 1,
            min_keys_per_range: MIN_KEYS_PER_RANGE,
            emit: false,
            max_changes: usize::MAX,
            progress: false,
        }
    }

    /// A poll's pass with the feed's settings; silent when `emit` is false.
    fn poll(settings: &PollSettings, emit: bool) -> PassLimits {
        // A silent pass keeps no changes: nothing to bound, so it runs to the end or the deadline.
        let max_changes = if emit { settings.max_changes } else { usize::MAX };
        PassLimits {
            parallelism: settings.parallelism,
            min_keys_per_range: MIN_KEYS_PER_RANGE,
            emit,
            max_changes,
            progress: false,
        }
    }
}

/// Lists the source once after `start_after` against `old` and returns what changed.
fn run_pass_with(
    lister: &dyn Lister,
    old: &Snapshot,
    start_after: Option<String>,
    exclude: Option<String>,
    budget: &Budget,
    limits: PassLimits,
) -> Result<Option<Pass>, SourceError> {
    let whole = ListRange { start_after: start_after.clone(), end_before: None };
    let options = DiffOptions { exclude_prefix: exclude, discard_changes: !limits.emit, ..DiffOptions::default() };
    let ranges = split_ranges(old, start_after.as_deref(), limits.parallelism, limits.min_keys_per_range);
    let found = AtomicUsize::new(0);
    let listed = AtomicU64::new(0);
    let stop = |count: usize| {
        let total = found.fetch_add(count, Ordering::SeqCst) + count;
        budget.expired() || total >= limits.max_changes
    };
    let progress = |n: usize| {
        let before = listed.fetch_add(n as u64, Ordering::SeqCst);
        let after = before + n as u64;
        if limits.progress && after / 10_000 > before / 10_000 {
            crate::runtime::log(&format!("listed {after} entries…"));
        }
    };
    let outcomes: Vec<Result<RangeOutcome, SourceError>> = if ranges.len() == 1 {
        vec![list_range(lister, old, &whole, options.clone(), limits.max_changes, &stop, &progress)]
    } else {
        // Disjoint key ranges listed at once: each differ writes only its own range.
        let per_range = DiffOptions { outside_range: OutsideRange::Drop, ..options.clone() };
        std::thread::scope(|scope| {
            let handles: Vec<_> = ranges
                .iter()
                .map(|range| {
                    let (per_range, stop, progress) = (per_range.clone(), &stop, &progress);
                    scope.spawn(move || list_range(lister, old, range, per_range, limits.max_changes, stop, progress))
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err(panicked()))).collect()
        })
    };
    let outcomes = outcomes.into_iter().collect::<Result<Vec<_>, _>>()?;
    let listed_total = listed.load(Ordering::SeqCst);
    if outcomes.iter().any(|o| o.out_of_order) {
        // The server does not list in key order: gather the whole range, sort, diff.
        let mut all = Vec::new();
        let done = lister.list(&whole, &mut |page| {
            all.extend(page);
            if budget.expired() {
                Flow::Stop
            } else {
                Flow::Continue
            }
        })?;
        if !done {
            return Err(SourceError::Transient(
                "the source lists keys out of order and the listing did not finish in time".to_string(),
            ));
        }
        let listed = all.len() as u64;
        let out = diff_unordered(old, all, &whole, options);
        return Ok(Some(Pass { snapshot: out.snapshot, changes: out.changes, cursor: None, listed }));
    }
    if ranges.len() == 1 {
        let outcome = outcomes.into_iter().next().expect("one range, one outcome");
        return Ok(outcome.out.map(|out| Pass {
            snapshot: out.snapshot,
            changes: out.changes,
            cursor: if outcome.complete { None } else { outcome.last_key },
            listed: listed_total,
        }));
    }
    combine_ranges(old, start_after.as_deref(), &ranges, outcomes, listed_total).map(Some)
}

/// What listing one key range gave.
struct RangeOutcome {
    /// The diff of the range (`None` when stopped before the first page).
    out: Option<DiffOutput>,
    /// True when the range was listed to its end.
    complete: bool,
    /// The last key listed, where a cut range resumes.
    last_key: Option<String>,
    /// The listing was not in key order; `out` is meaningless.
    out_of_order: bool,
}

/// Lists one range into a differ; `stop` gets each page's new changes and says whether to stop.
fn list_range(
    lister: &dyn Lister,
    old: &Snapshot,
    range: &ListRange,
    options: DiffOptions,
    max_changes: usize,
    stop: &(dyn Fn(usize) -> bool + Sync),
    progress: &(dyn Fn(usize) + Sync),
) -> Result<RangeOutcome, SourceError> {
    let mut differ = Differ::with_options(old, range, options);
    let mut out_of_order = false;
    let mut last_key: Option<String> = None;
    let mut counted = 0;
    let complete = lister.list(range, &mut |page| {
        progress(page.len());
        if let Some(last) = page.last() {
            last_key = Some(last.key.clone());
        }
        if let Err(DiffError::OutOfOrder { .. }) = differ.push_page(page) {
            out_of_order = true;
            return Flow::Stop;
        }
        let now = differ.change_count();
        let new = now - counted;
        counted = now;
        if stop(new) {
            Flow::Stop
        } else {
            Flow::Continue
        }
    })?;
    let (out, complete, last_key) = if out_of_order {
        (None, complete, last_key)
    } else if complete {
        // Deletes past the listing are bounded too: a cut there resumes after the cursor.
        match differ.finish_bounded(max_changes) {
            (out, None) => (Some(out), true, last_key),
            (out, cursor) => (Some(out), false, cursor),
        }
    } else {
        (last_key.as_deref().map(|last| differ.checkpoint(last)), false, last_key)
    };
    Ok(RangeOutcome { out, complete, last_key, out_of_order })
}

fn panicked() -> SourceError {
    SourceError::Transient("a listing thread panicked".to_string())
}

/// Splits the keys after `start_after` into up to `n` ranges of about equal size, at keys of
/// the previous snapshot. Bounds are exclusive both ways, so a boundary key `b` ends one
/// range as `b` + NUL and starts the next as `b`.
fn split_ranges(old: &Snapshot, start_after: Option<&str>, n: usize, min_per_range: usize) -> Vec<ListRange> {
    let whole = vec![ListRange { start_after: start_after.map(str::to_string), end_before: None }];
    if n <= 1 {
        return whole;
    }
    // Two streaming passes over the compressed snapshot: count, then pick the boundaries.
    // (Collecting the keys would cost tens of MB on a large bucket.)
    let keys_after = || -> Box<dyn Iterator<Item = (String, u64)> + '_> {
        match start_after {
            Some(after) => Box::new(old.iter_from(after).filter(move |(k, _)| k.as_str() > after)),
            None => Box::new(old.iter()),
        }
    };
    let remaining = match start_after {
        Some(_) => keys_after().count(),
        None => old.len(),
    };
    // Too few keys to be worth threads: one range.
    if remaining < n * min_per_range.max(1) {
        return whole;
    }
    let step = remaining / n;
    let bounds: Vec<String> = keys_after()
        .enumerate()
        .filter(|(i, _)| *i > 0 && i % step == 0 && i / step < n)
        .map(|(_, (k, _))| k)
        .collect();
    let mut ranges = Vec::with_capacity(n);
    let mut lower = start_after.map(str::to_string);
    for b in bounds {
        ranges.push(ListRange { start_after: lower, end_before: Some(format!("{b}\0")) });
        lower = Some(b);
    }
    ranges.push(ListRange { start_after: lower, end_before: None });
    ranges
}

/// The old entries with keys in `(after, upto]` (either bound open when `None`).
fn copy_old(old: &Snapshot, after: Option<&str>, upto: Option<&str>) -> Result<Snapshot, SourceError> {
    let mut w = SnapshotWriter::new();
    let keys: Box<dyn Iterator<Item = (String, u64)>> = match after {
        Some(a) => Box::new(old.iter_from(a)),
        None => Box::new(old.iter()),
    };
    for (key, hash) in keys {
        if after.is_some_and(|a| key.as_str() <= a) {
            continue;
        }
        if upto.is_some_and(|u| key.as_str() > u) {
            break;
        }
        w.push(&key, hash).map_err(|e| SourceError::Transient(e.to_string()))?;
    }
    Ok(w.finish())
}

/// Joins the outcomes of parallel ranges into one pass. Ranges before the first cut one are
/// taken whole; the cut range up to where it stopped; everything after it keeps its old
/// entries (their changes, if any were seen, are found again by the next poll). The cursor
/// is where the cut range stopped, so no delete is ever reported past what was listed.
fn combine_ranges(
    old: &Snapshot,
    start_after: Option<&str>,
    ranges: &[ListRange],
    outcomes: Vec<RangeOutcome>,
    listed: u64,
) -> Result<Pass, SourceError> {
    let mut pieces = Vec::new();
    if start_after.is_some() {
        pieces.push(copy_old(old, None, start_after)?);
    }
    let mut changes = Vec::new();
    let mut cursor = None;
    for (range, outcome) in ranges.iter().zip(outcomes) {
        match outcome.out {
            Some(out) if outcome.complete => {
                pieces.push(out.snapshot);
                changes.extend(out.changes);
            }
            cut => {
                // This range stopped early (or never started): it ends the pass.
                let resume = match cut {
                    Some(out) => {
                        pieces.push(out.snapshot);
                        changes.extend(out.changes);
                        outcome.last_key
                    }
                    None => range.start_after.clone(),
                };
                let after = range.end_before.as_deref().map(|e| e.strip_suffix('\0').unwrap_or(e));
                if let Some(after) = after {
                    pieces.push(copy_old(old, Some(after), None)?);
                }
                cursor = resume;
                break;
            }
        }
    }
    let snapshot = Snapshot::concat(pieces).map_err(|e| SourceError::Transient(e.to_string()))?;
    Ok(Pass { snapshot, changes, cursor, listed })
}

/// A fresh state: empty when `fire_existing` (the first poll fires everything), else a
/// silent baseline pass, resumed by later polls if it does not finish in time.
fn baseline(
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
    if let Some(pass) =
        run_pass_with(lister, &state.snapshot, None, store.reserved_prefix(), budget, PassLimits::silent())?
    {
        state.baselined = pass.cursor.is_none();
        state.cursor = pass.cursor;
        state.snapshot = pass.snapshot;
    }
    Ok(state)
}

impl Feed for PollingFeed<'_> {
    fn create(&self, req: &FeedRequest) -> Result<Value, ActionError> {
        let v = self.validate(&req.params)?;
        own_package(req)?;
        v.lister.probe().map_err(source_error)?;
        let blobs = state_blobs(v.lister.as_ref(), &req.params)?;
        let store = StateStore::new(blobs, &req.trigger);
        let probe = store
            .probe_dialect()
            .map_err(|e| ActionError::new(format!("cannot write the feed state at {}: {e}", store.location())))?;
        let store = store.with_dialect(probe.dialect);
        let client = &req.client;
        let helpers = Helpers::for_trigger(&req.trigger);
        let mut config = self.config(req, &req.params)?;
        config.insert(CONFIG_DIALECT, json!(probe.dialect.as_str()));
        let mut undo = Undo::new();

        if let Err(e) = req.write_config(&helpers.config, &config) {
            return Err(ActionError::new(format!("creating the feed config {}: {e}", helpers.config)));
        }
        undo.push("feed config", || ignore_missing(client.delete_package(&helpers.config)));

        let result = (|| -> Result<(), ActionError> {
            match store.load() {
                // A retried CREATE (wskdeploy retries) keeps the state and its pending events.
                Ok(Some(_)) => {}
                Ok(None) | Err(LoadError::Corrupt(_)) => {
                    let (commit, list) = margins(req.ctx.time_left());
                    let budget = Budget::new(req.ctx.deadline, list + commit);
                    let state = baseline(v.lister.as_ref(), &store, &v.settings, &budget).map_err(source_error)?;
                    store.overwrite(&state).map_err(|e| ActionError::new(format!("writing the feed state: {e}")))?;
                    undo.push("feed state", || store.delete_all().map_err(|e| e.to_string()));
                }
                Err(LoadError::Store(e)) => return Err(ActionError::new(format!("reading the feed state: {e}"))),
            }
            client
                .put_trigger(&helpers.alarm, &alarm_trigger_body(&v.alarms, &v.schedule), true)
                .map_err(|e| ActionError::new(format!("creating the alarm trigger {}: {e}", helpers.alarm)))?;
            undo.push("alarm trigger", || ignore_missing(client.delete_trigger(&helpers.alarm)));
            // Idempotent: an alarm left by an earlier attempt is replaced.
            let _ = alarm_feed(client, &v.alarms, &v.schedule, "DELETE", &helpers.alarm);
            alarm_feed(client, &v.alarms, &v.schedule, "CREATE", &helpers.alarm).map_err(|e| {
                ActionError::new(format!("creating the alarm with {}: {}", v.alarms, describe_invoke_error(&e)))
            })?;
            undo.push("alarm", || {
                alarm_feed(client, &v.alarms, &v.schedule, "DELETE", &helpers.alarm)
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            });
            client
                .put_rule(&helpers.rule, &helpers.alarm, &helpers.poll, true)
                .map_err(|e| ActionError::new(format!("creating the rule {}: {e}", helpers.rule)))?;
            Ok(())
        })();
        if let Err(e) = result {
            return Err(undo.fail_with(e));
        }
        undo.commit();
        let mut result = json!({
            "status": "created",
            "trigger": req.trigger.to_string(),
            "schedule": v.schedule.to_params(),
            "state": store.location(),
            "conditionalWriteProbe": probe,
            "helpers": {
                "alarmTrigger": helpers.alarm.to_string(),
                "rule": helpers.rule.to_string(),
                "config": helpers.config.to_string(),
            },
        });
        if let (Value::Object(r), Value::Object(d)) = (&mut result, dialect_fields(probe.dialect)) {
            r.extend(d);
        }
        let mut notices = v.lister.notices();
        notices.extend(api_tls_notice(req, &req.params));
        if !notices.is_empty() {
            result["notices"] = json!(notices);
        }
        Ok(result)
    }

    fn read(&self, req: &FeedRequest) -> Result<Value, ActionError> {
        let helpers = Helpers::for_trigger(&req.trigger);
        let config = req.read_config(&helpers.config, "feed config")?.ok_or_else(|| {
            ActionError::new(format!("trigger {} has no feed config: was it created with this feed?", req.trigger))
        })?;
        let rule = req.client.get_rule(&helpers.rule);
        let active = match &rule {
            Ok(doc) => doc.get("status").and_then(Value::as_str) == Some("active"),
            Err(_) => false,
        };
        let mut status = json!({
            "active": active,
            "paused": rule.is_ok() && !active,
            "rule": helpers.rule.to_string(),
        });
        let s = status.as_object_mut().expect("status is an object");
        if let Err(e) = &rule {
            s.insert("error".into(), json!(format!("rule {}: {e}", helpers.rule)));
        }
        let schedule = Schedule::from_params(&config, DEFAULT_INTERVAL_MINUTES).ok();
        if rule.is_ok() {
            // The alarms provider disables an alarm for good after a 4xx or 10 throttled fires:
            // READ says so, and what repairs it.
            let (alarms, plan) = teardown_plan(&config);
            let health = alarm_health(&req.client, &alarms, &plan, &helpers.alarm);
            if active && health["active"] == false {
                s.insert("active".into(), json!(false));
                s.insert(
                    "problem".into(),
                    json!(format!(
                        "the alarm of {} is disabled, so no polls run: an UPDATE of the feed (wsk trigger \
                         update {} -p …) or UNPAUSE re-creates it",
                        helpers.alarm, req.trigger.name
                    )),
                );
            }
            s.insert("alarm".into(), health);
        }
        if let Value::Object(d) = dialect_fields(config_dialect(&config)) {
            s.extend(d);
        }
        let lister = self.source_of(&config).map_err(ActionError::from).and_then(|s| Ok(s.open(&config)?));
        let mut notices = lister.as_ref().map(|l| l.notices()).unwrap_or_default();
        notices.extend(api_tls_notice(req, &config).or_else(|| api_tls_notice(req, &req.params)));
        if !notices.is_empty() {
            s.insert("notices".into(), json!(notices));
        }
        match lister.and_then(|l| Ok(Some(state_blobs(l.as_ref(), &config)?))) {
            Ok(Some(blobs)) => {
                let store = StateStore::new(blobs, &req.trigger);
                s.insert("state".into(), json!(store.location()));
                match store.load() {
                    Ok(Some((state, _))) => {
                        s.insert("objectsTracked".into(), json!(state.snapshot.len()));
                        s.insert("eventsPending".into(), json!(state.outbox.len()));
                        s.insert("eventsFired".into(), json!(state.stats.events_fired));
                        s.insert("baselined".into(), json!(state.baselined));
                        s.insert("listingInProgress".into(), json!(state.cursor.is_some()));
                        s.insert(
                            "deletes".into(),
                            json!({
                                "confirmed": state.stats.deletes_confirmed,
                                "refuted": state.stats.deletes_refuted,
                                "heldForNextPoll": state.stats.held_deletes,
                            }),
                        );
                    }
                    Ok(None) => {
                        s.insert(
                            "stateError".into(),
                            json!("no state object: the next poll re-baselines silently (changes made since the last good poll are not reported)"),
                        );
                    }
                    Err(LoadError::Corrupt(e)) => {
                        s.insert(
                            "stateError".into(),
                            json!(format!("state object is corrupt ({e}): the next poll re-baselines silently (changes made since the last good poll are not reported)")),
                        );
                    }
                    Err(LoadError::Store(e)) => {
                        s.insert(
                            "stateError".into(),
                            json!(format!("{e}: the state cannot be read now; polls retry, and once the store answers the next poll reports the changes made meanwhile (nothing is re-baselined)")),
                        );
                    }
                }
                let lease = store.lease_doc();
                let doc = lease.as_ref().ok().and_then(|l| l.as_ref()).map(|(doc, _)| doc);
                let trigger = config.str(CONFIG_TRIGGER).ok().flatten().unwrap_or_else(|| req.trigger.to_string());
                let activations = crate::stall::poll_activations(&req.client, &helpers.config.name, &trigger)
                    .map_err(|e| format!("poll activations: {e}"));
                crate::stall::report(s, doc, activations, now_ms());
                if let Err(e) = &lease {
                    s.insert("leaseError".into(), json!(e.to_string()));
                }
                let last_started = doc.and_then(|d| d.status.as_ref()).map(|st| st.started_ms);
                let next = last_started.and_then(|l| schedule.as_ref().and_then(|sch| sch.next_poll(l, now_ms())));
                if let (Some(next), true) = (next, active) {
                    s.insert("nextPoll".into(), json!(iso(next)));
                }
                if let Some(ms) = doc.and_then(|d| d.status.as_ref()).map(|st| st.duration_ms) {
                    s.insert("lastPollDurationMs".into(), json!(ms));
                }
            }
            Ok(None) => {}
            Err(e) => {
                s.insert("configError".into(), json!(e.to_string()));
            }
        }
        Ok(json!({ "config": redact(&config, &self.secret_params(&config)), "status": status }))
    }

    fn update(&self, req: &FeedRequest) -> Result<Value, ActionError> {
        let helpers = Helpers::for_trigger(&req.trigger);
        let old = req
            .read_config(&helpers.config, "feed config")?
            .ok_or_else(|| ActionError::new(format!("trigger {} has no feed config: create it first", req.trigger)))?;
        let old_source = self.source_of(&old)?.name();
        if req.params.str(CONFIG_SOURCE)?.is_some_and(|s| s != old_source) {
            // The state belongs to the old source: a new one starts with DELETE and CREATE.
            return Err(ParamError::invalid(
                CONFIG_SOURCE,
                &format!("{old_source} (the source of a feed cannot change: delete and create the trigger)"),
                &req.params.str(CONFIG_SOURCE)?.unwrap_or_default().into(),
            )
            .into());
        }
        let mut merged = old.clone();
        for (k, v) in req.params.as_map() {
            if v.is_null() {
                merged.remove(k);
            } else {
                merged.insert(k, v.clone());
            }
        }
        // interval and cron exclude each other: the newly given one wins.
        if req.params.has("cron") && !req.params.has("interval") {
            merged.remove("interval");
        }
        if req.params.has("interval") && !req.params.has("cron") {
            merged.remove("cron");
        }
        let v = self.validate(&merged)?;
        v.lister.probe().map_err(source_error)?;
        // The store may have changed (endpoint, stateBucket): probe its dialect again.
        let dialect = StateStore::new(state_blobs(v.lister.as_ref(), &merged)?, &req.trigger)
            .probe_dialect()
            .map(|p| p.dialect)
            .map_err(|e| ActionError::new(format!("cannot write the feed state: {e}")))?;
        let old_schedule = Schedule::from_params(&old, DEFAULT_INTERVAL_MINUTES).ok();
        own_package(req)?;
        let mut config = self.config(req, &merged)?;
        config.insert(CONFIG_DIALECT, json!(dialect.as_str()));
        req.write_config(&helpers.config, &config)
            .map_err(|e| ActionError::new(format!("updating the feed config {}: {e}", helpers.config)))?;
        // A paused feed has no alarm (PAUSE deleted it); UNPAUSE creates it with the new schedule.
        let paused = req.client.get_rule(&helpers.rule).is_ok_and(|r| r["status"] != "active");
        let mut alarm = "unchanged";
        if old_schedule.as_ref() != Some(&v.schedule) {
            if let Some(old_schedule) = &old_schedule {
                let _ = alarm_feed(&req.client, &v.alarms, old_schedule, "DELETE", &helpers.alarm);
            }
            req.client
                .put_trigger(&helpers.alarm, &alarm_trigger_body(&v.alarms, &v.schedule), true)
                .map_err(|e| ActionError::new(format!("updating the alarm trigger {}: {e}", helpers.alarm)))?;
            if !paused {
                create_alarm(&req.client, &v.alarms, &v.schedule, &helpers.alarm)?;
            }
            alarm = "rescheduled";
        } else if !paused && alarm_health(&req.client, &v.alarms, &v.schedule, &helpers.alarm)["active"] == false {
            // The provider disabled the alarm (or it is gone): UPDATE is the documented repair.
            create_alarm(&req.client, &v.alarms, &v.schedule, &helpers.alarm)?;
            alarm = "re-created";
        }
        let mut result = json!({
            "status": "updated",
            "trigger": req.trigger.to_string(),
            "schedule": v.schedule.to_params(),
            "alarm": alarm,
        });
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
                    .and_then(|s| s.open(config).ok())
                    .and_then(|l| state_blobs(l.as_ref(), config).ok())
                    .map(|b| {
                        // The state is keyed by the resolved trigger name stored at CREATE.
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

/// PAUSE and UNPAUSE. The alarms provider has no PAUSE ("unsupported lifecycleEvent",
/// openwhisk-package-alarms action/alarm.js:47-52), and an alarm that keeps firing spends the
/// namespace's fire quota, so PAUSE deletes the alarm and disables the rule; UNPAUSE enables
/// the rule and creates the alarm again (CREATE upserts and re-enables a disabled alarm:
/// action/lib/Database.js:74-80). The user's trigger, the helper trigger, the config and the
/// state stay. Both are idempotent.
fn set_active(req: &FeedRequest, active: bool) -> Result<Value, ActionError> {
    let helpers = Helpers::for_trigger(&req.trigger);
    let config = req
        .read_config(&helpers.config, "feed config")?
        .ok_or_else(|| ActionError::new(format!("trigger {} has no feed config: create it first", req.trigger)))?;
    let (alarms, schedule) = teardown_plan(&config);
    let rule = |active: bool| {
        req.client.set_rule_active(&helpers.rule, active).map_err(|e| match e {
            OwError::NotFound(_) => {
                ActionError::new(format!("trigger {} has no feed rule: create it first", req.trigger))
            }
            e => ActionError::new(format!("rule {}: {e}", helpers.rule)),
        })
    };
    if active {
        rule(true)?;
        create_alarm(&req.client, &alarms, &schedule, &helpers.alarm)?;
    } else {
        match alarm_feed(&req.client, &alarms, &schedule, "DELETE", &helpers.alarm) {
            Ok(_) => {}
            Err(e) if alarm_missing(&e) => {}
            Err(e) => {
                return Err(ActionError::new(format!(
                    "deleting the alarm with {alarms}: {}",
                    describe_invoke_error(&e)
                )))
            }
        }
        rule(false)?;
    }
    Ok(json!({ "status": if active { "active" } else { "paused" }, "trigger": req.trigger.to_string() }))
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

/// Creates (or, the provider upserting, re-creates and re-enables) the helper trigger's alarm.
fn create_alarm(
    client: &Client,
    alarms: &QualifiedName,
    schedule: &Schedule,
    helper: &QualifiedName,
) -> Result<(), ActionError> {
    alarm_feed(client, alarms, schedule, "CREATE", helper)
        .map(|_| ())
        .map_err(|e| ActionError::new(format!("creating the alarm with {alarms}: {}", describe_invoke_error(&e))))
}

/// The helper alarm's health as the alarms provider reports it on READ (`status.active`, and
/// `status.reason` when it disabled the alarm: action/alarmWebAction.js:187-192).
fn alarm_health(client: &Client, alarms: &QualifiedName, schedule: &Schedule, helper: &QualifiedName) -> Value {
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

fn default_alarms() -> QualifiedName {
    QualifiedName::new("whisk.system", None, "alarms")
}

/// An alarms feed error in one line: the provider's errors are `{"error": "…"}` or, from its
/// web action, `{"error": {"error": "…", "message": "…"}}` (action/lib/common.js:105-116).
fn describe_invoke_error(e: &OwError) -> String {
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

fn iso(ms: u64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms as i64).map(|t| t.to_rfc3339()).unwrap_or_default()
}

/// The `poll` action's handler: one poll of the feed whose config arrives as parameters.
/// Every result, errors included, names the trigger, so READ can find the poll's activation
/// when the state store could not record its status.
pub fn poll(ctx: &Context, params: Params, sources: &[&dyn Source]) -> Result<Value, ActionError> {
    let trigger = params.str(CONFIG_TRIGGER).ok().flatten();
    let mut result = poll_once(ctx, params, sources).map_err(|e| crate::stall::tag_error(e, trigger.as_deref()))?;
    if let (Value::Object(r), Some(t)) = (&mut result, trigger) {
        r.insert("trigger".into(), json!(t));
    }
    Ok(result)
}

fn poll_once(ctx: &Context, params: Params, sources: &[&dyn Source]) -> Result<Value, ActionError> {
    let started = now_ms();
    let source = find_source(sources, &params.required_str(CONFIG_SOURCE)?)?;
    let trigger_name = params.required_str(CONFIG_TRIGGER)?;
    let trigger = QualifiedName::parse(&trigger_name, &ctx.namespace).map_err(|e| {
        ParamError::invalid(CONFIG_TRIGGER, &format!("/namespace/trigger ({e})"), &trigger_name.clone().into())
    })?;
    let key = ctx.api_key.as_ref().ok_or_else(|| {
        ActionError::new("poll: no API key in the activation (the action needs the provide-api-key annotation)")
    })?;
    let auth =
        AuthKey::parse(key.expose()).map_err(|_| ActionError::new("poll: the activation's API key is malformed"))?;
    let api_host = ctx.api_host.clone().ok_or_else(|| ActionError::new("runtime: __OW_API_HOST is not set"))?;
    let (commit_margin, list_margin) = margins(ctx.time_left());
    let tls = crate::openwhisk::ApiTls::from_params(&params)?;
    // Every OpenWhisk request ends before the commit margin: a hung fire must leave the poll
    // time to commit what it delivered, or all of it is fired again by the next poll.
    let client = Client::new(&api_host, auth)
        .with_tls(&tls)
        .map_err(ActionError::new)?
        .until(ctx.deadline.map(|d| d - commit_margin));
    let lister = source.open(&params)?;
    let settings = PollSettings::from_params(&params, lister.as_ref())?;
    let blobs = state_blobs(lister.as_ref(), &params)?;
    let store = StateStore::new(blobs, &trigger).with_dialect(config_dialect(&params));
    let budget = Budget::new(ctx.deadline, commit_margin);
    let expires = budget.deadline_ms().unwrap_or(started + 60_000) + commit_margin.as_millis() as u64;
    let lease = match store.acquire(&ctx.activation_id, started, expires) {
        Ok(lease) => lease,
        Err(LeaseError::Busy { holder, expires_ms }) => {
            return Ok(json!({ "status": "busy", "holder": holder, "until": iso(expires_ms) }));
        }
        Err(LeaseError::Store(e)) => return Err(ActionError::new(format!("taking the poll lease: {e}"))),
    };
    let poller = Poller {
        lister: lister.as_ref(),
        store: &store,
        settings: &settings,
        client: &client,
        trigger: &trigger,
        list_margin,
        pace: std::cell::RefCell::new(FirePace::new(settings.max_fires_per_minute)),
    };
    let mut status = PollStatus { started_ms: started, outcome: "ok".to_string(), ..PollStatus::default() };
    let outcome = poller.run(&budget, &mut status);
    status.duration_ms = now_ms().saturating_sub(started);
    if let Err(e) = &outcome {
        status.outcome = "error".to_string();
        status.error = Some(e.message.clone());
    }
    let gone = matches!(outcome, Ok(Ended::TriggerGone));
    if gone {
        let helpers = Helpers::for_trigger(&trigger);
        let (alarms, schedule) = teardown_plan(&params);
        let problems = teardown(&client, &helpers, &alarms, &schedule, Some(&store));
        return Ok(
            json!({ "status": "trigger gone: feed removed", "trigger": trigger.to_string(), "problems": problems }),
        );
    }
    if let Err(e) = store.release(lease, status.clone()) {
        crate::runtime::log(&format!("poll: could not release the lease: {e}"));
    }
    record_dialect_change(&client, &store, &trigger, &params);
    outcome?;
    let mut result = json!({
        "status": status.outcome,
        "listed": status.listed,
        "changes": status.changes,
        "fired": status.fired,
        "pending": status.pending,
        "deletes": {
            "confirmed": status.deletes_confirmed,
            "refuted": status.deletes_refuted,
            "held": status.deletes_held,
        },
    });
    // An `error` field, even null, makes OpenWhisk record an application error.
    if let Some(problem) = status.error {
        result["problem"] = json!(problem);
    }
    Ok(result)
}

/// Events per fire for a backlog of `pending`: the configured `batch`, grown up to `MAX_BATCH`
/// when the fires the pace allows in the time left cannot carry the backlog. A `batch` of 1
/// stays 1: the user's action expects single events, not `{"events": […]}`.
fn paced_batch(batch: usize, pending: usize, pace: &FirePace, budget: &Budget) -> usize {
    if batch <= 1 {
        return 1;
    }
    let fires = pace.capacity(budget.remaining()).max(1);
    batch.max(pending.div_ceil(fires)).min(MAX_BATCH as usize)
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

/// The events for `changes` that pass the filter, in the configured format.
fn build_events(
    lister: &dyn Lister,
    settings: &PollSettings,
    id_salt: &str,
    changes: &[Change],
    seq: u64,
) -> Vec<Value> {
    let ectx = EventContext {
        source: lister.source_uri(),
        type_prefix: lister.event_type_prefix().to_string(),
        data_context: lister.data_context(),
        id_salt: id_salt.to_string(),
    };
    let now = chrono::Utc::now();
    let mut events = Vec::new();
    for change in changes.iter().filter(|c| settings.filter.matches(c)) {
        let ce = cloud_event(&ectx, change, seq, now);
        let event = match settings.format {
            Format::CloudEvents => ce,
            Format::Legacy => {
                let mut legacy = lister.legacy_event(change).unwrap_or(Value::Null);
                // Legacy payloads carry the CloudEvent id too, so duplicates stay recognisable.
                if let (Value::Object(obj), Some(id)) = (&mut legacy, ce.get("id")) {
                    obj.entry("id").or_insert(id.clone());
                }
                legacy
            }
        };
        events.push(event);
    }
    events
}

/// Runs the poll logic once without OpenWhisk and without writing anything: what would fire
/// (against the stored state when `triggerName` is given, else against an empty snapshot)
/// and how large the state would be. Progress goes to stderr.
pub fn dry_run(params: Params, sources: &[&dyn Source]) -> Result<Value, ActionError> {
    let source = match params.str(CONFIG_SOURCE)? {
        Some(name) => find_source(sources, &name)?,
        None => *sources.first().ok_or_else(|| ActionError::new("no source compiled in"))?,
    };
    let lister = source.open(&params)?;
    let settings = PollSettings::from_params(&params, lister.as_ref())?;
    lister.probe().map_err(source_error)?;
    let blobs = state_blobs(lister.as_ref(), &params).ok();
    let reserved = blobs.as_ref().and_then(|b| b.reserved_prefix());
    let trigger = match params.str(CONFIG_TRIGGER)? {
        Some(t) => Some(QualifiedName::parse(&t, "_").map_err(|e| {
            ParamError::invalid(CONFIG_TRIGGER, &format!("/namespace/trigger ({e})"), &t.clone().into())
        })?),
        None => None,
    };
    let (old, seq, against) = match (&trigger, blobs) {
        (Some(trigger), Some(blobs)) => {
            let store = StateStore::new(blobs, trigger);
            match store.load() {
                Ok(Some((state, _))) => (state.snapshot, state.seq + 1, store.location()),
                Ok(None) => {
                    (Snapshot::default(), 1, format!("{} (missing: every entry counts as created)", store.location()))
                }
                Err(e) => return Err(ActionError::new(format!("reading {}: {e}", store.location()))),
            }
        }
        _ => (Snapshot::default(), 1, "an empty snapshot (every entry counts as created)".to_string()),
    };
    let salt = trigger.as_ref().map(|t| t.to_string()).unwrap_or_default();
    let limits = PassLimits {
        parallelism: settings.parallelism,
        min_keys_per_range: MIN_KEYS_PER_RANGE,
        emit: true,
        max_changes: usize::MAX,
        progress: true,
    };
    let pass = run_pass_with(lister.as_ref(), &old, None, reserved, &Budget::new(None, Duration::ZERO), limits)
        .map_err(source_error)?
        .ok_or_else(|| ActionError::new("the listing returned nothing"))?;
    let events = build_events(lister.as_ref(), &settings, &salt, &pass.changes, seq);
    let mut state = State::new(settings.scope.clone());
    state.snapshot = pass.snapshot;
    state.seq = seq;
    state.baselined = true;
    let state_bytes = state.encode().len();
    let shown: Vec<Value> = events.iter().take(100).cloned().collect();
    Ok(json!({
        "against": against,
        "listed": pass.listed,
        "changes": pass.changes.len(),
        "wouldFire": events.len(),
        "events": shown,
        "eventsShown": shown.len(),
        "stateBytes": state_bytes,
        "stateBytesPerObject": if pass.listed > 0 { state_bytes as f64 / pass.listed as f64 } else { 0.0 },
    }))
}

/// How a poll ended when it did not fail.
enum Ended {
    Normally,
    TriggerGone,
}

/// One poll's collaborators.
struct Poller<'a> {
    lister: &'a dyn Lister,
    store: &'a StateStore,
    settings: &'a PollSettings,
    client: &'a Client,
    trigger: &'a QualifiedName,
    /// Time kept after listing for committing and firing.
    list_margin: Duration,
    /// The poll's fires so far, per calendar minute.
    pace: std::cell::RefCell<FirePace>,
}

impl Poller<'_> {
    fn run(&self, budget: &Budget, status: &mut PollStatus) -> Result<Ended, ActionError> {
        let loaded = match self.store.load() {
            Ok(Some(found)) => Ok(found),
            Ok(None) => Err("state object missing".to_string()),
            Err(LoadError::Corrupt(e)) => Err(format!("state object corrupt ({e})")),
            Err(LoadError::Store(e)) => return Err(ActionError::new(format!("reading the feed state: {e}"))),
        };
        let (mut state, mut etag) = match loaded {
            Ok(found) => found,
            Err(why) => {
                // Documented recovery: a missing or corrupt state is replaced by a silent
                // baseline, so the feed goes on without flooding false events.
                let list_budget = budget.with_margin(self.list_margin);
                let state = baseline(self.lister, self.store, self.settings, &list_budget).map_err(source_error)?;
                self.store.overwrite(&state).map_err(|e| ActionError::new(format!("writing the feed state: {e}")))?;
                status.outcome = "rebaselined".to_string();
                status.error = Some(format!("{why}: re-baselined, changes since the last good poll were not reported"));
                return Ok(Ended::Normally);
            }
        };

        // Events an earlier poll committed but did not fire go first, in order.
        if let Some(ended) = self.deliver(&mut state, &mut etag, budget, status)? {
            return Ok(ended);
        }

        if state.scope != self.settings.scope {
            // What the snapshot covers changed (UPDATE of prefix or bucket): start over quietly.
            state.snapshot = Snapshot::default();
            state.cursor = None;
            state.baselined = false;
            state.scope = self.settings.scope.clone();
        }
        let list_budget = budget.with_margin(self.list_margin);
        // Until the first complete pass (the baseline) nothing fires.
        let emit = state.baselined;
        let reserved = self.store.reserved_prefix();
        let limits = PassLimits::poll(self.settings, emit);
        let pass = run_pass_with(self.lister, &state.snapshot, state.cursor.clone(), reserved, &list_budget, limits)
            .map_err(source_error)?;
        let Some(mut pass) = pass else {
            status.outcome = "partial".to_string();
            return Ok(Ended::Normally);
        };
        status.listed = pass.listed;
        // Holding or refuting deletes changes no entry, but must still be committed.
        let deletes_before = (state.stats.held_deletes, state.stats.deletes_refuted);
        if emit {
            self.check_deletes(&mut pass, &mut state, budget, status)?;
        }
        let seq = state.seq + 1;
        let events = if emit {
            build_events(self.lister, self.settings, &self.trigger.to_string(), &pass.changes, seq)
        } else {
            Vec::new()
        };
        status.changes = events.len() as u64;
        let progressed = !pass.changes.is_empty()
            || pass.cursor != state.cursor
            || !state.baselined
            || (state.stats.held_deletes, state.stats.deletes_refuted) != deletes_before;
        if pass.cursor.is_none() {
            state.baselined = true;
        } else {
            status.outcome = "partial".to_string();
        }
        state.cursor = pass.cursor;
        state.snapshot = pass.snapshot;
        state.outbox.extend(events);
        if progressed {
            state.seq = seq;
            state.stats.objects = state.snapshot.len() as u64;
            state.stats.last_change_ms = Some(now_ms());
            etag = match self.store.commit(&state, &etag) {
                Ok(etag) => etag,
                Err(crate::source::StoreError::Conflict) => {
                    // Another poll committed first: it owns these changes; fire nothing.
                    status.outcome = "conflict".to_string();
                    return Ok(Ended::Normally);
                }
                Err(e) => return Err(ActionError::new(format!("committing the feed state: {e}"))),
            };
        }
        Ok(self.deliver(&mut state, &mut etag, budget, status)?.unwrap_or(Ended::Normally))
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
            whole: state.cursor.is_none() && pass.cursor.is_none(),
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
        if state.outbox.is_empty() {
            return Ok(None);
        }
        let mut pace = self.pace.borrow_mut();
        let batch = paced_batch(self.settings.batch, state.outbox.len(), &pace, budget);
        let report = deliver_paced(self.client, self.trigger, &state.outbox, batch, budget, &mut pace);
        if report.delivered > 0 {
            state.outbox.drain(..report.delivered);
            state.stats.events_fired += report.delivered as u64;
            status.fired += report.delivered as u64;
            // A failed commit here only means these events fire again, with the same ids.
            *etag = match self.store.commit(state, etag) {
                Ok(etag) => etag,
                Err(crate::source::StoreError::Conflict) => {
                    status.outcome = "conflict".to_string();
                    status.pending = state.outbox.len() as u64;
                    return Ok(Some(Ended::Normally));
                }
                Err(e) => return Err(ActionError::new(format!("committing delivered events: {e}"))),
            };
        }
        status.pending = state.outbox.len() as u64;
        match report.outcome {
            DeliveryOutcome::Done => Ok(None),
            DeliveryOutcome::OutOfTime => {
                status.outcome = "partial".to_string();
                Ok(Some(Ended::Normally))
            }
            DeliveryOutcome::TriggerGone => Ok(Some(Ended::TriggerGone)),
            DeliveryOutcome::Failed(msg) => Err(ActionError::new(msg)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{BlobStore, Entry};
    use crate::state::version_hash;

    /// A sorted in-memory listing, paged like a server would.
    struct Memory {
        entries: Vec<Entry>,
        page: usize,
    }

    impl Lister for Memory {
        fn source_uri(&self) -> String {
            "memory:".to_string()
        }
        fn event_type_prefix(&self) -> &'static str {
            "test.memory"
        }
        fn data_context(&self) -> Map<String, Value> {
            Map::new()
        }
        fn probe(&self) -> Result<(), SourceError> {
            Ok(())
        }
        fn list(&self, range: &ListRange, page: &mut dyn FnMut(Vec<Entry>) -> Flow) -> Result<bool, SourceError> {
            let inside: Vec<Entry> = self
                .entries
                .iter()
                .filter(|e| range.start_after.as_deref().is_none_or(|a| e.key.as_str() > a))
                .filter(|e| range.end_before.as_deref().is_none_or(|b| e.key.as_str() < b))
                .cloned()
                .collect();
            for chunk in inside.chunks(self.page) {
                if page(chunk.to_vec()) == Flow::Stop {
                    return Ok(false);
                }
            }
            Ok(true)
        }
        fn blob_store(&self) -> Option<Box<dyn BlobStore>> {
            None
        }
    }

    fn entry(key: String, version: u64) -> Entry {
        Entry { key, version: version.to_string(), attrs: Map::new() }
    }

    /// (old snapshot, new listing) with creates, updates and deletes spread over the keys.
    fn case(seed: u64, n: usize) -> (Snapshot, Vec<Entry>) {
        let mut x = seed | 1;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut old = SnapshotWriter::new();
        let mut new = Vec::new();
        for i in 0..n {
            let key = format!("k/{:05}/{}", i, rnd() % 3);
            let r = rnd() % 10;
            if r != 0 {
                old.push(&key, version_hash("1")).unwrap();
            }
            match r {
                1 => {}                       // deleted
                2 => new.push(entry(key, 2)), // updated
                _ => new.push(entry(key, 1)), // unchanged or created (r == 0)
            }
        }
        (old.finish(), new)
    }

    fn limits(parallelism: usize, max_changes: usize) -> PassLimits {
        PassLimits { parallelism, min_keys_per_range: 1, emit: true, max_changes, progress: false }
    }

    fn keys(changes: &[Change]) -> Vec<(&'static str, String)> {
        changes.iter().map(|c| (c.kind.as_str(), c.key.clone())).collect()
    }

    #[test]
    fn parallel_ranges_give_exactly_the_sequential_pass() {
        let budget = Budget::new(None, Duration::ZERO);
        for seed in 1..40u64 {
            let (old, new) = case(seed, 50 + (seed as usize * 7) % 200);
            let lister = Memory { entries: new, page: 1 + seed as usize % 7 };
            let seq = run_pass_with(&lister, &old, None, None, &budget, limits(1, usize::MAX)).unwrap().unwrap();
            for n in 2..6 {
                let par = run_pass_with(&lister, &old, None, None, &budget, limits(n, usize::MAX)).unwrap().unwrap();
                assert_eq!(par.snapshot, seq.snapshot, "seed {seed}, {n} ranges");
                assert_eq!(keys(&par.changes), keys(&seq.changes), "seed {seed}, {n} ranges");
                assert_eq!(par.cursor, None);
            }
        }
    }

    #[test]
    fn passes_cut_by_max_changes_resume_to_the_full_result_with_each_change_once() {
        let budget = Budget::new(None, Duration::ZERO);
        for seed in 1..25u64 {
            let (old, mut new) = case(seed, 300);
            if seed % 2 == 0 {
                // The tail of the bucket is gone: most changes are deletes past the listing.
                new.truncate(new.len() / 3);
            }
            let lister = Memory { entries: new, page: 3 };
            let full = run_pass_with(&lister, &old, None, None, &budget, limits(1, usize::MAX)).unwrap().unwrap();
            for n in [1, 3] {
                let mut snapshot = old.clone();
                let mut cursor: Option<String> = None;
                let mut seen = Vec::new();
                for round in 0.. {
                    assert!(round < 500, "seed {seed}: no convergence");
                    let pass = run_pass_with(&lister, &snapshot, cursor.clone(), None, &budget, limits(n, 7))
                        .unwrap()
                        .unwrap();
                    // A page (3 entries) may overshoot the cap; each range stops on its own.
                    assert!(pass.changes.len() <= n * (7 + 3), "seed {seed}: {} changes", pass.changes.len());
                    seen.extend(keys(&pass.changes));
                    snapshot = pass.snapshot;
                    cursor = pass.cursor;
                    if cursor.is_none() {
                        break;
                    }
                }
                let mut want = keys(&full.changes);
                want.sort();
                seen.sort();
                assert_eq!(seen, want, "seed {seed}, {n} ranges: every change exactly once");
                assert_eq!(snapshot, full.snapshot, "seed {seed}, {n} ranges");
            }
        }
    }
}
