//! One listing pass: key ranges listed in parallel, the streaming diff, bounded changes and
//! the checkpoint. No OpenWhisk calls.
//!
//! A pass lists the key ranges its state says are left (all keys when none are), split into
//! up to `parallelism` listing ranges, each diffed on its own against the old snapshot and
//! joined in key order. A range that is cut (deadline, `maxChangesPerPoll`) keeps what it
//! listed and leaves the rest of itself to the next pass; a range never started is left whole.

use std::ops::Bound;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use super::keyspace;
use super::versions::Memo;
use super::PollSettings;
use crate::budget::Budget;
use crate::change::Change;
use crate::diff::{diff_unordered, DiffOptions, DiffOutput, Differ, OutsideRange};
use crate::source::{right_after, Entry, Flow, ListRange, Lister, SourceError};
use crate::state::{Snapshot, SnapshotWriter};

/// What one listing pass found.
pub(super) struct Pass {
    pub(super) snapshot: Snapshot,
    pub(super) changes: Vec<Change>,
    /// The key ranges the next pass lists (this pass's checkpoint, sorted and disjoint); empty
    /// when this pass listed every range to its end.
    pub(super) resume: Vec<ListRange>,
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
    /// A silent pass (a baseline) in up to `parallelism` ranges, listed to the end or the
    /// deadline.
    pub(super) fn silent(parallelism: usize) -> PassLimits {
        PassLimits {
            parallelism,
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

/// When the listing threads stop: the deadline, `max_changes` found in all, or a failed range.
struct Stop<'a> {
    budget: &'a Budget,
    max_changes: usize,
    found: AtomicUsize,
    failed: AtomicBool,
    listed: AtomicU64,
    progress: bool,
}

impl Stop<'_> {
    /// Whether to stop now.
    fn now(&self) -> bool {
        self.failed.load(Ordering::SeqCst)
            || self.budget.expired()
            || self.found.load(Ordering::SeqCst) >= self.max_changes
    }

    /// Counts a page's new changes; whether to stop after it.
    fn after_page(&self, changes: usize) -> bool {
        self.found.fetch_add(changes, Ordering::SeqCst);
        self.now()
    }

    fn listed(&self, n: usize) {
        let before = self.listed.fetch_add(n as u64, Ordering::SeqCst);
        let after = before + n as u64;
        if self.progress && after / 10_000 > before / 10_000 {
            crate::runtime::log(&format!("listed {after} entries…"));
        }
    }
}

/// Lists the key ranges `resume` leaves (every key when it is empty) against `old` and
/// returns what changed, or `None` when not one entry could be listed in time; `memo` hands
/// the source the kept versions and notes the listed ones.
pub(super) fn run_pass_with(
    lister: &dyn Lister,
    old: &Snapshot,
    memo: &Memo<'_>,
    resume: &[ListRange],
    exclude: Option<String>,
    budget: &Budget,
    limits: PassLimits,
) -> Result<Option<Pass>, SourceError> {
    let pending = if resume.is_empty() { vec![ListRange::default()] } else { resume.to_vec() };
    // Each range's differ writes only its own range; the pieces are joined in key order.
    let options =
        DiffOptions { exclude_prefix: exclude, discard_changes: !limits.emit, outside_range: OutsideRange::Drop };
    let mut ranges = split_ranges(old, &pending, limits.parallelism, limits.min_keys_per_range);
    let stop = Stop {
        budget,
        max_changes: limits.max_changes,
        found: AtomicUsize::new(0),
        failed: AtomicBool::new(false),
        listed: AtomicU64::new(0),
        progress: limits.progress,
    };
    let mut outcomes = Vec::new();
    if let ([range], true) = (ranges.as_slice(), limits.parallelism > 1) {
        // The snapshot has nothing to split at. Once the listing shows more than a page, the
        // rest is split by probing the key space if the snapshot held fewer than half the keys
        // those pages showed (a baseline, a bucket that grew); a key space it knows is listed
        // on as one range, as before.
        let range = range.clone();
        let decide = |last: &str, seen: usize| -> Option<Vec<ListRange>> {
            let head = ListRange { start_after: range.start_after.clone(), end_before: Some(format!("{last}\0")) };
            if stop.now() || keys_in(old, &head).take(seen / 2).count() >= seen / 2 {
                return None;
            }
            let rest = ListRange { start_after: Some(last.to_string()), end_before: range.end_before.clone() };
            // Probing only spreads the work: when it fails, the listing goes on as one range.
            match keyspace::boundaries(lister, &rest, limits.parallelism) {
                Ok(found) if !found.is_empty() => Some(keyspace::ranges_between(&rest, &found)),
                Ok(_) => None,
                Err(e) => {
                    crate::runtime::log(&format!("probing the key space failed ({e}): listing it in one range"));
                    None
                }
            }
        };
        let (outcome, split) =
            list_range(lister, old, memo, &range, options.clone(), limits.max_changes, &stop, Some(&decide))?;
        outcomes.push(outcome);
        if let Some(Split { head, rest, rest_listed }) = split {
            if rest_listed {
                // The listing ended with the head: the rest holds no key.
                let whole = ListRange { start_after: rest[0].start_after.clone(), end_before: range.end_before };
                let (out, cursor) =
                    Differ::with_options(old, &whole, options.clone()).finish_bounded(limits.max_changes);
                let complete = cursor.is_none();
                outcomes.push(RangeOutcome { out: Some(out), complete, last_key: cursor, out_of_order: false });
                ranges = vec![head, whole];
            } else {
                ranges = std::iter::once(head).chain(rest).collect();
            }
        }
    }
    let started = outcomes.len();
    outcomes.extend(list_ranges(lister, old, memo, &ranges[started..], &options, limits, &stop)?);
    if outcomes.iter().any(|o| o.out_of_order) {
        return unordered_pass(lister, old, memo, &pending, options, budget).map(Some);
    }
    if outcomes.iter().all(|o| o.out.is_none()) {
        return Ok(None);
    }
    combine_ranges(old, &ranges, outcomes, stop.listed.load(Ordering::SeqCst)).map(Some)
}

/// How `list_range` split its range: `head` (from the range's start to the last key of
/// the pages listed before the decision, listed whole) and the listing ranges of the rest.
struct Split {
    head: ListRange,
    rest: Vec<ListRange>,
    /// The lister had reached the end of the range with the head: the rest holds no key.
    rest_listed: bool,
}

/// Asked with the last key listed and how many entries so far: the listing ranges to split
/// the rest of the range into, if it is to be split.
type Decide<'a> = dyn Fn(&str, usize) -> Option<Vec<ListRange>> + 'a;

/// Pages listed before the split decision (a key space of one or two pages is never probed).
const PAGES_BEFORE_SPLIT: usize = 2;

/// Lists one range into a differ, counting each page's new changes in `stop`, which says
/// whether to stop. With `decide`, after its first `PAGES_BEFORE_SPLIT` pages it asks (with
/// the last key listed and how many entries) whether to split the rest: then it stops there,
/// and its outcome is the head's. The pages before the decision are held (two pages of
/// memory), since the differ's range depends on it; without a split the listing goes on in the
/// same request sequence (continuation tokens), as an unsplit range always did.
#[allow(clippy::too_many_arguments)]
fn list_range(
    lister: &dyn Lister,
    old: &Snapshot,
    memo: &Memo<'_>,
    range: &ListRange,
    options: DiffOptions,
    max_changes: usize,
    stop: &Stop<'_>,
    decide: Option<&Decide<'_>>,
) -> Result<(RangeOutcome, Option<Split>), SourceError> {
    let mut differ: Option<Differ<'_>> = None;
    let mut held: Vec<Vec<Entry>> = Vec::new();
    let mut split: Option<(ListRange, Vec<ListRange>)> = None;
    let mut out_of_order = false;
    let mut last_key: Option<String> = None;
    let mut counted = 0;
    // Pushes pages into the differ; false when they are out of order.
    let push = |differ: &mut Differ<'_>, pages: Vec<Vec<Entry>>| pages.into_iter().all(|p| differ.push_page(p).is_ok());
    let complete = lister.list(range, memo.previous(), &mut |page| {
        stop.listed(page.len());
        memo.record(&page);
        if let Some(last) = page.last() {
            last_key = Some(last.key.clone());
        }
        held.push(page);
        let mut stopping = false;
        if let (None, Some(decide)) = (&differ, decide) {
            if held.len() < PAGES_BEFORE_SPLIT {
                return if stop.now() { Flow::Stop } else { Flow::Continue };
            }
            let seen = held.iter().map(Vec::len).sum();
            let mut target = range.clone();
            if let Some(rest) = last_key.as_deref().and_then(|last| decide(last, seen)) {
                target.end_before = rest.first().and_then(|r| r.start_after.as_ref()).map(|k| format!("{k}\0"));
                split = Some((target.clone(), rest));
                stopping = true;
            }
            differ = Some(Differ::with_options(old, &target, options.clone()));
        }
        if differ.is_none() {
            differ = Some(Differ::with_options(old, range, options.clone()));
        }
        let Some(d) = differ.as_mut() else { return Flow::Stop };
        if !push(d, std::mem::take(&mut held)) {
            out_of_order = true;
            return Flow::Stop;
        }
        let now = d.change_count();
        let new = now - counted;
        counted = now;
        if stop.after_page(new) || stopping {
            Flow::Stop
        } else {
            Flow::Continue
        }
    })?;
    let mut differ = differ.unwrap_or_else(|| Differ::with_options(old, range, options.clone()));
    if !held.is_empty() && !push(&mut differ, std::mem::take(&mut held)) {
        out_of_order = true;
    }
    stop.after_page(differ.change_count() - counted);
    let outcome = if out_of_order {
        RangeOutcome { out: None, complete, last_key, out_of_order: true }
    } else if complete || split.is_some() {
        // Listed to its end (the range's, or the head's: every key up to the decision).
        match differ.finish_bounded(max_changes) {
            (out, None) => RangeOutcome { out: Some(out), complete: true, last_key, out_of_order },
            (out, cursor) => RangeOutcome { out: Some(out), complete: false, last_key: cursor, out_of_order },
        }
    } else {
        let out = last_key.as_deref().map(|last| differ.checkpoint(last));
        RangeOutcome { out, complete: false, last_key, out_of_order }
    };
    Ok((outcome, split.map(|(head, rest)| Split { head, rest, rest_listed: complete })))
}

/// Lists `ranges` with up to `limits.parallelism` threads, each taking the next range not yet
/// started; once `stop` says so no new range starts (its outcome is "never started").
fn list_ranges(
    lister: &dyn Lister,
    old: &Snapshot,
    memo: &Memo<'_>,
    ranges: &[ListRange],
    options: &DiffOptions,
    limits: PassLimits,
    stop: &Stop<'_>,
) -> Result<Vec<RangeOutcome>, SourceError> {
    let list = |range: &ListRange| {
        list_range(lister, old, memo, range, options.clone(), limits.max_changes, stop, None)
            .map(|(outcome, _)| outcome)
    };
    let slots: Vec<Mutex<Option<RangeOutcome>>> = ranges.iter().map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    let work = || -> Result<(), SourceError> {
        while !stop.now() {
            let i = next.fetch_add(1, Ordering::SeqCst);
            let Some(range) = ranges.get(i) else { break };
            let outcome = list(range).inspect_err(|_| stop.failed.store(true, Ordering::SeqCst))?;
            if let Ok(mut slot) = slots[i].lock() {
                *slot = Some(outcome);
            }
        }
        Ok(())
    };
    // One copy of the work, however many threads run it (a closure spawned and also called
    // directly would be compiled into the binary twice).
    let work: &(dyn Fn() -> Result<(), SourceError> + Sync) = &work;
    let threads = limits.parallelism.clamp(1, ranges.len().max(1));
    if threads == 1 {
        work()?;
    } else {
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads).map(|_| scope.spawn(work)).collect();
            // Every thread joined before the first error is returned.
            let joined: Vec<Result<(), SourceError>> =
                handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err(panicked()))).collect();
            joined.into_iter().collect::<Result<(), _>>()
        })?;
    }
    // An empty slot is a range never started (the default outcome); a poisoned lock would need
    // a panic while it is held, and a thread that panics has returned its error above.
    Ok(slots.into_iter().map(|s| s.into_inner().ok().flatten().unwrap_or_default()).collect())
}

/// The fallback for a source that does not list in key order: each pending range gathered
/// whole, sorted and diffed (`diff_unordered`); it must finish in one pass.
fn unordered_pass(
    lister: &dyn Lister,
    old: &Snapshot,
    memo: &Memo<'_>,
    pending: &[ListRange],
    options: DiffOptions,
    budget: &Budget,
) -> Result<Pass, SourceError> {
    let mut outcomes = Vec::new();
    let mut listed = 0;
    for range in pending {
        let mut all = Vec::new();
        let done = lister.list(range, memo.previous(), &mut |page| {
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
        listed += all.len() as u64;
        let out = diff_unordered(old, all, range, options.clone());
        outcomes.push(RangeOutcome { out: Some(out), complete: true, last_key: None, out_of_order: false });
    }
    combine_ranges(old, pending, outcomes, listed)
}

/// What listing one key range gave.
#[derive(Default)]
struct RangeOutcome {
    /// The diff of the range (`None` when stopped before the first page, or never started).
    out: Option<DiffOutput>,
    /// True when the range was listed to its end.
    complete: bool,
    /// The last key listed, where a cut range resumes.
    last_key: Option<String>,
    /// The listing was not in key order; `out` is meaningless.
    out_of_order: bool,
}

pub(super) fn panicked() -> SourceError {
    SourceError::Transient("a listing thread panicked".to_string())
}

/// The old keys inside `range`, in order.
fn keys_in<'a>(old: &'a Snapshot, range: &'a ListRange) -> impl Iterator<Item = String> + 'a {
    let from = match &range.start_after {
        Some(after) => old.iter_from(after),
        None => old.iter(),
    };
    from.map(|(k, _)| k).take_while(move |k| range.end_before.as_deref().is_none_or(|end| k.as_str() < end))
}

/// Splits the `pending` key ranges into about `n` listing ranges holding about as many keys
/// of the previous snapshot each, at its keys (a boundary key `b` ends one range as `b` + NUL
/// and starts the next as `b`; bounds are exclusive both ways). Every pending range stays at
/// least one listing range, and new boundaries are made only while there are fewer ranges
/// than `n`, so a checkpoint never holds more than `n` ranges (or as many as it had).
fn split_ranges(old: &Snapshot, pending: &[ListRange], n: usize, min_per_range: usize) -> Vec<ListRange> {
    let extra = n.saturating_sub(pending.len());
    if extra == 0 {
        return pending.to_vec();
    }
    // Two streaming passes over the compressed snapshot: count, then pick the boundaries.
    // (Collecting the keys would cost tens of MB on a large bucket.)
    let total: usize = pending.iter().map(|r| keys_in(old, r).count()).sum();
    // Too few keys to be worth threads: the ranges as they are.
    if total < n * min_per_range.max(1) {
        return pending.to_vec();
    }
    let step = total / (extra + 1);
    let mut ranges = Vec::with_capacity(pending.len() + extra);
    let mut index = 0;
    let mut made = 0;
    for range in pending {
        let mut lower = range.start_after.clone();
        for key in keys_in(old, range) {
            if index > 0 && index % step == 0 && made < extra {
                ranges.push(ListRange { start_after: lower, end_before: Some(format!("{key}\0")) });
                lower = Some(key);
                made += 1;
            }
            index += 1;
        }
        ranges.push(ListRange { start_after: lower, end_before: range.end_before.clone() });
    }
    ranges
}

/// The old entries with keys between `lower` and `upper`.
fn copy_old(old: &Snapshot, lower: Bound<&str>, upper: Bound<&str>) -> Result<Snapshot, SourceError> {
    let mut w = SnapshotWriter::new();
    // Keys at or after `x` + NUL are the keys after `x`: the index finds them.
    let keys = match lower {
        Bound::Excluded(after) => old.iter_from(after),
        Bound::Included(from) => match from.strip_suffix('\0') {
            Some(after) => old.iter_from(after),
            None => old.iter(),
        },
        Bound::Unbounded => old.iter(),
    };
    for (key, hash) in keys {
        let below = match lower {
            Bound::Included(from) => key.as_str() < from,
            _ => false,
        };
        if below {
            continue;
        }
        let past = match upper {
            Bound::Included(upto) => key.as_str() > upto,
            Bound::Excluded(end) => key.as_str() >= end,
            Bound::Unbounded => false,
        };
        if past {
            break;
        }
        w.push(&key, hash).map_err(|e| SourceError::Transient(e.to_string()))?;
    }
    Ok(w.finish())
}

/// Appends a range left to list, joined with the one before when they are adjacent; a range
/// that holds no key at all (after `k`, before `k` + NUL) is dropped.
fn push_resume(resume: &mut Vec<ListRange>, range: ListRange) {
    let meets = |end: &Option<String>| match (end, &range.start_after) {
        (Some(end), Some(key)) => right_after(end, key),
        _ => false,
    };
    if meets(&range.end_before) {
        return;
    }
    if let Some(last) = resume.last_mut() {
        if meets(&last.end_before) {
            last.end_before = range.end_before;
            return;
        }
    }
    resume.push(range);
}

/// Joins the outcomes of the listing ranges (sorted, disjoint) into one pass. Old entries
/// between the ranges (listed by an earlier pass) are kept as they are; a complete range gives
/// its diff; a cut range its diff up to where it stopped (new entries up to its last key, old
/// ones after it, no delete past it) and leaves the rest of itself to list; a range never
/// started keeps its old entries and is left whole. So every range keeps its own progress,
/// and the pass is exactly what listing each range sequentially up to where it stopped gives.
fn combine_ranges(
    old: &Snapshot,
    ranges: &[ListRange],
    outcomes: Vec<RangeOutcome>,
    listed: u64,
) -> Result<Pass, SourceError> {
    let mut pieces = Vec::new();
    let mut changes = Vec::new();
    let mut resume = Vec::new();
    // Where the old entries between the previous range and the next one start (`None`: the
    // previous range reached the end of the key space).
    let mut gap: Option<Bound<&str>> = Some(Bound::Unbounded);
    for (range, outcome) in ranges.iter().zip(outcomes) {
        if let (Some(lower), Some(start)) = (gap, range.start_after.as_deref()) {
            pieces.push(copy_old(old, lower, Bound::Included(start))?);
        }
        match outcome.out {
            Some(out) => {
                pieces.push(out.snapshot);
                changes.extend(out.changes);
                if !outcome.complete {
                    let start_after = outcome.last_key.or_else(|| range.start_after.clone());
                    push_resume(&mut resume, ListRange { start_after, end_before: range.end_before.clone() });
                }
            }
            None => {
                let lower = range.start_after.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
                let upper = range.end_before.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
                pieces.push(copy_old(old, lower, upper)?);
                push_resume(&mut resume, range.clone());
            }
        }
        gap = range.end_before.as_deref().map(Bound::Included);
    }
    if let Some(lower) = gap {
        pieces.push(copy_old(old, lower, Bound::Unbounded)?);
    }
    let snapshot = Snapshot::concat(pieces).map_err(|e| SourceError::Transient(e.to_string()))?;
    Ok(Pass { snapshot, changes, resume, listed })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::{Map, Value};

    use super::*;
    use crate::source::{BlobStore, Entry, Previous, Probe};
    use crate::state::version_hash;

    /// A sorted in-memory listing, paged like a server would.
    struct Memory {
        entries: Vec<Entry>,
        page: usize,
        /// Each `list` call stops after this many pages, as a listing cut by the deadline does.
        pages_per_call: Option<usize>,
        /// Pages are listed in reverse (a server that does not list in key order).
        reversed: bool,
        /// Answers `first_after` (else the key space is not probed).
        probes: bool,
        /// `first_after` calls so far.
        probed: std::sync::atomic::AtomicUsize,
        /// Every key listed so far.
        seen: Mutex<Vec<String>>,
    }

    impl Memory {
        fn new(entries: Vec<Entry>, page: usize) -> Memory {
            Memory {
                entries,
                page,
                pages_per_call: None,
                reversed: false,
                probes: false,
                probed: Default::default(),
                seen: Mutex::new(Vec::new()),
            }
        }

        fn take_seen(&self) -> Vec<String> {
            std::mem::take(&mut *self.seen.lock().unwrap())
        }
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
            let mut inside: Vec<Entry> = self
                .entries
                .iter()
                .filter(|e| range.start_after.as_deref().is_none_or(|a| e.key.as_str() > a))
                .filter(|e| range.end_before.as_deref().is_none_or(|b| e.key.as_str() < b))
                .cloned()
                .collect();
            if self.reversed {
                inside.reverse();
            }
            for (i, chunk) in inside.chunks(self.page).enumerate() {
                if self.pages_per_call.is_some_and(|n| i >= n) {
                    return Ok(false);
                }
                self.seen.lock().unwrap().extend(chunk.iter().map(|e| e.key.clone()));
                if page(chunk.to_vec()) == Flow::Stop {
                    return Ok(false);
                }
            }
            Ok(true)
        }
        fn first_after(&self, after: Option<&str>) -> Result<Probe, SourceError> {
            if !self.probes {
                return Ok(Probe::Unsupported);
            }
            self.probed.fetch_add(1, Ordering::SeqCst);
            let next = self.entries.iter().find(|e| after.is_none_or(|a| e.key.as_str() > a));
            Ok(next.map_or(Probe::End, |e| Probe::Key(e.key.clone())))
        }
        fn blob_store(&self) -> Option<Box<dyn BlobStore>> {
            None
        }
    }

    fn entry(key: String, version: u64) -> Entry {
        Entry { key, version: version.to_string(), attrs: Map::new() }
    }

    /// xorshift: a tiny deterministic generator.
    fn rng(seed: u64) -> impl FnMut() -> u64 {
        let mut x = seed | 1;
        move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        }
    }

    /// (old snapshot, new listing) with creates, updates and deletes spread over the keys.
    fn case(seed: u64, n: usize) -> (Snapshot, Vec<Entry>) {
        let mut rnd = rng(seed);
        let mut old = SnapshotWriter::new();
        let mut new = Vec::new();
        for i in 0..n {
            let key = format!("k/{:05}/{}", i, rnd() % 3);
            place(key, rnd() % 10, &mut old, &mut new);
        }
        (old.finish(), new)
    }

    /// Keys of any shape: bytes above 0x7F (two-, three- and four-byte UTF-8, U+FFFF and
    /// U+10000 around the surrogate gap's end), `/`, DEL, spaces, and prefixes of each other.
    fn awkward_case(seed: u64, n: usize) -> (Snapshot, Vec<Entry>) {
        const PIECES: [&str; 12] =
            ["a", "b", "/", "a/", "é", "\u{7f}", "\u{80}", "\u{ffff}", "\u{10000}", "😀", " ", "z"];
        let mut rnd = rng(seed);
        let mut keys: Vec<String> =
            (0..n).map(|_| (0..1 + rnd() % 6).map(|_| PIECES[(rnd() % 12) as usize]).collect()).collect();
        keys.sort();
        keys.dedup();
        mutate(seed, keys)
    }

    /// Sorted unique `keys` as an old snapshot and a new listing: about a tenth of the keys
    /// created, a tenth updated, a tenth deleted.
    fn mutate(seed: u64, mut keys: Vec<String>) -> (Snapshot, Vec<Entry>) {
        keys.sort();
        keys.dedup();
        let mut rnd = rng(seed ^ 0x5eed);
        let mut old = SnapshotWriter::new();
        let mut new = Vec::new();
        for key in keys {
            place(key, rnd() % 10, &mut old, &mut new);
        }
        (old.finish(), new)
    }

    /// Puts `key` in the old snapshot and the new listing as `r` (0 to 9) says: created (0),
    /// deleted (1), updated (2), else unchanged.
    fn place(key: String, r: u64, old: &mut SnapshotWriter, new: &mut Vec<Entry>) {
        if r != 0 {
            old.push(&key, version_hash("1")).unwrap();
        }
        match r {
            1 => {}                       // deleted
            2 => new.push(entry(key, 2)), // updated
            _ => new.push(entry(key, 1)), // unchanged or created (r == 0)
        }
    }

    fn limits(parallelism: usize, max_changes: usize) -> PassLimits {
        PassLimits { parallelism, min_keys_per_range: 1, emit: true, max_changes, progress: false }
    }

    fn keys(changes: &[Change]) -> Vec<(&'static str, String)> {
        changes.iter().map(|c| (c.kind.as_str(), c.key.clone())).collect()
    }

    fn inside(ranges: &[ListRange], key: &str) -> bool {
        ranges.iter().any(|r| {
            r.start_after.as_deref().is_none_or(|a| key > a) && r.end_before.as_deref().is_none_or(|b| key < b)
        })
    }

    /// The entries of `snapshot` whose keys `keep` says yes to.
    fn entries_where(snapshot: &Snapshot, keep: impl Fn(&str) -> bool) -> Vec<(String, u64)> {
        snapshot.iter().filter(|(k, _)| keep(k)).collect()
    }

    fn sorted_and_disjoint(ranges: &[ListRange]) -> bool {
        ranges.windows(2).all(|w| match (&w[0].end_before, &w[1].start_after) {
            (Some(end), Some(start)) => end.as_str() <= format!("{start}\0").as_str(),
            _ => false,
        })
    }

    /// Runs passes from `old` with `limits`, each resuming where the previous one stopped,
    /// until none is left to list, hands each to `check` with the snapshot and the ranges it
    /// started from and its round, and asserts that they report every change of the full pass
    /// `full` exactly once and end in its snapshot.
    fn passes_to_the_full_result(
        lister: &Memory,
        old: &Snapshot,
        limits: PassLimits,
        full: &Pass,
        what: &str,
        mut check: impl FnMut(&Pass, &Snapshot, &[ListRange], usize),
    ) {
        let budget = Budget::new(None, Duration::ZERO);
        let mut snapshot = old.clone();
        let mut resume: Vec<ListRange> = Vec::new();
        let mut seen = Vec::new();
        for round in 0.. {
            assert!(round < 1000, "{what}: no convergence");
            let Some(pass) = run_pass_with(lister, &snapshot, &Memo::none(), &resume, None, &budget, limits).unwrap()
            else {
                panic!("{what}: a pass listed nothing");
            };
            check(&pass, &snapshot, &resume, round);
            seen.extend(keys(&pass.changes));
            snapshot = pass.snapshot;
            resume = pass.resume;
            if resume.is_empty() {
                break;
            }
        }
        let mut want = keys(&full.changes);
        want.sort();
        seen.sort();
        assert_eq!(seen, want, "{what}: every change exactly once");
        assert_eq!(snapshot, full.snapshot, "{what}");
    }

    #[test]
    fn parallel_ranges_give_exactly_the_sequential_pass() {
        let budget = Budget::new(None, Duration::ZERO);
        for seed in 1..40u64 {
            let size = 50 + (seed as usize * 7) % 200;
            let (mut old, new) = if seed % 2 == 0 { case(seed, size) } else { awkward_case(seed, size) };
            if seed % 3 == 0 {
                // A baseline: nothing to split at but what probing finds.
                old = Snapshot::default();
            }
            let mut lister = Memory::new(new, 1 + seed as usize % 7);
            lister.probes = seed % 4 != 1;
            let seq = run_pass_with(&lister, &old, &Memo::none(), &[], None, &budget, limits(1, usize::MAX))
                .unwrap()
                .unwrap();
            for n in 2..6 {
                let par = run_pass_with(&lister, &old, &Memo::none(), &[], None, &budget, limits(n, usize::MAX))
                    .unwrap()
                    .unwrap();
                assert_eq!(par.snapshot, seq.snapshot, "seed {seed}, {n} ranges");
                assert_eq!(keys(&par.changes), keys(&seq.changes), "seed {seed}, {n} ranges");
                assert_eq!(par.resume, Vec::<ListRange>::new());
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
            let lister = Memory::new(new, 3);
            let full = run_pass_with(&lister, &old, &Memo::none(), &[], None, &budget, limits(1, usize::MAX))
                .unwrap()
                .unwrap();
            for n in [1, 3] {
                let what = format!("seed {seed}, {n} ranges");
                passes_to_the_full_result(&lister, &old, limits(n, 7), &full, &what, |pass, _, resume, round| {
                    assert!(round < 500, "seed {seed}: no convergence");
                    // A page (3 entries) may overshoot the cap; each range stops on its own.
                    assert!(
                        pass.changes.len() <= n * (7 + 3),
                        "seed {seed}, {n} ranges, round {round}, resume {resume:?}: {:?}",
                        keys(&pass.changes)
                    );
                });
            }
        }
    }

    /// The invariants of a checkpoint with several cursors, on passes cut after a few pages
    /// per range (as the deadline cuts them): every range keeps its own progress (no key a
    /// pass listed is left to list again), the snapshot outside the ranges left is the new
    /// listing's and inside them the old one's (a partial listing changes nothing there), no
    /// change (delete or other) is reported inside them, the checkpoint stays bounded, and the
    /// passes end in exactly the full result with each change once.
    #[test]
    fn cut_parallel_passes_keep_every_ranges_progress_and_resume_to_the_full_result() {
        let budget = Budget::new(None, Duration::ZERO);
        for seed in 1..30u64 {
            let (mut old, new) = if seed % 3 == 0 { case(seed, 400) } else { awkward_case(seed, 400) };
            if seed % 4 == 0 {
                old = Snapshot::default();
            }
            let mut lister = Memory::new(new, 1 + seed as usize % 4);
            lister.probes = seed % 2 == 0;
            let full = run_pass_with(&lister, &old, &Memo::none(), &[], None, &budget, limits(1, usize::MAX))
                .unwrap()
                .unwrap();
            lister.pages_per_call = Some(1 + seed as usize % 3);
            for n in [1, 2, 4, 7] {
                let mut advanced = Vec::new();
                lister.take_seen();
                let ranges = format!("seed {seed}, {n} ranges");
                let each = |pass: &Pass, snapshot: &Snapshot, resume: &[ListRange], round: usize| {
                    let what = format!("seed {seed}, {n} ranges, round {round}, resume {:?}", pass.resume);
                    assert!(sorted_and_disjoint(&pass.resume), "{what}");
                    let bound = (keyspace::RANGES_PER_THREAD * n).max(resume.len());
                    assert!(pass.resume.len() <= bound, "{what}: the checkpoint grew");
                    let listed = lister.take_seen();
                    assert!(listed.iter().all(|k| !inside(&pass.resume, k)), "{what}: a listed key is left to list");
                    assert_eq!(pass.listed, listed.len() as u64, "{what}");
                    assert!(pass.changes.iter().all(|c| !inside(&pass.resume, &c.key)), "{what}: a change inside");
                    let left = |k: &str| inside(&pass.resume, k);
                    assert_eq!(entries_where(&pass.snapshot, left), entries_where(snapshot, left), "{what}");
                    let done = |k: &str| !inside(&pass.resume, k);
                    assert_eq!(entries_where(&pass.snapshot, done), entries_where(&full.snapshot, done), "{what}");
                    advanced.push(listed.len());
                };
                passes_to_the_full_result(&lister, &old, limits(n, usize::MAX), &full, &ranges, each);
                // A pass splits at the snapshot's keys, or by probing once it has seen two pages.
                let can_split = !old.is_empty() || (lister.probes && lister.pages_per_call > Some(PAGES_BEFORE_SPLIT));
                if n > 1 && advanced.len() > 2 && can_split {
                    // The first pass lists up to `pages_per_call` pages in each of its n ranges.
                    let per_range = lister.page * lister.pages_per_call.unwrap_or(1);
                    assert!(advanced[0] > per_range, "seed {seed}, {n} ranges: the first pass advanced {advanced:?}");
                }
            }
        }
    }

    /// A baseline probes the key space and lists it in several ranges; a pass over keys the
    /// snapshot knows does not probe (steady polls cost no extra requests).
    #[test]
    fn only_a_key_space_the_snapshot_does_not_know_is_probed() {
        let budget = Budget::new(None, Duration::ZERO);
        let (old, new) = awkward_case(5, 600);
        let mut lister = Memory::new(new, 10);
        lister.probes = true;
        let base =
            run_pass_with(&lister, &Snapshot::default(), &Memo::none(), &[], None, &budget, limits(4, usize::MAX))
                .unwrap()
                .unwrap();
        assert!(lister.probed.swap(0, Ordering::SeqCst) > 1, "the baseline probed");
        let listed = lister.take_seen();
        assert_eq!(listed.len(), lister.entries.len(), "each key listed once");
        let keys_listed: std::collections::BTreeSet<&String> = listed.iter().collect();
        assert_eq!(keys_listed.len(), listed.len());
        let steady =
            run_pass_with(&lister, &base.snapshot, &Memo::none(), &[], None, &budget, limits(4, usize::MAX)).unwrap();
        assert_eq!(lister.probed.load(Ordering::SeqCst), 0, "a known key space is not probed");
        assert!(steady.unwrap().changes.is_empty());
        // The old snapshot of another listing: still known, still not probed.
        run_pass_with(&lister, &old, &Memo::none(), &[], None, &budget, limits(4, usize::MAX)).unwrap();
        assert_eq!(lister.probed.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_source_that_lists_out_of_order_still_gets_each_pending_range_diffed() {
        let budget = Budget::new(None, Duration::ZERO);
        for seed in 1..10u64 {
            let (old, new) = awkward_case(seed, 200);
            let sorted = Memory::new(new.clone(), 5);
            let full = run_pass_with(&sorted, &old, &Memo::none(), &[], None, &budget, limits(1, usize::MAX))
                .unwrap()
                .unwrap();
            let keys_now: Vec<String> = new.iter().map(|e| e.key.clone()).collect();
            let (a, b) = (&keys_now[keys_now.len() / 4], &keys_now[keys_now.len() / 2]);
            let resume = vec![
                ListRange { start_after: None, end_before: Some(format!("{a}\0")) },
                ListRange { start_after: Some(b.clone()), end_before: None },
            ];
            let mut reversed = Memory::new(new, 5);
            reversed.reversed = true;
            let pass =
                run_pass_with(&reversed, &old, &Memo::none(), &resume, None, &budget, limits(3, usize::MAX)).unwrap();
            let pass = pass.unwrap();
            assert!(pass.resume.is_empty());
            let listed = |k: &str| inside(&resume, k);
            assert_eq!(entries_where(&pass.snapshot, listed), entries_where(&full.snapshot, listed), "seed {seed}");
            assert_eq!(entries_where(&pass.snapshot, |k| !listed(k)), entries_where(&old, |k| !listed(k)));
            let want: Vec<_> = keys(&full.changes).into_iter().filter(|(_, k)| listed(k)).collect();
            assert_eq!(keys(&pass.changes), want, "seed {seed}");
        }
    }

    #[test]
    fn split_ranges_partition_the_pending_ranges_into_at_most_n() {
        for seed in 1..40u64 {
            let (old, _) = if seed % 2 == 0 { case(seed, 300) } else { awkward_case(seed, 300) };
            let all: Vec<String> = old.iter().map(|(k, _)| k).collect();
            let mut rnd = rng(seed);
            let mut bounds: Vec<&String> = (0..rnd() % 5).map(|_| &all[(rnd() % all.len() as u64) as usize]).collect();
            bounds.sort();
            bounds.dedup();
            // Pending ranges between some keys: (…, b1 + NUL), (b2, b3 + NUL), … or the whole space.
            let mut pending = Vec::new();
            let mut lower: Option<String> = None;
            for pair in bounds.chunks(2) {
                pending.push(ListRange { start_after: lower.clone(), end_before: Some(format!("{}\0", pair[0])) });
                lower = pair.get(1).map(|k| k.to_string());
            }
            if bounds.len().is_multiple_of(2) {
                pending.push(ListRange { start_after: lower, end_before: None });
            }
            for n in [1, 2, 4, 9] {
                let ranges = split_ranges(&old, &pending, n, 10);
                let what = format!("seed {seed}, {n}: {pending:?} -> {ranges:?}");
                assert!(ranges.len() <= n.max(pending.len()) && ranges.len() >= pending.len(), "{what}");
                assert!(sorted_and_disjoint(&ranges) || ranges.len() == 1, "{what}");
                // The same keys, each in exactly one range.
                for key in &all {
                    let holders = ranges.iter().filter(|r| inside(std::slice::from_ref(r), key)).count();
                    assert_eq!(holders, usize::from(inside(&pending, key)), "{what}: {key:?}");
                }
            }
        }
    }

    #[test]
    fn a_checkpoint_joins_adjacent_ranges_and_drops_empty_ones() {
        let mut resume = Vec::new();
        push_resume(&mut resume, ListRange { start_after: Some("a".into()), end_before: Some("c\0".into()) });
        push_resume(&mut resume, ListRange { start_after: Some("c".into()), end_before: Some("f\0".into()) });
        push_resume(&mut resume, ListRange { start_after: Some("g".into()), end_before: Some("g\0".into()) });
        push_resume(&mut resume, ListRange { start_after: Some("h".into()), end_before: None });
        let want = vec![
            ListRange { start_after: Some("a".into()), end_before: Some("f\0".into()) },
            ListRange { start_after: Some("h".into()), end_before: None },
        ];
        assert_eq!(resume, want);
    }
}
