//! One listing pass: key ranges listed in parallel, the streaming diff, bounded changes and
//! the checkpoint. No OpenWhisk calls.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use super::versions::Memo;
use super::PollSettings;
use crate::budget::Budget;
use crate::change::Change;
use crate::diff::{diff_unordered, DiffError, DiffOptions, DiffOutput, Differ, OutsideRange};
use crate::source::{Flow, ListRange, Lister, SourceError};
use crate::state::{Snapshot, SnapshotWriter};

/// What one listing pass found.
pub(super) struct Pass {
    pub(super) snapshot: Snapshot,
    pub(super) changes: Vec<Change>,
    /// Where the next pass resumes; `None` when this pass reached the end.
    pub(super) cursor: Option<String>,
    pub(super) listed: u64,
}

/// Fewest old keys per range worth a listing thread of its own.
pub(super) const MIN_KEYS_PER_RANGE: usize = 5_000;
/// What a pass keeps and when it stops early.
#[derive(Clone, Copy)]
pub(super) struct PassLimits {
    /// How many key ranges to list at once.
    pub(super) parallelism: usize,
    /// Fewest old keys a range must have for the listing to be split.
    pub(super) min_keys_per_range: usize,
    /// Keep the changes (false: a silent baseline only counts them).
    pub(super) emit: bool,
    /// Checkpoint once this many changes were found.
    pub(super) max_changes: usize,
    /// Log progress on stderr every 10 000 entries.
    pub(super) progress: bool,
}

impl PassLimits {
    /// A silent pass (a baseline): one range, listed to the end or the deadline.
    pub(super) fn silent() -> PassLimits {
        PassLimits {
            parallelism: 1,
            min_keys_per_range: MIN_KEYS_PER_RANGE,
            emit: false,
            max_changes: usize::MAX,
            progress: false,
        }
    }

    /// A poll's pass with the feed's settings; silent when `emit` is false.
    pub(super) fn poll(settings: &PollSettings, emit: bool) -> PassLimits {
        // A silent pass keeps no changes: nothing to bound, so it runs to the end or the deadline.
        let max_changes = if emit { settings.max_changes } else { usize::MAX };
        PassLimits {
            parallelism: settings.parallelism,
            min_keys_per_range: MIN_KEYS_PER_RANGE,
            emit,
            max_changes,
            progress: false,
        }
    }
}

/// Lists the source once after `start_after` against `old` and returns what changed;
/// `memo` hands the source the kept versions and notes the listed ones.
pub(super) fn run_pass_with(
    lister: &dyn Lister,
    old: &Snapshot,
    memo: &Memo<'_>,
    start_after: Option<String>,
    exclude: Option<String>,
    budget: &Budget,
    limits: PassLimits,
) -> Result<Option<Pass>, SourceError> {
    let whole = ListRange { start_after: start_after.clone(), end_before: None };
    let options = DiffOptions { exclude_prefix: exclude, discard_changes: !limits.emit, ..DiffOptions::default() };
    let ranges = split_ranges(old, start_after.as_deref(), limits.parallelism, limits.min_keys_per_range);
    let found = AtomicUsize::new(0);
    let listed = AtomicU64::new(0);
    let stop = |count: usize| {
        let total = found.fetch_add(count, Ordering::SeqCst) + count;
        budget.expired() || total >= limits.max_changes
    };
    let progress = |n: usize| {
        let before = listed.fetch_add(n as u64, Ordering::SeqCst);
        let after = before + n as u64;
        if limits.progress && after / 10_000 > before / 10_000 {
            crate::runtime::log(&format!("listed {after} entries…"));
        }
    };
    let outcomes: Vec<Result<RangeOutcome, SourceError>> = if ranges.len() == 1 {
        vec![list_range(lister, old, memo, &whole, options.clone(), limits.max_changes, &stop, &progress)]
    } else {
        // Disjoint key ranges listed at once: each differ writes only its own range.
        let per_range = DiffOptions { outside_range: OutsideRange::Drop, ..options.clone() };
        std::thread::scope(|scope| {
            let handles: Vec<_> = ranges
                .iter()
                .map(|range| {
                    let (per_range, stop, progress) = (per_range.clone(), &stop, &progress);
                    scope.spawn(move || {
                        list_range(lister, old, memo, range, per_range, limits.max_changes, stop, progress)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err(panicked()))).collect()
        })
    };
    let outcomes = outcomes.into_iter().collect::<Result<Vec<_>, _>>()?;
    let listed_total = listed.load(Ordering::SeqCst);
    if outcomes.iter().any(|o| o.out_of_order) {
        // The server does not list in key order: gather the whole range, sort, diff.
        let mut all = Vec::new();
        let done = lister.list(&whole, memo.previous(), &mut |page| {
            memo.record(&page);
            all.extend(page);
            if budget.expired() {
                Flow::Stop
            } else {
                Flow::Continue
            }
        })?;
        if !done {
            return Err(SourceError::Transient(
                "the source lists keys out of order and the listing did not finish in time".to_string(),
            ));
        }
        let listed = all.len() as u64;
        let out = diff_unordered(old, all, &whole, options);
        return Ok(Some(Pass { snapshot: out.snapshot, changes: out.changes, cursor: None, listed }));
    }
    if ranges.len() == 1 {
        let outcome = outcomes.into_iter().next().expect("one range, one outcome");
        return Ok(outcome.out.map(|out| Pass {
            snapshot: out.snapshot,
            changes: out.changes,
            cursor: if outcome.complete { None } else { outcome.last_key },
            listed: listed_total,
        }));
    }
    combine_ranges(old, start_after.as_deref(), &ranges, outcomes, listed_total).map(Some)
}

/// What listing one key range gave.
pub(super) struct RangeOutcome {
    /// The diff of the range (`None` when stopped before the first page).
    out: Option<DiffOutput>,
    /// True when the range was listed to its end.
    complete: bool,
    /// The last key listed, where a cut range resumes.
    last_key: Option<String>,
    /// The listing was not in key order; `out` is meaningless.
    out_of_order: bool,
}

/// Lists one range into a differ; `stop` gets each page's new changes and says whether to stop.
#[allow(clippy::too_many_arguments)]
pub(super) fn list_range(
    lister: &dyn Lister,
    old: &Snapshot,
    memo: &Memo<'_>,
    range: &ListRange,
    options: DiffOptions,
    max_changes: usize,
    stop: &(dyn Fn(usize) -> bool + Sync),
    progress: &(dyn Fn(usize) + Sync),
) -> Result<RangeOutcome, SourceError> {
    let mut differ = Differ::with_options(old, range, options);
    let mut out_of_order = false;
    let mut last_key: Option<String> = None;
    let mut counted = 0;
    let complete = lister.list(range, memo.previous(), &mut |page| {
        progress(page.len());
        memo.record(&page);
        if let Some(last) = page.last() {
            last_key = Some(last.key.clone());
        }
        if let Err(DiffError::OutOfOrder { .. }) = differ.push_page(page) {
            out_of_order = true;
            return Flow::Stop;
        }
        let now = differ.change_count();
        let new = now - counted;
        counted = now;
        if stop(new) {
            Flow::Stop
        } else {
            Flow::Continue
        }
    })?;
    let (out, complete, last_key) = if out_of_order {
        (None, complete, last_key)
    } else if complete {
        // Deletes past the listing are bounded too: a cut there resumes after the cursor.
        match differ.finish_bounded(max_changes) {
            (out, None) => (Some(out), true, last_key),
            (out, cursor) => (Some(out), false, cursor),
        }
    } else {
        (last_key.as_deref().map(|last| differ.checkpoint(last)), false, last_key)
    };
    Ok(RangeOutcome { out, complete, last_key, out_of_order })
}

pub(super) fn panicked() -> SourceError {
    SourceError::Transient("a listing thread panicked".to_string())
}

/// Splits the keys after `start_after` into up to `n` ranges of about equal size, at keys of
/// the previous snapshot. Bounds are exclusive both ways, so a boundary key `b` ends one
/// range as `b` + NUL and starts the next as `b`.
pub(super) fn split_ranges(
    old: &Snapshot,
    start_after: Option<&str>,
    n: usize,
    min_per_range: usize,
) -> Vec<ListRange> {
    let whole = vec![ListRange { start_after: start_after.map(str::to_string), end_before: None }];
    if n <= 1 {
        return whole;
    }
    // Two streaming passes over the compressed snapshot: count, then pick the boundaries.
    // (Collecting the keys would cost tens of MB on a large bucket.)
    let keys_after = || -> Box<dyn Iterator<Item = (String, u64)> + '_> {
        match start_after {
            Some(after) => Box::new(old.iter_from(after).filter(move |(k, _)| k.as_str() > after)),
            None => Box::new(old.iter()),
        }
    };
    let remaining = match start_after {
        Some(_) => keys_after().count(),
        None => old.len(),
    };
    // Too few keys to be worth threads: one range.
    if remaining < n * min_per_range.max(1) {
        return whole;
    }
    let step = remaining / n;
    let bounds: Vec<String> = keys_after()
        .enumerate()
        .filter(|(i, _)| *i > 0 && i % step == 0 && i / step < n)
        .map(|(_, (k, _))| k)
        .collect();
    let mut ranges = Vec::with_capacity(n);
    let mut lower = start_after.map(str::to_string);
    for b in bounds {
        ranges.push(ListRange { start_after: lower, end_before: Some(format!("{b}\0")) });
        lower = Some(b);
    }
    ranges.push(ListRange { start_after: lower, end_before: None });
    ranges
}

/// The old entries with keys in `(after, upto]` (either bound open when `None`).
pub(super) fn copy_old(old: &Snapshot, after: Option<&str>, upto: Option<&str>) -> Result<Snapshot, SourceError> {
    let mut w = SnapshotWriter::new();
    let keys: Box<dyn Iterator<Item = (String, u64)>> = match after {
        Some(a) => Box::new(old.iter_from(a)),
        None => Box::new(old.iter()),
    };
    for (key, hash) in keys {
        if after.is_some_and(|a| key.as_str() <= a) {
            continue;
        }
        if upto.is_some_and(|u| key.as_str() > u) {
            break;
        }
        w.push(&key, hash).map_err(|e| SourceError::Transient(e.to_string()))?;
    }
    Ok(w.finish())
}

/// Joins the outcomes of parallel ranges into one pass. Ranges before the first cut one are
/// taken whole; the cut range up to where it stopped; everything after it keeps its old
/// entries (their changes, if any were seen, are found again by the next poll). The cursor
/// is where the cut range stopped, so no delete is ever reported past what was listed.
pub(super) fn combine_ranges(
    old: &Snapshot,
    start_after: Option<&str>,
    ranges: &[ListRange],
    outcomes: Vec<RangeOutcome>,
    listed: u64,
) -> Result<Pass, SourceError> {
    let mut pieces = Vec::new();
    if start_after.is_some() {
        pieces.push(copy_old(old, None, start_after)?);
    }
    let mut changes = Vec::new();
    let mut cursor = None;
    for (range, outcome) in ranges.iter().zip(outcomes) {
        match outcome.out {
            Some(out) if outcome.complete => {
                pieces.push(out.snapshot);
                changes.extend(out.changes);
            }
            cut => {
                // This range stopped early (or never started): it ends the pass.
                let resume = match cut {
                    Some(out) => {
                        pieces.push(out.snapshot);
                        changes.extend(out.changes);
                        outcome.last_key
                    }
                    None => range.start_after.clone(),
                };
                let after = range.end_before.as_deref().map(|e| e.strip_suffix('\0').unwrap_or(e));
                if let Some(after) = after {
                    pieces.push(copy_old(old, Some(after), None)?);
                }
                cursor = resume;
                break;
            }
        }
    }
    let snapshot = Snapshot::concat(pieces).map_err(|e| SourceError::Transient(e.to_string()))?;
    Ok(Pass { snapshot, changes, cursor, listed })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::{Map, Value};

    use super::*;
    use crate::source::{BlobStore, Entry, Previous};
    use crate::state::version_hash;

    /// A sorted in-memory listing, paged like a server would.
    struct Memory {
        entries: Vec<Entry>,
        page: usize,
    }

    impl Lister for Memory {
        fn source_uri(&self) -> String {
            "memory:".to_string()
        }
        fn event_type_prefix(&self) -> &'static str {
            "test.memory"
        }
        fn data_context(&self) -> Map<String, Value> {
            Map::new()
        }
        fn probe(&self) -> Result<(), SourceError> {
            Ok(())
        }
        fn list(
            &self,
            range: &ListRange,
            _: Previous<'_>,
            page: &mut dyn FnMut(Vec<Entry>) -> Flow,
        ) -> Result<bool, SourceError> {
            let inside: Vec<Entry> = self
                .entries
                .iter()
                .filter(|e| range.start_after.as_deref().is_none_or(|a| e.key.as_str() > a))
                .filter(|e| range.end_before.as_deref().is_none_or(|b| e.key.as_str() < b))
                .cloned()
                .collect();
            for chunk in inside.chunks(self.page) {
                if page(chunk.to_vec()) == Flow::Stop {
                    return Ok(false);
                }
            }
            Ok(true)
        }
        fn blob_store(&self) -> Option<Box<dyn BlobStore>> {
            None
        }
    }

    fn entry(key: String, version: u64) -> Entry {
        Entry { key, version: version.to_string(), attrs: Map::new() }
    }

    /// (old snapshot, new listing) with creates, updates and deletes spread over the keys.
    fn case(seed: u64, n: usize) -> (Snapshot, Vec<Entry>) {
        let mut x = seed | 1;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut old = SnapshotWriter::new();
        let mut new = Vec::new();
        for i in 0..n {
            let key = format!("k/{:05}/{}", i, rnd() % 3);
            let r = rnd() % 10;
            if r != 0 {
                old.push(&key, version_hash("1")).unwrap();
            }
            match r {
                1 => {}                       // deleted
                2 => new.push(entry(key, 2)), // updated
                _ => new.push(entry(key, 1)), // unchanged or created (r == 0)
            }
        }
        (old.finish(), new)
    }

    fn limits(parallelism: usize, max_changes: usize) -> PassLimits {
        PassLimits { parallelism, min_keys_per_range: 1, emit: true, max_changes, progress: false }
    }

    fn keys(changes: &[Change]) -> Vec<(&'static str, String)> {
        changes.iter().map(|c| (c.kind.as_str(), c.key.clone())).collect()
    }

    #[test]
    fn parallel_ranges_give_exactly_the_sequential_pass() {
        let budget = Budget::new(None, Duration::ZERO);
        for seed in 1..40u64 {
            let (old, new) = case(seed, 50 + (seed as usize * 7) % 200);
            let lister = Memory { entries: new, page: 1 + seed as usize % 7 };
            let seq = run_pass_with(&lister, &old, &Memo::none(), None, None, &budget, limits(1, usize::MAX))
                .unwrap()
                .unwrap();
            for n in 2..6 {
                let par = run_pass_with(&lister, &old, &Memo::none(), None, None, &budget, limits(n, usize::MAX))
                    .unwrap()
                    .unwrap();
                assert_eq!(par.snapshot, seq.snapshot, "seed {seed}, {n} ranges");
                assert_eq!(keys(&par.changes), keys(&seq.changes), "seed {seed}, {n} ranges");
                assert_eq!(par.cursor, None);
            }
        }
    }

    #[test]
    fn passes_cut_by_max_changes_resume_to_the_full_result_with_each_change_once() {
        let budget = Budget::new(None, Duration::ZERO);
        for seed in 1..25u64 {
            let (old, mut new) = case(seed, 300);
            if seed % 2 == 0 {
                // The tail of the bucket is gone: most changes are deletes past the listing.
                new.truncate(new.len() / 3);
            }
            let lister = Memory { entries: new, page: 3 };
            let full = run_pass_with(&lister, &old, &Memo::none(), None, None, &budget, limits(1, usize::MAX))
                .unwrap()
                .unwrap();
            for n in [1, 3] {
                let mut snapshot = old.clone();
                let mut cursor: Option<String> = None;
                let mut seen = Vec::new();
                for round in 0.. {
                    assert!(round < 500, "seed {seed}: no convergence");
                    let pass =
                        run_pass_with(&lister, &snapshot, &Memo::none(), cursor.clone(), None, &budget, limits(n, 7))
                            .unwrap()
                            .unwrap();
                    // A page (3 entries) may overshoot the cap; each range stops on its own.
                    assert!(pass.changes.len() <= n * (7 + 3), "seed {seed}: {} changes", pass.changes.len());
                    seen.extend(keys(&pass.changes));
                    snapshot = pass.snapshot;
                    cursor = pass.cursor;
                    if cursor.is_none() {
                        break;
                    }
                }
                let mut want = keys(&full.changes);
                want.sort();
                seen.sort();
                assert_eq!(seen, want, "seed {seed}, {n} ranges: every change exactly once");
                assert_eq!(snapshot, full.snapshot, "seed {seed}, {n} ranges");
            }
        }
    }
}
