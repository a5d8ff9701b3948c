//! Portico's HTTP application: the requests Portico's own attempt loop serves run its hooks directly; every other request goes through Pingora's proxy (`HttpProxy`) unchanged.
//!
//! Pingora's `HttpProxy::process_new_http` is one future per request, boxed, of about 10 KB
//! (its whole proxy loop: cache, retries, HTTP/1 and HTTP/2 upstreams), so every request
//! starts with a 10 KB copy, around 10k instructions, before Portico's `request_filter` runs
//! (docs/performance.md). A bodiless GET, HEAD or OPTIONS never gets past `request_filter`
//! (it is answered there, by a rule or by `hedged::serve`), so for those [`EdgeApp`] runs
//! what Pingora runs around `request_filter` itself, with a future of its own size:
//!
//! - the head is read as Pingora reads it (a malformed head gets 400, then the connection
//!   closes; a connection waiting for its next head is closed when the service stops);
//! - then `early_request_filter`, the downstream modules, `request_filter`, `logging`, and
//!   `finish` of the client session for keep-alive, as `HttpProxy::process_request` does; a
//!   hook's error gets `fail_to_proxy`'s answer, is logged with the request summary and
//!   passed to `logging`, and closes the connection (Portico's `fail_to_proxy` never lets it
//!   be reused).
//!
//! Not carried over, as Portico uses neither: the proxy `Session` built here never reports
//! `is_process_shutting_down()` (draining is Portico's own flag), and `allow_spawning_subrequest`
//! is not asked (no subrequests).
//!
//! Which requests: [`crate::proxy::own_loop`], the one predicate `request_filter` decides by
//! too. An HTTP/2 stream comes with its head read, so the choice is made before anything
//! runs. An HTTP/1 head has to be read to be known: when it is not one of them, the bytes it
//! was read from are handed to Pingora's proxy as the session's pipelined prefix and Pingora
//! reads the same head from them again (`limits::replay`); from then on, the connection's
//! requests all go to Pingora's proxy unread, since what it leaves of a pipelined next
//! request is not visible here. Connections not under the client limits (h2c's HTTP/1
//! fallback) go to Pingora's proxy whole.

use crate::limits;
use crate::proxy::{EdgeProxy, own_loop};
use async_trait::async_trait;
use pingora_core::apps::{
    HttpPersistentSettings, HttpServerApp, HttpServerOptions, ReusedHttpStream,
};
use pingora_core::protocols::http::ServerSession;
use pingora_core::protocols::http::v2::server::H2Options;
use pingora_core::protocols::raw_connect::ProxyDigest;
use pingora_core::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl,
    TimingDigest, UniqueID, UniqueIDType,
};
use pingora_core::server::ShutdownWatch;
use pingora_error::{Error, ErrorType};
use pingora_proxy::{HttpProxy, ProxyHttp, Session};
use portico_core::lifecycle::RequestKind;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;

/// Pingora's proxy of [`EdgeProxy`] with Portico's own path in front (see the module docs).
pub struct EdgeApp {
    proxy: Arc<HttpProxy<EdgeProxy>>,
    /// The same hooks as `proxy`'s (they share the node and the connector).
    edge: EdgeProxy,
    /// Set, and `stopped` notified, when the service stops listening (`http_cleanup`).
    stopping: AtomicBool,
    stopped: Notify,
}

impl EdgeApp {
    /// `proxy` (modules initialised) for every request Portico's own loop does not serve;
    /// `edge` the same hooks as `proxy`'s.
    pub fn new(proxy: HttpProxy<EdgeProxy>, edge: EdgeProxy) -> Self {
        EdgeApp {
            proxy: Arc::new(proxy),
            edge,
            stopping: AtomicBool::new(false),
            stopped: Notify::new(),
        }
    }

    /// Resolves once the service has stopped listening.
    async fn stop(&self) {
        let notified = self.stopped.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if self.stopping.load(Ordering::Acquire) {
            return;
        }
        notified.await;
    }

    /// Reads an HTTP/1 request head as Pingora's proxy does; `false` when there is none to
    /// serve (the client closed, the head was refused, or the service stopped).
    async fn read_head(&self, session: &mut ServerSession) -> bool {
        let read = tokio::select! {
            biased;
            read = session.read_request() => read,
            _ = self.stop() => return false,
        };
        match read {
            Ok(true) => true,
            Ok(false) => false,
            Err(mut e) => {
                e.as_down();
                if matches!(e.etype(), ErrorType::InvalidHTTPHeader) {
                    log::debug!("Fail to proxy: {e}, downstream session type: HTTP/1");
                    if let Err(e) = session.respond_error(400).await {
                        log::error!("failed to send error response to downstream: {e}");
                    }
                } else {
                    log::error!("Fail to proxy: {e}, downstream session type: HTTP/1");
                }
                session.shutdown().await;
                false
            }
        }
    }

    /// Whether Portico's own loop serves the request whose head `session` has.
    fn own(session: &mut ServerSession) -> bool {
        let has_body = !session.is_body_empty();
        let req = session.req_header();
        own_loop(RequestKind::new(req.method.as_str(), has_body), req)
    }

    /// Portico's hooks on a request its own loop serves, as `HttpProxy::process_request`
    /// runs them for a request `request_filter` answers.
    async fn serve(
        self: &Arc<Self>,
        mut downstream: ServerSession,
        shutdown: &ShutdownWatch,
    ) -> Option<ReusedHttpStream> {
        let previous = downstream.take_connection_user_context();
        let edge = &self.edge;
        let mut session =
            Session::new_h1_with_modules(Box::new(Vacant), &self.proxy.downstream_modules);
        *session.downstream_session = downstream;
        if *shutdown.borrow() {
            session.set_keepalive(None);
        }
        let mut ctx = edge.new_ctx();
        if let Some(previous) = previous {
            edge.on_connection_reuse(&mut session, &mut ctx, previous);
        }
        if let Err((e, context)) = self.hooks(&mut session, &mut ctx).await {
            let answer = edge.fail_to_proxy(&mut session, &e, &mut ctx).await;
            if !edge.suppress_error_log(&session, &ctx, &e) {
                log::error!(
                    "{context} {e}, status: {}, {}",
                    answer.error_code,
                    edge.request_summary(&session, &ctx)
                );
            }
            edge.logging(&mut session, Some(&e), &mut ctx).await;
            session.downstream_session.on_proxy_failure(e);
            if !answer.can_reuse_downstream {
                return None;
            }
        } else {
            edge.logging(&mut session, None, &mut ctx).await;
        }
        let mut settings = HttpPersistentSettings::for_session(&session);
        if let Some(user) = edge.persist_connection_context(&session, &ctx) {
            settings.set_user_context(user);
        }
        let downstream = *session.downstream_session;
        let (stream, pipelined) = downstream.finish().await.ok().flatten()?.into_parts();
        let stream = match pipelined {
            Some(bytes) => {
                let stream = limits::carry(stream, &bytes)?;
                settings.set_pipelined_prefix(bytes);
                stream
            }
            None => stream,
        };
        Some(ReusedHttpStream::new(stream, Some(settings)))
    }

    /// `early_request_filter`, the downstream modules and `request_filter`; the error with
    /// the words Pingora logs it with.
    async fn hooks(
        &self,
        session: &mut Session,
        ctx: &mut <EdgeProxy as ProxyHttp>::CTX,
    ) -> Result<(), (Box<Error>, &'static str)> {
        let edge = &self.edge;
        edge.early_request_filter(session, ctx)
            .await
            .map_err(|e| (e, "Fail to early filter request:"))?;
        let req = session.downstream_session.req_header_mut();
        session
            .downstream_modules_ctx
            .request_header_filter(req)
            .await
            .map_err(|e| (e, "Failed in downstream modules request filter:"))?;
        match edge.request_filter(session, ctx).await {
            Ok(true) => Ok(()),
            // `request_filter` decides by the same predicate: not reached.
            Ok(false) => Err((
                Error::explain(
                    ErrorType::InternalError,
                    "a request of Portico's own loop was left to Pingora's",
                ),
                "Fail to filter request:",
            )),
            Err(e) => Err((e, "Fail to filter request:")),
        }
    }
}

#[async_trait]
impl HttpServerApp for EdgeApp {
    async fn process_new_http(
        self: &Arc<Self>,
        mut session: ServerSession,
        shutdown: &ShutdownWatch,
    ) -> Option<ReusedHttpStream> {
        let h1 = matches!(session, ServerSession::H1(_));
        if h1 && limits::replayable(&session) {
            if !self.read_head(&mut session).await {
                return None;
            }
            if !Self::own(&mut session) && limits::replay(&mut session) {
                return self.proxy.process_new_http(session, shutdown).await;
            }
        } else if h1 || !matches!(session, ServerSession::H2(_)) || !Self::own(&mut session) {
            // HTTP/2 streams come with their heads read.
            return self.proxy.process_new_http(session, shutdown).await;
        }
        self.serve(session, shutdown).await
    }

    fn h2_options(&self) -> Option<H2Options> {
        self.proxy.h2_options()
    }

    fn server_options(&self) -> Option<&HttpServerOptions> {
        self.proxy.server_options()
    }

    async fn http_cleanup(&self) {
        self.stopping.store(true, Ordering::Release);
        self.stopped.notify_waiters();
        self.proxy.http_cleanup().await;
    }

    async fn process_custom_session(
        self: Arc<Self>,
        stream: pingora_core::protocols::Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<pingora_core::protocols::Stream> {
        self.proxy
            .clone()
            .process_custom_session(stream, shutdown)
            .await
    }
}

/// No connection: what a [`Session`] is built around before the client's session, already
/// read, takes its place (Pingora has no constructor from a read session).
#[derive(Debug)]
struct Vacant;

impl AsyncRead for Vacant {
    fn poll_read(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        _: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Vacant {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, _: &[u8]) -> Poll<io::Result<usize>> {
        Poll::Ready(Err(io::Error::other("no connection")))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[async_trait]
impl Shutdown for Vacant {
    async fn shutdown(&mut self) {}
}

impl UniqueID for Vacant {
    fn id(&self) -> UniqueIDType {
        -1
    }
}

impl Ssl for Vacant {}

impl GetTimingDigest for Vacant {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        Vec::new()
    }
}

impl GetProxyDigest for Vacant {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        None
    }
}

impl GetSocketDigest for Vacant {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        None
    }
}

impl Peek for Vacant {}

#[cfg(test)]
mod tests {
    use super::*;
    use pingora_http::RequestHeader;

    fn head(method: &str, headers: &[(&'static str, &'static str)]) -> RequestHeader {
        let mut req = RequestHeader::build(method, b"/", None).expect("head");
        for (name, value) in headers {
            req.insert_header(*name, *value).expect("header");
        }
        req
    }

    #[test]
    fn own_loop_takes_bodiless_get_head_options_and_nothing_else() {
        let own = |method: &str, body: bool, headers: &[(&'static str, &'static str)]| {
            own_loop(RequestKind::new(method, body), &head(method, headers))
        };
        for method in ["GET", "HEAD", "OPTIONS"] {
            assert!(own(method, false, &[]), "{method}");
            assert!(!own(method, true, &[]), "{method} with a body");
        }
        for method in ["POST", "PUT", "DELETE", "PATCH", "CONNECT"] {
            assert!(!own(method, false, &[]), "{method}");
        }
        let upgrade = [("Connection", "Upgrade"), ("Upgrade", "websocket")];
        assert!(!own("GET", false, &upgrade), "a WebSocket upgrade");
    }
}
