//! The Portico edge node: Pingora wiring around `portico-core`.

pub mod admin;
pub mod headers;
pub mod metrics;
pub mod node;
pub mod pool;
pub mod probe;
pub mod proxy;
pub mod selector;
pub mod shutdown;
pub mod state;
pub mod summary;

pub use node::{Node, NodeOptions, RunningNode};
