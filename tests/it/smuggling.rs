//! Request smuggling regression suite (raw sockets): every ambiguous framing shape is answered
//! 400 and never forwarded, bytes smuggled behind it never reach the origin, and pipelined
//! requests are answered in order.

use portico_origin::OriginHandle;
use portico_tests::*;

/// What a smuggler hides behind an ambiguous request: a second request the origin must never see.
const SMUGGLED: &str = "GET /smuggled HTTP/1.1\r\nHost: a.example\r\n\r\n";

async fn node() -> (TestNode, OriginHandle, String) {
    let o = origin("o").await;
    let node = TestNode::start(&one_pool(&[origin_json("o", o.addr(), "")], "")).await;
    let addr = node.url.trim_start_matches("http://").to_string();
    (node, o, addr)
}

/// The status codes of the responses in `reply`, in order.
fn statuses(reply: &str) -> Vec<u16> {
    let mut out = Vec::new();
    let mut rest = reply;
    while let Some(i) = rest.find("HTTP/1.1 ") {
        let at_line_start = i == 0 || rest[..i].ends_with('\n');
        let code = rest.get(i + 9..i + 12).and_then(|c| c.parse().ok());
        if let (true, Some(code)) = (at_line_start, code) {
            out.push(code);
        }
        rest = &rest[i + 9..];
    }
    out
}

/// Paths the origin saw from clients (not probes), in order.
fn seen_paths(o: &OriginHandle) -> Vec<String> {
    o.log()
        .into_iter()
        .filter(|r| !r.probe)
        .map(|r| r.path)
        .collect()
}

fn assert_never_smuggled(o: &OriginHandle, case: &str) {
    let paths = seen_paths(o);
    assert!(
        !paths.iter().any(|p| p.contains("smuggled")),
        "{case}: the origin saw the smuggled request: {paths:?}"
    );
}

/// Heads whose framing is ambiguous: each gets one 400, the connection closes, and neither it
/// nor the request behind it reaches the origin.
#[tokio::test]
async fn ambiguous_heads_are_refused_and_never_forwarded() {
    let (_node, o, addr) = node().await;
    let cases: &[(&str, &str)] = &[
        (
            "CL+TE",
            "POST / HTTP/1.1\r\nHost: a.example\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        ),
        (
            "TE+CL",
            "POST / HTTP/1.1\r\nHost: a.example\r\nTransfer-Encoding: chunked\r\nContent-Length: 6\r\n\r\n0\r\n\r\n",
        ),
        (
            "CL+TE, CL spelled in lower case",
            "POST / HTTP/1.1\r\nHost: a.example\r\ncontent-length: 6\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n",
        ),
        (
            "duplicate differing CL",
            "POST / HTTP/1.1\r\nHost: a.example\r\nContent-Length: 5\r\nContent-Length: 40\r\n\r\nhello",
        ),
        (
            "differing CL in one list",
            "POST / HTTP/1.1\r\nHost: a.example\r\nContent-Length: 5, 40\r\n\r\nhello",
        ),
        (
            "CL with a space inside",
            "POST / HTTP/1.1\r\nHost: a.example\r\nContent-Length: 1 0\r\n\r\nhellohello",
        ),
        (
            "CL with a space before the colon",
            "POST / HTTP/1.1\r\nHost: a.example\r\nContent-Length : 5\r\n\r\nhello",
        ),
        (
            "CL with a plus sign",
            "POST / HTTP/1.1\r\nHost: a.example\r\nContent-Length: +5\r\n\r\nhello",
        ),
        (
            "CL with leading zeros",
            "POST / HTTP/1.1\r\nHost: a.example\r\nContent-Length: 005\r\n\r\nhello",
        ),
        (
            "CL negative",
            "POST / HTTP/1.1\r\nHost: a.example\r\nContent-Length: -1\r\n\r\n",
        ),
        (
            "CL in hex",
            "POST / HTTP/1.1\r\nHost: a.example\r\nContent-Length: 0x5\r\n\r\nhello",
        ),
        (
            "CL over 64 bits",
            "POST / HTTP/1.1\r\nHost: a.example\r\nContent-Length: 18446744073709551621\r\n\r\nhello",
        ),
        (
            "TE chunked, identity",
            "POST / HTTP/1.1\r\nHost: a.example\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
        ),
        (
            "TE gzip, chunked",
            "POST / HTTP/1.1\r\nHost: a.example\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        ),
        (
            "TE xchunked",
            "POST / HTTP/1.1\r\nHost: a.example\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
        ),
        (
            "TE twice",
            "POST / HTTP/1.1\r\nHost: a.example\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        ),
        (
            "TE with obs-fold",
            "POST / HTTP/1.1\r\nHost: a.example\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n",
        ),
        (
            "TE with a vertical tab",
            "POST / HTTP/1.1\r\nHost: a.example\r\nTransfer-Encoding:\x0bchunked\r\n\r\n0\r\n\r\n",
        ),
        (
            "TE on HTTP/1.0",
            "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        ),
        (
            "bare LF between header lines",
            "POST / HTTP/1.1\r\nHost: a.example\nContent-Length: 5\r\n\r\nhello",
        ),
        ("HTTP/1.1 without Host", "GET / HTTP/1.1\r\n\r\n"),
        (
            "two Hosts",
            "GET / HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n",
        ),
        (
            "a fragment in the target",
            "GET /a#b HTTP/1.1\r\nHost: a.example\r\n\r\n",
        ),
        (
            "a target of another scheme",
            "GET ftp://a.example/ HTTP/1.1\r\nHost: a.example\r\n\r\n",
        ),
        (
            "asterisk-form on GET",
            "GET * HTTP/1.1\r\nHost: a.example\r\n\r\n",
        ),
    ];
    for (case, head) in cases {
        let before = o.stats().requests;
        let reply = raw(&addr, format!("{head}{SMUGGLED}").as_bytes()).await;
        assert_eq!(
            statuses(&reply),
            vec![400],
            "{case}: expected one 400 and a closed connection:\n{reply}"
        );
        assert_eq!(
            o.stats().requests,
            before,
            "{case}: forwarded to the origin: {:?}",
            seen_paths(&o)
        );
        assert_never_smuggled(&o, case);
    }
}

/// Refusals of the head rules say why and close the connection (RFC 9112 §6.3).
#[tokio::test]
async fn a_refused_head_says_why_and_closes() {
    let (_node, o, addr) = node().await;
    let reply = raw(
        &addr,
        format!(
            "POST / HTTP/1.1\r\nHost: a.example\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{SMUGGLED}"
        )
        .as_bytes(),
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 400"), "{reply}");
    assert!(
        reply.contains("both Content-Length and Transfer-Encoding"),
        "{reply}"
    );
    assert!(
        reply.to_ascii_lowercase().contains("connection: close"),
        "{reply}"
    );
    let reply = raw(
        &addr,
        format!("POST / HTTP/1.1\r\nHost: a.example\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n{SMUGGLED}").as_bytes(),
    )
    .await;
    assert!(reply.contains("only Transfer-Encoding accepted"), "{reply}");
    assert!(
        reply.to_ascii_lowercase().contains("connection: close"),
        "{reply}"
    );
    assert_eq!(o.stats().requests, 0);
}

/// Bad chunking in the body (Pingora's body reader): answered 400, the connection closed, and
/// nothing after the bad line is read as a request. The head (valid) may already have gone to
/// the origin with its body streaming, cut at the bad line; the bytes behind it never arrive.
#[tokio::test]
async fn bad_chunking_never_lets_a_request_through() {
    let (_node, o, addr) = node().await;
    let head = "POST /echo HTTP/1.1\r\nHost: a.example\r\nTransfer-Encoding: chunked\r\n\r\n";
    let cases: &[(&str, &str)] = &[
        ("bare LF after the chunk size", "5\nhello\r\n0\r\n\r\n"),
        ("bare LF after the last chunk", "0\n\r\n"),
        (
            "chunk size over 64 bits",
            "10000000000000005\r\nhello\r\n0\r\n\r\n",
        ),
        ("chunk size not hex", "5g\r\nhello\r\n0\r\n\r\n"),
        ("chunk data longer than its size", "3\r\nhello\r\n0\r\n\r\n"),
        ("chunk size with a sign", "+5\r\nhello\r\n0\r\n\r\n"),
        (
            "bare LF inside a chunk extension",
            "5;a\nhello\r\n0\r\n\r\n",
        ),
    ];
    for (case, body) in cases {
        let reply = raw(&addr, format!("{head}{body}{SMUGGLED}").as_bytes()).await;
        assert_eq!(
            statuses(&reply),
            vec![400],
            "{case}: expected one 400 and a closed connection:\n{reply}"
        );
        assert_never_smuggled(&o, case);
    }
}

/// Chunk extensions are allowed and ignored; the body reaches the origin intact. The
/// connection closes after a chunked request (Pingora's chunk parser is more lenient than the
/// rules, so nothing behind a chunked body is read): the request written behind it is never
/// forwarded, and the response says `Connection: close` so the client knows to send it again.
#[tokio::test]
async fn chunk_extensions_are_ignored_and_nothing_behind_a_chunked_body_is_read() {
    let (_node, o, addr) = node().await;
    let reply = raw(
        &addr,
        b"POST /echo HTTP/1.1\r\nHost: a.example\r\nTransfer-Encoding: chunked\r\n\r\n\
          5;name=value;q=\"x y\"\r\nhello\r\n0;end\r\n\r\n\
          GET /after HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(statuses(&reply), vec![200], "{reply}");
    assert!(reply.contains("x-body-length: 5"), "{reply}");
    assert!(
        reply.to_ascii_lowercase().contains("connection: close"),
        "{reply}"
    );
    assert_eq!(seen_paths(&o), vec!["/echo"]);
    // An empty chunk-size line, which Pingora's parser reads as the last chunk: the bytes
    // behind it are not read as a request either.
    let reply = raw(
        &addr,
        format!(
            "POST /echo HTTP/1.1\r\nHost: a.example\r\nTransfer-Encoding: chunked\r\n\r\n\r\n\r\n{SMUGGLED}"
        )
        .as_bytes(),
    )
    .await;
    assert!(statuses(&reply).len() <= 1, "{reply}");
    assert_never_smuggled(&o, "empty chunk-size line");
}

/// A body that holds a request is only a body: the origin gets it as bytes of the first request.
#[tokio::test]
async fn a_request_inside_a_body_stays_a_body() {
    let (_node, o, addr) = node().await;
    let inner = SMUGGLED.to_string();
    let reply = raw(
        &addr,
        format!(
            "POST /echo HTTP/1.1\r\nHost: a.example\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{inner}",
            inner.len()
        )
        .as_bytes(),
    )
    .await;
    assert_eq!(statuses(&reply), vec![200], "{reply}");
    assert!(
        reply.contains(&format!("x-body-length: {}", inner.len())),
        "{reply}"
    );
    assert_eq!(seen_paths(&o), vec!["/echo"]);
    // Chunked, the same.
    let reply = raw(
        &addr,
        format!(
            "POST /echo HTTP/1.1\r\nHost: a.example\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n{inner}\r\n0\r\n\r\n",
            inner.len()
        )
        .as_bytes(),
    )
    .await;
    assert_eq!(statuses(&reply), vec![200], "{reply}");
    assert_eq!(seen_paths(&o), vec!["/echo", "/echo"]);
}

/// Bytes after a complete body are the next request, and it meets the rules on its own: an
/// ambiguous one behind a good one is refused and never forwarded.
#[tokio::test]
async fn a_request_behind_a_body_is_judged_on_its_own() {
    let (_node, o, addr) = node().await;
    let reply = raw(
        &addr,
        format!(
            "POST /echo HTTP/1.1\r\nHost: a.example\r\nContent-Length: 5\r\n\r\nhello\
             POST /second HTTP/1.1\r\nHost: a.example\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{SMUGGLED}"
        )
        .as_bytes(),
    )
    .await;
    assert_eq!(statuses(&reply), vec![200, 400], "{reply}");
    assert_eq!(seen_paths(&o), vec!["/echo"]);
}

/// Two GETs in one write: both answered, in order, both forwarded in order.
#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let (_node, o, addr) = node().await;
    let reply = raw(
        &addr,
        b"GET /first HTTP/1.1\r\nHost: a.example\r\nX-Request-Id: first\r\n\r\n\
          GET /second HTTP/1.1\r\nHost: a.example\r\nX-Request-Id: second\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(statuses(&reply), vec![200, 200], "{reply}");
    let lower = reply.to_ascii_lowercase();
    let (first, second) = (
        lower.find("x-request-id: first"),
        lower.find("x-request-id: second"),
    );
    assert!(
        first.is_some() && second.is_some() && first < second,
        "responses out of order:\n{reply}"
    );
    assert_eq!(seen_paths(&o), vec!["/first", "/second"]);
    // Three, the first with a body.
    let reply = raw(
        &addr,
        b"POST /echo HTTP/1.1\r\nHost: a.example\r\nContent-Length: 3\r\n\r\nabc\
          GET /b HTTP/1.1\r\nHost: a.example\r\n\r\n\
          GET /c HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(statuses(&reply), vec![200, 200, 200], "{reply}");
    assert_eq!(
        seen_paths(&o),
        vec!["/first", "/second", "/echo", "/b", "/c"]
    );
}

/// Reads one response with a `Content-Length` body from `s`.
async fn one_response(s: &mut tokio::net::TcpStream) -> String {
    use tokio::io::AsyncReadExt;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let text = String::from_utf8_lossy(&out).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if out.len() >= end + 4 + length {
                return text;
            }
        }
        let left = deadline
            .checked_duration_since(std::time::Instant::now())
            .unwrap_or_else(|| panic!("no whole response in time: {text}"));
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => out.extend_from_slice(&buf[..n]),
            other => panic!("connection ended early ({other:?}): {text}"),
        }
    }
}

/// Bodiless GETs take Portico's own path, requests with a body Pingora's proxy, which reads
/// their head again from the bytes Portico read it from: on one connection, in either order,
/// pipelined or not, every request is answered in order and every body arrives whole.
#[tokio::test]
async fn own_path_and_pingoras_proxy_share_a_keep_alive_connection() {
    use tokio::io::AsyncWriteExt;
    let (_node, o, addr) = node().await;
    // A POST pipelined behind a GET: its head and body come in the GET's leftover bytes.
    let reply = raw(
        &addr,
        b"GET /a HTTP/1.1\r\nHost: a.example\r\n\r\n\
          POST /echo HTTP/1.1\r\nHost: a.example\r\nContent-Length: 5\r\n\r\nhello\
          GET /c HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(statuses(&reply), vec![200, 200, 200], "{reply}");
    assert!(
        reply.to_ascii_lowercase().contains("x-body-length: 5"),
        "{reply}"
    );
    assert_eq!(seen_paths(&o), vec!["/a", "/echo", "/c"]);
    o.clear_log();

    // One request at a time on one connection: GET, POST (head and body in one write), GET.
    let mut s = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    // (request, the body length the origin reports, if it echoes)
    let steps: [(&[u8], Option<usize>); 4] = [
        (b"GET /one HTTP/1.1\r\nHost: a.example\r\n\r\n", None),
        (
            b"POST /echo HTTP/1.1\r\nHost: a.example\r\nContent-Length: 3\r\n\r\nabc",
            Some(3),
        ),
        (b"GET /two HTTP/1.1\r\nHost: a.example\r\n\r\n", None),
        (
            b"POST /echo HTTP/1.1\r\nHost: a.example\r\nContent-Length: 4\r\n\r\nabcd",
            Some(4),
        ),
    ];
    for (request, echoed) in steps {
        s.write_all(request).await.expect("write");
        let reply = one_response(&mut s).await;
        assert_eq!(statuses(&reply), vec![200], "{reply}");
        if let Some(n) = echoed {
            let wanted = format!("x-body-length: {n}");
            assert!(reply.to_ascii_lowercase().contains(&wanted), "{reply}");
        }
    }
    assert_eq!(seen_paths(&o), vec!["/one", "/echo", "/two", "/echo"]);
}
