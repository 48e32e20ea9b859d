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

/// One request a [`RecordingServer`] received.
#[derive(Clone, Debug)]
pub struct Seen {
    /// The path with its query.
    pub path: String,
    /// Header names lowercased, with their values.
    pub headers: Vec<(String, String)>,
}

impl Seen {
    /// The value of a header, by name in any case.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// An answer a [`RecordingServer`] gives for a path: status, headers, body.
pub type Route = (u16, Vec<(String, String)>, String);

/// A web server that records every request's path and headers and answers from a route
/// table (unknown paths 404): what the HTTP source sends where, seen from the server's side.
pub struct RecordingServer {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    seen: std::sync::Arc<std::sync::Mutex<Vec<Seen>>>,
    routes: std::sync::Arc<std::sync::Mutex<std::collections::BTreeMap<String, Route>>>,
    server: std::sync::Arc<tiny_http::Server>,
}

impl RecordingServer {
    /// Starts a server on 127.0.0.1 with no routes.
    pub fn start() -> anyhow::Result<RecordingServer> {
        let server = std::sync::Arc::new(tiny_http::Server::http("127.0.0.1:0").map_err(|e| anyhow::anyhow!("{e}"))?);
        let url = format!("http://{}", server.server_addr().to_ip().context("an IP address")?);
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let routes = std::sync::Arc::new(std::sync::Mutex::new(std::collections::BTreeMap::<String, Route>::new()));
        let (server2, seen2, routes2) = (server.clone(), seen.clone(), routes.clone());
        std::thread::spawn(move || {
            for req in server2.incoming_requests() {
                let headers = req
                    .headers()
                    .iter()
                    .map(|h| (h.field.to_string().to_ascii_lowercase(), h.value.to_string()))
                    .collect();
                seen2.lock().unwrap().push(Seen { path: req.url().to_string(), headers });
                let route = routes2.lock().unwrap().get(req.url().split('?').next().unwrap_or_default()).cloned();
                let (status, headers, body) = route.unwrap_or((404, Vec::new(), "not found".into()));
                let mut response = tiny_http::Response::from_string(body).with_status_code(status);
                for (k, v) in headers {
                    response.add_header(tiny_http::Header::from_bytes(k.as_bytes(), v.as_bytes()).unwrap());
                }
                let _ = req.respond(response);
            }
        });
        Ok(RecordingServer { url, seen, routes, server })
    }

    /// Answers `path` (without query) with `status`, `headers` and `body` from now on.
    pub fn route(&self, path: &str, status: u16, headers: &[(&str, &str)], body: &str) {
        let headers = headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        self.routes.lock().unwrap().insert(path.to_string(), (status, headers, body.to_string()));
    }

    /// Every request so far, in order.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for RecordingServer {
    fn drop(&mut self) {
        self.server.unblock();
    }
}
