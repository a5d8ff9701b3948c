//! Config mutations for the property tests: the shipped configs, and deletions, type swaps,
//! out-of-range numbers and odd strings applied at any JSON path in them.

#![allow(dead_code)]

use proptest::prelude::*;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every config the project ships: `conf/*.json` (not the schema) and the JSON documents under
/// `deploy/` that are node configs (they have `pools`). Panics if there are none.
pub fn shipped() -> Vec<(String, Value)> {
    let mut files = Vec::new();
    let mut dirs = vec![root().join("conf"), root().join("deploy")];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "json")
                && !p.to_string_lossy().ends_with(".schema.json")
            {
                files.push(p);
            }
        }
    }
    files.sort();
    let mut out = Vec::new();
    for p in files {
        let text = std::fs::read_to_string(&p).unwrap_or_default();
        if let Ok(v) = serde_json::from_str::<Value>(&text) {
            if v.get("pools").is_some() {
                let name = p.strip_prefix(root()).unwrap_or(&p).display().to_string();
                out.push((name, v));
            }
        }
    }
    assert!(
        out.len() >= 3,
        "expected the shipped configs, found {out:?}"
    );
    out
}

/// Strings an operator (or an attacker with the admin token) might type. No DNS names other
/// than `localhost`: the edge test resolves what validates.
pub const ODD_STRINGS: &[&str] = &[
    "",
    " ",
    "a b",
    "\u{0}",
    "\r\n",
    "<>`\"{}",
    "/",
    "/a b",
    "/<script>",
    "//",
    "*",
    "*.",
    "..",
    "%zz",
    "é",
    "🦀",
    "-1",
    "0",
    "1e999",
    "true",
    "null",
    "GET",
    "get",
    "TRACE",
    "CONNECT",
    "PATCH ",
    "127.0.0.1:0",
    "127.0.0.1:1",
    "127.0.0.1:65535",
    "127.0.0.1:65536",
    "127.0.0.1",
    "0.0.0.0:0",
    "[::1]:1",
    "::1:80",
    "[::]:0",
    "localhost:1",
    "localhost:",
    ":80",
    "1.2.3.4.5:80",
    "256.0.0.1:80",
    "10.0.0.0/8",
    "0.0.0.0/0",
    "::/0",
    "10.0.0.1/33",
    "200-299",
    "299-200",
    "5xx",
    "local",
    "us-east",
    "X-Header",
    "bad header",
    "Host",
];

/// An odd JSON value: wrong types, out-of-range numbers, odd strings, empty containers.
pub fn odd_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        prop::sample::select(vec![
            json!(0),
            json!(-1),
            json!(1),
            json!(2),
            json!(64),
            json!(65),
            json!(100),
            json!(101),
            json!(65535),
            json!(65536),
            json!(4294967296u64),
            json!(u64::MAX),
            json!(i64::MIN),
            json!(0.5),
            json!(-0.0),
            json!(1e300),
            json!(f64::MIN_POSITIVE),
        ]),
        any::<i64>().prop_map(|n| json!(n)),
        prop::sample::select(ODD_STRINGS).prop_map(|s| json!(s)),
        "[ -~]{0,12}".prop_map(|s| json!(s)),
        (1usize..70_000).prop_map(|n| json!("a".repeat(n))),
        (1usize..9_000).prop_map(|n| json!(format!("/{}", "p".repeat(n)))),
        Just(json!([])),
        Just(json!({})),
        Just(json!([null])),
        Just(json!({"unknown": 1})),
        prop::sample::select(ODD_STRINGS).prop_map(|s| json!([s])),
    ]
}

/// Arbitrary JSON, a few levels deep.
pub fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        "[a-z_]{0,10}".prop_map(Value::String),
        prop::sample::select(ODD_STRINGS).prop_map(|s| json!(s)),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec(
                (
                    prop_oneof![
                        prop::sample::select(vec![
                            "node",
                            "pools",
                            "routes",
                            "certificates",
                            "name",
                            "origins",
                            "address",
                            "pool",
                            "hosts",
                            "paths",
                            "listen",
                            "region",
                        ])
                        .prop_map(str::to_string),
                        "[a-z_]{1,8}",
                    ],
                    inner
                ),
                0..6
            )
            .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// One change to a document, at the path picked by `at` among all its paths.
#[derive(Debug, Clone)]
pub enum Mutation {
    /// Remove the value (object field or array element).
    Delete(prop::sample::Index),
    /// Put another value there.
    Replace(prop::sample::Index, Value),
    /// Append a copy of an array's element (duplicate names, origins, routes...).
    Duplicate(prop::sample::Index),
    /// Swap a number for a nearby or extreme one.
    Nudge(prop::sample::Index, i64),
    /// Add a field with an unknown name to an object.
    Unknown(prop::sample::Index, String),
}

/// Any mutation.
pub fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        2 => any::<prop::sample::Index>().prop_map(Mutation::Delete),
        5 => (any::<prop::sample::Index>(), odd_value()).prop_map(|(i, v)| Mutation::Replace(i, v)),
        1 => any::<prop::sample::Index>().prop_map(Mutation::Duplicate),
        2 => (any::<prop::sample::Index>(), prop::sample::select(vec![-1i64, 1, -1000, 1000, 0, i64::MAX, i64::MIN]))
            .prop_map(|(i, d)| Mutation::Nudge(i, d)),
        1 => (any::<prop::sample::Index>(), "[a-z_]{1,10}").prop_map(|(i, k)| Mutation::Unknown(i, k)),
    ]
}

/// A shipped config (by index) and the mutations to apply to it.
pub fn mutated(count: usize) -> impl Strategy<Value = (usize, Vec<Mutation>)> {
    (0..count, prop::collection::vec(mutation(), 1..5))
}

/// `n` mutated copies of the `shipped` configs, drawn deterministically (the same documents on
/// every run), for tests that count what the mutations reach.
pub fn mutated_docs(shipped: &[(String, Value)], n: usize) -> Vec<Value> {
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = mutated(shipped.len());
    (0..n)
        .map(|_| {
            let (which, mutations) = strategy
                .new_tree(&mut runner)
                .map(|t| t.current())
                .unwrap_or_default();
            let mut doc = shipped[which].1.clone();
            for m in &mutations {
                apply(&mut doc, m);
            }
            doc
        })
        .collect()
}

/// A step of a JSON path.
#[derive(Debug, Clone)]
enum Step {
    Key(String),
    Index(usize),
}

/// Every path in `v` (the root included, as the empty path).
fn paths(v: &Value) -> Vec<Vec<Step>> {
    let mut out = vec![Vec::new()];
    let mut i = 0;
    while i < out.len() {
        let here = out[i].clone();
        if let Some(node) = get(v, &here) {
            match node {
                Value::Object(m) => {
                    for k in m.keys() {
                        let mut p = here.clone();
                        p.push(Step::Key(k.clone()));
                        out.push(p);
                    }
                }
                Value::Array(a) => {
                    for j in 0..a.len() {
                        let mut p = here.clone();
                        p.push(Step::Index(j));
                        out.push(p);
                    }
                }
                _ => {}
            }
        }
        i += 1;
    }
    out
}

fn get<'a>(v: &'a Value, path: &[Step]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, s| match s {
        Step::Key(k) => v.get(k),
        Step::Index(i) => v.get(*i),
    })
}

fn get_mut<'a>(v: &'a mut Value, path: &[Step]) -> Option<&'a mut Value> {
    path.iter().try_fold(v, |v, s| match s {
        Step::Key(k) => v.get_mut(k),
        Step::Index(i) => v.get_mut(*i),
    })
}

/// Applies `m` to `doc`.
pub fn apply(doc: &mut Value, m: &Mutation) {
    let all = paths(doc);
    let pick = |i: &prop::sample::Index| all[i.index(all.len())].clone();
    match m {
        Mutation::Delete(i) => {
            let p = pick(i);
            let Some((last, parent)) = p.split_last() else {
                return;
            };
            match (get_mut(doc, parent), last) {
                (Some(Value::Object(o)), Step::Key(k)) => {
                    o.remove(k);
                }
                (Some(Value::Array(a)), Step::Index(j)) if *j < a.len() => {
                    a.remove(*j);
                }
                _ => {}
            }
        }
        Mutation::Replace(i, v) => {
            if let Some(slot) = get_mut(doc, &pick(i)) {
                *slot = v.clone();
            }
        }
        Mutation::Duplicate(i) => {
            if let Some(Value::Array(a)) = get_mut(doc, &pick(i)) {
                if let Some(first) = a.first().cloned() {
                    a.push(first);
                }
            }
        }
        Mutation::Nudge(i, d) => {
            if let Some(slot) = get_mut(doc, &pick(i)) {
                if let Some(n) = slot.as_i64() {
                    *slot = json!(n.saturating_add(*d));
                } else if let Some(n) = slot.as_u64() {
                    *slot = json!(n.saturating_add_signed(*d));
                }
            }
        }
        Mutation::Unknown(i, k) => {
            if let Some(Value::Object(o)) = get_mut(doc, &pick(i)) {
                o.insert(k.clone(), json!(1));
            }
        }
    }
}
