//! Configuration errors: each names the JSON path it is about.

use std::fmt;

/// One problem found in a configuration, tied to the JSON path it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// JSON path such as `pools[0].origins[1].address`; empty for the document itself.
    pub path: String,
    /// What is wrong, in words an operator can act on.
    pub message: String,
}

impl ConfigError {
    /// An error at `path` saying `message`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Every error found in one configuration, in document order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.lines())]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    /// The errors, one per line, each `path: message`.
    pub fn lines(&self) -> String {
        self.0
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Whether an error names exactly `path`.
    pub fn has_path(&self, path: &str) -> bool {
        self.0.iter().any(|e| e.path == path)
    }
}

/// Collects errors while validation walks the document, tracking the current JSON path.
#[derive(Debug, Default)]
pub(crate) struct Collector {
    pub(crate) errors: Vec<ConfigError>,
}

impl Collector {
    pub(crate) fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(ConfigError::new(path, message));
    }

    /// Reports a missing value, unless an error about that path was reported already (a value
    /// of the wrong type is dropped before validation and would otherwise be reported twice).
    pub(crate) fn require(&mut self, path: impl Into<String>, message: impl Into<String>) {
        let path = path.into();
        if !self.errors.iter().any(|e| e.path == path) {
            self.push(path, message);
        }
    }

    /// Whether any error so far is about `prefix` or something inside it.
    pub(crate) fn has_under(&self, prefix: &str) -> bool {
        self.errors.iter().any(|e| {
            e.path.strip_prefix(prefix).is_some_and(|rest| {
                rest.is_empty() || rest.starts_with('.') || rest.starts_with('[')
            })
        })
    }
}

/// Joins a JSON path and a field name: `join("pools[0]", "name")` is `pools[0].name`.
pub(crate) fn join(base: &str, field: &str) -> String {
    if base.is_empty() {
        field.to_string()
    } else if field.is_empty() {
        base.to_string()
    } else if field.starts_with('[') {
        format!("{base}{field}")
    } else {
        format!("{base}.{field}")
    }
}

/// An integer field: its default when absent, an error when outside `lo..=hi`.
pub(crate) fn int(
    c: &mut Collector,
    path: &str,
    value: Option<i64>,
    default: i64,
    lo: i64,
    hi: i64,
) -> i64 {
    match value {
        None => default,
        Some(v) if (lo..=hi).contains(&v) => v,
        Some(v) => {
            c.push(path, format!("must be between {lo} and {hi}, got {v}"));
            default
        }
    }
}
