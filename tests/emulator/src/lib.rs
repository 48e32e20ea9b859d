//! An Apache OpenWhisk REST API emulator for tests and a local sandbox.
//!
//! It serves the controller API under `/api/v1` (triggers, rules, packages, actions, activations,
//! web actions) closely enough for the wsk CLI and the `openwhisk` npm client, and runs actions as
//! real processes: `rust:1.34` (and any non-blackbox kind) through the actionloop protocol, kind
//! `blackbox` through the dockerskeleton protocol. It does not compile source code, run sequences,
//! or emulate Docker isolation: actions run as local processes with an empty environment.
//!
//! # Use from tests
//! ```no_run
//! let emu = ow_emulator::Emulator::start(ow_emulator::Config::default()).unwrap();
//! let key = emu.key("guest").unwrap(); // "uuid:key" for Basic auth
//! let api_host = emu.url(); // "http://127.0.0.1:PORT", what actions get as __OW_API_HOST
//! emu.fire_alarms(); // fires every alarm trigger once, as if their time had come
//! emu.wait_idle(std::time::Duration::from_secs(10)); // rule-triggered invocations are asynchronous
//! # let _ = (key, api_host);
//! ```
//!
//! # Control over HTTP (no auth; loopback only)
//! - `POST /__emulator/alarms/fire` fires every alarm once; body `{"trigger":"/ns/t"}` fires one.
//!   Answers `{"fired":[{"trigger","status"}]}`.
//! - `GET /__emulator/alarms` lists the alarms (`{"/ns/t": {...READ result..., "nextFire": ms}}`).
//! - `GET /__emulator/activations/{ns}` lists that namespace's activation records (oldest first).
//! - `POST /__emulator/wait-idle?timeout_ms=N` answers `{"idle": bool}`.
//! - `POST /__emulator/faults` body a [`FaultRule`] as JSON (`delay_ms` > 0 delays instead of
//!   failing); `DELETE /__emulator/faults` clears them.
//! - `PUT /__emulator/fires-per-minute` body `{"limit": n}` or `{"limit": null}` (unlimited).
//! - `PUT /__emulator/invocation-limits` body `{"perMinute": n|null, "concurrent": n|null}`.
//! - `GET /__emulator/keys/{ns}` answers `{"namespace","key"}`.
//!
//! # Layout
//! - `server`: HTTP workers, routing, auth, entity CRUD, fire and invoke endpoints, fault injection.
//! - `store`: entity documents and activation records.
//! - `invoker`: containers (warm actionloop processes), blackbox runs, activation records.
//! - `alarms`: the built-in `/whisk.system/alarms` feed actions and their firing.
//! - `web`: web actions (`/api/v1/web/...`).

mod alarms;
mod invoker;
mod server;
mod store;
mod web;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Name of the system namespace that holds the shared alarms package.
pub const SYSTEM_NAMESPACE: &str = "whisk.system";

/// One namespace and its credential.
#[derive(Clone, Debug)]
pub struct NamespaceConfig {
    /// Namespace name, e.g. `guest`.
    pub name: String,
    /// `uuid:key`; `None` generates a random one.
    pub key: Option<String>,
}

/// Emulator settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// Port on 127.0.0.1; 0 picks a free one.
    pub port: u16,
    /// Namespaces with their keys; `whisk.system` is always added.
    pub namespaces: Vec<NamespaceConfig>,
    /// Trigger fires allowed per namespace per calendar minute; `None` is unlimited.
    pub fires_per_minute: Option<u32>,
    /// Action invocations (direct and rule-fired) per namespace: per calendar minute and in
    /// flight. OpenWhisk's defaults are 60 and 30; `None` (the default here) is unlimited.
    pub invocation_limits: InvocationLimits,
    /// Warm actionloop processes idle longer than this are stopped; `None` keeps them until stop.
    pub container_idle_timeout: Option<Duration>,
    /// Kinds whose processes get `__OW_WAIT_FOR_ACK=1` and must ack on fd 3 after start.
    pub ack_kinds: Vec<String>,
    /// Fire interval/cron/once alarms by wall clock in a background thread (sandbox mode).
    pub alarms_realtime: bool,
    /// Unit of the alarms fire retry backoff `max(1, n²) * unit` (OpenWhisk: 1 s).
    pub alarm_retry_unit: Duration,
    /// How long a blocking invoke waits before answering 202 (OpenWhisk: 60 s).
    pub blocking_wait: Duration,
    /// Number of HTTP worker threads (actions call back into the API while being served).
    pub workers: usize,
    /// The controller's `whisk.shared-packages-execute-only` (default false): GET of another
    /// namespace's package, or of a binding to one, answers 403 (apache/openwhisk
    /// core/controller/.../controller/Packages.scala:188-190 and :343-344).
    pub shared_packages_execute_only: bool,
    /// More subjects (keys) in namespaces of `namespaces`, as `wskadmin user create --namespace`
    /// makes them; entries without a key are ignored.
    pub extra_subjects: Vec<NamespaceConfig>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            port: 0,
            namespaces: vec![NamespaceConfig { name: "guest".to_string(), key: None }],
            fires_per_minute: None,
            invocation_limits: InvocationLimits::default(),
            container_idle_timeout: Some(Duration::from_secs(600)),
            ack_kinds: Vec::new(),
            alarms_realtime: false,
            alarm_retry_unit: Duration::from_secs(1),
            blocking_wait: Duration::from_secs(60),
            workers: 32,
            shared_packages_execute_only: false,
            extra_subjects: Vec::new(),
        }
    }
}

impl Config {
    /// A config with exactly these namespaces (random keys) besides `whisk.system`.
    pub fn with_namespaces(names: &[&str]) -> Config {
        let namespaces = names.iter().map(|n| NamespaceConfig { name: n.to_string(), key: None }).collect();
        Config { namespaces, ..Config::default() }
    }
}

/// The controller's invocation throttles (apache/openwhisk core/controller/src/main/scala/org/
/// apache/openwhisk/core/entitlement/Entitlement.scala:197-214); `None` is unlimited.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InvocationLimits {
    /// Invocations per namespace per calendar minute (OpenWhisk: 60).
    pub per_minute: Option<u32>,
    /// Invocations of a namespace in flight at once (OpenWhisk: 30).
    pub concurrent: Option<u32>,
}

/// What a namespace's throttles refused so far (every 429 they answered).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusals {
    /// Trigger fires refused by the fire throttle.
    pub fires: u64,
    /// Invocations refused by the per-minute or concurrency throttle: direct, web, and the
    /// rule invocations of an accepted fire (which only its activation's logs record).
    pub invocations: u64,
}

/// Makes the next `count` requests matching `method` and `path_contains` fail with `status`,
/// or, when `delay_ms` is set, wait that long and then be served normally (a slow controller).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FaultRule {
    /// HTTP method to match (case-insensitive); `None` or `"*"` matches any.
    #[serde(default)]
    pub method: Option<String>,
    /// Substring of the request path (query excluded) to match; empty matches any.
    #[serde(default)]
    pub path_contains: String,
    /// Status to answer.
    pub status: u16,
    /// JSON body to answer; `None` gives `{"error":"injected fault","code":tx}`.
    #[serde(default)]
    pub body: Option<Value>,
    /// How many matching requests fail.
    #[serde(default = "one")]
    pub count: u32,
    /// When above 0: hold each matching request this long, then serve it normally (`status`
    /// and `body` unused). An action calling the API meanwhile can be killed at its time limit
    /// while the request still takes effect afterwards.
    #[serde(default)]
    pub delay_ms: u64,
}

fn one() -> u32 {
    1
}

/// Shared state of a running emulator.
pub(crate) struct Inner {
    pub config: Config,
    pub url: String,
    /// Namespace -> `uuid:key`.
    pub keys: BTreeMap<String, String>,
    /// Further keys of a namespace, as (namespace, `uuid:key`) (OpenWhisk allows several).
    pub extra_keys: Mutex<Vec<(String, String)>>,
    pub store: Mutex<store::Store>,
    pub pool: Mutex<invoker::Pool>,
    /// Number of invocations in flight.
    pub running: Mutex<usize>,
    pub idle: Condvar,
    pub faults: Mutex<Vec<FaultRule>>,
    /// Namespace -> (calendar minute, fire attempts in it).
    pub fires: Mutex<HashMap<String, (u64, u32)>>,
    pub fires_per_minute: Mutex<Option<u32>>,
    /// Namespace -> (calendar minute, invocation attempts in it).
    pub invocations: Mutex<HashMap<String, (u64, u32)>>,
    pub invocation_limits: Mutex<InvocationLimits>,
    /// Namespace -> invocations in flight (the invoking identity's namespace).
    pub in_flight: Mutex<HashMap<String, u32>>,
    /// Namespace -> what its throttles refused.
    pub refusals: Mutex<HashMap<String, Refusals>>,
    pub alarms: Mutex<BTreeMap<String, alarms::Alarm>>,
    pub stopping: AtomicBool,
    /// Directory for unpacked action code and log files.
    pub workdir: PathBuf,
}

/// Locks a mutex, recovering the data if a panicking thread poisoned it.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Inner {
    /// The namespace a `uuid:key` credential belongs to.
    pub fn namespace_of_key(&self, key: &str) -> Option<String> {
        let primary = self.keys.iter().find(|(_, k)| k.as_str() == key).map(|(n, _)| n.clone());
        primary.or_else(|| lock(&self.extra_keys).iter().find(|(_, k)| k == key).map(|(n, _)| n.clone()))
    }
}

/// A running emulator; stops on [`Emulator::stop`] or drop.
pub struct Emulator {
    inner: Arc<Inner>,
    server: Arc<tiny_http::Server>,
    threads: Vec<JoinHandle<()>>,
}

impl Emulator {
    /// Binds 127.0.0.1:`config.port` and starts serving.
    pub fn start(config: Config) -> anyhow::Result<Emulator> {
        let server = tiny_http::Server::http(("127.0.0.1", config.port))
            .map_err(|e| anyhow::anyhow!("emulator: cannot bind 127.0.0.1:{}: {e}", config.port))?;
        let port = server.server_addr().to_ip().map(|a| a.port()).context("emulator: no IP listen address")?;
        let url = format!("http://127.0.0.1:{port}");
        let mut keys = BTreeMap::new();
        for ns in &config.namespaces {
            keys.insert(ns.name.clone(), ns.key.clone().unwrap_or_else(store::random_credential));
        }
        keys.entry(SYSTEM_NAMESPACE.to_string()).or_insert_with(store::random_credential);
        let workdir = std::env::temp_dir().join(format!("ow-emulator-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&workdir).with_context(|| format!("emulator: cannot create {}", workdir.display()))?;
        let mut st = store::Store::default();
        alarms::install_package(&mut st);
        let extra_keys = config.extra_subjects.iter().filter_map(|s| Some((s.name.clone(), s.key.clone()?))).collect();
        let inner = Arc::new(Inner {
            fires_per_minute: Mutex::new(config.fires_per_minute),
            invocation_limits: Mutex::new(config.invocation_limits),
            config,
            url,
            keys,
            extra_keys: Mutex::new(extra_keys),
            store: Mutex::new(st),
            pool: Mutex::new(invoker::Pool::default()),
            running: Mutex::new(0),
            idle: Condvar::new(),
            faults: Mutex::new(Vec::new()),
            fires: Mutex::new(HashMap::new()),
            invocations: Mutex::new(HashMap::new()),
            in_flight: Mutex::new(HashMap::new()),
            refusals: Mutex::new(HashMap::new()),
            alarms: Mutex::new(BTreeMap::new()),
            stopping: AtomicBool::new(false),
            workdir,
        });
        let server = Arc::new(server);
        let mut threads = Vec::new();
        for _ in 0..inner.config.workers.max(2) {
            let (inner, server) = (inner.clone(), server.clone());
            threads.push(std::thread::spawn(move || server::worker(&inner, &server)));
        }
        if inner.config.alarms_realtime {
            let inner = inner.clone();
            threads.push(std::thread::spawn(move || alarms::realtime_loop(&inner)));
        }
        Ok(Emulator { inner, server, threads })
    }

    /// Base URL, `http://127.0.0.1:PORT` (what actions get as `__OW_API_HOST`).
    pub fn url(&self) -> String {
        self.inner.url.clone()
    }

    /// The `uuid:key` credential of a namespace.
    pub fn key(&self, namespace: &str) -> Option<String> {
        self.inner.keys.get(namespace).cloned()
    }

    /// Adds another key to an existing namespace and returns it (`uuid:key`).
    pub fn add_key(&self, namespace: &str) -> Option<String> {
        self.inner.keys.get(namespace)?;
        let key = store::random_credential();
        lock(&self.inner.extra_keys).push((namespace.to_string(), key.clone()));
        Some(key)
    }

    /// All namespaces with their keys.
    pub fn keys(&self) -> BTreeMap<String, String> {
        self.inner.keys.clone()
    }

    /// Fires every active alarm once, synchronously (retries included); returns (trigger, final status).
    pub fn fire_alarms(&self) -> Vec<(String, u16)> {
        alarms::fire_all(&self.inner)
    }

    /// The triggers (`/ns/t`) of `namespace` that have an active alarm, sorted.
    pub fn alarms_of(&self, namespace: &str) -> Vec<String> {
        let prefix = format!("/{namespace}/");
        let alarms = lock(&self.inner.alarms);
        let mut out: Vec<String> =
            alarms.values().filter(|a| a.active && a.trigger.starts_with(&prefix)).map(|a| a.trigger.clone()).collect();
        out.sort();
        out.dedup();
        out
    }

    /// Fires the alarm of one trigger (`/ns/t`) once; `None` if it has no alarm.
    pub fn fire_alarm(&self, trigger: &str) -> Option<u16> {
        alarms::fire_one(&self.inner, trigger)
    }

    /// The next `count` times (Unix ms) the cron alarm of a trigger (`/ns/t`) fires after
    /// `after_ms`, by the provider's rules (empty if it has no cron alarm).
    pub fn cron_fires_after(&self, trigger: &str, after_ms: i64, count: usize) -> Vec<i64> {
        let alarms = lock(&self.inner.alarms);
        let Some(pattern) = alarms.values().find(|a| a.trigger == trigger).and_then(|a| a.schedule.clone()) else {
            return Vec::new();
        };
        std::iter::successors(pattern.next_after(after_ms), |t| pattern.next_after(*t)).take(count).collect()
    }

    /// Activation records of a namespace, oldest first.
    pub fn activations(&self, namespace: &str) -> Vec<Value> {
        let st = lock(&self.inner.store);
        st.activations.iter().filter(|a| a["namespace"] == namespace).cloned().collect()
    }

    /// Waits until no invocation is running; false on timeout.
    pub fn wait_idle(&self, timeout: Duration) -> bool {
        invoker::wait_idle(&self.inner, timeout)
    }

    /// Adds a fault rule (see [`FaultRule`]).
    pub fn inject_fault(&self, rule: FaultRule) {
        lock(&self.inner.faults).push(rule);
    }

    /// Fault rules not used up yet: a rule's last matching request takes it off this list
    /// when it starts (a `delay_ms` rule's request is then being held).
    pub fn faults_left(&self) -> Vec<FaultRule> {
        lock(&self.inner.faults).clone()
    }

    /// Removes all fault rules.
    pub fn clear_faults(&self) {
        lock(&self.inner.faults).clear();
    }

    /// What the throttles refused in `namespace` so far.
    pub fn refusals(&self, namespace: &str) -> Refusals {
        lock(&self.inner.refusals).get(namespace).copied().unwrap_or_default()
    }

    /// Sets the per-namespace invocation throttles.
    pub fn set_invocation_limits(&self, limits: InvocationLimits) {
        *lock(&self.inner.invocation_limits) = limits;
        lock(&self.inner.invocations).clear();
    }

    /// Sets the per-namespace fire throttle; `None` is unlimited.
    pub fn set_fires_per_minute(&self, limit: Option<u32>) {
        *lock(&self.inner.fires_per_minute) = limit;
        lock(&self.inner.fires).clear();
    }

    /// Stops serving, kills warm action processes and removes the work directory.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if self.inner.stopping.swap(true, Ordering::SeqCst) {
            return;
        }
        for _ in 0..self.threads.len() {
            self.server.unblock();
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        invoker::shutdown(&self.inner);
        let _ = std::fs::remove_dir_all(&self.inner.workdir);
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.shutdown();
    }
}
