//! Config documents on a node: the pipeline that prepares one (origin names resolved in one
//! place), applying it to the running node, starting a push's rollout, and the `--check`
//! summary.

pub mod prepare;
pub mod push;
pub mod reload;
pub mod resolve;
pub mod seen;
pub mod summary;
