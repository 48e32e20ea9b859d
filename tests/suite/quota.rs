//! One namespace at OpenWhisk's default quotas (60 fires and 60 invocations a minute, 30
//! concurrent), with the alarms provider's real-time fire policy (retry after max(1 s, n² s) on
//! 429, disabled after 10 throttled retries: openwhisk-package-alarms provider/lib/utils.js):
//! hundreds of idle S3 triggers and dozens that see one change a minute each, for several
//! minutes, and nothing is disabled, lost or refused, every event arrives within two intervals,
//! and every READ is healthy.
//!
//! The goal is 1000 idle and 50 busy triggers (measured with `bench --namespace`, see
//! BENCHMARKS.md); this test keeps the part that meets the quotas (busy triggers against the
//! namespace's 50 fires a minute for feeds: 40 here) and fewer idle ones, which cost the quotas
//! nothing now (one tick polls them all) and only time on this machine. The buckets are on
//! s3s-fs, in the test process, and the triggers are made before the quotas are set: 290
//! CREATEs at 60 invocations a minute would take five minutes.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use feed_tests::s3sfs::S3sFs;
use feed_tests::world::{workspace_bin, World, SCHEDULER_TICK, USER};
use ow_emulator::{Config, InvocationLimits, Refusals};
use owfeed::openwhisk::QualifiedName;
use owfeed_s3::{Condition, S3Client, S3Config, SecretString};

const IDLE: usize = 250;
const BUSY: usize = 40;
/// Minutes with one change per busy trigger (then up to two more ticks deliver the last ones).
const MINUTES: usize = 2;
const KEY: (&str, &str) = ("AKIDQUOTA", "quota-test-secret");

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

#[test]
fn a_namespace_at_default_quotas_holds_hundreds_of_idle_and_dozens_of_busy_s3_triggers() {
    let fs = S3sFs::start(KEY.0, KEY.1);
    let mut config = S3Config::new(&fs.endpoint, "us-east-1", KEY.0, SecretString::new(KEY.1));
    config.list_url_encoding = false;
    let s3 = S3Client::new(config).expect("s3s-fs client");
    let emulator = Config { alarms_realtime: true, ..Config::with_namespaces(&[USER, "other"]) };
    let w = World::start_with(emulator, &workspace_bin("changes"), &workspace_bin("poll"));
    let name = |i: usize| if i < BUSY { format!("busy{i}") } else { format!("idle{i}") };
    let began = Instant::now();

    // The triggers, each on a bucket of its own holding one object.
    let make = |i: usize| {
        let bucket = format!("bucket-{i}");
        s3.create_bucket(&bucket).expect("create bucket");
        s3.put_object(&bucket, "first.txt", b"1".to_vec(), Condition::None).expect("put");
        let params = json!({
            "endpoint": fs.endpoint, "bucket": bucket, "accessKeyId": KEY.0, "secretAccessKey": KEY.1,
            "urlEncoding": false,
        });
        w.create_trigger(&name(i), params).unwrap_or_else(|e| panic!("CREATE {}: {e}", name(i)));
    };
    std::thread::scope(|scope| {
        for part in 0..4 {
            let make = &make;
            scope.spawn(move || (part..IDLE + BUSY).step_by(4).for_each(make));
        }
    });
    // One recording action; a rule from each busy trigger to it.
    w.record_events(&name(0), Path::new(env!("CARGO_BIN_EXE_echo-action")));
    let recorder = QualifiedName::new(USER, None, "recorder");
    for i in 1..BUSY {
        let rule = QualifiedName::new(USER, None, &format!("{}-recorder", name(i)));
        w.user.put_rule(&rule, &QualifiedName::new(USER, None, &name(i)), &recorder, true).expect("rule");
    }
    let made = began.elapsed();

    // OpenWhisk's defaults from here on (apache/openwhisk ansible/group_vars/all).
    w.emu.set_fires_per_minute(Some(60));
    w.emu.set_invocation_limits(InvocationLimits { per_minute: Some(60), concurrent: Some(30) });

    // One new object per busy trigger and minute, spread over the minute.
    let mut written: BTreeMap<String, u64> = BTreeMap::new();
    let start = now_ms();
    for minute in 0..MINUTES as u64 {
        for i in 0..BUSY {
            let at = start + minute * 60_000 + (i as u64 * 60_000 / BUSY as u64);
            std::thread::sleep(Duration::from_millis(at.saturating_sub(now_ms())));
            let key = format!("m{minute}-{i}.txt");
            s3.put_object(&format!("bucket-{i}"), &key, key.as_bytes().to_vec(), Condition::None).expect("put");
            written.insert(format!("{}/{key}", name(i)), now_ms());
        }
    }
    // Two more ticks at most deliver the last minute's changes.
    let fired = |w: &World| -> BTreeMap<String, Vec<u64>> {
        let mut out: BTreeMap<String, Vec<u64>> = BTreeMap::new();
        for a in w.emu.activations(USER) {
            let trigger = a["name"].as_str().unwrap_or_default();
            if trigger.starts_with("busy") {
                let key = a["response"]["result"]["subject"].as_str().unwrap_or("?");
                out.entry(format!("{trigger}/{key}")).or_default().push(a["start"].as_u64().unwrap_or(0));
            }
        }
        out
    };
    let deadline = Instant::now() + Duration::from_secs(150);
    while written.keys().any(|k| !fired(&w).contains_key(k)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_secs(2));
    }
    assert!(w.emu.wait_idle(Duration::from_secs(90)));

    // Nothing disabled, refused or lost; every event within two intervals.
    assert_eq!(w.emu.alarms_of(USER), [format!("/{USER}/{SCHEDULER_TICK}")], "the scheduler's alarm is active");
    assert_eq!(w.emu.refusals(USER), Refusals::default(), "no fire or invocation refused");
    let got = fired(&w);
    let lost: Vec<&String> = written.keys().filter(|k| !got.contains_key(*k)).collect();
    assert!(lost.is_empty(), "lost: {lost:?}");
    let twice: Vec<(&String, usize)> = got.iter().filter(|(_, t)| t.len() > 1).map(|(k, t)| (k, t.len())).collect();
    let mut delays: Vec<u64> = written.iter().map(|(k, at)| got[k][0].saturating_sub(*at)).collect();
    delays.sort();
    let p = |q: f64| delays[((q * delays.len() as f64).ceil() as usize).clamp(1, delays.len()) - 1];
    assert!(p(1.0) <= 120_000, "an event waited more than two intervals: {delays:?}");
    let rule_failures = w
        .emu
        .activations(USER)
        .iter()
        .filter(|a| a["name"].as_str().is_some_and(|n| n.starts_with("busy")))
        .flat_map(|a| a["logs"].as_array().cloned().unwrap_or_default())
        .filter(|l| l.as_str().is_some_and(|l| l.contains("\"success\":false")))
        .count();
    assert_eq!(rule_failures, 0, "a rule invocation was refused after its fire was accepted");
    let ticks: Vec<Value> = w.ticks().into_iter().filter(|t| t["status"] == "tick").collect();
    let polls: Vec<u64> = ticks.iter().filter_map(|t| t["polled"].as_u64()).collect();
    eprintln!(
        "quota: {} idle + {BUSY} busy S3 triggers (made in {:.0} s), {} changes over {MINUTES} minutes: {} ticks \
         polling {:?} triggers, 0 alarms disabled, 0 refused, 0 lost, {} fired twice; delay p50 {:.1} s, p90 {:.1} s, \
         max {:.1} s",
        IDLE,
        made.as_secs_f64(),
        written.len(),
        ticks.len(),
        polls,
        twice.len(),
        p(0.5) as f64 / 1000.0,
        p(0.9) as f64 / 1000.0,
        p(1.0) as f64 / 1000.0,
    );
    // Every busy trigger's READ and some idle ones' are healthy. Each READ is an invocation of
    // the feed action: 43 of them would pass the minute's quota, so it is lifted for them.
    w.emu.set_invocation_limits(InvocationLimits::default());
    for t in (0..BUSY).chain([BUSY, BUSY + IDLE / 2, BUSY + IDLE - 1]) {
        let read = w.feed("READ", &name(t), json!({})).expect("READ");
        let s = &read["status"];
        assert_eq!((s["active"].clone(), s["stalled"].clone()), (json!(true), json!(false)), "{}: {read}", name(t));
        assert!(s.get("problem").is_none(), "{}: {read}", name(t));
        assert_eq!(s["eventsPending"], 0, "{}: {read}", name(t));
    }
}
