//! `make fuzz`: a black-box mutation fuzzer against a running node. It sends mutated request
//! heads and bodies and checks that the node never crashes, never hangs and never forwards
//! what the request-head rules refuse.

pub mod cases;
pub mod oracle;
pub mod run;
