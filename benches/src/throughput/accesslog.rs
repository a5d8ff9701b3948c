//! The peers with an access log on: their log file emptied around every measured run (so the
//! disk does not fill), the lines each run wrote, Portico's dropped lines, and the CPU and
//! placement of Portico's log writer thread.

use super::peers::{Running, metric};
use super::procinfo::{self, ThreadInfo};
use anyhow::{Context, Result};
use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant};

/// The start of the writer thread's `comm` (`portico-access-log`, cut to 15 bytes by Linux).
pub const WRITER_THREAD: &str = "portico-access";

/// Portico's counter of lines the writer could not keep up with.
pub const DROPPED_METRIC: &str = "portico_access_log_dropped_total";

/// What one measured run did to the access log.
#[derive(Debug, Clone, PartialEq)]
pub struct LogSample {
    /// Lines in the file after the run (it was emptied just before).
    pub lines: u64,
    /// Bytes in the file after the run.
    pub bytes: u64,
    /// Lines Portico dropped during the run (its queue was full); `None` for nginx.
    pub dropped: Option<u64>,
    /// Portico's writer thread during the run; `None` for nginx (its worker writes itself).
    pub writer: Option<WriterSample>,
}

/// Portico's access log writer thread over one run.
#[derive(Debug, Clone, PartialEq)]
pub struct WriterSample {
    /// Its CPU time over the run's wall time (already part of the process's CPU).
    pub cpu: f64,
    /// The CPU it last ran on.
    pub last_cpu: Option<u32>,
    /// The CPUs it may run on.
    pub cpus_allowed: Option<String>,
    /// Times it blocked on the empty queue and was woken again (each a flush, a `write`, and
    /// two context switches on the proxy's core).
    pub wakeups: Option<u64>,
    /// `write` calls it made (one per flush).
    pub write_calls: Option<u64>,
}

/// Counters read just before a run.
#[derive(Debug, Clone, Copy, Default)]
pub struct Before {
    dropped: Option<f64>,
    writer_ticks: Option<u64>,
    writer_switches: Option<u64>,
    writer_writes: Option<u64>,
}

/// Portico's access log writer thread, if `pid` has one.
pub fn writer_thread(pid: u32) -> Option<ThreadInfo> {
    procinfo::threads(pid)
        .into_iter()
        .find(|t| t.name.starts_with(WRITER_THREAD))
}

/// Empties the log file. Both proxies open it for appending, so their next write lands at
/// the new end (the start) and no space stays allocated.
pub fn empty(path: &Path) -> Result<()> {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|f| f.set_len(0))
        .with_context(|| format!("emptying {}", path.display()))
}

/// Waits (up to `timeout`) until the file stops growing: the writer has flushed what the run
/// queued. Returns its size.
pub fn settle(path: &Path, timeout: Duration) -> u64 {
    let size = || std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let deadline = Instant::now() + timeout;
    let mut last = size();
    loop {
        std::thread::sleep(Duration::from_millis(150));
        let now = size();
        if now == last || Instant::now() >= deadline {
            return now;
        }
        last = now;
    }
}

/// Lines and bytes in the file.
pub fn count_lines(path: &Path) -> Result<(u64, u64)> {
    let mut f = std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let mut buf = vec![0u8; 1 << 20];
    let (mut lines, mut bytes) = (0u64, 0u64);
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok((lines, bytes));
        }
        bytes += n as u64;
        lines += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
    }
}

/// The first line of the file, if any.
pub fn first_line(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines().next().map(str::to_string)
}

/// Before a measured run of `p`: empties its log (the warm-up's lines) and reads the counters.
pub fn before(p: &Running) -> Result<Before> {
    let Some(path) = &p.access_log else {
        return Ok(Before::default());
    };
    settle(path, Duration::from_secs(2));
    empty(path)?;
    let writer = writer_thread(p.proc.pid());
    Ok(Before {
        dropped: p.admin.and_then(|a| metric(a, DROPPED_METRIC)),
        writer_ticks: writer.as_ref().map(|t| t.ticks),
        writer_switches: writer.as_ref().and_then(|t| t.voluntary_switches),
        writer_writes: writer.and_then(|t| t.write_calls),
    })
}

/// Right after a measured run of `wall_s` seconds: the writer thread's CPU (read first, at the
/// same moment as the process's), then, once the file stops growing, the lines written and
/// dropped; empties the file again.
pub fn after(p: &Running, before: Before, wall_s: f64) -> Result<Option<LogSample>> {
    let Some(path) = &p.access_log else {
        return Ok(None);
    };
    let writer = writer_thread(p.proc.pid()).map(|t| WriterSample {
        cpu: before.writer_ticks.map_or(0.0, |b| {
            procinfo::ticks_to_secs(t.ticks.saturating_sub(b)) / wall_s.max(1e-3)
        }),
        last_cpu: t.last_cpu,
        cpus_allowed: t.cpus_allowed,
        wakeups: match (before.writer_switches, t.voluntary_switches) {
            (Some(b), Some(a)) => Some(a.saturating_sub(b)),
            _ => None,
        },
        write_calls: match (before.writer_writes, t.write_calls) {
            (Some(b), Some(a)) => Some(a.saturating_sub(b)),
            _ => None,
        },
    });
    settle(path, Duration::from_secs(3));
    let (lines, bytes) = count_lines(path)?;
    let dropped = match (
        before.dropped,
        p.admin.and_then(|a| metric(a, DROPPED_METRIC)),
    ) {
        (Some(b), Some(a)) => Some((a - b).max(0.0) as u64),
        _ => None,
    };
    empty(path)?;
    Ok(Some(LogSample {
        lines,
        bytes,
        dropped,
        writer,
    }))
}

/// The filesystem type holding `path` (`stat -f`), for the report.
pub fn filesystem(path: &Path) -> Option<String> {
    let dir = path.parent()?;
    let out = std::process::Command::new("stat")
        .args(["-f", "-c", "%T"])
        .arg(dir)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Where a process's threads may run and ran: one line for the report.
pub fn threads_line(pid: u32) -> String {
    let threads = procinfo::threads(pid);
    let mut allowed: Vec<String> = threads
        .iter()
        .map(|t| t.cpus_allowed.clone().unwrap_or_else(|| "?".into()))
        .collect();
    allowed.sort();
    allowed.dedup();
    let names: Vec<&str> = threads.iter().map(|t| t.name.as_str()).collect();
    format!(
        "{} threads ({}), allowed CPUs: {}",
        threads.len(),
        names.join(", "),
        allowed.join(" / ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_empties_a_log() {
        let dir = std::env::temp_dir().join(format!("portico-bench-log-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("access.log");
        std::fs::write(&path, "{\"a\":1}\n{\"a\":2}\n").unwrap();
        assert_eq!(count_lines(&path).unwrap(), (2, 16));
        assert_eq!(first_line(&path).as_deref(), Some("{\"a\":1}"));
        assert_eq!(settle(&path, Duration::from_millis(500)), 16);
        // A writer holding the file in append mode keeps writing at the new end.
        let mut w = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        empty(&path).unwrap();
        std::io::Write::write_all(&mut w, b"{\"a\":3}\n").unwrap();
        assert_eq!(count_lines(&path).unwrap(), (1, 8));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn this_process_has_no_writer_thread() {
        assert_eq!(writer_thread(std::process::id()), None);
        assert!(threads_line(std::process::id()).contains("allowed CPUs"));
    }
}
