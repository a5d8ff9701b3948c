//! A SIGKILLed runner leaves its children running (no prctl without `unsafe`); `portico-sim clean` kills them by the pid file.

mod common;

use common::*;
use portico_sim::Launch;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

fn alive(pid: &str) -> bool {
    // A killed child of a dead runner may linger as a zombie until init reaps it.
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z'))
    })
}

#[test]
fn clean_kills_the_children_of_a_sigkilled_runner() {
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_portico-sim"));
    let dir = bin.parent().expect("target dir");
    if Launch::in_dir(dir).is_none() {
        eprintln!(
            "SKIPPED: no portico and portico-origin binaries in {}",
            dir.display()
        );
        return;
    }
    let work = dir.join(format!("sim-clean-test-{}", std::process::id()));
    std::fs::create_dir_all(&work).expect("work dir");
    let topology = work.join("topology.json");
    std::fs::write(&topology, TOPOLOGY).expect("topology written");
    let mut runner = Command::new(&bin)
        .arg("--topology")
        .arg(&topology)
        .arg("--work-dir")
        .arg(&work)
        .args(["--base-port", "0"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("runner starts");
    let pid_file = work.join("pids");
    let pids = |p: &Path| -> Vec<String> {
        std::fs::read_to_string(p)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split_whitespace().next().map(str::to_string))
            .collect()
    };
    eventually(
        "the pid file lists six children",
        Duration::from_secs(20),
        || pids(&pid_file).len() == 6,
    );
    let children = pids(&pid_file);
    let _ = runner.kill();
    let _ = runner.wait();
    assert!(
        children.iter().all(|p| alive(p)),
        "children outlive a SIGKILLed runner"
    );
    let status = Command::new(&bin)
        .arg("clean")
        .arg("--work-dir")
        .arg(&work)
        .stdout(Stdio::null())
        .status()
        .expect("clean runs");
    assert!(status.success());
    eventually("every child is gone", Duration::from_secs(10), || {
        children.iter().all(|p| !alive(p))
    });
    assert!(!pid_file.exists());
    let _ = std::fs::remove_dir_all(work);
}
