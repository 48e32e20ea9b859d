//! The S3 feed end to end: the real `changes` and `poll` binaries in the emulator, a real S3
//! server (moto, verifying SigV4), created like `wsk trigger create --feed` does, with the
//! events observed in what the user's rule action received.

use serde_json::{json, Value};

use feed_tests::moto::Moto;
use feed_tests::rigs::s3::{S3World, Server};
use feed_tests::s3proxy::{Fault, FaultProxy, Rule};
use feed_tests::world::{workspace_bin, USER};
use owfeed::events::validate_cloud_event;
use owfeed::openwhisk::QualifiedName;

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = items.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
    v.sort();
    v
}

#[test]
fn created_updated_deleted_reach_the_rule_as_cloudevents() {
    let s = S3World::start();
    s.put("existing.txt", "old");
    s.create(json!({}));
    s.w.poll();
    assert_eq!(s.seen(), pairs(&[]), "the baseline must not fire");
    s.put("new.txt", "hello");
    s.put("existing.txt", "changed");
    s.w.poll();
    assert_eq!(s.seen(), pairs(&[("created", "new.txt"), ("updated", "existing.txt")]));
    s.delete("new.txt");
    s.w.poll();
    assert_eq!(s.seen(), pairs(&[("created", "new.txt"), ("deleted", "new.txt"), ("updated", "existing.txt")]));
    for e in s.w.events() {
        validate_cloud_event(&e).unwrap_or_else(|err| panic!("{err}: {e}"));
        assert_eq!(e["source"], format!("{}/{}", s.endpoint, s.bucket));
        assert_eq!(e["data"]["bucket"], s.bucket.as_str());
        assert_eq!(e["data"]["key"], e["subject"]);
        assert_eq!(e["id"].as_str().unwrap().len(), 32, "{e}");
        if e["type"] != "org.openwhisk.feeds.s3.object.deleted" {
            assert!(e["data"]["etag"].is_string() && e["data"]["size"].is_u64(), "{e}");
        }
    }
    // The feed's own state objects live in the bucket and are never reported.
    assert_eq!(s.state_keys(), [".owfeed/guest/t.lease", ".owfeed/guest/t.state"]);
}

/// A third, independent server that ignores conditional writes: the feed still reports each
/// change once, and CREATE and READ say that overlapping polls could not be kept apart.
#[test]
fn a_store_without_conditional_writes_works_and_says_so() {
    let s = S3World::on(Server::S3rver, None);
    s.put("kept", "1");
    s.put("gone", "1");
    let created = s.create(json!({}));
    assert_eq!((&created["conditionalWrites"], &created["conditionalWriteDialect"]), (&json!(false), &json!("none")));
    s.put("kept", "2");
    s.put("new", "1");
    s.delete("gone");
    s.w.poll();
    assert_eq!(s.seen(), pairs(&[("created", "new"), ("deleted", "gone"), ("updated", "kept")]));
    let read = s.w.feed("READ", "t", json!({})).unwrap();
    let status = &read["status"];
    assert_eq!((&status["conditionalWrites"], &status["lastOutcome"]), (&json!(false), &json!("ok")), "{read}");
    assert!(status["conditionalWritesWarning"].as_str().is_some_and(|w| w.contains("same id")), "{read}");
}

/// A fourth server, Ceph's own radosgw (SigV4 verified): created, updated and deleted under a
/// prefix with `/` (which moto mis-verifies), keys no other verifying server here takes whole,
/// and what CREATE's probe finds of Ceph's conditional writes.
#[test]
fn the_s3_feed_on_a_real_ceph_rgw() {
    let s = S3World::on(Server::Rgw, None);
    s.put("in/existing.txt", "old");
    s.put("out/ignored.txt", "old");
    let created = s.create(json!({"prefix": "in/"}));
    // RGW 16.2 takes If-Match only unquoted (RFC 7232 quotes it): the store behind the mission's
    // "refuses the quoted If-Match" for real. The probe finds it, and every state write uses it.
    let probe = json!({"dialect": "unquoted", "ifMatchQuoted": false, "ifMatchUnquoted": true,
        "ifNoneMatchAbsent": true, "ifNoneMatchPresentRefused": true, "staleRefused": true});
    assert_eq!((&created["conditionalWriteProbe"], &created["conditionalWrites"]), (&probe, &json!(true)), "{created}");
    let keys =
        ["in/with space.txt", "in/plus+sign", "in/percent%41", "in/amp&er", "in/ünï©ødé/日本語", "in/double//slash"];
    for k in keys {
        s.put(k, k);
    }
    s.put("in/existing.txt", "changed");
    s.put("out/new.txt", "not under the prefix");
    s.w.poll();
    let mut want: Vec<(&str, &str)> = keys.iter().map(|k| ("created", *k)).collect();
    want.push(("updated", "in/existing.txt"));
    assert_eq!(s.seen(), pairs(&want));
    s.delete("in/plus+sign");
    s.w.poll();
    want.push(("deleted", "in/plus+sign"));
    assert_eq!(s.seen(), pairs(&want));
    let read = s.w.feed("READ", "t", json!({})).unwrap();
    let status = &read["status"];
    assert_eq!((&status["lastOutcome"], &status["conditionalWriteDialect"]), (&json!("ok"), &json!("unquoted")));
    assert_eq!((&status["objectsTracked"], &status["stalled"]), (&json!(6), &json!(false)), "{read}");
}

/// CREATE's baseline of a key space nothing is known about, split by probing a real Ceph RGW
/// (ListObjectsV2 with `start-after` and `max-keys` 1) and listed in parallel ranges: keys
/// under a prefix with `/`, with bytes above 0x7F (two-, three- and four-byte UTF-8), spaces
/// and `//`, in pages of 5 so that the first page is not the whole listing. Every key is
/// tracked, and changes anywhere in the key space fire exactly.
#[test]
fn a_baseline_split_by_probing_a_real_ceph_rgw_tracks_every_key() {
    let s = S3World::on(Server::Rgw, None);
    let dirs = ["a", "a b", "ünï©ødé", "日本語", "😀", "z//y", "é/x", "~"];
    let keys: Vec<String> =
        dirs.iter().flat_map(|d| (0..12).map(move |j| format!("in/{d}/{j:02}-{}", ["x", "é", "😀"][j % 3]))).collect();
    for k in &keys {
        s.put(k, "1");
    }
    s.put("out/not-watched", "1");
    let rgw = s.rgw().expect("an RGW");
    let probes = || {
        std::thread::sleep(std::time::Duration::from_millis(300));
        let log = std::fs::read_to_string(rgw.log_path()).unwrap_or_default();
        log.lines()
            .filter(|l| l.contains(" beast: ") && l.contains("start-after=") && l.contains("max-keys=1&"))
            .count()
    };
    let before = probes();
    s.create(json!({"prefix": "in/", "pageSize": 5, "parallelism": 4}));
    assert!(probes() - before > 1, "the baseline did not probe the key space");
    let read = s.w.feed("READ", "t", json!({})).unwrap();
    assert_eq!(read["status"]["objectsTracked"], keys.len(), "{read}");
    assert_eq!(read["status"]["listingInProgress"], false, "{read}");
    // Changes in every part of the key space (fewer than a poll's 30 fires).
    let mut want = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        match i % 11 {
            0 => {
                s.put(k, "changed");
                want.push(("updated".to_string(), k.clone()));
            }
            5 => {
                s.delete(k);
                want.push(("deleted".to_string(), k.clone()));
            }
            _ => {}
        }
    }
    for d in dirs {
        let k = format!("in/{d}/new-ß");
        s.put(&k, "new");
        want.push(("created".to_string(), k));
    }
    s.w.poll();
    want.sort();
    assert_eq!(s.seen(), want);
}

#[test]
fn fire_existing_fires_the_objects_present_at_create() {
    let s = S3World::start();
    s.put("a", "1");
    s.put("b", "2");
    s.create(json!({"fireExisting": true}));
    s.w.poll();
    assert_eq!(s.seen(), pairs(&[("created", "a"), ("created", "b")]));
}

#[test]
fn awkward_keys_arrive_exactly() {
    let keys = [
        "with space.txt",
        "plus+sign",
        "percent%41",
        "amp&er",
        "lt<gt>",
        "ünï©ødé/日本語",
        "double//slash",
        "dot/./seg",
        "/leading",
    ];
    check_awkward_keys(&S3World::on(Server::MotoUnverified, None), &keys);
}

#[test]
fn awkward_keys_on_a_strict_server_without_etags() {
    // s3s-fs stores keys as file paths: only keys that are valid relative paths apply.
    let keys = ["with space.txt", "plus+sign", "percent%41", "amp&er", "lt<gt>", "ünï©ødé/日本語", "tilde~"];
    let s = S3World::on(Server::S3sFs, None);
    check_awkward_keys(&s, &keys);
    // Without ETags the version is (LastModified, Size): a longer body is an update.
    s.put(keys[0], "a much longer body than before");
    s.w.poll();
    let mut want: Vec<(String, String)> = keys.iter().map(|k| ("created".to_string(), k.to_string())).collect();
    want.push(("updated".to_string(), keys[0].to_string()));
    want.sort();
    assert_eq!(s.seen(), want);
    assert_ids_distinct(&s.w.events());
}

/// Creates the feed, puts `keys`, polls, and checks each key fired exactly as written.
fn check_awkward_keys(s: &S3World, keys: &[&str]) {
    s.create(json!({}));
    for k in keys {
        s.put(k, k);
    }
    s.w.poll();
    // Every event counted: a duplicate, a wrong kind or a mangled key fails.
    let mut want: Vec<(String, String)> = keys.iter().map(|k| ("created".to_string(), k.to_string())).collect();
    want.sort();
    assert_eq!(s.seen(), want);
    assert_ids_distinct(&s.w.events());
}

/// Each event has an id of its own (a change fired twice would repeat one).
#[track_caller]
fn assert_ids_distinct(events: &[Value]) {
    let mut ids: Vec<&str> = events.iter().map(|e| e["id"].as_str().expect("event id")).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), events.len(), "{events:?}");
}

#[test]
fn more_than_1000_objects_across_pages_give_no_false_deletes() {
    let s = S3World::start();
    std::thread::scope(|scope| {
        for t in 0..4 {
            let s = &s;
            scope.spawn(move || {
                for i in (t..1100).step_by(4) {
                    s.put(&format!("obj/{i:05}"), "x");
                }
            });
        }
    });
    s.create(json!({}));
    s.put("obj/zzz-new", "y");
    s.delete("obj/00500");
    s.w.poll();
    assert_eq!(s.seen(), pairs(&[("created", "obj/zzz-new"), ("deleted", "obj/00500")]));
    let read = s.w.feed("READ", "t", json!({})).unwrap();
    assert_eq!(read["status"]["objectsTracked"], 1100, "{read}");
}

#[test]
fn prefix_suffix_and_event_filters() {
    let s = S3World::on(Server::MotoUnverified, None);
    s.create(json!({"prefix": "in/", "suffix": ".csv", "events": "created,deleted"}));
    s.put("in/a.csv", "1");
    s.put("in/b.txt", "1");
    s.put("out/c.csv", "1");
    s.w.poll();
    assert_eq!(s.seen(), pairs(&[("created", "in/a.csv")]));
    s.put("in/a.csv", "2");
    s.w.poll();
    assert_eq!(s.seen(), pairs(&[("created", "in/a.csv")]), "updates are filtered out");
    s.delete("in/a.csv");
    s.w.poll();
    assert_eq!(s.seen(), pairs(&[("created", "in/a.csv"), ("deleted", "in/a.csv")]));
}

#[test]
fn legacy_format_and_batches() {
    let s = S3World::start();
    s.create(json!({"format": "legacy", "batch": 3}));
    for k in ["k1", "k2", "k3", "k4", "k5"] {
        s.put(k, k);
    }
    s.w.poll();
    let fires = s.w.events();
    assert_eq!(fires.len(), 2, "5 events in batches of 3: {fires:?}");
    let events: Vec<&Value> = fires.iter().flat_map(|f| f["events"].as_array().unwrap().iter()).collect();
    assert_eq!(events.len(), 5);
    for e in &events {
        assert_eq!(e["status"], "added");
        assert_eq!(e["bucket"], s.bucket.as_str());
        assert_eq!(e["file"]["Key"], e["key"]);
        assert!(e["file"]["ETag"].as_str().unwrap().starts_with('"'), "{e}");
    }
}

#[test]
fn wrong_secret_and_missing_bucket_fail_create_clearly_and_leave_nothing() {
    let s = S3World::start();
    let err = s.w.create_trigger("t", s.params(json!({"secretAccessKey": "not-the-secret"}))).unwrap_err();
    assert!(err.contains("SignatureDoesNotMatch") && err.contains("secretAccessKey"), "{err}");
    assert!(!err.contains("not-the-secret"), "{err}");
    let err = s.w.create_trigger("t", s.params(json!({"bucket": "no-such-bucket-here"}))).unwrap_err();
    assert!(err.contains("NoSuchBucket") && err.contains("no-such-bucket-here"), "{err}");
    let err = s.w.create_trigger("t", s.params(json!({"endpoint": "ftp://nowhere"}))).unwrap_err();
    assert!(err.contains("parameter 'endpoint'"), "{err}");
    let err = s.w.create_trigger("t", s.params(json!({"batch": 0}))).unwrap_err();
    assert!(err.contains("parameter 'batch'"), "{err}");
    assert_eq!(s.w.user_entities().unwrap(), Vec::<String>::new());
    assert_eq!(s.state_keys(), Vec::<String>::new());
}

#[test]
fn a_failed_listing_mid_pagination_fires_nothing_and_changes_no_state() {
    let proxy = FaultProxy::start(Moto::shared().expect("moto").endpoint()).expect("proxy");
    let s = S3World::on(Server::Moto, Some(&proxy));
    for i in 0..25 {
        s.put(&format!("p/{i:03}"), "x");
    }
    s.create(json!({"pageSize": 10}));
    s.put("p/new", "y");
    s.delete("p/003");
    let before = s.state_bytes();
    for fault in [Fault::Status(500), Fault::InvalidXml, Fault::Truncated, Fault::Status(503)] {
        proxy.add(Rule { method: "GET", contains: "list-type=2", skip: 1, count: 1, fault: fault.clone() });
        s.w.poll();
        assert_eq!(s.seen(), pairs(&[]), "{fault:?} must fire nothing");
        assert_eq!(s.state_bytes(), before, "{fault:?} must not change the state");
        let last = s.w.poll_results().pop().unwrap();
        assert!(last["error"].is_string(), "{fault:?}: {last}");
    }
    s.w.poll();
    assert_eq!(s.seen(), pairs(&[("created", "p/new"), ("deleted", "p/003")]));
    let read = s.w.feed("READ", "t", json!({})).unwrap();
    assert_eq!(read["status"]["lastOutcome"], "ok", "{read}");
}

#[test]
fn two_concurrent_polls_fire_each_change_once() {
    let proxy = FaultProxy::start(Moto::shared().expect("moto").endpoint()).expect("proxy");
    let s = S3World::on(Server::Moto, Some(&proxy));
    s.create(json!({}));
    for k in ["c1", "c2", "c3", "c4"] {
        s.put(k, k);
    }
    // Slow listings make the two polls overlap.
    proxy.add(Rule {
        method: "GET",
        contains: "list-type=2",
        skip: 0,
        count: 2,
        fault: Fault::Delay(std::time::Duration::from_millis(800)),
    });
    let poll = QualifiedName::new(USER, Some("t.owfeed"), "poll");
    let results: Vec<Value> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..2).map(|_| scope.spawn(|| s.w.user.invoke(&poll, &json!({}), true))).collect();
        handles.into_iter().map(|h| h.join().unwrap().expect("poll result")).collect()
    });
    assert!(s.w.emu.wait_idle(std::time::Duration::from_secs(60)));
    let fired: u64 = results.iter().map(|r| r["fired"].as_u64().unwrap_or(0)).sum();
    assert_eq!(fired, 4, "{results:?}");
    assert_eq!(s.seen(), pairs(&[("created", "c1"), ("created", "c2"), ("created", "c3"), ("created", "c4")]));
    assert_ids_distinct(&s.w.events());
}

#[test]
fn trigger_deleted_behind_the_feeds_back_removes_the_poller() {
    let s = S3World::start();
    s.create(json!({}));
    s.put("a", "1");
    s.w.user.delete_trigger(&QualifiedName::new(USER, None, "t")).unwrap();
    s.w.poll();
    let last = s.w.poll_results().pop().unwrap();
    assert!(last["status"].as_str().unwrap_or("").contains("trigger gone"), "{last}");
    let left =
        || -> Vec<String> { s.w.user_entities().unwrap().into_iter().filter(|e| !e.contains("recorder")).collect() };
    // The namespace scheduler stays until its ticks have seen no trigger twice.
    assert_eq!(left(), ["package:owfeed.scheduler", "rule:owfeed.scheduler-rule", "trigger:owfeed.scheduler-tick"]);
    assert_eq!(s.state_keys(), Vec::<String>::new());
    s.w.poll();
    s.w.poll();
    assert_eq!(left(), Vec::<String>::new());
}

#[test]
fn update_changes_filters_and_keeps_state() {
    let s = S3World::start();
    s.create(json!({"events": "created"}));
    s.put("a", "1");
    s.w.poll();
    assert_eq!(s.seen(), pairs(&[("created", "a")]));
    let up = s.w.feed("UPDATE", "t", json!({"events": "updated", "interval": 3})).unwrap();
    assert_eq!(up["status"], "updated", "{up}");
    s.put("a", "2");
    s.put("b", "1");
    s.w.poll();
    assert_eq!(s.seen(), pairs(&[("created", "a"), ("updated", "a")]));
    let read = s.w.feed("READ", "t", json!({})).unwrap();
    assert_eq!(read["config"]["interval"], 3);
    assert_eq!(read["status"]["eventsFired"], 2);
    assert_eq!(read["config"]["secretAccessKey"], "[redacted]");
    assert!(!read.to_string().contains(&s.secret_key));
}

#[test]
fn source_s3_is_the_default_and_the_source_of_a_feed_cannot_change() {
    let s = S3World::start();
    s.create(json!({"source": "s3"}));
    s.put("a", "1");
    s.w.poll();
    assert_eq!(s.seen(), pairs(&[("created", "a")]));
    let err = s.w.feed("UPDATE", "t", json!({"source": "other"})).unwrap_err();
    assert!(err.contains("parameter 'source'") && err.contains("cannot change"), "{err}");
    let read = s.w.feed("READ", "t", json!({})).unwrap();
    assert_eq!(read["config"]["source"], "s3", "{read}");
    s.w.feed("UPDATE", "t", json!({"source": "s3", "interval": 2})).unwrap();
    s.put("a", "2");
    s.w.poll();
    assert_eq!(s.seen(), pairs(&[("created", "a"), ("updated", "a")]));
}

/// A dry run lists in passes of at most `maxChangesPerPoll` changes, as polls would, and
/// keeps only counts and the first events: every change is counted once, and the events shown
/// are the first ones in key order.
#[test]
fn a_dry_run_counts_every_change_across_bounded_passes() {
    let s = S3World::start();
    let keys: Vec<String> = (0..23).map(|i| format!("d-{i:02}{}", if i % 2 == 0 { ".csv" } else { ".txt" })).collect();
    for k in &keys {
        s.put(k, "1");
    }
    let (result, _) = dry_run_cli(&s, &["-p", "suffix", ".csv", "-p", "maxChangesPerPoll", "3", "-p", "pageSize", "2"]);
    assert_eq!((&result["listed"], &result["changes"], &result["wouldFire"]), (&json!(23), &json!(23), &json!(12)));
    let shown: Vec<&str> =
        result["events"].as_array().unwrap().iter().map(|e| e["subject"].as_str().unwrap()).collect();
    let want: Vec<&str> = keys.iter().filter(|k| k.ends_with(".csv")).map(String::as_str).collect();
    assert_eq!(shown, want, "{result}");
}

/// `poll -p dryRun true` on the command line, without OpenWhisk, against `s`'s bucket with
/// `extra` parameters: its result, and what it printed.
fn dry_run_cli(s: &S3World, extra: &[&str]) -> (Value, String) {
    let out = std::process::Command::new(workspace_bin("poll"))
        .args(["-p", "dryRun", "true", "-p", "endpoint", &s.endpoint, "-p", "bucket", &s.bucket])
        .args(["-p", "accessKeyId", &s.access_key, "-p", "secretAccessKey", &s.secret_key])
        .args(extra)
        .env_clear()
        .output()
        .expect("run poll");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{stdout} {}", String::from_utf8_lossy(&out.stderr));
    (serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}")), stdout)
}

#[test]
fn dry_run_cli_shows_what_would_fire_without_openwhisk() {
    let s = S3World::start();
    s.put("d/one", "1");
    s.put("d/two", "2");
    s.put("other", "3");
    let (result, stdout) = dry_run_cli(&s, &["-p", "suffix", "o"]);
    assert_eq!(result["listed"], 3, "{result}");
    assert_eq!(result["wouldFire"], 1, "only d/two ends with 'o': {result}");
    assert_eq!(result["events"][0]["subject"], "d/two");
    assert!(result["stateBytes"].as_u64().unwrap() > 0);
    assert!(!stdout.contains(&s.secret_key));
    // Nothing was written: no state object, and no OpenWhisk was needed.
    assert_eq!(s.state_keys(), Vec::<String>::new());
}
