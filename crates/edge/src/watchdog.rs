//! The listener watchdog: a node whose proxy listener stops listening (Pingora's listener task
//! failed to bind after the start-up checks, or died) stops with an error, instead of running
//! half-alive with its admin listener still answering `/healthz`. It reads the kernel's socket
//! table (`/proc/self/net/tcp`, `tcp6`) rather than connecting, so it never shows up as a
//! client (nor takes a `max_connections` slot).

use std::time::Duration;

/// How often the listener is checked.
pub const EVERY: Duration = Duration::from_secs(5);
/// Failed checks in a row, once the listener was seen, that stop the node.
pub const MISSES: u32 = 3;
/// How long the listener may take to appear at start-up (Pingora retries a busy port for 30 s).
pub const START_GRACE: Duration = Duration::from_secs(40);

/// What one check found, for the watch's policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Keep watching.
    Fine,
    /// Stop the node: the listener is gone.
    Gone,
}

/// The watch's policy for one listener: it must appear within [`START_GRACE`], and then may
/// be missing from at most [`MISSES`] − 1 checks in a row.
#[derive(Debug, Clone, Copy, Default)]
pub struct Watch {
    seen: bool,
    misses: u32,
}

impl Watch {
    /// Records a check made `since_start` after the node started.
    pub fn observe(&mut self, listening: bool, since_start: Duration) -> Verdict {
        if listening {
            self.seen = true;
            self.misses = 0;
            return Verdict::Fine;
        }
        self.misses += 1;
        let gone = if self.seen {
            self.misses >= MISSES
        } else {
            since_start >= START_GRACE
        };
        if gone { Verdict::Gone } else { Verdict::Fine }
    }
}

/// Whether a socket listens on TCP `port` in this process's network namespace, from a
/// `/proc/net/tcp`-format table (`st` 0A is LISTEN).
pub fn table_listens(table: &str, port: u16) -> bool {
    table.lines().skip(1).any(|line| {
        let mut fields = line.split_whitespace();
        let local = fields.nth(1);
        let state = fields.nth(1);
        state == Some("0A")
            && local
                .and_then(|l| l.rsplit(':').next())
                .and_then(|p| u16::from_str_radix(p, 16).ok())
                == Some(port)
    })
}

/// Whether something listens on TCP `port` here; `None` when the kernel's tables cannot be
/// read (the watch then stays off).
pub fn listening(port: u16) -> Option<bool> {
    let mut readable = false;
    for file in ["/proc/self/net/tcp", "/proc/self/net/tcp6"] {
        if let Ok(table) = std::fs::read_to_string(file) {
            readable = true;
            if table_listens(&table, port) {
                return Some(true);
            }
        }
    }
    readable.then_some(false)
}

/// Watches the proxy listener on `port` until it is gone, then returns why.
pub async fn watch(port: u16) -> String {
    watch_every(port, EVERY).await
}

/// [`watch`], checking every `every`. Never returns when the tables cannot be read.
pub async fn watch_every(port: u16, every: Duration) -> String {
    let start = tokio::time::Instant::now();
    let mut w = Watch::default();
    loop {
        tokio::time::sleep(every).await;
        let Some(ok) = tokio::task::spawn_blocking(move || listening(port))
            .await
            .ok()
            .flatten()
        else {
            log::warn!("cannot read /proc/self/net/tcp: the proxy listener is not watched");
            return std::future::pending().await;
        };
        if w.observe(ok, start.elapsed()) == Verdict::Gone {
            return format!(
                "the proxy listener on port {port} is gone (missing from the socket table {MISSES} checks in a row): stopping instead of running without it"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn a_listener_that_was_seen_may_miss_two_checks_not_three() {
        let mut w = Watch::default();
        assert_eq!(w.observe(true, S), Verdict::Fine);
        assert_eq!(w.observe(false, S * 2), Verdict::Fine);
        assert_eq!(w.observe(false, S * 3), Verdict::Fine);
        assert_eq!(
            w.observe(true, S * 4),
            Verdict::Fine,
            "seen again: the count restarts"
        );
        assert_eq!(w.observe(false, S * 5), Verdict::Fine);
        assert_eq!(w.observe(false, S * 6), Verdict::Fine);
        assert_eq!(w.observe(false, S * 7), Verdict::Gone);
    }

    #[test]
    fn a_listener_never_seen_gets_the_start_up_grace() {
        let mut w = Watch::default();
        for i in 1..40 {
            assert_eq!(w.observe(false, S * i), Verdict::Fine, "{i} s");
        }
        assert_eq!(w.observe(false, START_GRACE), Verdict::Gone);
    }

    #[test]
    fn the_socket_table_is_read_by_state_and_port() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0
   1: 0100007F:A5F0 0100007F:1F91 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0000000000000000 20 4 30 10 -1
";
        assert!(table_listens(table, 8080), "0A on 0x1F90");
        assert!(
            !table_listens(table, 42480),
            "an established connection is not a listener"
        );
        assert!(!table_listens(table, 8081), "a remote port is not ours");
        assert!(!table_listens("header only\n", 8080));
    }

    #[tokio::test]
    async fn a_listener_that_goes_away_is_reported_gone() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        assert_eq!(listening(port), Some(true));
        let watch = tokio::spawn(watch_every(port, Duration::from_millis(50)));
        // Seen a few times, then gone (had no check seen it, the start-up grace ends it too).
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!watch.is_finished(), "a live listener is not reported");
        drop(listener);
        assert_eq!(listening(port), Some(false));
        let why = tokio::time::timeout(START_GRACE * 2, watch)
            .await
            .expect("the watch ends")
            .expect("the watch task");
        assert!(why.contains(&port.to_string()), "{why}");
    }
}
