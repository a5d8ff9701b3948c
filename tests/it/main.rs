//! Portico's integration tests: real nodes and origins in this process, on ports chosen at run time.

mod access_log;
mod admin;
mod decision;
mod edge_policy;
mod failover;
mod hedging;
mod limits;
mod observability;
mod probes;
mod proxying;
mod reload;
mod request_rules;
mod routing;
mod selection;
mod smuggling;
mod status_page;
mod stop;
mod store;
mod tls;
mod tls_limits;
mod websocket;
