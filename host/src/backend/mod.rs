//! How a plugin instance runs. Everything above this module is the same for
//! every backend: an instance takes messages on a channel, reports what it
//! says and when it ends as [`InstanceEvent`]s, and can be stopped.
//!
//! Owns: the seam between the supervisor and the ways of running a plugin,
//! and the stdio pumps both backends share. Must not: know about routing,
//! manifests or lightningd.

pub mod native;
pub mod wasm;

use crate::framing::{Frame, Framer, Message};
use bytes::Bytes;
use std::path::Path;
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};
use tokio::sync::mpsc::UnboundedSender;

/// How an instance ended.
#[derive(Debug, Clone)]
pub struct Exit {
    /// In words: "exited with status 3", "trapped: ...".
    pub how: String,
    /// It was stopped for running too long on one request: the request it
    /// was working on must not be handed to the next instance.
    pub runaway: bool,
}

/// What a running instance reports.
#[derive(Debug)]
pub enum InstanceEvent {
    /// A JSON-RPC message on its stdout.
    Message(Message),
    /// Bytes on its stdout that are not a JSON-RPC message.
    Garbage { bytes: Bytes, reason: String },
    /// One line it wrote to stderr.
    Stderr(String),
    /// A wasm module was compiled (or taken from the cache) for it.
    Compiled { millis: f64, cached: bool },
    /// Something about it worth a warning (a refused rpc call, ...).
    Warn(String),
    /// It ended; nothing more will come from it.
    Exited(Exit),
}

/// Which backend runs a plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    /// A child process.
    Native,
    /// A WASI preview 1 module inside the host.
    Wasm,
}

impl BackendKind {
    /// The backend for a plugin file: `.wasm` runs in wasmtime.
    pub fn for_path(path: &Path) -> BackendKind {
        if path.extension().is_some_and(|e| e == "wasm") {
            BackendKind::Wasm
        } else {
            BackendKind::Native
        }
    }

    /// Its name in status and logs.
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Native => "native",
            BackendKind::Wasm => "wasm",
        }
    }
}

/// How to stop an instance.
#[derive(Debug)]
enum Control {
    /// A process group.
    Native { pid: u32 },
    /// A wasm instance on its own thread.
    Wasm(Arc<wasm::Stop>),
}

/// A running instance of a plugin, as the supervisor holds it.
#[derive(Debug)]
pub struct Instance {
    /// Messages to the instance; dropping it closes the instance's stdin.
    stdin: Option<UnboundedSender<Bytes>>,
    control: Control,
}

impl Instance {
    /// The process id, for native instances.
    pub fn pid(&self) -> Option<u32> {
        match self.control {
            Control::Native { pid } => Some(pid),
            Control::Wasm(_) => None,
        }
    }

    /// Sends one message (the separator is added by the writer).
    pub fn send(&self, msg: Bytes) {
        if let Some(tx) = &self.stdin {
            // A closed channel means the instance is ending; its exit event
            // will settle whatever this message was.
            let _ = tx.send(msg);
        }
    }

    /// Closes the instance's stdin: a well-behaved plugin exits.
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Asks the instance to terminate (SIGTERM to its process group; a
    /// wasm instance is simply stopped).
    pub fn terminate(&self) {
        match &self.control {
            Control::Native { pid } => {
                native::signal_group(*pid, nix::sys::signal::Signal::SIGTERM)
            }
            Control::Wasm(stop) => stop.stop(),
        }
    }

    /// Ends the instance now (SIGKILL to its process group).
    pub fn kill(&self) {
        match &self.control {
            Control::Native { pid } => {
                native::signal_group(*pid, nix::sys::signal::Signal::SIGKILL)
            }
            Control::Wasm(stop) => stop.stop(),
        }
    }
}

/// Reports each stderr line of an instance.
pub(crate) fn spawn_stderr_lines<R: AsyncRead + Unpin + Send + 'static>(
    err: R,
    report: impl Fn(InstanceEvent) + Send + 'static,
) {
    tokio::spawn(async move {
        let mut lines = BufReader::new(err);
        let mut line = Vec::new();
        loop {
            line.clear();
            match (&mut lines)
                .take(64 * 1024)
                .read_until(b'\n', &mut line)
                .await
            {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let text = String::from_utf8_lossy(&line);
                    report(InstanceEvent::Stderr(text.trim_end().to_string()));
                }
            }
        }
    });
}

/// Reports every frame in `framer`.
pub(crate) fn emit(framer: &mut Framer, report: &impl Fn(InstanceEvent)) {
    while let Some(frame) = framer.next_frame() {
        report(match frame {
            Frame::Message(m) => InstanceEvent::Message(m),
            Frame::Garbage { bytes, reason } => InstanceEvent::Garbage { bytes, reason },
        });
    }
}

/// Reads an instance's stdout to its end, reporting frames.
pub(crate) async fn read_messages<R: AsyncRead + Unpin>(
    mut out: R,
    report: &impl Fn(InstanceEvent),
) {
    let mut framer = Framer::new();
    loop {
        framer.buffer().reserve(64 * 1024);
        match out.read_buf(framer.buffer()).await {
            Ok(0) | Err(_) => break,
            Ok(_) => emit(&mut framer, report),
        }
    }
    if let Some(Frame::Garbage { bytes, reason }) = framer.finish() {
        report(InstanceEvent::Garbage { bytes, reason });
    }
}
