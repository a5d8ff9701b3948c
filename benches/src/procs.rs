//! Child processes for benchmarks: peer lookup, spawning with logs, readiness, CPU pinning; nginx prefixes and answer headers shared by the load generators.

use std::fs::File;
use std::io;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Finds an executable on `PATH` (and in `/usr/sbin`, `/sbin`, where Debian puts nginx/haproxy).
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([
            PathBuf::from("/usr/sbin"),
            PathBuf::from("/sbin"),
            PathBuf::from("/usr/local/sbin"),
        ])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// The line printed when a peer is missing.
pub fn skip_line(peer: &str, package: &str) -> String {
    format!("skipped {peer}: not installed (`make bench-deps`, or `apt-get install {package}`)")
}

/// A binary built from this workspace: `$PORTICO_BIN_DIR/NAME`, else `NAME` beside the running
/// benchmark (cargo puts every binary of a profile in one directory, `target/release` or under
/// `$CARGO_TARGET_DIR`).
pub fn workspace_bin(name: &str) -> PathBuf {
    if let Some(dir) = std::env::var_os("PORTICO_BIN_DIR") {
        return PathBuf::from(dir).join(name);
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join(name)))
        .unwrap_or_else(|| PathBuf::from(name))
}

/// A free loopback port for a child to bind: below the ephemeral range, so that no client
/// binding port 0 takes it first (`portico_store::free_loopback_addrs`).
pub fn free_port() -> io::Result<u16> {
    let addrs = portico_store::free_loopback_addrs(1).map_err(io::Error::other)?;
    Ok(addrs[0].port())
}

/// Waits until `addr` accepts TCP connections.
pub fn wait_port(addr: SocketAddr, timeout: Duration) -> io::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("{addr} did not start listening"),
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Prefixes a command with `taskset -c CPUS` when taskset exists and `cpus` is set.
pub fn pinned(cpus: Option<&str>, program: &Path) -> Command {
    match (cpus, which("taskset")) {
        (Some(cpus), Some(taskset)) => {
            let mut c = Command::new(taskset);
            c.arg("-c").arg(cpus).arg(program);
            c
        }
        _ => Command::new(program),
    }
}

/// A supervised child: its output goes to `<dir>/<name>.log`; it is killed when dropped.
pub struct Proc {
    /// A short name for messages.
    pub name: String,
    /// The child.
    pub child: Child,
    /// Where its stdout and stderr go.
    pub log: PathBuf,
}

impl Proc {
    /// Spawns `cmd` with its output in `dir/name.log`.
    pub fn spawn(name: &str, mut cmd: Command, dir: &Path) -> io::Result<Proc> {
        let log = dir.join(format!("{name}.log"));
        let out = File::create(&log)?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("cannot start {name}: {e}")))?;
        Ok(Proc {
            name: name.to_string(),
            child,
            log,
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Fails with the tail of its log if the process has already exited.
    pub fn check_alive(&mut self) -> io::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            let tail: Vec<&str> = log
                .lines()
                .rev()
                .take(15)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            return Err(io::Error::other(format!(
                "{} exited ({status}):\n{}",
                self.name,
                tail.join("\n")
            )));
        }
        Ok(())
    }

    /// Sends SIGTERM and waits up to `grace`, then kills.
    pub fn terminate(&mut self, grace: Duration) {
        if self.child.try_wait().ok().flatten().is_some() {
            return;
        }
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid().to_string())
            .status();
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if self.child.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Resident memory in KiB (from `/proc/PID/status`).
    pub fn rss_kib(&self) -> Option<u64> {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        s.lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.terminate(Duration::from_secs(2));
    }
}

/// A prefix directory for one nginx, with its temp dirs (writable by its worker user).
pub fn nginx_prefix(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for sub in [
        "tmp/body",
        "tmp/proxy",
        "tmp/fastcgi",
        "tmp/uwsgi",
        "tmp/scgi",
    ] {
        let p = dir.join(sub);
        std::fs::create_dir_all(&p)?;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o777))?;
    }
    Ok(())
}

/// Header `name` of an answer as text (`X-Served-By`, `X-Body-Length` of the demo origin).
pub fn header_text(headers: &http::HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_sh_and_not_a_made_up_name() {
        assert!(which("sh").is_some());
        assert!(which("portico-no-such-binary").is_none());
    }

    #[test]
    fn a_dead_child_reports_its_log() {
        let dir = std::env::temp_dir();
        let mut c = Command::new("sh");
        c.arg("-c").arg("echo boom; exit 3");
        let mut p = Proc::spawn("boom-test", c, &dir).unwrap();
        let _ = p.child.wait();
        let err = p.check_alive().unwrap_err().to_string();
        assert!(err.contains("boom"), "{err}");
    }
}
