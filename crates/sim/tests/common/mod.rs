//! Shared by the simulation tests: a small fast topology and polling helpers.

// Each test lives in its own file (its own process): a second in-process simulation in one
// process does not bring up its first node's proxy listener.
#![allow(dead_code)]

use portico_sim::{SimOptions, Simulation, Topology};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

pub const TOPOLOGY: &str = r#"{
  "withdraw_ms": 300,
  "regions": [
    {"name": "us-east", "edge_nodes": ["edge-us"], "origins": ["web-us"]},
    {"name": "eu-west", "edge_nodes": ["edge-eu"], "origins": ["web-eu"]},
    {"name": "ap-south", "edge_nodes": ["edge-ap"], "origins": ["web-ap"]}
  ],
  "rtt_ms": [
    {"between": ["us-east", "us-east"], "ms": 1}, {"between": ["eu-west", "eu-west"], "ms": 1},
    {"between": ["ap-south", "ap-south"], "ms": 1}, {"between": ["us-east", "eu-west"], "ms": 40},
    {"between": ["eu-west", "ap-south"], "ms": 60}, {"between": ["us-east", "ap-south"], "ms": 100}
  ],
  "pool": {"name": "web", "probe_interval_ms": 150, "latency_sensitivity_ms": 15}
}"#;

pub fn start() -> Simulation {
    Simulation::start(
        Topology::parse(TOPOLOGY).expect("valid"),
        &SimOptions::default(),
    )
    .expect("starts")
}

pub fn eventually(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn prefers(sim: &Simulation, node: usize) -> Vec<String> {
    sim.choice(node).map(|c| c.0).unwrap_or_default()
}

/// The region of the node that answered a client of `entry`, if any.
pub fn served_from(entry: SocketAddr) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&entry, Duration::from_secs(2)).ok()?;
    use std::io::{Read, Write};
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    if !buf.starts_with("HTTP/1.1 200") {
        return None;
    }
    buf.lines()
        .find_map(|l| {
            l.strip_prefix("x-portico-region: ")
                .or_else(|| l.strip_prefix("X-Portico-Region: "))
        })
        .map(|v| v.trim().to_string())
}
