//! Configuration in three stages: raw serde structs, validation with JSON paths, typed model.

mod diff;
mod edge_options;
mod error;
mod model;
mod patterns;
pub mod raw;
mod reference;
mod schema;
mod validate;
mod validate_acme;
mod warnings;

pub use diff::{Change, diff};
pub(crate) use edge_options::is_token_byte;
pub(crate) use error::{Collector, join};
pub use error::{ConfigError, ConfigErrors};
pub use model::*;
pub(crate) use patterns::NAME_PATTERN;
pub use reference::{REFERENCE_COMMAND, REFERENCE_PATH, github_anchor, reference_markdown};
pub use schema::{SCHEMA_ID, schema, schema_json};
pub use validate::{
    MAX_ORIGINS_PER_POOL, Overrides, fingerprint, host_pattern, is_host_port, parse, parse_with,
    path_pattern,
};
pub(crate) use validate::{friendly, name_problem, path_key};
pub use warnings::warnings;

#[cfg(test)]
mod tests;
