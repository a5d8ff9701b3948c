//! Managed certificates (ACME) against a real ACME server: Debian's Pebble, started per test
//! on ports chosen at run time (`portico_tests::acme`). Every handshake is checked by curl
//! against the root Pebble issued from, fetched from its management endpoint.

use portico_core::config::Overrides;
use portico_store::Store;
use portico_tests::acme::{Pebble, PebbleOptions};
use portico_tests::tls::{CurlOut, TestCa, certificate_json, curl, served_subject};
use portico_tests::*;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

/// The names the managed certificate covers (the mock DNS resolves them to 127.0.0.1).
const HOSTS: [&str; 2] = ["www.acme.test", "api.acme.test"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pebble_starts_on_runtime_ports_and_hands_out_its_root() {
    let mut pebble = Pebble::start(PebbleOptions {
        http_port: free_addr().port(),
        validity_s: Some(3600),
    })
    .await;
    let root = pebble.root().await;
    let parsed = openssl::x509::X509::from_pem(root.as_bytes()).expect("a PEM certificate");
    let subject = format!("{:?}", parsed.subject_name());
    assert!(subject.contains("Pebble Root CA"), "{subject}");
    assert!(
        pebble
            .log()
            .contains("certificate validity period of 3600 seconds")
    );
    // A new start is a new CA: tests fetch the root after every start.
    pebble.resume().await;
    assert_ne!(pebble.root().await, root);
    assert_eq!(pebble.orders(), 0);
}

/// A node whose plain listener is `listen` (Pebble validates there), TLS on a free port, a
/// managed certificate `www` for [`HOSTS`] from `pebble`, kept in `state_dir`; `extra`
/// certificates (JSON objects) come first.
async fn managed_node(
    pebble: &Pebble,
    listen: SocketAddr,
    state_dir: &Path,
    extra: &[String],
) -> (TestNode, SocketAddr, portico_origin::OriginHandle, Value) {
    let o = origin("o").await;
    let mut certificates: Vec<Value> = extra
        .iter()
        .map(|c| serde_json::from_str(c).expect("certificate JSON"))
        .collect();
    certificates.push(json!({"name": "www", "hosts": HOSTS, "acme": true}));
    let tls = free_addr();
    let config = json!({
        "node": {"tls_listen": tls.to_string(), "state_dir": state_dir},
        "pools": [{"name": "p", "origins": [{"name": "o", "address": o.addr().to_string()}]}],
        "routes": [{"name": "r", "pool": "p"}],
        "certificates": certificates,
        "acme": {
            "directory": pebble.directory,
            "contact": ["mailto:ops@acme.test"],
            "ca_file": pebble.ca_file,
        },
    });
    let overrides = Overrides {
        listen: Some(listen.to_string()),
        ..Overrides::default()
    };
    let node = TestNode::start_with(&config.to_string(), &overrides).await;
    (node, tls, o, config)
}

/// `curl -v https://<host>:<port>/` resolved to 127.0.0.1, trusting only `root`.
async fn https_get(host: &str, tls: SocketAddr, root: &Path) -> CurlOut {
    let resolve = format!("{host}:{}:127.0.0.1", tls.port());
    let url = format!("https://{host}:{}/", tls.port());
    let root = root.display().to_string();
    curl(&[
        "-v",
        "--cacert",
        &root,
        "--resolve",
        &resolve,
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &url,
    ])
    .await
}

/// The `expire date:` curl's `-v` reports for the served certificate.
fn expire_date(verbose: &str) -> Option<String> {
    verbose.lines().find_map(|l| {
        l.split_once("expire date: ")
            .map(|(_, s)| s.trim().to_string())
    })
}

/// The `/status` entry of certificate `name`.
async fn cert_status(node: &TestNode, name: &str) -> Value {
    let status = node.status().await;
    status["certificates"]
        .as_array()
        .and_then(|list| list.iter().find(|c| c["name"] == name).cloned())
        .unwrap_or(Value::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_managed_certificate_is_issued_by_pebble_served_and_kept_for_the_next_start() {
    let listen = free_addr();
    let pebble = Pebble::start(PebbleOptions {
        http_port: listen.port(),
        validity_s: None,
    })
    .await;
    let root = pebble.root_file().await;
    let tmp = tempfile::tempdir().expect("tempdir");
    // Not there yet: the node creates it, private.
    let state = tmp.path().join("state");
    let started = std::time::Instant::now();
    let (node, tls, _o, _) = managed_node(&pebble, listen, &state, &[]).await;
    eventually(
        "the certificate is issued",
        Duration::from_secs(90),
        || async { cert_status(&node, "www").await["state"] == "issued" },
    )
    .await;
    let issued_after = started.elapsed();
    for host in HOSTS {
        let out = https_get(host, tls, &root).await;
        assert!(out.ok, "{host}: {}", out.stderr);
        assert_eq!(out.stdout, "200", "{}", out.stderr);
        assert!(
            out.stderr.contains("issuer: CN=Pebble Intermediate CA"),
            "{}",
            out.stderr
        );
    }
    assert_eq!(pebble.orders(), 1, "one order for both names");
    let s = cert_status(&node, "www").await;
    assert_eq!(s["source"], "acme");
    assert_eq!(s["hosts"], json!(HOSTS));
    assert_eq!(s["failures"], 0);
    assert_eq!(s["last_error"], Value::Null);
    assert!(s["not_after"].is_string(), "{s}");
    let metrics = node.metrics().await;
    let expiry = metrics.sum(
        "portico_certificate_expiry_timestamp_seconds",
        &[("name", "www")],
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs_f64();
    assert!(expiry > now + 86_400.0, "expiry {expiry}, now {now}");
    assert_eq!(
        metrics.sum(
            "portico_acme_orders_total",
            &[("name", "www"), ("result", "issued")]
        ),
        1.0
    );
    // Kept in the state directory (key private), and served by the next start without an order.
    let kept = state.join("certificates/www");
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).expect("kept").permissions().mode() & 0o777;
    assert_eq!(mode(&kept.join("key.pem")), 0o600);
    assert_eq!(mode(&state), 0o700);
    drop(node);
    let (again, tls, _o2, mut config) = managed_node(&pebble, listen, &state, &[]).await;
    eventually(
        "the kept certificate is served",
        Duration::from_secs(20),
        || async { cert_status(&again, "www").await["state"] == "issued" },
    )
    .await;
    let out = https_get("api.acme.test", tls, &root).await;
    assert_eq!(out.stdout, "200", "{}", out.stderr);
    assert_eq!(
        pebble.orders(),
        1,
        "the kept certificate was not ordered again"
    );
    // Another CA (staging to production; here the same Pebble under another URL): the kept
    // certificate is replaced at once, and the new one kept with its CA.
    let other = pebble.directory.replace("127.0.0.1", "localhost");
    config["acme"]["directory"] = Value::String(other.clone());
    again
        .node
        .apply(&config.to_string(), portico::state::ReloadSource::Admin)
        .await
        .expect("valid");
    eventually(
        "a certificate from the new CA",
        Duration::from_secs(60),
        || async { pebble.orders() == 2 && cert_status(&again, "www").await["state"] == "issued" },
    )
    .await;
    let recorded = std::fs::read_to_string(kept.join("directory")).expect("directory kept");
    assert_eq!(recorded, other);
    let out = https_get("www.acme.test", tls, &root).await;
    assert_eq!(out.stdout, "200", "{}", out.stderr);
    eprintln!("time from start to a served certificate, one node: {issued_after:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_lived_certificate_is_renewed_and_an_unreachable_ca_keeps_the_old_one_served() {
    let listen = free_addr();
    // 60 s certificates: renewed once a third of their life has passed (20 s).
    let mut pebble = Pebble::start(PebbleOptions {
        http_port: listen.port(),
        validity_s: Some(60),
    })
    .await;
    let root = pebble.root_file().await;
    let state = tempfile::tempdir().expect("tempdir");
    let (node, tls, _o, _) = managed_node(&pebble, listen, state.path(), &[]).await;
    eventually(
        "the certificate is issued",
        Duration::from_secs(90),
        || async { cert_status(&node, "www").await["state"] == "issued" },
    )
    .await;
    let first = https_get("www.acme.test", tls, &root).await;
    assert_eq!(first.stdout, "200", "{}", first.stderr);
    let first_expiry = expire_date(&first.stderr).expect("an expire date");
    eventually(
        "a renewed certificate is served",
        Duration::from_secs(90),
        || {
            let (root, first_expiry) = (root.clone(), first_expiry.clone());
            async move {
                let out = https_get("www.acme.test", tls, &root).await;
                out.ok && expire_date(&out.stderr).is_some_and(|e| e != first_expiry)
            }
        },
    )
    .await;
    assert!(pebble.orders() >= 2, "renewal is a new order");
    let renewed = https_get("www.acme.test", tls, &root).await;
    let renewed_expiry = expire_date(&renewed.stderr).expect("an expire date");
    // The CA goes away: the next renewal fails, is reported, and the renewed certificate
    // (still valid) keeps being served.
    pebble.stop();
    eventually(
        "the failed renewal is reported",
        Duration::from_secs(90),
        || async {
            let s = cert_status(&node, "www").await;
            s["failures"].as_u64().is_some_and(|f| f >= 1) && s["last_error"].is_string()
        },
    )
    .await;
    let s = cert_status(&node, "www").await;
    assert!(s["next_attempt"].is_string(), "a retry is scheduled: {s}");
    let out = https_get("www.acme.test", tls, &root).await;
    assert_eq!(out.stdout, "200", "{}", out.stderr);
    let served = expire_date(&out.stderr).expect("an expire date");
    assert!(
        served == renewed_expiry || pebble.orders() > 2,
        "the last issued certificate is served: {served} vs {renewed_expiry}"
    );
    assert!(
        node.metrics().await.sum(
            "portico_acme_orders_total",
            &[("name", "www"), ("result", "unreachable")]
        ) >= 1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn until_issued_the_first_file_certificate_is_served_and_a_ca_back_up_issues() {
    let listen = free_addr();
    let mut pebble = Pebble::start(PebbleOptions {
        http_port: listen.port(),
        validity_s: None,
    })
    .await;
    pebble.stop();
    let ca = TestCa::new("files");
    let leaf = ca.leaf("fallback", &["fallback.test"]);
    let state = tempfile::tempdir().expect("tempdir");
    let file_cert = certificate_json("fallback", &["fallback.test"], &leaf);
    let (node, tls, _o, _) = managed_node(&pebble, listen, state.path(), &[file_cert]).await;
    eventually(
        "the failed order is reported",
        Duration::from_secs(60),
        || async {
            let s = cert_status(&node, "www").await;
            s["state"] != "issued" && s["last_error"].is_string()
        },
    )
    .await;
    // The managed names get the file certificate meanwhile.
    let resolve = format!("www.acme.test:{}:127.0.0.1", tls.port());
    let url = format!("https://www.acme.test:{}/", tls.port());
    let out = curl(&["-v", "-k", "--resolve", &resolve, "-o", "/dev/null", &url]).await;
    assert_eq!(
        served_subject(&out.stderr).as_deref(),
        Some("CN=fallback"),
        "{}",
        out.stderr
    );
    // The CA comes back: the retry (2 s, 4 s, ... after each failure) gets the certificate.
    pebble.resume().await;
    let root = pebble.root_file().await;
    eventually(
        "the certificate is issued once the CA is back",
        Duration::from_secs(120),
        || async { cert_status(&node, "www").await["state"] == "issued" },
    )
    .await;
    let out = https_get("www.acme.test", tls, &root).await;
    assert_eq!(out.stdout, "200", "{}", out.stderr);
    let s = cert_status(&node, "www").await;
    assert_eq!(
        s["last_error"],
        Value::Null,
        "a success clears the error: {s}"
    );
    let fallback = cert_status(&node, "fallback").await;
    assert_eq!(fallback["source"], "file");
}

/// The store config: one origin, a managed certificate `www` for [`HOSTS`] from `pebble`.
fn store_config(pebble: &Pebble, o: &portico_origin::OriginHandle) -> String {
    json!({
        "pools": [{"name": "p", "origins": [{"name": "o", "address": o.addr().to_string()}]}],
        "routes": [{"name": "r", "pool": "p"}],
        "certificates": [{"name": "www", "hosts": HOSTS, "acme": true}],
        "acme": {"directory": pebble.directory, "ca_file": pebble.ca_file},
    })
    .to_string()
}

fn issued_here(m: &Scrape) -> f64 {
    m.sum(
        "portico_acme_orders_total",
        &[("name", "www"), ("result", "issued")],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_store_nodes_share_one_order_and_a_node_that_did_not_order_answers_the_challenge() {
    let (etcd, _dir) = etcd(1);
    let url = etcd.url("portico");
    let store = Store::connect(&url, Duration::from_secs(5))
        .await
        .expect("store");
    // Pebble validates on `first`'s plain listener only (every name resolves to 127.0.0.1).
    let first_listen = free_addr();
    let mut pebble = Pebble::start(PebbleOptions {
        http_port: first_listen.port(),
        validity_s: None,
    })
    .await;
    pebble.stop();
    let o = origin("o").await;
    store
        .put_config(&store_config(&pebble, &o), portico_store::Expect::Any)
        .await
        .expect("push");
    // `first` starts while the CA is down: its orders fail and back off (2 s, 4 s, 8 s, 16 s).
    let (first, first_tls) = store_tls_node(&url, "first", first_listen).await;
    eventually(
        "first's orders fail four times",
        Duration::from_secs(60),
        || async {
            cert_status(&first, "www").await["failures"]
                .as_u64()
                .is_some_and(|f| f >= 4)
        },
    )
    .await;
    // The CA is back and two more nodes start: one of them orders at once (first waits 16 s),
    // and Pebble's validation reaches `first`, which answers from the store.
    pebble.resume().await;
    let root = pebble.root_file().await;
    let started = std::time::Instant::now();
    let (second, second_tls) = store_tls_node(&url, "second", free_addr()).await;
    let (third, third_tls) = store_tls_node(&url, "third", free_addr()).await;
    for (node, tls) in [
        (&first, first_tls),
        (&second, second_tls),
        (&third, third_tls),
    ] {
        let root = root.clone();
        eventually(
            "the node serves the certificate",
            Duration::from_secs(60),
            || {
                let root = root.clone();
                async move {
                    let out = https_get("www.acme.test", tls, &root).await;
                    out.ok && out.stdout == "200"
                }
            },
        )
        .await;
        assert_eq!(cert_status(node, "www").await["state"], "issued");
    }
    let shared_after = started.elapsed();
    assert_eq!(pebble.orders(), 1, "one order for three nodes");
    let mut issued = Vec::new();
    for n in [&first, &second, &third] {
        issued.push(issued_here(&n.metrics().await));
    }
    assert_eq!(
        issued[0], 0.0,
        "first did not order, it answered the challenge: {issued:?}"
    );
    assert_eq!(issued.iter().sum::<f64>(), 1.0, "{issued:?}");
    // The key and chain are in the store, the challenge answers are gone from it.
    let (doc, _) = store.get_acme().await.expect("acme doc");
    assert!(doc.certificates.contains_key("www"));
    assert!(doc.challenges.is_empty(), "{:?}", doc.challenges);
    assert_eq!(doc.accounts.len(), 1);
    eprintln!(
        "time from start to a served certificate, three nodes sharing one order: {shared_after:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_orderer_that_dies_mid_order_is_replaced_once_its_lock_lapses() {
    let (etcd, _dir) = etcd(1);
    let url = etcd.url("portico");
    let store = Store::connect(&url, Duration::from_secs(5))
        .await
        .expect("store");
    let listen = free_addr();
    let pebble = Pebble::start(PebbleOptions {
        http_port: listen.port(),
        validity_s: None,
    })
    .await;
    let root = pebble.root_file().await;
    let o = origin("o").await;
    store
        .put_config(&store_config(&pebble, &o), portico_store::Expect::Any)
        .await
        .expect("push");
    // A node took the order lock and died: its lease is no longer kept alive.
    let lock = store
        .lock_acme_order("www", "dead-node")
        .await
        .expect("store")
        .expect("the lock is free");
    drop(lock);
    assert_eq!(
        store
            .lock_acme_order("www", "probe")
            .await
            .expect("store")
            .err()
            .as_deref(),
        Some("dead-node"),
        "the dead node's lock is held until its lease lapses"
    );
    let (a, a_tls) = store_tls_node(&url, "a", listen).await;
    let (b, b_tls) = store_tls_node(&url, "b", free_addr()).await;
    eventually(
        "the certificate is issued after the lock lapsed",
        Duration::from_secs(60),
        || async {
            cert_status(&a, "www").await["state"] == "issued"
                && cert_status(&b, "www").await["state"] == "issued"
        },
    )
    .await;
    for tls in [a_tls, b_tls] {
        let out = https_get("api.acme.test", tls, &root).await;
        assert_eq!(out.stdout, "200", "{}", out.stderr);
    }
    assert_eq!(pebble.orders(), 1);
    // Neither node counts the wait for the dead node's lock as a failure.
    for n in [&a, &b] {
        assert_eq!(cert_status(n, "www").await["failures"], 0);
    }
}
