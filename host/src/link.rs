//! The host's own stdio: the link to lightningd.
//!
//! Owns: reading lightningd's stream from stdin, and stdout, which only a
//! [`Link`] ever writes (lightningd kills a plugin for one stray byte on
//! stdout): straight into the pipe from the host's loop
//! ([`crate::outbox`]), or through a writer task when it is not a pipe.
//! Must not: decide anything about the messages.

use crate::decode::FrameReader;
use crate::framing::Frame;
use crate::jsonrpc;
use crate::outbox::Outbox;
use bytes::Bytes;
use std::ops::ControlFlow;
use std::os::fd::AsFd;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};

/// The level of a line the host writes to lightningd's log: the names a
/// `log` notification may give, stated once in the protocol crate (the
/// host writes `debug`, `info`, `warn` and `error`).
pub use cln_protocol::LevelName as Level;

/// Sends messages to lightningd. Cheap to clone.
#[derive(Clone)]
pub struct Link {
    out: Out,
}

#[derive(Clone)]
enum Out {
    /// Written by the sender, straight into the pipe.
    Pipe(Outbox),
    /// Queued for a writer task (not a pipe: the dev node's end, a file).
    Queued(UnboundedSender<Bytes>),
}

impl Link {
    /// Sends one whole JSON-RPC message to lightningd.
    pub fn send(&self, msg: Bytes) {
        match &self.out {
            Out::Pipe(out) => out.send(msg),
            // Only fails once the writer is gone, i.e. lightningd is gone.
            Out::Queued(tx) => {
                let _ = tx.send(msg);
            }
        }
    }

    /// Waits until what was sent so far is written, for a link straight
    /// to a pipe (a queued link's writer task says so by ending).
    pub async fn flushed(&self) {
        if let Out::Pipe(out) = &self.out {
            out.flushed().await
        }
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
    (
        Link {
            out: Out::Queued(tx),
        },
        task,
    )
}

/// The link to lightningd over this process's stdout: written straight
/// into the pipe (it is one, under lightningd); otherwise through a writer
/// task, returned too, that ends once everything queued is written and
/// every clone of the link is gone.
pub fn to_stdout() -> (Link, Option<tokio::task::JoinHandle<()>>) {
    if let Ok(fd) = std::io::stdout().as_fd().try_clone_to_owned() {
        if let Ok(tx) = tokio::net::unix::pipe::Sender::from_owned_fd(fd) {
            let out = Out::Pipe(Outbox::new(tx));
            return (Link { out }, None);
        }
    }
    let (link, task) = writer(tokio::io::stdout());
    (link, Some(task))
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
