//! CPU time and resident memory of a process and its descendants, read from `/proc`.

use std::time::Duration;

/// Clock ticks per second of `/proc/PID/stat` times (`getconf CLK_TCK`; 100 on Linux): CPU
/// time reads in steps of 10 ms, so a per-request figure is only as good as the ticks behind
/// it (an 8 s run at one busy core is 800 ticks, ±0.1 %).
const CLK_TCK: f64 = 100.0;

/// The fields of `/proc/PID/stat` this benchmark uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// Parent process id.
    pub ppid: u32,
    /// User time, in clock ticks, of every thread of the process.
    pub utime: u64,
    /// System (kernel) time, in clock ticks, of every thread of the process.
    pub stime: u64,
}

impl Stat {
    /// User plus system time, in clock ticks.
    pub fn ticks(&self) -> u64 {
        self.utime + self.stime
    }
}

/// Parses the text of `/proc/PID/stat` (the command name may hold spaces and parentheses).
pub fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 (state): ppid is field 4, utime 14, stime 15.
    let ppid = fields.get(1)?.parse().ok()?;
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(Stat { ppid, utime, stime })
}

fn stat(pid: u32) -> Option<Stat> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// One thread of a process, from `/proc/PID/task/TID`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadInfo {
    /// Thread id.
    pub tid: u32,
    /// Its name (`comm`: at most 15 bytes, so `portico-access-log` reads `portico-access-`).
    pub name: String,
    /// User plus system time of this thread alone, in clock ticks.
    pub ticks: u64,
    /// The CPU it last ran on.
    pub last_cpu: Option<u32>,
    /// The CPUs it may run on (`Cpus_allowed_list`, e.g. `0` under `taskset -c 0`).
    pub cpus_allowed: Option<String>,
    /// Times it gave up the CPU to wait (`voluntary_ctxt_switches`): for a thread blocking on
    /// a queue, how often it was woken.
    pub voluntary_switches: Option<u64>,
    /// `write`-family system calls it made (`syscw` of `/proc/PID/task/TID/io`).
    pub write_calls: Option<u64>,
}

/// A thread's own user + system ticks and the CPU it last ran on, from its `stat` text.
pub fn parse_task_stat(text: &str) -> Option<(u64, Option<u32>)> {
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    // Field 39, `processor`.
    let cpu = fields.get(36).and_then(|f| f.parse().ok());
    Some((utime + stime, cpu))
}

/// The `Cpus_allowed_list` line of a `status` file.
pub fn parse_cpus_allowed(status: &str) -> Option<String> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .map(|v| v.trim().to_string())
}

/// A numeric field (`voluntary_ctxt_switches:` …) of a `status` file.
pub fn parse_status_number(status: &str, field: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().parse().ok())
}

/// Every thread of `pid` (not of its children).
pub fn threads(pid: u32) -> Vec<ThreadInfo> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for entry in dir.flatten() {
        let Some(tid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        let base = entry.path();
        let Some((ticks, last_cpu)) = std::fs::read_to_string(base.join("stat"))
            .ok()
            .and_then(|t| parse_task_stat(&t))
        else {
            continue;
        };
        let status = std::fs::read_to_string(base.join("status")).unwrap_or_default();
        out.push(ThreadInfo {
            tid,
            name: std::fs::read_to_string(base.join("comm"))
                .unwrap_or_default()
                .trim()
                .to_string(),
            ticks,
            last_cpu,
            cpus_allowed: parse_cpus_allowed(&status),
            voluntary_switches: parse_status_number(&status, "voluntary_ctxt_switches"),
            write_calls: std::fs::read_to_string(base.join("io"))
                .ok()
                .and_then(|io| parse_status_number(&io, "syscw")),
        });
    }
    out.sort_by_key(|t| t.tid);
    out
}

/// Ticks to seconds.
pub fn ticks_to_secs(ticks: u64) -> f64 {
    ticks as f64 / CLK_TCK
}

/// `pid` and every process below it (nginx's workers run under its master).
pub fn tree(pid: u32) -> Vec<u32> {
    let mut all: Vec<(u32, u32)> = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for entry in dir.flatten() {
            if let Some(p) = entry.file_name().to_str().and_then(|s| s.parse().ok()) {
                if let Some(s) = stat(p) {
                    all.push((p, s.ppid));
                }
            }
        }
    }
    let mut out = vec![pid];
    let mut i = 0;
    while i < out.len() {
        let parent = out[i];
        out.extend(all.iter().filter(|(_, pp)| *pp == parent).map(|(p, _)| *p));
        i += 1;
    }
    out
}

/// CPU time (user + system) used so far by `pid` and its descendants.
pub fn cpu_time(pid: u32) -> Duration {
    cpu_split(pid).total()
}

/// CPU time of a process tree, split into user and system time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuSplit {
    /// Time spent running the program's own code.
    pub user: Duration,
    /// Time the kernel spent on its behalf (system calls, and the network stack's work
    /// charged to it).
    pub system: Duration,
}

impl CpuSplit {
    /// User plus system time.
    pub fn total(&self) -> Duration {
        self.user + self.system
    }

    /// What was used between `before` and `self`.
    pub fn since(&self, before: CpuSplit) -> CpuSplit {
        CpuSplit {
            user: self.user.saturating_sub(before.user),
            system: self.system.saturating_sub(before.system),
        }
    }
}

/// User and system time used so far by `pid` and its descendants. The kernel samples the
/// split at each tick and scales it to the exact total, so over hundreds of ticks both parts
/// are close to exact.
pub fn cpu_split(pid: u32) -> CpuSplit {
    let (user, system) = tree(pid)
        .into_iter()
        .filter_map(stat)
        .fold((0u64, 0u64), |(u, s), st| (u + st.utime, s + st.stime));
    CpuSplit {
        user: Duration::from_secs_f64(ticks_to_secs(user)),
        system: Duration::from_secs_f64(ticks_to_secs(system)),
    }
}

/// Resident memory, KiB, of `pid` and its descendants.
pub fn rss_kib(pid: u32) -> u64 {
    tree(pid)
        .into_iter()
        .filter_map(|p| {
            let s = std::fs::read_to_string(format!("/proc/{p}/status")).ok()?;
            parse_vm_rss(&s)
        })
        .sum()
}

/// The `VmRSS` line of `/proc/PID/status`, in KiB.
pub fn parse_vm_rss(status: &str) -> Option<u64> {
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// Busy and total jiffies of one CPU, from `/proc/stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuTimes {
    /// Everything but idle and iowait.
    pub busy: u64,
    /// All fields.
    pub total: u64,
}

/// The `cpuN` line of `/proc/stat` text.
pub fn parse_cpu_times(stat: &str, cpu: usize) -> Option<CpuTimes> {
    let label = format!("cpu{cpu}");
    let line = stat
        .lines()
        .find(|l| l.split_whitespace().next() == Some(label.as_str()))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = v.iter().take(8).sum();
    // user nice system idle iowait irq softirq steal
    let idle = v.get(3)? + v.get(4).copied().unwrap_or(0);
    Some(CpuTimes {
        busy: total - idle,
        total,
    })
}

/// `CpuTimes` of CPU `cpu` now.
pub fn cpu_times(cpu: usize) -> Option<CpuTimes> {
    parse_cpu_times(&std::fs::read_to_string("/proc/stat").ok()?, cpu)
}

/// Share of `after - before` the CPU was busy.
pub fn busy_share(before: CpuTimes, after: CpuTimes) -> Option<f64> {
    let total = after.total.checked_sub(before.total)?;
    (total > 0).then(|| after.busy.saturating_sub(before.busy) as f64 / total as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_odd_command_names() {
        let text =
            "4242 (nginx: worker) S 4241 4241 4241 0 -1 4194624 1 0 0 0 150 25 0 0 20 0 1 0 1 1 1";
        assert_eq!(
            parse_stat(text),
            Some(Stat {
                ppid: 4241,
                utime: 150,
                stime: 25
            })
        );
        assert_eq!(parse_stat(text).map(|s| s.ticks()), Some(175));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn reads_this_process() {
        let me = std::process::id();
        assert!(tree(me).contains(&me));
        assert!(rss_kib(me) > 0);
        let split = cpu_split(me);
        // Read later, so never less (the test's threads keep running).
        assert!(cpu_time(me) >= split.total());
        let later = CpuSplit {
            user: split.user + Duration::from_millis(30),
            system: split.system + Duration::from_millis(10),
        };
        assert_eq!(
            later.since(split),
            CpuSplit {
                user: Duration::from_millis(30),
                system: Duration::from_millis(10)
            }
        );
    }

    #[test]
    fn parses_cpu_lines() {
        let stat =
            "cpu  10 0 10 100 0 0 0 0 0 0\ncpu0 5 1 4 50 2 1 1 0 0 0\ncpu1 5 0 6 50 0 0 0 0 0 0\n";
        let t = parse_cpu_times(stat, 0).unwrap();
        assert_eq!(
            t,
            CpuTimes {
                busy: 12,
                total: 64
            }
        );
        assert_eq!(parse_cpu_times(stat, 2), None);
        let later = CpuTimes {
            busy: 62,
            total: 164,
        };
        assert_eq!(busy_share(t, later), Some(0.5));
        assert_eq!(busy_share(later, t), None);
    }

    #[test]
    fn parses_a_thread() {
        // utime 30, stime 12, ..., exit_signal 17, processor 1.
        let text = "4243 (portico-access-) S 1 4242 4242 0 -1 4194624 1 0 0 0 30 12 0 0 20 0 6 0 1 1 1 2 3 4 5 6 7 8 9 10 11 12 0 0 17 1 0 0 0 0 0";
        assert_eq!(parse_task_stat(text), Some((42, Some(1))));
        assert_eq!(
            parse_cpus_allowed("Name:\tx\nCpus_allowed:\t1\nCpus_allowed_list:\t0\n"),
            Some("0".into())
        );
        let status = "Cpus_allowed_list:\t0\nvoluntary_ctxt_switches:\t1234\nnonvoluntary_ctxt_switches:\t5\n";
        assert_eq!(
            parse_status_number(status, "voluntary_ctxt_switches"),
            Some(1234)
        );
        assert_eq!(
            parse_status_number(status, "nonvoluntary_ctxt_switches"),
            Some(5)
        );
        assert_eq!(
            parse_status_number("rchar: 10\nsyscr: 3\nsyscw: 7\n", "syscw"),
            Some(7)
        );
        let me = threads(std::process::id());
        assert!(!me.is_empty());
        assert!(me.iter().all(|t| t.cpus_allowed.is_some()));
    }

    #[test]
    fn parses_vm_rss() {
        assert_eq!(
            parse_vm_rss("Name:\tx\nVmRSS:\t   10240 kB\nVmData: 1 kB\n"),
            Some(10240)
        );
        assert_eq!(parse_vm_rss("Name:\tx\n"), None);
    }
}
