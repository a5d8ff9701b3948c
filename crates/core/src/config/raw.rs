//! Stage one: the JSON document as written, with unknown keys rejected.
//!
//! Required fields are `Option` so that validation can report every missing one with its
//! path instead of stopping at the first. [`deserialize_collecting`] reports every type error
//! and unknown key, not just the first.

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use serde_path_to_error::Segment;

/// A problem serde found, with its JSON path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawError {
    /// JSON path (`pools[0].origins[1].weight`).
    pub path: String,
    /// serde's description of the problem.
    pub message: String,
}

/// Deserializes `value`, collecting every error: each time serde stops, the error is kept, the
/// offending key is removed from the document (so its default applies) and serde runs again.
/// Returns the value parsed from what was left, and the errors.
pub fn deserialize_collecting<T: DeserializeOwned>(mut value: Value) -> (Option<T>, Vec<RawError>) {
    let mut errors = Vec::new();
    // Each round removes one key, so this ends; the bound is a guard against surprises.
    for _ in 0..1000 {
        match serde_path_to_error::deserialize::<_, T>(value.clone()) {
            Ok(t) => return (Some(t), errors),
            Err(e) => {
                let segments: Vec<Segment> = e.path().iter().cloned().collect();
                let path = e.path().to_string();
                errors.push(RawError {
                    path: if path == "." { String::new() } else { path },
                    message: e.into_inner().to_string(),
                });
                if !remove_key(&mut value, &segments) {
                    return (None, errors);
                }
            }
        }
    }
    (None, errors)
}

/// Removes the innermost object key on `path` (an array item takes its whole array with it).
fn remove_key(root: &mut Value, path: &[Segment]) -> bool {
    let Some(last_key) = path.iter().rposition(|s| matches!(s, Segment::Map { .. })) else {
        return false;
    };
    let mut parent = root;
    for segment in &path[..last_key] {
        let next = match segment {
            Segment::Map { key } => parent.get_mut(key.as_str()),
            Segment::Seq { index } => parent.get_mut(*index),
            _ => None,
        };
        match next {
            Some(v) => parent = v,
            None => return false,
        }
    }
    match (&path[last_key], parent.as_object_mut()) {
        (Segment::Map { key }, Some(object)) => object.remove(key).is_some(),
        _ => false,
    }
}

/// The whole configuration document.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Settings of this node; every field can be overridden on the command line.
    pub node: Option<RawNode>,
    /// Backend pools.
    pub pools: Option<Vec<RawPool>>,
    /// Routes from Host and path to a pool.
    pub routes: Option<Vec<RawRoute>>,
}

/// `node`: where this edge node listens and what it calls itself.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNode {
    /// Region name, sent to origins and used in `Via` (default `local`).
    pub region: Option<String>,
    /// Proxy listener, `IP:PORT` (default `0.0.0.0:8080`).
    pub listen: Option<String>,
    /// Admin listener for `/metrics`, `/healthz`, `/status` (default `127.0.0.1:9901`).
    pub admin_listen: Option<String>,
    /// Worker threads of the proxy (default 1).
    pub threads: Option<i64>,
    /// How long a node keeps serving after SIGTERM with `/healthz` at 503 (default 0 ms).
    pub drain_ms: Option<i64>,
    /// File holding the bearer token that `PUT /config` needs (default: the environment
    /// variable `PORTICO_ADMIN_TOKEN`; with neither, admin writes are disabled).
    pub admin_token_file: Option<String>,
    /// Access log: `null` (off, the default), `"stdout"`, or a file path. One JSON object per
    /// line per request; a file is reopened on SIGUSR1.
    pub access_log: Option<String>,
}

/// `pools[]`: a set of origins serving the same content.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPool {
    /// Pool name, `[a-z0-9_-]+`, unique.
    pub name: Option<String>,
    /// Active health probe sent by every node to every origin.
    pub health_probe: Option<RawProbe>,
    /// Priority, latency band and health window.
    pub load_balancing: Option<RawLoadBalancing>,
    /// Connect and response timeouts towards origins.
    pub timeouts: Option<RawTimeouts>,
    /// Retries and passive ejection.
    pub failover: Option<RawFailover>,
    /// The origins of the pool.
    pub origins: Option<Vec<RawOrigin>>,
}

/// `pools[].health_probe`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProbe {
    /// Request path of the probe (default `/`).
    pub path: Option<String>,
    /// `GET` or `HEAD` (default `HEAD`).
    pub method: Option<String>,
    /// Time between probes of one origin (default 5000).
    pub interval_ms: Option<i64>,
    /// Time a probe may take, less than the interval (default 2000).
    pub timeout_ms: Option<i64>,
    /// Statuses that count as success: integers and `"LO-HI"` ranges (default `[200]`).
    pub expected_status: Option<Vec<Value>>,
}

/// `pools[].load_balancing`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLoadBalancing {
    /// How many recent probes form the health window (default 4).
    pub sample_size: Option<i64>,
    /// How many of them must succeed for the origin to be healthy (default 3).
    pub successful_samples_required: Option<i64>,
    /// Origins within this many ms of the fastest share traffic by weight (default 50).
    pub latency_sensitivity_ms: Option<i64>,
}

/// `pools[].timeouts`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTimeouts {
    /// TCP connect timeout to an origin (default 1000).
    pub connect_ms: Option<i64>,
    /// Longest wait for each read of the origin's response (default 30000).
    pub response_ms: Option<i64>,
}

/// `pools[].failover`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFailover {
    /// Retrying a failed request on another origin.
    pub retries: Option<RawRetries>,
    /// Taking an origin out after consecutive live failures.
    pub ejection: Option<RawEjection>,
}

/// `pools[].failover.retries`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRetries {
    /// Whether failed requests are retried at all (default true).
    pub enabled: Option<bool>,
    /// Attempts per request, the first one included (default 3).
    pub max_attempts: Option<i64>,
    /// Retries allowed as a percentage of recent requests (default 20).
    pub budget_percent: Option<i64>,
    /// Retries always allowed per second of the budget window, whatever the traffic (default 10).
    pub budget_min_per_second: Option<i64>,
    /// How far back the budget counts requests and retries (default 10000).
    pub budget_window_ms: Option<i64>,
}

/// `pools[].failover.ejection`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEjection {
    /// Whether live failures eject origins at all (default true).
    pub enabled: Option<bool>,
    /// Consecutive failed requests that eject an origin (default 5).
    pub consecutive_failures: Option<i64>,
    /// First ejection time; the n-th ejection lasts n times this (default 10000).
    pub base_ejection_ms: Option<i64>,
    /// Longest ejection time (default 300000).
    pub max_ejection_ms: Option<i64>,
    /// Largest share of a pool's enabled origins ejected at once; one may always go (default 50).
    pub max_ejected_percent: Option<i64>,
}

/// `pools[].origins[]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOrigin {
    /// Origin name, `[a-z0-9_-]+`, unique in its pool.
    pub name: Option<String>,
    /// `HOST:PORT`.
    pub address: Option<String>,
    /// 1–5, lower wins (default 1).
    pub priority: Option<i64>,
    /// 1–1000, share of traffic among equals (default 50).
    pub weight: Option<i64>,
    /// Disabled origins are neither probed nor selected (default true).
    pub enabled: Option<bool>,
    /// Where the origin lives; informational (default none).
    pub region: Option<String>,
    /// Host header sent to this origin instead of the client's (default none).
    pub host_header: Option<String>,
}

/// `routes[]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    /// Route name, `[a-z0-9_-]+`, unique.
    pub name: Option<String>,
    /// Host patterns: exact, `*.suffix` or `*` (default `["*"]`).
    pub hosts: Option<Vec<String>>,
    /// Path patterns: exact or prefix ending in `/*` (default `["/*"]`).
    pub paths: Option<Vec<String>>,
    /// Name of the pool that serves the route.
    pub pool: Option<String>,
}
