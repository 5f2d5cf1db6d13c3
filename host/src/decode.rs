//! The one read loop: a byte stream read as JSON-RPC frames.
//!
//! Owns: turning bytes into frames for a [`FrameSink`] ([`Decoder`]: a
//! [`Framer`], each frame handed over as soon as it is complete, invalid
//! UTF-8 optionally repaired as it arrives ([`Utf8Repair`]), and at the
//! end what is left of a message handed over as garbage), and reading an
//! async stream through it ([`FrameReader`]). Every reader of JSON-RPC in
//! the host goes through it: lightningd's stream on stdin, plugins' stdout
//! (a native child's pipe through [`FrameReader`]; a wasm guest's writes,
//! handed over in-process, through [`Decoder::push`]), answers on
//! `lightning-rpc`, and the dev node's ends of both. Must not: interpret
//! frames (the sink does), decide when to read more (the sink's
//! [`FrameSink::ready`] says), or write anything.

use crate::framing::{Frame, Framer};
use std::future::Future;
use std::ops::ControlFlow;
use tokio::io::{AsyncRead, AsyncReadExt};

/// How much room is made in the buffer when a read finds too little.
const READ_SIZE: usize = 64 * 1024;

/// The least room a read is made with. Not [`READ_SIZE`] every time: the
/// frames taken from the buffer share its allocation (a request's bytes
/// stay in the table of requests in flight), so asking for that much
/// again after each message would allocate a fresh buffer for every read.
const READ_MIN: usize = 4 * 1024;

/// What a [`FrameReader`] hands its frames to.
///
/// A closure `FnMut(Frame) -> ControlFlow<()>` is one that never waits.
pub trait FrameSink {
    /// Waits until the sink can take more frames: called before each read,
    /// so a slow consumer stops the reading instead of piling up frames.
    fn ready(&mut self) -> impl Future<Output = ()> + Send {
        std::future::ready(())
    }

    /// The bytes just read had invalid UTF-8, now replaced with U+FFFD
    /// (only for a reader made with [`FrameReader::repairing_utf8`]).
    /// Called once per read that needed it, before its frames.
    fn repaired_utf8(&mut self) {}

    /// One frame, in stream order. `Break` stops the reading at once:
    /// nothing more is read or handed over, not even what is left.
    fn frame(&mut self, frame: Frame) -> ControlFlow<()>;
}

impl<F: FnMut(Frame) -> ControlFlow<()>> FrameSink for F {
    fn frame(&mut self, frame: Frame) -> ControlFlow<()> {
        self(frame)
    }
}

/// Why a [`FrameReader`] stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The stream ended (or could not be read any more); what was left of
    /// a message went to the sink as garbage.
    Eof,
    /// The sink said `Break`.
    Stopped,
    /// The future given to [`FrameReader::run_until`] completed first;
    /// what was left of a message went to the sink as garbage.
    Until,
}

/// Frames from bytes handed over as they come: what [`FrameReader`] does
/// after each read, for a writer that hands its bytes over itself (a wasm
/// guest's stdout, written in-process).
#[derive(Default)]
pub struct Decoder {
    framer: Framer,
    utf8: Option<Utf8Repair>,
    /// Where the bytes read by [`Decoder::read_from`] and not yet checked
    /// for UTF-8 begin.
    unchecked: Option<usize>,
}

impl Decoder {
    /// A decoder passing the bytes on as they are.
    pub fn new() -> Decoder {
        Decoder::default()
    }

    /// The same, replacing invalid UTF-8 with U+FFFD as it arrives (see
    /// [`Utf8Repair`]): for what plugins write, which lightningd must get
    /// as UTF-8.
    pub fn repairing_utf8() -> Decoder {
        Decoder {
            framer: Framer::of_valid_utf8(),
            utf8: Some(Utf8Repair::default()),
            unchecked: None,
        }
    }

    /// Reads once from `input` straight into the buffer; `Ok(0)` at the
    /// end of the stream. Hand the frames over with [`Decoder::frames`].
    /// Cancel-safe: a read that did not complete read nothing, so a
    /// reader may wait for it beside other things (the host's loop does).
    pub async fn read_from<R: AsyncRead + Unpin>(
        &mut self,
        input: &mut R,
    ) -> std::io::Result<usize> {
        if self.unchecked.is_none() {
            self.unchecked = self.mark();
        }
        let buf = self.framer.buffer();
        if buf.capacity() - buf.len() < READ_MIN {
            buf.reserve(READ_SIZE);
        }
        input.read_buf(buf).await
    }

    /// Hands `sink` every frame the bytes read so far complete. `Break`
    /// from the sink stops at once; frames not handed over yet stay
    /// buffered.
    pub fn frames(&mut self, sink: &mut impl FrameSink) -> ControlFlow<()> {
        let from = self.unchecked.take();
        self.decoded(from, sink)
    }

    /// Takes `bytes` and hands `sink` every frame they complete.
    /// `Break` from the sink stops at once; frames not handed over yet stay
    /// buffered.
    pub fn push(&mut self, bytes: &[u8], sink: &mut impl FrameSink) -> ControlFlow<()> {
        let from = self.mark();
        self.framer.push(bytes);
        self.decoded(from, sink)
    }

    /// Before bytes are added to the buffer: where the ones to check for
    /// UTF-8 will begin (see [`Utf8Repair::mark`]).
    fn mark(&mut self) -> Option<usize> {
        self.utf8.as_mut().map(|u| u.mark(&self.framer))
    }

    /// After bytes were added to the buffer (from `from`): repairs them and
    /// hands over the frames they complete.
    fn decoded(&mut self, from: Option<usize>, sink: &mut impl FrameSink) -> ControlFlow<()> {
        if let (Some(utf8), Some(from)) = (self.utf8.as_mut(), from) {
            if utf8.check(&mut self.framer, from) {
                sink.repaired_utf8();
            }
        }
        while let Some(frame) = self.framer.next_frame() {
            sink.frame(frame)?;
        }
        ControlFlow::Continue(())
    }

    /// At the end of the stream: hands over what is left of a message as
    /// garbage (nothing if only whitespace is left).
    pub fn finish(&mut self, sink: &mut impl FrameSink) {
        if let Some(rest) = self.framer.finish() {
            let _ = sink.frame(rest);
        }
    }
}

/// Reads a stream to its end as frames. See the module's documentation.
pub struct FrameReader<R> {
    input: R,
    decoder: Decoder,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// A reader of `input`, passing its bytes on as they are.
    pub fn new(input: R) -> FrameReader<R> {
        FrameReader {
            input,
            decoder: Decoder::new(),
        }
    }

    /// The same, replacing invalid UTF-8 with U+FFFD as it arrives (see
    /// [`Utf8Repair`]): for what plugins write, which lightningd must get
    /// as UTF-8.
    pub fn repairing_utf8(mut self) -> FrameReader<R> {
        self.decoder = Decoder::repairing_utf8();
        self
    }

    /// Reads until the stream ends or `sink` says `Break`.
    pub async fn run(self, sink: &mut impl FrameSink) -> Ended {
        self.run_until(sink, std::future::pending()).await
    }

    /// Like [`FrameReader::run`], but also stops when `until` completes
    /// (it is polled only while a read is waiting, not while the sink is
    /// getting ready): a reader that must not wait for an end of stream
    /// that may never come.
    pub async fn run_until(
        mut self,
        sink: &mut impl FrameSink,
        until: impl Future<Output = ()>,
    ) -> Ended {
        let mut until = std::pin::pin!(until);
        let d = &mut self.decoder;
        let ended = loop {
            sink.ready().await;
            // When `until` wins, no byte read is lost (see `read_from`).
            let read = tokio::select! {
                n = d.read_from(&mut self.input) => n,
                () = &mut until => break Ended::Until,
            };
            match read {
                Ok(0) | Err(_) => break Ended::Eof,
                Ok(_) => {}
            }
            if d.frames(sink).is_break() {
                return Ended::Stopped;
            }
        };
        d.finish(sink);
        ended
    }
}

/// Replaces invalid UTF-8 in a stream with U+FFFD as it arrives.
/// lightningd only speaks UTF-8 JSON and the framer refuses anything else:
/// without this, an answer with one bad byte in a string would be dropped
/// as garbage, and its caller would wait forever.
#[derive(Default)]
pub struct Utf8Repair {
    /// Bytes at the end of the buffer that may begin a character the next
    /// read completes.
    carry: usize,
}

impl Utf8Repair {
    /// Before a read: where the bytes to check will begin.
    pub fn mark(&mut self, framer: &Framer) -> usize {
        // Frames taken since may have consumed part of the carry.
        self.carry = self.carry.min(framer.pending());
        framer.pending() - self.carry
    }

    /// After a read: checks the buffer from `from`, repairing it in place
    /// (U+FFFD is never shorter than what it replaces, and neither is
    /// ASCII, so the framer's scan position stays valid). Returns whether
    /// anything was replaced.
    pub fn check(&mut self, framer: &mut Framer, from: usize) -> bool {
        let buf = framer.buffer();
        let Some(tail) = buf.get(from..) else {
            return false;
        };
        let mut rest = tail;
        let mut fixed = Vec::new();
        let mut replaced = false;
        loop {
            match std::str::from_utf8(rest) {
                Ok(_) => {
                    self.carry = 0;
                    break;
                }
                Err(e) => {
                    let (good, bad) = rest.split_at(e.valid_up_to());
                    match e.error_len() {
                        Some(n) => {
                            fixed.extend_from_slice(good);
                            fixed.extend_from_slice("\u{fffd}".as_bytes());
                            rest = &bad[n..];
                            replaced = true;
                        }
                        None => {
                            self.carry = bad.len();
                            break;
                        }
                    }
                }
            }
        }
        if !replaced {
            return false;
        }
        fixed.extend_from_slice(rest);
        buf.truncate(from);
        buf.extend_from_slice(&fixed);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framing::Kind;
    use tokio::io::AsyncWriteExt;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    }

    /// Every frame, and how the reading ended, for `bytes` written in
    /// `chunk`-sized pieces.
    fn read_all(bytes: &[u8], chunk: usize, utf8: bool) -> (Vec<Frame>, Ended, usize) {
        runtime().block_on(async {
            let (mut w, r) = tokio::io::duplex(16);
            let data = bytes.to_vec();
            let writer = tokio::spawn(async move {
                for c in data.chunks(chunk) {
                    let _ = w.write_all(c).await;
                }
            });
            let mut reader = FrameReader::new(r);
            if utf8 {
                reader = reader.repairing_utf8();
            }
            struct Collect(Vec<Frame>, usize);
            impl FrameSink for Collect {
                fn repaired_utf8(&mut self) {
                    self.1 += 1;
                }
                fn frame(&mut self, frame: Frame) -> ControlFlow<()> {
                    self.0.push(frame);
                    ControlFlow::Continue(())
                }
            }
            let mut sink = Collect(vec![], 0);
            let ended = reader.run(&mut sink).await;
            let _ = writer.await;
            (sink.0, ended, sink.1)
        })
    }

    #[test]
    fn frames_then_the_truncated_rest_as_garbage_at_eof() {
        let stream =
            b"{\"jsonrpc\":\"2.0\",\"method\":\"a\"}\n\nprint\n{\"jsonrpc\":\"2.0\",\"id\":1,\"res";
        let (frames, ended, _) = read_all(stream, 5, false);
        assert_eq!(ended, Ended::Eof);
        // The stray line may come in pieces, as the reads split it.
        assert!(
            matches!(&frames[..], [Frame::Message(m), stray @ .., Frame::Garbage { reason, .. }]
                if m.kind == Kind::Notification { method: "a".into() }
                    && !stray.is_empty()
                    && stray.iter().all(|f| matches!(f, Frame::Garbage { .. }))
                    && reason.contains("middle")),
            "{frames:?}"
        );
    }

    #[test]
    fn invalid_utf8_split_across_reads_is_repaired_once_per_read() {
        // `é`, then a lone continuation byte: invalid wherever the reads
        // split it, while `é` split in two is not.
        let stream = b"{\"jsonrpc\":\"2.0\",\"method\":\"\xc3\xa9\x80\"}";
        let (frames, ended, repaired) = read_all(stream, 3, true);
        assert_eq!(ended, Ended::Eof);
        assert_eq!(repaired, 1);
        match &frames[..] {
            [Frame::Message(m)] => assert!(std::str::from_utf8(&m.raw)
                .expect("repaired")
                .contains("é\u{fffd}")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn break_stops_at_once_and_until_ends_a_stream_that_stays_open() {
        runtime().block_on(async {
            let (mut w, r) = tokio::io::duplex(1024);
            let two =
                b"{\"jsonrpc\":\"2.0\",\"method\":\"a\"}{\"jsonrpc\":\"2.0\",\"method\":\"b\"}";
            w.write_all(two).await.expect("write");
            let mut seen = 0;
            let ended = FrameReader::new(r)
                .run(&mut |_| {
                    seen += 1;
                    ControlFlow::Break(())
                })
                .await;
            assert_eq!((ended, seen), (Ended::Stopped, 1));

            // The writer stays open: only `until` ends the reading, and the
            // half message read so far is handed over.
            let (mut w, r) = tokio::io::duplex(1024);
            w.write_all(b"{\"jsonrpc\":\"2.0\",\"method\":\"a\"}{\"jsonrpc\"")
                .await
                .expect("write");
            let mut frames = vec![];
            let ended = FrameReader::new(r)
                .run_until(
                    &mut |f| {
                        frames.push(f);
                        ControlFlow::Continue(())
                    },
                    tokio::time::sleep(std::time::Duration::from_millis(50)),
                )
                .await;
            assert_eq!(ended, Ended::Until);
            assert!(
                matches!(&frames[..], [Frame::Message(_), Frame::Garbage { .. }]),
                "{frames:?}"
            );
            drop(w);
        });
    }
}
