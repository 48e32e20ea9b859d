//! A real Ceph RGW (Debian's Ceph 16.2): one monitor, one OSD on memstore and one radosgw on
//! 127.0.0.1, started by `tests/ceph/start-rgw.sh` in about a second, with authentication off
//! and one S3 user. It speaks Ceph's own S3, SNS-compatible topic API and bucket
//! notifications, which the dialect proxy (`s3dialect`) only plays from Ceph's documentation.
//!
//! Each [`Rgw`] is its own cluster in its own directory. The daemons are killed when it drops,
//! and also by a watchdog `sh` when the test process ends without dropping it (the watchdog
//! waits for its stdin, held by this process, to close).

use std::io::Read as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{bail, Context as _};

use owfeed_s3::{S3Client, S3Config, SecretString};

/// The region radosgw answers for (its zonegroup's name).
pub const REGION: &str = "default";
const ACCESS_KEY: &str = "0555b35654ad1656d804";
const SECRET_KEY: &str = "h7GhxuBLTrlhVUyxSPUKUV8r/2EI4ngqJxD7iBdBYLhwluN30JaT3Q==";

/// A running single-node Ceph with radosgw.
pub struct Rgw {
    endpoint: String,
    dir: PathBuf,
    watchdog: Option<Child>,
}

impl Rgw {
    /// Installs Ceph if needed (`tools::ensure_ceph`) and starts a cluster.
    pub fn start() -> anyhow::Result<Rgw> {
        crate::tools::ensure_ceph()?;
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "owfeed-ceph-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("run")).with_context(|| format!("create {}", dir.display()))?;
        // Armed before anything starts: it kills whatever pid files the daemons write.
        let kill = format!(
            "cat >/dev/null; for f in '{d}'/run/*.pid; do [ -f \"$f\" ] && kill -9 \"$(cat \"$f\")\" 2>/dev/null; done; rm -rf '{d}'",
            d = dir.display()
        );
        let watchdog =
            Command::new("sh").args(["-c", &kill]).stdin(Stdio::piped()).spawn().context("start the watchdog")?;
        let mut rgw = Rgw { endpoint: String::new(), dir: dir.clone(), watchdog: Some(watchdog) };
        let rgw_port = free_port()?;
        let mon_port = free_pair()?;
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("ceph/start-rgw.sh");
        let output = Command::new("bash")
            .arg(&script)
            .args([
                dir.to_str().unwrap_or_default(),
                &rgw_port.to_string(),
                &mon_port.to_string(),
                ACCESS_KEY,
                SECRET_KEY,
            ])
            .stdin(Stdio::null())
            .output()
            .context("run tests/ceph/start-rgw.sh")?;
        if !output.status.success() || !String::from_utf8_lossy(&output.stdout).contains("ready") {
            bail!(
                "tests/ceph/start-rgw.sh failed ({}): {}\n{}",
                output.status,
                String::from_utf8_lossy(&output.stderr),
                rgw.log_tail()
            );
        }
        rgw.endpoint = format!("http://127.0.0.1:{rgw_port}");
        rgw.wait_until_serving()?;
        Ok(rgw)
    }

    /// Waits until a bucket and an object can be written. On a loaded machine radosgw accepts
    /// connections before its zone's pools exist and answers the first PUT bucket with a bare
    /// 404 (seen under a load average of 10); a test's first call must not meet that.
    fn wait_until_serving(&self) -> anyhow::Result<()> {
        let client = self.client();
        let started = std::time::Instant::now();
        loop {
            let attempt = client
                .create_bucket("owfeed-ready")
                .and_then(|()| client.put_object("owfeed-ready", "probe", b"ok".to_vec(), owfeed_s3::Condition::None));
            match attempt {
                Ok(_) => return Ok(()),
                Err(e) if started.elapsed() > std::time::Duration::from_secs(60) => {
                    bail!("radosgw did not serve a PUT in 60 s: {e}\n{}", self.log_tail())
                }
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(250)),
            }
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The S3 user's access key id.
    pub fn access_key_id(&self) -> &str {
        ACCESS_KEY
    }

    /// The S3 user's secret key.
    pub fn secret_access_key(&self) -> &str {
        SECRET_KEY
    }

    /// A path-style client of the S3 user.
    pub fn client(&self) -> S3Client {
        let config = S3Config::new(&self.endpoint, REGION, ACCESS_KEY, SecretString::new(SECRET_KEY));
        S3Client::new(config).expect("the RGW endpoint is a valid S3 endpoint")
    }

    /// The end of radosgw's log, for failure messages.
    pub fn log_tail(&self) -> String {
        let mut text = String::new();
        if let Ok(mut f) = std::fs::File::open(self.dir.join("log/rgw.log")) {
            let _ = f.read_to_string(&mut text);
        }
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for Rgw {
    fn drop(&mut self) {
        if let Some(mut watchdog) = self.watchdog.take() {
            drop(watchdog.stdin.take());
            let _ = watchdog.wait();
        }
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A port whose next port is free too (the monitor's v2 and v1 addresses).
fn free_pair() -> anyhow::Result<u16> {
    for _ in 0..50 {
        let port = free_port()?;
        if port < u16::MAX && TcpListener::bind(("127.0.0.1", port + 1)).is_ok() {
            return Ok(port);
        }
    }
    bail!("no two consecutive free ports on 127.0.0.1")
}
