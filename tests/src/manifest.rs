//! `manifest.yaml` read and deployed into the emulator the way `wskdeploy -m manifest.yaml`
//! does: the package, and each action with the manifest's kind, limits and annotations (`web:`
//! as the annotations `wsk action update --web` sets). Every rig and the sandbox deploy through
//! [`Manifest::deploy`], so no test carries a copy of what the manifest says about an action.
//!
//! What a rig may change is what an operator may change without editing the manifest (the
//! package name and its parameters, `--native`'s kind) plus the binary an action runs: a test
//! fixture in place of the shipped one (the `sns-test-receive` build, a test-only source).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{bail, Context as _};
use serde_json::{json, Value};
use yaml_rust2::{Yaml, YamlLoader};

use crate::emulator_support;
use crate::world::{workspace_bin, PACKAGE};
use ow_emulator::SYSTEM_NAMESPACE;
use owfeed::openwhisk::{Client, QualifiedName};

/// The package `manifest.yaml` declares.
#[derive(Clone, Debug)]
pub struct Manifest {
    /// `public:` (deployed as `publish`: a shared package).
    pub public: bool,
    /// The actions, in the manifest's order.
    pub actions: Vec<ManifestAction>,
}

/// One action of the manifest, as OpenWhisk deploys it.
#[derive(Clone, Debug, PartialEq)]
pub struct ManifestAction {
    /// The action's name in the package.
    pub name: String,
    /// `runtime:`, or `blackbox` for `native: true`.
    pub kind: String,
    /// `limits.timeout`, in milliseconds.
    pub timeout_ms: i64,
    /// `limits.memorySize`, in MB.
    pub memory_mb: i64,
    /// `annotations:` and those `web:` implies, as `[{key, value}]`.
    pub annotations: Vec<Value>,
}

/// What a deployment changes in the manifest's: which actions, from which binaries, where.
#[derive(Clone, Debug, Default)]
pub struct Deployment {
    /// The package deployed into (`None`: the manifest's, [`PACKAGE`]).
    pub package: Option<String>,
    /// The package's parameters (`[{key, value}]`; null: none).
    pub parameters: Value,
    /// The actions deployed and the binary each runs; the manifest's other actions are left out.
    pub actions: Vec<(String, PathBuf)>,
    /// Every action's kind instead of the manifest's (`blackbox`, as `install.sh --native`).
    pub kind: Option<String>,
}

impl Deployment {
    /// The named manifest actions, each running the workspace's binary of that name.
    pub fn of(names: &[&str]) -> Deployment {
        Deployment::with(names.iter().map(|name| (*name, workspace_bin(name))))
    }

    /// Manifest actions, each running the given binary.
    pub fn with<'a>(actions: impl IntoIterator<Item = (&'a str, PathBuf)>) -> Deployment {
        let actions = actions.into_iter().map(|(name, binary)| (name.to_string(), binary)).collect();
        Deployment { actions, ..Deployment::default() }
    }
}

impl Manifest {
    /// The repository's manifest.yaml, read once; panics (a broken manifest fails every test
    /// that deploys, naming the problem).
    pub fn ours() -> &'static Manifest {
        static OURS: OnceLock<Manifest> = OnceLock::new();
        OURS.get_or_init(|| {
            let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifest.yaml");
            Manifest::read(&path).unwrap_or_else(|e| panic!("{e:#}"))
        })
    }

    /// Reads `packages.<PACKAGE>` of a manifest file.
    pub fn read(path: &Path) -> anyhow::Result<Manifest> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let docs = YamlLoader::load_from_str(&text).with_context(|| format!("{} is not valid YAML", path.display()))?;
        let package = docs.first().map(|d| &d["packages"][PACKAGE]).filter(|p| p.as_hash().is_some());
        let package = package.with_context(|| format!("{}: no map at packages.{PACKAGE}", path.display()))?;
        let listed =
            package["actions"].as_hash().with_context(|| format!("{}: packages.{PACKAGE}.actions", path.display()))?;
        let mut actions = Vec::new();
        for (name, action) in listed {
            let name = name.as_str().context("manifest action names must be strings")?.to_string();
            actions.push(ManifestAction::read(name, action)?);
        }
        Ok(Manifest { public: package["public"].as_bool() == Some(true), actions })
    }

    /// The action `name`, or an error naming it.
    pub fn action(&self, name: &str) -> anyhow::Result<&ManifestAction> {
        self.actions.iter().find(|a| a.name == name).with_context(|| format!("manifest.yaml has no action {name}"))
    }

    /// The body of `PUT /actions/…` for action `name` running `binary`: the manifest's kind,
    /// limits and annotations.
    pub fn action_body(&self, name: &str, binary: &Path) -> anyhow::Result<Value> {
        self.action(name)?.body(binary, None)
    }

    /// Deploys the package (into the system namespace, as an operator installs it) and the
    /// actions `deployment` names.
    pub fn deploy(&self, system: &Client, deployment: &Deployment) -> anyhow::Result<()> {
        let package = deployment.package.as_deref().unwrap_or(PACKAGE);
        let mut body = json!({ "publish": self.public });
        if !deployment.parameters.is_null() {
            body["parameters"] = deployment.parameters.clone();
        }
        system.put_package(&QualifiedName::new(SYSTEM_NAMESPACE, None, package), &body, true)?;
        for (name, binary) in &deployment.actions {
            self.put_action(system, package, name, binary, deployment.kind.as_deref())?;
        }
        Ok(())
    }

    /// Deploys (or replaces) action `name` of a deployed `package`, running `binary`, with the
    /// manifest's kind unless `kind` says otherwise; the package stays as it is.
    pub fn put_action(
        &self,
        system: &Client,
        package: &str,
        name: &str,
        binary: &Path,
        kind: Option<&str>,
    ) -> anyhow::Result<()> {
        let body = self.action(name)?.body(binary, kind)?;
        let qualified = QualifiedName::new(SYSTEM_NAMESPACE, Some(package), name);
        system.put_action(&qualified, &body, true).with_context(|| format!("deploying action {qualified}"))?;
        Ok(())
    }
}

impl ManifestAction {
    fn read(name: String, action: &Yaml) -> anyhow::Result<ManifestAction> {
        let integer = |what: &str, v: Option<i64>| {
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
        annotations.extend(web_annotations(&action["web"]).iter().map(|key| json!({ "key": key, "value": true })));
        let timeout_ms = integer("limits.timeout", action["limits"]["timeout"].as_i64())?;
        let memory_mb = integer("limits.memorySize", action["limits"]["memorySize"].as_i64())?;
        Ok(ManifestAction { name, kind, timeout_ms, memory_mb, annotations })
    }

    /// The annotation `key`'s value, if the action has it.
    pub fn annotation(&self, key: &str) -> Option<&Value> {
        self.annotations.iter().find(|a| a["key"] == key).map(|a| &a["value"])
    }

    fn body(&self, binary: &Path, kind: Option<&str>) -> anyhow::Result<Value> {
        let mut body = emulator_support::action_body(binary, kind.unwrap_or(&self.kind))?;
        body["limits"] = json!({ "timeout": self.timeout_ms, "memory": self.memory_mb });
        body["annotations"] = json!(self.annotations);
        Ok(body)
    }
}

/// The annotations `wsk action update --web MODE` sets for the manifest's `web:` (none when
/// the action is no web action).
fn web_annotations(web: &Yaml) -> &'static [&'static str] {
    let mode = match web {
        Yaml::Boolean(b) => b.to_string(),
        Yaml::String(s) => s.clone(),
        _ => String::new(),
    };
    match mode.as_str() {
        "raw" => &["web-export", "raw-http", "final"],
        "true" | "yes" => &["web-export", "final"],
        _ => &[],
    }
}

fn yaml_to_json(value: &Yaml) -> Value {
    match value {
        Yaml::Boolean(b) => json!(b),
        Yaml::Integer(i) => json!(i),
        Yaml::String(s) | Yaml::Real(s) => json!(s),
        _ => Value::Null,
    }
}
