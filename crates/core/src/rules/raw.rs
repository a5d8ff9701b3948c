//! Stage one of rule sets: the JSON as written (`rule_sets[]`), unknown keys rejected.
//!
//! As in [`crate::config::raw`], required fields are `Option` so that validation reports every
//! missing one with its path.

use crate::config::NAME_PATTERN;
use schemars::JsonSchema;
use serde::Deserialize;
use std::collections::BTreeMap;

/// `rule_sets[]`: a named, ordered list of rules that routes name in `routes[].rule_sets`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "RuleSet")]
pub struct RawRuleSet {
    /// Rule set name, `[a-z0-9_-]+`, unique; routes name it in `rule_sets`.
    #[schemars(required, pattern(NAME_PATTERN), length(max = 64))]
    pub name: Option<String>,
    /// The rules, run in order after the route matched and before an origin is chosen.
    #[schemars(required)]
    pub rules: Option<Vec<RawRule>>,
}

/// `rule_sets[].rules[]`: when every condition holds, the actions apply.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Rule")]
pub struct RawRule {
    /// Rule name, `[a-z0-9_-]+`, unique in its rule set; metrics and the access log name it.
    #[schemars(required, pattern(NAME_PATTERN), length(max = 64))]
    pub name: Option<String>,
    /// Conditions, all of which must hold (default none: the rule always matches).
    pub when: Option<RawWhen>,
    /// Actions applied when the rule matches (default none).
    pub then: Option<RawThen>,
    /// When the rule matched, evaluate no later rule, in this rule set or a later one of the
    /// route (default false).
    #[schemars(extend("default" = false))]
    pub stop: Option<bool>,
}

/// `rules[].when`: conditions on the request as the client sent it.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "When")]
pub struct RawWhen {
    /// Request methods, any of which matches (`GET`, `POST`, …; case-sensitive).
    #[schemars(length(min = 1))]
    pub methods: Option<Vec<String>>,
    /// Path patterns as in routes, any of which matches: exact (`/health`) or a prefix ending
    /// in `/*` (`/api/*`). The path excludes the query string.
    #[schemars(length(min = 1))]
    pub paths: Option<Vec<String>>,
    /// A regular expression (Rust `regex` syntax, linear-time) that must match somewhere in
    /// the path (anchor it with `^…$` for a whole match); its groups are `{1}`…`{9}` in the
    /// rule's templates.
    pub path_regex: Option<String>,
    /// Request header tests, all of which must hold; names are case-insensitive.
    pub headers: Option<Vec<RawMatch>>,
    /// Query parameter tests, all of which must hold, on the raw (percent-encoded) query.
    pub query: Option<Vec<RawMatch>>,
    /// Cookie tests (from the `Cookie` headers), all of which must hold; names are
    /// case-sensitive.
    pub cookies: Option<Vec<RawMatch>>,
    /// Networks (`10.0.0.0/8`, `2001:db8::/32` or one address), one of which must hold the
    /// client's address.
    #[schemars(length(min = 1))]
    pub client_ips: Option<Vec<String>>,
    /// Networks none of which may hold the client's address.
    #[schemars(length(min = 1))]
    pub not_client_ips: Option<Vec<String>>,
    /// Schemes the client used, any of which matches: `http`, `https`.
    #[schemars(length(min = 1), inner(pattern("^https?$")))]
    pub schemes: Option<Vec<String>>,
}

/// One test of a header, query parameter or cookie: exactly one of `equals`, `regex`,
/// `present: true`, `absent: true`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Match")]
pub struct RawMatch {
    /// The header, parameter or cookie name.
    #[schemars(required, length(min = 1))]
    pub name: Option<String>,
    /// Holds when a value is exactly this.
    pub equals: Option<String>,
    /// Holds when a value matches this regular expression somewhere (anchor with `^…$`).
    pub regex: Option<String>,
    /// `true`: holds when the name is there, whatever its value.
    pub present: Option<bool>,
    /// `true`: holds when the name is not there.
    pub absent: Option<bool>,
}

/// `rules[].then`: the actions of a matching rule. Across matching rules, the first
/// `respond` or `redirect`, the first `rewrite` that applies and the first `pool` win; every
/// `rate_limit` applies; header edits add up in rule order.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Then")]
pub struct RawThen {
    /// Answer the request here, with no origin (not with `redirect`).
    pub respond: Option<RawRespond>,
    /// Answer with a redirect, with no origin (not with `respond`).
    pub redirect: Option<RawRedirect>,
    /// Limit the request rate per key; a request over it gets 429.
    pub rate_limit: Option<RawRateLimit>,
    /// Change the path the origin sees (the query string is kept).
    pub rewrite: Option<RawRewrite>,
    /// Send the request to this pool instead of the route's.
    pub pool: Option<String>,
    /// Edits of the request headers sent to the origin, on every attempt.
    pub request_headers: Option<RawHeaderEdits>,
    /// Edits of the response headers sent to the client, on every response of the request
    /// (replies Portico writes itself included).
    pub response_headers: Option<RawHeaderEdits>,
}

/// `then.respond`: a reply written by the node.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Respond")]
pub struct RawRespond {
    /// Status, 200–599.
    #[schemars(required, range(min = 200, max = 599))]
    pub status: Option<i64>,
    /// Body, a template (default empty).
    pub body: Option<String>,
    /// Headers of the reply, values are templates (default none).
    pub headers: Option<BTreeMap<String, String>>,
}

/// `then.redirect`: a redirect written by the node.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Redirect")]
pub struct RawRedirect {
    /// 301, 302, 307 or 308.
    #[schemars(required, extend("enum" = [301, 302, 307, 308]))]
    pub status: Option<i64>,
    /// The `Location`, a template (e.g. `https://{host}{path}`).
    #[schemars(required, length(min = 1))]
    pub location: Option<String>,
}

/// `then.rate_limit`: a token bucket per key, per node.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "RateLimit")]
pub struct RawRateLimit {
    /// What a bucket is kept per: `client_ip`, `header:NAME` (requests without the header are
    /// not limited) or `route`.
    #[schemars(required, pattern("^(client_ip|route|header:.+)$"))]
    pub key: Option<String>,
    /// Sustained rate allowed per key, above 0 and at most 1000000 (fractions allowed).
    #[schemars(required, range(max = 1_000_000), extend("exclusiveMinimum" = 0))]
    pub requests_per_second: Option<f64>,
    /// Requests allowed at once above the sustained rate, 1–1000000 (default: one second's
    /// worth, `requests_per_second` rounded up).
    #[schemars(range(min = 1, max = 1_000_000))]
    pub burst: Option<i64>,
}

/// `then.rewrite`: exactly one of `path_prefix` and `path_regex`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Rewrite")]
pub struct RawRewrite {
    /// Replace a leading `from` of the path with `to`.
    pub path_prefix: Option<RawPathPrefix>,
    /// Replace the first match of `pattern` in the path with `replace`.
    pub path_regex: Option<RawPathRegex>,
}

/// `rewrite.path_prefix`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "PathPrefixRewrite")]
pub struct RawPathPrefix {
    /// The prefix to replace, starting with `/`; a path not starting with it is left alone.
    #[schemars(required)]
    pub from: Option<String>,
    /// What replaces it, starting with `/`.
    #[schemars(required)]
    pub to: Option<String>,
}

/// `rewrite.path_regex`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "PathRegexRewrite")]
pub struct RawPathRegex {
    /// A regular expression; a path it does not match is left alone.
    #[schemars(required)]
    pub pattern: Option<String>,
    /// What replaces the match; `{1}`…`{9}` are the pattern's groups.
    #[schemars(required)]
    pub replace: Option<String>,
}

/// `request_headers` / `response_headers`: applied as `remove`, then `set`, then `add`.
/// Headers Portico owns (`Via`, `X-Request-Id`, `X-Forwarded-*`, `X-Portico-*`) and the
/// framing headers cannot be named.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "HeaderEdits")]
pub struct RawHeaderEdits {
    /// Headers replaced (every earlier value removed), values are templates.
    pub set: Option<BTreeMap<String, String>>,
    /// Headers appended beside any existing values, values are templates.
    pub add: Option<BTreeMap<String, String>>,
    /// Headers removed (every value).
    pub remove: Option<Vec<String>>,
}
