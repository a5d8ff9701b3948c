//! Each node's running version over a case: `/status` polled on every node every few tens of
//! milliseconds until stopped, kept as the list of changes.

use crate::config_bench::ms;
use crate::config_bench::status::StatusClient;
use serde::Serialize;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// A node seen running `version` from `at_ms` (the first answer showing it; the previous
/// poll, `after_ms`, still showed another or none).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Switch {
    /// The version.
    pub version: String,
    /// First seen, ms since the case's epoch.
    pub at_ms: f64,
    /// The poll before, ms since the case's epoch (the switch happened in between).
    pub after_ms: f64,
}

/// One node's versions over the case, oldest first.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Timeline {
    /// Every change seen (the first entry is the version at the start).
    pub switches: Vec<Switch>,
}

impl Timeline {
    /// Whether the node was ever seen running `version`.
    pub fn ran(&self, version: &str) -> bool {
        self.switches.iter().any(|s| s.version == version)
    }

    /// When the node was first seen on `version` at or after `from_ms` and stayed on it
    /// until the end; `None` if it was not on it at the end.
    pub fn settled_on(&self, version: &str, from_ms: f64) -> Option<f64> {
        let last = self.switches.last()?;
        if last.version != version {
            return None;
        }
        Some(last.at_ms.max(from_ms))
    }

    /// The version the node ran at `t_ms` (the last switch seen at or before it).
    pub fn version_at(&self, t_ms: f64) -> Option<&str> {
        self.switches
            .iter()
            .take_while(|s| s.at_ms <= t_ms)
            .last()
            .map(|s| s.version.as_str())
    }
}

/// Polls every admin listener every `every` until `stop` is set; one timeline per node.
pub async fn watch(
    admins: Vec<SocketAddr>,
    every: Duration,
    epoch: Instant,
    stop: Arc<AtomicBool>,
) -> Vec<Timeline> {
    let status = StatusClient::new();
    let tasks: Vec<_> = admins
        .into_iter()
        .map(|admin| {
            let (status, stop) = (status.clone(), stop.clone());
            tokio::spawn(async move {
                let mut t = Timeline::default();
                let mut last_poll = 0.0;
                while !stop.load(Ordering::Relaxed) {
                    let sent = Instant::now();
                    if let Some(v) = status.version(admin).await {
                        let now = ms(sent.saturating_duration_since(epoch));
                        if t.switches.last().map(|s| &s.version) != Some(&v) {
                            t.switches.push(Switch {
                                version: v,
                                at_ms: now,
                                after_ms: last_poll,
                            });
                        }
                        last_poll = now;
                    }
                    tokio::time::sleep_until((sent + every).into()).await;
                }
                t
            })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap_or_default());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sw(version: &str, at_ms: f64) -> Switch {
        Switch {
            version: version.into(),
            at_ms,
            after_ms: at_ms - 50.0,
        }
    }

    #[test]
    fn a_timeline_answers_what_ran_when() {
        let t = Timeline {
            switches: vec![sw("a", 0.0), sw("b", 1000.0), sw("a", 2500.0)],
        };
        assert!(t.ran("b") && !t.ran("c"));
        assert_eq!(t.version_at(999.0), Some("a"));
        assert_eq!(t.version_at(1000.0), Some("b"));
        assert_eq!(t.version_at(3000.0), Some("a"));
        assert_eq!(t.settled_on("a", 2000.0), Some(2500.0));
        assert_eq!(t.settled_on("a", 2600.0), Some(2600.0));
        assert_eq!(t.settled_on("b", 0.0), None);
    }
}
