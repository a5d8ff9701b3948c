//! The config document as stored, and what a write expects to find (compare-and-swap).

/// The config document as stored, with the etcd revision that last wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredDoc {
    /// The document, as written (JSON text; not parsed here).
    pub text: String,
    /// The etcd `mod_revision` of the key: increases with every write, so it orders versions.
    pub mod_revision: i64,
}

/// What a write expects to find in the store (compare-and-swap).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Write whatever is stored.
    Any,
    /// Write only if no document is stored (its `create_revision` is 0).
    Absent,
    /// Write only if the stored document's `mod_revision` is this one.
    ModRevision(i64),
}
