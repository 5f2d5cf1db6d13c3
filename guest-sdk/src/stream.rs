//! lightningd's messages, split out of the byte stream on stdin.
//!
//! Owns: reading stdin in large chunks and finding where each JSON text
//! ends, so that each is parsed once, from a slice. Must not: interpret
//! the texts (the main loop does).
//!
//! serde_json's stream deserializer over a reader would do the splitting,
//! but it reads one byte at a time through `Read` and copies each into a
//! growing buffer: that was most of a plugin's work per call, and more so
//! in WebAssembly, where every instruction counts several times.

use std::io::{self, Read};

use serde::de::IgnoredAny;

/// How much room a read is given at least.
const READ_SIZE: usize = 64 * 1024;

/// The JSON texts of a stream, in order.
pub(crate) struct Texts<R> {
    input: R,
    /// Bytes read; `buf[start..end]` are not handed out yet.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    scan: Scan,
}

/// Where the object or array starting the unread bytes ends, found
/// incrementally: nesting depth and string state over what was seen.
#[derive(Default)]
struct Scan {
    /// Bytes scanned (from the start of the text).
    pos: usize,
    depth: u32,
    in_string: bool,
    escaped: bool,
}

impl Scan {
    /// Scans on; the text's length once its closing bracket is seen.
    fn advance(&mut self, text: &[u8]) -> Option<usize> {
        while let Some(&b) = text.get(self.pos) {
            self.pos += 1;
            if self.in_string {
                match (self.escaped, b) {
                    (true, _) => self.escaped = false,
                    (false, b'\\') => self.escaped = true,
                    (false, b'"') => self.in_string = false,
                    _ => {}
                }
                continue;
            }
            match b {
                b'"' => self.in_string = true,
                b'{' | b'[' => self.depth += 1,
                b'}' | b']' => {
                    self.depth = self.depth.saturating_sub(1);
                    if self.depth == 0 {
                        return Some(self.pos);
                    }
                }
                _ => {}
            }
        }
        None
    }
}

impl<R: Read> Texts<R> {
    pub(crate) fn new(input: R) -> Texts<R> {
        Texts {
            input,
            buf: Vec::new(),
            start: 0,
            end: 0,
            scan: Scan::default(),
        }
    }

    /// The next whole JSON text, or `None` at the end of the stream (a
    /// text cut off by it is dropped: lightningd is gone). An object or
    /// array is found by its brackets and checked by whoever parses it;
    /// anything else by serde, and if that is not JSON either, the stream
    /// is not a JSON stream: an error.
    pub(crate) fn next_text(&mut self) -> io::Result<Option<&[u8]>> {
        loop {
            let unread = &self.buf[self.start..self.end];
            let skip = unread
                .iter()
                .position(|b| !b.is_ascii_whitespace())
                .unwrap_or(unread.len());
            self.start += skip;
            let unread = &self.buf[self.start..self.end];
            let found = match unread.first() {
                None => None,
                Some(b'{' | b'[') => self.scan.advance(unread),
                Some(_) => {
                    let mut values =
                        serde_json::Deserializer::from_slice(unread).into_iter::<IgnoredAny>();
                    match values.next() {
                        // A number at the end of what was read may go on.
                        Some(Ok(_)) if values.byte_offset() < unread.len() => {
                            Some(values.byte_offset())
                        }
                        Some(Ok(_)) => None,
                        Some(Err(e)) if e.is_eof() => None,
                        Some(Err(e)) => return Err(e.into()),
                        None => None,
                    }
                }
            };
            if let Some(len) = found {
                let text = self.start..self.start + len;
                self.start += len;
                self.scan = Scan::default();
                return Ok(Some(&self.buf[text]));
            }
            if !self.fill()? {
                return Ok(None);
            }
        }
    }

    /// Reads more; false at the end of the stream.
    fn fill(&mut self) -> io::Result<bool> {
        // What is left of a text goes to the front; the scan's position
        // is relative to the text, so it stays valid.
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.buf.len() - self.end < READ_SIZE / 4 {
            let len = (self.buf.len() * 2).max(READ_SIZE);
            self.buf.resize(len, 0);
        }
        loop {
            match self.input.read(&mut self.buf[self.end..]) {
                Ok(0) => return Ok(false),
                Ok(n) => {
                    self.end += n;
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads one byte at a time, to cut texts everywhere.
    struct Trickle<'a>(&'a [u8]);
    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let Some((&b, rest)) = self.0.split_first() else {
                return Ok(0);
            };
            buf[0] = b;
            self.0 = rest;
            Ok(1)
        }
    }

    fn all(input: &[u8], trickle: bool) -> io::Result<Vec<String>> {
        let mut texts: Texts<Box<dyn Read>> = Texts::new(if trickle {
            Box::new(Trickle(input))
        } else {
            Box::new(input)
        });
        let mut out = Vec::new();
        while let Some(t) = texts.next_text()? {
            out.push(String::from_utf8_lossy(t).into_owned());
        }
        Ok(out)
    }

    #[test]
    fn texts_with_and_without_separators_whole_or_trickled() {
        let input = br#"{"a":"}\"{"} [1,[2]]

"str" 12 {"b":{}}{"c":"\\"}  {"cut":"#;
        for trickle in [false, true] {
            assert_eq!(
                all(input, trickle).expect("a JSON stream"),
                [
                    r#"{"a":"}\"{"}"#,
                    "[1,[2]]",
                    r#""str""#,
                    "12",
                    r#"{"b":{}}"#,
                    r#"{"c":"\\"}"#
                ]
            );
        }
    }

    #[test]
    fn not_json_is_an_error() {
        assert!(all(b"{\"id\":1}hello", false).is_err());
    }

    #[test]
    fn a_text_larger_than_a_read() {
        let big = format!("{{\"x\":\"{}\"}}", "y".repeat(3 * READ_SIZE));
        let input = format!("{big}\n\n{{}}");
        assert_eq!(
            all(input.as_bytes(), false).expect("a JSON stream"),
            [big, "{}".to_string()]
        );
    }
}
