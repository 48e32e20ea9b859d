//! `Moto`: a real S3 server for tests (moto, installed by [`crate::tools`] on first use) that
//! verifies SigV4 signatures.
//!
//! moto checks no signatures until `INITIAL_NO_AUTH_ACTION_COUNT` actions have been served, so
//! the harness spends exactly those free actions on three IAM calls (CreateUser, PutUserPolicy
//! with an allow-all policy, CreateAccessKey) and from then on every request must be signed with
//! the new key: a wrong secret gets `SignatureDoesNotMatch`. The `/moto-api/` readiness probe is
//! not an action. This module does not decide bucket layout or test data; tests do.
//!
//! moto runs under a tiny `sh` wrapper that kills it when its stdin closes, so the server dies
//! with the test process even when the process exits without running `Drop` (the shared server
//! lives in a `static`).

use std::io::Read;
use std::net::TcpListener;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use owfeed_s3::{Condition, S3Client, S3Config, SecretString};

/// Free (unauthenticated) actions moto serves before it verifies signatures: the three IAM calls.
const FREE_ACTIONS: &str = "3";

/// How long moto may take to answer its first request.
const STARTUP_LIMIT: Duration = Duration::from_secs(30);

/// The signing region moto is used with.
pub const REGION: &str = "us-east-1";

/// An allow-all inline policy, form-encoded for PutUserPolicy.
const ALLOW_ALL_POLICY: &str =
    "%7B%22Version%22%3A%222012-10-17%22%2C%22Statement%22%3A%5B%7B%22Effect%22%3A%22Allow%22%2C%22Action%22%3A%22*%22%2C%22Resource%22%3A%22*%22%7D%5D%7D";

/// A running moto server with an IAM access key whose signatures it verifies.
pub struct Moto {
    wrapper: Child,
    stdin: Option<ChildStdin>,
    endpoint: String,
    access_key_id: String,
    secret_access_key: String,
    startup: Duration,
}

impl std::fmt::Debug for Moto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Moto").field("endpoint", &self.endpoint).finish_non_exhaustive()
    }
}

impl Moto {
    /// Starts a fresh moto on a free loopback port and provisions an access key.
    pub fn start() -> anyhow::Result<Moto> {
        Moto::start_with(true)
    }

    /// Starts a fresh moto that checks no signatures at all, for what moto's own verifier gets
    /// wrong: it re-encodes escapes such as `%2B`, `%25`, `%26`, `%2A`, `%2F` and UTF-8 before
    /// comparing, so even boto3's signatures for keys with `+`, `%`, `&`, `*` or non-ASCII, and
    /// for query values with `/`, fail there. Any credentials work.
    pub fn start_unverified() -> anyhow::Result<Moto> {
        Moto::start_with(false)
    }

    fn start_with(verify_signatures: bool) -> anyhow::Result<Moto> {
        let mut last_error = anyhow!("moto did not start");
        // A free port can be taken between probing and moto binding it; try a few.
        for _ in 0..3 {
            match Moto::start_once(verify_signatures) {
                Ok(moto) => return Ok(moto),
                Err(e) => last_error = e,
            }
        }
        Err(last_error)
    }

    /// One moto shared by every test in the process; tests isolate themselves with
    /// [`Moto::unique_bucket`] names.
    pub fn shared() -> anyhow::Result<&'static Moto> {
        static SHARED: OnceLock<Result<Moto, String>> = OnceLock::new();
        SHARED.get_or_init(|| Moto::start().map_err(|e| format!("{e:#}"))).as_ref().map_err(|e| anyhow!("{e}"))
    }

    /// One signature-less moto shared by every test in the process (see [`Moto::start_unverified`]).
    pub fn shared_unverified() -> anyhow::Result<&'static Moto> {
        static SHARED: OnceLock<Result<Moto, String>> = OnceLock::new();
        SHARED
            .get_or_init(|| Moto::start_unverified().map_err(|e| format!("{e:#}")))
            .as_ref()
            .map_err(|e| anyhow!("{e}"))
    }

    fn start_once(verify_signatures: bool) -> anyhow::Result<Moto> {
        let began = Instant::now();
        let pythonpath = crate::tools::moto_pythonpath()?;
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(r#""$1" -m moto.server -H 127.0.0.1 -p "$2" >/dev/null 2>&1 & pid=$!; read _ignored; kill $pid; wait $pid"#)
            .arg("sh")
            .arg(crate::tools::python())
            .arg(port.to_string())
            .env("PYTHONPATH", &pythonpath);
        if verify_signatures {
            command.env("INITIAL_NO_AUTH_ACTION_COUNT", FREE_ACTIONS);
        } else {
            command.env_remove("INITIAL_NO_AUTH_ACTION_COUNT");
        }
        let mut wrapper = command
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot run sh to start moto")?;
        let stdin = wrapper.stdin.take();
        let endpoint = format!("http://127.0.0.1:{port}");
        let mut moto = Moto {
            wrapper,
            stdin,
            endpoint,
            access_key_id: String::new(),
            secret_access_key: String::new(),
            startup: Duration::ZERO,
        };
        moto.wait_ready()?;
        if verify_signatures {
            moto.provision_access_key()?;
        } else {
            moto.access_key_id = "AKIAUNVERIFIED".to_string();
            moto.secret_access_key = "unverified-secret".to_string();
        }
        moto.startup = began.elapsed();
        Ok(moto)
    }

    fn wait_ready(&mut self) -> anyhow::Result<()> {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(2)))
            .build()
            .into();
        let deadline = Instant::now() + STARTUP_LIMIT;
        loop {
            if let Ok(response) = agent.get(format!("{}/moto-api/", self.endpoint)).call() {
                if response.status() == 200 {
                    return Ok(());
                }
            }
            if let Some(status) = self.wrapper.try_wait()? {
                let site = crate::tools::moto_pythonpath().unwrap_or_default();
                bail!(
                    "moto exited before answering ({status}); `PYTHONPATH={} python3 -m moto.server` shows why",
                    site.display()
                );
            }
            if Instant::now() > deadline {
                bail!("moto did not answer on {} within {STARTUP_LIMIT:?}", self.endpoint);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Spends the free actions on IAM: user, allow-all policy, access key.
    fn provision_access_key(&mut self) -> anyhow::Result<()> {
        self.iam("Action=CreateUser&Version=2010-05-08&UserName=feed-tests")?;
        self.iam(&format!(
            "Action=PutUserPolicy&Version=2010-05-08&UserName=feed-tests&PolicyName=allow-all&PolicyDocument={ALLOW_ALL_POLICY}"
        ))?;
        let created = self.iam("Action=CreateAccessKey&Version=2010-05-08&UserName=feed-tests")?;
        self.access_key_id = element(&created, "AccessKeyId")?;
        self.secret_access_key = element(&created, "SecretAccessKey")?;
        Ok(())
    }

    /// One IAM form POST. moto routes a request by the service in its Authorization header's
    /// credential scope; during the free actions it does not check the signature itself.
    fn iam(&self, form: &str) -> anyhow::Result<String> {
        let authorization =
            "AWS4-HMAC-SHA256 Credential=AKIAFEEDTESTS/20240101/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=00";
        let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        let mut response = agent
            .post(format!("{}/", self.endpoint))
            .header("Authorization", authorization)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .send(form)?;
        let status = response.status().as_u16();
        let mut body = String::new();
        response.body_mut().as_reader().read_to_string(&mut body)?;
        if status != 200 {
            bail!("moto IAM call {form} failed with HTTP {status}: {body}");
        }
        Ok(body)
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The provisioned access key id.
    pub fn access_key_id(&self) -> &str {
        &self.access_key_id
    }

    /// The provisioned secret access key.
    pub fn secret_access_key(&self) -> &str {
        &self.secret_access_key
    }

    /// How long starting and provisioning took.
    pub fn startup_time(&self) -> Duration {
        self.startup
    }

    /// A path-style configuration with the provisioned credentials.
    pub fn config(&self) -> S3Config {
        S3Config::new(&self.endpoint, REGION, &self.access_key_id, SecretString::new(&self.secret_access_key))
    }

    /// A path-style client with the provisioned credentials.
    pub fn client(&self) -> S3Client {
        S3Client::new(self.config()).expect("moto endpoint is a valid S3 endpoint")
    }

    /// A bucket name no other test in this process uses, starting with `prefix`.
    pub fn unique_bucket(prefix: &str) -> String {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        format!("{prefix}-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
    }

    /// Creates a bucket (signed with the provisioned key).
    pub fn create_bucket(&self, bucket: &str) -> anyhow::Result<()> {
        Ok(self.client().create_bucket(bucket)?)
    }

    /// Writes an object unconditionally; returns its ETag.
    pub fn put(&self, bucket: &str, key: &str, body: &[u8]) -> anyhow::Result<String> {
        Ok(self.client().put_object(bucket, key, body.to_vec(), Condition::None)?)
    }

    /// Deletes an object.
    pub fn delete(&self, bucket: &str, key: &str) -> anyhow::Result<()> {
        Ok(self.client().delete_object(bucket, key)?)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        // Closing stdin makes the wrapper kill moto and exit.
        drop(self.stdin.take());
        let _ = self.wrapper.wait();
    }
}

/// The text of the first `<name>` element in an IAM response.
fn element(xml: &str, name: &str) -> anyhow::Result<String> {
    let open = format!("<{name}>");
    let start = xml.find(&open).ok_or_else(|| anyhow!("no <{name}> in moto's answer: {xml}"))? + open.len();
    let end = xml[start..].find("</").ok_or_else(|| anyhow!("unclosed <{name}> in moto's answer"))?;
    Ok(xml[start..start + end].to_string())
}
