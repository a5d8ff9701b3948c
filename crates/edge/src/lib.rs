//! The Portico edge node: Pingora wiring around `portico-core`.

pub mod access_log;
pub mod admin;
pub mod admin_reply;
pub mod checks;
pub mod classify;
pub mod config_api;
pub mod control;
pub mod decision;
pub mod error_page;
pub mod follow;
pub mod forward;
pub mod headers;
pub mod hedged;
pub mod limits;
pub mod live_pool;
pub mod metrics;
pub mod node;
pub mod probe;
pub mod probe_connector;
pub mod proxy;
pub mod reload;
pub mod request;
pub mod request_log;
pub mod shutdown;
pub mod snapshot;
pub mod state;
pub mod summary;
pub mod tls;
pub mod watchdog;

pub use node::{Node, NodeOptions, RunningNode};
