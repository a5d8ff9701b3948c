//! `portico-sim`: several regions on one machine — per-region round trips, one etcd member per region holding the config every edge node follows, anycast-style entries, whole regions taken down and back.

pub mod announce;
pub mod bad_push;
pub mod bench;
pub mod bird;
pub mod clients;
pub mod control;
pub mod entry;
pub mod http;
pub mod launch;
mod layout;
pub mod netns;
mod options;
pub mod pebble;
mod procs;
pub mod rollout_view;
pub mod sim;
pub mod store;
pub mod supervise;
pub mod topology;

pub use launch::Launch;
pub use sim::{SimOptions, Simulation};
pub use topology::Topology;
