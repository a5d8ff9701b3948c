//! Anycast-style entries: one port per client region (and one for TLS), each TCP connection forwarded to the nearest announced edge node with Pingora's L4 connector.

use crate::announce::Announcement;
use async_trait::async_trait;
use pingora_core::apps::ServerApp;
use pingora_core::connectors::TransportConnector;
use pingora_core::protocols::Stream;
use pingora_core::server::ShutdownWatch;
use pingora_core::upstreams::peer::BasicPeer;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Every edge node's announcement, shared by all entries.
#[derive(Debug)]
pub struct Board {
    announcements: Mutex<Vec<Announcement>>,
}

impl Board {
    /// `nodes` nodes, every one announced.
    pub fn new(nodes: usize, withdraw: Duration) -> Self {
        Board {
            announcements: Mutex::new(vec![Announcement::new(withdraw); nodes]),
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

    /// Where new connection number `n` goes at `now`: among the announced nodes of `order` as
    /// near as the nearest one (`rtt` per node), the `n`th modulo their number — equal-cost
    /// paths share the connections, as a router's ECMP does.
    pub fn spread_at(
        &self,
        order: &[usize],
        rtt: &[Duration],
        n: usize,
        now: Instant,
    ) -> Option<usize> {
        let a = self.lock();
        let announced: Vec<usize> = order
            .iter()
            .copied()
            .filter(|&i| a[i].announced(now))
            .collect();
        let nearest = rtt[*announced.first()?];
        let tied = announced.iter().take_while(|&&i| rtt[i] == nearest).count();
        Some(announced[n % tied])
    }
}

/// The entry of one client region, for one of the nodes' listeners (plain or TLS: it
/// forwards bytes, the node terminates TLS).
pub struct Entry {
    /// Edge nodes, nearest first.
    pub order: Vec<usize>,
    /// Where each node (index as in the board) listens for what this entry carries.
    pub targets: Vec<SocketAddr>,
    /// Round trip from this region to each node (index as in the board), added once per
    /// connection: the handshake a real client would pay.
    pub rtt: Vec<Duration>,
    /// Shared announcements.
    pub board: Arc<Board>,
    /// Pingora's L4 connector.
    pub connector: TransportConnector,
    /// Connections so far: spreads them over equally near nodes.
    pub connections: AtomicUsize,
}

#[async_trait]
impl ServerApp for Entry {
    async fn process_new(
        self: &Arc<Self>,
        mut client: Stream,
        _shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let n = self.connections.fetch_add(1, Ordering::Relaxed);
        let node = self
            .board
            .spread_at(&self.order, &self.rtt, n, Instant::now())?;
        let rtt = self.rtt[node];
        if !rtt.is_zero() {
            tokio::time::sleep(rtt).await;
        }
        let target = self.targets[node];
        let peer = BasicPeer::new(&target.to_string());
        match self.connector.new_stream(&peer).await {
            Ok(mut upstream) => {
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            }
            Err(e) => log::debug!("entry: node {target} unreachable: {e}"),
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

/// Runs a [`Forward`] from each `listen` to its `to` until SIGTERM or SIGINT (Pingora's own
/// signal handling), then exits the process.
pub fn run_forward(pairs: &[(SocketAddr, SocketAddr)]) -> ! {
    use pingora_core::services::listening::Service;
    let mut server = entry_server();
    for &(listen, to) in pairs {
        let app = Forward {
            to,
            connector: TransportConnector::new(None),
        };
        let mut svc = Service::new(format!("forward to {to}"), app);
        svc.add_tcp(&listen.to_string());
        server.add_service(svc);
    }
    server.run_forever()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_connections_go_to_the_nearest_announced_node() {
        let board = Board::new(3, Duration::from_millis(1000));
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

    #[test]
    fn equally_near_nodes_share_the_connections() {
        let board = Board::new(4, Duration::ZERO);
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        // Nodes 2 and 3 are in the client's region (2 ms), 0 and 1 farther away.
        let order = [2, 3, 0, 1];
        let rtt = [ms(75), ms(120), ms(2), ms(2)];
        let picks: Vec<_> = (0..4)
            .map(|n| board.spread_at(&order, &rtt, n, t0))
            .collect();
        assert_eq!(picks, [Some(2), Some(3), Some(2), Some(3)]);
        board.record(3, t0, false);
        let picks: Vec<_> = (0..2)
            .map(|n| board.spread_at(&order, &rtt, n, t0))
            .collect();
        assert_eq!(picks, [Some(2), Some(2)], "a withdrawn node gets none");
        board.record(2, t0, false);
        assert_eq!(
            board.spread_at(&order, &rtt, 1, t0),
            Some(0),
            "next nearest"
        );
        board.record(0, t0, false);
        board.record(1, t0, false);
        assert_eq!(board.spread_at(&order, &rtt, 0, t0), None);
    }
}
