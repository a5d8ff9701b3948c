//! The request path's side of the rollout gates: every answer counted on the version it ran
//! ([`VersionCounters`]), under one short lock and with no allocation per request.

use portico_core::rollout::{Figures, SwitchBaseline, VersionCounters, is_error};
use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime};

/// A store node's per-version counters.
#[derive(Debug)]
pub struct RolloutCounters(Mutex<VersionCounters>);

impl RolloutCounters {
    /// Counters for a node that runs `version`.
    pub fn new(version: &str) -> Self {
        RolloutCounters(Mutex::new(VersionCounters::new(version)))
    }

    /// An answer of `status` that took `latency`, of a request that ran on `version`;
    /// `refused` when Portico wrote it itself for a route or rule reason ([`is_error`]).
    /// Not counted: no answer (status 0, the client left), a WebSocket (101: its time is the
    /// tunnel's), and a request that started on another version than the one running now (it
    /// finished across a switch: it belongs to neither side of the gate's comparison).
    pub fn record(&self, version: &str, status: u16, refused: bool, latency: Duration) {
        if status == 0 || status == 101 {
            return;
        }
        let now = portico_store::unix_millis(SystemTime::now());
        let mut counters = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if counters.running() == version {
            counters.record(now, is_error(status, refused), latency);
        }
    }

    /// The node now runs `version` (nothing changes when it ran it already).
    pub fn switch(&self, version: &str) {
        let now = portico_store::unix_millis(SystemTime::now());
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .switch(version, now);
    }

    /// The figures per version and the baseline frozen at the last switch, for the report.
    pub fn report(&self) -> (BTreeMap<String, Figures>, Option<SwitchBaseline>) {
        let counters = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        (counters.figures(), counters.baseline().cloned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_count_on_the_version_they_ran_and_errors_as_the_spec_says() {
        let c = RolloutCounters::new("v1");
        let ms = Duration::from_millis(3);
        c.record("v1", 200, false, ms);
        c.record("v1", 502, false, ms);
        c.record("v1", 404, true, ms); // no route: Portico's own refusal
        c.record("v1", 404, false, ms); // the origin's 404
        c.record("v1", 413, false, ms); // client-caused
        c.record("v1", 0, false, ms); // the client left: no answer
        c.record("v1", 101, false, ms); // a WebSocket
        let (figures, baseline) = c.report();
        assert_eq!((figures["v1"].requests, figures["v1"].errors), (5, 2));
        assert!(baseline.is_none());

        c.switch("v2");
        c.record("v1", 500, false, ms); // started on v1, finished after the switch
        c.record("v2", 200, false, ms);
        let (figures, baseline) = c.report();
        assert_eq!((figures["v2"].requests, figures["v2"].errors), (1, 0));
        assert_eq!(figures["v1"].requests, 5, "v1's figures are frozen");
        let baseline = baseline.expect("frozen at the switch");
        assert_eq!(baseline.to, "v2");
        assert_eq!((baseline.figures.requests, baseline.figures.errors), (5, 2));
    }
}
