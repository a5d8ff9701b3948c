//! The TLS-terminating proxies under test, each at its documented best with the same ECDSA
//! P-256 certificate, in front of the same plain-HTTP origin.

use crate::procs::{Proc, nginx_prefix, pinned, wait_port, which, workspace_bin};
use crate::throughput::peers::{Placement, Running, portico_conf};
use crate::tls_bench::load::HandshakeClient;
use anyhow::{Context, Result, bail};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The certificate every proxy serves.
#[derive(Debug, Clone)]
pub struct Certs {
    /// The throwaway CA.
    pub ca: PathBuf,
    /// The server certificate (PEM).
    pub cert: PathBuf,
    /// Its key (PEM).
    pub key: PathBuf,
    /// Certificate then key in one file (HAProxy's `crt`).
    pub combined: PathBuf,
}

/// The name the certificate is for and clients send as SNI.
pub const HOST: &str = "bench.local";

/// Makes the certificate with `portico-demo-certs` (rcgen, ECDSA P-256).
pub fn make_certs(dir: &Path) -> Result<Certs> {
    let bin = workspace_bin("portico-demo-certs");
    if !bin.is_file() {
        bail!(
            "{} not found: cargo build --release -p portico-origin",
            bin.display()
        );
    }
    let dir = dir.join("certs");
    let out = Command::new(&bin)
        .arg(&dir)
        .args(["--host", HOST, "--host", "127.0.0.1"])
        .output()
        .context("running portico-demo-certs")?;
    if !out.status.success() {
        bail!(
            "portico-demo-certs failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let certs = Certs {
        ca: dir.join("ca.pem"),
        cert: dir.join("server.pem"),
        key: dir.join("server-key.pem"),
        combined: dir.join("server-combined.pem"),
    };
    let both = std::fs::read_to_string(&certs.cert)? + &std::fs::read_to_string(&certs.key)?;
    std::fs::write(&certs.combined, both)?;
    Ok(certs)
}

/// nginx terminating TLS: as the plain benchmark's proxy (one worker, keep-alive upstream,
/// no access log), plus TLS 1.2/1.3, HTTP/2 on the same listener, and resumption as nginx's
/// docs advise: a shared session cache (`ssl_session_cache shared:SSL:10m`, about 40,000
/// sessions), a 1 h session timeout and session tickets on.
pub fn nginx_tls_conf(dir: &Path, port: u16, origin: SocketAddr, certs: &Certs) -> String {
    let d = dir.display();
    format!(
        "worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{
    worker_connections 16384;
}}
http {{
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 75s;
    client_body_temp_path {d}/tmp/body;
    proxy_temp_path {d}/tmp/proxy;
    fastcgi_temp_path {d}/tmp/fastcgi;
    uwsgi_temp_path {d}/tmp/uwsgi;
    scgi_temp_path {d}/tmp/scgi;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_certificate {cert};
    ssl_certificate_key {key};
    ssl_session_cache shared:SSL:10m;
    ssl_session_timeout 1h;
    ssl_session_tickets on;
    ssl_prefer_server_ciphers off;
    upstream origin {{
        server {origin};
        keepalive 1024;
        keepalive_requests 1000000;
        keepalive_timeout 60s;
    }}
    server {{
        listen 127.0.0.1:{port} ssl http2 backlog=4096;
        http2_max_concurrent_streams 128;
        location / {{
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_buffers 16 16k;
            proxy_busy_buffers_size 64k;
            proxy_max_temp_file_size 0;
        }}
    }}
}}
",
        cert = certs.cert.display(),
        key = certs.key.display(),
    )
}

/// HAProxy terminating TLS: as the plain benchmark's (one thread, keep-alive both ways,
/// `http-reuse always`), plus `ssl crt` with ALPN h2 and http/1.1, TLS 1.2 minimum, and
/// resumption as HAProxy's docs advise: a session cache of 20,000 (`tune.ssl.cachesize`),
/// sessions kept 1 h (`tune.ssl.lifetime`, as nginx's timeout) and tickets on (its default:
/// no `no-tls-tickets`).
pub fn haproxy_tls_conf(port: u16, origin: SocketAddr, certs: &Certs) -> String {
    format!(
        "global
    nbthread 1
    maxconn 9000
    ssl-default-bind-options ssl-min-ver TLSv1.2
    tune.ssl.cachesize 20000
    tune.ssl.lifetime 3600

defaults
    mode http
    maxconn 9000
    option http-keep-alive
    option forwardfor
    http-reuse always
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout http-keep-alive 60s

frontend bench
    bind 127.0.0.1:{port} ssl crt {crt} alpn h2,http/1.1
    http-request set-header X-Forwarded-Proto https
    default_backend origin

backend origin
    server origin {origin}
",
        crt = certs.combined.display()
    )
}

/// Portico as in the plain benchmark (one thread, one pool, catch-all route), plus
/// `node.tls_listen` on `tls_port` and the certificate for [`HOST`].
pub fn portico_tls_conf(
    port: u16,
    tls_port: u16,
    admin: u16,
    origin: SocketAddr,
    threads: usize,
    certs: &Certs,
) -> Result<String> {
    let mut doc: serde_json::Value =
        serde_json::from_str(&portico_conf(port, admin, origin, threads, None))?;
    doc["node"]["tls_listen"] = format!("127.0.0.1:{tls_port}").into();
    doc["certificates"] = serde_json::json!([{
        "name": "bench", "hosts": [HOST],
        "cert_file": certs.cert, "key_file": certs.key,
    }]);
    Ok(serde_json::to_string_pretty(&doc)? + "\n")
}

/// The peers of this benchmark.
pub const PEERS: [&str; 3] = ["portico", "nginx", "haproxy"];

/// Starts peer `name` on the proxy CPUs; `Running::addr` is its TLS listener.
pub fn start(
    name: &str,
    dir: &Path,
    place: &Placement,
    origin: SocketAddr,
    threads: usize,
    certs: &Certs,
) -> Result<Running> {
    let tls_port = crate::procs::free_port()?;
    let addr: SocketAddr = ([127, 0, 0, 1], tls_port).into();
    let cpus = place.proxy_cpus.as_deref();
    let dir = dir.join(format!("{name}-tls"));
    std::fs::create_dir_all(&dir)?;
    let mut admin_addr = None;
    let (cmd, config) = match name {
        "portico" => {
            let bin = workspace_bin("portico");
            if !bin.is_file() {
                bail!(
                    "{} not found: cargo build --release -p portico",
                    bin.display()
                );
            }
            let (port, admin) = (crate::procs::free_port()?, crate::procs::free_port()?);
            admin_addr = Some(SocketAddr::from(([127, 0, 0, 1], admin)));
            let conf = portico_tls_conf(port, tls_port, admin, origin, threads, certs)?;
            let path = dir.join("portico.json");
            std::fs::write(&path, &conf)?;
            let mut cmd = pinned(cpus, &bin);
            cmd.arg("--config").arg(&path);
            (cmd, conf)
        }
        "nginx" => {
            let nginx = which("nginx").context("nginx is not installed")?;
            nginx_prefix(&dir)?;
            let conf = nginx_tls_conf(&dir, tls_port, origin, certs);
            let path = dir.join("nginx.conf");
            std::fs::write(&path, &conf)?;
            let mut cmd = pinned(cpus, &nginx);
            cmd.arg("-p")
                .arg(&dir)
                .arg("-e")
                .arg(dir.join("error.log"))
                .arg("-c")
                .arg(&path)
                .arg("-g")
                .arg("daemon off;");
            (cmd, conf)
        }
        "haproxy" => {
            let haproxy = which("haproxy").context("haproxy is not installed")?;
            let conf = haproxy_tls_conf(tls_port, origin, certs);
            let path = dir.join("haproxy.cfg");
            std::fs::write(&path, &conf)?;
            let mut cmd = pinned(cpus, &haproxy);
            cmd.arg("-f").arg(&path).arg("-db");
            (cmd, conf)
        }
        other => bail!("unknown TLS peer {other:?} (portico, nginx, haproxy)"),
    };
    let mut proc = Proc::spawn(&format!("{name}-tls"), cmd, &dir)?;
    let waited = wait_port(addr, Duration::from_secs(15));
    proc.check_alive()?;
    waited.with_context(|| format!("{name} did not start"))?;
    // One request over TLS must answer 200 (Portico: after its first probe).
    let probe = HandshakeClient {
        addr,
        sni: HOST.into(),
        connections: 1,
        duration: Duration::from_millis(200),
        resume: false,
    };
    let mut last = String::new();
    for _ in 0..25 {
        match probe.run() {
            Ok(r) if r.requests > 0 && r.errors == 0 => {
                return Ok(Running {
                    name: name.into(),
                    addr,
                    proc,
                    config,
                    admin: admin_addr,
                    access_log: None,
                });
            }
            Ok(r) => last = format!("{} answered, {} errors", r.requests, r.errors),
            Err(e) => last = format!("{e:#}"),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("{name} does not answer GET / over TLS with 200: {last}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn certs() -> Certs {
        Certs {
            ca: "/c/ca.pem".into(),
            cert: "/c/server.pem".into(),
            key: "/c/server-key.pem".into(),
            combined: "/c/server-combined.pem".into(),
        }
    }

    fn origin() -> SocketAddr {
        "127.0.0.1:9000".parse().unwrap()
    }

    #[test]
    fn nginx_terminates_tls_with_h2_and_session_reuse() {
        let c = nginx_tls_conf(Path::new("/tmp/x"), 8443, origin(), &certs());
        for needle in [
            "listen 127.0.0.1:8443 ssl http2",
            "ssl_certificate /c/server.pem;",
            "ssl_certificate_key /c/server-key.pem;",
            "ssl_session_cache shared:SSL:10m;",
            "ssl_protocols TLSv1.2 TLSv1.3;",
            "keepalive 1024;",
            "worker_processes 1;",
        ] {
            assert!(c.contains(needle), "missing {needle}");
        }
        assert_eq!(c.matches('{').count(), c.matches('}').count());
    }

    #[test]
    fn haproxy_terminates_tls_with_h2() {
        let c = haproxy_tls_conf(8443, origin(), &certs());
        assert!(c.contains("bind 127.0.0.1:8443 ssl crt /c/server-combined.pem alpn h2,http/1.1"));
        assert!(c.contains("nbthread 1"));
        assert!(c.contains("http-reuse always"));
    }

    #[test]
    fn portico_tls_config_is_valid() {
        let text = portico_tls_conf(8080, 8443, 9901, origin(), 1, &certs()).unwrap();
        let config = portico_core::config::parse(&text).expect("valid Portico config");
        assert_eq!(config.node.tls_listen.as_deref(), Some("127.0.0.1:8443"));
        assert!(text.contains("/c/server-key.pem"), "{text}");
    }
}
