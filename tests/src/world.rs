//! A test world: the OpenWhisk emulator with our package deployed the way `manifest.yaml`
//! describes it, a user namespace `guest`, and the calls the wsk CLI makes for feeds.
//!
//! Feed tests read in a few lines: `World::start(feed, poll)`, `create_trigger`, change the
//! source, `poll()`, then look at `events()` (what the user's rule action received).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::bail;
use serde_json::{json, Value};

use crate::emulator_support::{self, Api};
use ow_emulator::{Config, Emulator};
use owfeed::openwhisk::{AuthKey, Client, OwError, QualifiedName};

/// The user namespace of every world.
pub const USER: &str = "guest";
/// Where the package is deployed (shared), as `wskdeploy -m manifest.yaml` would do.
pub const PACKAGE: &str = "owfeed";
/// The namespace scheduler's alarm trigger in the user's namespace (`{package}.scheduler-tick`).
pub const SCHEDULER_TICK: &str = "owfeed.scheduler-tick";
/// The namespace scheduler's rule.
pub const SCHEDULER_RULE: &str = "owfeed.scheduler-rule";
/// The namespace scheduler's binding.
pub const SCHEDULER_BINDING: &str = "owfeed.scheduler";

/// A directory removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    /// A fresh, empty directory under the system temp dir.
    pub fn new(tag: &str) -> TempDir {
        static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let path = std::env::temp_dir().join(format!("owfeed-test-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir(path)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A binary of another workspace package (the real actions), built once per test run.
pub fn workspace_bin(name: &str) -> PathBuf {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf();
    let built = BUILT.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
        let status = std::process::Command::new(cargo)
            .args(["build", "--quiet", "--bins", "-p", "changes", "-p", "poll", "-p", "hook", "-p", "receive"])
            .current_dir(&root)
            .status()
            .map_err(|e| e.to_string())?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("cargo build of the action binaries failed: {status}"))
        }
    });
    if let Err(e) = built {
        panic!("{e}");
    }
    // Tests run from target/<profile>/deps/; the binaries sit in target/<profile>/.
    let exe = std::env::current_exe().expect("current exe");
    let profile_dir = exe.parent().and_then(Path::parent).expect("target profile dir");
    profile_dir.join(name)
}

/// The body of `PUT /actions/…` for a binary (a zip with it as top-level `exec`), with the
/// limits the manifest gives our actions and these annotations.
pub fn action_body(binary: &Path, kind: &str, annotations: Value) -> anyhow::Result<Value> {
    let mut body = emulator_support::action_body(binary, kind)?;
    body["limits"] = json!({ "timeout": 60000, "memory": 256 });
    body["annotations"] = annotations;
    Ok(body)
}

/// The emulator, our package, and a user.
pub struct World {
    /// The running emulator.
    pub emu: Emulator,
    /// Scratch space for the test (listing files, state dirs).
    pub dir: TempDir,
    /// The user's key.
    pub user_key: String,
    /// A client with the user's key.
    pub user: Client,
    /// A client with the system namespace's key.
    pub system: Client,
}

impl World {
    /// Starts an emulator and deploys `feed` (as `changes`) and `poll` into the shared package.
    pub fn start(feed: &Path, poll: &Path) -> World {
        World::start_with(Config::with_namespaces(&[USER, "other"]), feed, poll)
    }

    /// Like `start`, with an emulator config of the test's choosing.
    pub fn start_with(config: Config, feed: &Path, poll: &Path) -> World {
        let world = World::empty(config, "world").expect("start emulator");
        world.deploy(feed, poll).expect("deploy package");
        world
    }

    /// The emulator and the clients, with nothing deployed (for callers that deploy their own
    /// actions); `tag` names the scratch directory.
    pub fn empty(config: Config, tag: &str) -> anyhow::Result<World> {
        let emu = Emulator::start(config)?;
        let client = |ns: &str| -> anyhow::Result<(String, Client)> {
            let key = emu.key(ns).ok_or_else(|| anyhow::anyhow!("the emulator has no key for {ns}"))?;
            let auth = AuthKey::parse(&key).map_err(anyhow::Error::msg)?;
            Ok((key.clone(), Client::new(&emu.url(), auth)))
        };
        let (user_key, user) = client(USER)?;
        let (_, system) = client(ow_emulator::SYSTEM_NAMESPACE)?;
        Ok(World { emu, dir: TempDir::new(tag), user_key, user, system })
    }

    fn deploy(&self, feed: &Path, poll: &Path) -> anyhow::Result<()> {
        let pkg = QualifiedName::new(ow_emulator::SYSTEM_NAMESPACE, None, PACKAGE);
        self.system.put_package(&pkg, &json!({ "publish": true }), true)?;
        let feed_ann = json!([{"key": "feed", "value": true}, {"key": "provide-api-key", "value": true}]);
        let poll_ann = json!([{"key": "provide-api-key", "value": true}]);
        let changes = QualifiedName::new(ow_emulator::SYSTEM_NAMESPACE, Some(PACKAGE), "changes");
        let poll_name = QualifiedName::new(ow_emulator::SYSTEM_NAMESPACE, Some(PACKAGE), "poll");
        self.system.put_action(&changes, &action_body(feed, "rust:1.34", feed_ann)?, true)?;
        self.system.put_action(&poll_name, &action_body(poll, "rust:1.34", poll_ann)?, true)?;
        Ok(())
    }

    /// Sets the namespace budgets of every feed on our package, as a deployer does with `wsk
    /// package update owfeed -p namespaceFiresPerMinute …` (each namespace's scheduler binding
    /// may override them).
    pub fn set_namespace_budgets(&self, budgets: Value) {
        let pkg = QualifiedName::new(ow_emulator::SYSTEM_NAMESPACE, None, PACKAGE);
        let params: Vec<Value> =
            budgets.as_object().expect("an object").iter().map(|(k, v)| json!({"key": k, "value": v})).collect();
        self.system.put_package(&pkg, &json!({ "publish": true, "parameters": params }), true).expect("update package");
    }

    /// The feed action's fully qualified name.
    pub fn feed_name(&self) -> QualifiedName {
        QualifiedName::new(ow_emulator::SYSTEM_NAMESPACE, Some(PACKAGE), "changes")
    }

    fn trigger(&self, name: &str) -> QualifiedName {
        QualifiedName::new("_", None, name)
    }

    /// Invokes the feed action as the CLI does (blocking), with the user's key.
    pub fn feed(&self, event: &str, trigger: &str, params: Value) -> Result<Value, String> {
        self.feed_of("changes", event, trigger, params)
    }

    /// Like [`World::feed`], for another feed action of our package (`hook`).
    pub fn feed_of(&self, action: &str, event: &str, trigger: &str, params: Value) -> Result<Value, String> {
        let mut p = json!({
            "lifecycleEvent": event,
            "triggerName": format!("/_/{trigger}"),
            "authKey": self.user_key,
        });
        if let (Value::Object(p), Value::Object(extra)) = (&mut p, params) {
            p.extend(extra);
        }
        let feed = QualifiedName::new(ow_emulator::SYSTEM_NAMESPACE, Some(PACKAGE), action);
        match self.user.invoke(&feed, &p, true) {
            Ok(result) => Ok(result),
            Err(OwError::Application(result)) => {
                Err(result["error"].as_str().unwrap_or(&result.to_string()).to_string())
            }
            Err(e) => Err(e.to_string()),
        }
    }

    /// `wsk trigger create NAME --feed owfeed/changes -p …`: on a failed CREATE the CLI runs
    /// `wsk trigger delete`, which invokes DELETE and then deletes the trigger
    /// (apache/openwhisk-cli commands/trigger.go:481-500, :381-391).
    pub fn create_trigger(&self, name: &str, params: Value) -> Result<Value, String> {
        self.create_trigger_of("changes", name, params)
    }

    /// Like [`World::create_trigger`], with another feed action of our package (`hook`).
    pub fn create_trigger_of(&self, action: &str, name: &str, params: Value) -> Result<Value, String> {
        let feed = QualifiedName::new(ow_emulator::SYSTEM_NAMESPACE, Some(PACKAGE), action).to_string();
        let body = json!({ "annotations": [{ "key": "feed", "value": feed }], "parameters": [] });
        self.user.put_trigger(&self.trigger(name), &body, false).map_err(|e| e.to_string())?;
        match self.feed_of(action, "CREATE", name, params) {
            Ok(v) => Ok(v),
            Err(e) => {
                let _ = self.feed_of(action, "DELETE", name, json!({}));
                let _ = self.user.delete_trigger(&self.trigger(name));
                Err(e)
            }
        }
    }

    /// wskdeploy's feed trigger: the trigger, then CREATE; when CREATE fails it deletes the
    /// trigger without invoking DELETE (apache/openwhisk-wskdeploy deployers/servicedeployer.go:
    /// 887-947), so a failed CREATE must clean up by itself.
    pub fn deploy_trigger(&self, name: &str, params: Value) -> Result<Value, String> {
        let feed = self.feed_name().to_string();
        let body = json!({ "annotations": [{ "key": "feed", "value": feed }], "publish": true });
        self.user.put_trigger(&self.trigger(name), &body, true).map_err(|e| e.to_string())?;
        self.feed("CREATE", name, params).inspect_err(|_| {
            let _ = self.user.delete_trigger(&self.trigger(name));
        })
    }

    /// `wsk trigger delete NAME` on a feed trigger: DELETE first (its failure only logged), then
    /// the trigger (apache/openwhisk-cli commands/trigger.go:275-296).
    pub fn delete_trigger(&self, name: &str) -> Result<Value, String> {
        let r = self.feed("DELETE", name, json!({}));
        let _ = self.user.delete_trigger(&self.trigger(name));
        r
    }

    /// Adds a rule from the user's trigger to an action recording what it receives.
    pub fn record_events(&self, trigger: &str, recorder: &Path) {
        let action = QualifiedName::new(USER, None, "recorder");
        let body = action_body(recorder, "rust:1.34", json!([])).expect("recorder body");
        self.user.put_action(&action, &body, true).expect("put recorder");
        let rule = QualifiedName::new(USER, None, &format!("{trigger}-recorder"));
        self.user.put_rule(&rule, &QualifiedName::new(USER, None, trigger), &action, true).expect("put rule");
    }

    /// Invokes the poll action of trigger `trigger`'s binding once, blocking, as its alarm's
    /// rule would: the poll's result, or its error message.
    pub fn poll_once(&self, trigger: &str) -> Result<Value, String> {
        let poll = QualifiedName::new(USER, Some(&format!("{trigger}.owfeed")), "poll");
        match self.user.invoke(&poll, &json!({}), true) {
            Ok(v) => Ok(v),
            Err(OwError::Application(r)) => Err(r["error"].as_str().map(str::to_string).unwrap_or(r.to_string())),
            Err(e) => Err(e.to_string()),
        }
    }

    /// `wsk action update owfeed/poll --timeout MS`: the poll's time limit (code and
    /// annotations stay).
    pub fn set_poll_timeout(&self, ms: u64) {
        let poll = QualifiedName::new(ow_emulator::SYSTEM_NAMESPACE, Some(PACKAGE), "poll");
        self.system.put_action(&poll, &json!({ "limits": { "timeout": ms } }), true).expect("update poll timeout");
    }

    /// One tick of the namespace scheduler that polls every registered (unpaused) feed trigger
    /// whatever its schedule (`wsk trigger fire owfeed.scheduler-tick -p due all`), and waits
    /// for the invocations. Feeds with an alarm of their own (made before the scheduler) are
    /// polled by their alarms, fired too.
    pub fn poll(&self) {
        let tick = QualifiedName::new(USER, None, SCHEDULER_TICK);
        match self.user.fire_trigger(&tick, &json!({ "due": "all" })) {
            Ok(_) | Err(OwError::NotFound(_)) => {}
            Err(e) => panic!("firing the scheduler: {e}"),
        }
        let own = self.emu.alarms_of(USER).into_iter().filter(|t| t != &format!("/{USER}/{SCHEDULER_TICK}"));
        for alarm in own.collect::<Vec<_>>() {
            self.emu.fire_alarm(&alarm);
        }
        assert!(self.emu.wait_idle(Duration::from_secs(120)), "emulator did not go idle");
    }

    /// Results of the scheduler's ticks (and the activations they fanned out to), oldest first.
    pub fn ticks(&self) -> Vec<Value> {
        self.emu
            .activations(USER)
            .into_iter()
            .filter(|a| a["name"] == "poll" && a["response"]["result"]["polls"].is_array())
            .map(|a| a["response"]["result"].clone())
            .collect()
    }

    /// The payloads fired at the user's trigger `name`, in the order the fires were accepted
    /// (the trigger's activation records: the rule invocations run at once, so the recorder's
    /// records may finish in another order).
    pub fn fired(&self, name: &str) -> Vec<Value> {
        self.emu
            .activations(USER)
            .into_iter()
            .filter(|a| a["name"] == name)
            .map(|a| a["response"]["result"].clone())
            .collect()
    }

    /// The payloads the recorder action received, oldest first, without the `__ow_headers` the
    /// controller merges into every fire's parameters.
    pub fn events(&self) -> Vec<Value> {
        self.emu
            .activations(USER)
            .into_iter()
            .filter(|a| a["name"] == "recorder")
            .map(|a| {
                let mut echo = a["response"]["result"]["echo"].clone();
                if let Some(m) = echo.as_object_mut() {
                    m.remove("__ow_headers");
                }
                echo
            })
            .collect()
    }

    /// Results of the polls, oldest first: a poll activation's result, or each poll a tick of
    /// the scheduler lists.
    pub fn poll_results(&self) -> Vec<Value> {
        let mut out = Vec::new();
        for a in self.emu.activations(USER).into_iter().filter(|a| a["name"] == "poll") {
            let result = &a["response"]["result"];
            match result["polls"].as_array() {
                Some(polls) => out.extend(polls.iter().cloned()),
                None => out.push(result.clone()),
            }
        }
        out
    }

    /// Names of the user's triggers, rules and packages, as `kind:name`, sorted.
    pub fn user_entities(&self) -> anyhow::Result<Vec<String>> {
        let mut out = Vec::new();
        let api = Api::new(&self.emu.url(), Some(&self.user_key));
        for kind in ["triggers", "rules", "packages"] {
            let list = api.get(&format!("/api/v1/namespaces/{USER}/{kind}")).json();
            let Some(items) = list.as_array() else { bail!("{kind}: not a list: {list}") };
            for item in items {
                out.push(format!("{}:{}", &kind[..kind.len() - 1], item["name"].as_str().unwrap_or("?")));
            }
        }
        out.sort();
        Ok(out)
    }
}

/// One benchmark line for `samples` (milliseconds, in the order taken): the first, p50, p99,
/// min and max, p as the nearest rank (with 50 samples p99 is the largest).
pub fn latency_line(what: &str, samples: &[f64]) -> String {
    let mut sorted = samples.to_vec();
    sorted.sort_by(|a, b| a.total_cmp(b));
    let n = sorted.len();
    if n == 0 {
        return format!("{what}: no samples");
    }
    let at = |q: f64| sorted[((q * n as f64).ceil() as usize).clamp(1, n) - 1];
    format!(
        "{what} over {n} samples: first {:.1} ms, p50 {:.1} ms, p99 {:.1} ms, min {:.1} ms, max {:.1} ms",
        samples[0],
        at(0.50),
        at(0.99),
        sorted[0],
        sorted[n - 1]
    )
}

/// Milliseconds left in the current calendar minute: OpenWhisk's fire and invocation
/// throttles count per calendar minute, so a test of them must not straddle two.
pub fn left_in_minute() -> u64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_millis() as u64;
    60_000 - now % 60_000
}

/// Sleeps until `ms` milliseconds into the next calendar minute.
pub fn sleep_into_next_minute(ms: u64) {
    std::thread::sleep(std::time::Duration::from_millis(left_in_minute() + ms));
}
