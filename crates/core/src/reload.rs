//! What a reload changes: fields that need a restart, and which origins keep their state.
//!
//! An origin's identity is its pool name, its own name and its address as written: when all
//! three are unchanged (and it was enabled before), its health window, latency and ejection
//! state carry over into the new config. Anything else is a new origin, probed at once and
//! gated on its first good probe.

use crate::config::{Config, ConfigError, NodeConfig};
use std::collections::HashMap;

/// What becomes of one pool of the new config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolPlan {
    /// Index of the pool with the same name in the running config.
    pub old: Option<usize>,
    /// For each origin of the new pool, the index of the same origin (same name and address,
    /// enabled) in the old pool, whose state it takes over.
    pub carried: Vec<Option<usize>>,
    /// Names of the old pool's origins that are gone or changed identity.
    pub dropped: Vec<String>,
    /// Whether the pool's config is identical (same settings and origins in the same order).
    pub unchanged: bool,
}

/// The plan for a whole reload, pool for pool with the new config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReloadPlan {
    /// Index for index with the new config's pools.
    pub pools: Vec<PoolPlan>,
    /// Pools of the running config that the new one does not have.
    pub removed_pools: Vec<String>,
    /// Whether the routes differ.
    pub routes_changed: bool,
}

/// How a restart-only field of `node` is shown in the error that names its change.
type Shown = fn(&NodeConfig) -> String;

/// The fields that name the node's sockets and threads: a reload may not change them. The one
/// list [`restart_only_changes`] checks and the configuration reference marks as restart-only.
const RESTART_ONLY: [(&str, Shown); 4] = [
    ("node.listen", |n| n.listen.clone()),
    ("node.tls_listen", |n| {
        n.tls_listen.clone().unwrap_or_else(|| "none".to_string())
    }),
    ("node.admin_listen", |n| n.admin_listen.clone()),
    ("node.threads", |n| n.threads.to_string()),
];

/// The JSON paths of the fields a reload cannot change (they need a restart).
pub fn restart_only_fields() -> impl Iterator<Item = &'static str> {
    RESTART_ONLY.iter().map(|(path, _)| *path)
}

/// Fields that cannot change without a restart, one error per changed field at its path.
pub fn restart_only_changes(running: &Config, new: &Config) -> Vec<ConfigError> {
    let (a, b) = (&running.node, &new.node);
    RESTART_ONLY
        .iter()
        .filter_map(|(path, shown)| {
            let (was, now) = (shown(a), shown(b));
            (was != now).then(|| {
                ConfigError::new(
                    *path,
                    format!("changed from {was} to {now}: this field needs a restart (the running node keeps {was})"),
                )
            })
        })
        .collect()
}

/// Matches the new config's pools and origins with the running ones.
pub fn plan(old: &Config, new: &Config) -> ReloadPlan {
    let old_pools: HashMap<&str, usize> = old
        .pools
        .iter()
        .enumerate()
        .map(|(i, p)| (p.name.as_str(), i))
        .collect();
    let pools = new
        .pools
        .iter()
        .map(|pool| {
            let Some(&o) = old_pools.get(pool.name.as_str()) else {
                return PoolPlan {
                    old: None,
                    carried: vec![None; pool.origins.len()],
                    dropped: Vec::new(),
                    unchanged: false,
                };
            };
            let before = &old.pools[o];
            let by_identity: HashMap<(&str, &str), usize> = before
                .origins
                .iter()
                .enumerate()
                .filter(|(_, x)| x.enabled)
                .map(|(i, x)| ((x.name.as_str(), x.address.as_str()), i))
                .collect();
            let carried: Vec<Option<usize>> = pool
                .origins
                .iter()
                .map(|x| {
                    by_identity
                        .get(&(x.name.as_str(), x.address.as_str()))
                        .copied()
                })
                .collect();
            let dropped = before
                .origins
                .iter()
                .enumerate()
                .filter(|(i, _)| !carried.contains(&Some(*i)))
                .map(|(_, x)| x.name.clone())
                .collect();
            PoolPlan {
                old: Some(o),
                carried,
                dropped,
                unchanged: before == pool,
            }
        })
        .collect();
    let kept: Vec<&str> = new.pools.iter().map(|p| p.name.as_str()).collect();
    ReloadPlan {
        pools,
        removed_pools: old
            .pools
            .iter()
            .filter(|p| !kept.contains(&p.name.as_str()))
            .map(|p| p.name.clone())
            .collect(),
        routes_changed: old.routes != new.routes,
    }
}

impl ReloadPlan {
    /// One line for the log: what the reload adds, keeps and removes.
    pub fn summary(&self) -> String {
        let added_pools = self.pools.iter().filter(|p| p.old.is_none()).count();
        let changed = self
            .pools
            .iter()
            .filter(|p| p.old.is_some() && !p.unchanged)
            .count();
        let kept: usize = self
            .pools
            .iter()
            .map(|p| p.carried.iter().flatten().count())
            .sum();
        let new: usize = self
            .pools
            .iter()
            .map(|p| p.carried.iter().filter(|c| c.is_none()).count())
            .sum();
        let dropped: usize = self.pools.iter().map(|p| p.dropped.len()).sum();
        format!(
            "pools: {added_pools} added, {changed} changed, {} removed; origins: {kept} kept, {new} new, {dropped} dropped; routes {}",
            self.removed_pools.len(),
            if self.routes_changed {
                "changed"
            } else {
                "unchanged"
            }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse;

    fn config(pools: &str) -> Config {
        parse(&format!(
            r#"{{"pools":[{pools}],"routes":[{{"name":"r","pool":"a"}}]}}"#
        ))
        .unwrap()
    }

    fn origin(name: &str, port: u16) -> String {
        format!(r#"{{"name":"{name}","address":"127.0.0.1:{port}"}}"#)
    }

    #[test]
    fn same_pool_name_and_address_carry_whatever_the_position() {
        let old = config(&format!(
            r#"{{"name":"a","origins":[{},{},{}]}}"#,
            origin("x", 1),
            origin("y", 2),
            origin("z", 3)
        ));
        // y moved first, x changed address (a new origin), z removed, w added.
        let new = config(&format!(
            r#"{{"name":"a","origins":[{},{},{}]}}"#,
            origin("y", 2),
            origin("x", 9),
            origin("w", 4)
        ));
        let p = plan(&old, &new);
        assert_eq!(
            p.pools,
            vec![PoolPlan {
                old: Some(0),
                carried: vec![Some(1), None, None],
                dropped: vec!["x".into(), "z".into()],
                unchanged: false,
            }]
        );
        assert_eq!(
            p.summary(),
            "pools: 0 added, 1 changed, 0 removed; origins: 1 kept, 2 new, 2 dropped; routes unchanged"
        );
    }

    #[test]
    fn a_pool_renamed_is_a_new_pool_and_the_old_one_is_removed() {
        let old = config(&format!(r#"{{"name":"a","origins":[{}]}}"#, origin("x", 1)));
        let new = config(&format!(
            r#"{{"name":"a","origins":[{}]}},{{"name":"b","origins":[{}]}}"#,
            origin("x", 1),
            origin("x", 1)
        ));
        let p = plan(&old, &new);
        assert!(p.pools[0].unchanged);
        assert_eq!(p.pools[0].carried, vec![Some(0)]);
        assert_eq!(p.pools[1].old, None);
        assert_eq!(p.pools[1].carried, vec![None]);
        let back = plan(&new, &old);
        assert_eq!(back.removed_pools, vec!["b".to_string()]);
    }

    #[test]
    fn an_origin_enabled_by_the_reload_starts_as_new() {
        let old = config(
            r#"{"name":"a","origins":[{"name":"x","address":"127.0.0.1:1","enabled":false},
                                      {"name":"y","address":"127.0.0.1:2"}]}"#,
        );
        let new = config(&format!(
            r#"{{"name":"a","origins":[{},{}]}}"#,
            origin("x", 1),
            origin("y", 2)
        ));
        let p = plan(&old, &new);
        assert_eq!(p.pools[0].carried, vec![None, Some(1)]);
        assert_eq!(p.pools[0].dropped, vec!["x".to_string()]);
    }

    #[test]
    fn settings_changes_keep_origin_state_but_mark_the_pool_changed() {
        let old = config(&format!(r#"{{"name":"a","origins":[{}]}}"#, origin("x", 1)));
        let new = config(&format!(
            r#"{{"name":"a","timeouts":{{"response_ms":100}},"origins":[{}]}}"#,
            origin("x", 1)
        ));
        let p = plan(&old, &new);
        assert!(!p.pools[0].unchanged);
        assert_eq!(p.pools[0].carried, vec![Some(0)]);
    }

    #[test]
    fn routes_changes_are_noticed() {
        let old = config(&format!(r#"{{"name":"a","origins":[{}]}}"#, origin("x", 1)));
        let text = format!(
            r#"{{"pools":[{{"name":"a","origins":[{}]}}],
                "routes":[{{"name":"r","paths":["/api/*"],"pool":"a"}}]}}"#,
            origin("x", 1)
        );
        let new = parse(&text).unwrap();
        assert!(plan(&old, &new).routes_changed);
        assert!(!plan(&old, &old).routes_changed);
    }

    #[test]
    fn listeners_and_threads_need_a_restart_each_named_by_path() {
        let base = r#"{"pools":[{"name":"a","origins":[{"name":"x","address":"127.0.0.1:1"}]}],
                       "routes":[{"name":"r","pool":"a"}]"#;
        let old = parse(&format!(r#"{base},"node":{{"region":"eu"}}}}"#)).unwrap();
        let new = parse(&format!(
            r#"{base},"node":{{"region":"us","listen":"127.0.0.1:1","threads":2,"drain_ms":0}}}}"#
        ))
        .unwrap();
        let errors = restart_only_changes(&old, &new);
        let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, vec!["node.listen", "node.threads"]);
        assert_eq!(
            errors[0].message,
            "changed from 0.0.0.0:8080 to 127.0.0.1:1: this field needs a restart (the running node keeps 0.0.0.0:8080)"
        );
        assert!(restart_only_changes(&old, &old).is_empty());
    }

    #[test]
    fn the_tls_listener_needs_a_restart() {
        let base = r#"{"pools":[{"name":"a","origins":[{"name":"x","address":"127.0.0.1:1"}]}],
                       "routes":[{"name":"r","pool":"a"}],
                       "certificates":[{"name":"c","hosts":["a.test"],"cert_file":"c.pem","key_file":"k.pem"}]"#;
        let plain = parse(&format!("{base}}}")).unwrap();
        let tls = parse(&format!(
            r#"{base},"node":{{"tls_listen":"127.0.0.1:8443"}}}}"#
        ))
        .unwrap();
        let errors = restart_only_changes(&plain, &tls);
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].path, "node.tls_listen");
        assert_eq!(
            errors[0].message,
            "changed from none to 127.0.0.1:8443: this field needs a restart (the running node keeps none)"
        );
        assert!(restart_only_changes(&tls, &tls).is_empty());
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// A pool `a` of origins drawn from a small set of names and two addresses each (so
        /// reloads keep, re-address, enable, disable, add and drop origins).
        fn pool_doc() -> impl Strategy<Value = String> {
            proptest::collection::btree_map(0u16..6, (any::<bool>(), any::<bool>()), 1..6).prop_map(
                |origins| {
                    let list: Vec<String> = origins
                        .iter()
                        .map(|(n, (moved, enabled))| {
                            // Addresses stay unique in the pool; `moved` re-addresses an origin.
                            let port = 1 + n + if *moved { 10 } else { 0 };
                            format!(
                                r#"{{"name":"o{n}","address":"127.0.0.1:{port}","enabled":{enabled}}}"#
                            )
                        })
                        .collect();
                    format!(
                        r#"{{"pools":[{{"name":"a","origins":[{}]}}],"routes":[{{"name":"r","pool":"a"}}]}}"#,
                        list.join(",")
                    )
                },
            )
        }

        proptest! {
            #[test]
            fn carried_origins_keep_their_identity_once_each(old in pool_doc(), new in pool_doc()) {
                let (old, new) = (parse(&old).unwrap(), parse(&new).unwrap());
                let p = plan(&old, &new);
                let pp = &p.pools[0];
                let mut seen = std::collections::HashSet::new();
                for (i, c) in pp.carried.iter().enumerate() {
                    if let Some(o) = *c {
                        let (a, b) = (&old.pools[0].origins[o], &new.pools[0].origins[i]);
                        prop_assert_eq!(&a.name, &b.name);
                        prop_assert_eq!(&a.address, &b.address);
                        prop_assert!(a.enabled, "only enabled origins carry state");
                        prop_assert!(seen.insert(o), "an old origin is carried once");
                    } else {
                        // Not carried: no enabled old origin has the same identity.
                        let b = &new.pools[0].origins[i];
                        prop_assert!(!old.pools[0].origins.iter().any(|a| a.enabled
                            && a.name == b.name && a.address == b.address));
                    }
                }
                // Every old origin is either carried or dropped, never both.
                for (o, a) in old.pools[0].origins.iter().enumerate() {
                    prop_assert_ne!(seen.contains(&o), pp.dropped.contains(&a.name));
                }
                prop_assert_eq!(pp.unchanged, old.pools[0] == new.pools[0]);
            }
        }
    }
}
