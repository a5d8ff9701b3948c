//! Session affinity (`pools[].load_balancing.session_affinity`): which origin a request's
//! affinity cookie pins it to, and the cookie a response carries. Whether the pin holds is
//! step 0 of selection ([`crate::selection::pin_holds`]).
//!
//! The cookie's value is the origin's name (unique in its pool, `[a-z0-9_-]+`): it names the
//! origin without revealing its address, and it survives reloads that reorder or add origins.

use crate::config::{PoolConfig, SessionAffinityConfig};
use http::HeaderMap;

/// The origin (index in `pool.origins`) the request's affinity cookie names: `None` when the
/// pool has no affinity, the request no such cookie, or the cookie names no origin of the
/// pool (removed since, or made up). The first such cookie counts.
pub fn pinned_origin(pool: &PoolConfig, headers: &HeaderMap) -> Option<usize> {
    let affinity = pool.load_balancing.session_affinity.as_ref()?;
    let value = cookie_value(headers, &affinity.cookie)?;
    pool.origins.iter().position(|o| o.name.as_bytes() == value)
}

/// The `Set-Cookie` value pinning a client to `origin`, or `None` when the request already
/// carried it (`pinned` is that origin). A session cookie for the whole site: `Path=/`,
/// `HttpOnly`, `SameSite=Lax`, and `Secure` when the client came over TLS.
pub fn cookie_to_set(
    affinity: &SessionAffinityConfig,
    origin_name: &str,
    pinned_name: Option<&str>,
    tls: bool,
) -> Option<String> {
    if pinned_name == Some(origin_name) {
        return None;
    }
    let secure = if tls { "; Secure" } else { "" };
    Some(format!(
        "{}={origin_name}; Path=/; HttpOnly; SameSite=Lax{secure}",
        affinity.cookie
    ))
}

/// The value of the first cookie `name` in the `Cookie` headers (`a=1; b=2`).
fn cookie_value<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h [u8]> {
    headers
        .get_all(http::header::COOKIE)
        .into_iter()
        .flat_map(|line| line.as_bytes().split(|&b| b == b';'))
        .find_map(|pair| {
            let pair = pair.trim_ascii();
            let eq = pair.iter().position(|&b| b == b'=')?;
            (pair[..eq].trim_ascii() == name.as_bytes()).then(|| {
                let v = pair[eq + 1..].trim_ascii();
                // RFC 6265 allows the value in double quotes.
                v.strip_prefix(b"\"")
                    .and_then(|v| v.strip_suffix(b"\""))
                    .unwrap_or(v)
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse;
    use http::HeaderValue;

    fn pool(affinity: bool) -> PoolConfig {
        let lb = if affinity {
            r#","load_balancing":{"session_affinity":{"cookie":"stick"}}"#
        } else {
            ""
        };
        let text = format!(
            r#"{{"pools":[{{"name":"p","origins":[{{"name":"eu-1","address":"10.0.0.1:80"}},
                {{"name":"eu-2","address":"10.0.0.2:80"}}]{lb}}}],
                "routes":[{{"name":"r","pool":"p"}}]}}"#
        );
        parse(&text).unwrap().pools.remove(0)
    }

    fn cookies(lines: &[&'static str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for l in lines {
            h.append(http::header::COOKIE, HeaderValue::from_static(l));
        }
        h
    }

    #[test]
    fn the_cookie_names_an_origin_of_the_pool_by_name() {
        let p = pool(true);
        assert_eq!(pinned_origin(&p, &cookies(&["stick=eu-2"])), Some(1));
        assert_eq!(
            pinned_origin(&p, &cookies(&["a=1; stick=eu-1; b=2"])),
            Some(0)
        );
        assert_eq!(
            pinned_origin(&p, &cookies(&["a=1", " stick = \"eu-2\" "])),
            Some(1)
        );
        assert_eq!(
            pinned_origin(&p, &cookies(&["stick=eu-2; stick=eu-1"])),
            Some(1)
        );
        assert_eq!(
            pinned_origin(&p, &cookies(&["stick=eu-3"])),
            None,
            "no such origin"
        );
        assert_eq!(pinned_origin(&p, &cookies(&["stick=10.0.0.1:80"])), None);
        assert_eq!(
            pinned_origin(&p, &cookies(&["Stick=eu-1", "xstick=eu-1"])),
            None
        );
        assert_eq!(pinned_origin(&p, &cookies(&["stick"])), None);
        assert_eq!(pinned_origin(&p, &HeaderMap::new()), None);
        assert_eq!(pinned_origin(&pool(false), &cookies(&["stick=eu-1"])), None);
    }

    proptest::proptest! {
        #[test]
        fn any_cookie_header_pins_at_most_an_origin_it_names(
            lines in proptest::collection::vec(proptest::collection::vec(proptest::num::u8::ANY, 0..40), 0..4),
            names in proptest::collection::vec("(stick|x|eu-1|eu-2|=|;| |\"|\t)", 0..12),
        ) {
            let p = pool(true);
            let mut h = HeaderMap::new();
            for l in lines.iter().map(|l| l.as_slice()).chain([names.concat().as_bytes()]) {
                if let Ok(v) = HeaderValue::from_bytes(l) {
                    h.append(http::header::COOKIE, v);
                }
            }
            if let Some(i) = pinned_origin(&p, &h) {
                let text: Vec<String> = h
                    .get_all(http::header::COOKIE)
                    .iter()
                    .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                    .collect();
                proptest::prop_assert!(text.concat().contains(&p.origins[i].name));
            }
        }
    }

    #[test]
    fn a_cookie_is_set_only_when_it_would_change() {
        let a = SessionAffinityConfig {
            cookie: "stick".into(),
        };
        assert_eq!(
            cookie_to_set(&a, "eu-1", None, false).as_deref(),
            Some("stick=eu-1; Path=/; HttpOnly; SameSite=Lax")
        );
        assert_eq!(
            cookie_to_set(&a, "eu-1", Some("eu-2"), true).as_deref(),
            Some("stick=eu-1; Path=/; HttpOnly; SameSite=Lax; Secure")
        );
        assert_eq!(cookie_to_set(&a, "eu-1", Some("eu-1"), false), None);
    }
}
