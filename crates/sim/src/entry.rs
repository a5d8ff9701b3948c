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
        self.pick_at(order, Instant::now())
    }

    /// The first node of `order` announced at `now`: where a region's new connections go.
    pub fn pick_at(&self, order: &[usize], now: Instant) -> Option<usize> {
        let a = self.lock();
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

/// A fixed L4 forward (network mode's entries, run inside a region's router namespace by
/// `portico-sim forward`): every connection goes to `to`, where the kernel's routes decide
/// which edge node answers.
pub struct Forward {
    /// Where connections go (the anycast service address).
    pub to: SocketAddr,
    /// Pingora's L4 connector.
    pub connector: TransportConnector,
}

#[async_trait]
impl ServerApp for Forward {
    async fn process_new(
        self: &Arc<Self>,
        mut client: Stream,
        _shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let peer = BasicPeer::new(&self.to.to_string());
        match self.connector.new_stream(&peer).await {
            Ok(mut upstream) => {
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            }
            Err(e) => log::debug!("forward: {} unreachable: {e}", self.to),
        }
        None
    }
}

/// A bootstrapped one-thread Pingora server for entries: no grace period, 1 s to shut down.
pub fn entry_server() -> pingora_core::server::Server {
    use pingora_core::server::Server;
    use pingora_core::server::configuration::ServerConf;
    let mut server = Server::new_with_opt_and_conf(
        None,
        ServerConf {
            threads: 1,
            grace_period_seconds: Some(0),
            graceful_shutdown_timeout_seconds: Some(1),
            ..ServerConf::default()
        },
    );
    server.bootstrap();
    server
}

/// Runs a [`Forward`] from `listen` to `to` until SIGTERM or SIGINT (Pingora's own signal
/// handling), then exits the process.
pub fn run_forward(listen: SocketAddr, to: SocketAddr) -> ! {
    use pingora_core::services::listening::Service;
    let mut server = entry_server();
    let app = Forward {
        to,
        connector: TransportConnector::new(None),
    };
    let mut svc = Service::new(format!("forward to {to}"), app);
    svc.add_tcp(&listen.to_string());
    server.add_service(svc);
    server.run_forever()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_connections_go_to_the_nearest_announced_node() {
        let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let board = Board::new(vec![addr; 3], Duration::from_millis(1000));
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        // A client region whose nodes are, nearest first: 1, 0, 2.
        let order = [1, 0, 2];
        assert_eq!(board.pick_at(&order, ms(0)), Some(1));
        assert_eq!(board.record(1, ms(100), false), None, "the clock starts");
        assert_eq!(board.pick_at(&order, ms(1099)), Some(1), "still announced");
        assert_eq!(
            board.pick_at(&order, ms(1100)),
            Some(0),
            "withdrawn: next nearest"
        );
        assert_eq!(board.record(0, ms(1100), false), None);
        assert_eq!(
            board.record(0, ms(2100), false),
            None,
            "time withdraws, not checks"
        );
        assert_eq!(board.pick_at(&order, ms(2100)), Some(2), "two withdrawn");
        board.record(2, ms(2200), false);
        assert_eq!(board.pick_at(&order, ms(3200)), None, "none left");
        assert_eq!(board.record(1, ms(3300), true), Some(true));
        assert_eq!(board.pick_at(&order, ms(3300)), Some(1), "back at once");
    }
}
