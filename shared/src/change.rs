//! What the core detects or reads, below both the plugin contract (`source`) and the event
//! builder (`events`), so neither imports the other: an `Entry` a snapshot source lists, and
//! a `Change` (created, updated or deleted) the core derives from entries or from a log
//! source's records (`Record`). Plain data, no I/O.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One listed item: a key, an opaque version, and attributes that go into event data.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// The entry's unique key (an S3 object key).
    pub key: String,
    /// Changes whenever the entry's content changes (an ETag, or LastModified+Size).
    pub version: String,
    /// Extra facts for the event's `data` (etag, size, lastModified…).
    pub attrs: Map<String, Value>,
}

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

/// One record read from a log.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    /// The record's own identity: one change of the source's log, the same whenever the
    /// source sends that change again (CouchDB: sequence, rev and doc id); the core derives
    /// the event id from it, never from a poll's number.
    pub id: String,
    /// The key the record is about (a document id): the event's subject, what `prefix`
    /// and `suffix` filters match.
    pub key: String,
    /// Created, updated or deleted, as well as the source can tell.
    pub kind: ChangeKind,
    /// Facts for the event's `data` (rev, seq, the document…).
    pub attrs: Map<String, Value>,
    /// When the record was written, if the log says (a message's own timestamp): the event's
    /// `time`; without it, when it was read.
    pub time: Option<chrono::DateTime<chrono::Utc>>,
}
