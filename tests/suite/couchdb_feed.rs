//! The CouchDB feed end to end: the real `changes` and `poll` binaries in the emulator
//! (`--feed owfeed/changes -p source couchdb …`) against pouchdb-server, with
//! `feed_tests::couchproxy` in front of it for what pouchdb-server cannot show (a `since` it
//! rejects) and for holding a state write past the poll's time limit (a poll killed there).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use base64::Engine as _;
use feed_tests::couchproxy::{Auth, CouchProxy, Hold, Play};
use feed_tests::pouchdb::{unique, PouchDb};
use feed_tests::world::{workspace_bin, World, USER};
use ow_emulator::FaultRule;

/// One change as an event must report it: (kind, document id, rev).
type Change = (String, String, String);

/// A feed trigger `t` on a fresh database of the shared pouchdb-server, through a proxy.
struct Rig {
    w: World,
    server: &'static PouchDb,
    proxy: CouchProxy,
    db: String,
}

impl Rig {
    fn start() -> Rig {
        let server = PouchDb::shared().expect("pouchdb-server starts (node and npm are needed)");
        let db = unique("feed");
        server.create_db(&db).expect("create database");
        let proxy = CouchProxy::start(&server.url).expect("proxy");
        let w = World::start(&workspace_bin("changes"), &workspace_bin("poll"));
        Rig { w, server, proxy, db }
    }

    /// Creates `t` with `--feed owfeed/changes -p source couchdb` and the recording rule.
    fn create(&self, extra: Value) -> Value {
        let mut params = json!({"source": "couchdb", "url": self.proxy.url, "dbname": self.db});
        if let (Value::Object(p), Value::Object(extra)) = (&mut params, extra) {
            p.extend(extra);
        }
        let created = self.w.create_trigger("t", params).expect("create trigger with feed");
        self.w.record_events("t", Path::new(env!("CARGO_BIN_EXE_echo-action")));
        created
    }

    fn put(&self, id: &str) -> Change {
        let rev = self.server.put(&self.db, id, json!({"v": 1})).expect("put");
        ("created".into(), id.into(), rev)
    }

    fn update(&self, id: &str) -> Change {
        let rev = self.server.update(&self.db, id, json!({"v": 2})).expect("update");
        ("updated".into(), id.into(), rev)
    }

    fn delete(&self, id: &str) -> Change {
        let rev = self.server.delete(&self.db, id).expect("delete");
        ("deleted".into(), id.into(), rev)
    }

    /// Creates many documents in one `_bulk_docs` request.
    fn put_many(&self, ids: &[String]) -> Vec<Change> {
        let docs: Vec<Value> = ids.iter().map(|id| json!({"_id": id, "v": 1})).collect();
        self.server.bulk(&self.db, &docs).expect("bulk");
        ids.iter().map(|id| ("created".into(), id.clone(), self.server.rev(&self.db, id).expect("rev"))).collect()
    }

    fn read(&self) -> Value {
        self.w.feed("READ", "t", json!({})).expect("READ")
    }

    /// Invokes the binding's poll action once, blocking: its result, or its error message.
    fn poll_once(&self) -> Result<Value, String> {
        self.w.poll_once("t")
    }

    /// `wsk action update owfeed/poll --timeout MS`.
    fn set_poll_timeout(&self, ms: u64) {
        self.w.set_poll_timeout(ms)
    }

    /// Polls until READ shows nothing pending, waiting out the lease a killed poll left.
    fn recover(&self) -> usize {
        for n in 1..=20 {
            match self.poll_once() {
                Ok(r) if r["status"] == "busy" => {
                    std::thread::sleep(Duration::from_millis(500));
                    continue;
                }
                Ok(_) => {}
                Err(e) => panic!("a poll without faults failed: {e}"),
            }
            assert!(self.w.emu.wait_idle(Duration::from_secs(120)), "emulator did not go idle");
            if self.read()["status"]["eventsPending"] == 0 {
                return n;
            }
        }
        panic!("the feed did not recover within 20 polls: {}", self.read());
    }

    /// Every event the recorder received so far, oldest first (batches flattened).
    fn received(&self) -> Vec<Value> {
        flatten(self.w.events())
    }

    /// Every event the trigger accepted, in the order the fires were accepted.
    fn accepted(&self) -> Vec<Value> {
        let fires = self.w.emu.activations(USER).into_iter().filter(|a| a["name"] == "t");
        flatten(fires.map(|a| a["response"]["result"].clone()).collect())
    }
}

fn flatten(payloads: Vec<Value>) -> Vec<Value> {
    let mut out = Vec::new();
    for p in payloads {
        match p.get("events").and_then(Value::as_array) {
            Some(batch) => out.extend(batch.iter().cloned()),
            None => out.push(p),
        }
    }
    out
}

/// The change an event reports.
fn change_of(e: &Value) -> Change {
    let kind = e["type"].as_str().unwrap_or("?").rsplit('.').next().unwrap_or("?").to_string();
    (kind, e["data"]["key"].as_str().unwrap_or("?").to_string(), e["data"]["rev"].as_str().unwrap_or("?").to_string())
}

fn ids(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i:04}")).collect()
}

#[test]
fn documents_created_updated_and_deleted_fire_exactly_their_events() {
    let r = Rig::start();
    r.server.put(&r.db, "before", json!({})).unwrap();
    let created = r.create(json!({}));
    assert_eq!(created["mode"], "poll", "{created}");
    let mut made = vec![r.put("a"), r.put("b/with slash"), r.put("c")];
    r.w.poll();
    made.push(r.update("a"));
    made.push(r.delete("c"));
    r.w.poll();
    r.w.poll(); // nothing new: nothing fires

    // In the order the trigger accepted them (the rule's actions run concurrently).
    let events = r.accepted();
    assert_eq!(events.iter().map(change_of).collect::<Vec<_>>(), made, "exact events, in order");
    assert_eq!(r.received().len(), 5, "and each reached the rule's action");
    let first = &events[0];
    assert_eq!(first["specversion"], "1.0");
    assert_eq!(first["type"], "org.openwhisk.feeds.couchdb.document.created");
    assert_eq!(first["source"], json!(format!("{}/{}", r.proxy.url, r.db)));
    assert_eq!(first["subject"], "a");
    assert_eq!(first["data"]["dbname"], json!(r.db));
    assert_eq!(first["data"]["deleted"], false);
    assert_eq!(events[4]["type"], "org.openwhisk.feeds.couchdb.document.deleted");
    assert_eq!(events[4]["data"]["deleted"], true);
    let unique_ids: BTreeSet<&str> = events.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(unique_ids.len(), events.len(), "one id per change");

    let read = r.read();
    assert_eq!(read["status"]["recordsRead"], 5, "{read}");
    assert_eq!(read["status"]["eventsFired"], 5, "{read}");
    assert_eq!(read["status"]["eventsPending"], 0, "{read}");
    assert!(!read["status"]["cursor"].is_null(), "{read}");
    // The feed's state lives in the watched database and never fired an event.
    let (status, _) = r.server.get(&format!("/{}/.owfeed%2Fguest%2Ft.state", r.db)).unwrap();
    assert_eq!(status, 200);
    r.w.delete_trigger("t").expect("DELETE");
    let (status, _) = r.server.get(&format!("/{}/.owfeed%2Fguest%2Ft.state", r.db)).unwrap();
    assert_eq!(status, 404, "DELETE removes the state document");
}

/// `maxTriggers`, a parameter of the Apache Cloudant feed (its provider counts fires down and
/// disables the trigger at 0: apache/openwhisk-package-cloudant provider/lib/utils.js:120-133,
/// 231-236), is not honoured here, so CREATE refuses it by name and makes nothing; so are the
/// alarms feeds' parameters a polling feed could be mistaken to take (`timezone`, …). UPDATE
/// refuses them too.
#[test]
fn maxtriggers_and_other_apache_parameters_are_refused_not_ignored() {
    let r = Rig::start();
    let before = r.w.user_entities().unwrap();
    let params = |extra: Value| {
        let mut p = json!({"source": "couchdb", "url": r.proxy.url, "dbname": r.db});
        p.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        p
    };
    for (name, value) in
        [("maxTriggers", json!(2)), ("timezone", json!("Europe/Paris")), ("stopDate", json!("2030-01-01"))]
    {
        let err = r.w.create_trigger("t", params(json!({ name: value }))).unwrap_err();
        assert!(err.contains(&format!("parameter '{name}'")), "{err}");
        assert_eq!(r.w.user_entities().unwrap(), before, "a refused CREATE leaves nothing");
    }
    r.create(json!({}));
    let err = r.w.feed("UPDATE", "t", json!({"maxTriggers": 2})).unwrap_err();
    assert!(err.contains("parameter 'maxTriggers'"), "{err}");
    // Every change fires: three documents, three events.
    for id in ["a", "b", "c"] {
        r.put(id);
    }
    r.w.poll();
    assert_eq!(r.received().len(), 3);
}

/// The feed's state and lease documents are written into the watched database unless
/// `stateDbname` says otherwise, and each write is a change every other reader of its
/// `_changes` sees (README "State, cursor and costs"): the lease twice a poll, even an idle one.
#[test]
fn the_feeds_own_documents_are_changes_others_see_unless_state_dbname() {
    let r = Rig::start();
    r.create(json!({}));
    let own_ids = |db: &str| -> Vec<String> {
        let (_, changes) = r.server.get(&format!("/{db}/_changes")).unwrap();
        let ids = changes["results"].as_array().unwrap().iter().filter_map(|c| c["id"].as_str().map(str::to_string));
        ids.filter(|id| id.starts_with(".owfeed/")).collect()
    };
    let lease_generation = || {
        let (_, doc) = r.server.get(&format!("/{}/.owfeed%2Fguest%2Ft.lease", r.db)).unwrap();
        doc["_rev"].as_str().unwrap().split('-').next().unwrap().parse::<u64>().unwrap()
    };
    r.w.poll();
    let before = lease_generation();
    r.w.poll();
    r.w.poll();
    assert_eq!(lease_generation() - before, 4, "two lease writes per idle poll");
    let own = own_ids(&r.db);
    for id in [".owfeed/guest/t.state", ".owfeed/guest/t.lease"] {
        assert!(own.contains(&id.to_string()), "{id} in the watched database's _changes: {own:?}");
    }
    // And the tombstone of CREATE's conditional-write probe.
    assert!(own.iter().any(|id| id.starts_with(".owfeed/guest/t.probe-")), "{own:?}");
    assert!(r.received().is_empty(), "never fired");
    r.w.delete_trigger("t").unwrap();

    // With a database of its own, the watched one sees none of them.
    let state_db = feed_tests::pouchdb::unique("state");
    r.server.create_db(&state_db).unwrap();
    let watched = feed_tests::pouchdb::unique("watched");
    r.server.create_db(&watched).unwrap();
    r.w.create_trigger(
        "t",
        json!({"source": "couchdb", "url": r.proxy.url, "dbname": watched, "stateDbname": state_db}),
    )
    .unwrap();
    r.w.poll();
    assert_eq!(own_ids(&watched), Vec::<String>::new());
    assert!(!own_ids(&state_db).is_empty());
}

/// A conflict revert is a change of its own: deleting the winning revision of a conflicted
/// document makes the losing one win again, and `_changes` shows that earlier revision a
/// second time at a later sequence. The two events name the same revision but are two
/// changes: their ids differ (a consumer dropping duplicates by id keeps both).
#[test]
fn a_conflict_revert_fires_with_an_id_of_its_own() {
    let r = Rig::start();
    r.create(json!({}));
    let first = r.put("doc");
    r.w.poll();
    // A branch 1-zzz → 2-bbb written as replication writes it: 2-bbb wins (higher generation).
    let branch = json!({"_id": "doc", "_rev": "2-bbb", "_revisions": {"start": 2, "ids": ["bbb", "zzz"]}, "v": 9});
    r.server.replicate(&r.db, &[branch]).expect("conflicting branch");
    assert_eq!(r.server.rev(&r.db, "doc").unwrap(), "2-bbb");
    r.w.poll();
    // Deleting the winner: the first revision wins again.
    r.server.delete_rev(&r.db, "doc", "2-bbb").expect("delete the winning revision");
    assert_eq!(r.server.rev(&r.db, "doc").unwrap(), first.2);
    r.w.poll();
    let events = r.received();
    let changes: Vec<Change> = events.iter().map(change_of).collect();
    let updated: Change = ("updated".into(), "doc".into(), "2-bbb".into());
    assert_eq!(changes, [first.clone(), updated, first], "{events:?}");
    let ids: BTreeSet<&str> = events.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 3, "each change of the log has its own id: {events:?}");
    assert_ne!(events[0]["data"]["seq"], events[2]["data"]["seq"]);
}

#[test]
fn the_legacy_format_is_the_apache_cloudant_feeds_payload() {
    let r = Rig::start();
    r.create(json!({"format": "legacy", "includeDocs": true}));
    let rev = r.put("doc").2;
    r.w.poll();
    let events = r.received();
    assert_eq!(events.len(), 1, "{events:?}");
    let e = &events[0];
    assert_eq!(e["dbname"], json!(r.db));
    assert_eq!(e["id"], "doc");
    assert_eq!(e["changes"], json!([{ "rev": rev }]));
    assert!(e["seq"].is_u64(), "pouchdb-server's seq, verbatim: {e}");
    assert_eq!(e.get("deleted"), None);
}

/// The poll action's time limit where a poll is killed.
const SHORT_TIMEOUT_MS: u64 = 5_000;
/// How long a held request waits: past the short time limit.
const HOLD: Duration = Duration::from_millis(6_500);
/// Events per fire in the kill scenario.
const KILL_BATCH: usize = 25;

fn fire_rule(delay_ms: u64, count: u32) -> FaultRule {
    FaultRule {
        method: Some("POST".into()),
        path_contains: "/triggers/t".into(),
        status: 0,
        body: None,
        count,
        delay_ms,
    }
}

/// Where a kill lands.
enum KillAt {
    /// The proxy holds the first state write (cursor + outbox) past the limit.
    StateCommit,
    /// The emulator holds fire `n` past the limit; the poll gives it up and commits before.
    Fire(u32),
    /// The proxy holds the second state write (the delivered events cleared) past the limit.
    OutboxClear,
}

/// Kills one poll at `at` after `changes` were made, recovers; the (lost, duplicates) counts.
fn kill_round(r: &Rig, case: &str, at: KillAt, changes: Vec<Change>) -> (usize, usize) {
    let before = r.received().len();
    r.set_poll_timeout(SHORT_TIMEOUT_MS);
    let state_put =
        |skip| Hold { method: "PUT", contains: format!("/{}/.owfeed/guest/t.state", r.db), skip, count: 1, hold: HOLD };
    match at {
        KillAt::StateCommit => r.proxy.hold(state_put(0)),
        KillAt::OutboxClear => r.proxy.hold(state_put(1)),
        KillAt::Fire(n) => {
            if n > 1 {
                r.w.emu.inject_fault(fire_rule(1, n - 1));
            }
            r.w.emu.inject_fault(fire_rule(HOLD.as_millis() as u64, 1));
        }
    }
    let killed = r.poll_once();
    let held_until = Instant::now() + HOLD + Duration::from_secs(1);
    match at {
        KillAt::Fire(n) => assert!(
            matches!(&killed, Ok(v) if v["status"] == "partial" && v["fired"] == (n as usize - 1) * KILL_BATCH),
            "{case}: the poll gives up the held fire and commits what it delivered: {killed:?}"
        ),
        _ => assert!(
            matches!(&killed, Err(e) if e.contains("exceeded its time limits")),
            "{case}: the poll must be killed at its time limit: {killed:?}"
        ),
    }
    r.proxy.clear_holds();
    r.w.emu.clear_faults();
    r.set_poll_timeout(60_000);
    r.recover();
    std::thread::sleep(held_until.saturating_duration_since(Instant::now()));
    assert!(r.w.emu.wait_idle(Duration::from_secs(120)), "emulator did not go idle");
    let events = &r.received()[before..];
    let mut seen: BTreeMap<Change, Vec<String>> = BTreeMap::new();
    for e in events {
        seen.entry(change_of(e)).or_default().push(e["id"].as_str().unwrap_or_default().to_string());
    }
    let expected: BTreeSet<Change> = changes.into_iter().collect();
    let got: BTreeSet<Change> = seen.keys().cloned().collect();
    assert_eq!(got.difference(&expected).collect::<Vec<_>>(), Vec::<&Change>::new(), "{case}: events for no change");
    for (change, ids) in &seen {
        assert!(ids.iter().all(|id| *id == ids[0]), "{case}: {change:?} re-delivered under another id: {ids:?}");
    }
    let lost = expected.difference(&got).count();
    let duplicates = events.len() - got.len();
    eprintln!("| {case} | {} | {} | {duplicates} | {lost} |", expected.len(), events.len());
    (lost, duplicates)
}

#[test]
fn a_poll_killed_at_any_step_loses_nothing_and_repeats_only_with_the_same_id() {
    let r = Rig::start();
    r.create(json!({"batch": KILL_BATCH}));
    eprintln!("| case | changes | events delivered | duplicates | lost |\n|---|---:|---:|---:|---:|");
    let mut rows = Vec::new();
    let changes = r.put_many(&ids("a", 50));
    rows.push(kill_round(&r, "(a) after reading, before the commit", KillAt::StateCommit, changes));
    let mut changes: Vec<Change> = ids("a", 50)[..25].iter().map(|id| r.update(id)).collect();
    changes.extend(ids("a", 50)[25..].iter().map(|id| r.delete(id)));
    rows.push(kill_round(&r, "(b) after the commit, before the first fire", KillAt::Fire(1), changes));
    let changes = r.put_many(&ids("c", 75));
    rows.push(kill_round(&r, "(c) between fires (3rd of 3 held)", KillAt::Fire(3), changes));
    let changes = r.put_many(&ids("d", 50));
    rows.push(kill_round(&r, "(d) after the fires, before clearing the outbox", KillAt::OutboxClear, changes));
    let lost: Vec<usize> = rows.iter().map(|(l, _)| *l).collect();
    assert_eq!(lost, [0, 0, 0, 0], "no change lost");
    // (a) fired nothing before the kill; a held fire arrives late and again on recovery; a
    // killed outbox clear fires the whole outbox again.
    let duplicates: Vec<usize> = rows.iter().map(|(_, d)| *d).collect();
    assert_eq!(duplicates, [0, KILL_BATCH, KILL_BATCH, 50]);
}

#[test]
fn a_cursor_the_server_rejects_stalls_visibly_in_read_until_the_user_rebaselines() {
    // CouchDB 2.x+ refuses a `since` it cannot use (400); pouchdb-server accepts any, so the
    // proxy plays it.
    let r = Rig::start();
    r.create(json!({}));
    r.put("a");
    r.w.poll();
    assert_eq!(r.received().len(), 1);
    // The database "re-created": every sequence before b's write is refused.
    r.put("b");
    let (_, info) = r.server.get(&format!("/{}", r.db)).unwrap();
    r.proxy.play(Play::RejectSinceBelow(info["update_seq"].as_u64().expect("integer update_seq")));
    let err = r.poll_once().unwrap_err();
    assert!(err.contains("Malformed sequence supplied in 'since' parameter"), "{err}");
    let read = r.read();
    assert_eq!(read["status"]["cursorRejected"], true, "{read}");
    assert_eq!(read["status"]["stalled"], true, "{read}");
    assert!(read["status"]["stallReason"].as_str().unwrap_or_default().contains("onCursorRejected"), "{read}");
    assert_eq!(r.received().len(), 1, "nothing read, nothing skipped");
    // The user allows a re-baseline: the feed goes on from now (b is not reported) and says so.
    r.w.feed("UPDATE", "t", json!({"onCursorRejected": "now"})).expect("UPDATE");
    let rebaselined = r.poll_once().expect("poll");
    assert_eq!(rebaselined["status"], "rebaselined", "{rebaselined}");
    let read = r.read();
    assert!(read["status"]["rebaselined"]["reason"].as_str().unwrap_or_default().contains("Malformed"), "{read}");
    assert_eq!(read["status"]["stalled"], false, "{read}");
    r.put("c");
    r.poll_once().expect("poll");
    assert!(r.w.emu.wait_idle(Duration::from_secs(60)));
    let keys: Vec<String> = r.received().iter().map(|e| change_of(e).1).collect();
    assert_eq!(keys, ["a", "c"]);
}

#[test]
fn connection_mode_fires_within_the_activation_as_documents_arrive() {
    let r = Rig::start();
    r.create(json!({"mode": "connection"}));
    r.set_poll_timeout(12_000);
    let began = Instant::now();
    let activation = std::thread::scope(|scope| {
        let poll = scope.spawn(|| r.poll_once());
        let mut latencies = Vec::new();
        for (i, id) in ["first", "second"].into_iter().enumerate() {
            std::thread::sleep(Duration::from_millis(1500));
            let written = Instant::now();
            r.put(id);
            // The event arrives while the same activation still waits for more.
            while r.received().len() < i + 1 {
                assert!(written.elapsed() < Duration::from_secs(5), "no event for {id} within 5 s");
                std::thread::sleep(Duration::from_millis(20));
            }
            latencies.push(written.elapsed());
        }
        let done = poll.join().expect("poll thread");
        (done, latencies)
    });
    let (result, latencies) = activation;
    let result = result.expect("the connection-mode poll ends normally at its deadline");
    assert!(began.elapsed() >= Duration::from_secs(5), "it held the connection: {:?}", began.elapsed());
    assert_eq!(result["fired"], 2, "both fired by the one activation: {result}");
    eprintln!("connection mode: write → event latencies {latencies:?}");
    let keys: Vec<String> = r.accepted().iter().map(|e| change_of(e).1).collect();
    assert_eq!(keys, ["first", "second"]);
}

#[test]
fn no_secret_of_the_couchdb_feed_leaks_whatever_the_server_echoes() {
    const PASSWORD: &str = "COUCH-PASSWORD-7e6d5c-never";
    const IAM_KEY: &str = "COUCH-IAM-KEY-4b3a2f-never";
    const USERINFO: &str = "COUCH-URL-PASSWORD-1a2b3c-never";
    let r = Rig::start();
    let iam = CouchProxy::start(&r.server.url).expect("proxy");
    r.proxy.require(Auth::Basic("feeduser".into(), PASSWORD.into()));
    iam.require(Auth::Iam(IAM_KEY.into()));
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("feeduser:{PASSWORD}"));
    let mut answers = Vec::new();

    // 1. A URL with user-info: refused naming the parameter, without echoing it.
    let url = format!("http://feeduser:{USERINFO}@127.0.0.1:9");
    let e = r.w.create_trigger("t1", json!({"source": "couchdb", "url": url, "dbname": r.db})).unwrap_err();
    assert!(e.contains("'url'"), "{e}");
    answers.push(e);

    // 2. Working feeds with Basic and IAM credentials, then a server echoing every request
    // (the Authorization header, the decoded Basic pair) into its errors.
    let basic_feed = json!({"source": "couchdb", "url": r.proxy.url, "dbname": r.db,
                            "username": "feeduser", "password": PASSWORD});
    r.w.create_trigger("t2", basic_feed).expect("CREATE with Basic");
    let iam_url = format!("{}/identity/token", iam.url);
    let iam_feed = json!({"source": "couchdb", "url": iam.url, "dbname": r.db,
                          "iamApiKey": IAM_KEY, "iamUrl": iam_url});
    r.w.create_trigger("t3", iam_feed).expect("CREATE with IAM");
    r.put("doc");
    r.w.poll();
    for status in [400, 401, 404, 500] {
        r.proxy.play(Play::Echo(status));
        iam.play(Play::Echo(status));
        r.w.poll();
        let e = r.w.create_trigger(
            "t4",
            json!({"source": "couchdb", "url": r.proxy.url, "dbname": r.db,
                                                 "username": "feeduser", "password": PASSWORD}),
        );
        answers.push(e.expect_err("CREATE against an echoing server fails"));
    }
    for t in ["t2", "t3"] {
        let read = r.w.feed("READ", t, json!({})).expect("READ");
        answers.push(read.to_string());
    }
    assert!(answers.iter().any(|a| a.contains("\"password\":\"[redacted]\"")), "{answers:?}");
    assert!(answers.iter().any(|a| a.contains("\"iamApiKey\":\"[redacted]\"")), "{answers:?}");
    assert!(r.w.emu.wait_idle(Duration::from_secs(60)));
    let mut texts: Vec<String> = Vec::new();
    for ns in [USER, ow_emulator::SYSTEM_NAMESPACE] {
        texts.extend(r.w.emu.activations(ns).iter().map(Value::to_string));
    }
    texts.extend(answers);
    // A 400's or 404's reason is quoted, scrubbed: proof the echoes reached the messages.
    assert!(texts.iter().any(|t| t.contains("decoded [redacted]")), "the echo path never ran");
    for (what, secret) in [
        ("password", PASSWORD),
        ("iamApiKey", IAM_KEY),
        ("url user-info", USERINFO),
        ("Basic authorization", basic.as_str()),
        ("IAM bearer token", "iam-token-1"),
    ] {
        for text in &texts {
            assert!(!text.contains(secret), "the {what} leaked into: {text}");
        }
    }
}

/// The feed's state document, as whoever can write the database sees it.
const STATE_DOC: &str = ".owfeed/guest/t.state";

#[test]
fn a_database_writer_who_overwrites_the_state_document_costs_no_change_and_read_keeps_saying_so() {
    let r = Rig::start();
    r.create(json!({}));
    let mut made = vec![r.put("a")];
    r.poll_once().expect("poll");
    let genuine = r.accepted();
    assert_eq!(genuine.iter().map(change_of).collect::<Vec<_>>(), made);

    // A writer of the database rebuilds the state document with an outbox of their own (and
    // the format's checksum), in the interval where `b` is written.
    let (_, doc) = r.server.get(&format!("/{}/.owfeed%2Fguest%2Ft.state", r.db)).unwrap();
    let bytes = base64::engine::general_purpose::STANDARD.decode(doc["bytes"].as_str().unwrap()).unwrap();
    let mut forged = owfeed::state::State::decode_unverified(&bytes).expect("the forger reads the format");
    let mut event = genuine[0].clone();
    event["id"] = json!("forged-1");
    event["data"] = json!({"key": "admin", "change": "deleted", "injected": true});
    event["__ow_headers"] = json!({"authorization": "Basic Zm9yZ2Vk"});
    forged.outbox = vec![event];
    let forged = base64::engine::general_purpose::STANDARD.encode(forged.encode());
    r.server.update(&r.db, STATE_DOC, json!({"owfeed": "feed state", "bytes": forged})).unwrap();
    made.push(r.put("b"));
    let polled = r.poll_once().expect("poll");
    assert_eq!(polled["status"], "rebaselined", "{polled}");
    assert_eq!(r.accepted().iter().map(change_of).collect::<Vec<_>>(), made, "nothing forged, nothing lost");
    let status = r.read()["status"].clone();
    assert_eq!(status["rebaselined"]["cause"], "rejected", "{status}");
    let reason = status["rebaselined"]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("not authenticated") && reason.contains("none is lost"), "{reason}");

    // A document that is not a state document at all: replaced too, not a stall.
    r.server.update(&r.db, STATE_DOC, json!({"hello": "a writer of the database"})).unwrap();
    made.push(r.put("c"));
    let polled = r.poll_once().expect("a foreign document stops nothing");
    assert_eq!(polled["status"], "rebaselined", "{polled}");
    made.push(r.put("d"));
    let polled = r.poll_once().expect("poll");
    assert_eq!(polled["status"], "ok", "{polled}");
    assert_eq!(r.accepted().iter().map(change_of).collect::<Vec<_>>(), made);
    // Still said after a good poll, until an UPDATE acknowledges it.
    let status = r.read()["status"].clone();
    assert_eq!(status["rebaselined"]["cause"], "rejected", "{status}");
    assert_eq!(status["stateAuthentication"], "hmac-sha256 (stateKey)", "{status}");
    r.w.feed("UPDATE", "t", json!({})).expect("UPDATE");
    assert!(r.read()["status"].get("rebaselined").is_none());
}
