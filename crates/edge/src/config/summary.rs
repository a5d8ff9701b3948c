//! The one-screen summary `portico --check` prints for a valid config.

use portico_core::config::Config;
use std::fmt::Write;
use std::net::SocketAddr;

/// Describes `config` (with resolved origin addresses) in a few lines.
pub fn summary(config: &Config, resolved: &[Vec<SocketAddr>]) -> String {
    let mut s = String::new();
    let n = &config.node;
    let origins: usize = config.pools.iter().map(|p| p.origins.len()).sum();
    let _ = writeln!(
        s,
        "config OK (version {}): {} pool{}, {origins} origin{}, {} route{}",
        config.version,
        config.pools.len(),
        plural(config.pools.len()),
        plural(origins),
        config.routes.len(),
        plural(config.routes.len()),
    );
    let _ = writeln!(
        s,
        "node: region {}, proxy {}, admin {}, {} thread{}, drain {} ms",
        n.region,
        n.listen,
        n.admin_listen,
        n.threads,
        plural(n.threads),
        n.drain.as_millis()
    );
    if let Some(tls) = &n.tls_listen {
        let certs: Vec<String> = config
            .certificates
            .iter()
            .map(|c| {
                let hosts: Vec<String> = c.hosts.iter().map(ToString::to_string).collect();
                let acme = if c.is_acme() { ", acme" } else { "" };
                format!("{} ({}{acme})", c.name, hosts.join(" "))
            })
            .collect();
        let _ = writeln!(
            s,
            "tls: {tls}, h2 and http/1.1; certificates {}",
            certs.join(", ")
        );
    }
    if let Some(a) = config
        .acme
        .as_ref()
        .filter(|_| config.certificates.iter().any(|c| c.is_acme()))
    {
        let _ = writeln!(
            s,
            "acme: {}, renewed {} days before expiry; kept in {} (the store, for a node following one)",
            a.directory, a.renew_before_days, config.node.state_dir
        );
    }
    for (pi, p) in config.pools.iter().enumerate() {
        let enabled = p.origins.iter().filter(|o| o.enabled).count();
        let lb = &p.load_balancing;
        let f = &p.failover;
        let _ = writeln!(
            s,
            "pool {}: {enabled}/{} enabled; probe {} {} every {} ms (timeout {} ms, expect {}); healthy with {}/{} good probes; band {} ms",
            p.name,
            p.origins.len(),
            p.probe.method.as_str(),
            p.probe.path,
            p.probe.interval.as_millis(),
            p.probe.timeout.as_millis(),
            p.probe.expected_status,
            lb.successful_samples_required,
            lb.sample_size,
            lb.latency_sensitivity.as_millis(),
        );
        let retries = if f.retries.enabled {
            format!(
                "up to {} attempts, budget {}% + {}/s",
                f.retries.max_attempts,
                (f.retries.budget_ratio * 100.0).round(),
                f.retries.budget_min_per_second
            )
        } else {
            "off".to_string()
        };
        let ejection = if f.ejection.enabled {
            format!(
                "after {} failures, {}-{} ms, at most {}%",
                f.ejection.consecutive_failures,
                f.ejection.base_ejection.as_millis(),
                f.ejection.max_ejection.as_millis(),
                f.ejection.max_ejected_percent
            )
        } else {
            "off".to_string()
        };
        let _ = writeln!(
            s,
            "  timeouts: connect {} ms, response {} ms; retries: {retries}; ejection: {ejection}",
            p.timeouts.connect.as_millis(),
            p.timeouts.response.as_millis(),
        );
        for (oi, o) in p.origins.iter().enumerate() {
            let resolved = resolved
                .get(pi)
                .and_then(|r| r.get(oi))
                .map(|a| a.to_string())
                .unwrap_or_default();
            let shown = if resolved == o.address {
                o.address.clone()
            } else {
                format!("{} ({resolved})", o.address)
            };
            let _ = writeln!(
                s,
                "  origin {:<16} {:<24} priority {} weight {:<4}{}{}{}",
                o.name,
                shown,
                o.priority,
                o.weight,
                o.region
                    .as_ref()
                    .map(|r| format!(" region {r}"))
                    .unwrap_or_default(),
                o.host_header
                    .as_ref()
                    .map(|h| format!(" host {h}"))
                    .unwrap_or_default(),
                if o.enabled { "" } else { " DISABLED" },
            );
        }
    }
    let rules = &config.rule_sets.compiled;
    if rules.names().next().is_some() {
        let sets: Vec<String> = rules
            .names()
            .filter_map(|name| {
                let n = rules.rules_in(rules.id(name)?);
                Some(format!("{name} ({n} rule{})", plural(n)))
            })
            .collect();
        let limits = rules
            .rule_ids()
            .filter(|&id| rules.rate_limit(id).is_some())
            .count();
        let _ = writeln!(
            s,
            "rule sets: {}; {limits} rate limit{}",
            sets.join(", "),
            plural(limits)
        );
    }
    for r in &config.routes {
        let hosts: Vec<String> = r.hosts.iter().map(ToString::to_string).collect();
        let paths: Vec<String> = r.paths.iter().map(ToString::to_string).collect();
        let names: Vec<&str> = rules.names().collect();
        let sets: Vec<&str> = r
            .rule_sets
            .iter()
            .filter_map(|id| names.get(id.index()).copied())
            .collect();
        let _ = writeln!(
            s,
            "route {}: hosts {} paths {} -> pool {}{}",
            r.name,
            hosts.join(","),
            paths.join(","),
            config.pools[r.pool].name,
            if sets.is_empty() {
                String::new()
            } else {
                format!("; rule sets {}", sets.join(", "))
            }
        );
    }
    s
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
