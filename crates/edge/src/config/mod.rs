//! Config documents on a node: the pipeline that prepares one, and origin name resolution.

pub mod prepare;
pub mod resolve;
