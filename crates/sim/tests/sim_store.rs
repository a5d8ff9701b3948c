//! The store in the simulation (child processes): a three-member etcd cluster, one member per region; every node follows it; a push reaches every node, with a region down (its member, node and origin) the other two, and the returning node runs the latest version.

mod common;

use common::*;
use portico_core::config::fingerprint;
use portico_sim::launch::alive;
use portico_sim::{SimOptions, Simulation, Topology};
use std::time::Duration;

/// The command line of process `pid`, its arguments joined with spaces.
fn cmdline(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .unwrap_or_default()
}

#[test]
fn every_node_follows_the_store_and_a_region_comes_back_on_the_latest_config() {
    let Some(launch) = subprocess_launch() else {
        return;
    };
    let work = work_dir("store");
    let options = SimOptions {
        base_port: None,
        launch,
        work_dir: Some(work.clone()),
        netns: false,
        no_store: false,
        acme: false,
    };
    // Fails with etcd's install command when etcd is missing.
    let mut sim =
        Simulation::start(Topology::parse(TOPOLOGY).expect("valid"), &options).expect("starts");

    // One member per region; each node follows every member, its own region's first.
    let url = sim.store_url().expect("a store").clone();
    assert_eq!(url.endpoints.len(), 3, "{url}");
    assert_eq!(url.prefix, "portico");
    let etcd = sim.etcd_pids();
    assert!(etcd.iter().all(|p| p.is_some_and(alive)), "{etcd:?}");
    let v0 = fingerprint(&sim.config);
    assert_eq!(sim.stored_version().as_deref(), Some(v0.as_str()));
    for (i, name) in ["edge-us", "edge-eu", "edge-ap"].iter().enumerate() {
        let own = sim.node_store_url(i).expect("a store");
        assert_eq!(own.endpoints[0], url.endpoints[i], "{own}");
        let s = sim.status(i).expect("/status");
        let source = s["config_source"].as_str().unwrap_or_default();
        assert!(source.starts_with("etcd:"), "{name}: {source}");
        assert_eq!(source, format!("etcd:{own}"));
        assert_eq!(s["config_version"], v0.as_str(), "{name}");
        let line = cmdline(sim.node_pid(i).expect("a child"));
        for want in [
            format!("--store {own}"),
            format!("--name {name}"),
            format!(
                "--cache {}",
                work.join(format!("cache/{name}.json")).display()
            ),
        ] {
            assert!(
                line.contains(&want),
                "{name} runs {line:?}, without {want:?}"
            );
        }
        assert!(!line.contains("--config"), "{line}");
    }
    let table = sim.table();
    assert!(table.contains("| version | wave |"), "{table}");
    assert_eq!(table.matches(&format!("| {v0} |")).count(), 3, "{table}");
    assert!(table.contains(&format!("store {url}")), "{table}");

    // A push reaches every node (and its cache).
    let v1 = sim
        .push_config(&with_weight(&sim.config.clone(), "web-eu", 7))
        .expect("pushed");
    assert_ne!(v1, v0);
    eventually("every node runs v1", Duration::from_secs(15), || {
        versions(&sim) == vec![Some(v1.clone()); 3]
    });
    let cache = work.join("cache/edge-ap.json");
    eventually("edge-ap caches v1", Duration::from_secs(5), || {
        std::fs::read_to_string(&cache).is_ok_and(|t| fingerprint(&t) == v1)
    });

    // ap-south goes down: its node, origin and etcd member.
    let gone = [
        sim.node_pid(2).expect("node"),
        sim.origin_pid(2).expect("origin"),
        etcd[2].expect("member"),
    ];
    let report = sim.region_down("ap-south").expect("region down");
    for want in [
        "edge-ap: SIGKILLed",
        "web-ap: SIGKILLed",
        "etcd member ap-south: SIGKILLed",
        "2 of 3 etcd members run, a quorum",
    ] {
        assert!(report.contains(want), "{want:?} not in {report}");
    }
    assert!(gone.iter().all(|p| !alive(*p)), "{gone:?} still run");
    assert_eq!(sim.etcd_pids()[2], None);
    assert!(sim.status(2).is_none(), "edge-ap still answers");
    assert!(sim.region_down("ap-south").is_err(), "already down");

    // The other two members are a quorum: a push still reaches the other two nodes.
    let v2 = sim
        .push_config(&with_weight(&sim.config.clone(), "web-us", 9))
        .expect("two of three members take a push");
    eventually(
        "edge-us and edge-eu run v2",
        Duration::from_secs(15),
        || versions(&sim)[..2] == [Some(v2.clone()), Some(v2.clone())],
    );
    eventually(
        "ap-south clients served in eu-west",
        Duration::from_secs(10),
        || served_from(sim.entries[2]).as_deref() == Some("eu-west"),
    );
    assert!(sim.exited().is_empty(), "{:?}", sim.exited());

    // Back: the member rejoins, the node starts from the store and runs v2.
    let report = sim.region_up("ap-south").expect("region up");
    for want in [
        "etcd member ap-south: started".to_string(),
        "origin web-ap: started".to_string(),
        format!(
            "edge node edge-ap: started (pid {}), runs config {v2} from the store",
            sim.node_pid(2).expect("node")
        ),
    ] {
        assert!(report.contains(&want), "{want:?} not in {report}");
    }
    assert!(sim.etcd_pids()[2].is_some_and(alive));
    assert_eq!(sim.node_version(2).as_deref(), Some(v2.as_str()));
    eventually(
        "ap-south clients served in ap-south again",
        Duration::from_secs(10),
        || served_from(sim.entries[2]).as_deref() == Some("ap-south"),
    );
    // Its TLS listener came back with it (region-up waits for a handshake).
    assert_eq!(
        served_over_tls(&sim, sim.tls_entries[2]),
        Some(("HTTP/2".to_string(), "ap-south".to_string()))
    );
    // And it follows: the next push reaches all three.
    let v3 = sim
        .push_config(&with_weight(&sim.config.clone(), "web-ap", 3))
        .expect("pushed");
    eventually("every node runs v3", Duration::from_secs(15), || {
        versions(&sim) == vec![Some(v3.clone()); 3]
    });
    assert!(sim.exited().is_empty(), "{:?}", sim.exited());

    let pids = sim.child_pids();
    assert_eq!(pids.len(), 9);
    sim.stop();
    for pid in pids {
        assert!(!alive(pid), "pid {pid} still runs after stop");
    }
    let _ = std::fs::remove_dir_all(work);
}
