//! Checks a config needs beyond validation, against this machine: origin names resolve,
//! `node.admin_token_file` is readable, the listeners are free.

use crate::live_pool::resolve_origins;
use portico_core::config::{Config, ConfigError, ConfigErrors};
use std::net::{SocketAddr, TcpListener};

/// Resolves every origin address, reporting failures by JSON path.
pub fn resolve_all(config: &Config) -> Result<Vec<Vec<SocketAddr>>, ConfigErrors> {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for (i, pool) in config.pools.iter().enumerate() {
        match resolve_origins(i, pool) {
            Ok(addrs) => out.push(addrs),
            Err(mut e) => errors.append(&mut e),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(ConfigErrors(errors))
    }
}

/// Checks that the node's listeners can be bound, so a busy port is a clear start-up error.
pub fn check_listeners(config: &Config) -> Result<(), ConfigErrors> {
    let mut errors = Vec::new();
    for (path, addr) in [
        ("node.listen", &config.node.listen),
        ("node.admin_listen", &config.node.admin_listen),
    ] {
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
