//! Network mode after a crash: a SIGKILLed runner leaves its namespaces; `portico-sim clean` kills what runs in them and deletes them. Runs only as root where `ip netns add` works.

mod common;

use common::*;
use portico_sim::{Launch, netns};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

#[test]
fn clean_tears_down_the_namespaces_of_a_sigkilled_runner() {
    let dir = PathBuf::from(env!("CARGO_BIN_EXE_portico-sim"))
        .parent()
        .expect("target dir")
        .to_path_buf();
    if Launch::in_dir(&dir).is_none() {
        eprintln!(
            "SKIPPED: no portico and portico-origin binaries in {}",
            dir.display()
        );
        return;
    }
    if !netns::available() {
        eprintln!("SKIPPED: network mode needs root and a working `ip netns add`");
        return;
    }
    let work = dir.join(format!("sim-netns-clean-test-{}", std::process::id()));
    std::fs::create_dir_all(&work).expect("work dir");
    let topology = work.join("topology.json");
    std::fs::write(&topology, TOPOLOGY).expect("topology written");
    let bin = dir.join("portico-sim");
    let mut runner = Command::new(&bin)
        .arg("--topology")
        .arg(&topology)
        .arg("--work-dir")
        .arg(&work)
        .arg("--netns")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("runner starts");
    let prefix = format!("{}{}-", netns::PREFIX, runner.id());
    let mine = || -> Vec<String> {
        netns::leftovers()
            .into_iter()
            .filter(|n| n.starts_with(&prefix))
            .collect()
    };
    eventually(
        "the runner's six namespaces exist",
        Duration::from_secs(20),
        || mine().len() == 6,
    );
    eventually(
        "the runner's entries answer",
        Duration::from_secs(20),
        || std::fs::read_to_string(work.join("pids")).is_ok_and(|p| p.contains("entry-ap-south")),
    );
    let _ = runner.kill();
    let _ = runner.wait();
    let outlived = mine().len();
    let status = Command::new(&bin)
        .arg("clean")
        .arg("--work-dir")
        .arg(&work)
        .stdout(Stdio::null())
        .status()
        .expect("clean runs");
    // Asserted after clean, so a failure leaves nothing behind.
    assert_eq!(outlived, 6, "namespaces outlive a SIGKILLed runner");
    assert!(status.success());
    assert!(mine().is_empty(), "namespaces left: {:?}", mine());
    let _ = std::fs::remove_dir_all(work);
}
