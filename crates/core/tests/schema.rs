//! The committed JSON Schema, `conf/portico.schema.json`: it is what `portico schema` prints,
//! the repository's config files follow it, and every document `parse` accepts follows it.
//! The configuration reference generated from it, `docs/configuration-reference.md`, is what
//! `portico schema --markdown` prints.

use portico_core::config::{
    REFERENCE_COMMAND, REFERENCE_PATH, parse, reference_markdown, schema_json,
};
use proptest::prelude::*;
use serde_json::{Map, Value, json};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

const COMMITTED: &str = "conf/portico.schema.json";

fn validator() -> &'static jsonschema::Validator {
    static VALIDATOR: OnceLock<jsonschema::Validator> = OnceLock::new();
    VALIDATOR.get_or_init(|| {
        let schema: Value = serde_json::from_str(&schema_json()).unwrap();
        jsonschema::validator_for(&schema).expect("the schema compiles")
    })
}

fn schema_errors(doc: &Value) -> Vec<String> {
    validator()
        .iter_errors(doc)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

#[test]
fn the_committed_schema_is_up_to_date() {
    let path = repo().join(COMMITTED);
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == schema_json(),
        "{COMMITTED} is stale (or missing): the raw config types changed. Regenerate it with\n\n    \
         cargo run -p portico -- schema > {COMMITTED}\n"
    );
}

#[test]
fn the_committed_configuration_reference_is_up_to_date() {
    let path = repo().join(REFERENCE_PATH);
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == reference_markdown(),
        "{REFERENCE_PATH} is stale (or missing): the config types or their doc comments changed. \
         Regenerate it with\n\n    {REFERENCE_COMMAND}\n"
    );
}

/// Every `.json` file under `dir`, recursively, sorted.
fn json_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            json_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "json") {
            out.push(path);
        }
    }
    out.sort();
}

/// Whether a JSON document is meant as a Portico config: an object with `pools`, `routes` or
/// `$schema`. Other JSON files (the simulator's topology, dashboards) are skipped.
fn meant_as_config(doc: &Value) -> bool {
    doc.as_object().is_some_and(|o| {
        o.contains_key("pools") || o.contains_key("routes") || o.contains_key("$schema")
    })
}

/// The config files of the repository follow the schema. A file is taken for a config by its
/// shape ([`meant_as_config`]), not by whether `parse` accepts it: a config that does not parse
/// fails here instead of being skipped, and new files need no list kept up to date.
#[test]
fn every_config_file_in_conf_and_deploy_follows_the_schema() {
    let mut files = Vec::new();
    json_files(&repo().join("conf"), &mut files);
    json_files(&repo().join("deploy"), &mut files);
    let mut configs = Vec::new();
    let mut problems = Vec::new();
    for path in &files {
        let shown = path
            .strip_prefix(repo())
            .unwrap_or(path)
            .display()
            .to_string();
        if shown == COMMITTED {
            continue;
        }
        let text = std::fs::read_to_string(path).unwrap();
        let doc: Value = match serde_json::from_str(&text) {
            Ok(doc) => doc,
            Err(e) => {
                problems.push(format!("{shown}: not JSON: {e}"));
                continue;
            }
        };
        if !meant_as_config(&doc) {
            eprintln!("skipped {shown}: not a Portico config");
            continue;
        }
        if let Err(errors) = parse(&text) {
            problems.push(format!("{shown}: parse says:\n{errors}"));
        }
        for e in schema_errors(&doc) {
            problems.push(format!("{shown}: the schema says {e}"));
        }
        configs.push(shown);
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    for expected in [
        "conf/local.json",
        "conf/multi-pool.json",
        "deploy/sim/portico.json",
    ] {
        assert!(
            configs.iter().any(|c| c == expected),
            "{expected} was not checked: {configs:?}"
        );
    }
}

// Generated documents: valid by construction (names, addresses, ranges and the rules across
// fields), with optional keys absent, `null` or set. Each must parse and follow the schema.

/// A key left out, set to `null`, or set to a value of `value`.
fn opt(value: impl Strategy<Value = Value> + 'static) -> BoxedStrategy<Option<Value>> {
    prop_oneof![
        2 => Just(None),
        1 => Just(Some(Value::Null)),
        4 => value.prop_map(Some),
    ]
    .boxed()
}

fn object(fields: Vec<(&str, Option<Value>)>) -> Value {
    let mut o = Map::new();
    for (key, value) in fields {
        if let Some(v) = value {
            o.insert(key.into(), v);
        }
    }
    Value::Object(o)
}

fn int(lo: i64, hi: i64) -> impl Strategy<Value = Value> {
    prop_oneof![Just(lo), Just(hi), lo..=hi].prop_map(|n| json!(n))
}

fn name() -> impl Strategy<Value = String> {
    "[a-z0-9_-]{1,10}"
}

fn listener(port: u16) -> impl Strategy<Value = String> {
    prop_oneof![
        Just(format!("127.0.0.1:{port}")),
        Just(format!("0.0.0.0:{port}")),
        Just(format!("[::1]:{port}")),
        Just(format!("[::]:0{port}")),
        (0u8..=255, 0u8..=255).prop_map(move |(a, b)| format!("10.{a}.{b}.1:{port}")),
    ]
}

fn node() -> impl Strategy<Value = Value> {
    (
        opt(name().prop_map(Value::from)),
        opt(listener(8080).prop_map(Value::from)),
        opt(listener(9901).prop_map(Value::from)),
        opt(int(1, 64)),
        opt(int(0, 600_000)),
        opt(prop_oneof![
            Just(json!("stdout")),
            Just(json!("/var/log/portico.log"))
        ]),
        opt(Just(json!("/etc/portico/token"))),
    )
        .prop_map(
            |(region, listen, admin_listen, threads, drain, access_log, token)| {
                object(vec![
                    ("region", region),
                    ("listen", listen),
                    ("admin_listen", admin_listen),
                    ("threads", threads),
                    ("drain_ms", drain),
                    ("access_log", access_log),
                    ("admin_token_file", token),
                ])
            },
        )
}

fn status() -> impl Strategy<Value = Value> {
    prop_oneof![
        (100i64..=599).prop_map(|n| json!(n)),
        (100u16..=599, 0u16..=100, 0usize..4).prop_map(|(lo, span, style)| {
            let hi = (lo + span).min(599);
            json!(match style {
                0 => format!("{lo}-{hi}"),
                1 => format!("{lo} - {hi}"),
                2 => format!("0{lo}-+{hi}"),
                _ => format!(" {lo}-{hi}\t"),
            })
        }),
    ]
}

fn probe() -> impl Strategy<Value = Value> {
    (
        opt(prop_oneof![
            Just(json!("/")),
            Just(json!("/healthz")),
            Just(json!("/status?full=1")),
            "/[a-z0-9._~-]{1,8}(/[a-z0-9._~-]{1,8}){0,2}".prop_map(Value::from),
        ]),
        opt(prop_oneof![Just(json!("GET")), Just(json!("HEAD"))]),
        // interval, and a timeout below it
        prop_oneof![Just(10i64), Just(3_600_000), 10i64..=3_600_000].prop_flat_map(|interval| {
            (
                Just(interval),
                prop_oneof![Just(1i64), Just(interval - 1), 1..interval],
            )
        }),
        prop::bool::ANY,
        opt(prop::collection::vec(status(), 1..4).prop_map(Value::from)),
    )
        .prop_map(|(path, method, (interval, timeout), timing, expected)| {
            let (interval, timeout) = if timing {
                (Some(json!(interval)), Some(json!(timeout)))
            } else {
                (None, None)
            };
            object(vec![
                ("path", path),
                ("method", method),
                ("interval_ms", interval),
                ("timeout_ms", timeout),
                ("expected_status", expected),
            ])
        })
}

fn load_balancing() -> impl Strategy<Value = Value> {
    (1i64..=100)
        .prop_flat_map(|size| (Just(size), 1..=size))
        .prop_flat_map(|(size, required)| {
            (
                Just(json!(size)),
                Just(json!(required)),
                opt(int(0, 3_600_000)),
            )
        })
        .prop_map(|(size, required, sensitivity)| {
            object(vec![
                ("sample_size", Some(size)),
                ("successful_samples_required", Some(required)),
                ("latency_sensitivity_ms", sensitivity),
            ])
        })
}

fn failover() -> impl Strategy<Value = Value> {
    let retries = (
        opt(prop::bool::ANY.prop_map(Value::from)),
        opt(int(1, 10)),
        opt(int(0, 100)),
        opt(int(0, 100_000)),
        opt(int(100, 600_000)),
    )
        .prop_map(|(enabled, attempts, percent, min, window)| {
            object(vec![
                ("enabled", enabled),
                ("max_attempts", attempts),
                ("budget_percent", percent),
                ("budget_min_per_second", min),
                ("budget_window_ms", window),
            ])
        });
    let ejection = (
        opt(prop::bool::ANY.prop_map(Value::from)),
        opt(int(1, 100_000)),
        (1i64..=3_600_000).prop_flat_map(|base| (Just(base), base..=86_400_000)),
        opt(int(0, 100)),
    )
        .prop_map(|(enabled, failures, (base, max), percent)| {
            object(vec![
                ("enabled", enabled),
                ("consecutive_failures", failures),
                ("base_ejection_ms", Some(json!(base))),
                ("max_ejection_ms", Some(json!(max))),
                ("max_ejected_percent", percent),
            ])
        });
    (opt(retries), opt(ejection))
        .prop_map(|(retries, ejection)| object(vec![("retries", retries), ("ejection", ejection)]))
}

/// Origin `i` of a pool: the index keeps names and addresses unique.
fn origin(i: usize) -> impl Strategy<Value = Value> {
    let port = 1000 + i as u16;
    (
        name(),
        prop_oneof![
            Just(format!("127.0.0.1:{port}")),
            Just(format!("[::1]:{port}")),
            Just(format!("[2001:db8::{i:x}]:443")),
            "[a-z][a-z0-9-]{0,8}(\\.[a-z0-9_-]{1,8}){0,2}"
                .prop_map(move |h| format!("{h}-{i}:{port}")),
            Just(format!("API-{i}.Example.COM:0{port}")),
        ],
        opt(int(1, 5)),
        opt(int(1, 1000)),
        opt(prop::bool::ANY.prop_map(Value::from)),
        opt(name().prop_map(Value::from)),
        opt("[a-z0-9.-]{1,12}(:[0-9]{1,5})?".prop_map(Value::from)),
    )
        .prop_map(
            move |(name, address, priority, weight, enabled, region, host_header)| {
                object(vec![
                    ("name", Some(json!(format!("{name}-{i}")))),
                    ("address", Some(json!(address))),
                    ("priority", priority),
                    ("weight", weight),
                    ("enabled", enabled),
                    ("region", region),
                    ("host_header", host_header),
                ])
            },
        )
}

fn pool(i: usize) -> impl Strategy<Value = Value> {
    (
        name(),
        opt(probe()),
        opt(load_balancing()),
        opt((opt(int(1, 600_000)), opt(int(1, 3_600_000)))
            .prop_map(|(c, r)| object(vec![("connect_ms", c), ("response_ms", r)]))),
        opt(failover()),
        (1usize..=5).prop_flat_map(|n| (0..n).map(origin).collect::<Vec<_>>()),
    )
        .prop_map(move |(name, probe, lb, timeouts, failover, origins)| {
            object(vec![
                ("name", Some(json!(format!("{name}-{i}")))),
                ("health_probe", probe),
                ("load_balancing", lb),
                ("timeouts", timeouts),
                ("failover", failover),
                ("origins", Some(json!(origins))),
            ])
        })
}

/// Route `i`: its hosts are its own, so no two routes claim a host and path. Only the first
/// route may leave `hosts` out (`["*"]`) or take `*`.
fn route(i: usize, pools: Vec<String>) -> impl Strategy<Value = Value> {
    let host = prop_oneof![
        Just(format!("api-{i}.example.com")),
        Just(format!("*.r{i}.example.org")),
        Just(format!("WWW.R{i}.Example.Net.")),
        Just(format!("r{i}")),
    ];
    let hosts = if i == 0 {
        opt(prop_oneof![
            Just(vec!["*".to_string()]),
            prop::collection::vec(host, 1..3)
        ]
        .prop_map(Value::from))
    } else {
        prop::collection::vec(host, 1..3)
            .prop_map(|h| Some(Value::from(h)))
            .boxed()
    };
    let path = prop_oneof![
        Just("/*".to_string()),
        Just("/".to_string()),
        "(/[a-z0-9._~-]{1,6}){1,3}(/\\*)?",
    ];
    (
        name(),
        hosts,
        opt(prop::collection::vec(path, 1..3).prop_map(Value::from)),
        prop::sample::select(pools),
    )
        .prop_map(move |(name, hosts, paths, pool)| {
            object(vec![
                ("name", Some(json!(format!("{name}-{i}")))),
                ("hosts", hosts),
                ("paths", paths),
                ("pool", Some(json!(pool))),
            ])
        })
}

fn config() -> impl Strategy<Value = Value> {
    (1usize..=3)
        .prop_flat_map(|n| (0..n).map(pool).collect::<Vec<_>>())
        .prop_flat_map(|pools| {
            let names: Vec<String> = pools
                .iter()
                .map(|p| p["name"].as_str().unwrap().to_string())
                .collect();
            (
                Just(pools),
                (1usize..=3).prop_flat_map(move |n| {
                    (0..n).map(|i| route(i, names.clone())).collect::<Vec<_>>()
                }),
                opt(node()),
                opt(Just(json!("./portico.schema.json"))),
            )
        })
        .prop_map(|(pools, routes, node, schema)| {
            object(vec![
                ("$schema", schema),
                ("node", node),
                ("pools", Some(json!(pools))),
                ("routes", Some(json!(routes))),
            ])
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn documents_that_parse_follow_the_schema(doc in config()) {
        let text = serde_json::to_string_pretty(&doc).unwrap();
        if let Err(e) = parse(&text) {
            // The generator makes valid documents only; one that does not parse is a bug here
            // (or a rule of validation this generator does not know yet).
            return Err(TestCaseError::fail(format!("generated an invalid document:\n{e}\n{text}")));
        }
        let errors = schema_errors(&doc);
        prop_assert!(errors.is_empty(), "parse accepts it, the schema says {errors:?}\n{text}");
    }
}
