//! Numbers from one run's request log and origin counters: errors, time to move away from the
//! faulty origin, time to fail back, latency and origin load in the fault window.

use super::load::{Request, Tally};
use serde::Serialize;
use std::collections::BTreeMap;

/// When the fault started and ended, ms since the start of the run.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Phases {
    /// Fault switched on.
    pub fault_ms: f64,
    /// Fault switched off (recovery).
    pub recover_ms: f64,
    /// End of the load.
    pub end_ms: f64,
}

/// What one proxy did through one fault.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// Requests sent.
    pub requests: usize,
    /// Requests that did not get a 2xx (transport errors and client timeouts included).
    pub errors: usize,
    /// Errors by status (`0` = transport error or client timeout).
    pub error_codes: BTreeMap<u16, usize>,
    /// How long after the fault the faulty origin still received requests or clients still saw
    /// errors, ms (0: never after the fault).
    pub out_after_ms: f64,
    /// Share of the requests sent from one second after the fault to the recovery that reached
    /// the faulty origin.
    pub faulty_share_after_1s: f64,
    /// How long after recovery the origin received requests again, ms (`None`: not before the end).
    pub failback_ms: Option<f64>,
    /// Latency percentiles of requests sent during the fault, ms.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Maximum.
    pub max_ms: f64,
    /// Requests all origins received from the fault to the recovery ÷ client requests sent in
    /// that time (probes not counted): 1.0 is one origin request per client request; retries
    /// and hedges add to it, client errors that never reached an origin take from it.
    pub origin_load: f64,
    /// The same over the whole run: origin requests by the end ÷ client requests.
    pub origin_load_run: f64,
}

/// Origin request counters read at three moments of a run.
#[derive(Debug, Clone, Serialize)]
pub struct Counters {
    /// Just before the fault was switched on.
    pub at_fault: Tally,
    /// Just after it was switched off.
    pub at_recovery: Tally,
    /// After the last client request had its answer (or gave up).
    pub at_end: Tally,
}

/// Origin requests received between two counter readings ÷ client requests sent between them.
pub fn origin_load(requests: &[Request], from: &Tally, to: &Tally) -> f64 {
    let sent = requests
        .iter()
        .filter(|r| r.at_ms >= from.at_ms && r.at_ms < to.at_ms)
        .count();
    let received: u64 = to.requests.iter().sum::<u64>() - from.requests.iter().sum::<u64>();
    if sent == 0 {
        0.0
    } else {
        received as f64 / sent as f64
    }
}

/// Computes the outcome; `faulty` is the index of the failing origin in the tallies.
pub fn outcome(
    requests: &[Request],
    tallies: &[Tally],
    counters: &Counters,
    faulty: usize,
    p: Phases,
) -> Outcome {
    let failed: Vec<&Request> = requests
        .iter()
        .filter(|r| !(200..300).contains(&r.status))
        .collect();
    let mut error_codes = BTreeMap::new();
    for r in &failed {
        *error_codes.entry(r.status).or_insert(0) += 1;
    }
    let in_fault = |t: f64| t >= p.fault_ms && t < p.recover_ms;
    let last_error = failed
        .iter()
        .map(|r| r.at_ms)
        .filter(|&t| in_fault(t))
        .fold(None, max_opt);
    let mut last_hit = None;
    for w in tallies.windows(2) {
        if in_fault(w[1].at_ms) && w[1].requests[faulty] > w[0].requests[faulty] {
            last_hit = max_opt(last_hit, w[1].at_ms);
        }
    }
    let out_after_ms = max_opt(last_error, last_hit.unwrap_or(p.fault_ms))
        .map_or(0.0, |t| (t - p.fault_ms).max(0.0));

    let later = p.fault_ms + 1000.0;
    let sent_later = requests
        .iter()
        .filter(|r| r.at_ms >= later && r.at_ms < p.recover_ms)
        .count();
    let count_at = |t: f64| {
        tallies
            .iter()
            .rfind(|x| x.at_ms <= t)
            .map_or(0, |x| x.requests[faulty])
    };
    let reached = count_at(p.recover_ms).saturating_sub(count_at(later));
    let faulty_share_after_1s = if sent_later == 0 {
        0.0
    } else {
        reached as f64 / sent_later as f64
    };

    let at_recovery = count_at(p.recover_ms);
    let failback_ms = tallies
        .iter()
        .find(|x| x.at_ms > p.recover_ms && x.requests[faulty] > at_recovery)
        .map(|x| x.at_ms - p.recover_ms);

    let mut lat: Vec<f64> = requests
        .iter()
        .filter(|r| in_fault(r.at_ms))
        .map(|r| r.latency_ms)
        .collect();
    lat.sort_by(f64::total_cmp);
    let start = Tally {
        at_ms: f64::NEG_INFINITY,
        requests: vec![0; counters.at_end.requests.len()],
    };
    Outcome {
        requests: requests.len(),
        errors: failed.len(),
        error_codes,
        out_after_ms,
        faulty_share_after_1s,
        failback_ms,
        p50_ms: percentile(&lat, 0.50),
        p99_ms: percentile(&lat, 0.99),
        max_ms: lat.last().copied().unwrap_or(0.0),
        origin_load: origin_load(requests, &counters.at_fault, &counters.at_recovery),
        origin_load_run: origin_load(
            requests,
            &start,
            &Tally {
                at_ms: f64::INFINITY,
                ..counters.at_end.clone()
            },
        ),
    }
}

fn max_opt(a: Option<f64>, b: f64) -> Option<f64> {
    Some(a.map_or(b, |a| a.max(b)))
}

/// Nearest-rank percentile of sorted values (0 when empty).
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Requests per time bucket: served by each origin (by name, in `origins` order), and errors.
#[derive(Debug, Clone, Serialize)]
pub struct Bucket {
    /// Bucket start, ms.
    pub at_ms: f64,
    /// Successful requests by serving origin.
    pub served: Vec<usize>,
    /// Failed requests.
    pub errors: usize,
}

/// Groups requests into buckets of `width_ms` by send time.
pub fn buckets(
    requests: &[Request],
    origins: &[String],
    width_ms: f64,
    end_ms: f64,
) -> Vec<Bucket> {
    let n = (end_ms / width_ms).ceil() as usize;
    let mut out: Vec<Bucket> = (0..n)
        .map(|i| Bucket {
            at_ms: i as f64 * width_ms,
            served: vec![0; origins.len()],
            errors: 0,
        })
        .collect();
    for r in requests {
        let Some(b) = out.get_mut((r.at_ms / width_ms) as usize) else {
            continue;
        };
        match (&r.served_by, (200..300).contains(&r.status)) {
            (Some(name), true) => {
                if let Some(i) = origins.iter().position(|o| o == name) {
                    b.served[i] += 1;
                }
            }
            _ => b.errors += 1,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(at_ms: f64, status: u16, by: &str, latency_ms: f64) -> Request {
        Request {
            at_ms,
            latency_ms,
            status,
            served_by: Some(by.to_string()),
        }
    }

    fn tally(at_ms: f64, a: u64, b: u64) -> Tally {
        Tally {
            at_ms,
            requests: vec![a, b],
        }
    }

    fn counters(fault: (f64, u64, u64), recovery: (f64, u64, u64), end: (u64, u64)) -> Counters {
        Counters {
            at_fault: tally(fault.0, fault.1, fault.2),
            at_recovery: tally(recovery.0, recovery.1, recovery.2),
            at_end: tally(9999.0, end.0, end.1),
        }
    }

    fn none() -> Counters {
        counters((1000.0, 0, 0), (3000.0, 0, 0), (0, 0))
    }

    const P: Phases = Phases {
        fault_ms: 1000.0,
        recover_ms: 3000.0,
        end_ms: 5000.0,
    };

    #[test]
    fn counts_errors_and_the_time_the_fault_still_showed() {
        let requests = vec![
            req(500.0, 200, "a", 1.0),
            req(1100.0, 502, "a", 2.0),
            req(1400.0, 0, "", 2000.0),
            req(1500.0, 200, "b", 3.0),
            req(2500.0, 200, "b", 4.0),
        ];
        let tallies = vec![
            tally(900.0, 10, 5),
            tally(1200.0, 11, 6),
            tally(1300.0, 11, 7),
            tally(4000.0, 11, 9),
        ];
        let o = outcome(&requests, &tallies, &none(), 0, P);
        assert_eq!(o.requests, 5);
        assert_eq!(o.errors, 2);
        assert_eq!(o.error_codes, BTreeMap::from([(0, 1), (502, 1)]));
        assert_eq!(
            o.out_after_ms, 400.0,
            "the last error was sent 400 ms after the fault"
        );
        assert_eq!(o.failback_ms, None, "a never got a request after recovery");
        assert_eq!(o.max_ms, 2000.0);
        assert_eq!(o.p50_ms, 3.0);
    }

    #[test]
    fn failback_is_the_first_tally_with_new_requests_after_recovery() {
        let tallies = vec![
            tally(2900.0, 10, 5),
            tally(3100.0, 10, 8),
            tally(3350.0, 12, 9),
        ];
        let o = outcome(&[], &tallies, &none(), 0, P);
        assert_eq!(o.failback_ms, Some(350.0));
        assert_eq!(o.out_after_ms, 0.0);
        assert_eq!(o.errors, 0);
    }

    #[test]
    fn share_after_one_second_compares_origin_counts_with_requests_sent() {
        let requests: Vec<Request> = (0..100)
            .map(|i| req(2000.0 + f64::from(i), 200, "b", 1.0))
            .collect();
        let tallies = vec![tally(1999.0, 50, 0), tally(2999.0, 52, 98)];
        let o = outcome(&requests, &tallies, &none(), 0, P);
        assert!((o.faulty_share_after_1s - 0.02).abs() < 1e-9);
        assert_eq!(o.out_after_ms, 1999.0);
    }

    #[test]
    fn origin_load_counts_origin_requests_per_client_request_in_the_fault_window() {
        // 400 client requests, one every 10 ms; 200 of them (1000–2999 ms) in the fault window.
        let requests: Vec<Request> = (0..400)
            .map(|i| req(f64::from(i) * 10.0, 200, "b", 1.0))
            .collect();
        // 100 requests before the fault, 200 + 20 hedges or retries in the window, 460 in all.
        let c = counters((1000.0, 60, 40), (3000.0, 140, 180), (200, 260));
        let o = outcome(&requests, &[], &c, 0, P);
        assert!((o.origin_load - 1.10).abs() < 1e-9, "{}", o.origin_load);
        assert!(
            (o.origin_load_run - 1.15).abs() < 1e-9,
            "{}",
            o.origin_load_run
        );
        // Errors that never reached an origin count as no origin request.
        let c = counters((1000.0, 60, 40), (3000.0, 60, 190), (60, 290));
        let o = outcome(&requests, &[], &c, 0, P);
        assert!((o.origin_load - 0.75).abs() < 1e-9, "{}", o.origin_load);
        assert_eq!(origin_load(&[], &c.at_fault, &c.at_recovery), 0.0);
    }

    #[test]
    fn percentiles_use_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), 50.0);
        assert_eq!(percentile(&v, 0.99), 99.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
    }

    #[test]
    fn buckets_split_by_origin_and_errors() {
        let requests = vec![
            req(10.0, 200, "a", 1.0),
            req(20.0, 200, "b", 1.0),
            req(260.0, 503, "a", 1.0),
        ];
        let b = buckets(&requests, &["a".into(), "b".into()], 250.0, 500.0);
        assert_eq!(b.len(), 2);
        assert_eq!(b[0].served, vec![1, 1]);
        assert_eq!(b[1].errors, 1);
    }
}
