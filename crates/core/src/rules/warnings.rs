//! Rules that do not stop a config but cannot be what was meant: a rule that does nothing, and
//! rules after one that matches every request and stops.

use super::compiled::{CompiledRuleSets, Rule};

impl CompiledRuleSets {
    /// Every warning, each `path: message`, in document order; `base` is where the rule sets
    /// are in the document (`rule_sets`).
    pub fn warnings(&self, base: &str) -> Vec<String> {
        let mut out = Vec::new();
        for (i, set) in self.sets.iter().enumerate() {
            let mut stopped_by: Option<usize> = None;
            for (k, rule) in self.rules[set.rules.clone()].iter().enumerate() {
                let path = format!("{base}[{i}].rules[{k}]");
                if let Some(first) = stopped_by {
                    out.push(format!(
                        "{path}: never evaluated: rules[{first}] matches every request and stops"
                    ));
                    continue;
                }
                if does_nothing(rule) {
                    out.push(format!(
                        "{path}: does nothing: give it actions in \"then\", or \"stop\": true"
                    ));
                }
                if rule.stop && rule.when.is_always() {
                    stopped_by = Some(k);
                }
            }
        }
        out
    }
}

fn does_nothing(rule: &Rule) -> bool {
    let t = &rule.then;
    !rule.stop
        && t.ending.is_none()
        && t.rate_limit.is_none()
        && t.rewrite.is_none()
        && t.pool.is_none()
        && t.request_headers.is_empty()
        && t.response_headers.is_empty()
}
