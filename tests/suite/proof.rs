//! "Prove it": scale and recovery properties of the poller, run through the emulator with the
//! real actionloop binaries: a listing cut by the activation's deadline resumes without false
//! deletes or duplicate ids; a deleted or damaged state re-baselines quietly and READ says why;
//! a throttled fire endpoint loses nothing; no secret reaches any activation record; and how
//! many S3 requests one poll makes. Timing is never asserted here (see `bench` for numbers).

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

/// A world whose feed and poll actions serve the `generated` source.
fn gen_world() -> World {
    let bin = Path::new(env!("CARGO_BIN_EXE_gen-action"));
    World::start(bin, bin)
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
    // 4 s activations keep 0.8 s for committing and firing; 100 pages × 60 ms cannot fit.
    set_poll_timeout(&w, Path::new(env!("CARGO_BIN_EXE_gen-action")), 4000);
    let state_dir = w.dir.path().join("state");
    let base = GenSpec::base(10_000, 7);
    let created = w.create_trigger("t", json!({"entries": 10_000, "seed": 7, "pageSize": 100, "stateDir": state_dir}));
    assert_eq!(created.expect("CREATE")["status"], "created");
    w.record_events("t", echo());
    let up = w.feed("UPDATE", "t", json!({"mutate": 0.004, "pageDelayMs": 60})).expect("UPDATE");
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
    let events = w.events();
    assert_ids_unique(&events);
    assert_eq!(seen(&w), want, "events must be exactly the mutations");
    for p in w.poll_results() {
        assert!(p.get("error").is_none(), "{p}");
    }
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
fn a_deleted_or_corrupt_state_rebaselines_without_events_and_read_says_why() {
    let w = gen_world();
    let state_dir = w.dir.path().join("state");
    let state_file = state_dir.join(format!("{USER}%2Ft.state"));
    let base = GenSpec::base(3_000, 11);
    w.create_trigger("t", json!({"entries": 3_000, "seed": 11, "stateDir": state_dir})).expect("CREATE");
    w.record_events("t", echo());
    let mut round = 0;
    for damage in [Damage::Delete, Damage::Garbage, Damage::Truncate, Damage::FlipByte] {
        round += 1;
        w.feed("UPDATE", "t", json!({"mutate": 0.02, "round": round})).expect("UPDATE");
        match damage {
            Damage::Delete => std::fs::remove_file(&state_file).unwrap(),
            Damage::Garbage => std::fs::write(&state_file, b"\x00\xffthis is not a state object{}").unwrap(),
            Damage::Truncate => {
                let bytes = std::fs::read(&state_file).unwrap();
                std::fs::write(&state_file, &bytes[..bytes.len() / 2]).unwrap();
            }
            Damage::FlipByte => {
                let mut bytes = std::fs::read(&state_file).unwrap();
                let at = bytes.len() * 2 / 3;
                bytes[at] ^= 0x5a;
                std::fs::write(&state_file, &bytes).unwrap();
            }
        }
        let before = read(&w)["status"].clone();
        let why = before["stateError"].as_str().unwrap_or_else(|| panic!("{damage:?}: READ: {before}"));
        assert!(why.contains("re-baselines"), "{damage:?}: {why}");
        w.poll();
        let polls = w.poll_results();
        let last = polls.last().unwrap();
        assert_eq!(last["status"], "rebaselined", "{damage:?}: {last}");
        assert!(last.get("error").is_none(), "{damage:?}: {last}");
        assert_eq!(seen(&w), Vec::<(String, String)>::new(), "{damage:?}: a re-baseline must not fire");
        let after = read(&w)["status"].clone();
        assert_eq!(after["lastOutcome"], "rebaselined", "{damage:?}: {after}");
        let reason = after["lastError"].as_str().unwrap_or_default();
        let expected = if matches!(damage, Damage::Delete) { "missing" } else { "corrupt" };
        assert!(reason.contains(expected) && reason.contains("re-baselined"), "{damage:?}: {reason}");
        assert_eq!(after["objectsTracked"], base.mutated(round, 0.02).collect().len(), "{damage:?}: {after}");
        assert!(after.get("stateError").is_none(), "{damage:?}: {after}");
    }
    // After the last recovery the feed reports changes again, exactly.
    w.feed("UPDATE", "t", json!({"mutate": 0.02, "round": round + 1})).expect("UPDATE");
    w.poll();
    let want = expected_changes(&base.mutated(round, 0.02), &base.mutated(round + 1, 0.02));
    assert_eq!(seen(&w), want);
    assert_ids_unique(&w.events());
    for a in w.emu.activations(USER) {
        assert_eq!(a["response"]["success"], true, "no activation may fail: {a}");
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
    set_poll_timeout(&w, poll_bin, 4000);
    let listing: PathBuf = w.dir.path().join("listing.json");
    write_listing(&listing, &[("a", "1"), ("b", "1")]);
    let params = json!({"listing": listing, "stateDir": w.dir.path().join("state"), "pageSize": 3});
    w.create_trigger("t", params).expect("CREATE");
    w.record_events("t", echo());
    // Polls are invoked directly: the alarm's own fire would count against the fire limit.
    let poll = QualifiedName::new(USER, Some("t.owfeed"), "poll");
    let invoke = || w.user.invoke(&poll, &json!({}), true).expect("poll result");

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
    let throttled = w.events().len();
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
    let events = w.events();
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
