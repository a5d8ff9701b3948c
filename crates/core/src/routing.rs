//! Route matching: Host (exact, then longest `*.suffix`, then `*`), then path (exact, then longest prefix).
//! Hosts are hash lookups: exact by the whole name, wildcards by each suffix of the name that
//! starts at a dot (one lookup per label, however many routes there are).

use crate::config::{HostPattern, PathPattern, RouteConfig};
use std::collections::HashMap;

/// The routes of one host pattern, by path.
#[derive(Debug, Default, Clone)]
struct PathTable {
    exact: HashMap<String, usize>,
    /// Prefixes, longest first.
    prefixes: Vec<(String, usize)>,
}

impl PathTable {
    fn insert(&mut self, pattern: &PathPattern, route: usize) {
        match pattern {
            PathPattern::Exact(p) => {
                self.exact.entry(p.clone()).or_insert(route);
            }
            PathPattern::Prefix(p) => {
                if !self.prefixes.iter().any(|(q, _)| q == p) {
                    self.prefixes.push((p.clone(), route));
                }
            }
        }
    }

    /// Orders the prefixes longest first, once all are in (two prefixes of one length
    /// never both match a path, so their order does not matter).
    fn finish(&mut self) {
        self.prefixes.sort_by_key(|p| std::cmp::Reverse(p.0.len()));
    }

    fn lookup(&self, path: &str) -> Option<usize> {
        if let Some(&r) = self.exact.get(path) {
            return Some(r);
        }
        self.prefixes
            .iter()
            .find(|(prefix, _)| path.starts_with(prefix.as_str()))
            .map(|&(_, r)| r)
    }
}

/// Maps a request's Host and path to a route index.
#[derive(Debug, Default, Clone)]
pub struct RouteTable {
    exact: HashMap<String, PathTable>,
    /// By the suffix with its leading dot: `*.example.com` is under `".example.com"`.
    suffixes: HashMap<String, PathTable>,
    /// The longest key of `suffixes`, in bytes: no dot farther from the end can start one.
    longest_suffix: usize,
    any: Option<PathTable>,
}

impl RouteTable {
    /// Builds the table; on overlaps the first route in document order wins
    /// (validation rejects them anyway).
    pub fn new(routes: &[RouteConfig]) -> Self {
        let mut table = RouteTable::default();
        for (idx, route) in routes.iter().enumerate() {
            for host in &route.hosts {
                let paths = match host {
                    HostPattern::Any => table.any.get_or_insert_with(PathTable::default),
                    HostPattern::Exact(h) => table.exact.entry(h.clone()).or_default(),
                    HostPattern::Suffix(s) => table.suffixes.entry(s.clone()).or_default(),
                };
                for path in &route.paths {
                    paths.insert(path, idx);
                }
            }
        }
        table.longest_suffix = table.suffixes.keys().map(String::len).max().unwrap_or(0);
        let tables = table.exact.values_mut().chain(table.suffixes.values_mut());
        for paths in tables.chain(table.any.as_mut()) {
            paths.finish();
        }
        table
    }

    /// The route for a request. `host` is the Host header as sent (any case, maybe with a port);
    /// `path` is the request path without the query. Within the most specific matching host
    /// pattern only: a host that matches but has no matching path is not tried against `*`.
    pub fn lookup(&self, host: Option<&str>, path: &str) -> Option<usize> {
        let mut buf = [0u8; 256];
        let host = host.map(|h| normalize_host(h, &mut buf)).unwrap_or("");
        self.host_table(host).and_then(|t| t.lookup(path))
    }

    fn host_table(&self, host: &str) -> Option<&PathTable> {
        if !host.is_empty() {
            if let Some(t) = self.exact.get(host) {
                return Some(t);
            }
            if let Some(t) = self.longest_suffix(host) {
                return Some(t);
            }
        }
        self.any.as_ref()
    }

    /// The table of the longest `*.suffix` that `host` ends with, the host having at least
    /// one byte before it: each dot after the first byte starts a candidate, left to right,
    /// so the first one found is the longest. Only the last `longest_suffix` bytes can hold
    /// one, so a long Host (a client may send up to `max_header_bytes`) costs a bounded number
    /// of lookups, not one per dot.
    fn longest_suffix(&self, host: &str) -> Option<&PathTable> {
        if self.suffixes.is_empty() {
            return None;
        }
        let from = host.len().saturating_sub(self.longest_suffix).max(1);
        host.bytes()
            .enumerate()
            .skip(from)
            .filter(|&(_, b)| b == b'.')
            .find_map(|(i, _)| self.suffixes.get(&host[i..]))
    }
}

/// Strips the port and a trailing dot and lower-cases the host, using `buf` when the host is
/// short enough (no allocation on the request path). Longer or non-ASCII hosts match nothing
/// but `*`.
pub fn normalize_host<'a>(host: &'a str, buf: &'a mut [u8; 256]) -> &'a str {
    let host = host.trim();
    let host = if host.starts_with('[') {
        // [v6]:port
        match host.find(']') {
            Some(end) => &host[..=end],
            None => host,
        }
    } else {
        match host.rfind(':') {
            Some(colon) => &host[..colon],
            None => host,
        }
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    if !host.bytes().any(|b| b.is_ascii_uppercase()) {
        return host;
    }
    if host.len() > buf.len() || !host.is_ascii() {
        return "";
    }
    let out = &mut buf[..host.len()];
    out.copy_from_slice(host.as_bytes());
    out.make_ascii_lowercase();
    std::str::from_utf8(out).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{host_pattern, path_pattern};

    fn route(name: &str, hosts: &[&str], paths: &[&str]) -> RouteConfig {
        RouteConfig {
            name: name.into(),
            hosts: hosts.iter().map(|h| host_pattern(h).unwrap()).collect(),
            paths: paths.iter().map(|p| path_pattern(p).unwrap()).collect(),
            pool: 0,
            https_redirect: false,
            compression: None,
            rule_sets: Vec::new(),
        }
    }

    /// A Host as long as a head may carry, all dots, still finds its wildcard and looks up at
    /// most as many suffixes as the longest one has bytes (a lookup per dot was quadratic in
    /// the Host's length).
    #[test]
    fn a_very_long_host_costs_a_bounded_number_of_lookups() {
        let table = RouteTable::new(&[
            route("w", &["*.example.com"], &["/*"]),
            route("any", &["*"], &["/*"]),
        ]);
        assert_eq!(table.longest_suffix, ".example.com".len());
        let host = format!("{}example.com", "a.".repeat(16_000));
        assert_eq!(table.lookup(Some(&host), "/"), Some(0));
        let other = format!("{}example.org", "a.".repeat(16_000));
        assert_eq!(table.lookup(Some(&other), "/"), Some(1));
        // The suffix exactly: no byte before it, not a match.
        assert_eq!(table.lookup(Some(".example.com"), "/"), Some(1));
    }

    fn table() -> RouteTable {
        RouteTable::new(&[
            route("catch-all", &["*"], &["/*"]),
            route("wild", &["*.example.com"], &["/*"]),
            route("deep-wild", &["*.eu.example.com"], &["/*"]),
            route("api-exact", &["api.example.com"], &["/health"]),
            route("api-v1", &["api.example.com"], &["/v1/*"]),
            route("api-v1-users", &["api.example.com"], &["/v1/users/*"]),
        ])
    }

    #[test]
    fn exact_host_beats_wildcard_beats_any() {
        let t = table();
        assert_eq!(t.lookup(Some("api.example.com"), "/health"), Some(3));
        assert_eq!(t.lookup(Some("www.example.com"), "/x"), Some(1));
        assert_eq!(t.lookup(Some("a.eu.example.com"), "/x"), Some(2));
        assert_eq!(t.lookup(Some("other.org"), "/x"), Some(0));
        assert_eq!(t.lookup(None, "/x"), Some(0));
    }

    #[test]
    fn wildcard_does_not_match_the_bare_domain() {
        let t = table();
        assert_eq!(t.lookup(Some("example.com"), "/x"), Some(0));
    }

    #[test]
    fn host_is_case_insensitive_and_port_is_ignored() {
        let t = table();
        assert_eq!(t.lookup(Some("API.Example.COM:8080"), "/health"), Some(3));
        assert_eq!(t.lookup(Some("api.example.com."), "/health"), Some(3));
        assert_eq!(t.lookup(Some("[::1]:8080"), "/x"), Some(0));
    }

    #[test]
    fn exact_path_beats_longest_prefix_beats_shorter() {
        let t = table();
        assert_eq!(t.lookup(Some("api.example.com"), "/v1/users/7"), Some(5));
        assert_eq!(t.lookup(Some("api.example.com"), "/v1/orders"), Some(4));
        assert_eq!(t.lookup(Some("api.example.com"), "/v1/"), Some(4));
    }

    #[test]
    fn winning_host_without_matching_path_is_no_route() {
        let t = table();
        // api.example.com wins on Host, and none of its paths matches "/v2".
        assert_eq!(t.lookup(Some("api.example.com"), "/v2"), None);
        // Prefix "/v1/*" does not match "/v1" itself.
        assert_eq!(t.lookup(Some("api.example.com"), "/v1"), None);
    }

    #[test]
    fn longest_wildcard_wins_whatever_the_document_order() {
        let t = RouteTable::new(&[
            route("com", &["*.com"], &["/*"]),
            route("deep", &["*.a.b.example.com"], &["/*"]),
            route("example", &["*.example.com"], &["/*"]),
            route("b", &["*.b.example.com"], &["/*"]),
        ]);
        assert_eq!(t.lookup(Some("x.a.b.example.com"), "/"), Some(1));
        assert_eq!(t.lookup(Some("a.b.example.com"), "/"), Some(3));
        assert_eq!(t.lookup(Some("b.example.com"), "/"), Some(2));
        assert_eq!(t.lookup(Some("X.Y.B.Example.COM.:443"), "/"), Some(3));
        assert_eq!(t.lookup(Some("example.com"), "/"), Some(0));
        assert_eq!(t.lookup(Some("com"), "/"), None);
        // A wildcard needs something before its dot; an empty label still counts as a label.
        assert_eq!(t.lookup(Some(".com"), "/"), None);
        assert_eq!(t.lookup(Some("a..example.com"), "/"), Some(2));
    }

    #[test]
    fn ten_thousand_wildcards_each_find_their_own() {
        let mut routes: Vec<RouteConfig> = (0..10_000)
            .map(|i| {
                let host = format!("*.s{i}.example.com");
                route(&format!("w{i}"), &[host.as_str()], &["/*"])
            })
            .collect();
        routes.push(route("any", &["*"], &["/*"]));
        let t = RouteTable::new(&routes);
        for i in (0..10_000).step_by(97).chain([9_999]) {
            let host = format!("www.s{i}.example.com");
            assert_eq!(t.lookup(Some(&host), "/x"), Some(i), "{host}");
            let deeper = format!("a.b.S{i}.example.com:8080");
            assert_eq!(t.lookup(Some(&deeper), "/x"), Some(i), "{deeper}");
        }
        assert_eq!(t.lookup(Some("s1.example.com"), "/"), Some(10_000));
        assert_eq!(t.lookup(Some("www.s10000.example.com"), "/"), Some(10_000));
    }

    #[test]
    fn no_catch_all_means_no_route() {
        let t = RouteTable::new(&[route("only", &["a.test"], &["/*"])]);
        assert_eq!(t.lookup(Some("b.test"), "/"), None);
        assert_eq!(t.lookup(Some("a.test"), "/"), Some(0));
    }
}
