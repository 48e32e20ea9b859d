//! A test-only polling source that generates its listing on the fly: N regular log-like keys
//! (`logs/2024/05/17/host-042/part-000123.json.gz`) with versions derived from a seed, so the
//! core can be run against a million entries without an S3 server.
//!
//! A listing is a pure function of a [`GenSpec`]: round 0 is the base listing; any other round
//! applies that round's mutations to the base (not to the previous round): a fraction of the
//! keys gets a new version, a fraction is left out (deleted), and a fraction gets a new sibling
//! key in the same directory (created). Pages hold `pageSize` entries (1000, like S3), in
//! ascending key order, optionally after a delay each (a slow server). Blobs live in a
//! directory (`listing_source::DirStore`). This module does not diff or judge: tests compare
//! what the core reports with [`expected_changes`], a naive map diff of two listings.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{json, Map, Value};

use owfeed::params::{ParamError, Params};
use owfeed::source::{BlobStore, Entry, Flow, ListRange, Lister, ParamSpec, Previous, Probe, Source, SourceError};

use crate::listing_source::DirStore;

/// Base keys per directory (`host-NNN`): created keys are added at the end of their directory.
const PER_HOST: u64 = 1000;
/// Directories per day.
const HOSTS: u64 = 100;
/// Days per month (every month has 28 here: keys stay regular).
const DAYS: u64 = 28;
/// Most entries a generated listing may have.
pub const MAX_ENTRIES: u64 = 100_000_000;

/// What a generated listing holds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GenSpec {
    /// Base entries (before mutations).
    pub entries: u64,
    /// Seeds every version and every mutation choice.
    pub seed: u64,
    /// 0: the base listing; otherwise which round of mutations is applied to the base.
    pub round: u64,
    /// Fraction of base keys that get a new sibling key (created).
    pub created: f64,
    /// Fraction of base keys whose version changes (updated).
    pub updated: f64,
    /// Fraction of base keys left out (deleted).
    pub deleted: f64,
}

impl GenSpec {
    /// The base listing of `entries` keys.
    pub fn base(entries: u64, seed: u64) -> GenSpec {
        GenSpec { entries, seed, round: 0, created: 0.0, updated: 0.0, deleted: 0.0 }
    }

    /// The base with mutation round `round` applied: `mutate` of the keys each created, updated
    /// and deleted.
    pub fn mutated(self, round: u64, mutate: f64) -> GenSpec {
        GenSpec { round, created: mutate, updated: mutate, deleted: mutate, ..self }
    }

    /// Calls `page` with the entries in `range`, `page_size` at a time, in key order; returns
    /// false when `page` said stop.
    pub fn list(&self, range: &ListRange, page_size: usize, page: &mut dyn FnMut(Vec<Entry>) -> Flow) -> bool {
        let page_size = page_size.max(1);
        let hosts = self.entries.div_ceil(PER_HOST);
        // Every key of a directory sorts before the next directory's first base key.
        let first = match &range.start_after {
            Some(after) => first_host_after(hosts, after),
            None => 0,
        };
        let mut buf = Vec::with_capacity(page_size);
        for host in first..hosts {
            let start = host * PER_HOST;
            let end = (start + PER_HOST).min(self.entries);
            for created in [false, true] {
                for i in start..end {
                    let Some(entry) = self.entry(i, created) else { continue };
                    if range.start_after.as_deref().is_some_and(|a| entry.key.as_str() <= a) {
                        continue;
                    }
                    if range.end_before.as_deref().is_some_and(|b| entry.key.as_str() >= b) {
                        return buf.is_empty() || page(buf) == Flow::Continue;
                    }
                    buf.push(entry);
                    if buf.len() == page_size
                        && page(std::mem::replace(&mut buf, Vec::with_capacity(page_size))) == Flow::Stop
                    {
                        return false;
                    }
                }
            }
        }
        if !buf.is_empty() && page(buf) == Flow::Stop {
            return false;
        }
        true
    }

    /// Every entry, in key order (memory: the whole listing).
    pub fn collect(&self) -> Vec<Entry> {
        let mut all = Vec::new();
        self.list(&ListRange::default(), 1000, &mut |p| {
            all.extend(p);
            Flow::Continue
        });
        all
    }

    /// The entry for base index `i` (`created`: its created sibling), if this listing has it.
    fn entry(&self, i: u64, created: bool) -> Option<Entry> {
        let mutated = self.round != 0;
        if created {
            if !mutated || unit(mix(self.seed ^ 0x5eed_c0de, self.round, i)) >= self.created {
                return None;
            }
            let key = key_of(i, 500_000 + i % PER_HOST);
            return Some(entry(key, etag(mix(self.seed, self.round.wrapping_add(1 << 32), i))));
        }
        let r = if mutated { unit(mix(self.seed, self.round, i)) } else { 1.0 };
        if r < self.deleted {
            return None;
        }
        let version =
            if r < self.deleted + self.updated { mix(self.seed, self.round, i) } else { mix(self.seed, 0, i) };
        Some(entry(base_key(i), etag(version)))
    }
}

/// The last directory whose first base key is at or before `after` (0 when none is): keys
/// after `after` start in it or later.
fn first_host_after(hosts: u64, after: &str) -> u64 {
    let (mut lo, mut hi) = (0u64, hosts);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if base_key(mid * PER_HOST).as_str() <= after {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo.saturating_sub(1)
}

fn entry(key: String, version: String) -> Entry {
    Entry { key, version, attrs: Map::new() }
}

/// The base key of index `i`; keys sort like their indices.
pub fn base_key(i: u64) -> String {
    key_of(i, i % PER_HOST)
}

fn key_of(i: u64, part: u64) -> String {
    let host = (i / PER_HOST) % HOSTS;
    let day = (i / (PER_HOST * HOSTS)) % DAYS + 1;
    let month = (i / (PER_HOST * HOSTS * DAYS)) % 12 + 1;
    let year = 2024 + i / (PER_HOST * HOSTS * DAYS * 12);
    format!("logs/{year}/{month:02}/{day:02}/host-{host:03}/part-{part:06}.json.gz")
}

/// An S3-like ETag (quoted 32 hex digits).
fn etag(h: u64) -> String {
    format!("\"{h:016x}{:016x}\"", h.rotate_left(17) ^ 0x9e37_79b9_7f4a_7c15)
}

/// A well-mixed 64-bit value of (seed, round, index) (splitmix64 finalizer).
fn mix(seed: u64, round: u64, i: u64) -> u64 {
    let mut z = seed
        .wrapping_mul(0x9e37_79b9_7f4a_7c15)
        .wrapping_add(round.wrapping_mul(0xbf58_476d_1ce4_e5b9))
        .wrapping_add(i.wrapping_mul(0x94d0_49bb_1331_11eb))
        .wrapping_add(0x2545_f491_4f6c_dd1d);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// `h` as a fraction in [0, 1).
fn unit(h: u64) -> f64 {
    (h >> 11) as f64 / (1u64 << 53) as f64
}

/// What changed from listing `old` to listing `new`, as (kind, key) with kind `created`,
/// `updated` or `deleted`, sorted: a naive map diff, independent of the core's `Differ`.
pub fn expected_changes(old: &GenSpec, new: &GenSpec) -> Vec<(String, String)> {
    let before: BTreeMap<String, String> = old.collect().into_iter().map(|e| (e.key, e.version)).collect();
    let after: BTreeMap<String, String> = new.collect().into_iter().map(|e| (e.key, e.version)).collect();
    let mut out = Vec::new();
    for (key, version) in &after {
        match before.get(key) {
            None => out.push(("created".to_string(), key.clone())),
            Some(v) if v != version => out.push(("updated".to_string(), key.clone())),
            Some(_) => {}
        }
    }
    for key in before.keys().filter(|k| !after.contains_key(*k)) {
        out.push(("deleted".to_string(), key.clone()));
    }
    out.sort();
    out
}

/// The `generated` test source.
pub struct GenSource;

const PARAMS: &[ParamSpec] = &[
    ParamSpec { name: "entries", secret: false, required: true, doc: "base entries to generate" },
    ParamSpec { name: "seed", secret: false, required: false, doc: "seed of versions and mutations (default 1)" },
    ParamSpec { name: "mutate", secret: false, required: false, doc: "fraction created/updated/deleted (default 0)" },
    ParamSpec { name: "round", secret: false, required: false, doc: "mutation round (default 1 when mutate > 0)" },
    ParamSpec { name: "pageSize", secret: false, required: false, doc: "entries per page (default 1000)" },
    ParamSpec { name: "pageDelayMs", secret: false, required: false, doc: "sleep before each page (default 0)" },
    ParamSpec { name: "stateDir", secret: false, required: true, doc: "directory for state blobs" },
];

impl Source for GenSource {
    fn name(&self) -> &'static str {
        "generated"
    }

    fn params(&self) -> &'static [ParamSpec] {
        PARAMS
    }

    fn open(&self, params: &Params) -> Result<Box<dyn Lister>, ParamError> {
        let entries =
            params.u64_in("entries", 0, MAX_ENTRIES)?.ok_or_else(|| ParamError::missing("entries", "a count"))?;
        let seed = params.u64_in("seed", 0, u64::MAX)?.unwrap_or(1);
        let mutate = match params.raw("mutate") {
            None | Some(Value::Null) => 0.0,
            Some(v) => v
                .as_f64()
                .filter(|f| (0.0..=0.33).contains(f))
                .ok_or_else(|| ParamError::invalid("mutate", "a fraction from 0 to 0.33", v))?,
        };
        let round = params.u64_in("round", 1, u64::MAX)?.unwrap_or(1);
        let spec = if mutate > 0.0 {
            GenSpec::base(entries, seed).mutated(round, mutate)
        } else {
            GenSpec::base(entries, seed)
        };
        let page_size = params.u64_in("pageSize", 1, 1000)?.unwrap_or(1000) as usize;
        let delay = Duration::from_millis(params.u64_in("pageDelayMs", 0, 60_000)?.unwrap_or(0));
        let state_dir = PathBuf::from(params.required_str("stateDir")?);
        Ok(Box::new(GenLister { spec, page_size, delay, state_dir }))
    }
}

struct GenLister {
    spec: GenSpec,
    page_size: usize,
    delay: Duration,
    state_dir: PathBuf,
}

impl Lister for GenLister {
    fn source_uri(&self) -> String {
        // Mutations are not part of the identity: the same source changes between polls.
        format!("gen://{}/{}", self.spec.seed, self.spec.entries)
    }

    fn event_type_prefix(&self) -> &'static str {
        "test.generated.entry"
    }

    fn data_context(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("seed".into(), json!(self.spec.seed));
        m
    }

    fn probe(&self) -> Result<(), SourceError> {
        Ok(())
    }

    fn list(
        &self,
        range: &ListRange,
        _previous: Previous<'_>,
        page: &mut dyn FnMut(Vec<Entry>) -> Flow,
    ) -> Result<bool, SourceError> {
        let delay = self.delay;
        Ok(self.spec.list(range, self.page_size, &mut |entries| {
            if !delay.is_zero() {
                std::thread::sleep(delay);
            }
            page(entries)
        }))
    }

    /// A probe costs what a page does (`pageDelayMs`), as a LIST of one key does on S3.
    fn first_after(&self, after: Option<&str>) -> Result<Probe, SourceError> {
        if !self.delay.is_zero() {
            std::thread::sleep(self.delay);
        }
        let mut first = None;
        let range = ListRange { start_after: after.map(str::to_string), end_before: None };
        self.spec.list(&range, 1, &mut |page| {
            first = page.into_iter().next();
            Flow::Stop
        });
        Ok(first.map_or(Probe::End, |e| Probe::Key(e.key)))
    }

    fn blob_store(&self) -> Option<Box<dyn BlobStore>> {
        Some(Box::new(DirStore { dir: self.state_dir.clone() }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_is_sorted_and_mutations_have_the_asked_sizes() {
        let base = GenSpec::base(20_000, 3);
        let all = base.collect();
        assert_eq!(all.len(), 20_000);
        assert!(all.windows(2).all(|w| w[0].key < w[1].key));
        assert_eq!(all[123].key, "logs/2024/01/01/host-000/part-000123.json.gz");
        let next = GenSpec::base(20_000, 3).mutated(1, 0.01);
        let got = next.collect();
        assert!(got.windows(2).all(|w| w[0].key < w[1].key));
        let changes = expected_changes(&base, &next);
        for kind in ["created", "updated", "deleted"] {
            let n = changes.iter().filter(|(k, _)| k == kind).count();
            assert!((120..=280).contains(&n), "{kind}: {n}");
        }
    }

    #[test]
    fn resuming_after_any_key_gives_the_rest() {
        let spec = GenSpec::base(5_000, 9).mutated(2, 0.05);
        let all = spec.collect();
        for cut in [0, 1, 999, 1000, 1001, 2500, all.len() - 1] {
            let range = ListRange { start_after: Some(all[cut].key.clone()), end_before: None };
            let mut rest = Vec::new();
            assert!(spec.list(&range, 7, &mut |p| {
                rest.extend(p);
                Flow::Continue
            }));
            assert_eq!(rest, all[cut + 1..].to_vec(), "after {cut}");
        }
    }
}
