//! `portico`: run an edge node (from a file or a store), check a config with `--check`, or
//! manage the store's config with `portico config push | get | status`, or print the config's
//! JSON Schema or its Markdown reference (`portico schema [--markdown]`).

use anyhow::Context;
use clap::{Parser, Subcommand};
use portico::config::prepare::prepare;
use portico::node::{Node, NodeOptions, StartError};
use portico::state::ConfigSource;
use portico::store_link::{STORE_TIMEOUT, push_document};
use portico_core::config::{ConfigErrors, Overrides, fingerprint};
use portico_store::{Store, StoreUrl};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// mimalloc instead of glibc's malloc: a request allocates and frees many small buffers, and
/// glibc's allocator took ~14 % of the proxy's CPU in a profile.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A Layer-7 edge node: routes each request by priority, measured latency and weight, probes
/// every origin itself, and fails over without waiting for DNS.
#[derive(Parser, Debug)]
#[command(name = "portico", version, about)]
struct Cli {
    /// The JSON config shared by every node (SIGHUP re-reads it).
    #[arg(long, value_name = "FILE", conflicts_with = "store")]
    config: Option<PathBuf>,
    /// Follow the config in etcd instead of a file: etcd://HOST:PORT[,HOST:PORT...]/PREFIX.
    #[arg(long, value_name = "URL")]
    store: Option<String>,
    /// With --store: this node's name under PREFIX/nodes/ (default <region>-<hostname>).
    #[arg(long, value_name = "NODE", requires = "store")]
    name: Option<String>,
    /// With --store: where the last applied document is kept, to start from when the store
    /// is unreachable.
    #[arg(long, value_name = "FILE", requires = "store")]
    cache: Option<PathBuf>,
    /// This node's region (overrides node.region).
    #[arg(long, value_name = "NAME")]
    region: Option<String>,
    /// Proxy listener, IP:PORT (overrides node.listen).
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// Admin listener, IP:PORT (overrides node.admin_listen).
    #[arg(long, value_name = "ADDR")]
    admin_listen: Option<String>,
    /// TLS listener, IP:PORT (overrides node.tls_listen; needs `certificates`).
    #[arg(long, value_name = "ADDR")]
    tls_listen: Option<String>,
    /// Validate the config, print a summary and exit (0: valid, 1: errors on stderr).
    #[arg(long)]
    check: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// The config document in the store that every node follows.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Print the JSON Schema of the config document (committed as conf/portico.schema.json).
    Schema {
        /// Print the configuration reference generated from the schema instead, as Markdown
        /// (committed as docs/configuration-reference.md).
        #[arg(long)]
        markdown: bool,
    },
}

#[derive(Subcommand, Debug)]
enum ConfigCommand {
    /// Validate FILE and write it to the store; prints the new version.
    Push {
        /// The config document.
        file: PathBuf,
        /// Write only if the stored version is this one (compare-and-swap).
        #[arg(long, value_name = "VERSION")]
        if_version: Option<String>,
        /// The store: etcd://HOST:PORT[,HOST:PORT...]/PREFIX.
        #[arg(long, value_name = "URL")]
        store: Option<String>,
    },
    /// Print the stored document.
    Get {
        /// The store: etcd://HOST:PORT[,HOST:PORT...]/PREFIX.
        #[arg(long, value_name = "URL")]
        store: Option<String>,
    },
    /// One line per registered node; exit 0 when every node runs the stored version, else 3.
    Status {
        /// Wait up to this many seconds for every node to run the stored version.
        #[arg(long, value_name = "SECONDS")]
        wait: Option<f64>,
        /// The store: etcd://HOST:PORT[,HOST:PORT...]/PREFIX.
        #[arg(long, value_name = "URL")]
        store: Option<String>,
    },
}

/// Writes to stdout. A closed stdout (`portico --check conf.json | head -3`) quietly drops
/// the rest, and the command ends with its own exit code; any other write error is returned.
fn out(text: std::fmt::Arguments) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_fmt(text).and_then(|()| stdout.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        written => written,
    }
}

/// `print!` through [`out`].
macro_rules! say {
    ($($arg:tt)*) => { out(format_args!($($arg)*)) };
}

/// `println!` through [`out`].
macro_rules! sayln {
    ($($arg:tt)*) => { out(format_args!("{}\n", format_args!($($arg)*))) };
}

fn print_errors(errors: &ConfigErrors) {
    for e in &errors.0 {
        eprintln!("{e}");
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(
        "info,pingora_core=warn,pingora_proxy=warn,pingora=warn,h2=warn,tonic=warn,hyper=warn",
    ))
    .format_timestamp_millis()
    .init();
    let result = match cli.command {
        Some(Command::Config(ref cmd)) => config_command(cmd, cli.store.as_deref()),
        Some(Command::Schema { markdown }) => {
            let text = if markdown {
                portico_core::config::reference_markdown()
            } else {
                portico_core::config::schema_json()
            };
            say!("{text}")
                .map(|()| ExitCode::SUCCESS)
                .map_err(Into::into)
        }
        None => run(cli),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn overrides(cli: &Cli) -> Overrides {
    Overrides {
        region: cli.region.clone(),
        listen: cli.listen.clone(),
        admin_listen: cli.admin_listen.clone(),
        tls_listen: cli.tls_listen.clone(),
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    if !cli.check {
        portico::control::take_over_signals();
    }
    if let Some(url) = cli.store.clone() {
        return run_from_store(cli, &url);
    }
    let Some(path) = cli.config.clone() else {
        anyhow::bail!("give --config FILE (or --store etcd://HOST:PORT/PREFIX); see --help");
    };
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let overrides = overrides(&cli);
    let prepared = match block_on(prepare(&text, &overrides, None))? {
        Ok(p) => p,
        Err(errors) => {
            print_errors(&errors);
            return Ok(ExitCode::from(1));
        }
    };
    if cli.check {
        for w in prepared.warnings() {
            eprintln!("warning: {w}");
        }
        say!(
            "{}",
            portico::config::summary::summary(&prepared.config, &prepared.addrs)
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    let options = NodeOptions {
        handle_signals: true,
        overrides,
        source: ConfigSource::File(path),
    };
    match Node::build(prepared, options, None) {
        Ok(node) => Ok(run_to_the_end(node)),
        Err(errors) => {
            print_errors(&errors);
            Ok(ExitCode::from(1))
        }
    }
}

fn parse_url(url: &str) -> anyhow::Result<StoreUrl> {
    url.parse::<StoreUrl>()
        .map_err(|e| anyhow::anyhow!("--store {url}: {e}"))
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start a runtime")
}

/// Runs `f` on a runtime of its own, then lets the runtime go without waiting for a name
/// lookup still hanging on its blocking threads (each is given up on after a timeout).
fn block_on<F: std::future::Future>(f: F) -> anyhow::Result<F::Output> {
    let rt = runtime()?;
    let output = rt.block_on(f);
    rt.shutdown_background();
    Ok(output)
}

/// `--store`: start from the stored document, or from the cache when the store is
/// unreachable (or holds a document this node cannot run); with neither, exit 1 naming both.
fn run_from_store(cli: Cli, url_text: &str) -> anyhow::Result<ExitCode> {
    let url = parse_url(url_text)?;
    let options = NodeOptions {
        handle_signals: true,
        overrides: overrides(&cli),
        source: ConfigSource::Inline,
    };
    let started = block_on(Node::from_store(
        &url,
        cli.name.as_deref(),
        cli.cache.as_deref(),
        options,
    ))?;
    match started {
        Ok(node) => Ok(run_to_the_end(node)),
        Err(StartError::Config(errors)) => {
            print_errors(&errors);
            Ok(ExitCode::from(1))
        }
        Err(StartError::Other(why)) => anyhow::bail!("{why}"),
    }
}

/// Runs the node until it stops: exit 0 after a requested stop, 1 when it stopped on its
/// own (its proxy listener was gone).
fn run_to_the_end(node: Node) -> ExitCode {
    let state = node.state();
    node.run();
    match state.failure() {
        Some(why) => {
            eprintln!("portico: {why}");
            ExitCode::from(1)
        }
        None => ExitCode::SUCCESS,
    }
}

fn config_command(cmd: &ConfigCommand, top_store: Option<&str>) -> anyhow::Result<ExitCode> {
    let store_arg = match cmd {
        ConfigCommand::Push { store, .. }
        | ConfigCommand::Get { store }
        | ConfigCommand::Status { store, .. } => store.as_deref().or(top_store),
    };
    let Some(url_text) = store_arg else {
        anyhow::bail!("give --store etcd://HOST:PORT[,HOST:PORT...]/PREFIX");
    };
    let url = parse_url(url_text)?;
    block_on(async {
        let store = Store::connect(&url, STORE_TIMEOUT)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        match cmd {
            ConfigCommand::Push {
                file, if_version, ..
            } => push(&store, &url, file, if_version.as_deref()).await,
            ConfigCommand::Get { .. } => match store.get_config().await? {
                Some(doc) => {
                    let end = if doc.text.ends_with('\n') { "" } else { "\n" };
                    say!("{}{end}", doc.text)?;
                    Ok(ExitCode::SUCCESS)
                }
                None => {
                    eprintln!("no config stored at {} in {url}", url.config_key());
                    Ok(ExitCode::from(1))
                }
            },
            ConfigCommand::Status { wait, .. } => status(&store, *wait).await,
        }
    })?
}

async fn push(
    store: &Store,
    url: &StoreUrl,
    file: &PathBuf,
    if_version: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    match push_document(store, &text, if_version).await {
        Ok(version) => {
            sayln!("pushed version {version} to {url} ({})", url.config_key())?;
            Ok(ExitCode::SUCCESS)
        }
        Err(portico::store_link::PushError::Invalid(errors)) => {
            eprintln!("{}: invalid, nothing written:", file.display());
            print_errors(&errors);
            Ok(ExitCode::from(1))
        }
        Err(e @ portico::store_link::PushError::CasLost { .. }) => {
            eprintln!(
                "{e} (not {}); nothing written",
                if_version.unwrap_or("the expected one")
            );
            Ok(ExitCode::from(1))
        }
        Err(e) => {
            eprintln!("error: {e}");
            Ok(ExitCode::from(1))
        }
    }
}

/// One line per node; 0 when every node runs the stored version (waiting up to `wait`
/// seconds for it), 3 otherwise.
async fn status(store: &Store, wait: Option<f64>) -> anyhow::Result<ExitCode> {
    // `--wait inf` (or any huge value) waits for as long as a deadline can be, never panics.
    let wait = Duration::try_from_secs_f64(wait.unwrap_or(0.0).max(0.0)).unwrap_or(Duration::MAX);
    let far = Duration::from_secs(100 * 365 * 24 * 3600);
    let deadline = Instant::now()
        .checked_add(wait)
        .unwrap_or_else(|| Instant::now() + far);
    loop {
        let stored = store.get_config().await?.map(|d| fingerprint(&d.text));
        let nodes = store.nodes().await?;
        let converged = !nodes.is_empty()
            && stored
                .as_deref()
                .is_some_and(|v| nodes.iter().all(|n| n.version == v));
        if converged || Instant::now() >= deadline {
            sayln!("stored version: {}", stored.as_deref().unwrap_or("(none)"))?;
            sayln!(
                "{:<24} {:<12} {:<18} {:<8} current",
                "node",
                "region",
                "version",
                "healthy"
            )?;
            for n in &nodes {
                let current = stored.as_deref() == Some(n.version.as_str());
                sayln!(
                    "{:<24} {:<12} {:<18} {:<8} {}",
                    n.name,
                    n.region,
                    n.version,
                    if n.healthy { "yes" } else { "no" },
                    if current { "yes" } else { "NO" }
                )?;
            }
            if nodes.is_empty() {
                sayln!("(no node is registered)")?;
            }
            return Ok(if converged {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(3)
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
