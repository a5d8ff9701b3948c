//! Portico's own HTTP/1 client for plain-TCP HTTP/1 origins (the attempts of bodiless
//! requests): connections from a per-thread keep-alive pool without a task per idle
//! connection, the request head written in one write from a reused buffer, the response
//! head parsed into an owned head, and the body framed per RFC 9112. Errors carry the same
//! Pingora error types Pingora's connector and HTTP/1 session produce, so failures are
//! classified and retried as before. TLS, HTTP/2 and any peer with socket options this
//! client does not apply stay with Pingora's connector ([`serves`]).

pub mod chunked;
pub mod head;
pub mod pool;

use bytes::{Buf, Bytes, BytesMut};
use chunked::ChunkDecoder;
use head::Framing;
use pingora_core::protocols::ALPN;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_error::{Error, ErrorType, Result};
use pingora_http::{RequestHeader, ResponseHeader};
use pool::Conn;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Room made in the read buffer before a read of the response head.
const HEAD_READ: usize = 4096;
/// Most bytes read at once from a body (Pingora's body buffer size).
const BODY_READ: usize = 64 * 1024;

/// How an attempt failed.
pub struct Failure {
    /// The error, of the type Pingora would have produced.
    pub error: Box<Error>,
    /// Whether the connection had been reused from the pool.
    pub reused: bool,
    /// The failure came while connecting (nothing was sent).
    pub connecting: bool,
}

impl Failure {
    /// A failure to connect (nothing was sent).
    pub fn connecting(error: Box<Error>) -> Self {
        Failure {
            error,
            reused: false,
            connecting: true,
        }
    }

    /// A failure after the connection was made (`reused`: taken from the pool).
    pub fn exchanging(error: Box<Error>, reused: bool) -> Self {
        Failure {
            error,
            reused,
            connecting: false,
        }
    }
}

/// The address this client reaches `peer` at, when it serves it: plain TCP to an IP
/// address, HTTP/1 only, none of the socket, proxy or framing options only Pingora's
/// connector applies.
pub fn serves(peer: &HttpPeer) -> Option<SocketAddr> {
    let o = &peer.options;
    let plain = !peer.is_tls()
        && o.alpn == ALPN::H1
        && peer.proxy.is_none()
        && o.bind_to.is_none()
        && o.total_connection_timeout.is_none()
        && o.tcp_keepalive.is_none()
        && o.tcp_recv_buf.is_none()
        && o.dscp.is_none()
        && !o.tcp_fast_open
        && o.custom_l4.is_none()
        && o.upstream_tcp_sock_tweak_hook.is_none()
        && o.tracer.is_none()
        && !o.allow_h1_response_invalid_content_length;
    match &peer._address {
        pingora_core::protocols::l4::socket::SocketAddr::Inet(a) if plain => Some(*a),
        _ => None,
    }
}

/// The body still to read.
enum Body {
    /// This many bytes.
    Length(u64),
    /// Chunks, decoded as they come.
    Chunked(ChunkDecoder),
    /// Everything until the origin closes.
    Close,
    /// The body ended.
    Done,
}

/// One request sent and its response head received; the body is read from it.
pub struct Exchange {
    conn: Conn,
    /// Bytes read past what was handed out.
    rbuf: BytesMut,
    key: SocketAddr,
    head: Option<ResponseHeader>,
    status: u16,
    body: Body,
    reusable: bool,
    read_timeout: Option<Duration>,
    idle_timeout: Duration,
}

/// A request head to send.
pub enum Head<'a> {
    /// A built request, written with [`head::write_request`].
    Built(&'a RequestHeader),
    /// The head's bytes, already written (the direct path,
    /// [`crate::request::outbound::write_direct`]): no `Connection` header, so it never
    /// asks to close.
    Written {
        /// The whole head.
        bytes: &'a [u8],
        /// Whether the method is HEAD (the response has no body).
        head_request: bool,
    },
}

thread_local! {
    /// A spare buffer for heads written before a connection is at hand ([`head_buffer`]).
    static SPARE: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
}

/// An empty buffer to write a [`Head::Written`] head into: this thread's spare one when
/// there is one, so a head costs no allocation; [`give_back`] returns it.
pub fn head_buffer() -> Vec<u8> {
    let mut buf = SPARE.with(std::cell::Cell::take);
    if buf.capacity() == 0 {
        buf.reserve(512);
    }
    buf
}

/// Keeps `buf` as this thread's spare head buffer (cleared), unless a large head grew it past
/// what an idle connection may keep ([`pool::KEEP_WBUF`]): a rare large head does not hold
/// its memory for the life of the thread.
pub fn give_back(mut buf: Vec<u8>) {
    if buf.capacity() > pool::KEEP_WBUF {
        return;
    }
    buf.clear();
    SPARE.with(|spare| spare.set(buf));
}

/// Sends `req` to the origin at `addr` (a pooled connection when one is idle, else a new
/// one) and reads the response head, skipping 1xx heads other than 101.
pub async fn send(peer: &HttpPeer, addr: SocketAddr, req: Head<'_>) -> Result<Exchange, Failure> {
    let (conn, reused) = match pool::checkout(addr) {
        Some(c) => (c, true),
        None => {
            let stream = connect(addr, peer.options.connection_timeout)
                .await
                .map_err(Failure::connecting)?;
            let conn = Conn {
                stream,
                wbuf: Vec::with_capacity(512),
            };
            (conn, false)
        }
    };
    exchange(peer, addr, req, conn)
        .await
        .map_err(|error| Failure::exchanging(error, reused))
}

async fn exchange(
    peer: &HttpPeer,
    key: SocketAddr,
    req: Head<'_>,
    mut conn: Conn,
) -> Result<Exchange> {
    let o = &peer.options;
    let (bytes, head_request, request_close) = match req {
        Head::Built(req) => {
            conn.wbuf.clear();
            head::write_request(&mut conn.wbuf, req)?;
            (
                &conn.wbuf[..],
                req.method == http::Method::HEAD,
                head::connection_keep_alive(&req.headers) == Some(false),
            )
        }
        Head::Written {
            bytes,
            head_request,
        } => (bytes, head_request, false),
    };
    let write = conn.stream.write_all(bytes);
    match o.write_timeout {
        Some(t) => tokio::time::timeout(t, write).await.map_err(|_| {
            Error::explain(
                ErrorType::WriteTimedout,
                "while writing request headers (timeout)",
            )
        })?,
        None => write.await,
    }
    .map_err(|e| Error::because(ErrorType::WriteError, "while writing request headers", e))?;
    let mut rbuf = BytesMut::with_capacity(HEAD_READ);
    let mut head = loop {
        // Nothing read yet (or everything consumed by a 1xx head): no head to find.
        if !rbuf.is_empty()
            && let Some(parsed) = head::parse_response(&mut rbuf)?
        {
            let status = parsed.head.status.as_u16();
            if (100..200).contains(&status) && status != 101 {
                continue;
            }
            break parsed.head;
        }
        if rbuf.len() > head::MAX_HEAD {
            return Error::e_explain(
                ErrorType::InvalidHTTPHeader,
                format!("Response header larger than {}", head::MAX_HEAD),
            );
        }
        if rbuf.capacity() - rbuf.len() < HEAD_READ {
            rbuf.reserve(HEAD_READ);
        }
        let before = rbuf.len();
        let n = read(
            &mut conn.stream,
            &mut rbuf,
            o.read_timeout,
            "while reading response headers",
        )
        .await?;
        if n == 0 {
            return Error::e_explain(
                ErrorType::ConnectionClosed,
                format!("while reading response headers, bytes already read: {before}"),
            );
        }
    };
    let plan = head::plan(&mut head, head_request, request_close)?;
    let body = match plan.framing {
        Framing::Empty => Body::Done,
        Framing::Length(n) => Body::Length(n),
        Framing::Chunked => Body::Chunked(ChunkDecoder::default()),
        Framing::Close => Body::Close,
    };
    Ok(Exchange {
        conn,
        rbuf,
        key,
        status: head.status.as_u16(),
        head: Some(head),
        body,
        reusable: plan.reusable,
        read_timeout: o.read_timeout,
        idle_timeout: o.idle_timeout.unwrap_or(Duration::from_secs(60)),
    })
}

/// Connects to `addr` within `timeout`, with TCP_NODELAY as Pingora's connector sets it;
/// errors typed as Pingora types them.
async fn connect(addr: SocketAddr, timeout: Option<Duration>) -> Result<TcpStream> {
    let fut = TcpStream::connect(addr);
    let res = match timeout {
        Some(t) => tokio::time::timeout(t, fut).await.map_err(|_| {
            Error::explain(
                ErrorType::ConnectTimedout,
                format!("timeout {t:?} connecting to server {addr}"),
            )
        })?,
        None => fut.await,
    };
    let stream = res.map_err(|e| {
        let etype = match e.kind() {
            std::io::ErrorKind::ConnectionRefused => ErrorType::ConnectRefused,
            std::io::ErrorKind::TimedOut => ErrorType::ConnectTimedout,
            std::io::ErrorKind::AddrNotAvailable
            | std::io::ErrorKind::PermissionDenied
            | std::io::ErrorKind::AddrInUse => ErrorType::InternalError,
            _ => match e.raw_os_error() {
                Some(libc_no_route) if is_no_route(libc_no_route) => ErrorType::ConnectNoRoute,
                _ => ErrorType::ConnectError,
            },
        };
        Error::because(etype, format!("Fail to connect to {addr}"), e)
    })?;
    stream
        .set_nodelay(true)
        .map_err(|e| Error::because(ErrorType::ConnectError, "setting TCP_NODELAY", e))?;
    Ok(stream)
}

/// ENETUNREACH or EHOSTUNREACH (Linux numbers; other systems report them as ConnectError).
fn is_no_route(errno: i32) -> bool {
    cfg!(target_os = "linux") && matches!(errno, 101 | 113)
}

/// One read into `buf` within `timeout`: the bytes read (0 at the end of the stream).
async fn read(
    stream: &mut TcpStream,
    buf: &mut BytesMut,
    timeout: Option<Duration>,
    what: &'static str,
) -> Result<usize> {
    let fut = stream.read_buf(buf);
    match timeout {
        Some(t) => tokio::time::timeout(t, fut)
            .await
            .map_err(|_| Error::explain(ErrorType::ReadTimedout, what))?,
        None => fut.await,
    }
    .map_err(|e| Error::because(ErrorType::ReadError, what, e))
}

impl Exchange {
    /// The response status.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The response head (once: it is moved out, never cloned).
    pub fn take_head(&mut self) -> Option<ResponseHeader> {
        self.head.take()
    }

    /// Whether the whole body has been read.
    pub fn done(&self) -> bool {
        matches!(self.body, Body::Done)
    }

    /// The next piece of the body, `None` at its end.
    pub async fn read_body(&mut self) -> Result<Option<Bytes>> {
        loop {
            if self.rbuf.is_empty() {
                let room = match &self.body {
                    Body::Done => return Ok(None),
                    Body::Length(left) => {
                        usize::try_from(*left).map_or(BODY_READ, |l| l.min(BODY_READ))
                    }
                    Body::Chunked(_) | Body::Close => BODY_READ,
                };
                self.fill(room).await?;
                if self.rbuf.is_empty() {
                    return self.ended_early();
                }
            }
            match &mut self.body {
                Body::Done => return Ok(None),
                Body::Length(left) => {
                    let n =
                        usize::try_from(*left).map_or(self.rbuf.len(), |l| l.min(self.rbuf.len()));
                    *left -= n as u64;
                    if *left == 0 {
                        self.body = Body::Done;
                    }
                    return Ok(Some(self.rbuf.split_to(n).freeze()));
                }
                Body::Chunked(decoder) => {
                    let step = match decoder.feed(&self.rbuf) {
                        Ok(s) => s,
                        Err(e) => {
                            self.body = Body::Done;
                            self.reusable = false;
                            return Error::e_explain(ErrorType::Custom("InvalidChunk"), e.0);
                        }
                    };
                    let ended = decoder.is_done();
                    self.rbuf.advance(step.data.start);
                    let piece = self.rbuf.split_to(step.data.len()).freeze();
                    self.rbuf.advance(step.consumed - step.data.end);
                    if ended {
                        self.body = Body::Done;
                    }
                    if !piece.is_empty() {
                        return Ok(Some(piece));
                    }
                }
                Body::Close => return Ok(Some(self.rbuf.split().freeze())),
            }
        }
    }

    /// The origin closed the connection: the end of a close-delimited body, an error for
    /// any other.
    fn ended_early(&mut self) -> Result<Option<Bytes>> {
        let body = std::mem::replace(&mut self.body, Body::Done);
        self.reusable = false;
        match body {
            Body::Close | Body::Done => Ok(None),
            Body::Length(left) => Error::e_explain(
                ErrorType::ConnectionClosed,
                format!(
                    "Peer prematurely closed connection with {left} bytes of body remaining to read"
                ),
            ),
            Body::Chunked(_) => Error::e_explain(
                ErrorType::ConnectionClosed,
                "Connection prematurely closed without the termination chunk",
            ),
        }
    }

    async fn fill(&mut self, room: usize) -> Result<()> {
        if self.rbuf.capacity() - self.rbuf.len() < room {
            self.rbuf.reserve(room);
        }
        let fut = read(
            &mut self.conn.stream,
            &mut self.rbuf,
            self.read_timeout,
            "reading body",
        );
        if let Err(e) = fut.await {
            self.reusable = false;
            return Err(e);
        }
        Ok(())
    }

    /// Returns the connection to this thread's pool when the body ended cleanly, nothing
    /// came after it and keep-alive applies; closes it otherwise.
    pub fn finish(self) {
        if self.reusable && self.done() && self.rbuf.is_empty() {
            pool::checkin(self.key, self.conn, self.idle_timeout);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    /// An origin that answers each request head on each connection with the next of
    /// `answers` (each written in the given pieces) and counts its connections.
    async fn origin(
        answers: Vec<Vec<&'static [u8]>>,
    ) -> (SocketAddr, tokio::task::JoinHandle<usize>) {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = l.local_addr().expect("addr");
        let task = tokio::spawn(async move {
            let mut answers = answers.into_iter();
            let mut conns = 0;
            while answers.len() > 0 {
                let (mut s, _) = l.accept().await.expect("accept");
                conns += 1;
                let mut buf = Vec::new();
                while let Some(answer) = answers.next() {
                    // Read one request head.
                    loop {
                        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            buf.drain(..end + 4);
                            break;
                        }
                        let mut chunk = [0u8; 1024];
                        let n = tokio::io::AsyncReadExt::read(&mut s, &mut chunk)
                            .await
                            .expect("read");
                        if n == 0 {
                            break;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                    }
                    for piece in answer {
                        s.write_all(piece).await.expect("write");
                        s.flush().await.expect("flush");
                        tokio::task::yield_now().await;
                    }
                    if answers.len() == 0 {
                        break;
                    }
                    // A connection the client will not reuse: wait for its close.
                    let mut probe = [0u8; 1];
                    match tokio::io::AsyncReadExt::read(&mut s, &mut probe).await {
                        Ok(0) | Err(_) => break,
                        Ok(_) => buf.push(probe[0]),
                    }
                }
            }
            conns
        });
        (addr, task)
    }

    fn peer(addr: SocketAddr) -> HttpPeer {
        let mut p = HttpPeer::new(addr, false, String::new());
        p.options.connection_timeout = Some(Duration::from_secs(5));
        p.options.read_timeout = Some(Duration::from_secs(5));
        p.options.write_timeout = Some(Duration::from_secs(5));
        p
    }

    fn get() -> RequestHeader {
        let mut r = RequestHeader::build_no_case("GET", b"/", None).expect("req");
        r.insert_header("Host", "o").expect("host");
        r
    }

    async fn body(x: &mut Exchange) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        while let Some(piece) = x.read_body().await? {
            out.extend_from_slice(&piece);
        }
        Ok(out)
    }

    async fn fetch(p: &HttpPeer, addr: SocketAddr) -> (Vec<u8>, bool) {
        let Ok(mut x) = send(p, addr, Head::Built(&get())).await else {
            panic!("send failed");
        };
        let b = body(&mut x).await.expect("body");
        let done = x.done();
        x.finish();
        (b, done)
    }

    #[tokio::test]
    async fn a_cleanly_framed_response_returns_its_connection_for_the_next_request() {
        let (addr, task) = origin(vec![
            vec![
                b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel",
                b"lo",
            ],
            vec![
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r",
                b"\n0\r\n\r\n",
            ],
            vec![b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"],
        ])
        .await;
        let p = peer(addr);
        assert_eq!(fetch(&p, addr).await, (b"hello".to_vec(), true));
        assert_eq!(fetch(&p, addr).await, (b"abc".to_vec(), true));
        assert_eq!(fetch(&p, addr).await, (b"ok".to_vec(), true));
        assert_eq!(
            task.await.expect("origin"),
            1,
            "one connection carried all three"
        );
    }

    #[tokio::test]
    async fn smuggling_shaped_or_close_delimited_responses_close_their_connection() {
        let (addr, task) = origin(vec![
            vec![b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n"],
            vec![b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nxEXTRA"],
            vec![b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\ny"],
            vec![b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nz"],
        ])
        .await;
        let p = peer(addr);
        assert_eq!(fetch(&p, addr).await.0, b"x");
        assert_eq!(
            fetch(&p, addr).await.0,
            b"x",
            "bytes past the body are dropped"
        );
        assert_eq!(fetch(&p, addr).await.0, b"y");
        assert_eq!(fetch(&p, addr).await.0, b"z");
        assert_eq!(
            task.await.expect("origin"),
            4,
            "none of the first three was reused"
        );
    }

    #[tokio::test]
    async fn a_body_on_a_head_response_or_junk_after_a_1xx_closes_the_connection() {
        let (addr, task) = origin(vec![
            vec![b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nbody"],
            vec![b"HTTP/1.1 100 Continue\r\n\r\nJUNK\r\n\r\n"],
            vec![b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"],
        ])
        .await;
        let p = peer(addr);
        let mut head = RequestHeader::build_no_case("HEAD", b"/", None).expect("req");
        head.insert_header("Host", "o").expect("host");
        let Ok(mut x) = send(&p, addr, Head::Built(&head)).await else {
            panic!("HEAD failed");
        };
        assert!(x.done(), "a HEAD response has no body");
        assert_eq!(body(&mut x).await.expect("body"), b"");
        x.finish();
        let Err(f) = send(&p, addr, Head::Built(&get())).await else {
            panic!("junk after a 1xx accepted");
        };
        assert_eq!(f.error.etype(), &ErrorType::InvalidHTTPHeader);
        assert!(!f.reused, "the HEAD response's connection was not kept");
        assert_eq!(fetch(&p, addr).await, (b"ok".to_vec(), true));
        assert_eq!(task.await.expect("origin"), 3, "none was reused");
    }

    #[tokio::test]
    async fn malformed_responses_are_errors_of_pingoras_types() {
        let (addr, _task) = origin(vec![
            vec![b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"],
            vec![b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"],
            vec![b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort"],
        ])
        .await;
        let p = peer(addr);
        let Err(f) = send(&p, addr, Head::Built(&get())).await else {
            panic!("conflicting lengths accepted");
        };
        assert_eq!(f.error.etype(), &ErrorType::InvalidHTTPHeader);
        assert!(!f.connecting);
        let Ok(mut x) = send(&p, addr, Head::Built(&get())).await else {
            panic!("head refused");
        };
        let e = body(&mut x).await.expect_err("bad chunk size");
        assert_eq!(e.etype(), &ErrorType::Custom("InvalidChunk"));
        x.finish();
        let Ok(mut x) = send(&p, addr, Head::Built(&get())).await else {
            panic!("head refused");
        };
        // The origin task ends after its last answer, closing the connection mid-body.
        let e = body(&mut x).await.expect_err("short body");
        assert_eq!(e.etype(), &ErrorType::ConnectionClosed);
    }

    #[test]
    fn the_spare_head_buffer_is_not_kept_when_a_large_head_grew_it() {
        // A head with 32 KiB of client headers grew this thread's spare buffer.
        let mut big = head_buffer();
        big.resize(32 * 1024, b'x');
        give_back(big);
        let spare = head_buffer();
        assert!(
            spare.capacity() <= pool::KEEP_WBUF,
            "{} bytes kept for the life of the thread",
            spare.capacity()
        );
        give_back(spare);
    }

    #[tokio::test]
    async fn a_written_head_goes_out_as_it_is_and_heads_plan_their_body() {
        let (addr, task) = origin(vec![
            vec![b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n"],
            vec![b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"],
        ])
        .await;
        let p = peer(addr);
        let mut bytes = head_buffer();
        assert!(bytes.is_empty() && bytes.capacity() > 0);
        bytes.extend_from_slice(b"HEAD / HTTP/1.1\r\nHost: o\r\n\r\n");
        let written = Head::Written {
            bytes: &bytes,
            head_request: true,
        };
        let Ok(x) = send(&p, addr, written).await else {
            panic!("HEAD failed");
        };
        assert!(x.done(), "a HEAD response has no body");
        x.finish();
        let spare = bytes.as_ptr();
        give_back(bytes);
        let again = head_buffer();
        assert!(
            again.is_empty() && again.as_ptr() == spare,
            "the spare is reused"
        );
        assert_eq!(fetch(&p, addr).await, (b"ok".to_vec(), true));
        assert_eq!(
            task.await.expect("origin"),
            1,
            "one connection carried both"
        );
    }

    #[tokio::test]
    async fn a_refused_connection_fails_while_connecting() {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = l.local_addr().expect("addr");
        drop(l);
        let Err(f) = send(&peer(addr), addr, Head::Built(&get())).await else {
            panic!("connected to a closed port");
        };
        assert_eq!(f.error.etype(), &ErrorType::ConnectRefused);
        assert!(f.connecting && !f.reused);
    }

    #[tokio::test]
    async fn a_pooled_connection_the_origin_dropped_fails_as_reused() {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = l.local_addr().expect("addr");
        let (c, s) = tokio::join!(TcpStream::connect(addr), l.accept());
        let (mut server, _) = s.expect("accept");
        pool::checkin(
            addr,
            Conn {
                stream: c.expect("connect"),
                wbuf: Vec::new(),
            },
            Duration::from_secs(60),
        );
        // The origin reads the request, then closes without answering (as one closing an
        // idle connection at the moment it is reused).
        let origin = tokio::spawn(async move {
            let mut buf = [0u8; 1024];
            let _ = tokio::io::AsyncReadExt::read(&mut server, &mut buf).await;
        });
        let Err(f) = send(&peer(addr), addr, Head::Built(&get())).await else {
            panic!("an answer from nowhere");
        };
        origin.await.expect("origin");
        assert!(f.reused && !f.connecting);
        assert_eq!(f.error.etype(), &ErrorType::ConnectionClosed);
    }

    #[test]
    fn tls_and_http2_peers_stay_with_pingora() {
        let addr: SocketAddr = "127.0.0.1:1".parse().expect("addr");
        assert_eq!(serves(&peer(addr)), Some(addr));
        let tls = HttpPeer::new(addr, true, "example.com".into());
        assert_eq!(serves(&tls), None);
        let mut h2 = peer(addr);
        h2.options.set_http_version(2, 2);
        assert_eq!(serves(&h2), None);
        let mut auto = peer(addr);
        auto.options.set_http_version(2, 1);
        assert_eq!(serves(&auto), None);
    }

    #[test]
    fn a_peer_with_any_socket_option_of_pingoras_connector_stays_with_pingora() {
        use pingora_core::connectors::l4::BindTo;
        use pingora_core::protocols::l4::ext::TcpKeepalive;
        let addr: SocketAddr = "127.0.0.1:1".parse().expect("addr");
        type Set = fn(&mut HttpPeer);
        let options: [(&str, Set); 8] = [
            ("bind_to", |p| p.options.bind_to = Some(BindTo::default())),
            ("total_connection_timeout", |p| {
                p.options.total_connection_timeout = Some(Duration::from_secs(1));
            }),
            ("tcp_keepalive", |p| {
                p.options.tcp_keepalive = Some(TcpKeepalive {
                    idle: Duration::from_secs(60),
                    interval: Duration::from_secs(5),
                    count: 5,
                    #[cfg(target_os = "linux")]
                    user_timeout: Duration::ZERO,
                });
            }),
            ("tcp_recv_buf", |p| p.options.tcp_recv_buf = Some(1 << 20)),
            ("dscp", |p| p.options.dscp = Some(46)),
            ("tcp_fast_open", |p| p.options.tcp_fast_open = true),
            ("allow_h1_response_invalid_content_length", |p| {
                p.options.allow_h1_response_invalid_content_length = true;
            }),
            ("an HTTP proxy", |p| {
                p.proxy = Some(pingora_core::upstreams::peer::Proxy {
                    next_hop: std::path::Path::new("/tmp/proxy.sock").into(),
                    host: "origin".into(),
                    port: 80,
                    headers: Default::default(),
                });
            }),
        ];
        for (what, set) in options {
            let mut p = peer(addr);
            set(&mut p);
            assert_eq!(serves(&p), None, "{what}");
        }
    }
}
