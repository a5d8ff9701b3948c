//! Network mode after a crash: a SIGKILLed runner leaves its namespaces and what runs in them (nodes, origins, BIRDs, health checks); `portico-sim clean` kills those and deletes the namespaces. Runs only as root where `ip netns add` works and BIRD is installed.

mod common;

use common::*;
use portico_sim::launch::alive;
use portico_sim::{Launch, bird, netns};
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
    if let Err(e) = bird::tools() {
        eprintln!("SKIPPED: {e}");
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
    // Its BIRDs (3 routers, 3 nodes) and health checks, as the pid file lists them.
    let listed = std::fs::read_to_string(work.join("pids")).expect("pid file");
    let anycast: Vec<(u32, String)> = listed
        .lines()
        .filter_map(|l| l.split_once(' '))
        .filter(|(_, name)| name.starts_with("bird-") || name.starts_with("anycast-"))
        .filter_map(|(pid, name)| Some((pid.parse().ok()?, name.to_string())))
        .collect();
    let _ = runner.kill();
    let _ = runner.wait();
    let outlived = mine().len();
    let running = anycast.iter().filter(|(p, _)| alive(*p)).count();
    let out = Command::new(&bin)
        .arg("clean")
        .arg("--work-dir")
        .arg(&work)
        .stderr(Stdio::null())
        .output()
        .expect("clean runs");
    let said = String::from_utf8_lossy(&out.stdout);
    // Asserted after clean, so a failure leaves nothing behind.
    assert_eq!(outlived, 6, "namespaces outlive a SIGKILLed runner");
    assert_eq!(
        anycast.len(),
        9,
        "BIRDs and health checks listed:\n{listed}"
    );
    assert_eq!(running, 9, "they outlive a SIGKILLed runner");
    assert!(out.status.success());
    assert!(mine().is_empty(), "namespaces left: {:?}", mine());
    let left: Vec<_> = anycast.iter().filter(|(p, _)| alive(*p)).collect();
    assert!(left.is_empty(), "left running: {left:?}");
    for name in ["bird-router-us-east", "bird-edge-ap", "anycast-edge-eu"] {
        assert!(said.contains(&format!("killed {name} ")), "{said}");
    }
    let _ = std::fs::remove_dir_all(work);
}
