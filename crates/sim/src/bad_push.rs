//! `portico-sim bad-push`: a document that validates but is wrong — the first route sent to a
//! pool whose only origin is a port where nothing listens — pushed the way an operator pushes,
//! so that a newcomer sees the canary fail its gate and the rollout roll back.

use anyhow::{Context, Result};
use portico_store::StoreUrl;
use serde_json::{Value, json};
use std::path::Path;
use std::process::Command;

/// Where the wrong pool's origin points: port 1 on loopback, where nothing listens (in every
/// node's network namespace too), so every request through the route fails.
pub const DEAD_ORIGIN: &str = "127.0.0.1:1";

/// The name of the pool the wrong document adds.
pub const DEAD_POOL: &str = "web-moved";

/// `config` with its first route sent to a new pool [`DEAD_POOL`] whose only origin is
/// [`DEAD_ORIGIN`]; also what was changed, in a sentence.
pub fn wrong_document(config: &str) -> Result<(String, String)> {
    let mut doc: Value = serde_json::from_str(config).context("the running config is not JSON")?;
    let first = doc["pools"]
        .get(0)
        .cloned()
        .context("the running config has no pool")?;
    let mut pool = first;
    pool["name"] = DEAD_POOL.into();
    pool["origins"] = json!([{ "name": "moved", "address": DEAD_ORIGIN }]);
    doc["pools"]
        .as_array_mut()
        .context("pools is not a list")?
        .push(pool);
    let route = doc["routes"]
        .get_mut(0)
        .context("the running config has no route")?;
    let name = route["name"].as_str().unwrap_or("(unnamed)").to_string();
    route["pool"] = DEAD_POOL.into();
    let text = serde_json::to_string_pretty(&doc)? + "\n";
    Ok((
        text,
        format!(
            "route {name} sent to a new pool {DEAD_POOL} whose only origin, {DEAD_ORIGIN}, is a port where nothing listens"
        ),
    ))
}

/// `portico config push FILE --store URL --message MESSAGE`: the default rollout (canary, its
/// region, the rest; gates at their defaults).
pub fn push_command(portico: &Path, file: &Path, url: &StoreUrl, message: &str) -> Command {
    let mut c = Command::new(portico);
    c.arg("config")
        .arg("push")
        .arg(file)
        .arg("--store")
        .arg(url.to_string())
        .arg("--message")
        .arg(message);
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use portico_core::config::parse;

    const SIM: &str = include_str!("../../../deploy/sim/portico.json");

    #[test]
    fn the_wrong_document_is_valid_and_sends_the_route_to_a_dead_port() {
        let (text, what) = wrong_document(SIM).unwrap();
        let config = parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let pool = config.route_pool(0);
        assert_eq!(pool.name, DEAD_POOL);
        assert_eq!(pool.origins.len(), 1);
        assert_eq!(pool.origins[0].address.to_string(), DEAD_ORIGIN);
        assert!(what.contains("route all"), "{what}");
        let good = parse(SIM).unwrap();
        assert_eq!(
            good.pools.len() + 1,
            config.pools.len(),
            "the other pools stay"
        );
        assert_ne!(good.route_pool(0).name, DEAD_POOL);
    }

    #[test]
    fn a_config_without_routes_is_refused_with_a_reason() {
        let e = wrong_document(r#"{"pools": [{"name": "p", "origins": []}], "routes": []}"#)
            .unwrap_err();
        assert!(e.to_string().contains("no route"), "{e}");
    }

    #[test]
    fn the_push_is_the_operators_command() {
        let url: StoreUrl = "etcd://127.0.0.1:8150/portico".parse().unwrap();
        let c = push_command(Path::new("portico"), Path::new("bad.json"), &url, "why");
        let args: Vec<_> = c
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            args,
            [
                "config",
                "push",
                "bad.json",
                "--store",
                "etcd://127.0.0.1:8150/portico",
                "--message",
                "why"
            ]
        );
    }
}
