//! `list-bench --waits N`: do our HTTP clients wait on the network between answers?
//!
//! A server that writes the end of an answer as a separate small segment, with Nagle's
//! algorithm on, holds that segment until the client has acknowledged the data before it; a
//! client that delays its acknowledgements then waits for its delayed-ACK timer (40 ms on
//! Linux) on such answers. `owfeed_s3::http_agent` acknowledges before every blocking read.
//!
//! For each server the suite runs (and a reference server that writes like RGW: a chunked
//! body in one write, then the terminator in another, Nagle on), this sends the same request
//! N times in a row on one kept-alive connection, once with ureq's own agent (the transport
//! every client used before) and once with `owfeed_s3::http_agent`, and prints the median,
//! 90th percentile and longest request time and how many requests took 30 ms or more. It
//! asserts nothing; it reports.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::time::{Instant, SystemTime};

use anyhow::Context as _;
use serde_json::json;

use feed_tests::ceph::{Rgw, REGION};
use feed_tests::moto::Moto;
use feed_tests::pouchdb::PouchDb;
use feed_tests::s3sfs::S3sFs;
use feed_tests::webserver::WebServer;
use feed_tests::world::{TempDir, USER};
use owfeed_s3::{Condition, S3Client, S3Config, SecretString};

/// One kind of request to one server.
struct Case {
    server: String,
    what: String,
    /// Builds the request (signed where the server checks signatures).
    request: Box<dyn Fn() -> anyhow::Result<http::Request<Vec<u8>>>>,
}

/// Times of `n` requests in a row through `agent`, in ms.
fn times(agent: &ureq::Agent, case: &Case, n: usize) -> anyhow::Result<Vec<f64>> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let request = (case.request)()?;
        let started = Instant::now();
        let mut response = if request.body().is_empty() { agent.run(request.map(|_| ())) } else { agent.run(request) }
            .with_context(|| format!("{} {}", case.server, case.what))?;
        let status = response.status().as_u16();
        let body = response.body_mut().with_config().limit(64 << 20).read_to_vec()?;
        out.push(started.elapsed().as_secs_f64() * 1000.0);
        if !(200..300).contains(&status) {
            anyhow::bail!("{} {}: HTTP {status}: {}", case.server, case.what, String::from_utf8_lossy(&body));
        }
    }
    Ok(out)
}

/// Median, 90th percentile, longest (ms) and requests of 30 ms or more, as table cells.
fn summary(mut t: Vec<f64>) -> String {
    t.sort_by(f64::total_cmp);
    let at = |q: f64| t[((t.len() - 1) as f64 * q).round() as usize];
    let slow = t.iter().filter(|x| **x >= 30.0).count();
    format!("{:.1} | {:.1} | {:.1} | {slow}", at(0.5), at(0.9), at(1.0))
}

/// A signed S3 request (the S3 client's own signing).
fn s3_request(config: &S3Config, uri: String) -> anyhow::Result<http::Request<Vec<u8>>> {
    let mut request = http::Request::builder().method("GET").uri(uri).body(Vec::new())?;
    owfeed_s3::sign_request(config, &mut request, SystemTime::now())?;
    Ok(request)
}

fn get(uri: String, auth: Option<String>) -> anyhow::Result<http::Request<Vec<u8>>> {
    let mut builder = http::Request::builder().method("GET").uri(uri);
    if let Some(auth) = auth {
        builder = builder.header("authorization", auth);
    }
    Ok(builder.body(Vec::new())?)
}

/// Puts `n` small objects into a new bucket `bucket` (8 at a time).
fn fill(client: &S3Client, bucket: &str, n: usize) -> anyhow::Result<()> {
    client.create_bucket(bucket)?;
    std::thread::scope(|scope| {
        let parts: Vec<_> = (0..8)
            .map(|part| {
                scope.spawn(move || -> anyhow::Result<()> {
                    for i in (part..n).step_by(8) {
                        client.put_object(bucket, &super::key(i as u64), b"x".to_vec(), Condition::None)?;
                    }
                    Ok(())
                })
            })
            .collect();
        parts.into_iter().try_for_each(|p| p.join().map_err(|_| anyhow::anyhow!("a writer panicked"))?)
    })
}

/// The reference server: answers every request with its headers in one write, a chunked body
/// of `len` bytes in the next and the terminator in a third, Nagle on: as RGW's beast writes a
/// page. A body shorter than a segment then waits for the client's acknowledgement of the
/// headers; a longer one sends its full segments and holds its last, partial one.
fn reference_server(len: usize) -> anyhow::Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let url = format!("http://{}", listener.local_addr()?);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            std::thread::spawn(move || {
                let Ok(read) = stream.try_clone() else { return };
                let mut reader = BufReader::new(read);
                let body = "<Contents><Key>k</Key></Contents>".repeat(len / 33);
                loop {
                    let (mut line, mut blank) = (String::new(), false);
                    while !blank {
                        line.clear();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        blank = line == "\r\n";
                    }
                    let head = "HTTP/1.1 200 OK\r\nContent-Type: application/xml\r\nTransfer-Encoding: chunked\r\n\r\n";
                    let chunk = format!("{:x}\r\n{body}\r\n", body.len());
                    let written = stream
                        .write_all(head.as_bytes())
                        .and_then(|()| stream.write_all(chunk.as_bytes()))
                        .and_then(|()| stream.write_all(b"0\r\n\r\n"));
                    if written.is_err() {
                        return;
                    }
                }
            });
        }
    });
    Ok(url)
}

/// Runs every case with both agents and prints the table.
pub fn run(n: usize) -> anyhow::Result<()> {
    let mut cases = Vec::new();
    for len in [266_000, 10_000] {
        let reference = reference_server(len)?;
        cases.push(Case {
            server: "reference: headers, body, terminator written apart, Nagle on".into(),
            what: format!("GET, chunked body of {} kB", len / 1000),
            request: Box::new(move || get(reference.clone(), None)),
        });
    }

    let rgw = Rgw::start()?;
    let config = S3Config::new(rgw.endpoint(), REGION, rgw.access_key_id(), SecretString::new(rgw.secret_access_key()));
    fill(&S3Client::new(config.clone())?, "waits", 1000)?;
    let endpoint = rgw.endpoint().to_string();
    cases.push(Case {
        server: "Ceph RGW 16.2 (beast)".into(),
        what: "ListObjectsV2, 1000 keys".into(),
        request: Box::new(move || s3_request(&config, format!("{endpoint}/waits?list-type=2&encoding-type=url"))),
    });

    let moto = Moto::start()?;
    fill(&moto.client(), "waits", 1000)?;
    let (config, endpoint) = (moto.config(), moto.endpoint().to_string());
    cases.push(Case {
        server: "moto 5.2.1 (werkzeug)".into(),
        what: "ListObjectsV2, 1000 keys".into(),
        request: Box::new(move || s3_request(&config, format!("{endpoint}/waits?list-type=2&encoding-type=url"))),
    });

    let fs = S3sFs::start("AKIDWAITS", "waits-secret");
    let mut config = S3Config::new(&fs.endpoint, "us-east-1", "AKIDWAITS", SecretString::new("waits-secret"));
    config.list_url_encoding = false;
    fill(&S3Client::new(config.clone())?, "waits", 1000)?;
    let endpoint = fs.endpoint.clone();
    cases.push(Case {
        server: "s3s-fs 0.14.1 (hyper)".into(),
        what: "ListObjectsV2, 1000 keys".into(),
        request: Box::new(move || s3_request(&config, format!("{endpoint}/waits?list-type=2"))),
    });

    let couch = PouchDb::start()?;
    couch.create_db("waits")?;
    let docs: Vec<_> = (0..1000).map(|i| json!({ "_id": format!("doc-{i:04}"), "n": i })).collect();
    couch.bulk("waits", &docs)?;
    let url = couch.url.clone();
    cases.push(Case {
        server: "pouchdb-server 4.2.0 (CouchDB API)".into(),
        what: "_changes, 1000 records".into(),
        request: Box::new(move || get(format!("{url}/waits/_changes?limit=1000"), None)),
    });

    let dir = TempDir::new("waits-web");
    std::fs::write(dir.path().join("big.json"), "x".repeat(266_000))?;
    std::fs::write(dir.path().join("small.json"), "{\"ok\": true}")?;
    let node = WebServer::node(dir.path())?;
    let python = WebServer::python(dir.path())?;
    for (server, web) in [("http-server 14.1.1 (node)", &node), ("python3 http.server", &python)] {
        for file in ["big.json", "small.json"] {
            let url = format!("{}/{file}", web.url);
            cases.push(Case {
                server: server.into(),
                what: format!("GET {file}"),
                request: Box::new(move || get(url.clone(), None)),
            });
        }
    }

    let emu = ow_emulator::Emulator::start(ow_emulator::Config::with_namespaces(&[USER]))?;
    let key = emu.key(USER).context("no key")?;
    let auth = format!("Basic {}", base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &key));
    let (url, auth2) = (emu.url(), auth.clone());
    cases.push(Case {
        server: "OpenWhisk emulator (tiny_http)".into(),
        what: "GET namespaces".into(),
        request: Box::new(move || get(format!("{url}/api/v1/namespaces"), Some(auth2.clone()))),
    });

    println!(
        "\n| server | request | ureq's agent: median, ms | p90 | max | ≥ 30 ms | `http_agent`: median, ms | p90 | max | ≥ 30 ms |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for case in &cases {
        // A fresh agent each: one kept-alive connection for the N requests.
        let plain = ureq::Agent::new_with_config(ureq::Agent::config_builder().http_status_as_error(false).build());
        let acking = owfeed_s3::http_agent(ureq::Agent::config_builder().http_status_as_error(false).build());
        times(&plain, case, 3)?;
        times(&acking, case, 3)?;
        // Alternate in blocks of 10, so a server's drift (caches, a busy machine) hits both.
        let (mut before, mut after) = (Vec::new(), Vec::new());
        for block in 0..n.div_ceil(10) {
            let size = 10.min(n - block * 10);
            before.extend(times(&plain, case, size)?);
            after.extend(times(&acking, case, size)?);
        }
        println!("| {} | {} | {} | {} |", case.server, case.what, summary(before), summary(after));
    }
    drop((rgw, moto, fs, couch, node, python, emu, dir));
    Ok(())
}
