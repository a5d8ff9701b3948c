//! What a pool's TLS origins need from disk: the CA certificates they are checked against
//! (`ca_file`) and the certificate presented to them (`client_cert_file`/`client_key_file`),
//! read by every config build and compared by content across reloads.

use crate::pem_files::{read, read_cert_key};
use openssl::hash::{Hasher, MessageDigest};
use openssl::x509::X509;
use pingora_core::protocols::tls::CaType;
use pingora_core::utils::tls::CertKey;
use portico_core::config::{ConfigError, PoolConfig};
use std::fmt;
use std::sync::Arc;

/// A pool's TLS material from disk. Equal when the files hold the same certificates.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PoolTls {
    /// The CA certificates of `ca_file` (none: the system roots).
    pub ca: Option<Arc<CaType>>,
    /// The certificate of `client_cert_file`/`client_key_file` (none: no certificate).
    pub client_cert: Option<OriginCert>,
}

impl PoolTls {
    /// A connection-pool key for TLS peers with this material (0 without a CA file or a
    /// certificate). Pingora tells pooled connections apart by address, SNI, verification
    /// flags and the client certificates' serial numbers, not by the CA a connection was
    /// checked against nor a certificate's contents: without this key a connection checked
    /// against one pool's CA would serve another pool that trusts another CA (or the same
    /// pool after its CA file changed), and one opened with a certificate would serve a new
    /// certificate with the old serial (a renewal with the same key). The first 8 bytes of
    /// a SHA-256 over both.
    pub fn group_key(&self) -> u64 {
        if self.ca.is_none() && self.client_cert.is_none() {
            return 0;
        }
        let digest = || -> Result<[u8; 8], openssl::error::ErrorStack> {
            let mut h = Hasher::new(MessageDigest::sha256())?;
            for ca in self.ca.iter().flat_map(|cas| cas.iter()) {
                let der = ca.to_der()?;
                h.update(b"ca")?;
                h.update(&(der.len() as u64).to_be_bytes())?;
                h.update(&der)?;
            }
            if let Some(cert) = &self.client_cert {
                h.update(b"client")?;
                h.update(&(cert.der.len() as u64).to_be_bytes())?;
                h.update(&cert.der)?;
            }
            let mut key = [0u8; 8];
            key.copy_from_slice(h.finish()?.get(..8).unwrap_or(&[0; 8]));
            Ok(key)
        };
        // A failed digest (out of memory in OpenSSL) still keeps the material apart from
        // none.
        digest().map_or(u64::MAX, u64::from_be_bytes)
    }
}

/// A certificate chain and its key, presented to TLS origins that ask for a client
/// certificate. Two are equal when their chains are the same DER (the key is the one that
/// matches the leaf).
#[derive(Clone)]
pub struct OriginCert {
    cert_key: Arc<CertKey>,
    /// The chain's DER certificates, one after the other.
    der: Arc<[u8]>,
    /// SHA-256 of the leaf, lowercase hex.
    fingerprint: String,
}

impl OriginCert {
    /// The chain (leaf first, not empty) and key as Pingora presents them.
    fn new(chain: Vec<X509>, key: openssl::pkey::PKey<openssl::pkey::Private>) -> Option<Self> {
        let leaf = chain.first()?;
        let digest = leaf.digest(MessageDigest::sha256()).ok()?;
        let fingerprint = digest.iter().map(|b| format!("{b:02x}")).collect();
        let mut der = Vec::new();
        for c in &chain {
            der.extend(c.to_der().ok()?);
        }
        Some(OriginCert {
            cert_key: Arc::new(CertKey::new(chain, key)),
            der: der.into(),
            fingerprint,
        })
    }

    /// What Pingora's peer carries (`HttpPeer::client_cert_key`).
    pub fn cert_key(&self) -> &Arc<CertKey> {
        &self.cert_key
    }
}

impl PartialEq for OriginCert {
    fn eq(&self, other: &Self) -> bool {
        self.der == other.der
    }
}

impl fmt::Debug for OriginCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OriginCert")
            .field("sha256", &self.fingerprint)
            .finish()
    }
}

/// Reads the CA file and the client certificate of `pool`, the config's `pools[i]`. A file
/// that cannot be read or holds no PEM, and a key that does not match its certificate, are
/// errors at their JSON paths; an expired client certificate is a warning.
pub fn load(
    i: usize,
    pool: &PoolConfig,
    errors: &mut Vec<ConfigError>,
    warnings: &mut Vec<String>,
) -> PoolTls {
    let ca = pool.ca_file.as_ref().and_then(|file| {
        let loaded = read(file).and_then(|pem| {
            X509::stack_from_pem(&pem)
                .ok()
                .filter(|s| !s.is_empty())
                .ok_or_else(|| format!("{file} holds no PEM certificate"))
        });
        loaded
            .map(|list| Arc::new(list.into_boxed_slice()))
            .map_err(|e| errors.push(ConfigError::new(format!("pools[{i}].ca_file"), e)))
            .ok()
    });
    let client_cert = pool.client_cert.as_ref().and_then(|c| {
        let cert_path = format!("pools[{i}].client_cert_file");
        let key_path = format!("pools[{i}].client_key_file");
        let (chain, key) = read_cert_key(
            &c.cert_file,
            &c.key_file,
            (&cert_path, &key_path),
            errors,
            warnings,
        )?;
        let loaded = OriginCert::new(chain, key);
        if loaded.is_none() {
            errors.push(ConfigError::new(
                cert_path,
                format!("{} holds a certificate that cannot be used", c.cert_file),
            ));
        }
        loaded
    });
    PoolTls { ca, client_cert }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portico_core::config::parse;

    /// A self-signed certificate and key (PEM) named `cn`.
    fn self_signed(cn: &str) -> (String, String) {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::new(vec![]).expect("params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        let cert = params.self_signed(&key).expect("cert");
        (cert.pem(), key.serialize_pem())
    }

    /// `pools[1]` of a config whose second pool presents `cert`/`key` (paths).
    fn pool(cert: &str, key: &str) -> PoolConfig {
        let text = format!(
            r#"{{"pools": [{{"name": "a", "origins": [{{"name": "a", "address": "127.0.0.1:1"}}]}},
                {{"name": "b", "client_cert_file": {cert:?}, "client_key_file": {key:?},
                  "origins": [{{"name": "b", "address": "127.0.0.1:2", "tls": true}}]}}],
               "routes": [{{"name": "r", "pool": "a"}}]}}"#
        );
        parse(&text).expect("valid").pools[1].clone()
    }

    fn load_errors(pool: &PoolConfig) -> (PoolTls, Vec<String>) {
        let mut errors = Vec::new();
        let loaded = load(1, pool, &mut errors, &mut Vec::new());
        (loaded, errors.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn a_pool_certificate_is_read_and_compared_by_its_der() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cert = dir.path().join("edge.pem").display().to_string();
        let key = dir.path().join("edge-key.pem").display().to_string();
        let (c, k) = self_signed("edge");
        std::fs::write(&cert, &c).expect("write");
        std::fs::write(&key, &k).expect("write");
        let (first, errors) = load_errors(&pool(&cert, &key));
        assert!(errors.is_empty(), "{errors:?}");
        let loaded = first.client_cert.clone().expect("a certificate");
        assert_eq!(
            loaded.cert_key().leaf().to_der().ok(),
            X509::from_pem(c.as_bytes()).and_then(|x| x.to_der()).ok()
        );
        let (again, _) = load_errors(&pool(&cert, &key));
        assert_eq!(first, again, "the same files, the same material");
        assert_eq!(first.group_key(), again.group_key());
        let (c2, k2) = self_signed("edge");
        std::fs::write(&cert, &c2).expect("write");
        std::fs::write(&key, &k2).expect("write");
        let (next, errors) = load_errors(&pool(&cert, &key));
        assert!(errors.is_empty(), "{errors:?}");
        assert_ne!(first, next, "new file contents are new material");
        assert_ne!(first.group_key(), next.group_key());
    }

    #[test]
    fn the_connection_pool_key_tells_cas_and_certificates_apart() {
        let ca = |cn: &str| -> Option<Arc<CaType>> {
            let pem = self_signed(cn).0;
            let list = X509::stack_from_pem(pem.as_bytes()).expect("PEM");
            Some(Arc::new(list.into_boxed_slice()))
        };
        let cert = |cn: &str| {
            let (c, k) = self_signed(cn);
            OriginCert::new(
                X509::stack_from_pem(c.as_bytes()).expect("PEM"),
                openssl::pkey::PKey::private_key_from_pem(k.as_bytes()).expect("key"),
            )
        };
        let (one, other, edge) = (ca("one"), ca("other"), cert("edge"));
        let tls = |ca: &Option<Arc<CaType>>, client_cert: &Option<OriginCert>| PoolTls {
            ca: ca.clone(),
            client_cert: client_cert.clone(),
        };
        assert_eq!(PoolTls::default().group_key(), 0);
        let keys = [
            tls(&one, &None),
            tls(&other, &None),
            tls(&None, &edge),
            tls(&one, &edge),
            tls(&other, &edge),
        ]
        .map(|t| t.group_key());
        for (i, k) in keys.iter().enumerate() {
            assert_ne!(*k, 0);
            assert_eq!(keys.iter().filter(|o| *o == k).count(), 1, "{i}: {keys:?}");
        }
        assert_eq!(
            tls(&one, &edge).group_key(),
            keys[3],
            "the same material, the same key"
        );
    }

    #[test]
    fn missing_unreadable_and_mismatched_files_are_errors_at_their_paths() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = |name: &str, text: &str| {
            let path = dir.path().join(name).display().to_string();
            std::fs::write(&path, text).expect("write");
            path
        };
        let (c, k) = self_signed("edge");
        let (_, other_key) = self_signed("other");
        let cert = file("edge.pem", &c);
        let key = file("edge-key.pem", &k);
        let missing = dir.path().join("missing.pem").display().to_string();
        let (loaded, errors) = load_errors(&pool(&missing, &key));
        assert!(loaded.client_cert.is_none());
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].starts_with(&format!(
                "pools[1].client_cert_file: cannot read {missing}: "
            )),
            "{errors:?}"
        );
        let not_pem = file("junk.pem", "not PEM\n");
        assert_eq!(
            load_errors(&pool(&cert, &not_pem)).1,
            [format!(
                "pools[1].client_key_file: {not_pem} holds no PEM private key"
            )]
        );
        assert_eq!(
            load_errors(&pool(&not_pem, &key)).1,
            [format!(
                "pools[1].client_cert_file: {not_pem} holds no PEM certificate"
            )]
        );
        let wrong = file("other-key.pem", &other_key);
        assert_eq!(
            load_errors(&pool(&cert, &wrong)).1,
            [format!(
                "pools[1].client_key_file: the key in {wrong} does not match the certificate in {cert}"
            )]
        );
        // Both files wrong: both reported.
        assert_eq!(load_errors(&pool(&missing, &not_pem)).1.len(), 2);
    }
}
