//! The JSON Schema of the configuration document: what `portico schema` prints and what
//! `conf/portico.schema.json` holds, for editors (completion, descriptions, defaults, checks as
//! you type).
//!
//! It is derived with `schemars` from the raw types in [`super::raw`]: their doc comments are
//! the descriptions, and their `#[schemars(...)]` attributes state the documented constraints
//! (ranges, patterns, enums, required keys, defaults) with the patterns of [`super::patterns`].
//!
//! Validation (`validate.rs`) stays the source of truth. The schema never rejects a document
//! that [`super::parse`] accepts (the tests check it, also over generated documents), but it
//! accepts some that validation rejects: rules across fields (`timeout_ms` below
//! `interval_ms`, unique names and addresses, a route naming an existing pool, one route per
//! host and path) and lengths of DNS names are beyond it.

use super::raw::RawConfig;
use schemars::generate::SchemaSettings;
use schemars::{Schema, SchemaGenerator};
use serde_json::Value;

/// The schema's `$id`: where the committed copy, `conf/portico.schema.json`, is published.
pub const SCHEMA_ID: &str =
    "https://raw.githubusercontent.com/portico-edge/portico/main/conf/portico.schema.json";

/// The schema's `title`.
const TITLE: &str = "Portico configuration";

/// The JSON Schema (draft 2020-12) of the configuration document.
pub fn schema() -> Schema {
    let mut schema =
        SchemaGenerator::new(SchemaSettings::draft2020_12()).into_root_schema_for::<RawConfig>();
    schema.insert("$id".into(), SCHEMA_ID.into());
    schema.insert("title".into(), TITLE.into());
    let mut value = schema.to_value();
    tidy(&mut value);
    // schemars serializes keywords in a fixed order (`$id`, `$schema`, `title`, `description`,
    // `type`, `properties`, the others as inserted, `$defs` last); the definitions are sorted.
    if let Some(Value::Object(defs)) = value.get_mut("$defs") {
        defs.sort_keys();
    }
    Schema::try_from(value).expect("the schema is an object")
}

/// Doc comments wrap at 100 columns: a description is one line per paragraph. `format: int64`
/// only says the raw field is an `i64`; `minimum` and `maximum` say more.
fn tidy(value: &mut Value) {
    match value {
        Value::Object(object) => {
            if let Some(Value::String(text)) = object.get_mut("description") {
                *text = text
                    .split("\n\n")
                    .map(|paragraph| {
                        paragraph
                            .split('\n')
                            .map(str::trim)
                            .collect::<Vec<_>>()
                            .join(" ")
                    })
                    .collect::<Vec<_>>()
                    .join("\n\n");
            }
            if object.get("format").and_then(Value::as_str) == Some("int64") {
                object.remove("format");
            }
            object.values_mut().for_each(tidy);
        }
        Value::Array(items) => items.iter_mut().for_each(tidy),
        _ => {}
    }
}

/// [`schema`] as pretty-printed JSON with a trailing newline: the text of
/// `conf/portico.schema.json` and of `portico schema`.
pub fn schema_json() -> String {
    let mut text = serde_json::to_string_pretty(&schema()).expect("a schema serializes");
    text.push('\n');
    text
}

#[cfg(test)]
mod tests;
