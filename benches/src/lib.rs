//! Shared plumbing for Portico's benchmark runners: finding peers, supervising processes, ports.

pub mod config_bench;
pub mod failover;
pub mod hostile;
pub mod procs;
pub mod rollout_bench;
pub mod rules_bench;
pub mod scale;
pub mod soak;
pub mod throughput;
pub mod tls_bench;
