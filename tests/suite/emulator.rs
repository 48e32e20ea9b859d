//! The OpenWhisk emulator against the REST API as the wsk CLI and client-js use it: auth,
//! triggers and fires, rules, bindings, actionloop and blackbox actions, activation records, web
//! actions, the alarms feed and fault injection. Actions are real processes (the `echo-action`
//! fixture speaks actionloop by hand; blackbox ones are shell scripts).

use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use feed_tests::emulator_support::{action_body, action_body_from, Api};
use feed_tests::world::{left_in_minute, sleep_into_next_minute};
use ow_emulator::{Config, Emulator, FaultRule};
use serde_json::{json, Value};

const NS: &str = "/api/v1/namespaces";

struct Setup {
    emu: Emulator,
    guest: Api,
    other: Api,
}

fn setup() -> Setup {
    setup_with(Config { alarm_retry_unit: Duration::from_millis(1), ..Config::with_namespaces(&["guest", "other"]) })
}

fn setup_with(config: Config) -> Setup {
    let emu = Emulator::start(config).expect("start emulator");
    let guest = Api::new(&emu.url(), Some(&emu.key("guest").expect("guest key")));
    let other = Api::new(&emu.url(), Some(&emu.key("other").expect("other key")));
    Setup { emu, guest, other }
}

fn echo_binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_echo-action"))
}

/// PUTs the echo fixture as `/_/actions/{name}` with extra body fields merged in.
fn put_echo(api: &Api, name: &str, extra: Value) {
    let mut body = action_body(echo_binary(), "rust:1.34").expect("zip echo-action");
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    let r = api.put(&format!("{NS}/_/actions/{name}"), &body);
    assert_eq!(r.status, 200, "put action {name}: {}", r.text());
}

fn invoke(api: &Api, name: &str, params: Value) -> (u16, Value) {
    let r = api.post(&format!("{NS}/_/actions/{name}?blocking=true&result=true"), &params);
    (r.status, r.json())
}

/// Parameters without the `__ow_headers` the controller merges into every fire.
fn without_headers(params: &Value) -> Value {
    let mut p = params.clone();
    if let Some(m) = p.as_object_mut() {
        m.remove("__ow_headers");
    }
    p
}

/// The trigger activation record with this id.
fn trigger_record(s: &Setup, id: &str) -> Value {
    s.emu.activations("guest").into_iter().find(|a| a["activationId"] == id).expect("trigger activation")
}

fn kv(pairs: &[(&str, Value)]) -> Value {
    Value::Array(pairs.iter().map(|(k, v)| json!({"key": k, "value": v})).collect())
}

#[test]
fn requests_without_valid_basic_auth_get_401_with_the_openwhisk_error_shape() {
    let s = setup();
    let anonymous = Api::new(&s.emu.url(), None);
    let wrong = Api::new(&s.emu.url(), Some("00000000-0000-0000-0000-000000000000:nope"));
    for api in [&anonymous, &wrong] {
        let r = api.get(&format!("{NS}/_/triggers"));
        assert_eq!(r.status, 401);
        assert_eq!(r.json()["error"], "The supplied authentication is invalid");
        assert!(r.json()["code"].as_str().is_some_and(|c| !c.is_empty()), "{}", r.text());
    }
    assert_eq!(s.guest.get(NS).json(), json!(["guest"]));
    assert_eq!(s.guest.get(&format!("{NS}/_/limits")).status, 200);
}

#[test]
fn trigger_crud_conflicts_without_overwrite_and_hides_other_namespaces() {
    let s = setup();
    let path = format!("{NS}/_/triggers/t");
    let r = s.guest.put(&path, &json!({"parameters": kv(&[("a", json!(1))])}));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["namespace"], "guest");
    assert_eq!(r.json()["version"], "0.0.1");
    assert_eq!(s.guest.put(&path, &json!({})).status, 409);
    let r = s.guest.put(&format!("{path}?overwrite=true"), &json!({"parameters": kv(&[("b", json!(2))])}));
    assert_eq!(r.status, 200);
    assert_eq!(s.guest.get(&path).json()["parameters"], kv(&[("b", json!(2))]));
    let names: Vec<Value> =
        s.guest.get(&format!("{NS}/_/triggers")).json().as_array().unwrap().iter().map(|t| t["name"].clone()).collect();
    assert_eq!(names, vec![json!("t")]);
    assert_eq!(s.other.get(&format!("{NS}/guest/triggers/t")).status, 403);
    assert_eq!(s.guest.delete(&path).status, 200);
    assert_eq!(s.guest.get(&path).status, 404);
    assert_eq!(s.guest.delete(&path).status, 404);
}

#[test]
fn fire_answers_204_without_rules_404_when_missing_and_429_over_the_throttle() {
    let s = setup();
    // The throttle counts per calendar minute: these fires must all fall in one.
    if left_in_minute() < 5_000 {
        sleep_into_next_minute(0);
    }
    s.emu.set_fires_per_minute(Some(3));
    assert_eq!(s.guest.put(&format!("{NS}/_/triggers/t"), &json!({})).status, 200);
    let fire = |t: &str| s.guest.post(&format!("{NS}/_/triggers/{t}"), &json!({"x": 1}));
    let r = fire("t");
    assert_eq!(r.status, 204);
    assert!(r.body.is_empty());
    assert_eq!(fire("t").status, 204);
    assert_eq!(fire("missing").status, 404);
    let r = fire("t");
    assert_eq!(r.status, 429);
    assert_eq!(r.json()["error"], "Too many requests in the last minute (count: 4, allowed: 3).");
    // another namespace has its own budget
    assert_eq!(s.other.put(&format!("{NS}/_/triggers/t"), &json!({})).status, 200);
    assert_eq!(s.other.post(&format!("{NS}/_/triggers/t"), &json!({})).status, 204);
    s.emu.set_fires_per_minute(None);
    assert_eq!(fire("t").status, 204);
}

/// apache/openwhisk core/controller/src/main/scala/org/apache/openwhisk/core/controller/
/// Triggers.scala:160-172: the fire's payload is merged over `__ow_headers` (the request's
/// headers, lowercased, without Timeout-Access; pekko keeps Content-Type and Content-Length on
/// the entity), over the trigger's parameters; the record keeps the payload alone (:157). Each
/// rule's action is POSTed with the firing identity's credentials (:410-418).
#[test]
fn fires_merge_ow_headers_under_the_payload_and_rules_run_with_the_firing_key() {
    let s = setup();
    let second_key = s.emu.add_key("guest").unwrap();
    let second = Api::new(&s.emu.url(), Some(&second_key));
    put_echo(&s.guest, "echo", json!({"annotations": kv(&[("provide-api-key", json!(true))])}));
    s.guest
        .put(&format!("{NS}/_/triggers/t"), &json!({"parameters": kv(&[("from", json!("trigger")), ("x", json!(0))])}));
    assert_eq!(s.guest.put(&format!("{NS}/_/rules/r"), &json!({"trigger": "/_/t", "action": "/_/echo"})).status, 200);

    let body = br#"{"x": 1}"#.to_vec();
    let r = second.raw("POST", &format!("{NS}/_/triggers/t"), Some("application/json"), &[("X-Custom", "Yes")], body);
    assert_eq!(r.status, 202, "{}", r.text());
    let fired = r.json()["activationId"].as_str().unwrap().to_string();
    assert!(s.emu.wait_idle(Duration::from_secs(30)));
    let echo = s.emu.activations("guest").into_iter().find(|a| a["cause"] == fired.as_str()).expect("rule activation");
    let params = &echo["response"]["result"]["echo"];
    assert_eq!(without_headers(params), json!({"from": "trigger", "x": 1}));
    let headers = params["__ow_headers"].as_object().unwrap();
    assert_eq!(headers["x-custom"], "Yes");
    let basic = base64::engine::general_purpose::STANDARD.encode(&second_key);
    assert_eq!(headers["authorization"], format!("Basic {basic}"));
    assert!(headers.contains_key("host"), "{headers:?}");
    assert!(!headers.contains_key("content-type") && !headers.contains_key("content-length"), "{headers:?}");
    // run as the identity that fired, not as the namespace's first key
    let uuid = |key: &str| key.split(':').next().unwrap().to_string();
    assert_eq!(echo["response"]["result"]["api_key_uuid"], uuid(&second_key));
    assert_ne!(uuid(&second_key), uuid(&s.emu.key("guest").unwrap()));
    assert_eq!(trigger_record(&s, &fired)["response"]["result"], json!({"x": 1}));

    // a payload field named __ow_headers wins over the headers
    let r = s.guest.post(&format!("{NS}/_/triggers/t"), &json!({"__ow_headers": "mine"}));
    let fired = r.json()["activationId"].as_str().unwrap().to_string();
    assert!(s.emu.wait_idle(Duration::from_secs(30)));
    let echo = s.emu.activations("guest").into_iter().find(|a| a["cause"] == fired.as_str()).unwrap();
    assert_eq!(echo["response"]["result"]["echo"]["__ow_headers"], "mine");
}

/// apache/openwhisk core/controller/src/main/scala/org/apache/openwhisk/core/entitlement/
/// RateThrottler.scala:73-110: fires and invocations count in fixed calendar-minute buckets
/// (`currentTimeMillis / 60000`), every attempt counted, refused when `count > allowed`
/// (ActivationThrottler.scala:64-66), with common/scala/.../http/ErrorResponse.scala:67-68's
/// message; the bucket empties at the minute boundary, not 60 s after the first attempt.
#[test]
fn fires_and_invocations_are_throttled_in_calendar_minute_buckets() {
    let s = setup();
    put_echo(&s.guest, "echo", json!({}));
    s.guest.put(&format!("{NS}/_/triggers/t"), &json!({}));
    s.emu.set_fires_per_minute(Some(2));
    s.emu.set_invocation_limits(ow_emulator::InvocationLimits { per_minute: Some(2), concurrent: None });
    if left_in_minute() < 12_000 {
        sleep_into_next_minute(0);
    }
    // late in a minute: a rolling window would still refuse right after the boundary
    std::thread::sleep(Duration::from_millis(left_in_minute().saturating_sub(10_000)));
    let fire = || s.guest.post(&format!("{NS}/_/triggers/t"), &json!({}));
    let invoke = || s.guest.post(&format!("{NS}/_/actions/echo?blocking=true&result=true"), &json!({}));
    assert_eq!((fire().status, fire().status), (204, 204));
    let refused = fire();
    assert_eq!(refused.status, 429);
    assert_eq!(refused.json()["error"], "Too many requests in the last minute (count: 3, allowed: 2).");
    assert_eq!((invoke().status, invoke().status), (200, 200));
    let refused = invoke();
    assert_eq!(refused.status, 429);
    assert_eq!(refused.json()["error"], "Too many requests in the last minute (count: 3, allowed: 2).");
    assert_eq!(invoke().json()["error"], "Too many requests in the last minute (count: 4, allowed: 2).");

    sleep_into_next_minute(200);
    assert_eq!((fire().status, fire().status, fire().status), (204, 204, 429));
    assert_eq!((invoke().status, invoke().status, invoke().status), (200, 200, 429));
    // What the throttles refused, as tests count it.
    assert_eq!(s.emu.refusals("guest"), ow_emulator::Refusals { fires: 2, invocations: 3 });
    assert_eq!(s.emu.refusals("other"), ow_emulator::Refusals::default());
}

/// Rule-fired actions are invoked through the actions API as the firing identity
/// (Triggers.scala:330-420), so the invocation throttles apply (Entitlement.scala:197-214): the
/// fire is still accepted (202) and the refusal is only a line in the trigger's activation,
/// ApplicationError (1) with the throttle's message (Triggers.scala:357-372, :425-435).
#[test]
fn rule_invocations_are_throttled_like_invokes_and_logged_in_the_trigger_activation() {
    let s = setup();
    put_echo(&s.guest, "echo", json!({}));
    s.guest.put(&format!("{NS}/_/triggers/t"), &json!({}));
    s.guest.put(&format!("{NS}/_/rules/r"), &json!({"trigger": "/_/t", "action": "/_/echo"}));
    put_echo(&s.guest, "webecho", json!({"annotations": kv(&[("web-export", json!(true))])}));
    s.emu.set_invocation_limits(ow_emulator::InvocationLimits { per_minute: None, concurrent: Some(1) });
    let slow = s.guest.post(&format!("{NS}/_/triggers/t"), &json!({"sleep_ms": 2_000}));
    assert_eq!(slow.status, 202);
    let first = slow.json()["activationId"].as_str().unwrap().to_string();
    let busy = s.guest.post(&format!("{NS}/_/triggers/t"), &json!({}));
    assert_eq!(busy.status, 202, "a throttled rule does not refuse the fire");
    let second = busy.json()["activationId"].as_str().unwrap().to_string();
    let invoke = s.guest.post(&format!("{NS}/_/actions/echo?blocking=true"), &json!({}));
    assert_eq!(invoke.status, 429);
    let message = "Too many concurrent requests in flight (count: 1, allowed: 1).";
    assert_eq!(invoke.json()["error"], message);
    // web actions run as their owner, under the same throttles (WebActions.scala:760-766)
    let web = Api::new(&s.emu.url(), None).post("/api/v1/web/guest/default/webecho.json", &json!({}));
    assert_eq!((web.status, web.json()["error"].clone()), (429, json!(message)));
    // Counted: the rule invocation the accepted fire could not make, the invoke, the web action.
    assert_eq!(s.emu.refusals("guest").invocations, 3);
    assert!(s.emu.wait_idle(Duration::from_secs(30)));

    let log =
        |id: &str| -> Value { serde_json::from_str(trigger_record(&s, id)["logs"][0].as_str().unwrap()).unwrap() };
    assert_eq!((log(&first)["statusCode"].clone(), log(&first)["success"].clone()), (json!(0), json!(true)));
    let refused = log(&second);
    assert_eq!(
        refused,
        json!({"statusCode": 1, "success": false, "error": message, "rule": "guest/r", "action": "guest/echo"})
    );
    let echoes = s.emu.activations("guest").into_iter().filter(|a| a["name"] == "echo").count();
    assert_eq!(echoes, 1);
}

/// apache/openwhisk core/controller/src/main/scala/org/apache/openwhisk/core/controller/
/// WebActions.scala:686-689: an activation that is neither a success nor an application error
/// (a crash, a timeout) answers 400 with common/.../http/ErrorResponse.scala:218's message.
#[test]
fn a_crashed_or_timed_out_web_action_answers_400_error_processing_your_request() {
    let s = setup();
    let web = Api::new(&s.emu.url(), None);
    put_echo(
        &s.guest,
        "echo",
        json!({"annotations": kv(&[("web-export", json!(true))]), "limits": {"timeout": 1_000}}),
    );
    for ask in [json!({"exit": true}), json!({"sleep_ms": 3_000}), json!({"garbage": true})] {
        let r = web.post("/api/v1/web/guest/default/echo.json", &ask);
        assert_eq!(r.status, 400, "{ask}: {}", r.text());
        assert_eq!(r.json()["error"], "There was an error processing your request.", "{ask}");
    }
    assert_eq!(web.post("/api/v1/web/guest/default/echo.json", &json!({})).status, 200);
}

/// `__ow_body` is base64 exactly for media types pekko-http parses as binary and for
/// `application/json` (WebActions.scala:614-625); a registered text type, or an unregistered
/// one with a charset, is text (apache/pekko-http http-core/src/main/scala/org/apache/pekko/
/// http/impl/model/parser/CommonActions.scala:45-63, scaladsl/model/MediaType.scala); a body
/// without Content-Type is `application/octet-stream` (impl/engine/parsing/
/// HttpMessageParser.scala:390-397), which `__ow_headers` shows (WebActions.scala:422-435).
#[test]
fn raw_web_action_bodies_are_base64_exactly_for_binary_types_and_application_json() {
    let s = setup();
    let web = Api::new(&s.emu.url(), None);
    put_echo(&s.guest, "raw", json!({"annotations": kv(&[("web-export", json!(true)), ("raw-http", json!(true))])}));
    let b64 = base64::engine::general_purpose::STANDARD.encode(b"{\"a\":1}");
    for (content_type, base64) in [
        (Some("application/json"), true),
        (Some("application/json; charset=utf-8"), true),
        (Some("application/cloudevents+json"), true),
        (Some("application/cloudevents+json; charset=utf-8"), false),
        (Some("application/vnd.api+json"), false),
        (Some("application/problem+json"), false),
        (Some("application/xml"), false),
        (Some("text/plain"), false),
        (Some("text/x-unknown"), true),
        (Some("image/png"), true),
        (Some("application/octet-stream"), true),
        (None, true),
    ] {
        let r = web.raw("POST", "/api/v1/web/guest/default/raw.json", content_type, &[], br#"{"a":1}"#.to_vec());
        assert_eq!(r.status, 200, "{content_type:?}: {}", r.text());
        let echo = &r.json()["echo"];
        let expected = if base64 { b64.clone() } else { r#"{"a":1}"#.to_string() };
        assert_eq!(echo["__ow_body"], expected, "{content_type:?}");
        let headers = &echo["__ow_headers"];
        assert_eq!(headers["content-type"], content_type.unwrap_or("application/octet-stream"), "{content_type:?}");
        assert!(headers.get("content-length").is_none(), "{headers}");
    }
}

#[test]
fn rules_route_fires_to_their_action_only_while_active() {
    let s = setup();
    put_echo(&s.guest, "echo", json!({}));
    s.guest
        .put(&format!("{NS}/_/triggers/t"), &json!({"parameters": kv(&[("from", json!("trigger")), ("x", json!(0))])}));
    let r = s.guest.put(&format!("{NS}/_/rules/r"), &json!({"trigger": "/_/t", "action": "/_/echo"}));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["status"], "active");
    assert_eq!(s.guest.get(&format!("{NS}/_/triggers/t")).json()["rules"]["guest/r"]["status"], "active");

    let r = s.guest.post(&format!("{NS}/_/triggers/t"), &json!({"x": 1}));
    assert_eq!(r.status, 202, "{}", r.text());
    let trigger_activation = r.json()["activationId"].as_str().unwrap().to_string();
    assert!(s.emu.wait_idle(Duration::from_secs(30)));
    let echoes: Vec<Value> = s.emu.activations("guest").into_iter().filter(|a| a["name"] == "echo").collect();
    assert_eq!(echoes.len(), 1);
    assert_eq!(echoes[0]["cause"], json!(trigger_activation));
    assert_eq!(without_headers(&echoes[0]["response"]["result"]["echo"]), json!({"from": "trigger", "x": 1}));

    let status = |st: &str| s.guest.post(&format!("{NS}/_/rules/r"), &json!({"status": st})).status;
    assert_eq!(status("inactive"), 200);
    assert_eq!(status("inactive"), 200);
    assert_eq!(s.guest.get(&format!("{NS}/_/rules/r")).json()["status"], "inactive");
    assert_eq!(s.guest.post(&format!("{NS}/_/triggers/t"), &json!({})).status, 204);
    assert_eq!(status("active"), 200);
    assert_eq!(s.guest.post(&format!("{NS}/_/triggers/t"), &json!({})).status, 202);

    // the rule's status lives in the trigger document: a recreated trigger has no rules
    s.guest.delete(&format!("{NS}/_/triggers/t"));
    s.guest.put(&format!("{NS}/_/triggers/t"), &json!({}));
    assert_eq!(s.guest.post(&format!("{NS}/_/triggers/t"), &json!({})).status, 204);
    assert_eq!(s.guest.delete(&format!("{NS}/_/rules/r")).status, 200);
    let missing = s.guest.put(&format!("{NS}/_/rules/r2"), &json!({"trigger": "/_/t", "action": "/_/nope"}));
    assert_eq!(missing.status, 400);
    assert!(s.emu.wait_idle(Duration::from_secs(30)));
}

#[test]
fn binding_parameters_merge_package_then_binding_then_action_then_invocation() {
    let s = setup();
    let pkg = json!({"parameters": kv(&[("a", json!("pkg")), ("b", json!("pkg")), ("c", json!("pkg"))])});
    assert_eq!(s.other.put(&format!("{NS}/_/packages/p"), &pkg).status, 200);
    put_echo(&s.other, "p/echo", json!({"parameters": kv(&[("c", json!("action")), ("d", json!("action"))])}));
    let binding = json!({"binding": {"namespace": "other", "name": "p"},
                         "parameters": kv(&[("b", json!("binding")), ("c", json!("binding"))])});
    // binding to another namespace's package needs it published
    assert_eq!(s.guest.put(&format!("{NS}/_/packages/b"), &binding).status, 403);
    let published = json!({"publish": true});
    assert_eq!(s.other.put(&format!("{NS}/_/packages/p?overwrite=true"), &published).status, 200);
    assert_eq!(s.guest.put(&format!("{NS}/_/packages/b"), &binding).status, 200);

    let (status, result) = invoke(&s.guest, "b/echo", json!({"d": "invoke"}));
    assert_eq!(status, 200, "{result}");
    assert_eq!(result["echo"], json!({"a": "pkg", "b": "binding", "c": "action", "d": "invoke"}));
    // it runs as the invoking subject
    assert_eq!(result["namespace"], "guest");
    assert_eq!(result["action_name"], "/other/p/echo");
    assert_eq!(s.other.delete(&format!("{NS}/_/packages/p")).status, 409);
    assert_eq!(s.guest.delete(&format!("{NS}/_/packages/b")).status, 200);
}

#[test]
fn actionloop_actions_run_warm_with_an_empty_environment_and_fail_cleanly() {
    let s = setup();
    put_echo(&s.guest, "echo", json!({}));
    let (status, result) = invoke(&s.guest, "echo", json!({"n": 1}));
    assert_eq!(status, 200, "{result}");
    assert_eq!(result["echo"], json!({"n": 1}));
    assert_eq!(result["env_keys"], json!(["__OW_API_HOST"]));
    assert_eq!(result["action_name"], "/guest/echo");
    assert_eq!(result["has_api_key"], false);
    assert_eq!(result["has_deadline"], true);

    let (status, result) = invoke(&s.guest, "echo", json!({"fail": true}));
    assert_eq!((status, result), (502, json!({"error": "echo-action: failing as asked"})));
    let (status, result) = invoke(&s.guest, "echo", json!({"garbage": true}));
    assert_eq!(status, 502);
    assert!(result["error"].as_str().unwrap().contains("valid JSON response"), "{result}");
    let (status, result) = invoke(&s.guest, "echo", json!({"exit": true}));
    assert_eq!(status, 502);
    assert!(result["error"].as_str().unwrap().contains("exited unexpectedly"), "{result}");
    // the dead container was discarded: the next activation gets a fresh one
    assert_eq!(invoke(&s.guest, "echo", json!({"n": 2})).0, 200);

    let r = s.guest.post(&format!("{NS}/_/actions/echo"), &json!({"n": 3}));
    assert_eq!(r.status, 202);
    assert!(s.emu.wait_idle(Duration::from_secs(30)));
    let id = r.json()["activationId"].as_str().unwrap().to_string();
    let record = s.guest.get(&format!("{NS}/_/activations/{id}")).json();
    assert_eq!(record["response"]["result"]["echo"], json!({"n": 3}));
}

#[test]
fn actions_with_provide_api_key_can_call_back_into_the_api_while_running() {
    let s = setup();
    put_echo(&s.guest, "caller", json!({"annotations": kv(&[("provide-api-key", json!(true))])}));
    s.guest.put(&format!("{NS}/_/triggers/t"), &json!({}));
    let (status, result) = invoke(&s.guest, "caller", json!({"get": "/api/v1/namespaces/_/triggers/t"}));
    assert_eq!(status, 200, "{result}");
    assert_eq!(result["has_api_key"], true);
    assert_eq!(result["get_status"], 200);
}

#[test]
fn action_limits_timeout_kills_the_activation() {
    let s = setup();
    put_echo(&s.guest, "slow", json!({"limits": {"timeout": 300}}));
    let (status, result) = invoke(&s.guest, "slow", json!({"sleep_ms": 5000}));
    assert_eq!(status, 502);
    assert_eq!(result["error"], "The action exceeded its time limits of 300 milliseconds.");
}

#[test]
fn the_ack_is_expected_only_for_kinds_configured_to_wait_for_it() {
    let s =
        setup_with(Config { ack_kinds: vec!["rust:1.34".to_string()], ..Config::with_namespaces(&["guest", "other"]) });
    put_echo(&s.guest, "echo", json!({}));
    let (status, result) = invoke(&s.guest, "echo", json!({"n": 1}));
    assert_eq!(status, 200, "{result}");
    let mut env = result["env_keys"].as_array().unwrap().clone();
    env.sort_by_key(|v| v.to_string());
    assert_eq!(env, vec![json!("__OW_API_HOST"), json!("__OW_WAIT_FOR_ACK")]);
}

#[test]
fn action_zips_without_a_top_level_exec_are_rejected_with_400() {
    let s = setup();
    let mut buf = std::io::Cursor::new(Vec::new());
    {
        let mut zip = zip::ZipWriter::new(&mut buf);
        zip.start_file("bin/exec", zip::write::SimpleFileOptions::default()).unwrap();
        std::io::Write::write_all(&mut zip, b"x").unwrap();
        zip.finish().unwrap();
    }
    let code = base64::engine::general_purpose::STANDARD.encode(buf.into_inner());
    let r = s
        .guest
        .put(&format!("{NS}/_/actions/bad"), &json!({"exec": {"kind": "rust:1.34", "code": code, "binary": true}}));
    assert_eq!(r.status, 400);
    assert!(r.json()["error"].as_str().unwrap().contains("top-level file named 'exec'"), "{}", r.text());
    let r = s.guest.put(&format!("{NS}/_/actions/bad"), &json!({"exec": {"kind": "rust:1.34", "code": "%%%"}}));
    assert_eq!(r.status, 400);
}

#[test]
fn activation_records_keep_results_logs_and_annotations() {
    let s = setup();
    put_echo(&s.guest, "echo", json!({}));
    let r = s.guest.post(&format!("{NS}/_/actions/echo?blocking=true"), &json!({"n": 1}));
    assert_eq!(r.status, 200);
    let record = r.json();
    let id = record["activationId"].as_str().unwrap().to_string();
    assert_eq!(record["response"]["status"], "success");
    assert_eq!(record["response"]["success"], true);
    let annotations = record["annotations"].as_array().unwrap();
    assert!(annotations.contains(&json!({"key": "path", "value": "guest/echo"})));
    assert!(annotations.contains(&json!({"key": "kind", "value": "rust:1.34"})));

    let logs = s.guest.get(&format!("{NS}/_/activations/{id}/logs")).json();
    let logs: Vec<&str> = logs["logs"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert!(logs.iter().any(|l| l.ends_with(&format!("stdout: echo-action: activation {id}"))), "{logs:?}");
    assert!(logs.iter().any(|l| l.ends_with("stderr: echo-action: to stderr")), "{logs:?}");
    let result = s.guest.get(&format!("{NS}/_/activations/{id}/result")).json();
    assert_eq!(result["result"]["echo"], json!({"n": 1}));

    invoke(&s.guest, "echo", json!({"fail": true}));
    let list = s.guest.get(&format!("{NS}/_/activations?name=echo&limit=1&docs=true")).json();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["response"]["status"], "application error");
    assert_eq!(s.other.get(&format!("{NS}/guest/activations/{id}")).status, 403);
    assert_eq!(s.other.get(&format!("{NS}/_/activations/{id}")).status, 404);
}

#[test]
fn blackbox_actions_get_params_as_argv_and_answer_with_the_last_stdout_line() {
    let s = setup();
    let script = b"#!/bin/sh\necho \"log: $__OW_NAMESPACE $__OW_ACTION_NAME\"\necho \"{\\\"args\\\": $1}\"\n";
    let body = action_body_from(script, "blackbox").unwrap();
    assert_eq!(s.guest.put(&format!("{NS}/_/actions/bb"), &body).status, 200);
    let r = s.guest.post(&format!("{NS}/_/actions/bb?blocking=true"), &json!({"k": "v"}));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["response"]["result"], json!({"args": {"k": "v"}}));
    let logs = r.json()["logs"].clone();
    assert!(logs[0].as_str().unwrap().ends_with("stdout: log: guest /guest/bb"), "{logs}");
}

/// The dockerskeleton proxy: `json.dumps(args)` as argv[1] and on stdin up to 131071 bytes, on
/// stdin only above (apache/openwhisk-runtime-docker core/actionProxy/actionproxy.py:141-160);
/// `__OW_API_KEY` only with provide-api-key (apache/openwhisk core/invoker/src/main/scala/org/
/// apache/openwhisk/core/containerpool/ContainerProxy.scala:791-797; the controller stores
/// provide-api-key=false on actions created without it, core/controller/.../Actions.scala:59-71).
#[test]
fn blackbox_input_goes_to_argv_and_stdin_up_to_131071_bytes_and_the_key_only_when_asked() {
    let s = setup();
    let script = b"#!/bin/sh\nn=$(wc -c)\necho \"{\\\"argc\\\": $#, \\\"argv\\\": ${#1}, \\\"stdin\\\": $n, \\\"key\\\": \\\"${__OW_API_KEY:+set}\\\"}\"\n";
    let mut body = action_body_from(script, "blackbox").unwrap();
    assert_eq!(s.guest.put(&format!("{NS}/_/actions/bb"), &body).status, 200);
    body["annotations"] = kv(&[("provide-api-key", json!(true))]);
    assert_eq!(s.guest.put(&format!("{NS}/_/actions/bbkey"), &body).status, 200);
    let run = |action: &str, len: usize| {
        // {"p": "…"} is 9 bytes around the value in Python's json.dumps.
        let r =
            s.guest.post(&format!("{NS}/_/actions/{action}?blocking=true&result=true"), &json!({"p": "x".repeat(len)}));
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()
    };
    assert_eq!(run("bb", 3), json!({"argc": 1, "argv": 12, "stdin": 12, "key": ""}));
    assert_eq!(run("bb", 131_062), json!({"argc": 1, "argv": 131_071, "stdin": 131_071, "key": ""}));
    assert_eq!(run("bb", 131_063), json!({"argc": 0, "argv": 0, "stdin": 131_072, "key": ""}));
    assert_eq!(run("bbkey", 3)["key"], "set");
}

/// The dockerskeleton proxy's result: what follows the last newline before the final
/// character, a dictionary or an array; anything else is "The action did not return a
/// dictionary or array." with the line in the logs (apache/openwhisk-runtime-docker
/// core/actionProxy/actionproxy.py:135-138, :172-194).
#[test]
fn blackbox_results_are_the_last_line_as_the_proxy_splits_it() {
    let s = setup();
    let run = |name: &str, output: &str| {
        let script = format!("#!/bin/sh\nprintf '{output}'\n");
        let body = action_body_from(script.as_bytes(), "blackbox").unwrap();
        assert_eq!(s.guest.put(&format!("{NS}/_/actions/{name}?overwrite=true"), &body).status, 200);
        let r = s.guest.post(&format!("{NS}/_/actions/{name}?blocking=true"), &json!({}));
        (r.json()["response"]["result"].clone(), r.json()["logs"].clone())
    };
    let (result, logs) = run("array", "log line\\n[1, 2]\\n");
    assert_eq!(result, json!([1, 2]));
    assert!(logs[0].as_str().unwrap().ends_with("stdout: log line"), "{logs}");
    assert_eq!(run("nonl", "{\"a\": 1}").0, json!({"a": 1}));
    let refused = json!({"error": "The action did not return a dictionary or array."});
    // a blank last line is the result line, and it is not JSON
    assert_eq!(run("blank", "{\"a\": 1}\\n\\n").0, refused);
    let (result, logs) = run("number", "7\\n");
    assert_eq!(result, refused);
    assert!(logs.as_array().unwrap().iter().any(|l| l.as_str().unwrap().ends_with("stdout: 7")), "{logs}");
}

#[test]
fn web_actions_build_params_from_the_request_in_normal_and_raw_mode() {
    let s = setup();
    let web = Api::new(&s.emu.url(), None);
    put_echo(&s.guest, "hidden", json!({}));
    assert_eq!(web.post("/api/v1/web/guest/default/hidden.json", &json!({})).status, 404);

    put_echo(
        &s.guest,
        "echo",
        json!({"annotations": kv(&[("web-export", json!(true))]),
                                       "parameters": kv(&[("fixed", json!("yes"))])}),
    );
    let r = web.post("/api/v1/web/guest/default/echo.json/a/b?x=1", &json!({"y": 2}));
    assert_eq!(r.status, 200, "{}", r.text());
    let echo = &r.json()["echo"];
    assert_eq!((&echo["x"], &echo["y"], &echo["fixed"]), (&json!("1"), &json!(2), &json!("yes")));
    assert_eq!(echo["__ow_method"], "post");
    assert_eq!(echo["__ow_path"], "/a/b");
    assert_eq!(echo["__ow_headers"]["content-type"], "application/json");
    assert_eq!(r.json()["namespace"], "guest");
    assert_eq!(web.get("/api/v1/web/guest/default/echo.json?__ow_method=put").status, 400);

    put_echo(
        &s.guest,
        "final",
        json!({"annotations": kv(&[("web-export", json!(true)), ("final", json!(true))]),
                                        "parameters": kv(&[("fixed", json!("yes"))])}),
    );
    assert_eq!(web.get("/api/v1/web/guest/default/final.json?fixed=no").status, 400);
    assert_eq!(web.get("/api/v1/web/guest/default/final.json?other=no").status, 200);

    put_echo(&s.guest, "raw", json!({"annotations": kv(&[("web-export", json!(true)), ("raw-http", json!(true))])}));
    let r =
        web.raw("PUT", "/api/v1/web/guest/default/raw.json?x=1&y=a%20b", Some("text/plain"), &[], b"hello".to_vec());
    let echo = &r.json()["echo"];
    assert_eq!((&echo["__ow_query"], &echo["__ow_body"]), (&json!("x=1&y=a%20b"), &json!("hello")));
    assert!(echo.get("x").is_none());
    let r = web.post("/api/v1/web/guest/default/raw.json", &json!({"y": 2}));
    let body = r.json()["echo"]["__ow_body"].as_str().unwrap().to_string();
    assert_eq!(base64::engine::general_purpose::STANDARD.decode(body).unwrap(), br#"{"y":2}"#);
}

#[test]
fn web_action_results_shape_the_http_response_and_options_get_cors() {
    let s = setup();
    let web = Api::new(&s.emu.url(), None);
    let script = b"#!/bin/sh\necho '{\"statusCode\": 201, \"headers\": {\"content-type\": \"image/png\", \"x-a\": \"1\"}, \"body\": \"aGVsbG8=\"}'\n";
    let mut body = action_body_from(script, "blackbox").unwrap();
    body["annotations"] = kv(&[("web-export", json!(true))]);
    assert_eq!(s.guest.put(&format!("{NS}/_/actions/png"), &body).status, 200);
    let r = web.get("/api/v1/web/guest/default/png.http");
    assert_eq!((r.status, r.body.as_slice()), (201, b"hello".as_slice()));
    assert_eq!(r.header("content-type"), Some("image/png"));
    assert_eq!(r.header("x-a"), Some("1"));
    let r = web.raw("OPTIONS", "/api/v1/web/guest/default/png.http", None, &[], Vec::new());
    assert_eq!(r.status, 200);
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    assert!(r.header("access-control-allow-methods").is_some_and(|m| m.contains("POST")));
}

fn feed(api: &Api, action: &str, params: Value) -> (u16, Value) {
    let r = api.post(&format!("{NS}/whisk.system/actions/alarms/{action}?blocking=true&result=true"), &params);
    (r.status, r.json())
}

#[test]
fn the_alarms_interval_feed_creates_reads_fires_through_rules_and_deletes() {
    let s = setup();
    let key = s.emu.key("guest").unwrap();
    let create = json!({"lifecycleEvent": "CREATE", "triggerName": "/_/tick", "authKey": key,
                        "minutes": "5", "trigger_payload": {"hello": "alarm"}});
    // the trigger must exist first: the provider reads it with the given authKey
    // (openwhisk-package-alarms action/lib/common.js:64-88)
    let (status, result) = feed(&s.guest, "interval", create.clone());
    assert_eq!((status, result), (502, json!({"error": {"error": "Trigger authentication request failed."}})));

    s.guest.put(
        &format!("{NS}/_/triggers/tick"),
        &json!({"annotations": kv(&[("feed", json!("/whisk.system/alarms/interval"))])}),
    );
    assert_eq!(feed(&s.guest, "interval", create.clone()), (200, json!({"status": "success"})));
    let read = json!({"lifecycleEvent": "READ", "triggerName": "/guest/tick", "authKey": key});
    let (status, result) = feed(&s.guest, "interval", read);
    assert_eq!(status, 200);
    assert_eq!(result["config"]["minutes"], 5);
    assert_eq!(result["status"]["active"], true);
    assert!(result["status"].get("reason").is_none());
    let bad = json!({"lifecycleEvent": "CREATE", "triggerName": "/_/other", "authKey": key, "minutes": 0});
    s.guest.put(&format!("{NS}/_/triggers/other"), &json!({}));
    let (_, result) = feed(&s.guest, "interval", bad);
    assert!(result["error"]["error"].as_str().unwrap().contains("minutes parameter"), "{result}");

    put_echo(&s.guest, "echo", json!({}));
    s.guest.put(&format!("{NS}/_/rules/r"), &json!({"trigger": "/guest/tick", "action": "/guest/echo"}));
    assert_eq!(s.emu.fire_alarms(), vec![("/guest/tick".to_string(), 202)]);
    assert!(s.emu.wait_idle(Duration::from_secs(30)));
    let echoes: Vec<Value> = s.emu.activations("guest").into_iter().filter(|a| a["name"] == "echo").collect();
    assert_eq!(echoes.len(), 1);
    assert_eq!(without_headers(&echoes[0]["response"]["result"]["echo"]), json!({"hello": "alarm"}));

    let delete = json!({"lifecycleEvent": "DELETE", "triggerName": "/_/tick", "authKey": key});
    assert_eq!(feed(&s.guest, "interval", delete.clone()), (200, json!({"status": "success"})));
    let (status, result) = feed(&s.guest, "interval", delete);
    assert_eq!(status, 502);
    assert_eq!(result["error"]["error"], "could not find trigger /guest/tick in the database");
    assert!(s.emu.fire_alarms().is_empty());
}

#[test]
fn alarms_follow_the_provider_fire_policy_on_errors() {
    let s = setup();
    let key = s.emu.key("guest").unwrap();
    for t in ["retried", "gone"] {
        s.guest.put(&format!("{NS}/_/triggers/{t}"), &json!({}));
        let create = json!({"lifecycleEvent": "CREATE", "triggerName": format!("/_/{t}"), "authKey": key,
                            "cron": "*/5 * * * *"});
        assert_eq!(feed(&s.guest, "alarm", create), (200, json!({"status": "success"})));
    }
    let bad_cron = json!({"lifecycleEvent": "CREATE", "triggerName": "/_/retried", "authKey": key, "cron": "* * *"});
    // apache/openwhisk-package-alarms action/alarmWebAction.js:108, in common.js's error shape
    assert_eq!(feed(&s.guest, "alarm", bad_cron).1["error"]["error"], "cron pattern '* * *' is not valid");

    // 5xx is retried; a 404 disables the alarm
    s.emu.inject_fault(FaultRule {
        method: Some("POST".into()),
        path_contains: "/triggers/retried".into(),
        status: 503,
        body: None,
        count: 2,
        delay_ms: 0,
    });
    s.guest.delete(&format!("{NS}/_/triggers/gone"));
    assert_eq!(s.emu.fire_alarm("/guest/retried"), Some(204));
    assert_eq!(s.emu.fire_alarm("/guest/gone"), Some(404));
    // READ needs the trigger (action/lib/common.js:64-88), which is gone: the control API shows it.
    let read = json!({"lifecycleEvent": "READ", "triggerName": "/_/gone", "authKey": key});
    assert_eq!(feed(&s.guest, "alarm", read).1, json!({"error": {"error": "Trigger authentication request failed."}}));
    let control = Api::new(&s.emu.url(), None);
    let status = control.get("/__emulator/alarms").json()["/guest/gone"]["status"].clone();
    assert_eq!(status["active"], false);
    assert_eq!(status["reason"]["statusCode"], 404);
    assert_eq!(s.emu.fire_alarms(), vec![("/guest/retried".to_string(), 204)]);
}

/// A trigger `name` in guest's namespace with an interval alarm of `minutes`; the CREATE params.
fn interval_alarm(s: &Setup, name: &str, minutes: u64) -> Value {
    s.guest.put(&format!("{NS}/_/triggers/{name}"), &json!({}));
    let create = json!({"lifecycleEvent": "CREATE", "triggerName": format!("/_/{name}"),
                        "authKey": s.emu.key("guest").unwrap(), "minutes": minutes});
    assert_eq!(feed(&s.guest, "interval", create.clone()), (200, json!({"status": "success"})));
    create
}

fn with(params: &Value, extra: Value) -> Value {
    let mut p = params.clone();
    if let (Value::Object(p), Value::Object(e)) = (&mut p, extra) {
        p.extend(e);
    }
    p
}

#[test]
fn alarms_feeds_pause_and_unpause_are_unsupported_lifecycle_events() {
    // openwhisk-package-alarms action/alarm.js:29-52: only CREATE, READ, UPDATE, DELETE map to
    // the web action; anything else is `Promise.reject('unsupported lifecycleEvent')`.
    let s = setup();
    let create = interval_alarm(&s, "tick", 5);
    for event in ["PAUSE", "UNPAUSE", "RESTART"] {
        let r = feed(&s.guest, "interval", with(&create, json!({"lifecycleEvent": event})));
        assert_eq!(r, (502, json!({"error": "unsupported lifecycleEvent"})), "{event}");
    }
    assert_eq!(s.emu.fire_alarms().len(), 1, "PAUSE did not stop the alarm");
}

#[test]
fn alarms_create_on_an_existing_alarm_upserts_and_update_accepts_unchanged_values() {
    let s = setup();
    let create = interval_alarm(&s, "tick", 5);
    let read = with(&create, json!({"lifecycleEvent": "READ"}));
    // action/lib/Database.js:64-89: a 409 on insert updates the document with the new fields.
    assert_eq!(feed(&s.guest, "interval", with(&create, json!({"minutes": 7}))), (200, json!({"status": "success"})));
    assert_eq!(feed(&s.guest, "interval", read.clone()).1["config"]["minutes"], 7);
    assert_eq!(s.emu.fire_alarms().len(), 1, "one alarm after two CREATEs");
    // action/alarmWebAction.js:262-273, 325-327: a given updatable parameter is enough.
    let update = with(&create, json!({"lifecycleEvent": "UPDATE", "minutes": 7}));
    assert_eq!(feed(&s.guest, "interval", update), (200, json!({"status": "success"})));
    let nothing = with(&create, json!({"lifecycleEvent": "UPDATE", "minutes": null}));
    let r = feed(&s.guest, "interval", nothing);
    assert_eq!(r, (502, json!({"error": {"error": "no updatable parameters were specified"}})));
}

#[test]
fn alarms_read_answers_the_providers_shape_with_the_alarms_status() {
    let s = setup();
    let create = interval_alarm(&s, "tick", 5);
    let (status, r) = feed(&s.guest, "interval", with(&create, json!({"lifecycleEvent": "READ"})));
    assert_eq!(status, 200);
    // action/alarmWebAction.js:181-213: config {name, namespace, payload, startDate, minutes, …}
    // and status {active, dateChanged, dateChangedISO, reason}.
    assert_eq!((&r["config"]["name"], &r["config"]["namespace"]), (&json!("tick"), &json!("guest")));
    assert_eq!(r["config"]["minutes"], 5);
    assert!(r["config"].get("startDate").is_some(), "{r}");
    assert_eq!(r["config"]["strict"], false);
    assert_eq!(r["status"]["active"], true);
    assert!(r["status"]["dateChanged"].is_u64() && r["status"]["dateChangedISO"].is_string(), "{r}");
    assert!(r["status"].get("reason").is_none(), "{r}");
    // another namespace's key cannot read it (common.js:64-88 reads the trigger with that key)
    let other = with(&create, json!({"lifecycleEvent": "READ", "authKey": s.emu.key("other").unwrap()}));
    let r = feed(&s.other, "interval", other);
    assert_eq!(r, (502, json!({"error": {"error": "Trigger authentication request failed."}})));
}

#[test]
fn an_alarm_belongs_to_the_key_that_created_it() {
    // action/lib/config.js:22-28: the alarm's id is `{apikey}/{namespace}/{name}`, so another
    // subject of the same namespace neither sees nor deletes it, and gets an alarm of its own.
    const SECOND: &str = "11111111-2222-3333-4444-555555555555:second-subject-of-guest";
    let extra = ow_emulator::NamespaceConfig { name: "guest".into(), key: Some(SECOND.into()) };
    let s = setup_with(Config {
        alarm_retry_unit: Duration::from_millis(1),
        extra_subjects: vec![extra],
        ..Config::with_namespaces(&["guest", "other"])
    });
    let create = interval_alarm(&s, "tick", 5);
    let second = Api::new(&s.emu.url(), Some(SECOND));
    let missing = (502, json!({"error": {"error": "could not find trigger /guest/tick in the database"}}));
    for event in ["READ", "DELETE"] {
        let r = feed(&second, "interval", with(&create, json!({"lifecycleEvent": event, "authKey": SECOND})));
        assert_eq!(r, missing, "{event}");
    }
    assert_eq!(s.emu.fire_alarms().len(), 1, "the second key's DELETE left the alarm alone");
    let r = feed(&second, "interval", with(&create, json!({"authKey": SECOND})));
    assert_eq!(r, (200, json!({"status": "success"})));
    assert_eq!(s.emu.fire_alarms().len(), 2, "one alarm per key");
}

#[test]
fn an_interval_alarm_first_fires_one_interval_after_its_start() {
    // provider/lib/intervalAlarm.js:52-60: a timer to the start date starts `setInterval`,
    // whose first call is one interval later; alarmWebAction.js:120-124: the start defaults to
    // 30 s after CREATE.
    let s = setup();
    let before = owfeed::budget::now_ms() as i64;
    interval_alarm(&s, "tick", 5);
    let control = Api::new(&s.emu.url(), None);
    let next = control.get("/__emulator/alarms").json()["/guest/tick"]["nextFire"].as_i64().unwrap();
    let expected = before + 30_000 + 5 * 60_000;
    assert!((expected..expected + 5_000).contains(&next), "next fire {next}, expected about {expected}");
    let start = "2999-01-01T00:00:00Z";
    s.guest.put(&format!("{NS}/_/triggers/later"), &json!({}));
    let create = json!({"lifecycleEvent": "CREATE", "triggerName": "/_/later", "authKey": s.emu.key("guest").unwrap(),
                        "minutes": 2, "startDate": start});
    assert_eq!(feed(&s.guest, "interval", create).0, 200);
    let next = control.get("/__emulator/alarms").json()["/guest/later"]["nextFire"].as_i64().unwrap();
    let start_ms: i64 = 32_472_144_000_000; // 2999-01-01T00:00:00Z
    assert_eq!(next, start_ms + 2 * 60_000);
}

#[test]
fn alarms_are_disabled_after_ten_throttled_retries_or_one_other_4xx() {
    // provider/lib/utils.js:121-163: 4xx other than 408/409/429 disables at once; anything
    // else is retried up to 10 times; throttled on all 10 retries disables the alarm.
    let s = setup();
    let create = interval_alarm(&s, "tick", 5);
    let read = with(&create, json!({"lifecycleEvent": "READ"}));
    let fault = |status: u16, count: u32| FaultRule {
        method: Some("POST".into()),
        path_contains: "/triggers/tick".into(),
        status,
        body: None,
        count,
        delay_ms: 0,
    };
    // 408, 409 and nine 429s are retried and the alarm stays active
    s.emu.inject_fault(fault(408, 1));
    s.emu.inject_fault(fault(409, 1));
    assert_eq!(s.emu.fire_alarm("/guest/tick"), Some(204));
    s.emu.inject_fault(fault(429, 9));
    assert_eq!(s.emu.fire_alarm("/guest/tick"), Some(204));
    assert_eq!(feed(&s.guest, "interval", read.clone()).1["status"]["active"], true);
    // eleven 429s (the first try and 10 retries) disable it
    s.emu.inject_fault(fault(429, 11));
    assert_eq!(s.emu.fire_alarm("/guest/tick"), Some(429));
    let status = feed(&s.guest, "interval", read.clone()).1["status"].clone();
    let message = "Automatically disabled after continuously receiving a 429 status code when firing the trigger";
    assert_eq!(status["active"], false);
    assert_eq!(status["reason"], json!({"kind": "AUTO", "statusCode": 429, "message": message}));
    assert!(s.emu.fire_alarms().is_empty());
    // CREATE re-enables it (Database.js:74-80 then updateTrigger sets status active, :203-207)
    assert_eq!(feed(&s.guest, "interval", create.clone()).0, 200);
    assert_eq!(feed(&s.guest, "interval", read.clone()).1["status"]["active"], true);
    // one 403 disables it
    s.emu.inject_fault(fault(403, 1));
    assert_eq!(s.emu.fire_alarm("/guest/tick"), Some(403));
    let status = feed(&s.guest, "interval", read).1["status"].clone();
    assert_eq!(status["reason"]["statusCode"], 403, "{status}");
    assert_eq!(
        status["reason"]["message"],
        "Trigger automatically disabled: Received a 403 status code when firing the trigger"
    );
}

#[test]
fn execute_only_shared_packages_refuse_get_of_bindings_and_shared_packages() {
    // apache/openwhisk Packages.scala:188-190 and :343-344, messages from ErrorResponse.scala:270-273
    // (`FullyQualifiedEntityName.asString` has no leading slash).
    let s = setup_with(Config { shared_packages_execute_only: true, ..Config::with_namespaces(&["guest", "other"]) });
    assert_eq!(s.other.put(&format!("{NS}/_/packages/shared"), &json!({"publish": true})).status, 200);
    let bind = json!({"binding": {"namespace": "other", "name": "shared"}, "parameters": kv(&[("p", json!(1))])});
    assert_eq!(s.guest.put(&format!("{NS}/_/packages/mine"), &bind).status, 200);
    let r = s.guest.get(&format!("{NS}/_/packages/mine"));
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["error"], "GET not permitted since mine is a binding of a shared package");
    let r = s.guest.get(&format!("{NS}/other/packages/shared"));
    assert_eq!(
        (r.status, r.json()["error"].clone()),
        (403, json!("GET not permitted for 'other/shared' since it's a shared package"))
    );
    // the owner still reads its own package; a PUT answers the binding with its own parameters
    assert_eq!(s.other.get(&format!("{NS}/_/packages/shared")).status, 200);
    let r = s.guest.put(&format!("{NS}/_/packages/mine?overwrite=true"), &json!({}));
    assert_eq!((r.status, r.json()["parameters"].clone()), (200, kv(&[("p", json!(1))])));
}

/// The alarms provider schedules `cron` with node cron 1.8.2 (apache/openwhisk-package-alarms
/// `package.json`, `provider/lib/cronAlarm.js:47`): Sunday = 0, `1-5` = Monday to Friday,
/// January = 0, day-of-month OR day-of-week (kelektiv/node-cron v1.8.2 `lib/cron.js:51`,
/// `:67-87`, `:258-280`), and it refuses 7 (`:469-477`).
#[test]
fn cron_alarms_fire_on_the_days_the_provider_fires() {
    let s = setup();
    let key = s.emu.key("guest").unwrap();
    let ms = |d: &str| chrono::DateTime::parse_from_rfc3339(d).unwrap().timestamp_millis();
    let iso = |t: &i64| chrono::DateTime::from_timestamp_millis(*t).unwrap().to_rfc3339();
    // Friday 2026-11-27 12:00 UTC.
    let friday = ms("2026-11-27T12:00:00Z");
    for (cron, expected) in [
        ("0 9 * * 0", ["2026-11-29T09:00:00+00:00", "2026-12-06T09:00:00+00:00"]),
        ("0 9 * * SUN", ["2026-11-29T09:00:00+00:00", "2026-12-06T09:00:00+00:00"]),
        ("0 9 * * 1-5", ["2026-11-30T09:00:00+00:00", "2026-12-01T09:00:00+00:00"]),
        ("0 9 * * mon-fri", ["2026-11-30T09:00:00+00:00", "2026-12-01T09:00:00+00:00"]),
        ("0 0 * * 0-6", ["2026-11-28T00:00:00+00:00", "2026-11-29T00:00:00+00:00"]),
        ("0 0 1 0 *", ["2027-01-01T00:00:00+00:00", "2028-01-01T00:00:00+00:00"]),
        ("0 0 1 * mon", ["2026-11-30T00:00:00+00:00", "2026-12-01T00:00:00+00:00"]),
        ("*/20 13 * * *", ["2026-11-27T13:00:00+00:00", "2026-11-27T13:20:00+00:00"]),
    ] {
        s.guest.put(&format!("{NS}/_/triggers/c?overwrite=true"), &json!({}));
        let create = json!({"lifecycleEvent": "CREATE", "triggerName": "/_/c", "authKey": key, "cron": cron});
        assert_eq!(feed(&s.guest, "alarm", create), (200, json!({"status": "success"})), "{cron}");
        let fires: Vec<String> = s.emu.cron_fires_after("/guest/c", friday, 2).iter().map(iso).collect();
        assert_eq!(fires, expected, "{cron}");
        let delete = json!({"lifecycleEvent": "DELETE", "triggerName": "/_/c", "authKey": key});
        assert_eq!(feed(&s.guest, "alarm", delete).0, 200);
    }
    for bad in ["0 9 * * 7", "0 0 1 12 *", "*/0 * * * *", "* * *"] {
        let create = json!({"lifecycleEvent": "CREATE", "triggerName": "/_/c", "authKey": key, "cron": bad});
        assert_eq!(feed(&s.guest, "alarm", create).1["error"]["error"], format!("cron pattern '{bad}' is not valid"));
    }
}

#[test]
fn injected_faults_hit_the_next_matching_requests_only() {
    let s = setup();
    s.guest.put(&format!("{NS}/_/triggers/t"), &json!({}));
    s.emu.inject_fault(FaultRule {
        method: Some("GET".into()),
        path_contains: "/triggers/t".into(),
        status: 503,
        body: Some(json!({"error": "down"})),
        count: 1,
        delay_ms: 0,
    });
    assert_eq!(s.guest.post(&format!("{NS}/_/triggers/t"), &json!({})).status, 204);
    let r = s.guest.get(&format!("{NS}/_/triggers/t"));
    assert_eq!((r.status, r.json()), (503, json!({"error": "down"})));
    assert_eq!(s.guest.get(&format!("{NS}/_/triggers/t")).status, 200);

    // the same over the control API
    let control = Api::new(&s.emu.url(), None);
    let rule = json!({"method": "*", "path_contains": "/triggers/", "status": 500, "count": 1});
    assert_eq!(control.post("/__emulator/faults", &rule).status, 200);
    assert_eq!(s.guest.get(&format!("{NS}/_/triggers/t")).status, 500);
    assert_eq!(s.guest.get(&format!("{NS}/_/triggers/t")).status, 200);
    assert_eq!(control.get("/__emulator/keys/guest").json()["key"], json!(s.emu.key("guest").unwrap()));
}

#[test]
fn a_blocking_invoke_that_outlives_the_wait_answers_202_and_completes_later() {
    let s = setup_with(Config {
        blocking_wait: Duration::from_millis(200),
        ..Config::with_namespaces(&["guest", "other"])
    });
    put_echo(&s.guest, "slow", json!({}));
    let (status, body) = invoke(&s.guest, "slow", json!({"sleep_ms": 3000}));
    assert_eq!(status, 202, "{body}");
    let id = body["activationId"].as_str().unwrap().to_string();
    assert!(s.emu.wait_idle(Duration::from_secs(30)));
    let record = s.guest.get(&format!("{NS}/_/activations/{id}")).json();
    assert_eq!(record["response"]["result"]["echo"], json!({"sleep_ms": 3000}));
}

#[test]
fn a_once_alarm_fires_a_single_time_and_can_delete_its_trigger() {
    let s = setup();
    let key = s.emu.key("guest").unwrap();
    s.guest.put(&format!("{NS}/_/triggers/once"), &json!({}));
    let date = "2999-01-01T00:00:00Z";
    let past =
        json!({"lifecycleEvent": "CREATE", "triggerName": "/_/once", "authKey": key, "date": "2000-01-01T00:00:00Z"});
    assert!(feed(&s.guest, "once", past).1["error"]["error"].as_str().unwrap().contains("future"));
    let create = json!({"lifecycleEvent": "CREATE", "triggerName": "/_/once", "authKey": key, "date": date,
                        "deleteAfterFire": "true"});
    assert_eq!(feed(&s.guest, "once", create), (200, json!({"status": "success"})));
    // the HTTP control path fires like fire_alarms()
    let control = Api::new(&s.emu.url(), None);
    let fired = control.post("/__emulator/alarms/fire", &json!({})).json();
    assert_eq!(fired, json!({"fired": [{"trigger": "/guest/once", "status": 204}]}));
    assert_eq!(s.guest.get(&format!("{NS}/_/triggers/once")).status, 404);
    assert!(s.emu.fire_alarms().is_empty());
}

/// A burst of new connections is served at once while other clients keep idle connections
/// open (every OpenWhisk client keeps its connections alive; a scheduler tick opens dozens at
/// once). tiny_http 0.12.0 dispatches each connection to a thread of its pool and, in a burst,
/// could queue one behind a thread it had already promised to another, where it waited until
/// some connection closed (tests/vendor/tiny_http, `TaskPool::spawn`).
#[test]
fn a_burst_of_new_connections_is_served_while_others_stay_open() {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    let s = setup();
    let addr = s.emu.url().trim_start_matches("http://").to_string();
    let request = format!("GET /api/v1 HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    let read_response = |stream: &mut TcpStream| {
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buf = [0u8; 4096];
        let n = stream.read(&mut buf).expect("a response within 10 s");
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&buf[..n]));
    };
    for _round in 0..5 {
        // Idle keep-alive connections, each holding one of the server's threads.
        let mut idle: Vec<TcpStream> = (0..8).map(|_| TcpStream::connect(&addr).unwrap()).collect();
        for stream in &mut idle {
            stream.write_all(request.as_bytes()).unwrap();
            read_response(stream);
        }
        let barrier = std::sync::Barrier::new(16);
        let slowest = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..16)
                .map(|_| {
                    scope.spawn(|| {
                        barrier.wait();
                        let began = std::time::Instant::now();
                        let mut stream = TcpStream::connect(&addr).unwrap();
                        stream.write_all(request.as_bytes()).unwrap();
                        read_response(&mut stream);
                        began.elapsed()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).max().unwrap()
        });
        assert!(slowest < Duration::from_secs(3), "a new connection waited {slowest:?}");
        drop(idle);
    }
}
