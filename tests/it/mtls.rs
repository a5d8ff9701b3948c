//! Client certificates on the TLS listener (`certificates[].client_auth`): required refuses
//! the handshake of a client without a certificate from the CA, optional serves it without
//! the headers; a verified client's subject and fingerprint reach the origin as
//! `X-Client-Cert-Subject` / `X-Client-Cert-Sha256`, which a client can never set itself.

use portico::state::ReloadSource;
use portico_tests::tls::{CurlOut, Leaf, TestCa, TlsNode, curl};
use portico_tests::*;
use std::time::Duration;

/// A node whose one certificate (`api.test`, from `server`) asks for client certificates
/// from `clients`, `required` or not.
async fn node(
    server: &TestCa,
    clients: &TestCa,
    required: bool,
) -> (TlsNode, portico_origin::OriginHandle, String) {
    let o = origin("o").await;
    let leaf = server.leaf("api", &["api.test"]);
    let cert = serde_json::json!({
        "name": "api",
        "hosts": ["api.test"],
        "cert_file": leaf.cert_file,
        "key_file": leaf.key_file,
        "client_auth": {"ca_file": clients.ca_file, "required": required},
    });
    let open_leaf = server.leaf("open", &["open.test"]);
    let open = serde_json::json!({
        "name": "open",
        "hosts": ["open.test"],
        "cert_file": open_leaf.cert_file,
        "key_file": open_leaf.key_file,
    });
    let log = server.dir().join("access.log");
    let config = format!(
        r#"{{"node": {{"access_log": {log:?}}},
            "pools": [{{"name": "p", "origins": [{}]}}],
            "routes": [{{"name": "r", "pool": "p"}}],
            "certificates": [{cert}, {open}]}}"#,
        origin_json("o", o.addr(), "")
    );
    let node = TlsNode::start(&config).await;
    let running = portico_tests::tls::with_tls_listen(&config, node.tls);
    (node, o, running)
}

/// The `client_cert` fields of the access log's lines (`null` where there is none).
fn logged_subjects(server: &TestCa) -> Vec<serde_json::Value> {
    std::fs::read_to_string(server.dir().join("access.log"))
        .unwrap_or_default()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).expect("a JSON line")["client_cert"]
                .clone()
        })
        .collect()
}

/// `GET /` to `api.test` with `client` (cert and key, if any) and forged certificate headers.
async fn get(node: &TlsNode, server: &TestCa, client: Option<&Leaf>) -> CurlOut {
    get_with(node, server, client, &[]).await
}

/// [`get`] with more curl arguments.
async fn get_with(
    node: &TlsNode,
    server: &TestCa,
    client: Option<&Leaf>,
    extra: &[&str],
) -> CurlOut {
    let port = node.port();
    let resolve = format!("api.test:{port}:127.0.0.1");
    let url = format!("https://api.test:{port}/");
    let cafile = server.ca_file.to_string_lossy().into_owned();
    let mut args = vec![
        "--cacert".to_string(),
        cafile,
        "--resolve".to_string(),
        resolve,
        "-o".to_string(),
        "/dev/null".to_string(),
        "-w".to_string(),
        "%{http_code}".to_string(),
        "-H".to_string(),
        "X-Client-Cert-Subject: CN=forged".to_string(),
        "-H".to_string(),
        "X-Client-Cert-Sha256: 00".to_string(),
    ];
    if let Some(leaf) = client {
        args.push("--cert".to_string());
        args.push(leaf.cert_file.to_string_lossy().into_owned());
        args.push("--key".to_string());
        args.push(leaf.key_file.to_string_lossy().into_owned());
    }
    args.extend(extra.iter().map(|a| a.to_string()));
    args.push(url);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    curl(&refs).await
}

/// `GET /` over HTTP/1.1 whose handshake names `sni` and whose `Host` is `host`, with
/// `client` (cert and key, if any): the status code.
async fn get_across(
    node: &TlsNode,
    server: &TestCa,
    sni: &str,
    host: &str,
    client: Option<&Leaf>,
) -> CurlOut {
    let port = node.port();
    let mut args = vec![
        "--cacert".to_string(),
        server.ca_file.to_string_lossy().into_owned(),
        "--resolve".to_string(),
        format!("{sni}:{port}:127.0.0.1"),
        "--http1.1".to_string(),
        "-o".to_string(),
        "/dev/null".to_string(),
        "-w".to_string(),
        "%{http_code}".to_string(),
        "-H".to_string(),
        format!("Host: {host}"),
    ];
    if let Some(leaf) = client {
        args.push("--cert".to_string());
        args.push(leaf.cert_file.to_string_lossy().into_owned());
        args.push("--key".to_string());
        args.push(leaf.key_file.to_string_lossy().into_owned());
    }
    args.push(format!("https://{sni}:{port}/"));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    curl(&refs).await
}

/// The SHA-256 of the certificate in `leaf`, lowercase hex.
fn fingerprint(leaf: &Leaf) -> String {
    let pem = std::fs::read(&leaf.cert_file).expect("read the leaf");
    let cert = openssl::x509::X509::from_pem(&pem).expect("PEM");
    let digest = cert
        .digest(openssl::hash::MessageDigest::sha256())
        .expect("digest");
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// How many requests `o` has served (health probes aside).
fn served(o: &portico_origin::OriginHandle) -> usize {
    o.log().iter().filter(|r| !r.probe).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn required_client_certificates_pass_a_verified_client_and_refuse_the_rest() {
    let server = TestCa::new("server");
    let clients = TestCa::new("clients");
    let stranger = TestCa::new("stranger");
    let partner = clients.leaf("partner", &["partner.test"]);
    let impostor = stranger.leaf("impostor", &["partner.test"]);
    let (node, o, _) = node(&server, &clients, true).await;

    let sha = fingerprint(&partner);
    // Over h2 (curl's choice by ALPN) and over HTTP/1.1: the identity is the connection's.
    for version in ["--http2", "--http1.1"] {
        let out = get_with(&node, &server, Some(&partner), &[version]).await;
        assert!(
            out.ok,
            "{version}: a verified client failed: {}",
            out.stderr
        );
        assert_eq!(out.stdout, "200", "{version}: {}", out.stderr);
        let seen = last_request(&o);
        assert_eq!(header(&seen, "x-client-cert-subject"), Some("CN=partner"));
        assert_eq!(header(&seen, "x-client-cert-sha256"), Some(sha.as_str()));
    }
    eventually("two access log lines", Duration::from_secs(10), || async {
        logged_subjects(&server).len() >= 2
    })
    .await;
    assert_eq!(
        logged_subjects(&server),
        [
            serde_json::json!("CN=partner"),
            serde_json::json!("CN=partner")
        ]
    );

    let before = served(&o);
    for (who, leaf) in [("no certificate", None), ("another CA's", Some(&impostor))] {
        let out = get(&node, &server, leaf).await;
        assert!(
            !out.ok && out.stdout != "200",
            "{who}: served with a required client certificate: {out:?}"
        );
    }
    assert_eq!(served(&o), before, "a refused client reached the origin");

    // A handshake for a host without client certificates cannot carry a request for one with.
    for (host, want) in [
        ("api.test", "421"),
        ("API.test.:443", "421"),
        ("open.test", "200"),
    ] {
        let out = get_across(&node, &server, "open.test", host, None).await;
        assert_eq!(
            out.stdout, want,
            "Host {host} over open.test: {}",
            out.stderr
        );
    }
    assert_eq!(served(&o), before + 1, "only open.test reached the origin");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn optional_client_certificates_serve_everyone_but_vouch_only_for_the_verified() {
    let server = TestCa::new("server");
    let clients = TestCa::new("clients");
    let stranger = TestCa::new("stranger");
    let partner = clients.leaf("partner", &["partner.test"]);
    let impostor = stranger.leaf("impostor", &["partner.test"]);
    let (node, o, _) = node(&server, &clients, false).await;

    for (who, leaf) in [("no certificate", None), ("another CA's", Some(&impostor))] {
        let out = get(&node, &server, leaf).await;
        assert!(out.ok, "{who}: {}", out.stderr);
        assert_eq!(out.stdout, "200", "{who}: {}", out.stderr);
        let seen = last_request(&o);
        assert_eq!(header(&seen, "x-client-cert-subject"), None, "{who}");
        assert_eq!(header(&seen, "x-client-cert-sha256"), None, "{who}");
    }

    let out = get(&node, &server, Some(&partner)).await;
    assert_eq!(out.stdout, "200", "{}", out.stderr);
    let seen = last_request(&o);
    assert_eq!(header(&seen, "x-client-cert-subject"), Some("CN=partner"));
    let sha = fingerprint(&partner);
    assert_eq!(header(&seen, "x-client-cert-sha256"), Some(sha.as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_ca_file_is_re_read_by_every_reload() {
    let server = TestCa::new("server");
    let clients = TestCa::new("clients");
    let stranger = TestCa::new("stranger");
    let partner = clients.leaf("partner", &["partner.test"]);
    let impostor = stranger.leaf("impostor", &["partner.test"]);
    let (node, o, running) = node(&server, &clients, true).await;
    assert_eq!(get(&node, &server, Some(&partner)).await.stdout, "200");
    assert!(!get(&node, &server, Some(&impostor)).await.ok);

    // The same document again, the CA file now holding the other CA.
    std::fs::copy(&stranger.ca_file, &clients.ca_file).expect("copy");
    node.node
        .node
        .apply(&running, ReloadSource::Admin)
        .await
        .expect("reload");
    assert!(!get(&node, &server, Some(&partner)).await.ok);
    let out = get(&node, &server, Some(&impostor)).await;
    assert_eq!(out.stdout, "200", "{}", out.stderr);
    assert_eq!(
        header(&last_request(&o), "x-client-cert-subject"),
        Some("CN=impostor")
    );
}

#[test]
fn an_unreadable_client_ca_file_is_an_error_at_its_path() {
    let server = TestCa::new("server");
    let leaf = server.leaf("api", &["api.test"]);
    let missing = server.dir().join("no-such-ca.pem");
    let text = serde_json::json!({
        "pools": [{"name": "p", "origins": [{"name": "o", "address": "127.0.0.1:9"}]}],
        "routes": [{"name": "r", "pool": "p"}],
        "certificates": [{
            "name": "api", "hosts": ["api.test"],
            "cert_file": leaf.cert_file, "key_file": leaf.key_file,
            "client_auth": {"ca_file": missing}
        }]
    })
    .to_string();
    let config = portico_core::config::parse(&text).expect("valid JSON config");
    let errors = match portico::tls::load(&config) {
        Ok(_) => panic!("a missing client CA file loaded"),
        Err(e) => e.to_string(),
    };
    assert!(
        errors.contains("certificates[0].client_auth.ca_file"),
        "{errors}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_verified_for_one_host_does_not_vouch_for_another_hosts_cas() {
    // api.test asks for certificates from `clients`; partner.test (optional) from `others`.
    let server = TestCa::new("server");
    let clients = TestCa::new("clients");
    let others = TestCa::new("others");
    let o = origin("o").await;
    let entry = |name: &str, host: &str, cas: Option<(&TestCa, bool)>| {
        let leaf = server.leaf(name, &[host]);
        let mut e = serde_json::json!({
            "name": name, "hosts": [host],
            "cert_file": leaf.cert_file, "key_file": leaf.key_file,
        });
        if let Some((ca, required)) = cas {
            e["client_auth"] = serde_json::json!({"ca_file": ca.ca_file, "required": required});
        }
        e
    };
    let config = format!(
        r#"{{"pools": [{{"name": "p", "origins": [{}]}}],
            "routes": [{{"name": "r", "pool": "p"}}],
            "certificates": [{}, {}]}}"#,
        origin_json("o", o.addr(), ""),
        entry("api", "api.test", Some((&clients, true))),
        entry("partner", "partner.test", Some((&others, false))),
    );
    let node = TlsNode::start(&config).await;
    let other = others.leaf("outsider", &["outsider.test"]);
    for (host, want, headers) in [("api.test", "421", false), ("partner.test", "200", true)] {
        let before = served(&o);
        let out = get_across(&node, &server, "partner.test", host, Some(&other)).await;
        assert_eq!(out.stdout, want, "Host {host}: {}", out.stderr);
        if want == "200" {
            assert_eq!(served(&o), before + 1);
            let seen = last_request(&o);
            assert_eq!(
                header(&seen, "x-client-cert-subject").is_some(),
                headers,
                "Host {host}: {seen:?}"
            );
        } else {
            assert_eq!(served(&o), before, "Host {host} reached the origin");
        }
    }
}
