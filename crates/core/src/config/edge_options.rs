//! Validation of the per-pool and per-route delivery options: session affinity
//! (`pools[].load_balancing.session_affinity`) and compression (`routes[].compression`).

use super::error::{Collector, join};
use super::model::{CompressionConfig, SessionAffinityConfig};
use super::raw::{RawCompression, RawSessionAffinity};
use crate::compression::MediaRange;

/// Longest affinity cookie name.
const MAX_COOKIE_NAME: usize = 64;

/// `session_affinity` under the pool's `load_balancing` at `base`.
pub(super) fn session_affinity(
    c: &mut Collector,
    base: &str,
    raw: Option<&RawSessionAffinity>,
) -> Option<SessionAffinityConfig> {
    let raw = raw?;
    let path = join(&join(base, "session_affinity"), "cookie");
    let Some(cookie) = &raw.cookie else {
        c.require(path, "is required");
        return None;
    };
    if cookie.is_empty() || !cookie.bytes().all(|b| is_token_byte(b) && b != b'`') {
        let shown: String = cookie.chars().take(80).collect();
        c.push(
            path,
            format!("{shown:?} is not a cookie name: use letters, digits and !#$%&'*+.^_|~-"),
        );
        return None;
    }
    if cookie.len() > MAX_COOKIE_NAME {
        c.push(
            path,
            format!(
                "a cookie name of {} characters is too long: at most {MAX_COOKIE_NAME}",
                cookie.len()
            ),
        );
        return None;
    }
    Some(SessionAffinityConfig {
        cookie: cookie.clone(),
    })
}

/// A route's `compression` at `path`.
pub(super) fn compression(
    c: &mut Collector,
    path: &str,
    raw: Option<&RawCompression>,
) -> Option<CompressionConfig> {
    let raw = raw?;
    let types = match &raw.types {
        None => vec![
            MediaRange::parse("text/*")?,
            MediaRange::parse("application/json")?,
        ],
        Some(list) if list.is_empty() => {
            c.push(join(path, "types"), "must name at least one media type");
            Vec::new()
        }
        Some(list) => list
            .iter()
            .enumerate()
            .filter_map(|(i, t)| {
                let parsed = MediaRange::parse(t);
                if parsed.is_none() {
                    c.push(
                        format!("{}[{i}]", join(path, "types")),
                        format!("{t:?} is not a media type: use type/subtype or type/*"),
                    );
                }
                parsed
            })
            .collect(),
    };
    const MAX: i64 = 1 << 30;
    let min_bytes = match raw.min_bytes {
        None => 1024,
        Some(v) if (0..=MAX).contains(&v) => v,
        Some(v) => {
            c.push(
                join(path, "min_bytes"),
                format!("must be between 0 and {MAX}, got {v}"),
            );
            1024
        }
    };
    Some(CompressionConfig {
        types,
        min_bytes: min_bytes.unsigned_abs(),
    })
}

/// Whether `b` may appear in an RFC 9110 token.
pub(crate) fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use crate::config::parse;

    fn errors(extra_pool: &str, extra_route: &str) -> Vec<String> {
        let text = format!(
            r#"{{"pools":[{{"name":"p","origins":[{{"name":"a","address":"127.0.0.1:1"}}]{extra_pool}}}],
                "routes":[{{"name":"r","pool":"p"{extra_route}}}]}}"#
        );
        match parse(&text) {
            Ok(_) => Vec::new(),
            Err(e) => e.0.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn both_options_parse_with_their_defaults() {
        let text = r#"{"pools":[{"name":"p","origins":[{"name":"a","address":"127.0.0.1:1"}],
            "load_balancing":{"session_affinity":{"cookie":"sticky"}}}],
            "routes":[{"name":"r","pool":"p","compression":{}},{"name":"s","pool":"p","paths":["/s"]}]}"#;
        let cfg = parse(text).unwrap();
        let aff = cfg.pools[0]
            .load_balancing
            .session_affinity
            .as_ref()
            .unwrap();
        assert_eq!(aff.cookie, "sticky");
        let comp = cfg.routes[0].compression.as_ref().unwrap();
        assert_eq!(comp.min_bytes, 1024);
        let shown: Vec<String> = comp.types.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["text/*", "application/json"]);
        assert!(cfg.routes[1].compression.is_none());
    }

    #[test]
    fn every_bad_value_is_an_error_at_its_path() {
        assert_eq!(
            errors(
                r#","load_balancing":{"session_affinity":{"cookie":"a b"}}"#,
                ""
            ),
            [
                r#"pools[0].load_balancing.session_affinity.cookie: "a b" is not a cookie name: use letters, digits and !#$%&'*+.^_|~-"#
            ]
        );
        assert_eq!(
            errors(r#","load_balancing":{"session_affinity":{}}"#, ""),
            ["pools[0].load_balancing.session_affinity.cookie: is required"]
        );
        assert_eq!(
            errors(
                "",
                r#","compression":{"types":["text/*","json","a/b/c"],"min_bytes":-1}"#
            ),
            [
                "routes[0].compression.min_bytes: must be between 0 and 1073741824, got -1",
                r#"routes[0].compression.types[1]: "json" is not a media type: use type/subtype or type/*"#,
                r#"routes[0].compression.types[2]: "a/b/c" is not a media type: use type/subtype or type/*"#,
            ]
        );
        assert_eq!(
            errors("", r#","compression":{"types":[]}"#),
            ["routes[0].compression.types: must name at least one media type"]
        );
        assert!(
            !errors("", r#","compression":{"level":3}"#).is_empty(),
            "unknown key"
        );
    }
}
