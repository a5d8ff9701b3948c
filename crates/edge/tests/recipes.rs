//! The service recipes under deploy/ and the Containerfile, checked with the real tools:
//! promtool (rules, unit tests, scrape config), systemd-analyze (the unit), BIRD (the anycast
//! config, and the health check driving a real BIRD). A missing tool fails the test with the
//! Debian package to install (`make test-deps` installs them all); nothing is skipped.

use portico_test_support::eventually_blocking;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

/// The drain the anycast recipe recommends (deploy/anycast/README.md), in seconds.
const RECOMMENDED_DRAIN_S: u64 = 5;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crates/edge is two levels down")
        .to_path_buf()
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("read {path}: {e}"))
}

/// `name` on `PATH` or in the sbin directories (BIRD lives in /usr/sbin); panics naming the
/// Debian package when it is missing.
fn tool(name: &str, package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`{name}` not found: install Debian's `{package}` package \
                 (apt-get install -y {package}, or `make test-deps`)"
            )
        })
}

fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// Runs a command that must succeed; panics with its output otherwise.
fn succeeds(cmd: &mut Command) -> String {
    let out = run(cmd);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{text}",
        out.status
    );
    text
}

#[test]
fn promtool_checks_the_scrape_config_and_the_rules() {
    let promtool = tool("promtool", "prometheus");
    let dir = repo().join("deploy/prometheus");
    // `check config` also checks the rule files it names.
    succeeds(
        Command::new(&promtool)
            .args(["check", "config"])
            .arg(dir.join("prometheus.yml")),
    );
    succeeds(
        Command::new(&promtool)
            .args(["check", "rules"])
            .arg(dir.join("recording.yml"))
            .arg(dir.join("alerts.yml")),
    );
}

#[test]
fn promtool_unit_tests_of_the_rules_pass() {
    let promtool = tool("promtool", "prometheus");
    let out = succeeds(
        Command::new(&promtool)
            .args(["test", "rules"])
            .arg(repo().join("deploy/prometheus/tests.yml")),
    );
    assert!(out.contains("SUCCESS"), "{out}");
}

#[test]
fn every_alert_has_a_firing_and_a_quiet_unit_test() {
    let alerts = read("deploy/prometheus/alerts.yml");
    let tests = read("deploy/prometheus/tests.yml");
    let names: Vec<&str> = alerts
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
        .collect();
    for required in [
        "PorticoOriginDown",
        "PorticoPoolNoHealthyOrigin",
        "PorticoHighErrorRatio",
        "PorticoRetryBudgetExhausted",
        "PorticoOriginEjected",
        "PorticoConfigReloadRejected",
        "PorticoNodeDraining",
        "PorticoHighLatencyP99",
        "PorticoRolloutRolledBack",
        "PorticoCertificateExpiringSoon",
    ] {
        assert!(names.contains(&required), "no alert {required}");
    }
    // After `alertname: X`, the next line is `exp_alerts: []` (quiet) or `exp_alerts:` with
    // the expected alerts below it (firing).
    let lines: Vec<&str> = tests.lines().map(str::trim).collect();
    for name in names {
        let next: Vec<&str> = lines
            .windows(2)
            .filter(|w| w[0] == format!("alertname: {name}"))
            .map(|w| w[1])
            .collect();
        assert!(
            next.contains(&"exp_alerts: []"),
            "{name}: no test where it does not fire"
        );
        assert!(
            next.contains(&"exp_alerts:"),
            "{name}: no test where it fires"
        );
    }
}

#[test]
fn grafana_dashboard_takes_its_datasource_and_region_from_variables() {
    let text = read("deploy/grafana/portico.json");
    let d: serde_json::Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    let vars = d["templating"]["list"].as_array().expect("templating.list");
    let var = |name: &str| {
        vars.iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("no variable {name}"))
    };
    assert_eq!(var("datasource")["type"], "datasource");
    assert_eq!(var("datasource")["query"], "prometheus");
    assert_eq!(var("region")["allValue"], ".*");
    assert!(d["uid"].is_string() && d["title"].is_string());
    let mut ids = Vec::new();
    let mut exprs = 0;
    for p in d["panels"].as_array().expect("panels") {
        ids.push(p["id"].as_u64().expect("panel id"));
        let g = &p["gridPos"];
        assert!(
            g["x"].as_u64().unwrap_or(99) + g["w"].as_u64().unwrap_or(99) <= 24,
            "panel {} is off the grid",
            p["title"]
        );
        if p["type"] == "row" {
            continue;
        }
        assert_eq!(p["datasource"]["uid"], "${datasource}", "{}", p["title"]);
        for t in p["targets"].as_array().expect("targets") {
            assert_eq!(t["datasource"]["uid"], "${datasource}", "{}", p["title"]);
            assert!(
                t["expr"].as_str().is_some_and(|e| !e.is_empty()),
                "{}",
                p["title"]
            );
            exprs += 1;
        }
    }
    let n = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), n, "panel ids are unique");
    assert!(exprs >= 15, "{exprs} queries");
    // The queries are run against a real Prometheus in tests/it/observability.rs.
}

/// A temporary copy of the unit whose ExecStart runs the binary just built, so that
/// systemd-analyze can check it on a machine where Portico is not installed.
fn unit_copy() -> (tempfile::TempDir, PathBuf) {
    let unit = read("deploy/systemd/portico.service");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("portico.service");
    let unit = unit.replace(
        "ExecStart=/usr/local/bin/portico ",
        &format!("ExecStart={} ", env!("CARGO_BIN_EXE_portico")),
    );
    std::fs::write(&path, unit).expect("write the unit copy");
    (dir, path)
}

/// Output of `systemd-analyze verify` that is about this machine, not the unit: a container
/// without a running systemd or D-Bus, cgroup file systems that are absent or read-only,
/// and complaints about *other* unit files systemd-analyze loads as dependencies (a line
/// naming a unit file that is not ours). Every other line fails the test.
fn environment_noise(line: &str) -> bool {
    let about_machine = [
        "Failed to connect to bus",
        "System has not been booted with systemd",
        "cgroup",
        "Failed to open /dev/tty",
    ];
    if about_machine.iter().any(|m| line.contains(m)) {
        return true;
    }
    let other_unit = line
        .split([' ', ':'])
        .filter(|w| {
            [".service", ".socket", ".target", ".mount", ".slice"]
                .iter()
                .any(|s| w.ends_with(s))
        })
        .any(|w| !w.ends_with("portico.service"));
    other_unit && !line.contains("portico.service")
}

#[test]
fn systemd_unit_verifies_and_is_hardened() {
    let analyze = tool("systemd-analyze", "systemd");
    let (_dir, path) = unit_copy();
    let out = run(Command::new(&analyze).arg("verify").arg(&path));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let problems: Vec<&str> = text
        .lines()
        .filter(|l| !l.trim().is_empty() && !environment_noise(l))
        .collect();
    assert!(
        problems.is_empty(),
        "systemd-analyze verify ({}):\n{}",
        out.status,
        problems.join("\n")
    );
    // Exposure 2.0 or less ("OK" in systemd's scale): the hardening below is all in effect.
    succeeds(
        Command::new(&analyze)
            .args(["security", "--offline=yes", "--threshold=20"])
            .arg(&path),
    );

    let unit = read("deploy/systemd/portico.service");
    for line in [
        "DynamicUser=yes",
        "AmbientCapabilities=CAP_NET_BIND_SERVICE",
        "CapabilityBoundingSet=CAP_NET_BIND_SERVICE",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "StateDirectory=portico",
        "ExecStart=/usr/local/bin/portico --config /etc/portico/portico.json",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "KillSignal=SIGTERM",
        "Restart=on-failure",
    ] {
        assert!(unit.lines().any(|l| l == line), "the unit lacks {line}");
    }
    assert!(unit.lines().any(|l| l.starts_with("LimitNOFILE=")));
    assert!(
        unit.lines().any(|l| l.starts_with("#ExecStart=")
            && l.contains("--store")
            && l.contains("--cache /var/lib/portico/")),
        "the unit shows the --store variant with its cache in StateDirectory"
    );
    let stop: u64 = unit
        .lines()
        .find_map(|l| l.strip_prefix("TimeoutStopSec="))
        .and_then(|v| v.trim_end_matches('s').parse().ok())
        .expect("TimeoutStopSec=<seconds>s");
    assert!(
        stop > RECOMMENDED_DRAIN_S + 5,
        "TimeoutStopSec {stop}s leaves no room for drain_ms + 5 s"
    );
}

#[test]
fn containerfile_builds_in_one_stage_and_runs_as_a_user_in_another() {
    let text = read("Containerfile");
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let froms: Vec<usize> = (0..lines.len())
        .filter(|&i| lines[i].starts_with("FROM "))
        .collect();
    assert_eq!(froms.len(), 2, "a build and a runtime stage");
    assert!(lines[froms[0]].contains("rust:bookworm") && lines[froms[0]].ends_with(" AS build"));
    assert!(lines[froms[1]].contains("debian:bookworm-slim"));
    let (build, runtime) = (lines[..froms[1]].join("\n"), lines[froms[1]..].join("\n"));
    for needed in [
        "cmake",
        "protobuf-compiler",
        "libssl-dev",
        "COPY .cargo .cargo",
        "cargo build --release",
        "-p portico",
    ] {
        assert!(build.contains(needed), "the build stage lacks {needed}");
    }
    for needed in [
        "ca-certificates",
        "libssl3",
        "COPY --from=build",
        "EXPOSE 8080 9901",
        r#"ENTRYPOINT ["/usr/local/bin/portico"]"#,
        r#"CMD ["--config", "/etc/portico/portico.json"]"#,
    ] {
        assert!(runtime.contains(needed), "the runtime stage lacks {needed}");
    }
    let user = runtime
        .lines()
        .filter_map(|l| l.strip_prefix("USER "))
        .next_back()
        .expect("the runtime stage sets USER");
    assert!(!["root", "0"].contains(&user.trim()), "runs as {user}");
    // Every workspace member is in the sources the build stage copies.
    let copied: Vec<&str> = build
        .lines()
        .filter_map(|l| l.strip_prefix("COPY "))
        .flat_map(str::split_whitespace)
        .collect();
    let manifest = read("Cargo.toml");
    let members = manifest
        .split("members = [")
        .nth(1)
        .and_then(|m| m.split(']').next())
        .expect("workspace members");
    for member in members.split(',').map(|m| m.trim().trim_matches('"')) {
        let top = member.split('/').next().unwrap_or_default();
        if !member.is_empty() {
            assert!(
                copied.contains(&top),
                "the build stage does not COPY {top}/ ({member})"
            );
        }
    }
}

#[test]
fn bird_config_parses() {
    let bird = tool("bird", "bird2");
    succeeds(
        Command::new(bird)
            .arg("-p")
            .arg("-c")
            .arg(repo().join("deploy/anycast/bird.conf")),
    );
}

/// A BIRD daemon in the foreground with its control socket in a temporary directory; killed
/// when dropped.
struct Bird {
    child: Child,
    socket: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Bird {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `portico_anycast` protocol of deploy/anycast/bird.conf (and the address it announces)
/// on its own: no BGP session, so the test opens no privileged port and needs no router.
fn anycast_only_config() -> String {
    let conf = read("deploy/anycast/bird.conf");
    let define = conf
        .lines()
        .find(|l| l.starts_with("define PORTICO_ANYCAST"))
        .expect("the address is a define");
    let start = conf
        .find("protocol static portico_anycast {")
        .expect("protocol static portico_anycast");
    let end = start + conf[start..].find("\n}").expect("its closing brace") + 2;
    format!(
        "router id 192.0.2.10;\n{define}\nprotocol device {{ scan time 10; }}\n{}\n",
        &conf[start..end]
    )
}

fn start_bird() -> Bird {
    let bird = tool("bird", "bird2");
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = dir.path().join("bird.conf");
    std::fs::write(&conf, anycast_only_config()).expect("write bird.conf");
    let socket = dir.path().join("bird.ctl");
    let child = Command::new(bird)
        .arg("-f")
        .arg("-c")
        .arg(&conf)
        .arg("-s")
        .arg(&socket)
        .arg("-P")
        .arg(dir.path().join("bird.pid"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start bird");
    eventually_blocking("bird to open its socket", Duration::from_secs(10), || {
        socket.exists()
    });
    Bird {
        child,
        socket,
        _dir: dir,
    }
}

/// The State column of `birdc show protocols portico_anycast`.
fn protocol_state(bird: &Bird) -> String {
    let birdc = tool("birdc", "bird2");
    let out = succeeds(Command::new(birdc).arg("-s").arg(&bird.socket).args([
        "-r",
        "show",
        "protocols",
        "portico_anycast",
    ]));
    out.lines()
        .find(|l| l.starts_with("portico_anycast "))
        .and_then(|l| l.split_whitespace().nth(3))
        .unwrap_or_else(|| panic!("no portico_anycast in:\n{out}"))
        .to_string()
}

/// A /healthz stand-in answering `status` (0: the listener is closed, connections refused).
fn healthz_server(status: Arc<AtomicU16>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/healthz", listener.local_addr().expect("addr"));
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut buf = [0u8; 1024];
            let _ = conn.read(&mut buf);
            let code = status.load(Ordering::Relaxed);
            let body = if code == 200 { "ok\n" } else { "draining\n" };
            let _ = write!(
                conn,
                "HTTP/1.1 {code} X\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    url
}

fn healthcheck_once(bird: &Bird, url: &str) -> Output {
    tool("curl", "curl");
    run(Command::new("sh")
        .arg(repo().join("deploy/anycast/healthcheck.sh"))
        .arg("--once")
        .env("BIRDC", tool("birdc", "bird2"))
        .env("BIRD_SOCKET", &bird.socket)
        .env("PORTICO_HEALTHZ_URL", url)
        .env("TIMEOUT", "1"))
}

#[test]
fn healthcheck_announces_a_healthy_node_and_withdraws_a_draining_or_dead_one() {
    let bird = start_bird();
    assert_eq!(
        protocol_state(&bird),
        "down",
        "not announced before a check"
    );
    let status = Arc::new(AtomicU16::new(200));
    let url = healthz_server(status.clone());

    let out = healthcheck_once(&bird, &url);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(protocol_state(&bird), "up", "healthy: announced");
    assert!(String::from_utf8_lossy(&out.stderr).contains("enable portico_anycast"));
    // Idempotent: no change, no command.
    let out = healthcheck_once(&bird, &url);
    assert!(out.status.success() && out.stderr.is_empty(), "{out:?}");

    status.store(503, Ordering::Relaxed);
    let out = healthcheck_once(&bird, &url);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(protocol_state(&bird), "down", "draining: withdrawn");

    status.store(200, Ordering::Relaxed);
    assert!(healthcheck_once(&bird, &url).status.success());
    assert_eq!(protocol_state(&bird), "up");
    // A dead node: nothing listens on its admin port.
    let dead = format!("http://{}/healthz", portico_test_support::free_addr());
    assert!(healthcheck_once(&bird, &dead).status.success());
    assert_eq!(protocol_state(&bird), "down", "dead: withdrawn");
}
