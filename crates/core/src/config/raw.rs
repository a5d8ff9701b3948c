//! Stage one: the JSON document as written, with unknown keys rejected.
//!
//! Required fields are `Option` so that validation can report every missing one with its
//! path instead of stopping at the first. [`deserialize_collecting`] reports every type error
//! and unknown key, not just the first.

use super::patterns::{
    ACME_CONTACT_PATTERN, ACME_DIRECTORY_PATTERN, CERT_HOST_PATTERN, COOKIE_NAME_PATTERN,
    DNS_NAME_PATTERN, ExpectedStatus, HOST_HEADER_PATTERN, HOST_PATTERN_PATTERN, HOST_PORT_PATTERN,
    LISTEN_PATTERN, MEDIA_RANGE_PATTERN, NAME_PATTERN, NOT_BLANK_PATTERN, PATH_PATTERN_PATTERN,
    PROBE_PATH_PATTERN,
};
use schemars::JsonSchema;
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

/// A Portico configuration document: this node's settings, the pools of origins and the routes
/// from Host and path to a pool. One document serves every node of every region.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Config")]
pub struct RawConfig {
    /// The JSON Schema of this document, for editors: a path to `conf/portico.schema.json` (what
    /// `portico schema` prints) or its `$id` URL. Portico ignores it.
    #[serde(rename = "$schema")]
    pub schema: Option<String>,
    /// Settings of this node; `region`, `listen` and `admin_listen` can be overridden on the
    /// command line (`--region`, `--listen`, `--admin-listen`).
    pub node: Option<RawNode>,
    /// Backend pools: sets of origins serving the same content (at least one).
    #[schemars(required, length(min = 1))]
    pub pools: Option<Vec<RawPool>>,
    /// Routes from Host and path to a pool (at least one).
    #[schemars(required, length(min = 1))]
    pub routes: Option<Vec<RawRoute>>,
    /// Certificates of the TLS listener (`node.tls_listen`), chosen by SNI: an exact host
    /// beats the longest `*.suffix`; no SNI or no match gets the first. Re-read on every
    /// reload.
    pub certificates: Option<Vec<RawCertificate>>,
    /// Named rule sets (edge policy): rules that answer, redirect, rate-limit, rewrite,
    /// re-pool or edit headers, run in order for the routes that name them in
    /// `routes[].rule_sets` (default none).
    #[schemars(with = "Option<Vec<crate::rules::raw::RawRuleSet>>")]
    pub rule_sets: Option<Value>,
    /// The ACME certificate authority that issues the certificates marked `"acme": true`
    /// (Let's Encrypt, say); needed when one is.
    pub acme: Option<RawAcme>,
}

/// `acme`: the certificate authority that issues managed certificates, and how early they
/// are renewed.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Acme")]
pub struct RawAcme {
    /// The CA's ACME directory URL, `https://…` (Let's Encrypt:
    /// `https://acme-v02.api.letsencrypt.org/directory`; its staging:
    /// `https://acme-staging-v02.api.letsencrypt.org/directory`); required when a certificate
    /// is `"acme": true`.
    #[schemars(pattern(ACME_DIRECTORY_PATTERN))]
    pub directory: Option<String>,
    /// Contact URLs given to the CA with the account, `mailto:…` (default none).
    #[schemars(inner(pattern(ACME_CONTACT_PATTERN)))]
    pub contact: Option<Vec<String>>,
    /// PEM file of the CA certificates that the directory's HTTPS is checked against, for a
    /// private CA (default: the system roots).
    #[schemars(pattern(NOT_BLANK_PATTERN))]
    pub ca_file: Option<String>,
    /// A certificate is renewed this many days before it expires (but never in the first
    /// third of its life), 1–365 (default 30).
    #[schemars(range(min = 1, max = 365), extend("default" = 30))]
    pub renew_before_days: Option<i64>,
}

/// `certificates[]`: one certificate chain and its key, for the hosts it serves.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Certificate")]
pub struct RawCertificate {
    /// Certificate name, `[a-z0-9_-]+`, unique.
    #[schemars(required, pattern(NAME_PATTERN), length(max = 64))]
    pub name: Option<String>,
    /// SNI names it serves: exact (`api.example.com`) or a leading wildcard (`*.example.com`).
    #[schemars(required, length(min = 1), inner(pattern(CERT_HOST_PATTERN)))]
    pub hosts: Option<Vec<String>>,
    /// PEM file with the certificate first, then its intermediates (not with `acme`).
    #[schemars(pattern(NOT_BLANK_PATTERN))]
    pub cert_file: Option<String>,
    /// PEM file with the certificate's private key (not with `acme`).
    #[schemars(pattern(NOT_BLANK_PATTERN))]
    pub key_file: Option<String>,
    /// Ordered, answered (HTTP-01) and renewed by Portico from the `acme` CA instead of read
    /// from `cert_file`/`key_file`; its hosts must then be exact names (default false).
    pub acme: Option<bool>,
    /// Client certificates asked for in handshakes that get this certificate (default: none
    /// asked for).
    pub client_auth: Option<RawClientAuth>,
}

/// `certificates[].client_auth`: the CA that client certificates are checked against.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "ClientAuth")]
pub struct RawClientAuth {
    /// PEM file of the CA certificates a client certificate must chain to; re-read on every
    /// reload.
    #[schemars(required, pattern(NOT_BLANK_PATTERN))]
    pub ca_file: Option<String>,
    /// Refuse the handshake of a client without a valid certificate (default true); when
    /// false such a client is served, without the `X-Client-Cert-*` headers.
    pub required: Option<bool>,
}

/// `node`: where this edge node listens and what it calls itself.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Node")]
pub struct RawNode {
    /// Region name, `[a-z0-9_-]+`, sent to origins and used in `Via` (default `local`).
    #[schemars(pattern(NAME_PATTERN), length(max = 64), extend("default" = "local"))]
    pub region: Option<String>,
    /// Proxy listener, `IP:PORT` (default `0.0.0.0:8080`).
    #[schemars(pattern(LISTEN_PATTERN), extend("default" = "0.0.0.0:8080"))]
    pub listen: Option<String>,
    /// TLS listener, `IP:PORT`, beside `listen` (default none: no TLS). TLS 1.2 and 1.3,
    /// ALPN `h2` and `http/1.1`; needs `certificates`.
    #[schemars(pattern(LISTEN_PATTERN))]
    pub tls_listen: Option<String>,
    /// Admin listener for `/metrics`, `/healthz`, `/status`, `IP:PORT`, not the proxy
    /// listener's (default `127.0.0.1:9901`).
    #[schemars(pattern(LISTEN_PATTERN), extend("default" = "127.0.0.1:9901"))]
    pub admin_listen: Option<String>,
    /// Worker threads of the proxy, 1–64 (default 1).
    #[schemars(range(min = 1, max = 64), extend("default" = 1))]
    pub threads: Option<i64>,
    /// How long a node keeps serving after SIGTERM with `/healthz` at 503, 0–600000 ms
    /// (default 0).
    #[schemars(range(min = 0, max = 600_000), extend("default" = 0))]
    pub drain_ms: Option<i64>,
    /// File holding the bearer token that `PUT /config` needs (default: the environment
    /// variable `PORTICO_ADMIN_TOKEN`; with neither, admin writes are disabled).
    #[schemars(pattern(NOT_BLANK_PATTERN))]
    pub admin_token_file: Option<String>,
    /// Access log: `null` (off, the default), `"stdout"`, or a file path. One JSON object per
    /// line per request; a file is reopened on SIGUSR1.
    #[schemars(pattern(NOT_BLANK_PATTERN))]
    pub access_log: Option<String>,
    /// Networks (`10.0.0.0/8`, `2001:db8::/32` or one address) whose `X-Forwarded-Host`,
    /// `X-Forwarded-Proto` and `X-Portico-Region` are kept, and that may ask for the decision
    /// trace (`X-Portico-Debug: 1`; loopback always may). Default: none.
    pub trusted_proxies: Option<Vec<String>>,
    /// Limits on what a client may send and hold: slow or idle connections, their number, and
    /// the size of request heads and bodies.
    pub limits: Option<RawLimits>,
    /// Directory for what the node keeps between runs: the ACME account key and the managed
    /// certificates (with their private keys) of a node with a config file. Created mode 0700
    /// when missing (default `/var/lib/portico`).
    #[schemars(pattern(NOT_BLANK_PATTERN), extend("default" = "/var/lib/portico"))]
    pub state_dir: Option<String>,
}

/// `node.limits`: what a client may hold and send before the node closes or refuses it.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Limits")]
pub struct RawLimits {
    /// Total time a client has to send a whole request head, from the connection's accept
    /// (first request) or from the head's first byte (later keep-alive requests), however it
    /// trickles in; a partial head is answered 408 and the connection closed, 1–3600000 ms
    /// (default 10000).
    #[schemars(range(min = 1, max = 3_600_000), extend("default" = 10_000))]
    pub client_header_timeout_ms: Option<i64>,
    /// An idle keep-alive client connection (between requests) is closed after this many ms,
    /// 1–3600000 (default 60000).
    #[schemars(range(min = 1, max = 3_600_000), extend("default" = 60_000))]
    pub keepalive_timeout_ms: Option<i64>,
    /// Open client connections (plain and TLS together); connections beyond it are closed at
    /// accept and counted in `portico_connections_rejected_total`, 1–1000000 (default 65536).
    #[schemars(range(min = 1, max = 1_000_000), extend("default" = 65_536))]
    pub max_connections: Option<i64>,
    /// Largest request head (request line and headers), 1024–524288 bytes; a larger one is
    /// answered 431, a request line over 8192 bytes 414 (default 32768).
    #[schemars(range(min = 1024, max = 524_288), extend("default" = 32_768))]
    pub max_header_bytes: Option<i64>,
    /// Largest request body, 0–1099511627776 bytes; a larger one is answered 413, by its
    /// `Content-Length` before anything is forwarded, or once a chunked body passes it
    /// (default null: unlimited).
    #[schemars(range(min = 0, max = 1_099_511_627_776_i64), extend("default" = null))]
    pub max_body_bytes: Option<i64>,
    /// Concurrent streams a client's HTTP/2 connection may open (announced in SETTINGS;
    /// streams beyond it are refused), 1–10000 (default 100).
    #[schemars(range(min = 1, max = 10_000), extend("default" = 100))]
    pub h2_max_streams: Option<i64>,
}

/// `pools[]`: a set of origins serving the same content.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Pool")]
pub struct RawPool {
    /// Pool name, `[a-z0-9_-]+`, unique.
    #[schemars(required, pattern(NAME_PATTERN), length(max = 64))]
    pub name: Option<String>,
    /// Active health probe sent by every node to every origin.
    pub health_probe: Option<RawProbe>,
    /// Priority, latency band and health window.
    pub load_balancing: Option<RawLoadBalancing>,
    /// Connect and response timeouts towards origins.
    pub timeouts: Option<RawTimeouts>,
    /// Retries and passive ejection.
    pub failover: Option<RawFailover>,
    /// PEM file of the CA certificates that origins with `tls_verify` are checked against,
    /// instead of the system roots (default none: the system roots).
    #[schemars(pattern(NOT_BLANK_PATTERN))]
    pub ca_file: Option<String>,
    /// PEM certificate chain (leaf first) presented to the pool's TLS origins that ask for a
    /// client certificate, in requests and probes (needs `client_key_file`; default none:
    /// no certificate). Re-read on every reload.
    #[schemars(pattern(NOT_BLANK_PATTERN))]
    pub client_cert_file: Option<String>,
    /// PEM private key of `client_cert_file` (needs `client_cert_file`). Re-read on every
    /// reload.
    #[schemars(pattern(NOT_BLANK_PATTERN))]
    pub client_key_file: Option<String>,
    /// HTTP version spoken to the pool's origins: `"http/1.1"` (default), `"h2"` (HTTP/2 over
    /// TLS by ALPN, or cleartext prior knowledge for origins without `tls`) or `"auto"` (ALPN
    /// offers `h2` and `http/1.1`; cleartext origins get HTTP/1.1). gRPC needs `"h2"`.
    #[schemars(extend("enum" = ["http/1.1", "h2", "auto", null], "default" = "http/1.1"))]
    pub protocol: Option<String>,
    /// The origins of the pool: at least one, at most 64.
    #[schemars(required, length(min = 1, max = crate::config::MAX_ORIGINS_PER_POOL))]
    pub origins: Option<Vec<RawOrigin>>,
}

/// `pools[].health_probe`: the request each node sends to each origin to check it.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "HealthProbe")]
pub struct RawProbe {
    /// Request path of the probe, starting with `/` (default `/`).
    #[schemars(pattern(PROBE_PATH_PATTERN), extend("default" = "/"))]
    pub path: Option<String>,
    /// `GET` or `HEAD` (default `HEAD`).
    #[schemars(extend("enum" = ["GET", "HEAD", null], "default" = "HEAD"))]
    pub method: Option<String>,
    /// Time between probes of one origin, 10–3600000 ms (default 5000).
    #[schemars(range(min = 10, max = 3_600_000), extend("default" = 5000))]
    pub interval_ms: Option<i64>,
    /// Time a probe may take, 1–3600000 ms and less than `interval_ms` (default 2000).
    #[schemars(range(min = 1, max = 3_600_000), extend("default" = 2000))]
    pub timeout_ms: Option<i64>,
    /// Statuses that count as success: integers and `"LO-HI"` ranges (default `[200]`).
    #[schemars(
        with = "Option<Vec<ExpectedStatus>>",
        length(min = 1),
        extend("default" = [200])
    )]
    pub expected_status: Option<Vec<Value>>,
}

/// `pools[].load_balancing`: the health window and the latency band.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "LoadBalancing")]
pub struct RawLoadBalancing {
    /// How many recent probes form the health window, 1–100 (default 4).
    #[schemars(range(min = 1, max = 100), extend("default" = 4))]
    pub sample_size: Option<i64>,
    /// How many of them must succeed for the origin to be healthy, 1–100 and at most
    /// `sample_size` (default 3).
    #[schemars(range(min = 1, max = 100), extend("default" = 3))]
    pub successful_samples_required: Option<i64>,
    /// Origins within this many ms of the fastest share traffic by weight, 0–3600000
    /// (default 50).
    #[schemars(range(min = 0, max = 3_600_000), extend("default" = 50))]
    pub latency_sensitivity_ms: Option<i64>,
    /// An origin coming back from ejection or from unhealthy ramps its weight up linearly
    /// over this many ms (from a tenth of it), 0–3600000; 0 turns slow start off (default 0).
    #[schemars(range(min = 0, max = 3_600_000), extend("default" = 0))]
    pub slow_start_ms: Option<i64>,
    /// Whether live response-head latency adds to the probe latency selection ranks origins
    /// by (default true); false ranks by probe latency alone, as Front Door does.
    #[schemars(extend("default" = true))]
    pub live_latency: Option<bool>,
    /// Sticky sessions: a client keeps going to the origin that answered it first, by a
    /// cookie naming that origin (default: none).
    pub session_affinity: Option<RawSessionAffinity>,
}

/// `pools[].load_balancing.session_affinity`: which cookie pins a client to an origin.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "SessionAffinity")]
pub struct RawSessionAffinity {
    /// Name of the cookie Portico sets to the name of the origin that answered: letters,
    /// digits and `!#$%&'*+.^_|~-` (e.g. `portico_origin`).
    #[schemars(required, pattern(COOKIE_NAME_PATTERN), length(max = 64))]
    pub cookie: Option<String>,
}

/// `routes[].compression`: compress origin responses for clients that accept it.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Compression")]
pub struct RawCompression {
    /// Media ranges of the `Content-Type`s to compress: `type/subtype` or `type/*`
    /// (default `["text/*", "application/json"]`).
    #[schemars(
        length(min = 1),
        inner(pattern(MEDIA_RANGE_PATTERN)),
        extend("default" = ["text/*", "application/json"])
    )]
    pub types: Option<Vec<String>>,
    /// Responses whose `Content-Length` is below this many bytes stay as they are,
    /// 0–1073741824 (default 1024); a body of unknown length is compressed.
    #[schemars(range(min = 0, max = 1_073_741_824), extend("default" = 1024))]
    pub min_bytes: Option<i64>,
}

/// `pools[].timeouts`: how long to wait for origins.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Timeouts")]
pub struct RawTimeouts {
    /// TCP connect timeout to an origin, 1–600000 ms (default 1000).
    #[schemars(range(min = 1, max = 600_000), extend("default" = 1000))]
    pub connect_ms: Option<i64>,
    /// Longest wait for each read of the origin's response, 1–3600000 ms (default 30000).
    #[schemars(range(min = 1, max = 3_600_000), extend("default" = 30_000))]
    pub response_ms: Option<i64>,
}

/// `pools[].failover`: retries on other origins and passive ejection.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Failover")]
pub struct RawFailover {
    /// Retrying a failed request on another origin.
    pub retries: Option<RawRetries>,
    /// Taking an origin out after consecutive live failures.
    pub ejection: Option<RawEjection>,
    /// Sending a slow idempotent request to a second origin too.
    pub hedging: Option<RawHedging>,
}

/// `pools[].failover.hedging`: a second attempt when the first origin is slow to answer.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Hedging")]
pub struct RawHedging {
    /// Whether GET, HEAD and OPTIONS requests without a body are hedged (default true).
    #[schemars(extend("default" = true))]
    pub enabled: Option<bool>,
    /// Wait for a response head before hedging, 1–3600000 ms; `null` is adaptive: the
    /// pool's recent 95th percentile of response-head latency, at least 5 ms (default null).
    #[schemars(range(min = 1, max = 3_600_000), extend("default" = null))]
    pub delay_ms: Option<i64>,
    /// Hedges allowed as a percentage of the pool's recent requests, 0–100 (default 10).
    #[schemars(range(min = 0, max = 100), extend("default" = 10))]
    pub max_percent: Option<i64>,
}

/// `pools[].failover.retries`: retrying a failed request on another origin, within a budget.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Retries")]
pub struct RawRetries {
    /// Whether failed requests are retried at all (default true).
    #[schemars(extend("default" = true))]
    pub enabled: Option<bool>,
    /// Attempts per request, the first one included, 1–10 (default 3).
    #[schemars(range(min = 1, max = 10), extend("default" = 3))]
    pub max_attempts: Option<i64>,
    /// Retries allowed as a percentage of recent requests, 0–100 (default 20).
    #[schemars(range(min = 0, max = 100), extend("default" = 20))]
    pub budget_percent: Option<i64>,
    /// Retries always allowed per second of the budget window, whatever the traffic, 0–100000
    /// (default 10).
    #[schemars(range(min = 0, max = 100_000), extend("default" = 10))]
    pub budget_min_per_second: Option<i64>,
    /// How far back the budget counts requests and retries, 100–600000 ms (default 10000).
    #[schemars(range(min = 100, max = 600_000), extend("default" = 10_000))]
    pub budget_window_ms: Option<i64>,
}

/// `pools[].failover.ejection`: taking an origin out after consecutive live failures.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Ejection")]
pub struct RawEjection {
    /// Whether live failures eject origins at all (default true).
    #[schemars(extend("default" = true))]
    pub enabled: Option<bool>,
    /// Consecutive failed requests that eject an origin, 1–100000 (default 5).
    #[schemars(range(min = 1, max = 100_000), extend("default" = 5))]
    pub consecutive_failures: Option<i64>,
    /// First ejection time; the n-th ejection lasts n times this, 1–3600000 ms
    /// (default 10000).
    #[schemars(range(min = 1, max = 3_600_000), extend("default" = 10_000))]
    pub base_ejection_ms: Option<i64>,
    /// Longest ejection time, 1–86400000 ms and at least `base_ejection_ms` (default 300000).
    #[schemars(range(min = 1, max = 86_400_000), extend("default" = 300_000))]
    pub max_ejection_ms: Option<i64>,
    /// Largest share of a pool's enabled origins ejected at once, 0–100 %; one may always go
    /// (default 50).
    #[schemars(range(min = 0, max = 100), extend("default" = 50))]
    pub max_ejected_percent: Option<i64>,
}

/// `pools[].origins[]`: one server of the pool.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Origin")]
pub struct RawOrigin {
    /// Origin name, `[a-z0-9_-]+`, unique in its pool.
    #[schemars(required, pattern(NAME_PATTERN), length(max = 64))]
    pub name: Option<String>,
    /// `HOST:PORT`: a DNS name, an IPv4 address or a bracketed IPv6 address, and a port;
    /// unique in its pool.
    #[schemars(required, pattern(HOST_PORT_PATTERN))]
    pub address: Option<String>,
    /// 1–5, lower wins (default 1).
    #[schemars(range(min = 1, max = 5), extend("default" = 1))]
    pub priority: Option<i64>,
    /// 1–1000, share of traffic among equals (default 50).
    #[schemars(range(min = 1, max = 1000), extend("default" = 50))]
    pub weight: Option<i64>,
    /// Disabled origins are neither probed nor selected (default true).
    #[schemars(extend("default" = true))]
    pub enabled: Option<bool>,
    /// Where the origin lives, `[a-z0-9_-]+`; informational (default none).
    #[schemars(pattern(NAME_PATTERN), length(max = 64))]
    pub region: Option<String>,
    /// Host header sent to this origin instead of the client's (default none).
    #[schemars(pattern(HOST_HEADER_PATTERN))]
    pub host_header: Option<String>,
    /// Requests and probes go over TLS (default false).
    #[schemars(extend("default" = false))]
    pub tls: Option<bool>,
    /// Server name sent in SNI and checked in the certificate (default: `host_header`, else
    /// the host part of `address`).
    #[schemars(pattern(DNS_NAME_PATTERN))]
    pub sni: Option<String>,
    /// Check the origin's certificate chain (against the pool's `ca_file`, else the system
    /// roots) and name (default true).
    #[schemars(extend("default" = true))]
    pub tls_verify: Option<bool>,
}

/// `routes[]`: which pool serves which hosts and paths.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Route")]
pub struct RawRoute {
    /// Route name, `[a-z0-9_-]+`, unique.
    #[schemars(required, pattern(NAME_PATTERN), length(max = 64))]
    pub name: Option<String>,
    /// Host patterns: exact (`api.example.com`), `*.suffix` or `*`; the port is not part of
    /// it (default `["*"]`).
    #[schemars(length(min = 1), inner(pattern(HOST_PATTERN_PATTERN)), extend("default" = ["*"]))]
    pub hosts: Option<Vec<String>>,
    /// Path patterns: exact (`/health`) or prefix ending in `/*` (`/api/*`) (default `["/*"]`).
    #[schemars(length(min = 1), inner(pattern(PATH_PATTERN_PATTERN)), extend("default" = ["/*"]))]
    pub paths: Option<Vec<String>>,
    /// Name of the pool that serves the route.
    #[schemars(required, pattern(NAME_PATTERN), length(max = 64))]
    pub pool: Option<String>,
    /// Answer plain-HTTP requests with 308 and `Location: https://<host><path and query>`
    /// (default false).
    #[schemars(extend("default" = false))]
    pub https_redirect: Option<bool>,
    /// Compress origin responses with brotli, gzip or zstd as the client's
    /// `Accept-Encoding` prefers (default: off).
    pub compression: Option<RawCompression>,
    /// Names of rule sets (`rule_sets[].name`) run, in this order, for requests of the route,
    /// each at most once (default none).
    #[schemars(inner(pattern(NAME_PATTERN)))]
    pub rule_sets: Option<Vec<String>>,
}
