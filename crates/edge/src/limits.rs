//! Client limits (`node.limits`): the connection cap, the request head's total deadline and size limits, the keep-alive idle timeout and the request-body limit.
//!
//! Pingora reads a request head with a timer that restarts on every read, into a buffer that
//! may grow to 1 MiB, and keeps an idle keep-alive connection for as long as the client's
//! `Keep-Alive` header asks. So the proxy's [`LimitedApp`] wraps every client connection, at
//! accept, in a [`LimitedStream`] that owns the connection's lifecycle:
//!
//! - **Idle** (before a request head's first byte): closed silently at the deadline, which is
//!   `client_header_timeout_ms` after accept for the first request and `keepalive_timeout_ms`
//!   after the last response for later ones.
//! - **Head** (from its first byte until Pingora has parsed it, which `request_filter` reports
//!   with [`head_received`]): one total deadline, `client_header_timeout_ms` (from accept for
//!   the first request, from the head's first byte for later ones), whatever trickles in; and
//!   never more than `max_header_bytes` handed to Pingora, so the memory an unfinished head
//!   holds is bounded by the limit, not by Pingora's 1 MiB. A head that misses its deadline
//!   is answered 408, one over the limit 431, a request line over 8192 bytes 414; then the
//!   connection is closed (after a short lingering read, so the answer is not lost to a reset).
//! - **Body and response**: bytes pass untouched.
//!
//! The slot each connection takes of `max_connections` is held by the wrapper, so it is given
//! back when the connection is dropped, whichever way it ends. A connection that finds no slot
//! is closed at accept (by the listener's connection filter, before any TLS handshake, or here
//! for one that raced past it) and counted in `portico_connections_rejected_total`.
//!
//! On the TLS listener the handshake is done here too (see `tls_accept.rs`), so the first
//! deadline, `client_header_timeout_ms` after accept, covers the handshake and the first head.
//!
//! Each connection is its own task and its deadlines are its own timers: a slow client holds
//! its slot and its bounded buffer, nothing another client waits on.

use crate::request::answers;
use crate::state::NodeState;
use crate::tls_accept::TlsPort;
use async_trait::async_trait;
use bytes::BytesMut;
use pingora_core::apps::{HttpServerApp, ServerApp};
use pingora_core::listeners::ConnectionFilter;
use pingora_core::protocols::http::ServerSession;
use pingora_core::protocols::raw_connect::ProxyDigest;
use pingora_core::protocols::tls::{SslDigest, TlsRef};
use pingora_core::protocols::{
    ALPN, GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl,
    Stream, TimingDigest, UniqueID, UniqueIDType,
};
use pingora_core::server::ShutdownWatch;
use pingora_error::{Error, ErrorSource, ErrorType};
use pingora_http::RequestHeader;
use portico_core::config::{LimitsConfig, MAX_REQUEST_LINE};
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// How long a refused connection is read from (and discarded) after its answer, so that
/// closing it with unread bytes does not reset it before the client has read the answer.
const LINGER: Duration = Duration::from_secs(2);
/// Most bytes discarded while lingering.
const LINGER_BYTES: usize = 256 * 1024;
/// Most capacity a connection keeps for its next request head while idle; the buffer of a
/// larger head is freed.
const KEPT_HEAD_CAPACITY: usize = 4096;

/// Why a request head was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Not all there within `client_header_timeout_ms`: 408.
    HeadTimeout,
    /// A request line over [`MAX_REQUEST_LINE`] bytes: 414.
    LineTooLong,
    /// A head over `max_header_bytes`: 431.
    HeadTooLarge,
}

impl Refusal {
    /// The status answered.
    pub fn status(self) -> u16 {
        match self {
            Refusal::HeadTimeout => 408,
            Refusal::LineTooLong => 414,
            Refusal::HeadTooLarge => 431,
        }
    }

    /// The `reason` label of `portico_client_refused_total`.
    pub fn label(self) -> &'static str {
        match self {
            Refusal::HeadTimeout => "header_timeout",
            Refusal::LineTooLong => "request_line_too_long",
            Refusal::HeadTooLarge => "header_too_large",
        }
    }

    /// The whole HTTP/1.1 answer, `Connection: close`.
    fn response(self, limits: &LimitsConfig, region: &str) -> Vec<u8> {
        let (reason, body) = match self {
            Refusal::HeadTimeout => (
                "Request Timeout",
                answers::head_timeout(limits.client_header_timeout.as_millis()),
            ),
            Refusal::LineTooLong => ("URI Too Long", answers::line_too_long(MAX_REQUEST_LINE)),
            Refusal::HeadTooLarge => (
                "Request Header Fields Too Large",
                answers::head_too_large(limits.max_header_bytes),
            ),
        };
        answers::closing_answer(self.status(), reason, &body, region)
    }
}

/// Counts the bytes of one request head as they arrive and tells when a limit is passed.
#[derive(Debug, Default, Clone)]
pub struct HeadMeter {
    received: usize,
    /// Bytes of the request line so far (empty lines before it skipped), until its LF.
    line: usize,
    line_started: bool,
    line_done: bool,
    last_cr: bool,
}

impl HeadMeter {
    /// Bytes of the head received so far.
    pub fn received(&self) -> usize {
        self.received
    }

    /// How many more bytes may be handed on before the head is over `max_head`.
    pub fn allowance(&self, max_head: usize) -> usize {
        max_head.saturating_sub(self.received)
    }

    /// Counts `bytes`; `Some` when the request line is already too long (the bytes are then
    /// not handed on).
    pub fn feed(&mut self, bytes: &[u8]) -> Option<Refusal> {
        self.received += bytes.len();
        if self.line_done {
            return None;
        }
        for &b in bytes {
            if !self.line_started {
                if b == b'\r' || b == b'\n' {
                    continue;
                }
                self.line_started = true;
            }
            if b == b'\n' {
                self.line_done = true;
                let len = self.line - usize::from(self.last_cr);
                return (len > MAX_REQUEST_LINE).then_some(Refusal::LineTooLong);
            }
            self.last_cr = b == b'\r';
            self.line += 1;
        }
        // Without its LF yet, the line is too long once it holds more than the limit and a CR.
        (self.line > MAX_REQUEST_LINE + 1).then_some(Refusal::LineTooLong)
    }

    /// The answer when more of the head is wanted but the allowance is spent.
    pub fn exhausted(&self) -> Refusal {
        if !self.line_done && self.line > MAX_REQUEST_LINE {
            Refusal::LineTooLong
        } else {
            Refusal::HeadTooLarge
        }
    }
}

/// The open client connections of a node and the cap on them.
pub struct Connections {
    open: AtomicUsize,
    node: Arc<NodeState>,
}

impl std::fmt::Debug for Connections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connections")
            .field("open", &self.open())
            .finish()
    }
}

impl Connections {
    /// No connection open yet.
    pub fn new(node: Arc<NodeState>) -> Arc<Self> {
        Arc::new(Connections {
            open: AtomicUsize::new(0),
            node,
        })
    }

    /// Open client connections now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    fn limit(&self) -> usize {
        self.node.snapshot().config.node.limits.max_connections
    }

    fn reject(&self) {
        self.node.metrics.connections_rejected.inc();
    }

    /// A slot under the cap, given back when dropped; `None` (counted) at the cap.
    fn take(self: &Arc<Self>) -> Option<Slot> {
        if self.open.fetch_add(1, Ordering::AcqRel) >= self.limit() {
            self.open.fetch_sub(1, Ordering::AcqRel);
            self.reject();
            return None;
        }
        self.node.metrics.client_connections.inc();
        Some(Slot(self.clone()))
    }
}

/// One connection's place under `max_connections`.
#[derive(Debug)]
struct Slot(Arc<Connections>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
        self.0.node.metrics.client_connections.dec();
    }
}

/// The listener's early check: at the cap, a new connection is dropped right after `accept`,
/// before a TLS handshake or a task. [`LimitedApp`] still takes the slot (and refuses a
/// connection that raced past this check), so the count stays exact.
#[derive(Debug)]
pub struct AcceptFilter(pub Arc<Connections>);

#[async_trait]
impl ConnectionFilter for AcceptFilter {
    async fn should_accept(&self, _addr: Option<&SocketAddr>) -> bool {
        if self.0.open() >= self.0.limit() {
            self.0.reject();
            return false;
        }
        true
    }
}

/// The proxy application with the client limits around it (see the module docs).
pub struct LimitedApp<A> {
    app: Arc<A>,
    connections: Arc<Connections>,
    /// The TLS listener, whose connections are handshaken here (see `tls_accept.rs`).
    tls: Option<TlsPort>,
}

impl<A> LimitedApp<A> {
    /// Wraps `app`, counting connections in `connections`; the connections `tls` accepted
    /// are handshaken within `client_header_timeout_ms`.
    pub fn new(app: A, connections: Arc<Connections>, tls: Option<TlsPort>) -> Self {
        LimitedApp {
            app: Arc::new(app),
            connections,
            tls,
        }
    }
}

#[async_trait]
impl<A> ServerApp for LimitedApp<A>
where
    A: HttpServerApp + Send + Sync + 'static,
{
    async fn process_new(
        self: &Arc<Self>,
        mut stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let slot = self.connections.take()?;
        let accepted = Instant::now();
        let node = self.connections.node.clone();
        let limits = node.snapshot().config.node.limits;
        if let Some(tls) = self.tls.as_ref().filter(|t| t.accepted(&stream)) {
            // Pingora's handshake wants a concrete stream: the TCP one, wrapped bare.
            let tcp = LimitedStream::passthrough(stream, None);
            let deadline = accepted + limits.client_header_timeout;
            stream = tls.handshake(tcp, deadline).await?;
        }
        let options = self.app.server_options();
        let plain_h1 = !matches!(
            stream.selected_alpn_proto(),
            Some(ALPN::H2) | Some(ALPN::Custom(_))
        ) && !options.is_some_and(|o| o.h2c || o.force_custom);
        if matches!(stream.selected_alpn_proto(), Some(ALPN::H2)) {
            // HTTP/2 over TLS: our accept loop, with its deadlines and stream cap (h2_conn.rs).
            let stream = LimitedStream::passthrough(stream, Some(slot));
            let stream = Box::new(stream);
            crate::h2_conn::serve(&self.app, &node, stream, &limits, accepted, shutdown).await;
            return None;
        }
        if !plain_h1 {
            // HTTP/2 frames its own heads (and the h2 crate bounds them): only the slot here.
            let stream = LimitedStream::passthrough(stream, Some(slot));
            return <A as ServerApp>::process_new(&self.app, Box::new(stream), shutdown).await;
        }
        let request_limit = options.and_then(|o| o.keepalive_request_limit);
        let stream: Stream = Box::new(LimitedStream::new(stream, slot, limits, node, accepted));
        // What Pingora's own HTTP/1 loop does (`impl ServerApp for HttpServerApp`), with the
        // stream put back into its idle phase between requests.
        let mut session = ServerSession::new_http1(stream);
        if *shutdown.borrow() {
            session.set_keepalive(None);
        } else {
            session.set_keepalive(Some(limits.keepalive_timeout.as_secs().max(1)));
        }
        session.set_keepalive_reuses_remaining(request_limit);
        loop {
            let reused = self.app.process_new_http(session, shutdown).await?;
            let (next, settings) = reused.consume();
            // Always ours: this loop made it.
            let mut limited = next.into_any().downcast::<LimitedStream>().ok()?;
            limited.idle();
            session = ServerSession::new_http1(limited);
            if let Some(settings) = settings {
                settings.apply_to_session(&mut session);
            }
        }
    }

    async fn cleanup(&self) {
        <A as ServerApp>::cleanup(&self.app).await;
    }
}

/// Where a connection is in its request/response cycle (see the module docs).
#[derive(Debug)]
enum Phase {
    Idle,
    Head,
    Body,
    Refusing(Box<Refusing>),
}

/// An answer being written to a refused connection, then the lingering read.
#[derive(Debug)]
struct Refusing {
    refusal: Refusal,
    response: Vec<u8>,
    written: usize,
    shut: bool,
    drained: usize,
}

/// The head limits of one HTTP/1 connection.
struct HeadGuard {
    limits: LimitsConfig,
    node: Arc<NodeState>,
    phase: Phase,
    meter: HeadMeter,
    /// The current deadline: idle, head, or the end of lingering.
    timer: Pin<Box<Sleep>>,
    /// Whether the head being read is the connection's first (its deadline runs from accept).
    first: bool,
}

/// What [`EdgeApp`](crate::edge_app::EdgeApp) needs to hand a request head it has read to
/// Pingora's proxy, which reads it again (see [`replay`]).
#[derive(Debug, Default)]
struct Replay {
    /// The bytes handed on since the connection went idle (the head and whatever came with
    /// it), after the previous request's pipelined bytes; at most `max_header_bytes` of reads.
    seen: BytesMut,
    /// Pipelined bytes of the previous request, which Pingora parses before reading on.
    carried: Option<BytesMut>,
    /// Set once a head read here was handed to Pingora's proxy: what that proxy leaves of
    /// pipelined bytes is not known here, so the later requests of the connection are all
    /// its own.
    handed_on: bool,
}

impl Replay {
    /// Keeps `bytes`, read while a head is wanted, for [`replay`]; nothing once a head was
    /// handed on (none is replayed after it).
    fn record(&mut self, bytes: &[u8]) {
        if !self.handed_on {
            self.seen.extend_from_slice(bytes);
        }
    }

    /// Between two requests: the last head is forgotten (its buffer freed when it was large,
    /// so an idle keep-alive connection holds no more than [`KEPT_HEAD_CAPACITY`] for it),
    /// and the next one starts with the previous request's pipelined bytes.
    fn idle(&mut self) {
        if self.handed_on || self.seen.capacity() > KEPT_HEAD_CAPACITY {
            self.seen = BytesMut::new();
        } else {
            self.seen.clear();
        }
        if let Some(carried) = self.carried.take() {
            self.seen.extend_from_slice(&carried);
        }
    }
}

/// A client connection under `node.limits` (see the module docs).
pub struct LimitedStream {
    inner: Stream,
    /// `None` for the TCP connection under a TLS handshake (the slot is the TLS stream's).
    _slot: Option<Slot>,
    /// `None` for HTTP/2: only the slot.
    guard: Option<Box<HeadGuard>>,
    /// Set by [`head_received`] once Pingora has parsed the head.
    parsed: AtomicBool,
    /// Whether the last read of the body found nothing from the client (so a timeout while
    /// the body is unfinished is the client's stall, not a blocked origin).
    waiting_on_client: AtomicBool,
    /// The head's bytes, for [`replay`] (HTTP/1 only; uncontended: the connection's task).
    replay: Mutex<Replay>,
}

impl std::fmt::Debug for LimitedStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LimitedStream")
            .field("inner", &self.inner)
            .field("phase", &self.guard.as_ref().map(|g| &g.phase))
            .finish()
    }
}

impl LimitedStream {
    /// The first head's deadline runs from `accepted` (before any TLS handshake).
    fn new(
        inner: Stream,
        slot: Slot,
        limits: LimitsConfig,
        node: Arc<NodeState>,
        accepted: Instant,
    ) -> Self {
        let deadline = accepted + limits.client_header_timeout;
        LimitedStream {
            inner,
            _slot: Some(slot),
            guard: Some(Box::new(HeadGuard {
                limits,
                node,
                phase: Phase::Idle,
                meter: HeadMeter::default(),
                timer: Box::pin(tokio::time::sleep_until(deadline)),
                first: true,
            })),
            parsed: AtomicBool::new(false),
            waiting_on_client: AtomicBool::new(false),
            replay: Mutex::default(),
        }
    }

    fn passthrough(inner: Stream, slot: Option<Slot>) -> Self {
        LimitedStream {
            inner,
            _slot: slot,
            guard: None,
            parsed: AtomicBool::new(true),
            waiting_on_client: AtomicBool::new(false),
            replay: Mutex::default(),
        }
    }

    /// Between two requests of a keep-alive connection: idle until `keepalive_timeout_ms`.
    fn idle(&mut self) {
        self.parsed.store(false, Ordering::Release);
        self.waiting_on_client.store(false, Ordering::Relaxed);
        let mut begun: &[u8] = &[];
        if let Ok(r) = self.replay.get_mut() {
            r.idle();
            begun = &r.seen;
        }
        if let Some(g) = self.guard.as_deref_mut() {
            g.phase = Phase::Idle;
            g.meter = HeadMeter::default();
            // The next head's first bytes, read with the last request (pipelined), count
            // against the limit as if read now (a line too long is answered at the next read).
            g.meter.feed(begun);
            g.first = false;
            g.timer
                .as_mut()
                .reset(Instant::now() + g.limits.keepalive_timeout);
        }
    }
}

impl HeadGuard {
    /// A read while the head is wanted: within the allowance and the deadline.
    fn poll_head(
        &mut self,
        inner: &mut Stream,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
        replay: &mut Replay,
    ) -> Poll<io::Result<()>> {
        let allowance = self.meter.allowance(self.limits.max_header_bytes);
        if allowance == 0 {
            return self.refuse(inner, cx, self.meter.exhausted());
        }
        let before = buf.filled().len();
        let read = if buf.remaining() <= allowance {
            Pin::new(&mut *inner).poll_read(cx, buf)
        } else {
            // Near the limit: read no more than it allows.
            let mut scratch = [0u8; 8192];
            let take = allowance.min(scratch.len());
            let mut small = ReadBuf::new(&mut scratch[..take]);
            let read = Pin::new(&mut *inner).poll_read(cx, &mut small);
            if let Poll::Ready(Ok(())) = read {
                buf.put_slice(small.filled());
            }
            read
        };
        match read {
            Poll::Ready(Ok(())) => {
                let n = buf.filled().len() - before;
                if n == 0 {
                    return Poll::Ready(Ok(()));
                }
                if matches!(self.phase, Phase::Idle) {
                    self.phase = Phase::Head;
                    if !self.first {
                        let deadline = Instant::now() + self.limits.client_header_timeout;
                        self.timer.as_mut().reset(deadline);
                    }
                }
                if let Some(refusal) = self.meter.feed(&buf.filled()[before..]) {
                    buf.set_filled(before);
                    return self.refuse(inner, cx, refusal);
                }
                replay.record(&buf.filled()[before..]);
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                if self.timer.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                if matches!(self.phase, Phase::Idle) {
                    // Nothing of a request came: close without a word (end of stream).
                    log::debug!("client connection idle past its deadline: closed");
                    return Poll::Ready(Ok(()));
                }
                self.refuse(inner, cx, Refusal::HeadTimeout)
            }
        }
    }

    fn refuse(
        &mut self,
        inner: &mut Stream,
        cx: &mut Context<'_>,
        refusal: Refusal,
    ) -> Poll<io::Result<()>> {
        self.node
            .metrics
            .client_refused
            .with_label_values(&[refusal.label()])
            .inc();
        let region = self.node.snapshot().region().to_string();
        self.phase = Phase::Refusing(Box::new(Refusing {
            refusal,
            response: refusal.response(&self.limits, &region),
            written: 0,
            shut: false,
            drained: 0,
        }));
        self.timer.as_mut().reset(Instant::now() + LINGER);
        self.poll_refusing(inner, cx)
    }

    /// Writes the answer, shuts the sending side, reads what the client still sends for a
    /// moment, then fails the read so that Pingora drops the connection.
    fn poll_refusing(&mut self, inner: &mut Stream, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let Phase::Refusing(r) = &mut self.phase else {
            return Poll::Ready(Err(io::Error::other("not refusing")));
        };
        let done = |r: &Refusing| {
            Poll::Ready(Err(io::Error::other(format!(
                "request head refused: answered {} ({})",
                r.refusal.status(),
                r.refusal.label()
            ))))
        };
        loop {
            let step = if r.written < r.response.len() {
                match Pin::new(&mut *inner).poll_write(cx, &r.response[r.written..]) {
                    Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => return done(r),
                    Poll::Ready(Ok(n)) => {
                        r.written += n;
                        Poll::Ready(())
                    }
                    Poll::Pending => Poll::Pending,
                }
            } else if !r.shut {
                match Pin::new(&mut *inner).poll_shutdown(cx) {
                    Poll::Ready(_) => {
                        r.shut = true;
                        Poll::Ready(())
                    }
                    Poll::Pending => Poll::Pending,
                }
            } else {
                let mut sink = [0u8; 4096];
                let mut sink = ReadBuf::new(&mut sink);
                match Pin::new(&mut *inner).poll_read(cx, &mut sink) {
                    Poll::Ready(Ok(())) if !sink.filled().is_empty() => {
                        r.drained += sink.filled().len();
                        if r.drained > LINGER_BYTES {
                            return done(r);
                        }
                        Poll::Ready(())
                    }
                    Poll::Ready(_) => return done(r),
                    Poll::Pending => Poll::Pending,
                }
            };
            if step.is_pending() {
                if self.timer.as_mut().poll(cx).is_ready() {
                    return done(r);
                }
                return Poll::Pending;
            }
        }
    }
}

impl AsyncRead for LimitedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let Some(guard) = this.guard.as_deref_mut() else {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        };
        if matches!(guard.phase, Phase::Idle | Phase::Head) && this.parsed.load(Ordering::Acquire) {
            guard.phase = Phase::Body;
        }
        match guard.phase {
            Phase::Body => {
                let before = buf.filled().len();
                let read = Pin::new(&mut this.inner).poll_read(cx, buf);
                let waiting = read.is_pending();
                if waiting || buf.filled().len() > before {
                    this.waiting_on_client.store(waiting, Ordering::Relaxed);
                }
                read
            }
            Phase::Idle | Phase::Head => {
                let replay = this
                    .replay
                    .get_mut()
                    .map_err(|_| io::Error::other("poisoned"))?;
                guard.poll_head(&mut this.inner, cx, buf, replay)
            }
            Phase::Refusing(_) => guard.poll_refusing(&mut this.inner, cx),
        }
    }
}

impl AsyncWrite for LimitedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[async_trait]
impl Shutdown for LimitedStream {
    async fn shutdown(&mut self) {
        let refused = self
            .guard
            .as_ref()
            .is_some_and(|g| matches!(&g.phase, Phase::Refusing(r) if r.shut));
        if !refused {
            self.inner.shutdown().await;
        }
    }
}

impl UniqueID for LimitedStream {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
    }
}

impl Ssl for LimitedStream {
    fn get_ssl(&self) -> Option<&TlsRef> {
        self.inner.get_ssl()
    }

    fn get_ssl_digest(&self) -> Option<Arc<SslDigest>> {
        self.inner.get_ssl_digest()
    }

    fn selected_alpn_proto(&self) -> Option<ALPN> {
        self.inner.selected_alpn_proto()
    }
}

impl GetTimingDigest for LimitedStream {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.inner.get_timing_digest()
    }

    fn get_read_pending_time(&self) -> Duration {
        self.inner.get_read_pending_time()
    }

    fn get_write_pending_time(&self) -> Duration {
        self.inner.get_write_pending_time()
    }
}

impl GetProxyDigest for LimitedStream {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        self.inner.get_proxy_digest()
    }

    fn set_proxy_digest(&mut self, digest: ProxyDigest) {
        self.inner.set_proxy_digest(digest);
    }
}

impl GetSocketDigest for LimitedStream {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.inner.get_socket_digest()
    }

    fn set_socket_digest(&mut self, digest: SocketDigest) {
        self.inner.set_socket_digest(digest);
    }
}

#[async_trait]
impl Peek for LimitedStream {
    async fn try_peek(&mut self, buf: &mut [u8]) -> io::Result<bool> {
        self.inner.try_peek(buf).await
    }
}

/// The connection's wrapper, when the session is HTTP/1 over one.
fn limited(session: &ServerSession) -> Option<&LimitedStream> {
    session
        .stream()
        .and_then(|s| (**s).as_any().downcast_ref::<LimitedStream>())
}

/// Whether a request head read from this session can be handed to Pingora's proxy to read
/// again ([`replay`]): HTTP/1 under the limits, no head handed on before.
pub fn replayable(session: &ServerSession) -> bool {
    limited(session)
        .is_some_and(|s| s.guard.is_some() && s.replay.lock().is_ok_and(|r| !r.handed_on))
}

/// Sets the session up for Pingora's proxy to read the head just read once more: the bytes
/// it was parsed from (and those read with it) become the session's pipelined prefix, which
/// Pingora parses before reading on. Later requests of the connection are left to Pingora's
/// proxy unread ([`replayable`] is then `false`). `false` when the session is not
/// [`replayable`].
pub fn replay(session: &mut ServerSession) -> bool {
    let Some(bytes) = limited(session).and_then(|s| {
        let mut r = s.replay.lock().ok()?;
        (s.guard.is_some() && !r.handed_on).then(|| {
            r.handed_on = true;
            r.seen.split()
        })
    }) else {
        return false;
    };
    session.set_pipelined_prefix(bytes);
    true
}

/// The connection `stream` after a request that left `pipelined` bytes of the next one:
/// those bytes come first in what [`replay`] hands on. `None` only if the stream was lost.
pub fn carry(stream: Stream, pipelined: &BytesMut) -> Option<Stream> {
    if !(*stream).as_any().is::<LimitedStream>() {
        // Not under the limits: nothing is replayed on it.
        return Some(stream);
    }
    let mut limited = stream.into_any().downcast::<LimitedStream>().ok()?;
    if let Ok(r) = limited.replay.get_mut() {
        r.carried = Some(pipelined.clone());
    }
    Some(limited)
}

/// Tells the connection that Pingora has parsed the request head: what follows is the body,
/// outside the head's deadline and size limit. `request_filter` calls it first thing.
pub fn head_received(session: &ServerSession) {
    if let Some(s) = limited(session) {
        s.parsed.store(true, Ordering::Release);
    }
}

/// The 413 body when the request's `Content-Length` is over `max_body_bytes`.
pub fn declared_body_too_large(req: &RequestHeader, limits: &LimitsConfig) -> Option<String> {
    let max = limits.max_body_bytes?;
    let declared: u64 = req
        .headers
        .get(http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    (declared > max).then(|| answers::body_too_large(declared, max))
}

/// Fails (413) once the body read so far is over `max_body_bytes`: for bodies without a
/// `Content-Length` (chunked, HTTP/2), checked as they stream.
pub fn check_body_read(
    session: &ServerSession,
    limits: &LimitsConfig,
) -> pingora_error::Result<()> {
    match limits.max_body_bytes {
        Some(max) if session.body_bytes_read() as u64 > max => Error::e_explain(
            ErrorType::HTTPStatus(413),
            format!("the request body is over node.limits.max_body_bytes ({max})"),
        ),
        _ => Ok(()),
    }
}

/// The error to answer instead of `e` when the request failed because the client stopped
/// sending its body: a 408 that is the client's, never counted against the origin nor
/// retried. The origin's response timer only runs out before the body is complete when the
/// client stalled (Pingora restarts it with every body chunk sent on), or when the origin
/// stopped reading the body, which shows as the client's reads not waiting.
pub fn client_stalled(session: &mut ServerSession, e: &Error) -> Option<Box<Error>> {
    let stalled = match (e.esource(), e.etype()) {
        (ErrorSource::Downstream, ErrorType::ReadTimedout) => true,
        (ErrorSource::Upstream, ErrorType::ReadTimedout) => {
            !session.is_body_done()
                && limited(session).is_none_or(|s| s.waiting_on_client.load(Ordering::Relaxed))
        }
        _ => false,
    };
    stalled.then(|| {
        let mut e = Error::explain(
            ErrorType::HTTPStatus(408),
            "the client stopped sending its request body",
        );
        e.as_down();
        e
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_head_is_within_the_limits() {
        let mut m = HeadMeter::default();
        assert_eq!(m.feed(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"), None);
        assert_eq!(m.received(), 27);
        assert_eq!(m.allowance(32), 5);
        assert_eq!(m.exhausted(), Refusal::HeadTooLarge);
    }

    #[test]
    fn a_request_line_of_the_limit_passes_and_one_more_byte_is_414() {
        for (len, verdict) in [
            (MAX_REQUEST_LINE, None),
            (MAX_REQUEST_LINE + 1, Some(Refusal::LineTooLong)),
        ] {
            let line = format!("GET /{} HTTP/1.1", "a".repeat(len - 14));
            assert_eq!(line.len(), len);
            let mut m = HeadMeter::default();
            // Fed in pieces, the CR and LF apart.
            let mut got = None;
            for piece in [line.as_bytes(), b"\r", b"\nHost: a\r\n\r\n"] {
                got = got.or(m.feed(piece));
            }
            assert_eq!(got, verdict, "line of {len} bytes");
        }
    }

    #[test]
    fn an_unfinished_long_line_is_414_before_its_end() {
        let mut m = HeadMeter::default();
        assert_eq!(m.feed(&[b'a'; MAX_REQUEST_LINE + 1]), None);
        assert_eq!(m.exhausted(), Refusal::LineTooLong);
        assert_eq!(m.feed(b"a"), Some(Refusal::LineTooLong));
    }

    #[test]
    fn empty_lines_before_the_request_line_are_not_part_of_it() {
        let mut m = HeadMeter::default();
        assert_eq!(m.feed(b"\r\n\r\n"), None);
        let line = format!("GET /{} HTTP/1.1\r\n", "a".repeat(MAX_REQUEST_LINE - 14));
        assert_eq!(m.feed(line.as_bytes()), None);
    }

    #[test]
    fn a_large_head_is_not_held_while_the_connection_idles() {
        let mut r = Replay::default();
        r.record(&[b'a'; 32 * 1024]);
        r.idle();
        assert!(r.seen.is_empty());
        assert!(
            r.seen.capacity() <= KEPT_HEAD_CAPACITY,
            "an idle connection holds {} bytes for its last head",
            r.seen.capacity()
        );
        // A common head's buffer is kept for the next one.
        r.record(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
        let kept = r.seen.capacity();
        r.idle();
        assert_eq!(r.seen.capacity(), kept);
    }

    #[test]
    fn pipelined_bytes_start_the_next_head_and_nothing_is_kept_once_handed_on() {
        let mut r = Replay::default();
        r.record(b"GET /a HTTP/1.1\r\n\r\nPOST /b");
        r.carried = Some(BytesMut::from(&b"POST /b"[..]));
        r.idle();
        r.record(b" HTTP/1.1\r\n\r\n");
        assert_eq!(&r.seen[..], b"POST /b HTTP/1.1\r\n\r\n");
        r.handed_on = true;
        r.idle();
        r.record(b"GET /c HTTP/1.1\r\n\r\n");
        assert!(r.seen.is_empty(), "a head copied for nothing");
        assert_eq!(r.seen.capacity(), 0);
    }

    #[test]
    fn answers_close_the_connection_and_say_why() {
        let limits = LimitsConfig::default();
        for (refusal, start) in [
            (Refusal::HeadTimeout, "HTTP/1.1 408 Request Timeout\r\n"),
            (Refusal::LineTooLong, "HTTP/1.1 414 URI Too Long\r\n"),
            (
                Refusal::HeadTooLarge,
                "HTTP/1.1 431 Request Header Fields Too Large\r\n",
            ),
        ] {
            let text = String::from_utf8(refusal.response(&limits, "local")).unwrap();
            assert!(text.starts_with(start), "{text}");
            assert!(text.contains("\r\nConnection: close\r\n"), "{text}");
            let (head, body) = text.split_once("\r\n\r\n").unwrap();
            assert!(
                head.contains(&format!("Content-Length: {}", body.len())),
                "{text}"
            );
        }
    }
}
