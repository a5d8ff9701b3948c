//! The schema against validation: it is well formed, its defaults and ranges are validation's,
//! it states the documented constraints, and it never rejects a value that [`parse`] accepts.

use super::*;
use crate::config::parse;
use proptest::prelude::*;
use serde_json::json;
use std::sync::OnceLock;

fn validator() -> &'static jsonschema::Validator {
    static VALIDATOR: OnceLock<jsonschema::Validator> = OnceLock::new();
    VALIDATOR.get_or_init(|| {
        jsonschema::validator_for(&schema().to_value()).expect("the schema compiles")
    })
}

/// The schema's complaints about `doc`, one line each (empty: valid).
fn schema_errors(doc: &Value) -> Vec<String> {
    validator()
        .iter_errors(doc)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

fn minimal() -> Value {
    json!({
        "pools": [{"name": "api", "origins": [{"name": "a", "address": "127.0.0.1:9001"}]}],
        "routes": [{"name": "api", "pool": "api", "rule_sets": ["edge"]}],
        "rule_sets": [{"name": "edge", "rules": [{
            "name": "block",
            "when": {"paths": ["/blocked"]},
            "then": {
                "respond": {"status": 403},
                "rate_limit": {"key": "route", "requests_per_second": 100}
            }
        }]}]
    })
}

/// Where each object of the schema sits in [`minimal`]: its definition's name, its JSON
/// pointer and the path validation names it by.
const PLACES: &[(&str, &str, &str)] = &[
    ("Node", "/node", "node"),
    ("Limits", "/node/limits", "node.limits"),
    ("Pool", "/pools/0", "pools[0]"),
    (
        "HealthProbe",
        "/pools/0/health_probe",
        "pools[0].health_probe",
    ),
    (
        "LoadBalancing",
        "/pools/0/load_balancing",
        "pools[0].load_balancing",
    ),
    ("Timeouts", "/pools/0/timeouts", "pools[0].timeouts"),
    ("Failover", "/pools/0/failover", "pools[0].failover"),
    (
        "Retries",
        "/pools/0/failover/retries",
        "pools[0].failover.retries",
    ),
    (
        "Ejection",
        "/pools/0/failover/ejection",
        "pools[0].failover.ejection",
    ),
    (
        "Hedging",
        "/pools/0/failover/hedging",
        "pools[0].failover.hedging",
    ),
    ("Origin", "/pools/0/origins/0", "pools[0].origins[0]"),
    ("Route", "/routes/0", "routes[0]"),
    (
        "Compression",
        "/routes/0/compression",
        "routes[0].compression",
    ),
    ("Acme", "/acme", "acme"),
    ("Rule", "/rule_sets/0/rules/0", "rule_sets[0].rules[0]"),
    (
        "Respond",
        "/rule_sets/0/rules/0/then/respond",
        "rule_sets[0].rules[0].then.respond",
    ),
    (
        "RateLimit",
        "/rule_sets/0/rules/0/then/rate_limit",
        "rule_sets[0].rules[0].then.rate_limit",
    ),
];

fn place(def: &str) -> (&'static str, &'static str) {
    let (_, pointer, path) = PLACES
        .iter()
        .find(|(name, _, _)| *name == def)
        .unwrap_or_else(|| {
            panic!("$defs/{def} has defaults or ranges: add where it sits in a document to PLACES")
        });
    (pointer, path)
}

/// `doc` with `key` of the object at `pointer` set to `value` (objects created on the way).
fn with(mut doc: Value, pointer: &str, key: &str, value: Value) -> Value {
    let mut at = &mut doc;
    for segment in pointer.split('/').skip(1) {
        at = match segment.parse::<usize>() {
            Ok(index) => &mut at[index],
            Err(_) => at
                .as_object_mut()
                .expect("an object on the way")
                .entry(segment)
                .or_insert_with(|| json!({})),
        };
    }
    at.as_object_mut()
        .expect("an object")
        .insert(key.into(), value);
    doc
}

/// What `parse` says of `doc`: its errors, one line each (empty: valid).
fn parse_errors(doc: &Value) -> Vec<String> {
    match parse(&doc.to_string()) {
        Ok(_) => Vec::new(),
        Err(errors) => errors.0.iter().map(ToString::to_string).collect(),
    }
}

/// Every property of every definition: (definition, property, its schema).
fn properties() -> Vec<(String, String, Value)> {
    let schema = schema().to_value();
    let mut out = Vec::new();
    for (def, def_schema) in schema["$defs"].as_object().unwrap() {
        if let Some(props) = def_schema["properties"].as_object() {
            for (key, prop) in props {
                out.push((def.clone(), key.clone(), prop.clone()));
            }
        }
    }
    out
}

#[test]
fn schema_json_is_stable_pretty_and_ends_with_a_newline() {
    let text = schema_json();
    assert_eq!(text, schema_json());
    assert!(text.starts_with("{\n  \"$id\": "), "{}", &text[..40]);
    assert!(text.ends_with("}\n"));
    let value: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(value["$id"], SCHEMA_ID);
    assert_eq!(
        value["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    assert_eq!(value["title"], "Portico configuration");
    let defs: Vec<&String> = value["$defs"].as_object().unwrap().keys().collect();
    let mut sorted = defs.clone();
    sorted.sort();
    assert_eq!(defs, sorted, "$defs are sorted");
}

#[test]
fn the_schema_is_a_valid_draft_2020_12_schema() {
    let value = schema().to_value();
    if let Err(e) = jsonschema::meta::validate(&value) {
        panic!("not a valid JSON Schema: {e} at {}", e.instance_path());
    }
}

#[test]
fn every_field_has_a_description() {
    for (def, key, prop) in properties() {
        assert!(
            prop["description"].as_str().is_some_and(|d| !d.is_empty()),
            "$defs/{def}/properties/{key} has no description: give the raw field a doc comment"
        );
    }
    let schema = schema().to_value();
    for (key, prop) in schema["properties"].as_object().unwrap() {
        assert!(prop["description"].is_string(), "{key} has no description");
    }
}

#[test]
fn a_dollar_schema_key_is_accepted_and_ignored() {
    let plain = parse(&minimal().to_string()).unwrap();
    for reference in [
        json!("./portico.schema.json"),
        json!(SCHEMA_ID),
        json!(""),
        Value::Null,
    ] {
        let doc = with(minimal(), "", "$schema", reference.clone());
        let parsed = parse(&doc.to_string()).unwrap_or_else(|e| panic!("{reference}: {e}"));
        assert_eq!(parsed.node, plain.node);
        assert_eq!(parsed.pools, plain.pools);
        assert_eq!(parsed.routes, plain.routes);
        assert_eq!(schema_errors(&doc), Vec::<String>::new());
    }
    // A key of that shape anywhere else is still an unknown key, for both.
    let doc = with(minimal(), "/node", "$schema", json!("x"));
    assert!(!parse_errors(&doc).is_empty());
    assert!(!schema_errors(&doc).is_empty());
    let doc = with(minimal(), "", "$schemas", json!("x"));
    let errors = parse_errors(&doc);
    assert!(
        errors.len() == 1 && errors[0].starts_with("$schemas: unknown field `$schemas`"),
        "{errors:?}"
    );
    assert!(!schema_errors(&doc).is_empty());
}

#[test]
fn defaults_in_the_schema_are_those_of_validation() {
    let mut checked = 0;
    for (def, key, prop) in properties() {
        let Some(default) = prop.get("default") else {
            continue;
        };
        let (pointer, _) = place(&def);
        // An object whose presence turns a feature on (`routes[].compression`) is compared
        // with itself empty.
        let base = match pointer.rsplit_once('/') {
            Some((parent, last)) if minimal().pointer(pointer).is_none() => {
                with(minimal(), parent, last, json!({}))
            }
            _ => minimal(),
        };
        let plain = parse(&base.to_string()).unwrap();
        let doc = with(base, pointer, &key, default.clone());
        let parsed =
            parse(&doc.to_string()).unwrap_or_else(|e| panic!("{def}.{key} = {default}: {e}"));
        assert_eq!(
            (parsed.node, parsed.pools, parsed.routes),
            (plain.node, plain.pools, plain.routes),
            "{def}.{key}: the schema's default {default} is not validation's"
        );
        checked += 1;
    }
    assert!(checked >= 30, "only {checked} defaults");
}

#[test]
fn ranges_in_the_schema_are_those_of_validation() {
    let mut checked = 0;
    for (def, key, prop) in properties() {
        let (Some(lo), Some(hi)) = (prop["minimum"].as_i64(), prop["maximum"].as_i64()) else {
            continue;
        };
        let (pointer, path) = place(&def);
        let field = format!("{path}.{key}");
        let out_of_range = format!("{field}: must be between {lo} and {hi}");
        for v in [lo - 1, hi + 1] {
            let doc = with(minimal(), pointer, &key, json!(v));
            assert!(
                parse_errors(&doc)
                    .iter()
                    .any(|e| e.starts_with(&out_of_range)),
                "{field} = {v}: validation should say {out_of_range:?}, said {:?}",
                parse_errors(&doc)
            );
            assert!(
                !schema_errors(&doc).is_empty(),
                "{field} = {v}: schema accepts it"
            );
        }
        for v in [lo, hi] {
            let doc = with(minimal(), pointer, &key, json!(v));
            // Validation may still refuse it for a rule across fields (timeout_ms < interval_ms).
            assert!(
                !parse_errors(&doc)
                    .iter()
                    .any(|e| e.starts_with(&out_of_range)),
                "{field} = {v}: {:?}",
                parse_errors(&doc)
            );
            assert_eq!(schema_errors(&doc), Vec::<String>::new(), "{field} = {v}");
        }
        checked += 1;
    }
    assert!(checked >= 19, "only {checked} ranges");
}

/// The constraints of the spec that the schema states: each of these documents is invalid
/// for validation and for the schema alike.
#[test]
fn the_schema_states_the_documented_constraints() {
    let origin = "/pools/0/origins/0";
    let probe = "/pools/0/health_probe";
    let many_origins: Vec<Value> = (0..65)
        .map(|i| json!({"name": format!("o{i}"), "address": format!("10.0.0.1:{}", 1000 + i)}))
        .collect();
    let cases = [
        with(minimal(), "/pools/0", "name", json!("Api")),
        with(minimal(), origin, "name", json!("a b")),
        with(minimal(), "/routes/0", "name", json!("")),
        with(minimal(), "/node", "region", json!("EU")),
        with(minimal(), origin, "region", json!("eu.west")),
        with(minimal(), origin, "address", json!("10.0.0.1")),
        with(minimal(), origin, "address", json!("10.0.0.1:0")),
        with(minimal(), origin, "address", json!("10.0.0.1:65536")),
        with(minimal(), origin, "address", json!("::1:80")),
        with(minimal(), origin, "address", json!("http://a:80")),
        with(minimal(), origin, "host_header", json!("a b")),
        with(minimal(), origin, "host_header", json!("")),
        with(minimal(), origin, "priority", json!(0)),
        with(minimal(), origin, "weight", json!(1001)),
        with(minimal(), "/node", "listen", json!("localhost:8080")),
        with(minimal(), "/node", "listen", json!("0.0.0.0")),
        with(minimal(), "/node", "admin_listen", json!("256.0.0.1:9901")),
        with(minimal(), "/node", "admin_token_file", json!("  ")),
        with(minimal(), "/node", "access_log", json!("")),
        with(minimal(), "/node", "threads", json!(65)),
        with(minimal(), probe, "method", json!("POST")),
        with(minimal(), probe, "method", json!("get")),
        with(minimal(), probe, "path", json!("health")),
        with(minimal(), probe, "path", json!("/a b")),
        with(minimal(), probe, "expected_status", json!([])),
        with(minimal(), probe, "expected_status", json!([99])),
        with(minimal(), probe, "expected_status", json!([600])),
        with(minimal(), probe, "expected_status", json!(["2xx"])),
        with(minimal(), probe, "expected_status", json!(["200-600"])),
        with(minimal(), probe, "expected_status", json!([true])),
        with(minimal(), probe, "expected_status", json!(200)),
        with(minimal(), "/routes/0", "hosts", json!([])),
        with(minimal(), "/routes/0", "hosts", json!(["*.*"])),
        with(
            minimal(),
            "/routes/0",
            "hosts",
            json!(["api.example.com:443"]),
        ),
        with(minimal(), "/routes/0", "hosts", json!(["a*.example.com"])),
        with(minimal(), "/routes/0", "paths", json!(["api/*"])),
        with(minimal(), "/routes/0", "paths", json!(["/a*"])),
        with(minimal(), "/routes/0", "paths", json!(["/a/*/b"])),
        with(minimal(), "/routes/0", "paths", json!(["/a?b"])),
        with(minimal(), "/routes/0", "paths", json!([])),
        with(minimal(), "/routes/0", "pool", json!("API")),
        with(minimal(), "/pools/0", "origins", json!([])),
        with(minimal(), "/pools/0", "origins", Value::Array(many_origins)),
        with(minimal(), "/pools/0", "origins", Value::Null),
        with(minimal(), "", "pools", json!([])),
        with(minimal(), "", "routes", json!([])),
        with(minimal(), "", "listen", json!("0.0.0.0:80")),
        with(minimal(), origin, "weigth", json!(5)),
        json!({"pools": minimal()["pools"]}),
        json!({"routes": minimal()["routes"]}),
        json!({
            "pools": [{"name": "api", "origins": [{"name": "a"}]}],
            "routes": [{"name": "api", "pool": "api"}]
        }),
        json!({
            "pools": [{"name": "api", "origins": [{"address": "127.0.0.1:1"}]}],
            "routes": [{"pool": "api"}]
        }),
        json!([]),
        json!("pools"),
    ];
    for doc in cases {
        assert!(!parse_errors(&doc).is_empty(), "validation accepts {doc}");
        assert!(!schema_errors(&doc).is_empty(), "the schema accepts {doc}");
    }
}

/// Where a string field goes in [`minimal`], to try values in it.
#[derive(Debug, Clone, Copy)]
enum Field {
    PoolName,
    OriginName,
    RouteName,
    NodeRegion,
    OriginRegion,
    Listen,
    AdminListen,
    Address,
    HostHeader,
    ProbePath,
    Method,
    Host,
    Path,
    Status,
    TokenFile,
    AccessLog,
}

fn put(field: Field, value: Value) -> Value {
    let origin = "/pools/0/origins/0";
    let probe = "/pools/0/health_probe";
    match field {
        // The route names the pool, so only the name's own validity is in question.
        Field::PoolName => with(
            with(minimal(), "/pools/0", "name", value.clone()),
            "/routes/0",
            "pool",
            value,
        ),
        Field::OriginName => with(minimal(), origin, "name", value),
        Field::RouteName => with(minimal(), "/routes/0", "name", value),
        Field::NodeRegion => with(minimal(), "/node", "region", value),
        Field::OriginRegion => with(minimal(), origin, "region", value),
        Field::Listen => with(minimal(), "/node", "listen", value),
        Field::AdminListen => with(minimal(), "/node", "admin_listen", value),
        Field::Address => with(minimal(), origin, "address", value),
        Field::HostHeader => with(minimal(), origin, "host_header", value),
        Field::ProbePath => with(minimal(), probe, "path", value),
        Field::Method => with(minimal(), probe, "method", value),
        Field::Host => with(minimal(), "/routes/0", "hosts", json!([value])),
        Field::Path => with(minimal(), "/routes/0", "paths", json!([value])),
        Field::Status => with(minimal(), probe, "expected_status", json!([value])),
        Field::TokenFile => with(minimal(), "/node", "admin_token_file", value),
        Field::AccessLog => with(minimal(), "/node", "access_log", value),
    }
}

/// Checks one value: what validation accepts the schema accepts; where the schema's pattern is
/// exact (`exact`), what validation rejects the schema rejects too.
fn agree(field: Field, value: &str, exact: bool) -> Result<(), TestCaseError> {
    let doc = put(field, json!(value));
    let parsed = parse_errors(&doc);
    let schema = schema_errors(&doc);
    if parsed.is_empty() {
        prop_assert!(
            schema.is_empty(),
            "{field:?} {value:?}: validation accepts it, the schema says {schema:?}"
        );
    } else if exact {
        prop_assert!(
            !schema.is_empty(),
            "{field:?} {value:?}: validation says {parsed:?}, the schema accepts it"
        );
    }
    Ok(())
}

/// Characters validation treats specially: white space by Rust's and by ECMA-262's rules,
/// controls, a non-ASCII letter.
const ODD: &str = r"\t\n\x0B\x0C\r \x{85}\x{A0}\x{3000}\x{2028}\x{FEFF}\x{7F}\x00é";

fn re(pattern: &str) -> BoxedStrategy<String> {
    proptest::string::string_regex(pattern)
        .expect("a valid regex")
        .boxed()
}

fn name_like() -> impl Strategy<Value = String> {
    prop_oneof![
        re("[a-z0-9_-]{1,8}"),
        re("[a-zA-Z0-9_. -]{0,8}"),
        re(&format!("[a-z{ODD}]{{0,4}}")),
    ]
}

fn port_like() -> &'static str {
    "(0|[1-9][0-9]{0,4}|0[0-9]{1,6}|6553[0-9]|65535|\\+80|-1| 80)"
}

fn listen_like() -> impl Strategy<Value = String> {
    let octet = "(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9]|0[0-9]|256|999)";
    let v6 = "(::|::1|[0-9a-fA-F]{1,4}(:[0-9a-fA-F]{0,4}){1,8}|::ffff:1\\.2\\.3\\.4|fe80::1%[0-9a-z]{0,3}|[0-9a-f:.%]{0,8})";
    prop_oneof![
        re(&format!("{octet}(\\.{octet}){{2,4}}:{}", port_like())),
        re(&format!("\\[{v6}\\]:{}", port_like())),
        re(&format!("{v6}:{}", port_like())),
        re("[0-9a-z.:\\[\\]%+ ]{0,16}"),
    ]
}

fn address_like() -> impl Strategy<Value = String> {
    let label = "[A-Za-z0-9_-]{0,5}";
    let v6 = "(::|::1|[0-9a-fA-F]{1,4}(:[0-9a-fA-F]{0,4}){1,8}|::ffff:1\\.2\\.3\\.4|fe80::1%1|[0-9a-f:.%]{0,8})";
    prop_oneof![
        re(&format!("{label}(\\.{label}){{0,3}}:{}", port_like())),
        re(&format!("\\[{v6}\\]:{}", port_like())),
        re(&format!(
            "[0-9]{{1,3}}(\\.[0-9]{{1,3}}){{3}}:{}",
            port_like()
        )),
        re(&format!("[a-z0-9.:\\[\\]_{ODD}/-]{{0,10}}")),
    ]
}

fn host_like() -> impl Strategy<Value = String> {
    let label = "[a-zA-Z0-9_*-]{0,4}";
    prop_oneof![
        Just("*".to_string()),
        Just("*.".to_string()),
        re(&format!("(\\*\\.)?{label}(\\.{label}){{0,3}}\\.{{0,2}}")),
        re(&format!("[a-z0-9.*:{ODD}-]{{0,8}}")),
    ]
}

fn path_like() -> impl Strategy<Value = String> {
    prop_oneof![
        re("(/[a-z.*?#%]{0,4}){0,3}(/\\*|\\*)?"),
        re(&format!("/?[a-z/*{ODD}]{{0,6}}")),
        re("/[!-~]{0,8}"),
        re("[ -~]{0,8}"),
    ]
}

fn status_like() -> impl Strategy<Value = String> {
    let ws = r"[ \t\n\x{85}\x{A0}\x{3000}\x{FEFF}]{0,2}";
    let n = "[+-]?0{0,2}([1-5][0-9]{2}|[0-9]{1,4})";
    prop_oneof![
        re(&format!("{ws}{n}{ws}-{{1,2}}{ws}{n}{ws}")),
        re("[1-6][0-9]{2}-[1-6][0-9]{2}"),
        re("[0-9 +-]{0,9}"),
    ]
}

proptest! {
    #[test]
    fn names_agree_with_validation(value in name_like()) {
        for field in [Field::PoolName, Field::OriginName, Field::RouteName, Field::NodeRegion,
                      Field::OriginRegion] {
            agree(field, &value, true)?;
        }
    }

    #[test]
    fn listeners_agree_with_validation(value in listen_like()) {
        agree(Field::Listen, &value, false)?;
        agree(Field::AdminListen, &value, false)?;
    }

    #[test]
    fn addresses_agree_with_validation(value in address_like()) {
        agree(Field::Address, &value, false)?;
    }

    #[test]
    fn host_patterns_agree_with_validation(value in host_like()) {
        agree(Field::Host, &value, true)?;
    }

    #[test]
    fn path_patterns_agree_with_validation(value in path_like()) {
        agree(Field::Path, &value, true)?;
    }

    #[test]
    fn host_headers_agree_with_validation(value in re(&format!("[a-zA-Z0-9.:{ODD}-]{{0,8}}"))) {
        agree(Field::HostHeader, &value, true)?;
    }

    #[test]
    fn probe_paths_agree_with_validation(value in path_like()) {
        agree(Field::ProbePath, &value, false)?;
    }

    #[test]
    fn methods_agree_with_validation(value in re("(GET|HEAD|get|Head|POST|GET |)")) {
        agree(Field::Method, &value, true)?;
    }

    #[test]
    fn status_ranges_agree_with_validation(value in status_like()) {
        agree(Field::Status, &value, false)?;
    }

    #[test]
    fn status_numbers_agree_with_validation(value in prop_oneof![
        (0i64..1000).prop_map(|n| json!(n)),
        (0.0f64..1000.0).prop_map(|n| json!(n)),
        Just(json!(200.0)),
        Just(json!(-200)),
    ]) {
        let doc = put(Field::Status, value.clone());
        let parsed = parse_errors(&doc);
        let schema = schema_errors(&doc);
        prop_assert!(!parsed.is_empty() || schema.is_empty(), "{value}: {schema:?}");
        if value.is_i64() {
            prop_assert_eq!(parsed.is_empty(), schema.is_empty(), "{}", value);
        }
    }

    #[test]
    fn files_agree_with_validation(value in re(&format!("[a/{ODD}]{{0,3}}"))) {
        agree(Field::TokenFile, &value, true)?;
        agree(Field::AccessLog, &value, true)?;
    }
}
