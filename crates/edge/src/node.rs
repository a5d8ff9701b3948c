//! Building and running one edge node: the Pingora server with the proxy, the admin listener,
//! the control loop (reloads, the store) and the probes, each service on its own runtime.

use crate::admin::AdminApp;
use crate::config::prepare::{Prepared, check_listeners, prepare};
use crate::control::Control;
use crate::limits::{AcceptFilter, Connections, LimitedApp};
use crate::metrics::Metrics;
use crate::proxy::EdgeProxy;
use crate::shutdown::{DrainingShutdown, Stopper};
use crate::snapshot::Snapshot;
use crate::state::{ConfigSource, NodeState};
use crate::store_link::{Startup, StoreLink, startup, write_cache};
use crate::tls_accept::TlsPort;
use pingora_core::listeners::{L4BufferSettings, ListenerConfig};
use pingora_core::server::configuration::ServerConf;
use pingora_core::server::{RunArgs, Server};
use pingora_core::services::background::GenBackgroundService;
use pingora_core::services::listening::Service;
use portico_core::config::{ConfigErrors, Overrides};
use portico_store::StoreUrl;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;

/// Idle origin connections a node keeps for reuse (Pingora's default is 128). Every
/// request in flight beyond the pool had its origin connection closed after the
/// response and reopened for the next one. The current-thread runtime reads many
/// requests before answering any (first in, first out), so with 5,000 keep-alive
/// clients thousands are in flight: 1,024 left it 40 % slower than work stealing,
/// 8,192 made it as fast (no origin reconnects). The pool never holds more
/// connections than the peak of concurrent requests, and the origin's keep-alive
/// timeout closes the idle ones it no longer wants. Portico's own HTTP/1 client keeps as
/// many per worker thread (its pool is defined there, so it depends on nothing above it).
pub use crate::upstream::pool::MAX_IDLE as UPSTREAM_KEEPALIVE_POOL;

/// How a node is run.
#[derive(Debug, Clone)]
pub struct NodeOptions {
    /// Listen for SIGTERM (drain, then stop), SIGINT (stop now) and SIGHUP (reload the
    /// file). The binary sets this; nodes started inside tests use [`RunningNode::stop`] and
    /// [`RunningNode::reload_file`] instead.
    pub handle_signals: bool,
    /// Command-line values applied over `node.*` of every document, reloads included.
    pub overrides: Overrides,
    /// Where the config comes from (what a reload re-reads).
    pub source: ConfigSource,
}

impl Default for NodeOptions {
    fn default() -> Self {
        Self {
            handle_signals: false,
            overrides: Overrides::default(),
            source: ConfigSource::Inline,
        }
    }
}

/// A node ready to run.
pub struct Node {
    server: Server,
    state: Arc<NodeState>,
    stopper: Stopper,
    options: NodeOptions,
}

/// Why a node did not start.
#[derive(Debug)]
pub enum StartError {
    /// The document has errors (or a listener is busy), each at its JSON path.
    Config(ConfigErrors),
    /// Anything else: nothing to start from, a node name that cannot be.
    Other(String),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Config(errors) => errors.fmt(f),
            StartError::Other(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for StartError {}

impl Node {
    /// Prepares `document` with the options' overrides ([`prepare`]) and builds the node.
    pub async fn from_text(document: &str, options: NodeOptions) -> Result<Node, ConfigErrors> {
        let prepared = prepare(document, &options.overrides, None).await?;
        Self::build(prepared, options, None)
    }

    /// What `portico --store` starts: the node following the store at `url`, from the stored
    /// document, or from `cache` when the store is unreachable, empty or holds a document
    /// this node cannot run (logged); with neither, an error naming both. A document from the
    /// store is written to `cache`. `name` defaults to `<region>-<hostname>`. The options'
    /// source becomes the store.
    pub async fn from_store(
        url: &StoreUrl,
        name: Option<&str>,
        cache: Option<&Path>,
        options: NodeOptions,
    ) -> Result<Node, StartError> {
        let Startup {
            prepared,
            from_cache,
        } = startup(url, cache, &options.overrides)
            .await
            .map_err(StartError::Other)?;
        let name = match name {
            Some(n) => n.to_string(),
            None => {
                let host = hostname::get()
                    .ok()
                    .and_then(|h| h.into_string().ok())
                    .unwrap_or_else(|| "node".to_string());
                format!("{}-{host}", prepared.config.node.region)
            }
        };
        if name.is_empty() || name.contains('/') {
            return Err(StartError::Other(format!(
                "--name {name:?}: a node name may not be empty or contain '/'"
            )));
        }
        if let (Some(path), false) = (cache, from_cache) {
            if let Err(e) = write_cache(path, &prepared.document) {
                log::warn!("cannot write the config cache {}: {e}", path.display());
            }
        }
        let link = StoreLink::new(
            url.clone(),
            name.clone(),
            cache.map(Path::to_path_buf),
            format!("http://{}", prepared.config.node.admin_listen),
        );
        let options = NodeOptions {
            source: ConfigSource::Store {
                url: url.to_string(),
                name,
                cache: cache.map(Path::to_path_buf),
            },
            ..options
        };
        let node = Self::build(prepared, options, Some(link)).map_err(StartError::Config)?;
        node.state
            .started_from_cache
            .store(from_cache, Ordering::Relaxed);
        Ok(node)
    }

    /// Builds the node from a prepared document: checks the listeners, logs the warnings,
    /// wires the services (following `store` when given). Nothing serves until it runs.
    pub fn build(
        prepared: Prepared,
        options: NodeOptions,
        store: Option<StoreLink>,
    ) -> Result<Node, ConfigErrors> {
        let Prepared {
            config,
            document,
            addrs,
            tls,
            ..
        } = prepared;
        for w in &tls.warnings {
            log::warn!("{w}");
        }
        check_listeners(&config)?;
        if store.is_none() {
            crate::acme::files::check_config(&config, true).map_err(|e| ConfigErrors(vec![e]))?;
        }

        let conf = ServerConf {
            threads: config.node.threads,
            // Draining, and waiting for the requests in flight (up to 5 s), happen before
            // Pingora is told to stop (see shutdown.rs). Pingora's own grace period is an
            // unconditional sleep, and its runtime shutdown cuts whatever still runs.
            grace_period_seconds: Some(0),
            graceful_shutdown_timeout_seconds: Some(5),
            max_retries: 16,
            // One thread has nobody to steal from: run it as Pingora's current-thread
            // runtime, which skips the multi-thread scheduler's bookkeeping on every wake-up
            // (alternating runs: +18 % req/s with 64 keep-alive clients). Only for a node
            // that owns its process (the binary): Pingora keeps the current-thread runtimes'
            // handles in a `thread_local` whose slots are recycled, so a node started in a
            // process where another one stopped (tests) could inherit dead handles.
            work_stealing: config.node.threads > 1 || !options.handle_signals,
            upstream_keepalive_pool_size: UPSTREAM_KEEPALIVE_POOL,
            ..ServerConf::default()
        };
        let mut server = Server::new_with_opt_and_conf(None, conf);
        server.bootstrap();

        let metrics = Arc::new(Metrics::new(&config.node.region, &config.version));
        metrics.stamp_success();
        let listen = config.node.listen.clone();
        let admin_listen = config.node.admin_listen.clone();
        let tls_listen = config.node.tls_listen.clone();
        let (snapshot, _) = Snapshot::build(config, document, &addrs, &tls.pools, None, &metrics);
        let state = Arc::new(NodeState::new(
            snapshot,
            metrics,
            options.source.clone(),
            options.overrides.clone(),
        ));
        crate::acme::install_file_certs(&state, tls.certs);
        let store = store.map(Arc::new);

        let server_conf = server.configuration.clone();
        // The proxy inside the client limits (limits.rs): every client connection is counted
        // against `node.limits.max_connections` and its request heads kept to their deadline
        // and size.
        // Portico's own path runs in front of Pingora's proxy (edge_app.rs); both share the
        // hooks' node and connector.
        let edge = EdgeProxy::new(state.clone(), &server_conf);
        let mut http = pingora_proxy::HttpProxy::new(edge.clone(), server_conf);
        http.handle_init_modules();
        let http = crate::edge_app::EdgeApp::new(http, edge);
        let connections = Connections::new(state.clone());
        // The TLS address is listened on as plain TCP: its handshakes are done inside the
        // client limits, under `client_header_timeout_ms` (tls_accept.rs).
        // Session ticket keys, rotated (through the store for a node following one) by the
        // tickets service below (tls_tickets.rs).
        let tickets = Arc::new(crate::tls_tickets::TicketRing::for_source(&options.source));
        let tls_port = match &tls_listen {
            Some(addr) => {
                let tls_error = |e: String| {
                    ConfigErrors(vec![portico_core::config::ConfigError::new(
                        "node.tls_listen",
                        format!("cannot set up TLS: {e}"),
                    )])
                };
                let sock: std::net::SocketAddr = addr
                    .parse()
                    .map_err(|e| tls_error(format!("{addr}: {e}")))?;
                Some(TlsPort::new(sock, state.certs.clone(), tickets.clone()).map_err(tls_error)?)
            }
            None => None,
        };
        let mut proxy = Service::new(
            "portico proxy".to_string(),
            LimitedApp::new(http, connections.clone(), tls_port),
        );
        proxy.set_connection_filter(Arc::new(AcceptFilter(connections)));
        // No L4 read buffer on client connections: Pingora reads request headers into a
        // buffer of their own and bodies in 64 KiB chunks anyway, and its default 64 KiB
        // read buffer per connection (allocated at accept, copied out of on every read) was
        // most of the memory an idle keep-alive connection held. Writes keep Pingora's small
        // coalescing buffer, so a response header and a small body leave in one send.
        proxy.add_listener(
            ListenerConfig::tcp(listen.as_str()).l4_buffer(L4BufferSettings::default().read(0)),
        );
        if let Some(addr) = &tls_listen {
            proxy.add_listener(ListenerConfig::tcp(addr.as_str()));
        }
        let mut admin = Service::new(
            "portico admin".to_string(),
            AdminApp {
                node: state.clone(),
                store: store.clone(),
            },
        );
        admin.add_tcp(&admin_listen);
        admin.threads = Some(1);
        let stopper = Stopper::default();
        let mut control = GenBackgroundService::new(
            "portico control".to_string(),
            Arc::new(Control {
                node: state.clone(),
                handle_signals: options.handle_signals,
                store,
                stopper: stopper.clone(),
            }),
        );
        control.threads = Some(1);
        // Probes on a runtime of their own: however many origins they start probing at once,
        // the control loop (SIGHUP, the store) and the admin listener (PUT /config) apply
        // reloads on theirs without queueing behind them.
        let mut probes = GenBackgroundService::new(
            "portico probes".to_string(),
            Arc::new(crate::probe::ProbeService {
                node: state.clone(),
            }),
        );
        probes.threads = Some(1);
        // Managed certificates on a thread of their own: an order waits on the CA.
        let mut acme = GenBackgroundService::new(
            "portico acme".to_string(),
            Arc::new(crate::acme::AcmeService::new(state.clone())),
        );
        acme.threads = Some(1);
        let mut ticket_keys = GenBackgroundService::new(
            "portico tls tickets".to_string(),
            Arc::new(crate::tls_tickets::TicketService::new(&state, tickets)),
        );
        ticket_keys.threads = Some(1);
        server.add_service(proxy);
        server.add_service(admin);
        server.add_service(control);
        server.add_service(probes);
        server.add_service(acme);
        if tls_listen.is_some() {
            server.add_service(ticket_keys);
        }
        Ok(Node {
            server,
            state,
            stopper,
            options,
        })
    }

    /// The node's shared state.
    pub fn state(&self) -> Arc<NodeState> {
        self.state.clone()
    }

    /// A handle to stop the node from this process.
    pub fn stopper(&self) -> Stopper {
        self.stopper.clone()
    }

    /// Runs the node on this thread until it is stopped.
    pub fn run(self) {
        let snapshot = self.state.snapshot();
        let region = snapshot.region().to_string();
        let tls = snapshot
            .config
            .node
            .tls_listen
            .as_ref()
            .map(|t| format!(", TLS (h2, http/1.1) on {t}"))
            .unwrap_or_default();
        log::info!(
            "portico {} region {region}: proxy on {}{tls}, admin on {}, config {} from {}",
            env!("CARGO_PKG_VERSION"),
            snapshot.config.node.listen,
            snapshot.config.node.admin_listen,
            snapshot.config.version,
            self.state.source.describe()
        );
        drop(snapshot);
        self.server.run(RunArgs {
            shutdown_signal: Box::new(DrainingShutdown {
                node: self.state,
                stopper: self.stopper,
                handle_signals: self.options.handle_signals,
            }),
        });
        log::info!("portico region {region} stopped");
    }

    /// Runs the node on a thread of its own.
    pub fn spawn(self) -> RunningNode {
        let state = self.state();
        let stopper = self.stopper();
        let thread = std::thread::Builder::new()
            .name(format!("portico-{}", state.snapshot().region()))
            .spawn(move || self.run())
            .expect("spawn the node thread");
        let snapshot = state.snapshot();
        let parse = |s: &str| s.parse().unwrap_or(SocketAddr::from(([127, 0, 0, 1], 0)));
        let (listen, admin) = (
            parse(&snapshot.config.node.listen),
            parse(&snapshot.config.node.admin_listen),
        );
        drop(snapshot);
        RunningNode {
            state,
            stopper,
            listen,
            admin,
            thread: Some(thread),
        }
    }
}

/// A node running on its own thread.
pub struct RunningNode {
    state: Arc<NodeState>,
    stopper: Stopper,
    listen: SocketAddr,
    admin: SocketAddr,
    thread: Option<JoinHandle<()>>,
}

impl RunningNode {
    /// The node's shared state.
    pub fn state(&self) -> &Arc<NodeState> {
        &self.state
    }

    /// Why the node stopped on its own, if it did (see [`crate::watchdog`]).
    pub fn failure(&self) -> Option<String> {
        self.state.failure()
    }

    /// The proxy listener address.
    pub fn listen(&self) -> SocketAddr {
        self.listen
    }

    /// The admin listener address.
    pub fn admin(&self) -> SocketAddr {
        self.admin
    }

    /// Re-reads the config file and applies it, as SIGHUP does.
    pub async fn reload_file(&self) -> Result<crate::config::reload::Applied, ConfigErrors> {
        crate::config::reload::reload_file(&self.state).await
    }

    /// Applies a config document, as `PUT /config` does (without its token and `If-Match`).
    pub async fn apply(
        &self,
        document: &str,
        source: crate::state::ReloadSource,
    ) -> Result<crate::config::reload::Applied, ConfigErrors> {
        crate::config::reload::apply(&self.state, document, source).await
    }

    /// Asks the node to drain and stop, without waiting.
    pub fn request_stop(&self) {
        self.stopper.stop();
    }

    /// Drains, stops and waits for the node's thread to end.
    pub fn stop(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        self.stopper.stop();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for RunningNode {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}
