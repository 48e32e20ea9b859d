//! The listing benchmark (issue 21) on the suite's real Ceph RGW; not a test:
//!
//! ```sh
//! cargo build --release --bin poll --bin changes --bin list-bench
//! target/release/list-bench --objects 100000 --rounds 3
//! ```
//!
//! It starts a fresh RGW (`feed_tests::ceph`: Debian's Ceph 16.2, one node on memstore), puts
//! `--objects` objects into a bucket with 48 parallel PUTs (about 5 minutes for 100k), then
//! lists the whole bucket `--rounds` times with each of:
//!
//! * `dry`: the release `poll` binary's dry run (`-p dryRun true`, against an empty snapshot);
//! * `create`: CREATE of an S3 feed trigger (the release `changes` in the emulator): its baseline;
//! * `steady`: a poll of that trigger with nothing changed (the release `poll` in the emulator);
//! * `boto3`: boto3's `list_objects_v2` paginator (PyPI, installed on first use);
//! * `rclone`: `rclone lsf -R --fast-list` (Debian's package, installed on first use);
//!
//! and reports each one's wall time, CPU time (user + system of the process; of the action
//! process for `create` and `steady`), peak RSS, the LIST requests RGW served and RGW's own
//! time for them (the `latency` of its `beast:` access log lines, which RGW measures with a
//! clock of about 4 ms resolution), and, for a listing that sends one request at a time, the
//! pages after which the next request came 30 ms or more after RGW had answered (time spent
//! by the client between pages: waiting for the rest of the answer, parsing, diffing).
//!
//! `cut` compares a poll cut by its time limit (`--cut-limit-ms`, default 700) with one key
//! range and with four: how many keys the cut pass kept as listed (read back from the state
//! object), which the next poll does not list again; once against RGW directly, once through a
//! proxy that holds each LIST `--cut-page-delay-ms` (default 50; 0: not run), as a remote
//! store's page latency would.
//!
//! `--page-delay-ms D` makes CREATE and the steady poll list through such a proxy too (their
//! probes included), so how evenly a baseline's ranges share the work shows in its wall time.
//!
//! `--waits N` (module `waits`) compares, on every HTTP server the suite runs, N requests sent
//! with ureq's own agent and with `owfeed_s3::http_agent`: how many waited on the network.
//!
//! `--endpoint URL --bucket B --rgw-log PATH` reuses a running RGW whose bucket already holds
//! the objects (no start, no PUTs; `--populate` puts them first, so one populated RGW serves
//! the runs of several builds); `--only dry,create,…` runs a subset. It asserts nothing
//! about time; it reports.

// The tables on stdout are this tool's output.
#![allow(clippy::print_stdout)]

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use serde_json::{json, Value};

mod waits;

use feed_tests::ceph::{Rgw, REGION};
use feed_tests::s3proxy::{Fault, FaultProxy, Rule};
use feed_tests::world::{World, USER};
use owfeed::state::State;
use owfeed_s3::{Condition, S3Client, S3Config, SecretString};

/// Parallel PUTs while populating the bucket.
const WRITERS: usize = 48;
/// Where the triggers of the benchmark keep their state (not in the listed bucket).
const STATE_BUCKET: &str = "bench-state";
/// A listing page after which the next request came this long after RGW's answer counts as
/// a page the client waited on.
const GAP_MS: f64 = 30.0;

struct Args {
    objects: u64,
    rounds: usize,
    cut_limit_ms: u64,
    cut_page_delay_ms: u64,
    endpoint: Option<String>,
    bucket: String,
    rgw_log: Option<PathBuf>,
    only: Vec<String>,
    /// `--page-delay-ms`: CREATE and the steady poll list through a proxy holding each LIST
    /// this long (0: directly).
    page_delay_ms: u64,
    /// `--populate`: put the objects into the bucket of a running RGW (`--endpoint`) first.
    populate: bool,
    /// `--waits N`: compare the HTTP agents on every server instead (N requests each).
    waits: Option<usize>,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        objects: 100_000,
        rounds: 3,
        cut_limit_ms: 700,
        cut_page_delay_ms: 50,
        endpoint: None,
        bucket: "bench".to_string(),
        rgw_log: None,
        only: ["dry", "create", "steady", "cut", "boto3", "rclone"].map(String::from).to_vec(),
        populate: false,
        page_delay_ms: 0,
        waits: None,
    };
    let list: Vec<String> = std::env::args().skip(1).collect();
    let mut it = list.iter();
    while let Some(arg) = it.next() {
        let mut value = || it.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--objects" => args.objects = value()?.replace('_', "").parse()?,
            "--rounds" => args.rounds = value()?.parse::<usize>()?.max(1),
            "--cut-limit-ms" => args.cut_limit_ms = value()?.parse()?,
            "--cut-page-delay-ms" => args.cut_page_delay_ms = value()?.parse()?,
            "--endpoint" => args.endpoint = Some(value()?.clone()),
            "--bucket" => args.bucket = value()?.clone(),
            "--rgw-log" => args.rgw_log = Some(PathBuf::from(value()?)),
            "--only" => args.only = value()?.split(',').map(str::to_string).collect(),
            "--waits" => args.waits = Some(value()?.parse()?),
            "--populate" => args.populate = true,
            "--page-delay-ms" => args.page_delay_ms = value()?.parse()?,
            other => bail!(
                "unknown argument {other:?} (expected --objects N, --rounds R, --cut-limit-ms MS, --cut-page-delay-ms MS, --page-delay-ms MS, --only LIST, \
                 --endpoint URL --bucket B --rgw-log PATH [--populate], --waits N)"
            ),
        }
    }
    if args.endpoint.is_some() != args.rgw_log.is_some() {
        bail!("--endpoint and --rgw-log go together");
    }
    if args.populate && args.endpoint.is_none() {
        bail!("--populate is for a running RGW (--endpoint); a started one is always populated");
    }
    Ok(args)
}

/// The RGW the benchmark lists: one it started, or one given on the command line.
struct Target {
    endpoint: String,
    access_key: String,
    secret_key: String,
    bucket: String,
    log: ServerLog,
    _rgw: Option<Rgw>,
}

impl Target {
    fn client(&self) -> anyhow::Result<S3Client> {
        let config = S3Config::new(&self.endpoint, REGION, &self.access_key, SecretString::new(&self.secret_key));
        Ok(S3Client::new(config)?)
    }

    /// The S3 feed's parameters for this bucket.
    fn params(&self) -> Value {
        json!({
            "endpoint": self.endpoint, "bucket": self.bucket, "region": REGION,
            "accessKeyId": self.access_key, "secretAccessKey": self.secret_key,
        })
    }
}

/// The key of object `i`: log-like paths with `/`, 2000 a day, 40 per host.
fn key(i: u64) -> String {
    format!("logs/2024/{:02}/{:02}/host-{:03}/part-{:06}.json.gz", 1 + i / 56_000, 1 + i / 2_000 % 28, i / 40 % 50, i)
}

fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    if let Some(requests) = args.waits {
        return waits::run(requests);
    }
    let exe_dir = std::env::current_exe()?.parent().map(Path::to_path_buf).context("no exe dir")?;
    let (poll, changes) = (exe_dir.join("poll"), exe_dir.join("changes"));
    if !poll.exists() || !changes.exists() {
        bail!("run `cargo build --release -p poll -p changes -p feed-tests --bin list-bench` first");
    }
    let target = match (&args.endpoint, &args.rgw_log) {
        (Some(endpoint), Some(log)) => {
            let target = Target {
                endpoint: endpoint.clone(),
                access_key: feed_tests::ceph::ACCESS_KEY.to_string(),
                secret_key: feed_tests::ceph::SECRET_KEY.to_string(),
                bucket: args.bucket.clone(),
                log: ServerLog { path: log.clone(), bucket: args.bucket.clone() },
                _rgw: None,
            };
            if args.populate {
                populate(&target, args.objects)?;
            }
            target
        }
        _ => {
            let rgw = Rgw::start()?;
            let target = Target {
                endpoint: rgw.endpoint().to_string(),
                access_key: rgw.access_key_id().to_string(),
                secret_key: rgw.secret_access_key().to_string(),
                bucket: args.bucket.clone(),
                log: ServerLog { path: rgw.log_path(), bucket: args.bucket.clone() },
                _rgw: None,
            };
            populate(&target, args.objects)?;
            Target { _rgw: Some(rgw), ..target }
        }
    };
    target.client()?.create_bucket(STATE_BUCKET)?;
    eprintln!("list-bench: {} objects in {} at {}", args.objects, target.bucket, target.endpoint);
    let mut rows: Vec<(String, Vec<Measured>)> = Vec::new();
    let only = |what: &str| args.only.iter().any(|o| o == what);
    if only("dry") {
        rows.push(("`poll` dry run (whole bucket, empty snapshot)".into(), rounds(&args, || dry_run(&target, &poll))?));
    }
    if only("create") || only("steady") || only("cut") {
        let w = World::start(&changes, &poll);
        let actions = ActionProcesses::new(&[&poll, &changes])?;
        if only("create") || only("steady") {
            let proxy = match args.page_delay_ms {
                0 => None,
                delay => Some(delaying_proxy(&target, delay)?),
            };
            let endpoint = proxy.as_ref().map(|p| p.url().to_string());
            let mut created = Vec::new();
            let mut steady = Vec::new();
            for round in 0..args.rounds {
                let trigger = format!("t{round}");
                created.push(create(&target, endpoint.as_deref(), &w, &actions, &trigger)?);
                if only("steady") {
                    // The first poll after CREATE starts the poll process: not a steady poll.
                    w.poll_once(&trigger).map_err(anyhow::Error::msg)?;
                    steady.push(steady_poll(&target, &w, &actions, &trigger)?);
                }
                w.delete_trigger(&trigger).map_err(anyhow::Error::msg)?;
            }
            let how = match args.page_delay_ms {
                0 => String::new(),
                d => format!(", each LIST held {d} ms by a proxy"),
            };
            if only("create") {
                rows.push((format!("CREATE (baseline of the whole bucket{how})"), created));
            }
            if only("steady") {
                rows.push((format!("steady `poll`, nothing changed{how}"), steady));
            }
        }
        if only("cut") {
            cut_passes(&args, &target, &w, 0)?;
            if args.cut_page_delay_ms > 0 {
                cut_passes(&args, &target, &w, args.cut_page_delay_ms)?;
            }
        }
    }
    if only("boto3") {
        rows.push(("boto3 `list_objects_v2` paginator".into(), rounds(&args, || boto3(&target))?));
    }
    if only("rclone") {
        rows.push(("`rclone lsf -R --fast-list`".into(), rounds(&args, || rclone(&target))?));
    }
    print_table(args.objects, &rows);
    Ok(())
}

fn rounds(args: &Args, mut f: impl FnMut() -> anyhow::Result<Measured>) -> anyhow::Result<Vec<Measured>> {
    (0..args.rounds).map(|_| f()).collect()
}

/// Puts `objects` one-byte objects with `WRITERS` parallel PUTs (a client each).
fn populate(target: &Target, objects: u64) -> anyhow::Result<()> {
    let client = target.client()?;
    client.create_bucket(&target.bucket)?;
    let started = Instant::now();
    let next = std::sync::atomic::AtomicU64::new(0);
    std::thread::scope(|scope| -> anyhow::Result<()> {
        let workers: Vec<_> = (0..WRITERS)
            .map(|_| {
                scope.spawn(|| -> anyhow::Result<()> {
                    let client = target.client()?;
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if i >= objects {
                            return Ok(());
                        }
                        if i.is_multiple_of(10_000) {
                            eprintln!("list-bench: PUT {i}/{objects} ({:.0?})", started.elapsed());
                        }
                        client.put_object(&target.bucket, &key(i), b"x".to_vec(), Condition::None)?;
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().map_err(|_| anyhow::anyhow!("a writer panicked"))??;
        }
        Ok(())
    })?;
    eprintln!(
        "list-bench: put {objects} objects with {WRITERS} parallel PUTs in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// One listing of the bucket by one tool.
#[derive(Clone, Debug, Default)]
struct Measured {
    wall_s: f64,
    cpu_s: f64,
    rss_kib: u64,
    /// Keys the tool reported (0 when it reports none).
    keys: u64,
    server: ServerTime,
}

/// What RGW's log says about the listing requests of one run.
#[derive(Clone, Debug, Default)]
struct ServerTime {
    requests: usize,
    /// Sum of the requests' `latency`, s.
    busy_s: f64,
    /// Time RGW was serving at least one of them (the union of their intervals), s.
    span_s: f64,
    /// CPU time of radosgw and its OSD meanwhile (user + system), s.
    cpu_s: f64,
    /// For a listing that sent one request at a time: pages after which the next request
    /// came `GAP_MS` or more after RGW's answer, and the longest such time (ms); `None` when
    /// requests overlapped (parallel ranges).
    gaps: Option<(usize, f64)>,
}

/// radosgw's log: `beast:` lines, one per request, e.g.
/// `… beast: 0x…: 127.0.0.1 - tester [05/Dec/2026:04:52:23.160 +0000] "GET /b?list-type=2… HTTP/1.1" 200 … latency=0.012000000s`.
struct ServerLog {
    path: PathBuf,
    bucket: String,
}

/// Where a measurement starts in RGW's log, and the server processes' CPU then.
#[derive(Clone, Copy)]
struct Mark {
    len: u64,
    cpu_ticks: u64,
}

impl ServerLog {
    fn mark(&self) -> Mark {
        let len = std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0);
        Mark { len, cpu_ticks: self.server_pids().into_iter().map(cpu_ticks).sum() }
    }

    /// radosgw's and the OSD's pids, from the pid files next to the log (`DIR/run/*.pid`).
    fn server_pids(&self) -> Vec<u32> {
        let Some(run) = self.path.parent().and_then(Path::parent).map(|d| d.join("run")) else { return Vec::new() };
        ["client.rgw.a.pid", "osd.0.pid"]
            .iter()
            .filter_map(|f| std::fs::read_to_string(run.join(f)).ok()?.trim().parse().ok())
            .collect()
    }

    /// The listing requests (`GET /bucket?…`) logged since `mark`, as (start, latency) in ms.
    fn lists_since(&self, mark: Mark) -> anyhow::Result<Vec<(f64, f64)>> {
        // RGW writes the access line when the request is done: give it a moment.
        std::thread::sleep(Duration::from_millis(300));
        let mut file = std::fs::File::open(&self.path).with_context(|| format!("open {}", self.path.display()))?;
        std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(mark.len))?;
        let mut text = String::new();
        file.read_to_string(&mut text)?;
        let list = [format!("\"GET /{}?", self.bucket), format!("\"GET /{}/?", self.bucket)];
        let mut out = Vec::new();
        for line in text.lines().filter(|l| l.contains(" beast: ")) {
            if !list.iter().any(|p| line.contains(p.as_str())) {
                continue;
            }
            let start = line.split_once(" [").and_then(|(_, rest)| rest.split_once(' ')).and_then(|(t, _)| log_ms(t));
            let latency = line.rsplit_once("latency=").and_then(|(_, l)| l.trim_end_matches('s').parse::<f64>().ok());
            if let (Some(start), Some(latency)) = (start, latency) {
                out.push((start, latency * 1000.0));
            }
        }
        out.sort_by(|a, b| a.0.total_cmp(&b.0));
        Ok(out)
    }

    fn time_since(&self, mark: Mark) -> anyhow::Result<ServerTime> {
        let lists = self.lists_since(mark)?;
        let cpu_now: u64 = self.server_pids().into_iter().map(cpu_ticks).sum();
        let cpu_s = cpu_now.saturating_sub(mark.cpu_ticks) as f64 / 100.0;
        let busy_s = lists.iter().map(|(_, l)| l).sum::<f64>() / 1000.0;
        let mut span_ms = 0.0;
        let mut covered = f64::MIN;
        for (start, latency) in &lists {
            let end = start + latency;
            span_ms += (end - start.max(covered)).max(0.0);
            covered = covered.max(end);
        }
        let span_s = span_ms / 1000.0;
        // The log's clock ticks in about 4 ms: overlap means more than that.
        let sequential = lists.windows(2).all(|w| w[1].0 + 4.0 >= w[0].0 + w[0].1);
        let gaps = sequential.then(|| {
            let gaps: Vec<f64> = lists.windows(2).map(|w| w[1].0 - (w[0].0 + w[0].1)).collect();
            (gaps.iter().filter(|g| **g >= GAP_MS).count(), gaps.iter().copied().fold(0.0, f64::max))
        });
        Ok(ServerTime { requests: lists.len(), busy_s, span_s, cpu_s, gaps })
    }
}

/// `05/Dec/2026:04:52:23.160` as ms since the start of the month.
fn log_ms(t: &str) -> Option<f64> {
    let mut parts = t.split(':');
    let day: f64 = parts.next()?.split('/').next()?.parse().ok()?;
    let mut next = || parts.next().and_then(|p| p.parse::<f64>().ok());
    let (h, m, s) = (next()?, next()?, next()?);
    Some((((day * 24.0 + h) * 60.0 + m) * 60.0 + s) * 1000.0)
}

/// Runs `cmd` to its end: its stdout, wall time, CPU time (user + system) and peak RSS.
fn run_measured(mut cmd: Command) -> anyhow::Result<(String, Measured)> {
    let started = Instant::now();
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().context("spawn")?;
    let mut stdout = child.stdout.take().context("stdout")?;
    let mut stderr = child.stderr.take().context("stderr")?;
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    // Peak RSS from the process's own high-water mark, sampled until it exits: `ru_maxrss`
    // also counts the memory of this process that the child had before its exec.
    let pid = child.id();
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut peak = 0;
            while !done.load(Ordering::SeqCst) {
                peak = peak.max(status_kib(pid, "VmHWM:").unwrap_or(0));
                std::thread::sleep(Duration::from_millis(2));
            }
            peak
        })
    };
    let (status, usage) = wait_rusage(pid)?;
    let wall_s = started.elapsed().as_secs_f64();
    done.store(true, Ordering::SeqCst);
    let rss_kib = sampler.join().unwrap_or(0);
    let (out, err) = (out.join().unwrap_or_default(), err.join().unwrap_or_default());
    if status != 0 {
        bail!("{cmd:?} failed ({status}): {err}");
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    let cpu_s = secs(usage.ru_utime) + secs(usage.ru_stime);
    Ok((out, Measured { wall_s, cpu_s, rss_kib, ..Measured::default() }))
}

/// Waits for `pid` and returns its exit status and resource usage (`wait4`).
#[allow(unsafe_code)]
fn wait_rusage(pid: u32) -> anyhow::Result<(i32, libc::rusage)> {
    let mut status = 0;
    // SAFETY: rusage is plain old data, all zeroes is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid for writes for the duration of the call.
    let r = unsafe { libc::wait4(pid as i32, &mut status, 0, &mut usage) };
    if r < 0 {
        bail!("wait4: {}", std::io::Error::last_os_error());
    }
    Ok((status, usage))
}

fn dry_run(target: &Target, poll: &Path) -> anyhow::Result<Measured> {
    let mut cmd = Command::new(poll);
    cmd.args(["-p", "dryRun", "true", "-p", "endpoint", &target.endpoint, "-p", "bucket", &target.bucket]);
    cmd.args(["-p", "region", REGION, "-p", "accessKeyId", &target.access_key]);
    cmd.args(["-p", "secretAccessKey", &target.secret_key]).env_clear();
    let mark = target.log.mark();
    let (out, mut m) = run_measured(cmd)?;
    let result: Value = serde_json::from_str(&out).with_context(|| format!("dry run result: {out}"))?;
    m.keys = result["listed"].as_u64().unwrap_or(0);
    m.server = target.log.time_since(mark)?;
    eprintln!("list-bench: dry run {:.2} s, {} keys, {:.0} MiB", m.wall_s, m.keys, m.rss_kib as f64 / 1024.0);
    Ok(m)
}

/// The emulator's action processes (its direct children running one of our binaries): CPU
/// time and peak RSS around a call.
struct ActionProcesses {
    sizes: Vec<u64>,
}

impl ActionProcesses {
    fn new(binaries: &[&Path]) -> anyhow::Result<ActionProcesses> {
        let sizes = binaries.iter().map(|b| Ok(std::fs::metadata(b)?.len())).collect::<anyhow::Result<_>>()?;
        Ok(ActionProcesses { sizes })
    }

    fn pids(&self) -> Vec<u32> {
        let me = std::process::id();
        let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
        dir.flatten()
            .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
            .filter(|pid| stat_fields(*pid).is_some_and(|f| f.get(1).and_then(|p| p.parse::<u32>().ok()) == Some(me)))
            .filter(|pid| std::fs::metadata(format!("/proc/{pid}/exe")).is_ok_and(|m| self.sizes.contains(&m.len())))
            .collect()
    }

    /// CPU ticks (user + system) of every action process, by pid; resets their peak RSS.
    fn before(&self) -> BTreeMap<u32, u64> {
        self.pids()
            .into_iter()
            .map(|pid| {
                let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
                (pid, cpu_ticks(pid))
            })
            .collect()
    }

    /// CPU seconds spent since `before` and the highest peak RSS (KiB) of the action processes.
    fn after(&self, before: &BTreeMap<u32, u64>) -> (f64, u64) {
        let mut ticks = 0;
        let mut rss = 0;
        for pid in self.pids() {
            ticks += cpu_ticks(pid).saturating_sub(before.get(&pid).copied().unwrap_or(0));
            rss = rss.max(status_kib(pid, "VmHWM:").unwrap_or(0));
        }
        (ticks as f64 / 100.0, rss)
    }
}

/// The fields of `/proc/<pid>/stat` after the command name (state, ppid, …).
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    Some(stat[stat.rfind(')')? + 1..].split_whitespace().map(str::to_string).collect())
}

/// utime + stime of a process, in clock ticks (100 a second on Linux).
fn cpu_ticks(pid: u32) -> u64 {
    stat_fields(pid)
        .map(|f| {
            f.get(11).and_then(|u| u.parse::<u64>().ok()).unwrap_or(0)
                + f.get(12).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0)
        })
        .unwrap_or(0)
}

fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find(|l| l.starts_with(field))?.split_whitespace().nth(1)?.parse().ok()
}

/// Times `call` against the action processes and RGW's log.
fn around(
    target: &Target,
    actions: &ActionProcesses,
    call: impl FnOnce() -> anyhow::Result<Value>,
) -> anyhow::Result<(Value, Measured)> {
    let before = actions.before();
    let mark = target.log.mark();
    let started = Instant::now();
    let result = call()?;
    let wall_s = started.elapsed().as_secs_f64();
    let (cpu_s, rss_kib) = actions.after(&before);
    let server = target.log.time_since(mark)?;
    Ok((result, Measured { wall_s, cpu_s, rss_kib, keys: 0, server }))
}

/// CREATE of an S3 feed trigger on the bucket, at `endpoint` when given (a proxy's).
fn create(
    target: &Target,
    endpoint: Option<&str>,
    w: &World,
    actions: &ActionProcesses,
    trigger: &str,
) -> anyhow::Result<Measured> {
    let mut params = target.params();
    params["stateBucket"] = json!(STATE_BUCKET);
    if let Some(endpoint) = endpoint {
        params["endpoint"] = json!(endpoint);
    }
    let (_, mut m) = around(target, actions, || w.create_trigger(trigger, params).map_err(anyhow::Error::msg))?;
    let read = w.feed("READ", trigger, json!({})).map_err(anyhow::Error::msg)?;
    m.keys = read["status"]["objectsTracked"].as_u64().unwrap_or(0);
    eprintln!(
        "list-bench: CREATE {:.2} s, {} keys, baselined {}, listing in progress {}",
        m.wall_s, m.keys, read["status"]["baselined"], read["status"]["listingInProgress"]
    );
    Ok(m)
}

fn steady_poll(target: &Target, w: &World, actions: &ActionProcesses, trigger: &str) -> anyhow::Result<Measured> {
    let (result, mut m) = around(target, actions, || w.poll_once(trigger).map_err(anyhow::Error::msg))?;
    m.keys = result["listed"].as_u64().unwrap_or(0);
    eprintln!("list-bench: steady poll {:.2} s: {result}", m.wall_s);
    Ok(m)
}

/// The trigger's state object, decoded.
fn load_state(target: &Target, trigger: &str) -> anyhow::Result<State> {
    let key = format!(".owfeed/{USER}/{trigger}.state");
    let got = target.client()?.get_object(STATE_BUCKET, &key)?.with_context(|| format!("no state at {key}"))?;
    Ok(State::decode_unverified(&got.body)?)
}

/// Keys of the snapshot that a cut pass left to list (inside its checkpoint's ranges).
fn left_to_list(state: &State) -> usize {
    let inside = |key: &str| {
        state.resume.iter().any(|r| {
            r.start_after.as_deref().is_none_or(|a| key > a) && r.end_before.as_deref().is_none_or(|b| key < b)
        })
    };
    state.snapshot.iter().filter(|(k, _)| inside(k)).count()
}

/// Polls cut by a short time limit, with one key range and with four: the keys each kept as
/// listed (the snapshot's keys outside what its checkpoint left to list).
/// `page_delay_ms` > 0: RGW behind a proxy (`feed_tests::s3proxy`) that holds each LIST for
/// that long, as a remote store's page latency (AWS: 100 to 300 ms a page), so the listing is
/// bound by latency rather than by this machine's CPU.
fn cut_passes(args: &Args, target: &Target, w: &World, page_delay_ms: u64) -> anyhow::Result<()> {
    let trigger = format!("cut{page_delay_ms}");
    let trigger = trigger.as_str();
    let mut params = target.params();
    params["stateBucket"] = json!(STATE_BUCKET);
    let proxy = if page_delay_ms > 0 {
        let proxy = delaying_proxy(target, page_delay_ms)?;
        params["endpoint"] = json!(proxy.url());
        Some(proxy)
    } else {
        None
    };
    w.create_trigger(trigger, params).map_err(anyhow::Error::msg)?;
    let how = match page_delay_ms {
        0 => String::new(),
        d => format!(", each LIST held {d} ms by a proxy"),
    };
    println!(
        "\n| poll cut by a {} ms time limit, {} keys{how} | ranges | listed | kept as listed (advanced) | ranges left | LIST requests |",
        args.cut_limit_ms, args.objects
    );
    println!("|---|---:|---:|---:|---:|---:|");
    for round in 0..args.rounds {
        for parallelism in [1, 4] {
            w.feed("UPDATE", trigger, json!({ "parallelism": parallelism })).map_err(anyhow::Error::msg)?;
            // Start from a finished listing.
            w.set_poll_timeout(60_000);
            for _ in 0..10 {
                w.poll_once(trigger).map_err(anyhow::Error::msg)?;
                if load_state(target, trigger)?.resume.is_empty() {
                    break;
                }
            }
            w.set_poll_timeout(args.cut_limit_ms);
            let mark = target.log.mark();
            let result = w.poll_once(trigger).map_err(anyhow::Error::msg)?;
            let server = target.log.time_since(mark)?;
            let state = load_state(target, trigger)?;
            let advanced = state.snapshot.len() - left_to_list(&state);
            println!(
                "| round {} | {parallelism} | {} | {advanced} | {} | {} |",
                round + 1,
                result["listed"],
                state.resume.len(),
                server.requests
            );
            eprintln!("list-bench: cut poll with {parallelism} ranges: {result}");
        }
    }
    w.set_poll_timeout(60_000);
    w.delete_trigger(trigger).map_err(anyhow::Error::msg)?;
    drop(proxy);
    Ok(())
}

/// A proxy in front of RGW that holds each LIST (and probe) `delay_ms`, as a remote store's
/// page latency would (AWS: 100 to 300 ms a page).
fn delaying_proxy(target: &Target, delay_ms: u64) -> anyhow::Result<FaultProxy> {
    let proxy = FaultProxy::start(&target.endpoint)?;
    proxy.add(Rule {
        method: "GET",
        contains: "list-type=2",
        skip: 0,
        count: usize::MAX,
        fault: Fault::Delay(Duration::from_millis(delay_ms)),
    });
    Ok(proxy)
}

const BOTO3_SCRIPT: &str = r#"
import sys, boto3
endpoint, key, secret, region, bucket = sys.argv[1:6]
s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=key, aws_secret_access_key=secret, region_name=region)
n = 0
for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
    n += page.get("KeyCount", 0)
print(n)
"#;

fn boto3(target: &Target) -> anyhow::Result<Measured> {
    let site = feed_tests::tools::boto3_pythonpath()?;
    let mut cmd = Command::new(feed_tests::tools::python());
    cmd.args(["-c", BOTO3_SCRIPT, &target.endpoint, &target.access_key, &target.secret_key, REGION, &target.bucket]);
    cmd.env("PYTHONPATH", site).env_remove("AWS_CA_BUNDLE");
    let mark = target.log.mark();
    let (out, mut m) = run_measured(cmd)?;
    m.keys = out.trim().parse().unwrap_or(0);
    m.server = target.log.time_since(mark)?;
    eprintln!("list-bench: boto3 {:.2} s, {} keys", m.wall_s, m.keys);
    Ok(m)
}

fn rclone(target: &Target) -> anyhow::Result<Measured> {
    feed_tests::tools::ensure_rclone()?;
    let mut cmd = Command::new("rclone");
    cmd.args(["--config", "/dev/null", "lsf", "-R", "--fast-list", &format!("rgw:{}", target.bucket)]);
    cmd.env("RCLONE_CONFIG_RGW_TYPE", "s3").env("RCLONE_CONFIG_RGW_PROVIDER", "Ceph");
    cmd.env("RCLONE_CONFIG_RGW_ENDPOINT", &target.endpoint).env("RCLONE_CONFIG_RGW_REGION", REGION);
    cmd.env("RCLONE_CONFIG_RGW_ACCESS_KEY_ID", &target.access_key);
    cmd.env("RCLONE_CONFIG_RGW_SECRET_ACCESS_KEY", &target.secret_key);
    // A CA bundle in the environment makes rclone 1.60 refuse to start, even for http.
    cmd.env_remove("AWS_CA_BUNDLE");
    let mark = target.log.mark();
    let (out, mut m) = run_measured(cmd)?;
    m.keys = out.lines().filter(|l| !l.ends_with('/')).count() as u64;
    m.server = target.log.time_since(mark)?;
    eprintln!("list-bench: rclone {:.2} s, {} keys", m.wall_s, m.keys);
    Ok(m)
}

fn range(values: impl Iterator<Item = f64>, digits: usize) -> String {
    let v: Vec<f64> = values.collect();
    let (lo, hi) = (v.iter().copied().fold(f64::INFINITY, f64::min), v.iter().copied().fold(0.0, f64::max));
    if v.is_empty() {
        "–".to_string()
    } else if format!("{lo:.digits$}") == format!("{hi:.digits$}") {
        format!("{lo:.digits$}")
    } else {
        format!("{lo:.digits$}–{hi:.digits$}")
    }
}

fn print_table(objects: u64, rows: &[(String, Vec<Measured>)]) {
    println!(
        "\n| what lists the {objects} objects | wall, s | CPU, s | peak RSS, MiB | keys | LIST requests | RGW's own time: sum of latencies / busy span, s | RGW + OSD CPU, s | pages the client waited on ≥ {GAP_MS} ms (longest, ms) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for (name, runs) in rows {
        let gaps = runs
            .iter()
            .map(|m| match m.server.gaps {
                Some((n, max)) => format!("{n} ({max:.0})"),
                None => "parallel".to_string(),
            })
            .collect::<Vec<_>>()
            .join(", ");
        println!(
            "| {name} | {} | {} | {} | {} | {} | {} / {} | {} | {gaps} |",
            range(runs.iter().map(|m| m.wall_s), 2),
            range(runs.iter().map(|m| m.cpu_s), 2),
            range(runs.iter().map(|m| m.rss_kib as f64 / 1024.0), 0),
            range(runs.iter().map(|m| m.keys as f64), 0),
            range(runs.iter().map(|m| m.server.requests as f64), 0),
            range(runs.iter().map(|m| m.server.busy_s), 2),
            range(runs.iter().map(|m| m.server.span_s), 2),
            range(runs.iter().map(|m| m.server.cpu_s), 2),
        );
    }
}
