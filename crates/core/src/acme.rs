//! Managed certificates (SPEC part 3, "Managed certificates (ACME)"): which certificates a node
//! must order, when, and which node of a shared store orders. Pure code, wall-clock time passed
//! in as [`UnixMillis`] (a certificate's validity and a lease mean the same on every node); the
//! edge talks to the CA and the store and reports back.
//!
//! - [`schedule`]: when a held certificate is renewed and how long a failed order waits;
//! - [`machine`]: one certificate's state ([`Managed`]): held, in flight, failures, and the
//!   next [`Step`];
//! - [`lease`]: the order lease of nodes sharing a store: one orderer at a time, taken over
//!   when its holder stops renewing it.
//!
//! Choices where the SPEC is silent are listed in each module's doc.

pub mod lease;
pub mod machine;
pub mod schedule;

pub use lease::{Claim, Lease};
pub use machine::{Held, Managed, Step, Why};
pub use schedule::{Failure, renew_at, retry_delay};

pub use crate::rollout::UnixMillis;

/// One day in milliseconds.
pub const DAY_MS: UnixMillis = 86_400_000;

#[cfg(test)]
mod tests;
