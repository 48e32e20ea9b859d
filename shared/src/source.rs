//! The contract between the core and a source plugin, in two shapes.
//!
//! * A snapshot source (`Source` → `Lister`) lists entries (key, version, attributes); the
//!   core diffs the listing against the stored snapshot.
//! * A log source (`LogSource` → `LogReader`) reads records after a cursor; the core keeps
//!   the cursor and turns each record into an event, no diffing.
//!
//! A plugin validates its own parameters and lists or reads, nothing else. It knows nothing
//! about triggers, rules, alarms, state, diffing, filters, CloudEvents or delivery: the core
//! (`polling`) does all of that with any source. It shares only plain data with the core
//! (`change`: `Entry`, `Record`, `ChangeKind`, and the `Change` a legacy payload is made of).
//!
//! A plugin may also offer a `BlobStore` in the service it already talks to (the S3 plugin
//! offers an object in a bucket), so the core can keep its state in a store the user
//! already has. The store is opaque bytes with conditional writes; what the bytes mean is
//! the core's business.

use std::collections::BTreeMap;
use std::fmt;
use std::time::SystemTime;

use serde_json::{Map, Value};

use crate::change::Change;
pub use crate::change::{Entry, Record};
use crate::params::{ParamError, Params};

/// What a page callback tells the lister.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    /// Go on with the next page.
    Continue,
    /// Stop listing now (deadline reached); the listing is incomplete.
    Stop,
}

/// Where a listing starts and what it covers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListRange {
    /// List only keys strictly after this one (resume / parallel ranges).
    pub start_after: Option<String>,
    /// Stop once keys reach or pass this one (exclusive upper bound of a range).
    pub end_before: Option<String>,
}

/// True when `end` is `key` + NUL: the bound right after `key`, so that a range ending there
/// and one starting after `key` meet with no key between them.
pub(crate) fn right_after(end: &str, key: &str) -> bool {
    end.strip_suffix('\0') == Some(key)
}

/// What a key-space probe (`Lister::first_after`) found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Probe {
    /// The first key after the one asked about.
    Key(String),
    /// No key after it.
    End,
    /// The source cannot probe.
    Unsupported,
}

/// The version each key had when the core last saw it, for a source that keeps versions
/// (`Lister::keeps_versions`): it may then ask its server only for what changed since (HTTP
/// `If-None-Match`) and list an unchanged entry with this same version. Empty for the others.
#[derive(Clone, Copy, Debug, Default)]
pub struct Previous<'a>(Option<&'a BTreeMap<String, String>>);

impl<'a> Previous<'a> {
    /// A lookup in the versions the core kept.
    pub fn new(versions: &'a BTreeMap<String, String>) -> Previous<'a> {
        Previous(Some(versions))
    }

    /// The version `key` had, if the core knows it.
    pub fn get(&self, key: &str) -> Option<&'a str> {
        self.0.and_then(|v| v.get(key)).map(String::as_str)
    }
}

/// Describes one parameter a source reads, for validation messages, READ and docs.
#[derive(Clone, Copy, Debug)]
pub struct ParamSpec {
    /// Parameter name as passed with `-p`.
    pub name: &'static str,
    /// True when the value is a credential: redacted in READ, never logged.
    pub secret: bool,
    /// True when the parameter must be given.
    pub required: bool,
    /// One-line description with the default.
    pub doc: &'static str,
}

/// A polling event source (S3 bucket, …): validates config and opens a lister.
pub trait Source: Send + Sync {
    /// Stable name stored in the feed config to find the plugin again at poll time.
    fn name(&self) -> &'static str;
    /// The parameters this source reads (the core adds its own: schedule, filters, format…).
    fn params(&self) -> &'static [ParamSpec];
    /// Validates the parameters and opens a lister; every error names its parameter.
    fn open(&self, params: &Params) -> Result<Box<dyn Lister>, ParamError>;
}

/// An opened source: lists entries and describes itself for events.
pub trait Lister: Sync {
    /// CloudEvents `source` attribute (a URI-reference naming endpoint and container).
    fn source_uri(&self) -> String;
    /// Prefix of CloudEvents `type` values, e.g. `org.openwhisk.feeds.s3.object`; the core
    /// appends `.created`, `.updated` or `.deleted`.
    fn event_type_prefix(&self) -> &'static str;
    /// Extra fields for every event's `data` (e.g. `{"bucket": …, "endpoint": …}`).
    fn data_context(&self) -> Map<String, Value>;
    /// One cheap authenticated request that proves the config works (CREATE calls it).
    fn probe(&self) -> Result<(), SourceError>;
    /// Lists entries in `range`, one page at a time, in the source's order (ideally
    /// ascending by key bytes; the core checks and copes when it is not). Returns
    /// `Ok(true)` when the range was listed to its end, `Ok(false)` when `page` said stop.
    /// `previous` holds the versions of the last listing when `keeps_versions` says so.
    fn list(
        &self,
        range: &ListRange,
        previous: Previous<'_>,
        page: &mut dyn FnMut(Vec<Entry>) -> Flow,
    ) -> Result<bool, SourceError>;
    /// True when the core should keep each entry's version string in the state and hand it
    /// back to `list` (`Previous`); the state otherwise keeps only a 64-bit hash per key.
    /// Worth it for few entries whose server answers conditional requests cheaply.
    fn keeps_versions(&self) -> bool {
        false
    }
    /// Settings the user must not overlook (e.g. TLS verification turned off), shown by
    /// CREATE and READ as `notices`.
    fn notices(&self) -> Vec<String> {
        Vec::new()
    }
    /// Whether one entry exists now (one cheap request, e.g. S3 HEAD), so the core can
    /// confirm a delete before reporting it; `Ok(None)` when the source cannot tell.
    fn exists(&self, _key: &str) -> Result<Option<bool>, SourceError> {
        Ok(None)
    }
    /// The first key a listing would give after `after` (from the start when `None`), in one
    /// cheap request (e.g. ListObjectsV2 with `max-keys` 1), so the core can split a key space
    /// it knows nothing of into ranges listed in parallel (CREATE's baseline). The default,
    /// `Probe::Unsupported`, lists such a key space as one range.
    fn first_after(&self, _after: Option<&str>) -> Result<Probe, SourceError> {
        Ok(Probe::Unsupported)
    }
    /// A blob store in the same service for the core's state, when the source offers one.
    fn blob_store(&self) -> Option<Box<dyn BlobStore>>;
    /// The event in this source's legacy payload shape (`format=legacy`), if it has one.
    fn legacy_event(&self, _change: &Change) -> Option<Value> {
        None
    }
}

/// A log event source (CouchDB `_changes`, a queue…): records after a cursor, no diffing.
///
/// Like `Source`, it validates its parameters and reads; the core owns the cursor (kept in
/// the state next to the outbox, committed before anything is fired), the event ids, the
/// filters, the format and the delivery.
pub trait LogSource: Send + Sync {
    /// Stable name stored in the feed config to find the plugin again at poll time.
    fn name(&self) -> &'static str;
    /// The parameters this source reads (the core adds its own).
    fn params(&self) -> &'static [ParamSpec];
    /// Validates the parameters and opens a reader; every error names its parameter.
    fn open(&self, params: &Params) -> Result<Box<dyn LogReader>, ParamError>;
}

/// What one read returns: records in log order and the cursor after the last of them.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    /// The records, oldest first (possibly none when the wait ended).
    pub records: Vec<Record>,
    /// The opaque cursor to read after next time (CouchDB `last_seq`, kept verbatim).
    pub cursor: String,
}

/// An opened log source: reads records after a cursor and describes itself for events.
pub trait LogReader: Sync {
    /// CloudEvents `source` attribute (a URI-reference naming endpoint and container).
    fn source_uri(&self) -> String;
    /// Prefix of CloudEvents `type` values, e.g. `org.openwhisk.feeds.couchdb.document`;
    /// the core appends `.created`, `.updated` or `.deleted`.
    fn event_type_prefix(&self) -> &'static str;
    /// The CloudEvents `type` of a record's event: by default the prefix and the record's
    /// kind; a log of messages that are neither created nor updated names its own.
    fn event_type(&self, record: &Record) -> String {
        format!("{}.{}", self.event_type_prefix(), record.kind.as_str())
    }
    /// Extra fields for every event's `data` (e.g. `{"dbname": …}`).
    fn data_context(&self) -> Map<String, Value>;
    /// One cheap authenticated request that proves the config works (CREATE calls it).
    fn probe(&self) -> Result<(), SourceError>;
    /// The cursor of "now", so a new feed starts there (`since=now`).
    fn current(&self) -> Result<String, SourceError>;
    /// Where to read after the source refused `rejected` (`onCursorRejected` `now` or
    /// `earliest`): by default the source's current cursor, or the start of the log (`None`).
    /// A source whose cursor has parts (e.g. an offset per partition) may move only the
    /// refused parts and keep the others.
    fn restart(&self, rejected: Option<&str>, to: Restart) -> Result<Option<String>, SourceError> {
        let _ = rejected;
        match to {
            Restart::Now => self.current().map(Some),
            Restart::Earliest => Ok(None),
        }
    }
    /// How far the feed is behind the log after `cursor`, for READ (`lag`), where the source
    /// can tell with a few cheap requests (e.g. the end of each partition minus the cursor's
    /// offset there). By default `None`: READ shows no `lag`.
    fn lag(&self, cursor: Option<&str>) -> Result<Option<Value>, SourceError> {
        let _ = cursor;
        Ok(None)
    }
    /// Reads at most `limit` records after `after` (`None`: from the start of the log).
    /// With `wait_until`, holds the request open until a record arrives or that instant
    /// passes, and then returns an empty batch with the cursor unchanged or advanced.
    fn read(
        &self,
        after: Option<&str>,
        limit: usize,
        wait_until: Option<std::time::Instant>,
    ) -> Result<Batch, SourceError>;
    /// Tells the source that everything up to `cursor` is committed (queues that need an
    /// acknowledgement); most logs need nothing.
    fn acknowledge(&self, _cursor: &str) -> Result<(), SourceError> {
        Ok(())
    }
    /// Settings the user must not overlook, shown by CREATE and READ as `notices`.
    fn notices(&self) -> Vec<String> {
        Vec::new()
    }
    /// A blob store in the same service for the core's state, when the source offers one.
    fn blob_store(&self) -> Option<Box<dyn BlobStore>> {
        None
    }
    /// The record in this source's legacy payload shape (`format=legacy`), if it has one.
    fn legacy_event(&self, _record: &Record) -> Option<Value> {
        None
    }
    /// For a legacy shape that fires records together (a legacy feed that batches by size:
    /// `{"messages": […]}`), the key of that array: the core then fires legacy events under it,
    /// as many as fit the payload limit, exactly as `legacy_event` built them (no `id` added).
    fn legacy_batch_key(&self) -> Option<&'static str> {
        None
    }
}

/// Where a log feed goes on after the source refused its cursor (`onCursorRejected`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Restart {
    /// From what is current: records before now are not reported.
    Now,
    /// From the oldest record the source still holds: what it still holds is reported.
    Earliest,
}

/// A registered source of either shape: what `sources::REGISTRY` lists and the feed and poll
/// actions serve.
#[derive(Clone, Copy)]
pub enum AnySource<'a> {
    /// Listed and diffed against the stored snapshot.
    Snapshot(&'a dyn Source),
    /// Read after the stored cursor.
    Log(&'a dyn LogSource),
}

impl<'a> AnySource<'a> {
    /// The source's stable name (`-p source NAME`).
    pub fn name(&self) -> &'static str {
        match self {
            AnySource::Snapshot(s) => s.name(),
            AnySource::Log(s) => s.name(),
        }
    }

    /// The parameters the source reads.
    pub fn params(&self) -> &'static [ParamSpec] {
        match self {
            AnySource::Snapshot(s) => s.params(),
            AnySource::Log(s) => s.params(),
        }
    }

    /// True for a log source.
    pub fn is_log(&self) -> bool {
        matches!(self, AnySource::Log(_))
    }
}

/// Why a source call failed, in words a user can act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SourceError {
    /// Credentials rejected or not allowed (fix the keys or the policy).
    Unauthorized(String),
    /// The container does not exist (fix the name or the region).
    NotFound(String),
    /// The source is misconfigured in a way the user must fix (wrong region, TLS name…).
    Config(String),
    /// A failure worth retrying on the next poll (5xx, timeout, bad XML, cut body).
    Transient(String),
    /// A log source no longer accepts the stored cursor (CouchDB: 400 on `since`): the
    /// core says so in READ and re-baselines only when the user asked for that.
    CursorRejected(String),
}

impl SourceError {
    /// The message without the kind.
    pub fn message(&self) -> &str {
        match self {
            SourceError::Unauthorized(m)
            | SourceError::NotFound(m)
            | SourceError::Config(m)
            | SourceError::Transient(m)
            | SourceError::CursorRejected(m) => m,
        }
    }
}

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for SourceError {}

/// A stored blob and its current version tag.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Blob {
    /// The bytes.
    pub bytes: Vec<u8>,
    /// The store's version tag (an S3 ETag), used for `Precondition::IfMatch`.
    pub etag: String,
    /// When the store last wrote it, if known.
    pub modified: Option<SystemTime>,
}

/// The condition a write is made under; this is what keeps two overlapping polls from
/// both committing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Precondition {
    /// Write only if nothing is stored under the key (`If-None-Match: *`).
    IfAbsent,
    /// Write only if the stored version tag is still this one (`If-Match`, the tag quoted).
    IfMatch(String),
    /// The same, with the tag unquoted: the dialect of stores that refuse the quoted form.
    IfMatchUnquoted(String),
    /// Write whatever is there.
    None,
}

/// Why a blob store call failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreError {
    /// The precondition did not hold: someone else wrote first.
    Conflict,
    /// The store does not implement the precondition (Alibaba OSS: 400 NotImplemented).
    Unsupported(String),
    /// Any other failure, in words a user can act on.
    Failed(SourceError),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Conflict => f.write_str("state store: another poll wrote the state first"),
            StoreError::Unsupported(e) => write!(f, "state store: conditional write not supported: {e}"),
            StoreError::Failed(e) => write!(f, "state store: {e}"),
        }
    }
}

impl std::error::Error for StoreError {}

/// Opaque bytes under keys, with conditional writes.
pub trait BlobStore {
    /// Reads a blob; `Ok(None)` when the key does not exist.
    fn get(&self, key: &str) -> Result<Option<Blob>, StoreError>;
    /// Writes a blob under a precondition and returns its new version tag.
    fn put(&self, key: &str, bytes: &[u8], condition: &Precondition) -> Result<String, StoreError>;
    /// Deletes a blob; deleting a missing key succeeds.
    fn delete(&self, key: &str) -> Result<(), StoreError>;
    /// Where `key` lives, for READ (`s3://bucket/prefix/key`).
    fn describe(&self, key: &str) -> String;
    /// Keys under this prefix belong to the store and are never reported by the source's
    /// listing (the state object kept in the watched bucket itself).
    fn reserved_prefix(&self) -> Option<String>;
}
