//! The one config pipeline: a document's text becomes a config ready to run on this machine,
//! or every error by JSON path. Start-up, reloads (file, `PUT /config`, the store) and
//! `--check` all go through [`prepare`]; `config push` runs its first step, [`document`].

use super::resolve::{Addresses, resolve_origins};
use crate::snapshot::Snapshot;
use crate::tls::TlsMaterial;
use portico_core::config::{Config, ConfigError, ConfigErrors, Overrides, parse_with};
use portico_core::reload::restart_only_changes;
use std::net::TcpListener;
use std::sync::Arc;

/// A document that passed every step, with what it needs from this machine.
pub struct Prepared {
    /// The validated config, command-line overrides applied.
    pub config: Config,
    /// The text it was parsed from.
    pub document: Arc<str>,
    /// The origins' socket addresses, per pool, per origin.
    pub addrs: Addresses,
    /// Certificates and CA files read from disk, and the warnings (an expired certificate, a
    /// certificate host no route serves).
    pub tls: TlsMaterial,
    /// The running document again, its pools' CA and client certificate files unchanged:
    /// nothing to rebuild, only the listener's certificates (re-read) to install. The
    /// addresses are the running ones.
    pub unchanged: bool,
}

impl Prepared {
    /// Problems that do not stop the config, each `path: message`.
    pub fn warnings(&self) -> &[String] {
        &self.tls.warnings
    }
}

/// The first step alone: the text parsed and validated, `overrides` applied. What
/// `config push` checks, on a machine that need not be a node: the files and names a
/// document refers to are checked by each node that prepares it.
pub fn document(text: &str, overrides: &Overrides) -> Result<Config, ConfigErrors> {
    parse_with(text, overrides)
}

/// Runs every step on `text`: parse and validate with `overrides`; beside a `running`
/// config, refuse changes to restart-only fields; read the certificate and CA files; resolve
/// the origin names (beside `running`, a name that fails keeps its running address); read the
/// token file. Stops after the first two steps when they fail; the others report together,
/// names first, then files, each error at its JSON path. Files are read off the calling
/// thread. The running document again (same text, same pool certificates) skips resolution and
/// comes back [`Prepared::unchanged`].
pub async fn prepare(
    text: &str,
    overrides: &Overrides,
    running: Option<&Snapshot>,
) -> Result<Prepared, ConfigErrors> {
    let config = document(text, overrides)?;
    if let Some(current) = running {
        let mut errors = restart_only_changes(&current.config, &config);
        if !errors.is_empty() {
            errors.sort_by(|a, b| a.path.cmp(&b.path));
            return Err(ConfigErrors(errors));
        }
    }
    let tls = load_tls(&config).await;
    let tls = match (tls, running) {
        (Ok(material), Some(current)) if is_running(current, &config, text, &material) => {
            return Ok(Prepared {
                addrs: running_addresses(current),
                config,
                document: Arc::from(text),
                tls: material,
                unchanged: true,
            });
        }
        (tls, _) => tls,
    };
    let addrs = resolve_origins(&config, running).await;
    let mut errors = Vec::new();
    let addrs = addrs.map_err(|e| errors.extend(e)).ok();
    let tls = tls.map_err(|e| errors.extend(e.0)).ok();
    errors.extend(check_token_file(&config).err());
    match (addrs, tls) {
        (Some(addrs), Some(tls)) if errors.is_empty() => Ok(Prepared {
            config,
            document: Arc::from(text),
            addrs,
            tls,
            unchanged: false,
        }),
        _ => Err(ConfigErrors(errors)),
    }
}

/// Whether `config` (from `text`, its pools' files read into `tls`) is what `current` runs.
fn is_running(current: &Snapshot, config: &Config, text: &str, tls: &TlsMaterial) -> bool {
    let same_files = current
        .pools
        .iter()
        .zip(&tls.pools)
        .all(|(pool, read)| pool.tls == *read);
    *config == current.config && *current.document == *text && same_files
}

/// The addresses `current` runs with, per pool, per origin.
fn running_addresses(current: &Snapshot) -> Addresses {
    current
        .pools
        .iter()
        .map(|p| p.origins.iter().map(|o| o.addr).collect())
        .collect()
}

/// Reads the certificates and CA files ([`crate::tls::load`]) on a blocking thread.
async fn load_tls(config: &Config) -> Result<TlsMaterial, ConfigErrors> {
    let config = config.clone();
    tokio::task::spawn_blocking(move || crate::tls::load(&config))
        .await
        .map_err(|e| {
            ConfigErrors(vec![ConfigError::new(
                "",
                format!("reading certificates failed: {e}"),
            )])
        })?
}

/// Checks that `node.admin_token_file`, when set, can be read and holds a token.
pub fn check_token_file(config: &Config) -> Result<(), ConfigError> {
    let Some(file) = &config.node.admin_token_file else {
        return Ok(());
    };
    let problem = match std::fs::read_to_string(file) {
        Ok(t) if t.trim().is_empty() => format!("{file} is empty"),
        Ok(_) => return Ok(()),
        Err(e) => format!("cannot read {file}: {e}"),
    };
    Err(ConfigError::new("node.admin_token_file", problem))
}

/// The step only start-up takes (a running node holds its listeners): the listeners can be
/// bound, so a busy port is a clear error at its path.
pub fn check_listeners(config: &Config) -> Result<(), ConfigErrors> {
    let mut errors = Vec::new();
    let tls = config
        .node
        .tls_listen
        .as_ref()
        .map(|a| ("node.tls_listen", a));
    for (path, addr) in [
        ("node.listen", &config.node.listen),
        ("node.admin_listen", &config.node.admin_listen),
    ]
    .into_iter()
    .chain(tls)
    {
        if let Err(e) = TcpListener::bind(addr.as_str()) {
            errors.push(ConfigError::new(
                path,
                format!("cannot listen on {addr}: {e}"),
            ));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ConfigErrors(errors))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;

    const GOOD: &str = r#"{"pools":[{"name":"p","origins":[
        {"name":"a","address":"127.0.0.1:7001"}]}],
        "routes":[{"name":"r","pool":"p"}]}"#;

    /// The snapshot a node running `text` holds.
    async fn running(text: &str) -> Snapshot {
        let p = prepare(text, &Overrides::default(), None)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let metrics = Arc::new(Metrics::new(&p.config.node.region, &p.config.version));
        let (snapshot, _) =
            Snapshot::build(p.config, p.document, &p.addrs, &p.tls.pools, None, &metrics);
        snapshot
    }

    fn paths(errors: &ConfigErrors) -> Vec<&str> {
        errors.0.iter().map(|e| e.path.as_str()).collect()
    }

    #[test]
    fn the_token_file_must_be_readable_and_hold_a_token() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("token").display().to_string();
        let mut config = portico_core::config::parse(GOOD).expect("valid");
        assert_eq!(
            check_token_file(&config),
            Ok(()),
            "no token file, nothing to read"
        );
        config.node.admin_token_file = Some(file.clone());
        let error = check_token_file(&config).expect_err("missing");
        assert_eq!(error.path, "node.admin_token_file");
        assert!(
            error.message.starts_with(&format!("cannot read {file}: ")),
            "{error}"
        );
        std::fs::write(&file, " \n").expect("write");
        let error = check_token_file(&config).expect_err("empty");
        assert_eq!(error.message, format!("{file} is empty"));
        std::fs::write(&file, "s3cret\n").expect("write");
        assert_eq!(check_token_file(&config), Ok(()));
    }

    #[tokio::test]
    async fn beside_a_running_config_restart_only_changes_stop_the_pipeline() {
        let current = running(GOOD).await;
        let text = GOOD.replacen("{", r#"{"node":{"threads":3},"#, 1);
        let text = text.replace(
            r#""name":"p","#,
            r#""name":"p","ca_file":"/nonexistent/ca.pem","#,
        );
        let errors = prepare(&text, &Overrides::default(), Some(&current))
            .await
            .err()
            .expect("threads need a restart");
        assert_eq!(paths(&errors), ["node.threads"], "{errors}");
        // Without a running config the same document is judged on its files.
        let errors = prepare(&text, &Overrides::default(), None)
            .await
            .err()
            .expect("no CA file");
        assert_eq!(paths(&errors), ["pools[0].ca_file"], "{errors}");
    }

    #[tokio::test]
    async fn the_running_document_again_is_unchanged_and_keeps_its_addresses() {
        let current = running(GOOD).await;
        let again = prepare(GOOD, &Overrides::default(), Some(&current))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(again.unchanged);
        assert_eq!(again.addrs, running_addresses(&current));
        let changed = GOOD.replace("7001", "7002");
        let next = prepare(&changed, &Overrides::default(), Some(&current))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(!next.unchanged);
        assert_eq!(next.addrs[0][0].port(), 7002);
        // Without a running config nothing is "unchanged".
        let fresh = prepare(GOOD, &Overrides::default(), None)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(!fresh.unchanged);
    }

    /// A self-signed certificate and its key, PEM, written to `dir` as `<stem>.pem` and
    /// `<stem>-key.pem`: their paths.
    fn write_cert(dir: &std::path::Path, stem: &str) -> (String, String) {
        let key = rcgen::KeyPair::generate().expect("key");
        let params = rcgen::CertificateParams::new(vec![stem.to_string()]).expect("params");
        let cert = params.self_signed(&key).expect("cert");
        let cert_file = dir.join(format!("{stem}.pem")).display().to_string();
        let key_file = dir.join(format!("{stem}-key.pem")).display().to_string();
        std::fs::write(&cert_file, cert.pem()).expect("write");
        std::fs::write(&key_file, key.serialize_pem()).expect("write");
        (cert_file, key_file)
    }

    /// [`GOOD`] with its pool presenting `cert`/`key` to its origin over TLS.
    fn with_client_cert(cert: &str, key: &str) -> String {
        GOOD.replace(
            r#""name":"p","#,
            &format!(r#""name":"p","client_cert_file":{cert:?},"client_key_file":{key:?},"#),
        )
        .replace(r#""127.0.0.1:7001"}"#, r#""127.0.0.1:7001","tls":true}"#)
    }

    #[tokio::test]
    async fn a_client_certificate_file_with_new_contents_is_a_change() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (cert, key) = write_cert(dir.path(), "edge");
        let text = with_client_cert(&cert, &key);
        let current = running(&text).await;
        assert!(current.pools[0].tls.client_cert.is_some());
        let again = prepare(&text, &Overrides::default(), Some(&current))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(again.unchanged, "the same files");
        write_cert(dir.path(), "edge");
        let next = prepare(&text, &Overrides::default(), Some(&current))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(!next.unchanged, "the same document, a new certificate");
        assert_ne!(next.tls.pools[0], current.pools[0].tls);
    }

    #[tokio::test]
    async fn client_certificate_files_are_checked_with_the_others() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (cert, _) = write_cert(dir.path(), "edge");
        let (_, other_key) = write_cert(dir.path(), "other");
        let missing = dir.path().join("missing.pem").display().to_string();
        let text = with_client_cert(&cert, &other_key).replace(
            r#""name":"p","#,
            &format!(r#""name":"p","ca_file":{missing:?},"#),
        );
        let errors = prepare(&text, &Overrides::default(), None)
            .await
            .err()
            .expect("a missing CA file and a key of another certificate");
        assert_eq!(
            paths(&errors),
            ["pools[0].ca_file", "pools[0].client_key_file"],
            "{errors}"
        );
        assert!(
            errors.0[1].message
                == format!("the key in {other_key} does not match the certificate in {cert}"),
            "{errors}"
        );
    }
}
