//! The HTTP agent every owfeed client uses (S3, OpenWhisk, plain HTTP): ureq's connector chain
//! (CONNECT proxy, TCP, rustls) with a TCP transport of our own that acknowledges what it has
//! received before it waits for more (`TCP_QUICKACK` before every blocking read).
//!
//! Why: a server that writes the end of an answer as a separate small segment while Nagle's
//! algorithm is on (Ceph RGW 16.2's beast frontend does, for the last piece of each
//! ListObjects page and the chunked body's terminator) sends that segment only once the client
//! has acknowledged the data before it. A Linux client that reads the answer in large reads,
//! in a request/response exchange, delays that acknowledgement to its delayed-ACK timer (40 ms):
//! `strace -T` showed the `poll` binary blocked about 40 ms in its last `recvfrom` on about a
//! third of RGW's pages, 3 of the 5 seconds of a 100k-object listing. Acknowledging at once
//! whatever has arrived before blocking (`TCP_QUICKACK` takes effect immediately and also
//! leaves the kernel's interactive, delayed-ACK mode) lets the server send the rest: the wait
//! is gone (BENCHMARKS.md, "Listing 100k objects on Ceph RGW"). `TCP_QUICKACK` is not sticky,
//! which is why it is set before each read. Other systems lack the option; there the socket is
//! used as it is.
//!
//! The transport does what ureq's own TCP transport does otherwise: connect within the connect
//! timeout, `TCP_NODELAY`, per-read and per-write timeouts, registration with the agent's
//! shutdown, and a liveness probe for pooled connections. ureq's transport types are
//! `ureq::unversioned` (outside its semver promise): Cargo.lock pins the ureq they compile with.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Weak};

use ureq::unversioned::resolver::DefaultResolver;
use ureq::unversioned::transport::{
    Buffers, ConnectProxyConnector, ConnectionDetails, Connector, Either, LazyBuffers, NextTimeout, RustlsConnector,
    ShutdownHandle, Transport,
};
use ureq::{Error, Timeout};

/// An agent with `config` over the acknowledging TCP transport (see the module doc).
pub fn http_agent(config: ureq::config::Config) -> ureq::Agent {
    let connector =
        ().chain(ConnectProxyConnector::default()).chain(AckingTcpConnector).chain(RustlsConnector::default());
    ureq::Agent::with_parts(config, connector, DefaultResolver::default())
}

/// Opens plain TCP connections as [`AckingTcp`] transports (unless a proxy connector already
/// made the connection).
#[derive(Debug)]
struct AckingTcpConnector;

impl<In: Transport> Connector<In> for AckingTcpConnector {
    type Out = Either<In, AckingTcp>;

    fn connect(&self, details: &ConnectionDetails, chained: Option<In>) -> Result<Option<Self::Out>, Error> {
        if let Some(transport) = chained {
            return Ok(Some(Either::A(transport)));
        }
        let stream = Arc::new(connect(&details.addrs, details.timeout, details.config.no_delay())?);
        (details.register_shutdown)(Arc::downgrade(&stream) as Weak<dyn ShutdownHandle>)?;
        let buffers = LazyBuffers::new(details.config.input_buffer_size(), details.config.output_buffer_size());
        Ok(Some(Either::B(AckingTcp { stream, buffers, read_timeout: None, write_timeout: None })))
    }
}

/// Connects to the first address that answers, all within `timeout`.
fn connect(addrs: &[SocketAddr], timeout: NextTimeout, no_delay: bool) -> Result<TcpStream, Error> {
    let started = std::time::Instant::now();
    let mut last = None;
    for addr in addrs {
        let stream = match timeout.not_zero() {
            Some(limit) => {
                let left = limit.saturating_sub(started.elapsed());
                if left.is_zero() {
                    return Err(Error::Timeout(Timeout::Connect));
                }
                TcpStream::connect_timeout(addr, left)
            }
            None => TcpStream::connect(addr),
        };
        match stream {
            Ok(stream) => {
                if no_delay {
                    stream.set_nodelay(true)?;
                }
                return Ok(stream);
            }
            Err(e) if matches!(e.kind(), io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock) => {
                last = Some(Error::Timeout(Timeout::Connect));
            }
            Err(e) => last = Some(Error::Io(e)),
        }
    }
    Err(last.unwrap_or_else(|| Error::Io(io::Error::new(io::ErrorKind::ConnectionRefused, "no address to connect to"))))
}

/// A TCP connection that acknowledges received data before every blocking read.
struct AckingTcp {
    /// Shared (weakly) with the agent's shutdown handle.
    stream: Arc<TcpStream>,
    buffers: LazyBuffers,
    read_timeout: Option<std::time::Duration>,
    write_timeout: Option<std::time::Duration>,
}

impl std::fmt::Debug for AckingTcp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AckingTcp").field("peer", &self.stream.peer_addr().ok()).finish()
    }
}

/// Sets a socket timeout only when it changes (one system call saved per read or write).
fn update_timeout(
    cached: &mut Option<std::time::Duration>,
    wanted: Option<std::time::Duration>,
    set: impl FnOnce(Option<std::time::Duration>) -> io::Result<()>,
) -> io::Result<()> {
    if *cached != wanted {
        set(wanted)?;
        *cached = wanted;
    }
    Ok(())
}

/// A socket error as ureq reports it: a timed-out read or write is a `Timeout`.
fn io_error(e: io::Error, reason: Timeout) -> Error {
    match e.kind() {
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => Error::Timeout(reason),
        _ => Error::Io(e),
    }
}

/// Acknowledges at once whatever the socket has received (see the module doc).
#[cfg(any(target_os = "linux", target_os = "android"))]
fn acknowledge_now(stream: &TcpStream) {
    // A failure only means the delayed acknowledgement stays delayed.
    let _ = socket2::SockRef::from(stream).set_tcp_quickack(true);
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn acknowledge_now(_: &TcpStream) {}

impl Transport for AckingTcp {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), Error> {
        let timeout = timeout.for_write();
        if timeout.after.is_zero() {
            return Err(Error::Timeout(timeout.reason));
        }
        let stream = &self.stream;
        update_timeout(&mut self.write_timeout, timeout.not_zero().map(|d| *d), |t| stream.set_write_timeout(t))?;
        (&**stream).write_all(&self.buffers.output()[..amount]).map_err(|e| io_error(e, timeout.reason))
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, Error> {
        let timeout = timeout.for_read();
        if timeout.after.is_zero() {
            return Err(Error::Timeout(timeout.reason));
        }
        let stream = &self.stream;
        update_timeout(&mut self.read_timeout, timeout.not_zero().map(|d| *d), |t| stream.set_read_timeout(t))?;
        acknowledge_now(stream);
        let input = self.buffers.input_append_buf();
        let read = loop {
            match (&**stream).read(input) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other,
            }
        };
        let amount = read.map_err(|e| io_error(e, timeout.reason))?;
        self.buffers.input_appended(amount);
        Ok(amount > 0)
    }

    fn is_open(&mut self) -> bool {
        // A pooled connection is usable when reading would block: no bytes, no EOF, no error.
        let stream = &*self.stream;
        if stream.set_nonblocking(true).is_err() {
            return false;
        }
        let open = matches!((&*stream).read(&mut [0u8]), Err(e) if e.kind() == io::ErrorKind::WouldBlock);
        open && stream.set_nonblocking(false).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;

    use super::*;

    /// A server answering every request on a kept-alive connection with a chunked body whose
    /// terminator comes as a separate write, as RGW's are; it counts connections.
    fn chunked_server() -> (String, Arc<std::sync::atomic::AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let seen = connections.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Ok(mut stream) = stream else { continue };
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    loop {
                        let mut line = String::new();
                        let mut request = String::new();
                        while reader.read_line(&mut line).unwrap_or(0) > 0 && line != "\r\n" {
                            request.push_str(&line);
                            line.clear();
                        }
                        if request.is_empty() {
                            return;
                        }
                        let body = "x".repeat(200_000);
                        let head = format!("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n", body.len());
                        let sent = stream.write_all(head.as_bytes()).and_then(|()| stream.write_all(body.as_bytes()));
                        if sent.and_then(|()| stream.write_all(b"\r\n0\r\n\r\n")).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        (url, connections)
    }

    #[test]
    fn the_agent_reads_whole_chunked_answers_and_reuses_its_connection() {
        let (url, connections) = chunked_server();
        let agent = http_agent(ureq::Agent::config_builder().build());
        for _ in 0..5 {
            let body = agent.get(&url).call().unwrap().body_mut().read_to_string().unwrap();
            assert_eq!(body.len(), 200_000);
        }
        assert_eq!(connections.load(std::sync::atomic::Ordering::SeqCst), 1, "one kept-alive connection");
    }

    #[test]
    fn timeouts_and_refused_connections_are_ureq_errors() {
        // A server that accepts and never answers: the global timeout ends the request.
        let silent = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", silent.local_addr().unwrap());
        let agent = http_agent(
            ureq::Agent::config_builder().timeout_global(Some(std::time::Duration::from_millis(200))).build(),
        );
        assert!(matches!(agent.get(&url).call(), Err(Error::Timeout(_))), "a silent server times out");
        drop(silent);
        let closed = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", closed.local_addr().unwrap());
        drop(closed);
        match agent.get(&url).call() {
            Err(Error::Io(e)) => assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused),
            other => panic!("expected a refused connection, got {other:?}"),
        }
    }
}
