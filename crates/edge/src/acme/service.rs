//! The ACME service: a background loop on the node's own thread that keeps one
//! [`portico_core::acme::Managed`] per managed certificate of the running config, loads what
//! is kept (the state directory, or the store's ACME document for a node following a store),
//! and starts each order the state machine asks for (one task per order); an order's end, or
//! a certificate stored by another node, wakes the loop. Orders never block serving: until a
//! certificate is issued the listener serves what it had.

use super::order::{self, Keeper, ORDER_TIMEOUT, OrderError};
use super::{Entry, files, load_pem, now_millis, publish};
use crate::state::{ConfigSource, NodeState};
use crate::tls::LoadedCert;
use async_trait::async_trait;
use instant_acme::Account;
use pingora_core::server::ShutdownWatch;
use pingora_core::services::background::BackgroundService;
use portico_core::acme::{Failure, Held, Managed, Step};
use portico_core::config::AcmeConfig;
use portico_store::{AcmeDoc, ORDER_LOCK_TTL_SECS, Store, StoreEvent, StoreUrl, StoredCert};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Longest sleep of the loop between two looks at the clock.
const MAX_NAP: Duration = Duration::from_secs(60);

/// The time allowed to connect to the store and to each of an order's store requests.
const STORE_TIMEOUT: Duration = Duration::from_secs(2);

/// The account of the last order, reused while the `acme` block is the same.
type CachedAccount = Arc<tokio::sync::Mutex<Option<(AcmeConfig, Account)>>>;

/// Runs the managed certificates of one node.
pub struct AcmeService {
    /// Shared node state.
    pub node: Arc<NodeState>,
    account: CachedAccount,
    /// The store and this node's name in it, for a node following a store.
    store: Option<(StoreUrl, String)>,
}

impl AcmeService {
    /// The service of `node` (sharing through the store when the node follows one).
    pub fn new(node: Arc<NodeState>) -> Self {
        let store = match &node.source {
            ConfigSource::Store { url, name, .. } => {
                url.parse::<StoreUrl>().ok().map(|u| (u, name.clone()))
            }
            _ => None,
        };
        AcmeService {
            node,
            account: Arc::new(tokio::sync::Mutex::new(None)),
            store,
        }
    }
}

#[async_trait]
impl BackgroundService for AcmeService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let follower = self
            .store
            .as_ref()
            .map(|(url, _)| tokio::spawn(follow_store(self.node.clone(), url.clone())));
        let mut generation = self.node.watch();
        loop {
            let nap = self.plan();
            tokio::select! {
                _ = shutdown.changed() => break,
                changed = generation.changed() => if changed.is_err() { break },
                _ = self.node.acme.wake.notified() => {}
                _ = tokio::time::sleep(nap) => {}
            }
        }
        if let Some(f) = follower {
            f.abort();
        }
    }
}

/// Follows the store's ACME document: its challenges are answered here, and each certificate
/// another node stored is served here as soon as it is read.
async fn follow_store(node: Arc<NodeState>, url: StoreUrl) {
    let (mut events, task) = portico_store::follow_acme(url);
    while let Some(event) = events.recv().await {
        match event {
            StoreEvent::Document(doc) => node.acme.set_stored(AcmeDoc::parse(&doc.text)),
            StoreEvent::Deleted => node.acme.set_stored(AcmeDoc::default()),
            StoreEvent::Connected | StoreEvent::Disconnected { .. } => continue,
        }
        let now = now_millis();
        let mut changed = false;
        for (name, entry) in node.acme.entries().iter_mut() {
            let Some(stored) = node.acme.stored_cert(name) else {
                continue;
            };
            if let Ok((cert, held)) = from_stored(name, &stored) {
                if entry.machine.observed(held, now) {
                    entry.cert = Some(cert);
                    changed = true;
                }
            }
        }
        if changed {
            publish(&node);
            node.acme.wake.notify_one();
        }
    }
    task.abort();
}

fn from_stored(name: &str, stored: &StoredCert) -> Result<(LoadedCert, Held), String> {
    let (cert, held) = load_pem(name, stored.chain_pem.as_bytes(), stored.key_pem.as_bytes())?;
    Ok((
        cert,
        Held {
            ca: stored.directory.clone(),
            ..held
        },
    ))
}

impl AcmeService {
    /// Brings the entries in line with the running config, starts the orders that are due,
    /// and says how long to wait before looking again.
    fn plan(&self) -> Duration {
        let node = &self.node;
        let snapshot = node.snapshot();
        let config = &snapshot.config;
        let state_dir = PathBuf::from(&config.node.state_dir);
        let renew_before = config.acme.as_ref().map_or(30, |a| a.renew_before_days);
        let now = now_millis();
        let mut loaded_any = false;
        let mut starts = Vec::new();
        let mut nap = MAX_NAP;
        {
            let mut entries = node.acme.entries();
            entries.retain(|name, _| {
                config
                    .certificates
                    .iter()
                    .any(|c| c.is_acme() && &c.name == name)
            });
            for c in config.certificates.iter().filter(|c| c.is_acme()) {
                let hosts = c.exact_hosts();
                let entry = entries.entry(c.name.clone()).or_insert_with(|| {
                    let mut entry = Entry {
                        machine: Managed::new(&hosts, renew_before),
                        cert: None,
                    };
                    let (kept, place) = match &self.store {
                        Some(_) => (
                            node.acme.stored_cert(&c.name).map(|s| files::KeptCert {
                                chain: s.chain_pem.into_bytes(),
                                key: s.key_pem.into_bytes(),
                                directory: s.directory,
                            }),
                            "the store".to_string(),
                        ),
                        None => (
                            files::read_cert(&state_dir, &c.name),
                            state_dir.display().to_string(),
                        ),
                    };
                    if let Some(kept) = kept {
                        match load_pem(&c.name, &kept.chain, &kept.key) {
                            Ok((cert, held)) => {
                                let held = Held {
                                    ca: kept.directory,
                                    ..held
                                };
                                entry.machine.observed(held, now);
                                entry.cert = Some(cert);
                                loaded_any = true;
                                log::info!("ACME: certificate {} loaded from {place}", c.name);
                            }
                            Err(e) => log::warn!(
                                "ACME: certificate {} in {place} is unusable ({e}); ordering a new one",
                                c.name
                            ),
                        }
                    }
                    entry
                });
                entry.machine.configure(&hosts, renew_before);
                let Some(acme) = &config.acme else { continue };
                entry.machine.configure_ca(&acme.directory);
                match entry.machine.next(now) {
                    Step::Order(why) => {
                        entry.machine.started();
                        log::info!(
                            "ACME: ordering {} ({why:?}) for {}",
                            c.name,
                            hosts.join(", ")
                        );
                        starts.push((c.name.clone(), hosts, acme.clone()));
                    }
                    Step::WaitUntil(at) => {
                        nap = nap.min(Duration::from_millis(at.saturating_sub(now)));
                    }
                    Step::InFlight => {}
                }
            }
        }
        if loaded_any {
            publish(node);
        }
        for (name, hosts, acme) in starts {
            let order = Order {
                node: node.clone(),
                account: self.account.clone(),
                store: self.store.clone(),
                name,
                hosts,
                acme,
                state_dir: state_dir.clone(),
            };
            tokio::spawn(order.run());
        }
        nap
    }
}

/// One order the state machine asked for.
struct Order {
    node: Arc<NodeState>,
    account: CachedAccount,
    store: Option<(StoreUrl, String)>,
    name: String,
    hosts: Vec<String>,
    acme: AcmeConfig,
    state_dir: PathBuf,
}

/// How an order ended.
enum Outcome {
    /// Issued by the CA.
    Issued(LoadedCert, Held),
    /// Another node's certificate, found in the store under the lock: nothing to order.
    Found(LoadedCert, Held),
    /// Another node holds the order lock.
    Deferred(String),
    /// The certificate's last orders failed (on whichever node): no node orders it before
    /// their backoff ends.
    BackingOff(portico_store::StoredFailure),
    /// Failed.
    Failed(OrderError),
}

fn store_error(e: portico_store::StoreError) -> OrderError {
    OrderError {
        kind: Failure::Unreachable,
        message: format!("store: {e}"),
    }
}

impl Order {
    /// Runs the order and reports its outcome to the state machine.
    async fn run(self) {
        let started = std::time::Instant::now();
        let outcome = match tokio::time::timeout(ORDER_TIMEOUT, self.work()).await {
            Ok(outcome) => outcome,
            Err(_) => Outcome::Failed(OrderError {
                kind: Failure::Unreachable,
                message: format!("no certificate within {}s", ORDER_TIMEOUT.as_secs()),
            }),
        };
        let (node, name) = (&self.node, &self.name);
        let now = now_millis();
        let result = {
            let mut entries = node.acme.entries();
            let Some(entry) = entries.get_mut(name) else {
                return;
            };
            match outcome {
                Outcome::Issued(cert, held) => {
                    log::info!(
                        "ACME: certificate {name} issued for {} in {} ms",
                        self.hosts.join(", "),
                        started.elapsed().as_millis()
                    );
                    entry.machine.issued(held);
                    entry.cert = Some(cert);
                    Some("issued")
                }
                Outcome::Found(cert, held) => {
                    entry.machine.deferred(now);
                    if entry.machine.observed(held, now) {
                        entry.cert = Some(cert);
                    }
                    None
                }
                Outcome::Deferred(holder) => {
                    log::info!("ACME: {holder} is ordering {name}; waiting for its certificate");
                    let ttl = u64::try_from(ORDER_LOCK_TTL_SECS).unwrap_or(10) * 1000;
                    entry.machine.deferred(now + ttl);
                    None
                }
                Outcome::BackingOff(f) => {
                    log::info!(
                        "ACME: {name} failed {} times in a row; no node orders it for {} s: {}",
                        f.failures,
                        f.retry_at.saturating_sub(now) / 1000,
                        f.error
                    );
                    entry.machine.deferred(f.retry_at);
                    None
                }
                Outcome::Failed(e) => {
                    entry.machine.failed(e.kind, e.message.clone(), now);
                    log::warn!(
                        "ACME: order of certificate {name} failed ({:?}, attempt {}): {}",
                        e.kind,
                        entry.machine.failures(),
                        e.message
                    );
                    Some(match e.kind {
                        Failure::Unreachable => "unreachable",
                        Failure::Refused => "refused",
                    })
                }
            }
        };
        if let Some(result) = result {
            node.acme.count_order(name, result);
        }
        publish(node);
        node.acme.wake.notify_one();
    }

    async fn work(&self) -> Outcome {
        let Some((url, me)) = &self.store else {
            return match self.order(&Keeper::Dir(&self.state_dir), None).await {
                Ok((cert, held)) => Outcome::Issued(cert, held),
                Err(e) => Outcome::Failed(e),
            };
        };
        let store = match Store::connect(url, STORE_TIMEOUT).await {
            Ok(s) => s,
            Err(e) => return Outcome::Failed(store_error(e)),
        };
        let lock = match store.lock_acme_order(&self.name, me).await {
            Ok(Ok(lock)) => lock,
            Ok(Err(holder)) => return Outcome::Deferred(holder),
            Err(e) => return Outcome::Failed(store_error(e)),
        };
        // The last holder may have stored a certificate just before this node took the lock,
        // or failed: then every node waits for the backoff of the failures so far.
        let (found, backoff) = match store.get_acme().await {
            Ok((doc, _)) => (
                doc.certificates
                    .get(&self.name)
                    .and_then(|s| from_stored(&self.name, s).ok())
                    .filter(|(_, held)| self.makes_order_moot(held)),
                doc.backoff(&self.name, now_millis()).cloned(),
            ),
            Err(e) => {
                lock.release().await;
                return Outcome::Failed(store_error(e));
            }
        };
        let outcome = match (found, backoff) {
            (Some((cert, held)), _) => Outcome::Found(cert, held),
            (None, Some(failure)) => Outcome::BackingOff(failure),
            (None, None) => match self.order(&Keeper::Store(&store), Some(&store)).await {
                Ok((cert, held)) => Outcome::Issued(cert, held),
                // A refusal counts against the CA's limits (failed validations per name):
                // shared, so that every node backs off. An unreachable CA cost it nothing.
                Err(e) if e.kind == Failure::Refused => {
                    let (name, now) = (self.name.as_str(), now_millis());
                    let noted = store
                        .update_acme(|doc| doc.note_failure(name, e.kind, &e.message, now))
                        .await;
                    if let Err(s) = noted {
                        log::warn!("ACME: failure of {name} not shared through the store: {s}");
                    }
                    Outcome::Failed(e)
                }
                Err(e) => Outcome::Failed(e),
            },
        };
        lock.release().await;
        outcome
    }

    /// Whether `held`, found in the store, leaves nothing to order now.
    fn makes_order_moot(&self, held: &Held) -> bool {
        let now = now_millis();
        let entries = self.node.acme.entries();
        entries.get(&self.name).is_some_and(|e| {
            let mut probe = e.machine.clone();
            probe.deferred(now);
            probe.observed(held.clone(), now);
            !matches!(probe.next(now), Step::Order(_))
        })
    }

    /// Account, order, and the certificate kept (state directory or store).
    async fn order(
        &self,
        keeper: &Keeper<'_>,
        store: Option<&Store>,
    ) -> Result<(LoadedCert, Held), OrderError> {
        if let Keeper::Dir(dir) = keeper {
            files::ensure_state_dir(dir).map_err(|message| OrderError {
                kind: Failure::Refused,
                message: format!("node.state_dir: {message}"),
            })?;
        }
        let account = {
            let mut cached = self.account.lock().await;
            match cached.as_ref() {
                Some((config, account)) if *config == self.acme => account.clone(),
                _ => {
                    let fresh = order::account(&self.acme, keeper).await?;
                    *cached = Some((self.acme.clone(), fresh.clone()));
                    fresh
                }
            }
        };
        let issued = order::order(&self.node.acme, &account, &self.hosts, store).await?;
        let (cert, held) = load_pem(
            &self.name,
            issued.chain_pem.as_bytes(),
            issued.key_pem.as_bytes(),
        )
        .map_err(|e| OrderError {
            kind: Failure::Refused,
            message: format!("the CA's certificate: {e}"),
        })?;
        let held = Held {
            ca: self.acme.directory.clone(),
            ..held
        };
        let kept = match keeper {
            Keeper::Dir(dir) => files::write_cert(
                dir,
                &self.name,
                &files::KeptCert {
                    chain: issued.chain_pem.clone().into_bytes(),
                    key: issued.key_pem.clone().into_bytes(),
                    directory: self.acme.directory.clone(),
                },
            ),
            Keeper::Store(store) => {
                let stored = StoredCert {
                    chain_pem: issued.chain_pem.clone(),
                    key_pem: issued.key_pem.clone(),
                    directory: self.acme.directory.clone(),
                };
                store
                    .update_acme(|doc| {
                        doc.certificates.insert(self.name.clone(), stored.clone());
                        doc.failures.remove(&self.name);
                    })
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }
        };
        if let Err(e) = kept {
            // Served here all the same; the next start (or another node) orders again.
            log::error!("ACME: certificate {} issued but not kept: {e}", self.name);
        }
        Ok((cert, held))
    }
}
