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
//! It asserts nothing about time; it reports.

// The table on stdout is this tool's output.
#![allow(clippy::print_stdout)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;
use serde_json::{json, Value};

use feed_tests::actionloop::{ActionLoop, ResultChannel};
use feed_tests::gen_source::GenSpec;
use feed_tests::s3sfs::S3sFs;
use feed_tests::world::World;
use owfeed::diff::Differ;
use owfeed::source::{Entry, Flow, ListRange};
use owfeed::state::{version_hash, SnapshotWriter, State};
use owfeed_s3::{Condition, S3Client, S3Config, SecretString};

const SEED: u64 = 42;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut keys: u64 = 1_000_000;
    let mut repeat: usize = 3;
    let mut child: Option<String> = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--keys" => keys = it.next().context("--keys needs a number")?.replace('_', "").parse()?,
            "--repeat" => repeat = it.next().context("--repeat needs a number")?.parse()?,
            "--full-poll" => {
                let objects = it.next().context("--full-poll needs a number of objects")?.replace('_', "").parse()?;
                return full_poll(objects);
            }
            "--child" => child = Some(it.next().context("--child needs a measurement")?.clone()),
            other => bail!("unknown argument {other:?} (expected --keys N, --repeat R, --full-poll N)"),
        }
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
        state.encode()
    };
    let mut runs = Vec::new();
    for _ in 0..repeat {
        let mut p = Phases::default();
        let old = p.decode.time(|| State::decode(&old_bytes).expect("our own state decodes"));
        let mut differ = Differ::new(&old.snapshot, &ListRange::default());
        stream(&next, &mut p.diff, |page| differ.push_page(page).expect("generated pages are sorted"));
        let out = p.diff.time(|| differ.finish());
        let changes = out.changes.len();
        let new_bytes = p.encode.time(|| {
            let mut state = State::new("bench");
            state.seq = old.seq + 1;
            state.snapshot = out.snapshot;
            state.baselined = true;
            state.encode()
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
