//! In-process edge nodes and origins on ports chosen at run time.

use crate::client::Http;
use crate::metrics::Scrape;
/// Where it lived before `port.rs`; helpers written against `crate::node::free_addr` still find it.
pub use crate::port::free_addr;
use crate::wait::eventually;
use portico::{Node, NodeOptions, RunningNode};
use portico_core::config::{Overrides, parse_with};
use portico_origin::{OriginConfig, OriginHandle};
use portico_store::StoreUrl;
use serde_json::Value;
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

/// Starts a demo origin named `name` on a free port.
pub async fn origin(name: &str) -> OriginHandle {
    origin_with(OriginConfig::new(
        name,
        "127.0.0.1:0".parse().expect("addr"),
    ))
    .await
}

/// Starts a demo origin with a config of the caller's.
pub async fn origin_with(config: OriginConfig) -> OriginHandle {
    portico_origin::start(config).await.expect("start origin")
}

/// A node running in this process, with its URLs.
pub struct TestNode {
    /// The running node; dropping it stops the node.
    pub node: RunningNode,
    /// `http://127.0.0.1:PORT` of the proxy.
    pub url: String,
    /// `http://127.0.0.1:PORT` of the admin listener.
    pub admin: String,
    /// A client for this test.
    pub http: Http,
}

impl TestNode {
    /// Starts a node from config text, with its listeners moved to free ports. Waits until
    /// both listeners accept connections.
    pub async fn start(config: &str) -> TestNode {
        Self::start_with(config, &Overrides::default()).await
    }

    /// Like [`TestNode::start`], with other `node.*` overrides (region, say; a `listen` given
    /// is kept, for a port chosen before the node starts, like Pebble's HTTP-01 port).
    pub async fn start_with(config: &str, overrides: &Overrides) -> TestNode {
        let listen = (overrides.listen.as_deref())
            .and_then(|l| l.parse().ok())
            .unwrap_or_else(free_addr);
        let admin = free_addr();
        let overrides = Overrides {
            listen: Some(listen.to_string()),
            admin_listen: Some(admin.to_string()),
            ..overrides.clone()
        };
        if let Err(e) = parse_with(config, &overrides) {
            panic!("test config is invalid:\n{e}");
        }
        let options = NodeOptions {
            overrides,
            ..NodeOptions::default()
        };
        let node = Node::from_text(config, options)
            .await
            .unwrap_or_else(|e| panic!("node does not build:\n{e}"))
            .spawn();
        Self::when_listening(node, listen, admin).await
    }

    /// Starts a node that follows the store at `url` (named `name`, in `region`, caching to
    /// `cache`), the way `portico --store` does: from the stored document, or from the cache
    /// when the store is unreachable. Errors when neither is there.
    pub async fn start_store(
        url: &StoreUrl,
        name: &str,
        region: &str,
        cache: Option<&Path>,
    ) -> Result<TestNode, String> {
        let listen = free_addr();
        let admin = free_addr();
        let overrides = Overrides {
            region: Some(region.to_string()),
            listen: Some(listen.to_string()),
            admin_listen: Some(admin.to_string()),
            tls_listen: None,
        };
        let options = NodeOptions {
            overrides,
            ..NodeOptions::default()
        };
        let built = Node::from_store(url, Some(name), cache, options)
            .await
            .map_err(|e| match e {
                portico::StartError::Config(e) => format!("node does not build:\n{e}"),
                other => other.to_string(),
            })?;
        let node = built.spawn();
        Ok(Self::when_listening(node, listen, admin).await)
    }

    async fn when_listening(node: RunningNode, listen: SocketAddr, admin: SocketAddr) -> TestNode {
        for addr in [listen, admin] {
            eventually(
                &format!("{addr} accepts connections"),
                Duration::from_secs(10),
                || async move { TcpStream::connect(addr).is_ok() },
            )
            .await;
        }
        TestNode {
            node,
            url: format!("http://{listen}"),
            admin: format!("http://{admin}"),
            http: Http::new(),
        }
    }

    /// The running config version, from `/status`.
    pub async fn version(&self) -> String {
        self.status().await["config_version"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// `GET` on the proxy.
    pub async fn get(&self, path: &str) -> crate::Resp {
        self.http.get(&format!("{}{path}", self.url)).await
    }

    /// Scrapes `/metrics`.
    pub async fn metrics(&self) -> Scrape {
        let r = self.http.get(&format!("{}/metrics", self.admin)).await;
        assert_eq!(r.status, 200);
        Scrape::parse(&r.text())
    }

    /// Reads `/status`.
    pub async fn status(&self) -> Value {
        let r = self.http.get(&format!("{}/status", self.admin)).await;
        assert_eq!(r.status, 200, "{}", r.text());
        serde_json::from_slice(&r.body).expect("/status is JSON")
    }

    /// The `/status` entry of an origin.
    pub async fn origin_status(&self, pool: &str, origin: &str) -> Value {
        let s = self.status().await;
        s["pools"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["name"] == pool)
            .flat_map(|p| p["origins"].as_array().into_iter().flatten())
            .find(|o| o["name"] == origin)
            .cloned()
            .unwrap_or_else(|| panic!("no origin {pool}/{origin} in /status: {s}"))
    }

    /// Waits until every listed origin of `pool` has a latency measurement.
    pub async fn wait_latencies(&self, pool: &str, origins: &[&str]) {
        for o in origins {
            eventually(
                &format!("latency of {pool}/{o} is known"),
                Duration::from_secs(10),
                || async { self.origin_status(pool, o).await["latency_ms"].is_number() },
            )
            .await;
        }
    }

    /// Waits until `pool/origin` reports `healthy`.
    pub async fn wait_health(&self, pool: &str, origin: &str, healthy: bool) {
        eventually(
            &format!("{pool}/{origin} healthy == {healthy}"),
            Duration::from_secs(15),
            || async { self.origin_status(pool, origin).await["healthy"] == healthy },
        )
        .await;
    }
}

/// `{"name": NAME, "address": ADDR}` plus `extra` fields (`, "priority": 2`).
pub fn origin_json(name: &str, addr: SocketAddr, extra: &str) -> String {
    format!(r#"{{"name": "{name}", "address": "{addr}"{extra}}}"#)
}

/// Two origins `a` and `b` in one pool `p` with extra pool fields: the node (once it knows
/// both origins' latency) and both origins.
pub async fn origin_pair(pool_extra: &str) -> (TestNode, OriginHandle, OriginHandle) {
    let a = origin("a").await;
    let b = origin("b").await;
    let config = one_pool(
        &[
            origin_json("a", a.addr(), ""),
            origin_json("b", b.addr(), ""),
        ],
        pool_extra,
    );
    let node = TestNode::start(&config).await;
    node.wait_latencies("p", &["a", "b"]).await;
    (node, a, b)
}

/// A whole config with one pool `p` of `origins`, extra pool fields (`"health_probe": {...}`)
/// and one catch-all route `r`.
pub fn one_pool(origins: &[String], pool_extra: &str) -> String {
    let extra = if pool_extra.is_empty() {
        String::new()
    } else {
        format!(", {pool_extra}")
    };
    format!(
        r#"{{"pools": [{{"name": "p", "origins": [{}]{extra}}}],
            "routes": [{{"name": "r", "pool": "p"}}]}}"#,
        origins.join(", ")
    )
}

/// Probes every 100 ms with an 80 ms timeout: fast enough for tests.
pub const FAST_PROBES: &str = r#""health_probe": {"interval_ms": 100, "timeout_ms": 80}"#;

/// A node following the store at `url`, named `name` (its region too), its plain listener on
/// `listen`, its admin listener and a TLS listener on free ports; returns the node and the TLS
/// listener's address once all three accept.
pub async fn store_tls_node(
    url: &StoreUrl,
    name: &str,
    listen: SocketAddr,
) -> (TestNode, SocketAddr) {
    let (admin, tls) = (free_addr(), free_addr());
    let options = NodeOptions {
        overrides: Overrides {
            region: Some(name.to_string()),
            listen: Some(listen.to_string()),
            admin_listen: Some(admin.to_string()),
            tls_listen: Some(tls.to_string()),
        },
        ..NodeOptions::default()
    };
    let node = Node::from_store(url, Some(name), None, options)
        .await
        .unwrap_or_else(|e| panic!("{name} does not start: {e}"))
        .spawn();
    for addr in [listen, admin, tls] {
        eventually(
            &format!("{addr} accepts"),
            Duration::from_secs(10),
            || async move { TcpStream::connect(addr).is_ok() },
        )
        .await;
    }
    let node = TestNode {
        node,
        url: format!("http://{listen}"),
        admin: format!("http://{admin}"),
        http: Http::new(),
    };
    (node, tls)
}
