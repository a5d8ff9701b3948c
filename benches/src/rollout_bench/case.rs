//! One case: open-loop load over every node, each node's version watched, a warm-up, the push,
//! the end (the rollout's verdict and every node on the final version, or, for the direct
//! write, the exposure and the restore), a tail; then the figures.

use super::watch::{Timeline, watch};
use crate::config_bench::fleet::NodeInfo;
use crate::config_bench::load::{self, Sent};
use crate::config_bench::ms;
use crate::config_bench::status::StatusClient;
use anyhow::{Context, Result, anyhow, bail};
use portico_core::config::fingerprint;
use portico_core::rollout::Rollout;
use portico_store::{Expect, Store};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How the document is pushed.
pub enum Push<'a> {
    /// `portico config push FILE --store URL ARGS…`, then the rollout is followed in the store.
    Cli {
        /// The `portico` binary.
        bin: &'a Path,
        /// `--store`.
        url: String,
        /// The document's file.
        file: PathBuf,
        /// The rollout flags.
        args: Vec<String>,
    },
    /// Written straight to `config` (every push before rollouts), then `restore` is written
    /// back after `exposure` (the operator noticing and pushing again).
    Direct {
        /// The document written back.
        restore: String,
        /// How long the document stays.
        exposure: Duration,
    },
}

/// What every case shares.
pub struct Setup<'a> {
    /// The fleet's nodes, in order.
    pub nodes: &'a [NodeInfo],
    /// The store.
    pub store: &'a Store,
    /// Requests per second over all nodes.
    pub rate: u32,
    /// Load before the push.
    pub warmup: Duration,
    /// Load after every node runs the final version.
    pub tail: Duration,
    /// The longest a rollout may take to end.
    pub rollout_timeout: Duration,
    /// Client timeout per request.
    pub client_timeout: Duration,
    /// `/status` poll interval.
    pub poll: Duration,
}

/// The figures of one case.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Figures {
    /// How the rollout ended (`promoted`, `rolled back: …`), or `written to config`.
    pub outcome: String,
    /// Requests sent from the push to the end of the case.
    pub requests: usize,
    /// Of which not answered 200 (non-200 answers, transport errors, timeouts).
    pub errors: usize,
    /// `errors / requests`.
    pub error_share: f64,
    /// Errors before the push (the warm-up; should be 0).
    pub errors_before_push: usize,
    /// Errors per node, in fleet order (from the push on).
    pub errors_by_node: Vec<usize>,
    /// The canary (the first wave's node), if a rollout ran.
    pub canary: Option<String>,
    /// Errors on every node but the canary.
    pub errors_outside_canary: usize,
    /// Nodes seen running the pushed document.
    pub nodes_ran_target: Vec<String>,
    /// When each started wave started, ms after the push.
    pub wave_starts_ms: Vec<f64>,
    /// Push → the rollout's verdict (promotion or rollback), ms, by the store's times.
    pub push_to_verdict_ms: Option<f64>,
    /// Verdict → the last node seen back on the final version, ms.
    pub verdict_to_all_final_ms: Option<f64>,
    /// Push → every node seen on the final version, ms.
    pub push_to_all_final_ms: Option<f64>,
}

/// One case's outcome: figures and what they were computed from.
#[derive(Debug, Clone, Serialize)]
pub struct CaseResult {
    /// Its name.
    pub case: String,
    /// How the push was made (command line or description).
    pub push: String,
    /// The pushed version.
    pub target: String,
    /// The version every node runs at the end.
    pub final_version: String,
    /// When the push started, ms since the case's epoch.
    pub push_ms: f64,
    /// When the verdict was taken, ms since the case's epoch.
    pub verdict_ms: Option<f64>,
    /// The figures.
    pub figures: Figures,
    /// Each node's versions over time.
    pub timelines: Vec<Timeline>,
    /// Every request.
    #[serde(skip)]
    pub requests: Vec<Sent>,
    /// The rollout as stored at the end.
    pub rollout: Option<Rollout>,
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Runs the case `name`: pushes `text` (its version is its fingerprint) while `stable` runs.
pub async fn run(
    setup: &Setup<'_>,
    name: &str,
    text: &str,
    stable: &str,
    push: Push<'_>,
) -> Result<CaseResult> {
    let target = fingerprint(text);
    let epoch = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let proxies = setup.nodes.iter().map(|n| n.proxy).collect();
    let admins: Vec<_> = setup.nodes.iter().map(|n| n.admin).collect();
    let load = {
        let stop = stop.clone();
        let (rate, timeout) = (setup.rate, setup.client_timeout);
        tokio::spawn(async move {
            load::open_loop_until(
                proxies,
                rate,
                Duration::from_secs(3600),
                timeout,
                epoch,
                epoch,
                &stop,
            )
            .await
        })
    };
    let watcher = tokio::spawn(watch(admins.clone(), setup.poll, epoch, stop.clone()));
    tokio::time::sleep(setup.warmup).await;
    let push_ms = ms(epoch.elapsed());
    let push_unix = unix_ms();
    let outcome = drive(setup, &target, text, stable, push, &admins).await;
    tokio::time::sleep(setup.tail).await;
    stop.store(true, Ordering::Relaxed);
    let requests = load.await.context("load task")?;
    let timelines = watcher.await.context("watch task")?;
    let (shown, rollout, final_version) = outcome?;
    let verdict_ms = rollout
        .as_ref()
        .and_then(|r| r.ended_at_ms)
        .map(|end| push_ms + end.saturating_sub(push_unix) as f64);
    let figures = figures(
        setup.nodes,
        &requests,
        &timelines,
        rollout.as_ref(),
        &target,
        &final_version,
        push_ms,
        verdict_ms,
    );
    Ok(CaseResult {
        case: name.to_string(),
        push: shown,
        target,
        final_version,
        push_ms,
        verdict_ms,
        figures,
        timelines,
        requests,
        rollout,
    })
}

/// Makes the push and waits for its end; returns how it was made, the rollout at the end and
/// the version every node runs then.
async fn drive(
    setup: &Setup<'_>,
    target: &str,
    text: &str,
    stable: &str,
    push: Push<'_>,
    admins: &[std::net::SocketAddr],
) -> Result<(String, Option<Rollout>, String)> {
    let status = StatusClient::new();
    match push {
        Push::Cli {
            bin,
            url,
            file,
            args,
        } => {
            let mut cmd = Command::new(bin);
            cmd.arg("config")
                .arg("push")
                .arg(&file)
                .arg("--store")
                .arg(&url)
                .args(&args)
                .env("RUST_LOG", "warn");
            let shown = format!(
                "portico config push {} --store {url} {}",
                file.file_name()
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                args.join(" ")
            );
            let out = tokio::task::spawn_blocking(move || cmd.output())
                .await?
                .context("cannot run portico config push")?;
            if !out.status.success() {
                bail!(
                    "{shown} failed ({}): {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            let deadline = Instant::now() + setup.rollout_timeout;
            let rollout = loop {
                let stored = setup
                    .store
                    .get_rollout()
                    .await
                    .map_err(|e| anyhow!("reading the rollout: {e}"))?;
                if let Some(s) = stored
                    && s.rollout.target == target
                    && s.rollout.state.is_over()
                {
                    break s.rollout;
                }
                if Instant::now() > deadline {
                    bail!(
                        "the rollout of {target} did not end within {} s",
                        setup.rollout_timeout.as_secs()
                    );
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            };
            let final_version = match rollout.state {
                portico_core::rollout::State::Promoted => target.to_string(),
                _ => stable.to_string(),
            };
            status
                .wait_all(admins, &final_version, Duration::from_secs(15))
                .await?;
            Ok((shown, Some(rollout), final_version))
        }
        Push::Direct { restore, exposure } => {
            setup
                .store
                .put_config(text, Expect::Any)
                .await
                .map_err(|e| anyhow!("writing config: {e}"))?;
            tokio::time::sleep(exposure).await;
            setup
                .store
                .put_config(&restore, Expect::Any)
                .await
                .map_err(|e| anyhow!("writing config back: {e}"))?;
            let final_version = fingerprint(&restore);
            status
                .wait_all(admins, &final_version, Duration::from_secs(15))
                .await?;
            Ok((
                format!(
                    "written to config (as before rollouts), overwritten after {} s",
                    exposure.as_secs()
                ),
                None,
                final_version,
            ))
        }
    }
}

fn is_error(r: &Sent) -> bool {
    r.status != 200 || r.error.is_some()
}

/// The figures from what was seen.
#[allow(clippy::too_many_arguments)]
pub fn figures(
    nodes: &[NodeInfo],
    requests: &[Sent],
    timelines: &[Timeline],
    rollout: Option<&Rollout>,
    target: &str,
    final_version: &str,
    push_ms: f64,
    verdict_ms: Option<f64>,
) -> Figures {
    let after: Vec<&Sent> = requests.iter().filter(|r| r.at_ms >= push_ms).collect();
    let mut errors_by_node = vec![0; nodes.len()];
    for r in after.iter().filter(|r| is_error(r)) {
        if let Some(e) = errors_by_node.get_mut(r.target) {
            *e += 1;
        }
    }
    let errors: usize = errors_by_node.iter().sum();
    let canary = rollout.and_then(|r| {
        r.waves
            .iter()
            .find(|w| !w.members.is_empty())
            .and_then(|w| w.members.first())
            .map(|m| m.name.clone())
    });
    let errors_outside_canary = nodes
        .iter()
        .zip(&errors_by_node)
        .filter(|(n, _)| Some(&n.name) != canary.as_ref())
        .map(|(_, e)| e)
        .sum();
    let nodes_ran_target = nodes
        .iter()
        .zip(timelines)
        .filter(|(_, t)| t.ran(target))
        .map(|(n, _)| n.name.clone())
        .collect();
    let push_unix = rollout.map(|r| r.started_at_ms);
    let wave_starts_ms = rollout
        .map(|r| {
            r.waves
                .iter()
                .filter_map(|w| w.started_at_ms)
                .filter_map(|s| push_unix.map(|p| s.saturating_sub(p) as f64))
                .collect()
        })
        .unwrap_or_default();
    let settled: Option<f64> = timelines
        .iter()
        .map(|t| t.settled_on(final_version, verdict_ms.unwrap_or(push_ms)))
        .try_fold(f64::MIN, |acc, s| s.map(|s| acc.max(s)));
    Figures {
        outcome: rollout.map_or_else(|| "written to config".to_string(), |r| r.state.to_string()),
        requests: after.len(),
        errors,
        error_share: if after.is_empty() {
            0.0
        } else {
            errors as f64 / after.len() as f64
        },
        errors_before_push: requests
            .iter()
            .filter(|r| r.at_ms < push_ms && is_error(r))
            .count(),
        errors_by_node,
        canary,
        errors_outside_canary,
        nodes_ran_target,
        wave_starts_ms,
        push_to_verdict_ms: verdict_ms.map(|v| v - push_ms),
        verdict_to_all_final_ms: verdict_ms.and_then(|v| settled.map(|s| (s - v).max(0.0))),
        push_to_all_final_ms: settled.map(|s| s - push_ms),
    }
}
