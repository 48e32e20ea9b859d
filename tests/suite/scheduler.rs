//! The namespace scheduler through the emulator: feeds made before it move to it on their next
//! poll or on UPDATE and lose nothing; connection-mode triggers share one activation; a tick
//! that cannot poll everything in its window fans out and leaves the rest to the next tick;
//! one tick at a time; a late tick covers the minutes it missed; the namespace's fire budget
//! is shared by every trigger, across ticks, and READ shows the namespace's picture.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use feed_tests::file_log_source::append;
use feed_tests::world::{left_in_minute, sleep_into_next_minute, World, SCHEDULER_BINDING, SCHEDULER_TICK, USER};
use owfeed::openwhisk::QualifiedName;

fn world() -> World {
    World::start(Path::new(env!("CARGO_BIN_EXE_test-feed")), Path::new(env!("CARGO_BIN_EXE_test-poll")))
}

fn echo() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_echo-action"))
}

fn listing(w: &World) -> PathBuf {
    w.dir.path().join("listing.json")
}

fn write_listing(w: &World, entries: &[(&str, &str)]) {
    let items: Vec<Value> = entries.iter().map(|(k, v)| json!({"key": k, "version": v})).collect();
    std::fs::write(listing(w), serde_json::to_vec(&items).unwrap()).unwrap();
}

fn params(w: &World, extra: Value) -> Value {
    let mut p = json!({ "listing": listing(w), "stateDir": w.dir.path().join("state") });
    if let (Value::Object(p), Value::Object(extra)) = (&mut p, extra) {
        p.extend(extra);
    }
    p
}

fn status(w: &World, t: &str) -> Value {
    w.feed("READ", t, json!({})).expect("READ")["status"].clone()
}

/// The scheduler's alarm fires (as the provider does at the start of a minute); waits for it.
fn tick(w: &World) {
    w.emu.fire_alarms();
    assert!(w.emu.wait_idle(Duration::from_secs(120)));
}

/// Sets the namespace's budgets on the scheduler's binding, as `wsk package update
/// owfeed.scheduler -p …` does (the parameters replaced, the annotations kept).
fn set_budgets(w: &World, budgets: Value) {
    let binding = QualifiedName::new(USER, None, SCHEDULER_BINDING);
    let list: Vec<Value> = budgets.as_object().unwrap().iter().map(|(k, v)| json!({"key": k, "value": v})).collect();
    w.user.put_package(&binding, &json!({ "parameters": list }), true).expect("update the scheduler binding");
}

/// The subjects of the events fired at `t`, with their change, in the order accepted.
fn fired_changes(w: &World, t: &str) -> Vec<String> {
    w.fired(t)
        .iter()
        .map(|e| format!("{} {}", e["type"].as_str().unwrap_or("?"), e["subject"].as_str().unwrap_or("?")))
        .collect()
}

/// Makes `t` look like a feed made before the namespace scheduler, as the old CREATE left it:
/// a config binding without registration, its own helper trigger `t.owfeed-alarm` with an
/// interval alarm, and the rule `t.owfeed-rule` from it to `t.owfeed/poll`.
fn with_own_alarm(w: &World, t: &str) {
    let binding = QualifiedName::new(USER, None, &format!("{t}.owfeed"));
    w.user.put_package(&binding, &json!({ "annotations": [] }), true).unwrap();
    let alarm = QualifiedName::new(USER, None, &format!("{t}.owfeed-alarm"));
    let feed = "/whisk.system/alarms/interval";
    let body = json!({ "annotations": [{ "key": "feed", "value": feed }], "parameters": [] });
    w.user.put_trigger(&alarm, &body, true).unwrap();
    let interval = QualifiedName::new("whisk.system", Some("alarms"), "interval");
    let create = json!({ "lifecycleEvent": "CREATE", "triggerName": alarm.to_string(), "authKey": w.user_key,
                         "minutes": 1, "trigger_payload": {} });
    w.user.invoke(&interval, &create, true).unwrap();
    let rule = QualifiedName::new(USER, None, &format!("{t}.owfeed-rule"));
    w.user.put_rule(&rule, &alarm, &QualifiedName::new(USER, Some(&format!("{t}.owfeed")), "poll"), true).unwrap();
}

#[test]
fn a_feed_with_its_own_alarm_moves_to_the_scheduler_on_its_next_poll_or_on_update_and_loses_nothing() {
    let w = world();
    write_listing(&w, &[("a", "1"), ("b", "1")]);
    for t in ["t", "u"] {
        w.create_trigger(t, params(&w, json!({}))).unwrap();
        w.record_events(t, echo());
        with_own_alarm(&w, t);
    }
    // No trigger registered: two ticks remove the scheduler, as before there was one.
    for _ in 0..2 {
        assert_eq!(w.emu.fire_alarm(&format!("/{USER}/{SCHEDULER_TICK}")), Some(202));
        assert!(w.emu.wait_idle(Duration::from_secs(60)));
    }
    assert_eq!(w.emu.alarms_of(USER), ["/guest/t.owfeed-alarm", "/guest/u.owfeed-alarm"]);
    let read = status(&w, "t");
    assert_eq!((read["registered"].clone(), read["active"].clone()), (json!(false), json!(true)), "{read}");
    assert!(read["scheduler"].as_str().unwrap().contains("its next poll"), "{read}");

    // t's own alarm fires: its poll fires the changes, then moves it to the scheduler.
    write_listing(&w, &[("a", "2"), ("c", "1")]);
    assert_eq!(w.emu.fire_alarm("/guest/t.owfeed-alarm"), Some(202));
    assert!(w.emu.wait_idle(Duration::from_secs(60)));
    let polled = w.poll_results().pop().unwrap();
    assert_eq!(polled["changes"], 3, "{polled}");
    assert_eq!(polled["migrated"]["to"], format!("/{USER}/{SCHEDULER_TICK}"), "{polled}");
    let entities = w.user_entities().unwrap();
    assert!(
        !entities.iter().any(|e| e.starts_with("rule:t.owfeed") || e.starts_with("trigger:t.owfeed")),
        "{entities:?}"
    );
    assert_eq!(w.emu.alarms_of(USER), [format!("/{USER}/{SCHEDULER_TICK}"), "/guest/u.owfeed-alarm".to_string()]);
    assert_eq!(status(&w, "t")["registered"], true);

    // u moves on UPDATE.
    let out = w.feed("UPDATE", "u", json!({ "interval": 1 })).unwrap();
    assert_eq!(out["alarm"], "moved to the namespace scheduler", "{out}");
    assert_eq!(w.emu.alarms_of(USER), [format!("/{USER}/{SCHEDULER_TICK}")]);
    let read = status(&w, "u");
    assert_eq!((read["registered"].clone(), read["active"].clone()), (json!(true), json!(true)), "{read}");

    // The scheduler polls both: u catches up with what its alarm never polled, and nothing
    // is fired twice or lost.
    write_listing(&w, &[("a", "3"), ("c", "1"), ("d", "1")]);
    tick(&w);
    assert!(w.emu.wait_idle(Duration::from_secs(60)));
    let expected = [
        "test.listing.entry.updated a",
        "test.listing.entry.deleted b",
        "test.listing.entry.created c",
        "test.listing.entry.updated a",
        "test.listing.entry.created d",
    ];
    let mut t_events = fired_changes(&w, "t");
    t_events.sort();
    let mut want: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(t_events, want, "t");
    let mut u_events = fired_changes(&w, "u");
    u_events.sort();
    // u was not polled between the two listings: it sees a updated, b deleted, c and d created.
    let mut u_want = vec![
        "test.listing.entry.created c",
        "test.listing.entry.created d",
        "test.listing.entry.deleted b",
        "test.listing.entry.updated a",
    ];
    u_want.sort();
    assert_eq!(u_events, u_want, "u");
    let ids: BTreeSet<String> = w.fired("t").iter().chain(w.fired("u").iter()).map(|e| e["id"].to_string()).collect();
    assert_eq!(ids.len(), 9, "every event once, with its own id");
}

#[test]
fn connection_mode_triggers_share_one_activation() {
    let bin = Path::new(env!("CARGO_BIN_EXE_log-action"));
    let w = World::start(bin, bin);
    let logs: Vec<PathBuf> = (0..5).map(|i| w.dir.path().join(format!("log{i}.jsonl"))).collect();
    for (i, log) in logs.iter().enumerate() {
        append(log, &[json!({ "id": "old@1", "key": "old", "kind": "created" })]);
        let p = json!({ "log": log, "stateDir": w.dir.path().join("state"), "mode": "connection" });
        w.create_trigger(&format!("c{i}"), p).unwrap();
        w.record_events(&format!("c{i}"), echo());
    }
    w.set_poll_timeout(15_000);
    let began = Instant::now();
    std::thread::scope(|scope| {
        let tick = scope.spawn(|| w.poll());
        std::thread::sleep(Duration::from_millis(2_500));
        for (i, log) in logs.iter().enumerate() {
            append(log, &[json!({ "id": format!("k{i}@1"), "key": format!("k{i}"), "kind": "created" })]);
        }
        // Each event arrives while the one activation still holds every connection.
        let written = Instant::now();
        while (0..5).any(|i| w.fired(&format!("c{i}")).is_empty()) {
            if written.elapsed() > Duration::from_secs(8) {
                tick.join().unwrap();
                panic!("not every connection fired within 8 s: {:?}", w.poll_results());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(!tick.is_finished(), "the events came while the tick was still running");
        tick.join().unwrap();
    });
    assert!(began.elapsed() >= Duration::from_secs(8), "the tick held the connections: {:?}", began.elapsed());
    let polls: Vec<Value> = w
        .emu
        .activations(USER)
        .into_iter()
        .filter(|a| a["name"] == "poll")
        .map(|a| a["response"]["result"].clone())
        .collect();
    assert_eq!(polls.len(), 1, "one activation for five connection-mode triggers: {polls:?}");
    let results = polls[0]["polls"].as_array().unwrap();
    assert_eq!(results.len(), 5, "{polls:?}");
    for r in results {
        assert_eq!((r["status"].clone(), r["fired"].clone()), (json!("ok"), json!(1)), "{r}");
    }
    let read = status(&w, "c0");
    assert_eq!(read["scheduler"]["connectionMode"], 5, "{read}");
    assert_eq!(read["mode"], "connection");
}

#[test]
fn a_tick_that_cannot_poll_everything_in_time_fans_out_and_leaves_the_rest_to_the_next() {
    let w = world();
    write_listing(&w, &[("a", "1")]);
    let n = 24;
    for i in 0..n {
        w.create_trigger(&format!("t{i}"), params(&w, json!({}))).unwrap();
    }
    // Every listing now takes 3 s, and a tick has about 7 s: 8 threads poll 16 triggers.
    std::fs::write(format!("{}.delay", listing(&w).display()), "3000").unwrap();
    w.set_poll_timeout(8_000);
    w.poll();
    let first = w.ticks().pop().unwrap();
    let polled = first["polled"].as_u64().unwrap();
    let left = first["notPolled"].as_array().unwrap().len() as u64;
    assert!(polled >= 8 && left > 0 && polled + left == n, "{first}");
    assert_eq!(first["children"], json!([]), "{first}");
    assert_eq!(first["backlog"].as_array().unwrap().len() as u64, left, "what had no time goes first next: {first}");
    // At that pace the next tick cannot poll all 24 alone: it fans out to one more activation,
    // within namespaceConcurrency (3), and between them every trigger is polled once.
    w.poll();
    let ticks = w.ticks();
    let second: Vec<&Value> = ticks[1..].iter().collect();
    let parent = second.iter().find(|t| t["status"] == "tick").unwrap();
    assert_eq!(parent["children"].as_array().unwrap().len(), 1, "{parent}");
    let part = second.iter().find(|t| t["status"] == "tick part").unwrap();
    let triggers = |t: &Value| -> Vec<String> {
        t["polls"].as_array().unwrap().iter().map(|p| p["trigger"].as_str().unwrap().to_string()).collect()
    };
    let (mine, theirs) = (triggers(parent), triggers(part));
    let all: BTreeSet<&String> = mine.iter().chain(theirs.iter()).collect();
    assert_eq!((all.len(), mine.len() + theirs.len()), (n as usize, n as usize), "{parent} {part}");
    assert!(second.iter().flat_map(|t| t["polls"].as_array().unwrap()).all(|p| p["status"] == "ok"));
    let read = status(&w, "t0");
    assert_eq!(read["scheduler"]["fannedOutTo"], 1, "{read}");
}

#[test]
fn one_tick_at_a_time() {
    let w = world();
    write_listing(&w, &[("a", "1")]);
    w.create_trigger("t", params(&w, json!({}))).unwrap();
    std::fs::write(format!("{}.delay", listing(&w).display()), "3000").unwrap();
    let tick = QualifiedName::new(USER, None, SCHEDULER_TICK);
    w.user.fire_trigger(&tick, &json!({ "due": "all" })).unwrap();
    std::thread::sleep(Duration::from_millis(1_000));
    w.user.fire_trigger(&tick, &json!({ "due": "all" })).unwrap();
    assert!(w.emu.wait_idle(Duration::from_secs(60)));
    let results: Vec<Value> = w
        .emu
        .activations(USER)
        .into_iter()
        .filter(|a| a["name"] == "poll")
        .map(|a| a["response"]["result"].clone())
        .collect();
    assert_eq!(results.len(), 2, "{results:?}");
    let skipped: Vec<&Value> = results.iter().filter(|r| r["status"] == "skipped").collect();
    assert_eq!(skipped.len(), 1, "the second tick leaves while the first runs: {results:?}");
    assert!(skipped[0]["reason"].as_str().unwrap().contains("still running"), "{results:?}");
    // Once it ended, the next tick runs.
    w.poll();
    assert_eq!(w.ticks().last().unwrap()["polled"], 1);
}

/// The scheduler's record, as the ticks keep it on its binding.
fn record(w: &World) -> Value {
    let doc = w.user.get_package(&QualifiedName::new(USER, None, SCHEDULER_BINDING)).unwrap();
    doc["annotations"].as_array().unwrap().iter().find(|a| a["key"] == "owfeedScheduler").unwrap()["value"].clone()
}

fn set_record(w: &World, record: &Value) {
    let binding = QualifiedName::new(USER, None, SCHEDULER_BINDING);
    let body = json!({ "annotations": [{ "key": "owfeedScheduler", "value": record }] });
    w.user.put_package(&binding, &body, true).unwrap();
}

#[test]
fn a_tick_polls_an_interval_on_its_phase_and_a_late_tick_covers_the_minutes_it_missed() {
    let w = world();
    write_listing(&w, &[("a", "1")]);
    w.create_trigger("t", params(&w, json!({ "interval": 5 }))).unwrap();
    let config = w.user.get_package(&QualifiedName::new(USER, None, "t.owfeed")).unwrap();
    let registration = config["annotations"].as_array().unwrap().iter().find(|a| a["key"] == "owfeedSchedule").unwrap();
    let phase = registration["value"]["phase"].as_u64().unwrap();
    assert!(phase < 5);
    // A tick in this minute (the first one covers only its own minute).
    let minute = |ms: u64| ms / 60_000;
    let before = owfeed::budget::now_ms();
    tick(&w);
    let after = owfeed::budget::now_ms();
    if minute(before) == minute(after) {
        let due = (minute(before) + 5 - phase) % 5 == 0;
        assert_eq!(
            w.poll_results().len(),
            usize::from(due),
            "due {due} in minute {}: {:?}",
            minute(before),
            w.poll_results()
        );
    }
    // READ's nextPoll is the start of the next minute on the phase.
    let next = chrono::DateTime::parse_from_rfc3339(status(&w, "t")["nextPoll"].as_str().unwrap()).unwrap();
    let next_minute = next.timestamp_millis() as u64 / 60_000;
    assert_eq!((next_minute % 5, next.timestamp_millis() % 60_000), (phase, 0));
    assert!(next_minute > minute(after) && next_minute <= minute(after) + 5);
    // The last tick ran ten minutes ago (the alarm was disabled meanwhile, say): this tick
    // covers the minutes since, so an interval of 5 is due whatever its phase.
    let mut r = record(&w);
    r["last"]["startedMs"] = json!(owfeed::budget::now_ms() - 10 * 60_000);
    set_record(&w, &r);
    let polls = w.poll_results().len();
    tick(&w);
    assert_eq!(w.poll_results().len(), polls + 1, "{:?}", w.poll_results());
}

#[test]
fn the_namespace_budget_is_shared_by_every_trigger_and_across_ticks_and_read_shows_the_namespace() {
    let w = world();
    write_listing(&w, &[("a", "1")]);
    let triggers = ["t0", "t1", "t2"];
    for t in triggers {
        w.create_trigger(t, params(&w, json!({}))).unwrap();
        w.record_events(t, echo());
    }
    // 30 fires a minute for the namespace, no burst: one every 2 s, whoever asks, or, to fit
    // the minute's fires into the tick's short window, at most twice as often.
    set_budgets(&w, json!({ "namespaceFiresPerMinute": 30, "namespaceFireBurst": 1 }));
    // Short ticks (about 7 s); all of it within one calendar minute.
    w.set_poll_timeout(8_000);
    if left_in_minute() < 40_000 {
        sleep_into_next_minute(500);
    }
    // 3 changes for each trigger: 9 events, about 7 fires in a tick.
    write_listing(&w, &[("a", "1"), ("b", "1"), ("c", "1"), ("d", "1")]);
    w.poll();
    let fired: BTreeMap<&str, usize> = triggers.iter().map(|t| (*t, w.fired(t).len())).collect();
    let total: usize = fired.values().sum();
    assert!((4..9).contains(&total), "the pace held the tick back: {fired:?}");
    // Served in turn: no trigger got two fires while another waited for its second.
    assert!(fired.values().max().unwrap() - fired.values().min().unwrap() <= 1, "{fired:?}");
    // Spread over the tick: one a second at most.
    let mut starts: Vec<u64> = triggers
        .iter()
        .flat_map(|t| w.emu.activations(USER).into_iter().filter(move |a| a["name"] == *t))
        .map(|a| a["start"].as_u64().unwrap())
        .collect();
    starts.sort();
    assert!(starts.windows(2).all(|p| p[1] - p[0] >= 900), "{starts:?}");
    let read = status(&w, "t0");
    let ns = &read["scheduler"];
    assert_eq!(ns["registered"], 3, "{read}");
    assert_eq!(ns["due"], 3, "{read}");
    assert_eq!(ns["polledLastTick"], 3, "{read}");
    assert_eq!(ns["backlog"], fired.values().filter(|n| **n < 3).count(), "{read}");
    assert_eq!(ns["eventsPending"], 9 - total, "{read}");
    assert_eq!(ns["firesThisMinute"], total, "{read}");
    assert_eq!(ns["budgets"]["namespaceFiresPerMinute"], 30, "{read}");
    assert_eq!(ns["alarm"]["active"], true, "{read}");
    assert!(ns["lastTick"].is_string(), "{read}");
    // The minute's budget is the namespace's, across ticks: with one fire left in it, the
    // next tick in the same minute sends one.
    set_budgets(&w, json!({ "namespaceFiresPerMinute": total + 1, "namespaceFireBurst": 10 }));
    w.poll();
    assert_eq!(triggers.iter().map(|t| w.fired(t).len()).sum::<usize>(), total + 1);
    // A larger budget: the rest goes, each event once.
    set_budgets(&w, json!({ "namespaceFiresPerMinute": 100, "namespaceFireBurst": 10 }));
    w.poll();
    let all: Vec<Value> = triggers.iter().flat_map(|t| w.fired(t)).collect();
    assert_eq!(all.len(), 9);
    let ids: BTreeSet<String> = all.iter().map(|e| e["id"].to_string()).collect();
    assert_eq!(ids.len(), 9);
    assert_eq!(status(&w, "t1")["scheduler"]["eventsPending"], 0);
}

/// Past what the namespace's fire budget carries, busy triggers with `batch` > 1 send their
/// backlog in one fire each and are served in turn: B busy triggers with F fires a minute are all
/// served within ceil(B / F) ticks (README, "Limits of one namespace").
#[test]
fn past_the_fire_budget_busy_triggers_batch_and_are_served_in_turn() {
    let w = world();
    write_listing(&w, &[("a", "1")]);
    let triggers: Vec<String> = (0..6).map(|i| format!("t{i}")).collect();
    for t in &triggers {
        w.create_trigger(t, params(&w, json!({ "batch": 10 }))).unwrap();
        w.record_events(t, echo());
    }
    // 4 fires a minute for 6 busy triggers.
    set_budgets(&w, json!({ "namespaceFiresPerMinute": 4, "namespaceFireBurst": 4 }));
    w.set_poll_timeout(8_000);
    if left_in_minute() < 40_000 {
        sleep_into_next_minute(500);
    }
    write_listing(&w, &[("a", "1"), ("b", "1"), ("c", "1"), ("d", "1")]);
    w.poll();
    let fires = |w: &World| -> Vec<usize> { triggers.iter().map(|t| w.fired(t).len()).collect() };
    assert_eq!(fires(&w).iter().sum::<usize>(), 4, "{:?}", fires(&w));
    assert!(fires(&w).iter().all(|n| *n <= 1), "one batch each: {:?}", fires(&w));
    // The next minute's tick serves the two left first.
    sleep_into_next_minute(500);
    w.poll();
    assert_eq!(fires(&w), vec![1; 6], "every busy trigger served within ceil(6 / 4) = 2 ticks");
    let events: Vec<Value> = triggers
        .iter()
        .flat_map(|t| w.fired(t))
        .flat_map(|b| b["events"].as_array().cloned().unwrap_or_default())
        .collect();
    assert_eq!(events.len(), 18, "3 changes each, in one batch each");
    let ids: BTreeSet<String> = events.iter().map(|e| e["id"].to_string()).collect();
    assert_eq!(ids.len(), 18);
}

/// A tick admits polls by their memory estimate (shared/src/polling/memory.rs), made from the
/// snapshot sizes polls report (`tracked`): two large snapshots whose polls do not fit in one
/// activation's memory together are dealt to two activations, each with one.
#[test]
fn large_snapshots_whose_polls_do_not_fit_together_are_spread_over_activations() {
    let w = world();
    write_listing(&w, &[("a", "1"), ("b", "2")]);
    for t in ["big1", "big2", "small"] {
        w.create_trigger(t, params(&w, json!({}))).unwrap();
    }
    w.poll();
    let first = w.ticks().pop().unwrap();
    let polls = first["polls"].as_array().unwrap();
    assert_eq!(polls.len(), 3, "{first}");
    assert!(polls.iter().all(|p| p["tracked"] == 2), "each poll says how large its snapshot is: {first}");
    assert_eq!(first["children"], json!([]), "small snapshots share one activation: {first}");
    // As if their last polls had said 400k objects (about 22 MiB each), where the poll action
    // has 128 MiB (32 MiB for its polls): they cannot run side by side.
    let mut r = record(&w);
    r["sizes"] = json!({ "big1.owfeed": 400_000, "big2.owfeed": 400_000 });
    set_record(&w, &r);
    let binding = QualifiedName::new(USER, None, SCHEDULER_BINDING);
    let body = json!({ "parameters": [{ "key": "pollMemoryMiB", "value": 128 }] });
    w.user.put_package(&binding, &body, true).unwrap();
    w.poll();
    let ticks = w.ticks();
    let parent = ticks.iter().rev().find(|t| t["status"] == "tick").unwrap();
    assert_eq!(parent["children"].as_array().unwrap().len(), 1, "{parent}");
    let part = ticks.iter().rev().find(|t| t["status"] == "tick part").unwrap();
    let triggers = |t: &Value| -> BTreeSet<String> {
        t["polls"].as_array().unwrap().iter().map(|p| p["trigger"].as_str().unwrap().to_string()).collect()
    };
    let (mine, theirs) = (triggers(parent), triggers(part));
    let big = |set: &BTreeSet<String>| set.iter().filter(|t| t.contains("big")).count();
    assert_eq!((big(&mine), big(&theirs)), (1, 1), "one large snapshot each: {parent} {part}");
    assert_eq!(mine.len() + theirs.len(), 3, "{parent} {part}");
    // What the polls said now (2 objects) replaces what the record held: the activation's own
    // polls at once, the fanned-out one's when the next tick reads its result.
    w.poll();
    assert!(record(&w)["sizes"].as_object().is_none_or(|m| m.is_empty()), "{}", record(&w));
    assert_eq!(w.ticks().last().unwrap()["children"], json!([]));
}
