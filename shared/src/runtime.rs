//! The action runtime: one entry point every action binary's `main` calls with its handler.
//!
//! `main(handler)` picks a mode from the process arguments and runs the handler:
//! - **actionloop** (no arguments; OpenWhisk's rust and Go images): one JSON line per activation
//!   on stdin, exactly one result line on fd 3, forever. An optional `{"ok":true}` ack comes first
//!   when `__OW_WAIT_FOR_ACK` is set. Bad lines, handler errors and handler panics each become one
//!   `{"error": …}` line; the loop only ends at stdin EOF, because an exiting process fails the
//!   activation and loses the container.
//! - **blackbox** (`argv[1]` is a JSON object; the dockerskeleton/`native` image): one activation,
//!   the result is the last stdout line, exit 0. Input over 131071 bytes comes on stdin only, with
//!   no argument (apache/openwhisk-runtime-docker `core/actionProxy/actionproxy.py:141-157`):
//!   no argument, no fd 3 and `__OW_ACTIVATION_ID` in the environment mean blackbox on stdin.
//! - **CLI** (`argv[1]` starts with `-`): `-p NAME VALUE`, `-P FILE`, `--api-host`, `--help` for
//!   humans; pretty result on stdout, exit 1 on an error result.
//!
//! This is the only place (with `openwhisk` and the S3 client) that does I/O on behalf of an
//! action, and the only place that writes results. It never prints parameters: they carry secrets.
//! It knows nothing about feeds or lifecycle events.

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, BufRead, IsTerminal, Write};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};

use crate::params::{ParamError, Params};
use crate::secret::{self, Secret};

/// Per-activation facts from the actionloop input line (or the blackbox environment).
#[derive(Clone, Debug, Default)]
pub struct Context {
    /// `__OW_API_HOST` with a scheme (`https://` added when missing); `None` when unset.
    pub api_host: Option<String>,
    /// The invoking subject's key (`provide-api-key`), `uuid:key`.
    pub api_key: Option<Secret>,
    /// The namespace the activation runs in.
    pub namespace: String,
    /// Fully qualified action name, `/ns/[pkg/]action`.
    pub action_name: String,
    /// This activation's id.
    pub activation_id: String,
    /// When the platform kills the activation.
    pub deadline: Option<SystemTime>,
}

impl Context {
    /// Time left before the deadline (`None` when there is no deadline, e.g. CLI mode).
    pub fn time_left(&self) -> Option<Duration> {
        self.deadline.map(|d| d.duration_since(SystemTime::now()).unwrap_or(Duration::ZERO))
    }

    /// The `/ns/pkg` part of `action_name` when the action is in a package.
    pub fn package(&self) -> Option<&str> {
        let rest = self.action_name.strip_prefix('/')?;
        let parts: Vec<&str> = rest.split('/').collect();
        match parts.as_slice() {
            [ns, pkg, action] if !ns.is_empty() && !pkg.is_empty() && !action.is_empty() => {
                Some(&self.action_name[..1 + ns.len() + 1 + pkg.len()])
            }
            _ => None,
        }
    }

    /// The context the blackbox and CLI modes get: from the `__OW_*` environment variables.
    fn from_env() -> Context {
        Context {
            api_host: env("__OW_API_HOST").map(|h| api_host_url(&h)),
            api_key: env("__OW_API_KEY").map(Secret::new),
            namespace: env("__OW_NAMESPACE").unwrap_or_default(),
            action_name: env("__OW_ACTION_NAME").unwrap_or_default(),
            activation_id: env("__OW_ACTIVATION_ID").unwrap_or_default(),
            deadline: env("__OW_DEADLINE").and_then(|d| parse_deadline(&Value::String(d))),
        }
    }
}

/// An application error: becomes `{"error": message}` (plus `details` fields) in the result.
#[derive(Clone, Debug, PartialEq)]
pub struct ActionError {
    /// One line a user can act on; never contains a secret.
    pub message: String,
    /// Extra fields merged into the error object (e.g. `{"parameter": "bucket"}`).
    pub details: Option<Value>,
}

impl ActionError {
    /// An error with a message only.
    pub fn new(message: impl Into<String>) -> ActionError {
        ActionError { message: message.into(), details: None }
    }

    /// The result object: `{"error": message, …details}`.
    fn to_result(&self) -> Value {
        let mut out = json!({ "error": self.message });
        if let (Some(Value::Object(extra)), Value::Object(obj)) = (&self.details, &mut out) {
            for (k, v) in extra {
                if k != "error" {
                    obj.insert(k.clone(), v.clone());
                }
            }
        }
        out
    }
}

impl From<ParamError> for ActionError {
    fn from(e: ParamError) -> ActionError {
        ActionError { message: e.to_string(), details: Some(json!({ "parameter": e.name })) }
    }
}

impl std::fmt::Display for ActionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ActionError {}

/// Writes one log line to stderr (the activation's logs); newlines are flattened and every
/// known secret is redacted.
pub fn log(msg: &str) {
    let line = secret::redact_text(&msg.replace(['\n', '\r'], " "));
    // A closed stderr must not kill the activation: the write error is dropped.
    let _ = writeln!(io::stderr().lock(), "{line}");
}

/// `host[:port]` becomes `https://host[:port]`; a URL with a scheme is kept (minus a trailing `/`).
fn api_host_url(host: &str) -> String {
    let host = host.trim().trim_end_matches('/');
    if host.contains("://") {
        host.to_string()
    } else {
        format!("https://{host}")
    }
}

/// The deadline from an activation line: epoch milliseconds as a string (OpenWhisk) or a number.
fn parse_deadline(value: &Value) -> Option<SystemTime> {
    let ms = match value {
        Value::String(s) => s.trim().parse::<u64>().ok()?,
        Value::Number(n) => match n.as_u64() {
            Some(ms) => ms,
            None => n.as_f64().filter(|f| f.is_finite() && *f >= 0.0).map(|f| f as u64)?,
        },
        _ => return None,
    };
    UNIX_EPOCH.checked_add(Duration::from_millis(ms))
}

/// Runs the action: picks actionloop, blackbox or CLI mode from the arguments, never returns.
pub fn main<F>(handler: F) -> !
where
    F: Fn(&Context, Params) -> Result<Value, ActionError>,
{
    // The default hook prints the panic message raw; this one goes through the redacting log.
    std::panic::set_hook(Box::new(|info| log(&format!("panic: {info}"))));
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let code = match choose_mode(args) {
        // A person who runs the binary without arguments would otherwise face a silent wait
        // for activation lines; no proxy gives a terminal as stdin.
        Mode::ActionLoop if io::stdin().is_terminal() => {
            usage_error("no arguments and stdin is a terminal: this binary runs as an OpenWhisk action")
        }
        Mode::ActionLoop => match open_fd3() {
            // The actionloop proxies always give fd 3 and pass activation facts in each line; the
            // dockerskeleton proxy closes every fd above 2 (Popen close_fds) and puts them in
            // the environment.
            None if env("__OW_ACTIVATION_ID").is_some() => blackbox_stdin(&handler),
            fd3 => actionloop(&handler, fd3),
        },
        Mode::Blackbox(arg) => blackbox(&handler, &arg, "argument 1"),
        Mode::Cli(args) => cli(&handler, &args),
        Mode::Usage(problem) => usage_error(&problem),
    };
    let _ = io::stdout().flush();
    std::process::exit(code)
}

#[derive(Debug, PartialEq)]
enum Mode {
    ActionLoop,
    Blackbox(String),
    Cli(Vec<String>),
    Usage(String),
}

fn choose_mode(args: Vec<OsString>) -> Mode {
    let mut strings = Vec::with_capacity(args.len());
    for a in args {
        match a.into_string() {
            Ok(s) => strings.push(s),
            Err(bad) => return Mode::Usage(format!("argument {bad:?}: expected UTF-8")),
        }
    }
    match strings.first() {
        None => Mode::ActionLoop,
        Some(first) if first.trim_start().starts_with('{') => Mode::Blackbox(first.clone()),
        Some(first) if first.starts_with('-') => Mode::Cli(strings),
        Some(_) => Mode::Usage("expected a JSON object of parameters or an option as the first argument".to_string()),
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Parameter names whose values are credentials whatever the action (the feeds mark theirs
/// secret too, but a value must be scrubbed even when parsing never reached it).
const SECRET_NAME_PARTS: [&str; 7] = ["secret", "token", "password", "authkey", "apikey", "credential", "statekey"];

/// Learns this activation's secrets before the handler runs: the API key, every parameter
/// whose name says it is a credential, and the user-info of every URL in any parameter.
fn remember_secrets(ctx: &Context, params: &Params) {
    secret::forget_all();
    if let Some(key) = &ctx.api_key {
        secret::remember(key.expose());
    }
    remember_param_secrets(params);
}

/// Adds the credentials in `params` to the activation's known secrets, as the runtime does for
/// its own parameters: for a handler that reads more parameters than it was given (the
/// scheduler's tick reads every due trigger's config).
pub fn remember_param_secrets(params: &Params) {
    fn walk(name: &str, v: &Value) {
        match v {
            Value::String(s) => {
                let lower = name.to_ascii_lowercase();
                if SECRET_NAME_PARTS.iter().any(|p| lower.contains(p)) {
                    secret::remember(s);
                    if let Some((_, key)) = s.split_once(':') {
                        secret::remember(key);
                    }
                }
                secret::remember_userinfo(s);
            }
            Value::Array(items) => items.iter().for_each(|i| walk(name, i)),
            Value::Object(map) => map.iter().for_each(|(k, i)| walk(k, i)),
            _ => {}
        }
    }
    for (name, v) in params.as_map() {
        walk(name, v);
    }
}

/// The action boundary: runs the handler and scrubs every known secret from its result.
fn run_handler<F>(handler: &F, ctx: &Context, params: Params) -> Result<Value, ActionError>
where
    F: Fn(&Context, Params) -> Result<Value, ActionError>,
{
    remember_secrets(ctx, &params);
    match call_handler(handler, ctx, params) {
        Ok(mut v) => {
            secret::redact_value(&mut v, true);
            Ok(v)
        }
        Err(e) => {
            let mut details = e.details;
            if let Some(d) = &mut details {
                secret::redact_value(d, false);
            }
            Err(ActionError { message: secret::redact_text(&e.message), details })
        }
    }
}

/// Calls the handler, turning a panic or a non-object result into an `ActionError`.
fn call_handler<F>(handler: &F, ctx: &Context, params: Params) -> Result<Value, ActionError>
where
    F: Fn(&Context, Params) -> Result<Value, ActionError>,
{
    // The handler's state is not reused after a panic except through `&Context`, which it
    // cannot mutate, so unwinding out of it leaves nothing half-updated for the next call.
    match catch_unwind(AssertUnwindSafe(|| handler(ctx, params))) {
        Ok(Ok(v @ (Value::Object(_) | Value::Array(_)))) => Ok(v),
        Ok(Ok(other)) => {
            Err(ActionError::new(format!("runtime: the action returned {}, expected a JSON object", json_type(&other))))
        }
        Ok(Err(e)) => Err(e),
        Err(_) => Err(ActionError::new("runtime: the action panicked (see the activation logs)")),
    }
}

fn result_value(result: Result<Value, ActionError>) -> Value {
    result.unwrap_or_else(|e| e.to_result())
}

/// Parses one actionloop input line into the activation's context and parameters.
fn parse_activation(line: &[u8], api_host: Option<&str>) -> Result<(Context, Params), ActionError> {
    let input: Value = serde_json::from_slice(line)
        .map_err(|e| ActionError::new(format!("runtime: malformed activation line: {e}")))?;
    let Value::Object(mut input) = input else {
        return Err(ActionError::new(format!(
            "runtime: malformed activation line: expected a JSON object, got {}",
            json_type(&input)
        )));
    };
    let params = match input.remove("value") {
        None | Some(Value::Null) => Params::default(),
        Some(Value::Object(map)) => Params::from_value(Value::Object(map))?,
        // Only the type is named: the value holds the caller's parameters, secrets included.
        Some(other) => {
            return Err(ActionError::new(format!(
                "runtime: the activation's \"value\" must be a JSON object of parameters, got {}",
                json_type(&other)
            )))
        }
    };
    let text = |name: &str| input.get(name).and_then(Value::as_str).unwrap_or_default().to_string();
    let ctx = Context {
        api_host: api_host.map(str::to_string),
        api_key: input.get("api_key").and_then(Value::as_str).filter(|k| !k.is_empty()).map(Secret::new),
        namespace: text("namespace"),
        action_name: text("action_name"),
        activation_id: text("activation_id"),
        deadline: input.get("deadline").and_then(parse_deadline),
    };
    Ok((ctx, params))
}

/// One actionloop activation: the input line in, the result object out (never fails).
fn handle_line<F>(handler: &F, line: &[u8], api_host: Option<&str>) -> Value
where
    F: Fn(&Context, Params) -> Result<Value, ActionError>,
{
    result_value(parse_activation(line, api_host).and_then(|(ctx, params)| run_handler(handler, &ctx, params)))
}

/// fd 3, where the actionloop proxy reads results; `None` when the descriptor is not open.
#[allow(unsafe_code)]
fn open_fd3() -> Option<File> {
    use std::os::fd::FromRawFd;
    // SAFETY: fcntl(F_GETFD) only reads the descriptor's flags and fails with EBADF when fd 3
    // is not open. When it is open, it was inherited from the proxy for our results and no other
    // code in this process uses fd 3; `main` calls this once, so the File is its only owner.
    unsafe {
        if libc::fcntl(3, libc::F_GETFD) == -1 {
            return None;
        }
        Some(File::from_raw_fd(3))
    }
}

/// Writes one result line and flushes; a failed write is logged, never fatal.
fn write_line(out: &mut dyn Write, value: &Value) {
    let line = serde_json::to_string(value)
        .unwrap_or_else(|_| r#"{"error":"runtime: the result could not be serialized"}"#.to_string());
    let written = out.write_all(format!("{line}\n").as_bytes()).and_then(|()| out.flush());
    if let Err(e) = written {
        log(&format!("runtime: cannot write the result: {e}"));
    }
}

fn actionloop<F>(handler: &F, fd3: Option<File>) -> i32
where
    F: Fn(&Context, Params) -> Result<Value, ActionError>,
{
    let mut out: Box<dyn Write> = match fd3 {
        Some(file) => Box::new(file),
        None => {
            log("runtime: fd 3 is not open, writing results to stdout");
            Box::new(io::stdout())
        }
    };
    if env("__OW_WAIT_FOR_ACK").is_some() {
        write_line(&mut *out, &json!({ "ok": true }));
    }
    let api_host = env("__OW_API_HOST").map(|h| api_host_url(&h));
    let mut input = io::stdin().lock();
    let mut line = Vec::new();
    loop {
        line.clear();
        match input.read_until(b'\n', &mut line) {
            Ok(0) => return 0,
            Ok(_) => {}
            Err(e) => {
                // stdin itself is broken (not a bad line): no activation can arrive any more.
                log(&format!("runtime: cannot read stdin: {e}"));
                return 1;
            }
        }
        let result = handle_line(handler, &line, api_host.as_deref());
        write_line(&mut *out, &result);
    }
}

/// Blackbox mode with the parameters on stdin (the proxy's way for input over 131071 bytes).
fn blackbox_stdin<F>(handler: &F) -> i32
where
    F: Fn(&Context, Params) -> Result<Value, ActionError>,
{
    let mut input = String::new();
    if let Err(e) = io::Read::read_to_string(&mut io::stdin().lock(), &mut input) {
        write_line(&mut io::stdout().lock(), &ActionError::new(format!("runtime: cannot read stdin: {e}")).to_result());
        return 0;
    }
    blackbox(handler, &input, "stdin")
}

/// One blackbox activation; `source` names where the parameters came from, for errors.
fn blackbox<F>(handler: &F, input: &str, source: &str) -> i32
where
    F: Fn(&Context, Params) -> Result<Value, ActionError>,
{
    let ctx = Context::from_env();
    let result = match serde_json::from_str::<Value>(input) {
        Ok(v @ Value::Object(_)) => match Params::from_value(v) {
            Ok(params) => run_handler(handler, &ctx, params),
            Err(e) => Err(e.into()),
        },
        Ok(other) => Err(ActionError::new(format!(
            "runtime: {source} must be a JSON object of parameters, got {}",
            json_type(&other)
        ))),
        Err(e) => Err(ActionError::new(format!("runtime: {source} is not valid JSON: {e}"))),
    };
    // The dockerskeleton proxy takes the last stdout line as the result, error or not.
    write_line(&mut io::stdout().lock(), &result_value(result));
    0
}

const USAGE: &str = "\
usage: exec                       actionloop mode (OpenWhisk): activations on stdin, results on fd 3
       exec '{\"name\": value}'     blackbox mode: one activation, result on the last stdout line
       exec [OPTIONS]             run once from a shell, print the result
options:
  -p, --param NAME VALUE   a parameter; VALUE is parsed as JSON when it parses, else taken as a string
  -P, --param-file FILE    parameters from a JSON object in FILE
      --api-host HOST      the OpenWhisk API host (default: $__OW_API_HOST)
  -h, --help               this help
environment: __OW_API_HOST __OW_API_KEY __OW_NAMESPACE __OW_ACTION_NAME __OW_ACTIVATION_ID __OW_DEADLINE";

/// Reports a bad command line on stderr (the usage keeps its lines) and gives exit code 2.
fn usage_error(problem: &str) -> i32 {
    let _ = writeln!(io::stderr().lock(), "{problem}\n\n{USAGE}");
    2
}

#[derive(Debug, Default, PartialEq)]
struct CliArgs {
    params: Map<String, Value>,
    api_host: Option<String>,
    help: bool,
}

/// `-p` values the way wsk reads them: JSON when it parses, else the plain string.
fn cli_value(raw: &str) -> Value {
    serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_string()))
}

fn parse_cli(args: &[String], read_file: impl Fn(&str) -> io::Result<String>) -> Result<CliArgs, String> {
    let mut out = CliArgs::default();
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "-h" | "--help" => out.help = true,
            "-p" | "--param" => {
                let (Some(name), Some(value)) = (rest.next(), rest.next()) else {
                    return Err(format!("option '{arg}': expected NAME VALUE"));
                };
                out.params.insert(name.clone(), cli_value(value));
            }
            "-P" | "--param-file" => {
                let Some(path) = rest.next() else {
                    return Err(format!("option '{arg}': expected FILE"));
                };
                let text = read_file(path).map_err(|e| format!("option '{arg}': cannot read {path}: {e}"))?;
                match serde_json::from_str::<Value>(&text) {
                    Ok(Value::Object(map)) => out.params.extend(map),
                    Ok(other) => {
                        return Err(format!(
                            "option '{arg}': {path}: expected a JSON object, got {}",
                            json_type(&other)
                        ))
                    }
                    Err(e) => return Err(format!("option '{arg}': {path}: not valid JSON: {e}")),
                }
            }
            "--api-host" => match rest.next() {
                Some(host) => out.api_host = Some(api_host_url(host)),
                None => return Err(format!("option '{arg}': expected HOST")),
            },
            other => return Err(format!("unknown option '{other}'")),
        }
    }
    Ok(out)
}

fn cli<F>(handler: &F, args: &[String]) -> i32
where
    F: Fn(&Context, Params) -> Result<Value, ActionError>,
{
    let parsed = match parse_cli(args, |path| std::fs::read_to_string(path)) {
        Ok(parsed) => parsed,
        Err(problem) => return usage_error(&problem),
    };
    let mut stdout = io::stdout().lock();
    if parsed.help {
        let _ = writeln!(stdout, "{USAGE}");
        return 0;
    }
    let mut ctx = Context::from_env();
    if parsed.api_host.is_some() {
        ctx.api_host = parsed.api_host;
    }
    let result =
        result_value(run_handler(handler, &ctx, Params::from_value(Value::Object(parsed.params)).unwrap_or_default()));
    let text = serde_json::to_string_pretty(&result).unwrap_or_else(|_| result.to_string());
    let _ = writeln!(stdout, "{text}");
    if result.get("error").is_some() {
        1
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn echo(ctx: &Context, params: Params) -> Result<Value, ActionError> {
        match params.str("mode")?.as_deref() {
            Some("error") => Err(ActionError { message: "boom".into(), details: Some(json!({"parameter": "mode"})) }),
            Some("panic") => panic!("handler panicked on purpose"),
            Some("string") => Ok(json!("not an object")),
            _ => Ok(json!({
                "params": params.into_value(),
                "ns": ctx.namespace,
                "action": ctx.action_name,
                "id": ctx.activation_id,
                "host": ctx.api_host,
                "key": ctx.api_key.as_ref().map(|k| k.expose().to_string()),
                "deadline_ms": ctx.deadline.map(|d| d.duration_since(UNIX_EPOCH).unwrap().as_millis() as u64),
            })),
        }
    }

    #[test]
    fn deadlines_from_strings_and_numbers() {
        let at = |ms: u64| Some(UNIX_EPOCH + Duration::from_millis(ms));
        assert_eq!(parse_deadline(&json!("1700000000123")), at(1_700_000_000_123));
        assert_eq!(parse_deadline(&json!(" 42 ")), at(42));
        assert_eq!(parse_deadline(&json!(1700000000123u64)), at(1_700_000_000_123));
        assert_eq!(parse_deadline(&json!(5.9)), at(5));
        for bad in [json!("soon"), json!(-1), json!(null), json!(""), json!([1])] {
            assert_eq!(parse_deadline(&bad), None, "{bad}");
        }
    }

    #[test]
    fn package_part_of_the_action_name() {
        let ctx = |name: &str| Context { action_name: name.to_string(), ..Context::default() };
        assert_eq!(ctx("/ns/pkg/act").package(), Some("/ns/pkg"));
        assert_eq!(ctx("/ns/act").package(), None);
        assert_eq!(ctx("").package(), None);
        assert_eq!(ctx("ns/pkg/act").package(), None);
        assert_eq!(ctx("/ns//act").package(), None);
    }

    #[test]
    fn api_host_gets_a_scheme() {
        assert_eq!(api_host_url("openwhisk.example.com"), "https://openwhisk.example.com");
        assert_eq!(api_host_url("10.0.0.1:443/"), "https://10.0.0.1:443");
        assert_eq!(api_host_url("http://172.17.0.1:3233"), "http://172.17.0.1:3233");
    }

    #[test]
    fn modes_from_arguments() {
        let args = |a: &[&str]| a.iter().map(OsString::from).collect::<Vec<_>>();
        assert_eq!(choose_mode(args(&[])), Mode::ActionLoop);
        assert_eq!(choose_mode(args(&[" {\"a\":1}"])), Mode::Blackbox(" {\"a\":1}".into()));
        assert_eq!(choose_mode(args(&["-p", "a", "1"])), Mode::Cli(vec!["-p".into(), "a".into(), "1".into()]));
        assert!(matches!(choose_mode(args(&["run"])), Mode::Usage(_)));
    }

    #[test]
    fn activation_lines() {
        let _guard = secret::TEST_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let line = br#"{"value":{"a":1},"namespace":"ns","action_name":"/ns/p/a","activation_id":"id1","deadline":"1000","api_key":"u:k","transaction_id":"t"}"#;
        let out = handle_line(&echo, line, Some("https://h"));
        assert_eq!(
            out,
            json!({"params": {"a": 1}, "ns": "ns", "action": "/ns/p/a", "id": "id1", "host": "https://h", "key": "u:k", "deadline_ms": 1000})
        );
        let out = handle_line(&echo, b"{\"deadline\":2000}\n", None);
        assert_eq!(out["params"], json!({}));
        assert_eq!(out["deadline_ms"], json!(2000));
        assert_eq!(out["key"], Value::Null);
    }

    #[test]
    fn bad_activations_become_error_results() {
        let _guard = secret::TEST_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let err = |line: &[u8]| handle_line(&echo, line, None)["error"].as_str().unwrap().to_string();
        assert!(err(b"{not json").starts_with("runtime: malformed activation line: "));
        assert!(err(b"").starts_with("runtime: malformed activation line: "));
        assert!(err(b"\xff\xfe").starts_with("runtime: malformed activation line: "));
        assert_eq!(err(b"[1]"), "runtime: malformed activation line: expected a JSON object, got an array");
        let e = err(br#"{"value":"hunter2"}"#);
        assert_eq!(e, "runtime: the activation's \"value\" must be a JSON object of parameters, got a string");
        assert_eq!(
            err(br#"{"value":{"mode":"string"}}"#),
            "runtime: the action returned a string, expected a JSON object"
        );
        assert_eq!(err(br#"{"value":{"mode":"panic"}}"#), "runtime: the action panicked (see the activation logs)");
        assert_eq!(
            handle_line(&echo, br#"{"value":{"mode":"error"}}"#, None),
            json!({"error": "boom", "parameter": "mode"})
        );
        assert_eq!(
            handle_line(&echo, br#"{"value":{"mode":[1]}}"#, None),
            json!({"error": "parameter 'mode': expected a string, got [1]", "parameter": "mode"})
        );
    }

    #[test]
    fn cli_arguments() {
        let no_files = |_: &str| -> io::Result<String> { Err(io::Error::from(io::ErrorKind::NotFound)) };
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let parsed =
            parse_cli(&args(&["-p", "n", "5", "--param", "s", "hello world", "-p", "o", "{\"x\":true}"]), no_files)
                .unwrap();
        assert_eq!(Value::Object(parsed.params), json!({"n": 5, "s": "hello world", "o": {"x": true}}));
        let files = |path: &str| -> io::Result<String> {
            match path {
                "p.json" => Ok(r#"{"a": 1, "b": 2}"#.to_string()),
                "list.json" => Ok("[1]".to_string()),
                "bad.json" => Ok("{oops".to_string()),
                _ => Err(io::Error::from(io::ErrorKind::NotFound)),
            }
        };
        let parsed = parse_cli(&args(&["-P", "p.json", "-p", "b", "3", "--api-host", "h:1"]), files).unwrap();
        assert_eq!(Value::Object(parsed.params), json!({"a": 1, "b": 3}));
        assert_eq!(parsed.api_host.as_deref(), Some("https://h:1"));
        assert!(parse_cli(&args(&["--help"]), no_files).unwrap().help);
        for (bad, fragment) in [
            (&["-p", "only-name"][..], "option '-p': expected NAME VALUE"),
            (&["-P"], "option '-P': expected FILE"),
            (&["-P", "missing.json"], "option '-P': cannot read missing.json"),
            (&["-P", "list.json"], "option '-P': list.json: expected a JSON object, got an array"),
            (&["--param-file", "bad.json"], "option '--param-file': bad.json: not valid JSON"),
            (&["--api-host"], "option '--api-host': expected HOST"),
            (&["--verbose"], "unknown option '--verbose'"),
        ] {
            let err = parse_cli(&args(bad), files).unwrap_err();
            assert!(err.starts_with(fragment), "{bad:?}: {err}");
        }
    }

    #[test]
    fn the_boundary_scrubs_every_known_secret_whatever_echoes_it() {
        let _guard = secret::TEST_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let leaky = |_: &Context, params: Params| -> Result<Value, ActionError> {
            // What a server echoing the request would put in a message.
            Err(ActionError {
                message: format!("server said: {}", params.clone().into_value()),
                details: Some(json!({"echo": params.into_value()})),
            })
        };
        let line = br#"{"value":{"managerToken":"TOK-9d8e7f","endpoint":"http://u:PW-4c5d@h:1","x":{"authKey":"id:KEY-1a2b"}},"api_key":"ns:APIKEY-77"}"#;
        let out = handle_line(&leaky, line, None).to_string();
        for leak in ["TOK-9d8e7f", "PW-4c5d", "KEY-1a2b", "APIKEY-77"] {
            assert!(!out.contains(leak), "{leak} in {out}");
        }
        assert!(out.contains("[redacted]"), "{out}");
    }

    #[test]
    fn error_results_keep_their_details() {
        let e: ActionError = ParamError::missing("bucket", "a non-empty string").into();
        assert_eq!(
            e.to_result(),
            json!({"error": "parameter 'bucket': expected a non-empty string", "parameter": "bucket"})
        );
    }
}
