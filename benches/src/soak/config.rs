//! The soak's Portico config: one pool of three origins with weights the reloads change, and
//! `node.limits` for slow clients when the running build accepts them.

use std::path::Path;
use std::process::Command;

/// What the document depends on.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Proxy port.
    pub port: u16,
    /// Admin port.
    pub admin: u16,
    /// `(name, port)` of each origin.
    pub origins: Vec<(String, u16)>,
    /// Connect timeout towards origins, ms.
    pub connect_ms: u64,
    /// Response timeout towards origins, ms (what cuts a hanging origin off).
    pub response_ms: u64,
    /// Probe interval, ms.
    pub probe_ms: u64,
    /// The `node.limits` object (JSON), or `None` to leave it out.
    pub limits: Option<String>,
}

/// The `node.limits` the soak asks for: short slow-client timers, so the attacker's
/// connections are recycled within a short run.
pub const LIMITS: &str = r#"{ "client_header_timeout_ms": 5000, "keepalive_timeout_ms": 10000 }"#;

/// The document with one weight per origin (same order as `spec.origins`).
pub fn render(spec: &Spec, weights: &[u32]) -> String {
    let origins: Vec<String> = spec
        .origins
        .iter()
        .zip(weights.iter().chain(std::iter::repeat(&50)))
        .map(|((name, p), w)| {
            format!(r#"{{ "name": "{name}", "address": "127.0.0.1:{p}", "weight": {w} }}"#)
        })
        .collect();
    let limits = spec
        .limits
        .as_ref()
        .map_or(String::new(), |l| format!(r#", "limits": {l}"#));
    let probe_timeout = (spec.probe_ms / 2).max(50);
    format!(
        r#"{{
  "node": {{ "region": "soak", "listen": "127.0.0.1:{port}", "admin_listen": "127.0.0.1:{admin}", "threads": 1{limits} }},
  "pools": [{{
    "name": "soak",
    "health_probe": {{ "path": "/", "method": "HEAD", "interval_ms": {probe}, "timeout_ms": {probe_timeout} }},
    "load_balancing": {{ "sample_size": 4, "successful_samples_required": 3, "latency_sensitivity_ms": 50 }},
    "timeouts": {{ "connect_ms": {connect}, "response_ms": {response} }},
    "failover": {{
      "retries": {{ "enabled": true, "max_attempts": 3, "budget_percent": 20, "budget_min_per_second": 10, "budget_window_ms": 10000 }},
      "ejection": {{ "enabled": true, "consecutive_failures": 5, "base_ejection_ms": 2000, "max_ejection_ms": 30000, "max_ejected_percent": 50 }}
    }},
    "origins": [
      {origins}
    ]
  }}],
  "routes": [{{ "name": "all", "hosts": ["*"], "paths": ["/*"], "pool": "soak" }}]
}}
"#,
        port = spec.port,
        admin = spec.admin,
        probe = spec.probe_ms,
        connect = spec.connect_ms,
        response = spec.response_ms,
        origins = origins.join(",\n      "),
    )
}

/// Whether `portico --check` accepts `doc` (written to `path`); the errors otherwise.
pub fn check(portico: &Path, doc: &str, path: &Path) -> std::io::Result<Result<(), String>> {
    std::fs::write(path, doc)?;
    let out = Command::new(portico)
        .arg("--config")
        .arg(path)
        .arg("--check")
        .env("RUST_LOG", "error")
        .output()?;
    Ok(if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    })
}

/// Writes `doc` to `path` atomically (a temporary file, then a rename), so a SIGHUP never
/// reads half a file.
pub fn write_atomically(path: &Path, doc: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, doc)?;
    std::fs::rename(tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(limits: Option<&str>) -> Spec {
        Spec {
            port: 8080,
            admin: 8081,
            origins: vec![("a".into(), 9001), ("b".into(), 9002), ("c".into(), 9003)],
            connect_ms: 500,
            response_ms: 1000,
            probe_ms: 500,
            limits: limits.map(str::to_string),
        }
    }

    #[test]
    fn the_document_is_valid_and_carries_the_weights() {
        let doc = render(&spec(None), &[7, 300, 1000]);
        let c = portico_core::config::parse(&doc).unwrap();
        let w: Vec<u32> = c.pools[0].origins.iter().map(|o| o.weight).collect();
        assert_eq!(w, vec![7, 300, 1000]);
        assert_eq!(c.pools[0].timeouts.response.as_millis(), 1000);
    }

    #[test]
    fn limits_go_into_node() {
        let doc = render(&spec(Some(LIMITS)), &[1, 2, 3]);
        let v: serde_json::Value = serde_json::from_str(&doc).unwrap();
        assert_eq!(v["node"]["limits"]["client_header_timeout_ms"], 5000);
    }
}
