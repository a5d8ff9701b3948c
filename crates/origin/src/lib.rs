//! `portico-origin`: a small demo origin that names itself, delays on demand and fails on command.
//!
//! Used by `make run`, the simulation, the integration tests and the benchmarks. Every answer
//! carries `X-Served-By: <name>`; the body of a plain request is `<name>\n`. `GET /ws` is a
//! WebSocket echo. With [`OriginConfig::http2`] it speaks HTTP/2 too and serves the gRPC
//! service of [`grpc`].

mod body;
mod demo_tls;
mod fault;
pub mod grpc;
mod server;
mod service;
mod shared;
mod websocket;

pub use body::{Fnv1a, fnv1a, pattern_byte};
pub use demo_tls::{DemoTls, generate as generate_demo_tls, write_demo_tls};
pub use fault::{Fault, FaultParseError};
pub use server::{OriginHandle, start};
pub use shared::{RequestRecord, Stats};

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// How one demo origin behaves.
#[derive(Debug, Clone)]
pub struct OriginConfig {
    /// Name returned in the body and in `X-Served-By`.
    pub name: String,
    /// Address to listen on (port 0 picks a free one).
    pub listen: SocketAddr,
    /// Fixed delay added to every answer, probes included.
    pub delay: Duration,
    /// Extra delay by the caller's region (`X-Portico-Region`): the simulated round trip.
    pub rtt: HashMap<String, Duration>,
    /// Region this origin lives in, returned in `X-Origin-Region` when set.
    pub region: Option<String>,
    /// Optional control listener (`GET`/`PUT /fault`, `GET /stats`).
    pub control: Option<SocketAddr>,
    /// Fault active from the start.
    pub fault: Fault,
    /// How many requests to keep in the inspectable log (0 keeps none: the fast path).
    pub log_capacity: usize,
    /// Serve HTTPS (HTTP/1.1 over TLS) with this certificate and key instead of plain HTTP.
    pub tls: Option<OriginTls>,
    /// Speak HTTP/2 beside HTTP/1.1: cleartext connections that open with the HTTP/2 preface
    /// (prior knowledge, "h2c"), and ALPN `h2` over TLS. The gRPC service needs it.
    pub http2: bool,
    /// With `tls`: require a client certificate that chains to the CA certificates of this
    /// PEM file (a client without one fails the handshake). Needs `tls`.
    pub tls_client_ca: Option<PathBuf>,
}

/// The certificate an HTTPS origin serves.
#[derive(Debug, Clone)]
pub struct OriginTls {
    /// PEM chain, leaf first.
    pub cert_file: PathBuf,
    /// PEM private key.
    pub key_file: PathBuf,
}

impl OriginConfig {
    /// A healthy origin with no delay that keeps the last 10 000 requests in its log.
    pub fn new(name: &str, listen: SocketAddr) -> Self {
        OriginConfig {
            name: name.to_string(),
            listen,
            delay: Duration::ZERO,
            rtt: HashMap::new(),
            region: None,
            control: None,
            fault: Fault::None,
            log_capacity: 10_000,
            tls: None,
            http2: false,
            tls_client_ca: None,
        }
    }
}
