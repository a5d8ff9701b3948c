//! The configuration reference, `docs/configuration-reference.md`: one table per object of the
//! config document (field, type, default, bounds, live or restart-only, description),
//! generated from the JSON Schema ([`super::schema`]), so its descriptions are the config
//! fields' doc comments and its restart-only marks are [`crate::reload::restart_only_fields`].
//! `portico schema --markdown` prints it; a test keeps the committed file current.

use super::schema::schema;
use crate::reload::restart_only_fields;
use serde_json::{Map, Value};
use std::fmt::Write;

/// Where the reference is committed, relative to the repository root.
pub const REFERENCE_PATH: &str = "docs/configuration-reference.md";

/// The command that regenerates [`REFERENCE_PATH`].
pub const REFERENCE_COMMAND: &str =
    "cargo run -p portico -- schema --markdown > docs/configuration-reference.md";

/// Patterns longer than this are left to the schema: a table cell cannot hold them legibly.
const LONGEST_PATTERN_SHOWN: usize = 40;

/// One object of the document: its path (`pools[].health_probe`), what it is, its fields.
struct Section {
    path: String,
    description: String,
    rows: Vec<Row>,
}

/// One field of an object.
struct Row {
    path: String,
    kind: String,
    default: String,
    bounds: String,
    live: String,
    description: String,
}

/// GitHub's anchor for a Markdown heading: lowercase, punctuation dropped (but `-` and `_`),
/// spaces turned into `-`.
pub fn github_anchor(heading: &str) -> String {
    heading
        .chars()
        .flat_map(char::to_lowercase)
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// The reference as Markdown, with a trailing newline: what `portico schema --markdown` prints
/// and `docs/configuration-reference.md` holds.
pub fn reference_markdown() -> String {
    render(&schema().to_value())
}

/// The reference of a given schema (the config's, or a test's).
fn render(root: &Value) -> String {
    let empty = Map::new();
    let defs = root
        .get("$defs")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let restart: Vec<&str> = restart_only_fields().collect();
    let mut sections = Vec::new();
    let description = root
        .get("description")
        .and_then(Value::as_str)
        .unwrap_or("The document itself.")
        .to_string();
    walk(root, "", description, defs, &restart, &mut sections);

    let mut out = String::new();
    out.push_str("# Configuration reference\n\n");
    let _ = writeln!(
        out,
        "<!-- Generated from the config types' doc comments by `portico schema --markdown`; do not \
         edit. Regenerate with: {REFERENCE_COMMAND} -->\n"
    );
    out.push_str(
        "Every field of the configuration document, one table per object, generated from the \
         JSON Schema (`portico schema`, [`conf/portico.schema.json`](../conf/portico.schema.json)), \
         whose descriptions are the config types' doc comments. How the pieces fit together, with \
         an annotated example and the rules that span fields: [configuration.md](configuration.md).\n\n",
    );
    out.push_str(
        "- **Path**: the field's place in the document; `[]` is any item of a list.\n\
         - **Default**: what a field left out (or, where the type allows it, `null`) means; \
         *required* fields have none.\n\
         - **Bounds**: what the schema checks; validation (`portico --config FILE --check`) \
         also checks the rules across fields.\n\
         - **Applies**: *live* fields change with a reload (SIGHUP, `PUT /config`, the store); \
         *restart* fields reject a reload that changes them \
         ([what needs a restart](changing-config.md#what-needs-a-restart)).\n\n",
    );
    let contents: Vec<String> = sections
        .iter()
        .map(|s| {
            let title = heading(&s.path);
            format!("[{title}](#{})", github_anchor(&title))
        })
        .collect();
    let _ = writeln!(out, "Objects: {}.\n", contents.join(" · "));
    for section in &sections {
        let _ = writeln!(out, "## {}\n", heading(&section.path));
        let _ = writeln!(out, "{}\n", cell(&section.description));
        out.push_str("| Path | Type | Default | Bounds | Applies | Description |\n");
        out.push_str("|---|---|---|---|---|---|\n");
        for row in &section.rows {
            let _ = writeln!(
                out,
                "| `{}` | {} | {} | {} | {} | {} |",
                row.path,
                cell(&row.kind),
                cell(&row.default),
                cell(&row.bounds),
                row.live,
                cell(&row.description)
            );
        }
        out.push('\n');
    }
    // One trailing newline, like `schema_json`.
    while out.ends_with("\n\n") {
        out.pop();
    }
    out
}

/// A section's heading: the object's path in code, or "Top level".
fn heading(path: &str) -> String {
    if path.is_empty() {
        "Top level".to_string()
    } else {
        format!("`{path}`")
    }
}

/// Text for one table cell: on one line, `|` escaped.
fn cell(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace('|', "\\|")
}

/// The definition a `$ref` names, if it is one of `defs`.
fn deref<'a>(value: &'a Value, defs: &'a Map<String, Value>) -> Option<&'a Value> {
    let name = value
        .get("$ref")
        .and_then(Value::as_str)?
        .strip_prefix("#/$defs/")?;
    defs.get(name)
}

/// A field's own schema with an optional object unwrapped: `anyOf: [{$ref}, {type: null}]`
/// becomes the referenced definition; a `$ref` its definition. Also says whether `null` is
/// allowed.
fn resolve<'a>(value: &'a Value, defs: &'a Map<String, Value>) -> (&'a Value, bool) {
    if let Some(def) = deref(value, defs) {
        return (def, false);
    }
    if let Some(alternatives) = value.get("anyOf").and_then(Value::as_array) {
        let nullable = alternatives.iter().any(is_null_type);
        let others: Vec<&Value> = alternatives.iter().filter(|a| !is_null_type(a)).collect();
        if let [only] = others.as_slice() {
            return (deref(only, defs).unwrap_or(only), nullable);
        }
    }
    (value, types(value).contains(&"null"))
}

/// Whether a schema is exactly `{"type": "null"}`.
fn is_null_type(value: &Value) -> bool {
    value.get("type").and_then(Value::as_str) == Some("null")
}

/// The `type` keyword as a list (`"string"` or `["string", "null"]`).
fn types(value: &Value) -> Vec<&str> {
    match value.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// Whether a (resolved) schema is an object with fields of its own.
fn is_object(value: &Value) -> bool {
    value.get("properties").is_some_and(Value::is_object)
}

/// The type column: `integer`, `string`, `object`, `array of string`, `integer or string`, …
fn kind(value: &Value, defs: &Map<String, Value>) -> String {
    let (value, _) = resolve(value, defs);
    if is_object(value) {
        return "object".to_string();
    }
    if let Some(alternatives) = value.get("anyOf").and_then(Value::as_array) {
        return alternatives
            .iter()
            .filter(|a| !is_null_type(a))
            .map(|a| kind(a, defs))
            .collect::<Vec<_>>()
            .join(" or ");
    }
    let named: Vec<&str> = types(value).into_iter().filter(|t| *t != "null").collect();
    if named == ["array"] {
        return match value.get("items") {
            Some(items) if is_object(resolve(items, defs).0) => "array of objects".to_string(),
            Some(items) => match kind(items, defs) {
                k if k.contains(" or ") => format!("array of ({k})"),
                k => format!("array of {k}"),
            },
            None => "array".to_string(),
        };
    }
    named.join(" or ")
}

/// The bounds column: ranges, lengths, item counts, enums and short patterns.
fn bounds(value: &Value, defs: &Map<String, Value>) -> String {
    let (value, _) = resolve(value, defs);
    if is_object(value) {
        return String::new();
    }
    if let Some(alternatives) = value.get("anyOf").and_then(Value::as_array) {
        return alternatives
            .iter()
            .filter(|a| !is_null_type(a))
            .map(|a| {
                let b = bounds(a, defs);
                let k = kind(a, defs);
                if b.is_empty() {
                    k
                } else {
                    format!("{k} ({b})")
                }
            })
            .collect::<Vec<_>>()
            .join(" or ");
    }
    let mut parts = Vec::new();
    let number = |key: &str| value.get(key).and_then(Value::as_i64);
    match (number("minimum"), number("maximum")) {
        (Some(lo), Some(hi)) => parts.push(format!("{lo}–{hi}")),
        (Some(lo), None) => parts.push(format!("≥ {lo}")),
        (None, Some(hi)) => parts.push(format!("≤ {hi}")),
        (None, None) => {}
    }
    if let Some(n) = number("maxLength") {
        parts.push(format!("at most {n} characters"));
    }
    if let Some(n) = number("minItems") {
        parts.push(format!("at least {n} {}", plural(n, "item")));
    }
    if let Some(n) = number("maxItems") {
        parts.push(format!("at most {n} {}", plural(n, "item")));
    }
    if let Some(values) = value.get("enum").and_then(Value::as_array) {
        let shown: Vec<String> = values
            .iter()
            .filter(|v| !v.is_null())
            .map(|v| {
                format!(
                    "`{}`",
                    v.as_str().map_or_else(|| v.to_string(), str::to_string)
                )
            })
            .collect();
        parts.push(format!("one of {}", shown.join(", ")));
    }
    if let Some(pattern) = value.get("pattern").and_then(Value::as_str) {
        if pattern.chars().count() <= LONGEST_PATTERN_SHOWN {
            parts.push(format!("matches `{pattern}`"));
        } else {
            parts.push("matches a pattern in the schema".to_string());
        }
    }
    if let Some(items) = value.get("items") {
        let each = bounds(items, defs);
        if !each.is_empty() {
            parts.push(format!("each: {each}"));
        }
    }
    parts.join(", ")
}

/// `item` or `items`.
fn plural(n: i64, word: &str) -> String {
    if n == 1 {
        word.to_string()
    } else {
        format!("{word}s")
    }
}

/// The default column: the schema's `default` as JSON, *required*, or `—`.
fn default(value: &Value, required: bool) -> String {
    match value.get("default") {
        Some(d) => format!("`{d}`"),
        None if required => "*required*".to_string(),
        None => "—".to_string(),
    }
}

/// The applies column: *restart* for a restart-only field, *partly restart* for an object
/// holding one, else *live*.
fn live(path: &str, restart: &[&str]) -> String {
    if restart.contains(&path) {
        "restart".to_string()
    } else if restart.iter().any(|r| {
        r.strip_prefix(path)
            .is_some_and(|rest| rest.starts_with('.'))
    }) {
        "partly restart".to_string()
    } else {
        "live".to_string()
    }
}

/// Adds the section of the object `object` at `path`, then the sections of its objects (depth
/// first, in document order).
fn walk(
    object: &Value,
    path: &str,
    description: String,
    defs: &Map<String, Value>,
    restart: &[&str],
    sections: &mut Vec<Section>,
) {
    let empty = Map::new();
    let properties = object
        .get("properties")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let required: Vec<&str> = object
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let prefix = if path.is_empty() {
        String::new()
    } else {
        format!("{path}.")
    };
    let mut rows = Vec::new();
    let mut children = Vec::new();
    for (name, field) in properties {
        let field_path = format!("{prefix}{name}");
        let (resolved, _) = resolve(field, defs);
        let own = field
            .get("description")
            .and_then(Value::as_str)
            .unwrap_or_default();
        rows.push(Row {
            path: field_path.clone(),
            kind: kind(field, defs),
            default: default(field, required.contains(&name.as_str())),
            bounds: Some(bounds(field, defs))
                .filter(|b| !b.is_empty())
                .unwrap_or_else(|| "—".to_string()),
            live: live(&field_path, restart),
            description: own.to_string(),
        });
        let object_description = |v: &Value| {
            v.get("description")
                .and_then(Value::as_str)
                .unwrap_or(own)
                .to_string()
        };
        if is_object(resolved) {
            children.push((resolved, field_path, object_description(resolved)));
        } else if let Some(items) = resolved.get("items") {
            let (item, _) = resolve(items, defs);
            if is_object(item) {
                children.push((item, format!("{field_path}[]"), object_description(item)));
            }
        }
    }
    sections.push(Section {
        path: path.to_string(),
        description,
        rows,
    });
    for (child, child_path, child_description) in children {
        walk(
            child,
            &child_path,
            child_description,
            defs,
            restart,
            sections,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The table row of `path` in `text`, split into its cells.
    fn row<'a>(text: &'a str, path: &str) -> Vec<&'a str> {
        let start = format!("| `{path}` |");
        let line = text
            .lines()
            .find(|l| l.starts_with(&start))
            .unwrap_or_else(|| panic!("no row for {path} in\n{text}"));
        line.trim_matches('|').split(" | ").map(str::trim).collect()
    }

    #[test]
    fn anchors_follow_github() {
        assert_eq!(github_anchor("TLS and HTTP/2"), "tls-and-http2");
        assert_eq!(github_anchor("`pools[].health_probe`"), "poolshealth_probe");
        assert_eq!(github_anchor("Top level"), "top-level");
        assert_eq!(
            github_anchor("What needs a restart?"),
            "what-needs-a-restart"
        );
    }

    #[test]
    fn a_row_per_field_with_type_default_bounds_and_description() {
        let text = reference_markdown();
        assert_eq!(
            row(&text, "pools[].origins[].priority"),
            [
                "`pools[].origins[].priority`",
                "integer",
                "`1`",
                "1–5",
                "live",
                "1–5, lower wins (default 1)."
            ]
        );
        let method = row(&text, "pools[].health_probe.method");
        assert_eq!(
            method[1..4],
            ["string", "`\"HEAD\"`", "one of `GET`, `HEAD`"]
        );
        let name = row(&text, "pools[].name");
        assert_eq!(name[2], "*required*");
        assert!(name[3].contains("at most 64 characters"), "{name:?}");
        assert!(name[3].contains("matches `^[a-z0-9_-]+$`"), "{name:?}");
        assert_eq!(row(&text, "pools")[1], "array of objects");
        assert_eq!(row(&text, "node.trusted_proxies")[1], "array of string");
        let status = row(&text, "pools[].health_probe.expected_status");
        assert_eq!(status[1], "array of (integer or string)");
        assert_eq!(
            status[3],
            "at least 1 item, each: integer (100–599) or string (matches a pattern in the schema)"
        );
    }

    #[test]
    fn restart_only_fields_come_from_the_reload_rules() {
        let text = reference_markdown();
        let restart: Vec<&str> = restart_only_fields().collect();
        assert!(restart.contains(&"node.threads"));
        for path in &restart {
            assert_eq!(row(&text, path)[4], "restart", "{path}");
        }
        assert_eq!(row(&text, "node")[4], "partly restart");
        assert_eq!(row(&text, "node.region")[4], "live");
        assert_eq!(row(&text, "pools[].origins[].weight")[4], "live");
        let restart_rows = text.lines().filter(|l| l.contains("| restart |")).count();
        assert_eq!(restart_rows, restart.len());
    }

    #[test]
    fn every_object_has_a_section_in_document_order() {
        let text = reference_markdown();
        let headings: Vec<&str> = text.lines().filter(|l| l.starts_with("## ")).collect();
        for expected in [
            "## Top level",
            "## `node`",
            "## `node.limits`",
            "## `pools[]`",
            "## `pools[].failover.hedging`",
            "## `pools[].origins[]`",
            "## `routes[]`",
            "## `certificates[]`",
        ] {
            assert!(headings.contains(&expected), "{expected} in {headings:?}");
        }
        let at = |h: &str| headings.iter().position(|x| *x == h);
        assert!(at("## `node`") < at("## `node.limits`"));
        assert!(at("## `node.limits`") < at("## `pools[]`"));
        assert!(at("## `pools[]`") < at("## `routes[]`"));
        // The contents line links every section.
        for h in &headings {
            let title = h.trim_start_matches("## ");
            assert!(
                text.contains(&format!("(#{})", github_anchor(title))),
                "{title}"
            );
        }
    }

    #[test]
    fn every_field_of_the_schema_has_a_row() {
        // Fields per place in the document: a definition used twice (a rule's header tests
        // and query tests) has its rows twice.
        fn count(value: &Value, defs: &Map<String, Value>) -> usize {
            match value {
                Value::Object(o) => {
                    if let Some(def) = deref(value, defs) {
                        return count(def, defs);
                    }
                    o.get("properties")
                        .and_then(Value::as_object)
                        .map_or(0, Map::len)
                        + o.iter()
                            .filter(|(k, _)| *k != "$defs")
                            .map(|(_, v)| count(v, defs))
                            .sum::<usize>()
                }
                Value::Array(a) => a.iter().map(|v| count(v, defs)).sum(),
                _ => 0,
            }
        }
        let schema = schema().to_value();
        let text = render(&schema);
        let rows = text.lines().filter(|l| l.starts_with("| `")).count();
        let defs = schema["$defs"].as_object().cloned().unwrap_or_default();
        assert_eq!(rows, count(&schema, &defs));
    }

    /// The sentence "a field left out or `null` means its default" holds: every field but the
    /// required ones admits `null`.
    #[test]
    fn optional_fields_admit_null() {
        let schema = schema().to_value();
        let defs = schema["$defs"].as_object().cloned().unwrap_or_default();
        let mut objects = vec![&schema];
        objects.extend(defs.values());
        for object in objects {
            let required: Vec<&str> = object["required"]
                .as_array()
                .map(|r| r.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            for (name, field) in object["properties"].as_object().into_iter().flatten() {
                if !required.contains(&name.as_str()) {
                    assert!(resolve(field, &defs).1, "{name} does not admit null");
                }
            }
        }
    }

    #[test]
    fn cells_stay_on_one_line_and_escape_pipes() {
        let schema = json!({
            "type": "object",
            "properties": {
                "a": {"description": "one\n\ntwo | three", "type": ["string", "null"],
                      "pattern": "^(x|y)$", "default": "x"},
                "b": {"description": "long", "type": "string", "pattern": "x".repeat(41)}
            },
            "required": ["b"]
        });
        let text = render(&schema);
        assert!(
            text.contains(
                "| `a` | string | `\"x\"` | matches `^(x\\|y)$` | live | one two \\| three |"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "| `b` | string | *required* | matches a pattern in the schema | live | long |"
            ),
            "{text}"
        );
    }
}
