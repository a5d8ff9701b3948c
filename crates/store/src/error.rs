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
    /// A request or an answer larger than etcd or this client takes.
    #[error("{}", too_large_message(*.side, *.size, *.limit))]
    TooLarge {
        /// Who refused it.
        side: LimitSide,
        /// Its size in bytes, when known.
        size: Option<u64>,
        /// The limit in bytes, when known.
        limit: Option<u64>,
    },
    /// A version is pushed again while the store holds it as promoted (or in progress): only a
    /// rolled-back or aborted version may be rolled out again.
    #[error("{}", version_exists_message(.version, *.outcome))]
    VersionExists {
        /// The version.
        version: String,
        /// Its outcome in the store.
        outcome: portico_core::rollout::Outcome,
    },
    /// The store holds no record (or no document) of a version.
    #[error("the store holds no version {version} (`portico config history` lists those it holds)")]
    UnknownVersion {
        /// The version.
        version: String,
    },
    /// A push or a rollback while a rollout is in progress.
    #[error(
        "a rollout is in progress: version {target} ({state}); wait for it to end, or end it \
         with `portico config promote` or `portico config abort`"
    )]
    RolloutInProgress {
        /// The version it rolls out.
        target: String,
        /// Its state (`in progress`, `paused: ...`).
        state: String,
    },
    /// A compare-and-swap write of the rollout lost: someone else wrote it since it was read.
    #[error("the stored rollout changed since it was read: {}", rollout_now(*.current))]
    RolloutChanged {
        /// The `mod_revision` of the rollout stored now (`None`: none is stored).
        current: Option<i64>,
    },
    /// The rollout rules refuse the request (e.g. a rollback to a version never promoted).
    #[error(transparent)]
    Refused(#[from] portico_core::rollout::RolloutError),
    /// etcd refused the request (any other error from etcd or its client).
    #[error("etcd request failed: {0}")]
    Etcd(String),
}

/// Which side refused a message for its size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitSide {
    /// etcd refused the request (its `--max-request-bytes`, plus 512 KiB of gRPC framing).
    Server,
    /// This client refused etcd's answer (its gRPC decoding limit).
    Client,
}

/// The largest answer this client decodes (a document read or watched): 64 MiB, far above
/// what etcd takes by default (`--max-request-bytes`, 1.5 MiB), so that etcd's limit is the one
/// that binds. gRPC's default is 4 MiB.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// The default of etcd's `--max-request-bytes`: 1.5 MiB.
pub const ETCD_DEFAULT_MAX_REQUEST_BYTES: u64 = 1536 * 1024;

fn bytes(n: Option<u64>) -> String {
    n.map_or_else(
        || "more bytes than allowed".to_string(),
        |n| format!("{n} bytes"),
    )
}

fn too_large_message(side: LimitSide, size: Option<u64>, limit: Option<u64>) -> String {
    let limit_text = limit.map_or_else(
        || format!("its --max-request-bytes, {ETCD_DEFAULT_MAX_REQUEST_BYTES} bytes by default"),
        |l| format!("{l} bytes"),
    );
    match side {
        LimitSide::Server => format!(
            "the request is {}, more than etcd takes ({limit_text}): to store larger documents, \
             start every etcd member with a larger --max-request-bytes (default 1.5 MiB; etcd's \
             gRPC limit is that plus 512 KiB) and a --quota-backend-bytes that holds 100 \
             versions of them; this client reads answers up to {} bytes (MAX_MESSAGE_BYTES in \
             portico-store's client.rs)",
            bytes(size),
            MAX_MESSAGE_BYTES
        ),
        LimitSide::Client => format!(
            "etcd's answer is {}, more than this client takes ({}): the client's max decoding \
             message size (tonic's default, 4 MiB) is set in portico-store's client.rs \
             (MAX_MESSAGE_BYTES)",
            bytes(size),
            bytes(limit)
        ),
    }
}

fn version_exists_message(version: &str, outcome: portico_core::rollout::Outcome) -> String {
    use portico_core::rollout::Outcome;
    match outcome {
        Outcome::Promoted => format!(
            "version {version} was promoted before: `portico config rollback {version}` makes it \
             stable again at once"
        ),
        Outcome::InProgress => format!("version {version} is being rolled out"),
        other => format!("version {version} was pushed before ({other})"),
    }
}

fn rollout_now(current: Option<i64>) -> String {
    match current {
        Some(rev) => format!("it is at revision {rev} now; read it again"),
        None => "none is stored now".to_string(),
    }
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
    /// Fills in the size of a [`StoreError::TooLarge`] request whose size etcd did not say.
    pub(crate) fn sized(self, request_bytes: usize) -> StoreError {
        match self {
            StoreError::TooLarge {
                side: LimitSide::Server,
                size: None,
                limit,
            } => StoreError::TooLarge {
                side: LimitSide::Server,
                size: Some(request_bytes as u64),
                limit,
            },
            other => other,
        }
    }

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
        E::GRpcStatus(status) if let Some(too_large) = too_large(&status) => too_large,
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

/// The size refusals: etcd's gRPC server (`grpc: received message larger than max (A vs. B)`),
/// etcd itself (`etcdserver: request is too large`) and this client's decoder (`decoded message
/// length too large: found A bytes, the limit is: B bytes`).
fn too_large(status: &tonic::Status) -> Option<StoreError> {
    let text = status.message();
    let numbers = |s: &str| -> Vec<u64> {
        s.split(|c: char| !c.is_ascii_digit())
            .filter_map(|n| n.parse().ok())
            .collect()
    };
    let pair = |s: &str| match numbers(s).as_slice() {
        [size, limit, ..] => (Some(*size), Some(*limit)),
        _ => (None, None),
    };
    if let Some(rest) = text.split("received message larger than max").nth(1) {
        let (size, limit) = pair(rest);
        return Some(StoreError::TooLarge {
            side: LimitSide::Server,
            size,
            limit,
        });
    }
    if text.contains("request is too large") {
        return Some(StoreError::TooLarge {
            side: LimitSide::Server,
            size: None,
            limit: None,
        });
    }
    if let Some(rest) = text.split("decoded message length too large").nth(1) {
        let (size, limit) = pair(rest);
        return Some(StoreError::TooLarge {
            side: LimitSide::Client,
            size,
            limit,
        });
    }
    None
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

    #[test]
    fn size_refusals_say_the_size_the_limit_and_the_flag() {
        let e = from_etcd(
            "h:1",
            etcd_client::Error::GRpcStatus(tonic::Status::resource_exhausted(
                "grpc: received message larger than max (2946827 vs. 2097152)",
            )),
        );
        assert_eq!(
            e,
            StoreError::TooLarge {
                side: LimitSide::Server,
                size: Some(2946827),
                limit: Some(2097152)
            }
        );
        let text = e.to_string();
        for part in ["2946827 bytes", "2097152 bytes", "--max-request-bytes"] {
            assert!(text.contains(part), "{part} not in {text}");
        }
        assert!(!e.is_transient());

        let e = from_etcd(
            "h:1",
            etcd_client::Error::GRpcStatus(tonic::Status::invalid_argument(
                "etcdserver: request is too large",
            )),
        )
        .sized(1_700_000);
        let text = e.to_string();
        assert!(text.contains("1700000 bytes"), "{text}");
        assert!(text.contains("1572864 bytes by default"), "{text}");

        let e = from_etcd(
            "h:1",
            etcd_client::Error::GRpcStatus(tonic::Status::out_of_range(
                "Error, decoded message length too large: found 5000000 bytes, the limit is: 4194304 bytes",
            )),
        );
        assert!(
            matches!(
                e,
                StoreError::TooLarge {
                    side: LimitSide::Client,
                    size: Some(5000000),
                    limit: Some(4194304)
                }
            ),
            "{e:?}"
        );
        assert!(e.to_string().contains("MAX_MESSAGE_BYTES"), "{e}");
    }
}
