//! What changed between the stored snapshot and a new listing: created, updated, deleted.
//!
//! Owns `Differ`, a streaming merge of listing pages (ascending key order, as S3 lists)
//! with the old `Snapshot`, and `diff_unordered`, the fallback for a listing that turns out
//! not to be sorted. Memory stays at one page plus one decoded block, beyond the old and
//! new compressed snapshots. Does no I/O and knows nothing about events or delivery: it
//! hands back `Change`s in key order and the new snapshot.
//!
//! Keys compare as UTF-8 bytes (S3 order). A listing covers a `ListRange`
//! (`start_after`, `end_before`), both bounds exclusive; the successor of a key `k` is
//! `k + "\0"`, so ranges `(a, b + "\0")` and `(b, c)` are adjacent.

use std::fmt;

use crate::events::{Change, ChangeKind};
use crate::source::{Entry, ListRange};
use crate::state::{version_hash, Cursor, Snapshot, SnapshotWriter};

/// What the new snapshot holds for old keys outside the listed range.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OutsideRange {
    /// Copy them unchanged: the output is the whole new snapshot (one listing, or a resumed
    /// listing whose earlier part was committed at a checkpoint).
    #[default]
    Keep,
    /// Leave them out: the output covers only the range, to be joined with the other ranges'
    /// outputs by `Snapshot::concat` (parallel listings of disjoint ranges).
    Drop,
}

/// How a diff treats keys beyond the listing itself.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DiffOptions {
    /// Keys under this prefix (the state store's own objects) are ignored as if never listed:
    /// never reported, never stored.
    pub exclude_prefix: Option<String>,
    /// What happens to old keys outside the range.
    pub outside_range: OutsideRange,
}

/// Why a page could not be merged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DiffError {
    /// The listing is not in ascending key order: list again into memory and use
    /// `diff_unordered`. The `Differ` that returned this is spent.
    OutOfOrder {
        /// The key that came too late.
        key: String,
        /// The key listed before it, which is greater.
        previous: String,
    },
}

impl fmt::Display for DiffError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DiffError::OutOfOrder { key, previous } => {
                write!(f, "diff: listing out of order: key {key:?} came after {previous:?}")
            }
        }
    }
}

impl std::error::Error for DiffError {}

/// The result of a diff: the new snapshot and the changes, in key order.
#[derive(Debug)]
pub struct DiffOutput {
    /// The snapshot to store (see `OutsideRange` for what it covers).
    pub snapshot: Snapshot,
    /// Created, updated and deleted keys, in ascending key order.
    pub changes: Vec<Change>,
}

/// Where merged entries go: the new snapshot and the changes.
struct Sink {
    start_after: Option<String>,
    end_before: Option<String>,
    options: DiffOptions,
    writer: SnapshotWriter,
    changes: Vec<Change>,
}

impl Sink {
    fn in_range(&self, key: &str) -> bool {
        self.start_after.as_deref().is_none_or(|a| key > a) && self.end_before.as_deref().is_none_or(|b| key < b)
    }

    fn excluded(&self, key: &str) -> bool {
        self.options.exclude_prefix.as_deref().is_some_and(|p| key.starts_with(p))
    }

    fn write(&mut self, key: &str, hash: u64) {
        let pushed = self.writer.push(key, hash);
        // The merge only ever produces ascending keys.
        debug_assert!(pushed.is_ok(), "diff merge out of order: {pushed:?}");
    }

    /// An old key the listing went past without listing it.
    fn passed(&mut self, key: &str, hash: u64) {
        if self.excluded(key) {
            return;
        }
        if self.in_range(key) {
            self.changes.push(Change {
                kind: ChangeKind::Deleted,
                key: key.to_string(),
                entry: None,
                old_version: Some(hash),
            });
        } else if self.options.outside_range == OutsideRange::Keep {
            self.write(key, hash);
        }
    }

    /// An old key the listing did not reach (after a checkpoint): kept as it was.
    fn carried(&mut self, key: &str, hash: u64) {
        let keep = self.in_range(key) || self.options.outside_range == OutsideRange::Keep;
        if keep && !self.excluded(key) {
            self.write(key, hash);
        }
    }
}

/// Streaming merge of a sorted listing, page by page, with the old snapshot.
pub struct Differ<'a> {
    old: Cursor<'a>,
    sink: Sink,
    previous: Option<String>,
}

impl<'a> Differ<'a> {
    /// A differ for a listing of `range`, keeping old keys outside the range.
    pub fn new(old: &'a Snapshot, range: &ListRange) -> Differ<'a> {
        Differ::with_options(old, range, DiffOptions::default())
    }

    /// A differ for a listing of `range` with explicit options.
    pub fn with_options(old: &'a Snapshot, range: &ListRange, options: DiffOptions) -> Differ<'a> {
        let cursor = match (&range.start_after, options.outside_range) {
            (Some(after), OutsideRange::Drop) => old.cursor_after(after),
            _ => old.cursor(),
        };
        let mut differ = Differ {
            old: cursor,
            sink: Sink {
                start_after: range.start_after.clone(),
                end_before: range.end_before.clone(),
                options,
                writer: SnapshotWriter::new(),
                changes: Vec::new(),
            },
            previous: None,
        };
        // Old keys up to `start_after` come first in the new snapshot, unchanged.
        if let Some(after) = range.start_after.as_deref() {
            while let Some((key, hash)) = differ.old.current() {
                if key > after {
                    break;
                }
                differ.sink.carried(key, hash);
                differ.old.advance();
            }
        }
        differ
    }

    /// Merges one page of the listing. A key equal to the previous one is skipped (pages may
    /// repeat a key; the first wins); a smaller one fails with `DiffError::OutOfOrder`.
    /// Keys outside the range are ignored.
    pub fn push_page(&mut self, entries: Vec<Entry>) -> Result<(), DiffError> {
        for entry in entries {
            if let Some(previous) = &mut self.previous {
                match entry.key.as_str().cmp(previous.as_str()) {
                    std::cmp::Ordering::Equal => continue,
                    std::cmp::Ordering::Less => {
                        return Err(DiffError::OutOfOrder { key: entry.key, previous: previous.clone() })
                    }
                    std::cmp::Ordering::Greater => {
                        previous.clear();
                        previous.push_str(&entry.key);
                    }
                }
            } else {
                self.previous = Some(entry.key.clone());
            }
            if self.sink.in_range(&entry.key) && !self.sink.excluded(&entry.key) {
                self.merge(entry);
            }
        }
        Ok(())
    }

    fn merge(&mut self, entry: Entry) {
        let mut old_hash = None;
        while let Some((key, hash)) = self.old.current() {
            if key >= entry.key.as_str() {
                if key == entry.key {
                    old_hash = Some(hash);
                    self.old.advance();
                }
                break;
            }
            self.sink.passed(key, hash);
            self.old.advance();
        }
        let hash = version_hash(&entry.version);
        self.sink.write(&entry.key, hash);
        let kind = match old_hash {
            None => ChangeKind::Created,
            Some(old) if old != hash => ChangeKind::Updated,
            Some(_) => return,
        };
        self.sink.changes.push(Change { kind, key: entry.key.clone(), entry: Some(entry), old_version: old_hash });
    }

    /// The listing reached the end of its range: every old key in range that was not listed
    /// is deleted.
    pub fn finish(mut self) -> DiffOutput {
        while let Some((key, hash)) = self.old.current() {
            self.sink.passed(key, hash);
            self.old.advance();
        }
        DiffOutput { snapshot: self.sink.writer.finish(), changes: self.sink.changes }
    }

    /// The listing stopped after `last_key` (normally the last key pushed): old keys up to it
    /// that were not listed are deleted, old keys after it are kept unchanged for the next
    /// poll, which resumes with `start_after = last_key`.
    pub fn checkpoint(mut self, last_key: &str) -> DiffOutput {
        while let Some((key, hash)) = self.old.current() {
            if key > last_key {
                break;
            }
            self.sink.passed(key, hash);
            self.old.advance();
        }
        while let Some((key, hash)) = self.old.current() {
            self.sink.carried(key, hash);
            self.old.advance();
        }
        DiffOutput { snapshot: self.sink.writer.finish(), changes: self.sink.changes }
    }
}

/// The fallback for a listing not in key order: sorts by key bytes, keeps the last of
/// repeated keys, then merges like `Differ` (memory: the whole listing).
pub fn diff_unordered(old: &Snapshot, mut entries: Vec<Entry>, range: &ListRange, options: DiffOptions) -> DiffOutput {
    // Stable sort: repeated keys stay in listing order, so the last one listed is last.
    entries.sort_by(|a, b| a.key.cmp(&b.key));
    let mut deduped: Vec<Entry> = Vec::with_capacity(entries.len());
    for entry in entries {
        match deduped.last_mut() {
            Some(last) if last.key == entry.key => *last = entry,
            _ => deduped.push(entry),
        }
    }
    let mut differ = Differ::with_options(old, range, options);
    let pushed = differ.push_page(deduped);
    debug_assert!(pushed.is_ok(), "sorted entries out of order: {pushed:?}");
    differ.finish()
}
