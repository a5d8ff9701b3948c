//! Fuzz cases: well-formed requests, then structural mutations (header duplicates, CL/TE
//! shapes, long lines, bad chunking, folded lines, odd versions), byte mutations, and
//! pipelining of up to three requests, written in one or several pieces.

use fastrand::Rng;

/// One connection's worth of input.
#[derive(Debug, Clone)]
pub struct Case {
    /// Sequence number.
    pub number: u64,
    /// The bytes to send, in the pieces to write them in.
    pub writes: Vec<Vec<u8>>,
    /// The id token of each request written (mutations may have damaged some).
    pub ids: Vec<String>,
}

impl Case {
    /// Everything the case sends, as one stream.
    pub fn stream(&self) -> Vec<u8> {
        self.writes.concat()
    }
}

/// The id token of request `k` of case `n`: in its path and in `X-Fuzz`.
pub fn id(n: u64, k: usize) -> String {
    format!("fz{n}x{k}z")
}

/// Id tokens in `s` (`fz<digits>x<digits>z`).
pub fn find_ids(s: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    let mut i = 0;
    while i + 2 < s.len() {
        if &s[i..i + 2] == b"fz" {
            let mut j = i + 2;
            let d1 = j;
            while j < s.len() && s[j].is_ascii_digit() {
                j += 1;
            }
            if j > d1 && s.get(j) == Some(&b'x') {
                j += 1;
                let d2 = j;
                while j < s.len() && s[j].is_ascii_digit() {
                    j += 1;
                }
                if j > d2 && s.get(j) == Some(&b'z') {
                    out.push(String::from_utf8_lossy(&s[i..=j]).into_owned());
                    i = j + 1;
                    continue;
                }
            }
        }
        i += 1;
    }
    out
}

/// Framing header lines a smuggler tries.
const SHAPES: &[&str] = &[
    "Content-Length: 0",
    "Content-Length: 3",
    "Content-Length: 5",
    "Content-Length: 5, 5",
    "Content-Length: 5,6",
    "Content-Length: +5",
    "Content-Length: -1",
    "Content-Length: 05",
    "Content-Length: 1 0",
    "Content-Length: 0x5",
    "Content-Length: 18446744073709551621",
    "Content-Length : 5",
    "content-length: 4",
    "Transfer-Encoding: chunked",
    "transfer-encoding: CHUNKED",
    "Transfer-Encoding: chunked, identity",
    "Transfer-Encoding: gzip, chunked",
    "Transfer-Encoding: xchunked",
    "Transfer-Encoding: identity",
    "Transfer-Encoding: chunked;x=1",
    "Transfer-Encoding:\tchunked",
    "Transfer-Encoding: \x0bchunked",
    "Transfer-Encoding : chunked",
    "Transfer-Encoding: ",
    "Host: other.test",
    "Host: ",
    "Host: u@fuzz.test",
    "Connection: close",
    "Connection: keep-alive",
    "Connection: Upgrade",
    "Upgrade: websocket",
    "Expect: 100-continue",
    "Keep-Alive: timeout=1",
    "TE: trailers",
    "Trailer: X",
    "X-Forwarded-For: 1.2.3.4",
    "Via: 1.1 portico-fuzz",
];

/// Chunk-size lines that break the chunked framing one way or another.
const BAD_CHUNK_LINES: &[&str] = &[
    "5\n",
    "5\r",
    "5;a\n",
    "5 ;a=\"b\nc\"\r\n",
    "+5\r\n",
    "0x5\r\n",
    "10000000000000005\r\n",
    "ffffffffffffffff\r\n",
    "5 5\r\n",
    "\r\n",
    "5;\r\n",
    "5\r\r\n",
];

/// Bytes that matter to HTTP parsers.
const INTERESTING: &[u8] = b"\r\n\t :;,\x00\x0b\x7f\x80\xff0aA\"=";

struct Req {
    line: Vec<u8>,
    headers: Vec<Vec<u8>>,
    body: Vec<u8>,
}

impl Req {
    fn bytes(&self) -> Vec<u8> {
        let mut out = self.line.clone();
        out.extend_from_slice(b"\r\n");
        for h in &self.headers {
            out.extend_from_slice(h);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.body);
        out
    }
}

/// Between `range.start` and `range.end` random lower-case letters.
fn letters(rng: &mut Rng, range: std::ops::Range<usize>) -> Vec<u8> {
    let n = rng.usize(range);
    (0..n).map(|_| rng.u8(b'a'..=b'z')).collect()
}

fn chunked_body(rng: &mut Rng) -> Vec<u8> {
    let mut body = Vec::new();
    for _ in 0..rng.usize(0..3) {
        let data = letters(rng, 1..20);
        body.extend_from_slice(format!("{:x}", data.len()).as_bytes());
        if rng.u8(..) < 40 {
            body.extend_from_slice(b";ext=1");
        }
        body.extend_from_slice(b"\r\n");
        body.extend_from_slice(&data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(b"0\r\n\r\n");
    body
}

fn base(rng: &mut Rng, id: &str) -> Req {
    let (method, target, version) = match rng.u8(0..10) {
        0 => ("GET", format!("http://fuzz.test/fz/{id}"), "HTTP/1.1"),
        1 => ("GET", format!("/fz/{id}"), "HTTP/1.0"),
        2 => ("OPTIONS", "*".to_string(), "HTTP/1.1"),
        3 | 4 => ("POST", format!("/fz/{id}?q=1"), "HTTP/1.1"),
        5 => ("PUT", format!("/fz/{id}"), "HTTP/1.1"),
        6 => ("HEAD", format!("/fz/{id}"), "HTTP/1.1"),
        _ => ("GET", format!("/fz/{id}"), "HTTP/1.1"),
    };
    let mut headers = vec![
        b"Host: fuzz.test".to_vec(),
        format!("X-Fuzz: {id}").into_bytes(),
    ];
    let mut body = Vec::new();
    if method == "POST" || method == "PUT" {
        if rng.bool() {
            body = letters(rng, 0..64);
            headers.push(format!("Content-Length: {}", body.len()).into_bytes());
        } else {
            body = chunked_body(rng);
            headers.push(b"Transfer-Encoding: chunked".to_vec());
        }
    }
    Req {
        line: format!("{method} {target} {version}").into_bytes(),
        headers,
        body,
    }
}

fn mutate_structure(rng: &mut Rng, r: &mut Req) {
    match rng.u8(0..16) {
        0 if !r.headers.is_empty() => {
            let i = rng.usize(..r.headers.len());
            let dup = r.headers[i].clone();
            r.headers.insert(rng.usize(..=r.headers.len()), dup);
        }
        1 if !r.headers.is_empty() => {
            r.headers.remove(rng.usize(..r.headers.len()));
        }
        2..=4 => {
            let shape = SHAPES[rng.usize(..SHAPES.len())].as_bytes().to_vec();
            r.headers.insert(rng.usize(..=r.headers.len()), shape);
        }
        5 if !r.headers.is_empty() => {
            let i = rng.usize(..r.headers.len());
            r.headers[i] = r.headers[i]
                .iter()
                .map(|b| {
                    if rng.bool() {
                        b.to_ascii_uppercase()
                    } else {
                        b.to_ascii_lowercase()
                    }
                })
                .collect();
        }
        6 if !r.headers.is_empty() => {
            // obs-fold: the value moves to a continuation line.
            let i = rng.usize(..r.headers.len());
            if let Some(c) = r.headers[i].iter().position(|&b| b == b':') {
                let mut folded = r.headers[i][..=c].to_vec();
                folded.extend_from_slice(b"\r\n ");
                folded.extend_from_slice(&r.headers[i][c + 1..]);
                r.headers[i] = folded;
            }
        }
        7 => {
            let n = [100, 8_000, 9_000, 33_000, 70_000][rng.usize(..5)];
            let mut h = b"X-Long: ".to_vec();
            h.extend(std::iter::repeat_n(b'a', n));
            r.headers.push(h);
        }
        8 => {
            let n = [1_000, 8_200, 20_000][rng.usize(..3)];
            let at = r.line.iter().rposition(|&b| b == b' ').unwrap_or(0);
            let tail = r.line.split_off(at);
            r.line.extend(std::iter::repeat_n(b'a', n));
            r.line.extend_from_slice(&tail);
        }
        9 => {
            // Break a chunk-size line (or put one where a Content-Length body is).
            let bad = BAD_CHUNK_LINES[rng.usize(..BAD_CHUNK_LINES.len())].as_bytes();
            let end = r.body.iter().position(|&b| b == b'\n').map_or(0, |i| i + 1);
            let mut body = bad.to_vec();
            body.extend_from_slice(&r.body[end..]);
            r.body = body;
        }
        10 => {
            // The body disagrees with its length.
            if rng.bool() {
                r.body.extend_from_slice(&letters(rng, 1..10));
            } else {
                let keep = rng.usize(..=r.body.len());
                r.body.truncate(keep);
            }
        }
        11 if !r.headers.is_empty() => {
            let i = rng.usize(..r.headers.len());
            if let Some(c) = r.headers[i].iter().position(|&b| b == b':') {
                r.headers[i].insert(c, b' ');
            }
        }
        12 => {
            let v = [
                "HTTP/1.0",
                "HTTP/1.2",
                "HTTP/2.0",
                "HTTP/0.9",
                "http/1.1",
                "HTTP/1.1 ",
            ];
            if let Some(at) = r.line.iter().rposition(|&b| b == b' ') {
                r.line.truncate(at + 1);
                r.line.extend_from_slice(v[rng.usize(..v.len())].as_bytes());
            }
        }
        13 => {
            let m = ["G ET", "CONNECT", "TRACE", "get", "PRI", "\x00GET", "GET\t"];
            if let Some(at) = r.line.iter().position(|&b| b == b' ') {
                let rest = r.line.split_off(at);
                r.line = m[rng.usize(..m.len())].as_bytes().to_vec();
                r.line.extend_from_slice(&rest);
            }
        }
        14 => {
            let h = format!("X-{}: {}", rng.u32(..), rng.u64(..)).into_bytes();
            r.headers.push(h);
        }
        _ => {
            // A value with a control byte.
            if !r.headers.is_empty() {
                let i = rng.usize(..r.headers.len());
                let b = INTERESTING[rng.usize(..INTERESTING.len())];
                r.headers[i].push(b);
            }
        }
    }
}

fn mutate_bytes(rng: &mut Rng, s: &mut Vec<u8>) {
    if s.is_empty() {
        return;
    }
    for _ in 0..rng.usize(1..4) {
        let i = rng.usize(..s.len().max(1));
        match rng.u8(0..6) {
            0 if i < s.len() => s[i] ^= 1 << rng.u8(0..8),
            1 => s.insert(i, INTERESTING[rng.usize(..INTERESTING.len())]),
            2 if i < s.len() => {
                s.remove(i);
            }
            3 if i < s.len() => s[i] = INTERESTING[rng.usize(..INTERESTING.len())],
            4 if i < s.len() => {
                let end = (i + rng.usize(1..40)).min(s.len());
                let dup = s[i..end].to_vec();
                s.splice(i..i, dup);
            }
            _ => {
                let keep = rng.usize(..=s.len());
                s.truncate(keep.max(1));
            }
        }
        if s.is_empty() {
            return;
        }
    }
}

/// Case number `n`.
pub fn generate(rng: &mut Rng, n: u64) -> Case {
    let count = match rng.u8(0..10) {
        0..=5 => 1,
        6..=8 => 2,
        _ => 3,
    };
    let mut stream = Vec::new();
    let mut ids = Vec::new();
    for k in 0..count {
        let id = id(n, k);
        let mut r = base(rng, &id);
        if k + 1 == count && rng.u8(..) < 200 {
            r.headers.push(b"Connection: close".to_vec());
        }
        for _ in 0..rng.usize(0..3) {
            mutate_structure(rng, &mut r);
        }
        stream.extend_from_slice(&r.bytes());
        ids.push(id);
    }
    if rng.u8(..) < 80 {
        mutate_bytes(rng, &mut stream);
    }
    let mut writes = Vec::new();
    if rng.u8(..) < 70 && stream.len() > 2 {
        let mut cuts: Vec<usize> = (0..rng.usize(1..3))
            .map(|_| rng.usize(1..stream.len()))
            .collect();
        cuts.sort_unstable();
        cuts.dedup();
        let mut prev = 0;
        for c in cuts {
            writes.push(stream[prev..c].to_vec());
            prev = c;
        }
        writes.push(stream[prev..].to_vec());
    } else {
        writes.push(stream);
    }
    Case {
        number: n,
        writes,
        ids,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_found_and_do_not_overlap() {
        assert_eq!(
            find_ids(b"GET /fz/fz1x0z HTTP/1.1\r\nX-Fuzz: fz12x1z\r\nfz3x"),
            vec!["fz1x0z", "fz12x1z"]
        );
        let mut rng = Rng::with_seed(7);
        for n in 0..200 {
            let c = generate(&mut rng, n);
            assert!(!c.ids.is_empty() && !c.writes.is_empty());
        }
    }
}
