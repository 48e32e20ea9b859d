//! Fuzz-style robustness checks: random and mutated inputs at every parser that takes
//! outside input must give a value or a clear error, never a panic. The untrusted parsers:
//! S3 listings, parameters, CloudEvents and filters, the state, webhook requests (every
//! `source`, `s3` included), S3 notifications (`s3push::read_records`), CouchDB `_changes`
//! answers (through the reader's HTTP path) and SNS envelopes (parsing, and the receiving
//! path against an SNS stand-in).
//!
//! A short run is part of the suite; a longer one is `OWFEED_FUZZ_ITERS=200000 cargo test
//! -p feed-tests --test suite fuzz` (the seed is printed on failure with the input).

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{json, Map, Value};

use base64::Engine as _;
use feed_tests::actionloop::{ActionLoop, ResultChannel};
use owfeed::events::{decode_header_value, validate_cloud_event};
use owfeed::filter::{parse_filters, ChangeFilter};
use owfeed::hooks::receiver::receive;
use owfeed::hooks::{decode_ow_body, github_signature, process, HookConfig, HookRequest, Outcome};
use owfeed::params::Params;
use owfeed::registry::HOOK_SOURCES;
use owfeed::runtime::Context;
use owfeed::s3::push::{map_notification, read_records, PushSettings};
use owfeed::s3::sns::{self, Envelope, SnsTrust, TopicArn};
use owfeed::s3::S3Source;
use owfeed::schedule::Schedule;
use owfeed::secret::Secret;
use owfeed::source::{LogSource, Source};
use owfeed::sources::couchdb::CouchDbSource;
use owfeed::state::State;

/// How many inputs each target gets.
fn iterations() -> usize {
    std::env::var("OWFEED_FUZZ_ITERS").ok().and_then(|v| v.parse().ok()).unwrap_or(2000)
}

/// xorshift64*: deterministic, good enough to spread inputs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// A string from an alphabet rich in what parsers trip on.
    fn text(&mut self, max: usize) -> String {
        const PIECES: &[&str] = &[
            "a", "Z", "0", "9", " ", "%", "%2", "%2B", "%zz", "%C3%A9", "%FF", "+", "&", "<", ">", "&amp;", "&#x0;",
            "\"", "'", "/", "//", "/./", "\\", "\n", "\u{0}", "é", "日本", "😀", "{", "}", "[", "]", ":", ",", "*",
            "-", "_", ".", "true", "null", "1e309", "-1", "CREATE", "s3", "https://", "ce-", "=",
        ];
        let n = self.below(max + 1);
        (0..n).map(|_| *self.pick(PIECES)).collect()
    }

    /// A random JSON value, at most `depth` levels deep.
    fn json(&mut self, depth: usize) -> Value {
        match self.below(if depth == 0 { 5 } else { 7 }) {
            0 => Value::Null,
            1 => json!(self.below(2) == 1),
            2 => json!(self.next() as i64 >> self.below(64)),
            3 => json!((self.next() as f64) / 7.0 * if self.below(2) == 1 { -1.0 } else { 1.0 }),
            4 => Value::String(self.text(12)),
            5 => Value::Array((0..self.below(4)).map(|_| self.json(depth - 1)).collect()),
            _ => {
                let mut m = Map::new();
                for _ in 0..self.below(5) {
                    let key = if self.below(3) == 0 { self.text(6) } else { self.pick(KEYS).to_string() };
                    m.insert(key, self.json(depth - 1));
                }
                Value::Object(m)
            }
        }
    }

    /// `bytes` with a few random edits (flip, insert, delete, truncate, duplicate a run).
    fn mutate(&mut self, bytes: &[u8]) -> Vec<u8> {
        let mut out = bytes.to_vec();
        for _ in 0..1 + self.below(4) {
            let at = self.below(out.len() + 1);
            match self.below(5) {
                0 if at < out.len() => out[at] ^= 1 << self.below(8),
                1 => out.insert(at, self.next() as u8),
                2 if at < out.len() => {
                    out.remove(at);
                }
                3 => out.truncate(at),
                _ => {
                    let end = (at + self.below(16)).min(out.len());
                    let run = out[at.min(end)..end].to_vec();
                    out.splice(at..at, run);
                }
            }
        }
        out
    }
}

/// Parameter and attribute names the parsers look for, so random objects hit real paths.
const KEYS: &[&str] = &[
    "endpoint",
    "bucket",
    "accessKeyId",
    "secretAccessKey",
    "region",
    "pathStyle",
    "prefix",
    "suffix",
    "events",
    "format",
    "batch",
    "interval",
    "cron",
    "pageSize",
    "statePrefix",
    "fireExisting",
    "specversion",
    "id",
    "source",
    "type",
    "time",
    "data",
    "data_base64",
    "subject",
    "exact",
    "prefix",
    "all",
    "any",
    "not",
    "value",
    "deadline",
    "lifecycleEvent",
    "triggerName",
    "authKey",
    "__ow_method",
    "__ow_headers",
    "__ow_body",
    "__ow_query",
];

/// Runs `f` on `iterations()` inputs from `make`; a panic fails with the seed and the input.
#[track_caller]
fn fuzz<I: std::fmt::Debug>(name: &str, seed: u64, mut make: impl FnMut(&mut Rng) -> I, f: impl Fn(&I)) {
    let mut rng = Rng(seed);
    for i in 0..iterations() {
        let input = make(&mut rng);
        if catch_unwind(AssertUnwindSafe(|| f(&input))).is_err() {
            panic!("{name}: panic on input #{i} (seed {seed}): {input:?}");
        }
    }
}

const LISTING: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name><Prefix></Prefix><KeyCount>2</KeyCount><MaxKeys>1000</MaxKeys><EncodingType>url</EncodingType><IsTruncated>true</IsTruncated><NextContinuationToken>1%2Fx+y</NextContinuationToken><Contents><Key>a%20b%2Bc</Key><LastModified>2026-11-23T20:00:00.000Z</LastModified><ETag>&quot;9b2cf535f27731c974343645a3985328&quot;</ETag><Size>12</Size><StorageClass>STANDARD</StorageClass></Contents><Contents><Key>z&amp;&lt;&gt;.txt</Key><LastModified>2026-11-23T20:00:00.000Z</LastModified><ETag>"abc-2"</ETag><Size>0</Size></Contents></ListBucketResult>"#;

#[test]
fn s3_listing_and_error_xml_never_panic() {
    fuzz(
        "parse_list_objects_v2",
        1,
        |r| r.mutate(LISTING.as_bytes()),
        |b| {
            let _ = owfeed_s3::parse_list_objects_v2(b, true);
            let _ = owfeed_s3::parse_list_objects_v2(b, false);
            let _ = owfeed_s3::parse_error_body(b);
        },
    );
    fuzz(
        "parse_list_objects_v2 (random)",
        2,
        |r| r.text(40).into_bytes(),
        |b| {
            let _ = owfeed_s3::parse_list_objects_v2(b, true);
        },
    );
    fuzz(
        "decode_form",
        3,
        |r| r.text(20),
        |s| {
            let _ = owfeed_s3::decode_form(s);
        },
    );
}

#[test]
fn parameters_schedules_and_sources_never_panic() {
    fuzz(
        "params",
        4,
        |r| r.json(3),
        |v| {
            let Ok(p) = Params::from_value(v.clone()) else { return };
            for k in KEYS {
                let _ = (p.str(k), p.u64_in(k, 1, 1000), p.bool(k), p.list(k), p.secret(k), p.required_str(k));
            }
            let _ = Schedule::from_params(&p, 1);
            let _ = ChangeFilter::from_params(&p);
            if let Ok(lister) = S3Source.open(&p) {
                let _ = (lister.source_uri(), lister.data_context());
            }
        },
    );
}

#[test]
fn cloudevents_filters_and_header_values_never_panic() {
    fuzz(
        "validate_cloud_event",
        5,
        |r| r.json(3),
        |v| {
            let _ = validate_cloud_event(v);
            let _ = parse_filters(v);
            let _ = parse_filters(&json!([v]));
        },
    );
    fuzz(
        "decode_header_value",
        6,
        |r| r.text(16),
        |s| {
            let _ = decode_header_value(s);
        },
    );
}

#[test]
fn state_objects_never_panic_when_decoded() {
    let mut state = State::new("scope");
    state.outbox.push(json!({"id": "x"}));
    let valid = state.encode();
    fuzz(
        "State::decode",
        7,
        |r| r.mutate(&valid),
        |b| {
            let _ = State::decode(b);
        },
    );
    // Sealed states: the MAC is checked first, and the unverified reader (the dry run's)
    // parses whatever it is given.
    let seal = owfeed::state::Seal::new(&owfeed::secret::Secret::new("k".repeat(64)), "ns/t");
    let sealed = state.encode_sealed(&seal, 3);
    fuzz(
        "State::decode_sealed",
        17,
        |r| r.mutate(&sealed),
        |b| {
            assert!(State::decode_sealed(b, &seal).is_err() || b == sealed.as_slice(), "a mutation verified");
            let _ = State::decode_unverified(b);
        },
    );
}

#[test]
fn webhook_requests_never_panic() {
    let config = HookConfig::from_params(
        &Params::from_value(json!({"source": "none", "secret": "0123456789abcdef0123"})).unwrap(),
        HOOK_SOURCES,
    )
    .expect("hook config");
    fuzz(
        "hooks::process",
        8,
        |r| {
            let mut headers = BTreeMap::new();
            for _ in 0..r.below(4) {
                let name = r.pick(&[
                    "content-type",
                    "authorization",
                    "ce-id",
                    "ce-type",
                    "ce-source",
                    "ce-specversion",
                    "x-hub-signature-256",
                    "webhook-request-origin",
                ]);
                headers.insert(name.to_string(), r.text(10));
            }
            if r.below(2) == 0 {
                headers.insert("authorization".into(), "Bearer 0123456789abcdef0123".into());
            }
            let method = r.pick(&["POST", "OPTIONS", "GET", "PUT", ""]).to_string();
            HookRequest { method, headers, query: r.text(8), body: r.text(30).into_bytes() }
        },
        |req| {
            let _ = process(&config, req);
        },
    );
}

#[test]
fn sns_envelopes_urls_and_topic_arns_never_panic() {
    // Only the pure parts: the receiving path with SnsTrust::aws() would fetch from AWS.
    let topic = "arn:aws:sns:us-east-1:123456789012:owfeed-uploads";
    let mut envelope = json!({"Type": "Notification", "MessageId": "m", "TopicArn": topic, "Subject": "s",
        "Message": "{\"Records\": []}", "Timestamp": "2026-11-27T18:00:00.250Z", "SignatureVersion": "1",
        "Signature": "", "SigningCertURL": "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-0.pem"});
    feed_tests::sns::SnsSigner::new().sign(&mut envelope, "1");
    let envelope = envelope.to_string();
    let cert = ureq::tls::parse_pem(feed_tests::sns::TEST_CERT_PEM.as_bytes())
        .find_map(|i| match i {
            Ok(ureq::tls::PemItem::Certificate(c)) => Some(c.der().to_vec()),
            _ => None,
        })
        .expect("test certificate");
    let parsed_topic = TopicArn::parse(topic).expect("topic");
    let trust = SnsTrust::aws();
    let url = format!("https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn={topic}&Token=t");
    fuzz(
        "hooks::sns",
        11,
        |r| {
            let kind = r.pick(&["Notification", "SubscriptionConfirmation", "UnsubscribeConfirmation", "x"]);
            let body = match r.below(3) {
                0 => r.mutate(envelope.as_bytes()),
                1 => r.json(3).to_string().into_bytes(),
                _ => r.text(40).into_bytes(),
            };
            let arn = String::from_utf8_lossy(&r.mutate(topic.as_bytes())).into_owned();
            let url = String::from_utf8_lossy(&r.mutate(url.as_bytes())).into_owned();
            let mutated_cert = if r.below(2) == 0 { cert.clone() } else { r.mutate(&cert) };
            (kind.to_string(), body, arn, url, mutated_cert)
        },
        |(kind, body, arn, url, cert)| {
            if let Ok(e) = Envelope::parse(kind, body) {
                let _ = e.string_to_sign();
                let _ = e.verify(cert);
                let _ = trust.check_cert_url(&e.signing_cert_url, &parsed_topic);
            }
            if let Ok(t) = TopicArn::parse(arn) {
                let _ = trust.check_cert_url(url, &t);
                let _ = trust.check_subscribe_url(url, &t);
            }
            let _ = trust.check_subscribe_url(url, &parsed_topic);
        },
    );
}

#[test]
fn receiver_full_request_path_never_panics() {
    // From the parameters OpenWhisk passes a raw-HTTP web action (the binding's config merged
    // with `__ow_*`) to the web result, firing included: the API host refuses connections, so
    // every fire and batch-record call fails fast with a transport error.
    let ctx = Context {
        api_host: Some("http://127.0.0.1:1".into()),
        api_key: Some(Secret::new(
            "23bc46b1-71f6-4ed5-8c54-816aa4f8c502:123zO3xZCLrMN6v2BKK1dXYFpXlPkccOFqm12CdAsMgRU4VrNZ9lyGVCGuMDGIwP",
        )),
        namespace: "guest".into(),
        action_name: "/guest/t.owfeed-hook/receive".into(),
        activation_id: "a".into(),
        deadline: None,
    };
    let secret = "0123456789abcdef0123";
    let event = json!({"specversion": "1.0", "id": "1", "source": "/s", "type": "t", "data": {"n": 1}});
    let batch = json!([event, event]);
    fuzz(
        "hooks::receiver::receive",
        10,
        |r| {
            let content_type = r
                .pick(&[
                    "application/json",
                    "application/cloudevents+json",
                    "application/cloudevents-batch+json",
                    "application/octet-stream; charset=utf-8",
                    "text/plain",
                    "application/cloudevents+xml",
                    "",
                ])
                .to_string();
            let body: Vec<u8> = match r.below(6) {
                0 => r.text(40).into_bytes(),
                1 => r.json(3).to_string().into_bytes(),
                2 => r.mutate(event.to_string().as_bytes()),
                3 => r.mutate(batch.to_string().as_bytes()),
                4 => s3_notification(r).to_string().into_bytes(),
                _ => {
                    let body = s3_notification(r).to_string();
                    r.mutate(body.as_bytes())
                }
            };
            // OpenWhisk passes JSON and binary types as base64, text as it is.
            let raw = if r.below(3) == 0 {
                String::from_utf8_lossy(&body).into_owned()
            } else {
                base64::engine::general_purpose::STANDARD.encode(&body)
            };
            let mut headers = Map::new();
            headers.insert("content-type".into(), json!(content_type));
            for _ in 0..r.below(4) {
                let name = r.pick(&[
                    "ce-id",
                    "ce-type",
                    "ce-source",
                    "ce-specversion",
                    "x-github-event",
                    "x-github-delivery",
                    "x-github-hook-id",
                    "webhook-request-origin",
                    "authorization",
                ]);
                headers.insert(name.to_string(), json!(r.text(10)));
            }
            match r.below(3) {
                0 => {
                    headers.insert("authorization".into(), json!(format!("Bearer {secret}")));
                }
                1 => {
                    let decoded = decode_ow_body(&raw, &content_type);
                    let sig = github_signature(&Secret::new(secret), &decoded);
                    headers.insert("x-hub-signature-256".into(), json!(sig));
                }
                _ => {}
            }
            let mut params = json!({
                "source": r.pick(&["none", "github", "subscription", "s3", "bogus"]),
                "secret": secret,
                "triggerName": r.pick(&["/guest/t", "t", "", "/a/b/c/d"]),
                "__ow_method": r.pick(&["post", "options", "get", "POST", ""]),
                "__ow_headers": headers,
                "__ow_query": r.text(8),
                "__ow_body": raw,
            });
            if r.below(2) == 0 {
                params["registration"] = json!(r.pick(&["42", "", "x"]));
            }
            // What a `source=s3` hook's binding holds (ignored by the other sources).
            params["provider"] = json!(r.pick(&["ceph", "minio", "aws", "other"]));
            params["endpoint"] = json!("https://s3.example.com");
            params["bucket"] = json!(r.pick(&["photos", "other", "a/b"]));
            if r.below(3) == 0 {
                params["batch"] = json!(r.pick(&[1, 3, 0, 101]));
            }
            if r.below(3) == 0 {
                params["filters"] = r.json(2);
            }
            if r.below(3) == 0 {
                params["maxBodyBytes"] = r.json(1);
            }
            params
        },
        |params| {
            let params = Params::from_value(params.clone()).expect("an object");
            let result = receive(&ctx, params, HOOK_SOURCES).expect("the receiver always answers over HTTP");
            let status = result["statusCode"].as_u64().expect("a status code");
            assert!((200..600).contains(&status), "{result}");
        },
    );
}

/// One S3 notification record, valid or not field by field, in the AWS, Ceph and MinIO shapes.
fn s3_record(r: &mut Rng) -> Value {
    // Each field valid (in one of its shapes) or, now and then, anything at all.
    let field = |r: &mut Rng, good: &[Value]| if r.below(10) == 0 { r.json(1) } else { r.pick(good).clone() };
    let source = field(r, &[json!("aws:s3"), json!("ceph:s3"), json!("minio:s3"), json!("x:s3")]);
    let name = field(
        r,
        &[
            json!("ObjectCreated:Put"),
            json!("s3:ObjectCreated:Copy"),
            json!("ObjectRemoved:Delete"),
            json!("ObjectLifecycle:Expiration"),
        ],
    );
    let time = field(r, &[json!("2026-11-27T18:00:00.250Z"), json!("2026-11-27T18:00:00.123456+02:00")]);
    let key = if r.below(3) == 0 {
        json!(r.text(12))
    } else {
        field(r, &[json!("a%20b+c.jpg"), json!(".owfeed/x"), json!("k")])
    };
    let size = field(r, &[json!(5), json!(0), json!(u64::MAX), Value::Null]);
    let mut object = json!({"key": key, "size": size, "eTag": field(r, &[json!("\"abc\""), json!("")]),
        "sequencer": field(r, &[json!("0055AED6DCD90281E5"), json!("")]), "versionId": field(r, &[json!("v1"), Value::Null])});
    let mut record = json!({"eventSource": source, "eventName": name, "eventTime": time, "eventId": r.text(6),
        "s3": {"bucket": {"name": field(r, &[json!("photos"), json!("photos"), json!("other")])}, "object": object.take()}});
    // Any field may be missing.
    for pointer in ["/eventName", "/eventTime", "/s3/object/key", "/s3/bucket", "/s3/object/size", "/eventSource"] {
        if r.below(12) == 0 {
            let (parent, name) = pointer.rsplit_once('/').unwrap();
            let target = if parent.is_empty() { Some(&mut record) } else { record.pointer_mut(parent) };
            if let Some(Value::Object(m)) = target {
                m.remove(name);
            }
        }
    }
    record
}

/// A notification body: `Records` of random records, S3's test event, or something else.
fn s3_notification(r: &mut Rng) -> Value {
    match r.below(6) {
        0 => json!({"Event": "s3:TestEvent", "Bucket": "photos"}),
        1 => r.json(3),
        2 => json!({"Records": r.json(2)}),
        _ => json!({"Records": (0..r.below(4)).map(|_| s3_record(r)).collect::<Vec<_>>()}),
    }
}

#[test]
fn s3_notifications_never_panic() {
    let settings = |provider: &str, batch: u64| {
        let params = json!({"provider": provider, "endpoint": "https://s3.example.com", "bucket": "photos",
            "statePrefix": ".owfeed/", "batch": batch, "format": if batch > 1 { "legacy" } else { "cloudevents" }});
        PushSettings::from_params(&Params::from_value(params).unwrap()).expect("push settings")
    };
    let all = [settings("aws", 1), settings("ceph", 3), settings("minio", 1)];
    let fired = AtomicUsize::new(0);
    fuzz(
        "s3::push::read_records",
        12,
        |r| {
            let body = s3_notification(r);
            // Half of them mutated as bytes: only those that still parse reach the reader.
            let bytes =
                if r.below(2) == 0 { r.mutate(body.to_string().as_bytes()) } else { body.to_string().into_bytes() };
            (r.below(3), bytes)
        },
        |(which, bytes)| {
            let Ok(body) = serde_json::from_slice::<Value>(bytes) else { return };
            let settings = &all[*which];
            let mut ignored = Vec::new();
            let read = read_records(settings, &body, &mut ignored);
            let mapped = map_notification(settings, "/guest/t", &body);
            // The mapping refuses exactly what the reader refuses, and fires only valid events.
            assert_eq!(read.is_ok(), mapped.is_ok(), "{body}");
            if let Ok(m) = mapped {
                fired.fetch_add(m.events.len(), Ordering::Relaxed);
                for event in m.events.iter().filter(|e| e.get("specversion").is_some()) {
                    validate_cloud_event(event).unwrap_or_else(|e| panic!("{e}: {event}"));
                }
            }
        },
    );
    assert!(fired.load(Ordering::Relaxed) > 0, "the inputs reach the mapping, not only the refusals");
}

/// A `_changes` answer of CouchDB's shape: rows valid or not field by field.
fn changes_body(r: &mut Rng) -> Value {
    let rows: Vec<Value> = (0..r.below(5))
        .map(|i| {
            let mut row = json!({"seq": if r.below(2) == 0 { json!(i + 1) } else { json!(format!("{}-g1AAAA{}", i + 1, r.text(4))) },
                "id": if r.below(4) == 0 { r.json(1) } else { json!(r.pick(&["doc", ".owfeed/guest/t.state", "_design/x", "é"])) },
                "changes": if r.below(4) == 0 { r.json(2) } else { json!([{"rev": r.pick(&["1-a", "2-b", "x", ""])}]) }});
            if r.below(3) == 0 {
                row["deleted"] = if r.below(2) == 0 { json!(true) } else { r.json(1) };
            }
            if r.below(3) == 0 {
                row["doc"] = r.json(2);
            }
            row
        })
        .collect();
    let mut body =
        json!({"results": rows, "last_seq": if r.below(2) == 0 { json!(7) } else { json!("7-g1AAAA") }, "pending": 0});
    if r.below(6) == 0 {
        body.as_object_mut().unwrap().remove(if r.below(2) == 0 { "last_seq" } else { "results" });
    }
    body
}

/// The CouchDB source's `_changes` reader, through its real HTTP path: a local server answers
/// each read with a random or mutated body (and now and then another status).
#[test]
fn couchdb_changes_answers_never_panic() {
    let server = std::sync::Arc::new(tiny_http::Server::http("127.0.0.1:0").unwrap());
    let url = format!("http://{}", server.server_addr().to_ip().unwrap());
    let answer = std::sync::Arc::new(std::sync::Mutex::new((200u16, Vec::new())));
    let (srv, served) = (server.clone(), answer.clone());
    std::thread::spawn(move || {
        for req in srv.incoming_requests() {
            let (status, body) = served.lock().unwrap().clone();
            let _ = req.respond(tiny_http::Response::from_data(body).with_status_code(status));
        }
    });
    let reader = CouchDbSource
        .open(&Params::from_value(json!({"url": url, "dbname": "db", "includeDocs": true})).unwrap())
        .expect("reader");
    let records = AtomicUsize::new(0);
    fuzz(
        "couchdb _changes",
        13,
        |r| {
            let body = changes_body(r).to_string().into_bytes();
            let bytes = match r.below(4) {
                0 => r.mutate(&body),
                1 => r.text(30).into_bytes(),
                _ => body,
            };
            let status = *r.pick(&[200, 200, 200, 200, 400, 404, 500]);
            (status, bytes, r.below(3) + 1)
        },
        |(status, bytes, limit)| {
            *answer.lock().unwrap() = (*status, bytes.clone());
            if let Ok(batch) = reader.read(Some("5"), *limit, None) {
                records.fetch_add(batch.records.len(), Ordering::Relaxed);
                for record in &batch.records {
                    assert!(!record.key.starts_with(".owfeed/"), "the feed's own document reported: {record:?}");
                }
            }
        },
    );
    server.unblock();
    assert!(records.load(Ordering::Relaxed) > 0, "the inputs reach the records, not only the refusals");
}

/// The SNS receiving path end to end (envelope, topic, certificate URL, Timestamp, the
/// certificate fetched from the SNS stand-in, signature, the S3 event in `Message`): signed
/// envelopes with random messages, and mutated or random bodies. Nothing panics, and only a
/// signed envelope is ever reported verified.
#[test]
fn sns_receiving_path_never_panics() {
    let host = feed_tests::sns::FakeSnsHost::start().expect("SNS stand-in");
    let trust = SnsTrust::with_test_host(&host.host_port(), &host.ca.ca_pem).unwrap();
    let signer = feed_tests::sns::SnsSigner::new();
    let topic = "arn:aws:sns:us-east-1:123456789012:owfeed-uploads";
    let params = Params::from_value(json!({"source": "s3", "provider": "aws", "endpoint": "https://s3.example.com",
        "bucket": "photos", "secret": "0123456789abcdef0123", "triggerName": "/guest/t", "topicArn": topic}))
    .unwrap();
    let config = HookConfig::from_params(&params, HOOK_SOURCES).expect("hook config");
    let settings = PushSettings::from_params(&params).expect("push settings");
    let now = || chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let envelope = |message: String, kind: &str| {
        json!({"Type": kind, "MessageId": "m", "TopicArn": topic, "Message": message, "Timestamp": now(),
            "SigningCertURL": host.cert_url(), "Token": "t", "Subject": "s",
            "SubscribeURL": format!("{}/?Action=ConfirmSubscription&TopicArn={topic}&Token=t", host.url())})
    };
    let mut signed = envelope(s3_notification(&mut Rng(1)).to_string(), "Notification");
    signer.sign(&mut signed, "2");
    // Signing is slow in a debug build: a new signed envelope every 25 inputs.
    let mut fresh = signed.clone();
    let verified_count = AtomicUsize::new(0);
    fuzz(
        "s3::sns::receive",
        14,
        |r| {
            if r.below(25) == 0 {
                let kind = *r.pick(&["Notification", "Notification", "UnsubscribeConfirmation"]);
                let message = if r.below(2) == 0 { s3_notification(r).to_string() } else { r.text(20) };
                fresh = envelope(message, kind);
                let version = if r.below(2) == 0 { "1" } else { "2" };
                signer.sign(&mut fresh, version);
                return (fresh["Type"].as_str().unwrap().to_string(), fresh.to_string().into_bytes(), true);
            }
            let body = match r.below(3) {
                0 => r.mutate(fresh.to_string().as_bytes()),
                1 => r.json(3).to_string().into_bytes(),
                _ => r.mutate(signed.to_string().as_bytes()),
            };
            (
                r.pick(&["Notification", "SubscriptionConfirmation", "UnsubscribeConfirmation", "x"]).to_string(),
                body,
                false,
            )
        },
        |(kind, body, is_signed)| {
            let headers = BTreeMap::from([("x-amz-sns-message-type".to_string(), kind.clone())]);
            let req = HookRequest { method: "POST".into(), headers, query: String::new(), body: body.clone() };
            let (outcome, verified) = sns::receive(&config, &settings, &params, &req, &trust);
            if verified.is_some() {
                verified_count.fetch_add(1, Ordering::Relaxed);
                // Mutated bytes may still carry the signed fields intact (whitespace, unsigned fields).
                let env = Envelope::parse(kind, body).expect("a verified body parses");
                assert_eq!(Some(env.message_id), verified.map(|v| v.message_id));
            }
            if *is_signed {
                assert!(
                    !matches!(outcome, Outcome::Respond(ref r) if r.status == 403),
                    "a signed envelope refused: {outcome:?}"
                );
            }
        },
    );
    assert!(verified_count.load(Ordering::Relaxed) > 0, "signed envelopes get past the signature");
}

#[test]
fn actionloop_survives_random_input_lines() {
    // Through the real protocol: every line gets exactly one result line and the loop goes on.
    let bin = Path::new(env!("CARGO_BIN_EXE_test-action"));
    let mut action = ActionLoop::spawn(bin, &[("__OW_API_HOST", "127.0.0.1:1")], ResultChannel::Fd3).expect("spawn");
    let valid = json!({"value": {"mode": "echo"}, "activation_id": "a", "deadline": "9999999999999"}).to_string();
    let mut rng = Rng(9);
    for i in 0..iterations().min(500) {
        let mutated = rng.mutate(valid.as_bytes());
        // One line per activation: a newline inside would be two activations.
        let line: String = String::from_utf8_lossy(&mutated).replace(['\n', '\r'], " ");
        action.send_line(&line).expect("send");
        let result = action.read_result().unwrap_or_else(|e| panic!("line #{i} {line:?}: {e}"));
        assert!(result.is_object(), "line #{i} {line:?}: {result}");
    }
    let after = action.activate(&serde_json::from_str(&valid).unwrap()).expect("still alive");
    assert_eq!(after["params"]["mode"], "echo", "{after}");
}

#[test]
fn regression_authorization_header_with_a_multibyte_char_at_byte_7_is_a_401_not_a_panic() {
    let config = HookConfig::from_params(
        &Params::from_value(json!({"source": "none", "secret": "0123456789abcdef0123"})).unwrap(),
        HOOK_SOURCES,
    )
    .expect("hook config");
    let headers = BTreeMap::from([("authorization".to_string(), "/0日本 x".to_string())]);
    let req = HookRequest { method: "POST".into(), headers, query: String::new(), body: b"{}".to_vec() };
    match process(&config, &req) {
        owfeed::hooks::Outcome::Respond(r) => assert_eq!(r.status, 401, "{r:?}"),
        other => panic!("expected a 401, got {other:?}"),
    }
}
