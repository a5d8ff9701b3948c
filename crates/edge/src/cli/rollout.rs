//! `portico config rollout`, `promote` and `abort`, and following a push to its end
//! (`config push --wait`).
//!
//! `promote` and `abort` do not go through the conductor: they load the rollout, apply the
//! command ([`Rollout::command`]) and save it by compare-and-swap; when a conductor saved it in
//! between, they read it again and apply the command to what it is now.

use super::{POLL, deadline, now_ms, refuse, state_code, view};
use portico::config::seen::seen;
use portico_core::rollout::{Command, Rollout};
use portico_store::{Expect, NodeStatus, Store, StoreError};
use std::process::ExitCode;
use std::time::Instant;

/// How many times promote or abort reads the rollout again after a lost compare-and-swap.
const ATTEMPTS: usize = 10;

/// `config rollout [--wait SECONDS]`: waits (up to SECONDS) for the rollout to end, then prints
/// it; exit code by its state (0 also when none was ever started).
pub async fn show(store: &Store, wait: Option<f64>) -> anyhow::Result<ExitCode> {
    let deadline = deadline(wait);
    loop {
        let Some(stored) = store.get_rollout().await? else {
            sayln!("rollout: none (no push has started one in this store)")?;
            return Ok(ExitCode::SUCCESS);
        };
        let r = &stored.rollout;
        if r.state.is_over() || Instant::now() >= deadline {
            print(store, r).await?;
            return Ok(state_code(&r.state));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Prints the whole rollout: state, settings, waves, nodes, verdicts.
async fn print(store: &Store, r: &Rollout) -> anyhow::Result<()> {
    let statuses = store.node_statuses().await?;
    let leases = store.registration_leases().await?;
    let now = now_ms();
    sayln!("{}", view::state_line(r, now))?;
    sayln!("{}", view::settings_line(r))?;
    if r.waves.is_empty() {
        sayln!("waves: none (promoted at once: no stable version or no node to judge it on)")?;
    } else {
        sayln!("waves:")?;
        for line in view::wave_lines(r, &statuses, now) {
            sayln!("{line}")?;
        }
        sayln!("nodes:")?;
        for line in view::node_lines(r, &statuses, &leases, now) {
            sayln!("{line}")?;
        }
    }
    sayln!("verdicts:")?;
    for rec in &r.log {
        sayln!("  {}", view::verdict(r, rec))?;
    }
    Ok(())
}

/// `config promote` or `config abort`.
#[derive(Debug, Clone, Copy)]
pub enum Verb {
    /// Pass the current wave now.
    Promote,
    /// Roll back now.
    Abort,
}

/// The registered nodes that look alive, as the rollout's reports (the next wave's members
/// come from them).
fn live_reports(
    statuses: &[NodeStatus],
    leases: &std::collections::BTreeMap<String, portico_store::LeaseLife>,
    now: u64,
) -> Vec<portico_core::rollout::NodeReport> {
    statuses
        .iter()
        .filter(|s| !seen(s, leases.get(&s.record.name), now).stale)
        .map(NodeStatus::report)
        .collect()
}

/// Carries out `verb` by `author` on the rollout in progress and saves it.
pub async fn command(store: &Store, verb: Verb, author: String) -> anyhow::Result<ExitCode> {
    let name = match verb {
        Verb::Promote => "promote",
        Verb::Abort => "abort",
    };
    for _ in 0..ATTEMPTS {
        let Some(stored) = store.get_rollout().await? else {
            return refuse(format_args!(
                "nothing to {name}: no rollout was ever started in this store"
            ));
        };
        let statuses = store.node_statuses().await?;
        let leases = store.registration_leases().await?;
        let now = now_ms();
        let reports = live_reports(&statuses, &leases, now);
        let mut r = stored.rollout.clone();
        let cmd = match verb {
            Verb::Promote => Command::Promote {
                author: author.clone(),
            },
            Verb::Abort => Command::Abort {
                author: author.clone(),
            },
        };
        let decisions = match r.command(cmd, &reports, now) {
            Ok(d) => d,
            Err(e) => return refuse(format_args!("nothing to {name}: {e}")),
        };
        match store
            .save_rollout(&r, Expect::ModRevision(stored.mod_revision))
            .await
        {
            Ok(_) => {
                for d in &decisions {
                    sayln!("{}", view::decision(&r, d))?;
                }
                sayln!("{}", view::state_line(&r, now))?;
                return Ok(ExitCode::SUCCESS);
            }
            // A conductor saved it in between: apply the command to what it is now.
            Err(StoreError::RolloutChanged { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    refuse(format_args!(
        "the rollout kept changing under `config {name}` ({ATTEMPTS} tries): try again"
    ))
}

/// Follows the rollout of `version` started at `started_at_ms` to its end, printing each
/// verdict after the first `shown`; exit 0 promoted, 4 rolled back or aborted. A store that
/// stops answering is waited for (said once on stderr).
pub async fn follow(
    store: &Store,
    version: &str,
    started_at_ms: u64,
    mut shown: usize,
) -> anyhow::Result<ExitCode> {
    let mut said_lost = false;
    loop {
        match store.get_rollout().await {
            Ok(Some(stored))
                if stored.rollout.target == version
                    && stored.rollout.started_at_ms == started_at_ms =>
            {
                let r = &stored.rollout;
                for rec in r.log.iter().skip(shown) {
                    sayln!("{}", view::verdict(r, rec))?;
                }
                shown = r.log.len();
                if r.state.is_over() {
                    sayln!("{}", view::state_line(r, now_ms()))?;
                    return Ok(state_code(&r.state));
                }
            }
            // Another rollout replaced it: it ended, its version record says how.
            Ok(_) => return ended(store, version).await,
            Err(e) if e.is_transient() => {
                if !said_lost {
                    eprintln!("warning: {e}; still waiting for the rollout of {version}");
                    said_lost = true;
                }
            }
            Err(e) => return Err(e.into()),
        }
        tokio::time::sleep(super::POLL).await;
    }
}

/// The outcome of `version`'s rollout once the rollout stored is another one.
async fn ended(store: &Store, version: &str) -> anyhow::Result<ExitCode> {
    use portico_core::rollout::Outcome;
    let outcome = store.get_version(version).await?.map(|v| v.record.outcome);
    sayln!(
        "the rollout of {version} ended: {}",
        outcome.map_or_else(|| "unknown".to_string(), |o| o.to_string())
    )?;
    Ok(match outcome {
        Some(Outcome::Promoted) => ExitCode::SUCCESS,
        Some(Outcome::RolledBack | Outcome::Aborted) => ExitCode::from(super::FAILED),
        _ => ExitCode::from(super::REFUSED),
    })
}
