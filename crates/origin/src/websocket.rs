//! `GET /ws`: a WebSocket echo endpoint (hyper's HTTP/1.1 upgrade, tungstenite's framing).

use crate::body::OriginBody;
use crate::shared::Shared;
use futures_util::{SinkExt, StreamExt};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;

/// The path of the echo endpoint.
pub(crate) const PATH: &str = "/ws";

/// Whether the request asks to become a WebSocket (RFC 6455 §4.2.1: `Upgrade: websocket`,
/// `Connection` naming `upgrade`, version 13 and a key).
fn is_upgrade(headers: &HeaderMap) -> bool {
    let has_token = |name: header::HeaderName, token: &str| {
        headers.get_all(name).iter().any(|v| {
            v.to_str()
                .is_ok_and(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    has_token(header::UPGRADE, "websocket")
        && has_token(header::CONNECTION, "upgrade")
        && headers
            .get(header::SEC_WEBSOCKET_VERSION)
            .is_some_and(|v| v == "13")
        && headers.contains_key(header::SEC_WEBSOCKET_KEY)
}

/// Answers `GET /ws`: 101 and an echo of every text and binary message on the upgraded
/// connection (pings are answered by tungstenite, a close is returned), or 426 for a request
/// that is not a WebSocket handshake.
pub(crate) fn accept(shared: &Arc<Shared>, mut req: Request<Incoming>) -> Response<OriginBody> {
    let served_by = HeaderValue::from_str(&shared.config.name)
        .unwrap_or_else(|_| HeaderValue::from_static("invalid"));
    if !is_upgrade(req.headers()) {
        let mut r = Response::new(OriginBody::full("426 a WebSocket handshake is expected\n"));
        *r.status_mut() = StatusCode::UPGRADE_REQUIRED;
        r.headers_mut()
            .insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        r.headers_mut().insert("x-served-by", served_by);
        return r;
    }
    let accept_key = req
        .headers()
        .get(header::SEC_WEBSOCKET_KEY)
        .map(|k| derive_accept_key(k.as_bytes()))
        .unwrap_or_default();
    let upgrade = hyper::upgrade::on(&mut req);
    let shared = shared.clone();
    tokio::spawn(async move {
        let upgraded = match upgrade.await {
            Ok(u) => u,
            Err(e) => {
                log::debug!("{}: WebSocket upgrade failed: {e}", shared.config.name);
                return;
            }
        };
        shared.websockets.fetch_add(1, Ordering::Relaxed);
        let ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
        tokio::select! {
            _ = echo(ws) => {}
            _ = shared.killed() => {}
        }
    });
    let mut r = Response::new(OriginBody::empty());
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    if let Ok(v) = HeaderValue::from_str(&accept_key) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    h.insert("x-served-by", served_by);
    r
}

/// Sends every text and binary message back until the peer closes or the connection fails.
async fn echo<S>(mut ws: WebSocketStream<S>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    while let Some(Ok(msg)) = ws.next().await {
        match msg {
            Message::Text(_) | Message::Binary(_) => {
                if ws.send(msg).await.is_err() {
                    return;
                }
            }
            // tungstenite answers the close itself; the next read ends the stream.
            Message::Close(_) | Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
        }
    }
}
