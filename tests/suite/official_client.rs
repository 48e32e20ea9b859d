//! The emulator against the official OpenWhisk JavaScript client (`openwhisk` on npm, pinned in
//! tests/js/package.json): tests/js/client.mjs drives namespaces, triggers, fires, rules, packages,
//! bindings, zip actions, activations, the alarms feed, a web action and error statuses through the
//! client, and this test checks its report and what the emulator recorded.
//!
//! The client is installed on first use by `feed_tests::tools::js_client_dir` (`npm ci`); when
//! that cannot run, the test fails saying so rather than skipping.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use feed_tests::emulator_support::{zip_exec_bytes, Api};
use ow_emulator::{Config, Emulator};
use serde_json::{json, Value};

/// Every check client.mjs must report, in order; a check dropped from the script fails here.
const CHECKS: &[&str] = &[
    "namespaces.list",
    "api option with a full base URL",
    "wrong key rejects with 401",
    "triggers.create",
    "duplicate triggers.create rejects with 409",
    "triggers.get",
    "triggers.get of a missing trigger rejects with 404",
    "triggers.update",
    "triggers.list",
    "triggers.invoke without an active rule (204)",
    "actions.create from a zip",
    "actions.get and actions.list",
    "duplicate actions.create rejects with 409",
    "actions.invoke blocking with result",
    "actions.invoke blocking of a failing action rejects with 502",
    "actions.invoke non-blocking, then activations get/result/logs/list",
    "packages.create (publish) with an action inside",
    "packages.create binding and invoke through it",
    "rules.create",
    "triggers.invoke with an active rule (202) runs the action",
    "rules.disable stops fires, rules.enable restores them",
    "rules.delete",
    "feeds.create",
    "feeds.get",
    "an alarm from the feed fires its trigger through a rule",
    "feeds.delete",
    "web action URL",
    "deletes",
];

/// Upper bound for the whole script; its own waits are bounded well below this.
const SCRIPT_LIMIT: Duration = Duration::from_secs(300);

/// The zip of the echo-action fixture as a top-level `exec`, in a file the script reads.
struct ZipFile(PathBuf);

impl ZipFile {
    fn write(port_hint: &str) -> ZipFile {
        let binary = std::fs::read(env!("CARGO_BIN_EXE_echo-action")).expect("read echo-action");
        let zip = zip_exec_bytes(&binary).expect("zip echo-action");
        let name = format!("official-client-{}-{}.zip", std::process::id(), port_hint);
        let path = std::env::temp_dir().join(name);
        std::fs::write(&path, zip).expect("write the action zip");
        ZipFile(path)
    }
}

impl Drop for ZipFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Runs `node client.mjs` with a hard time limit; returns (status, stdout, stderr).
fn run_client(emu: &Emulator, zip: &Path) -> (ExitStatus, String, String) {
    let dir = feed_tests::tools::js_client_dir().expect("the official OpenWhisk JS client");
    let mut cmd = Command::new("node");
    cmd.arg(dir.join("client.mjs"))
        .current_dir(&dir)
        .env("OW_APIHOST", emu.url())
        .env("OW_AUTH", emu.key("guest").expect("guest key"))
        .env("OW_ACTION_ZIP", zip)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // the client reads these from the environment: a proxy or an action's own settings would
    // send it elsewhere or to another namespace
    for var in [
        "PROXY",
        "proxy",
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "__OW_API_HOST",
        "__OW_API_KEY",
        "__OW_NAMESPACE",
        "__OW_IGNORE_CERTS",
        "__OW_APIGW_TOKEN",
    ] {
        cmd.env_remove(var);
    }
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot run `node` (is Node.js on PATH?): {e}"));
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = pipe.read_to_string(&mut s);
            s
        })
    };
    let out = drain(Box::new(child.stdout.take().expect("stdout pipe")));
    let err = drain(Box::new(child.stderr.take().expect("stderr pipe")));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for node") {
            break status;
        }
        if started.elapsed() > SCRIPT_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "client.mjs still running after {SCRIPT_LIMIT:?}; output so far:\n{}",
                out.join().unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (status, out.join().unwrap_or_default(), err.join().unwrap_or_default())
}

#[test]
fn the_official_javascript_client_works_against_the_emulator() {
    let emu = Emulator::start(Config::with_namespaces(&["guest"])).expect("start emulator");
    let port = emu.url().rsplit(':').next().unwrap_or("0").to_string();
    let zip = ZipFile::write(&port);
    let (status, stdout, stderr) = run_client(&emu, &zip.0);
    assert!(status.success(), "client.mjs failed ({status}):\n{stdout}\nstderr:\n{stderr}");

    let reported: Vec<&str> = stdout.lines().filter_map(|l| l.strip_prefix("ok ")).collect();
    assert_eq!(reported, CHECKS, "client.mjs reported other checks:\n{stdout}");
    assert_eq!(stdout.lines().last(), Some("all checks passed"), "{stdout}");

    // what the client did is what the emulator recorded
    assert!(emu.wait_idle(Duration::from_secs(30)), "emulator did not go idle");
    let records = emu.activations("guest");
    let echoes: Vec<&Value> = records.iter().filter(|a| a["name"] == "echo").collect();
    let caused = echoes.iter().filter(|a| a["cause"].is_string()).count();
    // one fire in the rule check, one after re-enabling, one from the alarm
    assert_eq!(caused, 3, "rule-triggered echo activations: {echoes:?}");
    assert!(echoes.iter().any(|a| a["response"]["result"]["echo"]["hello"] == "alarm"));
    let guest = Api::new(&emu.url(), emu.key("guest").as_deref());
    for kind in ["triggers", "rules", "actions", "packages"] {
        let list = guest.get(&format!("/api/v1/namespaces/_/{kind}")).json();
        assert_eq!(list, json!([]), "client.mjs leaves no {kind} behind");
    }
    assert_eq!(emu.fire_alarms(), Vec::new(), "feeds.delete removed the alarm");
}
