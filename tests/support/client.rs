//! A small HTTP/1.1 client with keep-alive, for tests.

use bytes::Bytes;
use http::{HeaderMap, Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{Client, connect::HttpConnector};
use hyper_util::rt::TokioExecutor;

/// A response read to its end.
#[derive(Debug, Clone)]
pub struct Resp {
    /// Status code.
    pub status: u16,
    /// Response headers.
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Bytes,
}

impl Resp {
    /// A header as text, if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// `X-Served-By`, or an empty string.
    pub fn served_by(&self) -> &str {
        self.header("x-served-by").unwrap_or("")
    }
}

/// A keep-alive HTTP client.
#[derive(Clone)]
pub struct Http {
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Default for Http {
    fn default() -> Self {
        Self::new()
    }
}

impl Http {
    /// A new client with its own connection pool.
    pub fn new() -> Self {
        Self {
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    /// A client that opens a new connection for every request.
    pub fn no_keepalive() -> Self {
        Self {
            client: Client::builder(TokioExecutor::new())
                .pool_max_idle_per_host(0)
                .build_http(),
        }
    }

    /// Sends a request and reads the whole response.
    pub async fn send(&self, req: Request<Full<Bytes>>) -> Result<Resp, String> {
        let resp = self
            .client
            .request(req)
            .await
            .map_err(|e| format!("{e:?}"))?;
        let (parts, body) = resp.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|e| format!("reading body: {e}"))?
            .to_bytes();
        Ok(Resp {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body,
        })
    }

    /// `method url` with `headers` and `body`.
    pub async fn request(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Result<Resp, String> {
        let mut b = Request::builder().method(method).uri(url);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let req = b.body(Full::new(body.into())).map_err(|e| e.to_string())?;
        self.send(req).await
    }

    /// `GET url`; panics on a transport error.
    pub async fn get(&self, url: &str) -> Resp {
        self.request(Method::GET, url, &[], Bytes::new())
            .await
            .unwrap_or_else(|e| panic!("GET {url}: {e}"))
    }

    /// `GET url` with a Host header; panics on a transport error.
    pub async fn get_host(&self, url: &str, host: &str) -> Resp {
        self.request(Method::GET, url, &[("host", host)], Bytes::new())
            .await
            .unwrap_or_else(|e| panic!("GET {url} (Host {host}): {e}"))
    }
}

/// Sends `request` as raw bytes on a new connection to `addr` (`HOST:PORT`) and reads until
/// the server closes it (send `Connection: close`) or 10 s pass; returns what came back.
pub async fn raw(addr: &str, request: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.write_all(request).await.expect("write the request");
    let mut out = Vec::new();
    let read = tokio::time::timeout(std::time::Duration::from_secs(10), s.read_to_end(&mut out));
    let _ = read.await;
    String::from_utf8_lossy(&out).into_owned()
}

/// Reads `s` until the server closes the connection (end of stream or reset): what was read,
/// or `None` when it is still open after `patience`.
pub async fn until_closed(
    s: &mut (impl tokio::io::AsyncReadExt + Unpin),
    patience: std::time::Duration,
) -> Option<Vec<u8>> {
    let deadline = std::time::Instant::now() + patience;
    let mut out = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        let left = deadline.checked_duration_since(std::time::Instant::now())?;
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(out),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
}
