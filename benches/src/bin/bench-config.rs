//! `bench-config`: how fast a config change reaches every node of the three-region fleet
//! (etcd store, one member and one Portico node per region), and whether clients notice 100
//! reloads under load — through the store and, for comparison, by file + SIGHUP. A table,
//! the anchors' published figures, every config and command line, JSON and markdown.

use anyhow::{Context, Result};
use clap::Parser;
use portico_bench::config_bench::docs::{self, NodeSection, OriginSpec, Variant};
use portico_bench::config_bench::fleet::{
    Binaries, FileNode, NodeInfo, Origins, StoreFleet, results_dir, run_bounded,
};
use portico_bench::config_bench::load::{self, LoadSummary};
use portico_bench::config_bench::report::{self, Propagation, Row};
use portico_bench::config_bench::served;
use portico_bench::config_bench::status::StatusClient;
use portico_bench::config_bench::trigger::{Change, Pace, Series, Trigger};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Pushes config changes to a three-region Portico fleet following an etcd store and times
/// until every node runs them; then makes 100 changes under open-loop load and counts client
/// errors; then the same with a `--config` node reloaded by SIGHUP.
#[derive(Parser, Debug)]
#[command(name = "bench-config")]
struct Args {
    /// Changes pushed to the idle fleet (in-process store writes) for the propagation numbers.
    #[arg(long, default_value_t = 60)]
    pushes: usize,
    /// Changes pushed with `portico config push` (the CLI); 0 skips this case.
    #[arg(long, default_value_t = 10)]
    cli_pushes: usize,
    /// Changes made under load, through the store and by SIGHUP; 0 skips both load cases.
    #[arg(long, default_value_t = 100)]
    reloads: usize,
    /// Requests per second during the load cases (open loop).
    #[arg(long, default_value_t = 500)]
    rate: u32,
    /// Between two changes under load, ms (a fixed schedule).
    #[arg(long, default_value_t = 250)]
    interval_ms: u64,
    /// How often each node's /status is polled while a change propagates, ms; 0: back to back
    /// (the next request as soon as the answer is in: about 0.5 ms apart here).
    #[arg(long, default_value_t = 0)]
    poll_ms: u64,
    /// A change not seen on every node within this long counts as not propagated, ms.
    #[arg(long, default_value_t = 5000)]
    change_timeout_ms: u64,
    /// Client timeout per request, ms (a timeout counts as an error).
    #[arg(long, default_value_t = 2000)]
    client_timeout_ms: u64,
    /// The whole run is stopped (and every child killed) after this long.
    #[arg(long, default_value_t = 180)]
    max_seconds: u64,
    /// Skip the file + SIGHUP case.
    #[arg(long)]
    no_sighup: bool,
    /// Where results go.
    #[arg(long, default_value = "target/bench-config")]
    out: PathBuf,
}

/// Everything shown beside the numbers: what each process got.
#[derive(Default, serde::Serialize)]
struct Shown {
    origins: Vec<String>,
    etcd: Vec<String>,
    store_url: String,
    store_docs: Vec<String>,
    store_nodes: Vec<NodeInfo>,
    file_docs: Vec<String>,
    file_node: Option<NodeInfo>,
}

/// Everything measured.
#[derive(Default, serde::Serialize)]
struct Results {
    rows: Vec<Row>,
    changes: BTreeMap<String, Vec<Change>>,
    reload_counters: BTreeMap<String, BTreeMap<String, u64>>,
    first_errors: BTreeMap<String, Vec<load::Sent>>,
    shown: Shown,
}

fn main() -> Result<()> {
    let mut args = Args::parse();
    let bins = Binaries::find("bench-config")?;
    let (portico, origin_bin) = (bins.portico, bins.origin);
    if args.pushes < 50 {
        eprintln!(
            "note: {} pushes; the propagation percentiles want at least 50",
            args.pushes
        );
    }
    args.out = results_dir(&args.out)?;
    let started = Instant::now();
    let results = run_bounded(args.max_seconds, run(&args, &portico, &origin_bin))?;
    let elapsed = started.elapsed();
    let text = render(&args, &results, elapsed);
    println!("{text}");
    std::fs::write(args.out.join("results.md"), &text)?;
    let json = serde_json::json!({
        "args": {
            "pushes": args.pushes, "cli_pushes": args.cli_pushes, "reloads": args.reloads,
            "rate": args.rate, "interval_ms": args.interval_ms, "poll_ms": args.poll_ms,
            "change_timeout_ms": args.change_timeout_ms, "client_timeout_ms": args.client_timeout_ms,
        },
        "elapsed_s": elapsed.as_secs_f64(),
        "anchors": report::ANCHORS,
        "results": results,
    });
    std::fs::write(
        args.out.join("results.json"),
        serde_json::to_string_pretty(&json)?,
    )?;
    eprintln!(
        "wrote {0}/results.json, {0}/results.md and {0}/configs/ in {1:.0} s",
        args.out.display(),
        elapsed.as_secs_f64()
    );
    Ok(())
}

async fn run(args: &Args, portico: &Path, origin_bin: &Path) -> Result<Results> {
    let work = args.out.join("work");
    let configs = args.out.join("configs");
    let mut res = Results::default();
    let mut origins = tokio::task::block_in_place(|| Origins::start(origin_bin, &work))?;
    res.shown.origins = origins.commands.clone();
    let specs = origins.specs.clone();

    // The store fleet.
    let store_docs: Vec<String> = [Variant::A, Variant::B]
        .iter()
        .map(|v| docs::render(&specs, *v, &NodeSection::Shared))
        .collect();
    let files = [configs.join("store-A.json"), configs.join("store-B.json")];
    for (f, d) in files.iter().zip(&store_docs) {
        std::fs::write(f, d)?;
    }
    eprintln!("bench-config: starting etcd (3 members), 2 origins, 3 store-following nodes…");
    let store_dir = work.join("store");
    std::fs::create_dir_all(&store_dir)?;
    let mut fleet = StoreFleet::start(portico, &store_docs[0], &store_dir).await?;
    res.shown.store_url = fleet.url.to_string();
    res.shown.etcd = fleet.members.iter().map(|m| m.command.clone()).collect();
    res.shown.store_nodes = fleet.nodes.clone();
    res.shown.store_docs = store_docs.clone();
    let admins: Vec<SocketAddr> = fleet.nodes.iter().map(|n| n.admin).collect();
    let proxies: Vec<SocketAddr> = fleet.nodes.iter().map(|n| n.proxy).collect();
    let poll = Duration::from_millis(args.poll_ms);
    let timeout = Duration::from_millis(args.change_timeout_ms);
    let docs2 = [store_docs[0].as_str(), store_docs[1].as_str()];
    let mut running = Variant::A;
    // Let the first probes, the registrations and the watches settle before measuring.
    tokio::time::sleep(Duration::from_secs(1)).await;

    let put = Trigger::Store(Box::new(fleet.store.clone()));
    {
        eprintln!(
            "  store, idle: {} in-process pushes (each waits for every node)…",
            args.pushes
        );
        let series = Series {
            trigger: &put,
            docs: docs2,
            start: running,
            admins: admins.clone(),
            poll,
            timeout,
            epoch: Instant::now(),
        };
        let changes = series
            .run(
                args.pushes,
                Pace::Settled {
                    min: Duration::from_millis(50),
                    spread: Duration::from_millis(100),
                },
            )
            .await?;
        running = last_variant(&changes, running);
        fleet.check_alive()?;
        push_row(
            &mut res,
            "store → 3 regions, idle",
            &put,
            changes,
            None,
            None,
        );
    }

    if args.cli_pushes > 0 {
        eprintln!("  store, CLI: {} × portico config push…", args.cli_pushes);
        let cli = Trigger::Cli {
            bin: portico.to_path_buf(),
            url: fleet.url.to_string(),
            files: files.clone(),
        };
        let series = Series {
            trigger: &cli,
            docs: docs2,
            start: running,
            admins: admins.clone(),
            poll,
            timeout,
            epoch: Instant::now(),
        };
        let pace = Pace::Settled {
            min: Duration::from_millis(50),
            spread: Duration::from_millis(100),
        };
        let changes = series.run(args.cli_pushes, pace).await?;
        running = last_variant(&changes, running);
        fleet.check_alive()?;
        push_row(
            &mut res,
            "store → 3 regions, `portico config push`",
            &cli,
            changes,
            None,
            None,
        );
    }

    if args.reloads > 0 {
        eprintln!(
            "  store under load: {} pushes every {} ms, {} req/s spread over the 3 nodes…",
            args.reloads, args.interval_ms, args.rate
        );
        let (changes, requests) =
            under_load(args, &put, docs2, running, admins.clone(), proxies).await?;
        fleet.check_alive()?;
        let following = served::check(&requests, &changes, running, &specs);
        running = last_variant(&changes, running);
        let _ = running;
        keep_errors(&mut res, "store", &requests);
        push_row(
            &mut res,
            &format!("store → 3 regions, {} req/s over the 3 nodes", args.rate),
            &put,
            changes,
            Some(load::summarize(&requests)),
            Some(following),
        );
    }
    let status = StatusClient::new();
    for n in &fleet.nodes {
        if let Some(r) = status.reloads(n.admin).await {
            res.reload_counters.insert(n.name.clone(), r);
        }
    }
    drop(fleet);

    if args.reloads > 0 && !args.no_sighup {
        eprintln!(
            "  file + SIGHUP under load: {} reloads every {} ms, {} req/s to one node…",
            args.reloads, args.interval_ms, args.rate
        );
        let file_dir = work.join("file");
        std::fs::create_dir_all(&file_dir)?;
        let (first, r0) = (specs.clone(), "us-east");
        let node = FileNode::start(portico, &file_dir, r0, move |listen, admin| {
            file_doc(&first, Variant::A, r0, listen, admin)
        })
        .await?;
        let file_docs: Vec<String> = [Variant::A, Variant::B]
            .iter()
            .map(|v| file_doc(&specs, *v, r0, node.node.proxy, node.node.admin))
            .collect();
        for (name, d) in ["file-A.json", "file-B.json"].iter().zip(&file_docs) {
            std::fs::write(configs.join(name), d)?;
        }
        let mut node = node;
        let hup = Trigger::Sighup {
            pid: node.pid(),
            path: node.path.clone(),
        };
        let (changes, requests) = under_load(
            args,
            &hup,
            [file_docs[0].as_str(), file_docs[1].as_str()],
            Variant::A,
            vec![node.node.admin],
            vec![node.node.proxy],
        )
        .await?;
        node.check_alive()?;
        let following = served::check(&requests, &changes, Variant::A, &specs);
        keep_errors(&mut res, "sighup", &requests);
        if let Some(r) = status.reloads(node.node.admin).await {
            res.reload_counters.insert(node.node.name.clone(), r);
        }
        res.shown.file_docs = file_docs;
        res.shown.file_node = Some(node.node.clone());
        push_row(
            &mut res,
            &format!("file + SIGHUP → 1 node, {} req/s", args.rate),
            &hup,
            changes,
            Some(load::summarize(&requests)),
            Some(following),
        );
    }
    origins.check_alive()?;
    Ok(res)
}

/// The `--config` document: the shared pool with this node's section.
fn file_doc(
    specs: &[OriginSpec],
    v: Variant,
    region: &str,
    listen: SocketAddr,
    admin: SocketAddr,
) -> String {
    docs::render(
        specs,
        v,
        &NodeSection::File {
            region: region.to_string(),
            listen,
            admin,
        },
    )
}

fn last_variant(changes: &[Change], before: Variant) -> Variant {
    changes.last().map_or(before, |c| c.variant)
}

/// `reloads` changes on a fixed schedule while the open-loop load runs against `proxies`:
/// 1 s of load before the first change, 1 s after the last.
async fn under_load(
    args: &Args,
    trigger: &Trigger,
    docs: [&str; 2],
    start: Variant,
    admins: Vec<SocketAddr>,
    proxies: Vec<SocketAddr>,
) -> Result<(Vec<Change>, Vec<load::Sent>)> {
    let epoch = Instant::now();
    let load_start = epoch + Duration::from_millis(100);
    let every = Duration::from_millis(args.interval_ms);
    let first = load_start + Duration::from_secs(1);
    let duration = Duration::from_secs(2) + every * args.reloads as u32;
    let load = tokio::spawn(load::open_loop(
        proxies,
        args.rate,
        duration,
        Duration::from_millis(args.client_timeout_ms),
        load_start,
        epoch,
    ));
    let series = Series {
        trigger,
        docs,
        start,
        admins,
        poll: Duration::from_millis(args.poll_ms),
        timeout: Duration::from_millis(args.change_timeout_ms),
        epoch,
    };
    let changes = series
        .run(args.reloads, Pace::Schedule { first, every })
        .await;
    let requests = load.await.context("the load generator failed")?;
    Ok((changes?, requests))
}

fn keep_errors(res: &mut Results, case: &str, requests: &[load::Sent]) {
    let errors: Vec<load::Sent> = requests
        .iter()
        .filter(|r| r.status != 200 || r.error.is_some())
        .take(50)
        .cloned()
        .collect();
    res.first_errors.insert(case.to_string(), errors);
}

fn push_row(
    res: &mut Results,
    case: &str,
    trigger: &Trigger,
    changes: Vec<Change>,
    load: Option<LoadSummary>,
    following: Option<served::Following>,
) {
    let p = report::propagation(&changes);
    eprintln!(
        "    {case}: p50 {:.1} ms, max {:.1} ms over {} changes{}",
        p.p50_ms,
        p.max_ms,
        p.changes,
        load.as_ref().map_or(String::new(), |l| format!(
            ", {} errors of {}",
            l.errors, l.requests
        ))
    );
    res.changes.insert(case.to_string(), changes);
    res.rows.push(Row {
        case: case.to_string(),
        trigger: trigger.describe().to_string(),
        propagation: p,
        load,
        following,
    });
}

fn fmt_per_node(p: &Propagation, names: &[String]) -> String {
    p.per_node_p50_ms
        .iter()
        .zip(names)
        .map(|(ms, n)| format!("{n} {ms:.1}"))
        .collect::<Vec<_>>()
        .join(" · ")
}

fn render(args: &Args, res: &Results, elapsed: Duration) -> String {
    let mut s = format!(
        "Config propagation and reloads (this machine, loopback; {} s in all). Propagation: from just \
         before the write until every node's /status reports the new `config_version`, each node \
         polled {} from the moment of the write; the time reported is the arrival of the first \
         answer showing the new version (p99 by nearest rank: of fewer than 100 changes it is the \
         largest).\n\n",
        elapsed.as_secs(),
        if args.poll_ms == 0 {
            "back to back (a new /status request as soon as the previous answer is in)".to_string()
        } else {
            format!("every {} ms", args.poll_ms)
        },
    );
    s.push_str(&report::table(&res.rows));
    s.push('\n');
    let store_names: Vec<String> = res
        .shown
        .store_nodes
        .iter()
        .map(|n| n.region.clone())
        .collect();
    for r in &res.rows {
        let p = &r.propagation;
        s.push_str(&format!("- **{}** — {}.\n", r.case, r.trigger));
        let names = if r.case.starts_with("file") {
            vec!["node".to_string()]
        } else {
            store_names.clone()
        };
        s.push_str(&format!(
            "  median per node (ms): {}; the write itself: p50 {:.2} ms; measurement resolution \
             (last poll with the old version → first answer with the new, slowest node): p50 {:.2} ms, max {:.2} ms \
             ({:.0} polls per node and change, slowest /status round trip p50 {:.2} ms); fastest change {:.1} ms.\n",
            fmt_per_node(p, &names),
            p.write_p50_ms,
            p.resolution_p50_ms,
            p.resolution_max_ms,
            p.polls_p50,
            p.slowest_poll_p50_ms,
            p.min_ms
        ));
        if let Some(l) = &r.load {
            s.push_str(&format!(
                "  load: {} requests ({} on new connections, the rest kept alive), {} ok; non-200: {}; transport errors: {}; latency of the 200s p50 {:.2} / p99 {:.2} / max {:.1} ms.\n",
                l.requests,
                l.fresh_connections,
                l.ok,
                if l.non_200.is_empty() { "none".to_string() } else { format!("{:?}", l.non_200) },
                if l.transport_errors.is_empty() { "none".to_string() } else { format!("{:?}", l.transport_errors) },
                l.p50_ms,
                l.p99_ms,
                l.max_ms
            ));
        }
        if let Some(f) = &r.following {
            s.push_str(&format!(
                "  answers sent after their node ran the latest change: {} of {} from the origin it prefers; {} sent while a change was still propagating to their node (not judged).\n",
                f.expected, f.settled, f.in_transition
            ));
        }
    }
    if !res.reload_counters.is_empty() {
        let c: Vec<String> = res
            .reload_counters
            .iter()
            .map(|(n, m)| {
                let parts: Vec<String> = m
                    .iter()
                    .filter(|(k, v)| **v > 0 || k.ends_with("rejected"))
                    .filter(|(k, v)| {
                        **v > 0
                            || k.starts_with(if n.starts_with("file") {
                                "file"
                            } else {
                                "store"
                            })
                    })
                    .map(|(k, v)| format!("{k} {v}"))
                    .collect();
                format!("{n}: {}", parts.join(", "))
            })
            .collect();
        s.push_str(&format!(
            "- reloads counted by the nodes (`portico_config_reloads_total`): {}\n",
            c.join("; ")
        ));
    }
    s.push('\n');
    s.push_str(&report::anchors());
    s.push_str(
        "\nNot a WAN: the three etcd members and nodes share this 2-core machine's loopback, so \
         Raft and the watch pay no inter-region round trip; across regions a change costs about one \
         round trip to the etcd leader plus one from the leader to each member's watchers.\n",
    );

    s.push_str("\n### What each process got\n\n");
    s.push_str("Origins:\n```\n");
    for c in &res.shown.origins {
        s.push_str(&format!("{c}\n"));
    }
    s.push_str("```\netcd members (started by portico-store's LocalEtcd):\n```\n");
    for c in &res.shown.etcd {
        s.push_str(&format!("{c}\n"));
    }
    s.push_str(&format!(
        "```\nStore-following nodes (the bench writes through {}):\n```\n",
        res.shown.store_url
    ));
    for n in &res.shown.store_nodes {
        s.push_str(&format!("{}\n", n.command));
    }
    s.push_str("```\n");
    for (v, d) in ["A (the start)", "B"].iter().zip(&res.shown.store_docs) {
        s.push_str(&format!(
            "Store document {v} (`PREFIX/config`; each node's region and listeners come from its flags):\n```json\n{d}```\n"
        ));
    }
    if let Some(n) = &res.shown.file_node {
        s.push_str(&format!("File node:\n```\n{}\n```\n", n.command));
        for (v, d) in ["A (the start)", "B"].iter().zip(&res.shown.file_docs) {
            s.push_str(&format!("File document {v}:\n```json\n{d}```\n"));
        }
    }
    s
}
