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
//!
//! # Authentication
//! The store the state lives in may be writable by others (the watched bucket or database is,
//! by whoever uploads into it). So a feed with a `stateKey` (every feed created since keys
//! exist) seals what it writes with it ([`Seal`], HMAC-SHA256 bound to the trigger) and trusts
//! nothing it reads that does not verify: the state (format 2, see `state`), and the lease
//! blob (a `mac` field over the rest of its JSON). A state that does not verify, or that is
//! older than one this feed already wrote (`State::writes` against the newest write number the
//! authenticated lease blob or this process has seen: a rollback), is `LoadError::Corrupt` and
//! never used; a lease blob that does not verify counts as free and its status is ignored.
//! A store opened `remembering` (the poll) keeps the newest authenticated state bytes of each
//! feed in process memory, which no writer of the store can reach: while the poll's process
//! stays warm, a rejected state is replaced by that copy ([`StateStore::last_good`]) instead of
//! a blind re-baseline. Feeds without a key (created before keys existed) read and write format
//! 1 and trust what they read, as before; `reseal` moves them over.

use std::cell::Cell;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::openwhisk::QualifiedName;
use crate::params::{ParamError, Params};
use crate::secret::Secret;
use crate::source::{BlobStore, Precondition, StoreError};
pub use crate::state::Seal;
use crate::state::State;

/// Config key of the feed's state key (HMAC-SHA256 key of its state, lease and push markers).
pub const CONFIG_STATE_KEY: &str = "stateKey";

/// The value of `stateKey` that asks for a freshly generated key.
const NEW_KEY: &str = "new";

/// Shortest key a user may give (a generated one is 64 hex characters, 256 bits).
const MIN_KEY_LEN: usize = 32;

/// What a request's `stateKey` parameter asks for.
#[derive(Clone, Debug, PartialEq)]
pub enum KeyRequest {
    /// Not given: keep the stored key, or generate one where there is none.
    Keep,
    /// `new`: generate a new key (rotation).
    New,
    /// A key chosen by the caller (the hooks feed passes its reconcile the key its receiver holds).
    Given(Secret),
}

/// Reads `stateKey` from a request: `new`, a key of at least 32 characters, or nothing.
/// `null` is refused: a feed never goes back to an unauthenticated state.
pub fn key_request(params: &Params) -> Result<KeyRequest, ParamError> {
    let expected = "new (a generated key), or a key of at least 32 characters without spaces";
    match params.as_map().get(CONFIG_STATE_KEY) {
        None => Ok(KeyRequest::Keep),
        Some(serde_json::Value::String(s)) if s.trim() == NEW_KEY => Ok(KeyRequest::New),
        Some(serde_json::Value::String(s))
            if s.chars().count() >= MIN_KEY_LEN && !s.chars().any(char::is_whitespace) =>
        {
            Ok(KeyRequest::Given(Secret::new(s.clone())))
        }
        Some(serde_json::Value::Null) => Err(ParamError::invalid_secret(
            CONFIG_STATE_KEY,
            "a key (the state of a feed is always authenticated once it has one)",
        )),
        Some(_) => Err(ParamError::invalid_secret(CONFIG_STATE_KEY, expected)),
    }
}

/// The key a stored config holds; `None` for a feed created before keys existed.
pub fn stored_key(config: &Params) -> Option<Secret> {
    config.str(CONFIG_STATE_KEY).ok().flatten().filter(|k| k.chars().count() >= MIN_KEY_LEN).map(Secret::new)
}

/// The key a CREATE or UPDATE stores: the requested one, else `stored` (the config's), else a
/// new one; and whether it differs from `stored` (the state must then be re-sealed).
pub fn resolve_key(request: KeyRequest, stored: Option<Secret>) -> Result<(Secret, bool), String> {
    let key = match (request, &stored) {
        (KeyRequest::Given(key), _) => key,
        (KeyRequest::Keep, Some(kept)) => kept.clone(),
        (KeyRequest::Keep, None) | (KeyRequest::New, _) => Secret::generate("stateKey")?,
    };
    let changed = stored.as_ref() != Some(&key);
    Ok((key, changed))
}

/// The seal of `trigger`'s state, lease and push markers with `key`.
pub fn seal_for(key: &Secret, trigger: &QualifiedName) -> Seal {
    Seal::new(key, &format!("{}/{}", trigger.namespace, trigger.name))
}

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
    /// The write number of the newest state the feed committed, as the last poll knew it: a
    /// stored state with a lower one was put back (a rollback).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub state_writes: u64,
    /// HMAC-SHA256 (hex) of the rest of the document, for a feed with a `stateKey`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// Why the stored blob was not trusted (not stored): it then counts as free, without status.
    #[serde(skip)]
    pub rejected: Option<String>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// The HMAC domain of a lease blob.
const LEASE_DOMAIN: &str = "lease";

/// The lease document's bytes, sealed when there is a key: the MAC covers the JSON of every
/// other field.
fn lease_bytes(seal: Option<&Seal>, doc: &LeaseDoc) -> Vec<u8> {
    let mut doc = LeaseDoc { mac: None, rejected: None, ..doc.clone() };
    if let Some(seal) = seal {
        let unsealed = serde_json::to_vec(&doc).unwrap_or_default();
        doc.mac = Some(seal.tag_hex(LEASE_DOMAIN, &unsealed, crate::state::MAC_LEN));
    }
    serde_json::to_vec(&doc).unwrap_or_default()
}

/// True when `doc`'s `mac` is the whole tag of the rest of it.
fn lease_verifies(seal: &Seal, doc: &LeaseDoc) -> bool {
    let Some(tag) = doc.mac.as_deref().filter(|t| t.len() == 2 * crate::state::MAC_LEN) else { return false };
    let unsealed = serde_json::to_vec(&LeaseDoc { mac: None, rejected: None, ..doc.clone() }).unwrap_or_default();
    seal.verify_hex(LEASE_DOMAIN, &unsealed, tag)
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
    /// Objects in the snapshot when the poll ended (not stored: the poll's result says it,
    /// and the tick admits the next poll by it).
    #[serde(skip)]
    pub tracked: Option<u64>,
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
    /// The blob is there but is not trusted: damaged, not authenticated by the feed's key
    /// (forged, another trigger's, written without a key) or rolled back; the text says which.
    Corrupt(String),
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoadError::Store(e) => write!(f, "{e}"),
            LoadError::Corrupt(e) => write!(f, "state object rejected ({e})"),
        }
    }
}

/// What `StateStore::reseal` did.
#[derive(Clone, Debug, PartialEq)]
pub enum Resealed {
    /// There was no state to re-seal.
    Nothing,
    /// The state (and the lease, when it verified) now carry the new key's seal.
    Done,
    /// The stored state was not trusted under the old key and was left for the next poll to
    /// replace (the text says why).
    Rejected(String),
}

/// Most bytes of state copies the process keeps (see `StateStore::remembering`).
const KEPT_BYTES: usize = 64 << 20;

/// One feed's newest authenticated state bytes, kept in this process.
struct Kept {
    id: String,
    bytes: Vec<u8>,
    writes: u64,
}

/// The newest authenticated state of each feed this process has read or written, oldest first.
static KEPT: Mutex<Vec<Kept>> = Mutex::new(Vec::new());

fn keep(id: &str, bytes: &[u8], writes: u64) {
    let mut kept = KEPT.lock().unwrap_or_else(|e| e.into_inner());
    if kept.iter().any(|k| k.id == id && k.writes > writes) {
        return;
    }
    kept.retain(|k| k.id != id);
    if bytes.len() > KEPT_BYTES {
        return;
    }
    kept.push(Kept { id: id.to_string(), bytes: bytes.to_vec(), writes });
    while kept.iter().map(|k| k.bytes.len()).sum::<usize>() > KEPT_BYTES {
        kept.remove(0);
    }
}

fn kept(id: &str) -> Option<(Vec<u8>, u64)> {
    let kept = KEPT.lock().unwrap_or_else(|e| e.into_inner());
    kept.iter().find(|k| k.id == id).map(|k| (k.bytes.clone(), k.writes))
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
    /// The feed's key; `None` for a feed created before keys existed (nothing authenticated).
    seal: Option<Seal>,
    /// The newest write number this store read or wrote.
    writes: Cell<u64>,
    /// The newest write number an authenticated lease blob named.
    lease_writes: Cell<u64>,
    /// Keep the newest authenticated state in process memory (the poll).
    remember: bool,
}

impl StateStore {
    /// The store for one trigger: blobs `<namespace>/<trigger>.state` and `.lease`, written in
    /// the `quoted` dialect until `with_dialect` says otherwise, unauthenticated until
    /// `with_key` gives the feed's key.
    pub fn new(blobs: Box<dyn BlobStore>, trigger: &QualifiedName) -> StateStore {
        StateStore {
            blobs,
            key: format!("{}/{}", trigger.namespace, trigger.name),
            dialect: Cell::new(Dialect::Quoted),
            reprobed: Cell::new(false),
            changed: Cell::new(None),
            seal: None,
            writes: Cell::new(0),
            lease_writes: Cell::new(0),
            remember: false,
        }
    }

    /// The same store, sealing and verifying with `key` (the config's `stateKey`; `None`
    /// for a feed created before keys existed).
    pub fn with_key(mut self, key: Option<&Secret>) -> StateStore {
        self.seal = key.map(|k| Seal::new(k, &self.key));
        self
    }

    /// The same store, keeping the newest authenticated state in this process's memory, out
    /// of reach of the store's other writers (see `last_good`).
    pub fn remembering(mut self) -> StateStore {
        self.remember = true;
        self
    }

    /// True when the feed's state is authenticated (it has a key).
    pub fn authenticated(&self) -> bool {
        self.seal.is_some()
    }

    /// Where this process keeps this feed's state copy: location, trigger and key.
    fn kept_id(&self) -> Option<String> {
        let seal = self.seal.as_ref().filter(|_| self.remember)?;
        Some(format!("{}\n{}\n{}", self.location(), self.key, seal.fingerprint()))
    }

    /// The newest authenticated state this process read or wrote for this feed, if it still
    /// holds one: what a rejected state is replaced with. Later writes continue its numbering.
    pub fn last_good(&self) -> Option<State> {
        let seal = self.seal.as_ref()?;
        let (bytes, writes) = kept(&self.kept_id()?)?;
        let state = State::decode_sealed(&bytes, seal).ok()?;
        self.writes.set(self.writes.get().max(writes));
        Some(state)
    }

    /// The bytes to write for `state` and their write number.
    fn encoded(&self, state: &State) -> (Vec<u8>, u64) {
        match &self.seal {
            Some(seal) => {
                let writes = self.writes.get().max(self.lease_writes.get()).max(state.writes) + 1;
                (state.encode_sealed(seal, writes), writes)
            }
            None => (state.encode(), state.writes),
        }
    }

    /// Notes a successful write of `bytes` (write number `writes`).
    fn wrote(&self, bytes: &[u8], writes: u64) {
        self.writes.set(writes);
        if let Some(id) = self.kept_id() {
            keep(&id, bytes, writes);
        }
    }

    /// A state write under `etag` (`None`: unconditional when `unconditional`, else only if absent).
    fn write_state(&self, state: &State, etag: Option<&str>, unconditional: bool) -> Result<String, StoreError> {
        let (bytes, writes) = self.encoded(state);
        let etag = if unconditional {
            self.blobs.put(&self.state_key(), &bytes, &Precondition::None)?
        } else {
            self.put_checked(&self.state_key(), &bytes, etag)?
        };
        self.wrote(&bytes, writes);
        Ok(etag)
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

    /// Reads the state and its version tag; `Ok(None)` when there is none. With a key, a
    /// state that does not verify, or is older than a write this feed already made (as the
    /// authenticated lease blob read by `acquire`, or this process, knows it), is `Corrupt`.
    pub fn load(&self) -> Result<Option<(State, String)>, LoadError> {
        let Some(blob) = self.blobs.get(&self.state_key()).map_err(LoadError::Store)? else { return Ok(None) };
        let Some(seal) = &self.seal else {
            return State::decode(&blob.bytes)
                .map(|s| Some((s, blob.etag)))
                .map_err(|e| LoadError::Corrupt(e.to_string()));
        };
        let state = State::decode_sealed(&blob.bytes, seal).map_err(|e| LoadError::Corrupt(e.to_string()))?;
        let remembered = self.kept_id().and_then(|id| kept(&id)).map_or(0, |(_, writes)| writes);
        let newest = self.lease_writes.get().max(remembered);
        if state.writes < newest {
            return Err(LoadError::Corrupt(format!(
                "state: rolled back: it is write {} of this feed's state, but write {newest} was committed already \
                 (a copy of an older state was put back)",
                state.writes
            )));
        }
        self.writes.set(self.writes.get().max(state.writes));
        if let Some(id) = self.kept_id() {
            keep(&id, &blob.bytes, state.writes);
        }
        Ok(Some((state, blob.etag)))
    }

    /// The dry run's read, which fires nothing: verified with the key when the store has one;
    /// without, a sealed state is read unverified. The flag says whether it was verified.
    pub fn peek(&self) -> Result<Option<(State, bool)>, LoadError> {
        if self.seal.is_some() {
            return Ok(self.load()?.map(|(state, _)| (state, true)));
        }
        let Some(blob) = self.blobs.get(&self.state_key()).map_err(LoadError::Store)? else { return Ok(None) };
        let state = State::decode_unverified(&blob.bytes).map_err(|e| LoadError::Corrupt(e.to_string()))?;
        Ok(Some((state, false)))
    }

    /// Writes the first state; fails with `Conflict` when one exists.
    pub fn create(&self, state: &State) -> Result<String, StoreError> {
        self.write_state(state, None, false)
    }

    /// Replaces the state only if it is still at `etag`; returns the new tag.
    pub fn commit(&self, state: &State, etag: &str) -> Result<String, StoreError> {
        self.write_state(state, Some(etag), false)
    }

    /// Replaces whatever is stored (recovery from a missing or rejected state only).
    pub fn overwrite(&self, state: &State) -> Result<String, StoreError> {
        self.write_state(state, None, true)
    }

    /// Re-seals the stored state and lease with `new_key` (an UPDATE that adds or changes the
    /// key): the state is read as this store reads it (with the old key, or unauthenticated
    /// for a feed that had none) and written back, sealed, only if it is still the one read. A
    /// state this store does not trust is left alone: the next poll replaces it, as any
    /// rejected state. A lease blob that does not verify is left alone too.
    pub fn reseal(&self, new_key: &Secret) -> Result<Resealed, StoreError> {
        let seal = Seal::new(new_key, &self.key);
        for _ in 0..3 {
            let (state, etag) = match self.load() {
                Ok(None) => return Ok(Resealed::Nothing),
                Ok(Some(found)) => found,
                Err(LoadError::Store(e)) => return Err(e),
                Err(LoadError::Corrupt(why)) => return Ok(Resealed::Rejected(why)),
            };
            let writes = self.writes.get().max(state.writes) + 1;
            match self.put_checked(&self.state_key(), &state.encode_sealed(&seal, writes), Some(&etag)) {
                Ok(_) => {}
                // A poll committed meanwhile: read its state and try again.
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(e),
            }
            if let Ok(Some((doc, etag))) = self.lease_doc() {
                if doc.rejected.is_none() {
                    let doc = LeaseDoc { state_writes: doc.state_writes.max(writes), ..doc };
                    // Best effort: a lease that does not verify only costs its status.
                    let _ = self.put_checked(&self.lease_key(), &lease_bytes(Some(&seal), &doc), Some(&etag));
                }
            }
            return Ok(Resealed::Done);
        }
        Err(StoreError::Conflict)
    }

    /// Removes the state and the lease; missing blobs are fine.
    pub fn delete_all(&self) -> Result<(), StoreError> {
        self.blobs.delete(&self.state_key())?;
        self.blobs.delete(&self.lease_key())
    }

    /// Reads the lease document (status of the last poll). With a key, a blob that does not
    /// verify reads as a free lease without status, `rejected` saying why.
    pub fn lease_doc(&self) -> Result<Option<(LeaseDoc, String)>, StoreError> {
        let Some(blob) = self.blobs.get(&self.lease_key())? else { return Ok(None) };
        // A damaged lease blob only costs the status; it is rewritten by the next poll.
        let doc: Option<LeaseDoc> = serde_json::from_slice(&blob.bytes).ok();
        let doc = match (&self.seal, doc) {
            (None, doc) => doc.unwrap_or_default(),
            (Some(seal), Some(doc)) if lease_verifies(seal, &doc) => {
                self.lease_writes.set(self.lease_writes.get().max(doc.state_writes));
                doc
            }
            (Some(_), _) => LeaseDoc {
                rejected: Some(
                    "the lease object is not authenticated by this feed's stateKey (written by someone else, or \
                     damaged): it was ignored and counts as free"
                        .to_string(),
                ),
                ..LeaseDoc::default()
            },
        };
        Ok(Some((doc, blob.etag)))
    }

    /// The lease document's bytes in this store's seal, naming the newest state write known.
    fn lease_json(&self, doc: &LeaseDoc) -> Vec<u8> {
        let state_writes = doc.state_writes.max(self.writes.get()).max(self.lease_writes.get());
        lease_bytes(self.seal.as_ref(), &LeaseDoc { state_writes, ..doc.clone() })
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
        let doc = LeaseDoc { holder: Some(holder.to_string()), expires_ms, status, ..LeaseDoc::default() };
        let etag = match self.put_checked(&self.lease_key(), &self.lease_json(&doc), etag.as_deref()) {
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
        let doc = LeaseDoc { holder: None, expires_ms: 0, status: Some(status), ..LeaseDoc::default() };
        self.put_checked(&self.lease_key(), &self.lease_json(&doc), Some(&lease.etag))?;
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::Blob;
    use std::collections::HashMap;
    use std::sync::Arc;

    /// Blobs in memory with honest conditional writes; the test writes behind the feed's back
    /// as the store's other writers can.
    #[derive(Clone, Default)]
    struct Mem(Arc<Mutex<Blobs>>);

    /// Each key's bytes and version.
    type Blobs = HashMap<String, (Vec<u8>, u64)>;

    impl Mem {
        fn raw(&self, key: &str) -> Option<Vec<u8>> {
            self.0.lock().unwrap().get(key).map(|(b, _)| b.clone())
        }
        fn write_raw(&self, key: &str, bytes: &[u8]) {
            self.put(key, bytes, &Precondition::None).unwrap();
        }
    }

    impl BlobStore for Mem {
        fn get(&self, key: &str) -> Result<Option<Blob>, StoreError> {
            let blobs = self.0.lock().unwrap();
            Ok(blobs.get(key).map(|(b, v)| Blob { bytes: b.clone(), etag: v.to_string(), modified: None }))
        }
        fn put(&self, key: &str, bytes: &[u8], condition: &Precondition) -> Result<String, StoreError> {
            let mut blobs = self.0.lock().unwrap();
            let current = blobs.get(key).map(|(_, v)| v.to_string());
            let ok = match condition {
                Precondition::IfAbsent => current.is_none(),
                Precondition::IfMatch(t) | Precondition::IfMatchUnquoted(t) => current.as_deref() == Some(t.as_str()),
                Precondition::None => true,
            };
            if !ok {
                return Err(StoreError::Conflict);
            }
            let version = blobs.values().map(|(_, v)| *v).max().unwrap_or(0) + 1;
            blobs.insert(key.to_string(), (bytes.to_vec(), version));
            Ok(version.to_string())
        }
        fn delete(&self, key: &str) -> Result<(), StoreError> {
            self.0.lock().unwrap().remove(key);
            Ok(())
        }
        fn describe(&self, key: &str) -> String {
            format!("mem://{key}")
        }
        fn reserved_prefix(&self) -> Option<String> {
            None
        }
    }

    /// A key of its own per test: the process-wide copies are keyed by it.
    fn key() -> Secret {
        Secret::generate("stateKey").unwrap()
    }

    fn store(mem: &Mem, key: Option<&Secret>) -> StateStore {
        StateStore::new(Box::new(mem.clone()), &QualifiedName::new("ns", None, "t")).with_key(key)
    }

    const STATE: &str = "ns/t.state";
    const LEASE: &str = "ns/t.lease";

    #[test]
    fn a_keyed_store_trusts_only_what_it_sealed() {
        let (mem, k) = (Mem::default(), key());
        let s = store(&mem, Some(&k));
        let mut state = State::new("scope");
        state.outbox.push(serde_json::json!({"id": "genuine"}));
        s.create(&state).unwrap();
        let (loaded, _) = s.load().unwrap().unwrap();
        assert_eq!((loaded.outbox.clone(), loaded.writes), (state.outbox.clone(), 1));
        // A writer of the store rewrites the outbox in the format it can produce (format 1).
        let mut forged = loaded.clone();
        forged.outbox = vec![serde_json::json!({"id": "forged", "type": "evil"})];
        mem.write_raw(STATE, &forged.encode());
        let err = store(&mem, Some(&k)).load().unwrap_err();
        assert!(err.to_string().contains("not authenticated"), "{err}");
        // Garbage, and a state sealed for another trigger with the same key.
        mem.write_raw(STATE, b"garbage");
        assert!(matches!(store(&mem, Some(&k)).load(), Err(LoadError::Corrupt(_))));
        let other = StateStore::new(Box::new(mem.clone()), &QualifiedName::new("ns", None, "t2")).with_key(Some(&k));
        other.create(&state).unwrap();
        mem.write_raw(STATE, &mem.raw("ns/t2.state").unwrap());
        assert!(matches!(store(&mem, Some(&k)).load(), Err(LoadError::Corrupt(_))));
        // A feed without a key reads and writes format 1, as before keys existed.
        let legacy = store(&mem, None);
        legacy.overwrite(&state).unwrap();
        assert_eq!(&mem.raw(STATE).unwrap()[..9], b"OWFEED\0S\x01");
        assert_eq!(legacy.load().unwrap().unwrap().0.outbox, state.outbox);
    }

    #[test]
    fn a_state_put_back_is_a_rollback_the_lease_or_the_memory_tells() {
        let (mem, k) = (Mem::default(), key());
        let poll = || store(&mem, Some(&k));
        let p = poll();
        let etag = p.create(&State::new("s")).unwrap();
        let old = mem.raw(STATE).unwrap();
        let (state, _) = p.load().unwrap().unwrap();
        p.commit(&state, &etag).unwrap();
        let lease = p.acquire("a1", 0, 10).unwrap();
        p.release(lease, PollStatus::default()).unwrap();
        // The authenticated lease names write 2; the writer puts write 1 back.
        mem.write_raw(STATE, &old);
        let p = poll();
        p.acquire("a2", 20, 30).unwrap();
        let err = p.load().unwrap_err().to_string();
        assert!(err.contains("rolled back") && err.contains("write 1") && err.contains("write 2"), "{err}");
        // Without the lease, a poller's process that remembers write 2 tells it too.
        let (mem, k) = (Mem::default(), key());
        let p = store(&mem, Some(&k)).remembering();
        let etag = p.create(&State::new("s")).unwrap();
        let old = mem.raw(STATE).unwrap();
        let (state, _) = p.load().unwrap().unwrap();
        p.commit(&state, &etag).unwrap();
        mem.write_raw(STATE, &old);
        let p = store(&mem, Some(&k)).remembering();
        assert!(p.load().unwrap_err().to_string().contains("rolled back"));
        // What it remembers is what replaces it, and writes go on from there.
        let good = p.last_good().unwrap();
        assert_eq!(good.writes, 2);
        p.overwrite(&good).unwrap();
        assert_eq!(store(&mem, Some(&k)).load().unwrap().unwrap().0.writes, 3);
        // A store that does not remember (READ, UPDATE) holds no copy.
        assert!(store(&mem, Some(&k)).last_good().is_none());
    }

    #[test]
    fn a_lease_blob_that_does_not_verify_counts_as_free_and_tells_nothing() {
        let (mem, k) = (Mem::default(), key());
        let s = store(&mem, Some(&k));
        let lease = s.acquire("a1", 0, 1_000).unwrap();
        s.release(lease, PollStatus { outcome: PollOutcome::Ok, ..PollStatus::default() }).unwrap();
        assert_eq!(s.lease_doc().unwrap().unwrap().0.status.unwrap().outcome, PollOutcome::Ok);
        // A writer holds the lease for ever and reports success.
        let forged = LeaseDoc {
            holder: Some("forger".into()),
            expires_ms: u64::MAX,
            status: Some(PollStatus { outcome: PollOutcome::Ok, ..PollStatus::default() }),
            mac: Some("00".repeat(32)),
            ..LeaseDoc::default()
        };
        mem.write_raw(LEASE, &serde_json::to_vec(&forged).unwrap());
        let (doc, _) = s.lease_doc().unwrap().unwrap();
        assert_eq!((doc.holder, doc.status), (None, None));
        assert!(doc.rejected.unwrap().contains("not authenticated"));
        // The next poll takes it over, and writes an authenticated one.
        let lease = s.acquire("a2", 5, 1_000).unwrap();
        assert_eq!(s.lease_doc().unwrap().unwrap().0.holder.as_deref(), Some("a2"));
        s.release(lease, PollStatus::default()).unwrap();
        // An authentic lease edited (the expiry pushed out) does not verify either.
        let mut doc: LeaseDoc = serde_json::from_slice(&mem.raw(LEASE).unwrap()).unwrap();
        doc.holder = Some("a3".into());
        doc.expires_ms = u64::MAX;
        mem.write_raw(LEASE, &serde_json::to_vec(&doc).unwrap());
        assert!(s.acquire("a4", 10, 1_000).is_ok());
        // Without a key the lease is trusted as before.
        let legacy = store(&mem, None);
        mem.write_raw(LEASE, &serde_json::to_vec(&forged).unwrap());
        assert!(matches!(legacy.acquire("a5", 10, 1_000), Err(LeaseError::Busy { .. })));
    }

    #[test]
    fn reseal_moves_a_state_to_a_new_key_and_leaves_an_untrusted_one_alone() {
        let (mem, old, new) = (Mem::default(), key(), key());
        // A feed created before keys existed: format 1, then UPDATE adds a key.
        let mut state = State::new("s");
        state.outbox.push(serde_json::json!({"id": "pending"}));
        store(&mem, None).create(&state).unwrap();
        let lease = store(&mem, None).acquire("a1", 0, 1).unwrap();
        store(&mem, None).release(lease, PollStatus::default()).unwrap();
        assert_eq!(store(&mem, None).reseal(&old).unwrap(), Resealed::Done);
        let (sealed, _) = store(&mem, Some(&old)).load().unwrap().unwrap();
        assert_eq!(sealed.outbox, state.outbox, "pending events survive the move");
        assert!(store(&mem, Some(&old)).lease_doc().unwrap().unwrap().0.rejected.is_none());
        assert!(store(&mem, None).load().is_err(), "the legacy reader no longer reads it");
        // Rotation: the old key's seal no longer verifies after it.
        assert_eq!(store(&mem, Some(&old)).reseal(&new).unwrap(), Resealed::Done);
        assert!(store(&mem, Some(&new)).load().unwrap().is_some());
        assert!(store(&mem, Some(&old)).load().is_err());
        // A forged state is not sealed into authenticity.
        mem.write_raw(STATE, &state.encode());
        assert!(matches!(store(&mem, Some(&new)).reseal(&old).unwrap(), Resealed::Rejected(_)));
        assert!(store(&mem, Some(&old)).load().is_err());
        assert_eq!(
            store(&mem, Some(&new)).delete_all().map(|_| store(&mem, None).reseal(&new).unwrap()).unwrap(),
            Resealed::Nothing
        );
    }

    #[test]
    fn state_keys_are_asked_for_by_new_or_given_and_never_removed() {
        let p = |v: serde_json::Value| Params::from_value(v).unwrap();
        assert_eq!(key_request(&p(serde_json::json!({}))).unwrap(), KeyRequest::Keep);
        assert_eq!(key_request(&p(serde_json::json!({"stateKey": "new"}))).unwrap(), KeyRequest::New);
        let given = "k".repeat(MIN_KEY_LEN);
        assert_eq!(
            key_request(&p(serde_json::json!({"stateKey": given}))).unwrap(),
            KeyRequest::Given(Secret::new(given))
        );
        for bad in [
            serde_json::json!(null),
            serde_json::json!("short-key-value"),
            serde_json::json!(7),
            serde_json::json!("has a space in it, 32+ characters long"),
        ] {
            let err = key_request(&p(serde_json::json!({"stateKey": bad.clone()}))).unwrap_err();
            assert_eq!(err.name, "stateKey");
            assert!(!err.to_string().contains("short-key-value"), "the value is never echoed: {err}");
        }
        let stored = Secret::generate("stateKey").unwrap();
        assert_eq!(stored.expose().len(), 64);
        assert_eq!(resolve_key(KeyRequest::Keep, Some(stored.clone())).unwrap(), (stored.clone(), false));
        let (fresh, changed) = resolve_key(KeyRequest::Keep, None).unwrap();
        assert!(changed && fresh.expose().len() == 64);
        let (rotated, changed) = resolve_key(KeyRequest::New, Some(stored.clone())).unwrap();
        assert!(changed && rotated != stored);
    }

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
