//! The config document as stored, and what a write expects to find (compare-and-swap).

/// The config document as stored, with the etcd revision that last wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredDoc {
    /// The document, as written (JSON text; not parsed here).
    pub text: String,
    /// The etcd `mod_revision` of the key: increases with every write, so it orders versions.
    pub mod_revision: i64,
}

/// What a write expects to find at its key (compare-and-swap): the config document, or the
/// rollout ([`crate::Store::save_rollout`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Write whatever is stored.
    Any,
    /// Write only if nothing is stored (the key's `create_revision` is 0).
    Absent,
    /// Write only if the stored value's `mod_revision` is this one.
    ModRevision(i64),
}
