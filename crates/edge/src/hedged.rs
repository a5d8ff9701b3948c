//! Portico's own attempt loop for bodiless requests (GET, HEAD, OPTIONS), hedged or not:
//! attempts through Portico's own HTTP/1 client for plain HTTP/1 origins ([`upstream`]) and
//! through Pingora's connector for the others (TLS, HTTP/2), driven by the core's lifecycle — retries after
//! failures and, when the pool hedges, up to two attempts racing for one client request.
//! The first response head wins and is streamed to the client; the other attempt is
//! dropped mid-flight, so its connection never returns to the pool.

use crate::classify::{connect_reason, proxy_reason, status_for_reason};
use crate::live_pool::LivePool;
use crate::live_pool::OriginPeer;
use crate::metrics::Metrics;
use crate::request::answers::{error_body, respond};
use crate::request::ctx::{RequestCtx, over_tls};
use crate::request::outbound::{request_to_origin, write_direct};
use crate::response_options;
use crate::upstream::{self, Exchange, Failure};
use bytes::Bytes;
use pingora_core::connectors::http::Connector;
use pingora_core::protocols::http::client::HttpSession;
use pingora_core::upstreams::peer::{HttpPeer, Peer};
use pingora_error::{Error, Result};
use pingora_proxy::Session;
use portico_core::lifecycle::Next;
use portico_core::retry::RetryReason;
use std::future::Future;
use std::pin::Pin;
use std::time::Instant;

/// An attempt in flight: connect, send the head, wait for the response head.
type Flight<'a> = Pin<Box<dyn Future<Output = Result<Upstream, Failure>> + Send + 'a>>;

/// An attempt that received its response head: through Portico's own HTTP/1 client or
/// through Pingora's session.
enum Upstream {
    /// Portico's own client (plain HTTP/1 origins).
    Own(Box<Exchange>),
    /// Pingora's session (TLS and HTTP/2 origins).
    Pingora(Box<HttpSession>),
}

impl Upstream {
    fn status(&self) -> u16 {
        match self {
            Upstream::Own(x) => x.status(),
            Upstream::Pingora(s) => s.response_header().map_or(502, |h| h.status.as_u16()),
        }
    }

    /// The response head: moved out of Portico's client, copied from Pingora's session.
    fn take_head(&mut self) -> Option<pingora_http::ResponseHeader> {
        match self {
            Upstream::Own(x) => x.take_head(),
            Upstream::Pingora(s) => s.response_header().cloned(),
        }
    }

    fn done(&mut self) -> bool {
        match self {
            Upstream::Own(x) => x.done(),
            Upstream::Pingora(s) => s.response_done(),
        }
    }

    async fn read_body(&mut self) -> Result<Option<Bytes>> {
        match self {
            Upstream::Own(x) => x.read_body().await,
            Upstream::Pingora(s) => s.read_response_body().await,
        }
    }
}

/// One running attempt.
struct Slot<'a> {
    attempt: usize,
    flight: Flight<'a>,
}

async fn run(slot: &mut Option<Slot<'_>>) -> (usize, Result<Upstream, Failure>) {
    match slot {
        Some(s) => (s.attempt, (&mut s.flight).await),
        None => std::future::pending().await,
    }
}

/// The request of one attempt.
enum Outgoing {
    /// Built, for Pingora's connector, or for Portico's client when it could not be
    /// written directly (boxed as Pingora's session takes it).
    Built(Box<pingora_http::RequestHeader>),
    /// Its HTTP/1.1 head, written directly ([`write_direct`]) for Portico's own client.
    Written {
        /// Where Portico's client reaches the origin ([`upstream::serves`]).
        addr: std::net::SocketAddr,
        /// The head (a buffer of [`upstream::head_buffer`]).
        bytes: Vec<u8>,
        /// Whether the method is HEAD.
        head_request: bool,
    },
}

/// The request of an attempt at `o`: its head written straight to bytes when Portico's own
/// client serves the origin and the request takes the direct path ([`write_direct`]), else
/// built with [`request_to_origin`] (as HTTP/1.1).
fn outgoing(ctx: &RequestCtx, session: &Session, o: &OriginPeer) -> Result<Outgoing> {
    let side = ctx.client_side(session);
    if let Some(addr) = upstream::serves(&o.peer) {
        let mut bytes = upstream::head_buffer();
        if write_direct(&side, o, &mut bytes)? {
            let head_request = side.original.method == http::Method::HEAD;
            return Ok(Outgoing::Written {
                addr,
                bytes,
                head_request,
            });
        }
        upstream::give_back(bytes);
    }
    let mut req = request_to_origin(&side, session.req_header(), o)?;
    req.set_version(http::Version::HTTP_11);
    Ok(Outgoing::Built(Box::new(req)))
}

/// Sends the request to `peer` and waits for its response head (skipping 1xx heads):
/// through Portico's own client when it serves the peer, else through Pingora's connector.
async fn attempt_flight(
    connector: &Connector,
    peer: &HttpPeer,
    req: Outgoing,
) -> Result<Upstream, Failure> {
    let req = match req {
        Outgoing::Written {
            addr,
            bytes,
            head_request,
        } => {
            let head = upstream::Head::Written {
                bytes: &bytes,
                head_request,
            };
            let sent = upstream::send(peer, addr, head).await;
            upstream::give_back(bytes);
            return sent.map(|x| Upstream::Own(Box::new(x)));
        }
        Outgoing::Built(req) => req,
    };
    if let Some(addr) = upstream::serves(peer) {
        return upstream::send(peer, addr, upstream::Head::Built(&req))
            .await
            .map(|x| Upstream::Own(Box::new(x)));
    }
    let (mut up, reused) = connector
        .get_http_session(peer)
        .await
        .map_err(Failure::connecting)?;
    let fail = |error: Box<Error>| Failure::exchanging(error, reused);
    up.set_read_timeout(peer.options.read_timeout);
    up.set_write_timeout(peer.options.write_timeout);
    up.write_request_header(req).await.map_err(fail)?;
    up.finish_request_body().await.map_err(fail)?;
    loop {
        up.read_response_header().await.map_err(fail)?;
        match up.response_header() {
            Some(h) if h.status.is_informational() && h.status.as_u16() != 101 => continue,
            _ => break,
        }
    }
    Ok(Upstream::Pingora(Box::new(up)))
}

/// Where the edge's shared parts are: the connector of hedged attempts, the metrics, and
/// whether the node is draining.
pub struct Shell<'a> {
    /// Connections of bodiless requests (Pingora's connector).
    pub connector: &'a Connector,
    /// The node's metrics.
    pub metrics: &'a Metrics,
    /// Whether the node drains (responses close their connection).
    pub draining: bool,
}

/// Serves a request without a body (GET, HEAD or OPTIONS) with the lifecycle: the first
/// attempt, a hedge when the pool hedges and one is due, retries after failures, then the
/// winner's response streamed to the client or an error page.
pub async fn serve(
    shell: Shell<'_>,
    session: &mut Session,
    ctx: &mut RequestCtx,
    pool: &LivePool,
) -> Result<()> {
    let Some(mut lc) = ctx.lifecycle.take() else {
        return Ok(());
    };
    let mut slots: [Option<Slot<'_>>; 2] = [None, None];
    let mut next = lc.start(&mut pool.state(), Instant::now());
    let mut last_reason: Option<RetryReason> = None;
    loop {
        match next {
            Next::Send {
                attempt, origin, ..
            } => {
                let o = &pool.origins[origin];
                let req = outgoing(ctx, session, o)?;
                if let Some(t) = &mut ctx.trace {
                    t.attempt(&o.name);
                }
                let flight: Flight<'_> = Box::pin(attempt_flight(shell.connector, &o.peer, req));
                let free = if slots[0].is_none() { 0 } else { 1 };
                slots[free] = Some(Slot { attempt, flight });
            }
            // `start`, a timer and a failure never deliver.
            Next::Deliver { .. } => {}
            Next::GiveUp { reason, .. } => {
                ctx.lifecycle = Some(lc);
                return give_up(&shell, session, ctx, pool, reason.or(last_reason)).await;
            }
            Next::Wait => {}
        }
        let due = lc.hedge_due(&pool.state(), Instant::now());
        if slots.iter().all(Option::is_none) && due.is_none() {
            // Nothing in flight and nothing due (the lifecycle never leaves it so): answer
            // rather than wait forever.
            ctx.lifecycle = Some(lc);
            return give_up(&shell, session, ctx, pool, last_reason).await;
        }
        let [s0, s1] = &mut slots;
        let (attempt, result) = tokio::select! {
            r = run(s0) => { *s0 = None; r }
            r = run(s1) => { *s1 = None; r }
            _ = sleep_until(due), if due.is_some() => {
                next = lc.on_hedge_timer(&mut pool.state(), Instant::now());
                continue;
            }
        };
        let now = Instant::now();
        ctx.attempt = attempt;
        let (decision, answer) = match result {
            Ok(up) => {
                let status = up.status();
                let decision = lc.on_head(&mut pool.state(), attempt, status, true, now);
                (decision, Some((up, status)))
            }
            Err(f) => {
                // Errors of the client session carry no side yet: they are the origin's.
                let error = f.error.into_up();
                let reason = if f.connecting {
                    connect_reason(error.etype())
                } else {
                    proxy_reason(&error).unwrap_or(RetryReason::ConnectionDropped)
                };
                log::debug!("hedged attempt {attempt} failed: {error}");
                let decision =
                    lc.on_failure(&mut pool.state(), attempt, reason, true, f.reused, now);
                (decision, None)
            }
        };
        if let Some(failed) = decision.effects.failed {
            last_reason = Some(failed.reason);
        }
        next = ctx.step(shell.metrics, pool, decision);
        if let (Next::Deliver { cancel, .. }, Some((up, status))) = (next, answer) {
            if let Some(c) = cancel {
                // Dropping the other flight closes its connection.
                for s in &mut slots {
                    if s.as_ref().is_some_and(|s| s.attempt == c) {
                        *s = None;
                    }
                }
                if let Some(t) = &mut ctx.trace {
                    t.outcome_at(c, "cancelled (the other attempt answered first)");
                }
            }
            if let Some(t) = &mut ctx.trace {
                t.outcome_at(attempt, status.to_string());
                t.answered();
            }
            let peer = &pool.origins[lc.attempts()[attempt].origin].peer;
            ctx.answered = true;
            ctx.lifecycle = Some(lc);
            drop(slots);
            return deliver(&shell, session, ctx, up, peer).await;
        }
    }
}

async fn sleep_until(due: Option<Instant>) {
    match due {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}

/// Streams the winning attempt's response to the client, then returns its connection to
/// the pool when the origin finished it cleanly.
async fn deliver(
    shell: &Shell<'_>,
    session: &mut Session,
    ctx: &mut RequestCtx,
    mut up: Upstream,
    peer: &HttpPeer,
) -> Result<()> {
    let Some(mut resp) = up.take_head() else {
        return Ok(());
    };
    // An HTTP/2 origin's head goes out as HTTP/1.1 to an HTTP/1.1 client (Pingora cannot
    // write "HTTP/2" on an HTTP/1 connection; an HTTP/2 client's connection ignores it), as
    // Pingora's own proxy loop downgrades it.
    if resp.version == http::Version::HTTP_2 {
        resp.set_version(http::Version::HTTP_11);
    }
    let status = resp.status.as_u16();
    let head_only = session.req_header().method == http::Method::HEAD;
    let no_body = head_only || matches!(status, 204 | 304);
    let done = up.done();
    if !no_body
        && !done
        && resp.headers.get(http::header::TRANSFER_ENCODING).is_none()
        && resp.headers.get(http::header::CONTENT_LENGTH).is_none()
    {
        // An HTTP/1.0-style body that ends at close, re-framed so the client's connection
        // can stay open (as Pingora's proxy loop does).
        resp.set_version(http::Version::HTTP_11);
        resp.insert_header(http::header::TRANSFER_ENCODING, "chunked")?;
    }
    ctx.prepare_response(&mut resp, session, shell.draining)?;
    ctx.status = status;
    let tls = over_tls(session);
    response_options::origin_head(
        ctx,
        &mut resp,
        shell.metrics,
        head_only,
        tls,
        no_body || done,
    )?;
    session
        .write_response_header(Box::new(resp), no_body || done)
        .await?;
    if !no_body && !done {
        loop {
            match up.read_body().await {
                Ok(Some(chunk)) => {
                    let mut piece = Some(chunk);
                    response_options::origin_body(ctx, &mut piece, false);
                    // A compressor may hold a piece back; an empty write would end a
                    // chunked body.
                    if let Some(piece) = piece.filter(|p| !p.is_empty()) {
                        session.write_response_body(Some(piece), false).await?;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    session.set_keepalive(None);
                    return Err(e.into_up());
                }
            }
            if up.done() {
                break;
            }
        }
        let mut last = None;
        response_options::origin_body(ctx, &mut last, true);
        session.write_response_body(last, true).await?;
    }
    match up {
        Upstream::Own(x) => x.finish(),
        Upstream::Pingora(mut s) => {
            if s.response_done() {
                shell
                    .connector
                    .release_http_session(*s, peer, peer.idle_timeout())
                    .await;
            }
        }
    }
    Ok(())
}

/// Every attempt failed: an error page with the status of the last failure.
async fn give_up(
    shell: &Shell<'_>,
    session: &mut Session,
    ctx: &mut RequestCtx,
    pool: &LivePool,
    reason: Option<RetryReason>,
) -> Result<()> {
    let code = status_for_reason(reason);
    ctx.status = code;
    let what = reason.map_or("no origin to try", RetryReason::label);
    let body = error_body(code, what, &pool.config.name, ctx.attempts());
    respond(session, ctx, shell.draining, code, body).await
}
