//! Stage two: check the raw document, collect every error with its path, build the typed config.

use super::error::{Collector, ConfigError, ConfigErrors, int, join};
use super::model::*;
use super::raw::*;
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::net::{Ipv6Addr, SocketAddr};
use std::time::Duration;

/// Most origins a pool may have (the selector tracks tried origins in a 64-bit mask).
pub const MAX_ORIGINS_PER_POOL: usize = 64;

/// Values given on the command line that replace `node.*` before validation.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--region`.
    pub region: Option<String>,
    /// `--listen`.
    pub listen: Option<String>,
    /// `--admin-listen`.
    pub admin_listen: Option<String>,
    /// `--tls-listen`.
    pub tls_listen: Option<String>,
}

/// Parses and validates a configuration document.
pub fn parse(text: &str) -> Result<Config, ConfigErrors> {
    parse_with(text, &Overrides::default())
}

/// Parses and validates a configuration document, applying command-line overrides to `node`.
pub fn parse_with(text: &str, overrides: &Overrides) -> Result<Config, ConfigErrors> {
    let value: Value = serde_json::from_str(text)
        .map_err(|e| ConfigErrors(vec![ConfigError::new("", format!("not valid JSON: {e}"))]))?;
    if !value.is_object() {
        return Err(ConfigErrors(vec![ConfigError::new(
            "",
            "the configuration must be a JSON object with `pools` and `routes`",
        )]));
    }
    let mut c = Collector::default();
    let (raw, raw_errors) = deserialize_collecting::<RawConfig>(value);
    for e in raw_errors {
        c.push(e.path, friendly(&e.message));
    }
    let Some(raw) = raw else {
        return Err(ConfigErrors(c.errors));
    };
    let node = validate_node(&mut c, raw.node.as_ref(), overrides);
    let (pools, failed_pool_names) = validate_pools(&mut c, raw.pools.as_deref());
    let rule_sets = validate_rule_sets(&mut c, raw.rule_sets.as_ref(), &pools);
    let routes = validate_routes(
        &mut c,
        raw.routes.as_deref(),
        &pools,
        &failed_pool_names,
        &rule_sets,
    );
    let certificates = validate_certificates(&mut c, raw.certificates.as_deref(), &node);
    let acme = super::validate_acme::validate_acme(&mut c, raw.acme.as_ref(), &certificates);

    if !c.errors.is_empty() {
        let mut errors = c.errors;
        errors.sort_by_cached_key(|e| path_key(&e.path));
        return Err(ConfigErrors(errors));
    }
    Ok(Config {
        node,
        pools: pools.into_iter().map(|(_, p)| p).collect(),
        routes,
        certificates,
        acme,
        version: fingerprint(text),
        rule_sets: rule_sets.config,
    })
}

/// `rule_sets`, compiled, and the names written there (a route naming a rule set that did
/// not compile is not told it names none).
struct RuleSets {
    config: RuleSetsConfig,
    written: HashSet<String>,
}

fn validate_rule_sets(c: &mut Collector, raw: Option<&Value>, pools: &Pools) -> RuleSets {
    let written = raw
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|set| set.get("name")?.as_str().map(str::to_string))
        .collect();
    let Some(value) = raw.filter(|v| !v.is_null()) else {
        return RuleSets {
            config: RuleSetsConfig::default(),
            written,
        };
    };
    let names: Vec<&str> = pools.iter().map(|(n, _)| n.as_str()).collect();
    let compiled = match crate::rules::parse_rule_sets(value, "rule_sets", &names) {
        Ok(compiled) => compiled,
        Err(errors) => {
            c.errors.extend(errors.0);
            Default::default()
        }
    };
    RuleSets {
        config: RuleSetsConfig {
            compiled: std::sync::Arc::new(compiled),
            source: value.clone(),
        },
        written,
    }
}

/// serde's type names in words: `expected i64` becomes `expected an integer`, `expected
/// struct RawPool` becomes `expected an object`.
pub(crate) fn friendly(message: &str) -> String {
    let message = match message.find("expected struct Raw") {
        Some(at) => format!("{}expected an object", &message[..at]),
        None => message.to_string(),
    };
    message
        .replace("expected i64", "expected an integer")
        .replace("expected a sequence", "expected a list")
        .replace("expected a borrowed string", "expected a string")
}

/// Sort key putting paths in document order: `pools[2]` before `pools[10]`.
pub(crate) fn path_key(path: &str) -> Vec<(String, usize)> {
    path.split(['.', '['])
        .map(
            |part| match part.strip_suffix(']').and_then(|n| n.parse().ok()) {
                Some(index) => (String::new(), index),
                None => (part.to_string(), 0),
            },
        )
        .collect()
}

/// Whether two `IP:PORT` listeners would claim one socket: same port, and the same IP or
/// either one a wildcard (`0.0.0.0`, `::`).
fn same_socket(a: &str, b: &str) -> bool {
    match (a.parse::<SocketAddr>(), b.parse::<SocketAddr>()) {
        (Ok(a), Ok(b)) => {
            a.port() == b.port()
                && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
        }
        _ => a == b,
    }
}

/// Longest probe path: the request-line limit Portico applies to clients.
pub const MAX_PROBE_PATH: usize = 8192;

/// Checks a probe path with the parser the probe's request is built with (the `http` crate's
/// request-target rules), so a path `--check` accepts can always be sent.
fn probe_path(v: &str) -> Result<(), String> {
    let shown: String = v.chars().take(60).collect();
    if !v.starts_with('/') {
        return Err(format!("{shown:?} must start with '/'"));
    }
    if v.len() > MAX_PROBE_PATH {
        return Err(format!(
            "is {} bytes long; at most {MAX_PROBE_PATH}",
            v.len()
        ));
    }
    let visible = v.bytes().all(|b| (0x21..=0x7e).contains(&b));
    match http::uri::PathAndQuery::try_from(v) {
        Ok(pq) if visible && pq.as_str() == v => Ok(()),
        Ok(_) | Err(_) => Err(format!(
            "{shown:?} is not a valid request path: use visible ASCII, with spaces and characters such as < > ` \" {{ }} percent-encoded"
        )),
    }
}

/// FNV-1a 64 of the configuration text, as 16 hex digits.
pub fn fingerprint(text: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{hash:016x}")
}

fn ms(v: i64) -> Duration {
    Duration::from_millis(v.max(0) as u64)
}

/// Checks a name against `[a-z0-9_-]+`.
fn name(c: &mut Collector, path: &str, value: Option<&String>) -> Option<String> {
    match value {
        None => {
            c.require(path, "is required");
            None
        }
        Some(n) => match name_problem("name", n) {
            None => Some(n.clone()),
            Some(why) => {
                c.push(path, why);
                None
            }
        },
    }
}

/// Longest name (of a pool, origin, route or region): names go into metric labels, `Via`
/// tokens and log lines.
pub const MAX_NAME_LEN: usize = 64;

/// What is wrong with `s` as a name (`kind`: "name" or "region"), if anything.
pub(crate) fn name_problem(kind: &str, s: &str) -> Option<String> {
    if !is_name(s) {
        let shown: String = s.chars().take(80).collect();
        return Some(format!(
            "{shown:?} is not a valid {kind}: use lower-case letters, digits, '_' and '-'"
        ));
    }
    if s.len() > MAX_NAME_LEN {
        return Some(format!(
            "a {kind} of {} characters is too long: at most {MAX_NAME_LEN}",
            s.len()
        ));
    }
    None
}

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

fn listen_addr(c: &mut Collector, path: &str, value: Option<&String>, default: &str) -> String {
    let Some(v) = value else {
        return default.to_string();
    };
    match v.parse::<SocketAddr>() {
        Ok(a) if a.port() != 0 => v.clone(),
        Ok(_) => {
            c.push(path, format!("{v:?} needs a port other than 0"));
            default.to_string()
        }
        Err(_) => {
            c.push(path, format!("{v:?} is not IP:PORT"));
            default.to_string()
        }
    }
}

fn validate_node(c: &mut Collector, parsed: Option<&RawNode>, o: &Overrides) -> NodeConfig {
    let pick = |flag: &Option<String>, field: Option<&String>, path: &'static str| match flag {
        Some(v) => (Some(v.clone()), flag_path(path)),
        None => (field.cloned(), path.to_string()),
    };
    let (region, region_path) = pick(
        &o.region,
        parsed.and_then(|n| n.region.as_ref()),
        "node.region",
    );
    let region = match region {
        None => "local".to_string(),
        Some(r) => match name_problem("region", &r) {
            None => r,
            Some(why) => {
                c.push(region_path, why);
                "local".to_string()
            }
        },
    };
    let (listen, listen_path) = pick(
        &o.listen,
        parsed.and_then(|n| n.listen.as_ref()),
        "node.listen",
    );
    let listen = listen_addr(c, &listen_path, listen.as_ref(), "0.0.0.0:8080");
    let (admin, admin_path) = pick(
        &o.admin_listen,
        parsed.and_then(|n| n.admin_listen.as_ref()),
        "node.admin_listen",
    );
    let admin_listen = listen_addr(c, &admin_path, admin.as_ref(), "127.0.0.1:9901");
    if same_socket(&listen, &admin_listen) {
        c.push(
            admin_path,
            format!(
                "{admin_listen:?} is the proxy listener's socket ({listen:?}); use another port"
            ),
        );
    }
    let (tls, tls_path) = pick(
        &o.tls_listen,
        parsed.and_then(|n| n.tls_listen.as_ref()),
        "node.tls_listen",
    );
    let tls_listen = match tls {
        None => None,
        Some(v) => {
            let addr = listen_addr(c, &tls_path, Some(&v), "");
            for (other, what) in [(&listen, "proxy"), (&admin_listen, "admin")] {
                if !addr.is_empty() && same_socket(&addr, other) {
                    c.push(
                        tls_path.clone(),
                        format!(
                            "{addr:?} is the {what} listener's socket ({other:?}); use another port"
                        ),
                    );
                }
            }
            (!addr.is_empty()).then_some(addr)
        }
    };
    let threads = int(c, "node.threads", parsed.and_then(|n| n.threads), 1, 1, 64);
    let drain = int(
        c,
        "node.drain_ms",
        parsed.and_then(|n| n.drain_ms),
        0,
        0,
        600_000,
    );
    let admin_token_file = parsed.and_then(|n| n.admin_token_file.clone());
    if admin_token_file
        .as_deref()
        .is_some_and(|f| f.trim().is_empty())
    {
        c.push(
            "node.admin_token_file",
            "must name a file (or leave it out)",
        );
    }
    let access_log = match parsed.and_then(|n| n.access_log.as_deref()) {
        None => AccessLogTarget::Off,
        Some("stdout") => AccessLogTarget::Stdout,
        Some(f) if f.trim().is_empty() => {
            c.push(
                "node.access_log",
                "must be \"stdout\" or a file path (or null for no access log)",
            );
            AccessLogTarget::Off
        }
        Some(f) => AccessLogTarget::File(f.to_string()),
    };
    let mut trusted_proxies = Vec::new();
    for (i, net) in parsed
        .and_then(|n| n.trusted_proxies.as_deref())
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        match crate::cidr::Cidr::parse(net) {
            Ok(c) => trusted_proxies.push(c),
            Err(e) => c.push(format!("node.trusted_proxies[{i}]"), e),
        }
    }
    let limits = validate_limits(c, parsed.and_then(|n| n.limits.as_ref()));
    let state_dir = match parsed.and_then(|n| n.state_dir.as_deref()) {
        None => DEFAULT_STATE_DIR.to_string(),
        Some(d) if d.trim().is_empty() => {
            c.push("node.state_dir", "must name a directory");
            DEFAULT_STATE_DIR.to_string()
        }
        Some(d) => d.to_string(),
    };
    NodeConfig {
        state_dir,
        limits,
        region,
        listen,
        tls_listen,
        admin_listen,
        threads: threads as usize,
        drain: ms(drain),
        admin_token_file,
        access_log,
        trusted_proxies,
    }
}

/// `node.limits`: each field in its range, its default when absent.
fn validate_limits(c: &mut Collector, raw: Option<&RawLimits>) -> LimitsConfig {
    let d = LimitsConfig::default();
    let p = |f: &str| format!("node.limits.{f}");
    let field = |c: &mut Collector, f: &str, v: Option<i64>, default: usize, lo: i64, hi: i64| {
        int(c, &p(f), v, default as i64, lo, hi)
    };
    let header_ms = field(
        c,
        "client_header_timeout_ms",
        raw.and_then(|r| r.client_header_timeout_ms),
        d.client_header_timeout.as_millis() as usize,
        1,
        3_600_000,
    );
    let keepalive_ms = field(
        c,
        "keepalive_timeout_ms",
        raw.and_then(|r| r.keepalive_timeout_ms),
        d.keepalive_timeout.as_millis() as usize,
        1,
        3_600_000,
    );
    let max_connections = field(
        c,
        "max_connections",
        raw.and_then(|r| r.max_connections),
        d.max_connections,
        1,
        1_000_000,
    );
    let max_header_bytes = field(
        c,
        "max_header_bytes",
        raw.and_then(|r| r.max_header_bytes),
        d.max_header_bytes,
        1024,
        524_288,
    );
    let max_body_bytes = raw.and_then(|r| r.max_body_bytes).and_then(|v| {
        let checked = int(c, &p("max_body_bytes"), Some(v), -1, 0, 1_099_511_627_776);
        u64::try_from(checked).ok()
    });
    let h2_max_streams = field(
        c,
        "h2_max_streams",
        raw.and_then(|r| r.h2_max_streams),
        d.h2_max_streams as usize,
        1,
        10_000,
    );
    LimitsConfig {
        client_header_timeout: ms(header_ms),
        keepalive_timeout: ms(keepalive_ms),
        max_connections: max_connections as usize,
        max_header_bytes: max_header_bytes as usize,
        max_body_bytes,
        h2_max_streams: h2_max_streams as u32,
    }
}

/// The path shown for a value that came from a command-line flag.
fn flag_path(path: &str) -> String {
    let flag = path.trim_start_matches("node.").replace('_', "-");
    format!("--{flag}")
}

type Pools = Vec<(String, PoolConfig)>;

fn validate_pools(c: &mut Collector, raw: Option<&[RawPool]>) -> (Pools, HashSet<String>) {
    let mut pools = Vec::new();
    let mut failed = HashSet::new();
    let Some(raw) = raw else {
        c.require("pools", "is required: at least one pool of origins");
        return (pools, failed);
    };
    if raw.is_empty() {
        c.push("pools", "must hold at least one pool");
    }
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, pool) in raw.iter().enumerate() {
        let path = format!("pools[{i}]");
        let pool_name = name(c, &join(&path, "name"), pool.name.as_ref());
        if let Some(n) = &pool_name {
            if let Some(first) = seen.insert(n.clone(), i) {
                c.push(
                    join(&path, "name"),
                    format!("{n:?} is already the name of pools[{first}]"),
                );
            }
        }
        let probe = validate_probe(c, &path, pool.health_probe.as_ref());
        let lb = validate_lb(c, &path, pool.load_balancing.as_ref());
        let timeouts = validate_timeouts(c, &path, pool.timeouts.as_ref());
        let failover = validate_failover(c, &path, pool.failover.as_ref());
        let origins = validate_origins(c, &path, pool.origins.as_deref());
        let ca_file = match &pool.ca_file {
            Some(f) if f.trim().is_empty() => {
                c.push(
                    join(&path, "ca_file"),
                    "must name a PEM file (or leave it out for the system roots)",
                );
                None
            }
            other => other.clone(),
        };
        let client_cert = validate_client_cert(c, &path, pool);
        let protocol = match pool.protocol.as_deref() {
            None => OriginProtocol::default(),
            Some(v) => OriginProtocol::parse(v).unwrap_or_else(|| {
                c.push(
                    join(&path, "protocol"),
                    format!("{v:?} is not \"http/1.1\", \"h2\" or \"auto\""),
                );
                OriginProtocol::default()
            }),
        };
        match pool_name {
            Some(n) => pools.push((
                n.clone(),
                PoolConfig {
                    name: n,
                    probe,
                    load_balancing: lb,
                    timeouts,
                    failover,
                    ca_file,
                    client_cert,
                    protocol,
                    origins,
                },
            )),
            None => {
                if let Some(n) = &pool.name {
                    failed.insert(n.clone());
                }
            }
        }
    }
    (pools, failed)
}

/// `client_cert_file` and `client_key_file`: both or neither, each naming a file.
fn validate_client_cert(c: &mut Collector, pool: &str, raw: &RawPool) -> Option<PoolClientCert> {
    let cert_path = join(pool, "client_cert_file");
    let key_path = join(pool, "client_key_file");
    let file = |c: &mut Collector, path: &str, v: &Option<String>| match v {
        Some(f) if f.trim().is_empty() => {
            c.push(path, "must name a PEM file");
            None
        }
        other => other.clone(),
    };
    let cert_file = file(c, &cert_path, &raw.client_cert_file);
    let key_file = file(c, &key_path, &raw.client_key_file);
    match (&raw.client_cert_file, &raw.client_key_file) {
        (Some(_), None) => c.push(
            key_path,
            "is required with client_cert_file: the PEM private key of that certificate",
        ),
        (None, Some(_)) => c.push(
            cert_path,
            "is required with client_key_file: the PEM certificate chain of that key",
        ),
        _ => {}
    }
    Some(PoolClientCert {
        cert_file: cert_file?,
        key_file: key_file?,
    })
}

fn validate_probe(c: &mut Collector, pool: &str, raw: Option<&RawProbe>) -> ProbeConfig {
    let base = join(pool, "health_probe");
    let p = |f: &str| join(&base, f);
    let path = match raw.and_then(|r| r.path.as_ref()) {
        None => "/".to_string(),
        Some(v) => match probe_path(v) {
            Ok(()) => v.clone(),
            Err(why) => {
                c.push(p("path"), why);
                "/".to_string()
            }
        },
    };
    let method = match raw.and_then(|r| r.method.as_deref()) {
        None | Some("HEAD") => ProbeMethod::Head,
        Some("GET") => ProbeMethod::Get,
        Some(other) => {
            c.push(
                p("method"),
                format!("must be \"GET\" or \"HEAD\", got {other:?}"),
            );
            ProbeMethod::Head
        }
    };
    let interval = int(
        c,
        &p("interval_ms"),
        raw.and_then(|r| r.interval_ms),
        5000,
        10,
        3_600_000,
    );
    let timeout = int(
        c,
        &p("timeout_ms"),
        raw.and_then(|r| r.timeout_ms),
        2000,
        1,
        3_600_000,
    );
    if timeout >= interval {
        c.push(
            p("timeout_ms"),
            format!("{timeout} must be less than interval_ms ({interval})"),
        );
    }
    let expected_status = match raw.and_then(|r| r.expected_status.as_ref()) {
        None => StatusSet(vec![(200, 200)]),
        Some(list) if list.is_empty() => {
            c.push(p("expected_status"), "must list at least one status");
            StatusSet(vec![(200, 200)])
        }
        Some(list) => StatusSet(
            list.iter()
                .enumerate()
                .filter_map(|(i, v)| status_range(c, &format!("{}[{i}]", p("expected_status")), v))
                .collect(),
        ),
    };
    ProbeConfig {
        path,
        method,
        interval: ms(interval),
        timeout: ms(timeout),
        expected_status,
    }
}

fn status_range(c: &mut Collector, path: &str, v: &Value) -> Option<(u16, u16)> {
    let valid = |n: i64| (100..=599).contains(&n);
    match v {
        Value::Number(n) => match n.as_i64() {
            Some(n) if valid(n) => Some((n as u16, n as u16)),
            _ => {
                c.push(path, format!("{n} is not an HTTP status (100-599)"));
                None
            }
        },
        Value::String(s) => {
            let parsed = s.split_once('-').and_then(|(lo, hi)| {
                Some((
                    lo.trim().parse::<i64>().ok()?,
                    hi.trim().parse::<i64>().ok()?,
                ))
            });
            match parsed {
                Some((lo, hi)) if valid(lo) && valid(hi) && lo <= hi => {
                    Some((lo as u16, hi as u16))
                }
                _ => {
                    c.push(
                        path,
                        format!(
                            "{s:?} is not a range \"LO-HI\" of HTTP statuses (100-599, LO <= HI)"
                        ),
                    );
                    None
                }
            }
        }
        other => {
            c.push(
                path,
                format!("{other} is neither a status nor a \"LO-HI\" range"),
            );
            None
        }
    }
}

fn validate_lb(
    c: &mut Collector,
    pool: &str,
    raw: Option<&RawLoadBalancing>,
) -> LoadBalancingConfig {
    let base = join(pool, "load_balancing");
    let p = |f: &str| join(&base, f);
    let sample_size = int(
        c,
        &p("sample_size"),
        raw.and_then(|r| r.sample_size),
        4,
        1,
        100,
    );
    let required = int(
        c,
        &p("successful_samples_required"),
        raw.and_then(|r| r.successful_samples_required),
        3.min(sample_size),
        1,
        100,
    );
    if required > sample_size {
        c.push(
            p("successful_samples_required"),
            format!("{required} must not exceed sample_size ({sample_size})"),
        );
    }
    let sensitivity = int(
        c,
        &p("latency_sensitivity_ms"),
        raw.and_then(|r| r.latency_sensitivity_ms),
        50,
        0,
        3_600_000,
    );
    let slow_start = int(
        c,
        &p("slow_start_ms"),
        raw.and_then(|r| r.slow_start_ms),
        0,
        0,
        3_600_000,
    );
    LoadBalancingConfig {
        sample_size: sample_size as usize,
        successful_samples_required: required.min(sample_size) as usize,
        latency_sensitivity: ms(sensitivity),
        slow_start: ms(slow_start),
        live_latency: raw.and_then(|r| r.live_latency).unwrap_or(true),
        session_affinity: super::edge_options::session_affinity(
            c,
            &base,
            raw.and_then(|r| r.session_affinity.as_ref()),
        ),
    }
}

fn validate_timeouts(c: &mut Collector, pool: &str, raw: Option<&RawTimeouts>) -> TimeoutConfig {
    let base = join(pool, "timeouts");
    let connect = int(
        c,
        &join(&base, "connect_ms"),
        raw.and_then(|r| r.connect_ms),
        1000,
        1,
        600_000,
    );
    let response = int(
        c,
        &join(&base, "response_ms"),
        raw.and_then(|r| r.response_ms),
        30_000,
        1,
        3_600_000,
    );
    TimeoutConfig {
        connect: ms(connect),
        response: ms(response),
    }
}

fn validate_failover(c: &mut Collector, pool: &str, raw: Option<&RawFailover>) -> FailoverConfig {
    let base = join(pool, "failover");
    let retries_path = join(&base, "retries");
    let r = raw.and_then(|f| f.retries.as_ref());
    let p = |f: &str| join(&retries_path, f);
    let retries = RetryConfig {
        enabled: r.and_then(|r| r.enabled).unwrap_or(true),
        max_attempts: int(
            c,
            &p("max_attempts"),
            r.and_then(|r| r.max_attempts),
            3,
            1,
            10,
        ) as usize,
        budget_ratio: int(
            c,
            &p("budget_percent"),
            r.and_then(|r| r.budget_percent),
            20,
            0,
            100,
        ) as f64
            / 100.0,
        budget_min_per_second: int(
            c,
            &p("budget_min_per_second"),
            r.and_then(|r| r.budget_min_per_second),
            10,
            0,
            100_000,
        ) as u32,
        budget_window: ms(int(
            c,
            &p("budget_window_ms"),
            r.and_then(|r| r.budget_window_ms),
            10_000,
            100,
            600_000,
        )),
    };
    let ejection_path = join(&base, "ejection");
    let e = raw.and_then(|f| f.ejection.as_ref());
    let p = |f: &str| join(&ejection_path, f);
    let base_ms = int(
        c,
        &p("base_ejection_ms"),
        e.and_then(|e| e.base_ejection_ms),
        10_000,
        1,
        3_600_000,
    );
    let max_ms = int(
        c,
        &p("max_ejection_ms"),
        e.and_then(|e| e.max_ejection_ms),
        300_000.max(base_ms),
        1,
        86_400_000,
    );
    if max_ms < base_ms {
        c.push(
            p("max_ejection_ms"),
            format!("{max_ms} must not be less than base_ejection_ms ({base_ms})"),
        );
    }
    let ejection = EjectionConfig {
        enabled: e.and_then(|e| e.enabled).unwrap_or(true),
        consecutive_failures: int(
            c,
            &p("consecutive_failures"),
            e.and_then(|e| e.consecutive_failures),
            5,
            1,
            100_000,
        ) as u32,
        base_ejection: ms(base_ms),
        max_ejection: ms(max_ms),
        max_ejected_percent: int(
            c,
            &p("max_ejected_percent"),
            e.and_then(|e| e.max_ejected_percent),
            50,
            0,
            100,
        ) as u32,
    };
    let hedging_path = join(&base, "hedging");
    let h = raw.and_then(|f| f.hedging.as_ref());
    let p = |f: &str| join(&hedging_path, f);
    let hedging = HedgingConfig {
        enabled: h.and_then(|h| h.enabled).unwrap_or(true),
        delay: h
            .and_then(|h| h.delay_ms)
            .map(|d| ms(int(c, &p("delay_ms"), Some(d), 0, 1, 3_600_000))),
        max_ratio: int(
            c,
            &p("max_percent"),
            h.and_then(|h| h.max_percent),
            10,
            0,
            100,
        ) as f64
            / 100.0,
    };
    FailoverConfig {
        retries,
        ejection,
        hedging,
    }
}

fn validate_origins(c: &mut Collector, pool: &str, raw: Option<&[RawOrigin]>) -> Vec<OriginConfig> {
    let base = join(pool, "origins");
    let Some(raw) = raw else {
        c.require(base, "is required: at least one origin");
        return Vec::new();
    };
    if raw.is_empty() {
        c.push(&base, "must hold at least one origin");
    }
    if raw.len() > MAX_ORIGINS_PER_POOL {
        c.push(
            &base,
            format!(
                "holds {} origins; a pool holds at most {MAX_ORIGINS_PER_POOL}",
                raw.len()
            ),
        );
    }
    let mut origins = Vec::new();
    let mut names: HashMap<String, usize> = HashMap::new();
    let mut addresses: HashMap<String, usize> = HashMap::new();
    for (i, o) in raw.iter().enumerate() {
        let path = format!("{base}[{i}]");
        let p = |f: &str| join(&path, f);
        let origin_name = name(c, &p("name"), o.name.as_ref());
        if let Some(n) = &origin_name {
            if let Some(first) = names.insert(n.clone(), i) {
                c.push(
                    p("name"),
                    format!("{n:?} is already the name of origins[{first}]"),
                );
            }
        }
        let address = match o.address.as_ref() {
            None => {
                c.require(p("address"), "is required (HOST:PORT)");
                None
            }
            Some(a) if is_host_port(a) => {
                if let Some(first) = addresses.insert(a.to_ascii_lowercase(), i) {
                    c.push(
                        p("address"),
                        format!("{a:?} is already the address of origins[{first}] in this pool"),
                    );
                }
                Some(a.clone())
            }
            Some(a) => {
                c.push(p("address"), format!("{a:?} is not HOST:PORT"));
                None
            }
        };
        let priority = int(c, &p("priority"), o.priority, 1, 1, 5);
        let weight = int(c, &p("weight"), o.weight, 50, 1, 1000);
        let region = match &o.region {
            Some(r) => match name_problem("region", r) {
                None => Some(r.clone()),
                Some(why) => {
                    c.push(p("region"), why);
                    None
                }
            },
            None => None,
        };
        let host_header = match &o.host_header {
            Some(h) if h.is_empty() || h.bytes().any(|b| b <= b' ' || b == 0x7f) => {
                c.push(
                    p("host_header"),
                    format!("{h:?} is not a valid Host header value"),
                );
                None
            }
            other => other.clone(),
        };
        let sni = match &o.sni {
            Some(n) if !is_dns_name(n.strip_suffix('.').unwrap_or(n)) => {
                c.push(p("sni"), format!("{n:?} is not a DNS name"));
                None
            }
            other => other.clone(),
        };
        if let (Some(name), Some(address)) = (origin_name, address) {
            origins.push(OriginConfig {
                tls: o.tls.unwrap_or(false),
                sni,
                tls_verify: o.tls_verify.unwrap_or(true),
                name,
                address,
                priority: priority as u8,
                weight: weight as u32,
                enabled: o.enabled.unwrap_or(true),
                region,
                host_header,
            });
        }
    }
    origins
}

/// Whether `s` is `HOST:PORT`: an IPv4 address, a DNS name or a bracketed IPv6 address, and a port 1-65535.
pub fn is_host_port(s: &str) -> bool {
    let Some((host, port)) = s.rsplit_once(':') else {
        return false;
    };
    let port_ok = !port.is_empty()
        && port.bytes().all(|b| b.is_ascii_digit())
        && port.parse::<u16>().is_ok_and(|p| p != 0);
    let host_ok = if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        inner.parse::<Ipv6Addr>().is_ok()
    } else {
        is_dns_name(host)
    };
    port_ok && host_ok
}

/// Letters, digits, '-' and '_' in dot-separated non-empty labels (IPv4 addresses included).
fn is_dns_name(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

fn validate_routes(
    c: &mut Collector,
    raw: Option<&[RawRoute]>,
    pools: &Pools,
    failed_pools: &HashSet<String>,
    rule_sets: &RuleSets,
) -> Vec<RouteConfig> {
    let Some(raw) = raw else {
        c.require("routes", "is required: at least one route to a pool");
        return Vec::new();
    };
    if raw.is_empty() {
        c.push("routes", "must hold at least one route");
    }
    let mut routes = Vec::new();
    let mut names: HashMap<String, usize> = HashMap::new();
    let mut claimed: HashMap<(HostPattern, PathPattern), String> = HashMap::new();
    for (i, r) in raw.iter().enumerate() {
        let path = format!("routes[{i}]");
        let p = |f: &str| join(&path, f);
        // A route whose hosts or paths did not parse would claim defaults it never asked for.
        let parsed_whole = !c.has_under(&path);
        let route_name = name(c, &p("name"), r.name.as_ref());
        if let Some(n) = &route_name {
            if let Some(first) = names.insert(n.clone(), i) {
                c.push(
                    p("name"),
                    format!("{n:?} is already the name of routes[{first}]"),
                );
            }
        }
        let hosts = patterns(c, &p("hosts"), r.hosts.as_deref(), "*", host_pattern);
        let paths = patterns(c, &p("paths"), r.paths.as_deref(), "/*", path_pattern);
        let pool = match &r.pool {
            None => {
                c.require(p("pool"), "is required: the name of a pool");
                None
            }
            Some(name) => match pools.iter().position(|(n, _)| n == name) {
                Some(idx) => Some(idx),
                None if failed_pools.contains(name) => None,
                None => {
                    let mut known: Vec<&str> = pools.iter().map(|(n, _)| n.as_str()).collect();
                    known.dedup();
                    c.push(
                        p("pool"),
                        format!("{name:?} is not a pool (pools: {})", known.join(", ")),
                    );
                    None
                }
            },
        };
        let sets = route_rule_sets(c, &p("rule_sets"), r.rule_sets.as_deref(), rule_sets);
        if let Some(n) = route_name.as_ref().filter(|_| parsed_whole) {
            for (hi, h) in hosts.iter().enumerate() {
                for pa in &paths {
                    let key = (h.clone(), pa.clone());
                    match claimed.get(&key) {
                        Some(other) if other != n => c.push(
                            format!("{}[{hi}]", p("hosts")),
                            format!("host {h} with path {pa} is already routed by {other:?}"),
                        ),
                        _ => {
                            claimed.insert(key, n.clone());
                        }
                    }
                }
            }
        }
        let compression =
            super::edge_options::compression(c, &p("compression"), r.compression.as_ref());
        if let (Some(name), Some(pool)) = (route_name, pool) {
            routes.push(RouteConfig {
                name,
                hosts,
                paths,
                pool,
                https_redirect: r.https_redirect.unwrap_or(false),
                compression,
                rule_sets: sets,
            });
        }
    }
    routes
}

/// A route's `rule_sets` as ids; a name of a rule set that did not compile is left out
/// without an error of its own (the rule set's errors say what is wrong).
fn route_rule_sets(
    c: &mut Collector,
    path: &str,
    names: Option<&[String]>,
    rule_sets: &RuleSets,
) -> Vec<crate::rules::RuleSetId> {
    let Some(names) = names else {
        return Vec::new();
    };
    let compiled = &rule_sets.config.compiled;
    if rule_sets.config.source.is_null() || compiled.names().count() > 0 {
        return compiled.resolve(names, path).unwrap_or_else(|errors| {
            c.errors.extend(errors.0);
            Vec::new()
        });
    }
    // The rule sets did not compile: only names written nowhere are errors here.
    for (i, name) in names.iter().enumerate() {
        if !rule_sets.written.contains(name) {
            c.push(
                format!("{path}[{i}]"),
                format!("{name:?} is not a rule set"),
            );
        }
    }
    Vec::new()
}

fn validate_certificates(
    c: &mut Collector,
    raw: Option<&[RawCertificate]>,
    node: &NodeConfig,
) -> Vec<CertificateConfig> {
    let list = raw.unwrap_or_default();
    if node.tls_listen.is_some() && list.is_empty() && !c.has_under("certificates") {
        c.push(
            "certificates",
            "node.tls_listen is set: list at least one certificate (name, hosts, cert_file, key_file)",
        );
    }
    let mut out = Vec::new();
    let mut names: HashMap<String, usize> = HashMap::new();
    let mut hosts_seen: HashMap<HostPattern, usize> = HashMap::new();
    for (i, cert) in list.iter().enumerate() {
        let path = format!("certificates[{i}]");
        let p = |f: &str| join(&path, f);
        let cert_name = name(c, &p("name"), cert.name.as_ref());
        if let Some(n) = &cert_name {
            if let Some(first) = names.insert(n.clone(), i) {
                c.push(
                    p("name"),
                    format!("{n:?} is already the name of certificates[{first}]"),
                );
            }
        }
        let mut hosts = Vec::new();
        match &cert.hosts {
            None => c.require(p("hosts"), "is required: the SNI names it serves"),
            Some(list) if list.is_empty() => {
                c.push(p("hosts"), "must hold at least one host");
            }
            Some(list) => {
                for (hi, h) in list.iter().enumerate() {
                    let hp = format!("{}[{hi}]", p("hosts"));
                    match host_pattern(h) {
                        Ok(HostPattern::Any) | Err(_) => c.push(
                            hp,
                            format!(
                                "{h:?} is not a certificate host: use an exact host (api.example.com) or a leading wildcard (*.example.com)"
                            ),
                        ),
                        Ok(pattern) => {
                            match hosts_seen.get(&pattern) {
                                Some(&first) if first != i => c.push(
                                    hp,
                                    format!("{h:?} is already served by certificates[{first}]"),
                                ),
                                _ => {
                                    hosts_seen.insert(pattern.clone(), i);
                                }
                            }
                            hosts.push(pattern);
                        }
                    }
                }
            }
        }
        let client_auth = cert.client_auth.as_ref().and_then(|a| {
            let ap = p("client_auth.ca_file");
            match &a.ca_file {
                None => {
                    c.require(
                        ap,
                        "is required: a PEM file of the CA client certificates chain to",
                    );
                    None
                }
                Some(f) if f.trim().is_empty() => {
                    c.push(ap, "must name a PEM file");
                    None
                }
                Some(f) => Some(ClientAuthConfig {
                    ca_file: f.clone(),
                    required: a.required.unwrap_or(true),
                }),
            }
        });
        if cert.acme == Some(true) {
            for (field, value) in [("cert_file", &cert.cert_file), ("key_file", &cert.key_file)] {
                if value.is_some() {
                    c.push(
                        p(field),
                        "a certificate with \"acme\": true is ordered from the CA: drop cert_file and key_file",
                    );
                }
            }
            for (hi, h) in hosts.iter().enumerate() {
                if !matches!(h, HostPattern::Exact(_)) {
                    c.push(
                        format!("{}[{hi}]", p("hosts")),
                        "a managed certificate is validated over HTTP-01, which cannot prove a wildcard: list exact names",
                    );
                }
            }
            if let Some(name) = cert_name {
                out.push(CertificateConfig {
                    name,
                    hosts,
                    source: CertSource::Acme,
                    client_auth,
                });
            }
            continue;
        }
        let mut file = |field: &str, value: &Option<String>| match value {
            None => {
                c.require(
                    p(field),
                    "is required: a PEM file (or \"acme\": true to have the certificate ordered)",
                );
                None
            }
            Some(f) if f.trim().is_empty() => {
                c.push(p(field), "must name a PEM file");
                None
            }
            Some(f) => Some(f.clone()),
        };
        let cert_file = file("cert_file", &cert.cert_file);
        let key_file = file("key_file", &cert.key_file);
        if let (Some(name), Some(cert_file), Some(key_file)) = (cert_name, cert_file, key_file) {
            out.push(CertificateConfig {
                name,
                hosts,
                source: CertSource::Files {
                    cert_file,
                    key_file,
                },
                client_auth,
            });
        }
    }
    out
}

fn patterns<T>(
    c: &mut Collector,
    path: &str,
    raw: Option<&[String]>,
    default: &str,
    parse: fn(&str) -> Result<T, String>,
) -> Vec<T> {
    let Some(list) = raw else {
        return vec![parse(default).expect("default pattern is valid")];
    };
    if list.is_empty() {
        c.push(path, "must hold at least one pattern");
    }
    list.iter()
        .enumerate()
        .filter_map(|(i, s)| match parse(s) {
            Ok(t) => Some(t),
            Err(msg) => {
                c.push(format!("{path}[{i}]"), msg);
                None
            }
        })
        .collect()
}

/// Parses a host pattern: exact, `*.suffix` or `*`.
pub fn host_pattern(s: &str) -> Result<HostPattern, String> {
    let lower = s.to_ascii_lowercase();
    let lower = lower.strip_suffix('.').unwrap_or(&lower);
    if lower == "*" {
        return Ok(HostPattern::Any);
    }
    let bad = || {
        format!(
            "{s:?} is not a host pattern: use an exact host (api.example.com), a leading wildcard (*.example.com) or *"
        )
    };
    if lower.contains(':') {
        return Err(format!(
            "{s:?} holds a port: ports are ignored when matching, write the host alone"
        ));
    }
    if let Some(suffix) = lower.strip_prefix("*.") {
        return if is_dns_name(suffix) {
            Ok(HostPattern::Suffix(format!(".{suffix}")))
        } else {
            Err(bad())
        };
    }
    if is_dns_name(lower) {
        Ok(HostPattern::Exact(lower.to_string()))
    } else {
        Err(bad())
    }
}

/// Parses a path pattern: exact (`/health`) or prefix with a trailing `/*` (`/api/*`).
pub fn path_pattern(s: &str) -> Result<PathPattern, String> {
    let bad = |why: &str| format!("{s:?} is not a path pattern: {why}");
    if !s.starts_with('/') {
        return Err(bad("it must start with '/'"));
    }
    if s.bytes()
        .any(|b| b <= b' ' || b == b'?' || b == b'#' || b == 0x7f)
    {
        return Err(bad("no spaces, '?' or '#'"));
    }
    match s.find('*') {
        None => Ok(PathPattern::Exact(s.to_string())),
        Some(pos) if pos == s.len() - 1 && s.ends_with("/*") => {
            Ok(PathPattern::Prefix(s[..s.len() - 1].to_string()))
        }
        Some(_) => Err(bad("'*' is only allowed as a trailing \"/*\"")),
    }
}
