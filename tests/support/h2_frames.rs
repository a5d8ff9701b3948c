//! Raw HTTP/2 frames, written and read byte by byte: what the TLS-limit tests and the hostile
//! benchmark (`bench-hostile`) send when they play a misbehaving client, which a real client
//! library refuses to do (reset floods, header blocks that never end).

/// Frame type `HEADERS`.
pub const HEADERS: u8 = 0x1;
/// Frame type `RST_STREAM`.
pub const RST_STREAM: u8 = 0x3;
/// Frame type `SETTINGS`.
pub const SETTINGS: u8 = 0x4;
/// Frame type `GOAWAY`.
pub const GOAWAY: u8 = 0x7;
/// Frame type `CONTINUATION`.
pub const CONTINUATION: u8 = 0x9;

/// Flag `END_STREAM` (HEADERS).
pub const END_STREAM: u8 = 0x1;
/// Flag `ACK` (SETTINGS).
pub const ACK: u8 = 0x1;
/// Flag `END_HEADERS` (HEADERS, CONTINUATION).
pub const END_HEADERS: u8 = 0x4;

/// The client connection preface and an empty SETTINGS frame.
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";

/// One frame as read off the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Frame type.
    pub kind: u8,
    /// Flags.
    pub flags: u8,
    /// Stream identifier (reserved bit cleared).
    pub stream: u32,
    /// Payload.
    pub payload: Vec<u8>,
}

impl Frame {
    /// The first whole frame in `bytes` and its length on the wire; `None` when `bytes` does
    /// not hold one yet.
    pub fn parse(bytes: &[u8]) -> Option<(Frame, usize)> {
        let len = u32::from_be_bytes([0, *bytes.first()?, *bytes.get(1)?, *bytes.get(2)?]) as usize;
        let payload = bytes.get(9..9 + len)?;
        let frame = Frame {
            kind: bytes[3],
            flags: bytes[4],
            stream: u32::from_be_bytes([bytes[5], bytes[6], bytes[7], bytes[8]]) & 0x7fff_ffff,
            payload: payload.to_vec(),
        };
        Some((frame, 9 + len))
    }

    /// For a GOAWAY: the last stream the sender processed and the error code.
    pub fn goaway(&self) -> Option<(u32, u32)> {
        if self.kind != GOAWAY {
            return None;
        }
        Some((
            u32::from_be_bytes(self.payload.get(0..4)?.try_into().ok()?) & 0x7fff_ffff,
            u32::from_be_bytes(self.payload.get(4..8)?.try_into().ok()?),
        ))
    }

    /// For a RST_STREAM: the error code.
    pub fn reset_code(&self) -> Option<u32> {
        (self.kind == RST_STREAM)
            .then(|| Some(u32::from_be_bytes(self.payload.get(0..4)?.try_into().ok()?)))
            .flatten()
    }
}

/// The whole frames in `bytes` (a trailing partial frame is dropped).
pub fn frames(mut bytes: &[u8]) -> Vec<Frame> {
    let mut out = Vec::new();
    while let Some((frame, used)) = Frame::parse(bytes) {
        out.push(frame);
        bytes = &bytes[used..];
    }
    out
}

/// The value of setting `id` in the first SETTINGS frame (not an acknowledgement) in `frames`.
pub fn setting(frames: &[Frame], id: u16) -> Option<u32> {
    let settings = frames
        .iter()
        .find(|f| f.kind == SETTINGS && f.flags & ACK == 0)?;
    settings.payload.chunks_exact(6).find_map(|s| {
        (u16::from_be_bytes([s[0], s[1]]) == id)
            .then(|| u32::from_be_bytes([s[2], s[3], s[4], s[5]]))
    })
}

/// The error code of the first GOAWAY among `frames`.
pub fn goaway_code(frames: &[Frame]) -> Option<u32> {
    frames.iter().find_map(|f| f.goaway()).map(|(_, code)| code)
}

/// A frame header: `len` payload bytes of `kind` with `flags` on `stream`.
pub fn head(len: usize, kind: u8, flags: u8, stream: u32) -> Vec<u8> {
    let mut head = (len as u32).to_be_bytes()[1..].to_vec();
    head.extend_from_slice(&[kind, flags]);
    head.extend_from_slice(&stream.to_be_bytes());
    head
}

/// A whole frame: [`head`] then `payload`.
pub fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut f = head(payload.len(), kind, flags, stream);
    f.extend_from_slice(payload);
    f
}

/// An HPACK block for `GET https://{authority}/` (static entries for the method, scheme and
/// path; the authority a literal with incremental indexing).
pub fn get_block(authority: &str) -> Vec<u8> {
    let mut block = vec![0x82, 0x87, 0x84, 0x41];
    hpack_string(&mut block, authority.as_bytes());
    block
}

/// Appends header `name: value` to an HPACK block as a literal without indexing, new name.
pub fn literal(block: &mut Vec<u8>, name: &str, value: &[u8]) {
    block.push(0x00);
    hpack_string(block, name.as_bytes());
    hpack_string(block, value);
}

/// An HPACK string literal (not Huffman-coded): its length as a 7-bit-prefix integer, then it.
fn hpack_string(block: &mut Vec<u8>, s: &[u8]) {
    let mut n = s.len();
    if n < 127 {
        block.push(n as u8);
    } else {
        block.push(127);
        n -= 127;
        while n >= 128 {
            block.push(0x80 | (n & 0x7f) as u8);
            n >>= 7;
        }
        block.push(n as u8);
    }
    block.extend_from_slice(s);
}

/// The name RFC 9113 gives error `code`.
pub fn error_name(code: u32) -> String {
    const NAMES: [&str; 14] = [
        "NO_ERROR",
        "PROTOCOL_ERROR",
        "INTERNAL_ERROR",
        "FLOW_CONTROL_ERROR",
        "SETTINGS_TIMEOUT",
        "STREAM_CLOSED",
        "FRAME_SIZE_ERROR",
        "REFUSED_STREAM",
        "CANCEL",
        "COMPRESSION_ERROR",
        "CONNECT_ERROR",
        "ENHANCE_YOUR_CALM",
        "INADEQUATE_SECURITY",
        "HTTP_1_1_REQUIRED",
    ];
    NAMES
        .get(code as usize)
        .map_or_else(|| format!("error {code:#x}"), |n| (*n).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_partial_ones_wait() {
        let mut bytes = frame(GOAWAY, 0, 0, &[0, 0, 0, 39, 0, 0, 0, 0xb]);
        bytes.extend(frame(RST_STREAM, 0, 3, &8u32.to_be_bytes()));
        bytes.extend(&head(10, HEADERS, 0, 5)[..]);
        let got = frames(&bytes);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].goaway(), Some((39, 0xb)));
        assert_eq!(goaway_code(&got), Some(0xb));
        assert_eq!(got[1].stream, 3);
        assert_eq!(got[1].reset_code(), Some(8));
        assert_eq!(got[1].goaway(), None);
        assert!(Frame::parse(&bytes[..5]).is_none());
    }

    #[test]
    fn settings_are_read_from_the_first_non_ack_frame() {
        let mut payload = vec![0, 3, 0, 0, 0, 100];
        payload.extend_from_slice(&[0, 6, 0, 0, 0x80, 0]);
        let mut bytes = frame(SETTINGS, ACK, 0, &[]);
        bytes.extend(frame(SETTINGS, 0, 0, &payload));
        let got = frames(&bytes);
        assert_eq!(setting(&got, 3), Some(100));
        assert_eq!(setting(&got, 6), Some(32768));
        assert_eq!(setting(&got, 4), None);
    }

    #[test]
    fn hpack_lengths_use_the_seven_bit_prefix() {
        let mut block = Vec::new();
        literal(&mut block, "x-big", &[b'a'; 2000]);
        // 0x00, name length 5, "x-big", then 2000 = 127 + 1873 = 127 + 0x51 + 14 * 128.
        assert_eq!(&block[..7], &[0x00, 5, b'x', b'-', b'b', b'i', b'g']);
        assert_eq!(&block[7..10], &[0x7f, 0x80 | 0x51, 14]);
        assert_eq!(block.len(), 10 + 2000);
        assert_eq!(get_block("site.test")[4], 9);
        assert_eq!(error_name(0xb), "ENHANCE_YOUR_CALM");
        assert_eq!(error_name(0x42), "error 0x42");
    }
}
