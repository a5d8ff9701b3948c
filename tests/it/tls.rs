//! TLS and HTTP/2: the listener picks certificates by SNI, speaks TLS 1.2/1.3 only and h2 or
//! HTTP/1.1, swaps certificates on reload; plain-HTTP routes can redirect to HTTPS; origins
//! over TLS are checked against a CA and fail over on a bad certificate. curl is the client
//! (and a hyper h2 client where a connection must stay open across a reload).

use portico::state::ReloadSource;
use portico_origin::{OriginConfig, OriginTls};
use portico_tests::tls::{CurlOut, Leaf, TestCa, TlsNode, certificate_json, curl, served_subject};
use portico_tests::*;
use std::net::SocketAddr;
use std::time::Duration;

/// A config with one pool of `origins`, one catch-all route with `route_extra`, and
/// `certificates`.
fn config(origins: &[String], pool_extra: &str, route_extra: &str, certs: &[String]) -> String {
    let pool_extra = if pool_extra.is_empty() {
        String::new()
    } else {
        format!(", {pool_extra}")
    };
    format!(
        r#"{{"pools": [{{"name": "p", "origins": [{}]{pool_extra}}}],
            "routes": [{{"name": "r", "pool": "p"{route_extra}}}],
            "certificates": [{}]}}"#,
        origins.join(", "),
        certs.join(", ")
    )
}

/// curl over TLS to `host` on the node's TLS port (resolved to loopback), trusting `ca`.
async fn curl_tls(node: &TlsNode, ca: &TestCa, host: &str, path: &str, extra: &[&str]) -> CurlOut {
    let port = node.port();
    let resolve = format!("{host}:{port}:127.0.0.1");
    let url = format!("https://{host}:{port}{path}");
    let cafile = ca.ca_file.to_string_lossy().into_owned();
    let mut args = vec!["--cacert", &cafile, "--resolve", &resolve];
    args.extend_from_slice(extra);
    args.push(&url);
    curl(&args).await
}

/// The certificate subject curl saw, by `-v`.
async fn subject_for(node: &TlsNode, ca: &TestCa, host: &str, extra: &[&str]) -> String {
    let mut args = vec!["-v", "-o", "/dev/null", "-w", "%{http_code}"];
    args.extend_from_slice(extra);
    let out = curl_tls(node, ca, host, "/", &args).await;
    assert!(out.ok, "curl to {host} failed: {}", out.stderr);
    assert_eq!(out.stdout, "200", "{}", out.stderr);
    served_subject(&out.stderr).unwrap_or_else(|| panic!("no subject in: {}", out.stderr))
}

fn tls_origin_json(name: &str, addr: SocketAddr, extra: &str) -> String {
    origin_json(name, addr, &format!(r#", "tls": true{extra}"#))
}

async fn https_origin(name: &str, leaf: &Leaf) -> portico_origin::OriginHandle {
    let mut c = OriginConfig::new(name, "127.0.0.1:0".parse().expect("addr"));
    c.tls = Some(OriginTls {
        cert_file: leaf.cert_file.clone(),
        key_file: leaf.key_file.clone(),
    });
    origin_with(c).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sni_picks_the_exact_host_then_the_longest_wildcard_then_the_first() {
    let ca = TestCa::new("sni");
    let first = ca.leaf("first", &["first.test"]);
    let wide = ca.leaf("wide", &["*.example.test"]);
    let narrow = ca.leaf("narrow", &["*.api.example.test"]);
    let exact = ca.leaf("exact", &["v1.api.example.test"]);
    let o = origin("o").await;
    let node = TlsNode::start(&config(
        &[origin_json("o", o.addr(), "")],
        "",
        "",
        &[
            certificate_json("first", &["first.test"], &first),
            certificate_json("wide", &["*.example.test"], &wide),
            certificate_json("narrow", &["*.api.example.test"], &narrow),
            certificate_json("exact", &["v1.api.example.test"], &exact),
        ],
    ))
    .await;
    assert_eq!(
        subject_for(&node, &ca, "v1.api.example.test", &[]).await,
        "CN=exact"
    );
    assert_eq!(
        subject_for(&node, &ca, "v2.api.example.test", &[]).await,
        "CN=narrow"
    );
    assert_eq!(
        subject_for(&node, &ca, "www.example.test", &[]).await,
        "CN=wide"
    );
    assert_eq!(subject_for(&node, &ca, "first.test", &[]).await, "CN=first");
    // No match: the first certificate (which does not name the host: -k).
    assert_eq!(
        subject_for(&node, &ca, "unknown.test", &["-k"]).await,
        "CN=first"
    );
    // No SNI at all: curl sends none for an IP address.
    let url = format!("https://127.0.0.1:{}/", node.port());
    let out = curl(&["-k", "-v", "-o", "/dev/null", "-w", "%{http_code}", &url]).await;
    assert_eq!(out.stdout, "200", "{}", out.stderr);
    assert_eq!(served_subject(&out.stderr).as_deref(), Some("CN=first"));
    // The origin is told the request came over TLS.
    assert_eq!(
        header(&last_request(&o), "x-forwarded-proto"),
        Some("https")
    );
    let plain = node.node.get("/").await;
    assert_eq!(plain.status, 200);
    assert_eq!(header(&last_request(&o), "x-forwarded-proto"), Some("http"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_1_2_and_1_3_only_with_h2_and_http_1_1_by_alpn() {
    let ca = TestCa::new("versions");
    let leaf = ca.leaf("site", &["site.test"]);
    let o = origin("o").await;
    let node = TlsNode::start(&config(
        &[origin_json("o", o.addr(), "")],
        "",
        "",
        &[certificate_json("site", &["site.test"], &leaf)],
    ))
    .await;
    let w = ["-o", "/dev/null", "-w", "%{http_code} %{http_version}"];
    // The client allows TLS 1.1 (OpenSSL's security level 0): the refusal is the server's.
    let old = curl_tls(
        &node,
        &ca,
        "site.test",
        "/",
        &[
            &w[..],
            &[
                "--tlsv1.1",
                "--tls-max",
                "1.1",
                "--ciphers",
                "DEFAULT@SECLEVEL=0",
            ],
        ]
        .concat(),
    )
    .await;
    assert!(!old.ok, "TLS 1.1 was accepted: {old:?}");
    // The server's alert, not a client-side refusal.
    assert!(
        old.stderr.contains("alert protocol version"),
        "{}",
        old.stderr
    );
    for (version, alpn, expect) in [
        ("1.2", "--http2", "200 2"),
        ("1.3", "--http2", "200 2"),
        ("1.2", "--http1.1", "200 1.1"),
        ("1.3", "--http1.1", "200 1.1"),
    ] {
        let flag = format!("--tlsv{version}");
        let mut args = w.to_vec();
        args.extend([flag.as_str(), "--tls-max", version, alpn]);
        let out = curl_tls(&node, &ca, "site.test", "/", &args).await;
        assert_eq!(out.stdout, expect, "TLS {version} {alpn}: {}", out.stderr);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_h2_connection_carries_64_concurrent_streams_and_20_mib_each_way() {
    let ca = TestCa::new("h2");
    let leaf = ca.leaf("site", &["site.test"]);
    let o = origin("o").await;
    let log = ca.dir().join("access.log");
    let mut text = config(
        &[origin_json("o", o.addr(), "")],
        "",
        "",
        &[certificate_json("site", &["site.test"], &leaf)],
    );
    text = text.replacen(
        '{',
        &format!(
            r#"{{"node": {{"access_log": {}}},"#,
            serde_json::to_string(&log).expect("json")
        ),
        1,
    );
    let node = TlsNode::start(&text).await;
    let port = node.port();
    let urls: Vec<String> = (0..64)
        .map(|i| format!("https://site.test:{port}/?n={i}"))
        .collect();
    let resolve = format!("site.test:{port}:127.0.0.1");
    let cafile = ca.ca_file.to_string_lossy().into_owned();
    let mut args = vec![
        "--cacert",
        &cafile,
        "--resolve",
        &resolve,
        "--http2",
        "-Z",
        "--parallel-max",
        "64",
        // Each answer waits 300 ms at the origin, so the 64 streams overlap on the one
        // connection (num_connects below).
        "-H",
        "X-Origin-Delay-Ms: 300",
        "-w",
        "%{http_code} %{http_version} %{num_connects}\n",
    ];
    for u in &urls {
        args.extend_from_slice(&["-o", "/dev/null", u.as_str()]);
    }
    let out = curl(&args).await;
    assert!(out.ok, "{}", out.stderr);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 64, "{}", out.stdout);
    let mut connects = 0;
    for l in &lines {
        let parts: Vec<&str> = l.split(' ').collect();
        assert_eq!(&parts[..2], &["200", "2"], "{l}");
        connects += parts[2].parse::<u32>().expect("num_connects");
    }
    assert_eq!(
        connects, 1,
        "all 64 streams on one connection: {}",
        out.stdout
    );
    assert_eq!(
        header(&last_request(&o), "x-forwarded-proto"),
        Some("https")
    );
    // The h2 :authority reaches the origin as Host.
    assert_eq!(
        header(&last_request(&o), "host"),
        Some(format!("site.test:{port}").as_str())
    );
    // The access log says HTTP/2 over TLS; a plain request says HTTP/1.1 without.
    assert_eq!(node.node.get("/plain").await.status, 200);
    let entries = || -> Vec<serde_json::Value> {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    };
    eventually("65 access log lines", Duration::from_secs(10), || async {
        entries().len() >= 65
    })
    .await;
    let all = entries();
    let h2_lines = all
        .iter()
        .filter(|e| e["protocol"] == "HTTP/2" && e["tls"] == true && e["status"] == 200)
        .count();
    assert_eq!(h2_lines, 64, "{all:?}");
    let plain = all
        .iter()
        .find(|e| e["path"] == "/plain")
        .expect("plain line");
    assert_eq!(
        (&plain["protocol"], &plain["tls"]),
        (&"HTTP/1.1".into(), &false.into())
    );

    // 20 MiB through h2, byte for byte.
    let size: u64 = 20 * 1024 * 1024;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("body");
    let file_s = file.to_string_lossy().into_owned();
    let out = curl_tls(
        &node,
        &ca,
        "site.test",
        &format!("/bytes/{size}"),
        &[
            "--http2",
            "-o",
            &file_s,
            "-w",
            "%{http_code} %{http_version}",
        ],
    )
    .await;
    assert_eq!(out.stdout, "200 2", "{}", out.stderr);
    let body = std::fs::read(&file).expect("read the body");
    assert_eq!(body.len() as u64, size);
    assert!(
        body.iter()
            .enumerate()
            .all(|(i, &b)| b == portico_origin::pattern_byte(i as u64)),
        "the body differs from what the origin sent"
    );
    // And the same 20 MiB up through h2 as a request body, byte for byte at the origin.
    let upload = format!("@{file_s}");
    let out = curl_tls(
        &node,
        &ca,
        "site.test",
        "/echo",
        &[
            "--http2",
            "--data-binary",
            &upload,
            "-D",
            "-",
            "-o",
            "/dev/null",
        ],
    )
    .await;
    let head = out.stdout.to_ascii_lowercase();
    assert!(head.starts_with("http/2 200"), "{head}\n{}", out.stderr);
    assert!(
        head.contains(&format!("x-body-length: {size}\r\n")),
        "{head}"
    );
    let fnv = format!("x-body-fnv: {:016x}\r\n", portico_origin::fnv1a(&body));
    assert!(head.contains(&fnv), "want {fnv:?} in {head}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_redirect_answers_plain_http_with_308_to_the_tls_port() {
    let ca = TestCa::new("redirect");
    let leaf = ca.leaf("shop", &["shop.test"]);
    let o = origin("o").await;
    let node = TlsNode::start(&config(
        &[origin_json("o", o.addr(), "")],
        "",
        r#", "https_redirect": true"#,
        &[certificate_json("shop", &["shop.test"], &leaf)],
    ))
    .await;
    let r = node
        .node
        .http
        .get_host(
            &format!("{}/cart/items?id=7&x=%20", node.node.url),
            "shop.test:8080",
        )
        .await;
    assert_eq!(r.status, 308);
    assert_eq!(
        r.header("location"),
        Some(format!("https://shop.test:{}/cart/items?id=7&x=%20", node.port()).as_str())
    );
    assert!(
        o.log().iter().all(|r| r.probe),
        "a redirect is not forwarded"
    );
    // HTTP/1.0 without Host: there is no host to redirect to.
    let plain = node.node.url.trim_start_matches("http://").to_string();
    let reply = raw(&plain, b"GET /cart HTTP/1.0\r\n\r\n").await;
    assert!(reply.starts_with("HTTP/1.1 400"), "{reply}");
    assert!(
        reply.contains("a redirect to HTTPS needs a Host header"),
        "{reply}"
    );
    assert!(
        o.log().iter().all(|r| r.probe),
        "nor is a request without Host"
    );
    // Over TLS the same route is proxied.
    let out = curl_tls(&node, &ca, "shop.test", "/cart", &["-w", " %{http_code}"]).await;
    assert_eq!(out.stdout, "o\n 200", "{}", out.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_are_checked_by_path_and_re_read_by_every_reload() {
    let ca = TestCa::new("reload");
    let one = ca.leaf("one", &["swap.test"]);
    let two = ca.leaf("two", &["swap.test"]);
    let o = origin("o").await;
    // A copy the test can overwrite.
    let live = Leaf {
        cert_file: ca.dir().join("live.pem"),
        key_file: ca.dir().join("live-key.pem"),
    };
    std::fs::copy(&one.cert_file, &live.cert_file).expect("copy");
    std::fs::copy(&one.key_file, &live.key_file).expect("copy");
    let text = config(
        &[origin_json("o", o.addr(), "")],
        "",
        "",
        &[certificate_json("swap", &["swap.test"], &live)],
    );
    let node = TlsNode::start(&text).await;
    let running = portico_tests::tls::with_tls_listen(&text, node.tls);
    assert_eq!(subject_for(&node, &ca, "swap.test", &[]).await, "CN=one");
    let mut h2 = H2::connect(node.tls, "swap.test", &ca).await;
    assert_eq!(h2.subject, "CN=one");
    assert_eq!(h2.get("/").await, 200);

    // The same document again, with new files on disk: the new certificate is installed.
    std::fs::copy(&two.cert_file, &live.cert_file).expect("copy");
    std::fs::copy(&two.key_file, &live.key_file).expect("copy");
    node.node
        .node
        .apply(&running, ReloadSource::Admin)
        .await
        .expect("reload");
    assert_eq!(subject_for(&node, &ca, "swap.test", &[]).await, "CN=two");
    // The connection opened before the reload goes on, with its certificate.
    assert_eq!(h2.get("/").await, 200);
    assert_eq!(h2.get("/again").await, 200);

    // Broken files are errors at their paths, and change nothing.
    let junk = ca.dir().join("junk.pem");
    std::fs::write(&junk, "not a certificate").expect("write");
    let bad = running
        .replace(
            &serde_json::to_string(&live.cert_file).expect("json"),
            &serde_json::to_string(&junk).expect("json"),
        )
        .replace(
            &serde_json::to_string(&live.key_file).expect("json"),
            &serde_json::to_string(&one.key_file).expect("json"),
        );
    let errors = node
        .node
        .node
        .apply(&bad, ReloadSource::Admin)
        .await
        .expect_err("a junk certificate is rejected");
    let lines: Vec<String> = errors.0.iter().map(ToString::to_string).collect();
    assert_eq!(
        lines,
        vec![format!(
            "certificates[0].cert_file: {} holds no PEM certificate",
            junk.display()
        )]
    );
    let mismatch = running.replace(
        &serde_json::to_string(&live.key_file).expect("json"),
        &serde_json::to_string(&one.key_file).expect("json"),
    );
    let errors = node
        .node
        .node
        .apply(&mismatch, ReloadSource::Admin)
        .await
        .expect_err("a key of another certificate is rejected");
    assert_eq!(errors.0.len(), 1, "{errors}");
    assert_eq!(errors.0[0].path, "certificates[0].key_file");
    assert!(errors.0[0].message.contains("does not match"), "{errors}");
    let missing = running.replace(
        &serde_json::to_string(&live.cert_file).expect("json"),
        "\"/nonexistent/cert.pem\"",
    );
    let errors = node
        .node
        .node
        .apply(&missing, ReloadSource::Admin)
        .await
        .expect_err("a missing file is rejected");
    assert_eq!(errors.0[0].path, "certificates[0].cert_file");
    assert!(
        errors.0[0]
            .message
            .starts_with("cannot read /nonexistent/cert.pem")
    );
    assert_eq!(subject_for(&node, &ca, "swap.test", &[]).await, "CN=two");
    assert_eq!(h2.get("/last").await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_origin_checked_against_the_pool_ca() {
    let ca = TestCa::new("origins");
    let leaf = ca.leaf("origin", &["origin.test"]);
    let o = https_origin("secure", &leaf).await;
    let text = one_pool(
        &[tls_origin_json(
            "secure",
            o.addr(),
            r#", "sni": "origin.test""#,
        )],
        &format!(
            r#"{FAST_PROBES}, "ca_file": {}"#,
            serde_json::to_string(&ca.ca_file).expect("json")
        ),
    );
    let node = TestNode::start(&text).await;
    let r = node.get("/hello").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.served_by(), "secure");
    eventually(
        "a probe over TLS succeeded",
        Duration::from_secs(10),
        || async { node.origin_status("p", "secure").await["last_probe"] == "success" },
    )
    .await;
    assert!(o.stats().probes >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_origin_certificate_fails_over_with_no_client_error_and_is_counted() {
    let ca = TestCa::new("trusted");
    let other = TestCa::new("other");
    let good_leaf = ca.leaf("good", &["origin.test"]);
    let wrong_name = ca.leaf("wrong-name", &["elsewhere.test"]);
    let wrong_ca = other.leaf("wrong-ca", &["origin.test"]);
    let good = https_origin("good", &good_leaf).await;
    let bad_name = https_origin("bad-name", &wrong_name).await;
    let bad_ca = https_origin("bad-ca", &wrong_ca).await;
    // Probes every minute: the bad origins stay healthy (one failed probe of four), so
    // requests keep trying them first and must fail over.
    let sni = r#", "sni": "origin.test""#;
    let text = one_pool(
        &[
            tls_origin_json(
                "bad-name",
                bad_name.addr(),
                &format!(r#"{sni}, "priority": 1"#),
            ),
            tls_origin_json("bad-ca", bad_ca.addr(), &format!(r#"{sni}, "priority": 1"#)),
            tls_origin_json("good", good.addr(), &format!(r#"{sni}, "priority": 2"#)),
        ],
        &format!(
            r#""health_probe": {{"interval_ms": 60000, "timeout_ms": 2000}},
               "failover": {{"ejection": {{"enabled": false}}}},
               "ca_file": {}"#,
            serde_json::to_string(&ca.ca_file).expect("json")
        ),
    );
    let node = TestNode::start(&text).await;
    for i in 0..20 {
        let r = node.get(&format!("/n/{i}")).await;
        assert_eq!(r.status, 200, "request {i}: {}", r.text());
        assert_eq!(r.served_by(), "good");
    }
    assert_eq!(bad_name.stats().requests, 0);
    assert_eq!(bad_ca.stats().requests, 0);
    let m = node.metrics().await;
    assert!(
        m.sum(
            "portico_retries_total",
            &[("pool", "p"), ("reason", "tls_error")]
        ) >= 20.0,
        "retries by tls_error"
    );
    assert_eq!(
        m.sum("portico_requests_total", &[("code", "502")]),
        0.0,
        "no client saw an error"
    );
    // The same origins, unchecked, serve.
    let unchecked = text.replace(sni, r#", "sni": "origin.test", "tls_verify": false"#);
    node.node
        .apply(&unchecked, ReloadSource::Admin)
        .await
        .expect("reload");
    let mut served = std::collections::HashSet::new();
    for i in 0..40 {
        let r = node.get(&format!("/u/{i}")).await;
        assert_eq!(r.status, 200);
        served.insert(r.served_by().to_string());
    }
    assert!(
        !served.contains("good"),
        "priority 1 origins serve once unchecked: {served:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_over_tls_mark_a_bad_certificate_origin_unhealthy() {
    let ca = TestCa::new("probe");
    let other = TestCa::new("probe-other");
    let good = https_origin("good", &ca.leaf("good", &["origin.test"])).await;
    let bad = https_origin("bad", &other.leaf("bad", &["origin.test"])).await;
    let sni = r#", "sni": "origin.test""#;
    let text = one_pool(
        &[
            tls_origin_json("good", good.addr(), sni),
            tls_origin_json("bad", bad.addr(), sni),
        ],
        &format!(
            r#""health_probe": {{"interval_ms": 200, "timeout_ms": 150}}, "ca_file": {}"#,
            serde_json::to_string(&ca.ca_file).expect("json")
        ),
    );
    let node = TestNode::start(&text).await;
    node.wait_health("p", "bad", false).await;
    node.wait_health("p", "good", true).await;
    // The reason is the certificate (a probe slowed past its timeout by a loaded machine
    // would say so instead: wait for one that got as far as the check).
    eventually(
        "the probe error says the certificate failed",
        Duration::from_secs(10),
        || async {
            let error = node.origin_status("p", "bad").await["last_probe_error"].clone();
            let error = error.as_str().unwrap_or_default();
            error.contains("InvalidCert") && error.contains("certificate verify failed")
        },
    )
    .await;
    assert_eq!(
        bad.stats().probes,
        0,
        "no probe request got past the handshake"
    );
}

/// An HTTP/2 client connection over TLS that stays open.
struct H2 {
    send: hyper::client::conn::http2::SendRequest<http_body_util::Empty<bytes::Bytes>>,
    authority: String,
    subject: String,
}

impl H2 {
    #[allow(deprecated)] // `as_utf8`: a test certificate's CN holds no NUL
    async fn connect(addr: SocketAddr, host: &str, ca: &TestCa) -> H2 {
        use openssl::ssl::{SslConnector, SslMethod};
        let mut b = SslConnector::builder(SslMethod::tls()).expect("connector");
        b.set_ca_file(&ca.ca_file).expect("CA");
        b.set_alpn_protos(b"\x02h2").expect("ALPN");
        let ssl = b
            .build()
            .configure()
            .expect("configure")
            .into_ssl(host)
            .expect("ssl");
        let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let mut tls = tokio_openssl::SslStream::new(ssl, tcp).expect("stream");
        std::pin::Pin::new(&mut tls)
            .connect()
            .await
            .expect("handshake");
        assert_eq!(tls.ssl().selected_alpn_protocol(), Some(&b"h2"[..]));
        let cert = tls.ssl().peer_certificate().expect("a certificate");
        let cn = cert
            .subject_name()
            .entries_by_nid(openssl::nid::Nid::COMMONNAME)
            .next()
            .and_then(|e| e.data().as_utf8().ok().map(|s| s.to_string()))
            .unwrap_or_default();
        let (send, conn) = hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            hyper_util::rt::TokioIo::new(tls),
        )
        .await
        .expect("h2 handshake");
        tokio::spawn(conn);
        H2 {
            send,
            authority: format!("{host}:{}", addr.port()),
            subject: format!("CN={cn}"),
        }
    }

    async fn get(&mut self, path: &str) -> u16 {
        let req = http::Request::get(format!("https://{}{path}", self.authority))
            .body(http_body_util::Empty::new())
            .expect("request");
        self.send.ready().await.expect("connection open");
        let resp = self.send.send_request(req).await.expect("h2 response");
        resp.status().as_u16()
    }
}

#[test]
fn an_expired_certificate_is_a_warning_and_a_ca_file_is_checked_by_path() {
    let ca = TestCa::new("expiry");
    let old = ca.expired_leaf("old", &["old.test"]);
    let junk = ca.dir().join("junk-ca.pem");
    std::fs::write(&junk, "no PEM here").expect("write");
    let text = |ca_file: &std::path::Path| {
        config(
            &[origin_json("o", "127.0.0.1:1".parse().expect("addr"), "")],
            &format!(
                r#""ca_file": {}"#,
                serde_json::to_string(ca_file).expect("json")
            ),
            "",
            &[certificate_json("old", &["old.test"], &old)],
        )
    };
    let config = portico_core::config::parse(&text(&ca.ca_file)).expect("valid");
    let Ok(tls) = portico::tls::load(&config) else {
        panic!("an expired certificate loads");
    };
    assert_eq!(tls.warnings.len(), 1, "{:?}", tls.warnings);
    assert!(
        tls.warnings[0].starts_with("certificates[0].cert_file: the certificate in ")
            && tls.warnings[0].contains("expired on Jan  1 00:00:00 2001 GMT"),
        "{:?}",
        tls.warnings
    );
    assert!(tls.pools[0].ca.is_some());
    let config = portico_core::config::parse(&text(&junk)).expect("valid");
    let Err(errors) = portico::tls::load(&config) else {
        panic!("a CA file without PEM is an error");
    };
    assert_eq!(
        errors.to_string(),
        format!(
            "pools[0].ca_file: {} holds no PEM certificate",
            junk.display()
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_re_reads_the_pool_ca_file_even_for_the_same_document() {
    let old_ca = TestCa::new("old-ca");
    let new_ca = TestCa::new("new-ca");
    let o = https_origin("o", &new_ca.leaf("o", &["origin.test"])).await;
    let ca_file = old_ca.dir().join("pool-ca.pem");
    std::fs::copy(&old_ca.ca_file, &ca_file).expect("copy");
    let text = one_pool(
        &[tls_origin_json("o", o.addr(), r#", "sni": "origin.test""#)],
        &format!(
            r#""health_probe": {{"interval_ms": 200, "timeout_ms": 150}}, "ca_file": {}"#,
            serde_json::to_string(&ca_file).expect("json")
        ),
    );
    let node = TestNode::start(&text).await;
    assert_eq!(
        node.get("/").await.status,
        502,
        "the old CA does not sign it"
    );
    // The CA file rotated on disk, the same document reloaded.
    std::fs::copy(&new_ca.ca_file, &ca_file).expect("copy");
    let applied = node
        .node
        .apply(&text, ReloadSource::Admin)
        .await
        .expect("reload");
    assert!(applied.changed, "the pool was rebuilt with the new CA");
    let r = node.get("/").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.served_by(), "o");
    eventually(
        "a probe with the new CA succeeded",
        Duration::from_secs(10),
        || async { node.origin_status("p", "o").await["last_probe"] == "success" },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_checked_against_one_ca_never_serves_a_pool_that_trusts_another() {
    let signer = TestCa::new("signer");
    let other = TestCa::new("other");
    let o = https_origin("o", &signer.leaf("o", &["origin.test"])).await;
    // `rotated` trusts the signer through a file rotated below; `other` never trusts it.
    let rotated_ca = signer.dir().join("rotated-ca.pem");
    std::fs::copy(&signer.ca_file, &rotated_ca).expect("copy");
    let pool = |name: &str, ca: &std::path::Path| {
        format!(
            r#"{{"name": "{name}", "origins": [{}], "ca_file": {},
                "health_probe": {{"interval_ms": 60000, "timeout_ms": 1000}}}}"#,
            tls_origin_json("o", o.addr(), r#", "sni": "origin.test""#),
            serde_json::to_string(ca).expect("json")
        )
    };
    let text = format!(
        r#"{{"pools": [{}, {}],
            "routes": [{{"name": "rotated", "hosts": ["rotated.test"], "pool": "rotated"}},
                       {{"name": "other", "hosts": ["other.test"], "pool": "other"}}]}}"#,
        pool("rotated", &rotated_ca),
        pool("other", &other.ca_file)
    );
    let node = TestNode::start(&text).await;
    let get = |host: &'static str, path: &'static str| {
        let url = format!("{}{path}", node.url);
        let http = node.http.clone();
        async move { http.get_host(&url, host).await }
    };
    let reached = |path: &str| o.log().iter().filter(|r| r.path == path).count();
    // A verified connection to the origin, idle in the connection pool now.
    let r = get("rotated.test", "/first").await;
    assert_eq!((r.status, r.served_by()), (200, "o"), "{}", r.text());
    // The same origin, address and SNI for a pool whose CA did not sign its certificate:
    // that connection is not for it.
    let r = get("other.test", "/other").await;
    assert_ne!(r.status, 200, "{}", r.text());
    assert_eq!(
        reached("/other"),
        0,
        "sent over a connection checked by another CA"
    );
    // The rotated pool's CA file now holds the other CA: after the reload, the idle
    // connection checked by the old one is not reused either.
    std::fs::copy(&other.ca_file, &rotated_ca).expect("copy");
    let applied = node
        .node
        .apply(&text, ReloadSource::Admin)
        .await
        .expect("reload");
    assert!(applied.changed, "the pool was rebuilt with the new CA");
    let r = get("rotated.test", "/after").await;
    assert_ne!(r.status, 200, "{}", r.text());
    assert_eq!(
        reached("/after"),
        0,
        "sent over a connection checked by the old CA"
    );
}

/// A config of `plain` plain origins on `port` of as many loopback addresses (none
/// listening) in pools of 50, the first with `weight`, and `tls` pools of TLS origins (each
/// `(pool extra, origins)`), probed every 300 ms.
fn many_origins(plain: usize, port: u16, tls: &[(String, Vec<String>)], weight: u32) -> String {
    let probe = r#""health_probe": {"interval_ms": 300, "timeout_ms": 250}"#;
    let mut pools: Vec<String> = (0..plain.div_ceil(50))
        .map(|p| {
            let origins: Vec<String> = (p * 50..plain.min(p * 50 + 50))
                .map(|i| {
                    let w = if i == 0 { weight } else { 100 };
                    format!(
                        r#"{{"name": "o{i}", "address": "127.0.{}.{}:{port}", "weight": {w}}}"#,
                        1 + i / 200,
                        1 + i % 200
                    )
                })
                .collect();
            format!(
                r#"{{"name": "plain{p}", "origins": [{}], {probe}}}"#,
                origins.join(", ")
            )
        })
        .collect();
    for (i, (extra, origins)) in tls.iter().enumerate() {
        pools.push(format!(
            r#"{{"name": "tls{i}", "origins": [{}], {probe}{extra}}}"#,
            origins.join(", ")
        ));
    }
    format!(
        r#"{{"pools": [{}], "routes": [{{"name": "r", "pool": "plain0"}}]}}"#,
        pools.join(", ")
    )
}

/// Waits until the node's probes have opened `n` more connections than `since`.
async fn probed(node: &TestNode, since: u64, n: u64) -> u64 {
    let probes = &node.node.state().probes;
    eventually(
        &format!("{n} probe connections after {since}"),
        Duration::from_secs(30),
        || async { probes.connector.connections_opened() >= since + n },
    )
    .await;
    probes.connector.connections_opened()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_build_no_tls_context_per_origin_nor_per_reload() {
    let ca = TestCa::new("shared");
    let other = TestCa::new("shared-other");
    let a = https_origin("a", &ca.leaf("a", &["origin.test"])).await;
    let b = https_origin("b", &ca.leaf("b", &["origin.test"])).await;
    let c = https_origin("c", &other.leaf("c", &["origin.test"])).await;
    let sni = r#", "sni": "origin.test""#;
    let unchecked = format!(r#"{sni}, "tls_verify": false"#);
    let ca_file = format!(
        r#", "ca_file": {}"#,
        serde_json::to_string(&ca.ca_file).expect("json")
    );
    // Three TLS settings: the pool's CA, the system roots (c fails its check), no check.
    let tls = [
        (
            ca_file,
            vec![
                tls_origin_json("a", a.addr(), sni),
                tls_origin_json("b", b.addr(), sni),
            ],
        ),
        (String::new(), vec![tls_origin_json("c", c.addr(), sni)]),
        (
            String::new(),
            vec![tls_origin_json("c2", c.addr(), &unchecked)],
        ),
    ];
    let (plain, port) = (120, free_addr().port());
    // Plain origins only: probing them builds no TLS context (no system roots loaded).
    let node = TestNode::start(&many_origins(plain, port, &[], 100)).await;
    let probes = &node.node.state().probes;
    let seen = probed(&node, 0, plain as u64).await;
    assert_eq!(probes.connector.tls_contexts_built(), 0);
    assert_eq!(probes.tasks_started(), plain as u64);

    // TLS origins join: one context serves all of them, whatever their settings.
    let with_tls = many_origins(plain, port, &tls, 100);
    node.node
        .apply(&with_tls, ReloadSource::Admin)
        .await
        .expect("reload adding TLS origins");
    let all = plain as u64 + 4;
    let seen = probed(&node, seen, all).await;
    eventually(
        "a and c2 answer their probes, c fails its certificate check",
        Duration::from_secs(15),
        || async {
            node.origin_status("tls0", "a").await["last_probe"] == "success"
                && node.origin_status("tls1", "c").await["last_probe"] == "failure"
                && node.origin_status("tls2", "c2").await["last_probe"] == "success"
        },
    )
    .await;
    assert_eq!(probes.connector.tls_contexts_built(), 1);
    assert_eq!(probes.tasks_started(), all);

    // A reload that changes one weight: no probe task restarts, no context is built.
    node.node
        .apply(&many_origins(plain, port, &tls, 7), ReloadSource::Admin)
        .await
        .expect("reload changing a weight");
    probed(&node, seen, all).await;
    assert_eq!(probes.connector.tls_contexts_built(), 1);
    assert_eq!(probes.tasks_started(), all);
}
