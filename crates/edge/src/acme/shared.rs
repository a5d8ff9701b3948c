//! What the proxy, the admin listener, reloads and the ACME service share ([`Acme`], held by
//! the node's state): the challenge answers, each managed certificate's state and loaded
//! chain, the store's ACME document as last read, and the certificate metrics.

use crate::metrics::Metrics;
use crate::tls::{CertStore, LoadedCert};
use arc_swap::ArcSwap;
use portico_core::acme::Managed;
use prometheus::{GaugeVec, IntCounterVec, Opts};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError, RwLock};
use tokio::sync::Notify;

/// Where HTTP-01 challenges are fetched from (RFC 8555 §8.3).
pub const CHALLENGE_PREFIX: &str = "/.well-known/acme-challenge/";

/// One managed certificate: its state machine and the chain it serves, if any.
pub struct Entry {
    /// What to do next, and the last error.
    pub machine: Managed,
    /// The certificate served (from the state directory or the last order).
    pub cert: Option<LoadedCert>,
}

/// What the proxy, the admin listener, reloads and the ACME service share.
pub struct Acme {
    pub(super) challenges: RwLock<HashMap<String, String>>,
    /// Challenges of orders run by other nodes (from the store), answered the same.
    pub(super) remote_challenges: RwLock<BTreeMap<String, String>>,
    /// Certificates in the store (nodes following one), by name.
    pub(super) stored: Mutex<BTreeMap<String, portico_store::StoredCert>>,
    pub(super) entries: Mutex<BTreeMap<String, Entry>>,
    pub(super) files: ArcSwap<CertStore>,
    /// Woken when an order ends, so the service plans the next step at once.
    pub(crate) wake: Notify,
    /// `portico_certificate_expiry_timestamp_seconds{name}`.
    pub(super) expiry: Option<GaugeVec>,
    /// `portico_acme_orders_total{name,result}`.
    pub(super) orders: Option<IntCounterVec>,
}

impl Acme {
    /// Empty, with the expiry metric registered in `metrics`.
    pub fn new(metrics: &Metrics) -> Self {
        let expiry = GaugeVec::new(
            Opts::new(
                "portico_certificate_expiry_timestamp_seconds",
                "When each certificate of the TLS listener expires (its not-after), in seconds since the epoch, by certificates[].name.",
            ),
            &["name"],
        )
        .ok()
        .filter(|g| metrics.register(Box::new(g.clone())).is_ok());
        let orders = IntCounterVec::new(
            Opts::new(
                "portico_acme_orders_total",
                "ACME orders ended, by certificates[].name and result: issued, unreachable (the CA did not answer) or refused (the CA answered with a problem).",
            ),
            &["name", "result"],
        )
        .ok()
        .filter(|c| metrics.register(Box::new(c.clone())).is_ok());
        Acme {
            challenges: RwLock::new(HashMap::new()),
            remote_challenges: RwLock::new(BTreeMap::new()),
            stored: Mutex::new(BTreeMap::new()),
            entries: Mutex::new(BTreeMap::new()),
            files: ArcSwap::from_pointee(CertStore::default()),
            wake: Notify::new(),
            expiry,
            orders,
        }
    }

    /// The key authorization to answer a `GET` of `path` with, when `path` is
    /// `/.well-known/acme-challenge/<token>` of an order in progress.
    pub fn challenge_answer(&self, path: &str) -> Option<String> {
        let token = path.strip_prefix(CHALLENGE_PREFIX)?;
        let local = self
            .challenges
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(token)
            .cloned();
        local.or_else(|| {
            self.remote_challenges
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .get(token)
                .cloned()
        })
    }

    /// The challenges and certificates of the store's ACME document, as last read: answered
    /// and served here like this node's own.
    pub fn set_stored(&self, doc: portico_store::AcmeDoc) {
        *self
            .remote_challenges
            .write()
            .unwrap_or_else(PoisonError::into_inner) = doc.challenges;
        *self.stored.lock().unwrap_or_else(PoisonError::into_inner) = doc.certificates;
    }

    /// The certificate the store holds for `name`, as last read.
    pub fn stored_cert(&self, name: &str) -> Option<portico_store::StoredCert> {
        self.stored
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .cloned()
    }

    /// Answers `token` with `key_authorization` until [`Acme::withdraw`].
    pub fn publish_challenge(&self, token: &str, key_authorization: &str) {
        self.challenges
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(token.to_string(), key_authorization.to_string());
    }

    /// Stops answering `token`.
    pub fn withdraw(&self, token: &str) {
        self.challenges
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(token);
    }

    /// Counts an order of certificate `name` that ended with `result`.
    pub fn count_order(&self, name: &str, result: &str) {
        if let Some(orders) = &self.orders {
            orders.with_label_values(&[name, result]).inc();
        }
    }

    /// The managed certificates' state, by name.
    pub fn entries(&self) -> MutexGuard<'_, BTreeMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
