//! The `portico` binary: `--check` on good and bad configs, start-up errors, SIGTERM, and
//! `portico schema [--markdown]`.

use portico_test_support::{eventually_blocking as poll, free_addr, poll_blocking};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_portico");

fn temp_config(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("portico-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn portico(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run portico")
}

fn check(text: &str) -> (i32, String, String) {
    let path = temp_config(&format!("c{}.json", fastrand_name()), text);
    let out = portico(&["--config", path.to_str().unwrap(), "--check"]);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn fastrand_name() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

const GOOD: &str = r#"{
  "pools": [{"name": "api", "origins": [
      {"name": "a", "address": "127.0.0.1:9001", "region": "eu-west"},
      {"name": "b", "address": "127.0.0.1:9002", "priority": 2, "enabled": false}]}],
  "routes": [{"name": "api", "hosts": ["api.example.com", "*"], "paths": ["/*"], "pool": "api"}]
}"#;

/// `portico schema` prints the JSON Schema and `--markdown` the reference generated from it:
/// the texts the committed `conf/portico.schema.json` and `docs/configuration-reference.md`
/// are checked against in portico-core's tests.
#[test]
fn schema_prints_the_schema_or_the_configuration_reference() {
    let out = portico(&["schema"]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        portico_core::config::schema_json()
    );
    let out = portico(&["schema", "--markdown"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text, portico_core::config::reference_markdown());
    assert!(text.starts_with("# Configuration reference\n"), "{text}");
}

#[test]
fn check_prints_a_summary_for_a_valid_config() {
    let (code, out, err) = check(GOOD);
    assert_eq!(code, 0, "stderr: {err}");
    assert!(out.starts_with("config OK (version "), "{out}");
    assert!(out.contains("1 pool, 2 origins, 1 route"), "{out}");
    assert!(out.contains("origin a "), "{out}");
    assert!(out.contains("DISABLED"), "{out}");
    assert!(
        out.contains("route api: hosts api.example.com,* paths /* -> pool api"),
        "{out}"
    );
    assert!(out.lines().count() < 25, "one screen: {out}");
}

#[test]
fn check_names_the_rule_sets_and_the_routes_running_them() {
    let text = r#"{"pools": [{"name": "api", "origins": [{"name": "a", "address": "127.0.0.1:9001"}]}],
      "rule_sets": [
        {"name": "global", "rules": [{"name": "hsts", "then": {"response_headers": {"set": {"strict-transport-security": "max-age=1"}}}}]},
        {"name": "api", "rules": [
          {"name": "limit", "then": {"rate_limit": {"key": "client_ip", "requests_per_second": 5}}},
          {"name": "v1", "then": {"rewrite": {"path_prefix": {"from": "/v1/", "to": "/"}}}}]}],
      "routes": [{"name": "api", "pool": "api", "rule_sets": ["global", "api"]}]}"#;
    let (code, out, err) = check(text);
    assert_eq!(code, 0, "stderr: {err}");
    assert!(
        out.contains("rule sets: global (1 rule), api (2 rules); 1 rate limit\n"),
        "{out}"
    );
    assert!(
        out.contains("route api: hosts * paths /* -> pool api; rule sets global, api\n"),
        "{out}"
    );
    let (code, _, err) = check(&text.replace(r#""from": "/v1/""#, r#""from": "v1""#));
    assert_eq!(code, 1);
    assert!(
        err.contains("rule_sets[1].rules[1].then.rewrite.path_prefix.from: "),
        "{err}"
    );
}

/// `portico --check conf.json | head -3`: a stdout closed before the summary is written ends
/// the command quietly, with its exit code, and no panic. The summary (one line per route)
/// is made larger than any pipe buffer, so writing it must meet the closed pipe.
#[test]
fn check_into_a_closed_pipe_ends_quietly() {
    let routes: Vec<String> = (0..6000)
        .map(|i| format!(r#"{{"name": "r{i}", "hosts": ["host-{i}.example.com"], "pool": "api"}}"#))
        .collect();
    let text = format!(
        r#"{{"pools": [{{"name": "api", "origins": [{{"name": "a", "address": "127.0.0.1:9001"}}]}}],
            "routes": [{}]}}"#,
        routes.join(",")
    );
    let path = temp_config(&format!("c{}.json", fastrand_name()), &text);
    let mut child = Command::new(BIN)
        .args(["--config", path.to_str().unwrap(), "--check"])
        .env("RUST_LOG", "warn")
        .env("RUST_BACKTRACE", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run portico");
    let mut stdout = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    let mut head = String::new();
    for _ in 0..3 {
        std::io::BufRead::read_line(&mut stdout, &mut head).expect("read a line");
    }
    assert!(head.starts_with("config OK (version "), "{head}");
    drop(stdout);
    let out = child.wait_with_output().expect("wait");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "{err}"
    );
    assert_eq!(out.status.code(), Some(0), "{err}");
}

/// Every kind of bad config: exit 1, every error on its own line naming its path, no panic.
#[test]
fn check_reports_every_error_with_its_path() {
    let cases: &[(&str, &[&str])] = &[
        ("{", &["not valid JSON: "]),
        ("[]", &["the configuration must be a JSON object"]),
        ("{}", &["pools: is required", "routes: is required"]),
        (
            r#"{"pools": [{"name": "api", "origins": [{"name": "a", "address": "10.0.0.1"}]}],
                "routes": [{"name": "r", "pool": "api"}], "extra": true}"#,
            &[
                "extra: unknown field `extra`",
                r#"pools[0].origins[0].address: "10.0.0.1" is not HOST:PORT"#,
            ],
        ),
        (
            r#"{"pools": [{"name": "api", "origins": [
                  {"name": "a", "address": "h:1", "priority": 0, "weight": 1001},
                  {"name": "a", "address": "h:2", "weight": "heavy", "enabled": "yes"}],
                "health_probe": {"interval_ms": 100, "timeout_ms": 100, "method": "PUT",
                                 "expected_status": ["299-200"]},
                "load_balancing": {"sample_size": 3, "successful_samples_required": 4}}],
                "routes": [{"name": "r", "hosts": ["a*.b"], "paths": ["x"], "pool": "web"}]}"#,
            &[
                "pools[0].health_probe.expected_status[0]: \"299-200\" is not a range",
                "pools[0].health_probe.method: must be \"GET\" or \"HEAD\", got \"PUT\"",
                "pools[0].health_probe.timeout_ms: 100 must be less than interval_ms (100)",
                "pools[0].load_balancing.successful_samples_required: 4 must not exceed sample_size (3)",
                "pools[0].origins[0].priority: must be between 1 and 5, got 0",
                "pools[0].origins[0].weight: must be between 1 and 1000, got 1001",
                "pools[0].origins[1].enabled: invalid type: string \"yes\", expected a boolean",
                "pools[0].origins[1].name: \"a\" is already the name of origins[0]",
                "pools[0].origins[1].weight: invalid type: string \"heavy\", expected an integer",
                "routes[0].hosts[0]: \"a*.b\" is not a host pattern",
                "routes[0].paths[0]: \"x\" is not a path pattern",
                "routes[0].pool: \"web\" is not a pool (pools: api)",
            ],
        ),
        (
            r#"{"node": {"listen": "localhost:80", "admin_listen": "127.0.0.1:0", "region": "Mars!"},
                "pools": [{"name": "API", "origins": [{"address": "h:1"}]}], "routes": []}"#,
            &[
                "node.admin_listen: \"127.0.0.1:0\" needs a port other than 0",
                "node.listen: \"localhost:80\" is not IP:PORT",
                "node.region: \"Mars!\" is not a valid region",
                "pools[0].name: \"API\" is not a valid name",
                "pools[0].origins[0].name: is required",
                "routes: must hold at least one route",
            ],
        ),
    ];
    for (text, expected) in cases {
        let (code, out, err) = check(text);
        assert_eq!(code, 1, "config {text}\nstdout {out}\nstderr {err}");
        assert!(
            !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
            "{err}"
        );
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), expected.len(), "config {text}\nstderr:\n{err}");
        for (line, want) in lines.iter().zip(expected.iter()) {
            assert!(
                line.starts_with(want),
                "expected a line starting {want:?}, got {line:?}"
            );
        }
    }
}

#[test]
fn missing_file_and_bad_flags_are_clear() {
    let out = portico(&["--config", "/nonexistent/portico.json", "--check"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot read /nonexistent/portico.json"),
        "{err}"
    );

    let path = temp_config("flags.json", GOOD);
    for (flag, value, want) in [
        (
            "--region",
            "Bad Region",
            "--region: \"Bad Region\" is not a valid region",
        ),
        (
            "--tls-listen",
            "nope",
            "--tls-listen: \"nope\" is not IP:PORT",
        ),
    ] {
        let out = portico(&["--config", path.to_str().unwrap(), "--check", flag, value]);
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.starts_with(want), "{err}");
    }

    let out = portico(&["--bogus"]);
    assert_eq!(out.status.code(), Some(2));
    let out = portico(&["--version"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("portico "));
    let out = portico(&["--help"]);
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--config",
        "--region",
        "--listen",
        "--admin-listen",
        "--tls-listen",
        "--check",
    ] {
        assert!(help.contains(&format!("{flag} ")), "{help}");
    }
}

/// Every example config shipped in conf/ and deploy/ passes `--check`.
#[test]
fn every_shipped_config_is_valid() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut files = Vec::new();
    for dir in ["conf", "deploy"] {
        collect_json(&root.join(dir), &mut files);
    }
    // Portico configs are the JSON objects with pools or routes: the topology, the JSON
    // Schema and the Grafana dashboard are other documents.
    let is_config = |f: &PathBuf| {
        std::fs::read_to_string(f)
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .is_some_and(|v| v.get("pools").is_some() || v.get("routes").is_some())
    };
    let configs: Vec<&PathBuf> = files.iter().filter(|f| is_config(f)).collect();
    for must in ["conf/local.json", "deploy/sim/portico.json"] {
        assert!(
            configs.iter().any(|f| f.ends_with(must)),
            "{must} is among the configs checked: {configs:?}"
        );
    }
    for f in configs {
        let out = portico(&["--config", f.to_str().unwrap(), "--check"]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{} is invalid:\n{}",
            f.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn collect_json(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            collect_json(&p, out);
        } else if p.extension().is_some_and(|x| x == "json") {
            out.push(p);
        }
    }
}

fn http_status(addr: SocketAddr, path: &str) -> Option<u16> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    buf.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn sigterm_drains_then_stops_the_node() {
    let listen = free_addr();
    let admin = free_addr();
    let text = GOOD.replacen(
        '{',
        &format!(
            r#"{{"node": {{"listen": "{listen}", "admin_listen": "{admin}", "drain_ms": 1500}},"#
        ),
        1,
    );
    let path = temp_config("sigterm.json", &text);
    let mut child = Command::new(BIN)
        .args(["--config", path.to_str().unwrap()])
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    poll("/healthz 200", Duration::from_secs(10), || {
        http_status(admin, "/healthz") == Some(200)
    });
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    poll(
        "/healthz 503 while draining",
        Duration::from_secs(2),
        || http_status(admin, "/healthz") == Some(503),
    );
    let status = poll_blocking(
        "portico to stop after SIGTERM",
        Duration::from_secs(15),
        || child.try_wait().unwrap(),
    );
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(status.success(), "exit {status:?}\n{err}");
    assert!(err.contains("SIGTERM: draining for 1500 ms"), "{err}");
    assert!(
        TcpStream::connect(listen).is_err(),
        "the proxy port is closed after the stop"
    );
}

#[test]
fn a_busy_port_is_a_clear_start_up_error() {
    let busy = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap();
    let admin = free_addr();
    let text = GOOD.replacen(
        '{',
        &format!(r#"{{"node": {{"listen": "{addr}", "admin_listen": "{admin}"}},"#),
        1,
    );
    let path = temp_config("busy.json", &text);
    let out = portico(&["--config", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with(&format!("node.listen: cannot listen on {addr}: ")),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}
