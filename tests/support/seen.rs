//! What an origin saw: its last client request and the headers of a recorded request.

use portico_origin::{OriginHandle, RequestRecord};

/// The last request `o` received that was not a health probe.
pub fn last_request(o: &OriginHandle) -> RequestRecord {
    o.log()
        .into_iter()
        .rev()
        .find(|r| !r.probe)
        .expect("the origin saw a request")
}

/// A header of a recorded request (names are stored in lower case).
pub fn header<'a>(r: &'a RequestRecord, name: &str) -> Option<&'a str> {
    r.headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}
