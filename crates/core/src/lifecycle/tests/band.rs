//! The latency band against a reference model: a discrete-event simulation of a pool (probes,
//! clients, origins with steady latencies, hedging on as by default) driven through
//! [`Lifecycle`] and [`PoolState`] in simulated time with seeded draws, so every run is the
//! same. The model: origins whose probe latency is within `latency_sensitivity_ms` of the
//! fastest share the traffic by weight; the rest get none.

use super::*;
use crate::config::parse;
use crate::health::ProbeResult;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

const MS: Duration = Duration::from_millis(1);

/// One simulated origin: its answer time, and from when (if ever) it answers slower than
/// its probes say.
#[derive(Debug, Clone, Copy)]
struct Origin {
    weight: u32,
    latency: Duration,
    /// `(from, extra)`: from `from` on, live requests take `extra` longer (probes do not).
    slower: Option<(Duration, Duration)>,
    /// From then on, live requests never get an answer (probes still do).
    hangs_from: Option<Duration>,
}

fn origin(weight: u32, latency_ms: u64) -> Origin {
    Origin {
        weight,
        latency: MS * latency_ms as u32,
        slower: None,
        hangs_from: None,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    Probe,
    Arrive { client: usize },
    HedgeTimer { request: u64 },
    Head { request: u64, attempt: usize },
    Timeout { request: u64, attempt: usize },
}

struct Request {
    lifecycle: Lifecycle,
    client: usize,
    done: bool,
    started: Duration,
}

struct Sim {
    t0: Instant,
    now: Duration,
    pool: PoolState,
    origins: Vec<Origin>,
    queue: BinaryHeap<Reverse<(Duration, u64, Event)>>,
    seq: u64,
    rng: u64,
    requests: HashMap<u64, Request>,
    /// Requests served per origin, from `count_from` on.
    served: Vec<usize>,
    count_from: Duration,
    /// The origin each request was first sent to, in order, from `count_from` on.
    first: Vec<usize>,
    /// A client's pause between an answer and its next request.
    think: Duration,
    /// Each answered request's latency, from `count_from` on.
    latencies: Vec<Duration>,
    /// Attempts that timed out.
    timeouts: usize,
    response: Duration,
}

impl Sim {
    fn new(origins: &[Origin], extra: &str) -> Self {
        let list: Vec<String> = origins
            .iter()
            .enumerate()
            .map(|(i, o)| {
                format!(
                    r#"{{"name":"o{i}","address":"127.0.0.1:{}","weight":{}}}"#,
                    i + 1,
                    o.weight
                )
            })
            .collect();
        let text = format!(
            r#"{{"pools":[{{"name":"p","origins":[{}],
                 "health_probe":{{"interval_ms":300,"timeout_ms":250}}{extra}}}],
                 "routes":[{{"name":"r","pool":"p"}}]}}"#,
            list.join(",")
        );
        let config = parse(&text).unwrap().pools.remove(0);
        let t0 = Instant::now();
        let mut sim = Self {
            t0,
            now: Duration::ZERO,
            pool: PoolState::new(&config, t0),
            origins: origins.to_vec(),
            queue: BinaryHeap::new(),
            seq: 0,
            rng: 0x5eed,
            requests: HashMap::new(),
            served: vec![0; origins.len()],
            count_from: Duration::ZERO,
            first: Vec::new(),
            think: Duration::ZERO,
            latencies: Vec::new(),
            timeouts: 0,
            response: config.timeouts.response,
        };
        sim.at(Duration::ZERO, Event::Probe);
        sim
    }

    fn at(&mut self, when: Duration, event: Event) {
        self.seq += 1;
        self.queue.push(Reverse((when, self.seq, event)));
    }

    fn draw(&mut self) -> u64 {
        self.rng = next_rand(self.rng);
        self.rng
    }

    /// Up to ±3 % of `d` and ±50 µs of noise, as real answers have.
    fn jitter(&mut self, d: Duration) -> Duration {
        let r = self.draw();
        let span = d.as_secs_f64() * 0.03 + 50e-6;
        let f = (r % 2001) as f64 / 1000.0 - 1.0;
        Duration::from_secs_f64((d.as_secs_f64() + f * span).max(10e-6))
    }

    fn live_latency(&self, origin: usize) -> Duration {
        let o = self.origins[origin];
        match o.slower {
            Some((from, extra)) if self.now >= from => o.latency + extra,
            _ => o.latency,
        }
    }

    /// Starts `clients` clients at `start`, each sending its next request `think` after its
    /// last answer; runs until `until`, counting what is served from `count_from`.
    fn run(&mut self, clients: usize, think: Duration, count_from: Duration, until: Duration) {
        self.count_from = count_from;
        self.think = think;
        for c in 0..clients {
            self.at(MS * (100 + c as u32), Event::Arrive { client: c });
        }
        while let Some(Reverse((when, _, event))) = self.queue.pop() {
            if when > until {
                break;
            }
            self.now = when;
            let now = self.t0 + when;
            match event {
                Event::Probe => {
                    for i in 0..self.origins.len() {
                        // A probe opens a connection: a little over the answer time.
                        let rtt = self.jitter(self.origins[i].latency + MS / 5);
                        self.pool.record_probe(now, i, ProbeResult::Success(rtt));
                    }
                    self.at(when + MS * 300, Event::Probe);
                }
                Event::Arrive { client } => {
                    let id = self.seq;
                    self.pool.record_request(now);
                    let r = self.draw();
                    let mut lifecycle = Lifecycle::new(RequestKind::new("GET", false), 3, r);
                    let next = lifecycle.start(&mut self.pool, now);
                    self.requests.insert(
                        id,
                        Request {
                            lifecycle,
                            client,
                            done: false,
                            started: when,
                        },
                    );
                    self.carry_out(id, next);
                }
                Event::HedgeTimer { request } => {
                    let Some(req) = self.requests.get_mut(&request) else {
                        continue;
                    };
                    if req.done {
                        continue;
                    }
                    let next = req.lifecycle.on_hedge_timer(&mut self.pool, now);
                    self.carry_out(request, next);
                }
                Event::Head { request, attempt } => {
                    let Some(req) = self.requests.get_mut(&request) else {
                        continue;
                    };
                    if req.done {
                        continue;
                    }
                    let next = req
                        .lifecycle
                        .on_head(&mut self.pool, attempt, 200, true, now)
                        .next;
                    self.carry_out(request, next);
                }
                Event::Timeout { request, attempt } => {
                    let Some(req) = self.requests.get_mut(&request) else {
                        continue;
                    };
                    if req.done || req.lifecycle.attempts()[attempt].state != AttemptState::Pending
                    {
                        continue;
                    }
                    self.timeouts += 1;
                    let next = req
                        .lifecycle
                        .on_failure(
                            &mut self.pool,
                            attempt,
                            RetryReason::ResponseTimeout,
                            true,
                            false,
                            now,
                        )
                        .next;
                    self.carry_out(request, next);
                }
            }
        }
    }

    fn carry_out(&mut self, id: u64, next: Next) {
        let now = self.t0 + self.now;
        match next {
            Next::Send {
                attempt,
                origin,
                retry_of,
                hedge,
            } => {
                if !hedge && retry_of.is_none() && self.now >= self.count_from {
                    self.first.push(origin);
                }
                let hangs = matches!(self.origins[origin].hangs_from, Some(f) if self.now >= f);
                if !hangs {
                    let answer = self.live_latency(origin);
                    let answer = self.jitter(answer);
                    self.at(
                        self.now + answer,
                        Event::Head {
                            request: id,
                            attempt,
                        },
                    );
                }
                self.at(
                    self.now + self.response,
                    Event::Timeout {
                        request: id,
                        attempt,
                    },
                );
                let due = self.requests[&id].lifecycle.hedge_due(&self.pool, now);
                if let Some(due) = due {
                    let after = due.saturating_duration_since(self.t0);
                    self.at(after.max(self.now), Event::HedgeTimer { request: id });
                }
            }
            Next::Deliver { attempt, .. } => {
                let req = self.requests.get_mut(&id).unwrap();
                req.done = true;
                let origin = req.lifecycle.attempts()[attempt].origin;
                let client = req.client;
                let started = req.started;
                self.requests.remove(&id);
                if self.now >= self.count_from {
                    self.latencies.push(self.now - started);
                    self.served[origin] += 1;
                }
                self.at(self.now + self.think, Event::Arrive { client });
            }
            Next::Wait => {}
            Next::GiveUp { .. } => panic!("request {id} given up at {:?}", self.now),
        }
    }

    fn total(&self) -> usize {
        self.served.iter().sum()
    }
}

/// The reference model's shares: by weight among the origins within `band` of the fastest.
fn model(origins: &[Origin], band: Duration) -> Vec<f64> {
    let fastest = origins.iter().map(|o| o.latency).min().unwrap();
    let inside: Vec<bool> = origins
        .iter()
        .map(|o| o.latency <= fastest + band)
        .collect();
    let sum: u32 = origins
        .iter()
        .zip(&inside)
        .filter(|(_, i)| **i)
        .map(|(o, _)| o.weight)
        .sum();
    origins
        .iter()
        .zip(&inside)
        .map(|(o, i)| {
            if *i {
                f64::from(o.weight) / f64::from(sum)
            } else {
                0.0
            }
        })
        .collect()
}

fn assert_shares(label: &str, sim: &Sim, expected: &[f64]) {
    let total = sim.total() as f64;
    assert!(total >= 200.0, "{label}: only {total} requests served");
    for (i, want) in expected.iter().enumerate() {
        let got = sim.served[i] as f64 / total;
        if *want == 0.0 {
            assert_eq!(sim.served[i], 0, "{label}: o{i} is outside the band");
        } else {
            assert!(
                (got - want).abs() <= 0.15 * want,
                "{label}: o{i} got {got:.3} of {total} requests, the model says {want:.3} \
                 (±15 %); served {:?}",
                sim.served
            );
        }
    }
}

/// Steady in-band origins at different distances share by weight, one client at a time and
/// with several at once, with live latency on (the default) and hedging on.
#[test]
fn in_band_origins_share_by_weight_whatever_their_distance() {
    let mixes: [(&[Origin], &str); 6] = [
        (
            &[origin(100, 0), origin(100, 30), origin(100, 150)],
            "0/30/150",
        ),
        (&[origin(100, 0), origin(100, 45)], "0/45"),
        (&[origin(100, 0), origin(300, 30)], "0/30, weights 1:3"),
        (&[origin(300, 0), origin(100, 45)], "0/45, weights 3:1"),
        (
            &[origin(50, 5), origin(100, 20), origin(50, 40)],
            "5/20/40, 1:2:1",
        ),
        (
            &[origin(100, 0), origin(100, 30), origin(100, 60)],
            "0/30/60",
        ),
    ];
    for (origins, label) in mixes {
        let expected = model(origins, MS * 50);
        for (clients, kind) in [(1, "sequential"), (8, "concurrent")] {
            let mut sim = Sim::new(origins, "");
            sim.run(clients, MS / 2, MS * 2_000, MS * 30_000);
            assert_shares(&format!("{label}, {kind}"), &sim, &expected);
        }
    }
}

/// The same with a band of 0 ms: everything to the fastest.
#[test]
fn a_zero_band_sends_everything_to_the_fastest() {
    let origins = [origin(100, 0), origin(100, 30)];
    let mut sim = Sim::new(
        &origins,
        r#","load_balancing":{"latency_sensitivity_ms":0}"#,
    );
    sim.run(4, MS / 2, MS * 2_000, MS * 10_000);
    assert_shares("band 0", &sim, &model(&origins, Duration::ZERO));
}

/// An origin that turns 100 ms slower than its probes say leaves the band within a few of
/// its requests, with and without hedging, and the probes alone would have kept it.
#[test]
fn an_origin_slower_than_its_probes_leaves_the_band_within_a_few_requests() {
    for (extra, label) in [
        ("", "hedging on"),
        (
            r#","failover":{"hedging":{"enabled":false}}"#,
            "hedging off",
        ),
    ] {
        let mut o = [origin(100, 0), origin(100, 30)];
        o[1].slower = Some((MS * 5_000, MS * 100));
        let mut sim = Sim::new(&o, extra);
        sim.run(1, MS / 2, MS * 5_000, MS * 15_000);
        let early = sim.first.iter().take(200).filter(|o| **o == 1).count();
        assert!(
            early <= 6,
            "{label}: {early} of the first 200 requests after it turned slow went to it"
        );
        let all = sim.first.iter().filter(|o| **o == 1).count();
        assert!(
            all * 20 <= sim.first.len(),
            "{label}: {all} of {} requests in 10 s went to it",
            sim.first.len()
        );
        assert!(sim.total() >= 1000, "{label}: {} served", sim.total());
        let state = sim.pool.origin(1).unwrap();
        assert!(
            state.latency.unwrap() < MS * 35,
            "{label}: its probes still say fast: {state:?}"
        );
    }
}

/// With live latency off, the band is the probes' alone: unchanged by live answers.
#[test]
fn a_probe_only_pool_shares_by_its_probes() {
    let mut o = [origin(100, 0), origin(100, 30)];
    o[1].slower = Some((MS * 2_000, MS * 100));
    let mut sim = Sim::new(
        &o,
        r#","load_balancing":{"live_latency":false},"failover":{"hedging":{"enabled":false}}"#,
    );
    sim.run(1, MS / 2, MS * 2_000, MS * 20_000);
    assert_shares("probe-only", &sim, &model(&o, MS * 50));
}

/// Hedging at any rate: two equal origins, one starts hanging, a client sends one request
/// every 200 ms (5 a second). The budget's floor pays for the hedges until the hanging origin
/// has lost enough races to leave the band: no request waits for the response timeout.
#[test]
fn a_hang_at_a_low_rate_costs_a_hedge_delay_not_a_timeout() {
    for response_ms in [500, 3_000, 30_000] {
        let mut o = [origin(100, 0), origin(100, 0)];
        o[1].hangs_from = Some(MS * 10_000);
        let extra = format!(r#","timeouts":{{"response_ms":{response_ms}}}"#);
        let mut sim = Sim::new(&o, &extra);
        sim.run(1, MS * 200, MS * 10_000, MS * 40_000);
        let n = sim.latencies.len();
        assert!(n >= 100, "{n} requests answered");
        let worst = sim.latencies.iter().max().copied().unwrap();
        // At most two hedge delays (until 20 answers are known, a tenth of response_ms).
        assert!(
            worst <= MS * response_ms / 5,
            "response_ms {response_ms}: a request waited {worst:?}"
        );
        assert_eq!(sim.timeouts, 0, "response_ms {response_ms}");
        // The hanging origin leaves the band: it got a few requests, not half.
        let to_hung = sim.first.iter().filter(|o| **o == 1).count();
        assert!(
            to_hung * 10 <= n,
            "{to_hung} of {n} first attempts went to it"
        );
    }
}
