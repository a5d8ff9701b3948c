//! Shared by the simulation tests: a small fast topology, the built binaries, polling helpers.

// Each test lives in its own file (its own process): a second in-process simulation in one
// process does not bring up its first node's proxy listener.
#![allow(dead_code)]

use portico_sim::{Launch, SimOptions, Simulation, Topology};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::Duration;

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

/// The directory of the built binaries (`target/debug`), where `portico-sim` is.
pub fn bin_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_portico-sim"))
        .parent()
        .expect("target dir")
        .to_path_buf()
}

/// Child-process launch from [`bin_dir`], or `None` (said plainly) when `portico` and
/// `portico-origin` are not built there.
pub fn subprocess_launch() -> Option<Launch> {
    let dir = bin_dir();
    let launch = Launch::in_dir(&dir);
    if launch.is_none() {
        eprintln!(
            "SKIPPED: no portico and portico-origin binaries in {} (cargo build --workspace --bins first)",
            dir.display()
        );
    }
    launch
}

/// A fresh work directory under `target/debug` for one test.
pub fn work_dir(tag: &str) -> PathBuf {
    let w = bin_dir().join(format!("sim-{tag}-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&w);
    w
}

/// Every node's running config version, `None` for a node that does not answer.
pub fn versions(sim: &Simulation) -> Vec<Option<String>> {
    (0..sim.nodes.len()).map(|i| sim.node_version(i)).collect()
}

/// The shared document with origin `origin`'s weight set to `weight`.
pub fn with_weight(config: &str, origin: &str, weight: u32) -> String {
    let mut doc: serde_json::Value = serde_json::from_str(config).expect("the config is JSON");
    let o = doc["pools"][0]["origins"]
        .as_array_mut()
        .expect("origins")
        .iter_mut()
        .find(|o| o["name"] == origin)
        .unwrap_or_else(|| panic!("no origin {origin} in the config"));
    o["weight"] = weight.into();
    serde_json::to_string_pretty(&doc).expect("serializes") + "\n"
}

/// Polls until a condition holds, panicking after a deadline (portico-test-support's).
pub use portico_test_support::eventually_blocking as eventually;

pub fn prefers(sim: &Simulation, node: usize) -> Vec<String> {
    sim.choice(node).map(|c| c.0).unwrap_or_default()
}

/// The HTTP version and the region of the node that answered an HTTPS client of TLS entry
/// `entry` (curl from Debian, offering h2, trusting only the run's CA), if it answered 200.
pub fn served_over_tls(sim: &Simulation, entry: SocketAddr) -> Option<(String, String)> {
    let out = std::process::Command::new("curl")
        .args([
            "-s",
            "--http2",
            "--max-time",
            "5",
            "-o",
            "/dev/null",
            "-D",
            "-",
        ])
        .arg("--cacert")
        .arg(&sim.tls.ca_file)
        .arg(format!("https://{entry}/"))
        .output()
        .expect("curl runs (make test-deps installs it)");
    let head = String::from_utf8_lossy(&out.stdout).to_string();
    let (version, status) = head.lines().next()?.split_once(' ')?;
    if !status.starts_with("200") {
        return None;
    }
    let region = head.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.eq_ignore_ascii_case("x-portico-region")
            .then(|| value.trim().to_string())
    })?;
    Some((version.to_string(), region))
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
