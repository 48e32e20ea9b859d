//! Where a feed keeps its per-trigger state: a `State` blob and a small lease/status blob in
//! a `BlobStore` the user already has (for S3 feeds: an object in the bucket itself).
//!
//! Every write of the state is conditional on the version read before (`If-Match`), so two
//! overlapping polls can never both commit. On top of that a poll holds a lease (the lease
//! blob, written with `If-None-Match`/`If-Match`) while it works, so a second poll that
//! starts meanwhile fires nothing and leaves. This module knows the blob layout only; what a
//! poll does with the state is `polling`'s business.

use serde::{Deserialize, Serialize};

use crate::openwhisk::QualifiedName;
use crate::source::{BlobStore, Precondition, StoreError};
use crate::state::State;

/// The lease and last-poll status of one trigger's poller (a small JSON blob).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LeaseDoc {
    /// The activation holding the lease, if any.
    pub holder: Option<String>,
    /// When the lease ends on its own (epoch ms): the holder's deadline.
    pub expires_ms: u64,
    /// What the last finished poll did.
    pub status: Option<PollStatus>,
}

/// What one poll did, for READ.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PollStatus {
    /// When it started (epoch ms).
    pub started_ms: u64,
    /// How long it ran.
    pub duration_ms: u64,
    /// `ok`, `partial` (deadline: resumes next time), `error`, `busy`, `conflict`.
    pub outcome: String,
    /// The error, when `outcome` is `error` (never holds a secret).
    pub error: Option<String>,
    /// Entries listed.
    pub listed: u64,
    /// Changes detected.
    pub changes: u64,
    /// Events fired.
    pub fired: u64,
    /// Events left in the outbox.
    pub pending: u64,
}

/// A lease this poll holds; its version tag is needed to release it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    etag: String,
    holder: String,
}

/// Why a state read failed.
#[derive(Clone, Debug, PartialEq)]
pub enum LoadError {
    /// The store failed.
    Store(StoreError),
    /// The blob is there but cannot be decoded.
    Corrupt(String),
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoadError::Store(e) => write!(f, "{e}"),
            LoadError::Corrupt(e) => write!(f, "state object is corrupt ({e})"),
        }
    }
}

/// Why a lease could not be taken.
#[derive(Clone, Debug, PartialEq)]
pub enum LeaseError {
    /// Another poll holds it until `expires_ms`.
    Busy {
        /// The other activation.
        holder: String,
        /// When its lease ends.
        expires_ms: u64,
    },
    /// The store failed.
    Store(StoreError),
}

/// One trigger's state in a blob store.
pub struct StateStore {
    blobs: Box<dyn BlobStore>,
    key: String,
}

impl StateStore {
    /// The store for one trigger: blobs `<namespace>/<trigger>.state` and `.lease`.
    pub fn new(blobs: Box<dyn BlobStore>, trigger: &QualifiedName) -> StateStore {
        StateStore { blobs, key: format!("{}/{}", trigger.namespace, trigger.name) }
    }

    fn state_key(&self) -> String {
        format!("{}.state", self.key)
    }

    fn lease_key(&self) -> String {
        format!("{}.lease", self.key)
    }

    /// Where the state lives, for READ.
    pub fn location(&self) -> String {
        self.blobs.describe(&self.state_key())
    }

    /// Keys the listing must ignore (the store's own objects, when they live in the source).
    pub fn reserved_prefix(&self) -> Option<String> {
        self.blobs.reserved_prefix()
    }

    /// Reads the state and its version tag; `Ok(None)` when there is none.
    pub fn load(&self) -> Result<Option<(State, String)>, LoadError> {
        match self.blobs.get(&self.state_key()).map_err(LoadError::Store)? {
            None => Ok(None),
            Some(blob) => match State::decode(&blob.bytes) {
                Ok(state) => Ok(Some((state, blob.etag))),
                Err(e) => Err(LoadError::Corrupt(e.to_string())),
            },
        }
    }

    /// Writes the first state; fails with `Conflict` when one exists.
    pub fn create(&self, state: &State) -> Result<String, StoreError> {
        self.blobs.put(&self.state_key(), &state.encode(), &Precondition::IfAbsent)
    }

    /// Replaces the state only if it is still at `etag`; returns the new tag.
    pub fn commit(&self, state: &State, etag: &str) -> Result<String, StoreError> {
        self.blobs.put(&self.state_key(), &state.encode(), &Precondition::IfMatch(etag.to_string()))
    }

    /// Replaces whatever is stored (recovery from a corrupt state only).
    pub fn overwrite(&self, state: &State) -> Result<String, StoreError> {
        self.blobs.put(&self.state_key(), &state.encode(), &Precondition::None)
    }

    /// Removes the state and the lease; missing blobs are fine.
    pub fn delete_all(&self) -> Result<(), StoreError> {
        self.blobs.delete(&self.state_key())?;
        self.blobs.delete(&self.lease_key())
    }

    /// Reads the lease document (status of the last poll).
    pub fn lease_doc(&self) -> Result<Option<(LeaseDoc, String)>, StoreError> {
        match self.blobs.get(&self.lease_key())? {
            None => Ok(None),
            // A damaged lease blob only costs the status; it is rewritten by the next poll.
            Some(blob) => Ok(Some((serde_json::from_slice(&blob.bytes).unwrap_or_default(), blob.etag))),
        }
    }

    /// Takes the lease for `holder` until `expires_ms`, unless someone else holds it.
    pub fn acquire(&self, holder: &str, now_ms: u64, expires_ms: u64) -> Result<Lease, LeaseError> {
        let existing = self.lease_doc().map_err(LeaseError::Store)?;
        let (status, condition) = match existing {
            None => (None, Precondition::IfAbsent),
            Some((doc, etag)) => {
                if let Some(other) = doc.holder.filter(|h| h != holder) {
                    if doc.expires_ms > now_ms {
                        return Err(LeaseError::Busy { holder: other, expires_ms: doc.expires_ms });
                    }
                }
                (doc.status, Precondition::IfMatch(etag))
            }
        };
        let doc = LeaseDoc { holder: Some(holder.to_string()), expires_ms, status };
        match self.blobs.put(&self.lease_key(), &to_json(&doc), &condition) {
            Ok(etag) => Ok(Lease { etag, holder: holder.to_string() }),
            Err(StoreError::Conflict) => Err(LeaseError::Busy { holder: "another poll".to_string(), expires_ms }),
            Err(e) => Err(LeaseError::Store(e)),
        }
    }

    /// Gives the lease back and records the poll's status.
    pub fn release(&self, lease: Lease, status: PollStatus) -> Result<(), StoreError> {
        let _ = lease.holder;
        let doc = LeaseDoc { holder: None, expires_ms: 0, status: Some(status) };
        self.blobs.put(&self.lease_key(), &to_json(&doc), &Precondition::IfMatch(lease.etag))?;
        Ok(())
    }

    /// Records a status without a lease (a poll that could not take one).
    pub fn record_status(&self, status: PollStatus) -> Result<(), StoreError> {
        let (mut doc, condition) = match self.lease_doc()? {
            Some((doc, etag)) => (doc, Precondition::IfMatch(etag)),
            None => (LeaseDoc::default(), Precondition::IfAbsent),
        };
        doc.status = Some(status);
        match self.blobs.put(&self.lease_key(), &to_json(&doc), &condition) {
            Ok(_) | Err(StoreError::Conflict) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// True when the store refuses a second `If-None-Match: *` write of the same key: without
    /// that, nothing protects against two overlapping polls (READ says so).
    pub fn probe_conditional_writes(&self) -> Result<bool, StoreError> {
        let key = format!("{}.probe", self.key);
        self.blobs.delete(&key)?;
        self.blobs.put(&key, b"probe", &Precondition::IfAbsent)?;
        let second = self.blobs.put(&key, b"probe", &Precondition::IfAbsent);
        self.blobs.delete(&key)?;
        match second {
            Err(StoreError::Conflict) => Ok(true),
            Ok(_) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

fn to_json(doc: &LeaseDoc) -> Vec<u8> {
    serde_json::to_vec(doc).unwrap_or_default()
}
