//! Real S3 stores that differ from AWS: conditional-write dialects, stores that refuse the
//! writes recording a poll's status, leases left by dead polls. The real `changes` and `poll`
//! binaries run in the emulator against moto (SigV4 verified) behind the fault proxy, which
//! plays the other stores' dialects. Each scenario asserts the exact events fired, the fields
//! READ shows, and that nothing was lost.

use std::path::Path;

use serde_json::{json, Value};

use feed_tests::moto::Moto;
use feed_tests::rigs::ProxiedBucket;
use feed_tests::s3proxy::{Conditionals, Fault, Rule};
use owfeed_s3::Condition;

/// The lease object of trigger `t`.
const LEASE_KEY: &str = ".owfeed/guest/t.lease";

/// A feed trigger `t` on a fresh moto bucket, reached through a fault proxy.
struct Rig(ProxiedBucket);

impl std::ops::Deref for Rig {
    type Target = ProxiedBucket;
    fn deref(&self) -> &ProxiedBucket {
        &self.0
    }
}

impl Rig {
    fn start() -> Rig {
        Rig(ProxiedBucket::start("stores"))
    }

    /// The proxy plays a store with `mode` from now on.
    fn dialect(&self, mode: Conditionals) {
        self.proxy.set_conditionals(mode, Moto::shared().expect("moto server").config());
    }

    /// Creates the feed trigger `t` through the proxy and the recording rule; CREATE's result.
    fn create(&self, extra: Value) -> Value {
        self.0.create(extra, Path::new(env!("CARGO_BIN_EXE_echo-action")))
    }

    fn put(&self, key: &str, body: &str) {
        self.client.put_object(&self.bucket, key, body.as_bytes().to_vec(), Condition::None).expect("put");
    }

    fn delete(&self, key: &str) {
        self.client.delete_object(&self.bucket, key).expect("delete");
    }

    /// Invokes the binding's poll action once, blocking, and waits for the rule-fired
    /// recorder: the poll's result, or its error message.
    fn poll_once(&self) -> Result<Value, String> {
        let result = self.w.poll_once("t");
        assert!(self.w.emu.wait_idle(std::time::Duration::from_secs(120)), "emulator did not go idle");
        result
    }

    fn read(&self) -> Value {
        self.w.feed("READ", "t", json!({})).expect("READ")
    }

    /// (kind, key) of every event received, sorted.
    fn seen(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = self
            .w
            .events()
            .iter()
            .map(|e| {
                let kind = e["type"].as_str().unwrap_or("?").rsplit('.').next().unwrap_or("?").to_string();
                (kind, e["subject"].as_str().unwrap_or("?").to_string())
            })
            .collect();
        out.sort();
        out
    }

    /// Writes of the conditional-write probe's scratch object that reached the proxy.
    fn probe_puts(&self) -> usize {
        self.proxy.count(&format!("PUT /{}/.owfeed/guest/t.probe", self.bucket))
    }
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = items.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
    v.sort();
    v
}

/// Creates, changes, deletes: exactly these four events, each once, whatever the dialect.
fn run_changes(r: &Rig) {
    r.put("a.txt", "1");
    r.put("b.txt", "1");
    r.w.poll();
    r.put("a.txt", "2");
    r.delete("b.txt");
    r.w.poll();
    let want = pairs(&[("created", "a.txt"), ("created", "b.txt"), ("updated", "a.txt"), ("deleted", "b.txt")]);
    assert_eq!(r.seen(), want, "exact events, none lost, none twice");
}

#[track_caller]
fn check_read(read: &Value, conditional: bool, dialect: &str) {
    let s = &read["status"];
    assert_eq!(s["conditionalWrites"], conditional, "{read}");
    assert_eq!(s["conditionalWriteDialect"], dialect, "{read}");
    assert_eq!(read["config"]["conditionalWriteDialect"], dialect, "{read}");
    assert_eq!(s["lastOutcome"], "ok", "{read}");
    assert_eq!(s["lastError"], Value::Null, "{read}");
    assert_eq!(s["stalled"], false, "{read}");
    assert_eq!(s["pollsWithoutProgress"], 0, "{read}");
    assert_eq!(s["lease"]["holder"], Value::Null, "{read}");
    assert_eq!(s["eventsPending"], 0, "{read}");
    if conditional {
        assert!(s.get("conditionalWritesWarning").is_none(), "{read}");
    } else {
        let warning = s["conditionalWritesWarning"].as_str().unwrap_or_default();
        assert!(warning.contains("may both fire the same change"), "{read}");
    }
}

#[test]
fn a_store_that_refuses_the_quoted_if_match_uses_the_unquoted_form() {
    let r = Rig::start();
    r.dialect(Conditionals::QuotedIfMatchRefused);
    let created = r.create(json!({}));
    assert_eq!(created["conditionalWrites"], true, "{created}");
    assert_eq!(created["conditionalWriteDialect"], "unquoted", "{created}");
    let probe = &created["conditionalWriteProbe"];
    assert_eq!(
        (&probe["ifNoneMatchAbsent"], &probe["ifNoneMatchPresentRefused"], &probe["ifMatchQuoted"]),
        (&json!(true), &json!(true), &json!(false)),
        "{created}"
    );
    assert_eq!((&probe["ifMatchUnquoted"], &probe["staleRefused"]), (&json!(true), &json!(true)), "{created}");
    run_changes(&r);
    check_read(&r.read(), true, "unquoted");
    // Every poll took and released the lease in the store's dialect: no re-probe was needed.
    assert_eq!(r.probe_puts(), 5, "only CREATE probed");
}

#[test]
fn a_store_that_ignores_if_match_is_reported_without_conditional_writes() {
    let r = Rig::start();
    r.dialect(Conditionals::IfMatchIgnored);
    let created = r.create(json!({}));
    assert_eq!(created["conditionalWrites"], false, "{created}");
    assert_eq!(created["conditionalWriteDialect"], "none", "{created}");
    assert_eq!(created["conditionalWriteProbe"]["staleRefused"], false, "{created}");
    assert_eq!(created["conditionalWriteProbe"]["ifNoneMatchPresentRefused"], true, "{created}");
    assert!(created["conditionalWritesWarning"].as_str().unwrap_or_default().contains("same id"), "{created}");
    run_changes(&r);
    check_read(&r.read(), false, "none");
}

#[test]
fn a_store_that_ignores_conditional_headers_is_reported_and_still_delivers() {
    let r = Rig::start();
    r.dialect(Conditionals::AllIgnored);
    let created = r.create(json!({}));
    assert_eq!(created["conditionalWrites"], false, "{created}");
    assert_eq!(created["conditionalWriteDialect"], "none", "{created}");
    assert_eq!(created["conditionalWriteProbe"]["ifNoneMatchPresentRefused"], false, "{created}");
    run_changes(&r);
    check_read(&r.read(), false, "none");
}

#[test]
fn a_store_that_does_not_implement_conditional_puts_is_reported_and_still_delivers() {
    let r = Rig::start();
    r.dialect(Conditionals::NotImplemented);
    let created = r.create(json!({}));
    assert_eq!(created["conditionalWrites"], false, "{created}");
    assert_eq!(created["conditionalWriteDialect"], "none", "{created}");
    assert_eq!(created["conditionalWriteProbe"]["ifNoneMatchAbsent"], false, "{created}");
    run_changes(&r);
    check_read(&r.read(), false, "none");
}

#[test]
fn an_honest_store_keeps_the_quoted_dialect() {
    let r = Rig::start();
    let created = r.create(json!({}));
    assert_eq!(created["conditionalWriteDialect"], "quoted", "{created}");
    assert_eq!(created["conditionalWriteProbe"]["ifMatchQuoted"], true, "{created}");
    assert_eq!(created["conditionalWriteProbe"]["staleRefused"], true, "{created}");
    run_changes(&r);
    check_read(&r.read(), true, "quoted");
}

#[test]
fn a_412_after_the_store_changed_dialect_re_probes_instead_of_giving_up() {
    let r = Rig::start();
    let created = r.create(json!({}));
    assert_eq!(created["conditionalWriteDialect"], "quoted", "{created}");
    // The store behind the endpoint is replaced by one that refuses the quoted If-Match.
    r.dialect(Conditionals::QuotedIfMatchRefused);
    let probes_before = r.probe_puts();
    r.put("a.txt", "1");
    r.w.poll();
    assert_eq!(r.seen(), pairs(&[("created", "a.txt")]));
    assert!(r.probe_puts() > probes_before, "the refused write re-probed the store");
    let read = r.read();
    // The poll recorded the new dialect in the config: later polls start with it.
    check_read(&read, true, "unquoted");
    let probes_after = r.probe_puts();
    r.put("b.txt", "1");
    r.w.poll();
    assert_eq!(r.seen(), pairs(&[("created", "a.txt"), ("created", "b.txt")]));
    assert_eq!(r.probe_puts(), probes_after, "the recorded dialect needs no re-probe");
}

#[test]
fn an_expired_lease_is_taken_over_and_a_live_one_is_shown_in_read() {
    let r = Rig::start();
    r.create(json!({}));
    r.put("a.txt", "1");
    let now = owfeed::budget::now_ms();
    // A poll killed long ago left its lease.
    let dead = json!({ "holder": "dead-activation", "expiresMs": now - 1_000, "status": null });
    r.client.put_object(&r.bucket, LEASE_KEY, dead.to_string().into_bytes(), Condition::None).expect("put lease");
    let polled = r.poll_once().expect("poll");
    assert_eq!(polled["status"], "ok", "{polled}");
    assert_eq!(r.seen(), pairs(&[("created", "a.txt")]));

    // A live lease written by a writer of the bucket rather than a poll (no MAC of the feed's
    // key): it is not trusted, and the next poll takes it over.
    let until = now + 600_000;
    let forged = json!({ "holder": "forged-activation", "expiresMs": until, "status": null });
    r.client.put_object(&r.bucket, LEASE_KEY, forged.to_string().into_bytes(), Condition::None).expect("put lease");
    assert!(r.read()["status"]["leaseRejected"].as_str().unwrap_or_default().contains("not authenticated"));
    r.put("b.txt", "1");
    let polled = r.poll_once().expect("poll");
    assert_eq!(polled["status"], "ok", "{polled}");
    assert_eq!(r.seen(), pairs(&[("created", "a.txt"), ("created", "b.txt")]));

    // A live lease another poll of the feed holds: polls leave, and READ says who holds it
    // until when.
    r.state_store().acquire("live-activation", owfeed::budget::now_ms(), until).expect("another poll's lease");
    r.put("c.txt", "1");
    for _ in 0..3 {
        let busy = r.poll_once().expect("poll");
        assert_eq!(busy["status"], "busy", "{busy}");
        assert_eq!(busy["holder"], "live-activation", "{busy}");
        assert_eq!(busy["trigger"], "/guest/t", "{busy}");
    }
    let read = r.read();
    let s = &read["status"];
    assert_eq!(s["lease"]["holder"], "live-activation", "{read}");
    assert_eq!(s["lease"]["expired"], false, "{read}");
    assert_eq!(s["lastOutcome"], "busy", "{read}");
    assert_eq!(s["lastOutcomeFrom"], "poll activation", "{read}");
    assert!(s["lastError"].as_str().unwrap_or_default().contains("live-activation"), "{read}");
    assert_eq!(s["pollsWithoutProgress"], 3, "{read}");
    assert_eq!(s["stalled"], true, "{read}");
    assert!(s["noProgressForMs"].as_u64().is_some(), "{read}");
    assert_eq!(
        r.seen(),
        pairs(&[("created", "a.txt"), ("created", "b.txt")]),
        "nothing fires while another poll holds the lease"
    );
}

#[test]
fn a_store_that_refuses_every_write_is_visible_in_read_and_recovers() {
    let r = Rig::start();
    r.create(json!({}));
    r.put("a.txt", "1");
    // Every write fails: the lease cannot be taken, no status can be recorded in the store.
    r.proxy.add(Rule { method: "PUT", contains: "/", skip: 0, count: usize::MAX, fault: Fault::Status(503) });
    for _ in 0..3 {
        let err = r.poll_once().expect_err("a poll that cannot write fails");
        assert!(err.contains("taking the poll lease"), "{err}");
    }
    let read = r.read();
    let s = &read["status"];
    assert_eq!(s["lastOutcome"], "error", "{read}");
    assert_eq!(s["lastOutcomeFrom"], "poll activation", "{read}");
    assert!(s["lastError"].as_str().unwrap_or_default().contains("503"), "{read}");
    assert_eq!(s["pollsWithoutProgress"], 3, "{read}");
    assert_eq!(s["stalled"], true, "{read}");
    assert!(s["stallReason"].as_str().unwrap_or_default().contains("taking the poll lease"), "{read}");
    assert_eq!(r.seen(), Vec::<(String, String)>::new());

    r.proxy.clear();
    let polled = r.poll_once().expect("poll after the outage");
    assert_eq!(polled["status"], "ok", "{polled}");
    assert_eq!(r.seen(), pairs(&[("created", "a.txt")]), "the change made during the outage is delivered");
    let read = r.read();
    assert_eq!(read["status"]["stalled"], false, "{read}");
    assert_eq!(read["status"]["lastOutcome"], "ok", "{read}");
}

#[test]
fn read_during_a_state_outage_says_the_changes_will_be_reported() {
    let r = Rig::start();
    r.create(json!({}));
    r.proxy.add(Rule { method: "GET", contains: "t.state", skip: 0, count: usize::MAX, fault: Fault::Status(503) });
    let read = r.read();
    let error = read["status"]["stateError"].as_str().unwrap_or_default().to_string();
    assert!(error.contains("nothing is re-baselined"), "{read}");
    assert!(!error.contains("the next poll re-baselines"), "{read}");
}

/// Puts `n` keys `k00`, `k01`, … and polls once: their `created` events.
fn fill(r: &Rig, n: usize) -> Vec<(String, String)> {
    let keys: Vec<String> = (0..n).map(|i| format!("k{i:02}")).collect();
    for k in &keys {
        r.put(k, "1");
    }
    r.poll_once().expect("poll");
    assert_eq!(r.seen().len(), n, "every created object fired");
    keys.into_iter().map(|k| ("created".to_string(), k)).collect()
}

#[test]
fn a_key_dropped_from_one_listing_page_is_not_reported_deleted() {
    let r = Rig::start();
    r.create(json!({ "pageSize": 3 }));
    let mut want = fill(&r, 10);
    // The next listing (4 pages of 3: the lease and state objects, then k00…k09 without k07)
    // loses k04 from its page; k07 is really deleted.
    r.delete("k07");
    r.proxy.add(Rule { method: "GET", contains: "list-type=2", skip: 0, count: 4, fault: Fault::OmitKey("k04") });
    let polled = r.poll_once().expect("poll");
    assert_eq!(polled["deletes"], json!({ "confirmed": 1, "refuted": 1, "held": 0 }), "{polled}");
    want.push(("deleted".to_string(), "k07".to_string()));
    want.sort();
    assert_eq!(r.seen(), want, "only the true delete fired");
    // The next listing has k04 again: nothing fires (it never left the snapshot).
    r.poll_once().expect("poll");
    assert_eq!(r.seen(), want, "no false created either");
    let read = r.read();
    assert_eq!(read["status"]["deletes"], json!({ "confirmed": 1, "refuted": 1, "heldForNextPoll": 0 }), "{read}");
}

#[test]
fn a_listing_that_returns_half_the_keys_once_makes_no_false_deletes() {
    let r = Rig::start();
    r.create(json!({}));
    let want = fill(&r, 20);
    r.proxy.add(Rule { method: "GET", contains: "list-type=2", skip: 0, count: 1, fault: Fault::HalfKeys });
    let polled = r.poll_once().expect("poll");
    assert_eq!(polled["deletes"], json!({ "confirmed": 0, "refuted": 10, "held": 0 }), "{polled}");
    r.poll_once().expect("poll");
    assert_eq!(r.seen(), want, "0 false deletes, 0 false creates");
    let read = r.read();
    assert_eq!(read["status"]["deletes"], json!({ "confirmed": 0, "refuted": 10, "heldForNextPoll": 0 }), "{read}");
}

#[test]
fn a_dramatic_shrink_too_large_to_confirm_waits_one_poll() {
    let r = Rig::start();
    // No HEAD confirmation at all: only the shrink rule protects.
    r.create(json!({ "verifyDeletes": 0 }));
    let mut want = fill(&r, 20);
    r.proxy.add(Rule { method: "GET", contains: "list-type=2", skip: 0, count: 1, fault: Fault::HalfKeys });
    let polled = r.poll_once().expect("poll");
    assert_eq!(polled["deletes"], json!({ "confirmed": 0, "refuted": 0, "held": 10 }), "{polled}");
    let read = r.read();
    assert_eq!(read["status"]["deletes"]["heldForNextPoll"], 10, "{read}");
    let polled = r.poll_once().expect("poll");
    assert_eq!(polled["deletes"]["held"], 0, "{polled}");
    assert_eq!(r.seen(), want, "the half listing fired nothing");

    // A real mass delete: held once, then reported when the next listing agrees.
    for i in 0..12 {
        r.delete(&format!("k{i:02}"));
        want.push(("deleted".to_string(), format!("k{i:02}")));
    }
    want.sort();
    let polled = r.poll_once().expect("poll");
    assert_eq!(polled["deletes"]["held"], 12, "{polled}");
    assert_eq!(r.seen().len(), 20, "held, not fired");
    let polled = r.poll_once().expect("poll");
    assert_eq!(polled["deletes"]["held"], 0, "{polled}");
    assert_eq!(r.seen(), want, "every true delete fired once");
}
