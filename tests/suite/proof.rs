//! "Prove it": scale and recovery properties of the poller, run through the emulator with the
//! real actionloop binaries: a listing cut by the activation's deadline resumes without false
//! deletes or duplicate ids; a deleted or damaged state is replaced by the poller's own copy (or
//! re-baselined) and READ says why until acknowledged; a throttled fire endpoint loses nothing;
//! no secret reaches any activation record; and how many S3 requests one poll makes. Timing is
//! never asserted here (see `bench` for numbers).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use feed_tests::gen_source::{expected_changes, GenSpec};
use feed_tests::moto::Moto;
use feed_tests::s3proxy::FaultProxy;
use feed_tests::world::{action_body, workspace_bin, World, PACKAGE, USER};
use owfeed::openwhisk::QualifiedName;
use owfeed_s3::Condition;

fn echo() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_echo-action"))
}

/// A world whose feed and poll actions serve the `generated` source. The emulator does not
/// throttle and these tests are about recovery and resumption, not pacing: the namespace's
/// budgets are lifted, as a deployer may (`wsk package update owfeed -p …`).
fn gen_world() -> World {
    let bin = Path::new(env!("CARGO_BIN_EXE_gen-action"));
    let w = World::start(bin, bin);
    w.set_namespace_budgets(json!({
        "namespaceFiresPerMinute": 100_000, "namespaceInvocationsPerMinute": 1_000_000, "namespaceFireBurst": 10_000
    }));
    w
}

/// Re-deploys the shared `poll` action with a `timeout_ms` time limit.
fn set_poll_timeout(w: &World, binary: &Path, timeout_ms: u64) {
    let mut body = action_body(binary, "rust:1.34", json!([{"key": "provide-api-key", "value": true}])).unwrap();
    body["limits"]["timeout"] = json!(timeout_ms);
    let poll = QualifiedName::new(ow_emulator::SYSTEM_NAMESPACE, Some(PACKAGE), "poll");
    w.system.put_action(&poll, &body, true).expect("re-deploy poll");
}

fn read(w: &World) -> Value {
    w.feed("READ", "t", json!({})).expect("READ")
}

/// (kind, subject) of every event received, sorted.
fn seen(w: &World) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = w.events().iter().map(kind_and_subject).collect();
    out.sort();
    out
}

fn kind_and_subject(e: &Value) -> (String, String) {
    let kind = e["type"].as_str().unwrap_or("?").rsplit('.').next().unwrap_or("?").to_string();
    (kind, e["subject"].as_str().unwrap_or("?").to_string())
}

fn assert_ids_unique(events: &[Value]) {
    let ids: BTreeSet<&str> = events.iter().map(|e| e["id"].as_str().expect("event id")).collect();
    assert_eq!(ids.len(), events.len(), "duplicate event ids");
}

#[test]
fn a_listing_cut_by_the_deadline_resumes_without_false_deletes_or_duplicate_ids() {
    let w = gen_world();
    // 8 s activations keep 1.6 s for committing and firing; 100 pages × 120 ms cannot fit.
    set_poll_timeout(&w, Path::new(env!("CARGO_BIN_EXE_gen-action")), 8000);
    let state_dir = w.dir.path().join("state");
    let base = GenSpec::base(10_000, 7);
    let created = w.create_trigger("t", json!({"entries": 10_000, "seed": 7, "pageSize": 100, "stateDir": state_dir}));
    assert_eq!(created.expect("CREATE")["status"], "created");
    w.record_events("t", echo());
    let up = w.feed("UPDATE", "t", json!({"mutate": 0.004, "pageDelayMs": 120})).expect("UPDATE");
    assert_eq!(up["status"], "updated", "{up}");
    let mutated = base.mutated(1, 0.004);
    let want = expected_changes(&base, &mutated);
    assert!(want.len() > 60, "the mutation should change enough keys: {}", want.len());

    let mut cut = 0;
    let mut done = false;
    for _ in 0..20 {
        w.poll();
        let status = read(&w)["status"].clone();
        if status["listingInProgress"] == true {
            cut += 1;
            assert_eq!(status["lastOutcome"], "partial", "{status}");
        }
        if status["listingInProgress"] == false && status["eventsPending"] == 0 {
            assert_eq!(status["objectsTracked"], mutated.collect().len(), "{status}");
            done = true;
            break;
        }
    }
    assert!(done, "the listing never finished: {:?}", w.poll_results());
    assert!(cut >= 1, "the listing was never cut by the deadline: {:?}", w.poll_results());
    // The budget stops each poll in time to commit; only a machine too loaded to commit within
    // the margin gets a poll killed at its limit, and the contract for a killed poll is
    // at-least-once: what it fired may be fired again, with the same id. Any other poll error
    // fails the test, and without a killed poll so does any duplicate id.
    let mut killed = 0;
    for a in w.emu.activations(USER).iter().filter(|a| a["name"] == "poll") {
        match a["response"]["result"]["error"].as_str() {
            None => {}
            Some(e) if e.contains("exceeded its time limits") => killed += 1,
            Some(_) => panic!("a poll failed: {a}"),
        }
    }
    let events = w.events();
    let mut by_id: BTreeMap<&str, &Value> = BTreeMap::new();
    for e in &events {
        let first = by_id.entry(e["id"].as_str().expect("event id")).or_insert(e);
        assert_eq!(*first, e, "one id, two different events");
    }
    if killed == 0 {
        assert_ids_unique(&events);
    }
    let mut once: Vec<(String, String)> = by_id.values().map(|e| kind_and_subject(e)).collect();
    once.sort();
    assert_eq!(once, want, "events must be exactly the mutations ({killed} polls killed at their limit)");
}

/// How the test damages the stored state.
#[derive(Debug)]
enum Damage {
    Delete,
    Garbage,
    Truncate,
    FlipByte,
}

#[test]
fn a_deleted_or_damaged_state_is_replaced_by_the_pollers_copy_and_read_keeps_saying_why() {
    let w = gen_world();
    let state_dir = w.dir.path().join("state");
    let state_file = state_dir.join(format!("{USER}%2Ft.state"));
    let base = GenSpec::base(3_000, 11);
    // ~280 single-event fires in one poll: more than the default pace (30 a minute) allows;
    // the emulator does not throttle, and this test is about recovery, not pacing.
    let params = json!({"entries": 3_000, "seed": 11, "stateDir": state_dir, "maxFiresPerMinute": 10_000});
    w.create_trigger("t", params).expect("CREATE");
    w.record_events("t", echo());
    w.poll();
    let mut round = 0;
    for damage in [Damage::Delete, Damage::Garbage, Damage::Truncate, Damage::FlipByte] {
        round += 1;
        // UPDATE also acknowledges what READ reported about the previous round.
        w.feed("UPDATE", "t", json!({"mutate": 0.02, "round": round})).expect("UPDATE");
        assert!(read(&w)["status"].get("rebaselined").is_none(), "{damage:?}: acknowledged by UPDATE");
        damage_state(&state_file, &damage);
        let before = read(&w)["status"].clone();
        let why = before["stateError"].as_str().unwrap_or_else(|| panic!("{damage:?}: READ: {before}"));
        assert!(why.contains("replaces it"), "{damage:?}: {why}");
        let seen_before = w.events().len();
        w.poll();
        let polls = w.poll_results();
        let last = polls.last().unwrap();
        assert_eq!(last["status"], "rebaselined", "{damage:?}: {last}");
        assert!(last.get("error").is_none(), "{damage:?}: {last}");
        // The warm poller still holds the last state it authenticated: the changes made since
        // fire, exactly, whatever happened to the stored object.
        let fired: Vec<(String, String)> = {
            let mut f: Vec<_> = w.events()[seen_before..].iter().map(kind_and_subject).collect();
            f.sort();
            f
        };
        let want = expected_changes(&base.mutated(round - 1, 0.02), &base.mutated(round, 0.02));
        assert_eq!(fired, want, "{damage:?}: the changes around the damage fire");
        let after = read(&w)["status"].clone();
        assert_eq!(after["lastOutcome"], "rebaselined", "{damage:?}: {after}");
        let rebaselined = &after["rebaselined"];
        let cause = if matches!(damage, Damage::Delete) { "missing" } else { "rejected" };
        assert_eq!(rebaselined["cause"], cause, "{damage:?}: {after}");
        let reason = rebaselined["reason"].as_str().unwrap_or_default();
        assert!(reason.contains("replaced by the last authenticated state this poller held"), "{damage:?}: {reason}");
        assert_eq!(after["objectsTracked"], base.mutated(round, 0.02).collect().len(), "{damage:?}: {after}");
        assert!(after.get("stateError").is_none(), "{damage:?}: {after}");
        // Lasting: a quiet poll later READ still says when and why.
        w.poll();
        let later = read(&w)["status"].clone();
        assert_eq!(later["lastOutcome"], "ok", "{damage:?}: {later}");
        assert_eq!(later["rebaselined"], after["rebaselined"], "{damage:?}: {later}");
    }
    // A poller without a copy (its process is new: the action was re-deployed) can only
    // re-baseline silently; READ says so, and what was not reported.
    set_poll_timeout(&w, Path::new(env!("CARGO_BIN_EXE_gen-action")), 60_000);
    round += 1;
    w.feed("UPDATE", "t", json!({"mutate": 0.02, "round": round})).expect("UPDATE");
    damage_state(&state_file, &Damage::Garbage);
    let seen_before = w.events().len();
    w.poll();
    assert_eq!(w.events().len(), seen_before, "a blind re-baseline fires nothing");
    let status = read(&w)["status"].clone();
    assert_eq!(status["rebaselined"]["cause"], "rejected", "{status}");
    let reason = status["rebaselined"]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("changes since the last good poll were not reported"), "{reason}");
    assert_eq!(status["rebaselined"]["acknowledge"], "wsk trigger update t", "{status}");
    // After the recovery the feed reports changes again, exactly; the UPDATE acknowledged it.
    w.feed("UPDATE", "t", json!({"mutate": 0.02, "round": round + 1})).expect("UPDATE");
    let seen_before = w.events().len();
    w.poll();
    let want = expected_changes(&base.mutated(round, 0.02), &base.mutated(round + 1, 0.02));
    let mut fired: Vec<(String, String)> = w.events()[seen_before..].iter().map(kind_and_subject).collect();
    fired.sort();
    assert_eq!(fired, want);
    assert!(read(&w)["status"].get("rebaselined").is_none());
    assert_ids_unique(&w.events());
    for a in w.emu.activations(USER).iter().filter(|a| a["name"] == "poll") {
        assert_eq!(a["response"]["success"], true, "no poll may fail: {a}");
    }
}

fn damage_state(state_file: &Path, damage: &Damage) {
    match damage {
        Damage::Delete => std::fs::remove_file(state_file).unwrap(),
        Damage::Garbage => std::fs::write(state_file, b"\x00\xffthis is not a state object{}").unwrap(),
        Damage::Truncate => {
            let bytes = std::fs::read(state_file).unwrap();
            std::fs::write(state_file, &bytes[..bytes.len() / 2]).unwrap();
        }
        Damage::FlipByte => {
            let mut bytes = std::fs::read(state_file).unwrap();
            let at = bytes.len() * 2 / 3;
            bytes[at] ^= 0x5a;
            std::fs::write(state_file, &bytes).unwrap();
        }
    }
}

fn write_listing(path: &Path, entries: &[(&str, &str)]) {
    let items: Vec<Value> = entries.iter().map(|(k, v)| json!({"key": k, "version": v})).collect();
    std::fs::write(path, serde_json::to_vec(&items).unwrap()).unwrap();
}

#[test]
fn a_throttled_fire_endpoint_loses_nothing_and_keeps_order_per_key() {
    let feed = Path::new(env!("CARGO_BIN_EXE_test-feed"));
    let poll_bin = Path::new(env!("CARGO_BIN_EXE_test-poll"));
    let w = World::start(feed, poll_bin);
    // Short activations: a throttled poll gives up after a few seconds of backoff.
    set_poll_timeout(&w, poll_bin, 6000);
    let listing: PathBuf = w.dir.path().join("listing.json");
    write_listing(&listing, &[("a", "1"), ("b", "1")]);
    let params = json!({"listing": listing, "stateDir": w.dir.path().join("state"), "pageSize": 3});
    w.create_trigger("t", params).expect("CREATE");
    w.record_events("t", echo());
    // Polls are invoked directly: the alarm's own fire would count against the fire limit.
    let poll = QualifiedName::new(USER, Some("t.owfeed"), "poll");
    let invoke = || w.user.invoke(&poll, &json!({}), true).expect("poll result");

    // The fire limit counts per calendar minute: the throttled polls below take up to about
    // 20 s, and the first one must not straddle two minutes.
    if feed_tests::world::left_in_minute() < 25_000 {
        feed_tests::world::sleep_into_next_minute(500);
    }
    w.emu.set_fires_per_minute(Some(2));
    // 6 changes: a updated, b deleted, c d e f created.
    write_listing(&listing, &[("a", "2"), ("c", "1"), ("d", "1"), ("e", "1"), ("f", "1")]);
    let first = invoke();
    assert_eq!(first["changes"], 6, "{first}");
    assert!(first["pending"].as_u64().unwrap() >= 4, "the fire limit must hold events back: {first}");
    // 4 more while throttled: a and c updated, e deleted, g created.
    write_listing(&listing, &[("a", "3"), ("c", "2"), ("d", "1"), ("f", "1"), ("g", "1")]);
    let mut results = vec![first];
    for _ in 0..2 {
        results.push(invoke());
    }
    assert!(w.emu.wait_idle(std::time::Duration::from_secs(60)));
    let throttled = w.fired("t").len();
    assert!(throttled < 10, "the limit let everything through: {results:?}");

    w.emu.set_fires_per_minute(None);
    for _ in 0..3 {
        results.push(invoke());
        let status = read(&w)["status"].clone();
        if status["eventsPending"] == 0 && status["listingInProgress"] == false && status["lastOutcome"] == "ok" {
            break;
        }
    }
    assert!(w.emu.wait_idle(std::time::Duration::from_secs(60)));
    // In the order the fires were accepted (the recorder's invocations run at once and may
    // finish in another order).
    let events = w.fired("t");
    // Duplicates (a fire repeated after a lost commit) are allowed only as exact repeats.
    let mut by_id: BTreeMap<&str, &Value> = BTreeMap::new();
    let mut firsts: Vec<&Value> = Vec::new();
    for e in &events {
        let id = e["id"].as_str().expect("event id");
        match by_id.get(id) {
            Some(earlier) => assert_eq!(earlier["data"], e["data"], "id {id} names two changes"),
            None => {
                by_id.insert(id, e);
                firsts.push(e);
            }
        }
    }
    let mut changes: Vec<(String, String)> = firsts.iter().map(|e| kind_and_subject(e)).collect();
    changes.sort();
    let want: Vec<(String, String)> = [
        ("created", "c"),
        ("created", "d"),
        ("created", "e"),
        ("created", "f"),
        ("created", "g"),
        ("deleted", "b"),
        ("deleted", "e"),
        ("updated", "a"),
        ("updated", "a"),
        ("updated", "c"),
    ]
    .iter()
    .map(|(k, s)| (k.to_string(), s.to_string()))
    .collect();
    assert_eq!(changes, want, "nothing lost, nothing invented: {results:?}");
    // Order per key: first arrivals follow the order in which the changes happened.
    let history = |key: &str| -> Vec<(String, String)> {
        firsts.iter().filter(|e| e["subject"] == key).map(|e| (kind_and_subject(e).0, time_of(e))).collect()
    };
    let kinds = |key: &str| -> Vec<String> { history(key).into_iter().map(|(k, _)| k).collect() };
    assert_eq!(kinds("c"), ["created", "updated"]);
    assert_eq!(kinds("e"), ["created", "deleted"]);
    assert_eq!(kinds("a"), ["updated", "updated"]);
    for key in ["a", "c", "e"] {
        let times: Vec<String> = history(key).into_iter().map(|(_, t)| t).collect();
        assert!(times.windows(2).all(|w| w[0] <= w[1]), "{key}: detected out of order: {times:?}");
    }
}

/// The event's `time` (detection time for this source; RFC 3339, same format throughout).
fn time_of(e: &Value) -> String {
    e["time"].as_str().unwrap_or_default().to_string()
}

/// A world with the real S3 feed binaries and a fresh bucket on the shared moto.
fn s3_world() -> (World, &'static Moto, String) {
    let moto = Moto::shared().expect("moto server");
    let bucket = Moto::unique_bucket("proof");
    moto.create_bucket(&bucket).expect("create bucket");
    let w = World::start(&workspace_bin("changes"), &workspace_bin("poll"));
    (w, moto, bucket)
}

/// Temporary credentials (access key, secret, session token) for an allow-all role, from moto's
/// STS AssumeRole: moto rejects session tokens it did not issue. The calls are signed by boto3
/// (moto's own dependency), since our S3 signer signs for the `s3` service only.
fn temporary_credentials(moto: &Moto) -> (String, String, String) {
    const SCRIPT: &str = r#"
import boto3, json, os, uuid
kw = dict(endpoint_url=os.environ["E"], region_name="us-east-1",
          aws_access_key_id=os.environ["A"], aws_secret_access_key=os.environ["S"])
allow = json.dumps({"Version": "2012-10-17",
                    "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})
trust = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}]})
name = "proof-" + uuid.uuid4().hex[:8]
iam = boto3.client("iam", **kw)
arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust)["Role"]["Arn"]
iam.put_role_policy(RoleName=name, PolicyName="all", PolicyDocument=allow)
c = boto3.client("sts", **kw).assume_role(RoleArn=arn, RoleSessionName="proof")["Credentials"]
print(json.dumps([c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"]]))
"#;
    let out = std::process::Command::new("python3")
        .args(["-c", SCRIPT])
        .env("E", moto.endpoint())
        .env("A", moto.access_key_id())
        .env("S", moto.secret_access_key())
        .output()
        .expect("run python3 with boto3");
    assert!(out.status.success(), "assume role: {}", String::from_utf8_lossy(&out.stderr));
    let creds: (String, String, String) = serde_json::from_slice(&out.stdout).expect("credentials JSON");
    creds
}

#[test]
fn no_secret_reaches_any_activation_record_log_or_result() {
    let (w, moto, bucket) = s3_world();
    let (access_key, secret, token) = temporary_credentials(moto);
    const WRONG: &str = "wrong-secret-that-must-not-leak-4711";
    let key_part = w.user_key.split_once(':').expect("uuid:key").1.to_string();
    let params = |secret_key: &str| {
        json!({
            "endpoint": moto.endpoint(),
            "bucket": bucket,
            "accessKeyId": access_key,
            "secretAccessKey": secret_key,
            "sessionToken": token,
        })
    };
    let put = |key: &str, body: &str| moto.put(&bucket, key, body.as_bytes()).expect("put");
    let mut answers: Vec<String> = Vec::new();
    put("a.txt", "1");
    let created = w.create_trigger("t", params(&secret)).expect("CREATE with a session token");
    answers.push(created.to_string());
    w.record_events("t", echo());
    put("b.txt", "2");
    put("a.txt", "changed");
    w.poll();
    moto.delete(&bucket, "b.txt").expect("delete");
    w.poll();
    answers.push(read(&w).to_string());
    answers.push(w.feed("UPDATE", "t", json!({"events": "created,deleted"})).expect("UPDATE").to_string());
    put("c.txt", "3");
    w.poll();
    let failed = w.create_trigger("t2", params(WRONG)).expect_err("CREATE with a wrong secret must fail");
    assert!(failed.contains("secretAccessKey"), "{failed}");
    answers.push(failed);
    // The values scanned for are the ones in use: the config binding (user's namespace) holds them.
    let config = w.user.get_package(&QualifiedName::new(USER, None, "t.owfeed")).expect("config binding");
    assert!(config.to_string().contains(&secret) && config.to_string().contains(&token), "{config}");
    let state_key = owfeed::openwhisk::from_key_values(&config["parameters"])["stateKey"]
        .as_str()
        .expect("the config binding holds the generated stateKey")
        .to_string();
    assert_eq!(state_key.len(), 64, "32 random bytes, hex");
    answers.push(w.feed("PAUSE", "t", json!({})).expect("PAUSE").to_string());
    answers.push(w.feed("DELETE", "t", json!({})).expect("DELETE").to_string());
    assert!(w.emu.wait_idle(std::time::Duration::from_secs(60)));
    // The scenario really ran: events arrived and the polls logged something.
    assert_eq!(
        seen(&w),
        [("created", "b.txt"), ("created", "c.txt"), ("deleted", "b.txt"), ("updated", "a.txt")]
            .map(|(k, s)| (k.to_string(), s.to_string()))
    );

    let mut records = Vec::new();
    for ns in [USER, "other", ow_emulator::SYSTEM_NAMESPACE] {
        records.extend(w.emu.activations(ns));
    }
    let polls = records.iter().filter(|a| a["name"] == "poll").count();
    assert!(polls >= 3 && records.len() > 10, "too few activation records to scan: {}", records.len());
    assert!(records.iter().any(|a| a["logs"].as_array().is_some_and(|l| !l.is_empty())), "no logs were scanned");
    let texts: Vec<String> = records.iter().map(Value::to_string).chain(answers).collect();
    let secrets = [
        ("secretAccessKey", secret.as_str()),
        ("authKey", &key_part),
        ("sessionToken", &token),
        ("wrong secretAccessKey", WRONG),
        ("moto's IAM secret", moto.secret_access_key()),
        ("stateKey", &state_key),
    ];
    for (what, value) in secrets {
        for text in &texts {
            assert!(!text.contains(value), "the {what} leaked into: {text}");
        }
    }
}

#[test]
fn s3_requests_per_poll_on_2500_objects() {
    let moto = Moto::shared().expect("moto server");
    let proxy = FaultProxy::start(moto.endpoint()).expect("proxy");
    let bucket = Moto::unique_bucket("count");
    moto.create_bucket(&bucket).expect("create bucket");
    let client = moto.client();
    std::thread::scope(|scope| {
        for t in 0..4 {
            let (client, bucket) = (&client, &bucket);
            scope.spawn(move || {
                for i in (t..2500).step_by(4) {
                    let key = format!("data/{i:05}.json");
                    client.put_object(bucket, &key, b"x".to_vec(), Condition::None).expect("put");
                }
            });
        }
    });
    let w = World::start(&workspace_bin("changes"), &workspace_bin("poll"));
    let params = json!({
        "endpoint": proxy.url(),
        "bucket": bucket,
        "accessKeyId": moto.access_key_id(),
        "secretAccessKey": moto.secret_access_key(),
    });
    w.create_trigger("t", params).expect("CREATE");
    w.record_events("t", echo());
    let lease = format!("/{bucket}/.owfeed/{USER}/t.lease");
    let state = format!("/{bucket}/.owfeed/{USER}/t.state");
    let list = format!("GET /{bucket}?");
    let kinds = [
        ("lease GET", format!("GET {lease}")),
        ("lease PUT", format!("PUT {lease}")),
        ("state GET", format!("GET {state}")),
        ("state PUT", format!("PUT {state}")),
        ("LIST", list),
        ("HEAD", "HEAD /".to_string()),
        ("all", String::new()),
    ];
    let counts = || -> Vec<usize> { kinds.iter().map(|(_, needle)| proxy.count(needle)).collect() };
    let mut report = Vec::new();
    for (label, change) in [("no change", false), ("3 changes", true)] {
        if change {
            client.put_object(&bucket, "data/new.json", b"y".to_vec(), Condition::None).expect("put");
            client.put_object(&bucket, "data/00007.json", b"zz".to_vec(), Condition::None).expect("put");
            client.delete_object(&bucket, "data/01234.json").expect("delete");
        }
        let before = counts();
        w.poll();
        let after = counts();
        let delta: Vec<usize> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
        let line: Vec<String> = kinds.iter().zip(&delta).map(|((k, _), n)| format!("{k}={n}")).collect();
        eprintln!("S3 requests per poll, 2500 objects, {label}: {}", line.join(", "));
        report.push(delta);
    }
    assert_eq!(seen(&w).len(), 3, "{:?}", seen(&w));
    // [lease GET, lease PUT, state GET, state PUT, LIST, HEAD, all]
    assert_eq!(report[0], [1, 2, 1, 0, 3, 0, 7], "an unchanged bucket: lease, state read, 3 list pages, release");
    assert_eq!(report[1], [1, 2, 1, 2, 3, 1, 10], "changes: the delete confirmed, one commit before firing, one after");
}

#[test]
fn a_silent_rebaseline_is_not_cut_by_max_changes_per_poll() {
    // `maxChangesPerPoll` bounds the events one pass holds; a silent baseline holds none, so
    // it must not checkpoint every 100 keys (a 1M-object re-baseline would take 10,000 polls).
    let w = gen_world();
    let state_dir = w.dir.path().join("state");
    let params = json!({"entries": 3_000, "seed": 5, "stateDir": state_dir, "maxChangesPerPoll": 100});
    w.create_trigger("t", params).expect("CREATE");
    w.record_events("t", echo());
    // A new prefix changes what the snapshot covers: the next poll re-baselines quietly.
    w.feed("UPDATE", "t", json!({"prefix": "logs/"})).expect("UPDATE");
    w.poll();
    let status = read(&w)["status"].clone();
    assert_eq!(seen(&w), Vec::<(String, String)>::new(), "a re-baseline must not fire");
    assert_eq!(status["listingInProgress"], false, "the re-baseline stopped early: {status}");
    assert_eq!(status["baselined"], true, "{status}");
    assert_eq!(status["objectsTracked"], 3_000, "{status}");
}
