//! Pebble, Let's Encrypt's ACME test server, with its mock DNS (`pebble-challtestsrv`), both
//! Debian's packages, started on ports chosen at run time. Pebble's HTTP-01 validations go to
//! `127.0.0.1:<http_port>` (every name resolves to 127.0.0.1 through the mock DNS), so a node
//! listening there answers them. Pebble's own listener gets a certificate from a private test
//! CA ([`Pebble::ca_file`], for `acme.ca_file`); the CA it issues from is regenerated on every
//! start and fetched from its management endpoint ([`Pebble::root`]).

use crate::node::free_addr;
use crate::tls::{TestCa, curl};
use crate::wait::eventually;
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// How to start Pebble.
#[derive(Debug, Clone, Copy)]
pub struct PebbleOptions {
    /// The port Pebble's validator connects to for HTTP-01: the node's plain listener.
    pub http_port: u16,
    /// Lifetime of the certificates Pebble issues, in seconds (Pebble's default: 5 years).
    pub validity_s: Option<u64>,
}

/// A running Pebble and its mock DNS; both are killed on drop.
pub struct Pebble {
    pebble: Option<Child>,
    dns: Child,
    _ca: TestCa,
    dir: tempfile::TempDir,
    options: PebbleOptions,
    listen: SocketAddr,
    management: SocketAddr,
    dns_addr: SocketAddr,
    /// The ACME directory URL, `https://127.0.0.1:PORT/dir`.
    pub directory: String,
    /// The CA that Pebble's own HTTPS listener is signed by (PEM), for `acme.ca_file`.
    pub ca_file: PathBuf,
}

impl Pebble {
    /// Starts the mock DNS and Pebble, and waits until Pebble serves its directory. Panics
    /// with the install command when Pebble is missing: ACME tests never skip.
    pub async fn start(options: PebbleOptions) -> Pebble {
        for tool in ["pebble", "pebble-challtestsrv"] {
            let found = Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false);
            assert!(
                found,
                "{tool} is missing: apt-get install -y pebble (or make test-deps)"
            );
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = TestCa::new("pebble-listener");
        let leaf = ca.leaf("pebble", &["localhost", "127.0.0.1"]);
        let listen = free_addr();
        let management = free_addr();
        let dns_addr = free_addr();
        let mut config = serde_json::json!({
            "pebble": {
                "listenAddress": listen.to_string(),
                "managementListenAddress": management.to_string(),
                "certificate": leaf.cert_file,
                "privateKey": leaf.key_file,
                "httpPort": options.http_port,
                "tlsPort": free_addr().port(),
                "ocspResponderURL": "",
                "externalAccountBindingRequired": false,
            }
        });
        if let Some(seconds) = options.validity_s {
            config["pebble"]["certificateValidityPeriod"] = seconds.into();
        }
        std::fs::write(dir.path().join("pebble.json"), config.to_string()).expect("config");
        let dns = Command::new("pebble-challtestsrv")
            .args(["-dns01", &dns_addr.to_string()])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
            .args(["-management", &free_addr().to_string()])
            .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
            .stdout(log_file(&dir, "dns.log"))
            .stderr(log_file(&dir, "dns.log"))
            .spawn()
            .expect("start pebble-challtestsrv");
        let mut pebble = Pebble {
            pebble: None,
            dns,
            ca_file: ca.ca_file.clone(),
            _ca: ca,
            dir,
            options,
            listen,
            management,
            dns_addr,
            directory: format!("https://{listen}/dir"),
        };
        pebble.resume().await;
        pebble
    }

    /// Kills Pebble (the mock DNS keeps running): the CA is unreachable until [`Pebble::resume`].
    pub fn stop(&mut self) {
        if let Some(mut child) = self.pebble.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts Pebble again on the same ports (a new issuing CA: fetch [`Pebble::root`] again)
    /// and waits until it serves its directory.
    pub async fn resume(&mut self) {
        self.stop();
        let child = Command::new("pebble")
            .arg("-config")
            .arg(self.dir.path().join("pebble.json"))
            .args(["-dnsserver", &self.dns_addr.to_string()])
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            // Every order is validated afresh, so every issuance shows its challenge.
            .env("PEBBLE_AUTHZREUSE", "0")
            .stdout(log_file(&self.dir, "pebble.log"))
            .stderr(log_file(&self.dir, "pebble.log"))
            .spawn()
            .expect("start pebble");
        self.pebble = Some(child);
        for addr in [self.listen, self.management] {
            eventually(
                &format!("pebble accepts connections on {addr}"),
                Duration::from_secs(20),
                || async move { TcpStream::connect(addr).is_ok() },
            )
            .await;
        }
        let ca = self.ca_file.display().to_string();
        let url = self.directory.clone();
        eventually(
            "pebble serves its directory",
            Duration::from_secs(20),
            || {
                let (ca, url) = (ca.clone(), url.clone());
                async move {
                    curl(&["--cacert", &ca, &url])
                        .await
                        .stdout
                        .contains("newOrder")
                }
            },
        )
        .await;
    }

    /// The root of the CA Pebble issues from (PEM), from its management endpoint.
    pub async fn root(&self) -> String {
        let ca = self.ca_file.display().to_string();
        let out = curl(&[
            "--fail",
            "--cacert",
            &ca,
            &format!("https://{}/roots/0", self.management),
        ])
        .await;
        assert!(
            out.ok && out.stdout.contains("BEGIN CERTIFICATE"),
            "pebble's root: {}",
            out.stderr
        );
        out.stdout
    }

    /// The root written to a file in Pebble's directory, for `curl --cacert`.
    pub async fn root_file(&self) -> PathBuf {
        let path = self.dir.path().join("pebble-root.pem");
        std::fs::write(&path, self.root().await).expect("write pebble's root");
        path
    }

    /// How many orders Pebble has been sent (its log's `POST /order-plz` lines, every start).
    pub fn orders(&self) -> usize {
        self.log().matches("POST /order-plz").count()
    }

    /// Pebble's log so far (every start).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("pebble.log")).unwrap_or_default()
    }

    /// The options Pebble was started with.
    pub fn options(&self) -> PebbleOptions {
        self.options
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        self.stop();
        let _ = self.dns.kill();
        let _ = self.dns.wait();
    }
}

fn log_file(dir: &tempfile::TempDir, name: &str) -> Stdio {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.path().join(name))
        .map(Stdio::from)
        .expect("open a log file")
}
