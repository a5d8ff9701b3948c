//! What the origin answers: names, generated bodies, echoes, chosen statuses, and the control API.

use crate::Fault;
use crate::body::{Fnv1a, OriginBody};
use crate::shared::{RequestRecord, Shared};
use crate::{grpc, websocket};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

type Answer = Result<Response<OriginBody>, Infallible>;

/// Serves one request on the main listener.
pub(crate) async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Answer {
    let head = req.method() == Method::HEAD;
    let resp = answer(shared, req).await?;
    Ok(without_forbidden_body(resp, head))
}

/// `resp` without the body HTTP forbids it: a HEAD answer's (keeping the `Content-Length`
/// the body has), a 204's and a 304's. hyper's HTTP/1 server leaves such a body out by
/// itself; its HTTP/2 server sends it, and a client reads that as a protocol error.
fn without_forbidden_body(resp: Response<OriginBody>, head: bool) -> Response<OriginBody> {
    let bodiless_status = matches!(
        resp.status(),
        StatusCode::NO_CONTENT | StatusCode::NOT_MODIFIED
    );
    if !head && !bodiless_status {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    if bodiless_status {
        parts.headers.remove(http::header::CONTENT_LENGTH);
    } else if let Some(len) = hyper::body::Body::size_hint(&body).exact() {
        parts
            .headers
            .entry(http::header::CONTENT_LENGTH)
            .or_insert(HeaderValue::from(len));
    }
    Response::from_parts(parts, OriginBody::empty())
}

/// What the origin answers `req`, its body whatever the method and status.
async fn answer(shared: Arc<Shared>, req: Request<Incoming>) -> Answer {
    let probe = req
        .headers()
        .get("x-portico-health-probe")
        .is_some_and(|v| v.as_bytes() == b"1");
    // The counters number requests and probes apart: a `slow:MS:PERCENT` fault picks its share
    // of each by that number.
    let seq = if probe {
        shared.probes.fetch_add(1, Ordering::Relaxed)
    } else {
        shared.requests.fetch_add(1, Ordering::Relaxed)
    };
    if shared.config.log_capacity > 0 {
        shared.record(RequestRecord {
            at: Instant::now(),
            version: req.version(),
            method: req.method().to_string(),
            path: req
                .uri()
                .path_and_query()
                .map_or("/", |p| p.as_str())
                .to_string(),
            headers: req
                .headers()
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_string(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            probe,
        });
    }

    let mut delay = shared.config.delay;
    if let Some(region) = req
        .headers()
        .get("x-portico-region")
        .and_then(|v| v.to_str().ok())
    {
        delay += shared.config.rtt.get(region).copied().unwrap_or_default();
    }
    if let Some(ms) = req
        .headers()
        .get("x-origin-delay-ms")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
    {
        delay += Duration::from_millis(ms);
    }

    match shared.fault() {
        Fault::Hang => hang_while_faulty(&shared).await,
        Fault::Status(code) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            let body = format!("{} fault: status {code}\n", shared.config.name);
            return Ok(respond(&shared, status, OriginBody::full(body)));
        }
        slow @ Fault::Slow { .. } => delay += slow.delay_for(seq),
        Fault::None | Fault::Refuse => {}
    }

    if req.uri().path() == websocket::PATH {
        return Ok(websocket::accept(&shared, req));
    }
    if grpc::is_call(&req) {
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        return Ok(grpc::serve(&shared, req).await.map(OriginBody::Grpc));
    }

    let (parts, mut body) = req.into_parts();
    // Read the whole request body (hashing it for /echo), so keep-alive survives any request.
    let mut hash = Fnv1a::default();
    let mut len = 0u64;
    let echo = parts.uri.path() == "/echo";
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(f) => {
                if let Some(d) = f.data_ref() {
                    len += d.len() as u64;
                    if echo {
                        hash.update(d);
                    }
                }
            }
            Err(_) => {
                return Ok(respond(
                    &shared,
                    StatusCode::BAD_REQUEST,
                    OriginBody::empty(),
                ));
            }
        }
    }

    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }

    let path = parts.uri.path();
    if echo {
        let mut r = respond(
            &shared,
            StatusCode::OK,
            OriginBody::full(shared.name_body.clone()),
        );
        let h = r.headers_mut();
        h.insert("x-body-length", HeaderValue::from(len));
        h.insert("x-body-fnv", header(&format!("{:016x}", hash.finish())));
        return Ok(r);
    }
    if let Some(n) = path
        .strip_prefix("/bytes/")
        .and_then(|n| n.parse::<u64>().ok())
    {
        let query = parts.uri.query().unwrap_or("");
        let param = |key: &str| {
            query
                .split('&')
                .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
        };
        let chunked = param("chunked") == Some("1");
        let mut r = respond(
            &shared,
            StatusCode::OK,
            OriginBody::Pattern {
                sent: 0,
                len: n,
                chunked,
            },
        );
        // `type=` and `encoding=` label the body (for compression tests): it stays the pattern.
        if let Some(t) = param("type") {
            r.headers_mut()
                .insert(http::header::CONTENT_TYPE, header(t));
        }
        if let Some(e) = param("encoding") {
            r.headers_mut()
                .insert(http::header::CONTENT_ENCODING, header(e));
        }
        return Ok(r);
    }
    if let Some(code) = path
        .strip_prefix("/status/")
        .and_then(|c| c.parse::<u16>().ok())
    {
        let status = StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST);
        return Ok(respond(
            &shared,
            status,
            OriginBody::full(shared.name_body.clone()),
        ));
    }
    Ok(respond(
        &shared,
        StatusCode::OK,
        OriginBody::full(shared.name_body.clone()),
    ))
}

/// Waits while the fault stays `Hang`; forever once the origin shuts down (the connection is
/// dropped by then).
async fn hang_while_faulty(shared: &Shared) {
    let mut state = shared.state.subscribe();
    loop {
        let (fault, stop) = *state.borrow_and_update();
        if stop {
            std::future::pending::<()>().await;
        }
        if fault != Fault::Hang {
            return;
        }
        if state.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

fn header(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

fn respond(shared: &Shared, status: StatusCode, body: OriginBody) -> Response<OriginBody> {
    let mut r = Response::new(body);
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert("x-served-by", header(&shared.config.name));
    if let Some(region) = &shared.config.region {
        h.insert("x-origin-region", header(region));
    }
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain"),
    );
    r
}

/// The control listener: `GET /fault`, `PUT /fault` (body: `none`, `refuse`, `hang`,
/// `status:503`, `slow:300`, `slow:300:10`), `GET /stats` (JSON).
pub(crate) async fn control(shared: Arc<Shared>, req: Request<Incoming>) -> Answer {
    let text = |status: StatusCode, body: String| {
        let mut r = Response::new(OriginBody::full(body));
        *r.status_mut() = status;
        Ok(r)
    };
    match (req.method().clone(), req.uri().path()) {
        (Method::GET, "/fault") => text(StatusCode::OK, format!("{}\n", shared.fault())),
        (Method::PUT | Method::POST, "/fault") => {
            let body = match req.into_body().collect().await {
                Ok(b) => b.to_bytes(),
                Err(e) => return text(StatusCode::BAD_REQUEST, format!("{e}\n")),
            };
            match String::from_utf8_lossy(&body).parse::<Fault>() {
                Ok(f) => {
                    shared.set_fault(f);
                    text(StatusCode::OK, format!("{f}\n"))
                }
                Err(e) => text(StatusCode::BAD_REQUEST, format!("{e}\n")),
            }
        }
        (Method::GET, "/stats") => {
            let s = shared.stats();
            let json = serde_json::json!({
                "name": shared.config.name,
                "fault": shared.fault().to_string(),
                "requests": s.requests,
                "probes": s.probes,
                "connections_accepted": s.connections_accepted,
                "websockets": s.websockets,
            });
            text(StatusCode::OK, format!("{json}\n"))
        }
        _ => text(
            StatusCode::NOT_FOUND,
            "try GET /fault, PUT /fault, GET /stats\n".into(),
        ),
    }
}
