//! The request path's own parts: the per-request state, what comes in, every edit of what
//! goes out (the rules' edits in `rule_edits`), the replies the node writes itself, the rule
//! sets' policy, the lifecycle's steps and the decision trace.

pub mod answers;
pub mod ctx;
pub mod inbound;
pub mod outbound;
pub mod policy;
pub mod rule_edits;
pub mod step;
pub mod trace;
