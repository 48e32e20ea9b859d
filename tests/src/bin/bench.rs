//! Benchmarks of the poller's hot path (not a test: `cargo run --release -p feed-tests --bin
//! bench -- [--keys N] [--repeat R]`), printed as a Markdown table for BENCHMARKS.md.
//!
//! On N generated listing entries (`gen_source`: regular log keys, 1 % created, 2 % updated,
//! 1.4 % deleted) it measures our state path (decode the stored state, stream the listing
//! through `Differ`, encode the new state) against a naive one (the Node feed's approach: a
//! `HashMap<String, String>` of key → ETag stored as gzip-compressed JSON), the state bytes per
//! object of both, and each one's peak RSS, every measurement in a child process of this binary
//! (re-run with `--child`) so peaks do not mix. Generating the listing pages is not timed: a real
//! poll receives them from the server. It also times the `poll` binary's cold start to its first
//! result line (median of 20; build it first with `cargo build --release -p poll`).
//!
//! `--poll-rss N [--poll-limits LIMIT_MS:PAGE_DELAY_MS,…]` measures the real poll code path
//! instead: the release `gen-action` (feed and poll of the test-only `generated` source, N
//! entries) in the emulator, CREATE, polls until the baseline is done, 0.1 % of the keys each
//! created, updated and deleted, polls until everything is delivered; it reports each action
//! process's peak RSS (`VmHWM` of the emulator's child processes, sampled every 20 ms and reset
//! before each poll), polls, wall times, deadline cuts, and whether the events are exactly the
//! mutations with unique ids. The default runs are a 60 s limit with no page delay, a 10 s limit
//! with 10 ms per page (each 1M listing is cut by the deadline and resumed) and a 60 s limit with
//! 50 ms per page (S3-like page latency). The whole run gives up after 15 minutes.
//!
//! `--namespace IDLE:BUSY:MINUTES[:EVENTS[:BATCH]] [--bins DIR]` runs one namespace at
//! OpenWhisk's default quotas (60 fires and 60 invocations a minute, 30 concurrent) with the
//! alarms provider firing by wall clock and its fire policy: IDLE + BUSY S3 triggers (each its
//! own bucket on s3s-fs), each busy one getting EVENTS new objects a minute (default 1) for
//! MINUTES minutes with `batch` BATCH (default 1), then up to three minutes to deliver the rest.
//! It reports alarms disabled, fires and invocations refused, events written, delivered, lost
//! and duplicated, their delay, events delivered a minute, and the poll activations'
//! activation-seconds (per minute, and per trigger per 30-day month). `--bins` takes the
//! `changes` and `poll` binaries from DIR (default: this binary's directory), so the same run
//! measures another build (BENCHMARKS.md: the build before the namespace scheduler).
//!
//! It asserts nothing about time; it reports.

// The table on stdout is this tool's output.
#![allow(clippy::print_stdout)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;
use serde_json::{json, Value};

use feed_tests::actionloop::{ActionLoop, ResultChannel};
use feed_tests::gen_source::{expected_changes, GenSpec};
use feed_tests::s3sfs::S3sFs;
use feed_tests::world::{action_body, World, PACKAGE, USER};
use owfeed::diff::Differ;
use owfeed::openwhisk::QualifiedName;
use owfeed::source::{Entry, Flow, ListRange};
use owfeed::state::{version_hash, Seal, SnapshotWriter, State};
use owfeed_s3::{Condition, S3Client, S3Config, SecretString};

const SEED: u64 = 42;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut keys: u64 = 1_000_000;
    let mut repeat: usize = 3;
    let mut child: Option<String> = None;
    let mut poll_rss_entries: Option<u64> = None;
    let mut cold_polls = false;
    let mut parallelism: u64 = owfeed::polling::DEFAULT_PARALLELISM;
    let mut poll_limits = vec![(60_000, 0), (10_000, 10), (60_000, 50)];
    let mut namespace: Option<String> = None;
    let mut bins: Option<PathBuf> = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--keys" => keys = it.next().context("--keys needs a number")?.replace('_', "").parse()?,
            "--repeat" => repeat = it.next().context("--repeat needs a number")?.parse()?,
            "--full-poll" => {
                let objects = it.next().context("--full-poll needs a number of objects")?.replace('_', "").parse()?;
                return full_poll(objects);
            }
            "--cold-polls" => cold_polls = true,
            "--parallelism" => parallelism = it.next().context("--parallelism needs a number")?.parse()?,
            "--poll-rss" => poll_rss_entries = Some(parse_count(it.next(), "--poll-rss")?),
            "--poll-limits" => {
                let list = it.next().context("--poll-limits needs LIMIT_MS:PAGE_DELAY_MS[,…]")?;
                poll_limits = parse_limits(list)?;
            }
            "--child" => child = Some(it.next().context("--child needs a measurement")?.clone()),
            "--namespace" => namespace = Some(it.next().context("--namespace needs IDLE:BUSY:MINUTES")?.clone()),
            "--bins" => bins = Some(PathBuf::from(it.next().context("--bins needs a directory")?)),
            other => bail!(
                "unknown argument {other:?} (expected --keys N, --repeat R, --full-poll N, --poll-rss N, \
                 --poll-limits LIMIT_MS:PAGE_DELAY_MS[,…], --cold-polls, --parallelism N, \
                 --namespace IDLE:BUSY:MINUTES[:EVENTS[:BATCH]], --bins DIR)"
            ),
        }
    }
    if let Some(spec) = namespace {
        return namespace_load(&spec, bins);
    }
    if let Some(entries) = poll_rss_entries {
        return poll_rss(entries, &poll_limits, cold_polls, parallelism);
    }
    let repeat = repeat.max(1);
    if let Some(which) = child {
        let result = match which.as_str() {
            "ours" => measure_ours(keys, repeat),
            "naive" => measure_naive(keys, repeat),
            other => bail!("unknown measurement {other:?}"),
        };
        println!("{}", result);
        return Ok(());
    }
    parent(keys, repeat)
}

/// The base listing and the next one (1 % created, 2 % updated, 1.4 % deleted).
fn specs(keys: u64) -> (GenSpec, GenSpec) {
    let base = GenSpec::base(keys, SEED);
    (base, GenSpec { round: 1, created: 0.01, updated: 0.02, deleted: 0.014, ..base })
}

/// CPU time of this thread in nanoseconds (`/proc/thread-self/schedstat`), 0 when unknown.
fn cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|n| n.parse().ok()))
        .unwrap_or(0)
}

/// Peak resident set size of this process in KiB (`VmHWM`).
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Wall and CPU time spent in timed sections.
#[derive(Clone, Copy, Default)]
struct Spent {
    wall: Duration,
    cpu_ns: u64,
}

impl Spent {
    fn time<T>(&mut self, f: impl FnOnce() -> T) -> T {
        let (w, c) = (Instant::now(), cpu_ns());
        let out = f();
        self.wall += w.elapsed();
        self.cpu_ns += cpu_ns().saturating_sub(c);
        out
    }

    fn secs(&self) -> f64 {
        self.wall.as_secs_f64()
    }

    fn cpu_secs(&self) -> f64 {
        self.cpu_ns as f64 / 1e9
    }
}

/// The phases of one state round trip.
#[derive(Clone, Copy, Default)]
struct Phases {
    decode: Spent,
    diff: Spent,
    encode: Spent,
}

impl Phases {
    fn total(&self) -> (f64, f64) {
        let all = [self.decode, self.diff, self.encode];
        (all.iter().map(Spent::secs).sum(), all.iter().map(Spent::cpu_secs).sum())
    }
}

/// The fastest of `repeat` runs (by total wall time).
fn best(runs: Vec<(Phases, usize, usize)>) -> (Phases, usize, usize) {
    runs.into_iter().min_by(|a, b| a.0.total().0.total_cmp(&b.0.total().0)).expect("at least one run")
}

fn report(name: &str, keys: u64, (p, changes, new_bytes): (Phases, usize, usize), old_bytes: usize) -> Value {
    let (total, cpu) = p.total();
    json!({
        "name": name,
        "keys": keys,
        "decodeS": p.decode.secs(),
        "diffS": p.diff.secs(),
        "encodeS": p.encode.secs(),
        "totalS": total,
        "cpuS": cpu,
        "changes": changes,
        "oldStateBytes": old_bytes,
        "newStateBytes": new_bytes,
        "peakRssKiB": peak_rss_kib(),
    })
}

/// Lists `spec` page by page; only `on_page` is timed, in `spent`.
fn stream(spec: &GenSpec, spent: &mut Spent, mut on_page: impl FnMut(Vec<Entry>)) {
    spec.list(&ListRange::default(), 1000, &mut |page| {
        spent.time(|| on_page(page));
        Flow::Continue
    });
}

fn measure_ours(keys: u64, repeat: usize) -> Value {
    let (base, next) = specs(keys);
    // Sealed, as every feed with a stateKey stores it: the HMAC is part of decode and encode.
    let seal = Seal::new(&owfeed::secret::Secret::new("k".repeat(64)), "bench/t");
    let old_bytes = {
        let mut writer = SnapshotWriter::new();
        base.list(&ListRange::default(), 1000, &mut |page| {
            for e in page {
                writer.push(&e.key, version_hash(&e.version)).expect("generated keys are sorted");
            }
            Flow::Continue
        });
        let mut state = State::new("bench");
        state.snapshot = writer.finish();
        state.baselined = true;
        state.encode_sealed(&seal, 1)
    };
    let mut runs = Vec::new();
    for _ in 0..repeat {
        let mut p = Phases::default();
        let old = p.decode.time(|| State::decode_sealed(&old_bytes, &seal).expect("our own state verifies"));
        let mut differ = Differ::new(&old.snapshot, &ListRange::default());
        stream(&next, &mut p.diff, |page| differ.push_page(page).expect("generated pages are sorted"));
        let out = p.diff.time(|| differ.finish());
        let changes = out.changes.len();
        let new_bytes = p.encode.time(|| {
            let mut state = State::new("bench");
            state.seq = old.seq + 1;
            state.snapshot = out.snapshot;
            state.baselined = true;
            state.encode_sealed(&seal, 2)
        });
        runs.push((p, changes, new_bytes.len()));
    }
    report("ours", keys, best(runs), old_bytes.len())
}

fn gzip_json(map: &HashMap<String, String>) -> Vec<u8> {
    let json = serde_json::to_vec(map).expect("a map of strings serializes");
    let mut gz = GzEncoder::new(Vec::new(), Compression::default());
    gz.write_all(&json).expect("gzip into memory");
    gz.finish().expect("gzip into memory")
}

fn measure_naive(keys: u64, repeat: usize) -> Value {
    let (base, next) = specs(keys);
    let old_bytes = {
        let mut map = HashMap::new();
        base.list(&ListRange::default(), 1000, &mut |page| {
            map.extend(page.into_iter().map(|e| (e.key, e.version)));
            Flow::Continue
        });
        gzip_json(&map)
    };
    let mut runs = Vec::new();
    for _ in 0..repeat {
        let mut p = Phases::default();
        let mut old: HashMap<String, String> = p.decode.time(|| {
            let mut json = Vec::new();
            GzDecoder::new(old_bytes.as_slice()).read_to_end(&mut json).expect("gunzip");
            serde_json::from_slice(&json).expect("our own JSON parses")
        });
        let mut new: HashMap<String, String> = HashMap::with_capacity(old.len());
        let mut changes: Vec<(&'static str, String)> = Vec::new();
        stream(&next, &mut p.diff, |page| {
            for e in page {
                match old.remove(&e.key) {
                    None => changes.push(("created", e.key.clone())),
                    Some(v) if v != e.version => changes.push(("updated", e.key.clone())),
                    Some(_) => {}
                }
                new.insert(e.key, e.version);
            }
        });
        p.diff.time(|| changes.extend(old.drain().map(|(k, _)| ("deleted", k))));
        let new_bytes = p.encode.time(|| gzip_json(&new));
        runs.push((p, changes.len(), new_bytes.len()));
    }
    report("naive", keys, best(runs), old_bytes.len())
}

fn run_child(which: &str, keys: u64, repeat: usize) -> anyhow::Result<Value> {
    let exe = std::env::current_exe()?;
    let out = Command::new(exe)
        .args(["--child", which, "--keys", &keys.to_string(), "--repeat", &repeat.to_string()])
        .output()?;
    if !out.status.success() {
        bail!("{which}: {}", String::from_utf8_lossy(&out.stderr));
    }
    serde_json::from_slice(&out.stdout).with_context(|| format!("{which}: output is not JSON"))
}

/// Milliseconds from spawning `poll` in actionloop mode to its first fd 3 line (an invalid
/// activation: no config parameters), for `runs` fresh processes.
fn cold_starts(runs: usize) -> anyhow::Result<Vec<f64>> {
    let dir = std::env::current_exe()?.parent().map(PathBuf::from).context("no exe dir")?;
    let poll = dir.join("poll");
    if !poll.exists() {
        bail!("{} is missing: run `cargo build --release -p poll` first", poll.display());
    }
    let activation = json!({
        "value": {},
        "namespace": "guest",
        "action_name": "/whisk.system/owfeed/poll",
        "activation_id": "0123456789abcdef0123456789abcdef",
        "deadline": "4102444800000",
    });
    let line = activation.to_string();
    let mut out = Vec::new();
    for _ in 0..runs {
        let started = Instant::now();
        let mut action = ActionLoop::spawn(&poll, &[("__OW_API_HOST", "http://127.0.0.1:9")], ResultChannel::Fd3)?;
        action.send_line(&line)?;
        let result = action.read_result()?;
        out.push(started.elapsed().as_secs_f64() * 1000.0);
        if result.get("error").is_none() {
            bail!("the invalid activation did not fail: {result}");
        }
        action.finish()?;
    }
    Ok(out)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn parent(keys: u64, repeat: usize) -> anyhow::Result<()> {
    eprintln!("bench: {keys} keys, best of {repeat} runs per measurement, each in a child process");
    let ours = run_child("ours", keys, repeat)?;
    let naive = run_child("naive", keys, repeat)?;
    if ours["changes"] != naive["changes"] {
        bail!("the two diffs disagree: {} vs {} changes", ours["changes"], naive["changes"]);
    }
    let f = |v: &Value, k: &str| v[k].as_f64().unwrap_or(f64::NAN);
    let n = keys as f64;
    println!("| measurement ({keys} keys, {} changes) | ours | naive gzip-JSON map | ratio |", ours["changes"]);
    println!("|---|---|---|---|");
    for (label, key) in [("decode old state, s", "decodeS"), ("diff, s", "diffS"), ("encode new state, s", "encodeS")] {
        let (a, b) = (f(&ours, key), f(&naive, key));
        println!("| {label} | {a:.3} | {b:.3} | {:.1}× |", b / a);
    }
    let (a, b) = (f(&ours, "totalS"), f(&naive, "totalS"));
    println!("| decode + diff + encode (wall), s | {a:.3} | {b:.3} | {:.1}× |", b / a);
    let (ca, cb) = (f(&ours, "cpuS"), f(&naive, "cpuS"));
    println!("| decode + diff + encode (CPU), s | {ca:.3} | {cb:.3} | {:.1}× |", cb / ca);
    println!("| throughput (wall), keys/s | {:.0} | {:.0} | |", n / a, n / b);
    let (sa, sb) = (f(&ours, "newStateBytes"), f(&naive, "newStateBytes"));
    println!("| state size, bytes | {sa:.0} | {sb:.0} | {:.1}× |", sb / sa);
    println!("| state bytes per object | {:.2} | {:.2} | |", sa / n, sb / n);
    let (ra, rb) = (f(&ours, "peakRssKiB") / 1024.0, f(&naive, "peakRssKiB") / 1024.0);
    println!("| peak RSS of the measuring process, MiB | {ra:.1} | {rb:.1} | {:.1}× |", rb / ra);
    match cold_starts(20) {
        Ok(times) => {
            let (lo, hi) = times.iter().fold((f64::MAX, 0f64), |(lo, hi), t| (lo.min(*t), hi.max(*t)));
            println!(
                "| poll cold start to first result, ms (median of 20; min {lo:.2}, max {hi:.2}) | {:.2} | | |",
                median(times)
            );
        }
        Err(e) => println!("| poll cold start | not measured: {e} | | |"),
    }
    eprintln!("bench: raw results: {ours} {naive}");
    Ok(())
}

/// The real `changes` and `poll` release binaries in the emulator against s3s-fs holding
/// `objects` objects: wall time of CREATE (its baseline lists everything) and of one poll after
/// 1 % of the objects changed. Needs `cargo build --release -p changes -p poll` and s3s-fs.
fn full_poll(objects: u64) -> anyhow::Result<()> {
    let dir = std::env::current_exe()?.parent().map(PathBuf::from).context("no exe dir")?;
    let (feed, poll) = (dir.join("changes"), dir.join("poll"));
    if !feed.exists() || !poll.exists() {
        bail!("run `cargo build --release -p changes -p poll` first");
    }
    let (access, secret) = ("AKIDBENCH", "bench-secret");
    let fs = S3sFs::start(access, secret);
    let mut config = S3Config::new(&fs.endpoint, "us-east-1", access, SecretString::new(secret));
    config.list_url_encoding = false;
    let client = S3Client::new(config)?;
    client.create_bucket("bench")?;
    let keys: Vec<String> = GenSpec::base(objects, SEED).collect().into_iter().map(|e| e.key).collect();
    let put_all = |keys: &[String], body: &[u8]| {
        std::thread::scope(|scope| {
            for chunk in keys.chunks(keys.len().div_ceil(8).max(1)) {
                let client = &client;
                scope.spawn(move || {
                    for key in chunk {
                        client.put_object("bench", key, body.to_vec(), Condition::None).expect("put object");
                    }
                });
            }
        })
    };
    let started = Instant::now();
    put_all(&keys, b"x");
    eprintln!("bench: put {objects} objects in {:.1} s", started.elapsed().as_secs_f64());
    let w = World::start(&feed, &poll);
    let params = json!({
        "endpoint": fs.endpoint, "bucket": "bench", "accessKeyId": access, "secretAccessKey": secret,
        "urlEncoding": false, "batch": 100,
    });
    let started = Instant::now();
    w.create_trigger("t", params).map_err(|e| anyhow::anyhow!("CREATE: {e}"))?;
    let create_s = started.elapsed().as_secs_f64();
    let changed: Vec<String> = keys.iter().step_by(100).cloned().collect();
    put_all(&changed, b"a longer body");
    let started = Instant::now();
    w.poll();
    let poll_s = started.elapsed().as_secs_f64();
    let result = w.poll_results().pop().unwrap_or_default();
    let read = w.feed("READ", "t", json!({})).map_err(|e| anyhow::anyhow!("READ: {e}"))?;
    println!("| full poll on s3s-fs, {objects} objects | wall, s | outcome |");
    println!("|---|---|---|");
    println!(
        "| CREATE (baseline listing of every object) | {create_s:.2} | baselined: {} |",
        read["status"]["baselined"]
    );
    println!(
        "| one poll after {} objects changed (alarm fired → result) | {poll_s:.2} | {}, listed {}, changes {} |",
        changed.len(),
        result["status"],
        result["listed"],
        result["changes"]
    );
    Ok(())
}

/// Fraction of the base keys each created, updated and deleted between the baseline and the
/// measured polls (about 3,000 changes on 1M entries).
const POLL_RSS_MUTATE: f64 = 0.001;
/// The whole `--poll-rss` run stops with an error after this long.
const POLL_RSS_BUDGET: Duration = Duration::from_secs(15 * 60);
/// Most polls per phase (baseline, changes) before the run gives up.
const POLL_RSS_MAX_POLLS: usize = 60;

fn parse_count(arg: Option<&String>, flag: &str) -> anyhow::Result<u64> {
    let text = arg.with_context(|| format!("{flag} needs a number"))?;
    text.replace('_', "").parse().with_context(|| format!("{flag}: {text:?} is not a number"))
}

/// `60000:0,10000:10` → [(60000, 0), (10000, 10)]: action time limit and page delay, in ms.
fn parse_limits(list: &str) -> anyhow::Result<Vec<(u64, u64)>> {
    let mut out = Vec::new();
    for item in list.split(',') {
        let (limit, delay) =
            item.split_once(':').with_context(|| format!("--poll-limits: {item:?} is not LIMIT_MS:PAGE_DELAY_MS"))?;
        out.push((limit.parse().context("--poll-limits: LIMIT_MS")?, delay.parse().context("--poll-limits: DELAY")?));
    }
    Ok(out)
}

/// What the sampler was doing when it first saw a process: which action it serves.
const PHASE_FEED: u8 = 0;
const PHASE_POLL: u8 = 1;

/// The highest `VmHWM` seen for one action process, and the phase it was first seen in.
#[derive(Clone, Copy, Debug)]
struct Peak {
    first_phase: u8,
    /// Since the last reset (`reset_poll_peaks`).
    hwm_kib: u64,
    /// Over the process's life.
    max_kib: u64,
}

/// Samples, every 20 ms, `VmHWM` of this process's children whose executable is the
/// `gen-action` binary (the emulator runs actions as direct children, from an unpacked copy of
/// the zip: recognised by size). `VmHWM` is the kernel's own high-water mark, so sampling only
/// misses growth in the last 20 ms of a process that is killed (a timed-out activation).
struct Sampler {
    exe_len: u64,
    phase: Arc<AtomicU8>,
    stop: Arc<AtomicBool>,
    peaks: Arc<Mutex<BTreeMap<u32, Peak>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Sampler {
    fn start(exe_len: u64) -> Sampler {
        let phase = Arc::new(AtomicU8::new(PHASE_FEED));
        let stop = Arc::new(AtomicBool::new(false));
        let peaks = Arc::new(Mutex::new(BTreeMap::new()));
        let (p, s, k) = (phase.clone(), stop.clone(), peaks.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                sample_children(exe_len, p.load(Ordering::SeqCst), &k);
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        Sampler { exe_len, phase, stop, peaks, thread: Some(thread) }
    }

    fn set_phase(&self, phase: u8) {
        sample_children_now(self);
        self.phase.store(phase, Ordering::SeqCst);
    }

    /// Resets the kernel's high-water mark of every poll process to its current RSS (`5` to
    /// `/proc/<pid>/clear_refs`), so the next sample shows the next activation's own peak: a
    /// warm process serves several polls. Returns the highest RSS they start from (KiB, 0
    /// when there is none): what a warm process keeps from the polls before.
    fn reset_poll_peaks(&self) -> u64 {
        sample_children_now(self);
        let Ok(mut peaks) = self.peaks.lock() else { return 0 };
        let mut start = 0;
        for (pid, peak) in peaks.iter_mut().filter(|(_, p)| p.first_phase == PHASE_POLL) {
            let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
            peak.hwm_kib = 0;
            start = start.max(status_kib(*pid, "VmRSS:").unwrap_or(0));
        }
        start
    }

    /// The highest `VmHWM` of the poll processes since the last reset.
    fn poll_peak_kib(&self) -> u64 {
        sample_children_now(self);
        let Ok(peaks) = self.peaks.lock() else { return 0 };
        peaks.values().filter(|p| p.first_phase == PHASE_POLL).map(|p| p.hwm_kib).max().unwrap_or(0)
    }

    /// Stops sampling (after a last sample) and returns the peaks by pid.
    fn finish(mut self) -> BTreeMap<u32, Peak> {
        sample_children_now(&self);
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let peaks = self.peaks.lock().map(|p| p.clone()).unwrap_or_default();
        peaks
    }
}

fn sample_children_now(s: &Sampler) {
    sample_children(s.exe_len, s.phase.load(Ordering::SeqCst), &s.peaks);
}

/// One sample: every child running the gen-action binary, its `VmHWM` folded into `peaks`.
fn sample_children(exe_len: u64, phase: u8, peaks: &Mutex<BTreeMap<u32, Peak>>) {
    let me = std::process::id();
    let Ok(dir) = std::fs::read_dir("/proc") else { return };
    for entry in dir.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        if parent_pid(pid) != Some(me) {
            continue;
        }
        if std::fs::metadata(format!("/proc/{pid}/exe")).map(|m| m.len()).ok() != Some(exe_len) {
            continue;
        }
        let Some(hwm) = status_kib(pid, "VmHWM:") else { continue };
        let Ok(mut peaks) = peaks.lock() else { return };
        let peak = peaks.entry(pid).or_insert(Peak { first_phase: phase, hwm_kib: 0, max_kib: 0 });
        peak.hwm_kib = peak.hwm_kib.max(hwm);
        peak.max_kib = peak.max_kib.max(hwm);
    }
}

/// The parent pid from `/proc/<pid>/stat` (the field after the parenthesised command name).
fn parent_pid(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 1..].split_whitespace().nth(1)?.parse().ok()
}

fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find(|l| l.starts_with(field))?.split_whitespace().nth(1)?.parse().ok()
}

/// What one `--poll-rss` run saw.
struct RssRun {
    limit_ms: u64,
    delay_ms: u64,
    create_s: f64,
    /// READ after CREATE: did CREATE finish the baseline within its deadline?
    create_baselined: bool,
    baseline_polls: usize,
    change_polls: usize,
    /// READs after a poll of the changes phase that showed `listingInProgress: true`.
    cut_reads: usize,
    /// Poll wall times (alarm fired → emulator idle, fires and recorder included), s.
    walls: Vec<f64>,
    /// RSS of the warm poll process when each poll started (0: a new process), KiB.
    poll_starts: Vec<u64>,
    /// Peak RSS of the poll process during each poll, KiB.
    poll_peaks: Vec<u64>,
    /// The emulator's record of every poll activation, in order.
    polls: Vec<Value>,
    /// Highest `VmHWM` of a poll process over its whole life (a warm process serves several polls).
    poll_life_kib: u64,
    feed_peak_kib: u64,
    poll_processes: usize,
    expected: usize,
    events: usize,
    unique_ids: usize,
    matches: bool,
    objects_tracked: Value,
    objects_expected: u64,
}

/// Peak RSS of the real poll code path on `entries` generated entries: for each (action time
/// limit, page delay) the release `gen-action` (feed and poll of the `generated` source) runs in
/// the emulator; CREATE baselines (polls continue a baseline cut by the deadline), then the
/// listing changes (`POLL_RSS_MUTATE`) and polls run until READ shows no listing in progress and
/// no pending events. Needs `cargo build --release -p feed-tests --bin gen-action --bin echo-action`.
fn poll_rss(entries: u64, limits: &[(u64, u64)], cold: bool, parallelism: u64) -> anyhow::Result<()> {
    let dir = std::env::current_exe()?.parent().map(PathBuf::from).context("no exe dir")?;
    let (gen, echo) = (dir.join("gen-action"), dir.join("echo-action"));
    if !gen.exists() || !echo.exists() {
        bail!("run `cargo build --release -p feed-tests --bin gen-action --bin echo-action` first");
    }
    let abort_at = Instant::now() + POLL_RSS_BUDGET;
    let base = GenSpec::base(entries, SEED);
    let mutated = base.mutated(1, POLL_RSS_MUTATE);
    let mut runs = Vec::new();
    for &(limit_ms, delay_ms) in limits {
        eprintln!(
            "bench: poll RSS, {entries} entries, action time limit {limit_ms} ms, page delay {delay_ms} ms, \
             parallelism {parallelism}"
        );
        let setup = RunSetup { limit_ms, delay_ms, cold, parallelism };
        runs.push(poll_rss_run(&gen, &echo, entries, setup, abort_at)?);
    }
    // After the runs: the naive map diff of two 1M listings would compete for the CPU.
    let want = expected_changes(&base, &mutated);
    let created = want.iter().filter(|(k, _)| k == "created").count() as u64;
    let deleted = want.iter().filter(|(k, _)| k == "deleted").count() as u64;
    for (run, seen) in runs.iter_mut() {
        run.expected = want.len();
        run.matches = *seen == want;
        run.objects_expected = entries + created - deleted;
    }
    println!(
        "| action time limit, page delay | CREATE, s (baseline done?) | polls: baseline + changes | poll outcomes \
         | poll wall, s (min / median / max) | peak RSS of one `poll` activation, MiB (max) | peak RSS of the feed \
         action, MiB | events / expected (unique ids, exact match) |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (r, _) in &runs {
        let mut walls = r.walls.clone();
        walls.sort_by(f64::total_cmp);
        let (lo, hi) = (walls.first().copied().unwrap_or(0.0), walls.last().copied().unwrap_or(0.0));
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for p in &r.polls {
            *counts.entry(p["response"]["result"]["status"].as_str().unwrap_or("error")).or_default() += 1;
        }
        let outcomes: Vec<String> = counts.iter().map(|(o, n)| format!("{n}× {o}")).collect();
        println!(
            "| {} s, {} ms/page{} | {:.2} ({}) | {} + {} | {}; READ showed the changes listing cut {}× \
             | {lo:.2} / {:.2} / {hi:.2} | {:.1} (process life: {:.1}) | {:.1} | {} / {} ({} unique, {}) |",
            r.limit_ms / 1000,
            r.delay_ms,
            if cold { ", a new process per poll" } else { "" },
            r.create_s,
            if r.create_baselined { "yes" } else { "no: cut, resumed by polls" },
            r.baseline_polls,
            r.change_polls,
            outcomes.join(", "),
            r.cut_reads,
            median(walls.clone()),
            r.poll_peaks.iter().copied().max().unwrap_or(0) as f64 / 1024.0,
            r.poll_life_kib as f64 / 1024.0,
            r.feed_peak_kib as f64 / 1024.0,
            r.events,
            r.expected,
            r.unique_ids,
            if r.matches { "exact match" } else { "MISMATCH" },
        );
    }
    for (r, _) in &runs {
        println!();
        println!(
            "Polls with a {} s limit, {} ms/page (objectsTracked after the last: {}, expected {}; {} poll \
             process{})",
            r.limit_ms / 1000,
            r.delay_ms,
            r.objects_tracked,
            r.objects_expected,
            r.poll_processes,
            if r.poll_processes == 1 { "" } else { "es" },
        );
        println!();
        println!(
            "| poll | listing | outcome | listed | changes | fired | pending | activation, s | wall, s \
             | RSS at start, MiB | peak RSS, MiB |"
        );
        println!("|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
        for (i, p) in r.polls.iter().enumerate() {
            let res = &p["response"]["result"];
            println!(
                "| {} | {} | {} | {} | {} | {} | {} | {:.2} | {:.2} | {} | {:.1} |",
                i + 1,
                if i < r.baseline_polls { "baseline (silent)" } else { "after the changes" },
                res["status"].as_str().map(str::to_string).unwrap_or_else(|| format!("error: {}", res["error"])),
                res["listed"],
                res["changes"],
                res["fired"],
                res["pending"],
                p["duration"].as_u64().unwrap_or(0) as f64 / 1000.0,
                r.walls.get(i).copied().unwrap_or(f64::NAN),
                match r.poll_starts.get(i).copied().unwrap_or(0) {
                    0 => "new process".to_string(),
                    kib => format!("{:.1}", kib as f64 / 1024.0),
                },
                r.poll_peaks.get(i).copied().unwrap_or(0) as f64 / 1024.0,
            );
        }
    }
    Ok(())
}

/// READ's `status`, with the sampler attributing any new process to the feed action.
fn read_status(w: &World, sampler: &Sampler) -> anyhow::Result<Value> {
    sampler.set_phase(PHASE_FEED);
    let read = w.feed("READ", "t", json!({})).map_err(|e| anyhow::anyhow!("READ: {e}"))?;
    Ok(read["status"].clone())
}

/// Fires the alarm once and waits for the poll and the fires it caused: its wall time in s, the
/// poll process's RSS before and its peak during it, KiB. `redeploy`: the poll action's body,
/// put again first so the poll starts in a fresh process.
fn poll_once(
    w: &World,
    sampler: &Sampler,
    abort_at: Instant,
    redeploy: Option<&Value>,
) -> anyhow::Result<(f64, u64, u64)> {
    if Instant::now() > abort_at {
        bail!("aborted: the run took longer than {} s", POLL_RSS_BUDGET.as_secs());
    }
    if let Some(body) = redeploy {
        let qn = QualifiedName::new(ow_emulator::SYSTEM_NAMESPACE, Some(PACKAGE), "poll");
        w.system.put_action(&qn, body, true)?;
    }
    sampler.set_phase(PHASE_POLL);
    let start_kib = sampler.reset_poll_peaks();
    let started = Instant::now();
    if w.emu.fire_alarms().is_empty() {
        bail!("no alarm to fire: CREATE made none");
    }
    if !w.emu.wait_idle(Duration::from_secs(300)) {
        bail!("the emulator did not go idle within 300 s after a poll");
    }
    let wall = started.elapsed().as_secs_f64();
    Ok((wall, start_kib, sampler.poll_peak_kib()))
}

/// One run; also returns the (kind, key) of every event received, sorted.
/// How one `--poll-rss` run is set up.
#[derive(Clone, Copy)]
struct RunSetup {
    limit_ms: u64,
    delay_ms: u64,
    cold: bool,
    parallelism: u64,
}

fn poll_rss_run(
    gen: &Path,
    echo: &Path,
    entries: u64,
    setup: RunSetup,
    abort_at: Instant,
) -> anyhow::Result<(RssRun, Vec<(String, String)>)> {
    let RunSetup { limit_ms, delay_ms, cold, parallelism } = setup;
    let w = World::start(gen, gen);
    let feed_ann = json!([{"key": "feed", "value": true}, {"key": "provide-api-key", "value": true}]);
    let poll_ann = json!([{"key": "provide-api-key", "value": true}]);
    let mut redeploy = None;
    for (name, ann) in [("changes", feed_ann), ("poll", poll_ann)] {
        let mut body = action_body(gen, "rust:1.34", ann)?;
        body["limits"]["timeout"] = json!(limit_ms);
        let qn = QualifiedName::new(ow_emulator::SYSTEM_NAMESPACE, Some(PACKAGE), name);
        w.system.put_action(&qn, &body, true)?;
        if cold && name == "poll" {
            redeploy = Some(body);
        }
    }
    let sampler = Sampler::start(std::fs::metadata(gen)?.len());
    let state_dir = w.dir.path().join("state");
    let params = json!({
        "entries": entries, "seed": SEED, "pageSize": 1000, "pageDelayMs": delay_ms,
        "stateDir": state_dir, "batch": 100, "parallelism": parallelism,
    });
    let started = Instant::now();
    w.create_trigger("t", params).map_err(|e| anyhow::anyhow!("CREATE: {e}"))?;
    let create_s = started.elapsed().as_secs_f64();
    w.record_events("t", echo);
    let mut status = read_status(&w, &sampler)?;
    let create_baselined = status["baselined"] == true && status["listingInProgress"] == false;
    let (mut walls, mut poll_starts, mut poll_peaks) = (Vec::new(), Vec::new(), Vec::new());
    let mut baseline_polls = 0;
    while !(status["baselined"] == true && status["listingInProgress"] == false) {
        if baseline_polls >= POLL_RSS_MAX_POLLS {
            bail!("the baseline did not finish in {POLL_RSS_MAX_POLLS} polls: {status}");
        }
        let (wall, start, peak) = poll_once(&w, &sampler, abort_at, redeploy.as_ref())?;
        walls.push(wall);
        poll_starts.push(start);
        poll_peaks.push(peak);
        baseline_polls += 1;
        status = read_status(&w, &sampler)?;
    }
    if !w.events().is_empty() {
        bail!("the baseline fired {} events", w.events().len());
    }
    let update = json!({"mutate": POLL_RSS_MUTATE, "round": 1});
    w.feed("UPDATE", "t", update).map_err(|e| anyhow::anyhow!("UPDATE: {e}"))?;
    let (mut change_polls, mut cut_reads) = (0, 0);
    loop {
        if change_polls >= POLL_RSS_MAX_POLLS {
            bail!("the changes were not all delivered in {POLL_RSS_MAX_POLLS} polls: {status}");
        }
        let (wall, start, peak) = poll_once(&w, &sampler, abort_at, redeploy.as_ref())?;
        walls.push(wall);
        poll_starts.push(start);
        poll_peaks.push(peak);
        change_polls += 1;
        status = read_status(&w, &sampler)?;
        if status["listingInProgress"] == true {
            cut_reads += 1;
        } else if status["eventsPending"] == 0 {
            break;
        }
    }
    let polls: Vec<Value> = w.emu.activations(USER).into_iter().filter(|a| a["name"] == "poll").collect();
    let mut events = Vec::new();
    for payload in w.events() {
        match payload.get("events").and_then(Value::as_array) {
            Some(batch) => events.extend(batch.iter().cloned()),
            None => events.push(payload),
        }
    }
    let ids: BTreeSet<&str> = events.iter().filter_map(|e| e["id"].as_str()).collect();
    let mut seen: Vec<(String, String)> = events
        .iter()
        .map(|e| {
            let kind = e["type"].as_str().unwrap_or("?").rsplit('.').next().unwrap_or("?").to_string();
            (kind, e["subject"].as_str().unwrap_or("?").to_string())
        })
        .collect();
    seen.sort();
    let peaks = sampler.finish();
    let of = |phase: u8| peaks.values().filter(|p| p.first_phase == phase).map(|p| p.max_kib).max().unwrap_or(0);
    let run = RssRun {
        limit_ms,
        delay_ms,
        create_s,
        create_baselined,
        baseline_polls,
        change_polls,
        cut_reads,
        walls,
        poll_starts,
        poll_peaks,
        polls,
        poll_life_kib: of(PHASE_POLL),
        feed_peak_kib: of(PHASE_FEED),
        poll_processes: peaks.values().filter(|p| p.first_phase == PHASE_POLL).count(),
        expected: 0,
        events: events.len(),
        unique_ids: ids.len(),
        matches: false,
        objects_tracked: status["objectsTracked"].clone(),
        objects_expected: 0,
    };
    Ok((run, seen))
}

/// What `--namespace` runs.
struct Load {
    idle: usize,
    busy: usize,
    minutes: u64,
    events: usize,
    batch: u64,
}

fn parse_load(spec: &str) -> anyhow::Result<Load> {
    let parts: Vec<u64> = spec.split(':').map(|p| p.replace('_', "").parse::<u64>()).collect::<Result<_, _>>()?;
    let at = |i: usize, default: u64| parts.get(i).copied().unwrap_or(default);
    if parts.len() < 3 {
        bail!("--namespace IDLE:BUSY:MINUTES[:EVENTS[:BATCH]]");
    }
    Ok(Load {
        idle: at(0, 0) as usize,
        busy: at(1, 0) as usize,
        minutes: at(2, 1),
        events: at(3, 1).max(1) as usize,
        batch: at(4, 1).clamp(1, 100),
    })
}

fn ms_now() -> u64 {
    owfeed::budget::now_ms()
}

/// One namespace at OpenWhisk's default quotas for a few minutes (see the module doc).
fn namespace_load(spec: &str, bins: Option<PathBuf>) -> anyhow::Result<()> {
    let load = parse_load(spec)?;
    let dir = match bins {
        Some(d) => d,
        None => std::env::current_exe()?.parent().map(PathBuf::from).context("no exe dir")?,
    };
    let (feed, poll) = (dir.join("changes"), dir.join("poll"));
    if !feed.exists() || !poll.exists() {
        bail!("{} needs `changes` and `poll` (cargo build --release -p changes -p poll)", dir.display());
    }
    let (access, secret) = ("AKIDBENCH", "bench-secret");
    let fs = S3sFs::start(access, secret);
    let mut config = S3Config::new(&fs.endpoint, "us-east-1", access, SecretString::new(secret));
    config.list_url_encoding = false;
    let s3 = S3Client::new(config)?;
    let emulator = ow_emulator::Config { alarms_realtime: true, ..ow_emulator::Config::with_namespaces(&[USER]) };
    let w = World::start_with(emulator, &feed, &poll);
    let total = load.idle + load.busy;
    let name = |i: usize| if i < load.busy { format!("busy{i}") } else { format!("idle{i}") };
    let started = Instant::now();
    let make = |i: usize| {
        let bucket = format!("bucket-{i}");
        s3.create_bucket(&bucket).expect("create bucket");
        s3.put_object(&bucket, "first.txt", b"1".to_vec(), Condition::None).expect("put");
        let mut params = json!({
            "endpoint": fs.endpoint, "bucket": bucket, "accessKeyId": access, "secretAccessKey": secret,
            "urlEncoding": false,
        });
        if load.batch > 1 {
            params["batch"] = json!(load.batch);
        }
        w.create_trigger(&name(i), params).unwrap_or_else(|e| panic!("CREATE {}: {e}", name(i)));
    };
    std::thread::scope(|scope| {
        for part in 0..4 {
            let make = &make;
            scope.spawn(move || (part..total).step_by(4).for_each(make));
        }
    });
    if load.busy > 0 {
        let here = std::env::current_exe()?.parent().map(PathBuf::from).context("no exe dir")?;
        w.record_events(&name(0), here.join("echo-action").as_path());
        let recorder = QualifiedName::new(USER, None, "recorder");
        for i in 1..load.busy {
            let rule = QualifiedName::new(USER, None, &format!("{}-recorder", name(i)));
            w.user.put_rule(&rule, &QualifiedName::new(USER, None, &name(i)), &recorder, true)?;
        }
    }
    eprintln!("bench: {total} triggers made in {:.0} s", started.elapsed().as_secs_f64());
    // OpenWhisk's defaults from here on (apache/openwhisk ansible/group_vars/all).
    w.emu.set_fires_per_minute(Some(60));
    w.emu.set_invocation_limits(ow_emulator::InvocationLimits { per_minute: Some(60), concurrent: Some(30) });
    let before = w.emu.refusals(USER);

    // Changes from the next minute on, spread over each minute.
    let start = ms_now() + feed_tests::world::left_in_minute();
    let mut written: BTreeMap<String, u64> = BTreeMap::new();
    let per_minute = load.busy * load.events;
    for minute in 0..load.minutes {
        for n in 0..per_minute {
            let i = n % load.busy.max(1);
            let at = start + minute * 60_000 + (n as u64 * 60_000 / per_minute.max(1) as u64);
            std::thread::sleep(Duration::from_millis(at.saturating_sub(ms_now())));
            let key = format!("m{minute}-{n}.txt");
            s3.put_object(&format!("bucket-{i}"), &key, key.as_bytes().to_vec(), Condition::None)?;
            written.insert(format!("{}/{key}", name(i)), ms_now());
        }
        if per_minute == 0 {
            std::thread::sleep(Duration::from_millis((start + (minute + 1) * 60_000).saturating_sub(ms_now())));
        }
    }
    let end = start + load.minutes * 60_000;
    // Events as the triggers accepted them: (trigger/key) → accept times.
    let delivered = |w: &World| -> BTreeMap<String, Vec<u64>> {
        let mut out: BTreeMap<String, Vec<u64>> = BTreeMap::new();
        for a in w.emu.activations(USER) {
            let trigger = a["name"].as_str().unwrap_or_default().to_string();
            if !trigger.starts_with("busy") || trigger.contains('.') {
                continue;
            }
            let at = a["start"].as_u64().unwrap_or(0);
            let result = &a["response"]["result"];
            let events = result["events"].as_array().cloned().unwrap_or_else(|| vec![result.clone()]);
            for e in events {
                let key = e["subject"].as_str().or(e["key"].as_str()).unwrap_or("?").to_string();
                out.entry(format!("{trigger}/{key}")).or_default().push(at);
            }
        }
        out
    };
    let drain = Instant::now() + Duration::from_secs(180);
    while written.keys().any(|k| !delivered(&w).contains_key(k)) && Instant::now() < drain {
        std::thread::sleep(Duration::from_secs(5));
    }
    w.emu.wait_idle(Duration::from_secs(90));
    let got = delivered(&w);
    let lost = written.keys().filter(|k| !got.contains_key(*k)).count();
    let twice = got.iter().filter(|(k, t)| written.contains_key(*k) && t.len() > 1).count();
    let mut delays: Vec<u64> =
        written.iter().filter_map(|(k, at)| got.get(k).map(|t| t[0].saturating_sub(*at))).collect();
    delays.sort();
    let pct = |q: f64| -> f64 {
        if delays.is_empty() {
            return f64::NAN;
        }
        delays[((q * delays.len() as f64).ceil() as usize).clamp(1, delays.len()) - 1] as f64 / 1000.0
    };
    let in_run = written.keys().filter(|k| got.get(*k).is_some_and(|t| t[0] <= end)).count();
    let alarms = feed_tests::emulator_support::Api::new(&w.emu.url(), None).get("/__emulator/alarms").json();
    let alarms = alarms.as_object().cloned().unwrap_or_default();
    let disabled = alarms.values().filter(|a| a["status"]["active"] == false).count();
    let refused = w.emu.refusals(USER);
    let records = w.emu.activations(USER);
    let rule_refused = records
        .iter()
        .filter(|a| a["name"].as_str().is_some_and(|n| n.starts_with("busy") && !n.contains('.')))
        .flat_map(|a| a["logs"].as_array().cloned().unwrap_or_default())
        .filter(|l| l.as_str().is_some_and(|l| l.contains("\"success\":false")))
        .count();
    let polls: Vec<&Value> = records
        .iter()
        .filter(|a| a["name"] == "poll")
        .filter(|a| a["start"].as_u64().is_some_and(|s| s >= start && s < end))
        .collect();
    let poll_ms: u64 = polls.iter().map(|a| a["duration"].as_u64().unwrap_or(0)).sum();
    let per_minute_s = poll_ms as f64 / 1000.0 / load.minutes as f64;
    let per_trigger_month = per_minute_s * 60.0 * 24.0 * 30.0 / total as f64;
    let max_tick = polls.iter().filter_map(|a| a["duration"].as_u64()).max().unwrap_or(0);
    println!(
        "| namespace at default quotas | {} idle + {} busy, {} min, {} events/min per busy trigger, batch {} |",
        load.idle, load.busy, load.minutes, load.events, load.batch
    );
    println!("|---|---|");
    println!("| binaries | {} |", dir.display());
    println!("| alarms | {} ({} disabled by the provider) |", alarms.len(), disabled);
    println!("| fires refused (429) | {} |", refused.fires - before.fires);
    println!("| invocations refused (429, rule invocations of accepted fires included) | {} ({rule_refused} rule invocations in trigger logs) |", refused.invocations - before.invocations);
    println!("| events written | {} |", written.len());
    println!("| events delivered within the run / after draining | {in_run} / {} |", written.len() - lost);
    println!("| events lost (not delivered 3 min after the run) | {lost} |");
    println!("| events delivered twice | {twice} |");
    println!("| delay write → fire, s | p50 {:.1}, p90 {:.1}, max {:.1} |", pct(0.5), pct(0.9), pct(1.0));
    println!("| events delivered per minute during the run | {:.0} |", in_run as f64 / load.minutes as f64);
    println!(
        "| poll activations during the run | {} ({:.1} a minute, longest {:.1} s) |",
        polls.len(),
        polls.len() as f64 / load.minutes as f64,
        max_tick as f64 / 1000.0
    );
    let fires = records
        .iter()
        .filter(|a| a["name"].as_str().is_some_and(|n| n.starts_with("busy") && !n.contains('.')))
        .filter(|a| a["start"].as_u64().is_some_and(|s| s >= start && s < end))
        .count();
    println!("| fires accepted during the run, a minute | {:.1} |", fires as f64 / load.minutes as f64);
    // The alarms' own fires: the scheduler's one a minute, or (the build before it) one per
    // trigger and interval.
    let alarm_fires = records
        .iter()
        .filter(|a| a["name"].as_str().is_some_and(|n| n.ends_with("-alarm") || n.ends_with("-tick")))
        .filter(|a| a["start"].as_u64().is_some_and(|s| s >= start && s < end))
        .count();
    println!("| alarm fires accepted during the run, a minute | {:.1} |", alarm_fires as f64 / load.minutes as f64);
    println!("| poll activation-seconds per minute | {per_minute_s:.1} |");
    println!("| activation-seconds per trigger per 30-day month | {per_trigger_month:.0} |");
    for a in &polls {
        let r = &a["response"]["result"];
        if r["polls"].is_array() {
            eprintln!(
                "bench: {} at {} for {:.1} s: polled {}, fired {}, pending {}, not polled {}, children {}",
                r["status"],
                (a["start"].as_u64().unwrap_or(0) % 60_000) as f64 / 1000.0,
                a["duration"].as_u64().unwrap_or(0) as f64 / 1000.0,
                r["polled"],
                r["fired"],
                r["pending"],
                r["notPolled"].as_array().map_or(0, Vec::len),
                r["children"].as_array().map_or(0, Vec::len),
            );
        }
    }
    Ok(())
}
