//! What the node may forward from one connection's bytes, by the core's request-head rules:
//! the requests whose heads the rules accept, in order, up to the first refused head, the end
//! of a chunked body (the node closes after one) or an incomplete request. Anything after that, and anything inside a body, must never reach the origin as a
//! request.

use portico_core::head_rules::{self, Framing};

/// The rules' reading of a byte stream.
#[derive(Debug, Default, Clone)]
pub struct Reading {
    /// Ids in heads the rules accept (they may reach the origin).
    pub allowed: Vec<String>,
    /// Heads accepted.
    pub accepted: usize,
    /// Whether reading stopped at a head the rules refuse.
    pub refused: Option<head_rules::Refusal>,
    /// Whether reading stopped inside a chunked body the rules refuse.
    pub bad_body: bool,
    /// Heads the rules refuse as sent but accept once Pingora has percent-encoded the
    /// target (it rewrites a request line whose target holds a space, `<`, `>`, `"` or a
    /// control byte before any hook sees it): they may reach the origin, encoded.
    pub autocorrected: usize,
}

/// Pingora's rewrite of an illegal request line (`escape_illegal_request_line` in
/// pingora-core 0.9.1's v1 server): `^\w+ (?P<uri>.+) HTTP/\d(\.\d)?` on the first line, the
/// target's controls, spaces, `<`, `>`, `"` and non-ASCII bytes percent-encoded. `None` when
/// it would not rewrite (the parser accepts the line as it is, or it does not match).
pub fn pingora_escape(head: &[u8]) -> Option<Vec<u8>> {
    let line_end = head.iter().position(|&b| b == b'\n').unwrap_or(head.len());
    let line = &head[..line_end];
    let method = line
        .iter()
        .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_')
        .count();
    if method == 0 || line.get(method) != Some(&b' ') {
        return None;
    }
    let uri_start = method + 1;
    // The greedy `.+` ends at the last ` HTTP/<digit>` of the line.
    let uri_end = (uri_start + 1..line.len()).rev().find(|&i| {
        line[i..].starts_with(b" HTTP/") && line.get(i + 6).is_some_and(u8::is_ascii_digit)
    })?;
    let uri = &line[uri_start..uri_end];
    let illegal = |b: u8| b < 0x20 || b == 0x7f || b == b' ' || b == b'<' || b == b'>' || b == b'"';
    if !uri.iter().any(|&b| illegal(b)) {
        return None;
    }
    let mut out = head[..uri_start].to_vec();
    for &b in uri {
        if illegal(b) || b >= 0x80 {
            out.extend_from_slice(format!("%{b:02X}").as_bytes());
        } else {
            out.push(b);
        }
    }
    out.extend_from_slice(&head[uri_end..]);
    Some(out)
}

/// Reads `stream` the way the rules frame it.
pub fn read(stream: &[u8]) -> Reading {
    let mut out = Reading::default();
    let mut stream = stream.to_vec();
    let mut at = 0usize;
    while at < stream.len() {
        let mut verdict = head_rules::verdict(&stream[at..]);
        if verdict.is_err() {
            if let Some(escaped) = pingora_escape(&stream[at..]) {
                if let Ok(Some(v)) = head_rules::verdict(&escaped) {
                    out.autocorrected += 1;
                    stream.truncate(at);
                    stream.extend_from_slice(&escaped);
                    verdict = Ok(Some(v));
                }
            }
        }
        let rest = &stream[at..];
        match verdict {
            Ok(Some((framing, n))) => {
                out.accepted += 1;
                out.allowed.extend(super::cases::find_ids(&rest[..n]));
                at += n;
                let body = &stream[at..];
                let len = match framing {
                    Framing::None => 0,
                    Framing::Length(l) => match usize::try_from(l) {
                        Ok(l) if l <= body.len() => l,
                        _ => return out,
                    },
                    // The node closes the connection after a request with a chunked body
                    // (see `head_refusal` in the edge): nothing behind it is read.
                    Framing::Chunked => {
                        if head_rules::chunked_body_len(body).is_err() {
                            out.bad_body = true;
                        }
                        return out;
                    }
                };
                at += len;
            }
            Ok(None) => return out,
            Err(r) => {
                out.refused = Some(r);
                return out;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_pipelines_and_stops_at_a_refusal() {
        let r = read(
            b"POST /fz1x0z HTTP/1.1\r\nHost: a\r\nContent-Length: 9\r\n\r\nfz1x9z...\
              GET /fz1x1z HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n\
              GET /fz1x2z HTTP/1.1\r\nHost: a\r\n\r\n",
        );
        assert_eq!(r.allowed, vec!["fz1x0z"]);
        assert_eq!(r.accepted, 1);
        assert_eq!(r.refused, Some(head_rules::Refusal::LengthAndChunked));
        let r = read(
            b"POST /fz2x0z HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n\
              GET /fz2x1z HTTP/1.1\r\nHost: a\r\n\r\n",
        );
        // Nothing behind a chunked body is read: the node closes after it.
        assert_eq!(r.allowed, vec!["fz2x0z"]);
        let r = read(
            b"POST /fz3x0z HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n\
              GET /fz3x1z HTTP/1.1\r\nHost: a\r\n\r\n",
        );
        assert_eq!(r.allowed, vec!["fz3x0z"]);
        assert!(r.bad_body);
        let r = read(b"GET /fz4x0z HTTP/1ET /x HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!((r.allowed.len(), r.autocorrected), (1, 1));
        assert_eq!(
            pingora_escape(b"GET /a b<\x01 HTTP/1.1\r\n").as_deref(),
            Some(&b"GET /a%20b%3C%01 HTTP/1.1\r\n"[..])
        );
        assert_eq!(pingora_escape(b"GET /a HTTP/1.1\r\n"), None);
    }
}
