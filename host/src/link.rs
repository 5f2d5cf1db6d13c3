//! The host's own stdio: the link to lightningd.
//!
//! Owns: reading lightningd's stream from stdin, and stdout, which only the
//! writer task here ever writes (lightningd kills a plugin for one stray
//! byte on stdout). Must not: decide anything about the messages.

use crate::decode::FrameReader;
use crate::framing::Frame;
use crate::jsonrpc;
use bytes::Bytes;
use std::ops::ControlFlow;
use std::os::fd::AsFd;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};

/// Log levels lightningd accepts in a `log` notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Shown with `--log-level=debug`.
    Debug,
    /// Shown by default.
    Info,
    /// Shown as UNUSUAL.
    Warn,
    /// Shown as BROKEN.
    Error,
}

impl Level {
    /// Its name in a `log` notification.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }
}

/// Sends messages to lightningd. Cheap to clone.
#[derive(Clone)]
pub struct Link {
    tx: UnboundedSender<Bytes>,
}

impl Link {
    /// Queues one whole JSON-RPC message for lightningd.
    pub fn send(&self, msg: Bytes) {
        // Only fails once the writer is gone, i.e. lightningd is gone.
        let _ = self.tx.send(msg);
    }

    /// Writes a line to lightningd's log (attributed to cln-autoreload).
    pub fn log(&self, level: Level, message: impl AsRef<str>) {
        self.send(jsonrpc::log(level.as_str(), message.as_ref()));
    }
}

/// Starts the writer task on `out`; returns the [`Link`] to it and a handle
/// that completes once everything queued has been written.
pub fn writer<W: AsyncWrite + Unpin + Send + 'static>(
    out: W,
) -> (Link, tokio::task::JoinHandle<()>) {
    let (tx, rx) = unbounded_channel();
    let task = tokio::spawn(crate::framing::write_messages(out, rx));
    (Link { tx }, task)
}

/// Reads lightningd's stream, calling `on_frame` for each frame (what was
/// left of a message at the end as garbage) and `on_close` at end of stream.
pub async fn read_loop<R: AsyncRead + Unpin>(
    input: R,
    on_frame: impl Fn(Frame),
    on_close: impl FnOnce(),
) {
    FrameReader::new(input)
        .run(&mut |f| {
            on_frame(f);
            ControlFlow::Continue(())
        })
        .await;
    on_close();
}

/// Stdin as an async reader: an epoll-driven pipe when it is one (it is,
/// under lightningd), tokio's thread-backed stdin otherwise.
pub fn stdin() -> Box<dyn AsyncRead + Unpin + Send> {
    if let Ok(fd) = std::io::stdin().as_fd().try_clone_to_owned() {
        if let Ok(rx) = tokio::net::unix::pipe::Receiver::from_owned_fd(fd) {
            return Box::new(rx);
        }
    }
    Box::new(tokio::io::stdin())
}

/// Stdout as an async writer, like [`stdin`].
pub fn stdout() -> Box<dyn AsyncWrite + Unpin + Send> {
    if let Ok(fd) = std::io::stdout().as_fd().try_clone_to_owned() {
        if let Ok(tx) = tokio::net::unix::pipe::Sender::from_owned_fd(fd) {
            return Box::new(tx);
        }
    }
    Box::new(tokio::io::stdout())
}
