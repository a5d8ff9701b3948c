//! `bench-rollout`: what a pushed document costs clients when it is good, when it is valid
//! but wrong, and when the same wrong document is written to every node at once as before
//! health-gated rollouts. The three-region fleet (four nodes, two in the canary's region)
//! under open-loop load; a table, issue 21's targets on the wrong push, the anchors, every
//! document and command line, JSON and an SVG timeline.

use anyhow::{Context, Result, bail};
use clap::Parser;
use portico_bench::config_bench::docs::{self, NodeSection, OriginSpec, Variant};
use portico_bench::config_bench::fleet::{Binaries, Origins, StoreFleet, results_dir, run_bounded};
use portico_bench::config_bench::report::Anchor;
use portico_bench::procs::free_port;
use portico_bench::rollout_bench::case::{self, CaseResult, Push, Setup};
use portico_bench::rollout_bench::report::{self, Verdict};
use portico_bench::rollout_bench::{NODES, svg};
use portico_core::config::fingerprint;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Pushes a good and a valid-but-wrong document to a three-region fleet under load, then
/// writes the wrong one straight to every node as before rollouts.
#[derive(Parser, Debug)]
#[command(name = "bench-rollout")]
struct Args {
    /// Requests per second over all nodes (open loop).
    #[arg(long, default_value_t = 500)]
    rate: u32,
    /// `--bake` of the good push (row a), seconds.
    #[arg(long, default_value_t = 10)]
    bake: u64,
    /// Load before each push, seconds (the gates' baseline).
    #[arg(long, default_value_t = 5)]
    warmup_s: u64,
    /// Load after every node runs the final version, seconds.
    #[arg(long, default_value_t = 2)]
    tail_s: u64,
    /// How long the wrong document stays when written straight to `config` (row c), seconds:
    /// the operator noticing and pushing again, optimistically fast.
    #[arg(long, default_value_t = 10)]
    exposure_s: u64,
    /// `/status` poll interval, ms.
    #[arg(long, default_value_t = 50)]
    poll_ms: u64,
    /// SVG bucket, ms.
    #[arg(long, default_value_t = 250)]
    bucket_ms: u64,
    /// Client timeout per request, ms (a timeout counts as an error).
    #[arg(long, default_value_t = 2000)]
    client_timeout_ms: u64,
    /// The whole run is stopped (and every child killed) after this long.
    #[arg(long, default_value_t = 300)]
    max_seconds: u64,
    /// Where results go.
    #[arg(long, default_value = "target/bench-rollout")]
    out: PathBuf,
}

/// The documents and how the fleet was started.
#[derive(serde::Serialize)]
struct Shown {
    origins: Vec<String>,
    etcd: Vec<String>,
    nodes: Vec<String>,
    stable: String,
    good: String,
    wrong: String,
}

fn main() -> Result<()> {
    let mut args = Args::parse();
    let bins = Binaries::find("bench-rollout")?;
    let (portico, origin_bin) = (bins.portico, bins.origin);
    args.out = results_dir(&args.out)?;
    let started = Instant::now();
    let (cases, shown) = run_bounded(args.max_seconds, run(&args, &portico, &origin_bin))?;
    let names: Vec<String> = NODES.iter().map(|(n, _)| n.to_string()).collect();
    let text = render(&args, &cases, &shown, &names, started.elapsed());
    println!("{text}");
    std::fs::write(args.out.join("results.md"), &text)?;
    std::fs::write(
        args.out.join("rollout.svg"),
        svg::render(&cases, &names, args.bucket_ms as f64),
    )?;
    let verdict = cases
        .iter()
        .find(|c| c.case.starts_with("(b)"))
        .map(Verdict::of);
    let json = serde_json::json!({
        "args": {
            "rate": args.rate, "bake": args.bake, "warmup_s": args.warmup_s,
            "tail_s": args.tail_s, "exposure_s": args.exposure_s, "poll_ms": args.poll_ms,
            "client_timeout_ms": args.client_timeout_ms,
        },
        "elapsed_s": started.elapsed().as_secs_f64(),
        "nodes": names,
        "cases": cases,
        "row_b_targets": verdict,
        "anchors": report::ANCHORS,
        "shown": shown,
    });
    std::fs::write(
        args.out.join("results.json"),
        serde_json::to_string_pretty(&json)?,
    )?;
    eprintln!(
        "wrote {0}/results.json, {0}/results.md, {0}/rollout.svg and {0}/configs/ in {1:.0} s",
        args.out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The wrong document: the good one with every origin moved to a port nobody listens on
/// (wrong ports: valid, and every request through them fails).
fn wrong_doc(origins: &[OriginSpec]) -> Result<String> {
    let mut moved = Vec::new();
    for o in origins {
        moved.push(OriginSpec {
            addr: SocketAddr::from(([127, 0, 0, 1], free_port()?)),
            ..o.clone()
        });
    }
    Ok(docs::render(&moved, Variant::B, &NodeSection::Shared))
}

async fn run(args: &Args, portico: &Path, origin_bin: &Path) -> Result<(Vec<CaseResult>, Shown)> {
    let work = args.out.join("work");
    let origins = Origins::start(origin_bin, &work)?;
    let stable = docs::render(&origins.specs, Variant::A, &NodeSection::Shared);
    let good = docs::render(&origins.specs, Variant::B, &NodeSection::Shared);
    let wrong = wrong_doc(&origins.specs)?;
    let configs = args.out.join("configs");
    let (good_file, wrong_file) = (configs.join("good.json"), configs.join("wrong.json"));
    std::fs::write(configs.join("stable.json"), &stable)?;
    std::fs::write(&good_file, &good)?;
    std::fs::write(&wrong_file, &wrong)?;
    let nodes: Vec<(String, &str)> = NODES.iter().map(|(n, r)| (n.to_string(), *r)).collect();
    eprintln!("starting etcd (three members) and {} nodes…", nodes.len());
    let mut fleet = StoreFleet::start_nodes(portico, &stable, &work, &nodes).await?;
    wait_ready(&fleet, nodes.len()).await?;
    let url = fleet.url.to_string();
    let setup = Setup {
        nodes: &fleet.nodes,
        store: &fleet.store,
        rate: args.rate,
        warmup: Duration::from_secs(args.warmup_s),
        tail: Duration::from_secs(args.tail_s),
        rollout_timeout: Duration::from_secs(args.bake * 3 * 4 + 60),
        client_timeout: Duration::from_millis(args.client_timeout_ms),
        poll: Duration::from_millis(args.poll_ms),
    };
    let mut cases = Vec::new();
    eprintln!("(a) good document, default waves, --bake {}…", args.bake);
    cases.push(
        case::run(
            &setup,
            "(a) good document, default waves",
            &good,
            &fingerprint(&stable),
            Push::Cli {
                bin: portico,
                url: url.clone(),
                file: good_file,
                args: vec![
                    "--bake".into(),
                    args.bake.to_string(),
                    "--message".into(),
                    "bench: good".into(),
                ],
            },
        )
        .await
        .context("case (a)")?,
    );
    eprintln!("(b) valid-but-wrong document, default gates…");
    cases.push(
        case::run(
            &setup,
            "(b) valid-but-wrong document, default gates",
            &wrong,
            &fingerprint(&good),
            Push::Cli {
                bin: portico,
                url: url.clone(),
                file: wrong_file,
                args: vec!["--message".into(), "bench: wrong".into()],
            },
        )
        .await
        .context("case (b)")?,
    );
    eprintln!("(c) the same document written to config, as before rollouts…");
    cases.push(
        case::run(
            &setup,
            "(c) the same, written to config (before rollouts)",
            &wrong,
            &fingerprint(&good),
            Push::Direct {
                restore: good.clone(),
                exposure: Duration::from_secs(args.exposure_s),
            },
        )
        .await
        .context("case (c)")?,
    );
    fleet.check_alive()?;
    let shown = Shown {
        origins: origins.commands.clone(),
        etcd: fleet.members.iter().map(|m| m.command.clone()).collect(),
        nodes: fleet.nodes.iter().map(|n| n.command.clone()).collect(),
        stable,
        good,
        wrong,
    };
    Ok((cases, shown))
}

/// Waits until a conductor holds the election and every node has registered.
async fn wait_ready(fleet: &StoreFleet, nodes: usize) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let conductor = fleet.store.conductor().await.ok().flatten();
        let registered = fleet.store.node_statuses().await.map_or(0, |n| n.len());
        if conductor.is_some() && registered == nodes {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("after 30 s: conductor {conductor:?}, {registered} of {nodes} nodes registered");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn anchors(list: &[Anchor]) -> String {
    list.iter()
        .map(|a| format!("- {}: {} — {}\n", a.service, a.quoted, a.source))
        .collect()
}

fn render(
    args: &Args,
    cases: &[CaseResult],
    shown: &Shown,
    names: &[String],
    elapsed: Duration,
) -> String {
    let mut s = format!(
        "# bench-rollout: {} req/s over {} nodes in three regions, etcd with three members\n\n",
        args.rate,
        names.len()
    );
    s.push_str(&report::table(cases, names));
    s.push('\n');
    if let Some(a) = cases.iter().find(|c| c.case.starts_with("(a)")) {
        s.push_str(&format!(
            "Row (a): promoted {} s after the push (three waves, --bake {}); waves started at {} s.\n",
            a.figures
                .push_to_verdict_ms
                .map_or("—".into(), |v| format!("{:.1}", v / 1000.0)),
            args.bake,
            a.figures
                .wave_starts_ms
                .iter()
                .map(|w| format!("{:.1}", w / 1000.0))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if let Some(b) = cases.iter().find(|c| c.case.starts_with("(b)")) {
        let v = Verdict::of(b);
        let mark = |ok: bool| if ok { "PASS" } else { "FAIL" };
        s.push_str(&format!(
            "Row (b) against issue 21's targets: errors only on the canary {}; push → rollback verdict ≤ 3 s {}; verdict → every node on stable ≤ 1 s {}.\n",
            mark(v.errors_only_on_canary),
            mark(v.verdict_within_3s),
            mark(v.stable_within_1s)
        ));
    }
    s.push_str(&format!(
        "\nEach case: {} s of load first (the gates' baseline), the push, then load until every node runs the final version, plus {} s. An error is any request not answered 200 (a timeout after {} ms counts).\n\n",
        args.warmup_s, args.tail_s, args.client_timeout_ms
    ));
    s.push_str("Anchors (published, quoted, not measured here):\n\n");
    s.push_str(&anchors(report::ANCHORS));
    s.push_str("\nCommand lines:\n\n```\n");
    for c in cases {
        s.push_str(&format!("{}: {}\n", c.case, c.push));
    }
    for l in shown.origins.iter().chain(&shown.etcd).chain(&shown.nodes) {
        s.push_str(l);
        s.push('\n');
    }
    s.push_str(
        "```\n\nThe wrong document (every origin on a port nobody listens on):\n\n```json\n",
    );
    s.push_str(&shown.wrong);
    s.push_str(&format!(
        "```\n\nRun time {:.0} s; the stable and good documents are in configs/.\n",
        elapsed.as_secs_f64()
    ));
    s
}
