//! Benchmarks of the CouchDB source against pouchdb-server on loopback (not a test), printed
//! as Markdown for BENCHMARKS.md:
//!
//! ```sh
//! cargo build -p changes -p poll -p feed-tests --bins
//! target/debug/couchdb-bench [--docs N] [--writes W] [--e2e-docs M] [--e2e-writes V]
//! ```
//!
//! (`--release` builds and runs `target/release/…` the same way.) The reader alone:
//!
//! * Read throughput: N documents written with `_bulk_docs`, then read from the start of the
//!   log through `LogReader::read` in batches of 1000 (the records a log poll turns into
//!   events), best and median of 3 passes.
//! * Write → record latency of a long poll (what connection mode adds before the fire): W
//!   times, a reader waits in `read(…, wait_until)` while another thread writes a document
//!   after 20–120 ms; the latency is from just before the PUT to the read's return. p50, p99, max.
//!
//! End to end, the real `changes` and `poll` binaries next to this one in the emulator:
//!
//! * Events/s a log poll sustains: M documents (default 5000) written, then polls (`batch` 100,
//!   `maxFiresPerMinute` 10000, a rule to `echo-action`) until all M are fired at the trigger; events over the
//!   polls' wall time.
//! * Connection-mode latency, write → fire: one `mode=connection` poll activation (60 s limit,
//!   `batch` 1) while V documents (default 80) are written 150 ms apart; the latency is from just before
//!   each PUT to the trigger's activation for it appearing in the emulator. p50, p99, max.
//!
//! It asserts nothing about time; it reports.

// The table on stdout is this tool's output.
#![allow(clippy::print_stdout)]

use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde_json::json;

use feed_tests::pouchdb::{unique, PouchDb};
use feed_tests::world::{World, PACKAGE, USER};
use owfeed::openwhisk::QualifiedName;
use owfeed::params::Params;
use owfeed::source::{LogReader, LogSource};
use owfeed::sources::couchdb::CouchDbSource;

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn reader(url: &str, db: &str) -> anyhow::Result<Box<dyn LogReader>> {
    let params = Params::from_value(json!({"url": url, "dbname": db}))?;
    CouchDbSource.open(&params).map_err(|e| anyhow::anyhow!("{e}"))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn main() -> anyhow::Result<()> {
    let docs = arg("--docs", 20_000);
    let writes = arg("--writes", 200);
    let server = PouchDb::start().context("start pouchdb-server")?;

    let db = unique("bench-read");
    server.create_db(&db)?;
    for chunk in (0..docs).collect::<Vec<_>>().chunks(1000) {
        let batch: Vec<_> = chunk.iter().map(|i| json!({"_id": format!("doc-{i:07}"), "n": i})).collect();
        server.bulk(&db, &batch)?;
    }
    let r = reader(&server.url, &db)?;
    let mut passes = Vec::new();
    for _ in 0..3 {
        let began = Instant::now();
        let (mut cursor, mut read) = (None::<String>, 0usize);
        loop {
            let batch = r.read(cursor.as_deref(), 1000, None).map_err(|e| anyhow::anyhow!("{e}"))?;
            if batch.records.is_empty() {
                break;
            }
            read += batch.records.len();
            cursor = Some(batch.cursor);
        }
        anyhow::ensure!(read == docs, "read {read} records of {docs}");
        passes.push(began.elapsed());
    }
    passes.sort();
    let rate = |d: Duration| docs as f64 / d.as_secs_f64();

    let db = unique("bench-latency");
    server.create_db(&db)?;
    let r = reader(&server.url, &db)?;
    let mut cursor = r.current().map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut latencies = Vec::with_capacity(writes);
    for i in 0..writes {
        let (tx, rx) = mpsc::channel();
        let (url, db2) = (server.url.clone(), db.clone());
        let delay = Duration::from_millis(20 + (i as u64 * 37) % 100);
        let writer = std::thread::spawn(move || -> anyhow::Result<()> {
            let server = PouchDbClient(url);
            std::thread::sleep(delay);
            let before = Instant::now();
            server.put(&db2, &format!("w-{i}"))?;
            tx.send(before)?;
            Ok(())
        });
        let batch = r.read(Some(&cursor), 100, Some(Instant::now() + Duration::from_secs(30)));
        let returned = Instant::now();
        writer.join().map_err(|_| anyhow::anyhow!("writer panicked"))??;
        let batch = batch.map_err(|e| anyhow::anyhow!("{e}"))?;
        anyhow::ensure!(batch.records.len() == 1, "write {i}: {} records", batch.records.len());
        latencies.push(returned.saturating_duration_since(rx.recv()?));
        cursor = batch.cursor;
    }
    latencies.sort();

    let e2e = end_to_end(&server, arg("--e2e-docs", 5000), arg("--e2e-writes", 80))?;

    println!("| measure | value |");
    println!("|---|---|");
    println!(
        "| read throughput, {docs} docs in batches of 1000 | best {:.0} records/s ({:.2?}), median {:.0} records/s ({:.2?}) |",
        rate(passes[0]),
        passes[0],
        rate(passes[1]),
        passes[1]
    );
    println!(
        "| long poll write → record, {writes} writes | p50 {:.1?}, p99 {:.1?}, max {:.1?} |",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies[latencies.len() - 1]
    );
    for row in e2e {
        println!("{row}");
    }
    Ok(())
}

/// The two end-to-end measures, as table rows.
fn end_to_end(server: &PouchDb, docs: usize, writes: usize) -> anyhow::Result<Vec<String>> {
    let exe = std::env::current_exe()?;
    let dir = exe.parent().context("the bench binary's directory")?;
    let w = World::start(&dir.join("changes"), &dir.join("poll"));
    let poll_system = QualifiedName::new(ow_emulator::SYSTEM_NAMESPACE, Some(PACKAGE), "poll");
    w.system.put_action(&poll_system, &json!({ "limits": { "timeout": 60_000 } }), true)?;
    let fires = |trigger: &str| w.emu.activations(USER).iter().filter(|a| a["name"] == trigger).count();
    let invoke = |trigger: &str| {
        let poll = QualifiedName::new(USER, Some(&format!("{trigger}.owfeed")), "poll");
        w.user.invoke(&poll, &json!({}), true).map_err(|e| anyhow::anyhow!("poll: {e}"))
    };

    // Throughput of log polls.
    let db = unique("bench-poll");
    server.create_db(&db)?;
    let params = json!({"source": "couchdb", "url": server.url, "dbname": db, "batch": 100,
                        "maxFiresPerMinute": 10000, "maxChangesPerPoll": 100000});
    w.create_trigger("t", params).map_err(|e| anyhow::anyhow!("CREATE: {e}"))?;
    // A trigger records an activation per fire only when a rule is active (as OpenWhisk does).
    w.record_events("t", &dir.join("echo-action"));
    for chunk in (0..docs).collect::<Vec<_>>().chunks(1000) {
        let batch: Vec<_> = chunk.iter().map(|i| json!({"_id": format!("doc-{i:07}"), "n": i})).collect();
        server.bulk(&db, &batch)?;
    }
    let (mut fired, mut polls, began) = (0u64, 0, Instant::now());
    while fired < docs as u64 && polls < 20 {
        let result = invoke("t")?;
        fired += result["fired"].as_u64().unwrap_or(0);
        polls += 1;
    }
    let took = began.elapsed();
    anyhow::ensure!(fired == docs as u64, "{fired} of {docs} events fired in {polls} polls");
    let throughput = format!(
        "| log poll, {docs} new documents, batch 100 | {:.0} events/s ({fired} events, {} fires, {polls} poll(s), {took:.2?}) |",
        fired as f64 / took.as_secs_f64(),
        fires("t")
    );

    // Connection mode: write → fire.
    let db = unique("bench-connection");
    server.create_db(&db)?;
    let params = json!({"source": "couchdb", "url": server.url, "dbname": db, "mode": "connection",
                        "maxFiresPerMinute": 10000});
    w.create_trigger("c", params).map_err(|e| anyhow::anyhow!("CREATE: {e}"))?;
    w.record_events("c", &dir.join("echo-action"));
    let latencies = std::thread::scope(|scope| -> anyhow::Result<Vec<Duration>> {
        let activation = scope.spawn(|| invoke("c"));
        std::thread::sleep(Duration::from_secs(1));
        let client = PouchDbClient(server.url.clone());
        let mut latencies = Vec::with_capacity(writes);
        for i in 0..writes {
            std::thread::sleep(Duration::from_millis(150));
            let before = Instant::now();
            client.put(&db, &format!("w-{i}"))?;
            while fires("c") < i + 1 {
                anyhow::ensure!(before.elapsed() < Duration::from_secs(10), "write {i}: no fire within 10 s");
                std::thread::sleep(Duration::from_millis(2));
            }
            latencies.push(before.elapsed());
        }
        activation.join().map_err(|_| anyhow::anyhow!("poll thread panicked"))??;
        Ok(latencies)
    })?;
    let mut sorted = latencies;
    sorted.sort();
    let latency = format!(
        "| connection mode write → fire, {writes} writes in one activation | p50 {:.1?}, p99 {:.1?}, max {:.1?} |",
        percentile(&sorted, 0.5),
        percentile(&sorted, 0.99),
        sorted[sorted.len() - 1]
    );
    Ok(vec![throughput, latency])
}

/// A plain PUT from another thread (the shared `PouchDb` stays with the main thread).
struct PouchDbClient(String);

impl PouchDbClient {
    fn put(&self, db: &str, id: &str) -> anyhow::Result<()> {
        let response = ureq::put(&format!("{}/{db}/{id}", self.0))
            .header("Content-Type", "application/json")
            .send(json!({"written": true}).to_string())?;
        anyhow::ensure!(response.status().is_success(), "PUT {id}: HTTP {}", response.status());
        Ok(())
    }
}
