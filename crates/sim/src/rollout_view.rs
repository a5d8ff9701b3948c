//! What a node's `/status` says of the rollout (its `rollout` object), for the runner's table.

use serde_json::Value;

/// A node's view of the rollout: `/status` `rollout` when it is not `null`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRollout {
    /// The version being rolled out.
    pub target: String,
    /// The stable version (`None` when the store had none).
    pub stable: Option<String>,
    /// The state as the SPEC spells it: `in progress`, `paused: …`, `promoted`, `rolled back: …`,
    /// `aborted`.
    pub state: String,
    /// The current wave, 1-based; `None` once the rollout is over.
    pub wave: Option<u64>,
    /// How many waves the plan has.
    pub waves: u64,
    /// This node's wave, 1-based; `None` when it is in none.
    pub node_wave: Option<u64>,
    /// The version this node runs.
    pub version: String,
}

impl NodeRollout {
    /// Reads `status["rollout"]`; `None` when it is `null`, missing or not of that shape (a
    /// node that follows no store, or a store without a rollout, or an older node).
    pub fn of_status(status: &Value) -> Option<NodeRollout> {
        let r = status.get("rollout")?.as_object()?;
        let text = |k: &str| r.get(k).and_then(Value::as_str).map(str::to_string);
        let number = |k: &str| r.get(k).and_then(Value::as_u64);
        Some(NodeRollout {
            target: text("target")?,
            stable: text("stable"),
            state: text("state")?,
            wave: number("wave"),
            waves: number("waves")?,
            node_wave: number("node_wave"),
            version: text("version")?,
        })
    }

    /// The table's wave cell: `2/3` (this node's wave of all), `-` when it is in none.
    pub fn wave_cell(&self) -> String {
        match self.node_wave {
            Some(w) => format!("{w}/{}", self.waves),
            None => "-".to_string(),
        }
    }

    /// One line for under the table: the state, the target, the stable version, the wave.
    pub fn summary(&self) -> String {
        let wave = match self.wave {
            Some(w) => format!(" · wave {w} of {}", self.waves),
            None => String::new(),
        };
        format!(
            "rollout of {}: {}{wave} · stable {}",
            self.target,
            self.state,
            self.stable.as_deref().unwrap_or("(none)")
        )
    }
}

/// The version cell of a node: the rollout's `version` when there is one, else
/// `config_version`; empty when the node does not answer.
pub fn version_cell(status: Option<&Value>) -> String {
    let Some(status) = status else {
        return String::new();
    };
    NodeRollout::of_status(status)
        .map(|r| r.version)
        .or_else(|| status["config_version"].as_str().map(str::to_string))
        .unwrap_or_default()
}

/// The wave cell of a node: `N/M`, or `-` when no rollout shows in its `/status`.
pub fn wave_cell(status: Option<&Value>) -> String {
    status
        .and_then(NodeRollout::of_status)
        .map_or_else(|| "-".to_string(), |r| r.wave_cell())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A `/status` in the shape the interfaces fix for issue 21.
    fn status(rollout: Value) -> Value {
        json!({"config_version": "aaaa", "region": "ap-south", "rollout": rollout})
    }

    #[test]
    fn a_node_in_the_second_wave_of_three() {
        let s = status(json!({
            "target": "bbbb", "stable": "aaaa", "state": "in progress",
            "wave": 2, "waves": 3, "node_wave": 2, "version": "bbbb"
        }));
        let r = NodeRollout::of_status(&s).unwrap();
        assert_eq!(r.wave_cell(), "2/3");
        assert_eq!(version_cell(Some(&s)), "bbbb");
        assert_eq!(wave_cell(Some(&s)), "2/3");
        assert_eq!(
            r.summary(),
            "rollout of bbbb: in progress · wave 2 of 3 · stable aaaa"
        );
    }

    #[test]
    fn a_rolled_back_rollout_and_a_node_in_no_wave() {
        let s = status(json!({
            "target": "bbbb", "stable": null, "state": "rolled back: error ratio",
            "wave": null, "waves": 3, "node_wave": null, "version": "aaaa"
        }));
        let r = NodeRollout::of_status(&s).unwrap();
        assert_eq!(r.wave_cell(), "-");
        assert_eq!(
            r.summary(),
            "rollout of bbbb: rolled back: error ratio · stable (none)"
        );
        assert_eq!(version_cell(Some(&s)), "aaaa");
    }

    #[test]
    fn no_rollout_shows_the_running_version_and_a_dash() {
        for s in [status(Value::Null), json!({"config_version": "aaaa"})] {
            assert_eq!(NodeRollout::of_status(&s), None);
            assert_eq!(version_cell(Some(&s)), "aaaa");
            assert_eq!(wave_cell(Some(&s)), "-");
        }
        assert_eq!(version_cell(None), "");
        assert_eq!(wave_cell(None), "-");
    }

    #[test]
    fn a_malformed_rollout_is_ignored() {
        let s = status(json!({"target": 7, "state": "in progress"}));
        assert_eq!(NodeRollout::of_status(&s), None);
        assert_eq!(version_cell(Some(&s)), "aaaa");
    }
}
