//! Config documents on a node: the pipeline that prepares one (origin names resolved in one
//! place), applying it to the running node, starting a push's rollout, following the store,
//! and the `--check` summary.

pub mod follow;
pub mod prepare;
pub mod push;
pub mod reload;
pub mod resolve;
pub mod seen;
pub mod summary;
