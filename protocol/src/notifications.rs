//! Notification topics.

/// Topics only lightningd may send: each `REGISTER_NOTIFICATION` site in
/// `lightningd/notification.c` at v26.06 (lines 71–696). A plugin whose
/// manifest declares one of them in `notifications` is killed
/// (`lightningd/plugin.c` `plugin_notifications_add`, line 1654:
/// "plugin attempted to register a native notification topic"). A plugin
/// may still *subscribe* to them.
///
/// `deprecated_oneshot` is one of them although lightningd sends it only to
/// the one plugin a command came from (`plugin.c` line 1328,
/// `notify_deprecated_oneshot`).
pub const NATIVE_TOPICS: &[&str] = &[
    "connect",                   // notification.c:71
    "disconnect",                // notification.c:90
    "warning",                   // notification.c:124
    "custommsg",                 // notification.c:147
    "onionmessage_forward_fail", // notification.c:180
    "invoice_payment",           // notification.c:214
    "invoice_creation",          // notification.c:244
    "channel_opened",            // notification.c:273
    "channel_state_changed",     // notification.c:329
    "forward_event",             // notification.c:398
    "sendpay_success",           // notification.c:418
    "sendpay_failure",           // notification.c:452
    "coin_movement",             // notification.c:478
    "balance_snapshot",          // notification.c:546
    "block_added",               // notification.c:565
    "openchannel_peer_sigs",     // notification.c:585
    "channel_open_failed",       // notification.c:604
    "shutdown",                  // notification.c:616
    "deprecated_oneshot",        // notification.c:640
    "log",                       // notification.c:656
    "plugin_started",            // notification.c:685
    "plugin_stopped",            // notification.c:696
];

/// Whether `topic` is one only lightningd may send.
///
/// ```
/// assert!(cln_protocol::notifications::is_native("deprecated_oneshot"));
/// assert!(!cln_protocol::notifications::is_native("my_plugin_event"));
/// ```
pub fn is_native(topic: &str) -> bool {
    NATIVE_TOPICS.contains(&topic)
}
