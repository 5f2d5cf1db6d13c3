//! The state hand-over between two versions of a plugin: the two requests
//! cln-autoreload's host sends of its own, which the guest SDK answers.
//! These are cln-autoreload's, not lightningd's: lightningd never sends
//! them, and a plugin may not register them (they start with the host's
//! `autoreload-` prefix).

/// The manifest field a plugin declares its state in:
/// `"autoreload": {"state": true}`.
pub const MANIFEST_FIELD: &str = "autoreload";

/// Sent to the old version before it stops: answer
/// `{"state": <any JSON value>}`.
pub const SAVE_STATE: &str = "autoreload-save-state";

/// Sent to the new version after `init`: `{"state": <the value>}`; answer
/// `{}`.
pub const RESTORE_STATE: &str = "autoreload-restore-state";
