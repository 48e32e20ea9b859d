//! A Kafka-protocol proxy in front of tansu for what tansu 0.6 cannot show: it plays a broker
//! the way Apache Kafka answers where tansu does not, request by request, on the real wire.
//!
//! * **Offsets as Kafka reports them** (`kafka_offsets`): ListOffsets(latest) answers the high
//!   watermark (tansu: the last batch's base offset + 1), and a Fetch past the high watermark
//!   answers `OFFSET_OUT_OF_RANGE` (tansu: no error, no records).
//! * **Retention** (`retain_from`): the log of a partition starts at a later offset, as after
//!   Kafka's retention deleted segments (tansu 0.6 cannot move its log start: DeleteRecords is
//!   `todo!()`): ListOffsets(earliest) answers that start, a Fetch below it answers
//!   `OFFSET_OUT_OF_RANGE` with the new `log_start_offset`, every Fetch reports it.
//! * **A topic that grows** (`hide_partitions_from`, `reveal_partitions`): the topic is created
//!   in tansu with all its partitions and the proxy hides the last ones from Metadata (and
//!   refuses them elsewhere with `UNKNOWN_TOPIC_OR_PARTITION`) until revealed, as a Kafka topic
//!   looks before and after CreatePartitions (tansu 0.6 has none).
//! * **SASL, a stand-in** (`require_sasl`): the broker's side of SaslHandshake and
//!   SaslAuthenticate with one user: PLAIN, and SCRAM-SHA-256/512 per RFC 5802/7677 (a random
//!   salt and nonce, 4096 iterations as Kafka's default), refusing wrong credentials with
//!   `SASL_AUTHENTICATION_FAILED` as Kafka does; every other request before authentication
//!   closes the connection, as Kafka does. tansu 0.6 accepts any PLAIN password and its own
//!   `tansu user create` fails against it, so no broker here checks credentials.
//!
//! Metadata and FindCoordinator answers name the proxy (or the address set with `advertise`,
//! e.g. a TLS terminator in front of it) instead of tansu, so every connection of the client
//! goes through it. Requests it does not play are forwarded byte for byte.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use bytes::{Bytes, BytesMut};
use hmac::{Mac, SimpleHmac};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, BrokerId, FetchRequest, FetchResponse, FindCoordinatorResponse, ListOffsetsRequest,
    ListOffsetsResponse, MetadataResponse, RequestHeader, ResponseHeader, SaslAuthenticateRequest,
    SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use sha2::{Digest, Sha256, Sha512};

/// What the proxy plays; changed while it runs.
#[derive(Default)]
struct Plays {
    kafka_offsets: bool,
    log_start: BTreeMap<i32, i64>,
    hidden_from: Option<i32>,
    sasl: Option<(String, String)>,
    advertise: Option<(String, i32)>,
    /// Requests seen, by API key.
    seen: BTreeMap<i16, usize>,
    /// SaslAuthenticate rounds refused.
    refused: usize,
}

/// A running proxy; stops accepting when dropped.
pub struct KafkaProxy {
    /// `127.0.0.1:PORT`, what `brokers` takes.
    pub addr: String,
    plays: Arc<Mutex<Plays>>,
    stop: Arc<AtomicBool>,
}

impl KafkaProxy {
    /// Starts a proxy on 127.0.0.1 in front of the broker at `upstream` (`host:port`), playing
    /// nothing yet.
    pub fn start(upstream: &str) -> anyhow::Result<KafkaProxy> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?.to_string();
        let plays: Arc<Mutex<Plays>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (p, s, up, own) = (plays.clone(), stop.clone(), upstream.to_string(), addr.clone());
        thread::spawn(move || {
            for client in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = client else { continue };
                let (p, up, own) = (p.clone(), up.clone(), own.clone());
                thread::spawn(move || {
                    let _ = serve(client, &up, &own, &p);
                });
            }
        });
        Ok(KafkaProxy { addr, plays, stop })
    }

    fn plays(&self) -> std::sync::MutexGuard<'_, Plays> {
        self.plays.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Answers ListOffsets(latest) and a Fetch past the end as Apache Kafka does.
    pub fn kafka_offsets(&self) {
        self.plays().kafka_offsets = true;
    }

    /// The log of `partition` starts at `offset` from now on (retention deleted what is before).
    pub fn retain_from(&self, partition: i32, offset: i64) {
        self.plays().log_start.insert(partition, offset);
    }

    /// Hides partitions `from` and above (the topic has only `from` partitions).
    pub fn hide_partitions_from(&self, from: i32) {
        self.plays().hidden_from = Some(from);
    }

    /// Shows every partition again (the topic grew).
    pub fn reveal_partitions(&self) {
        self.plays().hidden_from = None;
    }

    /// Requires SASL (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512) as `user` with `password`.
    pub fn require_sasl(&self, user: &str, password: &str) {
        self.plays().sasl = Some((user.to_string(), password.to_string()));
    }

    /// Names `host:port` as the broker in Metadata and FindCoordinator answers (a TLS
    /// terminator in front of this proxy).
    pub fn advertise(&self, addr: &str) {
        let (host, port) = addr.rsplit_once(':').expect("host:port");
        self.plays().advertise = Some((host.to_string(), port.parse().expect("a port")));
    }

    /// How many requests of `key` the proxy received.
    pub fn seen(&self, key: ApiKey) -> usize {
        self.plays().seen.get(&(key as i16)).copied().unwrap_or(0)
    }

    /// How many SASL rounds it refused.
    pub fn refused(&self) -> usize {
        self.plays().refused
    }
}

impl Drop for KafkaProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(&self.addr);
    }
}

fn read_frame(s: &mut TcpStream) -> std::io::Result<Bytes> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len)?;
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    s.read_exact(&mut body)?;
    Ok(Bytes::from(body))
}

fn write_frame(s: &mut TcpStream, body: &[u8]) -> std::io::Result<()> {
    let mut out = Vec::with_capacity(body.len() + 4);
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(body);
    s.write_all(&out)
}

fn bad(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

/// A response frame's body: the header for `key`/`version` and `response`.
fn encode<R: Encodable>(key: ApiKey, version: i16, correlation: i32, response: &R) -> std::io::Result<Vec<u8>> {
    let mut buf = BytesMut::new();
    ResponseHeader::default()
        .with_correlation_id(correlation)
        .encode(&mut buf, key.response_header_version(version))
        .map_err(bad)?;
    response.encode(&mut buf, version).map_err(bad)?;
    Ok(buf.to_vec())
}

/// A response body decoded: its header skipped.
fn decode<R: Decodable>(key: ApiKey, version: i16, mut body: Bytes) -> std::io::Result<R> {
    ResponseHeader::decode(&mut body, key.response_header_version(version)).map_err(bad)?;
    R::decode(&mut body, version).map_err(bad)
}

/// One SASL exchange in progress on a connection.
enum Sasl {
    None,
    Mechanism(String),
    /// SCRAM after the server-first message: (mechanism, auth message so far, salted password).
    ScramSent(String, String, Vec<u8>),
    Done,
}

fn serve(mut client: TcpStream, upstream: &str, own: &str, plays: &Mutex<Plays>) -> std::io::Result<()> {
    let mut up = TcpStream::connect(upstream)?;
    let _ = client.set_nodelay(true);
    let _ = up.set_nodelay(true);
    let mut sasl = Sasl::None;
    let lock = || plays.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        let request = read_frame(&mut client)?;
        if request.len() < 8 {
            return Ok(());
        }
        let key_raw = i16::from_be_bytes([request[0], request[1]]);
        let version = i16::from_be_bytes([request[2], request[3]]);
        let correlation = i32::from_be_bytes([request[4], request[5], request[6], request[7]]);
        *lock().seen.entry(key_raw).or_default() += 1;
        let Ok(key) = ApiKey::try_from(key_raw) else {
            write_frame(&mut up, &request)?;
            let answer = read_frame(&mut up)?;
            write_frame(&mut client, &answer)?;
            continue;
        };
        let credentials = lock().sasl.clone();
        if let Some((user, password)) = &credentials {
            match key {
                ApiKey::SaslHandshake => {
                    let body = request_body::<SaslHandshakeRequest>(key, version, request)?;
                    let offered = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"];
                    let asked = body.mechanism.as_str().to_string();
                    let known = offered.contains(&asked.as_str());
                    let answer = SaslHandshakeResponse::default()
                        .with_error_code(if known { 0 } else { 33 })
                        .with_mechanisms(offered.iter().map(|m| StrBytes::from_static_str(m)).collect());
                    sasl = if known { Sasl::Mechanism(asked) } else { Sasl::None };
                    write_frame(&mut client, &encode(key, version, correlation, &answer)?)?;
                    continue;
                }
                ApiKey::SaslAuthenticate => {
                    let body = request_body::<SaslAuthenticateRequest>(key, version, request)?;
                    let (next, answer) =
                        authenticate(std::mem::replace(&mut sasl, Sasl::None), &body.auth_bytes, user, password);
                    if answer.error_code != 0 {
                        lock().refused += 1;
                    }
                    sasl = next;
                    write_frame(&mut client, &encode(key, version, correlation, &answer)?)?;
                    if answer.error_code != 0 {
                        // Kafka closes the connection after a failed authentication.
                        return Ok(());
                    }
                    continue;
                }
                ApiKey::ApiVersions => {}
                _ if !matches!(sasl, Sasl::Done) => return Ok(()),
                _ => {}
            }
        }
        let decoded_request = match key {
            ApiKey::ListOffsets | ApiKey::Fetch => Some(request.clone()),
            _ => None,
        };
        write_frame(&mut up, &request)?;
        let answer = read_frame(&mut up)?;
        let answer = match rewrite(
            key,
            version,
            correlation,
            decoded_request,
            answer.clone(),
            &mut up,
            own,
            plays,
            credentials.is_some(),
        ) {
            Ok(Some(rewritten)) => rewritten,
            Ok(None) => answer.to_vec(),
            Err(e) => return Err(e),
        };
        write_frame(&mut client, &answer)?;
    }
}

/// A request frame's body decoded: its header skipped.
fn request_body<R: Decodable>(key: ApiKey, version: i16, mut request: Bytes) -> std::io::Result<R> {
    RequestHeader::decode(&mut request, key.request_header_version(version)).map_err(bad)?;
    R::decode(&mut request, version).map_err(bad)
}

/// The answer as this proxy plays it, or `None` to pass tansu's through unchanged.
#[allow(clippy::too_many_arguments)]
fn rewrite(
    key: ApiKey,
    version: i16,
    correlation: i32,
    request: Option<Bytes>,
    answer: Bytes,
    up: &mut TcpStream,
    own: &str,
    plays: &Mutex<Plays>,
    sasl: bool,
) -> std::io::Result<Option<Vec<u8>>> {
    let (kafka_offsets, log_start, hidden_from, advertise) = {
        let p = plays.lock().unwrap_or_else(|p| p.into_inner());
        (p.kafka_offsets, p.log_start.clone(), p.hidden_from, p.advertise.clone())
    };
    let hidden = |p: i32| hidden_from.is_some_and(|h| p >= h);
    let (host, port) = advertise.unwrap_or_else(|| {
        let (h, p) = own.rsplit_once(':').expect("host:port");
        (h.to_string(), p.parse().expect("port"))
    });
    match key {
        ApiKey::ApiVersions if sasl => {
            let mut r: ApiVersionsResponse = decode(key, version, answer)?;
            for (k, max) in [(ApiKey::SaslHandshake, 1), (ApiKey::SaslAuthenticate, 2)] {
                if !r.api_keys.iter().any(|a| a.api_key == k as i16) {
                    r.api_keys
                        .push(ApiVersion::default().with_api_key(k as i16).with_min_version(0).with_max_version(max));
                }
            }
            Ok(Some(encode(key, version, correlation, &r)?))
        }
        ApiKey::Metadata => {
            let mut r: MetadataResponse = decode(key, version, answer)?;
            for b in &mut r.brokers {
                b.host = StrBytes::from_string(host.clone());
                b.port = port;
            }
            for t in &mut r.topics {
                t.partitions.retain(|p| !hidden(p.partition_index));
            }
            Ok(Some(encode(key, version, correlation, &r)?))
        }
        ApiKey::FindCoordinator => {
            let mut r: FindCoordinatorResponse = decode(key, version, answer)?;
            r.host = StrBytes::from_string(host.clone());
            r.port = port;
            for c in &mut r.coordinators {
                c.host = StrBytes::from_string(host.clone());
                c.port = port;
            }
            Ok(Some(encode(key, version, correlation, &r)?))
        }
        ApiKey::ListOffsets => {
            let asked: ListOffsetsRequest = request_body(key, version, request.expect("kept"))?;
            let mut r: ListOffsetsResponse = decode(key, version, answer)?;
            for (t, ask) in r.topics.iter_mut().zip(&asked.topics) {
                let mut ends = BTreeMap::new();
                if kafka_offsets {
                    let listed: BTreeMap<i32, i64> = t
                        .partitions
                        .iter()
                        .filter(|p| p.error_code == 0)
                        .map(|p| (p.partition_index, p.offset))
                        .collect();
                    ends = high_watermarks(up, t.name.0.as_str(), &listed)?;
                }
                for p in &mut t.partitions {
                    let timestamp = ask
                        .partitions
                        .iter()
                        .find(|a| a.partition_index == p.partition_index)
                        .map_or(0, |a| a.timestamp);
                    if hidden(p.partition_index) {
                        p.error_code = 3;
                        p.offset = -1;
                        continue;
                    }
                    match timestamp {
                        -1 if kafka_offsets => p.offset = ends.get(&p.partition_index).copied().unwrap_or(p.offset),
                        -2 => p.offset = p.offset.max(log_start.get(&p.partition_index).copied().unwrap_or(0)),
                        _ => {}
                    }
                }
            }
            Ok(Some(encode(key, version, correlation, &r)?))
        }
        ApiKey::Fetch => {
            let asked: FetchRequest = request_body(key, version, request.expect("kept"))?;
            let offsets: BTreeMap<i32, i64> =
                asked.topics.iter().flat_map(|t| t.partitions.iter().map(|p| (p.partition, p.fetch_offset))).collect();
            let mut r: FetchResponse = decode(key, version, answer)?;
            for t in &mut r.responses {
                for p in &mut t.partitions {
                    let at = offsets.get(&p.partition_index).copied().unwrap_or(0);
                    let start = log_start.get(&p.partition_index).copied().unwrap_or(0).max(p.log_start_offset);
                    if hidden(p.partition_index) {
                        p.error_code = 3;
                        p.records = None;
                        continue;
                    }
                    if p.error_code != 0 {
                        continue;
                    }
                    p.log_start_offset = start;
                    let past_end = kafka_offsets && at > p.high_watermark;
                    if at < start || past_end {
                        p.error_code = 1;
                        p.records = None;
                    }
                }
            }
            Ok(Some(encode(key, version, correlation, &r)?))
        }
        _ => Ok(None),
    }
}

/// The high watermark of each partition, asked of tansu with a Fetch at `listed` (where its
/// ListOffsets(latest) points: inside or at the end of the last batch).
fn high_watermarks(
    up: &mut TcpStream,
    topic: &str,
    listed: &BTreeMap<i32, i64>,
) -> std::io::Result<BTreeMap<i32, i64>> {
    if listed.is_empty() {
        return Ok(BTreeMap::new());
    }
    let version = 11;
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(0)
        .with_max_bytes(1)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(
                listed
                    .iter()
                    .map(|(p, o)| {
                        FetchPartition::default()
                            .with_partition(*p)
                            .with_fetch_offset(*o)
                            .with_partition_max_bytes(1)
                            .with_current_leader_epoch(-1)
                            .with_log_start_offset(-1)
                    })
                    .collect(),
            )]);
    let mut buf = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(ApiKey::Fetch as i16)
        .with_request_api_version(version)
        .with_correlation_id(i32::MAX)
        .with_client_id(Some(StrBytes::from_static_str("kafkaproxy")))
        .encode(&mut buf, ApiKey::Fetch.request_header_version(version))
        .map_err(bad)?;
    request.encode(&mut buf, version).map_err(bad)?;
    write_frame(up, &buf)?;
    let answer: FetchResponse = decode(ApiKey::Fetch, version, read_frame(up)?)?;
    Ok(answer
        .responses
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| (p.partition_index, p.high_watermark)))
        .collect())
}

/// Iterations of the stand-in's SCRAM credentials (Kafka's default for a new credential).
const ITERATIONS: u32 = 4096;

fn hmac(mechanism: &str, key: &[u8], data: &[u8]) -> Vec<u8> {
    if mechanism == "SCRAM-SHA-512" {
        let mut mac = SimpleHmac::<Sha512>::new_from_slice(key).expect("any key length");
        mac.update(data);
        mac.finalize().into_bytes().to_vec()
    } else {
        let mut mac = SimpleHmac::<Sha256>::new_from_slice(key).expect("any key length");
        mac.update(data);
        mac.finalize().into_bytes().to_vec()
    }
}

fn hash(mechanism: &str, data: &[u8]) -> Vec<u8> {
    if mechanism == "SCRAM-SHA-512" {
        Sha512::digest(data).to_vec()
    } else {
        Sha256::digest(data).to_vec()
    }
}

/// RFC 5802 `Hi`: PBKDF2 with the mechanism's HMAC, one block.
fn salted_password(mechanism: &str, password: &str, salt: &[u8]) -> Vec<u8> {
    let mut block = salt.to_vec();
    block.extend_from_slice(&1u32.to_be_bytes());
    let mut u = hmac(mechanism, password.as_bytes(), &block);
    let mut out = u.clone();
    for _ in 1..ITERATIONS {
        u = hmac(mechanism, password.as_bytes(), &u);
        out.iter_mut().zip(&u).for_each(|(o, x)| *o ^= x);
    }
    out
}

fn random_text(n: usize) -> String {
    let mut raw = vec![0u8; n];
    getrandom::fill(&mut raw).expect("random bytes");
    STANDARD.encode(raw)
}

/// Kafka's words for a refused authentication (SaslAuthenticate error 58).
fn refused(mechanism: &str) -> SaslAuthenticateResponse {
    SaslAuthenticateResponse::default().with_error_code(58).with_error_message(Some(StrBytes::from_string(format!(
        "Authentication failed during authentication due to invalid credentials with SASL mechanism {mechanism}"
    ))))
}

/// One SaslAuthenticate round of the broker's side.
fn authenticate(state: Sasl, token: &[u8], user: &str, password: &str) -> (Sasl, SaslAuthenticateResponse) {
    let text = String::from_utf8_lossy(token).into_owned();
    match state {
        Sasl::Mechanism(m) if m == "PLAIN" => {
            let parts: Vec<&str> = text.split('\0').collect();
            if parts.len() == 3 && parts[1] == user && parts[2] == password {
                (Sasl::Done, SaslAuthenticateResponse::default())
            } else {
                (Sasl::None, refused(&m))
            }
        }
        Sasl::Mechanism(m) => {
            // client-first: "n,,n=user,r=nonce"
            let Some(bare) = text.strip_prefix("n,,") else { return (Sasl::None, refused(&m)) };
            let field = |name: &str| bare.split(',').find_map(|f| f.strip_prefix(name)).map(str::to_string);
            let (Some(name), Some(nonce)) = (field("n="), field("r=")) else { return (Sasl::None, refused(&m)) };
            if name.replace("=2C", ",").replace("=3D", "=") != user {
                return (Sasl::None, refused(&m));
            }
            let salt = {
                let mut raw = [0u8; 16];
                getrandom::fill(&mut raw).expect("random bytes");
                raw
            };
            let server_first = format!("r={nonce}{},s={},i={ITERATIONS}", random_text(18), STANDARD.encode(salt));
            let auth = format!("{bare},{server_first}");
            let salted = salted_password(&m, password, &salt);
            (
                Sasl::ScramSent(m, auth, salted),
                SaslAuthenticateResponse::default().with_auth_bytes(Bytes::from(server_first)),
            )
        }
        Sasl::ScramSent(m, auth, salted) => {
            // client-final: "c=biws,r=nonce,p=proof"
            let Some((without_proof, proof)) = text.rsplit_once(",p=") else { return (Sasl::None, refused(&m)) };
            let Ok(proof) = STANDARD.decode(proof) else { return (Sasl::None, refused(&m)) };
            let auth = format!("{auth},{without_proof}");
            let client_key = hmac(&m, &salted, b"Client Key");
            let stored_key = hash(&m, &client_key);
            let signature = hmac(&m, &stored_key, auth.as_bytes());
            let presented: Vec<u8> = proof.iter().zip(&signature).map(|(a, b)| a ^ b).collect();
            let nonce_ok = auth.split(',').filter_map(|f| f.strip_prefix("r=")).collect::<BTreeSet<_>>().len() == 2;
            if proof.len() != signature.len() || hash(&m, &presented) != stored_key || !nonce_ok {
                return (Sasl::None, refused(&m));
            }
            let server_key = hmac(&m, &salted, b"Server Key");
            let verifier = STANDARD.encode(hmac(&m, &server_key, auth.as_bytes()));
            (Sasl::Done, SaslAuthenticateResponse::default().with_auth_bytes(Bytes::from(format!("v={verifier}"))))
        }
        _ => (Sasl::None, refused("(no mechanism chosen)")),
    }
}
