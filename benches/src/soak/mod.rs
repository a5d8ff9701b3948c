//! The churn soak (`make soak`): open-loop GETs and POSTs through one Portico node while its three
//! origins are killed, hung and 503'd at random, its config is reloaded, and slow clients hang
//! on; then every client-side error is checked against the origins' own request logs.
//!
//! - [`origin`]: the soak's origin processes and their request logs.
//! - [`config`]: the node's document (weights change with every reload).
//! - [`load`]: the open-loop client.
//! - [`chaos`]: faults, restarts and reloads.
//! - [`attacker`]: trickled heads and idle keep-alive connections.

pub mod attacker;
pub mod chaos;
pub mod config;
pub mod load;
pub mod origin;

use anyhow::{Context, Result};
use load::{Outcome, Sent};
use origin::{Fault, Logged};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A request to `addr` with `Connection: close`: the status code and the raw body.
pub async fn http_call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Result<(u16, String)> {
    let mut s = tokio::time::timeout(Duration::from_secs(5), tokio::net::TcpStream::connect(addr))
        .await
        .context("connect timed out")??;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).await?;
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .context("no answer within 10 s")??;
    let text = String::from_utf8_lossy(&out).into_owned();
    let code = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .with_context(|| format!("not an HTTP answer: {text:?}"))?;
    let body = text
        .split_once("\r\n\r\n")
        .map_or(String::new(), |(_, b)| b.to_string());
    Ok((code, body))
}

/// The sum of every series of counter `name` in a Prometheus text page.
pub fn metric_sum(page: &str, name: &str) -> f64 {
    page.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A kill this long after a POST arrived at a healthy origin counts as having cut it (the
/// origin had not answered yet, or its answer was still in flight).
pub const KILL_WINDOW_MS: u64 = 1000;

/// A POST logged by no origin and sent at most this long before a kill counts as cut by it
/// (it sat unread in the dying origin's socket).
pub const UNLOGGED_BEFORE_KILL_MS: u64 = 200;

/// A POST logged by no origin and sent at most this long after a kill counts as cut by it
/// (sent on a pooled connection to the dead origin before the node noticed the close).
pub const STALE_AFTER_KILL_MS: u64 = 100;

/// Client-side results judged against the origins' logs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Verdict {
    /// Requests sent.
    pub sent: u64,
    /// GETs sent.
    pub gets: u64,
    /// GETs without a good answer.
    pub gets_lost: u64,
    /// The lost GETs by how they ended (`503`, `timeout`, `broken`).
    pub gets_lost_by: Vec<(String, u64)>,
    /// POSTs sent.
    pub posts: u64,
    /// POSTs without a good answer.
    pub post_errors: u64,
    /// POST errors by how they ended.
    pub post_errors_by: Vec<(String, u64)>,
    /// POSTs that reached an origin while it hung or answered 503 (from its log).
    pub posts_at_faulty: u64,
    /// POST errors at an origin killed within [`KILL_WINDOW_MS`] after they arrived, or logged
    /// nowhere and sent within [`UNLOGGED_BEFORE_KILL_MS`] before (or [`STALE_AFTER_KILL_MS`] after) a
    /// kill.
    pub posts_cut_by_kill: u64,
    /// POST errors neither of the above explains: the node's own failures.
    pub post_errors_unexplained: u64,
    /// Ids of the first unexplained POST errors (for the log).
    pub unexplained_ids: Vec<u64>,
    /// POSTs that reached an origin more than once (a POST must never be resent).
    pub posts_sent_twice: u64,
    /// POSTs with a good answer that the origins' logs do not show at all.
    pub posts_good_unlogged: u64,
}

fn outcome_word(o: Outcome) -> String {
    match o {
        Outcome::Good => "good".into(),
        Outcome::Status(c) => c.to_string(),
        Outcome::Broken => "broken".into(),
        Outcome::Timeout => "timeout".into(),
    }
}

fn count_by(words: impl Iterator<Item = String>) -> Vec<(String, u64)> {
    let mut m: HashMap<String, u64> = HashMap::new();
    for w in words {
        *m.entry(w).or_default() += 1;
    }
    let mut v: Vec<_> = m.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    v
}

/// Judges `sent` against `logs` (by origin index) and `kills` (`(origin index, epoch ms)`).
pub fn judge(sent: &[Sent], logs: &[Vec<Logged>], kills: &[(usize, u64)]) -> Verdict {
    let mut seen: HashMap<u64, Vec<(usize, &Logged)>> = HashMap::new();
    for (o, log) in logs.iter().enumerate() {
        for l in log.iter().filter(|l| l.method == "POST") {
            if let Some(id) = l.id {
                seen.entry(id).or_default().push((o, l));
            }
        }
    }
    let mut v = Verdict {
        sent: sent.len() as u64,
        ..Verdict::default()
    };
    let gets: Vec<&Sent> = sent.iter().filter(|s| !s.post).collect();
    v.gets = gets.len() as u64;
    let lost: Vec<&&Sent> = gets.iter().filter(|s| s.outcome != Outcome::Good).collect();
    v.gets_lost = lost.len() as u64;
    v.gets_lost_by = count_by(lost.iter().map(|s| outcome_word(s.outcome)));
    let posts: Vec<&Sent> = sent.iter().filter(|s| s.post).collect();
    v.posts = posts.len() as u64;
    let errors: Vec<&&Sent> = posts
        .iter()
        .filter(|s| s.outcome != Outcome::Good)
        .collect();
    v.post_errors = errors.len() as u64;
    v.post_errors_by = count_by(errors.iter().map(|s| outcome_word(s.outcome)));
    for p in &posts {
        let at = seen.get(&p.id).map_or(&[][..], Vec::as_slice);
        if at.len() > 1 {
            v.posts_sent_twice += 1;
        }
        let faulty = at.iter().any(|(_, l)| l.fault != Fault::None);
        if faulty {
            v.posts_at_faulty += 1;
        }
        if p.outcome == Outcome::Good {
            if at.is_empty() {
                v.posts_good_unlogged += 1;
            }
            continue;
        }
        if faulty {
            continue;
        }
        // Killed after it arrived; or, logged nowhere, sent just before a kill (it sat unread
        // in the dying origin's socket, which the kernel then reset) or just after one (on a
        // pooled connection the kill had closed, before the node noticed).
        let cut = at.iter().any(|(o, l)| {
            kills
                .iter()
                .any(|&(k, t)| k == *o && t >= l.at_ms && t <= l.at_ms + KILL_WINDOW_MS)
        }) || (at.is_empty()
            && kills.iter().any(|&(_, t)| {
                p.at_epoch_ms + UNLOGGED_BEFORE_KILL_MS >= t
                    && p.at_epoch_ms <= t + STALE_AFTER_KILL_MS
            }));
        if cut {
            v.posts_cut_by_kill += 1;
        } else {
            v.post_errors_unexplained += 1;
            if v.unexplained_ids.len() < 20 {
                v.unexplained_ids.push(p.id);
            }
        }
    }
    v
}

/// Resident memory (KiB) and open file descriptors of a process.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Footprint {
    /// `VmRSS` from `/proc/PID/status`, KiB.
    pub rss_kib: u64,
    /// Entries of `/proc/PID/fd`.
    pub fds: u64,
}

/// The footprint of `pid` now; `None` when it is gone.
pub fn footprint(pid: u32) -> Option<Footprint> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kib = crate::throughput::procinfo::parse_vm_rss(&status)?;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64;
    Some(Footprint { rss_kib, fds })
}

/// A process's open descriptors by what they are.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Fds {
    /// Every entry of `/proc/PID/fd`.
    pub total: u64,
    /// TCP connections to one of the origins' ports (the node's upstream keep-alive pool
    /// keeps idle ones for up to a minute: they follow the load's peak concurrency).
    pub upstream: u64,
    /// TCP connections accepted on the proxy port.
    pub clients: u64,
}

impl Fds {
    /// Everything but the upstream connections: what must not grow.
    pub fn own(&self) -> u64 {
        self.total - self.upstream
    }
}

/// `(local port, remote port)` by socket inode, from `/proc/PID/net/tcp{,6}` text.
pub fn parse_proc_net_tcp(text: &str) -> HashMap<u64, (u16, u16)> {
    let port = |a: &str| {
        a.rsplit(':')
            .next()
            .and_then(|p| u16::from_str_radix(p, 16).ok())
    };
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let inode = f.get(9)?.parse().ok()?;
            Some((inode, (port(f.get(1)?)?, port(f.get(2)?)?)))
        })
        .collect()
}

/// `pid`'s descriptors, with its TCP connections to `origin_ports` and on `proxy_port` counted.
pub fn fds(pid: u32, origin_ports: &[u16], proxy_port: u16) -> Option<Fds> {
    let mut sockets = HashMap::new();
    for f in ["tcp", "tcp6"] {
        if let Ok(t) = std::fs::read_to_string(format!("/proc/{pid}/net/{f}")) {
            sockets.extend(parse_proc_net_tcp(&t));
        }
    }
    let mut out = Fds::default();
    for e in std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.flatten() {
        out.total += 1;
        let Ok(link) = std::fs::read_link(e.path()) else {
            continue;
        };
        let link = link.to_string_lossy();
        let Some(inode) = link
            .strip_prefix("socket:[")
            .and_then(|s| s.strip_suffix(']'))
            .and_then(|s| s.parse::<u64>().ok())
        else {
            continue;
        };
        match sockets.get(&inode) {
            Some((_, remote)) if origin_ports.contains(remote) => out.upstream += 1,
            Some((local, remote)) if *local == proxy_port && *remote != 0 => out.clients += 1,
            _ => {}
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(id: u64, post: bool, outcome: Outcome) -> Sent {
        Sent {
            id,
            post,
            at_epoch_ms: if id == 9 { 4995 } else { 0 },
            outcome,
        }
    }

    fn logged(id: u64, at_ms: u64, fault: Fault) -> Logged {
        Logged {
            at_ms,
            method: "POST".into(),
            id: Some(id),
            fault,
        }
    }

    #[test]
    fn post_errors_are_explained_by_faulty_origins_and_kills_only() {
        let s = vec![
            sent(1, false, Outcome::Good),
            sent(2, false, Outcome::Status(502)),
            sent(3, true, Outcome::Status(503)), // at a 503'd origin
            sent(4, true, Outcome::Status(502)), // at a healthy origin killed 10 ms later
            sent(5, true, Outcome::Status(502)), // never reached an origin: the node's fault
            sent(9, true, Outcome::Status(502)), // logged nowhere, sent 5 ms before a kill
            sent(6, true, Outcome::Good),        // delivered twice
            sent(7, true, Outcome::Timeout),     // at a healthy origin killed much later
            sent(8, true, Outcome::Good),        // good but never logged
        ];
        let logs = vec![
            vec![
                logged(3, 100, Fault::Status503),
                logged(6, 200, Fault::None),
            ],
            vec![
                logged(4, 1000, Fault::None),
                logged(6, 210, Fault::None),
                logged(7, 3000, Fault::None),
            ],
        ];
        let kills = vec![(1, 1010), (0, 1015), (1, 5000)];
        let v = judge(&s, &logs, &kills);
        assert_eq!((v.gets, v.gets_lost, v.posts, v.post_errors), (2, 1, 7, 5));
        assert_eq!(v.posts_at_faulty, 1);
        assert_eq!(v.posts_cut_by_kill, 2);
        assert_eq!(v.post_errors_unexplained, 2);
        assert_eq!(v.unexplained_ids, vec![5, 7]);
        assert_eq!(v.posts_sent_twice, 1);
        assert_eq!(v.posts_good_unlogged, 1);
        assert_eq!(v.gets_lost_by, vec![("502".to_string(), 1)]);
    }

    #[test]
    fn metric_sums_add_every_series_of_one_name_only() {
        let page = "# TYPE a counter\na{x=\"1\"} 2\na{x=\"2\"} 3\nab 7\na 1\n";
        assert_eq!(metric_sum(page, "a"), 6.0);
        assert_eq!(metric_sum(page, "ab"), 7.0);
    }

    #[test]
    fn proc_net_tcp_lines_give_ports_by_inode() {
        let t = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0000000000000000 100 0 0 10 0\n   1: 0100007F:1F90 0100007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 4343 1 0000000000000000 20 4 30 10 -1\n";
        let m = parse_proc_net_tcp(t);
        assert_eq!(m.get(&4242), Some(&(8080, 0)));
        assert_eq!(m.get(&4343), Some(&(8080, 54321)));
    }

    #[test]
    fn footprint_of_this_process_and_of_none() {
        let f = footprint(std::process::id()).unwrap();
        assert!(f.rss_kib > 0 && f.fds > 0);
        assert!(footprint(u32::MAX).is_none());
    }
}
