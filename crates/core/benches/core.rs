//! Micro-benchmarks of the per-request core: route matching (3 and 50 routes, and 1 to 10,000
//! wildcard hosts), origin selection (3 and 50 origins) and rule-set evaluation with ten
//! realistic rules.

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use portico_core::config::{Config, parse};
use portico_core::health::ProbeResult;
use portico_core::pool_state::PoolState;
use portico_core::routing::RouteTable;
use portico_core::rules::{RequestFacts, Scheme, parse_rule_sets};
use portico_core::selection::next_rand;
use std::hint::black_box;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Origin counts every benchmark runs with.
const SIZES: [usize; 2] = [3, 50];

/// A config with `n` origins in one pool and `n` routes: `n - 2` exact hosts (each with an
/// exact `/health` and a `/api/vK/*` prefix, plus `/static/*` and `/api/*`), one
/// `*.example.com` wildcard and one catch-all `*` (where `wrk http://127.0.0.1:PORT/` lands).
fn config(n: usize) -> Config {
    let origins: Vec<String> = (0..n)
        .map(|i| {
            format!(
                r#"{{"name":"o{i}","address":"127.0.0.1:{}","priority":{},"weight":{}}}"#,
                10_000 + i,
                1 + i % 2,
                10 + (i * 37) % 90
            )
        })
        .collect();
    let mut routes: Vec<String> = (0..n - 2)
        .map(|i| {
            format!(
                r#"{{"name":"svc{i}","hosts":["svc{i}.example.com"],"paths":["/health","/api/*","/static/*","/api/v{i}/*"],"pool":"p"}}"#
            )
        })
        .collect();
    routes.push(r#"{"name":"wild","hosts":["*.example.com"],"paths":["/*"],"pool":"p"}"#.into());
    routes.push(r#"{"name":"any","hosts":["*"],"paths":["/*"],"pool":"p"}"#.into());
    let text = format!(
        r#"{{"pools":[{{"name":"p","origins":[{}]}}],"routes":[{}]}}"#,
        origins.join(","),
        routes.join(",")
    );
    parse(&text).expect("benchmark config is valid")
}

/// A pool brain whose origins have all been probed once, with latencies 1–100 ms, so the
/// latency band has to be computed.
fn brain(config: &Config) -> PoolState {
    let now = Instant::now();
    let pool = &config.pools[0];
    let mut brain = PoolState::new(pool, now);
    for i in 0..pool.origins.len() {
        let rtt = Duration::from_millis(1 + (i as u64 * 13) % 100);
        brain.record_probe(now, i, ProbeResult::Success(rtt));
    }
    brain
}

fn routing(c: &mut Criterion) {
    let mut group = c.benchmark_group("route_lookup");
    for n in SIZES {
        let config = config(n);
        let table = RouteTable::new(&config.routes);
        let last = n - 3;
        let svc = format!("svc{last}.example.com");
        let deep = format!("/api/v{last}/users/42");
        let cases: [(&str, Option<&str>, &str); 6] = [
            ("catch_all_ip_port", Some("127.0.0.1:8080"), "/"),
            ("exact_host_exact_path", Some(svc.as_str()), "/health"),
            (
                "exact_host_longest_prefix",
                Some(svc.as_str()),
                deep.as_str(),
            ),
            ("wildcard_host", Some("www.example.com"), "/index.html"),
            (
                "mixed_case_host_with_port",
                Some("WWW.Example.COM:443"),
                "/index.html",
            ),
            ("no_host_header", None, "/"),
        ];
        for (name, host, path) in cases {
            assert!(table.lookup(host, path).is_some(), "{name} must match");
            group.bench_with_input(BenchmarkId::new(name, n), &(host, path), |b, &(h, p)| {
                b.iter(|| table.lookup(black_box(h), black_box(p)))
            });
        }
    }
    group.finish();
}

/// `n` routes, each a wildcard host of its own (`*.sI.example.com`), and a catch-all.
fn wildcard_routes(n: usize) -> Config {
    let mut routes: Vec<String> = (0..n)
        .map(|i| format!(r#"{{"name":"w{i}","hosts":["*.s{i}.example.com"],"pool":"p"}}"#))
        .collect();
    routes.push(r#"{"name":"any","hosts":["*"],"pool":"p"}"#.into());
    let text = format!(
        r#"{{"pools":[{{"name":"p","origins":[{{"name":"o","address":"127.0.0.1:10000"}}]}}],"routes":[{}]}}"#,
        routes.join(",")
    );
    parse(&text).expect("benchmark config is valid")
}

/// Wildcard hosts cost one hash lookup per label of the Host, however many routes there are.
fn wildcard_routing(c: &mut Criterion) {
    let mut group = c.benchmark_group("route_lookup_wildcards");
    for n in [1, 1_000, 10_000] {
        let table = RouteTable::new(&wildcard_routes(n).routes);
        let last = format!("www.s{}.example.com", n - 1);
        let cases: [(&str, &str, Option<usize>); 3] = [
            ("last_wildcard", last.as_str(), Some(n - 1)),
            (
                "deep_miss_to_catch_all",
                "a.b.c.d.other.example.org",
                Some(n),
            ),
            ("mixed_case_with_port", "WWW.S0.Example.COM:443", Some(0)),
        ];
        for (name, host, want) in cases {
            assert_eq!(table.lookup(Some(host), "/"), want, "{name}");
            group.bench_with_input(BenchmarkId::new(name, n), &host, |b, &h| {
                b.iter(|| table.lookup(black_box(Some(h)), black_box("/index.html")))
            });
        }
    }
    group.finish();
}

fn selection(c: &mut Criterion) {
    let mut group = c.benchmark_group("origin_selection");
    for n in SIZES {
        let config = config(n);
        let mut brain = brain(&config);
        let now = Instant::now();
        group.bench_function(BenchmarkId::new("select", n), |b| {
            let mut rand = 1u64;
            b.iter(|| {
                rand = next_rand(rand);
                brain.select(now, black_box(0), rand)
            })
        });
        group.bench_function(BenchmarkId::new("select_retry_excluding_first", n), |b| {
            let mut rand = 1u64;
            b.iter(|| {
                rand = next_rand(rand);
                brain.select(now, black_box(0b1), rand)
            })
        });
        group.bench_function(BenchmarkId::new("band", n), |b| {
            b.iter(|| brain.band(black_box(0)))
        });
        // What the edge does for every request: count it for the retry budget, select, and
        // record the outcome, each under the pool's (uncontended) lock.
        let locked = Mutex::new(brain.clone());
        group.bench_function(BenchmarkId::new("request_under_lock", n), |b| {
            let mut rand = 1u64;
            b.iter(|| {
                let now = Instant::now();
                rand = next_rand(rand);
                locked.lock().unwrap().record_request(now);
                let idx = locked.lock().unwrap().select(now, 0, rand);
                if let Some(idx) = idx {
                    locked.lock().unwrap().record_outcome(now, idx, true);
                }
                idx
            })
        });
    }
    group.finish();
}

/// Ten rules of a realistic edge policy (issue 22's benchmark set): an IP block and a bot
/// block that do not match, security headers, a per-client rate limit, a redirect of old
/// docs, a versioned-path rewrite with a regex, a header-marked canary, an admin area closed
/// to the outside, CORS preflights and a request tag.
const TEN_RULES: &str = r#"[
  {"name":"global","rules":[
    {"name":"block-net","when":{"client_ips":["198.51.100.0/24","2001:db8:bad::/48"]},"then":{"respond":{"status":403,"body":"forbidden"}},"stop":true},
    {"name":"no-bots","when":{"headers":[{"name":"user-agent","regex":"(?i)(sqlmap|nikto|masscan)"}]},"then":{"respond":{"status":403}},"stop":true},
    {"name":"security-headers","then":{"response_headers":{"set":{"Strict-Transport-Security":"max-age=63072000; includeSubDomains","X-Content-Type-Options":"nosniff","X-Frame-Options":"DENY"}}}},
    {"name":"limit","then":{"rate_limit":{"key":"client_ip","requests_per_second":1000,"burst":2000}}}]},
  {"name":"api","rules":[
    {"name":"old-docs","when":{"paths":["/docs/*"]},"then":{"redirect":{"status":301,"location":"https://docs.example.com{path}"}},"stop":true},
    {"name":"v1","when":{"paths":["/api/v1/*"]},"then":{"rewrite":{"path_regex":{"pattern":"^/api/v1/(.*)$","replace":"/v1/{1}"}}}},
    {"name":"canary","when":{"headers":[{"name":"x-canary","equals":"1"}]},"then":{"pool":"p"}},
    {"name":"admin","when":{"paths":["/admin/*"],"not_client_ips":["10.0.0.0/8"]},"then":{"respond":{"status":404}},"stop":true},
    {"name":"cors","when":{"methods":["OPTIONS"],"headers":[{"name":"origin","present":true}]},"then":{"respond":{"status":204,"headers":{"access-control-allow-origin":"*"}}}},
    {"name":"tag","when":{"schemes":["https"]},"then":{"request_headers":{"add":{"x-edge":"portico"}}}}]}
]"#;

fn rules(c: &mut Criterion) {
    let mut group = c.benchmark_group("rules");
    let value = serde_json::from_str(TEN_RULES).expect("benchmark rules are JSON");
    let sets = parse_rule_sets(&value, "rule_sets", &["p"]).expect("benchmark rules are valid");
    let ids: Vec<_> = sets.names().filter_map(|n| sets.id(n)).collect();
    assert_eq!(sets.rule_count(), 10);
    let mut headers = http::HeaderMap::new();
    for (name, value) in [
        ("host", "api.example.com"),
        (
            "user-agent",
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/131.0",
        ),
        ("accept", "application/json"),
        ("accept-encoding", "gzip, br"),
        ("cookie", "session=abc123; theme=dark"),
    ] {
        headers.insert(name, http::HeaderValue::from_static(value));
    }
    let facts = |path| RequestFacts {
        method: "GET",
        scheme: Scheme::Http,
        host: "api.example.com",
        path,
        query: Some("page=2"),
        headers: &headers,
        client_ip: Some("192.0.2.10".parse().expect("an address")),
        request_id: "0af7651916cd43dd8448eb211c80319c",
    };
    // What a typical request pays: security headers and the rate limit apply, the regex
    // rewrite applies to /api/v1/, everything else is tested and does not match.
    let cases = [
        ("no_rule_sets", &[][..], "/api/v1/users/42", 0),
        ("ten_rules_typical", &ids[..], "/static/app.js", 2),
        ("ten_rules_with_rewrite", &ids[..], "/api/v1/users/42", 3),
    ];
    for (name, sets_of_route, path, matched) in cases {
        let f = facts(path);
        assert_eq!(
            sets.evaluate(sets_of_route, &f).matched.len(),
            matched,
            "{name}"
        );
        group.bench_function(name, |b| {
            b.iter(|| sets.evaluate(black_box(sets_of_route), black_box(&f)))
        });
    }
    group.finish();
}

fn criterion() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! {
    name = benches;
    config = criterion();
    targets = routing, wildcard_routing, selection, rules
}
criterion_main!(benches);
