//! The document a node following a store starts from: the stored stable one, else its cache.

use super::STORE_TIMEOUT;
use crate::config::prepare::{Prepared, prepare};
use portico_core::config::{Overrides, fingerprint};
use portico_store::{Store, StoreUrl};
use std::path::Path;

/// The document a store-following node starts from, prepared.
pub struct Startup {
    /// The document, ready to build the node from.
    pub prepared: Prepared,
    /// Whether it came from the cache (the store was unreachable, empty, or its document
    /// could not be prepared here).
    pub from_cache: bool,
}

/// Picks and prepares the document a node following `url` starts from: the stored one when
/// the store answers and it prepares on this machine, else the cache (logged); with neither,
/// an error naming both.
pub async fn startup(
    url: &StoreUrl,
    cache: Option<&Path>,
    overrides: &Overrides,
) -> Result<Startup, String> {
    let fetched = match Store::connect(url, STORE_TIMEOUT).await {
        Ok(store) => store.get_config().await,
        Err(e) => Err(e),
    };
    let why = match fetched {
        Ok(Some(doc)) => match prepare(&doc.text, overrides, None).await {
            Ok(prepared) => {
                return Ok(Startup {
                    prepared,
                    from_cache: false,
                });
            }
            Err(errors) => format!(
                "the stored config (version {}) is invalid:\n{errors}",
                fingerprint(&doc.text)
            ),
        },
        Ok(None) => format!(
            "the store {url} holds no config at {} (push one with  portico config push FILE --store {url})",
            url.config_key()
        ),
        Err(e) => format!("the store {url} is unreachable ({e})"),
    };
    let cache_name = cache
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "(no --cache given)".to_string());
    let cached = match cache.map(std::fs::read_to_string) {
        Some(Ok(text)) => prepare(&text, overrides, None)
            .await
            .map_err(|e| format!("the cache {cache_name} cannot be used: {e}")),
        Some(Err(e)) => Err(format!("the cache {cache_name} cannot be read: {e}")),
        None => Err("no --cache given".to_string()),
    };
    match cached {
        Ok(prepared) => {
            log::warn!("{why}; starting from the cache {cache_name}");
            Ok(Startup {
                prepared,
                from_cache: true,
            })
        }
        Err(reason) => Err(format!(
            "{why}, and there is no usable cache ({reason}): nothing to start from"
        )),
    }
}

/// Writes `text` to `path` atomically (a temporary file renamed over it).
pub fn write_cache(path: &Path, text: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}
