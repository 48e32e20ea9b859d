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

use crate::change::Entry;
use crate::change::{Change, ChangeKind};
use crate::source::ListRange;
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
    /// Count changes without keeping them (a silent baseline of a large listing must not
    /// hold a `Change` per key in memory).
    pub discard_changes: bool,
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
    /// Changes seen so far, kept or not.
    count: usize,
}

impl Sink {
    fn record(&mut self, change: Change) {
        self.count += 1;
        if !self.options.discard_changes {
            self.changes.push(change);
        }
    }

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
            self.record(Change {
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
                count: 0,
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
        self.sink.record(Change { kind, key: entry.key.clone(), entry: Some(entry), old_version: old_hash });
    }

    /// Changes found so far (kept or, with `discard_changes`, only counted).
    pub fn change_count(&self) -> usize {
        self.sink.count
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

    /// Like `finish`, but the deletes of old keys past the listing stop once `max_changes`
    /// changes were found in all: then the old keys after the last one reported are kept for
    /// the next pass, which resumes after it (the returned cursor). Emptying a huge bucket
    /// thus spreads its deletes over several polls instead of holding them all at once.
    pub fn finish_bounded(mut self, max_changes: usize) -> (DiffOutput, Option<String>) {
        // Everything up to the last listed key is accounted for; then up to each delete.
        let mut last_reported: Option<String> = self.previous.clone();
        while let Some((key, hash)) = self.old.current() {
            if self.sink.count >= max_changes && last_reported.is_some() && self.sink.in_range(key) {
                let cursor = last_reported.take();
                while let Some((key, hash)) = self.old.current() {
                    self.sink.carried(key, hash);
                    self.old.advance();
                }
                return (DiffOutput { snapshot: self.sink.writer.finish(), changes: self.sink.changes }, cursor);
            }
            let before = self.sink.count;
            self.sink.passed(key, hash);
            if self.sink.count > before {
                last_reported = Some(key.to_string());
            }
            self.old.advance();
        }
        (DiffOutput { snapshot: self.sink.writer.finish(), changes: self.sink.changes }, None)
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::Map;

    use super::*;
    use crate::state::tests::{timed, Rng};

    fn entry(key: &str, version: &str) -> Entry {
        Entry { key: key.to_string(), version: version.to_string(), attrs: Map::new() }
    }

    fn snapshot(entries: &[(&str, &str)]) -> Snapshot {
        let mut sorted: Vec<_> = entries.iter().map(|(k, v)| (k.to_string(), version_hash(v))).collect();
        sorted.sort();
        // Tiny blocks, so merges cross block boundaries.
        let mut writer = SnapshotWriter::with_block_entries(2);
        for (key, hash) in sorted {
            writer.push(&key, hash).unwrap();
        }
        writer.finish()
    }

    /// A change as (kind, key, listed version, old version hash): easy to read in a failure.
    type Seen = (ChangeKind, String, Option<String>, Option<u64>);

    fn seen(changes: &[Change]) -> Vec<Seen> {
        changes
            .iter()
            .map(|c| (c.kind, c.key.clone(), c.entry.as_ref().map(|e| e.version.clone()), c.old_version))
            .collect()
    }

    fn entries_of(snapshot: &Snapshot) -> Vec<(String, u64)> {
        snapshot.iter().collect()
    }

    /// Diffs `pages` (listing order) against `old` over the whole key space and checks the
    /// changes as "kind key" strings and the new snapshot.
    #[track_caller]
    fn check(old: &[(&str, &str)], pages: &[&[(&str, &str)]], expected: &[&str]) {
        let old = snapshot(old);
        let mut differ = Differ::new(&old, &ListRange::default());
        for page in pages {
            differ.push_page(page.iter().map(|(k, v)| entry(k, v)).collect()).unwrap();
        }
        let output = differ.finish();
        let got: Vec<String> = output.changes.iter().map(|c| format!("{} {}", c.kind.as_str(), c.key)).collect();
        assert_eq!(got, expected);
        let mut listed: Vec<(String, u64)> =
            pages.iter().flat_map(|p| p.iter()).map(|(k, v)| (k.to_string(), version_hash(v))).collect();
        listed.dedup_by(|b, a| a.0 == b.0);
        assert_eq!(entries_of(&output.snapshot), listed);
    }

    #[test]
    fn table() {
        check(&[], &[], &[]);
        check(&[], &[&[("a", "1"), ("b", "1")]], &["created a", "created b"]);
        check(&[("a", "1"), ("b", "1")], &[], &["deleted a", "deleted b"]);
        check(&[("a", "1"), ("b", "1")], &[&[("a", "1")], &[("b", "2")]], &["updated b"]);
        check(
            &[("a", "1"), ("c", "1"), ("e", "1"), ("g", "1")],
            &[&[("b", "1"), ("c", "2")], &[], &[("d", "1"), ("g", "1"), ("h", "1")]],
            &["deleted a", "created b", "updated c", "created d", "deleted e", "created h"],
        );
        // A key repeated across pages counts once (the first listing of it wins).
        check(&[("a", "1")], &[&[("a", "1"), ("b", "1")], &[("b", "2"), ("c", "1")]], &["created b", "created c"]);
        // Byte order: "a/" < "a0" < "a\u{e9}"; the empty key is a key.
        check(
            &[("", "1"), ("a0", "1")],
            &[&[("a/", "1"), ("a0", "1"), ("a\u{e9}", "1")]],
            &["deleted ", "created a/", "created a\u{e9}"],
        );
    }

    #[test]
    fn changes_carry_the_entry_and_old_version() {
        let old = snapshot(&[("a", "v1"), ("b", "v1")]);
        let mut differ = Differ::new(&old, &ListRange::default());
        let mut listed = entry("a", "v2");
        listed.attrs.insert("size".to_string(), 3.into());
        differ.push_page(vec![listed.clone(), entry("c", "v1")]).unwrap();
        let changes = differ.finish().changes;
        assert_eq!(
            changes,
            vec![
                Change {
                    kind: ChangeKind::Updated,
                    key: "a".into(),
                    entry: Some(listed),
                    old_version: Some(version_hash("v1"))
                },
                Change {
                    kind: ChangeKind::Deleted,
                    key: "b".into(),
                    entry: None,
                    old_version: Some(version_hash("v1"))
                },
                Change { kind: ChangeKind::Created, key: "c".into(), entry: Some(entry("c", "v1")), old_version: None },
            ]
        );
    }

    #[test]
    fn out_of_order_is_reported() {
        let old = snapshot(&[]);
        let mut differ = Differ::new(&old, &ListRange::default());
        differ.push_page(vec![entry("a", "1"), entry("c", "1")]).unwrap();
        let error = differ.push_page(vec![entry("b", "1")]).unwrap_err();
        assert_eq!(error, DiffError::OutOfOrder { key: "b".into(), previous: "c".into() });
        assert_eq!(error.to_string(), "diff: listing out of order: key \"b\" came after \"c\"");
    }

    #[test]
    fn exclude_prefix_hides_the_stores_own_keys() {
        let old = snapshot(&[(".owfeed/x", "1"), ("a", "1")]);
        let options = DiffOptions { exclude_prefix: Some(".owfeed/".into()), ..DiffOptions::default() };
        let mut differ = Differ::with_options(&old, &ListRange::default(), options);
        differ.push_page(vec![entry(".owfeed/state", "1"), entry(".owfeed/x", "2"), entry("a", "1")]).unwrap();
        let output = differ.finish();
        assert_eq!(output.changes, vec![]);
        assert_eq!(entries_of(&output.snapshot), vec![("a".to_string(), version_hash("1"))]);
    }

    /// What a diff must produce, computed the obvious way with maps.
    fn naive(
        old: &BTreeMap<String, u64>,
        listed: &[Entry],
        range: &ListRange,
        options: &DiffOptions,
    ) -> (Vec<Seen>, Vec<(String, u64)>) {
        let in_range = |k: &str| {
            range.start_after.as_deref().is_none_or(|a| k > a) && range.end_before.as_deref().is_none_or(|b| k < b)
        };
        let excluded = |k: &str| options.exclude_prefix.as_deref().is_some_and(|p| k.starts_with(p));
        let mut new: BTreeMap<String, &Entry> = BTreeMap::new();
        for e in listed.iter().filter(|e| in_range(&e.key) && !excluded(&e.key)) {
            new.insert(e.key.clone(), e);
        }
        let mut changes = Vec::new();
        let mut keys: Vec<&String> = old.keys().chain(new.keys()).collect();
        keys.sort();
        keys.dedup();
        for key in keys {
            if excluded(key) || !in_range(key) {
                continue;
            }
            match (old.get(key), new.get(key)) {
                (None, Some(e)) => changes.push((ChangeKind::Created, key.clone(), Some(e.version.clone()), None)),
                (Some(&h), Some(e)) if h != version_hash(&e.version) => {
                    changes.push((ChangeKind::Updated, key.clone(), Some(e.version.clone()), Some(h)))
                }
                (Some(&h), None) => changes.push((ChangeKind::Deleted, key.clone(), None, Some(h))),
                _ => {}
            }
        }
        let mut snapshot: BTreeMap<String, u64> =
            new.iter().map(|(k, e)| (k.clone(), version_hash(&e.version))).collect();
        if options.outside_range == OutsideRange::Keep {
            snapshot.extend(old.iter().filter(|(k, _)| !in_range(k) && !excluded(k)).map(|(k, h)| (k.clone(), *h)));
        }
        (changes, snapshot.into_iter().collect())
    }

    struct Case {
        old: BTreeMap<String, u64>,
        old_snapshot: Snapshot,
        /// Sorted, no repeats.
        listed: Vec<Entry>,
        exclude_prefix: Option<String>,
    }

    fn random_key(rng: &mut Rng) -> String {
        const ALPHABET: [&str; 5] = ["a", "b", "/", "é", "😀"];
        (0..rng.below(5)).map(|_| ALPHABET[rng.below(ALPHABET.len())]).collect()
    }

    fn random_case(rng: &mut Rng) -> Case {
        let size = [0, 1, 5, 40, 300][rng.below(5)];
        let version = |rng: &mut Rng| format!("v{}", rng.below(3));
        let old: BTreeMap<String, u64> = (0..size).map(|_| (random_key(rng), version_hash(&version(rng)))).collect();
        let mut writer = SnapshotWriter::with_block_entries(1 + rng.below(6));
        for (key, hash) in &old {
            writer.push(key, *hash).unwrap();
        }
        let listed: BTreeMap<String, String> = (0..size).map(|_| (random_key(rng), version(rng))).collect();
        let listed: Vec<Entry> = listed.into_iter().map(|(k, v)| entry(&k, &v)).collect();
        let exclude_prefix = [None, Some("b"), Some("a/")][rng.below(3)].map(String::from);
        Case { old, old_snapshot: writer.finish(), listed, exclude_prefix }
    }

    /// Splits entries into random pages, some empty.
    fn random_pages(rng: &mut Rng, entries: &[Entry]) -> Vec<Vec<Entry>> {
        let mut pages = Vec::new();
        let mut rest = entries;
        while !rest.is_empty() || rng.below(4) == 0 {
            let take = rng.below(rest.len() + 1).min(rng.below(8));
            pages.push(rest[..take].to_vec());
            rest = &rest[take..];
        }
        pages
    }

    fn streamed(case: &Case, pages: Vec<Vec<Entry>>, range: &ListRange, options: DiffOptions) -> DiffOutput {
        let mut differ = Differ::with_options(&case.old_snapshot, range, options);
        for page in pages {
            differ.push_page(page).unwrap();
        }
        differ.finish()
    }

    fn options(case: &Case, outside_range: OutsideRange) -> DiffOptions {
        DiffOptions { exclude_prefix: case.exclude_prefix.clone(), outside_range, discard_changes: false }
    }

    #[test]
    fn emptying_a_bucket_spreads_its_deletes_over_bounded_passes() {
        let mut w = SnapshotWriter::new();
        for i in 0..10 {
            w.push(&format!("k{i}"), version_hash("1")).unwrap();
        }
        let mut snapshot = w.finish();
        let mut cursor: Option<String> = None;
        let mut deleted = Vec::new();
        for pass in 0.. {
            assert!(pass < 10, "no progress");
            let range = ListRange { start_after: cursor.clone(), end_before: None };
            let differ = Differ::new(&snapshot, &range);
            // The bucket is empty now: no page at all.
            let (out, next) = differ.finish_bounded(3);
            assert!(out.changes.len() <= 3, "pass {pass}: {} changes", out.changes.len());
            deleted.extend(out.changes.iter().map(|c| (c.kind, c.key.clone())));
            snapshot = out.snapshot;
            cursor = next;
            if cursor.is_none() {
                break;
            }
        }
        let want: Vec<(ChangeKind, String)> = (0..10).map(|i| (ChangeKind::Deleted, format!("k{i}"))).collect();
        assert_eq!(deleted, want, "each delete exactly once, in key order");
        assert!(snapshot.is_empty());
    }

    #[test]
    fn discarded_changes_are_counted_and_the_snapshot_is_the_same() {
        let mut w = SnapshotWriter::new();
        w.push("a", version_hash("1")).unwrap();
        w.push("c", version_hash("1")).unwrap();
        let old = w.finish();
        let page = vec![entry("a", "2"), entry("b", "1")];
        let mut kept = Differ::new(&old, &ListRange::default());
        kept.push_page(page.clone()).unwrap();
        let discard = DiffOptions { discard_changes: true, ..DiffOptions::default() };
        let mut counted = Differ::with_options(&old, &ListRange::default(), discard);
        counted.push_page(page).unwrap();
        assert_eq!((kept.change_count(), counted.change_count()), (2, 2));
        let (kept, counted) = (kept.finish(), counted.finish());
        assert_eq!(kept.changes.len(), 3, "updated a, created b, deleted c");
        assert!(counted.changes.is_empty());
        assert_eq!(kept.snapshot, counted.snapshot);
    }

    #[test]
    fn streaming_diff_equals_naive_diff_whatever_the_pages() {
        let mut rng = Rng(10);
        for round in 0..400 {
            let case = random_case(&mut rng);
            let range = match round % 4 {
                0 => ListRange::default(),
                _ => ListRange {
                    start_after: Some(random_key(&mut rng)).filter(|_| rng.below(3) > 0),
                    end_before: Some(random_key(&mut rng)).filter(|_| rng.below(3) > 0),
                },
            };
            let outside = [OutsideRange::Keep, OutsideRange::Drop][rng.below(2)];
            let (changes, snapshot) = naive(&case.old, &case.listed, &range, &options(&case, outside));
            let pages = random_pages(&mut rng, &case.listed);
            let output = streamed(&case, pages, &range, options(&case, outside));
            assert_eq!(seen(&output.changes), changes, "round {round}, range {range:?}");
            assert_eq!(entries_of(&output.snapshot), snapshot, "round {round}, range {range:?}");
        }
    }

    #[test]
    fn keys_repeated_across_pages_count_once() {
        let mut rng = Rng(11);
        for _ in 0..200 {
            let case = random_case(&mut rng);
            let options = options(&case, OutsideRange::Keep);
            let (changes, snapshot) = naive(&case.old, &case.listed, &ListRange::default(), &options);
            // Repeat some keys at page edges and inside pages, as a listing retried mid-way may.
            let mut repeated = Vec::new();
            for entry in &case.listed {
                for _ in 0..1 + usize::from(rng.below(3) == 0) {
                    repeated.push(entry.clone());
                }
            }
            let output = streamed(&case, random_pages(&mut rng, &repeated), &ListRange::default(), options);
            assert_eq!(seen(&output.changes), changes);
            assert_eq!(entries_of(&output.snapshot), snapshot);
        }
    }

    #[test]
    fn unordered_listing_is_detected_and_the_fallback_equals_naive_diff() {
        let mut rng = Rng(12);
        let mut detected = 0;
        for _ in 0..300 {
            let case = random_case(&mut rng);
            let mut shuffled = case.listed.clone();
            for i in (1..shuffled.len()).rev() {
                shuffled.swap(i, rng.below(i + 1));
            }
            // Repeats in an unordered listing: the last one listed wins.
            if let Some(first) = shuffled.first().cloned() {
                shuffled.push(Entry { version: "repeated".to_string(), ..first });
            }
            let range = ListRange::default();
            let mut differ = Differ::with_options(&case.old_snapshot, &range, options(&case, OutsideRange::Keep));
            let sorted = shuffled.windows(2).all(|w| w[0].key <= w[1].key);
            let mut failed = false;
            for page in random_pages(&mut rng, &shuffled) {
                if let Err(DiffError::OutOfOrder { .. }) = differ.push_page(page) {
                    failed = true;
                    break;
                }
            }
            assert_eq!(failed, !sorted);
            detected += usize::from(failed);

            let mut deduped: BTreeMap<String, Entry> = BTreeMap::new();
            for e in &shuffled {
                deduped.insert(e.key.clone(), e.clone());
            }
            let last_wins: Vec<Entry> = deduped.into_values().collect();
            let options = options(&case, OutsideRange::Keep);
            let (changes, snapshot) = naive(&case.old, &last_wins, &range, &options);
            let output = diff_unordered(&case.old_snapshot, shuffled, &range, options);
            assert_eq!(seen(&output.changes), changes);
            assert_eq!(entries_of(&output.snapshot), snapshot);
        }
        assert!(detected > 100, "only {detected} shuffled listings were out of order");
    }

    #[test]
    fn checkpoint_then_resume_equals_one_full_diff() {
        let mut rng = Rng(13);
        for round in 0..300 {
            let case = random_case(&mut rng);
            let full =
                streamed(&case, vec![case.listed.clone()], &ListRange::default(), options(&case, OutsideRange::Keep));
            // Cut at a listed key, or at an arbitrary key the listing may not hold.
            let cut = match case.listed.get(rng.below(case.listed.len() + 1)) {
                Some(e) if rng.below(2) == 0 => e.key.clone(),
                _ => random_key(&mut rng),
            };
            let (first, second): (Vec<Entry>, Vec<Entry>) =
                case.listed.iter().cloned().partition(|e| e.key.as_str() <= cut.as_str());
            let mut differ =
                Differ::with_options(&case.old_snapshot, &ListRange::default(), options(&case, OutsideRange::Keep));
            for page in random_pages(&mut rng, &first) {
                differ.push_page(page).unwrap();
            }
            let committed = differ.checkpoint(&cut);
            let resume = ListRange { start_after: Some(cut.clone()), end_before: None };
            let mut differ = Differ::with_options(&committed.snapshot, &resume, options(&case, OutsideRange::Keep));
            for page in random_pages(&mut rng, &second) {
                differ.push_page(page).unwrap();
            }
            let rest = differ.finish();
            let mut changes = committed.changes;
            changes.extend(rest.changes);
            assert_eq!(seen(&changes), seen(&full.changes), "round {round}, cut {cut:?}");
            assert_eq!(entries_of(&rest.snapshot), entries_of(&full.snapshot), "round {round}, cut {cut:?}");
        }
    }

    #[test]
    fn concatenated_range_diffs_equal_one_full_diff() {
        let mut rng = Rng(14);
        for round in 0..300 {
            let case = random_case(&mut rng);
            let full =
                streamed(&case, vec![case.listed.clone()], &ListRange::default(), options(&case, OutsideRange::Keep));
            let mut bounds: Vec<String> = (0..rng.below(4)).map(|_| random_key(&mut rng)).collect();
            bounds.sort();
            bounds.dedup();
            // Adjacent ranges: (…, b + "\0") then (b, …).
            let mut ranges = Vec::new();
            let mut start_after = None;
            for bound in &bounds {
                ranges.push(ListRange { start_after: start_after.clone(), end_before: Some(format!("{bound}\0")) });
                start_after = Some(bound.clone());
            }
            ranges.push(ListRange { start_after, end_before: None });
            let mut parts = Vec::new();
            let mut changes = Vec::new();
            for range in &ranges {
                // Every range sees the whole listing: keys outside its range are ignored.
                let output =
                    streamed(&case, random_pages(&mut rng, &case.listed), range, options(&case, OutsideRange::Drop));
                parts.push(output.snapshot);
                changes.extend(output.changes);
            }
            let joined = Snapshot::concat(parts).unwrap();
            assert_eq!(seen(&changes), seen(&full.changes), "round {round}, ranges {ranges:?}");
            assert_eq!(entries_of(&joined), entries_of(&full.snapshot), "round {round}, ranges {ranges:?}");
        }
    }

    #[test]
    fn a_range_checkpoint_holds_only_its_range() {
        let mut rng = Rng(15);
        for round in 0..300 {
            let case = random_case(&mut rng);
            let range = ListRange {
                start_after: Some(random_key(&mut rng)).filter(|_| rng.below(2) == 0),
                end_before: Some(random_key(&mut rng)).filter(|_| rng.below(2) == 0),
            };
            let cut = random_key(&mut rng);
            let listed: Vec<Entry> = case.listed.iter().filter(|e| e.key.as_str() <= cut.as_str()).cloned().collect();
            let run = |outside| {
                let mut differ = Differ::with_options(&case.old_snapshot, &range, options(&case, outside));
                differ.push_page(listed.clone()).unwrap();
                differ.checkpoint(&cut)
            };
            let (whole, part) = (run(OutsideRange::Keep), run(OutsideRange::Drop));
            let in_range = |k: &str| {
                range.start_after.as_deref().is_none_or(|a| k > a) && range.end_before.as_deref().is_none_or(|b| k < b)
            };
            let expected: Vec<(String, u64)> =
                entries_of(&whole.snapshot).into_iter().filter(|(k, _)| in_range(k)).collect();
            assert_eq!(entries_of(&part.snapshot), expected, "round {round}, range {range:?}, cut {cut:?}");
            assert_eq!(seen(&part.changes), seen(&whole.changes));
        }
    }

    #[test]
    fn large_diff_reports_its_cost() {
        // 1M entries in release builds (`cargo test --release`); fewer in debug to stay quick.
        let n: usize = if cfg!(debug_assertions) { 100_000 } else { 1_000_000 };
        let key = |i: usize| {
            format!(
                "logs/2024/{:02}/{:02}/host-{:03}/part-{:06}.json.gz",
                1 + i / 560_000,
                1 + i / 20_000 % 28,
                i / 400 % 50,
                i % 400
            )
        };
        let etag = |i: usize, generation: usize| {
            format!("\"{:032x}\"", (i as u128 + 1) * 0x9e37_79b9_7f4a_7c15 + generation as u128)
        };
        let mut state = crate::state::State::new("prefix=logs/");
        let mut writer = SnapshotWriter::new();
        // Old: every key but each 100th (those get created); each 50th changes; each 70th is deleted.
        for i in (0..n).filter(|i| i % 100 != 0) {
            writer.push(&key(i), version_hash(&etag(i, 0))).unwrap();
        }
        state.snapshot = writer.finish();
        let stored = state.encode();
        let pages: Vec<Vec<Entry>> = (0..n)
            .filter(|i| i % 70 != 1)
            .map(|i| entry(&key(i), &etag(i, usize::from(i % 50 == 7))))
            .collect::<Vec<_>>()
            .chunks(1000)
            .map(|c| c.to_vec())
            .collect();

        let (mut loaded, decoded) = timed(|| crate::state::State::decode(&stored).unwrap());
        let (output, diffed) = timed(|| {
            let mut differ = Differ::new(&loaded.snapshot, &ListRange::default());
            for page in pages {
                differ.push_page(page).unwrap();
            }
            differ.finish()
        });
        loaded.snapshot = output.snapshot;
        let (bytes, encoded) = timed(|| loaded.encode());
        eprintln!(
            "diff of {n} entries: decode {decoded}; diff (incl. new snapshot) {diffed}; encode {encoded}; state {} bytes ({:.2}/object)",
            bytes.len(),
            bytes.len() as f64 / n as f64
        );
        let count = |kind| output.changes.iter().filter(|c| c.kind == kind).count();
        let created = (0..n).filter(|i| i % 100 == 0 && i % 70 != 1).count();
        let updated = (0..n).filter(|i| i % 100 != 0 && i % 70 != 1 && i % 50 == 7).count();
        let deleted = (0..n).filter(|i| i % 100 != 0 && i % 70 == 1).count();
        assert_eq!(
            (count(ChangeKind::Created), count(ChangeKind::Updated), count(ChangeKind::Deleted)),
            (created, updated, deleted)
        );
        assert_eq!(loaded.snapshot.len(), n - (0..n).filter(|i| i % 70 == 1).count());
    }
}
