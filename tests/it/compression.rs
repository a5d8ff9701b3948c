//! Response compression (`routes[].compression`): by the client's `Accept-Encoding`, the body
//! decompressed equal byte for byte to the origin's; never on an encoded body, a small one, a
//! type not listed, or a route without the option (which does not engage the compressor at
//! all). On the hedged path (GET, the default) and on Pingora's proxy loop (hedging off).

use http::Method;
use portico_tests::*;
use std::io::Read;

/// A node with the same origin behind three routes: `zip.test` (compression, hedging on),
/// `loop.test` (compression, hedging off: Pingora's proxy loop) and every other host (no
/// compression).
async fn node() -> (TestNode, portico_origin::OriginHandle) {
    let o = origin("o").await;
    let config = format!(
        r#"{{"pools": [{{"name": "p", "origins": [{a}]}},
                       {{"name": "q", "origins": [{a}], "failover": {{"hedging": {{"enabled": false}}}}}}],
            "routes": [{{"name": "zip", "hosts": ["zip.test"], "pool": "p", "compression": {{}}}},
                       {{"name": "loop", "hosts": ["loop.test"], "pool": "q",
                         "compression": {{"types": ["text/*", "application/json"], "min_bytes": 1000}}}},
                       {{"name": "plain", "pool": "p"}}]}}"#,
        a = origin_json("o", o.addr(), "")
    );
    (TestNode::start(&config).await, o)
}

/// The origin's `/bytes/N` body.
fn pattern(n: u64) -> Vec<u8> {
    (0..n).map(portico_origin::pattern_byte).collect()
}

async fn fetch(node: &TestNode, host: &str, path: &str, accept: Option<&str>) -> Resp {
    let mut headers = vec![("host", host)];
    if let Some(a) = accept {
        headers.push(("accept-encoding", a));
    }
    let url = format!("{}{path}", node.url);
    node.http
        .request(Method::GET, &url, &headers, bytes::Bytes::new())
        .await
        .unwrap_or_else(|e| panic!("GET {host}{path}: {e}"))
}

fn decode(coding: &str, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match coding {
        "gzip" => flate2::read::GzDecoder::new(body)
            .read_to_end(&mut out)
            .map(drop),
        "br" => brotli::Decompressor::new(body, 4096)
            .read_to_end(&mut out)
            .map(drop),
        "zstd" => zstd::stream::read::Decoder::new(body)
            .and_then(|mut d| d.read_to_end(&mut out))
            .map(drop),
        other => panic!("unexpected coding {other}"),
    }
    .unwrap_or_else(|e| panic!("{coding} body does not decode: {e}"));
    out
}

fn varies_on_accept_encoding(r: &Resp) -> bool {
    r.headers.get_all("vary").iter().any(|v| {
        v.to_str()
            .unwrap_or("")
            .to_ascii_lowercase()
            .contains("accept-encoding")
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_are_compressed_as_the_client_prefers_and_decode_byte_for_byte() {
    let (node, _o) = node().await;
    let cases = [
        ("gzip", "gzip"),
        ("br", "br"),
        ("zstd", "zstd"),
        ("gzip, deflate, br", "gzip"),
        ("br;q=0.5, gzip;q=0.8, zstd;q=0.1", "gzip"),
        ("gzip;q=0, zstd", "zstd"),
        ("identity;q=0.5, *", "br"),
    ];
    for host in ["zip.test", "loop.test"] {
        for (n, query) in [
            (200_000, "type=application/json"),
            (50_000, "type=text/html;chunked=1"),
        ] {
            let query = query.replace(";chunked", "&chunked");
            let path = format!("/bytes/{n}?{query}");
            for (accept, coding) in cases {
                let r = fetch(&node, host, &path, Some(accept)).await;
                assert_eq!(r.status, 200);
                assert_eq!(
                    r.header("content-encoding"),
                    Some(coding),
                    "{host}{path} {accept}"
                );
                assert!(varies_on_accept_encoding(&r), "{host} {accept}: no Vary");
                assert_eq!(r.header("content-length"), None);
                assert!(
                    r.body.len() < n as usize / 4,
                    "{coding}: {} bytes",
                    r.body.len()
                );
                assert!(
                    decode(coding, &r.body) == pattern(n),
                    "{host}{path} {accept}: body differs"
                );
            }
        }
    }
    let m = node.metrics().await;
    for (route, coding) in [("zip", "gzip"), ("zip", "br"), ("loop", "zstd")] {
        let labels = [("route", route), ("encoding", coding)];
        assert!(
            m.sum("portico_compression_responses_total", &labels) >= 1.0,
            "{labels:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encoded_small_unlisted_or_unaccepted_bodies_pass_as_the_origin_sent_them() {
    let (node, _o) = node().await;
    for host in ["zip.test", "loop.test"] {
        // Encoded already (the body is the pattern, labelled gzip): passed on, not recompressed.
        let r = fetch(
            &node,
            host,
            "/bytes/20000?type=text/plain&encoding=gzip",
            Some("br, gzip"),
        )
        .await;
        assert_eq!(r.header("content-encoding"), Some("gzip"));
        assert_eq!(r.header("content-length"), Some("20000"));
        assert!(
            r.body == pattern(20_000),
            "{host}: an encoded body was changed"
        );
        // Labelled with a coding the client did not ask for: still not touched.
        let r = fetch(
            &node,
            host,
            "/bytes/20000?type=text/plain&encoding=br",
            Some("gzip"),
        )
        .await;
        assert_eq!(r.header("content-encoding"), Some("br"));
        assert!(r.body == pattern(20_000));
        for (path, accept) in [
            ("/bytes/999?type=text/plain", Some("gzip")), // below min_bytes
            ("/bytes/20000?type=image/png", Some("gzip")), // type not listed
            ("/bytes/20000?type=application/json", None), // nothing accepted
            (
                "/bytes/20000?type=application/json",
                Some("identity, deflate"),
            ),
        ] {
            let r = fetch(&node, host, path, accept).await;
            let n: u64 = path[7..].split('?').next().unwrap().parse().unwrap();
            assert_eq!(
                r.header("content-encoding"),
                None,
                "{host}{path} {accept:?}"
            );
            assert!(r.body == pattern(n), "{host}{path}: body changed");
        }
    }
    // HEAD: the head of the identity response, no body to compress.
    let url = format!("{}/bytes/20000?type=text/plain", node.url);
    let r = node
        .http
        .request(
            Method::HEAD,
            &url,
            &[("host", "zip.test"), ("accept-encoding", "gzip")],
            bytes::Bytes::new(),
        )
        .await
        .unwrap();
    assert_eq!(r.header("content-encoding"), None);
    assert!(r.body.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_without_compression_never_engages_the_compressor() {
    let (node, _o) = node().await;
    for _ in 0..20 {
        let r = fetch(
            &node,
            "other.test",
            "/bytes/200000?type=application/json",
            Some("gzip, br"),
        )
        .await;
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-encoding"), None);
        assert_eq!(r.header("content-length"), Some("200000"));
        assert!(!varies_on_accept_encoding(&r));
        assert!(r.body == pattern(200_000));
    }
    // Engaged on the compression route, by the same client in the same run...
    let r = fetch(
        &node,
        "zip.test",
        "/bytes/200000?type=application/json",
        Some("gzip, br"),
    )
    .await;
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    let m = node.metrics().await;
    assert_eq!(
        m.sum("portico_compression_responses_total", &[("route", "zip")]),
        1.0
    );
    // ...while the 20 requests of the route without the option never made a compressor: a
    // request there holds `None` (no allocation, no engine call), so not even an `identity`
    // series exists for it.
    assert!(!m.has("portico_compression_responses_total", &[("route", "plain")]));
    assert_eq!(m.sum("portico_requests_total", &[("route", "plain")]), 20.0);
}

/// Over TLS and HTTP/2 (curl): the compressed body decodes byte for byte (no HTTP/1.1 framing
/// leaks into the h2 response), and the affinity cookie is `Secure`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_h2_the_body_decodes_and_the_affinity_cookie_is_secure() {
    use portico_tests::tls::{TestCa, TlsNode, certificate_json, curl};
    let ca = TestCa::new("compression");
    let leaf = ca.leaf("site", &["site.test"]);
    let o = origin("o").await;
    let config = format!(
        r#"{{"pools": [{{"name": "p", "origins": [{}],
                         "load_balancing": {{"session_affinity": {{"cookie": "stick"}}}}}}],
            "routes": [{{"name": "r", "pool": "p", "compression": {{}}}}],
            "certificates": [{}]}}"#,
        origin_json("o", o.addr(), ""),
        certificate_json("site", &["site.test"], &leaf)
    );
    let node = TlsNode::start(&config).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let n = 100_000u64;
    for (coding, method) in [("gzip", "GET"), ("zstd", "GET"), ("br", "POST")] {
        let body_file = dir.path().join(coding);
        let port = node.port();
        let resolve = format!("site.test:{port}:127.0.0.1");
        let url = format!("https://site.test:{port}/bytes/{n}?type=application/json");
        let cafile = ca.ca_file.to_string_lossy().into_owned();
        let accept = format!("accept-encoding: {coding}");
        let out = curl(&[
            "--http2",
            "--cacert",
            &cafile,
            "--resolve",
            &resolve,
            "-X",
            method,
            "-H",
            &accept,
            "-D",
            "-",
            "-o",
            &body_file.to_string_lossy(),
            "-w",
            "%{http_version}",
            &url,
        ])
        .await;
        assert!(out.ok, "{out:?}");
        let head = out.stdout.to_ascii_lowercase();
        assert!(head.starts_with("http/2 200"), "{head}");
        assert!(
            head.contains(&format!("content-encoding: {coding}\r\n")),
            "{head}"
        );
        assert!(!head.contains("transfer-encoding"), "{head}");
        assert!(
            head.contains("set-cookie: stick=o; path=/; httponly; samesite=lax; secure\r\n"),
            "{head}"
        );
        let body = std::fs::read(&body_file).expect("the body curl wrote");
        assert!(
            decode(coding, &body) == pattern(n),
            "{coding} over h2: body differs"
        );
    }
}
