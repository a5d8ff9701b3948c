//! The `rules` benchmark: what a realistic 10-rule set costs Portico, beside nginx and HAProxy
//! doing the same work and Portico with no rules in the same rounds; then how exactly each
//! one's per-client rate limit holds a client sending at 3x the limit.

use crate::procs::{Proc, nginx_prefix, pinned, wait_port, which, workspace_bin};
use crate::throughput::peers::{
    OriginKind, PeerKind, Placement, Running, http_get, start_origin, start_proxy,
};
use crate::throughput::stats::{fmt_ratio, ratio};
use crate::throughput::wrk::WrkReport;
use crate::throughput::{Case, CaseKind, CaseResult, Options, run_case};
use anyhow::{Context, Result, bail};
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

/// The path every throughput request asks for: it passes through the rewrite and the regex
/// rule, as an API call would.
pub const PATH: &str = "/v1/users/42";

/// The per-client limit of the accuracy runs, requests per second.
pub const LIMIT: u32 = 100;

/// The burst of the accuracy runs (Portico's `burst`, nginx's `burst`).
pub const BURST: u32 = 10;

/// Portico's 10 rules: security headers, a network block and an admin block that do not
/// match, a redirect by regex that does not match, a prefix rewrite, a regex that passes its
/// capture to the origin, a header-marked canary that does not match, a per-client rate limit
/// that is not reached, a header to the origin, and a `Cache-Control` for the API.
pub fn portico_rules_conf(port: u16, admin: u16, origin: SocketAddr, threads: usize) -> String {
    format!(
        r#"{{
  "node": {{ "region": "bench", "listen": "127.0.0.1:{port}", "admin_listen": "127.0.0.1:{admin}", "threads": {threads}, "access_log": null }},
  "pools": [
    {{ "name": "origin", "timeouts": {{ "connect_ms": 1000, "response_ms": 30000 }},
      "origins": [{{ "name": "origin-1", "address": "{origin}" }}] }},
    {{ "name": "canary", "origins": [{{ "name": "canary-1", "address": "{origin}" }}] }}
  ],
  "rule_sets": [{{ "name": "edge", "rules": [
    {{ "name": "security-headers", "then": {{ "response_headers": {{ "set": {{
        "Strict-Transport-Security": "max-age=63072000; includeSubDomains",
        "X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY" }} }} }} }},
    {{ "name": "block-network", "when": {{ "client_ips": ["198.51.100.0/24"] }},
      "then": {{ "respond": {{ "status": 403, "body": "blocked\n" }} }}, "stop": true }},
    {{ "name": "admin", "when": {{ "paths": ["/admin/*"] }}, "then": {{ "respond": {{ "status": 404 }} }} }},
    {{ "name": "old-docs", "when": {{ "path_regex": "^/old/(.*)$" }},
      "then": {{ "redirect": {{ "status": 301, "location": "https://{{host}}/new/{{1}}" }} }} }},
    {{ "name": "v1", "then": {{ "rewrite": {{ "path_prefix": {{ "from": "/v1/", "to": "/api/v1/" }} }} }} }},
    {{ "name": "user-id", "when": {{ "path_regex": "^/v1/users/([0-9]+)$" }},
      "then": {{ "request_headers": {{ "set": {{ "X-User-Id": "{{1}}" }} }} }} }},
    {{ "name": "canary", "when": {{ "headers": [{{ "name": "X-Canary", "equals": "1" }}] }}, "then": {{ "pool": "canary" }} }},
    {{ "name": "per-client", "then": {{ "rate_limit": {{ "key": "client_ip", "requests_per_second": 1000000 }} }} }},
    {{ "name": "edge-header", "then": {{ "request_headers": {{ "set": {{ "X-Edge": "portico" }} }} }} }},
    {{ "name": "api-no-store", "when": {{ "paths": ["/v1/*"] }},
      "then": {{ "response_headers": {{ "set": {{ "Cache-Control": "no-store" }} }} }} }}
  ] }}],
  "routes": [{{ "name": "all", "hosts": ["*"], "paths": ["/*"], "pool": "origin", "rule_sets": ["edge"] }}]
}}
"#
    )
}

/// The same ten rules for nginx (`geo`, `map`, `limit_req`, `return`, `rewrite`,
/// `proxy_set_header`, `add_header … always`), otherwise the throughput bench's proxy config.
pub fn nginx_rules_conf(dir: &Path, port: u16, origin: SocketAddr) -> String {
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
    upstream origin {{
        server {origin};
        keepalive 1024;
        keepalive_requests 1000000;
        keepalive_timeout 60s;
    }}
    upstream canary {{
        server {origin};
        keepalive 64;
    }}
    geo $blocked {{
        default 0;
        198.51.100.0/24 1;
    }}
    map $http_x_canary $pool {{
        default origin;
        \"1\" canary;
    }}
    map $uri $user_id {{
        default \"\";
        \"~^/v1/users/(?<id>[0-9]+)$\" $id;
    }}
    limit_req_zone $binary_remote_addr zone=per_client:10m rate=1000000r/s;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        if ($blocked) {{
            return 403 \"blocked\\n\";
        }}
        add_header Strict-Transport-Security \"max-age=63072000; includeSubDomains\" always;
        add_header X-Content-Type-Options nosniff always;
        add_header X-Frame-Options DENY always;
        location /admin/ {{
            return 404;
        }}
        location ~ ^/old/(.*)$ {{
            return 301 https://$host/new/$1;
        }}
        location /v1/ {{
            limit_req zone=per_client burst=1000000 nodelay;
            add_header Strict-Transport-Security \"max-age=63072000; includeSubDomains\" always;
            add_header X-Content-Type-Options nosniff always;
            add_header X-Frame-Options DENY always;
            add_header Cache-Control no-store always;
            rewrite ^/v1/(.*)$ /api/v1/$1 break;
            proxy_pass http://$pool;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-User-Id $user_id;
            proxy_set_header X-Edge portico;
            proxy_buffers 16 16k;
            proxy_busy_buffers_size 64k;
            proxy_max_temp_file_size 0;
        }}
        location / {{
            limit_req zone=per_client burst=1000000 nodelay;
            proxy_pass http://$pool;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Edge portico;
            proxy_buffers 16 16k;
            proxy_busy_buffers_size 64k;
            proxy_max_temp_file_size 0;
        }}
    }}
}}
"
    )
}

/// The same ten rules for HAProxy (ACLs, a stick table, `http-request`/`http-response`
/// actions, `use_backend`), otherwise the throughput bench's HAProxy config.
pub fn haproxy_rules_conf(port: u16, origin: SocketAddr) -> String {
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
    stick-table type ip size 100k expire 30s store http_req_rate(1s)
    http-request track-sc0 src
    http-request deny deny_status 429 if {{ sc_http_req_rate(0) gt 1000000 }}
    http-request return status 403 content-type text/plain string \"blocked\" if {{ src 198.51.100.0/24 }}
    http-request return status 404 if {{ path_beg /admin/ }}
    http-request redirect code 301 location https://%[req.hdr(host)]/new/%[path,regsub(^/old/,)] if {{ path_reg ^/old/(.*)$ }}
    http-request set-var(txn.api) bool(true) if {{ path_beg /v1/ }}
    http-request set-header X-User-Id %[path,regsub(^/v1/users/,)] if {{ path_reg ^/v1/users/([0-9]+)$ }}
    http-request set-path %[path,regsub(^/v1/,/api/v1/)] if {{ path_beg /v1/ }}
    http-request set-header X-Edge portico
    http-request set-header X-Forwarded-Proto http
    http-response set-header Strict-Transport-Security \"max-age=63072000; includeSubDomains\"
    http-response set-header X-Content-Type-Options nosniff
    http-response set-header X-Frame-Options DENY
    http-response set-header Cache-Control no-store if {{ var(txn.api) -m bool }}
    use_backend canary if {{ req.hdr(x-canary) -m str 1 }}
    default_backend origin

backend origin
    server origin {origin}

backend canary
    server canary {origin}
"
    )
}

/// Portico with only a per-client rate limit of [`LIMIT`]/s, burst [`BURST`].
pub fn portico_limit_conf(port: u16, admin: u16, origin: SocketAddr) -> String {
    format!(
        r#"{{
  "node": {{ "region": "bench", "listen": "127.0.0.1:{port}", "admin_listen": "127.0.0.1:{admin}", "threads": 1 }},
  "pools": [{{ "name": "origin", "origins": [{{ "name": "origin-1", "address": "{origin}" }}] }}],
  "rule_sets": [{{ "name": "edge", "rules": [
    {{ "name": "per-client", "then": {{ "rate_limit": {{ "key": "client_ip", "requests_per_second": {LIMIT}, "burst": {BURST} }} }} }}
  ] }}],
  "routes": [{{ "name": "all", "pool": "origin", "rule_sets": ["edge"] }}]
}}
"#
    )
}

/// nginx with `limit_req` of [`LIMIT`]r/s per client, `burst=`[`BURST`] `nodelay`, 429.
pub fn nginx_limit_conf(dir: &Path, port: u16, origin: SocketAddr) -> String {
    let d = dir.display();
    format!(
        "worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{
    worker_connections 4096;
}}
http {{
    access_log off;
    client_body_temp_path {d}/tmp/body;
    proxy_temp_path {d}/tmp/proxy;
    fastcgi_temp_path {d}/tmp/fastcgi;
    uwsgi_temp_path {d}/tmp/uwsgi;
    scgi_temp_path {d}/tmp/scgi;
    limit_req_zone $binary_remote_addr zone=per_client:10m rate={LIMIT}r/s;
    limit_req_status 429;
    upstream origin {{
        server {origin};
        keepalive 64;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            limit_req zone=per_client burst={BURST} nodelay;
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
        }}
    }}
}}
"
    )
}

/// HAProxy limiting each client to [`LIMIT`] allowed requests in any second: a stick table
/// counting the requests let through (`gpc0_rate(1s)`, incremented only after the check), so
/// refused requests do not count against the client (with `http_req_rate`, every refused
/// request would keep a client over the limit for good).
pub fn haproxy_limit_conf(port: u16, origin: SocketAddr) -> String {
    format!(
        "global
    nbthread 1

defaults
    mode http
    option http-keep-alive
    timeout connect 5s
    timeout client 60s
    timeout server 60s

frontend bench
    bind 127.0.0.1:{port}
    stick-table type ip size 100k expire 30s store gpc0_rate(1s)
    http-request track-sc0 src
    http-request deny deny_status 429 if {{ sc_gpc0_rate(0) ge {LIMIT} }}
    http-request sc-inc-gpc0(0)
    default_backend origin

backend origin
    server origin {origin}
"
    )
}

/// What one proxy let through of a client sending at 3x the limit.
#[derive(Debug, Clone)]
pub struct Accuracy {
    /// Proxy name.
    pub peer: String,
    /// Requests sent.
    pub sent: u64,
    /// Answered 2xx.
    pub allowed: u64,
    /// Answered 429 (or 503).
    pub limited: u64,
    /// Anything else, or a transport error.
    pub other: u64,
    /// How long the client sent, seconds.
    pub seconds: f64,
}

impl Accuracy {
    /// Requests let through per second.
    pub fn allowed_per_second(&self) -> f64 {
        self.allowed as f64 / self.seconds.max(1e-9)
    }
}

/// `GET path` on a new connection: the whole response.
fn get_raw(addr: SocketAddr, path: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: bench.local\r\nConnection: close\r\n\r\n"
    )?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// One `GET /` on a new connection: the status (0 on a transport error). Reads the head and
/// the `Content-Length` body, then closes, rather than waiting for the server to close.
fn one_get(addr: SocketAddr) -> u16 {
    let attempt = || -> std::io::Result<u16> {
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        s.set_nodelay(true)?;
        s.write_all(b"GET / HTTP/1.1\r\nHost: bench.local\r\nConnection: close\r\n\r\n")?;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let n = s.read(&mut chunk)?;
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
            let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                continue;
            };
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok());
            if length.is_some_and(|len| buf.len() >= end + 4 + len) {
                break;
            }
        }
        let head = String::from_utf8_lossy(&buf[..buf.len().min(64)]).into_owned();
        Ok(head
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0))
    };
    attempt().unwrap_or(0)
}

/// Checks that a proxy with the rules answers [`PATH`] with the rules' response headers.
fn check_rules(p: &Running) -> Result<()> {
    let resp = get_raw(p.addr, PATH)?.to_ascii_lowercase();
    for want in [
        "200",
        "x-frame-options: deny",
        "x-content-type-options: nosniff",
        "strict-transport-security: max-age=63072000; includesubdomains",
        "cache-control: no-store",
    ] {
        if !resp.contains(want) {
            bail!("{} answers GET {PATH} without {want:?}:\n{resp}", p.name);
        }
    }
    Ok(())
}

/// A client at `rate` requests per second for `duration`, one new connection per request.
pub fn drive(peer: &str, addr: SocketAddr, rate: f64, duration: Duration) -> Accuracy {
    let interval = Duration::from_secs_f64(1.0 / rate);
    let start = Instant::now();
    let mut next = start;
    let mut a = Accuracy {
        peer: peer.to_string(),
        sent: 0,
        allowed: 0,
        limited: 0,
        other: 0,
        seconds: 0.0,
    };
    while start.elapsed() < duration {
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        }
        next += interval;
        a.sent += 1;
        match one_get(addr) {
            200..=299 => a.allowed += 1,
            429 | 503 => a.limited += 1,
            _ => a.other += 1,
        }
    }
    a.seconds = start.elapsed().as_secs_f64();
    a
}

/// Starts a proxy from a config of this bench's on the proxy CPUs, and waits until `GET /`
/// answers 200.
fn start(
    name: &str,
    kind: PeerKind,
    dir: &Path,
    place: &Placement,
    conf: impl FnOnce(&Path, u16, u16) -> String,
) -> Result<Running> {
    let port = crate::procs::free_port()?;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let dir = dir.join(name);
    std::fs::create_dir_all(&dir)?;
    let cpus = place.proxy_cpus.as_deref();
    let admin = crate::procs::free_port()?;
    let config = conf(&dir, port, admin);
    let cmd = match kind {
        PeerKind::Portico => {
            let path = dir.join("portico.json");
            std::fs::write(&path, &config)?;
            let mut cmd = pinned(cpus, &workspace_bin("portico"));
            cmd.arg("--config").arg(&path);
            cmd
        }
        PeerKind::Nginx => {
            let nginx = which("nginx").context("nginx is not installed")?;
            nginx_prefix(&dir)?;
            let path = dir.join("nginx.conf");
            std::fs::write(&path, &config)?;
            let mut cmd = pinned(cpus, &nginx);
            cmd.arg("-p")
                .arg(&dir)
                .arg("-e")
                .arg(dir.join("error.log"))
                .arg("-c")
                .arg(&path)
                .arg("-g")
                .arg("daemon off;");
            cmd
        }
        PeerKind::Haproxy => {
            let haproxy = which("haproxy").context("haproxy is not installed")?;
            let path = dir.join("haproxy.cfg");
            std::fs::write(&path, &config)?;
            let mut cmd = pinned(cpus, &haproxy);
            cmd.arg("-f").arg(&path).arg("-db");
            cmd
        }
        other => bail!("no rules config for {}", other.name()),
    };
    let mut proc = Proc::spawn(name, cmd, &dir)?;
    let waited = wait_port(addr, Duration::from_secs(15));
    proc.check_alive()?;
    waited.with_context(|| format!("{name} did not start"))?;
    let mut last = None;
    for _ in 0..50 {
        match http_get(addr, "/") {
            Ok((200, _)) => {
                return Ok(Running {
                    name: name.into(),
                    addr,
                    proc,
                    config,
                    admin: (kind == PeerKind::Portico).then(|| ([127, 0, 0, 1], admin).into()),
                    access_log: None,
                });
            }
            other => last = Some(other),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("{name} does not answer GET / with 200: {last:?}")
}

/// The ratios the rules case is about, from the medians of its runs.
pub fn ratios(r: &CaseResult) -> String {
    let summary = |name: &str| r.peers.iter().find(|p| p.peer == name).map(|p| p.summary());
    let mut out = String::new();
    let pairs = [
        ("portico+rules", "portico", "what the 10 rules cost Portico"),
        (
            "portico+rules",
            "nginx+rules",
            "Portico beside nginx, same rules",
        ),
        (
            "portico+rules",
            "haproxy+rules",
            "Portico beside HAProxy, same rules",
        ),
    ];
    for (a, b, what) in pairs {
        if let (Some(x), Some(y)) = (summary(a), summary(b)) {
            let _ = writeln!(
                out,
                "  {a}/{b}: req/s {}, per core {}, CPU per request {} ({what})",
                fmt_ratio(ratio(x.rps, y.rps)),
                fmt_ratio(ratio(x.per_core, y.per_core)),
                fmt_ratio(ratio(x.cpu_us_per_request, y.cpu_us_per_request)),
            );
        }
    }
    out
}

/// The accuracy table.
pub fn accuracy_table(rows: &[Accuracy]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| Proxy | sent | allowed | limited | other | seconds | allowed/s | limit/s | allowed/s ÷ limit |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for a in rows {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {:.2} | {:.1} | {LIMIT} | {} |",
            a.peer,
            a.sent,
            a.allowed,
            a.limited,
            a.other,
            a.seconds,
            a.allowed_per_second(),
            fmt_ratio(Some(a.allowed_per_second() / f64::from(LIMIT)))
        );
    }
    out
}

/// Runs both parts and prints their tables; writes `results.json` to `opts.dir`.
pub fn run(opts: &Options, accuracy_seconds: u64) -> Result<()> {
    let Some(wrk_bin) = which("wrk") else {
        println!("{}", crate::procs::skip_line("the rules bench", "wrk"));
        return Ok(());
    };
    std::fs::create_dir_all(&opts.dir)?;
    let origin_kind = opts.origin.unwrap_or(if which("nginx").is_some() {
        OriginKind::Nginx
    } else {
        OriginKind::PorticoOrigin
    });
    let origin = start_origin(origin_kind, &opts.dir, &opts.placement)?;
    println!(
        "Rules benchmark: proxy on CPU {}, wrk and origin on CPU {}; files in {}\n\n-- {} at {} --\n{}",
        opts.placement.proxy_cpus.as_deref().unwrap_or("any"),
        opts.placement.load_cpus.as_deref().unwrap_or("any"),
        opts.dir.display(),
        origin.name,
        origin.addr,
        origin.config
    );
    let o = origin.addr;
    let threads = opts.portico_threads;
    let mut proxies = vec![start_proxy(
        PeerKind::Portico,
        &opts.dir,
        &opts.placement,
        o,
        threads,
        None,
        None,
    )?];
    proxies.push(start(
        "portico+rules",
        PeerKind::Portico,
        &opts.dir,
        &opts.placement,
        |_, port, admin| portico_rules_conf(port, admin, o, threads),
    )?);
    if which("nginx").is_some() {
        proxies.push(start(
            "nginx+rules",
            PeerKind::Nginx,
            &opts.dir,
            &opts.placement,
            |dir, port, _| nginx_rules_conf(dir, port, o),
        )?);
    } else {
        println!("{}", crate::procs::skip_line("nginx+rules", "nginx"));
    }
    if which("haproxy").is_some() {
        proxies.push(start(
            "haproxy+rules",
            PeerKind::Haproxy,
            &opts.dir,
            &opts.placement,
            |_, port, _| haproxy_rules_conf(port, o),
        )?);
    } else {
        println!("{}", crate::procs::skip_line("haproxy+rules", "haproxy"));
    }
    for p in &proxies {
        println!("\n-- {} at {} --\n{}", p.name, p.addr, p.config);
        if p.name.ends_with("+rules") {
            check_rules(p)?;
        }
    }
    let case = Case {
        kind: CaseKind::Small,
        path: PATH,
        connections: opts.connections,
        headers: vec![],
    };
    let result = run_case(&wrk_bin, opts, &case, &origin, &mut proxies, None)?;
    print!("{}", ratios(&result));
    for p in &mut proxies {
        p.proc.terminate(Duration::from_secs(2));
    }

    println!(
        "\n== Rate-limit accuracy: one client at {} req/s (3x a limit of {LIMIT}/s, burst {BURST}) for {accuracy_seconds} s, a new connection per request ==",
        3 * LIMIT
    );
    let mut limiters = vec![start(
        "portico-limit",
        PeerKind::Portico,
        &opts.dir,
        &opts.placement,
        |_, port, admin| portico_limit_conf(port, admin, o),
    )?];
    if which("nginx").is_some() {
        limiters.push(start(
            "nginx-limit_req",
            PeerKind::Nginx,
            &opts.dir,
            &opts.placement,
            |dir, port, _| nginx_limit_conf(dir, port, o),
        )?);
    }
    if which("haproxy").is_some() {
        limiters.push(start(
            "haproxy-stick-table",
            PeerKind::Haproxy,
            &opts.dir,
            &opts.placement,
            |_, port, _| haproxy_limit_conf(port, o),
        )?);
    }
    let mut rows = Vec::new();
    for p in &limiters {
        println!("\n-- {} at {} --\n{}", p.name, p.addr, p.config);
        // The readiness check's request has used a token: let the bucket refill.
        std::thread::sleep(Duration::from_secs(2));
        let a = drive(
            &p.name,
            p.addr,
            f64::from(3 * LIMIT),
            Duration::from_secs(accuracy_seconds),
        );
        println!(
            "  {}: {} sent, {} allowed ({:.1}/s), {} limited, {} other",
            a.peer,
            a.sent,
            a.allowed,
            a.allowed_per_second(),
            a.limited,
            a.other
        );
        rows.push(a);
    }
    for p in &mut limiters {
        p.proc.terminate(Duration::from_secs(2));
    }
    println!("\n{}", accuracy_table(&rows));
    println!(
        "A token bucket lets through burst + limit x seconds ({} here, {:.1}/s); HAProxy's sliding count of allowed requests lets through at most the limit in any second.",
        BURST + LIMIT * accuracy_seconds as u32,
        f64::from(BURST + LIMIT * accuracy_seconds as u32) / accuracy_seconds as f64
    );
    let json = serde_json::json!({
        "throughput": result.peers.iter().map(|p| {
            let s = p.summary();
            serde_json::json!({"peer": p.peer, "rps": s.rps, "per_core": s.per_core,
                "p50_us": s.p50_us, "p99_us": s.p99_us, "cpu_us_per_request": s.cpu_us_per_request,
                "errors": s.errors})
        }).collect::<Vec<_>>(),
        "direct_rps": result.direct.as_ref().map(|d: &WrkReport| d.rps),
        "accuracy": rows.iter().map(|a| serde_json::json!({"peer": a.peer, "sent": a.sent,
            "allowed": a.allowed, "limited": a.limited, "other": a.other, "seconds": a.seconds,
            "allowed_per_second": a.allowed_per_second(), "limit": LIMIT, "burst": BURST}))
            .collect::<Vec<_>>(),
    });
    let path = opts.dir.join("results.json");
    std::fs::write(&path, serde_json::to_string_pretty(&json)?)?;
    println!("Every run: {}", path.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin() -> SocketAddr {
        "127.0.0.1:9000".parse().unwrap()
    }

    #[test]
    fn portico_configs_are_valid_and_hold_ten_rules() {
        let c = portico_core::config::parse(&portico_rules_conf(8080, 9901, origin(), 1))
            .expect("valid");
        assert_eq!(c.rule_sets.compiled.rule_count(), 10);
        assert!(portico_core::config::warnings(&c).is_empty());
        let c = portico_core::config::parse(&portico_limit_conf(8080, 9901, origin())).unwrap();
        assert_eq!(c.rule_sets.compiled.rule_count(), 1);
    }

    #[test]
    fn peer_configs_are_balanced_and_name_their_limits() {
        let dir = Path::new("/tmp/x");
        for c in [
            nginx_rules_conf(dir, 8080, origin()),
            nginx_limit_conf(dir, 8080, origin()),
        ] {
            assert_eq!(c.matches('{').count(), c.matches('}').count());
        }
        assert!(nginx_limit_conf(dir, 1, origin()).contains("rate=100r/s"));
        assert!(nginx_limit_conf(dir, 1, origin()).contains("burst=10 nodelay"));
        assert!(haproxy_limit_conf(1, origin()).contains("sc_gpc0_rate(0) ge 100"));
        assert!(haproxy_rules_conf(1, origin()).contains("use_backend canary"));
    }
}
