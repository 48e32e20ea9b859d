//! The feed state where others can write it: the S3 feed keeps its state in the watched bucket,
//! which whoever uploads into it can also write. Through the real `changes` and `poll`
//! binaries in the emulator and moto (SigV4 verified), a bucket writer who knows the state
//! format rewrites the outbox, writes garbage over the state, or turns the lease; nothing
//! forged fires, the uploads around it still fire, and READ keeps saying what happened until
//! an UPDATE acknowledges it. A feed created before states were authenticated keeps working,
//! READ says what that exposes, and an UPDATE moves it over.

use std::path::Path;

use base64::Engine as _;
use serde_json::{json, Value};

use feed_tests::rigs::ProxiedBucket;
use feed_tests::world::USER;
use ow_emulator::FaultRule;
use owfeed::openwhisk::{from_key_values, key_values, QualifiedName};
use owfeed::state::{Seal, State};
use owfeed_s3::Condition;

const STATE: &str = ".owfeed/guest/t.state";
const LEASE: &str = ".owfeed/guest/t.lease";

fn echo() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_echo-action"))
}

fn read(r: &ProxiedBucket) -> Value {
    r.w.feed("READ", "t", json!({})).expect("READ")["status"].clone()
}

fn put(r: &ProxiedBucket, key: &str, body: &str) {
    r.client.put_object(&r.bucket, key, body.as_bytes().to_vec(), Condition::None).expect("put object");
}

fn state_bytes(r: &ProxiedBucket) -> Vec<u8> {
    r.client.get_object(&r.bucket, STATE).expect("get state").expect("state exists").body
}

/// What a writer of the bucket does: writes the feed's objects behind its back.
fn overwrite(r: &ProxiedBucket, key: &str, bytes: Vec<u8>) {
    r.client.put_object(&r.bucket, key, bytes, Condition::None).expect("overwrite");
}

/// Every payload the recorder received, with the `__ow_headers` the controller merged in.
fn received(r: &ProxiedBucket) -> Vec<Value> {
    assert!(r.w.emu.wait_idle(std::time::Duration::from_secs(60)));
    r.w.emu
        .activations(USER)
        .into_iter()
        .filter(|a| a["name"] == "recorder")
        .map(|a| a["response"]["result"]["echo"].clone())
        .collect()
}

fn subjects(events: &[Value]) -> Vec<String> {
    let mut out: Vec<String> = events.iter().map(|e| e["subject"].as_str().unwrap_or("?").to_string()).collect();
    out.sort();
    out
}

/// The feed's config binding `t.owfeed` as a map (the namespace's own view).
fn config(r: &ProxiedBucket) -> serde_json::Map<String, Value> {
    from_key_values(&r.w.user.get_package(&QualifiedName::new(USER, None, "t.owfeed")).unwrap()["parameters"])
}

/// A forger's edit of the genuine event `template`: type, source and data of their choosing, and
/// an `__ow_headers` that would reach the rule's action in place of the fire's own.
fn forged_from(template: &Value) -> Value {
    let mut forged = template.clone();
    forged["id"] = json!("forged-1");
    forged["type"] = json!("org.openwhisk.feeds.s3.object.deleted");
    forged["source"] = json!("https://evil.example/bucket");
    forged["subject"] = json!("payroll.csv");
    forged["data"] = json!({"key": "payroll.csv", "change": "deleted", "injected": true});
    forged["__ow_headers"] = json!({"authorization": "Basic Zm9yZ2VkOmZvcmdlZA=="});
    forged
}

/// The state as a forger who knows the format rebuilds it: everything read as it is (the
/// trailer is not theirs to check), `outbox` replaced, written in the format they can produce
/// whole, with a valid checksum (format 1).
fn forged_state(stored: &[u8], outbox: Vec<Value>) -> Vec<u8> {
    let mut state = State::decode_unverified(stored).expect("the forger reads the format");
    state.outbox = outbox;
    state.encode()
}

/// The next fire of `t` is refused (a 400 is not retried), and one poll runs: the event it
/// found stays in the committed outbox.
fn fail_next_fire(r: &ProxiedBucket) {
    r.w.emu.inject_fault(FaultRule {
        method: Some("POST".into()),
        path_contains: "/triggers/t".into(),
        status: 400,
        body: None,
        count: 1,
        delay_ms: 0,
    });
    let failed = r.w.poll_once("t");
    assert!(failed.as_ref().is_err_and(|e| e.contains("firing trigger")), "{failed:?}");
}

fn the_real_authorization(r: &ProxiedBucket) -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(&r.w.user_key))
}

#[test]
fn a_bucket_writer_who_rewrites_the_outbox_fires_nothing_forged_and_the_upload_beside_it_fires() {
    let r = ProxiedBucket::start("forged-outbox");
    let created = r.create(json!({}), echo());
    assert_eq!(created["stateAuthentication"], "hmac-sha256 (stateKey)", "{created}");
    put(&r, "a.txt", "1");
    r.w.poll();
    let genuine = received(&r);
    assert_eq!(subjects(&genuine), ["a.txt"]);
    assert_eq!(genuine[0]["__ow_headers"]["authorization"], json!(the_real_authorization(&r)));

    // The writer puts the genuine event back into the outbox, rewritten, and uploads in the
    // same interval.
    overwrite(&r, STATE, forged_state(&state_bytes(&r), vec![forged_from(&genuine[0])]));
    put(&r, "b.txt", "2");
    r.w.poll();
    let after: Vec<Value> = received(&r).into_iter().skip(genuine.len()).collect();
    assert_eq!(subjects(&after), ["b.txt"], "only the upload fires: {after:?}");
    for e in &after {
        assert_ne!(e["id"], "forged-1");
        assert_eq!(e["source"], json!(format!("{}/{}", r.proxy.url(), r.bucket)), "{e}");
        assert_eq!(e["__ow_headers"]["authorization"], json!(the_real_authorization(&r)), "{e}");
    }
    let status = read(&r);
    assert_eq!(status["lastOutcome"], "rebaselined", "{status}");
    assert_eq!(status["rebaselined"]["cause"], "rejected", "{status}");
    let reason = status["rebaselined"]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("not authenticated") && reason.contains("replaced by the last authenticated"), "{reason}");

    // The same edit in the sealed format, the old tag kept: refused as well.
    let mut sealed = State::decode_unverified(&state_bytes(&r)).unwrap();
    sealed.outbox = vec![forged_from(&genuine[0])];
    let stored = state_bytes(&r);
    let mut bytes = sealed.encode_sealed(&Seal::new(&owfeed::secret::Secret::new("k".repeat(40)), "guest/t"), 9);
    let n = bytes.len();
    bytes[n - 32..].copy_from_slice(&stored[stored.len() - 32..]);
    overwrite(&r, STATE, bytes);
    r.w.poll();
    assert_eq!(received(&r).len(), genuine.len() + after.len(), "nothing forged fires");

    // Lasting: later quiet polls do not erase it, an UPDATE acknowledges it.
    r.w.poll();
    let status = read(&r);
    assert_eq!(status["lastOutcome"], "ok", "{status}");
    assert_eq!(status["rebaselined"]["cause"], "rejected", "{status}");
    assert_eq!(status["rebaselined"]["acknowledge"], "wsk trigger update t", "{status}");
    r.w.feed("UPDATE", "t", json!({})).expect("UPDATE");
    assert!(read(&r).get("rebaselined").is_none());
}

#[test]
fn garbage_over_the_state_beside_an_upload_costs_nothing_and_read_keeps_the_rejection() {
    let r = ProxiedBucket::start("garbage-state");
    r.create(json!({}), echo());
    put(&r, "a.txt", "1");
    r.w.poll();
    assert_eq!(subjects(&received(&r)), ["a.txt"]);

    put(&r, "b.txt", "2");
    overwrite(&r, STATE, b"\x00 not a state, written by a bucket writer".to_vec());
    // The lease too: an authentic-looking one held for ever by someone else.
    overwrite(&r, LEASE, json!({"holder": "forger", "expiresMs": u64::MAX, "status": null}).to_string().into_bytes());
    let before = read(&r);
    assert!(before["stateError"].as_str().unwrap_or_default().contains("rejected"), "{before}");
    assert!(before["leaseRejected"].as_str().unwrap_or_default().contains("not authenticated"), "{before}");
    r.w.poll();
    assert_eq!(subjects(&received(&r)), ["a.txt", "b.txt"], "the upload beside the garbage fires");
    let status = read(&r);
    assert_eq!(status["rebaselined"]["cause"], "rejected", "{status}");
    assert!(status.get("leaseRejected").is_none(), "the poll wrote an authenticated lease: {status}");
    for body in ["3", "4"] {
        put(&r, "c.txt", body);
        r.w.poll();
        let status = read(&r);
        assert_eq!(status["lastOutcome"], "ok", "{status}");
        assert_eq!(status["rebaselined"]["cause"], "rejected", "still reported: {status}");
    }
    assert_eq!(subjects(&received(&r)), ["a.txt", "b.txt", "c.txt", "c.txt"]);

    // A writer who deletes the state: the same, with its own cause.
    r.client.delete_object(&r.bucket, STATE).expect("delete state");
    put(&r, "d.txt", "4");
    r.w.poll();
    assert_eq!(subjects(&received(&r)).last().map(String::as_str), Some("d.txt"));
    assert_eq!(read(&r)["rebaselined"]["cause"], "missing");
}

#[test]
fn a_copy_of_an_older_state_put_back_is_a_rollback_and_nothing_in_it_fires() {
    let r = ProxiedBucket::start("rollback");
    r.create(json!({}), echo());
    // A state whose outbox still holds a genuine event: the fire failed once.
    put(&r, "a.txt", "1");
    fail_next_fire(&r);
    assert!(received(&r).is_empty());
    assert_eq!(read(&r)["eventsPending"], 1);
    let old = state_bytes(&r);
    r.w.poll();
    assert_eq!(subjects(&received(&r)), ["a.txt"]);
    // The writer saved that state and puts it back: authentic, but older than what the feed wrote.
    overwrite(&r, STATE, old);
    put(&r, "b.txt", "2");
    r.w.poll();
    assert_eq!(subjects(&received(&r)), ["a.txt", "b.txt"], "a.txt is not fired again, b.txt fires");
    let status = read(&r);
    let reason = status["rebaselined"]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("rolled back"), "{status}");

    // A poller without a copy (the action re-deployed: a new process) tells the rollback by
    // the authenticated lease, and fires nothing from the old state; without a newer copy it
    // can only re-baseline, and READ says what was not reported.
    let old = state_bytes(&r);
    put(&r, "c.txt", "3");
    r.w.poll();
    overwrite(&r, STATE, old);
    r.w.set_poll_timeout(60_000);
    put(&r, "d.txt", "4");
    r.w.poll();
    assert_eq!(subjects(&received(&r)), ["a.txt", "b.txt", "c.txt"], "nothing of the old state fires again");
    let status = read(&r);
    let reason = status["rebaselined"]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("rolled back") && reason.contains("were not reported"), "{status}");
}

#[test]
fn a_feed_created_before_keys_keeps_working_says_so_and_an_update_seals_it_keeping_its_events() {
    let r = ProxiedBucket::start("legacy");
    r.create(json!({}), echo());
    // Make `t` what a feed created before this release is: no stateKey in its config, its
    // state in format 1, a lease without a MAC.
    let mut params = config(&r);
    let key = params.remove("stateKey").and_then(|k| k.as_str().map(str::to_string)).expect("a generated key");
    let binding = QualifiedName::new(USER, None, "t.owfeed");
    let doc = r.w.user.get_package(&binding).unwrap();
    r.w.user
        .put_package(&binding, &json!({"binding": doc["binding"], "parameters": key_values(&params)}), true)
        .unwrap();
    let sealed = State::decode_sealed(&state_bytes(&r), &Seal::new(&owfeed::secret::Secret::new(&key), "guest/t"));
    overwrite(&r, STATE, sealed.expect("sealed with the config's key").encode());
    r.client.delete_object(&r.bucket, LEASE).unwrap();

    let status = read(&r);
    assert_eq!(status["stateAuthentication"], "none", "{status}");
    let warning = status["stateWarning"].as_str().unwrap_or_default();
    assert!(warning.contains("not authenticated") && warning.contains("wsk trigger update t"), "{warning}");
    // It works as it did: trusting its state.
    put(&r, "a.txt", "1");
    r.w.poll();
    assert_eq!(subjects(&received(&r)), ["a.txt"]);
    // Even so a stored `__ow_headers` never reaches the action (defence in depth).
    let template = received(&r)[0].clone();
    overwrite(&r, STATE, forged_state(&state_bytes(&r), vec![forged_from(&template)]));
    r.w.poll();
    let got = received(&r);
    assert_eq!(got.len(), 2, "a legacy feed trusts its state: {got:?}");
    assert_eq!(got[1]["id"], "forged-1");
    assert_eq!(got[1]["__ow_headers"]["authorization"], json!(the_real_authorization(&r)), "{}", got[1]);

    // An event pending in the legacy state (its fire failed), then `wsk trigger update t`.
    put(&r, "b.txt", "2");
    fail_next_fire(&r);
    assert_eq!(read(&r)["eventsPending"], 1);
    let updated = r.w.feed("UPDATE", "t", json!({})).expect("UPDATE");
    assert_eq!(updated["stateKey"], "added: the state is authenticated from now on", "{updated}");
    assert_eq!(updated["stateResealed"], "the state was re-sealed with the new key", "{updated}");
    assert_eq!(config(&r)["stateKey"].as_str().map(str::len), Some(64));
    assert_eq!(&state_bytes(&r)[..9], b"OWFEED\0S\x02", "format 2 now");
    let status = read(&r);
    assert_eq!(status["stateAuthentication"], "hmac-sha256 (stateKey)", "{status}");
    assert!(status.get("stateWarning").is_none(), "{status}");
    assert_eq!(status["eventsPending"], 1, "the pending event survived the move: {status}");
    r.w.poll();
    assert_eq!(subjects(&received(&r)), ["a.txt", "b.txt", "payroll.csv"]);
    // From now on a format-1 forgery is refused.
    let template = received(&r)[0].clone();
    overwrite(&r, STATE, forged_state(&state_bytes(&r), vec![forged_from(&template)]));
    put(&r, "c.txt", "3");
    r.w.poll();
    assert_eq!(subjects(&received(&r)), ["a.txt", "b.txt", "c.txt", "payroll.csv"]);

    // Rotation: a new key, the state re-sealed with it, nothing lost or repeated.
    let old_key = config(&r)["stateKey"].clone();
    let rotated = r.w.feed("UPDATE", "t", json!({"stateKey": "new"})).expect("UPDATE -p stateKey new");
    assert_eq!(rotated["stateKey"], "rotated", "{rotated}");
    assert_ne!(config(&r)["stateKey"], old_key);
    put(&r, "d.txt", "4");
    r.w.poll();
    assert_eq!(subjects(&received(&r)), ["a.txt", "b.txt", "c.txt", "d.txt", "payroll.csv"]);
    assert!(read(&r).get("rebaselined").is_none());
    // The key is never shown, and never removed.
    assert_eq!(r.w.feed("READ", "t", json!({})).unwrap()["config"]["stateKey"], "[redacted]");
    let err = r.w.feed("UPDATE", "t", json!({"stateKey": null})).unwrap_err();
    assert!(err.contains("stateKey"), "{err}");
}
