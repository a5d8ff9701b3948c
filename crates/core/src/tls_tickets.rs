//! TLS session ticket keys: which key encrypts new tickets, which keys still decrypt, when the
//! next key is due and when an old one is dropped. Time is passed in (milliseconds since the
//! epoch); the edge makes the random bytes, installs the keys and carries out these decisions.
//!
//! The schedule: a new key every [`ROTATE_EVERY_MS`] (1 h). A key starts encrypting
//! [`LEAD_MS`] (1 min) after it is made, so that every node following the store has read it
//! before the first ticket made with it reaches them (the very first key encrypts at once).
//! It encrypts until the next key takes over, and never once it is older than
//! `LEAD_MS + ROTATE_EVERY_MS`; it decrypts for [`TICKET_LIFETIME_MS`] (2 h, two rotations)
//! after that, so every ticket can be resumed for its whole lifetime, and is then dropped.

use serde::{Deserialize, Serialize};
use std::fmt;

/// How often a new key is made: 1 hour.
pub const ROTATE_EVERY_MS: u64 = 3_600_000;

/// How long after it is made a key starts encrypting (the time the store has to carry it to
/// every node): 1 minute.
pub const LEAD_MS: u64 = 60_000;

/// How long a ticket can be resumed after it is issued (the session timeout the listener
/// sets): two rotations.
pub const TICKET_LIFETIME_MS: u64 = 2 * ROTATE_EVERY_MS;

/// A key encrypts only while younger than this.
const ENCRYPT_FOR_MS: u64 = LEAD_MS + ROTATE_EVERY_MS;

/// A key decrypts while younger than this: a ticket made with it at the last moment it
/// encrypted still lives its whole lifetime.
pub const ACCEPT_FOR_MS: u64 = ENCRYPT_FOR_MS + TICKET_LIFETIME_MS;

/// Bytes of random material a key is made of: name, AES key, HMAC key.
pub const KEY_MATERIAL_BYTES: usize = 16 + 32 + 32;

/// One ticket key: its name (sent in the clear in every ticket it made), an AES-256 key that
/// encrypts the ticket and an HMAC-SHA256 key that authenticates it. Secret: its `Debug`
/// shows the name only.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketKey {
    /// The key's name, in hex in JSON.
    #[serde(with = "hex16")]
    pub name: [u8; 16],
    /// The AES-256-CBC key, in hex in JSON.
    #[serde(with = "hex32")]
    pub aes_key: [u8; 32],
    /// The HMAC-SHA256 key, in hex in JSON.
    #[serde(with = "hex32")]
    pub hmac_key: [u8; 32],
    /// When it was made, milliseconds since the epoch (the maker's clock).
    pub created_ms: u64,
}

impl fmt::Debug for TicketKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TicketKey")
            .field("name", &hex(&self.name))
            .field("created_ms", &self.created_ms)
            .finish_non_exhaustive()
    }
}

impl TicketKey {
    /// A key made at `now` of `random` bytes (from a cryptographic generator).
    pub fn new(random: [u8; KEY_MATERIAL_BYTES], now: u64) -> Self {
        let mut name = [0; 16];
        let mut aes_key = [0; 32];
        let mut hmac_key = [0; 32];
        name.copy_from_slice(&random[..16]);
        aes_key.copy_from_slice(&random[16..48]);
        hmac_key.copy_from_slice(&random[48..]);
        TicketKey {
            name,
            aes_key,
            hmac_key,
            created_ms: now,
        }
    }

    fn age(&self, now: u64) -> u64 {
        now.saturating_sub(self.created_ms)
    }
}

/// A key found for a ticket to decrypt.
#[derive(Debug, Clone, Copy)]
pub struct Decrypt<'a> {
    /// The key the ticket was made with.
    pub key: &'a TicketKey,
    /// Whether the client should get a new ticket (its ticket was made with a key that no
    /// longer encrypts).
    pub renew: bool,
}

/// The keys a listener holds, oldest first: the shared document in store mode.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketKeys {
    /// Oldest first.
    keys: Vec<TicketKey>,
}

impl TicketKeys {
    /// The keys in `keys`, ordered oldest first (a name seen twice keeps its first key).
    pub fn new(mut keys: Vec<TicketKey>) -> Self {
        keys.sort_by_key(|k| k.created_ms);
        let mut seen = Vec::new();
        keys.retain(|k| {
            let fresh = !seen.contains(&k.name);
            seen.push(k.name);
            fresh
        });
        TicketKeys { keys }
    }

    /// The keys, oldest first.
    pub fn keys(&self) -> &[TicketKey] {
        &self.keys
    }

    /// The key new tickets are encrypted with at `now`: the newest key past its lead; when
    /// none is (the first key, or the last rotation came late), the oldest key young enough
    /// to encrypt. `None` when no key is young enough: no ticket is issued until the next.
    pub fn encrypting(&self, now: u64) -> Option<&TicketKey> {
        let mut usable = self.keys.iter().filter(|k| k.age(now) < ENCRYPT_FOR_MS);
        let oldest = usable.clone().next();
        usable.rfind(|k| k.age(now) >= LEAD_MS).or(oldest)
    }

    /// The key a ticket named `name` decrypts with at `now`, if it is still accepted.
    pub fn decrypting(&self, name: &[u8], now: u64) -> Option<Decrypt<'_>> {
        let key = self
            .keys
            .iter()
            .find(|k| k.name == name && k.age(now) < ACCEPT_FOR_MS)?;
        let renew = self.encrypting(now).is_some_and(|e| e.name != key.name);
        Some(Decrypt { key, renew })
    }

    /// Whether a new key is due at `now`: there is none, or the newest is a rotation old.
    pub fn rotation_due(&self, now: u64) -> bool {
        self.wait(now) == 0
    }

    /// Milliseconds from `now` until the next key is due (0: due now).
    pub fn wait(&self, now: u64) -> u64 {
        self.keys.last().map_or(0, |k| {
            k.created_ms
                .saturating_add(ROTATE_EVERY_MS)
                .saturating_sub(now)
        })
    }

    /// These keys with `fresh` added and the keys no longer accepted at `now` dropped.
    pub fn rotated(&self, fresh: TicketKey, now: u64) -> TicketKeys {
        let mut keys = self.keys.clone();
        keys.retain(|k| k.age(now) < ACCEPT_FOR_MS);
        keys.push(fresh);
        TicketKeys::new(keys)
    }

    /// Parses the shared JSON document.
    pub fn parse(text: &str) -> Result<TicketKeys, serde_json::Error> {
        serde_json::from_str::<TicketKeys>(text).map(|k| TicketKeys::new(k.keys))
    }

    /// The shared JSON document.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex<const N: usize>(text: &str) -> Option<[u8; N]> {
    let text = text.as_bytes();
    if text.len() != 2 * N {
        return None;
    }
    let mut out = [0; N];
    for (i, pair) in text.chunks(2).enumerate() {
        let pair = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(out)
}

macro_rules! hex_serde {
    ($module:ident, $n:literal) => {
        mod $module {
            use serde::{Deserialize, Deserializer, Serializer, de::Error};

            pub fn serialize<S: Serializer>(bytes: &[u8; $n], s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&super::hex(bytes))
            }

            pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; $n], D::Error> {
                let text = String::deserialize(d)?;
                super::unhex::<$n>(&text)
                    .ok_or_else(|| D::Error::custom(concat!("expected ", $n, " bytes in hex")))
            }
        }
    };
}

hex_serde!(hex16, 16);
hex_serde!(hex32, 32);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const HOUR: u64 = ROTATE_EVERY_MS;
    const T0: u64 = 1_800_000_000_000;

    fn key(tag: u8, at: u64) -> TicketKey {
        TicketKey::new([tag; KEY_MATERIAL_BYTES], at)
    }

    /// What a node does on each look at the clock: a new key when one is due.
    fn tick(keys: &TicketKeys, now: u64, tag: &mut u8) -> TicketKeys {
        if keys.rotation_due(now) {
            *tag = tag.wrapping_add(1);
            keys.rotated(key(*tag, now), now)
        } else {
            keys.clone()
        }
    }

    #[test]
    fn the_first_key_encrypts_at_once_and_the_next_after_its_lead() {
        let empty = TicketKeys::default();
        assert!(empty.rotation_due(T0));
        assert!(empty.encrypting(T0).is_none());
        let one = empty.rotated(key(1, T0), T0);
        assert_eq!(one.encrypting(T0).map(|k| k.name), Some([1; 16]));
        assert!(!one.rotation_due(T0 + HOUR - 1));
        assert_eq!(one.wait(T0 + HOUR - 1), 1);
        assert!(one.rotation_due(T0 + HOUR));

        let two = one.rotated(key(2, T0 + HOUR), T0 + HOUR);
        // Within the lead the old key still encrypts; the new one already decrypts.
        assert_eq!(two.encrypting(T0 + HOUR).map(|k| k.name), Some([1; 16]));
        let fresh = two
            .decrypting(&[2; 16], T0 + HOUR)
            .expect("new key decrypts");
        assert!(fresh.renew);
        // After the lead the new key encrypts, and tickets of the old one are renewed.
        let after = T0 + HOUR + LEAD_MS;
        assert_eq!(two.encrypting(after).map(|k| k.name), Some([2; 16]));
        let old = two.decrypting(&[1; 16], after).expect("old key decrypts");
        assert!(old.renew);
        assert!(!two.decrypting(&[2; 16], after).expect("decrypts").renew);
        assert!(two.decrypting(&[9; 16], after).is_none());
    }

    #[test]
    fn a_ticket_is_not_resumed_once_its_key_is_past_the_accept_window() {
        let mut keys = TicketKeys::default();
        let mut tag = 0;
        keys = tick(&keys, T0, &mut tag);
        let first = keys.encrypting(T0).expect("a key").name;
        // Rotations every hour: the first key is accepted for two rotations after it stops
        // encrypting, then refused (a full handshake) and dropped at the next rotation.
        let mut now = T0;
        while now < T0 + ACCEPT_FOR_MS - 1 {
            now = (now + 60_000).min(T0 + ACCEPT_FOR_MS - 1);
            keys = tick(&keys, now, &mut tag);
        }
        assert!(keys.decrypting(&first, now).is_some());
        assert!(keys.decrypting(&first, now + 1).is_none());
        keys = tick(&keys, T0 + 4 * HOUR, &mut tag);
        assert!(keys.keys().iter().all(|k| k.name != first));
        assert_eq!(keys.keys().len(), 4);
    }

    #[test]
    fn a_stale_key_never_encrypts() {
        // No rotation for a long time (a node with a store it cannot write): its keys stop
        // encrypting rather than issue tickets that cannot live their lifetime.
        let keys = TicketKeys::default().rotated(key(1, T0), T0);
        assert!(keys.encrypting(T0 + ENCRYPT_FOR_MS - 1).is_some());
        assert!(keys.encrypting(T0 + ENCRYPT_FOR_MS).is_none());
        // A late rotation encrypts at once: there is nothing else to encrypt with.
        let late = T0 + 2 * HOUR;
        let keys = keys.rotated(key(2, late), late);
        assert_eq!(keys.encrypting(late).map(|k| k.name), Some([2; 16]));
    }

    #[test]
    fn a_key_from_a_clock_ahead_waits_for_its_lead() {
        let keys = TicketKeys::default()
            .rotated(key(1, T0), T0)
            .rotated(key(2, T0 + HOUR + 5_000), T0 + HOUR);
        assert_eq!(keys.encrypting(T0 + HOUR).map(|k| k.name), Some([1; 16]));
        assert!(keys.decrypting(&[2; 16], T0 + HOUR).is_some());
    }

    #[test]
    fn the_document_round_trips_and_debug_shows_no_secret() {
        let keys = TicketKeys::new(vec![key(2, T0 + HOUR), key(1, T0), key(1, T0 + 5)]);
        assert_eq!(keys.keys().len(), 2);
        assert_eq!(keys.keys()[0].created_ms, T0);
        let text = keys.to_json();
        assert_eq!(TicketKeys::parse(&text).expect("parses"), keys);
        assert!(
            TicketKeys::parse(
                r#"{"keys":[{"name":"00","aes_key":"","hmac_key":"","created_ms":1}]}"#
            )
            .is_err()
        );
        let shown = format!("{keys:?}");
        assert!(shown.contains(&"01".repeat(16)));
        assert!(!shown.contains(&"01".repeat(32)));
    }

    proptest! {
        /// Whatever the rotation schedule (looks at the clock at most a lead apart), a key
        /// always encrypts, and every ticket is resumable for its whole lifetime.
        #[test]
        fn every_ticket_lives_its_lifetime(
            gaps in prop::collection::vec(1..=LEAD_MS, 1..400),
            later in 0..=TICKET_LIFETIME_MS,
        ) {
            let mut keys = TicketKeys::default();
            let mut tag = 0;
            let mut now = T0;
            keys = tick(&keys, now, &mut tag);
            // The keys after each look at the clock, then on at a lead's pace for a lifetime.
            let mut timeline = vec![(now, keys.clone())];
            let mut issued = Vec::new();
            for gap in gaps {
                now += gap;
                keys = tick(&keys, now, &mut tag);
                let k = keys.encrypting(now);
                prop_assert!(k.is_some());
                issued.push((now, k.map(|k| k.name).unwrap_or_default()));
                timeline.push((now, keys.clone()));
            }
            let end = now + TICKET_LIFETIME_MS;
            while now < end {
                now += LEAD_MS;
                keys = tick(&keys, now, &mut tag);
                timeline.push((now, keys.clone()));
            }
            for (at, name) in issued {
                let check = at + later;
                let held = timeline.iter().rev().find(|(t, _)| *t <= check).map(|(_, k)| k);
                prop_assert!(held.is_some_and(|k| k.decrypting(&name, check).is_some()));
            }
        }
    }
}
