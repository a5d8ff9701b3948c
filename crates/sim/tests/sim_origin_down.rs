//! With its local origin down, a node prefers the next-nearest region's origin.

mod common;

use common::*;
use std::time::Duration;

#[test]
fn with_its_origin_down_a_node_prefers_the_next_nearest_region() {
    let sim = start();
    eventually("us node prefers web-us", Duration::from_secs(15), || {
        prefers(&sim, 0) == vec!["web-us".to_string()]
    });
    sim.set_origin_fault(0, "refuse").expect("fault set");
    eventually("us node prefers web-eu", Duration::from_secs(15), || {
        prefers(&sim, 0) == vec!["web-eu".to_string()]
    });
    eventually(
        "ap node prefers web-ap still",
        Duration::from_secs(5),
        || prefers(&sim, 2) == vec!["web-ap".to_string()],
    );
}
