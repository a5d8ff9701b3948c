//! What rules look at: the request as the client sent it, and who the client is.

use crate::cidr::Cidr;
use http::HeaderMap;
use std::net::{IpAddr, SocketAddr};

/// The scheme the client used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// Plain HTTP.
    Http,
    /// HTTP over TLS.
    Https,
}

/// The facts of one request that rules decide on, borrowed from the request as the client sent
/// it (before any rewrite).
#[derive(Debug, Clone, Copy)]
pub struct RequestFacts<'a> {
    /// The method token (`GET`), as sent.
    pub method: &'a str,
    /// The scheme the client used.
    pub scheme: Scheme,
    /// The Host as sent (`api.example.com:8443`), empty when there is none.
    pub host: &'a str,
    /// The path, without the query string.
    pub path: &'a str,
    /// The query string without the `?`, `None` when the target has no `?`.
    pub query: Option<&'a str>,
    /// The request headers.
    pub headers: &'a HeaderMap,
    /// The client's address (see [`client_ip`]), `None` when unknown.
    pub client_ip: Option<IpAddr>,
    /// The request id (`X-Request-Id`, kept or generated).
    pub request_id: &'a str,
}

/// The client's address as rules see it: the socket peer, or, when the peer is in
/// `trusted` (`node.trusted_proxies`), the last `X-Forwarded-For` hop that is not: hops are
/// read from the right, trusted ones skipped. When every hop is trusted, the leftmost is the
/// client; a hop that is not an address ends the walk at the trusted hop after it.
pub fn client_ip(peer: Option<IpAddr>, headers: &HeaderMap, trusted: &[Cidr]) -> Option<IpAddr> {
    let peer = peer?;
    let is_trusted = |ip: IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(peer) {
        return Some(peer);
    }
    let mut client = peer;
    let hops = headers
        .get_all("x-forwarded-for")
        .iter()
        .rev()
        .flat_map(|line| line.as_bytes().rsplit(|&b| b == b','));
    for hop in hops {
        let hop = hop.trim_ascii();
        if hop.is_empty() {
            continue;
        }
        match parse_hop(hop) {
            Some(ip) => {
                client = ip;
                if !is_trusted(ip) {
                    break;
                }
            }
            None => break,
        }
    }
    Some(client)
}

/// An `X-Forwarded-For` hop: an address, maybe with a port (`192.0.2.1:4711`, `[2001:db8::1]:80`).
fn parse_hop(hop: &[u8]) -> Option<IpAddr> {
    let text = std::str::from_utf8(hop).ok()?;
    text.parse::<IpAddr>()
        .ok()
        .or_else(|| text.parse::<SocketAddr>().ok().map(|a| a.ip()))
}
