//! What comes in: the request head's refusal, its Host (absolute-form targets, HTTP/1.1's
//! required Host), the request id, loop detection by `Via`, and WebSocket upgrades.

use crate::request::trace::DEBUG_HEADER;
use http::HeaderValue;
use pingora_http::RequestHeader;
use portico_core::cidr::Cidr;
use portico_core::head_rules;
use std::net::IpAddr;

/// Whether any `Via` entry names `token` (`portico-<region>`) as its received-by part.
pub fn via_names(req: &RequestHeader, token: &str) -> bool {
    req.headers.get_all("via").iter().any(|v| {
        v.to_str().is_ok_and(|s| {
            s.split(',').any(|entry| {
                // entry: "1.1 portico-eu-west" or "HTTP/1.1 name (comment)"
                entry
                    .split_whitespace()
                    .nth(1)
                    .is_some_and(|by| by.eq_ignore_ascii_case(token))
            })
        })
    })
}

/// Whether `client` is in `node.trusted_proxies` (`trusted`): its forwarding headers are kept.
pub fn from_trusted_proxy(trusted: &[Cidr], client: Option<IpAddr>) -> bool {
    !trusted.is_empty() && client.is_some_and(|ip| trusted.iter().any(|n| n.contains(ip)))
}

/// Whether the request asks for the decision trace (`X-Portico-Debug: 1`) and may see it:
/// it comes from loopback or from a trusted proxy.
pub fn wants_trace(req: &RequestHeader, trusted_proxy: bool, client: Option<IpAddr>) -> bool {
    req.headers.get(DEBUG_HEADER).is_some_and(|v| v == "1")
        && (trusted_proxy || client.is_some_and(|ip| ip.is_loopback()))
}

/// A request id the client sent, if it is one we can safely pass on (1–200 visible ASCII).
pub fn client_request_id(req: &RequestHeader) -> Option<&str> {
    let v = req.headers.get("x-request-id")?.to_str().ok()?;
    valid_request_id(v).then_some(v)
}

/// A new random request id: 32 hex digits.
pub fn new_request_id() -> String {
    String::from_utf8_lossy(&hex_id(fastrand::u128(..))).into_owned()
}

/// `x` as 32 lower-case hex digits, without the formatting machinery (this runs per request).
fn hex_id(x: u128) -> [u8; 32] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = HEX[((x >> (124 - 4 * i)) & 0xf) as usize];
    }
    out
}

/// The request id to use, as a header value: the client's if it is one we can safely pass on
/// (see [`client_request_id`]), else a new one. Sharing the client's bytes costs no copy.
pub fn request_id_value(req: &RequestHeader) -> HeaderValue {
    if let Some(v) = req.headers.get("x-request-id") {
        if v.to_str().is_ok_and(valid_request_id) {
            return v.clone();
        }
    }
    HeaderValue::from_bytes(&hex_id(fastrand::u128(..)))
        .unwrap_or_else(|_| HeaderValue::from_static("-"))
}

fn valid_request_id(v: &str) -> bool {
    !v.is_empty() && v.len() <= 200 && v.bytes().all(|b| b.is_ascii_graphic())
}

/// Whether the request asks for a WebSocket upgrade (`Upgrade: websocket` and `Connection`
/// naming `upgrade`), which keeps its `Upgrade` and `Connection: upgrade`.
pub fn is_websocket_upgrade(req: &RequestHeader) -> bool {
    req.headers
        .get(http::header::UPGRADE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"))
        && connection_tokens(req).any(|t| t.eq_ignore_ascii_case("upgrade"))
}

/// The tokens of the `Connection` header(s), trimmed, empty ones skipped.
pub(crate) fn connection_tokens(req: &RequestHeader) -> impl Iterator<Item = &str> {
    req.headers
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// The request's host: the `Host` header (for an absolute-form target Pingora has already
/// refused a `Host` that differs from its authority, and [`host_from_target`] fills in a
/// missing one), else the URI's authority.
pub fn request_host(req: &RequestHeader) -> Option<&str> {
    req.headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri.authority().map(|a| a.as_str()))
}

/// The authority of an absolute-form target (`GET http://shop.example.com/x HTTP/1.1`),
/// which Pingora keeps in the raw target while `uri` holds only the path.
pub fn absolute_authority(req: &RequestHeader) -> Option<http::uri::Authority> {
    let raw = req.raw_path();
    if raw.first().is_none_or(|&b| b == b'/' || b == b'*') {
        return None;
    }
    http::Uri::try_from(raw).ok()?.authority().cloned()
}

/// Makes an absolute-form target's authority the request's `Host` when it came without one,
/// so routing, `X-Forwarded-Host` and the origin see the host the client named.
pub fn host_from_target(req: &mut RequestHeader) -> pingora_error::Result<()> {
    if req.headers.contains_key(http::header::HOST) {
        return Ok(());
    }
    if let Some(authority) = absolute_authority(req) {
        req.insert_header("Host", authority.as_str())?;
    }
    Ok(())
}

/// An HTTP/1.1 request must say which host it is for (RFC 9112 §3.2): a `Host` header (after
/// [`host_from_target`]). HTTP/1.0 may omit it.
pub fn lacks_required_host(req: &RequestHeader) -> bool {
    req.version == http::Version::HTTP_11
        && !req.headers.contains_key(http::header::HOST)
        && req.uri.authority().is_none()
}

/// Applies the core's request-head rules ([`portico_core::head_rules`]) to the request a
/// session read, and answers what to refuse. An HTTP/1 head is judged as the client sent it:
/// Pingora drops a `Content-Length` that comes with `Transfer-Encoding` before any hook runs,
/// so the parsed header alone cannot show that ambiguity. An HTTP/2 request (no framing
/// headers of its own) is judged from its parsed header.
///
/// The connection is then set up for what follows: a refused request's connection is not
/// reused (RFC 9112 §6.3: respond 400, then close), and neither is one whose request has a
/// chunked body — Pingora's chunk parser reads an empty chunk-size line as the last chunk and
/// takes any byte, a bare LF included, inside a chunk extension, so where it ends a body is
/// not where the rules would; closing after the response means bytes behind a chunked body
/// are never read as a request. Any other accepted request keeps its connection with
/// HTTP/1.1 pipelining on: requests a client sends back to back are answered in order.
pub fn head_refusal(
    session: &mut pingora_core::protocols::http::ServerSession,
) -> Option<head_rules::Refusal> {
    use pingora_core::protocols::http::ServerSession;
    let (refusal, reuse) = match session {
        ServerSession::H1(_) => {
            let raw = session.to_h1_raw();
            match head_rules::verdict(&raw) {
                Ok(Some((head_rules::Framing::Chunked, _))) => (None, false),
                Ok(Some(_)) => (None, true),
                Err(refusal) => (Some(refusal), false),
                // Pingora parsed a complete head from these bytes: not complete here means
                // they hold what the rules do not read as a line ending.
                Ok(None) => (Some(head_rules::Refusal::BareLineEnding), false),
            }
        }
        _ => (header_refusal(session.req_header()), true),
    };
    if reuse {
        session.set_pipelining_enabled(true);
    } else {
        session.set_keepalive(None);
    }
    refusal
}

/// The head rules on a parsed request header (HTTP/2, or one built in code): method,
/// target (the whole URI when it has an authority), version and header fields.
pub fn header_refusal(req: &RequestHeader) -> Option<head_rules::Refusal> {
    let target = if req.uri.authority().is_some() {
        req.uri.to_string().into_bytes()
    } else {
        req.raw_path().to_vec()
    };
    let version = match req.version {
        http::Version::HTTP_10 | http::Version::HTTP_09 => head_rules::Version::Http10,
        http::Version::HTTP_11 => head_rules::Version::Http11,
        _ => head_rules::Version::Http2,
    };
    let head = head_rules::Head {
        method: req.method.as_str().as_bytes(),
        target: &target,
        version,
        headers: req
            .headers
            .iter()
            .map(|(k, v)| (k.as_str().as_bytes(), v.as_bytes()))
            .collect(),
    };
    head_rules::check(&head).err()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A `GET /` with `headers`, for tests.
    pub(crate) fn req(headers: &[(&str, &str)]) -> RequestHeader {
        let mut r = RequestHeader::build("GET", b"/", None).unwrap();
        for (k, v) in headers {
            r.append_header(k.to_string(), *v).unwrap();
        }
        r
    }

    #[test]
    fn via_loop_detection_matches_whole_tokens() {
        assert!(via_names(&req(&[("Via", "1.1 portico-eu")]), "portico-eu"));
        assert!(via_names(
            &req(&[("Via", "1.0 fred, 1.1 portico-eu (x)")]),
            "portico-eu"
        ));
        assert!(via_names(
            &req(&[("Via", "1.0 a"), ("Via", "1.1 PORTICO-EU")]),
            "portico-eu"
        ));
        assert!(!via_names(
            &req(&[("Via", "1.1 portico-eu-west")]),
            "portico-eu"
        ));
        assert!(!via_names(&req(&[("Via", "portico-eu")]), "portico-eu"));
        assert!(!via_names(&req(&[]), "portico-eu"));
    }

    #[test]
    fn only_a_trusted_proxy_or_loopback_may_ask_for_the_trace() {
        let trusted = [Cidr::parse("10.0.0.0/8").unwrap()];
        let inside = Some("10.1.2.3".parse().unwrap());
        let outside = Some("192.0.2.7".parse().unwrap());
        let loopback = Some("127.0.0.1".parse().unwrap());
        assert!(from_trusted_proxy(&trusted, inside));
        assert!(!from_trusted_proxy(&trusted, outside));
        assert!(!from_trusted_proxy(&trusted, None));
        assert!(!from_trusted_proxy(&[], inside));
        let asks = req(&[("X-Portico-Debug", "1")]);
        assert!(wants_trace(&asks, true, inside));
        assert!(wants_trace(&asks, false, loopback));
        assert!(!wants_trace(&asks, false, outside));
        assert!(!wants_trace(
            &req(&[("X-Portico-Debug", "yes")]),
            true,
            loopback
        ));
        assert!(!wants_trace(&req(&[]), true, loopback));
    }

    #[test]
    fn request_ids() {
        assert_eq!(
            client_request_id(&req(&[("X-Request-Id", "abc-1")])),
            Some("abc-1")
        );
        assert_eq!(client_request_id(&req(&[("X-Request-Id", "a b")])), None);
        assert_eq!(client_request_id(&req(&[("X-Request-Id", "")])), None);
        let id = new_request_id();
        assert_eq!(id.len(), 32);
        assert_ne!(id, new_request_id());
    }

    #[test]
    fn request_id_values() {
        let kept = request_id_value(&req(&[("X-Request-Id", "abc-1")]));
        assert_eq!(kept, "abc-1");
        for bad in ["a b", ""] {
            let fresh = request_id_value(&req(&[("X-Request-Id", bad)]));
            assert_eq!(fresh.len(), 32);
            assert!(fresh.as_bytes().iter().all(u8::is_ascii_hexdigit));
        }
        assert_eq!(
            &hex_id(0x0123_4567_89ab_cdef_0011_2233_4455_6677),
            b"0123456789abcdef0011223344556677"
        );
        assert_eq!(new_request_id().len(), 32);
    }
}
