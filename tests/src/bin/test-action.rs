//! Fixture action for the runtime tests: behaves as its `mode` parameter asks, so a test can
//! drive every path of `owfeed::runtime` (result, error, panic, big result) through the real
//! actionloop, blackbox and CLI protocols. It has no feed logic.

use owfeed::params::Params;
use owfeed::runtime::{self, ActionError, Context};
use serde_json::{json, Value};

fn handler(ctx: &Context, params: Params) -> Result<Value, ActionError> {
    let mode = params.str("mode")?.unwrap_or_else(|| "echo".to_string());
    // Logs the mode only: parameters may hold secrets, and the tests check none leak.
    runtime::log(&format!("test-action: mode {mode}"));
    match mode.as_str() {
        "echo" => Ok(json!({
            "params": params.into_value(),
            "ctx": {
                "namespace": ctx.namespace,
                "action_name": ctx.action_name,
                "package": ctx.package(),
                "activation_id": ctx.activation_id,
                "api_host": ctx.api_host,
                "has_api_key": ctx.api_key.is_some(),
                "ms_left": ctx.time_left().map(|d| d.as_millis() as u64),
            },
        })),
        "error" => Err(ActionError {
            message: "test-action: failing as asked".to_string(),
            details: Some(json!({"mode": "error"})),
        }),
        "panic" => panic!("test-action: panicking as asked"),
        "big" => {
            let size = params.u64_in("size", 1, 4 * 1024 * 1024)?.unwrap_or(512 * 1024);
            Ok(json!({ "size": size, "data": "x".repeat(size as usize) }))
        }
        _ => Err(ActionError::new(format!("parameter 'mode': expected echo, error, panic or big, got {mode:?}"))),
    }
}

fn main() {
    runtime::main(handler)
}
