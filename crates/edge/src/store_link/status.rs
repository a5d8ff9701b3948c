//! The `rollout` object of `/status`: `null` when the store holds no rollout, else the
//! target, the stable version, the state (the SPEC's strings), the current wave and the
//! number of waves, this node's wave and the version it runs (waves 1-based).

use super::StoreLink;
use portico_core::rollout::Rollout;
use serde_json::{Value, json};

impl StoreLink {
    /// `/status`'s `rollout`, for a node running `version`.
    pub fn rollout_json(&self, version: &str) -> Value {
        match &self.followed().rollout {
            Some(r) => rollout_json(r, &self.name, version),
            None => Value::Null,
        }
    }
}

/// `rollout` of `/status` for node `name` running `version`.
pub fn rollout_json(r: &Rollout, name: &str, version: &str) -> Value {
    json!({
        "target": r.target,
        "stable": r.stable,
        "state": r.state.to_string(),
        "wave": r.current.map(|w| w + 1),
        "waves": r.waves.len(),
        "node_wave": r.wave_of(name).map(|w| w + 1),
        "version": version,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use portico_core::rollout::{NodeReport, Push, Settings};
    use std::collections::BTreeMap;

    #[test]
    fn names_the_wave_of_a_member_and_none_of_the_others() {
        let node = |name: &str, region: &str| NodeReport {
            name: name.into(),
            region: region.into(),
            healthy: true,
            version: "v1".into(),
            started_at_ms: 1,
            rejected: None,
            versions: BTreeMap::new(),
            baseline: None,
        };
        let nodes = [node("a", "eu"), node("b", "eu"), node("c", "us")];
        let push = Push {
            target: "v2".into(),
            stable: Some("v1".into()),
            waves: None,
            canary: None,
            settings: Settings::default(),
            author: "t".into(),
        };
        let (r, _) = Rollout::start(push, &nodes, 1_000).expect("starts");
        assert_eq!(
            rollout_json(&r, "a", "v2"),
            json!({"target": "v2", "stable": "v1", "state": "in progress", "wave": 1,
                   "waves": 3, "node_wave": 1, "version": "v2"})
        );
        let c = rollout_json(&r, "c", "v1");
        assert_eq!(
            (&c["node_wave"], &c["version"]),
            (&Value::Null, &json!("v1"))
        );
    }
}
