//! Writing `config` directly, with no rollout: every node applies it at once. What `config
//! push` did before rollouts; kept for the benchmark's "as before" row and for tests that set
//! up a store's stable document.

use crate::config::prepare::document;
use portico_core::config::{ConfigErrors, Overrides, fingerprint};
use portico_store::{Expect, Store, StoreError};

/// Why a document was not written to the store.
#[derive(Debug)]
pub enum PushError {
    /// It does not validate; nothing was written.
    Invalid(ConfigErrors),
    /// `--if-version` / `If-Match` named another version than the stored one.
    CasLost {
        /// The stored version (None: the store has no document).
        stored: Option<String>,
    },
    /// The store could not be reached or failed.
    Store(String),
}

impl std::fmt::Display for PushError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PushError::Invalid(e) => write!(f, "{e}"),
            PushError::CasLost { stored } => write!(
                f,
                "compare-and-swap lost: the stored version is {}",
                stored
                    .as_deref()
                    .unwrap_or("(none: the store holds no config)")
            ),
            PushError::Store(e) => write!(f, "{e}"),
        }
    }
}

/// Validates `text` (the pipeline's first step, [`document`]: the files and names it refers
/// to are each node's to check) and writes it to the store; with `if_version`, only if the
/// stored document has that version. Returns the new version.
pub async fn push_document(
    store: &Store,
    text: &str,
    if_version: Option<&str>,
) -> Result<String, PushError> {
    document(text, &Overrides::default()).map_err(PushError::Invalid)?;
    let expect = match if_version {
        None => Expect::Any,
        Some(v) => {
            let current = store
                .get_config()
                .await
                .map_err(|e| PushError::Store(e.to_string()))?;
            match current {
                Some(doc) if fingerprint(&doc.text) == v => Expect::ModRevision(doc.mod_revision),
                Some(doc) => {
                    return Err(PushError::CasLost {
                        stored: Some(fingerprint(&doc.text)),
                    });
                }
                None => return Err(PushError::CasLost { stored: None }),
            }
        }
    };
    match store.put_config(text, expect).await {
        Ok(_) => Ok(fingerprint(text)),
        Err(StoreError::CasLost { current }) => Err(PushError::CasLost {
            stored: current.map(|d| fingerprint(&d.text)),
        }),
        Err(e) => Err(PushError::Store(e.to_string())),
    }
}
