//! The same simulation with `portico`, `portico-origin` and etcd as child processes: preferences, a SIGKILLed node's clients moving, and nothing left running after stop.

mod common;

use common::*;
use portico_sim::{SimOptions, Simulation, Topology};
use std::time::{Duration, Instant};

#[test]
fn child_processes_prefer_their_region_move_on_sigkill_and_stop_cleanly() {
    let Some(launch) = subprocess_launch() else {
        return;
    };
    let work = work_dir("subprocess");
    let options = SimOptions {
        base_port: None,
        launch,
        work_dir: Some(work.clone()),
        netns: false,
        no_store: false,
        acme: false,
    };
    let mut sim =
        Simulation::start(Topology::parse(TOPOLOGY).expect("valid"), &options).expect("starts");
    let config = std::fs::read_to_string(work.join("portico.json")).expect("config written");
    portico_core::config::parse(&config).expect("the written config is valid");
    let pids = sim.child_pids();
    assert_eq!(pids.len(), 9, "three origins, nodes and etcd members");
    for (i, want) in ["web-us", "web-eu", "web-ap"].iter().enumerate() {
        eventually(
            &format!("node {i} prefers {want}"),
            Duration::from_secs(20),
            || prefers(&sim, i) == vec![want.to_string()],
        );
    }
    // `portico --tls-listen` and the shared certificate: HTTPS with h2 through the TLS entry.
    assert_eq!(
        served_over_tls(&sim, sim.tls_entries[0]),
        Some(("HTTP/2".to_string(), "us-east".to_string()))
    );
    let entry = sim.entries[0];
    eventually(
        "us clients served in us-east",
        Duration::from_secs(15),
        || served_from(entry).as_deref() == Some("us-east"),
    );
    let killed = Instant::now();
    sim.kill_node(0);
    eventually(
        "us clients served elsewhere",
        Duration::from_secs(15),
        || served_from(entry).is_some_and(|r| r != "us-east"),
    );
    let moved = killed.elapsed();
    assert!(
        moved <= sim.topology.withdraw + Duration::from_secs(1),
        "clients moved {moved:?} after the kill"
    );
    assert!(sim.exited().is_empty(), "{:?}", sim.exited());
    sim.stop();
    for pid in pids {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "pid {pid} still runs after stop"
        );
    }
    assert!(!work.join("pids").exists(), "pid file removed");
    let _ = std::fs::remove_dir_all(work);
}
