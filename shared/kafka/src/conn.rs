//! One broker connection: TCP or TLS, Kafka's size-prefixed frames, ApiVersions and SASL.
//!
//! Blocking and synchronous like the rest of the actions: every read and write has the
//! socket timeout of the call's deadline, so a silent broker costs at most that.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, RequestHeader, ResponseHeader, SaslAuthenticateRequest, SaslHandshakeRequest,
};
use kafka_protocol::messages::{
    ApiVersionsResponse, FetchRequest, FetchResponse, FindCoordinatorRequest, FindCoordinatorResponse,
    ListOffsetsRequest, ListOffsetsResponse, MetadataRequest, MetadataResponse, OffsetCommitRequest,
    OffsetCommitResponse, SaslAuthenticateResponse, SaslHandshakeResponse,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};

use crate::{error_name, scram, Error, ErrorKind, Mechanism, Settings};

/// A request this client sends and the response it reads. `kafka-protocol` pairs them only
/// with both its `client` and `broker` halves compiled; a consumer needs the client half.
pub(crate) trait Request: Encodable + HeaderVersion {
    /// The API.
    const KEY: ApiKey;
    /// Its response.
    type Response: Decodable + HeaderVersion;
}

macro_rules! requests {
    ($($key:ident: $req:ty => $resp:ty),* $(,)?) => {
        $(impl Request for $req {
            const KEY: ApiKey = ApiKey::$key;
            type Response = $resp;
        })*
    };
}

requests! {
    ApiVersions: ApiVersionsRequest => ApiVersionsResponse,
    SaslHandshake: SaslHandshakeRequest => SaslHandshakeResponse,
    SaslAuthenticate: SaslAuthenticateRequest => SaslAuthenticateResponse,
    Metadata: MetadataRequest => MetadataResponse,
    ListOffsets: ListOffsetsRequest => ListOffsetsResponse,
    Fetch: FetchRequest => FetchResponse,
    FindCoordinator: FindCoordinatorRequest => FindCoordinatorResponse,
    OffsetCommit: OffsetCommitRequest => OffsetCommitResponse,
}

/// Largest response frame accepted: a fetch answers at most `max_bytes` plus its framing.
const MAX_FRAME: usize = 256 * 1024 * 1024;

enum Stream {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Stream {
    fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(s) => &s.sock,
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

/// An open, authenticated connection to one broker.
pub(crate) struct Conn {
    stream: Stream,
    addr: String,
    correlation: i32,
    client_id: StrBytes,
    /// The broker's (min, max) version of each API it serves.
    versions: BTreeMap<i16, (i16, i16)>,
}

impl Conn {
    /// Connects to `addr` (`host:port`), runs TLS and SASL as `settings` say, and learns
    /// the broker's API versions.
    pub(crate) fn open(
        addr: &str,
        settings: &Settings,
        tls: Option<&Arc<rustls::ClientConfig>>,
        deadline: Instant,
    ) -> Result<Conn, Error> {
        let tcp = connect(addr, deadline)?;
        let _ = tcp.set_nodelay(true);
        let stream = match tls {
            None => Stream::Plain(tcp),
            Some(config) => {
                let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h).trim_start_matches('[').trim_end_matches(']');
                let name = rustls_pki_types::ServerName::try_from(host.to_string())
                    .map_err(|_| Error::new(ErrorKind::Connect, format!("broker {addr}: not a host name for TLS")))?;
                let conn = rustls::ClientConnection::new(config.clone(), name)
                    .map_err(|e| Error::new(ErrorKind::Tls, format!("broker {addr}: TLS: {e}")))?;
                Stream::Tls(Box::new(rustls::StreamOwned::new(conn, tcp)))
            }
        };
        let mut conn = Conn {
            stream,
            addr: addr.to_string(),
            correlation: 0,
            client_id: StrBytes::from_string(settings.client_id.clone()),
            versions: BTreeMap::new(),
        };
        // ApiVersions v0 is answered by every broker since Kafka 0.10 (and still by 4.x).
        let versions = conn.call(&ApiVersionsRequest::default(), 0, deadline)?;
        if versions.error_code != 0 {
            return Err(conn.broker_error("ApiVersions", versions.error_code));
        }
        conn.versions = versions.api_keys.iter().map(|k| (k.api_key, (k.min_version, k.max_version))).collect();
        if let Some(sasl) = &settings.sasl {
            conn.authenticate(sasl.mechanism, &sasl.user, sasl.password.expose(), deadline)?;
        }
        Ok(conn)
    }

    /// The broker this connection talks to.
    pub(crate) fn addr(&self) -> &str {
        &self.addr
    }

    /// The highest version of `key` both sides speak, within `ours`.
    pub(crate) fn version(&self, key: ApiKey, ours: (i16, i16)) -> Result<i16, Error> {
        let Some(&(min, max)) = self.versions.get(&(key as i16)) else {
            return Err(Error::new(
                ErrorKind::Protocol,
                format!("broker {} does not serve {key:?}, which the feed needs", self.addr),
            ));
        };
        let version = max.min(ours.1);
        if version < min.max(ours.0) {
            return Err(Error::new(
                ErrorKind::Protocol,
                format!(
                    "broker {} serves {key:?} versions {min}-{max}, the feed speaks {}-{}",
                    self.addr, ours.0, ours.1
                ),
            ));
        }
        Ok(version)
    }

    /// Sends one request and reads its response, all before `deadline`.
    pub(crate) fn call<R: Request>(
        &mut self,
        request: &R,
        version: i16,
        deadline: Instant,
    ) -> Result<R::Response, Error> {
        let mut buf = self.header(R::KEY, version, R::header_version(version))?;
        request.encode(&mut buf, version).map_err(|e| self.codec(e))?;
        let mut body = self.round_trip(buf, R::Response::header_version(version), deadline)?;
        R::Response::decode(&mut body, version).map_err(|e| self.codec(e))
    }

    /// A frame's size placeholder and the request header. Not generic (nor `round_trip`):
    /// one copy of the transport in the binary, not one per request type.
    #[inline(never)]
    fn header(&mut self, key: ApiKey, version: i16, header_version: i16) -> Result<BytesMut, Error> {
        self.correlation = self.correlation.wrapping_add(1);
        let header = RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation)
            .with_client_id(Some(self.client_id.clone()));
        let mut buf = BytesMut::with_capacity(256);
        buf.extend_from_slice(&[0; 4]);
        header.encode(&mut buf, header_version).map_err(|e| self.codec(e))?;
        Ok(buf)
    }

    /// Sends a framed request, reads the response frame and its header; the response body.
    #[inline(never)]
    fn round_trip(&mut self, mut buf: BytesMut, header_version: i16, deadline: Instant) -> Result<Bytes, Error> {
        let size = (buf.len() - 4) as u32;
        buf[..4].copy_from_slice(&size.to_be_bytes());
        self.set_timeout(deadline)?;
        self.stream.write_all(&buf).and_then(|()| self.stream.flush()).map_err(|e| self.io(e))?;
        let mut len = [0u8; 4];
        self.set_timeout(deadline)?;
        self.stream.read_exact(&mut len).map_err(|e| self.io(e))?;
        let len = u32::from_be_bytes(len) as usize;
        if len > MAX_FRAME {
            return Err(Error::new(
                ErrorKind::Protocol,
                format!("broker {}: a response of {len} bytes (is this a Kafka broker?)", self.addr),
            ));
        }
        let mut body = vec![0u8; len];
        self.set_timeout(deadline)?;
        self.stream.read_exact(&mut body).map_err(|e| self.io(e))?;
        let mut body = Bytes::from(body);
        let response_header = ResponseHeader::decode(&mut body, header_version).map_err(|e| self.codec(e))?;
        if response_header.correlation_id != self.correlation {
            return Err(Error::new(
                ErrorKind::Protocol,
                format!("broker {}: the response answers another request", self.addr),
            ));
        }
        Ok(body)
    }

    fn authenticate(
        &mut self,
        mechanism: Mechanism,
        user: &str,
        password: &str,
        deadline: Instant,
    ) -> Result<(), Error> {
        let handshake = SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str(mechanism.name()));
        let version = self.version(ApiKey::SaslHandshake, (1, 1))?;
        let answer = self.call(&handshake, version, deadline)?;
        if answer.error_code == 33 {
            let offered: Vec<&str> = answer.mechanisms.iter().map(|m| m.as_str()).collect();
            return Err(Error::new(
                ErrorKind::Auth,
                format!(
                    "broker {} does not offer SASL {} (it offers: {})",
                    self.addr,
                    mechanism.name(),
                    if offered.is_empty() { "none".to_string() } else { offered.join(", ") }
                ),
            ));
        }
        if answer.error_code != 0 {
            return Err(self.broker_error("SaslHandshake", answer.error_code));
        }
        match mechanism {
            Mechanism::Plain => {
                let mut token = Vec::with_capacity(user.len() + password.len() + 2);
                token.push(0);
                token.extend_from_slice(user.as_bytes());
                token.push(0);
                token.extend_from_slice(password.as_bytes());
                self.sasl_step(token, password, deadline)?;
            }
            Mechanism::ScramSha256 | Mechanism::ScramSha512 => {
                let mut client = scram::Client::new(mechanism, user);
                let first = client.first();
                let server_first = self.sasl_step(first.into_bytes(), password, deadline)?;
                let fin = client
                    .last(&server_first, password)
                    .map_err(|e| Error::new(ErrorKind::Auth, format!("broker {}: SCRAM: {e}", self.addr)))?;
                let server_final = self.sasl_step(fin.into_bytes(), password, deadline)?;
                client
                    .verify(&server_final)
                    .map_err(|e| Error::new(ErrorKind::Auth, format!("broker {}: SCRAM: {e}", self.addr)))?;
            }
        }
        Ok(())
    }

    /// One SaslAuthenticate round; the broker's words are kept, with the password removed.
    fn sasl_step(&mut self, token: Vec<u8>, password: &str, deadline: Instant) -> Result<Vec<u8>, Error> {
        let version = self.version(ApiKey::SaslAuthenticate, (0, 2))?;
        let request = SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(token));
        let answer = self.call(&request, version, deadline)?;
        if answer.error_code != 0 {
            let said = answer.error_message.as_ref().map(|m| m.as_str()).unwrap_or("");
            let said = scrub(said, password);
            let said = if said.is_empty() { String::new() } else { format!(": {said}") };
            return Err(Error::new(
                ErrorKind::Auth,
                format!("broker {}: SASL authentication failed ({}){said}", self.addr, error_name(answer.error_code)),
            ));
        }
        Ok(answer.auth_bytes.to_vec())
    }

    fn set_timeout(&self, deadline: Instant) -> Result<(), Error> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Error::new(ErrorKind::Transient, format!("broker {}: timed out", self.addr)));
        }
        let tcp = self.stream.tcp();
        tcp.set_read_timeout(Some(left)).and_then(|()| tcp.set_write_timeout(Some(left))).map_err(|e| self.io(e))
    }

    fn io(&self, e: std::io::Error) -> Error {
        io_error(&self.addr, e)
    }

    fn codec(&self, e: impl std::fmt::Display) -> Error {
        Error::new(ErrorKind::Protocol, format!("broker {}: cannot encode or decode a message: {e}", self.addr))
    }

    /// An error code the broker answered, named.
    pub(crate) fn broker_error(&self, what: &str, code: i16) -> Error {
        Error::from_code(code, format!("broker {}: {what}: {}", self.addr, error_name(code)))
    }
}

/// Removes `secret` from what a broker said, whatever it echoes.
pub(crate) fn scrub(text: &str, secret: &str) -> String {
    let text: String = text.chars().filter(|c| !c.is_control()).take(300).collect();
    if secret.is_empty() {
        text
    } else {
        text.replace(secret, "[redacted]")
    }
}

fn connect(addr: &str, deadline: Instant) -> Result<TcpStream, Error> {
    let addrs: Vec<_> = addr
        .to_socket_addrs()
        .map_err(|e| Error::new(ErrorKind::Connect, format!("broker {addr}: cannot resolve the host ({e})")))?
        .collect();
    let mut last = None;
    for sa in addrs {
        let left = deadline.saturating_duration_since(Instant::now()).min(Duration::from_secs(10));
        if left.is_zero() {
            break;
        }
        match TcpStream::connect_timeout(&sa, left) {
            Ok(s) => return Ok(s),
            Err(e) => last = Some(e),
        }
    }
    Err(match last {
        Some(e) => io_error(addr, e),
        None => Error::new(ErrorKind::Connect, format!("broker {addr}: no address to connect to")),
    })
}

fn io_error(addr: &str, e: std::io::Error) -> Error {
    use std::io::ErrorKind as K;
    match e.kind() {
        // rustls reports handshake and certificate failures as InvalidData.
        K::InvalidData => Error::new(ErrorKind::Tls, format!("broker {addr}: TLS: {e}")),
        K::ConnectionRefused => Error::new(ErrorKind::Connect, format!("broker {addr}: connection refused")),
        K::TimedOut | K::WouldBlock => Error::new(ErrorKind::Transient, format!("broker {addr}: timed out")),
        K::UnexpectedEof | K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe => Error::new(
            ErrorKind::Transient,
            format!("broker {addr}: the connection was closed (a TLS listener spoken to in plain TCP, or the reverse, does this too)"),
        ),
        _ => Error::new(ErrorKind::Transient, format!("broker {addr}: {e}")),
    }
}
