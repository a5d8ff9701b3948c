//! Client certificates on the TLS listener: the CA a certificate entry's `client_auth` names,
//! asked for in the handshake through OpenSSL's own verification, and the verified client's
//! identity that goes to origins as `X-Client-Cert-Subject` and `X-Client-Cert-Sha256`.

use openssl::hash::MessageDigest;
use openssl::ssl::{SslRef, SslVerifyMode};
use openssl::stack::Stack;
use openssl::x509::store::{X509Store, X509StoreBuilder};
use openssl::x509::{X509, X509NameRef, X509Ref, X509VerifyResult};
use std::fmt::Write;

/// Header with a verified client certificate's subject (RFC 4514).
pub const SUBJECT_HEADER: &str = "x-client-cert-subject";
/// Header with a verified client certificate's SHA-256 fingerprint (lowercase hex).
pub const SHA256_HEADER: &str = "x-client-cert-sha256";

/// One certificate entry's `client_auth`, read from disk.
pub struct ClientAuth {
    /// The CA certificates of `ca_file`.
    cas: Vec<X509>,
    /// Whether a client without a valid certificate is refused in the handshake.
    required: bool,
    /// SHA-256 over the CA certificates' DER: which CAs a client certificate was verified
    /// against, the same across reloads of the same file.
    id: [u8; 32],
}

impl ClientAuth {
    /// The CA certificates in `pem` (at least one), required or not.
    pub fn from_pem(pem: &[u8], required: bool) -> Result<Self, String> {
        let cas = X509::stack_from_pem(pem)
            .ok()
            .filter(|s| !s.is_empty())
            .ok_or("holds no PEM certificate")?;
        let mut hasher = openssl::sha::Sha256::new();
        for ca in &cas {
            hasher.update(&ca.to_der().map_err(|e| e.to_string())?);
        }
        Ok(ClientAuth {
            cas,
            required,
            id: hasher.finish(),
        })
    }

    /// Which CAs this is (see [`ClientCert::verified_by`]).
    pub fn id(&self) -> [u8; 32] {
        self.id
    }

    /// Whether a client without a valid certificate is refused.
    pub fn required(&self) -> bool {
        self.required
    }

    fn store(&self) -> Result<X509Store, openssl::error::ErrorStack> {
        let mut b = X509StoreBuilder::new()?;
        for ca in &self.cas {
            b.add_cert(ca.clone())?;
        }
        Ok(b.build())
    }

    /// Asks this handshake's client for a certificate chaining to the CA. Required: OpenSSL
    /// refuses the handshake when none comes or it does not verify. Optional: the handshake
    /// goes on whatever comes, and [`ClientCert::verified`] then finds no identity.
    pub fn ask(&self, ssl: &mut SslRef) -> Result<(), openssl::error::ErrorStack> {
        // The mode first: should the store fail to build, a required check still fails closed.
        if self.required {
            ssl.set_verify(SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT);
        } else {
            ssl.set_verify_callback(SslVerifyMode::PEER, |_, _| true);
        }
        ssl.set_verify_cert_store(self.store()?)?;
        let mut names = Stack::new()?;
        for ca in &self.cas {
            names.push(ca.subject_name().to_owned()?)?;
        }
        ssl.set_client_ca_list(names);
        Ok(())
    }
}

/// A verified client certificate, as origins are told of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCert {
    /// Subject, RFC 4514.
    pub subject: String,
    /// SHA-256 of the DER certificate, lowercase hex without colons.
    pub sha256: String,
    /// The [`ClientAuth::id`] of the CAs it was verified against (those of the certificate
    /// entry the handshake's SNI picked): a request whose Host needs other CAs is not vouched
    /// for by it.
    pub verified_by: [u8; 32],
}

impl ClientCert {
    /// The client's certificate after a handshake, when one was sent and verified.
    /// `verified_by`: the CAs the handshake asked for (see [`ClientAuth::id`]).
    pub fn verified(ssl: &SslRef, verified_by: [u8; 32]) -> Option<ClientCert> {
        let cert = ssl.peer_certificate()?;
        if ssl.verify_result() != X509VerifyResult::OK {
            return None;
        }
        Self::of(&cert, verified_by)
    }

    /// The identity of `cert`, verified against the CAs `verified_by`.
    pub fn of(cert: &X509Ref, verified_by: [u8; 32]) -> Option<ClientCert> {
        let digest = cert.digest(MessageDigest::sha256()).ok()?;
        let mut sha256 = String::with_capacity(64);
        for b in digest.iter() {
            let _ = write!(sha256, "{b:02x}");
        }
        Some(ClientCert {
            subject: rfc4514(cert.subject_name()),
            sha256,
            verified_by,
        })
    }
}

/// `name` as RFC 4514 writes it: the last RDN first, `type=value` joined by commas, special
/// characters escaped.
pub fn rfc4514(name: &X509NameRef) -> String {
    let parts: Vec<String> = name
        .entries()
        .map(|e| {
            let nid = e.object().nid();
            let key = nid
                .short_name()
                .map(str::to_string)
                .unwrap_or_else(|_| e.object().to_string());
            let value = e.data().to_string().unwrap_or_default();
            format!("{key}={}", escape(&value))
        })
        .collect();
    parts.into_iter().rev().collect::<Vec<_>>().join(",")
}

/// An attribute value escaped as RFC 4514 section 2.4 says.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let last = value.chars().count().saturating_sub(1);
    for (i, ch) in value.chars().enumerate() {
        match ch {
            '"' | '+' | ',' | ';' | '<' | '>' | '\\' => {
                out.push('\\');
                out.push(ch);
            }
            '#' if i == 0 => out.push_str("\\#"),
            ' ' if i == 0 || i == last => out.push_str("\\ "),
            '\0' => out.push_str("\\00"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use openssl::x509::X509NameBuilder;

    #[test]
    fn the_subject_is_written_last_rdn_first_with_specials_escaped() {
        let mut b = X509NameBuilder::new().expect("builder");
        b.append_entry_by_text("C", "DE").expect("c");
        b.append_entry_by_text("O", "Acme, Inc.").expect("o");
        b.append_entry_by_text("CN", " #partner+1 ").expect("cn");
        let name = b.build();
        assert_eq!(rfc4514(&name), "CN=\\ #partner\\+1\\ ,O=Acme\\, Inc.,C=DE");
    }

    #[test]
    fn a_leading_hash_and_backslashes_are_escaped() {
        assert_eq!(escape("#a\\b"), "\\#a\\\\b");
        assert_eq!(escape("plain"), "plain");
        assert_eq!(escape(""), "");
    }
}
