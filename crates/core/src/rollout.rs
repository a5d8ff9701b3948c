//! Health-gated rollout (SPEC part 3): a pushed document goes to the nodes in waves; each wave
//! bakes; gates judge the nodes that run it against their own behaviour before the change; a
//! failed gate rolls every node back to the stable document at once.
//!
//! Pure code, time passed in as [`UnixMillis`] so the state survives a change of conductor:
//! - [`plan`]: waves as selectors (`node:NAME`, `region:NAME`, `rest`), the default plan around
//!   the canary, which wave each node belongs to;
//! - [`gates`]: what nodes report (per-version figures, the baseline frozen at their switch),
//!   the settings and gates 1–5;
//! - [`counters`]: the node's side: what it counts per version and the baseline it freezes at a
//!   switch, ready for its report;
//! - [`machine`]: the [`Rollout`] state (serde, stored at `PREFIX/rollout`), its decisions,
//!   `promote`/`abort`, and which version each node runs.
//!
//! Each module's doc lists the choices made where the SPEC is silent.

pub mod counters;
pub mod gates;
pub mod machine;
pub mod plan;

pub use counters::{VersionCounters, is_error};
pub use gates::{Figures, GateFailure, Lost, NodeReport, Rejection, Settings, SwitchBaseline};
pub use machine::{
    Assignment, Command, Decision, Member, MemberFigures, Outcome, PassedBy, PauseReason, Push,
    Record, Rollout, State, Wave, WaveFigures, check_rollback,
};
pub use plan::{Selector, parse_waves};

/// A time: milliseconds since the UNIX epoch (wall clock, so it means the same on every node).
pub type UnixMillis = u64;

/// Why a push's plan or settings are refused, or a command cannot be carried out.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RolloutError {
    /// A wave that is not `node:NAME`, `region:NAME` or `rest`.
    #[error("wave `{0}`: a wave is `node:NAME`, `region:NAME` or `rest`")]
    BadSelector(String),
    /// An empty `--waves`.
    #[error("no waves: give at least one of `node:NAME`, `region:NAME`, `rest`")]
    NoWaves,
    /// A selector named twice.
    #[error("wave `{0}` is named twice")]
    DuplicateWave(String),
    /// A wave after `rest`, which takes every node left.
    #[error("wave `{0}` follows `rest`, which takes every node left: put `rest` last")]
    AfterRest(String),
    /// `node:NAME` or `--canary NAME` naming no registered node.
    #[error("no registered node is named `{0}`")]
    UnknownNode(String),
    /// `--canary` with `--waves`.
    #[error(
        "--canary picks the first wave of the default plan; with --waves, name it there (node:NAME)"
    )]
    CanaryWithWaves,
    /// `--waves` matching none of the registered nodes.
    #[error("no registered node belongs to any of the waves")]
    NoNodeInPlan,
    /// A negative or non-finite `--max-error-increase`.
    #[error(
        "--max-error-increase {0}: must be a ratio of 0 or more (0.01 is one percentage point)"
    )]
    BadErrorIncrease(f64),
    /// A push of the version that is already stable.
    #[error("version {0} is already stable: nothing to roll out")]
    AlreadyStable(String),
    /// `config rollback` to a version that was never promoted.
    #[error("version {version} is {outcome}: only a promoted version can be rolled back to")]
    NotPromoted {
        /// The version asked for.
        version: String,
        /// Its outcome (`unknown`: the store does not hold it).
        outcome: String,
    },
    /// `promote` or `abort` after the rollout ended.
    #[error("the rollout of {target} is over ({state})")]
    Over {
        /// The rollout's target version.
        target: String,
        /// Its state string.
        state: String,
    },
}

#[cfg(test)]
mod tests;
