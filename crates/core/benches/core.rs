//! Micro-benchmarks of the per-request core: route matching (3 and 50 routes, and 1 to 10,000
//! wildcard hosts) and origin selection (3 and 50 origins).

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use portico_core::config::{Config, parse};
use portico_core::health::ProbeResult;
use portico_core::pool_state::PoolState;
use portico_core::routing::RouteTable;
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

fn criterion() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! {
    name = benches;
    config = criterion();
    targets = routing, wildcard_routing, selection
}
criterion_main!(benches);
