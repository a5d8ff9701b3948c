//! What the pool's and the route's options add to an origin's response on its way to the
//! client (in Pingora's proxy loop and on the hedged path alike): the session-affinity cookie
//! naming the origin that answered, and compression.

use crate::metrics::Metrics;
use crate::request::ctx::RequestCtx;
use bytes::Bytes;
use pingora_error::Result;
use pingora_http::ResponseHeader;
use portico_core::affinity::cookie_to_set;

/// Readies the head of an origin's response (`end`: it has no body) after Portico's own
/// headers: the affinity cookie when the pool has affinity and the client is not pinned to
/// the origin that answered already, then compression when the route has it.
pub(crate) fn origin_head(
    ctx: &mut RequestCtx,
    resp: &mut ResponseHeader,
    metrics: &Metrics,
    head_request: bool,
    tls: bool,
    end: bool,
) -> Result<()> {
    if let (Some(pool), Some(origin)) = (ctx.pool(), ctx.answered_by())
        && let Some(affinity) = &pool.config.load_balancing.session_affinity
        && resp.status.as_u16() >= 200
    {
        let origins = &pool.config.origins;
        let pinned = ctx
            .lifecycle
            .as_ref()
            .and_then(|lc| lc.pinned())
            .and_then(|i| origins.get(i))
            .map(|o| o.name.as_str());
        if let Some(cookie) = cookie_to_set(affinity, &origins[origin].name, pinned, tls) {
            resp.append_header(http::header::SET_COOKIE, cookie)?;
        }
    }
    if let (Some(compressor), Some(route)) = (ctx.compression.as_mut(), ctx.route) {
        let route = &ctx.snapshot.config.routes[route];
        if let Some(config) = &route.compression
            && let Some(coding) = compressor.head(config, resp, head_request, end)
        {
            metrics
                .compression
                .with_label_values(&[route.name.as_str(), coding])
                .inc();
        }
    }
    Ok(())
}

/// Passes a piece of an origin's response body through the request's compressor, if any.
pub(crate) fn origin_body(ctx: &mut RequestCtx, body: &mut Option<Bytes>, end: bool) {
    if let Some(c) = ctx.compression.as_mut() {
        c.body(body, end);
    }
}
