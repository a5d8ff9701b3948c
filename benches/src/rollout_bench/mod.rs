//! The rollout benchmark (`make bench-rollout`): the three-region fleet (a three-member etcd
//! cluster, four store-following nodes, two in the canary's region so the three default waves
//! are all non-empty) under open-loop load while documents are pushed:
//!
//! - (a) a good document, default waves, `--bake 10`: time to promote, client errors;
//! - (b) a valid-but-wrong document (its pool points at a port nobody listens on), default
//!   gates: client errors and where they happened, the nodes that ever ran it, push → verdict,
//!   verdict → every node back on stable;
//! - (c) the same document written straight to `config`, as every push went before rollouts
//!   (kept only here): every node runs it until it is overwritten.
//!
//! Modules: [`watch`] (each node's running version over time, from `/status`), [`case`] (one
//! case: load, push, observation, figures), [`svg`] (the timeline), [`report`] (the table and
//! the anchors).

pub mod case;
pub mod report;
pub mod svg;
pub mod watch;

/// The nodes, `(name, region)`: the canary (first healthy by name) is `edge-ap-south-1`, the
/// second wave its region's other node, the third the rest.
pub const NODES: [(&str, &str); 4] = [
    ("edge-ap-south-1", "ap-south"),
    ("edge-ap-south-2", "ap-south"),
    ("edge-eu-west", "eu-west"),
    ("edge-us-east", "us-east"),
];
