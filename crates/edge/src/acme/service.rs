//! The ACME service: a background loop on the node's own thread that keeps one
//! [`portico_core::acme::Managed`] per managed certificate of the running config, loads what
//! the state directory holds, and starts each order the state machine asks for (one task per
//! order); an order's end wakes the loop. Orders never block serving: until a certificate is
//! issued the listener serves what it had.

use super::order::{self, ORDER_TIMEOUT, OrderError};
use super::{Entry, files, load_pem, now_millis, publish};
use crate::state::NodeState;
use async_trait::async_trait;
use instant_acme::Account;
use pingora_core::server::ShutdownWatch;
use pingora_core::services::background::BackgroundService;
use portico_core::acme::{Failure, Managed, Step};
use portico_core::config::AcmeConfig;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Longest sleep of the loop between two looks at the clock.
const MAX_NAP: Duration = Duration::from_secs(60);

/// Runs the managed certificates of one node.
pub struct AcmeService {
    /// Shared node state.
    pub node: Arc<NodeState>,
    account: Arc<tokio::sync::Mutex<Option<(AcmeConfig, Account)>>>,
}

impl AcmeService {
    /// The service of `node`.
    pub fn new(node: Arc<NodeState>) -> Self {
        AcmeService {
            node,
            account: Arc::new(tokio::sync::Mutex::new(None)),
        }
    }
}

#[async_trait]
impl BackgroundService for AcmeService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut generation = self.node.watch();
        loop {
            let nap = self.plan();
            tokio::select! {
                _ = shutdown.changed() => return,
                changed = generation.changed() => if changed.is_err() { return },
                _ = self.node.acme.wake.notified() => {}
                _ = tokio::time::sleep(nap) => {}
            }
        }
    }
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
                    if let Some((chain, key)) = files::read_cert(&state_dir, &c.name) {
                        match load_pem(&c.name, &chain, &key) {
                            Ok((cert, held)) => {
                                entry.machine.observed(held, now);
                                entry.cert = Some(cert);
                                loaded_any = true;
                                log::info!(
                                    "ACME: certificate {} loaded from {}",
                                    c.name,
                                    state_dir.display()
                                );
                            }
                            Err(e) => log::warn!(
                                "ACME: certificate {} in {} is unusable ({e}); ordering a new one",
                                c.name,
                                state_dir.display()
                            ),
                        }
                    }
                    entry
                });
                entry.machine.configure(&hosts, renew_before);
                let Some(acme) = &config.acme else { continue };
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
            tokio::spawn(run_order(
                node.clone(),
                self.account.clone(),
                name,
                hosts,
                acme,
                state_dir.clone(),
            ));
        }
        nap
    }
}

/// One order, from account to installed certificate; its outcome goes to the state machine.
async fn run_order(
    node: Arc<NodeState>,
    account: Arc<tokio::sync::Mutex<Option<(AcmeConfig, Account)>>>,
    name: String,
    hosts: Vec<String>,
    acme: AcmeConfig,
    state_dir: PathBuf,
) {
    let started = std::time::Instant::now();
    let work = async {
        files::ensure_state_dir(&state_dir).map_err(|message| OrderError {
            kind: Failure::Refused,
            message: format!("node.state_dir: {message}"),
        })?;
        let account = {
            let mut cached = account.lock().await;
            match cached.as_ref() {
                Some((config, account)) if *config == acme => account.clone(),
                _ => {
                    let fresh = order::account(&acme, &state_dir).await?;
                    *cached = Some((acme.clone(), fresh.clone()));
                    fresh
                }
            }
        };
        let issued = order::order(&node.acme, &account, &hosts).await?;
        let (cert, held) = load_pem(
            &name,
            issued.chain_pem.as_bytes(),
            issued.key_pem.as_bytes(),
        )
        .map_err(|e| OrderError {
            kind: Failure::Refused,
            message: format!("the CA's certificate: {e}"),
        })?;
        if let Err(e) = files::write_cert(
            &state_dir,
            &name,
            issued.chain_pem.as_bytes(),
            issued.key_pem.as_bytes(),
        ) {
            // Served all the same; the next start orders again.
            log::error!("ACME: certificate {name} issued but not kept: {e}");
        }
        Ok::<_, OrderError>((cert, held))
    };
    let outcome = match tokio::time::timeout(ORDER_TIMEOUT, work).await {
        Ok(outcome) => outcome,
        Err(_) => Err(OrderError {
            kind: Failure::Unreachable,
            message: format!("no certificate within {}s", ORDER_TIMEOUT.as_secs()),
        }),
    };
    let now = now_millis();
    let result = {
        let mut entries = node.acme.entries();
        let Some(entry) = entries.get_mut(&name) else {
            return;
        };
        match outcome {
            Ok((cert, held)) => {
                log::info!(
                    "ACME: certificate {name} issued for {} in {} ms",
                    hosts.join(", "),
                    started.elapsed().as_millis()
                );
                entry.machine.issued(held);
                entry.cert = Some(cert);
                "issued"
            }
            Err(e) => {
                entry.machine.failed(e.kind, e.message.clone(), now);
                log::warn!(
                    "ACME: order of certificate {name} failed ({:?}, attempt {}): {}",
                    e.kind,
                    entry.machine.failures(),
                    e.message
                );
                match e.kind {
                    Failure::Unreachable => "unreachable",
                    Failure::Refused => "refused",
                }
            }
        }
    };
    node.acme.count_order(&name, result);
    publish(&node);
    node.acme.wake.notify_one();
}
