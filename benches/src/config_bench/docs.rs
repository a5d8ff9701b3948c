//! The two config documents every push alternates between: the same pool of two origins with
//! their priorities swapped, so each push moves all traffic from one origin to the other and
//! the answers show which config served them.

use serde::Serialize;
use std::net::SocketAddr;

/// One of the two documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Variant {
    /// The first origin has priority 1, the second priority 2.
    A,
    /// The second origin has priority 1, the first priority 2.
    B,
}

impl Variant {
    /// The document pushed after this one.
    pub fn other(self) -> Variant {
        match self {
            Variant::A => Variant::B,
            Variant::B => Variant::A,
        }
    }

    /// Which origin (index into the pool) this document prefers.
    pub fn preferred(self) -> usize {
        match self {
            Variant::A => 0,
            Variant::B => 1,
        }
    }

    /// The variant of change number `i` (0-based) of a series starting while `self` runs:
    /// the other one, then `self`, and so on.
    pub fn nth_change(self, i: usize) -> Variant {
        if i % 2 == 0 { self.other() } else { self }
    }
}

/// An origin of the pool.
#[derive(Debug, Clone, Serialize)]
pub struct OriginSpec {
    /// Name, also its `x-served-by`.
    pub name: String,
    /// Region (informational in the config).
    pub region: String,
    /// Where it listens.
    pub addr: SocketAddr,
}

/// The `node` section of a document.
#[derive(Debug, Clone)]
pub enum NodeSection {
    /// For the store: shared by every region, so only `threads`; each node's region and
    /// listeners come from its command line.
    Shared,
    /// For a `--config` node: the whole section.
    File {
        /// `node.region`.
        region: String,
        /// `node.listen`.
        listen: SocketAddr,
        /// `node.admin_listen`.
        admin: SocketAddr,
    },
}

/// The document of `variant` for `origins` (two of them).
pub fn render(origins: &[OriginSpec], variant: Variant, node: &NodeSection) -> String {
    let node = match node {
        NodeSection::Shared => r#"{ "threads": 1 }"#.to_string(),
        NodeSection::File {
            region,
            listen,
            admin,
        } => format!(
            r#"{{ "region": "{region}", "listen": "{listen}", "admin_listen": "{admin}", "threads": 1 }}"#
        ),
    };
    let origins: Vec<String> = origins
        .iter()
        .enumerate()
        .map(|(i, o)| {
            let priority = if i == variant.preferred() { 1 } else { 2 };
            format!(
                r#"{{ "name": "{}", "address": "{}", "region": "{}", "priority": {priority} }}"#,
                o.name, o.addr, o.region
            )
        })
        .collect();
    format!(
        r#"{{
  "node": {node},
  "pools": [{{
    "name": "web",
    "health_probe": {{ "path": "/", "method": "HEAD", "interval_ms": 1000, "timeout_ms": 500 }},
    "load_balancing": {{ "sample_size": 4, "successful_samples_required": 3, "latency_sensitivity_ms": 20 }},
    "timeouts": {{ "connect_ms": 1000, "response_ms": 5000 }},
    "origins": [
      {}
    ]
  }}],
  "routes": [{{ "name": "all", "hosts": ["*"], "paths": ["/*"], "pool": "web" }}]
}}
"#,
        origins.join(",\n      ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use portico_core::config::{Overrides, fingerprint, parse, parse_with};

    fn origins() -> Vec<OriginSpec> {
        ["us-east", "eu-west"]
            .iter()
            .enumerate()
            .map(|(i, r)| OriginSpec {
                name: format!("web-{r}"),
                region: r.to_string(),
                addr: SocketAddr::from(([127, 0, 0, 1], 9001 + i as u16)),
            })
            .collect()
    }

    #[test]
    fn the_two_store_documents_are_valid_differ_and_swap_priorities() {
        let (a, b) = (
            render(&origins(), Variant::A, &NodeSection::Shared),
            render(&origins(), Variant::B, &NodeSection::Shared),
        );
        assert_ne!(fingerprint(&a), fingerprint(&b));
        let overrides = Overrides {
            region: Some("eu-west".into()),
            listen: Some("127.0.0.1:18080".into()),
            admin_listen: Some("127.0.0.1:18081".into()),
            tls_listen: None,
        };
        let (ca, cb) = (
            parse_with(&a, &overrides).unwrap(),
            parse_with(&b, &overrides).unwrap(),
        );
        assert_eq!(ca.version, fingerprint(&a));
        assert_eq!(ca.node.region, "eu-west");
        let prio = |c: &portico_core::config::Config| {
            c.pools[0]
                .origins
                .iter()
                .map(|o| o.priority)
                .collect::<Vec<_>>()
        };
        assert_eq!(prio(&ca), vec![1, 2]);
        assert_eq!(prio(&cb), vec![2, 1]);
        // `portico config push` validates without overrides: the shared document must pass too.
        parse(&a).unwrap();
    }

    #[test]
    fn the_file_document_carries_its_listeners() {
        let node = NodeSection::File {
            region: "us-east".into(),
            listen: SocketAddr::from(([127, 0, 0, 1], 18080)),
            admin: SocketAddr::from(([127, 0, 0, 1], 18081)),
        };
        let c = parse(&render(&origins(), Variant::B, &node)).unwrap();
        assert_eq!(c.node.region, "us-east");
        assert_eq!(c.pools[0].origins[1].priority, 1);
    }

    #[test]
    fn pushes_alternate_starting_away_from_the_initial_document() {
        assert_eq!(Variant::A.nth_change(0), Variant::B);
        assert_eq!(Variant::A.nth_change(1), Variant::A);
        assert_eq!(Variant::B.nth_change(2), Variant::A);
        assert_eq!(Variant::A.other(), Variant::B);
        assert_eq!(Variant::B.preferred(), 1);
    }
}
