//! The action runtime: one entry point every action binary's `main` calls with its handler.
//!
//! CONTRACT (owned by the runtime helper; signatures fixed, bodies to be written).

use std::time::{Duration, SystemTime};

use serde_json::{json, Value};

use crate::params::{ParamError, Params};
use crate::secret::Secret;

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
    pub fn to_result(&self) -> Value {
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
