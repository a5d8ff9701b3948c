//! The proxies under attack, each configured for an edge as its own docs advise, in front of
//! the same two `portico-origin`s, with a TLS listener (HTTP/2 by ALPN) beside the plain one;
//! and a variant of each for a 1,024-descriptor limit.

use crate::procs::{Proc, free_port, wait_port};
use crate::tls_bench::peers::{Certs, HOST as TLS_HOST};
use anyhow::{Context, Result};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// A proxy under attack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// This repository's `portico`.
    Portico,
    /// Debian's nginx.
    Nginx,
    /// Debian's HAProxy.
    Haproxy,
}

impl Kind {
    /// In table order.
    pub const ALL: [Kind; 3] = [Kind::Portico, Kind::Nginx, Kind::Haproxy];

    /// The column name.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Portico => "Portico",
            Kind::Nginx => "nginx",
            Kind::Haproxy => "HAProxy",
        }
    }
}

/// The descriptor limit of the low-fd variant.
pub const LOW_FD_LIMIT: u32 = 1024;

/// What a config depends on.
#[derive(Debug, Clone)]
pub struct Setup {
    /// Proxy port.
    pub port: u16,
    /// Admin port (Portico).
    pub admin: u16,
    /// The two origins' ports.
    pub origins: Vec<(String, u16)>,
    /// Sized for [`LOW_FD_LIMIT`] descriptors.
    pub low_fd: bool,
    /// `node.limits` for Portico (JSON object), when the build accepts it.
    pub portico_limits: Option<String>,
    /// Working directory (nginx's temp paths and pid).
    pub dir: PathBuf,
    /// The TLS listener, if any.
    pub tls: Option<TlsSetup>,
}

/// A TLS listener beside the plain one: `h2` and `http/1.1` by ALPN, one certificate.
#[derive(Debug, Clone)]
pub struct TlsSetup {
    /// Its port.
    pub port: u16,
    /// The certificate for [`TLS_HOST`] (`bench-tls`'s, from `portico-demo-certs`).
    pub certs: Certs,
}

/// Portico: its defaults (SPEC part 2's `node.limits` defaults: 10 s for a head, 60 s idle,
/// 32 KiB heads; on TLS the same 10 s bounds the handshake and the first request, h2 at most
/// 100 streams), probes every second, a 10 s response timeout like the peers'; for the low-fd
/// variant `max_connections` below the descriptor limit (each proxied client needs two).
pub fn portico(s: &Setup) -> String {
    let origins: Vec<String> = s
        .origins
        .iter()
        .map(|(n, p)| format!(r#"{{ "name": "{n}", "address": "127.0.0.1:{p}" }}"#))
        .collect();
    let limits = s
        .portico_limits
        .as_ref()
        .map_or(String::new(), |l| format!(r#", "limits": {l}"#));
    let (tls_listen, certificates) = match &s.tls {
        Some(t) => (
            format!(r#", "tls_listen": "127.0.0.1:{}""#, t.port),
            format!(
                r#",
  "certificates": [{{ "name": "hostile", "hosts": ["{TLS_HOST}"], "cert_file": "{}", "key_file": "{}" }}]"#,
                t.certs.cert.display(),
                t.certs.key.display()
            ),
        ),
        None => (String::new(), String::new()),
    };
    format!(
        r#"{{
  "node": {{ "region": "hostile", "listen": "127.0.0.1:{port}"{tls_listen}, "admin_listen": "127.0.0.1:{admin}", "threads": 1{limits} }},
  "pools": [{{
    "name": "web",
    "health_probe": {{ "path": "/", "method": "HEAD", "interval_ms": 1000, "timeout_ms": 500 }},
    "timeouts": {{ "connect_ms": 1000, "response_ms": 10000 }},
    "origins": [ {origins} ]
  }}],
  "routes": [{{ "name": "all", "hosts": ["*"], "paths": ["/*"], "pool": "web" }}]{certificates}
}}
"#,
        port = s.port,
        admin = s.admin,
        origins = origins.join(", "),
    )
}

/// nginx per its docs for a proxy facing the internet: `client_header_timeout` and
/// `client_body_timeout` 10 s (the "Mitigating DDoS Attacks with NGINX" advice is 5–10 s),
/// `keepalive_timeout` 60 s, the default `large_client_header_buffers 4 8k`,
/// `reset_timedout_connection on`, request bodies buffered before the upstream is picked
/// (`proxy_request_buffering on`, the default), passive health (`max_fails`); for the low-fd
/// variant `worker_rlimit_nofile` at the limit and `worker_connections` half of it. TLS:
/// `listen … ssl http2` with TLS 1.2/1.3 and a shared session cache (as `bench-tls`); nginx
/// 1.22 has no `ssl_handshake_timeout` (1.25.3), `client_header_timeout` bounds the handshake
/// and the HTTP/2 preface, `keepalive_timeout` an idle HTTP/2 connection, its defaults
/// `http2_max_concurrent_streams 128` and `keepalive_requests 1000` the streams.
pub fn nginx(s: &Setup) -> String {
    let d = s.dir.display();
    let servers: String = s
        .origins
        .iter()
        .map(|(_, p)| format!("        server 127.0.0.1:{p} max_fails=1 fail_timeout=10s;\n"))
        .collect();
    let (rlimit, conns) = if s.low_fd {
        (
            format!("worker_rlimit_nofile {LOW_FD_LIMIT};\n"),
            LOW_FD_LIMIT / 2,
        )
    } else {
        (String::new(), 4096)
    };
    let tls = s.tls.as_ref().map_or(String::new(), |t| {
        format!(
            "        listen 127.0.0.1:{} ssl http2;
        ssl_certificate {};
        ssl_certificate_key {};
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_cache shared:SSL:10m;
",
            t.port,
            t.certs.cert.display(),
            t.certs.key.display()
        )
    });
    format!(
        r#"worker_processes 1;
{rlimit}pid {d}/nginx.pid;
error_log {d}/nginx-error.log warn;
events {{ worker_connections {conns}; }}
http {{
    access_log off;
    client_body_temp_path {d}/client_temp;
    proxy_temp_path {d}/proxy_temp;
    fastcgi_temp_path {d}/fastcgi_temp;
    uwsgi_temp_path {d}/uwsgi_temp;
    scgi_temp_path {d}/scgi_temp;
    client_header_timeout 10s;
    client_body_timeout 10s;
    send_timeout 10s;
    keepalive_timeout 60s;
    large_client_header_buffers 4 8k;
    client_max_body_size 1m;
    reset_timedout_connection on;
    upstream pool {{
{servers}        keepalive 64;
    }}
    server {{
        listen 127.0.0.1:{port};
{tls}        location / {{
            proxy_pass http://pool;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_connect_timeout 1s;
            proxy_read_timeout 10s;
            proxy_send_timeout 10s;
            proxy_next_upstream error timeout http_502 http_503 http_504;
        }}
    }}
}}
"#,
        port = s.port,
    )
}

/// HAProxy per its configuration manual for an edge: `timeout http-request 10s` (the whole
/// head, "a few seconds" advised), `timeout http-keep-alive 60s`, `option http-buffer-request`
/// (waits for the body before choosing a server, with `timeout http-request` covering it:
/// the manual's protection against slow POSTs), active checks plus `observe layer7`; for the
/// low-fd variant `ulimit-n` at the limit and `maxconn` below half of it. TLS: a frontend
/// binding `ssl crt … alpn h2,http/1.1` (TLS 1.2 minimum, as `bench-tls`) with
/// `timeout client 10s`, which in HAProxy 2.6 also bounds the handshake (`timeout client-hs`
/// came in 2.8) and equals `timeout server` as the manual recommends; `timeout http-request`
/// bounds an HTTP/2 connection's wait for its first stream, `timeout http-keep-alive` an idle
/// one, `tune.h2.max-concurrent-streams` is left at 100.
pub fn haproxy(s: &Setup) -> String {
    let servers: String = s
        .origins
        .iter()
        .map(|(n, p)| {
            format!(
                "    server {n} 127.0.0.1:{p} check inter 1s fall 2 rise 2 observe layer7 error-limit 5 on-error mark-down\n"
            )
        })
        .collect();
    let global = if s.low_fd {
        format!(
            "    maxconn {}\n    ulimit-n {LOW_FD_LIMIT}\n",
            LOW_FD_LIMIT / 2 - 24
        )
    } else {
        "    maxconn 4000\n".to_string()
    };
    let tls = s.tls.as_ref().map_or(String::new(), |t| {
        format!(
            "frontend fe_tls
    bind 127.0.0.1:{} ssl crt {} alpn h2,http/1.1 ssl-min-ver TLSv1.2
    timeout client 10s
    default_backend pool
",
            t.port,
            t.certs.combined.display()
        )
    });
    format!(
        r#"global
    nbthread 1
{global}defaults
    mode http
    timeout connect 1s
    timeout client 60s
    timeout server 10s
    timeout http-request 10s
    timeout http-keep-alive 60s
    timeout check 1s
    option http-keep-alive
    option http-buffer-request
    retries 3
    option redispatch 1
    retry-on all-retryable-errors
frontend fe
    bind 127.0.0.1:{port}
    default_backend pool
{tls}backend pool
    balance roundrobin
    option httpchk
    http-check send meth HEAD uri / hdr X-Portico-Health-Probe 1
    http-check expect status 200
{servers}"#,
        port = s.port,
    )
}

/// The config of `kind`.
pub fn render(kind: Kind, s: &Setup) -> String {
    match kind {
        Kind::Portico => portico(s),
        Kind::Nginx => nginx(s),
        Kind::Haproxy => haproxy(s),
    }
}

/// Where the attacks go and what they read.
#[derive(Debug, Clone)]
pub struct Target {
    /// The proxy's listener.
    pub addr: SocketAddr,
    /// Its TLS listener, if it has one.
    pub tls: Option<SocketAddr>,
    /// Portico's admin listener.
    pub admin: Option<SocketAddr>,
    /// The origins' control listeners (for `/stats`).
    pub controls: Vec<SocketAddr>,
    /// The proxy's process id (nginx: the master; its workers are found below it).
    pub pid: u32,
}

/// One running proxy and its two origins.
pub struct Instance {
    /// Which proxy.
    pub kind: Kind,
    /// What the attacks need.
    pub target: Target,
    /// The config it got.
    pub config: String,
    /// The proxy process (nginx: the master).
    pub proxy: Proc,
    /// The origins.
    pub origins: Vec<Proc>,
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Starts two origins and `kind` in front of them, under `dir`; with `certs`, a TLS listener too.
pub fn start(
    kind: Kind,
    bin: &Path,
    origin_bin: &Path,
    dir: &Path,
    low_fd: bool,
    portico_limits: Option<String>,
    certs: Option<&Certs>,
) -> Result<Instance> {
    std::fs::create_dir_all(dir)?;
    let mut origins = Vec::new();
    let mut ports = Vec::new();
    let mut controls = Vec::new();
    for name in ["a", "b"] {
        let (port, control) = (free_port()?, free_port()?);
        let mut c = Command::new(origin_bin);
        c.args([
            "--name",
            name,
            "--listen",
            &loopback(port).to_string(),
            "--control",
            &loopback(control).to_string(),
        ])
        .env("RUST_LOG", "warn");
        origins.push(Proc::spawn(&format!("origin-{name}"), c, dir)?);
        ports.push((name.to_string(), port));
        controls.push(loopback(control));
    }
    for (c, (_, p)) in controls.iter().zip(&ports) {
        wait_port(*c, Duration::from_secs(10))?;
        wait_port(loopback(*p), Duration::from_secs(10))?;
    }
    let setup = Setup {
        port: free_port()?,
        admin: free_port()?,
        origins: ports,
        low_fd,
        portico_limits,
        dir: dir.to_path_buf(),
        tls: certs
            .map(|c| {
                Ok::<_, std::io::Error>(TlsSetup {
                    port: free_port()?,
                    certs: c.clone(),
                })
            })
            .transpose()?,
    };
    let config = render(kind, &setup);
    let path = dir.join(match kind {
        Kind::Portico => "portico.json",
        Kind::Nginx => "nginx.conf",
        Kind::Haproxy => "haproxy.cfg",
    });
    std::fs::write(&path, &config)?;
    let mut args: Vec<String> = match kind {
        Kind::Portico => vec!["--config".into(), path.display().to_string()],
        Kind::Nginx => vec![
            "-p".into(),
            dir.display().to_string(),
            "-c".into(),
            path.display().to_string(),
            "-g".into(),
            "daemon off;".into(),
        ],
        Kind::Haproxy => vec!["-f".into(), path.display().to_string(), "-db".into()],
    };
    let mut cmd = if low_fd {
        // sh's ulimit sets the soft and hard limits; the proxy cannot raise them back.
        let mut c = Command::new("sh");
        c.arg("-c")
            .arg(format!("ulimit -n {LOW_FD_LIMIT} && exec \"$0\" \"$@\""))
            .arg(bin);
        c
    } else {
        Command::new(bin)
    };
    cmd.args(args.drain(..)).env("RUST_LOG", "warn");
    let mut proxy = Proc::spawn(&kind.name().to_ascii_lowercase(), cmd, dir)?;
    let addr = loopback(setup.port);
    if let Err(e) = wait_port(addr, Duration::from_secs(15)) {
        proxy.check_alive()?;
        return Err(e).context(format!("{} did not start", kind.name()));
    }
    let admin = (kind == Kind::Portico).then(|| loopback(setup.admin));
    let tls = setup.tls.as_ref().map(|t| loopback(t.port));
    for a in admin.iter().chain(&tls) {
        wait_port(*a, Duration::from_secs(15))?;
    }
    let pid = proxy.pid();
    Ok(Instance {
        kind,
        target: Target {
            addr,
            tls,
            admin,
            controls,
            pid,
        },
        config,
        proxy,
        origins,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup(low_fd: bool) -> Setup {
        Setup {
            port: 8080,
            admin: 8081,
            origins: vec![("a".into(), 9001), ("b".into(), 9002)],
            low_fd,
            portico_limits: None,
            dir: PathBuf::from("/tmp/x"),
            tls: None,
        }
    }

    fn with_tls() -> Setup {
        Setup {
            tls: Some(TlsSetup {
                port: 8443,
                certs: Certs {
                    ca: "/c/ca.pem".into(),
                    cert: "/c/server.pem".into(),
                    key: "/c/server-key.pem".into(),
                    combined: "/c/server-combined.pem".into(),
                },
            }),
            ..setup(false)
        }
    }

    #[test]
    fn the_tls_listener_is_configured_beside_the_plain_one() {
        let n = nginx(&with_tls());
        for d in [
            "listen 127.0.0.1:8080;",
            "listen 127.0.0.1:8443 ssl http2;",
            "ssl_certificate /c/server.pem;",
        ] {
            assert!(n.contains(d), "nginx lacks {d}");
        }
        assert!(!nginx(&setup(false)).contains("ssl"));
        let h = haproxy(&with_tls());
        for d in [
            "bind 127.0.0.1:8443 ssl crt /c/server-combined.pem alpn h2,http/1.1",
            "frontend fe_tls\n",
            "    timeout client 10s\n",
        ] {
            assert!(h.contains(d), "haproxy lacks {d}");
        }
        assert!(!haproxy(&setup(false)).contains("fe_tls"));
        let c = portico_core::config::parse(&portico(&with_tls())).unwrap();
        assert_eq!(c.node.tls_listen.as_deref(), Some("127.0.0.1:8443"));
        assert_eq!(c.certificates.len(), 1);
        assert!(
            portico_core::config::parse(&portico(&setup(false)))
                .unwrap()
                .certificates
                .is_empty()
        );
    }

    #[test]
    fn peers_get_their_edge_directives() {
        let n = nginx(&setup(false));
        for d in [
            "client_header_timeout 10s;",
            "keepalive_timeout 60s;",
            "server 127.0.0.1:9002",
        ] {
            assert!(n.contains(d), "nginx lacks {d}");
        }
        assert!(nginx(&setup(true)).contains("worker_rlimit_nofile 1024;"));
        let h = haproxy(&setup(false));
        for d in [
            "timeout http-request 10s",
            "option http-buffer-request",
            "server b 127.0.0.1:9002",
        ] {
            assert!(h.contains(d), "haproxy lacks {d}");
        }
        assert!(haproxy(&setup(true)).contains("ulimit-n 1024"));
    }

    #[test]
    fn the_portico_config_is_valid() {
        let c = portico_core::config::parse(&portico(&setup(false))).unwrap();
        assert_eq!(c.pools[0].origins.len(), 2);
    }
}
