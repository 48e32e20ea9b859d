//! The HTTP resource source (`-p source http`) end to end: the real `changes` and `poll`
//! binaries in the emulator, real web servers we did not write (npm `http-server`, Python's
//! `http.server`) behind the fault proxy (which counts their 200s and 304s and injects what
//! they cannot do), and the state in moto, as `wsk trigger create T --feed owfeed/changes -p
//! source http -p url … -p stateBucket …` does.

use std::fs;
use std::path::Path;
use std::time::{Duration, SystemTime};

use serde_json::{json, Value};

use feed_tests::moto::Moto;
use feed_tests::s3proxy::{Fault, FaultProxy, Rule};
use feed_tests::tls::{TestCa, TlsProxy};
use feed_tests::webserver::{RecordingServer, Seen, WebServer};
use feed_tests::world::{workspace_bin, World, USER};
use owfeed::events::validate_cloud_event;
use owfeed::params::Params;
use owfeed::source::Source;
use owfeed::sources::http::HttpSource;

/// The feed's state bucket on the shared moto, as `stateBucket` and the S3 parameters.
fn state_store() -> Value {
    let moto = Moto::shared().expect("moto server");
    let bucket = Moto::unique_bucket("http-state");
    moto.create_bucket(&bucket).unwrap();
    json!({
        "stateBucket": bucket,
        "endpoint": moto.endpoint(),
        "accessKeyId": moto.access_key_id(),
        "secretAccessKey": moto.secret_access_key(),
    })
}

fn world() -> World {
    World::start(&workspace_bin("changes"), &workspace_bin("poll"))
}

fn create(w: &World, extra: Value) -> Value {
    let mut p = json!({"source": "http", "interval": 1});
    p.as_object_mut().unwrap().extend(state_store().as_object().unwrap().clone());
    p.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    let created = w.create_trigger("t", p).expect("CREATE");
    w.record_events("t", Path::new(env!("CARGO_BIN_EXE_echo-action")));
    created
}

/// The events received since `from`, as "type subject", sorted; each a valid CloudEvent.
fn events_since(w: &World, from: usize) -> Vec<String> {
    let events = w.events();
    let mut got: Vec<String> = events[from..]
        .iter()
        .map(|e| {
            validate_cloud_event(e).unwrap_or_else(|err| panic!("{err}: {e}"));
            format!("{} {}", e["type"].as_str().unwrap(), e["subject"].as_str().unwrap())
        })
        .collect();
    got.sort();
    got
}

fn last_poll(w: &World) -> Value {
    w.poll_results().last().cloned().expect("a poll ran")
}

/// Sets a file's modification time (Python's server dates to the second).
fn touch(path: &Path, secs_from_now: u64) {
    let file = fs::File::options().write(true).open(path).unwrap();
    file.set_modified(SystemTime::now() + Duration::from_secs(secs_from_now)).unwrap();
}

#[test]
fn http_server_resources_fire_exact_events_and_unchanged_ones_cost_a_304() {
    let site = tempdir("node");
    fs::write(site.join("a.txt"), "alpha").unwrap();
    fs::write(site.join("b.json"), "{}").unwrap();
    let server = WebServer::node(&site).expect("http-server");
    let proxy = FaultProxy::start(&server.url).unwrap();
    let url = |f: &str| format!("{}/{f}", proxy.url());
    let w = world();
    // c.txt does not exist yet: a 404 is an absent resource, not an error.
    create(&w, json!({"url": [url("a.txt"), url("b.json"), url("c.txt")]}));

    // Nothing changed: every existing resource is asked conditionally and answers 304.
    let (ok, unchanged) = (proxy.answered(200, "GET /"), proxy.answered(304, "GET /"));
    w.poll();
    assert_eq!(last_poll(&w)["error"], Value::Null, "{}", last_poll(&w));
    assert_eq!(proxy.answered(304, "GET /") - unchanged, 2, "a.txt and b.json revalidated");
    assert_eq!(proxy.answered(200, "GET /") - ok, 0, "no body fetched for an unchanged resource");
    assert_eq!(w.events(), Vec::<Value>::new());

    fs::write(site.join("b.json"), r#"{"v": 2}"#).unwrap();
    fs::write(site.join("c.txt"), "new").unwrap();
    fs::remove_file(site.join("a.txt")).unwrap();
    w.poll();
    assert_eq!(
        events_since(&w, 0),
        [
            format!("org.openwhisk.feeds.http.resource.created {}", url("c.txt")),
            format!("org.openwhisk.feeds.http.resource.deleted {}", url("a.txt")),
            format!("org.openwhisk.feeds.http.resource.updated {}", url("b.json")),
        ]
    );
    let updated = w.events().into_iter().find(|e| e["subject"] == url("b.json")).unwrap();
    let data = &updated["data"];
    assert_eq!((data["url"].as_str(), data["status"].as_u64()), (Some(url("b.json").as_str()), Some(200)));
    assert!(data["etag"].as_str().is_some_and(|e| e.starts_with("W/\"")), "{data}");
    assert!(data["lastModified"].as_str().is_some_and(|d| d.ends_with(" GMT")), "{data}");
    assert_eq!(data["contentLength"], 8, "{data}");
    assert!(data["contentType"].as_str().is_some_and(|t| t.starts_with("application/json")), "{data}");
    assert_eq!(updated["source"], "urn:owfeed:http", "several URLs and no index");

    // The next poll: b.json and c.txt unchanged (304), a.txt still 404, no event.
    let unchanged = proxy.answered(304, "GET /");
    w.poll();
    assert_eq!(proxy.answered(304, "GET /") - unchanged, 2);
    assert_eq!(w.events().len(), 3);
    w.delete_trigger("t").unwrap();
}

#[test]
fn python_http_server_with_last_modified_only_and_an_index() {
    let site = tempdir("python");
    fs::write(site.join("a.txt"), "alpha").unwrap();
    fs::write(site.join("b.txt"), "beta").unwrap();
    let server = WebServer::python(&site).expect("python3 -m http.server");
    let proxy = FaultProxy::start(&server.url).unwrap();
    let url = |f: &str| format!("{}/{f}", proxy.url());
    let index = |files: &[&str]| {
        let urls: Vec<String> = files.iter().map(|f| url(f)).collect();
        fs::write(site.join("index.json"), serde_json::to_string(&urls).unwrap()).unwrap();
    };
    index(&["a.txt", "b.txt"]);
    let w = world();
    create(&w, json!({"indexUrl": url("index.json")}));

    let unchanged = proxy.answered(304, "GET /");
    w.poll();
    assert_eq!(last_poll(&w)["error"], Value::Null, "{}", last_poll(&w));
    assert_eq!(proxy.answered(304, "GET /") - unchanged, 2, "If-Modified-Since answered 304 for a and b");
    assert_eq!(w.events(), Vec::<Value>::new());

    // A change in the same second keeps Last-Modified: date a.txt later explicitly.
    fs::write(site.join("a.txt"), "alpha 2").unwrap();
    touch(&site.join("a.txt"), 5);
    fs::write(site.join("c.txt"), "gamma").unwrap();
    index(&["a.txt", "c.txt"]);
    w.poll();
    assert_eq!(
        events_since(&w, 0),
        [
            format!("org.openwhisk.feeds.http.resource.created {}", url("c.txt")),
            format!("org.openwhisk.feeds.http.resource.deleted {}", url("b.txt")),
            format!("org.openwhisk.feeds.http.resource.updated {}", url("a.txt")),
        ]
    );
    let updated = w.events().into_iter().find(|e| e["subject"] == url("a.txt")).unwrap();
    assert_eq!(updated["data"]["etag"], Value::Null, "{updated}");
    assert!(updated["data"]["lastModified"].as_str().is_some(), "{updated}");
    assert_eq!(updated["source"], url("index.json"));
    w.delete_trigger("t").unwrap();
}

#[test]
fn a_500_from_one_url_fails_the_poll_and_reports_no_delete() {
    let site = tempdir("fault");
    fs::write(site.join("a.txt"), "alpha").unwrap();
    fs::write(site.join("b.txt"), "beta").unwrap();
    let server = WebServer::node(&site).expect("http-server");
    let proxy = FaultProxy::start(&server.url).unwrap();
    let url = |f: &str| format!("{}/{f}", proxy.url());
    let w = world();
    create(&w, json!({"url": format!("{},{}", url("a.txt"), url("b.txt"))}));

    fs::remove_file(site.join("a.txt")).unwrap();
    proxy.add(Rule { method: "GET", contains: "/b.txt", skip: 0, count: 1, fault: Fault::Status(500) });
    w.poll();
    let failed = last_poll(&w);
    assert!(failed["error"].as_str().is_some_and(|e| e.contains("HTTP 500")), "{failed}");
    assert_eq!(w.events(), Vec::<Value>::new(), "a failed listing reports no delete");

    // The server answers again: the delete is reported once, b is unchanged (a 304).
    let unchanged = proxy.answered(304, "/b.txt");
    w.poll();
    assert_eq!(events_since(&w, 0), [format!("org.openwhisk.feeds.http.resource.deleted {}", url("a.txt"))]);
    assert_eq!(proxy.answered(304, "/b.txt") - unchanged, 1);
    w.delete_trigger("t").unwrap();
}

#[test]
fn header_secrets_are_sent_but_never_shown() {
    const TOKEN: &str = "Bearer http-src-s3cr3t-7f3a";
    // A server that requires the header and echoes every request into its 403s.
    let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
    let base = format!("http://{}", server.server_addr().to_ip().unwrap());
    std::thread::spawn(move || {
        for req in server.incoming_requests() {
            let auth = req.headers().iter().find(|h| h.field.equiv("Authorization")).map(|h| h.value.to_string());
            let echo: Vec<String> = req.headers().iter().map(|h| format!("{}: {}", h.field, h.value)).collect();
            let response = match auth.as_deref() {
                Some(TOKEN) if req.url() == "/doc" => tiny_http::Response::from_string("ok")
                    .with_header(tiny_http::Header::from_bytes("ETag", "\"1\"").unwrap()),
                _ => tiny_http::Response::from_string(format!("denied: {}", echo.join(" | "))).with_status_code(403),
            };
            let _ = req.respond(response);
        }
    });
    let w = world();
    let headers = json!({"Authorization": TOKEN});
    let mut p = json!({"source": "http", "url": format!("{base}/denied"), "headers": headers});
    p.as_object_mut().unwrap().extend(state_store().as_object().unwrap().clone());
    let err = w.create_trigger("t", p.clone()).unwrap_err();
    assert!(err.contains("not authorized (HTTP 403)"), "{err}");
    assert!(!err.contains("s3cr3t"), "{err}");

    p["url"] = json!(format!("{base}/doc"));
    w.create_trigger("t", p).expect("CREATE with the header");
    w.poll();
    assert_eq!(last_poll(&w)["error"], Value::Null, "{}", last_poll(&w));
    let read = w.feed("READ", "t", json!({})).unwrap();
    assert_eq!(read["config"]["headers"], "[redacted]", "{read}");
    let everything = format!("{read} {}", Value::Array(w.emu.activations(USER)));
    assert!(!everything.contains("s3cr3t"), "a header value leaked: {everything}");
    w.delete_trigger("t").unwrap();
}

/// Where the user's `headers` go (README "Use the HTTP resource feed", "Where the headers
/// go"): only to the origins of the URLs the user configured. An index entry or a redirect on
/// another origin is refused, or, when the user names that origin in `otherOrigins`, fetched
/// without the headers; a redirect within the origin keeps them; https never leads to http.
/// The servers record every request's headers.
#[test]
fn headers_go_only_to_the_origins_the_user_configured() {
    const TOKEN: &str = "Bearer origin-t0ken-s3cr3t";
    const KEY: &str = "api-key-0rigin-s3cr3t";
    let a = RecordingServer::start().unwrap(); // the origin the user configured
    let b = RecordingServer::start().unwrap(); // another origin (another port)
    let etag = [("ETag", "\"1\"")];
    a.route("/a", 200, &etag, "a");
    a.route("/same", 302, &[("Location", "/a")], "");
    let elsewhere = format!("{}/x", b.url);
    a.route("/elsewhere", 307, &[("Location", &elsewhere)], "");
    a.route("/index.json", 200, &[], &json!([format!("{}/a", a.url), format!("{}/b", b.url)]).to_string());
    b.route("/b", 200, &etag, "b");
    b.route("/x", 200, &etag, "x");
    let carries = |s: &Seen| (s.header("authorization").is_some(), s.header("x-api-key").is_some());
    let w = world();
    let params = |extra: Value| {
        let mut p = json!({"source": "http", "headers": {"Authorization": TOKEN, "X-Api-Key": KEY}});
        p.as_object_mut().unwrap().extend(state_store().as_object().unwrap().clone());
        p.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        p
    };
    let b_origin = b.url.clone();

    // An index listing another origin: CREATE's probe refuses it, and b is never asked.
    let index = format!("{}/index.json", a.url);
    let err = w.create_trigger("t", params(json!({"indexUrl": index}))).unwrap_err();
    assert!(err.contains(&format!("another origin ({b_origin})")) && err.contains("otherOrigins"), "{err}");
    assert!(!err.contains("s3cr3t"), "{err}");
    assert_eq!(b.seen().len(), 0, "{:?}", b.seen());

    // Named in otherOrigins: b's resource is watched, and b never gets the headers.
    w.create_trigger("t", params(json!({"indexUrl": index, "otherOrigins": [b_origin]}))).expect("CREATE");
    w.poll();
    assert_eq!(last_poll(&w)["error"], Value::Null, "{}", last_poll(&w));
    assert!(!b.seen().is_empty());
    assert!(b.seen().iter().all(|s| carries(s) == (false, false)), "{:?}", b.seen());
    assert!(a.seen().iter().all(|s| carries(s) == (true, true)), "{:?}", a.seen());
    w.delete_trigger("t").unwrap();

    // A redirect off the origin: not followed unless named, then without the headers; one
    // within the origin keeps them.
    let seen_by_b = b.seen().len();
    let err = w.create_trigger("t", params(json!({"url": format!("{}/elsewhere", a.url)}))).unwrap_err();
    assert!(err.contains("redirected (HTTP 307) to") && err.contains("another origin"), "{err}");
    assert_eq!(b.seen().len(), seen_by_b, "{:?}", b.seen());
    let urls = json!([format!("{}/elsewhere", a.url), format!("{}/same", a.url)]);
    let (seen_by_a, seen_by_b) = (a.seen().len(), b.seen().len());
    w.create_trigger("t", params(json!({"url": urls, "otherOrigins": b_origin}))).expect("CREATE");
    w.poll();
    assert_eq!(last_poll(&w)["error"], Value::Null, "{}", last_poll(&w));
    let (at_a, at_b) = (&a.seen()[seen_by_a..], &b.seen()[seen_by_b..]);
    assert!(at_b.iter().any(|s| s.path == "/x") && at_b.iter().all(|s| carries(s) == (false, false)), "{at_b:?}");
    assert!(at_a.iter().any(|s| s.path == "/a") && at_a.iter().all(|s| carries(s) == (true, true)), "{at_a:?}");
    w.delete_trigger("t").unwrap();

    // https to http: refused, even to the same host.
    let ca = TestCa::new().unwrap();
    let tls = TlsProxy::start(&a.url, &ca).unwrap();
    a.route("/down", 301, &[("Location", &format!("{}/a", a.url))], "");
    let seen_by_a = a.seen().len();
    let err = w
        .create_trigger("t", params(json!({"url": format!("{}/down", tls.url()), "caCertificate": ca.ca_pem})))
        .unwrap_err();
    assert!(err.contains("redirected from https to http"), "{err}");
    let paths: Vec<String> = a.seen()[seen_by_a..].iter().map(|s| s.path.clone()).collect();
    assert_eq!(paths, ["/down"], "only the https request reached the server");
}

#[test]
fn bad_parameters_name_the_parameter_and_never_echo_a_header() {
    let open = |p: Value| HttpSource.open(&Params::from_value(p).unwrap()).err().expect("refused").to_string();
    assert!(open(json!({})).starts_with("parameter 'url'"));
    assert!(open(json!({"url": "ftp://x/y"})).starts_with("parameter 'url'"));
    assert!(open(json!({"url": "http://x/a", "indexUrl": "http://x/i"})).starts_with("parameter 'url'"));
    assert!(open(json!({"indexUrl": "file:///etc"})).starts_with("parameter 'indexUrl'"));
    let err = open(json!({"url": "http://x/a", "headers": {"Authorization": 7, "X": "pa55word-zz"}}));
    assert!(err.starts_with("parameter 'headers'") && !err.contains("pa55word"), "{err}");
    let err = open(json!({"url": "http://x/a", "headers": {"Bad Name": "pa55word-zz"}}));
    assert!(err.starts_with("parameter 'headers'") && !err.contains("pa55word"), "{err}");
    let err = open(json!({"url": "http://x/a", "headers": "not json pa55word-zz"}));
    assert!(err.starts_with("parameter 'headers'") && !err.contains("pa55word"), "{err}");
    assert!(
        open(json!({"url": "http://x/a", "otherOrigins": "https://cdn/path"})).starts_with("parameter 'otherOrigins'")
    );
    let err = open(json!({"url": "http://x/a", "otherOrigins": ["https://u:pa55word-zz@cdn"]}));
    assert!(err.starts_with("parameter 'otherOrigins'") && !err.contains("pa55word"), "{err}");
    assert!(HttpSource.open(&Params::from_value(json!({"url": "http://x/a"})).unwrap()).is_ok());
    let ok = json!({"url": "http://x/a", "otherOrigins": "https://cdn.example.com, http://h:8080/"});
    assert!(HttpSource.open(&Params::from_value(ok).unwrap()).is_ok());
}

fn tempdir(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(Moto::unique_bucket(&format!("owfeed-http-{tag}")));
    fs::create_dir_all(&dir).unwrap();
    dir
}
