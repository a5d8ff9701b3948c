//! The operator's loop against a running `portico-sim` process: `portico config push|status --store` with the URL it prints, and `portico-sim region-down|region-up` through its control listener.

mod common;

use common::*;
use portico_sim::launch::alive;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

/// The runner; SIGTERMed (then SIGKILLed, then `portico-sim clean`) when dropped, so a failed
/// assertion leaves nothing running.
struct Runner {
    child: Child,
    work: PathBuf,
}

impl Drop for Runner {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .status();
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            while self.child.try_wait().ok().flatten().is_none()
                && std::time::Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let _ = Command::new(bin_dir().join("portico-sim"))
            .arg("clean")
            .arg("--work-dir")
            .arg(&self.work)
            .stdout(Stdio::null())
            .status();
    }
}

fn run(program: &Path, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{} runs: {e}", program.display()))
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}stderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The store URL the runner printed (`etcd://…/portico`).
fn printed_url(out: &Path) -> Option<String> {
    let printed = std::fs::read_to_string(out).ok()?;
    let at = printed.find("etcd://")?;
    let url = printed[at..].split_whitespace().next()?;
    Some(url.trim_end_matches([':', ',', ';']).to_string())
}

#[test]
fn push_and_status_through_the_printed_url_and_a_region_down_and_up_from_the_command_line() {
    let Some(_) = subprocess_launch() else {
        return;
    };
    let dir = bin_dir();
    let (portico, sim_bin) = (dir.join("portico"), dir.join("portico-sim"));
    let work = work_dir("region-cli");
    std::fs::create_dir_all(&work).expect("work dir");
    let topology = work.join("topology.json");
    std::fs::write(&topology, TOPOLOGY).expect("topology written");
    let out = work.join("runner.out");
    let child = Command::new(&sim_bin)
        .arg("--topology")
        .arg(&topology)
        .arg("--work-dir")
        .arg(&work)
        .args(["--base-port", "0"])
        .stdout(std::fs::File::create(&out).expect("runner output"))
        .stderr(Stdio::null())
        .spawn()
        .expect("runner starts");
    let mut runner = Runner {
        child,
        work: work.clone(),
    };
    let read_out = || std::fs::read_to_string(&out).unwrap_or_default();
    eventually(
        "the runner prints its table and the operator's loop",
        Duration::from_secs(60),
        || read_out().contains("config status --wait 5 --store"),
    );
    assert!(
        runner.child.try_wait().expect("try_wait").is_none(),
        "{}",
        read_out()
    );
    let url = printed_url(&out).expect("a store URL printed");
    let printed = read_out();
    let config_file = work.join("portico.json");
    for want in [
        "| version | wave |".to_string(),
        format!(
            "{} config push {} --bake 10 --store {url}",
            portico.display(),
            config_file.display()
        ),
        format!(
            "{} config rollout --wait 300 --store {url}",
            portico.display()
        ),
        format!("{} config status --wait 5 --store {url}", portico.display()),
        "region-down ap-south".to_string(),
        "bad-push".to_string(),
    ] {
        assert!(printed.contains(&want), "{want:?} not in:\n{printed}");
    }
    let status = run(
        &portico,
        &["config", "status", "--wait", "10", "--store", &url],
    );
    assert!(status.status.success(), "{}", text(&status));
    let listed = String::from_utf8_lossy(&status.stdout).to_string();
    for node in ["edge-us", "edge-eu", "edge-ap"] {
        assert!(listed.contains(node), "{node} not in {listed}");
    }

    let work_arg = work.to_str().expect("UTF-8 path");
    let down = run(
        &sim_bin,
        &["region-down", "ap-south", "--work-dir", work_arg],
    );
    assert!(down.status.success(), "{}", text(&down));
    let said = String::from_utf8_lossy(&down.stdout).to_string();
    for want in [
        "ap-south is down",
        "edge node edge-ap: SIGKILLed",
        "origin web-ap: SIGKILLed",
        "etcd member ap-south: SIGKILLed",
    ] {
        assert!(said.contains(want), "{want:?} not in {said}");
    }
    let again = run(
        &sim_bin,
        &["region-down", "ap-south", "--work-dir", work_arg],
    );
    assert!(!again.status.success(), "{}", text(&again));
    assert!(text(&again).contains("already down"), "{}", text(&again));
    let nowhere = run(&sim_bin, &["region-up", "mars", "--work-dir", work_arg]);
    assert!(!nowhere.status.success());
    assert!(
        text(&nowhere).contains("no region \"mars\""),
        "{}",
        text(&nowhere)
    );

    // The operator's loop with a region down: edit, push, status.
    let edited = with_weight(
        &std::fs::read_to_string(&config_file).expect("the shared config"),
        "web-eu",
        7,
    );
    std::fs::write(&config_file, &edited).expect("edited");
    let version = portico_core::config::fingerprint(&edited);
    // The SIGKILLed node keeps its registration until its lease expires; once it reads stale,
    // a push leaves it out of the plan (it would fail gate 2 when its lease expires).
    eventually(
        "edge-ap stale or gone in config status",
        Duration::from_secs(15),
        || {
            let s = run(&portico, &["config", "status", "--store", &url]);
            let s = String::from_utf8_lossy(&s.stdout).to_string();
            !s.lines()
                .any(|l| l.starts_with("edge-ap") && !l.contains("STALE"))
        },
    );
    // Every node at once (SPEC part 3: still gated while it lasts).
    let push = run(
        &portico,
        &[
            "config",
            "push",
            config_file.to_str().expect("UTF-8"),
            "--waves",
            "rest",
            "--bake",
            "0",
            "--min-requests",
            "0",
            "--store",
            &url,
        ],
    );
    assert!(push.status.success(), "{}", text(&push));
    assert!(
        text(&push).contains(&format!("pushed version {version}")),
        "{}",
        text(&push)
    );
    // The nodes' conductor promotes it once every node of the wave runs it.
    let waited = run(
        &portico,
        &["config", "rollout", "--wait", "30", "--store", &url],
    );
    assert!(waited.status.success(), "promoted: {}", text(&waited));
    eventually(
        "edge-us and edge-eu report the new version in the store",
        Duration::from_secs(15),
        || {
            let s = run(&portico, &["config", "status", "--store", &url]);
            let s = String::from_utf8_lossy(&s.stdout).to_string();
            ["edge-us", "edge-eu"].iter().all(|n| {
                s.lines()
                    .any(|l| l.starts_with(n) && l.contains(&version) && l.ends_with("yes"))
            })
        },
    );

    let up = run(&sim_bin, &["region-up", "ap-south", "--work-dir", work_arg]);
    assert!(up.status.success(), "{}", text(&up));
    let said = String::from_utf8_lossy(&up.stdout).to_string();
    assert!(said.contains("ap-south is up"), "{said}");
    assert!(
        said.contains("edge node edge-ap: started") && said.contains(&version),
        "{said}"
    );
    let status = run(
        &portico,
        &["config", "status", "--wait", "15", "--store", &url],
    );
    assert!(
        status.status.success(),
        "every node runs {version}:\n{}",
        text(&status)
    );

    // SIGTERM stops everything, etcd members included.
    let pids: Vec<u32> = std::fs::read_to_string(work.join("pids"))
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.contains(" runner"))
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect();
    let sent = Command::new("kill")
        .args(["-TERM", &runner.child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(sent.success());
    eventually("the runner exits", Duration::from_secs(30), || {
        runner.child.try_wait().expect("try_wait").is_some()
    });
    for p in &pids {
        assert!(!alive(*p), "child {p} outlives the runner");
    }
    assert!(!work.join("control").exists(), "control address removed");
    drop(runner);
    let _ = std::fs::remove_dir_all(work);
}
