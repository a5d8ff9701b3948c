//! `portico-demo-certs`: a throwaway CA and server certificate (ECDSA P-256) for the demo and
//! the TLS benchmark, and optionally a copy of a config with a TLS listener using them.

use anyhow::{Context, Result};
use clap::Parser;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
    SanType,
};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Writes `ca.pem` (the CA certificate; its key is never written), `server.pem` and
/// `server-key.pem` (a leaf for --host, signed by the CA) into DIR. With --config, also a copy
/// of that Portico config with `node.tls_listen` and a `certificates` entry for the leaf.
#[derive(Parser, Debug)]
#[command(name = "portico-demo-certs", version)]
struct Args {
    /// Directory for the files (created if missing).
    dir: PathBuf,
    /// Names (and IP addresses) the server certificate is for; repeatable.
    #[arg(long = "host", default_values_t = ["localhost".to_string(), "127.0.0.1".to_string(), "::1".to_string()])]
    hosts: Vec<String>,
    /// A Portico config to copy with a TLS listener added (needs --tls-listen and --out).
    #[arg(long, requires_all = ["tls_listen", "out"])]
    config: Option<PathBuf>,
    /// `node.tls_listen` of the copy.
    #[arg(long)]
    tls_listen: Option<String>,
    /// Where the copy goes.
    #[arg(long)]
    out: Option<PathBuf>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("cannot create {}", args.dir.display()))?;
    let (ca, cert, key) = generate(&args.hosts)?;
    let ca_file = args.dir.join("ca.pem");
    let cert_file = std::path::absolute(args.dir.join("server.pem"))?;
    let key_file = std::path::absolute(args.dir.join("server-key.pem"))?;
    write(&ca_file, &ca, 0o644)?;
    write(&cert_file, &cert, 0o644)?;
    write(&key_file, &key, 0o600)?;
    println!(
        "wrote {} (CA), {} and {} (ECDSA P-256, for {})",
        ca_file.display(),
        cert_file.display(),
        key_file.display(),
        args.hosts.join(", ")
    );
    if let (Some(config), Some(listen), Some(out)) = (&args.config, &args.tls_listen, &args.out) {
        let text = std::fs::read_to_string(config)
            .with_context(|| format!("cannot read {}", config.display()))?;
        let dns: Vec<&str> = args
            .hosts
            .iter()
            .map(String::as_str)
            .filter(|h| h.parse::<std::net::IpAddr>().is_err())
            .collect();
        let doc = with_tls(&text, listen, &dns, &cert_file, &key_file)
            .with_context(|| format!("{} is not a JSON object", config.display()))?;
        write(out, &doc, 0o644)?;
        println!("wrote {} (tls_listen {listen})", out.display());
    }
    Ok(())
}

/// The CA certificate, the server certificate and the server key, all PEM.
fn generate(hosts: &[String]) -> Result<(String, String, String)> {
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

/// `config` with `node.tls_listen` set and `certificates` holding the one demo certificate.
fn with_tls(
    config: &str,
    listen: &str,
    hosts: &[&str],
    cert_file: &Path,
    key_file: &Path,
) -> Option<String> {
    let mut doc: serde_json::Value = serde_json::from_str(config).ok()?;
    let obj = doc.as_object_mut()?;
    let node = obj
        .entry("node")
        .or_insert_with(|| serde_json::json!({}))
        .as_object_mut()?;
    node.insert("tls_listen".into(), listen.into());
    obj.insert(
        "certificates".into(),
        serde_json::json!([{
            "name": "demo",
            "hosts": hosts,
            "cert_file": cert_file,
            "key_file": key_file,
        }]),
    );
    serde_json::to_string_pretty(&doc).ok()
}

fn write(path: &Path, text: &str, mode: u32) -> Result<()> {
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

    #[test]
    fn the_config_copy_gets_a_listener_and_the_certificate() {
        let text = r#"{"node": {"listen": "127.0.0.1:8080"}, "pools": [], "routes": []}"#;
        let out = with_tls(
            text,
            "127.0.0.1:8443",
            &["localhost"],
            Path::new("/d/server.pem"),
            Path::new("/d/server-key.pem"),
        )
        .expect("a JSON object");
        let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(doc["node"]["listen"], "127.0.0.1:8080");
        assert_eq!(doc["node"]["tls_listen"], "127.0.0.1:8443");
        assert_eq!(doc["certificates"][0]["hosts"][0], "localhost");
        assert_eq!(doc["certificates"][0]["key_file"], "/d/server-key.pem");
        assert!(with_tls("[]", "x", &[], Path::new("a"), Path::new("b")).is_none());
    }

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
}
