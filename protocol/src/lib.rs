//! Facts about lightningd's plugin protocol that more than one crate of
//! this workspace relies on: the hooks lightningd knows and which of them
//! take filters, the notification topics a plugin may not declare, the
//! option types, the log levels (and the names a plugin may give them),
//! the JSON-RPC error codes and the blank line after each message; and,
//! of cln-autoreload's own, the state hand-over's method names, which its
//! host sends and its guest SDK answers.
//!
//! Every fact comes from Core Lightning **v26.06** and cites the file (and
//! the line, at tag `v26.06`) it is read from, so that the next version can
//! be checked the same way. The hook and topic lists are also checked
//! against the lightningd source by the tests crate
//! (`tests/tests/e2e/protocol.rs`) whenever a mirror of it is present.
//!
//! The crate has no dependencies (but serde, optionally, for the guest
//! SDK's `Level`): the guest SDK builds for `wasm32-wasip1` with it.

pub mod errors;
pub mod handover;
pub mod hooks;
pub mod log;
pub mod notifications;
pub mod options;
pub mod wire;

pub use hooks::{Filter, Hook, HOOKS};
pub use log::{LevelName, LogLevel};
pub use notifications::NATIVE_TOPICS;
pub use options::OptionType;
pub use wire::MESSAGE_SEPARATOR;
