//! Stage three: the typed, validated configuration the rest of Portico works with.

use std::time::Duration;

/// A validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// This node's settings.
    pub node: NodeConfig,
    /// Backend pools, in document order.
    pub pools: Vec<PoolConfig>,
    /// Routes, in document order.
    pub routes: Vec<RouteConfig>,
    /// Certificates of the TLS listener, in document order (the first is the default).
    pub certificates: Vec<CertificateConfig>,
    /// The CA of the managed certificates (set when one is `"acme": true`).
    pub acme: Option<AcmeConfig>,
    /// Short fingerprint of the configuration text, shown in `/status`.
    pub version: String,
    /// The rule sets (edge policy), compiled.
    pub rule_sets: RuleSetsConfig,
}

/// `rule_sets`, compiled, with the JSON they came from: two are equal when their JSON is
/// (compiled regexes cannot be compared).
#[derive(Debug, Clone, Default)]
pub struct RuleSetsConfig {
    /// The compiled rule sets, shared by every request of a config.
    pub compiled: std::sync::Arc<crate::rules::CompiledRuleSets>,
    /// `rule_sets` as written (`null` when absent).
    pub source: serde_json::Value,
}

impl PartialEq for RuleSetsConfig {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

/// `node`: where this edge node listens and what it calls itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeConfig {
    /// Region name, used in `Via`, `X-Portico-Region` and metrics.
    pub region: String,
    /// Proxy listener, `IP:PORT`.
    pub listen: String,
    /// TLS listener, `IP:PORT`, if any.
    pub tls_listen: Option<String>,
    /// Admin listener, `IP:PORT`.
    pub admin_listen: String,
    /// Proxy worker threads.
    pub threads: usize,
    /// Time the node keeps serving after SIGTERM while `/healthz` answers 503.
    pub drain: Duration,
    /// File holding the bearer token for `PUT /config`.
    pub admin_token_file: Option<String>,
    /// Where the access log goes.
    pub access_log: AccessLogTarget,
    /// Networks whose forwarding headers are kept.
    pub trusted_proxies: Vec<crate::cidr::Cidr>,
    /// What a client may hold and send.
    pub limits: LimitsConfig,
    /// Where the node keeps its ACME account and managed certificates between runs.
    pub state_dir: String,
}

/// The default `node.state_dir`.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/portico";

/// Longest request line (method, target and version, without the CRLF): longer ones get 414.
pub const MAX_REQUEST_LINE: usize = 8192;

/// `node.limits`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitsConfig {
    /// Total time to receive a whole request head.
    pub client_header_timeout: Duration,
    /// Idle time after which a keep-alive client connection is closed.
    pub keepalive_timeout: Duration,
    /// Open client connections beyond which new ones are closed at accept.
    pub max_connections: usize,
    /// Largest request head, in bytes (431 beyond).
    pub max_header_bytes: usize,
    /// Largest request body, in bytes (413 beyond); `None`: unlimited.
    pub max_body_bytes: Option<u64>,
    /// Concurrent streams per client HTTP/2 connection.
    pub h2_max_streams: u32,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            client_header_timeout: Duration::from_millis(10_000),
            keepalive_timeout: Duration::from_millis(60_000),
            max_connections: 65_536,
            max_header_bytes: 32_768,
            max_body_bytes: None,
            h2_max_streams: 100,
        }
    }
}

/// `node.access_log`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum AccessLogTarget {
    /// No access log.
    #[default]
    Off,
    /// Standard output.
    Stdout,
    /// A file, appended to and reopened on SIGUSR1.
    File(String),
}

/// Probe request method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeMethod {
    /// `GET`.
    Get,
    /// `HEAD`.
    Head,
}

impl ProbeMethod {
    /// The method as sent on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ProbeMethod::Get => "GET",
            ProbeMethod::Head => "HEAD",
        }
    }
}

/// A set of HTTP statuses, as inclusive ranges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusSet(pub Vec<(u16, u16)>);

impl StatusSet {
    /// Whether `status` is in the set.
    pub fn contains(&self, status: u16) -> bool {
        self.0.iter().any(|&(lo, hi)| lo <= status && status <= hi)
    }
}

impl std::fmt::Display for StatusSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|&(lo, hi)| {
                if lo == hi {
                    lo.to_string()
                } else {
                    format!("{lo}-{hi}")
                }
            })
            .collect();
        write!(f, "{}", parts.join(","))
    }
}

/// `pools[].health_probe`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeConfig {
    /// Request path.
    pub path: String,
    /// Request method.
    pub method: ProbeMethod,
    /// Time between two probes of one origin.
    pub interval: Duration,
    /// Longest time a probe may take.
    pub timeout: Duration,
    /// Statuses that count as success.
    pub expected_status: StatusSet,
}

/// `pools[].load_balancing`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadBalancingConfig {
    /// Size of the health window, in probes.
    pub sample_size: usize,
    /// Successful probes in the window needed to be healthy.
    pub successful_samples_required: usize,
    /// Width of the latency band above the fastest origin.
    pub latency_sensitivity: Duration,
    /// Ramp-up time of an origin's weight after it comes back (zero: off).
    pub slow_start: Duration,
    /// Whether live latency adds its penalty to the probe latency in selection.
    pub live_latency: bool,
    /// Sticky sessions, when on.
    pub session_affinity: Option<SessionAffinityConfig>,
}

/// `pools[].load_balancing.session_affinity`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionAffinityConfig {
    /// Name of the cookie that names the origin a client is pinned to.
    pub cookie: String,
}

/// `routes[].compression`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompressionConfig {
    /// The `Content-Type`s compressed.
    pub types: Vec<crate::compression::MediaRange>,
    /// Responses with a smaller `Content-Length` are not compressed.
    pub min_bytes: u64,
}

/// `pools[].timeouts`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeoutConfig {
    /// TCP connect timeout.
    pub connect: Duration,
    /// Longest wait for each read of the response.
    pub response: Duration,
}

/// `pools[].failover.retries`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryConfig {
    /// Whether failed requests are retried.
    pub enabled: bool,
    /// Attempts per request, the first one included.
    pub max_attempts: usize,
    /// Retries allowed as a fraction of recent requests.
    pub budget_ratio: f64,
    /// Retries always allowed per second of the window.
    pub budget_min_per_second: u32,
    /// How far back the budget looks.
    pub budget_window: Duration,
}

/// `pools[].failover.ejection`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EjectionConfig {
    /// Whether live failures eject origins.
    pub enabled: bool,
    /// Consecutive failed requests that eject an origin.
    pub consecutive_failures: u32,
    /// First ejection time; the n-th consecutive ejection lasts n times this.
    pub base_ejection: Duration,
    /// Longest ejection time.
    pub max_ejection: Duration,
    /// Largest share, in percent, of enabled origins ejected at once (one may always go).
    pub max_ejected_percent: u32,
}

/// `pools[].failover`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FailoverConfig {
    /// Retry policy.
    pub retries: RetryConfig,
    /// Passive ejection policy.
    pub ejection: EjectionConfig,
    /// Hedged requests.
    pub hedging: HedgingConfig,
}

/// `pools[].failover.hedging`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HedgingConfig {
    /// Whether idempotent requests without a body are hedged.
    pub enabled: bool,
    /// Fixed hedge delay; `None` is adaptive (the pool's recent p95, at least 5 ms).
    pub delay: Option<Duration>,
    /// Hedges allowed as a fraction of the pool's recent requests.
    pub max_ratio: f64,
}

/// `pools[].origins[]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginConfig {
    /// Name, unique in the pool.
    pub name: String,
    /// `HOST:PORT` as written.
    pub address: String,
    /// Priority 1–5, lower wins.
    pub priority: u8,
    /// Weight 1–1000.
    pub weight: u32,
    /// Whether the origin is probed and selected.
    pub enabled: bool,
    /// Where the origin lives, informational.
    pub region: Option<String>,
    /// Host header to send instead of the client's.
    pub host_header: Option<String>,
    /// Whether requests and probes go over TLS.
    pub tls: bool,
    /// Server name for SNI and the certificate check, as written (see [`OriginConfig::sni_name`]).
    pub sni: Option<String>,
    /// Whether the origin's certificate is checked.
    pub tls_verify: bool,
}

impl OriginConfig {
    /// The name sent in SNI and checked in the certificate: `sni`, else `host_header` (without
    /// a port), else the host part of `address` (IPv6 brackets removed).
    pub fn sni_name(&self) -> String {
        if let Some(s) = &self.sni {
            return s.clone();
        }
        let strip_port = |hp: &str| -> String {
            if let Some(rest) = hp.strip_prefix('[') {
                return rest.split(']').next().unwrap_or(rest).to_string();
            }
            match hp.rsplit_once(':') {
                Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h.to_string(),
                _ => hp.to_string(),
            }
        };
        match &self.host_header {
            Some(h) => strip_port(h),
            None => strip_port(&self.address),
        }
    }
}

/// `certificates[]`: one chain and key for the TLS listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateConfig {
    /// Name, unique.
    pub name: String,
    /// SNI names it serves: [`HostPattern::Exact`] or [`HostPattern::Suffix`] (only exact
    /// names for a managed certificate).
    pub hosts: Vec<HostPattern>,
    /// Where its chain and key come from.
    pub source: CertSource,
    /// The client certificates asked for in handshakes that get this certificate.
    pub client_auth: Option<ClientAuthConfig>,
}

/// `certificates[].client_auth`: client certificates checked against a CA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientAuthConfig {
    /// PEM file of the CA certificates a client certificate must chain to.
    pub ca_file: String,
    /// Whether a client without a valid certificate is refused in the handshake.
    pub required: bool,
}

/// Where a certificate's chain and key come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertSource {
    /// Files, re-read on every reload.
    Files {
        /// PEM chain file, leaf first.
        cert_file: String,
        /// PEM private key file.
        key_file: String,
    },
    /// Ordered from the `acme` CA and renewed by the node (`"acme": true`).
    Acme,
}

impl CertificateConfig {
    /// Whether it is a managed (ACME) certificate.
    pub fn is_acme(&self) -> bool {
        matches!(self.source, CertSource::Acme)
    }

    /// Its exact host names (all of them, for a managed certificate).
    pub fn exact_hosts(&self) -> Vec<String> {
        self.hosts
            .iter()
            .filter_map(|h| match h {
                HostPattern::Exact(e) => Some(e.clone()),
                _ => None,
            })
            .collect()
    }
}

/// `acme`: the CA that issues the managed certificates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcmeConfig {
    /// The directory URL, `https://…`.
    pub directory: String,
    /// Account contacts, `mailto:…`.
    pub contact: Vec<String>,
    /// PEM CA file the directory's HTTPS is checked against (else the system roots).
    pub ca_file: Option<String>,
    /// Days before expiry a certificate is renewed.
    pub renew_before_days: u32,
}

/// `pools[]`.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolConfig {
    /// Name, unique.
    pub name: String,
    /// Active health probe.
    pub probe: ProbeConfig,
    /// Selection settings.
    pub load_balancing: LoadBalancingConfig,
    /// Timeouts towards origins.
    pub timeouts: TimeoutConfig,
    /// Retries and ejection.
    pub failover: FailoverConfig,
    /// CA file that TLS origins are checked against (none: the system roots).
    pub ca_file: Option<String>,
    /// Certificate presented to TLS origins (none: no certificate).
    pub client_cert: Option<PoolClientCert>,
    /// HTTP version spoken to the origins.
    pub protocol: OriginProtocol,
    /// Origins, in document order (their index is their identity inside the pool).
    pub origins: Vec<OriginConfig>,
}

/// `pools[].client_cert_file` and `client_key_file`: the certificate a pool presents to its
/// TLS origins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolClientCert {
    /// PEM certificate chain, leaf first.
    pub cert_file: String,
    /// PEM private key of the leaf.
    pub key_file: String,
}

/// `pools[].protocol`: the HTTP version spoken to a pool's origins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OriginProtocol {
    /// `"http/1.1"`: HTTP/1.1 only.
    #[default]
    Http1,
    /// `"h2"`: HTTP/2 only (ALPN `h2` over TLS, prior knowledge over cleartext).
    H2,
    /// `"auto"`: ALPN offers `h2` and `http/1.1` over TLS; cleartext speaks HTTP/1.1.
    Auto,
}

impl OriginProtocol {
    /// Parses the config spelling.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "http/1.1" => Some(Self::Http1),
            "h2" => Some(Self::H2),
            "auto" => Some(Self::Auto),
            _ => None,
        }
    }

    /// The highest and lowest HTTP major version allowed to an origin (`(2, 2)` for `h2`).
    pub fn versions(self) -> (u8, u8) {
        match self {
            Self::Http1 => (1, 1),
            Self::H2 => (2, 2),
            Self::Auto => (2, 1),
        }
    }
}

/// A host pattern of a route.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HostPattern {
    /// `*`: any host.
    Any,
    /// `*.example.com`, stored as `.example.com`: any host ending with it.
    Suffix(String),
    /// `api.example.com`, lower case.
    Exact(String),
}

impl std::fmt::Display for HostPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HostPattern::Any => write!(f, "*"),
            HostPattern::Suffix(s) => write!(f, "*{s}"),
            HostPattern::Exact(h) => write!(f, "{h}"),
        }
    }
}

/// A path pattern of a route.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PathPattern {
    /// `/health`: this path only.
    Exact(String),
    /// `/api/*`, stored as `/api/`: any path starting with it.
    Prefix(String),
}

impl std::fmt::Display for PathPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PathPattern::Exact(p) => write!(f, "{p}"),
            PathPattern::Prefix(p) => write!(f, "{p}*"),
        }
    }
}

/// `routes[]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteConfig {
    /// Name, unique.
    pub name: String,
    /// Host patterns.
    pub hosts: Vec<HostPattern>,
    /// Path patterns.
    pub paths: Vec<PathPattern>,
    /// Index of the pool in [`Config::pools`].
    pub pool: usize,
    /// Whether plain-HTTP requests are answered with a 308 to `https://`.
    pub https_redirect: bool,
    /// Response compression, when on.
    pub compression: Option<CompressionConfig>,
    /// The rule sets run for the route's requests, in order.
    pub rule_sets: Vec<crate::rules::RuleSetId>,
}

impl Config {
    /// The pool a route sends to.
    pub fn route_pool(&self, route: usize) -> &PoolConfig {
        &self.pools[self.routes[route].pool]
    }
}
