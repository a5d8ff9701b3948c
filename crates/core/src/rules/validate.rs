//! Stage two of rule sets: check the raw rules, collect every error with its JSON path, compile
//! what is valid.

use super::compiled::*;
use super::raw::*;
use super::template::{Part, Template};
use crate::cidr::Cidr;
use crate::config::raw::deserialize_collecting;
use crate::config::{
    Collector, ConfigErrors, PathPattern, friendly, join, name_problem, path_key, path_pattern,
};
use http::{HeaderName, HeaderValue};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};

/// Most rules in one rule set.
pub const MAX_RULES_PER_SET: usize = 1000;

/// Highest `requests_per_second` and `burst`.
pub const MAX_RATE: i64 = 1_000_000;

/// Parses and validates `rule_sets` (the JSON `value`, found at `base` in the document, e.g.
/// `rule_sets`) against the configuration's pools (`pools`, in document order: a rule's
/// `pool` is kept as an index into it). Every error names its JSON path; they are sorted by
/// path as the configuration's are.
pub fn parse_rule_sets<S: AsRef<str>>(
    value: &Value,
    base: &str,
    pools: &[S],
) -> Result<CompiledRuleSets, ConfigErrors> {
    let mut c = Collector::default();
    let (raw, raw_errors) = deserialize_collecting::<Vec<RawRuleSet>>(value.clone());
    for e in raw_errors {
        c.push(join(base, &e.path), friendly(&e.message));
    }
    let compiled = match raw {
        Some(raw) => compile(&mut c, base, &raw, pools),
        None => CompiledRuleSets::default(),
    };
    if c.errors.is_empty() {
        Ok(compiled)
    } else {
        let mut errors = c.errors;
        errors.sort_by_cached_key(|e| path_key(&e.path));
        Err(ConfigErrors(errors))
    }
}

impl CompiledRuleSets {
    /// A route's `rule_sets` (found at `path`, e.g. `routes[2].rule_sets`) as ids, in order;
    /// an unknown or repeated name is an error at its index.
    pub fn resolve<S: AsRef<str>>(
        &self,
        names: &[S],
        path: &str,
    ) -> Result<Vec<RuleSetId>, ConfigErrors> {
        let mut c = Collector::default();
        let mut ids = Vec::with_capacity(names.len());
        for (i, name) in names.iter().enumerate() {
            let name = name.as_ref();
            match self.id(name) {
                Some(id) if ids.contains(&id) => {
                    c.push(format!("{path}[{i}]"), format!("{name:?} is named twice"));
                }
                Some(id) => ids.push(id),
                None => {
                    let known: Vec<&str> = self.names().collect();
                    c.push(
                        format!("{path}[{i}]"),
                        format!(
                            "{name:?} is not a rule set (rule sets: {})",
                            known.join(", ")
                        ),
                    );
                }
            }
        }
        if c.errors.is_empty() {
            Ok(ids)
        } else {
            Err(ConfigErrors(c.errors))
        }
    }
}

fn compile<S: AsRef<str>>(
    c: &mut Collector,
    base: &str,
    raw: &[RawRuleSet],
    pools: &[S],
) -> CompiledRuleSets {
    let mut out = CompiledRuleSets::default();
    let mut set_names: HashMap<&str, usize> = HashMap::new();
    for (i, set) in raw.iter().enumerate() {
        let path = format!("{base}[{i}]");
        let name = checked_name(c, &join(&path, "name"), set.name.as_deref());
        if let Some(n) = name {
            if let Some(first) = set_names.insert(n, i) {
                c.push(
                    join(&path, "name"),
                    format!("{n:?} is already the name of {base}[{first}]"),
                );
            }
        }
        let rules_path = join(&path, "rules");
        let rules = match &set.rules {
            None => {
                c.require(&rules_path, "is required: a list of rules");
                &[][..]
            }
            Some(r) => r.as_slice(),
        };
        if rules.len() > MAX_RULES_PER_SET {
            c.push(
                &rules_path,
                format!(
                    "holds {} rules; a rule set holds at most {MAX_RULES_PER_SET}",
                    rules.len()
                ),
            );
        }
        let start = out.rules.len();
        let mut rule_names: HashMap<&str, usize> = HashMap::new();
        for (k, rule) in rules.iter().enumerate() {
            let rpath = format!("{rules_path}[{k}]");
            let rule_name = checked_name(c, &join(&rpath, "name"), rule.name.as_deref());
            if let Some(n) = rule_name {
                if let Some(first) = rule_names.insert(n, k) {
                    c.push(
                        join(&rpath, "name"),
                        format!("{n:?} is already the name of rules[{first}] in this rule set"),
                    );
                }
            }
            let when = compile_when(c, &join(&rpath, "when"), rule.when.as_ref());
            let groups = when.path_regex.as_ref().map(|re| re.captures_len() - 1);
            let then = compile_then(c, &join(&rpath, "then"), rule.then.as_ref(), groups, pools);
            out.rules.push(Rule {
                set: i,
                name: rule_name.unwrap_or_default().into(),
                when,
                then,
                stop: rule.stop.unwrap_or(false),
            });
        }
        out.sets.push(RuleSet {
            name: name.unwrap_or_default().into(),
            rules: start..out.rules.len(),
        });
    }
    out
}

/// A required name of a rule set or rule, `[a-z0-9_-]+`.
fn checked_name<'a>(c: &mut Collector, path: &str, value: Option<&'a str>) -> Option<&'a str> {
    match value {
        None => {
            c.require(path, "is required");
            None
        }
        Some(n) => match name_problem("name", n) {
            None => Some(n),
            Some(why) => {
                c.push(path, why);
                None
            }
        },
    }
}

/// A list condition: each item parsed by `parse`, an empty list refused.
fn list<T>(
    c: &mut Collector,
    path: &str,
    raw: Option<&[String]>,
    what: &str,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Vec<T> {
    let Some(items) = raw else {
        return Vec::new();
    };
    if items.is_empty() {
        c.push(
            path,
            format!("must hold at least one {what} (or leave it out)"),
        );
    }
    items
        .iter()
        .enumerate()
        .filter_map(|(i, s)| match parse(s) {
            Ok(t) => Some(t),
            Err(why) => {
                c.push(format!("{path}[{i}]"), why);
                None
            }
        })
        .collect()
}

fn compile_when(c: &mut Collector, path: &str, raw: Option<&RawWhen>) -> When {
    let Some(w) = raw else {
        return When::default();
    };
    let p = |f: &str| join(path, f);
    let methods =
        list(
            c,
            &p("methods"),
            w.methods.as_deref(),
            "method",
            |m| match http::Method::from_bytes(m.as_bytes()) {
                Ok(_) => Ok(Box::<str>::from(m)),
                Err(_) => Err(format!("{m:?} is not an HTTP method token")),
            },
        );
    let schemes = list(
        c,
        &p("schemes"),
        w.schemes.as_deref(),
        "scheme",
        |s| match s {
            "http" => Ok((true, false)),
            "https" => Ok((false, true)),
            _ => Err(format!("{s:?} is not a scheme: use \"http\" or \"https\"")),
        },
    );
    let schemes = w.schemes.as_ref().map(|_| {
        schemes
            .iter()
            .fold((false, false), |acc, s| (acc.0 || s.0, acc.1 || s.1))
    });
    let paths: Vec<PathPattern> = list(c, &p("paths"), w.paths.as_deref(), "path", path_pattern);
    let client_ips = list(
        c,
        &p("client_ips"),
        w.client_ips.as_deref(),
        "network",
        Cidr::parse,
    );
    let not_client_ips = list(
        c,
        &p("not_client_ips"),
        w.not_client_ips.as_deref(),
        "network",
        Cidr::parse,
    );
    let headers = tests(c, &p("headers"), w.headers.as_deref(), |n| {
        HeaderName::from_bytes(n.as_bytes())
            .map_err(|_| format!("{n:?} is not a valid header name"))
    });
    let query = tests(c, &p("query"), w.query.as_deref(), |n| {
        if n.is_empty() {
            Err("must not be empty".to_string())
        } else {
            Ok(Box::<str>::from(n))
        }
    });
    let cookies = tests(c, &p("cookies"), w.cookies.as_deref(), |n| {
        if n.is_empty()
            || n.bytes()
                .any(|b| b <= b' ' || b == b'=' || b == b';' || b == 0x7f)
        {
            Err(format!("{n:?} is not a valid cookie name"))
        } else {
            Ok(Box::<str>::from(n))
        }
    });
    let path_regex = w
        .path_regex
        .as_deref()
        .and_then(|re| compile_regex(c, &p("path_regex"), re));
    When {
        methods: methods.into(),
        schemes,
        paths: paths.into(),
        client_ips: client_ips.into(),
        not_client_ips: not_client_ips.into(),
        headers: headers.into(),
        query: query.into(),
        cookies: cookies.into(),
        path_regex,
    }
}

/// A regex error on one line: the crate's message without its drawing of the pattern.
fn regex_error(e: &regex::Error) -> String {
    let text = e.to_string();
    let why = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("error: "))
        .unwrap_or_else(|| text.lines().last().unwrap_or_default().trim());
    format!("not a valid regular expression: {why}")
}

fn compile_regex(c: &mut Collector, path: &str, pattern: &str) -> Option<regex::Regex> {
    regex::Regex::new(pattern)
        .map_err(|e| c.push(path, regex_error(&e)))
        .ok()
}

/// `headers`, `query` or `cookies`: each test has a valid name and exactly one of `equals`,
/// `regex`, `present: true`, `absent: true`.
fn tests<N>(
    c: &mut Collector,
    path: &str,
    raw: Option<&[RawMatch]>,
    parse_name: impl Fn(&str) -> Result<N, String>,
) -> Vec<(N, Test)> {
    let mut out = Vec::new();
    for (i, m) in raw.unwrap_or_default().iter().enumerate() {
        let mpath = format!("{path}[{i}]");
        let p = |f: &str| join(&mpath, f);
        let name = match m.name.as_deref() {
            None => {
                c.require(p("name"), "is required");
                None
            }
            Some(n) => parse_name(n).map_err(|why| c.push(p("name"), why)).ok(),
        };
        let given = [
            m.equals.is_some(),
            m.regex.is_some(),
            m.present.is_some(),
            m.absent.is_some(),
        ]
        .iter()
        .filter(|g| **g)
        .count();
        if given != 1 {
            c.push(
                &mpath,
                "give exactly one of \"equals\", \"regex\", \"present\": true, \"absent\": true",
            );
            continue;
        }
        let test = if let Some(v) = &m.equals {
            Some(Test::Equals(v.as_bytes().into()))
        } else if let Some(re) = &m.regex {
            regex::bytes::Regex::new(re)
                .map_err(|e| c.push(p("regex"), regex_error(&e)))
                .ok()
                .map(Test::Regex)
        } else if let Some(present) = m.present {
            if !present {
                c.push(
                    p("present"),
                    "must be true (for a name not there, write \"absent\": true)",
                );
            }
            Some(Test::Present)
        } else {
            if m.absent == Some(false) {
                c.push(
                    p("absent"),
                    "must be true (for a name there, write \"present\": true)",
                );
            }
            Some(Test::Absent)
        };
        if let (Some(name), Some(test)) = (name, test) {
            out.push((name, test));
        }
    }
    out
}

/// What is wrong with a header that rules would edit, if anything.
fn header_problem(name: &str) -> Result<HeaderName, String> {
    let parsed = HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| format!("{name:?} is not a valid header name"))?;
    let lower = parsed.as_str();
    if lower == "via"
        || lower == "x-request-id"
        || lower.starts_with("x-forwarded-")
        || lower.starts_with("x-portico-")
    {
        return Err(format!(
            "{name:?} is a header Portico owns (Via, X-Request-Id, X-Forwarded-*, X-Portico-*): rules cannot set or remove it"
        ));
    }
    const FRAMING: [&str; 8] = [
        "connection",
        "content-length",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    ];
    if FRAMING.contains(&lower) {
        return Err(format!(
            "{name:?} is a framing or hop-by-hop header the proxy manages: rules cannot set or remove it"
        ));
    }
    Ok(parsed)
}

/// Where the `{1}`…`{9}` of a template come from, to check it names groups that exist.
#[derive(Clone, Copy)]
enum Groups<'a> {
    /// `when.path_regex`, with this many groups, or none.
    When(Option<usize>),
    /// A rewrite's own pattern, with this many groups; no other variable allowed.
    Rewrite(usize, &'a str),
}

/// Parses a template and checks the groups it names.
fn template(c: &mut Collector, path: &str, text: &str, groups: Groups<'_>) -> Option<Template> {
    let t = Template::parse(text)
        .map_err(|why| c.push(path, why))
        .ok()?;
    let max = t.max_group();
    let problem = match groups {
        Groups::When(None) if max > 0 => Some(format!(
            "{{{max}}} names a group of when.path_regex, but the rule has no path_regex"
        )),
        Groups::When(Some(n)) | Groups::Rewrite(n, _) if max > n => Some(format!(
            "{{{max}}} names group {max}, but the pattern has {n} group{}",
            if n == 1 { "" } else { "s" }
        )),
        Groups::Rewrite(_, what) => t
            .parts()
            .iter()
            .any(|p| !matches!(p, Part::Text(_) | Part::Group(_)))
            .then(|| format!("{what} may only use the pattern's groups {{1}}…{{9}}")),
        _ => None,
    };
    match problem {
        Some(why) => {
            c.push(path, why);
            None
        }
        None => Some(t),
    }
}

/// A header value template: its text must be a valid header value.
fn value_template(
    c: &mut Collector,
    path: &str,
    text: &str,
    groups: Groups<'_>,
) -> Option<ValueTemplate> {
    if HeaderValue::from_str(text).is_err() {
        c.push(
            path,
            "holds a character a header value cannot: control characters and non-ASCII are refused",
        );
        return None;
    }
    let template = template(c, path, text, groups)?;
    let literal = template
        .literal()
        .and_then(|t| HeaderValue::from_str(t).ok());
    Some(ValueTemplate { template, literal })
}

/// Whether a template names a group.
fn uses_groups(t: &Template) -> bool {
    t.max_group() > 0
}

fn compile_then<S: AsRef<str>>(
    c: &mut Collector,
    path: &str,
    raw: Option<&RawThen>,
    groups: Option<usize>,
    pools: &[S],
) -> Then {
    let Some(t) = raw else {
        return Then::default();
    };
    let p = |f: &str| join(path, f);
    let g = Groups::When(groups);
    let mut uses = false;
    if t.respond.is_some() && t.redirect.is_some() {
        c.push(p("redirect"), "a rule may respond or redirect, not both");
    }
    let respond = t
        .respond
        .as_ref()
        .and_then(|r| compile_respond(c, &p("respond"), r, g, &mut uses));
    let redirect = t
        .redirect
        .as_ref()
        .and_then(|r| compile_redirect(c, &p("redirect"), r, g, &mut uses));
    let ending = respond.or(redirect);
    let rate_limit = t
        .rate_limit
        .as_ref()
        .and_then(|r| compile_rate_limit(c, &p("rate_limit"), r));
    let rewrite = t
        .rewrite
        .as_ref()
        .and_then(|r| compile_rewrite(c, &p("rewrite"), r));
    let pool =
        t.pool
            .as_deref()
            .and_then(|name| match pools.iter().position(|q| q.as_ref() == name) {
                Some(index) => Some((index, Box::<str>::from(name))),
                None => {
                    let known: Vec<&str> = pools.iter().map(AsRef::as_ref).collect();
                    c.push(
                        p("pool"),
                        format!("{name:?} is not a pool (pools: {})", known.join(", ")),
                    );
                    None
                }
            });
    let request_headers = compile_edits(c, &p("request_headers"), t.request_headers.as_ref(), g);
    let response_headers = compile_edits(c, &p("response_headers"), t.response_headers.as_ref(), g);
    for e in request_headers.iter().chain(response_headers.iter()) {
        if let EditSpec::Set(_, v) | EditSpec::Add(_, v) = e {
            uses |= uses_groups(&v.template);
        }
    }
    Then {
        ending,
        rate_limit,
        rewrite,
        pool,
        request_headers: request_headers.into(),
        response_headers: response_headers.into(),
        uses_groups: uses,
    }
}

fn compile_respond(
    c: &mut Collector,
    path: &str,
    r: &RawRespond,
    g: Groups<'_>,
    uses: &mut bool,
) -> Option<EndingSpec> {
    let p = |f: &str| join(path, f);
    let status = match r.status {
        None => {
            c.require(p("status"), "is required: 200-599");
            None
        }
        Some(s) if (200..=599).contains(&s) => Some(s as u16),
        Some(s) => {
            c.push(p("status"), format!("must be between 200 and 599, got {s}"));
            None
        }
    };
    let body = template(c, &p("body"), r.body.as_deref().unwrap_or(""), g);
    let headers = header_map(c, &p("headers"), r.headers.as_ref(), g);
    *uses |= body.as_ref().is_some_and(uses_groups)
        || headers.iter().any(|(_, v)| uses_groups(&v.template));
    let body = body?;
    Some(EndingSpec::Respond {
        status: status?,
        body_literal: body
            .literal()
            .map(|t| bytes::Bytes::copy_from_slice(t.as_bytes())),
        body,
        headers: headers.into(),
    })
}

fn compile_redirect(
    c: &mut Collector,
    path: &str,
    r: &RawRedirect,
    g: Groups<'_>,
    uses: &mut bool,
) -> Option<EndingSpec> {
    let p = |f: &str| join(path, f);
    let status = match r.status {
        None => {
            c.require(p("status"), "is required: 301, 302, 307 or 308");
            None
        }
        Some(s @ (301 | 302 | 307 | 308)) => Some(s as u16),
        Some(s) => {
            c.push(
                p("status"),
                format!("must be 301, 302, 307 or 308, got {s}"),
            );
            None
        }
    };
    let location = match r.location.as_deref() {
        None => {
            c.require(p("location"), "is required (e.g. \"https://{host}{path}\")");
            None
        }
        Some("") => {
            c.push(p("location"), "must not be empty");
            None
        }
        Some(l) => value_template(c, &p("location"), l, g),
    };
    *uses |= location.as_ref().is_some_and(|l| uses_groups(&l.template));
    Some(EndingSpec::Redirect {
        status: status?,
        location: location?,
    })
}

/// `respond.headers`: names checked as for edits, values templates.
fn header_map(
    c: &mut Collector,
    path: &str,
    raw: Option<&BTreeMap<String, String>>,
    g: Groups<'_>,
) -> Vec<(HeaderName, ValueTemplate)> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for (name, value) in raw.into_iter().flatten() {
        let hpath = join(path, name);
        let parsed = header_problem(name).map_err(|why| c.push(&hpath, why)).ok();
        if let Some(n) = &parsed {
            if !seen.insert(n.clone()) {
                c.push(
                    &hpath,
                    format!("{name:?} is given twice (header names are case-insensitive)"),
                );
            }
        }
        let value = value_template(c, &hpath, value, g);
        if let (Some(n), Some(v)) = (parsed, value) {
            out.push((n, v));
        }
    }
    out
}

fn compile_edits(
    c: &mut Collector,
    path: &str,
    raw: Option<&RawHeaderEdits>,
    g: Groups<'_>,
) -> Vec<EditSpec> {
    let Some(raw) = raw else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let rpath = join(path, "remove");
    for (i, name) in raw.remove.iter().flatten().enumerate() {
        match header_problem(name) {
            Ok(n) => out.push(EditSpec::Remove(n)),
            Err(why) => c.push(format!("{rpath}[{i}]"), why),
        }
    }
    for (n, v) in header_map(c, &join(path, "set"), raw.set.as_ref(), g) {
        out.push(EditSpec::Set(n, v));
    }
    for (n, v) in header_map(c, &join(path, "add"), raw.add.as_ref(), g) {
        out.push(EditSpec::Add(n, v));
    }
    out
}

fn compile_rate_limit(c: &mut Collector, path: &str, r: &RawRateLimit) -> Option<RateLimit> {
    let p = |f: &str| join(path, f);
    let key = match r.key.as_deref() {
        None => {
            c.require(
                p("key"),
                "is required: \"client_ip\", \"header:NAME\" or \"route\"",
            );
            None
        }
        Some("client_ip") => Some(RateKeySpec::ClientIp),
        Some("route") => Some(RateKeySpec::Route),
        Some(k) => match k.strip_prefix("header:") {
            Some(name) => HeaderName::from_bytes(name.as_bytes())
                .map(RateKeySpec::Header)
                .map_err(|_| c.push(p("key"), format!("{name:?} is not a valid header name")))
                .ok(),
            None => {
                c.push(
                    p("key"),
                    format!("{k:?} is not a key: use \"client_ip\", \"header:NAME\" or \"route\""),
                );
                None
            }
        },
    };
    let rps = match r.requests_per_second {
        None => {
            c.require(p("requests_per_second"), "is required: a rate above 0");
            None
        }
        Some(v) if v > 0.0 && v <= MAX_RATE as f64 => Some(v),
        Some(v) => {
            c.push(
                p("requests_per_second"),
                format!("must be above 0 and at most {MAX_RATE}, got {v}"),
            );
            None
        }
    };
    let burst = match r.burst {
        None => rps.map(|v| v.ceil().max(1.0) as u32),
        Some(b) if (1..=MAX_RATE).contains(&b) => Some(b as u32),
        Some(b) => {
            c.push(
                p("burst"),
                format!("must be between 1 and {MAX_RATE}, got {b}"),
            );
            None
        }
    };
    Some(RateLimit {
        key: key?,
        requests_per_second: rps?,
        burst: burst?,
    })
}

/// A path or path piece a rewrite writes: visible ASCII without `?` and `#`.
fn path_text_problem(s: &str) -> Option<&'static str> {
    s.bytes()
        .any(|b| !(0x21..=0x7e).contains(&b) || b == b'?' || b == b'#')
        .then_some("must be visible ASCII without '?' or '#' (percent-encode the rest)")
}

fn compile_rewrite(c: &mut Collector, path: &str, r: &RawRewrite) -> Option<RewriteSpec> {
    match (&r.path_prefix, &r.path_regex) {
        (Some(pp), None) => {
            let p = |f: &str| join(&join(path, "path_prefix"), f);
            let mut piece = |field: &str, v: Option<&String>| match v {
                None => {
                    c.require(p(field), "is required: a path starting with '/'");
                    None
                }
                Some(s) if !s.starts_with('/') => {
                    c.push(p(field), format!("{s:?} must start with '/'"));
                    None
                }
                Some(s) => match path_text_problem(s) {
                    Some(why) => {
                        c.push(p(field), why);
                        None
                    }
                    None => Some(Box::<str>::from(s.as_str())),
                },
            };
            let from = piece("from", pp.from.as_ref());
            let to = piece("to", pp.to.as_ref());
            Some(RewriteSpec::Prefix {
                from: from?,
                to: to?,
            })
        }
        (None, Some(pr)) => {
            let p = |f: &str| join(&join(path, "path_regex"), f);
            let pattern = match pr.pattern.as_deref() {
                None => {
                    c.require(p("pattern"), "is required: a regular expression");
                    None
                }
                Some(re) => compile_regex(c, &p("pattern"), re),
            };
            let replace = match pr.replace.as_deref() {
                None => {
                    c.require(p("replace"), "is required (e.g. \"/v2/{1}\")");
                    None
                }
                Some(s) => match path_text_problem(s) {
                    Some(why) => {
                        c.push(p("replace"), why);
                        None
                    }
                    None => {
                        let groups = pattern.as_ref().map_or(9, |re| re.captures_len() - 1);
                        template(c, &p("replace"), s, Groups::Rewrite(groups, "replace"))
                    }
                },
            };
            Some(RewriteSpec::Regex {
                pattern: pattern?,
                replace: replace?,
            })
        }
        _ => {
            c.push(
                path,
                "give exactly one of \"path_prefix\" and \"path_regex\"",
            );
            None
        }
    }
}
