//! TLS material read from disk: the listener's certificates (chosen by SNI in the handshake,
//! swapped whole on every reload) and, through [`crate::origin_tls`], the pools' files for origins
//! over TLS.

use crate::client_cert::{ClientAuth, ClientCert};
use crate::origin_tls::PoolTls;
use crate::pem_files::{read, read_cert_key};
use arc_swap::ArcSwap;
use async_trait::async_trait;
use openssl::ex_data::Index;
use openssl::pkey::{PKey, Private};
use openssl::ssl::{NameType, Ssl, SslRef};
use openssl::x509::X509;
use pingora_core::listeners::TlsAccept;
use pingora_core::protocols::tls::TlsRef;
use pingora_core::tls::ext::{ssl_add_chain_cert, ssl_use_certificate, ssl_use_private_key};
use portico_core::config::{CertSource, Config, ConfigError, ConfigErrors, HostPattern};
use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

/// One certificate chain with its key and the SNI names it serves.
#[derive(Clone)]
pub struct LoadedCert {
    /// `certificates[].name`.
    pub name: String,
    /// Exact names and `*.suffix` patterns.
    pub hosts: Vec<HostPattern>,
    /// Leaf first, then intermediates.
    pub chain: Vec<X509>,
    /// The leaf's private key.
    pub key: PKey<Private>,
}

/// The listener's certificates, in document order (the first is the default).
#[derive(Default)]
pub struct CertStore {
    certs: Vec<LoadedCert>,
    /// `client_auth` by certificate name.
    client_auth: HashMap<String, Arc<ClientAuth>>,
}

impl CertStore {
    /// A store of `certs`, in document order (the first is the default).
    pub fn new(certs: Vec<LoadedCert>) -> Self {
        CertStore {
            certs,
            client_auth: HashMap::new(),
        }
    }

    /// The same store with `client_auth` by certificate name.
    pub fn with_client_auth(mut self, client_auth: HashMap<String, Arc<ClientAuth>>) -> Self {
        self.client_auth = client_auth;
        self
    }

    /// `client_auth` by certificate name.
    pub fn client_auth(&self) -> &HashMap<String, Arc<ClientAuth>> {
        &self.client_auth
    }

    /// The session id context of a handshake with SNI `sni`: which certificate entry it
    /// gets, and the CAs of that entry's `client_auth`. A session (ticket) is resumed only
    /// under the context it was made in, so a client verified under one entry's CAs cannot
    /// carry that verification to another entry's hosts by resuming with another SNI, nor
    /// past a reload that changed the CA file.
    pub fn session_context(&self, sni: Option<&str>) -> [u8; 32] {
        let mut hasher = openssl::sha::Sha256::new();
        if let Some(cert) = self.pick(sni) {
            hasher.update(cert.name.as_bytes());
            if let Some(auth) = self.client_auth.get(&cert.name) {
                hasher.update(b"\0");
                hasher.update(&auth.id());
            }
        }
        hasher.finish()
    }

    /// The certificates, in document order.
    pub fn certs(&self) -> &[LoadedCert] {
        &self.certs
    }

    /// For a request to `host` on a connection with `cert`: whether `cert` vouches for it (it
    /// was verified against the CAs of the `client_auth` of the certificate `host` gets; one
    /// verified under another entry's CAs — SNI naming one host, `Host` another — does not,
    /// and its identity is not sent to the origins of `host`), and whether the request must be
    /// refused (421) because that `client_auth` is required and `cert` does not vouch.
    pub fn client_cert_for(&self, host: Option<&str>, cert: Option<&ClientCert>) -> (bool, bool) {
        let Some(auth) = self.host_client_auth(host) else {
            return (false, false);
        };
        let fits = cert.is_some_and(|c| c.verified_by == auth.id());
        (fits, !fits && auth.required())
    }

    /// The `client_auth` of the certificate a request's `Host` gets.
    fn host_client_auth(&self, host: Option<&str>) -> Option<&ClientAuth> {
        if self.client_auth.is_empty() {
            return None;
        }
        let mut buf = [0u8; 256];
        let host = host.map(|h| portico_core::routing::normalize_host(h, &mut buf));
        self.pick(host)
            .and_then(|c| self.client_auth.get(&c.name))
            .map(|a| &**a)
    }

    /// The certificate for an SNI name: one listing the exact name, else the one with the
    /// longest `*.suffix` the name ends with, else (no name, or no match) the first.
    pub fn pick(&self, sni: Option<&str>) -> Option<&LoadedCert> {
        let name = sni.map(|s| s.trim_end_matches('.').to_ascii_lowercase());
        if let Some(name) = name.as_deref() {
            let exact = self.certs.iter().find(|c| {
                c.hosts
                    .iter()
                    .any(|h| matches!(h, HostPattern::Exact(e) if e == name))
            });
            if exact.is_some() {
                return exact;
            }
            let mut best: Option<(usize, &LoadedCert)> = None;
            for c in &self.certs {
                for h in &c.hosts {
                    if let HostPattern::Suffix(s) = h {
                        if name.len() > s.len()
                            && name.ends_with(s.as_str())
                            && best.is_none_or(|(len, _)| s.len() > len)
                        {
                            best = Some((s.len(), c));
                        }
                    }
                }
            }
            if let Some((_, c)) = best {
                return Some(c);
            }
        }
        self.certs.first()
    }
}

/// Everything TLS a config needs from disk.
pub struct TlsMaterial {
    /// The listener's certificates.
    pub certs: CertStore,
    /// Per pool (index for index with `config.pools`): the CA certificates of `ca_file` and
    /// the certificate presented to origins.
    pub pools: Vec<PoolTls>,
    /// Problems that do not stop the config (an expired certificate, a certificate host no
    /// route serves), each `path: message`.
    pub warnings: Vec<String>,
}

/// Reads every certificate, key and CA file of `config`. Unreadable files, files without
/// PEM, and keys that do not match their certificate are errors at their JSON paths.
pub fn load(config: &Config) -> Result<TlsMaterial, ConfigErrors> {
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    let mut certs = Vec::new();
    let mut client_auth = HashMap::new();
    for (i, c) in config.certificates.iter().enumerate() {
        if let Some(auth) = &c.client_auth {
            let file = &auth.ca_file;
            match read(file).and_then(|pem| {
                ClientAuth::from_pem(&pem, auth.required).map_err(|e| format!("{file} {e}"))
            }) {
                Ok(loaded) => {
                    client_auth.insert(c.name.clone(), Arc::new(loaded));
                }
                Err(e) => errors.push(ConfigError::new(
                    format!("certificates[{i}].client_auth.ca_file"),
                    e,
                )),
            }
        }
        // Managed certificates come from the ACME manager, not from files.
        let CertSource::Files {
            cert_file,
            key_file,
        } = &c.source
        else {
            continue;
        };
        let cert_path = format!("certificates[{i}].cert_file");
        let key_path = format!("certificates[{i}].key_file");
        let Some((chain, key)) = read_cert_key(
            cert_file,
            key_file,
            (&cert_path, &key_path),
            &mut errors,
            &mut warnings,
        ) else {
            continue;
        };
        certs.push(LoadedCert {
            name: c.name.clone(),
            hosts: c.hosts.clone(),
            chain,
            key,
        });
    }
    if let Some(file) = config.acme.as_ref().and_then(|a| a.ca_file.as_ref()) {
        let pem = read(file).and_then(|pem| {
            X509::stack_from_pem(&pem)
                .ok()
                .filter(|s| !s.is_empty())
                .map(|_| ())
                .ok_or_else(|| format!("{file} holds no PEM certificate"))
        });
        if let Err(e) = pem {
            errors.push(ConfigError::new("acme.ca_file", e));
        }
    }
    let pools = config
        .pools
        .iter()
        .enumerate()
        .map(|(i, pool)| crate::origin_tls::load(i, pool, &mut errors, &mut warnings))
        .collect();
    if errors.is_empty() {
        warnings.extend(portico_core::config::warnings(config));
        Ok(TlsMaterial {
            certs: CertStore::new(certs).with_client_auth(client_auth),
            pools,
            warnings,
        })
    } else {
        Err(ConfigErrors(errors))
    }
}

/// The connection's ex-data slot for the SNI name of its ClientHello.
fn hello_sni_index() -> Option<Index<Ssl, Option<String>>> {
    static INDEX: OnceLock<Option<Index<Ssl, Option<String>>>> = OnceLock::new();
    *INDEX.get_or_init(|| Ssl::new_ex_index().ok())
}

/// Keeps `sni`, the SNI name of the ClientHello (what the session id context was made from:
/// [`CertStore::session_context`]), for [`hello_sni`].
pub fn keep_hello_sni(ssl: &mut SslRef, sni: Option<String>) {
    if let Some(index) = hello_sni_index() {
        ssl.set_ex_data(index, sni);
    }
}

/// The SNI name of the handshake's ClientHello. Not `SslRef::servername`: after a resumed
/// TLS 1.2 handshake that gives the name of the session's first handshake, stored only when a
/// servername callback acknowledged it (none here), so none: the default entry, not the one
/// whose session id context the session was resumed under.
fn hello_sni(ssl: &SslRef) -> Option<&str> {
    match hello_sni_index().and_then(|index| ssl.ex_data(index)) {
        Some(kept) => kept.as_deref(),
        None => ssl.servername(NameType::HOST_NAME),
    }
}

/// The handshake's certificate callback: picks from the certificates installed last.
pub struct SniCertificates {
    /// Swapped whole by each reload; a handshake uses the store it loaded.
    pub store: Arc<ArcSwap<CertStore>>,
}

#[async_trait]
impl TlsAccept for SniCertificates {
    async fn certificate_callback(&self, ssl: &mut TlsRef) {
        let store = self.store.load();
        let sni = ssl.servername(NameType::HOST_NAME).map(str::to_string);
        let Some(cert) = store.pick(sni.as_deref()) else {
            log::warn!("TLS handshake without a certificate to offer");
            return;
        };
        let used = ssl_use_certificate(ssl, &cert.chain[0])
            .and_then(|()| ssl_use_private_key(ssl, &cert.key))
            .and_then(|()| {
                cert.chain[1..]
                    .iter()
                    .try_for_each(|c| ssl_add_chain_cert(ssl, c))
            });
        if let Err(e) = used {
            log::warn!("TLS handshake: cannot use certificate {}: {e}", cert.name);
        }
        if let Some(auth) = store.client_auth().get(&cert.name) {
            if let Err(e) = auth.ask(ssl) {
                log::warn!(
                    "TLS handshake: cannot ask for client certificates ({}): {e}",
                    cert.name
                );
            }
        }
    }

    /// A verified client certificate's identity, kept in the connection's TLS digest for
    /// the headers to origins.
    async fn handshake_complete_callback(
        &self,
        ssl: &TlsRef,
    ) -> Option<Arc<dyn Any + Send + Sync>> {
        let store = self.store.load();
        let auth = store
            .pick(hello_sni(ssl))
            .and_then(|c| store.client_auth().get(&c.name))?;
        ClientCert::verified(ssl, auth.id()).map(|c| Arc::new(c) as Arc<dyn Any + Send + Sync>)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portico_core::config::host_pattern;

    fn store(certs: &[(&str, &[&str])]) -> CertStore {
        let key = PKey::ec_gen("prime256v1").expect("key");
        let mut name = openssl::x509::X509NameBuilder::new().expect("name");
        name.append_entry_by_text("CN", "t").expect("cn");
        let name = name.build();
        let mut b = X509::builder().expect("builder");
        b.set_subject_name(&name).expect("subject");
        b.set_pubkey(&key).expect("pubkey");
        b.sign(&key, openssl::hash::MessageDigest::sha256())
            .expect("sign");
        let cert = b.build();
        CertStore::new(
            certs
                .iter()
                .map(|(n, hosts)| LoadedCert {
                    name: n.to_string(),
                    hosts: hosts
                        .iter()
                        .map(|h| host_pattern(h).expect("host"))
                        .collect(),
                    chain: vec![cert.clone()],
                    key: key.clone(),
                })
                .collect(),
        )
    }

    #[test]
    fn exact_beats_the_longest_wildcard_which_beats_the_first() {
        let s = store(&[
            ("first", &["first.test"]),
            ("wide", &["*.example.com"]),
            ("narrow", &["*.api.example.com"]),
            ("exact", &["v1.api.example.com"]),
        ]);
        let pick = |sni: Option<&str>| s.pick(sni).map(|c| c.name.as_str());
        assert_eq!(pick(Some("v1.api.example.com")), Some("exact"));
        assert_eq!(pick(Some("V1.API.example.com.")), Some("exact"));
        assert_eq!(pick(Some("v2.api.example.com")), Some("narrow"));
        assert_eq!(pick(Some("www.example.com")), Some("wide"));
        assert_eq!(pick(Some("example.com")), Some("first"));
        assert_eq!(pick(Some("other.test")), Some("first"));
        assert_eq!(pick(None), Some("first"));
        assert!(CertStore::default().pick(Some("x")).is_none());
    }
}
