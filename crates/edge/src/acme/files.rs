//! What a node with a config file keeps under `node.state_dir` (created mode 0700):
//!
//! - `acme/account-<directory>.json`: the ACME account's credentials (its private key) for one
//!   CA directory, created once and reused;
//! - `certificates/<name>/chain.pem` and `key.pem` (mode 0600): the last certificate issued
//!   for `certificates[].name`, leaf first, and its private key; `directory`: the ACME
//!   directory URL of the CA that issued it.

use portico_core::config::{Config, ConfigError};
use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Creates `dir` (and its parents) mode 0700 when missing, and checks that it is a directory
/// this process can write to.
pub fn ensure_state_dir(dir: &Path) -> Result<(), String> {
    if !dir.exists() {
        check_state_dir(dir)?;
        fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .map_err(|e| format!("cannot make {} private (0700): {e}", dir.display()))?;
    }
    if !dir.is_dir() {
        return Err(format!("{} is not a directory", dir.display()));
    }
    let probe = dir.join(".portico-write-check");
    fs::write(&probe, b"")
        .and_then(|()| fs::remove_file(&probe))
        .map_err(|e| format!("cannot write in {}: {e}", dir.display()))
}

/// Whether a node with a config file can keep its managed certificates: when `config` has an
/// `"acme": true` certificate, its `node.state_dir` is created (mode 0700) when `create`
/// (start-up) or only checked ([`check_state_dir`], `--check`); an error at `node.state_dir`
/// naming the directory.
pub fn check_config(config: &Config, create: bool) -> Result<(), ConfigError> {
    if !config.certificates.iter().any(|c| c.is_acme()) {
        return Ok(());
    }
    let dir = Path::new(&config.node.state_dir);
    let checked = if create {
        ensure_state_dir(dir)
    } else {
        check_state_dir(dir)
    };
    checked.map_err(|e| ConfigError::new("node.state_dir", e))
}

/// Checks `dir` without creating anything (what `--check` does): an existing `dir` must be a
/// directory this process can write to; a missing one must be creatable, its nearest existing
/// ancestor a directory that is not read-only.
pub fn check_state_dir(dir: &Path) -> Result<(), String> {
    if dir.exists() {
        if !dir.is_dir() {
            return Err(format!("{} is not a directory", dir.display()));
        }
        let probe = dir.join(".portico-write-check");
        return fs::write(&probe, b"")
            .and_then(|()| fs::remove_file(&probe))
            .map_err(|e| format!("cannot write in {}: {e}", dir.display()));
    }
    let mut ancestor = dir.parent();
    while let Some(a) = ancestor {
        let a = if a.as_os_str().is_empty() {
            Path::new(".")
        } else {
            a
        };
        if let Ok(meta) = fs::metadata(a) {
            let cannot =
                |why: &str| format!("cannot create {}: {} {why}", dir.display(), a.display());
            if !meta.is_dir() {
                return Err(cannot("is not a directory"));
            }
            if meta.permissions().readonly() {
                return Err(cannot("is read-only"));
            }
            return Ok(());
        }
        ancestor = a.parent();
    }
    Err(format!(
        "cannot create {}: no existing parent",
        dir.display()
    ))
}

/// Where the account for `directory` is kept: one file per CA directory URL.
pub fn account_file(state_dir: &Path, directory: &str) -> PathBuf {
    let stem: String = directory
        .trim_start_matches("https://")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    state_dir.join("acme").join(format!("account-{stem}.json"))
}

/// The directory of certificate `name`.
pub fn cert_dir(state_dir: &Path, name: &str) -> PathBuf {
    state_dir.join("certificates").join(name)
}

/// A certificate as kept: PEM chain and key, and the directory URL of the CA that issued it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptCert {
    /// Leaf first, then intermediates.
    pub chain: Vec<u8>,
    /// The leaf's private key.
    pub key: Vec<u8>,
    /// `acme.directory` when it was issued (empty when not recorded).
    pub directory: String,
}

/// Reads the certificate kept for `name`, if its chain and key are there.
pub fn read_cert(state_dir: &Path, name: &str) -> Option<KeptCert> {
    let dir = cert_dir(state_dir, name);
    let chain = fs::read(dir.join("chain.pem")).ok()?;
    let key = fs::read(dir.join("key.pem")).ok()?;
    let directory = fs::read_to_string(dir.join("directory")).unwrap_or_default();
    Some(KeptCert {
        chain,
        key,
        directory: directory.trim().to_string(),
    })
}

/// Keeps `cert` for `name`: each file written to a temporary file (mode 0600) and renamed
/// over the old one, the chain last, so a crash leaves a readable pair.
pub fn write_cert(state_dir: &Path, name: &str, cert: &KeptCert) -> Result<(), String> {
    let dir = cert_dir(state_dir, name);
    create_private_dir(&dir)?;
    write_private(&dir.join("directory"), cert.directory.as_bytes())?;
    write_private(&dir.join("key.pem"), &cert.key)?;
    write_private(&dir.join("chain.pem"), &cert.chain)
}

/// Writes `bytes` to `path` mode 0600, through a temporary file renamed over it.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), String> {
    if let Some(parent) = path.parent() {
        create_private_dir(parent)?;
    }
    let tmp = path.with_extension("tmp");
    let written = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| f.write_all(bytes).and_then(|()| f.sync_all()))
        .and_then(|()| fs::rename(&tmp, path));
    written.map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn create_private_dir(dir: &Path) -> Result<(), String> {
    fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
        .map_err(|e| format!("cannot make {} private (0700): {e}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).expect("metadata").permissions().mode() & 0o777
    }

    #[test]
    fn the_state_dir_is_created_private_and_certificates_round_trip_with_private_keys() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let state = tmp.path().join("a/b/state");
        ensure_state_dir(&state).expect("created");
        assert_eq!(mode(&state), 0o700);
        assert_eq!(read_cert(&state, "www"), None);
        let kept = |chain: &str, directory: &str| KeptCert {
            chain: chain.as_bytes().to_vec(),
            key: b"KEY".to_vec(),
            directory: directory.to_string(),
        };
        write_cert(&state, "www", &kept("CHAIN", "https://ca.test/dir")).expect("written");
        assert_eq!(
            read_cert(&state, "www"),
            Some(kept("CHAIN", "https://ca.test/dir"))
        );
        assert_eq!(mode(&cert_dir(&state, "www").join("key.pem")), 0o600);
        assert_eq!(mode(&cert_dir(&state, "www")), 0o700);
        write_cert(&state, "www", &kept("CHAIN2", "https://other.test/dir")).expect("rewritten");
        assert_eq!(
            read_cert(&state, "www"),
            Some(kept("CHAIN2", "https://other.test/dir"))
        );
        // Kept before the directory was recorded: read with an empty one.
        std::fs::remove_file(cert_dir(&state, "www").join("directory")).expect("rm");
        assert_eq!(read_cert(&state, "www"), Some(kept("CHAIN2", "")));
        let file = tmp.path().join("file");
        fs::write(&file, b"").expect("file");
        assert!(ensure_state_dir(&file).is_err_and(|e| e.contains("is not a directory")));
        assert!(check_state_dir(&file).is_err_and(|e| e.contains("is not a directory")));
        assert_eq!(
            account_file(&state, "https://acme-v02.api.letsencrypt.org/directory"),
            state.join("acme/account-acme_v02_api_letsencrypt_org_directory.json")
        );
    }

    #[test]
    fn checking_the_state_dir_creates_nothing_and_names_what_stands_in_the_way() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let state = tmp.path().join("a/b/state");
        assert_eq!(
            check_state_dir(&state),
            Ok(()),
            "creatable under a directory"
        );
        assert!(!tmp.path().join("a").exists(), "--check creates nothing");
        ensure_state_dir(&state).expect("created");
        assert_eq!(check_state_dir(&state), Ok(()), "an existing directory");
        let file = tmp.path().join("file");
        fs::write(&file, b"").expect("file");
        let under = file.join("state");
        let message = format!(
            "cannot create {}: {} is not a directory",
            under.display(),
            file.display()
        );
        assert_eq!(check_state_dir(&under), Err(message));
        assert!(ensure_state_dir(&under).is_err());
        let read_only = tmp.path().join("ro");
        fs::create_dir(&read_only).expect("dir");
        fs::set_permissions(&read_only, fs::Permissions::from_mode(0o500)).expect("chmod");
        assert!(
            check_state_dir(&read_only.join("state")).is_err_and(|e| e.ends_with("is read-only"))
        );
    }
}
