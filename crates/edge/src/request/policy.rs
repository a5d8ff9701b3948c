//! Rule sets in the request path. A routed request's rule sets are evaluated once, right after
//! routing; the [`Actions`] stay in the request's context for its every hook: what ends the
//! request before an origin is chosen (`respond`, `redirect`, a rate limit), the pool, and the
//! edits of each attempt's request and of every response (in [`super::rule_edits`], below
//! the context that carries them).

use crate::metrics::Metrics;
use crate::rate_limits::now_nanos;
use crate::request::ctx::{RequestCtx, client_ip, over_tls};
use crate::request::inbound::request_host;
use crate::snapshot::Snapshot;
use pingora_proxy::Session;
use portico_core::rate_limit::{Key, Verdict};
use portico_core::rules::{
    Ending, RateKey, RequestFacts, RuleId, Scheme, client_ip as rule_client,
};

/// Evaluates the rule sets of `route` for the request of `session`, keeps the actions in
/// `ctx` and counts each matching rule (metrics, trace).
pub(crate) fn evaluate(session: &Session, ctx: &mut RequestCtx, route: usize, metrics: &Metrics) {
    let snapshot = ctx.snapshot.clone();
    let Some(route_config) = snapshot.config.routes.get(route) else {
        return;
    };
    if route_config.rule_sets.is_empty() {
        return;
    }
    let req = session.req_header();
    let rules = &snapshot.config.rule_sets.compiled;
    let facts = RequestFacts {
        method: req.method.as_str(),
        scheme: if over_tls(session) {
            Scheme::Https
        } else {
            Scheme::Http
        },
        host: request_host(req).unwrap_or(""),
        path: req.uri.path(),
        query: req.uri.query(),
        headers: &req.headers,
        client_ip: rule_client(
            client_ip(session),
            &req.headers,
            &snapshot.config.node.trusted_proxies,
        ),
        request_id: ctx.request_id.to_str().unwrap_or(""),
    };
    let actions = rules.evaluate(&route_config.rule_sets, &facts);
    for &id in &actions.matched {
        metrics.count_rule_match(&snapshot.series, route, id.index(), || {
            (route_config.name.clone(), rule_label(&snapshot, id))
        });
    }
    if let Some(t) = &mut ctx.trace {
        t.rules(
            &route_config.name,
            actions.matched.iter().map(|&id| rule_label(&snapshot, id)),
        );
    }
    ctx.rules = actions;
}

/// `set/rule`: how metrics, the trace and the access log name a rule.
pub(crate) fn rule_label(snapshot: &Snapshot, id: RuleId) -> String {
    match snapshot.config.rule_sets.compiled.rule(id) {
        Some(r) => format!("{}/{}", r.set, r.name),
        None => String::new(),
    }
}

/// What ends a request before an origin is chosen.
pub(crate) enum Stop {
    /// A rule's `respond` or `redirect`.
    Ending(Ending),
    /// A rule's rate limit is exceeded.
    Limited {
        /// The rule.
        rule: RuleId,
        /// Seconds until a request would pass.
        retry_after: u64,
        /// Requests allowed at once.
        burst: u32,
        /// The limit's window in seconds.
        window: u64,
        /// Sustained requests per second.
        rate: f64,
    },
}

/// Whether the rules end the request here: their `respond` or `redirect`, else the first of
/// their rate limits the request exceeds (each limit before it counted the request).
pub(crate) fn stop_before_origin(ctx: &RequestCtx, route_name: &str) -> Option<Stop> {
    if let Some(ending) = &ctx.rules.ending {
        return Some(Stop::Ending(ending.clone()));
    }
    if ctx.rules.rate_limits.is_empty() {
        return None;
    }
    let now = now_nanos();
    for hit in &ctx.rules.rate_limits {
        let Some(limiter) = ctx.snapshot.rate_limits.get(hit.rule) else {
            continue;
        };
        let key = match &hit.key {
            RateKey::ClientIp(ip) => Key::Ip(*ip),
            RateKey::Header(v) => Key::Bytes(v.as_bytes()),
            RateKey::Route => Key::Bytes(route_name.as_bytes()),
        };
        if let Verdict::Limited { retry_after_secs } = limiter.check(key, now) {
            return Some(Stop::Limited {
                rule: hit.rule,
                retry_after: retry_after_secs,
                burst: limiter.burst(),
                window: limiter.window_secs(),
                rate: limiter.requests_per_second(),
            });
        }
    }
    None
}
