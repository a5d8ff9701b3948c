//! What a finished request leaves behind: its metric series (by route, pool, origin and
//! status), its hedge and failover counts, its access-log line and its debug log line.

use crate::access_log;
use crate::request::ctx::{RequestCtx, client_cert, over_tls};
use crate::request::inbound::request_host;
use crate::state::NodeState;
use pingora_proxy::Session;

/// Records the finished request `ctx` of `session`.
pub fn record(node: &NodeState, session: &Session, ctx: &RequestCtx) {
    // The node's own answer to a gRPC call goes out as a 200 with a `grpc-status`
    // (answers.rs): it counts as the status it stands for (a 504 stays a 504 in metrics).
    let code = match session.response_written() {
        Some(r) if !ctx.answered && r.headers.contains_key("grpc-status") => ctx.status,
        Some(r) => r.status.as_u16(),
        None => ctx.status,
    };
    let (route, pool, origin) = ctx.labels();
    // One clock read serves the duration metric, the rollout counters and the access log.
    let elapsed = ctx.start.elapsed();
    let metrics = &node.metrics;
    let series = &ctx.snapshot.series;
    let answered_by = ctx
        .answered_by()
        .filter(|_| ctx.answered && ctx.route.is_some());
    // The series cache is by route and origin index: a rule's pool has series of its own.
    if ctx.pool_overridden() {
        let code = code.to_string();
        metrics
            .requests
            .with_label_values(&[route, pool, origin, code.as_str()])
            .inc();
    } else {
        metrics.count_request(series, ctx.route, answered_by, code, [route, pool, origin]);
    }
    if let Some(route_idx) = ctx.route {
        // A WebSocket (101) lasts as long as its tunnel: not a request duration.
        if code != 101 && ctx.pool_overridden() {
            metrics
                .duration
                .with_label_values(&[route, pool])
                .observe(elapsed.as_secs_f64());
        } else if code != 101 {
            metrics.observe_duration(series, route_idx, [route, pool], elapsed.as_secs_f64());
        }
        if let Some(h) = ctx.lifecycle.as_ref().and_then(|l| l.hedge_result()) {
            metrics.hedges.with_label_values(&[pool, h.label()]).inc();
        }
        if ctx.answered && ctx.attempts() > 1 {
            metrics
                .failover_served
                .with_label_values(&[route, pool])
                .inc();
        }
    }
    if let Some(counters) = node.rollout_counters.get() {
        counters.record(
            &ctx.snapshot.config.version,
            code,
            ctx.refused,
            ctx.start,
            elapsed,
        );
    }
    if node.access_log.is_on() {
        let req = session.req_header();
        let client = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip().to_string())
            .unwrap_or_default();
        node.access_log.write(&access_log::Entry {
            ts: crate::state::rfc3339(std::time::SystemTime::now() - elapsed),
            request_id: ctx.request_id.to_str().unwrap_or(""),
            client,
            method: req.method.as_str(),
            host: request_host(req).unwrap_or(""),
            path: req.uri.path(),
            protocol: access_log::protocol(req.version),
            tls: over_tls(session),
            client_cert: client_cert(session).map(|c| c.subject.as_str()),
            status: code,
            route,
            pool,
            origin,
            attempts: ctx.attempts(),
            duration_ms: (elapsed.as_secs_f64() * 1e6).round() / 1e3,
            bytes_in: session.body_bytes_read(),
            bytes_out: session.body_bytes_sent(),
            region: ctx.snapshot.region(),
            rules: ctx
                .rules
                .matched
                .iter()
                .map(|&id| crate::request::policy::rule_label(&ctx.snapshot, id))
                .collect(),
        });
    }
    if log::log_enabled!(log::Level::Debug) {
        let req = session.req_header();
        log::debug!(
            "{} {} {} -> {code} route={route} pool={pool} origin={origin} attempts={} id={} {:?}",
            req.method,
            request_host(req).unwrap_or("-"),
            req.uri.path(),
            ctx.attempts(),
            ctx.request_id.to_str().unwrap_or("-"),
            ctx.start.elapsed()
        );
    }
}
