//! Portico's integration tests: real nodes and origins in this process, on ports chosen at run time.

// The helpers (tests/support) under the name these tests have always used for them, and as
// `crate::support`.
extern crate portico_test_support as portico_tests;
#[allow(unused_imports)]
mod support {
    pub use portico_test_support::*;
}

mod access_log;
mod acme;
mod admin;
mod affinity;
mod compression;
mod decision;
mod edge_policy;
mod failover;
mod framing;
mod grpc;
mod hedging;
mod limits;
mod mtls;
mod observability;
mod origin_cert;
mod probes;
mod proxying;
mod reload;
mod request_rules;
mod rollout;
mod routing;
mod selection;
mod smuggling;
mod status_page;
mod stop;
mod store;
mod tls;
mod tls_limits;
mod tls_resume;
mod websocket;
