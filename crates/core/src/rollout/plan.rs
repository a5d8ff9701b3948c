//! The rollout plan: waves as selectors, the default plan, and which wave each node belongs to.
//!
//! - A wave is a selector: `node:NAME`, `region:NAME` or `rest`; a plan is a comma-separated
//!   list of them (`--waves`). Each node belongs to the *first* wave that matches it.
//! - The default plan is `node:<canary>`, `region:<the canary's region>`, `rest`; the canary is
//!   `--canary NODE`, else the first healthy registered node by name.
//!
//! Where the SPEC is silent:
//! - a plan is refused when a selector is malformed, named twice, or follows `rest` (it could
//!   never match anything);
//! - with no healthy node, the canary is the first registered node by name (a push is most
//!   needed when every node is unhealthy, and the gates still judge it);
//! - `--canary` names the first wave of the *default* plan: with `--waves` it is refused
//!   (name the node in the waves instead);
//! - a `node:NAME` selector (or `--canary NAME`) naming no registered node is refused at push
//!   time (a typo would otherwise skip the canary silently); a `region:` selector matching no
//!   node is an empty wave and is skipped, like any wave empty when its turn comes;
//! - a plan without `rest` leaves the nodes it does not match on the stable document for the
//!   whole rollout; they take the target when it is promoted (it becomes `config`).

use super::RolloutError;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// One wave of a plan: the nodes it takes (those not taken by an earlier wave).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Selector {
    /// `node:NAME`: the node registered as NAME.
    Node(String),
    /// `region:NAME`: the nodes registered in region NAME.
    Region(String),
    /// `rest`: every node no earlier wave took.
    Rest,
}

impl Selector {
    /// Whether a node named `name` in `region` matches this selector (earlier waves aside).
    pub fn matches(&self, name: &str, region: &str) -> bool {
        match self {
            Selector::Node(n) => n == name,
            Selector::Region(r) => r == region,
            Selector::Rest => true,
        }
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Selector::Node(n) => write!(f, "node:{n}"),
            Selector::Region(r) => write!(f, "region:{r}"),
            Selector::Rest => f.write_str("rest"),
        }
    }
}

impl FromStr for Selector {
    type Err = RolloutError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let bad = || RolloutError::BadSelector(s.to_string());
        if s == "rest" {
            return Ok(Selector::Rest);
        }
        let (kind, name) = s.split_once(':').ok_or_else(bad)?;
        let name = name.trim();
        if name.is_empty() {
            return Err(bad());
        }
        match kind.trim() {
            "node" => Ok(Selector::Node(name.to_string())),
            "region" => Ok(Selector::Region(name.to_string())),
            _ => Err(bad()),
        }
    }
}

impl Serialize for Selector {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Selector {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Parses `--waves`: selectors separated by commas, e.g. `node:eu-a,region:eu,rest`.
pub fn parse_waves(text: &str) -> Result<Vec<Selector>, RolloutError> {
    let waves = text
        .split(',')
        .map(str::parse)
        .collect::<Result<Vec<Selector>, _>>()?;
    check_waves(&waves)?;
    Ok(waves)
}

/// Refuses an empty plan, a selector named twice, and any wave after `rest`.
pub fn check_waves(waves: &[Selector]) -> Result<(), RolloutError> {
    if waves.is_empty() {
        return Err(RolloutError::NoWaves);
    }
    for (i, w) in waves.iter().enumerate() {
        if waves[..i].contains(w) {
            return Err(RolloutError::DuplicateWave(w.to_string()));
        }
        if i > 0 && waves[i - 1] == Selector::Rest {
            return Err(RolloutError::AfterRest(w.to_string()));
        }
    }
    Ok(())
}

/// A registered node as the plan sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate<'a> {
    /// Its name.
    pub name: &'a str,
    /// Its region.
    pub region: &'a str,
    /// Whether its registration says healthy.
    pub healthy: bool,
}

/// The canary of the default plan: `wanted` when given (it must be registered), else the first
/// healthy node by name, else the first node by name; `None` when no node is registered.
pub fn choose_canary<'a>(
    nodes: &[Candidate<'a>],
    wanted: Option<&str>,
) -> Result<Option<Candidate<'a>>, RolloutError> {
    if let Some(w) = wanted {
        return match nodes.iter().find(|n| n.name == w) {
            Some(n) => Ok(Some(*n)),
            None => Err(RolloutError::UnknownNode(w.to_string())),
        };
    }
    let first = |healthy_only: bool| {
        nodes
            .iter()
            .filter(|n| n.healthy || !healthy_only)
            .min_by(|a, b| a.name.cmp(b.name))
            .copied()
    };
    Ok(first(true).or_else(|| first(false)))
}

/// The plan for a push: `waves` as given (checked, and every `node:` selector registered), or
/// the default plan around the canary. `None` when no node is registered (nothing to judge).
pub fn resolve_plan(
    nodes: &[Candidate<'_>],
    waves: Option<&[Selector]>,
    canary: Option<&str>,
) -> Result<Option<Vec<Selector>>, RolloutError> {
    if let Some(waves) = waves {
        if canary.is_some() {
            return Err(RolloutError::CanaryWithWaves);
        }
        check_waves(waves)?;
        if nodes.is_empty() {
            return Ok(None);
        }
        for w in waves {
            if let Selector::Node(n) = w
                && !nodes.iter().any(|c| c.name == n)
            {
                return Err(RolloutError::UnknownNode(n.clone()));
            }
        }
        if assign(waves, nodes).iter().all(Vec::is_empty) {
            return Err(RolloutError::NoNodeInPlan);
        }
        return Ok(Some(waves.to_vec()));
    }
    Ok(choose_canary(nodes, canary)?.map(|c| {
        vec![
            Selector::Node(c.name.to_string()),
            Selector::Region(c.region.to_string()),
            Selector::Rest,
        ]
    }))
}

/// The index of the first wave matching a node named `name` in `region`.
pub fn wave_of(waves: &[Selector], name: &str, region: &str) -> Option<usize> {
    waves.iter().position(|w| w.matches(name, region))
}

/// The nodes of each wave (names, sorted), each node in the first wave that matches it.
pub fn assign(waves: &[Selector], nodes: &[Candidate<'_>]) -> Vec<Vec<String>> {
    let mut out = vec![Vec::new(); waves.len()];
    for n in nodes {
        if let Some(i) = wave_of(waves, n.name, n.region) {
            out[i].push(n.name.to_string());
        }
    }
    for w in &mut out {
        w.sort();
        w.dedup();
    }
    out
}
