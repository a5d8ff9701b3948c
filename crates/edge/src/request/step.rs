//! One step of a request's lifecycle at the edge: the side effects the core's decision comes
//! with are carried out here (an ejection published, a failure counted and traced), the same
//! for Pingora's proxy loop and for hedged requests.

use crate::live_pool::LivePool;
use crate::metrics::Metrics;
use crate::request::ctx::RequestCtx;
use portico_core::lifecycle::{Decision, Failed, Next, Retry};

impl RequestCtx {
    /// Carries out what an attempt's outcome implies besides its next step: publishes the
    /// ejection it caused, counts its failure as a retry or a denied retry and notes it in the
    /// trace, and plans the attempt a retry sends (Pingora's loop asks for it in
    /// `upstream_peer`). Returns the next step.
    pub(crate) fn step(&mut self, metrics: &Metrics, pool: &LivePool, decision: Decision) -> Next {
        let Decision { next, effects } = decision;
        if let Some((idx, event)) = effects.ejected {
            pool.ejection_event(idx, event);
        }
        if let Some(failed) = effects.failed {
            self.count_failure(metrics, pool, failed);
        }
        if let Next::Send {
            attempt, origin, ..
        } = next
        {
            self.planned = Some((attempt, origin));
        }
        next
    }

    /// Counts a failed attempt in the metrics and notes it in the trace.
    fn count_failure(&mut self, metrics: &Metrics, pool: &LivePool, failed: Failed) {
        let Failed {
            attempt,
            reason,
            retry,
        } = failed;
        if let Some(t) = &mut self.trace {
            let what = match retry {
                Retry::Sent => "retried",
                Retry::Denied | Retry::Skipped => "not retried",
            };
            t.outcome_at(attempt, format!("{} ({what})", reason.label()));
        }
        let labels = [pool.config.name.as_str(), reason.label()];
        match retry {
            Retry::Sent => metrics.retries.with_label_values(&labels).inc(),
            Retry::Denied => metrics.retries_denied.with_label_values(&labels).inc(),
            Retry::Skipped => {}
        }
    }
}
