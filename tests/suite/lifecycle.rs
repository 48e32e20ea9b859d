//! Feed lifecycle through the emulator with the test-only `listing` source: CREATE registers the
//! trigger with the namespace scheduler (made once) and is idempotent and transactional, DELETE
//! is idempotent, READ hides secrets, ownership is checked, PAUSE/UNPAUSE touch only their
//! trigger, READ shows the scheduler's health and READ/UPDATE/CREATE repair a disabled alarm,
//! an idle scheduler removes itself, bad schedules make nothing.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use feed_tests::world::{World, SCHEDULER_RULE, SCHEDULER_TICK, USER};
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

/// The namespace scheduler's entities (one per namespace and package).
const SCHEDULER: [&str; 3] =
    ["package:owfeed.scheduler", "rule:owfeed.scheduler-rule", "trigger:owfeed.scheduler-tick"];
/// What one feed trigger `t` leaves in the namespace: its config binding, and the scheduler.
const HELPERS: [&str; 5] = [
    "package:owfeed.scheduler",
    "package:t.owfeed",
    "rule:owfeed.scheduler-rule",
    "trigger:owfeed.scheduler-tick",
    "trigger:t",
];

fn scheduler_alarm() -> String {
    format!("/{USER}/{SCHEDULER_TICK}")
}

/// Fires the scheduler's alarm as the alarms provider does at the start of a minute (its
/// result), and waits for the tick.
fn tick(w: &World) -> Vec<(String, u16)> {
    let fired = w.emu.fire_alarms();
    assert!(w.emu.wait_idle(std::time::Duration::from_secs(60)));
    fired
}

#[test]
fn create_registers_the_trigger_with_the_namespace_scheduler() {
    let w = world();
    write_listing(&w, &[("a", "1")]);
    let out = w.create_trigger("t", params(&w, json!({}))).unwrap();
    assert_eq!(out["status"], "created", "{out}");
    assert_eq!(out["scheduler"]["made"], true, "{out}");
    assert_eq!(out["helpers"]["scheduler"]["alarmTrigger"], scheduler_alarm(), "{out}");
    assert_eq!(w.user_entities().unwrap(), HELPERS);
    assert_eq!(state_files(&w), ["guest%2Ft.state"]);
    // One alarm, every minute, drives the namespace's scheduler; its tick polls the trigger.
    let control = feed_tests::emulator_support::Api::new(&w.emu.url(), None);
    assert_eq!(control.get("/__emulator/alarms").json()[&scheduler_alarm()]["config"]["cron"], "* * * * *");
    let fired = tick(&w);
    assert_eq!(fired, [(scheduler_alarm(), 202)]);
    let polls = w.poll_results();
    assert_eq!(polls.len(), 1, "{polls:?}");
    assert_eq!(
        (polls[0]["status"].clone(), polls[0]["trigger"].clone()),
        (json!("ok"), json!("/guest/t")),
        "{polls:?}"
    );
    assert_eq!(state_files(&w), ["guest%2Ft.lease", "guest%2Ft.state"]);
    // The registration is an annotation of the config binding; the config (with its secret)
    // lives in the user's namespace, not in the shared package.
    let config = w.user.get_package(&QualifiedName::new(USER, None, "t.owfeed")).unwrap();
    assert!(config.to_string().contains(SECRET));
    let registration = config["annotations"].as_array().unwrap().iter().find(|a| a["key"] == "owfeedSchedule");
    assert_eq!(registration.unwrap()["value"]["schedule"], json!({"interval": 1}), "{config}");
    let shared = w.system.get_package(&QualifiedName::new("whisk.system", None, "owfeed")).unwrap();
    assert!(!shared.to_string().contains(SECRET));
    // A second trigger joins the same scheduler.
    w.create_trigger("u", params(&w, json!({}))).unwrap();
    assert_eq!(w.emu.alarms_of(USER), [scheduler_alarm()], "still one alarm for the namespace");
    tick(&w);
    let mut polled: Vec<String> = w.poll_results()[1..].iter().map(|p| p["trigger"].to_string()).collect();
    polled.sort();
    assert_eq!(polled, ["\"/guest/t\"", "\"/guest/u\""]);
}

#[test]
fn create_twice_is_idempotent() {
    let w = world();
    write_listing(&w, &[("a", "1")]);
    w.create_trigger("t", params(&w, json!({}))).unwrap();
    let again = w.feed("CREATE", "t", params(&w, json!({}))).unwrap();
    assert_eq!(again["status"], "created");
    assert_eq!(again["scheduler"]["made"], false, "{again}");
    assert_eq!(w.user_entities().unwrap(), HELPERS);
    assert_eq!(w.emu.fire_alarms().len(), 1, "exactly one alarm after two CREATEs");
}

#[test]
fn create_that_fails_midway_leaves_nothing_behind() {
    let w = world();
    write_listing(&w, &[("a", "1")]);
    // The last step, the scheduler's rule, fails: everything made before it must be undone,
    // the scheduler this CREATE made included.
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
    // A failed CREATE next to a working trigger leaves that trigger's scheduler alone.
    w.create_trigger("u", params(&w, json!({}))).unwrap();
    w.emu.inject_fault(FaultRule {
        method: Some("PUT".into()),
        path_contains: "/packages/t.owfeed".into(),
        status: 500,
        body: None,
        count: 2,
        delay_ms: 0,
    });
    w.deploy_trigger("t", params(&w, json!({}))).unwrap_err();
    let mut expected: Vec<&str> = SCHEDULER.to_vec();
    expected.extend(["package:u.owfeed", "trigger:u"]);
    expected.sort();
    assert_eq!(w.user_entities().unwrap(), expected);
    assert_eq!(w.emu.fire_alarms().len(), 1);
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
fn delete_after_nothing_succeeds_and_an_idle_scheduler_removes_itself() {
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
    assert_eq!(state_files(&w), Vec::<String>::new());
    // DELETE leaves the scheduler (a CREATE may be using it meanwhile); its ticks remove it
    // once they have seen no trigger twice.
    let mut expected: Vec<&str> = SCHEDULER.to_vec();
    expected.push("trigger:bare");
    expected.sort();
    assert_eq!(w.user_entities().unwrap(), expected);
    assert_eq!(tick(&w).len(), 1);
    assert_eq!(w.user_entities().unwrap(), expected, "one idle tick is not enough");
    assert_eq!(tick(&w).len(), 1);
    assert_eq!(w.user_entities().unwrap(), ["trigger:bare"]);
    assert!(w.emu.fire_alarms().is_empty());
    let last = w.emu.activations(USER).into_iter().rfind(|a| a["name"] == "poll").unwrap();
    assert_eq!(last["response"]["result"]["removed"], true, "{last}");
    // The next CREATE makes it again.
    w.create_trigger("t", params(&w, json!({}))).unwrap();
    assert_eq!(w.emu.alarms_of(USER), [scheduler_alarm()]);
}

/// The race the design has to win: the tick removing an idle scheduler and a CREATE that
/// registers a trigger while the removal is under way. The CREATE finds the scheduler still
/// there (nothing to make), the tick then removes it: unless the tick lists the registry again
/// after removing and makes it anew, the new trigger is never polled.
#[test]
fn a_create_while_the_idle_scheduler_removes_itself_leaves_it_running() {
    let w = world();
    write_listing(&w, &[("a", "1")]);
    w.create_trigger("t", params(&w, json!({}))).unwrap();
    w.delete_trigger("t").unwrap();
    assert_eq!(tick(&w).len(), 1, "the first idle tick");
    // The second idle tick removes the scheduler, its first step held for 5 s by the controller.
    let hold = std::time::Duration::from_millis(5_000);
    w.emu.inject_fault(FaultRule {
        method: Some("DELETE".into()),
        path_contains: format!("/rules/{SCHEDULER_RULE}"),
        status: 200,
        body: None,
        count: 1,
        delay_ms: hold.as_millis() as u64,
    });
    assert_eq!(w.emu.fire_alarms().len(), 1);
    let waited = std::time::Instant::now();
    while !w.emu.faults_left().is_empty() {
        assert!(waited.elapsed() < std::time::Duration::from_secs(30), "the tick never began removing");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let held = std::time::Instant::now();
    let out = w.create_trigger("u", params(&w, json!({}))).unwrap();
    assert!(held.elapsed() < hold, "the CREATE ended after the removal went on: the race was not run");
    assert_eq!(out["scheduler"]["made"], false, "the CREATE found the scheduler in place: {out}");
    assert!(w.emu.wait_idle(std::time::Duration::from_secs(60)));
    let removing = w.ticks().pop().unwrap();
    assert_eq!(removing.get("removed"), None, "{removing}");
    // The scheduler is back and polls u.
    let mut expected: Vec<&str> = SCHEDULER.to_vec();
    expected.extend(["package:u.owfeed", "trigger:u"]);
    expected.sort();
    assert_eq!(w.user_entities().unwrap(), expected);
    assert_eq!(w.emu.alarms_of(USER), [scheduler_alarm()]);
    let status = w.feed("READ", "u", json!({})).unwrap()["status"].clone();
    assert_eq!((status["active"].clone(), status.get("problem")), (json!(true), None), "{status}");
    tick(&w);
    assert_eq!(last_tick_polled(&w), ["/guest/u"]);
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

/// The triggers the last tick polled, sorted.
fn last_tick_polled(w: &World) -> Vec<String> {
    let ticks = w.ticks();
    let mut polled: Vec<String> = ticks.last().unwrap()["polls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["trigger"].as_str().unwrap().to_string())
        .collect();
    polled.sort();
    polled
}

#[test]
fn pause_and_unpause_touch_only_their_trigger_and_are_idempotent() {
    let w = world();
    write_listing(&w, &[("a", "1")]);
    w.create_trigger("t", params(&w, json!({}))).unwrap();
    w.create_trigger("u", params(&w, json!({}))).unwrap();
    let entities = w.user_entities().unwrap();
    for _ in 0..2 {
        assert_eq!(w.feed("PAUSE", "t", json!({})).unwrap()["status"], "paused");
        // The paused trigger is not polled, the other one is; nothing is removed.
        tick(&w);
        assert_eq!(last_tick_polled(&w), ["/guest/u"]);
        assert_eq!(w.user_entities().unwrap(), entities);
        let status = w.feed("READ", "t", json!({})).unwrap()["status"].clone();
        assert_eq!((status["paused"].clone(), status["active"].clone()), (json!(true), json!(false)), "{status}");
        let other = w.feed("READ", "u", json!({})).unwrap()["status"].clone();
        assert_eq!((other["paused"].clone(), other["active"].clone()), (json!(false), json!(true)), "{other}");
    }
    for _ in 0..2 {
        assert_eq!(w.feed("UNPAUSE", "t", json!({})).unwrap()["status"], "active");
        let status = w.feed("READ", "t", json!({})).unwrap()["status"].clone();
        assert_eq!((status["active"].clone(), status["alarm"]["active"].clone()), (json!(true), json!(true)));
    }
    tick(&w);
    assert_eq!(last_tick_polled(&w), ["/guest/t", "/guest/u"]);
    assert_eq!(w.emu.fire_alarms().len(), 1, "exactly one alarm after two UNPAUSEs");
    assert!(w.emu.wait_idle(std::time::Duration::from_secs(60)));
    // Every trigger paused: the scheduler spends nothing and goes; UNPAUSE brings it back.
    w.feed("PAUSE", "t", json!({})).unwrap();
    w.feed("PAUSE", "u", json!({})).unwrap();
    tick(&w);
    tick(&w);
    assert!(w.emu.fire_alarms().is_empty(), "no scheduler while every feed is paused");
    assert_eq!(w.feed("READ", "t", json!({})).unwrap()["status"]["paused"], true);
    w.feed("UNPAUSE", "u", json!({})).unwrap();
    tick(&w);
    assert_eq!(last_tick_polled(&w), ["/guest/u"]);
}

#[test]
fn a_scheduler_alarm_the_provider_disabled_is_repaired_by_read_update_or_create() {
    let w = world();
    write_listing(&w, &[("a", "1")]);
    w.create_trigger("t", params(&w, json!({}))).unwrap();
    // The alarms provider disables an alarm for good on a 4xx other than 408/409/429
    // (openwhisk-package-alarms provider/lib/utils.js:130-139, 176-178).
    let disable = || {
        w.emu.inject_fault(FaultRule {
            method: Some("POST".into()),
            path_contains: format!("/triggers/{SCHEDULER_TICK}"),
            status: 403,
            body: None,
            count: 1,
            delay_ms: 0,
        });
        assert_eq!(w.emu.fire_alarms().into_iter().map(|(_, s)| s).collect::<Vec<_>>(), [403]);
        assert!(w.emu.fire_alarms().is_empty(), "the provider disabled the alarm");
    };
    for (repair, trigger) in [("READ", "t"), ("UPDATE", "t"), ("CREATE", "v")] {
        disable();
        let out = match repair {
            "CREATE" => w.create_trigger(trigger, params(&w, json!({}))).unwrap(),
            "UPDATE" => w.feed(repair, trigger, json!({"interval": 1})).unwrap(),
            _ => w.feed(repair, trigger, json!({})).unwrap(),
        };
        let said = match repair {
            "READ" => out["status"]["scheduler"]["repaired"].to_string(),
            "UPDATE" => out["alarm"].to_string(),
            _ => out["scheduler"]["repaired"].to_string(),
        };
        assert!(said.contains("403") || said.contains("re-created"), "{repair} says it repaired the alarm: {out}");
        let status = w.feed("READ", "t", json!({})).unwrap()["status"].clone();
        assert_eq!((status["active"].clone(), status["alarm"]["active"].clone()), (json!(true), json!(true)));
        assert!(status.get("problem").is_none(), "{status}");
        assert_eq!(w.emu.fire_alarms().len(), 1, "{repair} re-created the alarm");
        assert!(w.emu.wait_idle(std::time::Duration::from_secs(60)));
    }
    // A paused trigger's READ does not repair (it needs no polls), but says what it sees.
    disable();
    w.feed("PAUSE", "t", json!({})).unwrap();
    w.feed("PAUSE", "v", json!({})).unwrap();
    let status = w.feed("READ", "t", json!({})).unwrap()["status"].clone();
    assert_eq!(status["scheduler"]["alarm"]["active"], false, "{status}");
    assert_eq!(status["scheduler"]["alarm"]["reason"]["statusCode"], 403, "{status}");
    assert!(w.emu.fire_alarms().is_empty());
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
/// `lib/cron.js:51`, run by apache/openwhisk-package-alarms `provider/lib/cronAlarm.js:47`), and
/// the scheduler decides with the same rules (`alarms-cron`): `0 9 * * 0` is kept as written,
/// READ's nextPoll is a Sunday 09:00 UTC, and a tick in another minute does not poll it.
#[test]
fn a_sunday_cron_is_kept_as_written_next_poll_is_a_sunday_and_other_minutes_do_not_poll() {
    use chrono::{DateTime, Datelike, Timelike, Weekday};
    let w = world();
    write_listing(&w, &[("a", "1")]);
    w.create_trigger("t", params(&w, json!({"cron": "0 9 * * 0"}))).unwrap();
    let config = w.user.get_package(&QualifiedName::new(USER, None, "t.owfeed")).unwrap();
    let registration = config["annotations"].as_array().unwrap().iter().find(|a| a["key"] == "owfeedSchedule");
    assert_eq!(registration.unwrap()["value"]["schedule"], json!({"cron": "0 9 * * 0"}), "{config}");
    let read = w.feed("READ", "t", json!({})).unwrap();
    let next = DateTime::parse_from_rfc3339(read["status"]["nextPoll"].as_str().unwrap()).unwrap();
    assert_eq!((next.weekday(), next.hour(), next.minute(), next.second()), (Weekday::Sun, 9, 0, 0), "{read}");
    assert!(next.timestamp_millis() > chrono::Utc::now().timestamp_millis());
    let now = chrono::Utc::now();
    if !(now.weekday() == Weekday::Sun && now.hour() == 9 && now.minute() == 0) {
        tick(&w);
        assert!(w.poll_results().is_empty(), "polled outside its minute: {:?}", w.poll_results());
    }
    // By hand (`-p due all`) it is polled whatever its schedule.
    w.poll();
    assert_eq!(w.poll_results().len(), 1);
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
    let subjects: std::collections::BTreeSet<String> =
        w.events().iter().map(|e| e["subject"].as_str().unwrap().to_string()).collect();
    assert_eq!(subjects.len(), 7, "{subjects:?}");
    let ids: std::collections::BTreeSet<String> = w.events().iter().map(|e| e["id"].to_string()).collect();
    assert_eq!(ids.len(), 7);
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
    assert_eq!(events.len(), 9, "{events:?}");
    let ids: std::collections::BTreeSet<&str> = events.iter().filter_map(|e| e["id"].as_str()).collect();
    assert_eq!(ids.len(), 9, "each event once, with its own id");
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
    let mut expected: Vec<&str> = SCHEDULER.to_vec();
    expected.push("rule:t-recorder");
    expected.sort();
    assert_eq!(w.user_entities().unwrap(), expected);
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
