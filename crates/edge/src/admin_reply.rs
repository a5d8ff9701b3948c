//! Responses of the admin listener: a body with its content type, length and `no-store`.

use http::{Response, StatusCode};

/// A response with a body and the admin listener's usual headers.
pub fn reply(status: StatusCode, content_type: &str, body: Vec<u8>) -> Response<Vec<u8>> {
    Response::builder()
        .status(status)
        .header("Content-Type", content_type)
        .header("Content-Length", body.len())
        .header("Cache-Control", "no-store")
        .body(body)
        .unwrap_or_else(|_| Response::new(Vec::new()))
}
