//! Request-head rules (RFC 9112 §2–§7, §6.3 message length) as pure functions: parse a head, decide whether its framing is unambiguous.
//!
//! Portico's contract (SPEC part 2, "Hostile input"): a request with both `Content-Length` and
//! `Transfer-Encoding`, with differing `Content-Length`s, with a coding other than `chunked`,
//! an invalid `Content-Length`, an HTTP/1.1 request without `Host`, an invalid request target
//! or a malformed head line is answered 400 and never forwarded. The edge applies these rules
//! to the head bytes Pingora read (as sent, except that Pingora percent-encodes spaces, `<`,
//! `>`, `"` and control bytes in a target before any hook runs), a second line behind
//! Pingora's own checks.
//! [`check`] on a head it accepts gives exactly one way to find where the body ends.

use std::fmt;

/// The HTTP version of a request line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// `HTTP/1.0`.
    Http10,
    /// `HTTP/1.1`.
    Http11,
    /// HTTP/2 (never parsed from bytes here: the edge builds its head from the decoded frames).
    Http2,
}

/// A request head: what the rules look at. Field names keep the client's case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head<'a> {
    /// The method token.
    pub method: &'a [u8],
    /// The request target, as sent.
    pub target: &'a [u8],
    /// The version.
    pub version: Version,
    /// Header fields in arrival order: name, and value without surrounding whitespace.
    pub headers: Vec<(&'a [u8], &'a [u8])>,
}

/// How the body of an accepted request is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body (no `Content-Length`, no `Transfer-Encoding`).
    None,
    /// Exactly this many bytes.
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
}

/// Why a head is refused. Every refusal is answered 400 and the connection closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// A line of the head ends in a bare LF, or holds a CR not followed by LF.
    BareLineEnding,
    /// The request line is not `method SP target SP HTTP/1.x`.
    BadRequestLine,
    /// A version other than HTTP/1.0 or HTTP/1.1 on the request line.
    BadVersion,
    /// A header line is not `token ":" value` (whitespace before the colon, no colon, an empty
    /// or non-token name).
    BadHeaderLine,
    /// A header value holds a control character.
    BadHeaderValue,
    /// A line folded onto the previous one (obs-fold, RFC 9112 §5.2).
    FoldedLine,
    /// Both `Content-Length` and `Transfer-Encoding`.
    LengthAndChunked,
    /// `Content-Length`s that disagree.
    DifferingLengths,
    /// A `Content-Length` that is not a canonical decimal number (digits only, no sign, no
    /// leading zero, at most `u64::MAX`).
    BadLength,
    /// A `Transfer-Encoding` other than a single `chunked`.
    UnsupportedCoding,
    /// `Transfer-Encoding` on an HTTP/1.0 request (RFC 9112 §6.1: faulty framing).
    CodingOnHttp10,
    /// An HTTP/1.1 request without `Host` (and without an absolute-form target to take it from).
    MissingHost,
    /// More than one `Host`.
    DuplicateHost,
    /// A `Host` that is not a valid authority (or carries userinfo).
    BadHost,
    /// A request target that is none of origin-form, absolute-form (http/https), authority-form
    /// for CONNECT or `*` for OPTIONS, or that holds a fragment or a character outside the URI
    /// grammar.
    BadTarget,
    /// A chunk-size line that is not `1*HEXDIG [chunk-ext] CRLF` (bare LF, a size that does not
    /// fit 64 bits, stray bytes).
    BadChunk,
}

impl Refusal {
    /// The status answered: always 400 (the size limits, 414 and 431, live elsewhere).
    pub fn status(self) -> u16 {
        400
    }

    /// Words for the 400's body.
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::BareLineEnding => "the request head has a line not ending in CRLF",
            Refusal::BadRequestLine => "the request line is not `METHOD TARGET HTTP/1.x`",
            Refusal::BadVersion => "only HTTP/1.0 and HTTP/1.1 are accepted",
            Refusal::BadHeaderLine => "a header line is not `name: value`",
            Refusal::BadHeaderValue => "a header value holds a control character",
            Refusal::FoldedLine => "a header line is folded (obs-fold)",
            Refusal::LengthAndChunked => {
                "a request may not have both Content-Length and Transfer-Encoding"
            }
            Refusal::DifferingLengths => "the request has differing Content-Length values",
            Refusal::BadLength => "the Content-Length is not a plain decimal number",
            Refusal::UnsupportedCoding => "the only Transfer-Encoding accepted is `chunked`",
            Refusal::CodingOnHttp10 => "an HTTP/1.0 request may not use Transfer-Encoding",
            Refusal::MissingHost => "an HTTP/1.1 request needs a Host header",
            Refusal::DuplicateHost => "the request has more than one Host header",
            Refusal::BadHost => "the Host header is not a valid host[:port]",
            Refusal::BadTarget => "the request target is not valid",
            Refusal::BadChunk => "a chunk-size line is malformed",
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

impl std::error::Error for Refusal {}

/// The verdict on a head: its framing, or why it is refused.
pub type Verdict = Result<Framing, Refusal>;

/// RFC 9110 `tchar`, as a table (this runs on every request).
const TCHAR: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'!' | b'#'
                    | b'$'
                    | b'%'
                    | b'&'
                    | b'\''
                    | b'*'
                    | b'+'
                    | b'-'
                    | b'.'
                    | b'^'
                    | b'_'
                    | b'`'
                    | b'|'
                    | b'~'
            );
        i += 1;
    }
    t
};

fn is_tchar(b: u8) -> bool {
    TCHAR[b as usize]
}

fn is_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&b| is_tchar(b))
}

/// Trims optional whitespace (SP, HTAB) from both ends.
fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// Finds the end of the head: the offset just past the empty line (CRLF CRLF), or `None`
/// when the bytes hold no complete head yet.
pub fn head_end(bytes: &[u8]) -> Option<usize> {
    let start = leading_empty_lines(bytes);
    bytes[start..]
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| start + i + 4)
}

/// RFC 9112 §2.2: a server SHOULD ignore at least one empty line (CRLF) before the request line.
fn leading_empty_lines(bytes: &[u8]) -> usize {
    let mut i = 0;
    while bytes[i..].starts_with(b"\r\n") {
        i += 2;
    }
    i
}

/// The next CRLF-terminated line from `*at`, moving `*at` past it. `Ok(None)`: no whole line
/// yet. A bare LF, or a CR not followed by LF, is refused.
fn next_line<'a>(bytes: &'a [u8], at: &mut usize) -> Result<Option<&'a [u8]>, Refusal> {
    let rest = &bytes[*at..];
    let mut i = 0;
    while i < rest.len() {
        match rest[i] {
            b'\n' => return Err(Refusal::BareLineEnding),
            b'\r' => {
                return match rest.get(i + 1) {
                    Some(b'\n') => {
                        *at += i + 2;
                        Ok(Some(&rest[..i]))
                    }
                    Some(_) => Err(Refusal::BareLineEnding),
                    None => Ok(None),
                };
            }
            _ => i += 1,
        }
    }
    Ok(None)
}

/// Parses a request head at the start of `bytes`. `Ok(None)`: the head is not complete yet
/// (no CRLF CRLF). `Ok(Some((head, n)))`: the head took `n` bytes. Lines end in CRLF only; a
/// bare LF or CR anywhere in the head is refused, as is a malformed line once it is whole.
pub fn parse_head(bytes: &[u8]) -> Result<Option<(Head<'_>, usize)>, Refusal> {
    let mut at = leading_empty_lines(bytes);
    let Some(request_line) = next_line(bytes, &mut at)? else {
        return Ok(None);
    };
    let mut parts = request_line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Refusal::BadRequestLine);
    };
    if !is_token(method) || target.is_empty() {
        return Err(Refusal::BadRequestLine);
    }
    let version = match version {
        b"HTTP/1.1" => Version::Http11,
        b"HTTP/1.0" => Version::Http10,
        v if v.starts_with(b"HTTP/") => return Err(Refusal::BadVersion),
        _ => return Err(Refusal::BadRequestLine),
    };
    let mut headers = Vec::with_capacity(16);
    loop {
        let Some(line) = next_line(bytes, &mut at)? else {
            return Ok(None);
        };
        if line.is_empty() {
            break;
        }
        if line[0] == b' ' || line[0] == b'\t' {
            return Err(Refusal::FoldedLine);
        }
        let colon = line
            .iter()
            .position(|&b| !is_tchar(b))
            .filter(|&c| line[c] == b':')
            .ok_or(Refusal::BadHeaderLine)?;
        if colon == 0 {
            return Err(Refusal::BadHeaderLine);
        }
        let value = trim_ows(&line[colon + 1..]);
        if value.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f) {
            return Err(Refusal::BadHeaderValue);
        }
        headers.push((&line[..colon], value));
    }
    Ok(Some((
        Head {
            method,
            target,
            version,
            headers,
        },
        at,
    )))
}

/// A `Content-Length` element: canonical decimal (no sign, no leading zero, fits 64 bits).
fn length_value(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 20 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    if v.len() > 1 && v[0] == b'0' {
        return None;
    }
    std::str::from_utf8(v).ok()?.parse().ok()
}

/// Whether a request target is acceptable for `method`.
fn valid_target(method: &[u8], target: &[u8]) -> bool {
    if target.contains(&b'#') || !target.iter().all(|&b| (0x21..=0x7e).contains(&b)) {
        return false;
    }
    if target == b"*" {
        return method == b"OPTIONS";
    }
    if target.first() == Some(&b'/') {
        // origin-form, as the `http` crate (and so Pingora) reads it.
        return http::uri::PathAndQuery::try_from(target).is_ok();
    }
    if method == b"CONNECT" {
        // authority-form: host:port, nothing else.
        return http::uri::Authority::try_from(target)
            .is_ok_and(|a| a.port().is_some() && !a.as_str().contains('@'));
    }
    // absolute-form, http or https only.
    let lower: Vec<u8> = target.iter().take(8).map(u8::to_ascii_lowercase).collect();
    if !(lower.starts_with(b"http://") || lower.starts_with(b"https://")) {
        return false;
    }
    match http::Uri::try_from(target) {
        Ok(uri) => uri
            .authority()
            .is_some_and(|a| !a.as_str().is_empty() && !a.as_str().contains('@')),
        Err(_) => false,
    }
}

/// An absolute-form target (`http://host/...`): its authority stands in for a missing `Host`.
/// (An authority-form CONNECT target does not: it still needs its `Host`.)
fn is_absolute_form(target: &[u8]) -> bool {
    let lower: Vec<u8> = target.iter().take(8).map(u8::to_ascii_lowercase).collect();
    lower.starts_with(b"http://") || lower.starts_with(b"https://")
}

/// The verdict of the rules on a parsed head.
pub fn check(head: &Head<'_>) -> Verdict {
    if !is_token(head.method) {
        return Err(Refusal::BadRequestLine);
    }
    if !valid_target(head.method, head.target) {
        return Err(Refusal::BadTarget);
    }
    let named = |name: &'static [u8]| {
        head.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|&(_, v)| v)
    };
    // Host (RFC 9112 §3.2).
    let mut hosts = named(b"host");
    match (hosts.next(), hosts.next()) {
        (Some(_), Some(_)) => return Err(Refusal::DuplicateHost),
        (Some(h), None) => {
            if !h.is_empty()
                && http::uri::Authority::try_from(h).map_or(true, |a| a.as_str().contains('@'))
            {
                return Err(Refusal::BadHost);
            }
        }
        (None, _) => {
            if head.version == Version::Http11 && !is_absolute_form(head.target) {
                return Err(Refusal::MissingHost);
            }
        }
    }
    // Message length (RFC 9112 §6.3).
    let mut lengths = None;
    let mut any_length = false;
    for v in named(b"content-length") {
        any_length = true;
        for element in v.split(|&b| b == b',') {
            let n = length_value(trim_ows(element)).ok_or(Refusal::BadLength)?;
            match lengths {
                Some(prev) if prev != n => return Err(Refusal::DifferingLengths),
                _ => lengths = Some(n),
            }
        }
    }
    let mut codings = 0usize;
    let mut any_coding = false;
    for v in named(b"transfer-encoding") {
        any_coding = true;
        for element in v.split(|&b| b == b',') {
            let coding = trim_ows(element);
            if !coding.eq_ignore_ascii_case(b"chunked") {
                return Err(Refusal::UnsupportedCoding);
            }
            codings += 1;
        }
    }
    if any_coding {
        if head.version == Version::Http10 {
            return Err(Refusal::CodingOnHttp10);
        }
        if any_length {
            return Err(Refusal::LengthAndChunked);
        }
        if codings != 1 {
            // `chunked, chunked`: chunked applied twice (RFC 9112 §6.1).
            return Err(Refusal::UnsupportedCoding);
        }
        return Ok(Framing::Chunked);
    }
    Ok(lengths.map_or(Framing::None, Framing::Length))
}

/// Parses and checks the head at the start of `bytes`: `Ok(None)` while it is incomplete.
pub fn verdict(bytes: &[u8]) -> Result<Option<(Framing, usize)>, Refusal> {
    match parse_head(bytes)? {
        None => Ok(None),
        Some((head, n)) => check(&head).map(|f| Some((f, n))),
    }
}

/// Parses one chunk-size line, `1*HEXDIG *(BWS ";" chunk-ext) CRLF` (RFC 9112 §7.1), at the
/// start of `bytes`: `Ok(None)` while it is incomplete, else the size and the line's length.
/// Extensions must be `token [= token / quoted-string]`; a bare LF or CR is refused.
pub fn chunk_size_line(bytes: &[u8]) -> Result<Option<(u64, usize)>, Refusal> {
    let Some(lf) = bytes.iter().position(|&b| b == b'\n') else {
        if bytes.len() > 4096 {
            return Err(Refusal::BadChunk);
        }
        return Ok(None);
    };
    if lf == 0 || bytes[lf - 1] != b'\r' {
        return Err(Refusal::BadChunk);
    }
    let line = &bytes[..lf - 1];
    if line.contains(&b'\r') {
        return Err(Refusal::BadChunk);
    }
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 || digits > 16 {
        return Err(Refusal::BadChunk);
    }
    let hex = std::str::from_utf8(&line[..digits]).map_err(|_| Refusal::BadChunk)?;
    let size = u64::from_str_radix(hex, 16).map_err(|_| Refusal::BadChunk)?;
    let mut ext = &line[digits..];
    while !ext.is_empty() {
        ext = trim_ows_start(ext);
        let Some(rest) = ext.strip_prefix(b";") else {
            return Err(Refusal::BadChunk);
        };
        let rest = trim_ows_start(rest);
        let name_len = rest.iter().take_while(|&&b| is_tchar(b)).count();
        if name_len == 0 {
            return Err(Refusal::BadChunk);
        }
        ext = &rest[name_len..];
        let after = trim_ows_start(ext);
        if let Some(value) = after.strip_prefix(b"=") {
            let value = trim_ows_start(value);
            let taken = if value.first() == Some(&b'"') {
                quoted_len(value).ok_or(Refusal::BadChunk)?
            } else {
                value.iter().take_while(|&&b| is_tchar(b)).count()
            };
            if taken == 0 {
                return Err(Refusal::BadChunk);
            }
            ext = &value[taken..];
        }
        // Trailing whitespace after the last extension is BWS only before a `;`.
        if !ext.is_empty() && trim_ows_start(ext).first() != Some(&b';') {
            return Err(Refusal::BadChunk);
        }
    }
    Ok(Some((size, lf + 1)))
}

fn trim_ows_start(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    s
}

/// Length of a quoted-string at the start of `s` (with its quotes), if it is closed.
fn quoted_len(s: &[u8]) -> Option<usize> {
    let mut i = 1;
    while i < s.len() {
        match s[i] {
            b'"' => return Some(i + 1),
            b'\\' => i += 2,
            b if b < 0x20 && b != b'\t' => return None,
            0x7f => return None,
            _ => i += 1,
        }
    }
    None
}

/// Finds the end of a chunked body at the start of `bytes`: `Ok(Some(n))` when it took `n`
/// bytes (last chunk, trailer section and the final CRLF included), `Ok(None)` while
/// incomplete. Trailer lines must be well-formed header lines ending in CRLF.
pub fn chunked_body_len(bytes: &[u8]) -> Result<Option<usize>, Refusal> {
    let mut at = 0usize;
    loop {
        let Some((size, line)) = chunk_size_line(&bytes[at..])? else {
            return Ok(None);
        };
        at += line;
        if size == 0 {
            break;
        }
        let Some(data_end) = usize::try_from(size).ok().and_then(|s| at.checked_add(s)) else {
            return Err(Refusal::BadChunk);
        };
        let Some(crlf_end) = data_end.checked_add(2) else {
            return Err(Refusal::BadChunk);
        };
        if bytes.len() < crlf_end {
            return Ok(None);
        }
        if &bytes[data_end..crlf_end] != b"\r\n" {
            return Err(Refusal::BadChunk);
        }
        at = crlf_end;
    }
    // trailer-section CRLF
    loop {
        let rest = &bytes[at..];
        let Some(lf) = rest.iter().position(|&b| b == b'\n') else {
            return Ok(None);
        };
        if lf == 0 || rest[lf - 1] != b'\r' || rest[..lf - 1].contains(&b'\r') {
            return Err(Refusal::BadChunk);
        }
        let line = &rest[..lf - 1];
        at += lf + 1;
        if line.is_empty() {
            return Ok(Some(at));
        }
        let colon = line
            .iter()
            .position(|&b| b == b':')
            .ok_or(Refusal::BadChunk)?;
        if !is_token(&line[..colon]) {
            return Err(Refusal::BadChunk);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(bytes: &[u8]) -> Result<Option<Framing>, Refusal> {
        verdict(bytes).map(|o| o.map(|(f, _)| f))
    }

    #[test]
    fn plain_requests_pass() {
        assert_eq!(
            v(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"),
            Ok(Some(Framing::None))
        );
        assert_eq!(
            v(b"POST /x?y HTTP/1.1\r\nHost: a:8080\r\nContent-Length: 12\r\n\r\n"),
            Ok(Some(Framing::Length(12)))
        );
        assert_eq!(
            v(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n"),
            Ok(Some(Framing::Chunked))
        );
        assert_eq!(v(b"GET / HTTP/1.0\r\n\r\n"), Ok(Some(Framing::None)));
        assert_eq!(
            v(b"GET http://a.example/x HTTP/1.1\r\n\r\n"),
            Ok(Some(Framing::None))
        );
        assert_eq!(
            v(b"\r\nOPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"),
            Ok(Some(Framing::None))
        );
        assert_eq!(
            v(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5, 5\r\n\r\n"),
            Ok(Some(Framing::Length(5)))
        );
        assert_eq!(v(b"GET / HTTP/1.1\r\nHost: a\r\n"), Ok(None));
    }

    #[test]
    fn ambiguous_framing_is_refused() {
        let cases: &[(&[u8], Refusal)] = &[
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
                Refusal::LengthAndChunked,
            ),
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
                Refusal::DifferingLengths,
            ),
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\n",
                Refusal::DifferingLengths,
            ),
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n",
                Refusal::BadLength,
            ),
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 05\r\n\r\n",
                Refusal::BadLength,
            ),
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1 0\r\n\r\n",
                Refusal::BadLength,
            ),
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n",
                Refusal::BadLength,
            ),
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n",
                Refusal::UnsupportedCoding,
            ),
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n",
                Refusal::UnsupportedCoding,
            ),
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
                Refusal::UnsupportedCoding,
            ),
            (
                b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
                Refusal::CodingOnHttp10,
            ),
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n chunked\r\n\r\n",
                Refusal::FoldedLine,
            ),
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n",
                Refusal::BadHeaderLine,
            ),
            (
                b"POST / HTTP/1.1\nHost: a\r\n\r\n",
                Refusal::BareLineEnding,
            ),
            (b"GET / HTTP/1.1\r\n\r\n", Refusal::MissingHost),
            (
                b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
                Refusal::DuplicateHost,
            ),
            (
                b"GET / HTTP/1.1\r\nHost: u@a\r\n\r\n",
                Refusal::BadHost,
            ),
            (
                b"GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n",
                Refusal::BadTarget,
            ),
            (b"GET a HTTP/1.1\r\nHost: a\r\n\r\n", Refusal::BadTarget),
            (
                b"GET ftp://a/ HTTP/1.1\r\nHost: a\r\n\r\n",
                Refusal::BadTarget,
            ),
            (b"GET * HTTP/1.1\r\nHost: a\r\n\r\n", Refusal::BadTarget),
            (
                b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n",
                Refusal::BadRequestLine,
            ),
            (b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", Refusal::BadVersion),
            (
                b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n",
                Refusal::BadHeaderValue,
            ),
        ];
        for (bytes, want) in cases {
            assert_eq!(v(bytes), Err(*want), "{}", bytes.escape_ascii());
        }
    }

    #[test]
    fn chunk_lines() {
        assert_eq!(chunk_size_line(b"5\r\nhello"), Ok(Some((5, 3))));
        assert_eq!(chunk_size_line(b"a;x=1;y=\"q\"\r\n"), Ok(Some((10, 13))));
        assert_eq!(chunk_size_line(b"5 ;x\r\n"), Ok(Some((5, 6))));
        assert_eq!(chunk_size_line(b"5"), Ok(None));
        for bad in [
            &b"5\nhello"[..],
            b"5;x\nhello\r\n",
            b"\r\n",
            b"g\r\n",
            b"5 5\r\n",
            b"1ffffffffffffffff\r\n",
            b"5;\r\n",
            b"5;x=\r\n",
            b"5\r\r\n",
        ] {
            assert_eq!(
                chunk_size_line(bad),
                Err(Refusal::BadChunk),
                "{}",
                bad.escape_ascii()
            );
        }
        assert_eq!(
            chunked_body_len(b"5\r\nhello\r\n0\r\n\r\nGET"),
            Ok(Some(15))
        );
        assert_eq!(chunked_body_len(b"0\r\nX-T: 1\r\n\r\n"), Ok(Some(13)));
        assert_eq!(chunked_body_len(b"5\r\nhello\r\n"), Ok(None));
        assert_eq!(
            chunked_body_len(b"5\r\nhelloXX0\r\n\r\n"),
            Err(Refusal::BadChunk)
        );
        assert_eq!(
            chunked_body_len(b"ffffffffffffffff\r\nx"),
            Err(Refusal::BadChunk)
        );
    }

    mod props {
        use super::super::*;
        use proptest::prelude::*;

        /// Header lines a smuggler would try, beside ordinary ones.
        const SHAPES: &[&str] = &[
            "Host: a.example",
            "Host: a.example:8080",
            "Host: b.example",
            "Host: ",
            "Content-Length: 0",
            "Content-Length: 5",
            "Content-Length: 6",
            "Content-Length: 5, 5",
            "Content-Length: 5,6",
            "Content-Length: +5",
            "Content-Length: -1",
            "Content-Length: 05",
            "Content-Length: 5 ",
            "Content-Length: 0x5",
            "Content-Length: 18446744073709551616",
            "content-length: 5",
            "CONTENT-LENGTH: 7",
            "Transfer-Encoding: chunked",
            "transfer-encoding: CHUNKED",
            "Transfer-Encoding: chunked, identity",
            "Transfer-Encoding: identity, chunked",
            "Transfer-Encoding: gzip, chunked",
            "Transfer-Encoding: xchunked",
            "Transfer-Encoding: chunked;q=1",
            "Transfer-Encoding: ",
            "Transfer-Encoding: \tchunked",
            "Transfer-Encoding : chunked",
            " Transfer-Encoding: chunked",
            "Transfer-Encoding:\x0bchunked",
            "X-Padding: aaaaaaaaaaaaaaaa",
            "Connection: keep-alive",
            "Expect: 100-continue",
            "Via: 1.1 other",
        ];
        const TARGETS: &[&str] = &[
            "/",
            "/a?b=c",
            "*",
            "http://a.example/x",
            "HTTPS://a.example:443/",
            "http://u@a.example/",
            "a.example:443",
            "/#frag",
            "ftp://a/",
            "//double",
            "/%zz",
        ];
        const METHODS: &[&str] = &["GET", "POST", "PUT", "OPTIONS", "CONNECT", "HEAD", "G@T"];
        const VERSIONS: &[&str] = &["HTTP/1.1", "HTTP/1.0", "HTTP/2.0", "HTTP/1.1 "];

        fn arb_line() -> impl Strategy<Value = String> {
            prop_oneof![
                4 => proptest::sample::select(SHAPES).prop_map(str::to_string),
                1 => "[A-Za-z-]{1,12}: [ -~]{0,20}",
            ]
        }

        /// A request head as text, with its parts.
        fn arb_head() -> impl Strategy<Value = (String, String, String, Vec<String>)> {
            (
                proptest::sample::select(METHODS),
                proptest::sample::select(TARGETS),
                proptest::sample::select(VERSIONS),
                proptest::collection::vec(arb_line(), 0..6),
            )
                .prop_map(|(m, t, v, lines)| {
                    let mut text = format!("{m} {t} {v}\r\n");
                    for l in &lines {
                        text.push_str(l);
                        text.push_str("\r\n");
                    }
                    text.push_str("\r\n");
                    (text, m.to_string(), t.to_string(), lines)
                })
        }

        /// Counts header lines named `name`, by hand.
        fn count(head: &Head<'_>, name: &str) -> usize {
            head.headers
                .iter()
                .filter(|(n, _)| String::from_utf8_lossy(n).to_lowercase() == name)
                .count()
        }

        /// The invariants of an accepted head: one message-length interpretation.
        fn assert_one_framing(head: &Head<'_>, framing: Framing) {
            let (cl, te) = (
                count(head, "content-length"),
                count(head, "transfer-encoding"),
            );
            assert!(cl == 0 || te == 0, "accepted both CL and TE: {head:?}");
            match framing {
                Framing::Chunked => {
                    assert_eq!(te, 1);
                    assert_eq!(head.version, Version::Http11);
                }
                Framing::Length(n) => {
                    assert!(cl >= 1);
                    for (name, v) in &head.headers {
                        if name.eq_ignore_ascii_case(b"content-length") {
                            for e in String::from_utf8_lossy(v).split(',') {
                                assert_eq!(e.trim().parse::<u64>().ok(), Some(n), "{head:?}");
                            }
                        }
                    }
                }
                Framing::None => assert_eq!((cl, te), (0, 0)),
            }
            let hosts = count(head, "host");
            assert!(hosts <= 1);
            if head.version == Version::Http11 && hosts == 0 {
                assert!(head.target.starts_with(b"http") || head.target.starts_with(b"HTTP"));
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]

            #[test]
            fn never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
                let _ = verdict(&bytes);
                let _ = chunked_body_len(&bytes);
                let _ = chunk_size_line(&bytes);
            }

            #[test]
            fn never_panics_on_head_like_bytes(
                (text, ..) in arb_head(),
                flips in proptest::collection::vec((any::<prop::sample::Index>(), prop::sample::select(&b"\r\n \t:,\x00;0aA"[..])), 0..4),
            ) {
                let mut bytes = text.into_bytes();
                for (i, b) in flips {
                    let i = i.index(bytes.len());
                    bytes[i] = b;
                }
                if let Ok(Some((head, n))) = parse_head(&bytes) {
                    prop_assert!(n <= bytes.len());
                    if let Ok(f) = check(&head) {
                        assert_one_framing(&head, f);
                    }
                }
            }

            #[test]
            fn an_accepted_head_has_exactly_one_message_length((text, method, target, lines) in arb_head()) {
                let bytes = text.as_bytes();
                if let Ok(Some((head, n))) = parse_head(bytes) {
                    // It parses back to what was written.
                    prop_assert_eq!(n, bytes.len());
                    prop_assert_eq!(head.method, method.as_bytes());
                    prop_assert_eq!(head.target, target.as_bytes());
                    prop_assert_eq!(head.headers.len(), lines.len());
                    if let Ok(f) = check(&head) {
                        assert_one_framing(&head, f);
                    }
                }
            }

            #[test]
            fn what_follows_a_head_never_changes_its_verdict(
                (text, ..) in arb_head(),
                tail in proptest::collection::vec(any::<u8>(), 0..64),
            ) {
                let alone = verdict(text.as_bytes());
                let mut more = text.clone().into_bytes();
                more.extend_from_slice(&tail);
                prop_assert_eq!(verdict(&more), alone);
                // No strict prefix of a complete head is accepted early.
                if let Ok(Some(_)) = alone {
                    for cut in 0..text.len() {
                        prop_assert_eq!(verdict(&text.as_bytes()[..cut]), Ok(None));
                    }
                }
            }

            #[test]
            fn header_name_case_does_not_matter((text, ..) in arb_head()) {
                let (line, rest) = text.split_once("\r\n").unwrap_or((&text, ""));
                let flipped: String = rest
                    .split("\r\n")
                    .map(|l| match l.split_once(':') {
                        Some((n, v)) => format!("{}:{v}", n.to_uppercase()),
                        None => l.to_string(),
                    })
                    .collect::<Vec<_>>()
                    .join("\r\n");
                let a = verdict(text.as_bytes());
                let b = verdict(format!("{line}\r\n{flipped}").as_bytes());
                prop_assert_eq!(a.map(|o| o.map(|x| x.0)), b.map(|o| o.map(|x| x.0)));
            }

            #[test]
            fn a_second_framing_header_is_always_refused((text, ..) in arb_head(), n in 0u64..1000) {
                let with = |line: &str| format!("{}{line}\r\n\r\n", &text[..text.len() - 2]);
                match verdict(text.as_bytes()) {
                    Ok(Some((Framing::Length(len), _))) => {
                        prop_assert!(verdict(with("Transfer-Encoding: chunked").as_bytes()).is_err());
                        let other = if n == len { n + 1 } else { n };
                        let second = format!("Content-Length: {other}");
                        prop_assert!(verdict(with(&second).as_bytes()).is_err());
                    }
                    Ok(Some((Framing::Chunked, _))) => {
                        let length = format!("Content-Length: {n}");
                        prop_assert!(verdict(with(&length).as_bytes()).is_err());
                        prop_assert!(verdict(with("Transfer-Encoding: chunked").as_bytes()).is_err());
                    }
                    _ => {}
                }
            }

            #[test]
            fn chunked_bodies_are_found_exactly(
                chunks in proptest::collection::vec((proptest::collection::vec(any::<u8>(), 1..40), proptest::option::of("[a-z]{1,5}(=[a-z0-9]{1,4})?")), 0..5),
                tail in proptest::collection::vec(any::<u8>(), 0..20),
            ) {
                let mut body = Vec::new();
                for (data, ext) in &chunks {
                    body.extend_from_slice(format!("{:x}", data.len()).as_bytes());
                    if let Some(e) = ext {
                        body.extend_from_slice(format!(";{e}").as_bytes());
                    }
                    body.extend_from_slice(b"\r\n");
                    body.extend_from_slice(data);
                    body.extend_from_slice(b"\r\n");
                }
                body.extend_from_slice(b"0\r\n\r\n");
                let len = body.len();
                for cut in 0..len {
                    prop_assert_eq!(chunked_body_len(&body[..cut]), Ok(None));
                }
                body.extend_from_slice(&tail);
                prop_assert_eq!(chunked_body_len(&body), Ok(Some(len)));
            }
        }
    }
}
