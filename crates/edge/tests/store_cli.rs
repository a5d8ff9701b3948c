//! The `portico` binary with live configuration: SIGHUP reloads of `--config FILE`, and a
//! real etcd store (`--store`, `--cache`, `portico config push | rollout | promote | abort |
//! rollback | history | diff | get | status`).
//!
//! Every process (nodes, etcd members) is killed when its guard drops, even when a test
//! fails; every port is chosen at run time; every wait is a poll with a deadline.

use portico_core::config::fingerprint;
use portico_test_support::{etcd_in, free_addr, poll_blocking as poll};
use serde_json::Value;
use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_portico");

/// How long a node may take to start serving.
const START: Duration = Duration::from_secs(15);

/// A tiny origin: answers every request (HEAD probes included) with 200 and
/// `x-served-by: NAME`, then closes the connection. Runs until the test process ends.
fn origin(name: &str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let name = name.to_string();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            let name = name.clone();
            std::thread::spawn(move || answer(conn, &name));
        }
    });
    addr
}

fn answer(mut conn: TcpStream, name: &str) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let body = format!("served by {name}\n");
    let mut reply = format!(
        "HTTP/1.1 200 OK\r\nx-served-by: {name}\r\ncontent-type: text/plain\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    if !head.starts_with(b"HEAD ") {
        reply.push_str(&body);
    }
    let _ = conn.write_all(reply.as_bytes());
}

/// A response: status, lower-cased headers, body.
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// `GET path` with `Connection: close`; `None` when nothing (complete) answered.
fn http_get(addr: SocketAddr, path: &str) -> Option<Reply> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: test.example\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n")?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut reply = Reply {
        status,
        headers,
        body: body.to_string(),
    };
    if reply
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        reply.body = dechunk(&reply.body)?;
    }
    Some(reply)
}

fn dechunk(mut rest: &str) -> Option<String> {
    let mut out = String::new();
    loop {
        let (size, after) = rest.split_once("\r\n")?;
        let size = usize::from_str_radix(size.split(';').next()?.trim(), 16).ok()?;
        if size == 0 {
            return Some(out);
        }
        out.push_str(after.get(..size)?);
        rest = after.get(size + 2..)?;
    }
}

/// The node's `/status` document, once it answers.
fn status(admin: SocketAddr) -> Option<Value> {
    let reply = http_get(admin, "/status")?;
    if reply.status != 200 {
        return None;
    }
    serde_json::from_str(&reply.body).ok()
}

fn config_version(admin: SocketAddr) -> Option<String> {
    status(admin)?["config_version"]
        .as_str()
        .map(str::to_string)
}

/// The `x-served-by` of a 200 answer through the proxy.
fn served_by(listen: SocketAddr) -> Option<String> {
    let reply = http_get(listen, "/")?;
    (reply.status == 200)
        .then(|| reply.header("x-served-by").map(str::to_string))
        .flatten()
}

/// A running `portico` process, stderr kept in a file; killed when dropped.
struct Proc {
    child: Child,
    log: PathBuf,
    what: String,
}

impl Proc {
    fn spawn(args: &[&str], log: PathBuf) -> Proc {
        let err = File::create(&log).unwrap();
        let child = Command::new(BIN)
            .args(args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .expect("start portico");
        Proc {
            child,
            log,
            what: format!("portico {}", args.join(" ")),
        }
    }

    /// Like [`Proc::spawn`], stdout kept in `out`.
    fn spawn_out(args: &[&str], out: PathBuf, log: PathBuf) -> Proc {
        let err = File::create(&log).unwrap();
        let child = Command::new(BIN)
            .args(args)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(File::create(&out).unwrap())
            .stderr(err)
            .spawn()
            .expect("start portico");
        Proc {
            child,
            log,
            what: format!("portico {}", args.join(" ")),
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(signal)
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {signal} {} failed", self.pid());
    }

    fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Waits for the process to exit, for at most `timeout`.
    fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not exit within {timeout:?}; its log:\n{}",
                self.what,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until the process has a handler for SIGHUP (so that the signal reloads rather
    /// than kills it): bit 0 of `SigCgt` in `/proc/PID/status`.
    fn wait_sighup_handler(&mut self) {
        let path = format!("/proc/{}/status", self.pid());
        poll("a SIGHUP handler in the node", START, || {
            let text = std::fs::read_to_string(&path).ok()?;
            let mask = text.lines().find_map(|l| l.strip_prefix("SigCgt:"))?;
            let mask = u64::from_str_radix(mask.trim(), 16).ok()?;
            (mask & 1 == 1).then_some(())
        });
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `portico ARGS` to completion: exit code, stdout, stderr.
fn cli(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .expect("run portico");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A config with one pool `api` of one origin `a` at `origin`, and one route `route`.
/// `node` is the inside of the `node` object (may be empty).
fn doc(node: &str, origin: SocketAddr, route: &str) -> String {
    format!(
        r#"{{
  "node": {{ {node} }},
  "pools": [{{"name": "api",
              "health_probe": {{"interval_ms": 500, "timeout_ms": 400}},
              "origins": [{{"name": "a", "address": "{origin}"}}]}}],
  "routes": [{{"name": "{route}", "hosts": ["*"], "paths": ["/*"], "pool": "api"}}]
}}
"#
    )
}

/// The version printed by `portico config push`: `pushed version V to ...`.
fn pushed_version(stdout: &str) -> String {
    let v = stdout
        .split_whitespace()
        .find(|w| w.len() == 16 && w.chars().all(|c| c.is_ascii_hexdigit()))
        .unwrap_or_else(|| panic!("no 16-hex-digit version in {stdout:?}"))
        .to_string();
    assert!(stdout.starts_with("pushed version "), "{stdout}");
    v
}

fn reload_errors(last: &Value) -> Vec<(String, String)> {
    last["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .map(|e| {
                    (
                        e["path"].as_str().unwrap_or_default().to_string(),
                        e["message"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn sighup_reloads_the_file_and_an_invalid_file_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let backend = origin("o1");
    let (listen, admin) = (free_addr(), free_addr());
    let node = format!(r#""listen": "{listen}", "admin_listen": "{admin}""#);
    let file = dir.path().join("portico.json");
    let first = doc(&node, backend, "r1");
    write(&file, &first);
    let mut p = Proc::spawn(&["--config", s(&file)], dir.path().join("node.log"));

    let v1 = poll("/status", START, || config_version(admin));
    assert_eq!(v1, fingerprint(&first));
    let st = status(admin).unwrap();
    assert_eq!(st["config_source"], format!("file:{}", file.display()));
    assert_eq!(st["routes"][0]["name"], "r1");
    poll("a 200 through the proxy", START, || served_by(listen));
    p.wait_sighup_handler();

    // A valid change: applied, a new version.
    let second = doc(&node, backend, "r2");
    write(&file, &second);
    p.signal("-HUP");
    let st = poll("the reload from the file", Duration::from_secs(10), || {
        let st = status(admin)?;
        (st["config_version"] != v1.as_str()).then_some(st)
    });
    let v2 = fingerprint(&second);
    assert_eq!(st["config_version"], v2.as_str(), "{st:#}");
    assert_eq!(st["last_reload"]["source"], "file", "{st:#}");
    assert_eq!(st["last_reload"]["result"], "applied", "{st:#}");
    assert_eq!(st["routes"][0]["name"], "r2", "{st:#}");
    assert_eq!(served_by(listen).as_deref(), Some("o1"));

    // An unknown key: rejected, nothing changes, the node keeps serving.
    let bad = second.replacen(r#""name": "api","#, r#""name": "api", "bogus": 1,"#, 1);
    assert_ne!(bad, second);
    let check_file = dir.path().join("bad.json");
    write(&check_file, &bad);
    let (code, _, check_err) = cli(&["--config", s(&check_file), "--check"]);
    assert_eq!(code, 1, "{check_err}");
    write(&file, &bad);
    p.signal("-HUP");
    let st = poll("the rejected reload", Duration::from_secs(10), || {
        let st = status(admin)?;
        (st["last_reload"]["result"] == "rejected").then_some(st)
    });
    let errors = reload_errors(&st["last_reload"]);
    assert!(
        errors.iter().any(|(path, _)| path == "pools[0].bogus"),
        "{st:#}"
    );
    assert_eq!(st["last_reload"]["source"], "file", "{st:#}");
    assert_eq!(st["config_version"], v2.as_str(), "{st:#}");
    assert!(p.is_running(), "the node died on an invalid file");
    assert_eq!(served_by(listen).as_deref(), Some("o1"));
    let log = p.log();
    for line in check_err.lines() {
        assert!(
            log.lines().any(|l| l.ends_with(line)),
            "the log lacks the --check line {line:?}:\n{log}"
        );
    }
    assert!(log.lines().any(|l| l.contains("pools[0].bogus: ")), "{log}");

    // node.threads needs a restart: rejected at that path.
    let threads = doc(&format!(r#"{node}, "threads": 2"#), backend, "r2");
    write(&file, &threads);
    p.signal("-HUP");
    let threads_version = fingerprint(&threads);
    let st = poll(
        "the rejected node.threads reload",
        Duration::from_secs(10),
        || {
            let st = status(admin)?;
            (st["last_reload"]["version"] == threads_version.as_str()).then_some(st)
        },
    );
    assert_eq!(st["last_reload"]["result"], "rejected", "{st:#}");
    let errors = reload_errors(&st["last_reload"]);
    assert!(
        errors
            .iter()
            .any(|(path, message)| path == "node.threads" && message.contains("restart")),
        "{st:#}"
    );
    assert_eq!(st["config_version"], v2.as_str(), "{st:#}");
    assert!(p.is_running(), "the node died on a node.threads change");
    assert_eq!(served_by(listen).as_deref(), Some("o1"));
    let log = p.log();
    assert!(log.lines().any(|l| l.contains("node.threads: ")), "{log}");
}

#[test]
fn config_push_get_and_status_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let etcd = etcd_in(1, &dir.path().join("etcd"));
    let url = etcd.url("portico-cli").to_string();
    let backend = origin("first");

    // Nothing stored, no node registered.
    let (code, out, err) = cli(&["config", "status", "--store", &url]);
    assert_eq!(code, 3, "stdout {out}\nstderr {err}");

    // An invalid document: every error by path, nothing written.
    let bad = dir.path().join("bad.json");
    write(
        &bad,
        &doc("", backend, "r").replace(&backend.to_string(), "nowhere"),
    );
    let (code, out, err) = cli(&["config", "push", s(&bad), "--store", &url]);
    assert_eq!(code, 1, "stdout {out}\nstderr {err}");
    assert!(err.contains("pools[0].origins[0].address: "), "{err}");
    let (code, out, err) = cli(&["config", "get", "--store", &url]);
    assert_eq!(code, 1, "nothing is stored: stdout {out}\nstderr {err}");

    // A valid document.
    let first_text = doc("", backend, "r1");
    let first = dir.path().join("first.json");
    write(&first, &first_text);
    let (code, out, err) = cli(&["config", "push", s(&first), "--store", &url]);
    assert_eq!(code, 0, "stdout {out}\nstderr {err}");
    let v1 = pushed_version(&out);
    assert_eq!(v1, fingerprint(&first_text));
    let (code, out, err) = cli(&["config", "get", "--store", &url]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim_end(), first_text.trim_end());

    // Compare-and-swap.
    let second_text = doc("", backend, "r2");
    let second = dir.path().join("second.json");
    write(&second, &second_text);
    let (code, out, err) = cli(&[
        "config",
        "push",
        s(&second),
        "--if-version",
        "0000000000000000",
        "--store",
        &url,
    ]);
    assert_eq!(code, 1, "stdout {out}\nstderr {err}");
    assert!(err.contains("compare-and-swap lost"), "{err}");
    assert!(err.contains(&v1), "the stored version is named: {err}");
    let (_, out, _) = cli(&["config", "get", "--store", &url]);
    assert_eq!(out.trim_end(), first_text.trim_end(), "nothing was written");
    let (code, out, err) = cli(&[
        "config",
        "push",
        s(&second),
        "--if-version",
        &v1,
        "--store",
        &url,
    ]);
    assert_eq!(code, 0, "stdout {out}\nstderr {err}");
    let v2 = pushed_version(&out);
    assert_eq!(v2, fingerprint(&second_text));

    // A node following the store.
    let (listen, admin) = (free_addr(), free_addr());
    let cache = dir.path().join("cache.json");
    let (listen_s, admin_s) = (listen.to_string(), admin.to_string());
    let _node = Proc::spawn(
        &[
            "--store",
            &url,
            "--name",
            "n1",
            "--cache",
            s(&cache),
            "--listen",
            &listen_s,
            "--admin-listen",
            &admin_s,
        ],
        dir.path().join("n1.log"),
    );
    let (code, out, err) = cli(&["config", "status", "--wait", "15", "--store", &url]);
    assert_eq!(code, 0, "stdout {out}\nstderr {err}");
    let line = out
        .lines()
        .find(|l| l.split_whitespace().next() == Some("n1"))
        .unwrap_or_else(|| panic!("no line for n1: {out}"));
    assert!(line.contains(&v2), "{line}");
    assert_eq!(config_version(admin).as_deref(), Some(v2.as_str()));
    assert_eq!(served_by(listen).as_deref(), Some("first"));

    // A new origin address: a new version, which the node applies.
    let other = origin("second");
    let third_text = doc("", other, "r2");
    let third = dir.path().join("third.json");
    write(&third, &third_text);
    // Every node at once (SPEC part 3: still gated while it lasts).
    let (code, out, err) = cli(&[
        "config",
        "push",
        s(&third),
        "--waves",
        "rest",
        "--bake",
        "0",
        "--min-requests",
        "0",
        "--store",
        &url,
    ]);
    assert_eq!(code, 0, "stdout {out}\nstderr {err}");
    let v3 = pushed_version(&out);
    assert_ne!(v3, v2);
    assert!(out.contains("wave 1  rest") && out.contains("n1"), "{out}");
    finish_rollout(&url);
    let (code, out, err) = cli(&["config", "status", "--wait", "15", "--store", &url]);
    assert_eq!(code, 0, "stdout {out}\nstderr {err}");
    assert!(
        out.lines()
            .any(|l| l.split_whitespace().next() == Some("n1") && l.contains(&v3)),
        "{out}"
    );
    let st = status(admin).expect("/status");
    assert_eq!(st["config_version"], v3.as_str(), "{st:#}");
    assert_eq!(st["last_reload"]["source"], "store", "{st:#}");
    assert_eq!(st["last_reload"]["result"], "applied", "{st:#}");
    poll("the new origin to serve", Duration::from_secs(10), || {
        (served_by(listen)? == "second").then_some(())
    });

    // A store that does not answer.
    let closed = free_addr();
    let closed_url = format!("etcd://{closed}/portico-cli");
    let (code, out, err) = cli(&["config", "status", "--store", &closed_url]);
    assert_eq!(code, 1, "stdout {out}\nstderr {err}");
    assert!(err.contains(&closed.to_string()), "{err}");
}

#[test]
fn a_store_node_starts_from_its_cache_when_etcd_is_down_and_exits_1_with_neither() {
    let dir = tempfile::tempdir().unwrap();
    let mut etcd = etcd_in(1, &dir.path().join("etcd"));
    let url = etcd.url("portico-cache").to_string();
    let backend = origin("cached");
    let first_text = doc(r#""region": "eu-west""#, backend, "r1");
    let first = dir.path().join("first.json");
    write(&first, &first_text);
    let (code, out, err) = cli(&["config", "push", s(&first), "--store", &url]);
    assert_eq!(code, 0, "stdout {out}\nstderr {err}");
    let v1 = pushed_version(&out);

    let cache = dir.path().join("cache.json");
    let node_args = |listen: &str, admin: &str| -> Vec<String> {
        [
            "--store",
            &url,
            "--name",
            "n3",
            "--cache",
            s(&cache),
            "--listen",
            listen,
            "--admin-listen",
            admin,
        ]
        .iter()
        .map(|a| a.to_string())
        .collect()
    };
    let spawn = |args: &[String], log: &str| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Proc::spawn(&args, dir.path().join(log))
    };

    // With the store up: the node starts from it and caches the document.
    let (listen, admin) = (free_addr(), free_addr());
    let mut first_node = spawn(
        &node_args(&listen.to_string(), &admin.to_string()),
        "first.log",
    );
    assert_eq!(
        poll("/status", START, || config_version(admin)),
        v1,
        "{}",
        first_node.log()
    );
    poll("the cache", START, || {
        let cached = std::fs::read_to_string(&cache).ok()?;
        (cached == first_text).then_some(())
    });
    first_node.signal("-TERM");
    let exit = first_node.wait_exit(Duration::from_secs(15));
    assert!(exit.success(), "{exit:?}\n{}", first_node.log());

    // The store down: the node starts from its cache.
    etcd.stop_member(0);
    let (listen, admin) = (free_addr(), free_addr());
    let from_cache = spawn(
        &node_args(&listen.to_string(), &admin.to_string()),
        "cached.log",
    );
    assert_eq!(
        poll("a 200 through the proxy", Duration::from_secs(20), || {
            served_by(listen)
        }),
        "cached",
        "{}",
        from_cache.log()
    );
    let st = status(admin).expect("/status");
    assert_eq!(st["started_from_cache"], true, "{st:#}");
    assert_eq!(st["config_version"], v1.as_str(), "{st:#}");
    let source = st["config_source"].as_str().unwrap_or_default();
    assert!(source.starts_with("etcd:"), "{st:#}");
    assert!(
        from_cache.log().contains("starting from the cache"),
        "{}",
        from_cache.log()
    );

    // Neither store nor cache: exit 1, naming both.
    let mut lost = Proc::spawn(
        &[
            "--store",
            &url,
            "--name",
            "n4",
            "--listen",
            &free_addr().to_string(),
            "--admin-listen",
            &free_addr().to_string(),
        ],
        dir.path().join("lost.log"),
    );
    let exit = lost.wait_exit(Duration::from_secs(15));
    let err = lost.log();
    assert_eq!(exit.code(), Some(1), "{err}");
    assert!(err.contains(&url), "the store is named: {err}");
    assert!(err.contains("cache"), "the cache is named: {err}");
    assert!(!err.contains("panicked"), "{err}");

    // The store back: a new version reaches the node started from its cache.
    etcd.start_member(0).expect("restart etcd");
    let other = origin("fresh");
    let second_text = doc(r#""region": "eu-west""#, other, "r1");
    let second = dir.path().join("second.json");
    write(&second, &second_text);
    let v2 = poll(
        "a push to the restarted store",
        Duration::from_secs(20),
        || {
            let (code, out, _) = cli(&[
                "config",
                "push",
                s(&second),
                "--waves",
                "rest",
                "--bake",
                "0",
                "--min-requests",
                "0",
                "--store",
                &url,
            ]);
            (code == 0).then(|| pushed_version(&out))
        },
    );
    assert_ne!(v2, v1);
    finish_rollout(&url);
    poll(
        "the node to apply the new version",
        Duration::from_secs(30),
        || (config_version(admin)? == v2).then_some(()),
    );
    poll("the new origin to serve", Duration::from_secs(10), || {
        (served_by(listen)? == "fresh").then_some(())
    });
    poll(
        "the cache to hold the new version",
        Duration::from_secs(10),
        || {
            let cached = std::fs::read_to_string(&cache).ok()?;
            (cached == second_text).then_some(())
        },
    );
    drop(from_cache);
}

/// Ends the rollout a `--waves rest --bake 0 --min-requests 0` push started: the nodes'
/// conductor promotes it once every node runs it; where none did within 10 s (a build whose
/// nodes do not conduct), it is promoted by hand, as an operator would.
fn finish_rollout(url: &str) {
    let (code, out, err) = cli(&["config", "rollout", "--wait", "10", "--store", url]);
    if code == 3 {
        let (code, out, err) = cli(&["config", "promote", "--store", url]);
        assert!(
            code == 0 || err.contains("is over (promoted)"),
            "stdout {out}\nstderr {err}"
        );
    } else {
        assert_eq!(code, 0, "stdout {out}\nstderr {err}");
    }
    let (code, out, err) = cli(&["config", "rollout", "--store", url]);
    assert_eq!(code, 0, "promoted: stdout {out}\nstderr {err}");
}

/// A registration like a node's, kept by `portico_store::register` on `rt` until the sender
/// is dropped (lease revoked) or the task aborted (lease left to expire).
struct FakeNode {
    _records: tokio::sync::watch::Sender<portico_store::NodeStatus>,
    task: tokio::task::JoinHandle<()>,
}

fn fake_node(
    rt: &tokio::runtime::Runtime,
    url: &str,
    name: &str,
    region: &str,
    version: &str,
) -> FakeNode {
    let status = portico_store::NodeStatus::new(portico_store::NodeRecord {
        name: name.into(),
        region: region.into(),
        version: version.into(),
        healthy: true,
        admin: "http://127.0.0.1:1".into(),
        updated_at: portico_store::now_rfc3339(),
    });
    let (tx, rx) = tokio::sync::watch::channel(status);
    let url: portico_store::StoreUrl = url.parse().unwrap();
    let task = {
        let _guard = rt.enter();
        portico_store::register(url, name.into(), Duration::from_secs(10), rx)
    };
    FakeNode { _records: tx, task }
}

/// The line of `config status` (or `config rollout`) for `node`.
fn node_line<'a>(out: &'a str, node: &str) -> Option<&'a str> {
    out.lines()
        .find(|l| l.split_whitespace().next() == Some(node))
}

/// Runs `portico ARGS` and checks the exit code and that stderr is at most `lines` lines,
/// none a panic; returns stdout and stderr.
fn expect(args: &[&str], code: i32, lines: usize) -> (String, String) {
    let (got, out, err) = cli(args);
    assert_eq!(got, code, "{args:?}\nstdout {out}\nstderr {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        err.lines().count() <= lines,
        "{args:?}: more than {lines} lines on stderr:\n{err}"
    );
    (out, err)
}

#[test]
fn rollout_commands_happy_paths_refusals_and_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let etcd = etcd_in(1, &dir.path().join("etcd"));
    let url = etcd.url("portico-rollout").to_string();
    let backend = origin("o");
    let st = ["--store", url.as_str()];
    let with = |args: &[&str]| -> Vec<String> {
        args.iter()
            .chain(st.iter())
            .map(|a| a.to_string())
            .collect()
    };
    let run = |args: &[&str], code: i32| -> (String, String) {
        let all = with(args);
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        expect(&all, code, 1)
    };
    let file = |name: &str, route: &str| -> (PathBuf, String) {
        let text = doc("", backend, route);
        let path = dir.path().join(name);
        write(&path, &text);
        (path, text)
    };

    // An empty store.
    let (out, _) = run(&["config", "rollout"], 0);
    assert!(out.contains("none"), "{out}");
    let (out, _) = run(&["config", "history"], 0);
    assert!(out.contains("no version"), "{out}");
    let (_, err) = run(&["config", "diff"], 1);
    assert!(err.contains("no stable config"), "{err}");
    let (_, err) = run(&["config", "rollback"], 1);
    assert!(err.contains("no earlier promoted version"), "{err}");

    // No node registered: each push is stable at once.
    let (f1, t1) = file("v1.json", "r1");
    let (out, _) = run(
        &[
            "config",
            "push",
            s(&f1),
            "--message",
            "first",
            "--author",
            "alice",
        ],
        0,
    );
    let v1 = pushed_version(&out);
    assert!(out.contains("promoted at once"), "{out}");
    let (f2, t2) = file("v2.json", "r2");
    let (out, _) = run(&["config", "push", s(&f2), "--message", "second"], 0);
    let v2 = pushed_version(&out);
    let (out, _) = run(&["config", "get"], 0);
    assert_eq!(out.trim_end(), t2.trim_end());
    let (out, _) = run(&["config", "rollout"], 0);
    assert!(out.contains(&format!("rollout of {v2}")), "{out}");

    // History: newest first, with author, outcome and message.
    let (out, _) = run(&["config", "history"], 0);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(
        lines[0].starts_with(&v2) && lines[0].ends_with("second"),
        "{out}"
    );
    assert!(lines[0].contains("promoted"), "{out}");
    assert!(
        lines[1].starts_with(&v1) && lines[1].contains("alice"),
        "{out}"
    );
    assert!(lines[1].ends_with("first"), "{out}");
    let (out, _) = run(&["config", "history", "--limit", "1"], 0);
    assert_eq!(out.lines().count(), 1, "{out}");

    // Diff: the previous version → stable by default; one line per path (routes are matched
    // by name: a renamed route is one removed and one added).
    let (out, _) = run(&["config", "diff"], 0);
    let route =
        |name: &str| format!(r#"{{"name":"{name}","hosts":["*"],"paths":["/*"],"pool":"api"}}"#);
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        vec![
            format!("{v1} -> {v2}: 2 changes"),
            format!("- routes[0]: {}", route("r1")),
            format!("+ routes[0]: {}", route("r2")),
        ],
        "{out}"
    );
    let (out, _) = run(&["config", "diff", &v2, &v1], 0);
    assert!(
        out.contains(&format!("+ routes[0]: {}", route("r1"))),
        "{out}"
    );
    let (_, err) = run(&["config", "diff", "0123456789abcdef"], 1);
    assert!(err.contains("no version 0123456789abcdef"), "{err}");

    // Get a version.
    let (out, _) = run(&["config", "get", "--version", &v1], 0);
    assert_eq!(out.trim_end(), t1.trim_end());
    let (_, err) = run(&["config", "get", "--version", "0123456789abcdef"], 1);
    assert!(err.contains("no version 0123456789abcdef"), "{err}");

    // Rollback to a promoted version, then back by default.
    let (out, _) = run(&["config", "rollback", &v1], 0);
    assert!(
        out.contains(&format!("version {v1} is the stable version again")),
        "{out}"
    );
    let (out, _) = run(&["config", "get"], 0);
    assert_eq!(out.trim_end(), t1.trim_end());
    let (out, _) = run(&["config", "rollback"], 0);
    assert!(
        out.contains(&format!("version {v2} is the stable version again")),
        "{out}"
    );
    let (_, err) = run(&["config", "rollback", "0123456789abcdef"], 1);
    assert!(err.contains("no version 0123456789abcdef"), "{err}");

    // Two nodes register: a push rolls out in waves.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _eu = fake_node(&rt, &url, "eu-a", "eu", &v2);
    let us = fake_node(&rt, &url, "us-a", "us", &v2);
    poll("both registrations", Duration::from_secs(10), || {
        let (_, out, _) = cli(&with(&["config", "status"])
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>());
        (node_line(&out, "eu-a").is_some() && node_line(&out, "us-a").is_some()).then_some(())
    });
    let (out, _) = run(&["config", "status"], 0);
    assert!(out.contains("rollout of"), "the rollout line: {out}");
    let eu = node_line(&out, "eu-a").unwrap();
    assert!(eu.contains(" ago") && eu.contains("yes"), "{eu}");

    let (f3, t3) = file("v3.json", "r3");
    let (out, _) = run(&["config", "push", s(&f3), "--bake", "30"], 0);
    let v3 = pushed_version(&out);
    for want in [
        "plan:",
        "wave 1  node:eu-a",
        "wave 3  rest",
        "us-a",
        "bake 30 s",
    ] {
        assert!(out.contains(want), "{want:?} not in {out}");
    }
    let (out, _) = run(&["config", "get"], 0);
    assert_eq!(
        out.trim_end(),
        t2.trim_end(),
        "config stays stable while it rolls out"
    );
    let (out, _) = run(&["config", "rollout"], 3);
    for want in [
        "in progress, wave 1 (node:eu-a) of 3",
        "wave 1 (node:eu-a) started: eu-a",
        "not started (would take us-a)",
        "verdicts:",
    ] {
        assert!(out.contains(want), "{want:?} not in {out}");
    }
    assert!(
        out.lines()
            .any(|l| l.trim_start().starts_with("eu-a") && l.contains(&v2)),
        "eu-a's line: {out}"
    );
    let (out, _) = run(&["config", "status"], 0);
    assert!(out.contains(&format!("rollout of {v3}")), "{out}");
    // Diff while it lasts: stable → target.
    let (out, _) = run(&["config", "diff"], 0);
    assert!(
        out.starts_with(&format!("{v2} -> {v3}: 2 changes")),
        "{out}"
    );

    // Refusals while it lasts: another push (named), a rollback.
    let (f4, _) = file("v4.json", "r4");
    let (_, err) = run(&["config", "push", s(&f4)], 1);
    assert!(
        err.contains("rollout is in progress") && err.contains(&v3),
        "{err}"
    );
    let (out, _) = run(&["config", "history"], 0);
    assert!(
        !out.contains(&fingerprint(&doc("", backend, "r4"))),
        "nothing written: {out}"
    );
    let (_, err) = run(&["config", "rollback", &v1], 1);
    assert!(err.contains("rollout is in progress"), "{err}");

    // Abort: rolled back, exit 4; its version cannot be rolled back to.
    let (out, _) = run(&["config", "abort", "--author", "bob"], 0);
    assert!(out.contains("aborted by bob"), "{out}");
    let (out, _) = run(&["config", "rollout"], 4);
    assert!(
        out.contains(": aborted") && out.contains("aborted by bob"),
        "{out}"
    );
    let (_, err) = run(&["config", "abort"], 1);
    assert!(err.contains("is over (aborted)"), "{err}");
    let (_, err) = run(&["config", "rollback", &v3], 1);
    assert!(err.contains("only a promoted version"), "{err}");
    let (out, _) = run(&["config", "history"], 0);
    assert!(
        node_line(&out, &v3).is_some_and(|l| l.contains("aborted")),
        "{out}"
    );

    // Pushed again (after an abort it may be), promoted by hand wave by wave.
    let (out, _) = run(&["config", "push", s(&f3)], 0);
    assert_eq!(pushed_version(&out), v3);
    let (out, _) = run(&["config", "promote", "--author", "carol"], 0);
    for want in [
        "wave 1 (node:eu-a) passed: promoted by carol",
        "wave 2 (region:eu) skipped: no node",
        "wave 3 (rest) started: us-a",
    ] {
        assert!(out.contains(want), "{want:?} not in {out}");
    }
    let (out, _) = run(&["config", "promote"], 0);
    assert!(
        out.contains(&format!("promoted: {v3} is the stable version")),
        "{out}"
    );
    let (out, _) = run(&["config", "rollout"], 0);
    assert!(out.contains(": promoted"), "{out}");
    let (out, _) = run(&["config", "get"], 0);
    assert_eq!(out.trim_end(), t3.trim_end());
    let (_, err) = run(&["config", "promote"], 1);
    assert!(err.contains("is over (promoted)"), "{err}");

    // --wait follows a push to its end: 4 when aborted, 0 when promoted.
    let follow = |file: &Path| -> Proc {
        let args = with(&["config", "push", s(file), "--wait"]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Proc::spawn_out(
            &args,
            dir.path().join("wait.out"),
            dir.path().join("wait.log"),
        )
    };
    let started = |v: &str| {
        poll("the rollout to start", Duration::from_secs(10), || {
            let (code, out, _) = cli(&with(&["config", "rollout"])
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>());
            (code == 3 && out.contains(&format!("rollout of {v}"))).then_some(())
        })
    };
    let v4 = fingerprint(&doc("", backend, "r4"));
    let mut waiting = follow(&f4);
    started(&v4);
    run(&["config", "abort"], 0);
    let exit = waiting.wait_exit(Duration::from_secs(15));
    let said = std::fs::read_to_string(dir.path().join("wait.out")).unwrap();
    assert_eq!(exit.code(), Some(4), "{said}\n{}", waiting.log());
    assert!(said.contains("aborted by"), "{said}");
    let mut waiting = follow(&f4);
    started(&v4);
    run(&["config", "promote"], 0);
    run(&["config", "promote"], 0);
    let exit = waiting.wait_exit(Duration::from_secs(15));
    let said = std::fs::read_to_string(dir.path().join("wait.out")).unwrap();
    assert_eq!(exit.code(), Some(0), "{said}\n{}", waiting.log());
    assert!(said.contains(": promoted"), "{said}");

    // A node killed without revoking its lease reads stale long before the lease expires.
    us.task.abort();
    poll("us-a to read stale", Duration::from_secs(9), || {
        let (_, out, _) = cli(&with(&["config", "status"])
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>());
        node_line(&out, "us-a")
            .is_some_and(|l| l.contains("STALE"))
            .then_some(())
    });
    // (The fake nodes do not follow the store: they still run v2, hence exit 3.)
    let (out, _) = run(&["config", "status"], 3);
    assert!(
        node_line(&out, "eu-a").is_some_and(|l| l.contains(" yes ")),
        "{out}"
    );
}

#[test]
fn store_errors_are_one_line_with_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let etcd = etcd_in(1, &dir.path().join("etcd"));
    let url = etcd.url("portico-errors").to_string();
    let backend = origin("o");

    // Unreachable: every command names the endpoint.
    let closed = free_addr();
    let closed_url = format!("etcd://{closed}/portico-errors");
    for cmd in [
        &["config", "push", "nowhere.json"][..],
        &["config", "rollout"],
        &["config", "promote"],
        &["config", "abort"],
        &["config", "rollback"],
        &["config", "history"],
        &["config", "diff"],
        &["config", "get"],
        &["config", "status"],
    ] {
        let mut args = cmd.to_vec();
        args.extend(["--store", closed_url.as_str()]);
        let (_, err) = expect(&args, 1, 1);
        assert!(
            err.contains(&closed.to_string()) && err.contains("unreachable"),
            "{cmd:?}: {err}"
        );
    }

    // A document larger than etcd takes: the size, the limit, the flags to raise it.
    let big = doc("", backend, "r").replacen(
        "{\n",
        &format!("{{\n  \"$schema\": \"{}\",\n", "x".repeat(3_000_000)),
        1,
    );
    let path = dir.path().join("big.json");
    write(&path, &big);
    let (_, err) = expect(&["config", "push", s(&path), "--store", &url], 1, 1);
    for want in [
        "bytes",
        "--max-request-bytes",
        "MAX_MESSAGE_BYTES",
        "nothing written",
    ] {
        assert!(err.contains(want), "{want:?} not in {err}");
    }
    let (_, out, _) = cli(&["config", "history", "--store", &url]);
    assert!(out.contains("no version"), "nothing written: {out}");

    // A file that cannot be read, a bad plan, a bad flag value: refused before anything.
    let (_, err) = expect(
        &["config", "push", "/nonexistent/x.json", "--store", &url],
        1,
        1,
    );
    assert!(err.contains("cannot read /nonexistent/x.json"), "{err}");
    let good = dir.path().join("good.json");
    write(&good, &doc("", backend, "r"));
    let (_, err) = expect(
        &[
            "config",
            "push",
            s(&good),
            "--waves",
            "rest,node:a",
            "--store",
            &url,
        ],
        1,
        1,
    );
    assert!(err.contains("follows `rest`"), "{err}");
    let (_, err) = expect(
        &["config", "push", s(&good), "--bake=-1", "--store", &url],
        1,
        1,
    );
    assert!(err.contains("--bake"), "{err}");
}
