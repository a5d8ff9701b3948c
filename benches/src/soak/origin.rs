//! The soak's origins: child processes that log every request they receive, with the fault they
//! were in, to an append-only file that survives a `kill -9`, so POST errors can be checked
//! against what the origins themselves saw.
//!
//! `portico-origin` counts requests but cannot say which of them were POSTs or in what state it
//! received them, so the soak runs this small origin instead (the `soak origin` subcommand of
//! the soak binary). Faults, set over the control listener (`PUT /fault`: `none`, `hang`,
//! `503`): `hang` reads the request and never answers; when the hang ends, the hung
//! connections are closed without an answer (so every request that reached a hanging origin
//! failed); `503` answers everything, probes included, with 503. A crash is a real SIGKILL of
//! the process (its port then refuses connections) and a restart.

use anyhow::{Context, Result};
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// What an origin does wrong (a crash is a kill of the process, not a state).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fault {
    /// Healthy: 200 with the origin's name.
    None,
    /// Reads requests, never answers; closes them without an answer when the hang ends.
    Hang,
    /// Answers everything with 503.
    Status503,
}

impl Fault {
    /// The word used on the control listener and in the request log.
    pub fn word(self) -> &'static str {
        match self {
            Fault::None => "none",
            Fault::Hang => "hang",
            Fault::Status503 => "503",
        }
    }

    /// Parses [`Fault::word`].
    pub fn parse(s: &str) -> Option<Fault> {
        [Fault::None, Fault::Hang, Fault::Status503]
            .into_iter()
            .find(|f| f.word() == s.trim())
    }
}

/// Milliseconds since the Unix epoch (comparable across processes).
pub fn epoch_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

struct Shared {
    name: String,
    log: Mutex<File>,
    fault: watch::Sender<Fault>,
}

impl Shared {
    /// One line per request, written (one `write(2)`) before it is answered.
    fn record(&self, method: &Method, path: &str, fault: Fault) {
        let line = format!("{} {} {} {}\n", epoch_ms(), method, path, fault.word());
        let mut f = self.log.lock().unwrap_or_else(|e| e.into_inner());
        let _ = f.write_all(line.as_bytes());
    }
}

/// Runs one origin until killed: `listen` serves, `control` takes `PUT /fault`, every non-probe
/// request is appended to `log` as `EPOCH_MS METHOD PATH FAULT`.
pub async fn serve(
    name: String,
    listen: SocketAddr,
    control: SocketAddr,
    log: PathBuf,
) -> Result<()> {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .with_context(|| format!("cannot open {}", log.display()))?;
    let (fault, _) = watch::channel(Fault::None);
    let shared = Arc::new(Shared {
        name,
        log: Mutex::new(file),
        fault,
    });
    let main = TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let ctl = TcpListener::bind(control)
        .await
        .with_context(|| format!("cannot listen on {control}"))?;
    let s = shared.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = ctl.accept().await {
            let s = s.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| control_request(s.clone(), req));
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    println!(
        "soak origin {} listening on {listen} (control {control})",
        shared.name
    );
    loop {
        let (stream, _) = main.accept().await?;
        let _ = stream.set_nodelay(true);
        let s = shared.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| request(s.clone(), req));
            let _ = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

/// The error that makes hyper close a hung connection without an answer.
#[derive(Debug)]
struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("hung request dropped")
    }
}

impl std::error::Error for Dropped {}

async fn request(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Dropped> {
    let fault = *shared.fault.borrow();
    let probe = req.headers().contains_key("x-portico-health-probe");
    if !probe {
        let path = req.uri().path().to_string();
        shared.record(req.method(), &path, fault);
    }
    let mut body = req.into_body();
    let mut len = 0usize;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(f) => len += f.data_ref().map_or(0, |d| d.len()),
            Err(_) => return Err(Dropped),
        }
    }
    let status = match fault {
        Fault::None => StatusCode::OK,
        Fault::Status503 => StatusCode::SERVICE_UNAVAILABLE,
        Fault::Hang => {
            let mut rx = shared.fault.subscribe();
            while *rx.borrow_and_update() == Fault::Hang {
                if rx.changed().await.is_err() {
                    break;
                }
            }
            return Err(Dropped);
        }
    };
    let mut r = Response::new(Full::new(Bytes::from(format!("{}\n", shared.name))));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert("x-served-by", header(&shared.name));
    h.insert("x-body-length", http::HeaderValue::from(len));
    Ok(r)
}

fn header(s: &str) -> http::HeaderValue {
    http::HeaderValue::from_str(s).unwrap_or(http::HeaderValue::from_static("invalid"))
}

async fn control_request(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    let reply = |code: StatusCode, text: String| {
        let mut r = Response::new(Full::new(Bytes::from(text)));
        *r.status_mut() = code;
        Ok(r)
    };
    if req.method() != Method::PUT || req.uri().path() != "/fault" {
        return reply(
            StatusCode::NOT_FOUND,
            "PUT /fault: none, hang, 503\n".into(),
        );
    }
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return reply(StatusCode::BAD_REQUEST, format!("{e}\n")),
    };
    match Fault::parse(&String::from_utf8_lossy(&body)) {
        Some(f) => {
            shared.fault.send_replace(f);
            reply(StatusCode::OK, format!("{}\n", f.word()))
        }
        None => reply(
            StatusCode::BAD_REQUEST,
            "expected none, hang or 503\n".into(),
        ),
    }
}

/// One line of an origin's request log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logged {
    /// When it arrived, ms since the epoch.
    pub at_ms: u64,
    /// `GET`, `POST`, …
    pub method: String,
    /// The request id (from the path `/g/ID` or `/p/ID`), if the path carries one.
    pub id: Option<u64>,
    /// The origin's fault when it arrived.
    pub fault: Fault,
}

/// Parses a request log (lines `EPOCH_MS METHOD PATH FAULT`); malformed lines are skipped
/// (a kill can cut the last one).
pub fn parse_log(text: &str) -> Vec<Logged> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.split(' ');
            let at_ms = it.next()?.parse().ok()?;
            let method = it.next()?.to_string();
            let path = it.next()?;
            let fault = Fault::parse(it.next()?)?;
            let id = path
                .strip_prefix("/g/")
                .or_else(|| path.strip_prefix("/p/"))
                .and_then(|s| s.parse().ok());
            Some(Logged {
                at_ms,
                method,
                id,
                fault,
            })
        })
        .collect()
}

/// Every origin's log, by origin name.
pub fn read_logs(logs: &[(String, PathBuf)]) -> HashMap<String, Vec<Logged>> {
    logs.iter()
        .map(|(name, path)| {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            (name.clone(), parse_log(&text))
        })
        .collect()
}

/// Sets an origin's fault through its control listener.
pub async fn set_fault(control: SocketAddr, fault: Fault) -> Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::time::timeout(
        std::time::Duration::from_secs(2),
        tokio::net::TcpStream::connect(control),
    )
    .await
    .context("control connect timed out")??;
    let body = fault.word();
    let req = format!(
        "PUT /fault HTTP/1.1\r\nHost: control\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await?;
    let mut out = Vec::new();
    tokio::time::timeout(std::time::Duration::from_secs(2), s.read_to_end(&mut out))
        .await
        .context("control answer timed out")??;
    anyhow::ensure!(
        out.starts_with(b"HTTP/1.1 200"),
        "{control} refused fault {body}: {}",
        String::from_utf8_lossy(&out)
    );
    Ok(())
}

/// The path of origin `name`'s request log under `dir`.
pub fn log_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("requests-{name}.log"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_lines_round_trip_and_a_cut_line_is_skipped() {
        let text = "1700000000000 POST /p/17 503\n1700000000001 GET /g/18 none\n1700000000002 GET / hang\n1700000000003 PO";
        let v = parse_log(text);
        assert_eq!(v.len(), 3);
        assert_eq!(v[0].id, Some(17));
        assert_eq!(v[0].fault, Fault::Status503);
        assert_eq!(v[0].method, "POST");
        assert_eq!(v[1].fault, Fault::None);
        assert_eq!(v[2].id, None);
        assert_eq!(v[2].fault, Fault::Hang);
    }

    #[test]
    fn fault_words_parse() {
        for f in [Fault::None, Fault::Hang, Fault::Status503] {
            assert_eq!(Fault::parse(f.word()), Some(f));
        }
        assert_eq!(Fault::parse("explode"), None);
    }
}
