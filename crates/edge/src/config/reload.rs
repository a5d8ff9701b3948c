//! Applying a new config document to a running node: prepare it beside the running config
//! ([`crate::config::prepare`]), build the next snapshot (carrying origin state) and swap it
//! in. An invalid document changes nothing.

use crate::config::prepare::prepare;
use crate::snapshot::Snapshot;
use crate::state::{ConfigSource, ErrorEntry, LastReload, NodeState, ReloadSource, rfc3339};
use crate::tls::CertStore;
use portico_core::config::{ConfigError, ConfigErrors};
use std::sync::Arc;
use std::time::SystemTime;

/// A reload that went through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// The version now running.
    pub version: String,
    /// False when the document was the running one already and its CA files hold the same
    /// certificates (nothing rebuilt; the listener's certificates are re-read all the same).
    pub changed: bool,
}

/// Why a conditional reload did not happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApplyError {
    /// The document is invalid or changes a restart-only field; nothing changed.
    Invalid(ConfigErrors),
    /// The running version is not the one the caller expected (`If-Match`).
    VersionMismatch {
        /// The version running.
        running: String,
    },
}

/// Validates `text` and, if it is valid and changes no restart-only field, makes it the
/// running config. Every error is logged by JSON path, counted, and kept for `/status`.
pub async fn apply(
    node: &NodeState,
    text: &str,
    source: ReloadSource,
) -> Result<Applied, ConfigErrors> {
    apply_if(node, text, source, None)
        .await
        .map_err(|e| match e {
            ApplyError::Invalid(errors) => errors,
            ApplyError::VersionMismatch { .. } => ConfigErrors(Vec::new()),
        })
}

/// [`apply`], only while the running version is `expected` (checked under the reload lock,
/// so two writers cannot both win).
pub async fn apply_if(
    node: &NodeState,
    text: &str,
    source: ReloadSource,
    expected: Option<&str>,
) -> Result<Applied, ApplyError> {
    let _serial = node.reload_lock.lock().await;
    if let Some(v) = expected {
        let running = node.snapshot().config.version.clone();
        if running != v {
            return Err(ApplyError::VersionMismatch { running });
        }
    }
    let outcome = build_next(node, text).await;
    let applied = match outcome {
        Ok(Next::Same(certs)) => {
            crate::acme::install_file_certs(node, certs);
            let version = node.snapshot().config.version.clone();
            log::info!(
                "config reload from {}: version {version} is already running; certificates re-read",
                source.label()
            );
            Applied {
                version,
                changed: false,
            }
        }
        Ok(Next::New(snapshot, certs, summary)) => {
            let version = snapshot.config.version.clone();
            let region = snapshot.config.node.region.clone();
            let pools: Vec<Arc<crate::live_pool::LivePool>> = snapshot.pools.clone();
            node.install(*snapshot);
            crate::acme::install_file_certs(node, certs);
            for p in &pools {
                p.publish_all();
            }
            node.metrics.set_info(&region, &version);
            log::info!(
                "config {version} applied (reload from {}): {summary}",
                source.label()
            );
            Applied {
                version,
                changed: true,
            }
        }
        Err(errors) => {
            log::error!(
                "config reload from {} rejected ({} error{}); the running config {} stays",
                source.label(),
                errors.0.len(),
                if errors.0.len() == 1 { "" } else { "s" },
                node.snapshot().config.version
            );
            for e in &errors.0 {
                log::error!("{e}");
            }
            let version = portico_core::config::fingerprint(text);
            record(node, source, Some(version), Some(&errors));
            return Err(ApplyError::Invalid(errors));
        }
    };
    record(node, source, Some(applied.version.clone()), None);
    Ok(applied)
}

/// Counts a reload and keeps its outcome for `/status`: applied, or rejected with `errors`.
fn record(
    node: &NodeState,
    source: ReloadSource,
    version: Option<String>,
    errors: Option<&ConfigErrors>,
) {
    node.metrics.count_reload(source.label(), errors.is_none());
    node.set_last_reload(LastReload {
        at: rfc3339(SystemTime::now()),
        source: source.label(),
        result: if errors.is_none() {
            "applied"
        } else {
            "rejected"
        },
        version,
        errors: errors
            .map(|e| e.0.iter().map(ErrorEntry::from).collect())
            .unwrap_or_default(),
    });
}

/// Re-reads the node's config file and applies it (what SIGHUP does).
pub async fn reload_file(node: &NodeState) -> Result<Applied, ConfigErrors> {
    let ConfigSource::File(path) = &node.source else {
        let errors = ConfigErrors(vec![ConfigError::new(
            "",
            format!(
                "this node's config comes from {}, not from a file: nothing to re-read",
                node.source.describe()
            ),
        )]);
        log::warn!("{errors}");
        return Err(errors);
    };
    let text = match tokio::fs::read_to_string(path).await {
        Ok(t) => t,
        Err(e) => {
            let errors = ConfigErrors(vec![ConfigError::new(
                "",
                format!("cannot read {}: {e}", path.display()),
            )]);
            log::error!("config reload from file rejected: {errors}");
            record(node, ReloadSource::File, None, Some(&errors));
            return Err(errors);
        }
    };
    apply(node, &text, ReloadSource::File).await
}

/// What a valid document becomes.
enum Next {
    /// The running document again: only the certificates, re-read, are installed.
    Same(CertStore),
    /// A new snapshot, its certificates and a one-line summary.
    New(Box<Snapshot>, CertStore, String),
}

/// The next snapshot, or only new certificates when `text` is the running document.
/// Certificates and CA files are re-read on every reload, the running document's included:
/// new CA certificates rebuild their pool even when the document is the same.
async fn build_next(node: &NodeState, text: &str) -> Result<Next, ConfigErrors> {
    let current = node.snapshot();
    let prepared = prepare(text, &node.overrides, Some(&current)).await?;
    for w in prepared.warnings() {
        log::warn!("{w}");
    }
    if prepared.unchanged {
        return Ok(Next::Same(prepared.tls.certs));
    }
    let (snapshot, plan) = Snapshot::build(
        prepared.config,
        prepared.document,
        &prepared.addrs,
        &prepared.tls.pools,
        Some(&current),
        &node.metrics,
    );
    let summary = plan.map(|p| p.summary()).unwrap_or_default();
    Ok(Next::New(Box::new(snapshot), prepared.tls.certs, summary))
}
