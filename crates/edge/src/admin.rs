//! The admin listener: the status page at `/`, `/metrics`, `/healthz`, `/status` and
//! `GET`/`PUT /config`.

use crate::admin_reply::reply;
use crate::config_api;
use crate::state::NodeState;
use crate::store_link::StoreLink;
use async_trait::async_trait;
use http::{Response, StatusCode};
use pingora_core::apps::http_app::ServeHttp;
use pingora_core::protocols::http::ServerSession;
use portico_core::health::ProbeResult;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Instant;

/// Serves the admin endpoints of one node.
pub struct AdminApp {
    /// Shared node state.
    pub node: Arc<NodeState>,
    /// The store `PUT /config` writes to, when the node follows one.
    pub store: Option<Arc<StoreLink>>,
}

fn ms(d: std::time::Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

/// The `/status` document (`rollout` from `store`, the node's link when it follows one).
pub fn status_json(node: &NodeState, store: Option<&StoreLink>) -> Value {
    let now = Instant::now();
    let snapshot = node.snapshot();
    let pools: Vec<Value> = snapshot
        .pools
        .iter()
        .map(|core| {
            let mut brain = core.state();
            brain.refresh_at(now);
            let band = brain.band(0);
            let origins: Vec<Value> = core
                .config
                .origins
                .iter()
                .enumerate()
                .map(|(i, o)| {
                    let s = brain.origin(i);
                    let last = s.and_then(|s| s.last_probe);
                    json!({
                        "name": o.name,
                        "address": o.address,
                        "resolved": core.origins[i].addr.to_string(),
                        "priority": o.priority,
                        "weight": o.weight,
                        "enabled": o.enabled,
                        "region": o.region,
                        // A disabled origin is neither probed nor selected: never reported healthy.
                        "healthy": o.enabled && s.is_some_and(|s| s.healthy),
                        "awaiting_first_probe": s.is_some_and(|s| s.awaiting_first_success),
                        "ejected": s.is_some_and(|s| s.ejected),
                        "preferred": band & (1 << i) != 0,
                        "latency_ms": s.and_then(|s| s.latency).map(ms),
                        "live_latency_ms": s.and_then(|s| s.live_latency).map(ms),
                        "selection_latency_ms": s.and_then(|s| s.selection_latency).map(ms),
                        "share": s.map(|s| f64::from(s.share) / 1000.0),
                        "last_probe": last.map(|(_, r)| if r.is_success() { "success" } else { "failure" }),
                        "last_probe_rtt_ms": last.and_then(|(_, r)| match r {
                            ProbeResult::Success(rtt) => Some(ms(rtt)),
                            ProbeResult::Failure => None,
                        }),
                        "last_probe_age_ms": last.map(|(at, _)| now.saturating_duration_since(at).as_millis() as u64),
                        "last_probe_error": core.origins[i].probe_error(),
                        "tls": o.tls,
                        "window": s.map(|s| json!({"failures": s.window.0, "samples": s.window.1})),
                    })
                })
                .collect();
            json!({
                "name": core.config.name,
                "ejected": brain.ejected_count(),
                "hedging": core.config.failover.hedging.enabled,
                "hedge_delay_ms": ms(brain.hedger().delay(now)),
                "head_latency_p50_ms": brain.hedger().quantile(now, 0.5).map(ms),
                "head_latency_p95_ms": brain.hedger().quantile(now, 0.95).map(ms),
                "origins": origins,
            })
        })
        .collect();
    let routes: Vec<Value> = snapshot
        .config
        .routes
        .iter()
        .map(|r| {
            json!({
                "name": r.name,
                "hosts": r.hosts.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "paths": r.paths.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "pool": snapshot.config.pools[r.pool].name,
            })
        })
        .collect();
    json!({
        "region": snapshot.region(),
        "config_version": snapshot.config.version,
        "config_source": node.source.describe(),
        "started_from_cache": node.started_from_cache.load(std::sync::atomic::Ordering::Relaxed),
        "last_reload": node.last_reload(),
        "rollout": store.map_or(Value::Null, |link| link.rollout_json(&snapshot.config.version)),
        "version": env!("CARGO_PKG_VERSION"),
        "draining": node.is_draining(),
        "uptime_s": node.started.elapsed().as_secs(),
        "pools": pools,
        "routes": routes,
        "certificates": crate::acme::status(node),
    })
}

#[async_trait]
impl ServeHttp for AdminApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let req = session.req_header();
        if req.uri.path() == "/config" {
            return config_api::serve(&self.node, self.store.as_deref(), session).await;
        }
        if req.method != http::Method::GET && req.method != http::Method::HEAD {
            return reply(
                StatusCode::METHOD_NOT_ALLOWED,
                "text/plain",
                b"only GET and HEAD\n".to_vec(),
            );
        }
        match req.uri.path() {
            "/" => reply(
                StatusCode::OK,
                "text/html; charset=utf-8",
                include_str!("status_page.html").as_bytes().to_vec(),
            ),
            "/metrics" => reply(
                StatusCode::OK,
                "text/plain; version=0.0.4; charset=utf-8",
                self.node.metrics.encode(),
            ),
            "/healthz" if self.node.is_draining() => reply(
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain",
                b"draining\n".to_vec(),
            ),
            "/healthz" => reply(StatusCode::OK, "text/plain", b"ok\n".to_vec()),
            "/status" => {
                let mut body =
                    serde_json::to_vec_pretty(&status_json(&self.node, self.store.as_deref()))
                        .unwrap_or_default();
                body.push(b'\n');
                reply(StatusCode::OK, "application/json", body)
            }
            _ => reply(
                StatusCode::NOT_FOUND,
                "text/plain",
                b"not found: try /, /metrics, /healthz, /status or /config\n".to_vec(),
            ),
        }
    }
}
