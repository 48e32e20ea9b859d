//! Helpers for talking to the OpenWhisk emulator over plain HTTP, as the wsk CLI would: a small
//! ureq client that never turns statuses into errors, and builders for action bodies (a base64
//! zip holding a top-level `exec`).
//!
//! It does not start the emulator (tests call `ow_emulator::Emulator::start`) and knows nothing
//! of feeds.

use std::io::Write;
use std::path::Path;

use anyhow::Context as _;
use base64::Engine as _;
use serde_json::{json, Value};

/// An HTTP reply.
#[derive(Debug)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Headers (names as received).
    pub headers: Vec<(String, String)>,
    /// Raw body.
    pub body: Vec<u8>,
}

impl Reply {
    /// The body as JSON (`Null` when empty or not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// A header by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// A client for one emulator, optionally authenticated with a `uuid:key`.
pub struct Api {
    agent: ureq::Agent,
    base: String,
    auth: Option<String>,
}

impl Api {
    /// A client for `base` (`http://127.0.0.1:PORT`), with Basic auth when `key` is given.
    pub fn new(base: &str, key: Option<&str>) -> Api {
        let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        let auth = key.map(|k| format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(k)));
        Api { agent, base: base.trim_end_matches('/').to_string(), auth }
    }

    /// Sends `method path` (path relative to the base, query included) with an optional JSON body.
    pub fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Reply {
        let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        let ct = body.map(|_| "application/json");
        self.raw(method, path, ct, &[], bytes)
    }

    /// Sends any request; panics only on transport failure (the emulator is local).
    pub fn raw(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Reply {
        let mut req = ureq::http::Request::builder().method(method).uri(format!("{}{path}", self.base));
        if let Some(a) = &self.auth {
            req = req.header("Authorization", a);
        }
        if let Some(ct) = content_type {
            req = req.header("Content-Type", ct);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(body).expect("valid request");
        let mut resp = self.agent.run(req).unwrap_or_else(|e| panic!("{method} {path}: transport error {e}"));
        let status = resp.status().as_u16();
        let headers = resp
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or_default().to_string()))
            .collect();
        let body = resp.body_mut().read_to_vec().unwrap_or_default();
        Reply { status, headers, body }
    }

    /// GET.
    pub fn get(&self, path: &str) -> Reply {
        self.call("GET", path, None)
    }

    /// PUT with a JSON body.
    pub fn put(&self, path: &str, body: &Value) -> Reply {
        self.call("PUT", path, Some(body))
    }

    /// POST with a JSON body.
    pub fn post(&self, path: &str, body: &Value) -> Reply {
        self.call("POST", path, Some(body))
    }

    /// DELETE.
    pub fn delete(&self, path: &str) -> Reply {
        self.call("DELETE", path, None)
    }
}

/// A zip with one top-level entry `exec` holding `content` (mode 755, uncompressed).
pub fn zip_exec_bytes(content: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut buf = std::io::Cursor::new(Vec::new());
    {
        let mut zip = zip::ZipWriter::new(&mut buf);
        // stored, not deflated: compressing a debug binary costs seconds and gains nothing here
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored)
            .unix_permissions(0o755);
        zip.start_file("exec", options).context("zip: start exec")?;
        zip.write_all(content).context("zip: write exec")?;
        zip.finish().context("zip: finish")?;
    }
    Ok(buf.into_inner())
}

/// The base64 zip of a binary file as the action's `exec`.
pub fn zip_exec(binary: &Path) -> anyhow::Result<String> {
    let content = std::fs::read(binary).with_context(|| format!("read {}", binary.display()))?;
    Ok(base64::engine::general_purpose::STANDARD.encode(zip_exec_bytes(&content)?))
}

/// An action PUT body for `exec` content of the given kind (`rust:1.34`, `blackbox`).
pub fn action_body_from(content: &[u8], kind: &str) -> anyhow::Result<Value> {
    let code = base64::engine::general_purpose::STANDARD.encode(zip_exec_bytes(content)?);
    Ok(json!({"exec": {"kind": kind, "code": code, "binary": true}}))
}

/// An action PUT body for a binary file of the given kind.
pub fn action_body(binary: &Path, kind: &str) -> anyhow::Result<Value> {
    Ok(json!({"exec": {"kind": kind, "code": zip_exec(binary)?, "binary": true}}))
}
