//! TLS session ticket keys shared through the store: one JSON document at
//! `/{prefix}/tls-tickets` ([`TicketKeys`]: the keys oldest first, each with its name, its
//! AES and HMAC keys in hex, and when it was made), followed by every node. The node that
//! finds a key due writes the next with compare-and-swap, so when several find it due at once
//! one writes and the others read its key. The keys are secrets, as the ACME keys are: the
//! store's access control guards them, and nothing here logs them.

use crate::client::Store;
use crate::error::StoreError;
use crate::follow::{StoreEvent, follow_key};
use crate::url::StoreUrl;
use portico_core::tls_tickets::{TicketKey, TicketKeys};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

impl StoreUrl {
    /// The key of the shared ticket keys: `/{prefix}/tls-tickets`.
    pub fn tickets_key(&self) -> String {
        format!("/{}/tls-tickets", self.prefix)
    }
}

/// Follows the ticket keys as [`crate::follow`] follows the config: each
/// [`StoreEvent::Document`] carries their JSON (parse it with [`TicketKeys::parse`]).
///
/// # Panics
///
/// When called outside a tokio runtime.
pub fn follow_tickets(url: StoreUrl) -> (mpsc::Receiver<StoreEvent>, JoinHandle<()>) {
    let key = url.tickets_key();
    follow_key(url, key)
}

impl Store {
    /// The stored ticket keys and their `mod_revision` (`None`: there are none yet; an
    /// unreadable document reads as no keys, and is replaced by the next rotation).
    pub async fn get_tickets(&self) -> Result<(TicketKeys, Option<i64>), StoreError> {
        let (kv, _) = self.get_raw(&self.url().tickets_key()).await?;
        Ok(match kv {
            Some(kv) => {
                let keys =
                    TicketKeys::parse(&String::from_utf8_lossy(kv.value())).unwrap_or_else(|e| {
                        log::warn!("store: the TLS ticket keys are not valid ({e}); replaced");
                        TicketKeys::default()
                    });
                (keys, Some(kv.mod_revision()))
            }
            None => (TicketKeys::default(), None),
        })
    }

    /// Adds the key `fresh` if one is due at `now` (milliseconds since the epoch),
    /// compare-and-swap: when another node wrote in between, its keys are read again and
    /// used if they are no longer due. Returns the keys stored.
    pub async fn rotate_tickets(
        &self,
        now: u64,
        fresh: TicketKey,
    ) -> Result<TicketKeys, StoreError> {
        let key = self.url().tickets_key();
        for _ in 0..10 {
            let (keys, revision) = self.get_tickets().await?;
            if !keys.rotation_due(now) {
                return Ok(keys);
            }
            let next = keys.rotated(fresh.clone(), now);
            let text = next.to_json();
            if self.put_if_unchanged(&key, &text, revision).await? {
                return Ok(next);
            }
        }
        Err(StoreError::CasLost { current: None })
    }
}
