//! The access log: one JSON object per line per request, written by a thread of its own
//! from a bounded queue. A full queue drops the line (counted), so a slow disk never blocks
//! or fails a request. SIGUSR1 reopens the file (logrotate); a reload may move the log.

use portico_core::config::AccessLogTarget;
use prometheus::IntCounter;
use serde::Serialize;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, TrySendError, sync_channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// Lines the queue holds before new ones are dropped.
pub const QUEUE_LINES: usize = 16 * 1024;

/// One request, as its access log line says it.
#[derive(Debug, Serialize)]
pub struct Entry<'a> {
    /// RFC 3339, UTC, milliseconds.
    pub ts: String,
    /// `X-Request-Id`.
    pub request_id: &'a str,
    /// Client IP.
    pub client: String,
    /// Request method.
    pub method: &'a str,
    /// Host the request was routed by (empty if none).
    pub host: &'a str,
    /// Path (without the query).
    pub path: &'a str,
    /// `HTTP/1.0`, `HTTP/1.1` or `HTTP/2`.
    pub protocol: &'static str,
    /// Whether the request arrived over TLS.
    pub tls: bool,
    /// The subject (RFC 4514) of the client's verified certificate; left out without one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_cert: Option<&'a str>,
    /// Status sent (0: none, the client went away).
    pub status: u16,
    /// Route name (empty: no route).
    pub route: &'a str,
    /// Pool name.
    pub pool: &'a str,
    /// Origin that answered (empty: none).
    pub origin: &'a str,
    /// Attempts made on origins.
    pub attempts: usize,
    /// From the request head to the end of the response.
    pub duration_ms: f64,
    /// Request body bytes read.
    pub bytes_in: usize,
    /// Response body bytes sent.
    pub bytes_out: usize,
    /// This node's region.
    pub region: &'a str,
    /// The rules that matched, `set/rule`, in evaluation order.
    pub rules: Vec<String>,
}

/// The `protocol` field for an HTTP version.
pub fn protocol(version: http::Version) -> &'static str {
    match version {
        http::Version::HTTP_09 => "HTTP/0.9",
        http::Version::HTTP_10 => "HTTP/1.0",
        http::Version::HTTP_2 => "HTTP/2",
        http::Version::HTTP_3 => "HTTP/3",
        _ => "HTTP/1.1",
    }
}

enum Message {
    Line(Vec<u8>),
    Target(AccessLogTarget),
    Reopen,
}

/// The node's access log. Cheap to share; lines go to the writer thread.
pub struct AccessLog {
    tx: SyncSender<Message>,
    dropped: IntCounter,
    /// Whether lines are wanted at all (the target is not `Off`).
    on: std::sync::atomic::AtomicBool,
    target: Mutex<AccessLogTarget>,
}

impl AccessLog {
    /// An access log writing to `target`, counting dropped lines in `dropped`.
    pub fn start(target: &AccessLogTarget, dropped: IntCounter) -> Arc<AccessLog> {
        let (tx, rx) = sync_channel(QUEUE_LINES);
        let log = Arc::new(Self::with_sender(tx, dropped));
        log.set_target(target);
        let spawned = std::thread::Builder::new()
            .name("portico-access-log".into())
            .spawn(move || writer(rx));
        if let Err(e) = spawned {
            log::error!("cannot start the access log writer ({e}): access log lines are dropped");
        }
        log
    }

    fn with_sender(tx: SyncSender<Message>, dropped: IntCounter) -> Self {
        Self {
            tx,
            dropped,
            on: std::sync::atomic::AtomicBool::new(false),
            target: Mutex::new(AccessLogTarget::Off),
        }
    }

    /// Whether a line would be written (build entries only then).
    pub fn is_on(&self) -> bool {
        self.on.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Points the log at `target` (a reload that changes `node.access_log`).
    pub fn set_target(&self, target: &AccessLogTarget) {
        let mut current = self.target.lock().unwrap_or_else(PoisonError::into_inner);
        if *current == *target {
            return;
        }
        *current = target.clone();
        self.on.store(
            *target != AccessLogTarget::Off,
            std::sync::atomic::Ordering::Relaxed,
        );
        // Control messages wait for room: they are rare and must not be lost.
        let _ = self.tx.send(Message::Target(target.clone()));
    }

    /// Reopens the file (SIGUSR1, after logrotate moved it).
    pub fn reopen(&self) {
        let _ = self.tx.send(Message::Reopen);
    }

    /// Queues one line; drops it (counted) when the queue is full.
    pub fn write(&self, entry: &Entry<'_>) {
        if !self.is_on() {
            return;
        }
        let mut line = match serde_json::to_vec(entry) {
            Ok(l) => l,
            Err(_) => return,
        };
        line.push(b'\n');
        match self.tx.try_send(Message::Line(line)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => self.dropped.inc(),
        }
    }
}

/// Where the writer writes now.
enum Sink {
    Off,
    Stdout(BufWriter<std::io::Stdout>),
    File(String, BufWriter<File>),
}

fn open(path: &str) -> Option<BufWriter<File>> {
    match OpenOptions::new().create(true).append(true).open(path) {
        Ok(f) => Some(BufWriter::with_capacity(64 * 1024, f)),
        Err(e) => {
            log::error!("cannot open the access log {path}: {e}; its lines are discarded");
            None
        }
    }
}

fn sink_for(target: &AccessLogTarget) -> Sink {
    match target {
        AccessLogTarget::Off => Sink::Off,
        AccessLogTarget::Stdout => Sink::Stdout(BufWriter::new(std::io::stdout())),
        AccessLogTarget::File(p) => match open(p) {
            Some(w) => Sink::File(p.clone(), w),
            None => Sink::Off,
        },
    }
}

impl Sink {
    fn write(&mut self, line: &[u8]) {
        let result = match self {
            Sink::Off => Ok(()),
            Sink::Stdout(w) => w.write_all(line),
            Sink::File(_, w) => w.write_all(line),
        };
        if let Err(e) = result {
            log::warn!("access log write failed: {e}");
        }
    }

    fn flush(&mut self) {
        let _ = match self {
            Sink::Off => Ok(()),
            Sink::Stdout(w) => w.flush(),
            Sink::File(_, w) => w.flush(),
        };
    }
}

/// How long the writer lets lines gather after writing a batch. Waking for every line cost
/// the proxy's core more than the writing itself (0.7 lines per wake-up with the writer on the
/// proxy's core); with a pause, a busy node writes a few hundred lines per wake-up, and a line
/// reaches the file at most this much later.
const GATHER: Duration = Duration::from_millis(20);

/// The writer thread: waits for a line, takes everything queued, writes and flushes it, then
/// pauses [`GATHER`] before looking again (an idle node's writer just waits).
fn writer(rx: Receiver<Message>) {
    let mut sink = Sink::Off;
    while let Ok(first) = rx.recv() {
        handle(&mut sink, first);
        loop {
            match rx.try_recv() {
                Ok(m) => handle(&mut sink, m),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    sink.flush();
                    return;
                }
            }
        }
        sink.flush();
        std::thread::sleep(GATHER);
    }
}

fn handle(sink: &mut Sink, message: Message) {
    match message {
        Message::Line(line) => sink.write(&line),
        Message::Target(target) => {
            sink.flush();
            *sink = sink_for(&target);
        }
        Message::Reopen => {
            sink.flush();
            if let Sink::File(path, _) = sink {
                let path = path.clone();
                log::info!("reopening the access log {path}");
                *sink = sink_for(&AccessLogTarget::File(path));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Entry<'static> {
        Entry {
            ts: "2026-12-01T00:00:00.000Z".into(),
            request_id: "abc",
            client: "127.0.0.1".into(),
            method: "GET",
            host: "example.com",
            path: "/\"quoted\"",
            protocol: "HTTP/1.1",
            tls: false,
            client_cert: None,
            status: 200,
            route: "r",
            pool: "p",
            origin: "a",
            attempts: 1,
            duration_ms: 1.5,
            bytes_in: 0,
            bytes_out: 2,
            region: "eu",
            rules: Vec::new(),
        }
    }

    #[test]
    fn a_full_queue_drops_lines_and_counts_them() {
        let dropped = IntCounter::new("d", "d").unwrap();
        let (tx, rx) = sync_channel(2);
        let log = AccessLog::with_sender(tx, dropped.clone());
        log.on.store(true, std::sync::atomic::Ordering::Relaxed);
        for _ in 0..5 {
            log.write(&entry());
        }
        assert_eq!(dropped.get(), 3, "two queued, three dropped, none blocked");
        let Ok(Message::Line(line)) = rx.try_recv() else {
            panic!("a line is queued");
        };
        let v: serde_json::Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(v["path"], "/\"quoted\"");
        assert_eq!(v["status"], 200);
        assert!(line.ends_with(b"\n"));
    }

    #[test]
    fn nothing_is_queued_while_off() {
        let dropped = IntCounter::new("d", "d").unwrap();
        let (tx, rx) = sync_channel(2);
        let log = AccessLog::with_sender(tx, dropped.clone());
        log.write(&entry());
        assert!(rx.try_recv().is_err());
        assert_eq!(dropped.get(), 0);
    }
}
