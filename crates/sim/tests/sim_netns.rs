//! Network mode smoke test: runs only as root where `ip netns add` works and the binaries are built; says so plainly when skipped.

mod common;

use common::*;
use portico_sim::{Launch, SimOptions, Simulation, Topology, netns};
use std::path::PathBuf;
use std::time::Duration;

#[test]
fn network_mode_starts_prefers_local_origins_and_removes_its_namespaces() {
    let dir = PathBuf::from(env!("CARGO_BIN_EXE_portico-sim"))
        .parent()
        .expect("target dir")
        .to_path_buf();
    let Some(launch) = Launch::in_dir(&dir) else {
        eprintln!(
            "SKIPPED: no portico and portico-origin binaries in {}",
            dir.display()
        );
        return;
    };
    if !netns::available() {
        eprintln!("SKIPPED: network mode needs root and a working `ip netns add`");
        return;
    }
    let work = dir.join(format!("sim-netns-test-{}", std::process::id()));
    let options = SimOptions {
        base_port: None,
        launch,
        work_dir: Some(work.clone()),
        netns: true,
    };
    let sim =
        Simulation::start(Topology::parse(TOPOLOGY).expect("valid"), &options).expect("starts");
    let names = sim.netns.as_ref().expect("network mode").names.clone();
    assert!(names.iter().all(|n| netns::leftovers().contains(n)));
    for (i, want) in ["web-us", "web-eu", "web-ap"].iter().enumerate() {
        eventually(
            &format!("node {i} prefers {want}"),
            Duration::from_secs(20),
            || prefers(&sim, i) == vec![want.to_string()],
        );
    }
    eventually(
        "eu clients served in eu-west",
        Duration::from_secs(10),
        || served_from(sim.entries[1]).as_deref() == Some("eu-west"),
    );
    sim.stop();
    let left = netns::leftovers();
    assert!(
        names.iter().all(|n| !left.contains(n)),
        "namespaces left: {left:?}"
    );
    let _ = std::fs::remove_dir_all(work);
}
