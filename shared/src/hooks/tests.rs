//! Table tests of the receiver's decisions: modes, header decoding, authentication,
//! handshake, filters and the fire outcome mapping. No I/O.

use std::time::Duration;

use super::*;

impl HookConfig {
    /// The config as the shipped receiver reads it (the registry's hook sources).
    fn from_params_in_registry(params: &Params) -> Result<HookConfig, ParamError> {
        HookConfig::from_params(params, crate::registry::HOOK_SOURCES)
    }
}

const SECRET: &str = "0123456789abcdef0123456789abcdef";

fn config(extra: Value) -> HookConfig {
    let mut p =
        json!({"source": "none", "secret": SECRET, "url": "https://ow/api/v1/web/ns/t.owfeed-hook/receive.http"});
    if let (Value::Object(p), Value::Object(extra)) = (&mut p, extra) {
        p.extend(extra);
    }
    HookConfig::from_params_in_registry(&Params::from_value(p).unwrap()).unwrap()
}

fn post(headers: &[(&str, &str)], body: &[u8]) -> HookRequest {
    let mut h: BTreeMap<String, String> =
        headers.iter().map(|(k, v)| (k.to_ascii_lowercase(), v.to_string())).collect();
    h.entry("authorization".into()).or_insert(format!("Bearer {SECRET}"));
    HookRequest { method: "POST".into(), headers: h, query: String::new(), body: body.to_vec() }
}

fn fired(outcome: Outcome) -> Vec<Value> {
    match outcome {
        Outcome::Fire { events, .. } => events.into_iter().map(|f| f.payload).collect(),
        Outcome::Respond(r) => panic!("expected events, got {r:?}"),
    }
}

fn answered(outcome: Outcome) -> HookResponse {
    match outcome {
        Outcome::Respond(r) => r,
        other => panic!("expected a response, got {other:?}"),
    }
}

fn header<'a>(r: &'a HookResponse, name: &str) -> Option<&'a str> {
    r.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

fn event(id: &str, kind: &str) -> Value {
    json!({"specversion": "1.0", "id": id, "source": "/s", "type": kind})
}

#[test]
fn structured_mode() {
    let body = serde_json::to_vec(&event("1", "a.b")).unwrap();
    let events = fired(process(
        &config(json!({})),
        &post(&[("Content-Type", "application/cloudevents+json; charset=UTF-8")], &body),
    ));
    assert_eq!(events, vec![event("1", "a.b")]);
    let bad = br#"{"specversion": "1.0", "id": "", "source": "/s", "type": "t"}"#;
    let r = answered(process(&config(json!({})), &post(&[("Content-Type", "application/cloudevents+json")], bad)));
    assert_eq!(r.status, 400);
    assert_eq!(r.body["error"], "cloudevent: attribute 'id' must not be empty");
    let r = answered(process(&config(json!({})), &post(&[("Content-Type", "application/cloudevents+json")], b"{oops")));
    assert_eq!(r.status, 400);
}

#[test]
fn batched_mode() {
    let body = serde_json::to_vec(&json!([event("1", "a"), event("2", "b")])).unwrap();
    let events =
        fired(process(&config(json!({})), &post(&[("Content-Type", "Application/CloudEvents-Batch+JSON")], &body)));
    assert_eq!(events, vec![event("1", "a"), event("2", "b")]);
    let body = serde_json::to_vec(&json!([event("1", "a"), {"id": "2"}])).unwrap();
    let r =
        answered(process(&config(json!({})), &post(&[("Content-Type", "application/cloudevents-batch+json")], &body)));
    assert_eq!(r.status, 400);
    let body = serde_json::to_vec(&event("1", "a")).unwrap();
    let r =
        answered(process(&config(json!({})), &post(&[("Content-Type", "application/cloudevents-batch+json")], &body)));
    assert_eq!(r.status, 400);
}

#[test]
fn other_event_formats_are_unsupported_media() {
    for ct in ["application/cloudevents+xml", "application/cloudevents-batch+avro", "application/cloudevents"] {
        let r = answered(process(&config(json!({})), &post(&[("Content-Type", ct)], b"<x/>")));
        assert_eq!(r.status, 415, "{ct}");
    }
}

#[test]
fn binary_mode_decodes_headers_once() {
    let req = post(
        &[
            ("ce-specversion", "1.0"),
            ("ce-id", "42"),
            ("ce-source", "/my%20source"),
            ("ce-type", "com.example.x"),
            // The HTTP binding spec's own example (3.1.3.2).
            ("ce-subject", "Euro%20%E2%82%AC%20%F0%9F%98%80"),
            ("ce-myext", "100%2541"),
            ("Content-Type", "application/json"),
        ],
        br#"{"a": 1}"#,
    );
    let events = fired(process(&config(json!({})), &req));
    assert_eq!(
        events,
        vec![json!({
            "specversion": "1.0", "id": "42", "source": "/my source", "type": "com.example.x",
            "subject": "Euro € 😀", "myext": "100%41", "datacontenttype": "application/json", "data": {"a": 1},
        })]
    );
}

#[test]
fn binary_mode_rejects_bad_headers() {
    let base = [("ce-specversion", "1.0"), ("ce-id", "1"), ("ce-source", "/s")];
    for (value, why) in [("%C0%80", "overlong"), ("%FF", "not UTF-8"), ("%G1", "bad escape"), ("abc%2", "short escape")]
    {
        let mut h = base.to_vec();
        h.push(("ce-type", value));
        let r = answered(process(&config(json!({})), &post(&h, b"")));
        assert_eq!(r.status, 400, "{why}");
    }
    let r = answered(process(&config(json!({})), &post(&base, b"")));
    assert_eq!(r.status, 400);
    assert_eq!(r.body["error"], "cloudevent: required attribute 'type' is missing");
}

#[test]
fn binary_mode_data_by_content_type() {
    let h = |ct: &'static str| {
        vec![("ce-specversion", "1.0"), ("ce-id", "1"), ("ce-source", "/s"), ("ce-type", "t"), ("Content-Type", ct)]
    };
    let e = &fired(process(&config(json!({})), &post(&h("text/plain"), b"hi")))[0];
    assert_eq!(e["data"], "hi");
    let e = &fired(process(&config(json!({})), &post(&h("application/octet-stream"), &[0, 255])))[0];
    assert_eq!(e["data_base64"], "AP8=");
    assert!(e.get("data").is_none());
    let r = answered(process(&config(json!({})), &post(&h("application/json"), b"{nope")));
    assert_eq!(r.status, 400);
}

#[test]
fn github_deliveries_are_wrapped() {
    let body = br#"{"ref": "refs/heads/main", "repository": {"html_url": "https://github.com/o/r"}}"#;
    let req =
        post(&[("X-GitHub-Event", "push"), ("X-GitHub-Delivery", "d-1"), ("Content-Type", "application/json")], body);
    let e = &fired(process(&config(json!({"source": "github", "repository": "o/r"})), &req))[0];
    assert_eq!(e["id"], "d-1");
    assert_eq!(e["type"], "com.github.push");
    assert_eq!(e["source"], "https://github.com/o/r");
    assert_eq!(e["data"]["ref"], "refs/heads/main");
    assert!(validate_cloud_event(e).is_ok());
    for source in ["github", "none"] {
        let ping = post(&[("X-GitHub-Event", "ping"), ("Content-Type", "application/json")], b"{}");
        let r = answered(process(&config(json!({"source": source})), &ping));
        assert_eq!((r.status, r.body["status"].clone()), (200, json!("pong")), "{source}");
    }
}

/// A signed request without a token: what the signature does not cover cannot change id,
/// type, source or mode.
fn signed(headers: &[(&str, &str)], body: &[u8]) -> HookRequest {
    let mut req = post(headers, body);
    req.headers.remove("authorization");
    req.headers.insert("x-hub-signature-256".into(), github_signature(&Secret::new(SECRET), body));
    req
}

#[test]
fn signed_deliveries_take_their_identity_from_the_body() {
    let cfg = config(json!({"source": "github", "repository": "o/r"}));
    let body = br#"{"action": "published", "repository": {"html_url": "https://github.com/o/r"}}"#;
    let original =
        signed(&[("X-GitHub-Event", "push"), ("X-GitHub-Delivery", "g-1"), ("Content-Type", "application/json")], body);
    let first = fired(process(&cfg, &original)).remove(0);
    assert_eq!(first["type"], GITHUB_SIGNED_TYPE);
    assert_eq!(first["source"], "https://github.com/o/r");
    assert_eq!(first["subject"], "published");
    assert_eq!((first["githubevent"].clone(), first["githubdelivery"].clone()), (json!("push"), json!("g-1")));
    assert!(first["id"].as_str().unwrap().starts_with("sha256-"));
    let replays = [
        vec![("X-GitHub-Event", "release"), ("X-GitHub-Delivery", "g-2"), ("Content-Type", "application/json")],
        vec![("X-GitHub-Event", "delete"), ("X-GitHub-Delivery", "g-3"), ("Content-Type", "text/plain")],
        vec![
            ("ce-specversion", "1.0"),
            ("ce-id", "g-4"),
            ("ce-type", "com.github.delete"),
            ("ce-source", "https://github.com/other/repo"),
            ("Content-Type", "application/json"),
        ],
        vec![("Content-Type", "application/cloudevents+json")],
        vec![("Content-Type", "application/cloudevents-batch+json")],
    ];
    for headers in replays {
        let e = fired(process(&cfg, &signed(&headers, body))).remove(0);
        for attr in ["id", "type", "source", "subject", "data"] {
            assert_eq!(e[attr], first[attr], "{attr} changed under {headers:?}");
        }
    }
    // A signed structured CloudEvent keeps its own (signed) identity whatever the headers say.
    let ce_body = serde_json::to_vec(&event("s-1", "a.b")).unwrap();
    for ct in ["application/json", "text/plain", "application/cloudevents+json"] {
        let e = fired(process(&cfg, &signed(&[("Content-Type", ct), ("ce-id", "other")], &ce_body))).remove(0);
        assert_eq!(e, event("s-1", "a.b"), "{ct}");
    }
    // With the bearer token, the headers are the producer's word.
    let token = post(&[("X-GitHub-Event", "push"), ("X-GitHub-Delivery", "g-9")], body);
    assert_eq!(fired(process(&cfg, &token))[0]["id"], "g-9");
}

#[test]
fn github_hook_id_must_match_the_registration() {
    let cfg = config(json!({"source": "github", "repository": "o/r", "registration": "42"}));
    let body = br#"{"ref": "x"}"#;
    assert!(matches!(process(&cfg, &signed(&[("X-GitHub-Hook-ID", "42")], body)), Outcome::Fire { .. }));
    assert!(matches!(process(&cfg, &signed(&[], body)), Outcome::Fire { .. }));
    assert_eq!(answered(process(&cfg, &signed(&[("X-GitHub-Hook-ID", "41")], body))).status, 403);
    let ping = br#"{"zen": "z", "hook_id": 41}"#;
    assert_eq!(answered(process(&cfg, &signed(&[("X-GitHub-Event", "ping")], ping))).status, 403);
    let ping = br#"{"zen": "z", "hook_id": 42}"#;
    assert_eq!(answered(process(&cfg, &signed(&[("X-GitHub-Event", "ping")], ping))).status, 200);
}

#[test]
fn signature_hex_is_strict() {
    let body = b"{}";
    let good = github_signature(&Secret::new(SECRET), body);
    let hex = good.strip_prefix("sha256=").unwrap();
    let cfg = config(json!({}));
    let with = |sig: String| {
        let mut r = signed(&[], body);
        r.headers.insert("x-hub-signature-256".into(), sig);
        process(&cfg, &r)
    };
    assert!(matches!(with(good.clone()), Outcome::Fire { .. }));
    // `u8::from_str_radix("+a", 16)` is Ok(10): a sign must not pass as a digit.
    let byte = u8::from_str_radix(&hex[..2], 16).unwrap();
    let signed_pair = format!("+{:x}", byte);
    if signed_pair.len() == 2 {
        assert_eq!(answered(with(format!("sha256={signed_pair}{}", &hex[2..]))).status, 401);
    }
    for bad in [format!("sha256=+{}", &hex[1..]), format!("sha256={} ", &hex[..62]), format!("sha256=0x{}", &hex[2..])]
    {
        assert_eq!(answered(with(bad.clone())).status, 401, "{bad}");
    }
    assert_eq!(hex_decode("+a"), None);
    assert_eq!(hex_decode("0A"), Some(vec![10]));
}

#[test]
fn plain_deliveries_get_a_deterministic_id() {
    let req = post(&[("Content-Type", "application/json")], br#"{"x": 1}"#);
    let a = &fired(process(&config(json!({})), &req))[0];
    let b = &fired(process(&config(json!({})), &req))[0];
    assert_eq!(a["id"], b["id"]);
    assert!(a["id"].as_str().unwrap().starts_with("sha256-"));
    assert_eq!(a["type"], GENERIC_TYPE);
    assert_eq!(a["source"], "https://ow/api/v1/web/ns/t.owfeed-hook/receive.http");
    let other = &fired(process(&config(json!({})), &post(&[("Content-Type", "application/json")], br#"{"x": 2}"#)))[0];
    assert_ne!(a["id"], other["id"]);
    let bin = &fired(process(&config(json!({})), &post(&[("Content-Type", "image/png")], &[1, 2, 3])))[0];
    assert_eq!(bin["data_base64"], "AQID");
    let with_id = &fired(process(&config(json!({})), &post(&[("Webhook-Id", "msg_1")], b"x")))[0];
    assert_eq!(with_id["id"], "msg_1");
}

#[test]
fn authentication() {
    let cfg = config(json!({}));
    let body = br#"{"x": 1}"#;
    let mut req = post(&[("Content-Type", "application/json")], body);
    req.headers.remove("authorization");
    assert_eq!(answered(process(&cfg, &req)).status, 401);

    for bad in ["Bearer wrong", "Basic abc", "Bearer", &format!("Bearer {SECRET}x")] {
        let mut r = req.clone();
        r.headers.insert("authorization".into(), bad.to_string());
        assert_eq!(answered(process(&cfg, &r)).status, 401, "{bad}");
    }
    let mut r = req.clone();
    r.headers.insert("authorization".into(), format!("bearer {SECRET}"));
    assert!(matches!(process(&cfg, &r), Outcome::Fire { .. }));

    let mut r = req.clone();
    r.query = format!("a=1&access_token={SECRET}");
    assert!(matches!(process(&cfg, &r), Outcome::Fire { .. }));
    r.query = "access_token=nope".into();
    assert_eq!(answered(process(&cfg, &r)).status, 401);

    let mut r = req.clone();
    r.headers.insert("x-hub-signature-256".into(), github_signature(&Secret::new(SECRET), body));
    assert!(matches!(process(&cfg, &r), Outcome::Fire { .. }));
    r.body = br#"{"x": 2}"#.to_vec();
    assert_eq!(answered(process(&cfg, &r)).status, 401, "signature over another body");
    r.headers.insert("x-hub-signature-256".into(), "sha256=zz".into());
    assert_eq!(answered(process(&cfg, &r)).status, 401);
}

#[test]
fn github_signature_matches_githubs_example() {
    // From GitHub's "Validating webhook deliveries" documentation.
    assert_eq!(
        github_signature(&Secret::new("It's a Secret to Everybody"), b"Hello, World!"),
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    );
}

#[test]
fn handshake() {
    let options = |headers: &[(&str, &str)]| HookRequest {
        method: "OPTIONS".into(),
        headers: headers.iter().map(|(k, v)| (k.to_ascii_lowercase(), v.to_string())).collect(),
        ..HookRequest::default()
    };
    let r = answered(process(&config(json!({})), &options(&[("WebHook-Request-Origin", "eventemitter.example.com")])));
    assert_eq!(r.status, 200);
    assert_eq!(header(&r, "WebHook-Allowed-Origin"), Some("eventemitter.example.com"));
    assert_eq!(header(&r, "WebHook-Allowed-Rate"), Some("*"));

    let cfg = config(json!({"allowedOrigins": "eventgrid.azure.net", "allowedRate": 120}));
    let r = answered(process(
        &cfg,
        &options(&[
            ("WebHook-Request-Origin", "eventgrid.azure.net"),
            ("WebHook-Request-Rate", "600"),
            ("WebHook-Request-Callback", "https://x"),
        ]),
    ));
    assert_eq!((r.status, header(&r, "WebHook-Allowed-Rate")), (200, Some("120")));
    let r = answered(process(&cfg, &options(&[("WebHook-Request-Origin", "evil.example.com")])));
    assert_eq!(r.status, 403);
    assert_eq!(header(&r, "WebHook-Allowed-Origin"), None);
    let r = answered(process(&cfg, &options(&[])));
    assert_eq!(r.status, 400);
    assert_eq!(header(&r, "WebHook-Allowed-Origin"), None);
    for origin in ["a\u{1}b.example.com", "a\tb", "a b", "é.example.com", "x\u{7f}"] {
        let r = answered(process(&config(json!({})), &options(&[("WebHook-Request-Origin", origin)])));
        assert_eq!((r.status, header(&r, "WebHook-Allowed-Origin")), (400, None), "{origin:?}");
    }
}

#[test]
fn methods_and_size() {
    let mut req = post(&[], b"x");
    req.method = "GET".into();
    let r = answered(process(&config(json!({})), &req));
    assert_eq!((r.status, header(&r, "Allow")), (405, Some("POST, OPTIONS")));
    let r = answered(process(&config(json!({"maxBodyBytes": 4})), &post(&[], b"12345")));
    assert_eq!(r.status, 413);
    // The size check comes before authentication, so an oversized body is never hashed.
    let mut unauth = post(&[], b"12345");
    unauth.headers.remove("authorization");
    assert_eq!(answered(process(&config(json!({"maxBodyBytes": 4})), &unauth)).status, 413);
}

#[test]
fn filters_drop_events_that_do_not_match() {
    let cfg = config(
        json!({"filters": [{"prefix": {"type": "com.github."}}, {"not": {"exact": {"type": "com.github.star"}}}]}),
    );
    let body =
        serde_json::to_vec(&json!([event("1", "com.github.push"), event("2", "com.github.star"), event("3", "x")]))
            .unwrap();
    match process(&cfg, &post(&[("Content-Type", "application/cloudevents-batch+json")], &body)) {
        Outcome::Fire { events, filtered } => {
            assert_eq!(events.into_iter().map(|f| f.payload).collect::<Vec<_>>(), vec![event("1", "com.github.push")]);
            assert_eq!(filtered, 2);
        }
        other => panic!("{other:?}"),
    }
    let err = HookConfig::from_params_in_registry(
        &Params::from_value(json!({"source": "none", "secret": SECRET, "filters": "[{\"sql\": \"a\"}]"})).unwrap(),
    )
    .unwrap_err();
    assert_eq!(err.name, "filters");
}

#[test]
fn paused_hooks_fire_nothing() {
    let body = serde_json::to_vec(&event("1", "a")).unwrap();
    let r = answered(process(
        &config(json!({"paused": true})),
        &post(&[("Content-Type", "application/cloudevents+json")], &body),
    ));
    assert_eq!(r.status, 202);
    assert_eq!(r.body["fired"], 0);
}

#[test]
fn ow_body_decoding() {
    let json_b64 = BASE64.encode(br#"{"a":1}"#);
    assert_eq!(decode_ow_body(&json_b64, "application/json"), br#"{"a":1}"#);
    assert_eq!(decode_ow_body(r#"{"a":1}"#, "application/cloudevents+json; charset=utf-8"), br#"{"a":1}"#);
    assert_eq!(decode_ow_body(&json_b64, "application/cloudevents+json"), br#"{"a":1}"#);
    // "1234" is valid base64 and valid JSON: as JSON it stays.
    assert_eq!(decode_ow_body("1234", "application/json"), b"1234");
    assert_eq!(decode_ow_body("Jane", "text/plain"), b"Jane");
    assert_eq!(decode_ow_body("AQID", "application/octet-stream"), [1, 2, 3]);
    assert_eq!(decode_ow_body("not base64!", "application/octet-stream"), b"not base64!");
    assert_eq!(decode_ow_body("", "application/json"), b"");
    // Not valid JSON: the real bytes, not their base64, are what gets judged and sized.
    for bad in [&b"{oops"[..], b"\xff\xfe", b"[[[[", &[b'['; 300]] {
        assert_eq!(decode_ow_body(&BASE64.encode(bad), "application/json"), bad);
    }
    assert_eq!(decode_ow_body(&BASE64.encode("[1e400]"), "application/json"), b"[1e400]");
    // A charset does not make a binary type text.
    assert_eq!(decode_ow_body("AQID", "application/octet-stream; charset=utf-8"), [1, 2, 3]);
    assert_eq!(decode_ow_body("abcd", "application/x-thing; charset=utf-8"), b"abcd");

    let params = Params::from_value(json!({
        "__ow_method": "post", "__ow_query": "access_token=a%2Bb",
        "__ow_headers": {"Content-Type": "application/json", "x-n": 5}, "__ow_body": json_b64,
    }))
    .unwrap();
    let req = HookRequest::from_params(&params);
    assert_eq!(req.method, "POST");
    assert_eq!(req.body, br#"{"a":1}"#);
    assert_eq!(req.header("x-n"), Some("5"));
    assert_eq!(req.query_param("access_token").as_deref(), Some("a+b"));
}

#[test]
fn json_bodies_are_judged_as_sent_and_numbers_stay_exact() {
    let cfg = config(json!({"maxBodyBytes": 100}));
    let via_ow = |body: &[u8], ct: &str| {
        let params = Params::from_value(json!({
            "__ow_method": "post", "__ow_headers": {"content-type": ct, "authorization": format!("Bearer {SECRET}")},
            "__ow_body": BASE64.encode(body),
        }))
        .unwrap();
        process(&cfg, &HookRequest::from_params(&params))
    };
    let r = answered(via_ow(&[b'x'; 90], "application/json"));
    assert_eq!(r.status, 400, "{r:?}");
    assert!(r.body["error"].as_str().unwrap().contains("expected value at line 1 column 1"), "{r:?}");
    let r = answered(via_ow(&[b'x'; 101], "application/json"));
    assert_eq!(r.status, 413);
    assert!(r.body["error"].as_str().unwrap().starts_with("body of 101 bytes"), "{r:?}");
    let r = answered(via_ow(b"{\"a\": \"\xff\"}", "application/json"));
    assert!(r.body["error"].as_str().unwrap().contains("line 1 column"), "{r:?}");
    let e = fired(via_ow(br#"{"big": 123456789012345678901234567890, "huge": 1e400, "f": 0.1}"#, "application/json"));
    assert_eq!(
        serde_json::to_string(&e[0]["data"]).unwrap(),
        r#"{"big":123456789012345678901234567890,"f":0.1,"huge":1e+400}"#
    );
    let e = fired(via_ow(&[1, 2, 3], "application/octet-stream; charset=utf-8"));
    assert_eq!(e[0]["data_base64"], "AQID");
}

#[test]
fn fire_outcomes() {
    assert_eq!(after_fire(2, 1, None).status, 202);
    let throttled = OwError::Throttled { message: "m".into(), retry_after: Some(Duration::from_secs(7)) };
    let r = after_fire(1, 0, Some(&throttled));
    assert_eq!((r.status, header(&r, "Retry-After")), (429, Some("7")));
    let r = after_fire(0, 0, Some(&OwError::Throttled { message: "m".into(), retry_after: None }));
    assert_eq!(header(&r, "Retry-After"), Some("60"));
    assert_eq!(after_fire(0, 0, Some(&OwError::NotFound("t".into()))).status, 410);
    assert_eq!(after_fire(0, 0, Some(&OwError::BadRequest { status: 413, message: "m".into() })).status, 413);
    let r = after_fire(0, 0, Some(&OwError::Server { status: 503, message: "m".into() }));
    assert_eq!((r.status, header(&r, "Retry-After")), (503, Some("30")));
    assert_eq!(after_fire(0, 0, Some(&OwError::Unauthorized("m".into()))).status, 500);
}

#[test]
fn secrets_are_random_hex() {
    let a = Secret::generate("webhook secret").unwrap();
    let b = Secret::generate("webhook secret").unwrap();
    assert_eq!(a.expose().len(), 64);
    assert!(a.expose().bytes().all(|c| c.is_ascii_hexdigit()));
    assert_ne!(a, b);
}

#[test]
fn web_result_shape() {
    let r = HookResponse::error(429, "slow down").with_header("Retry-After", "5");
    assert_eq!(
        r.to_web_result(),
        json!({"statusCode": 429, "headers": {"Retry-After": "5"}, "body": {"error": "slow down"}})
    );
    assert_eq!(HookResponse::new(200, Value::Null).to_web_result(), json!({"statusCode": 200, "headers": {}}));
}

#[test]
fn header_values_round_trip_through_binary_mode() {
    for value in ["Euro € 😀", "a b", "100%", "\"quoted\"", "%41 stays %41", "ascii-only_~!"] {
        let encoded = crate::events::encode_header_value(value);
        assert!(encoded.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b'"'), "{encoded}");
        let req = post(
            &[("ce-specversion", "1.0"), ("ce-id", "1"), ("ce-source", "/s"), ("ce-type", "t"), ("ce-ext", &encoded)],
            b"",
        );
        let e = &fired(process(&config(json!({})), &req))[0];
        assert_eq!(e["ext"], value, "{encoded}");
    }
}

fn s3_config(extra: Value) -> HookConfig {
    let mut base = json!({"source": "s3", "provider": "ceph", "endpoint": "http://rgw:8000", "bucket": "photos",
        "triggerName": "/guest/uploads"});
    if let (Value::Object(p), Value::Object(extra)) = (&mut base, extra) {
        p.extend(extra);
    }
    config(base)
}

fn ceph_put(key: &str, sequencer: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({"Records": [{"eventVersion": "2.2", "eventSource": "ceph:s3",
        "eventTime": "2026-11-27T18:00:00.000001Z", "eventName": "ObjectCreated:Put",
        "s3": {"bucket": {"name": "photos"}, "object": {"key": key, "size": 3, "eTag": "abc", "sequencer": sequencer}},
        "eventId": "e1"}]}))
    .unwrap()
}

#[test]
fn s3_notifications_fire_the_s3_feeds_events() {
    let c = s3_config(json!({}));
    let events = fired(process(&c, &post(&[("Content-Type", "application/json")], &ceph_put("a b+c", "01"))));
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["type"], "org.openwhisk.feeds.s3.object.created");
    assert_eq!(events[0]["source"], "http://rgw:8000/photos");
    assert_eq!(events[0]["data"]["key"], "a b+c");
    // Ceph cannot send headers: the token in the URL.
    let mut by_query = post(&[("Content-Type", "application/json")], &ceph_put("k", "02"));
    by_query.headers.remove("authorization");
    by_query.query = format!("access_token={SECRET}");
    assert_eq!(fired(process(&c, &by_query)).len(), 1);
    // A batch fires `{"events": [...]}`; filters count what they drop.
    let batched = s3_config(json!({"batch": 10, "suffix": ".jpg"}));
    let body = serde_json::to_vec(&json!({"Records": [
        serde_json::from_slice::<Value>(&ceph_put("a.jpg", "03")).unwrap()["Records"][0],
        serde_json::from_slice::<Value>(&ceph_put("a.png", "04")).unwrap()["Records"][0],
    ]}))
    .unwrap();
    match process(&batched, &post(&[], &body)) {
        Outcome::Fire { events, filtered } => {
            assert_eq!(filtered, 1);
            assert_eq!(events.len(), 1);
            assert_eq!(events[0].payload["events"][0]["data"]["key"], "a.jpg");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn s3_notifications_refuse_what_they_cannot_trust_or_read() {
    let c = s3_config(json!({}));
    let mut unauthenticated = post(&[], &ceph_put("k", "01"));
    unauthenticated.headers.insert("authorization".into(), "Bearer wrong".into());
    assert_eq!(answered(process(&c, &unauthenticated)).status, 401);
    // A GitHub-style body signature is not how S3 providers authenticate.
    let mut signed = unauthenticated.clone();
    signed.headers.remove("authorization");
    signed.headers.insert("x-hub-signature-256".into(), github_signature(&Secret::new(SECRET), &signed.body));
    assert_eq!(answered(process(&c, &signed)).status, 401);
    let r = answered(process(&c, &post(&[], b"not json")));
    assert_eq!(r.status, 400);
    let r = answered(process(&c, &post(&[], br#"{"Records": [{"eventName": "ObjectCreated:Put"}]}"#)));
    assert_eq!((r.status, r.body["error"].as_str().unwrap()), (400, "S3 notification: Records[0]: no s3 object"));
    let paused = s3_config(json!({"paused": true}));
    let r = answered(process(&paused, &post(&[], &ceph_put("k", "01"))));
    assert_eq!((r.status, r.body["dropped"].clone()), (202, json!(1)));
    let p = |extra: Value| {
        let mut base = json!({"source": "s3", "secret": SECRET, "provider": "minio", "endpoint": "http://m",
            "bucket": "b"});
        base.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        HookConfig::from_params_in_registry(&Params::from_value(base).unwrap()).unwrap_err().name
    };
    assert_eq!(p(json!({"filters": [{"exact": {"type": "x"}}]})), "filters");
    assert_eq!(p(json!({"provider": "gcs"})), "provider");
    assert_eq!(p(json!({"bucket": null})), "bucket");
}
