//! The compiled matcher: every rule of every set in one flat list, header names and literal
//! values pre-parsed, regexes compiled once, conditions tested cheapest first without
//! allocating.

use super::facts::{RequestFacts, Scheme};
use super::template::Template;
use crate::cidr::Cidr;
use crate::config::PathPattern;
use http::{HeaderMap, HeaderName, HeaderValue};
use std::ops::Range;

/// Validated rule sets, ready to evaluate.
#[derive(Debug, Clone, Default)]
pub struct CompiledRuleSets {
    pub(crate) sets: Vec<RuleSet>,
    /// The rules of every set, set after set.
    pub(crate) rules: Vec<Rule>,
}

/// A rule set, by its position in `rule_sets`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RuleSetId(pub(crate) usize);

impl RuleSetId {
    /// Its position in `rule_sets`.
    pub fn index(self) -> usize {
        self.0
    }
}

/// A rule, by its position among the rules of every set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RuleId(pub(crate) usize);

impl RuleId {
    /// Its position among the rules of every set (`0..rule_count()`), to index tables kept
    /// per rule.
    pub fn index(self) -> usize {
        self.0
    }
}

impl CompiledRuleSets {
    /// The rule set called `name`.
    pub fn id(&self, name: &str) -> Option<RuleSetId> {
        self.sets
            .iter()
            .position(|s| &*s.name == name)
            .map(RuleSetId)
    }

    /// The names of the rule sets, in document order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.sets.iter().map(|s| &*s.name)
    }

    /// How many rules there are in every set together.
    pub fn rule_count(&self) -> usize {
        self.rules.len()
    }

    /// How many rules the rule set `id` holds (0 for an unknown id).
    pub fn rules_in(&self, id: RuleSetId) -> usize {
        self.sets.get(id.0).map_or(0, |s| s.rules.len())
    }

    /// Every rule, set after set.
    pub fn rule_ids(&self) -> impl Iterator<Item = RuleId> + use<> {
        (0..self.rules.len()).map(RuleId)
    }

    /// The rate limit of a rule, if it has one.
    pub fn rate_limit(&self, id: RuleId) -> Option<&RateLimit> {
        self.rules.get(id.0)?.then.rate_limit.as_ref()
    }

    /// The names of a rule: its set's and its own.
    pub fn rule(&self, id: RuleId) -> Option<RuleRef<'_>> {
        let rule = self.rules.get(id.0)?;
        Some(RuleRef {
            id,
            set: &self.sets[rule.set].name,
            name: &rule.name,
        })
    }
}

/// A rule with its names, for metrics, the trace and the access log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuleRef<'r> {
    /// Which rule.
    pub id: RuleId,
    /// Its rule set's name.
    pub set: &'r str,
    /// Its name.
    pub name: &'r str,
}

/// One rule set.
#[derive(Debug, Clone)]
pub(crate) struct RuleSet {
    pub(crate) name: Box<str>,
    /// Its rules in [`CompiledRuleSets::rules`].
    pub(crate) rules: Range<usize>,
}

/// One rule.
#[derive(Debug, Clone)]
pub(crate) struct Rule {
    /// Index of its set.
    pub(crate) set: usize,
    pub(crate) name: Box<str>,
    pub(crate) when: When,
    pub(crate) then: Then,
    pub(crate) stop: bool,
}

/// The conditions of a rule; empty lists are conditions not given.
#[derive(Debug, Clone, Default)]
pub(crate) struct When {
    pub(crate) methods: Box<[Box<str>]>,
    /// Schemes allowed, `None` for any.
    pub(crate) schemes: Option<(bool, bool)>,
    pub(crate) paths: Box<[PathPattern]>,
    pub(crate) client_ips: Box<[Cidr]>,
    pub(crate) not_client_ips: Box<[Cidr]>,
    pub(crate) headers: Box<[(HeaderName, Test)]>,
    pub(crate) query: Box<[(Box<str>, Test)]>,
    pub(crate) cookies: Box<[(Box<str>, Test)]>,
    pub(crate) path_regex: Option<regex::Regex>,
}

/// A test of the values under one name.
#[derive(Debug, Clone)]
pub(crate) enum Test {
    Equals(Box<[u8]>),
    Regex(regex::bytes::Regex),
    Present,
    Absent,
}

impl Test {
    fn holds<'v>(&self, mut values: impl Iterator<Item = &'v [u8]>) -> bool {
        match self {
            Test::Equals(want) => values.any(|v| v == &**want),
            Test::Regex(re) => values.any(|v| re.is_match(v)),
            Test::Present => values.next().is_some(),
            Test::Absent => values.next().is_none(),
        }
    }
}

impl When {
    /// Whether the rule gives no condition, so it matches every request.
    pub(crate) fn is_always(&self) -> bool {
        self.methods.is_empty()
            && self.schemes.is_none()
            && self.paths.is_empty()
            && self.client_ips.is_empty()
            && self.not_client_ips.is_empty()
            && self.headers.is_empty()
            && self.query.is_empty()
            && self.cookies.is_empty()
            && self.path_regex.is_none()
    }

    /// Whether every condition holds, cheapest tests first; the path regex last.
    pub(crate) fn holds(&self, f: &RequestFacts<'_>) -> bool {
        (self.methods.is_empty() || self.methods.iter().any(|m| &**m == f.method))
            && self.schemes.is_none_or(|(http, https)| match f.scheme {
                Scheme::Http => http,
                Scheme::Https => https,
            })
            && (self.paths.is_empty() || self.paths.iter().any(|p| path_matches(p, f.path)))
            && (self.client_ips.is_empty()
                || f.client_ip
                    .is_some_and(|ip| self.client_ips.iter().any(|n| n.contains(ip))))
            && (self.not_client_ips.is_empty()
                || f.client_ip
                    .is_none_or(|ip| !self.not_client_ips.iter().any(|n| n.contains(ip))))
            && self
                .headers
                .iter()
                .all(|(name, test)| test.holds(header_values(f.headers, name)))
            && self
                .query
                .iter()
                .all(|(name, test)| test.holds(query_values(f.query.unwrap_or(""), name)))
            && self
                .cookies
                .iter()
                .all(|(name, test)| test.holds(cookie_values(f.headers, name)))
            && self
                .path_regex
                .as_ref()
                .is_none_or(|re| re.is_match(f.path))
    }
}

/// Whether `path` matches a route-style pattern.
fn path_matches(pattern: &PathPattern, path: &str) -> bool {
    match pattern {
        PathPattern::Exact(p) => p == path,
        PathPattern::Prefix(p) => path.starts_with(p.as_str()),
    }
}

/// Every value of a header, one per field line.
fn header_values<'v>(
    headers: &'v HeaderMap,
    name: &HeaderName,
) -> impl Iterator<Item = &'v [u8]> + 'v {
    headers.get_all(name).into_iter().map(HeaderValue::as_bytes)
}

/// Values of the query parameter `name` in a raw query (`a=1&b&a=2`: `a` has `1` and `2`,
/// `b` has the empty value), compared undecoded.
fn query_values<'v>(query: &'v str, name: &'v str) -> impl Iterator<Item = &'v [u8]> + 'v {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .filter_map(move |pair| {
            let (n, v) = pair.split_once('=').unwrap_or((pair, ""));
            (n == name).then_some(v.as_bytes())
        })
}

/// Values of the cookie `name` in every `Cookie` header (`a=1; b=2`), as sent.
fn cookie_values<'v>(headers: &'v HeaderMap, name: &'v str) -> impl Iterator<Item = &'v [u8]> + 'v {
    headers
        .get_all(http::header::COOKIE)
        .into_iter()
        .flat_map(|line| line.as_bytes().split(|&b| b == b';'))
        .filter_map(move |pair| {
            let pair = pair.trim_ascii();
            let eq = pair.iter().position(|&b| b == b'=')?;
            (pair[..eq].trim_ascii() == name.as_bytes()).then(|| pair[eq + 1..].trim_ascii())
        })
}

/// The actions of a rule.
#[derive(Debug, Clone, Default)]
pub(crate) struct Then {
    pub(crate) ending: Option<EndingSpec>,
    pub(crate) rate_limit: Option<RateLimit>,
    pub(crate) rewrite: Option<RewriteSpec>,
    /// Index and name of the pool.
    pub(crate) pool: Option<(usize, Box<str>)>,
    pub(crate) request_headers: Box<[EditSpec]>,
    pub(crate) response_headers: Box<[EditSpec]>,
    /// Whether a template of `ending` or the header edits names a group of `when.path_regex`.
    pub(crate) uses_groups: bool,
}

/// `respond` or `redirect`.
#[derive(Debug, Clone)]
pub(crate) enum EndingSpec {
    Respond {
        status: u16,
        body: Template,
        /// The body, pre-built when it has no variables.
        body_literal: Option<bytes::Bytes>,
        headers: Box<[(HeaderName, ValueTemplate)]>,
    },
    Redirect {
        status: u16,
        location: ValueTemplate,
    },
}

/// A header value template, with its value pre-built when it has no variables.
#[derive(Debug, Clone)]
pub(crate) struct ValueTemplate {
    pub(crate) template: Template,
    pub(crate) literal: Option<HeaderValue>,
}

/// `rewrite`.
#[derive(Debug, Clone)]
pub(crate) enum RewriteSpec {
    Prefix {
        from: Box<str>,
        to: Box<str>,
    },
    Regex {
        pattern: regex::Regex,
        replace: Template,
    },
}

/// One header edit.
#[derive(Debug, Clone)]
pub(crate) enum EditSpec {
    Remove(HeaderName),
    Set(HeaderName, ValueTemplate),
    Add(HeaderName, ValueTemplate),
}

/// `rate_limit` of a rule: a bucket per key.
#[derive(Debug, Clone, PartialEq)]
pub struct RateLimit {
    /// What a bucket is kept per.
    pub key: RateKeySpec,
    /// Sustained rate per key.
    pub requests_per_second: f64,
    /// Requests allowed at once above the sustained rate.
    pub burst: u32,
}

/// `rate_limit.key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RateKeySpec {
    /// `client_ip`: a bucket per client address.
    ClientIp,
    /// `header:NAME`: a bucket per value of the header (its first field line).
    Header(HeaderName),
    /// `route`: one bucket per route.
    Route,
}
