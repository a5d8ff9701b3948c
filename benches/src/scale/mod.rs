//! The scale benchmark (issue 19): what one node costs as origins and routes grow — CPU to
//! start probing, idle CPU, memory, reload time (settled and while probes start, file and
//! store), latency — beside HAProxy with the same servers and checks and nginx for memory
//! and reloads.
//!
//! - [`configs`]: the origin nginx on N loopback addresses, and every proxy's config.
//! - [`probe`]: reading a proxy from outside (log lines, HTTP, HAProxy's stats socket, /proc).
//! - [`origins`]: the origins rows.
//! - [`routes`]: the routes rows (wrk, pinned).
//! - [`report`]: the tables and the targets with PASS/FAIL.

pub mod configs;
pub mod origins;
pub mod probe;
pub mod report;
pub mod routes;
