//! Response compression policy (`routes[].compression`): which codings a client accepts, best
//! first, and whether a response is one to compress. The edge carries the decision out with
//! Pingora's compression; nothing here touches bytes of a body.

use crate::config::CompressionConfig;
use http::HeaderMap;
use http::header::{CACHE_CONTROL, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE};
use std::fmt;

/// A content coding Portico compresses with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Coding {
    /// `br`.
    Brotli,
    /// `gzip`.
    Gzip,
    /// `zstd`.
    Zstd,
}

impl Coding {
    /// Every coding, in the order a `*` in `Accept-Encoding` adds them.
    pub const ALL: [Coding; 3] = [Coding::Brotli, Coding::Gzip, Coding::Zstd];

    /// The coding's name in `Accept-Encoding` and `Content-Encoding`.
    pub fn as_str(self) -> &'static str {
        match self {
            Coding::Brotli => "br",
            Coding::Gzip => "gzip",
            Coding::Zstd => "zstd",
        }
    }

    fn from_name(name: &str) -> Option<Coding> {
        Coding::ALL
            .into_iter()
            .find(|c| c.as_str().eq_ignore_ascii_case(name))
    }
}

/// A media range of `types`: `type/subtype`, `type/*` or `*/*`, compared case-insensitively.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaRange {
    /// The type, lower-case.
    kind: Box<str>,
    /// The subtype, lower-case; `None` for `*`.
    sub: Option<Box<str>>,
}

impl MediaRange {
    /// Parses `type/subtype` or `type/*` (RFC 9110 tokens); `None` when it is neither.
    pub fn parse(s: &str) -> Option<MediaRange> {
        let (kind, sub) = s.split_once('/')?;
        let token = |t: &str| !t.is_empty() && t.bytes().all(crate::config::is_token_byte);
        if !token(kind) || !token(sub) {
            return None;
        }
        Some(MediaRange {
            kind: kind.to_ascii_lowercase().into(),
            sub: (sub != "*").then(|| sub.to_ascii_lowercase().into()),
        })
    }

    /// Whether a `Content-Type` value (parameters allowed) falls in the range.
    pub fn matches(&self, content_type: &str) -> bool {
        let essence = content_type.split(';').next().unwrap_or("").trim();
        let Some((kind, sub)) = essence.split_once('/') else {
            return false;
        };
        (&*self.kind == "*" || self.kind.eq_ignore_ascii_case(kind))
            && self
                .sub
                .as_deref()
                .is_none_or(|s| s.eq_ignore_ascii_case(sub))
    }
}

impl fmt::Display for MediaRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.kind, self.sub.as_deref().unwrap_or("*"))
    }
}

/// The codings Portico compresses with that the `Accept-Encoding` header values accept, best
/// first: by q-value, ties in the client's order; `q=0` refuses a coding; `*` stands for
/// the codings the header does not name. An entry with an unreadable q-value is ignored.
pub fn accepted_codings<'a>(values: impl IntoIterator<Item = &'a [u8]>) -> Vec<Coding> {
    let mut named: Vec<(Coding, u16)> = Vec::with_capacity(3);
    let mut refused: Vec<Coding> = Vec::new();
    let mut star: Option<u16> = None;
    for value in values {
        let Ok(text) = std::str::from_utf8(value) else {
            continue;
        };
        for entry in text.split(',') {
            let mut parts = entry.split(';');
            let name = parts.next().unwrap_or("").trim();
            let Some(q) =
                parts
                    .map(str::trim)
                    .try_fold(1000u16, |q, param| match param.split_once('=') {
                        Some((k, v)) if k.trim().eq_ignore_ascii_case("q") => qvalue(v.trim()),
                        _ => Some(q),
                    })
            else {
                continue;
            };
            if name == "*" {
                star = star.or(Some(q));
            } else if let Some(c) = Coding::from_name(name) {
                if named.iter().any(|(n, _)| *n == c) || refused.contains(&c) {
                    continue;
                }
                if q == 0 {
                    refused.push(c);
                } else {
                    named.push((c, q));
                }
            }
        }
    }
    if let Some(q) = star.filter(|&q| q > 0) {
        for c in Coding::ALL {
            if !named.iter().any(|(n, _)| *n == c) && !refused.contains(&c) {
                named.push((c, q));
            }
        }
    }
    // Stable: equal q-values keep the client's order.
    named.sort_by_key(|&(_, q)| std::cmp::Reverse(q));
    named.into_iter().map(|(c, _)| c).collect()
}

/// An RFC 9110 q-value (`0`, `0.5`, `1.000`) in thousandths.
fn qvalue(v: &str) -> Option<u16> {
    let (int, frac) = v.split_once('.').unwrap_or((v, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let frac_value = frac
        .bytes()
        .chain(std::iter::repeat(b'0'))
        .take(3)
        .fold(0u16, |n, b| n * 10 + u16::from(b - b'0'));
    match int {
        "0" => Some(frac_value),
        "1" if frac_value == 0 => Some(1000),
        _ => None,
    }
}

/// Whether a response to compress under `config`: it may carry a body (not to a HEAD, not
/// 1xx, 204, 206 or 304), is not encoded already (no `Content-Encoding`), does not forbid it
/// (`Cache-Control: no-transform`), has a `Content-Type` in `types`, and a `Content-Length`,
/// when it has one, of at least `min_bytes`.
pub fn compressible(
    config: &CompressionConfig,
    status: u16,
    head_request: bool,
    headers: &HeaderMap,
) -> bool {
    if head_request || status < 200 || matches!(status, 204 | 206 | 304) {
        return false;
    }
    if headers.contains_key(CONTENT_ENCODING) || headers.contains_key(CONTENT_RANGE) {
        return false;
    }
    let no_transform = headers.get_all(CACHE_CONTROL).iter().any(|v| {
        v.to_str().is_ok_and(|s| {
            s.split(',')
                .any(|d| d.trim().eq_ignore_ascii_case("no-transform"))
        })
    });
    if no_transform {
        return false;
    }
    let Some(content_type) = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    if !config.types.iter().any(|t| t.matches(content_type)) {
        return false;
    }
    match headers.get(CONTENT_LENGTH) {
        None => true,
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .is_some_and(|len| len >= config.min_bytes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Coding::*;
    use http::HeaderValue;

    fn ae(v: &str) -> Vec<Coding> {
        accepted_codings([v.as_bytes()])
    }

    #[test]
    fn codings_come_best_first_by_q_then_client_order() {
        assert_eq!(ae("gzip"), [Gzip]);
        assert_eq!(ae("gzip, deflate, br"), [Gzip, Brotli]);
        assert_eq!(ae("br;q=0.5, gzip"), [Gzip, Brotli]);
        assert_eq!(ae("zstd;q=0.9, br;q=0.9, gzip;q=0.1"), [Zstd, Brotli, Gzip]);
        assert_eq!(ae("gzip;q=0, br"), [Brotli]);
        assert_eq!(ae("GZIP ; Q=1.0"), [Gzip]);
        assert_eq!(ae("*"), [Brotli, Gzip, Zstd]);
        assert_eq!(ae("gzip;q=0.2, *;q=0.5, br;q=0"), [Zstd, Gzip]);
        assert_eq!(ae("identity"), []);
        assert_eq!(ae(""), []);
        assert_eq!(
            ae("gzip;q=2, br;q=0.5x"),
            [],
            "unreadable q-values are ignored"
        );
        assert_eq!(
            accepted_codings([&b"br"[..], b"gzip;q=0.5"]),
            [Brotli, Gzip]
        );
    }

    #[test]
    fn qvalues_read_as_thousandths() {
        assert_eq!(qvalue("0"), Some(0));
        assert_eq!(qvalue("0.5"), Some(500));
        assert_eq!(qvalue("0.125"), Some(125));
        assert_eq!(qvalue("1."), Some(1000));
        assert_eq!(qvalue("1.000"), Some(1000));
        assert_eq!(qvalue("1.001"), None);
        assert_eq!(qvalue("0.1234"), None);
        assert_eq!(qvalue("-1"), None);
    }

    #[test]
    fn media_ranges_match_the_type_without_parameters() {
        let text = MediaRange::parse("text/*").unwrap();
        let json = MediaRange::parse("Application/JSON").unwrap();
        assert!(text.matches("text/html; charset=utf-8"));
        assert!(text.matches("TEXT/plain"));
        assert!(!text.matches("textual/plain"));
        assert!(json.matches("application/json;charset=utf-8"));
        assert!(!json.matches("application/json-seq"));
        assert!(!json.matches("application"));
        assert!(MediaRange::parse("*/*").unwrap().matches("image/png"));
        assert_eq!(MediaRange::parse("json"), None);
        assert_eq!(MediaRange::parse("text/"), None);
        assert_eq!(MediaRange::parse("a b/c"), None);
        assert_eq!(json.to_string(), "application/json");
    }

    fn config() -> CompressionConfig {
        CompressionConfig {
            types: vec![MediaRange::parse("text/*").unwrap()],
            min_bytes: 100,
        }
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn only_unencoded_responses_of_the_types_and_size_are_compressed() {
        let c = config();
        let ok = headers(&[("content-type", "text/plain"), ("content-length", "100")]);
        assert!(compressible(&c, 200, false, &ok));
        assert!(compressible(&c, 404, false, &ok));
        assert!(!compressible(&c, 200, true, &ok), "HEAD");
        for s in [101, 204, 206, 304] {
            assert!(!compressible(&c, s, false, &ok), "{s}");
        }
        let chunked = headers(&[("content-type", "text/plain")]);
        assert!(compressible(&c, 200, false, &chunked), "unknown length");
        let small = headers(&[("content-type", "text/plain"), ("content-length", "99")]);
        assert!(!compressible(&c, 200, false, &small));
        let image = headers(&[("content-type", "image/png")]);
        assert!(!compressible(&c, 200, false, &image));
        assert!(!compressible(&c, 200, false, &headers(&[])), "no type");
        let encoded = headers(&[("content-type", "text/plain"), ("content-encoding", "gzip")]);
        assert!(!compressible(&c, 200, false, &encoded));
        let keep = headers(&[
            ("content-type", "text/plain"),
            ("cache-control", "public, No-Transform"),
        ]);
        assert!(!compressible(&c, 200, false, &keep));
    }

    proptest::proptest! {
        #[test]
        fn accepted_codings_follow_the_first_entry_of_each_coding(
            entries in proptest::collection::vec(
                (proptest::sample::select(vec!["gzip", "BR", "zstd", "deflate", "*", "identity"]),
                 proptest::option::of(0u16..=1000)),
                0..8,
            ),
        ) {
            let header = entries
                .iter()
                .map(|(n, q)| match q {
                    Some(q) => format!("{n};q={}.{:03}", q / 1000, q % 1000),
                    None => (*n).to_string(),
                })
                .collect::<Vec<_>>()
                .join(", ");
            let got = accepted_codings([header.as_bytes()]);
            let q_of = |name: &str| {
                entries
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case(name))
                    .map(|(_, q)| q.unwrap_or(1000))
            };
            let mut expected: Vec<(Coding, u16)> = Coding::ALL
                .into_iter()
                .filter_map(|c| {
                    let q = q_of(c.as_str()).or_else(|| q_of("*"))?;
                    (q > 0).then_some((c, q))
                })
                .collect();
            expected.sort_by_key(|(_, q)| std::cmp::Reverse(*q));
            let mut got_sorted: Vec<Coding> = got.clone();
            got_sorted.sort_by_key(|c| c.as_str());
            let mut want: Vec<Coding> = expected.iter().map(|(c, _)| *c).collect();
            want.sort_by_key(|c| c.as_str());
            proptest::prop_assert_eq!(got_sorted, want, "{}", header);
            let qs: Vec<u16> = got.iter().map(|c| expected.iter().find(|(e, _)| e == c).map_or(0, |e| e.1)).collect();
            proptest::prop_assert!(qs.windows(2).all(|w| w[0] >= w[1]), "{} -> {:?}", header, got);
        }
    }
}
