//! The polling core's extension point for a feature that has a say over a snapshot pass's
//! changes before the outbox is committed: which of them fire (a change already delivered
//! another way is left out) and what their events carry. S3's reconcile is one
//! (`s3::markers`: changes a push delivered are suppressed, the rest marked `reconciled`); the
//! poll reaches it through the registry the binary passes, never by name.
//!
//! The poll calls, in order: [`ChangeHooks::open`] once per poll (a hook only for a feed
//! whose config asks for it), [`ChangeHook::before_listing`] before the source is listed,
//! [`ChangeHook::keep`] and [`ChangeHook::mark`] between the diff and the commit, and
//! [`ChangeHook::after_whole_listing`] once a whole (not resumed, not cut) listing committed.

use serde_json::Value;

use crate::change::Change;
use crate::openwhisk::QualifiedName;
use crate::params::Params;
use crate::runtime::ActionError;
use crate::source::Source;

/// One registered kind of change hook (a line of `registry::CHANGE_HOOKS`).
pub trait ChangeHooks: Sync {
    /// This poll's hook for `trigger` of a snapshot `source` whose config is `params`;
    /// `None` when the config does not ask for it.
    fn open(
        &self,
        params: &Params,
        source: &dyn Source,
        trigger: &QualifiedName,
    ) -> Result<Option<Box<dyn ChangeHook>>, ActionError>;
}

/// A feature's say over one poll's changes.
pub trait ChangeHook {
    /// Before the listing: reads what judging needs (`whole_listing_started_ms`: when the
    /// previous whole listing started, from the state).
    fn before_listing(&mut self, whole_listing_started_ms: Option<u64>) -> Result<(), ActionError>;
    /// The changes that fire, in order (those delivered another way left out).
    fn keep(&self, changes: &[Change]) -> Vec<Change>;
    /// Marks the events built from the kept changes.
    fn mark(&self, events: &mut [Value]);
    /// After a whole listing committed: what it judged by is no longer needed.
    fn after_whole_listing(&self);
}

/// The hooks of every registered kind that this poll's config asks for.
pub fn open_all(
    hooks: &[&dyn ChangeHooks],
    params: &Params,
    source: &dyn Source,
    trigger: &QualifiedName,
) -> Result<Vec<Box<dyn ChangeHook>>, ActionError> {
    let mut out = Vec::new();
    for kind in hooks {
        out.extend(kind.open(params, source, trigger)?);
    }
    Ok(out)
}
