//! The plugin guide (docs/writing-a-source.md) and its two example sources: each block the
//! guide quotes is the file under tests/src/guide/ it names, and both sources work end to end
//! through the emulator (the `guide-action` fixture in place of `changes` and `poll`), their
//! state in moto, so what the guide shows is what runs.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use feed_tests::moto::Moto;
use feed_tests::world::World;
use owfeed::events::validate_cloud_event;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

/// The marker line before each quoted example: `<!-- example: tests/src/guide/NAME.rs -->`.
const MARKER: &str = "<!-- example: ";

/// (path, block) for each marker of the guide: the ```rust block on the lines after it.
fn quoted_examples(guide: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut lines = guide.lines();
    while let Some(line) = lines.next() {
        let Some(path) = line.strip_prefix(MARKER).and_then(|rest| rest.strip_suffix(" -->")) else { continue };
        assert_eq!(lines.next(), Some("```rust"), "{path}: the marker must sit right above a ```rust block");
        let block: Vec<&str> = lines.by_ref().take_while(|l| *l != "```").collect();
        out.push((path.to_string(), block.join("\n") + "\n"));
    }
    out
}

/// An example file as the guide quotes it: all but its module comment and the blank line after.
fn quotable(text: &str) -> String {
    let body: Vec<&str> = text.lines().skip_while(|l| l.starts_with("//!")).skip_while(|l| l.is_empty()).collect();
    body.join("\n") + "\n"
}

#[test]
fn the_guide_quotes_each_example_source_as_it_is() {
    let guide = fs::read_to_string(repo_root().join("docs/writing-a-source.md")).expect("the guide");
    let quoted = quoted_examples(&guide);
    let mut files: Vec<String> = fs::read_dir(repo_root().join("tests/src/guide"))
        .expect("tests/src/guide")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".rs") && name != "mod.rs")
        .map(|name| format!("tests/src/guide/{name}"))
        .collect();
    files.sort();
    let mut paths: Vec<String> = quoted.iter().map(|(path, _)| path.clone()).collect();
    paths.sort();
    assert_eq!(paths, files, "the guide quotes (left) each example file (right) once");
    for (path, block) in quoted {
        let file = fs::read_to_string(repo_root().join(&path)).expect("example file");
        assert!(block == quotable(&file), "docs/writing-a-source.md quotes {path} as it is not: copy the file in");
    }
}

fn world() -> World {
    let bin = Path::new(env!("CARGO_BIN_EXE_guide-action"));
    World::start(bin, bin)
}

/// The source's parameters and a fresh state bucket on the shared moto (`stateBucket` and the
/// S3 parameters, as the guide's sources ask).
fn params(source: Value) -> Value {
    let moto = Moto::shared().expect("moto server");
    let bucket = Moto::unique_bucket("guide-state");
    moto.create_bucket(&bucket).unwrap();
    let mut p = json!({"stateBucket": bucket, "endpoint": moto.endpoint(),
        "accessKeyId": moto.access_key_id(), "secretAccessKey": moto.secret_access_key()});
    p.as_object_mut().unwrap().extend(source.as_object().unwrap().clone());
    p
}

/// The events received since `from`, each a valid CloudEvent with an id of its own, as
/// (type, subject, data), sorted: every event counts, a duplicate or a wrong kind included.
fn events_since(w: &World, from: usize) -> Vec<(String, String, Value)> {
    let events = w.events();
    let mut ids: Vec<&str> = events.iter().map(|e| e["id"].as_str().expect("id")).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), events.len(), "every event has its own id: {events:?}");
    let mut got: Vec<(String, String, Value)> = events[from..]
        .iter()
        .map(|e| {
            validate_cloud_event(e).unwrap_or_else(|err| panic!("{err}: {e}"));
            (e["type"].as_str().unwrap().to_string(), e["subject"].as_str().unwrap().to_string(), e["data"].clone())
        })
        .collect();
    got.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    got
}

#[test]
fn the_guides_snapshot_source_reports_what_changed_in_a_directory() {
    let w = world();
    let dir = w.dir.path().join("files");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("a.txt"), "1").unwrap();
    fs::write(dir.join("keep.txt"), "kept").unwrap();
    let err = w.create_trigger("t", params(json!({"source": "dir", "directory": "files"}))).unwrap_err();
    assert!(err.contains("parameter 'directory'"), "{err}");
    w.create_trigger("t", params(json!({"source": "dir", "directory": dir}))).expect("CREATE");
    w.record_events("t", Path::new(env!("CARGO_BIN_EXE_echo-action")));
    let directory = json!(dir.display().to_string());
    let data = |key: &str, change: &str, size: Option<u64>| {
        let mut d = json!({"directory": directory, "key": key, "change": change});
        if let Some(size) = size {
            d["size"] = json!(size);
        }
        d
    };

    fs::write(dir.join("b.txt"), "22").unwrap();
    w.poll();
    let created = ("org.example.dir.file.created".to_string(), "b.txt".to_string(), data("b.txt", "created", Some(2)));
    assert_eq!(events_since(&w, 0), [created], "the files there before CREATE are the baseline");

    fs::write(dir.join("a.txt"), "111").unwrap();
    fs::remove_file(dir.join("b.txt")).unwrap();
    w.poll();
    let mut got = events_since(&w, 1);
    // A deleted entry's event names the version it had, as a hash (the state keeps no more).
    let hash = got[0].2.as_object_mut().unwrap().remove("previousVersionHash").unwrap_or_default();
    assert!(hash.as_str().is_some_and(|h| h.len() == 16), "{got:?}");
    assert_eq!(
        got,
        [
            ("org.example.dir.file.deleted".to_string(), "b.txt".to_string(), data("b.txt", "deleted", None)),
            ("org.example.dir.file.updated".to_string(), "a.txt".to_string(), data("a.txt", "updated", Some(3))),
        ]
    );
    w.poll();
    assert_eq!(w.events().len(), 3, "an unchanged directory fires nothing");
}

fn append(path: &Path, text: &str) {
    fs::OpenOptions::new().create(true).append(true).open(path).unwrap().write_all(text.as_bytes()).unwrap();
}

#[test]
fn the_guides_log_source_fires_each_journal_line_once_and_stops_visibly_when_truncated() {
    let w = world();
    let journal = w.dir.path().join("journal.jsonl");
    append(&journal, "{\"key\": \"invoice-0\", \"op\": \"create\", \"total\": 1}\n");
    w.create_trigger("t", params(json!({"source": "journal", "journal": journal}))).expect("CREATE");
    w.record_events("t", Path::new(env!("CARGO_BIN_EXE_echo-action")));
    let context = json!(journal.display().to_string());

    // Two whole lines and one still being written (no newline yet).
    append(&journal, "{\"key\": \"invoice-0\", \"op\": \"update\", \"total\": 2}\n");
    append(&journal, "{\"key\": \"invoice-1\", \"op\": \"create\", \"time\": \"2026-12-05T08:00:00Z\"}\n");
    append(&journal, "{\"key\": \"invoice-0\", \"op\": \"del");
    w.poll();
    let got = events_since(&w, 0);
    assert_eq!(
        got.iter().map(|(t, s, _)| (t.as_str(), s.as_str())).collect::<Vec<_>>(),
        [("org.example.journal.entry.created", "invoice-1"), ("org.example.journal.entry.updated", "invoice-0")],
        "the line before CREATE is not reported, the unfinished one not yet: {got:?}"
    );
    assert_eq!(got[1].2["total"], 2, "{got:?}");
    assert_eq!(got[0].2["journal"], context, "{got:?}");
    let first = w.fired("t");
    let invoice_1 = first.iter().find(|e| e["subject"] == "invoice-1").expect("fired");
    assert_eq!(invoice_1["time"], "2026-12-05T08:00:00Z", "the journal's time is the event's");

    append(&journal, "ete\"}\n");
    w.poll();
    let got = events_since(&w, 2);
    assert_eq!(
        got.iter().map(|(t, s, _)| (t.as_str(), s.as_str())).collect::<Vec<_>>(),
        [("org.example.journal.entry.deleted", "invoice-0")],
        "{got:?}"
    );
    let read = w.feed("READ", "t", json!({})).expect("READ")["status"].clone();
    let len = fs::metadata(&journal).unwrap().len();
    assert_eq!(read["cursor"], len.to_string(), "{read}");
    assert_eq!(read["lag"], json!({"bytes": 0}), "{read}");

    // A journal shorter than the cursor is not the log the feed read: the feed stops and says so.
    fs::write(&journal, "{\"key\": \"x\", \"op\": \"create\"}\n").unwrap();
    w.poll();
    let polls = w.poll_results();
    let error = polls.last().unwrap()["error"].as_str().unwrap_or_default().to_string();
    assert!(error.contains("truncated or replaced"), "{polls:?}");
    let read = w.feed("READ", "t", json!({})).expect("READ")["status"].clone();
    assert_eq!((read["stalled"].clone(), read["cursorRejected"].clone()), (json!(true), json!(true)), "{read}");
    assert_eq!(w.events().len(), 3, "nothing fired from the replaced journal");
}
