//! Where to split a key range nothing is known about (no previous snapshot to split at: CREATE's
//! baseline, a lost state's re-baseline, a bucket that grew), so that it too is listed in
//! parallel ranges. No OpenWhisk calls; the only I/O is `Lister::first_after`.
//!
//! The keys of a range form a tree of prefixes. One probe, "the first key after `x`", tells
//! whether any key lies past `x`: with `x` = a prefix followed by U+10FFFF (the greatest code
//! point), whether any key lies past everything that starts with that prefix. That finds the
//! range's longest common prefix (a binary search over its first key's characters) and then,
//! one probe each, the first key of each child of that prefix (the keys that share one more
//! character). The subtrees are explored best first, the heaviest (by the share of the range
//! it is expected to hold) split next, until none is heavier than one range's share or the
//! probe budget is spent, and then grouped in key order into ranges of about equal weight;
//! the boundaries between ranges are the probe strings themselves, so a boundary `s` ends one
//! range as `s` + NUL and starts the next after `s` (the bounds `ListRange` uses).
//!
//! Correct for any keys: the ranges built from any boundaries partition the key range, so where
//! the boundaries fall only decides how evenly the threads share the work, never what is
//! listed. Characters, not bytes, are cut (UTF-8 byte order is code point order), so keys with
//! bytes above 0x7F, `/` or any other character need no special case. A source that answers a
//! probe with a key not after the one asked about (it ignores `start-after`) gets no split.

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::source::{ListRange, Lister, Probe, SourceError};

/// Subtrees wanted per listing thread: more ranges than threads let the threads that finish
/// early take the rest, since the subtrees' sizes are unknown.
pub(super) const RANGES_PER_THREAD: usize = 3;
/// Probes allowed per listing thread for one split (each costs about one LIST request).
const PROBES_PER_THREAD: usize = 5;
/// Children enumerated per split: a digit or a hex digit's worth.
const MAX_CHILDREN: usize = 16;

/// The greatest code point: `prefix` + this is past every key that starts with `prefix` (but
/// for keys that continue with this very character, which only move a boundary).
const LAST: char = '\u{10FFFF}';

/// A subtree of the range being split: keys after `lo` and before `hi` (both exclusive), the
/// first of them `first`, all sharing `first`'s first `depth` characters.
#[derive(Clone, Debug)]
struct Node {
    lo: Option<String>,
    hi: Option<String>,
    first: String,
    depth: usize,
}

/// A node's children, each with the boundary string that starts it (`None` for the first).
type Children = Vec<(Option<String>, Node)>;

/// The probes one split may still make.
struct Probes<'a> {
    lister: &'a dyn Lister,
    left: AtomicUsize,
}

impl Probes<'_> {
    /// The first key after `after`, or `None` when there is none, the budget is spent or the
    /// source cannot tell; `Err` for a failed request.
    fn first_after(&self, after: Option<&str>) -> Result<Option<Option<String>>, SourceError> {
        if self.left.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_err() {
            return Ok(None);
        }
        Ok(match self.lister.first_after(after)? {
            Probe::Key(key) if after.is_none_or(|a| key.as_str() > a) => Some(Some(key)),
            Probe::Key(_) | Probe::Unsupported => {
                // A source that ignores `start-after`: stop probing.
                self.left.store(0, Ordering::SeqCst);
                None
            }
            Probe::End => Some(None),
        })
    }
}

fn panicked() -> SourceError {
    SourceError::Transient("a probe thread panicked".to_string())
}

/// The first `chars` characters of `key`.
fn prefix(key: &str, chars: usize) -> &str {
    key.char_indices().nth(chars).map_or(key, |(i, _)| &key[..i])
}

fn before(hi: &Option<String>, key: &str) -> bool {
    hi.as_deref().is_none_or(|h| key < h)
}

/// Boundary strings strictly inside `range` that cut it into at most `RANGES_PER_THREAD` ×
/// `threads` − 1 ranges (with the first page's range, a pass then lists at most
/// `RANGES_PER_THREAD` × `threads`), sorted; empty when the range holds at most one subtree
/// or the source cannot probe.
///
/// Best first: each round splits the heaviest subtrees found so far (up to `threads` at once),
/// where a subtree's weight is the share of the range it is expected to hold (its parent's,
/// shared evenly among the children; a remainder left when the children were not all
/// enumerated keeps half), until the budget is spent or no subtree is heavier than one range's
/// share. The subtrees, in key order, are then grouped into ranges of about equal weight.
pub(super) fn boundaries(lister: &dyn Lister, range: &ListRange, threads: usize) -> Result<Vec<String>, SourceError> {
    let threads = threads.max(1);
    let probes = Probes { lister, left: AtomicUsize::new(PROBES_PER_THREAD * threads) };
    let target = RANGES_PER_THREAD * threads - 1;
    let Some(Some(first)) = probes.first_after(range.start_after.as_deref())? else { return Ok(Vec::new()) };
    if !before(&range.end_before, &first) {
        return Ok(Vec::new());
    }
    let root = Node { lo: range.start_after.clone(), hi: range.end_before.clone(), first, depth: 0 };
    let mut leaves = vec![Leaf { boundary: None, weight: 1.0, node: root, splittable: true }];
    while probes.left.load(Ordering::SeqCst) > 0 {
        let heaviest = heaviest(&leaves, threads);
        match heaviest.first() {
            Some(i) if leaves[*i].weight > 1.0 / target as f64 => {}
            _ => break,
        }
        let splits: Vec<Result<Option<(Children, bool)>, SourceError>> = std::thread::scope(|scope| {
            let probes = &probes;
            let handles: Vec<_> = heaviest
                .iter()
                .map(|i| {
                    let node = &leaves[*i].node;
                    scope.spawn(move || split(probes, node, MAX_CHILDREN))
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err(panicked()))).collect()
        });
        let mut done = Vec::with_capacity(splits.len());
        for (i, split) in heaviest.into_iter().zip(splits) {
            done.push((i, split?));
        }
        // Replaced from the last index down, so the others stay where they are (by hand: a
        // sort would add its own copy of the sorting code to every action binary).
        while let Some(last) = (0..done.len()).max_by_key(|k| done[*k].0) {
            let (i, split) = done.swap_remove(last);
            let Some((children, remainder)) = split else {
                leaves[i].splittable = false;
                continue;
            };
            let parent = leaves[i].weight;
            let n = children.len();
            let weight = |k: usize| match remainder {
                true if k == n - 1 => parent / 2.0,
                true => parent / 2.0 / (n - 1) as f64,
                false => parent / n as f64,
            };
            let first_boundary = leaves[i].boundary.take();
            let new: Vec<Leaf> = children
                .into_iter()
                .enumerate()
                .map(|(k, (boundary, node))| Leaf {
                    boundary: if k == 0 { first_boundary.clone() } else { boundary },
                    weight: weight(k),
                    node,
                    splittable: true,
                })
                .collect();
            let after = leaves.split_off(i + 1);
            leaves.pop();
            leaves.extend(new);
            leaves.extend(after);
        }
    }
    // Group the subtrees in key order: a new range starts at the subtree whose middle passes
    // the next multiple of one range's share.
    let share = 1.0 / target as f64;
    let (mut found, mut seen, mut next) = (Vec::new(), 0.0, share);
    for leaf in leaves {
        if let Some(boundary) = leaf.boundary {
            let after_last = found.last().is_none_or(|last: &String| boundary > *last);
            if seen + leaf.weight / 2.0 > next && found.len() + 1 < target && after_last {
                found.push(boundary);
                while next < seen + leaf.weight / 2.0 {
                    next += share;
                }
            }
        }
        seen += leaf.weight;
    }
    Ok(found)
}

/// The indices of the (at most) `n` heaviest splittable leaves, heaviest first.
fn heaviest(leaves: &[Leaf], n: usize) -> Vec<usize> {
    let mut chosen: Vec<usize> = Vec::with_capacity(n);
    while chosen.len() < n {
        let next = (0..leaves.len())
            .filter(|i| leaves[*i].splittable && !chosen.contains(i))
            .max_by(|a, b| leaves[*a].weight.total_cmp(&leaves[*b].weight).then(b.cmp(a)));
        let Some(next) = next else { break };
        chosen.push(next);
    }
    chosen
}

/// A subtree found so far: the boundary that starts it (`None` for the first) and its weight.
struct Leaf {
    boundary: Option<String>,
    weight: f64,
    node: Node,
    /// False once a split found nothing to split (one key, or the budget ran out).
    splittable: bool,
}

/// Splits `node` into its children (the keys sharing one more character than all of its keys
/// do), each with the boundary that starts it (`None` for the first), and whether the last one
/// is a remainder holding several children (at most `max_children` are enumerated, and the
/// budget may run out); `None` when the node holds one key or the budget ran out before its
/// common prefix was found.
fn split(probes: &Probes<'_>, node: &Node, max_children: usize) -> Result<Option<(Children, bool)>, SourceError> {
    // Every key of the node shares `first`'s first `chars` characters when nothing in the
    // node lies past `first[..chars]` + LAST; `None` when the budget is spent.
    let shares = |chars: usize| -> Result<Option<bool>, SourceError> {
        let probe = format!("{}{LAST}", prefix(&node.first, chars));
        Ok(probes.first_after(Some(&probe))?.map(|next| next.is_none_or(|k| !before(&node.hi, &k))))
    };
    // The largest `low` that all keys share, between what they are known to share and the
    // whole first key, by binary search (sharing is monotone: fewer characters are shared if
    // more are). A child's keys often share only a few more characters than its parent's, so
    // below the root the search first gallops up from its depth (1, 2, 4, ... more).
    let (mut low, mut high) = (node.depth, node.first.chars().count());
    let (mut gallop, mut step) = (node.depth > 0, 1);
    while low < high {
        let point = if gallop { (low + step).min(high) } else { low + (high - low).div_ceil(2) };
        match shares(point)? {
            Some(true) => (low, step) = (point, step * 2),
            Some(false) => (high, gallop) = (point - 1, false),
            None => return Ok(None),
        }
    }
    let common = prefix(&node.first, low).to_string();
    let mut children = Vec::new();
    let (mut lo, mut first, mut boundary) = (node.lo.clone(), node.first.clone(), None);
    // The end of a child: past every key sharing one more character (or `first` itself, when
    // it is the common prefix and the other keys continue it).
    let end_of = |first: &str| {
        if first.chars().count() > low {
            format!("{}{LAST}", prefix(first, low + 1))
        } else {
            first.to_string()
        }
    };
    loop {
        let end = end_of(&first);
        // `None`: not asked (enough children) or the budget is spent; the last child then
        // holds the rest of the node's children.
        let next = if children.len() + 1 < max_children { probes.first_after(Some(&end))? } else { None };
        let child_depth = (low + 1).min(first.chars().count());
        match next {
            // (A key that continues its child's prefix with LAST itself is past `end` but in the
            // same child: the enumeration stops there.)
            Some(Some(key)) if before(&node.hi, &key) && key.starts_with(&common) && end_of(&key) > end => {
                let child = Node { lo: lo.clone(), hi: Some(format!("{end}\0")), first, depth: child_depth };
                children.push((boundary, child));
                (lo, first, boundary) = (Some(end.clone()), key, Some(end));
            }
            asked => {
                children.push((boundary, Node { lo, hi: node.hi.clone(), first, depth: child_depth }));
                let remainder = asked.is_none();
                return Ok((children.len() > 1).then_some((children, remainder)));
            }
        }
    }
}

/// The listing ranges `boundaries` (sorted, strictly inside `range`) cut `range` into.
pub(super) fn ranges_between(range: &ListRange, boundaries: &[String]) -> Vec<ListRange> {
    let mut out = Vec::with_capacity(boundaries.len() + 1);
    let mut lower = range.start_after.clone();
    for b in boundaries {
        out.push(ListRange { start_after: lower, end_before: Some(format!("{b}\0")) });
        lower = Some(b.clone());
    }
    out.push(ListRange { start_after: lower, end_before: range.end_before.clone() });
    out
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use serde_json::{Map, Value};

    use super::*;
    use crate::source::{BlobStore, Entry, Flow, Previous};

    /// Sorted keys that answer probes (and count them).
    struct Keys {
        keys: Vec<String>,
        probes: Mutex<usize>,
        ignores_start_after: bool,
    }

    impl Keys {
        fn new(mut keys: Vec<String>) -> Keys {
            keys.sort();
            keys.dedup();
            Keys { keys, probes: Mutex::new(0), ignores_start_after: false }
        }
    }

    impl Lister for Keys {
        fn source_uri(&self) -> String {
            "keys:".into()
        }
        fn event_type_prefix(&self) -> &'static str {
            "test.keys"
        }
        fn data_context(&self) -> Map<String, Value> {
            Map::new()
        }
        fn probe(&self) -> Result<(), SourceError> {
            Ok(())
        }
        fn list(
            &self,
            _: &ListRange,
            _: Previous<'_>,
            _: &mut dyn FnMut(Vec<Entry>) -> Flow,
        ) -> Result<bool, SourceError> {
            unreachable!("the planner only probes")
        }
        fn first_after(&self, after: Option<&str>) -> Result<Probe, SourceError> {
            *self.probes.lock().unwrap() += 1;
            let after = if self.ignores_start_after { None } else { after };
            Ok(self
                .keys
                .iter()
                .find(|k| after.is_none_or(|a| k.as_str() > a))
                .map_or(Probe::End, |k| Probe::Key(k.clone())))
        }
        fn blob_store(&self) -> Option<Box<dyn BlobStore>> {
            None
        }
    }

    fn log_keys(n: usize) -> Vec<String> {
        (0..n)
            .map(|i| {
                format!(
                    "logs/2024/{:02}/{:02}/host-{:03}/part-{i:06}.json.gz",
                    1 + i / 5600,
                    1 + i / 200 % 28,
                    i / 4 % 50
                )
            })
            .collect()
    }

    /// How many keys each range of `boundaries` over the whole space holds.
    fn sizes(keys: &[String], boundaries: &[String]) -> Vec<usize> {
        let ranges = ranges_between(&ListRange::default(), boundaries);
        ranges
            .iter()
            .map(|r| {
                keys.iter()
                    .filter(|k| r.start_after.as_deref().is_none_or(|a| k.as_str() > a))
                    .filter(|k| r.end_before.as_deref().is_none_or(|b| k.as_str() < b))
                    .count()
            })
            .collect()
    }

    /// The longest time of `threads` listing threads taking `sizes` in order, each range to
    /// the thread that has listed the fewest keys so far, in keys.
    fn makespan(sizes: &[usize], threads: usize) -> usize {
        let mut load = vec![0; threads];
        for size in sizes {
            let least = (0..threads).min_by_key(|t| load[*t]).unwrap_or(0);
            load[least] += size;
        }
        load.into_iter().max().unwrap_or(0)
    }

    #[test]
    fn the_benchmarks_keys_after_the_first_pages_are_shared_evenly_by_four_threads() {
        // list-bench's 100k keys (tests/src/bin/list-bench), split after the first two pages of
        // 1000 as a baseline splits them. Breadth first exploration with the same 20 probes left
        // one thread 44,000 keys; an even share is 25,000.
        let keys: Vec<String> = (0..100_000u64)
            .map(|i| {
                format!(
                    "logs/2024/{:02}/{:02}/host-{:03}/part-{i:06}.json.gz",
                    1 + i / 56_000,
                    1 + i / 2_000 % 28,
                    i / 40 % 50
                )
            })
            .collect();
        let keys = Keys::new(keys);
        let rest = ListRange { start_after: Some(keys.keys[1999].clone()), end_before: None };
        let found = boundaries(&keys, &rest, 4).unwrap();
        let sizes = sizes(&keys.keys, &found);
        assert!(sizes.len() <= RANGES_PER_THREAD * 4, "{sizes:?}");
        assert!(makespan(&sizes, 4) <= 40_000, "{sizes:?}: {found:?}");
        assert!(*keys.probes.lock().unwrap() <= 1 + PROBES_PER_THREAD * 4);
    }

    #[test]
    fn log_keys_split_at_their_months_and_days_within_the_probe_budget() {
        let keys = Keys::new(log_keys(10_000));
        let found = boundaries(&keys, &ListRange::default(), 4).unwrap();
        let sizes = sizes(&keys.keys, &found);
        assert_eq!(sizes.iter().sum::<usize>(), 10_000, "{found:?}");
        assert!(sizes.len() >= 4, "{sizes:?}: {found:?}");
        assert!(*sizes.iter().max().unwrap() <= 10_000 / 3, "no range holds a third of the keys: {sizes:?}");
        assert!(*keys.probes.lock().unwrap() <= 1 + PROBES_PER_THREAD * 4);
    }

    #[test]
    fn any_keys_are_partitioned_whatever_their_characters() {
        const PIECES: [&str; 11] =
            ["a", "/", "é", "\u{7f}", "\u{80}", "\u{ffff}", "\u{10000}", "😀", " ", "z", "\u{10ffff}"];
        let mut x: u64 = 99;
        for round in 0..200 {
            let n = 1 + round % 60;
            let keys: Vec<String> = (0..n)
                .map(|_| {
                    (0..1 + (x % 7))
                        .map(|_| {
                            x ^= x << 13;
                            x ^= x >> 7;
                            x ^= x << 17;
                            PIECES[(x % 11) as usize]
                        })
                        .collect()
                })
                .collect();
            let keys = Keys::new(keys);
            let range = match round % 3 {
                0 => ListRange::default(),
                1 => ListRange { start_after: Some("a".into()), end_before: None },
                _ => ListRange { start_after: None, end_before: Some("é".into()) },
            };
            let found = boundaries(&keys, &range, 1 + round % 4).unwrap();
            let what = format!("round {round}: {:?} in {range:?} -> {found:?}", keys.keys);
            assert!(found.windows(2).all(|w| w[0] < w[1]), "{what}");
            for b in &found {
                assert!(range.start_after.as_deref().is_none_or(|a| b.as_str() > a), "{what}");
                assert!(range.end_before.as_deref().is_none_or(|e| b.as_str() < e), "{what}");
            }
            // Every key of the range in exactly one listing range.
            let ranges = ranges_between(&range, &found);
            for key in &keys.keys {
                let inside = |r: &ListRange| {
                    r.start_after.as_deref().is_none_or(|a| key.as_str() > a)
                        && r.end_before.as_deref().is_none_or(|b| key.as_str() < b)
                };
                let holders = ranges.iter().filter(|r| inside(r)).count();
                assert_eq!(holders, usize::from(inside(&range)), "{what}: {key:?}");
            }
        }
    }

    #[test]
    fn a_source_that_ignores_start_after_or_cannot_probe_gets_no_split() {
        let mut keys = Keys::new(log_keys(500));
        keys.ignores_start_after = true;
        assert_eq!(boundaries(&keys, &ListRange::default(), 4).unwrap(), Vec::<String>::new());
        let one = Keys::new(vec!["only".into()]);
        assert_eq!(boundaries(&one, &ListRange::default(), 4).unwrap(), Vec::<String>::new());
        let none = Keys::new(Vec::new());
        assert_eq!(boundaries(&none, &ListRange::default(), 4).unwrap(), Vec::<String>::new());
    }
}
