//! `portico-demo-certs`: a throwaway CA and server certificate (ECDSA P-256) for the demo and
//! the TLS benchmark, and optionally a copy of a config with a TLS listener using them.

use anyhow::{Context, Result};
use clap::Parser;
use portico_origin::write_demo_tls;
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
    let files = write_demo_tls(&args.dir, &args.hosts)?;
    println!(
        "wrote {} (CA), {} and {} (ECDSA P-256, for {})",
        files.ca_file.display(),
        files.cert_file.display(),
        files.key_file.display(),
        args.hosts.join(", ")
    );
    if let (Some(config), Some(listen), Some(out)) = (&args.config, &args.tls_listen, &args.out) {
        let text = std::fs::read_to_string(config)
            .with_context(|| format!("cannot read {}", config.display()))?;
        let doc = with_tls(
            &text,
            listen,
            &files.dns_names(),
            &files.cert_file,
            &files.key_file,
        )
        .with_context(|| format!("{} is not a JSON object", config.display()))?;
        std::fs::write(out, doc).with_context(|| format!("cannot write {}", out.display()))?;
        println!("wrote {} (tls_listen {listen})", out.display());
    }
    Ok(())
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
}
