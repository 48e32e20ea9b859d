//! An s3s-fs server (a second, independent S3 implementation) for tests.
//!
//! s3s-fs verifies SigV4 strictly, sends no ETag in listings (so the poller's
//! LastModified/Size fallback runs) and ignores `encoding-type=url`. It runs inside the test
//! process from the `s3s-fs` crate, on its own tokio runtime and a loopback port: the same
//! server code its `s3s-fs` binary runs, with nothing to install.

use std::time::Duration;

use anyhow::Context as _;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;

use crate::moto::Moto;

/// An s3s-fs server over a temporary directory, stopped and removed on drop.
pub struct S3sFs {
    runtime: Option<tokio::runtime::Runtime>,
    dir: std::path::PathBuf,
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
}

impl S3sFs {
    /// Starts s3s-fs verifying SigV4 with these credentials.
    pub fn start(access_key: &str, secret_key: &str) -> S3sFs {
        S3sFs::try_start(access_key, secret_key).expect("start s3s-fs")
    }

    fn try_start(access_key: &str, secret_key: &str) -> anyhow::Result<S3sFs> {
        let dir = std::env::temp_dir().join(Moto::unique_bucket("s3s-fs"));
        std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
        let fs = s3s_fs::FileSystem::new(&dir).map_err(|e| anyhow::anyhow!("s3s-fs over {}: {e:?}", dir.display()))?;
        let service = {
            let mut builder = S3ServiceBuilder::new(fs);
            builder.set_auth(SimpleAuth::from_single(access_key, secret_key));
            builder.build()
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("s3s-fs")
            .enable_io()
            .enable_time()
            .build()
            .context("tokio runtime for s3s-fs")?;
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .context("bind a loopback port for s3s-fs")?;
        let port = listener.local_addr()?.port();
        runtime.spawn(async move {
            let http = ConnBuilder::new(TokioExecutor::new());
            while let Ok((socket, _)) = listener.accept().await {
                let conn = http.serve_connection(TokioIo::new(socket), service.clone()).into_owned();
                tokio::spawn(async move {
                    let _ = conn.await;
                });
            }
        });
        Ok(S3sFs { runtime: Some(runtime), dir, endpoint: format!("http://127.0.0.1:{port}") })
    }
}

impl Drop for S3sFs {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(Duration::from_secs(1));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
