//! Server-sent events from upstreams, parsed in one pass: every byte is
//! looked at once whatever the chunking (a general-purpose parser that
//! rescans its buffer per chunk goes quadratic on a long line sent in small
//! pieces), and one event may hold at most `MAX_EVENT` bytes, so an
//! upstream cannot make the gateway buffer without bound.
//!
//! Only what an OpenAI or TGI stream carries matters here: `data:` lines
//! (several are joined with `\n`), dispatched at a blank line. `event:`,
//! `id:`, `retry:` and comments are skipped. Lines end with `\n`, `\r\n`
//! or `\r`.

/// The largest event accepted from an upstream (OpenAI-style chunks are a
/// few hundred bytes).
pub const MAX_EVENT: usize = 1 << 20;

#[derive(Debug, PartialEq, Eq)]
pub enum SseError {
    TooLarge,
    NotUtf8,
}

#[derive(Default)]
pub struct Parser {
    line: Vec<u8>,
    data: Vec<u8>,
    has_data: bool,
    /// Bytes of the event being read (its lines and terminators).
    event_bytes: usize,
    /// The last byte seen was `\r`: a `\n` right after it ends no new line.
    after_cr: bool,
    /// Past the optional leading byte-order mark.
    started: bool,
    /// Bytes of a leading byte-order mark read so far (it may arrive split
    /// across chunks).
    bom_len: usize,
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

impl Parser {
    /// Feeds one chunk; complete events' data go to `out`.
    pub fn push(&mut self, mut chunk: &[u8], out: &mut Vec<String>) -> Result<(), SseError> {
        while !self.started {
            let Some((&b, rest)) = chunk.split_first() else {
                return Ok(());
            };
            if b == BOM[self.bom_len] {
                chunk = rest;
                self.bom_len += 1;
                self.started = self.bom_len == BOM.len();
            } else {
                // Not a byte-order mark after all: what looked like its
                // start is data.
                self.started = true;
                let partial = std::mem::take(&mut self.bom_len);
                self.feed(&BOM[..partial], out)?;
            }
        }
        self.feed(chunk, out)
    }

    fn feed(&mut self, chunk: &[u8], out: &mut Vec<String>) -> Result<(), SseError> {
        for &b in chunk {
            if self.after_cr {
                self.after_cr = false;
                if b == b'\n' {
                    continue;
                }
            }
            self.event_bytes += 1;
            match b {
                b'\n' | b'\r' => {
                    self.after_cr = b == b'\r';
                    self.end_line(out)?;
                }
                _ => self.line.push(b),
            }
            if self.event_bytes > MAX_EVENT {
                return Err(SseError::TooLarge);
            }
        }
        Ok(())
    }

    fn end_line(&mut self, out: &mut Vec<String>) -> Result<(), SseError> {
        if self.line.is_empty() {
            if self.has_data {
                let mut data = std::mem::take(&mut self.data);
                data.pop(); // the '\n' after the last data line
                out.push(String::from_utf8(data).map_err(|_| SseError::NotUtf8)?);
            }
            self.has_data = false;
            self.event_bytes = 0;
            return Ok(());
        }
        let line = std::mem::take(&mut self.line);
        let (field, value) = match line.iter().position(|&c| c == b':') {
            Some(i) => (&line[..i], &line[i + 1..]),
            None => (&line[..], &[][..]),
        };
        if field == b"data" {
            let value = value.strip_prefix(b" ").unwrap_or(value);
            self.data.extend_from_slice(value);
            self.data.push(b'\n');
            self.has_data = true;
        }
        // Reuse the allocation for the next line.
        self.line = line;
        self.line.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse_in(chunks: &[&[u8]]) -> Result<Vec<String>, SseError> {
        let mut p = Parser::default();
        let mut out = Vec::new();
        for c in chunks {
            p.push(c, &mut out)?;
        }
        Ok(out)
    }

    #[test]
    fn events_read_the_same_however_they_are_chunked() {
        let text = "\u{feff}: comment\nevent: x\ndata: {\"a\":1}\n\ndata:b\r\ndata:  c\r\n\r\nid: 7\rdata: é\r\r";
        let whole = parse_in(&[text.as_bytes()]).unwrap();
        assert_eq!(whole, ["{\"a\":1}", "b\n c", "é"]);
        let bytes = text.as_bytes();
        let single: Vec<&[u8]> = bytes.chunks(1).collect();
        assert_eq!(parse_in(&single).unwrap(), whole);
        for split in 0..bytes.len() {
            let (a, b) = bytes.split_at(split);
            assert_eq!(parse_in(&[a, b]).unwrap(), whole, "split at {split}");
        }
    }

    #[test]
    fn an_event_over_the_limit_is_refused_while_it_arrives() {
        let mut p = Parser::default();
        let mut out = Vec::new();
        let line = vec![b'x'; 64 * 1024];
        p.push(b"data: ", &mut out).unwrap();
        let mut refused = false;
        for _ in 0..(MAX_EVENT / line.len() + 2) {
            if p.push(&line, &mut out) == Err(SseError::TooLarge) {
                refused = true;
                break;
            }
        }
        assert!(refused);
        // Many small data lines without a blank line count too.
        let mut p = Parser::default();
        let many = b"data: 0123456789\n".repeat(MAX_EVENT / 17 + 1);
        assert_eq!(p.push(&many, &mut out), Err(SseError::TooLarge));
        // Events below the limit, however many, are fine.
        let mut p = Parser::default();
        let ok = b"data: 0123456789\n\n".repeat(200_000);
        p.push(&ok, &mut out).unwrap();
        assert_eq!(out.len(), 200_000);
    }

    #[test]
    fn invalid_utf8_in_data_is_an_error() {
        assert_eq!(parse_in(&[b"data: \xff\n\n"]), Err(SseError::NotUtf8));
    }

    /// An independent reading of the same subset of the SSE format, written
    /// for clarity rather than speed: split into complete lines, then fold.
    fn oracle(mut bytes: &[u8]) -> Result<Vec<String>, SseError> {
        bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
        let mut lines = Vec::new();
        let mut start = 0;
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'\n' || bytes[i] == b'\r' {
                lines.push(&bytes[start..i]);
                if bytes[i] == b'\r' && bytes.get(i + 1) == Some(&b'\n') {
                    i += 1;
                }
                start = i + 1;
            }
            i += 1;
        }
        let (mut out, mut data, mut has_data) = (Vec::new(), Vec::<u8>::new(), false);
        for line in lines {
            if line.is_empty() {
                if has_data {
                    data.pop();
                    out.push(
                        String::from_utf8(std::mem::take(&mut data))
                            .map_err(|_| SseError::NotUtf8)?,
                    );
                }
                has_data = false;
                continue;
            }
            let (field, value) = match line.iter().position(|&c| c == b':') {
                Some(i) => (&line[..i], &line[i + 1..]),
                None => (line, &[][..]),
            };
            if field == b"data" {
                data.extend_from_slice(value.strip_prefix(b" ").unwrap_or(value));
                data.push(b'\n');
                has_data = true;
            }
        }
        Ok(out)
    }

    /// Streams made of the pieces an upstream sends, in any order: field
    /// names, separators, every line ending, a BOM, non-ASCII and invalid
    /// UTF-8.
    fn sse_bytes() -> impl Strategy<Value = Vec<u8>> {
        let piece = prop_oneof![
            Just(b"data".to_vec()),
            Just(b"data: ".to_vec()),
            Just(b"event: x".to_vec()),
            Just(b": comment".to_vec()),
            Just(b"id: 1".to_vec()),
            Just(b":".to_vec()),
            Just(b"\n".to_vec()),
            Just(b"\r".to_vec()),
            Just(b"\r\n".to_vec()),
            Just(b"\n\n".to_vec()),
            Just(b"\xEF\xBB\xBF".to_vec()),
            Just("é€😀".as_bytes().to_vec()),
            Just(b"\xff".to_vec()),
            "[ -~]{0,12}".prop_map(String::into_bytes),
            proptest::collection::vec(any::<u8>(), 0..6),
        ];
        proptest::collection::vec(piece, 0..40).prop_map(|v| v.concat())
    }

    proptest! {
        #![proptest_config(crate::fuzz_config())]

        /// Any stream, cut anywhere into any number of chunks, reads as the
        /// oracle reads it whole; nothing panics.
        #[test]
        fn any_stream_any_chunking_reads_as_the_oracle(
            bytes in sse_bytes(),
            cuts in proptest::collection::vec(any::<proptest::sample::Index>(), 0..8),
        ) {
            let mut points: Vec<usize> = cuts.iter().map(|c| c.index(bytes.len() + 1)).collect();
            points.sort_unstable();
            let mut chunks = Vec::new();
            let mut from = 0;
            for p in points {
                chunks.push(&bytes[from..p]);
                from = p;
            }
            chunks.push(&bytes[from..]);
            prop_assert_eq!(parse_in(&chunks), oracle(&bytes));
        }

        /// Arbitrary bytes never panic the parser.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = parse_in(&[&bytes]);
        }
    }
}
