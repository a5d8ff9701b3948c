//! The access log: one JSON line per request with the contract's fields, moved by a reload,
//! reopened for logrotate.

use portico::state::ReloadSource;
use portico_tests::*;
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

fn with_log(config: &str, path: &Path) -> String {
    config.replacen(
        '{',
        &format!(r#"{{"node": {{"access_log": "{}"}},"#, path.display()),
        1,
    )
}

#[tokio::test]
async fn every_request_gets_a_json_line_with_the_contract_fields() {
    let a = origin("a").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("access.log");
    let config = with_log(
        &one_pool(&[origin_json("a", a.addr(), "")], FAST_PROBES),
        &log,
    );
    let node = TestNode::start(&config).await;
    let ok = node
        .http
        .request(
            http::Method::POST,
            &format!("{}/echo?x=1", node.url),
            &[("x-request-id", "req-1")],
            bytes::Bytes::from_static(b"hello"),
        )
        .await
        .expect("POST");
    assert_eq!(ok.status, 200);
    assert_eq!(node.get("/").await.status, 200);
    eventually("two lines", Duration::from_secs(10), || async {
        lines(&log).len() >= 2
    })
    .await;
    let all = lines(&log);
    let first = &all[0];
    for field in [
        "ts",
        "request_id",
        "client",
        "method",
        "host",
        "path",
        "protocol",
        "tls",
        "status",
        "route",
        "pool",
        "origin",
        "attempts",
        "duration_ms",
        "bytes_in",
        "bytes_out",
        "region",
    ] {
        assert!(first.get(field).is_some(), "{field} missing in {first}");
    }
    assert_eq!(first["request_id"], "req-1");
    assert_eq!(first["method"], "POST");
    assert_eq!(first["path"], "/echo");
    assert_eq!(first["protocol"], "HTTP/1.1");
    assert_eq!(first["tls"], false);
    assert_eq!(first["status"], 200);
    assert_eq!(first["route"], "r");
    assert_eq!(first["pool"], "p");
    assert_eq!(first["origin"], "a");
    assert_eq!(first["attempts"], 1);
    assert_eq!(first["bytes_in"], 5);
    assert_eq!(first["client"], "127.0.0.1");
    assert!(first["bytes_out"].as_u64() > Some(0));
    let ts = first["ts"].as_str().unwrap();
    assert!(
        ts.ends_with('Z') && ts.len() == 24,
        "RFC 3339 UTC with ms: {ts}"
    );
    let m = node.metrics().await;
    assert_eq!(m.sum("portico_access_log_dropped_total", &[]), 0.0);
}

#[tokio::test]
async fn a_reload_moves_the_log_and_a_reopen_follows_logrotate() {
    let a = origin("a").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (first, second) = (dir.path().join("one.log"), dir.path().join("two.log"));
    let base = one_pool(&[origin_json("a", a.addr(), "")], FAST_PROBES);
    let node = TestNode::start(&with_log(&base, &first)).await;
    node.get("/").await;
    eventually("a line in one.log", Duration::from_secs(10), || async {
        lines(&first).len() == 1
    })
    .await;
    node.node
        .apply(&with_log(&base, &second), ReloadSource::Admin)
        .await
        .expect("valid");
    node.get("/").await;
    eventually("a line in two.log", Duration::from_secs(10), || async {
        lines(&second).len() == 1
    })
    .await;
    assert_eq!(lines(&first).len(), 1, "nothing more in the old file");
    // logrotate: move the file, then signal; new lines go to a new file at the same path.
    let rotated = dir.path().join("two.log.1");
    std::fs::rename(&second, &rotated).expect("rotate");
    node.node.state().access_log.reopen();
    node.get("/").await;
    eventually(
        "a line in the new two.log",
        Duration::from_secs(10),
        || async { lines(&second).len() == 1 },
    )
    .await;
    assert_eq!(lines(&rotated).len(), 1);
    // Off again: no more lines anywhere.
    node.node
        .apply(&base, ReloadSource::Admin)
        .await
        .expect("valid");
    node.get("/").await;
    node.get("/").await;
    assert_eq!(lines(&second).len(), 1);
}

/// A GET (Portico's own path) whose client goes away mid-response still gets its line and
/// is counted, with the status sent and fewer bytes than the body.
#[tokio::test]
async fn a_client_gone_mid_response_is_still_logged_and_counted() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let a = origin("a").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("access.log");
    let config = with_log(&one_pool(&[origin_json("a", a.addr(), "")], ""), &log);
    let node = TestNode::start(&config).await;
    let addr = node.url.trim_start_matches("http://").to_string();
    let total: u64 = 64 * 1024 * 1024;
    let mut s = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    s.write_all(format!("GET /bytes/{total} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .expect("write");
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(15), s.read(&mut buf))
            .await
            .expect("a response head in time")
            .expect("read");
        assert!(n > 0, "closed before the head");
        head.extend_from_slice(&buf[..n]);
    }
    assert!(head.starts_with(b"HTTP/1.1 200"), "{head:?}");
    drop(s);
    eventually("the request's line", Duration::from_secs(15), || async {
        !lines(&log).is_empty()
    })
    .await;
    let all = lines(&log);
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(all[0]["method"], "GET");
    assert_eq!(all[0]["status"], 200);
    assert!(all[0]["bytes_out"].as_u64() < Some(total), "{}", all[0]);
    let m = node.metrics().await;
    assert_eq!(m.sum("portico_requests_total", &[("route", "r")]), 1.0);
}
