//! Evaluation: a pure function from a route's rule sets and the request's facts to the
//! actions that apply.

use super::compiled::{
    CompiledRuleSets, EditSpec, EndingSpec, RateKeySpec, RewriteSpec, Rule, RuleId, RuleSetId,
    ValueTemplate,
};
use super::facts::RequestFacts;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};
use std::net::IpAddr;

/// What the matching rules of a request decided. It borrows nothing, so a request can keep it
/// across its hooks; names are found with [`CompiledRuleSets::rule`]. Empty (and
/// allocation-free) when no rule matched.
#[derive(Debug, Clone, Default)]
pub struct Actions {
    /// The rules that matched, in evaluation order.
    pub matched: Vec<RuleId>,
    /// The reply the node writes instead of asking an origin: the first matching rule's
    /// `respond` or `redirect`.
    pub ending: Option<Ending>,
    /// The rate limits the request counts against, in rule order; empty when there is an
    /// `ending` (the request ends before any limit is consulted).
    pub rate_limits: Vec<RateLimitHit>,
    /// The path the origin sees instead of the client's (the query string is kept): the
    /// first rewrite of a matching rule that applies to the path. `None` with an `ending`.
    pub path: Option<String>,
    /// The pool the request goes to instead of the route's, as an index into the
    /// configuration's `pools`: the first matching rule's. `None` with an `ending`.
    pub pool: Option<usize>,
    /// Edits of the request to the origin, in order. Empty with an `ending`.
    pub request_headers: Vec<HeaderEdit>,
    /// Edits of every response to the client, in order.
    pub response_headers: Vec<HeaderEdit>,
}

/// A reply written by the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// `respond`.
    Respond {
        /// The rule it came from.
        rule: RuleId,
        /// Status.
        status: u16,
        /// Body (empty when not given).
        body: Bytes,
        /// Headers, in the order written.
        headers: Vec<(HeaderName, HeaderValue)>,
    },
    /// `redirect`.
    Redirect {
        /// The rule it came from.
        rule: RuleId,
        /// 301, 302, 307 or 308.
        status: u16,
        /// The `Location`.
        location: HeaderValue,
    },
}

impl Ending {
    /// The rule it came from.
    pub fn rule(&self) -> RuleId {
        match self {
            Ending::Respond { rule, .. } | Ending::Redirect { rule, .. } => *rule,
        }
    }
}

/// A rate limit a request counts against: the rule's bucket for `key`.
#[derive(Debug, Clone, PartialEq)]
pub struct RateLimitHit {
    /// The rule whose limit it is (its whole spec: [`CompiledRuleSets::rate_limit`]).
    pub rule: RuleId,
    /// Sustained rate per key.
    pub requests_per_second: f64,
    /// Requests allowed at once above the sustained rate.
    pub burst: u32,
    /// The bucket's key.
    pub key: RateKey,
}

/// The key of a rate-limit bucket, within its rule.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RateKey {
    /// The client's address.
    ClientIp(IpAddr),
    /// The value of the key's header (its first field line).
    Header(HeaderValue),
    /// The request's route (one bucket per route naming the rule's set).
    Route,
}

/// One edit of a header map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderEdit {
    /// Remove every value of the header.
    Remove(HeaderName),
    /// Replace every value of the header with this one.
    Set(HeaderName, HeaderValue),
    /// Add this value beside any others.
    Add(HeaderName, HeaderValue),
}

impl HeaderEdit {
    /// Applies the edit to `headers`.
    pub fn apply(&self, headers: &mut HeaderMap) {
        match self {
            HeaderEdit::Remove(name) => {
                headers.remove(name);
            }
            HeaderEdit::Set(name, value) => {
                headers.insert(name.clone(), value.clone());
            }
            HeaderEdit::Add(name, value) => {
                headers.append(name.clone(), value.clone());
            }
        }
    }
}

impl CompiledRuleSets {
    /// Evaluates the rule sets `sets` (a route's `rule_sets`, in order) against a request: every
    /// rule whose conditions hold contributes its actions, until a matching rule with `stop`.
    /// An unknown id is skipped.
    pub fn evaluate(&self, sets: &[RuleSetId], facts: &RequestFacts<'_>) -> Actions {
        let mut out = Actions::default();
        'sets: for id in sets {
            let Some(set) = self.sets.get(id.0) else {
                continue;
            };
            for index in set.rules.clone() {
                let Some(rule) = self.rules.get(index) else {
                    break;
                };
                if !rule.when.holds(facts) {
                    continue;
                }
                apply(rule, RuleId(index), facts, &mut out);
                if rule.stop {
                    break 'sets;
                }
            }
        }
        if out.ending.is_some() {
            // The request ends here: nothing of the way to an origin applies.
            out.rate_limits.clear();
            out.path = None;
            out.pool = None;
            out.request_headers.clear();
        }
        out
    }
}

/// Adds the actions of a matching rule to `out`.
fn apply(rule: &Rule, me: RuleId, facts: &RequestFacts<'_>, out: &mut Actions) {
    out.matched.push(me);
    let then = &rule.then;
    let captures = match (&rule.when.path_regex, then.uses_groups) {
        (Some(re), true) => re.captures(facts.path),
        _ => None,
    };
    let group = |n: usize| captures.as_ref().and_then(|c| c.get(n)).map(|m| m.as_str());
    if out.ending.is_none() {
        out.ending = match &then.ending {
            None => None,
            Some(EndingSpec::Respond {
                status,
                body,
                body_literal,
                headers,
            }) => Some(Ending::Respond {
                rule: me,
                status: *status,
                body: match body_literal {
                    Some(b) => b.clone(),
                    None => {
                        let mut s = String::new();
                        body.render_into(facts, group, &mut s);
                        Bytes::from(s)
                    }
                },
                headers: headers
                    .iter()
                    .filter_map(|(name, value)| {
                        Some((name.clone(), render_value(value, facts, group)?))
                    })
                    .collect(),
            }),
            Some(EndingSpec::Redirect { status, location }) => render_value(location, facts, group)
                .map(|location| Ending::Redirect {
                    rule: me,
                    status: *status,
                    location,
                }),
        };
    }
    if let Some(limit) = &then.rate_limit {
        let key = match &limit.key {
            RateKeySpec::ClientIp => facts.client_ip.map(RateKey::ClientIp),
            RateKeySpec::Header(name) => facts.headers.get(name).cloned().map(RateKey::Header),
            RateKeySpec::Route => Some(RateKey::Route),
        };
        if let Some(key) = key {
            out.rate_limits.push(RateLimitHit {
                rule: me,
                requests_per_second: limit.requests_per_second,
                burst: limit.burst,
                key,
            });
        }
    }
    if out.path.is_none() {
        out.path = then.rewrite.as_ref().and_then(|r| rewrite(r, facts));
    }
    if out.pool.is_none() {
        out.pool = then.pool.as_ref().map(|(index, _)| *index);
    }
    edits(
        &then.request_headers,
        facts,
        group,
        &mut out.request_headers,
    );
    edits(
        &then.response_headers,
        facts,
        group,
        &mut out.response_headers,
    );
}

fn edits<'g>(
    specs: &[EditSpec],
    facts: &RequestFacts<'_>,
    group: impl Fn(usize) -> Option<&'g str> + Copy,
    out: &mut Vec<HeaderEdit>,
) {
    for spec in specs {
        let edit = match spec {
            EditSpec::Remove(name) => Some(HeaderEdit::Remove(name.clone())),
            EditSpec::Set(name, value) => {
                render_value(value, facts, group).map(|v| HeaderEdit::Set(name.clone(), v))
            }
            EditSpec::Add(name, value) => {
                render_value(value, facts, group).map(|v| HeaderEdit::Add(name.clone(), v))
            }
        };
        out.extend(edit);
    }
}

/// The rendered header value; `None` when the request's own facts made it invalid (a byte no
/// parsed request carries), in which case the edit is left out.
fn render_value<'g>(
    v: &ValueTemplate,
    facts: &RequestFacts<'_>,
    group: impl Fn(usize) -> Option<&'g str>,
) -> Option<HeaderValue> {
    if let Some(literal) = &v.literal {
        return Some(literal.clone());
    }
    let mut s = String::new();
    v.template.render_into(facts, group, &mut s);
    HeaderValue::try_from(s).ok()
}

/// The rewritten path, when the rewrite applies to the request's path.
fn rewrite(r: &RewriteSpec, facts: &RequestFacts<'_>) -> Option<String> {
    let path = facts.path;
    let new = match r {
        RewriteSpec::Prefix { from, to } => {
            let rest = path.strip_prefix(&**from)?;
            let mut s = String::with_capacity(to.len() + rest.len());
            s.push_str(to);
            s.push_str(rest);
            s
        }
        RewriteSpec::Regex { pattern, replace } => {
            let caps = pattern.captures(path)?;
            let whole = caps.get(0)?;
            let mut s = String::with_capacity(path.len() + 16);
            s.push_str(&path[..whole.start()]);
            replace.render_into(facts, |n| caps.get(n).map(|m| m.as_str()), &mut s);
            s.push_str(&path[whole.end()..]);
            s
        }
    };
    Some(if new.starts_with('/') {
        new
    } else {
        format!("/{new}")
    })
}
