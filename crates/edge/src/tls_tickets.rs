//! TLS session tickets: the keys the listener encrypts and decrypts tickets with
//! ([`TicketRing`], read inside handshakes), and the service that rotates them on the schedule
//! of [`portico_core::tls_tickets`]. Alone, a node makes its own keys. Following a store, it
//! follows the store's keys and, when one is due, writes the next there (compare-and-swap: one
//! node writes, the others read it), so a ticket from any node resumes on every node; while
//! the store cannot be written it rotates on its own keys, and takes the store's back when it
//! reads them. The keys are secrets: never logged, never shown by `/status`.

use crate::state::{ConfigSource, NodeState};
use arc_swap::ArcSwap;
use async_trait::async_trait;
use pingora_core::server::ShutdownWatch;
use pingora_core::services::background::BackgroundService;
use portico_core::tls_tickets::{KEY_MATERIAL_BYTES, TicketKey, TicketKeys};
use portico_openssl_ext::KeyMaterial;
use portico_store::{Store, StoreEvent, StoreUrl};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Longest sleep between two looks at the clock (it may be set back or forward).
const MAX_NAP: Duration = Duration::from_secs(60);

/// The time allowed to connect to the store and for each request.
const STORE_TIMEOUT: Duration = Duration::from_secs(2);

/// The keys in use, swapped whole on each rotation or store update.
#[derive(Default)]
pub struct TicketRing {
    keys: ArcSwap<TicketKeys>,
}

impl TicketRing {
    /// Keys for `source`: a first key made at once for a node on its own; none for a node
    /// following a store until it reads (or writes) the store's (no tickets meanwhile).
    pub fn for_source(source: &ConfigSource) -> Self {
        let ring = TicketRing::default();
        if !matches!(source, ConfigSource::Store { .. }) {
            ring.rotate_locally(now_millis());
        }
        ring
    }

    /// The keys in use.
    pub fn keys(&self) -> Arc<TicketKeys> {
        self.keys.load_full()
    }

    /// Uses `keys` from now on.
    pub fn install(&self, keys: TicketKeys) {
        self.keys.store(Arc::new(keys));
    }

    /// Makes a new key locally if one is due at `now`.
    fn rotate_locally(&self, now: u64) {
        let keys = self.keys.load();
        if keys.rotation_due(now) {
            if let Some(fresh) = fresh_key(now) {
                self.install(keys.rotated(fresh, now));
                log::debug!("TLS ticket keys rotated (local)");
            }
        }
    }
}

fn material(key: &TicketKey) -> KeyMaterial {
    KeyMaterial {
        name: key.name,
        aes_key: key.aes_key,
        hmac_key: key.hmac_key,
    }
}

impl portico_openssl_ext::TicketKeys for TicketRing {
    fn encrypting(&self) -> Option<KeyMaterial> {
        self.keys.load().encrypting(now_millis()).map(material)
    }

    fn decrypting(&self, name: &[u8; 16]) -> Option<(KeyMaterial, bool)> {
        let keys = self.keys.load();
        let found = keys.decrypting(name, now_millis())?;
        Some((material(found.key), found.renew))
    }
}

/// A key made at `now` from OpenSSL's cryptographic generator.
fn fresh_key(now: u64) -> Option<TicketKey> {
    let mut random = [0u8; KEY_MATERIAL_BYTES];
    match openssl::rand::rand_bytes(&mut random) {
        Ok(()) => Some(TicketKey::new(random, now)),
        Err(e) => {
            log::warn!("TLS ticket keys: no random bytes ({e}); not rotated");
            None
        }
    }
}

/// Milliseconds since the epoch.
pub fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Rotates the listener's ticket keys (through the store for a node following one).
pub struct TicketService {
    ring: Arc<TicketRing>,
    store: Option<StoreUrl>,
    /// The ring holds keys of this node's own (the store could not be written): the store's
    /// are read again at the next look.
    own_keys: AtomicBool,
}

impl TicketService {
    /// The service of `node`'s listener, whose keys are `ring`.
    pub fn new(node: &NodeState, ring: Arc<TicketRing>) -> Self {
        let store = match &node.source {
            ConfigSource::Store { url, .. } => url.parse::<StoreUrl>().ok(),
            _ => None,
        };
        TicketService {
            ring,
            store,
            own_keys: AtomicBool::new(false),
        }
    }

    /// One look at the clock: a key if one is due (in the store when there is one; the
    /// store's keys again after keys of this node's own). Returns how long to wait before the
    /// next look.
    async fn tick(&self, store: &mut Option<Store>) -> Duration {
        let now = now_millis();
        let due = self.ring.keys().rotation_due(now);
        match &self.store {
            Some(url) if due || self.own_keys.load(Ordering::Relaxed) => {
                match self.rotate_in_store(url, store, now).await {
                    Ok(()) => self.own_keys.store(false, Ordering::Relaxed),
                    Err(e) => {
                        *store = None;
                        if due {
                            log::warn!(
                                "TLS ticket keys: cannot rotate in the store ({e}); rotating this node's own"
                            );
                            self.ring.rotate_locally(now);
                            self.own_keys.store(true, Ordering::Relaxed);
                        }
                    }
                }
            }
            Some(_) => {}
            None if due => self.ring.rotate_locally(now),
            None => {}
        }
        let wait = self.ring.keys().wait(now_millis()).max(1_000);
        Duration::from_millis(wait).min(MAX_NAP)
    }

    async fn rotate_in_store(
        &self,
        url: &StoreUrl,
        store: &mut Option<Store>,
        now: u64,
    ) -> Result<(), portico_store::StoreError> {
        if store.is_none() {
            *store = Some(Store::connect(url, STORE_TIMEOUT).await?);
        }
        let Some(s) = store.as_ref() else {
            return Ok(());
        };
        let Some(fresh) = fresh_key(now) else {
            return Ok(());
        };
        let keys = s.rotate_tickets(now, fresh).await;
        self.ring.install(keys?);
        Ok(())
    }
}

/// Follows the store's keys and installs each version read.
async fn follow_store(ring: Arc<TicketRing>, url: StoreUrl) {
    let (mut events, task) = portico_store::follow_tickets(url);
    while let Some(event) = events.recv().await {
        if let StoreEvent::Document(doc) = event {
            match TicketKeys::parse(&doc.text) {
                Ok(keys) => ring.install(keys),
                Err(e) => log::warn!("TLS ticket keys in the store are not valid: {e}"),
            }
        }
    }
    task.abort();
}

#[async_trait]
impl BackgroundService for TicketService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let follower = self
            .store
            .as_ref()
            .map(|url| tokio::spawn(follow_store(self.ring.clone(), url.clone())));
        let mut store = None;
        loop {
            let nap = self.tick(&mut store).await;
            tokio::select! {
                _ = shutdown.changed() => break,
                _ = tokio::time::sleep(nap) => {}
            }
        }
        if let Some(f) = follower {
            f.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(store: Option<&str>) -> TicketService {
        TicketService {
            ring: Arc::new(TicketRing::default()),
            store: store.map(|s| s.parse().expect("store url")),
            own_keys: AtomicBool::new(false),
        }
    }

    #[tokio::test]
    async fn alone_a_node_makes_its_first_key_and_waits_for_the_next() {
        let s = service(None);
        let wait = s.tick(&mut None).await;
        let keys = s.ring.keys();
        assert_eq!(keys.keys().len(), 1);
        assert!(wait > Duration::ZERO && wait <= MAX_NAP);
        s.tick(&mut None).await;
        assert_eq!(s.ring.keys().keys(), keys.keys(), "not due: unchanged");
        let found = portico_openssl_ext::TicketKeys::encrypting(&*s.ring).expect("a key");
        assert_eq!(found.name, keys.keys()[0].name);
    }

    #[tokio::test]
    async fn a_node_that_cannot_write_the_store_rotates_its_own_keys_and_tries_again() {
        // Nothing listens on port 1: the store cannot be reached.
        let s = service(Some("etcd://127.0.0.1:1/portico"));
        let mut store = None;
        let wait = s.tick(&mut store).await;
        assert!(store.is_none());
        assert_eq!(s.ring.keys().keys().len(), 1, "a key of its own");
        assert!(s.own_keys.load(Ordering::Relaxed));
        assert!(wait <= MAX_NAP, "the store is tried again within a minute");
        let keys = s.ring.keys();
        s.tick(&mut store).await;
        assert_eq!(
            s.ring.keys().keys(),
            keys.keys(),
            "not due: its own key kept"
        );
        assert!(s.own_keys.load(Ordering::Relaxed), "still its own");
    }

    #[test]
    fn a_node_following_a_store_issues_no_ticket_before_it_reads_the_stores_keys() {
        let store = ConfigSource::Store {
            url: "etcd://127.0.0.1:1/portico".into(),
            name: "n".into(),
            cache: None,
        };
        let ring = TicketRing::for_source(&store);
        assert!(portico_openssl_ext::TicketKeys::encrypting(&ring).is_none());
        let alone = TicketRing::for_source(&ConfigSource::Inline);
        assert!(portico_openssl_ext::TicketKeys::encrypting(&alone).is_some());
    }
}
