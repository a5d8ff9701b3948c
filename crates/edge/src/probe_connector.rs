//! The connections a node's probes open, shared by all of them for the node's life. Plain
//! origins are reached over TCP with no TLS context at all; TLS origins through one Pingora
//! `TransportConnector`, built when the first TLS origin is probed. Building one loads the
//! system roots (the whole CA bundle, parsed under OpenSSL's global lock: tens of
//! milliseconds and about a mebibyte), so that is paid once per node, not per origin or per
//! reload. An origin's SNI, certificate check, pool CA and pool client certificate travel
//! with its peer and are applied per handshake, so the one context serves every TLS setting a
//! config can hold.
//! Probes speak the pool's protocol: HTTP/2 where the pool's requests would.

use pingora_core::connectors::TransportConnector;
use pingora_core::connectors::http::v2::{H2HandshakeSettings, handshake};
use pingora_core::protocols::ALPN;
use pingora_core::protocols::Stream;
use pingora_core::protocols::http::v1::client::HttpSession;
use pingora_core::protocols::l4::stream::Stream as TcpStream;
use pingora_core::upstreams::peer::{HttpPeer, Peer};
use pingora_error::{Error, ErrorType, Result};
use pingora_http::RequestHeader;
use std::io::ErrorKind;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// Opens probe connections: TCP for plain origins, one shared TLS context for TLS origins.
#[derive(Default)]
pub struct ProbeConnector {
    tls: OnceLock<TransportConnector>,
    tls_contexts: AtomicU64,
    connections: AtomicU64,
}

impl ProbeConnector {
    /// How many TLS contexts (each with its own copy of the system roots) the probes built:
    /// 0 while no origin uses TLS, 1 once one does.
    pub fn tls_contexts_built(&self) -> u64 {
        self.tls_contexts.load(Ordering::Relaxed)
    }

    /// Connections the probes tried to open, plain and TLS.
    pub fn connections_opened(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }

    /// The TLS connector, built on first use.
    fn tls(&self) -> &TransportConnector {
        self.tls.get_or_init(|| {
            self.tls_contexts.fetch_add(1, Ordering::Relaxed);
            TransportConnector::new(None)
        })
    }

    /// A new connection to `peer` (never a pooled one: each probe goes through the TCP
    /// and TLS handshakes, which is what it checks).
    async fn connect(&self, peer: &HttpPeer) -> Result<Stream> {
        self.connections.fetch_add(1, Ordering::Relaxed);
        if peer.tls() {
            return self.tls().new_stream(peer).await;
        }
        let Some(&addr) = peer.address().as_inet() else {
            return Error::e_explain(ErrorType::ConnectError, format!("{peer} is not TCP"));
        };
        let tcp = tokio::net::TcpStream::connect(addr).await.map_err(|e| {
            let kind = match e.kind() {
                ErrorKind::ConnectionRefused => ErrorType::ConnectRefused,
                ErrorKind::TimedOut => ErrorType::ConnectTimedout,
                _ => ErrorType::ConnectError,
            };
            Error::because(kind, format!("connecting to {addr}"), e)
        })?;
        let mut stream = TcpStream::from(tcp);
        stream.set_nodelay()?;
        Ok(Box::new(stream))
    }

    /// Sends `req` to `peer` on a connection of its own and returns the status of the
    /// response head. The connection is closed (dropped) without reading the body.
    /// Speaks the pool's protocol: HTTP/2 when TLS negotiated `h2` or the pool's `h2` asks
    /// for cleartext prior knowledge, HTTP/1.1 otherwise.
    pub async fn status(&self, peer: &HttpPeer, req: &RequestHeader) -> Result<u16> {
        let stream = self.connect(peer).await?;
        let h2 = match stream.selected_alpn_proto() {
            Some(alpn) => alpn == ALPN::H2,
            None => !peer.tls() && peer.options.alpn.get_min_http_version() == 2,
        };
        if h2 {
            return h2_status(stream, peer, req).await;
        }
        let mut session = HttpSession::new_with_options(stream, peer);
        session.write_timeout = peer.options.write_timeout;
        session.read_timeout = peer.options.read_timeout;
        session.write_request_header(Box::new(req.clone())).await?;
        session.finish_body().await?;
        session.read_response().await?;
        match session.resp_header() {
            Some(head) => Ok(head.status.as_u16()),
            None => Error::e_explain(ErrorType::InvalidHTTPHeader, "no response head"),
        }
    }
}

/// One probe over HTTP/2: a connection of its own (closed when dropped), one stream.
async fn h2_status(stream: Stream, peer: &HttpPeer, req: &RequestHeader) -> Result<u16> {
    let mut settings = H2HandshakeSettings::new();
    settings.max_streams = 1;
    let conn = handshake(stream, settings).await?;
    let Some(mut session) = conn.spawn_stream().await? else {
        return Error::e_explain(ErrorType::H2Error, "the origin refused the probe's stream");
    };
    session.write_timeout = peer.options.write_timeout;
    session.read_timeout = peer.options.read_timeout;
    session.write_request_header(Box::new(req.clone()), true)?;
    session.read_response_header().await?;
    match session.response_header() {
        Some(head) => Ok(head.status.as_u16()),
        None => Error::e_explain(ErrorType::InvalidHTTPHeader, "no response head"),
    }
}

/// What all probes of a node share for the node's life (reloads included): held by the
/// node's state, used by the probe tasks.
#[derive(Default)]
pub struct Probes {
    /// Opens every probe connection.
    pub connector: ProbeConnector,
    tasks_started: AtomicU64,
}

impl Probes {
    /// Probe tasks started since the node was built (one per origin, and one more each
    /// time a reload changes what an origin's probe sends).
    pub fn tasks_started(&self) -> u64 {
        self.tasks_started.load(Ordering::Relaxed)
    }

    /// Counts a probe task started.
    pub(crate) fn task_started(&self) {
        self.tasks_started.fetch_add(1, Ordering::Relaxed);
    }
}
