//! A small gRPC service, `portico.origin.Echo`, for tests and demos: a unary echo (answering
//! with a chosen status, after a chosen delay), server streaming (N messages, a delay between),
//! client streaming (sum and count). Every call reports the `grpc-timeout` it arrived with and
//! keeps that deadline as a gRPC server does.
//!
//! The service in `.proto` terms (the messages are declared with prost's derive: no protoc):
//!
//! ```proto
//! package portico.origin;
//! service Echo {
//!   rpc Unary(EchoRequest) returns (EchoReply);
//!   rpc ServerStream(EchoRequest) returns (stream EchoReply);
//!   rpc ClientStream(stream EchoRequest) returns (EchoReply);
//! }
//! message EchoRequest { string text = 1; int32 status = 2; uint64 delay_ms = 3;
//!                       uint32 count = 4; int64 number = 5; }
//! message EchoReply { string text = 1; string served_by = 2; uint32 seq = 3; int64 sum = 4;
//!                     string grpc_timeout = 5; }
//! ```

use crate::shared::Shared;
use hyper::body::Incoming;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::{Instant, sleep_until};
use tonic::codegen::{BoxFuture, BoxStream, Context, Poll, Service};
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::{Code, Request, Response, Status, Streaming};

/// The path prefix of the service's methods.
pub const SERVICE_PATH: &str = "/portico.origin.Echo/";
/// Unary: echoes `text` after `delay_ms`; a non-zero `status` ends the call with that gRPC
/// status and `text` as its message instead.
pub const UNARY: &str = "/portico.origin.Echo/Unary";
/// Server streaming: `count` replies (`text`, `seq` 0, 1, …), `delay_ms` between two; then
/// `status` (non-zero: that status, `text` its message).
pub const SERVER_STREAM: &str = "/portico.origin.Echo/ServerStream";
/// Client streaming: one reply with the sum of the messages' `number` in `sum`, how many
/// came in `seq` and their `text`s joined by spaces.
pub const CLIENT_STREAM: &str = "/portico.origin.Echo/ClientStream";
/// Response metadata (headers, or trailers of a trailers-only answer): the `grpc-timeout`
/// header the call arrived with, verbatim; absent without one.
pub const TIMEOUT_SEEN: &str = "x-grpc-timeout-seen";

/// The request of every method.
#[derive(Clone, PartialEq, prost::Message)]
pub struct EchoRequest {
    /// Echoed back; the status message when `status` is not 0.
    #[prost(string, tag = "1")]
    pub text: String,
    /// The gRPC status code to end the call with (0: OK).
    #[prost(int32, tag = "2")]
    pub status: i32,
    /// Unary: delay before the answer; server streaming: delay between two messages.
    #[prost(uint64, tag = "3")]
    pub delay_ms: u64,
    /// Server streaming: how many messages.
    #[prost(uint32, tag = "4")]
    pub count: u32,
    /// Client streaming: summed.
    #[prost(int64, tag = "5")]
    pub number: i64,
}

/// The reply of every method.
#[derive(Clone, PartialEq, prost::Message)]
pub struct EchoReply {
    /// The request's text (client streaming: every text, joined by spaces).
    #[prost(string, tag = "1")]
    pub text: String,
    /// The origin's name.
    #[prost(string, tag = "2")]
    pub served_by: String,
    /// Server streaming: the message's index; client streaming: how many messages came.
    #[prost(uint32, tag = "3")]
    pub seq: u32,
    /// Client streaming: the sum of the messages' `number`.
    #[prost(int64, tag = "4")]
    pub sum: i64,
    /// The `grpc-timeout` header the call arrived with ("" without one).
    #[prost(string, tag = "5")]
    pub grpc_timeout: String,
}

/// Whether a request is a call of this service (a gRPC content type on its path).
pub(crate) fn is_call<B>(req: &http::Request<B>) -> bool {
    req.uri().path().starts_with(SERVICE_PATH)
        && req
            .headers()
            .get(http::header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

/// Serves one call of the service.
pub(crate) async fn serve(
    shared: &Shared,
    req: http::Request<Incoming>,
) -> http::Response<tonic::body::Body> {
    let timeout = req
        .headers()
        .get("grpc-timeout")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let call = Arc::new(Call {
        name: shared.config.name.clone(),
        deadline: timeout
            .as_deref()
            .and_then(parse_timeout)
            .map(|d| Instant::now() + d),
        timeout,
    });
    let mut grpc =
        tonic::server::Grpc::new(tonic_prost::ProstCodec::<EchoReply, EchoRequest>::default());
    match req.uri().path() {
        UNARY => grpc.unary(Method(call, unary), req).await,
        SERVER_STREAM => {
            grpc.server_streaming(Method(call, server_stream), req)
                .await
        }
        CLIENT_STREAM => {
            grpc.client_streaming(Method(call, client_stream), req)
                .await
        }
        other => call
            .status(
                Code::Unimplemented as i32,
                &format!("no method {other:?} in portico.origin.Echo"),
            )
            .into_http(),
    }
}

/// What one call knows besides its messages.
struct Call {
    /// The origin's name.
    name: String,
    /// The `grpc-timeout` header, verbatim.
    timeout: Option<String>,
    /// When that timeout runs out.
    deadline: Option<Instant>,
}

impl Call {
    /// Waits `delay`, or until the deadline if it comes first: then DEADLINE_EXCEEDED.
    async fn wait(&self, delay: Duration) -> Result<(), Status> {
        const YEAR: Duration = Duration::from_secs(365 * 86_400);
        let now = Instant::now();
        let until = now.checked_add(delay).unwrap_or(now + YEAR);
        match self.deadline {
            Some(deadline) if deadline < until => {
                sleep_until(deadline).await;
                Err(self.deadline_exceeded())
            }
            _ => {
                sleep_until(until).await;
                Ok(())
            }
        }
    }

    /// DEADLINE_EXCEEDED, saying it was this origin that kept the deadline.
    fn deadline_exceeded(&self) -> Status {
        self.status(
            Code::DeadlineExceeded as i32,
            &format!(
                "deadline {} exceeded at origin {}",
                self.timeout.as_deref().unwrap_or(""),
                self.name
            ),
        )
    }

    /// The metadata every answer carries: who served it, and the timeout it came with.
    fn metadata(&self) -> MetadataMap {
        let mut m = MetadataMap::new();
        if let Ok(v) = MetadataValue::try_from(self.name.as_str()) {
            m.insert("x-served-by", v);
        }
        if let Some(v) = self
            .timeout
            .as_deref()
            .and_then(|t| MetadataValue::try_from(t).ok())
        {
            m.insert(TIMEOUT_SEEN, v);
        }
        m
    }

    /// A status with `code` (unknown codes become UNKNOWN) and the call's metadata.
    fn status(&self, code: i32, message: &str) -> Status {
        Status::with_metadata(Code::from_i32(code), message, self.metadata())
    }

    /// A successful answer with the call's metadata.
    fn answer<T>(&self, body: T) -> Response<T> {
        let mut r = Response::new(body);
        *r.metadata_mut() = self.metadata();
        r
    }

    /// A reply of this origin.
    fn reply(&self, text: String, seq: u32, sum: i64) -> EchoReply {
        EchoReply {
            text,
            served_by: self.name.clone(),
            seq,
            sum,
            grpc_timeout: self.timeout.clone().unwrap_or_default(),
        }
    }
}

async fn unary(call: Arc<Call>, req: Request<EchoRequest>) -> Result<Response<EchoReply>, Status> {
    let m = req.into_inner();
    call.wait(Duration::from_millis(m.delay_ms)).await?;
    if m.status != 0 {
        return Err(call.status(m.status, &m.text));
    }
    Ok(call.answer(call.reply(m.text, 0, 0)))
}

async fn server_stream(
    call: Arc<Call>,
    req: Request<EchoRequest>,
) -> Result<Response<BoxStream<EchoReply>>, Status> {
    let m = req.into_inner();
    let c = call.clone();
    // The state: the index of the next message, `None` once the stream has ended in error.
    let stream = futures_util::stream::unfold(Some(0u32), move |next| {
        let (call, m) = (c.clone(), m.clone());
        async move {
            let i = next?;
            if i == m.count {
                return (m.status != 0).then(|| (Err(call.status(m.status, &m.text)), None));
            }
            if i > 0
                && let Err(s) = call.wait(Duration::from_millis(m.delay_ms)).await
            {
                return Some((Err(s), None));
            }
            Some((Ok(call.reply(m.text.clone(), i, 0)), Some(i + 1)))
        }
    });
    Ok(call.answer(Box::pin(stream) as BoxStream<EchoReply>))
}

async fn client_stream(
    call: Arc<Call>,
    req: Request<Streaming<EchoRequest>>,
) -> Result<Response<EchoReply>, Status> {
    let mut messages = req.into_inner();
    let (mut sum, mut count, mut texts) = (0i64, 0u32, Vec::new());
    loop {
        let next = match call.deadline {
            Some(deadline) => match tokio::time::timeout_at(deadline, messages.message()).await {
                Ok(next) => next?,
                Err(_) => return Err(call.deadline_exceeded()),
            },
            None => messages.message().await?,
        };
        let Some(m) = next else { break };
        sum = sum.wrapping_add(m.number);
        count += 1;
        texts.push(m.text);
    }
    Ok(call.answer(call.reply(texts.join(" "), count, sum)))
}

/// One method as a tower service: `F` called with the call and the request.
struct Method<F>(Arc<Call>, F);

impl<M, R, F, Fut> Service<Request<M>> for Method<F>
where
    F: Fn(Arc<Call>, Request<M>) -> Fut,
    Fut: Future<Output = Result<Response<R>, Status>> + Send + 'static,
{
    type Response = Response<R>;
    type Error = Status;
    type Future = BoxFuture<Response<R>, Status>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Status>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<M>) -> Self::Future {
        Box::pin((self.1)(self.0.clone(), req))
    }
}

/// A `grpc-timeout` value: up to 8 digits and a unit (`H`, `M`, `S`, `m`, `u`, `n`).
pub fn parse_timeout(v: &str) -> Option<Duration> {
    let digits = v.get(..v.len().checked_sub(1)?)?;
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match v.as_bytes().last()? {
        b'H' => Duration::from_secs(n * 3600),
        b'M' => Duration::from_secs(n * 60),
        b'S' => Duration::from_secs(n),
        b'm' => Duration::from_millis(n),
        b'u' => Duration::from_micros(n),
        b'n' => Duration::from_nanos(n),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeouts_parse_in_every_unit() {
        assert_eq!(parse_timeout("2H"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_timeout("3M"), Some(Duration::from_secs(180)));
        assert_eq!(parse_timeout("5S"), Some(Duration::from_secs(5)));
        assert_eq!(parse_timeout("250m"), Some(Duration::from_millis(250)));
        assert_eq!(
            parse_timeout("4999982u"),
            Some(Duration::from_micros(4_999_982))
        );
        assert_eq!(
            parse_timeout("99999999n"),
            Some(Duration::from_nanos(99_999_999))
        );
        for bad in ["", "S", "5", "5s", "123456789S", "-5S", "5 S", "é"] {
            assert_eq!(parse_timeout(bad), None, "{bad:?}");
        }
    }
}
