//! The simulation's config store: a real etcd cluster of one member per region (in its router namespace in network mode), the shared document pushed to `portico/config`.

use crate::netns::Netns;
use crate::supervise;
use crate::topology::Topology;
use anyhow::{Context, Result};
use portico_core::config::fingerprint;
use portico_store::{LocalEtcd, MemberSpec, Store, StoreUrl};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;
use tokio::runtime::Runtime;

/// The key prefix the simulation's nodes follow: the document is at `/portico/config`.
pub const PREFIX: &str = "portico";

/// How long the runner's own store requests (push, stored version) may take.
const TIMEOUT: Duration = Duration::from_secs(2);

/// The etcd cluster of a run: member `r` belongs to region `r`.
pub struct SimStore {
    etcd: LocalEtcd,
    /// Every member, in region order: what an operator passes to `portico config`.
    pub url: StoreUrl,
    /// Member names, in region order (the region names).
    names: Vec<String>,
    /// The runner's own connection, made on first use and dropped when a request fails.
    client: Mutex<Option<Store>>,
}

impl SimStore {
    /// Starts one member per region: member `r` serves clients at `members[r].0` and peers at
    /// `members[r].1`, keeps its data in `dir/<region>` (a fresh cluster: any data left there
    /// by an earlier run is deleted first) and, in network mode, runs in region `r`'s router
    /// namespace. Returns once the cluster answers a linearizable read.
    pub fn start(
        topology: &Topology,
        members: &[(SocketAddr, SocketAddr)],
        dir: &Path,
        net: Option<&Netns>,
    ) -> Result<SimStore> {
        if dir.exists() {
            std::fs::remove_dir_all(dir)
                .with_context(|| format!("cannot remove the old etcd data in {}", dir.display()))?;
        }
        let names: Vec<String> = topology.regions.iter().map(|r| r.name.clone()).collect();
        let specs = names
            .iter()
            .zip(members)
            .enumerate()
            .map(|(r, (name, &(client, peer)))| MemberSpec {
                name: name.clone(),
                client,
                peer,
                data_dir: dir.join(name),
                command_prefix: net.map_or_else(Vec::new, |n| {
                    ["ip", "netns", "exec", n.routers[r].as_str()]
                        .map(str::to_string)
                        .to_vec()
                }),
            })
            .collect();
        let etcd = LocalEtcd::start(specs)
            .map_err(|e| anyhow::anyhow!(
                "the simulation's etcd cluster did not start (portico-sim --no-store runs without one): {e}"
            ))?;
        let url = etcd.url(PREFIX);
        let store = SimStore {
            etcd,
            url,
            names,
            client: Mutex::new(None),
        };
        for pid in store.member_pids().into_iter().flatten() {
            supervise::add_child(pid);
        }
        Ok(store)
    }

    /// The URL region `r`'s nodes follow: every member, their own region's first.
    pub fn url_for(&self, r: usize) -> StoreUrl {
        own_member_first(&self.url, r)
    }

    /// The number of members (one per region).
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether the cluster has no member (never).
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Whether member `r` runs.
    pub fn is_running(&self, r: usize) -> bool {
        self.etcd.is_running(r)
    }

    /// The process id of each member, in region order (`None`: not running). A member is
    /// recognised by the `--name` on its command line.
    pub fn member_pids(&self) -> Vec<Option<u32>> {
        let running = self.etcd.pids();
        self.names
            .iter()
            .map(|name| {
                running
                    .iter()
                    .copied()
                    .find(|pid| member_name(*pid).as_deref() == Some(name.as_str()))
            })
            .collect()
    }

    /// Where member `r` logs.
    pub fn log(&self, r: usize) -> Option<PathBuf> {
        self.etcd
            .spec(r)
            .map(|s| s.data_dir.join(portico_store::LOG_FILE))
    }

    /// The last `lines` lines of member `r`'s log.
    pub fn log_tail(&self, r: usize, lines: usize) -> String {
        let text = self
            .log(r)
            .and_then(|p| std::fs::read_to_string(p).ok())
            .unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// SIGKILLs member `r`; its process id, if it ran.
    pub fn stop_member(&mut self, r: usize) -> Option<u32> {
        let pid = self.member_pids().get(r).copied().flatten();
        self.etcd.stop_member(r);
        if let Some(pid) = pid {
            supervise::remove_child(pid);
        }
        *lock(&self.client) = None;
        pid
    }

    /// Starts member `r` again from its data dir and waits until it answers; its process id.
    pub fn start_member(&mut self, r: usize) -> Result<Option<u32>> {
        self.etcd
            .start_member(r)
            .map_err(|e| anyhow::anyhow!("etcd member {}: {e}", self.names[r]))?;
        let pid = self.member_pids().get(r).copied().flatten();
        if let Some(pid) = pid {
            supervise::add_child(pid);
        }
        Ok(pid)
    }

    fn client(&self, rt: &Runtime) -> Result<Store> {
        let mut c = lock(&self.client);
        if let Some(s) = c.as_ref() {
            return Ok(s.clone());
        }
        let s = rt
            .block_on(Store::connect(&self.url, TIMEOUT))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        *c = Some(s.clone());
        Ok(s)
    }

    /// Runs one request on the runner's connection (reconnecting next time when it fails).
    fn request<T, F, Fut>(&self, rt: &Runtime, f: F) -> Result<T>
    where
        F: FnOnce(Store) -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let store = self.client(rt)?;
        let r = rt.block_on(f(store));
        if r.is_err() {
            *lock(&self.client) = None;
        }
        r
    }

    /// Validates `text` and writes it to `/portico/config`, as `portico config push` does;
    /// returns its version.
    pub fn push(&self, rt: &Runtime, text: &str) -> Result<String> {
        self.request(rt, |store| async move {
            portico::store_link::push_document(&store, text, None)
                .await
                .map_err(|e| anyhow::anyhow!("push to {}: {e}", self.url))
        })
    }

    /// The version of the stored document (`None`: nothing stored).
    pub fn stored_version(&self, rt: &Runtime) -> Result<Option<String>> {
        self.request(rt, |store| async move {
            let doc = store
                .get_config()
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            Ok(doc.map(|d| fingerprint(&d.text)))
        })
    }

    /// Drops the runner's connection (before its runtime goes) and kills every member.
    pub fn stop(self) {
        *lock(&self.client) = None;
        for pid in self.member_pids().into_iter().flatten() {
            supervise::remove_child(pid);
        }
        drop(self.etcd);
    }
}

/// `url` with its `r`-th endpoint moved to the front.
fn own_member_first(url: &StoreUrl, r: usize) -> StoreUrl {
    let mut endpoints = url.endpoints.clone();
    if r < endpoints.len() {
        let own = endpoints.remove(r);
        endpoints.insert(0, own);
    }
    StoreUrl {
        endpoints,
        prefix: url.prefix.clone(),
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The `--name` argument of process `pid`'s command line.
fn member_name(pid: u32) -> Option<String> {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    let at = args.iter().position(|a| *a == b"--name")?;
    args.get(at + 1)
        .map(|a| String::from_utf8_lossy(a).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_region_url_lists_its_own_member_first() {
        let url: StoreUrl = "etcd://a:1,b:2,c:3/portico".parse().unwrap();
        assert_eq!(
            own_member_first(&url, 2).to_string(),
            "etcd://c:3,a:1,b:2/portico"
        );
        assert_eq!(own_member_first(&url, 0), url);
        assert_eq!(own_member_first(&url, 1).endpoints, ["b:2", "a:1", "c:3"]);
    }
}
