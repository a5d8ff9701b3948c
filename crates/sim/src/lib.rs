//! `portico-sim`: several regions on one machine — origins that answer with each region's round
//! trip, one Portico edge node per region on one shared config, and anycast-style entries that
//! send each region's clients to the nearest healthy node.

pub mod announce;
pub mod bench;
pub mod entry;
pub mod http;
pub mod launch;
pub mod sim;
pub mod topology;

pub use launch::Launch;
pub use sim::{SimOptions, Simulation};
pub use topology::Topology;
