//! What compression costs a request: on a route without `compression` (the compressor is
//! never made), on a route with it whose client accepts no coding, and compressing a 16 KiB
//! JSON body with each coding; beside it, what registering Pingora's compression module for
//! every request would cost (`HttpModules::build_ctx`, per request, even when disabled).

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use pingora_core::modules::http::HttpModules;
use pingora_core::modules::http::compression::ResponseCompressionBuilder;
use pingora_http::{RequestHeader, ResponseHeader};
use portico::compression::Compressor;
use portico_core::config::{RouteConfig, parse};
use std::hint::black_box;

fn routes() -> Vec<RouteConfig> {
    let text = r#"{"pools":[{"name":"p","origins":[{"name":"a","address":"127.0.0.1:1"}]}],
        "routes":[{"name":"plain","pool":"p","paths":["/plain"]},
                  {"name":"zip","pool":"p","compression":{}}]}"#;
    parse(text).expect("valid config").routes
}

fn request(accept: Option<&str>) -> RequestHeader {
    let mut req = RequestHeader::build("GET", b"/", None).expect("request");
    if let Some(a) = accept {
        req.insert_header("accept-encoding", a).expect("header");
    }
    req
}

/// One response through a request's compressor, as the proxy drives it: head, body, end.
fn one_response(route: &RouteConfig, req: &RequestHeader, body: &Bytes) -> usize {
    let Some(mut c) = Compressor::for_request(route, req) else {
        return body.len();
    };
    let mut resp = ResponseHeader::build(200, None).expect("response");
    resp.insert_header("content-type", "application/json")
        .expect("header");
    if let Some(config) = &route.compression {
        c.head(config, &mut resp, false, false);
    }
    let mut piece = Some(body.clone());
    c.body(&mut piece, false);
    let mut last = None;
    c.body(&mut last, true);
    piece.map_or(0, |p| p.len()) + last.map_or(0, |p| p.len())
}

fn bench(c: &mut Criterion) {
    let routes = routes();
    let json: Vec<u8> = (0..400)
        .flat_map(|i| format!(r#"{{"id":{i},"name":"item {i}","ok":true}},"#).into_bytes())
        .take(16 * 1024)
        .collect();
    let body = Bytes::from(json);
    let mut g = c.benchmark_group("compression");
    let gzip = request(Some("gzip, br"));
    g.bench_function("route without compression", |b| {
        b.iter(|| one_response(black_box(&routes[0]), black_box(&gzip), &body))
    });
    let none = request(None);
    g.bench_function("route with it, client accepts none", |b| {
        b.iter(|| one_response(black_box(&routes[1]), black_box(&none), &body))
    });
    for coding in ["gzip", "br", "zstd"] {
        let req = request(Some(coding));
        g.bench_function(format!("16 KiB JSON, {coding}"), |b| {
            b.iter(|| one_response(black_box(&routes[1]), black_box(&req), &body))
        });
    }
    let empty = HttpModules::new();
    g.bench_function("no downstream modules: build_ctx", |b| {
        b.iter(|| black_box(empty.build_ctx()))
    });
    let mut with_module = HttpModules::new();
    with_module.add_module(ResponseCompressionBuilder::enable(0));
    g.bench_function("compression module registered, disabled: build_ctx", |b| {
        b.iter(|| black_box(with_module.build_ctx()))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
