//! `pingora-minimal LISTEN ORIGIN [--tls TLS_LISTEN CERT KEY]`: the smallest Pingora proxy (only
//! `upstream_peer`), the floor the throughput benchmark holds Portico to; with `--tls`, also a
//! TLS listener offering h2 and http/1.1 (Pingora's own h2 accept loop, for HTTP/2 profiling).

use async_trait::async_trait;
use pingora_core::listeners::tls::TlsSettings;
use pingora_core::server::Server;
use pingora_core::server::configuration::ServerConf;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_proxy::{ProxyHttp, Session};

/// Sends every request to one origin, untouched.
struct Minimal {
    origin: String,
}

#[async_trait]
impl ProxyHttp for Minimal {
    type CTX = ();

    fn new_ctx(&self) {}

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        _ctx: &mut (),
    ) -> pingora_error::Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(
            self.origin.as_str(),
            false,
            String::new(),
        )))
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(listen), Some(origin)) = (args.next(), args.next()) else {
        eprintln!(
            "usage: pingora-minimal LISTEN ORIGIN [--tls TLS_LISTEN CERT KEY]   (e.g. 127.0.0.1:8080 127.0.0.1:9000)"
        );
        std::process::exit(2);
    };
    let tls = match (
        args.next().as_deref(),
        args.next(),
        args.next(),
        args.next(),
    ) {
        (None, ..) => None,
        (Some("--tls"), Some(addr), Some(cert), Some(key)) => Some((addr, cert, key)),
        _ => {
            eprintln!("pingora-minimal: --tls takes TLS_LISTEN CERT KEY");
            std::process::exit(2);
        }
    };
    // Pingora's defaults, one thread, and the same idle origin-connection pool as Portico's
    // node (so the many-connections case compares proxies, not pool sizes).
    let conf = ServerConf {
        threads: 1,
        upstream_keepalive_pool_size: portico::node::UPSTREAM_KEEPALIVE_POOL,
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut proxy = pingora_proxy::http_proxy_service(&server.configuration, Minimal { origin });
    proxy.add_tcp(&listen);
    if let Some((addr, cert, key)) = tls {
        let mut settings = match TlsSettings::intermediate(&cert, &key) {
            Ok(settings) => settings,
            Err(e) => {
                eprintln!("pingora-minimal: {e}");
                std::process::exit(1);
            }
        };
        settings.enable_h2();
        proxy.add_tls_with_settings(&addr, None, settings);
    }
    server.add_service(proxy);
    server.run_forever();
}
