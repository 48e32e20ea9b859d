//! A minimal blocking Kafka consumer for the `kafka` source of owfeed: what a feed needs and
//! nothing more. It reads a topic's partitions (Metadata), their earliest and latest offsets
//! (ListOffsets), records after given offsets (Fetch, optionally held open by the broker), and
//! commits offsets to a consumer group without joining it (FindCoordinator, OffsetCommit).
//! It never produces and keeps no state between calls but open connections.
//!
//! The wire format (request and response encoding, record batches, their CRC-32C) comes from
//! the `kafka-protocol` crate; the transport is ours: one blocking TCP or TLS (rustls)
//! connection per broker, with SASL PLAIN or SCRAM-SHA-256/512. Compressed batches (gzip,
//! snappy, lz4, zstd) are decompressed by pure-Rust decoders (`records`).
//!
//! Errors are one line, name the broker, and never carry the password, whatever a broker says.

mod conn;
mod records;
mod scram;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
use kafka_protocol::messages::{
    ApiKey, BrokerId, FetchRequest, FindCoordinatorRequest, GroupId, ListOffsetsRequest, MetadataRequest,
    OffsetCommitRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use conn::Conn;
pub use records::decode_batches;

/// The API versions this client speaks (min, max). Fetch stops at 11, the last version without
/// tagged fields: tansu 0.6 answers Fetch v12 with a tag v12 does not define (NodeEndpoints,
/// v16+), which a strict decoder refuses; from 13 on partitions are named by topic id only. Every range reaches back to what Kafka 2.x serves and forward
/// to what Kafka 4.x still serves.
const METADATA: (i16, i16) = (1, 12);
const LIST_OFFSETS: (i16, i16) = (1, 7);
const FETCH: (i16, i16) = (4, 11);
const FIND_COORDINATOR: (i16, i16) = (0, 3);
const OFFSET_COMMIT: (i16, i16) = (2, 8);

/// SASL mechanisms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mechanism {
    /// `PLAIN`: user and password in the clear (use it over TLS only).
    Plain,
    /// `SCRAM-SHA-256`.
    ScramSha256,
    /// `SCRAM-SHA-512`.
    ScramSha512,
}

impl Mechanism {
    /// The mechanism's SASL name.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::ScramSha256 => "SCRAM-SHA-256",
            Mechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }

    /// The mechanism a SASL name names (any case).
    pub fn parse(name: &str) -> Option<Mechanism> {
        [Mechanism::Plain, Mechanism::ScramSha256, Mechanism::ScramSha512]
            .into_iter()
            .find(|m| m.name().eq_ignore_ascii_case(name.trim()))
    }
}

/// A password that no `Debug` or `Display` shows.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// Wraps a password.
    pub fn new(password: String) -> Password {
        Password(password)
    }

    /// The password itself, for the SASL exchange only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// SASL credentials.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sasl {
    /// The mechanism.
    pub mechanism: Mechanism,
    /// The user name.
    pub user: String,
    /// The password.
    pub password: Password,
}

/// How the client reaches and authenticates to the cluster.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Bootstrap brokers, `host:port`, tried in order.
    pub brokers: Vec<String>,
    /// TLS: `Some((CA PEM, skip verification))`, `None` for plain TCP.
    pub tls: Option<(Option<String>, bool)>,
    /// SASL credentials, if the cluster wants them.
    pub sasl: Option<Sasl>,
    /// Sent as the Kafka `client.id` (broker logs and quotas).
    pub client_id: String,
    /// How long one request may take, waits excluded.
    pub timeout: Duration,
}

/// What kind of failure, so the caller can name the parameter to fix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// No broker could be reached (the `brokers` list).
    Connect,
    /// TLS handshake or certificate (the TLS settings).
    Tls,
    /// SASL refused, or an authorization error (the credentials).
    Auth,
    /// The topic does not exist.
    UnknownTopic,
    /// The consumer group refused a commit.
    Group,
    /// The broker speaks something this client does not.
    Protocol,
    /// Worth retrying later (leader moving, timeouts, broker errors marked retriable).
    Transient,
}

/// A failure, in one line that names the broker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    /// What kind of failure.
    pub kind: ErrorKind,
    /// The message.
    pub message: String,
}

impl Error {
    fn new(kind: ErrorKind, message: String) -> Error {
        Error { kind, message }
    }

    fn from_code(code: i16, message: String) -> Error {
        let kind = match code {
            3 => ErrorKind::UnknownTopic,
            29..=31 | 58 => ErrorKind::Auth,
            _ => ErrorKind::Transient,
        };
        Error::new(kind, message)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

/// The names of the Kafka error codes a consumer meets (the protocol's own names).
pub fn error_name(code: i16) -> String {
    let name = match code {
        -1 => "UNKNOWN_SERVER_ERROR",
        1 => "OFFSET_OUT_OF_RANGE",
        2 => "CORRUPT_MESSAGE",
        3 => "UNKNOWN_TOPIC_OR_PARTITION",
        5 => "LEADER_NOT_AVAILABLE",
        6 => "NOT_LEADER_OR_FOLLOWER",
        7 => "REQUEST_TIMED_OUT",
        14 => "COORDINATOR_LOAD_IN_PROGRESS",
        15 => "COORDINATOR_NOT_AVAILABLE",
        16 => "NOT_COORDINATOR",
        22 => "ILLEGAL_GENERATION",
        24 => "INVALID_GROUP_ID",
        25 => "UNKNOWN_MEMBER_ID",
        27 => "REBALANCE_IN_PROGRESS",
        29 => "TOPIC_AUTHORIZATION_FAILED",
        30 => "GROUP_AUTHORIZATION_FAILED",
        31 => "CLUSTER_AUTHORIZATION_FAILED",
        33 => "UNSUPPORTED_SASL_MECHANISM",
        34 => "ILLEGAL_SASL_STATE",
        35 => "UNSUPPORTED_VERSION",
        56 => "KAFKA_STORAGE_ERROR",
        58 => "SASL_AUTHENTICATION_FAILED",
        74 => "FENCED_LEADER_EPOCH",
        75 => "UNKNOWN_LEADER_EPOCH",
        _ => return format!("error code {code}"),
    };
    name.to_string()
}

/// One record read from a partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// The partition.
    pub partition: i32,
    /// Its offset in the partition.
    pub offset: i64,
    /// The offset after the record batch holding it: where a fetch may resume once the batch
    /// is read (tansu 0.6 cannot resume inside a batch).
    pub batch_next: i64,
    /// Its timestamp, milliseconds since the epoch (producer's or broker's, per topic config).
    pub timestamp: i64,
    /// The key, if any.
    pub key: Option<Bytes>,
    /// The value, if any (`None`: a tombstone).
    pub value: Option<Bytes>,
    /// The record headers, in order.
    pub headers: Vec<(String, Option<Bytes>)>,
}

/// What a fetch gave for one partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fetched {
    /// The partition's error code (0: none; 1: OFFSET_OUT_OF_RANGE).
    pub error_code: i16,
    /// The offset after the last record the broker holds (the high watermark).
    pub high_watermark: i64,
    /// The first offset the broker holds (-1 when the broker does not say).
    pub log_start_offset: i64,
    /// The records at or after the offset asked for, in offset order.
    pub messages: Vec<Message>,
    /// Where to fetch next: past every complete batch returned (control and compacted-away
    /// records included), or the offset asked for when none was.
    pub next: i64,
}

struct Inner {
    conns: BTreeMap<String, Conn>,
    /// Node id → `host:port`, from the last Metadata.
    nodes: BTreeMap<i32, String>,
    /// (topic, partition) → leader node, from the last Metadata.
    leaders: BTreeMap<(String, i32), i32>,
}

/// A client for one cluster. Calls are serialised; connections stay open between calls.
pub struct Client {
    settings: Settings,
    tls: Option<Arc<rustls::ClientConfig>>,
    inner: Mutex<Inner>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client").field("brokers", &self.settings.brokers).finish_non_exhaustive()
    }
}

impl Client {
    /// A client for `settings`; makes no connection yet. Fails on unusable TLS settings.
    pub fn new(settings: Settings) -> Result<Client, Error> {
        let tls = match &settings.tls {
            None => None,
            Some((ca, insecure)) => Some(tls_config(ca.as_deref(), *insecure)?),
        };
        let inner = Mutex::new(Inner { conns: BTreeMap::new(), nodes: BTreeMap::new(), leaders: BTreeMap::new() });
        Ok(Client { settings, tls, inner })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn deadline(&self) -> Instant {
        Instant::now() + self.settings.timeout
    }

    /// Runs `f` on a connection to `addr`, opening it when needed and dropping it when the
    /// call fails (the next call reconnects).
    fn with_conn<T>(
        &self,
        inner: &mut Inner,
        addr: &str,
        deadline: Instant,
        f: impl FnOnce(&mut Conn) -> Result<T, Error>,
    ) -> Result<T, Error> {
        if !inner.conns.contains_key(addr) {
            let conn = Conn::open(addr, &self.settings, self.tls.as_ref(), deadline)?;
            inner.conns.insert(addr.to_string(), conn);
        }
        let conn = inner.conns.get_mut(addr).expect("inserted above");
        let result = f(conn);
        if result.as_ref().is_err_and(|e| matches!(e.kind, ErrorKind::Transient | ErrorKind::Protocol)) {
            inner.conns.remove(addr);
        }
        result
    }

    /// Runs `f` on any bootstrap broker (one already connected first), the first that answers.
    fn with_any<T>(
        &self,
        inner: &mut Inner,
        deadline: Instant,
        f: impl Fn(&mut Conn) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let mut order: Vec<String> = inner.conns.keys().cloned().collect();
        order.extend(self.settings.brokers.iter().filter(|b| !inner.conns.contains_key(*b)).cloned());
        let mut last = Error::new(ErrorKind::Connect, "no broker given".to_string());
        for addr in order {
            match self.with_conn(inner, &addr, deadline, &f) {
                Ok(v) => return Ok(v),
                // Credentials and TLS are the same for every broker: trying the next one would
                // only fail again, and try the password once more per broker.
                Err(e) if matches!(e.kind, ErrorKind::Auth | ErrorKind::Tls | ErrorKind::UnknownTopic) => {
                    return Err(e)
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// The partitions of `topic`, ascending (and their leaders, remembered for fetches).
    pub fn partitions(&self, topic: &str) -> Result<Vec<i32>, Error> {
        let deadline = self.deadline();
        let mut inner = self.lock();
        let request =
            MetadataRequest::default()
                .with_topics(Some(vec![MetadataRequestTopic::default()
                    .with_name(Some(TopicName(StrBytes::from_string(topic.to_string()))))]));
        let answer = self.with_any(&mut inner, deadline, |conn| {
            let version = conn.version(ApiKey::Metadata, METADATA)?;
            let request =
                if version >= 4 { request.clone().with_allow_auto_topic_creation(false) } else { request.clone() };
            let answer = conn.call(&request, version, deadline)?;
            Ok((conn.addr().to_string(), answer))
        })?;
        let (addr, answer) = answer;
        for b in &answer.brokers {
            inner.nodes.insert(b.node_id.0, format!("{}:{}", b.host.as_str(), b.port));
        }
        let Some(t) = answer.topics.iter().find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == topic)) else {
            return Err(Error::new(ErrorKind::UnknownTopic, format!("broker {addr}: topic '{topic}' does not exist")));
        };
        match t.error_code {
            0 => {}
            3 => {
                return Err(Error::new(
                    ErrorKind::UnknownTopic,
                    format!("broker {addr}: topic '{topic}' does not exist"),
                ))
            }
            code => {
                return Err(Error::from_code(
                    code,
                    format!("broker {addr}: metadata of topic '{topic}': {}", error_name(code)),
                ))
            }
        }
        let mut partitions: Vec<i32> = Vec::new();
        for p in &t.partitions {
            inner.leaders.insert((topic.to_string(), p.partition_index), p.leader_id.0);
            partitions.push(p.partition_index);
        }
        partitions.sort_unstable();
        Ok(partitions)
    }

    /// The address of the leader of each partition, grouped by leader.
    fn by_leader(&self, inner: &Inner, topic: &str, partitions: &[i32]) -> Result<BTreeMap<String, Vec<i32>>, Error> {
        let mut groups: BTreeMap<String, Vec<i32>> = BTreeMap::new();
        for &p in partitions {
            let leader = inner.leaders.get(&(topic.to_string(), p)).copied().unwrap_or(-1);
            let Some(addr) = inner.nodes.get(&leader) else {
                return Err(Error::new(
                    ErrorKind::Transient,
                    format!("partition {p} of topic '{topic}' has no leader now (LEADER_NOT_AVAILABLE)"),
                ));
            };
            groups.entry(addr.clone()).or_default().push(p);
        }
        Ok(groups)
    }

    /// The earliest (`latest == false`) or latest offset of each partition, as the broker's
    /// ListOffsets answers (call `partitions` first).
    pub fn list_offsets(&self, topic: &str, partitions: &[i32], latest: bool) -> Result<BTreeMap<i32, i64>, Error> {
        let deadline = self.deadline();
        let mut inner = self.lock();
        let groups = self.by_leader(&inner, topic, partitions)?;
        let mut offsets = BTreeMap::new();
        for (addr, ps) in groups {
            let answer = self.with_conn(&mut inner, &addr, deadline, |conn| {
                let version = conn.version(ApiKey::ListOffsets, LIST_OFFSETS)?;
                let request = ListOffsetsRequest::default().with_replica_id(BrokerId(-1)).with_topics(vec![
                    ListOffsetsTopic::default()
                        .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                        .with_partitions(
                            ps.iter()
                                .map(|&p| {
                                    let part = ListOffsetsPartition::default()
                                        .with_partition_index(p)
                                        .with_timestamp(if latest { -1 } else { -2 });
                                    if version >= 4 {
                                        part.with_current_leader_epoch(-1)
                                    } else {
                                        part
                                    }
                                })
                                .collect(),
                        ),
                ]);
                conn.call(&request, version, deadline)
            })?;
            for t in &answer.topics {
                for p in &t.partitions {
                    if p.error_code != 0 {
                        self.forget_leaders(&mut inner, topic);
                        return Err(Error::from_code(
                            p.error_code,
                            format!(
                                "broker {addr}: offsets of partition {} of '{topic}': {}",
                                p.partition_index,
                                error_name(p.error_code)
                            ),
                        ));
                    }
                    offsets.insert(p.partition_index, p.offset);
                }
            }
        }
        Ok(offsets)
    }

    /// Records of each partition from the offset given, at most about `max_bytes` in all. With
    /// a `wait`, a broker with nothing to give holds the request open that long (split
    /// between leaders when partitions have several). Call `partitions` first.
    pub fn fetch(
        &self,
        topic: &str,
        positions: &BTreeMap<i32, i64>,
        wait: Duration,
        max_bytes: i32,
    ) -> Result<BTreeMap<i32, Fetched>, Error> {
        let mut inner = self.lock();
        let partitions: Vec<i32> = positions.keys().copied().collect();
        let groups = self.by_leader(&inner, topic, &partitions)?;
        let wait_each = wait / groups.len().max(1) as u32;
        let mut out = BTreeMap::new();
        for (addr, ps) in groups {
            let deadline = Instant::now() + wait_each + self.settings.timeout;
            let answer = self.with_conn(&mut inner, &addr, deadline, |conn| {
                let version = conn.version(ApiKey::Fetch, FETCH)?;
                let parts = ps
                    .iter()
                    .map(|p| {
                        let part = FetchPartition::default()
                            .with_partition(*p)
                            .with_fetch_offset(positions[p])
                            .with_partition_max_bytes(max_bytes);
                        let part = if version >= 5 { part.with_log_start_offset(-1) } else { part };
                        if version >= 9 {
                            part.with_current_leader_epoch(-1)
                        } else {
                            part
                        }
                    })
                    .collect();
                let request = FetchRequest::default()
                    .with_replica_id(BrokerId(-1))
                    .with_max_wait_ms(wait_each.as_millis().min(i32::MAX as u128) as i32)
                    .with_min_bytes(1)
                    .with_max_bytes(max_bytes)
                    .with_isolation_level(0)
                    .with_topics(vec![FetchTopic::default()
                        .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
                        .with_partitions(parts)]);
                let request = if version >= 7 { request.with_session_id(0).with_session_epoch(-1) } else { request };
                conn.call(&request, version, deadline)
            })?;
            if answer.error_code != 0 {
                return Err(Error::from_code(
                    answer.error_code,
                    format!("broker {addr}: fetch: {}", error_name(answer.error_code)),
                ));
            }
            for t in answer.responses {
                for p in t.partitions {
                    let from = positions.get(&p.partition_index).copied().unwrap_or(0);
                    let (messages, next) = match (p.error_code, p.records) {
                        (0, Some(records)) => decode_batches(records, p.partition_index, from)
                            .map_err(|e| Error::new(ErrorKind::Protocol, format!("broker {addr}: {e}")))?,
                        _ => (Vec::new(), from),
                    };
                    if matches!(p.error_code, 3 | 5 | 6 | 74 | 75) {
                        self.forget_leaders(&mut inner, topic);
                        return Err(Error::new(
                            ErrorKind::Transient,
                            format!(
                                "broker {addr}: partition {} of '{topic}': {} (the leader is moving; the next read asks again)",
                                p.partition_index,
                                error_name(p.error_code)
                            ),
                        ));
                    }
                    if p.error_code != 0 && p.error_code != 1 {
                        return Err(Error::from_code(
                            p.error_code,
                            format!(
                                "broker {addr}: fetch of partition {} of '{topic}': {}",
                                p.partition_index,
                                error_name(p.error_code)
                            ),
                        ));
                    }
                    out.insert(
                        p.partition_index,
                        Fetched {
                            error_code: p.error_code,
                            high_watermark: p.high_watermark,
                            log_start_offset: p.log_start_offset,
                            messages,
                            next,
                        },
                    );
                }
            }
        }
        Ok(out)
    }

    fn forget_leaders(&self, inner: &mut Inner, topic: &str) {
        inner.leaders.retain(|(t, _), _| t != topic);
    }

    /// Commits `offsets` (partition → next offset to read) for `topic` to consumer group
    /// `group`, as a client outside the group's membership does (generation -1), which Kafka
    /// accepts for a group with no active members.
    pub fn commit(&self, group: &str, topic: &str, offsets: &BTreeMap<i32, i64>) -> Result<(), Error> {
        let deadline = self.deadline();
        let mut inner = self.lock();
        let group_key = StrBytes::from_string(group.to_string());
        let coordinator = self.with_any(&mut inner, deadline, |conn| {
            let version = conn.version(ApiKey::FindCoordinator, FIND_COORDINATOR)?;
            let request = FindCoordinatorRequest::default().with_key(group_key.clone());
            let answer = conn.call(&request, version, deadline)?;
            if answer.error_code != 0 {
                return Err(Error::new(
                    if matches!(answer.error_code, 30 | 24) { ErrorKind::Group } else { ErrorKind::Transient },
                    format!(
                        "broker {}: coordinator of group '{group}': {}",
                        conn.addr(),
                        error_name(answer.error_code)
                    ),
                ));
            }
            Ok(format!("{}:{}", answer.host.as_str(), answer.port))
        })?;
        let answer = self.with_conn(&mut inner, &coordinator, deadline, |conn| {
            let version = conn.version(ApiKey::OffsetCommit, OFFSET_COMMIT)?;
            let partitions = offsets
                .iter()
                .map(|(&p, &o)| {
                    let part = OffsetCommitRequestPartition::default()
                        .with_partition_index(p)
                        .with_committed_offset(o)
                        .with_committed_metadata(Some(StrBytes::from_static_str("owfeed")));
                    if version >= 6 {
                        part.with_committed_leader_epoch(-1)
                    } else {
                        part
                    }
                })
                .collect();
            let request = OffsetCommitRequest::default()
                .with_group_id(GroupId(group_key.clone()))
                .with_generation_id_or_member_epoch(-1)
                .with_member_id(StrBytes::new())
                .with_topics(vec![OffsetCommitRequestTopic::default()
                    .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                    .with_partitions(partitions)]);
            let request = if version <= 4 { request.with_retention_time_ms(-1) } else { request };
            conn.call(&request, version, deadline)
        })?;
        for t in &answer.topics {
            for p in &t.partitions {
                if p.error_code != 0 {
                    return Err(Error::new(
                        ErrorKind::Group,
                        format!(
                            "broker {coordinator}: commit to group '{group}', partition {}: {}{}",
                            p.partition_index,
                            error_name(p.error_code),
                            if matches!(p.error_code, 22 | 25 | 27) {
                                " (the group has active members: use a group of the feed's own)"
                            } else {
                                ""
                            }
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// The rustls configuration for a CA bundle (trusted instead of the public roots) or no
/// verification at all.
fn tls_config(ca_pem: Option<&str>, insecure: bool) -> Result<Arc<rustls::ClientConfig>, Error> {
    use rustls_pki_types::pem::PemObject as _;
    use rustls_pki_types::CertificateDer;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::new(ErrorKind::Tls, format!("TLS: {e}")))?;
    let config = if insecure {
        builder.dangerous().with_custom_certificate_verifier(Arc::new(NoVerification(provider))).with_no_client_auth()
    } else {
        let mut roots = rustls::RootCertStore::empty();
        match ca_pem {
            Some(pem) => {
                for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                    let cert = cert.map_err(|e| Error::new(ErrorKind::Tls, format!("not a PEM certificate ({e})")))?;
                    roots
                        .add(cert)
                        .map_err(|e| Error::new(ErrorKind::Tls, format!("unusable CA certificate ({e})")))?;
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    Ok(Arc::new(config))
}

/// Accepts any certificate (`insecureSkipTlsVerify`): encrypted, not authenticated.
#[derive(Debug)]
struct NoVerification(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls_pki_types::CertificateDer<'_>,
        _intermediates: &[rustls_pki_types::CertificateDer<'_>],
        _server_name: &rustls_pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
