//! The node's registration with its rollout report ([`NodeStatus`]): the version it runs,
//! the target it rejected (with the errors), its figures per version and the baseline frozen
//! at its last switch, its start time. Published when the node changes (a switch, a drain, a
//! rejection) and every second while a rollout is in progress or paused, changed or not;
//! [`portico_store::register`] writes at most once a second.

use super::{REGISTRATION_TTL, StoreLink};
use crate::state::NodeState;
use portico_store::{NodeRecord, NodeStatus};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::MissedTickBehavior;

/// How often the figures are published while a rollout lasts.
const PUBLISH_EVERY: Duration = Duration::from_secs(1);

/// Keeps the node's registration up to date until the task is aborted (which drops the
/// sender: the registration revokes its lease).
pub(super) async fn publish(link: Arc<StoreLink>, node: Arc<NodeState>) {
    let (statuses, rx) = tokio::sync::watch::channel(status(&link, &node));
    let registration =
        portico_store::register(link.url.clone(), link.name.clone(), REGISTRATION_TTL, rx);
    let mut node_changes = node.watch();
    let mut link_changes = link.changes.subscribe();
    let mut tick = tokio::time::interval(PUBLISH_EVERY);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        // Every second of a rollout the status is sent even when unchanged (no traffic), so
        // the registration's `updated_at_ms` says the node still reports.
        let mut every_second = false;
        tokio::select! {
            changed = node_changes.changed() => {
                if changed.is_err() {
                    break;
                }
                if let Some(counters) = node.rollout_counters.get() {
                    counters.switch(&node.snapshot().config.version);
                }
            }
            changed = link_changes.changed() => if changed.is_err() {
                break;
            },
            _ = tick.tick() => {
                if !link.rollout_in_progress() {
                    continue;
                }
                every_second = true;
            }
        }
        let next = status(&link, &node);
        statuses.send_if_modified(|s| {
            let changed = every_second || *s != next;
            *s = next;
            changed
        });
    }
    drop(statuses);
    let _ = registration.await;
}

/// The node's status now.
fn status(link: &StoreLink, node: &NodeState) -> NodeStatus {
    let snapshot = node.snapshot();
    let mut status = NodeStatus::new(NodeRecord {
        name: link.name.clone(),
        region: snapshot.region().to_string(),
        version: snapshot.config.version.clone(),
        healthy: !node.is_draining(),
        admin: link.admin_url.clone(),
        updated_at: String::new(),
    });
    status.started_at_ms = link.started_at_ms;
    status.rejected = link.rejected();
    if let Some(counters) = node.rollout_counters.get() {
        (status.versions, status.baseline) = counters.report();
    }
    status
}
