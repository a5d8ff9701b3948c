//! The loopback simulation starts, each node prefers its own region (over HTTP and HTTPS/h2), and stop leaves nothing listening.

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
    // HTTPS through each region's TLS entry: h2 with the run's throwaway CA, its own node.
    for (r, want) in ["us-east", "eu-west", "ap-south"].iter().enumerate() {
        assert_eq!(
            served_over_tls(&sim, sim.tls_entries[r]),
            Some(("HTTP/2".to_string(), want.to_string())),
            "TLS entry of {want}"
        );
    }
    assert!(sim.config.contains("\"certificates\""), "{}", sim.config);
    let table = sim.table();
    assert!(
        table.contains("| us-east |") && table.contains("web-us"),
        "{table}"
    );
    let mut ports: Vec<SocketAddr> = sim.entries.clone();
    ports.extend(sim.tls_entries.iter().chain(&sim.tls_nodes));
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
