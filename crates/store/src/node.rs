//! One node's registration record, stored as JSON at `/{prefix}/nodes/{name}`, and the
//! rollout report a node following a store publishes in it.

use portico_core::rollout::{Figures, NodeReport, Rejection, SwitchBaseline, UnixMillis};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

/// What a running node says about itself in the store.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct NodeRecord {
    /// The node's name (`--name`, default `<region>-<hostname>`); also the last key segment.
    pub name: String,
    /// The node's region.
    pub region: String,
    /// The config version the node runs.
    pub version: String,
    /// Whether the node considers itself healthy (serving, not draining).
    pub healthy: bool,
    /// The node's admin URL.
    pub admin: String,
    /// When the record was last written, RFC 3339 UTC (set by [`crate::register`] on every put).
    pub updated_at: String,
}

impl NodeRecord {
    /// The record as stored: compact JSON.
    pub fn to_json(&self) -> String {
        // A struct of strings and a bool always serializes.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// A registration with its rollout report: [`NodeRecord`]'s fields and, beside them in the
/// same JSON object, what the conductor's [`NodeReport`] needs.
///
/// Backward compatible both ways: a record written without the report (an older node, or
/// [`crate::register`] given a [`NodeRecord`]) parses with an empty report, and a
/// [`NodeRecord`] parses from a full registration (unknown fields are ignored).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct NodeStatus {
    /// The registration's fields (name, region, version, healthy, admin, updated_at).
    #[serde(flatten)]
    pub record: NodeRecord,
    /// When the record was last written, milliseconds since the epoch (set by
    /// [`crate::register`] on every put, for `config status` to show a report's age; 0 in a
    /// record that does not say).
    #[serde(default)]
    pub updated_at_ms: UnixMillis,
    /// When the node's process started, milliseconds since the epoch (a restart changes it).
    #[serde(default)]
    pub started_at_ms: UnixMillis,
    /// The last version the node rejected (validation or build failed there), with the errors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejected: Option<Rejection>,
    /// Cumulative figures per version the node ran, each since it last switched to it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub versions: BTreeMap<String, Figures>,
    /// The node's figures over the minute before its last switch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<SwitchBaseline>,
}

impl NodeStatus {
    /// A status with `record` and an empty report.
    pub fn new(record: NodeRecord) -> NodeStatus {
        NodeStatus {
            record,
            updated_at_ms: 0,
            started_at_ms: 0,
            rejected: None,
            versions: BTreeMap::new(),
            baseline: None,
        }
    }

    /// What the rollout's gates judge.
    pub fn report(&self) -> NodeReport {
        NodeReport {
            name: self.record.name.clone(),
            region: self.record.region.clone(),
            healthy: self.record.healthy,
            version: self.record.version.clone(),
            started_at_ms: self.started_at_ms,
            rejected: self.rejected.clone(),
            versions: self.versions.clone(),
            baseline: self.baseline.clone(),
        }
    }

    /// The status as stored: compact JSON.
    pub fn to_json(&self) -> String {
        // Strings, numbers, options and maps of them serialize; a non-finite p99 becomes null.
        serde_json::to_string(self).unwrap_or_default()
    }
}

impl From<NodeRecord> for NodeStatus {
    fn from(record: NodeRecord) -> Self {
        NodeStatus::new(record)
    }
}

/// What [`crate::register`] keeps in the store: a [`NodeRecord`] or a [`NodeStatus`].
pub trait Registered: Clone + Send + Sync + 'static {
    /// The JSON to store, stamped with the time of the put (`updated_at`, and `updated_at_ms`
    /// where the type has it).
    fn stamped_json(&self, now: SystemTime) -> String;
}

impl Registered for NodeRecord {
    fn stamped_json(&self, now: SystemTime) -> String {
        let mut record = self.clone();
        record.updated_at = rfc3339(now);
        record.to_json()
    }
}

impl Registered for NodeStatus {
    fn stamped_json(&self, now: SystemTime) -> String {
        let mut status = self.clone();
        status.record.updated_at = rfc3339(now);
        status.updated_at_ms = unix_millis(now);
        status.to_json()
    }
}

/// `time` in milliseconds since the epoch (0 before it).
pub fn unix_millis(time: SystemTime) -> UnixMillis {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_seconds(time).to_string()
}

/// The current time as RFC 3339 UTC with seconds, e.g. `2025-01-31T12:00:00Z`.
pub fn now_rfc3339() -> String {
    rfc3339(SystemTime::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trip() {
        let r = NodeRecord {
            name: "eu-a".into(),
            region: "eu".into(),
            version: "b84d3bd6b790a209".into(),
            healthy: true,
            admin: "http://127.0.0.1:9901".into(),
            updated_at: now_rfc3339(),
        };
        let back: NodeRecord = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(back, r);
    }

    fn status() -> NodeStatus {
        let mut status = NodeStatus::new(NodeRecord {
            name: "eu-a".into(),
            region: "eu".into(),
            version: "v2".into(),
            healthy: true,
            admin: "http://127.0.0.1:9901".into(),
            updated_at: now_rfc3339(),
        });
        status.started_at_ms = 1_700_000_000_000;
        status.rejected = Some(Rejection {
            version: "v3".into(),
            errors: vec!["routes[0].pool: no such pool".into()],
            rollout_started_at_ms: 0,
        });
        status.versions.insert(
            "v2".into(),
            Figures {
                requests: 120,
                errors: 3,
                p99_ms: Some(12.5),
            },
        );
        status.baseline = Some(SwitchBaseline {
            to: "v2".into(),
            figures: Figures {
                requests: 600,
                errors: 1,
                p99_ms: None,
            },
        });
        status
    }

    #[test]
    fn status_round_trips_and_gives_the_report() {
        let s = status();
        let json = s.to_json();
        let back: NodeStatus = serde_json::from_str(&json).unwrap();
        assert_eq!(back, s);
        let report = back.report();
        assert_eq!(
            (report.name.as_str(), report.version.as_str()),
            ("eu-a", "v2")
        );
        assert!(report.rejects("v3"));
        assert_eq!(report.figures("v2").requests, 120);
        assert_eq!(report.started_at_ms, 1_700_000_000_000);
        // The registration's fields stay at the top level, where `config status` reads them.
        let record: NodeRecord = serde_json::from_str(&json).unwrap();
        assert_eq!(record, s.record);
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["version"], "v2");
        assert_eq!(value["versions"]["v2"]["errors"], 3);
    }

    #[test]
    fn an_old_record_parses_with_an_empty_report() {
        let old = r#"{"name":"eu-a","region":"eu","version":"v1","healthy":true,"admin":"http://a","updated_at":"2025-01-31T12:00:00Z"}"#;
        let status: NodeStatus = serde_json::from_str(old).unwrap();
        assert_eq!(status.record.version, "v1");
        assert_eq!(status.started_at_ms, 0);
        assert!(status.versions.is_empty() && status.rejected.is_none());
        assert_eq!(status.report().figures("v1").requests, 0);
    }

    #[test]
    fn stamping_sets_both_times() {
        let now = UNIX_EPOCH + std::time::Duration::from_millis(1_700_000_000_250);
        let json = status().stamped_json(now);
        let back: NodeStatus = serde_json::from_str(&json).unwrap();
        assert_eq!(back.updated_at_ms, 1_700_000_000_250);
        assert_eq!(back.record.updated_at, "2023-11-14T22:13:20Z");
        let json = status().record.stamped_json(now);
        let back: NodeRecord = serde_json::from_str(&json).unwrap();
        assert_eq!(back.updated_at, "2023-11-14T22:13:20Z");
    }

    #[test]
    fn now_is_rfc3339_utc() {
        let now = now_rfc3339();
        assert_eq!(now.len(), "2025-01-31T12:00:00Z".len(), "{now}");
        assert!(now.ends_with('Z'), "{now}");
        assert!(humantime::parse_rfc3339(&now).is_ok(), "{now}");
    }
}
