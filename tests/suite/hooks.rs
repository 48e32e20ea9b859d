//! The hooks pattern end to end: the real `hook` feed action and `receive` web action in the
//! emulator, deliveries through the web-action path of each trigger's binding, a fake GitHub
//! API and a fake Subscriptions manager, and a rule to the echo fixture that records what
//! the user's trigger received.

use std::time::Duration;

use serde_json::{json, Value};

use feed_tests::fake_github::FakeGitHub;
use feed_tests::fake_subscriptions::FakeManager;
use feed_tests::rigs::hooks::{Answer, Hooks};
use feed_tests::world::{PACKAGE, USER};
use ow_emulator::{FaultRule, SYSTEM_NAMESPACE};
use owfeed::hooks::github_signature;
use owfeed::openwhisk::QualifiedName;
use owfeed::secret::Secret;

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn ce(id: &str, kind: &str) -> Value {
    json!({"specversion": "1.0", "id": id, "source": "/test", "type": kind, "data": {"n": id}})
}

fn ids(events: &[Value]) -> Vec<String> {
    events.iter().map(|e| e["id"].as_str().unwrap_or("?").to_string()).collect()
}

#[test]
fn every_delivery_mode_fires_the_trigger() {
    let h = Hooks::start();
    let filters = json!([{"not": {"exact": {"type": "com.example.ignored"}}}]);
    let created = h.create_recorded("t", json!({"source": "none", "filters": filters}));
    let url = created["url"].as_str().unwrap().to_string();
    assert_eq!(url, format!("{}/api/v1/web/{USER}/t.owfeed-hook/receive.http", h.w.emu.url()));
    let token = created["token"].as_str().expect("token for source none").to_string();
    assert_eq!(token.len(), 64);
    let auth = bearer(&token);

    let binary = h.post(
        &url,
        &[
            ("Authorization", &auth),
            ("ce-specversion", "1.0"),
            ("ce-id", "b-1"),
            ("ce-source", "/test"),
            ("ce-type", "com.example.binary"),
            ("ce-subject", "Euro%20%E2%82%AC%20%F0%9F%98%80"),
            ("Content-Type", "application/json"),
        ],
        br#"{"mode": "binary"}"#,
    );
    assert_eq!(binary.status, 202, "{}", binary.body);

    let structured = serde_json::to_vec(&ce("s-1", "com.example.structured")).unwrap();
    let a = h.post(&url, &[("Authorization", &auth), ("Content-Type", "application/cloudevents+json")], &structured);
    assert_eq!(a.status, 202, "{}", a.body);

    let batch = serde_json::to_vec(&json!([
        ce("m-1", "com.example.batch"),
        ce("m-2", "com.example.ignored"),
        ce("m-3", "com.example.batch")
    ]))
    .unwrap();
    let a = h.post(&url, &[("Authorization", &auth), ("Content-Type", "application/cloudevents-batch+json")], &batch);
    assert_eq!(a.status, 202, "{}", a.body);
    assert_eq!((a.body["fired"].clone(), a.body["filtered"].clone()), (json!(2), json!(1)));

    let plain_url = format!("{url}?access_token={token}");
    let a =
        h.post(&plain_url, &[("Content-Type", "application/json"), ("X-Delivery-Id", "p-1")], br#"{"plain": true}"#);
    assert_eq!(a.status, 202, "{}", a.body);

    let events = h.events();
    let mut got = ids(&events);
    got.sort();
    assert_eq!(got, vec!["b-1", "m-1", "m-3", "p-1", "s-1"]);
    let by_id = |id: &str| events.iter().find(|e| e["id"] == id).unwrap().clone();
    let b = by_id("b-1");
    assert_eq!(b["subject"], "Euro € 😀");
    assert_eq!(b["data"], json!({"mode": "binary"}));
    assert_eq!(b["type"], "com.example.binary");
    assert_eq!(by_id("s-1")["data"], json!({"n": "s-1"}));
    let p = by_id("p-1");
    assert_eq!(p["type"], owfeed::hooks::GENERIC_TYPE);
    assert_eq!(p["data"], json!({"plain": true}));
    assert_eq!(p["source"], url.as_str());
}

/// The dockerskeleton proxy passes input over 131071 bytes on stdin only, with no argument
/// (apache/openwhisk-runtime-docker core/actionProxy/actionproxy.py:141-157); a 140 KB delivery
/// to `receive` deployed as blackbox used to run with no parameters and answer 400.
#[test]
fn a_140_kb_delivery_reaches_the_trigger_intact_in_blackbox_mode() {
    let h = Hooks::start_as("blackbox");
    let created = h.create_recorded("t", json!({"source": "none"}));
    let url = created["url"].as_str().unwrap().to_string();
    let auth = bearer(created["token"].as_str().unwrap());
    let filler: String = (0..140_000).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
    let event = json!({"specversion": "1.0", "id": "big-1", "source": "/test", "type": "com.example.big",
                       "data": {"filler": filler}});
    let body = serde_json::to_vec(&event).unwrap();
    assert!(body.len() > 140_000);
    let a = h.post(&url, &[("Authorization", &auth), ("Content-Type", "application/cloudevents+json")], &body);
    assert_eq!(a.status, 202, "{}", a.body);
    let small = serde_json::to_vec(&ce("small-1", "com.example.small")).unwrap();
    let a = h.post(&url, &[("Authorization", &auth), ("Content-Type", "application/cloudevents+json")], &small);
    assert_eq!(a.status, 202, "{}", a.body);
    let events = h.events();
    let mut got = ids(&events);
    got.sort();
    assert_eq!(got, ["big-1", "small-1"]);
    let big = events.iter().find(|e| e["id"] == "big-1").unwrap();
    assert_eq!(big["data"]["filler"].as_str().map(str::len), Some(140_000));
    assert!(big["data"]["filler"] == filler.as_str(), "the filler changed on the way");
}

#[test]
fn bad_credentials_get_401_and_fire_nothing() {
    let h = Hooks::start();
    let created = h.create_recorded("t", json!({"source": "none"}));
    let url = created["url"].as_str().unwrap().to_string();
    let body = serde_json::to_vec(&ce("x-1", "com.example.x")).unwrap();
    let ct = ("Content-Type", "application/cloudevents+json");
    let wrong_sig = github_signature(&Secret::new("not the secret"), &body);
    for headers in [
        vec![ct],
        vec![ct, ("Authorization", "Bearer wrong")],
        vec![ct, ("X-Hub-Signature-256", wrong_sig.as_str())],
        vec![ct, ("X-Hub-Signature-256", "sha256=00")],
    ] {
        let a = h.post(&url, &headers, &body);
        assert_eq!(a.status, 401, "{headers:?}: {}", a.body);
    }
    assert_eq!(h.post(&format!("{url}?access_token=nope"), &[ct], &body).status, 401);
    // The shared package's action itself is no hook: nothing to authenticate against.
    let shared = format!("{}/api/v1/web/{SYSTEM_NAMESPACE}/{PACKAGE}/receive.http", h.w.emu.url());
    assert_eq!(h.post(&shared, &[ct, ("Authorization", "Bearer x")], &body).status, 404);
    assert_eq!(h.events(), Vec::<Value>::new());
    let created = h.w.emu.activations(USER).into_iter().filter(|a| a["name"] == "t").count();
    assert_eq!(created, 0, "the trigger was fired");
}

#[test]
fn abuse_protection_handshake() {
    let h = Hooks::start();
    let created = h
        .create("t", json!({"source": "none", "allowedOrigins": ["eventgrid.azure.net"], "allowedRate": 100}))
        .unwrap();
    let url = created["url"].as_str().unwrap().to_string();
    let a = h.request(
        "OPTIONS",
        &url,
        &[
            ("WebHook-Request-Origin", "eventgrid.azure.net"),
            ("WebHook-Request-Rate", "120"),
            ("WebHook-Request-Callback", "https://example.com/cb"),
        ],
        b"",
    );
    assert_eq!(a.status, 200);
    assert_eq!(a.header("WebHook-Allowed-Origin"), Some("eventgrid.azure.net"));
    assert_eq!(a.header("WebHook-Allowed-Rate"), Some("100"));
    let a = h.request("OPTIONS", &url, &[("WebHook-Request-Origin", "evil.example.com")], b"");
    assert_eq!(a.status, 403);
    assert_eq!(a.header("WebHook-Allowed-Origin"), None);
    let a = h.request("GET", &url, &[], b"");
    assert_eq!(a.status, 405);
}

#[test]
fn throttled_fire_gives_429_with_retry_after() {
    let h = Hooks::start();
    let created = h.create_recorded("t", json!({"source": "none"}));
    let (url, token) = (created["url"].as_str().unwrap().to_string(), created["token"].as_str().unwrap().to_string());
    h.w.emu.set_fires_per_minute(Some(0));
    let body = serde_json::to_vec(&ce("r-1", "com.example.x")).unwrap();
    let a =
        h.post(&url, &[("Authorization", &bearer(&token)), ("Content-Type", "application/cloudevents+json")], &body);
    assert_eq!(a.status, 429, "{}", a.body);
    let secs: u64 = a.header("Retry-After").expect("Retry-After").parse().unwrap();
    assert!(secs >= 1);
    assert_eq!(h.events(), Vec::<Value>::new());
    // The trigger's owner sees it too: READ shows the last delivery that could not be fired.
    let status = h.feed("READ", "t", json!({})).unwrap()["status"].clone();
    let failure = &status["lastFailure"];
    assert_eq!(
        (failure["status"].clone(), failure["error"].clone()),
        (json!(429), a.body["error"].clone()),
        "{status}"
    );
    assert!(failure["at"].as_str().is_some_and(|t| t.ends_with('Z')), "{status}");
    assert!(status.get("batchesCut").is_none(), "a single event is no batch: {status}");
    h.w.emu.set_fires_per_minute(None);
    let a =
        h.post(&url, &[("Authorization", &bearer(&token)), ("Content-Type", "application/cloudevents+json")], &body);
    assert_eq!(a.status, 202, "{}", a.body);
    assert_eq!(ids(&h.events()), vec!["r-1"]);
    // A success writes nothing: the failure stays, with its time, until DELETE.
    assert_eq!(h.feed("READ", "t", json!({})).unwrap()["status"]["lastFailure"], *failure);
    h.feed("DELETE", "t", json!({})).unwrap();
    assert_eq!(h.user_packages(), Vec::<String>::new());
}

#[test]
fn deleted_trigger_gives_410() {
    let h = Hooks::start();
    let created = h.create("t", json!({"source": "none"})).unwrap();
    let (url, token) = (created["url"].as_str().unwrap().to_string(), created["token"].as_str().unwrap().to_string());
    // Deleted behind the feed's back (no DELETE lifecycle call): the endpoint is still there.
    h.w.user.delete_trigger(&QualifiedName::new("_", None, "t")).unwrap();
    let body = serde_json::to_vec(&ce("g-1", "com.example.x")).unwrap();
    let a =
        h.post(&url, &[("Authorization", &bearer(&token)), ("Content-Type", "application/cloudevents+json")], &body);
    assert_eq!(a.status, 410, "{}", a.body);
}

#[test]
fn github_hook_is_registered_signed_paused_and_removed() {
    let h = Hooks::start();
    let gh = FakeGitHub::start("ghp_testtoken");
    let params = json!({
        "source": "github", "repository": "octo/repo", "accessToken": gh.token(),
        "githubApi": gh.url(), "events": ["push", "issues"],
    });
    let created = h.create_recorded("t", params.clone());
    let url = created["url"].as_str().unwrap().to_string();
    assert!(created.get("token").is_none(), "{created}");

    let calls = gh.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!((calls[0].method.as_str(), calls[0].path.as_str()), ("POST", "/repos/octo/repo/hooks"));
    assert_eq!(calls[0].auth.as_deref(), Some("Bearer ghp_testtoken"));
    let hook = &calls[0].body;
    assert_eq!(hook["config"]["url"], url.as_str());
    assert_eq!(hook["config"]["content_type"], "json");
    assert_eq!(hook["events"], json!(["push", "issues"]));
    let secret = hook["config"]["secret"].as_str().unwrap().to_string();
    assert_eq!(secret.len(), 64);
    let id = *gh.hooks("octo/repo").keys().next().unwrap();
    assert_eq!(created["registration"], id.to_string());

    // A retried CREATE (wskdeploy retries) reuses the registration.
    let again = h.feed("CREATE", "t", params).unwrap();
    assert_eq!(again["registration"], id.to_string());
    assert_eq!(gh.hooks("octo/repo").len(), 1);

    // A delivery the way GitHub sends it.
    let body = br#"{"ref": "refs/heads/main", "repository": {"html_url": "https://github.com/octo/repo"}}"#;
    let sig = github_signature(&Secret::new(&secret), body);
    let headers = [
        ("Content-Type", "application/json"),
        ("X-GitHub-Event", "push"),
        ("X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958"),
        ("X-Hub-Signature-256", sig.as_str()),
    ];
    let a = h.post(&url, &headers, body);
    assert_eq!(a.status, 202, "{}", a.body);
    let events = h.events();
    // Only the body is signed: the id is its hash, GitHub's event name and delivery id are
    // unsigned extension attributes.
    assert!(events.len() == 1 && events[0]["id"].as_str().unwrap().starts_with("sha256-"), "{events:?}");
    assert_eq!(events[0]["githubdelivery"], "72d3162e-cc78-11e3-81ab-4c9367dc0958");
    assert_eq!(events[0]["githubevent"], "push");
    assert_eq!(events[0]["type"], owfeed::hooks::GITHUB_SIGNED_TYPE);
    assert_eq!(events[0]["source"], "https://github.com/octo/repo");
    assert_eq!(events[0]["data"]["ref"], "refs/heads/main");

    // READ shows config and registration, never the token or the secret.
    let read = h.feed("READ", "t", json!({})).unwrap();
    let text = read.to_string();
    assert!(!text.contains("ghp_testtoken") && !text.contains(&secret), "{text}");
    assert_eq!(read["status"]["registration"], id.to_string());
    assert_eq!(read["url"], url.as_str());

    h.feed("PAUSE", "t", json!({})).unwrap();
    assert_eq!(gh.hooks("octo/repo")[&id]["active"], false);
    h.feed("UNPAUSE", "t", json!({})).unwrap();
    assert_eq!(gh.hooks("octo/repo")[&id]["active"], true);
    let patches: Vec<Value> = gh.calls().into_iter().filter(|c| c.method == "PATCH").map(|c| c.body).collect();
    assert_eq!(patches, vec![json!({"active": false}), json!({"active": true})]);

    // Changing a plugin parameter updates the hook in place, with its secret (GitHub would
    // refuse a second hook with the same URL and overlapping events).
    let updated = h.feed("UPDATE", "t", json!({"events": ["push"]})).unwrap();
    assert_eq!(updated["reregistered"], true, "{updated}");
    let hooks = gh.hooks("octo/repo");
    assert_eq!((hooks.len(), updated["registration"].clone()), (1, json!(id.to_string())));
    assert_eq!(hooks[&id]["events"], json!(["push"]));
    assert_eq!(hooks[&id]["config"]["secret"], secret.as_str());
    let new_id = id;
    h.feed("DELETE", "t", json!({})).unwrap();
    assert!(gh.hooks("octo/repo").is_empty());
    let last = gh.calls().last().cloned().unwrap();
    assert_eq!((last.method.as_str(), last.path), ("DELETE", format!("/repos/octo/repo/hooks/{new_id}")));
    assert_eq!(h.user_packages(), Vec::<String>::new());
    // DELETE again (the CLI does after failures) finds nothing and succeeds.
    h.feed("DELETE", "t", json!({})).unwrap();
}

#[test]
fn failed_github_registration_leaves_nothing() {
    let h = Hooks::start();
    let gh = FakeGitHub::start("ghp_testtoken");
    let err = h
        .create("t", json!({"source": "github", "repository": "octo/missing", "accessToken": "ghp_testtoken", "githubApi": gh.url()}))
        .unwrap_err();
    assert!(err.contains("HTTP 404") && err.contains("admin rights") && err.contains("admin:repo_hook"), "{err}");
    assert!(!err.contains("ghp_testtoken"), "{err}");
    assert_eq!(h.w.user_entities().unwrap(), Vec::<String>::new());
    let err = h
        .create(
            "t",
            json!({"source": "github", "repository": "octo/repo", "accessToken": "wrong", "githubApi": gh.url()}),
        )
        .unwrap_err();
    assert!(err.contains("HTTP 401") && !err.contains("wrong"), "{err}");
    assert_eq!(h.w.user_entities().unwrap(), Vec::<String>::new());
}

#[test]
fn subscription_is_created_with_the_sink_and_deleted() {
    let h = Hooks::start();
    let manager = FakeManager::start(Some("mgr-token"));
    let created = h.create_recorded(
        "t",
        json!({
            "source": "subscription", "manager": manager.url(), "managerToken": "mgr-token",
            "types": ["com.example.order.created"], "subscriptionSource": "/orders",
        }),
    );
    let url = created["url"].as_str().unwrap().to_string();
    let subs = manager.subscriptions();
    assert_eq!(subs.len(), 1);
    let (id, sub) = subs.into_iter().next().unwrap();
    assert_eq!(created["registration"], id.as_str());
    assert_eq!(sub["sink"], url.as_str());
    assert_eq!(sub["protocol"], "HTTP");
    assert_eq!(sub["types"], json!(["com.example.order.created"]));
    assert_eq!(sub["source"], "/orders");
    let auth = sub["protocolsettings"]["headers"]["Authorization"].as_str().unwrap();
    assert!(auth.starts_with("Bearer ") && auth.len() == 7 + 64, "{auth}");
    let credential = &sub["sinkcredential"];
    assert_eq!(
        (credential["credentialtype"].clone(), credential["accesstokentype"].clone()),
        (json!("ACCESSTOKEN"), json!("bearer"))
    );
    assert_eq!(format!("Bearer {}", credential["accesstoken"].as_str().unwrap()), auth);
    assert!(credential["accesstokenexpiresutc"].as_str().is_some());
    assert_eq!(manager.calls()[0].auth.as_deref(), Some("Bearer mgr-token"));

    assert_eq!(manager.deliver(&id, &ce("o-1", "com.example.order.created")), 202);
    assert_eq!(ids(&h.events()), vec!["o-1"]);

    h.feed("DELETE", "t", json!({})).unwrap();
    assert!(manager.subscriptions().is_empty());
    let last = manager.calls().last().cloned().unwrap();
    assert_eq!((last.method.as_str(), last.path), ("DELETE", format!("/subscriptions/{id}")));
    assert_eq!(h.user_packages(), Vec::<String>::new());
}

#[test]
fn update_changes_filters_and_pause_drops_deliveries() {
    let h = Hooks::start();
    let created = h.create_recorded("t", json!({"source": "none"}));
    let (url, token) = (created["url"].as_str().unwrap().to_string(), created["token"].as_str().unwrap().to_string());
    let send = |id: &str, kind: &str| {
        let body = serde_json::to_vec(&ce(id, kind)).unwrap();
        h.post(&url, &[("Authorization", &bearer(&token)), ("Content-Type", "application/cloudevents+json")], &body)
            .status
    };
    let updated = h.feed("UPDATE", "t", json!({"filters": [{"prefix": {"type": "com.example.keep"}}]})).unwrap();
    assert_eq!(updated["reregistered"], false);
    assert_eq!(send("u-1", "com.example.keep.this"), 202);
    assert_eq!(send("u-2", "com.example.drop"), 202);
    h.feed("PAUSE", "t", json!({})).unwrap();
    assert_eq!(h.feed("READ", "t", json!({})).unwrap()["status"]["paused"], true);
    assert_eq!(send("u-3", "com.example.keep.this"), 202);
    h.feed("UNPAUSE", "t", json!({})).unwrap();
    assert_eq!(send("u-4", "com.example.keep.this"), 202);
    assert_eq!(ids(&h.events()), vec!["u-1", "u-4"]);
    let err = h.feed("UPDATE", "t", json!({"source": "github"})).unwrap_err();
    assert!(err.contains("parameter 'source'"), "{err}");
}

#[test]
fn replayed_signed_delivery_cannot_fire_a_new_identity() {
    let h = Hooks::start();
    let secret = "replay-secret-0123456789abcdef";
    let filters = json!([{"not": {"exact": {"githubevent": "ping"}}}]);
    let created = h.create_recorded("t", json!({"source": "none", "secret": secret, "filters": filters}));
    let url = created["url"].as_str().unwrap().to_string();
    let body = br#"{"ref": "refs/heads/main", "repository": {"html_url": "https://github.com/octo/repo"}}"#;
    let sig = github_signature(&Secret::new(secret), body);
    let genuine = [
        ("Content-Type", "application/json"),
        ("X-GitHub-Event", "push"),
        ("X-GitHub-Delivery", "g-1"),
        ("X-Hub-Signature-256", sig.as_str()),
    ];
    assert_eq!(h.post(&url, &genuine, body).status, 202);
    // The captured request replayed with new unsigned headers.
    let replays: [&[(&str, &str)]; 4] = [
        &[("Content-Type", "application/json"), ("X-GitHub-Event", "release"), ("X-GitHub-Delivery", "g-2")],
        &[("Content-Type", "text/plain"), ("X-GitHub-Event", "delete"), ("X-GitHub-Delivery", "g-3")],
        &[
            ("Content-Type", "application/json"),
            ("ce-specversion", "1.0"),
            ("ce-id", "g-4"),
            ("ce-type", "com.github.delete"),
            ("ce-source", "https://github.com/other/repo"),
        ],
        &[("Content-Type", "application/cloudevents+json")],
    ];
    for headers in replays {
        let mut headers = headers.to_vec();
        headers.push(("X-Hub-Signature-256", sig.as_str()));
        let a = h.post(&url, &headers, body);
        assert!(a.status == 202 || a.status == 400, "{headers:?}: {} {}", a.status, a.body);
    }
    let events = h.events();
    assert!(!events.is_empty());
    for e in &events {
        for attr in ["id", "type", "source", "data"] {
            assert_eq!(e[attr], events[0][attr], "{attr}: {e}");
        }
    }
    assert_eq!(events[0]["source"], "https://github.com/octo/repo");
    assert_eq!(events[0]["type"], owfeed::hooks::GENERIC_TYPE);
    // A sign inside the hex is not a hex digit.
    let hex = sig.strip_prefix("sha256=").unwrap();
    let plus = format!("sha256=+{}", &hex[1..]);
    let a = h.post(&url, &[("Content-Type", "application/json"), ("X-Hub-Signature-256", plus.as_str())], body);
    assert_eq!(a.status, 401);
}

#[test]
fn throttled_batch_resumes_and_delivers_each_event_once() {
    let h = Hooks::start();
    let created = h.create_recorded("t", json!({"source": "none"}));
    let (url, token) = (created["url"].as_str().unwrap().to_string(), created["token"].as_str().unwrap().to_string());
    let all: Vec<String> = (1..=8).map(|i| format!("b-{i}")).collect();
    let batch: Vec<Value> = all.iter().map(|id| ce(id, "com.example.batch")).collect();
    let body = serde_json::to_vec(&batch).unwrap();
    let auth = bearer(&token);
    let headers = [("Authorization", auth.as_str()), ("Content-Type", "application/cloudevents-batch+json")];
    // OpenWhisk counts fires per calendar minute: the two throttled posts must share one.
    if feed_tests::world::left_in_minute() < 30_000 {
        feed_tests::world::sleep_into_next_minute(200);
    }
    h.w.emu.set_fires_per_minute(Some(5));
    let a = h.post(&url, &headers, &body);
    assert_eq!(a.status, 429, "{}", a.body);
    assert!(a.header("Retry-After").is_some());
    assert_eq!(a.body["delivered"], json!(all[..5]), "{}", a.body);
    assert_eq!(a.body["pending"], json!(all[5..]), "{}", a.body);
    // The namespace is still over its rate: the retry fires nothing again and says so.
    let a = h.post(&url, &headers, &body);
    assert_eq!(a.status, 429, "{}", a.body);
    assert_eq!((a.body["skipped"].clone(), a.body["fired"].clone()), (json!(all[..5]), json!(0)));
    assert_eq!(a.body["pending"], json!(all[5..]));
    let packages = h.user_packages();
    assert!(packages.iter().any(|p| p.ends_with("t.owfeed-hook-batches")), "{packages:?}");
    let status = h.feed("READ", "t", json!({})).unwrap()["status"].clone();
    assert_eq!((status["batchesCut"].clone(), status["lastFailure"]["status"].clone()), (json!(1), json!(429)));
    h.w.emu.set_fires_per_minute(Some(1000));
    let a = h.post(&url, &headers, &body);
    assert_eq!(a.status, 202, "{}", a.body);
    assert_eq!((a.body["ids"].clone(), a.body["skipped"].clone()), (json!(all[5..]), json!(all[..5])));
    let mut got = ids(&h.events());
    got.sort();
    assert_eq!(got, all, "every event exactly once");
    // The completed batch is forgotten; the record keeps only the last failure, and DELETE
    // leaves nothing.
    let status = h.feed("READ", "t", json!({})).unwrap()["status"].clone();
    assert!(status.get("batchesCut").is_none(), "{status}");
    assert_eq!(status["lastFailure"]["status"], 429, "{status}");
    h.w.emu.set_fires_per_minute(Some(5));
    assert_eq!(h.post(&url, &headers, &body).status, 429);
    h.feed("DELETE", "t", json!({})).unwrap();
    assert_eq!(h.user_packages(), Vec::<String>::new());
}

/// `receive`'s time limit, shortened so a few slow fires outlast it (the manifest's 60 s would
/// make this test minutes long; what matters is the limit, whatever it is).
pub(crate) const SHORT_RECEIVE_TIMEOUT_MS: u64 = 6000;

/// Each fire of trigger `t` held `ms` by the emulator, then served (a slow controller).
pub(crate) fn slow_fires(trigger: &str, ms: u64) -> FaultRule {
    FaultRule {
        method: Some("POST".into()),
        path_contains: format!("/triggers/{trigger}"),
        status: 0,
        body: None,
        count: 10_000,
        delay_ms: ms,
    }
}

/// A batch whose fires outlast `receive`'s time limit. Without a deadline of its own the
/// receiver was killed mid-batch, the platform answered for it, nothing was recorded, and
/// each retry fired the same first events again, never the rest. Now it stops firing before
/// the deadline, records the cut batch and answers 503 with `Retry-After`; a producer that
/// retries until 2xx delivers all 30 events, each once. (The controller answers a web action
/// that outlasts its 60 s wait with 202 and the activation id alone, which a producer takes
/// for success: apache/openwhisk core/controller/src/main/scala/org/apache/openwhisk/core/
/// controller/WebActions.scala:442, 692-697, common/scala/src/main/resources/application.conf:601.)
#[test]
fn a_batch_slower_than_the_receivers_time_is_cut_and_completed_by_retries_each_event_once() {
    let h = Hooks::start();
    let receive = QualifiedName::new(SYSTEM_NAMESPACE, Some(PACKAGE), "receive");
    h.w.system.put_action(&receive, &json!({"limits": {"timeout": SHORT_RECEIVE_TIMEOUT_MS}}), true).unwrap();
    let created = h.create_recorded("t", json!({"source": "none"}));
    let (url, token) = (created["url"].as_str().unwrap().to_string(), created["token"].as_str().unwrap().to_string());
    let all: Vec<String> = (0..30).map(|i| format!("slow-{i:02}")).collect();
    let batch: Vec<Value> = all.iter().map(|id| ce(id, "com.example.slow")).collect();
    let body = serde_json::to_vec(&batch).unwrap();
    let auth = bearer(&token);
    let headers = [("Authorization", auth.as_str()), ("Content-Type", "application/cloudevents-batch+json")];
    h.w.emu.inject_fault(slow_fires("t", 400));
    let mut answers = Vec::new();
    for _ in 0..15 {
        let a = h.post(&url, &headers, &body);
        let done = a.status == 202;
        answers.push(a);
        if done {
            break;
        }
    }
    h.w.emu.clear_faults();
    let (last, cut) = answers.split_last().unwrap();
    assert_eq!(last.status, 202, "retries until 2xx complete the batch: {}", last.body);
    assert!(!cut.is_empty(), "30 fires of 400 ms do not fit in one 6 s activation");
    for a in cut {
        assert_eq!(a.status, 503, "{}", a.body);
        assert_eq!(a.header("Retry-After"), Some("1"), "{}", a.body);
        assert!(a.body["fired"].as_u64().is_some_and(|n| n > 0), "each attempt makes progress: {}", a.body);
        let (delivered, pending) = (a.body["delivered"].as_array().unwrap(), a.body["pending"].as_array().unwrap());
        assert_eq!(delivered.len() + pending.len(), 30, "{}", a.body);
    }
    let mut got = ids(&h.events());
    got.sort();
    assert_eq!(got, all, "every event exactly once");
    // READ showed the cut while it waited; the completed batch is forgotten, the failure stays.
    let status = h.feed("READ", "t", json!({})).unwrap()["status"].clone();
    assert!(status.get("batchesCut").is_none(), "{status}");
    assert_eq!(status["lastFailure"]["status"], 503, "{status}");
}

/// GitHub counts a delivery failed when no 2xx comes within 10 s ("Your server should respond
/// with a 2XX response within 10 seconds", docs.github.com/en/webhooks/using-webhooks/
/// best-practices-for-using-webhooks). A fire held longer is given up in time: the answer is a
/// 503 well within GitHub's 10 s (it used to wait for the fire), and READ shows the failure.
#[test]
fn a_github_delivery_is_answered_within_githubs_wait_however_slow_the_fire() {
    let h = Hooks::start();
    let gh = FakeGitHub::start("ghp_testtoken");
    let params =
        json!({"source": "github", "repository": "octo/repo", "accessToken": gh.token(), "githubApi": gh.url()});
    let created = h.create_recorded("t", params);
    let url = created["url"].as_str().unwrap().to_string();
    let id = *gh.hooks("octo/repo").keys().next().unwrap();
    let secret = gh.hooks("octo/repo")[&id]["config"]["secret"].as_str().unwrap().to_string();
    let body = br#"{"ref":"refs/heads/main","repository":{"html_url":"https://github.com/octo/repo"}}"#;
    let signature = github_signature(&Secret::new(secret), body);
    let hook_id = id.to_string();
    let headers = [
        ("Content-Type", "application/json"),
        ("X-GitHub-Event", "push"),
        ("X-GitHub-Delivery", "d-slow"),
        ("X-GitHub-Hook-ID", hook_id.as_str()),
        ("X-Hub-Signature-256", signature.as_str()),
    ];
    h.w.emu.inject_fault(slow_fires("t", 12_000));
    let start = std::time::Instant::now();
    let a = h.post(&url, &headers, body);
    let took = start.elapsed();
    h.w.emu.clear_faults();
    assert_eq!(a.status, 503, "{}", a.body);
    assert!(a.header("Retry-After").is_some());
    assert!(took < Duration::from_secs(10), "answered after {took:?}");
    let status = h.feed("READ", "t", json!({})).unwrap()["status"].clone();
    assert_eq!(status["lastFailure"]["status"], 503, "{status}");
}

#[test]
fn delete_that_cannot_reach_the_producer_removes_everything_and_names_the_hook() {
    let h = Hooks::start();
    let gh = FakeGitHub::start("ghp_testtoken");
    let api = gh.url();
    h.create("t", json!({"source": "github", "repository": "octo/repo", "accessToken": gh.token(), "githubApi": api}))
        .unwrap();
    let id = *gh.hooks("octo/repo").keys().next().unwrap();
    drop(gh); // GitHub is unreachable from now on.
    let deleted = h.feed("DELETE", "t", json!({})).expect("DELETE succeeds in the user's namespace");
    assert_eq!(h.user_packages(), Vec::<String>::new(), "{deleted}");
    let left = &deleted["notRemoved"][0];
    assert_eq!(left["registration"], id.to_string(), "{deleted}");
    assert_eq!(left["where"], format!("GitHub repository octo/repo, webhook {id}"));
    assert_eq!(
        left["command"],
        format!("curl -X DELETE -H \"Authorization: Bearer $GITHUB_TOKEN\" {api}/repos/octo/repo/hooks/{id}")
    );
    assert!(!deleted.to_string().contains("ghp_testtoken"), "{deleted}");
    // wsk trigger delete then deletes the trigger; a second DELETE finds nothing and succeeds.
    assert_eq!(h.feed("DELETE", "t", json!({})).unwrap()["status"], "deleted");
}

/// Sets `key` of trigger `t`'s hook config to `value`, as a hand edit of the binding would.
fn edit_hook_config(h: &Hooks, trigger: &str, key: &str, value: Value) {
    let binding = QualifiedName::new(USER, None, &format!("{trigger}.owfeed-hook"));
    let mut doc = h.w.user.get_package(&binding).expect("the hook config");
    let parameters = doc["parameters"].as_array_mut().expect("parameters");
    let entry = parameters.iter_mut().find(|p| p["key"] == key).expect("the key is stored");
    entry["value"] = value;
    h.w.user.put_package(&binding, &doc, true).expect("the edited hook config");
}

/// A stored registration its registrar cannot read (or a stored `source` that no longer
/// reads) is never taken for "nothing to remove": READ says what is wrong under `producer`,
/// PAUSE fails naming it and asks the producer nothing, DELETE removes everything in the
/// namespace and names the registration it could not remove, and why.
#[test]
fn a_stored_registration_that_does_not_read_is_named_by_read_pause_and_delete() {
    let h = Hooks::start();
    let gh = FakeGitHub::start("ghp_testtoken");
    let params =
        json!({"source": "github", "repository": "octo/repo", "accessToken": gh.token(), "githubApi": gh.url()});
    h.create("t", params.clone()).unwrap();
    edit_hook_config(&h, "t", "registration", json!("hook-7"));
    let calls = gh.calls().len();

    let read = h.feed("READ", "t", json!({})).unwrap();
    let problem = read["status"]["producer"]["problem"].as_str().unwrap_or_default().to_string();
    let named = "the stored registration \"hook-7\" of source github cannot be read (expected a GitHub hook id";
    assert!(problem.starts_with(named), "{read}");
    let err = h.feed("PAUSE", "t", json!({})).unwrap_err();
    assert!(err.contains(named), "{err}");
    assert_eq!(gh.calls().len(), calls, "nothing asked of GitHub");

    let deleted = h.feed("DELETE", "t", json!({})).unwrap();
    assert_eq!(h.user_packages(), Vec::<String>::new(), "{deleted}");
    let left = &deleted["notRemoved"][0];
    assert_eq!((left["registration"].as_str(), left["command"].as_str()), (Some("hook-7"), Some("")), "{deleted}");
    assert!(left["where"].as_str().unwrap().starts_with(&format!("unknown: {named}")), "{deleted}");
    assert!(left["reason"].as_str().unwrap().starts_with(named), "{deleted}");
    assert_eq!(gh.calls().len(), calls, "nothing asked of GitHub");

    // A stored `source` that no longer reads: the registration is named, never skipped.
    h.create("u", params.clone()).unwrap();
    let id = *gh.hooks("octo/repo").keys().max().unwrap();
    edit_hook_config(&h, "u", "source", json!(["github"]));
    let read = h.feed("READ", "u", json!({})).unwrap();
    let problem = read["status"]["producer"]["problem"].as_str().unwrap_or_default();
    assert!(
        problem.contains(&format!("registration {id} cannot be checked")) && problem.contains("'source'"),
        "{read}"
    );
    assert!(h.feed("PAUSE", "u", json!({})).unwrap_err().contains("'source'"));
    let deleted = h.feed("DELETE", "u", json!({})).unwrap();
    let left = &deleted["notRemoved"][0];
    assert_eq!(left["registration"], id.to_string(), "{deleted}");
    assert!(left["reason"].as_str().unwrap().contains("'source'"), "{deleted}");
    assert_eq!(h.user_packages(), Vec::<String>::new(), "{deleted}");

    // A stored `registration` that is not a string is not "nothing registered" either.
    h.create("v", params).unwrap();
    let id = *gh.hooks("octo/repo").keys().max().unwrap();
    edit_hook_config(&h, "v", "registration", json!([id.to_string()]));
    let read = h.feed("READ", "v", json!({})).unwrap();
    assert!(read["status"]["producer"]["problem"].as_str().unwrap_or_default().contains("'registration'"), "{read}");
    assert!(h.feed("PAUSE", "v", json!({})).unwrap_err().contains("'registration'"));
    let deleted = h.feed("DELETE", "v", json!({})).unwrap();
    assert!(deleted["notRemoved"][0]["reason"].as_str().unwrap().contains("'registration'"), "{deleted}");
    assert_eq!(h.user_packages(), Vec::<String>::new(), "{deleted}");
}

#[test]
fn bodies_are_judged_as_sent() {
    let h = Hooks::start();
    let created = h.create_recorded("t", json!({"source": "none", "maxBodyBytes": 1000}));
    let (url, token) = (created["url"].as_str().unwrap().to_string(), created["token"].as_str().unwrap().to_string());
    let auth = bearer(&token);
    let send = |ct: &str, id: &str, body: &[u8]| {
        h.post(&url, &[("Authorization", auth.as_str()), ("Content-Type", ct), ("X-Delivery-Id", id)], body)
    };
    let error = |a: &Answer| a.body["error"].as_str().unwrap_or_default().to_string();
    // Invalid JSON is reported from the bytes sent, not from OpenWhisk's base64 of them.
    let a = send("application/json", "x", b"{\"a\": oops}");
    assert_eq!(a.status, 400, "{}", a.body);
    assert!(error(&a).contains("line 1 column 7"), "{}", a.body);
    let a = send("application/json", "x", b"{\"a\": \"\xff\"}");
    assert_eq!(a.status, 400, "{}", a.body);
    assert!(!error(&a).contains("column 1:") && error(&a).contains("line 1"), "{}", a.body);
    let a = send("application/json", "x", "[".repeat(200).as_bytes());
    assert_eq!(a.status, 400, "{}", a.body);
    assert!(error(&a).contains("recursion limit"), "{}", a.body);
    // Sizes are the body's: 900 invalid bytes (1200 in base64) are a 400, 1200 bytes a 413 saying 1200.
    assert_eq!(send("application/json", "x", &[b'x'; 900]).status, 400);
    let a = send("application/json", "x", &[b'x'; 1200]);
    assert_eq!(a.status, 413, "{}", a.body);
    assert!(error(&a).starts_with("body of 1200 bytes"), "{}", a.body);
    // Numbers arrive exactly as sent.
    let a = send("application/json", "n-1", br#"{"id": 123456789012345678901234567890, "big": 1e400, "f": 0.1}"#);
    assert_eq!(a.status, 202, "{}", a.body);
    // A charset does not turn a binary type into text (it arrived double-base64-encoded).
    let a = send("application/octet-stream; charset=utf-8", "o-1", &[0xff, 0, 1]);
    assert_eq!(a.status, 202, "{}", a.body);
    // `.text` is not a receiver URL: OpenWhisk answers 200 with the result's body as text
    // (WebActions.scala resultAsText), which still says what was fired.
    let text_url = url.replace("receive.http", "receive.text");
    let a = h.post(&text_url, &[("Authorization", auth.as_str()), ("X-Delivery-Id", "t-1")], b"hello");
    assert_eq!(a.status, 200);
    // A handshake origin that is not a plain host name is refused, never echoed.
    let a = h.request("OPTIONS", &url, &[("WebHook-Request-Origin", "evil\torigin")], b"");
    assert_eq!((a.status, a.header("WebHook-Allowed-Origin")), (400, None));

    // Rule invocations run concurrently: the recorder may see them in any order.
    let mut events = h.events();
    events.sort_by_key(|e| e["id"].as_str().unwrap_or_default().to_string());
    assert_eq!(ids(&events), vec!["n-1", "o-1", "t-1"]);
    let numbers = serde_json::to_string(&events[0]["data"]).unwrap();
    assert_eq!(numbers, r#"{"big":1e+400,"f":0.1,"id":123456789012345678901234567890}"#);
    assert_eq!(events[1]["data_base64"], "/wAB");
}

#[test]
fn github_registration_meets_githubs_rules() {
    let h = Hooks::start();
    let gh = FakeGitHub::start("ghp_testtoken");
    let params = json!({
        "source": "github", "repository": "octo/repo", "accessToken": gh.token(), "githubApi": gh.url(),
        "events": ["push", "issues"],
    });
    let created = h.create_recorded("t", params.clone());
    let url = created["url"].as_str().unwrap().to_string();
    let id = *gh.hooks("octo/repo").keys().next().unwrap();
    let secret = gh.hooks("octo/repo")[&id]["config"]["secret"].as_str().unwrap().to_string();

    // GitHub refuses a second hook with this URL and overlapping events: the old
    // create-then-delete UPDATE could never work.
    let http = ureq::Agent::config_builder().http_status_as_error(false).build().new_agent();
    let mut dup = http
        .post(format!("{}/repos/octo/repo/hooks", gh.url()))
        .header("Authorization", "Bearer ghp_testtoken")
        .send_json(json!({"name": "web", "events": ["issues"], "config": {"url": url}}))
        .unwrap();
    assert_eq!(dup.status().as_u16(), 422);
    let said: Value = serde_json::from_str(&dup.body_mut().read_to_string().unwrap()).unwrap();
    assert_eq!(said["errors"][0]["message"], "Hook already exists on this repository");

    // Paused, then updated: the hook stays paused and keeps its secret.
    h.feed("PAUSE", "t", json!({})).unwrap();
    let updated = h.feed("UPDATE", "t", json!({"events": ["push", "release"]})).unwrap();
    assert_eq!(updated["registration"], id.to_string(), "{updated}");
    let hook = &gh.hooks("octo/repo")[&id];
    assert_eq!((hook["active"].clone(), hook["events"].clone()), (json!(false), json!(["push", "release"])));
    assert_eq!(hook["config"]["secret"], secret.as_str());
    h.feed("UNPAUSE", "t", json!({})).unwrap();

    // Every call pins the API version and asks for GitHub's media type.
    let ours: Vec<_> = gh.calls().into_iter().filter(|c| c.headers["user-agent"] == "owfeed-hooks").collect();
    assert!(ours.len() >= 4, "{ours:?}");
    for call in ours {
        assert_eq!(call.headers.get("accept").map(String::as_str), Some("application/vnd.github+json"), "{call:?}");
        assert_eq!(call.headers.get("x-github-api-version").map(String::as_str), Some("2022-11-28"), "{call:?}");
    }

    // A CREATE that does not know the hook (its endpoint removed behind the feed's back) gets
    // GitHub's validation details, not just "Validation Failed".
    h.w.user.delete_package(&QualifiedName::new("_", None, "t.owfeed-hook")).unwrap();
    let err = h.feed("CREATE", "t", params.clone()).unwrap_err();
    assert!(err.contains("HTTP 422") && err.contains("Hook already exists on this repository"), "{err}");
    assert!(!err.contains(&secret) && !err.contains("ghp_testtoken"), "{err}");
    h.feed("CREATE", "t", json!({"source": "none"})).unwrap();
    h.feed("DELETE", "t", json!({})).unwrap();

    // Rate limits are retryable, not "unauthorized".
    gh.rate_limit(1);
    let err = h.create("r", params.clone()).unwrap_err();
    assert!(err.contains("rate limited") && err.contains("HTTP 403"), "{err}");
    assert!(!h.user_packages().iter().any(|p| p.contains("r.owfeed-hook")), "{:?}", h.user_packages());
}

#[test]
fn github_deliveries_ping_and_foreign_hooks() {
    let h = Hooks::start();
    let gh = FakeGitHub::start("ghp_testtoken");
    let params =
        json!({"source": "github", "repository": "octo/repo", "accessToken": gh.token(), "githubApi": gh.url()});
    let created = h.create_recorded("t", params);
    let url = created["url"].as_str().unwrap().to_string();
    let id = *gh.hooks("octo/repo").keys().next().unwrap();
    let secret = Secret::new(gh.hooks("octo/repo")[&id]["config"]["secret"].as_str().unwrap());
    let deliver = |event: &str, hook: u64, body: &[u8]| {
        let sig = github_signature(&secret, body);
        let hook = hook.to_string();
        let headers = [
            ("Content-Type", "application/json"),
            ("X-GitHub-Event", event),
            ("X-GitHub-Hook-ID", hook.as_str()),
            ("X-Hub-Signature-256", sig.as_str()),
        ];
        h.post(&url, &headers, body)
    };
    let ping = format!(r#"{{"zen": "Keep it logically awesome.", "hook_id": {id}}}"#);
    let a = deliver("ping", id, ping.as_bytes());
    assert_eq!((a.status, a.body["status"].clone()), (200, json!("pong")), "{}", a.body);
    let a = deliver("push", id + 1, br#"{"ref": "refs/heads/main"}"#);
    assert_eq!(a.status, 403, "{}", a.body);
    let a = deliver("push", id, br#"{"ref": "refs/heads/main"}"#);
    assert_eq!(a.status, 202, "{}", a.body);
    let events = h.events();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["githubevent"], "push");
}

#[test]
fn github_404_on_delete_is_gone_only_when_the_repository_is_administrable() {
    let h = Hooks::start();
    let gh = FakeGitHub::start("ghp_testtoken");
    let params =
        json!({"source": "github", "repository": "octo/repo", "accessToken": gh.token(), "githubApi": gh.url()});
    // Deleted at GitHub by hand: DELETE finds it gone and says nothing more.
    h.create("a", params.clone()).unwrap();
    let id = *gh.hooks("octo/repo").keys().next().unwrap();
    let http = ureq::Agent::config_builder().http_status_as_error(false).build().new_agent();
    http.delete(format!("{}/repos/octo/repo/hooks/{id}", gh.url()))
        .header("Authorization", "Bearer ghp_testtoken")
        .call()
        .unwrap();
    let deleted = h.feed("DELETE", "a", json!({})).unwrap();
    assert!(deleted.get("notRemoved").is_none(), "{deleted}");
    // The token lost admin rights: GitHub answers 404 too, but the hook is still there.
    h.create("b", params).unwrap();
    let id = *gh.hooks("octo/repo").keys().next().unwrap();
    gh.revoke_admin();
    let deleted = h.feed("DELETE", "b", json!({})).unwrap();
    let left = &deleted["notRemoved"][0];
    assert_eq!(left["registration"], id.to_string(), "{deleted}");
    assert!(left["reason"].as_str().unwrap().contains("can no longer administer octo/repo"), "{deleted}");
    assert_eq!(gh.hooks("octo/repo").len(), 1);
    assert_eq!(h.user_packages(), Vec::<String>::new());
}

#[test]
fn subscription_manager_without_header_support_still_authenticates() {
    let h = Hooks::start();
    let manager = FakeManager::ignoring_headers(None);
    let err = h
        .create("bad", json!({"source": "subscription", "manager": manager.url(), "subscriptionSource": "not a uri"}))
        .unwrap_err();
    assert!(err.contains("parameter 'subscriptionSource'"), "{err}");
    let created = h.create_recorded(
        "t",
        json!({"source": "subscription", "manager": manager.url(), "config": {"topic": "orders"}, "subscriptionSource": "/orders"}),
    );
    let (id, sub) = manager.subscriptions().into_iter().next().unwrap();
    assert_eq!(created["registration"], id.as_str());
    assert!(sub.pointer("/protocolsettings/headers").is_none(), "{sub}");
    assert_eq!(sub["config"], json!({"topic": "orders"}));
    // GET never returns the access token.
    let http = ureq::Agent::config_builder().http_status_as_error(false).build().new_agent();
    let got =
        http.get(format!("{}/subscriptions/{id}", manager.url())).call().unwrap().body_mut().read_to_string().unwrap();
    assert!(!got.contains(sub["sinkcredential"]["accesstoken"].as_str().unwrap()), "{got}");
    assert_eq!(manager.deliver(&id, &ce("o-1", "com.example.order.created")), 202);
    assert_eq!(ids(&h.events()), vec!["o-1"]);
}

/// One S3 notification record in the shape a provider pushes (reference notes s3-notifications.md §1, §4, §5).
fn s3_record(source: &str, event: &str, key: &str, sequencer: &str) -> Value {
    let mut object = json!({"key": key, "sequencer": sequencer});
    if event.contains("ObjectCreated") {
        object["size"] = json!(5);
        // Ceph before 2021 spells it `etag`.
        object[if source == "ceph:s3" { "etag" } else { "eTag" }] = json!("5d41402abc4b2a76b9719d911017c592");
    }
    json!({"eventVersion": "2.2", "eventSource": source, "awsRegion": "", "eventName": event,
        "eventTime": if source == "ceph:s3" { "2026-11-27T18:00:00.250000Z" } else { "2026-11-27T18:00:00.250Z" },
        "userIdentity": {"principalId": "tester"}, "requestParameters": {"sourceIPAddress": ""},
        "s3": {"s3SchemaVersion": "1.0", "configurationId": "owfeed", "bucket": {"name": "photos",
            "arn": "arn:aws:s3:::photos"}, "object": object}})
}

/// The events the S3 feed fires for these changes (without `id`), in the polling feed's shape.
fn s3_expected(endpoint: &str, changes: &[(&str, &str)]) -> Vec<Value> {
    changes
        .iter()
        .map(|(change, key)| {
            let mut data = json!({"bucket": "photos", "endpoint": endpoint, "key": key, "change": change});
            if *change == "created" {
                data["etag"] = json!("5d41402abc4b2a76b9719d911017c592");
                data["size"] = json!(5);
                data["lastModified"] = json!("2026-11-27T18:00:00.250Z");
            }
            json!({"specversion": "1.0", "source": format!("{endpoint}/photos"),
                "type": format!("org.openwhisk.feeds.s3.object.{change}"), "subject": key,
                "time": "2026-11-27T18:00:00.250Z",
                "datacontenttype": "application/json", "data": data})
        })
        .collect()
}

/// Drops `id` (checked separately).
fn without_id(events: &[Value]) -> Vec<Value> {
    let mut out = Vec::new();
    for e in events {
        let mut e = e.clone();
        let id = e.as_object_mut().unwrap().remove("id").expect("id");
        assert!(id.as_str().is_some_and(|s| s.len() == 32), "{id}");
        out.push(e);
    }
    out
}

#[test]
fn s3_push_from_ceph_and_minio_pushers_fires_the_s3_feeds_events() {
    let h = Hooks::start();
    let ceph = h.create_recorded(
        "ceph",
        json!({"source": "s3", "provider": "ceph", "endpoint": "http://rgw.example:8000", "bucket": "photos"}),
    );
    let ceph_token = ceph["token"].as_str().expect("the token is printed: nothing was registered").to_string();
    // Ceph pushes with no header of its own: the token travels in the push-endpoint URL.
    let ceph_url = format!("{}?access_token={ceph_token}", ceph["url"].as_str().unwrap());
    let ceph_push = |event: &str, key: &str, seq: &str| {
        let body = json!({"Records": [s3_record("ceph:s3", event, key, seq)]});
        h.post(&ceph_url, &[("Content-Type", "application/json")], &serde_json::to_vec(&body).unwrap())
    };
    let a = ceph_push("ObjectCreated:Put", "albums/a b+c.jpg", "0001");
    assert_eq!((a.status, a.body["fired"].clone()), (202, json!(1)), "{}", a.body);
    // A retry of the same notification (Ceph persistent topics resend until acked).
    assert_eq!(ceph_push("ObjectCreated:Put", "albums/a b+c.jpg", "0001").status, 202);
    assert_eq!(ceph_push("ObjectRemoved:Delete", "albums/a b+c.jpg", "0002").status, 202);
    let no_token = h.post(ceph["url"].as_str().unwrap(), &[("Content-Type", "application/json")], b"{}");
    assert_eq!(no_token.status, 401);

    // Rule invocations run concurrently in the emulator: the recorder's order is not the send order.
    let mut events = h.events();
    events.sort_by_key(|e| e["type"].as_str().unwrap_or_default().to_string());
    assert_eq!(
        without_id(&events),
        s3_expected(
            "http://rgw.example:8000",
            &[("created", "albums/a b+c.jpg"), ("created", "albums/a b+c.jpg"), ("deleted", "albums/a b+c.jpg")]
        )
    );
    assert_eq!(events[0]["id"], events[1]["id"], "a retried notification keeps its id");
    assert_ne!(events[0]["id"], events[2]["id"]);

    // MinIO: Bearer auth_token, Go query-escaped keys, `s3:` event names, its envelope; legacy format, batched.
    let minio = h.create_recorded(
        "minio",
        json!({"source": "s3", "provider": "minio", "endpoint": "http://minio.example:9000", "bucket": "photos",
            "format": "legacy", "batch": 5, "events": ["created"]}),
    );
    let minio_auth = bearer(minio["token"].as_str().unwrap());
    let minio_url = minio["url"].as_str().unwrap().to_string();
    let minio_push = |event: &str, key: &str, seq: &str| {
        let body = json!({"EventName": format!("s3:{event}"), "Key": format!("photos/{key}"),
            "Records": [s3_record("minio:s3", &format!("s3:{event}"), key, seq)]});
        h.post(
            &minio_url,
            &[("Authorization", &minio_auth), ("Content-Type", "application/json")],
            &serde_json::to_vec(&body).unwrap(),
        )
    };
    let a = minio_push("ObjectCreated:Put", "albums%2Fa+b%2Bc.jpg", "187B1C7E3A5D1D00");
    assert_eq!(a.status, 202, "{}", a.body);
    let a = minio_push("ObjectRemoved:Delete", "albums%2Fa+b%2Bc.jpg", "187B1C7E3A5D1D01");
    assert_eq!((a.status, a.body["fired"].clone(), a.body["filtered"].clone()), (202, json!(0), json!(1)));
    let fired: Vec<Value> = h.events().into_iter().filter(|e| e.get("events").is_some()).collect();
    assert_eq!(fired.len(), 1, "{fired:?}");
    let mut batch = fired[0].clone();
    let id = batch["events"][0].as_object_mut().unwrap().remove("id").expect("legacy events carry the id");
    assert_eq!(id.as_str().map(str::len), Some(32));
    assert_eq!(
        batch,
        json!({"events": [{"file": {"Key": "albums/a b+c.jpg", "ETag": "\"5d41402abc4b2a76b9719d911017c592\"",
            "Size": 5, "LastModified": "2026-11-27T18:00:00.250Z"}, "status": "added", "bucket": "photos",
            "key": "albums/a b+c.jpg", "endpoint": "http://minio.example:9000"}]})
    );
}
