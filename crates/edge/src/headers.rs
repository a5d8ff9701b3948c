//! Header rules: forwarding headers, loop detection, request ids.

use pingora_http::RequestHeader;

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
    (!v.is_empty() && v.len() <= 200 && v.bytes().all(|b| b.is_ascii_graphic())).then_some(v)
}

/// A new random request id: 32 hex digits.
pub fn new_request_id() -> String {
    format!("{:032x}", fastrand::u128(..))
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
    fn lists_append() {
        assert_eq!(append_list(None, "b"), b"b");
        assert_eq!(append_list(Some(b"a"), "b"), b"a, b");
        assert_eq!(append_list(Some(b""), "b"), b"b");
    }
}
