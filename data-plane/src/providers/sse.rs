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
    started: bool,
}

impl Parser {
    /// Feeds one chunk; complete events' data go to `out`.
    pub fn push(&mut self, mut chunk: &[u8], out: &mut Vec<String>) -> Result<(), SseError> {
        if !self.started && !chunk.is_empty() {
            self.started = true;
            chunk = chunk.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(chunk);
        }
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
}
