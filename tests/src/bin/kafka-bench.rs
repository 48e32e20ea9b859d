//! Benchmarks of the Kafka source against tansu 0.6 (in memory) on loopback (not a test),
//! printed as Markdown for BENCHMARKS.md:
//!
//! ```sh
//! cargo build -p changes -p poll -p feed-tests --bins
//! target/debug/kafka-bench [--messages N] [--e2e-messages M] [--writes V]
//! ```
//!
//! (`--release` builds and runs `target/release/…` the same way.) What the broker serves:
//!
//! * Fetch throughput: N messages (default 20 000, 100 bytes each, produced by kafka-python in
//!   batches) read from offset 0 with `owfeed_kafka::Client::fetch` (8 MiB a fetch): what one
//!   consumer gets from the broker, no events built. Then the reader, `LogReader::read` in
//!   pages of 1000 (records as a poll turns them into events). Best of 3 passes each.
//! * Produce → record of a held fetch: V messages sent one at a time by a kafka-python producer
//!   (each acknowledged before the next), a reader waiting in `read(…, wait_until)`; from just
//!   before the message is handed to the producer to the read's return. p50, p99, max.
//!
//! End to end, the real `changes` and `poll` binaries next to this one in the emulator:
//!
//! * Messages/s one log poll sustains: M messages (default 5000) produced, then polls
//!   (`batch` 100, `maxFiresPerMinute` 10000, `maxChangesPerPoll` 100000, a rule to
//!   `echo-action`) until all are fired; messages over the polls' wall time.
//! * Connection mode produce → fire: one `mode=connection` poll activation (60 s limit) while V
//!   messages (default 50) are produced 150 ms apart (each after the previous one fired: 80
//!   would outlast the activation on tansu); from just before each is handed to the
//!   producer to the trigger's activation for it appearing in the emulator. p50, p99, max.
//!
//! It asserts nothing about time; it reports.

// The table on stdout is this tool's output.
#![allow(clippy::print_stdout)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde_json::{json, Value};

use feed_tests::kafka::Tansu;
use feed_tests::moto::Moto;
use feed_tests::world::{World, PACKAGE, USER};
use owfeed::openwhisk::QualifiedName;
use owfeed::params::Params;
use owfeed::source::LogSource;
use owfeed::sources::kafka::KafkaSource;
use owfeed_kafka::{Client, Settings};

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn latency_row(what: &str, mut samples: Vec<Duration>) -> String {
    samples.sort();
    format!(
        "| {what} | p50 {:.1?}, p99 {:.1?}, max {:.1?} |",
        percentile(&samples, 0.5),
        percentile(&samples, 0.99),
        samples[samples.len() - 1]
    )
}

/// Produces `n` messages of 100 bytes on partition 0 in batches (kafka-python, linger).
fn fill(broker: &Tansu, topic: &str, n: usize) -> anyhow::Result<()> {
    for chunk in (0..n).collect::<Vec<_>>().chunks(5000) {
        let messages: Vec<Value> =
            chunk.iter().map(|i| json!({"partition": 0, "value": format!("{i:0100}")})).collect();
        broker.produce_with(topic, json!(messages), json!({"flush_each": false, "linger": true}))?;
    }
    Ok(())
}

/// A kafka-python producer that sends one message per line and answers when acknowledged.
struct Streamer(Child);

impl Streamer {
    fn start(broker: &Tansu, topic: &str) -> anyhow::Result<Streamer> {
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("kafka/client.py");
        let mut child = Command::new(feed_tests::tools::python())
            .arg(&script)
            .args([&broker.addr, "stream"])
            .env("PYTHONPATH", feed_tests::tools::kafka_python_path()?)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("start client.py stream")?;
        writeln!(child.stdin.as_mut().context("stdin")?, "{}", json!({"topic": topic}))?;
        Ok(Streamer(child))
    }

    /// Sends `value`; returns when the broker acknowledged it.
    fn send(&mut self, value: &str, out: &mut impl BufRead) -> anyhow::Result<()> {
        let stdin = self.0.stdin.as_mut().context("stdin")?;
        writeln!(stdin, "{}", json!({"partition": 0, "value": value}))?;
        stdin.flush()?;
        let mut line = String::new();
        out.read_line(&mut line)?;
        anyhow::ensure!(!line.is_empty(), "the producer ended");
        Ok(())
    }
}

impl Drop for Streamer {
    fn drop(&mut self) {
        drop(self.0.stdin.take());
        let _ = self.0.wait();
    }
}

fn main() -> anyhow::Result<()> {
    let messages = arg("--messages", 20_000);
    let writes = arg("--writes", 50);
    let broker = Tansu::start(false).context("start tansu")?;
    // Each row as soon as it is measured: a later failure keeps what was measured.
    let emit = |row: String| println!("{row}");
    emit("| measure | value |\n|---|---|".to_string());

    // What the broker serves one consumer, and what the reader makes of it.
    let topic = Moto::unique_bucket("bench-read");
    broker.create_topic(&topic, 1)?;
    fill(&broker, &topic, messages)?;
    let client = Client::new(Settings {
        brokers: vec![broker.addr.clone()],
        tls: None,
        sasl: None,
        client_id: "bench".into(),
        timeout: Duration::from_secs(30),
    })
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    client.partitions(&topic).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut fetch_passes = Vec::new();
    for _ in 0..3 {
        let began = Instant::now();
        let (mut at, mut read) = (0i64, 0usize);
        while read < messages {
            let positions: BTreeMap<i32, i64> = [(0, at)].into_iter().collect();
            let f = client.fetch(&topic, &positions, Duration::ZERO, 8 << 20).map_err(|e| anyhow::anyhow!("{e}"))?;
            let f = &f[&0];
            anyhow::ensure!(f.next > at, "no progress at offset {at}");
            read += f.messages.len();
            at = f.next;
        }
        fetch_passes.push(began.elapsed());
    }
    fetch_passes.sort();
    let params = Params::from_value(json!({"brokers": [broker.addr], "topic": topic}))?;
    let reader = KafkaSource.open(&params).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut read_passes = Vec::new();
    for _ in 0..3 {
        let began = Instant::now();
        let (mut cursor, mut read) = (None::<String>, 0usize);
        while read < messages {
            let batch = reader.read(cursor.as_deref(), 1000, None).map_err(|e| anyhow::anyhow!("{e}"))?;
            anyhow::ensure!(!batch.records.is_empty(), "the reader stopped at {read}");
            read += batch.records.len();
            cursor = Some(batch.cursor);
        }
        read_passes.push(began.elapsed());
    }
    read_passes.sort();
    let rate = |d: Duration| messages as f64 / d.as_secs_f64();
    emit(format!(
        "| broker → one consumer: Fetch (8 MiB), {messages} messages of 100 bytes | best {:.0} messages/s ({:.2?}) |",
        rate(fetch_passes[0]),
        fetch_passes[0]
    ));
    emit(format!(
        "| reader: `LogReader::read` in pages of 1000, same messages | best {:.0} messages/s ({:.2?}) |",
        rate(read_passes[0]),
        read_passes[0]
    ));

    // Produce → record of a held fetch (the broker's own delivery latency to a waiting reader).
    let topic = Moto::unique_bucket("bench-latency");
    broker.create_topic(&topic, 1)?;
    let params = Params::from_value(json!({"brokers": [broker.addr], "topic": topic}))?;
    let reader = KafkaSource.open(&params).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut cursor = reader.current().map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut streamer = Streamer::start(&broker, &topic)?;
    let mut acks = BufReader::new(streamer.0.stdout.take().context("stdout")?);
    let mut latencies = Vec::with_capacity(writes);
    for i in 0..writes {
        let (tx, rx) = std::sync::mpsc::channel();
        let delay = Duration::from_millis(20 + (i as u64 * 37) % 100);
        let batch = std::thread::scope(|scope| -> anyhow::Result<_> {
            let (streamer, acks) = (&mut streamer, &mut acks);
            let writer = scope.spawn(move || -> anyhow::Result<()> {
                std::thread::sleep(delay);
                let before = Instant::now();
                streamer.send(&format!("w-{i}"), acks)?;
                tx.send(before)?;
                Ok(())
            });
            let batch = reader.read(Some(&cursor), 100, Some(Instant::now() + Duration::from_secs(30)));
            let returned = Instant::now();
            writer.join().map_err(|_| anyhow::anyhow!("writer panicked"))??;
            Ok((batch, returned))
        })?;
        let (batch, returned) = batch;
        let batch = batch.map_err(|e| anyhow::anyhow!("{e}"))?;
        anyhow::ensure!(batch.records.len() == 1, "write {i}: {} records", batch.records.len());
        latencies.push(returned.saturating_duration_since(rx.recv()?));
        cursor = batch.cursor;
    }
    emit(latency_row(&format!("reader: held fetch, produce → record, {writes} messages"), latencies));
    drop(streamer);

    end_to_end(&broker, arg("--e2e-messages", 5000), writes)
}

/// The two end-to-end measures, printed as table rows.
fn end_to_end(broker: &Tansu, messages: usize, writes: usize) -> anyhow::Result<()> {
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
    let moto = Moto::shared()?;
    let params = |topic: &str, extra: Value| -> anyhow::Result<Value> {
        let bucket = Moto::unique_bucket("bench-state");
        moto.create_bucket(&bucket)?;
        let mut p = json!({"source": "kafka", "brokers": [broker.addr], "topic": topic, "stateBucket": bucket,
            "endpoint": moto.endpoint(), "accessKeyId": moto.access_key_id(),
            "secretAccessKey": moto.secret_access_key(), "maxFiresPerMinute": 10000});
        p.as_object_mut().context("object")?.extend(extra.as_object().context("object")?.clone());
        Ok(p)
    };

    // Messages/s of log polls.
    let topic = Moto::unique_bucket("bench-poll");
    broker.create_topic(&topic, 1)?;
    w.create_trigger("t", params(&topic, json!({"batch": 100, "maxChangesPerPoll": 100000}))?)
        .map_err(|e| anyhow::anyhow!("CREATE: {e}"))?;
    // A trigger records an activation per fire only when a rule is active (as OpenWhisk does).
    w.record_events("t", &dir.join("echo-action"));
    fill(broker, &topic, messages)?;
    let (mut fired, mut polls, began) = (0u64, 0, Instant::now());
    while fired < messages as u64 && polls < 20 {
        let result = invoke("t")?;
        fired += result["fired"].as_u64().unwrap_or(0);
        polls += 1;
    }
    let took = began.elapsed();
    anyhow::ensure!(fired == messages as u64, "{fired} of {messages} events fired in {polls} polls");
    println!(
        "| **log poll: messages/s**, {messages} new messages, `batch` 100 | **{:.0} messages/s** ({fired} events, {} fires, {polls} poll(s), {took:.2?}) |",
        fired as f64 / took.as_secs_f64(),
        fires("t")
    );

    // Connection mode: produce → fire.
    let topic = Moto::unique_bucket("bench-connection");
    broker.create_topic(&topic, 1)?;
    w.create_trigger("c", params(&topic, json!({"mode": "connection"}))?)
        .map_err(|e| anyhow::anyhow!("CREATE: {e}"))?;
    w.record_events("c", &dir.join("echo-action"));
    let mut streamer = Streamer::start(broker, &topic)?;
    let mut acks = BufReader::new(streamer.0.stdout.take().context("stdout")?);
    let latencies = std::thread::scope(|scope| -> anyhow::Result<Vec<Duration>> {
        let activation = scope.spawn(|| invoke("c"));
        std::thread::sleep(Duration::from_secs(1));
        let mut latencies = Vec::with_capacity(writes);
        for i in 0..writes {
            std::thread::sleep(Duration::from_millis(150));
            let before = Instant::now();
            streamer.send(&format!("c-{i}"), &mut acks)?;
            while fires("c") < i + 1 {
                anyhow::ensure!(before.elapsed() < Duration::from_secs(10), "message {i}: no fire within 10 s");
                std::thread::sleep(Duration::from_millis(2));
            }
            latencies.push(before.elapsed());
        }
        activation.join().map_err(|_| anyhow::anyhow!("poll thread panicked"))??;
        Ok(latencies)
    })?;
    println!(
        "{}",
        latency_row(
            &format!("**connection mode produce → fire**, {writes} messages 150 ms apart in one activation"),
            latencies
        )
    );
    Ok(())
}
