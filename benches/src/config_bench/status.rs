//! Reading `config_version` from each node's `/status`, and polling every node at once in a
//! tight loop until each reports a wanted version, with both bounds of when it changed.

use super::ms;
use anyhow::{Result, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Serialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// When one node was first seen running a version, relative to the change's start.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Seen {
    /// When the last poll that still showed the old version was sent, ms: the node switched
    /// after this.
    pub lower_ms: f64,
    /// When the first answer showing the new version arrived, ms: the node switched before
    /// this. This is the number reported.
    pub upper_ms: f64,
    /// Polls made.
    pub polls: u32,
    /// The slowest poll's round trip, ms.
    pub slowest_poll_ms: f64,
}

/// A keep-alive HTTP client for admin listeners.
#[derive(Clone)]
pub struct StatusClient {
    client: Client<HttpConnector, Empty<Bytes>>,
}

impl Default for StatusClient {
    fn default() -> Self {
        Self::new()
    }
}

impl StatusClient {
    /// A client keeping one connection per admin listener.
    pub fn new() -> StatusClient {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        StatusClient {
            client: Client::builder(TokioExecutor::new())
                .pool_max_idle_per_host(4)
                .build(connector),
        }
    }

    /// The `config_version` a node's `/status` reports; `None` when it does not answer (1 s).
    pub async fn version(&self, admin: SocketAddr) -> Option<String> {
        let uri: http::Uri = format!("http://{admin}/status").parse().ok()?;
        let body = tokio::time::timeout(Duration::from_secs(1), async {
            let resp = self.client.get(uri).await.ok()?;
            if resp.status() != 200 {
                return None;
            }
            resp.into_body().collect().await.ok().map(|b| b.to_bytes())
        })
        .await
        .ok()??;
        let v: serde_json::Value = serde_json::from_slice(&body).ok()?;
        v["config_version"].as_str().map(str::to_string)
    }

    /// `portico_config_reloads_total` from a node's `/metrics`, as `source/result` → count.
    pub async fn reloads(&self, admin: SocketAddr) -> Option<BTreeMap<String, u64>> {
        let uri: http::Uri = format!("http://{admin}/metrics").parse().ok()?;
        let body = tokio::time::timeout(Duration::from_secs(2), async {
            let resp = self.client.get(uri).await.ok()?;
            resp.into_body().collect().await.ok().map(|b| b.to_bytes())
        })
        .await
        .ok()??;
        Some(parse_reloads(&String::from_utf8_lossy(&body)))
    }

    /// Polls `admin` every `every` (back to back when zero; tokio's timer rounds sleeps up to
    /// whole milliseconds) until it reports `want` or `timeout` has passed since `t0`; `None`
    /// on timeout.
    pub async fn watch_one(
        &self,
        admin: SocketAddr,
        want: &str,
        t0: Instant,
        every: Duration,
        timeout: Duration,
    ) -> Option<Seen> {
        let mut lower = t0;
        let mut polls = 0;
        let mut slowest = Duration::ZERO;
        loop {
            let sent = Instant::now();
            polls += 1;
            let answer = self.version(admin).await;
            slowest = slowest.max(sent.elapsed());
            match answer {
                Some(v) if v == want => {
                    return Some(Seen {
                        lower_ms: ms(lower.saturating_duration_since(t0)),
                        upper_ms: ms(t0.elapsed()),
                        polls,
                        slowest_poll_ms: ms(slowest),
                    });
                }
                // Only an answer showing another version proves the switch came later.
                Some(_) => lower = sent,
                None => {}
            }
            if t0.elapsed() >= timeout {
                return None;
            }
            if every.is_zero() {
                tokio::task::yield_now().await;
            } else {
                tokio::time::sleep_until((sent + every).into()).await;
            }
        }
    }

    /// Polls every node concurrently (see [`StatusClient::watch_one`]); one entry per node.
    pub async fn watch_all(
        &self,
        admins: &[SocketAddr],
        want: &str,
        t0: Instant,
        every: Duration,
        timeout: Duration,
    ) -> Vec<Option<Seen>> {
        let tasks: Vec<_> = admins
            .iter()
            .map(|&admin| {
                let (me, want) = (self.clone(), want.to_string());
                tokio::spawn(async move { me.watch_one(admin, &want, t0, every, timeout).await })
            })
            .collect();
        let mut out = Vec::with_capacity(tasks.len());
        for t in tasks {
            out.push(t.await.ok().flatten());
        }
        out
    }

    /// Waits until every node reports `want` (polling every 20 ms), for at most `timeout`.
    pub async fn wait_all(
        &self,
        admins: &[SocketAddr],
        want: &str,
        timeout: Duration,
    ) -> Result<()> {
        let seen = self
            .watch_all(
                admins,
                want,
                Instant::now(),
                Duration::from_millis(20),
                timeout,
            )
            .await;
        let missing: Vec<String> = admins
            .iter()
            .zip(&seen)
            .filter(|(_, s)| s.is_none())
            .map(|(a, _)| a.to_string())
            .collect();
        if !missing.is_empty() {
            bail!(
                "no version {want} on {} within {} s",
                missing.join(", "),
                timeout.as_secs()
            );
        }
        Ok(())
    }
}

/// The `portico_config_reloads_total{source="S",result="R"} N` lines, as `S/R` → N.
fn parse_reloads(metrics: &str) -> BTreeMap<String, u64> {
    let label = |labels: &str, name: &str| {
        labels
            .split(',')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| k.trim() == name)
            .map(|(_, v)| v.trim().trim_matches('"').to_string())
            .unwrap_or_default()
    };
    metrics
        .lines()
        .filter_map(|l| l.strip_prefix("portico_config_reloads_total{"))
        .filter_map(|rest| rest.split_once('}'))
        .filter_map(|(labels, value)| {
            let n = value.trim().parse::<f64>().ok()?;
            Some((
                format!("{}/{}", label(labels, "source"), label(labels, "result")),
                n as u64,
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reload_counters_are_read_by_source_and_result() {
        let m = "# HELP x\nportico_config_reloads_total{result=\"applied\",source=\"store\"} 101\n\
                 portico_config_reloads_total{result=\"rejected\",source=\"file\"} 0\n\
                 portico_node_info{region=\"a\"} 1\n";
        let r = parse_reloads(m);
        assert_eq!(r.get("store/applied"), Some(&101));
        assert_eq!(r.get("file/rejected"), Some(&0));
        assert_eq!(r.len(), 2);
    }
}
