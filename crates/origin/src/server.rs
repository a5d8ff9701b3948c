//! The listeners: accept loop that can refuse (close) and reopen, connection tracking, the handle.

use crate::service::{control, handle};
use crate::shared::{RequestRecord, Shared, Stats};
use crate::{Fault, OriginConfig};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use openssl::ssl::{
    AlpnError, Ssl, SslAcceptor, SslFiletype, SslMethod, SslVerifyMode, select_next_proto,
};
use openssl::x509::X509;
use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// A running origin. Cloning shares it; [`OriginHandle::shutdown`] stops it.
#[derive(Clone)]
pub struct OriginHandle {
    shared: Arc<Shared>,
    control: Option<SocketAddr>,
}

impl std::fmt::Debug for OriginHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OriginHandle")
            .field("name", &self.name())
            .field("addr", &self.addr())
            .finish()
    }
}

impl OriginHandle {
    /// The address it serves on.
    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// The control listener's address, if it has one.
    pub fn control_addr(&self) -> Option<SocketAddr> {
        self.control
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.shared.config.name
    }

    /// Switches a fault on (or off with [`Fault::None`]). Takes effect for new connections and
    /// requests at once; `Refuse` also closes the listener and every open connection.
    pub fn set_fault(&self, fault: Fault) {
        self.shared.set_fault(fault);
    }

    /// The current fault.
    pub fn fault(&self) -> Fault {
        self.shared.fault()
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        self.shared.stats()
    }

    /// The most recent requests (up to the configured capacity), oldest first.
    pub fn log(&self) -> Vec<RequestRecord> {
        self.shared
            .log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect()
    }

    /// Empties the request log.
    pub fn clear_log(&self) {
        self.shared
            .log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// Closes the listeners and every connection.
    pub async fn shutdown(&self) {
        self.shared.state.send_modify(|s| s.1 = true);
        tokio::task::yield_now().await;
    }
}

/// Binds the listeners and starts serving on the current tokio runtime.
pub async fn start(config: OriginConfig) -> io::Result<OriginHandle> {
    let tls = match (&config.tls, &config.tls_client_ca) {
        (Some(tls), client_ca) => Some(acceptor(tls, config.http2, client_ca.as_deref())?),
        (None, Some(_)) => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a client CA (tls_client_ca) needs a TLS listener (tls)",
            ));
        }
        (None, None) => None,
    };
    let listener = TcpListener::bind(config.listen).await?;
    let addr = listener.local_addr()?;
    let control_listener = match config.control {
        Some(a) => Some(TcpListener::bind(a).await?),
        None => None,
    };
    let control = control_listener
        .as_ref()
        .map(|l| l.local_addr())
        .transpose()?;
    let (state, _) = watch::channel((config.fault, false));
    let shared = Arc::new(Shared {
        name_body: bytes::Bytes::from(format!("{}\n", config.name)),
        config,
        addr,
        requests: AtomicU64::new(0),
        probes: AtomicU64::new(0),
        connections: AtomicU64::new(0),
        websockets: AtomicU64::new(0),
        log: Mutex::new(VecDeque::new()),
        state,
        tls,
    });
    tokio::spawn(accept_loop(shared.clone(), Some(listener)));
    if let Some(l) = control_listener {
        tokio::spawn(control_loop(shared.clone(), l));
    }
    Ok(OriginHandle { shared, control })
}

/// Serves the main address; closes the listener while the fault is `Refuse` and reopens it after.
async fn accept_loop(shared: Arc<Shared>, mut listener: Option<TcpListener>) {
    let mut state = shared.state.subscribe();
    loop {
        let (fault, stop) = *state.borrow_and_update();
        if stop {
            return;
        }
        if fault == Fault::Refuse {
            listener = None;
        } else if listener.is_none() {
            match TcpListener::bind(shared.addr).await {
                Ok(l) => listener = Some(l),
                Err(e) => {
                    log::warn!(
                        "{}: cannot reopen {}: {e}; retrying",
                        shared.config.name,
                        shared.addr
                    );
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            }
        }
        let Some(l) = listener.as_ref() else {
            if state.changed().await.is_err() {
                return;
            }
            continue;
        };
        tokio::select! {
            accepted = l.accept() => {
                if let Ok((stream, _)) = accepted {
                    let _ = stream.set_nodelay(true);
                    shared.connections.fetch_add(1, Ordering::Relaxed);
                    match shared.tls.clone() {
                        None => {
                            tokio::spawn(serve(shared.clone(), stream));
                        }
                        Some(acceptor) => {
                            tokio::spawn(serve_tls(shared.clone(), acceptor, stream));
                        }
                    }
                }
            }
            changed = state.changed() => if changed.is_err() { return },
        }
    }
}

/// The TLS acceptor of an HTTPS origin (Mozilla intermediate settings). With `http2` it
/// chooses ALPN `h2` when the client offers it, else `http/1.1`; without, it answers no ALPN
/// (HTTP/1.1). With `client_ca` it requires a client certificate from those CAs.
fn acceptor(
    tls: &crate::OriginTls,
    http2: bool,
    client_ca: Option<&std::path::Path>,
) -> io::Result<SslAcceptor> {
    let err = |what: &str, e: openssl::error::ErrorStack| {
        io::Error::new(io::ErrorKind::InvalidInput, format!("{what}: {e}"))
    };
    let mut b = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls())
        .map_err(|e| err("TLS acceptor", e))?;
    b.set_certificate_chain_file(&tls.cert_file)
        .map_err(|e| err(&format!("certificate {}", tls.cert_file.display()), e))?;
    b.set_private_key_file(&tls.key_file, SslFiletype::PEM)
        .map_err(|e| err(&format!("key {}", tls.key_file.display()), e))?;
    b.check_private_key()
        .map_err(|e| err("key does not match the certificate", e))?;
    if http2 {
        b.set_alpn_select_callback(|_, offered| {
            select_next_proto(b"\x02h2\x08http/1.1", offered).ok_or(AlpnError::NOACK)
        });
    }
    if let Some(file) = client_ca {
        let what = format!("client CA {}", file.display());
        let pem =
            std::fs::read(file).map_err(|e| io::Error::new(e.kind(), format!("{what}: {e}")))?;
        let cas = X509::stack_from_pem(&pem).map_err(|e| err(&what, e))?;
        if cas.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{what}: no PEM certificate"),
            ));
        }
        for ca in cas {
            b.add_client_ca(&ca).map_err(|e| err(&what, e))?;
            b.cert_store_mut().add_cert(ca).map_err(|e| err(&what, e))?;
        }
        b.set_verify(SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT);
    }
    Ok(b.build())
}

/// One HTTPS connection: the handshake, then as [`serve`].
async fn serve_tls(shared: Arc<Shared>, acceptor: SslAcceptor, stream: tokio::net::TcpStream) {
    let Ok(ssl) = Ssl::new(acceptor.context()) else {
        return;
    };
    let Ok(mut tls) = tokio_openssl::SslStream::new(ssl, stream) else {
        return;
    };
    if let Err(e) = std::pin::Pin::new(&mut tls).accept().await {
        log::debug!("{}: TLS handshake failed: {e}", shared.config.name);
        return;
    }
    serve(shared, tls).await;
}

/// One connection; dropped at once when the origin starts refusing or shuts down (an upgraded
/// WebSocket lives on in its own task, which watches the same state). HTTP/1.1, or with
/// `http2` either version: HTTP/2 when the connection opens with its preface (after ALPN
/// `h2` over TLS, or prior knowledge in cleartext).
async fn serve<S>(shared: Arc<Shared>, stream: S)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let svc_shared = shared.clone();
    let svc = service_fn(move |req| handle(svc_shared.clone(), req));
    let killed = shared.killed();
    if shared.config.http2 {
        let builder = auto::Builder::new(TokioExecutor::new());
        let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), svc);
        tokio::select! {
            _ = conn => {}
            _ = killed => {}
        }
        return;
    }
    let conn = http1::Builder::new()
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), svc)
        .with_upgrades();
    tokio::select! {
        _ = conn => {}
        _ = killed => {}
    }
}

async fn control_loop(shared: Arc<Shared>, listener: TcpListener) {
    let mut state = shared.state.subscribe();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                if let Ok((stream, _)) = accepted {
                    let s = shared.clone();
                    tokio::spawn(async move {
                        let svc = service_fn(move |req| control(s.clone(), req));
                        let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
                    });
                }
            }
            changed = state.changed() => {
                if changed.is_err() || state.borrow().1 {
                    return;
                }
            }
        }
    }
}
