//! What changed between two config documents, one line per JSON path (`config diff`), paths
//! written as validation errors write them (`pools[0].origins[1].address`).
//!
//! - objects are compared key by key; a key only in the new document is added (`+`), only in
//!   the old one removed (`-`), in both with other values changed (`~`);
//! - arrays whose elements are all objects with a distinct string `name` (pools, origins,
//!   routes, …) are compared by name: an element renamed is one removed and one added, and
//!   when the elements kept changed order one more line says so (`~ routes: order …`);
//!   paths name the element's index in the new document (its index in the old one when
//!   removed);
//! - other arrays are compared index by index, the extra elements added or removed.
//!
//! Added, removed and changed values are printed whole, as compact JSON.

use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;

/// One change at one JSON path.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// A value only the new document has.
    Added {
        /// Where.
        path: String,
        /// The new value.
        value: Value,
    },
    /// A value only the old document has.
    Removed {
        /// Where.
        path: String,
        /// The old value.
        value: Value,
    },
    /// A value both have, different.
    Changed {
        /// Where.
        path: String,
        /// The old value.
        old: Value,
        /// The new value.
        new: Value,
    },
    /// The elements of a named array both have are in another order.
    Reordered {
        /// The array.
        path: String,
        /// Their names in the old order.
        old: Vec<String>,
        /// Their names in the new order.
        new: Vec<String>,
    },
}

impl Change {
    /// The JSON path the change is at.
    pub fn path(&self) -> &str {
        match self {
            Change::Added { path, .. }
            | Change::Removed { path, .. }
            | Change::Changed { path, .. }
            | Change::Reordered { path, .. } => path,
        }
    }
}

fn shown(path: &str) -> &str {
    if path.is_empty() { "(document)" } else { path }
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::Added { path, value } => write!(f, "+ {}: {value}", shown(path)),
            Change::Removed { path, value } => write!(f, "- {}: {value}", shown(path)),
            Change::Changed { path, old, new } => {
                write!(f, "~ {}: {old} -> {new}", shown(path))
            }
            Change::Reordered { path, old, new } => write!(
                f,
                "~ {}: order {} -> {}",
                shown(path),
                Value::from(old.clone()),
                Value::from(new.clone())
            ),
        }
    }
}

/// The changes from `old` to `new`, in document order (the new document's, removals where the
/// old one had them).
pub fn diff(old: &Value, new: &Value) -> Vec<Change> {
    let mut out = Vec::new();
    walk("", old, new, &mut out);
    out
}

/// `path.key`, or `path["key"]` for a key that is not a plain name.
fn key_path(path: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '$');
    match (plain, path.is_empty()) {
        (true, true) => key.to_string(),
        (true, false) => format!("{path}.{key}"),
        (false, _) => format!("{path}[{}]", Value::from(key)),
    }
}

fn walk(path: &str, old: &Value, new: &Value, out: &mut Vec<Change>) {
    if old == new {
        return;
    }
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, va) in a {
                if !b.contains_key(k) {
                    out.push(Change::Removed {
                        path: key_path(path, k),
                        value: va.clone(),
                    });
                }
            }
            for (k, vb) in b {
                let p = key_path(path, k);
                match a.get(k) {
                    Some(va) => walk(&p, va, vb, out),
                    None => out.push(Change::Added {
                        path: p,
                        value: vb.clone(),
                    }),
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => match (names(a), names(b)) {
            (Some(na), Some(nb)) => by_name(path, a, &na, b, &nb, out),
            _ => by_index(path, a, b, out),
        },
        _ => out.push(Change::Changed {
            path: path.to_string(),
            old: old.clone(),
            new: new.clone(),
        }),
    }
}

/// Each element's `name`, when every element is an object with a distinct string `name`.
fn names(items: &[Value]) -> Option<Vec<&str>> {
    let names: Vec<&str> = items
        .iter()
        .map(|v| v.get("name").and_then(Value::as_str))
        .collect::<Option<_>>()?;
    let mut sorted = names.clone();
    sorted.sort_unstable();
    sorted.dedup();
    (!names.is_empty() && sorted.len() == names.len()).then_some(names)
}

fn by_name(path: &str, a: &[Value], na: &[&str], b: &[Value], nb: &[&str], out: &mut Vec<Change>) {
    let old_at: BTreeMap<&str, usize> = na.iter().enumerate().map(|(i, n)| (*n, i)).collect();
    let new_at: BTreeMap<&str, usize> = nb.iter().enumerate().map(|(i, n)| (*n, i)).collect();
    for (i, (name, va)) in na.iter().zip(a).enumerate() {
        if !new_at.contains_key(name) {
            out.push(Change::Removed {
                path: format!("{path}[{i}]"),
                value: va.clone(),
            });
        }
    }
    let kept_old: Vec<String> = na
        .iter()
        .filter(|n| new_at.contains_key(*n))
        .map(|n| n.to_string())
        .collect();
    let kept_new: Vec<String> = nb
        .iter()
        .filter(|n| old_at.contains_key(*n))
        .map(|n| n.to_string())
        .collect();
    if kept_old != kept_new {
        out.push(Change::Reordered {
            path: path.to_string(),
            old: kept_old,
            new: kept_new,
        });
    }
    for (i, (name, vb)) in nb.iter().zip(b).enumerate() {
        let p = format!("{path}[{i}]");
        match old_at.get(name).and_then(|&j| a.get(j)) {
            Some(va) => walk(&p, va, vb, out),
            None => out.push(Change::Added {
                path: p,
                value: vb.clone(),
            }),
        }
    }
}

fn by_index(path: &str, a: &[Value], b: &[Value], out: &mut Vec<Change>) {
    for i in 0..a.len().max(b.len()) {
        let p = format!("{path}[{i}]");
        match (a.get(i), b.get(i)) {
            (Some(va), Some(vb)) => walk(&p, va, vb, out),
            (Some(va), None) => out.push(Change::Removed {
                path: p,
                value: va.clone(),
            }),
            (None, Some(vb)) => out.push(Change::Added {
                path: p,
                value: vb.clone(),
            }),
            (None, None) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn lines(old: Value, new: Value) -> Vec<String> {
        diff(&old, &new).iter().map(ToString::to_string).collect()
    }

    #[test]
    fn identical_documents_have_no_change() {
        let doc = json!({"pools": [{"name": "api", "origins": []}], "routes": []});
        assert!(diff(&doc, &doc).is_empty());
    }

    #[test]
    fn scalars_keys_and_nested_paths() {
        let old = json!({"node": {"region": "eu", "listen": "0.0.0.0:80"}, "gone": 1});
        let new = json!({"node": {"region": "us", "listen": "0.0.0.0:80", "threads": 2}});
        assert_eq!(
            lines(old, new),
            vec![
                "- gone: 1",
                r#"~ node.region: "eu" -> "us""#,
                "+ node.threads: 2",
            ]
        );
    }

    #[test]
    fn named_elements_are_matched_by_name_whatever_their_index() {
        let old = json!({"routes": [
            {"name": "a", "pool": "p"},
            {"name": "b", "pool": "p"},
            {"name": "c", "pool": "p"}
        ]});
        let new = json!({"routes": [
            {"name": "b", "pool": "q"},
            {"name": "c", "pool": "p"}
        ]});
        assert_eq!(
            lines(old, new),
            vec![
                r#"- routes[0]: {"name":"a","pool":"p"}"#,
                r#"~ routes[0].pool: "p" -> "q""#,
            ]
        );
    }

    #[test]
    fn a_new_order_of_named_elements_is_one_line() {
        let old = json!({"routes": [{"name": "a"}, {"name": "b"}]});
        let new = json!({"routes": [{"name": "b"}, {"name": "a"}, {"name": "c"}]});
        assert_eq!(
            lines(old, new),
            vec![
                r#"~ routes: order ["a","b"] -> ["b","a"]"#,
                r#"+ routes[2]: {"name":"c"}"#,
            ]
        );
    }

    #[test]
    fn other_arrays_compare_by_index() {
        let old = json!({"hosts": ["a", "b", "c"]});
        let new = json!({"hosts": ["a", "x"]});
        assert_eq!(
            lines(old, new),
            vec![r#"~ hosts[1]: "b" -> "x""#, r#"- hosts[2]: "c""#]
        );
        // Names repeated: by index.
        let old = json!([{"name": "a", "v": 1}, {"name": "a", "v": 2}]);
        let new = json!([{"name": "a", "v": 1}, {"name": "a", "v": 3}]);
        assert_eq!(lines(old, new), vec!["~ [1].v: 2 -> 3"]);
    }

    #[test]
    fn odd_keys_are_quoted_and_the_root_is_named() {
        let old = json!({"headers": {"x.y": "1"}});
        let new = json!({"headers": {"x.y": "2"}, "$schema": "s"});
        assert_eq!(
            lines(old, new),
            vec![r#"~ headers["x.y"]: "1" -> "2""#, r#"+ $schema: "s""#]
        );
        assert_eq!(
            lines(json!(1), json!("1")),
            vec![r#"~ (document): 1 -> "1""#]
        );
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            (0u8..4).prop_map(Value::from),
            "[ab]{1,2}".prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                prop::collection::btree_map("[abn]", inner.clone(), 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
                prop::collection::btree_map("[xyz]", inner, 0..3).prop_map(|m| {
                    Value::from(
                        m.into_iter()
                            .map(|(k, v)| json!({"name": k, "v": v}))
                            .collect::<Vec<_>>(),
                    )
                }),
            ]
        })
    }

    proptest! {
        /// No change exactly when equal, every path is distinct, and no line is empty.
        #[test]
        fn changes_exist_exactly_when_the_documents_differ(a in json_value(), b in json_value()) {
            let changes = diff(&a, &b);
            prop_assert_eq!(changes.is_empty(), a == b);
            let mut paths: Vec<String> = changes
                .iter()
                .filter(|c| !matches!(c, Change::Reordered { .. }))
                .map(|c| format!("{}{}", c.path(), matches!(c, Change::Removed { .. })))
                .collect();
            let n = paths.len();
            paths.sort();
            paths.dedup();
            prop_assert_eq!(paths.len(), n);
            prop_assert!(diff(&a, &a).is_empty());
        }
    }
}
