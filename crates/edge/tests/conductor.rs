//! The rollout conductor against a real etcd (`LocalEtcd`), driven by registrations the test
//! writes itself (`register` with `NodeStatus` reports of chosen figures), so that it depends
//! on nothing of the node's side: a fleet of fake nodes does what a real node does with the
//! stored rollout (runs what it is assigned, freezes its baseline at a switch, counts
//! requests); one test stops an etcd member of three mid-rollout. Last, process-level tests:
//! the `portico` process that conducts is SIGKILLed mid-wave and another takes over, with
//! fake wave members, then with real nodes following the rollout.
//!
//! Every wait is a poll with a deadline; no test asserts how long anything took.

use portico::metrics::Metrics;
use portico::store_link::conductor::{conduct, spawn_conductor};
use portico_core::config::fingerprint;
use portico_core::rollout::{
    Command, Decision, Figures, GateFailure, Lost, NodeReport, Outcome, PassedBy, Push, Rejection,
    Rollout, Selector, Settings, State, SwitchBaseline,
};
use portico_store::{
    CONDUCTOR_TTL, Conductorship, Expect, LocalEtcd, NodeRecord, NodeStatus, Role, Store,
    StoreError, StoreUrl, register,
};
use portico_test_support::{eventually, free_addrs, poll};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tempfile::TempDir;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Generous bound for anything that should happen "soon" on a loaded machine.
const DEADLINE: Duration = Duration::from_secs(60);
/// The fake nodes' registration lease (short: gate 2 sees a node gone once it expires).
const NODE_TTL: Duration = Duration::from_secs(2);
/// Requests a serving fake node answers per step of the fleet.
const PER_STEP: u64 = 10;

fn stable_doc() -> String {
    doc("stable")
}

fn target_doc() -> String {
    doc("target")
}

/// A valid config document with one route named `route`.
fn doc(route: &str) -> String {
    format!(
        r#"{{"pools": [{{"name": "api", "origins": [{{"name": "a", "address": "127.0.0.1:9"}}]}}],
  "routes": [{{"name": "{route}", "hosts": ["*"], "paths": ["/*"], "pool": "api"}}]}}
"#
    )
}

fn now_ms() -> u64 {
    portico_store::unix_millis(SystemTime::now())
}

/// Short bakes, little traffic needed.
fn settings() -> Settings {
    Settings {
        bake_ms: 1000,
        min_requests: 20,
        ..Settings::default()
    }
}

fn cluster() -> (TempDir, LocalEtcd) {
    let (etcd, dir) = portico_test_support::etcd(1);
    (dir, etcd)
}

async fn connect(url: &StoreUrl) -> Store {
    match Store::connect(url, Duration::from_secs(5)).await {
        Ok(store) => store,
        Err(e) => panic!("connect to {url}: {e}"),
    }
}

/// A fake node: its registration task and what it publishes.
struct FakeNode {
    status: NodeStatus,
    records: watch::Sender<NodeStatus>,
    task: JoinHandle<()>,
    /// It rejects the target (as a node whose validation fails would).
    rejects: bool,
}

/// Fake nodes registered in the store.
struct Fleet {
    nodes: Vec<FakeNode>,
    /// Whether the nodes answer requests (a wave passes only with traffic).
    serving: bool,
}

impl Fleet {
    /// Registers `nodes` (name, region), each running the stable version, under leases of
    /// [`NODE_TTL`].
    fn start(url: &StoreUrl, nodes: &[(&str, &str)]) -> Fleet {
        Fleet::start_with(url, nodes, NODE_TTL)
    }

    /// The same with leases of `ttl`.
    fn start_with(url: &StoreUrl, nodes: &[(&str, &str)], ttl: Duration) -> Fleet {
        let stable = fingerprint(&stable_doc());
        let nodes = nodes
            .iter()
            .map(|(name, region)| {
                let mut status = NodeStatus::new(NodeRecord {
                    name: name.to_string(),
                    region: region.to_string(),
                    version: stable.clone(),
                    healthy: true,
                    admin: "http://127.0.0.1:9".into(),
                    updated_at: portico_store::now_rfc3339(),
                });
                status.started_at_ms = now_ms();
                status.versions.insert(stable.clone(), Figures::default());
                let (records, rx) = watch::channel(status.clone());
                let task = register(url.clone(), name.to_string(), ttl, rx);
                FakeNode {
                    status,
                    records,
                    task,
                    rejects: false,
                }
            })
            .collect();
        Fleet {
            nodes,
            serving: false,
        }
    }

    fn node(&mut self, name: &str) -> &mut FakeNode {
        self.nodes
            .iter_mut()
            .find(|n| n.status.record.name == name)
            .unwrap()
    }

    fn reports(&self) -> Vec<NodeReport> {
        self.nodes.iter().map(|n| n.status.report()).collect()
    }

    /// Waits until every node's registration is in the store.
    async fn registered(&self, store: &Store) {
        let want: Vec<String> = self
            .nodes
            .iter()
            .map(|n| n.status.record.name.clone())
            .collect();
        poll(&format!("{want:?} registered"), DEADLINE, || async {
            let names: Vec<String> = store
                .node_statuses()
                .await
                .ok()?
                .into_iter()
                .map(|s| s.record.name)
                .collect();
            want.iter().all(|n| names.contains(n)).then_some(())
        })
        .await
    }

    /// Stops renewing `name`'s registration, as a node that died: it goes when its lease
    /// expires.
    fn kill(&mut self, name: &str) {
        self.node(name).task.abort();
    }

    /// Each node does what the rollout assigns it: switches (freezing the figures of the version
    /// it leaves as its baseline), or rejects the target; then answers requests if serving.
    fn step(&mut self, rollout: &Rollout) {
        let stable = fingerprint(&stable_doc());
        for n in &mut self.nodes {
            let s = &mut n.status;
            let want = rollout
                .version_for(&s.record.name)
                .unwrap_or(&stable)
                .to_string();
            if s.record.version != want {
                if n.rejects && want == rollout.target {
                    s.rejected = Some(Rejection {
                        version: want.clone(),
                        errors: vec!["routes[0].pool: rejected by the test".into()],
                        rollout_started_at_ms: 0,
                    });
                } else {
                    let before = s.versions.get(&s.record.version).copied();
                    s.baseline = Some(SwitchBaseline {
                        to: want.clone(),
                        figures: before.unwrap_or_default(),
                    });
                    s.versions.insert(want.clone(), Figures::default());
                    s.record.version = want;
                }
            }
            if self.serving {
                let figures = s.versions.entry(s.record.version.clone()).or_default();
                figures.requests += PER_STEP;
            }
            n.records.send_replace(s.clone());
        }
    }
}

/// Starts a rollout of the target document over `fleet` (stable: the stable document).
async fn push(store: &Store, fleet: &Fleet, waves: Option<Vec<Selector>>) -> Rollout {
    let stable = stable_doc();
    store.put_config(&stable, Expect::Any).await.unwrap();
    let push = Push {
        target: fingerprint(&target_doc()),
        stable: Some(fingerprint(&stable)),
        waves,
        canary: None,
        settings: settings(),
        author: "test@conductor".into(),
    };
    let (rollout, _) = Rollout::start(push, &fleet.reports(), now_ms()).unwrap();
    assert_eq!(rollout.state, State::InProgress);
    store
        .start_rollout(&rollout, &target_doc(), "conductor test", Expect::Any)
        .await
        .unwrap();
    rollout
}

/// Steps the fleet after the stored rollout every 100 ms until `done` holds for it.
async fn drive(
    store: &Store,
    fleet: &mut Fleet,
    what: &str,
    done: impl Fn(&Rollout) -> bool,
) -> Rollout {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let stored = store.get_rollout().await.ok().flatten();
        if let Some(stored) = stored {
            fleet.step(&stored.rollout);
            if done(&stored.rollout) {
                return stored.rollout;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; the rollout: {}",
                serde_json::to_string_pretty(&stored.rollout).unwrap()
            );
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn over(r: &Rollout) -> bool {
    r.state.is_over()
}

/// Whether `node`'s baseline was captured: the conductor saw it run the target.
fn applied(node: &'static str) -> impl Fn(&Rollout) -> bool {
    move |r| r.member(node).is_some_and(|m| m.baseline.is_some())
}

fn decisions(r: &Rollout) -> Vec<&Decision> {
    r.log.iter().map(|rec| &rec.decision).collect()
}

/// `portico_rollouts_total{outcome}` of `metrics`.
fn counted(metrics: &Metrics, outcome: &str) -> u64 {
    metrics.rollouts.with_label_values(&[outcome]).get()
}

async fn outcome(store: &Store) -> Outcome {
    store
        .get_version(&fingerprint(&target_doc()))
        .await
        .unwrap()
        .unwrap()
        .record
        .outcome
}

async fn stable_text(store: &Store) -> String {
    store.get_config().await.unwrap().unwrap().text
}

fn four(url: &StoreUrl) -> Fleet {
    Fleet::start(
        url,
        &[
            ("eu-a", "eu"),
            ("eu-b", "eu"),
            ("us-a", "us"),
            ("sg-a", "ap"),
        ],
    )
}

fn metrics() -> Arc<Metrics> {
    Arc::new(Metrics::new("eu", "v0"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_good_rollout_is_promoted_wave_by_wave_across_bakes() {
    let (_dir, etcd) = cluster();
    let url = etcd.url("good");
    let store = connect(&url).await;
    let mut fleet = four(&url);
    fleet.registered(&store).await;
    let m = metrics();
    let conductor = spawn_conductor(url.clone(), "c1".into(), m.clone());

    fleet.serving = true;
    let pushed = Instant::now();
    push(&store, &fleet, None).await;
    let r = drive(&store, &mut fleet, "the rollout to end", over).await;
    println!(
        "push → {} after {} ms (three waves, bakes of {} ms)",
        r.state,
        pushed.elapsed().as_millis(),
        settings().bake_ms
    );

    assert_eq!(r.state, State::Promoted, "{:?}", r.log);
    let kinds: Vec<String> = decisions(&r)
        .iter()
        .map(|d| match d {
            Decision::StartWave { wave, nodes } => format!("start {wave} {}", nodes.join(",")),
            Decision::PassWave { wave, by } => {
                assert!(matches!(by, PassedBy::Gates { .. }), "{by:?}");
                format!("pass {wave}")
            }
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "start 0 eu-a",
            "pass 0",
            "start 1 eu-b",
            "pass 1",
            "start 2 sg-a,us-a",
            "pass 2",
            "Promote"
        ]
    );
    for (i, w) in r.waves.iter().enumerate() {
        let (start, pass) = (w.started_at_ms.unwrap(), w.passed_at_ms.unwrap());
        assert!(
            pass >= start + settings().bake_ms,
            "wave {i} baked its time"
        );
        for member in &w.members {
            assert!(member.baseline.is_some(), "{} baseline", member.name);
        }
    }
    assert_eq!(stable_text(&store).await, target_doc());
    assert_eq!(outcome(&store).await, Outcome::Promoted);
    assert_eq!(store.conductor().await.unwrap().as_deref(), Some("c1"));
    assert_eq!(counted(&m, "promoted"), 1);
    assert_eq!(counted(&m, "rolled_back") + counted(&m, "aborted"), 0);
    conductor.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_target_is_rolled_back_at_once() {
    let (_dir, etcd) = cluster();
    let url = etcd.url("rejected");
    let store = connect(&url).await;
    let mut fleet = four(&url);
    fleet.node("eu-a").rejects = true;
    fleet.serving = true;
    fleet.registered(&store).await;
    let m = metrics();
    let conductor = spawn_conductor(url.clone(), "c1".into(), m.clone());

    let pushed = Instant::now();
    push(&store, &fleet, None).await;
    let r = drive(&store, &mut fleet, "the rollout to end", over).await;
    println!(
        "push → {} after {} ms",
        r.state,
        pushed.elapsed().as_millis()
    );

    let State::RolledBack(GateFailure::Rejected { node, errors }) = &r.state else {
        panic!("not rolled back by gate 1: {}", r.state);
    };
    assert_eq!(node, "eu-a");
    assert!(errors[0].contains("rejected by the test"), "{errors:?}");
    // At once: the canary's wave never passed, no other wave started.
    assert!(
        matches!(
            decisions(&r)[..],
            [
                Decision::StartWave { wave: 0, .. },
                Decision::RollBack { wave: 0, .. }
            ]
        ),
        "{:?}",
        r.log
    );
    assert_eq!(stable_text(&store).await, stable_doc());
    assert_eq!(outcome(&store).await, Outcome::RolledBack);
    assert_eq!(counted(&m, "rolled_back"), 1);
    assert_eq!(counted(&m, "promoted"), 0);
    conductor.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_stops_renewing_during_its_wave_rolls_back() {
    let (_dir, etcd) = cluster();
    let url = etcd.url("gone");
    let store = connect(&url).await;
    let mut fleet = four(&url);
    fleet.registered(&store).await;
    let m = metrics();
    let conductor = spawn_conductor(url.clone(), "c1".into(), m.clone());

    // No traffic: the canary's wave bakes and cannot pass.
    push(&store, &fleet, None).await;
    drive(
        &store,
        &mut fleet,
        "the canary to run the target",
        applied("eu-a"),
    )
    .await;
    fleet.kill("eu-a");
    let r = drive(&store, &mut fleet, "the rollout to end", over).await;

    assert_eq!(
        r.state,
        State::RolledBack(GateFailure::NodeLost {
            node: "eu-a".into(),
            why: Lost::Gone
        })
    );
    assert_eq!(stable_text(&store).await, stable_doc());
    assert_eq!(outcome(&store).await, Outcome::RolledBack);
    assert_eq!(counted(&m, "rolled_back"), 1);
    conductor.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promote_by_compare_and_swap_while_the_conductor_judges() {
    let (_dir, etcd) = cluster();
    let url = etcd.url("promote");
    let store = connect(&url).await;
    let mut fleet = four(&url);
    fleet.registered(&store).await;
    let m = metrics();
    let conductor = spawn_conductor(url.clone(), "c1".into(), m.clone());

    // No traffic: only promotions by hand pass waves, while the conductor keeps judging (it
    // captures each member's baseline as it switches) and so races the promotions.
    push(&store, &fleet, None).await;
    let deadline = Instant::now() + DEADLINE;
    let mut lost = 0;
    loop {
        let stored = store.get_rollout().await.unwrap().unwrap();
        fleet.step(&stored.rollout);
        if stored.rollout.state.is_over() {
            break;
        }
        // Promote once the wave's members run the target (as an operator would).
        let wave = stored.rollout.current.unwrap();
        let ready = stored.rollout.waves[wave]
            .members
            .iter()
            .all(|m| m.baseline.is_some());
        if ready {
            let mut r = stored.rollout.clone();
            r.command(
                Command::Promote {
                    author: "ops@test".into(),
                },
                &fleet.reports(),
                now_ms(),
            )
            .unwrap();
            match store
                .save_rollout(&r, Expect::ModRevision(stored.mod_revision))
                .await
            {
                Ok(_) => {}
                Err(StoreError::RolloutChanged { .. }) => lost += 1,
                Err(e) => panic!("save: {e}"),
            }
        }
        assert!(
            Instant::now() < deadline,
            "not promoted: {:?}",
            stored.rollout
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!("promotions that lost their compare-and-swap to the conductor: {lost}");

    let r = store.get_rollout().await.unwrap().unwrap().rollout;
    assert_eq!(r.state, State::Promoted);
    let by_hand = decisions(&r)
        .iter()
        .filter(|d| {
            matches!(
                d,
                Decision::PassWave {
                    by: PassedBy::Hand { .. },
                    ..
                }
            )
        })
        .count();
    assert_eq!(by_hand, 3, "{:?}", r.log);
    // Every member's baseline was captured by the conductor between the promotions.
    assert!(
        r.waves
            .iter()
            .flat_map(|w| &w.members)
            .all(|m| m.baseline.is_some()),
        "{:?}",
        r.waves
    );
    assert_eq!(stable_text(&store).await, target_doc());
    assert_eq!(outcome(&store).await, Outcome::Promoted);
    // Promoted by hand: the CLI saved the outcome, and the node conducting while it lasted
    // counts it (the CLI has no metrics), once.
    eventually("the conductor counts the promotion", DEADLINE, || async {
        counted(&m, "promoted") == 1
    })
    .await;
    assert_eq!(counted(&m, "rolled_back") + counted(&m, "aborted"), 0);
    conductor.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abort_saved_by_the_cli_is_counted_once_by_the_conducting_node() {
    let (_dir, etcd) = cluster();
    let url = etcd.url("abort");
    let store = connect(&url).await;
    let mut fleet = four(&url);
    fleet.registered(&store).await;
    let m = metrics();
    let conductor = spawn_conductor(url.clone(), "c1".into(), m.clone());

    // The conductor has judged the rollout in progress once the canary's baseline is in.
    push(&store, &fleet, None).await;
    let canary = fleet.reports()[0].name.clone();
    let seen = drive(&store, &mut fleet, "the canary's baseline", |r| {
        r.waves[0].members.iter().any(|m| m.baseline.is_some())
    })
    .await;
    assert!(seen.member(&canary).is_some(), "{:?}", seen.waves);
    let stored = store.get_rollout().await.unwrap().unwrap();
    let mut r = stored.rollout.clone();
    r.command(
        Command::Abort {
            author: "ops@test".into(),
        },
        &fleet.reports(),
        now_ms(),
    )
    .unwrap();
    store
        .save_rollout(&r, Expect::ModRevision(stored.mod_revision))
        .await
        .unwrap();

    eventually("the conductor counts the abort", DEADLINE, || async {
        counted(&m, "aborted") == 1
    })
    .await;
    assert_eq!(counted(&m, "aborted"), 1);
    assert_eq!(counted(&m, "promoted") + counted(&m, "rolled_back"), 0);
    conductor.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wave_without_traffic_is_paused_then_promoted_by_hand() {
    let (_dir, etcd) = cluster();
    let url = etcd.url("paused");
    let store = connect(&url).await;
    let mut fleet = four(&url);
    fleet.registered(&store).await;
    let m = metrics();
    let conductor = spawn_conductor(url.clone(), "c1".into(), m.clone());

    // No traffic: the canary's wave is paused once 3 bakes (at least 30 s) have passed.
    push(&store, &fleet, None).await;
    let paused = drive(&store, &mut fleet, "the pause", |r| {
        matches!(r.state, State::Paused(_))
    })
    .await;
    assert_eq!(paused.state.to_string(), "paused: insufficient traffic");
    assert_eq!(paused.current, Some(0));
    let stored = store.get_rollout().await.unwrap().unwrap();
    assert_eq!(stored.rollout, paused, "a paused rollout stays paused");

    // Promoted by hand: the next wave starts, and with traffic the rest pass by the gates.
    let mut r = stored.rollout.clone();
    let by_hand = Command::Promote {
        author: "ops@test".into(),
    };
    r.command(by_hand, &fleet.reports(), now_ms()).unwrap();
    store
        .save_rollout(&r, Expect::ModRevision(stored.mod_revision))
        .await
        .unwrap();
    fleet.serving = true;
    let r = drive(&store, &mut fleet, "the rollout to end", over).await;

    assert_eq!(r.state, State::Promoted, "{:?}", r.log);
    let passes: Vec<&PassedBy> = decisions(&r)
        .iter()
        .filter_map(|d| match d {
            Decision::PassWave { by, .. } => Some(by),
            _ => None,
        })
        .collect();
    assert!(
        matches!(
            passes[..],
            [
                PassedBy::Hand { .. },
                PassedBy::Gates { .. },
                PassedBy::Gates { .. }
            ]
        ),
        "{passes:?}"
    );
    assert_eq!(counted(&m, "promoted"), 1);
    conductor.abort();
}

/// Campaigns as `name` and conducts on a task of its own.
async fn candidate(url: &StoreUrl, name: &str) -> (Conductorship, JoinHandle<()>, Arc<Metrics>) {
    let campaign = Conductorship::campaign(url.clone(), name.into(), CONDUCTOR_TTL);
    let m = metrics();
    let (u, n, role, mm) = (
        url.clone(),
        name.to_string(),
        campaign.subscribe(),
        m.clone(),
    );
    let task = tokio::spawn(async move { conduct(&u, &n, role, &mm).await });
    (campaign, task, m)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_conductors_one_judges_and_the_other_takes_over_when_it_dies_mid_wave() {
    let (_dir, etcd) = cluster();
    let url = etcd.url("takeover");
    let store = connect(&url).await;
    let mut fleet = four(&url);
    fleet.registered(&store).await;

    let (mut a, a_task, a_metrics) = candidate(&url, "a").await;
    tokio::time::timeout(DEADLINE, a.elected()).await.unwrap();
    let (b, b_task, b_metrics) = candidate(&url, "b").await;
    let following_a = Role::Following { leader: "a".into() };
    poll("b to follow a", DEADLINE, || async {
        (b.role() == following_a).then_some(())
    })
    .await;

    // a conducts the first wave through; the second starts, then traffic stops: mid-wave.
    fleet.serving = true;
    push(&store, &fleet, None).await;
    drive(&store, &mut fleet, "wave 2 to start", |r| {
        r.current == Some(1)
    })
    .await;
    fleet.serving = false;
    let mid = drive(
        &store,
        &mut fleet,
        "eu-b to run the target",
        applied("eu-b"),
    )
    .await;

    // a dies without revoking its lease (as a killed process): b takes over when it expires.
    a.abandon().await;
    a_task.abort();
    let _ = a_task.await;
    fleet.serving = true;
    let r = drive(&store, &mut fleet, "the rollout to end", over).await;

    assert_eq!(r.state, State::Promoted, "{:?}", r.log);
    assert!(b.is_leader());
    assert_eq!(store.conductor().await.unwrap().as_deref(), Some("b"));
    // One judgement at a time: each wave started and passed once.
    let started: Vec<usize> = decisions(&r)
        .iter()
        .filter_map(|d| match d {
            Decision::StartWave { wave, .. } => Some(*wave),
            _ => None,
        })
        .collect();
    assert_eq!(started, [0, 1, 2], "{:?}", r.log);
    // b resumed the wave a started: same start (its bake counted), same baseline.
    assert_eq!(r.waves[1].started_at_ms, mid.waves[1].started_at_ms);
    assert_eq!(r.member("eu-b"), mid.member("eu-b"));
    // The outcome is counted by the node whose conductor saved it.
    assert_eq!(counted(&b_metrics, "promoted"), 1);
    assert_eq!(counted(&a_metrics, "promoted"), 0);
    b_task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_one_etcd_member_of_three_down_mid_rollout_the_rollout_completes() {
    let (etcd, _dir) = portico_test_support::etcd(3);
    let mut etcd = etcd;
    let url = etcd.url("member-down");
    let store = connect(&url).await;
    // Registrations under a node's real lease (10 s): a node whose member died starts a new
    // session before its record could expire.
    let mut fleet = Fleet::start_with(
        &url,
        &[
            ("eu-a", "eu"),
            ("eu-b", "eu"),
            ("us-a", "us"),
            ("sg-a", "ap"),
        ],
        Duration::from_secs(10),
    );
    fleet.registered(&store).await;
    let m = metrics();
    let conductor = spawn_conductor(url.clone(), "c1".into(), m.clone());

    fleet.serving = true;
    push(&store, &fleet, None).await;
    drive(&store, &mut fleet, "wave 2 to start", |r| {
        r.current == Some(1)
    })
    .await;
    // The first endpoint, the one clients try first.
    etcd.stop_member(0);
    let stopped = Instant::now();
    let r = drive(&store, &mut fleet, "the rollout to end", over).await;
    println!(
        "etcd member 0 of 3 stopped mid-rollout → {} {} ms later",
        r.state,
        stopped.elapsed().as_millis()
    );
    assert_eq!(r.state, State::Promoted, "{:?}", r.log);
    assert_eq!(stable_text(&store).await, target_doc());
    assert_eq!(counted(&m, "promoted"), 1);
    conductor.abort();
}

// --- process level --------------------------------------------------------------------------

const BIN: &str = env!("CARGO_BIN_EXE_portico");

/// A `portico` node following the store, killed when dropped (its log printed then if the
/// test failed).
struct NodeProc {
    name: String,
    child: Child,
    log: PathBuf,
}

impl NodeProc {
    fn spawn(url: &StoreUrl, name: &str, dir: &Path) -> NodeProc {
        let log = dir.join(format!("{name}.log"));
        let addrs = free_addrs(2);
        let (listen, admin) = (addrs[0].to_string(), addrs[1].to_string());
        let child = std::process::Command::new(BIN)
            .args(["--store", &url.to_string(), "--name", name])
            .args(["--listen", &listen, "--admin-listen", &admin])
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start portico");
        NodeProc {
            name: name.to_string(),
            child,
            log,
        }
    }

    fn sigkill(&mut self) {
        let status = std::process::Command::new("kill")
            .args(["-KILL", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success());
        let _ = self.child.wait();
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- log of {}:\n{}", self.name, self.log());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_the_conducting_process_mid_wave_and_the_rollout_still_ends() {
    let (dir, etcd) = cluster();
    let url = etcd.url("sigkill");
    let store = connect(&url).await;
    store.put_config(&stable_doc(), Expect::Any).await.unwrap();
    let mut procs = [
        NodeProc::spawn(&url, "p1", dir.path()),
        NodeProc::spawn(&url, "p2", dir.path()),
    ];
    // The waves take the fake nodes only: the processes conduct, they are not judged.
    let mut fleet = Fleet::start(&url, &[("fake-a", "eu"), ("fake-b", "us")]);
    fleet.registered(&store).await;
    let leader = poll("p1 and p2 registered, one conducting", DEADLINE, || async {
        let names: Vec<String> = running(&store).await.into_iter().map(|(n, _)| n).collect();
        let both = names.iter().any(|n| n == "p1") && names.iter().any(|n| n == "p2");
        if both {
            store.conductor().await.ok().flatten()
        } else {
            None
        }
    })
    .await;
    let (dead, other) = if leader == "p1" { (0, "p2") } else { (1, "p1") };

    let waves = vec![
        Selector::Node("fake-a".into()),
        Selector::Node("fake-b".into()),
    ];
    push(&store, &fleet, Some(waves)).await;
    drive(
        &store,
        &mut fleet,
        "fake-a to run the target",
        applied("fake-a"),
    )
    .await;

    // Mid-wave: the conducting process dies, and the canary now reports the target rejected
    // (as a node whose reload of it failed), so the rollout ends at the first judgement of the
    // next conductor.
    procs[dead].sigkill();
    let killed = Instant::now();
    fleet.node("fake-a").status.rejected = Some(Rejection {
        version: fingerprint(&target_doc()),
        errors: vec!["rejected by the test".into()],
        rollout_started_at_ms: 0,
    });
    let r = drive(&store, &mut fleet, "the rollout to end", over).await;
    println!(
        "SIGKILL of the conductor {leader} → rollout ended ({}) after {} ms (conductor lease TTL {} s)",
        r.state,
        killed.elapsed().as_millis(),
        CONDUCTOR_TTL.as_secs()
    );
    assert!(
        matches!(&r.state, State::RolledBack(GateFailure::Rejected { node, .. }) if node == "fake-a"),
        "{}",
        r.state
    );
    assert_eq!(store.conductor().await.unwrap().as_deref(), Some(other));
    assert_eq!(stable_text(&store).await, stable_doc());
    let log = procs[1 - dead].log();
    assert!(log.contains("conductor: rollout of"), "{log}");
}

/// The version each registered node says it runs, by name.
async fn running(store: &Store) -> Vec<(String, String)> {
    store
        .nodes()
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|n| (n.name, n.version))
        .collect()
}

/// Real nodes this time: three `portico` processes follow the store; the one that conducts is
/// SIGKILLed while the two others roll the target out wave by wave; the next conductor resumes
/// and promotes it, and both survivors end on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_nodes_finish_a_rollout_whose_conductor_was_sigkilled() {
    let (dir, etcd) = cluster();
    let url = etcd.url("real");
    let store = connect(&url).await;
    store.put_config(&stable_doc(), Expect::Any).await.unwrap();
    let (stable, target) = (fingerprint(&stable_doc()), fingerprint(&target_doc()));
    let mut procs = [
        NodeProc::spawn(&url, "p1", dir.path()),
        NodeProc::spawn(&url, "p2", dir.path()),
        NodeProc::spawn(&url, "p3", dir.path()),
    ];
    let leader = poll(
        "three nodes on stable and a conductor",
        DEADLINE,
        || async {
            let nodes = running(&store).await;
            let all = nodes.len() == 3 && nodes.iter().all(|(_, v)| *v == stable);
            if all {
                store.conductor().await.ok().flatten()
            } else {
                None
            }
        },
    )
    .await;
    let dead = procs
        .iter()
        .position(|p| p.name == leader)
        .expect("the conductor is one of the nodes");
    let others: Vec<String> = procs
        .iter()
        .filter(|p| p.name != leader)
        .map(|p| p.name.clone())
        .collect();

    // The two others, one wave each; bakes long enough that the rollout is mid-wave when the
    // conductor dies.
    let reports: Vec<NodeReport> = store
        .node_statuses()
        .await
        .unwrap()
        .iter()
        .map(NodeStatus::report)
        .collect();
    let push = Push {
        target: target.clone(),
        stable: Some(stable.clone()),
        waves: Some(others.iter().map(|n| Selector::Node(n.clone())).collect()),
        canary: None,
        settings: Settings {
            bake_ms: 5000,
            min_requests: 0,
            ..Settings::default()
        },
        author: "test@conductor".into(),
    };
    let (rollout, _) = Rollout::start(push, &reports, now_ms()).unwrap();
    store
        .start_rollout(&rollout, &target_doc(), "real nodes", Expect::Any)
        .await
        .unwrap();
    let first = others[0].clone();
    poll(
        "the first wave's node to run the target",
        DEADLINE,
        || async {
            let stored = store.get_rollout().await.ok().flatten()?;
            stored
                .rollout
                .member(&first)
                .is_some_and(|m| m.baseline.is_some())
                .then_some(())
        },
    )
    .await;
    let before = store.get_rollout().await.unwrap().unwrap().rollout;
    assert!(
        !before.state.is_over(),
        "over before the kill: {}",
        before.state
    );

    procs[dead].sigkill();
    let killed = Instant::now();
    let r = poll("the rollout to end", DEADLINE, || async {
        let r = store.get_rollout().await.ok().flatten()?.rollout;
        r.state.is_over().then_some(r)
    })
    .await;
    let ended = killed.elapsed();
    assert_eq!(r.state, State::Promoted, "{:?}", r.log);
    let conductor = store.conductor().await.unwrap().unwrap_or_default();
    assert!(others.contains(&conductor), "{conductor} conducts");
    poll("both survivors on the target", DEADLINE, || async {
        let nodes = running(&store).await;
        others
            .iter()
            .all(|o| nodes.iter().any(|(n, v)| n == o && *v == target))
            .then_some(())
    })
    .await;
    println!(
        "SIGKILL of the conductor {leader} mid-wave ({} when killed) → {conductor} promoted the \
         rollout {} ms later (bakes of {} ms; lease TTL {} s); both survivors run it {} ms after the kill",
        before.state,
        ended.as_millis(),
        r.settings.bake_ms,
        CONDUCTOR_TTL.as_secs(),
        killed.elapsed().as_millis()
    );
    assert_eq!(stable_text(&store).await, target_doc());
}
