//! A log source end to end through the emulator, with the test-only `filelog` source (records
//! are lines of a file): CREATE keeps the cursor `since` names, polls fire each new record once
//! with ids from the record, READ shows the cursor, and a cursor the source rejects stops the
//! feed visibly until an UPDATE allows a re-baseline from now. The same core serves CouchDB
//! `_changes`; its tests against a real server are in its own module.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use feed_tests::file_log_source::append;
use feed_tests::world::World;

fn world() -> World {
    let bin = Path::new(env!("CARGO_BIN_EXE_log-action"));
    World::start(bin, bin)
}

fn log_path(w: &World) -> PathBuf {
    w.dir.path().join("log.jsonl")
}

fn line(id: &str, key: &str, kind: &str) -> Value {
    json!({ "id": id, "key": key, "kind": kind, "rev": id })
}

fn params(w: &World, extra: Value) -> Value {
    let mut p = json!({ "log": log_path(w), "stateDir": w.dir.path().join("state") });
    if let (Value::Object(p), Value::Object(extra)) = (&mut p, extra) {
        p.extend(extra);
    }
    p
}

fn status(w: &World) -> Value {
    w.feed("READ", "t", json!({})).expect("READ")["status"].clone()
}

#[test]
fn a_log_feed_fires_each_new_record_once_and_read_shows_the_cursor() {
    let w = world();
    append(&log_path(&w), &[line("a@1", "a", "created"), line("b@1", "b", "created")]);
    let err = w.create_trigger("t", params(&w, json!({ "mode": "stream" }))).unwrap_err();
    assert!(err.contains("parameter 'mode'"), "{err}");
    assert_eq!(w.user_entities().unwrap(), Vec::<String>::new(), "a failed CREATE leaves nothing");

    let out = w.create_trigger("t", params(&w, json!({}))).unwrap();
    assert_eq!((out["status"].as_str(), out["mode"].as_str()), (Some("created"), Some("poll")), "{out}");
    w.record_events("t", Path::new(env!("CARGO_BIN_EXE_echo-action")));
    let read = status(&w);
    assert_eq!(read["cursor"], "2", "since=now starts after the records that exist: {read}");

    append(&log_path(&w), &[line("a@2", "a", "updated"), line("c@1", "c", "created"), line("b@2", "b", "deleted")]);
    w.poll();
    w.poll();
    // Rule invocations run concurrently in the emulator: the recorder's order is not the send order.
    let mut events = w.events();
    events.sort_by(|a, b| a["subject"].as_str().cmp(&b["subject"].as_str()));
    let seen: Vec<(&str, &str)> =
        events.iter().map(|e| (e["type"].as_str().unwrap(), e["subject"].as_str().unwrap())).collect();
    assert_eq!(
        seen,
        [
            ("test.filelog.record.updated", "a"),
            ("test.filelog.record.deleted", "b"),
            ("test.filelog.record.created", "c")
        ],
        "{events:?}"
    );
    assert_eq!(events[1]["data"]["rev"], "b@2", "a deleted record keeps its facts");
    let mut ids: Vec<&str> = events.iter().map(|e| e["id"].as_str().unwrap()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 3);

    let read = status(&w);
    assert_eq!(read["cursor"], "5", "{read}");
    assert_eq!(read["recordsRead"], 3);
    assert_eq!(read["eventsFired"], 3);
    assert_eq!(read["eventsPending"], 0);
    assert_eq!(read["mode"], "poll");
    assert_eq!(read["stalled"], false);
    assert_eq!(read["lastOutcome"], "ok");
    let polls = w.poll_results();
    assert_eq!(polls.last().unwrap()["read"], 0, "{polls:?}");
    assert_eq!(w.delete_trigger("t").unwrap()["status"], "deleted");
}

#[test]
fn a_rejected_cursor_stalls_visibly_until_update_allows_a_rebaseline_from_now() {
    let w = world();
    append(&log_path(&w), &[line("a@1", "a", "created"), line("b@1", "b", "created")]);
    w.create_trigger("t", params(&w, json!({}))).unwrap();
    w.record_events("t", Path::new(env!("CARGO_BIN_EXE_echo-action")));
    // The source forgets its history before cursor 4 (pouchdb-server accepts any `since`, so
    // this is what a CouchDB 400 on a malformed or foreign `since` looks like to the core).
    append(&log_path(&w), &[line("c@1", "c", "created"), line("d@1", "d", "created"), line("e@1", "e", "created")]);
    std::fs::write(format!("{}.floor", log_path(&w).display()), "4").unwrap();
    w.poll();
    let polls = w.poll_results();
    let error = polls.last().unwrap()["error"].as_str().unwrap_or_default().to_string();
    assert!(error.contains("rejects the stored cursor '2'"), "{polls:?}");
    let read = status(&w);
    assert_eq!(read["stalled"], true, "stalled from the first rejected poll: {read}");
    assert_eq!(read["cursorRejected"], true);
    assert!(read["stallReason"].as_str().unwrap().contains("-p onCursorRejected now"), "{read}");
    assert_eq!(read["lastOutcome"], "error");
    assert_eq!(read["cursor"], "2", "nothing skipped");
    assert!(w.events().is_empty());

    let out = w.feed("UPDATE", "t", json!({ "onCursorRejected": "now" })).unwrap();
    assert_eq!(out["status"], "updated");
    w.poll();
    let read = status(&w);
    assert_eq!(read["stalled"], false, "{read}");
    assert_eq!(read["cursor"], "5");
    assert_eq!(read["rebaselined"]["previousCursor"], "2");
    assert!(read["rebaselined"]["reason"].as_str().unwrap().contains("older than the log's history"), "{read}");
    assert_eq!(read["lastOutcome"], "rebaselined");
    assert!(w.events().is_empty(), "what happened between the rejected cursor and now is not reported");

    append(&log_path(&w), &[line("f@1", "f", "created")]);
    w.poll();
    let events = w.events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["subject"], "f");
}
