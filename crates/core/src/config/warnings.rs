//! Problems that do not stop a config (`--check` prints them, start-up and reloads log them):
//! certificate hosts that no route serves, rules that do nothing or are never reached, rule
//! sets no route names, cleartext origins of an `"auto"` pool, a client certificate for a pool
//! without TLS origins.

use super::model::{Config, HostPattern, OriginProtocol};

/// Every warning of `config`, each `path: message`, in document order.
pub fn warnings(config: &Config) -> Vec<String> {
    let mut out = Vec::new();
    for (i, cert) in config.certificates.iter().enumerate() {
        for (k, host) in cert.hosts.iter().enumerate() {
            let served = config
                .routes
                .iter()
                .any(|r| r.hosts.iter().any(|route| overlaps(host, route)));
            if !served {
                out.push(format!(
                    "certificates[{i}].hosts[{k}]: no route serves {host} (requests for it would get 404)"
                ));
            }
        }
    }
    let rules = &config.rule_sets.compiled;
    out.extend(rules.warnings("rule_sets"));
    for (i, name) in rules.names().enumerate() {
        let named = rules
            .id(name)
            .is_some_and(|id| config.routes.iter().any(|r| r.rule_sets.contains(&id)));
        if !named {
            out.push(format!(
                "rule_sets[{i}]: no route names {name:?} in its rule_sets, so it never runs"
            ));
        }
    }
    for (i, pool) in config.pools.iter().enumerate() {
        if pool.client_cert.is_some() && !pool.origins.iter().any(|o| o.tls) {
            out.push(format!(
                "pools[{i}].client_cert_file: no origin of the pool has \"tls\": true, so the certificate is never presented"
            ));
        }
    }
    for (i, pool) in config.pools.iter().enumerate() {
        if pool.protocol != OriginProtocol::Auto {
            continue;
        }
        for (k, origin) in pool.origins.iter().enumerate() {
            if !origin.tls {
                out.push(format!(
                    "pools[{i}].origins[{k}]: \"auto\" negotiates HTTP/2 by TLS ALPN and this origin is cleartext: it is spoken to in HTTP/1.1 (\"h2\" speaks cleartext HTTP/2)"
                ));
            }
        }
    }
    out
}

/// Whether some host name matches both patterns. `Suffix(".example.com")` matches any host
/// ending with it, at any depth, never `example.com` itself (as routes match).
fn overlaps(a: &HostPattern, b: &HostPattern) -> bool {
    use HostPattern::{Any, Exact, Suffix};
    match (a, b) {
        (Any, _) | (_, Any) => true,
        (Exact(x), Exact(y)) => x == y,
        (Exact(h), Suffix(s)) | (Suffix(s), Exact(h)) => h.ends_with(s.as_str()),
        (Suffix(s), Suffix(t)) => s.ends_with(t.as_str()) || t.ends_with(s.as_str()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse;

    fn config(cert_hosts: &str, route_hosts: &[&str]) -> Config {
        let routes: Vec<String> = route_hosts
            .iter()
            .enumerate()
            .map(|(i, h)| format!(r#"{{"name": "r{i}", "hosts": {h}, "pool": "p"}}"#))
            .collect();
        parse(&format!(
            r#"{{"node": {{"tls_listen": "127.0.0.1:8443"}},
                "pools": [{{"name": "p", "origins": [{{"name": "a", "address": "127.0.0.1:9001"}}]}}],
                "routes": [{}],
                "certificates": [{{"name": "c", "hosts": {cert_hosts}, "cert_file": "c.pem", "key_file": "k.pem"}}]}}"#,
            routes.join(", ")
        ))
        .unwrap()
    }

    #[test]
    fn a_certificate_host_no_route_matches_is_a_warning_at_its_path() {
        let c = config(
            r#"["api.example.com", "*.example.com", "old.example.org", "*.internal"]"#,
            &[r#"["api.example.com"]"#, r#"["*.b.example.com"]"#],
        );
        assert_eq!(
            warnings(&c),
            [
                "certificates[0].hosts[2]: no route serves old.example.org (requests for it would get 404)",
                "certificates[0].hosts[3]: no route serves *.internal (requests for it would get 404)",
            ]
        );
    }

    #[test]
    fn exact_wildcard_and_catch_all_routes_serve_what_they_match() {
        for (cert, routes) in [
            (r#"["a.example.com"]"#, vec![r#"["*.example.com"]"#]),
            (r#"["*.example.com"]"#, vec![r#"["x.y.example.com"]"#]),
            (r#"["*.example.com"]"#, vec![r#"["*.com"]"#]),
            (r#"["*.example.com"]"#, vec![r#"["*.y.example.com"]"#]),
            (r#"["a.example.com"]"#, vec![r#"["b.test"]"#, r#"["*"]"#]),
            (r#"["a.example.com"]"#, vec![r#"["A.Example.com"]"#]),
        ] {
            assert_eq!(
                warnings(&config(cert, &routes)),
                Vec::<String>::new(),
                "{cert} {routes:?}"
            );
        }
        for (cert, routes) in [
            (r#"["example.com"]"#, vec![r#"["*.example.com"]"#]),
            (r#"["a.example.com"]"#, vec![r#"["*.b.example.com"]"#]),
            (r#"["*.example.com"]"#, vec![r#"["example.com"]"#]),
            (r#"["ample.com"]"#, vec![r#"["*.example.com"]"#]),
        ] {
            assert_eq!(
                warnings(&config(cert, &routes)).len(),
                1,
                "{cert} {routes:?}"
            );
        }
    }

    #[test]
    fn a_cleartext_origin_of_an_auto_pool_is_a_warning_at_its_path() {
        let text = |protocol: &str| {
            format!(
                r#"{{"pools": [{{"name": "p", "protocol": "{protocol}", "origins": [
                    {{"name": "a", "address": "127.0.0.1:9001", "tls": true}},
                    {{"name": "b", "address": "127.0.0.1:9002"}}]}}],
                   "routes": [{{"name": "r", "pool": "p"}}]}}"#
            )
        };
        let w = warnings(&parse(&text("auto")).unwrap());
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].starts_with("pools[0].origins[1]: \"auto\" negotiates"),
            "{w:?}"
        );
        assert!(warnings(&parse(&text("h2")).unwrap()).is_empty());
        assert!(warnings(&parse(&text("http/1.1")).unwrap()).is_empty());
    }

    #[test]
    fn a_client_certificate_for_a_pool_without_tls_origins_is_a_warning() {
        let text = |tls: bool| {
            format!(
                r#"{{"pools": [{{"name": "p", "client_cert_file": "c.pem", "client_key_file": "k.pem",
                    "origins": [{{"name": "a", "address": "127.0.0.1:9001", "tls": {tls}}},
                                {{"name": "b", "address": "127.0.0.1:9002"}}]}}],
                   "routes": [{{"name": "r", "pool": "p"}}]}}"#
            )
        };
        let w = warnings(&parse(&text(false)).unwrap());
        assert_eq!(
            w,
            [
                "pools[0].client_cert_file: no origin of the pool has \"tls\": true, so the certificate is never presented"
            ]
        );
        assert!(warnings(&parse(&text(true)).unwrap()).is_empty());
    }
}
