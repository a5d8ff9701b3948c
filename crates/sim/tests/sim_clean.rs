//! The runner as a process: SIGTERM stops every child and removes the pid file; a SIGKILLed runner leaves its children (etcd members included) running (no prctl without `unsafe`) and `portico-sim clean` kills them by the pid file.

mod common;

use common::*;
use portico_sim::Launch;
use portico_sim::launch::alive;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The children listed in a pid file (not the runner's own line).
fn children(p: &Path) -> Vec<u32> {
    std::fs::read_to_string(p)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.contains(" runner"))
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect()
}

/// Starts `portico-sim ARGS` on the test topology in a fresh work directory, once `want`
/// children are listed; `None` when the binaries are not built.
fn start_runner(tag: &str, args: &[&str], want: usize) -> Option<(Child, PathBuf, PathBuf)> {
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_portico-sim"));
    let dir = bin.parent().expect("target dir");
    if Launch::in_dir(dir).is_none() {
        eprintln!(
            "SKIPPED: no portico and portico-origin binaries in {}",
            dir.display()
        );
        return None;
    }
    let work = dir.join(format!("sim-{tag}-test-{}", std::process::id()));
    std::fs::create_dir_all(&work).expect("work dir");
    let topology = work.join("topology.json");
    std::fs::write(&topology, TOPOLOGY).expect("topology written");
    let runner = Command::new(&bin)
        .arg("--topology")
        .arg(&topology)
        .arg("--work-dir")
        .arg(&work)
        .args(["--base-port", "0"])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("runner starts");
    let pid_file = work.join("pids");
    eventually(
        &format!("the pid file lists {want} children"),
        Duration::from_secs(30),
        || children(&pid_file).len() == want,
    );
    Some((runner, work, bin))
}

/// Without a store (`--no-store`): three origins and three nodes running `--config`.
#[test]
fn sigterm_stops_every_child_and_removes_the_pid_file() {
    let Some((mut runner, work, _)) = start_runner("term", &["--no-store"], 6) else {
        return;
    };
    let pids = children(&work.join("pids"));
    assert!(pids.iter().all(|p| alive(*p)));
    let listed = std::fs::read_to_string(work.join("pids")).unwrap_or_default();
    assert!(!listed.contains("etcd-"), "{listed}");
    let node = listed
        .lines()
        .find(|l| l.ends_with(" edge-us"))
        .and_then(|l| l.split_whitespace().next())
        .expect("edge-us listed");
    let line = std::fs::read(format!("/proc/{node}/cmdline")).unwrap_or_default();
    let line = String::from_utf8_lossy(&line).replace('\0', " ");
    assert!(
        line.contains("--config ") && !line.contains("--store"),
        "{line}"
    );
    let sent = Command::new("kill")
        .args(["-TERM", &runner.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(sent.success());
    eventually("the runner exits", Duration::from_secs(20), || {
        runner.try_wait().expect("try_wait").is_some()
    });
    for p in &pids {
        assert!(!alive(*p), "child {p} outlives the runner");
    }
    assert!(!work.join("pids").exists(), "pid file removed");
    let _ = std::fs::remove_dir_all(work);
}

/// With the store: three etcd members, origins and nodes; `clean` kills the etcd members too.
#[test]
fn clean_kills_the_children_of_a_sigkilled_runner() {
    let Some((mut runner, work, bin)) = start_runner("clean", &[], 9) else {
        return;
    };
    let pid_file = work.join("pids");
    let pids = children(&pid_file);
    let _ = runner.kill();
    let _ = runner.wait();
    let outlived = pids.iter().all(|p| alive(*p));
    let status = Command::new(&bin)
        .arg("clean")
        .arg("--work-dir")
        .arg(&work)
        .stdout(Stdio::null())
        .status()
        .expect("clean runs");
    // Asserted after clean, so a failure leaves nothing running.
    assert!(outlived, "children outlive a SIGKILLed runner");
    assert!(status.success());
    // A killed child of a dead runner may linger as a zombie until init reaps it: `alive`
    // does not count zombies.
    eventually("every child is gone", Duration::from_secs(10), || {
        pids.iter().all(|p| !alive(*p))
    });
    assert!(!pid_file.exists());
    let _ = std::fs::remove_dir_all(work);
}
