//! The simulated world (regions, round trips, edge nodes, origins, pool), validated with every error named by its JSON path.

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

/// Every error found in a topology file, in document order, one per line.
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

/// `topology.json` as written.
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
    /// The regions.
    regions: Vec<RawRegion>,
    /// Round trips between regions (and within one).
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
    /// Region name, `[a-z0-9-]+`; also the nodes' `--region`.
    name: String,
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
    /// Two region names (the same twice for the round trip within a region).
    between: [String; 2],
    /// Round trip, ms.
    ms: u64,
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

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

impl Topology {
    /// Parses and validates topology JSON, reporting every error with its path.
    pub fn parse(text: &str) -> Result<Topology, TopologyErrors> {
        let de = &mut serde_json::Deserializer::from_str(text);
        let raw: RawTopology = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            TopologyErrors(vec![TopologyError {
                path: if path == "." { String::new() } else { path },
                message: e.inner().to_string(),
            }])
        })?;
        let mut errors = Errors::default();
        if raw.regions.is_empty() {
            errors.push("regions", "at least one region is required");
        }
        let mut names = HashSet::new();
        let mut members = HashSet::new();
        for (i, r) in raw.regions.iter().enumerate() {
            if !valid_name(&r.name) {
                errors.push(
                    format!("regions[{i}].name"),
                    format!("{:?} must match [a-z0-9_-]+", r.name),
                );
            }
            if !names.insert(r.name.as_str()) {
                errors.push(
                    format!("regions[{i}].name"),
                    format!("{:?} is used twice", r.name),
                );
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
        let index = |n: &str| raw.regions.iter().position(|r| r.name == n);
        let mut rtt = BTreeMap::new();
        for (i, e) in raw.rtt_ms.iter().enumerate() {
            let mut ends = [0usize; 2];
            let mut ok = true;
            for (j, n) in e.between.iter().enumerate() {
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
            if e.ms > 10_000 {
                errors.push(
                    format!("rtt_ms[{i}].ms"),
                    format!("{} is more than 10000", e.ms),
                );
            }
            if ok {
                let key = (ends[0].min(ends[1]), ends[0].max(ends[1]));
                if rtt.insert(key, Duration::from_millis(e.ms)).is_some() {
                    errors.push(
                        format!("rtt_ms[{i}]"),
                        format!(
                            "the round trip between {} and {} is given twice",
                            e.between[0], e.between[1]
                        ),
                    );
                }
            }
        }
        for a in 0..raw.regions.len() {
            for b in a..raw.regions.len() {
                if !rtt.contains_key(&(a, b)) {
                    errors.push(
                        "rtt_ms",
                        format!(
                            "no round trip between {} and {}",
                            raw.regions[a].name, raw.regions[b].name
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
            return Err(TopologyErrors(errors.0));
        }
        Ok(Topology {
            withdraw: Duration::from_millis(raw.withdraw_ms),
            drain: Duration::from_millis(raw.drain_ms),
            regions: raw
                .regions
                .into_iter()
                .map(|r| Region {
                    name: r.name,
                    edge_nodes: r.edge_nodes,
                    origins: r.origins,
                })
                .collect(),
            rtt,
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
    /// `client_region`, nearest first (file order breaks ties).
    pub fn nodes_by_distance(&self, client_region: usize) -> Vec<usize> {
        let nodes = self.edge_nodes();
        let mut order: Vec<usize> = (0..nodes.len()).collect();
        order.sort_by_key(|&i| (self.rtt(client_region, nodes[i].0), i));
        order
    }

    /// The shared Portico config: one pool with every origin (addresses given), one catch-all
    /// route. `node.*` is overridden per node.
    pub fn portico_config(&self, origin_addrs: &[std::net::SocketAddr]) -> String {
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
        format!(
            r#"{{
  "node": {{ "region": "local", "listen": "127.0.0.1:8080", "admin_listen": "127.0.0.1:9901", "threads": 1, "drain_ms": {drain} }},
  "pools": [{{
    "name": "{pool}",
    "health_probe": {{ "path": "/", "method": "HEAD", "interval_ms": {interval}, "timeout_ms": {timeout} }},
    "load_balancing": {{ "sample_size": 4, "successful_samples_required": 3, "latency_sensitivity_ms": {band} }},
    "origins": [
{origins}
    ]
  }}],
  "routes": [{{ "name": "all", "hosts": ["*"], "paths": ["/*"], "pool": "{pool}" }}]
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
        let config =
            portico_core::config::parse(&t.portico_config(&addrs)).expect("valid Portico config");
        assert_eq!(config.pools[0].origins.len(), 2);
        assert_eq!(
            config.pools[0].origins[1].region.as_deref(),
            Some("eu-west")
        );
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
            {"name": "eu", "edge_nodes": ["e1"]}
          ],
          "rtt_ms": [{"between": ["US", "mars"], "ms": 20000}],
          "pool": {"probe_interval_ms": 10}
        }"#;
        let errors = Topology::parse(bad).unwrap_err();
        assert!(errors.0.iter().any(|e| e.path == "rtt_ms[0].between[1]"));
        let e = errors.lines();
        for want in [
            r#"regions[0].name: "US" must match [a-z0-9_-]+"#,
            r#"regions[1].edge_nodes[0]: "e1" is used twice"#,
            r#"rtt_ms[0].between[1]: "mars" is not a region"#,
            "rtt_ms[0].ms: 20000 is more than 10000",
            "rtt_ms: no round trip between eu and eu",
            "pool.probe_interval_ms: 10 is less than 50",
        ] {
            assert!(e.iter().any(|x| x == want), "missing {want:?} in {e:#?}");
        }
    }

    #[test]
    fn unknown_keys_and_wrong_types_name_their_path() {
        let e = Topology::parse(r#"{"regions": [{"name": "a", "edges": []}], "rtt_ms": []}"#)
            .unwrap_err();
        assert!(
            e.lines()[0].starts_with("regions[0].edges: unknown field `edges`"),
            "{e}"
        );
        let e =
            Topology::parse(r#"{"regions": [], "rtt_ms": [{"between": ["a", "a"], "ms": "x"}]}"#)
                .unwrap_err();
        assert_eq!(e.0[0].path, "rtt_ms[0].ms");
        assert!(e.0[0].message.starts_with("invalid type"), "{e}");
    }
}
