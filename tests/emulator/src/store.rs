//! The entity store: triggers, rules, packages, actions and activation records, all in memory.
//!
//! It owns the document shapes the REST API returns (`to_json`) and the small helpers on
//! key/value lists. It does no HTTP and runs nothing: routing lives in `server`, running in `invoker`.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or(0)
}

/// Random lowercase hex string of `bytes` random bytes (activation and transaction ids).
pub(crate) fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    // getrandom only fails on exotic platforms; a fixed fallback still yields a usable id
    if getrandom::fill(&mut buf).is_err() {
        buf.iter_mut().enumerate().for_each(|(i, b)| *b = i as u8);
    }
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// A fresh `uuid:key` credential in the shape OpenWhisk uses (36-char uuid, 64-char key).
pub(crate) fn random_credential() -> String {
    let h = random_hex(16);
    let uuid = format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32]);
    format!("{uuid}:{}", random_hex(32))
}

/// Turns a `[{"key":k,"value":v}]` list into a map (later entries win).
pub(crate) fn kv_to_map(list: &Value) -> Map<String, Value> {
    let mut map = Map::new();
    if let Some(items) = list.as_array() {
        for item in items {
            if let Some(k) = item.get("key").and_then(Value::as_str) {
                map.insert(k.to_string(), item.get("value").cloned().unwrap_or(Value::Null));
            }
        }
    }
    map
}

/// Looks up one key in a key/value list.
pub(crate) fn kv_get<'a>(list: &'a Value, key: &str) -> Option<&'a Value> {
    list.as_array()?.iter().rev().find(|i| i.get("key").and_then(Value::as_str) == Some(key))?.get("value")
}

/// True when an annotation is set to a truthy value (`true`, `"true"`, `"yes"`, non-zero).
pub(crate) fn kv_truthy(list: &Value, key: &str) -> bool {
    match kv_get(list, key) {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => matches!(s.to_ascii_lowercase().as_str(), "true" | "yes" | "raw"),
        Some(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0),
        _ => false,
    }
}

/// Checks that a value is a key/value list; `None` (absent) is an empty list.
pub(crate) fn validate_kv(field: &str, v: Option<&Value>) -> Result<Value, String> {
    let Some(v) = v else { return Ok(json!([])) };
    if v.is_null() {
        return Ok(json!([]));
    }
    let items = v.as_array().ok_or_else(|| format!("'{field}' must be a list of {{key, value}} objects"))?;
    for item in items {
        if !item.get("key").is_some_and(Value::is_string) {
            return Err(format!("'{field}' entries must be objects with a string 'key'"));
        }
    }
    Ok(v.clone())
}

/// Bumps the patch part of a semantic version ("0.0.1" -> "0.0.2").
pub(crate) fn bump_version(v: &str) -> String {
    let mut parts: Vec<u64> = v.split('.').map(|p| p.parse().unwrap_or(0)).collect();
    parts.resize(3, 0);
    parts[2] += 1;
    format!("{}.{}.{}", parts[0], parts[1], parts[2])
}

/// Fields every entity document carries.
#[derive(Clone, Debug)]
pub(crate) struct Meta {
    /// Namespace path: `ns` or `ns/pkg` for packaged actions.
    pub namespace: String,
    pub name: String,
    pub version: String,
    pub publish: bool,
    pub annotations: Value,
    pub parameters: Value,
    pub updated: u64,
}

impl Meta {
    pub fn new(namespace: &str, name: &str) -> Meta {
        Meta {
            namespace: namespace.to_string(),
            name: name.to_string(),
            version: "0.0.1".to_string(),
            publish: false,
            annotations: json!([]),
            parameters: json!([]),
            updated: now_ms(),
        }
    }

    fn to_json(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("namespace".into(), json!(self.namespace));
        m.insert("name".into(), json!(self.name));
        m.insert("version".into(), json!(self.version));
        m.insert("publish".into(), json!(self.publish));
        m.insert("annotations".into(), self.annotations.clone());
        m.insert("parameters".into(), self.parameters.clone());
        m.insert("updated".into(), json!(self.updated));
        m
    }
}

/// A rule's entry inside its trigger document.
#[derive(Clone, Debug)]
pub(crate) struct RuleLink {
    /// Fully qualified action, `/ns/[pkg/]a`.
    pub action: String,
    /// `active` or `inactive`.
    pub status: String,
}

/// A trigger; the statuses of its rules live here as in OpenWhisk.
#[derive(Clone, Debug)]
pub(crate) struct Trigger {
    pub meta: Meta,
    /// Key: rule as `ns/r`.
    pub rules: BTreeMap<String, RuleLink>,
}

/// A rule links a trigger to an action.
#[derive(Clone, Debug)]
pub(crate) struct Rule {
    pub meta: Meta,
    /// `/ns/t`.
    pub trigger: String,
    /// `/ns/[pkg/]a`.
    pub action: String,
}

/// A package or a package binding.
#[derive(Clone, Debug)]
pub(crate) struct Package {
    pub meta: Meta,
    /// `(namespace, name)` of the bound package.
    pub binding: Option<(String, String)>,
}

/// What runs when an action is invoked.
#[derive(Clone, Debug)]
pub(crate) enum Code {
    /// A zip (base64) with a top-level `exec`, run per `kind`.
    Zip { kind: String, code: String },
    /// A feed action of the built-in alarms package.
    Alarm(crate::alarms::AlarmKind),
}

/// An action.
#[derive(Clone, Debug)]
pub(crate) struct Action {
    pub meta: Meta,
    pub code: Code,
    pub timeout_ms: u64,
    pub memory_mb: u64,
}

impl Action {
    pub fn kind(&self) -> &str {
        match &self.code {
            Code::Zip { kind, .. } => kind,
            Code::Alarm(_) => "nodejs:20",
        }
    }

    /// `/ns/[pkg/]a`.
    pub fn fqn(&self) -> String {
        format!("/{}/{}", self.meta.namespace, self.meta.name)
    }

    pub fn limits(&self) -> Value {
        json!({"timeout": self.timeout_ms, "memory": self.memory_mb, "logs": 10, "concurrency": 1})
    }

    pub fn to_json(&self, with_code: bool) -> Value {
        let mut m = self.meta.to_json();
        let exec = match &self.code {
            Code::Zip { kind, code } if with_code => json!({"kind": kind, "binary": true, "code": code}),
            _ => json!({"kind": self.kind(), "binary": matches!(self.code, Code::Zip { .. })}),
        };
        m.insert("exec".into(), exec);
        m.insert("limits".into(), self.limits());
        Value::Object(m)
    }
}

impl Trigger {
    pub fn to_json(&self) -> Value {
        let mut m = self.meta.to_json();
        m.insert("limits".into(), json!({}));
        let mut rules = Map::new();
        for (name, link) in &self.rules {
            let (path, aname) = split_fqn(&link.action);
            rules.insert(name.clone(), json!({"action": {"name": aname, "path": path}, "status": link.status}));
        }
        m.insert("rules".into(), Value::Object(rules));
        Value::Object(m)
    }
}

impl Rule {
    pub fn to_json(&self, status: &str) -> Value {
        let mut m = self.meta.to_json();
        m.remove("parameters");
        let (tpath, tname) = split_fqn(&self.trigger);
        let (apath, aname) = split_fqn(&self.action);
        m.insert("trigger".into(), json!({"name": tname, "path": tpath}));
        m.insert("action".into(), json!({"name": aname, "path": apath}));
        m.insert("status".into(), json!(status));
        Value::Object(m)
    }
}

/// Splits `/ns/pkg/a` into (`ns/pkg`, `a`).
pub(crate) fn split_fqn(fqn: &str) -> (String, String) {
    let t = fqn.trim_start_matches('/');
    match t.rsplit_once('/') {
        Some((p, n)) => (p.to_string(), n.to_string()),
        None => (String::new(), t.to_string()),
    }
}

/// All entities and activation records of the emulator.
#[derive(Default)]
pub(crate) struct Store {
    /// Key `ns/t`.
    pub triggers: BTreeMap<String, Trigger>,
    /// Key `ns/r`.
    pub rules: BTreeMap<String, Rule>,
    /// Key `ns/p`.
    pub packages: BTreeMap<String, Package>,
    /// Key `ns/a` or `ns/pkg/a`.
    pub actions: BTreeMap<String, Action>,
    /// Activation records in creation order.
    pub activations: Vec<Value>,
}

impl Store {
    /// Which collection already uses the name `ns/name`, if any (names are unique per namespace).
    pub fn collection_of(&self, key: &str) -> Option<&'static str> {
        if self.triggers.contains_key(key) {
            Some("triggers")
        } else if self.rules.contains_key(key) {
            Some("rules")
        } else if self.packages.contains_key(key) {
            Some("packages")
        } else if self.actions.contains_key(key) {
            Some("actions")
        } else {
            None
        }
    }

    pub fn package_json(&self, key: &str) -> Option<Value> {
        let p = self.packages.get(key)?;
        let mut m = p.meta.to_json();
        match &p.binding {
            Some((bns, bname)) => {
                // A binding shows the bound package's parameters merged under its own.
                let mut params = self
                    .packages
                    .get(&format!("{bns}/{bname}"))
                    .map(|t| kv_to_map(&t.meta.parameters))
                    .unwrap_or_default();
                params.extend(kv_to_map(&p.meta.parameters));
                let list: Vec<Value> = params.into_iter().map(|(k, v)| json!({"key": k, "value": v})).collect();
                m.insert("parameters".into(), Value::Array(list));
                m.insert("binding".into(), json!({"namespace": bns, "name": bname}));
            }
            None => {
                m.insert("binding".into(), json!({}));
                let prefix = format!("{key}/");
                let actions: Vec<Value> = self
                    .actions
                    .iter()
                    .filter(|(k, _)| k.starts_with(&prefix))
                    .map(|(_, a)| json!({"name": a.meta.name, "version": a.meta.version, "annotations": a.meta.annotations}))
                    .collect();
                m.insert("actions".into(), Value::Array(actions));
                m.insert("feeds".into(), json!([]));
            }
        }
        Some(Value::Object(m))
    }
}
