//! The runner's control listener (loopback HTTP): `POST /region/NAME/down` and `/up`, and `POST /bad-push`, used by `portico-sim region-down|region-up|bad-push` through the address in `WORK_DIR/control`.
//!
//! The listener only parses and queues; the runner's main loop executes each command on the
//! simulation and the answer goes back as the response body.

use anyhow::{Context, Result};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::thread::JoinHandle;
use std::time::Duration;

/// Offset of the control listener from `--base-port` (loopback, in both modes).
pub const PORT_OFFSET: u16 = 70;

/// How long a command may take before the client gives up (a region coming up waits for its
/// etcd member and node; each has a 20 s deadline).
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// What the control listener accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Take a region down: its edge nodes, origins and etcd member are SIGKILLed.
    RegionDown(String),
    /// Bring a region back: etcd member, origins, then nodes (from the store and their cache).
    RegionUp(String),
    /// Push a valid but wrong document with `portico config push` (default rollout): the
    /// canary's errors roll it back.
    BadPush,
}

impl Command {
    /// `POST /region/NAME/down|up`, `POST /bad-push`.
    fn parse(method: &str, path: &str) -> Option<Command> {
        if (method, path) == ("POST", "/bad-push") {
            return Some(Command::BadPush);
        }
        let rest = path.strip_prefix("/region/")?;
        let (name, what) = rest.split_once('/')?;
        match (method, what) {
            ("POST", "down") => Some(Command::RegionDown(name.to_string())),
            ("POST", "up") => Some(Command::RegionUp(name.to_string())),
            _ => None,
        }
    }

    /// The request path.
    pub fn path(&self) -> String {
        match self {
            Command::RegionDown(r) => format!("/region/{r}/down"),
            Command::RegionUp(r) => format!("/region/{r}/up"),
            Command::BadPush => "/bad-push".to_string(),
        }
    }
}

/// A command waiting for the main loop, with where its answer goes.
#[derive(Debug)]
pub struct Request {
    /// The command.
    pub command: Command,
    reply: Sender<Result<String, String>>,
}

impl Request {
    /// Sends the answer: what happened, or why it failed.
    pub fn answer(self, result: Result<String, String>) {
        let _ = self.reply.send(result);
    }
}

/// The control listener; stops when dropped.
pub struct ControlServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Commands, in arrival order.
    pub requests: Receiver<Request>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    file: Option<PathBuf>,
}

impl ControlServer {
    /// Listens on `addr` and, with `file`, writes the address there (removed on drop) for
    /// `portico-sim region-down|region-up`.
    pub fn start(addr: SocketAddr, file: Option<&Path>) -> Result<ControlServer> {
        let listener = TcpListener::bind(addr)
            .with_context(|| format!("the control listener cannot listen on {addr}"))?;
        let addr = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let (tx, requests) = channel();
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("sim-control".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        match listener.accept() {
                            Ok((conn, _)) => serve(conn, &tx),
                            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                                std::thread::sleep(Duration::from_millis(50));
                            }
                            Err(e) => {
                                log::warn!("control listener: {e}");
                                std::thread::sleep(Duration::from_millis(50));
                            }
                        }
                    }
                })?
        };
        if let Some(f) = file {
            std::fs::write(f, format!("{addr}\n"))
                .with_context(|| format!("cannot write {}", f.display()))?;
        }
        Ok(ControlServer {
            addr,
            requests,
            stop,
            thread: Some(thread),
            file: file.map(Path::to_path_buf),
        })
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if let Some(f) = &self.file {
            let _ = std::fs::remove_file(f);
        }
    }
}

/// One connection: read the request head, queue the command, write its answer.
fn serve(mut conn: TcpStream, queue: &Sender<Request>) {
    let _ = conn.set_nonblocking(false);
    let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 8192 {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&head);
    let mut first = text.lines().next().unwrap_or("").split_whitespace();
    let (method, path) = (first.next().unwrap_or(""), first.next().unwrap_or(""));
    let (code, body) = match Command::parse(method, path) {
        None => (
            404,
            "POST /region/NAME/down or POST /region/NAME/up\n".to_string(),
        ),
        Some(command) => {
            let (reply, answer) = channel();
            if queue.send(Request { command, reply }).is_err() {
                (503, "the simulation is stopping\n".to_string())
            } else {
                match answer.recv_timeout(COMMAND_TIMEOUT) {
                    Ok(Ok(text)) => (200, text),
                    Ok(Err(text)) => (409, text),
                    Err(_) => (503, "the simulation did not answer\n".to_string()),
                }
            }
        }
    };
    let reason = match code {
        200 => "OK",
        404 => "Not Found",
        409 => "Conflict",
        _ => "Service Unavailable",
    };
    let _ = write!(
        conn,
        "HTTP/1.1 {code} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

/// Where the runner of `work_dir` listens for commands (from `WORK_DIR/control`).
pub fn find(work_dir: &Path) -> Result<SocketAddr> {
    let f = work_dir.join("control");
    let text = std::fs::read_to_string(&f).with_context(|| {
        format!(
            "no simulation runs from {} ({} is missing): start one with  make run",
            work_dir.display(),
            f.display()
        )
    })?;
    text.trim()
        .parse()
        .with_context(|| format!("{}: not an address: {text:?}", f.display()))
}

/// Sends `command` to the runner at `addr`; its answer (what happened), or an error.
pub fn send(addr: SocketAddr, command: &Command) -> Result<String> {
    let (code, body) = crate::http::request(addr, "POST", &command.path(), "", COMMAND_TIMEOUT)
        .with_context(|| format!("the simulation's control listener {addr} does not answer"))?;
    anyhow::ensure!(code == 200, "{}", body.trim_end());
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse_from_their_paths() {
        for c in [
            Command::RegionDown("ap-south".into()),
            Command::RegionUp("us-east".into()),
            Command::BadPush,
        ] {
            assert_eq!(Command::parse("POST", &c.path()), Some(c));
        }
        assert_eq!(Command::parse("GET", "/region/a/down"), None);
        assert_eq!(Command::parse("POST", "/region/a/sideways"), None);
        assert_eq!(Command::parse("POST", "/regions"), None);
    }

    #[test]
    fn a_command_is_answered_by_whoever_reads_the_queue() {
        let dir = std::env::temp_dir().join(format!("portico-sim-control-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("control");
        let server = ControlServer::start("127.0.0.1:0".parse().unwrap(), Some(&file)).unwrap();
        assert_eq!(find(&dir).unwrap(), server.addr);
        let client = std::thread::spawn({
            let addr = server.addr;
            move || {
                (
                    send(addr, &Command::RegionDown("x".into())),
                    send(addr, &Command::RegionUp("y".into())),
                )
            }
        });
        let r = server
            .requests
            .recv_timeout(Duration::from_secs(5))
            .unwrap();
        assert_eq!(r.command, Command::RegionDown("x".into()));
        r.answer(Ok("x is down\n".into()));
        let r = server
            .requests
            .recv_timeout(Duration::from_secs(5))
            .unwrap();
        r.answer(Err("no region y\n".into()));
        let (down, up) = client.join().unwrap();
        assert_eq!(down.unwrap(), "x is down\n");
        assert_eq!(up.unwrap_err().to_string(), "no region y");
        drop(server);
        assert!(!file.exists(), "the address file goes with the listener");
        let _ = std::fs::remove_dir_all(dir);
    }
}
