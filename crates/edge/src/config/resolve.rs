//! Origin name resolution, in one place for start-up, reloads and `--check`: every name
//! looked up at once, each within [`RESOLVE_TIMEOUT`], errors by JSON path, and two names of
//! one pool for one socket refused. Beside a running config, a name that fails now keeps the
//! address it runs with.

use crate::snapshot::Snapshot;
use portico_core::config::{Config, ConfigError, PoolConfig};
use std::net::SocketAddr;
use std::time::Duration;

/// How long one origin name may take to resolve.
pub const RESOLVE_TIMEOUT: Duration = Duration::from_secs(3);

/// Per pool, per origin: the socket address each origin of a config resolved to.
pub type Addresses = Vec<Vec<SocketAddr>>;

/// Picks one socket address (IPv4 first) from a resolver's answer.
fn pick(address: &str, addrs: impl Iterator<Item = SocketAddr>) -> Result<SocketAddr, String> {
    let addrs: Vec<SocketAddr> = addrs.collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| format!("{address:?} resolves to no address"))
}

/// Resolves `HOST:PORT` on the runtime's resolver threads, giving up after `timeout`.
pub async fn lookup(address: &str, timeout: Duration) -> Result<SocketAddr, String> {
    match tokio::time::timeout(timeout, tokio::net::lookup_host(address)).await {
        Ok(Ok(addrs)) => pick(address, addrs),
        Ok(Err(e)) => Err(format!("cannot resolve {address:?}: {e}")),
        Err(_) => Err(format!(
            "cannot resolve {address:?}: no answer within {} ms",
            timeout.as_millis()
        )),
    }
}

/// Resolves every origin name of `config` concurrently. With `running`, an origin whose name
/// does not resolve now but runs there with the same pool, name and address keeps its current
/// address (logged): a passing resolver failure does not block an unrelated change. Errors
/// come in document order: a pool's names that do not resolve, else its origins that share a
/// socket.
pub async fn resolve_origins(
    config: &Config,
    running: Option<&Snapshot>,
) -> Result<Addresses, Vec<ConfigError>> {
    let mut lookups = tokio::task::JoinSet::new();
    for (p, pool) in config.pools.iter().enumerate() {
        for (o, origin) in pool.origins.iter().enumerate() {
            let address = origin.address.clone();
            lookups.spawn(async move { (p, o, lookup(&address, RESOLVE_TIMEOUT).await) });
        }
    }
    let mut found: Vec<Vec<Result<SocketAddr, String>>> = config
        .pools
        .iter()
        .map(|p| vec![Err(String::new()); p.origins.len()])
        .collect();
    let mut errors = Vec::new();
    while let Some(joined) = lookups.join_next().await {
        match joined {
            Ok((p, o, result)) => found[p][o] = result,
            Err(e) => errors.push(ConfigError::new(
                "",
                format!("resolving origins failed: {e}"),
            )),
        }
    }
    let mut out = Vec::new();
    for (p, (pool, results)) in config.pools.iter().zip(found).enumerate() {
        let mut addrs = Vec::new();
        let mut failed = false;
        for (o, (origin, result)) in pool.origins.iter().zip(results).enumerate() {
            let e = match result {
                Ok(a) => {
                    addrs.push(a);
                    continue;
                }
                Err(e) => e,
            };
            let known = running.and_then(|current| {
                current
                    .find_origin(&pool.name, &origin.name, &origin.address)
                    .map(|(pi, oi)| current.pools[pi].origins[oi].addr)
            });
            match known {
                Some(a) => {
                    log::warn!(
                        "pool {}: origin {}: {e}; keeping its current address {a}",
                        pool.name,
                        origin.name
                    );
                    addrs.push(a);
                }
                None => {
                    failed = true;
                    errors.push(ConfigError::new(
                        format!("pools[{p}].origins[{o}].address"),
                        e,
                    ));
                }
            }
        }
        if !failed {
            errors.extend(same_socket_origins(p, pool, &addrs));
        }
        out.push(addrs);
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// Origins of one pool whose names resolve to the same socket (`localhost:P` and
/// `127.0.0.1:P`): one of them would never be probed on its own. Errors at the later one.
pub fn same_socket_origins(
    index: usize,
    pool: &PoolConfig,
    addrs: &[SocketAddr],
) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    for (j, a) in addrs.iter().enumerate() {
        if let Some(k) = addrs[..j].iter().position(|b| b == a) {
            errors.push(ConfigError::new(
                format!("pools[{index}].origins[{j}].address"),
                format!(
                    "{:?} resolves to {a}, the socket of origins[{k}] ({:?}): one origin per socket",
                    pool.origins[j].address, pool.origins[k].address
                ),
            ));
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_names_for_one_socket_are_an_error_at_the_second() {
        let text = r#"{"pools":[{"name":"p","origins":[
            {"name":"a","address":"localhost:7001"},
            {"name":"b","address":"127.0.0.1:7002"},
            {"name":"c","address":"127.0.0.1:7001"}]}],
            "routes":[{"name":"r","pool":"p"}]}"#;
        let config = portico_core::config::parse(text).expect("valid");
        let addrs: Vec<SocketAddr> = ["127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7001"]
            .iter()
            .map(|a| a.parse().expect("addr"))
            .collect();
        let errors = same_socket_origins(0, &config.pools[0], &addrs);
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].path, "pools[0].origins[2].address");
        assert_eq!(
            errors[0].message,
            "\"127.0.0.1:7001\" resolves to 127.0.0.1:7001, the socket of origins[0] (\"localhost:7001\"): one origin per socket"
        );
        assert!(same_socket_origins(0, &config.pools[0], &addrs[..2]).is_empty());
    }

    #[tokio::test]
    async fn every_pool_is_checked_and_errors_come_in_document_order() {
        let text = r#"{"pools":[
            {"name":"p","origins":[
                {"name":"a","address":"127.0.0.1:7001"},
                {"name":"b","address":"127.0.0.1:7002"},
                {"name":"c","address":"localhost:7001"}]},
            {"name":"q","origins":[
                {"name":"d","address":"localhost:7003"},
                {"name":"e","address":"127.0.0.1:7003"}]}],
            "routes":[{"name":"r","pool":"p"},{"name":"s","pool":"q","paths":["/q"]}]}"#;
        let config = portico_core::config::parse(text).expect("valid");
        let errors = resolve_origins(&config, None)
            .await
            .expect_err("two errors");
        let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            ["pools[0].origins[2].address", "pools[1].origins[1].address"]
        );
        let text = text.replace("127.0.0.1:7003", "127.0.0.1:7004");
        let text = text.replace("localhost:7001", "localhost:7005");
        let config = portico_core::config::parse(&text).expect("valid");
        let addrs = resolve_origins(&config, None).await.expect("resolves");
        let port = |p: usize, o: usize| addrs[p][o].port();
        assert_eq!((port(0, 2), port(1, 0), port(1, 1)), (7005, 7003, 7004));
    }
}
