//! A throwaway demo CA and server certificate (ECDSA P-256): what `make run`, `make run-single` and the TLS benchmark serve, written at start and never committed.

use anyhow::{Context, Result};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
    SanType,
};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The files [`write_demo_tls`] wrote: the CA certificate (its key is never written), and the
/// server certificate and key, all absolute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoTls {
    /// `ca.pem`: what a client trusts (`curl --cacert`).
    pub ca_file: PathBuf,
    /// `server.pem`: the leaf, for every name and address asked for.
    pub cert_file: PathBuf,
    /// `server-key.pem`, mode 0600.
    pub key_file: PathBuf,
    /// The names and addresses the leaf is for.
    pub hosts: Vec<String>,
}

impl DemoTls {
    /// The DNS names among [`DemoTls::hosts`] (a Portico `certificates[].hosts` list).
    pub fn dns_names(&self) -> Vec<&str> {
        self.hosts
            .iter()
            .map(String::as_str)
            .filter(|h| h.parse::<std::net::IpAddr>().is_err())
            .collect()
    }
}

/// Generates a fresh CA and a leaf for `hosts` (DNS names or IP addresses) and writes
/// `ca.pem`, `server.pem` and `server-key.pem` into `dir` (created if missing).
pub fn write_demo_tls(dir: &Path, hosts: &[String]) -> Result<DemoTls> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let (ca, cert, key) = generate(hosts)?;
    let files = DemoTls {
        ca_file: std::path::absolute(dir.join("ca.pem"))?,
        cert_file: std::path::absolute(dir.join("server.pem"))?,
        key_file: std::path::absolute(dir.join("server-key.pem"))?,
        hosts: hosts.to_vec(),
    };
    write_file(&files.ca_file, &ca, 0o644)?;
    write_file(&files.cert_file, &cert, 0o644)?;
    write_file(&files.key_file, &key, 0o600)?;
    Ok(files)
}

/// The CA certificate, the server certificate and the server key, all PEM.
pub fn generate(hosts: &[String]) -> Result<(String, String, String)> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params
        .distinguished_name
        .push(DnType::CommonName, "Portico demo CA (throwaway)");
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    // rcgen's default algorithm is ECDSA P-256 with SHA-256.
    let ca_key = KeyPair::generate()?;
    let issuer = CertifiedIssuer::self_signed(params, ca_key)?;
    let mut leaf = CertificateParams::new(Vec::<String>::new())?;
    leaf.distinguished_name
        .push(DnType::CommonName, hosts.first().map_or("localhost", |h| h));
    leaf.subject_alt_names = hosts
        .iter()
        .map(|h| match h.parse::<std::net::IpAddr>() {
            Ok(ip) => Ok(SanType::IpAddress(ip)),
            Err(_) => Ok(SanType::DnsName(h.as_str().try_into()?)),
        })
        .collect::<Result<_>>()?;
    let key = KeyPair::generate()?;
    let cert = leaf.signed_by(&key, &issuer)?;
    Ok((issuer.pem(), cert.pem(), key.serialize_pem()))
}

/// Writes `text` to a fresh `path` with `mode` (an old file is replaced, never reused: a key
/// file never has wider permissions than asked, not even for a moment).
pub fn write_file(path: &Path, text: &str, mode: u32) -> Result<()> {
    let _ = std::fs::remove_file(path);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(text.as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn generates_pem_for_names_and_addresses() {
        let (ca, cert, key) = generate(&["localhost".into(), "127.0.0.1".into()]).unwrap();
        assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(cert.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(key.contains("PRIVATE KEY"));
        let x509 = openssl::x509::X509::from_pem(cert.as_bytes()).unwrap();
        let ca = openssl::x509::X509::from_pem(ca.as_bytes()).unwrap();
        assert!(x509.verify(&ca.public_key().unwrap()).unwrap());
        let ec = x509.public_key().unwrap().ec_key().unwrap();
        assert_eq!(
            ec.group().curve_name(),
            Some(openssl::nid::Nid::X9_62_PRIME256V1)
        );
        let sans: Vec<String> = x509
            .subject_alt_names()
            .unwrap()
            .iter()
            .map(|n| {
                n.dnsname()
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("{:?}", n.ipaddress().unwrap_or_default()))
            })
            .collect();
        assert_eq!(sans, ["localhost", "[127, 0, 0, 1]"]);
    }

    #[test]
    fn writes_the_three_files_with_the_key_private() {
        let dir = std::env::temp_dir().join(format!("portico-demo-tls-{}", std::process::id()));
        let hosts = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        let files = write_demo_tls(&dir, &hosts).unwrap();
        assert!(files.ca_file.is_absolute() && files.ca_file.ends_with("ca.pem"));
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&files.key_file), 0o600);
        assert_eq!(mode(&files.cert_file), 0o644);
        assert_eq!(files.dns_names(), ["localhost"]);
        let ca = std::fs::read_to_string(&files.ca_file).unwrap();
        let again = write_demo_tls(&dir, &hosts).unwrap();
        assert_eq!(again, files, "the same paths");
        assert_ne!(
            std::fs::read_to_string(&again.ca_file).unwrap(),
            ca,
            "a second run writes a new CA"
        );
        assert_eq!(
            mode(&again.key_file),
            0o600,
            "and the new key is private too"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
