//! An s3s-fs server (a second, independent S3 implementation) for tests.
//!
//! s3s-fs verifies SigV4 strictly, sends no ETag in listings (so the poller's
//! LastModified/Size fallback runs) and ignores `encoding-type=url`.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::moto::Moto;

/// An s3s-fs server over a temporary directory, killed on drop.
pub struct S3sFs {
    child: Child,
    dir: std::path::PathBuf,
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
}

impl S3sFs {
    /// Starts s3s-fs (verifying SigV4 with these credentials); panics with install
    /// instructions when it is not on PATH (`.ci/run` installs it).
    pub fn start(access_key: &str, secret_key: &str) -> S3sFs {
        if Command::new("s3s-fs").arg("--version").output().is_err() {
            panic!("s3s-fs is not installed: cargo install s3s-fs@0.14.1 --features binary --locked");
        }
        let dir = std::env::temp_dir().join(Moto::unique_bucket("s3s-fs"));
        std::fs::create_dir_all(&dir).unwrap();
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new("s3s-fs")
            .args([
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--access-key",
                access_key,
                "--secret-key",
                secret_key,
            ])
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let server = S3sFs { child, dir, endpoint: format!("http://127.0.0.1:{port}") };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "s3s-fs did not listen on {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }
}

impl Drop for S3sFs {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
