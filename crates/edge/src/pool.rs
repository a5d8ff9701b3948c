//! One pool at run time: the core's state behind a lock, the origins' peers, and Pingora's
//! load balancer driving probes and selection.

use crate::metrics::Metrics;
use crate::selector::LatencySelector;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_http::RequestHeader;
use pingora_load_balancing::{Backend, Backends, LoadBalancer, discovery};
use portico_core::config::{ConfigError, PoolConfig};
use portico_core::ejection::EjectionEvent;
use portico_core::health::ProbeResult;
use portico_core::pool::{PoolBrain, ProbeEvents};
use std::collections::BTreeSet;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// An origin as the proxy reaches it.
pub struct Origin {
    /// Name from the config.
    pub name: String,
    /// Resolved address.
    pub addr: SocketAddr,
    /// Peer template cloned for each attempt (timeouts set).
    pub peer: HttpPeer,
    /// Host header to send instead of the client's.
    pub host_header: Option<String>,
}

/// What the selector and the probe share about a pool; reachable from each `Backend`'s `ext`.
pub struct PoolCore {
    /// Position in the config's pools.
    pub index: usize,
    /// The pool's config.
    pub config: PoolConfig,
    /// Origins, index for index with `config.origins`.
    pub origins: Vec<Origin>,
    brain: Mutex<PoolBrain>,
    metrics: Arc<Metrics>,
}

/// Which origin a `Backend` is: stored in `Backend::ext`.
#[derive(Clone)]
pub struct OriginRef {
    /// The pool.
    pub pool: Arc<PoolCore>,
    /// Index of the origin in the pool.
    pub index: usize,
}

impl PoolCore {
    /// Locks the pool's routing state. A panic while holding the lock cannot leave it
    /// half-updated in a way that matters to routing, so a poisoned lock is used as is.
    pub fn brain(&self) -> MutexGuard<'_, PoolBrain> {
        self.brain.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a probe and updates health, latency, ejection and their metrics.
    pub fn record_probe(&self, idx: usize, result: ProbeResult) -> bool {
        let now = Instant::now();
        let (events, state) = {
            let mut brain = self.brain();
            let events = brain.record_probe(now, idx, result);
            (events, brain.origin(idx))
        };
        let pool = self.config.name.as_str();
        let origin = self.config.origins[idx].name.as_str();
        let outcome = if result.is_success() {
            "success"
        } else {
            "failure"
        };
        self.metrics
            .probes
            .with_label_values(&[pool, origin, outcome])
            .inc();
        let Some(state) = state else { return false };
        match state.latency {
            Some(l) => self
                .metrics
                .origin_latency
                .with_label_values(&[pool, origin])
                .set(l.as_secs_f64()),
            None => {
                let _ = self
                    .metrics
                    .origin_latency
                    .remove_label_values(&[pool, origin]);
            }
        }
        let ProbeEvents { health, returned } = events;
        if let Some(healthy) = health {
            self.metrics
                .origin_healthy
                .with_label_values(&[pool, origin])
                .set(i64::from(healthy));
            let (failed, total) = state.window;
            if healthy {
                log::info!(
                    "pool {pool}: origin {origin} is healthy again ({failed} of the last {total} probes failed)"
                );
            } else {
                log::warn!(
                    "pool {pool}: origin {origin} is unhealthy ({failed} of the last {total} probes failed)"
                );
            }
        }
        if returned {
            self.metrics
                .origin_ejected
                .with_label_values(&[pool, origin])
                .set(0);
            log::info!("pool {pool}: origin {origin} returns from ejection after a good probe");
        }
        state.healthy
    }

    /// Records the outcome of a live attempt; ejects the origin when that is due.
    pub fn record_outcome(&self, idx: usize, success: bool) {
        let event = self.brain().record_outcome(Instant::now(), idx, success);
        if let Some(EjectionEvent::Ejected { duration, .. }) = event {
            let pool = self.config.name.as_str();
            let origin = self.config.origins[idx].name.as_str();
            self.metrics
                .ejections
                .with_label_values(&[pool, origin])
                .inc();
            self.metrics
                .origin_ejected
                .with_label_values(&[pool, origin])
                .set(1);
            log::warn!(
                "pool {pool}: origin {origin} ejected for {} ms after {} failed requests in a row",
                duration.as_millis(),
                self.config.failover.ejection.consecutive_failures
            );
        }
    }
}

/// A pool ready to serve: its shared core and its load balancer.
pub struct PoolRuntime {
    /// State shared with the selector and the probe.
    pub core: Arc<PoolCore>,
    /// Pingora's load balancer: runs the probes and calls the latency selector.
    pub lb: Arc<LoadBalancer<LatencySelector>>,
}

/// Resolves `HOST:PORT` to one socket address (IPv4 first).
pub fn resolve(address: &str) -> Result<SocketAddr, String> {
    let addrs: Vec<SocketAddr> = address
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {address:?}: {e}"))?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| format!("{address:?} resolves to no address"))
}

/// Resolves every origin address of `pool` (index `index` in the config).
pub fn resolve_origins(
    index: usize,
    pool: &PoolConfig,
) -> Result<Vec<SocketAddr>, Vec<ConfigError>> {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for (i, o) in pool.origins.iter().enumerate() {
        match resolve(&o.address) {
            Ok(a) => out.push(a),
            Err(e) => errors.push(ConfigError::new(
                format!("pools[{index}].origins[{i}].address"),
                e,
            )),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// Builds a pool: its core, one `Backend` per enabled origin, and the load balancer whose
/// background service probes them every `health_probe.interval_ms`.
pub fn build_pool(
    index: usize,
    config: &PoolConfig,
    addrs: &[SocketAddr],
    region: &str,
    metrics: Arc<Metrics>,
) -> PoolRuntime {
    let origins: Vec<Origin> = config
        .origins
        .iter()
        .zip(addrs)
        .map(|(o, &addr)| {
            let mut peer = HttpPeer::new(addr, false, String::new());
            peer.options.connection_timeout = Some(config.timeouts.connect);
            peer.options.read_timeout = Some(config.timeouts.response);
            peer.options.write_timeout = Some(config.timeouts.response);
            peer.options.idle_timeout = Some(Duration::from_secs(60));
            Origin {
                name: o.name.clone(),
                addr,
                peer,
                host_header: o.host_header.clone(),
            }
        })
        .collect();
    metrics.register_pool(&config.name);
    for o in &config.origins {
        metrics.register_origin(&config.name, &o.name);
    }
    let core = Arc::new(PoolCore {
        index,
        config: config.clone(),
        origins,
        brain: Mutex::new(PoolBrain::new(config, Instant::now())),
        metrics,
    });
    let mut backends = BTreeSet::new();
    for (i, o) in config.origins.iter().enumerate() {
        if !o.enabled {
            continue;
        }
        let mut b = Backend {
            addr: pingora_core::protocols::l4::socket::SocketAddr::Inet(addrs[i]),
            weight: o.weight as usize,
            ext: Default::default(),
        };
        b.ext.insert(OriginRef {
            pool: core.clone(),
            index: i,
        });
        backends.insert(b);
    }
    let mut backends = Backends::new(discovery::Static::new(backends));
    backends.set_health_check(Box::new(crate::probe::Prober::new(core.clone(), region)));
    let mut lb =
        LoadBalancer::<LatencySelector>::from_backends_with_config(backends, Some(core.clone()));
    lb.health_check_frequency = Some(config.probe.interval);
    lb.parallel_health_check = true;
    PoolRuntime {
        core,
        lb: Arc::new(lb),
    }
}

/// A probe request for `origin`, as `health_probe` describes it.
pub fn probe_request(config: &PoolConfig, origin: &Origin, region: &str) -> RequestHeader {
    let method = config.probe.method.as_str();
    let mut req = RequestHeader::build(method, config.probe.path.as_bytes(), None)
        .expect("validated probe method and path");
    let host = origin
        .host_header
        .clone()
        .unwrap_or_else(|| origin.addr.to_string());
    // Values are validated (host header, region name) or ours, so these cannot fail.
    let _ = req.insert_header("Host", host);
    let _ = req.insert_header("User-Agent", "portico-health-probe");
    let _ = req.insert_header("X-Portico-Health-Probe", "1");
    let _ = req.insert_header("X-Portico-Region", region);
    req
}
