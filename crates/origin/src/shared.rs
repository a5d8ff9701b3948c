//! What every listener and connection of one origin shares: its config, counters, request
//! log and fault state.

use crate::{Fault, OriginConfig};
use openssl::ssl::SslAcceptor;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;
use tokio::sync::watch;

/// Counters of what an origin has served.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Requests that were not health probes.
    pub requests: u64,
    /// Health probes (requests with `X-Portico-Health-Probe: 1`).
    pub probes: u64,
    /// TCP connections accepted.
    pub connections_accepted: u64,
    /// WebSocket upgrades completed on `/ws`.
    pub websockets: u64,
}

/// One request as the origin received it.
#[derive(Debug, Clone)]
pub struct RequestRecord {
    /// When the request head arrived.
    pub at: Instant,
    /// The HTTP version it arrived in.
    pub version: http::Version,
    /// Method.
    pub method: String,
    /// Path with query.
    pub path: String,
    /// Headers, names in lower case, in arrival order.
    pub headers: Vec<(String, String)>,
    /// Whether it was a health probe.
    pub probe: bool,
}

/// The state every listener and connection of one origin shares.
pub(crate) struct Shared {
    pub(crate) config: OriginConfig,
    pub(crate) addr: SocketAddr,
    pub(crate) name_body: bytes::Bytes,
    pub(crate) requests: AtomicU64,
    pub(crate) probes: AtomicU64,
    pub(crate) connections: AtomicU64,
    pub(crate) websockets: AtomicU64,
    pub(crate) log: Mutex<VecDeque<RequestRecord>>,
    /// Current fault; `true` in the second field means shut down.
    pub(crate) state: watch::Sender<(Fault, bool)>,
    /// Set for an HTTPS origin.
    pub(crate) tls: Option<SslAcceptor>,
}

impl Shared {
    pub(crate) fn fault(&self) -> Fault {
        self.state.borrow().0
    }

    pub(crate) fn set_fault(&self, fault: Fault) {
        self.state.send_modify(|s| s.0 = fault);
    }

    pub(crate) fn stats(&self) -> Stats {
        Stats {
            requests: self.requests.load(Ordering::Relaxed),
            probes: self.probes.load(Ordering::Relaxed),
            connections_accepted: self.connections.load(Ordering::Relaxed),
            websockets: self.websockets.load(Ordering::Relaxed),
        }
    }

    /// Resolves when the origin shuts down or starts refusing: its connections and WebSockets
    /// go with it.
    pub(crate) async fn killed(&self) {
        let mut state = self.state.subscribe();
        loop {
            let (fault, stop) = *state.borrow_and_update();
            if stop || fault == Fault::Refuse {
                return;
            }
            if state.changed().await.is_err() {
                return;
            }
        }
    }

    pub(crate) fn record(&self, rec: RequestRecord) {
        let mut log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        if log.len() >= self.config.log_capacity {
            log.pop_front();
        }
        log.push_back(rec);
    }
}
