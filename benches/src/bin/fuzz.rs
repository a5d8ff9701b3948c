//! `make fuzz`: mutation fuzzing of a running node (the `portico` binary) for `FUZZ_S` seconds.
//! Exits non-zero when the node crashed, panicked, hung or forwarded what the rules refuse.

#[path = "../fuzz/mod.rs"]
mod fuzz;

use clap::Parser;
use portico_bench::procs;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Fuzz a Portico node with mutated requests.
#[derive(Parser, Debug)]
struct Args {
    /// How long to fuzz, in seconds (default: `$FUZZ_S`, else 600).
    #[arg(long)]
    seconds: Option<u64>,
    /// Seed of the case generator (default: from the clock; printed to replay a run).
    #[arg(long)]
    seed: Option<u64>,
    /// The portico binary (default: beside this one, else target/release/portico).
    #[arg(long)]
    portico: Option<PathBuf>,
    /// Connections per batch; the checks run after each batch.
    #[arg(long, default_value_t = 96)]
    batch: usize,
}

fn portico_binary(given: Option<PathBuf>) -> PathBuf {
    if let Some(p) = given {
        return p;
    }
    if std::env::var_os("PORTICO_BIN_DIR").is_none() {
        if let Some(beside) = std::env::current_exe()
            .ok()
            .and_then(|e| e.parent().map(|d| d.join("portico")))
            .filter(|p| p.is_file())
        {
            return beside;
        }
    }
    procs::workspace_bin("portico")
}

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let args = Args::parse();
    let seconds = args
        .seconds
        .or_else(|| std::env::var("FUZZ_S").ok()?.parse().ok())
        .unwrap_or(600);
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    });
    let dir = std::env::temp_dir().join(format!("portico-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let options = fuzz::run::Options {
        duration: Duration::from_secs(seconds),
        seed,
        portico: portico_binary(args.portico),
        dir: dir.clone(),
        batch: args.batch.max(1),
        health_deadline: Duration::from_secs(10),
    };
    println!(
        "fuzzing {} for {} s (seed {seed}); logs in {}",
        options.portico.display(),
        seconds,
        dir.display()
    );
    let report = fuzz::run::run(options.clone()).await?;
    report.print(&options);
    if report.clean() {
        let _ = std::fs::remove_dir_all(&dir);
        Ok(ExitCode::SUCCESS)
    } else {
        println!("node logs kept in {}", dir.display());
        Ok(ExitCode::FAILURE)
    }
}
