//! System calls a proxy makes per request, counted over one extra, unreported run: by `perf
//! stat` on the `raw_syscalls:sys_enter` tracepoint when the kernel allows it, else by
//! `strace -c -f`. Counting slows the proxy (strace by several times), so the runs whose req/s
//! and CPU are reported never count. perf counts, in the same run, what else the kernel does
//! for the proxy that a system call count misses: the tasks woken while the proxy runs (on a
//! pinned core, mostly wrk and the origin, asleep on the other core because the proxy was
//! slow to answer: each such wakeup is an inter-processor interrupt), page faults and context
//! switches.

use crate::procs::which;
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// How long a counter is given to attach before the load starts (perf opens its events and
/// strace seizes every thread in well under this; requests before it would go uncounted).
pub const ATTACH_PAUSE: Duration = Duration::from_millis(300);

/// The events `perf stat` counts: system calls first, then the [`Extra`] counts.
pub const PERF_EVENTS: &str =
    "raw_syscalls:sys_enter,sched:sched_waking,page-faults,context-switches";

/// The program that counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tool {
    /// `perf stat -e raw_syscalls:sys_enter,…` ([`PERF_EVENTS`]): the kernel counts; the
    /// proxy barely slows.
    Perf(PathBuf),
    /// `strace -c -f`: stops the proxy at every call; the count is exact, req/s is not.
    Strace(PathBuf),
}

/// Which counter the command line asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    /// perf when it works here, else strace.
    Auto,
    /// perf only.
    Perf,
    /// strace only.
    Strace,
}

impl Choice {
    /// Parses `auto`, `perf` or `strace`.
    pub fn from_name(s: &str) -> Option<Choice> {
        match s {
            "auto" => Some(Choice::Auto),
            "perf" => Some(Choice::Perf),
            "strace" => Some(Choice::Strace),
            _ => None,
        }
    }
}

impl Tool {
    /// The counter `choice` names, if it works here: perf needs tracefs and a permissive
    /// `perf_event_paranoid`, so it is tried on a trivial command first.
    pub fn detect(choice: Choice) -> Option<Tool> {
        let perf = || which("perf").filter(|p| perf_works(p)).map(Tool::Perf);
        let strace = || which("strace").map(Tool::Strace);
        match choice {
            Choice::Auto => perf().or_else(strace),
            Choice::Perf => perf(),
            Choice::Strace => strace(),
        }
    }

    /// `perf stat (raw_syscalls:sys_enter)` or `strace -c -f`, for the report.
    pub fn describe(&self) -> &'static str {
        match self {
            Tool::Perf(_) => {
                "perf stat -e raw_syscalls:sys_enter,sched:sched_waking,page-faults,context-switches"
            }
            Tool::Strace(_) => "strace -c -f",
        }
    }

    /// The command line counting every thread of `pids` into `out` until SIGINT.
    pub fn command(&self, pids: &[u32], out: &Path) -> Command {
        match self {
            Tool::Perf(perf) => {
                let mut cmd = Command::new(perf);
                cmd.args(["stat", "-x", ",", "-e", PERF_EVENTS, "-o"])
                    .arg(out)
                    .arg("-p")
                    .arg(
                        pids.iter()
                            .map(u32::to_string)
                            .collect::<Vec<_>>()
                            .join(","),
                    );
                cmd
            }
            Tool::Strace(strace) => {
                let mut cmd = Command::new(strace);
                cmd.args(["-c", "-f", "-o"]).arg(out);
                for pid in pids {
                    cmd.arg("-p").arg(pid.to_string());
                }
                cmd
            }
        }
    }

    /// The total count in what the tool wrote, and perf's other counts.
    pub fn parse(&self, text: &str) -> Option<(u64, Extra)> {
        match self {
            Tool::Perf(_) => Some((parse_perf(text)?, Extra::parse_perf(text))),
            Tool::Strace(_) => Some((parse_strace(text)?, Extra::default())),
        }
    }
}

/// What perf counts beside the system calls (strace counts none of it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Extra {
    /// Tasks woken while the proxy ran (`sched:sched_waking`): wrk and the origin when the
    /// proxy's answer finds them asleep, and the proxy's own helper threads.
    pub wakeups: Option<u64>,
    /// Page faults of the proxy (`page-faults`).
    pub faults: Option<u64>,
    /// Times the proxy's threads left the CPU (`context-switches`).
    pub switches: Option<u64>,
}

impl Extra {
    /// The counts in `perf stat -x ,` output (each `None` when perf did not count it).
    pub fn parse_perf(text: &str) -> Extra {
        Extra {
            wakeups: perf_count(text, "sched:sched_waking"),
            faults: perf_count(text, "page-faults"),
            switches: perf_count(text, "context-switches"),
        }
    }
}

/// Whether `perf` counts every event of [`PERF_EVENTS`] for a trivial command.
fn perf_works(perf: &Path) -> bool {
    Command::new(perf)
        .args(["stat", "-x", ",", "-e", PERF_EVENTS, "--", "true"])
        .stdout(Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| parse_perf(&String::from_utf8_lossy(&o.stderr)))
        .is_some()
}

/// The system call count of `perf stat -x ,` output: the line
/// `1837603,,raw_syscalls:sys_enter,…`.
pub fn parse_perf(text: &str) -> Option<u64> {
    perf_count(text, "raw_syscalls:sys_enter")
}

/// The count of `event` in `perf stat -x ,` output (`None` when it reads `<not counted>` or
/// `<not supported>`, or is missing).
pub fn perf_count(text: &str, event: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let mut fields = l.split(',');
        let count = fields.next()?.trim();
        let name = fields.nth(1)?;
        (name == event).then(|| count.parse().ok()).flatten()
    })
}

/// The calls column of `strace -c`'s `total` line (the errors column may be empty).
pub fn parse_strace(text: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let fields: Vec<&str> = l.split_whitespace().collect();
        (fields.last() == Some(&"total"))
            .then(|| fields.get(3)?.parse().ok())
            .flatten()
    })
}

/// A counter attached to a process tree.
#[derive(Debug)]
pub struct Counting {
    tool: Tool,
    child: Child,
    out: PathBuf,
}

/// Attaches `tool` to every thread of `pids`, writing to `out`; the caller then waits
/// [`ATTACH_PAUSE`] before starting the load.
pub fn start(tool: &Tool, pids: &[u32], out: &Path) -> Result<Counting> {
    let _ = std::fs::remove_file(out);
    let child = tool
        .command(pids, out)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", tool.describe()))?;
    Ok(Counting {
        tool: tool.clone(),
        child,
        out: out.to_path_buf(),
    })
}

impl Counting {
    /// Detaches (SIGINT: both tools then write their summary) and returns the system call
    /// count and perf's other counts.
    pub fn stop(mut self) -> Result<(u64, Extra)> {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-INT", &pid]).status();
        self.child.wait()?;
        let text = std::fs::read_to_string(&self.out)
            .with_context(|| format!("reading {}", self.out.display()))?;
        match self.tool.parse(&text) {
            Some(n) => Ok(n),
            None => bail!(
                "no syscall count in {} ({})",
                self.out.display(),
                self.tool.describe()
            ),
        }
    }
}

/// System calls per request over one counted run.
#[derive(Debug, Clone, PartialEq)]
pub struct SyscallSample {
    /// `perf stat …` or `strace -c -f`.
    pub tool: &'static str,
    /// System calls of every thread of the proxy over the run.
    pub syscalls: u64,
    /// Requests the load generator completed in it.
    pub requests: u64,
    /// Its req/s, slowed by the counting: not comparable with the measured runs.
    pub rps: f64,
    /// What perf counted beside the system calls, over the same run.
    pub extra: Extra,
}

impl SyscallSample {
    /// System calls per request.
    pub fn per_request(&self) -> Option<f64> {
        self.per_request_of(Some(self.syscalls))
    }

    /// `count` (one of the [`Extra`] counts) per request.
    pub fn per_request_of(&self, count: Option<u64>) -> Option<f64> {
        let n = count?;
        (self.requests > 0).then(|| n as f64 / self.requests as f64)
    }

    /// `; per request also 0.31 wakeups of other tasks, 0.03 page faults, 0.04 context
    /// switches` when perf counted them, else nothing.
    pub fn extra_note(&self) -> String {
        let e = self.extra;
        let parts: Vec<String> = [
            (e.wakeups, "tasks woken while it ran (sched_waking)"),
            (e.faults, "page faults"),
            (e.switches, "context switches"),
        ]
        .into_iter()
        .filter_map(|(n, what)| Some(format!("{:.3} {what}", self.per_request_of(n)?)))
        .collect();
        if parts.is_empty() {
            String::new()
        } else {
            format!("; per request also {}", parts.join(", "))
        }
    }

    /// The sample as JSON.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "tool": self.tool, "syscalls": self.syscalls, "requests": self.requests,
            "rps_while_counting": self.rps, "per_request": self.per_request(),
            "wakeups_per_request": self.per_request_of(self.extra.wakeups),
            "page_faults_per_request": self.per_request_of(self.extra.faults),
            "context_switches_per_request": self.per_request_of(self.extra.switches),
        })
    }
}

/// `5.17` for a count per request.
pub fn fmt_per_request(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.2}"))
}

/// Why system calls were not counted, when `tool` is missing or counting is off (`sample`
/// zero); `None` when they are.
pub fn not_counted(
    sample: std::time::Duration,
    choice: Choice,
    tool: Option<&Tool>,
) -> Option<String> {
    if sample.is_zero() {
        Some("not counted (--syscall-sample 0)".into())
    } else if tool.is_none() {
        Some(format!(
            "not counted: {} (make bench-deps installs strace)",
            match choice {
                Choice::Auto => "neither perf nor strace works here",
                Choice::Perf => "perf cannot count raw_syscalls:sys_enter here",
                Choice::Strace => "strace is not installed",
            }
        ))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_perf_csv() {
        let text = "# started on Mon Dec  7 11:00:00 2026\n\n1837603,,raw_syscalls:sys_enter,1960889029,100.00,,\n";
        assert_eq!(parse_perf(text), Some(1837603));
        assert_eq!(
            parse_perf("<not supported>,,raw_syscalls:sys_enter,0,100.00,,\n"),
            None
        );
        assert_eq!(parse_perf("12,,cycles,1,100.00,,\n"), None);
    }

    #[test]
    fn perf_is_described_with_its_events() {
        let d = Tool::Perf("perf".into()).describe();
        assert_eq!(d.strip_prefix("perf stat -e "), Some(PERF_EVENTS));
        let cmd = Tool::Perf("perf".into()).command(&[7], Path::new("/tmp/x"));
        assert!(cmd.get_args().any(|a| a == PERF_EVENTS));
    }

    #[test]
    fn parses_perf_extra_counts() {
        let text = "1837603,,raw_syscalls:sys_enter,1960889029,100.00,,\n\
112000,,sched:sched_waking,1960889029,100.00,,\n\
3600,,page-faults,1960889029,100.00,,\n\
<not counted>,,context-switches,0,0.00,,\n";
        let (syscalls, extra) = Tool::Perf("perf".into()).parse(text).unwrap();
        assert_eq!(syscalls, 1837603);
        assert_eq!(
            extra,
            Extra {
                wakeups: Some(112000),
                faults: Some(3600),
                switches: None
            }
        );
        let s = SyscallSample {
            tool: "perf",
            syscalls,
            requests: 360_000,
            rps: 1.0,
            extra,
        };
        assert_eq!(
            s.extra_note(),
            "; per request also 0.311 tasks woken while it ran (sched_waking), 0.010 page faults"
        );
        let json = s.to_json();
        assert_eq!(json["page_faults_per_request"], 0.01);
        assert!(json["context_switches_per_request"].is_null(), "{json}");
        // strace counts nothing beside the calls.
        let strace = "100.00    1.000000           1    536000           total\n";
        let (n, none) = Tool::Strace("strace".into()).parse(strace).unwrap();
        assert_eq!((n, none), (536000, Extra::default()));
        let s = SyscallSample { extra: none, ..s };
        assert_eq!(s.extra_note(), "");
    }

    #[test]
    fn parses_strace_totals() {
        let text = "% time     seconds  usecs/call     calls    errors syscall\n\
------ ----------- ----------- --------- --------- ----------------\n\
 60.00    0.600000           2    300000           writev\n\
 40.00    0.400000           1    236000     12000 recvfrom\n\
------ ----------- ----------- --------- --------- ----------------\n\
100.00    1.000000           1    536000     12000 total\n";
        assert_eq!(parse_strace(text), Some(536000));
        let no_errors = "100.00    1.000000           1    536000           total\n";
        assert_eq!(parse_strace(no_errors), Some(536000));
        assert_eq!(
            parse_strace("strace: attach: ptrace: No such process\n"),
            None
        );
    }

    #[test]
    fn per_request_needs_requests() {
        let mut s = SyscallSample {
            tool: "strace -c -f",
            syscalls: 517,
            requests: 100,
            rps: 10.0,
            extra: Extra::default(),
        };
        assert_eq!(fmt_per_request(s.per_request()), "5.17");
        s.requests = 0;
        assert_eq!(s.per_request(), None);
        assert_eq!(fmt_per_request(None), "-");
    }

    #[test]
    fn choices_parse() {
        assert_eq!(Choice::from_name("auto"), Some(Choice::Auto));
        assert_eq!(Choice::from_name("strace"), Some(Choice::Strace));
        assert_eq!(Choice::from_name("perf"), Some(Choice::Perf));
        assert_eq!(Choice::from_name("ltrace"), None);
    }

    #[test]
    fn commands_name_every_process() {
        let out = Path::new("/tmp/x");
        let perf = Tool::Perf("perf".into()).command(&[1, 2], out);
        let args: Vec<_> = perf.get_args().map(|a| a.to_string_lossy()).collect();
        assert_eq!(args.last().map(|a| a.as_ref()), Some("1,2"));
        let strace = Tool::Strace("strace".into()).command(&[1, 2], out);
        let args: Vec<_> = strace.get_args().map(|a| a.to_string_lossy()).collect();
        assert_eq!(args.iter().filter(|a| *a == "-p").count(), 2);
    }
}
