//! One running config, immutable: routes, pools with their peers, prebuilt headers and the
//! metric handles of its series. A reload builds the next one; each request keeps the one it
//! started with.

use crate::live_pool::LivePool;
use crate::metrics::{Metrics, SeriesCache};
use crate::origin_tls::PoolTls;
use crate::rate_limits::RateLimits;
use http::HeaderValue;
use portico_core::config::Config;
use portico_core::pool_state::PoolState;
use portico_core::reload::{self, ReloadPlan};
use portico_core::routing::RouteTable;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

/// Everything a request needs from the running config.
pub struct Snapshot {
    /// The validated config.
    pub config: Config,
    /// The document it was parsed from, as served by `GET /config`.
    pub document: Arc<str>,
    /// Host and path to route index.
    pub routes: RouteTable,
    /// Pools, index for index with `config.pools`.
    pub pools: Vec<Arc<LivePool>>,
    /// `portico-<region>`: this node's name in `Via`.
    pub via_token: String,
    /// `1.1 portico-<region>`: the `Via` entry this node appends.
    pub via_entry: String,
    /// `X-Portico-Region`, built once.
    pub region_value: HeaderValue,
    /// [`Self::via_entry`] as a header value.
    pub via_value: HeaderValue,
    /// Cached handles of this config's per-request series.
    pub series: SeriesCache,
    /// The rate limiters of the config's rules.
    pub rate_limits: RateLimits,
}

/// Where an origin sits in a snapshot: pool index and origin index.
pub type OriginAt = (usize, usize);

impl Snapshot {
    /// Builds the snapshot for `config`, whose origins resolved to `addrs`. With a
    /// `previous` snapshot, origins that keep their identity carry their routing state and
    /// pools that are unchanged (same settings, same resolved addresses) are shared as is.
    pub fn build(
        config: Config,
        document: Arc<str>,
        addrs: &[Vec<SocketAddr>],
        tls: &[PoolTls],
        previous: Option<&Snapshot>,
        metrics: &Arc<Metrics>,
    ) -> (Snapshot, Option<ReloadPlan>) {
        let now = Instant::now();
        let plan = previous.map(|p| reload::plan(&p.config, &config));
        if let (Some(prev), Some(plan)) = (previous, &plan) {
            for name in &plan.removed_pools {
                if let Some(pool) = prev.pools.iter().find(|p| &p.config.name == name) {
                    for o in &pool.config.origins {
                        metrics.forget_origin(name, &o.name);
                    }
                }
            }
            for (pool, pp) in config.pools.iter().zip(&plan.pools) {
                for name in &pp.dropped {
                    if !pool.origins.iter().any(|o| &o.name == name) {
                        metrics.forget_origin(&pool.name, name);
                    }
                }
            }
        }
        let pools = config
            .pools
            .iter()
            .enumerate()
            .map(|(i, pool)| {
                let pool_addrs = addrs.get(i).map(Vec::as_slice).unwrap_or(&[]);
                let pool_tls = tls.get(i).cloned().unwrap_or_default();
                let (Some(prev), Some(plan)) = (previous, &plan) else {
                    return Arc::new(LivePool::new(
                        pool.clone(),
                        pool_addrs,
                        pool_tls,
                        PoolState::new(pool, now),
                        metrics.clone(),
                    ));
                };
                let pp = &plan.pools[i];
                let old = pp.old.map(|o| &prev.pools[o]);
                if let Some(old) = old {
                    // A CA or client certificate file re-read with other certificates
                    // rebuilds the peers.
                    if pp.unchanged && old.addrs() == pool_addrs && old.tls == pool_tls {
                        return old.clone();
                    }
                }
                let state = match old {
                    Some(old) => {
                        PoolState::carried(pool, Some((&old.state_copy(), &old.config)), pp, now)
                    }
                    None => PoolState::carried(pool, None, pp, now),
                };
                Arc::new(LivePool::new(
                    pool.clone(),
                    pool_addrs,
                    pool_tls,
                    state,
                    metrics.clone(),
                ))
            })
            .collect();
        let via_token = format!("portico-{}", config.node.region);
        let via_entry = format!("1.1 {via_token}");
        let value = |s: &str| HeaderValue::from_str(s).unwrap_or(HeaderValue::from_static(""));
        let rate_limits = RateLimits::build(
            &config.rule_sets.compiled,
            previous.map(|p| (&*p.config.rule_sets.compiled, &p.rate_limits)),
        );
        let snapshot = Snapshot {
            rate_limits,
            routes: RouteTable::new(&config.routes),
            pools,
            region_value: value(&config.node.region),
            via_value: value(&via_entry),
            via_token,
            via_entry,
            series: SeriesCache::default(),
            document,
            config,
        };
        (snapshot, plan)
    }

    /// The node's region.
    pub fn region(&self) -> &str {
        &self.config.node.region
    }

    /// The pool a route sends to.
    pub fn route_pool(&self, route: usize) -> &LivePool {
        &self.pools[self.config.routes[route].pool]
    }

    /// Where the origin `pool`/`name` with address `address` is in this snapshot.
    pub fn find_origin(&self, pool: &str, name: &str, address: &str) -> Option<OriginAt> {
        let p = self.pools.iter().position(|p| p.config.name == pool)?;
        Some((p, self.pools[p].find(name, address)?))
    }
}
