//! Killing a node moves its region's clients within the withdrawal delay plus one second.

mod common;

use common::*;
use std::time::{Duration, Instant};

#[test]
fn killing_a_node_moves_its_clients_within_the_withdrawal_delay_plus_a_second() {
    let mut sim = start();
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
    assert_eq!(
        served_from(entry).as_deref(),
        Some("eu-west"),
        "the next-nearest node"
    );
    assert!(
        moved <= sim.topology.withdraw + Duration::from_secs(1),
        "clients moved {moved:?} after the kill (withdrawal delay {:?})",
        sim.topology.withdraw
    );
    assert!(!sim.board.announced(0));
}
