//! An s3rver server (a third, independent S3 implementation, in Node.js) for tests.
//!
//! s3rver verifies SigV4 with its fixed credentials `S3RVER`/`S3RVER`, sends ETags in listings,
//! and keeps objects as files. What it does with conditional writes is measured, not assumed,
//! by `tests/suite/conformance.rs`. It runs as `node s3rver.js`, installed by
//! [`crate::tools::s3rver_script`] on first use, and dies with the test process: it reads
//! nothing from stdin, so a `sh` wrapper kills it when the test process's end closes its stdin.

use std::net::TcpListener;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

use crate::moto::Moto;

/// s3rver's only access key id.
pub const ACCESS_KEY: &str = "S3RVER";
/// s3rver's only secret key.
pub const SECRET_KEY: &str = "S3RVER";

/// A running s3rver over a temporary directory, killed on drop.
pub struct S3rver {
    wrapper: Child,
    /// Closing it stops the server (see the module doc).
    stdin: Option<ChildStdin>,
    dir: std::path::PathBuf,
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
}

impl S3rver {
    /// Starts s3rver on a free loopback port.
    pub fn start() -> anyhow::Result<S3rver> {
        let script = crate::tools::s3rver_script()?;
        let dir = std::env::temp_dir().join(Moto::unique_bucket("s3rver"));
        std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let mut wrapper = Command::new("sh")
            .arg("-c")
            .arg(r#"node "$1" -d "$2" -a 127.0.0.1 -p "$3" --silent >/dev/null 2>&1 & pid=$!; read _ignored; kill $pid; wait $pid"#)
            .arg("sh")
            .arg(&script)
            .arg(&dir)
            .arg(port.to_string())
            // s3rver makes continuation tokens with a cipher OpenSSL 3 moved to its legacy
            // provider: without it, every truncated listing is a 500.
            .env("NODE_OPTIONS", "--openssl-legacy-provider")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot run sh to start s3rver")?;
        let stdin = wrapper.stdin.take();
        let mut server = S3rver { wrapper, stdin, dir, endpoint: format!("http://127.0.0.1:{port}") };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = server.wrapper.try_wait()? {
                bail!("s3rver exited before listening ({status}); `node {}` shows why", script.display());
            }
            if Instant::now() > deadline {
                bail!("s3rver did not listen on {port} within 30 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(server)
    }
}

impl Drop for S3rver {
    fn drop(&mut self) {
        self.stdin.take();
        let _ = self.wrapper.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
