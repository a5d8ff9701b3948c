//! How the simulation runs edge nodes and origins: in this process, or as `portico` and `portico-origin` children that are stopped with the runner; the pid file that finds them (and the etcd members) after a SIGKILLed runner.

use crate::supervise;
use anyhow::{Context, Result, bail};
use std::fs::File;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Where edge nodes and origins run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Launch {
    /// Threads of this process (`portico::Node`, `portico_origin::start`): what the tests use.
    #[default]
    InProcess,
    /// Child processes: the `portico` and `portico-origin` binaries found in `bin_dir`.
    Subprocess {
        /// Directory holding both binaries.
        bin_dir: PathBuf,
    },
}

impl Launch {
    /// Subprocesses when `portico` and `portico-origin` sit next to the running executable
    /// (`target/release/` after `cargo build --release`), else `None`.
    pub fn beside_current_exe() -> Option<Launch> {
        let dir = std::env::current_exe().ok()?.parent()?.to_path_buf();
        Launch::in_dir(&dir)
    }

    /// Subprocesses from `dir` when `portico` and `portico-origin` are both there. (Network
    /// mode also runs `portico-sim forward` from there.)
    pub fn in_dir(dir: &Path) -> Option<Launch> {
        (dir.join("portico").is_file() && dir.join("portico-origin").is_file()).then(|| {
            Launch::Subprocess {
                bin_dir: dir.to_path_buf(),
            }
        })
    }
}

/// A child process that is stopped (SIGTERM, then SIGKILL) when dropped.
///
/// Each child runs in its own process group, so a Ctrl-C in the terminal reaches only the
/// runner, which then stops the children in order. `unsafe` is forbidden in this workspace,
/// so there is no `prctl(PR_SET_PDEATHSIG)`: a runner that is itself SIGKILLed leaves its
/// children running. `portico-sim clean` (and the next run's start) kills them by the pid file.
#[derive(Debug)]
pub struct ChildProc {
    /// Node or origin name.
    pub name: String,
    /// Where its stdout and stderr go.
    pub log: PathBuf,
    child: Child,
    status: Option<ExitStatus>,
    /// Signals go to its whole process group (a shell script and the commands it runs).
    group: bool,
}

impl ChildProc {
    /// Starts `cmd` with stdout and stderr appended to `log`.
    pub fn spawn(name: &str, mut cmd: Command, log: &Path) -> Result<ChildProc> {
        let out = File::create(log).with_context(|| format!("cannot create {}", log.display()))?;
        let err = out.try_clone()?;
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .process_group(0);
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start {name}: {cmd:?}"))?;
        supervise::add_child(child.id());
        Ok(ChildProc {
            name: name.to_string(),
            log: log.to_path_buf(),
            child,
            status: None,
            group: false,
        })
    }

    /// From now on, stopping it signals its whole process group (it leads one): for a shell
    /// script, whose `sleep` and `curl` would outlive it otherwise.
    pub fn signal_group(mut self) -> ChildProc {
        self.group = true;
        self
    }

    /// `kill -SIG PID`, or `kill -SIG -- -PGID` for a group; whether it was sent.
    fn signal(&self, sig: &str) -> bool {
        let target = if self.group {
            format!("-{}", self.pid())
        } else {
            self.pid().to_string()
        };
        Command::new("kill")
            .args([sig, "--", &target])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its exit status, once it has exited (never blocks).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().ok().flatten();
            if self.status.is_some() {
                supervise::remove_child(self.pid());
            }
        }
        self.status
    }

    /// SIGKILL, and reap it: a crash.
    pub fn kill(&mut self) {
        if self.exited().is_none() {
            if !self.group || !self.signal("-KILL") {
                let _ = self.child.kill();
            }
            self.status = self.child.wait().ok();
            supervise::remove_child(self.pid());
        }
    }

    /// Asks it to stop gracefully (SIGTERM through `kill(1)`, since `unsafe` is forbidden).
    pub fn terminate(&mut self) {
        if self.exited().is_none() && !self.signal("-TERM") {
            self.kill();
        }
    }

    /// Waits until it has exited or `deadline` has passed, then SIGKILLs it if need be.
    pub fn wait_until(&mut self, deadline: Instant) {
        while self.exited().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill();
    }

    /// The last `lines` lines of its log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for ChildProc {
    fn drop(&mut self) {
        self.terminate();
        self.wait_until(Instant::now() + Duration::from_secs(3));
    }
}

/// Whether process `pid` exists and is not a zombie.
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z'))
    })
}

fn comm(pid: &str) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// The pid file of a run: `PID runner COMM` for the runner itself, then `PID NAME` for each
/// child as it starts, so a SIGKILLed runner's children can be found. Removed on drop.
#[derive(Debug)]
pub struct PidFile {
    path: PathBuf,
}

impl PidFile {
    /// Creates `path` for this runner. A pid file left by a dead runner is cleaned up first
    /// (its children killed); one whose runner still lives is an error.
    pub fn create(path: &Path) -> Result<PidFile> {
        if let Some((pid, _)) = live_runner(path) {
            bail!(
                "another simulation (pid {pid}) runs from {}; stop it or use another --work-dir",
                path.parent().unwrap_or(Path::new(".")).display()
            );
        }
        for k in kill_from_pid_file(path) {
            log::warn!("killed {k}, left behind by an earlier run");
        }
        let me = std::process::id();
        std::fs::write(path, format!("{me} runner {}\n", comm(&me.to_string())))
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(PidFile {
            path: path.to_path_buf(),
        })
    }

    /// Adds a child.
    pub fn add(&self, pid: u32, name: &str) -> Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.path)
            .with_context(|| format!("cannot open {}", self.path.display()))?;
        writeln!(f, "{pid} {name}")?;
        Ok(())
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The runner that wrote the pid file at `path`, if it still runs: its pid and name.
pub fn live_runner(path: &Path) -> Option<(u32, String)> {
    let text = std::fs::read_to_string(path).ok()?;
    let first = text.lines().next()?;
    let mut parts = first.splitn(3, ' ');
    let (pid, kind, name) = (parts.next()?, parts.next()?, parts.next().unwrap_or(""));
    let pid: u32 = pid.parse().ok()?;
    (kind == "runner" && pid != std::process::id() && alive(pid) && comm(&pid.to_string()) == name)
        .then(|| (pid, name.to_string()))
}

/// Whether a live process `pid` listed as `name` in a pid file still runs what the runner
/// started under that name (and not a process that reused its pid): a `portico*` binary,
/// `etcd` for an `etcd-*` entry (the store's members), `bird` for a `bird-*` entry and the
/// shell running `healthcheck.sh` for an `anycast-*` entry (network mode's BIRD and health
/// checks).
fn ours(pid: &str, name: &str) -> bool {
    let c = comm(pid);
    let cmdline = || std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    c.starts_with("portico")
        || (name.starts_with("etcd-") && c == "etcd")
        || (name.starts_with("bird-") && c == "bird")
        || (name.starts_with("anycast-")
            && String::from_utf8_lossy(&cmdline()).contains("healthcheck.sh"))
}

/// Kills the children listed in a pid file (`PID NAME` per line) that still run what the
/// runner started ([`ours`]; a health check with its process group), then removes the file.
/// Returns what it killed. The caller checks that the runner is gone ([`live_runner`]).
pub fn kill_from_pid_file(path: &Path) -> Vec<String> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    let (mut killed, mut pids) = (Vec::new(), Vec::new());
    for line in text.lines() {
        let Some((pid, name)) = line.split_once(' ') else {
            continue;
        };
        if name.starts_with("runner") || pid.parse::<u32>().map_or(true, |p| !alive(p)) {
            continue;
        }
        if ours(pid, name) {
            // A health check leads its process group (its sleep and curl).
            let target = if name.starts_with("anycast-") {
                format!("-{pid}")
            } else {
                pid.to_string()
            };
            let ok = Command::new("kill")
                .args(["-KILL", "--", &target])
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                killed.push(format!("{name} (pid {pid})"));
                pids.push(pid.parse::<u32>().unwrap_or(0));
            }
        }
    }
    // SIGKILL is asynchronous: wait until they are gone, so their ports are free.
    let deadline = Instant::now() + Duration::from_secs(5);
    while pids.iter().any(|p| alive(*p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = std::fs::remove_file(path);
    killed
}
