//! Splitting a byte stream into JSON values, the way lightningd reads its
//! plugins' stdout and its RPC clients: a stream of JSON objects, any
//! whitespace between them, no separator required, no size limit.
//!
//! A cheap incremental scanner (string- and nesting-aware) finds where a
//! top-level object ends, so a 10 MB message that arrives in many reads is
//! scanned once; serde_json then validates the complete object.

use serde_json::value::RawValue;

/// Tail sizes up to which an incomplete value is test-parsed after every read,
/// so that garbage inside a never-closing object is noticed early.
const EARLY_CHECK_MAX: usize = 256 * 1024;
/// How much of the offending buffer a parse error quotes.
const GARBAGE_SHOW_MAX: usize = 1 << 20;

#[derive(Debug, PartialEq, Eq)]
pub enum FrameError {
    /// Not JSON (or invalid UTF-8); carries the unconsumed buffer, made printable.
    Garbage(String),
    /// Valid JSON, but not an object; carries the buffer, made printable.
    NotObject(String),
}

pub struct Framer {
    buf: Vec<u8>,
    /// Start of the unconsumed bytes (including whitespace before a value).
    start: usize,
    /// Next byte to scan.
    scan: usize,
    /// Where the object being scanned begins.
    vstart: Option<usize>,
    depth: usize,
    in_str: bool,
    esc: bool,
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

impl Framer {
    pub fn new() -> Self {
        Framer {
            buf: Vec::new(),
            start: 0,
            scan: 0,
            vstart: None,
            depth: 0,
            in_str: false,
            esc: false,
        }
    }

    /// Append bytes that were read.
    pub fn push(&mut self, data: &[u8]) {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.scan -= self.start;
            if let Some(v) = self.vstart.as_mut() {
                *v -= self.start;
            }
            self.start = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// The next complete JSON object, if the buffer holds one.
    pub fn next_message(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        let vstart = match self.vstart {
            Some(v) => v,
            None => {
                while self.scan < self.buf.len() && is_ws(self.buf[self.scan]) {
                    self.scan += 1;
                }
                if self.scan >= self.buf.len() {
                    return Ok(None);
                }
                if self.buf[self.scan] != b'{' {
                    return self.non_object();
                }
                self.vstart = Some(self.scan);
                self.depth = 0;
                self.in_str = false;
                self.esc = false;
                self.scan
            }
        };
        let len = self.buf.len();
        let mut complete = None;
        while self.scan < len {
            let b = self.buf[self.scan];
            self.scan += 1;
            if self.in_str {
                if self.esc {
                    self.esc = false;
                } else if b == b'\\' {
                    self.esc = true;
                } else if b == b'"' {
                    self.in_str = false;
                }
                continue;
            }
            match b {
                b'"' => self.in_str = true,
                b'{' | b'[' => self.depth += 1,
                b'}' | b']' => {
                    self.depth = self.depth.saturating_sub(1);
                    if self.depth == 0 {
                        complete = Some(self.scan);
                        break;
                    }
                }
                _ => {}
            }
        }
        match complete {
            Some(end) => {
                let seg = &self.buf[vstart..end];
                if std::str::from_utf8(seg).is_err()
                    || serde_json::from_slice::<&RawValue>(seg).is_err()
                {
                    return Err(self.garbage());
                }
                let msg = seg.to_vec();
                self.start = end;
                self.vstart = None;
                Ok(Some(msg))
            }
            None => {
                let tail = &self.buf[vstart..];
                if tail.len() <= EARLY_CHECK_MAX {
                    if let Err(e) = serde_json::from_slice::<&RawValue>(tail) {
                        if !e.is_eof() {
                            return Err(self.garbage());
                        }
                    }
                }
                Ok(None)
            }
        }
    }

    fn non_object(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        let tail = &self.buf[self.scan..];
        let mut it = serde_json::Deserializer::from_slice(tail).into_iter::<&RawValue>();
        match it.next() {
            Some(Ok(_)) => Err(FrameError::NotObject(printable(&self.buf[self.start..]))),
            Some(Err(e)) if e.is_eof() => Ok(None),
            Some(Err(_)) => Err(self.garbage()),
            None => Ok(None),
        }
    }

    fn garbage(&self) -> FrameError {
        FrameError::Garbage(printable(&self.buf[self.start..]))
    }
}

/// Bytes as lightningd's log shows them: non-printables become '?'.
pub fn printable(s: &[u8]) -> String {
    s.iter()
        .take(GARBAGE_SHOW_MAX)
        .map(|&b| {
            if (0x20..0x7f).contains(&b) {
                b as char
            } else {
                '?'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(f: &mut Framer) -> Result<Vec<String>, FrameError> {
        let mut v = Vec::new();
        while let Some(m) = f.next_message()? {
            v.push(String::from_utf8_lossy(&m).into_owned());
        }
        Ok(v)
    }

    #[test]
    fn split_and_joined() {
        let mut f = Framer::new();
        f.push(b"{\"a\":\"}\\\"{\"}\n\n{\"b\":");
        assert_eq!(all(&mut f), Ok(vec!["{\"a\":\"}\\\"{\"}".to_string()]));
        f.push(b"[1,{}]}  {\"c\":1}");
        assert_eq!(
            all(&mut f),
            Ok(vec!["{\"b\":[1,{}]}".to_string(), "{\"c\":1}".to_string()])
        );
        f.push(b"\n\n");
        assert_eq!(all(&mut f), Ok(vec![]));
    }

    #[test]
    fn garbage() {
        let mut f = Framer::new();
        f.push(b"\n\nhello\n{\"a\":1}");
        assert_eq!(
            all(&mut f),
            Err(FrameError::Garbage("??hello?{\"a\":1}".into()))
        );
        let mut f = Framer::new();
        f.push(b"[1,2]");
        assert_eq!(all(&mut f), Err(FrameError::NotObject("[1,2]".into())));
        let mut f = Framer::new();
        f.push(b"{\"a\":\xff}");
        assert!(matches!(all(&mut f), Err(FrameError::Garbage(_))));
        let mut f = Framer::new();
        f.push(b"{\"a\": nope");
        assert!(matches!(all(&mut f), Err(FrameError::Garbage(_))));
    }

    #[test]
    fn big_message_in_pieces() {
        let big = format!("{{\"x\":\"{}\"}}", "y".repeat(11 << 20));
        let mut f = Framer::new();
        let mut got = Vec::new();
        for c in big.as_bytes().chunks(65536) {
            f.push(c);
            got.extend(all(&mut f).unwrap_or_default());
        }
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].len(), big.len());
    }
}
