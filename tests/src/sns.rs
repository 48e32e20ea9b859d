//! Stand-ins for Amazon SNS's side of an HTTPS subscription: an HTTPS host (a self-made CA,
//! [`crate::tls`]) serving the test signing certificate and answering `ConfirmSubscription`,
//! and a signer that signs envelopes with the test key the way SNS does.
//!
//! The test key (`sns-test-key.pem`) and certificate (`shared/src/hooks/testdata/
//! sns-test-cert.pem`) were made once with openssl for these tests; they sign nothing else.
//! The signer builds the canonical string itself from the AWS SNS Developer Guide
//! ("Verifying the signatures of Amazon SNS messages"), independently of `owfeed::hooks::sns`.

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
        let (srv, recorded) = (server.clone(), calls.clone());
        let thread = std::thread::spawn(move || {
            for mut req in srv.incoming_requests() {
                let call = Call::read(&mut req);
                let path = call.path.clone();
                recorded.lock().unwrap().push(call);
                let response = if path == CERT_PATH {
                    tiny_http::Response::from_string(TEST_CERT_PEM).with_status_code(200)
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
        Ok(FakeSnsHost { ca, calls, server, thread: Some(thread), tls })
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
