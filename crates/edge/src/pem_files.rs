//! Certificate and key files read for the listener and for origins: the bytes of a file, a PEM
//! chain with its key checked against the leaf, problems as config errors at their JSON paths.

use openssl::asn1::Asn1Time;
use openssl::pkey::{PKey, Private};
use openssl::x509::X509;
use portico_core::config::ConfigError;

/// The bytes of `file`, or why it cannot be read.
pub(crate) fn read(file: &str) -> Result<Vec<u8>, String> {
    std::fs::read(file).map_err(|e| format!("cannot read {file}: {e}"))
}

/// The PEM chain of `cert_file` (leaf first) and the key of `key_file`, the key checked
/// against the leaf. Problems are errors at `paths` (the certificate's, the key's); an
/// expired leaf is a warning.
pub(crate) fn read_cert_key(
    cert_file: &str,
    key_file: &str,
    (cert_path, key_path): (&str, &str),
    errors: &mut Vec<ConfigError>,
    warnings: &mut Vec<String>,
) -> Option<(Vec<X509>, PKey<Private>)> {
    let chain = read(cert_file)
        .and_then(|pem| {
            X509::stack_from_pem(&pem)
                .ok()
                .filter(|s| !s.is_empty())
                .ok_or_else(|| format!("{cert_file} holds no PEM certificate"))
        })
        .map_err(|e| errors.push(ConfigError::new(cert_path, e)))
        .ok();
    let key = read(key_file)
        .and_then(|pem| {
            PKey::private_key_from_pem(&pem)
                .map_err(|_| format!("{key_file} holds no PEM private key"))
        })
        .map_err(|e| errors.push(ConfigError::new(key_path, e)))
        .ok();
    let (chain, key) = (chain?, key?);
    let leaf = chain.first()?;
    let matches = leaf
        .public_key()
        .map(|public| public.public_eq(&key))
        .unwrap_or(false);
    if !matches {
        errors.push(ConfigError::new(
            key_path,
            format!("the key in {key_file} does not match the certificate in {cert_file}"),
        ));
        return None;
    }
    if let Ok(now) = Asn1Time::days_from_now(0) {
        if leaf.not_after() < now {
            warnings.push(format!(
                "{cert_path}: the certificate in {cert_file} expired on {}",
                leaf.not_after()
            ));
        }
    }
    Some((chain, key))
}
