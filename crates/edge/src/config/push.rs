//! Starting a push (`portico config push` and `PUT /config` on a store node): the document is
//! validated, stored as a new version, and its health-gated rollout started, in one step.
//!
//! Where the SPEC is silent:
//! - validation is the pipeline's first step ([`document`]: parse and validate, overrides
//!   applied): the files and origin names a document refers to are each node's to check, and a
//!   node that cannot run it rejects it (gate 1 rolls it back);
//! - the plan is made against the stable document read at the start; when `config` changes
//!   before the rollout is written (a promotion or a `config rollback` racing the push) the
//!   push is planned again (a few times), unless `--if-version` asked for that exact version;
//! - a push of the stable version is refused (nothing to roll out); a push of an older
//!   promoted version is refused with a pointer to `config rollback`;
//! - a registered node that looks dead ([`seen`]: no report for 3 s and its lease renewal
//!   overdue) is left out of the plan: killed without revoking its lease, it would fail gate 2
//!   when the lease expires and roll back a good document. If it comes back during the
//!   rollout it runs stable, as any node that joins.

use crate::config::prepare::document;
use crate::config::seen::seen;
use portico_core::config::{ConfigErrors, Overrides, fingerprint};
use portico_core::rollout::plan::check_waves;
use portico_core::rollout::{Push, Rollout, RolloutError, Selector, Settings};
use portico_store::{Expect, Store, StoreError};
use std::time::SystemTime;

/// How many times a push is planned again when `config` changed under it.
const ATTEMPTS: usize = 3;

/// What a push asks for beside the document: the SPEC's `config push` flags.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PushOptions {
    /// `--if-version`: start only if the stable version is this one (compare-and-swap).
    pub if_version: Option<String>,
    /// `--message`: kept with the version (`config history`).
    pub message: String,
    /// `--author`: who pushed it (the CLI's default is `$USER@hostname`).
    pub author: String,
    /// `--canary NODE`: the first wave of the default plan (default: the first healthy
    /// registered node by name).
    pub canary: Option<String>,
    /// `--waves`: the plan, one selector per wave (`node:NAME`, `region:NAME`, `rest`);
    /// `None`: the default plan.
    pub waves: Option<Vec<String>>,
    /// `--bake SECONDS` (None: 60 s).
    pub bake_secs: Option<f64>,
    /// `--min-requests N` (None: 100).
    pub min_requests: Option<u64>,
    /// `--max-error-increase R` (None: 0.01, one percentage point).
    pub max_error_increase: Option<f64>,
    /// `--min-errors N` (None: 10).
    pub min_errors: Option<u64>,
}

impl PushOptions {
    /// The gate settings: the SPEC default for each option not given. Refuses a negative or
    /// non-finite bake or error increase.
    pub fn settings(&self) -> Result<Settings, PushError> {
        let defaults = Settings::default();
        let bake_ms = match self.bake_secs {
            None => defaults.bake_ms,
            Some(s) if s.is_finite() && s >= 0.0 => (s * 1000.0).round() as u64,
            Some(s) => {
                return Err(PushError::BadOption(format!(
                    "--bake {s}: must be a number of seconds, 0 or more"
                )));
            }
        };
        let settings = Settings {
            bake_ms,
            min_requests: self.min_requests.unwrap_or(defaults.min_requests),
            max_error_increase: self
                .max_error_increase
                .unwrap_or(defaults.max_error_increase),
            min_errors: self.min_errors.unwrap_or(defaults.min_errors),
        };
        settings.check()?;
        Ok(settings)
    }

    /// The plan: `--waves` parsed and checked (None: the default plan).
    pub fn selectors(&self) -> Result<Option<Vec<Selector>>, PushError> {
        let Some(waves) = &self.waves else {
            return Ok(None);
        };
        let selectors = waves
            .iter()
            .map(|w| w.parse::<Selector>())
            .collect::<Result<Vec<_>, _>>()?;
        check_waves(&selectors)?;
        Ok(Some(selectors))
    }
}

/// A push whose rollout started.
#[derive(Debug, Clone, PartialEq)]
pub struct Started {
    /// The pushed version.
    pub version: String,
    /// Its rollout as stored (already promoted when there was nothing to judge it against: no
    /// stable document or no registered node).
    pub rollout: Rollout,
    /// The plan: each wave's selector and its nodes (members once started, else the nodes it
    /// would take now; a skipped wave has none).
    pub plan: Vec<(Selector, Vec<String>)>,
    /// Registered nodes left out of the plan because they look dead (see the module doc).
    pub left_out: Vec<String>,
}

/// Why a push was not started. Nothing was written in any case.
#[derive(Debug)]
pub enum PushError {
    /// The document does not validate.
    Invalid(ConfigErrors),
    /// A push option is out of range.
    BadOption(String),
    /// `--if-version` / `If-Match` named another version than the stable one.
    CasLost {
        /// The stable version (None: the store has no document).
        stored: Option<String>,
    },
    /// A rollout is in progress (or paused).
    InProgress {
        /// The version it rolls out.
        target: String,
        /// Its state (`in progress`, `paused: ...`).
        state: String,
    },
    /// The plan or settings are refused, or the version is already stable.
    Refused(RolloutError),
    /// The store refused it (the version was promoted before, a document too large) or could
    /// not be reached.
    Store(StoreError),
}

impl std::fmt::Display for PushError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PushError::Invalid(e) => write!(f, "{e}"),
            PushError::BadOption(e) => f.write_str(e),
            PushError::CasLost { stored } => write!(
                f,
                "compare-and-swap lost: the stored version is {}",
                stored
                    .as_deref()
                    .unwrap_or("(none: the store holds no config)")
            ),
            PushError::InProgress { target, state } => write!(
                f,
                "a rollout is in progress: version {target} ({state}); wait for it to end, or \
                 end it with `portico config promote` or `portico config abort`"
            ),
            PushError::Refused(e) => write!(f, "{e}"),
            PushError::Store(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for PushError {}

impl From<RolloutError> for PushError {
    fn from(e: RolloutError) -> Self {
        PushError::Refused(e)
    }
}

impl From<StoreError> for PushError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::RolloutInProgress { target, state } => {
                PushError::InProgress { target, state }
            }
            StoreError::Refused(r) => PushError::Refused(r),
            other => PushError::Store(other),
        }
    }
}

/// Validates `text` (with `overrides`), stores it as a new version and starts its rollout
/// against the stable document and the registered nodes; nothing is written when anything
/// is refused. Returns the version, the rollout and its plan.
pub async fn start_push(
    store: &Store,
    text: &str,
    opts: &PushOptions,
    overrides: &Overrides,
) -> Result<Started, PushError> {
    document(text, overrides).map_err(PushError::Invalid)?;
    let settings = opts.settings()?;
    let waves = opts.selectors()?;
    let version = fingerprint(text);
    let mut attempt = 0;
    loop {
        attempt += 1;
        if let Some(stored) = store.get_rollout().await? {
            let r = &stored.rollout;
            if !r.state.is_over() {
                return Err(PushError::InProgress {
                    target: r.target.clone(),
                    state: r.state.to_string(),
                });
            }
        }
        let stable_doc = store.get_config().await?;
        let stable = stable_doc.as_ref().map(|d| fingerprint(&d.text));
        if let Some(wanted) = &opts.if_version {
            if stable.as_ref() != Some(wanted) {
                return Err(PushError::CasLost { stored: stable });
            }
        }
        let expect = match &stable_doc {
            Some(doc) => Expect::ModRevision(doc.mod_revision),
            None => Expect::Absent,
        };
        let statuses = store.node_statuses().await?;
        let leases = store.registration_leases().await?;
        let now = portico_store::unix_millis(SystemTime::now());
        let (live, dead): (Vec<_>, Vec<_>) = statuses
            .iter()
            .partition(|s| !seen(s, leases.get(&s.record.name), now).stale);
        let reports: Vec<_> = live.iter().map(|s| s.report()).collect();
        let push = Push {
            target: version.clone(),
            stable: stable.clone(),
            waves: waves.clone(),
            canary: opts.canary.clone(),
            settings,
            author: opts.author.clone(),
        };
        let (rollout, _) = Rollout::start(push, &reports, now)?;
        match store
            .start_rollout(&rollout, text, &opts.message, expect)
            .await
        {
            Ok(_) => {
                let plan = rollout.preview(&reports);
                return Ok(Started {
                    version,
                    rollout,
                    plan,
                    left_out: dead.iter().map(|s| s.record.name.clone()).collect(),
                });
            }
            Err(StoreError::CasLost { current }) => {
                let stored = current.map(|d| fingerprint(&d.text));
                if opts.if_version.is_some() || attempt >= ATTEMPTS {
                    return Err(PushError::CasLost { stored });
                }
                // `config` changed since it was read (a promotion, a rollback): plan again.
            }
            Err(e) => return Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portico_core::rollout::{Outcome, State};
    use portico_store::{LocalEtcd, NodeRecord, NodeStatus, StoreUrl};
    use std::time::Duration;

    fn doc(route: &str) -> String {
        format!(
            r#"{{"pools": [{{"name": "api", "origins": [{{"name": "a", "address": "127.0.0.1:9"}}]}}],
  "routes": [{{"name": "{route}", "hosts": ["*"], "paths": ["/*"], "pool": "api"}}]}}"#
        )
    }

    fn opts() -> PushOptions {
        PushOptions {
            author: "tester@host".into(),
            message: "a test".into(),
            ..PushOptions::default()
        }
    }

    async fn connect(url: &StoreUrl) -> Store {
        Store::connect(url, Duration::from_secs(5)).await.unwrap()
    }

    /// Registers node `name` in `region` running `version`, until the sender is dropped.
    async fn register(
        store: &Store,
        name: &str,
        region: &str,
        version: &str,
    ) -> tokio::sync::watch::Sender<NodeStatus> {
        let status = NodeStatus::new(NodeRecord {
            name: name.into(),
            region: region.into(),
            version: version.into(),
            healthy: true,
            admin: "http://127.0.0.1:1".into(),
            updated_at: portico_store::now_rfc3339(),
        });
        let (tx, rx) = tokio::sync::watch::channel(status);
        portico_store::register(
            store.url().clone(),
            name.to_string(),
            Duration::from_secs(10),
            rx,
        );
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !store
            .node_statuses()
            .await
            .unwrap()
            .iter()
            .any(|s| s.record.name == name)
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{name} never registered"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tx
    }

    #[test]
    fn settings_take_the_spec_defaults_and_refuse_nonsense() {
        let s = opts().settings().unwrap();
        assert_eq!(s, Settings::default());
        let given = PushOptions {
            bake_secs: Some(0.5),
            min_requests: Some(0),
            max_error_increase: Some(0.2),
            min_errors: Some(3),
            ..opts()
        };
        let s = given.settings().unwrap();
        assert_eq!(
            (
                s.bake_ms,
                s.min_requests,
                s.max_error_increase,
                s.min_errors
            ),
            (500, 0, 0.2, 3)
        );
        for bad in [-1.0, f64::NAN, f64::INFINITY] {
            let o = PushOptions {
                bake_secs: Some(bad),
                ..opts()
            };
            assert!(
                matches!(o.settings(), Err(PushError::BadOption(_))),
                "{bad}"
            );
        }
        let o = PushOptions {
            max_error_increase: Some(-0.1),
            ..opts()
        };
        assert!(matches!(
            o.settings(),
            Err(PushError::Refused(RolloutError::BadErrorIncrease(_)))
        ));
    }

    #[test]
    fn waves_are_parsed_and_checked() {
        assert_eq!(opts().selectors().unwrap(), None);
        let o = PushOptions {
            waves: Some(vec!["node:a".into(), "region:eu".into(), "rest".into()]),
            ..opts()
        };
        assert_eq!(
            o.selectors().unwrap(),
            Some(vec![
                Selector::Node("a".into()),
                Selector::Region("eu".into()),
                Selector::Rest
            ])
        );
        for bad in [vec!["rest", "node:a"], vec!["host:a"], vec!["rest", "rest"]] {
            let o = PushOptions {
                waves: Some(bad.iter().map(|s| s.to_string()).collect()),
                ..opts()
            };
            assert!(
                matches!(o.selectors(), Err(PushError::Refused(_))),
                "{bad:?}"
            );
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_push_starts_a_rollout_and_refuses_what_it_must() {
        let dir = tempfile::tempdir().unwrap();
        let etcd = LocalEtcd::start_local(1, &dir.path().join("etcd")).expect("start etcd");
        let url = etcd.url("push");
        let store = connect(&url).await;

        // Invalid: nothing written.
        let err = start_push(&store, "{\"pools\": 3}", &opts(), &Overrides::default())
            .await
            .unwrap_err();
        assert!(matches!(err, PushError::Invalid(_)), "{err}");
        assert_eq!(store.get_config().await.unwrap(), None);
        assert_eq!(store.history(0).await.unwrap(), vec![]);

        // No stable document: stable at once.
        let first = doc("r1");
        let started = start_push(&store, &first, &opts(), &Overrides::default())
            .await
            .unwrap();
        assert_eq!(started.version, fingerprint(&first));
        assert_eq!(started.rollout.state, State::Promoted);
        assert_eq!(store.get_config().await.unwrap().unwrap().text, first);
        let record = store.get_version(&started.version).await.unwrap().unwrap();
        assert_eq!(record.record.outcome, Outcome::Promoted);
        assert_eq!(record.record.author, "tester@host");
        assert_eq!(record.record.message, "a test");

        // The stable version again: refused.
        let err = start_push(&store, &first, &opts(), &Overrides::default())
            .await
            .unwrap_err();
        assert!(
            matches!(err, PushError::Refused(RolloutError::AlreadyStable(_))),
            "{err}"
        );

        // Two nodes registered: a rollout in waves, config unchanged.
        let _eu = register(&store, "eu-a", "eu", &started.version).await;
        let _us = register(&store, "us-a", "us", &started.version).await;
        let second = doc("r2");
        let wrong_cas = PushOptions {
            if_version: Some("0000000000000000".into()),
            ..opts()
        };
        let err = start_push(&store, &second, &wrong_cas, &Overrides::default())
            .await
            .unwrap_err();
        match err {
            PushError::CasLost { stored } => assert_eq!(stored, Some(started.version.clone())),
            other => panic!("{other}"),
        }
        let unknown_canary = PushOptions {
            canary: Some("nobody".into()),
            ..opts()
        };
        let err = start_push(&store, &second, &unknown_canary, &Overrides::default())
            .await
            .unwrap_err();
        assert!(
            matches!(err, PushError::Refused(RolloutError::UnknownNode(_))),
            "{err}"
        );
        assert_eq!(
            store.get_rollout().await.unwrap().unwrap().rollout.state,
            State::Promoted
        );

        let cas = PushOptions {
            if_version: Some(started.version.clone()),
            ..opts()
        };
        let rolling = start_push(&store, &second, &cas, &Overrides::default())
            .await
            .unwrap();
        assert_eq!(rolling.rollout.state, State::InProgress);
        assert_eq!(
            rolling.rollout.stable.as_deref(),
            Some(started.version.as_str())
        );
        let plan: Vec<(String, Vec<String>)> = rolling
            .plan
            .iter()
            .map(|(s, n)| (s.to_string(), n.clone()))
            .collect();
        assert_eq!(
            plan,
            vec![
                ("node:eu-a".to_string(), vec!["eu-a".to_string()]),
                ("region:eu".to_string(), vec![]),
                ("rest".to_string(), vec!["us-a".to_string()]),
            ]
        );
        assert_eq!(store.get_config().await.unwrap().unwrap().text, first);
        let stored = store.get_rollout().await.unwrap().unwrap();
        assert_eq!(stored.rollout, rolling.rollout);

        // A third push while it lasts: refused, naming it.
        let third = doc("r3");
        let err = start_push(&store, &third, &opts(), &Overrides::default())
            .await
            .unwrap_err();
        match &err {
            PushError::InProgress { target, state } => {
                assert_eq!(target, &rolling.version);
                assert_eq!(state, "in progress");
            }
            other => panic!("{other}"),
        }
        assert!(err.to_string().contains(&rolling.version), "{err}");
        assert!(
            store
                .get_version(&fingerprint(&third))
                .await
                .unwrap()
                .is_none()
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_older_promoted_version_points_at_rollback() {
        let dir = tempfile::tempdir().unwrap();
        let etcd = LocalEtcd::start_local(1, &dir.path().join("etcd")).expect("start etcd");
        let url = etcd.url("again");
        let store = connect(&url).await;
        let (first, second) = (doc("r1"), doc("r2"));
        for text in [&first, &second] {
            let s = start_push(&store, text, &opts(), &Overrides::default())
                .await
                .unwrap();
            assert_eq!(s.rollout.state, State::Promoted);
        }
        let err = start_push(&store, &first, &opts(), &Overrides::default())
            .await
            .unwrap_err();
        assert!(
            matches!(&err, PushError::Store(StoreError::VersionExists { .. })),
            "{err}"
        );
        assert!(err.to_string().contains("config rollback"), "{err}");
        assert_eq!(store.get_config().await.unwrap().unwrap().text, second);
    }
}
