//! A pouchdb-server (a CouchDB-compatible HTTP server in Node.js) for the CouchDB source's tests.
//!
//! pouchdb-server 4.2.0 serves the CouchDB API the source uses (`_changes` with `since`,
//! `limit`, `feed=longpoll`, `heartbeat`, `include_docs`, `filter=_doc_ids` and JS filters;
//! documents with MVCC revisions). Its differences from CouchDB 2.x+ and Cloudant
//! (/work/shared/reference/couchdb.md §5) are why some tests use `crate::couchproxy`:
//! sequences are integers (CouchDB 2.x+: opaque strings), any `since` is accepted and echoed
//! (CouchDB 2.x+: 400), longpoll ignores `timeout` (clients need their own deadline), and
//! `filter=_selector`/`_design` kill the process. It has no users: every request is admin.
//!
//! It runs `--in-memory` with its working directory in a temp dir (it writes `config.json` and
//! `log.txt` there), installed by [`crate::tools::pouchdb_server_script`] on first use, and dies
//! with the test process: it reads nothing from stdin, so a `sh` wrapper kills it when the test
//! process's end closes its stdin.

use std::net::TcpListener;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use serde_json::{json, Value};

/// A running pouchdb-server, killed on drop.
pub struct PouchDb {
    wrapper: Child,
    /// Closing it stops the server (see the module doc).
    stdin: Option<ChildStdin>,
    dir: std::path::PathBuf,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    agent: ureq::Agent,
}

impl PouchDb {
    /// Starts pouchdb-server on a free loopback port.
    pub fn start() -> anyhow::Result<PouchDb> {
        let script = crate::tools::pouchdb_server_script()?;
        let dir = std::env::temp_dir().join(unique("pouchdb-server"));
        std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let mut wrapper = Command::new("sh")
            .arg("-c")
            .arg(r#"node "$1" --in-memory -o 127.0.0.1 -p "$2" >/dev/null 2>&1 & pid=$!; read _ignored; kill $pid; wait $pid"#)
            .arg("sh")
            .arg(&script)
            .arg(port.to_string())
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot run sh to start pouchdb-server")?;
        let stdin = wrapper.stdin.take();
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .new_agent();
        let mut server = PouchDb { wrapper, stdin, dir, url: format!("http://127.0.0.1:{port}"), agent };
        let deadline = Instant::now() + Duration::from_secs(60);
        while server.agent.get(&server.url).call().map(|r| r.status().as_u16()).unwrap_or(0) != 200 {
            if let Some(status) = server.wrapper.try_wait()? {
                bail!("pouchdb-server exited before listening ({status}); `node {}` shows why", script.display());
            }
            if Instant::now() > deadline {
                bail!("pouchdb-server did not answer on {port} within 60 s");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(server)
    }

    /// One server shared by every test in the process; give each test its own database
    /// ([`PouchDb::create_db`] with a [`unique`] name).
    pub fn shared() -> anyhow::Result<&'static PouchDb> {
        static SHARED: OnceLock<Result<PouchDb, String>> = OnceLock::new();
        SHARED.get_or_init(|| PouchDb::start().map_err(|e| format!("{e:#}"))).as_ref().map_err(|e| anyhow!("{e}"))
    }

    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> anyhow::Result<(u16, Value)> {
        let url = format!("{}{path}", self.url);
        let request = ureq::http::Request::builder()
            .method(method)
            .uri(&url)
            .header("Accept", "application/json")
            // Without it pouchdb-server stores an empty document (reference §3).
            .header("Content-Type", "application/json");
        let result = match body {
            Some(b) => self.agent.run(request.body(b.to_string())?),
            None => self.agent.run(request.body(())?),
        };
        let mut response = result.with_context(|| format!("{method} {url}"))?;
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string()?;
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::String(text))))
    }

    fn ok(&self, method: &str, path: &str, body: Option<&Value>) -> anyhow::Result<Value> {
        let (status, answer) = self.call(method, path, body)?;
        if !(200..300).contains(&status) {
            bail!("{method} {path}: HTTP {status}: {answer}");
        }
        Ok(answer)
    }

    /// Creates a database.
    pub fn create_db(&self, db: &str) -> anyhow::Result<()> {
        self.ok("PUT", &format!("/{db}"), None).map(|_| ())
    }

    /// Writes a document (with `_rev` inside `doc` to update) and returns its new rev.
    pub fn put(&self, db: &str, id: &str, doc: Value) -> anyhow::Result<String> {
        let answer = self.ok("PUT", &format!("/{db}/{}", encode(id)), Some(&doc))?;
        answer["rev"].as_str().map(str::to_string).ok_or_else(|| anyhow!("PUT {id}: no rev in {answer}"))
    }

    /// Updates a document to `doc` over its current revision and returns the new rev.
    pub fn update(&self, db: &str, id: &str, mut doc: Value) -> anyhow::Result<String> {
        doc["_rev"] = json!(self.rev(db, id)?);
        self.put(db, id, doc)
    }

    /// Deletes a document at its current revision and returns the tombstone's rev.
    pub fn delete(&self, db: &str, id: &str) -> anyhow::Result<String> {
        let rev = self.rev(db, id)?;
        let answer = self.ok("DELETE", &format!("/{db}/{}?rev={rev}", encode(id)), None)?;
        answer["rev"].as_str().map(str::to_string).ok_or_else(|| anyhow!("DELETE {id}: no rev in {answer}"))
    }

    /// Writes many new documents in one `_bulk_docs` request.
    pub fn bulk(&self, db: &str, docs: &[Value]) -> anyhow::Result<()> {
        let answer = self.ok("POST", &format!("/{db}/_bulk_docs"), Some(&json!({ "docs": docs })))?;
        match answer.as_array() {
            Some(rows) if rows.iter().all(|r| r.get("ok") == Some(&json!(true))) => Ok(()),
            _ => bail!("_bulk_docs: not every document was written: {answer}"),
        }
    }

    /// Writes documents with the revisions they carry, as replication does (`new_edits:
    /// false`): how a conflicting branch comes to be.
    pub fn replicate(&self, db: &str, docs: &[Value]) -> anyhow::Result<()> {
        let body = json!({ "docs": docs, "new_edits": false });
        self.ok("POST", &format!("/{db}/_bulk_docs"), Some(&body)).map(|_| ())
    }

    /// Deletes one revision of a document (a leaf of its tree) and returns the tombstone's rev.
    pub fn delete_rev(&self, db: &str, id: &str, rev: &str) -> anyhow::Result<String> {
        let answer = self.ok("DELETE", &format!("/{db}/{}?rev={rev}", encode(id)), None)?;
        answer["rev"].as_str().map(str::to_string).ok_or_else(|| anyhow!("DELETE {id}: no rev in {answer}"))
    }

    /// Adds (or replaces) an attachment of a document at its current revision; returns the
    /// document's new rev.
    pub fn attach(&self, db: &str, id: &str, name: &str, content_type: &str, bytes: &[u8]) -> anyhow::Result<String> {
        let rev = self.rev(db, id)?;
        let url = format!("{}/{db}/{}/{}?rev={rev}", self.url, encode(id), encode(name));
        let mut resp = self.agent.put(&url).header("Content-Type", content_type).send(bytes)?;
        let answer: Value = serde_json::from_str(&resp.body_mut().read_to_string()?)?;
        answer["rev"].as_str().map(str::to_string).ok_or_else(|| anyhow!("PUT {id}/{name}: no rev in {answer}"))
    }

    /// A document's current rev.
    pub fn rev(&self, db: &str, id: &str) -> anyhow::Result<String> {
        let doc = self.ok("GET", &format!("/{db}/{}", encode(id)), None)?;
        doc["_rev"].as_str().map(str::to_string).ok_or_else(|| anyhow!("GET {id}: no _rev in {doc}"))
    }

    /// `GET path` as status and JSON.
    pub fn get(&self, path: &str) -> anyhow::Result<(u16, Value)> {
        self.call("GET", path, None)
    }
}

impl Drop for PouchDb {
    fn drop(&mut self) {
        self.stdin.take();
        let _ = self.wrapper.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A name unique in this process and across processes: `prefix-<pid>-<n>` (lowercase, so it
/// is also a valid database name).
pub fn unique(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!("{prefix}-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

fn encode(id: &str) -> String {
    id.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
