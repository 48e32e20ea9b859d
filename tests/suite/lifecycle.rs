//! Feed lifecycle through the emulator with the test-only `listing` source: CREATE makes the
//! helpers and is idempotent and transactional, DELETE is idempotent, READ hides secrets,
//! ownership is checked, PAUSE/UNPAUSE delete and restore the alarm, READ shows the alarm's health
//! and UPDATE/UNPAUSE repair a disabled alarm, bad schedules make nothing.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use feed_tests::world::{World, USER};
use ow_emulator::FaultRule;
use owfeed::openwhisk::QualifiedName;

const SECRET: &str = "s3cr3t-t0ken-value";

fn world() -> World {
    World::start(Path::new(env!("CARGO_BIN_EXE_test-feed")), Path::new(env!("CARGO_BIN_EXE_test-poll")))
}

fn write_listing(w: &World, entries: &[(&str, &str)]) -> PathBuf {
    let path = w.dir.path().join("listing.json");
    let items: Vec<Value> = entries.iter().map(|(k, v)| json!({"key": k, "version": v})).collect();
    std::fs::write(&path, serde_json::to_vec(&items).unwrap()).unwrap();
    path
}

fn params(w: &World, extra: Value) -> Value {
    let mut p = json!({
        "listing": w.dir.path().join("listing.json"),
        "stateDir": w.dir.path().join("state"),
        "token": SECRET,
    });
    if let (Value::Object(p), Value::Object(extra)) = (&mut p, extra) {
        p.extend(extra);
    }
    p
}

fn state_files(w: &World) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(w.dir.path().join("state"))
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    names.sort();
    names
}

const HELPERS: [&str; 4] = ["package:t.owfeed", "rule:t.owfeed-rule", "trigger:t", "trigger:t.owfeed-alarm"];

#[test]
fn create_makes_alarm_trigger_rule_and_stored_config() {
    let w = world();
    write_listing(&w, &[("a", "1")]);
    let out = w.create_trigger("t", params(&w, json!({"interval": 5}))).unwrap();
    assert_eq!(out["status"], "created", "{out}");
    assert_eq!(w.user_entities().unwrap(), HELPERS);
    assert_eq!(state_files(&w), ["guest%2Ft.state"]);
    // The helper trigger is registered with the alarms feed and fires the poll.
    let fired = w.emu.fire_alarms();
    assert_eq!(fired.len(), 1, "{fired:?}");
    assert!(fired[0].0.ends_with("/t.owfeed-alarm"), "{fired:?}");
    assert!(w.emu.wait_idle(std::time::Duration::from_secs(60)));
    let polls = w.poll_results();
    assert_eq!(polls.len(), 1, "{polls:?}");
    assert_eq!(polls[0]["status"], "ok", "{polls:?}");
    assert_eq!(state_files(&w), ["guest%2Ft.lease", "guest%2Ft.state"]);
    // The config (with its secret) lives in the user's namespace, not in the shared package.
    let config = w.user.get_package(&QualifiedName::new(USER, None, "t.owfeed")).unwrap();
    assert!(config.to_string().contains(SECRET));
    let shared = w.system.get_package(&QualifiedName::new("whisk.system", None, "owfeed")).unwrap();
    assert!(!shared.to_string().contains(SECRET));
}

#[test]
fn create_twice_is_idempotent() {
    let w = world();
    write_listing(&w, &[("a", "1")]);
    w.create_trigger("t", params(&w, json!({}))).unwrap();
    let again = w.feed("CREATE", "t", params(&w, json!({}))).unwrap();
    assert_eq!(again["status"], "created");
    assert_eq!(w.user_entities().unwrap(), HELPERS);
    assert_eq!(w.emu.fire_alarms().len(), 1, "exactly one alarm after two CREATEs");
}

#[test]
fn create_that_fails_midway_leaves_nothing_behind() {
    let w = world();
    write_listing(&w, &[("a", "1")]);
    // The last step, the rule, fails: everything made before it must be undone.
    w.emu.inject_fault(FaultRule {
        method: Some("PUT".into()),
        path_contains: "/rules/".into(),
        status: 500,
        body: None,
        count: 1,
        delay_ms: 0,
    });
    // wskdeploy deletes the trigger without DELETE: the feed's own undo must leave nothing.
    let err = w.deploy_trigger("t", params(&w, json!({}))).unwrap_err();
    assert!(err.contains("creating the rule"), "{err}");
    assert_eq!(w.user_entities().unwrap(), Vec::<String>::new());
    assert_eq!(state_files(&w), Vec::<String>::new());
    assert!(w.emu.fire_alarms().is_empty(), "no alarm may be left");
}

#[test]
fn probe_failure_creates_nothing() {
    let w = world();
    write_listing(&w, &[("a", "1")]);
    let err = w.deploy_trigger("t", params(&w, json!({"failProbe": true}))).unwrap_err();
    assert!(err.contains("probe refused"), "{err}");
    assert_eq!(w.user_entities().unwrap(), Vec::<String>::new());
}

#[test]
fn delete_after_nothing_succeeds() {
    let w = world();
    // No trigger at all, then a trigger the feed never set up.
    assert_eq!(w.feed("DELETE", "ghost", json!({})).unwrap()["status"], "deleted");
    w.user.put_trigger(&QualifiedName::new("_", None, "bare"), &json!({}), false).unwrap();
    assert_eq!(w.feed("DELETE", "bare", json!({})).unwrap()["status"], "deleted");
    // A full feed deleted twice.
    write_listing(&w, &[("a", "1")]);
    w.create_trigger("t", params(&w, json!({}))).unwrap();
    w.delete_trigger("t").unwrap();
    assert_eq!(w.feed("DELETE", "t", json!({})).unwrap()["status"], "deleted");
    assert_eq!(w.user_entities().unwrap(), ["trigger:bare"]);
    assert_eq!(state_files(&w), Vec::<String>::new());
    assert!(w.emu.fire_alarms().is_empty());
}

#[test]
fn read_shows_config_and_status_but_never_a_secret() {
    let w = world();
    write_listing(&w, &[("a", "1"), ("b", "1")]);
    w.create_trigger("t", params(&w, json!({"interval": 2}))).unwrap();
    w.poll();
    let read = w.feed("READ", "t", json!({})).unwrap();
    let text = read.to_string();
    assert!(!text.contains(SECRET), "{text}");
    assert!(!text.contains(&w.user_key), "{text}");
    assert_eq!(read["config"]["token"], "[redacted]");
    assert_eq!(read["config"]["interval"], 2);
    assert_eq!(read["status"]["active"], true);
    assert_eq!(read["status"]["objectsTracked"], 2);
    assert_eq!(read["status"]["eventsPending"], 0);
    assert_eq!(read["status"]["lastOutcome"], "ok");
    assert!(read["status"]["nextPoll"].is_string(), "{read}");
}

#[test]
fn feed_on_another_namespaces_trigger_is_refused() {
    let w = world();
    write_listing(&w, &[("a", "1")]);
    let other_key = w.emu.key("other").unwrap();
    let other = owfeed::openwhisk::Client::new(&w.emu.url(), owfeed::openwhisk::AuthKey::parse(&other_key).unwrap());
    other.put_trigger(&QualifiedName::new("other", None, "theirs"), &json!({}), false).unwrap();
    let mut p = params(&w, json!({}));
    p["lifecycleEvent"] = json!("CREATE");
    p["triggerName"] = json!("/other/theirs");
    p["authKey"] = json!(w.user_key);
    let err = w.user.invoke(&w.feed_name(), &p, true).unwrap_err();
    assert!(err.to_string().contains("not allowed") || err.to_string().contains("does not exist"), "{err}");
    assert_eq!(w.user_entities().unwrap(), Vec::<String>::new());
}

#[test]
fn pause_deletes_the_alarm_and_unpause_restores_it_both_idempotent() {
    let w = world();
    write_listing(&w, &[("a", "1")]);
    w.create_trigger("t", params(&w, json!({}))).unwrap();
    let rule = QualifiedName::new(USER, None, "t.owfeed-rule");
    for _ in 0..2 {
        assert_eq!(w.feed("PAUSE", "t", json!({})).unwrap()["status"], "paused");
        // No alarm is left to spend the namespace's fire quota; trigger, helpers and config stay.
        assert!(w.emu.fire_alarms().is_empty(), "a paused feed has no alarm");
        assert_eq!(w.user.get_rule(&rule).unwrap()["status"], "inactive");
        assert_eq!(w.user_entities().unwrap(), HELPERS);
        let status = w.feed("READ", "t", json!({})).unwrap()["status"].clone();
        assert_eq!((status["paused"].clone(), status["active"].clone()), (json!(true), json!(false)), "{status}");
    }
    for _ in 0..2 {
        assert_eq!(w.feed("UNPAUSE", "t", json!({})).unwrap()["status"], "active");
        assert_eq!(w.user.get_rule(&rule).unwrap()["status"], "active");
        let status = w.feed("READ", "t", json!({})).unwrap()["status"].clone();
        assert_eq!(status["alarm"]["active"], true, "{status}");
    }
    let fired = w.emu.fire_alarms();
    assert_eq!(fired.len(), 1, "exactly one alarm after two UNPAUSEs: {fired:?}");
}

#[test]
fn read_shows_a_disabled_alarm_and_update_or_unpause_re_creates_it() {
    let w = world();
    write_listing(&w, &[("a", "1")]);
    w.create_trigger("t", params(&w, json!({}))).unwrap();
    // The alarms provider disables an alarm for good on a 4xx other than 408/409/429
    // (openwhisk-package-alarms provider/lib/utils.js:130-139, 176-178).
    let disable = || {
        w.emu.inject_fault(FaultRule {
            method: Some("POST".into()),
            path_contains: "/triggers/t.owfeed-alarm".into(),
            status: 403,
            body: None,
            count: 1,
            delay_ms: 0,
        });
        assert_eq!(w.emu.fire_alarms().into_iter().map(|(_, s)| s).collect::<Vec<_>>(), [403]);
        assert!(w.emu.fire_alarms().is_empty(), "the provider disabled the alarm");
    };
    for repair in ["UPDATE", "UNPAUSE"] {
        disable();
        let status = w.feed("READ", "t", json!({})).unwrap()["status"].clone();
        assert_eq!(status["active"], false, "{status}");
        assert_eq!(status["alarm"]["active"], false, "{status}");
        assert_eq!(status["alarm"]["reason"]["statusCode"], 403, "{status}");
        assert!(status["problem"].as_str().unwrap().contains("UPDATE"), "{status}");
        let params = if repair == "UPDATE" { json!({"interval": 1}) } else { json!({}) };
        let out = w.feed(repair, "t", params).unwrap();
        if repair == "UPDATE" {
            assert_eq!(out["alarm"], "re-created", "{out}");
        }
        let status = w.feed("READ", "t", json!({})).unwrap()["status"].clone();
        assert_eq!((status["active"].clone(), status["alarm"]["active"].clone()), (json!(true), json!(true)));
        assert!(status.get("problem").is_none(), "{status}");
        assert_eq!(w.emu.fire_alarms().len(), 1, "{repair} re-created the alarm");
        assert!(w.emu.wait_idle(std::time::Duration::from_secs(60)));
    }
}

#[test]
fn bad_schedule_is_rejected_before_anything_is_created() {
    let w = world();
    write_listing(&w, &[("a", "1")]);
    for (bad, name) in [
        (json!({"cron": "61 * * * *"}), "cron"),
        (json!({"interval": 0}), "interval"),
        (json!({"interval": "often"}), "interval"),
    ] {
        let err = w.create_trigger("t", params(&w, bad)).unwrap_err();
        assert!(err.contains(&format!("parameter '{name}'")), "{err}");
        assert_eq!(w.user_entities().unwrap(), Vec::<String>::new());
        assert_eq!(state_files(&w), Vec::<String>::new());
    }
}

/// The alarms provider numbers days of the week from Sunday = 0 (kelektiv/node-cron v1.8.2
/// `lib/cron.js:51`, run by apache/openwhisk-package-alarms `provider/lib/cronAlarm.js:47`):
/// `0 9 * * 0` is accepted, reaches the alarm as written, fires on Sundays, and READ's
/// nextPoll is that Sunday.
#[test]
fn a_sunday_cron_reaches_the_alarm_as_written_and_next_poll_is_a_sunday() {
    use chrono::{DateTime, Datelike, Timelike, Weekday};
    let w = world();
    write_listing(&w, &[("a", "1")]);
    w.create_trigger("t", params(&w, json!({"cron": "0 9 * * 0"}))).unwrap();
    let alarm = format!("/{USER}/t.owfeed-alarm");
    let control = feed_tests::emulator_support::Api::new(&w.emu.url(), None);
    assert_eq!(control.get("/__emulator/alarms").json()[&alarm]["config"]["cron"], "0 9 * * 0");
    let now = chrono::Utc::now().timestamp_millis();
    let fires = w.emu.cron_fires_after(&alarm, now, 3);
    assert_eq!(fires.len(), 3);
    for f in &fires {
        let t = DateTime::from_timestamp_millis(*f).unwrap();
        assert_eq!((t.weekday(), t.hour(), t.minute()), (Weekday::Sun, 9, 0), "{t}");
    }
    w.poll();
    let read = w.feed("READ", "t", json!({})).unwrap();
    let next = DateTime::parse_from_rfc3339(read["status"]["nextPoll"].as_str().unwrap()).unwrap();
    assert_eq!(next.timestamp_millis(), fires[0], "{read}");
}

#[test]
fn a_cron_the_alarms_provider_would_not_run_is_one_line_naming_the_parameter() {
    let w = world();
    write_listing(&w, &[("a", "1")]);
    for (bad, says) in [
        ("0 9 * * 7", "day-of-week values from 0 to 6 (Sunday is 0; the alarms provider does not accept 7)"),
        ("0 0 1 12 *", "the alarms provider numbers months from 0"),
        ("30 * * * * *", "a seconds field of 0"),
        ("0 9 * * monday", "not 'day'"),
    ] {
        let err = w.create_trigger("t", params(&w, json!({ "cron": bad }))).unwrap_err();
        assert!(err.starts_with("parameter 'cron': expected ") && err.contains(says), "{err}");
        assert!(!err.contains('\n'), "{err}");
        assert_eq!(w.user_entities().unwrap(), Vec::<String>::new());
    }
}

#[test]
fn unknown_lifecycle_event_is_an_error() {
    let w = world();
    w.user.put_trigger(&QualifiedName::new("_", None, "t"), &json!({}), false).unwrap();
    let err = w.feed("RESTART", "t", json!({})).unwrap_err();
    assert!(err.contains("parameter 'lifecycleEvent'") && err.contains("UNPAUSE"), "{err}");
}

#[test]
fn polls_fire_created_updated_deleted_after_a_silent_baseline() {
    let w = world();
    write_listing(&w, &[("a", "1"), ("b", "1"), ("c", "1")]);
    w.create_trigger("t", params(&w, json!({}))).unwrap();
    w.record_events("t", Path::new(env!("CARGO_BIN_EXE_echo-action")));
    w.poll();
    assert_eq!(w.events(), Vec::<Value>::new(), "the baseline must not fire");
    write_listing(&w, &[("b", "2"), ("c", "1"), ("d", "1")]);
    w.poll();
    let mut got: Vec<(String, String)> = w
        .events()
        .iter()
        .map(|e| (e["type"].as_str().unwrap_or("?").to_string(), e["subject"].as_str().unwrap_or("?").to_string()))
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            ("test.listing.entry.created".to_string(), "d".to_string()),
            ("test.listing.entry.deleted".to_string(), "a".to_string()),
            ("test.listing.entry.updated".to_string(), "b".to_string()),
        ]
    );
    // Nothing changed since: the next poll fires nothing.
    w.poll();
    assert_eq!(w.events().len(), 3);
}

#[test]
fn a_burst_larger_than_max_changes_per_poll_is_spread_over_polls_without_loss() {
    let w = world();
    write_listing(&w, &[("a", "1")]);
    w.create_trigger("t", params(&w, json!({"maxChangesPerPoll": 3}))).unwrap();
    w.record_events("t", Path::new(env!("CARGO_BIN_EXE_echo-action")));
    let burst: Vec<(String, String)> = (0..7).map(|i| (format!("b{i}"), "1".to_string())).collect();
    let mut listing: Vec<(&str, &str)> = vec![("a", "1")];
    listing.extend(burst.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    write_listing(&w, &listing);
    let mut fired_per_poll = Vec::new();
    for _ in 0..4 {
        let before = w.events().len();
        w.poll();
        fired_per_poll.push(w.events().len() - before);
    }
    // Pages of 2: [a b0] [b1 b2] stop at 3 changes; the next pass resumes after b2 and
    // [b3 b4] [b5 b6] reach 4; then nothing is left.
    assert_eq!(fired_per_poll, [3, 4, 0, 0], "events per poll");
    let want: Vec<(String, String)> = (0..7).map(|i| ("created".to_string(), format!("b{i}"))).collect();
    assert_eq!(kinds_and_subjects(&w.events()), want, "each change once, none twice");
}

/// (kind, subject) of each event, sorted, after checking each has an id of its own: every
/// event counts, so a duplicate or a wrong kind fails a comparison with the expected list.
#[track_caller]
fn kinds_and_subjects(events: &[Value]) -> Vec<(String, String)> {
    let mut ids: Vec<&str> = events.iter().map(|e| e["id"].as_str().expect("event id")).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), events.len(), "each event its own id: {events:?}");
    feed_tests::rigs::kinds_and_subjects(events)
}

/// Start times (ms) of the fires of the user's trigger `t`.
fn fire_times(w: &World) -> Vec<u64> {
    w.emu.activations(USER).iter().filter(|a| a["name"] == "t").filter_map(|a| a["start"].as_u64()).collect()
}

#[test]
fn fires_are_paced_per_calendar_minute_and_the_rest_waits_in_the_outbox() {
    let w = world();
    write_listing(&w, &[("a", "1")]);
    w.create_trigger("t", params(&w, json!({"maxFiresPerMinute": 2}))).unwrap();
    w.record_events("t", Path::new(env!("CARGO_BIN_EXE_echo-action")));
    let listing: Vec<(String, &str)> = (0..7).map(|i| (format!("b{i}"), "1")).collect();
    write_listing(&w, &listing.iter().map(|(k, v)| (k.as_str(), *v)).collect::<Vec<_>>());
    // A 5 s poll cannot wait for the next minute: it stops after the minute's fires.
    w.set_poll_timeout(5_000);
    w.poll();
    let times = fire_times(&w);
    let mut per_minute = std::collections::BTreeMap::new();
    for t in &times {
        *per_minute.entry(t / 60_000).or_insert(0) += 1;
    }
    assert!(per_minute.values().all(|n| *n <= 2), "more than 2 fires in a calendar minute: {per_minute:?}");
    // (a minute may roll over during the poll: then up to 2 more)
    assert!((2..=4).contains(&times.len()), "{times:?}");
    let read = w.feed("READ", "t", json!({})).unwrap();
    assert_eq!(read["status"]["eventsPending"], 8 - times.len(), "{read}");
    assert_eq!(w.poll_results().last().unwrap()["status"], "partial");
}

#[test]
fn a_backlog_larger_than_the_fire_budget_is_sent_in_bigger_batches_with_stable_ids() {
    let w = world();
    write_listing(&w, &[("a", "1")]);
    w.create_trigger("t", params(&w, json!({"maxFiresPerMinute": 2, "batch": 2}))).unwrap();
    w.record_events("t", Path::new(env!("CARGO_BIN_EXE_echo-action")));
    let listing: Vec<(String, &str)> = (0..8).map(|i| (format!("b{i}"), "1")).collect();
    write_listing(&w, &listing.iter().map(|(k, v)| (k.as_str(), *v)).collect::<Vec<_>>());
    w.set_poll_timeout(5_000);
    w.poll();
    // 9 changes (a deleted, 8 created) and 2 fires allowed: batches of 5 instead of 2.
    assert!(fire_times(&w).len() <= 2, "{:?}", fire_times(&w));
    let events: Vec<Value> =
        w.events().into_iter().flat_map(|b| b["events"].as_array().cloned().unwrap_or_default()).collect();
    let mut want: Vec<(String, String)> = (0..8).map(|i| ("created".to_string(), format!("b{i}"))).collect();
    want.push(("deleted".to_string(), "a".to_string()));
    assert_eq!(kinds_and_subjects(&events), want, "each event once, with its own id");
    assert_eq!(w.feed("READ", "t", json!({})).unwrap()["status"]["eventsPending"], 0);
}

#[test]
fn max_fires_per_minute_is_validated() {
    let w = world();
    write_listing(&w, &[("a", "1")]);
    let err = w.create_trigger("t", params(&w, json!({"maxFiresPerMinute": 0}))).unwrap_err();
    assert!(err.contains("parameter 'maxFiresPerMinute'"), "{err}");
    assert_eq!(w.user_entities().unwrap(), Vec::<String>::new());
}

#[test]
fn every_lifecycle_event_works_when_shared_packages_are_execute_only() {
    // `shared-packages-execute-only=true` refuses GET of the config binding (a binding of our
    // shared package) with 403: READ, UPDATE, PAUSE and DELETE must still work.
    let config = ow_emulator::Config {
        shared_packages_execute_only: true,
        ..ow_emulator::Config::with_namespaces(&[USER, "other"])
    };
    let w = World::start_with(
        config,
        Path::new(env!("CARGO_BIN_EXE_test-feed")),
        Path::new(env!("CARGO_BIN_EXE_test-poll")),
    );
    write_listing(&w, &[("a", "1")]);
    w.create_trigger("t", params(&w, json!({"interval": 2}))).unwrap();
    let binding = QualifiedName::new(USER, None, "t.owfeed");
    let err = w.user.get_package(&binding).unwrap_err().to_string();
    assert!(err.contains("binding of a shared package"), "the emulator refuses the GET: {err}");
    w.record_events("t", Path::new(env!("CARGO_BIN_EXE_echo-action")));
    write_listing(&w, &[("a", "1"), ("b", "1")]);
    w.poll();
    assert_eq!(w.events().len(), 1);
    let read = w.feed("READ", "t", json!({})).unwrap();
    assert_eq!((read["config"]["interval"].clone(), read["config"]["token"].clone()), (json!(2), json!("[redacted]")));
    assert_eq!(w.feed("UPDATE", "t", json!({"interval": 3})).unwrap()["status"], "updated");
    assert_eq!(w.feed("READ", "t", json!({})).unwrap()["config"]["interval"], 3);
    assert_eq!(w.feed("PAUSE", "t", json!({})).unwrap()["status"], "paused");
    assert_eq!(w.feed("UNPAUSE", "t", json!({})).unwrap()["status"], "active");
    assert_eq!(w.delete_trigger("t").unwrap()["status"], "deleted");
    assert_eq!(w.user_entities().unwrap(), ["rule:t-recorder"]);
    assert_eq!(state_files(&w), Vec::<String>::new());
}

/// The keys in `bucket` on moto.
fn bucket_keys(moto: &feed_tests::moto::Moto, bucket: &str) -> Vec<String> {
    let page = moto.client().list_objects_v2(bucket, &owfeed_s3::ListRequest::default()).expect("list bucket");
    page.objects.into_iter().map(|o| o.key).collect()
}

#[test]
fn a_source_without_a_store_keeps_its_state_in_the_bucket_the_user_names() {
    let moto = feed_tests::moto::Moto::shared().expect("moto server");
    let bucket = feed_tests::moto::Moto::unique_bucket("named-state");
    moto.create_bucket(&bucket).unwrap();
    let w = world();
    write_listing(&w, &[("a", "1")]);
    let no_store = |extra: Value| {
        let mut p = params(&w, extra);
        p.as_object_mut().unwrap().remove("stateDir");
        p
    };
    // Without a named store CREATE says which parameter is missing and makes nothing.
    let err = w.create_trigger("t", no_store(json!({}))).unwrap_err();
    assert!(err.contains("parameter 'stateBucket'"), "{err}");
    assert_eq!(w.user_entities().unwrap(), Vec::<String>::new());
    let store = json!({
        "stateBucket": bucket,
        "endpoint": moto.endpoint(),
        "accessKeyId": moto.access_key_id(),
        "secretAccessKey": moto.secret_access_key(),
    });
    w.create_trigger("t", no_store(store)).unwrap();
    assert_eq!(bucket_keys(moto, &bucket), [".owfeed/guest/t.state"]);
    w.record_events("t", Path::new(env!("CARGO_BIN_EXE_echo-action")));
    write_listing(&w, &[("a", "2"), ("b", "1")]);
    w.poll();
    let mut got: Vec<String> = w.events().iter().map(|e| format!("{} {}", e["type"], e["subject"])).collect();
    got.sort();
    assert_eq!(got, ["\"test.listing.entry.created\" \"b\"", "\"test.listing.entry.updated\" \"a\""]);
    let read = w.feed("READ", "t", json!({})).unwrap();
    assert_eq!(read["config"]["secretAccessKey"], "[redacted]", "{read}");
    assert!(!read.to_string().contains(moto.secret_access_key()), "{read}");
    assert_eq!(read["status"]["eventsFired"], 2, "{read}");
    w.delete_trigger("t").unwrap();
    assert_eq!(bucket_keys(moto, &bucket), Vec::<String>::new());
}
