//! The demo's clients: a steady trickle of requests from every region through its entry, so
//! that a rollout's gates have traffic to judge and a bad push shows as client errors.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long one request may take before it counts as an error.
const TIMEOUT: Duration = Duration::from_secs(2);

/// Requests and errors (no answer, or a status of 500 and up) of one region's clients.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Requests answered or given up on.
    pub requests: u64,
    /// Of those, errors.
    pub errors: u64,
}

/// Clients sending requests through every entry at a fixed rate, each on a new connection,
/// until dropped.
pub struct Clients {
    stop: Arc<AtomicBool>,
    tallies: Arc<Mutex<Vec<Tally>>>,
    thread: Option<JoinHandle<()>>,
}

impl Clients {
    /// Starts `rate` requests per second through each of `entries` (open loop: a slow answer
    /// does not delay the next request).
    pub fn start(entries: Vec<SocketAddr>, rate: u32) -> std::io::Result<Clients> {
        let stop = Arc::new(AtomicBool::new(false));
        let tallies = Arc::new(Mutex::new(vec![Tally::default(); entries.len()]));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let thread = {
            let (stop, tallies) = (stop.clone(), tallies.clone());
            std::thread::Builder::new()
                .name("sim-clients".into())
                .spawn(move || rt.block_on(run(entries, rate, stop, tallies)))?
        };
        Ok(Clients {
            stop,
            tallies,
            thread: Some(thread),
        })
    }

    /// Each entry's tally since the last call (in entry order), reset to zero.
    pub fn take(&self) -> Vec<Tally> {
        let mut t = self.tallies.lock().unwrap_or_else(|e| e.into_inner());
        let taken = t.clone();
        t.iter_mut().for_each(|x| *x = Tally::default());
        taken
    }
}

impl Drop for Clients {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn run(
    entries: Vec<SocketAddr>,
    rate: u32,
    stop: Arc<AtomicBool>,
    tallies: Arc<Mutex<Vec<Tally>>>,
) {
    if rate == 0 || entries.is_empty() {
        return;
    }
    let period = Duration::from_secs_f64(1.0 / f64::from(rate));
    let start = Instant::now();
    let mut tick: u32 = 0;
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep_until((start + period * tick).into()).await;
        tick = tick.wrapping_add(1);
        for (i, &entry) in entries.iter().enumerate() {
            let tallies = tallies.clone();
            tokio::spawn(async move {
                let (status, _) = crate::bench::one(entry, TIMEOUT).await;
                let mut t = tallies.lock().unwrap_or_else(|e| e.into_inner());
                t[i].requests += 1;
                if status == 0 || status >= 500 {
                    t[i].errors += 1;
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portico_test_support::eventually_blocking;
    use std::io::{Read, Write};
    use std::net::TcpListener;

    /// A server answering `status` to every request, on a free port.
    fn answering(status: u16) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let mut buf = [0u8; 1024];
                let _ = conn.read(&mut buf);
                let _ = write!(
                    conn,
                    "HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
            }
        });
        addr
    }

    #[test]
    fn counts_requests_and_errors_per_entry() {
        let (good, bad) = (answering(200), answering(502));
        let clients = Clients::start(vec![good, bad], 50).unwrap();
        let mut total = [Tally::default(); 2];
        eventually_blocking("answers through both", Duration::from_secs(30), || {
            for (t, new) in total.iter_mut().zip(clients.take()) {
                t.requests += new.requests;
                t.errors += new.errors;
            }
            total.iter().all(|t| t.requests >= 5)
        });
        assert_eq!(total[0].errors, 0, "{total:?}");
        assert_eq!(total[1].errors, total[1].requests, "{total:?}");
    }
}
