//! The configs of the scale benchmark: the origin nginx answering on N loopback addresses,
//! and Portico, HAProxy and nginx fronting those origins in pools of up to 50 (or one origin
//! behind 1 to 10,000 routes), each as its own docs advise.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;

/// Origins per pool (a Portico pool holds at most 64).
pub const POOL_SIZE: usize = 50;

/// The name TLS origins' certificate is for, sent as SNI and checked by every proxy.
pub const ORIGIN_TLS_NAME: &str = "origin.bench";

/// The path every peer answers with its config generation (HAProxy and nginx; Portico's
/// generation is read from its log).
pub const GENERATION_PATH: &str = "/__bench_generation";

/// Origin `i`'s address: `127.1.(i / 250).(i % 250 + 1)`, all answered by one nginx.
pub fn origin_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 1, (i / 250) as u8, (i % 250 + 1) as u8)
}

/// The host clients send for pool `p` (one route per pool).
pub fn pool_host(p: usize) -> String {
    format!("p{p}.bench")
}

/// What a fronting proxy gets: origins, probe interval, TLS, and what changes on a reload.
#[derive(Debug, Clone)]
pub struct Estate {
    /// Number of origins.
    pub origins: usize,
    /// The origins' port (plain, or TLS when `tls`).
    pub port: u16,
    /// Probe (check) interval, ms.
    pub interval_ms: u64,
    /// Origins speak TLS (verified against `ca_file` with SNI [`ORIGIN_TLS_NAME`]).
    pub tls: bool,
    /// The throwaway CA of the TLS origins.
    pub ca_file: Option<String>,
    /// The reload counter: origin 0's weight and the generation answered by the peers change
    /// with it.
    pub generation: u32,
}

impl Estate {
    /// Pools of at most [`POOL_SIZE`]: `(pool index, origin indices)`.
    pub fn pools(&self) -> Vec<(usize, std::ops::Range<usize>)> {
        (0..self.origins.div_ceil(POOL_SIZE))
            .map(|p| (p, p * POOL_SIZE..((p + 1) * POOL_SIZE).min(self.origins)))
            .collect()
    }

    /// The probe timeout every proxy gets: half the interval, at most 2 s.
    pub fn timeout_ms(&self) -> u64 {
        (self.interval_ms / 2).min(2000)
    }

    /// Origin 0's weight in this generation (1–200: within every peer's range).
    pub fn weight0(&self) -> u32 {
        1 + self.generation % 200
    }
}

/// The node section of a Portico document: the whole section for a `--config` node, only
/// `threads` for a store-following one (its listeners come from its command line).
#[derive(Debug, Clone, Copy)]
pub enum NodeSection {
    /// `node.listen` and `node.admin_listen`.
    File {
        /// Proxy listener.
        listen: SocketAddr,
        /// Admin listener.
        admin: SocketAddr,
    },
    /// `{ "threads": 1 }`.
    Store,
}

fn node_json(node: NodeSection) -> String {
    match node {
        NodeSection::File { listen, admin } => format!(
            r#"{{ "region": "bench", "listen": "{listen}", "admin_listen": "{admin}", "threads": 1 }}"#
        ),
        NodeSection::Store => r#"{ "threads": 1 }"#.to_string(),
    }
}

/// Portico: one pool per 50 origins, one route (`pN.bench`) per pool, probes `HEAD /` every
/// `interval_ms`; TLS origins verified against the CA with SNI [`ORIGIN_TLS_NAME`].
pub fn portico(e: &Estate, node: NodeSection) -> String {
    let mut pools = Vec::new();
    let mut routes = Vec::new();
    let ca = match (&e.ca_file, e.tls) {
        (Some(ca), true) => format!(r#""ca_file": {}, "#, serde_json::Value::from(ca.as_str())),
        _ => String::new(),
    };
    let tls = if e.tls {
        format!(r#", "tls": true, "sni": "{ORIGIN_TLS_NAME}""#)
    } else {
        String::new()
    };
    for (p, range) in e.pools() {
        let origins: Vec<String> = range
            .map(|i| {
                let weight = if i == 0 { e.weight0() } else { 50 };
                format!(
                    r#"{{ "name": "o{i}", "address": "{}:{}", "weight": {weight}{tls} }}"#,
                    origin_ip(i),
                    e.port
                )
            })
            .collect();
        pools.push(format!(
            r#"    {{ "name": "p{p}", {ca}"health_probe": {{ "path": "/", "method": "HEAD", "interval_ms": {}, "timeout_ms": {} }},
      "origins": [
        {}
      ] }}"#,
            e.interval_ms,
            e.timeout_ms(),
            origins.join(",\n        ")
        ));
        routes.push(format!(
            r#"    {{ "name": "r{p}", "hosts": ["{}"], "paths": ["/*"], "pool": "p{p}" }}"#,
            pool_host(p)
        ));
    }
    format!(
        "{{\n  \"node\": {},\n  \"pools\": [\n{}\n  ],\n  \"routes\": [\n{}\n  ]\n}}\n",
        node_json(node),
        pools.join(",\n"),
        routes.join(",\n")
    )
}

/// HAProxy's server line options for this estate: HTTP checks every interval, and for TLS
/// origins verification, SNI and checks over TLS (configuration.txt, 5.2).
fn haproxy_server_options(e: &Estate) -> String {
    let mut s = format!("check inter {}ms fall 2 rise 2", e.interval_ms);
    if let (true, Some(ca)) = (e.tls, &e.ca_file) {
        s.push_str(&format!(
            " ssl verify required ca-file {ca} verifyhost {ORIGIN_TLS_NAME} sni str({ORIGIN_TLS_NAME}) check-ssl check-sni {ORIGIN_TLS_NAME}"
        ));
    }
    s
}

/// HAProxy 2.6 fronting the same pools, as its docs advise for many hosts and servers: one
/// backend per pool, the host looked up in a map file (`map_str`: a tree lookup), HTTP checks
/// with `check inter`, a stats socket to read check results. Returns the config and the map.
pub fn haproxy(e: &Estate, listen: SocketAddr, dir: &Path) -> (String, String) {
    let d = dir.display();
    let opts = haproxy_server_options(e);
    let mut backends = String::new();
    let mut map = String::new();
    for (p, range) in e.pools() {
        map.push_str(&format!("{} p{p}\n", pool_host(p)));
        backends.push_str(&format!(
            "backend p{p}\n    balance roundrobin\n    option httpchk\n    http-check send meth HEAD uri /\n    http-check expect status 200\n    default-server {opts}\n"
        ));
        for i in range {
            let weight = if i == 0 { e.weight0() } else { 50 };
            backends.push_str(&format!(
                "    server o{i} {}:{} weight {weight}\n",
                origin_ip(i),
                e.port
            ));
        }
    }
    let config = format!(
        "# HAProxy 2.6 (Debian 12): one backend per pool of <= {POOL_SIZE}, hosts in a map (map_str),
# HTTP checks every {inter} ms (configuration.txt 5.2 `check`, `inter`; 4.2 `option httpchk`).
global
    nbthread 1
    # 5,000 servers count against the FD limit too (maxconn 8000 wanted 21,026 FDs here).
    maxconn 4000
    stats socket {d}/haproxy.sock mode 600 level admin
    hard-stop-after 10s
defaults
    mode http
    timeout connect 1s
    timeout client 30s
    timeout server 30s
    timeout check {check}ms
    option http-keep-alive
frontend fe
    bind {listen}
    http-request return status 200 content-type text/plain string \"gen-{generation}\" if {{ path {GENERATION_PATH} }}
    use_backend %[req.hdr(host),lower,word(1,:),map_str({d}/hosts.map,p0)]
{backends}",
        inter = e.interval_ms,
        check = e.timeout_ms(),
        generation = e.generation,
    );
    (config, map)
}

/// nginx fronting the same pools (memory and reload time only: open-source nginx has no
/// active health checks): one upstream per pool, the host chosen by a `map`.
pub fn nginx(e: &Estate, listen: SocketAddr, dir: &Path) -> String {
    let d = dir.display();
    let mut upstreams = String::new();
    let mut map = String::new();
    for (p, range) in e.pools() {
        map.push_str(&format!("        {} p{p};\n", pool_host(p)));
        upstreams.push_str(&format!("    upstream p{p} {{\n"));
        for i in range {
            let weight = if i == 0 { e.weight0() } else { 50 };
            upstreams.push_str(&format!(
                "        server {}:{} weight={weight};\n",
                origin_ip(i),
                e.port
            ));
        }
        upstreams.push_str("        keepalive 16;\n    }\n");
    }
    let (scheme, tls) = match (e.tls, &e.ca_file) {
        (true, Some(ca)) => (
            "https",
            format!(
                "            proxy_ssl_verify on;\n            proxy_ssl_trusted_certificate {ca};\n            proxy_ssl_name {ORIGIN_TLS_NAME};\n            proxy_ssl_server_name on;\n            proxy_ssl_session_reuse on;\n"
            ),
        ),
        _ => ("http", String::new()),
    };
    format!(
        "# nginx 1.22 (nginx-light): one upstream per pool of <= {POOL_SIZE}, the host mapped to its pool.
# Open-source nginx has no active health checks (ngx_http_upstream_module: passive max_fails only).
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {d}/tmp/body;
    proxy_temp_path {d}/tmp/proxy;
    fastcgi_temp_path {d}/tmp/fastcgi;
    uwsgi_temp_path {d}/tmp/uwsgi;
    scgi_temp_path {d}/tmp/scgi;
    map_hash_bucket_size 64;
    map $host $pool {{
        default p0;
{map}    }}
{upstreams}    server {{
        listen {listen};
        location = {GENERATION_PATH} {{ return 200 \"gen-{generation}\\n\"; }}
        location / {{
            proxy_pass {scheme}://$pool;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
{tls}        }}
    }}
}}
",
        generation = e.generation,
    )
}

/// The origin: one nginx worker answering `200 ok` on `plain` origins' addresses at
/// `plain_port` and `tls` origins' addresses at `tls_port` (one `listen` per address: only
/// loopback addresses are bound).
pub fn origin_nginx(
    dir: &Path,
    plain: usize,
    plain_port: u16,
    tls: Option<(usize, u16, &Path, &Path)>,
) -> String {
    let d = dir.display();
    let listens: String = (0..plain)
        .map(|i| {
            format!(
                "        listen {}:{plain_port} backlog=1024;\n",
                origin_ip(i)
            )
        })
        .collect();
    let tls_server = match tls {
        Some((n, port, cert, key)) => {
            let listens: String = (0..n)
                .map(|i| format!("        listen {}:{port} ssl;\n", origin_ip(i)))
                .collect();
            format!(
                "    server {{
{listens}        ssl_certificate {};
        ssl_certificate_key {};
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_cache shared:SSL:10m;
        location / {{ return 200 \"ok\\n\"; }}
    }}
",
                cert.display(),
                key.display()
            )
        }
        None => String::new(),
    };
    format!(
        "# The origins: one nginx answering on every origin address.
worker_processes 1;
worker_rlimit_nofile 20000;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 16384; }}
http {{
    access_log off;
    client_body_temp_path {d}/tmp/body;
    proxy_temp_path {d}/tmp/proxy;
    fastcgi_temp_path {d}/tmp/fastcgi;
    uwsgi_temp_path {d}/tmp/uwsgi;
    scgi_temp_path {d}/tmp/scgi;
    server {{
{listens}        location / {{ return 200 \"ok\\n\"; }}
    }}
{tls_server}}}
"
    )
}

/// How the routes of a routes row name their hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum HostKind {
    /// `hN.bench`.
    Exact,
    /// `*.wN.bench`.
    Wildcard,
}

impl HostKind {
    /// `exact` or `wildcard`.
    pub fn name(self) -> &'static str {
        match self {
            HostKind::Exact => "exact",
            HostKind::Wildcard => "wildcard",
        }
    }

    /// The host a request for route `i` sends.
    pub fn request_host(self, i: usize) -> String {
        match self {
            HostKind::Exact => format!("h{i}.bench"),
            HostKind::Wildcard => format!("www.w{i}.bench"),
        }
    }
}

/// Portico with `n` routes of `kind` hosts, all to one pool of one origin.
pub fn portico_routes(
    n: usize,
    kind: HostKind,
    listen: SocketAddr,
    admin: SocketAddr,
    origin: SocketAddr,
) -> String {
    let routes: Vec<String> = (0..n)
        .map(|i| {
            let host = match kind {
                HostKind::Exact => format!("h{i}.bench"),
                HostKind::Wildcard => format!("*.w{i}.bench"),
            };
            format!(r#"    {{ "name": "r{i}", "hosts": ["{host}"], "pool": "web" }}"#)
        })
        .collect();
    format!(
        r#"{{
  "node": {},
  "pools": [{{ "name": "web", "health_probe": {{ "path": "/", "method": "HEAD", "interval_ms": 5000, "timeout_ms": 2000 }},
    "timeouts": {{ "connect_ms": 1000, "response_ms": 30000 }},
    "origins": [{{ "name": "o0", "address": "{origin}" }}] }}],
  "routes": [
{}
  ]
}}
"#,
        node_json(NodeSection::File { listen, admin }),
        routes.join(",\n")
    )
}

/// HAProxy with `n` hosts of `kind` in a map file, as its docs advise: exact hosts with
/// `map_str` (a tree), `*.suffix` hosts with `map_end` (matched against the end of the host;
/// configuration.txt 7.3.1 `map`: a list walked in order). Returns the config and the map.
pub fn haproxy_routes(
    n: usize,
    kind: HostKind,
    listen: SocketAddr,
    origin: SocketAddr,
    dir: &Path,
) -> (String, String) {
    let map: String = (0..n)
        .map(|i| match kind {
            HostKind::Exact => format!("h{i}.bench web\n"),
            HostKind::Wildcard => format!(".w{i}.bench web\n"),
        })
        .collect();
    let conv = match kind {
        HostKind::Exact => "map_str",
        HostKind::Wildcard => "map_end",
    };
    let config = format!(
        "# HAProxy 2.6: {n} {kind} hosts in a map file ({conv}), one backend; as the throughput bench.
global
    nbthread 1
    maxconn 9000
defaults
    mode http
    maxconn 9000
    option http-keep-alive
    http-reuse always
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout http-keep-alive 60s
frontend fe
    bind {listen}
    use_backend %[req.hdr(host),lower,word(1,:),{conv}({d}/hosts.map)]
backend web
    option httpchk
    http-check send meth HEAD uri /
    server o0 {origin} check inter 5s
",
        kind = kind.name(),
        d = dir.display(),
    );
    (config, map)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn estate(n: usize, tls: bool) -> Estate {
        Estate {
            origins: n,
            port: 9000,
            interval_ms: 1000,
            tls,
            ca_file: tls.then(|| "/tmp/ca.pem".to_string()),
            generation: 3,
        }
    }

    #[test]
    fn addresses_are_distinct_loopback_ones() {
        let all: std::collections::HashSet<_> = (0..5000).map(origin_ip).collect();
        assert_eq!(all.len(), 5000);
        assert!(all.iter().all(|ip| ip.is_loopback()));
    }

    #[test]
    fn portico_documents_are_valid() {
        let node = NodeSection::File {
            listen: "127.0.0.1:8080".parse().unwrap(),
            admin: "127.0.0.1:8081".parse().unwrap(),
        };
        for (n, tls) in [(1, false), (120, false), (101, true)] {
            let text = portico(&estate(n, tls), node);
            let c = portico_core::config::parse(&text).unwrap();
            assert_eq!(c.pools.len(), n.div_ceil(POOL_SIZE));
            let total: usize = c.pools.iter().map(|p| p.origins.len()).sum();
            assert_eq!(total, n);
            assert_eq!(c.pools[0].origins[0].weight, 4);
            assert_eq!(c.pools[0].origins[0].tls, tls);
            assert_eq!(c.pools[0].probe.interval.as_millis(), 1000);
            assert_eq!(c.routes.len(), c.pools.len());
        }
        let routes = portico_routes(
            3,
            HostKind::Wildcard,
            "127.0.0.1:1".parse().unwrap(),
            "127.0.0.1:2".parse().unwrap(),
            "127.0.0.1:3".parse().unwrap(),
        );
        assert_eq!(
            portico_core::config::parse(&routes).unwrap().routes.len(),
            3
        );
    }

    #[test]
    fn peers_get_the_same_servers_and_checks() {
        let dir = Path::new("/tmp/x");
        let e = estate(120, true);
        let (h, map) = haproxy(&e, "127.0.0.1:8080".parse().unwrap(), dir);
        assert_eq!(h.matches("    server o").count(), 120);
        assert_eq!(h.matches("\nbackend p").count(), 3);
        assert!(h.contains("check inter 1000ms"), "{h}");
        assert!(h.contains("check-ssl check-sni origin.bench"));
        assert!(h.contains("server o0 127.1.0.1:9000 weight 4"));
        assert_eq!(map.lines().count(), 3);
        let n = nginx(&e, "127.0.0.1:8080".parse().unwrap(), dir);
        assert_eq!(n.matches("        server 127.1.").count(), 120);
        assert!(n.contains("proxy_pass https://$pool"));
        assert!(n.contains("gen-3"));
        let (r, map) = haproxy_routes(
            4,
            HostKind::Wildcard,
            "127.0.0.1:1".parse().unwrap(),
            "127.0.0.1:2".parse().unwrap(),
            dir,
        );
        assert!(r.contains("map_end(/tmp/x/hosts.map)"));
        assert_eq!(map.lines().last(), Some(".w3.bench web"));
    }

    #[test]
    fn the_origin_listens_on_every_address() {
        let o = origin_nginx(
            Path::new("/tmp/o"),
            300,
            9000,
            Some((10, 9443, Path::new("/c.pem"), Path::new("/k.pem"))),
        );
        assert_eq!(o.matches(":9000 backlog").count(), 300);
        assert_eq!(o.matches(":9443 ssl;").count(), 10);
        assert!(!o.contains("0.0.0.0"));
    }
}
