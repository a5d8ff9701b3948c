//! The active health probe: Pingora's `HttpHealthCheck` per origin, timed, recorded in the core.

use crate::pool::{OriginRef, PoolCore, probe_request};
use async_trait::async_trait;
use pingora_error::{Error, ErrorType, Result};
use pingora_load_balancing::Backend;
use pingora_load_balancing::health_check::{HealthCheck, HttpHealthCheck};
use portico_core::health::ProbeResult;
use std::sync::Arc;
use std::time::Instant;

/// Probes the origins of one pool and records each result in the pool's health window.
#[derive(Clone)]
pub struct Prober {
    pool: Arc<PoolCore>,
    checks: Arc<Vec<HttpHealthCheck>>,
}

impl Prober {
    /// One HTTP check per origin, each with the probe's method, path, headers and timeout.
    pub fn new(pool: Arc<PoolCore>, region: &str) -> Self {
        let probe = &pool.config.probe;
        let checks = pool
            .origins
            .iter()
            .map(|origin| {
                let mut check = HttpHealthCheck::new("", false);
                check.req = probe_request(&pool.config, origin, region);
                check.peer_template.options.connection_timeout = Some(probe.timeout);
                check.peer_template.options.read_timeout = Some(probe.timeout);
                check.peer_template.options.write_timeout = Some(probe.timeout);
                check.reuse_connection = false;
                let expected = probe.expected_status.clone();
                check.validator = Some(Box::new(move |resp| {
                    let status = resp.status.as_u16();
                    if expected.contains(status) {
                        Ok(())
                    } else {
                        Error::e_explain(
                            ErrorType::CustomCode("unexpected probe status", status),
                            format!("expected {expected}"),
                        )
                    }
                }));
                check
            })
            .collect();
        Self {
            pool,
            checks: Arc::new(checks),
        }
    }
}

#[async_trait]
impl HealthCheck for Prober {
    /// Sends one probe, records it, and answers with the health window's verdict (so
    /// Pingora's own health flag follows the window).
    async fn check(&self, target: &Backend) -> Result<()> {
        let Some(idx) = target.ext.get::<OriginRef>().map(|r| r.index) else {
            return Error::e_explain(ErrorType::InternalError, "backend without origin");
        };
        let Some(check) = self.checks.get(idx) else {
            return Error::e_explain(ErrorType::InternalError, "origin index out of range");
        };
        let timeout = self.pool.config.probe.timeout;
        let start = Instant::now();
        let outcome = tokio::time::timeout(timeout, check.check(target)).await;
        let result = match outcome {
            Ok(Ok(())) => ProbeResult::Success(start.elapsed()),
            Ok(Err(e)) => {
                log::debug!(
                    "probe of {} in pool {} failed: {e}",
                    self.pool.config.origins[idx].name,
                    self.pool.config.name
                );
                ProbeResult::Failure
            }
            Err(_) => {
                log::debug!(
                    "probe of {} in pool {} timed out after {} ms",
                    self.pool.config.origins[idx].name,
                    self.pool.config.name,
                    timeout.as_millis()
                );
                ProbeResult::Failure
            }
        };
        if self.pool.record_probe(idx, result) {
            Ok(())
        } else {
            Error::e_explain(ErrorType::Custom("unhealthy"), "health window")
        }
    }

    fn backend_summary(&self, target: &Backend) -> String {
        match target.ext.get::<OriginRef>() {
            Some(r) => format!(
                "pool {} origin {}",
                self.pool.config.name, self.pool.config.origins[r.index].name
            ),
            None => format!("{target:?}"),
        }
    }

    /// The health window decides; Pingora's flag follows each verdict at once.
    fn health_threshold(&self, _success: bool) -> usize {
        1
    }
}
