//! Edge-node loss under load: errors, time to reroute (beside the withdrawal delay in loopback mode; split into detection and BGP in network mode, where BIRD withdraws), and client latency before and after.

use crate::sim::Simulation;
use serde::Serialize;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One client request through the entry (a new connection each).
#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    /// Sent, ms since the start.
    pub at_ms: f64,
    /// Latency, ms.
    pub latency_ms: f64,
    /// Status, 0 for a connection error or timeout.
    pub status: u16,
    /// `X-Portico-Region` of the answer: the node that served it.
    pub node_region: Option<String>,
}

/// What the run measured.
#[derive(Debug, Clone, Serialize)]
pub struct EdgeLoss {
    /// Client region.
    pub region: String,
    /// Requests per second.
    pub rate: u32,
    /// The edge node killed.
    pub node: String,
    /// How the node is withdrawn: `delay` (loopback mode: the entries stop sending to it once
    /// its `/healthz` has failed for `withdraw_ms`) or `bird` (network mode: its health check
    /// runs `birdc disable portico_anycast`, BGP withdraws the route from the routers).
    pub withdrawal: String,
    /// Withdrawal delay of the topology, ms (loopback mode; not used in network mode).
    pub withdraw_ms: Option<f64>,
    /// Requests sent.
    pub requests: usize,
    /// Requests that failed.
    pub errors: usize,
    /// Of those, requests sent after the first rerouted answer (0 when the reroute is clean).
    pub errors_after_reroute: usize,
    /// From the kill to the first request that another region's node answered (sent then), ms:
    /// every request in between failed.
    pub reroute_ms: Option<f64>,
    /// Of `reroute_ms`, noticing the failure, ms. Loopback mode: what is not the withdrawal
    /// delay (`/healthz` polled every 100 ms). Network mode, measured: from the kill until the
    /// node's BIRD stopped announcing (its health check's `birdc disable`).
    pub detect_ms: Option<f64>,
    /// Network mode, measured: from the node's BIRD withdrawing until the client region's
    /// router's best BGP route (the one its kernel table gets) leads to another node, ms.
    pub bgp_ms: Option<f64>,
    /// Region that took over.
    pub new_region: Option<String>,
    /// p50 / p99 latency before the kill, ms.
    pub before_ms: (f64, f64),
    /// p50 / p99 latency after the reroute, ms.
    pub after_ms: (f64, f64),
}

/// One `GET /` through `entry` on a new connection: the status (0: no answer within `timeout`)
/// and the `X-Portico-Region` of the node that answered.
pub(crate) async fn one(entry: SocketAddr, timeout: Duration) -> (u16, Option<String>) {
    let r = tokio::time::timeout(timeout, async {
        let mut s = tokio::net::TcpStream::connect(entry).await?;
        s.write_all(b"GET / HTTP/1.1\r\nHost: sim\r\nConnection: close\r\n\r\n")
            .await?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await?;
        Ok::<_, std::io::Error>(buf)
    })
    .await;
    let Ok(Ok(buf)) = r else { return (0, None) };
    let text = String::from_utf8_lossy(&buf);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let region = text
        .lines()
        .take_while(|l| !l.is_empty())
        .find_map(|l| {
            l.split_once(':')
                .filter(|(k, _)| k.eq_ignore_ascii_case("x-portico-region"))
        })
        .map(|(_, v)| v.trim().to_string());
    (status, region)
}

fn pct(mut v: Vec<f64>, q: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    v[((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1]
}

/// Runs the scenario on a started simulation: clients of `region` at `rate` req/s for
/// `duration`, their nearest node killed at `kill_at`.
pub fn edge_loss(
    sim: &mut Simulation,
    region: usize,
    rate: u32,
    duration: Duration,
    kill_at: Duration,
) -> (EdgeLoss, Vec<Sample>) {
    let entry = sim.entries[region];
    let node = sim.topology.nodes_by_distance(region)[0];
    let routing = sim.routing.clone();
    let samples = Arc::new(Mutex::new(Vec::new()));
    let start = Instant::now();
    let load = {
        let samples = samples.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let period = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
                let n = (duration.as_secs_f64() * f64::from(rate)) as u32;
                let mut tasks = Vec::new();
                for i in 0..n {
                    tokio::time::sleep_until((start + period * i).into()).await;
                    if crate::supervise::stop_requested() {
                        break;
                    }
                    let samples = samples.clone();
                    tasks.push(tokio::spawn(async move {
                        let sent = Instant::now();
                        let (status, node_region) = one(entry, Duration::from_secs(2)).await;
                        let s = Sample {
                            at_ms: (sent - start).as_secs_f64() * 1000.0,
                            latency_ms: sent.elapsed().as_secs_f64() * 1000.0,
                            status,
                            node_region,
                        };
                        samples.lock().unwrap_or_else(|e| e.into_inner()).push(s);
                    }));
                }
                for t in tasks {
                    let _ = t.await;
                }
            });
        })
    };
    let ms = |t: Instant| (t - start).as_secs_f64() * 1000.0;
    let (mut withdrawn_at, mut rerouted_at) = (None, None);
    let killed_at = if crate::supervise::sleep(kill_at.saturating_sub(start.elapsed())) {
        let at = ms(Instant::now());
        sim.kill_node(node);
        // Network mode: watch the node's BIRD and the client region's router's, through their
        // control sockets, until the route has moved (every millisecond or so).
        if let Some(routing) = &routing {
            let until = Instant::now() + duration.saturating_sub(kill_at);
            while Instant::now() < until && !crate::supervise::stop_requested() {
                if withdrawn_at.is_none() && routing.announcing(node) != Some(true) {
                    withdrawn_at = Some(ms(Instant::now()));
                }
                if rerouted_at.is_none() && routing.best(region).is_some_and(|b| b != node) {
                    rerouted_at = Some(ms(Instant::now()));
                }
                if withdrawn_at.is_some() && rerouted_at.is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        at
    } else {
        f64::MAX
    };
    let _ = load.join();
    let mut v = std::mem::take(&mut *samples.lock().unwrap_or_else(|e| e.into_inner()));
    v.sort_by(|a, b| a.at_ms.total_cmp(&b.at_ms));
    let own = &sim.topology.regions[sim.topology.edge_nodes()[node].0].name;
    let moved = v.iter().find(|s| {
        s.at_ms >= killed_at
            && s.status == 200
            && s.node_region.as_deref().is_some_and(|r| r != own)
    });
    let reroute_ms = moved.map(|s| s.at_ms - killed_at);
    let withdraw_ms = routing
        .is_none()
        .then_some(sim.topology.withdraw.as_secs_f64() * 1000.0);
    let detect_ms = match (&routing, withdraw_ms) {
        (Some(_), _) => withdrawn_at.map(|w| w - killed_at),
        (None, Some(delay)) => reroute_ms.map(|r| (r - delay).max(0.0)),
        (None, None) => None,
    };
    let bgp_ms = withdrawn_at.zip(rerouted_at).map(|(w, r)| (r - w).max(0.0));
    let reroute_at = moved.map_or(f64::MAX, |s| s.at_ms);
    let ok_lat = |f: &dyn Fn(&Sample) -> bool| {
        v.iter()
            .filter(|s| s.status == 200 && f(s))
            .map(|s| s.latency_ms)
            .collect::<Vec<_>>()
    };
    let before = ok_lat(&|s| s.at_ms < killed_at);
    let after = ok_lat(&|s| s.at_ms >= reroute_at);
    let result = EdgeLoss {
        region: sim.topology.regions[region].name.clone(),
        rate,
        node: sim.topology.edge_nodes()[node].1.clone(),
        withdrawal: if routing.is_some() { "bird" } else { "delay" }.to_string(),
        withdraw_ms,
        requests: v.len(),
        errors: v.iter().filter(|s| s.status != 200).count(),
        errors_after_reroute: v
            .iter()
            .filter(|s| s.status != 200 && s.at_ms >= reroute_at)
            .count(),
        reroute_ms,
        detect_ms,
        bgp_ms,
        new_region: moved.and_then(|s| s.node_region.clone()),
        before_ms: (pct(before.clone(), 0.5), pct(before, 0.99)),
        after_ms: (pct(after.clone(), 0.5), pct(after, 0.99)),
    };
    (result, v)
}

/// The result as a markdown table: in loopback mode the reroute is the withdrawal delay plus
/// detection; in network mode it is measured detection (kill → the node's BIRD withdrew),
/// BGP (→ the router's best route moved) and the client's next new connection.
pub fn table(r: &EdgeLoss) -> String {
    let ms = |v: Option<f64>| v.map_or("never".into(), |m| format!("{m:.0} ms"));
    let head = format!(
        "| {} | {} req/s, new connection each | {} (SIGKILL) | {} / {} | {} | {} |",
        r.region,
        r.rate,
        r.node,
        r.errors,
        r.requests,
        r.errors_after_reroute,
        ms(r.reroute_ms),
    );
    let tail = format!(
        " {} | {:.1} / {:.1} ms | {:.1} / {:.1} ms |\n",
        r.new_region.as_deref().unwrap_or("—"),
        r.before_ms.0,
        r.before_ms.1,
        r.after_ms.0,
        r.after_ms.1
    );
    match r.withdraw_ms {
        Some(delay) => format!(
            "| client region | load | node killed | client errors | errors after reroute | rerouted after | of which withdrawal delay | of which detection | now served from | latency before (p50 / p99) | latency after (p50 / p99) |\n|---|---:|---|---:|---:|---:|---:|---:|---|---:|---:|\n{head} {delay:.0} ms | {} |{tail}",
            ms(r.detect_ms),
        ),
        None => {
            let rest = r
                .reroute_ms
                .map(|t| (t - r.detect_ms.unwrap_or(0.0) - r.bgp_ms.unwrap_or(0.0)).max(0.0));
            // Measured to the millisecond or so: one decimal.
            let ms = |v: Option<f64>| v.map_or("never".into(), |m| format!("{m:.1} ms"));
            format!(
                "| client region | load | node killed | client errors | errors after reroute | rerouted after | withdrawal | of which detection (health check → `birdc disable`) | of which BGP (→ router's route) | of which the next connection | now served from | latency before (p50 / p99) | latency after (p50 / p99) |\n|---|---:|---|---:|---:|---:|---|---:|---:|---:|---|---:|---:|\n{head} by BIRD/BGP | {} | {} | {} |{tail}",
                ms(r.detect_ms),
                ms(r.bgp_ms),
                ms(rest),
            )
        }
    }
}
