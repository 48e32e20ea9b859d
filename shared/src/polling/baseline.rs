//! A snapshot feed's fresh state: the silent baseline, and the recovery of a missing or
//! rejected state (a log feed's are in `log.rs`).

use super::opened::source_error;
use super::pass::{run_pass_with, PassLimits};
use super::versions::Memo;
use super::PollSettings;
use crate::budget::Budget;
use crate::runtime::ActionError;
use crate::source::{Lister, SourceError};
use crate::state::{Rebaseline, State};
use crate::store::{PollOutcome, PollStatus, StateStore};

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
