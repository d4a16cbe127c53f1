//! Pure Server-Sent Events framing per the WHATWG rules, as openai-python's `SSEDecoder` reads
//! them: CRLF, LF or CR line ends (a CR at the end of one read and an LF at the start of the
//! next are one line end), `:` comments, `field: value` with one optional space stripped,
//! multi-line `data` joined by `\n`, a blank line dispatches. Unlike the browser algorithm, a
//! pending event is flushed at EOF, because llama-server may end with `data: [DONE]\n` and no
//! blank line (PROTOCOLS.md §2).

/// One parsed item, borrowed from the parser until the callback returns: a stream of events
/// costs no allocation per event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SseItem<'a> {
    /// A dispatched event: its `data` lines joined by `\n`.
    Event(&'a str),
    /// A comment line (`: keep-alive`).
    Comment(&'a str),
    /// A non-standard `error:` field, as llama-server sent before PR #16109.
    ErrorField(&'a str),
}

/// Incremental SSE parser: bytes in, items out.
#[derive(Debug, Default)]
pub struct SseParser {
    line: Vec<u8>,
    /// The pending event's data, reused from event to event; meaningful while `has_data`.
    data: String,
    has_data: bool,
    after_cr: bool,
}

impl SseParser {
    /// Feeds one network read. Lines complete within the read are parsed where they lie; only
    /// a line split across reads is copied.
    pub fn push(&mut self, bytes: &[u8], mut on_item: impl FnMut(SseItem<'_>)) {
        let mut rest = bytes;
        if std::mem::take(&mut self.after_cr) && rest.first() == Some(&b'\n') {
            rest = &rest[1..];
        }
        while let Some(end) = memchr::memchr2(b'\n', b'\r', rest) {
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
        self.line.len() + if self.has_data { self.data.len() } else { 0 }
    }

    /// Ends the stream: a partial last line is processed and a pending event dispatched.
    pub fn finish(&mut self, mut on_item: impl FnMut(SseItem<'_>)) {
        if !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            self.end_line(&line, &mut on_item);
        }
        self.dispatch(&mut on_item);
    }

    fn dispatch(&mut self, on_item: &mut impl FnMut(SseItem<'_>)) {
        if std::mem::take(&mut self.has_data) {
            on_item(SseItem::Event(&self.data));
        }
    }

    fn end_line(&mut self, line: &[u8], on_item: &mut impl FnMut(SseItem<'_>)) {
        // `from_utf8` checks ASCII a word at a time; `from_utf8_lossy` byte by byte, which was
        // 2% of the client's CPU at 1,000 streams. Only a line that is not UTF-8 pays it.
        let line = match std::str::from_utf8(line) {
            Ok(line) => std::borrow::Cow::Borrowed(line),
            Err(_) => String::from_utf8_lossy(line),
        };
        if line.is_empty() {
            self.dispatch(on_item);
            return;
        }
        if let Some(comment) = line.strip_prefix(':') {
            on_item(SseItem::Comment(comment.trim_start()));
            return;
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line.as_ref(), ""),
        };
        match field {
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                } else {
                    self.data.clear();
                    self.has_data = true;
                }
                self.data.push_str(value);
            }
            "error" => on_item(SseItem::ErrorField(value)),
            // `event`, `id`, `retry` and unknown fields carry nothing a completion stream needs.
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The items as `kind:text` strings, since the items themselves borrow from the parser.
    fn items(reads: &[&[u8]]) -> Vec<String> {
        let mut parser = SseParser::default();
        let mut out = Vec::new();
        let mut keep = |item: SseItem<'_>| {
            out.push(match item {
                SseItem::Event(d) => format!("event:{d}"),
                SseItem::Comment(c) => format!("comment:{c}"),
                SseItem::ErrorField(e) => format!("error:{e}"),
            })
        };
        for read in reads {
            parser.push(read, &mut keep);
        }
        parser.finish(&mut keep);
        out
    }

    fn event(data: &str) -> String {
        format!("event:{data}")
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
            vec!["comment:OPENROUTER PROCESSING".to_string(), event("d"), "error:{\"code\":500}".to_string()]
        );
    }

    #[test]
    fn flushes_a_pending_event_and_a_partial_line_at_eof() {
        assert_eq!(items(&[b"data: [DONE]\n"]), vec![event("[DONE]")]);
        assert_eq!(items(&[b"data: [DONE]"]), vec![event("[DONE]")]);
        assert_eq!(items(&[b"\n\n"]), Vec::<String>::new());
    }
}
