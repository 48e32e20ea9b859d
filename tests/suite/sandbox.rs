//! The local sandbox (`tests/src/bin/sandbox.rs`, the README's first command) run as a user runs
//! it, without `--keep`: its output must show the demo's created, updated and deleted events.
//! It does not check `--keep` (that waits for Ctrl-C) nor deploy/sandbox.sh (that may pip install).

use std::process::Command;

use serde_json::Value;

use feed_tests::world::workspace_bin;

/// The (type suffix, subject) of every pretty-printed event in the sandbox's output, sorted.
fn events_in(stdout: &str) -> Vec<(String, String)> {
    let start = stdout.find("\n{\n").expect("the output holds pretty JSON events") + 1;
    let end = stdout.find("\nSummary:").expect("the output has a summary");
    let mut events: Vec<(String, String)> = serde_json::Deserializer::from_str(&stdout[start..end])
        .into_iter::<Value>()
        .map(|event| {
            let event = event.expect("each event is JSON");
            let kind = event["type"].as_str().and_then(|t| t.rsplit('.').next()).unwrap_or("?").to_string();
            (kind, event["subject"].as_str().unwrap_or("?").to_string())
        })
        .collect();
    events.sort();
    events
}

/// Runs the sandbox binary with `args` as a user would; returns its stdout and stderr once it
/// exited successfully.
fn run_sandbox(args: &[&str]) -> (String, String) {
    // The sandbox deploys the action binaries built next to it.
    let _ = workspace_bin("changes");
    let output = Command::new(env!("CARGO_BIN_EXE_sandbox")).args(args).output().expect("run the sandbox binary");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "exit {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}", output.status.code());
    (stdout, stderr)
}

fn owned(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, s)| (k.to_string(), s.to_string())).collect()
}

#[test]
fn sandbox_prints_created_updated_and_deleted_events() {
    let (stdout, stderr) = run_sandbox(&[]);
    let expected = [
        ("created", "notes.txt"),
        ("created", "photos/cat.jpg"),
        ("deleted", "photos/cat.jpg"),
        ("updated", "notes.txt"),
    ];
    assert_eq!(events_in(&stdout), owned(&expected), "{stdout}");
    assert!(stdout.contains("Summary: 2 created, 1 updated, 1 deleted"), "{stdout}");
    assert!(stdout.contains("\"objectsTracked\": 2"), "READ status missing or wrong:\n{stdout}");
    // Without --keep nothing names a credential.
    for word in ["secretAccessKey", "authKey", "OW_AUTH", "AWS_SECRET_ACCESS_KEY"] {
        assert!(!stdout.contains(word) && !stderr.contains(word), "{word} in the output:\n{stdout}\n{stderr}");
    }
}

#[test]
fn sandbox_source_couchdb_prints_the_documents_events() {
    let (stdout, _) = run_sandbox(&["--source", "couchdb"]);
    let expected = [("created", "cat"), ("created", "notes"), ("deleted", "cat"), ("updated", "notes")];
    assert_eq!(events_in(&stdout), owned(&expected), "{stdout}");
    assert!(stdout.contains("org.openwhisk.feeds.couchdb.document.updated"), "{stdout}");
    assert!(stdout.contains("\"recordsRead\": 4"), "READ status missing or wrong:\n{stdout}");
}

#[test]
fn sandbox_source_kafka_prints_the_messages_events() {
    let (stdout, _) = run_sandbox(&["--source", "kafka"]);
    let expected = [("message", "order-1"), ("message", "order-1"), ("message", "order-2")];
    assert_eq!(events_in(&stdout), owned(&expected), "{stdout}");
    assert!(stdout.contains("\"qty\": 3"), "isJSONData parsed the value: {stdout}");
    assert!(stdout.contains("\"recordsRead\": 3"), "READ status missing or wrong:\n{stdout}");
}

/// `--push`: the S3 demo through bucket notifications, moto's S3 to moto's SNS to the receiver.
/// An overwrite is a second `created` (push cannot tell), and the output must say that the
/// receiver is the test build trusting a local SNS stand-in.
#[test]
fn sandbox_push_prints_the_pushed_events_and_names_its_stand_ins() {
    let (stdout, stderr) = run_sandbox(&["--push"]);
    let expected = [
        ("created", "notes.txt"),
        ("created", "notes.txt"),
        ("created", "photos/cat.jpg"),
        ("deleted", "photos/cat.jpg"),
    ];
    assert_eq!(events_in(&stdout), owned(&expected), "{stdout}");
    assert!(stdout.contains("Summary: 3 created, 0 updated, 1 deleted"), "{stdout}");
    assert!(stdout.contains("subscription confirmed;"), "{stdout}");
    assert!(stdout.contains("\"pendingConfirmation\": false"), "READ status missing or wrong:\n{stdout}");
    assert!(stdout.contains("test build sns-test-receive"), "the demo must name its test receiver:\n{stdout}");
    assert_eq!(stdout.matches("HTTP 202, fired 1").count(), 4, "{stdout}");
    for word in ["secretAccessKey", "authKey", "OW_AUTH", "AWS_SECRET_ACCESS_KEY", "snsTestCa", "BEGIN CERTIFICATE"] {
        assert!(!stdout.contains(word) && !stderr.contains(word), "{word} in the output:\n{stdout}\n{stderr}");
    }
}
