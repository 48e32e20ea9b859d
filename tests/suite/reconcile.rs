//! S3 push with a reconcile, end to end: the real `hook`, `receive` and `poll` actions in the
//! emulator, moto as the bucket, Ceph-shaped notifications posted to the
//! receiver for real writes, and some notifications never sent (lost on the way).

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};

use feed_tests::rigs::reconcile::{hooks_world, Rig};
use feed_tests::s3proxy::{Fault, FaultProxy, Rule};
use owfeed::openwhisk::QualifiedName;
use owfeed_s3::{parse_xml, ListRequest};

/// A Ceph RGW record for a real write or delete (reference notes s3-notifications.md §4).
fn ceph_record(bucket: &str, event: &str, key: &str, etag: Option<&str>, seq: &str) -> Value {
    let mut object = json!({"key": key, "sequencer": seq});
    if let Some(etag) = etag {
        object["eTag"] = json!(etag.trim_matches('"'));
        object["size"] = json!(2);
    }
    json!({"eventVersion": "2.2", "eventSource": "ceph:s3", "awsRegion": "", "eventName": event,
        "eventTime": "2026-11-27T18:00:00.250000Z", "eventId": seq,
        "s3": {"s3SchemaVersion": "1.0", "configurationId": "owfeed", "bucket": {"name": bucket},
            "object": object}})
}

/// (change, key, reconciled) of events, sorted.
fn seen(events: &[Value]) -> Vec<(String, String, bool)> {
    let mut out: Vec<(String, String, bool)> = events
        .iter()
        .map(|e| {
            let d = &e["data"];
            (
                d["change"].as_str().unwrap_or("?").into(),
                d["key"].as_str().unwrap_or("?").into(),
                d["reconciled"] == true,
            )
        })
        .collect();
    out.sort();
    out
}

fn t(change: &str, key: &str, reconciled: bool) -> (String, String, bool) {
    (change.to_string(), key.to_string(), reconciled)
}

#[test]
fn reconcile_fires_exactly_the_changes_whose_notifications_were_lost() {
    let r = Rig::start(false);
    r.put("keep.txt", "v1");
    r.put("gone.txt", "g1");
    // With credentials, ceph registers at the producer (a topic whose push-endpoint carries the
    // token) and prints no token: the test chooses it, as a user may with `secret`.
    let token = "reconcile-test-token-0123456789";
    let created = r.create("t", r.params(json!({"reconcile": "hourly", "secret": token}))).expect("CREATE");
    assert_eq!(created["reconcile"]["status"], "created", "{created}");
    assert_eq!(created["reconcile"]["schedule"], json!({"interval": 60}), "{created}");
    r.w.record_events("t", Path::new(env!("CARGO_BIN_EXE_echo-action")));
    let url = format!("{}?access_token={token}", created["url"].as_str().unwrap());

    // Pushed: a new object, a delete and an overwrite. Lost: one new object.
    let e = r.put("pushed.txt", "p1");
    r.push(&url, ceph_record(&r.bucket, "ObjectCreated:Put", "pushed.txt", Some(&e), "01"));
    r.put("lost.txt", "l1");
    r.moto.delete(&r.bucket, "gone.txt").unwrap();
    r.push(&url, ceph_record(&r.bucket, "ObjectRemoved:Delete", "gone.txt", None, "02"));
    let e = r.put("keep.txt", "v2");
    r.push(&url, ceph_record(&r.bucket, "ObjectCreated:Put", "keep.txt", Some(&e), "03"));
    let pushed = r.events();
    assert_eq!(
        seen(&pushed),
        vec![t("created", "keep.txt", false), t("created", "pushed.txt", false), t("deleted", "gone.txt", false)]
    );
    assert_eq!(r.markers().len(), 3, "one marker per pushed change: {:?}", r.state_keys());

    // The reconcile fires the lost change, and only it; the markers it used are removed.
    r.w.poll();
    let after: Vec<Value> = r.events().into_iter().skip(pushed.len()).collect();
    assert_eq!(seen(&after), vec![t("created", "lost.txt", true)], "{after:?} {:?}", r.w.poll_results());
    assert_eq!(after[0]["type"], "org.openwhisk.feeds.s3.object.created");
    assert_eq!(after[0]["data"]["bucket"], json!(r.bucket));
    assert!(r.markers().is_empty(), "{:?}", r.state_keys());
    let polls = r.w.poll_results();
    assert_eq!(polls.last().unwrap()["fired"], 1, "{polls:?}");

    // Round two: an overwrite pushed, a delete lost.
    let e = r.put("pushed.txt", "p2");
    r.push(&url, ceph_record(&r.bucket, "ObjectCreated:Put", "pushed.txt", Some(&e), "04"));
    r.moto.delete(&r.bucket, "lost.txt").unwrap();
    let before = r.events().len();
    r.w.poll();
    let after: Vec<Value> = r.events().into_iter().skip(before).collect();
    assert_eq!(seen(&after), vec![t("deleted", "lost.txt", true)], "{after:?}");
    assert!(r.markers().is_empty(), "{:?}", r.state_keys());

    // READ shows the reconcile's status, and no secret.
    let read = r.feed("READ", "t", json!({})).expect("READ");
    let status = &read["status"]["reconcile"];
    assert_eq!(status["active"], true, "{read}");
    assert_eq!(status["objectsTracked"], 2, "{read}");
    assert!(!read.to_string().contains(r.moto.secret_access_key()), "{read}");

    // DELETE removes the reconcile's registration, config and state with the hook; the
    // namespace scheduler removes itself once its ticks saw no trigger twice.
    r.feed("DELETE", "t", json!({})).expect("DELETE");
    r.w.user.delete_trigger(&QualifiedName::new("_", None, "t")).unwrap();
    let left: Vec<String> = r.w.user_entities().unwrap().into_iter().filter(|e| e.contains(":t.")).collect();
    assert!(left.is_empty(), "{left:?}");
    for _ in 0..2 {
        r.w.emu.fire_alarms();
        assert!(r.w.emu.wait_idle(std::time::Duration::from_secs(60)));
    }
    let fired = r.w.emu.fire_alarms();
    assert!(fired.is_empty(), "alarms left: {fired:?}");
    assert!(r.state_keys().iter().all(|k| !k.starts_with(".owfeed/guest/t.")), "{:?}", r.state_keys());
}

/// The same on a real Ceph RGW: RGW pushes its own notifications (through a proxy in front of
/// the receiver that loses one), and the reconcile lists the bucket and its markers with SigV4
/// verified (what moto cannot check: a marker prefix with `/`).
#[test]
fn on_a_real_ceph_rgw_the_reconcile_fires_the_notification_the_network_lost() {
    let rgw = feed_tests::ceph::Rgw::start().expect("start Ceph RGW");
    let client = rgw.client();
    let bucket = "reconciled";
    client.create_bucket(bucket).unwrap();
    let put = |key: &str, body: &str| {
        client.put_object(bucket, key, body.as_bytes().to_vec(), owfeed_s3::Condition::None).unwrap();
    };
    put("keep.txt", "v1");
    put("gone.txt", "g1");
    let w = hooks_world();
    // RGW posts to the receiver URL through this proxy, which can answer 200 without passing
    // a delivery on: a notification lost on the way, RGW none the wiser.
    let relay = FaultProxy::start(&w.emu.url()).unwrap();
    let params = json!({"source": "s3", "provider": "ceph", "endpoint": rgw.endpoint(), "region": "default",
        "bucket": bucket, "accessKeyId": rgw.access_key_id(), "secretAccessKey": rgw.secret_access_key(),
        "reconcile": "hourly", "apiHost": relay.url()});
    let created =
        w.create_trigger_of("hook", "t", params).unwrap_or_else(|e| panic!("CREATE: {e}\n{}", rgw.log_tail()));
    assert_eq!(created["reconcile"]["status"], "created", "{created}");
    w.record_events("t", Path::new(env!("CARGO_BIN_EXE_echo-action")));
    let events = || {
        assert!(w.emu.wait_idle(Duration::from_secs(60)), "emulator did not go idle");
        w.events()
    };

    put("pushed.txt", "p1");
    relay.add(Rule { method: "POST", contains: "/receive", skip: 0, count: 1, fault: Fault::Status(200) });
    put("lost.txt", "l1");
    client.delete_object(bucket, "gone.txt").unwrap();
    put("keep.txt", "v2");
    let pushed = events();
    assert_eq!(
        seen(&pushed),
        vec![t("created", "keep.txt", false), t("created", "pushed.txt", false), t("deleted", "gone.txt", false)],
        "{}",
        rgw.log_tail()
    );
    w.poll();
    let after: Vec<Value> = events().into_iter().skip(pushed.len()).collect();
    assert_eq!(seen(&after), vec![t("created", "lost.txt", true)], "{after:?} {:?}", w.poll_results());
    let polls = w.poll_results();
    assert_eq!(polls.last().unwrap()["fired"], 1, "{polls:?}");
    let markers = client
        .list_objects_v2(
            bucket,
            &ListRequest { prefix: Some(".owfeed/guest/t.pushed/".into()), ..ListRequest::default() },
        )
        .expect("RGW verifies the marker listing's signature");
    assert!(markers.objects.is_empty(), "the reconcile removed the markers it used: {:?}", markers.objects);
    w.feed_of("hook", "DELETE", "t", json!({})).expect("DELETE");
    assert!(parse_xml(&client.get_bucket_notification(bucket).unwrap()).unwrap().children.is_empty());
}

#[test]
fn a_reconcile_that_cannot_start_leaves_nothing_and_bad_schedules_are_named() {
    // SigV4 verified: the wrong secret is refused by the reconcile's first S3 request.
    let r = Rig::start(true);
    let err = r.create("bad", r.params(json!({"reconcile": "every hour"}))).unwrap_err();
    assert!(err.contains("reconcile"), "{err}");
    let err = r.create("bad", r.params(json!({"reconcile": 60, "secretAccessKey": "wrong-secret"}))).unwrap_err();
    assert!(err.contains("reconcile"), "{err}");
    assert!(!err.contains("wrong-secret"), "{err}");
    assert!(r.w.user_entities().unwrap().is_empty(), "{:?}", r.w.user_entities());
    assert!(r.w.emu.fire_alarms().is_empty());
}

#[test]
fn push_markers_a_bucket_writer_forges_suppress_nothing() {
    let r = Rig::start(false);
    let token = "reconcile-test-token-0123456789";
    let created = r.create("t", r.params(json!({"reconcile": "hourly", "secret": token}))).expect("CREATE");
    r.w.record_events("t", Path::new(env!("CARGO_BIN_EXE_echo-action")));
    let url = format!("{}?access_token={token}", created["url"].as_str().unwrap());
    // The hook and its reconcile share a key READ never shows.
    let read = r.feed("READ", "t", json!({})).expect("READ");
    assert_eq!(read["config"]["stateKey"], "[redacted]", "{read}");
    assert_eq!(read["status"]["reconcile"]["stateAuthentication"], "hmac-sha256 (stateKey)", "{read}");

    // One change pushed (its marker written by the receiver), one whose notification was lost.
    let e = r.put("pushed.txt", "p1");
    r.push(&url, ceph_record(&r.bucket, "ObjectCreated:Put", "pushed.txt", Some(&e), "01"));
    let lost = r.put("lost.txt", "l1");
    let pushed = r.events();
    assert_eq!(seen(&pushed), vec![t("created", "pushed.txt", false)]);
    let genuine = r.markers();
    assert_eq!(genuine.len(), 1, "{genuine:?}");
    // Its name carries when it was written and an HMAC: `{name}.{ms, hex}.{32 hex}`.
    let name = owfeed::s3::markers::marker_name(false, "pushed.txt", Some(&e));
    let sealed = genuine[0].strip_prefix(".owfeed/guest/t.pushed/").unwrap();
    let tag = sealed.rsplit('.').next().unwrap();
    assert!(sealed.starts_with(&format!("{name}.")) && tag.len() == 32, "{sealed}");

    // A writer of the bucket marks the lost change as pushed: the bare name of the format before
    // keys, one with a made-up tag, one with the genuine marker's tag.
    let bare = owfeed::s3::markers::marker_name(false, "lost.txt", Some(&lost));
    let time = sealed.split('.').rev().nth(1).unwrap();
    for forged in [bare.clone(), format!("{bare}.{time}.{}", "0".repeat(32)), format!("{bare}.{time}.{tag}")] {
        r.moto.put(&r.bucket, &format!(".owfeed/guest/t.pushed/{forged}"), b"{}").unwrap();
    }
    r.w.poll();
    let after: Vec<Value> = r.events().into_iter().skip(pushed.len()).collect();
    assert_eq!(seen(&after), vec![t("created", "lost.txt", true)], "{after:?} {:?}", r.w.poll_results());
    assert!(r.markers().is_empty(), "forged names are removed with the markers: {:?}", r.state_keys());
}

/// The receiver answers before the producer stops waiting even when the store hangs on a push
/// marker (shared/src/s3/reconcile.rs `record_pushed`): the event was fired, the marker write
/// goes on in the background, and the reconcile fires the change again (at least once, never
/// lost). Without the bound the answer waited for the hung write, past the action's time limit.
#[test]
fn a_marker_write_that_hangs_does_not_hold_the_receivers_answer() {
    let r = Rig::start(false);
    let proxy = FaultProxy::start(r.moto.endpoint()).unwrap();
    let token = "reconcile-test-token-0123456789";
    let params = r.params(json!({"reconcile": "hourly", "secret": token, "endpoint": proxy.url()}));
    let created = r.create("t", params).expect("CREATE");
    r.w.record_events("t", Path::new(env!("CARGO_BIN_EXE_echo-action")));
    let url = format!("{}?access_token={token}", created["url"].as_str().unwrap());
    // The receiver may run 8 s (`wsk action update owfeed/receive --timeout 8000`); the
    // marker's PUT hangs for 30.
    let receive = QualifiedName::new(ow_emulator::SYSTEM_NAMESPACE, Some(feed_tests::world::PACKAGE), "receive");
    r.w.system.put_action(&receive, &json!({ "limits": { "timeout": 8_000 } }), true).unwrap();
    proxy.add(Rule {
        method: "PUT",
        contains: ".pushed",
        skip: 0,
        count: 1,
        fault: Fault::Hang(Duration::from_secs(30)),
    });

    let e = r.put("pushed.txt", "p1");
    let started = std::time::Instant::now();
    r.push(&url, ceph_record(&r.bucket, "ObjectCreated:Put", "pushed.txt", Some(&e), "01"));
    assert!(started.elapsed() < Duration::from_secs(8), "answered in {:?}", started.elapsed());
    assert_eq!(proxy.count(".pushed"), 1, "the marker write was tried");
    let pushed = r.events();
    assert_eq!(seen(&pushed), vec![t("created", "pushed.txt", false)]);
    assert!(r.markers().is_empty(), "{:?}", r.state_keys());
    // No marker: the reconcile fires the change again.
    r.w.poll();
    let after: Vec<Value> = r.events().into_iter().skip(pushed.len()).collect();
    assert_eq!(seen(&after), vec![t("created", "pushed.txt", true)], "{after:?} {:?}", r.w.poll_results());
}
