//! Whole messages into a pipe, written by whoever sends them.
//!
//! Owns: one pipe the host writes JSON-RPC messages to (its stdout to
//! lightningd, a native plugin's stdin), each message followed by
//! lightningd's `"\n\n"`, in the order sent, never interleaved. A message
//! is written straight into the pipe by [`Outbox::send`], from the host's
//! loop, when the pipe has room: no task, no channel, no wake-up between
//! the decision to send and the `write`. Only when the pipe is full (the
//! reader is slow), or before the runtime has first seen a new pipe
//! writable (a new child's first message), is the rest queued, and a task
//! writes the queue as the pipe drains, for as long as there is one. Must
//! not: look into the messages, or wait: `send` never blocks.
//!
//! The pipe closes when the last [`Outbox`] is dropped and the queue is
//! written (or the reader is gone): that is the reader's end of file.

use bytes::Bytes;
// What follows every message, as lightningd writes them.
use cln_protocol::MESSAGE_SEPARATOR as SEPARATOR;
use std::collections::VecDeque;
use std::io::{ErrorKind, IoSlice};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::net::unix::pipe;

/// How many queued messages one `writev` takes at most.
const BATCH: usize = 64;

/// The writing end of a pipe, for whole messages. Cheap to clone: clones
/// write to the same pipe, in the order their sends happen.
#[derive(Clone)]
pub struct Outbox {
    shared: Arc<Shared>,
}

struct Shared {
    pipe: pipe::Sender,
    // A lock rather than a channel: whoever sends writes, in order, and
    // only the rare full pipe needs a task. Never held across an await.
    state: Mutex<State>,
    // The runtime to start the writing task on: a send may come from
    // any task, but never needs to be inside one.
    runtime: tokio::runtime::Handle,
}

#[derive(Default)]
struct State {
    /// Messages not (wholly) written yet, oldest first.
    queue: VecDeque<Bytes>,
    /// Bytes of the first queued message (and its separator) written.
    written: usize,
    /// A task is writing the queue as the pipe drains.
    flushing: bool,
    /// The reader is gone: nothing more is written.
    closed: bool,
}

impl Outbox {
    /// An outbox writing into `pipe`; must be made inside the runtime.
    pub fn new(pipe: pipe::Sender) -> Outbox {
        Outbox {
            shared: Arc::new(Shared {
                pipe,
                state: Mutex::new(State::default()),
                runtime: tokio::runtime::Handle::current(),
            }),
        }
    }

    /// Writes one message (the separator is added), now if the pipe has
    /// room, else as soon as it has. Once the reader is gone, messages are
    /// dropped: whoever waits for an answer learns of it by the reader's
    /// exit, not here.
    pub fn send(&self, msg: Bytes) {
        let mut st = self.shared.lock();
        if st.closed {
            return;
        }
        if st.flushing {
            // Behind what is queued.
            st.queue.push_back(msg);
            return;
        }
        // Nothing is queued: the usual case, one `writev`.
        let written = loop {
            let iov = [IoSlice::new(&msg), IoSlice::new(SEPARATOR)];
            match self.shared.pipe.try_write_vectored(&iov) {
                Ok(n) if n == msg.len() + SEPARATOR.len() => return,
                Ok(n) => break n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break 0,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => {
                    st.closed = true;
                    return;
                }
            }
        };
        st.queue.push_back(msg);
        st.written = written;
        st.flushing = true;
        let shared = self.shared.clone();
        drop(st);
        self.shared.runtime.spawn(shared.flush());
    }

    /// Waits until everything sent so far is written (or the reader is
    /// gone).
    pub async fn flushed(&self) {
        self.shared.clone().flush().await
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding it; a poisoned lock would still
        // hold a consistent queue.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes what the pipe takes of the queue without waiting; whether
    /// some is left for when the pipe has room. Only a full pipe gets
    /// here, so it may take its time over the queue.
    fn write_queued(&self, st: &mut State) -> bool {
        while !st.queue.is_empty() {
            let mut iov = vec![IoSlice::new(&[]); 2 * BATCH.min(st.queue.len())];
            let mut parts = 0;
            let mut skip = st.written;
            for m in st.queue.iter().take(BATCH) {
                for part in [&m[..], SEPARATOR] {
                    if skip >= part.len() {
                        skip -= part.len();
                    } else {
                        iov[parts] = IoSlice::new(&part[skip..]);
                        parts += 1;
                        skip = 0;
                    }
                }
            }
            match self.pipe.try_write_vectored(&iov[..parts]) {
                Ok(n) => st.advance(n),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => {
                    st.closed = true;
                    st.queue.clear();
                    return false;
                }
            }
        }
        false
    }

    /// Writes the queue as the pipe drains, until it is empty.
    async fn flush(self: Arc<Self>) {
        loop {
            {
                let mut st = self.lock();
                if !self.write_queued(&mut st) {
                    st.flushing = false;
                    return;
                }
            }
            if self.pipe.writable().await.is_err() {
                let mut st = self.lock();
                st.closed = true;
                st.queue.clear();
                st.flushing = false;
                return;
            }
        }
    }
}

impl State {
    /// `n` more bytes of the queue were written.
    fn advance(&mut self, mut n: usize) {
        while let Some(front) = self.queue.front() {
            let whole = front.len() + SEPARATOR.len() - self.written;
            if n < whole {
                self.written += n;
                return;
            }
            n -= whole;
            self.written = 0;
            self.queue.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    fn pair() -> (Outbox, pipe::Receiver) {
        let (tx, rx) = pipe::pipe().expect("a pipe");
        (Outbox::new(tx), rx)
    }

    #[tokio::test]
    async fn messages_arrive_whole_in_order_with_separators() {
        let (out, mut rx) = pair();
        out.send(Bytes::from_static(b"{\"a\":1}"));
        out.clone().send(Bytes::from_static(b"{\"b\":2}"));
        drop(out);
        let mut got = Vec::new();
        rx.read_to_end(&mut got).await.expect("read");
        assert_eq!(got, b"{\"a\":1}\n\n{\"b\":2}\n\n");
    }

    #[tokio::test]
    async fn a_full_pipe_queues_and_everything_arrives_once_it_is_read() {
        let (out, mut rx) = pair();
        // Far more than a pipe holds (64 KiB by default), in odd sizes so
        // that writes end inside messages and inside separators.
        let msgs: Vec<Bytes> = (0..2000)
            .map(|i| Bytes::from(format!("{{\"n\":{i},\"pad\":\"{}\"}}", "x".repeat(i % 977))))
            .collect();
        for m in &msgs {
            out.send(m.clone());
        }
        assert!(out.shared.lock().flushing, "the pipe should be full");
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            rx.read_to_end(&mut got).await.expect("read");
            got
        });
        out.flushed().await;
        assert!(out.shared.lock().queue.is_empty());
        drop(out);
        let got = reader.await.expect("reader");
        let want: Vec<u8> = msgs
            .iter()
            .flat_map(|m| m.iter().copied().chain(SEPARATOR.iter().copied()))
            .collect();
        assert_eq!(got.len(), want.len());
        assert!(got == want, "the bytes differ");
    }

    #[tokio::test]
    async fn a_gone_reader_drops_messages_without_error() {
        let (out, rx) = pair();
        drop(rx);
        out.send(Bytes::from_static(b"{}"));
        out.send(Bytes::from_static(b"{}"));
        out.flushed().await;
        assert!(out.shared.lock().closed);
    }
}
