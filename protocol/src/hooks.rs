//! The hooks lightningd v26.06 knows.
//!
//! A plugin that registers a name not in [`HOOKS`], the same hook twice, or
//! `filters` on a hook whose [`Filter`] is [`Filter::None`] is killed
//! (`lightningd/plugin_hook.c` `plugin_hook_register`, lines 139–200:
//! "Unknown hook name %s", "Hook %s does not allow filters", "Registered
//! for hook %s multiple times").
//!
//! Every hook is chained in v26.06: all plugins registered for it are
//! called in turn (`plugin_hook_call_next`), ordered by their `before` and
//! `after`; there is no "single plugin" kind of hook any more. A hook
//! answered with error -4 ([`PLUGIN_TERMINATED`](crate::errors::PLUGIN_TERMINATED))
//! is treated like `continue`; any other error answer makes lightningd
//! abort (`plugin_hook_callback`, lines 253–297). `db_write` is the
//! exception: it is called synchronously, and even -4 is fatal
//! (`db_hook_response`, lines 421–455).

/// What a hook's `filters` may hold: the hook's `filter_type` in
/// `lightningd/plugin_hook.h` (`REGISTER_PLUGIN_HOOK` → `JSMN_UNDEFINED`,
/// `REGISTER_PLUGIN_HOOK_STRFILTER` → `JSMN_STRING`,
/// `REGISTER_PLUGIN_HOOK_INTFILTER` → `JSMN_PRIMITIVE`, lines 136–150).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Filter {
    /// No `filters` allowed.
    None,
    /// An array of strings (`rpc_command`: command names).
    Strings,
    /// An array of unsigned integers (`custommsg`: message types).
    Integers,
}

/// One hook lightningd knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hook {
    /// The name a manifest registers.
    pub name: &'static str,
    /// What its `filters` may hold.
    pub filter: Filter,
    /// Where lightningd v26.06 registers it (file:line), for the next
    /// person who checks this list.
    pub registered_in: &'static str,
}

const fn hook(name: &'static str, filter: Filter, registered_in: &'static str) -> Hook {
    Hook {
        name,
        filter,
        registered_in,
    }
}

/// Every hook lightningd v26.06 offers: each `REGISTER_PLUGIN_HOOK*` site
/// in `lightningd/` (`git grep -n REGISTER_PLUGIN_HOOK v26.06 -- lightningd`),
/// plus `db_write`, which `plugin_hook.c` registers itself
/// (`static struct plugin_hook db_write_hook`, line 411).
pub const HOOKS: &[Hook] = &[
    hook("peer_connected", Filter::None, "peer_control.c:1810"),
    hook("recover", Filter::None, "lightningd.c:1001"),
    hook("commitment_revocation", Filter::None, "peer_htlcs.c:2589"),
    hook("db_write", Filter::None, "plugin_hook.c:411"),
    hook("invoice_payment", Filter::None, "invoice.c:325"),
    hook("openchannel", Filter::None, "opening_control.c:838"),
    hook("openchannel2", Filter::None, "dual_open_control.c:1134"),
    hook(
        "openchannel2_changed",
        Filter::None,
        "dual_open_control.c:1140",
    ),
    hook(
        "openchannel2_sign",
        Filter::None,
        "dual_open_control.c:1146",
    ),
    hook("rbf_channel", Filter::None, "dual_open_control.c:1152"),
    hook("htlc_accepted", Filter::None, "peer_htlcs.c:1346"),
    hook("rpc_command", Filter::Strings, "jsonrpc.c:1000"),
    hook("custommsg", Filter::Integers, "connect_control.c:396"),
    hook("onion_message_recv", Filter::None, "onion_message.c:91"),
    hook(
        "onion_message_recv_secret",
        Filter::None,
        "onion_message.c:99",
    ),
];

/// The hook called `name`, if lightningd knows one.
///
/// ```
/// use cln_protocol::hooks::{find, Filter};
/// assert_eq!(find("rpc_command").map(|h| h.filter), Some(Filter::Strings));
/// assert!(find("no_such_hook").is_none());
/// ```
pub fn find(name: &str) -> Option<&'static Hook> {
    HOOKS.iter().find(|h| h.name == name)
}

/// Whether lightningd knows a hook called `name`.
pub fn is_known(name: &str) -> bool {
    find(name).is_some()
}

/// The names of every hook, in [`HOOKS`]' order.
pub fn names() -> impl Iterator<Item = &'static str> {
    HOOKS.iter().map(|h| h.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique() {
        for (i, h) in HOOKS.iter().enumerate() {
            assert!(
                HOOKS[i + 1..].iter().all(|o| o.name != h.name),
                "{} twice",
                h.name
            );
        }
    }

    #[test]
    fn only_rpc_command_and_custommsg_filter() {
        let filtering: Vec<_> = HOOKS
            .iter()
            .filter(|h| h.filter != Filter::None)
            .map(|h| h.name)
            .collect();
        assert_eq!(filtering, ["rpc_command", "custommsg"]);
    }
}
