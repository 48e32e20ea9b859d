//! AWS S3 push through SNS, receiving side: SNS envelopes posted to the real `receive` web
//! action in the emulator, through a trigger's `{trigger}.owfeed-hook` binding, signed with the
//! test key (`feed_tests::sns`), the signing certificate served over HTTPS by a local host
//! with a self-made CA standing in for `sns.us-east-1.amazonaws.com`.
//!
//! The trusted-host rule cannot be relaxed by parameters in the shipped action, so these
//! tests deploy the `sns-test-receive` fixture (the same handler, `receive_with`, plus the
//! local host); `shipped_receive_trusts_only_the_sns_host_of_the_topic` shows the shipped
//! `receive` refusing that host with the same parameters. The binding is written the way the
//! hook feed's CREATE writes it (its `provider=aws` registration is another branch's work),
//! with `topicArn` where that registration stores it.

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};

use feed_tests::moto::Moto;
use feed_tests::sns::{moto_route, FakeSnsHost, SnsConfirmations, SnsRelay, SnsSigner, CERT_PATH};
use feed_tests::world::{action_body, latency_line, workspace_bin, World, PACKAGE, USER};
use ow_emulator::{Config, SYSTEM_NAMESPACE};
use owfeed::hooks::feed::{binding_for, receiver_url};
use owfeed::hooks::receiver::batches_record_for;
use owfeed::openwhisk::{from_key_values, key_values, QualifiedName};

const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:owfeed-uploads";
const ENDPOINT: &str = "https://s3.us-east-1.amazonaws.com";
const SECRET: &str = "0123456789abcdef0123456789abcdef";
/// A package holding the shipped `receive`, next to the fixture's.
const SHIPPED: &str = "owfeed-shipped";

struct Sns {
    w: World,
    host: FakeSnsHost,
    signer: SnsSigner,
    http: ureq::Agent,
}

struct Answer {
    status: u16,
    body: Value,
}

impl Sns {
    fn start() -> Sns {
        let w = World::empty(Config::with_namespaces(&[USER]), "sns").expect("start emulator");
        let host = FakeSnsHost::start().expect("start the SNS stand-in");
        // The test host goes on the shared packages, where a deployer would put settings.
        let params = json!([{"key": "snsTestHost", "value": host.host_port()},
            {"key": "snsTestCa", "value": host.ca.ca_pem}]);
        let kv = |pairs: &[&str]| Value::Array(pairs.iter().map(|k| json!({"key": k, "value": true})).collect());
        let ann = kv(&["web-export", "raw-http", "final", "provide-api-key"]);
        let fixture = Path::new(env!("CARGO_BIN_EXE_sns-test-receive")).to_path_buf();
        for (package, binary) in [(PACKAGE, fixture), (SHIPPED, workspace_bin("receive"))] {
            let pkg = QualifiedName::new(SYSTEM_NAMESPACE, None, package);
            w.system.put_package(&pkg, &json!({"publish": true, "parameters": params}), true).unwrap();
            let receive = QualifiedName::new(SYSTEM_NAMESPACE, Some(package), "receive");
            w.system.put_action(&receive, &action_body(&binary, "rust:1.34", ann.clone()).unwrap(), true).unwrap();
        }
        let http = ureq::Agent::config_builder().http_status_as_error(false).build().new_agent();
        Sns { w, host, signer: SnsSigner::new(), http }
    }

    /// A trigger with a rule to the recorder and its hook binding to `package`; returns the
    /// receiver URL. `config` is merged over the binding's parameters (`null` removes one).
    fn hook(&self, trigger: &str, package: &str, config: Value) -> String {
        let name = QualifiedName::new(USER, None, trigger);
        self.w.user.put_trigger(&name, &json!({}), true).unwrap();
        self.w.record_events(trigger, Path::new(env!("CARGO_BIN_EXE_echo-action")));
        let binding = binding_for(&name);
        let url = receiver_url(&self.w.emu.url(), &binding);
        let mut params = json!({"source": "s3", "provider": "aws", "endpoint": ENDPOINT, "bucket": "photos",
            "secret": SECRET, "triggerName": format!("/{USER}/{trigger}"), "url": url, "topicArn": TOPIC});
        for (k, v) in config.as_object().unwrap() {
            match v {
                Value::Null => params.as_object_mut().unwrap().remove(k),
                v => params.as_object_mut().unwrap().insert(k.clone(), v.clone()),
            };
        }
        let body = json!({"binding": {"namespace": SYSTEM_NAMESPACE, "name": package},
            "parameters": key_values(params.as_object().unwrap())});
        self.w.user.put_package(&binding, &body, true).unwrap();
        url
    }

    /// An unsigned envelope of `kind` from our topic, published now, its certificate on the
    /// SNS stand-in.
    fn envelope(&self, kind: &str, message: &str, id: &str) -> Value {
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let mut e = json!({"Type": kind, "MessageId": id, "TopicArn": TOPIC, "Message": message,
            "Timestamp": now, "SigningCertURL": self.host.cert_url()});
        if kind == "Notification" {
            e["Subject"] = json!("Amazon S3 Notification");
            e["UnsubscribeURL"] =
                json!(format!("{}/?Action=Unsubscribe&SubscriptionArn={TOPIC}:0c8f", self.host.url()));
        } else {
            e["Token"] = json!("2336412f37fb687f5d51e6e241d09c805a5a57b30d712f794cc5f6a988666d92");
            // An UnsubscribeConfirmation's SubscribeURL would subscribe again: it is never fetched.
            e["SubscribeURL"] = json!(format!(
                "{}/?Action=ConfirmSubscription&TopicArn={TOPIC}&Token=2336412f37fb687f5d51e6e241d09c805a5a57b30d712f794cc5f6a988666d92",
                self.host.url()
            ));
        }
        e
    }

    fn signed(&self, mut envelope: Value, version: &str) -> Value {
        self.signer.sign(&mut envelope, version);
        envelope
    }

    /// POSTs an envelope as SNS does (text/plain, the message-type and id headers).
    fn post(&self, url: &str, envelope: &Value) -> Answer {
        let kind = envelope["Type"].as_str().unwrap_or("Notification");
        let req = ureq::http::Request::builder()
            .method("POST")
            .uri(url)
            .header("Content-Type", "text/plain; charset=UTF-8")
            .header("x-amz-sns-message-type", kind)
            .header("x-amz-sns-message-id", envelope["MessageId"].as_str().unwrap_or_default())
            .header("x-amz-sns-topic-arn", envelope["TopicArn"].as_str().unwrap_or_default())
            .header("User-Agent", "Amazon Simple Notification Service Agent")
            .body(envelope.to_string().into_bytes())
            .unwrap();
        let mut resp = self.http.run(req).expect("receiver answers");
        let text = resp.body_mut().read_to_string().unwrap_or_default();
        assert!(!text.contains(SECRET), "{text}");
        Answer { status: resp.status().as_u16(), body: serde_json::from_str(&text).unwrap_or(Value::Null) }
    }

    fn events(&self) -> Vec<Value> {
        assert!(self.w.emu.wait_idle(Duration::from_secs(60)), "emulator did not go idle");
        self.w.events()
    }

    /// The `lastFailure` the receiver recorded for `trigger` (what the hook's READ shows).
    fn last_failure(&self, trigger: &str) -> Option<Value> {
        let record = batches_record_for(&QualifiedName::new(USER, None, trigger));
        let doc = self.w.user.get_package(&record).ok()?;
        from_key_values(&doc["parameters"]).remove("lastFailure")
    }
}

/// An S3 event as S3 publishes it to SNS (`Message`), AWS form-encoded key.
fn s3_event(event: &str, key: &str, sequencer: &str) -> String {
    let mut object = json!({"key": key, "sequencer": sequencer});
    if event.starts_with("ObjectCreated") {
        object["size"] = json!(5);
        object["eTag"] = json!("5d41402abc4b2a76b9719d911017c592");
    }
    json!({"Records": [{"eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
        "eventTime": "2026-11-27T18:00:00.250Z", "eventName": event,
        "userIdentity": {"principalId": "AWS:AIDAEXAMPLE"}, "requestParameters": {"sourceIPAddress": "203.0.113.9"},
        "responseElements": {"x-amz-request-id": "C3D13FE58DE4C810"},
        "s3": {"s3SchemaVersion": "1.0", "configurationId": "owfeed-guest-uploads",
            "bucket": {"name": "photos", "ownerIdentity": {"principalId": "A3NL1KOZZKExample"},
                "arn": "arn:aws:s3:::photos"}, "object": object}}]})
    .to_string()
}

/// An S3 event of `n` object writes (`k-00.jpg`, …) in one message, as S3 batches them.
fn s3_events(n: usize) -> String {
    let records: Vec<Value> = (0..n)
        .map(|i| {
            let mut event: Value =
                serde_json::from_str(&s3_event("ObjectCreated:Put", &format!("k-{i:02}.jpg"), &format!("{i:02}")))
                    .unwrap();
            event["Records"][0].take()
        })
        .collect();
    json!({ "Records": records }).to_string()
}

/// The same signed message with its bytes changed where the signature does not look: an
/// unsigned field and the layout (what a stranger holding a captured message can make).
fn variant(signed: &Value, i: usize) -> String {
    let mut v = signed.clone();
    v["UnsubscribeURL"] = json!(format!("https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe&v={i}"));
    if i.is_multiple_of(2) {
        serde_json::to_string_pretty(&v).unwrap()
    } else {
        format!("{}{}", v, " ".repeat(i))
    }
}

/// The subjects (object keys) the trigger received, sorted.
fn keys(events: &[Value]) -> Vec<String> {
    let mut k: Vec<String> = events.iter().map(|e| e["subject"].as_str().unwrap_or("?").to_string()).collect();
    k.sort();
    k
}

fn cert_fetches(s: &Sns) -> usize {
    s.host.requests().iter().filter(|r| r.ends_with(CERT_PATH)).count()
}

#[test]
fn sns_notifications_signed_v1_and_v2_fire_the_s3_feeds_events() {
    let s = Sns::start();
    let url = s.hook("uploads", PACKAGE, json!({}));
    let put =
        s.signed(s.envelope("Notification", &s3_event("ObjectCreated:Put", "albums/beach+day.jpg", "01"), "m-1"), "1");
    let a = s.post(&url, &put);
    assert_eq!((a.status, a.body["fired"].clone()), (202, json!(1)), "{}", a.body);
    let delete = s.signed(
        s.envelope("Notification", &s3_event("ObjectRemoved:Delete", "albums/beach+day.jpg", "02"), "m-2"),
        "2",
    );
    assert_eq!(s.post(&url, &delete).status, 202);
    // SNS retries a delivery with the same envelope: delivered already, nothing fired again.
    let a = s.post(&url, &put);
    assert_eq!((a.status, a.body["status"].clone()), (200, json!("duplicate")), "{}", a.body);
    // S3 notifies a change twice (at least once) in two messages: the same event, the same id.
    let again =
        s.signed(s.envelope("Notification", &s3_event("ObjectCreated:Put", "albums/beach+day.jpg", "01"), "m-1b"), "2");
    assert_eq!(s.post(&url, &again).status, 202);
    // S3's test message on configuration fires nothing.
    let test_event = json!({"Service": "Amazon S3", "Event": "s3:TestEvent", "Time": "2026-11-27T18:00:00.000Z",
        "Bucket": "photos", "RequestId": "5582815E1AEA5ADF", "HostId": "8cLeGAmw"});
    let a = s.post(&url, &s.signed(s.envelope("Notification", &test_event.to_string(), "m-3"), "2"));
    assert_eq!((a.status, a.body["fired"].clone()), (202, json!(0)), "{}", a.body);

    let mut events = s.events();
    events.sort_by_key(|e| e["type"].as_str().unwrap_or_default().to_string());
    let ids: Vec<Value> = events.iter().map(|e| e["id"].clone()).collect();
    assert_eq!(ids.len(), 3, "{events:?}");
    assert_eq!(ids[0], ids[1], "a redelivered notification keeps its id");
    assert_ne!(ids[0], ids[2]);
    for e in &mut events {
        e.as_object_mut().unwrap().remove("id");
    }
    let created = json!({"specversion": "1.0", "source": format!("{ENDPOINT}/photos"),
        "type": "org.openwhisk.feeds.s3.object.created", "subject": "albums/beach day.jpg",
        "time": "2026-11-27T18:00:00.250Z", "datacontenttype": "application/json",
        "data": {"bucket": "photos", "endpoint": ENDPOINT, "key": "albums/beach day.jpg", "change": "created",
            "etag": "5d41402abc4b2a76b9719d911017c592", "size": 5, "lastModified": "2026-11-27T18:00:00.250Z"}});
    let deleted = json!({"specversion": "1.0", "source": format!("{ENDPOINT}/photos"),
        "type": "org.openwhisk.feeds.s3.object.deleted", "subject": "albums/beach day.jpg",
        "time": "2026-11-27T18:00:00.250Z", "datacontenttype": "application/json",
        "data": {"bucket": "photos", "endpoint": ENDPOINT, "key": "albums/beach day.jpg", "change": "deleted"}});
    assert_eq!(events, vec![created.clone(), created, deleted]);
    // The receive process stays warm: the certificate was fetched once for four messages.
    assert_eq!(cert_fetches(&s), 1, "{:?}", s.host.requests());
}

#[test]
fn sns_messages_that_do_not_verify_fire_nothing_and_fetch_nothing_untrusted() {
    let s = Sns::start();
    let url = s.hook("uploads", PACKAGE, json!({}));
    let message = s3_event("ObjectCreated:Put", "a.jpg", "01");
    let good = s.envelope("Notification", &message, "m-1");

    let mut tampered = s.signed(good.clone(), "2");
    tampered["Message"] = json!(s3_event("ObjectCreated:Put", "b.jpg", "01"));
    let a = s.post(&url, &tampered);
    assert_eq!(
        (a.status, a.body["error"].clone()),
        (403, json!("the SNS signature does not verify with the signing certificate"))
    );
    let mut v1_as_v2 = s.signed(good.clone(), "1");
    v1_as_v2["SignatureVersion"] = json!("2");
    assert_eq!(s.post(&url, &v1_as_v2).status, 403);
    let fetched = cert_fetches(&s);
    assert_eq!(fetched, 1, "a signature is checked with the certificate");

    // Nothing below reaches any host: refused before a fetch.
    let mut other_topic = good.clone();
    other_topic["TopicArn"] = json!("arn:aws:sns:us-east-1:123456789012:someone-else");
    let a = s.post(&url, &s.signed(other_topic, "2"));
    assert_eq!((a.status, a.body["error"].clone()), (403, json!("SNS message: TopicArn is not this trigger's topic")));
    let port = s.host.host_port().rsplit(':').next().unwrap().to_string();
    for (cert_url, error) in [
        (
            format!("https://localhost:{port}{CERT_PATH}"),
            "SigningCertURL is not on sns.us-east-1.amazonaws.com, the SNS host of the topic's region",
        ),
        (
            "https://s3.amazonaws.com/my-bucket/cert.pem".to_string(),
            "SigningCertURL is not on sns.us-east-1.amazonaws.com, the SNS host of the topic's region",
        ),
        (format!("http://{}{CERT_PATH}", s.host.host_port()), "SigningCertURL is not an https:// URL"),
        (format!("https://someone@{}{CERT_PATH}", s.host.host_port()), "SigningCertURL carries user-info"),
        (format!("{}/cert.txt", s.host.url()), "SigningCertURL is not a .pem certificate URL"),
    ] {
        let mut e = good.clone();
        e["SigningCertURL"] = json!(cert_url);
        let a = s.post(&url, &s.signed(e, "1"));
        assert_eq!((a.status, a.body["error"].clone()), (403, json!(error)), "{cert_url}");
    }
    let mut unsigned = good.clone();
    unsigned["SignatureVersion"] = json!("1");
    let a = s.post(&url, &unsigned);
    assert_eq!((a.status, a.body["error"].clone()), (400, json!("SNS message: no Signature")));
    assert_eq!(cert_fetches(&s), fetched, "{:?}", s.host.requests());
    assert_eq!(s.host.requests().len(), fetched, "{:?}", s.host.requests());
    // Refusals of what the sender got wrong write nothing in the user's namespace.
    assert_eq!(s.last_failure("uploads"), None);

    // The same message, signed as SNS signs it, fires (the setup is sound).
    assert_eq!(s.post(&url, &s.signed(good, "2")).status, 202);
    assert_eq!(s.events().len(), 1);
}

/// Nothing that has not been verified writes in the namespace: an unsigned envelope naming
/// the right topic and a certificate URL on the SNS host that 404s gets 502 (SNS would retry;
/// a certificate cannot be checked without it) and leaves the namespace as it was, no
/// `lastFailure`, no record package. The refusal is remembered: the same URL again costs no
/// fetch.
#[test]
fn an_unverified_envelope_writes_nothing_and_a_refused_certificate_is_fetched_once() {
    let s = Sns::start();
    let url = s.hook("uploads", PACKAGE, json!({}));
    let before = s.w.user_entities().unwrap();
    let mut e = s.envelope("Notification", &s3_event("ObjectCreated:Put", "a.jpg", "01"), "m-1");
    e["SigningCertURL"] = json!(format!("{}/SimpleNotificationService-missing.pem", s.host.url()));
    e["SignatureVersion"] = json!("2");
    e["Signature"] = json!("bm90IGEgc2lnbmF0dXJl");
    let a = s.post(&url, &e);
    assert_eq!(a.status, 502, "{}", a.body);
    assert_eq!(s.last_failure("uploads"), None);
    assert_eq!(s.w.user_entities().unwrap(), before, "the namespace is untouched");
    let fetched = s.host.requests().len();
    assert_eq!(fetched, 1, "{:?}", s.host.requests());
    for _ in 0..3 {
        let a = s.post(&url, &e);
        assert_eq!(a.status, 502, "{}", a.body);
        assert!(a.body["error"].as_str().unwrap().contains("HTTP 404"), "{}", a.body);
    }
    assert_eq!(s.host.requests().len(), fetched, "a refused URL is not fetched again: {:?}", s.host.requests());
    assert_eq!(s.w.user_entities().unwrap(), before);
    assert_eq!(s.events().len(), 0);
}

/// Replays of a captured, signed notification. SNS retries a message for at most 3600 s with
/// its signed `Timestamp` unchanged ("The total policy retry time for an HTTP/S endpoint
/// cannot be greater than 3,600 seconds. This is a hard limit", AWS SNS Developer Guide,
/// "Amazon SNS message delivery retries", docs.aws.amazon.com/sns/latest/dg/
/// sns-message-delivery-retries.html), so an older one is refused; a delivered `MessageId` is
/// remembered, so a replay, in any variant, fires nothing; and a throttled message's cut batch
/// is kept under its `MessageId`, so 21 variants of it cannot push it out of the record (they
/// used to: the retry then fired the delivered events again).
#[test]
fn replays_of_a_signed_notification_fire_nothing_and_cannot_evict_a_cut_batch() {
    let s = Sns::start();
    let url = s.hook("uploads", PACKAGE, json!({}));
    // OpenWhisk counts fires per calendar minute: the throttled posts must share one.
    if feed_tests::world::left_in_minute() < 40_000 {
        feed_tests::world::sleep_into_next_minute(200);
    }
    s.w.emu.set_fires_per_minute(Some(5));
    let genuine = s.signed(s.envelope("Notification", &s3_events(12), "m-throttled"), "2");
    let a = s.post(&url, &genuine);
    assert_eq!((a.status, a.body["fired"].clone()), (429, json!(5)), "{}", a.body);
    // A stranger's variants of it: the same delivery (0 fired: still throttled), not new ones.
    for i in 0..21 {
        let req = ureq::http::Request::builder()
            .method("POST")
            .uri(&url)
            .header("Content-Type", "text/plain; charset=UTF-8")
            .header("x-amz-sns-message-type", "Notification")
            .body(variant(&genuine, i).into_bytes())
            .unwrap();
        assert_eq!(s.http.run(req).unwrap().status().as_u16(), 429);
    }
    s.w.emu.set_fires_per_minute(None);
    let a = s.post(&url, &genuine);
    assert_eq!(
        (a.status, a.body["fired"].clone(), a.body["skipped"].as_array().map(Vec::len)),
        (202, json!(7), Some(5)),
        "{}",
        a.body
    );
    let expected: Vec<String> = (0..12).map(|i| format!("k-{i:02}.jpg")).collect();
    assert_eq!(keys(&s.events()), expected, "each event once");

    // Delivered: the message and its variants are answered 2xx (SNS stops) and fire nothing.
    let a = s.post(&url, &genuine);
    assert_eq!((a.status, a.body["status"].clone()), (200, json!("duplicate")), "{}", a.body);
    let req = ureq::http::Request::builder()
        .method("POST")
        .uri(&url)
        .header("x-amz-sns-message-type", "Notification")
        .body(variant(&genuine, 3).into_bytes())
        .unwrap();
    assert_eq!(s.http.run(req).unwrap().status().as_u16(), 200);
    // Published in 2001, signed: outside SNS's retry window, refused before any fetch.
    let mut old = s.envelope("Notification", &s3_event("ObjectCreated:Put", "old.jpg", "99"), "m-2001");
    old["Timestamp"] = json!("2001-01-01T00:00:00.000Z");
    let fetched = cert_fetches(&s);
    let a = s.post(&url, &s.signed(old, "2"));
    assert_eq!(a.status, 403, "{}", a.body);
    assert!(a.body["error"].as_str().unwrap().contains("outside the 3900 s"), "{}", a.body);
    assert_eq!(cert_fetches(&s), fetched);
    assert_eq!(keys(&s.events()), expected, "nothing more fired");
}

/// An SNS notification whose fires outlast `receive`'s time: the receiver stops before its
/// deadline (and before SNS's 15 s), keeps the cut batch under the `MessageId` and answers
/// 503, which SNS retries ("Amazon SNS considers all 5XX errors and 429 (too many requests
/// sent) errors as retryable", AWS SNS Developer Guide, "Fanout to HTTP/S endpoints",
/// docs.aws.amazon.com/sns/latest/dg/SendMessageToHttp.https.ca.html); SNS's retries of the
/// same message deliver every record once.
#[test]
fn a_notification_slower_than_the_receivers_time_is_completed_by_snss_retries() {
    let s = Sns::start();
    let receive = QualifiedName::new(SYSTEM_NAMESPACE, Some(PACKAGE), "receive");
    s.w.system.put_action(&receive, &json!({"limits": {"timeout": 6000}}), true).unwrap();
    let url = s.hook("uploads", PACKAGE, json!({}));
    let genuine = s.signed(s.envelope("Notification", &s3_events(16), "m-slow"), "1");
    s.w.emu.inject_fault(ow_emulator::FaultRule {
        method: Some("POST".into()),
        path_contains: "/triggers/uploads".into(),
        status: 0,
        body: None,
        count: 10_000,
        delay_ms: 400,
    });
    let mut statuses = Vec::new();
    for _ in 0..10 {
        let a = s.post(&url, &genuine);
        statuses.push(a.status);
        if a.status == 202 {
            break;
        }
        assert!(a.body["fired"].as_u64().is_some_and(|n| n > 0), "{}", a.body);
    }
    s.w.emu.clear_faults();
    assert_eq!(statuses.last(), Some(&202), "{statuses:?}");
    assert!(statuses.len() > 1 && statuses[..statuses.len() - 1].iter().all(|s| *s == 503), "{statuses:?}");
    let expected: Vec<String> = (0..16).map(|i| format!("k-{i:02}.jpg")).collect();
    assert_eq!(keys(&s.events()), expected, "each record once");
}

#[test]
fn sns_subscription_is_confirmed_only_when_signed_and_on_the_topics_host() {
    let s = Sns::start();
    let url = s.hook("uploads", PACKAGE, json!({}));
    let confirm = s.envelope("SubscriptionConfirmation", "You have chosen to subscribe to the topic.", "c-1");
    let confirmations = |s: &Sns| s.host.requests().iter().filter(|r| r.contains("Action=ConfirmSubscription")).count();

    // Unsigned, or signed over other values: never followed.
    let a = s.post(&url, &confirm);
    assert_eq!((a.status, a.body["error"].clone()), (400, json!("SNS message: no SignatureVersion")));
    let mut forged = s.signed(confirm.clone(), "1");
    forged["Token"] = json!("another-token");
    assert_eq!(s.post(&url, &forged).status, 403);
    // Signed, but the SubscribeURL points at another host (or asks something else): refused.
    let port = s.host.host_port().rsplit(':').next().unwrap().to_string();
    let foreign = confirm["SubscribeURL"].as_str().unwrap().replace(s.host.url(), &format!("https://localhost:{port}"));
    let mut e = confirm.clone();
    e["SubscribeURL"] = json!(foreign);
    let a = s.post(&url, &s.signed(e, "2"));
    assert_eq!(
        (a.status, a.body["error"].clone()),
        (403, json!("SubscribeURL is not on sns.us-east-1.amazonaws.com, the SNS host of the topic's region"))
    );
    let mut e = confirm.clone();
    e["SubscribeURL"] =
        json!(confirm["SubscribeURL"].as_str().unwrap().replace(TOPIC, "arn:aws:sns:us-east-1:123456789012:other"));
    assert_eq!(s.post(&url, &s.signed(e, "2")).status, 403);
    assert_eq!(confirmations(&s), 0, "{:?}", s.host.requests());

    let a = s.post(&url, &s.signed(confirm.clone(), "2"));
    assert_eq!((a.status, a.body.clone()), (200, json!({"status": "confirmed", "topicArn": TOPIC})));
    assert_eq!(confirmations(&s), 1, "{:?}", s.host.requests());
    let confirmed = s.host.requests().into_iter().find(|r| r.contains("ConfirmSubscription")).unwrap();
    assert!(confirmed.starts_with("GET /?Action=ConfirmSubscription&TopicArn="), "{confirmed}");
    assert!(confirmed.ends_with("&Token=2336412f37fb687f5d51e6e241d09c805a5a57b30d712f794cc5f6a988666d92"));

    // Unsubscribed: acknowledged, nothing fetched, nothing fired.
    let before = s.host.requests().len();
    let bye = s.signed(s.envelope("UnsubscribeConfirmation", "You have unsubscribed.", "u-1"), "1");
    let a = s.post(&url, &bye);
    assert_eq!((a.status, a.body.clone()), (200, json!({"status": "unsubscribed", "topicArn": TOPIC})));
    assert_eq!(s.host.requests().len(), before);
    assert!(s.events().is_empty());
}

#[test]
fn shipped_receive_trusts_only_the_sns_host_of_the_topic() {
    let s = Sns::start();
    // The shipped action, with the very parameters that make the fixture trust the local host.
    let url = s.hook("shipped", SHIPPED, json!({}));
    let e = s.signed(s.envelope("Notification", &s3_event("ObjectCreated:Put", "a.jpg", "01"), "m-1"), "2");
    let a = s.post(&url, &e);
    assert_eq!(
        (a.status, a.body["error"].clone()),
        (403, json!("SigningCertURL is not on sns.us-east-1.amazonaws.com, the SNS host of the topic's region"))
    );
    assert!(s.host.requests().is_empty(), "{:?}", s.host.requests());

    // A hook whose registration has not stored its topic yet: 503, which SNS retries.
    let url = s.hook("early", PACKAGE, json!({"topicArn": null}));
    let a = s.post(&url, &s.signed(s.envelope("SubscriptionConfirmation", "hi", "c-1"), "2"));
    assert_eq!((a.status, a.body["error"].clone()), (503, json!("the hook has no topicArn yet: retry")));
    // Without the SNS header, an aws hook still wants its token.
    let req = ureq::http::Request::builder().method("POST").uri(&url).body(e.to_string().into_bytes()).unwrap();
    assert_eq!(s.http.run(req).unwrap().status().as_u16(), 401);
    assert!(s.events().is_empty());
}

/// A query API call to moto's SNS (form POST); returns the text of `<element>` in the answer.
fn moto_sns(moto: &Moto, form: &str, element: &str) -> String {
    let mut resp = ureq::post(moto.endpoint())
        .header("Authorization", moto_route("sns"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .send(form)
        .expect("moto SNS answers");
    let xml = resp.body_mut().read_to_string().unwrap();
    let open = format!("<{element}>");
    let start = xml.find(&open).unwrap_or_else(|| panic!("no <{element}> in {xml}")) + open.len();
    xml[start..start + xml[start..].find("</").unwrap()].to_string()
}

/// S3 → SNS → HTTPS end to end on moto: moto publishes the bucket's notifications to an SNS
/// topic and posts them to the subscribed HTTP endpoint, a relay in front of the receiver
/// (`feed_tests::sns::SnsRelay`: it adds the SNS headers moto leaves out and serves moto's
/// signing certificate over HTTPS; where it must fix moto's zone-less `eventTime` it signs
/// again with the test key). Deletes reach the receiver too: see
/// `hook_create_with_provider_aws_on_moto_fires_puts_overwrites_and_deletes`.
#[test]
fn moto_s3_to_sns_to_https_fires_the_s3_feeds_events() {
    let s = Sns::start();
    let moto = Moto::shared_unverified().expect("moto");
    let bucket = Moto::unique_bucket("sns");
    moto.create_bucket(&bucket).unwrap();
    let topic = moto_sns(moto, &format!("Action=CreateTopic&Name=owfeed-{bucket}"), "TopicArn");
    let url = s.hook("uploads", PACKAGE, json!({"topicArn": topic, "endpoint": moto.endpoint(), "bucket": bucket}));
    let relay = SnsRelay::start(moto.endpoint(), &url, s.host.handle()).unwrap();
    let encode = |v: &str| -> String {
        v.bytes()
            .map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") })
            .collect()
    };
    let form = format!("Action=Subscribe&TopicArn={}&Protocol=http&Endpoint={}", encode(&topic), encode(relay.url()));
    moto_sns(moto, &form, "SubscriptionArn");

    let config = format!(
        "<NotificationConfiguration><TopicConfiguration><Id>owfeed-uploads</Id><Topic>{topic}</Topic>\
         <Event>s3:ObjectCreated:*</Event><Event>s3:ObjectRemoved:*</Event></TopicConfiguration></NotificationConfiguration>"
    );
    let resp = ureq::put(format!("{}/{bucket}?notification", moto.endpoint()))
        .header("Authorization", moto_route("s3"))
        .send(config)
        .expect("moto S3 answers");
    assert_eq!(resp.status().as_u16(), 200);
    // S3's test message, with moto's own signature and certificate: verified as moto signed it.
    let first = relay.relayed();
    assert_eq!(first.len(), 1, "{first:?}");
    assert!(!first[0].resigned);
    assert_eq!((first[0].status, first[0].answer["fired"].clone()), (202, json!(0)), "{first:?}");

    let etag1 = moto.put(&bucket, "albums/beach day.jpg", b"hello").unwrap();
    let etag2 = moto.put(&bucket, "albums/beach day.jpg", b"hello again").unwrap();
    let relayed = relay.relayed();
    assert_eq!(relayed.len(), 3, "{relayed:?}");
    assert!(relayed[1..].iter().all(|r| r.resigned && r.status == 202 && r.answer["fired"] == 1), "{relayed:?}");

    let mut events = s.events();
    events.sort_by_key(|e| e["data"]["size"].as_u64());
    let got: Vec<Value> = events
        .iter()
        .map(|e| json!([e["type"], e["source"], e["subject"], e["data"]["key"], e["data"]["etag"], e["data"]["size"]]))
        .collect();
    let source = format!("{}/{bucket}", moto.endpoint());
    let created = "org.openwhisk.feeds.s3.object.created";
    assert_eq!(
        got,
        vec![
            json!([created, source, "albums/beach day.jpg", "albums/beach day.jpg", etag1.trim_matches('"'), 5]),
            json!([created, source, "albums/beach day.jpg", "albums/beach day.jpg", etag2.trim_matches('"'), 11]),
        ]
    );
    assert_ne!(events[0]["id"], events[1]["id"], "two writes of one key are two events");
}

/// The whole `provider aws` path on moto (S3 and SNS, SigV4 verified): the real `hook` feed
/// action's CREATE makes the topic, policy, subscription and bucket notification; moto's S3
/// publishes each write to that topic and moto's SNS posts it to the subscribed receiver URL,
/// whose API host is an [`SnsRelay`] in front of the emulator (it adds the headers moto leaves
/// out and fixes moto's zone-less `eventTime`, see `feed_tests::sns`); the receiver verifies the
/// signature and fires the S3 feed's exact events.
///
/// moto 5.2.1 sends no `SubscriptionConfirmation` and marks every subscription confirmed at
/// once (moto/sns/models.py `subscribe`), so topic calls go through [`SnsConfirmations`], which
/// plays AWS's confirmation: sent while `Subscribe` runs, before the feed has stored
/// `topicArn`, it gets 503; once the config is stored the feed subscribes again, SNS sends a
/// new confirmation, and the receiver confirms it, so CREATE ends confirmed.
#[test]
fn hook_create_with_provider_aws_on_moto_fires_puts_overwrites_and_deletes() {
    let s = Sns::start();
    let moto = Moto::shared().expect("moto");
    let bucket = Moto::unique_bucket("awspush");
    moto.create_bucket(&bucket).unwrap();
    let feed = QualifiedName::new(SYSTEM_NAMESPACE, Some(PACKAGE), "hook");
    let ann = Value::Array(["feed", "provide-api-key"].iter().map(|k| json!({"key": k, "value": true})).collect());
    s.w.system.put_action(&feed, &action_body(&workspace_bin("hook"), "rust:1.34", ann).unwrap(), true).unwrap();
    let relay = SnsRelay::in_front_of(moto.endpoint(), &s.w.emu.url(), s.host.handle()).unwrap();
    let trigger = QualifiedName::new("_", None, "uploads");
    let body = json!({"annotations": [{"key": "feed", "value": feed.to_string()}], "parameters": []});
    s.w.user.put_trigger(&trigger, &body, false).unwrap();
    s.w.record_events("uploads", Path::new(env!("CARGO_BIN_EXE_echo-action")));
    let invoke = |event: &str, params: Value| -> Value {
        s.w.feed_of("hook", event, "uploads", params).unwrap_or_else(|e| panic!("{event}: {e}"))
    };
    let sns = SnsConfirmations::start(moto.endpoint(), s.host.handle()).unwrap();
    let created = invoke(
        "CREATE",
        json!({"source": "s3", "provider": "aws", "endpoint": moto.endpoint(), "snsEndpoint": sns.url(),
            "bucket": bucket, "accessKeyId": moto.access_key_id(), "secretAccessKey": moto.secret_access_key(),
            "apiHost": relay.url()}),
    );
    let url = created["url"].as_str().unwrap().to_string();
    assert!(url.starts_with(relay.url()), "{created}");
    assert_eq!(created["producer"]["pendingConfirmation"], false, "{created}");
    let read = invoke("READ", json!({}));
    let topic = read["config"]["topicArn"].as_str().expect("topicArn stored").to_string();
    assert_eq!(read["status"]["producer"]["pendingConfirmation"], false, "{read}");
    assert_eq!(read["status"]["producer"]["subscription"], read["config"]["subscriptionArn"], "{read}");
    // The first confirmation (during Subscribe) and S3's test message (when the bucket entry
    // is added, the last step of `register`) arrive before the feed stores `topicArn`: 503.
    // The confirmation sent for the second Subscribe, after the config is stored, is confirmed.
    let early = json!("the hook has no topicArn yet: retry");
    let first: Vec<(u16, Value)> = relay.relayed().into_iter().map(|r| (r.status, r.answer)).collect();
    assert_eq!(
        first,
        vec![
            (503, json!({"error": early})),
            (503, json!({"error": early})),
            (200, json!({"status": "confirmed", "topicArn": topic}))
        ]
    );
    assert_eq!(sns.sent().len(), 2, "{:?}", sns.sent());
    let confirmed: Vec<String> =
        s.host.requests().into_iter().filter(|r| r.starts_with("GET /?Action=ConfirmSubscription")).collect();
    assert_eq!(confirmed.len(), 1, "{confirmed:?}");

    let key = "albums/beach day.jpg";
    let etag1 = moto.put(&bucket, key, b"hello").unwrap();
    let etag2 = moto.put(&bucket, key, b"hello again").unwrap();
    moto.delete(&bucket, key).unwrap();
    let relayed = relay.relayed();
    assert_eq!(relayed.len(), 6, "{relayed:?}");
    assert!(relayed[3..].iter().all(|r| r.status == 202 && r.answer["fired"] == 1), "{relayed:?}");

    // In the order the trigger accepted the fires: the recorder's rule invocations run at once
    // and may finish in another order.
    assert_eq!(s.events().len(), 3, "{:?}", s.events());
    let events = s.w.fired("uploads");
    let source = format!("{}/{bucket}", moto.endpoint());
    let time = |e: &Value| e["time"].as_str().unwrap_or_default().to_string();
    let mut got = events.clone();
    for e in &mut got {
        let o = e.as_object_mut().unwrap();
        o.remove("id");
        o.remove("time");
        o["data"].as_object_mut().unwrap().remove("lastModified");
    }
    let created_event = |etag: &str, size: u64| {
        json!({"specversion": "1.0", "source": source, "type": "org.openwhisk.feeds.s3.object.created",
            "subject": key, "datacontenttype": "application/json",
            "data": {"bucket": bucket, "endpoint": moto.endpoint(), "key": key, "change": "created",
                "etag": etag.trim_matches('"'), "size": size}})
    };
    let deleted = json!({"specversion": "1.0", "source": source, "type": "org.openwhisk.feeds.s3.object.deleted",
        "subject": key, "datacontenttype": "application/json",
        "data": {"bucket": bucket, "endpoint": moto.endpoint(), "key": key, "change": "deleted"}});
    assert_eq!(got, vec![created_event(&etag1, 5), created_event(&etag2, 11), deleted], "{events:?}");
    // moto's eventTime is its local time (see SnsRelay): only its shape is checked.
    for e in &events {
        assert!(time(e).ends_with('Z'), "{e}");
        if let Some(modified) = e["data"].get("lastModified") {
            assert_eq!(*modified, json!(time(e)), "{e}");
        }
    }
    let ids: std::collections::BTreeSet<&str> = events.iter().filter_map(|e| e["id"].as_str()).collect();
    assert_eq!(ids.len(), 3, "every write is its own event: {events:?}");

    let deleted_result = invoke("DELETE", json!({}));
    assert!(deleted_result.get("notRemoved").is_none(), "{deleted_result}");
    let answer = sns_topics(moto);
    assert!(!answer.contains(&topic), "the feed's topic is gone");
    for result in [&created, &read, &deleted_result] {
        assert!(!result.to_string().contains(moto.secret_access_key()), "{result}");
    }
}

/// moto's topics (signed ListTopics).
fn sns_topics(moto: &Moto) -> String {
    let answer = moto.client().query_api("sns", &[("Action", "ListTopics"), ("Version", "2010-03-31")]).unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

/// A receiver SNS cannot reach (here: an API host nothing listens on) never confirms: CREATE
/// still succeeds (the registration is in place and confirms once the receiver is reachable
/// and SNS is asked again), but CREATE's and READ's `producer` say the subscription is pending
/// confirmation and what to do, so the trigger is not silently deaf.
#[test]
fn an_unconfirmed_aws_subscription_is_shown_as_pending() {
    let s = Sns::start();
    let moto = Moto::shared().expect("moto");
    let bucket = Moto::unique_bucket("awspending");
    moto.create_bucket(&bucket).unwrap();
    let feed = QualifiedName::new(SYSTEM_NAMESPACE, Some(PACKAGE), "hook");
    let ann = Value::Array(["feed", "provide-api-key"].iter().map(|k| json!({"key": k, "value": true})).collect());
    s.w.system.put_action(&feed, &action_body(&workspace_bin("hook"), "rust:1.34", ann).unwrap(), true).unwrap();
    let sns = SnsConfirmations::start(moto.endpoint(), s.host.handle()).unwrap();
    let unreachable = format!("http://{}", std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap());
    let trigger = QualifiedName::new("_", None, "deaf");
    let body = json!({"annotations": [{"key": "feed", "value": feed.to_string()}], "parameters": []});
    s.w.user.put_trigger(&trigger, &body, false).unwrap();
    let invoke = |event: &str, params: Value| -> Value {
        s.w.feed_of("hook", event, "deaf", params).unwrap_or_else(|e| panic!("{event}: {e}"))
    };
    let created = invoke(
        "CREATE",
        json!({"source": "s3", "provider": "aws", "endpoint": moto.endpoint(), "snsEndpoint": sns.url(),
            "bucket": bucket, "accessKeyId": moto.access_key_id(), "secretAccessKey": moto.secret_access_key(),
            "apiHost": unreachable}),
    );
    assert_eq!(created["status"], "created", "{created}");
    assert_eq!(created["producer"]["pendingConfirmation"], true, "{created}");
    // Subscribed twice: once in `register`, once more after the config was stored.
    assert_eq!(sns.sent().iter().map(|(_, status)| *status).collect::<Vec<_>>(), vec![0, 0]);
    let read = invoke("READ", json!({}));
    let producer = &read["status"]["producer"];
    assert_eq!(producer["pendingConfirmation"], true, "{read}");
    assert_eq!(producer["subscription"], read["config"]["subscriptionArn"], "{read}");
    assert!(producer["problem"].as_str().unwrap().contains("pending confirmation"), "{read}");
    let deleted = invoke("DELETE", json!({}));
    assert!(deleted.get("notRemoved").is_none(), "{deleted}");
}

/// Benchmark, not a test (`#[ignore]`, prints, asserts only that every write fired): push
/// mode's write-to-fire latency on moto for 50 writes, the time from the start of an object
/// PUT until it returned. moto publishes to SNS and SNS posts to the subscriber inside the
/// PUT request, and the relay answers moto only after the receiver answered (after
/// `fire_trigger` was accepted), so each figure is an upper bound of write-to-fire through
/// the real `receive` action (debug build, in the emulator) plus the relay's re-signing. Also
/// printed: the receiver's own time per delivery, and polling's best case on the same servers
/// ([`poll_write_to_fire`]).
/// `cargo test -p feed-tests --test suite sns::bench_push_write_to_fire -- --ignored --nocapture`
#[test]
#[ignore]
fn bench_push_write_to_fire() {
    let s = Sns::start();
    let moto = Moto::shared().expect("moto");
    let bucket = Moto::unique_bucket("awsbench");
    moto.create_bucket(&bucket).unwrap();
    let feed = QualifiedName::new(SYSTEM_NAMESPACE, Some(PACKAGE), "hook");
    let ann = Value::Array(["feed", "provide-api-key"].iter().map(|k| json!({"key": k, "value": true})).collect());
    s.w.system.put_action(&feed, &action_body(&workspace_bin("hook"), "rust:1.34", ann).unwrap(), true).unwrap();
    let relay = SnsRelay::in_front_of(moto.endpoint(), &s.w.emu.url(), s.host.handle()).unwrap();
    let sns = SnsConfirmations::start(moto.endpoint(), s.host.handle()).unwrap();
    let body = json!({"annotations": [{"key": "feed", "value": feed.to_string()}], "parameters": []});
    s.w.user.put_trigger(&QualifiedName::new("_", None, "bench"), &body, false).unwrap();
    s.w.record_events("bench", Path::new(env!("CARGO_BIN_EXE_echo-action")));
    let p = json!({"lifecycleEvent": "CREATE", "triggerName": "/_/bench", "authKey": s.w.user_key,
        "source": "s3", "provider": "aws", "endpoint": moto.endpoint(), "snsEndpoint": sns.url(),
        "bucket": bucket, "accessKeyId": moto.access_key_id(), "secretAccessKey": moto.secret_access_key(),
        "apiHost": relay.url()});
    let created = s.w.user.invoke(&feed, &p, true).expect("CREATE");
    assert_eq!(created["producer"]["pendingConfirmation"], false, "{created}");
    let before = relay.relayed().len();
    let writes = 50;
    let mut millis: Vec<f64> = Vec::new();
    for i in 0..writes {
        let started = std::time::Instant::now();
        moto.put(&bucket, &format!("bench/{i}.txt"), b"hello").unwrap();
        millis.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    let relayed = relay.relayed();
    assert!(relayed[before..].iter().all(|r| r.status == 202 && r.answer["fired"] == 1), "{relayed:?}");
    assert_eq!(relayed.len() - before, writes);
    assert_eq!(s.events().len(), writes);
    // The same PUTs to a bucket without notifications: what moto's PUT costs by itself.
    let plain = Moto::unique_bucket("awsbench-plain");
    moto.create_bucket(&plain).unwrap();
    let mut plain_millis: Vec<f64> = Vec::new();
    for i in 0..writes {
        let started = std::time::Instant::now();
        moto.put(&plain, &format!("bench/{i}.txt"), b"hello").unwrap();
        plain_millis.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    let receiver_millis: Vec<f64> = relayed[before..].iter().map(|r| r.took.as_secs_f64() * 1000.0).collect();
    let poll_millis = poll_write_to_fire(&s.w, moto, writes);
    for (what, millis) in [
        ("push write-to-fire", millis),
        ("push, the receiver alone (delivery POST -> 202)", receiver_millis),
        ("PUT without notification", plain_millis),
        ("polling write-to-fire, alarm at once", poll_millis),
    ] {
        eprintln!("{}", latency_line(what, &millis));
    }
}

/// Polling's side of the benchmark, on the same moto and emulator: an S3 feed trigger
/// (`changes`, `poll`) on its own bucket; per write, the time from the start of the PUT until
/// the trigger's fire was accepted, with the alarm fired right after the PUT. Polling's real
/// write-to-fire adds the wait for the alarm, 0 to `interval`.
fn poll_write_to_fire(w: &World, moto: &Moto, writes: usize) -> Vec<f64> {
    let provide = json!([{"key": "provide-api-key", "value": true}]);
    let feed = json!([{"key": "feed", "value": true}, {"key": "provide-api-key", "value": true}]);
    for (name, ann) in [("changes", feed), ("poll", provide)] {
        let action = QualifiedName::new(SYSTEM_NAMESPACE, Some(PACKAGE), name);
        w.system.put_action(&action, &action_body(&workspace_bin(name), "rust:1.34", ann).unwrap(), true).unwrap();
    }
    let bucket = Moto::unique_bucket("pollbench");
    moto.create_bucket(&bucket).unwrap();
    let params = json!({"endpoint": moto.endpoint(), "bucket": bucket, "accessKeyId": moto.access_key_id(),
        "secretAccessKey": moto.secret_access_key()});
    w.create_trigger("polled", params).expect("CREATE of the polling trigger");
    // A fire is recorded as an activation only when the trigger has an active rule.
    w.record_events("polled", Path::new(env!("CARGO_BIN_EXE_echo-action")));
    let mut millis = Vec::new();
    for i in 0..writes {
        assert!(w.emu.wait_idle(Duration::from_secs(60)), "emulator did not go idle");
        let fired = w.fired("polled").len();
        let started = std::time::Instant::now();
        moto.put(&bucket, &format!("bench/{i}.txt"), b"hello").unwrap();
        // The only alarm in this world is the polling trigger's.
        assert_eq!(w.emu.fire_alarms().len(), 1, "one alarm");
        while w.fired("polled").len() == fired {
            assert!(started.elapsed() < Duration::from_secs(60), "write {i} was not fired by the poll");
            std::thread::sleep(Duration::from_millis(2));
        }
        millis.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    millis
}
