//! Helpers shared by Portico's test suites: free loopback ports, polling with a deadline, a
//! local etcd and raw HTTP/2 frames (also the hostile benchmark's) for every suite; with
//! feature `node`, in-process nodes and origins on those ports, a small HTTP client, TLS
//! material and a metrics scraper (tests/it).

pub mod etcd;
pub mod h2_frames;
pub mod port;
pub mod wait;

#[cfg(feature = "node")]
pub mod acme;
#[cfg(feature = "node")]
pub mod client;
#[cfg(feature = "node")]
pub mod metrics;
#[cfg(feature = "node")]
pub mod node;
#[cfg(feature = "node")]
pub mod seen;
#[cfg(feature = "node")]
pub mod tls;

pub use etcd::{etcd, etcd_in};
pub use port::{free_addr, free_addrs};
pub use wait::{eventually, eventually_blocking, poll, poll_blocking};

#[cfg(feature = "node")]
pub use client::{Http, Resp, raw, until_closed};
#[cfg(feature = "node")]
pub use metrics::Scrape;
#[cfg(feature = "node")]
pub use node::{
    FAST_PROBES, TestNode, one_pool, origin, origin_json, origin_pair, origin_with, store_tls_node,
};
#[cfg(feature = "node")]
pub use seen::{header, last_request};
