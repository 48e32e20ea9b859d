//! `sandbox`: the README's first command. Starts the OpenWhisk emulator and a local S3 server
//! (moto, verifying SigV4), deploys the owfeed package as `manifest.yaml` describes it, creates
//! an S3 feed trigger the way `wsk trigger create --feed` does, changes a few objects and prints
//! the CloudEvents that reached the user's echo action.
//!
//! Usage: `sandbox [--keep [--realtime]] [--source s3|couchdb|kafka] [--push] [--manifest PATH]`.
//! `--keep` leaves the servers running and prints how to reach them; `--realtime` fires the
//! alarms by the clock; `--source couchdb` runs the same demo on a CouchDB database
//! (pouchdb-server); `--push` runs the S3 demo in push mode: a `--feed owfeed/hook -p source s3
//! -p provider aws` trigger, moto's S3 publishing to moto's SNS, which delivers to the receiver.
//!
//! Push mode needs two test stand-ins, and says so when it starts: moto 5.2.1 never sends an
//! SNS subscription confirmation and signs with a certificate of its own, not from an SNS host,
//! so `feed_tests::sns` plays that part of SNS (a local HTTPS host, a relay and the
//! confirmations), and the receiver deployed is the `sns-test-receive` build, which also trusts
//! that local host. The shipped `receive` trusts only `sns.<region>.amazonaws.com`.
//!
//! It builds nothing: the action binaries (named like the manifest's actions) and `echo-action`
//! must sit next to this binary (`deploy/sandbox.sh` builds them). It needs no OpenWhisk, no
//! Docker and no internet; the keys it makes are throwaway local keys, printed only by `--keep`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{bail, Context as _};
use serde_json::{json, Value};
use yaml_rust2::{Yaml, YamlLoader};

use feed_tests::moto::{Moto, REGION};
use feed_tests::pouchdb::PouchDb;
use feed_tests::sns::{FakeSnsHost, SnsConfirmations, SnsRelay};
use feed_tests::world::{action_body, World, PACKAGE, USER};
use ow_emulator::{Config, SYSTEM_NAMESPACE};
use owfeed::openwhisk::{Client, QualifiedName};

/// The bucket the sandbox watches.
const BUCKET: &str = "sandbox";
/// The feed trigger the sandbox creates.
const TRIGGER: &str = "s3-changes";
/// How long one poll (alarm, poll action, trigger fires, echo activations) may take.
const POLL_LIMIT: Duration = Duration::from_secs(120);

/// Set by SIGINT/SIGTERM while `--keep` waits.
static STOP: AtomicBool = AtomicBool::new(false);

/// One action of manifest.yaml, as the sandbox deploys it.
struct ManifestAction {
    name: String,
    kind: String,
    timeout_ms: i64,
    memory_mb: i64,
    annotations: Vec<Value>,
}

fn main() -> std::process::ExitCode {
    // A plain message, not anyhow's report with a backtrace: most failures are setup problems.
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sandbox: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[allow(clippy::print_stdout)]
fn run() -> anyhow::Result<()> {
    let mut keep = false;
    let mut realtime = false;
    let mut source = "s3".to_string();
    let mut push = false;
    let mut manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifest.yaml");
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--keep" => keep = true,
            "--realtime" => realtime = true,
            "--manifest" => manifest = args.next().context("--manifest needs a path")?.into(),
            "--source" => source = args.next().context("--source needs s3, couchdb or kafka")?,
            "--push" => push = true,
            other => {
                bail!("unknown argument '{other}'; expected --keep, --realtime, --source s3|couchdb|kafka, --push or --manifest PATH")
            }
        }
    }
    if realtime && !keep {
        bail!("--realtime fires alarms by the clock while the sandbox keeps running: use it with --keep");
    }
    if !["s3", "couchdb", "kafka"].contains(&source.as_str()) {
        bail!("--source: expected s3, couchdb or kafka, got '{source}'");
    }
    if keep && source != "s3" {
        bail!("--keep leaves the S3 demo running: use it without --source couchdb");
    }
    if push && source != "s3" {
        bail!("--push is the S3 demo in push mode (bucket notifications): use it without --source couchdb");
    }
    if push && realtime {
        bail!("--realtime fires alarms by the clock; a push trigger has no alarm: use --push without it");
    }
    let bin_dir = std::env::current_exe()?.parent().context("the sandbox binary has no directory")?.to_path_buf();
    let (public, actions) = read_manifest(&manifest)?;

    if source == "couchdb" {
        return couchdb_demo(realtime, &bin_dir, public, &actions, &manifest);
    }
    if source == "kafka" {
        return kafka_demo(realtime, &bin_dir, public, &actions, &manifest);
    }
    if push {
        return push_demo(keep, &bin_dir, public, &actions, &manifest);
    }
    println!("Starting moto (local S3, verifying SigV4) and the OpenWhisk emulator...");
    let moto = Moto::start().context("starting moto")?;
    let world = World::empty(Config { alarms_realtime: realtime, ..Config::with_namespaces(&[USER]) }, "sandbox")?;
    deploy(&world.system, &bin_dir, public, &actions, &Deployment::default())?;
    println!("Deployed package /{SYSTEM_NAMESPACE}/{PACKAGE} from {}: {}", manifest.display(), names(&actions));

    moto.create_bucket(BUCKET)?;
    moto.put(BUCKET, "readme.txt", b"present before the trigger: part of the baseline, never reported")?;
    let params = json!({
        "endpoint": moto.endpoint(),
        "bucket": BUCKET,
        "accessKeyId": moto.access_key_id(),
        "secretAccessKey": moto.secret_access_key(),
    });
    world.create_trigger(TRIGGER, params).map_err(|e| anyhow::anyhow!("creating trigger {TRIGGER}: {e}"))?;
    world.record_events(TRIGGER, &binary(&bin_dir, "echo-action")?);
    println!("Created trigger {TRIGGER} --feed {PACKAGE}/changes on bucket {BUCKET}, rule {TRIGGER}-recorder -> echo action recorder");

    step(&world, "put photos/cat.jpg and notes.txt", || {
        moto.put(BUCKET, "photos/cat.jpg", b"meow")?;
        moto.put(BUCKET, "notes.txt", b"first draft")?;
        Ok(())
    })?;
    step(&world, "change notes.txt", || moto.put(BUCKET, "notes.txt", b"second draft, longer").map(drop))?;
    step(&world, "delete photos/cat.jpg", || moto.delete(BUCKET, "photos/cat.jpg"))?;

    report(&world, "changes", TRIGGER)?;

    if keep {
        let alarm = if realtime { "fires every minute by the clock, and now with" } else { "fires only when asked" };
        print_instructions(&world, &moto, TRIGGER);
        println!(
            "The namespace scheduler's alarm {alarm} (each fire polls the bucket and fires {TRIGGER} per change):
  curl -s -X POST $OW_APIHOST/__emulator/alarms/fire"
        );
        print_activations_hint();
        wait_for_signal();
        println!("Stopping.");
    }
    Ok(())
}

/// The same demo on a CouchDB database (`--source couchdb`): pouchdb-server in memory, a
/// trigger `--feed owfeed/changes -p source couchdb`, documents created, changed and deleted.
#[allow(clippy::print_stdout)]
fn couchdb_demo(
    realtime: bool,
    bin_dir: &Path,
    public: bool,
    actions: &[ManifestAction],
    manifest: &Path,
) -> anyhow::Result<()> {
    println!("Starting pouchdb-server (a CouchDB HTTP API, in memory) and the OpenWhisk emulator...");
    let couch = PouchDb::start().context("starting pouchdb-server")?;
    let world = World::empty(Config { alarms_realtime: realtime, ..Config::with_namespaces(&[USER]) }, "sandbox")?;
    deploy(&world.system, bin_dir, public, actions, &Deployment::default())?;
    println!("Deployed package /{SYSTEM_NAMESPACE}/{PACKAGE} from {}: {}", manifest.display(), names(actions));

    const DB: &str = "sandbox";
    const TRIGGER: &str = "couchdb-changes";
    couch.create_db(DB)?;
    couch.put(DB, "readme", json!({"note": "written before the trigger (since=now): never reported"}))?;
    let params = json!({"source": "couchdb", "url": couch.url, "dbname": DB});
    world.create_trigger(TRIGGER, params).map_err(|e| anyhow::anyhow!("creating trigger {TRIGGER}: {e}"))?;
    world.record_events(TRIGGER, &binary(bin_dir, "echo-action")?);
    println!("Created trigger {TRIGGER} --feed {PACKAGE}/changes -p source couchdb on database {DB}, rule {TRIGGER}-recorder -> echo action recorder");

    step(&world, "create documents cat and notes", || {
        couch.put(DB, "cat", json!({"says": "meow"}))?;
        couch.put(DB, "notes", json!({"text": "first draft"}))?;
        Ok(())
    })?;
    step(&world, "change notes", || couch.update(DB, "notes", json!({"text": "second draft"})).map(drop))?;
    step(&world, "delete cat", || couch.delete(DB, "cat").map(drop))?;
    report(&world, "changes", TRIGGER)
}

/// The same demo on a Kafka topic (`--source kafka`): tansu in memory (built on first use), a
/// two-partition topic written by kafka-python, the feed's state in a moto bucket.
#[allow(clippy::print_stdout)]
fn kafka_demo(
    realtime: bool,
    bin_dir: &Path,
    public: bool,
    actions: &[ManifestAction],
    manifest: &Path,
) -> anyhow::Result<()> {
    println!(
        "Starting tansu (a Kafka-protocol broker, in memory), moto (the feed's state) and the OpenWhisk emulator..."
    );
    let broker = feed_tests::kafka::Tansu::start(false).context("starting tansu")?;
    let moto = Moto::start().context("starting moto")?;
    let world = World::empty(Config { alarms_realtime: realtime, ..Config::with_namespaces(&[USER]) }, "sandbox")?;
    deploy(&world.system, bin_dir, public, actions, &Deployment::default())?;
    println!("Deployed package /{SYSTEM_NAMESPACE}/{PACKAGE} from {}: {}", manifest.display(), names(actions));

    const TOPIC: &str = "orders";
    const TRIGGER: &str = "kafka-messages";
    broker.create_topic(TOPIC, 2)?;
    broker
        .produce(TOPIC, json!([{"partition": 0, "value": "written before the trigger (since=now): never reported"}]))?;
    moto.create_bucket(BUCKET)?;
    let params = json!({
        "source": "kafka", "brokers": [broker.addr], "topic": TOPIC, "isJSONData": true,
        "stateBucket": BUCKET, "endpoint": moto.endpoint(),
        "accessKeyId": moto.access_key_id(), "secretAccessKey": moto.secret_access_key(),
    });
    world.create_trigger(TRIGGER, params).map_err(|e| anyhow::anyhow!("creating trigger {TRIGGER}: {e}"))?;
    world.record_events(TRIGGER, &binary(bin_dir, "echo-action")?);
    println!("Created trigger {TRIGGER} --feed {PACKAGE}/changes -p source kafka on topic {TOPIC}, rule {TRIGGER}-recorder -> echo action recorder");

    step(&world, "produce order-1 (partition 0) and order-2 (partition 1)", || {
        broker
            .produce(
                TOPIC,
                json!([
                    {"partition": 0, "key": "order-1", "value": "{\"item\": \"cat food\", \"qty\": 2}"},
                    {"partition": 1, "key": "order-2", "value": "{\"item\": \"yarn\", \"qty\": 1}"},
                ]),
            )
            .map(drop)
    })?;
    step(&world, "produce order-1 again (partition 0)", || {
        broker
            .produce(
                TOPIC,
                json!([{"partition": 0, "key": "order-1", "value": "{\"item\": \"cat food\", \"qty\": 3}"}]),
            )
            .map(drop)
    })?;
    report(&world, "changes", TRIGGER)
}

/// The S3 demo in push mode (`--push`): a hook trigger with `-p source s3 -p provider aws`;
/// each write to the bucket reaches the trigger through moto's SNS, with no alarm and no poll.
#[allow(clippy::print_stdout)]
fn push_demo(
    keep: bool,
    bin_dir: &Path,
    public: bool,
    actions: &[ManifestAction],
    manifest: &Path,
) -> anyhow::Result<()> {
    const TRIGGER: &str = "s3-pushed";
    println!("Starting moto (local S3 and SNS, verifying SigV4), the OpenWhisk emulator and an SNS stand-in...");
    let moto = Moto::start().context("starting moto")?;
    let world = World::empty(Config::with_namespaces(&[USER]), "sandbox")?;
    let sns_host = FakeSnsHost::start().context("starting the local SNS stand-in")?;
    // The receiver's URL goes through the relay, which does for moto's deliveries what SNS
    // does and moto leaves out (feed_tests::sns::SnsRelay); Subscribe goes through
    // SnsConfirmations, which sends the confirmation moto never sends.
    let relay = SnsRelay::in_front_of(moto.endpoint(), &world.emu.url(), sns_host.handle())?;
    let confirmations = SnsConfirmations::start(moto.endpoint(), sns_host.handle())?;
    println!(
        "Note: push on moto needs test stand-ins for what moto's SNS leaves out (a subscription
confirmation, SNS's headers, a certificate on an SNS host). The receiver deployed here is the
test build sns-test-receive: it also trusts the local HTTPS host {host}, standing in for
sns.{REGION}.amazonaws.com. The shipped receive trusts only the SNS hosts of AWS.",
        host = sns_host.host_port()
    );
    let deployment = Deployment {
        parameters: json!([{"key": "snsTestHost", "value": sns_host.host_port()},
            {"key": "snsTestCa", "value": sns_host.ca.ca_pem}]),
        binaries: vec![("receive", "sns-test-receive")],
    };
    deploy(&world.system, bin_dir, public, actions, &deployment)?;
    println!(
        "Deployed package /{SYSTEM_NAMESPACE}/{PACKAGE} from {}: {} (receive: sns-test-receive)",
        manifest.display(),
        names(actions)
    );

    moto.create_bucket(BUCKET)?;
    moto.put(BUCKET, "readme.txt", b"present before the trigger: never reported (push reports writes)")?;
    let params = json!({
        "source": "s3",
        "provider": "aws",
        "endpoint": moto.endpoint(),
        "snsEndpoint": confirmations.url(),
        "apiHost": relay.url(),
        "bucket": BUCKET,
        "accessKeyId": moto.access_key_id(),
        "secretAccessKey": moto.secret_access_key(),
    });
    world.create_trigger_of("hook", TRIGGER, params).map_err(|e| anyhow::anyhow!("creating trigger {TRIGGER}: {e}"))?;
    world.record_events(TRIGGER, &binary(bin_dir, "echo-action")?);
    let read = world.feed_of("hook", "READ", TRIGGER, json!({})).map_err(|e| anyhow::anyhow!("READ: {e}"))?;
    let pending = &read["status"]["producer"]["pendingConfirmation"];
    println!(
        "Created trigger {TRIGGER} --feed {PACKAGE}/hook -p source s3 -p provider aws on bucket {BUCKET}: SNS topic {topic}, \
         bucket notification added, subscription {state}; rule {TRIGGER}-recorder -> echo action recorder",
        topic = read["config"]["topicArn"].as_str().unwrap_or("?"),
        state = if *pending == json!(false) { "confirmed" } else { "NOT confirmed (see READ below)" },
    );

    push_step(&world, &relay, "put photos/cat.jpg and notes.txt", || {
        moto.put(BUCKET, "photos/cat.jpg", b"meow")?;
        moto.put(BUCKET, "notes.txt", b"first draft")?;
        Ok(())
    })?;
    push_step(&world, &relay, "overwrite notes.txt", || {
        moto.put(BUCKET, "notes.txt", b"second draft, longer").map(drop)
    })?;
    push_step(&world, &relay, "delete photos/cat.jpg", || moto.delete(BUCKET, "photos/cat.jpg"))?;

    report(&world, "hook", TRIGGER)?;
    println!(
        "\nPush reports each write as it happens: an overwrite is a second `created` (an S3 notification
does not say whether the key existed). Add -p reconcile hourly for a polling safety net that
fires the changes whose notifications were lost (README, \"S3 push\")."
    );

    if keep {
        print_instructions(&world, &moto, TRIGGER);
        println!("Each write to bucket {BUCKET} is pushed at once through SNS to the receiver; there is no alarm.");
        print_activations_hint();
        wait_for_signal();
        println!("Stopping.");
    }
    Ok(())
}

/// Makes a change, waits for the activations its notifications caused and prints what SNS
/// delivered to the receiver and what the receiver answered.
#[allow(clippy::print_stdout)]
fn push_step(
    world: &World,
    relay: &SnsRelay,
    what: &str,
    change: impl FnOnce() -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let before = relay.relayed().len();
    change().with_context(|| what.to_string())?;
    if !world.emu.wait_idle(POLL_LIMIT) {
        bail!("the emulator did not go idle within {POLL_LIMIT:?} after: {what}");
    }
    let answers: Vec<String> = relay.relayed()[before..]
        .iter()
        .map(|r| match r.answer.get("fired") {
            Some(fired) => format!("HTTP {}, fired {fired}", r.status),
            None => format!("HTTP {} {}", r.status, r.answer),
        })
        .collect();
    println!("Step: {what}; SNS delivered {} notification(s) to the receiver ({})", answers.len(), answers.join("; "));
    Ok(())
}

/// Prints the events the echo action received, a summary and the READ status of the trigger
/// made by `feed` (`changes` or `hook`).
#[allow(clippy::print_stdout)]
fn report(world: &World, feed: &str, trigger: &str) -> anyhow::Result<()> {
    let events = world.events();
    println!("\nCloudEvents received by the echo action ({}):", events.len());
    for event in &events {
        println!("{}", serde_json::to_string_pretty(event)?);
    }
    let count = |kind: &str| events.iter().filter(|e| e["type"].as_str().is_some_and(|t| t.ends_with(kind))).count();
    println!("\nSummary: {} created, {} updated, {} deleted", count(".created"), count(".updated"), count(".deleted"));
    let read =
        world.feed_of(feed, "READ", trigger, json!({})).map_err(|e| anyhow::anyhow!("READ of {trigger}: {e}"))?;
    println!("Feed status (READ): {}", serde_json::to_string_pretty(&read["status"])?);
    Ok(())
}

/// Reads `packages.<PACKAGE>` of manifest.yaml: whether it is public, and its actions.
fn read_manifest(path: &Path) -> anyhow::Result<(bool, Vec<ManifestAction>)> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let docs = YamlLoader::load_from_str(&text).with_context(|| format!("{} is not valid YAML", path.display()))?;
    let package = docs.first().map(|d| &d["packages"][PACKAGE]).filter(|p| p.as_hash().is_some());
    let package = package.with_context(|| format!("{}: no map at packages.{PACKAGE}", path.display()))?;
    let listed =
        package["actions"].as_hash().with_context(|| format!("{}: packages.{PACKAGE}.actions", path.display()))?;
    let mut actions = Vec::new();
    for (name, action) in listed {
        let name = name.as_str().context("manifest action names must be strings")?.to_string();
        let field = |what: &str, v: Option<i64>| {
            v.with_context(|| format!("manifest action {name}: {what} must be an integer"))
        };
        let kind = match (action["native"].as_bool(), action["runtime"].as_str()) {
            (Some(true), _) => "blackbox".to_string(),
            (_, Some(runtime)) => runtime.to_string(),
            _ => bail!("manifest action {name}: needs a runtime or native: true"),
        };
        let mut annotations = Vec::new();
        for (key, value) in action["annotations"].as_hash().into_iter().flatten() {
            let key =
                key.as_str().with_context(|| format!("manifest action {name}: annotation keys must be strings"))?;
            annotations.push(json!({ "key": key, "value": yaml_to_json(value) }));
        }
        // `web:` becomes the annotations `wsk action update --web MODE` sets.
        let web = match &action["web"] {
            Yaml::Boolean(b) => b.to_string(),
            Yaml::String(s) => s.clone(),
            _ => String::new(),
        };
        let web_keys: &[&str] = match web.as_str() {
            "raw" => &["web-export", "raw-http", "final"],
            "true" | "yes" => &["web-export", "final"],
            _ => &[],
        };
        annotations.extend(web_keys.iter().map(|key| json!({ "key": key, "value": true })));
        let timeout_ms = field("limits.timeout", action["limits"]["timeout"].as_i64())?;
        let memory_mb = field("limits.memorySize", action["limits"]["memorySize"].as_i64())?;
        actions.push(ManifestAction { name, kind, timeout_ms, memory_mb, annotations });
    }
    Ok((package["public"].as_bool() == Some(true), actions))
}

fn yaml_to_json(value: &Yaml) -> Value {
    match value {
        Yaml::Boolean(b) => json!(b),
        Yaml::Integer(i) => json!(i),
        Yaml::String(s) | Yaml::Real(s) => json!(s),
        _ => Value::Null,
    }
}

/// What a demo changes in the deployment of the manifest's package.
#[derive(Default)]
struct Deployment {
    /// The package's parameters (`[{key, value}]`; null: none).
    parameters: Value,
    /// (action, binary) pairs: the action is deployed from that binary instead of its own.
    binaries: Vec<(&'static str, &'static str)>,
}

/// Deploys the package into the system namespace (shared, as an operator installs it) with each
/// action's binary built from source in place of its `dist/<name>.zip`.
fn deploy(
    system: &Client,
    bin_dir: &Path,
    public: bool,
    actions: &[ManifestAction],
    deployment: &Deployment,
) -> anyhow::Result<()> {
    let package = QualifiedName::new(SYSTEM_NAMESPACE, None, PACKAGE);
    let mut body = json!({ "publish": public });
    if !deployment.parameters.is_null() {
        body["parameters"] = deployment.parameters.clone();
    }
    system.put_package(&package, &body, true)?;
    for action in actions {
        let substitute = deployment.binaries.iter().find(|(name, _)| *name == action.name).map(|(_, bin)| *bin);
        let binary = binary(bin_dir, substitute.unwrap_or(&action.name))?;
        let mut body = action_body(&binary, &action.kind, json!(action.annotations))?;
        body["limits"] = json!({ "timeout": action.timeout_ms, "memory": action.memory_mb });
        let name = QualifiedName::new(SYSTEM_NAMESPACE, Some(PACKAGE), &action.name);
        system.put_action(&name, &body, true).with_context(|| format!("deploying action {name}"))?;
    }
    Ok(())
}

/// A binary next to the sandbox binary.
fn binary(bin_dir: &Path, name: &str) -> anyhow::Result<PathBuf> {
    let path = bin_dir.join(name);
    if !path.is_file() {
        bail!("{} is missing: build it first (bash deploy/sandbox.sh does)", path.display());
    }
    Ok(path)
}

fn names(actions: &[ManifestAction]) -> String {
    actions.iter().map(|a| a.name.as_str()).collect::<Vec<_>>().join(", ")
}

/// Changes the bucket, then advances the alarm once and waits for every resulting activation.
#[allow(clippy::print_stdout)]
fn step(world: &World, what: &str, change: impl FnOnce() -> anyhow::Result<()>) -> anyhow::Result<()> {
    change().with_context(|| what.to_string())?;
    let fired = world.emu.fire_alarms();
    if !world.emu.wait_idle(POLL_LIMIT) {
        bail!("the emulator did not go idle within {POLL_LIMIT:?} after: {what}");
    }
    let statuses: Vec<String> = fired.iter().map(|(trigger, status)| format!("{trigger} -> HTTP {status}")).collect();
    println!("Step: {what}; alarm fired ({})", statuses.join(", "));
    Ok(())
}

/// Where `--keep` users find the events.
#[allow(clippy::print_stdout)]
fn print_activations_hint() {
    println!(
        "Each event is the echo action's result (response.result.echo) in the activation records:
  curl -s $OW_APIHOST/__emulator/activations/{USER}"
    );
}

/// How to reach the emulator and moto while `--keep` waits.
#[allow(clippy::print_stdout)]
fn print_instructions(world: &World, moto: &Moto, trigger: &str) {
    println!(
        "
The sandbox keeps running; the keys below are throwaway local keys. Press Ctrl-C to stop.

OpenWhisk emulator (namespace {USER}):
  export OW_APIHOST={url} OW_AUTH={key}
  wsk --apihost $OW_APIHOST --auth $OW_AUTH trigger get {trigger}
  wsk --apihost $OW_APIHOST --auth $OW_AUTH activation list recorder
  curl -s -u $OW_AUTH $OW_APIHOST/api/v1/namespaces/{USER}/triggers
Local S3 (moto, verifying SigV4), bucket {BUCKET}:
  export AWS_ENDPOINT_URL={endpoint} AWS_DEFAULT_REGION={REGION}
  export AWS_ACCESS_KEY_ID={access} AWS_SECRET_ACCESS_KEY={secret}
  aws s3 cp ./some-file s3://{BUCKET}/some-file",
        url = world.emu.url(),
        key = world.user_key,
        endpoint = moto.endpoint(),
        access = moto.access_key_id(),
        secret = moto.secret_access_key(),
    );
}

extern "C" fn on_signal(_signal: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// Blocks until SIGINT (Ctrl-C) or SIGTERM, so `main` returns and the servers shut down cleanly.
fn wait_for_signal() {
    let handler = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe, and it is a
    // plain `extern "C" fn` that lives for the whole program.
    #[allow(unsafe_code)]
    unsafe {
        libc::signal(libc::SIGINT, handler);
        libc::signal(libc::SIGTERM, handler);
    }
    while !STOP.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(200));
    }
}
