//! Network mode: the store's members in the router namespaces, a region down and back, the service address rerouted; runs only as root where `ip netns add` works and the binaries are built, and says so plainly when skipped.

mod common;

use common::*;
use portico_sim::launch::alive;
use portico_sim::{Launch, SimOptions, Simulation, Topology, netns};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

fn launch() -> Option<(Launch, PathBuf)> {
    let dir = PathBuf::from(env!("CARGO_BIN_EXE_portico-sim"))
        .parent()
        .expect("target dir")
        .to_path_buf();
    let Some(launch) = Launch::in_dir(&dir) else {
        eprintln!(
            "SKIPPED: no portico and portico-origin binaries in {}",
            dir.display()
        );
        return None;
    };
    if !netns::available() {
        eprintln!("SKIPPED: network mode needs root and a working `ip netns add`");
        return None;
    }
    Some((launch, dir))
}

#[test]
fn network_mode_prefers_local_origins_reroutes_the_service_address_and_cleans_up() {
    let Some((launch, dir)) = launch() else {
        return;
    };
    let work = dir.join(format!("sim-netns-test-{}", std::process::id()));
    let options = SimOptions {
        base_port: None,
        launch,
        work_dir: Some(work.clone()),
        netns: true,
        no_store: false,
    };
    let mut sim =
        Simulation::start(Topology::parse(TOPOLOGY).expect("valid"), &options).expect("starts");
    let net = sim.netns.clone().expect("network mode");
    let names: Vec<String> = net.routers.iter().chain(&net.nodes).cloned().collect();
    assert_eq!(names.len(), 6, "a router per region, a namespace per node");
    assert!(names.iter().all(|n| netns::leftovers().contains(n)));
    for (i, want) in ["web-us", "web-eu", "web-ap"].iter().enumerate() {
        eventually(
            &format!("node {i} prefers {want}"),
            Duration::from_secs(20),
            || prefers(&sim, i) == vec![want.to_string()],
        );
    }
    for (r, want) in ["us-east", "eu-west", "ap-south"].iter().enumerate() {
        eventually(
            &format!("{want} clients served in {want}"),
            Duration::from_secs(10),
            || served_from(sim.entries[r]).as_deref() == Some(*want),
        );
        assert_eq!(net.routed_to(r), Some(r));
    }
    // The store: each region's etcd member in its router namespace, on its router address.
    let url = sim.store_url().expect("a store").clone();
    for (r, pid) in sim.etcd_pids().into_iter().enumerate() {
        let pid = pid.expect("member runs");
        let ns = Command::new("ip")
            .args(["netns", "identify", &pid.to_string()])
            .output()
            .expect("ip netns identify");
        assert_eq!(String::from_utf8_lossy(&ns.stdout).trim(), net.routers[r]);
        assert_eq!(url.endpoints[r], format!("{}:2379", netns::home(r)));
    }
    let v0 = portico_core::config::fingerprint(&sim.config);
    for i in 0..3 {
        let s = sim.status(i).expect("/status");
        let own = sim.node_store_url(i).expect("a store");
        assert_eq!(s["config_source"], format!("etcd:{own}").as_str());
        assert_eq!(s["config_version"], v0.as_str());
    }
    // A region down (node, origin, member in their namespaces) and back, a push in between.
    let report = sim.region_down("ap-south").expect("down");
    assert!(
        report.contains("etcd member ap-south: SIGKILLed"),
        "{report}"
    );
    let v1 = sim
        .push_config(&with_weight(&sim.config.clone(), "web-eu", 7))
        .expect("a quorum of two");
    eventually("us and eu run v1", Duration::from_secs(15), || {
        versions(&sim)[..2] == [Some(v1.clone()), Some(v1.clone())]
    });
    let report = sim.region_up("ap-south").expect("up");
    assert!(
        report.contains(&format!("runs config {v1} from the store")),
        "{report}"
    );
    eventually(
        "ap-south clients served in ap-south again",
        Duration::from_secs(15),
        || served_from(sim.entries[2]).as_deref() == Some("ap-south"),
    );

    let pids = sim.child_pids();
    let killed = Instant::now();
    sim.kill_node(0);
    eventually(
        "us-east routes the service address to eu-west",
        Duration::from_secs(15),
        || net.routed_to(0) == Some(1),
    );
    eventually(
        "us clients served in eu-west",
        Duration::from_secs(10),
        || served_from(sim.entries[0]).as_deref() == Some("eu-west"),
    );
    eprintln!(
        "network mode: us clients moved {:?} after the kill",
        killed.elapsed()
    );
    drop(net);
    sim.stop();
    let left = netns::leftovers();
    assert!(
        names.iter().all(|n| !left.contains(n)),
        "namespaces left: {left:?}"
    );
    assert!(pids.iter().all(|p| !alive(*p)), "children left");
    let _ = std::fs::remove_dir_all(work);
}
