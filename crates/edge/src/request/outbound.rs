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
/// titled), as HTTP/2 and HAProxy send them.
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
    let via = via_value(&upstream, c.snapshot)?;
    // Moved out and back (no copy) to reach the header map; the target is kept across.
    let mut parts: http::request::Parts = upstream.into();
    contract_headers(c, &mut parts.headers, via)?;
    let mut upstream = with_target_of(base, RequestHeader::from(parts))?;
    to_origin_form(&mut upstream, &origin.address)?;
    if let Some(host) = &origin.host_header {
        upstream.insert_header("Host", host.as_str())?;
    }
    Ok(upstream)
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

/// `X-Forwarded-For`, `-Proto`, `-Host`, `Via`, `X-Portico-Region` and `X-Request-Id`.
fn contract_headers(c: &ClientSide<'_>, h: &mut http::HeaderMap, via: HeaderValue) -> Result<()> {
    let invalid = |name: &'static str| {
        move |e: http::header::InvalidHeaderValue| {
            Error::because(ErrorType::InvalidHTTPHeader, name, e)
        }
    };
    if let Some(ip) = c.client_ip {
        let xff = append_ip(h.get(names::X_FORWARDED_FOR).map(|v| v.as_bytes()), ip);
        let xff =
            HeaderValue::from_maybe_shared(Bytes::from(xff)).map_err(invalid("X-Forwarded-For"))?;
        h.insert(names::X_FORWARDED_FOR, xff);
    }
    // A trusted proxy's forwarding headers are kept; anyone else's are replaced.
    let trusted = c.trusted_proxy;
    if !(trusted && h.contains_key(names::X_FORWARDED_PROTO)) {
        let proto = if c.tls { "https" } else { "http" };
        h.insert(names::X_FORWARDED_PROTO, HeaderValue::from_static(proto));
    }
    if !(trusted && h.contains_key(names::X_FORWARDED_HOST)) {
        let req = c.original;
        // The Host header as sent (shared, not copied), else the URI's authority.
        let host = match req.headers.get(http::header::HOST) {
            Some(h) if h.to_str().is_ok() => Some(h.clone()),
            _ => request_host(req)
                .map(|h| Bytes::copy_from_slice(h.as_bytes()))
                .and_then(|h| HeaderValue::from_maybe_shared(h).ok()),
        };
        if let Some(host) = host {
            h.insert(names::X_FORWARDED_HOST, host);
        }
    }
    h.insert(http::header::VIA, via);
    if !(trusted && h.contains_key(names::X_PORTICO_REGION)) {
        h.insert(names::X_PORTICO_REGION, c.snapshot.region_value.clone());
    }
    h.insert(names::X_REQUEST_ID, c.request_id.clone());
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
/// its path and query (its authority is the `Host` by now); a request without a `Host` header
/// gets its `:authority` (HTTP/2), else `fallback` (HTTP/1.0), since it goes on as HTTP/1.1.
pub fn to_origin_form(upstream: &mut RequestHeader, fallback: &str) -> pingora_error::Result<()> {
    if absolute_authority(upstream).is_some() {
        let path = upstream
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "/".to_string());
        upstream.set_raw_path(path.as_bytes())?;
    }
    if !upstream.headers.contains_key(http::header::HOST) {
        // An HTTP/2 request names its host in `:authority` (the URI's authority).
        let host = upstream
            .uri
            .authority()
            .map(|a| a.as_str().to_string())
            .unwrap_or_else(|| fallback.to_string());
        upstream.insert_header("Host", host)?;
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
        to_origin_form(&mut r, "10.0.0.1:80").unwrap();
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
        to_origin_form(&mut r, "10.0.0.1:80").unwrap();
        assert_eq!(
            r.headers.get("host").map(|v| v.as_bytes()),
            Some(&b"10.0.0.1:80"[..])
        );
        let with_host = req(&[("Host", "a.example")]);
        assert!(!lacks_required_host(&with_host));
        // HTTP/2: the host is the :authority, which Pingora keeps as the URI's authority.
        let mut h2 = RequestHeader::build("GET", b"/", None).unwrap();
        h2.set_version(http::Version::HTTP_2);
        h2.set_uri(http::Uri::from_static("https://shop.example.com/x"));
        assert!(!lacks_required_host(&h2));
        to_origin_form(&mut h2, "10.0.0.1:80").unwrap();
        assert_eq!(
            h2.headers.get("host").map(|v| v.as_bytes()),
            Some(&b"shop.example.com"[..])
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
