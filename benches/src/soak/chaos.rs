//! What goes wrong during the soak: origins killed (SIGKILL, restarted later), hung and 503'd at
//! random, and config reloads (file + SIGHUP, or `PUT /config`), all from one seeded RNG each.

use super::config::{self, Spec};
use super::origin::{self, Fault, epoch_ms};
use crate::procs::Proc;
use anyhow::{Context, Result};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// What an origin is doing now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Serving.
    Up,
    /// Hung or answering 503.
    Faulty(Fault),
    /// Killed; restarted when it is restored.
    Killed,
}

/// One origin process of the pool.
pub struct Slot {
    /// Its name in the pool.
    pub name: String,
    /// Where it serves.
    pub port: u16,
    /// Its control listener.
    pub control: SocketAddr,
    /// Its request log.
    pub log: PathBuf,
    /// The running process (none while killed).
    pub proc: Option<Proc>,
    /// What it is doing.
    pub state: State,
    /// How many times it was started.
    pub starts: u32,
}

/// One chaos event.
#[derive(Debug, Clone)]
pub struct Event {
    /// When, ms since the epoch.
    pub at_ms: u64,
    /// Which origin (index into the slots).
    pub origin: usize,
    /// `kill`, `hang`, `503` or `restore`.
    pub what: &'static str,
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

async fn wait_port(addr: SocketAddr, timeout: Duration) -> Result<()> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return Ok(());
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "{addr} did not start listening"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

impl Slot {
    /// Starts (or restarts) the origin process: `exe origin ...`.
    pub async fn start(&mut self, exe: &Path, dir: &Path) -> Result<()> {
        self.starts += 1;
        let mut cmd = Command::new(exe);
        cmd.arg("origin")
            .arg("--name")
            .arg(&self.name)
            .arg("--listen")
            .arg(loopback(self.port).to_string())
            .arg("--control")
            .arg(self.control.to_string())
            .arg("--log")
            .arg(&self.log);
        let name = format!("origin-{}-{}", self.name, self.starts);
        self.proc = Some(Proc::spawn(&name, cmd, dir)?);
        wait_port(self.control, Duration::from_secs(10)).await?;
        wait_port(loopback(self.port), Duration::from_secs(10)).await?;
        self.state = State::Up;
        Ok(())
    }

    /// SIGKILL, like a crash.
    pub fn kill(&mut self) {
        if let Some(mut p) = self.proc.take() {
            let _ = p.child.kill();
            let _ = p.child.wait();
        }
        self.state = State::Killed;
    }
}

/// Counts of what the chaos did.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    /// Every fault and restore, in order.
    pub events: Vec<Event>,
}

impl Tally {
    /// How many events of a kind.
    pub fn count(&self, what: &str) -> usize {
        self.events.iter().filter(|e| e.what == what).count()
    }
}

/// Faults and restores at random every `min_ms..max_ms` until `stop`: each step picks an
/// origin; a faulty one is restored, a healthy one gets a random fault unless `max_faulty`
/// origins are already down (then one of those is restored). Leaves every origin up.
#[allow(clippy::too_many_arguments)]
pub async fn faults(
    slots: Arc<tokio::sync::Mutex<Vec<Slot>>>,
    exe: PathBuf,
    dir: PathBuf,
    seed: u64,
    every_ms: (u64, u64),
    max_faulty: usize,
    stop: Arc<AtomicBool>,
) -> Result<Tally> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut tally = Tally::default();
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(rng.u64(every_ms.0..=every_ms.1))).await;
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let mut s = slots.lock().await;
        let n = s.len();
        let down: Vec<usize> = (0..n).filter(|&i| s[i].state != State::Up).collect();
        let mut i = rng.usize(0..n);
        let restore = s[i].state != State::Up || down.len() >= max_faulty;
        if restore && s[i].state == State::Up {
            i = down[rng.usize(0..down.len())];
        }
        let what = if restore {
            restore_one(&mut s[i], &exe, &dir).await?;
            "restore"
        } else {
            match rng.u8(0..3) {
                0 => {
                    s[i].kill();
                    "kill"
                }
                1 => {
                    origin::set_fault(s[i].control, Fault::Hang).await?;
                    s[i].state = State::Faulty(Fault::Hang);
                    "hang"
                }
                _ => {
                    origin::set_fault(s[i].control, Fault::Status503).await?;
                    s[i].state = State::Faulty(Fault::Status503);
                    "503"
                }
            }
        };
        tally.events.push(Event {
            at_ms: epoch_ms(),
            origin: i,
            what,
        });
    }
    let mut s = slots.lock().await;
    for (i, slot) in s.iter_mut().enumerate() {
        if slot.state != State::Up {
            restore_one(slot, &exe, &dir).await?;
            tally.events.push(Event {
                at_ms: epoch_ms(),
                origin: i,
                what: "restore",
            });
        }
    }
    Ok(tally)
}

async fn restore_one(slot: &mut Slot, exe: &Path, dir: &Path) -> Result<()> {
    match slot.state {
        State::Up => Ok(()),
        State::Killed => slot
            .start(exe, dir)
            .await
            .with_context(|| format!("restarting origin {}", slot.name)),
        State::Faulty(_) => {
            origin::set_fault(slot.control, Fault::None).await?;
            slot.state = State::Up;
            Ok(())
        }
    }
}

/// What the reloads did.
#[derive(Debug, Clone, Default)]
pub struct Reloads {
    /// Files rewritten and SIGHUPs sent.
    pub sighup: u64,
    /// `PUT /config` calls made.
    pub put: u64,
    /// `PUT /config` calls answered 200.
    pub put_ok: u64,
    /// The other answers to `PUT /config`, as text.
    pub put_failures: Vec<String>,
}

/// Every `min_ms..max_ms`, new random weights, alternately by rewriting the config file and
/// sending SIGHUP, and by `PUT /config` with `token`, until `stop`.
#[allow(clippy::too_many_arguments)]
pub async fn reloads(
    spec: Spec,
    path: PathBuf,
    pid: u32,
    admin: SocketAddr,
    token: String,
    seed: u64,
    every_ms: (u64, u64),
    stop: Arc<AtomicBool>,
) -> Result<Reloads> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut r = Reloads::default();
    let mut by_file = true;
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(rng.u64(every_ms.0..=every_ms.1))).await;
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let weights: Vec<u32> = spec.origins.iter().map(|_| rng.u32(1..=1000)).collect();
        let doc = config::render(&spec, &weights);
        if by_file {
            config::write_atomically(&path, &doc)?;
            let status = Command::new("kill")
                .arg("-HUP")
                .arg(pid.to_string())
                .status()?;
            anyhow::ensure!(status.success(), "kill -HUP {pid} failed");
            r.sighup += 1;
        } else {
            r.put += 1;
            let auth = format!("Bearer {token}");
            match super::http_call(admin, "PUT", "/config", &[("Authorization", &auth)], &doc).await
            {
                Ok((200, _)) => r.put_ok += 1,
                Ok((code, body)) => r.put_failures.push(format!("{code}: {}", body.trim())),
                Err(e) => r.put_failures.push(format!("{e:#}")),
            }
            // Keep the file in step, so the next SIGHUP changes only the weights.
            config::write_atomically(&path, &doc)?;
        }
        by_file = !by_file;
    }
    Ok(r)
}
