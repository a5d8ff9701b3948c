//! A pool's client certificate (`pools[].client_cert_file`/`client_key_file`) presented to
//! TLS origins that require one: requests, hedged attempts and probes present it; a pool
//! without it is refused in the handshake; a reload that rewrites the files swaps it.

use portico::state::ReloadSource;
use portico_origin::{Fault, OriginConfig, OriginHandle, OriginTls};
use portico_tests::tls::{Leaf, TestCa};
use portico_tests::*;
use std::time::Duration;

/// The CAs of a test: `servers` signs the origins' certificates (the pools' `ca_file`),
/// `edge` the certificate the origins require of their clients, `stranger` one they refuse.
struct Cas {
    servers: TestCa,
    edge: TestCa,
    stranger: TestCa,
}

impl Cas {
    fn new() -> Cas {
        Cas {
            servers: TestCa::new("servers"),
            edge: TestCa::new("edge"),
            stranger: TestCa::new("stranger"),
        }
    }

    /// An HTTPS origin for `origin.test` that requires a client certificate from `edge`.
    async fn origin(&self, name: &str) -> OriginHandle {
        let leaf = self.servers.leaf(name, &["origin.test"]);
        let mut c = OriginConfig::new(name, "127.0.0.1:0".parse().expect("addr"));
        c.tls = Some(OriginTls {
            cert_file: leaf.cert_file,
            key_file: leaf.key_file,
        });
        c.tls_client_ca = Some(self.edge.ca_file.clone());
        origin_with(c).await
    }
}

/// `{"name": NAME, "address": ADDR, "tls": true, "sni": "origin.test"}` plus `extra`.
fn tls_origin(o: &OriginHandle, extra: &str) -> String {
    origin_json(
        o.name(),
        o.addr(),
        &format!(r#", "tls": true, "sni": "origin.test"{extra}"#),
    )
}

/// Pool fields: probes every `interval_ms`, origins checked against `servers`, and the
/// client certificate `leaf` when given.
fn pool_fields(cas: &Cas, interval_ms: u64, leaf: Option<&Leaf>) -> String {
    let mut fields = format!(
        r#""health_probe": {{"interval_ms": {interval_ms}, "timeout_ms": {}}}, "ca_file": {}"#,
        interval_ms * 3 / 4,
        serde_json::to_string(&cas.servers.ca_file).expect("json")
    );
    if let Some(leaf) = leaf {
        fields.push_str(&format!(
            r#", "client_cert_file": {}, "client_key_file": {}"#,
            serde_json::to_string(&leaf.cert_file).expect("json"),
            serde_json::to_string(&leaf.key_file).expect("json")
        ));
    }
    fields
}

/// Waits until the last probe of `pool/origin` is `result` (`"success"`, `"failure"`).
async fn wait_probe(node: &TestNode, pool: &str, origin: &str, result: &str) {
    eventually(
        &format!("the last probe of {pool}/{origin} is a {result}"),
        Duration::from_secs(10),
        || async { node.origin_status(pool, origin).await["last_probe"] == result },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_presents_its_certificate_and_a_pool_without_one_is_refused() {
    let cas = Cas::new();
    let o = cas.origin("o").await;
    let client = cas.edge.leaf("portico-edge", &[]);
    // Two pools to the one origin, one with the certificate and one without.
    let config = format!(
        r#"{{"pools": [
              {{"name": "cert", "origins": [{}], {}}},
              {{"name": "bare", "origins": [{}], {}}}],
            "routes": [
              {{"name": "cert", "hosts": ["cert.test"], "pool": "cert"}},
              {{"name": "bare", "hosts": ["bare.test"], "pool": "bare"}}]}}"#,
        tls_origin(&o, ""),
        pool_fields(&cas, 200, Some(&client)),
        tls_origin(&o, ""),
        pool_fields(&cas, 200, None),
    );
    let node = TestNode::start(&config).await;
    let url = format!("{}/", node.url);
    let r = node.http.get_host(&url, "cert.test").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.served_by(), "o");
    let r = node.http.get_host(&url, "bare.test").await;
    assert_eq!(
        r.status, 502,
        "the origin refuses a handshake without a certificate"
    );
    // Probes present it too: the pool with the certificate probes the origin healthy, the
    // other one down, with the handshake's failure as the reason.
    wait_probe(&node, "cert", "o", "success").await;
    node.wait_health("bare", "o", false).await;
    node.wait_health("cert", "o", true).await;
    let error = node.origin_status("bare", "o").await["last_probe_error"].clone();
    assert!(error.is_string(), "a failed probe says why: {error}");
    assert!(
        o.stats().probes >= 1,
        "the certificate's probes reached the origin"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hedged_attempt_presents_the_certificate_too() {
    let cas = Cas::new();
    let a = cas.origin("a").await;
    let b = cas.origin("b").await;
    let client = cas.edge.leaf("portico-edge", &[]);
    // `a` is the only first choice, `b` the hedge target; a slow probe interval keeps
    // probes out of the way of the hang.
    let config = one_pool(
        &[tls_origin(&a, ""), tls_origin(&b, r#", "priority": 2"#)],
        &format!(
            r#"{}, "timeouts": {{"response_ms": 5000}},
               "failover": {{"hedging": {{"delay_ms": 20, "max_percent": 100}}}}"#,
            pool_fields(&cas, 60_000, Some(&client))
        ),
    );
    let node = TestNode::start(&config).await;
    node.wait_latencies("p", &["a", "b"]).await;
    let url = format!("{}/", node.url);
    let r = node.http.get(&url).await;
    assert_eq!((r.status, r.served_by()), (200, "a"), "{}", r.text());
    a.set_fault(Fault::Hang);
    for _ in 0..3 {
        let r = node.http.get(&url).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(
            r.served_by(),
            "b",
            "the hedge's handshake presented the certificate"
        );
    }
    eventually("a hedge won", Duration::from_secs(10), || async {
        node.metrics()
            .await
            .sum("portico_hedges_total", &[("pool", "p"), ("result", "won")])
            >= 1.0
    })
    .await;
    a.set_fault(Fault::None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_re_reads_the_certificate_files_even_for_the_same_document() {
    let cas = Cas::new();
    let o = cas.origin("o").await;
    let good = cas.edge.leaf("portico-edge", &[]);
    // The same key certified by another CA: the same serial number, which is all Pingora
    // tells pooled connections apart by.
    let stranger = cas.stranger.leaf_for_key("stranger", &[], &good);
    // The files the config names, rewritten in place as a certificate rotation would.
    let dir = tempfile::tempdir().expect("tempdir");
    let files = Leaf {
        cert_file: dir.path().join("client.pem"),
        key_file: dir.path().join("client-key.pem"),
    };
    let install = |leaf: &Leaf| {
        std::fs::copy(&leaf.cert_file, &files.cert_file).expect("copy");
        std::fs::copy(&leaf.key_file, &files.key_file).expect("copy");
    };
    install(&good);
    let text = one_pool(&[tls_origin(&o, "")], &pool_fields(&cas, 200, Some(&files)));
    let node = TestNode::start(&text).await;
    let url = format!("{}/", node.url);
    let r = node.http.get(&url).await;
    assert_eq!(r.status, 200, "{}", r.text());
    wait_probe(&node, "p", "o", "success").await;

    // Another CA's certificate in the same files, the same document reloaded: the pool is
    // rebuilt with it and the origin refuses requests and probes alike (the idle connection
    // opened with the old certificate is not reused).
    install(&stranger);
    let applied = node
        .node
        .apply(&text, ReloadSource::Admin)
        .await
        .expect("reload");
    assert!(applied.changed, "new file contents rebuild the pool");
    assert_eq!(
        node.http.get(&url).await.status,
        502,
        "a new connection, presenting the stranger's certificate"
    );
    node.wait_health("p", "o", false).await;

    // A key that does not match the certificate: the reload is refused at its path and the
    // running certificate stays.
    let other = cas.edge.leaf("other", &[]);
    std::fs::copy(&other.key_file, &files.key_file).expect("copy");
    let errors = node
        .node
        .apply(&text, ReloadSource::Admin)
        .await
        .expect_err("a mismatched key");
    let paths: Vec<&str> = errors.0.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(paths, ["pools[0].client_key_file"], "{errors}");
    // A missing certificate file, likewise.
    let missing = text.replace("client.pem", "missing.pem");
    let errors = node
        .node
        .apply(&missing, ReloadSource::Admin)
        .await
        .expect_err("a missing certificate file");
    let paths: Vec<&str> = errors.0.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(paths, ["pools[0].client_cert_file"], "{errors}");
    assert!(errors.0[0].message.contains("missing.pem"), "{errors}");

    // The good certificate back: requests and probes pass again.
    install(&good);
    node.node
        .apply(&text, ReloadSource::Admin)
        .await
        .expect("reload");
    assert_eq!(node.http.get(&url).await.status, 200);
    wait_probe(&node, "p", "o", "success").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_test_origin_needs_tls_and_a_pem_file_for_its_client_ca() {
    let cas = Cas::new();
    let mut c = OriginConfig::new("o", "127.0.0.1:0".parse().expect("addr"));
    c.tls_client_ca = Some(cas.edge.ca_file.clone());
    let error = portico_origin::start(c.clone()).await.expect_err("no TLS");
    assert!(
        error.to_string().contains("needs a TLS listener"),
        "{error}"
    );
    let leaf = cas.servers.leaf("o", &["origin.test"]);
    let junk = cas.edge.dir().join("junk.pem");
    std::fs::write(&junk, "no PEM here").expect("write");
    c.tls = Some(OriginTls {
        cert_file: leaf.cert_file,
        key_file: leaf.key_file,
    });
    c.tls_client_ca = Some(junk.clone());
    let error = portico_origin::start(c).await.expect_err("no PEM");
    assert!(
        error
            .to_string()
            .contains(&format!("client CA {}", junk.display())),
        "{error}"
    );
}
