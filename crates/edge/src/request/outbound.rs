//! Every edit of what goes out: what a request carries to an origin (forwarding headers,
//! `Via`, the request id, Host, hop-by-hop headers removed), what a health probe carries,
//! and what a response carries to the client.

use crate::client_cert::{ClientCert, SHA256_HEADER, SUBJECT_HEADER};
use crate::live_pool::OriginPeer;
use crate::request::inbound::{
    absolute_authority, connection_tokens, is_websocket_upgrade, request_host,
};
use crate::request::rule_edits;
use crate::request::trace::{DECISION_HEADER, Trace};
use crate::snapshot::Snapshot;
use crate::upstream::head;
use bytes::Bytes;
use http::HeaderValue;
use pingora_error::{Error, ErrorType, Result};
use pingora_http::{RequestHeader, ResponseHeader};
use portico_core::config::PoolConfig;
use portico_core::rules::Actions;
use std::net::IpAddr;

/// What the forwarding policy needs to know about the client side of one request.
pub struct ClientSide<'a> {
    /// The config the request runs on.
    pub snapshot: &'a Snapshot,
    /// The client's address.
    pub client_ip: Option<IpAddr>,
    /// Whether the client's connection is TLS.
    pub tls: bool,
    /// Whether the client is in `node.trusted_proxies` (its forwarding headers are kept).
    pub trusted_proxy: bool,
    /// The client's verified certificate (`certificates[].client_auth`).
    pub client_cert: Option<&'a ClientCert>,
    /// `X-Request-Id`.
    pub request_id: &'a HeaderValue,
    /// The request as the client sent it.
    pub original: &'a RequestHeader,
    /// What the route's rule sets decided: their request header edits and path rewrite
    /// apply to every attempt.
    pub rules: &'a Actions,
}

/// Portico's contract headers, named once: a name given to Pingora's `insert_header` is
/// parsed and allocated again on every call.
mod names {
    use http::HeaderName;
    pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
    pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
    pub const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
    pub const X_PORTICO_REGION: HeaderName = HeaderName::from_static("x-portico-region");
    pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
    pub const X_PORTICO_DECISION: HeaderName = HeaderName::from_static("x-portico-decision");
}

/// The request going to `origin`, built from `base` (the client's request, or Pingora's copy
/// of it in its proxy loop). It is built without the case-preserving name map Pingora keeps
/// for parsed requests, and Portico's own headers go into its header map under the names
/// above: no name is parsed or allocated again, and no second map is kept in step. Header
/// names therefore go out lower-case (the standard ones Pingora knows, such as `Host`,
/// titled), as HTTP/2 and HAProxy send them. [`write_direct`] writes the same request
/// straight as bytes when it can.
pub fn request_to_origin(
    c: &ClientSide<'_>,
    base: &RequestHeader,
    origin: &OriginPeer,
) -> Result<RequestHeader> {
    let mut upstream = with_target_of(base, RequestHeader::from(base.as_owned_parts()))?;
    // One pass over the names instead of nine removals that each parse and hash a name
    // (most requests carry none of them).
    if has_stripped_header(&upstream) {
        strip_hop_by_hop(&mut upstream);
        // The health probe marker is Portico's own: a client may not pose as a probe.
        upstream.remove_header("x-portico-health-probe");
        // The client certificate headers are Portico's alone, even behind a trusted proxy.
        upstream.remove_header(SUBJECT_HEADER);
        upstream.remove_header(SHA256_HEADER);
    }
    // Rules cannot name the headers set below, so Portico's own values always win.
    rule_edits::edit_request(c.rules, &mut upstream)?;
    keep_te_trailers(c.original, &mut upstream, origin);
    if let Some(cert) = c.client_cert {
        let subject = HeaderValue::from_str(&cert.subject)
            .map_err(|e| Error::because(ErrorType::InvalidHTTPHeader, SUBJECT_HEADER, e))?;
        upstream.insert_header("X-Client-Cert-Subject", subject)?;
        upstream.insert_header("X-Client-Cert-Sha256", cert.sha256.as_str())?;
    }
    let contract = Contract::decide(c, &upstream.headers, &upstream.uri, origin)?;
    // Moved out and back (no copy) to reach the header map; the target is kept across.
    let mut parts: http::request::Parts = upstream.into();
    contract.apply(&mut parts.headers);
    let mut upstream = with_target_of(base, RequestHeader::from(parts))?;
    to_origin_form(&mut upstream)?;
    Ok(upstream)
}

/// Writes the request to `origin` straight to `buf` as an HTTP/1.1 head — the bytes
/// [`request_to_origin`] then [`head::write_request`] give at version HTTP/1.1, header order
/// included — without building a second [`RequestHeader`], when the request takes this
/// direct path; `Ok(false)`, with nothing written, when it does not.
///
/// The direct path takes the client's request (`c.original`) when all of these hold, else
/// the caller builds the request with [`request_to_origin`]:
/// - its target is in origin form (`/…`) (absolute-form and `*` targets go the full path;
///   a target no request line may carry is refused by [`head::write_head`] with the error
///   the full path's [`head::write_request`] gives);
/// - it carries none of the headers the full path removes: hop-by-hop headers (`Connection`
///   of any value, `Keep-Alive`, `Proxy-Connection`, `TE`, `Trailer`, `Upgrade`, so no
///   WebSocket upgrade), `X-Portico-Health-Probe`, `X-Client-Cert-Subject` / `-Sha256`;
/// - the route's rules edit neither its headers nor its path;
/// - no verified client certificate is passed on (`c.client_cert` is `None`);
/// - `origin` speaks only HTTP/1 (`TE: trailers` is never kept).
///
/// The contract headers come from the same [`Contract`] as the full path's.
pub fn write_direct(c: &ClientSide<'_>, origin: &OriginPeer, buf: &mut Vec<u8>) -> Result<bool> {
    let req = c.original;
    let target = match req.uri.path_and_query() {
        // The target `RequestHeader::from(parts)` gives: the URI's, for an origin-form one.
        Some(p) if req.raw_path().first() == Some(&b'/') => p.as_str().as_bytes(),
        _ => return Ok(false),
    };
    if !c.rules.request_headers.is_empty()
        || c.rules.path.is_some()
        || c.client_cert.is_some()
        || origin.peer.options.alpn.get_max_http_version() >= 2
        || has_stripped_header(req)
    {
        return Ok(false);
    }
    let contract = Contract::decide(c, &req.headers, &req.uri, origin)?;
    head::write_head(buf, &req.method, target, contract.lines(&req.headers))?;
    Ok(true)
}

/// `req` (built from parts, so its target is its URI) with `base`'s target when that is not
/// in origin form: an absolute-form target's authority is in its raw bytes only.
fn with_target_of(base: &RequestHeader, mut req: RequestHeader) -> Result<RequestHeader> {
    let raw = base.raw_path();
    if !matches!(raw.first(), Some(b'/' | b'*')) && !raw.is_empty() {
        req.set_raw_path(raw)?;
    }
    Ok(req)
}

/// The headers [`Contract`] decides, in the order the full path inserts them.
static CONTRACT_NAMES: [http::HeaderName; 7] = [
    names::X_FORWARDED_FOR,
    names::X_FORWARDED_PROTO,
    names::X_FORWARDED_HOST,
    http::header::VIA,
    names::X_PORTICO_REGION,
    names::X_REQUEST_ID,
    http::header::HOST,
];

/// Which of [`CONTRACT_NAMES`] `name` is: matched by its text, which costs a length
/// comparison for most names where comparing header names one by one costs far more.
fn contract_slot(name: &http::HeaderName) -> Option<usize> {
    Some(match name.as_str() {
        "x-forwarded-for" => 0,
        "x-forwarded-proto" => 1,
        "x-forwarded-host" => 2,
        "via" => 3,
        "x-portico-region" => 4,
        "x-request-id" => 5,
        "host" => 6,
        _ => return None,
    })
}

/// Portico's forwarding policy for one request to an origin: the value each contract
/// header (`X-Forwarded-For`, `-Proto`, `-Host`, `Via`, `X-Portico-Region`, `X-Request-Id`,
/// `Host`; [`CONTRACT_NAMES`]) gets. Decided once ([`Contract::decide`]) and rendered
/// either into a header map ([`Contract::apply`], the full path) or as the header lines
/// written straight to the wire ([`Contract::lines`], [`write_direct`]); both give the same
/// headers in the same order. A value replaces every line of its name where the first of
/// them stood, or comes after the request's own headers, in the order of the names, when
/// the request had none; `None` leaves the request's own lines of that name as they are.
pub struct Contract {
    values: [Option<HeaderValue>; 7],
}

impl Contract {
    /// The decisions for a request whose headers are `h` and URI `uri` (the client's, after
    /// the full path's removals and rule edits) going to `origin`:
    /// - `X-Forwarded-For`: the request's lines joined as one list, the client's address
    ///   appended;
    /// - `X-Forwarded-Proto`, `-Host`, `X-Portico-Region`: a trusted proxy's are kept,
    ///   anyone else's replaced (the host as the client named it, when it named one);
    /// - `Via`: every entry the request carried, then this node's;
    /// - `X-Request-Id`: the request's id;
    /// - `Host`: the origin's `host_header`, else the request's own, else its `:authority`
    ///   (HTTP/2) or the origin's address (HTTP/1.0), since it goes on as HTTP/1.1.
    pub fn decide(
        c: &ClientSide<'_>,
        h: &http::HeaderMap,
        uri: &http::Uri,
        origin: &OriginPeer,
    ) -> Result<Self> {
        let invalid = |name: &'static str| {
            move |e: http::header::InvalidHeaderValue| {
                Error::because(ErrorType::InvalidHTTPHeader, name, e)
            }
        };
        let trusted = c.trusted_proxy;
        let kept = |name: &http::HeaderName| trusted && h.contains_key(name);
        let xff = c
            .client_ip
            .map(|ip| {
                // Every `X-Forwarded-For` line the request carries, as one list (RFC 9110
                // §5.3), so no hop a proxy before this one appended on a line of its own is lost.
                let existing = joined_lines(h, &names::X_FORWARDED_FOR);
                let xff = append_ip(existing.as_deref(), ip);
                HeaderValue::from_maybe_shared(Bytes::from(xff)).map_err(invalid("X-Forwarded-For"))
            })
            .transpose()?;
        let proto = (!kept(&names::X_FORWARDED_PROTO))
            .then(|| HeaderValue::from_static(if c.tls { "https" } else { "http" }));
        let forwarded_host = if kept(&names::X_FORWARDED_HOST) {
            None
        } else {
            let req = c.original;
            // The Host header as sent (shared, not copied), else the URI's authority.
            match req.headers.get(http::header::HOST) {
                Some(h) if h.to_str().is_ok() => Some(h.clone()),
                _ => request_host(req)
                    .map(|h| Bytes::copy_from_slice(h.as_bytes()))
                    .and_then(|h| HeaderValue::from_maybe_shared(h).ok()),
            }
        };
        let region = (!kept(&names::X_PORTICO_REGION)).then(|| c.snapshot.region_value.clone());
        let host = match &origin.host_header {
            Some(host) => Some(host.as_str()),
            // An HTTP/2 request names its host in `:authority` (the URI's authority).
            None if !h.contains_key(http::header::HOST) => Some(
                uri.authority()
                    .map_or(origin.address.as_str(), |a| a.as_str()),
            ),
            None => None,
        }
        .map(|host| HeaderValue::from_str(host).map_err(invalid("Host")))
        .transpose()?;
        Ok(Contract {
            values: [
                xff,
                proto,
                forwarded_host,
                Some(via_value(h, c.snapshot)?),
                region,
                Some(c.request_id.clone()),
                host,
            ],
        })
    }

    /// Into `h`: each value inserted in the order of the names (replacing a name's lines in
    /// place, else going last).
    pub fn apply(self, h: &mut http::HeaderMap) {
        for (name, value) in CONTRACT_NAMES.iter().zip(self.values) {
            if let Some(value) = value {
                h.insert(name.clone(), value);
            }
        }
    }

    /// The header lines of a request whose headers are `h` once the decisions are applied,
    /// in the order [`Contract::apply`] leaves them in `h`, without changing `h`.
    pub fn lines<'a>(&'a self, h: &'a http::HeaderMap) -> Lines<'a> {
        Lines {
            own: h.iter(),
            contract: self,
            written: 0,
            added: 0,
        }
    }
}

/// The header lines of [`Contract::lines`].
pub struct Lines<'a> {
    own: http::header::Iter<'a, HeaderValue>,
    contract: &'a Contract,
    /// The decided values already written in place of the request's own (a bit a name).
    written: u8,
    /// The next name whose value may come after the request's own headers.
    added: usize,
}

impl<'a> Iterator for Lines<'a> {
    type Item = (&'a http::HeaderName, &'a HeaderValue);

    fn next(&mut self) -> Option<Self::Item> {
        // A header map yields a name's lines together, at the place of its first.
        for (name, value) in self.own.by_ref() {
            let Some(i) = contract_slot(name) else {
                return Some((name, value));
            };
            match &self.contract.values[i] {
                None => return Some((name, value)),
                Some(_) if self.written & (1 << i) != 0 => {}
                Some(decided) => {
                    self.written |= 1 << i;
                    return Some((&CONTRACT_NAMES[i], decided));
                }
            }
        }
        while self.added < CONTRACT_NAMES.len() {
            let i = self.added;
            self.added += 1;
            if let Some(decided) = &self.contract.values[i] {
                if self.written & (1 << i) == 0 {
                    return Some((&CONTRACT_NAMES[i], decided));
                }
            }
        }
        None
    }
}

/// The `Via` header with this node appended to what the request carried.
fn via_value(h: &http::HeaderMap, snapshot: &Snapshot) -> Result<HeaderValue> {
    let Some(existing) = joined_lines(h, &http::header::VIA) else {
        return Ok(snapshot.via_value.clone());
    };
    let joined = append_list(Some(&existing), &snapshot.via_entry);
    HeaderValue::from_bytes(&joined)
        .map_err(|e| Error::because(ErrorType::InvalidHTTPHeader, "Via", e))
}

/// Adds Portico's response headers: the request id, the node's region, and the decision
/// trace when one was asked for. They go into the response's header map under the names
/// above (see [`edit_headers`]): no name is parsed or allocated per response.
pub fn response_to_client(
    resp: &mut ResponseHeader,
    snapshot: &Snapshot,
    request_id: &HeaderValue,
    trace: Option<&Trace>,
) -> Result<()> {
    // Unique per response, so HTTP/2 must not add it to the HPACK table: there it would only
    // evict reusable entries and lengthen the encoder's search for every later response.
    // `sensitive` is the h2 crate's way to send a literal that is never indexed.
    let mut id = request_id.clone();
    id.set_sensitive(true);
    let decision = trace
        .map(|t| {
            HeaderValue::try_from(t.header())
                .map_err(|e| Error::because(ErrorType::InvalidHTTPHeader, DECISION_HEADER, e))
        })
        .transpose()?;
    edit_headers(resp, |h| {
        h.reserve(2 + usize::from(decision.is_some()));
        h.insert(names::X_REQUEST_ID, id);
        h.insert(names::X_PORTICO_REGION, snapshot.region_value.clone());
        if let Some(d) = decision {
            h.insert(names::X_PORTICO_DECISION, d);
        }
    })
}

/// Runs `edit` on `resp`'s header map directly. Pingora's `insert_header` parses and
/// allocates the name on every call and keeps a second, case-preserving name map in step
/// (growing both); the response is made one without that map (moved, not copied), as the
/// request to an origin is, so its names go out lower-case (the standard ones Pingora
/// knows, such as `Content-Type`, titled), as HTTP/2 and HAProxy send them. A reason phrase
/// other than the status's own is kept.
pub fn edit_headers<R>(
    resp: &mut ResponseHeader,
    edit: impl FnOnce(&mut http::HeaderMap) -> R,
) -> Result<R> {
    let reason = resp
        .get_reason_phrase()
        .filter(|r| Some(*r) != resp.status.canonical_reason())
        .map(str::to_owned);
    let empty = ResponseHeader::from(http::Response::new(()).into_parts().0);
    let mut parts: http::response::Parts = std::mem::replace(resp, empty).into();
    let out = edit(&mut parts.headers);
    *resp = ResponseHeader::from(parts);
    if reason.is_some() {
        resp.set_reason_phrase(reason.as_deref())?;
    }
    Ok(out)
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

/// The lines of header `name` in `h` joined as one list (`a, b`): the one line as it is
/// (not copied), none as `None`.
fn joined_lines<'h>(
    h: &'h http::HeaderMap,
    name: &http::HeaderName,
) -> Option<std::borrow::Cow<'h, [u8]>> {
    let mut lines = h.get_all(name).iter();
    let first = lines.next()?;
    let Some(second) = lines.next() else {
        return Some(std::borrow::Cow::Borrowed(first.as_bytes()));
    };
    let mut all = first.as_bytes().to_vec();
    for line in std::iter::once(second).chain(lines) {
        all.extend_from_slice(b", ");
        all.extend_from_slice(line.as_bytes());
    }
    Some(std::borrow::Cow::Owned(all))
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

/// Whether the client's request carries a header that never goes to an origin as sent:
/// a hop-by-hop header (`Connection` and what it names included) or one of Portico's own
/// (`X-Portico-Health-Probe`, `X-Client-Cert-*`).
fn has_stripped_header(req: &RequestHeader) -> bool {
    req.headers.keys().any(|name| {
        matches!(
            name.as_str(),
            "connection"
                | "keep-alive"
                | "proxy-connection"
                | "te"
                | "trailer"
                | "upgrade"
                | "x-portico-health-probe"
                | SUBJECT_HEADER
                | SHA256_HEADER
        )
    })
}

/// Hop-by-hop headers that never go to the origin (RFC 9110 §7.6.1), besides `Connection` and
/// whatever it names.
const HOP_BY_HOP: [&str; 5] = ["keep-alive", "proxy-connection", "te", "trailer", "upgrade"];

/// Removes the hop-by-hop headers from a request going to an origin: `Connection` and every
/// header it names, `Keep-Alive`, `Proxy-Connection`, `TE`, `Trailer` and `Upgrade` — except
/// that a WebSocket upgrade keeps `Upgrade` and `Connection: upgrade`. Costs a few lookups
/// when the client sent none of them.
pub fn strip_hop_by_hop(req: &mut RequestHeader) {
    let websocket = is_websocket_upgrade(req);
    let named: Vec<String> = connection_tokens(req)
        .filter(|t| !t.eq_ignore_ascii_case("close") && !t.eq_ignore_ascii_case("keep-alive"))
        .map(|t| t.to_ascii_lowercase())
        .collect();
    for name in &named {
        // `Connection: upgrade` names the Upgrade header a WebSocket keeps.
        if !(websocket && name == "upgrade") {
            let _ = req.remove_header(name.as_str());
        }
    }
    for name in HOP_BY_HOP {
        if !(websocket && name == "upgrade") {
            let _ = req.remove_header(name);
        }
    }
    if req.headers.contains_key(http::header::CONNECTION) {
        let _ = req.remove_header("connection");
        if websocket {
            let _ = req.insert_header("Connection", "upgrade");
        }
    }
}

/// `TE: trailers` on to an origin that may speak HTTP/2, when the client sent it: the one
/// `TE` HTTP/2 allows, which gRPC requires (servers use it to detect proxies that would drop
/// the `grpc-status` trailer; Portico passes trailers on to HTTP/2 clients).
fn keep_te_trailers(original: &RequestHeader, upstream: &mut RequestHeader, origin: &OriginPeer) {
    if origin.peer.options.alpn.get_max_http_version() < 2 {
        return;
    }
    let trailers = original.headers.get_all(http::header::TE).iter().any(|v| {
        v.to_str().is_ok_and(|v| {
            v.split(',').any(|t| {
                t.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .eq_ignore_ascii_case("trailers")
            })
        })
    });
    if trailers {
        let _ = upstream.insert_header(http::header::TE, HeaderValue::from_static("trailers"));
    }
}

/// Turns the request going to an origin into origin form: an absolute-form target becomes
/// its path and query (its authority is the `Host` by now, see [`Contract::decide`]).
pub fn to_origin_form(upstream: &mut RequestHeader) -> pingora_error::Result<()> {
    if absolute_authority(upstream).is_some() {
        let path = upstream
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "/".to_string());
        upstream.set_raw_path(path.as_bytes())?;
    }
    Ok(())
}

/// A probe request for `origin`, as `health_probe` describes it.
pub fn probe_request(
    config: &PoolConfig,
    origin: &OriginPeer,
    region: &str,
) -> Result<RequestHeader> {
    let method = config.probe.method.as_str();
    let mut req = RequestHeader::build(method, config.probe.path.as_bytes(), None)?;
    let host = origin
        .host_header
        .clone()
        .unwrap_or_else(|| origin.addr.to_string());
    req.insert_header("Host", host)?;
    req.insert_header("User-Agent", "portico-health-probe")?;
    req.insert_header("X-Portico-Health-Probe", "1")?;
    req.insert_header("X-Portico-Region", region)?;
    Ok(req)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::inbound::tests::req;
    use crate::request::inbound::{host_from_target, lacks_required_host};
    use proptest::prelude::*;

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
    fn hop_by_hop_headers_stay_on_their_hop() {
        let mut r = req(&[
            ("Connection", "close, X-Secret , keep-alive"),
            ("X-Secret", "1"),
            ("Keep-Alive", "timeout=5"),
            ("Proxy-Connection", "keep-alive"),
            ("TE", "trailers"),
            ("Trailer", "Expires"),
            ("Upgrade", "h2c"),
            ("X-Kept", "yes"),
        ]);
        strip_hop_by_hop(&mut r);
        let left: Vec<&str> = r.headers.keys().map(|k| k.as_str()).collect();
        assert_eq!(left, vec!["x-kept"]);
    }

    #[test]
    fn the_one_pass_check_finds_every_header_that_is_stripped() {
        let names = HOP_BY_HOP.iter().chain(&[
            "Connection",
            "X-Portico-Health-Probe",
            SUBJECT_HEADER,
            SHA256_HEADER,
        ]);
        for name in names {
            let r = req(&[("Host", "a"), (name, "1"), ("Accept", "*/*")]);
            assert!(has_stripped_header(&r), "{name}");
        }
        let plain = req(&[("Host", "a"), ("Accept", "*/*"), ("X-Kept", "yes")]);
        assert!(!has_stripped_header(&plain));
    }

    #[test]
    fn a_websocket_upgrade_keeps_its_upgrade() {
        let mut r = req(&[
            ("Connection", "Upgrade"),
            ("Upgrade", "websocket"),
            ("Sec-WebSocket-Key", "abc"),
            ("Keep-Alive", "1"),
        ]);
        assert!(is_websocket_upgrade(&r));
        strip_hop_by_hop(&mut r);
        assert_eq!(
            r.headers.get("upgrade").map(|v| v.as_bytes()),
            Some(&b"websocket"[..])
        );
        assert_eq!(
            r.headers.get("connection").map(|v| v.as_bytes()),
            Some(&b"upgrade"[..])
        );
        assert!(r.headers.get("sec-websocket-key").is_some());
        assert!(r.headers.get("keep-alive").is_none());
        assert!(!is_websocket_upgrade(&req(&[("Upgrade", "websocket")])));
    }

    #[test]
    fn absolute_form_names_the_host_and_becomes_origin_form() {
        let mut r =
            RequestHeader::build("GET", b"http://shop.example.com:8080/a?b=c", None).unwrap();
        assert_eq!(
            absolute_authority(&r).map(|a| a.to_string()),
            Some("shop.example.com:8080".to_string())
        );
        assert!(lacks_required_host(&r));
        host_from_target(&mut r).unwrap();
        assert!(!lacks_required_host(&r));
        assert_eq!(request_host(&r), Some("shop.example.com:8080"));
        to_origin_form(&mut r).unwrap();
        assert_eq!(r.raw_path(), b"/a?b=c");
        assert_eq!(
            r.headers.get("host").map(|v| v.as_bytes()),
            Some(&b"shop.example.com:8080"[..])
        );
        assert_eq!(absolute_authority(&req(&[])), None);
    }

    #[test]
    fn http_1_1_needs_a_host_and_1_0_gets_one_forwarded() {
        let mut r = RequestHeader::build("GET", b"/", None).unwrap();
        assert!(lacks_required_host(&r));
        r.set_version(http::Version::HTTP_10);
        assert!(!lacks_required_host(&r));
        let host = |headers: Vec<String>| headers.into_iter().find(|h| h.starts_with("host:"));
        assert_eq!(
            host(sent(UNTRUSTED, &r, 0).0),
            Some("host: 10.0.0.1:8080".to_string())
        );
        let with_host = req(&[("Host", "a.example")]);
        assert!(!lacks_required_host(&with_host));
        // HTTP/2: the host is the :authority, which Pingora keeps as the URI's authority.
        let mut h2 = RequestHeader::build("GET", b"/", None).unwrap();
        h2.set_version(http::Version::HTTP_2);
        h2.set_uri(http::Uri::from_static("https://shop.example.com/x"));
        assert!(!lacks_required_host(&h2));
        assert_eq!(
            host(sent(UNTRUSTED, &h2, 0).0),
            Some("host: shop.example.com".to_string())
        );
    }

    #[test]
    fn lists_append() {
        assert_eq!(append_list(None, "b"), b"b");
        assert_eq!(append_list(Some(b"a"), "b"), b"a, b");
        assert_eq!(append_list(Some(b""), "b"), b"b");
    }

    /// A snapshot of region `eu-west` with one pool: origin `plain` (no `host_header`) and
    /// origin `named` (`host_header: api.internal`), both on 10.0.0.1.
    fn snapshot() -> Snapshot {
        snapshot_speaking("http/1.1")
    }

    /// [`snapshot`] with the pool's `protocol`.
    fn snapshot_speaking(protocol: &str) -> Snapshot {
        let text = format!(
            r#"{{"node":{{"region":"eu-west"}},
            "pools":[{{"name":"p","protocol":"{protocol}","origins":[
                {{"name":"plain","address":"10.0.0.1:8080"}},
                {{"name":"named","address":"10.0.0.1:8081","host_header":"api.internal"}}]}}],
            "routes":[{{"name":"r","pool":"p"}}]}}"#
        );
        let config = portico_core::config::parse(&text).unwrap();
        let metrics = std::sync::Arc::new(crate::metrics::Metrics::new("eu-west", "t"));
        let addrs = vec![vec![
            "10.0.0.1:8080".parse().unwrap(),
            "10.0.0.1:8081".parse().unwrap(),
        ]];
        Snapshot::build(
            config,
            text.into(),
            &addrs,
            &[Default::default()],
            None,
            &metrics,
        )
        .0
    }

    /// Every header as `name: value`, names lower-case, sorted.
    fn lines(headers: &http::HeaderMap) -> Vec<String> {
        let mut v: Vec<String> = headers
            .iter()
            .map(|(k, v)| format!("{k}: {}", String::from_utf8_lossy(v.as_bytes())))
            .collect();
        v.sort();
        v
    }

    /// The client's side of a request: from 192.0.2.7, id `rid-1`.
    struct Client {
        tls: bool,
        trusted_proxy: bool,
        cert: Option<ClientCert>,
    }

    /// `original` sent to origin `origin` of the snapshot's pool by `client`: every header
    /// the origin gets, names lower-case, sorted, and the target.
    fn sent(client: Client, original: &RequestHeader, origin: usize) -> (Vec<String>, Vec<u8>) {
        sent_via(&snapshot(), client, original, origin)
    }

    /// [`sent`] through `snapshot`.
    fn sent_via(
        snapshot: &Snapshot,
        client: Client,
        original: &RequestHeader,
        origin: usize,
    ) -> (Vec<String>, Vec<u8>) {
        let request_id = HeaderValue::from_static("rid-1");
        let side = ClientSide {
            snapshot,
            client_ip: Some("192.0.2.7".parse().unwrap()),
            tls: client.tls,
            trusted_proxy: client.trusted_proxy,
            client_cert: client.cert.as_ref(),
            request_id: &request_id,
            original,
            rules: &Actions::default(),
        };
        let upstream =
            request_to_origin(&side, original, &snapshot.pools[0].origins[origin]).unwrap();
        (lines(&upstream.headers), upstream.raw_path().to_vec())
    }

    const UNTRUSTED: Client = Client {
        tls: false,
        trusted_proxy: false,
        cert: None,
    };

    #[test]
    fn client_certificate_headers_come_only_from_the_handshake() {
        let original = req(&[
            ("Host", "api.test"),
            ("X-Client-Cert-Subject", "CN=forged"),
            ("x-client-cert-sha256", "00"),
        ]);
        let forged = |h: &Vec<String>| {
            h.iter()
                .filter(|l| l.starts_with("x-client-cert-"))
                .cloned()
                .collect::<Vec<_>>()
        };
        let trusted_without = Client {
            tls: true,
            trusted_proxy: true,
            cert: None,
        };
        let (headers, _) = sent(trusted_without, &original, 0);
        assert_eq!(forged(&headers), Vec::<String>::new());
        let with = Client {
            tls: true,
            trusted_proxy: false,
            cert: Some(ClientCert {
                subject: "CN=partner,O=Acme".into(),
                sha256: "ab".repeat(32),
                verified_by: [0; 32],
            }),
        };
        let (headers, _) = sent(with, &original, 0);
        assert_eq!(
            forged(&headers),
            [
                format!("x-client-cert-sha256: {}", "ab".repeat(32)),
                "x-client-cert-subject: CN=partner,O=Acme".to_string(),
            ]
        );
    }

    #[test]
    fn te_trailers_goes_on_only_to_origins_that_may_speak_http2() {
        let te = |value: &str| {
            let original = req(&[("Host", "shop.example"), ("TE", value)]);
            ["http/1.1", "h2", "auto"].map(|protocol| {
                let (headers, _) = sent_via(&snapshot_speaking(protocol), UNTRUSTED, &original, 0);
                headers.into_iter().find(|h| h.starts_with("te:"))
            })
        };
        let trailers = Some("te: trailers".to_string());
        assert_eq!(te("trailers"), [None, trailers.clone(), trailers.clone()]);
        assert_eq!(
            te("gzip, Trailers;q=0.5"),
            [None, trailers.clone(), trailers]
        );
        assert_eq!(te("gzip"), [None, None, None]);
    }

    #[test]
    fn an_untrusted_client_gets_portico_s_forwarding_headers_and_loses_its_own() {
        let original = req(&[
            ("Host", "shop.example"),
            ("X-Forwarded-For", "6.6.6.6"),
            ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-Host", "evil.example"),
            ("X-Portico-Region", "us-east"),
            ("X-Portico-Health-Probe", "1"),
            ("X-Request-Id", "from-client"),
            ("Via", "1.0 corp"),
            ("Connection", "keep-alive, X-Hop"),
            ("X-Hop", "1"),
            ("Keep-Alive", "timeout=5"),
            ("Accept", "*/*"),
        ]);
        let (headers, target) = sent(UNTRUSTED, &original, 0);
        assert_eq!(
            headers,
            [
                "accept: */*",
                "host: shop.example",
                "via: 1.0 corp, 1.1 portico-eu-west",
                "x-forwarded-for: 6.6.6.6, 192.0.2.7",
                "x-forwarded-host: shop.example",
                "x-forwarded-proto: http",
                "x-portico-region: eu-west",
                "x-request-id: rid-1",
            ]
        );
        assert_eq!(target, b"/");
    }

    #[test]
    fn a_trusted_proxy_keeps_its_forwarding_headers_and_host_header_names_the_origin() {
        let original = req(&[
            ("Host", "shop.example"),
            ("X-Forwarded-For", "203.0.113.9"),
            ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-Host", "www.shop.example"),
            ("X-Portico-Region", "us-east"),
            ("Via", "1.1 cdn"),
            ("Via", "1.1 lb"),
        ]);
        let trusted = Client {
            tls: false,
            trusted_proxy: true,
            cert: None,
        };
        let (headers, _) = sent(trusted, &original, 1);
        assert_eq!(
            headers,
            [
                "host: api.internal",
                "via: 1.1 cdn, 1.1 lb, 1.1 portico-eu-west",
                "x-forwarded-for: 203.0.113.9, 192.0.2.7",
                "x-forwarded-host: www.shop.example",
                "x-forwarded-proto: https",
                "x-portico-region: us-east",
                "x-request-id: rid-1",
            ]
        );
    }

    #[test]
    fn a_trusted_proxy_without_forwarding_headers_gets_portico_s() {
        let original = req(&[("Host", "shop.example")]);
        let client = Client {
            tls: true,
            trusted_proxy: true,
            cert: None,
        };
        let (headers, _) = sent(client, &original, 0);
        assert_eq!(
            headers,
            [
                "host: shop.example",
                "via: 1.1 portico-eu-west",
                "x-forwarded-for: 192.0.2.7",
                "x-forwarded-host: shop.example",
                "x-forwarded-proto: https",
                "x-portico-region: eu-west",
                "x-request-id: rid-1",
            ]
        );
    }

    #[test]
    fn an_absolute_form_target_goes_on_in_origin_form_with_its_authority_as_host() {
        let mut original =
            RequestHeader::build("GET", b"http://shop.example:8080/a?b=c", None).unwrap();
        host_from_target(&mut original).unwrap();
        let (headers, target) = sent(UNTRUSTED, &original, 0);
        assert_eq!(
            headers,
            [
                "host: shop.example:8080",
                "via: 1.1 portico-eu-west",
                "x-forwarded-for: 192.0.2.7",
                "x-forwarded-host: shop.example:8080",
                "x-forwarded-proto: http",
                "x-portico-region: eu-west",
                "x-request-id: rid-1",
            ]
        );
        assert_eq!(target, b"/a?b=c");
    }

    #[test]
    fn an_http_1_0_request_without_host_names_the_origin_s_address() {
        let mut original = req(&[]);
        original.set_version(http::Version::HTTP_10);
        let (headers, _) = sent(UNTRUSTED, &original, 0);
        assert_eq!(
            headers,
            [
                "host: 10.0.0.1:8080",
                "via: 1.1 portico-eu-west",
                "x-forwarded-for: 192.0.2.7",
                "x-forwarded-proto: http",
                "x-portico-region: eu-west",
                "x-request-id: rid-1",
            ]
        );
    }

    #[test]
    fn a_websocket_upgrade_goes_on_with_its_upgrade() {
        let original = req(&[
            ("Host", "shop.example"),
            ("Connection", "Upgrade"),
            ("Upgrade", "websocket"),
            ("Sec-WebSocket-Key", "abc"),
        ]);
        let (headers, _) = sent(UNTRUSTED, &original, 0);
        assert_eq!(
            headers,
            [
                "connection: upgrade",
                "host: shop.example",
                "sec-websocket-key: abc",
                "upgrade: websocket",
                "via: 1.1 portico-eu-west",
                "x-forwarded-for: 192.0.2.7",
                "x-forwarded-host: shop.example",
                "x-forwarded-proto: http",
                "x-portico-region: eu-west",
                "x-request-id: rid-1",
            ]
        );
    }

    /// One request of the reference model: the client's side and its request.
    #[derive(Debug, Clone)]
    struct Case {
        method: &'static str,
        target: String,
        version: http::Version,
        /// HTTP/2's `:authority`, kept as the URI's authority.
        authority: Option<&'static str>,
        headers: Vec<(&'static str, &'static str)>,
        client_ip: Option<IpAddr>,
        tls: bool,
        trusted_proxy: bool,
        origin: usize,
    }

    impl Case {
        fn request(&self) -> RequestHeader {
            let mut r = RequestHeader::build(self.method, self.target.as_bytes(), None).unwrap();
            r.set_version(self.version);
            if let Some(authority) = self.authority {
                let uri = format!("https://{authority}{}", self.target);
                r.set_uri(http::Uri::try_from(uri).unwrap());
            }
            for (k, v) in &self.headers {
                r.append_header(k.to_string(), *v).unwrap();
            }
            r
        }

        /// The head both ways: the full path (`request_to_origin`, HTTP/1.1, `write_request`)
        /// and the direct one (`None` when it declines).
        fn heads(&self, snapshot: &Snapshot, rules: &Actions) -> (Vec<u8>, Option<Vec<u8>>) {
            let original = self.request();
            let request_id = HeaderValue::from_static("rid-1");
            let side = ClientSide {
                snapshot,
                client_ip: self.client_ip,
                tls: self.tls,
                trusted_proxy: self.trusted_proxy,
                client_cert: None,
                request_id: &request_id,
                original: &original,
                rules,
            };
            let origin = &snapshot.pools[0].origins[self.origin];
            let mut built = request_to_origin(&side, &original, origin).unwrap();
            built.set_version(http::Version::HTTP_11);
            let mut full = Vec::new();
            head::write_request(&mut full, &built).unwrap();
            let mut direct = Vec::new();
            let taken = write_direct(&side, origin, &mut direct).unwrap();
            assert!(taken || direct.is_empty(), "declined after writing");
            (full, taken.then_some(direct))
        }
    }

    /// A head parsed: its request line (method, target, minor version) and each header
    /// name (lower-case) with its values in order, sorted by name.
    type Parsed = ((String, String, u8), Vec<(String, Vec<Vec<u8>>)>);

    /// `head` parsed with `httparse`.
    fn parsed(head: &[u8]) -> Parsed {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut r = httparse::Request::new(&mut headers);
        assert!(r.parse(head).unwrap().is_complete(), "one whole head");
        let mut by_name: Vec<(String, Vec<Vec<u8>>)> = Vec::new();
        for h in r.headers.iter() {
            let name = h.name.to_ascii_lowercase();
            match by_name.iter_mut().find(|(n, _)| *n == name) {
                Some((_, values)) => values.push(h.value.to_vec()),
                None => by_name.push((name, vec![h.value.to_vec()])),
            }
        }
        by_name.sort();
        let line = (
            r.method.unwrap().to_string(),
            r.path.unwrap().to_string(),
            r.version.unwrap(),
        );
        (line, by_name)
    }

    /// Header lines a client may send on the direct path, in the case it may send them:
    /// every contract header, repeated ones, titled standard names, Portico's request id.
    const LINES: [(&str, &str); 22] = [
        ("Host", "shop.example"),
        ("host", "other.example:8443"),
        ("Accept", "*/*"),
        ("X-Forwarded-For", "203.0.113.9"),
        ("x-forwarded-for", "6.6.6.6, 10.1.1.1"),
        ("X-Forwarded-Proto", "https"),
        ("X-Forwarded-Host", "www.shop.example"),
        ("Via", "1.1 cdn"),
        ("via", "1.0 corp"),
        ("X-Request-Id", "from-client"),
        ("X-Portico-Region", "us-east"),
        ("Cache-Control", "no-cache"),
        ("cookie", "a=1"),
        ("Cookie", "b=2"),
        ("User-Agent", "curl/8"),
        ("Date", "Mon, 07 Dec 2026 23:00:00 GMT"),
        ("Content-Length", "0"),
        ("X-Custom", "x"),
        ("x-empty", ""),
        ("Accept-Encoding", "gzip, br"),
        ("If-None-Match", "\"abc\""),
        ("x-utf8", "caf\u{e9}"),
    ];

    fn cases() -> impl Strategy<Value = Case> {
        let version = prop_oneof![
            Just((http::Version::HTTP_11, None)),
            Just((http::Version::HTTP_10, None)),
            Just((http::Version::HTTP_2, Some("h2.example"))),
        ];
        let ip = prop_oneof![
            Just(None),
            any::<[u8; 4]>().prop_map(|o| Some(IpAddr::from(o))),
            any::<[u16; 8]>().prop_map(|s| Some(IpAddr::from(s))),
        ];
        (
            prop::sample::select(vec!["GET", "HEAD", "OPTIONS"]),
            "(/[a-z0-9%.~-]{0,8}){1,3}(\\?[a-z0-9=&%]{0,12})?",
            version,
            prop::collection::vec(prop::sample::select(LINES.to_vec()), 0..12),
            ip,
            any::<(bool, bool, bool)>(),
        )
            .prop_map(
                |(
                    method,
                    target,
                    (version, authority),
                    headers,
                    client_ip,
                    (tls, trusted, named),
                )| Case {
                    method,
                    target,
                    version,
                    authority,
                    headers,
                    client_ip,
                    tls,
                    trusted_proxy: trusted,
                    origin: usize::from(named),
                },
            )
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

        /// The reference model: whatever the client sent, the direct path writes the bytes
        /// of the full path, so the same request line and the same headers (values in order).
        #[test]
        fn the_direct_path_writes_what_the_full_path_writes(case in cases()) {
            let snapshot = snapshot();
            let (full, direct) = case.heads(&snapshot, &Actions::default());
            let direct = direct.expect("a request without stripped headers goes direct");
            proptest::prop_assert_eq!(parsed(&direct), parsed(&full));
            proptest::prop_assert_eq!(
                String::from_utf8_lossy(&direct),
                String::from_utf8_lossy(&full)
            );
        }
    }

    #[test]
    fn every_contract_name_is_found_in_its_slot() {
        for (i, name) in CONTRACT_NAMES.iter().enumerate() {
            assert_eq!(contract_slot(name), Some(i), "{name}");
        }
        for other in [
            "accept",
            "x-forwarded",
            "vias",
            "x-request-ids",
            "x-portico-health-probe",
        ] {
            assert_eq!(contract_slot(&http::HeaderName::from_static(other)), None);
        }
    }

    #[test]
    fn requests_the_direct_path_does_not_take_go_the_full_path() {
        let base = Case {
            method: "GET",
            target: "/a?b=1".into(),
            version: http::Version::HTTP_11,
            authority: None,
            headers: vec![("Host", "shop.example"), ("Accept", "*/*")],
            client_ip: Some("192.0.2.7".parse().unwrap()),
            tls: false,
            trusted_proxy: false,
            origin: 0,
        };
        let snapshot = snapshot();
        let none = Actions::default();
        assert!(base.heads(&snapshot, &none).1.is_some());
        let with = |line: (&'static str, &'static str)| {
            let mut c = base.clone();
            c.headers.push(line);
            c
        };
        for line in [
            ("Connection", "close"),
            ("Connection", "keep-alive"),
            ("Keep-Alive", "timeout=5"),
            ("TE", "trailers"),
            ("Upgrade", "websocket"),
            ("Proxy-Connection", "keep-alive"),
            ("Trailer", "x"),
            ("X-Portico-Health-Probe", "1"),
            ("X-Client-Cert-Subject", "CN=forged"),
            ("X-Client-Cert-Sha256", "00"),
        ] {
            assert_eq!(with(line).heads(&snapshot, &none).1, None, "{line:?}");
        }
        let absolute = Case {
            target: "http://shop.example/a".into(),
            ..base.clone()
        };
        assert_eq!(absolute.heads(&snapshot, &none).1, None);
        let asterisk = Case {
            method: "OPTIONS",
            target: "*".into(),
            ..base.clone()
        };
        assert_eq!(asterisk.heads(&snapshot, &none).1, None);
        let edits = Actions {
            request_headers: vec![portico_core::rules::HeaderEdit::Remove(
                http::HeaderName::from_static("accept"),
            )],
            ..Actions::default()
        };
        assert_eq!(base.heads(&snapshot, &edits).1, None);
        let rewrite = Actions {
            path: Some("/b".into()),
            ..Actions::default()
        };
        assert_eq!(base.heads(&snapshot, &rewrite).1, None);
        // An origin that may speak HTTP/2 (Pingora's connector) is never written to directly.
        let h2 = snapshot_speaking("auto");
        assert_eq!(base.heads(&h2, &none).1, None);
        // A client certificate passed on.
        let original = base.request();
        let request_id = HeaderValue::from_static("rid-1");
        let cert = ClientCert {
            subject: "CN=partner".into(),
            sha256: "ab".repeat(32),
            verified_by: [0; 32],
        };
        let side = ClientSide {
            snapshot: &snapshot,
            client_ip: None,
            tls: true,
            trusted_proxy: false,
            client_cert: Some(&cert),
            request_id: &request_id,
            original: &original,
            rules: &none,
        };
        let mut buf = Vec::new();
        let origin = &snapshot.pools[0].origins[0];
        assert!(!write_direct(&side, origin, &mut buf).unwrap());
        assert!(buf.is_empty());
    }

    #[test]
    fn the_direct_path_writes_the_contract_in_place_and_after() {
        let case = Case {
            method: "HEAD",
            target: "/x".into(),
            version: http::Version::HTTP_10,
            authority: None,
            headers: vec![
                ("X-Request-Id", "from-client"),
                ("Accept", "*/*"),
                ("Via", "1.1 cdn"),
                ("Via", "1.1 lb"),
                ("X-Forwarded-For", "203.0.113.9"),
                ("X-Forwarded-For", "10.0.0.9"),
            ],
            client_ip: Some("2001:db8::7".parse().unwrap()),
            tls: true,
            trusted_proxy: true,
            origin: 1,
        };
        let (full, direct) = case.heads(&snapshot(), &Actions::default());
        let want = "HEAD /x HTTP/1.1\r\n\
            x-request-id: rid-1\r\n\
            accept: */*\r\n\
            via: 1.1 cdn, 1.1 lb, 1.1 portico-eu-west\r\n\
            x-forwarded-for: 203.0.113.9, 10.0.0.9, 2001:db8::7\r\n\
            x-forwarded-proto: https\r\n\
            x-portico-region: eu-west\r\n\
            Host: api.internal\r\n\r\n";
        assert_eq!(String::from_utf8(full).unwrap(), want);
        assert_eq!(String::from_utf8(direct.unwrap()).unwrap(), want);
    }

    #[test]
    fn a_probe_carries_its_marker_and_the_origin_s_host() {
        let snapshot = snapshot();
        let pool = &snapshot.pools[0];
        for (origin, host) in [(0, "10.0.0.1:8080"), (1, "api.internal")] {
            let probe = probe_request(&pool.config, &pool.origins[origin], "eu-west").unwrap();
            assert_eq!(
                lines(&probe.headers),
                [
                    format!("host: {host}"),
                    "user-agent: portico-health-probe".to_string(),
                    "x-portico-health-probe: 1".to_string(),
                    "x-portico-region: eu-west".to_string(),
                ]
            );
        }
    }

    #[test]
    fn editing_a_response_s_headers_keeps_its_headers_in_order_status_version_and_reason() {
        let mut resp = ResponseHeader::build(299, None).unwrap();
        resp.set_version(http::Version::HTTP_10);
        resp.set_reason_phrase(Some("Fine Indeed")).unwrap();
        resp.append_header("X-Served-By", "a").unwrap();
        resp.append_header("Set-Cookie", "x=1").unwrap();
        resp.append_header("set-cookie", "y=2").unwrap();
        assert!(resp.has_case());
        edit_headers(&mut resp, |h| {
            h.insert(names::X_REQUEST_ID, "r".parse().unwrap())
        })
        .unwrap();
        assert_eq!(resp.status.as_u16(), 299);
        assert_eq!(resp.version, http::Version::HTTP_10);
        assert_eq!(resp.get_reason_phrase(), Some("Fine Indeed"));
        let mut wire = Vec::new();
        resp.header_to_h1_wire(&mut wire);
        assert_eq!(
            String::from_utf8(wire).unwrap(),
            "x-served-by: a\r\nSet-Cookie: x=1\r\nSet-Cookie: y=2\r\nx-request-id: r\r\n"
        );
        // A status's own reason phrase stays implicit.
        let mut ok = ResponseHeader::build(200, None).unwrap();
        edit_headers(&mut ok, |_| ()).unwrap();
        assert_eq!(ok.get_reason_phrase(), Some("OK"));
    }

    #[test]
    fn a_response_to_the_client_carries_the_id_the_region_and_an_asked_for_trace() {
        let snapshot = snapshot();
        let id = HeaderValue::from_static("rid-1");
        let mut resp = ResponseHeader::build(200, None).unwrap();
        resp.insert_header("X-Portico-Region", "spoofed").unwrap();
        response_to_client(&mut resp, &snapshot, &id, None).unwrap();
        assert_eq!(
            lines(&resp.headers),
            ["x-portico-region: eu-west", "x-request-id: rid-1"]
        );
        // Never indexed by HPACK (unique per response); the region is.
        assert!(resp.headers["x-request-id"].is_sensitive());
        assert!(!resp.headers["x-portico-region"].is_sensitive());
        let trace = Trace::default();
        response_to_client(&mut resp, &snapshot, &id, Some(&trace)).unwrap();
        assert_eq!(
            lines(&resp.headers),
            [
                "x-portico-decision: route=none; pool=none; attempts=[]",
                "x-portico-region: eu-west",
                "x-request-id: rid-1",
            ]
        );
    }
}
