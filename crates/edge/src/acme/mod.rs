//! Managed certificates (SPEC part 3, "Managed certificates (ACME)"): certificates marked
//! `"acme": true` are ordered from the `acme` CA, their HTTP-01 challenges answered on the
//! plain listener, and renewed; each issued certificate joins the TLS listener's certificates
//! at once (hot-swapped like file certificates on a reload) and is kept under
//! `node.state_dir`, from where the next start serves it before any order.
//!
//! - [`shared`]: what the proxy, the admin listener and reloads share ([`Acme`]): the
//!   challenge answers, each managed certificate's state and loaded chain;
//! - this module: the merge of file and managed certificates into the listener's
//!   [`CertStore`], and the certificates' `/status`;
//! - [`service`]: the background loop that decides (with `portico_core::acme`) and starts
//!   orders;
//! - [`order`]: one order with `instant-acme`, from account to chain;
//! - [`files`]: the state directory.
//!
//! Nodes following a store share everything through it (`portico_store::AcmeDoc`): one node
//! at a time orders a certificate (its order lock), its challenge answers are written there
//! so that any node answers the CA, and the issued chain and key are stored for every node
//! to serve; the account too. A node with a config file keeps them under `node.state_dir`.

pub mod files;
pub mod order;
pub mod service;
pub mod shared;

use crate::state::NodeState;
use crate::tls::{CertStore, LoadedCert};
use openssl::asn1::Asn1TimeRef;
use openssl::x509::X509;
use portico_core::acme::{Held, Managed, UnixMillis};
use portico_core::config::{CertSource, Config, HostPattern};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use service::AcmeService;
pub use shared::{Acme, CHALLENGE_PREFIX, Entry};

/// Installs the file certificates a (re)load read, beside the managed ones.
pub fn install_file_certs(node: &NodeState, certs: CertStore) {
    node.acme.files.store(Arc::new(certs));
    publish(node);
}

/// Rebuilds the listener's certificates from the running config: file certificates as read,
/// managed ones as issued (a managed certificate not issued yet is left out, so its hosts get
/// the first certificate, as the SPEC says), in document order. Sets the expiry metric.
pub fn publish(node: &NodeState) {
    let snapshot = node.snapshot();
    let files = node.acme.files.load();
    let entries = node.acme.entries();
    let certs = merge(&snapshot.config, &files, &entries);
    drop(entries);
    if let Some(expiry) = &node.acme.expiry {
        expiry.reset();
        for c in &certs {
            if let Some(leaf) = c.chain.first() {
                expiry
                    .with_label_values(&[c.name.as_str()])
                    .set(unix_millis_of(leaf.not_after()) as f64 / 1000.0);
            }
        }
    }
    let client_auth = files.client_auth().clone();
    node.certs.store(Arc::new(
        CertStore::new(certs).with_client_auth(client_auth),
    ));
}

fn merge(config: &Config, files: &CertStore, entries: &BTreeMap<String, Entry>) -> Vec<LoadedCert> {
    let mut out = Vec::new();
    for c in &config.certificates {
        let found = match c.source {
            CertSource::Files { .. } => files.certs().iter().find(|f| f.name == c.name).cloned(),
            // Served for the hosts of the entry that its leaf names, and not at all when it
            // names none of them: after the hosts change, the new ones get what a certificate
            // not issued yet gets until the new order ends, not a certificate for other names.
            CertSource::Acme => {
                entries
                    .get(&c.name)
                    .and_then(|e| e.cert.clone())
                    .and_then(|cert| {
                        let names = leaf_names(&cert);
                        let hosts: Vec<HostPattern> = c
                            .hosts
                            .iter()
                            .filter(|h| match h {
                                HostPattern::Exact(host) => {
                                    names.iter().any(|n| n.eq_ignore_ascii_case(host))
                                }
                                _ => false,
                            })
                            .cloned()
                            .collect();
                        (!hosts.is_empty()).then_some(LoadedCert { hosts, ..cert })
                    })
            }
        };
        out.extend(found);
    }
    out
}

/// The DNS names of a certificate's leaf (its subject alternative names).
fn leaf_names(cert: &LoadedCert) -> Vec<String> {
    cert.chain
        .first()
        .and_then(|leaf| leaf.subject_alt_names())
        .map(|names| {
            names
                .iter()
                .filter_map(|n| n.dnsname().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// `/status` `certificates`: each certificate of the running config with its source, hosts,
/// not-after, and for a managed one its state, failures, next attempt and last ACME error.
pub fn status(node: &NodeState) -> Value {
    let snapshot = node.snapshot();
    let served = node.certs.load();
    let entries = node.acme.entries();
    let list: Vec<Value> = snapshot
        .config
        .certificates
        .iter()
        .map(|c| {
            let leaf = served
                .certs()
                .iter()
                .find(|s| s.name == c.name)
                .and_then(|s| s.chain.first());
            let not_after = leaf.map(|l| rfc3339_millis(unix_millis_of(l.not_after())));
            let hosts: Vec<String> = c.hosts.iter().map(ToString::to_string).collect();
            match c.source {
                CertSource::Files { .. } => json!({
                    "name": c.name, "source": "file", "hosts": hosts, "not_after": not_after,
                }),
                CertSource::Acme => {
                    let e = entries.get(&c.name);
                    let m = e.map(|e| &e.machine);
                    let state = match m {
                        Some(m) if m.in_flight() => "ordering",
                        _ if leaf.is_some() => "issued",
                        _ => "pending",
                    };
                    json!({
                        "name": c.name,
                        "source": "acme",
                        "hosts": hosts,
                        "not_after": not_after,
                        "state": state,
                        "failures": m.map_or(0, Managed::failures),
                        "next_attempt": m.and_then(Managed::retry_at).map(rfc3339_millis),
                        "last_error": m.and_then(Managed::last_error),
                    })
                }
            }
        })
        .collect();
    Value::Array(list)
}

/// Parses a PEM chain (leaf first) and its PEM key into a certificate named `name`, checking
/// that the key is the leaf's; also what the state machine needs to know of it (its `ca` left
/// empty for the caller, who knows where it came from).
pub fn load_pem(name: &str, chain: &[u8], key: &[u8]) -> Result<(LoadedCert, Held), String> {
    let chain = X509::stack_from_pem(chain)
        .ok()
        .filter(|c| !c.is_empty())
        .ok_or("no PEM certificate in the chain")?;
    let key = openssl::pkey::PKey::private_key_from_pem(key).map_err(|_| "no PEM private key")?;
    let leaf = &chain[0];
    if !leaf
        .public_key()
        .map(|p| p.public_eq(&key))
        .unwrap_or(false)
    {
        return Err("the key does not match the certificate".into());
    }
    let hosts: Vec<String> = leaf
        .subject_alt_names()
        .map(|names| {
            names
                .iter()
                .filter_map(|n| n.dnsname().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let held = Held {
        hosts: portico_core::acme::machine::normalise(&hosts),
        not_before: unix_millis_of(leaf.not_before()),
        not_after: unix_millis_of(leaf.not_after()),
        ca: String::new(),
    };
    let cert = LoadedCert {
        name: name.to_string(),
        hosts: Vec::new(),
        chain,
        key,
    };
    Ok((cert, held))
}

/// An ASN.1 time in milliseconds since the epoch (0 if it cannot be read).
pub fn unix_millis_of(t: &Asn1TimeRef) -> UnixMillis {
    let Ok(epoch) = openssl::asn1::Asn1Time::from_unix(0) else {
        return 0;
    };
    match epoch.diff(t) {
        Ok(d) => {
            let secs = i64::from(d.days) * 86_400 + i64::from(d.secs);
            u64::try_from(secs).unwrap_or(0).saturating_mul(1000)
        }
        Err(_) => 0,
    }
}

/// Now, in milliseconds since the epoch.
pub fn now_millis() -> UnixMillis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn rfc3339_millis(t: UnixMillis) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(t)).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use portico_core::config::parse;

    /// A self-signed certificate for `names` (its PEM chain and key).
    fn self_signed(names: &[&str]) -> (String, String) {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = rcgen::CertificateParams::new(names)
            .expect("params")
            .self_signed(&key)
            .expect("certificate");
        (cert.pem(), key.serialize_pem())
    }

    #[test]
    fn challenges_are_answered_only_for_published_tokens_under_the_well_known_path() {
        let acme = Acme::new(&crate::metrics::Metrics::new("r", "v"));
        assert_eq!(
            acme.challenge_answer("/.well-known/acme-challenge/tok"),
            None
        );
        acme.publish_challenge("tok", "tok.thumb");
        assert_eq!(
            acme.challenge_answer("/.well-known/acme-challenge/tok")
                .as_deref(),
            Some("tok.thumb")
        );
        assert_eq!(acme.challenge_answer("/tok"), None);
        assert_eq!(
            acme.challenge_answer("/.well-known/acme-challenge/other"),
            None
        );
        acme.withdraw("tok");
        assert_eq!(
            acme.challenge_answer("/.well-known/acme-challenge/tok"),
            None
        );
    }

    #[test]
    fn a_pem_pair_is_read_with_its_names_and_validity_and_a_foreign_key_is_refused() {
        let (chain, key) = self_signed(&["B.test", "a.test"]);
        let (cert, held) = load_pem("www", chain.as_bytes(), key.as_bytes()).expect("loads");
        assert_eq!(cert.name, "www");
        assert_eq!(held.hosts, ["a.test", "b.test"]);
        assert!(held.not_after > held.not_before && held.not_before > 0);
        let (_, other_key) = self_signed(&["a.test"]);
        assert_eq!(
            load_pem("www", chain.as_bytes(), other_key.as_bytes())
                .err()
                .as_deref(),
            Some("the key does not match the certificate")
        );
        assert!(load_pem("www", b"nope", key.as_bytes()).is_err());
    }

    #[test]
    fn managed_certificates_take_their_place_in_document_order_once_issued() {
        let config = parse(
            r#"{"pools": [{"name": "p", "origins": [{"name": "o", "address": "127.0.0.1:9"}]}],
                "routes": [{"name": "r", "pool": "p"}],
                "certificates": [
                    {"name": "www", "hosts": ["www.test"], "acme": true},
                    {"name": "file", "hosts": ["file.test"], "cert_file": "c", "key_file": "k"}],
                "acme": {"directory": "https://ca.test/dir"}}"#,
        )
        .expect("config");
        let (chain, key) = self_signed(&["file.test"]);
        let (file, _) = load_pem("file", chain.as_bytes(), key.as_bytes()).expect("file");
        let files = CertStore::new(vec![LoadedCert {
            hosts: config.certificates[1].hosts.clone(),
            ..file
        }]);
        let mut entries = BTreeMap::new();
        entries.insert(
            "www".to_string(),
            Entry {
                machine: Managed::new(&["www.test".to_string()], 30),
                cert: None,
            },
        );
        let names = |certs: &[LoadedCert]| -> Vec<String> {
            certs.iter().map(|c| c.name.clone()).collect()
        };
        // Not issued: its hosts fall to the first certificate there is, the file one.
        assert_eq!(names(&merge(&config, &files, &entries)), ["file"]);
        let (chain, key) = self_signed(&["www.test"]);
        let (issued, _) = load_pem("www", chain.as_bytes(), key.as_bytes()).expect("issued");
        if let Some(e) = entries.get_mut("www") {
            e.cert = Some(issued);
        }
        let merged = merge(&config, &files, &entries);
        assert_eq!(names(&merged), ["www", "file"]);
        // Served for the hosts the config gives it.
        assert_eq!(merged[0].hosts, config.certificates[0].hosts);
        let store = CertStore::new(merged);
        assert_eq!(
            store.pick(Some("www.test")).map(|c| c.name.as_str()),
            Some("www")
        );
        assert_eq!(
            store.pick(Some("file.test")).map(|c| c.name.as_str()),
            Some("file")
        );
    }

    #[test]
    fn a_managed_certificate_is_served_only_for_the_hosts_its_leaf_names() {
        let config = |hosts: &str| {
            parse(&format!(
                r#"{{"pools": [{{"name": "p", "origins": [{{"name": "o", "address": "127.0.0.1:9"}}]}}],
                    "routes": [{{"name": "r", "pool": "p"}}],
                    "certificates": [
                        {{"name": "file", "hosts": ["file.test"], "cert_file": "c", "key_file": "k"}},
                        {{"name": "www", "hosts": {hosts}, "acme": true}}],
                    "acme": {{"directory": "https://ca.test/dir"}}}}"#
            ))
            .expect("config")
        };
        let (chain, key) = self_signed(&["file.test"]);
        let (file, _) = load_pem("file", chain.as_bytes(), key.as_bytes()).expect("file");
        let files = CertStore::new(vec![LoadedCert {
            hosts: vec![HostPattern::Exact("file.test".into())],
            ..file
        }]);
        // Issued for www.test before the entry's hosts changed.
        let (chain, key) = self_signed(&["WWW.test"]);
        let (issued, _) = load_pem("www", chain.as_bytes(), key.as_bytes()).expect("issued");
        let mut entries = BTreeMap::new();
        entries.insert(
            "www".to_string(),
            Entry {
                machine: Managed::new(&["www.test".to_string()], 30),
                cert: Some(issued),
            },
        );
        let pick = |config: &Config, host: &str| {
            CertStore::new(merge(config, &files, &entries))
                .pick(Some(host))
                .map(|c| c.name.clone())
        };
        // A host added: served for the name it has, the new one waits for its order.
        let added = config(r#"["www.test", "new.test"]"#);
        let merged = merge(&added, &files, &entries);
        assert_eq!(merged[1].hosts, [HostPattern::Exact("www.test".into())]);
        assert_eq!(pick(&added, "www.test").as_deref(), Some("www"));
        assert_eq!(pick(&added, "new.test").as_deref(), Some("file"));
        // Every host replaced: not served at all (the first file certificate is the default).
        let moved = config(r#"["other.test"]"#);
        let merged = merge(&moved, &files, &entries);
        assert_eq!(merged.len(), 1);
        assert_eq!(merged[0].name, "file");
        assert_eq!(pick(&moved, "other.test").as_deref(), Some("file"));
    }
}
