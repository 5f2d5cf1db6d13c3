//! How a plugin instance runs. Everything above this module is the same for
//! every backend: an instance takes messages on a channel, reports what it
//! says and when it ends as [`InstanceEvent`]s, and can be stopped.
//!
//! Owns: the seam between the supervisor and the ways of running a plugin,
//! and what both backends' output goes through: the [`Backlog`] that
//! pauses a plugin writing faster than the host forwards, and the
//! `Reporter` that turns its frames into [`InstanceEvent`]s (a native
//! child's pipes are pumped by tasks here and in native.rs; a wasm guest's
//! stdio is in-process, in wasm_stdio.rs). Must not: know about routing,
//! manifests or lightningd.

pub mod native;
// Without the `wasm` feature, a stand-in with the same names takes the
// place of the wasmtime backend: the rest of the host is the same in both
// builds, and a `.wasm` plugin gets an error saying how to run it.
#[cfg_attr(not(feature = "wasm"), path = "wasm_disabled.rs")]
pub mod wasm;
#[cfg(feature = "wasm")]
mod wasm_cache;
mod wasm_settings;
#[cfg(feature = "wasm")]
mod wasm_stdio;

use crate::decode::FrameSink;
use crate::framing::{Frame, Message};
use crate::outbox::Outbox;
use bytes::Bytes;
use std::future::Future;
use std::ops::ControlFlow;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};
use tokio::sync::mpsc::UnboundedSender;
use tokio::sync::Notify;

/// How an instance ended.
#[derive(Debug, Clone)]
pub struct Exit {
    /// In words: "exited with status 3", "trapped: ...".
    pub how: String,
    /// The sandbox stopped it (a request ran too long, or it wanted too
    /// much memory): the request it was working on must not be handed to
    /// the next instance, which would only be stopped again.
    pub sandbox: Option<SandboxStop>,
}

/// Why the sandbox stopped an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SandboxStop {
    /// One request took longer than its CPU deadline.
    Timeout,
    /// It asked for more memory than allowed.
    OutOfMemory,
}

impl Exit {
    /// An instance that ended (or was stopped) on its own account.
    pub fn plain(how: impl Into<String>) -> Exit {
        Exit {
            how: how.into(),
            sandbox: None,
        }
    }

    /// The kind of the error a call in flight gets when this generation
    /// ended without answering it: `reloaded` when the host replaced it.
    pub fn error_kind(&self, reloaded: bool) -> crate::jsonrpc::ErrorKind {
        use crate::jsonrpc::ErrorKind;
        match self.sandbox {
            Some(SandboxStop::Timeout) => ErrorKind::Timeout,
            Some(SandboxStop::OutOfMemory) => ErrorKind::OutOfMemory,
            None if reloaded => ErrorKind::Reloaded,
            None => ErrorKind::Crashed,
        }
    }
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
    /// A wasm module was compiled (or taken from a cache) for it.
    Compiled(wasm::CompileRecord),
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
    /// A wasm instance: a task on the host's loop.
    // Without the `wasm` feature no wasm instance exists (`wasm::Stop` has
    // no values): the variant stays so that the code is the same in both
    // builds.
    #[cfg_attr(not(feature = "wasm"), allow(dead_code))]
    Wasm(Arc<wasm::Stop>),
}

/// Where messages to an instance go.
enum Stdin {
    /// A native child's stdin pipe, written from the host's loop.
    Pipe(Outbox),
    /// A wasm guest's stdin, read in-process by its task.
    #[cfg_attr(not(feature = "wasm"), allow(dead_code))]
    Channel(UnboundedSender<Bytes>),
}

impl std::fmt::Debug for Stdin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Stdin::Pipe(_) => "Pipe",
            Stdin::Channel(_) => "Channel",
        })
    }
}

/// A running instance of a plugin, as the supervisor holds it.
#[derive(Debug)]
pub struct Instance {
    /// Messages to the instance; dropping it closes the instance's stdin
    /// (once what was sent is written).
    stdin: Option<Stdin>,
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
        // A closed pipe or channel means the instance is ending; its exit
        // event will settle whatever this message was.
        match &self.stdin {
            Some(Stdin::Pipe(out)) => out.send(msg),
            Some(Stdin::Channel(tx)) => {
                let _ = tx.send(msg);
            }
            None => {}
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

/// Reports each stderr line of an instance; the task ends when its stderr
/// does.
pub(crate) fn spawn_stderr_lines<R: AsyncRead + Unpin + Send + 'static>(
    err: R,
    report: impl Fn(InstanceEvent) + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut lines = BufReader::new(err);
        let mut line = Vec::new();
        loop {
            room().await;
            line.clear();
            match (&mut lines)
                .take(64 * 1024)
                .read_until(b'\n', &mut line)
                .await
            {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let text = String::from_utf8_lossy(&line);
                    backlog().added();
                    report(InstanceEvent::Stderr(text.trim_end().to_string()));
                }
            }
        }
    })
}

/// Frames read from instances that the host has not handled yet. Readers
/// stop reading while there are [`BACKLOG_MAX`] of them: a plugin writing
/// faster than the host forwards (a flood of notifications) must neither
/// grow the host's memory without bound nor hold up lightningd's requests
/// queued behind its frames, nor can a flood of stderr lines. The host
/// calls [`Backlog::handled`] for each [`InstanceEvent::Message`],
/// [`InstanceEvent::Garbage`] and [`InstanceEvent::Stderr`] (one it was
/// not counted for, a wasm trap's, only lets a reader go on sooner).
#[derive(Debug, Default)]
pub struct Backlog {
    pending: AtomicUsize,
    room: Notify,
}

/// How many frames may wait for the host before readers pause.
const BACKLOG_MAX: usize = 4096;

/// The backlog of this process's host.
pub fn backlog() -> &'static Backlog {
    static BACKLOG: OnceLock<Backlog> = OnceLock::new();
    BACKLOG.get_or_init(Backlog::default)
}

impl Backlog {
    fn added(&self) {
        self.pending.fetch_add(1, Ordering::Relaxed);
    }

    /// The host handled one frame.
    pub fn handled(&self) {
        let before = self
            .pending
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                Some(n.saturating_sub(1))
            })
            .unwrap_or(0);
        // Readers wait until half the backlog is gone, not one frame.
        if before == BACKLOG_MAX / 2 + 1 {
            self.room.notify_waiters();
        }
    }

    /// Waits while the backlog is full.
    async fn room(&self) {
        loop {
            // The usual case, without registering a waiter (a lock) on
            // every read.
            if self.pending.load(Ordering::Relaxed) < BACKLOG_MAX {
                return;
            }
            let room = self.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            if self.pending.load(Ordering::Relaxed) < BACKLOG_MAX {
                return;
            }
            room.await;
        }
    }
}

/// Reports one frame, counted in the [`backlog`].
fn report_frame(frame: Frame, report: &impl Fn(InstanceEvent)) {
    backlog().added();
    report(match frame {
        Frame::Message(m) => InstanceEvent::Message(m),
        Frame::Garbage { bytes, reason } => InstanceEvent::Garbage { bytes, reason },
    });
}

/// Waits until the host has room for more frames (see [`Backlog`]).
pub(crate) async fn room() {
    backlog().room().await
}

/// Where the frames an instance writes go: to the host as
/// [`InstanceEvent`]s, each counted in the [`backlog`], read only while the
/// backlog has room, with a warning when its UTF-8 had to be repaired.
pub(crate) struct Reporter<'a, F>(pub(crate) &'a F);

impl<F: Fn(InstanceEvent)> FrameSink for Reporter<'_, F> {
    fn ready(&mut self) -> impl Future<Output = ()> + Send {
        room()
    }

    fn repaired_utf8(&mut self) {
        (self.0)(InstanceEvent::Warn(
            "wrote invalid UTF-8 to stdout: replaced with U+FFFD (lightningd's JSON is UTF-8; it would have dropped or garbled this)".into(),
        ));
    }

    fn frame(&mut self, frame: Frame) -> ControlFlow<()> {
        report_frame(frame, self.0);
        ControlFlow::Continue(())
    }
}
