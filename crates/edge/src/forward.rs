//! Header policy: what a request carries to the origin (forwarding headers, `Via`, the
//! request id, Host, hop-by-hop headers removed) and what a response carries to the client.

use crate::decision::{DECISION_HEADER, Trace};
use crate::headers::{append_ip, append_list, request_host, strip_hop_by_hop, to_origin_form};
use crate::live_pool::OriginPeer;
use crate::snapshot::Snapshot;
use bytes::Bytes;
use http::HeaderValue;
use pingora_error::{Error, ErrorType, Result};
use pingora_http::{RequestHeader, ResponseHeader};
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
    /// `X-Request-Id`.
    pub request_id: &'a HeaderValue,
    /// The request as the client sent it.
    pub original: &'a RequestHeader,
}

/// Rewrites `upstream` (a copy of the client's request) for `origin`.
pub fn request_to_origin(
    c: &ClientSide<'_>,
    upstream: &mut RequestHeader,
    origin: &OriginPeer,
) -> Result<()> {
    if let Some(ip) = c.client_ip {
        let xff = append_ip(
            upstream
                .headers
                .get("x-forwarded-for")
                .map(|v| v.as_bytes()),
            ip,
        );
        upstream.insert_header("X-Forwarded-For", xff)?;
    }
    strip_hop_by_hop(upstream);
    // The health probe marker is Portico's own: a client may not pose as a probe.
    upstream.remove_header("x-portico-health-probe");
    // A trusted proxy's forwarding headers are kept; anyone else's are replaced.
    let trusted = c.trusted_proxy;
    if !(trusted && upstream.headers.contains_key("x-forwarded-proto")) {
        let proto = if c.tls { "https" } else { "http" };
        upstream.insert_header("X-Forwarded-Proto", HeaderValue::from_static(proto))?;
    }
    if !(trusted && upstream.headers.contains_key("x-forwarded-host")) {
        let req = c.original;
        // The Host header as sent (shared, not copied), else the URI's authority.
        let host = match req.headers.get(http::header::HOST) {
            Some(h) if h.to_str().is_ok() => Some(h.clone()),
            _ => request_host(req)
                .map(|h| Bytes::copy_from_slice(h.as_bytes()))
                .and_then(|h| HeaderValue::from_maybe_shared(h).ok()),
        };
        if let Some(host) = host {
            upstream.insert_header("X-Forwarded-Host", host)?;
        }
    }
    let via = via_value(upstream, c.snapshot)?;
    upstream.insert_header("Via", via)?;
    if !(trusted && upstream.headers.contains_key("x-portico-region")) {
        upstream.insert_header("X-Portico-Region", c.snapshot.region_value.clone())?;
    }
    upstream.insert_header("X-Request-Id", c.request_id.clone())?;
    to_origin_form(upstream, &origin.address)?;
    if let Some(host) = &origin.host_header {
        upstream.insert_header("Host", host.as_str())?;
    }
    Ok(())
}

/// The `Via` header with this node appended to what the request carried.
fn via_value(upstream: &RequestHeader, snapshot: &Snapshot) -> Result<HeaderValue> {
    let mut via = upstream.headers.get_all("via").iter();
    let joined = match (via.next(), via.next()) {
        (None, _) => return Ok(snapshot.via_value.clone()),
        (Some(one), None) => append_list(Some(one.as_bytes()), &snapshot.via_entry),
        (Some(_), Some(_)) => {
            let all: Vec<&[u8]> = upstream
                .headers
                .get_all("via")
                .iter()
                .map(|v| v.as_bytes())
                .collect();
            append_list(Some(&all.join(&b", "[..])), &snapshot.via_entry)
        }
    };
    HeaderValue::from_bytes(&joined)
        .map_err(|e| Error::because(ErrorType::InvalidHTTPHeader, "Via", e))
}

/// Adds Portico's response headers: the request id, the node's region, and the decision
/// trace when one was asked for.
pub fn response_to_client(
    resp: &mut ResponseHeader,
    snapshot: &Snapshot,
    request_id: &HeaderValue,
    trace: Option<&Trace>,
) -> Result<()> {
    resp.insert_header("X-Request-Id", request_id.clone())?;
    resp.insert_header("X-Portico-Region", snapshot.region_value.clone())?;
    if let Some(t) = trace {
        resp.insert_header(DECISION_HEADER, t.header())?;
    }
    Ok(())
}
