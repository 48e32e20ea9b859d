//! The action runtime through its real protocols: the `test-action` fixture binary driven as
//! OpenWhisk's actionloop proxy drives it (stdin lines in, fd 3 lines out), as the
//! dockerskeleton runs it (argv[1], last stdout line) and from a shell (`-p`).

use std::path::Path;
use std::process::{Command, Output};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Result;
use feed_tests::actionloop::{ActionLoop, ResultChannel};
use serde_json::{json, Value};

const HOST: (&str, &str) = ("__OW_API_HOST", "openwhisk.example:443");

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_test-action"))
}

fn start(extra_env: &[(&str, &str)]) -> Result<ActionLoop> {
    let mut env = vec![HOST];
    env.extend_from_slice(extra_env);
    ActionLoop::spawn(binary(), &env, ResultChannel::Fd3)
}

/// An activation line as the proxy writes it.
fn activation(id: &str, value: Value) -> Value {
    let deadline = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() + 3_600_000;
    json!({
        "value": value,
        "namespace": "guest",
        "action_name": "/guest/feeds/test-action",
        "action_version": "0.0.1",
        "activation_id": id,
        "transaction_id": "tx",
        "deadline": deadline.to_string(),
    })
}

#[track_caller]
fn assert_error(result: &Value, fragment: &str) {
    let message = result["error"].as_str().unwrap_or_else(|| panic!("expected an error result, got {result}"));
    assert!(message.contains(fragment), "error {message:?} lacks {fragment:?}");
}

#[test]
fn ack_comes_first_only_when_asked() -> Result<()> {
    let mut acked = start(&[("__OW_WAIT_FOR_ACK", "1")])?;
    assert_eq!(acked.read_result()?, json!({"ok": true}));
    assert_eq!(acked.activate(&activation("a1", json!({})))?["ctx"]["activation_id"], "a1");
    let done = acked.finish()?;
    assert!(done.status.success(), "{done:?}");

    for env in [&[][..], &[("__OW_WAIT_FOR_ACK", "")]] {
        let mut plain = start(env)?;
        // Without an ack the first line on fd 3 is already the result.
        assert_eq!(plain.activate(&activation("a2", json!({})))?["ctx"]["activation_id"], "a2");
        let done = plain.finish()?;
        assert!(done.status.success() && done.unread_results.is_empty(), "{done:?}");
    }
    Ok(())
}

#[test]
fn one_process_serves_many_activations() -> Result<()> {
    let mut action = start(&[])?;
    for i in 0..5 {
        let result = action.activate(&activation(&format!("id-{i}"), json!({"mode": "echo", "i": i})))?;
        assert_eq!(result["params"], json!({"mode": "echo", "i": i}));
        assert_eq!(
            result["ctx"],
            json!({
                "namespace": "guest",
                "action_name": "/guest/feeds/test-action",
                "package": "/guest/feeds",
                "activation_id": format!("id-{i}"),
                "api_host": "https://openwhisk.example:443",
                "has_api_key": false,
                "ms_left": result["ctx"]["ms_left"],
            })
        );
    }
    let done = action.finish()?;
    assert_eq!(done.status.code(), Some(0), "{done:?}");
    assert!(done.unread_results.is_empty(), "extra lines on fd 3: {:?}", done.unread_results);
    assert_eq!(done.stderr.matches("test-action: mode echo").count(), 5, "{}", done.stderr);
    Ok(())
}

#[test]
fn each_bad_activation_gives_one_error_line_and_the_loop_goes_on() -> Result<()> {
    let mut action = start(&[])?;
    action.send_line("{this is not json")?;
    assert_error(&action.read_result()?, "runtime: malformed activation line");
    action.send_line("")?;
    assert_error(&action.read_result()?, "runtime: malformed activation line");
    assert_error(&action.activate(&activation("v", json!("hunter2")))?, "\"value\" must be a JSON object");
    let failed = action.activate(&activation("e", json!({"mode": "error"})))?;
    assert_eq!(failed, json!({"error": "test-action: failing as asked", "mode": "error"}));
    assert_error(&action.activate(&activation("p", json!({"mode": "panic"})))?, "the action panicked");
    assert_error(&action.activate(&activation("m", json!({"mode": ["echo"]})))?, "parameter 'mode'");

    let after = action.activate(&activation("ok", json!({"mode": "echo"})))?;
    assert_eq!(after["ctx"]["activation_id"], "ok");
    let done = action.finish()?;
    assert_eq!(done.status.code(), Some(0), "{done:?}");
    assert!(done.unread_results.is_empty(), "extra lines on fd 3: {:?}", done.unread_results);
    // The panic is in the logs; the non-object value is named by its type only.
    assert!(done.stderr.contains("test-action: panicking as asked"), "{}", done.stderr);
    assert!(!done.stderr.contains("hunter2") && !done.stdout.contains("hunter2"), "{done:?}");
    Ok(())
}

#[test]
fn deadline_and_api_key_reach_the_handler() -> Result<()> {
    let mut action = start(&[])?;
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis() as u64;
    let mut line = activation("d", json!({"password": "hunter2"}));
    line["api_key"] = json!("uuid:topsecretkey");
    let result = action.activate(&line)?;
    let ms_left = result["ctx"]["ms_left"].as_u64().expect("ms_left is a number");
    assert!(ms_left > 0 && ms_left <= 3_600_000, "{ms_left}");
    assert_eq!(result["ctx"]["has_api_key"], true);

    // A numeric deadline is accepted too; a past one leaves no time at all.
    let mut line = activation("past", json!({}));
    line["deadline"] = json!(now_ms - 1000);
    assert_eq!(action.activate(&line)?["ctx"]["ms_left"], 0);
    line["deadline"] = json!("not a time");
    assert_eq!(action.activate(&line)?["ctx"]["ms_left"], Value::Null);

    let done = action.finish()?;
    for secret in ["hunter2", "topsecretkey"] {
        assert!(!done.stderr.contains(secret) && !done.stdout.contains(secret), "{done:?}");
    }
    Ok(())
}

#[test]
fn api_host_keeps_a_given_scheme() -> Result<()> {
    let mut action = ActionLoop::spawn(binary(), &[("__OW_API_HOST", "http://127.0.0.1:3233")], ResultChannel::Fd3)?;
    assert_eq!(action.activate(&activation("h", json!({})))?["ctx"]["api_host"], "http://127.0.0.1:3233");
    action.finish()?;

    let mut action = ActionLoop::spawn(binary(), &[], ResultChannel::Fd3)?;
    assert_eq!(action.activate(&activation("h", json!({})))?["ctx"]["api_host"], Value::Null);
    action.finish()?;
    Ok(())
}

#[test]
fn a_big_result_is_still_one_line() -> Result<()> {
    let mut action = start(&[])?;
    let result = action.activate(&activation("b", json!({"mode": "big", "size": 900_000})))?;
    assert_eq!(result["size"], 900_000);
    assert_eq!(result["data"].as_str().map(str::len), Some(900_000));
    assert_eq!(action.activate(&activation("after", json!({})))?["ctx"]["activation_id"], "after");
    let done = action.finish()?;
    assert!(done.unread_results.is_empty(), "{done:?}");
    Ok(())
}

#[test]
fn without_fd3_results_go_to_stdout_with_a_warning() -> Result<()> {
    let mut action = ActionLoop::spawn(binary(), &[HOST], ResultChannel::Closed)?;
    action.send_line(&activation("s", json!({"k": "v"})).to_string())?;
    action.send_line("nope")?;
    let done = action.finish()?;
    assert_eq!(done.status.code(), Some(0), "{done:?}");
    let lines: Vec<Value> = done.stdout.lines().map(serde_json::from_str).collect::<Result<_, _>>()?;
    assert_eq!(lines.len(), 2, "{}", done.stdout);
    assert_eq!(lines[0]["params"], json!({"k": "v"}));
    assert_error(&lines[1], "malformed activation line");
    assert!(done.stderr.contains("runtime: fd 3 is not open, writing results to stdout"), "{}", done.stderr);
    Ok(())
}

#[test]
fn without_arguments_on_a_terminal_it_prints_usage_instead_of_waiting() -> Result<()> {
    // `script` (util-linux, essential on Debian) gives the binary a pseudo-terminal as stdin,
    // as a person running it from a shell has; -e passes its exit code through.
    let out = Command::new("timeout")
        .args(["20", "script", "-qefc"])
        .arg(binary())
        .arg("/dev/null")
        .stdin(std::process::Stdio::null())
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(text.contains("stdin is a terminal") && text.contains("usage: exec"), "{text}");
    Ok(())
}

fn run_once(args: &[&str], env: &[(&str, &str)]) -> Result<Output> {
    Ok(Command::new(binary()).args(args).env_clear().envs(env.iter().copied()).output()?)
}

fn last_line(bytes: &[u8]) -> Result<Value> {
    let text = String::from_utf8_lossy(bytes);
    let last = text.lines().last().unwrap_or_default();
    Ok(serde_json::from_str(last)?)
}

#[test]
fn blackbox_mode_prints_the_result_last() -> Result<()> {
    let env = [
        HOST,
        ("__OW_API_KEY", "uuid:topsecretkey"),
        ("__OW_NAMESPACE", "guest"),
        ("__OW_ACTION_NAME", "/guest/native-action"),
        ("__OW_ACTIVATION_ID", "bb1"),
        ("__OW_DEADLINE", "4102444800000"),
    ];
    let out = run_once(&[r#"{"mode": "echo", "n": 5}"#], &env)?;
    assert!(out.status.success(), "{out:?}");
    let result = last_line(&out.stdout)?;
    assert_eq!(result["params"], json!({"mode": "echo", "n": 5}));
    assert_eq!(
        result["ctx"],
        json!({
            "namespace": "guest",
            "action_name": "/guest/native-action",
            "package": null,
            "activation_id": "bb1",
            "api_host": "https://openwhisk.example:443",
            "has_api_key": true,
            "ms_left": result["ctx"]["ms_left"],
        })
    );
    assert!(result["ctx"]["ms_left"].as_u64().is_some_and(|ms| ms > 0), "{result}");

    // Application errors are results too: exit 0, error object on the last line.
    let out = run_once(&[r#"{"mode": "error"}"#], &env)?;
    assert!(out.status.success(), "{out:?}");
    assert_eq!(last_line(&out.stdout)?, json!({"error": "test-action: failing as asked", "mode": "error"}));
    let out = run_once(&[r#"{"mode": "panic"}"#], &env)?;
    assert!(out.status.success(), "{out:?}");
    assert_error(&last_line(&out.stdout)?, "the action panicked");
    let out = run_once(&["{broken"], &env)?;
    assert!(out.status.success(), "{out:?}");
    assert_error(&last_line(&out.stdout)?, "argument 1 is not valid JSON");
    Ok(())
}

/// Input over 131071 bytes: the dockerskeleton proxy gives no argument, writes the params to
/// stdin and closes it, with the activation in `__OW_*` variables and no fd 3
/// (apache/openwhisk-runtime-docker core/actionProxy/actionproxy.py:141-160, :117-126).
#[test]
fn blackbox_mode_reads_large_input_from_stdin_without_an_argument() -> Result<()> {
    use std::io::Write as _;
    let big = "x".repeat(200_000);
    let input = json!({"mode": "echo", "big": big}).to_string();
    let env = [HOST, ("__OW_ACTIVATION_ID", "bb2"), ("__OW_NAMESPACE", "guest")];
    let run = |stdin: &str| -> Result<Output> {
        let mut child = Command::new(binary())
            .env_clear()
            .envs(env.iter().copied())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()?;
        child.stdin.take().expect("stdin").write_all(stdin.as_bytes())?;
        Ok(child.wait_with_output()?)
    };
    let out = run(&input)?;
    assert!(out.status.success(), "{out:?}");
    let result = last_line(&out.stdout)?;
    assert_eq!(result["params"]["big"].as_str().map(str::len), Some(200_000));
    assert_eq!(result["ctx"]["activation_id"], "bb2");

    let out = run("[1]")?;
    assert_error(&last_line(&out.stdout)?, "runtime: stdin must be a JSON object of parameters, got an array");
    let out = run("{cut")?;
    assert_error(&last_line(&out.stdout)?, "runtime: stdin is not valid JSON");
    Ok(())
}

#[test]
fn cli_mode_takes_params_like_wsk() -> Result<()> {
    let out = run_once(&["-p", "mode", "echo", "--param", "n", "5", "-p", "s", "hello world"], &[HOST])?;
    assert!(out.status.success(), "{out:?}");
    let result: Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(result["params"], json!({"mode": "echo", "n": 5, "s": "hello world"}));
    assert_eq!(result["ctx"]["api_host"], "https://openwhisk.example:443");
    assert_eq!(result["ctx"]["ms_left"], Value::Null);

    let out = run_once(&["-p", "mode", "echo", "--api-host", "http://localhost:1"], &[HOST])?;
    assert_eq!(serde_json::from_slice::<Value>(&out.stdout)?["ctx"]["api_host"], "http://localhost:1");

    let out = run_once(&["-p", "mode", "error"], &[])?;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_error(&serde_json::from_slice(&out.stdout)?, "failing as asked");

    let out = run_once(&["--help"], &[])?;
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("--param NAME VALUE"), "{out:?}");

    let out = run_once(&["--bogus"], &[])?;
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown option '--bogus'"), "{out:?}");
    Ok(())
}
