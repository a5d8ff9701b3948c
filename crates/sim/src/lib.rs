//! `portico-sim`: several regions on one machine — per-region round trips, one Portico config for every edge node, anycast-style entries.

pub mod announce;
pub mod bench;
pub mod entry;
pub mod http;
pub mod launch;
pub mod netns;
pub mod sim;
pub mod supervise;
pub mod topology;

pub use launch::Launch;
pub use sim::{SimOptions, Simulation};
pub use topology::Topology;
