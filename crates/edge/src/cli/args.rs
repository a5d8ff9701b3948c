//! The `portico config …` subcommands and their flags, as the SPEC names them.

use clap::{Args, Subcommand};
use std::path::PathBuf;

/// `--store URL`, which every `config` subcommand takes (or the top-level `--store`).
#[derive(Args, Debug, Clone)]
pub struct StoreArg {
    /// The store: etcd://HOST:PORT[,HOST:PORT...]/PREFIX.
    #[arg(long, value_name = "URL")]
    pub store: Option<String>,
}

/// `--author`, recorded with a push, a promotion or an abort.
#[derive(Args, Debug, Clone)]
pub struct AuthorArg {
    /// Who does it (default $USER@hostname).
    #[arg(long, value_name = "NAME")]
    pub author: Option<String>,
}

/// `portico config …`.
#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Validate FILE, store it as a new version and start its health-gated rollout; prints the
    /// version and the plan.
    Push(PushArgs),
    /// The rollout in progress (or the last one): state, waves, nodes, verdicts. Exit 0
    /// promoted or none, 3 in progress or paused, 4 rolled back or aborted.
    Rollout {
        /// Wait up to this many seconds for the rollout to end.
        #[arg(long, value_name = "SECONDS")]
        wait: Option<f64>,
        #[command(flatten)]
        store: StoreArg,
    },
    /// Pass the rollout's current wave now (the next starts, or the target is promoted).
    Promote {
        #[command(flatten)]
        author: AuthorArg,
        #[command(flatten)]
        store: StoreArg,
    },
    /// Roll the rollout back now: every node runs the stable version again.
    Abort {
        #[command(flatten)]
        author: AuthorArg,
        #[command(flatten)]
        store: StoreArg,
    },
    /// Make an earlier promoted version stable on every node at once (default: the one
    /// promoted before the stable one).
    Rollback {
        /// The version (see `config history`).
        version: Option<String>,
        #[command(flatten)]
        store: StoreArg,
    },
    /// The pushed versions, newest first: version, time, author, outcome, message.
    History {
        /// At most this many (0: all the store keeps).
        #[arg(long, value_name = "N", default_value_t = 20)]
        limit: usize,
        #[command(flatten)]
        store: StoreArg,
    },
    /// The changes between two versions, one line per JSON path (default: stable → the
    /// rollout's target while one is in progress, else the previous version → stable; with
    /// A alone: A → stable).
    Diff {
        /// The old version.
        a: Option<String>,
        /// The new version.
        b: Option<String>,
        #[command(flatten)]
        store: StoreArg,
    },
    /// Print the stable document, or a version's.
    Get {
        /// This version's document instead of the stable one.
        #[arg(long, value_name = "V")]
        version: Option<String>,
        #[command(flatten)]
        store: StoreArg,
    },
    /// The rollout line, then one line per registered node; exit 0 when every node runs the
    /// stable version, else 3.
    Status {
        /// Wait up to this many seconds for every node to run the stable version.
        #[arg(long, value_name = "SECONDS")]
        wait: Option<f64>,
        #[command(flatten)]
        store: StoreArg,
    },
}

/// `portico config push`.
#[derive(Args, Debug)]
pub struct PushArgs {
    /// The config document.
    pub file: PathBuf,
    /// Start only if the stable version is this one (compare-and-swap).
    #[arg(long, value_name = "V")]
    pub if_version: Option<String>,
    /// Why: kept with the version (`config history`).
    #[arg(long, value_name = "M", default_value = "")]
    pub message: String,
    #[command(flatten)]
    pub author: AuthorArg,
    /// The first wave of the default plan (default: the first healthy registered node by name).
    #[arg(long, value_name = "NODE")]
    pub canary: Option<String>,
    /// The plan, one wave per selector: node:NAME, region:NAME, rest (default:
    /// node:<canary>,region:<the canary's region>,rest).
    #[arg(long, value_name = "SEL,SEL,...", value_delimiter = ',')]
    pub waves: Option<Vec<String>>,
    /// How long each wave runs before it may pass (default 60).
    #[arg(long, value_name = "SECONDS")]
    pub bake: Option<f64>,
    /// Requests a wave's nodes must answer on the target before it passes (default 100).
    #[arg(long, value_name = "N")]
    pub min_requests: Option<u64>,
    /// How far the error ratio may rise above the baseline (default 0.01: one point).
    #[arg(long, value_name = "R")]
    pub max_error_increase: Option<f64>,
    /// The error gate fails only with at least this many errors (default 10).
    #[arg(long, value_name = "N")]
    pub min_errors: Option<u64>,
    /// Follow the rollout to its end: exit 0 promoted, 4 rolled back or aborted.
    #[arg(long)]
    pub wait: bool,
    #[command(flatten)]
    pub store: StoreArg,
}

impl ConfigCommand {
    /// The `--store` given to the subcommand.
    pub fn store(&self) -> Option<&str> {
        let arg = match self {
            ConfigCommand::Push(p) => &p.store,
            ConfigCommand::Rollout { store, .. }
            | ConfigCommand::Promote { store, .. }
            | ConfigCommand::Abort { store, .. }
            | ConfigCommand::Rollback { store, .. }
            | ConfigCommand::History { store, .. }
            | ConfigCommand::Diff { store, .. }
            | ConfigCommand::Get { store, .. }
            | ConfigCommand::Status { store, .. } => store,
        };
        arg.store.as_deref()
    }
}

impl AuthorArg {
    /// `--author`, else `$USER@hostname`.
    pub fn or_default(&self) -> String {
        self.author.clone().unwrap_or_else(default_author)
    }
}

/// `$USER@hostname` (`unknown` for a part that cannot be found).
pub fn default_author() -> String {
    let user = std::env::var("USER")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "unknown".to_string());
    let host = hostname::get()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "unknown".to_string());
    format!("{user}@{host}")
}
