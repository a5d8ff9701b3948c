//! The rules' edits of what goes out: the request headers and rewritten path of every
//! attempt to an origin, and the response headers of every response to the client (the
//! node's own replies too). Pure header work on the [`Actions`] a request's rule sets decided.

use pingora_error::Result;
use pingora_http::{RequestHeader, ResponseHeader};
use portico_core::rules::{Actions, HeaderEdit};

/// The rules' edits of a request going to an origin (every attempt): header edits, then the
/// rewritten path with the client's query string.
pub(crate) fn edit_request(actions: &Actions, upstream: &mut RequestHeader) -> Result<()> {
    for edit in &actions.request_headers {
        match edit {
            HeaderEdit::Remove(name) => {
                upstream.remove_header(name);
            }
            HeaderEdit::Set(name, value) => upstream.insert_header(name.clone(), value.clone())?,
            HeaderEdit::Add(name, value) => {
                upstream.append_header(name.clone(), value.clone())?;
            }
        }
    }
    if let Some(path) = &actions.path {
        let target = match upstream.uri.query() {
            Some(q) => format!("{path}?{q}"),
            None => path.clone(),
        };
        upstream.set_raw_path(target.as_bytes())?;
    }
    Ok(())
}

/// The rules' edits of a response to the client (every response, node-written ones too).
pub(crate) fn edit_response(actions: &Actions, resp: &mut ResponseHeader) -> Result<()> {
    for edit in &actions.response_headers {
        match edit {
            HeaderEdit::Remove(name) => {
                resp.remove_header(name);
            }
            HeaderEdit::Set(name, value) => resp.insert_header(name.clone(), value.clone())?,
            HeaderEdit::Add(name, value) => {
                resp.append_header(name.clone(), value.clone())?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderName, HeaderValue};

    fn edits() -> Vec<HeaderEdit> {
        let name = |n: &'static str| HeaderName::from_static(n);
        let value = |v: &'static str| HeaderValue::from_static(v);
        vec![
            HeaderEdit::Remove(name("x-drop")),
            HeaderEdit::Set(name("x-set"), value("new")),
            HeaderEdit::Add(name("x-add"), value("2")),
        ]
    }

    #[test]
    fn request_edits_and_the_rewrite_keep_the_query() {
        let mut up = RequestHeader::build("GET", b"/v1/users?id=7&x=1", None).unwrap();
        for (k, v) in [
            ("x-drop", "a"),
            ("x-set", "old"),
            ("x-set", "older"),
            ("x-add", "1"),
        ] {
            up.append_header(k, v).unwrap();
        }
        let actions = Actions {
            request_headers: edits(),
            path: Some("/api/v1/users".into()),
            ..Actions::default()
        };
        edit_request(&actions, &mut up).unwrap();
        assert_eq!(up.raw_path(), b"/api/v1/users?id=7&x=1");
        assert!(up.headers.get("x-drop").is_none());
        let all = |n: &str| -> Vec<&[u8]> {
            up.headers
                .get_all(n)
                .iter()
                .map(HeaderValue::as_bytes)
                .collect()
        };
        assert_eq!(all("x-set"), [b"new"]);
        assert_eq!(all("x-add"), [&b"1"[..], b"2"]);
        // Without a query, none is added.
        let mut plain = RequestHeader::build("GET", b"/v1", None).unwrap();
        edit_request(&actions, &mut plain).unwrap();
        assert_eq!(plain.raw_path(), b"/api/v1/users");
    }

    #[test]
    fn response_edits_apply_in_order() {
        let mut resp = ResponseHeader::build(502, None).unwrap();
        resp.append_header("x-drop", "a").unwrap();
        resp.append_header("x-add", "1").unwrap();
        let actions = Actions {
            response_headers: edits(),
            ..Actions::default()
        };
        edit_response(&actions, &mut resp).unwrap();
        assert!(resp.headers.get("x-drop").is_none());
        assert_eq!(resp.headers.get("x-set").unwrap(), "new");
        assert_eq!(resp.headers.get_all("x-add").iter().count(), 2);
    }
}
