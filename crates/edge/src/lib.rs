//! The Portico edge node: Pingora wiring around `portico-core`.

pub mod access_log;
pub mod acme;
pub mod admin;
pub mod admin_reply;
pub mod classify;
pub mod client_cert;
pub mod compression;
pub mod config;
pub mod config_api;
pub mod control;
pub mod edge_app;
pub mod h2_conn;
pub mod hedged;
pub mod limits;
pub mod live_pool;
pub mod metrics;
pub mod node;
pub mod origin_tls;
pub mod pem_files;
pub mod probe;
pub mod probe_connector;
pub mod proxy;
pub mod rate_limits;
pub mod request;
pub mod request_log;
pub(crate) mod response_options;
pub mod shutdown;
pub mod snapshot;
pub mod state;
pub mod store_link;
pub mod tls;
pub mod tls_accept;
pub mod tls_tickets;
pub mod upstream;
pub mod watchdog;

pub use node::{Node, NodeOptions, RunningNode, StartError};
