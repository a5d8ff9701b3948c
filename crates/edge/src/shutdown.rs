//! Stopping a node: SIGTERM or SIGQUIT (or an in-process stop) drains, waits for the requests
//! in flight, then stops; SIGINT stops at once.

use crate::state::NodeState;
use async_trait::async_trait;
use pingora_core::server::{ShutdownSignal, ShutdownSignalWatch};
use std::sync::Arc;
use tokio::sync::Notify;

/// Asks a running node to drain and stop, from the same process.
#[derive(Clone, Default)]
pub struct Stopper(Arc<Notify>);

impl Stopper {
    /// Requests a graceful stop (drain first). Safe to call more than once.
    pub fn stop(&self) {
        self.0.notify_one();
    }
}

/// Pingora's shutdown watch for a node: while draining, `/healthz` answers 503 and the node
/// keeps serving for `node.drain_ms`, so an anycast announcement can be withdrawn first.
pub struct DrainingShutdown {
    /// The node to mark as draining.
    pub node: Arc<NodeState>,
    /// In-process stop requests.
    pub stopper: Stopper,
    /// Whether to listen for SIGTERM and SIGINT (the binary does, in-process nodes do not).
    pub handle_signals: bool,
}

/// Longest wait for the requests in flight once the drain time is over.
pub const FINISH_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

enum Request {
    Drain(&'static str),
    Fast,
}

impl DrainingShutdown {
    /// Waits until no request is in flight, at most [`FINISH_GRACE`]: Pingora cuts whatever
    /// is still running when its runtimes stop, so the stop waits here first.
    async fn wait_for_requests(&self) {
        let deadline = tokio::time::Instant::now() + FINISH_GRACE;
        let mut tick = tokio::time::interval(std::time::Duration::from_millis(5));
        loop {
            let n = self.node.in_flight();
            if n == 0 {
                return;
            }
            if tokio::time::Instant::now() >= deadline {
                log::warn!(
                    "stopping with {n} request{} still in flight after {} s",
                    if n == 1 { "" } else { "s" },
                    FINISH_GRACE.as_secs()
                );
                return;
            }
            tick.tick().await;
        }
    }

    async fn wait(&self) -> Request {
        use tokio::signal::unix::{SignalKind, signal};
        let stop = self.stopper.0.notified();
        if !self.handle_signals {
            stop.await;
            return Request::Drain("stop requested");
        }
        let (Ok(mut term), Ok(mut int), Ok(mut quit)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
            signal(SignalKind::quit()),
        ) else {
            log::warn!(
                "cannot listen for SIGTERM/SIGINT; only an in-process stop will end this node"
            );
            stop.await;
            return Request::Drain("stop requested");
        };
        tokio::select! {
            _ = term.recv() => Request::Drain("SIGTERM"),
            _ = quit.recv() => Request::Drain("SIGQUIT"),
            _ = int.recv() => Request::Fast,
            _ = stop => Request::Drain("stop requested"),
        }
    }
}

#[async_trait]
impl ShutdownSignalWatch for DrainingShutdown {
    async fn recv(&self) -> ShutdownSignal {
        match self.wait().await {
            Request::Fast => {
                log::info!("SIGINT: stopping now");
                ShutdownSignal::FastShutdown
            }
            Request::Drain(why) => {
                let drain = self.node.snapshot().config.node.drain;
                self.node.start_draining();
                log::info!(
                    "{why}: draining for {} ms (/healthz answers 503), then stopping",
                    drain.as_millis()
                );
                tokio::time::sleep(drain).await;
                self.wait_for_requests().await;
                ShutdownSignal::GracefulTerminate
            }
        }
    }
}
