//! Notices when a plugin has a new version: its file replaced
//! ([`plugin_file`]), or its sources changed (build on save,
//! [`sources`]). Both report through a callback given when watching
//! starts, and stop when the [`Watcher`] they return is dropped.
//!
//! Owns: the [`Watcher`] handle, shared by both kinds of watch. Must not:
//! start or stop plugins or run builds; it only reports "this plugin's
//! file changed" and "these sources changed".

pub mod plugin_file;
pub mod sources;

pub use plugin_file::{watch, FileStamp};
pub use sources::{watch_trees, Change, Sources, Tree};

/// Keeps the watch alive; dropping it stops watching.
pub struct Watcher {
    /// The `notify` watcher (shared with the loop that watches again a
    /// directory made anew).
    _inner: Box<dyn std::any::Any + Send>,
}
