//! The life of one client request as a sans-io state machine: which origin each attempt goes
//! to, which failure is retried, when a hedge is due, which attempt's response is delivered,
//! and what each attempt means for the origin's health. The edge feeds it events (a response
//! head, a failure, a timer) with the time, and carries out what it answers.

use crate::ejection::EjectionEvent;
use crate::hedge::{HedgeResult, hedgeable};
use crate::pool_state::{LossVerdict, PoolState};
use crate::retry::{RetryReason, is_idempotent, may_retry};
use crate::selection::next_rand;
use smallvec::SmallVec;
use std::time::{Duration, Instant};

/// What the request is, as far as retrying and hedging care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestKind {
    /// Safe to send twice (GET, HEAD, OPTIONS, PUT, DELETE).
    pub idempotent: bool,
    /// May be hedged (GET, HEAD, OPTIONS without a body).
    pub hedgeable: bool,
}

impl RequestKind {
    /// The kind of a request with `method`, with or without a body.
    pub fn new(method: &str, has_body: bool) -> Self {
        Self {
            idempotent: is_idempotent(method),
            hedgeable: hedgeable(method, has_body),
        }
    }
}

/// Where an attempt stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptState {
    /// Sent, no response head yet.
    Pending,
    /// Its response head was delivered to the client.
    Delivered,
    /// Failed.
    Failed(RetryReason),
    /// Cancelled: another attempt's response head came first.
    Cancelled,
}

/// One upstream attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempt {
    /// Index of the origin in the pool.
    pub origin: usize,
    /// When it was sent.
    pub started: Instant,
    /// Whether it is a hedge (sent while another attempt was pending).
    pub hedge: bool,
    /// Where it stands.
    pub state: AttemptState,
}

/// What the edge should do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Send the request to `origin` as attempt number `attempt`.
    Send {
        /// Attempt number (index into [`Lifecycle::attempts`]).
        attempt: usize,
        /// Origin index.
        origin: usize,
        /// `Some` when this is a retry after a failure of that reason.
        retry_of: Option<RetryReason>,
        /// Whether it is a hedge racing a pending attempt.
        hedge: bool,
    },
    /// Deliver attempt `attempt`'s response to the client, and cancel `cancel` if set.
    Deliver {
        /// The winning attempt.
        attempt: usize,
        /// The attempt to cancel.
        cancel: Option<usize>,
    },
    /// Nothing to do but wait for the attempts in flight (or the hedge timer).
    Wait,
    /// Answer the client with an error: every attempt failed and no retry may follow.
    GiveUp {
        /// The last failure (`None`: the pool had no origin to try).
        reason: Option<RetryReason>,
    },
}

/// What an attempt's outcome decided: the next step, and the side effects it implies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// What the edge should do next.
    pub next: Next,
    /// What the edge publishes and counts for it.
    pub effects: Effects,
}

/// The side effects of an attempt's outcome, beside the pool state the lifecycle updated
/// itself: what the edge publishes (an ejection) and counts (a retry or a denied retry).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Effects {
    /// The origin the outcome ejected, with the event (when two attempts settle at once and
    /// both eject, the cancelled one's).
    pub ejected: Option<(usize, EjectionEvent)>,
    /// The attempt that failed, and what became of the failure.
    pub failed: Option<Failed>,
}

/// A failed attempt and what the lifecycle made of its failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failed {
    /// The attempt number.
    pub attempt: usize,
    /// Why it failed.
    pub reason: RetryReason,
    /// Whether another attempt follows.
    pub retry: Retry,
}

/// What a failure led to, as the retry counters see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Another attempt is sent (a retry).
    Sent,
    /// A retry was considered and refused: the request is not safe to resend, or no attempt,
    /// origin or retry budget is left (a denied retry).
    Denied,
    /// No retry was considered: a response was delivered already, or another attempt is
    /// still in flight and is waited for.
    Skipped,
}

impl Decision {
    /// A decision without side effects.
    fn plain(next: Next) -> Self {
        Self {
            next,
            effects: Effects::default(),
        }
    }
}

/// One request's attempt plan.
#[derive(Debug, Clone)]
pub struct Lifecycle {
    kind: RequestKind,
    max_attempts: usize,
    tried: u64,
    /// Inline up to two (an attempt and its hedge or retry): no allocation per request.
    attempts: SmallVec<[Attempt; 2]>,
    delivered: Option<usize>,
    hedge: Option<HedgeResult>,
    rand: u64,
    /// The origin session affinity pins the request to (step 0 of selection).
    pinned: Option<usize>,
}

impl Lifecycle {
    /// A plan for a request of `kind` to `pool`, with `rand` seeding its draws.
    pub fn new(kind: RequestKind, max_attempts: usize, rand: u64) -> Self {
        Self {
            kind,
            max_attempts: max_attempts.max(1),
            tried: 0,
            attempts: SmallVec::new(),
            delivered: None,
            hedge: None,
            rand,
            pinned: None,
        }
    }

    /// Pins the request to `origin` (its session-affinity cookie named it): every pick goes
    /// there while the origin holds its pin ([`crate::selection::pin_holds`]; an origin tried
    /// already never does, so retries and hedges go elsewhere).
    pub fn pin(&mut self, origin: Option<usize>) {
        self.pinned = origin;
    }

    /// The origin the request is pinned to, if any.
    pub fn pinned(&self) -> Option<usize> {
        self.pinned
    }

    /// Draws and picks an origin not tried yet, the pin first.
    fn pick(&mut self, pool: &mut PoolState, now: Instant) -> Option<usize> {
        let r = self.draw();
        pool.select_pinned(now, self.tried, self.pinned, r)
    }

    /// The attempts so far.
    pub fn attempts(&self) -> &[Attempt] {
        &self.attempts
    }

    /// The origins tried, one bit per origin index.
    pub fn tried(&self) -> u64 {
        self.tried
    }

    /// The attempt whose response was delivered.
    pub fn delivered(&self) -> Option<&Attempt> {
        self.delivered.map(|i| &self.attempts[i])
    }

    /// How the hedge went, if one was due.
    pub fn hedge_result(&self) -> Option<HedgeResult> {
        self.hedge
    }

    fn pending(&self) -> impl Iterator<Item = usize> + '_ {
        self.attempts
            .iter()
            .enumerate()
            .filter(|(_, a)| a.state == AttemptState::Pending)
            .map(|(i, _)| i)
    }

    fn draw(&mut self) -> u64 {
        self.rand = next_rand(self.rand);
        self.rand
    }

    fn send(
        &mut self,
        origin: usize,
        now: Instant,
        retry_of: Option<RetryReason>,
        hedge: bool,
    ) -> Next {
        self.tried |= 1 << origin;
        self.attempts.push(Attempt {
            origin,
            started: now,
            hedge,
            state: AttemptState::Pending,
        });
        Next::Send {
            attempt: self.attempts.len() - 1,
            origin,
            retry_of,
            hedge,
        }
    }

    /// The first attempt: the pool's choice, or give up when it has no enabled origin.
    pub fn start(&mut self, pool: &mut PoolState, now: Instant) -> Next {
        if !self.attempts.is_empty() {
            return Next::Wait;
        }
        match self.pick(pool, now) {
            Some(origin) => self.send(origin, now, None, false),
            None => Next::GiveUp { reason: None },
        }
    }

    /// When a hedge is due: for a hedgeable request in a pool with hedging on, the hedge
    /// delay after the first attempt while it is the only one and still pending. Never when
    /// every origin of the pool has been tried (a pool of one origin): there is no origin a
    /// hedge could go to, so no timer is armed and nothing is counted as denied.
    pub fn hedge_due(&self, pool: &PoolState, now: Instant) -> Option<Instant> {
        if !self.kind.hedgeable || !pool.hedger().enabled() || self.hedge.is_some() {
            return None;
        }
        if self.tried.count_ones() as usize >= pool.len() {
            return None;
        }
        match self.attempts.as_slice() {
            [first] if first.state == AttemptState::Pending && self.delivered.is_none() => {
                Some(first.started + pool.hedger().delay(now))
            }
            _ => None,
        }
    }

    /// The hedge timer fired at `now`: send the hedge to the next origin in selection order,
    /// or record it as denied (budget spent, or no other origin) and keep waiting.
    pub fn on_hedge_timer(&mut self, pool: &mut PoolState, now: Instant) -> Next {
        match self.hedge_due(pool, now) {
            Some(due) if due <= now => {}
            _ => return Next::Wait,
        }
        let Some(origin) = self.pick(pool, now) else {
            self.hedge = Some(HedgeResult::Denied);
            return Next::Wait;
        };
        if !pool.try_hedge(now) {
            self.hedge = Some(HedgeResult::Denied);
            return Next::Wait;
        }
        // Won or lost is settled by the first response head; until then, count it lost.
        self.hedge = Some(HedgeResult::Lost);
        self.send(origin, now, None, true)
    }

    /// Attempt `attempt` received a response head with `status` at `now`.
    pub fn on_head(
        &mut self,
        pool: &mut PoolState,
        attempt: usize,
        status: u16,
        replayable: bool,
        now: Instant,
    ) -> Decision {
        let Some(a) = self.attempts.get(attempt).copied() else {
            return Decision::plain(Next::Wait);
        };
        if a.state != AttemptState::Pending || self.delivered.is_some() {
            return Decision::plain(Next::Wait);
        }
        if let Some(reason) = RetryReason::from_status(status) {
            return self.on_failure(pool, attempt, reason, replayable, false, now);
        }
        pool.record_head(now, a.origin, now.saturating_duration_since(a.started));
        let mut ejected = pool
            .record_outcome(now, a.origin, status < 500)
            .map(|e| (a.origin, e));
        self.attempts[attempt].state = AttemptState::Delivered;
        self.delivered = Some(attempt);
        if self.hedge == Some(HedgeResult::Lost) && a.hedge {
            self.hedge = Some(HedgeResult::Won);
        }
        let cancel = self.pending().next();
        if let Some(c) = cancel {
            let loser = self.attempts[c];
            self.attempts[c].state = AttemptState::Cancelled;
            let waited = now.saturating_duration_since(loser.started);
            if let LossVerdict::Failure(Some(e)) = pool.record_lost(now, loser.origin, waited) {
                ejected = Some((loser.origin, e));
            }
        }
        Decision {
            next: Next::Deliver { attempt, cancel },
            effects: Effects {
                ejected,
                failed: None,
            },
        }
    }

    /// Attempt `attempt` failed at `now` for `reason`. `replayable`: the whole request body
    /// is held and can be sent again. `reused_connection`: the attempt went over a pooled
    /// connection (a drop there says little about the origin). Retries go to an origin not
    /// tried yet, only when the request is safe to resend, nothing was delivered, attempts
    /// are left and the pool's retry budget allows it; while another attempt is in flight
    /// (a hedge race), that one is waited for instead. An attempt settled already (its
    /// response given up on and passed to the client, or delivered) is never retried: what
    /// it sent is on its way.
    pub fn on_failure(
        &mut self,
        pool: &mut PoolState,
        attempt: usize,
        reason: RetryReason,
        replayable: bool,
        reused_connection: bool,
        now: Instant,
    ) -> Decision {
        let mut ejected = None;
        let pending = self
            .attempts
            .get(attempt)
            .is_some_and(|a| a.state == AttemptState::Pending);
        if let Some(a) = self.attempts.get(attempt).copied()
            && pending
        {
            self.attempts[attempt].state = AttemptState::Failed(reason);
            let counts = !(reused_connection && reason == RetryReason::ConnectionDropped);
            if counts {
                if reason == RetryReason::ResponseTimeout {
                    pool.record_timeout(now, a.origin);
                }
                ejected = pool
                    .record_outcome(now, a.origin, false)
                    .map(|e| (a.origin, e));
            }
        }
        let (next, retry) = if pending {
            self.after_failure(pool, reason, replayable, now)
        } else {
            (
                Next::GiveUp {
                    reason: Some(reason),
                },
                Retry::Skipped,
            )
        };
        Decision {
            next,
            effects: Effects {
                ejected,
                failed: Some(Failed {
                    attempt,
                    reason,
                    retry,
                }),
            },
        }
    }

    /// What follows a failure of an attempt that was pending: nothing while a response was
    /// delivered or another attempt is in flight, else a retry when one may follow, else
    /// giving up.
    fn after_failure(
        &mut self,
        pool: &mut PoolState,
        reason: RetryReason,
        replayable: bool,
        now: Instant,
    ) -> (Next, Retry) {
        let give_up = Next::GiveUp {
            reason: Some(reason),
        };
        if self.delivered.is_some() {
            return (give_up, Retry::Skipped);
        }
        if self.pending().next().is_some() {
            return (Next::Wait, Retry::Skipped);
        }
        if may_retry(reason, self.kind.idempotent, replayable)
            && self.attempts.len() < self.max_attempts
            && let Some(origin) = self.pick(pool, now)
            && pool.try_retry(now)
        {
            return (self.send(origin, now, Some(reason), false), Retry::Sent);
        }
        (give_up, Retry::Denied)
    }

    /// How long attempt `attempt` has been waiting at `now`.
    pub fn waited(&self, attempt: usize, now: Instant) -> Duration {
        self.attempts
            .get(attempt)
            .map_or(Duration::ZERO, |a| now.saturating_duration_since(a.started))
    }
}

#[cfg(test)]
mod tests;
