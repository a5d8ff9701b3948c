//! The origins rows: one proxy in front of N origins — start, probes settling, idle CPU,
//! memory, reloads (settled and while probes start), latency — for Portico (file + SIGHUP,
//! and following etcd), HAProxy (master-worker, SIGUSR2) and nginx (SIGHUP, no checks).

use super::configs::{self, Estate, GENERATION_PATH, NodeSection};
use super::probe::{self, LogTail};
use crate::procs::{Proc, free_port, nginx_prefix, wait_port, which};
use anyhow::{Context, Result, anyhow, bail};
use portico_core::config::fingerprint;
use serde::Serialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// How long each phase of a row lasts.
#[derive(Debug, Clone)]
pub struct Phases {
    /// Longest wait for every origin's first good probe (check).
    pub settle_timeout: Duration,
    /// Idle window after settling (over which idle CPU is averaged).
    pub idle: Duration,
    /// Reloads once settled.
    pub reloads: usize,
    /// Reloads right after start, while probes start.
    pub start_reloads: usize,
    /// Longest wait for one reload.
    pub reload_timeout: Duration,
    /// Sequential GETs for the latency numbers.
    pub gets: usize,
    /// A row is stopped when the proxy's memory passes this, MiB.
    pub max_rss_mib: f64,
}

/// One proxy in front of one estate.
#[derive(Debug, Clone, Default, Serialize)]
pub struct OriginRow {
    /// `portico`, `portico-store`, `haproxy` or `nginx`.
    pub proxy: String,
    /// Origins.
    pub origins: usize,
    /// Probe interval, ms (0 for nginx: no checks).
    pub interval_ms: u64,
    /// TLS origins.
    pub tls: bool,
    /// Process start → first 200 through the proxy, ms.
    pub serving_ms: Option<f64>,
    /// Process start → every origin's first good probe, s.
    pub probed_s: Option<f64>,
    /// Process start → every origin probed and the CPU curve flat (below 30 % of a core over
    /// 2 s), s; `None`: not within the timeout.
    pub settle_s: Option<f64>,
    /// CPU seconds used until then (or until the timeout).
    pub settle_cpu_s: f64,
    /// Origins with a good probe when settling ended (or timed out).
    pub healthy: usize,
    /// Average CPU over the idle window after settling, % of one core.
    pub idle_cpu_pct: Option<f64>,
    /// Resident memory after the idle window, MiB (every process of the proxy).
    pub rss_mib: f64,
    /// Largest resident memory seen, MiB.
    pub rss_peak_mib: f64,
    /// Reload times once settled, ms (applied: Portico's log line; the peers: a new
    /// connection answered by the new generation).
    pub reload_ms: Vec<f64>,
    /// Reloads that did not apply within the timeout (once settled).
    pub reload_timeouts: usize,
    /// CPU of the proxy over the settled reload series, % of one core.
    pub reload_cpu_pct: Option<f64>,
    /// Reload times right after start, while probes start, ms.
    pub start_reload_ms: Vec<f64>,
    /// Of those, the ones that did not apply within the timeout.
    pub start_reload_timeouts: usize,
    /// Origins with a good probe when the last start reload was applied (below `origins`:
    /// probes were still starting).
    pub start_reload_healthy: Option<usize>,
    /// Sequential keep-alive GETs while probes run: p50, ms.
    pub latency_p50_ms: Option<f64>,
    /// Sequential keep-alive GETs while probes run: p99, ms.
    pub latency_p99_ms: Option<f64>,
    /// Longest stretch of the start during which the proxy wanted ≥ 90 % of a core (ran or
    /// waited to run: the same on a busy machine as on an idle one), s.
    pub pegged_s: f64,
    /// What the proxy wanted of the CPUs over the settled reload series (ran or waited to
    /// run), % of one core.
    pub reload_demand_pct: Option<f64>,
    /// `(seconds since start, CPU seconds, RSS MiB, ran-or-waited seconds)` every 0.25 s
    /// until settled.
    pub timeline: Vec<(f64, f64, f64, f64)>,
    /// Anything the reader should know.
    pub note: String,
}

impl OriginRow {
    fn new(proxy: &str, e: &Estate) -> OriginRow {
        OriginRow {
            proxy: proxy.to_string(),
            origins: e.origins,
            interval_ms: if proxy == "nginx" { 0 } else { e.interval_ms },
            tls: e.tls,
            ..OriginRow::default()
        }
    }
}

/// The origin nginx and what the rows need to reach it.
pub struct Origins {
    /// Plain origins' port on every origin address.
    pub plain_port: u16,
    /// TLS origins' port, and the CA that signed their certificate.
    pub tls: Option<(u16, PathBuf)>,
    /// Its config.
    pub config: String,
    proc: Proc,
}

impl Origins {
    /// Starts one nginx answering on `plain` addresses (and `tls` addresses with TLS),
    /// pinned to `cpus`.
    pub fn start(dir: &Path, plain: usize, tls: usize, cpus: Option<&str>) -> Result<Origins> {
        let nginx = which("nginx").context("nginx is not installed (make bench-deps)")?;
        let dir = dir.join("origin");
        nginx_prefix(&dir)?;
        let plain_port = free_port()?;
        let mut tls_files = None;
        if tls > 0 {
            let files = portico_origin::write_demo_tls(
                &dir.join("certs"),
                &[configs::ORIGIN_TLS_NAME.to_string()],
            )?;
            tls_files = Some((free_port()?, files));
        }
        let config = configs::origin_nginx(
            &dir,
            plain,
            plain_port,
            tls_files
                .as_ref()
                .map(|(p, f)| (tls, *p, f.cert_file.as_path(), f.key_file.as_path())),
        );
        let path = dir.join("nginx.conf");
        std::fs::write(&path, &config)?;
        let mut cmd = crate::procs::pinned(cpus, &nginx);
        cmd.arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(&path)
            .args(["-g", "daemon off;"]);
        let mut proc = Proc::spawn("origin-nginx", cmd, &dir)?;
        let last = SocketAddr::from((configs::origin_ip(plain.max(1) - 1), plain_port));
        if let Err(e) = wait_port(last, Duration::from_secs(30)) {
            proc.check_alive()?;
            bail!("origin nginx: {e}");
        }
        Ok(Origins {
            plain_port,
            tls: tls_files.map(|(p, f)| (p, f.ca_file)),
            config,
            proc,
        })
    }

    /// Fails if nginx has exited.
    pub fn check_alive(&mut self) -> Result<()> {
        Ok(self.proc.check_alive()?)
    }
}

fn loopback() -> Result<SocketAddr> {
    Ok(SocketAddr::from(([127, 0, 0, 1], free_port()?)))
}

fn signal(pid: u32, sig: &str) -> Result<()> {
    let status = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .context("running kill")?;
    if !status.success() {
        bail!("kill -{sig} {pid} failed");
    }
    Ok(())
}

fn replace(path: &Path, text: &str) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// Which proxy a row runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Portico with `--config`, reloaded by SIGHUP.
    Portico,
    /// HAProxy in master-worker mode, reloaded by SIGUSR2.
    Haproxy,
    /// nginx, reloaded by SIGHUP (no active checks).
    Nginx,
}

impl Kind {
    /// The row label.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Portico => "portico",
            Kind::Haproxy => "haproxy",
            Kind::Nginx => "nginx",
        }
    }
}

/// A started proxy: how to reload it and how to tell the reload applied.
struct Running {
    kind: Kind,
    proc: Proc,
    listen: SocketAddr,
    /// Portico's admin listener (restart-only: every generation keeps it).
    admin: Option<SocketAddr>,
    path: PathBuf,
    dir: PathBuf,
    log: LogTail,
    estate: Estate,
    started: Instant,
}

impl Running {
    fn start(kind: Kind, estate: &Estate, dir: &Path, bin: &Path) -> Result<Running> {
        std::fs::create_dir_all(dir)?;
        let listen = loopback()?;
        let admin = (kind == Kind::Portico).then(loopback).transpose()?;
        let (path, text, cmd) = match kind {
            Kind::Portico => {
                let admin = admin.context("an admin listener")?;
                let text = configs::portico(estate, NodeSection::File { listen, admin });
                let path = dir.join("portico.json");
                let mut cmd = Command::new(bin);
                cmd.arg("--config").arg(&path).env_remove("RUST_LOG");
                (path, text, cmd)
            }
            Kind::Haproxy => {
                let (text, map) = configs::haproxy(estate, listen, dir);
                std::fs::write(dir.join("hosts.map"), map)?;
                let path = dir.join("haproxy.cfg");
                let mut cmd = Command::new(bin);
                cmd.arg("-W").arg("-db").arg("-f").arg(&path);
                (path, text, cmd)
            }
            Kind::Nginx => {
                nginx_prefix(dir)?;
                let text = configs::nginx(estate, listen, dir);
                let path = dir.join("nginx.conf");
                let mut cmd = Command::new(bin);
                cmd.arg("-p")
                    .arg(dir)
                    .arg("-c")
                    .arg(&path)
                    .args(["-g", "daemon off;"]);
                (path, text, cmd)
            }
        };
        std::fs::write(&path, &text)?;
        let started = Instant::now();
        let proc = Proc::spawn(kind.name(), cmd, dir)?;
        let log = LogTail::new(&proc.log);
        Ok(Running {
            kind,
            proc,
            listen,
            admin,
            path,
            dir: dir.to_path_buf(),
            log,
            estate: estate.clone(),
            started,
        })
    }

    fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// Origins whose first check passed (`None` for nginx: no checks).
    fn healthy(&self) -> Option<usize> {
        healthy_of(self.kind, self.admin, &self.dir.join("haproxy.sock"))
    }

    /// Makes the next generation (origin 0's weight changes), reloads, and waits until it is
    /// applied: the reload time, `None` on timeout.
    fn reload(&mut self, timeout: Duration) -> Result<Option<f64>> {
        self.estate.generation += 1;
        let t0 = Instant::now();
        let waited = match self.kind {
            Kind::Portico => {
                let admin = self.admin.context("an admin listener")?;
                let next = configs::portico(
                    &self.estate,
                    NodeSection::File {
                        listen: self.listen,
                        admin,
                    },
                );
                let version = fingerprint(&next);
                let t0 = Instant::now();
                replace(&self.path, &next)?;
                signal(self.pid(), "HUP")?;
                return Ok(self
                    .log
                    .wait_applied(&version, t0, timeout)
                    .map(|d| d.as_secs_f64() * 1000.0));
            }
            Kind::Haproxy => {
                let (text, map) = configs::haproxy(&self.estate, self.listen, &self.dir);
                replace(&self.dir.join("hosts.map"), &map)?;
                replace(&self.path, &text)?;
                signal(self.pid(), "USR2")?;
                probe::wait_body(
                    self.listen,
                    GENERATION_PATH,
                    &format!("gen-{}", self.estate.generation),
                    t0,
                    timeout,
                )
            }
            Kind::Nginx => {
                let text = configs::nginx(&self.estate, self.listen, &self.dir);
                replace(&self.path, &text)?;
                signal(self.pid(), "HUP")?;
                probe::wait_body(
                    self.listen,
                    GENERATION_PATH,
                    &format!("gen-{}", self.estate.generation),
                    t0,
                    timeout,
                )
            }
        };
        Ok(waited.map(|d| d.as_secs_f64() * 1000.0))
    }
}

/// Origins whose first check passed: Portico's `/metrics`, HAProxy's stats socket; `None`
/// for nginx (no checks).
fn healthy_of(kind: Kind, admin: Option<SocketAddr>, socket: &Path) -> Option<usize> {
    match kind {
        Kind::Portico => admin.and_then(probe::portico_healthy),
        Kind::Haproxy => probe::haproxy_checked(socket).map(|(ok, _)| ok),
        Kind::Nginx => None,
    }
}

/// Runs one row: start, settle, idle, latency, settled reloads; then a second start for the
/// reloads while probes start.
pub fn run_row(
    kind: Kind,
    estate: &Estate,
    bin: &Path,
    work: &Path,
    ph: &Phases,
) -> Result<OriginRow> {
    let tag = format!(
        "{}-{}-{}ms{}",
        kind.name(),
        estate.origins,
        estate.interval_ms,
        if estate.tls { "-tls" } else { "" }
    );
    let dir = work.join(&tag);
    let mut row = OriginRow::new(kind.name(), estate);
    let host = configs::pool_host(0);
    {
        let mut r = Running::start(kind, estate, &dir, bin)?;
        let (k, admin, sock) = (r.kind, r.admin, r.dir.join("haproxy.sock"));
        let healthy = move || healthy_of(k, admin, &sock);
        settle(
            Watched {
                proc: &mut r.proc,
                started: r.started,
                serving: Some((r.listen, &host)),
                origins: estate.origins,
                healthy: &healthy,
            },
            &mut row,
            ph,
        )?;
        if row.settle_s.is_some() && kind != Kind::Nginx {
            std::thread::sleep(Duration::from_secs(1));
        }
        // nginx has no checks: nothing runs while it idles.
        let idle_window = if kind == Kind::Nginx {
            Duration::from_secs(1)
        } else {
            ph.idle
        };
        let (c0, t0) = (probe::cpu_s(r.pid()), Instant::now());
        std::thread::sleep(idle_window);
        let idle = (probe::cpu_s(r.pid()) - c0) / t0.elapsed().as_secs_f64() * 100.0;
        if row.settle_s.is_some() || kind == Kind::Nginx {
            row.idle_cpu_pct = Some(idle);
        } else {
            row.note = format!(
                "not settled within {} s ({} of {} origins probed); {idle:.0} % of a core then",
                ph.settle_timeout.as_secs(),
                row.healthy,
                estate.origins
            );
        }
        row.rss_mib = probe::rss_mib(r.pid());
        row.rss_peak_mib = row.rss_peak_mib.max(row.rss_mib);
        r.proc.check_alive()?;
        match probe::sequential_gets(r.listen, &host, ph.gets) {
            Ok(l) => {
                row.latency_p50_ms = Some(probe::percentile(&l, 0.5));
                row.latency_p99_ms = Some(probe::percentile(&l, 0.99));
            }
            Err(e) => row.note.push_str(&format!(" latency: {e:#}")),
        }
        // A node still starting gets 3 (each may wait the whole timeout); nginx has no checks.
        let n = if row.settle_s.is_some() || kind == Kind::Nginx {
            ph.reloads
        } else {
            ph.reloads.min(3)
        };
        let (c0, d0, t0) = (
            probe::cpu_s(r.pid()),
            probe::demand_s(r.pid()),
            Instant::now(),
        );
        for _ in 0..n {
            match r.reload(ph.reload_timeout)? {
                Some(ms) => row.reload_ms.push(ms),
                None => {
                    row.reload_timeouts += 1;
                    break;
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        // HAProxy's and nginx's old processes exit during reloads, taking their CPU time
        // with them: only Portico's (one process) is meaningful.
        let wall = t0.elapsed().as_secs_f64();
        row.reload_cpu_pct =
            (kind == Kind::Portico).then(|| (probe::cpu_s(r.pid()) - c0) / wall * 100.0);
        row.reload_demand_pct =
            (kind == Kind::Portico).then(|| (probe::demand_s(r.pid()) - d0) / wall * 100.0);
        r.proc.check_alive()?;
        r.proc.terminate(Duration::from_secs(5));
    }
    if ph.start_reloads > 0 && kind != Kind::Nginx {
        let mut r = Running::start(kind, estate, &dir.join("start-reloads"), bin)?;
        if let Err(e) = wait_port(r.listen, Duration::from_secs(30)) {
            r.proc.check_alive()?;
            return Err(anyhow!("{tag}: {e}"));
        }
        // HAProxy's master binds the listener before its worker runs: a SIGUSR2 then is lost.
        if kind == Kind::Haproxy {
            probe::wait_serving(r.listen, &host, r.started, Duration::from_secs(30));
        }
        for _ in 0..ph.start_reloads {
            match r.reload(ph.reload_timeout)? {
                Some(ms) => row.start_reload_ms.push(ms),
                None => {
                    row.start_reload_timeouts += 1;
                    break;
                }
            }
        }
        row.start_reload_healthy = r.healthy();
        r.proc.check_alive()?;
        r.proc.terminate(Duration::from_secs(5));
    }
    Ok(row)
}

/// Below this share of a core over the last [`FLAT_WINDOW`] (ran or waited to run: what it
/// wanted, not what a busy machine gave it), a proxy whose origins have all passed a probe
/// has settled.
pub const FLAT_SHARE: f64 = 0.3;

/// The window [`FLAT_SHARE`] is measured over.
pub const FLAT_WINDOW: Duration = Duration::from_secs(2);

/// What [`settle`] watches.
pub struct Watched<'a> {
    /// The proxy.
    pub proc: &'a mut Proc,
    /// When it was started.
    pub started: Instant,
    /// Its proxy listener and the host of pool 0 (time to serving).
    pub serving: Option<(SocketAddr, &'a str)>,
    /// Origins it probes.
    pub origins: usize,
    /// Origins with a good probe so far (`None`: the proxy does not check).
    pub healthy: &'a dyn Fn() -> Option<usize>,
}

/// From start until every origin passed its first check and the CPU curve went flat (below
/// [`FLAT_SHARE`] of a core over [`FLAT_WINDOW`]), or the timeout, or the memory cap: time to
/// serving, CPU and the timeline.
pub fn settle(w: Watched<'_>, row: &mut OriginRow, ph: &Phases) -> Result<()> {
    let pid = w.proc.pid();
    let mut next_sample = Duration::ZERO;
    let mut next_check = Duration::ZERO;
    let sample = Duration::from_millis(250);
    let back = (FLAT_WINDOW.as_millis() / sample.as_millis()) as usize;
    // The current stretch of ≥ 90 % of a core wanted, s.
    let mut stretch = 0.0;
    loop {
        let now = w.started.elapsed();
        if row.serving_ms.is_none() {
            match w.serving {
                Some((addr, host)) => {
                    if let Ok((200, _)) = probe::get(addr, host, "/") {
                        row.serving_ms = Some(w.started.elapsed().as_secs_f64() * 1000.0);
                    }
                }
                None => row.serving_ms = Some(f64::NAN),
            }
        }
        if now >= next_sample {
            let (cpu, rss, demand) = (probe::cpu_s(pid), probe::rss_mib(pid), probe::demand_s(pid));
            row.timeline.push((now.as_secs_f64(), cpu, rss, demand));
            if let [.., (t0, _, _, d0), _] = row.timeline.as_slice() {
                let t1 = now.as_secs_f64();
                stretch = if (demand - d0) / (t1 - t0) >= 0.9 {
                    stretch + (t1 - t0)
                } else {
                    0.0
                };
                row.pegged_s = row.pegged_s.max(stretch);
            }
            row.rss_peak_mib = row.rss_peak_mib.max(rss);
            next_sample += sample;
            if rss > ph.max_rss_mib {
                row.settle_cpu_s = cpu;
                row.note = format!("stopped at {rss:.0} MiB (cap {} MiB)", ph.max_rss_mib);
                return Ok(());
            }
            w.proc.check_alive()?;
            let n = row.timeline.len();
            let flat = n > back && {
                let (t0, _, _, d0) = row.timeline[n - 1 - back];
                (demand - d0) / (now.as_secs_f64() - t0) < FLAT_SHARE
            };
            if row.probed_s.is_some() && flat {
                row.settle_s = Some(now.as_secs_f64());
                row.settle_cpu_s = cpu;
                return Ok(());
            }
        }
        if now >= next_check && row.probed_s.is_none() {
            // A scrape of every origin's state costs the proxy too: less often for many.
            next_check = now + Duration::from_millis((w.origins as u64 / 5).clamp(50, 1000));
            match (w.healthy)() {
                Some(n) => {
                    row.healthy = n;
                    if n >= w.origins && row.serving_ms.is_some() {
                        row.probed_s = Some(w.started.elapsed().as_secs_f64());
                    }
                }
                None if row.serving_ms.is_some() => {
                    // nginx: nothing to settle; serving is all there is.
                    row.settle_cpu_s = probe::cpu_s(pid);
                    return Ok(());
                }
                None => {}
            }
        }
        if now > ph.settle_timeout {
            row.settle_cpu_s = probe::cpu_s(pid);
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(if row.serving_ms.is_none() {
            5
        } else {
            10
        }));
    }
}

/// Portico following etcd: the node starts from the store; `reloads` in-process puts of a
/// changed document right after start and as many once settled, each until the node's log
/// says it applied it.
pub fn run_store_row(
    estate: &Estate,
    bin: &Path,
    work: &Path,
    ph: &Phases,
    rt: &tokio::runtime::Runtime,
) -> Result<OriginRow> {
    let dir = work.join(format!(
        "portico-store-{}-{}ms",
        estate.origins, estate.interval_ms
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let etcd = portico_store::LocalEtcd::start_local(1, &dir.join("etcd"))
        .map_err(|e| anyhow!("cannot start etcd: {e}"))?;
    let url = etcd.url("portico-scale");
    let store = rt
        .block_on(portico_store::Store::connect(&url, Duration::from_secs(5)))
        .map_err(|e| anyhow!("{e}"))?;
    let mut e = estate.clone();
    let put = |e: &Estate| -> Result<String> {
        let text = configs::portico(e, NodeSection::Store);
        rt.block_on(store.put_config(&text, portico_store::Expect::Any))
            .map_err(|err| anyhow!("put: {err}"))?;
        Ok(fingerprint(&text))
    };
    put(&e)?;
    let (listen, admin) = (loopback()?, loopback()?);
    let mut cmd = Command::new(bin);
    cmd.arg("--store")
        .arg(format!(
            "etcd://{}/portico-scale",
            etcd.endpoints().join(",")
        ))
        .args(["--name", "scale", "--region", "bench"])
        .arg("--listen")
        .arg(listen.to_string())
        .arg("--admin-listen")
        .arg(admin.to_string())
        .arg("--cache")
        .arg(dir.join("cache.json"))
        .env_remove("RUST_LOG");
    let started = Instant::now();
    let mut proc = Proc::spawn("portico-store", cmd, &dir)?;
    let mut log = LogTail::new(&proc.log);
    let mut row = OriginRow::new("portico-store", estate);
    if let Err(err) = wait_port(listen, Duration::from_secs(30)) {
        proc.check_alive()?;
        bail!("store node: {err}");
    }
    let timed = |e: &mut Estate, log: &mut LogTail| -> Result<Option<f64>> {
        e.generation += 1;
        let text = configs::portico(e, NodeSection::Store);
        let version = fingerprint(&text);
        let t0 = Instant::now();
        rt.block_on(store.put_config(&text, portico_store::Expect::Any))
            .map_err(|err| anyhow!("put: {err}"))?;
        Ok(log
            .wait_applied(&version, t0, ph.reload_timeout)
            .map(|d| d.as_secs_f64() * 1000.0))
    };
    for _ in 0..ph.start_reloads {
        match timed(&mut e, &mut log)? {
            Some(ms) => row.start_reload_ms.push(ms),
            None => {
                row.start_reload_timeouts += 1;
                break;
            }
        }
    }
    row.start_reload_healthy = probe::portico_healthy(admin);
    let healthy = move || probe::portico_healthy(admin);
    settle(
        Watched {
            proc: &mut proc,
            started,
            // Its start reloads come first: time to serving is the file rows'.
            serving: None,
            origins: estate.origins,
            healthy: &healthy,
        },
        &mut row,
        ph,
    )?;
    row.serving_ms = None;
    std::thread::sleep(Duration::from_millis(500));
    for _ in 0..ph.reloads {
        match timed(&mut e, &mut log)? {
            Some(ms) => row.reload_ms.push(ms),
            None => {
                row.reload_timeouts += 1;
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    row.rss_mib = probe::rss_mib(proc.pid());
    row.note = "store reload: in-process etcd put → the node's log line \"config V applied\"; the start reloads ran during its first probes (settle CPU includes them)".into();
    proc.check_alive()?;
    proc.terminate(Duration::from_secs(5));
    drop(etcd);
    Ok(row)
}
