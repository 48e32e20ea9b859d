//! Running actions and recording activations.
//!
//! Actionloop kinds (everything but `blackbox`) run in warm processes ("containers") reused per
//! action version, one activation at a time each: one JSON line on stdin per activation, one
//! result line back on fd 3, stdout/stderr captured as logs through files (so every line written
//! before the result is in the log). `blackbox` runs `exec` once per activation as the
//! dockerskeleton proxy does: the params as `argv[1]` and on stdin, or on stdin only when longer
//! than 131071 bytes. It does not route HTTP or check entitlements: callers hand it a resolved
//! [`Job`].

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Map, Value};

use crate::server::Identity;
use crate::store::{kv_truthy, now_ms, random_hex, Action, Code};
use crate::{alarms, lock, Inner};

/// An action found for a caller, with package/binding/action parameters merged.
pub(crate) struct Resolved {
    pub action: Action,
    pub params: Map<String, Value>,
}

/// One activation to run.
pub(crate) struct Job {
    pub action: Action,
    /// Final parameters (defaults merged with the invocation payload).
    pub params: Map<String, Value>,
    /// The invoking subject: the activation is recorded in its namespace, `api_key` is its key.
    pub identity: Identity,
    pub activation_id: String,
    /// The trigger activation that caused this one (rule-triggered invocations).
    pub cause: Option<String>,
}

/// Outcome of running an action: OpenWhisk status code (0 success, 1 application error,
/// 2 action developer error, 3 whisk internal error), result and log lines.
struct Outcome {
    status_code: u8,
    result: Value,
    logs: Vec<String>,
}

impl Outcome {
    fn from_result(result: Value, logs: Vec<String>) -> Outcome {
        let status_code = if result.get("error").is_some() { 1 } else { 0 };
        Outcome { status_code, result, logs }
    }

    fn developer_error(msg: &str, logs: Vec<String>) -> Outcome {
        Outcome { status_code: 2, result: json!({"error": msg}), logs }
    }
}

/// Warm containers and unpacked code directories.
#[derive(Default)]
pub(crate) struct Pool {
    /// Container key (`/ns/pkg/a@version@updated`) -> idle containers.
    idle: HashMap<String, Vec<Container>>,
    /// Container key -> directory holding the unpacked zip.
    code_dirs: HashMap<String, PathBuf>,
    counter: u64,
}

/// A warm actionloop process.
struct Container {
    child: Child,
    stdin: ChildStdin,
    results: Receiver<std::io::Result<String>>,
    stdout: LogFile,
    stderr: LogFile,
    last_used: Instant,
}

impl Container {
    fn logs(&mut self) -> Vec<String> {
        let mut lines = self.stdout.read_new("stdout");
        lines.extend(self.stderr.read_new("stderr"));
        lines
    }

    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A file a process writes its output to; read incrementally.
struct LogFile {
    path: PathBuf,
    offset: u64,
}

impl LogFile {
    fn read_new(&mut self, stream: &str) -> Vec<String> {
        let Ok(mut f) = File::open(&self.path) else { return Vec::new() };
        let mut buf = Vec::new();
        if f.seek(SeekFrom::Start(self.offset)).is_err() || f.read_to_end(&mut buf).is_err() {
            return Vec::new();
        }
        self.offset += buf.len() as u64;
        let ts = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        String::from_utf8_lossy(&buf).lines().map(|l| format!("{ts} {stream}: {l}")).collect()
    }
}

/// Checks that a zip holds a top-level `exec`.
pub(crate) fn check_zip(bytes: &[u8]) -> Result<(), String> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes))
        .map_err(|e| format!("action: 'exec.code' is not a valid zip archive: {e}"))?;
    let found = archive.by_name("exec").is_ok_and(|f| f.is_file());
    if found {
        Ok(())
    } else {
        Err("action: the zip must contain a top-level file named 'exec' (the executable)".to_string())
    }
}

fn container_key(action: &Action) -> String {
    format!("{}@{}@{}", action.fqn(), action.meta.version, action.meta.updated)
}

/// Marks an invocation as started (for `wait_idle` and the concurrent-invocations throttle).
fn begin(inner: &Inner, namespace: &str) {
    *lock(&inner.running) += 1;
    *lock(&inner.in_flight).entry(namespace.to_string()).or_default() += 1;
}

fn end(inner: &Inner, namespace: &str) {
    if let Some(n) = lock(&inner.in_flight).get_mut(namespace) {
        *n = n.saturating_sub(1);
    }
    let mut running = lock(&inner.running);
    *running = running.saturating_sub(1);
    inner.idle.notify_all();
}

/// Waits until no invocation runs; false on timeout.
pub(crate) fn wait_idle(inner: &Inner, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    let mut running = lock(&inner.running);
    while *running > 0 {
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        running = match inner.idle.wait_timeout(running, deadline - now) {
            Ok((g, _)) => g,
            Err(e) => e.into_inner().0,
        };
    }
    true
}

/// The controller's invocation throttles for `namespace`, in its order: the per-minute count
/// (every attempt counts, `count <= allowed`), then invocations in flight (`count < allowed`)
/// (apache/openwhisk .../entitlement/Entitlement.scala:197-214, RateThrottler.scala:33-110,
/// ActivationThrottler.scala:58-66; messages common/.../http/ErrorResponse.scala:67-73).
pub(crate) fn check_throttles(inner: &Inner, namespace: &str) -> Result<(), (u16, String)> {
    let refused = throttled(inner, namespace);
    if refused.is_err() {
        lock(&inner.refusals).entry(namespace.to_string()).or_default().invocations += 1;
    }
    refused
}

fn throttled(inner: &Inner, namespace: &str) -> Result<(), (u16, String)> {
    let limits = *lock(&inner.invocation_limits);
    if let Some(allowed) = limits.per_minute {
        let count = count_in_minute(&inner.invocations, namespace);
        if count > allowed {
            return Err((429, format!("Too many requests in the last minute (count: {count}, allowed: {allowed}).")));
        }
    }
    if let Some(allowed) = limits.concurrent {
        let count = lock(&inner.in_flight).get(namespace).copied().unwrap_or(0);
        if count >= allowed {
            return Err((429, format!("Too many concurrent requests in flight (count: {count}, allowed: {allowed}).")));
        }
    }
    Ok(())
}

/// Counts one attempt in the namespace's fixed calendar-minute bucket (`currentTimeMillis /
/// 60000`, RateThrottler.scala:83-110) and returns the bucket's count.
pub(crate) fn count_in_minute(buckets: &std::sync::Mutex<HashMap<String, (u64, u32)>>, namespace: &str) -> u32 {
    let minute = now_ms() / 60_000;
    let mut buckets = lock(buckets);
    let bucket = buckets.entry(namespace.to_string()).or_insert((minute, 0));
    if bucket.0 != minute {
        *bucket = (minute, 0);
    }
    bucket.1 = bucket.1.saturating_add(1);
    bucket.1
}

/// Runs a job in the background.
pub(crate) fn spawn(inner: &Arc<Inner>, job: Job) {
    let ns = job.identity.namespace.clone();
    begin(inner, &ns);
    let inner = inner.clone();
    std::thread::spawn(move || {
        execute(&inner, job);
        end(&inner, &ns);
    });
}

/// Runs a job and waits up to `wait` for its activation record (`None`: still running).
pub(crate) fn run_blocking(inner: &Arc<Inner>, job: Job, wait: Duration) -> Option<Value> {
    let ns = job.identity.namespace.clone();
    begin(inner, &ns);
    let (tx, rx) = mpsc::channel();
    let inner2 = inner.clone();
    std::thread::spawn(move || {
        let record = execute(&inner2, job);
        end(&inner2, &ns);
        let _ = tx.send(record);
    });
    rx.recv_timeout(wait).ok()
}

/// Runs one activation and stores its record.
fn execute(inner: &Arc<Inner>, job: Job) -> Value {
    let start = now_ms();
    let deadline = start + job.action.timeout_ms;
    let outcome = match &job.action.code {
        Code::Alarm(kind) => {
            Outcome::from_result(alarms::run_feed(inner, *kind, &job.params, &job.identity), Vec::new())
        }
        Code::Zip { kind, code } => match code_dir(inner, &job.action, code) {
            Err(e) => Outcome { status_code: 3, result: json!({"error": e}), logs: Vec::new() },
            Ok(dir) if kind == "blackbox" => run_blackbox(inner, &job, &dir, deadline),
            Ok(dir) => run_actionloop(inner, &job, &dir, kind, deadline),
        },
    };
    let end = now_ms().max(start);
    let status = match outcome.status_code {
        0 => "success",
        1 => "application error",
        2 => "action developer error",
        _ => "whisk internal error",
    };
    let action = &job.action;
    let mut annotations = vec![
        json!({"key": "path", "value": action.fqn().trim_start_matches('/')}),
        json!({"key": "kind", "value": action.kind()}),
        json!({"key": "limits", "value": action.limits()}),
        json!({"key": "waitTime", "value": 0}),
    ];
    if job.cause.is_some() {
        annotations.push(json!({"key": "causedBy", "value": "trigger"}));
    }
    let mut record = json!({
        "namespace": job.identity.namespace,
        "name": action.meta.name,
        "version": action.meta.version,
        "subject": job.identity.namespace,
        "activationId": job.activation_id,
        "start": start,
        "end": end,
        "duration": end - start,
        "statusCode": outcome.status_code,
        "response": {
            "status": status,
            "statusCode": outcome.status_code,
            "success": outcome.status_code == 0,
            "result": outcome.result,
        },
        "logs": outcome.logs,
        "annotations": annotations,
        "publish": false,
    });
    if let Some(cause) = &job.cause {
        record["cause"] = json!(cause);
    }
    lock(&inner.store).activations.push(record.clone());
    record
}

/// Unpacks the action's zip once per action version.
fn code_dir(inner: &Inner, action: &Action, code: &str) -> Result<PathBuf, String> {
    let key = container_key(action);
    let mut pool = lock(&inner.pool);
    if let Some(d) = pool.code_dirs.get(&key) {
        return Ok(d.clone());
    }
    pool.counter += 1;
    let dir = inner.workdir.join(format!("code-{}", pool.counter));
    let bytes = base64::engine::general_purpose::STANDARD.decode(code).map_err(|e| format!("bad code: {e}"))?;
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).map_err(|e| format!("bad action zip: {e}"))?;
    archive.extract(&dir).map_err(|e| format!("cannot unpack the action zip: {e}"))?;
    std::fs::set_permissions(dir.join("exec"), std::fs::Permissions::from_mode(0o755))
        .map_err(|e| format!("cannot make 'exec' executable: {e}"))?;
    pool.code_dirs.insert(key, dir.clone());
    Ok(dir)
}

fn remaining(deadline_ms: u64) -> Duration {
    Duration::from_millis(deadline_ms.saturating_sub(now_ms()))
}

fn run_actionloop(inner: &Arc<Inner>, job: &Job, dir: &Path, kind: &str, deadline: u64) -> Outcome {
    let key = container_key(&job.action);
    let mut container = match checkout(inner, &key) {
        Some(c) => c,
        None => match start_container(inner, dir, kind, deadline) {
            Ok(c) => c,
            Err((msg, logs)) => return Outcome::developer_error(&msg, logs),
        },
    };
    let mut line = json!({
        "value": Value::Object(job.params.clone()),
        "namespace": job.identity.namespace,
        "action_name": job.action.fqn(),
        "action_version": job.action.meta.version,
        "activation_id": job.activation_id,
        "transaction_id": random_hex(16),
        "deadline": deadline.to_string(),
    });
    if kv_truthy(&job.action.meta.annotations, "provide-api-key") {
        line["api_key"] = json!(job.identity.key);
    }
    let sent = container.stdin.write_all(format!("{line}\n").as_bytes()).and_then(|_| container.stdin.flush());
    if sent.is_err() {
        let logs = container.logs();
        container.kill();
        return Outcome::developer_error("The action did not produce a valid response and exited unexpectedly.", logs);
    }
    match container.results.recv_timeout(remaining(deadline)) {
        Ok(Ok(text)) => {
            let logs = container.logs();
            match serde_json::from_str::<Value>(&text) {
                Ok(v) if v.is_object() || v.is_array() => {
                    checkin(inner, key, container);
                    Outcome::from_result(v, logs)
                }
                _ => {
                    container.kill();
                    Outcome::developer_error(
                        &format!("The action did not produce a valid JSON response: {}", truncate(&text)),
                        logs,
                    )
                }
            }
        }
        Err(RecvTimeoutError::Timeout) => {
            let _ = container.child.kill();
            let logs = container.logs();
            container.kill();
            Outcome::developer_error(
                &format!("The action exceeded its time limits of {} milliseconds.", job.action.timeout_ms),
                logs,
            )
        }
        Ok(Err(_)) | Err(RecvTimeoutError::Disconnected) => {
            let _ = container.child.wait();
            let logs = container.logs();
            container.kill();
            Outcome::developer_error("The action did not produce a valid response and exited unexpectedly.", logs)
        }
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(200).collect()
}

/// Takes an idle live container of this action version, stopping idle-expired ones on the way.
fn checkout(inner: &Inner, key: &str) -> Option<Container> {
    let mut expired = Vec::new();
    let found = {
        let mut pool = lock(&inner.pool);
        if let Some(limit) = inner.config.container_idle_timeout {
            for list in pool.idle.values_mut() {
                let (old, keep): (Vec<_>, Vec<_>) = list.drain(..).partition(|c| c.last_used.elapsed() > limit);
                *list = keep;
                expired.extend(old);
            }
        }
        let mut found = None;
        if let Some(list) = pool.idle.get_mut(key) {
            while let Some(mut c) = list.pop() {
                if matches!(c.child.try_wait(), Ok(None)) {
                    found = Some(c);
                    break;
                }
                expired.push(c);
            }
        }
        found
    };
    expired.into_iter().for_each(Container::kill);
    found
}

fn checkin(inner: &Inner, key: String, mut container: Container) {
    if inner.stopping.load(Ordering::SeqCst) {
        container.kill();
        return;
    }
    container.last_used = Instant::now();
    let mut pool = lock(&inner.pool);
    // an action updated meanwhile has purged its code dir: do not keep a stale process
    if !pool.code_dirs.contains_key(&key) {
        drop(pool);
        container.kill();
        return;
    }
    pool.idle.entry(key).or_default().push(container);
}

/// Stops the idle containers and forgets the code of every version of the action `/ns/[pkg/]a`.
pub(crate) fn purge(inner: &Inner, fqn: &str) {
    let prefix = format!("{fqn}@");
    let mut victims = Vec::new();
    {
        let mut pool = lock(&inner.pool);
        let keys: Vec<String> = pool.idle.keys().filter(|k| k.starts_with(&prefix)).cloned().collect();
        for k in keys {
            victims.extend(pool.idle.remove(&k).unwrap_or_default());
        }
        // a running activation may still use the files; the work dir goes at stop
        pool.code_dirs.retain(|k, _| !k.starts_with(&prefix));
    }
    victims.into_iter().for_each(Container::kill);
}

/// Kills every idle container.
pub(crate) fn shutdown(inner: &Inner) {
    let all: Vec<Container> = lock(&inner.pool).idle.drain().flat_map(|(_, v)| v).collect();
    all.into_iter().for_each(Container::kill);
}

/// Starts an actionloop process with fd 3 as the result pipe and an empty environment.
fn start_container(inner: &Inner, dir: &Path, kind: &str, deadline: u64) -> Result<Container, (String, Vec<String>)> {
    let n = {
        let mut pool = lock(&inner.pool);
        pool.counter += 1;
        pool.counter
    };
    let fail = |e: std::io::Error| (format!("The action failed to start: {e}"), Vec::new());
    let out_path = inner.workdir.join(format!("container-{n}.stdout"));
    let err_path = inner.workdir.join(format!("container-{n}.stderr"));
    let out = File::create(&out_path).map_err(fail)?;
    let err = File::create(&err_path).map_err(fail)?;
    let (reader, writer) = std::io::pipe().map_err(fail)?;
    let ack = inner.config.ack_kinds.iter().any(|k| k == kind);
    let mut cmd = Command::new(dir.join("exec"));
    cmd.env_clear()
        .env("__OW_API_HOST", &inner.url)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err));
    if ack {
        cmd.env("__OW_WAIT_FOR_ACK", "1");
    }
    let fd = writer.as_raw_fd();
    // SAFETY: the closure runs in the forked child before exec and only calls the
    // async-signal-safe dup2/fcntl on fds that exist (the pipe's write end, owned by the parent).
    #[allow(unsafe_code)]
    unsafe {
        cmd.pre_exec(move || {
            if fd == 3 {
                // dup2(3, 3) would keep close-on-exec set: clear it instead
                let flags = libc::fcntl(3, libc::F_GETFD);
                if flags < 0 || libc::fcntl(3, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            } else if libc::dup2(fd, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = spawn_retrying(&mut cmd).map_err(fail)?;
    drop(writer);
    let stdin = child.stdin.take().ok_or_else(|| ("The action failed to start: no stdin".to_string(), Vec::new()))?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(reader).lines() {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut container = Container {
        child,
        stdin,
        results: rx,
        stdout: LogFile { path: out_path, offset: 0 },
        stderr: LogFile { path: err_path, offset: 0 },
        last_used: Instant::now(),
    };
    if ack {
        let acked = match container.results.recv_timeout(remaining(deadline)) {
            Ok(Ok(line)) => serde_json::from_str::<Value>(&line).is_ok_and(|v| v["ok"] == true),
            _ => false,
        };
        if !acked {
            let logs = container.logs();
            container.kill();
            return Err(("The action failed during initialization: no {\"ok\":true} ack on fd 3".to_string(), logs));
        }
    }
    Ok(container)
}

/// Spawns, retrying on ETXTBSY: a process forked by another thread while an `exec` file was
/// still open for writing holds that descriptor until its own exec, which briefly makes the file
/// "busy" (the Go runtime retries the same way).
fn spawn_retrying(cmd: &mut Command) -> std::io::Result<Child> {
    let mut attempts = 0;
    loop {
        match cmd.spawn() {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && attempts < 200 => {
                attempts += 1;
                std::thread::sleep(Duration::from_millis(10));
            }
            other => return other,
        }
    }
}

/// Linux's MAX_ARG_STRLEN less the NUL: the longest input the dockerskeleton proxy puts in argv.
const MAX_ARG_STRLEN: usize = 131_071;

/// Python's `json.dumps` with its defaults (`", "` and `": "` separators, `ensure_ascii`), the
/// proxy's serialization: its length decides argv or stdin. Floats use Rust's shortest form,
/// which can differ from Python's `repr` (e.g. `1e21` against `1e+21`).
fn python_json_dumps(v: &Value) -> String {
    let mut out = String::new();
    dump(v, &mut out);
    out
}

fn dump(v: &Value, out: &mut String) {
    match v {
        Value::String(s) => {
            out.push('"');
            for c in s.chars() {
                match c {
                    '"' => out.push_str("\\\""),
                    '\\' => out.push_str("\\\\"),
                    '\n' => out.push_str("\\n"),
                    '\r' => out.push_str("\\r"),
                    '\t' => out.push_str("\\t"),
                    '\u{8}' => out.push_str("\\b"),
                    '\u{c}' => out.push_str("\\f"),
                    c if (c as u32) < 0x20 || !c.is_ascii() => {
                        let mut units = [0u16; 2];
                        for u in c.encode_utf16(&mut units) {
                            out.push_str(&format!("\\u{u:04x}"));
                        }
                    }
                    c => out.push(c),
                }
            }
            out.push('"');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                dump(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (k, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                dump(&Value::String(k.clone()), out);
                out.push_str(": ");
                dump(item, out);
            }
            out.push('}');
        }
        other => out.push_str(&other.to_string()),
    }
}

fn run_blackbox(inner: &Inner, job: &Job, dir: &Path, deadline: u64) -> Outcome {
    let run_dir = inner.workdir.join(format!("blackbox-{}", job.activation_id));
    let fail = |e: std::io::Error| Outcome::developer_error(&format!("The action failed to start: {e}"), Vec::new());
    if let Err(e) = std::fs::create_dir_all(&run_dir) {
        return fail(e);
    }
    let out_path = run_dir.join("stdout");
    let err_path = run_dir.join("stderr");
    let (out, err) = match (File::create(&out_path), File::create(&err_path)) {
        (Ok(o), Ok(e)) => (o, e),
        (Err(e), _) | (_, Err(e)) => return fail(e),
    };
    // apache/openwhisk-runtime-docker core/actionProxy/actionproxy.py:141-160: the input is
    // json.dumps(args); over MAX_ARG_STRLEN (131071) it goes on stdin only, otherwise as argv[1]
    // and on stdin; stdin is closed after it (communicate), fds above 2 are not inherited.
    let input = python_json_dumps(&Value::Object(job.params.clone()));
    let mut cmd = Command::new(dir.join("exec"));
    if input.len() <= MAX_ARG_STRLEN {
        cmd.arg(&input);
    }
    cmd.env_clear()
        .env("__OW_API_HOST", &inner.url)
        .env("__OW_NAMESPACE", &job.identity.namespace)
        .env("__OW_ACTION_NAME", job.action.fqn())
        .env("__OW_ACTION_VERSION", &job.action.meta.version)
        .env("__OW_ACTIVATION_ID", &job.activation_id)
        .env("__OW_TRANSACTION_ID", random_hex(16))
        .env("__OW_DEADLINE", deadline.to_string())
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err));
    // The key is in the run message, hence the environment, only with provide-api-key
    // (apache/openwhisk core/invoker/.../containerpool/ContainerProxy.scala:791-797).
    if kv_truthy(&job.action.meta.annotations, "provide-api-key") {
        cmd.env("__OW_API_KEY", &job.identity.key);
    }
    let mut child = match spawn_retrying(&mut cmd) {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    if let Some(mut stdin) = child.stdin.take() {
        // An action that never reads stdin must not block the invoker (the proxy ignores EPIPE).
        std::thread::spawn(move || {
            let _ = stdin.write_all(input.as_bytes());
        });
    }
    let timed_out = loop {
        match child.try_wait() {
            Ok(Some(_)) => break false,
            Ok(None) if now_ms() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                break true;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(_) => break false,
        }
    };
    let stdout = std::fs::read_to_string(&out_path).unwrap_or_default();
    let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&run_dir);
    let ts = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    // The proxy's split (actionproxy.py:172-183): the result is what follows the last newline
    // before the final character, stripped; everything before it is logs.
    let before_last_char = stdout.char_indices().last().map(|(i, _)| i).unwrap_or(0);
    let (log_text, last) = match stdout[..before_last_char].rfind('\n') {
        Some(i) => (&stdout[..=i], stdout[i + 1..].trim()),
        None => ("", stdout.trim()),
    };
    let mut logs: Vec<String> = log_text.lines().map(|l| format!("{ts} stdout: {l}")).collect();
    logs.extend(stderr.lines().map(|l| format!("{ts} stderr: {l}")));
    if timed_out {
        return Outcome::developer_error(
            &format!("The action exceeded its time limits of {} milliseconds.", job.action.timeout_ms),
            logs,
        );
    }
    // A dictionary or an array is a result; anything else is the proxy's error, with the line
    // in the logs (actionproxy.py:135-138, :186-194).
    match serde_json::from_str::<Value>(last) {
        Ok(v) if v.is_object() || v.is_array() => Outcome::from_result(v, logs),
        _ => {
            logs.push(format!("{ts} stdout: {last}"));
            Outcome::developer_error("The action did not return a dictionary or array.", logs)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Outputs of CPython 3.11 `json.dumps` for the same values.
    #[test]
    fn dumps_like_python() {
        let v = json!({"b": [1, "x", null, true], "a": {"k": "é\"\\\n\u{1}😀"}, "n": -5, "f": 0.5});
        assert_eq!(
            python_json_dumps(&v),
            r#"{"a": {"k": "\u00e9\"\\\n\u0001\ud83d\ude00"}, "b": [1, "x", null, true], "f": 0.5, "n": -5}"#
        );
        assert_eq!(python_json_dumps(&json!({})), "{}");
    }
}
