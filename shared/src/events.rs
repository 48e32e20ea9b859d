//! Changes and the events built from them (CloudEvents 1.0 structured JSON, or a source's
//! legacy shape), with deterministic ids. No I/O.
//!
//! CONTRACT (owned by the events helper; types below are fixed, bodies to be written).

use serde::{Deserialize, Serialize};

use crate::source::Entry;

/// What happened to a key between two listings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    /// The key is new.
    Created,
    /// The key's version changed.
    Updated,
    /// The key is gone.
    Deleted,
}

impl ChangeKind {
    /// The lowercase name used in `events` filters and CloudEvents types.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Created => "created",
            ChangeKind::Updated => "updated",
            ChangeKind::Deleted => "deleted",
        }
    }
}

/// One detected change.
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    /// Created, updated or deleted.
    pub kind: ChangeKind,
    /// The key.
    pub key: String,
    /// The listed entry (for created/updated); `None` for deleted.
    pub entry: Option<Entry>,
    /// The 64-bit hash of the version the snapshot held before (updated/deleted).
    pub old_version: Option<u64>,
}
