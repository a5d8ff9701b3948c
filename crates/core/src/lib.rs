//! Portico's routing brain: configuration, route matching, health windows, latency, origin
//! selection, passive ejection, retry policy, health-gated rollout, rule sets and rate limits.
//! Pure code: no sockets, time passed in.

pub mod acme;
pub mod affinity;
pub mod cidr;
pub mod compression;
pub mod config;
pub mod ejection;
pub mod head_rules;
pub mod health;
pub mod hedge;
pub mod latency;
pub mod lifecycle;
pub mod pool_state;
pub mod rate_limit;
pub mod reload;
pub mod retry;
pub mod rollout;
pub mod routing;
pub mod rules;
pub mod selection;
pub mod tls_tickets;
