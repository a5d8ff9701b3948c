//! `portico`: run an edge node (from a file or a store), check a config with `--check`, or
//! manage the store's config and its rollouts with `portico config …` (the `cli` module), or
//! print the config's JSON Schema or its Markdown reference (`portico schema [--markdown]`).

#[macro_use]
mod cli;

use anyhow::Context;
use clap::{Parser, Subcommand};
use cli::output::print_errors;
use cli::{block_on, parse_url};
use portico::config::prepare::prepare;
use portico::node::{Node, NodeOptions, StartError};
use portico::state::ConfigSource;
use portico_core::config::Overrides;
use std::path::PathBuf;
use std::process::ExitCode;

/// mimalloc instead of glibc's malloc: a request allocates and frees many small buffers, and
/// glibc's allocator took ~14 % of the proxy's CPU in a profile. Through `portico-alloc`,
/// which skips mimalloc's aligned calls where every block is aligned anyway.
#[global_allocator]
static ALLOCATOR: portico_alloc::Mimalloc = portico_alloc::Mimalloc;

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

/// Parsed once per process: the size of its variants does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
enum Command {
    /// The config document in the store that every node follows.
    #[command(subcommand)]
    Config(cli::ConfigCommand),
    /// Print the JSON Schema of the config document (committed as conf/portico.schema.json).
    Schema {
        /// Print the configuration reference generated from the schema instead, as Markdown
        /// (committed as docs/configuration-reference.md).
        #[arg(long)]
        markdown: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(
        "info,pingora_core=warn,pingora_proxy=warn,pingora=warn,h2=warn,tonic=warn,hyper=warn",
    ))
    .format_timestamp_millis()
    .init();
    let result = match cli.command {
        Some(Command::Config(ref cmd)) => cli::run(cmd, cli.store.as_deref()),
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
        if let Err(e) = portico::acme::files::check_config(&prepared.config, false) {
            print_errors(&portico_core::config::ConfigErrors(vec![e]));
            return Ok(ExitCode::from(1));
        }
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
