//! Private TLS for tests: a self-made CA (rcgen) and a TLS-terminating proxy (rustls) to put
//! in front of a plain-HTTP server (moto, the emulator), the way on-prem stores and self-hosted
//! OpenWhisk API hosts are often reached: `https://` with a certificate no public root signed.
//!
//! The proxy forwards bytes unchanged (Host header included), so SigV4 still verifies upstream.

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose, SanType};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A CA and a server certificate it signed for `127.0.0.1` and `localhost`.
pub struct TestCa {
    /// The CA's certificate (what a client must trust), PEM.
    pub ca_pem: String,
    server_der: Vec<u8>,
    server_key_der: Vec<u8>,
}

impl TestCa {
    /// Makes a fresh CA and server certificate.
    pub fn new() -> anyhow::Result<TestCa> {
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(DnType::CommonName, "owfeed test CA");
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_key = KeyPair::generate()?;
        let ca = ca_params.self_signed(&ca_key)?;
        let mut params = CertificateParams::new(vec!["localhost".to_string()])?;
        params.subject_alt_names.push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        params.distinguished_name.push(DnType::CommonName, "127.0.0.1");
        let key = KeyPair::generate()?;
        let server = params.signed_by(&key, &ca, &ca_key)?;
        Ok(TestCa { ca_pem: ca.pem(), server_der: server.der().to_vec(), server_key_der: key.serialize_der() })
    }
}

/// A TLS terminator on 127.0.0.1 forwarding to a plain-HTTP upstream; stops when dropped.
pub struct TlsProxy {
    url: String,
    stop: Arc<AtomicBool>,
    port: u16,
}

impl TlsProxy {
    /// Serves `https://127.0.0.1:PORT` with `ca`'s server certificate, forwarding to
    /// `upstream` (`http://127.0.0.1:PORT`).
    pub fn start(upstream: &str, ca: &TestCa) -> anyhow::Result<TlsProxy> {
        let upstream = upstream.trim_start_matches("http://").trim_end_matches('/').to_string();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ca.server_key_der.clone()));
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(vec![CertificateDer::from(ca.server_der.clone())], key)?;
        let config = Arc::new(config);
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        thread::spawn(move || {
            for tcp in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(tcp) = tcp else { continue };
                let (config, upstream) = (config.clone(), upstream.clone());
                thread::spawn(move || {
                    let _ = relay(tcp, config, &upstream);
                });
            }
        });
        Ok(TlsProxy { url: format!("https://127.0.0.1:{port}"), stop, port })
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for TlsProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// Pipes one connection both ways until either side closes (or the handshake fails).
fn relay(tcp: TcpStream, config: Arc<rustls::ServerConfig>, upstream: &str) -> std::io::Result<()> {
    let tick = Some(Duration::from_millis(5));
    tcp.set_read_timeout(tick)?;
    let mut up = TcpStream::connect(upstream)?;
    up.set_read_timeout(tick)?;
    let conn = rustls::ServerConnection::new(config).map_err(std::io::Error::other)?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let mut buf = vec![0u8; 64 * 1024];
    let idle = |e: &std::io::Error| matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut);
    loop {
        match tls.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => up.write_all(&buf[..n])?,
            Err(e) if idle(&e) => {}
            Err(e) => return Err(e),
        }
        match up.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                tls.write_all(&buf[..n])?;
                tls.flush()?;
            }
            Err(e) if idle(&e) => {}
            Err(e) => return Err(e),
        }
    }
    tls.conn.send_close_notify();
    let _ = tls.flush();
    Ok(())
}
