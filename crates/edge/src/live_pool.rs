//! One pool of a running config: its settings, the origins' peers, and the routing state
//! (health, latency, ejection, budget) behind a lock.

use crate::metrics::Metrics;
use crate::origin_tls::PoolTls;
use pingora_core::upstreams::peer::HttpPeer;
use portico_core::config::{OriginConfig, PoolConfig};
use portico_core::ejection::EjectionEvent;
use portico_core::health::ProbeResult;
use portico_core::pool_state::{OriginState, PoolState, ProbeEvents};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// An origin as the proxy reaches it.
pub struct OriginPeer {
    /// Name from the config.
    pub name: String,
    /// `HOST:PORT` as written (part of the origin's identity across reloads).
    pub address: String,
    /// Resolved address.
    pub addr: SocketAddr,
    /// Peer template cloned for each attempt (timeouts set).
    pub peer: HttpPeer,
    /// Host header to send instead of the client's.
    pub host_header: Option<String>,
    /// Why the last probe failed (none after a good one), for `/status`.
    probe_error: Mutex<Option<String>>,
}

impl OriginPeer {
    /// Why the last probe failed, if it did.
    pub fn probe_error(&self) -> Option<String> {
        self.probe_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Keeps why the last probe failed (`None`: it succeeded).
    pub fn set_probe_error(&self, error: Option<String>) {
        *self.probe_error.lock().unwrap_or_else(|p| p.into_inner()) = error;
    }
}

/// One pool of a running config. A reload builds a new one (carrying the routing state of
/// the origins it keeps) unless the pool and its resolved addresses are unchanged, in which
/// case the new config shares this one.
pub struct LivePool {
    /// The pool's config.
    pub config: PoolConfig,
    /// Origins, index for index with `config.origins`.
    pub origins: Vec<OriginPeer>,
    /// What its TLS origins need from disk: the CA certificates of `ca_file` (what they are
    /// checked against) and the certificate presented to them.
    pub tls: PoolTls,
    state: Mutex<PoolState>,
    metrics: Arc<Metrics>,
}

impl LivePool {
    /// A pool whose routing state is `state`, reaching its origins at `addrs`.
    pub fn new(
        config: PoolConfig,
        addrs: &[SocketAddr],
        tls: PoolTls,
        state: PoolState,
        metrics: Arc<Metrics>,
    ) -> Self {
        let group_key = tls.group_key();
        let origins = config
            .origins
            .iter()
            .zip(addrs)
            .map(|(o, &addr)| origin_peer(&config, o, addr, &tls, group_key))
            .collect();
        metrics.register_pool(&config.name);
        for o in &config.origins {
            metrics.register_origin(&config.name, &o.name);
        }
        let pool = Self {
            config,
            origins,
            tls,
            state: Mutex::new(state),
            metrics,
        };
        pool.publish_all();
        pool
    }

    /// Locks the pool's routing state. A panic while holding the lock cannot leave it
    /// half-updated in a way that matters to routing, so a poisoned lock is used as is.
    pub fn state(&self) -> MutexGuard<'_, PoolState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A copy of the routing state, for carrying into the next config.
    pub fn state_copy(&self) -> PoolState {
        self.state().clone()
    }

    /// The resolved addresses, index for index with the origins.
    pub fn addrs(&self) -> Vec<SocketAddr> {
        self.origins.iter().map(|o| o.addr).collect()
    }

    /// The position of the origin named `name` with address `address`.
    pub fn find(&self, name: &str, address: &str) -> Option<usize> {
        self.origins
            .iter()
            .position(|o| o.name == name && o.address == address)
    }

    /// Records a probe and updates health, latency, ejection and their metrics.
    pub fn record_probe(&self, idx: usize, result: ProbeResult) {
        let now = Instant::now();
        let (events, state) = {
            let mut s = self.state();
            let events = s.record_probe(now, idx, result);
            (events, s.origin(idx))
        };
        let (Some(state), Some(o)) = (state, self.config.origins.get(idx)) else {
            return;
        };
        let pool = self.config.name.as_str();
        let origin = o.name.as_str();
        let outcome = if result.is_success() {
            "success"
        } else {
            "failure"
        };
        self.metrics
            .probes
            .with_label_values(&[pool, origin, outcome])
            .inc();
        self.publish(origin, &state);
        self.publish_pool();
        let ProbeEvents { health, returned } = events;
        if let Some(healthy) = health {
            let (failed, total) = state.window;
            if healthy {
                log::info!(
                    "pool {pool}: origin {origin} is healthy ({failed} of the last {total} probes failed)"
                );
            } else {
                log::warn!(
                    "pool {pool}: origin {origin} is unhealthy ({failed} of the last {total} probes failed)"
                );
            }
        }
        if returned {
            log::info!("pool {pool}: origin {origin} returns from ejection after a good probe");
        }
    }

    /// Sets the pool's live latency quantiles.
    fn publish_pool(&self) {
        let pool = self.config.name.as_str();
        let now = Instant::now();
        let quantiles = {
            let s = self.state();
            [0.5, 0.95].map(|q| (q, s.hedger().quantile(now, q)))
        };
        for (q, v) in quantiles {
            let label = if q == 0.5 { "0.5" } else { "0.95" };
            match v {
                Some(d) => self
                    .metrics
                    .pool_head_latency
                    .with_label_values(&[pool, label])
                    .set(d.as_secs_f64()),
                None => {
                    let _ = self
                        .metrics
                        .pool_head_latency
                        .remove_label_values(&[pool, label]);
                }
            }
        }
    }

    /// Sets the per-origin gauges from `state`. A disabled origin exports none: it is neither
    /// probed nor selected, so it is neither healthy nor down.
    fn publish(&self, origin: &str, state: &OriginState) {
        let pool = self.config.name.as_str();
        let enabled = self
            .config
            .origins
            .iter()
            .any(|o| o.name == origin && o.enabled);
        if !enabled {
            self.metrics.forget_origin(pool, origin);
            return;
        }
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
        for (family, value) in [
            (&self.metrics.origin_live_latency, state.live_latency),
            (
                &self.metrics.origin_selection_latency,
                state.selection_latency,
            ),
        ] {
            match value {
                Some(l) => family
                    .with_label_values(&[pool, origin])
                    .set(l.as_secs_f64()),
                None => {
                    let _ = family.remove_label_values(&[pool, origin]);
                }
            }
        }
        self.metrics
            .origin_healthy
            .with_label_values(&[pool, origin])
            .set(i64::from(state.healthy));
        self.metrics
            .origin_ejected
            .with_label_values(&[pool, origin])
            .set(i64::from(state.ejected));
    }

    /// Sets every origin's gauges from the current state (after a reload carried it).
    pub fn publish_all(&self) {
        let states: Vec<Option<OriginState>> = {
            let s = self.state();
            (0..self.origins.len()).map(|i| s.origin(i)).collect()
        };
        for (o, state) in self.config.origins.iter().zip(states) {
            if let Some(state) = state {
                self.publish(&o.name, &state);
            }
        }
    }

    /// Records the outcome of a live attempt; ejects the origin when that is due.
    pub fn record_outcome(&self, idx: usize, success: bool) {
        let event = self.state().record_outcome(Instant::now(), idx, success);
        if let Some(event) = event {
            self.ejection_event(idx, event);
        }
    }

    /// Counts and logs an ejection the routing state decided on.
    pub fn ejection_event(&self, idx: usize, event: EjectionEvent) {
        if let (EjectionEvent::Ejected { duration, .. }, Some(o)) =
            (event, self.config.origins.get(idx))
        {
            let pool = self.config.name.as_str();
            let origin = o.name.as_str();
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

/// Concurrent requests multiplexed on one HTTP/2 connection to an origin.
const H2_STREAMS_PER_ORIGIN_CONNECTION: usize = 100;

/// The peer template of one origin: its address, TLS (SNI, verification, the pool's CA, the
/// pool's client certificate, their connection-pool key `group_key`), the pool's HTTP
/// version and the pool's timeouts.
fn origin_peer(
    pool: &PoolConfig,
    o: &OriginConfig,
    addr: SocketAddr,
    tls: &PoolTls,
    group_key: u64,
) -> OriginPeer {
    let sni = if o.tls { o.sni_name() } else { String::new() };
    let mut peer = HttpPeer::new(addr, o.tls, sni);
    if o.tls {
        peer.options.verify_cert = o.tls_verify;
        peer.options.verify_hostname = o.tls_verify;
        peer.options.ca = tls.ca.clone();
        peer.group_key = group_key;
        if let Some(cert) = &tls.client_cert {
            peer.client_cert_key = Some(cert.cert_key().clone());
        }
    }
    peer.options.connection_timeout = Some(pool.timeouts.connect);
    peer.options.read_timeout = Some(pool.timeouts.response);
    peer.options.write_timeout = Some(pool.timeouts.response);
    peer.options.idle_timeout = Some(Duration::from_secs(60));
    let (max, min) = pool.protocol.versions();
    // `h2` over cleartext is prior knowledge: Pingora speaks h2c when the minimum version is 2.
    peer.options.set_http_version(max, min);
    // Streams of one HTTP/2 connection to the origin (Pingora's default of 1 would open a
    // connection per concurrent request).
    peer.options.max_h2_streams = H2_STREAMS_PER_ORIGIN_CONNECTION;
    OriginPeer {
        name: o.name.clone(),
        address: o.address.clone(),
        addr,
        peer,
        host_header: o.host_header.clone(),
        probe_error: Mutex::new(None),
    }
}
