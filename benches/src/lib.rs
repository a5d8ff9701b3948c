//! Shared plumbing for Portico's benchmark runners: finding peers, supervising processes, ports.

pub mod config_bench;
pub mod failover;
pub mod procs;
pub mod throughput;
