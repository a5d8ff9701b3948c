//! Stage two for managed certificates: the `acme` block, needed when a certificate is
//! `"acme": true`.

use super::error::Collector;
use super::error::int;
use super::model::{AcmeConfig, CertificateConfig};
use super::raw::RawAcme;

/// `acme`: the directory (`https://`), contacts (`mailto:`), the CA file and the renewal
/// window. An error when a certificate is managed and there is no `acme` or no directory;
/// `None` without a directory (or with errors).
pub(crate) fn validate_acme(
    c: &mut Collector,
    raw: Option<&RawAcme>,
    certificates: &[CertificateConfig],
) -> Option<AcmeConfig> {
    let Some(raw) = raw else {
        if let Some(i) = certificates.iter().position(CertificateConfig::is_acme) {
            c.push(
                format!("certificates[{i}].acme"),
                "needs the top-level `acme` block: the CA's `directory` (Let's Encrypt: https://acme-v02.api.letsencrypt.org/directory)",
            );
        }
        return None;
    };
    let before = c.errors.len();
    let managed = certificates.iter().any(CertificateConfig::is_acme);
    let directory = match raw.directory.as_deref() {
        None if managed => {
            c.require(
                "acme.directory",
                "is required: the CA's ACME directory URL, for the certificates with \"acme\": true",
            );
            String::new()
        }
        None => String::new(),
        Some(d) if !d.starts_with("https://") || d.len() == "https://".len() => {
            c.push(
                "acme.directory",
                format!("{d:?} is not an https:// URL (ACME directories are served over HTTPS)"),
            );
            String::new()
        }
        Some(d) if d.chars().any(|ch| ch.is_whitespace() || ch.is_control()) => {
            c.push("acme.directory", format!("{d:?}: a URL has no spaces"));
            String::new()
        }
        Some(d) => d.to_string(),
    };
    let mut contact = Vec::new();
    for (i, m) in raw
        .contact
        .as_deref()
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let ok = m
            .strip_prefix("mailto:")
            .is_some_and(|rest| !rest.is_empty())
            && !m.chars().any(|ch| ch.is_whitespace() || ch.is_control());
        if ok {
            contact.push(m.clone());
        } else {
            c.push(
                format!("acme.contact[{i}]"),
                format!("{m:?} is not a mailto: URL (mailto:ops@example.com)"),
            );
        }
    }
    let ca_file = match raw.ca_file.as_deref() {
        Some(f) if f.trim().is_empty() => {
            c.push("acme.ca_file", "must name a PEM file");
            None
        }
        other => other.map(str::to_string),
    };
    let renew_before_days = int(
        c,
        "acme.renew_before_days",
        raw.renew_before_days,
        30,
        1,
        365,
    ) as u32;
    (c.errors.len() == before && !directory.is_empty()).then_some(AcmeConfig {
        directory,
        contact,
        ca_file,
        renew_before_days,
    })
}

#[cfg(test)]
mod tests {
    use crate::config::{CertSource, DEFAULT_STATE_DIR, parse};

    fn doc(certificates: &str, acme: &str) -> String {
        let acme = if acme.is_empty() {
            String::new()
        } else {
            format!(r#", "acme": {acme}"#)
        };
        format!(
            r#"{{
  "pools": [{{"name": "api", "origins": [{{"name": "a", "address": "127.0.0.1:9001"}}]}}],
  "routes": [{{"name": "api", "pool": "api"}}],
  "certificates": {certificates}{acme}
}}"#
        )
    }

    fn errors(text: &str) -> Vec<String> {
        match parse(text) {
            Ok(_) => Vec::new(),
            Err(e) => e.0.iter().map(ToString::to_string).collect(),
        }
    }

    const MANAGED: &str =
        r#"[{"name": "www", "hosts": ["www.example.com", "Example.com"], "acme": true}]"#;

    #[test]
    fn a_managed_certificate_takes_the_acme_block_and_its_defaults() {
        let c = parse(&doc(
            MANAGED,
            r#"{"directory": "https://acme.test/dir", "contact": ["mailto:ops@example.com"]}"#,
        ))
        .expect("valid");
        assert_eq!(c.certificates[0].source, CertSource::Acme);
        assert_eq!(
            c.certificates[0].exact_hosts(),
            ["www.example.com", "example.com"]
        );
        let acme = c.acme.expect("acme");
        assert_eq!(acme.directory, "https://acme.test/dir");
        assert_eq!(acme.contact, ["mailto:ops@example.com"]);
        assert_eq!(acme.ca_file, None);
        assert_eq!(acme.renew_before_days, 30);
        assert_eq!(c.node.state_dir, DEFAULT_STATE_DIR);
    }

    #[test]
    fn every_acme_mistake_is_named_by_its_path() {
        assert_eq!(
            errors(&doc(MANAGED, "")),
            [
                "certificates[0].acme: needs the top-level `acme` block: the CA's `directory` (Let's Encrypt: https://acme-v02.api.letsencrypt.org/directory)"
            ]
        );
        assert_eq!(
            errors(&doc(
                MANAGED,
                r#"{"directory": "http://acme.test/dir", "contact": ["ops@example.com"], "ca_file": " ", "renew_before_days": 0}"#
            )),
            [
                r#"acme.ca_file: must name a PEM file"#,
                r#"acme.contact[0]: "ops@example.com" is not a mailto: URL (mailto:ops@example.com)"#,
                r#"acme.directory: "http://acme.test/dir" is not an https:// URL (ACME directories are served over HTTPS)"#,
                r#"acme.renew_before_days: must be between 1 and 365, got 0"#,
            ]
        );
        assert_eq!(
            errors(&doc(
                r#"[{"name": "w", "hosts": ["a.test"], "acme": true}]"#,
                "{}"
            )),
            [
                r#"acme.directory: is required: the CA's ACME directory URL, for the certificates with "acme": true"#
            ]
        );
    }

    #[test]
    fn a_managed_certificate_has_no_files_and_no_wildcards() {
        let text = doc(
            r#"[{"name": "w", "hosts": ["a.test", "*.b.test"], "acme": true, "cert_file": "c.pem"}]"#,
            r#"{"directory": "https://acme.test/dir"}"#,
        );
        assert_eq!(
            errors(&text),
            [
                r#"certificates[0].cert_file: a certificate with "acme": true is ordered from the CA: drop cert_file and key_file"#,
                "certificates[0].hosts[1]: a managed certificate is validated over HTTP-01, which cannot prove a wildcard: list exact names",
            ]
        );
        // Without `acme`, files are still required, and the message says there is another way.
        assert_eq!(
            errors(&doc(
                r#"[{"name": "w", "hosts": ["a.test"], "key_file": "k.pem"}]"#,
                ""
            )),
            [
                r#"certificates[0].cert_file: is required: a PEM file (or "acme": true to have the certificate ordered)"#
            ]
        );
    }

    #[test]
    fn state_dir_must_name_something() {
        let text = r#"{"node": {"state_dir": "  "},
            "pools": [{"name": "api", "origins": [{"name": "a", "address": "127.0.0.1:9001"}]}],
            "routes": [{"name": "api", "pool": "api"}]}"#;
        assert_eq!(errors(text), ["node.state_dir: must name a directory"]);
    }
}
