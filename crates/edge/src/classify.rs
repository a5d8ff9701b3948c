//! Error classification: which retry reason a failed attempt is, and which status a failed
//! request is answered with.

use pingora_error::{Error, ErrorSource, ErrorType};
use portico_core::retry::RetryReason;

/// The status a failed proxy attempt is answered with (0: the client is gone, nothing to send).
pub fn status_for_error(e: &Error) -> u16 {
    match (e.esource(), e.etype()) {
        (_, ErrorType::HTTPStatus(code)) => *code,
        (ErrorSource::Upstream, ErrorType::ReadTimedout) => 504,
        (ErrorSource::Upstream, _) => 502,
        (
            ErrorSource::Downstream,
            ErrorType::WriteError | ErrorType::ReadError | ErrorType::ConnectionClosed,
        ) => 0,
        (ErrorSource::Downstream, _) => 400,
        _ => 500,
    }
}

/// The status for a request whose last attempt failed for `reason` (`None`: no origin).
pub fn status_for_reason(reason: Option<RetryReason>) -> u16 {
    match reason {
        None => 503,
        Some(RetryReason::ResponseTimeout | RetryReason::Status504) => 504,
        Some(RetryReason::Status503) => 503,
        Some(_) => 502,
    }
}

/// The retry reason of a failure to connect.
pub fn connect_reason(etype: &ErrorType) -> RetryReason {
    match etype {
        ErrorType::ConnectRefused => RetryReason::ConnectRefused,
        ErrorType::ConnectTimedout => RetryReason::ConnectTimeout,
        ErrorType::TLSHandshakeFailure
        | ErrorType::TLSHandshakeTimedout
        | ErrorType::InvalidCert
        | ErrorType::HandshakeError
        | ErrorType::TLSWantX509Lookup => RetryReason::TlsError,
        _ => RetryReason::ConnectError,
    }
}

/// The retry reason of a failure after connecting, if it is one the lifecycle knows.
pub fn proxy_reason(e: &Error) -> Option<RetryReason> {
    match (e.esource(), e.etype()) {
        (ErrorSource::Upstream, ErrorType::ReadTimedout) => Some(RetryReason::ResponseTimeout),
        (
            ErrorSource::Upstream,
            ErrorType::ConnectionClosed | ErrorType::ReadError | ErrorType::WriteError,
        ) => Some(RetryReason::ConnectionDropped),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_map_to_gateway_statuses() {
        assert_eq!(status_for_reason(None), 503);
        assert_eq!(status_for_reason(Some(RetryReason::ResponseTimeout)), 504);
        assert_eq!(status_for_reason(Some(RetryReason::ConnectRefused)), 502);
        assert_eq!(status_for_reason(Some(RetryReason::Status503)), 503);
        assert_eq!(status_for_reason(Some(RetryReason::TlsError)), 502);
    }

    #[test]
    fn connect_failures_and_tls_errors_have_their_own_reasons() {
        assert_eq!(
            connect_reason(&ErrorType::ConnectRefused),
            RetryReason::ConnectRefused
        );
        assert_eq!(
            connect_reason(&ErrorType::InvalidCert),
            RetryReason::TlsError
        );
        assert_eq!(
            connect_reason(&ErrorType::ConnectNoRoute),
            RetryReason::ConnectError
        );
        let e = Error::explain(ErrorType::ReadTimedout, "t").into_up();
        assert_eq!(proxy_reason(&e), Some(RetryReason::ResponseTimeout));
        let e = Error::explain(ErrorType::ReadTimedout, "t").into_down();
        assert_eq!(
            proxy_reason(&e),
            None,
            "a slow client is not the origin's failure"
        );
        assert_eq!(status_for_error(&e), 400);
        assert_eq!(
            status_for_error(&Error::explain(ErrorType::ConnectRefused, "r").into_up()),
            502
        );
    }
}
