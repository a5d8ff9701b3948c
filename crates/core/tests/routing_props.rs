//! Property tests of route matching against a reference model: the SPEC's rules applied by
//! scanning every route (exact host beats the longest `*.suffix` beats `*`; port ignored,
//! case-insensitive, trailing dot; then exact path beats the longest prefix; the first
//! route in document order wins a tie), with a handful and with 10,000 routes.

use portico_core::config::{HostPattern, PathPattern, RouteConfig, host_pattern, path_pattern};
use portico_core::routing::RouteTable;
use proptest::prelude::*;
use proptest::sample::Index;

/// The route `reference` picks for a request, written from the rules rather than for speed.
fn reference(routes: &[RouteConfig], host: Option<&str>, path: &str) -> Option<usize> {
    let host = host.map(normalize).unwrap_or_default();
    // How specific a host pattern is for this host, when it matches at all.
    let rank = |p: &HostPattern| match p {
        HostPattern::Exact(h) if *h == host => Some(usize::MAX),
        HostPattern::Suffix(s) if host.len() > s.len() && host.ends_with(s.as_str()) => {
            Some(s.len())
        }
        HostPattern::Any => Some(0),
        _ => None,
    };
    let mut best: Option<(usize, &HostPattern)> = None;
    for p in routes.iter().flat_map(|r| &r.hosts) {
        if let Some(k) = rank(p) {
            if best.is_none_or(|(b, _)| k > b) {
                best = Some((k, p));
            }
        }
    }
    let (_, winner) = best?;
    let claiming = || {
        routes
            .iter()
            .enumerate()
            .filter(|(_, r)| r.hosts.contains(winner))
    };
    for (i, r) in claiming() {
        if r.paths.contains(&PathPattern::Exact(path.to_string())) {
            return Some(i);
        }
    }
    let mut longest: Option<(usize, usize)> = None;
    for (i, r) in claiming() {
        for p in &r.paths {
            if let PathPattern::Prefix(prefix) = p {
                if path.starts_with(prefix.as_str())
                    && longest.is_none_or(|(len, _)| prefix.len() > len)
                {
                    longest = Some((prefix.len(), i));
                }
            }
        }
    }
    longest.map(|(_, i)| i)
}

/// The Host header as matched: no port, no trailing dot, lower case.
fn normalize(host: &str) -> String {
    let host = host.trim();
    let host = host.rsplit_once(':').map_or(host, |(h, _)| h);
    host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase()
}

/// A domain of one to four labels drawn from `labels`.
fn domain(labels: &'static [&'static str]) -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(labels), 1..=4).prop_map(|l| l.join("."))
}

/// `*`, an exact host or a `*.suffix`.
fn host(labels: &'static [&'static str]) -> impl Strategy<Value = HostPattern> {
    prop_oneof![
        1 => Just("*".to_string()),
        4 => domain(labels),
        4 => domain(labels).prop_map(|d| format!("*.{d}")),
    ]
    .prop_map(|h| host_pattern(&h).expect("valid host pattern"))
}

const PATHS: &[&str] = &["/", "/x", "/x/y", "/*", "/x/*", "/x/y/*", "/y/*"];
const REQUEST_PATHS: &[&str] = &["/", "/x", "/x/", "/x/y", "/x/y/z", "/y/1", "/z"];

fn route(labels: &'static [&'static str]) -> impl Strategy<Value = RouteConfig> {
    (
        prop::collection::vec(host(labels), 1..=3),
        prop::collection::vec(prop::sample::select(PATHS), 1..=3),
    )
        .prop_map(|(hosts, paths)| RouteConfig {
            name: String::new(),
            hosts,
            paths: paths
                .into_iter()
                .map(|p| path_pattern(p).expect("valid path pattern"))
                .collect(),
            pool: 0,
            https_redirect: false,
            compression: None,
            rule_sets: Vec::new(),
        })
}

/// What a client sends as Host: a name near one of the routes' patterns (so that requests
/// hit exact hosts and nested wildcards), or any name; in any case, maybe with a port or a
/// trailing dot; or no Host at all.
fn request_host(
    labels: &'static [&'static str],
) -> impl Strategy<Value = (Index, Option<String>, String, bool, bool, u8, bool)> {
    (
        any::<Index>(),
        prop::option::of(domain(labels)),
        domain(labels),
        any::<bool>(),
        any::<bool>(),
        0u8..3,
        prop::bool::weighted(0.05),
    )
}

/// Turns a `request_host` draw into a Host header for `routes`.
fn host_header(
    routes: &[RouteConfig],
    (pick, prefix, other, upper, dot, port, absent): (
        Index,
        Option<String>,
        String,
        bool,
        bool,
        u8,
        bool,
    ),
) -> Option<String> {
    if absent {
        return None;
    }
    let hosts: Vec<&HostPattern> = routes.iter().flat_map(|r| &r.hosts).collect();
    let near = match hosts[pick.index(hosts.len())] {
        HostPattern::Exact(h) => h.clone(),
        HostPattern::Suffix(s) => s.trim_start_matches('.').to_string(),
        HostPattern::Any => other,
    };
    let mut name = match prefix {
        Some(p) => format!("{p}.{near}"),
        None => near,
    };
    if upper {
        name = name.to_ascii_uppercase();
    }
    if dot {
        name.push('.');
    }
    match port {
        1 => name.push_str(":8080"),
        2 => name.push_str(":443"),
        _ => {}
    }
    Some(name)
}

/// Few labels: patterns nest and collide often.
const FEW: &[&str] = &["a", "b", "c", "ex"];

/// Many labels: thousands of distinct patterns.
const MANY: &[&str] = &[
    "a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m", "n", "o", "p", "q", "r", "s",
    "t", "u", "v", "w", "x", "y", "z", "a1", "b2", "c3", "d4", "e5", "f6", "g7", "h8", "i9", "j0",
    "api", "www", "eu", "us",
];

proptest! {
    #[test]
    fn lookup_agrees_with_the_reference(
        routes in prop::collection::vec(route(FEW), 1..40),
        requests in prop::collection::vec(
            (request_host(FEW), prop::sample::select(REQUEST_PATHS)),
            1..40,
        ),
    ) {
        let table = RouteTable::new(&routes);
        for (h, path) in requests {
            let host = host_header(&routes, h);
            prop_assert_eq!(
                table.lookup(host.as_deref(), path),
                reference(&routes, host.as_deref(), path),
                "Host {:?} path {}", host, path
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]

    #[test]
    fn lookup_agrees_with_the_reference_among_ten_thousand_routes(
        routes in prop::collection::vec(route(MANY), 10_000),
        requests in prop::collection::vec(
            (request_host(MANY), prop::sample::select(REQUEST_PATHS)),
            100,
        ),
    ) {
        let table = RouteTable::new(&routes);
        for (h, path) in requests {
            let host = host_header(&routes, h);
            prop_assert_eq!(
                table.lookup(host.as_deref(), path),
                reference(&routes, host.as_deref(), path),
                "Host {:?} path {}", host, path
            );
        }
    }
}
