//! The patterns and the one hand-written schema the raw config types state in the JSON Schema
//! (`#[schemars(...)]` attributes in `raw.rs`); `schema.rs` assembles the document from them.

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use std::borrow::Cow;

/// The characters Rust's `char::is_whitespace` (and so `str::trim`) takes for white space, as
/// the inside of a regex character class. Spelled out because `\s` differs between ECMA-262
/// (editors) and Rust.
macro_rules! white_space {
    () => {
        r"\t\n\x0B\x0C\r \x85\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000"
    };
}

/// A port 1-65535, leading zeros allowed (as `u16` parsing allows them).
macro_rules! port {
    () => {
        "0*([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
    };
}

/// A DNS name as `validate.rs` takes it: dot-separated labels of letters, digits, `-`, `_`
/// (IPv4 addresses included). The 253-character limit is not stated.
macro_rules! dns_name {
    () => {
        r"[A-Za-z0-9_-]{1,63}(\.[A-Za-z0-9_-]{1,63})*"
    };
}

/// An IPv4 octet 0-255 without leading zeros.
macro_rules! octet {
    () => {
        "(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
    };
}

/// Names of pools, origins, routes and regions.
pub(crate) const NAME_PATTERN: &str = "^[a-z0-9_-]+$";

/// A listener: `IPv4:PORT` or `[IPv6]:PORT` (what `SocketAddr` parses), port not 0.
pub(crate) const LISTEN_PATTERN: &str = concat!(
    "^((",
    octet!(),
    r"\.){3}",
    octet!(),
    r"|\[[0-9A-Fa-f:.]+(%[0-9]+)?\]):",
    port!(),
    "$"
);

/// An origin address: `HOST:PORT` with a DNS name, an IPv4 address or a bracketed IPv6 address.
pub(crate) const HOST_PORT_PATTERN: &str =
    concat!(r"^(\[[0-9A-Fa-f:.]+\]|", dns_name!(), "):", port!(), "$");

/// A probe path: starts with `/`, then visible ASCII without `#` (validation is stricter: the
/// request-target rules of the `http` crate, which want `<`, `>`, `` ` `` and the like
/// percent-encoded).
pub(crate) const PROBE_PATH_PATTERN: &str = r"^/[\x21\x22\x24-\x7E]*$";

/// An `expected_status` range `"LO-HI"` of statuses 100-599 (`LO <= HI` is not stated). The
/// white space around the numbers that validation trims is `\s` and U+0085.
pub(crate) const STATUS_RANGE_PATTERN: &str =
    r"^[\s\x85]*\+?0*[1-5][0-9]{2}[\s\x85]*-[\s\x85]*\+?0*[1-5][0-9]{2}[\s\x85]*$";

/// A route's host pattern: an exact host, `*.suffix` or `*` (a trailing dot allowed).
pub(crate) const HOST_PATTERN_PATTERN: &str = concat!(r"^(\*|(\*\.)?", dns_name!(), r")\.?$");

/// A route's path pattern: exact (`/health`) or a prefix ending in `/*` (`/api/*`); no spaces,
/// `?` or `#`.
pub(crate) const PATH_PATTERN_PATTERN: &str =
    r"^/([^\x00-\x20\x7F?#*]*|([^\x00-\x20\x7F?#*]*/)?\*)$";

/// A certificate's host: an exact DNS name or `*.suffix` (a trailing dot allowed).
pub(crate) const CERT_HOST_PATTERN: &str = concat!(r"^(\*\.)?", dns_name!(), r"\.?$");

/// An ACME directory URL: `https://` and no spaces or control characters.
pub(crate) const ACME_DIRECTORY_PATTERN: &str = r"^https://[^\x00-\x20\x7F]+$";

/// An ACME account contact: `mailto:` and no spaces or control characters.
pub(crate) const ACME_CONTACT_PATTERN: &str = r"^mailto:[^\x00-\x20\x7F]+$";

/// A DNS name (an origin's `sni`).
pub(crate) const DNS_NAME_PATTERN: &str = concat!("^", dns_name!(), "$");

/// A cookie name (an RFC 9110 token without the backtick):
/// `pools[].load_balancing.session_affinity.cookie`.
pub(crate) const COOKIE_NAME_PATTERN: &str = r"^[!#$%&'*+.^_|~0-9A-Za-z-]+$";

/// A media range of `routes[].compression.types`: `type/subtype` or `type/*` (tokens).
pub(crate) const MEDIA_RANGE_PATTERN: &str =
    r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+/(\*|[!#$%&'*+.^_`|~0-9A-Za-z-]+)$";

/// A Host header value: no spaces or control characters.
pub(crate) const HOST_HEADER_PATTERN: &str = r"^[^\x00-\x20\x7F]+$";

/// Not empty and not only white space (unanchored: one such character is enough).
pub(crate) const NOT_BLANK_PATTERN: &str = concat!("[^", white_space!(), "]");

/// Schema of one `pools[].health_probe.expected_status` item, which the raw type keeps as any
/// JSON value for validation to explain.
pub(crate) struct ExpectedStatus;

impl JsonSchema for ExpectedStatus {
    fn schema_name() -> Cow<'static, str> {
        "ExpectedStatus".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "An HTTP status (100-599) or a range \"LO-HI\" of them (LO <= HI), e.g. 204 or \"200-299\".",
            "anyOf": [
                { "type": "integer", "minimum": 100, "maximum": 599 },
                { "type": "string", "pattern": STATUS_RANGE_PATTERN }
            ]
        })
    }
}
