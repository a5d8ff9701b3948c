//! `portico config status [--wait SECONDS]`: the stable version, the rollout line, then one
//! line per registered node with when it was last heard from.

use super::{POLL, deadline, now_ms, view};
use portico_core::config::fingerprint;
use portico_store::Store;
use std::process::ExitCode;
use std::time::Instant;

/// One line per node; 0 when every node runs the stable version (waiting up to `wait`
/// seconds for it), 3 otherwise.
pub async fn status(store: &Store, wait: Option<f64>) -> anyhow::Result<ExitCode> {
    let deadline = deadline(wait);
    loop {
        let stored = store.get_config().await?.map(|d| fingerprint(&d.text));
        let nodes = store.node_statuses().await?;
        let converged = !nodes.is_empty()
            && stored
                .as_deref()
                .is_some_and(|v| nodes.iter().all(|n| n.record.version == v));
        if converged || Instant::now() >= deadline {
            let rollout = store.get_rollout().await?;
            let leases = store.registration_leases().await?;
            let now = now_ms();
            sayln!("stored version: {}", stored.as_deref().unwrap_or("(none)"))?;
            match &rollout {
                Some(r) => sayln!("{}", view::state_line(&r.rollout, now))?,
                None => sayln!("rollout: none")?,
            }
            sayln!(
                "{:<24} {:<12} {:<18} {:<12} {:<8} current",
                "node",
                "region",
                "version",
                "last seen",
                "healthy"
            )?;
            for n in &nodes {
                let seen = view::seen(n, leases.get(&n.record.name), now);
                let current = stored.as_deref() == Some(n.record.version.as_str());
                sayln!(
                    "{:<24} {:<12} {:<18} {:<12} {:<8} {}",
                    n.record.name,
                    n.record.region,
                    n.record.version,
                    view::seen_text(seen),
                    view::health(n, seen),
                    if current { "yes" } else { "NO" }
                )?;
            }
            if nodes.is_empty() {
                sayln!("(no node is registered)")?;
            }
            return Ok(if converged {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(super::PENDING)
            });
        }
        tokio::time::sleep(POLL).await;
    }
}
