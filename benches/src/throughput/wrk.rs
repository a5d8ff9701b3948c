//! Running wrk and reading its report: requests per second, latency percentiles, errors.

use anyhow::{Context, Result, bail};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::procs::pinned;

/// What one wrk run measured.
#[derive(Debug, Clone, PartialEq)]
pub struct WrkReport {
    /// Requests completed.
    pub requests: u64,
    /// Length of the run as wrk reports it, in seconds.
    pub seconds: f64,
    /// `Requests/sec`.
    pub rps: f64,
    /// Median latency, microseconds.
    pub p50_us: f64,
    /// 99th percentile latency, microseconds.
    pub p99_us: f64,
    /// Socket errors: connect + read + write + timeout.
    pub socket_errors: u64,
    /// Responses with a status outside 2xx/3xx.
    pub non_2xx: u64,
}

impl WrkReport {
    /// Socket errors plus bad statuses.
    pub fn errors(&self) -> u64 {
        self.socket_errors + self.non_2xx
    }
}

/// One wrk invocation.
#[derive(Debug, Clone)]
pub struct WrkRun<'a> {
    /// Full URL.
    pub url: &'a str,
    /// Open connections (`-c`).
    pub connections: usize,
    /// Threads (`-t`).
    pub threads: usize,
    /// Length of the run (`-d`).
    pub duration: Duration,
    /// Extra request headers (`-H`).
    pub headers: &'a [&'a str],
}

impl WrkRun<'_> {
    /// The command line, pinned to `cpus` when given.
    pub fn command(&self, wrk: &Path, cpus: Option<&str>) -> Command {
        let mut cmd = pinned(cpus, wrk);
        cmd.args(self.args());
        cmd
    }

    /// wrk's arguments.
    pub fn args(&self) -> Vec<String> {
        let mut args = vec![
            format!("-t{}", self.threads),
            format!("-c{}", self.connections),
            format!("-d{}s", self.duration.as_secs().max(1)),
            "--latency".to_string(),
            "--timeout".to_string(),
            "10s".to_string(),
        ];
        for h in self.headers {
            args.push("-H".to_string());
            args.push(h.to_string());
        }
        args.push(self.url.to_string());
        args
    }
}

/// A wrk duration (`812.00us`, `1.02ms`, `2.50s`, `1.00m`) in microseconds.
pub fn parse_duration_us(s: &str) -> Option<f64> {
    let s = s.trim();
    let split = s.find(|c: char| c.is_ascii_alphabetic())?;
    let (num, unit) = s.split_at(split);
    let value: f64 = num.parse().ok()?;
    let scale = match unit {
        "us" => 1.0,
        "ms" => 1e3,
        "s" => 1e6,
        "m" => 60e6,
        "h" => 3600e6,
        _ => return None,
    };
    Some(value * scale)
}

/// Reads wrk's `--latency` report.
pub fn parse(output: &str) -> Result<WrkReport> {
    let mut requests = None;
    let mut seconds = None;
    let mut rps = None;
    let mut p50 = None;
    let mut p99 = None;
    let mut socket_errors = 0;
    let mut non_2xx = 0;
    for line in output.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["50%", v] => p50 = parse_duration_us(v),
            ["99%", v] => p99 = parse_duration_us(v),
            ["Requests/sec:", v] => rps = v.parse::<f64>().ok(),
            [n, "requests", "in", t, ..] => {
                requests = n.parse::<u64>().ok();
                seconds = parse_duration_us(t.trim_end_matches(',')).map(|us| us / 1e6);
            }
            ["Socket", "errors:", rest @ ..] => {
                socket_errors = rest
                    .iter()
                    .filter_map(|w| w.trim_end_matches(',').parse::<u64>().ok())
                    .sum();
            }
            ["Non-2xx", "or", "3xx", "responses:", n] => non_2xx = n.parse().unwrap_or(0),
            _ => {}
        }
    }
    let (Some(requests), Some(seconds), Some(rps), Some(p50_us), Some(p99_us)) =
        (requests, seconds, rps, p50, p99)
    else {
        bail!("unexpected wrk output:\n{output}");
    };
    Ok(WrkReport {
        requests,
        seconds,
        rps,
        p50_us,
        p99_us,
        socket_errors,
        non_2xx,
    })
}

/// Waits for a spawned wrk and reads its report.
pub fn finish(child: std::process::Child) -> Result<WrkReport> {
    let out = child.wait_with_output().context("waiting for wrk")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "wrk failed ({}): {}{}",
            out.status,
            stdout,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    parse(&stdout)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "Running 10s test @ http://127.0.0.1:8080/
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.02ms  125.34us   5.47ms   91.21%
    Req/Sec    62.91k     2.08k   66.16k    80.00%
  Latency Distribution
     50%  998.00us
     75%    1.05ms
     90%    1.12ms
     99%    1.40ms
  626134 requests in 10.00s, 99.13MB read
  Socket errors: connect 0, read 3, write 1, timeout 2
  Non-2xx or 3xx responses: 5
Requests/sec:  62610.43
Transfer/sec:      9.91MB
";

    #[test]
    fn parses_a_latency_report() {
        let r = parse(SAMPLE).unwrap();
        assert_eq!(r.requests, 626_134);
        assert!((r.seconds - 10.0).abs() < 1e-9);
        assert!((r.rps - 62_610.43).abs() < 1e-6);
        assert!((r.p50_us - 998.0).abs() < 1e-9);
        assert!((r.p99_us - 1_400.0).abs() < 1e-9);
        assert_eq!(r.socket_errors, 6);
        assert_eq!(r.non_2xx, 5);
        assert_eq!(r.errors(), 11);
    }

    #[test]
    fn clean_run_has_no_errors() {
        let clean: String = SAMPLE
            .lines()
            .filter(|l| !l.contains("errors") && !l.contains("Non-2xx"))
            .map(|l| format!("{l}\n"))
            .collect();
        let r = parse(&clean).unwrap();
        assert_eq!(r.errors(), 0);
    }

    #[test]
    fn rejects_output_without_numbers() {
        assert!(parse("unable to connect to 127.0.0.1:1 Connection refused").is_err());
    }

    #[test]
    fn durations_in_every_unit() {
        assert_eq!(parse_duration_us("812.00us"), Some(812.0));
        assert_eq!(parse_duration_us("1.50ms"), Some(1_500.0));
        assert_eq!(parse_duration_us("2.00s"), Some(2e6));
        assert_eq!(parse_duration_us("1.00m"), Some(60e6));
        assert_eq!(parse_duration_us("12"), None);
        assert_eq!(parse_duration_us("3.0xs"), None);
    }

    #[test]
    fn command_line() {
        let run = WrkRun {
            url: "http://127.0.0.1:1/",
            connections: 64,
            threads: 1,
            duration: Duration::from_secs(8),
            headers: &["Connection: close"],
        };
        assert_eq!(
            run.args(),
            [
                "-t1",
                "-c64",
                "-d8s",
                "--latency",
                "--timeout",
                "10s",
                "-H",
                "Connection: close",
                "http://127.0.0.1:1/"
            ]
        );
    }
}
