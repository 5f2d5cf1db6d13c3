//! The kinds a plugin's warnings are counted by: at most a few of a kind a
//! second are logged, the rest summed up once the second is over, so that
//! a flood of one kind (garbage on stdout, stray answers) neither fills
//! lightningd's log nor hides a warning of another kind.
//!
//! Owns: the list of kinds. Must not: count or log anything (the
//! supervisor's `plugin_warn` does).

use std::fmt;

/// What a warning about a plugin is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WarnKind {
    /// Bytes on stdout that are not JSON-RPC.
    Garbage,
    /// Its output ended in the middle of a message: counted apart from
    /// [`WarnKind::Garbage`], as what a stream ended with matters more
    /// than one more piece of a flood.
    Truncated,
    /// What its backend reported (a refused rpc call, a wasm guest's
    /// trouble, ...).
    Backend,
    /// A hook in flight when it died, answered on its behalf.
    Hook,
    /// An answer to a request nobody sent it (or answered twice).
    Response,
    /// A notification lightningd would refuse.
    Notification,
    /// A request written to stdout instead of the rpc socket.
    Request,
}

impl WarnKind {
    /// A short name, for logs and tests.
    pub fn as_str(self) -> &'static str {
        match self {
            WarnKind::Garbage => "garbage",
            WarnKind::Truncated => "truncated",
            WarnKind::Backend => "warn",
            WarnKind::Hook => "hook",
            WarnKind::Response => "response",
            WarnKind::Notification => "notification",
            WarnKind::Request => "request",
        }
    }
}

impl fmt::Display for WarnKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
