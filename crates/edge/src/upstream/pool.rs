//! Idle keep-alive connections to plain HTTP/1 origins, one pool per worker thread, with no
//! task per idle connection: a connection past its idle deadline, or one the origin closed
//! or wrote to while idle, is dropped when it is next looked at (sweeps go by the readiness
//! tokio cached; a checkout also peeks at the socket, one syscall, because the reactor may
//! not have polled it since bytes arrived, and those bytes would be read as the next
//! response).

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

/// Most idle connections one thread keeps; also the node's `upstream_keepalive_pool_size` for
/// Pingora's connector (`node::UPSTREAM_KEEPALIVE_POOL`, where the size is explained).
pub const MAX_IDLE: usize = 8192;
/// Largest request-head buffer kept with an idle connection (most heads are far smaller).
pub const KEEP_WBUF: usize = 4 * 1024;
/// How often, at most, a checkout or return also sweeps the other keys' expired connections.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// A connection and the buffers that travel with it.
pub struct Conn {
    /// The socket.
    pub stream: TcpStream,
    /// The request head is written from here (its capacity is reused).
    pub wbuf: Vec<u8>,
}

struct Idle {
    conn: Conn,
    deadline: Instant,
}

/// The idle connections of one thread, by origin address (a plain-TCP connection with no
/// bind address, proxy or socket options is interchangeable with any other to that address).
#[derive(Default)]
pub struct Pool {
    idle: HashMap<SocketAddr, Vec<Idle>>,
    count: usize,
    next_sweep: Option<Instant>,
}

thread_local! {
    static POOL: RefCell<Pool> = RefCell::new(Pool::default());
}

/// An idle connection to `key` from this thread's pool, if a live one is there.
pub fn checkout(key: SocketAddr) -> Option<Conn> {
    POOL.with(|p| p.borrow_mut().checkout(key, Instant::now()))
}

/// Keeps `conn` to `key` for reuse until `idle` has passed.
pub fn checkin(key: SocketAddr, conn: Conn, idle: Duration) {
    POOL.with(|p| p.borrow_mut().checkin(key, conn, idle, Instant::now()));
}

impl Pool {
    /// The most recently returned live connection to `key`; dead or expired ones found on
    /// the way are dropped.
    pub fn checkout(&mut self, key: SocketAddr, now: Instant) -> Option<Conn> {
        self.maybe_sweep(now);
        let list = self.idle.get_mut(&key)?;
        let mut found = None;
        while let Some(idle) = list.pop() {
            self.count -= 1;
            if idle.deadline > now && usable(&idle.conn.stream) && quiet(&idle.conn.stream) {
                found = Some(idle.conn);
                break;
            }
        }
        if list.is_empty() {
            self.idle.remove(&key);
        }
        found
    }

    /// Keeps `conn` (dropped instead when the pool is full), with its request buffer only
    /// when that stayed small: up to [`MAX_IDLE`] idle connections per thread each holding
    /// the largest head it carried (client headers up to `max_header_bytes`) add up.
    pub fn checkin(&mut self, key: SocketAddr, mut conn: Conn, idle: Duration, now: Instant) {
        self.maybe_sweep(now);
        if self.count >= MAX_IDLE {
            return;
        }
        if conn.wbuf.capacity() > KEEP_WBUF {
            conn.wbuf = Vec::new();
        }
        self.count += 1;
        self.idle.entry(key).or_default().push(Idle {
            conn,
            deadline: now + idle,
        });
    }

    /// Idle connections kept.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether no idle connection is kept.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    fn maybe_sweep(&mut self, now: Instant) {
        if self.next_sweep.is_some_and(|t| now < t) {
            return;
        }
        self.next_sweep = Some(now + SWEEP_EVERY);
        let mut count = 0;
        self.idle.retain(|_, list| {
            list.retain(|i| i.deadline > now && usable(&i.conn.stream));
            count += list.len();
            !list.is_empty()
        });
        self.count = count;
    }
}

/// Whether an idle connection can carry a request: not flagged readable by the reactor (the
/// common case, no syscall), or flagged but with nothing to read (a stale flag). Readable
/// with an end of file or bytes means the origin closed it or sent something unasked.
fn usable(stream: &TcpStream) -> bool {
    let mut cx = Context::from_waker(Waker::noop());
    match stream.poll_read_ready(&mut cx) {
        Poll::Pending => true,
        Poll::Ready(Err(_)) => false,
        Poll::Ready(Ok(())) => {
            let mut probe = [0u8; 1];
            matches!(stream.try_read(&mut probe), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
        }
    }
}

/// Whether the socket itself holds nothing to read and no end of file: a peek, so bytes the
/// reactor has not reported yet (a late body of a HEAD or 304 response, say) are seen.
fn quiet(stream: &TcpStream) -> bool {
    let mut probe = [std::mem::MaybeUninit::<u8>::uninit(); 1];
    matches!(
        socket2::SockRef::from(stream).peek(&mut probe),
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    async fn pair(l: &TcpListener) -> (Conn, TcpStream) {
        let addr = l.local_addr().expect("addr");
        let (c, s) = tokio::join!(TcpStream::connect(addr), l.accept());
        let conn = Conn {
            stream: c.expect("connect"),
            wbuf: Vec::new(),
        };
        (conn, s.expect("accept").0)
    }

    #[tokio::test]
    async fn reuses_the_latest_live_connection_and_drops_expired_ones() {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let key = l.local_addr().expect("addr");
        let mut pool = Pool::default();
        let now = Instant::now();
        let (a, _sa) = pair(&l).await;
        let (b, _sb) = pair(&l).await;
        let a_port = a.stream.local_addr().expect("a").port();
        let b_port = b.stream.local_addr().expect("b").port();
        pool.checkin(key, a, Duration::from_secs(60), now);
        pool.checkin(key, b, Duration::from_secs(60), now);
        assert_eq!(pool.len(), 2);
        let got = pool.checkout(key, now).expect("live");
        assert_eq!(got.stream.local_addr().expect("got").port(), b_port);
        let later = now + Duration::from_secs(61);
        assert!(
            pool.checkout(key, later).is_none(),
            "past its idle deadline"
        );
        assert_eq!(pool.len(), 0);
        let other: SocketAddr = "127.0.0.1:1".parse().expect("addr");
        pool.checkin(key, got, Duration::from_secs(60), now);
        assert!(pool.checkout(other, now).is_none(), "keyed by address");
        assert_ne!(a_port, b_port);
    }

    #[tokio::test]
    async fn a_connection_the_origin_closed_or_wrote_to_is_not_reused() {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let key = l.local_addr().expect("addr");
        for wrote in [false, true] {
            let mut pool = Pool::default();
            let (conn, mut server) = pair(&l).await;
            if wrote {
                server
                    .write_all(b"HTTP/1.1 200 OK\r\n\r\n")
                    .await
                    .expect("write");
            } else {
                drop(server);
            }
            // Wait until the reactor has seen it (a readiness wait, not a timed sleep).
            conn.stream.readable().await.expect("readable");
            pool.checkin(key, conn, Duration::from_secs(60), Instant::now());
            assert!(
                pool.checkout(key, Instant::now()).is_none(),
                "wrote: {wrote}"
            );
            assert_eq!(pool.len(), 0);
        }
    }

    #[tokio::test]
    async fn bytes_or_a_close_the_reactor_has_not_reported_yet_still_keep_a_connection_out() {
        // The origin writes (a late body of a 304, say) or closes, and the connection is
        // checked out at once, before this task yields: the reactor has not polled the
        // socket since, so only a look at the socket itself shows what is waiting there.
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let key = l.local_addr().expect("addr");
        for wrote in [true, false] {
            let mut pool = Pool::default();
            let (conn, server) = pair(&l).await;
            pool.checkin(key, conn, Duration::from_secs(60), Instant::now());
            let mut server = server.into_std().expect("std");
            if wrote {
                std::io::Write::write_all(
                    &mut server,
                    b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nevil",
                )
                .expect("write");
            } else {
                drop(server);
            }
            assert!(
                pool.checkout(key, Instant::now()).is_none(),
                "wrote: {wrote}"
            );
        }
    }

    #[tokio::test]
    async fn an_idle_connection_does_not_keep_a_large_request_buffer() {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let key = l.local_addr().expect("addr");
        let mut pool = Pool::default();
        let (mut conn, _s) = pair(&l).await;
        // The buffer a request with 32 KiB of headers grew.
        conn.wbuf.reserve(32 * 1024);
        pool.checkin(key, conn, Duration::from_secs(60), Instant::now());
        let conn = pool.checkout(key, Instant::now()).expect("live");
        assert!(
            conn.wbuf.capacity() <= KEEP_WBUF,
            "{} bytes kept",
            conn.wbuf.capacity()
        );
    }

    #[tokio::test]
    async fn a_full_pool_drops_what_is_returned() {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let key = l.local_addr().expect("addr");
        let mut pool = Pool {
            count: MAX_IDLE,
            ..Pool::default()
        };
        pool.next_sweep = Some(Instant::now() + Duration::from_secs(60));
        let (conn, _s) = pair(&l).await;
        pool.checkin(key, conn, Duration::from_secs(60), Instant::now());
        assert_eq!(pool.len(), MAX_IDLE);
        assert!(pool.checkout(key, Instant::now()).is_none());
    }
}
