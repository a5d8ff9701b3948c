//! One node's registration record, stored as JSON at `/{prefix}/nodes/{name}`.

use serde::{Deserialize, Serialize};
use std::time::SystemTime;

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

/// The current time as RFC 3339 UTC with seconds, e.g. `2025-01-31T12:00:00Z`.
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
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

    #[test]
    fn now_is_rfc3339_utc() {
        let now = now_rfc3339();
        assert_eq!(now.len(), "2025-01-31T12:00:00Z".len(), "{now}");
        assert!(now.ends_with('Z'), "{now}");
        assert!(humantime::parse_rfc3339(&now).is_ok(), "{now}");
    }
}
