//! A real Kafka-protocol broker for the suite: tansu (`crate::tools::tansu_binary`, in-memory
//! storage, ready in milliseconds), and kafka-python (`tests/kafka/client.py`), an independent
//! client that creates, grows and deletes topics and produces, so the feed's own code never
//! writes what it reads.

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use serde_json::{json, Value};

/// One tansu broker on 127.0.0.1, killed on drop.
pub struct Tansu {
    child: Child,
    /// `127.0.0.1:PORT`, what `brokers` takes.
    pub addr: String,
    binary: std::path::PathBuf,
}

impl Tansu {
    /// Starts a broker with in-memory storage; `authentication` makes it require SASL.
    pub fn start(authentication: bool) -> anyhow::Result<Tansu> {
        let binary = crate::tools::tansu_binary()?;
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let url = format!("tcp://127.0.0.1:{port}");
        let mut command = Command::new(&binary);
        command
            .args(["broker", "--storage-engine", "memory://tansu/", "--listener-url", &url])
            .args(["--advertised-listener-url", &url, "--silent"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if authentication {
            command.arg("--authentication");
        }
        let child = command.spawn().with_context(|| format!("start {}", binary.display()))?;
        let mut broker = Tansu { child, addr: format!("127.0.0.1:{port}"), binary };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(&broker.addr).is_err() {
            if let Some(status) = broker.child.try_wait()? {
                bail!("tansu exited before listening ({status})");
            }
            if Instant::now() > deadline {
                bail!("tansu did not listen on {port} within 30 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(broker)
    }

    /// Adds a SCRAM user (`mechanism`: `scram256` or `scram512`) with tansu's own CLI.
    pub fn add_user(&self, name: &str, password: &str, mechanism: &str) -> anyhow::Result<()> {
        let out = Command::new(&self.binary)
            .args(["user", "create", "--broker", &format!("tcp://{}", self.addr), "--mechanism", mechanism])
            .args([name, password])
            .output()?;
        if !out.status.success() {
            bail!("tansu user create: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(())
    }

    /// Runs one command of `tests/kafka/client.py` (kafka-python) with `options` on stdin.
    pub fn client(&self, command: &str, options: Value) -> anyhow::Result<Value> {
        client(&self.addr, command, options)
    }

    /// Creates `topic` with `partitions` partitions.
    pub fn create_topic(&self, topic: &str, partitions: u32) -> anyhow::Result<()> {
        self.client("create", json!({"topic": topic, "partitions": partitions})).map(|_| ())
    }

    /// Produces `messages` (`{"partition", "key", "value", …}`, see client.py) one request
    /// each; the (partition, offset) of each.
    pub fn produce(&self, topic: &str, messages: Value) -> anyhow::Result<Vec<(i64, i64)>> {
        self.produce_with(topic, messages, json!({}))
    }

    /// Produces with client.py options (`compression`, `flush_each`, `sasl`).
    pub fn produce_with(&self, topic: &str, messages: Value, options: Value) -> anyhow::Result<Vec<(i64, i64)>> {
        let mut opts = json!({"topic": topic, "messages": messages});
        if let (Value::Object(o), Value::Object(extra)) = (&mut opts, options) {
            o.extend(extra);
        }
        let out = self.client("produce", opts)?;
        let pairs = out.as_array().context("client.py printed no array")?;
        Ok(pairs.iter().map(|p| (p[0].as_i64().unwrap_or(-1), p[1].as_i64().unwrap_or(-1))).collect())
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `tests/kafka/client.py BOOTSTRAP COMMAND` with `options` as JSON on stdin.
pub fn client(bootstrap: &str, command: &str, options: Value) -> anyhow::Result<Value> {
    let site = crate::tools::kafka_python_path()?;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("kafka/client.py");
    let mut child = Command::new(crate::tools::python())
        .arg(&script)
        .args([bootstrap, command])
        .env("PYTHONPATH", &site)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("run python3 tests/kafka/client.py")?;
    {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().context("stdin")?;
        stdin.write_all(options.to_string().as_bytes())?;
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!("client.py {command}: {}", String::from_utf8_lossy(&out.stderr));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.lines().last().unwrap_or("null")).context("client.py printed no JSON")
}
