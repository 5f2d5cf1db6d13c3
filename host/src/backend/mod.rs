//! How a plugin instance runs. Everything above this module is the same for
//! every backend: an instance takes messages on a channel, reports what it
//! says and when it ends as [`InstanceEvent`]s, and can be stopped.
//!
//! Owns: the seam between the supervisor and the ways of running a plugin.
//! Must not: know about routing, manifests or lightningd.

pub mod native;

use crate::framing::Message;
use bytes::Bytes;
use tokio::sync::mpsc::UnboundedSender;

/// What a running instance reports.
#[derive(Debug)]
pub enum InstanceEvent {
    /// A JSON-RPC message on its stdout.
    Message(Message),
    /// Bytes on its stdout that are not a JSON-RPC message.
    Garbage { bytes: Bytes, reason: String },
    /// One line it wrote to stderr.
    Stderr(String),
    /// It ended; nothing more will come from it.
    Exited(String),
}

/// Which backend runs a plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    /// A child process.
    Native,
}

impl BackendKind {
    /// The backend for a plugin file.
    pub fn for_path(_path: &std::path::Path) -> BackendKind {
        BackendKind::Native
    }

    /// Its name in status and logs.
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Native => "native",
        }
    }
}

/// A running instance of a plugin, as the supervisor holds it.
#[derive(Debug)]
pub struct Instance {
    /// Messages to the instance; dropping it closes the instance's stdin.
    stdin: Option<UnboundedSender<Bytes>>,
    /// The process id, for native instances.
    pub pid: Option<u32>,
}

impl Instance {
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

    /// Asks the instance to terminate (SIGTERM to its process group).
    pub fn terminate(&self) {
        if let Some(pid) = self.pid {
            native::signal_group(pid, nix::sys::signal::Signal::SIGTERM);
        }
    }

    /// Ends the instance now (SIGKILL to its process group).
    pub fn kill(&self) {
        if let Some(pid) = self.pid {
            native::signal_group(pid, nix::sys::signal::Signal::SIGKILL);
        }
    }
}
