//! Anycast-style entries: one port per client region, each TCP connection forwarded to the nearest announced edge node with Pingora's L4 connector.

use crate::announce::Announcement;
use async_trait::async_trait;
use pingora_core::apps::ServerApp;
use pingora_core::connectors::TransportConnector;
use pingora_core::protocols::Stream;
use pingora_core::server::ShutdownWatch;
use pingora_core::upstreams::peer::BasicPeer;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Every edge node's proxy address and announcement, shared by all entries.
#[derive(Debug)]
pub struct Board {
    /// Proxy listener of each edge node.
    pub nodes: Vec<SocketAddr>,
    announcements: Mutex<Vec<Announcement>>,
}

impl Board {
    /// Every node announced.
    pub fn new(nodes: Vec<SocketAddr>, withdraw: Duration) -> Self {
        let announcements = Mutex::new(vec![Announcement::new(withdraw); nodes.len()]);
        Board {
            nodes,
            announcements,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Announcement>> {
        self.announcements.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a health check of node `i` at `now`; `Some(announced)` when its announcement
    /// changes with it.
    pub fn record(&self, i: usize, now: Instant, healthy: bool) -> Option<bool> {
        let mut a = self.lock();
        let before = a[i].announced(now);
        a[i].record(now, healthy);
        let after = a[i].announced(now);
        (before != after).then_some(after)
    }

    /// Whether node `i` is announced now.
    pub fn announced(&self, i: usize) -> bool {
        self.lock()[i].announced(Instant::now())
    }

    /// The first node of `order` announced now.
    pub fn pick(&self, order: &[usize]) -> Option<usize> {
        let a = self.lock();
        let now = Instant::now();
        order.iter().copied().find(|&i| a[i].announced(now))
    }
}

/// The entry of one client region.
pub struct Entry {
    /// Edge nodes, nearest first.
    pub order: Vec<usize>,
    /// Round trip from this region to each node (index as in the board), added once per
    /// connection: the handshake a real client would pay.
    pub rtt: Vec<Duration>,
    /// Shared announcements.
    pub board: Arc<Board>,
    /// Pingora's L4 connector.
    pub connector: TransportConnector,
}

#[async_trait]
impl ServerApp for Entry {
    async fn process_new(
        self: &Arc<Self>,
        mut client: Stream,
        _shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let node = self.board.pick(&self.order)?;
        let rtt = self.rtt[node];
        if !rtt.is_zero() {
            tokio::time::sleep(rtt).await;
        }
        let peer = BasicPeer::new(&self.board.nodes[node].to_string());
        match self.connector.new_stream(&peer).await {
            Ok(mut upstream) => {
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            }
            Err(e) => log::debug!("entry: node {} unreachable: {e}", self.board.nodes[node]),
        }
        None
    }
}
