//! The TLS listener's handshake, done inside the client limits so that `client_header_timeout_ms` bounds it.
//!
//! Pingora's TLS listener runs the handshake before the application sees the connection, under
//! a fixed 60 s timeout, so a client that connects and sends nothing (or half a ClientHello)
//! held its slot for a minute whatever the config said. So the TLS address is listened on as
//! plain TCP, and [`crate::limits::LimitedApp`] recognises its connections by their local
//! address and runs the handshake itself (Pingora's own `handshake_with_callback`, with the
//! SNI certificate callback) under the deadline `client_header_timeout_ms` after accept. The
//! same deadline then bounds the first HTTP/1 request head (see `limits.rs`).
//!
//! Session resumption: tickets are encrypted with the rotated keys of
//! [`crate::tls_tickets::TicketRing`] (shared by the nodes of a store), and each handshake's
//! session id context names the certificate entry its SNI picks (see
//! [`CertStore::session_context`]).

use crate::tls::{CertStore, SniCertificates};
use crate::tls_tickets::TicketRing;
use arc_swap::ArcSwap;
use pingora_core::protocols::tls::server::handshake_with_callback;
use pingora_core::protocols::{IO, Stream};
use pingora_core::tls::ssl::{
    AlpnError, ClientHelloResponse, SslAcceptor, SslMethod, SslRef, SslVersion, select_next_proto,
};
use portico_core::tls_tickets::TICKET_LIFETIME_MS;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::time::Instant;

/// ALPN, as the wire lists it: `h2` preferred, then `http/1.1`.
const ALPN_H2_H1: &[u8] = b"\x02h2\x08http/1.1";

/// The TLS listener: its address and what its handshakes need.
pub struct TlsPort {
    addr: SocketAddr,
    acceptor: SslAcceptor,
    callbacks: SniCertificates,
}

impl TlsPort {
    /// The listener on `addr`, with certificates by SNI from `store`, TLS 1.2 and 1.3 only
    /// (Mozilla's intermediate profile), ALPN `h2` then `http/1.1`, session tickets with the
    /// keys of `tickets`.
    pub fn new(
        addr: SocketAddr,
        store: Arc<ArcSwap<CertStore>>,
        tickets: Arc<TicketRing>,
    ) -> Result<Self, String> {
        let mut builder = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls())
            .map_err(|e| format!("TLS acceptor: {e}"))?;
        builder
            .set_min_proto_version(Some(SslVersion::TLS1_2))
            .map_err(|e| format!("TLS minimum version: {e}"))?;
        builder.set_alpn_select_callback(prefer_h2);
        let lifetime = u32::try_from(TICKET_LIFETIME_MS / 1000).unwrap_or(u32::MAX);
        portico_openssl_ext::set_ticket_keys(&mut builder, tickets, lifetime)
            .map_err(|e| format!("TLS session tickets: {e}"))?;
        // Before OpenSSL looks a session up: the context of the entry the SNI picks.
        let certs = store.clone();
        builder.set_client_hello_callback(move |ssl, _alert| {
            let sni = portico_openssl_ext::client_hello_server_name(ssl);
            let context = certs.load().session_context(sni.as_deref());
            portico_openssl_ext::set_session_id_context(ssl, &context)?;
            crate::tls::keep_hello_sni(ssl, sni);
            Ok(ClientHelloResponse::SUCCESS)
        });
        Ok(TlsPort {
            addr,
            acceptor: builder.build(),
            callbacks: SniCertificates { store },
        })
    }

    /// Whether `stream` was accepted on this listener (its local address is the listener's,
    /// or has its port when the listener is on every address).
    pub fn accepted(&self, stream: &Stream) -> bool {
        let Some(digest) = stream.get_socket_digest() else {
            return false;
        };
        let Some(local) = digest.local_addr().and_then(|a| a.as_inet()) else {
            return false;
        };
        local.port() == self.addr.port()
            && (self.addr.ip().is_unspecified() || local.ip() == self.addr.ip())
    }

    /// The handshake on `stream`, given up (and the connection dropped) at `deadline`.
    pub async fn handshake<S: IO + 'static>(&self, stream: S, deadline: Instant) -> Option<Stream> {
        let handshake = handshake_with_callback(&self.acceptor, stream, &self.callbacks);
        match tokio::time::timeout_at(deadline, handshake).await {
            Ok(Ok(tls)) => Some(Box::new(tls)),
            Ok(Err(e)) => {
                log::debug!("TLS handshake failed: {e}");
                None
            }
            Err(_) => {
                log::debug!("TLS handshake not done within client_header_timeout_ms: closed");
                None
            }
        }
    }
}

/// The ALPN choice: `h2` if the client offers it, else `http/1.1`, else no ALPN.
fn prefer_h2<'a>(_ssl: &mut SslRef, offered: &'a [u8]) -> Result<&'a [u8], AlpnError> {
    select_next_proto(ALPN_H2_H1, offered).ok_or(AlpnError::NOACK)
}
