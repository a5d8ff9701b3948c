//! `portico config …`: the store's config from the command line (SPEC parts 2 and 3): push a
//! document and follow its health-gated rollout, promote or abort it, roll back to an earlier
//! promoted version, list and compare versions, and see every node.
//!
//! Exit codes: 0 done (promoted, converged); 1 refused or failed (every error one line on
//! stderr, nothing written); 3 not there yet (a rollout in progress or paused, nodes not on
//! the stable version); 4 rolled back or aborted.

#[macro_use]
pub mod output;
pub mod args;
mod push;
mod rollout;
mod status;
mod versions;
pub mod view;

pub use args::ConfigCommand;
use portico_core::rollout::State;
use portico_store::{Store, StoreUrl};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// How long a store request may take before the store counts as unreachable.
pub const STORE_TIMEOUT: Duration = Duration::from_secs(3);

/// Exit code: refused (nothing written) or failed.
pub const REFUSED: u8 = 1;
/// Exit code: not there yet (a rollout in progress or paused; nodes not on the stable version).
pub const PENDING: u8 = 3;
/// Exit code: the rollout was rolled back or aborted.
pub const FAILED: u8 = 4;

/// How often a waiting command reads the store again.
const POLL: Duration = Duration::from_millis(250);

/// Runs `portico config …` with the subcommand's `--store`, else `top_store`.
pub fn run(cmd: &ConfigCommand, top_store: Option<&str>) -> anyhow::Result<ExitCode> {
    let Some(url_text) = cmd.store().or(top_store) else {
        anyhow::bail!("give --store etcd://HOST:PORT[,HOST:PORT...]/PREFIX");
    };
    let url = parse_url(url_text)?;
    block_on(async {
        let store = Store::connect(&url, STORE_TIMEOUT)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        match cmd {
            ConfigCommand::Push(args) => push::push(&store, &url, args).await,
            ConfigCommand::Rollout { wait, .. } => rollout::show(&store, *wait).await,
            ConfigCommand::Promote { author, .. } => {
                rollout::command(&store, rollout::Verb::Promote, author.or_default()).await
            }
            ConfigCommand::Abort { author, .. } => {
                rollout::command(&store, rollout::Verb::Abort, author.or_default()).await
            }
            ConfigCommand::Rollback { version, .. } => {
                versions::rollback(&store, version.as_deref()).await
            }
            ConfigCommand::History { limit, .. } => versions::history(&store, *limit).await,
            ConfigCommand::Diff { a, b, .. } => {
                versions::diff(&store, a.as_deref(), b.as_deref()).await
            }
            ConfigCommand::Get { version, .. } => {
                versions::get(&store, &url, version.as_deref()).await
            }
            ConfigCommand::Status { wait, .. } => status::status(&store, *wait).await,
        }
    })?
}

/// Parses `--store`, the error naming the flag.
pub fn parse_url(url: &str) -> anyhow::Result<StoreUrl> {
    url.parse::<StoreUrl>()
        .map_err(|e| anyhow::anyhow!("--store {url}: {e}"))
}

/// Runs `f` on a runtime of its own, then lets the runtime go without waiting for a name
/// lookup still hanging on its blocking threads (each is given up on after a timeout).
pub fn block_on<F: std::future::Future>(f: F) -> anyhow::Result<F::Output> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| anyhow::anyhow!("cannot start a runtime: {e}"))?;
    let output = rt.block_on(f);
    rt.shutdown_background();
    Ok(output)
}

/// Prints `error: WHY` (one line) and answers exit code 1.
fn refuse(why: impl std::fmt::Display) -> anyhow::Result<ExitCode> {
    eprintln!("error: {why}");
    Ok(ExitCode::from(REFUSED))
}

/// The exit code a rollout's state stands for: 0 promoted, 3 in progress or paused, 4 rolled
/// back or aborted.
fn state_code(state: &State) -> ExitCode {
    match state {
        State::Promoted => ExitCode::SUCCESS,
        State::InProgress | State::Paused(_) => ExitCode::from(PENDING),
        State::RolledBack(_) | State::Aborted => ExitCode::from(FAILED),
    }
}

/// The deadline of `--wait SECONDS` (none given: now). `--wait inf` (or any huge value) waits
/// for as long as a deadline can be, never panics.
fn deadline(wait: Option<f64>) -> Instant {
    let wait = Duration::try_from_secs_f64(wait.unwrap_or(0.0).max(0.0)).unwrap_or(Duration::MAX);
    let far = Duration::from_secs(100 * 365 * 24 * 3600);
    Instant::now()
        .checked_add(wait)
        .unwrap_or_else(|| Instant::now() + far)
}

/// Now, in milliseconds since the epoch.
fn now_ms() -> u64 {
    portico_store::unix_millis(std::time::SystemTime::now())
}
