//! TLS session resumption: a client resumes by ticket on the node that issued it (TLS 1.2 and
//! 1.3) and, with keys shared through the store, on another node of the same store; a node
//! with keys of its own does not resume it. A session made under one certificate entry is not
//! resumed under another, so a client certificate verified for one entry's CAs is never carried
//! to another's hosts. The key schedule (rotation, the accept window) is tested in
//! `portico_core::tls_tickets`, with time passed in; here, the store's compare-and-swap of the
//! next key, with time passed in too.

use portico_store::Store;
use portico_tests::tls::{Leaf, TestCa, TlsNode, certificate_json};
use portico_tests::*;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// One HTTPS request's handshake, by `openssl s_client`.
struct Handshake {
    /// Whether the session offered was resumed (`Reused,` rather than `New,`).
    resumed: bool,
    /// The response's status line (empty when the handshake or the request failed).
    status: String,
    /// The file holding the session to offer next time (with the server's ticket).
    session: PathBuf,
}

/// A client: the CA it trusts, the TLS version, the name it sends (SNI and `Host`), its
/// certificate if any; its sessions are files in `dir`.
#[derive(Clone)]
struct Client {
    ca: PathBuf,
    version: &'static str,
    host: String,
    cert: Option<Leaf>,
    dir: PathBuf,
}

impl Client {
    fn new(ca: &TestCa, version: &'static str, host: &str) -> Client {
        Client {
            ca: ca.ca_file.clone(),
            version,
            host: host.to_string(),
            cert: None,
            dir: ca.dir().to_path_buf(),
        }
    }

    /// `GET /` on `tls` offering the session in `session`, off the test's runtime.
    async fn get(&self, tls: SocketAddr, session: Option<&Path>) -> Handshake {
        let client = self.clone();
        let session = session.map(Path::to_path_buf);
        tokio::task::spawn_blocking(move || client.get_blocking(tls, session.as_deref()))
            .await
            .expect("client task")
    }

    fn get_blocking(&self, tls: SocketAddr, session: Option<&Path>) -> Handshake {
        let out = self.dir.join(format!("session-{}", fastrand::u64(..)));
        let mut cmd = Command::new("timeout");
        cmd.args([
            "20",
            "openssl",
            "s_client",
            "-ign_eof",
            "-verify_return_error",
        ])
        .arg(self.version)
        .arg("-connect")
        .arg(tls.to_string())
        .args(["-servername", &self.host])
        .arg("-CAfile")
        .arg(&self.ca)
        .arg("-sess_out")
        .arg(&out);
        if let Some(session) = session {
            cmd.arg("-sess_in").arg(session);
        }
        if let Some(leaf) = &self.cert {
            cmd.arg("-cert").arg(&leaf.cert_file);
            cmd.arg("-key").arg(&leaf.key_file);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run openssl s_client (apt-get install openssl)");
        let request = format!(
            "GET / HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.host
        );
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(request.as_bytes());
        }
        let output = child.wait_with_output().expect("s_client output");
        let stdout = String::from_utf8_lossy(&output.stdout);
        Handshake {
            resumed: stdout.lines().any(|l| l.starts_with("Reused,")),
            // The response may follow a ticket's dump on the same line.
            status: stdout
                .lines()
                .find_map(|l| l.find("HTTP/1.1 ").map(|at| l[at..].trim().to_string()))
                .unwrap_or_default(),
            session: out,
        }
    }
}

const VERSIONS: [&str; 2] = ["-tls1_2", "-tls1_3"];

fn config(origin: SocketAddr, certs: &[String]) -> String {
    format!(
        r#"{{"pools": [{{"name": "p", "origins": [{}]}}],
            "routes": [{{"name": "r", "pool": "p"}}],
            "certificates": [{}]}}"#,
        origin_json("o", origin, ""),
        certs.join(", ")
    )
}

/// A session of `client` from `first`, and whether it then resumes on `second`.
async fn resumes_across(client: &Client, first: SocketAddr, second: SocketAddr) -> bool {
    let made = client.get(first, None).await;
    assert!(made.status.ends_with("200 OK"), "{}", made.status);
    assert!(!made.resumed);
    let again = client.get(second, Some(&made.session)).await;
    assert!(again.status.ends_with("200 OK"), "{}", again.status);
    again.resumed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ticket_resumes_on_the_node_that_issued_it_and_not_on_a_node_with_its_own_keys() {
    let ca = TestCa::new("resume");
    let leaf = ca.leaf("www", &["www.test"]);
    let o = origin("o").await;
    let text = config(o.addr(), &[certificate_json("www", &["www.test"], &leaf)]);
    let a = TlsNode::start(&text).await;
    let b = TlsNode::start(&text).await;
    for version in VERSIONS {
        let client = Client::new(&ca, version, "www.test");
        assert!(
            resumes_across(&client, a.tls, a.tls).await,
            "{version} on the same node"
        );
        assert!(
            !resumes_across(&client, a.tls, b.tls).await,
            "{version}: another node on its own has keys of its own"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_of_one_certificate_entry_is_not_resumed_under_another() {
    let server = TestCa::new("entries");
    let clients = TestCa::new("clients");
    let user = clients.leaf("user", &["user"]);
    let api = server.leaf("api", &["api.test"]);
    let open = server.leaf("open", &["open.test"]);
    let o = origin("o").await;
    let mut locked: serde_json::Value =
        serde_json::from_str(&certificate_json("api", &["api.test"], &api)).expect("json");
    locked["client_auth"] = serde_json::json!({"ca_file": clients.ca_file, "required": true});
    let text = config(
        o.addr(),
        &[
            locked.to_string(),
            certificate_json("open", &["open.test"], &open),
        ],
    );
    let node = TlsNode::start(&text).await;
    for version in VERSIONS {
        // Under the entry that requires a client certificate, a verified client resumes
        // (presenting none again) and is still served.
        let mut client = Client::new(&server, version, "api.test");
        client.cert = Some(user.clone());
        assert!(
            resumes_across(&client, node.tls, node.tls).await,
            "{version}"
        );
        // A session made under the open entry, offered with the locked entry's name and no
        // certificate: not resumed, so the handshake asks for a certificate and refuses.
        let open_client = Client::new(&server, version, "open.test");
        let made = open_client.get(node.tls, None).await;
        assert!(made.status.ends_with("200 OK"), "{}", made.status);
        let crossing = Client::new(&server, version, "api.test");
        let crossed = crossing.get(node.tls, Some(&made.session)).await;
        assert!(!crossed.resumed, "{version}");
        assert_eq!(
            crossed.status, "",
            "{version}: refused without a certificate"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verified_client_resumes_under_an_entry_that_is_not_the_first() {
    // The entry that requires a client certificate is not the default (first) one: a resumed
    // handshake must still be matched to it, not to the default entry.
    let server = TestCa::new("second");
    let clients = TestCa::new("second-clients");
    let user = clients.leaf("user", &["user"]);
    let api = server.leaf("api", &["api.test"]);
    let open = server.leaf("open", &["open.test"]);
    let o = origin("o").await;
    let mut locked: serde_json::Value =
        serde_json::from_str(&certificate_json("api", &["api.test"], &api)).expect("json");
    locked["client_auth"] = serde_json::json!({"ca_file": clients.ca_file, "required": true});
    let text = config(
        o.addr(),
        &[
            certificate_json("open", &["open.test"], &open),
            locked.to_string(),
        ],
    );
    let node = TlsNode::start(&text).await;
    for version in VERSIONS {
        let mut client = Client::new(&server, version, "api.test");
        client.cert = Some(user.clone());
        assert!(
            resumes_across(&client, node.tls, node.tls).await,
            "{version}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ticket_from_one_node_resumes_on_another_node_of_the_same_store() {
    let (etcd, _dir) = etcd(1);
    let url = etcd.url("portico");
    let store = Store::connect(&url, Duration::from_secs(5))
        .await
        .expect("store");
    let ca = TestCa::new("shared");
    let leaf = ca.leaf("www", &["www.test"]);
    let o = origin("o").await;
    let text = config(o.addr(), &[certificate_json("www", &["www.test"], &leaf)]);
    store
        .put_config(&text, portico_store::Expect::Any)
        .await
        .expect("push");
    let (a, a_tls) = store_tls_node(&url, "a", free_addr()).await;
    let (b, b_tls) = store_tls_node(&url, "b", free_addr()).await;
    // Both nodes found no key and raced to make the first: one wrote it, the other read it.
    eventually(
        "a ticket key in the store",
        Duration::from_secs(10),
        || async {
            store
                .get_tickets()
                .await
                .is_ok_and(|(k, _)| !k.keys().is_empty())
        },
    )
    .await;
    let (keys, _) = store.get_tickets().await.expect("ticket keys");
    assert_eq!(keys.keys().len(), 1, "{keys:?}");
    for version in VERSIONS {
        let client = Client::new(&ca, version, "www.test");
        // Each node issues tickets once it has read the store's key.
        eventually(
            "a session from a resumes on b",
            Duration::from_secs(10),
            || resumes_across(&client, a_tls, b_tls),
        )
        .await;
        assert!(resumes_across(&client, b_tls, a_tls).await, "{version}");
    }
    // Nothing of the keys shows in /status.
    let status = a.status().await.to_string();
    let key = &keys.keys()[0];
    let hex: String = key.aes_key.iter().map(|b| format!("{b:02x}")).collect();
    assert!(!status.contains(&hex));
    drop(b);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_racing_to_rotate_write_one_key_and_old_keys_leave_the_store() {
    use portico_core::tls_tickets::{
        ACCEPT_FOR_MS, KEY_MATERIAL_BYTES, ROTATE_EVERY_MS, TicketKey,
    };
    let (etcd, _dir) = etcd(1);
    let url = etcd.url("portico");
    let connect = || Store::connect(&url, Duration::from_secs(5));
    let (a, b) = (connect().await.expect("a"), connect().await.expect("b"));
    let t0 = 1_800_000_000_000;
    let key = |tag: u8, at: u64| TicketKey::new([tag; KEY_MATERIAL_BYTES], at);
    // Both find no key at t0 and write at once: one key is stored, and both get it.
    let (ka, kb) = tokio::join!(
        a.rotate_tickets(t0, key(1, t0)),
        b.rotate_tickets(t0, key(2, t0))
    );
    let (ka, kb) = (ka.expect("a rotates"), kb.expect("b rotates"));
    assert_eq!(ka, kb);
    assert_eq!(ka.keys().len(), 1);
    // Not due yet: nothing written.
    let same = a
        .rotate_tickets(t0 + 1, key(3, t0 + 1))
        .await
        .expect("not due");
    assert_eq!(same, ka);
    // Due an hour later, again raced: one more key.
    let t1 = t0 + ROTATE_EVERY_MS;
    let (ka, kb) = tokio::join!(
        a.rotate_tickets(t1, key(4, t1)),
        b.rotate_tickets(t1, key(5, t1))
    );
    let (ka, kb) = (ka.expect("a rotates"), kb.expect("b rotates"));
    assert_eq!(ka, kb);
    assert_eq!(ka.keys().len(), 2);
    // Past the first key's accept window it is dropped from the store.
    let late = t0 + ACCEPT_FOR_MS;
    let kept = a.rotate_tickets(late, key(6, late)).await.expect("rotates");
    let (stored, _) = b.get_tickets().await.expect("read");
    assert_eq!(stored, kept);
    assert_eq!(stored.keys().len(), 2, "{stored:?}");
    assert!(stored.keys().iter().all(|k| k.created_ms >= t1));
}
