//! The decision trace: a request with `X-Portico-Debug: 1` from loopback or a trusted proxy
//! gets `X-Portico-Decision`, naming the route, the pool, every candidate with its health,
//! latency, priority and weight, the band, the rules that matched, and each attempt with its
//! outcome.

use crate::live_pool::LivePool;
use std::fmt::Write;

/// The request header that asks for a trace.
pub const DEBUG_HEADER: &str = "x-portico-debug";

/// The response header that carries it.
pub const DECISION_HEADER: &str = "X-Portico-Decision";

/// What one request's routing decided, built as the request goes.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Trace {
    route: Option<String>,
    pool: Option<String>,
    candidates: String,
    band: Vec<String>,
    attempts: Vec<(String, String)>,
    answered: bool,
    /// The rules that matched (`set/rule`), in order.
    rules: Vec<String>,
    /// The rule whose rate limit refused the request.
    rate_limited: Option<String>,
}

impl Trace {
    /// The route and pool chosen, with the candidates and band as they stand now.
    pub fn routed(&mut self, route: &str, pool: &LivePool) {
        self.route = Some(route.to_string());
        self.pool = Some(pool.config.name.clone());
        let state = pool.state();
        let band = state.band(0);
        let mut list = Vec::new();
        for (i, (o, c)) in pool
            .config
            .origins
            .iter()
            .zip(state.candidates())
            .enumerate()
        {
            let mut s = format!("{} p{} w{} ", o.name, c.priority, c.weight);
            s.push_str(if !c.enabled {
                "disabled"
            } else if c.ejected {
                "ejected"
            } else if c.healthy {
                "healthy"
            } else {
                "unhealthy"
            });
            match c.latency {
                Some(l) => {
                    let _ = write!(s, " {:.1}ms", l.as_secs_f64() * 1e3);
                }
                None => s.push_str(" latency-unknown"),
            }
            list.push(s);
            if band & (1 << i) != 0 {
                self.band.push(o.name.clone());
            }
        }
        self.candidates = list.join(", ");
    }

    /// The route matched and its rules evaluated: the rules that matched, `set/rule`, in
    /// evaluation order.
    pub fn rules(&mut self, route: &str, matched: impl Iterator<Item = String>) {
        self.route = Some(route.to_string());
        self.rules = matched.collect();
    }

    /// The rate limit of `rule` (`set/rule`) refused the request.
    pub fn rate_limited(&mut self, rule: &str) {
        self.rate_limited = Some(rule.to_string());
    }

    /// An attempt on `origin` begins.
    pub fn attempt(&mut self, origin: &str) {
        self.attempts
            .push((origin.to_string(), "pending".to_string()));
    }

    /// The outcome of the latest attempt (a status, or the failure that ended it).
    pub fn outcome(&mut self, outcome: impl Into<String>) {
        if let Some(last) = self.attempts.last_mut() {
            last.1 = outcome.into();
        }
    }

    /// The outcome of attempt number `attempt` (hedged requests have two in flight).
    pub fn outcome_at(&mut self, attempt: usize, outcome: impl Into<String>) {
        if let Some(a) = self.attempts.get_mut(attempt) {
            a.1 = outcome.into();
        }
    }

    /// The latest attempt's response goes to the client.
    pub fn answered(&mut self) {
        self.answered = true;
    }

    /// The header value: one line of visible ASCII.
    pub fn header(&self) -> String {
        let mut s = String::new();
        let _ = write!(
            s,
            "route={}; pool={}",
            self.route.as_deref().unwrap_or("none"),
            self.pool.as_deref().unwrap_or("none")
        );
        if !self.rules.is_empty() {
            let _ = write!(s, "; rules=[{}]", self.rules.join(", "));
        }
        if let Some(rule) = &self.rate_limited {
            let _ = write!(s, "; rate-limited-by={rule}");
        }
        if self.pool.is_some() {
            let _ = write!(
                s,
                "; candidates=[{}]; band=[{}]; rule=lowest priority, then latency within the band, then weight",
                self.candidates,
                self.band.join(", ")
            );
        }
        let attempts: Vec<String> = self
            .attempts
            .iter()
            .map(|(o, r)| format!("{o}: {r}"))
            .collect();
        let _ = write!(s, "; attempts=[{}]", attempts.join(", "));
        if let (true, Some((origin, _))) = (self.answered, self.attempts.last()) {
            let _ = write!(s, "; answered-by={origin}");
        }
        s.retain(|c| c.is_ascii_graphic() || c == ' ');
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unrouted_request_says_so() {
        assert_eq!(
            Trace::default().header(),
            "route=none; pool=none; attempts=[]"
        );
    }

    #[test]
    fn attempts_keep_their_order_and_the_last_answer_names_the_origin() {
        let mut t = Trace::default();
        t.attempt("a");
        t.outcome("connect_refused");
        t.attempt("b");
        t.outcome("200");
        t.answered();
        let h = t.header();
        assert!(
            h.ends_with("attempts=[a: connect_refused, b: 200]; answered-by=b"),
            "{h}"
        );
        let mut ruled = Trace::default();
        ruled.rules(
            "api",
            ["edge/hsts".to_string(), "edge/limit".to_string()].into_iter(),
        );
        ruled.rate_limited("edge/limit");
        assert_eq!(
            ruled.header(),
            "route=api; pool=none; rules=[edge/hsts, edge/limit]; rate-limited-by=edge/limit; attempts=[]"
        );
        let mut failed = Trace::default();
        failed.attempt("a");
        failed.outcome("response_timeout");
        assert!(!failed.header().contains("answered-by"));
    }
}
