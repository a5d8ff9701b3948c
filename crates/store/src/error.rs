//! The errors of the store: each message says what failed and what an operator can do about it.

use crate::doc::StoredDoc;
use std::time::Duration;

/// A store URL that does not parse; the message says what the URL must look like.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// The URL does not start with `etcd://`.
    #[error("store URL must start with etcd://: got {url:?} (expected etcd://HOST:PORT/PREFIX)")]
    Scheme {
        /// The URL as given.
        url: String,
    },
    /// The URL has no `/PREFIX` after its endpoints, or the prefix is empty.
    #[error("store URL {url:?} has no prefix: etcd://HOST:PORT/PREFIX")]
    NoPrefix {
        /// The URL as given.
        url: String,
    },
    /// The prefix has an empty segment (`a//b`).
    #[error("store URL {url:?} has an empty segment in its prefix {prefix:?}")]
    EmptySegment {
        /// The URL as given.
        url: String,
        /// The prefix as given.
        prefix: String,
    },
    /// The URL names no endpoint before the prefix.
    #[error("store URL {url:?} names no endpoint: etcd://HOST:PORT[,HOST:PORT...]/PREFIX")]
    NoEndpoints {
        /// The URL as given.
        url: String,
    },
    /// One endpoint is not `HOST:PORT`.
    #[error("endpoint {endpoint:?} is not HOST:PORT (in store URL {url:?})")]
    BadEndpoint {
        /// The endpoint as given.
        endpoint: String,
        /// The URL as given.
        url: String,
    },
}

/// Why a store operation failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StoreError {
    /// No endpoint answered (refused, unreachable, no leader) within the time allowed.
    #[error("etcd at {endpoints} is unreachable: {reason}")]
    Unreachable {
        /// The endpoints tried, comma-separated.
        endpoints: String,
        /// The last error seen.
        reason: String,
    },
    /// The store was reached but did not answer within the time allowed.
    #[error("etcd at {endpoints} did not answer {what} within {} ms", .after.as_millis())]
    Timeout {
        /// The endpoints tried, comma-separated.
        endpoints: String,
        /// The request that timed out (e.g. `put of /portico/config`).
        what: String,
        /// The time allowed.
        after: Duration,
    },
    /// A compare-and-swap write lost: the stored document is not the one expected.
    #[error("{}", cas_lost_message(.current))]
    CasLost {
        /// The document stored now (`None`: there is none).
        current: Option<StoredDoc>,
    },
    /// A stored value is not what it should be (not UTF-8, not a valid record).
    #[error("the value at {key} is invalid: {reason}")]
    InvalidValue {
        /// The etcd key.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A lease was lost or refused (expired, revoked, not granted).
    #[error("lease {id:x}: {reason}")]
    Lease {
        /// The lease id (0 when none was granted).
        id: i64,
        /// What happened to it.
        reason: String,
    },
    /// The watch stream ended, was cancelled or stopped answering.
    #[error("watch of {key} ended: {reason}")]
    Watch {
        /// The watched key.
        key: String,
        /// Why it ended.
        reason: String,
    },
    /// etcd refused the request (any other error from etcd or its client).
    #[error("etcd request failed: {0}")]
    Etcd(String),
}

fn cas_lost_message(current: &Option<StoredDoc>) -> String {
    match current {
        Some(doc) => format!(
            "the stored config is not the expected one: it is at revision {} now",
            doc.mod_revision
        ),
        None => "the stored config is not the expected one: no config is stored now".to_string(),
    }
}

impl StoreError {
    /// True for errors worth retrying on another endpoint or later: unreachable, timeout, lost
    /// watch or lease. False for answers that retrying would not change (lost CAS, invalid value,
    /// a refused request).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            StoreError::Unreachable { .. }
                | StoreError::Timeout { .. }
                | StoreError::Watch { .. }
                | StoreError::Lease { .. }
        )
    }
}

/// Converts an error of the etcd client into a [`StoreError`]: transport failures and gRPC
/// `UNAVAILABLE`-like codes become [`StoreError::Unreachable`], the rest [`StoreError::Etcd`].
pub(crate) fn from_etcd(endpoints: &str, err: etcd_client::Error) -> StoreError {
    use etcd_client::Error as E;
    use tonic::Code;
    let unreachable = |reason: String| StoreError::Unreachable {
        endpoints: endpoints.to_string(),
        reason,
    };
    match err {
        E::TransportError(e) => unreachable(format!("transport error: {e}")),
        E::IoError(e) => unreachable(format!("i/o error: {e}")),
        E::GRpcStatus(status) => match status.code() {
            Code::Unavailable
            | Code::Unknown
            | Code::Cancelled
            | Code::DeadlineExceeded
            | Code::Aborted
            | Code::Internal => unreachable(status_text(&status)),
            _ => StoreError::Etcd(status_text(&status)),
        },
        E::WatchError(e) => unreachable(format!("watch error: {e}")),
        E::LeaseKeepAliveError(e) => unreachable(format!("lease keep-alive error: {e}")),
        other => StoreError::Etcd(other.to_string()),
    }
}

/// The status code and message, then the causes (e.g. `Connection refused`), each once.
fn status_text(status: &tonic::Status) -> String {
    let mut parts: Vec<String> = vec![format!("{:?}", status.code())];
    if !status.message().is_empty() {
        parts.push(status.message().to_string());
    }
    let mut source = std::error::Error::source(status);
    while let Some(cause) = source {
        let text = cause.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = cause.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreachable_names_the_endpoints() {
        let e = StoreError::Unreachable {
            endpoints: "127.0.0.1:1,127.0.0.1:2".into(),
            reason: "connection refused".into(),
        };
        assert_eq!(
            e.to_string(),
            "etcd at 127.0.0.1:1,127.0.0.1:2 is unreachable: connection refused"
        );
        assert!(e.is_transient());
    }

    #[test]
    fn cas_lost_names_the_current_revision() {
        let e = StoreError::CasLost {
            current: Some(StoredDoc {
                text: "{}".into(),
                mod_revision: 7,
            }),
        };
        assert!(e.to_string().contains("revision 7"), "{e}");
        assert!(!e.is_transient());
        let e = StoreError::CasLost { current: None };
        assert!(e.to_string().contains("no config is stored"), "{e}");
    }

    #[test]
    fn grpc_codes_are_classified() {
        let e = from_etcd(
            "h:1",
            etcd_client::Error::GRpcStatus(tonic::Status::unavailable("etcdserver: no leader")),
        );
        assert!(matches!(e, StoreError::Unreachable { .. }), "{e:?}");
        assert!(e.to_string().contains("no leader"), "{e}");
        let e = from_etcd(
            "h:1",
            etcd_client::Error::GRpcStatus(tonic::Status::invalid_argument("bad")),
        );
        assert!(matches!(e, StoreError::Etcd(_)), "{e:?}");
    }
}
