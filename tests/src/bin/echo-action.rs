//! Fixture action for the emulator tests: speaks the actionloop protocol by hand (without owfeed)
//! so the emulator is checked against the protocol itself, not against our runtime.
//!
//! Reads one JSON line per activation on stdin and writes `{"echo": value, ...}` on fd 3. The
//! value can ask for: `fail` (an `{"error"}` result), `exit` (exit mid-activation), `sleep_ms`,
//! `garbage` (a non-JSON result line) and `get` (GET that API path with the activation's
//! `api_key`, to show an action can call back into the API while it is being served).

use std::fs::File;
use std::io::{BufRead, Write};
use std::os::fd::FromRawFd;

use base64::Engine as _;
use serde_json::{json, Value};

fn main() {
    // SAFETY: fd 3 is the result pipe the emulator (like the actionloop proxy) installs before
    // exec; nothing else in this process owns it, so wrapping it in a File is sound.
    #[allow(unsafe_code)]
    let mut results = unsafe { File::from_raw_fd(3) };
    if std::env::var("__OW_WAIT_FOR_ACK").is_ok_and(|v| !v.is_empty()) {
        let _ = results.write_all(b"{\"ok\":true}\n");
    }
    let api_host = std::env::var("__OW_API_HOST").unwrap_or_default();
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let msg: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
        let value = msg["value"].clone();
        // stdout is the action's log channel: the emulator must capture this line
        #[allow(clippy::print_stdout)]
        {
            println!("echo-action: activation {}", msg["activation_id"].as_str().unwrap_or("?"));
        }
        eprintln!("echo-action: to stderr");
        if value["exit"] == true {
            std::process::exit(3);
        }
        if let Some(ms) = value["sleep_ms"].as_u64() {
            std::thread::sleep(std::time::Duration::from_millis(ms));
        }
        let result = if value["garbage"] == true {
            "this is not json".to_string()
        } else if value["fail"] == true {
            json!({"error": "echo-action: failing as asked"}).to_string()
        } else {
            let mut r = json!({
                "echo": value,
                "env_keys": std::env::vars().map(|(k, _)| k).collect::<Vec<_>>(),
                "namespace": msg["namespace"],
                "action_name": msg["action_name"],
                "has_api_key": msg.get("api_key").is_some(),
                // the key's public half only: which identity the activation runs as
                "api_key_uuid": msg["api_key"].as_str().and_then(|k| k.split(':').next()),
                "has_deadline": msg["deadline"].as_str().is_some_and(|d| d.parse::<u64>().is_ok()),
            });
            if let (Some(path), Some(key)) = (value["get"].as_str(), msg["api_key"].as_str()) {
                r["get_status"] = json!(get(&api_host, path, key));
            }
            r.to_string()
        };
        if results.write_all(format!("{result}\n").as_bytes()).is_err() {
            break;
        }
    }
}

/// GETs `path` on the API with Basic auth over a bare HTTP/1.0 connection (keeps this fixture
/// small: no HTTP client crate); the HTTP status, 0 on failure.
fn get(api_host: &str, path: &str, key: &str) -> u16 {
    let Some(addr) = api_host.strip_prefix("http://") else { return 0 };
    let Ok(mut conn) = std::net::TcpStream::connect(addr) else { return 0 };
    let auth = base64::engine::general_purpose::STANDARD.encode(key);
    let request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\nAuthorization: Basic {auth}\r\n\r\n");
    if conn.write_all(request.as_bytes()).is_err() {
        return 0;
    }
    let mut status_line = String::new();
    if std::io::BufReader::new(conn).read_line(&mut status_line).is_err() {
        return 0;
    }
    status_line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
}
