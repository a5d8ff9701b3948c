//! Making a config change and timing it: an in-process store write, `portico config push`, or
//! a rewritten file and SIGHUP; then every node's `/status` is polled until it runs the new
//! version. A series of changes alternates the two documents.

use super::docs::Variant;
use super::ms;
use super::status::{Seen, StatusClient};
use anyhow::{Context, Result, bail};
use portico_store::{Expect, Store};
use serde::Serialize;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// How a change is made.
pub enum Trigger {
    /// `Store::put_config(text, Expect::Any)` from this process: one etcd put, no validation.
    Store(Box<Store>),
    /// `portico config push FILE --waves rest --bake 0 --min-requests 0 --store URL`: a new
    /// process that connects, validates, writes the version and starts its rollout to every
    /// node at once (SPEC part 3; the nodes' conductor promotes it once every node runs it).
    Cli {
        /// The `portico` binary.
        bin: PathBuf,
        /// `--store`.
        url: String,
        /// Where each variant's document is written before it is pushed (A, B).
        files: [PathBuf; 2],
    },
    /// The node's `--config` file is replaced (write + rename), then `kill -HUP PID`.
    Sighup {
        /// The node.
        pid: u32,
        /// Its config file.
        path: PathBuf,
    },
}

impl Trigger {
    /// A short description for the report.
    pub fn describe(&self) -> &'static str {
        match self {
            Trigger::Store(_) => {
                "in-process etcd put (Store::put_config), clock started just before it"
            }
            Trigger::Cli { .. } => {
                "`portico config push FILE --waves rest --bake 0 --min-requests 0 --store URL` (process start, connect, validate, start the rollout to every node at once), clock started just before the spawn"
            }
            Trigger::Sighup { .. } => {
                "file replaced (write + rename), then `kill -HUP` (a kill(1) process), clock started just before the write"
            }
        }
    }

    /// The text change `index` pushes of `doc`. A version promoted before cannot be pushed
    /// again (`config rollback` makes it stable), so through the CLI each change's document
    /// gets its own version: the same JSON, `index + 1` newlines after it.
    fn text(&self, doc: &str, index: usize) -> String {
        match self {
            Trigger::Cli { .. } => format!("{doc}{}", "\n".repeat(index + 1)),
            Trigger::Store(_) | Trigger::Sighup { .. } => doc.to_string(),
        }
    }

    /// Before a change through the CLI: waits (up to `timeout`) until the previous change's
    /// rollout has ended (its conductor promotes it once every node runs it), since a push
    /// while one is in progress is refused.
    async fn settle(&self, timeout: Duration) -> Result<()> {
        let Trigger::Cli { url, .. } = self else {
            return Ok(());
        };
        let url: portico_store::StoreUrl = url.parse().map_err(|e| anyhow::anyhow!("{e}"))?;
        let store = Store::connect(&url, Duration::from_secs(3))
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let deadline = Instant::now() + timeout;
        loop {
            let stored = store
                .get_rollout()
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            match stored {
                Some(r) if !r.rollout.state.is_over() => {
                    if Instant::now() >= deadline {
                        bail!(
                            "the rollout of {} did not end within {} s ({})",
                            r.rollout.target,
                            timeout.as_secs(),
                            r.rollout.state
                        );
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                _ => return Ok(()),
            }
        }
    }

    async fn fire(&self, text: &str, variant: Variant) -> Result<()> {
        match self {
            Trigger::Store(store) => {
                store
                    .put_config(text, Expect::Any)
                    .await
                    .map_err(|e| anyhow::anyhow!("put: {e}"))?;
            }
            Trigger::Cli { bin, url, files } => {
                let file = &files[variant.preferred()];
                std::fs::write(file, text)
                    .with_context(|| format!("cannot write {}", file.display()))?;
                let mut cmd = Command::new(bin);
                cmd.arg("config")
                    .arg("push")
                    .arg(file)
                    .args(["--waves", "rest", "--bake", "0", "--min-requests", "0"])
                    .arg("--store")
                    .arg(url)
                    .env("RUST_LOG", "warn");
                let out = tokio::task::spawn_blocking(move || cmd.output())
                    .await?
                    .context("cannot run portico config push")?;
                if !out.status.success() {
                    bail!(
                        "portico config push failed ({}): {}",
                        out.status,
                        String::from_utf8_lossy(&out.stderr)
                    );
                }
            }
            Trigger::Sighup { pid, path } => {
                let tmp = path.with_extension("json.tmp");
                std::fs::write(&tmp, text)?;
                std::fs::rename(&tmp, path)?;
                let mut cmd = Command::new("kill");
                cmd.arg("-HUP").arg(pid.to_string());
                let status = tokio::task::spawn_blocking(move || cmd.status())
                    .await?
                    .context("cannot run kill")?;
                if !status.success() {
                    bail!("kill -HUP {pid} failed ({status})");
                }
            }
        }
        Ok(())
    }
}

/// One change and when each node ran it.
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    /// 0-based.
    pub index: usize,
    /// The document written.
    pub variant: Variant,
    /// Its version.
    pub version: String,
    /// When the change started (just before the write), ms since the case's epoch.
    pub at_ms: f64,
    /// How long the write itself took, ms.
    pub write_ms: f64,
    /// Per node (in fleet order): when it was seen running the version; `None`: not within
    /// the timeout.
    pub nodes: Vec<Option<Seen>>,
    /// When the last node was seen running it, ms after `at_ms` (the propagation time).
    pub all_ms: Option<f64>,
    /// That node's uncertainty: first answer with the new version minus the last poll sent
    /// that still showed the old one, ms.
    pub resolution_ms: Option<f64>,
}

/// What a series needs: the trigger, the two documents, the nodes, the polling.
pub struct Series<'a> {
    /// How changes are made.
    pub trigger: &'a Trigger,
    /// The documents of variants A and B.
    pub docs: [&'a str; 2],
    /// The variant every node runs when the series starts.
    pub start: Variant,
    /// Every node's admin listener.
    pub admins: Vec<SocketAddr>,
    /// Poll interval.
    pub poll: Duration,
    /// How long a change may take before it counts as not propagated.
    pub timeout: Duration,
    /// Times are relative to this.
    pub epoch: Instant,
}

/// When the next change starts.
#[derive(Debug, Clone, Copy)]
pub enum Pace {
    /// After the previous one propagated, plus a pause varying between `min` and `min +
    /// spread` (so changes do not lock onto a timer's phase).
    Settled {
        /// Shortest pause.
        min: Duration,
        /// Added, varying from change to change.
        spread: Duration,
    },
    /// On a fixed schedule: change `i` at `first + i * every` (later only if the previous
    /// one has not propagated yet).
    Schedule {
        /// When the first change is made.
        first: Instant,
        /// Between two changes.
        every: Duration,
    },
}

impl Series<'_> {
    /// Makes one change and waits until every node runs it (or the timeout).
    pub async fn change(&self, index: usize, status: &StatusClient) -> Result<Change> {
        let variant = self.start.nth_change(index);
        self.trigger.settle(self.timeout).await?;
        let text = self.trigger.text(self.docs[variant.preferred()], index);
        let text = text.as_str();
        let version = portico_core::config::fingerprint(text);
        let t0 = Instant::now();
        // The pollers start with the write, so the last answer with the old version bounds
        // the switch from below even when it happens before the write call returns.
        let watch = {
            let (status, admins, want) = (status.clone(), self.admins.clone(), version.clone());
            let (poll, timeout) = (self.poll, self.timeout);
            tokio::spawn(async move { status.watch_all(&admins, &want, t0, poll, timeout).await })
        };
        let fired = self.trigger.fire(text, variant).await;
        let write_ms = ms(t0.elapsed());
        if let Err(e) = fired {
            watch.abort();
            return Err(e);
        }
        let nodes = watch.await?;
        let slowest = if nodes.iter().all(Option::is_some) {
            nodes
                .iter()
                .flatten()
                .max_by(|a, b| a.upper_ms.total_cmp(&b.upper_ms))
                .copied()
        } else {
            None
        };
        Ok(Change {
            index,
            variant,
            version,
            at_ms: ms(t0.saturating_duration_since(self.epoch)),
            write_ms,
            nodes,
            all_ms: slowest.map(|s| s.upper_ms),
            resolution_ms: slowest.map(|s| s.upper_ms - s.lower_ms),
        })
    }

    /// Makes `n` changes paced by `pace`, alternating away from [`Series::start`];
    /// stops early after 3 changes that did not propagate.
    pub async fn run(&self, n: usize, pace: Pace) -> Result<Vec<Change>> {
        let status = StatusClient::new();
        let mut out = Vec::with_capacity(n);
        let mut failures = 0;
        for i in 0..n {
            match pace {
                Pace::Settled { min, spread } if i > 0 => {
                    // A fixed, reproducible sequence of pauses spread over [min, min + spread].
                    let frac = ((i as u64 * 37) % 101) as f64 / 100.0;
                    tokio::time::sleep(min + spread.mul_f64(frac)).await;
                }
                Pace::Schedule { first, every } => {
                    tokio::time::sleep_until((first + every * i as u32).into()).await;
                }
                Pace::Settled { .. } => {}
            }
            let change = self.change(i, &status).await?;
            if change.all_ms.is_none() {
                failures += 1;
            }
            out.push(change);
            if failures >= 3 {
                eprintln!(
                    "    3 changes did not reach every node within {:?}: stopping this series",
                    self.timeout
                );
                break;
            }
        }
        Ok(out)
    }
}
