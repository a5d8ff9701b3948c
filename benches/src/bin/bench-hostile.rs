//! `bench-hostile`: slowloris, idle keep-alive, huge and unterminated heads, a long request
//! line, CL+TE, pipelining, a descriptor flood and stalled POST bodies against Portico, nginx
//! and HAProxy; then on their TLS listeners handshake-less connections, silent h2
//! connections, rapid reset and a CONTINUATION flood; tables of what each did (and
//! `hostile.json`), and every config.

use anyhow::{Result, bail};
use clap::Parser;
use portico_bench::hostile::peers::{self, Instance, Kind};
use portico_bench::hostile::tls_attacks::{self, IDLE_H2_CONNECTIONS, SILENT_CONNECTIONS};
use portico_bench::hostile::{ATTACKS, TLS_ATTACKS, attacks, table};
use portico_bench::procs::{skip_line, which, workspace_bin};
use serde::Serialize;
use serde_json::{Map, Value, json};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Runs the same attacks against each proxy (release binaries from `make build`).
#[derive(Parser, Debug)]
#[command(name = "bench-hostile")]
struct Args {
    /// Proxies, comma-separated: portico, nginx, haproxy.
    #[arg(long, default_value = "portico,nginx,haproxy", value_delimiter = ',')]
    proxies: Vec<String>,
    /// How long the slow attacks watch a connection before calling it held, seconds.
    #[arg(long, default_value_t = 120)]
    cap_s: u64,
    /// Seconds between two slowloris bytes.
    #[arg(long, default_value_t = 5)]
    byte_every_s: u64,
    /// Where configs, logs and the table go.
    #[arg(long, default_value = "target/bench-hostile")]
    out: PathBuf,
    /// Which tables: `plain` (the HTTP/1 listener), `tls` (the TLS listener, HTTP/2).
    #[arg(long, default_value = "plain,tls", value_delimiter = ',')]
    sections: Vec<String>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    for s in &args.sections {
        if !matches!(s.as_str(), "plain" | "tls") {
            bail!("unknown section {s:?} (plain, tls)");
        }
    }
    let portico = workspace_bin("portico");
    let origin = workspace_bin("portico-origin");
    for b in [&portico, &origin] {
        if !b.is_file() {
            bail!(
                "{} is missing: run `make build` (or set PORTICO_BIN_DIR)",
                b.display()
            );
        }
    }
    let mut kinds = Vec::new();
    for p in &args.proxies {
        let (kind, bin) = match p.as_str() {
            "portico" => (Kind::Portico, Some(portico.clone())),
            "nginx" => (Kind::Nginx, which("nginx")),
            "haproxy" => (Kind::Haproxy, which("haproxy")),
            other => bail!("unknown proxy {other:?} (portico, nginx, haproxy)"),
        };
        match bin {
            Some(b) => kinds.push((kind, b)),
            None => eprintln!(
                "{}",
                skip_line(
                    p,
                    if p == "nginx" {
                        "nginx-light"
                    } else {
                        "haproxy"
                    }
                )
            ),
        }
    }
    std::fs::create_dir_all(&args.out)?;
    let out = args.out.canonicalize()?;
    let work = out.join("work");
    if work.exists() {
        std::fs::remove_dir_all(&work)?;
    }
    std::fs::create_dir_all(&work)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(run(&args, &kinds, &portico, &origin, &work, &out))
}

/// Whether this Portico build accepts `node.limits` (the low-fd variant's `max_connections`).
fn portico_low_fd_limits(portico: &Path, dir: &Path) -> Result<Option<String>> {
    let limits = format!(
        r#"{{ "max_connections": {} }}"#,
        peers::LOW_FD_LIMIT / 2 - 24
    );
    let setup = peers::Setup {
        port: 1,
        admin: 2,
        origins: vec![("a".into(), 3), ("b".into(), 4)],
        low_fd: true,
        portico_limits: Some(limits.clone()),
        dir: dir.to_path_buf(),
        tls: None,
    };
    let path = dir.join("limits-check.json");
    let ok = portico_bench::soak::config::check(portico, &peers::portico(&setup), &path)?;
    Ok(ok.is_ok().then_some(limits))
}

fn note_alive(inst: &mut Instance, cell: String) -> String {
    match inst.proxy.check_alive() {
        Ok(()) => cell,
        Err(_) => format!("{cell} (the proxy died)"),
    }
}

/// A measurement's cell, and its JSON under `key` in `json` (an error becomes both).
fn put<T: Serialize>(
    r: Result<T>,
    cell: impl Fn(&T) -> String,
    key: &str,
    json: &mut Map<String, Value>,
) -> String {
    match r {
        Ok(m) => {
            json.insert(key.into(), serde_json::to_value(&m).unwrap_or(Value::Null));
            cell(&m)
        }
        Err(e) => {
            json.insert(key.into(), json!({ "error": format!("{e:#}") }));
            format!("failed: {e:#}")
        }
    }
}

/// The TLS and HTTP/2 rows against every instance's TLS listener: the slow ones against all at
/// once (first the handshake-less connections, then the silent h2 ones, so that the second's
/// handshakes do not delay the first's clocks), the rest one proxy at a time. The cells, and
/// each proxy's measurements.
async fn tls_rows(
    insts: &mut [Instance],
    cap: Duration,
) -> Result<(Vec<Vec<String>>, Vec<Map<String, Value>>)> {
    let mut cells = vec![vec![String::new(); TLS_ATTACKS.len()]; insts.len()];
    let mut jsons = vec![Map::new(); insts.len()];
    eprintln!(
        "  TLS: {SILENT_CONNECTIONS} handshake-less connections against every proxy at once…"
    );
    let slow: Vec<_> = insts
        .iter()
        .map(|inst| {
            let t = inst.target.clone();
            tokio::spawn(
                async move { tls_attacks::no_handshake(&t, SILENT_CONNECTIONS, cap).await },
            )
        })
        .collect();
    for (i, task) in slow.into_iter().enumerate() {
        cells[i][0] = put(
            task.await?,
            tls_attacks::Held::cell,
            "no_handshake",
            &mut jsons[i],
        );
    }
    eprintln!("  TLS: {IDLE_H2_CONNECTIONS} silent h2 connections against every proxy at once…");
    let slow: Vec<_> = insts
        .iter()
        .map(|inst| {
            let t = inst.target.clone();
            tokio::spawn(async move { tls_attacks::silent_h2(&t, IDLE_H2_CONNECTIONS, cap).await })
        })
        .collect();
    for (i, task) in slow.into_iter().enumerate() {
        cells[i][2] = put(
            task.await?,
            tls_attacks::Held::cell,
            "silent_h2",
            &mut jsons[i],
        );
    }
    for (i, inst) in insts.iter_mut().enumerate() {
        eprintln!(
            "  TLS: legitimate clients, rapid reset, CONTINUATION flood against {}…",
            inst.kind.name()
        );
        let t = inst.target.clone();
        let j = &mut jsons[i];
        cells[i][1] = put(
            tls_attacks::legit_clients(&t, 4, Duration::from_secs(5)).await,
            tls_attacks::Legit::cell,
            "legitimate_clients",
            j,
        );
        cells[i][3] = put(
            tls_attacks::rapid_reset(&t).await,
            tls_attacks::RapidReset::cell,
            "rapid_reset",
            j,
        );
        cells[i][4] = put(
            tls_attacks::continuation_flood(&t).await,
            tls_attacks::Flood::cell,
            "continuation_flood",
            j,
        );
        for c in cells[i].iter_mut() {
            *c = note_alive(inst, std::mem::take(c));
        }
    }
    Ok((cells, jsons))
}

/// The plain rows' slow and quick attacks against `insts` (the descriptor flood is separate).
async fn plain_rows(insts: &mut [Instance], args: &Args) -> Result<Vec<Vec<String>>> {
    let cap = Duration::from_secs(args.cap_s);
    eprintln!("  slowloris, idle keep-alive and stalled POSTs against every proxy at once…");
    let every = Duration::from_secs(args.byte_every_s);
    let slow: Vec<_> = insts
        .iter()
        .map(|inst| {
            let t = inst.target.clone();
            tokio::spawn(async move {
                tokio::join!(
                    attacks::slowloris(t.addr, every, cap),
                    attacks::idle_keepalive(t.addr, cap),
                    attacks::stalled_posts(&t, 12, cap),
                )
            })
        })
        .collect();
    let mut cells: Vec<Vec<String>> = Vec::new();
    for task in slow {
        let (a, b, c) = task.await?;
        let mut row = vec![String::new(); ATTACKS.len()];
        row[0] = a;
        row[1] = b;
        row[8] = c;
        cells.push(row);
    }

    // The quick ones, one proxy at a time (the RSS reading and the origin counters need quiet).
    for (i, inst) in insts.iter_mut().enumerate() {
        eprintln!(
            "  heads, header, request line, CL+TE, pipelining against {}…",
            inst.kind.name()
        );
        let t = inst.target.clone();
        cells[i][2] = attacks::big_heads(&t, 300, 1 << 20).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        cells[i][3] = attacks::huge_header(&t, 1000 * 1024).await;
        cells[i][4] = attacks::long_request_line(&t, 9 * 1024).await;
        cells[i][5] = attacks::cl_te(&t).await;
        cells[i][6] = attacks::pipelined(t.addr).await;
        for c in cells[i].iter_mut() {
            *c = note_alive(inst, std::mem::take(c));
        }
    }
    Ok(cells)
}

/// One table as JSON: a row per attack, a cell per proxy.
fn rows_json(rows: &[&str], names: &[&str], cells: &[Vec<String>]) -> Value {
    rows.iter()
        .enumerate()
        .map(|(i, attack)| {
            let by: Map<String, Value> = names
                .iter()
                .zip(cells)
                .map(|(n, c)| (n.to_string(), c.get(i).cloned().unwrap_or_default().into()))
                .collect();
            json!({ "attack": attack, "cells": by })
        })
        .collect()
}

async fn run(
    args: &Args,
    kinds: &[(Kind, PathBuf)],
    portico: &Path,
    origin: &Path,
    work: &Path,
    out: &Path,
) -> Result<()> {
    let plain = args.sections.iter().any(|s| s == "plain");
    let tls = args.sections.iter().any(|s| s == "tls");
    let cap = Duration::from_secs(args.cap_s);
    let low_fd_limits = portico_low_fd_limits(portico, work)?;
    let limits_note = match &low_fd_limits {
        Some(l) => format!("Portico's low-fd variant sets node.limits {l}"),
        None => "this Portico build does not accept node.limits: its low-fd variant has no max_connections".into(),
    };
    eprintln!(
        "bench-hostile: {limits_note}; slow attacks watched for up to {} s",
        args.cap_s
    );
    let certs = if tls {
        Some(portico_bench::tls_bench::peers::make_certs(work)?)
    } else {
        None
    };

    // Every proxy with its own origins, a plain and a TLS listener.
    let mut insts = Vec::new();
    for (kind, bin) in kinds {
        let dir = work.join(kind.name().to_ascii_lowercase());
        insts.push(peers::start(
            *kind,
            bin,
            origin,
            &dir,
            false,
            None,
            certs.as_ref(),
        )?);
    }
    // Let the active checks see the origins.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut cells = if plain {
        plain_rows(&mut insts, args).await?
    } else {
        Vec::new()
    };
    let (tls_cells, tls_json) = if tls {
        tls_rows(&mut insts, cap).await?
    } else {
        (Vec::new(), Vec::new())
    };
    let configs: Vec<(Kind, String)> = insts.iter().map(|i| (i.kind, i.config.clone())).collect();
    drop(insts);

    // The descriptor flood, one proxy at a time, each under a 1,024-descriptor limit.
    let mut low_configs = Vec::new();
    for (i, (kind, bin)) in kinds.iter().enumerate().filter(|_| plain) {
        eprintln!(
            "  1,100 idle connections against {} at {} fds…",
            kind.name(),
            peers::LOW_FD_LIMIT
        );
        let dir = work.join(format!("{}-lowfd", kind.name().to_ascii_lowercase()));
        let limits = if *kind == Kind::Portico {
            low_fd_limits.clone()
        } else {
            None
        };
        let mut inst = peers::start(*kind, bin, origin, &dir, true, limits, None)?;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let cell =
            attacks::many_idle_then_request(inst.target.addr, 1100, Duration::from_secs(30)).await;
        cells[i][7] = note_alive(&mut inst, cell);
        low_configs.push((inst.kind, inst.config.clone()));
    }

    let names: Vec<&str> = kinds.iter().map(|(k, _)| k.name()).collect();
    let mut report = String::new();
    if plain {
        report.push_str(&table(&ATTACKS, &names, &cells));
        report.push('\n');
    }
    if tls {
        report.push_str(&format!(
            "On the TLS listener (h2 and http/1.1 by ALPN; handshake and first request bounded at 10 s, idle at 60 s by each proxy's own directives):\n\n{}\n",
            table(&TLS_ATTACKS, &names, &tls_cells)
        ));
    }
    report.push_str(&format!(
        "Slow attacks watched for up to {} s; {limits_note}. Run on one machine's loopback, each proxy with two `portico-origin`s.\n",
        args.cap_s
    ));
    for (kind, config) in configs.iter().chain(&low_configs) {
        let variant = if low_configs.iter().any(|(_, c)| c == config) {
            format!(" (under a {}-fd limit)", peers::LOW_FD_LIMIT)
        } else {
            String::new()
        };
        report.push_str(&format!("\n{}{variant}:\n```\n{config}```\n", kind.name()));
    }
    println!("{report}");
    std::fs::write(out.join("hostile.md"), &report)?;
    let measured: Map<String, Value> = names
        .iter()
        .zip(tls_json)
        .map(|(n, j)| (n.to_string(), Value::Object(j)))
        .collect();
    let doc = json!({
        "proxies": names,
        "cap_s": args.cap_s,
        "plain": if plain { rows_json(&ATTACKS, &names, &cells) } else { Value::Null },
        "tls": if tls { rows_json(&TLS_ATTACKS, &names, &tls_cells) } else { Value::Null },
        "tls_measured": measured,
        "configs": configs.iter().map(|(k, c)| (k.name().to_string(), Value::from(c.as_str()))).collect::<Map<_, _>>(),
        "low_fd_configs": low_configs.iter().map(|(k, c)| (k.name().to_string(), Value::from(c.as_str()))).collect::<Map<_, _>>(),
    });
    std::fs::write(
        out.join("hostile.json"),
        serde_json::to_string_pretty(&doc)? + "\n",
    )?;
    eprintln!(
        "wrote {0}/hostile.md and {0}/hostile.json ({1} + {2} attacks)",
        out.display(),
        if plain { ATTACKS.len() } else { 0 },
        if tls { TLS_ATTACKS.len() } else { 0 },
    );
    Ok(())
}
