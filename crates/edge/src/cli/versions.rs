//! The versions the store keeps: `config history`, `config get [--version V]`,
//! `config diff [A [B]]` and `config rollback [VERSION]`.

use super::refuse;
use portico_core::config::{diff as json_diff, fingerprint};
use portico_core::rollout::{Outcome, check_rollback};
use portico_store::{Store, StoreError, StoreUrl};
use std::process::ExitCode;

/// The stable version, if the store has a stable document.
async fn stable(store: &Store) -> anyhow::Result<Option<(String, String)>> {
    Ok(store
        .get_config()
        .await?
        .map(|doc| (fingerprint(&doc.text), doc.text)))
}

/// The newest promoted version other than `stable` (the version promoted before it, or the
/// one a `config rollback` left): the default of `rollback` and of `diff` outside a rollout.
async fn previous(store: &Store, stable: Option<&str>) -> anyhow::Result<Option<String>> {
    Ok(store
        .history(0) // every version the store keeps
        .await?
        .into_iter()
        .find(|v| {
            v.record.outcome == Outcome::Promoted && Some(v.record.version.as_str()) != stable
        })
        .map(|v| v.record.version))
}

/// The document of `version` (the stable one from `config`, which a store written before
/// versions were kept may hold alone).
async fn document(store: &Store, version: &str) -> anyhow::Result<Option<String>> {
    if let Some((v, text)) = stable(store).await?
        && v == version
    {
        return Ok(Some(text));
    }
    Ok(store.get_document(version).await?)
}

fn unknown(version: &str) -> String {
    format!("the store holds no version {version} (`portico config history` lists those it holds)")
}

/// `config history [--limit N]`: newest first, one line per version.
pub async fn history(store: &Store, limit: usize) -> anyhow::Result<ExitCode> {
    let versions = store.history(limit).await?;
    if versions.is_empty() {
        sayln!("(no version: nothing was pushed to this store with rollouts)")?;
    }
    for v in versions {
        let r = &v.record;
        sayln!(
            "{:<16}  {}  {:<24} {:<12} {}",
            r.version,
            r.pushed_at,
            r.author,
            r.outcome.to_string(),
            r.message
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `config get [--version V]`.
pub async fn get(store: &Store, url: &StoreUrl, version: Option<&str>) -> anyhow::Result<ExitCode> {
    let text = match version {
        None => match store.get_config().await? {
            Some(doc) => doc.text,
            None => {
                return refuse(format_args!(
                    "no config stored at {} in {url}",
                    url.config_key()
                ));
            }
        },
        Some(v) => match document(store, v).await? {
            Some(text) => text,
            None => return refuse(unknown(v)),
        },
    };
    let end = if text.ends_with('\n') { "" } else { "\n" };
    say!("{text}{end}")?;
    Ok(ExitCode::SUCCESS)
}

/// `config diff [A [B]]`: a header line naming both versions, then one line per JSON path.
pub async fn diff(store: &Store, a: Option<&str>, b: Option<&str>) -> anyhow::Result<ExitCode> {
    let stable_version = stable(store).await?.map(|(v, _)| v);
    let (old, new) = match (a, b) {
        (Some(a), Some(b)) => (a.to_string(), b.to_string()),
        (Some(a), None) => match &stable_version {
            Some(s) => (a.to_string(), s.clone()),
            None => return refuse("the store holds no stable config to compare with"),
        },
        (None, _) => {
            let rollout = store.get_rollout().await?;
            match (rollout, &stable_version) {
                (Some(r), Some(s)) if !r.rollout.state.is_over() => {
                    (s.clone(), r.rollout.target.clone())
                }
                (_, Some(s)) => match previous(store, Some(s)).await? {
                    Some(p) => (p, s.clone()),
                    None => {
                        return refuse(format_args!(
                            "nothing to compare: {s} is the only promoted version; name two \
                             versions (`portico config history` lists them)"
                        ));
                    }
                },
                (_, None) => return refuse("the store holds no stable config to compare with"),
            }
        }
    };
    let Some(old_text) = document(store, &old).await? else {
        return refuse(unknown(&old));
    };
    let Some(new_text) = document(store, &new).await? else {
        return refuse(unknown(&new));
    };
    let parse = |v: &str, text: &str| {
        serde_json::from_str::<serde_json::Value>(text)
            .map_err(|e| anyhow::anyhow!("version {v} is not JSON: {e}"))
    };
    let changes = json_diff(&parse(&old, &old_text)?, &parse(&new, &new_text)?);
    let n = changes.len();
    sayln!(
        "{old} -> {new}: {n} change{}",
        if n == 1 { "" } else { "s" }
    )?;
    for c in changes {
        sayln!("{c}")?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `config rollback [VERSION]`: makes an earlier promoted version stable at once (default: the
/// newest promoted version other than the stable one).
pub async fn rollback(store: &Store, version: Option<&str>) -> anyhow::Result<ExitCode> {
    let stable_version = stable(store).await?.map(|(v, _)| v);
    let version = match version {
        Some(v) => v.to_string(),
        None => match previous(store, stable_version.as_deref()).await? {
            Some(p) => p,
            None => {
                return refuse(
                    "no earlier promoted version to roll back to (`portico config history` \
                     lists the versions)",
                );
            }
        },
    };
    if stable_version.as_deref() == Some(version.as_str()) {
        sayln!("version {version} is the stable version already: nothing to do")?;
        return Ok(ExitCode::SUCCESS);
    }
    let Some(outcome) = store.get_version(&version).await?.map(|v| v.record.outcome) else {
        return refuse(unknown(&version));
    };
    if let Err(e) = check_rollback(&version, Some(outcome)) {
        return refuse(e);
    }
    match store.rollback_to(&version).await {
        Ok(_) => {
            sayln!(
                "version {version} is the stable version again (was {}): every node runs it \
                 now, at once (no waves: it was baked before)",
                stable_version.as_deref().unwrap_or("none")
            )?;
            Ok(ExitCode::SUCCESS)
        }
        Err(
            e @ (StoreError::RolloutInProgress { .. }
            | StoreError::Refused(_)
            | StoreError::UnknownVersion { .. }),
        ) => refuse(e),
        Err(e) => Err(e.into()),
    }
}
