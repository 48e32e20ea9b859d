//! Where a feed keeps its per-trigger state: a `State` blob and a small lease/status blob in
//! a `BlobStore` the user already has (for S3 feeds: an object in the bucket itself).
//!
//! Every write of the state is conditional on the version read before (`If-Match`), so two
//! overlapping polls can never both commit. On top of that a poll holds a lease (the lease
//! blob, written with `If-None-Match`/`If-Match`) while it works, so a second poll that
//! starts meanwhile fires nothing and leaves; a lease past its expiry is taken over. Stores
//! differ in how they take conditions (`Dialect`): `probe_dialect` finds out on a scratch
//! blob, and a refused write over a version just read re-probes once. This module knows the
//! blob layout only; what a poll does with the state is `polling`'s business.

use std::cell::Cell;

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
    /// How it ended.
    pub outcome: PollOutcome,
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
    /// Deletes confirmed gone before they were reported.
    #[serde(default)]
    pub deletes_confirmed: u64,
    /// Deletes refuted: the object still exists, the listing had omitted it.
    #[serde(default)]
    pub deletes_refuted: u64,
    /// Deletes held for one more poll (the listing shrank dramatically, or time ran out).
    #[serde(default)]
    pub deletes_held: u64,
}

/// How a poll ended. Stored in the lease blob, shown by READ (`lastOutcome`) and in the poll's
/// result (`status`) under the names of `as_str`, which are part of the stored format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum PollOutcome {
    /// Everything found was committed and fired.
    Ok,
    /// Cut by the deadline or a limit; the next poll resumes.
    Partial,
    /// Missing or corrupt state replaced by a silent baseline.
    Rebaselined,
    /// Another poll held the lease; this one did nothing.
    Busy,
    /// Another poll committed first; this one fired nothing.
    Conflict,
    /// The poll failed (the error says why).
    Error,
    /// The user's trigger is gone: the poll removed the feed's helpers and state.
    TriggerGone,
    /// A name this build does not know (written by another release).
    #[default]
    Unknown,
}

impl PollOutcome {
    /// Every outcome but `Unknown`.
    pub const ALL: [PollOutcome; 7] = [
        PollOutcome::Ok,
        PollOutcome::Partial,
        PollOutcome::Rebaselined,
        PollOutcome::Busy,
        PollOutcome::Conflict,
        PollOutcome::Error,
        PollOutcome::TriggerGone,
    ];

    /// The stored and shown name.
    pub fn as_str(self) -> &'static str {
        match self {
            PollOutcome::Ok => "ok",
            PollOutcome::Partial => "partial",
            PollOutcome::Rebaselined => "rebaselined",
            PollOutcome::Busy => "busy",
            PollOutcome::Conflict => "conflict",
            PollOutcome::Error => "error",
            PollOutcome::TriggerGone => "trigger gone: feed removed",
            PollOutcome::Unknown => "unknown",
        }
    }

    /// The outcome called `name`; `Unknown` for any other name.
    pub fn parse(name: &str) -> PollOutcome {
        PollOutcome::ALL.into_iter().find(|o| o.as_str() == name).unwrap_or(PollOutcome::Unknown)
    }

    /// True for the outcomes that moved the feed forward.
    pub fn progressed(self) -> bool {
        matches!(self, PollOutcome::Ok | PollOutcome::Partial | PollOutcome::Rebaselined)
    }
}

impl From<String> for PollOutcome {
    fn from(name: String) -> PollOutcome {
        PollOutcome::parse(&name)
    }
}

impl From<PollOutcome> for String {
    fn from(outcome: PollOutcome) -> String {
        outcome.as_str().to_string()
    }
}

impl std::fmt::Display for PollOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
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

/// How a store wants conditional writes sent. Stores differ (some refuse the quoted
/// `If-Match`, some ignore conditional headers): CREATE probes the store and the feed's
/// config keeps the answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// `If-None-Match: *` and `If-Match: "<etag>"` (RFC 7232; AWS, moto, MinIO).
    Quoted,
    /// `If-None-Match: *` and `If-Match: <etag>` without quotes (DigitalOcean Spaces and others).
    Unquoted,
    /// The store's conditional writes cannot be trusted: writes are unconditional, and two
    /// overlapping polls may both fire a change (with the same event id).
    None,
}

impl Dialect {
    /// The name kept in the feed config (`conditionalWriteDialect`).
    pub fn as_str(self) -> &'static str {
        match self {
            Dialect::Quoted => "quoted",
            Dialect::Unquoted => "unquoted",
            Dialect::None => "none",
        }
    }

    /// Reads a stored name; `None` for anything else.
    pub fn parse(name: &str) -> Option<Dialect> {
        match name {
            "quoted" => Some(Dialect::Quoted),
            "unquoted" => Some(Dialect::Unquoted),
            "none" => Some(Dialect::None),
            _ => None,
        }
    }

    /// True when the store enforces conditional writes in this dialect.
    pub fn conditional(self) -> bool {
        self != Dialect::None
    }
}

/// What READ and CREATE say when a store's conditional writes cannot be trusted.
pub const NO_CONDITIONAL_WRITES: &str = "the state store does not enforce conditional writes: two overlapping \
polls may both fire the same change (the events carry the same id, so a consumer can drop the duplicate); \
keep the polling interval longer than a poll takes";

/// What probing a store's conditional writes found (CREATE's result; the conformance table).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DialectProbe {
    /// `If-None-Match: *` on an absent key was accepted.
    pub if_none_match_absent: bool,
    /// `If-None-Match: *` on a present key was refused.
    pub if_none_match_present_refused: bool,
    /// `If-Match: "<current etag>"` was accepted.
    pub if_match_quoted: bool,
    /// `If-Match: <current etag>` was accepted.
    pub if_match_unquoted: bool,
    /// `If-Match` with a stale ETag (in the working form) was refused.
    pub stale_refused: bool,
    /// The dialect the feed uses.
    #[serde(serialize_with = "dialect_name")]
    pub dialect: Dialect,
}

fn dialect_name<S: serde::Serializer>(d: &Dialect, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(d.as_str())
}

/// One trigger's state in a blob store.
pub struct StateStore {
    blobs: Box<dyn BlobStore>,
    key: String,
    dialect: Cell<Dialect>,
    /// Set once this store re-probed (at most once per poll).
    reprobed: Cell<bool>,
    /// The dialect a re-probe found, when it differs from the configured one.
    changed: Cell<Option<Dialect>>,
}

impl StateStore {
    /// The store for one trigger: blobs `<namespace>/<trigger>.state` and `.lease`, written in
    /// the `quoted` dialect until `with_dialect` says otherwise.
    pub fn new(blobs: Box<dyn BlobStore>, trigger: &QualifiedName) -> StateStore {
        StateStore {
            blobs,
            key: format!("{}/{}", trigger.namespace, trigger.name),
            dialect: Cell::new(Dialect::Quoted),
            reprobed: Cell::new(false),
            changed: Cell::new(None),
        }
    }

    /// The same store, writing in `dialect`.
    pub fn with_dialect(self, dialect: Dialect) -> StateStore {
        self.dialect.set(dialect);
        self
    }

    /// The dialect writes use now.
    pub fn dialect(&self) -> Dialect {
        self.dialect.get()
    }

    /// The dialect a re-probe switched to during this poll, if any (to record in the config).
    pub fn dialect_changed(&self) -> Option<Dialect> {
        self.changed.get()
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
        self.put_checked(&self.state_key(), &state.encode(), None)
    }

    /// Replaces the state only if it is still at `etag`; returns the new tag.
    pub fn commit(&self, state: &State, etag: &str) -> Result<String, StoreError> {
        self.put_checked(&self.state_key(), &state.encode(), Some(etag))
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

    /// Takes the lease for `holder` until `expires_ms`, unless someone else holds it and it
    /// has not expired. An expired lease is always taken over.
    pub fn acquire(&self, holder: &str, now_ms: u64, expires_ms: u64) -> Result<Lease, LeaseError> {
        let existing = self.lease_doc().map_err(LeaseError::Store)?;
        let (status, etag) = match existing {
            None => (None, None),
            Some((doc, etag)) => {
                if let Some(other) = doc.holder.filter(|h| h != holder) {
                    if doc.expires_ms > now_ms {
                        return Err(LeaseError::Busy { holder: other, expires_ms: doc.expires_ms });
                    }
                }
                (doc.status, Some(etag))
            }
        };
        let doc = LeaseDoc { holder: Some(holder.to_string()), expires_ms, status };
        let etag = match self.put_checked(&self.lease_key(), &to_json(&doc), etag.as_deref()) {
            Ok(etag) => etag,
            Err(StoreError::Conflict) => {
                // Someone wrote the lease between our read and our write: say who, if we can.
                return Err(match self.lease_doc() {
                    Ok(Some((LeaseDoc { holder: Some(other), expires_ms, .. }, _))) => {
                        LeaseError::Busy { holder: other, expires_ms }
                    }
                    _ => LeaseError::Busy { holder: "another poll".to_string(), expires_ms },
                });
            }
            Err(e) => return Err(LeaseError::Store(e)),
        };
        if !self.dialect().conditional() {
            // Nothing refuses a second writer: read back, and leave if another poll won.
            if let Ok(Some((LeaseDoc { holder: Some(other), expires_ms, .. }, _))) = self.lease_doc() {
                if other != holder {
                    return Err(LeaseError::Busy { holder: other, expires_ms });
                }
            }
        }
        Ok(Lease { etag, holder: holder.to_string() })
    }

    /// Gives the lease back and records the poll's status.
    pub fn release(&self, lease: Lease, status: PollStatus) -> Result<(), StoreError> {
        let _ = lease.holder;
        let doc = LeaseDoc { holder: None, expires_ms: 0, status: Some(status) };
        self.put_checked(&self.lease_key(), &to_json(&doc), Some(&lease.etag))?;
        Ok(())
    }

    /// Records a status without a lease (a poll that could not take one).
    pub fn record_status(&self, status: PollStatus) -> Result<(), StoreError> {
        let (mut doc, etag) = match self.lease_doc()? {
            Some((doc, etag)) => (doc, Some(etag)),
            None => (LeaseDoc::default(), None),
        };
        doc.status = Some(status);
        match self.put_checked(&self.lease_key(), &to_json(&doc), etag.as_deref()) {
            Ok(_) | Err(StoreError::Conflict) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The precondition for a write over `etag` (`None`: the key must be absent) in the
    /// current dialect.
    fn condition(&self, etag: Option<&str>) -> Precondition {
        match (self.dialect(), etag) {
            (Dialect::None, _) => Precondition::None,
            (_, None) => Precondition::IfAbsent,
            (Dialect::Quoted, Some(e)) => Precondition::IfMatch(e.to_string()),
            (Dialect::Unquoted, Some(e)) => Precondition::IfMatchUnquoted(e.to_string()),
        }
    }

    /// A conditional write. A refusal of a write over an ETag we just read may mean the store
    /// speaks another dialect than the one recorded: re-probe once, and when the dialect
    /// changed, write again in the new one (the caller records it in the config).
    fn put_checked(&self, key: &str, bytes: &[u8], etag: Option<&str>) -> Result<String, StoreError> {
        let result = self.blobs.put(key, bytes, &self.condition(etag));
        let suspicious = match &result {
            Err(StoreError::Conflict) => etag.is_some(),
            Err(StoreError::Unsupported(_)) => true,
            _ => false,
        };
        if !suspicious || self.reprobed.replace(true) {
            return result;
        }
        let before = self.dialect();
        let found = self.probe_dialect()?.dialect;
        // A store that just refused a condition does enforce conditions: a probe answering
        // `none` now is noise (another poll probing at the same moment), not a new dialect.
        if found == before || !found.conditional() {
            return result;
        }
        crate::runtime::log(&format!(
            "state store: conditional writes re-probed: dialect {} (was {})",
            found.as_str(),
            before.as_str()
        ));
        self.dialect.set(found);
        self.changed.set(Some(found));
        self.blobs.put(key, bytes, &self.condition(etag))
    }

    /// Probes which conditional writes the store honours, on a scratch key next to the
    /// state: `If-None-Match: *` on an absent and a present key, `If-Match` with the current
    /// ETag quoted and unquoted, and a stale ETag, which must be refused.
    pub fn probe_dialect(&self) -> Result<DialectProbe, StoreError> {
        // A key of its own per probe, so two polls re-probing at once do not meet.
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
        let key = format!("{}.probe-{nanos:x}-{:x}", self.key, std::process::id());
        // Each write has distinct bytes, so each has a distinct ETag.
        let accepted = |n: u8, condition: Precondition| -> Result<Option<String>, StoreError> {
            match self.blobs.put(&key, format!("probe {n}").as_bytes(), &condition) {
                Ok(etag) => Ok(Some(etag)),
                Err(StoreError::Conflict | StoreError::Unsupported(_)) => Ok(None),
                Err(e) => Err(e),
            }
        };
        self.blobs.delete(&key)?;
        let absent = accepted(1, Precondition::IfAbsent)?.is_some();
        if !absent {
            self.blobs.put(&key, b"probe 1", &Precondition::None)?;
        }
        let present_refused = accepted(2, Precondition::IfAbsent)?.is_none();
        let first = self.blobs.get(&key)?.map(|b| b.etag).unwrap_or_default();
        let mut current = first.clone();
        let quoted = accepted(3, Precondition::IfMatch(current.clone()))?;
        if let Some(etag) = &quoted {
            current = etag.clone();
        }
        let unquoted = accepted(4, Precondition::IfMatchUnquoted(current.clone()))?;
        let working = match (&quoted, &unquoted) {
            (Some(_), _) => Some(Dialect::Quoted),
            (None, Some(_)) => Some(Dialect::Unquoted),
            (None, None) => None,
        };
        let stale_refused = match working {
            Some(Dialect::Unquoted) => accepted(5, Precondition::IfMatchUnquoted(first.clone()))?.is_none(),
            Some(_) => accepted(5, Precondition::IfMatch(first.clone()))?.is_none(),
            None => false,
        };
        self.blobs.delete(&key)?;
        let trusted = absent && present_refused && stale_refused && !first.is_empty();
        let dialect = match working {
            Some(d) if trusted => d,
            _ => Dialect::None,
        };
        Ok(DialectProbe {
            if_none_match_absent: absent,
            if_none_match_present_refused: present_refused,
            if_match_quoted: quoted.is_some(),
            if_match_unquoted: unquoted.is_some(),
            stale_refused,
            dialect,
        })
    }
}

fn to_json(doc: &LeaseDoc) -> Vec<u8> {
    serde_json::to_vec(doc).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poll_outcomes_keep_their_stored_names() {
        // The names are in lease blobs written by earlier releases and in READ: they must not change.
        let names: Vec<&str> = PollOutcome::ALL.iter().map(|o| o.as_str()).collect();
        assert_eq!(names, ["ok", "partial", "rebaselined", "busy", "conflict", "error", "trigger gone: feed removed"]);
        for outcome in PollOutcome::ALL {
            assert_eq!(PollOutcome::parse(outcome.as_str()), outcome);
            let json = serde_json::to_value(outcome).unwrap();
            assert_eq!(json, serde_json::json!(outcome.as_str()));
            assert_eq!(serde_json::from_value::<PollOutcome>(json).unwrap(), outcome);
        }
        assert_eq!(PollOutcome::parse("from a newer release"), PollOutcome::Unknown);
    }

    #[test]
    fn a_lease_blob_of_an_earlier_release_still_decodes() {
        let stored = r#"{"holder":null,"expiresMs":5,"status":{"startedMs":1,"durationMs":2,"outcome":"partial",
            "error":null,"listed":3,"changes":0,"fired":0,"pending":0}}"#;
        let doc: LeaseDoc = serde_json::from_str(stored).unwrap();
        let status = doc.status.unwrap();
        assert_eq!(status.outcome, PollOutcome::Partial);
        assert_eq!(serde_json::to_value(&status).unwrap()["outcome"], "partial");
    }
}
