//! Stand-ins for Amazon SNS's side of an HTTPS subscription: an HTTPS host (a self-made CA,
//! [`crate::tls`]) serving the test signing certificate and answering `ConfirmSubscription`,
//! a signer that signs envelopes with the test key the way SNS does, and a relay between moto's
//! SNS and the receiver ([`SnsRelay`]).
//!
//! The test key (`sns-test-key.pem`) and certificate (`shared/src/s3/testdata/
//! sns-test-cert.pem`) were made once with openssl for these tests; they sign nothing else.
//! The signer builds the canonical string itself from the AWS SNS Developer Guide
//! ("Verifying the signatures of Amazon SNS messages"), independently of `owfeed::s3::sns`.

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
pub const TEST_CERT_PEM: &str = include_str!("../../shared/src/s3/testdata/sns-test-cert.pem");
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

    /// What an [`SnsRelay`] or [`SnsConfirmations`] needs of the host: its URL, the
    /// certificates it serves and the requests it got.
    pub fn handle(&self) -> HostHandle {
        HostHandle { url: self.url().to_string(), pems: self.pems.clone(), calls: self.calls.clone() }
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
    calls: Arc<Mutex<Vec<Call>>>,
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
    /// From sending the delivery to the receiver's answer: what the receiver's end costs SNS.
    pub took: std::time::Duration,
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
        SnsRelay::start_with(moto, receiver, host, false)
    }

    /// A relay in front of a whole API host: a delivery to `{url}/PATH` goes to `{api_host}/PATH`,
    /// so the relay's URL can be a hook's `apiHost` and the feed itself subscribes the
    /// receiver URL through it.
    pub fn in_front_of(moto: &str, api_host: &str, host: HostHandle) -> anyhow::Result<SnsRelay> {
        SnsRelay::start_with(moto, api_host.trim_end_matches('/'), host, true)
    }

    fn start_with(moto: &str, receiver: &str, host: HostHandle, by_path: bool) -> anyhow::Result<SnsRelay> {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").map_err(|e| anyhow::anyhow!("{e}"))?);
        let url = if by_path {
            format!("http://{}", server.server_addr())
        } else {
            format!("http://{}/sns", server.server_addr())
        };
        let log = Arc::new(Mutex::new(Vec::new()));
        let (srv, recorded) = (server.clone(), log.clone());
        let (moto, receiver) = (moto.trim_end_matches('/').to_string(), receiver.to_string());
        let thread = std::thread::spawn(move || {
            let signer = SnsSigner::new();
            let http = ureq::Agent::config_builder().http_status_as_error(false).build().new_agent();
            for mut req in srv.incoming_requests() {
                let call = Call::read(&mut req);
                let to = if by_path { format!("{receiver}{}", call.path) } else { receiver.clone() };
                let relayed = relay(&http, &signer, &moto, &to, &host, call.body);
                recorded.lock().unwrap().push(relayed);
                let _ = req.respond(tiny_http::Response::from_string("").with_status_code(200));
            }
        });
        Ok(SnsRelay { url, log, server, thread: Some(thread) })
    }

    /// The URL to subscribe (`Protocol=http`), or for [`SnsRelay::in_front_of`] the API host.
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
    let cert_url = env["SigningCertURL"].as_str().unwrap_or_default().to_string();
    if resigned {
        env["Message"] = Value::String(message.to_string());
        env["SigningCertURL"] = Value::String(format!("{}{CERT_PATH}", host.url));
        signer.sign(&mut env, "2");
    } else if cert_url.starts_with(&host.url) {
        // Already signed for the stand-in ([`SnsConfirmations`]): passed on as it is.
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
    let started = std::time::Instant::now();
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
            Relayed { resigned, status, answer: answer.unwrap_or(Value::Null), took: started.elapsed() }
        }
        Err(e) => Relayed { resigned, status: 0, answer: Value::String(e.to_string()), took: started.elapsed() },
    }
}

/// In front of moto's SNS: plays what moto 5.2.1 leaves out of an HTTP(S) subscription
/// (moto/sns/models.py `subscribe` marks every subscription confirmed at once and sends
/// nothing; `confirm_subscription` does nothing): AWS's `SubscriptionConfirmation` and the
/// pending state until it is confirmed. Query API calls go to moto with their headers as
/// signed ([`crate::s3dialect::forward`]), so moto still verifies every signature.
///
/// After moto answers a `Subscribe` of an http(s) endpoint, and before that answer goes back
/// (AWS sends the confirmation while `Subscribe` runs or just after; before the answer is the
/// earliest, the order a client must survive), a confirmation with a new token is POSTed to the
/// endpoint, signed with the test key, its `SigningCertURL` and `SubscribeURL` on the SNS
/// stand-in. `Subscribe` again for a subscription still pending sends a new one, as AWS does
/// for a pending subscription. Until the stand-in has been asked to confirm one of the
/// subscription's tokens, `GetSubscriptionAttributes` answers `PendingConfirmation` true and
/// `ListSubscriptionsByTopic` lists it as `PendingConfirmation`, without its ARN, as SNS does.
pub struct SnsConfirmations {
    url: String,
    sent: Arc<Mutex<Vec<(String, u16)>>>,
    server: Arc<tiny_http::Server>,
    thread: Option<JoinHandle<()>>,
}

impl SnsConfirmations {
    /// Starts it on 127.0.0.1 in front of moto (`http://127.0.0.1:PORT`).
    pub fn start(moto: &str, host: HostHandle) -> anyhow::Result<SnsConfirmations> {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").map_err(|e| anyhow::anyhow!("{e}"))?);
        let url = format!("http://{}", server.server_addr());
        let sent = Arc::new(Mutex::new(Vec::new()));
        let (srv, recorded) = (server.clone(), sent.clone());
        let upstream = moto.trim_start_matches("http://").trim_end_matches('/').to_string();
        let thread = std::thread::spawn(move || {
            let signer = SnsSigner::new();
            let http = ureq::Agent::config_builder().http_status_as_error(false).build().new_agent();
            let mut tokens: HashMap<String, Vec<String>> = HashMap::new();
            let mut next = 0u32;
            for mut req in srv.incoming_requests() {
                let method = req.method().as_str().to_string();
                let path = req.url().to_string();
                let mut body = Vec::new();
                let _ = std::io::Read::read_to_end(req.as_reader(), &mut body);
                let headers: Vec<(String, String)> = req
                    .headers()
                    .iter()
                    .map(|h| (h.field.as_str().as_str().to_string(), h.value.as_str().to_string()))
                    .collect();
                let form: HashMap<String, String> = String::from_utf8_lossy(&body)
                    .split('&')
                    .filter_map(|kv| kv.split_once('='))
                    .map(|(k, v)| {
                        (owfeed_s3::decode_form(k).unwrap_or_default(), owfeed_s3::decode_form(v).unwrap_or_default())
                    })
                    .collect();
                let Some((status, mut payload)) = crate::s3dialect::forward(&upstream, &method, &path, &headers, &body)
                else {
                    let _ = req.respond(tiny_http::Response::from_data(Vec::new()).with_status_code(502));
                    continue;
                };
                let field = |k: &str| form.get(k).cloned().unwrap_or_default();
                let text = String::from_utf8_lossy(&payload).to_string();
                match field("Action").as_str() {
                    "Subscribe" if status == 200 && ["http", "https"].contains(&field("Protocol").as_str()) => {
                        next += 1;
                        let token = format!("{next:064x}");
                        let answered = confirm(&http, &signer, &host, &field("TopicArn"), &field("Endpoint"), &token);
                        tokens
                            .entry(between(&text, "<SubscriptionArn>", "</SubscriptionArn>"))
                            .or_default()
                            .push(token);
                        recorded.lock().unwrap().push((field("Endpoint"), answered));
                    }
                    "GetSubscriptionAttributes" if status == 200 => {
                        let arn = field("SubscriptionArn");
                        let pending = tokens.contains_key(&arn) && !confirmed(&host, &tokens, &arn);
                        payload = set_pending(&text, pending).into_bytes();
                    }
                    // SNS lists a subscription waiting for its confirmation without its ARN.
                    "ListSubscriptionsByTopic" if status == 200 => {
                        let mut listed = text.clone();
                        for arn in tokens.keys().filter(|arn| !confirmed(&host, &tokens, arn)) {
                            listed = listed.replace(
                                &format!("<SubscriptionArn>{arn}</SubscriptionArn>"),
                                "<SubscriptionArn>PendingConfirmation</SubscriptionArn>",
                            );
                        }
                        payload = listed.into_bytes();
                    }
                    _ => {}
                }
                let _ = req.respond(tiny_http::Response::from_data(payload).with_status_code(status));
            }
        });
        Ok(SnsConfirmations { url, sent, server, thread: Some(thread) })
    }

    /// The `snsEndpoint` to give the feed.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The confirmations sent so far: (endpoint, the status it answered).
    pub fn sent(&self) -> Vec<(String, u16)> {
        self.sent.lock().unwrap().clone()
    }
}

impl Drop for SnsConfirmations {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Whether the stand-in host was asked to confirm one of the subscription's tokens.
fn confirmed(host: &HostHandle, tokens: &HashMap<String, Vec<String>>, arn: &str) -> bool {
    let Some(tokens) = tokens.get(arn) else { return false };
    host.calls.lock().unwrap().iter().any(|c| tokens.iter().any(|t| c.path.ends_with(&format!("&Token={t}"))))
}

fn between(text: &str, open: &str, close: &str) -> String {
    let Some(start) = text.find(open).map(|i| i + open.len()) else { return String::new() };
    text[start..].find(close).map(|end| text[start..start + end].trim().to_string()).unwrap_or_default()
}

/// moto's `GetSubscriptionAttributes` answer with `PendingConfirmation` set to `pending`.
fn set_pending(answer: &str, pending: bool) -> String {
    let Some(key) = answer.find("<key>PendingConfirmation</key>") else { return answer.to_string() };
    let rest = &answer[key..];
    let (Some(open), Some(close)) = (rest.find("<value>"), rest.find("</value>")) else { return answer.to_string() };
    format!("{}{}<value>{pending}{}", &answer[..key], &rest[..open], &rest[close..])
}

/// POSTs a signed `SubscriptionConfirmation` to `endpoint`; returns its status (0: no answer).
fn confirm(http: &ureq::Agent, signer: &SnsSigner, host: &HostHandle, topic: &str, endpoint: &str, token: &str) -> u16 {
    let mut env = serde_json::json!({"Type": "SubscriptionConfirmation", "MessageId": format!("confirm-{token}"),
        "Token": token, "TopicArn": topic,
        "Message": format!("You have chosen to subscribe to the topic {topic}.\nTo confirm the subscription, visit the SubscribeURL included in this message."),
        "SubscribeURL": format!("{}/?Action=ConfirmSubscription&TopicArn={topic}&Token={token}", host.url),
        "Timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "SigningCertURL": format!("{}{CERT_PATH}", host.url)});
    signer.sign(&mut env, "2");
    http.post(endpoint)
        .header("Content-Type", "text/plain; charset=UTF-8")
        .header("x-amz-sns-message-type", "SubscriptionConfirmation")
        .header("x-amz-sns-message-id", env["MessageId"].as_str().unwrap_or_default())
        .header("x-amz-sns-topic-arn", topic)
        .send(env.to_string())
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}
