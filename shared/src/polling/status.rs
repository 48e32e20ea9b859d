//! What READ shows of a polling feed under `status`: its one definition. The feed, the stall
//! report (`crate::stall`) and the log poller each fill their part; README's table of READ's
//! fields is checked against [`ReadStatus::fields`] (tests/suite/tidy.rs).

use serde::Serialize;
use serde_json::Value;

use super::scheduler::SchedulerStatus;
use crate::stall::{LastPoll, LeaseView, PollHistory};
use crate::state::Rebaseline;
use crate::store::{Dialect, PollOutcome, NO_CONDITIONAL_WRITES};

/// The status of a polling feed, as READ shows it.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadStatus {
    /// True while polls run for it: registered, not paused, and its scheduler works.
    pub active: bool,
    /// True while paused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paused: Option<bool>,
    /// True once registered with the namespace scheduler (false: it still has its own alarm).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registered: Option<bool>,
    /// The rule that runs its polls.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// The polling alarm's health, as the alarms provider reports it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alarm: Option<Value>,
    /// Why no polls run, with what fixes it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// The feed's own rule could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The namespace scheduler's picture (or why the feed is not registered with it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheduler: Option<SchedulerView>,
    /// When the next poll is due (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_poll: Option<String>,
    /// How the state store takes conditional writes.
    #[serde(flatten)]
    pub writes: Option<WriteDialect>,
    /// Settings not to overlook (a private CA, verification turned off).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notices: Vec<String>,
    /// Where the state object lives.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// How the state is authenticated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state_authentication: Option<&'static str>,
    /// What an unauthenticated state exposes, and the command that fixes it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state_warning: Option<String>,
    /// The state is missing, rejected, or cannot be read now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state_error: Option<String>,
    /// Why the lease object was not trusted (it is ignored).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease_rejected: Option<String>,
    /// The lease object could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease_error: Option<String>,
    /// The stored config no longer opens its source.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config_error: Option<String>,
    /// The newest time the state was set anew, until an UPDATE acknowledges it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rebaselined: Option<Rebaselined>,
    /// Events committed and not yet fired.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events_pending: Option<usize>,
    /// Events fired since the feed was created.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events_fired: Option<u64>,
    /// A snapshot source's facts.
    #[serde(flatten)]
    pub snapshot: Option<SnapshotFacts>,
    /// A log source's facts.
    #[serde(flatten)]
    pub log: Option<LogFacts>,
    /// The polls: newest outcome, progress, stall, lease.
    #[serde(flatten)]
    pub polls: Option<PollHistory>,
    /// How long the newest recorded poll took.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_poll_duration_ms: Option<u64>,
}

/// READ's `scheduler`: the namespace's picture, or how a feed with its own alarm will move.
#[derive(Clone, Debug, Serialize)]
#[serde(untagged)]
pub enum SchedulerView {
    /// Registered with the namespace scheduler: its picture.
    Registered(Box<SchedulerStatus>),
    /// A feed made before the scheduler: what will move it there.
    NotRegistered(String),
}

/// READ's `conditionalWrites`, `conditionalWriteDialect` and, when writes are unconditional,
/// `conditionalWritesWarning` (CREATE and UPDATE show the same).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WriteDialect {
    /// False when the store ignores conditional headers.
    pub conditional_writes: bool,
    /// `quoted`, `unquoted` or `none`.
    pub conditional_write_dialect: &'static str,
    /// What unconditional writes mean for the feed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conditional_writes_warning: Option<&'static str>,
}

impl WriteDialect {
    /// The fields for `dialect`.
    pub fn of(dialect: Dialect) -> WriteDialect {
        WriteDialect {
            conditional_writes: dialect.conditional(),
            conditional_write_dialect: dialect.as_str(),
            conditional_writes_warning: (!dialect.conditional()).then_some(NO_CONDITIONAL_WRITES),
        }
    }
}

/// READ's `rebaselined`: when, why, what caused it, and the command that acknowledges it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Rebaselined {
    /// When (RFC 3339).
    pub at: String,
    /// What happened, and what was or was not reported.
    pub reason: String,
    /// `missing`, `rejected`, `scope` or `cursor`.
    pub cause: String,
    /// The cursor it replaced (log sources).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_cursor: Option<String>,
    /// The command that clears it.
    pub acknowledge: String,
}

impl Rebaselined {
    /// The re-baseline `record` as READ shows it, unless an UPDATE at `acknowledged_ms` or
    /// later acknowledged it.
    pub fn shown(record: Option<&Rebaseline>, acknowledged_ms: u64, trigger: &str) -> Option<Rebaselined> {
        let r = record.filter(|r| r.at_ms > acknowledged_ms)?;
        Some(Rebaselined {
            at: super::iso(r.at_ms),
            reason: r.reason.clone(),
            cause: r.cause.clone(),
            previous_cursor: r.previous_cursor.clone(),
            acknowledge: format!("wsk trigger update {trigger}"),
        })
    }
}

/// A snapshot source's facts in READ.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotFacts {
    /// Objects in the stored snapshot.
    pub objects_tracked: usize,
    /// False until the first listing finished (with `fireExisting`, what it found fires).
    pub baselined: bool,
    /// True while a cut listing pass goes on from a resume point.
    pub listing_in_progress: bool,
    /// What the delete checks found so far.
    pub deletes: Deletes,
}

/// READ's `deletes`: deletes checked by HEAD before they fire.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Deletes {
    /// HEAD 404: the object is gone.
    pub confirmed: u64,
    /// HEAD 200: the listing had omitted the object.
    pub refuted: u64,
    /// Held for the next poll's listing.
    pub held_for_next_poll: u64,
}

/// A log source's facts in READ.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LogFacts {
    /// `poll` or `connection`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<&'static str>,
    /// Where the next poll reads (`null`: the start of the log).
    pub cursor: Option<String>,
    /// Records read since the feed was created.
    pub records_read: u64,
    /// True while the source refuses the stored cursor (the feed is stalled there).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursor_rejected: Option<bool>,
    /// How far the cursor is behind the log, where the source can tell.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lag: Option<Value>,
    /// Why the source could not be asked for the lag.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lag_error: Option<String>,
}

impl ReadStatus {
    /// Every top-level field READ can show, by its JSON name: what README's table documents.
    pub fn fields() -> Vec<String> {
        // A literal naming every field (no `..`), so a new field cannot be left out here.
        let every = ReadStatus {
            active: true,
            paused: Some(false),
            registered: Some(true),
            rule: Some(String::new()),
            alarm: Some(Value::Null),
            problem: Some(String::new()),
            error: Some(String::new()),
            scheduler: Some(SchedulerView::NotRegistered(String::new())),
            next_poll: Some(String::new()),
            writes: Some(WriteDialect::of(Dialect::None)),
            notices: vec![String::new()],
            state: Some(String::new()),
            state_authentication: Some(""),
            state_warning: Some(String::new()),
            state_error: Some(String::new()),
            lease_rejected: Some(String::new()),
            lease_error: Some(String::new()),
            config_error: Some(String::new()),
            rebaselined: Some(Rebaselined {
                at: String::new(),
                reason: String::new(),
                cause: String::new(),
                previous_cursor: None,
                acknowledge: String::new(),
            }),
            events_pending: Some(0),
            events_fired: Some(0),
            snapshot: Some(SnapshotFacts {
                objects_tracked: 0,
                baselined: true,
                listing_in_progress: false,
                deletes: Deletes { confirmed: 0, refuted: 0, held_for_next_poll: 0 },
            }),
            log: Some(LogFacts {
                mode: Some(""),
                cursor: None,
                records_read: 0,
                cursor_rejected: Some(true),
                lag: Some(Value::Null),
                lag_error: Some(String::new()),
            }),
            polls: Some(PollHistory {
                last: Some(LastPoll {
                    last_poll: String::new(),
                    last_outcome: PollOutcome::Ok,
                    last_error: None,
                    last_outcome_from: "",
                }),
                polls_without_progress: 0,
                last_progress: Some(String::new()),
                no_progress_for_ms: Some(0),
                stalled: true,
                stall_reason: Some(String::new()),
                lease: Some(LeaseView { holder: None, until: None, expired: None }),
                poll_activations_error: Some(String::new()),
            }),
            last_poll_duration_ms: Some(0),
        };
        super::field_names(every)
    }

    /// As JSON, for READ's result.
    pub fn to_value(&self) -> Value {
        // Plain data with string keys: serialising cannot fail.
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_named_as_readme_shows_them() {
        let fields = ReadStatus::fields();
        for name in ["active", "nextPoll", "conditionalWritesWarning", "objectsTracked", "heldForNextPoll"] {
            assert_eq!(fields.iter().any(|f| f == name), name != "heldForNextPoll", "{name}: {fields:?}");
        }
        assert!(fields.iter().any(|f| f == "lastOutcomeFrom") && fields.iter().any(|f| f == "lagError"));
    }

    #[test]
    fn an_empty_status_shows_only_active() {
        assert_eq!(ReadStatus::default().to_value(), serde_json::json!({ "active": false }));
    }

    #[test]
    fn a_rebaseline_shows_until_acknowledged() {
        let r = Rebaseline {
            at_ms: 2_000,
            reason: "gone".into(),
            previous_cursor: Some("1".into()),
            cause: "cursor".into(),
        };
        let shown = Rebaselined::shown(Some(&r), 1_000, "T").expect("newer than the UPDATE");
        let v = serde_json::to_value(&shown).unwrap();
        assert_eq!(v["previousCursor"], "1");
        assert_eq!(v["acknowledge"], "wsk trigger update T");
        assert_eq!(v["cause"], "cursor");
        assert!(Rebaselined::shown(Some(&r), 2_000, "T").is_none(), "acknowledged by an UPDATE at or after it");
        assert!(Rebaselined::shown(None, 0, "T").is_none());
    }
}
