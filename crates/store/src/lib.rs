//! `portico-store`: Portico's config store on etcd (v3 API), and a local etcd cluster launcher.
//!
//! - [`StoreUrl`]: `etcd://HOST:PORT[,HOST:PORT...]/PREFIX`; keys are `/{prefix}/config` (the
//!   config document), `/{prefix}/nodes/{name}` (node registrations), `/{prefix}/versions/…`,
//!   `/{prefix}/documents/…`, `/{prefix}/rollout`, `/{prefix}/conductor`.
//! - [`Store`]: read and write the document (compare-and-swap by `mod_revision`), list nodes;
//!   pushed versions and their history; the rollout, started, saved and ended in etcd
//!   transactions (see `url.rs` for every key).
//! - [`follow`]: a task that emits every new revision of the document, across outages;
//!   [`follow_rollout`] the same for the rollout.
//! - [`register`]: a task that keeps a node's [`NodeRecord`] (or [`NodeStatus`], with its
//!   rollout report) in the store under a lease, writing at most once a second;
//!   [`Store::registration_leases`] tells how recently each renewed its lease.
//! - [`Conductorship`]: the election of the node that conducts rollouts (a lease-held key).
//! - [`AcmeDoc`], [`follow_acme`], [`Store::lock_acme_order`]: managed certificates shared by
//!   the nodes, and the lock that lets one of them order at a time.
//! - [`follow_tickets`], [`Store::rotate_tickets`]: the TLS session ticket keys the nodes
//!   share, so a session resumes on any of them.
//! - `LocalEtcd` (feature `local-etcd`): starts a real etcd cluster of child processes, on
//!   ports from `free_loopback_addrs` (tests, the simulation, benches; not the edge).

#![warn(missing_docs)]

mod acme;
mod backoff;
mod client;
#[cfg(feature = "local-etcd")]
mod cluster;
mod conductor;
mod doc;
mod error;
mod follow;
#[cfg(feature = "local-etcd")]
mod free_ports;
mod liveness;
mod node;
mod register;
mod rollouts;
mod tickets;
mod url;
mod versions;

pub use acme::{AcmeDoc, ORDER_LOCK_TTL_SECS, OrderLock, StoredCert, StoredFailure, follow_acme};
pub use backoff::{BACKOFF_MAX, BACKOFF_MIN};
pub use client::{Expect, MAX_MESSAGE_BYTES, Store, StoredDoc};
#[cfg(feature = "local-etcd")]
pub use cluster::{LOG_FILE, LocalEtcd, MemberSpec, START_DEADLINE, etcd_binary};
pub use conductor::{CONDUCTOR_TTL, Conductorship, Role};
pub use error::{ETCD_DEFAULT_MAX_REQUEST_BYTES, LimitSide, StoreError, UrlError};
pub use follow::{
    FOLLOW_TIMEOUT, PROGRESS_INTERVAL, StoreEvent, WATCH_SILENCE_LIMIT, follow, follow_rollout,
};
#[cfg(feature = "local-etcd")]
pub use free_ports::free_loopback_addrs;
pub use liveness::LeaseLife;
pub use node::{NodeRecord, NodeStatus, Registered, now_rfc3339, unix_millis};
pub use register::{MIN_PUT_INTERVAL, REVOKE_TIMEOUT, register};
pub use rollouts::StoredRollout;
pub use tickets::follow_tickets;
pub use url::StoreUrl;
pub use versions::{KEPT_VERSIONS, StoredVersion, VersionRecord};
