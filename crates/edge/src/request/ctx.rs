//! The state of one client request across Pingora's hooks: its config snapshot, route,
//! lifecycle, trace and the labels its metrics carry.

use crate::client_cert::ClientCert;
use crate::live_pool::LivePool;
use crate::request::outbound::{ClientSide, response_to_client};
use crate::request::rule_edits;
use crate::request::trace::Trace;
use crate::snapshot::Snapshot;
use crate::state::InFlight;
use http::HeaderValue;
use pingora_http::ResponseHeader;
use pingora_proxy::Session;
use portico_core::lifecycle::Lifecycle;
use portico_core::rules::Actions;
use std::sync::Arc;
use std::time::Instant;

/// Per-request state kept across hooks and retries.
pub struct RequestCtx {
    /// The config this request started on; it keeps it to the end, reloads or not.
    pub(crate) snapshot: Arc<Snapshot>,
    /// Counts the request as in flight (a stop waits for it) until the context is dropped.
    pub(crate) _in_flight: InFlight,
    pub(crate) start: Instant,
    /// `X-Request-Id`, kept as a header value: it is sent both ways.
    pub(crate) request_id: HeaderValue,
    pub(crate) route: Option<usize>,
    /// The core's attempt plan, once routed.
    pub(crate) lifecycle: Option<Lifecycle>,
    /// The attempt Pingora's loop runs now.
    pub(crate) attempt: usize,
    /// The attempt the lifecycle chose for Pingora's next `upstream_peer`.
    pub(crate) planned: Option<(usize, usize)>,
    /// Whether the response came from an origin (not generated here).
    pub(crate) answered: bool,
    /// The decision trace, when the client asked for one and may see it.
    pub(crate) trace: Option<Box<Trace>>,
    /// Whether the client is in `node.trusted_proxies` (its forwarding headers are kept).
    pub(crate) trusted_proxy: bool,
    /// Status sent to the client (0 if none).
    pub(crate) status: u16,
    /// Whether the connection's verified client certificate vouches for this request's Host
    /// (verified against the CAs of the certificate the Host gets); only then do origins hear
    /// of it.
    pub(crate) client_cert_fits: bool,
    /// The response compressor, only on a route with `compression`.
    pub(crate) compression: Option<Box<crate::compression::Compressor>>,
    /// Whether Portico refused the request itself for a route or rule reason (no route
    /// matched): an error for the rollout gates whatever its status class.
    pub(crate) refused: bool,
    /// What the route's rule sets decided (empty when none matched).
    pub(crate) rules: Actions,
    /// The pool the request goes to: the route's, or a rule's `pool`.
    pub(crate) pool_at: Option<usize>,
}

impl RequestCtx {
    /// The pool the request goes to: a rule's, else the route's (also for a request a rule
    /// or an HTTPS redirect answered, as its metrics' `pool` label).
    pub(crate) fn pool(&self) -> Option<&LivePool> {
        match self.pool_at {
            Some(p) => self.snapshot.pools.get(p).map(|p| &**p),
            None => self.route.map(|r| self.snapshot.route_pool(r)),
        }
    }

    /// Whether a rule sent the request to another pool than its route's.
    pub(crate) fn pool_overridden(&self) -> bool {
        self.rules.pool.is_some()
    }

    /// Attempts made so far.
    pub(crate) fn attempts(&self) -> usize {
        self.lifecycle.as_ref().map_or(0, |l| l.attempts().len())
    }

    /// The origin whose response went to the client.
    pub(crate) fn answered_by(&self) -> Option<usize> {
        let lc = self.lifecycle.as_ref()?;
        match lc.delivered() {
            Some(a) => Some(a.origin),
            None if self.answered => lc.attempts().get(self.attempt).map(|a| a.origin),
            None => None,
        }
    }

    /// Readies a response head for the client: Portico's headers (request id, region, the
    /// decision trace when asked for) and, while the node drains, `Connection: close`.
    pub(crate) fn prepare_response(
        &self,
        resp: &mut ResponseHeader,
        session: &mut Session,
        draining: bool,
    ) -> pingora_error::Result<()> {
        response_to_client(
            resp,
            &self.snapshot,
            &self.request_id,
            self.trace.as_deref(),
        )?;
        rule_edits::edit_response(&self.rules, resp)?;
        if draining {
            session.set_keepalive(None);
        }
        Ok(())
    }

    /// The forwarding policy's view of the client side.
    pub(crate) fn client_side<'a>(&'a self, session: &'a Session) -> ClientSide<'a> {
        ClientSide {
            snapshot: &self.snapshot,
            client_ip: client_ip(session),
            tls: over_tls(session),
            trusted_proxy: self.trusted_proxy,
            client_cert: client_cert(session).filter(|_| self.client_cert_fits),
            request_id: &self.request_id,
            original: session.req_header(),
            rules: &self.rules,
        }
    }

    /// The `route`, `pool` and `origin` metric labels of the request (empty when unknown).
    pub(crate) fn labels(&self) -> (&str, &str, &str) {
        let Some(route) = self.route else {
            return ("", "", "");
        };
        let Some(pool) = self.pool() else {
            return ("", "", "");
        };
        let origin = self
            .answered_by()
            .map(|i| pool.config.origins[i].name.as_str())
            .unwrap_or("");
        (
            self.snapshot.config.routes[route].name.as_str(),
            pool.config.name.as_str(),
            origin,
        )
    }
}

/// The client's IP address.
pub(crate) fn client_ip(session: &Session) -> Option<std::net::IpAddr> {
    session
        .client_addr()
        .and_then(|a| a.as_inet())
        .map(|a| a.ip())
}

/// The client's verified certificate, kept by the handshake in the TLS digest.
pub(crate) fn client_cert(session: &Session) -> Option<&ClientCert> {
    session
        .digest()
        .and_then(|d| d.ssl_digest.as_ref())
        .and_then(|s| s.extension.get::<ClientCert>())
}

/// Whether the client's connection is TLS.
pub(crate) fn over_tls(session: &Session) -> bool {
    session.digest().is_some_and(|d| d.ssl_digest.is_some())
}
