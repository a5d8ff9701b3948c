//! TLS for tests: a private CA and leaf certificates (ECDSA P-256, from `rcgen`) written to
//! a temporary directory, nodes with a TLS listener, and Debian's `curl` as the client.

use crate::node::TestNode;
use crate::port::free_addr;
use portico_core::config::Overrides;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A private certificate authority whose files live in a temporary directory.
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
    dir: tempfile::TempDir,
    /// The CA certificate (PEM), for `--cacert` and `ca_file`.
    pub ca_file: PathBuf,
}

/// A leaf certificate's files.
#[derive(Debug, Clone)]
pub struct Leaf {
    /// Certificate (PEM).
    pub cert_file: PathBuf,
    /// Private key (PEM).
    pub key_file: PathBuf,
}

impl TestCa {
    /// A new CA named `name` (its certificate's common name).
    pub fn new(name: &str) -> TestCa {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().expect("CA key");
        let issuer = CertifiedIssuer::self_signed(params, key).expect("CA certificate");
        let ca_file = dir.path().join(format!("{name}-ca.pem"));
        std::fs::write(&ca_file, issuer.pem()).expect("write the CA");
        TestCa {
            issuer,
            dir,
            ca_file,
        }
    }

    /// The directory its files are in.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A leaf certificate for `names` (its common name is `stem`, so a test can tell which
    /// one it was served), written as `<stem>.pem` and `<stem>-key.pem`.
    pub fn leaf(&self, stem: &str, names: &[&str]) -> Leaf {
        self.leaf_with(stem, names, |_| {})
    }

    /// A leaf certificate that expired in 2001.
    pub fn expired_leaf(&self, stem: &str, names: &[&str]) -> Leaf {
        self.leaf_with(stem, names, |p| {
            p.not_before = rcgen::date_time_ymd(2000, 1, 1);
            p.not_after = rcgen::date_time_ymd(2001, 1, 1);
        })
    }

    /// A leaf certificate for the key of `leaf` (as a renewal that keeps its key would be;
    /// `rcgen` derives the serial number from the key, so it has `leaf`'s serial too).
    pub fn leaf_for_key(&self, stem: &str, names: &[&str], leaf: &Leaf) -> Leaf {
        let pem = std::fs::read_to_string(&leaf.key_file).expect("read the key");
        let key = KeyPair::from_pem(&pem).expect("a PEM key");
        self.leaf_signed(stem, names, |_| {}, key)
    }

    fn leaf_with(
        &self,
        stem: &str,
        names: &[&str],
        adjust: impl Fn(&mut CertificateParams),
    ) -> Leaf {
        self.leaf_signed(stem, names, adjust, KeyPair::generate().expect("leaf key"))
    }

    fn leaf_signed(
        &self,
        stem: &str,
        names: &[&str],
        adjust: impl Fn(&mut CertificateParams),
        key: KeyPair,
    ) -> Leaf {
        let sans: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(sans).expect("leaf params");
        params.distinguished_name.push(DnType::CommonName, stem);
        adjust(&mut params);
        let cert = params.signed_by(&key, &self.issuer).expect("sign the leaf");
        let leaf = Leaf {
            cert_file: self.dir.path().join(format!("{stem}.pem")),
            key_file: self.dir.path().join(format!("{stem}-key.pem")),
        };
        std::fs::write(&leaf.cert_file, cert.pem()).expect("write the leaf");
        std::fs::write(&leaf.key_file, key.serialize_pem()).expect("write the key");
        leaf
    }
}

/// `{"name": ..., "hosts": [...], "cert_file": ..., "key_file": ...}`.
pub fn certificate_json(name: &str, hosts: &[&str], leaf: &Leaf) -> String {
    serde_json::json!({
        "name": name,
        "hosts": hosts,
        "cert_file": leaf.cert_file,
        "key_file": leaf.key_file,
    })
    .to_string()
}

/// A node with a TLS listener too.
pub struct TlsNode {
    /// The node (its plain listener and admin as with [`TestNode::start`]).
    pub node: TestNode,
    /// The TLS listener's address.
    pub tls: std::net::SocketAddr,
}

impl TlsNode {
    /// Starts a node from `config` with `node.tls_listen` set to a free port (and the other
    /// listeners moved as [`TestNode::start`] does). Waits until the TLS port accepts.
    pub async fn start(config: &str) -> TlsNode {
        let tls = free_addr();
        let text = with_tls_listen(config, tls);
        let node = TestNode::start_with(&text, &Overrides::default()).await;
        crate::eventually(
            &format!("{tls} accepts connections"),
            std::time::Duration::from_secs(10),
            || async move { std::net::TcpStream::connect(tls).is_ok() },
        )
        .await;
        TlsNode { node, tls }
    }

    /// The TLS port.
    pub fn port(&self) -> u16 {
        self.tls.port()
    }
}

/// `config` with `node.tls_listen` set to `addr`.
pub fn with_tls_listen(config: &str, addr: std::net::SocketAddr) -> String {
    let mut doc: serde_json::Value = serde_json::from_str(config).expect("config is JSON");
    let node = doc
        .as_object_mut()
        .expect("an object")
        .entry("node")
        .or_insert_with(|| serde_json::json!({}));
    node["tls_listen"] = serde_json::Value::String(addr.to_string());
    doc.to_string()
}

/// What curl printed and how it ended.
#[derive(Debug)]
pub struct CurlOut {
    /// Exit status 0.
    pub ok: bool,
    /// Standard output (the body, then what `-w` writes).
    pub stdout: String,
    /// Standard error (with `-v`, the handshake and the headers).
    pub stderr: String,
}

/// Runs `curl -sS` with `args` off the test's runtime (whose origins must keep serving).
pub async fn curl(args: &[&str]) -> CurlOut {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let out = Command::new("curl")
            .arg("-sS")
            .arg("--max-time")
            .arg("20")
            .args(&args)
            .output()
            .expect("run curl (apt-get install curl)");
        CurlOut {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    })
    .await
    .expect("curl task")
}

/// The subject curl's `-v` reports for the server certificate (`CN = ...`), if any.
pub fn served_subject(verbose: &str) -> Option<String> {
    verbose
        .lines()
        .find_map(|l| l.split_once("subject: ").map(|(_, s)| s.trim().to_string()))
}
