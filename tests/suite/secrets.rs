//! Secrets never leave an action, whatever echoes them: distinctive credentials are sent
//! through every error path (an endpoint with user-info, an S3 server and a GitHub API that
//! echo the whole request into their error bodies, an OpenWhisk error that quotes the key),
//! and every result, activation record and log line is scanned for them.

use std::sync::Arc;
use std::thread::JoinHandle;

use base64::Engine as _;
use serde_json::{json, Value};

use feed_tests::world::{workspace_bin, World, PACKAGE, USER};
use ow_emulator::{Config, FaultRule, SYSTEM_NAMESPACE};
use owfeed::openwhisk::{OwError, QualifiedName};

/// An HTTP server that answers every request with an error quoting the whole request (method,
/// path, headers, body): S3's XML error shape, or GitHub's JSON one under `/repos/`.
struct EchoServer {
    url: String,
    server: Arc<tiny_http::Server>,
    thread: Option<JoinHandle<()>>,
}

impl EchoServer {
    fn start() -> EchoServer {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("bind echo server"));
        let url = format!("http://{}", server.server_addr().to_ip().expect("ip address"));
        let srv = server.clone();
        let thread = std::thread::spawn(move || {
            for mut req in srv.incoming_requests() {
                let mut body = String::new();
                let _ = req.as_reader().read_to_string(&mut body);
                let headers: Vec<String> = req.headers().iter().map(|h| format!("{}: {}", h.field, h.value)).collect();
                let echo = format!("{} {} {} {}", req.method(), req.url(), headers.join(" | "), body);
                let (status, text, kind) = if req.url().starts_with("/repos/") {
                    (422, json!({"message": echo}).to_string(), "application/json")
                } else {
                    let xml = echo.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
                    (
                        403,
                        format!("<Error><Code>AccessDenied</Code><Message>{xml}</Message></Error>"),
                        "application/xml",
                    )
                };
                let header = tiny_http::Header::from_bytes("Content-Type", kind).expect("header");
                let _ =
                    req.respond(tiny_http::Response::from_string(text).with_status_code(status).with_header(header));
            }
        });
        EchoServer { url, server, thread: Some(thread) }
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Every activation record of every namespace, as text.
fn records(w: &World) -> Vec<String> {
    let mut out = Vec::new();
    for ns in [USER, "other", SYSTEM_NAMESPACE] {
        out.extend(w.emu.activations(ns).iter().map(Value::to_string));
    }
    out
}

fn assert_no_leak(texts: &[String], secrets: &[(&str, &str)]) {
    for (what, value) in secrets {
        for text in texts {
            assert!(!text.contains(value), "the {what} leaked into: {text}");
        }
    }
}

#[test]
fn no_secret_of_the_s3_feed_leaks_through_any_error_path() {
    let w = World::start(&workspace_bin("changes"), &workspace_bin("poll"));
    let echo = EchoServer::start();
    const SECRET: &str = "S3-SECRET-5f1e9d2c-never";
    const TOKEN: &str = "S3-SESSION-TOKEN-8b7a6c-never";
    const USERINFO: &str = "URL-PASSWORD-3c4d5e-never";
    let key_part = w.user_key.split_once(':').expect("uuid:key").1.to_string();
    let basic = base64::engine::general_purpose::STANDARD.encode(&w.user_key);
    let params = |endpoint: &str| {
        json!({"endpoint": endpoint, "bucket": "b", "accessKeyId": "AKIDEXAMPLE",
               "secretAccessKey": SECRET, "sessionToken": TOKEN})
    };
    let mut answers = Vec::new();

    // 1. An endpoint with user-info: rejected, naming the parameter, without echoing it.
    let with_userinfo = format!("http://AKIDEXAMPLE:{USERINFO}@127.0.0.1:9");
    let e = w.create_trigger("t1", params(&with_userinfo)).expect_err("user-info is rejected");
    assert!(e.contains("'endpoint'") && e.contains("user-info"), "{e}");
    answers.push(e);

    // 2. An S3 server that echoes the whole request (session token, signature) in its error.
    let e = w.create_trigger("t2", params(&echo.url)).expect_err("the echo server denies everything");
    assert!(e.contains("AccessDenied") || e.contains("denied") || e.contains("403"), "{e}");
    answers.push(e);

    // 3. The OpenWhisk API quoting the caller's key and secrets in an error body.
    w.user.put_trigger(&QualifiedName::new("_", None, "t3"), &json!({}), false).expect("trigger t3");
    w.emu.inject_fault(FaultRule {
        method: Some("GET".into()),
        path_contains: "/triggers/t3".into(),
        status: 500,
        body: Some(json!({"error": format!("bad request {} Basic {basic} {SECRET} {TOKEN}", w.user_key)})),
        count: 1,
        delay_ms: 0,
    });
    let e = w.feed("CREATE", "t3", params(&echo.url)).expect_err("the trigger check fails");
    assert!(e.contains("could not check trigger"), "{e}");
    answers.push(e);

    assert!(w.emu.wait_idle(std::time::Duration::from_secs(60)));
    let mut texts = records(&w);
    assert!(texts.iter().any(|r| r.contains("AccessDenied") || r.contains("403")), "the echo path never ran");
    texts.extend(answers);
    assert_no_leak(
        &texts,
        &[
            ("secretAccessKey", SECRET),
            ("sessionToken", TOKEN),
            ("endpoint user-info", USERINFO),
            ("authKey", &key_part),
            ("Basic authorization", &basic),
        ],
    );
}

#[test]
fn no_secret_of_the_hooks_feed_leaks_when_the_producer_echoes_the_request() {
    let w = World::with_actions(Config::with_namespaces(&[USER, "other"]), "secrets", &["hook"]);
    let hook = QualifiedName::new(SYSTEM_NAMESPACE, Some(PACKAGE), "hook");
    let echo = EchoServer::start();
    const TOKEN: &str = "ghp_ACCESS-TOKEN-1a2b3c-never";
    const HOOK_SECRET: &str = "HOOK-SECRET-9f8e7d6c5b4a-never";
    let key_part = w.user_key.split_once(':').expect("uuid:key").1.to_string();
    w.user.put_trigger(&QualifiedName::new("_", None, "gh"), &json!({}), false).expect("trigger");
    let params = json!({
        "lifecycleEvent": "CREATE", "triggerName": "/_/gh", "authKey": w.user_key,
        "source": "github", "repository": "o/r", "githubApi": echo.url,
        "accessToken": TOKEN, "secret": HOOK_SECRET,
    });
    // A producer URL with user-info is refused, naming the parameter, without repeating it.
    let with_userinfo = format!("http://user:{TOKEN}@{}", echo.url.trim_start_matches("http://"));
    let mut bad = params.clone();
    bad["githubApi"] = json!(with_userinfo);
    let refused = match w.user.invoke(&hook, &bad, true) {
        Err(OwError::Application(result)) => result.to_string(),
        other => panic!("user-info is refused, got {other:?}"),
    };
    assert!(refused.contains("'githubApi'") && refused.contains("user-info"), "{refused}");
    let answer = match w.user.invoke(&hook, &params, true) {
        Err(OwError::Application(result)) => result.to_string(),
        other => panic!("the producer rejects the registration, got {other:?}"),
    };
    assert!(answer.contains("422") || answer.contains("rejected"), "{answer}");
    let _ =
        w.user.invoke(&hook, &json!({"lifecycleEvent": "DELETE", "triggerName": "/_/gh", "authKey": w.user_key}), true);
    assert!(w.emu.wait_idle(std::time::Duration::from_secs(60)));
    let mut texts = records(&w);
    texts.push(answer);
    texts.push(refused);
    assert_no_leak(&texts, &[("accessToken", TOKEN), ("hook secret", HOOK_SECRET), ("authKey", &key_part)]);
}
