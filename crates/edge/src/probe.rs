//! Active health probes as Portico's own tasks, one per enabled origin, started and stopped
//! as reloads add and remove origins, on a runtime of their own (a Pingora background
//! service) so that reloads, the admin listener and the proxy never wait behind them. Every
//! probe goes through the node's one [`ProbeConnector`]; each is timed and recorded in the
//! pool that holds the origin in the running config.

use crate::origin_tls::PoolTls;
use crate::probe_connector::ProbeConnector;
use crate::request::outbound::probe_request;
use crate::snapshot::Snapshot;
use crate::state::NodeState;
use async_trait::async_trait;
use pingora_core::server::ShutdownWatch;
use pingora_core::services::background::BackgroundService;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_error::{Error, ErrorType};
use pingora_http::RequestHeader;
use portico_core::config::ProbeConfig;
use portico_core::health::ProbeResult;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;
use tokio::task::JoinHandle;

/// The probes as a Pingora background service: its own runtime (one thread).
pub struct ProbeService {
    /// The node.
    pub node: Arc<NodeState>,
}

#[async_trait]
impl BackgroundService for ProbeService {
    async fn start(&self, shutdown: ShutdownWatch) {
        supervise(self.node.clone(), shutdown).await;
    }
}

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
    /// For a TLS origin: SNI, whether the certificate is checked, the pool's CA certificates
    /// and the certificate it presents.
    tls: Option<(String, bool, PoolTls)>,
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
                    tls: o
                        .tls
                        .then(|| (o.sni_name(), o.tls_verify, pool.tls.clone())),
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
                node.probes.task_started();
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
    let (peer, req) = match prepare(&node.snapshot(), &key, &spec) {
        Ok(p) => p,
        Err(e) => {
            log::error!(
                "pool {}: origin {}: cannot build its probe: {e}",
                key.pool,
                key.origin
            );
            return;
        }
    };
    let mut tick = tokio::time::interval(spec.probe.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let (result, error) = probe_once(&node.probes.connector, &peer, &req, &key, &spec).await;
        let snapshot = node.snapshot();
        let Some((p, o)) = snapshot.find_origin(&key.pool, &key.origin, &key.address) else {
            return;
        };
        snapshot.pools[p].origins[o].set_probe_error(error);
        snapshot.pools[p].record_probe(o, result);
    }
}

/// One probe with the pool's timeout, and why it failed. Its round-trip time runs from
/// before the connection is opened until the response head is read.
async fn probe_once(
    connector: &ProbeConnector,
    peer: &HttpPeer,
    req: &RequestHeader,
    key: &OriginKey,
    spec: &ProbeSpec,
) -> (ProbeResult, Option<String>) {
    let timeout = spec.probe.timeout;
    let start = Instant::now();
    let outcome = match tokio::time::timeout(timeout, connector.status(peer, req)).await {
        Ok(Ok(status)) if spec.probe.expected_status.contains(status) => {
            return (ProbeResult::Success(start.elapsed()), None);
        }
        Ok(Ok(status)) => Error::explain(
            ErrorType::CustomCode("unexpected probe status", status),
            format!("expected {}", spec.probe.expected_status),
        )
        .to_string(),
        Ok(Err(e)) => e.to_string(),
        Err(_) => format!("timed out after {} ms", timeout.as_millis()),
    };
    log::debug!(
        "probe of {} in pool {} failed: {outcome}",
        key.origin,
        key.pool
    );
    let text: String = outcome.chars().take(300).collect();
    (ProbeResult::Failure, Some(text))
}

/// The origin's own peer (over TLS with its SNI, verification, the pool's CA and client
/// certificate; the pool's HTTP version) with the probe's timeouts, and the probe request.
fn prepare(
    snapshot: &Snapshot,
    key: &OriginKey,
    spec: &ProbeSpec,
) -> pingora_error::Result<(HttpPeer, RequestHeader)> {
    let Some((p, o)) = snapshot.find_origin(&key.pool, &key.origin, &key.address) else {
        return Error::e_explain(ErrorType::InternalError, "origin left the config");
    };
    let pool = &snapshot.pools[p];
    let req = probe_request(&pool.config, &pool.origins[o], &spec.region)?;
    let mut peer = pool.origins[o].peer.clone();
    peer.options.connection_timeout = Some(spec.probe.timeout);
    peer.options.read_timeout = Some(spec.probe.timeout);
    peer.options.write_timeout = Some(spec.probe.timeout);
    Ok((peer, req))
}
