//! Pure NDJSON framing: bytes as they arrive -> complete lines, keeping a partial line between
//! reads. Lines are split on bytes before any UTF-8 decoding, so a multi-byte character split
//! across two reads is decoded whole.

/// Accumulates bytes and yields complete lines (without the `\n` and any `\r`).
#[derive(Debug, Default)]
pub struct LineSplitter {
    partial: Vec<u8>,
}

impl LineSplitter {
    /// Feeds one network read; calls `on_line` for every line it completes.
    pub fn push(&mut self, mut bytes: &[u8], mut on_line: impl FnMut(&[u8])) {
        while let Some(end) = memchr::memchr(b'\n', bytes) {
            if self.partial.is_empty() {
                on_line(trim_cr(&bytes[..end]));
            } else {
                self.partial.extend_from_slice(&bytes[..end]);
                on_line(trim_cr(&self.partial));
                self.partial.clear();
            }
            bytes = &bytes[end + 1..];
        }
        self.partial.extend_from_slice(bytes);
    }

    /// Bytes held for a line not yet complete.
    pub fn pending(&self) -> usize {
        self.partial.len()
    }

    /// The last line if the stream ended without a newline (as a non-streaming response does).
    pub fn finish(&mut self) -> Option<Vec<u8>> {
        let rest = std::mem::take(&mut self.partial);
        (!rest.iter().all(u8::is_ascii_whitespace)).then_some(rest)
    }
}

fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines_of(reads: &[&[u8]]) -> Vec<Vec<u8>> {
        let mut splitter = LineSplitter::default();
        let mut out = Vec::new();
        for read in reads {
            splitter.push(read, |line| out.push(line.to_vec()));
        }
        out.extend(splitter.finish());
        out
    }

    #[test]
    fn joins_lines_split_across_reads() {
        assert_eq!(
            lines_of(&[b"{\"a\":", b"1}\n{\"b\"", b":2}\n"]),
            vec![b"{\"a\":1}".to_vec(), b"{\"b\":2}".to_vec()]
        );
    }

    #[test]
    fn keeps_multibyte_characters_split_across_reads() {
        let text = "{\"r\":\"é\"}\n".as_bytes();
        let (a, b) = text.split_at(7); // inside the two bytes of é
        let lines = lines_of(&[a, b]);
        assert_eq!(std::str::from_utf8(&lines[0]).unwrap(), "{\"r\":\"é\"}");
    }

    #[test]
    fn flushes_a_final_line_without_newline_and_strips_cr() {
        assert_eq!(lines_of(&[b"a\r\nb"]), vec![b"a".to_vec(), b"b".to_vec()]);
        assert_eq!(lines_of(&[b"a\n  \n"]), vec![b"a".to_vec(), b"  ".to_vec()]);
        assert!(lines_of(&[b"a\n \r"])[1..].is_empty());
    }
}
