//! The stdio of a wasm guest, on the host's side: WASI streams that take
//! the guest's reads and writes in-process, with no pipe and no thread in
//! between.
//!
//! - stdin ([`GuestStdin`]) reads the messages the supervisor sends to the
//!   instance straight from their channel, each followed by lightningd's
//!   `"\n\n"`; a guest blocked reading it is a pending future on the host's
//!   loop, woken by the next [`super::Instance::send`]; dropping the sender
//!   is its end of file.
//! - stdout ([`GuestOutput::stdout`]) hands what the guest writes to the
//!   same [`Decoder`] a native child's stdout goes through, and each frame
//!   to the host as an [`InstanceEvent`] at once, counted in the
//!   [`super::backlog`]; stderr ([`GuestOutput::stderr`]) reports lines.
//!   While the backlog is full, a write waits (the guest is suspended, not
//!   the loop).
//!
//! Every read and write also marks the guest's [`IoClock`]: the CPU
//! deadline per request counts from the last one.
//!
//! Owns: these streams and the clock. Must not: interpret messages beyond
//! framing (the supervisor does), or block the thread: everything that
//! waits is a future.

use super::{backlog, room, InstanceEvent, Reporter};
use crate::decode::Decoder;
use bytes::{Bytes, BytesMut};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::mpsc::UnboundedReceiver;
use wasmtime_wasi::cli::{IsTerminal, StdinStream, StdoutStream};
use wasmtime_wasi::p2::{InputStream, OutputStream, Pollable, StreamError, StreamResult};

/// When the guest last did I/O (read a request, wrote an answer, got an
/// rpc result): the CPU deadline counts from there.
#[derive(Debug)]
pub(super) struct IoClock {
    start: Instant,
    last_us: AtomicU64,
}

impl IoClock {
    pub(super) fn new() -> IoClock {
        IoClock {
            start: Instant::now(),
            last_us: AtomicU64::new(0),
        }
    }

    /// The guest did I/O now.
    pub(super) fn touch(&self) {
        let us = u64::try_from(self.start.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.last_us.store(us, Ordering::Relaxed);
    }

    /// How long since it last did I/O.
    pub(super) fn idle(&self) -> Duration {
        let now = self.start.elapsed();
        now.saturating_sub(Duration::from_micros(self.last_us.load(Ordering::Relaxed)))
    }
}

/// Locks a stream's state. A panic while it was held (there is no code
/// that panics there) would leave plain bytes behind, still usable.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The guest's stdin. WASI may open several handles on it; they share
/// one state, as the trait asks.
#[derive(Clone)]
pub(super) struct GuestStdin(Arc<Mutex<Inbox>>);

struct Inbox {
    rx: UnboundedReceiver<Bytes>,
    /// What is left of the message being read.
    current: Bytes,
    /// The separator after `current` is still to be read.
    separator: bool,
    /// The sender is gone: end of file once `current` is read.
    closed: bool,
    clock: Arc<IoClock>,
}

impl GuestStdin {
    pub(super) fn new(rx: UnboundedReceiver<Bytes>, clock: Arc<IoClock>) -> GuestStdin {
        GuestStdin(Arc::new(Mutex::new(Inbox {
            rx,
            current: Bytes::new(),
            separator: false,
            closed: false,
            clock,
        })))
    }
}

const SEPARATOR: &[u8] = b"\n\n";

impl Inbox {
    /// Makes `current` the next piece to read, if there is one now.
    fn refill(&mut self) {
        if !self.current.is_empty() || self.closed {
            return;
        }
        if self.separator {
            self.current = Bytes::from_static(SEPARATOR);
            self.separator = false;
            return;
        }
        match self.rx.try_recv() {
            Ok(msg) => {
                self.current = msg;
                self.separator = true;
            }
            Err(TryRecvError::Empty) => {}
            Err(TryRecvError::Disconnected) => self.closed = true,
        }
    }

    /// Up to `size` bytes of what is queued now, without waiting.
    fn read(&mut self, size: usize) -> StreamResult<Bytes> {
        self.refill();
        if size == 0 || self.current.is_empty() {
            return match self.closed && self.current.is_empty() {
                true => Err(StreamError::Closed),
                false => Ok(Bytes::new()),
            };
        }
        self.clock.touch();
        // One message that fills the guest's buffer goes over without a
        // copy; several small ones are gathered into one read, so the guest
        // calls in once for all of them.
        if self.current.len() >= size {
            return Ok(self.current.split_to(size));
        }
        let mut out = BytesMut::with_capacity(size.min(64 * 1024));
        while out.len() < size && !self.current.is_empty() {
            let n = (size - out.len()).min(self.current.len());
            out.extend_from_slice(&self.current.split_to(n));
            self.refill();
        }
        Ok(out.freeze())
    }

    /// Ready once there is something to read or the end is reached.
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if !self.current.is_empty() || self.separator || self.closed {
            return Poll::Ready(());
        }
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(msg)) => {
                self.current = msg;
                self.separator = true;
                Poll::Ready(())
            }
            Poll::Ready(None) => {
                self.closed = true;
                Poll::Ready(())
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for GuestStdin {
    async fn ready(&mut self) {
        std::future::poll_fn(|cx| lock(&self.0).poll_ready(cx)).await
    }
}

#[wasmtime_wasi::async_trait]
impl InputStream for GuestStdin {
    fn read(&mut self, size: usize) -> StreamResult<Bytes> {
        lock(&self.0).read(size)
    }
}

impl IsTerminal for GuestStdin {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdinStream for GuestStdin {
    fn p2_stream(&self) -> Box<dyn InputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncRead + Send + Sync> {
        // Only wasmtime's preview 3 bindings ask for this, and the host
        // links preview 1 only: nothing reads stdin through it.
        Box::new(tokio::io::empty())
    }
}

/// How much a guest may write at once: what `check_write` grants.
const WRITE_BUDGET: usize = 64 * 1024;

/// A stderr line longer than this is reported in pieces.
const LINE_MAX: usize = 64 * 1024;

/// The guest's stdout or stderr. Cloned handles share one state.
pub(super) struct GuestOutput<F>(Arc<Mutex<Outbox<F>>>);

impl<F> Clone for GuestOutput<F> {
    fn clone(&self) -> Self {
        GuestOutput(self.0.clone())
    }
}

struct Outbox<F> {
    report: F,
    what: Output,
    /// Whether writing marks the I/O clock (stdout: an answer is I/O;
    /// stderr: a guest logging in a loop is still computing).
    clock: Option<Arc<IoClock>>,
}

enum Output {
    /// Frames for the host.
    Stdout(Decoder),
    /// Lines for the log: what is left of the last one.
    Stderr(Vec<u8>),
}

impl<F: Fn(InstanceEvent) + Send + Sync + 'static> GuestOutput<F> {
    /// The guest's stdout: its frames reported as they complete.
    pub(super) fn stdout(report: F, clock: Arc<IoClock>) -> GuestOutput<F> {
        GuestOutput(Arc::new(Mutex::new(Outbox {
            report,
            what: Output::Stdout(Decoder::repairing_utf8()),
            clock: Some(clock),
        })))
    }

    /// The guest's stderr: each line reported as it completes.
    pub(super) fn stderr(report: F) -> GuestOutput<F> {
        GuestOutput(Arc::new(Mutex::new(Outbox {
            report,
            what: Output::Stderr(Vec::new()),
            clock: None,
        })))
    }

    /// The guest ended: reports what is left (a message cut short, as
    /// garbage; a last line without its newline).
    pub(super) fn finish(&self) {
        let mut out = lock(&self.0);
        let Outbox { report, what, .. } = &mut *out;
        match what {
            Output::Stdout(d) => d.finish(&mut Reporter(&*report)),
            Output::Stderr(line) => {
                if !line.is_empty() {
                    report_line(report, line);
                    line.clear();
                }
            }
        }
    }
}

/// Reports one stderr line, counted in the backlog.
fn report_line(report: &impl Fn(InstanceEvent), line: &[u8]) {
    let text = String::from_utf8_lossy(line);
    backlog().added();
    report(InstanceEvent::Stderr(text.trim_end().to_string()));
}

impl<F: Fn(InstanceEvent)> Outbox<F> {
    fn write(&mut self, bytes: &[u8]) {
        if let Some(c) = &self.clock {
            c.touch();
        }
        match &mut self.what {
            Output::Stdout(d) => {
                // The reporter never says stop.
                let _ = d.push(bytes, &mut Reporter(&self.report));
            }
            Output::Stderr(line) => {
                line.extend_from_slice(bytes);
                let mut start = 0;
                while let Some(n) = line[start..].iter().position(|&b| b == b'\n') {
                    report_line(&self.report, &line[start..start + n + 1]);
                    start += n + 1;
                }
                while line.len() - start >= LINE_MAX {
                    report_line(&self.report, &line[start..start + LINE_MAX]);
                    start += LINE_MAX;
                }
                line.drain(..start);
            }
        }
    }
}

#[wasmtime_wasi::async_trait]
impl<F: Fn(InstanceEvent) + Send + Sync + 'static> Pollable for GuestOutput<F> {
    /// Ready to take more once the host has room for more frames.
    async fn ready(&mut self) {
        room().await
    }
}

#[wasmtime_wasi::async_trait]
impl<F: Fn(InstanceEvent) + Send + Sync + 'static> OutputStream for GuestOutput<F> {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        lock(&self.0).write(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        // Every frame went to the host as it was written.
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        // The backlog is waited for in `ready`; never 0, which would make
        // WASI's blocking write spin on it.
        Ok(WRITE_BUDGET)
    }
}

impl<F> IsTerminal for GuestOutput<F> {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl<F: Fn(InstanceEvent) + Send + Sync + 'static> StdoutStream for GuestOutput<F> {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        // As for stdin: only preview 3 would write through this.
        Box::new(tokio::io::sink())
    }
}
