//! The memory a tick's polls hold at once. One activation polls many triggers side by side
//! within the poll action's memory limit (256 MB by default); a poll of a large bucket holds
//! its snapshot and the listing it builds, about 51 MiB for 1M keys (BENCHMARKS "Listing 100k
//! objects on Ceph RGW", README "Limits"). Without a bound, a few large buckets due in the same
//! minute would exhaust the activation and the platform would kill the whole tick, every
//! trigger's poll with it, minute after minute. Each poll is admitted by its estimate, from the
//! size its last poll reported; what does not fit waits for memory to free, and what cannot
//! start before the window ends is left to the next tick's backlog (nothing is lost).

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::SystemTime;

use crate::params::{ParamError, Params};

/// Bytes a poll holds per object of its snapshot, at its peak (51 MiB per 1M keys measured,
/// rounded up).
const BYTES_PER_OBJECT: u64 = 56;
/// What any poll holds whatever its size: buffers, a page of listing, the client.
const BASE_KIB: u64 = 1024;
/// Held by the process apart from the polls: the runtime, threads' stacks, and the
/// authenticated state copies it keeps (at most 64 MiB, `store`).
const RESERVED_MIB: u64 = 96;
/// The poll action's memory when neither `pollMemoryMiB` nor the container tells it: the
/// manifest's `memorySize`.
const DEFAULT_ACTION_MIB: u64 = 256;
/// Polls of fewer objects are not remembered: their estimate is the base.
pub(super) const REMEMBERED_FROM_OBJECTS: u64 = 10_000;
/// Sizes a scheduler's record keeps at most (the largest).
pub(super) const SIZES_KEPT: usize = 500;
/// The parameter that tells the poll action's memory, in MiB.
pub const POLL_MEMORY_PARAM: &str = "pollMemoryMiB";

/// A poll's estimate, in KiB, from the objects its snapshot held last time.
pub(super) fn weight_kib(objects: u64) -> u64 {
    BASE_KIB + objects.saturating_mul(BYTES_PER_OBJECT) / 1024
}

/// The poll action's memory in MiB: `pollMemoryMiB`, else the container's cgroup limit, else
/// the manifest's 256 MB.
pub(super) fn action_mib(params: &Params) -> Result<u64, ParamError> {
    Ok(params
        .u64_in(POLL_MEMORY_PARAM, 128, 1 << 20)?
        .unwrap_or_else(|| cgroup_limit_mib().unwrap_or(DEFAULT_ACTION_MIB)))
}

/// The KiB an activation's polls may hold together: the action's memory (`action_mib`) less
/// what the process holds apart from them.
pub(super) fn budget_kib(action_mib: u64) -> u64 {
    action_mib.saturating_sub(RESERVED_MIB).max(32) * 1024
}

/// The memory limit of the container this process runs in, in MiB, if it has one
/// (cgroup v2 `memory.max`, else v1 `memory.limit_in_bytes`). OpenWhisk's invoker sets it to
/// the action's memory limit (apache/openwhisk core/invoker/src/main/scala/org/apache/openwhisk/
/// core/containerpool/docker/DockerContainer.scala: `--memory`, `--memory-swap`).
fn cgroup_limit_mib() -> Option<u64> {
    ["/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"].iter().find_map(|path| {
        let text = std::fs::read_to_string(path).ok()?;
        let bytes: u64 = text.trim().parse().ok()?;
        // "max" (v2) does not parse; v1 says "no limit" with a huge number.
        (bytes < 1 << 50).then_some(bytes >> 20)
    })
}

/// Sizes of large snapshots by config binding, as polls last reported them: what the next
/// tick estimates with. Keeps the [`SIZES_KEPT`] largest.
pub(super) fn remember(sizes: &mut BTreeMap<String, u64>, binding: &str, objects: Option<u64>) {
    match objects {
        Some(n) if n >= REMEMBERED_FROM_OBJECTS => {
            sizes.insert(binding.to_string(), n);
        }
        // A small one, or a poll that knows its size no more (a log source): forgotten.
        Some(_) => {
            sizes.remove(binding);
        }
        None => {}
    }
    while sizes.len() > SIZES_KEPT {
        let smallest = sizes.iter().min_by_key(|(_, n)| **n).map(|(b, _)| b.clone());
        if let Some(b) = smallest {
            sizes.remove(&b);
        }
    }
}

/// Admits polls while their estimates fit in the budget together.
pub(super) struct MemoryGate {
    budget_kib: u64,
    in_use: Mutex<u64>,
    freed: Condvar,
}

/// A poll's admission: its estimate goes back to the gate when dropped.
pub(super) struct Admitted<'g> {
    gate: &'g MemoryGate,
    kib: u64,
}

impl Drop for Admitted<'_> {
    fn drop(&mut self) {
        let mut in_use = self.gate.lock();
        *in_use = in_use.saturating_sub(self.kib);
        self.gate.freed.notify_all();
    }
}

impl MemoryGate {
    /// A gate of `budget_kib`.
    pub(super) fn new(budget_kib: u64) -> MemoryGate {
        MemoryGate { budget_kib, in_use: Mutex::new(0), freed: Condvar::new() }
    }

    fn lock(&self) -> MutexGuard<'_, u64> {
        self.in_use.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes from `queue` the first item whose estimate (`kib_of`) fits beside those admitted
    /// (any item when none is: a poll larger than the budget still runs, alone), waiting for
    /// memory to free until `until`. `None` when the queue is empty or the time is up.
    pub(super) fn take<T>(
        &self,
        queue: &Mutex<VecDeque<T>>,
        kib_of: impl Fn(&T) -> u64,
        until: SystemTime,
    ) -> Option<(T, Admitted<'_>)> {
        let mut in_use = self.lock();
        loop {
            {
                let mut q = queue.lock().unwrap_or_else(|e| e.into_inner());
                if q.is_empty() {
                    return None;
                }
                let fits = q.iter().position(|item| *in_use == 0 || *in_use + kib_of(item) <= self.budget_kib);
                if let Some(i) = fits {
                    let item = q.remove(i)?;
                    let kib = kib_of(&item);
                    *in_use += kib;
                    return Some((item, Admitted { gate: self, kib }));
                }
            }
            let wait = until.duration_since(SystemTime::now()).ok().filter(|d| !d.is_zero())?;
            in_use = self.freed.wait_timeout(in_use, wait).unwrap_or_else(|e| e.into_inner()).0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;

    #[test]
    fn estimates_follow_the_measured_peak() {
        // 1M keys peaked at 51 MiB: the estimate is at least that, and not twice it.
        let mib = weight_kib(1_000_000) / 1024;
        assert!((51..80).contains(&mib), "{mib}");
        assert_eq!(weight_kib(0), BASE_KIB);
    }

    #[test]
    fn the_budget_is_the_actions_memory_less_what_the_process_keeps() {
        let p = Params::from_value(serde_json::json!({ POLL_MEMORY_PARAM: 512 })).unwrap();
        assert_eq!(budget_kib(action_mib(&p).unwrap()), (512 - RESERVED_MIB) * 1024);
        let bad = Params::from_value(serde_json::json!({ POLL_MEMORY_PARAM: 64 })).unwrap();
        assert!(action_mib(&bad).unwrap_err().to_string().contains(POLL_MEMORY_PARAM));
    }

    #[test]
    fn sizes_keep_the_largest_and_forget_small_ones() {
        let mut sizes = BTreeMap::new();
        for i in 0..(SIZES_KEPT as u64 + 10) {
            remember(&mut sizes, &format!("b{i}"), Some(REMEMBERED_FROM_OBJECTS + i));
        }
        assert_eq!(sizes.len(), SIZES_KEPT);
        assert!(!sizes.contains_key("b0") && sizes.contains_key(&format!("b{}", SIZES_KEPT + 9)));
        remember(&mut sizes, "b20", Some(5));
        assert!(!sizes.contains_key("b20"), "a bucket that shrank is forgotten");
        remember(&mut sizes, "b21", None);
        assert!(sizes.contains_key("b21"), "a poll that did not say keeps what was known");
    }

    /// Threads take jobs of random sizes through the gate; what they hold at once, counted by
    /// the jobs themselves, never passes the budget, and every job runs.
    #[test]
    fn admitted_jobs_never_hold_more_than_the_budget_together() {
        let budget = 100;
        let gate = MemoryGate::new(budget);
        let mut rng = crate::state::tests::Rng(7);
        let jobs: VecDeque<u64> = (0..300).map(|_| 1 + rng.below(60) as u64).collect();
        let total: u64 = jobs.iter().sum();
        let queue = Mutex::new(jobs);
        let (held, peak, done) = (AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0));
        let until = SystemTime::now() + Duration::from_secs(60);
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    while let Some((kib, _admitted)) = gate.take(&queue, |k| *k, until) {
                        let now = held.fetch_add(kib, Ordering::SeqCst) + kib;
                        peak.fetch_max(now, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_micros(200));
                        held.fetch_sub(kib, Ordering::SeqCst);
                        done.fetch_add(kib, Ordering::SeqCst);
                    }
                });
            }
        });
        assert_eq!(done.load(Ordering::SeqCst), total, "every job ran");
        let peak = peak.load(Ordering::SeqCst);
        assert!(peak <= budget, "held {peak} KiB at once of {budget}");
        assert!(peak > 60, "jobs ran side by side ({peak})");
    }

    #[test]
    fn a_job_larger_than_the_budget_runs_alone_and_a_full_gate_gives_up_at_the_deadline() {
        let gate = MemoryGate::new(10);
        let queue = Mutex::new(VecDeque::from([50u64, 5]));
        let far = SystemTime::now() + Duration::from_secs(60);
        let (big, admitted) = gate.take(&queue, |k| *k, far).expect("nothing else holds memory");
        assert_eq!(big, 50);
        let started = std::time::Instant::now();
        let soon = SystemTime::now() + Duration::from_millis(100);
        assert!(gate.take(&queue, |k| *k, soon).is_none(), "the small one waits for the big one");
        assert!(started.elapsed() >= Duration::from_millis(90));
        drop(admitted);
        assert_eq!(gate.take(&queue, |k| *k, soon).map(|(k, _)| k), Some(5));
    }
}
