//! The supervisor's process-wide state: Ctrl-C and SIGTERM ask the runner to stop; a second signal kills every child and deletes every namespace at once.
//!
//! `unsafe` is forbidden here, so children cannot get `PR_SET_PDEATHSIG`: they are stopped by
//! their owners' `Drop`, by this module on a second signal, and — after a SIGKILL of the runner,
//! which nothing in-process survives — by `portico-sim clean` or the next run's start.

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

static STOP: AtomicBool = AtomicBool::new(false);
static CHILDREN: Mutex<BTreeSet<u32>> = Mutex::new(BTreeSet::new());
static NAMESPACES: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Whether SIGINT or SIGTERM has asked the runner to stop. Long waits poll this.
pub fn stop_requested() -> bool {
    STOP.load(Ordering::Relaxed)
}

/// Asks the runner to stop, as a signal would.
pub fn request_stop() {
    STOP.store(true, Ordering::Relaxed);
}

/// Sleeps `d` in small steps; `false` when a stop was requested meanwhile.
pub fn sleep(d: Duration) -> bool {
    let end = std::time::Instant::now() + d;
    loop {
        if stop_requested() {
            return false;
        }
        let left = end.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return true;
        }
        std::thread::sleep(left.min(Duration::from_millis(50)));
    }
}

/// Registers a child process, killed by a second signal.
pub fn add_child(pid: u32) {
    lock(&CHILDREN).insert(pid);
}

/// Forgets a child process once it has been reaped.
pub fn remove_child(pid: u32) {
    lock(&CHILDREN).remove(&pid);
}

/// Registers a network namespace, deleted by a second signal.
pub fn add_namespace(name: &str) {
    lock(&NAMESPACES).insert(name.to_string());
}

/// Forgets a network namespace once it has been deleted.
pub fn remove_namespace(name: &str) {
    lock(&NAMESPACES).remove(name);
}

/// SIGKILLs every registered child and deletes every registered namespace, without waiting
/// for anyone: the last resort of a second Ctrl-C.
pub fn kill_everything() {
    for pid in std::mem::take(&mut *lock(&CHILDREN)) {
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .stderr(Stdio::null())
            .status();
    }
    for ns in std::mem::take(&mut *lock(&NAMESPACES)) {
        let _ = Command::new("ip")
            .args(["netns", "del", &ns])
            .stderr(Stdio::null())
            .status();
    }
}

/// Catches SIGINT and SIGTERM for the rest of the process's life (before any child starts, so
/// no signal can slip between a spawn and its supervision). The first signal sets
/// [`stop_requested`] and the runner stops in order: nodes drain, children are reaped,
/// namespaces deleted. A second signal kills everything at once and exits with 130.
pub fn install_signal_handlers() -> std::io::Result<()> {
    let (ready, registered) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("sim-signals".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready.send(Err(e));
                    return;
                }
            };
            rt.block_on(async move {
                use tokio::signal::unix::{SignalKind, signal};
                let streams = signal(SignalKind::interrupt())
                    .and_then(|i| Ok((i, signal(SignalKind::terminate())?)));
                let (mut int, mut term) = match streams {
                    Ok(s) => {
                        let _ = ready.send(Ok(()));
                        s
                    }
                    Err(e) => {
                        let _ = ready.send(Err(e));
                        return;
                    }
                };
                loop {
                    tokio::select! {
                        _ = int.recv() => {}
                        _ = term.recv() => {}
                    }
                    if STOP.swap(true, Ordering::Relaxed) {
                        eprintln!("portico-sim: second signal, killing everything");
                        kill_everything();
                        std::process::exit(130);
                    }
                    eprintln!("portico-sim: stopping (signal again to kill everything at once)…");
                }
            });
        })?;
    registered
        .recv()
        .unwrap_or_else(|_| Err(std::io::Error::other("signal thread died")))
}
