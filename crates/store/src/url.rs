//! The store URL `etcd://HOST:PORT[,HOST:PORT...]/PREFIX` and the key layout under its prefix.

use crate::error::UrlError;
use std::fmt;
use std::str::FromStr;

/// Where the store is and which part of its key space Portico uses.
///
/// Key layout: the prefix is stored without leading or trailing `/` (`etcd://h:2379/portico/`
/// and `etcd://h:2379//portico` both give prefix `portico`) and every key is absolute:
///
/// - `/{prefix}/config` — the config document ([`StoreUrl::config_key`]);
/// - `/{prefix}/nodes/{name}` — one node's registration ([`StoreUrl::node_key`]);
/// - `/{prefix}/versions/{version}` — one pushed version's record: JSON with `version`,
///   `pushed_at`, `author`, `message`, `outcome` ([`StoreUrl::version_key`], see
///   [`crate::VersionRecord`]);
/// - `/{prefix}/documents/{version}` — that version's document, as pushed
///   ([`StoreUrl::document_key`]);
/// - `/{prefix}/rollout` — the rollout in progress or the last one ([`StoreUrl::rollout_key`]);
/// - `/{prefix}/conductor` — the name of the node conducting rollouts, under its lease
///   ([`StoreUrl::conductor_key`]).
/// - `/{prefix}/acme` — managed certificates: CA accounts, challenge answers, issued chains
///   and keys ([`StoreUrl::acme_key`], see [`crate::AcmeDoc`]);
/// - `/{prefix}/acme-locks/{name}` — the node ordering certificate `name`, under its lease
///   ([`StoreUrl::acme_lock_key`]);
/// - `/{prefix}/tls-tickets` — the TLS session ticket keys every node encrypts and decrypts
///   tickets with ([`StoreUrl::tickets_key`], see [`portico_core::tls_tickets::TicketKeys`]).
///
/// The prefix may contain `/` (`etcd://h:2379/prod/eu` → `/prod/eu/config`), but no empty
/// segment.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StoreUrl {
    /// The etcd client endpoints, each `HOST:PORT` (IPv6 hosts in brackets).
    pub endpoints: Vec<String>,
    /// The key prefix, without leading or trailing `/`.
    pub prefix: String,
}

const SCHEME: &str = "etcd://";

impl StoreUrl {
    /// The key of the config document: `/{prefix}/config`.
    pub fn config_key(&self) -> String {
        format!("/{}/config", self.prefix)
    }

    /// The prefix under which nodes register: `/{prefix}/nodes/` (with the trailing slash, so
    /// that `nodes` never matches `nodes-old`).
    pub fn nodes_prefix(&self) -> String {
        format!("/{}/nodes/", self.prefix)
    }

    /// The key of one node's registration: `/{prefix}/nodes/{name}`.
    pub fn node_key(&self, name: &str) -> String {
        format!("{}{name}", self.nodes_prefix())
    }

    /// The prefix of the version records: `/{prefix}/versions/`.
    pub fn versions_prefix(&self) -> String {
        format!("/{}/versions/", self.prefix)
    }

    /// The key of one version's record: `/{prefix}/versions/{version}`.
    pub fn version_key(&self, version: &str) -> String {
        format!("{}{version}", self.versions_prefix())
    }

    /// The key of one version's document: `/{prefix}/documents/{version}`.
    pub fn document_key(&self, version: &str) -> String {
        format!("/{}/documents/{version}", self.prefix)
    }

    /// The key of the rollout: `/{prefix}/rollout`.
    pub fn rollout_key(&self) -> String {
        format!("/{}/rollout", self.prefix)
    }

    /// The key of the conductor election: `/{prefix}/conductor`.
    pub fn conductor_key(&self) -> String {
        format!("/{}/conductor", self.prefix)
    }

    /// The endpoints joined with `,`, as in the URL (for messages).
    pub fn endpoints_text(&self) -> String {
        self.endpoints.join(",")
    }
}

impl fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SCHEME}{}/{}", self.endpoints_text(), self.prefix)
    }
}

impl FromStr for StoreUrl {
    type Err = UrlError;

    fn from_str(url: &str) -> Result<Self, UrlError> {
        let rest = url.strip_prefix(SCHEME).ok_or_else(|| UrlError::Scheme {
            url: url.to_string(),
        })?;
        let (hosts, raw_prefix) = rest.split_once('/').ok_or_else(|| UrlError::NoPrefix {
            url: url.to_string(),
        })?;
        let prefix = raw_prefix.trim_matches('/');
        if prefix.is_empty() {
            return Err(UrlError::NoPrefix {
                url: url.to_string(),
            });
        }
        if prefix.split('/').any(str::is_empty) {
            return Err(UrlError::EmptySegment {
                url: url.to_string(),
                prefix: raw_prefix.to_string(),
            });
        }
        if hosts.trim().is_empty() {
            return Err(UrlError::NoEndpoints {
                url: url.to_string(),
            });
        }
        let endpoints = hosts
            .split(',')
            .map(|endpoint| {
                if is_host_port(endpoint) {
                    Ok(endpoint.to_string())
                } else {
                    Err(UrlError::BadEndpoint {
                        endpoint: endpoint.to_string(),
                        url: url.to_string(),
                    })
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(StoreUrl {
            endpoints,
            prefix: prefix.to_string(),
        })
    }
}

/// `HOST:PORT` with a non-empty host (a name, an IPv4 address or a bracketed IPv6 address) and
/// a port in 1..=65535.
fn is_host_port(endpoint: &str) -> bool {
    let Some((host, port)) = endpoint.rsplit_once(':') else {
        return false;
    };
    let port_ok = !port.is_empty()
        && port.bytes().all(|b| b.is_ascii_digit())
        && port.parse::<u16>().is_ok_and(|p| p != 0);
    let host_ok = if let Some(inner) = host.strip_prefix('[') {
        inner
            .strip_suffix(']')
            .is_some_and(|ip| ip.parse::<std::net::Ipv6Addr>().is_ok())
    } else {
        !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_')
    };
    port_ok && host_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<StoreUrl, UrlError> {
        s.parse()
    }

    #[test]
    fn parses_one_endpoint_and_gives_keys() {
        let url = parse("etcd://127.0.0.1:2379/portico").unwrap();
        assert_eq!(url.endpoints, vec!["127.0.0.1:2379"]);
        assert_eq!(url.prefix, "portico");
        assert_eq!(url.config_key(), "/portico/config");
        assert_eq!(url.nodes_prefix(), "/portico/nodes/");
        assert_eq!(url.node_key("eu-a"), "/portico/nodes/eu-a");
        assert_eq!(url.version_key("ab12"), "/portico/versions/ab12");
        assert_eq!(url.document_key("ab12"), "/portico/documents/ab12");
        assert_eq!(url.rollout_key(), "/portico/rollout");
        assert_eq!(url.conductor_key(), "/portico/conductor");
        assert_eq!(url.to_string(), "etcd://127.0.0.1:2379/portico");
    }

    #[test]
    fn parses_several_endpoints_and_a_nested_prefix() {
        let url = parse("etcd://a.example:2379,10.0.0.2:2379,[::1]:2379/prod/eu/").unwrap();
        assert_eq!(
            url.endpoints,
            vec!["a.example:2379", "10.0.0.2:2379", "[::1]:2379"]
        );
        assert_eq!(url.prefix, "prod/eu");
        assert_eq!(url.config_key(), "/prod/eu/config");
        assert_eq!(
            url.to_string(),
            "etcd://a.example:2379,10.0.0.2:2379,[::1]:2379/prod/eu"
        );
        assert_eq!(parse(&url.to_string()).unwrap(), url);
    }

    #[test]
    fn leading_and_trailing_slashes_are_dropped() {
        let url = parse("etcd://h:1//portico//").unwrap();
        assert_eq!(url.prefix, "portico");
        assert_eq!(url.config_key(), "/portico/config");
    }

    #[test]
    fn rejects_other_schemes() {
        let e = parse("http://127.0.0.1:2379/portico").unwrap_err();
        assert!(matches!(e, UrlError::Scheme { .. }));
        assert!(
            e.to_string()
                .starts_with("store URL must start with etcd://"),
            "{e}"
        );
    }

    #[test]
    fn rejects_a_missing_prefix() {
        for s in [
            "etcd://127.0.0.1:2379",
            "etcd://127.0.0.1:2379/",
            "etcd://h:1///",
        ] {
            let e = parse(s).unwrap_err();
            assert!(matches!(e, UrlError::NoPrefix { .. }), "{s}: {e:?}");
            assert!(
                e.to_string()
                    .ends_with("has no prefix: etcd://HOST:PORT/PREFIX"),
                "{e}"
            );
        }
    }

    #[test]
    fn rejects_an_empty_segment() {
        let e = parse("etcd://h:1/a//b").unwrap_err();
        assert!(matches!(e, UrlError::EmptySegment { .. }), "{e:?}");
    }

    #[test]
    fn rejects_bad_endpoints() {
        for (s, bad) in [
            ("etcd://127.0.0.1/p", "127.0.0.1"),
            ("etcd://h:0/p", "h:0"),
            ("etcd://h:65536/p", "h:65536"),
            ("etcd://h:x/p", "h:x"),
            ("etcd://:2379/p", ":2379"),
            ("etcd://h:1,,h:2/p", ""),
            ("etcd://h:1,/p", ""),
            ("etcd://::1:2379/p", "::1:2379"),
            ("etcd://[nope]:2379/p", "[nope]:2379"),
            ("etcd://user@h:1/p", "user@h:1"),
            ("etcd://h:+1/p", "h:+1"),
        ] {
            let e = parse(s).unwrap_err();
            assert_eq!(
                e,
                UrlError::BadEndpoint {
                    endpoint: bad.to_string(),
                    url: s.to_string()
                },
                "{s}"
            );
            assert!(
                e.to_string()
                    .starts_with(&format!("endpoint {bad:?} is not HOST:PORT")),
                "{e}"
            );
        }
    }

    #[test]
    fn rejects_no_endpoints() {
        let e = parse("etcd:///portico").unwrap_err();
        assert!(matches!(e, UrlError::NoEndpoints { .. }), "{e:?}");
    }
}
