//! The live-configuration benchmark: how long a config change takes to reach every node of a
//! three-region fleet following an etcd store, and whether any client notices the reloads.
//!
//! - [`docs`]: the two config documents the pushes alternate between (origin priorities
//!   swapped, so traffic moves with every push).
//! - [`fleet`]: the processes: a three-member etcd cluster, two origins, three store-following
//!   nodes, or one `--config` node reloaded by SIGHUP.
//! - [`status`]: polling every node's `/status` until it reports a version.
//! - [`trigger`]: the ways a change is made (in-process store write, `portico config push`,
//!   file rewrite + SIGHUP) and one measured change.
//! - [`load`]: the open-loop client (keep-alive and new connections, spread over the nodes).
//! - [`served`]: whether answers after each reload came from the origin the new config prefers.
//! - [`report`]: summary numbers, the markdown table and the anchors.

pub mod docs;
pub mod fleet;
pub mod load;
pub mod report;
pub mod served;
pub mod status;
pub mod trigger;

/// The regions of the simulation, in member/node order.
pub const REGIONS: [&str; 3] = ["us-east", "eu-west", "ap-south"];

/// Milliseconds in a duration, as a float.
pub fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
