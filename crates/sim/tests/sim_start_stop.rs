//! The loopback simulation starts, each node prefers its own region, and stop leaves nothing listening.

mod common;

use common::*;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

#[test]
fn each_node_prefers_its_own_region_and_everything_stops() {
    let sim = start();
    for (i, want) in ["web-us", "web-eu", "web-ap"].iter().enumerate() {
        eventually(
            &format!("node {i} prefers {want}"),
            Duration::from_secs(15),
            || prefers(&sim, i) == vec![want.to_string()],
        );
    }
    assert_eq!(served_from(sim.entries[1]).as_deref(), Some("eu-west"));
    let table = sim.table();
    assert!(
        table.contains("| us-east |") && table.contains("web-us"),
        "{table}"
    );
    let mut ports: Vec<SocketAddr> = sim.entries.clone();
    ports.extend(sim.nodes.iter().flat_map(|n| [n.0, n.1]));
    ports.extend(sim.origins.iter().flat_map(|o| [o.addr, o.control]));
    sim.stop();
    for p in ports {
        assert!(
            TcpStream::connect_timeout(&p, Duration::from_millis(500)).is_err(),
            "{p} still listens after stop"
        );
    }
}
