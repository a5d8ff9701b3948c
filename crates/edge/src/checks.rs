//! Checks a config needs beyond validation, against this machine: origin names resolve (and
//! no two origins of a pool to one socket), `node.admin_token_file` is readable, the
//! listeners are free. Certificates and CA files are read in [`crate::tls::load`].

use crate::live_pool::resolve_origins;
use portico_core::config::{Config, ConfigError, ConfigErrors, PoolConfig};
use std::net::{SocketAddr, TcpListener};

/// Resolves every origin address, reporting failures by JSON path.
pub fn resolve_all(config: &Config) -> Result<Vec<Vec<SocketAddr>>, ConfigErrors> {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for (i, pool) in config.pools.iter().enumerate() {
        match resolve_origins(i, pool) {
            Ok(addrs) => {
                errors.extend(same_socket_origins(i, pool, &addrs));
                out.push(addrs);
            }
            Err(mut e) => errors.append(&mut e),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(ConfigErrors(errors))
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

/// Checks that the node's listeners can be bound, so a busy port is a clear start-up error.
pub fn check_listeners(config: &Config) -> Result<(), ConfigErrors> {
    let mut errors = Vec::new();
    let tls = config
        .node
        .tls_listen
        .as_ref()
        .map(|a| ("node.tls_listen", a));
    for (path, addr) in [
        ("node.listen", &config.node.listen),
        ("node.admin_listen", &config.node.admin_listen),
    ]
    .into_iter()
    .chain(tls)
    {
        if let Err(e) = TcpListener::bind(addr.as_str()) {
            errors.push(ConfigError::new(
                path,
                format!("cannot listen on {addr}: {e}"),
            ));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ConfigErrors(errors))
    }
}

/// Checks that `node.admin_token_file`, when set, can be read and holds a token.
pub fn check_token_file(config: &Config) -> Result<(), ConfigErrors> {
    let Some(file) = &config.node.admin_token_file else {
        return Ok(());
    };
    let problem = match std::fs::read_to_string(file) {
        Ok(t) if t.trim().is_empty() => format!("{file} is empty"),
        Ok(_) => return Ok(()),
        Err(e) => format!("cannot read {file}: {e}"),
    };
    Err(ConfigErrors(vec![ConfigError::new(
        "node.admin_token_file",
        problem,
    )]))
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
}
