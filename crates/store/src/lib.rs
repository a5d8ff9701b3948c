//! `portico-store`: Portico's config store on etcd (v3 API), and a local etcd cluster launcher.
//!
//! - [`StoreUrl`]: `etcd://HOST:PORT[,HOST:PORT...]/PREFIX`; keys are `/{prefix}/config` (the
//!   config document) and `/{prefix}/nodes/{name}` (node registrations).
//! - [`Store`]: read and write the document (compare-and-swap by `mod_revision`), list nodes.
//! - [`follow`]: a task that emits every new revision of the document, across outages.
//! - [`register`]: a task that keeps a node's [`NodeRecord`] in the store under a lease.
//! - [`LocalEtcd`]: starts a real etcd cluster of child processes (tests, simulation, benches).

#![warn(missing_docs)]

mod backoff;
mod client;
mod cluster;
mod doc;
mod error;
mod follow;
mod node;
mod register;
mod url;

pub use backoff::{BACKOFF_MAX, BACKOFF_MIN};
pub use client::{Expect, Store, StoredDoc};
pub use cluster::{LOG_FILE, LocalEtcd, MemberSpec, START_DEADLINE, etcd_binary};
pub use error::{StoreError, UrlError};
pub use follow::{FOLLOW_TIMEOUT, PROGRESS_INTERVAL, StoreEvent, WATCH_SILENCE_LIMIT, follow};
pub use node::{NodeRecord, now_rfc3339};
pub use register::{REVOKE_TIMEOUT, register};
pub use url::StoreUrl;
