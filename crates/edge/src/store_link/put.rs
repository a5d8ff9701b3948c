//! `PUT /config` on a store node: starts the document's rollout with the default plan and
//! the SPEC's default gates ([`start_push`]), validated with this node's overrides.

use super::StoreLink;
use crate::config::push::{PushError, PushOptions, Started, start_push};
use crate::state::NodeState;

impl StoreLink {
    /// Starts the rollout of `text`; with `if_version` (`If-Match`), only while the stable
    /// version is that one. The author is `PUT /config on <this node>`.
    pub async fn push(
        &self,
        node: &NodeState,
        text: &str,
        if_version: Option<String>,
    ) -> Result<Started, PushError> {
        let store = self.connect().await.map_err(PushError::Store)?;
        let opts = PushOptions {
            if_version,
            message: "PUT /config".to_string(),
            author: format!("PUT /config on {}", self.name),
            ..PushOptions::default()
        };
        start_push(&store, text, &opts, &node.overrides).await
    }
}
