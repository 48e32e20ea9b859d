//! Shipping checks: the action crates under actions/, manifest.yaml and the deploy/ scripts
//! describe the same actions the same way.
//!
//! These tests read files and run deploy/install.sh and deploy/uninstall.sh with `--help` and
//! `--dry-run`. They build no zip (deploy/build.sh checks the zips it makes; .ci/run runs it)
//! and talk to no OpenWhisk, but for one: what the suite's rigs deploy into the emulator
//! (`feed_tests::manifest`) is compared with this module's own reading of manifest.yaml.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use yaml_rust2::{Yaml, YamlLoader};

use feed_tests::emulator_support::Api;
use feed_tests::world::{World, USER};
use ow_emulator::{Config, SYSTEM_NAMESPACE};

/// The OpenWhisk package manifest.yaml declares.
const PACKAGE: &str = "owfeed";

/// Kinds our static binaries run on; an action that names none must say `native: true`.
const RUNTIMES: &[&str] = &["rust:1.34"];

/// OpenWhisk's default per-action limits (operators may narrow them; we stay inside).
const TIMEOUT_MS: std::ops::RangeInclusive<i64> = 100..=300_000;
const MEMORY_MB: std::ops::RangeInclusive<i64> = 128..=512;

/// The options deploy/install.sh must accept and document in `--help`.
const INSTALL_OPTIONS: &[&str] =
    &["--package", "--namespace", "--dist", "--native", "--apihost", "--auth", "--dry-run", "--help"];

/// The options deploy/uninstall.sh must accept and document in `--help`.
const UNINSTALL_OPTIONS: &[&str] = &["--package", "--namespace", "--apihost", "--auth", "--dry-run", "--help"];

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent directory").to_path_buf()
}

/// The names of the action crates: every directory under actions/ with a Cargo.toml.
fn action_crates() -> BTreeSet<String> {
    let dir = repo_root().join("actions");
    let entries = fs::read_dir(&dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
    entries
        .map(|entry| entry.expect("readable actions/ entry").path())
        .filter(|path| path.join("Cargo.toml").is_file())
        .map(|path| path.file_name().expect("directory name").to_string_lossy().into_owned())
        .collect()
}

/// The `packages.owfeed` map of manifest.yaml.
fn manifest_package() -> Yaml {
    let path = repo_root().join("manifest.yaml");
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let docs = YamlLoader::load_from_str(&text).unwrap_or_else(|e| panic!("manifest.yaml is not valid YAML: {e}"));
    assert_eq!(docs.len(), 1, "manifest.yaml must hold exactly one YAML document");
    let package = docs[0]["packages"][PACKAGE].clone();
    assert!(package.as_hash().is_some(), "manifest.yaml has no map at packages.{PACKAGE}");
    package
}

/// The actions of manifest.yaml by name.
fn manifest_actions() -> BTreeMap<String, Yaml> {
    let package = manifest_package();
    let actions = package["actions"].as_hash().expect("manifest.yaml: packages.owfeed.actions must be a map");
    actions
        .iter()
        .map(|(name, action)| (name.as_str().expect("action names are strings").to_owned(), action.clone()))
        .collect()
}

/// How one action is deployed: what both manifest.yaml and install.sh must say alike.
#[derive(Debug, PartialEq, Eq)]
struct Deployment {
    zip: String,
    kind: String,
    timeout_ms: String,
    memory_mb: String,
    annotations: BTreeMap<String, String>,
}

/// The annotations OpenWhisk gives a web action of this mode (`web:` in manifest.yaml, `--web`
/// for wsk); none for a mode that is not a web action.
fn web_annotations(mode: &str) -> BTreeMap<String, String> {
    let keys: &[&str] = match mode {
        "raw" => &["web-export", "raw-http", "final"],
        "true" | "yes" => &["web-export", "final"],
        _ => &[],
    };
    keys.iter().map(|key| (key.to_string(), "true".to_string())).collect()
}

/// The deployment manifest.yaml asks for, with `dist` standing for the zip directory.
fn deployment_in_manifest(name: &str, action: &Yaml, dist: &str) -> Deployment {
    let text = |value: &Yaml| match value {
        Yaml::String(s) => s.clone(),
        Yaml::Integer(i) => i.to_string(),
        Yaml::Boolean(b) => b.to_string(),
        other => panic!("manifest.yaml: action {name} has an unexpected value {other:?}"),
    };
    let function = text(&action["function"]);
    let mut annotations = action["annotations"]
        .as_hash()
        .map(|hash| hash.iter().map(|(k, v)| (text(k), text(v))).collect::<BTreeMap<_, _>>())
        .unwrap_or_default();
    if !action["web"].is_badvalue() {
        annotations.extend(web_annotations(&text(&action["web"])));
    }
    Deployment {
        zip: function.replacen("dist", dist, 1),
        kind: text(&action["runtime"]),
        timeout_ms: text(&action["limits"]["timeout"]),
        memory_mb: text(&action["limits"]["memorySize"]),
        annotations,
    }
}

/// Parses the `+ wsk action update PKG/NAME ZIP --kind K --timeout T --memory M -a K V…` lines
/// install.sh prints, by action name.
fn deployments_printed(stdout: &str, package: &str) -> BTreeMap<String, Deployment> {
    let mut found = BTreeMap::new();
    for line in stdout.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let ["+", "wsk", "action", "update", qualified, zip, rest @ ..] = words.as_slice() else { continue };
        let name = qualified.strip_prefix(&format!("{package}/")).unwrap_or_else(|| panic!("bad name in: {line}"));
        let mut deployment = Deployment {
            zip: zip.to_string(),
            kind: String::new(),
            timeout_ms: String::new(),
            memory_mb: String::new(),
            annotations: BTreeMap::new(),
        };
        let mut rest = rest.iter();
        while let Some(flag) = rest.next() {
            let mut value = || rest.next().unwrap_or_else(|| panic!("{flag} has no value in: {line}")).to_string();
            match *flag {
                "--kind" => deployment.kind = value(),
                "--timeout" => deployment.timeout_ms = value(),
                "--memory" => deployment.memory_mb = value(),
                "--web" => deployment.annotations.extend(web_annotations(&value())),
                "-a" => {
                    let key = value();
                    deployment.annotations.insert(key, value());
                }
                other => panic!("unexpected flag {other} in: {line}"),
            }
        }
        found.insert(name.to_owned(), deployment);
    }
    found
}

/// Runs `bash deploy/<script> ARGS…` with WSK unset to its default.
fn run_script(script: &str, args: &[&str]) -> Output {
    let path = repo_root().join("deploy").join(script);
    Command::new("bash")
        .arg(&path)
        .args(args)
        .env_remove("WSK")
        .output()
        .unwrap_or_else(|e| panic!("cannot run bash {}: {e}", path.display()))
}

#[track_caller]
fn stdout_of_success(output: &Output) -> String {
    assert!(
        output.status.success(),
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).expect("utf-8 output")
}

/// A directory of empty `<action>.zip` files, enough for install.sh's checks; removed on drop.
struct FakeDist(PathBuf);

impl FakeDist {
    fn new(label: &str, actions: &BTreeSet<String>) -> FakeDist {
        let dir = std::env::temp_dir().join(format!("owfeed-shipping-{label}-{}", std::process::id()));
        fs::create_dir_all(&dir).expect("create temp dist");
        for action in actions {
            fs::write(dir.join(format!("{action}.zip")), b"").expect("write temp zip");
        }
        FakeDist(dir)
    }

    fn path(&self) -> &str {
        self.0.to_str().expect("utf-8 temp path")
    }
}

impl Drop for FakeDist {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

#[test]
fn every_action_crate_is_a_manifest_action_and_back() {
    let crates = action_crates();
    let in_manifest: BTreeSet<String> = manifest_actions().into_keys().collect();
    assert!(!crates.is_empty(), "no action crates under actions/");
    assert_eq!(crates, in_manifest, "action crates under actions/ (left) vs actions in manifest.yaml (right)");
}

#[test]
fn manifest_package_is_public() {
    assert_eq!(manifest_package()["public"].as_bool(), Some(true), "packages.{PACKAGE}.public must be true");
}

#[test]
fn manifest_actions_ship_their_zip_on_a_known_runtime_within_limits() {
    let mut problems = Vec::new();
    for (name, action) in manifest_actions() {
        let function = action["function"].as_str();
        if function != Some(format!("dist/{name}.zip").as_str()) {
            problems.push(format!("{name}: function is {function:?}, expected dist/{name}.zip"));
        }
        let native = action["native"].as_bool() == Some(true);
        match action["runtime"].as_str() {
            Some(runtime) if RUNTIMES.contains(&runtime) => {}
            None if native => {}
            runtime => problems.push(format!("{name}: runtime {runtime:?} is none of {RUNTIMES:?}")),
        }
        match action["limits"]["timeout"].as_i64() {
            Some(ms) if TIMEOUT_MS.contains(&ms) => {}
            ms => problems.push(format!("{name}: limits.timeout {ms:?} is not an integer in {TIMEOUT_MS:?} ms")),
        }
        match action["limits"]["memorySize"].as_i64() {
            Some(mb) if MEMORY_MB.contains(&mb) => {}
            mb => problems.push(format!("{name}: limits.memorySize {mb:?} is not an integer in {MEMORY_MB:?} MB")),
        }
    }
    assert!(problems.is_empty(), "manifest.yaml:\n{}", problems.join("\n"));
}

#[test]
fn manifest_annotations_and_web_modes_are_valid_and_feed_is_never_an_action_key() {
    let mut problems = Vec::new();
    for (name, action) in manifest_actions() {
        // wskdeploy ignores an action-level `feed:`; only the annotation makes a feed.
        if !action["feed"].is_badvalue() {
            problems.push(format!("{name}: `feed` must sit under annotations, not on the action"));
        }
        let web = &action["web"];
        if !web.is_badvalue() && !matches!(web.as_str(), Some("raw" | "yes" | "no")) && web.as_bool().is_none() {
            problems.push(format!("{name}: web is {web:?}, expected true, false, yes, no or raw"));
        }
        for key in ["feed", "provide-api-key"] {
            let value = &action["annotations"][key];
            if !value.is_badvalue() && value.as_bool() != Some(true) {
                problems.push(format!("{name}: annotation {key} is {value:?}, expected the boolean true"));
            }
        }
    }
    assert!(problems.is_empty(), "manifest.yaml:\n{}", problems.join("\n"));
}

#[test]
fn s3_feed_action_is_a_feed_that_gets_the_api_key() {
    let actions = manifest_actions();
    let changes = actions.get("changes").expect("manifest.yaml declares the S3 feed action `changes`");
    assert_eq!(changes["annotations"]["feed"].as_bool(), Some(true));
    assert_eq!(changes["annotations"]["provide-api-key"].as_bool(), Some(true));
}

/// Every rig deploys through `feed_tests::manifest`: each action it puts into the emulator has
/// the kind, limits and annotations (those `web:` implies included) that this module's own
/// reading of manifest.yaml gives, as install.sh's are checked below.
#[test]
fn the_suite_deploys_every_manifest_action_as_the_manifest_says() {
    let actions = manifest_actions();
    let names: Vec<&str> = actions.keys().map(String::as_str).collect();
    let w = World::with_actions(Config::with_namespaces(&[USER]), "shipping", &names);
    let api = Api::new(&w.emu.url(), w.emu.key(SYSTEM_NAMESPACE).as_deref());
    let text = |v: &Value| v.as_str().map_or_else(|| v.to_string(), str::to_string);
    for (name, action) in &actions {
        let expected = deployment_in_manifest(name, action, "dist");
        // `code=false`: the action without its zip (apache/openwhisk core/controller/src/main/
        // scala/org/apache/openwhisk/core/controller/Actions.scala, `fetch`: `parameter('code ? true)`).
        let got = api.get(&format!("/api/v1/namespaces/{SYSTEM_NAMESPACE}/actions/{PACKAGE}/{name}?code=false")).json();
        let annotations = got["annotations"].as_array().expect("annotations");
        let deployed = Deployment {
            zip: expected.zip.clone(),
            kind: text(&got["exec"]["kind"]),
            timeout_ms: text(&got["limits"]["timeout"]),
            memory_mb: text(&got["limits"]["memory"]),
            // `exec`: the annotation OpenWhisk adds to every action it stores.
            annotations: annotations
                .iter()
                .filter(|a| a["key"] != "exec")
                .map(|a| (text(&a["key"]), text(&a["value"])))
                .collect(),
        };
        assert_eq!(deployed, expected, "{name}: deployed by the suite (left) vs manifest.yaml (right)");
    }
}

#[test]
fn install_help_documents_every_option() {
    let help = stdout_of_success(&run_script("install.sh", &["--help"]));
    let missing: Vec<_> = INSTALL_OPTIONS.iter().filter(|option| !help.contains(*option)).collect();
    assert!(missing.is_empty(), "install.sh --help does not mention {missing:?}:\n{help}");
}

#[test]
fn uninstall_help_documents_every_option() {
    let help = stdout_of_success(&run_script("uninstall.sh", &["--help"]));
    let missing: Vec<_> = UNINSTALL_OPTIONS.iter().filter(|option| !help.contains(*option)).collect();
    assert!(missing.is_empty(), "uninstall.sh --help does not mention {missing:?}:\n{help}");
}

#[test]
fn install_deploys_every_manifest_action_as_the_manifest_says() {
    let dist = FakeDist::new("install", &action_crates());
    let stdout = stdout_of_success(&run_script("install.sh", &["--dry-run", "--dist", dist.path()]));
    assert!(stdout.contains(&format!("+ wsk package update {PACKAGE} --shared yes")), "{stdout}");
    let expected: BTreeMap<_, _> = manifest_actions()
        .iter()
        .map(|(name, action)| (name.clone(), deployment_in_manifest(name, action, dist.path())))
        .collect();
    assert_eq!(deployments_printed(&stdout, PACKAGE), expected, "install.sh (left) vs manifest.yaml (right)");
}

#[test]
fn install_into_another_package_and_namespace_qualifies_every_name() {
    let dist = FakeDist::new("namespace", &action_crates());
    let args = ["--dry-run", "--dist", dist.path(), "--package", "feeds2", "--namespace", "team"];
    let stdout = stdout_of_success(&run_script("install.sh", &args));
    assert!(stdout.contains("+ wsk package update /team/feeds2 --shared yes"), "{stdout}");
    assert_eq!(deployments_printed(&stdout, "/team/feeds2").len(), manifest_actions().len(), "{stdout}");
}

#[test]
fn install_native_deploys_blackbox_instead_of_a_kind() {
    let dist = FakeDist::new("native", &action_crates());
    let stdout = stdout_of_success(&run_script("install.sh", &["--dry-run", "--native", "--dist", dist.path()]));
    let updates: Vec<&str> = stdout.lines().filter(|line| line.starts_with("+ wsk action update")).collect();
    assert_eq!(updates.len(), manifest_actions().len(), "{stdout}");
    assert!(updates.iter().all(|line| line.contains(" --native ") && !line.contains("--kind")), "{stdout}");
}

#[test]
fn install_never_prints_the_auth_key() {
    let dist = FakeDist::new("auth", &action_crates());
    let key = "23bc46b1-71f6-4ed5-8c54-816aa4f8c502:s3cr3t-shipping-key";
    let output = run_script("install.sh", &["--dry-run", "--dist", dist.path(), "--auth", key]);
    let stdout = stdout_of_success(&output);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stdout.contains("--auth ***"), "{stdout}");
    assert!(!stdout.contains("s3cr3t") && !stderr.contains("s3cr3t"), "auth key printed:\n{stdout}\n{stderr}");
}

#[test]
fn install_without_zips_says_to_run_the_build() {
    let missing = std::env::temp_dir().join(format!("owfeed-shipping-missing-{}", std::process::id()));
    let output = run_script("install.sh", &["--dry-run", "--dist", missing.to_str().expect("utf-8 temp path")]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "install.sh succeeded without a dist directory");
    assert!(stderr.contains("deploy/build.sh"), "stderr does not point to deploy/build.sh:\n{stderr}");
}

#[test]
fn uninstall_deletes_every_action_then_the_package() {
    let stdout = stdout_of_success(&run_script("uninstall.sh", &["--dry-run"]));
    let mut expected: Vec<String> =
        manifest_actions().keys().map(|name| format!("+ wsk action delete {PACKAGE}/{name}")).collect();
    expected.sort();
    let mut deletes: Vec<&str> = stdout.lines().filter(|line| line.starts_with("+ wsk")).collect();
    assert_eq!(deletes.pop(), Some(format!("+ wsk package delete {PACKAGE}").as_str()), "{stdout}");
    deletes.sort();
    assert_eq!(deletes, expected, "{stdout}");
}
