use super::*;
use std::time::Duration;

const MINIMAL: &str = r#"{
  "pools": [{"name": "api", "origins": [{"name": "a", "address": "127.0.0.1:9001"}]}],
  "routes": [{"name": "api", "pool": "api"}]
}"#;

fn errors(text: &str) -> Vec<String> {
    parse(text)
        .unwrap_err()
        .0
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn minimal_config_gets_every_default_of_the_spec() {
    let c = parse(MINIMAL).unwrap();
    assert_eq!(c.node.region, "local");
    assert_eq!(c.node.listen, "0.0.0.0:8080");
    assert_eq!(c.node.admin_listen, "127.0.0.1:9901");
    assert_eq!(c.node.threads, 1);
    assert_eq!(c.node.drain, Duration::ZERO);
    let p = &c.pools[0];
    assert_eq!(p.probe.path, "/");
    assert_eq!(p.probe.method, ProbeMethod::Head);
    assert_eq!(p.probe.interval, Duration::from_secs(5));
    assert_eq!(p.probe.timeout, Duration::from_secs(2));
    assert_eq!(p.probe.expected_status, StatusSet(vec![(200, 200)]));
    assert_eq!(p.load_balancing.sample_size, 4);
    assert_eq!(p.load_balancing.successful_samples_required, 3);
    assert_eq!(
        p.load_balancing.latency_sensitivity,
        Duration::from_millis(50)
    );
    assert_eq!(p.timeouts.connect, Duration::from_secs(1));
    assert_eq!(p.timeouts.response, Duration::from_secs(30));
    let o = &p.origins[0];
    assert_eq!((o.priority, o.weight, o.enabled), (1, 50, true));
    assert_eq!(
        (o.region.as_deref(), o.host_header.as_deref()),
        (None, None)
    );
    let r = &c.routes[0];
    assert_eq!(r.hosts, vec![HostPattern::Any]);
    assert_eq!(r.paths, vec![PathPattern::Prefix("/".into())]);
    assert_eq!(r.pool, 0);
    let f = p.failover;
    assert!(f.retries.enabled && f.ejection.enabled);
    assert_eq!(f.retries.max_attempts, 3);
    assert_eq!(f.ejection.consecutive_failures, 5);
}

#[test]
fn the_spec_example_is_valid_as_written() {
    let text = r#"{
      "node": { "region": "local", "listen": "0.0.0.0:8080", "admin_listen": "127.0.0.1:9901", "threads": 1 },
      "pools": [{
        "name": "api",
        "health_probe": { "path": "/", "method": "HEAD", "interval_ms": 5000, "timeout_ms": 2000,
                          "expected_status": [200] },
        "load_balancing": { "sample_size": 4, "successful_samples_required": 3, "latency_sensitivity_ms": 50 },
        "timeouts": { "connect_ms": 1000, "response_ms": 30000 },
        "origins": [
          { "name": "api-eu-1", "address": "127.0.0.1:9001", "priority": 1, "weight": 50,
            "enabled": true, "region": "eu-west", "host_header": null }
        ]
      }],
      "routes": [{ "name": "api", "hosts": ["*"], "paths": ["/*"], "pool": "api" }]
    }"#;
    let c = parse(text).unwrap();
    let o = &c.pools[0].origins[0];
    assert_eq!(
        (o.name.as_str(), o.address.as_str()),
        ("api-eu-1", "127.0.0.1:9001")
    );
    assert_eq!(o.region.as_deref(), Some("eu-west"));
}

#[test]
fn expected_status_mixes_codes_and_ranges() {
    let text = MINIMAL.replace(
        r#""name": "api", "origins""#,
        r#""name": "api", "health_probe": {"expected_status": [204, "200-299", "301-302"]}, "origins""#,
    );
    let set = parse(&text).unwrap().pools[0].probe.expected_status.clone();
    assert!(set.contains(204) && set.contains(250) && set.contains(302));
    assert!(!set.contains(300) && !set.contains(404));
    assert_eq!(set.to_string(), "204,200-299,301-302");
}

#[test]
fn every_error_is_reported_at_once_with_its_path() {
    let text = r#"{
      "node": {"region": "EU", "listen": "nope", "threads": 0, "colour": 1},
      "pools": [
        {"name": "api", "health_probe": {"interval_ms": 1000, "timeout_ms": 1000, "method": "POST",
                                          "expected_status": [200, "300-200", 700, true]},
         "load_balancing": {"sample_size": 2, "successful_samples_required": 3, "latency_sensitivity_ms": -1},
         "origins": [
           {"name": "a", "address": "10.0.0.1", "priority": 9, "weight": 0},
           {"name": "a", "address": "10.0.0.2:80", "weigth": 5},
           {"name": "B", "address": "10.0.0.2:80", "weight": "5"}
         ]},
        {"name": "api", "origins": []}
      ],
      "routes": [
        {"name": "r1", "hosts": ["*.ex*.com", "a.com:80"], "paths": ["api/*", "/a/*/b"], "pool": "nope"},
        {"name": "r1", "pool": "api"}
      ]
    }"#;
    assert_eq!(
        errors(text),
        vec![
            r#"node.colour: unknown field `colour`, expected one of `region`, `listen`, `tls_listen`, `admin_listen`, `threads`, `drain_ms`, `admin_token_file`, `access_log`, `trusted_proxies`, `limits`, `state_dir`"#,
            r#"node.listen: "nope" is not IP:PORT"#,
            r#"node.region: "EU" is not a valid region: use lower-case letters, digits, '_' and '-'"#,
            r#"node.threads: must be between 1 and 64, got 0"#,
            r#"pools[0].health_probe.expected_status[1]: "300-200" is not a range "LO-HI" of HTTP statuses (100-599, LO <= HI)"#,
            r#"pools[0].health_probe.expected_status[2]: 700 is not an HTTP status (100-599)"#,
            r#"pools[0].health_probe.expected_status[3]: true is neither a status nor a "LO-HI" range"#,
            r#"pools[0].health_probe.method: must be "GET" or "HEAD", got "POST""#,
            r#"pools[0].health_probe.timeout_ms: 1000 must be less than interval_ms (1000)"#,
            r#"pools[0].load_balancing.latency_sensitivity_ms: must be between 0 and 3600000, got -1"#,
            r#"pools[0].load_balancing.successful_samples_required: 3 must not exceed sample_size (2)"#,
            r#"pools[0].origins[0].address: "10.0.0.1" is not HOST:PORT"#,
            r#"pools[0].origins[0].priority: must be between 1 and 5, got 9"#,
            r#"pools[0].origins[0].weight: must be between 1 and 1000, got 0"#,
            r#"pools[0].origins[1].name: "a" is already the name of origins[0]"#,
            r#"pools[0].origins[1].weigth: unknown field `weigth`, expected one of `name`, `address`, `priority`, `weight`, `enabled`, `region`, `host_header`, `tls`, `sni`, `tls_verify`"#,
            r#"pools[0].origins[2].address: "10.0.0.2:80" is already the address of origins[1] in this pool"#,
            r#"pools[0].origins[2].name: "B" is not a valid name: use lower-case letters, digits, '_' and '-'"#,
            r#"pools[0].origins[2].weight: invalid type: string "5", expected an integer"#,
            r#"pools[1].name: "api" is already the name of pools[0]"#,
            r#"pools[1].origins: must hold at least one origin"#,
            r#"routes[0].hosts[0]: "*.ex*.com" is not a host pattern: use an exact host (api.example.com), a leading wildcard (*.example.com) or *"#,
            r#"routes[0].hosts[1]: "a.com:80" holds a port: ports are ignored when matching, write the host alone"#,
            r#"routes[0].paths[0]: "api/*" is not a path pattern: it must start with '/'"#,
            r#"routes[0].paths[1]: "/a/*/b" is not a path pattern: '*' is only allowed as a trailing "/*""#,
            r#"routes[0].pool: "nope" is not a pool (pools: api)"#,
            r#"routes[1].name: "r1" is already the name of routes[0]"#,
        ]
    );
}

#[test]
fn missing_required_fields_are_named() {
    let text = r#"{"pools": [{"origins": [{"priority": 2}]}], "routes": [{"hosts": ["*"]}]}"#;
    assert_eq!(
        errors(text),
        vec![
            "pools[0].name: is required",
            "pools[0].origins[0].address: is required (HOST:PORT)",
            "pools[0].origins[0].name: is required",
            "routes[0].name: is required",
            "routes[0].pool: is required: the name of a pool",
        ]
    );
    assert_eq!(
        errors("{}"),
        vec![
            "pools: is required: at least one pool of origins",
            "routes: is required: at least one route to a pool",
        ]
    );
}

#[test]
fn names_and_regions_have_a_length_limit() {
    let ok = "a".repeat(64);
    let long = "a".repeat(65);
    let doc = |pool: &str, origin: &str, route: &str, region: &str| {
        format!(
            r#"{{"node": {{"region": "{region}"}},
                "pools": [{{"name": "{pool}", "origins": [{{"name": "{origin}", "address": "127.0.0.1:1", "region": "{region}"}}]}}],
                "routes": [{{"name": "{route}", "pool": "{pool}"}}]}}"#
        )
    };
    assert!(
        parse(&doc(&ok, &ok, &ok, &ok)).is_ok(),
        "64 characters are fine"
    );
    let why = "a name of 65 characters is too long: at most 64";
    let region = "a region of 65 characters is too long: at most 64";
    assert_eq!(
        errors(&doc(&long, &long, &long, &long)),
        vec![
            format!("node.region: {region}"),
            format!("pools[0].name: {why}"),
            format!("pools[0].origins[0].name: {why}"),
            format!("pools[0].origins[0].region: {region}"),
            format!("routes[0].name: {why}"),
        ]
    );
}

#[test]
fn a_value_of_the_wrong_type_is_reported_once() {
    let text = r#"{"pools": [{"name": 5, "origins": [{"name": "a", "address": 80}]}],
                   "routes": [{"name": "r", "pool": "x"}]}"#;
    assert_eq!(
        errors(text),
        vec![
            "pools[0].name: invalid type: integer `5`, expected a string",
            "pools[0].origins[0].address: invalid type: integer `80`, expected a string",
            r#"routes[0].pool: "x" is not a pool (pools: )"#,
        ]
    );
}

#[test]
fn json_syntax_and_shape_errors() {
    let e = errors("{\"pools\": [}");
    assert_eq!(e.len(), 1);
    assert!(e[0].starts_with("not valid JSON: "), "{e:?}");
    assert!(e[0].contains("line 1"), "{e:?}");
    assert_eq!(
        errors("[1]"),
        vec!["the configuration must be a JSON object with `pools` and `routes`"]
    );
    assert_eq!(
        errors(r#"{"pools": {}, "routes": []}"#),
        vec![
            "pools: invalid type: map, expected a list",
            "routes: must hold at least one route",
        ]
    );
}

#[test]
fn overlapping_routes_are_rejected() {
    let text = r#"{"pools": [{"name": "p", "origins": [{"name": "a", "address": "h:1"}]}],
      "routes": [{"name": "one", "hosts": ["A.example.com"], "paths": ["/x/*"], "pool": "p"},
                 {"name": "two", "hosts": ["a.example.com."], "paths": ["/y", "/x/*"], "pool": "p"}]}"#;
    assert_eq!(
        errors(text),
        vec![r#"routes[1].hosts[0]: host a.example.com with path /x/* is already routed by "one""#]
    );
}

#[test]
fn unknown_pool_of_a_pool_with_a_bad_name_is_not_reported_twice() {
    let text = r#"{"pools": [{"name": "Bad", "origins": [{"name": "a", "address": "h:1"}]}],
      "routes": [{"name": "r", "pool": "Bad"}]}"#;
    assert_eq!(
        errors(text),
        vec![
            r#"pools[0].name: "Bad" is not a valid name: use lower-case letters, digits, '_' and '-'"#
        ]
    );
}

#[test]
fn addresses() {
    for ok in [
        "127.0.0.1:80",
        "localhost:8080",
        "api.internal:1",
        "[::1]:443",
        "a_b.c-d:65535",
    ] {
        assert!(is_host_port(ok), "{ok}");
    }
    for bad in [
        "10.0.0.1",
        ":80",
        "host:",
        "host:0",
        "host:65536",
        "::1:80",
        "[::1]",
        "a..b:80",
        "host:8x",
        "h st:80",
    ] {
        assert!(!is_host_port(bad), "{bad}");
    }
}

#[test]
fn overrides_replace_node_fields_and_are_validated_by_flag_name() {
    let o = Overrides {
        region: Some("eu-west".into()),
        listen: Some("127.0.0.1:18080".into()),
        admin_listen: None,
        tls_listen: None,
    };
    let c = parse_with(MINIMAL, &o).unwrap();
    assert_eq!(c.node.region, "eu-west");
    assert_eq!(c.node.listen, "127.0.0.1:18080");
    let bad = Overrides {
        region: Some("EU West".into()),
        listen: Some("127.0.0.1:9901".into()),
        admin_listen: None,
        tls_listen: None,
    };
    let e = parse_with(MINIMAL, &bad).unwrap_err();
    assert_eq!(
        e.0.iter().map(ToString::to_string).collect::<Vec<_>>(),
        vec![
            r#"--region: "EU West" is not a valid region: use lower-case letters, digits, '_' and '-'"#,
            r#"node.admin_listen: "127.0.0.1:9901" is the proxy listener's socket ("127.0.0.1:9901"); use another port"#,
        ]
    );
}

#[test]
fn failover_settings_parse_and_validate() {
    let text = MINIMAL.replace(
        r#""name": "api", "origins""#,
        r#""name": "api", "failover": {"retries": {"enabled": false, "max_attempts": 2, "budget_percent": 50},
            "ejection": {"consecutive_failures": 2, "base_ejection_ms": 100, "max_ejection_ms": 50, "max_ejected_percent": 101}}, "origins""#,
    );
    assert_eq!(
        errors(&text),
        vec![
            "pools[0].failover.ejection.max_ejected_percent: must be between 0 and 100, got 101",
            "pools[0].failover.ejection.max_ejection_ms: 50 must not be less than base_ejection_ms (100)",
        ]
    );
    let text = text.replace(
        r#""max_ejection_ms": 50, "max_ejected_percent": 101"#,
        r#""max_ejection_ms": 500"#,
    );
    let f = parse(&text).unwrap().pools[0].failover;
    assert!(!f.retries.enabled);
    assert_eq!(f.retries.max_attempts, 2);
    assert!((f.retries.budget_ratio - 0.5).abs() < f64::EPSILON);
    assert_eq!(f.ejection.base_ejection, Duration::from_millis(100));
    assert_eq!(f.ejection.max_ejection, Duration::from_millis(500));
}

#[test]
fn version_is_a_fingerprint_of_the_text() {
    let a = parse(MINIMAL).unwrap().version;
    let b = parse(&format!("{MINIMAL} ")).unwrap().version;
    assert_eq!(a.len(), 16);
    assert_ne!(a, b);
    assert_eq!(a, fingerprint(MINIMAL));
}

#[test]
fn too_many_origins() {
    let origins: Vec<String> = (0..65)
        .map(|i| format!(r#"{{"name": "o{i}", "address": "127.0.0.1:{}"}}"#, 1000 + i))
        .collect();
    let text = format!(
        r#"{{"pools": [{{"name": "p", "origins": [{}]}}], "routes": [{{"name": "r", "pool": "p"}}]}}"#,
        origins.join(",")
    );
    assert_eq!(
        errors(&text),
        vec!["pools[0].origins: holds 65 origins; a pool holds at most 64"]
    );
}

fn with_probe_path(path: &str) -> String {
    let path = serde_json::to_string(path).unwrap();
    format!(
        r#"{{"pools": [{{"name": "p", "health_probe": {{"path": {path}}},
              "origins": [{{"name": "a", "address": "127.0.0.1:1"}}]}}],
            "routes": [{{"name": "r", "pool": "p"}}]}}"#
    )
}

#[test]
fn probe_paths_are_checked_with_the_request_parser() {
    for ok in ["/", "/health?full=1", "/a%20b", "/~user/x.json"] {
        assert!(parse(&with_probe_path(ok)).is_ok(), "{ok}");
    }
    for bad in [
        "/<script>",
        "/a>b",
        "/`id`",
        "/a b",
        "/\u{7f}",
        "/é",
        "health",
    ] {
        let e = errors(&with_probe_path(bad));
        assert_eq!(e.len(), 1, "{bad}: {e:?}");
        assert!(
            e[0].starts_with("pools[0].health_probe.path: "),
            "{bad}: {e:?}"
        );
    }
    let long = format!("/{}", "a".repeat(70_000));
    assert_eq!(
        errors(&with_probe_path(&long)),
        vec!["pools[0].health_probe.path: is 70001 bytes long; at most 8192"]
    );
}

#[test]
fn listeners_naming_one_socket_two_ways_are_rejected() {
    let with = |listen: &str, admin: &str| {
        MINIMAL.replacen(
            '{',
            &format!(r#"{{"node": {{"listen": "{listen}", "admin_listen": "{admin}"}},"#),
            1,
        )
    };
    for (l, a) in [
        ("0.0.0.0:9000", "127.0.0.1:9000"),
        ("127.0.0.1:9000", "0.0.0.0:9000"),
        ("127.0.0.1:9000", "127.0.0.1:9000"),
        ("[::]:9000", "127.0.0.1:9000"),
    ] {
        let e = errors(&with(l, a));
        assert_eq!(e.len(), 1, "{l} {a}: {e:?}");
        assert!(e[0].starts_with("node.admin_listen: "), "{e:?}");
    }
    assert!(parse(&with("127.0.0.1:9000", "127.0.0.2:9000")).is_ok());
    assert!(parse(&with("0.0.0.0:9000", "127.0.0.1:9001")).is_ok());
}

#[test]
fn trusted_proxies_are_networks_each_checked_by_path() {
    let text = MINIMAL.replacen(
        '{',
        r#"{"node": {"trusted_proxies": ["10.0.0.0/8", "192.0.2.1", "10.1.0.0/8", "x"]},"#,
        1,
    );
    let e = errors(&text);
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(e[0].starts_with("node.trusted_proxies[2]: "), "{e:?}");
    assert!(e[1].starts_with("node.trusted_proxies[3]: "), "{e:?}");
    let ok = MINIMAL.replacen(
        '{',
        r#"{"node": {"trusted_proxies": ["10.0.0.0/8", "::1"]},"#,
        1,
    );
    assert_eq!(parse(&ok).unwrap().node.trusted_proxies.len(), 2);
}

fn with_tls(node: &str, certificates: &str, origin_extra: &str, pool_extra: &str) -> String {
    format!(
        r#"{{"node": {{{node}}},
            "pools": [{{"name": "api"{pool_extra},
                        "origins": [{{"name": "a", "address": "127.0.0.1:9001"{origin_extra}}}]}}],
            "routes": [{{"name": "api", "pool": "api"}}],
            "certificates": {certificates}}}"#
    )
}

const ONE_CERT: &str = r#"[{"name": "main", "hosts": ["api.example.com", "*.example.com"], "cert_file": "c.pem", "key_file": "k.pem"}]"#;

#[test]
fn tls_fields_parse_with_their_defaults() {
    let c = parse(MINIMAL).unwrap();
    assert_eq!(c.node.tls_listen, None);
    assert!(c.certificates.is_empty());
    assert_eq!(c.pools[0].ca_file, None);
    let o = &c.pools[0].origins[0];
    assert!(!o.tls);
    assert!(o.tls_verify);
    assert_eq!(o.sni, None);
    assert!(!c.routes[0].https_redirect);

    let text = with_tls(
        r#""tls_listen": "0.0.0.0:8443""#,
        ONE_CERT,
        r#", "tls": true, "tls_verify": false, "sni": "origin.internal""#,
        r#", "ca_file": "ca.pem""#,
    );
    let c = parse(&text).unwrap();
    assert_eq!(c.node.tls_listen.as_deref(), Some("0.0.0.0:8443"));
    assert_eq!(c.certificates.len(), 1);
    let cert = &c.certificates[0];
    assert_eq!(cert.name, "main");
    assert_eq!(
        cert.hosts,
        vec![
            HostPattern::Exact("api.example.com".into()),
            HostPattern::Suffix(".example.com".into())
        ]
    );
    assert_eq!(
        cert.source,
        CertSource::Files {
            cert_file: "c.pem".into(),
            key_file: "k.pem".into()
        }
    );
    assert_eq!(c.pools[0].ca_file.as_deref(), Some("ca.pem"));
    let o = &c.pools[0].origins[0];
    assert!(o.tls && !o.tls_verify);
    assert_eq!(o.sni_name(), "origin.internal");
    let text = MINIMAL.replace(
        r#""pool": "api"}"#,
        r#""pool": "api", "https_redirect": true}"#,
    );
    assert!(parse(&text).unwrap().routes[0].https_redirect);
}

#[test]
fn a_pool_client_certificate_needs_both_files() {
    let pool = |extra: &str| with_tls("", "[]", r#", "tls": true"#, extra);
    assert_eq!(parse(MINIMAL).unwrap().pools[0].client_cert, None);
    let c = parse(&pool(
        r#", "client_cert_file": "edge.pem", "client_key_file": "edge-key.pem""#,
    ))
    .unwrap();
    assert_eq!(
        c.pools[0].client_cert,
        Some(PoolClientCert {
            cert_file: "edge.pem".into(),
            key_file: "edge-key.pem".into(),
        })
    );
    assert_eq!(
        errors(&pool(r#", "client_cert_file": "edge.pem""#)),
        vec![
            "pools[0].client_key_file: is required with client_cert_file: the PEM private key of that certificate"
        ]
    );
    assert_eq!(
        errors(&pool(r#", "client_key_file": "edge-key.pem""#)),
        vec![
            "pools[0].client_cert_file: is required with client_key_file: the PEM certificate chain of that key"
        ]
    );
    assert_eq!(
        errors(&pool(r#", "client_cert_file": " ", "client_key_file": """#)),
        vec![
            "pools[0].client_cert_file: must name a PEM file",
            "pools[0].client_key_file: must name a PEM file",
        ]
    );
}

#[test]
fn the_origin_sni_defaults_to_host_header_then_the_address_host() {
    let origin = |address: &str, host_header: Option<&str>| OriginConfig {
        name: "a".into(),
        address: address.into(),
        priority: 1,
        weight: 1,
        enabled: true,
        region: None,
        host_header: host_header.map(str::to_string),
        tls: true,
        sni: None,
        tls_verify: true,
    };
    assert_eq!(origin("api.internal:443", None).sni_name(), "api.internal");
    assert_eq!(origin("10.0.0.1:443", None).sni_name(), "10.0.0.1");
    assert_eq!(origin("[::1]:443", None).sni_name(), "::1");
    assert_eq!(
        origin("10.0.0.1:443", Some("api.example.com")).sni_name(),
        "api.example.com"
    );
    assert_eq!(
        origin("10.0.0.1:443", Some("api.example.com:8443")).sni_name(),
        "api.example.com"
    );
}

#[test]
fn client_auth_is_required_by_default_and_needs_a_ca_file() {
    let certs = |auth: &str| {
        format!(
            r#"[{{"name": "main", "hosts": ["api.example.com"], "cert_file": "c.pem", "key_file": "k.pem", "client_auth": {auth}}}]"#
        )
    };
    let c = parse(&with_tls(
        "",
        &certs(r#"{"ca_file": "clients.pem"}"#),
        "",
        "",
    ))
    .unwrap();
    assert_eq!(
        c.certificates[0].client_auth,
        Some(ClientAuthConfig {
            ca_file: "clients.pem".into(),
            required: true
        })
    );
    let c = parse(&with_tls(
        "",
        &certs(r#"{"ca_file": "clients.pem", "required": false}"#),
        "",
        "",
    ))
    .unwrap();
    assert_eq!(
        c.certificates[0].client_auth.as_ref().map(|a| a.required),
        Some(false)
    );
    assert_eq!(
        parse(&with_tls("", ONE_CERT, "", "")).unwrap().certificates[0].client_auth,
        None
    );
    assert_eq!(
        errors(&with_tls("", &certs(r#"{"required": true}"#), "", "")),
        vec![
            "certificates[0].client_auth.ca_file: is required: a PEM file of the CA client certificates chain to"
        ]
    );
    assert_eq!(
        errors(&with_tls("", &certs(r#"{"ca_file": " "}"#), "", "")),
        vec!["certificates[0].client_auth.ca_file: must name a PEM file"]
    );
    assert_eq!(
        errors(&with_tls(
            "",
            &certs(r#"{"ca_file": "a.pem", "mode": "x"}"#),
            "",
            ""
        ))
        .len(),
        1
    );
}

#[test]
fn tls_errors_are_reported_by_path() {
    let text = with_tls(
        r#""listen": "0.0.0.0:8080", "tls_listen": "127.0.0.1:8080""#,
        r#"[{"name": "Main", "hosts": ["*", "a.example.com:443", "*.example.com"], "cert_file": " ", "key_file": "k.pem"},
            {"name": "other", "hosts": ["*.example.com"], "cert_file": "c.pem"},
            {"name": "third", "hosts": []}]"#,
        r#", "tls": "yes", "sni": "a b""#,
        r#", "ca_file": """#,
    );
    assert_eq!(
        errors(&text),
        vec![
            "certificates[0].cert_file: must name a PEM file",
            "certificates[0].hosts[0]: \"*\" is not a certificate host: use an exact host (api.example.com) or a leading wildcard (*.example.com)",
            "certificates[0].hosts[1]: \"a.example.com:443\" is not a certificate host: use an exact host (api.example.com) or a leading wildcard (*.example.com)",
            "certificates[0].name: \"Main\" is not a valid name: use lower-case letters, digits, '_' and '-'",
            "certificates[1].hosts[0]: \"*.example.com\" is already served by certificates[0]",
            "certificates[1].key_file: is required: a PEM file (or \"acme\": true to have the certificate ordered)",
            "certificates[2].cert_file: is required: a PEM file (or \"acme\": true to have the certificate ordered)",
            "certificates[2].hosts: must hold at least one host",
            "certificates[2].key_file: is required: a PEM file (or \"acme\": true to have the certificate ordered)",
            "node.tls_listen: \"127.0.0.1:8080\" is the proxy listener's socket (\"0.0.0.0:8080\"); use another port",
            "pools[0].ca_file: must name a PEM file (or leave it out for the system roots)",
            "pools[0].origins[0].sni: \"a b\" is not a DNS name",
            "pools[0].origins[0].tls: invalid type: string \"yes\", expected a boolean",
        ]
    );
}

#[test]
fn a_tls_listener_needs_certificates_and_its_own_socket() {
    let text = with_tls(r#""tls_listen": "0.0.0.0:9901""#, "[]", "", "");
    assert_eq!(
        errors(&text),
        vec![
            "certificates: node.tls_listen is set: list at least one certificate (name, hosts, cert_file, key_file)",
            "node.tls_listen: \"0.0.0.0:9901\" is the admin listener's socket (\"127.0.0.1:9901\"); use another port",
        ]
    );
    let text = with_tls(r#""tls_listen": "8443""#, ONE_CERT, "", "");
    assert_eq!(
        errors(&text),
        vec!["node.tls_listen: \"8443\" is not IP:PORT"]
    );
    // Certificates without a TLS listener are checked but unused.
    assert!(parse(&with_tls("", ONE_CERT, "", "")).is_ok());
}

#[test]
fn the_tls_listen_flag_replaces_or_adds_node_tls_listen_and_is_validated_by_flag_name() {
    let flag = |v: &str| Overrides {
        tls_listen: Some(v.into()),
        ..Overrides::default()
    };
    let with_listener = with_tls(r#""tls_listen": "0.0.0.0:8443""#, ONE_CERT, "", "");
    let c = parse_with(&with_listener, &flag("127.0.0.1:9443")).unwrap();
    assert_eq!(c.node.tls_listen.as_deref(), Some("127.0.0.1:9443"));
    let without = with_tls(r#""region": "local""#, ONE_CERT, "", "");
    let c = parse_with(&without, &flag("127.0.0.1:9443")).unwrap();
    assert_eq!(c.node.tls_listen.as_deref(), Some("127.0.0.1:9443"));
    let e = parse_with(&without, &flag("nope")).unwrap_err();
    assert_eq!(
        e.0.iter().map(ToString::to_string).collect::<Vec<_>>(),
        vec![r#"--tls-listen: "nope" is not IP:PORT"#]
    );
    let e = parse_with(&without, &flag("0.0.0.0:8080")).unwrap_err();
    assert_eq!(
        e.0.iter().map(ToString::to_string).collect::<Vec<_>>(),
        vec![
            r#"--tls-listen: "0.0.0.0:8080" is the proxy listener's socket ("0.0.0.0:8080"); use another port"#
        ]
    );
    let no_certificates = parse_with(MINIMAL, &flag("127.0.0.1:9443")).unwrap_err();
    assert_eq!(
        no_certificates.0[0].to_string(),
        "certificates: node.tls_listen is set: list at least one certificate (name, hosts, cert_file, key_file)"
    );
}

const WITH_RULES: &str = r#"{
  "pools": [{"name": "api", "origins": [{"name": "a", "address": "127.0.0.1:9001"}]},
            {"name": "canary", "origins": [{"name": "c", "address": "127.0.0.1:9002"}]}],
  "rule_sets": [
    {"name": "global", "rules": [{"name": "hsts", "then": {"response_headers": {"set": {"Strict-Transport-Security": "max-age=63072000"}}}}]},
    {"name": "api", "rules": [{"name": "canary", "when": {"headers": [{"name": "x-canary", "present": true}]}, "then": {"pool": "canary"}}]}
  ],
  "routes": [{"name": "api", "pool": "api", "rule_sets": ["global", "api"]},
             {"name": "plain", "paths": ["/plain"], "pool": "api"}]
}"#;

#[test]
fn routes_name_rule_sets_in_order() {
    let c = parse(WITH_RULES).unwrap();
    let rules = &c.rule_sets.compiled;
    assert_eq!(rules.names().collect::<Vec<_>>(), ["global", "api"]);
    assert_eq!(
        c.routes[0].rule_sets,
        [rules.id("global").unwrap(), rules.id("api").unwrap()]
    );
    assert!(c.routes[1].rule_sets.is_empty());
    assert_eq!(rules.rule_count(), 2);
    assert!(warnings(&c).is_empty(), "{:?}", warnings(&c));
    // Equal JSON, equal rule sets; another header, not.
    assert_eq!(parse(WITH_RULES).unwrap().rule_sets, c.rule_sets);
    let other = parse(&WITH_RULES.replace("63072000", "1")).unwrap();
    assert_ne!(other.rule_sets, c.rule_sets);
    assert!(parse(MINIMAL).unwrap().rule_sets.compiled.rule_count() == 0);
}

#[test]
fn rule_set_errors_name_their_paths_with_the_rest_of_the_config() {
    let text = WITH_RULES
        .replace(r#""pool": "canary""#, r#""pool": "nowhere""#)
        .replace(
            r#""global", "api"]"#,
            r#""global", "api", "missing", "api"]"#,
        )
        .replace(r#""address": "127.0.0.1:9002""#, r#""address": "nohost""#);
    assert_eq!(
        errors(&text),
        [
            "pools[1].origins[0].address: \"nohost\" is not HOST:PORT",
            "routes[0].rule_sets[2]: \"missing\" is not a rule set",
            "rule_sets[1].rules[0].then.pool: \"nowhere\" is not a pool (pools: api, canary)",
        ]
        .map(String::from),
        "{text}"
    );
    let unknown_key = WITH_RULES.replace(r#""then": {"pool""#, r#""then": {"pools""#);
    let e = errors(&unknown_key);
    assert!(
        e.iter()
            .any(|e| e.starts_with("rule_sets[1].rules[0].then.pools: unknown field `pools`")),
        "{e:?}"
    );
    let named_twice = WITH_RULES.replace(r#""global", "api"]"#, r#""global", "global"]"#);
    assert_eq!(
        errors(&named_twice),
        ["routes[0].rule_sets[1]: \"global\" is named twice"]
    );
}

#[test]
fn unused_rule_sets_and_idle_rules_are_warned_about() {
    let text = WITH_RULES.replace(r#", "rule_sets": ["global", "api"]"#, "");
    let w = warnings(&parse(&text).unwrap());
    assert_eq!(
        w,
        [
            "rule_sets[0]: no route names \"global\" in its rule_sets, so it never runs",
            "rule_sets[1]: no route names \"api\" in its rule_sets, so it never runs",
        ]
    );
}

#[test]
fn pool_protocol_defaults_to_http1_and_parses_each_spelling() {
    assert_eq!(
        parse(MINIMAL).unwrap().pools[0].protocol,
        OriginProtocol::Http1
    );
    for (spelling, want, versions) in [
        ("http/1.1", OriginProtocol::Http1, (1, 1)),
        ("h2", OriginProtocol::H2, (2, 2)),
        ("auto", OriginProtocol::Auto, (2, 1)),
    ] {
        let text = with_tls("", "[]", "", &format!(r#", "protocol": "{spelling}""#));
        let p = parse(&text).unwrap().pools[0].protocol;
        assert_eq!(p, want);
        assert_eq!(p.versions(), versions);
    }
}

#[test]
fn an_unknown_pool_protocol_is_an_error_at_its_path() {
    for bad in [r#""h3""#, r#""HTTP/2""#, "2"] {
        let text = with_tls("", "[]", "", &format!(r#", "protocol": {bad}"#));
        let errs = errors(&text);
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(errs[0].starts_with("pools[0].protocol: "), "{errs:?}");
    }
}
