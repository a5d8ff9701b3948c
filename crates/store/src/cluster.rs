//! A real local etcd cluster (child processes) for tests, the simulation and benchmarks.

use crate::free_ports::free_loopback_addrs;
use crate::url::StoreUrl;
use etcd_client::{Client, ConnectOptions, GetOptions};
use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long [`LocalEtcd::start`] and [`LocalEtcd::start_member`] wait for etcd to answer.
pub const START_DEADLINE: Duration = Duration::from_secs(20);

/// The name of each member's log file, in its [`MemberSpec::data_dir`].
pub const LOG_FILE: &str = "etcd.log";

const INSTALL_HINT: &str =
    "etcd not found: install it with  apt-get install -y etcd-server  (or set PORTICO_ETCD)";

/// The etcd binary to run: `$PORTICO_ETCD` if set, else `etcd` on `PATH`, else
/// `/usr/bin/etcd`. The error says how to install it.
pub fn etcd_binary() -> Result<PathBuf, String> {
    find_etcd(
        std::env::var_os("PORTICO_ETCD"),
        std::env::var_os("PATH"),
        Path::new("/usr/bin/etcd"),
    )
}

fn find_etcd(
    explicit: Option<OsString>,
    path: Option<OsString>,
    fallback: &Path,
) -> Result<PathBuf, String> {
    if let Some(explicit) = explicit.filter(|p| !p.is_empty()) {
        let explicit = PathBuf::from(explicit);
        return if explicit.is_file() {
            Ok(explicit)
        } else {
            Err(format!(
                "{INSTALL_HINT}: PORTICO_ETCD={} is not a file",
                explicit.display()
            ))
        };
    }
    let on_path = path.and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("etcd"))
            .find(|p| p.is_file())
    });
    on_path
        .or_else(|| fallback.is_file().then(|| fallback.to_path_buf()))
        .ok_or_else(|| INSTALL_HINT.to_string())
}

/// One member of a local cluster: its name, addresses and data dir.
#[derive(Debug, Clone)]
pub struct MemberSpec {
    /// The member's name (`--name`), unique in the cluster.
    pub name: String,
    /// Where it serves clients.
    pub client: SocketAddr,
    /// Where it talks to its peers.
    pub peer: SocketAddr,
    /// Its directory, created with mode 0700 if missing: etcd's `--data-dir` is `data` in it
    /// (kept across [`LocalEtcd::start_member`]), its log (stdout and stderr) is [`LOG_FILE`].
    pub data_dir: PathBuf,
    /// A command that the etcd command line is appended to, e.g. `["ip", "netns", "exec",
    /// "ns1"]` to start it in a network namespace; empty normally. It must exec etcd (not fork),
    /// so that killing the child kills etcd.
    pub command_prefix: Vec<String>,
}

struct Member {
    spec: MemberSpec,
    child: Option<Child>,
}

/// A running local etcd cluster; every member is killed when it is dropped.
pub struct LocalEtcd {
    binary: PathBuf,
    members: Vec<Member>,
    initial_cluster: String,
    token: String,
}

impl LocalEtcd {
    /// Starts every member as a new cluster (same `--initial-cluster`, a unique token, fast Raft
    /// timings for loopback) and waits until the cluster answers a linearizable read, for at
    /// most [`START_DEADLINE`]. On failure every member is stopped and the error includes the
    /// tail of the members' logs.
    pub fn start(specs: Vec<MemberSpec>) -> Result<LocalEtcd, String> {
        if specs.is_empty() {
            return Err("a local etcd cluster needs at least one member".to_string());
        }
        let binary = etcd_binary()?;
        let initial_cluster = specs
            .iter()
            .map(|s| format!("{}=http://{}", s.name, s.peer))
            .collect::<Vec<_>>()
            .join(",");
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let token = format!(
            "portico-{}-{nanos}-{:08x}",
            std::process::id(),
            fastrand::u32(..)
        );
        let mut cluster = LocalEtcd {
            binary,
            members: specs
                .into_iter()
                .map(|spec| Member { spec, child: None })
                .collect(),
            initial_cluster,
            token,
        };
        for i in 0..cluster.members.len() {
            cluster.spawn(i, "new")?;
        }
        let endpoints = cluster.endpoints();
        cluster.wait_until(|| probe(&endpoints, Probe::Linearizable), "the cluster")?;
        Ok(cluster)
    }

    /// Starts a cluster of `members` members on free loopback ports, with data dirs
    /// `dir/m0`, `dir/m1`, ...
    pub fn start_local(members: usize, dir: &Path) -> Result<LocalEtcd, String> {
        let ports = free_loopback_addrs(members * 2)?;
        let specs = (0..members)
            .map(|i| MemberSpec {
                name: format!("m{i}"),
                client: ports[2 * i],
                peer: ports[2 * i + 1],
                data_dir: dir.join(format!("m{i}")),
                command_prefix: Vec::new(),
            })
            .collect();
        LocalEtcd::start(specs)
    }

    /// Every member's client endpoint, `HOST:PORT`, in member order (stopped members too).
    pub fn endpoints(&self) -> Vec<String> {
        self.members
            .iter()
            .map(|m| m.spec.client.to_string())
            .collect()
    }

    /// A store URL naming every member, with this prefix.
    pub fn url(&self, prefix: &str) -> StoreUrl {
        StoreUrl {
            endpoints: self.endpoints(),
            prefix: prefix.trim_matches('/').to_string(),
        }
    }

    /// The number of members.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// True if the cluster has no member (never, once started).
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The spec member `i` was started with.
    pub fn spec(&self, i: usize) -> Option<&MemberSpec> {
        self.members.get(i).map(|m| &m.spec)
    }

    /// Kills member `i` (SIGKILL) and waits for it to exit. Nothing if it is not running.
    pub fn stop_member(&mut self, i: usize) {
        if let Some(member) = self.members.get_mut(i)
            && let Some(mut child) = member.child.take()
        {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Restarts member `i` with its data dir (`--initial-cluster-state existing`) and waits,
    /// for at most [`START_DEADLINE`], until it answers a status request. It may still have no
    /// leader then (when a quorum is down).
    pub fn start_member(&mut self, i: usize) -> Result<(), String> {
        if i >= self.members.len() {
            return Err(format!(
                "no member {i}: the cluster has {}",
                self.members.len()
            ));
        }
        if self.is_running(i) {
            return Ok(());
        }
        self.spawn(i, "existing")?;
        let endpoint = vec![self.members[i].spec.client.to_string()];
        let name = format!("member {}", self.members[i].spec.name);
        self.wait_until(|| probe(&endpoint, Probe::Status), &name)
    }

    /// Freezes member `i` (SIGSTOP): its connections stay open but it answers nothing, like a
    /// hung process or a silent network partition. Undo with [`LocalEtcd::resume_member`].
    pub fn pause_member(&self, i: usize) -> Result<(), String> {
        self.signal(i, "-STOP")
    }

    /// Resumes member `i` after [`LocalEtcd::pause_member`] (SIGCONT).
    pub fn resume_member(&self, i: usize) -> Result<(), String> {
        self.signal(i, "-CONT")
    }

    fn signal(&self, i: usize, signal: &str) -> Result<(), String> {
        let pid = self
            .members
            .get(i)
            .and_then(|m| m.child.as_ref())
            .map(Child::id)
            .ok_or_else(|| format!("member {i} is not running"))?;
        let status = Command::new("kill")
            .arg(signal)
            .arg(pid.to_string())
            .status()
            .map_err(|e| format!("cannot run kill: {e}"))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("kill {signal} {pid} failed ({status})"))
        }
    }

    /// True if member `i` is running (started and not exited).
    pub fn is_running(&self, i: usize) -> bool {
        self.members
            .get(i)
            .and_then(|m| m.child.as_ref())
            // A child that exited stays a zombie (state Z) until it is waited for, so its pid
            // is not reused meanwhile.
            .is_some_and(|c| proc_state(c.id()).is_some_and(|s| s != 'Z' && s != 'X'))
    }

    /// The process ids of the running members, in member order.
    pub fn pids(&self) -> Vec<u32> {
        (0..self.members.len())
            .filter(|&i| self.is_running(i))
            .filter_map(|i| self.members[i].child.as_ref().map(Child::id))
            .collect()
    }

    /// The last `lines` lines of every member's log, each headed by the member's name.
    pub fn log_tail(&self, lines: usize) -> String {
        self.members
            .iter()
            .map(|m| {
                let path = m.spec.data_dir.join(LOG_FILE);
                format!(
                    "--- etcd member {} ({}):\n{}",
                    m.spec.name,
                    path.display(),
                    tail(&path, lines)
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn spawn(&mut self, i: usize, state: &str) -> Result<(), String> {
        let member = &mut self.members[i];
        let spec = &member.spec;
        create_private_dir(&spec.data_dir)?;
        let log_path = spec.data_dir.join(LOG_FILE);
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| format!("cannot open {}: {e}", log_path.display()))?;
        let log_err = log
            .try_clone()
            .map_err(|e| format!("cannot open {}: {e}", log_path.display()))?;
        let client_url = format!("http://{}", spec.client);
        let peer_url = format!("http://{}", spec.peer);
        let mut command = match spec.command_prefix.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(&self.binary);
                c
            }
            None => Command::new(&self.binary),
        };
        command
            .arg("--name")
            .arg(&spec.name)
            .arg("--data-dir")
            .arg(spec.data_dir.join("data"))
            .arg("--listen-client-urls")
            .arg(&client_url)
            .arg("--advertise-client-urls")
            .arg(&client_url)
            .arg("--listen-peer-urls")
            .arg(&peer_url)
            .arg("--initial-advertise-peer-urls")
            .arg(&peer_url)
            .arg("--initial-cluster")
            .arg(&self.initial_cluster)
            .arg("--initial-cluster-state")
            .arg(state)
            .arg("--initial-cluster-token")
            .arg(&self.token)
            .arg("--heartbeat-interval")
            .arg("50")
            .arg("--election-timeout")
            .arg("500")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        let child = command
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.binary.display()))?;
        member.child = Some(child);
        Ok(())
    }

    /// Polls `ready` until it succeeds or [`START_DEADLINE`] passes; fails early when a member
    /// exits. On failure stops nothing (the caller's drop does) and reports the logs.
    fn wait_until(
        &mut self,
        mut ready: impl FnMut() -> Result<(), String>,
        what: &str,
    ) -> Result<(), String> {
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            let mut exited = None;
            for m in &mut self.members {
                if let Some(child) = m.child.as_mut()
                    && let Ok(Some(status)) = child.try_wait()
                {
                    m.child = None;
                    exited = Some(format!(
                        "etcd member {} exited ({status}) while starting",
                        m.spec.name
                    ));
                    break;
                }
            }
            if let Some(exited) = exited {
                return Err(format!("{exited}\n{}", self.log_tail(20)));
            }
            let last = match ready() {
                Ok(()) => return Ok(()),
                Err(e) => e,
            };
            if Instant::now() >= deadline {
                return Err(format!(
                    "{what} did not answer within {} s (last error: {last})\n{}",
                    START_DEADLINE.as_secs(),
                    self.log_tail(20)
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl std::fmt::Debug for LocalEtcd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalEtcd")
            .field("endpoints", &self.endpoints())
            .field("pids", &self.pids())
            .finish_non_exhaustive()
    }
}

impl Drop for LocalEtcd {
    fn drop(&mut self) {
        for m in &mut self.members {
            if let Some(mut child) = m.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

#[derive(Clone, Copy)]
enum Probe {
    /// A linearizable read through every endpoint (needs a quorum and a leader).
    Linearizable,
    /// A status request to the (single) endpoint (answers without a leader).
    Status,
}

/// One readiness check, run on a thread of its own with its own runtime, so that it works from
/// inside an async test as well as from plain code.
fn probe(endpoints: &[String], kind: Probe) -> Result<(), String> {
    let endpoints = endpoints.to_vec();
    let check = std::thread::spawn(move || -> Result<(), String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start a runtime: {e}"))?;
        runtime.block_on(async move {
            let timeout = Duration::from_secs(1);
            let options = ConnectOptions::new()
                .with_connect_timeout(timeout)
                .with_timeout(timeout);
            let attempt = async {
                let mut client = Client::connect(&endpoints, Some(options))
                    .await
                    .map_err(|e| e.to_string())?;
                match kind {
                    Probe::Linearizable => client
                        .get("/portico-probe", Some(GetOptions::new().with_count_only()))
                        .await
                        .map(|_| ()),
                    Probe::Status => client.status().await.map(|_| ()),
                }
                .map_err(|e| e.to_string())
            };
            tokio::time::timeout(timeout, attempt)
                .await
                .map_err(|_| "no answer within 1 s".to_string())?
        })
    });
    check
        .join()
        .map_err(|_| "the readiness check panicked".to_string())?
}

/// Creates `dir` (and its parents) and makes it mode 0700, as etcd requires of its data dir.
fn create_private_dir(dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| format!("cannot chmod {}: {e}", dir.display()))
}

/// The state letter of process `pid` from `/proc/PID/stat` (`R`, `S`, `Z`...).
fn proc_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain spaces: the state follows the last ')'.
    let after = stat.rsplit_once(')')?.1;
    after.trim_start().chars().next()
}

/// The last `lines` lines of a file (at most its last 64 KiB), or a note that it cannot be read.
fn tail(path: &Path, lines: usize) -> String {
    let read = || -> std::io::Result<String> {
        let mut file = File::open(path)?;
        let len = file.metadata()?.len();
        file.seek(SeekFrom::Start(len.saturating_sub(64 * 1024)))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    };
    match read() {
        Ok(text) => {
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("(cannot read: {e})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_state_of_this_process_is_running_or_sleeping() {
        let state = proc_state(std::process::id()).unwrap();
        assert!("RSD".contains(state), "{state}");
    }

    #[test]
    fn etcd_is_found_by_env_then_path_then_fallback() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        let etcd = bin.join("etcd");
        std::fs::write(&etcd, "").unwrap();
        let missing = dir.path().join("missing");
        let path = Some(OsString::from(bin.as_os_str()));

        let explicit = Some(OsString::from(etcd.as_os_str()));
        assert_eq!(find_etcd(explicit, None, &missing).unwrap(), etcd);
        assert_eq!(find_etcd(None, path.clone(), &missing).unwrap(), etcd);
        assert_eq!(find_etcd(Some("".into()), path, &missing).unwrap(), etcd);
        assert_eq!(find_etcd(None, None, &etcd).unwrap(), etcd);
    }

    #[test]
    fn a_missing_etcd_says_how_to_install_it() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing");
        let empty_path = Some(OsString::from(dir.path().as_os_str()));
        let e = find_etcd(None, empty_path, &missing).unwrap_err();
        assert_eq!(
            e,
            "etcd not found: install it with  apt-get install -y etcd-server  (or set PORTICO_ETCD)"
        );
        let e = find_etcd(Some(missing.clone().into()), None, &missing).unwrap_err();
        assert!(
            e.starts_with(INSTALL_HINT) && e.contains("is not a file"),
            "{e}"
        );
    }

    #[test]
    fn tail_gives_the_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        std::fs::write(&path, "a\nb\nc\nd\n").unwrap();
        assert_eq!(tail(&path, 2), "c\nd");
        assert!(tail(&dir.path().join("missing"), 2).starts_with("(cannot read"));
    }
}
