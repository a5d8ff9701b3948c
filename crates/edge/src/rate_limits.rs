//! The rate limiters of a running config, one per rule with a `rate_limit`. A reload carries a
//! rule's limiter, buckets and all, to the new config when the rule keeps its rule set, its
//! name and its limit (key, rate, burst); any other rule starts with full buckets.

use portico_core::rate_limit::{MAX_KEYS, RateLimiter};
use portico_core::rules::{CompiledRuleSets, RuleId};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

/// The limiters of one config, by rule.
#[derive(Debug, Default)]
pub struct RateLimits {
    by_rule: Vec<Option<Arc<RateLimiter>>>,
}

impl RateLimits {
    /// The limiters of `rules`, taking over those of `previous` (the running config's rules
    /// and limiters) for unchanged rules.
    pub fn build(
        rules: &CompiledRuleSets,
        previous: Option<(&CompiledRuleSets, &RateLimits)>,
    ) -> RateLimits {
        let by_rule = rules
            .rule_ids()
            .map(|id| {
                let limit = rules.rate_limit(id)?;
                let me = rules.rule(id)?;
                let carried = previous.and_then(|(old_rules, old)| {
                    let old_id = old_rules.rule_ids().find(|&o| {
                        old_rules
                            .rule(o)
                            .is_some_and(|r| (r.set, r.name) == (me.set, me.name))
                    })?;
                    (old_rules.rate_limit(old_id)? == limit)
                        .then(|| old.by_rule.get(old_id.index()).cloned().flatten())
                        .flatten()
                });
                Some(carried.unwrap_or_else(|| {
                    Arc::new(RateLimiter::new(
                        limit.requests_per_second,
                        limit.burst,
                        MAX_KEYS,
                    ))
                }))
            })
            .collect();
        RateLimits { by_rule }
    }

    /// The limiter of `rule`, if it has a rate limit.
    pub fn get(&self, rule: RuleId) -> Option<&Arc<RateLimiter>> {
        self.by_rule.get(rule.index())?.as_ref()
    }
}

/// Nanoseconds since the process's first call: the clock of every limiter, so buckets carried
/// over a reload keep their meaning.
pub fn now_nanos() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let elapsed = EPOCH.get_or_init(Instant::now).elapsed();
    u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use portico_core::rules::parse_rule_sets;
    use serde_json::json;

    fn rules(rps: f64, name: &str) -> CompiledRuleSets {
        let doc = json!([{"name": "edge", "rules": [
            {"name": "hsts", "then": {"response_headers": {"set": {"x-a": "1"}}}},
            {"name": name, "then": {"rate_limit": {"key": "client_ip", "requests_per_second": rps}}}
        ]}]);
        parse_rule_sets(&doc, "rule_sets", &["api"]).unwrap()
    }

    #[test]
    fn an_unchanged_rule_keeps_its_limiter_and_a_changed_one_starts_afresh() {
        let old_rules = rules(10.0, "per-client");
        let old = RateLimits::build(&old_rules, None);
        let ids: Vec<RuleId> = old_rules.rule_ids().collect();
        assert!(old.get(ids[0]).is_none());
        let limiter = old.get(ids[1]).unwrap().clone();
        let same = RateLimits::build(&rules(10.0, "per-client"), Some((&old_rules, &old)));
        assert!(Arc::ptr_eq(same.get(ids[1]).unwrap(), &limiter));
        let faster = RateLimits::build(&rules(20.0, "per-client"), Some((&old_rules, &old)));
        assert!(!Arc::ptr_eq(faster.get(ids[1]).unwrap(), &limiter));
        let renamed = RateLimits::build(&rules(10.0, "other"), Some((&old_rules, &old)));
        assert!(!Arc::ptr_eq(renamed.get(ids[1]).unwrap(), &limiter));
    }
}
