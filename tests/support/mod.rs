//! Helpers for Portico's integration tests: in-process nodes and origins on ports chosen at
//! run time, a small HTTP client, polling with a deadline, and a metrics scraper.

pub mod client;
pub mod metrics;
pub mod node;
pub mod wait;

pub use client::{Http, Resp};
pub use metrics::Scrape;
pub use node::{FAST_PROBES, TestNode, free_addr, one_pool, origin, origin_json, origin_with};
pub use wait::eventually;
