//! The HTTP/1 heads of Portico's own client: the request head written to the wire and the
//! response head parsed with `httparse` under Pingora's limits and leniencies.

use bytes::{Bytes, BytesMut};
use http::header::{CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Version};
use pingora_error::{Error, ErrorType, Result};
use pingora_http::{RequestHeader, ResponseHeader};

/// Largest response head read before giving up, as Pingora's.
pub const MAX_HEAD: usize = 1_048_575;
/// Most header lines in a response head, as Pingora's.
pub const MAX_HEADERS: usize = 256;
/// Headers Portico adds to a response for the client (`X-Request-Id`, `X-Portico-Region`,
/// `X-Portico-Decision`).
const CLIENT_HEADERS: usize = 3;
/// Header lines tried first (most heads have few): the larger array only when needed.
const FEW_HEADERS: usize = 32;

/// Appends `req`'s head (request line, header lines, blank line) to `buf`, as Pingora writes
/// it: names titled for the standard headers Pingora knows, as stored otherwise.
pub fn write_request(buf: &mut Vec<u8>, req: &RequestHeader) -> Result<()> {
    let version: &[u8] = match req.version {
        Version::HTTP_10 => b"HTTP/1.0",
        Version::HTTP_11 => b"HTTP/1.1",
        _ => return Error::e_explain(ErrorType::InvalidHTTPHeader, "unsupported HTTP version"),
    };
    request_line(buf, &req.method, req.raw_path(), version)?;
    req.header_to_h1_wire(buf);
    buf.extend_from_slice(b"\r\n");
    Ok(())
}

/// Appends an HTTP/1.1 request head to `buf` from its parts: the request line, `headers` in
/// the order given, the blank line. Names are written as [`write_request`] writes those of a
/// header without a case map ([`wire_name`]), so both ways give the same bytes.
pub fn write_head<'a>(
    buf: &mut Vec<u8>,
    method: &Method,
    target: &[u8],
    headers: impl Iterator<Item = (&'a HeaderName, &'a HeaderValue)>,
) -> Result<()> {
    request_line(buf, method, target, b"HTTP/1.1")?;
    for (name, value) in headers {
        buf.extend_from_slice(wire_name(name).as_bytes());
        buf.extend_from_slice(b": ");
        buf.extend_from_slice(value.as_bytes());
        buf.extend_from_slice(b"\r\n");
    }
    buf.extend_from_slice(b"\r\n");
    Ok(())
}

/// `method target version` and its line end, refused when the target is one no request line
/// may carry ([`forbidden_target`]).
fn request_line(buf: &mut Vec<u8>, method: &Method, target: &[u8], version: &[u8]) -> Result<()> {
    if forbidden_target(target) {
        return Error::e_explain(
            ErrorType::InvalidHTTPHeader,
            "request-line contains forbidden delimiter bytes",
        );
    }
    buf.extend_from_slice(method.as_str().as_bytes());
    buf.push(b' ');
    buf.extend_from_slice(target);
    buf.push(b' ');
    buf.extend_from_slice(version);
    buf.extend_from_slice(b"\r\n");
    Ok(())
}

/// A header name as Pingora writes it for a header without a case map: titled for the
/// standard headers it knows, as stored (lower-case) otherwise. A test holds this to
/// Pingora's own output for every standard name.
pub fn wire_name(name: &HeaderName) -> &str {
    use http::header;
    match *name {
        header::ACCEPT_RANGES => "Accept-Ranges",
        header::AGE => "Age",
        header::CACHE_CONTROL => "Cache-Control",
        header::CONNECTION => "Connection",
        header::CONTENT_TYPE => "Content-Type",
        header::CONTENT_ENCODING => "Content-Encoding",
        header::CONTENT_LENGTH => "Content-Length",
        header::DATE => "Date",
        header::TRANSFER_ENCODING => "Transfer-Encoding",
        header::HOST => "Host",
        header::SERVER => "Server",
        header::SET_COOKIE => "Set-Cookie",
        _ => name.as_str(),
    }
}

/// Whether a request target is empty or holds a byte no HTTP/1 request line may carry
/// (NUL, CR, LF, SP), as Pingora checks before writing one.
fn forbidden_target(path: &[u8]) -> bool {
    path.is_empty() || path.iter().any(|b| matches!(b, 0 | b'\n' | b'\r' | b' '))
}

/// A response head found at the start of a buffer.
pub struct Parsed {
    /// The head, without a case map: names as the `http` crate stores them.
    pub head: ResponseHeader,
}

fn invalid<E>(what: &'static str) -> impl FnOnce(E) -> Box<Error>
where
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    move |e| Error::because(ErrorType::InvalidHTTPHeader, what, e)
}

/// Parses a response head from the start of `buf`: `None` while it is incomplete, else the
/// head (its bytes split off `buf`; header values share them). Pingora's leniencies apply
/// (spaces after a header name, obsolete line folding, turned into spaces).
pub fn parse_response(buf: &mut BytesMut) -> Result<Option<Parsed>> {
    match parse_with::<FEW_HEADERS>(buf) {
        Err(Fail::TooMany) => parse_with::<MAX_HEADERS>(buf).map_err(Fail::into_error),
        other => other.map_err(Fail::into_error),
    }
}

/// Why a head did not parse.
enum Fail {
    /// More header lines than the array held.
    TooMany,
    /// Anything else.
    Error(Box<Error>),
}

impl Fail {
    fn into_error(self) -> Box<Error> {
        match self {
            Fail::TooMany => {
                Error::explain(ErrorType::InvalidHTTPHeader, "too many response headers")
            }
            Fail::Error(e) => e,
        }
    }
}

impl From<Box<Error>> for Fail {
    fn from(e: Box<Error>) -> Self {
        Fail::Error(e)
    }
}

/// Where a header's name and value are in the head's bytes.
type Span = (usize, usize, usize, usize);

fn parse_with<const N: usize>(buf: &mut BytesMut) -> std::result::Result<Option<Parsed>, Fail> {
    let Some((len, status, version, reason, spans)) = scan::<N>(buf)? else {
        return Ok(None);
    };
    let raw: Bytes = buf.split_to(len).freeze();
    // Room for the headers Portico adds before the head goes to the client (request id,
    // region, a decision trace), so adding them does not grow and rehash the map.
    let mut map = HeaderMap::with_capacity(spans.len() + CLIENT_HEADERS);
    for (n, nl, v, vl) in spans {
        let name = HeaderName::from_bytes(&raw[n..n + nl]).map_err(invalid("header name"))?;
        let value: HeaderValue = pingora_http::header_value_from_raw(raw.slice(v..v + vl));
        map.append(name, value);
    }
    let (mut parts, ()) = http::Response::new(()).into_parts();
    parts.status = status;
    parts.version = version;
    parts.headers = map;
    let mut head = ResponseHeader::from(parts);
    head.set_reason_phrase(reason.as_deref())?;
    Ok(Some(Parsed { head }))
}

/// The head's length, status, version, reason phrase (when not the standard one) and
/// header spans, when `buf` starts with a whole head.
type Scanned = (usize, StatusCode, Version, Option<String>, Vec<Span>);

fn scan<const N: usize>(buf: &[u8]) -> std::result::Result<Option<Scanned>, Fail> {
    let mut config = httparse::ParserConfig::default();
    config.allow_spaces_after_header_name_in_responses(true);
    config.allow_obsolete_multiline_headers_in_responses(true);
    let mut headers = [httparse::EMPTY_HEADER; N];
    let mut resp = httparse::Response::new(&mut headers);
    let len = match config.parse_response(&mut resp, buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(Fail::TooMany),
        Err(e) => return Err(invalid("while parsing response header")(e).into()),
    };
    let status = StatusCode::from_u16(resp.code.unwrap_or(0)).map_err(invalid("invalid status"))?;
    let version = match resp.version {
        Some(0) => Version::HTTP_10,
        _ => Version::HTTP_11,
    };
    let reason = resp
        .reason
        .filter(|r| Some(*r) != status.canonical_reason())
        .map(str::to_owned);
    let base = buf.as_ptr() as usize;
    let spans: Vec<Span> = resp
        .headers
        .iter()
        .map(|h| {
            (
                h.name.as_ptr() as usize - base,
                h.name.len(),
                h.value.as_ptr() as usize - base,
                h.value.len(),
            )
        })
        .collect();
    Ok(Some((len, status, version, reason, spans)))
}

/// How a response body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body (HEAD, 204, 304, `Content-Length: 0`).
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// The chunked transfer coding.
    Chunked,
    /// Until the origin closes the connection.
    Close,
}

/// What a response head says about its body and its connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// How the body ends.
    pub framing: Framing,
    /// Whether the connection may carry another request once the body ended cleanly.
    pub reusable: bool,
}

/// The body framing and connection reuse of a response head to a request (`head_request`:
/// it was HEAD; `request_close`: it asked to close). A `Content-Length` beside a
/// `Transfer-Encoding` is removed (the coding wins) and the connection is not reused;
/// an invalid or conflicting `Content-Length` is an error.
pub fn plan(head: &mut ResponseHeader, head_request: bool, request_close: bool) -> Result<Plan> {
    let te = head.headers.contains_key(TRANSFER_ENCODING);
    let mut length = None;
    let mut smuggling_shaped = false;
    if te {
        if head.headers.contains_key(CONTENT_LENGTH) {
            head.remove_header(&CONTENT_LENGTH);
            smuggling_shaped = true;
        }
    } else if head.headers.contains_key(CONTENT_LENGTH) {
        length = Some(content_length(&head.headers).ok_or_else(|| {
            Error::explain(
                ErrorType::InvalidHTTPHeader,
                "invalid Content-Length header",
            )
        })?);
    }
    let status = head.status.as_u16();
    let framing = if status == 101 {
        Framing::Close
    } else if head_request || matches!(status, 204 | 304) {
        Framing::Empty
    } else if te {
        if is_chunked(&head.headers) {
            Framing::Chunked
        } else {
            Framing::Close
        }
    } else {
        match length {
            Some(0) => Framing::Empty,
            Some(n) => Framing::Length(n),
            None => Framing::Close,
        }
    };
    let http10 = head.version == Version::HTTP_10;
    let reusable = framing != Framing::Close
        && status != 101
        && !request_close
        && !smuggling_shaped
        && !(http10 && te)
        && match connection_keep_alive(&head.headers) {
            Some(keep) => keep,
            None => !http10,
        };
    Ok(Plan { framing, reusable })
}

/// Every `Content-Length` value (lines and comma lists) when all are the same digits.
fn content_length(h: &HeaderMap) -> Option<u64> {
    let mut found: Option<u64> = None;
    for v in h.get_all(CONTENT_LENGTH) {
        for part in v.as_bytes().split(|&b| b == b',') {
            let digits = part.trim_ascii();
            if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
                return None;
            }
            let n = digits.iter().try_fold(0u64, |acc, &d| {
                acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
            })?;
            match found {
                Some(prev) if prev != n => return None,
                _ => found = Some(n),
            }
        }
    }
    found
}

/// Whether `chunked` is the last coding of the last `Transfer-Encoding` line.
fn is_chunked(h: &HeaderMap) -> bool {
    h.get_all(TRANSFER_ENCODING)
        .iter()
        .next_back()
        .and_then(|v| v.as_bytes().rsplit(|&b| b == b',').next())
        .is_some_and(|last| last.trim_ascii().eq_ignore_ascii_case(b"chunked"))
}

/// `Some(false)` when a `Connection` header says `close`, `Some(true)` when it says
/// `keep-alive` (and not `close`), `None` when it says neither.
pub fn connection_keep_alive(h: &HeaderMap) -> Option<bool> {
    let mut keep = None;
    for v in h.get_all(CONNECTION) {
        for token in v.as_bytes().split(|&b| b == b',') {
            let token = token.trim_ascii();
            if token.eq_ignore_ascii_case(b"close") {
                return Some(false);
            }
            if token.eq_ignore_ascii_case(b"keep-alive") {
                keep = Some(true);
            }
        }
    }
    keep
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &[u8]) -> Result<Option<(ResponseHeader, usize)>> {
        let mut buf = BytesMut::from(raw);
        Ok(parse_response(&mut buf)?.map(|p| (p.head, buf.len())))
    }

    fn planned(raw: &[u8], head_request: bool) -> Result<(ResponseHeader, Plan)> {
        let (mut head, _) = parse(raw)?.expect("complete");
        let plan = plan(&mut head, head_request, false)?;
        Ok((head, plan))
    }

    #[test]
    fn writes_the_request_head_as_pingora_does() {
        let mut req = RequestHeader::build_no_case("GET", b"/a?b=c", None).expect("req");
        req.insert_header("Host", "example.com").expect("host");
        req.insert_header("x-custom", "1").expect("custom");
        let mut buf = Vec::new();
        write_request(&mut buf, &req).expect("written");
        let mut theirs = Vec::new();
        req.header_to_h1_wire(&mut theirs);
        let mut want = b"GET /a?b=c HTTP/1.1\r\n".to_vec();
        want.extend(theirs);
        want.extend(b"\r\n");
        assert_eq!(buf, want);
        assert!(String::from_utf8_lossy(&buf).contains("Host: example.com\r\n"));
    }

    #[test]
    fn names_go_out_as_pingora_writes_them_without_a_case_map() {
        let standard = [
            "accept",
            "accept-charset",
            "accept-encoding",
            "accept-language",
            "accept-ranges",
            "access-control-allow-credentials",
            "access-control-allow-headers",
            "access-control-allow-methods",
            "access-control-allow-origin",
            "access-control-expose-headers",
            "access-control-max-age",
            "access-control-request-headers",
            "access-control-request-method",
            "age",
            "allow",
            "alt-svc",
            "authorization",
            "cache-control",
            "cache-status",
            "cdn-cache-control",
            "connection",
            "content-disposition",
            "content-encoding",
            "content-language",
            "content-length",
            "content-location",
            "content-range",
            "content-security-policy",
            "content-security-policy-report-only",
            "content-type",
            "cookie",
            "dnt",
            "date",
            "etag",
            "expect",
            "expires",
            "forwarded",
            "from",
            "host",
            "if-match",
            "if-modified-since",
            "if-none-match",
            "if-range",
            "if-unmodified-since",
            "last-modified",
            "link",
            "location",
            "max-forwards",
            "origin",
            "pragma",
            "proxy-authenticate",
            "proxy-authorization",
            "public-key-pins",
            "public-key-pins-report-only",
            "range",
            "referer",
            "referrer-policy",
            "refresh",
            "retry-after",
            "sec-websocket-accept",
            "sec-websocket-extensions",
            "sec-websocket-key",
            "sec-websocket-protocol",
            "sec-websocket-version",
            "server",
            "set-cookie",
            "strict-transport-security",
            "te",
            "trailer",
            "transfer-encoding",
            "user-agent",
            "upgrade",
            "upgrade-insecure-requests",
            "vary",
            "via",
            "warning",
            "www-authenticate",
            "x-content-type-options",
            "x-dns-prefetch-control",
            "x-frame-options",
            "x-xss-protection",
        ];
        for name in standard
            .iter()
            .chain(&["x-forwarded-for", "x-custom", "via"])
        {
            let name = HeaderName::from_static(name);
            let mut req = RequestHeader::build_no_case("GET", b"/", None).expect("req");
            req.insert_header(name.clone(), "v").expect("header");
            let mut theirs = Vec::new();
            req.header_to_h1_wire(&mut theirs);
            assert_eq!(
                String::from_utf8(theirs).expect("ascii"),
                format!("{}: v\r\n", wire_name(&name)),
            );
        }
    }

    #[test]
    fn a_head_from_parts_is_the_head_of_the_same_request_header() {
        let mut req = RequestHeader::build_no_case("HEAD", b"/a?b=c", None).expect("req");
        req.append_header("Host", "example.com").expect("host");
        req.append_header("accept", "*/*").expect("accept");
        req.append_header("x-a", "1").expect("x-a");
        req.append_header("x-a", "2").expect("x-a");
        let mut built = Vec::new();
        write_request(&mut built, &req).expect("written");
        let mut direct = Vec::new();
        write_head(&mut direct, &req.method, b"/a?b=c", req.headers.iter()).expect("written");
        assert_eq!(String::from_utf8(direct), String::from_utf8(built));
        let mut refused = Vec::new();
        let e = write_head(&mut refused, &req.method, b"/a b", req.headers.iter());
        assert!(e.is_err(), "a forbidden target is refused both ways");
    }

    #[test]
    fn refuses_forbidden_bytes_in_the_target() {
        for bad in [&b""[..], b"/a b", b"/a\r\nX: y", b"/\0", b"/a\n"] {
            assert!(forbidden_target(bad), "{bad:?}");
        }
        assert!(!forbidden_target(b"/a%20b?c=d"));
        assert!(!forbidden_target(b"*"));
    }

    #[test]
    fn parses_a_head_and_leaves_the_body() {
        let (head, left) = parse(b"HTTP/1.1 200 Fine\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhello")
            .expect("ok")
            .expect("complete");
        assert_eq!(head.status, 200);
        assert_eq!(head.get_reason_phrase(), Some("Fine"));
        assert_eq!(head.headers["x-a"], "b");
        assert!(!head.has_case());
        assert_eq!(left, 5);
        assert!(
            parse(b"HTTP/1.1 200 OK\r\nContent-Le")
                .expect("ok")
                .is_none()
        );
    }

    #[test]
    fn folds_obsolete_line_folding_into_spaces() {
        let (head, _) = parse(b"HTTP/1.1 200 OK\r\nX-A: one\r\n two\r\n\r\n")
            .expect("ok")
            .expect("complete");
        assert_eq!(head.headers["x-a"], "one two");
    }

    #[test]
    fn rejects_malformed_heads() {
        for bad in [
            &b"HTTP/1.1 200 OK\r\nX A: b\r\n\r\n"[..],
            b"HTTP/1.1 2000 OK\r\n\r\n",
            b"HTTP/2 200 OK\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nX-A: \x01\r\n\r\n",
            b"HTTP/1.1 200 OK\r\n: b\r\n\r\n",
            b"XTTP/1.1 200 OK\r\n\r\n",
        ] {
            let e = parse(bad).expect_err("rejected");
            assert_eq!(e.etype(), &ErrorType::InvalidHTTPHeader, "{bad:?}");
        }
    }

    #[test]
    fn many_headers_use_the_large_array_up_to_pingoras_limit() {
        let mut raw = b"HTTP/1.1 200 OK\r\n".to_vec();
        for i in 0..MAX_HEADERS {
            raw.extend(format!("x-{i}: v\r\n").as_bytes());
        }
        let mut ok = raw.clone();
        ok.extend(b"\r\n");
        let (head, _) = parse(&ok).expect("ok").expect("complete");
        assert_eq!(head.headers.len(), MAX_HEADERS);
        raw.extend(b"x-last: v\r\n\r\n");
        assert!(
            parse(&raw).is_err(),
            "one more than {MAX_HEADERS} is refused"
        );
    }

    #[test]
    fn frames_bodies_per_rfc_9112() {
        let p = |raw: &[u8]| planned(raw, false).map(|(_, p)| p);
        assert_eq!(
            p(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n").expect("ok"),
            Plan {
                framing: Framing::Length(5),
                reusable: true
            }
        );
        assert_eq!(
            p(b"HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\nContent-Length: 5\r\n\r\n")
                .expect("ok")
                .framing,
            Framing::Length(5)
        );
        assert_eq!(
            p(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n").expect("ok"),
            Plan {
                framing: Framing::Chunked,
                reusable: true
            }
        );
        assert_eq!(
            p(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n").expect("ok"),
            Plan {
                framing: Framing::Close,
                reusable: false
            }
        );
        assert_eq!(
            p(b"HTTP/1.1 200 OK\r\n\r\n").expect("ok"),
            Plan {
                framing: Framing::Close,
                reusable: false
            }
        );
        assert_eq!(
            p(b"HTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\n").expect("ok"),
            Plan {
                framing: Framing::Empty,
                reusable: true
            }
        );
        assert_eq!(
            p(b"HTTP/1.1 304 Not Modified\r\n\r\n").expect("ok").framing,
            Framing::Empty
        );
        assert_eq!(
            planned(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", true)
                .expect("ok")
                .1
                .framing,
            Framing::Empty
        );
        assert_eq!(
            p(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                .expect("ok")
                .framing,
            Framing::Empty
        );
    }

    #[test]
    fn smuggling_shaped_heads_are_refused_or_not_reused() {
        let (head, plan) = planned(
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
            false,
        )
        .expect("ok");
        assert_eq!(
            plan,
            Plan {
                framing: Framing::Chunked,
                reusable: false
            }
        );
        assert!(
            head.headers.get(CONTENT_LENGTH).is_none(),
            "the coding wins"
        );
        for bad in [
            &b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\nContent-Length: 3, 4\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: +3\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 0x10\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n",
        ] {
            let e = planned(bad, false).expect_err("refused");
            assert_eq!(e.etype(), &ErrorType::InvalidHTTPHeader);
        }
        // A HEAD response's framing headers are still checked.
        assert!(planned(b"HTTP/1.1 200 OK\r\nContent-Length: 3, 4\r\n\r\n", true).is_err());
    }

    #[test]
    fn keep_alive_follows_the_version_and_connection_header() {
        let reuse = |raw: &[u8]| planned(raw, false).expect("ok").1.reusable;
        assert!(!reuse(
            b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n"
        ));
        assert!(!reuse(
            b"HTTP/1.1 200 OK\r\nConnection: keep-alive, Close\r\nContent-Length: 1\r\n\r\n"
        ));
        assert!(!reuse(b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n"));
        assert!(reuse(
            b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\n"
        ));
        assert!(!reuse(
            b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n"
        ));
        assert!(!reuse(b"HTTP/1.1 101 Switching Protocols\r\n\r\n"));
        let (mut head, _) = parse(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n")
            .expect("ok")
            .expect("complete");
        assert!(!plan(&mut head, false, true).expect("ok").reusable);
    }
}
