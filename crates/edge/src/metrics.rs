//! The node's Prometheus metrics, in a registry of its own (several nodes can share a process).

use portico_core::hedge::HedgeResult;
use portico_core::retry::RetryReason;
use portico_core::rollout::Outcome;
use prometheus::{
    Encoder, Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec,
    IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError, RwLock};

/// Bucket bounds of `portico_request_duration_seconds`, in seconds.
const DURATION_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Portico's own version, the `build` label of `portico_node_info`.
const BUILD: &str = env!("CARGO_PKG_VERSION");

/// Every metric family a node exports.
pub struct Metrics {
    registry: Registry,
    /// `portico_requests_total{route,pool,origin,code}`.
    pub requests: IntCounterVec,
    /// `portico_request_duration_seconds{route,pool}`.
    pub duration: HistogramVec,
    /// `portico_origin_healthy{pool,origin}`, 0 or 1.
    pub origin_healthy: IntGaugeVec,
    /// `portico_origin_latency_seconds{pool,origin}`, mean probe round trip in the window.
    pub origin_latency: GaugeVec,
    /// `portico_probes_total{pool,origin,result}`.
    pub probes: IntCounterVec,
    /// `portico_node_info{region,version,build}`, always 1: `version` is the running config's.
    pub node_info: IntGaugeVec,
    /// `portico_retries_total{pool,reason}`.
    pub retries: IntCounterVec,
    /// `portico_retries_denied_total{pool,reason}`: retryable failures not retried (budget,
    /// attempts or origins exhausted, unsafe method or body).
    pub retries_denied: IntCounterVec,
    /// `portico_hedges_total{pool,result}`: hedges won, lost, or due but denied.
    pub hedges: IntCounterVec,
    /// `portico_origin_live_latency_seconds{pool,origin}`: EWMA of live response-head latency.
    pub origin_live_latency: GaugeVec,
    /// `portico_origin_selection_latency_seconds{pool,origin}`: the latency selection uses
    /// (probe latency plus the live penalty).
    pub origin_selection_latency: GaugeVec,
    /// `portico_pool_head_latency_seconds{pool,quantile}`: the pool's recent response-head
    /// latency quantiles (0.5, 0.95), the adaptive hedge delay's input.
    pub pool_head_latency: GaugeVec,
    /// `portico_ejections_total{pool,origin}`.
    pub ejections: IntCounterVec,
    /// `portico_origin_ejected{pool,origin}`, 0 or 1.
    pub origin_ejected: IntGaugeVec,
    /// `portico_failover_requests_total{route,pool}`: requests answered after at least one
    /// failed attempt on another origin.
    pub failover_served: IntCounterVec,
    /// `portico_draining`, 1 while the node drains before stopping.
    pub draining: IntGaugeVec,
    /// `portico_config_reloads_total{source,result}`.
    pub config_reloads: IntCounterVec,
    /// `portico_rollouts_total{outcome}`: rollouts this node's conductor ended
    /// (`promoted`, `rolled_back`, `aborted`).
    pub rollouts: IntCounterVec,
    /// `portico_config_last_reload_success_timestamp_seconds`.
    pub config_last_success: Gauge,
    /// `portico_access_log_dropped_total`: lines dropped because the writer fell behind.
    pub access_log_dropped: IntCounter,
    /// `portico_client_connections`: client connections open now (plain and TLS).
    pub client_connections: IntGauge,
    /// `portico_connections_rejected_total`: client connections closed at accept because
    /// `node.limits.max_connections` were open.
    pub connections_rejected: IntCounter,
    /// `portico_client_refused_total{reason}`: request heads answered 408, 414 or 431 and
    /// their connections closed (`header_timeout`, `request_line_too_long`,
    /// `header_too_large`).
    pub client_refused: IntCounterVec,
    /// `portico_compression_responses_total{route,encoding}`: origin responses on routes with
    /// `compression`, by the coding sent (`br`, `gzip`, `zstd`, or `identity` when left as
    /// is); no series for a route without it.
    pub compression: IntCounterVec,
    /// `portico_rollout_in_progress`: 1 while the store's rollout is in progress or paused
    /// (0 on a node that follows no store).
    pub rollout_in_progress: IntGauge,
    /// `portico_rule_matches_total{route,rule}`: requests a rule matched (`rule` is
    /// `set/rule`).
    pub rule_matches: IntCounterVec,
    /// `portico_rate_limited_total{route,rule}`: requests a rule's rate limit answered 429.
    pub rate_limited: IntCounterVec,
    /// The labels `portico_node_info` carries now.
    info_labels: Mutex<(String, String)>,
}

/// Handles of the per-request series of one running config, cached by route, origin and
/// status so a request neither formats its status code nor hashes label strings
/// (`with_label_values`) once its series exists. Indices are the config's: each config
/// snapshot has its own cache.
#[derive(Default)]
pub struct SeriesCache {
    /// `(route + 1, origin + 1, code)`, 0 for none.
    requests: RwLock<HashMap<(usize, usize, u16), IntCounter>>,
    /// By route.
    durations: RwLock<HashMap<usize, Histogram>>,
    /// `portico_rule_matches_total` by route and rule index.
    rule_matches: RwLock<HashMap<(usize, usize), IntCounter>>,
}

fn counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric definition");
    registry
        .register(Box::new(c.clone()))
        .expect("metric registered once");
    c
}

fn int_gauge(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric definition");
    registry
        .register(Box::new(g.clone()))
        .expect("metric registered once");
    g
}

impl Metrics {
    /// A fresh registry with every family registered and `portico_node_info` set.
    pub fn new(region: &str, version: &str) -> Self {
        let registry = Registry::new();
        let requests = counter(
            &registry,
            "portico_requests_total",
            "Requests answered, by route, pool, the origin that answered (empty if none) and status code (0: client gone).",
            &["route", "pool", "origin", "code"],
        );
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "portico_request_duration_seconds",
                "Time from request header to the end of the response, retries included.",
            )
            .buckets(DURATION_BUCKETS.to_vec()),
            &["route", "pool"],
        )
        .expect("valid metric definition");
        registry
            .register(Box::new(duration.clone()))
            .expect("metric registered once");
        let origin_healthy = int_gauge(
            &registry,
            "portico_origin_healthy",
            "1 while the origin's health window says healthy, else 0.",
            &["pool", "origin"],
        );
        let origin_latency = GaugeVec::new(
            Opts::new(
                "portico_origin_latency_seconds",
                "Mean round-trip time of the successful probes in the origin's health window (absent until one succeeds).",
            ),
            &["pool", "origin"],
        )
        .expect("valid metric definition");
        registry
            .register(Box::new(origin_latency.clone()))
            .expect("metric registered once");
        let probes = counter(
            &registry,
            "portico_probes_total",
            "Health probes sent by this node, by result (success or failure).",
            &["pool", "origin", "result"],
        );
        let node_info = int_gauge(
            &registry,
            "portico_node_info",
            "Always 1; labels name the node's region, the running config version and Portico's build.",
            &["region", "version", "build"],
        );
        node_info
            .with_label_values(&[region, version, BUILD])
            .set(1);
        let retries = counter(
            &registry,
            "portico_retries_total",
            "Attempts retried on another origin, by the failure that caused them.",
            &["pool", "reason"],
        );
        let retries_denied = counter(
            &registry,
            "portico_retries_denied_total",
            "Retryable failures that were not retried: unsafe to resend, budget spent, attempts or origins exhausted.",
            &["pool", "reason"],
        );
        let hedges = counter(
            &registry,
            "portico_hedges_total",
            "Hedged requests by result: won (the hedge answered first), lost (the first attempt did), denied (due but over budget or no other origin).",
            &["pool", "result"],
        );
        let gauge = |name: &str, help: &str, labels: &[&str]| {
            let g = GaugeVec::new(Opts::new(name, help), labels).expect("valid metric definition");
            registry
                .register(Box::new(g.clone()))
                .expect("metric registered once");
            g
        };
        let origin_live_latency = gauge(
            "portico_origin_live_latency_seconds",
            "EWMA of the origin's live response-head latency.",
            &["pool", "origin"],
        );
        let origin_selection_latency = gauge(
            "portico_origin_selection_latency_seconds",
            "Latency selection ranks the origin by: mean probe RTT plus the live-latency penalty.",
            &["pool", "origin"],
        );
        let pool_head_latency = gauge(
            "portico_pool_head_latency_seconds",
            "Recent response-head latency quantiles of the pool (the adaptive hedge delay is the 0.95 one, at least 5 ms).",
            &["pool", "quantile"],
        );
        let ejections = counter(
            &registry,
            "portico_ejections_total",
            "Times an origin was ejected after consecutive failed requests.",
            &["pool", "origin"],
        );
        let origin_ejected = int_gauge(
            &registry,
            "portico_origin_ejected",
            "1 while the origin is ejected, else 0.",
            &["pool", "origin"],
        );
        let failover_served = counter(
            &registry,
            "portico_failover_requests_total",
            "Requests answered by an origin after an earlier attempt on another origin failed.",
            &["route", "pool"],
        );
        let draining = int_gauge(
            &registry,
            "portico_draining",
            "1 while the node drains (after SIGTERM, /healthz answers 503), else 0.",
            &[],
        );
        draining.with_label_values::<&str>(&[]).set(0);
        let config_reloads = counter(
            &registry,
            "portico_config_reloads_total",
            "Config reloads, by source (file, admin, store) and result (applied, rejected).",
            &["source", "result"],
        );
        for source in ["file", "admin", "store"] {
            for result in ["applied", "rejected"] {
                config_reloads.with_label_values(&[source, result]);
            }
        }
        let rollouts = counter(
            &registry,
            "portico_rollouts_total",
            "Config rollouts this node ended while it conducted, by outcome (promoted, rolled_back, aborted).",
            &["outcome"],
        );
        for outcome in [Outcome::Promoted, Outcome::RolledBack, Outcome::Aborted] {
            rollouts.with_label_values(&[&outcome.to_string()]);
        }
        let config_last_success = Gauge::new(
            "portico_config_last_reload_success_timestamp_seconds",
            "Unix time of the last config applied (start-up included).",
        )
        .expect("valid metric definition");
        registry
            .register(Box::new(config_last_success.clone()))
            .expect("metric registered once");
        let access_log_dropped = IntCounter::new(
            "portico_access_log_dropped_total",
            "Access log lines dropped because the writer fell behind (requests never wait for the log).",
        )
        .expect("valid metric definition");
        registry
            .register(Box::new(access_log_dropped.clone()))
            .expect("metric registered once");
        let client_connections = IntGauge::new(
            "portico_client_connections",
            "Client connections open now, plain and TLS (node.limits.max_connections caps them).",
        )
        .expect("valid metric definition");
        registry
            .register(Box::new(client_connections.clone()))
            .expect("metric registered once");
        let connections_rejected = IntCounter::new(
            "portico_connections_rejected_total",
            "Client connections closed at accept because node.limits.max_connections were open.",
        )
        .expect("valid metric definition");
        registry
            .register(Box::new(connections_rejected.clone()))
            .expect("metric registered once");
        let client_refused = counter(
            &registry,
            "portico_client_refused_total",
            "Request heads refused and their connections closed, by reason: header_timeout (408), request_line_too_long (414), header_too_large (431).",
            &["reason"],
        );
        for reason in [
            "header_timeout",
            "request_line_too_long",
            "header_too_large",
        ] {
            client_refused.with_label_values(&[reason]);
        }
        let compression = counter(
            &registry,
            "portico_compression_responses_total",
            "Origin responses on routes with compression, by the coding sent (br, gzip, zstd, or identity when left as is).",
            &["route", "encoding"],
        );
        let rollout_in_progress = IntGauge::new(
            "portico_rollout_in_progress",
            "1 while the store's rollout of a config version is in progress or paused, else 0.",
        )
        .expect("valid metric definition");
        registry
            .register(Box::new(rollout_in_progress.clone()))
            .expect("metric registered once");
        let rule_matches = counter(
            &registry,
            "portico_rule_matches_total",
            "Requests a rule matched, by route and rule (rule set/rule).",
            &["route", "rule"],
        );
        let rate_limited = counter(
            &registry,
            "portico_rate_limited_total",
            "Requests answered 429 by a rule's rate limit, by route and rule (rule set/rule).",
            &["route", "rule"],
        );
        Self {
            compression,
            rollout_in_progress,
            rule_matches,
            rate_limited,
            client_connections,
            connections_rejected,
            client_refused,
            access_log_dropped,
            registry,
            requests,
            duration,
            origin_healthy,
            origin_latency,
            probes,
            node_info,
            retries,
            retries_denied,
            hedges,
            origin_live_latency,
            origin_selection_latency,
            pool_head_latency,
            ejections,
            origin_ejected,
            failover_served,
            draining,
            config_reloads,
            rollouts,
            config_last_success,
            info_labels: Mutex::new((region.to_string(), version.to_string())),
        }
    }

    /// Points `portico_node_info` at the running region and config version.
    pub fn set_info(&self, region: &str, version: &str) {
        let mut labels = self
            .info_labels
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if labels.0 == region && labels.1 == version {
            return;
        }
        let _ = self
            .node_info
            .remove_label_values(&[labels.0.as_str(), labels.1.as_str()]);
        self.node_info
            .with_label_values(&[region, version, BUILD])
            .set(1);
        *labels = (region.to_string(), version.to_string());
    }

    /// Sets `portico_rollout_in_progress`.
    pub fn set_rollout_in_progress(&self, in_progress: bool) {
        self.rollout_in_progress.set(i64::from(in_progress));
    }

    /// Counts a reload and, when applied, stamps its time.
    pub fn count_reload(&self, source: &str, applied: bool) {
        let result = if applied { "applied" } else { "rejected" };
        self.config_reloads
            .with_label_values(&[source, result])
            .inc();
        if applied {
            self.stamp_success();
        }
    }

    /// Counts a rollout this node's conductor ended with `outcome` (`in_progress` is not an
    /// end: not counted).
    pub fn count_rollout(&self, outcome: Outcome) {
        if outcome != Outcome::InProgress {
            self.rollouts
                .with_label_values(&[&outcome.to_string()])
                .inc();
        }
    }

    /// Sets `portico_config_last_reload_success_timestamp_seconds` to now.
    pub fn stamp_success(&self) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        self.config_last_success.set(now);
    }

    /// Removes the per-origin gauges of an origin that left the config.
    pub fn forget_origin(&self, pool: &str, origin: &str) {
        let _ = self.origin_healthy.remove_label_values(&[pool, origin]);
        let _ = self.origin_ejected.remove_label_values(&[pool, origin]);
        let _ = self.origin_latency.remove_label_values(&[pool, origin]);
        let _ = self
            .origin_live_latency
            .remove_label_values(&[pool, origin]);
        let _ = self
            .origin_selection_latency
            .remove_label_values(&[pool, origin]);
    }

    /// Counts a request in `portico_requests_total`. `route` and `origin` (index in the
    /// route's pool; `None` when no origin answered) must be what `labels` (route, pool,
    /// origin) name.
    pub fn count_request(
        &self,
        cache: &SeriesCache,
        route: Option<usize>,
        origin: Option<usize>,
        code: u16,
        labels: [&str; 3],
    ) {
        let key = (
            route.map_or(0, |r| r + 1),
            origin.map_or(0, |o| o + 1),
            code,
        );
        let cache = &cache.requests;
        if let Some(c) = cache
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
        {
            c.inc();
            return;
        }
        let code = code.to_string();
        let c = self
            .requests
            .with_label_values(&[labels[0], labels[1], labels[2], code.as_str()]);
        c.inc();
        cache
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key, c);
    }

    /// Counts a match of rule `rule` (an index of the config's rules) on route `route` in
    /// `portico_rule_matches_total`; `labels` gives the (route, rule) labels the first time.
    pub fn count_rule_match(
        &self,
        cache: &SeriesCache,
        route: usize,
        rule: usize,
        labels: impl FnOnce() -> (String, String),
    ) {
        let key = (route, rule);
        if let Some(c) = cache
            .rule_matches
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
        {
            c.inc();
            return;
        }
        let (route, rule) = labels();
        let c = self.rule_matches.with_label_values(&[route, rule]);
        c.inc();
        cache
            .rule_matches
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key, c);
    }

    /// Observes a routed request in `portico_request_duration_seconds`; `labels` (route,
    /// pool) are what `route` names.
    pub fn observe_duration(
        &self,
        cache: &SeriesCache,
        route: usize,
        labels: [&str; 2],
        seconds: f64,
    ) {
        let cache = &cache.durations;
        if let Some(h) = cache
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&route)
        {
            h.observe(seconds);
            return;
        }
        let h = self.duration.with_label_values(&labels);
        h.observe(seconds);
        cache
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(route, h);
    }

    /// Creates the per-origin series so they show before the first event.
    pub fn register_origin(&self, pool: &str, origin: &str) {
        self.origin_healthy
            .with_label_values(&[pool, origin])
            .set(1);
        self.origin_ejected
            .with_label_values(&[pool, origin])
            .set(0);
        for result in ["success", "failure"] {
            self.probes.with_label_values(&[pool, origin, result]);
        }
        self.ejections.with_label_values(&[pool, origin]);
    }

    /// Creates the per-pool retry series.
    pub fn register_pool(&self, pool: &str) {
        for reason in RetryReason::ALL {
            self.retries.with_label_values(&[pool, reason.label()]);
        }
        for result in HedgeResult::ALL {
            self.hedges.with_label_values(&[pool, result.label()]);
        }
    }

    /// Registers a family defined elsewhere (the ACME manager's) in this node's registry.
    pub fn register(&self, family: Box<dyn prometheus::core::Collector>) -> prometheus::Result<()> {
        self.registry.register(family)
    }

    /// The Prometheus text exposition of every family.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 * 1024);
        let encoder = TextEncoder::new();
        // Encoding into a Vec cannot fail for well-formed families.
        let _ = encoder.encode(&self.registry.gather(), &mut out);
        out
    }
}
