//! `portico-sim --acme`: Pebble issues the managed certificate once, through the store, and
//! every region's node serves it (nodes and origins as threads of the test; etcd, Pebble and
//! its mock DNS as child processes).

mod common;

use common::*;
use portico_sim::{SimOptions, Simulation, Topology, pebble};
use std::time::Duration;

#[test]
fn every_region_serves_the_certificate_of_one_pebble_order() {
    let _ = env_logger::builder().is_test(true).try_init();
    let options = SimOptions {
        acme: true,
        work_dir: Some(work_dir("acme")),
        ..SimOptions::default()
    };
    let sim = Simulation::start(Topology::parse(TOPOLOGY).expect("valid"), &options)
        .expect("starts with --acme");
    let p = sim.pebble.as_ref().expect("pebble runs");
    assert!(sim.acme_issued_in.is_some());
    let root = std::fs::read_to_string(&p.root_file).expect("pebble's root");
    assert!(root.contains("BEGIN CERTIFICATE"), "{root}");
    for addr in sim.tls_nodes.iter().chain(&sim.tls_entries) {
        assert!(
            pebble::serves(addr, &p.root_file),
            "{addr} serves {} a certificate from Pebble",
            pebble::HOST
        );
    }
    // Every node's /status says the certificate is issued, with no error.
    eventually(
        "every node reports certificate acme issued",
        Duration::from_secs(10),
        || {
            (0..sim.nodes.len()).all(|i| {
                sim.status(i).is_some_and(|s| {
                    s["certificates"].as_array().is_some_and(|cs| {
                        cs.iter().any(|c| {
                            c["name"] == "acme" && c["state"] == "issued" && c["failures"] == 0
                        })
                    })
                })
            })
        },
    );
    assert_eq!(p.orders(), 1, "one order shared by the three regions");
    let doc: serde_json::Value = serde_json::from_str(&sim.config).expect("JSON");
    assert_eq!(doc["acme"]["directory"], p.directory.as_str());
    // The run's throwaway certificate still serves every other name: only the managed host
    // is Pebble's.
    assert!(!pebble::serves_name(
        &sim.tls_nodes[0],
        &p.root_file,
        "localhost"
    ));
}
