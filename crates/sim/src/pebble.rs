//! `--acme`: Pebble, Let's Encrypt's test ACME server, and its mock DNS (`pebble-challtestsrv`,
//! every name resolving to 127.0.0.1), both Debian's packages, as the demo's CA. Pebble's
//! HTTP-01 validations go to `127.0.0.1:<http_port>`, the first region's entry, so whichever
//! node the entry sends them to answers from the store. The same launch as the integration
//! tests' (`tests/support/acme.rs`), which the simulation cannot depend on.

use crate::launch::ChildProc;
use anyhow::{Context, Result, bail};
use portico_origin::write_demo_tls;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The name the demo's managed certificate is for (resolved with `curl --resolve`).
pub const HOST: &str = "www.portico.test";

/// How long Pebble has to serve its directory.
const READY_DEADLINE: Duration = Duration::from_secs(20);

/// A running Pebble and its mock DNS (registered like the simulation's other children, so a
/// second Ctrl-C kills them); both are killed on drop.
pub struct Pebble {
    pebble: ChildProc,
    dns: ChildProc,
    log: PathBuf,
    /// The ACME directory URL, `https://127.0.0.1:PORT/dir` (`acme.directory`).
    pub directory: String,
    /// The CA Pebble's own HTTPS listener is signed by (`acme.ca_file`).
    pub ca_file: PathBuf,
    /// The root of the CA Pebble issues from (`curl --cacert`).
    pub root_file: PathBuf,
}

impl Pebble {
    /// Starts the mock DNS and Pebble with their files and logs in `dir`, waits until Pebble
    /// serves its directory and writes its issuing root to `dir/root.pem`.
    pub fn start(dir: &Path, http_port: u16) -> Result<Pebble> {
        for tool in ["pebble", "pebble-challtestsrv", "curl"] {
            let found = Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .output()
                .is_ok_and(|o| o.status.success());
            anyhow::ensure!(
                found,
                "--acme needs {tool}: apt-get install -y pebble curl (or make test-deps)"
            );
        }
        let listener = write_demo_tls(
            &dir.join("listener"),
            &["localhost".into(), "127.0.0.1".into()],
        )
        .context("cannot write Pebble's listener certificate")?;
        let [listen, management, dns_addr, dns_management, tls_port] =
            portico_store::free_loopback_addrs(5).map_err(anyhow::Error::msg)?[..]
        else {
            bail!("five free loopback ports were asked for");
        };
        let config = serde_json::json!({
            "pebble": {
                "listenAddress": listen.to_string(),
                "managementListenAddress": management.to_string(),
                "certificate": listener.cert_file,
                "privateKey": listener.key_file,
                "httpPort": http_port,
                "tlsPort": tls_port.port(),
                "ocspResponderURL": "",
                "externalAccountBindingRequired": false,
            }
        });
        let config_file = dir.join("pebble.json");
        std::fs::write(&config_file, config.to_string())
            .with_context(|| format!("cannot write {}", config_file.display()))?;
        let log = dir.join("pebble.log");
        let mut dns = Command::new("pebble-challtestsrv");
        dns.args(["-dns01", &dns_addr.to_string()])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
            .args(["-management", &dns_management.to_string()])
            .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""]);
        let mut dns = ChildProc::spawn("pebble-challtestsrv", dns, &dir.join("dns.log"))?;
        let mut pebble = Command::new("pebble");
        pebble
            .arg("-config")
            .arg(&config_file)
            .args(["-dnsserver", &dns_addr.to_string()])
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0");
        let pebble = match ChildProc::spawn("pebble", pebble, &log) {
            Ok(p) => p,
            Err(e) => {
                dns.kill();
                return Err(e);
            }
        };
        let mut p = Pebble {
            pebble,
            dns,
            log,
            directory: format!("https://{listen}/dir"),
            ca_file: listener.ca_file,
            root_file: dir.join("root.pem"),
        };
        p.wait_ready(listen, management)?;
        Ok(p)
    }

    /// Polls until Pebble serves its directory, then writes its root.
    fn wait_ready(&mut self, listen: SocketAddr, management: SocketAddr) -> Result<()> {
        let deadline = Instant::now() + READY_DEADLINE;
        let ca = self.ca_file.display().to_string();
        loop {
            if let Some(status) = self.pebble.exited() {
                bail!("pebble exited ({status}); its log: {}", self.log.display());
            }
            let up = TcpStream::connect(listen).is_ok() && TcpStream::connect(management).is_ok();
            if up && curl(&["--cacert", &ca, &self.directory]).contains("newOrder") {
                break;
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "pebble did not serve {} within {READY_DEADLINE:?}; its log: {}",
                self.directory,
                self.log.display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let root = curl(&[
            "--fail",
            "--cacert",
            &ca,
            &format!("https://{management}/roots/0"),
        ]);
        anyhow::ensure!(
            root.contains("BEGIN CERTIFICATE"),
            "pebble's root: nothing at https://{management}/roots/0"
        );
        std::fs::write(&self.root_file, root)
            .with_context(|| format!("cannot write {}", self.root_file.display()))
    }

    /// Pebble's and its mock DNS's process ids and names (for the run's pid file).
    pub fn pids(&self) -> [(u32, &str); 2] {
        [
            (self.pebble.pid(), "pebble"),
            (self.dns.pid(), "pebble-challtestsrv"),
        ]
    }

    /// How many orders Pebble has been sent (its log's `POST /order-plz` lines).
    pub fn orders(&self) -> usize {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .matches("POST /order-plz")
            .count()
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        self.pebble.kill();
        self.dns.kill();
    }
}

/// The shared config `text` with a managed certificate for [`HOST`] from `pebble` beside its
/// file certificates (which keep serving every other name).
pub fn with_acme(text: &str, pebble: &Pebble) -> Result<String> {
    let mut doc: serde_json::Value =
        serde_json::from_str(text).context("the shared config is JSON")?;
    let certificates = doc["certificates"]
        .as_array_mut()
        .context("the shared config has no certificates")?;
    certificates.push(serde_json::json!({"name": "acme", "hosts": [HOST], "acme": true}));
    doc["acme"] = serde_json::json!({
        "directory": pebble.directory,
        "ca_file": pebble.ca_file,
    });
    Ok(serde_json::to_string_pretty(&doc)? + "\n")
}

/// Whether `addr` serves [`HOST`] a certificate that `root_file` verifies.
pub fn serves(addr: &SocketAddr, root_file: &Path) -> bool {
    serves_name(addr, root_file, HOST)
}

/// Whether `addr` serves `name` a certificate that `root_file` verifies.
pub fn serves_name(addr: &SocketAddr, root_file: &Path, name: &str) -> bool {
    use openssl::ssl::{SslConnector, SslMethod};
    let Ok(tcp) = TcpStream::connect_timeout(addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = tcp.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = tcp.set_write_timeout(Some(Duration::from_secs(2)));
    let Ok(mut builder) = SslConnector::builder(SslMethod::tls_client()) else {
        return false;
    };
    if builder.set_ca_file(root_file).is_err() {
        return false;
    }
    match builder.build().connect(name, tcp) {
        Ok(mut s) => {
            let _ = s.shutdown();
            true
        }
        Err(_) => false,
    }
}

/// `curl -s ARGS`'s standard output (empty when it fails).
fn curl(args: &[&str]) -> String {
    Command::new("curl")
        .args(["-s", "--max-time", "5"])
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}
