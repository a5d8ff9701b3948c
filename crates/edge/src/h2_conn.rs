//! An HTTP/2 client connection's accept loop, with the deadlines `node.limits` promises.
//!
//! Pingora's own loop keeps an h2 connection with no open stream for as long as the client
//! likes, and when told an idle timeout closes the socket without a GOAWAY. This one, built
//! on Pingora's public h2 pieces (`handshake`, `HttpSession::from_h2_conn`):
//!
//! - sends GOAWAY (`NO_ERROR`) and closes a connection that has no open stream
//!   `client_header_timeout_ms` after accept (no first request yet) or `keepalive_timeout_ms`
//!   after its last stream ended;
//! - caps concurrent streams at `node.limits.h2_max_streams` and a request's header list at
//!   `max_header_bytes` (SETTINGS, enforced by the `h2` crate);
//! - keeps Pingora's per-connection budget for malformed streams (closed after
//!   [`MAX_REJECTED`] rejected ones) and its graceful GOAWAY on shutdown, sent as soon as the
//!   node starts draining (its streams in flight then finish).

use crate::state::NodeState;
use bytes::Bytes;
use pingora_core::apps::HttpServerApp;
use pingora_core::protocols::http::ServerSession;
use pingora_core::protocols::http::v2::server::{
    H2Accept, HttpSession, default_h2_options, handshake,
};
use pingora_core::protocols::{Digest, Stream};
use pingora_core::server::ShutdownWatch;
use portico_core::config::LimitsConfig;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// Streams refused while being accepted (bad request target, framing) before the whole
/// connection is: Pingora's own budget.
pub const MAX_REJECTED: usize = 32;

/// Longest wait for the GOAWAY to be written before the socket is dropped anyway.
const GOAWAY_FLUSH: Duration = Duration::from_secs(1);

/// Serves one HTTP/2 connection, accepted at `accepted`, with `app`.
pub async fn serve<A>(
    app: &Arc<A>,
    node: &NodeState,
    stream: Stream,
    limits: &LimitsConfig,
    accepted: Instant,
    shutdown: &ShutdownWatch,
) where
    A: HttpServerApp + Send + Sync + 'static,
{
    let digest = Arc::new(Digest {
        ssl_digest: stream.get_ssl_digest(),
        timing_digest: stream.get_timing_digest(),
        proxy_digest: stream.get_proxy_digest(),
        socket_digest: stream.get_socket_digest(),
    });
    let mut options = default_h2_options();
    options.max_concurrent_streams(limits.h2_max_streams);
    options.max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX));
    let first_deadline = accepted + limits.client_header_timeout;
    let mut conn =
        match tokio::time::timeout_at(first_deadline, handshake(stream, Some(options))).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => {
                log::debug!("h2 handshake failed: {e}");
                return;
            }
            Err(_) => {
                log::debug!("h2 preface not received within client_header_timeout_ms: closed");
                return;
            }
        };
    // The number of streams being served; the idle deadline runs while it is 0.
    let (open, mut open_rx) = watch::channel(0usize);
    let open = Arc::new(open);
    let mut served = false;
    let mut rejected = 0usize;
    let mut shutdown_rx = shutdown.clone();
    let mut changes = node.watch();
    let mut shutting = *shutdown.borrow() || node.is_draining();
    if shutting {
        conn.graceful_shutdown();
    }
    loop {
        let idle = async {
            if open_rx.wait_for(|n| *n == 0).await.is_err() {
                return std::future::pending().await;
            }
            if served {
                tokio::time::sleep(limits.keepalive_timeout).await;
            } else {
                tokio::time::sleep_until(first_deadline).await;
            }
        };
        let accepted = tokio::select! {
            biased;
            _ = shutdown_rx.changed(), if !shutting => {
                conn.graceful_shutdown();
                shutting = true;
                continue;
            }
            Ok(()) = changes.changed(), if !shutting => {
                // A draining node closes its HTTP/1 connections after each response; an
                // HTTP/2 one is told to go elsewhere (GOAWAY) and finishes its streams.
                if node.is_draining() {
                    conn.graceful_shutdown();
                    shutting = true;
                }
                continue;
            }
            next = HttpSession::from_h2_conn(&mut conn, digest.clone()) => next,
            // Also while shutting: a graceful GOAWAY closes an idle connection only once the
            // client answers its PING, and one that never does must not keep its slot.
            () = idle => {
                log::debug!("h2 connection without an open stream past its deadline: GOAWAY");
                go_away(&mut conn, h2::Reason::NO_ERROR).await;
                return;
            }
        };
        match accepted {
            Err(e) => {
                log::debug!("h2 connection ended: {e}");
                return;
            }
            Ok(None) => return,
            Ok(Some(H2Accept::Rejected)) => {
                rejected += 1;
                if rejected >= MAX_REJECTED {
                    log::debug!("h2 connection closed after {rejected} malformed streams");
                    go_away(&mut conn, h2::Reason::PROTOCOL_ERROR).await;
                    return;
                }
            }
            Ok(Some(H2Accept::Session(session))) => {
                served = true;
                open.send_modify(|n| *n += 1);
                let guard = OpenStream(open.clone());
                let app = app.clone();
                let shutdown = shutdown.clone();
                tokio::spawn(async move {
                    let _guard = guard;
                    app.process_new_http(ServerSession::new_http2(session), &shutdown)
                        .await;
                });
            }
        }
    }
}

/// Sends GOAWAY with `reason` and drives the connection until it is written and closed, for
/// at most [`GOAWAY_FLUSH`].
async fn go_away(conn: &mut h2::server::Connection<Stream, Bytes>, reason: h2::Reason) {
    conn.abrupt_shutdown(reason);
    let drive = async {
        while let Some(next) = conn.accept().await {
            if next.is_err() {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(GOAWAY_FLUSH, drive).await;
}

/// One stream being served; counted out when dropped.
struct OpenStream(Arc<watch::Sender<usize>>);

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}
