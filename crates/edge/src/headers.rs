//! Header rules: forwarding headers, loop detection, request ids.

use http::HeaderValue;
use pingora_http::RequestHeader;
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

/// `existing, ip` or just `ip` (the `X-Forwarded-For` rule), formatting IPv4 by hand.
pub fn append_ip(existing: Option<&[u8]>, ip: IpAddr) -> Vec<u8> {
    let mut v = Vec::with_capacity(existing.map_or(0, |e| e.len() + 2) + 39);
    if let Some(e) = existing.filter(|e| !e.is_empty()) {
        v.extend_from_slice(e);
        v.extend_from_slice(b", ");
    }
    match ip {
        IpAddr::V4(ip) => {
            for (i, octet) in ip.octets().into_iter().enumerate() {
                if i > 0 {
                    v.push(b'.');
                }
                if octet >= 100 {
                    v.push(b'0' + octet / 100);
                }
                if octet >= 10 {
                    v.push(b'0' + octet / 10 % 10);
                }
                v.push(b'0' + octet % 10);
            }
        }
        IpAddr::V6(_) => {
            use std::io::Write;
            let _ = write!(v, "{ip}");
        }
    }
    v
}

/// `existing, addition` or just `addition`.
pub fn append_list(existing: Option<&[u8]>, addition: &str) -> Vec<u8> {
    match existing {
        Some(e) if !e.is_empty() => {
            let mut v = Vec::with_capacity(e.len() + 2 + addition.len());
            v.extend_from_slice(e);
            v.extend_from_slice(b", ");
            v.extend_from_slice(addition.as_bytes());
            v
        }
        _ => addition.as_bytes().to_vec(),
    }
}

/// The request's host: the Host header, or the authority of an absolute URI.
pub fn request_host(req: &RequestHeader) -> Option<&str> {
    req.headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri.authority().map(|a| a.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(headers: &[(&str, &str)]) -> RequestHeader {
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

    #[test]
    fn forwarded_for_appends_the_client_ip() {
        for ip in [
            "0.0.0.0",
            "1.2.3.4",
            "10.20.30.40",
            "192.168.100.255",
            "255.255.255.255",
        ] {
            let addr: IpAddr = ip.parse().unwrap();
            assert_eq!(append_ip(None, addr), ip.as_bytes());
        }
        let v6: IpAddr = "::1".parse().unwrap();
        assert_eq!(append_ip(Some(b"1.1.1.1"), v6), b"1.1.1.1, ::1");
        assert_eq!(append_ip(Some(b""), v6), b"::1");
    }

    #[test]
    fn lists_append() {
        assert_eq!(append_list(None, "b"), b"b");
        assert_eq!(append_list(Some(b"a"), "b"), b"a, b");
        assert_eq!(append_list(Some(b""), "b"), b"b");
    }
}
