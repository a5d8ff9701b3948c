//! The `ProxyHttp` hooks: a thin shell that routes a request, asks the core's request
//! lifecycle where each attempt goes and what each outcome means, and carries it out.

use crate::classify::{connect_reason, proxy_reason, status_for_error};
use crate::compression::Compressor;
use crate::hedged;
use crate::request::answers::{self, error_body, https_location, respond};
use crate::request::ctx::{RequestCtx, client_cert, client_ip, over_tls};
use crate::request::inbound::{
    from_trusted_proxy, head_refusal, host_from_target, is_websocket_upgrade, request_host,
    request_id_value, via_names, wants_trace,
};
use crate::request::outbound::request_to_origin;
use crate::request::policy;
use crate::response_options;
use crate::state::NodeState;
use async_trait::async_trait;
use http::HeaderValue;
use pingora_core::connectors::ConnectorOptions;
use pingora_core::connectors::http::Connector;
use pingora_core::modules::http::HttpModules;
use pingora_core::server::configuration::ServerConf;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_error::{Error, ErrorType, Result};
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_proxy::{FailToProxy, ProxyHttp, ProxyWarnLogContext, Session};
use portico_core::affinity::pinned_origin;
use portico_core::lifecycle::{Lifecycle, Next, RequestKind};
use portico_core::retry::RetryReason;
use portico_core::rules::Ending;
use std::sync::Arc;
use std::time::Instant;

/// The edge node's proxy logic. Its clones share the node and the connector.
#[derive(Clone)]
pub struct EdgeProxy {
    /// Shared node state.
    pub node: Arc<NodeState>,
    /// Connections of bodiless requests, hedged or not (Pingora's own connector serves the
    /// others).
    pub(crate) connector: Arc<Connector>,
}

/// Whether Portico's own attempt loop (`hedged::serve`) serves a request of `kind` with head
/// `req`: every bodiless GET, HEAD or OPTIONS that is no upgrade; ~9 % fewer instructions per
/// request than Pingora's proxy loop (docs/performance.md). Bodies and upgrades stay there.
/// `request_filter` and `EdgeApp` both decide by this.
pub(crate) fn own_loop(kind: RequestKind, req: &RequestHeader) -> bool {
    kind.hedgeable && !is_websocket_upgrade(req)
}

impl EdgeProxy {
    /// The proxy logic for `node`. Hedged attempts get a connector of their own, with the
    /// same options (keep-alive pool size, CA, …) as Pingora's connector for `conf`.
    pub fn new(node: Arc<NodeState>, conf: &ServerConf) -> Self {
        Self {
            node,
            connector: Arc::new(Connector::new(Some(ConnectorOptions::from_server_conf(
                conf,
            )))),
        }
    }

    /// Whether the node is draining (responses then close their connection).
    pub(crate) fn draining(&self) -> bool {
        self.node.is_draining()
    }

    /// Ends a request by a rule, before an origin is chosen: its `respond` or `redirect`, or a
    /// rate limit's 429 (counted).
    async fn stop_by_rule(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        route: &str,
        stop: policy::Stop,
    ) -> Result<()> {
        let draining = self.draining();
        match stop {
            policy::Stop::Ending(Ending::Respond {
                status,
                body,
                headers,
                ..
            }) => {
                ctx.status = status;
                answers::rule_respond(session, ctx, draining, status, &headers, body).await
            }
            policy::Stop::Ending(Ending::Redirect {
                status, location, ..
            }) => {
                ctx.status = status;
                answers::rule_redirect(session, ctx, draining, status, &location).await
            }
            policy::Stop::Limited {
                rule,
                retry_after,
                burst,
                window,
                rate,
            } => {
                let label = policy::rule_label(&ctx.snapshot, rule);
                self.node
                    .metrics
                    .rate_limited
                    .with_label_values(&[route, &label])
                    .inc();
                if let Some(t) = &mut ctx.trace {
                    t.rate_limited(&label);
                }
                ctx.status = 429;
                let reply = answers::TooManyRequests {
                    policy: &label,
                    retry_after,
                    burst,
                    window,
                    rate,
                };
                answers::too_many_requests(session, ctx, draining, &reply).await
            }
        }
    }

    /// Feeds a failed attempt to the lifecycle and counts what it decided; `true` when
    /// another attempt follows (planned for the next `upstream_peer`).
    fn failed(
        &self,
        session: &Session,
        ctx: &mut RequestCtx,
        reason: RetryReason,
        reused_connection: bool,
    ) -> bool {
        let replayable = !session.as_ref().retry_buffer_truncated();
        let attempt = ctx.attempt;
        let snapshot = ctx.snapshot.clone();
        let Some(pool) = ctx.pool_at.and_then(|p| snapshot.pools.get(p)) else {
            return false;
        };
        let Some(lc) = ctx.lifecycle.as_mut() else {
            return false;
        };
        let decision = lc.on_failure(
            &mut pool.state(),
            attempt,
            reason,
            replayable,
            reused_connection,
            Instant::now(),
        );
        let next = ctx.step(&self.node.metrics, pool, decision);
        matches!(next, Next::Send { .. })
    }
}

#[async_trait]
impl ProxyHttp for EdgeProxy {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx {
            snapshot: self.node.snapshot(),
            _in_flight: self.node.begin_request(),
            start: Instant::now(),
            request_id: HeaderValue::from_static(""),
            route: None,
            lifecycle: None,
            attempt: 0,
            planned: None,
            answered: false,
            trace: None,
            trusted_proxy: false,
            status: 0,
            client_cert_fits: false,
            compression: None,
            refused: false,
            rules: Default::default(),
            pool_at: None,
        }
    }

    /// No downstream modules: Pingora's default adds a response-compression module, disabled,
    /// that still costs allocations and a call per phase on every request. Portico forwards
    /// bodies as the origin encoded them.
    fn init_downstream_modules(&self, _modules: &mut HttpModules) {}

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        // First: the head is in, so the connection's head deadline and size limit end here.
        crate::limits::head_received(session.as_downstream());
        let refused = head_refusal(session.as_downstream_mut());
        host_from_target(session.req_header_mut())?;
        let has_body = !session.is_body_empty();
        let req = session.req_header();
        ctx.request_id = request_id_value(req);
        let client = client_ip(session);
        ctx.trusted_proxy = from_trusted_proxy(&ctx.snapshot.config.node.trusted_proxies, client);
        if wants_trace(req, ctx.trusted_proxy, client) {
            ctx.trace = Some(Box::default());
        }
        if let Some(why) = refused {
            ctx.status = 400;
            let body = answers::bad_request(why);
            respond(session, ctx, self.draining(), 400, body).await?;
            return Ok(true);
        }
        let limits = &ctx.snapshot.config.node.limits;
        if let Some(body) = crate::limits::declared_body_too_large(req, limits) {
            ctx.status = 413;
            respond(session, ctx, true, 413, body).await?;
            return Ok(true);
        }
        if via_names(req, &ctx.snapshot.via_token) {
            let body = answers::loop_detected(&ctx.snapshot.via_token);
            ctx.status = 508;
            respond(session, ctx, self.draining(), 508, body).await?;
            return Ok(true);
        }
        let host = request_host(req);
        let path = req.uri.path();
        if !over_tls(session) {
            if let Some(answer) = self.node.acme.challenge_answer(path) {
                // An ACME HTTP-01 validation (any route, redirect or not).
                ctx.status = 200;
                respond(session, ctx, self.draining(), 200, answer).await?;
                return Ok(true);
            }
        }
        let refuse = over_tls(session) && {
            let (fits, refuse) =
                (self.node.certs.load()).client_cert_for(host, client_cert(session));
            ctx.client_cert_fits = fits;
            refuse
        };
        if refuse {
            // The handshake named a host without client certificates, or with other CAs;
            // this one needs a certificate from its own.
            ctx.status = 421;
            let body = answers::client_cert_required(host.unwrap_or(""));
            respond(session, ctx, self.draining(), 421, body).await?;
            return Ok(true);
        }
        let routed = ctx.snapshot.routes.lookup(host, path);
        if let Some(route) = routed {
            ctx.route = Some(route);
            policy::evaluate(session, ctx, route, &self.node.metrics);
        }
        match routed {
            Some(route)
                if ctx.snapshot.config.routes[route].https_redirect && !over_tls(session) =>
            {
                if host.is_none_or(str::is_empty) {
                    // HTTP/1.0 may omit Host, but a redirect needs a host to name.
                    ctx.status = 400;
                    let body = answers::redirect_needs_host();
                    respond(session, ctx, self.draining(), 400, body).await?;
                    return Ok(true);
                }
                let location = https_location(req, ctx.snapshot.config.node.tls_listen.as_deref());
                ctx.status = 308;
                answers::redirect(session, ctx, &location).await?;
                Ok(true)
            }
            Some(route) => {
                let snapshot = ctx.snapshot.clone();
                let route_config = &snapshot.config.routes[route];
                if let Some(stop) = policy::stop_before_origin(ctx, &route_config.name) {
                    self.stop_by_rule(session, ctx, &route_config.name, stop)
                        .await?;
                    return Ok(true);
                }
                let pool_at = ctx.rules.pool.unwrap_or(route_config.pool);
                let Some(pool) = snapshot.pools.get(pool_at) else {
                    return Error::e_explain(ErrorType::InternalError, "no such pool");
                };
                ctx.pool_at = Some(pool_at);
                let kind = RequestKind::new(req.method.as_str(), has_body);
                let mut lc = Lifecycle::new(
                    kind,
                    pool.config.failover.retries.max_attempts,
                    fastrand::u64(..),
                );
                lc.pin(pinned_origin(&pool.config, &req.headers));
                ctx.compression = Compressor::for_request(&snapshot.config.routes[route], req);
                // Hedged only when the pool hedges.
                let direct = own_loop(kind, req);
                pool.state().record_request(Instant::now());
                ctx.lifecycle = Some(lc);
                if let Some(t) = &mut ctx.trace {
                    t.routed(&snapshot.config.routes[route].name, pool);
                }
                if direct {
                    let shell = hedged::Shell {
                        connector: &self.connector,
                        metrics: &self.node.metrics,
                        draining: self.draining(),
                    };
                    hedged::serve(shell, session, ctx, pool).await?;
                    return Ok(true);
                }
                Ok(false)
            }
            None => {
                let body = answers::no_route(host.unwrap_or(""), path);
                ctx.status = 404;
                ctx.refused = true;
                respond(session, ctx, self.draining(), 404, body).await?;
                Ok(true)
            }
        }
    }

    /// `node.limits.max_body_bytes` for bodies that stream without a `Content-Length`: 413.
    async fn request_body_filter(
        &self,
        session: &mut Session,
        _body: &mut Option<bytes::Bytes>,
        _end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        crate::limits::check_body_read(session.as_downstream(), &ctx.snapshot.config.node.limits)
    }

    async fn upstream_peer(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        let snapshot = ctx.snapshot.clone();
        let (Some(pool), Some(lc)) = (
            ctx.pool_at.and_then(|p| snapshot.pools.get(p)),
            ctx.lifecycle.as_mut(),
        ) else {
            return Error::e_explain(ErrorType::InternalError, "no route chosen");
        };
        let (attempt, idx) = match ctx.planned.take() {
            Some(planned) => planned,
            None => match lc.start(&mut pool.state(), Instant::now()) {
                Next::Send {
                    attempt, origin, ..
                } => (attempt, origin),
                _ => {
                    return Error::e_explain(
                        ErrorType::HTTPStatus(503),
                        format!("pool {} has no enabled origin", pool.config.name),
                    );
                }
            },
        };
        ctx.attempt = attempt;
        let mut peer = Box::new(pool.origins[idx].peer.clone());
        if is_websocket_upgrade(session.req_header()) {
            // Pingora has one read timeout per side for the 101 and the tunnel after it: an
            // idle WebSocket gets an hour (HAProxy's `timeout tunnel`), not `response_ms`.
            const TUNNEL_IDLE: std::time::Duration = std::time::Duration::from_secs(3600);
            peer.options.read_timeout = Some(TUNNEL_IDLE.max(pool.config.timeouts.response));
            session.set_read_timeout(Some(TUNNEL_IDLE));
        }
        if let Some(t) = &mut ctx.trace {
            t.attempt(&pool.origins[idx].name);
        }
        Ok(peer)
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let Some(origin) = ctx
            .lifecycle
            .as_ref()
            .and_then(|lc| lc.attempts().get(ctx.attempt))
            .map(|a| a.origin)
        else {
            return Ok(());
        };
        let Some(pool) = ctx.pool() else {
            return Ok(());
        };
        *upstream = request_to_origin(&ctx.client_side(session), upstream, &pool.origins[origin])?;
        Ok(())
    }

    async fn upstream_response_filter(
        &self,
        session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let status = resp.status.as_u16();
        if status < 200 {
            return Ok(());
        }
        let snapshot = ctx.snapshot.clone();
        let (Some(pool), Some(lc)) = (
            ctx.pool_at.and_then(|p| snapshot.pools.get(p)),
            ctx.lifecycle.as_mut(),
        ) else {
            return Ok(());
        };
        let replayable = !session.as_ref().retry_buffer_truncated();
        let decision = lc.on_head(
            &mut pool.state(),
            ctx.attempt,
            status,
            replayable,
            Instant::now(),
        );
        if let Next::Send { .. } = ctx.step(&self.node.metrics, pool, decision) {
            let mut e = Error::explain(
                ErrorType::HTTPStatus(status),
                format!("origin answered {status}, retrying on another origin"),
            );
            e.set_retry(true);
            return Err(e.into_up());
        }
        if RetryReason::from_status(status).is_none()
            && let Some(t) = &mut ctx.trace
        {
            t.outcome_at(ctx.attempt, status.to_string());
        }
        ctx.answered = true;
        if let Some(t) = &mut ctx.trace {
            t.answered();
        }
        Ok(())
    }

    async fn response_filter(
        &self,
        session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        ctx.prepare_response(resp, session, self.draining())?;
        ctx.status = resp.status.as_u16();
        if ctx.answered {
            let head_request = session.req_header().method == http::Method::HEAD;
            let metrics = &self.node.metrics;
            let tls = over_tls(session);
            response_options::origin_head(ctx, resp, metrics, head_request, tls, false)?;
        }
        Ok(())
    }

    fn response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<bytes::Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<Option<std::time::Duration>> {
        response_options::origin_body(ctx, body, end_of_stream);
        Ok(None)
    }

    fn fail_to_connect(
        &self,
        session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut RequestCtx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        let reason = connect_reason(e.etype());
        let retry = self.failed(session, ctx, reason, false);
        e.set_retry(retry);
        e
    }

    fn error_while_proxy(
        &self,
        peer: &HttpPeer,
        session: &mut Session,
        e: Box<Error>,
        ctx: &mut RequestCtx,
        client_reused: bool,
    ) -> Box<Error> {
        let mut e = e.more_context(format!("Peer: {peer}"));
        if matches!(e.etype(), ErrorType::HTTPStatus(_)) && e.retry() {
            // A 502/503/504 this node already decided to retry.
            return e;
        }
        // A client that stopped sending its body: 408, never the origin's failure.
        if let Some(stalled) = crate::limits::client_stalled(session.as_downstream_mut(), &e) {
            return stalled;
        }
        let retry = match proxy_reason(&e) {
            Some(r) => self.failed(session, ctx, r, client_reused),
            None => {
                if let Some(t) = &mut ctx.trace {
                    t.outcome_at(ctx.attempt, e.etype().as_str());
                }
                false
            }
        };
        e.set_retry(retry);
        e
    }

    /// Retries are routine here and counted in `portico_retries_total`; log them at debug.
    fn suppress_proxy_warn_log(
        &self,
        session: &Session,
        _ctx: &RequestCtx,
        error: &Error,
        context: ProxyWarnLogContext,
    ) -> bool {
        if context == ProxyWarnLogContext::UpstreamRetry {
            log::debug!("retrying {}: {error}", session.req_header().uri);
            return true;
        }
        false
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut RequestCtx,
    ) -> FailToProxy {
        let code = status_for_error(e);
        ctx.status = code;
        // Pingora closes the client's connection after a failed proxy attempt: say so with
        // `Connection: close`, or keep-alive clients would send their next request into a reset.
        session.set_keepalive(None);
        if code > 0 {
            let pool = ctx.pool().map(|p| p.config.name.as_str()).unwrap_or("");
            let body = answers::client_error_body(code, e)
                .unwrap_or_else(|| error_body(code, e.etype().as_str(), pool, ctx.attempts()));
            let written = if session.response_written().is_some() {
                answers::end_started_response(session, code, &body).await
            } else {
                respond(session, ctx, self.draining(), code, body).await
            };
            if let Err(write_error) = written {
                log::debug!("could not send the error response: {write_error}");
            }
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, session: &mut Session, _e: Option<&Error>, ctx: &mut RequestCtx) {
        crate::request_log::record(&self.node, session, ctx);
    }
}
