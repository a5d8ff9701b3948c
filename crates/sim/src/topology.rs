//! The simulated world (regions, round trips, edge nodes, origins, pool), validated with every error named by its JSON path.

use portico_core::config::raw::deserialize_collecting;
use serde::Deserialize;
use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::time::Duration;

/// One problem in a topology file, tied to the JSON path it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopologyError {
    /// JSON path such as `rtt_ms[2].between[1]`; empty for the document itself.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for TopologyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Every error found in a topology file, in path order, one per line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.lines().join("\n"))]
pub struct TopologyErrors(pub Vec<TopologyError>);

impl TopologyErrors {
    /// Each error as `path: message`.
    pub fn lines(&self) -> Vec<String> {
        self.0.iter().map(ToString::to_string).collect()
    }
}

/// Collects errors with their paths.
#[derive(Default)]
struct Errors(Vec<TopologyError>);

impl Errors {
    fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(TopologyError {
            path: path.into(),
            message: message.into(),
        });
    }
}

/// `topology.json` as written. Fields that serde could not read are dropped (their error is
/// kept) and validation goes on with the rest, so every error is reported at once.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTopology {
    /// How long a node must fail `/healthz` before its announcement is withdrawn, ms.
    #[serde(default = "default_withdraw")]
    withdraw_ms: u64,
    /// `node.drain_ms` of the shared Portico config: how long a stopping node keeps serving
    /// while its `/healthz` says 503. Longer than `withdraw_ms` makes maintenance lossless.
    #[serde(default)]
    drain_ms: u64,
    /// The regions (required, at least one).
    #[serde(default)]
    regions: Vec<RawRegion>,
    /// Round trips between every pair of regions, and within each (required).
    #[serde(default)]
    rtt_ms: Vec<RawRtt>,
    /// The pool every edge node serves.
    #[serde(default)]
    pool: RawPool,
}

fn default_withdraw() -> u64 {
    1000
}

/// `regions[]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRegion {
    /// Region name, `[a-z0-9_-]+`; also the nodes' `--region` (required).
    name: Option<String>,
    /// Edge nodes of this region (names).
    #[serde(default)]
    edge_nodes: Vec<String>,
    /// Origins of this region (names).
    #[serde(default)]
    origins: Vec<String>,
}

/// `rtt_ms[]`: `{"between": ["a", "b"], "ms": 80}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRtt {
    /// Two region names, the same twice for the round trip within a region (required).
    between: Option<[String; 2]>,
    /// Round trip, ms (required).
    ms: Option<u64>,
}

/// `pool`: what the shared Portico config says about the one pool.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawPool {
    /// Pool name.
    name: String,
    /// Probe interval of every node, ms.
    probe_interval_ms: u64,
    /// Latency band, ms.
    latency_sensitivity_ms: u64,
}

impl Default for RawPool {
    fn default() -> Self {
        RawPool {
            name: "web".into(),
            probe_interval_ms: 1000,
            latency_sensitivity_ms: 20,
        }
    }
}

/// One region of the validated topology.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Region {
    /// Name.
    pub name: String,
    /// Edge node names.
    pub edge_nodes: Vec<String>,
    /// Origin names.
    pub origins: Vec<String>,
}

/// A validated topology.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    /// Withdrawal delay of an unhealthy node's announcement.
    pub withdraw: Duration,
    /// Drain period of every node (`node.drain_ms`).
    pub drain: Duration,
    /// Regions, in file order.
    pub regions: Vec<Region>,
    /// Round trip for every pair of region indices `(low, high)`.
    rtt: BTreeMap<(usize, usize), Duration>,
    /// Pool name.
    pub pool: String,
    /// Probe interval.
    pub probe_interval: Duration,
    /// Latency band.
    pub latency_sensitivity: Duration,
}

/// Sort key putting paths in document order: `rtt_ms[2]` before `rtt_ms[10]`.
fn path_key(path: &str) -> Vec<(String, usize)> {
    path.split(['.', '['])
        .map(
            |part| match part.strip_suffix(']').and_then(|n| n.parse().ok()) {
                Some(index) => (String::new(), index),
                None => (part.to_string(), 0),
            },
        )
        .collect()
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

impl Topology {
    /// Parses and validates topology JSON, reporting every error with its path.
    pub fn parse(text: &str) -> Result<Topology, TopologyErrors> {
        let value: serde_json::Value = serde_json::from_str(text).map_err(|e| {
            TopologyErrors(vec![TopologyError {
                path: String::new(),
                message: format!("not valid JSON: {e}"),
            }])
        })?;
        let mut errors = Errors::default();
        let (raw, raw_errors) = deserialize_collecting::<RawTopology>(value);
        for e in raw_errors {
            errors.push(e.path, e.message);
        }
        let Some(raw) = raw else {
            return Err(TopologyErrors(errors.0));
        };
        if raw.regions.is_empty() {
            errors.push("regions", "at least one region is required");
        }
        let region_names: Vec<&str> = raw
            .regions
            .iter()
            .map(|r| r.name.as_deref().unwrap_or(""))
            .collect();
        let mut names = HashSet::new();
        let mut members = HashSet::new();
        for (i, r) in raw.regions.iter().enumerate() {
            match &r.name {
                None => errors.push(format!("regions[{i}].name"), "required"),
                Some(n) if !valid_name(n) => errors.push(
                    format!("regions[{i}].name"),
                    format!("{n:?} must match [a-z0-9_-]+"),
                ),
                Some(n) if !names.insert(n.as_str()) => {
                    errors.push(format!("regions[{i}].name"), format!("{n:?} is used twice"))
                }
                Some(_) => {}
            }
            for (field, list) in [("edge_nodes", &r.edge_nodes), ("origins", &r.origins)] {
                for (j, n) in list.iter().enumerate() {
                    if !valid_name(n) {
                        errors.push(
                            format!("regions[{i}].{field}[{j}]"),
                            format!("{n:?} must match [a-z0-9_-]+"),
                        );
                    } else if !members.insert(n.as_str()) {
                        errors.push(
                            format!("regions[{i}].{field}[{j}]"),
                            format!("{n:?} is used twice"),
                        );
                    }
                }
            }
        }
        if raw.regions.iter().all(|r| r.edge_nodes.is_empty()) && !raw.regions.is_empty() {
            errors.push("regions", "at least one edge node is required");
        }
        if raw.regions.iter().all(|r| r.origins.is_empty()) && !raw.regions.is_empty() {
            errors.push("regions", "at least one origin is required");
        }
        let index = |n: &str| region_names.iter().position(|r| *r == n);
        // Pair of region indices -> (round trip, where it was given).
        let mut rtt: BTreeMap<(usize, usize), (Duration, usize)> = BTreeMap::new();
        for (i, e) in raw.rtt_ms.iter().enumerate() {
            let Some(between) = &e.between else {
                errors.push(format!("rtt_ms[{i}].between"), "required");
                continue;
            };
            let mut ends = [0usize; 2];
            let mut ok = true;
            for (j, n) in between.iter().enumerate() {
                match index(n) {
                    Some(k) => ends[j] = k,
                    None => {
                        errors.push(
                            format!("rtt_ms[{i}].between[{j}]"),
                            format!("{n:?} is not a region"),
                        );
                        ok = false;
                    }
                }
            }
            let ms = match e.ms {
                None => {
                    errors.push(format!("rtt_ms[{i}].ms"), "required");
                    0
                }
                Some(ms) if ms > 10_000 => {
                    errors.push(
                        format!("rtt_ms[{i}].ms"),
                        format!("{ms} is more than 10000"),
                    );
                    ms
                }
                Some(ms) => ms,
            };
            if ok {
                let key = (ends[0].min(ends[1]), ends[0].max(ends[1]));
                if rtt.insert(key, (Duration::from_millis(ms), i)).is_some() {
                    errors.push(
                        format!("rtt_ms[{i}]"),
                        format!(
                            "the round trip between {} and {} is given twice",
                            between[0], between[1]
                        ),
                    );
                }
            }
        }
        let n = raw.regions.len();
        for a in 0..n {
            for b in a..n {
                if !rtt.contains_key(&(a, b)) {
                    errors.push(
                        "rtt_ms",
                        format!(
                            "no round trip between {} and {}",
                            region_names[a], region_names[b]
                        ),
                    );
                }
            }
        }
        // Nearest-node routing (and network mode's routes, which must not loop) assume that a
        // region is never farther from itself than from another region.
        for a in 0..n {
            let Some(&(within, at)) = rtt.get(&(a, a)) else {
                continue;
            };
            for b in (0..n).filter(|&b| b != a) {
                let across = rtt.get(&(a.min(b), a.max(b))).map_or(within, |r| r.0);
                if across < within {
                    errors.push(
                        format!("rtt_ms[{at}].ms"),
                        format!(
                            "the round trip within {} ({} ms) is longer than from {} to {} ({} ms)",
                            region_names[a],
                            within.as_millis(),
                            region_names[a],
                            region_names[b],
                            across.as_millis()
                        ),
                    );
                }
            }
        }
        if !valid_name(&raw.pool.name) {
            errors.push(
                "pool.name",
                format!("{:?} must match [a-z0-9_-]+", raw.pool.name),
            );
        }
        if raw.pool.probe_interval_ms < 50 {
            errors.push(
                "pool.probe_interval_ms",
                format!("{} is less than 50", raw.pool.probe_interval_ms),
            );
        }
        if !errors.0.is_empty() {
            let mut errors = errors.0;
            errors.sort_by_cached_key(|e| path_key(&e.path));
            return Err(TopologyErrors(errors));
        }
        Ok(Topology {
            withdraw: Duration::from_millis(raw.withdraw_ms),
            drain: Duration::from_millis(raw.drain_ms),
            regions: raw
                .regions
                .into_iter()
                .map(|r| Region {
                    name: r.name.unwrap_or_default(),
                    edge_nodes: r.edge_nodes,
                    origins: r.origins,
                })
                .collect(),
            rtt: rtt.into_iter().map(|(k, (d, _))| (k, d)).collect(),
            pool: raw.pool.name,
            probe_interval: Duration::from_millis(raw.pool.probe_interval_ms),
            latency_sensitivity: Duration::from_millis(raw.pool.latency_sensitivity_ms),
        })
    }

    /// Round trip between two regions (by index).
    pub fn rtt(&self, a: usize, b: usize) -> Duration {
        self.rtt
            .get(&(a.min(b), a.max(b)))
            .copied()
            .unwrap_or_default()
    }

    /// Index of a region.
    pub fn region_index(&self, name: &str) -> Option<usize> {
        self.regions.iter().position(|r| r.name == name)
    }

    /// Every edge node as `(region index, name)`, in file order.
    pub fn edge_nodes(&self) -> Vec<(usize, String)> {
        self.regions
            .iter()
            .enumerate()
            .flat_map(|(i, r)| r.edge_nodes.iter().map(move |n| (i, n.clone())))
            .collect()
    }

    /// Every origin as `(region index, name)`, in file order.
    pub fn origins(&self) -> Vec<(usize, String)> {
        self.regions
            .iter()
            .enumerate()
            .flat_map(|(i, r)| r.origins.iter().map(move |n| (i, n.clone())))
            .collect()
    }

    /// The edge nodes (indices into [`Topology::edge_nodes`]) ordered by round trip from
    /// `client_region`, nearest first; on a tie the client's own region first, then file order.
    pub fn nodes_by_distance(&self, client_region: usize) -> Vec<usize> {
        let nodes = self.edge_nodes();
        let mut order: Vec<usize> = (0..nodes.len()).collect();
        order.sort_by_key(|&i| {
            (
                self.rtt(client_region, nodes[i].0),
                nodes[i].0 != client_region,
                i,
            )
        });
        order
    }

    /// The shared Portico config: one pool with every origin (addresses given), one catch-all
    /// route; with `tls`, a TLS listener and that certificate for every host. `node.*` is
    /// overridden per node.
    pub fn portico_config(
        &self,
        origin_addrs: &[std::net::SocketAddr],
        tls: Option<&portico_origin::DemoTls>,
    ) -> String {
        let origins: Vec<String> = self
            .origins()
            .iter()
            .zip(origin_addrs)
            .map(|((r, name), addr)| {
                format!(
                    r#"      {{ "name": "{name}", "address": "{addr}", "region": "{}" }}"#,
                    self.regions[*r].name
                )
            })
            .collect();
        let interval = self.probe_interval.as_millis();
        let (tls_listen, certificates) = match tls {
            None => (String::new(), String::new()),
            Some(t) => {
                let path = |p: &std::path::Path| serde_json::Value::from(p.to_string_lossy());
                (
                    r#", "tls_listen": "127.0.0.1:8443""#.to_string(),
                    format!(
                        r#",
  "certificates": [{{ "name": "sim", "hosts": {}, "cert_file": {}, "key_file": {} }}]"#,
                        serde_json::Value::from(t.dns_names()),
                        path(&t.cert_file),
                        path(&t.key_file),
                    ),
                )
            }
        };
        format!(
            r#"{{
  "node": {{ "region": "local", "listen": "127.0.0.1:8080", "admin_listen": "127.0.0.1:9901"{tls_listen}, "threads": 1, "drain_ms": {drain} }},
  "pools": [{{
    "name": "{pool}",
    "health_probe": {{ "path": "/", "method": "HEAD", "interval_ms": {interval}, "timeout_ms": {timeout} }},
    "load_balancing": {{ "sample_size": 4, "successful_samples_required": 3, "latency_sensitivity_ms": {band} }},
    "origins": [
{origins}
    ]
  }}],
  "routes": [{{ "name": "all", "hosts": ["*"], "paths": ["/*"], "pool": "{pool}" }}]{certificates}
}}
"#,
            pool = self.pool,
            timeout = (interval * 9 / 10).min(2000),
            band = self.latency_sensitivity.as_millis(),
            drain = self.drain.as_millis(),
            origins = origins.join(",\n"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{
      "regions": [
        {"name": "us-east", "edge_nodes": ["us-edge"], "origins": ["us-web"]},
        {"name": "eu-west", "edge_nodes": ["eu-edge"], "origins": ["eu-web"]},
        {"name": "ap-south", "edge_nodes": ["ap-edge"], "origins": []}
      ],
      "rtt_ms": [
        {"between": ["us-east", "us-east"], "ms": 2}, {"between": ["eu-west", "eu-west"], "ms": 2},
        {"between": ["ap-south", "ap-south"], "ms": 2}, {"between": ["us-east", "eu-west"], "ms": 80},
        {"between": ["ap-south", "us-east"], "ms": 200}, {"between": ["eu-west", "ap-south"], "ms": 120}
      ]
    }"#;

    #[test]
    fn a_good_topology_gives_symmetric_round_trips_and_nearest_nodes() {
        let t = Topology::parse(GOOD).unwrap();
        assert_eq!(t.rtt(0, 2), Duration::from_millis(200));
        assert_eq!(t.rtt(2, 0), Duration::from_millis(200));
        assert_eq!(t.withdraw, Duration::from_millis(1000));
        assert_eq!(t.nodes_by_distance(2), vec![2, 1, 0]);
        assert_eq!(t.nodes_by_distance(0), vec![0, 1, 2]);
        let addrs: Vec<std::net::SocketAddr> = vec![
            "127.0.0.1:1".parse().unwrap(),
            "127.0.0.1:2".parse().unwrap(),
        ];
        let config = portico_core::config::parse(&t.portico_config(&addrs, None))
            .expect("valid Portico config");
        assert_eq!(config.pools[0].origins.len(), 2);
        assert_eq!(
            config.pools[0].origins[1].region.as_deref(),
            Some("eu-west")
        );
        assert_eq!(config.node.tls_listen, None);
        assert!(config.certificates.is_empty());
    }

    #[test]
    fn with_a_certificate_the_shared_config_has_a_tls_listener_serving_it() {
        let t = Topology::parse(GOOD).expect("valid");
        let addrs: Vec<std::net::SocketAddr> = vec![
            "127.0.0.1:1".parse().unwrap(),
            "127.0.0.1:2".parse().unwrap(),
        ];
        let tls = portico_origin::DemoTls {
            ca_file: "/w/tls/ca.pem".into(),
            cert_file: "/w/tls/\"odd\".pem".into(),
            key_file: "/w/tls/server-key.pem".into(),
            hosts: vec!["localhost".into(), "127.0.0.1".into()],
        };
        let text = t.portico_config(&addrs, Some(&tls));
        let config = portico_core::config::parse(&text).expect("valid Portico config");
        assert_eq!(config.node.tls_listen.as_deref(), Some("127.0.0.1:8443"));
        assert_eq!(config.certificates.len(), 1);
        let c = &config.certificates[0];
        assert_eq!(
            c.source,
            portico_core::config::CertSource::Files {
                cert_file: r#"/w/tls/"odd".pem"#.into(),
                key_file: "/w/tls/server-key.pem".into(),
            },
            "paths are JSON-escaped"
        );
        assert_eq!(c.hosts.len(), 1, "DNS names only: {:?}", c.hosts);
    }

    #[test]
    fn the_shipped_topology_is_valid_and_each_region_is_nearest_to_itself() {
        let t = Topology::parse(include_str!("../../../deploy/sim/topology.json"))
            .expect("deploy/sim/topology.json is valid");
        let names: Vec<&str> = t.regions.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["us-east", "eu-west", "ap-south"]);
        for r in 0..t.regions.len() {
            assert_eq!(t.nodes_by_distance(r)[0], r);
        }
    }

    #[test]
    fn every_error_is_reported_with_its_path() {
        let bad = r#"{
          "regions": [
            {"name": "US", "edge_nodes": ["e1"], "origins": ["o1"]},
            {"name": "eu", "edge_nodes": ["e1"]},
            {"edge_nodes": ["E 2"]}
          ],
          "rtt_ms": [
            {"between": ["US", "mars"], "ms": 20000},
            {"between": ["eu", "eu"]},
            {"ms": 4}
          ],
          "pool": {"probe_interval_ms": 10}
        }"#;
        let errors = Topology::parse(bad).unwrap_err();
        assert!(errors.0.iter().any(|e| e.path == "rtt_ms[0].between[1]"));
        let e = errors.lines();
        for want in [
            r#"regions[0].name: "US" must match [a-z0-9_-]+"#,
            r#"regions[1].edge_nodes[0]: "e1" is used twice"#,
            "regions[2].name: required",
            r#"regions[2].edge_nodes[0]: "E 2" must match [a-z0-9_-]+"#,
            r#"rtt_ms[0].between[1]: "mars" is not a region"#,
            "rtt_ms[0].ms: 20000 is more than 10000",
            "rtt_ms[1].ms: required",
            "rtt_ms[2].between: required",
            "rtt_ms: no round trip between US and US",
            "pool.probe_interval_ms: 10 is less than 50",
        ] {
            assert!(e.iter().any(|x| x == want), "missing {want:?} in {e:#?}");
        }
    }

    #[test]
    fn every_type_error_and_unknown_key_is_reported_at_once() {
        let e = Topology::parse(
            r#"{"regions": [{"name": "a", "edges": []}, {"name": 7}],
                "rtt_ms": [{"between": ["a", "a"], "ms": "x"}], "colour": "red"}"#,
        )
        .unwrap_err();
        let paths: Vec<&str> = e.0.iter().map(|e| e.path.as_str()).collect();
        for want in [
            "regions[0].edges",
            "regions[1].name",
            "rtt_ms[0].ms",
            "colour",
        ] {
            assert!(paths.contains(&want), "missing {want} in {e}");
        }
        let unknown = e.0.iter().find(|e| e.path == "regions[0].edges").unwrap();
        assert!(unknown.message.starts_with("unknown field `edges`"), "{e}");
        let wrong = e.0.iter().find(|e| e.path == "rtt_ms[0].ms").unwrap();
        assert!(wrong.message.starts_with("invalid type"), "{e}");
        let e = Topology::parse("{").unwrap_err();
        assert!(e.0[0].message.starts_with("not valid JSON"), "{e}");
    }

    #[test]
    fn a_region_farther_from_itself_than_from_another_is_refused() {
        let far = GOOD.replace(
            r#"{"between": ["ap-south", "ap-south"], "ms": 2}"#,
            r#"{"between": ["ap-south", "ap-south"], "ms": 150}"#,
        );
        let e = Topology::parse(&far).unwrap_err();
        assert_eq!(
            e.lines(),
            [
                "rtt_ms[2].ms: the round trip within ap-south (150 ms) is longer than from ap-south to eu-west (120 ms)"
            ]
        );
    }

    #[test]
    fn nearest_nodes_by_round_trip_own_region_first_on_a_tie() {
        let t = Topology::parse(
            r#"{
              "regions": [
                {"name": "a", "edge_nodes": ["a1", "a2"], "origins": ["oa"]},
                {"name": "b", "edge_nodes": ["b1"]},
                {"name": "c", "edge_nodes": ["c1"]}
              ],
              "rtt_ms": [
                {"between": ["a", "a"], "ms": 5}, {"between": ["b", "b"], "ms": 5},
                {"between": ["c", "c"], "ms": 5}, {"between": ["a", "b"], "ms": 5},
                {"between": ["a", "c"], "ms": 90}, {"between": ["b", "c"], "ms": 30}
              ]
            }"#,
        )
        .unwrap();
        // Nodes: 0 = a1, 1 = a2 (region a), 2 = b1, 3 = c1.
        assert_eq!(t.nodes_by_distance(0), vec![0, 1, 2, 3]);
        assert_eq!(
            t.nodes_by_distance(1),
            vec![2, 0, 1, 3],
            "own region wins a tie"
        );
        assert_eq!(t.nodes_by_distance(2), vec![3, 2, 0, 1]);
    }
}
