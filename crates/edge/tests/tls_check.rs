//! `portico --check` on TLS configs: certificate files checked by path (exit 1), an expired
//! certificate a warning (exit 0), and the summary's `tls:` line.

use openssl::asn1::Asn1Time;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::x509::{X509, X509NameBuilder};
use std::path::Path;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_portico");

/// A self-signed certificate for `cn`, valid from `not_before` to `not_after` (Unix times).
fn self_signed(cn: &str, not_before: i64, not_after: i64) -> (X509, PKey<Private>) {
    let key = PKey::ec_gen("prime256v1").expect("key");
    let mut name = X509NameBuilder::new().expect("name");
    name.append_entry_by_text("CN", cn).expect("cn");
    let name = name.build();
    let mut b = X509::builder().expect("builder");
    b.set_version(2).expect("version");
    b.set_subject_name(&name).expect("subject");
    b.set_issuer_name(&name).expect("issuer");
    b.set_pubkey(&key).expect("pubkey");
    b.set_not_before(&Asn1Time::from_unix(not_before).expect("time"))
        .expect("not before");
    b.set_not_after(&Asn1Time::from_unix(not_after).expect("time"))
        .expect("not after");
    b.sign(&key, MessageDigest::sha256()).expect("sign");
    (b.build(), key)
}

fn write(dir: &Path, stem: &str, cert: &X509, key: &PKey<Private>) -> (String, String) {
    let c = dir.join(format!("{stem}.pem"));
    let k = dir.join(format!("{stem}-key.pem"));
    std::fs::write(&c, cert.to_pem().expect("pem")).expect("write");
    std::fs::write(&k, key.private_key_to_pem_pkcs8().expect("pem")).expect("write");
    (c.display().to_string(), k.display().to_string())
}

fn check(dir: &Path, certificates: &str) -> (i32, String, String) {
    check_with_routes(dir, r#"[{"name": "r", "pool": "p"}]"#, certificates)
}

#[test]
fn check_lists_managed_certificates_and_reads_the_acme_ca_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ca, ca_key) = self_signed("acme-ca.test", 1_700_000_000, 2_000_000_000);
    let (ca_file, _) = write(dir.path(), "acme-ca", &ca, &ca_key);
    let managed = |ca_file: &str| {
        format!(
            r#"[{{"name": "www", "hosts": ["www.test"], "acme": true}}],
               "acme": {{"directory": "https://ca.test/dir", "ca_file": "{ca_file}", "renew_before_days": 20}},
               "node": {{"listen": "127.0.0.1:18080", "tls_listen": "127.0.0.1:18443", "state_dir": "/srv/portico"}}"#
        )
    };
    let text = |certificates: String| {
        format!(
            r#"{{"pools": [{{"name": "p", "origins": [{{"name": "a", "address": "127.0.0.1:9001"}}]}}],
                "routes": [{{"name": "r", "pool": "p"}}],
                "certificates": {certificates}}}"#
        )
    };
    let run = |doc: String| {
        let path = dir.path().join("acme.json");
        std::fs::write(&path, doc).expect("write");
        let out = Command::new(BIN)
            .args(["--config", path.to_str().expect("path"), "--check"])
            .env("RUST_LOG", "warn")
            .output()
            .expect("run portico");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, out, err) = run(text(managed(&ca_file)));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("tls: 127.0.0.1:18443, h2 and http/1.1; certificates www (www.test, acme)"),
        "{out}"
    );
    assert!(
        out.contains("acme: https://ca.test/dir, renewed 20 days before expiry; kept in /srv/portico (the store, for a node following one)"),
        "{out}"
    );
    let missing = dir.path().join("missing.pem").display().to_string();
    let (code, _, err) = run(text(managed(&missing)));
    assert_eq!(code, 1);
    assert!(
        err.contains(&format!("acme.ca_file: cannot read {missing}")),
        "{err}"
    );
}

/// `portico --check` of a config with these routes and certificates.
fn check_with_routes(dir: &Path, routes: &str, certificates: &str) -> (i32, String, String) {
    let text = format!(
        r#"{{"node": {{"listen": "127.0.0.1:18080", "tls_listen": "127.0.0.1:18443"}},
            "pools": [{{"name": "p", "origins": [{{"name": "a", "address": "127.0.0.1:9001"}}]}}],
            "routes": {routes},
            "certificates": {certificates}}}"#
    );
    let path = dir.join("config.json");
    std::fs::write(&path, text).expect("write");
    let out = Command::new(BIN)
        .args(["--config", path.to_str().expect("path"), "--check"])
        .env("RUST_LOG", "warn")
        .output()
        .expect("run portico");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn cert_json(name: &str, host: &str, files: &(String, String)) -> String {
    serde_json::json!({"name": name, "hosts": [host], "cert_file": files.0, "key_file": files.1})
        .to_string()
}

#[test]
fn check_reads_certificates_reports_bad_files_by_path_and_warns_of_expiry() {
    let dir = tempfile::tempdir().expect("tempdir");
    let now = 1_700_000_000;
    let (good, good_key) = self_signed("good.test", now, now + 10 * 365 * 86_400);
    let (old, old_key) = self_signed("old.test", 946_684_800, 978_307_200);
    let good_files = write(dir.path(), "good", &good, &good_key);
    let old_files = write(dir.path(), "old", &old, &old_key);

    let (code, out, err) = check(
        dir.path(),
        &format!(
            "[{}, {}]",
            cert_json("good", "good.test", &good_files),
            cert_json("old", "*.old.test", &old_files)
        ),
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(
            "tls: 127.0.0.1:18443, h2 and http/1.1; certificates good (good.test), old (*.old.test)"
        ),
        "{out}"
    );
    assert_eq!(
        err.trim(),
        format!(
            "warning: certificates[1].cert_file: the certificate in {} expired on Jan  1 00:00:00 2001 GMT",
            old_files.0
        )
    );

    // A certificate for a host no route serves: a warning at its path, still exit 0.
    let (code, _, err) = check_with_routes(
        dir.path(),
        r#"[{"name": "r", "hosts": ["good.test"], "pool": "p"}]"#,
        &format!(
            "[{}, {}]",
            cert_json("good", "good.test", &good_files),
            cert_json("other", "other.test", &good_files)
        ),
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        err.trim(),
        "warning: certificates[1].hosts[0]: no route serves other.test (requests for it would get 404)"
    );

    // A key of another certificate, a file that is no PEM, a file that is not there:
    // every one at its path, exit 1.
    let junk = dir.path().join("junk.pem").display().to_string();
    std::fs::write(&junk, "junk").expect("write");
    let (code, out, err) = check(
        dir.path(),
        &format!(
            "[{}, {}, {}]",
            cert_json("a", "a.test", &(good_files.0.clone(), old_files.1.clone())),
            cert_json("b", "b.test", &(junk.clone(), good_files.1.clone())),
            cert_json(
                "c",
                "c.test",
                &("/nonexistent/c.pem".into(), good_files.1.clone())
            ),
        ),
    );
    assert_eq!(code, 1, "{out}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 3, "{err}");
    assert_eq!(
        lines[0],
        format!(
            "certificates[0].key_file: the key in {} does not match the certificate in {}",
            old_files.1, good_files.0
        )
    );
    assert_eq!(
        lines[1],
        format!("certificates[1].cert_file: {junk} holds no PEM certificate")
    );
    assert!(
        lines[2].starts_with("certificates[2].cert_file: cannot read /nonexistent/c.pem: "),
        "{err}"
    );
}

/// `node.state_dir` of a node with a config file managing a certificate: `--check` and
/// start-up refuse one that cannot be a directory (under a regular file), at its path and
/// naming it; start-up creates a missing one mode 0700, `--check` creates nothing.
#[test]
fn a_state_dir_that_cannot_be_a_directory_stops_check_and_start_up() {
    use std::os::unix::fs::PermissionsExt;
    use std::process::{Child, Stdio};
    use std::time::Duration;

    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("file");
    std::fs::write(&file, b"").expect("write");
    let config = |state_dir: &Path| {
        let [listen, admin, tls] = portico_test_support::free_addrs(3)[..] else {
            unreachable!("three addresses")
        };
        let doc = serde_json::json!({
            "node": {"listen": listen.to_string(), "admin_listen": admin.to_string(),
                     "tls_listen": tls.to_string(), "state_dir": state_dir},
            "pools": [{"name": "p", "origins": [{"name": "a", "address": "127.0.0.1:9001"}]}],
            "routes": [{"name": "r", "pool": "p"}],
            "certificates": [{"name": "www", "hosts": ["www.test"], "acme": true}],
            "acme": {"directory": "https://127.0.0.1:9/dir"}
        });
        let path = dir.path().join("config.json");
        std::fs::write(&path, doc.to_string()).expect("write");
        path
    };
    let spawn = |path: &Path, check: bool| -> Child {
        let mut cmd = Command::new(BIN);
        cmd.args(["--config", path.to_str().expect("path")]);
        if check {
            cmd.arg("--check");
        }
        cmd.env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run portico")
    };
    let under_file = file.join("state");
    let expected = format!(
        "node.state_dir: cannot create {}: {} is not a directory",
        under_file.display(),
        file.display()
    );
    for check in [true, false] {
        let mut child = spawn(&config(&under_file), check);
        let status =
            portico_test_support::poll_blocking("portico to exit", Duration::from_secs(60), || {
                child.try_wait().expect("wait")
            });
        let out = child.wait_with_output().expect("output");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(status.code(), Some(1), "check {check}: {err}");
        assert!(err.contains(&expected), "check {check}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }

    let missing = dir.path().join("var/lib/portico");
    let out = spawn(&config(&missing), true)
        .wait_with_output()
        .expect("output");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!dir.path().join("var").exists(), "--check creates nothing");
    let mut node = spawn(&config(&missing), false);
    portico_test_support::poll_blocking("the state directory", Duration::from_secs(60), || {
        if let Some(status) = node.try_wait().expect("wait") {
            panic!("the node exited ({status})");
        }
        missing.is_dir().then_some(())
    });
    let _ = node.kill();
    let _ = node.wait();
    let mode = std::fs::metadata(&missing)
        .expect("meta")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o700);
}

#[test]
fn check_reads_a_pool_client_certificate_and_reports_bad_files_by_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let now = 1_700_000_000;
    let (edge, edge_key) = self_signed("edge.test", now, now + 10 * 365 * 86_400);
    let (old, old_key) = self_signed("old.test", 946_684_800, 978_307_200);
    let edge_files = write(dir.path(), "edge", &edge, &edge_key);
    let old_files = write(dir.path(), "old", &old, &old_key);
    // Pool `p` presents `files` to its TLS origin; pool `q`, cleartext, presents `files` too.
    let run = |files: &(String, String), q_files: &(String, String)| {
        let pool = |name: &str, tls: bool, files: &(String, String)| {
            serde_json::json!({
                "name": name,
                "client_cert_file": files.0,
                "client_key_file": files.1,
                "origins": [{"name": "a", "address": "127.0.0.1:9001", "tls": tls}],
            })
        };
        let text = serde_json::json!({
            "pools": [pool("p", true, files), pool("q", false, q_files)],
            "routes": [{"name": "r", "pool": "p"}, {"name": "s", "hosts": ["q.test"], "pool": "q"}],
        });
        let path = dir.path().join("pools.json");
        std::fs::write(&path, text.to_string()).expect("write");
        let out = Command::new(BIN)
            .args(["--config", path.to_str().expect("path"), "--check"])
            .env("RUST_LOG", "warn")
            .output()
            .expect("run portico");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // Good files: exit 0; an expired certificate and a pool with no TLS origin are warnings.
    let (code, err) = run(&old_files, &edge_files);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(
        lines,
        [
            format!(
                "warning: pools[0].client_cert_file: the certificate in {} expired on Jan  1 00:00:00 2001 GMT",
                old_files.0
            ),
            "warning: pools[1].client_cert_file: no origin of the pool has \"tls\": true, so the certificate is never presented".to_string(),
        ],
        "{err}"
    );
    // A key of another certificate and a file that is not there: each at its path, exit 1.
    let missing = dir.path().join("missing.pem").display().to_string();
    let (code, err) = run(
        &(edge_files.0.clone(), old_files.1.clone()),
        &(missing.clone(), edge_files.1.clone()),
    );
    assert_eq!(code, 1, "{err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert_eq!(
        lines[0],
        format!(
            "pools[0].client_key_file: the key in {} does not match the certificate in {}",
            old_files.1, edge_files.0
        )
    );
    assert!(
        lines[1].starts_with(&format!(
            "pools[1].client_cert_file: cannot read {missing}: "
        )),
        "{err}"
    );
}
