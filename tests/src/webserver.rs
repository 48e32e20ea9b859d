//! Real static web servers over a directory, for the HTTP resource source: npm `http-server`
//! (sends `ETag` and `Last-Modified`, answers 304 to `If-None-Match`; installed by
//! [`crate::tools::http_server_script`]) and Python's `http.server` (sends `Last-Modified`
//! only, answers 304 to `If-Modified-Since`, to the second). Both answer 404 for a missing
//! file. Each dies with the test process: a `sh` wrapper kills it when its stdin closes.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

/// A running web server serving a directory, stopped on drop.
pub struct WebServer {
    wrapper: Child,
    /// Closing it stops the server.
    stdin: Option<ChildStdin>,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
}

impl WebServer {
    /// npm `http-server` over `dir`, caching off (`-c-1`) so every answer is revalidated.
    pub fn node(dir: &Path) -> anyhow::Result<WebServer> {
        let script = crate::tools::http_server_script()?;
        let port = free_port()?;
        let cmd = format!("node '{}' '{}' -a 127.0.0.1 -p {port} -c-1 --silent", script.display(), dir.display());
        WebServer::spawn(&cmd, port)
    }

    /// `python3 -m http.server` over `dir`.
    pub fn python(dir: &Path) -> anyhow::Result<WebServer> {
        let port = free_port()?;
        let cmd = format!("'{}' -m http.server {port} --bind 127.0.0.1 -d '{}'", crate::tools::python(), dir.display());
        WebServer::spawn(&cmd, port)
    }

    fn spawn(cmd: &str, port: u16) -> anyhow::Result<WebServer> {
        let mut wrapper = Command::new("sh")
            .arg("-c")
            .arg(format!("{cmd} >/dev/null 2>&1 & pid=$!; read _ignored; kill $pid; wait $pid"))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot run sh to start a web server")?;
        let stdin = wrapper.stdin.take();
        let mut server = WebServer { wrapper, stdin, url: format!("http://127.0.0.1:{port}") };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = server.wrapper.try_wait()? {
                bail!("the web server exited before listening ({status}): {cmd}");
            }
            if Instant::now() > deadline {
                bail!("the web server did not listen on {port} within 30 s: {cmd}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(server)
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl Drop for WebServer {
    fn drop(&mut self) {
        self.stdin.take();
        let _ = self.wrapper.wait();
    }
}
