//! `bench-failover`: origin crash, hang, 503s and a slow share behind Portico, Front Door-style
//! probing, nginx and HAProxy, under the same open-loop load, beside a no-fault baseline, at
//! the main rate and at a low rate; the latency band's shares with three origins at 0, 30 and
//! 150 ms; a table, JSON and an SVG timeline.

use anyhow::{Context, Result, bail};
use clap::Parser;
use portico_bench::failover::analyze::{self, Counters, Outcome, Phases};
use portico_bench::failover::configs::{self, PoolSpec};
use portico_bench::failover::load;
use portico_bench::failover::svg::{self, Panel};
use portico_bench::failover::{ProxyKind, Scenario};
use portico_bench::procs::{Proc, free_port, skip_line, wait_port, which, workspace_bin};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Drives two demo origins through each proxy, makes the first one fail at a fixed time and
/// recover later, and reports client errors, how fast each proxy moved away and back, and
/// latency during the fault.
#[derive(Parser, Debug)]
#[command(name = "bench-failover")]
struct Args {
    /// Requests per second (open loop).
    #[arg(long, default_value_t = 500)]
    rate: u32,
    /// A second, low rate (requests per second) for the scenarios of `--low-rate-scenarios`:
    /// most pools are quiet, and a hedge budget that is a share of recent requests is small
    /// there. 0: no low-rate runs.
    #[arg(long, default_value_t = 5)]
    low_rate: u32,
    /// Scenarios run again at `--low-rate`.
    #[arg(long, default_value = "none,hang", value_delimiter = ',')]
    low_rate_scenarios: Vec<Scenario>,
    /// Seconds of the latency-band rows (three origins at 0, 30 and 150 ms, no fault, at
    /// `--band-rate`), counted after `--warmup-s`; 0: no band rows.
    #[arg(long, default_value_t = 10)]
    band_s: u64,
    /// Requests per second of the latency-band rows.
    #[arg(long, default_value_t = 50)]
    band_rate: u32,
    /// Scenarios, comma-separated: none (the no-fault baseline), crash, hang, 503, slow.
    #[arg(
        long,
        default_value = "none,crash,hang,503,slow",
        value_delimiter = ','
    )]
    scenarios: Vec<Scenario>,
    /// Proxies, comma-separated: portico, portico-hedge-1ms, frontdoor-style, nginx, haproxy.
    #[arg(
        long,
        default_value = "portico,frontdoor-style,nginx,haproxy",
        value_delimiter = ','
    )]
    proxies: Vec<ProxyKind>,
    /// Seconds of load before the fault.
    #[arg(long, default_value_t = 3)]
    warmup_s: u64,
    /// Seconds the fault lasts.
    #[arg(long, default_value_t = 12)]
    fault_s: u64,
    /// Seconds of load after recovery (the no-fault baseline stops at the recovery time:
    /// there is nothing to fail back from).
    #[arg(long, default_value_t = 16)]
    after_s: u64,
    /// Short phases (2 s, 6 s, 6 s) for a smoke run.
    #[arg(long)]
    quick: bool,
    /// Client timeout per request, ms (a timeout counts as an error).
    #[arg(long, default_value_t = 2000)]
    client_timeout_ms: u64,
    /// Connect and response timeout given to every proxy, ms.
    #[arg(long, default_value_t = 500)]
    timeout_ms: u64,
    /// Where results go.
    #[arg(long, default_value = "target/bench-failover")]
    out: PathBuf,
}

/// One proxy through one scenario.
#[derive(serde::Serialize)]
struct Run {
    scenario: String,
    /// Requests per second of this run.
    rate: u32,
    /// The `portico-origin` fault given to origin `a`.
    fault: String,
    proxy: String,
    phases: Phases,
    outcome: Outcome,
    buckets: Vec<analyze::Bucket>,
    origin_tallies: Vec<load::Tally>,
    origin_counters: Counters,
}

const ORIGINS: [&str; 2] = ["a", "b"];

/// The latency-band rows' origins: name and fixed answer delay, ms.
const BAND: [(&str, u64); 3] = [("fast", 0), ("mid", 30), ("slow", 150)];

/// One proxy's shares of the latency-band run.
#[derive(serde::Serialize)]
struct BandRun {
    proxy: String,
    rate: u32,
    requests: usize,
    errors: usize,
    /// `(origin, requests it served)`, in [`BAND`] order.
    served: Vec<(String, usize)>,
    p50_ms: f64,
    p99_ms: f64,
}

fn main() -> Result<()> {
    let mut args = Args::parse();
    if args.quick {
        (args.warmup_s, args.fault_s, args.after_s) = (2, 6, 6);
    }
    let portico = workspace_bin("portico");
    let origin_bin = workspace_bin("portico-origin");
    for b in [&portico, &origin_bin] {
        if !b.is_file() {
            bail!(
                "{} is missing: run `cargo build --release -p portico -p portico-origin` (make bench-failover does)",
                b.display()
            );
        }
    }
    let mut proxies = Vec::new();
    for p in &args.proxies {
        let found = match p {
            ProxyKind::Nginx => which("nginx").ok_or_else(|| skip_line("nginx", "nginx-light")),
            ProxyKind::Haproxy => which("haproxy").ok_or_else(|| skip_line("haproxy", "haproxy")),
            _ => Ok(portico.clone()),
        };
        match found {
            Ok(bin) => proxies.push((*p, bin)),
            Err(line) => eprintln!("{line}"),
        }
    }
    std::fs::create_dir_all(&args.out)?;
    args.out = args.out.canonicalize()?;
    let work = args.out.join("work");
    std::fs::create_dir_all(args.out.join("configs"))?;
    std::fs::create_dir_all(&work)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;

    let total = args.warmup_s + args.fault_s + args.after_s;
    let runs_n = args.scenarios.len() * proxies.len();
    let load_s: u64 = args
        .scenarios
        .iter()
        .map(|s| phases(&args, *s).end_ms as u64 / 1000)
        .sum::<u64>()
        * proxies.len() as u64;
    eprintln!(
        "bench-failover: {runs_n} runs of {total} s at {} req/s (fault at {} s, recovery at {} s; \
         the no-fault baseline stops at {} s), {} min of load; results in {}",
        args.rate,
        args.warmup_s,
        args.warmup_s + args.fault_s,
        args.warmup_s + args.fault_s,
        load_s.div_ceil(60),
        args.out.display()
    );
    let mut runs = Vec::new();
    let mut shown_configs = Vec::new();
    let mut plan: Vec<(Scenario, u32)> = args.scenarios.iter().map(|s| (*s, args.rate)).collect();
    if args.low_rate > 0 && args.low_rate != args.rate {
        plan.extend(args.low_rate_scenarios.iter().map(|s| (*s, args.low_rate)));
    }
    for (scenario, rate) in &plan {
        let (scenario, rate) = (*scenario, *rate);
        for (kind, bin) in &proxies {
            eprintln!(
                "  {scenario:>5} × {:<16} {rate} req/s running…",
                kind.name()
            );
            let (run, config) = rt
                .block_on(one_run(
                    &args,
                    scenario,
                    rate,
                    *kind,
                    bin,
                    &origin_bin,
                    &work,
                ))
                .with_context(|| format!("{} through {}", scenario, kind.name()))?;
            let o = &run.outcome;
            eprintln!(
                "  {scenario:>5} × {:<16} {rate} req/s: {} errors of {}, out after {:.0} ms, fail-back {}, p99 {:.1} ms, max {:.0} ms, origin load {:.3}",
                kind.name(),
                o.errors,
                o.requests,
                o.out_after_ms,
                o.failback_ms.map_or("—".into(), |f| format!("{f:.0} ms")),
                o.p99_ms,
                o.max_ms,
                o.origin_load
            );
            if !shown_configs.iter().any(|(k, _)| k == kind) {
                let ext = if matches!(
                    kind,
                    ProxyKind::Portico | ProxyKind::PorticoHedge1ms | ProxyKind::FrontDoor
                ) {
                    "json"
                } else {
                    "conf"
                };
                std::fs::write(
                    args.out
                        .join("configs")
                        .join(format!("{}.{ext}", kind.name())),
                    &config,
                )?;
                shown_configs.push((*kind, config));
            }
            runs.push(run);
        }
    }

    let mut bands = Vec::new();
    if args.band_s > 0 {
        for (kind, bin) in &proxies {
            eprintln!("   band × {:<16} running…", kind.name());
            let band = rt
                .block_on(band_run(&args, *kind, bin, &origin_bin, &work))
                .with_context(|| format!("the latency band through {}", kind.name()))?;
            eprintln!(
                "   band × {:<16} {:?}, {} errors",
                kind.name(),
                band.served,
                band.errors
            );
            bands.push(band);
        }
    }

    println!("{}", table(&runs, &args));
    let against = against_baseline(&runs);
    if !against.is_empty() {
        println!("{}", against_table(&against));
    }
    if !bands.is_empty() {
        println!("{}", band_table(&bands, &args));
    }
    for (kind, config) in &shown_configs {
        // nginx's and HAProxy's configs open with a comment on hedging: neither has an option
        // for it (nginx.org proxy/upstream module docs; HAProxy 2.6 configuration.txt).
        println!(
            "\n{} got (ports of its last run):\n```\n{}```",
            kind.name(),
            config
        );
    }
    let json = serde_json::json!({
        "rate": args.rate,
        "phases_s": {"warmup": args.warmup_s, "fault": args.fault_s, "after": args.after_s, "after_baseline": 0},
        "proxy_timeout_ms": args.timeout_ms,
        "client_timeout_ms": args.client_timeout_ms,
        "low_rate": args.low_rate,
        "runs": runs,
        "against_baseline": against,
        "band": bands,
    });
    std::fs::write(
        args.out.join("failover.json"),
        serde_json::to_string_pretty(&json)?,
    )?;
    let panels: Vec<Panel> = runs
        .iter()
        .map(|r| Panel {
            scenario: if r.rate == args.rate {
                r.scenario.clone()
            } else {
                format!("{} @ {} req/s", r.scenario, r.rate)
            },
            fault: r.fault.clone(),
            proxy: r.proxy.clone(),
            buckets: r.buckets.clone(),
            phases: r.phases,
            errors: r.outcome.errors,
            origin_load: r.outcome.origin_load,
        })
        .collect();
    let names: Vec<String> = ORIGINS.iter().map(|s| s.to_string()).collect();
    std::fs::write(args.out.join("failover.svg"), svg::render(&panels, &names))?;
    eprintln!(
        "wrote {0}/failover.json, {0}/failover.svg and {0}/configs/",
        args.out.display()
    );
    Ok(())
}

fn table(runs: &[Run], args: &Args) -> String {
    let recover = args.warmup_s + args.fault_s;
    let mut s = format!(
        "Origin `a` fails {} s into the load and recovers {} s later (`slow`: it answers 10 % of its \
         requests and probes 300 ms late; `none`: no fault, {recover} s of load); open loop at the \
         rate shown, client timeout {} ms. Latencies and origin load (requests received by all \
         origins ÷ client requests) are those of the fault window, {} to {recover} s, in every row.\n\n",
        args.warmup_s, args.fault_s, args.client_timeout_ms, args.warmup_s
    );
    s.push_str("| fault | req/s | proxy | client errors | error codes | `a` still hit for | a's share 1 s after | fail-back after | p50 | p99 | max | origin load |\n");
    s.push_str("|---|---:|---|---:|---|---:|---:|---:|---:|---:|---:|---:|\n");
    for r in runs {
        let o = &r.outcome;
        let codes = if o.error_codes.is_empty() {
            "—".to_string()
        } else {
            o.error_codes
                .iter()
                .map(|(c, n)| {
                    if *c == 0 {
                        format!("{n}× timeout/reset")
                    } else {
                        format!("{n}× {c}")
                    }
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        let (still_hit, failback) = if r.fault == "none" {
            ("—".to_string(), "—".to_string())
        } else {
            (
                format!("{:.0} ms", o.out_after_ms),
                o.failback_ms.map_or(format!("> {} s", args.after_s), |f| {
                    format!("{:.1} s", f / 1000.0)
                }),
            )
        };
        s.push_str(&format!(
            "| {} | {} | {} | {} / {} | {} | {} | {:.1} % | {} | {:.1} ms | {:.1} ms | {:.0} ms | {:.3} |\n",
            r.scenario,
            r.rate,
            r.proxy,
            o.errors,
            o.requests,
            codes,
            still_hit,
            o.faulty_share_after_1s * 100.0,
            failback,
            o.p50_ms,
            o.p99_ms,
            o.max_ms,
            o.origin_load
        ));
    }
    s
}

/// One proxy through one fault, read against the same proxy's no-fault run.
#[derive(serde::Serialize)]
struct Against {
    scenario: String,
    rate: u32,
    proxy: String,
    /// p99 of the no-fault run, ms.
    baseline_p99_ms: f64,
    /// This fault's p99 ÷ the no-fault p99.
    p99_ratio: f64,
    /// This fault's max ÷ the no-fault p99 (issue 13's goal for the hang: ≤ 2).
    max_ratio: f64,
    /// Origin requests ÷ client requests in the fault window (goal: ≤ 1.10).
    origin_load: f64,
    /// The same for the no-fault run.
    baseline_origin_load: f64,
}

fn against_baseline(runs: &[Run]) -> Vec<Against> {
    let mut out = Vec::new();
    for r in runs.iter().filter(|r| r.fault != "none") {
        let Some(base) = runs
            .iter()
            .find(|b| b.fault == "none" && b.proxy == r.proxy && b.rate == r.rate)
        else {
            continue;
        };
        let p99 = base.outcome.p99_ms.max(f64::MIN_POSITIVE);
        out.push(Against {
            scenario: r.scenario.clone(),
            rate: r.rate,
            proxy: r.proxy.clone(),
            baseline_p99_ms: base.outcome.p99_ms,
            p99_ratio: r.outcome.p99_ms / p99,
            max_ratio: r.outcome.max_ms / p99,
            origin_load: r.outcome.origin_load,
            baseline_origin_load: base.outcome.origin_load,
        });
    }
    out
}

fn against_table(rows: &[Against]) -> String {
    let mut s = String::from(
        "\nEach fault against the same proxy's no-fault run (issue 13's goal for Portico's hang row: \
         max ≤ 2 × the no-fault p99, 0 errors, origin load ≤ 1.10):\n\n\
         | fault | req/s | proxy | no-fault p99 | p99 ÷ no-fault p99 | max ÷ no-fault p99 | origin load (no fault) |\n\
         |---|---:|---|---:|---:|---:|---:|\n",
    );
    for a in rows {
        s.push_str(&format!(
            "| {} | {} | {} | {:.1} ms | {:.1}× | {:.1}× | {:.3} ({:.3}) |\n",
            a.scenario,
            a.rate,
            a.proxy,
            a.baseline_p99_ms,
            a.p99_ratio,
            a.max_ratio,
            a.origin_load,
            a.baseline_origin_load
        ));
    }
    s
}

/// The run's timeline: the fault at `warmup_s`, the recovery `fault_s` later, the end
/// `after_s` after that — or at the recovery time for the no-fault baseline.
fn phases(args: &Args, scenario: Scenario) -> Phases {
    let after = if scenario.is_fault() { args.after_s } else { 0 };
    Phases {
        fault_ms: (args.warmup_s * 1000) as f64,
        recover_ms: ((args.warmup_s + args.fault_s) * 1000) as f64,
        end_ms: ((args.warmup_s + args.fault_s + after) * 1000) as f64,
    }
}

fn origin_cmd(bin: &Path, name: &str, port: u16, control: u16, delay_ms: u64) -> Command {
    let mut c = Command::new(bin);
    c.args([
        "--name",
        name,
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--control",
        &format!("127.0.0.1:{control}"),
        "--delay-ms",
        &delay_ms.to_string(),
    ]);
    c.env("RUST_LOG", "warn");
    c
}

/// Started origins: their processes, `(name, port)` and control addresses.
struct Origins {
    procs: Vec<Proc>,
    pool: Vec<(String, u16)>,
    controls: Vec<SocketAddr>,
}

/// Starts one `portico-origin` per `(name, delay_ms)` and waits until each listens.
fn start_origins(origin_bin: &Path, specs: &[(&str, u64)], dir: &Path) -> Result<Origins> {
    let mut o = Origins {
        procs: Vec::new(),
        pool: Vec::new(),
        controls: Vec::new(),
    };
    for (name, delay_ms) in specs {
        let (port, control) = (free_port()?, free_port()?);
        o.procs.push(Proc::spawn(
            &format!("origin-{name}"),
            origin_cmd(origin_bin, name, port, control, *delay_ms),
            dir,
        )?);
        o.pool.push((name.to_string(), port));
        o.controls.push(SocketAddr::from(([127, 0, 0, 1], control)));
    }
    for (c, (_, port)) in o.controls.iter().zip(&o.pool) {
        wait_port(*c, Duration::from_secs(10))?;
        wait_port(
            SocketAddr::from(([127, 0, 0, 1], *port)),
            Duration::from_secs(10),
        )?;
    }
    Ok(o)
}

/// Starts `kind` in front of `pool`; returns the process, its address and its config.
fn start_proxy(
    args: &Args,
    kind: ProxyKind,
    proxy_bin: &Path,
    pool: &[(String, u16)],
    dir: &Path,
) -> Result<(Proc, SocketAddr, String)> {
    let pool = PoolSpec {
        origins: pool.to_vec(),
        connect_ms: args.timeout_ms,
        response_ms: args.timeout_ms,
        portico_probe_ms: 1000,
        slow_probe_ms: 5000,
    };
    let (port, admin) = (free_port()?, free_port()?);
    let config = configs::render(kind, &pool, port, admin, dir);
    let config_path = dir.join(match kind {
        ProxyKind::Nginx => "nginx.conf",
        ProxyKind::Haproxy => "haproxy.cfg",
        _ => "portico.json",
    });
    std::fs::write(&config_path, &config)?;
    let mut cmd = Command::new(proxy_bin);
    match kind {
        ProxyKind::Portico | ProxyKind::PorticoHedge1ms | ProxyKind::FrontDoor => {
            cmd.arg("--config")
                .arg(&config_path)
                .env("RUST_LOG", "warn");
        }
        ProxyKind::Nginx => {
            cmd.arg("-p")
                .arg(dir)
                .arg("-c")
                .arg(&config_path)
                .args(["-g", "daemon off;"]);
        }
        ProxyKind::Haproxy => {
            cmd.arg("-f").arg(&config_path).arg("-db");
        }
    }
    let mut proxy = Proc::spawn(kind.name(), cmd, dir)?;
    let target = SocketAddr::from(([127, 0, 0, 1], port));
    if let Err(e) = wait_port(target, Duration::from_secs(10)) {
        proxy.check_alive()?;
        return Err(e.into());
    }
    Ok((proxy, target, config))
}

/// The latency band: three origins at 0, 30 and 150 ms, no fault, `--warmup-s` for probes to
/// measure them, then `--band-s` of open-loop load at `--band-rate`, counted by who served.
async fn band_run(
    args: &Args,
    kind: ProxyKind,
    proxy_bin: &Path,
    origin_bin: &Path,
    work: &Path,
) -> Result<BandRun> {
    let dir = work.join(format!("band-{}", kind.name()));
    std::fs::create_dir_all(&dir)?;
    let origins = start_origins(origin_bin, &BAND, &dir)?;
    let mut procs = origins.procs;
    let (proxy, target, _config) = start_proxy(args, kind, proxy_bin, &origins.pool, &dir)?;
    procs.push(proxy);
    // Probes measure the origins during the warm-up; the load during it warms live latency.
    let warm = Duration::from_secs(args.warmup_s);
    load::open_loop(
        target,
        args.band_rate,
        warm,
        Duration::from_millis(args.client_timeout_ms),
        Instant::now(),
    )
    .await;
    let requests = load::open_loop(
        target,
        args.band_rate,
        Duration::from_secs(args.band_s),
        Duration::from_millis(args.client_timeout_ms),
        Instant::now() + Duration::from_millis(50),
    )
    .await;
    for p in &mut procs {
        p.check_alive()?;
    }
    drop(procs);
    let served = BAND
        .iter()
        .map(|(name, _)| {
            let n = requests
                .iter()
                .filter(|r| r.status == 200 && r.served_by.as_deref() == Some(*name))
                .count();
            (name.to_string(), n)
        })
        .collect();
    let mut lat: Vec<f64> = requests.iter().map(|r| r.latency_ms).collect();
    lat.sort_by(f64::total_cmp);
    Ok(BandRun {
        proxy: kind.name().to_string(),
        rate: args.band_rate,
        requests: requests.len(),
        errors: requests.iter().filter(|r| r.status != 200).count(),
        served,
        p50_ms: analyze::percentile(&lat, 0.5),
        p99_ms: analyze::percentile(&lat, 0.99),
    })
}

fn band_table(bands: &[BandRun], args: &Args) -> String {
    let mut s = format!(
        "\nThe latency band: origins `fast`, `mid` and `slow` answer after 0, 30 and 150 ms, equal \
         weights, band 50 ms (Portico's default and Front Door's), no fault; {} s of open-loop load \
         at {} req/s after {} s of warm-up. SPEC part 1 (and Front Door): `fast` and `mid` share \
         by weight (50 % each), `slow` gets nothing; nginx and HAProxy balance round robin.\n\n\
         | proxy | requests | errors | fast | mid | slow | p50 | p99 |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|\n",
        args.band_s, args.band_rate, args.warmup_s
    );
    for b in bands {
        let total = b.requests.max(1) as f64;
        let share = |i: usize| format!("{:.1} %", b.served[i].1 as f64 * 100.0 / total);
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {:.1} ms | {:.1} ms |\n",
            b.proxy,
            b.requests,
            b.errors,
            share(0),
            share(1),
            share(2),
            b.p50_ms,
            b.p99_ms
        ));
    }
    s
}

#[allow(clippy::too_many_arguments)]
async fn one_run(
    args: &Args,
    scenario: Scenario,
    rate: u32,
    kind: ProxyKind,
    proxy_bin: &Path,
    origin_bin: &Path,
    work: &Path,
) -> Result<(Run, String)> {
    let dir = work.join(format!("{}-{}-{rate}", scenario.name(), kind.name()));
    std::fs::create_dir_all(&dir)?;
    let names: Vec<(&str, u64)> = ORIGINS.iter().map(|n| (*n, 0)).collect();
    let origins = start_origins(origin_bin, &names, &dir)?;
    let (mut procs, controls) = (origins.procs, origins.controls);
    let (proxy, target, config) = start_proxy(args, kind, proxy_bin, &origins.pool, &dir)?;
    procs.push(proxy);

    let phases = phases(args, scenario);
    let start = Instant::now() + Duration::from_millis(200);
    let end = start + Duration::from_millis(phases.end_ms as u64);
    let poller = tokio::spawn(load::poll_origins(
        controls.clone(),
        Duration::from_millis(100),
        end,
        start,
    ));
    let faulty = controls[0];
    let fault = scenario.fault();
    let counted = controls.clone();
    // The origin counters are read just before the fault and just after the recovery: the
    // origin load of the fault window. (After the recovery nothing the fault caused is still to
    // come: requests hanging on `a` are answered then, not retried.)
    let switcher = tokio::spawn(async move {
        tokio::time::sleep_until((start + Duration::from_millis(phases.fault_ms as u64)).into())
            .await;
        let at_fault = load::tally(&counted, start).await?;
        load::set_fault(faulty, fault).await?;
        tokio::time::sleep_until((start + Duration::from_millis(phases.recover_ms as u64)).into())
            .await;
        load::set_fault(faulty, "none").await?;
        let at_recovery = load::tally(&counted, start).await?;
        anyhow::Ok((at_fault, at_recovery))
    });
    let requests = load::open_loop(
        target,
        rate,
        Duration::from_millis(phases.end_ms as u64),
        Duration::from_millis(args.client_timeout_ms),
        start,
    )
    .await;
    let (at_fault, at_recovery) = switcher.await??;
    let at_end = load::tally(&controls, start).await?;
    let counters = Counters {
        at_fault,
        at_recovery,
        at_end,
    };
    let tallies = poller.await?;
    for p in &mut procs {
        p.check_alive()?;
    }
    let outcome = analyze::outcome(&requests, &tallies, &counters, 0, phases);
    let names: Vec<String> = ORIGINS.iter().map(|s| s.to_string()).collect();
    let buckets = analyze::buckets(&requests, &names, 250.0, phases.end_ms);
    drop(procs);
    Ok((
        Run {
            scenario: scenario.name().to_string(),
            rate,
            fault: scenario.fault().to_string(),
            proxy: kind.name().to_string(),
            phases,
            outcome,
            buckets,
            origin_tallies: tallies,
            origin_counters: counters,
        },
        config,
    ))
}
