//! One pool description rendered as each proxy's own configuration, each at its documented best.

use super::ProxyKind;
use std::path::Path;

/// The pool every proxy fronts: origins on loopback ports, the same timeouts everywhere.
#[derive(Debug, Clone)]
pub struct PoolSpec {
    /// `(name, port)` of each origin; the first one is the one that fails.
    pub origins: Vec<(String, u16)>,
    /// Connect timeout, ms.
    pub connect_ms: u64,
    /// Response (read) timeout, ms: what cuts a hanging origin off.
    pub response_ms: u64,
    /// Probe interval of Portico with its defaults, ms.
    pub portico_probe_ms: u64,
    /// Probe interval of the Front Door-style and HAProxy configurations, ms (Front Door's fastest).
    pub slow_probe_ms: u64,
}

/// The config file of `kind` listening on `port` (admin on `admin` for Portico), with
/// temporary files under `dir` (nginx).
pub fn render(kind: ProxyKind, pool: &PoolSpec, port: u16, admin: u16, dir: &Path) -> String {
    match kind {
        ProxyKind::Portico => portico(pool, port, admin, Tuning::Defaults),
        ProxyKind::PorticoHedge1ms => portico(pool, port, admin, Tuning::Hedge1ms),
        ProxyKind::FrontDoor => portico(pool, port, admin, Tuning::FrontDoor),
        ProxyKind::Nginx => nginx(pool, port, dir),
        ProxyKind::Haproxy => haproxy(pool, port),
    }
}

/// How a Portico run is configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tuning {
    /// Its defaults: retries, ejection and adaptive hedging on.
    Defaults,
    /// Its defaults with a fixed 1 ms hedge delay.
    Hedge1ms,
    /// Like Front Door: slow probes and every live-traffic mechanism off.
    FrontDoor,
}

/// Portico as `tuning` says.
fn portico(pool: &PoolSpec, port: u16, admin: u16, tuning: Tuning) -> String {
    let origins: Vec<String> = pool
        .origins
        .iter()
        .map(|(name, p)| format!(r#"{{ "name": "{name}", "address": "127.0.0.1:{p}" }}"#))
        .collect();
    let (interval, failover, live) = match tuning {
        Tuning::Defaults => (pool.portico_probe_ms, "", ""),
        Tuning::Hedge1ms => (
            pool.portico_probe_ms,
            r#""failover": { "hedging": { "delay_ms": 1 } },"#,
            "",
        ),
        Tuning::FrontDoor => (
            pool.slow_probe_ms,
            r#""failover": { "retries": { "enabled": false }, "ejection": { "enabled": false }, "hedging": { "enabled": false } },"#,
            r#", "live_latency": false"#,
        ),
    };
    let timeout = (interval / 2).min(2000);
    format!(
        r#"{{
  "node": {{ "region": "bench", "listen": "127.0.0.1:{port}", "admin_listen": "127.0.0.1:{admin}", "threads": 1 }},
  "pools": [{{
    "name": "bench",
    "health_probe": {{ "path": "/", "method": "HEAD", "interval_ms": {interval}, "timeout_ms": {timeout} }},
    "load_balancing": {{ "sample_size": 4, "successful_samples_required": 3, "latency_sensitivity_ms": 50{live} }},
    "timeouts": {{ "connect_ms": {connect}, "response_ms": {response} }},
    {failover}
    "origins": [
      {origins}
    ]
  }}],
  "routes": [{{ "name": "all", "hosts": ["*"], "paths": ["/*"], "pool": "bench" }}]
}}
"#,
        connect = pool.connect_ms,
        response = pool.response_ms,
        origins = origins.join(",\n      "),
    )
}

/// What the nginx and HAProxy configs say about hedging, at their top (printed with them).
const NGINX_NO_HEDGING: &str = "\
# nginx 1.22 (nginx-light, Debian 12) at its documented best for failover (ngx_http_proxy_module,
# ngx_http_upstream_module). Open-source nginx has no hedging-like option: proxy_next_upstream
# passes a request to the next server only after the current one failed (error, timeout or a
# listed status), never while it is still waiting for an answer.
";
const HAPROXY_NO_HEDGING: &str = "\
# HAProxy 2.6 (Debian 12) at its documented best for failover (configuration.txt). HAProxy has
# no hedging-like option: retry-on, retries and redispatch act only after an attempt failed
# (connection error, response timeout, listed status), never while it is still waiting.
";

fn nginx(pool: &PoolSpec, port: u16, dir: &Path) -> String {
    let servers: String = pool
        .origins
        .iter()
        .map(|(_, p)| format!("        server 127.0.0.1:{p} max_fails=1 fail_timeout=10s;\n"))
        .collect();
    let d = dir.display();
    format!(
        r#"{NGINX_NO_HEDGING}worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {d}/client_temp;
    proxy_temp_path {d}/proxy_temp;
    fastcgi_temp_path {d}/fastcgi_temp;
    uwsgi_temp_path {d}/uwsgi_temp;
    scgi_temp_path {d}/scgi_temp;
    upstream pool {{
{servers}        keepalive 64;
    }}
    server {{
        listen 127.0.0.1:{port} reuseport;
        location / {{
            proxy_pass http://pool;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_connect_timeout {connect}ms;
            proxy_read_timeout {response}ms;
            proxy_send_timeout {response}ms;
            proxy_next_upstream error timeout http_502 http_503 http_504;
            proxy_next_upstream_tries 3;
        }}
    }}
}}
"#,
        connect = pool.connect_ms,
        response = pool.response_ms,
    )
}

fn haproxy(pool: &PoolSpec, port: u16) -> String {
    let servers: String = pool
        .origins
        .iter()
        .map(|(name, p)| {
            format!(
                "    server {name} 127.0.0.1:{p} check inter {inter}ms fall 2 rise 2 observe layer7 error-limit 5 on-error mark-down\n",
                inter = pool.slow_probe_ms
            )
        })
        .collect();
    format!(
        r#"{HAPROXY_NO_HEDGING}global
    nbthread 1
    maxconn 8000
defaults
    mode http
    timeout connect {connect}ms
    timeout server {response}ms
    timeout client 30s
    timeout check 2s
    option http-keep-alive
    http-reuse safe
    retries 3
    option redispatch 1
    retry-on all-retryable-errors
frontend fe
    bind 127.0.0.1:{port}
    default_backend pool
backend pool
    balance roundrobin
    option httpchk
    http-check send meth HEAD uri / hdr X-Portico-Health-Probe 1
    http-check expect status 200
{servers}"#,
        connect = pool.connect_ms,
        response = pool.response_ms,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool() -> PoolSpec {
        PoolSpec {
            origins: vec![("a".into(), 9001), ("b".into(), 9002)],
            connect_ms: 500,
            response_ms: 500,
            portico_probe_ms: 1000,
            slow_probe_ms: 5000,
        }
    }

    #[test]
    fn every_peer_gets_its_failover_directives_and_the_same_timeouts() {
        let dir = Path::new("/tmp/x");
        let n = render(ProxyKind::Nginx, &pool(), 8080, 0, dir);
        for d in [
            "proxy_next_upstream error timeout http_502 http_503 http_504;",
            "max_fails=1",
            "proxy_read_timeout 500ms;",
            "server 127.0.0.1:9002",
            "keepalive 64;",
        ] {
            assert!(n.contains(d), "nginx lacks {d}:\n{n}");
        }
        let h = render(ProxyKind::Haproxy, &pool(), 8080, 0, dir);
        for d in [
            "retry-on all-retryable-errors",
            "option redispatch 1",
            "check inter 5000ms fall 2 rise 2 observe layer7",
            "timeout server 500ms",
            "server b 127.0.0.1:9002",
        ] {
            assert!(h.contains(d), "haproxy lacks {d}:\n{h}");
        }
    }

    #[test]
    fn portico_configs_are_valid_and_front_door_style_turns_failover_off() {
        let p = render(ProxyKind::Portico, &pool(), 8080, 8081, Path::new("/tmp/x"));
        assert!(!p.contains("hedging"), "Portico runs on its defaults");
        let dir = Path::new("/tmp/x");
        let p = portico_core::config::parse(&render(ProxyKind::Portico, &pool(), 8080, 8081, dir))
            .unwrap();
        let f =
            portico_core::config::parse(&render(ProxyKind::FrontDoor, &pool(), 8080, 8081, dir))
                .unwrap();
        assert!(p.pools[0].failover.retries.enabled && p.pools[0].failover.ejection.enabled);
        assert!(!f.pools[0].failover.retries.enabled && !f.pools[0].failover.ejection.enabled);
        assert!(
            p.pools[0].failover.hedging.enabled && !f.pools[0].failover.hedging.enabled,
            "Portico hedges on its defaults, Front Door-style does not"
        );
        assert!(
            p.pools[0].load_balancing.live_latency && !f.pools[0].load_balancing.live_latency,
            "Front Door ranks origins by probe latency alone"
        );
        let h = portico_core::config::parse(&render(
            ProxyKind::PorticoHedge1ms,
            &pool(),
            8080,
            8081,
            dir,
        ))
        .unwrap();
        assert_eq!(p.pools[0].failover.hedging.delay, None, "adaptive");
        assert_eq!(
            h.pools[0].failover.hedging.delay,
            Some(std::time::Duration::from_millis(1))
        );
        assert_eq!(
            (&h.pools[0].failover.retries, &h.pools[0].failover.ejection),
            (&p.pools[0].failover.retries, &p.pools[0].failover.ejection),
            "otherwise the defaults"
        );
        assert_eq!(f.pools[0].probe.interval.as_millis(), 5000);
        assert_eq!(p.pools[0].probe.interval.as_millis(), 1000);
        assert_eq!(p.pools[0].timeouts.response.as_millis(), 500);
    }
}
