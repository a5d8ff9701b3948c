//! The node's control loop, a Pingora background service: SIGHUP reloads, the listener
//! watchdog and, with `--store`, following the store and registering the node. Probes run
//! in a service of their own ([`crate::probe::ProbeService`]): a reload applied here never
//! waits behind them.

use crate::config::reload::reload_file;
use crate::state::NodeState;
use async_trait::async_trait;
use pingora_core::server::ShutdownWatch;
use pingora_core::services::background::BackgroundService;
use std::sync::Arc;

/// Runs beside the proxy until the server stops.
pub struct Control {
    /// The node.
    pub node: Arc<NodeState>,
    /// Whether to listen for SIGHUP (the binary does; in-process nodes are reloaded by call).
    pub handle_signals: bool,
    /// The store follower, when the config comes from a store.
    pub store: Option<Arc<crate::store_link::StoreLink>>,
    /// Stops the node when its proxy listener is gone (see [`crate::watchdog`]).
    pub stopper: crate::shutdown::Stopper,
}

#[async_trait]
impl BackgroundService for Control {
    async fn start(&self, shutdown: ShutdownWatch) {
        let mut tasks = tokio::task::JoinSet::new();
        if self.handle_signals {
            tasks.spawn(hangups(self.node.clone()));
            tasks.spawn(reopen_on_usr1(self.node.clone()));
            tasks.spawn(ignore_usr2());
        }
        if let Some(link) = &self.store {
            link.spawn(&mut tasks, self.node.clone());
        }
        let listen = self
            .node
            .snapshot()
            .config
            .node
            .listen
            .parse::<std::net::SocketAddr>();
        if let Ok(listen) = listen {
            let (node, stopper) = (self.node.clone(), self.stopper.clone());
            tasks.spawn(async move {
                let why = crate::watchdog::watch(listen.port()).await;
                log::error!("{why}");
                node.fail(why);
                stopper.stop();
            });
        }
        let mut shutdown = shutdown;
        let _ = shutdown.changed().await;
        tasks.abort_all();
    }
}

/// Replaces the default action of SIGHUP, SIGUSR1, SIGUSR2 and SIGQUIT (ending the process) for the rest of the
/// process's life, before the node starts: such a signal arriving while the node is still
/// starting must not kill it. Tokio keeps a signal's handler installed once registered.
pub fn take_over_signals() {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
    else {
        log::warn!("cannot take over SIGHUP and SIGUSR1 early: one during start-up ends the node");
        return;
    };
    rt.block_on(async {
        if let Err(e) = signal(SignalKind::hangup()) {
            log::warn!("cannot listen for SIGHUP ({e}): reload with PUT /config instead");
        }
        if let Err(e) = signal(SignalKind::user_defined1()) {
            log::warn!("cannot listen for SIGUSR1 ({e}): the access log cannot be reopened");
        }
        for kind in [SignalKind::user_defined2(), SignalKind::quit()] {
            if let Err(e) = signal(kind) {
                log::warn!("cannot take over a signal ({e}): it may end the node");
            }
        }
    });
}

/// SIGUSR2 means nothing to Portico: say so instead of dying.
async fn ignore_usr2() {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut usr2) = signal(SignalKind::user_defined2()) else {
        return;
    };
    while usr2.recv().await.is_some() {
        log::warn!(
            "SIGUSR2 ignored: SIGHUP reloads, SIGUSR1 reopens the access log, SIGTERM or SIGQUIT stop"
        );
    }
}

/// SIGUSR1: reopen the access log file (after logrotate moved it).
async fn reopen_on_usr1(node: Arc<NodeState>) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut usr1) = signal(SignalKind::user_defined1()) else {
        return;
    };
    while usr1.recv().await.is_some() {
        log::info!("SIGUSR1: reopening the access log");
        node.access_log.reopen();
    }
}

/// SIGHUP: re-read the config file and apply it.
async fn hangups(node: Arc<NodeState>) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = match signal(SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            log::warn!("cannot listen for SIGHUP ({e}): reload with PUT /config instead");
            return;
        }
    };
    while hup.recv().await.is_some() {
        log::info!("SIGHUP: re-reading {}", node.source.describe());
        // Errors are logged, counted and shown in /status by the reload itself.
        let _ = reload_file(&node).await;
    }
}
