//! Pure Server-Sent Events framing per the WHATWG rules, as openai-python's `SSEDecoder` reads
//! them: CRLF, LF or CR line ends (a CR at the end of one read and an LF at the start of the
//! next are one line end), `:` comments, `field: value` with one optional space stripped,
//! multi-line `data` joined by `\n`, a blank line dispatches. Unlike the browser algorithm, a
//! pending event is flushed at EOF, because llama-server may end with `data: [DONE]\n` and no
//! blank line (PROTOCOLS.md §2).

/// One parsed item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SseItem {
    /// A dispatched event: its `data` lines joined by `\n`.
    Event(String),
    /// A comment line (`: keep-alive`).
    Comment(String),
    /// A non-standard `error:` field, as llama-server sent before PR #16109.
    ErrorField(String),
}

/// Incremental SSE parser: bytes in, items out.
#[derive(Debug, Default)]
pub struct SseParser {
    line: Vec<u8>,
    data: Option<String>,
    after_cr: bool,
}

impl SseParser {
    /// Feeds one network read. Lines complete within the read are parsed where they lie; only
    /// a line split across reads is copied.
    pub fn push(&mut self, bytes: &[u8], mut on_item: impl FnMut(SseItem)) {
        let mut rest = bytes;
        if std::mem::take(&mut self.after_cr) && rest.first() == Some(&b'\n') {
            rest = &rest[1..];
        }
        while let Some(end) = rest.iter().position(|&b| b == b'\n' || b == b'\r') {
            if self.line.is_empty() {
                self.end_line(&rest[..end], &mut on_item);
            } else {
                let mut line = std::mem::take(&mut self.line);
                line.extend_from_slice(&rest[..end]);
                self.end_line(&line, &mut on_item);
                line.clear();
                self.line = line;
            }
            let was_cr = rest[end] == b'\r';
            rest = &rest[end + 1..];
            if was_cr {
                match rest.first() {
                    Some(b'\n') => rest = &rest[1..],
                    Some(_) => {}
                    None => self.after_cr = true,
                }
            }
        }
        self.line.extend_from_slice(rest);
    }

    /// Bytes held for a line and an event not yet complete.
    pub fn pending(&self) -> usize {
        self.line.len() + self.data.as_ref().map_or(0, String::len)
    }

    /// Ends the stream: a partial last line is processed and a pending event dispatched.
    pub fn finish(&mut self, mut on_item: impl FnMut(SseItem)) {
        if !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            self.end_line(&line, &mut on_item);
        }
        if let Some(data) = self.data.take() {
            on_item(SseItem::Event(data));
        }
    }

    fn end_line(&mut self, line: &[u8], on_item: &mut impl FnMut(SseItem)) {
        let line = String::from_utf8_lossy(line);
        if line.is_empty() {
            if let Some(data) = self.data.take() {
                on_item(SseItem::Event(data));
            }
            return;
        }
        if let Some(comment) = line.strip_prefix(':') {
            on_item(SseItem::Comment(comment.trim_start().to_string()));
            return;
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line.as_ref(), ""),
        };
        match field {
            "data" => match &mut self.data {
                Some(data) => {
                    data.push('\n');
                    data.push_str(value);
                }
                None => self.data = Some(value.to_string()),
            },
            "error" => on_item(SseItem::ErrorField(value.to_string())),
            // `event`, `id`, `retry` and unknown fields carry nothing a completion stream needs.
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(reads: &[&[u8]]) -> Vec<SseItem> {
        let mut parser = SseParser::default();
        let mut out = Vec::new();
        for read in reads {
            parser.push(read, |i| out.push(i));
        }
        parser.finish(|i| out.push(i));
        out
    }

    fn event(data: &str) -> SseItem {
        SseItem::Event(data.to_string())
    }

    #[test]
    fn every_line_ending_dispatches() {
        let want = vec![event("a"), event("b"), event("c")];
        assert_eq!(items(&[b"data: a\n\ndata: b\r\n\r\ndata: c\r\r"]), want);
        // CR at the end of one read, LF at the start of the next: one line end, not two.
        assert_eq!(
            items(&[b"data: a\r", b"\n\r", b"\ndata: b\n\ndata: c\n\n"]),
            want
        );
    }

    #[test]
    fn the_space_after_the_colon_is_optional_and_multiline_data_joins() {
        assert_eq!(items(&[b"data:{\"a\":1}\n\n"]), vec![event("{\"a\":1}")]);
        assert_eq!(items(&[b"data: x\ndata:  y\n\n"]), vec![event("x\n y")]);
    }

    #[test]
    fn comments_error_fields_and_unknown_fields() {
        assert_eq!(
            items(&[b": OPENROUTER PROCESSING\n\nevent: x\nid: 3\nretry: 5\ndata: d\n\nerror: {\"code\":500}\n"]),
            vec![SseItem::Comment("OPENROUTER PROCESSING".into()), event("d"), SseItem::ErrorField("{\"code\":500}".into())]
        );
    }

    #[test]
    fn flushes_a_pending_event_and_a_partial_line_at_eof() {
        assert_eq!(items(&[b"data: [DONE]\n"]), vec![event("[DONE]")]);
        assert_eq!(items(&[b"data: [DONE]"]), vec![event("[DONE]")]);
        assert_eq!(items(&[b"\n\n"]), vec![]);
    }
}
