//! A poll's outbox: fired in batches the pace allows, and what was delivered committed (the
//! snapshot poll and the log poll alike).

use serde_json::Value;

use super::MAX_BATCH;
use crate::budget::Budget;
use crate::delivery::{DeliveryOutcome, DeliveryReport, Pace};
use crate::runtime::ActionError;
use crate::source::StoreError;
use crate::state::State;
use crate::store::{PollOutcome, PollStatus};

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
