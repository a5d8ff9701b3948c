//! Draining a node (graceful stop, `/healthz` 503 for longer than the withdrawal delay) moves its region's clients without a single failed request.

mod common;

use common::*;
use portico_sim::{SimOptions, Simulation, Topology};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

#[test]
fn draining_a_node_moves_its_clients_without_errors() {
    let topology = TOPOLOGY.replace(
        r#""withdraw_ms": 300,"#,
        r#""withdraw_ms": 300, "drain_ms": 3000,"#,
    );
    let t = Topology::parse(&topology).expect("valid");
    assert_eq!(t.drain, Duration::from_secs(3));
    let mut sim = Simulation::start(t, &SimOptions::default()).expect("starts");
    let entry = sim.entries[0];
    eventually(
        "us clients served in us-east",
        Duration::from_secs(15),
        || served_from(entry).as_deref() == Some("us-east"),
    );
    let (stop, failures, moved) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicBool::new(false)),
    );
    let client = {
        let (stop, failures, moved) = (stop.clone(), failures.clone(), moved.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match served_from(entry) {
                    None => {
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                    Some(r) if r != "us-east" => moved.store(true, Ordering::Relaxed),
                    Some(_) => {}
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    sim.drain_node(0);
    eventually("us clients moved", Duration::from_secs(10), || {
        moved.load(Ordering::Relaxed)
    });
    stop.store(true, Ordering::Relaxed);
    client.join().expect("client thread");
    assert_eq!(failures.load(Ordering::Relaxed), 0, "failed requests");
    assert_eq!(served_from(entry).as_deref(), Some("eu-west"));
}
