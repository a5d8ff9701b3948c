//! An incremental decoder of the chunked transfer coding (RFC 9112 §7.1): sizes, extensions
//! (skipped), data, trailers (skipped), with Pingora's limits; any malformed byte is an error.

use std::ops::Range;

/// Longest chunk-size line (size and extensions) accepted, as Pingora's.
pub const MAX_SIZE_LINE: usize = 8 * 1024;
/// Most trailer bytes accepted, as Pingora's.
pub const MAX_TRAILERS: usize = 64 * 1024;
/// Most hex digits of a chunk size (a `u64`).
const MAX_SIZE_DIGITS: u8 = 16;

/// Why a chunked body is malformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkError(pub &'static str);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Hex digits of a chunk size.
    Size { value: u64, digits: u8 },
    /// Whitespace after the size, before `;` or CR.
    SizeWs { value: u64 },
    /// A chunk extension, up to CR.
    Ext { value: u64 },
    /// CR of the size line seen, LF due.
    SizeLf { value: u64 },
    /// Data bytes left in this chunk.
    Data { left: u64 },
    /// CR after the data due.
    DataCr,
    /// LF after the data due.
    DataLf,
    /// Start of a trailer line, or of the final CRLF.
    TrailerStart,
    /// Inside a trailer line.
    TrailerLine,
    /// CR of a trailer line seen, LF due.
    TrailerLf,
    /// CR of the final line seen, LF due.
    EndLf,
    /// The body ended.
    Done,
}

/// What one [`ChunkDecoder::feed`] did with its input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Bytes of the input used (framing and data); the rest is for the next call, or past
    /// the end of the body when the decoder is done.
    pub consumed: usize,
    /// The data bytes found, a range of the input (empty: none yet).
    pub data: Range<usize>,
}

/// The decoder's state between pieces of input.
#[derive(Debug, Clone)]
pub struct ChunkDecoder {
    state: State,
    /// Bytes of the current size line so far.
    line: usize,
    /// Trailer bytes so far.
    trailers: usize,
}

impl Default for ChunkDecoder {
    fn default() -> Self {
        Self {
            state: State::Size {
                value: 0,
                digits: 0,
            },
            line: 0,
            trailers: 0,
        }
    }
}

impl ChunkDecoder {
    /// Whether the last chunk and the trailers have been read.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Reads framing from `input` up to the first data bytes (returned as a range of
    /// `input`, never past this chunk's end) or the end of the input or of the body.
    pub fn feed(&mut self, input: &[u8]) -> Result<Step, ChunkError> {
        let mut i = 0;
        while i < input.len() {
            match self.state {
                State::Done => break,
                State::Data { left } => {
                    let avail = (input.len() - i) as u64;
                    let n = left.min(avail);
                    self.state = if n == left {
                        State::DataCr
                    } else {
                        State::Data { left: left - n }
                    };
                    // n <= avail, which is a usize.
                    let end = i + n as usize;
                    return Ok(Step {
                        consumed: end,
                        data: i..end,
                    });
                }
                _ => {
                    self.byte(input[i])?;
                    i += 1;
                }
            }
        }
        Ok(Step {
            consumed: i,
            data: i..i,
        })
    }

    fn byte(&mut self, b: u8) -> Result<(), ChunkError> {
        use State::*;
        if matches!(self.state, Size { .. } | SizeWs { .. } | Ext { .. }) {
            self.line += 1;
            if self.line > MAX_SIZE_LINE {
                return Err(ChunkError("chunk size line over limit"));
            }
        }
        if matches!(self.state, TrailerStart | TrailerLine) && b != b'\r' {
            self.trailers += 1;
            if self.trailers > MAX_TRAILERS {
                return Err(ChunkError("trailers over limit"));
            }
        }
        self.state = match (self.state, b) {
            (Size { value, digits }, _) if b.is_ascii_hexdigit() => {
                if digits == MAX_SIZE_DIGITS {
                    return Err(ChunkError("chunk size too large"));
                }
                let d = match b {
                    b'0'..=b'9' => b - b'0',
                    b'a'..=b'f' => b - b'a' + 10,
                    _ => b - b'A' + 10,
                };
                Size {
                    value: (value << 4) | u64::from(d),
                    digits: digits + 1,
                }
            }
            (Size { digits: 0, .. }, _) => return Err(ChunkError("chunk size missing")),
            (Size { value, .. } | SizeWs { value }, b' ' | b'\t') => SizeWs { value },
            (Size { value, .. } | SizeWs { value }, b';') => Ext { value },
            (Size { value, .. } | SizeWs { value } | Ext { value }, b'\r') => SizeLf { value },
            (Size { .. } | SizeWs { .. }, _) => return Err(ChunkError("invalid chunk size")),
            (Ext { .. }, b'\n' | 0) => return Err(ChunkError("invalid chunk extension")),
            (Ext { value }, _) => Ext { value },
            (SizeLf { value }, b'\n') => {
                self.line = 0;
                if value == 0 {
                    TrailerStart
                } else {
                    Data { left: value }
                }
            }
            (DataCr, b'\r') => DataLf,
            (DataLf, b'\n') => Size {
                value: 0,
                digits: 0,
            },
            (TrailerStart, b'\r') => EndLf,
            (TrailerStart | TrailerLine, b'\n' | 0) => {
                return Err(ChunkError("invalid trailer line"));
            }
            (TrailerLine, b'\r') => TrailerLf,
            (TrailerStart | TrailerLine, _) => TrailerLine,
            (TrailerLf, b'\n') => TrailerStart,
            (EndLf, b'\n') => Done,
            _ => return Err(ChunkError("expected CRLF in chunked body")),
        };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Decodes `input` fed in pieces of the given sizes: the body, whether it ended, and the
    /// bytes left over after its end.
    fn decode(input: &[u8], cuts: &[usize]) -> Result<(Vec<u8>, bool, usize), ChunkError> {
        let mut d = ChunkDecoder::default();
        let mut body = Vec::new();
        let mut pending: Vec<u8> = Vec::new();
        let mut pos = 0;
        let mut cuts = cuts.iter().copied();
        loop {
            if pending.is_empty() {
                if pos == input.len() {
                    break;
                }
                let n = cuts
                    .next()
                    .unwrap_or(usize::MAX)
                    .clamp(1, input.len() - pos);
                pending.extend_from_slice(&input[pos..pos + n]);
                pos += n;
            }
            let step = d.feed(&pending)?;
            body.extend_from_slice(&pending[step.data.clone()]);
            pending.drain(..step.consumed);
            if d.is_done() {
                break;
            }
        }
        Ok((body, d.is_done(), pending.len() + input.len() - pos))
    }

    fn whole(input: &[u8]) -> Result<(Vec<u8>, bool, usize), ChunkError> {
        decode(input, &[])
    }

    #[test]
    fn decodes_chunks_extensions_and_trailers() {
        let input =
            b"5;name=\"v\"\r\nhello\r\nA \t;x\r\n, world!!!\r\n0\r\nEtag: x\r\nA: b\r\n\r\nNEXT";
        let (body, done, rest) = whole(input).expect("valid");
        assert_eq!(body, b"hello, world!!!");
        assert!(done);
        assert_eq!(rest, 4, "bytes after the body are left for the caller");
    }

    #[test]
    fn rejects_malformed_framing() {
        for bad in [
            &b"\r\n"[..],             // no size
            b";ext\r\n",              // no size before an extension
            b"x\r\n",                 // not hex
            b"-1\r\n",                // signed
            b"0x5\r\n",               // prefix
            b"5 5\r\nhello\r\n",      // digits after whitespace
            b"5\nhello\r\n0\r\n\r\n", // bare LF after the size
            b"5\rhello",              // CR without LF
            b"5\r\nhelloX\r\n",       // data longer than its size
            b"5\r\nhello\n0\r\n\r\n", // bare LF after data
            b"5;a\nb\r\nhello\r\n",   // LF inside an extension
            b"0\r\nA: b\n\r\n",       // bare LF ending a trailer
            b"0\r\n\n",               // bare LF ending the body
            b"0\r\n\rX",              // CR not followed by LF at the end
            b"11111111111111111\r\n", // 17 digits
        ] {
            assert!(
                whole(bad).is_err(),
                "{:?} must be rejected",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn sixteen_digit_sizes_are_accepted_and_need_their_bytes() {
        let (body, done, _) = whole(b"ffffffffffffffff\r\nabc").expect("valid so far");
        assert_eq!(body, b"abc");
        assert!(!done);
    }

    #[test]
    fn limits_size_lines_and_trailers() {
        let mut long_ext = b"1;".to_vec();
        long_ext.extend(std::iter::repeat_n(b'a', MAX_SIZE_LINE));
        assert_eq!(
            whole(&long_ext).unwrap_err(),
            ChunkError("chunk size line over limit")
        );
        let mut trailers = b"0\r\n".to_vec();
        for _ in 0..=MAX_TRAILERS / 98 {
            trailers.extend(std::iter::repeat_n(b'a', 98));
            trailers.extend(b"\r\n");
        }
        assert_eq!(
            whole(&trailers).unwrap_err(),
            ChunkError("trailers over limit")
        );
    }

    #[test]
    fn truncated_body_is_not_done() {
        let (body, done, _) = whole(b"5\r\nhel").expect("valid so far");
        assert_eq!(body, b"hel");
        assert!(!done);
        let (_, done, _) = whole(b"0\r\n").expect("valid so far");
        assert!(!done, "the final CRLF is due");
    }

    fn encode(pieces: &[Vec<u8>], ext: bool, trailers: &[String]) -> Vec<u8> {
        let mut out = Vec::new();
        for p in pieces.iter().filter(|p| !p.is_empty()) {
            out.extend(format!("{:x}", p.len()).as_bytes());
            if ext {
                out.extend(b" ; a=\"b c\"");
            }
            out.extend(b"\r\n");
            out.extend(p);
            out.extend(b"\r\n");
        }
        out.extend(b"0\r\n");
        for t in trailers {
            out.extend(format!("x-{t}: {t}\r\n").as_bytes());
        }
        out.extend(b"\r\n");
        out
    }

    proptest! {
        /// Any split of a valid chunked body decodes to the same bytes and ends exactly at
        /// its last byte.
        #[test]
        fn any_split_gives_the_same_body(
            pieces in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 0..8),
            ext in any::<bool>(),
            trailers in prop::collection::vec("[a-z]{1,8}", 0..3),
            cuts in prop::collection::vec(1usize..20, 0..64),
            extra in prop::collection::vec(any::<u8>(), 0..5),
        ) {
            let mut input = encode(&pieces, ext, &trailers);
            let framed = input.len();
            input.extend(&extra);
            let (body, done, rest) = decode(&input, &cuts).expect("valid");
            prop_assert_eq!(body, pieces.concat());
            prop_assert!(done);
            prop_assert_eq!(rest, input.len() - framed);
        }

        /// Arbitrary bytes never panic the decoder, in any split.
        #[test]
        fn arbitrary_input_never_panics(
            input in prop::collection::vec(any::<u8>(), 0..200),
            cuts in prop::collection::vec(1usize..20, 0..64),
        ) {
            let _ = decode(&input, &cuts);
        }
    }
}
