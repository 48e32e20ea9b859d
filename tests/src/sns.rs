//! Stand-ins for Amazon SNS's side of an HTTPS subscription: an HTTPS host (a self-made CA,
//! [`crate::tls`]) serving the test signing certificate and answering `ConfirmSubscription`,
//! a signer that signs envelopes with the test key the way SNS does, and a relay between moto's
//! SNS and the receiver ([`SnsRelay`]).
//!
//! The test key (`sns-test-key.pem`) and certificate (`shared/src/hooks/testdata/
//! sns-test-cert.pem`) were made once with openssl for these tests; they sign nothing else.
//! The signer builds the canonical string itself from the AWS SNS Developer Guide
//! ("Verifying the signatures of Amazon SNS messages"), independently of `owfeed::hooks::sns`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use rsa::pkcs1v15::SigningKey;
use rsa::pkcs8::DecodePrivateKey;
use rsa::signature::{SignatureEncoding, Signer};
use rsa::RsaPrivateKey;
use serde_json::Value;

use crate::fake_github::Call;
use crate::tls::{TestCa, TlsProxy};

/// The test signing certificate, PEM (what the host serves at [`FakeSnsHost::cert_url`]).
pub const TEST_CERT_PEM: &str = include_str!("../../shared/src/hooks/testdata/sns-test-cert.pem");
const TEST_KEY_PEM: &str = include_str!("sns-test-key.pem");

/// The path the certificate is served at.
pub const CERT_PATH: &str = "/SimpleNotificationService-owfeedtest.pem";

/// Signs SNS envelopes with the test key.
pub struct SnsSigner {
    key: RsaPrivateKey,
}

impl Default for SnsSigner {
    fn default() -> Self {
        SnsSigner::new()
    }
}

impl SnsSigner {
    /// The signer with the test key.
    pub fn new() -> SnsSigner {
        SnsSigner { key: RsaPrivateKey::from_pkcs8_pem(TEST_KEY_PEM).expect("test key") }
    }

    /// The string SNS signs for `envelope`: `Name\nvalue\n` for the fields of its `Type`.
    pub fn string_to_sign(envelope: &Value) -> String {
        let fields: &[&str] = if envelope["Type"] == "Notification" {
            &["Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"]
        } else {
            &["Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"]
        };
        let mut out = String::new();
        for name in fields {
            if let Some(value) = envelope[*name].as_str() {
                out.push_str(&format!("{name}\n{value}\n"));
            }
        }
        out
    }

    /// Sets `SignatureVersion` (`"1"`: SHA1withRSA, `"2"`: SHA256withRSA) and `Signature`.
    pub fn sign(&self, envelope: &mut Value, version: &str) {
        let text = SnsSigner::string_to_sign(envelope);
        let signature = match version {
            "1" => SigningKey::<sha1::Sha1>::new(self.key.clone()).sign(text.as_bytes()).to_vec(),
            _ => SigningKey::<sha2::Sha256>::new(self.key.clone()).sign(text.as_bytes()).to_vec(),
        };
        envelope["SignatureVersion"] = Value::String(version.to_string());
        envelope["Signature"] = Value::String(BASE64.encode(signature));
    }
}

/// An HTTPS host standing in for `sns.<region>.amazonaws.com`: serves the test certificate
/// at [`CERT_PATH`], answers `GET /?Action=ConfirmSubscription…` with SNS's XML, answers
/// anything else 404, and records every request. Stops on drop.
pub struct FakeSnsHost {
    /// The CA whose certificate the host presents (for `127.0.0.1` and `localhost`).
    pub ca: TestCa,
    calls: Arc<Mutex<Vec<Call>>>,
    pems: Arc<Mutex<HashMap<String, String>>>,
    server: Arc<tiny_http::Server>,
    thread: Option<JoinHandle<()>>,
    tls: TlsProxy,
}

impl FakeSnsHost {
    /// Starts the host on 127.0.0.1.
    pub fn start() -> anyhow::Result<FakeSnsHost> {
        let ca = TestCa::new()?;
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").map_err(|e| anyhow::anyhow!("{e}"))?);
        let upstream = format!("http://{}", server.server_addr());
        let calls = Arc::new(Mutex::new(Vec::new()));
        let pems = Arc::new(Mutex::new(HashMap::from([(CERT_PATH.to_string(), TEST_CERT_PEM.to_string())])));
        let (srv, recorded, served) = (server.clone(), calls.clone(), pems.clone());
        let thread = std::thread::spawn(move || {
            for mut req in srv.incoming_requests() {
                let call = Call::read(&mut req);
                let path = call.path.clone();
                recorded.lock().unwrap().push(call);
                let pem = served.lock().unwrap().get(&path).cloned();
                let response = if let Some(pem) = pem {
                    tiny_http::Response::from_string(pem).with_status_code(200)
                } else if path.starts_with("/?Action=ConfirmSubscription") {
                    tiny_http::Response::from_string(
                        "<ConfirmSubscriptionResponse><ConfirmSubscriptionResult><SubscriptionArn>arn:aws:sns:us-east-1:123456789012:owfeed-uploads:0c8f</SubscriptionArn></ConfirmSubscriptionResult></ConfirmSubscriptionResponse>",
                    )
                    .with_status_code(200)
                } else {
                    tiny_http::Response::from_string("not found").with_status_code(404)
                };
                let _ = req.respond(response);
            }
        });
        let tls = TlsProxy::start(&upstream, &ca)?;
        Ok(FakeSnsHost { ca, calls, pems, server, thread: Some(thread), tls })
    }

    /// `127.0.0.1:PORT`: the host the test receiver trusts besides SNS.
    pub fn host_port(&self) -> String {
        self.tls.url().trim_start_matches("https://").to_string()
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        self.tls.url()
    }

    /// The `SigningCertURL` of the test certificate.
    pub fn cert_url(&self) -> String {
        format!("{}{CERT_PATH}", self.url())
    }

    /// Serves `pem` at `path` too (another signer's certificate).
    pub fn serve_pem(&self, path: &str, pem: &str) {
        self.pems.lock().unwrap().insert(path.to_string(), pem.to_string());
    }

    /// What an [`SnsRelay`] needs of the host: its URL and the certificates it serves.
    pub fn handle(&self) -> HostHandle {
        HostHandle { url: self.url().to_string(), pems: self.pems.clone() }
    }

    /// Every request so far, as `METHOD path`.
    pub fn requests(&self) -> Vec<String> {
        self.calls.lock().unwrap().iter().map(|c| format!("{} {}", c.method, c.path)).collect()
    }
}

impl Drop for FakeSnsHost {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The part of a [`FakeSnsHost`] a relay thread uses.
#[derive(Clone)]
pub struct HostHandle {
    url: String,
    pems: Arc<Mutex<HashMap<String, String>>>,
}

/// What the relay did with one delivery.
#[derive(Clone, Debug)]
pub struct Relayed {
    /// The message had to be changed, so it was signed again with the test key.
    pub resigned: bool,
    /// The receiver's status.
    pub status: u16,
    /// The receiver's JSON answer.
    pub answer: Value,
}

/// Between moto's SNS and the receiver, doing what moto 5.2.1 leaves out of an HTTP delivery
/// (moto/sns/models.py `Subscription.publish`, `get_post_data`):
/// - adds the `x-amz-sns-message-type`, `x-amz-sns-message-id` and `x-amz-sns-topic-arn`
///   headers SNS sends;
/// - points `SigningCertURL` (not signed) at the local HTTPS host instead of
///   `sns.<region>.amazonaws.com`: moto signs for real (SignatureVersion 2, a key of its own),
///   so the relay fetches moto's certificate from moto and the host serves it;
/// - moto writes a record's `eventTime` without a zone (`datetime.now()`, moto/s3/
///   notifications.py `_EVENT_TIME_FORMAT`) where S3 writes `Z`, and the receiver refuses a
///   time without a zone: the relay appends the `Z` (moto's local time, which the test does not
///   check) and, since `Message` is signed, signs the envelope again with the test key and
///   points `SigningCertURL` at the test certificate.
///
/// Answers moto 200 whatever the receiver said, and records what it said.
pub struct SnsRelay {
    url: String,
    log: Arc<Mutex<Vec<Relayed>>>,
    server: Arc<tiny_http::Server>,
    thread: Option<JoinHandle<()>>,
}

impl SnsRelay {
    /// Starts the relay on 127.0.0.1, delivering to `receiver`; `moto` serves moto's certificates.
    pub fn start(moto: &str, receiver: &str, host: HostHandle) -> anyhow::Result<SnsRelay> {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").map_err(|e| anyhow::anyhow!("{e}"))?);
        let url = format!("http://{}/sns", server.server_addr());
        let log = Arc::new(Mutex::new(Vec::new()));
        let (srv, recorded) = (server.clone(), log.clone());
        let (moto, receiver) = (moto.trim_end_matches('/').to_string(), receiver.to_string());
        let thread = std::thread::spawn(move || {
            let signer = SnsSigner::new();
            let http = ureq::Agent::config_builder().http_status_as_error(false).build().new_agent();
            for mut req in srv.incoming_requests() {
                let call = Call::read(&mut req);
                let relayed = relay(&http, &signer, &moto, &receiver, &host, call.body);
                recorded.lock().unwrap().push(relayed);
                let _ = req.respond(tiny_http::Response::from_string("").with_status_code(200));
            }
        });
        Ok(SnsRelay { url, log, server, thread: Some(thread) })
    }

    /// The URL to subscribe (`Protocol=http`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// What was relayed so far, in order.
    pub fn relayed(&self) -> Vec<Relayed> {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for SnsRelay {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// An `Authorization` header that makes moto's server route a request to `service` (moto
/// started with `start_unverified` checks no signature).
pub fn moto_route(service: &str) -> String {
    format!(
        "AWS4-HMAC-SHA256 Credential=test/20261127/us-east-1/{service}/aws4_request, SignedHeaders=host, Signature=0"
    )
}

fn relay(
    http: &ureq::Agent,
    signer: &SnsSigner,
    moto: &str,
    receiver: &str,
    host: &HostHandle,
    mut env: Value,
) -> Relayed {
    let mut message: Value = serde_json::from_str(env["Message"].as_str().unwrap_or_default()).unwrap_or(Value::Null);
    let mut resigned = false;
    for record in message["Records"].as_array_mut().into_iter().flatten() {
        if let Some(time) = record["eventTime"].as_str().filter(|t| !t.ends_with('Z')) {
            record["eventTime"] = Value::String(format!("{time}Z"));
            resigned = true;
        }
    }
    if resigned {
        env["Message"] = Value::String(message.to_string());
        env["SigningCertURL"] = Value::String(format!("{}{CERT_PATH}", host.url));
        signer.sign(&mut env, "2");
    } else {
        let cert_url = env["SigningCertURL"].as_str().unwrap_or_default().to_string();
        let path = cert_url.find(".com/").map(|i| cert_url[i + 4..].to_string()).unwrap_or_default();
        let pem = http
            .get(format!("{moto}{path}"))
            .header("Authorization", moto_route("sns"))
            .call()
            .ok()
            .and_then(|mut r| r.body_mut().read_to_string().ok())
            .unwrap_or_default();
        host.pems.lock().unwrap().insert(path.clone(), pem);
        env["SigningCertURL"] = Value::String(format!("{}{path}", host.url));
    }
    let kind = env["Type"].as_str().unwrap_or_default().to_string();
    let resp = http
        .post(receiver)
        .header("Content-Type", "text/plain; charset=UTF-8")
        .header("x-amz-sns-message-type", &kind)
        .header("x-amz-sns-message-id", env["MessageId"].as_str().unwrap_or_default())
        .header("x-amz-sns-topic-arn", env["TopicArn"].as_str().unwrap_or_default())
        .send(env.to_string());
    match resp {
        Ok(mut r) => {
            let status = r.status().as_u16();
            let answer = r.body_mut().read_to_string().ok().and_then(|t| serde_json::from_str(&t).ok());
            Relayed { resigned, status, answer: answer.unwrap_or(Value::Null) }
        }
        Err(e) => Relayed { resigned, status: 0, answer: Value::String(e.to_string()) },
    }
}
