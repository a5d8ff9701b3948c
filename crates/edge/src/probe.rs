//! Active health probes as Portico's own tasks, one per enabled origin, started and stopped
//! as reloads add and remove origins. Each probe is Pingora's `HttpHealthCheck`, timed, and
//! recorded in the pool that holds the origin in the running config.

use crate::request::outbound::probe_request;
use crate::snapshot::Snapshot;
use crate::state::NodeState;
use pingora_core::protocols::tls::CaType;
use pingora_error::{Error, ErrorType};
use pingora_load_balancing::Backend;
use pingora_load_balancing::health_check::{HealthCheck, HttpHealthCheck};
use portico_core::config::ProbeConfig;
use portico_core::health::ProbeResult;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;
use tokio::task::JoinHandle;

/// An origin's identity across reloads: pool name, origin name, address as written.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OriginKey {
    /// Pool name.
    pub pool: String,
    /// Origin name.
    pub origin: String,
    /// `HOST:PORT` as written.
    pub address: String,
}

/// Everything a probe task sends: when it changes, the task is replaced.
#[derive(Debug, Clone, PartialEq)]
struct ProbeSpec {
    addr: SocketAddr,
    probe: ProbeConfig,
    host_header: Option<String>,
    region: String,
    /// For a TLS origin: SNI, whether the certificate is checked, the pool's CA certificates.
    tls: Option<(String, bool, Option<Arc<CaType>>)>,
}

/// The probes a snapshot needs, by origin.
fn wanted(snapshot: &Snapshot) -> HashMap<OriginKey, ProbeSpec> {
    let mut out = HashMap::new();
    for pool in &snapshot.pools {
        for (o, peer) in pool.config.origins.iter().zip(&pool.origins) {
            if !o.enabled {
                continue;
            }
            out.insert(
                OriginKey {
                    pool: pool.config.name.clone(),
                    origin: o.name.clone(),
                    address: o.address.clone(),
                },
                ProbeSpec {
                    addr: peer.addr,
                    probe: pool.config.probe.clone(),
                    host_header: o.host_header.clone(),
                    region: snapshot.region().to_string(),
                    tls: o.tls.then(|| (o.sni_name(), o.tls_verify, pool.ca.clone())),
                },
            );
        }
    }
    out
}

/// Keeps one probe task per enabled origin of the running config until `stop` fires:
/// new origins are probed at once, removed ones stop being probed, changed probe settings
/// restart the origin's task (its health state stays with the pool).
pub async fn supervise(node: Arc<NodeState>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut changes = node.watch();
    let mut running: HashMap<OriginKey, (ProbeSpec, JoinHandle<()>)> = HashMap::new();
    loop {
        let want = wanted(&node.snapshot());
        running.retain(|key, (spec, task)| {
            let keep = want.get(key) == Some(spec);
            if !keep {
                task.abort();
            }
            keep
        });
        for (key, spec) in want {
            if let std::collections::hash_map::Entry::Vacant(slot) = running.entry(key) {
                let task = tokio::spawn(probe_loop(node.clone(), slot.key().clone(), spec.clone()));
                slot.insert((spec, task));
            }
        }
        tokio::select! {
            changed = changes.changed() => if changed.is_err() { break },
            _ = stop.changed() => break,
        }
    }
    for (_, (_, task)) in running {
        task.abort();
    }
}

/// Probes one origin every `interval_ms`, the first time at once.
async fn probe_loop(node: Arc<NodeState>, key: OriginKey, spec: ProbeSpec) {
    let check = match health_check(&node.snapshot(), &key, &spec) {
        Ok(c) => c,
        Err(e) => {
            log::error!(
                "pool {}: origin {}: cannot build its probe: {e}",
                key.pool,
                key.origin
            );
            return;
        }
    };
    let backend = Backend {
        addr: pingora_core::protocols::l4::socket::SocketAddr::Inet(spec.addr),
        weight: 1,
        ext: Default::default(),
    };
    let mut tick = tokio::time::interval(spec.probe.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let (result, error) = probe_once(&check, &backend, &key, &spec).await;
        let snapshot = node.snapshot();
        let Some((p, o)) = snapshot.find_origin(&key.pool, &key.origin, &key.address) else {
            return;
        };
        snapshot.pools[p].origins[o].set_probe_error(error);
        snapshot.pools[p].record_probe(o, result);
    }
}

/// One probe with the pool's timeout, and why it failed.
async fn probe_once(
    check: &HttpHealthCheck,
    backend: &Backend,
    key: &OriginKey,
    spec: &ProbeSpec,
) -> (ProbeResult, Option<String>) {
    let timeout = spec.probe.timeout;
    let start = Instant::now();
    match tokio::time::timeout(timeout, check.check(backend)).await {
        Ok(Ok(())) => (ProbeResult::Success(start.elapsed()), None),
        Ok(Err(e)) => {
            log::debug!("probe of {} in pool {} failed: {e}", key.origin, key.pool);
            let text: String = e.to_string().chars().take(300).collect();
            (ProbeResult::Failure, Some(text))
        }
        Err(_) => {
            let text = format!("timed out after {} ms", timeout.as_millis());
            log::debug!("probe of {} in pool {} {text}", key.origin, key.pool);
            (ProbeResult::Failure, Some(text))
        }
    }
}

/// Pingora's HTTP check with the probe's method, path, headers and timeout.
fn health_check(
    snapshot: &Snapshot,
    key: &OriginKey,
    spec: &ProbeSpec,
) -> pingora_error::Result<HttpHealthCheck> {
    let Some((p, o)) = snapshot.find_origin(&key.pool, &key.origin, &key.address) else {
        return Error::e_explain(ErrorType::InternalError, "origin left the config");
    };
    let pool = &snapshot.pools[p];
    let mut check = HttpHealthCheck::new("", false);
    check.req = probe_request(&pool.config, &pool.origins[o], &spec.region)?;
    // The origin's own peer: over TLS with its SNI, verification and the pool's CA.
    check.peer_template = pool.origins[o].peer.clone();
    check.peer_template.options.connection_timeout = Some(spec.probe.timeout);
    check.peer_template.options.read_timeout = Some(spec.probe.timeout);
    check.peer_template.options.write_timeout = Some(spec.probe.timeout);
    check.reuse_connection = false;
    let expected = spec.probe.expected_status.clone();
    check.validator = Some(Box::new(move |resp| {
        let status = resp.status.as_u16();
        if expected.contains(status) {
            Ok(())
        } else {
            Error::e_explain(
                ErrorType::CustomCode("unexpected probe status", status),
                format!("expected {expected}"),
            )
        }
    }));
    Ok(check)
}
