//! The polling pattern, generic over any `Source`: the feed action (`PollingFeed`) and the
//! `poll` action (`poll`).
//!
//! CREATE makes, in the user's namespace and with the user's key: a package binding holding
//! the feed's config (credentials included: never on the shared package), the first state
//! (a baseline, so existing entries do not fire), and registers the trigger with the namespace
//! scheduler (an annotation of that binding), which it makes sure of: one alarm trigger driven
//! by `/whisk.system/alarms` every minute and one rule from it to `poll` through the
//! scheduler's binding, for every polling trigger of the namespace (`scheduler`). Each minute
//! the tick (`tick`) reads the due triggers' configs and polls them. A failed CREATE undoes
//! what it made.
//!
//! A poll takes the lease, delivers what an earlier poll left in the outbox, lists the source
//! and diffs it against the snapshot (streaming merge), commits the new snapshot with the new
//! events appended to the outbox (conditional write), then fires the outbox and commits what
//! was delivered. A failed listing changes nothing. When the user's trigger is gone the
//! poller removes its helpers and state.
//!
//! A snapshot source lists, a log source reads after a cursor (`log`); everything here works
//! the same for any source, and names none: the sources, the store a user names for a source
//! without one (S3's `stateBucket`) and the features with a say over a poll's changes (S3's
//! reconcile) come from what the binary passes (`extensions::Extensions`,
//! `crate::registry::POLLING`).
//!
//! Files: `extensions` (what the pattern is given), `change_hook` (the change hook extension
//! point), `helpers` (the per-trigger entities and the baseline), `pass` (one listing pass),
//! `log` (the log data path), `versions` (the version strings kept for sources that ask),
//! `feed` (the feed action), `poll` (one trigger's poll), `scheduler` (the namespace
//! scheduler's entities, registrations and budgets), `tick` (the scheduler's tick). Imports
//! run one way: `feed` and `tick` use `scheduler` and `poll`; those use `log`, `helpers` and
//! `pass`; `helpers` uses `pass`; `pass` uses only the pure modules; `extensions` and
//! `change_hook` use none of them.

mod baseline;
pub mod change_hook;
mod entities;
pub mod extensions;
mod feed;
mod keyspace;
mod log;
mod memory;
mod opened;
mod outbox;
mod pass;
mod poll;
mod scheduler;
mod status;
mod tick;
mod versions;

use std::time::Duration;

use serde_json::Value;

use crate::budget::iso;
use crate::events::Format;
use crate::filter::ChangeFilter;
use crate::params::{ParamError, Params};
use crate::store::Dialect;

pub use feed::PollingFeed;
pub use log::{LogSettings, Mode, OnCursorRejected, Since};
pub use memory::POLL_MEMORY_PARAM;
pub use poll::{dry_run, poll};
pub use scheduler::{
    SchedulerStatus, BUDGET_PARAMS, DEFAULT_FIRE_BURST, DEFAULT_NAMESPACE_CONCURRENCY, DEFAULT_NAMESPACE_FIRES,
    DEFAULT_NAMESPACE_INVOCATIONS,
};
pub use status::ReadStatus;
pub use tick::{CONNECTIONS_PER_ACTIVATION, POLL_THREADS, POLL_TIME};

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
const DEFAULT_MAX_CHANGES_PER_POLL: u64 = 10_000;

/// Config keys the core adds to what the user passed.
const CONFIG_SOURCE: &str = "source";
const CONFIG_TRIGGER: &str = "triggerName";
/// Config key of the state store's conditional-write dialect, found by CREATE's probe.
pub const CONFIG_DIALECT: &str = "conditionalWriteDialect";
/// Config key of when the last UPDATE ran (epoch ms): it acknowledges the re-baselines READ
/// reported until then.
pub const CONFIG_ACKNOWLEDGED: &str = "rebaselinesAcknowledgedMs";

/// The dialect the feed's config records; feeds created before it was recorded use `quoted`.
/// The value is the feed's own note (CREATE writes it over any given), not the user's: one
/// that is not a dialect costs only a re-probe of the store (`StateStore::dialect_changed`).
fn config_dialect(config: &Params) -> Dialect {
    config.str(CONFIG_DIALECT).ok().flatten().and_then(|d| Dialect::parse(&d)).unwrap_or(Dialect::Quoted)
}

/// CREATE's, UPDATE's and READ's words about the dialect.
fn dialect_fields(dialect: Dialect) -> Value {
    serde_json::to_value(status::WriteDialect::of(dialect)).unwrap_or(Value::Null)
}

/// Default of `maxFiresPerMinute`: half of OpenWhisk's default 60 fires per minute and
/// namespace (apache/openwhisk ansible/group_vars/all:82), leaving the rest to the helper alarms
/// (one fire per interval each) and the user's other triggers.
const DEFAULT_MAX_FIRES_PER_MINUTE: u64 = 30;

/// Parameters the core reads for every source (the source reads its own); never secrets.
/// Read by [`PollSettings::from_params`] and the schedule, right here; a new one is added to
/// both, and tests hold README (tests/suite/tidy.rs) and the S3 reconcile (`s3::reconcile`) to
/// this list.
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

/// Parameters the core reads for a log source only (the source must not read them).
pub const LOG_PARAMS: [&str; 3] = ["since", "mode", "onCursorRejected"];

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
    pub fn from_params(params: &Params, source_uri: &str) -> Result<PollSettings, ParamError> {
        let format = match params.str("format")? {
            Some(f) => Format::parse(&f)?,
            None => Format::CloudEvents,
        };
        let batch = params.u64_in("batch", 1, MAX_BATCH)?.unwrap_or(1) as usize;
        let filter = ChangeFilter::from_params(params)?;
        let fire_existing = params.bool("fireExisting")?.unwrap_or(false);
        let scope = format!("{}?prefix={}", source_uri, params.str("prefix")?.unwrap_or_default());
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

/// Default of `parallelism`: key ranges listed at once once the snapshot is large enough.
pub const DEFAULT_PARALLELISM: u64 = 4;

/// The top-level field names `value` serialises with (what README documents of a READ type).
fn field_names(value: impl serde::Serialize) -> Vec<String> {
    match serde_json::to_value(value) {
        Ok(Value::Object(m)) => m.keys().cloned().collect(),
        _ => Vec::new(),
    }
}
