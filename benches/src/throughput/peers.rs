//! The origin and the proxies under test: their configs (each at its documented best) and processes.

use crate::procs::{Proc, nginx_prefix, pinned, wait_port, which, workspace_bin};
use anyhow::{Context, Result, bail};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Size of the large response, and the name of the file the nginx origin serves it from.
pub const LARGE_BYTES: usize = 1 << 20;

/// A proxy under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerKind {
    /// This repository's `portico`.
    Portico,
    /// Debian's nginx.
    Nginx,
    /// Debian's HAProxy.
    Haproxy,
    /// The minimal Pingora proxy (one upstream, no header work): `pingora-minimal` from this
    /// workspace, or the binary given with `--pingora-minimal`.
    PingoraMinimal,
    /// Portico with `node.access_log` pointed at a file in the bench's directory (otherwise
    /// the same config as `Portico`): what the access log costs.
    PorticoAccessLog,
    /// nginx with `access_log FILE combined buffer=64k` (otherwise the same config as
    /// `Nginx`): what nginx's access log costs, for comparison. Not in the default peers.
    NginxAccessLog,
    /// Another `portico` binary (given with `--portico-before`, e.g. main before a change)
    /// with the same config as `Portico`, measured in the same rounds: before and after
    /// under the same load and noise. Not in the default peers.
    PorticoBefore,
}

impl PeerKind {
    /// Every peer, in the order `--help` lists them.
    pub const ALL: [PeerKind; 7] = [
        PeerKind::Portico,
        PeerKind::PorticoBefore,
        PeerKind::PorticoAccessLog,
        PeerKind::Nginx,
        PeerKind::NginxAccessLog,
        PeerKind::Haproxy,
        PeerKind::PingoraMinimal,
    ];

    /// The name used in tables and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            PeerKind::Portico => "portico",
            PeerKind::Nginx => "nginx",
            PeerKind::Haproxy => "haproxy",
            PeerKind::PingoraMinimal => "pingora-minimal",
            PeerKind::PorticoAccessLog => "portico+accesslog",
            PeerKind::NginxAccessLog => "nginx+accesslog",
            PeerKind::PorticoBefore => "portico-before",
        }
    }

    /// Parses a name from the command line.
    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == s)
    }

    /// Every name, comma-separated (for error messages).
    pub fn names() -> String {
        Self::ALL.map(PeerKind::name).join(", ")
    }

    /// Whether this peer writes an access log (to a file the bench empties between runs).
    pub fn logs_access(self) -> bool {
        matches!(self, PeerKind::PorticoAccessLog | PeerKind::NginxAccessLog)
    }

    /// For a peer with the access log on, the same proxy with it off.
    pub fn without_access_log(self) -> Option<PeerKind> {
        match self {
            PeerKind::PorticoAccessLog => Some(PeerKind::Portico),
            PeerKind::NginxAccessLog => Some(PeerKind::Nginx),
            _ => None,
        }
    }
}

/// Which server plays the origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OriginKind {
    /// nginx answering `return 200` and serving the large body from a file.
    Nginx,
    /// This repository's `portico-origin`.
    PorticoOrigin,
}

/// A running server: the process, where it listens, and the config it got.
pub struct Running {
    /// Peer name.
    pub name: String,
    /// Where it listens.
    pub addr: SocketAddr,
    /// The process (for nginx: its master; workers are found below it).
    pub proc: Proc,
    /// The config text it was started with, for the report.
    pub config: String,
    /// Portico's admin listener (for `/metrics`), if this is Portico.
    pub admin: Option<SocketAddr>,
    /// The access log file this peer writes, if its access log is on.
    pub access_log: Option<PathBuf>,
}

/// Temporary-file directives so nginx never touches `/var/lib/nginx`.
fn nginx_temp_paths(dir: &Path) -> String {
    let d = dir.display();
    format!(
        "    client_body_temp_path {d}/tmp/body;
    proxy_temp_path {d}/tmp/proxy;
    fastcgi_temp_path {d}/tmp/fastcgi;
    uwsgi_temp_path {d}/tmp/uwsgi;
    scgi_temp_path {d}/tmp/scgi;
"
    )
}

/// nginx as the origin: `return 200` for `/`, a static file for `/bytes/1048576`.
pub fn nginx_origin_conf(dir: &Path, port: u16) -> String {
    let d = dir.display();
    format!(
        "# nginx as the origin: one worker, `return 200` from memory, the large body by sendfile.
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{
    worker_connections 16384;
}}
http {{
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 75s;
    sendfile on;
    tcp_nopush on;
{temp}    server {{
        listen 127.0.0.1:{port} backlog=4096;
        default_type text/plain;
        location / {{
            return 200 \"hello, world\\n\";
        }}
        location /bytes/ {{
            root {d}/www;
            default_type application/octet-stream;
        }}
    }}
}}
",
        temp = nginx_temp_paths(dir)
    )
}

/// nginx as a reverse proxy, per nginx's own tuning advice: one worker, HTTP/1.1 and
/// keep-alive towards the origin, no access log (unless `access_log` names a file: then the
/// `combined` format through a 64 KiB buffer), no per-connection request cap, big bodies
/// streamed through memory buffers rather than spooled to disk.
pub fn nginx_proxy_conf(
    dir: &Path,
    port: u16,
    origin: SocketAddr,
    access_log: Option<&Path>,
) -> String {
    let d = dir.display();
    let access_log = match access_log {
        None => "access_log off;".to_string(),
        Some(path) => format!("access_log {} combined buffer=64k;", path.display()),
    };
    format!(
        "worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{
    worker_connections 16384;
}}
http {{
    {access_log}
    keepalive_requests 1000000;
    keepalive_timeout 75s;
{temp}    upstream origin {{
        server {origin};
        keepalive 1024;
        keepalive_requests 1000000;
        keepalive_timeout 60s;
    }}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
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
        temp = nginx_temp_paths(dir)
    )
}

/// HAProxy per its docs for a fast HTTP reverse proxy: one thread, keep-alive on both
/// sides, idle server connections shared between clients (`http-reuse always`).
pub fn haproxy_conf(port: u16, origin: SocketAddr) -> String {
    format!(
        "global
    nbthread 1
    maxconn 9000

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
    bind 127.0.0.1:{port}
    http-request set-header X-Forwarded-Proto http
    default_backend origin

backend origin
    server origin {origin}
"
    )
}

/// Portico with one pool of one origin and a catch-all route, `threads` worker threads, and
/// `node.access_log` null (off) or the file `access_log`.
pub fn portico_conf(
    port: u16,
    admin: u16,
    origin: SocketAddr,
    threads: usize,
    access_log: Option<&Path>,
) -> String {
    let access_log = match access_log {
        None => "null".to_string(),
        Some(p) => serde_json::Value::String(p.display().to_string()).to_string(),
    };
    format!(
        r#"{{
  "node": {{ "region": "bench", "listen": "127.0.0.1:{port}", "admin_listen": "127.0.0.1:{admin}", "threads": {threads}, "access_log": {access_log} }},
  "pools": [{{
    "name": "origin",
    "health_probe": {{ "path": "/", "method": "HEAD", "interval_ms": 5000, "timeout_ms": 2000, "expected_status": [200] }},
    "timeouts": {{ "connect_ms": 1000, "response_ms": 30000 }},
    "origins": [{{ "name": "origin-1", "address": "{origin}" }}]
  }}],
  "routes": [{{ "name": "all", "hosts": ["*"], "paths": ["/*"], "pool": "origin" }}]
}}
"#
    )
}

/// Where each piece runs.
#[derive(Debug, Clone)]
pub struct Placement {
    /// CPU list for the proxy under test (`taskset -c`).
    pub proxy_cpus: Option<String>,
    /// CPU list for the origin and wrk.
    pub load_cpus: Option<String>,
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

fn nginx_command(nginx: &Path, cpus: Option<&str>, dir: &Path, conf: &Path) -> Command {
    let mut cmd = pinned(cpus, nginx);
    cmd.arg("-p")
        .arg(dir)
        .arg("-e")
        .arg(dir.join("error.log"))
        .arg("-c")
        .arg(conf)
        .arg("-g")
        .arg("daemon off;");
    cmd
}

/// Starts the origin on the load CPUs.
pub fn start_origin(kind: OriginKind, dir: &Path, place: &Placement) -> Result<Running> {
    let port = crate::procs::free_port()?;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let cpus = place.load_cpus.as_deref();
    let (proc, config) = match kind {
        OriginKind::Nginx => {
            let nginx = which("nginx").context("nginx is not installed")?;
            let dir = dir.join("origin-nginx");
            nginx_prefix(&dir)?;
            let www = dir.join("www/bytes");
            std::fs::create_dir_all(&www)?;
            let body: Vec<u8> = (0..LARGE_BYTES).map(|i| b'a' + (i % 26) as u8).collect();
            std::fs::write(www.join(LARGE_BYTES.to_string()), body)?;
            let conf = nginx_origin_conf(&dir, port);
            let path = dir.join("nginx.conf");
            write(&path, &conf)?;
            let cmd = nginx_command(&nginx, cpus, &dir, &path);
            (Proc::spawn("origin-nginx", cmd, &dir)?, conf)
        }
        OriginKind::PorticoOrigin => {
            let bin = workspace_bin("portico-origin");
            if !bin.is_file() {
                bail!(
                    "{} not found: cargo build --release -p portico-origin",
                    bin.display()
                );
            }
            let mut cmd = pinned(cpus, &bin);
            let args = [
                "--name".to_string(),
                "origin".to_string(),
                "--listen".to_string(),
                addr.to_string(),
                "--threads".to_string(),
                "1".to_string(),
            ];
            cmd.args(&args);
            (
                Proc::spawn("origin-portico", cmd, dir)?,
                format!("portico-origin {}", args.join(" ")),
            )
        }
    };
    let name = match kind {
        OriginKind::Nginx => "origin (nginx)",
        OriginKind::PorticoOrigin => "origin (portico-origin)",
    };
    ready(Running {
        name: name.into(),
        addr,
        proc,
        config,
        admin: None,
        access_log: None,
    })
}

/// Starts one proxy on the proxy CPUs, in front of `origin`.
pub fn start_proxy(
    kind: PeerKind,
    dir: &Path,
    place: &Placement,
    origin: SocketAddr,
    portico_threads: usize,
    pingora_minimal: Option<&Path>,
    portico_before: Option<&Path>,
) -> Result<Running> {
    let port = crate::procs::free_port()?;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let cpus = place.proxy_cpus.as_deref();
    let dir = dir.join(kind.name());
    std::fs::create_dir_all(&dir)?;
    let access_log = kind.logs_access().then(|| dir.join("access.log"));
    if let Some(log) = &access_log {
        // Start empty (a leftover from an earlier run in the same --dir would be appended to).
        let _ = std::fs::remove_file(log);
    }
    let mut admin_addr = None;
    let (cmd, config) = match kind {
        PeerKind::Portico | PeerKind::PorticoAccessLog | PeerKind::PorticoBefore => {
            let bin = match kind {
                PeerKind::PorticoBefore => portico_before
                    .context("--portico-before BIN not given")?
                    .to_path_buf(),
                _ => workspace_bin("portico"),
            };
            if !bin.is_file() {
                bail!(
                    "{} not found: cargo build --release -p portico",
                    bin.display()
                );
            }
            let admin = crate::procs::free_port()?;
            admin_addr = Some(SocketAddr::from(([127, 0, 0, 1], admin)));
            let conf = portico_conf(port, admin, origin, portico_threads, access_log.as_deref());
            let path = dir.join("portico.json");
            write(&path, &conf)?;
            let mut cmd = pinned(cpus, &bin);
            cmd.arg("--config").arg(&path);
            (cmd, conf)
        }
        PeerKind::Nginx | PeerKind::NginxAccessLog => {
            let nginx = which("nginx").context("nginx is not installed")?;
            nginx_prefix(&dir)?;
            let conf = nginx_proxy_conf(&dir, port, origin, access_log.as_deref());
            let path = dir.join("nginx.conf");
            write(&path, &conf)?;
            (nginx_command(&nginx, cpus, &dir, &path), conf)
        }
        PeerKind::Haproxy => {
            let haproxy = which("haproxy").context("haproxy is not installed")?;
            let conf = haproxy_conf(port, origin);
            let path = dir.join("haproxy.cfg");
            write(&path, &conf)?;
            let mut cmd = pinned(cpus, &haproxy);
            cmd.arg("-f").arg(&path).arg("-db");
            (cmd, conf)
        }
        PeerKind::PingoraMinimal => {
            let bin: PathBuf = pingora_minimal
                .context("--pingora-minimal BIN not given")?
                .to_path_buf();
            let mut cmd = pinned(cpus, &bin);
            cmd.arg(addr.to_string()).arg(origin.to_string());
            let conf = format!(
                "{} {addr} {origin}  (ProxyHttp with only upstream_peer; ServerConf threads 1, upstream_keepalive_pool_size {}, otherwise Pingora's defaults)",
                bin.display(),
                portico::node::UPSTREAM_KEEPALIVE_POOL
            );
            (cmd, conf)
        }
    };
    let proc = Proc::spawn(kind.name(), cmd, &dir)?;
    ready(Running {
        name: kind.name().into(),
        addr,
        proc,
        config,
        admin: admin_addr,
        access_log,
    })
}

/// Waits for the listener and checks that `GET /` answers 200.
fn ready(mut r: Running) -> Result<Running> {
    let waited = wait_port(r.addr, Duration::from_secs(15));
    r.proc.check_alive()?;
    waited.with_context(|| format!("{} did not start", r.name))?;
    // Portico answers 502 until its first probe; allow a moment.
    let mut last = None;
    for _ in 0..50 {
        match http_get(r.addr, "/") {
            Ok((200, _)) => return Ok(r),
            other => last = Some(other),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("{} does not answer GET / with 200: {last:?}", r.name)
}

/// A one-shot `GET path` over a fresh connection: the status and the body length.
pub fn http_get(addr: SocketAddr, path: &str) -> Result<(u16, usize)> {
    parse_response(&http_get_raw(addr, path)?)
}

/// A one-shot `GET path`: the whole response, head and body.
fn http_get_raw(addr: SocketAddr, path: &str) -> Result<Vec<u8>> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: bench.local\r\nConnection: close\r\n\r\n"
    )?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    Ok(buf)
}

/// The value of the unlabelled counter `name` in the Prometheus text at `admin`'s `/metrics`.
pub fn metric(admin: SocketAddr, name: &str) -> Option<f64> {
    let raw = http_get_raw(admin, "/metrics").ok()?;
    let text = String::from_utf8_lossy(&raw);
    parse_metric(&text, name)
}

/// The value of the unlabelled sample `name` in Prometheus text.
pub fn parse_metric(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        let (n, v) = l.split_once(' ')?;
        (n == name).then(|| v.trim().parse().ok()).flatten()
    })
}

/// Status and body length of a complete (closed) HTTP/1.1 response.
pub fn parse_response(buf: &[u8]) -> Result<(u16, usize)> {
    let end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("no end of headers")?;
    let head = std::str::from_utf8(&buf[..end]).context("headers are not UTF-8")?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("no status code")?;
    Ok((status, buf.len() - end - 4))
}

#[cfg(test)]
mod tests {
    use super::*;
    use portico_core::config::AccessLogTarget;

    fn origin() -> SocketAddr {
        "127.0.0.1:9000".parse().unwrap()
    }

    #[test]
    fn nginx_proxy_is_configured_for_speed() {
        let c = nginx_proxy_conf(Path::new("/tmp/x"), 8080, origin(), None);
        for needle in [
            "worker_processes 1;",
            "access_log off;",
            "keepalive 1024;",
            "proxy_http_version 1.1;",
            "proxy_set_header Connection \"\";",
            "server 127.0.0.1:9000;",
            "listen 127.0.0.1:8080",
            "proxy_max_temp_file_size 0;",
        ] {
            assert!(c.contains(needle), "missing {needle}");
        }
        assert_eq!(
            c.matches('{').count(),
            c.matches('}').count(),
            "balanced braces"
        );
    }

    #[test]
    fn nginx_origin_serves_both_bodies() {
        let c = nginx_origin_conf(Path::new("/tmp/x"), 9000);
        assert!(c.contains("return 200"));
        assert!(c.contains("root /tmp/x/www;"));
        assert!(c.contains("worker_processes 1;"));
        assert_eq!(c.matches('{').count(), c.matches('}').count());
    }

    #[test]
    fn haproxy_is_configured_for_speed() {
        let c = haproxy_conf(8081, origin());
        for needle in [
            "nbthread 1",
            "option http-keep-alive",
            "http-reuse always",
            "bind 127.0.0.1:8081",
            "server origin 127.0.0.1:9000",
        ] {
            assert!(c.contains(needle), "missing {needle}");
        }
    }

    #[test]
    fn portico_config_is_valid() {
        let text = portico_conf(8082, 9901, origin(), 1, None);
        assert!(text.contains(r#""access_log": null"#), "{text}");
        let config = portico_core::config::parse(&text).expect("valid Portico config");
        assert_eq!(config.node.threads, 1);
        assert_eq!(config.pools[0].origins[0].address, "127.0.0.1:9000");
        assert_eq!(config.node.access_log, AccessLogTarget::Off);
    }

    #[test]
    fn portico_access_log_goes_to_the_file() {
        let log = Path::new("/tmp/bench dir/portico+accesslog/access.log");
        let text = portico_conf(8082, 9901, origin(), 1, Some(log));
        let config = portico_core::config::parse(&text).expect("valid Portico config");
        assert_eq!(
            config.node.access_log,
            AccessLogTarget::File("/tmp/bench dir/portico+accesslog/access.log".into())
        );
        // Everything else as without the log.
        let off = portico_conf(8082, 9901, origin(), 1, None);
        assert_eq!(
            text.replace(r#""/tmp/bench dir/portico+accesslog/access.log""#, "null"),
            off
        );
    }

    #[test]
    fn nginx_access_log_is_buffered_and_otherwise_the_same() {
        let dir = Path::new("/tmp/x");
        let on = nginx_proxy_conf(dir, 8080, origin(), Some(&dir.join("access.log")));
        assert!(on.contains("access_log /tmp/x/access.log combined buffer=64k;"));
        assert!(!on.contains("access_log off;"));
        let off = nginx_proxy_conf(dir, 8080, origin(), None);
        assert_eq!(
            on.replace(
                "access_log /tmp/x/access.log combined buffer=64k;",
                "access_log off;"
            ),
            off
        );
    }

    #[test]
    fn haproxy_logs_nothing() {
        // No `log` line: HAProxy sends no access log anywhere.
        assert!(!haproxy_conf(8081, origin()).contains("log "));
    }

    #[test]
    fn reads_an_unlabelled_counter() {
        let text = "# HELP portico_access_log_dropped_total x\n# TYPE portico_access_log_dropped_total counter\nportico_access_log_dropped_total 12\nportico_access_log_dropped_total_other 3\n";
        assert_eq!(
            parse_metric(text, "portico_access_log_dropped_total"),
            Some(12.0)
        );
        assert_eq!(parse_metric(text, "absent"), None);
    }

    #[test]
    fn peer_names_round_trip() {
        for k in PeerKind::ALL {
            assert_eq!(PeerKind::from_name(k.name()), Some(k));
            assert_eq!(k.logs_access(), k.without_access_log().is_some());
        }
        assert_eq!(PeerKind::from_name("envoy"), None);
        assert_eq!(
            PeerKind::from_name("portico+accesslog").and_then(PeerKind::without_access_log),
            Some(PeerKind::Portico)
        );
    }

    #[test]
    fn parses_responses() {
        assert_eq!(
            parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc").unwrap(),
            (200, 3)
        );
        assert!(parse_response(b"HTTP/1.1 200 OK\r\n").is_err());
    }
}
