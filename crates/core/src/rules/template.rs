//! Templates: `{host}`, `{path}`, `{query}`, `{client_ip}`, `{request_id}` and `{1}`…`{9}`
//! (groups of a regex) in `location`, `body`, header values and `rewrite.path_regex.replace`.
//!
//! A `{` followed by lower-case letters, digits or `_` and a `}` is a reference and must name a
//! variable; any other `{` is text, so JSON bodies (`{"error":"blocked"}`) need no escaping.

use super::facts::RequestFacts;
use std::fmt::Write;

/// One piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Part {
    /// Text as written.
    Text(Box<str>),
    /// The Host without its port.
    Host,
    /// The path without the query.
    Path,
    /// The query without the `?`, empty when there is none.
    Query,
    /// The client's address, empty when unknown.
    ClientIp,
    /// The request id.
    RequestId,
    /// Group 1–9 of the regex the template follows, empty when it did not take part.
    Group(usize),
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Template {
    parts: Box<[Part]>,
}

impl Template {
    /// Parses `s`; an unknown `{name}` is an error naming it.
    pub(crate) fn parse(s: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut text = String::new();
        let mut rest = s;
        while let Some(open) = rest.find('{') {
            text.push_str(&rest[..open]);
            let after = &rest[open + 1..];
            let name_len = after
                .bytes()
                .take_while(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_')
                .count();
            if name_len == 0 || after.as_bytes().get(name_len) != Some(&b'}') {
                text.push('{');
                rest = after;
                continue;
            }
            let part = match &after[..name_len] {
                "host" => Part::Host,
                "path" => Part::Path,
                "query" => Part::Query,
                "client_ip" => Part::ClientIp,
                "request_id" => Part::RequestId,
                n if n.len() == 1 && (b'1'..=b'9').contains(&n.as_bytes()[0]) => {
                    Part::Group(usize::from(n.as_bytes()[0] - b'0'))
                }
                n => {
                    return Err(format!(
                        "{{{n}}} is not a template variable: use {{host}}, {{path}}, {{query}}, {{client_ip}}, {{request_id}} or {{1}}…{{9}}"
                    ));
                }
            };
            if !text.is_empty() {
                parts.push(Part::Text(std::mem::take(&mut text).into()));
            }
            parts.push(part);
            rest = &after[name_len + 1..];
        }
        text.push_str(rest);
        if !text.is_empty() {
            parts.push(Part::Text(text.into()));
        }
        Ok(Template {
            parts: parts.into(),
        })
    }

    /// The pieces, in order.
    pub(crate) fn parts(&self) -> &[Part] {
        &self.parts
    }

    /// The template's text when it has no variables.
    pub(crate) fn literal(&self) -> Option<&str> {
        match &*self.parts {
            [] => Some(""),
            [Part::Text(t)] => Some(t),
            _ => None,
        }
    }

    /// The highest group it names (0 for none).
    pub(crate) fn max_group(&self) -> usize {
        self.parts
            .iter()
            .filter_map(|p| match p {
                Part::Group(n) => Some(*n),
                _ => None,
            })
            .max()
            .unwrap_or(0)
    }

    /// Appends the rendering to `out`; `group(n)` gives group `n` of the regex, if it took part.
    pub(crate) fn render_into<'g>(
        &self,
        facts: &RequestFacts<'_>,
        group: impl Fn(usize) -> Option<&'g str>,
        out: &mut String,
    ) {
        for part in &*self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Host => out.push_str(host_without_port(facts.host)),
                Part::Path => out.push_str(facts.path),
                Part::Query => out.push_str(facts.query.unwrap_or("")),
                Part::ClientIp => {
                    if let Some(ip) = facts.client_ip {
                        let _ = write!(out, "{ip}");
                    }
                }
                Part::RequestId => out.push_str(facts.request_id),
                Part::Group(n) => out.push_str(group(*n).unwrap_or("")),
            }
        }
    }
}

/// `host:port` → `host`, `[v6]:port` → `[v6]`; anything else as it is.
pub(crate) fn host_without_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.find(']').map_or(host, |end| &host[..=end]);
    }
    match host.split_once(':') {
        Some((name, port)) if !port.contains(':') => name,
        _ => host,
    }
}
