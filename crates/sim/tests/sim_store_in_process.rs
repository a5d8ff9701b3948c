//! In-process nodes follow the store too: the same pushes, a region down and back, with the nodes and origins as threads of the test and etcd as child processes.

mod common;

use common::*;
use portico_core::config::fingerprint;
use std::time::Duration;

#[test]
fn in_process_nodes_follow_the_store_across_a_region_outage() {
    let mut sim = start();
    let v0 = fingerprint(&sim.config);
    for i in 0..3 {
        let s = sim.status(i).expect("/status");
        let source = s["config_source"].as_str().unwrap_or_default();
        assert!(source.starts_with("etcd:"), "{source}");
        assert_eq!(s["config_version"], v0.as_str());
    }
    let v1 = sim
        .push_config(&with_weight(&sim.config.clone(), "web-eu", 7))
        .expect("pushed");
    eventually("every node runs v1", Duration::from_secs(15), || {
        versions(&sim) == vec![Some(v1.clone()); 3]
    });
    let report = sim.region_down("ap-south").expect("down");
    assert!(
        report.contains("edge node edge-ap: stopped (in process)"),
        "{report}"
    );
    assert!(sim.status(2).is_none());
    let v2 = sim
        .push_config(&with_weight(&sim.config.clone(), "web-us", 9))
        .expect("a quorum of two");
    eventually(
        "edge-us and edge-eu run v2",
        Duration::from_secs(15),
        || versions(&sim)[..2] == [Some(v2.clone()), Some(v2.clone())],
    );
    let report = sim.region_up("ap-south").expect("up");
    assert!(
        report.contains(&format!("runs config {v2} from the store")),
        "{report}"
    );
    eventually(
        "edge-ap serves its clients again",
        Duration::from_secs(10),
        || served_from(sim.entries[2]).as_deref() == Some("ap-south"),
    );
    assert_eq!(sim.node_version(2).as_deref(), Some(v2.as_str()));
}
