//! `GET /config` (the running document with its version as `ETag`) and `PUT /config`
//! (bearer token, `If-Match`, every error by path), on the admin listener.

use crate::admin_reply::reply;
use crate::config::push::{PushError, Started};
use crate::config::reload::{ApplyError, apply_if};
use crate::state::{ErrorEntry, NodeState, ReloadSource};
use crate::store_link::StoreLink;
use http::{Response, StatusCode};
use pingora_core::protocols::http::ServerSession;
use portico_core::config::ConfigErrors;
use portico_store::StoreError;
use serde_json::json;
use subtle::ConstantTimeEq;

/// Largest config document `PUT /config` takes.
pub const MAX_DOCUMENT_BYTES: usize = 8 * 1024 * 1024;

/// The environment variable holding the admin token when `node.admin_token_file` is unset.
pub const TOKEN_ENV: &str = "PORTICO_ADMIN_TOKEN";

fn json_reply(status: StatusCode, body: serde_json::Value) -> Response<Vec<u8>> {
    let mut bytes = serde_json::to_vec_pretty(&body).unwrap_or_default();
    bytes.push(b'\n');
    reply(status, "application/json", bytes)
}

fn errors_reply(status: StatusCode, errors: &ConfigErrors) -> Response<Vec<u8>> {
    let list: Vec<ErrorEntry> = errors.0.iter().map(ErrorEntry::from).collect();
    json_reply(status, json!({ "errors": list }))
}

fn message(status: StatusCode, text: &str) -> Response<Vec<u8>> {
    json_reply(status, json!({ "error": text }))
}

/// The admin token: the first line of `node.admin_token_file`, else `$PORTICO_ADMIN_TOKEN`.
/// Read at each write, so a rotated file takes effect at once. Never logged.
fn admin_token(node: &NodeState) -> Result<Option<String>, String> {
    let snapshot = node.snapshot();
    if let Some(file) = &snapshot.config.node.admin_token_file {
        return std::fs::read_to_string(file)
            .map(|t| Some(t.trim().to_string()).filter(|t| !t.is_empty()))
            .map_err(|e| format!("cannot read node.admin_token_file {file}: {e}"));
    }
    Ok(std::env::var(TOKEN_ENV)
        .ok()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty()))
}

/// Whether `header` is `Bearer <token>`, compared in constant time.
fn authorized(header: Option<&[u8]>, token: &str) -> bool {
    let Some(given) = header.and_then(|h| h.strip_prefix(b"Bearer ")) else {
        return false;
    };
    let given = given.trim_ascii();
    given.len() == token.len() && bool::from(given.ct_eq(token.as_bytes()))
}

/// `"v"` or `W/"v"` → `v`; `*` matches anything (None).
fn if_match(header: Option<&[u8]>) -> Option<String> {
    let h = std::str::from_utf8(header?).ok()?.trim();
    if h == "*" {
        return None;
    }
    let h = h.strip_prefix("W/").unwrap_or(h);
    Some(h.trim_matches('"').to_string())
}

/// Serves `/config`.
pub async fn serve(
    node: &NodeState,
    store: Option<&StoreLink>,
    session: &mut ServerSession,
) -> Response<Vec<u8>> {
    let method = session.req_header().method.clone();
    match method {
        http::Method::GET | http::Method::HEAD => {
            let snapshot = node.snapshot();
            let mut r = reply(
                StatusCode::OK,
                "application/json",
                snapshot.document.as_bytes().to_vec(),
            );
            if let Ok(v) = http::HeaderValue::from_str(&format!("\"{}\"", snapshot.config.version))
            {
                r.headers_mut().insert(http::header::ETAG, v);
            }
            r
        }
        http::Method::PUT => put(node, store, session).await,
        _ => message(
            StatusCode::METHOD_NOT_ALLOWED,
            "/config takes GET, HEAD or PUT",
        ),
    }
}

async fn put(
    node: &NodeState,
    store: Option<&StoreLink>,
    session: &mut ServerSession,
) -> Response<Vec<u8>> {
    let token = match admin_token(node) {
        Ok(Some(t)) => t,
        Ok(None) => {
            return message(
                StatusCode::FORBIDDEN,
                "admin writes are disabled: set node.admin_token_file or PORTICO_ADMIN_TOKEN",
            );
        }
        Err(e) => {
            log::error!("{e}");
            return message(
                StatusCode::FORBIDDEN,
                &format!("admin writes are disabled: {e}"),
            );
        }
    };
    let req = session.req_header();
    let auth = req
        .headers
        .get(http::header::AUTHORIZATION)
        .map(|v| v.as_bytes());
    if !authorized(auth, &token) {
        let mut r = message(
            StatusCode::UNAUTHORIZED,
            "missing or wrong bearer token (Authorization: Bearer <token>)",
        );
        r.headers_mut().insert(
            http::header::WWW_AUTHENTICATE,
            http::HeaderValue::from_static("Bearer"),
        );
        return r;
    }
    let expected = if_match(
        req.headers
            .get(http::header::IF_MATCH)
            .map(|v| v.as_bytes()),
    );
    let body = match read_body(session).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let Ok(text) = String::from_utf8(body) else {
        return message(StatusCode::BAD_REQUEST, "the body is not UTF-8 text");
    };
    if let Some(store) = store {
        return match store.push(node, &text, expected).await {
            Ok(started) => json_reply(StatusCode::ACCEPTED, started_json(&started)),
            Err(e) => push_error_reply(&e),
        };
    }
    match apply_if(node, &text, ReloadSource::Admin, expected.as_deref()).await {
        Ok(applied) => json_reply(StatusCode::OK, json!({ "version": applied.version })),
        Err(ApplyError::Invalid(errors)) => errors_reply(StatusCode::BAD_REQUEST, &errors),
        Err(ApplyError::VersionMismatch { running }) => message(
            StatusCode::PRECONDITION_FAILED,
            &format!("the running version is {running}, not the If-Match version"),
        ),
    }
}

/// The 202 answer: the version, the rollout's state and its plan, wave by wave (1-based).
fn started_json(started: &Started) -> serde_json::Value {
    let plan: Vec<serde_json::Value> = started
        .plan
        .iter()
        .enumerate()
        .map(|(i, (selector, nodes))| {
            json!({ "wave": i + 1, "selector": selector.to_string(), "nodes": nodes })
        })
        .collect();
    json!({
        "version": started.version,
        "state": started.rollout.state.to_string(),
        "plan": plan,
    })
}

/// A push not started: 400 invalid, 412 `If-Match` lost, 409 a rollout in progress (or the
/// version already stable or promoted before, or a plan with no node), 413 too large for the
/// store, 503 store unreachable.
fn push_error_reply(e: &PushError) -> Response<Vec<u8>> {
    match e {
        PushError::Invalid(errors) => errors_reply(StatusCode::BAD_REQUEST, errors),
        PushError::BadOption(_) => message(StatusCode::BAD_REQUEST, &e.to_string()),
        PushError::CasLost { stored } => message(
            StatusCode::PRECONDITION_FAILED,
            &format!(
                "the stored version is {}",
                stored.as_deref().unwrap_or("(none)")
            ),
        ),
        PushError::InProgress { .. }
        | PushError::Refused(_)
        | PushError::Store(StoreError::VersionExists { .. }) => {
            message(StatusCode::CONFLICT, &e.to_string())
        }
        PushError::Store(StoreError::TooLarge { .. }) => {
            message(StatusCode::PAYLOAD_TOO_LARGE, &e.to_string())
        }
        PushError::Store(_) => message(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    }
}

async fn read_body(session: &mut ServerSession) -> Result<Vec<u8>, Response<Vec<u8>>> {
    let mut body = Vec::new();
    loop {
        match session.read_request_body().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
                    return Err(message(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        &format!("a config document is at most {MAX_DOCUMENT_BYTES} bytes"),
                    ));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(e) => {
                return Err(message(
                    StatusCode::BAD_REQUEST,
                    &format!("reading the body failed: {e}"),
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_must_match_exactly() {
        assert!(authorized(Some(b"Bearer s3cret"), "s3cret"));
        assert!(!authorized(Some(b"Bearer s3cre"), "s3cret"));
        assert!(!authorized(Some(b"Bearer s3cretX"), "s3cret"));
        assert!(!authorized(Some(b"bearer s3cret"), "s3cret"));
        assert!(!authorized(Some(b"s3cret"), "s3cret"));
        assert!(!authorized(None, "s3cret"));
    }

    #[test]
    fn if_match_takes_quoted_weak_and_star() {
        assert_eq!(if_match(Some(b"\"abc\"")), Some("abc".into()));
        assert_eq!(if_match(Some(b"W/\"abc\"")), Some("abc".into()));
        assert_eq!(if_match(Some(b"abc")), Some("abc".into()));
        assert_eq!(if_match(Some(b"*")), None);
        assert_eq!(if_match(None), None);
    }
}
