//! The tables of the scale benchmark and its targets (issue 19), each with PASS or FAIL.

use super::origins::OriginRow;
use super::probe::percentile;
use super::routes::RouteRow;
use serde::Serialize;
use std::fmt::Write;

/// One target, what was measured, and whether it holds.
#[derive(Debug, Clone, Serialize)]
pub struct Target {
    /// The target as issue 19 states it.
    pub target: String,
    /// Portico's number.
    pub measured: String,
    /// HAProxy's number beside it, when there is one.
    pub haproxy: String,
    /// Whether Portico meets it; `None`: not measured in this run.
    pub pass: Option<bool>,
}

fn ms_pair(v: &[f64], timeouts: usize) -> String {
    if v.is_empty() && timeouts == 0 {
        return "—".into();
    }
    let mut s = if v.is_empty() {
        String::new()
    } else {
        format!(
            "{:.0} / {:.0}",
            percentile(v, 0.5),
            v.iter().copied().fold(0.0, f64::max)
        )
    };
    if timeouts > 0 {
        if !s.is_empty() {
            s.push_str(", ");
        }
        s.push_str(&format!("{timeouts} timed out"));
    }
    s
}

fn opt(v: Option<f64>, digits: usize, unit: &str) -> String {
    v.map_or("—".into(), |v| format!("{v:.digits$}{unit}"))
}

/// Resident memory per origin beyond the smallest row of the same proxy and probe interval
/// (plain origins), KiB.
pub fn kib_per_origin(row: &OriginRow, rows: &[OriginRow]) -> Option<f64> {
    let base = rows
        .iter()
        .filter(|b| {
            b.proxy == row.proxy && b.interval_ms == row.interval_ms && !b.tls && b.rss_mib > 0.0
        })
        .min_by_key(|b| b.origins)?;
    (row.origins > base.origins)
        .then(|| (row.rss_mib - base.rss_mib) * 1024.0 / (row.origins - base.origins) as f64)
}

/// The origins table.
pub fn origins_table(rows: &[OriginRow]) -> String {
    let mut s = String::from(
        "| origins | probes | proxy | to serving | CPU to settle | settled after | idle CPU | RSS | KiB/origin | reload p50 / max (settled) | reload p50 / max (probes starting) | GET p50 / p99 |\n\
         |---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        let probes = if r.proxy == "nginx" {
            "none (no active checks in open-source nginx)".to_string()
        } else {
            format!(
                "every {} s{}",
                r.interval_ms as f64 / 1000.0,
                if r.tls { ", TLS" } else { "" }
            )
        };
        let probes = if r.proxy == "nginx" && r.tls {
            format!("{probes}, TLS")
        } else {
            probes
        };
        let settle_cpu = if r.proxy == "nginx" {
            "—".into()
        } else if r.settle_s.is_some() {
            format!("{:.2} s", r.settle_cpu_s)
        } else {
            format!(
                "> {:.1} s ({}/{} probed)",
                r.settle_cpu_s, r.healthy, r.origins
            )
        };
        let settled = match (r.proxy.as_str(), r.settle_s) {
            ("nginx", _) => "—".into(),
            (_, Some(s)) => format!("{s:.1} s (≥ 90 % of a core for {:.1} s)", r.pegged_s),
            (_, None) => format!("not settled (≥ 90 % of a core for {:.1} s)", r.pegged_s),
        };
        let start = if r.start_reload_ms.is_empty() && r.start_reload_timeouts == 0 {
            "—".into()
        } else {
            format!(
                "{}{}",
                ms_pair(&r.start_reload_ms, r.start_reload_timeouts),
                r.start_reload_healthy
                    .map(|h| format!(" ({h}/{} probed after)", r.origins))
                    .unwrap_or_default()
            )
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {:.0} MiB | {} | {} | {} | {} / {} |",
            r.origins,
            probes,
            r.proxy,
            opt(r.serving_ms, 0, " ms"),
            settle_cpu,
            settled,
            opt(r.idle_cpu_pct, 1, " %"),
            r.rss_mib,
            opt(kib_per_origin(r, rows), 0, ""),
            ms_pair(&r.reload_ms, r.reload_timeouts),
            start,
            opt(r.latency_p50_ms, 2, ""),
            opt(r.latency_p99_ms, 2, " ms"),
        );
    }
    s
}

/// The routes table: req/s against the same proxy with one route of the same kind.
pub fn routes_table(rows: &[RouteRow]) -> String {
    let mut s = String::from(
        "| proxy | routes | hosts | request Host | req/s (median) | vs 1 route | p99 | RSS | errors |\n|---|---:|---|---|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        let base = rows
            .iter()
            .filter(|b| b.proxy == r.proxy && b.hosts == r.hosts)
            .min_by_key(|b| b.routes)
            .map(|b| b.rps_median);
        let vs = base.filter(|b| *b > 0.0).map_or("—".into(), |b| {
            format!("{:+.1} %", (r.rps_median / b - 1.0) * 100.0)
        });
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {:.0} | {vs} | {:.0} µs | {:.0} MiB | {} |",
            r.proxy,
            r.routes,
            r.hosts.name(),
            r.request_host,
            r.rps_median,
            r.p99_us,
            r.rss_mib,
            r.errors
        );
    }
    s
}

fn find<'a>(
    rows: &'a [OriginRow],
    proxy: &str,
    n: usize,
    interval: u64,
    tls: bool,
) -> Option<&'a OriginRow> {
    rows.iter()
        .find(|r| r.proxy == proxy && r.origins == n && r.interval_ms == interval && r.tls == tls)
}

fn all_reloads(r: &OriginRow) -> (Vec<f64>, usize) {
    let v: Vec<f64> = r
        .reload_ms
        .iter()
        .chain(&r.start_reload_ms)
        .copied()
        .collect();
    (v, r.reload_timeouts + r.start_reload_timeouts)
}

/// Issue 19's targets, checked on Portico's rows (1,000 origins: the 5 s plain row; reloads:
/// every 1,000-origin row, file and store).
pub fn targets(rows: &[OriginRow], routes: &[RouteRow]) -> Vec<Target> {
    let mut out = Vec::new();
    let p = find(rows, "portico", 1000, 5000, false);
    let h = find(rows, "haproxy", 1000, 5000, false);
    let hv = |f: &dyn Fn(&OriginRow) -> String| h.map_or(String::new(), f);
    out.push(Target {
        target: "1,000 origins (5 s probes): ≤ 2 s of CPU to start probing".into(),
        measured: p.map_or("not run".into(), |r| {
            if r.settle_s.is_some() {
                format!("{:.2} s", r.settle_cpu_s)
            } else {
                format!("> {:.1} s (not settled)", r.settle_cpu_s)
            }
        }),
        haproxy: hv(&|r| format!("{:.2} s", r.settle_cpu_s)),
        pass: p.map(|r| r.settle_s.is_some() && r.settle_cpu_s <= 2.0),
    });
    out.push(Target {
        target: "1,000 origins: steady idle CPU ≤ 3 % of a core".into(),
        measured: p.map_or("not run".into(), |r| opt(r.idle_cpu_pct, 1, " %")),
        haproxy: hv(&|r| opt(r.idle_cpu_pct, 1, " %")),
        pass: p.map(|r| r.idle_cpu_pct.is_some_and(|c| c <= 3.0)),
    });
    out.push(Target {
        target: "1,000 origins: RSS ≤ 100 MiB".into(),
        measured: p.map_or("not run".into(), |r| format!("{:.0} MiB", r.rss_mib)),
        haproxy: hv(&|r| format!("{:.0} MiB", r.rss_mib)),
        pass: p.map(|r| r.rss_mib <= 100.0),
    });
    let per = p.and_then(|r| kib_per_origin(r, rows));
    out.push(Target {
        target:
            "1,000 origins: ≤ 40 KiB of RSS per origin beyond the first (from the smallest row)"
                .into(),
        measured: opt(per, 1, " KiB"),
        haproxy: opt(h.and_then(|r| kib_per_origin(r, rows)), 1, " KiB"),
        pass: per.map(|k| k <= 40.0),
    });
    let thousand: Vec<&OriginRow> = rows
        .iter()
        .filter(|r| r.origins == 1000 && r.proxy.starts_with("portico"))
        .collect();
    let (mut v, mut t) = (Vec::new(), 0);
    for r in &thousand {
        let (rv, rt) = all_reloads(r);
        v.extend(rv);
        t += rt;
    }
    let (mut hvv, mut ht) = (Vec::new(), 0);
    for r in rows
        .iter()
        .filter(|r| r.origins == 1000 && r.proxy == "haproxy")
    {
        let (rv, rt) = all_reloads(r);
        hvv.extend(rv);
        ht += rt;
    }
    let max = v.iter().copied().fold(0.0, f64::max);
    out.push(Target {
        target: "1,000 origins: reload ≤ 250 ms at any moment (SIGHUP and store, settled and while probes start)".into(),
        measured: if thousand.is_empty() {
            "not run".into()
        } else {
            format!("max {max:.0} ms of {}{}", v.len(), if t > 0 { format!(", {t} timed out") } else { String::new() })
        },
        haproxy: if hvv.is_empty() {
            String::new()
        } else {
            format!("max {:.0} ms of {}{}", hvv.iter().copied().fold(0.0, f64::max), hvv.len(), if ht > 0 { format!(", {ht} timed out") } else { String::new() })
        },
        pass: (!thousand.is_empty()).then_some(t == 0 && !v.is_empty() && max <= 250.0),
    });
    let five: Vec<&OriginRow> = rows
        .iter()
        .filter(|r| r.origins == 5000 && r.proxy == "portico")
        .collect();
    out.push(Target {
        target: "5,000 origins: start without a pegged core (settled; never ≥ 90 % of a core wanted for 5 s running)".into(),
        measured: five
            .iter()
            .map(|r| {
                format!(
                    "{} s probes: {}, pegged {:.1} s",
                    r.interval_ms / 1000,
                    r.settle_s.map_or(format!("not settled ({:.0} s CPU)", r.settle_cpu_s), |s| format!("settled in {s:.1} s, {:.1} s CPU", r.settle_cpu_s)),
                    r.pegged_s
                )
            })
            .collect::<Vec<_>>()
            .join("; "),
        haproxy: rows
            .iter()
            .filter(|r| r.origins == 5000 && r.proxy == "haproxy")
            .map(|r| format!("{} s: {:.1} s CPU, pegged {:.1} s", r.interval_ms / 1000, r.settle_cpu_s, r.pegged_s))
            .collect::<Vec<_>>()
            .join("; "),
        pass: (!five.is_empty()).then(|| five.iter().all(|r| r.settle_s.is_some() && r.pegged_s < 5.0)),
    });
    out.push(Target {
        target: "5,000 origins: reload without a pegged core (every reload applied within 1 s; < 90 % of a core wanted over the series)".into(),
        measured: five
            .iter()
            .map(|r| {
                let (v, t) = all_reloads(r);
                format!(
                    "{} s probes: max {:.0} ms{}, {} wanted",
                    r.interval_ms / 1000,
                    v.iter().copied().fold(0.0, f64::max),
                    if t > 0 { format!(", {t} timed out") } else { String::new() },
                    opt(r.reload_demand_pct, 0, " %")
                )
            })
            .collect::<Vec<_>>()
            .join("; "),
        haproxy: rows
            .iter()
            .filter(|r| r.origins == 5000 && r.proxy == "haproxy")
            .map(|r| {
                let (v, _) = all_reloads(r);
                format!("{} s: max {:.0} ms", r.interval_ms / 1000, v.iter().copied().fold(0.0, f64::max))
            })
            .collect::<Vec<_>>()
            .join("; "),
        pass: (!five.is_empty()).then(|| {
            five.iter().all(|r| {
                let (v, t) = all_reloads(r);
                t == 0 && !v.is_empty() && v.iter().all(|ms| *ms <= 1000.0) && r.reload_demand_pct.is_some_and(|c| c < 90.0)
            })
        }),
    });
    let wild = |proxy: &str| -> Option<(f64, usize)> {
        let w: Vec<&RouteRow> = routes
            .iter()
            .filter(|r| r.proxy == proxy && r.hosts == super::configs::HostKind::Wildcard)
            .collect();
        let base = w.iter().min_by_key(|r| r.routes)?;
        let top = w.iter().max_by_key(|r| r.routes)?;
        (top.routes > base.routes && base.rps_median > 0.0)
            .then(|| (top.rps_median / base.rps_median - 1.0, top.routes))
    };
    let pw = wild("portico");
    out.push(Target {
        target: "10,000 wildcard routes cost ≤ 3 % of req/s (against 1 wildcard route)".into(),
        measured: pw.map_or("not run".into(), |(d, n)| {
            format!("{:+.1} % at {n}", d * 100.0)
        }),
        haproxy: wild("haproxy").map_or(String::new(), |(d, n)| {
            format!("{:+.1} % at {n} (map_end)", d * 100.0)
        }),
        pass: pw.map(|(d, _)| d >= -0.03),
    });
    out
}

/// The targets table.
pub fn targets_table(t: &[Target]) -> String {
    let mut s = String::from("| target | Portico | | HAProxy beside it |\n|---|---|---|---|\n");
    for t in t {
        let verdict = match t.pass {
            Some(true) => "PASS",
            Some(false) => "FAIL",
            None => "not run",
        };
        let _ = writeln!(
            s,
            "| {} | {} | **{verdict}** | {} |",
            t.target, t.measured, t.haproxy
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(proxy: &str, n: usize, rss: f64, cpu: f64) -> OriginRow {
        OriginRow {
            proxy: proxy.into(),
            origins: n,
            interval_ms: 5000,
            settle_s: Some(2.0),
            settle_cpu_s: cpu,
            idle_cpu_pct: Some(1.0),
            rss_mib: rss,
            reload_ms: vec![10.0, 30.0],
            start_reload_ms: vec![300.0],
            ..OriginRow::default()
        }
    }

    #[test]
    fn targets_read_the_1000_row_and_fail_when_missed() {
        let rows = vec![
            row("portico", 10, 20.0, 0.1),
            row("portico", 1000, 50.0, 1.5),
            row("haproxy", 1000, 11.0, 0.2),
        ];
        let t = targets(&rows, &[]);
        assert_eq!(t[0].pass, Some(true), "1.5 s of CPU");
        assert_eq!(t[2].pass, Some(true), "50 MiB");
        // (50 - 20) MiB over 990 origins: 31 KiB each.
        assert_eq!(t[3].pass, Some(true), "{}", t[3].measured);
        assert_eq!(t[4].pass, Some(false), "a 300 ms reload while probes start");
        assert_eq!(t[5].pass, None, "no 5,000 row");
        assert_eq!(t[7].pass, None, "no routes rows");
        let table = targets_table(&t);
        assert!(table.contains("**FAIL**") && table.contains("**PASS**"));
    }

    #[test]
    fn tables_show_every_row() {
        let rows = vec![row("portico", 10, 20.0, 0.1), row("nginx", 10, 5.0, 0.0)];
        let t = origins_table(&rows);
        assert_eq!(t.lines().count(), 4);
        assert!(t.contains("no active checks"));
    }
}
