//! Which lightningd methods a plugin may call over `lightning-rpc`: the
//! `[PLUGIN::]METHOD` values of `autoreload-wasm-rpc-allow` and
//! `autoreload-native-rpc-allow`, and the check of one request against
//! them.
//!
//! Owns: parsing those values, resolving them for one plugin, the default
//! list for sandboxed native plugins, and deciding whether one raw request
//! may go to lightningd (and in what bytes). Must not: do any I/O, log, or
//! know how the request reaches lightningd (wasm's host call and the
//! native filtering socket both use it).

use crate::options::PerPlugin;
use serde_json::{json, Value};
use std::collections::BTreeSet;

/// The value that allows every method.
pub const ANY: &str = "*";

/// Methods any client may call whatever the list: they change nothing but
/// the caller's own connection (`notifications` turns on lightningd's
/// progress messages on it).
const ALWAYS: &[&str] = &["notifications"];

/// The default for a sandboxed native plugin given no list: methods that
/// only read, and read nothing that is a secret. Left out on purpose:
/// `listconfigs` (it shows `bitcoin-rpcpassword`), `listdatastore` (other
/// plugins keep their secrets there), `sql` (a door to every table),
/// `getlog` (payment details at debug level), and everything that signs,
/// pays, moves funds or changes the node.
pub const READ_ONLY: &[&str] = &[
    "checkmessage",
    "decode",
    "decodepay",
    "feerates",
    "getinfo",
    "getroute",
    "help",
    "listchannels",
    "listclosedchannels",
    "listforwards",
    "listfunds",
    "listhtlcs",
    "listinvoicerequests",
    "listinvoices",
    "listnodes",
    "listoffers",
    "listpays",
    "listpeerchannels",
    "listpeers",
    "listsendpays",
    "listtransactions",
    "waitblockheight",
];

/// The values of one `*-rpc-allow` option, for every plugin: each a
/// comma-separated list of methods.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList {
    values: PerPlugin<Vec<String>>,
}

/// One value's methods (`listfunds,listpeers`).
fn methods(v: &str) -> Vec<String> {
    v.split(',')
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .map(str::to_owned)
        .collect()
}

impl AllowList {
    /// Reads `[PLUGIN::]METHOD` values (a value may also list several
    /// methods, comma-separated).
    pub fn parse<S: AsRef<str>>(values: &[S]) -> AllowList {
        AllowList {
            values: PerPlugin::parse(values, methods),
        }
    }

    /// Adds one `[PLUGIN::]METHOD` value.
    pub fn push(&mut self, raw: &str) {
        self.values.push(raw, methods);
    }

    /// The values as given, each with the plugin it names.
    pub fn values(&self) -> &PerPlugin<Vec<String>> {
        &self.values
    }

    /// Whether no method was given.
    pub fn is_empty(&self) -> bool {
        self.values.iter().all(|v| v.value.is_empty())
    }

    /// The methods plugin `name` may call: the values for it and those
    /// for every plugin. `None`: no value applies to it (the caller picks
    /// the default).
    pub fn for_plugin(&self, name: &str) -> Option<Methods> {
        let names: BTreeSet<String> = self
            .values
            .for_plugin(name)
            .flat_map(|v| v.value.iter().cloned())
            .collect();
        if names.is_empty() {
            return None;
        }
        Some(Methods {
            names,
            default: false,
        })
    }
}

/// The methods one plugin may call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Methods {
    names: BTreeSet<String>,
    /// Whether this is [`READ_ONLY`], given by nobody.
    default: bool,
}

impl Methods {
    /// The default for a sandboxed native plugin ([`READ_ONLY`]).
    pub fn read_only() -> Methods {
        Methods {
            names: READ_ONLY.iter().map(|m| (*m).to_owned()).collect(),
            default: true,
        }
    }

    /// Whether `method` may be called.
    pub fn permits(&self, method: &str) -> bool {
        self.names.contains(ANY) || self.names.contains(method) || ALWAYS.contains(&method)
    }

    /// Whether every method may be called.
    pub fn is_any(&self) -> bool {
        self.names.contains(ANY)
    }

    /// Whether this is the default list.
    pub fn is_default(&self) -> bool {
        self.default
    }

    /// The list, for logs.
    pub fn describe(&self) -> String {
        let names: Vec<&str> = self.names.iter().map(String::as_str).collect();
        names.join(", ")
    }

    /// The list, for `autoreload-status`.
    pub fn to_json(&self) -> Value {
        json!({
            "methods": self.names.iter().collect::<Vec<_>>(),
            "default": if self.default { "read-only" } else { "given" },
        })
    }
}

/// Why a request does not go to lightningd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Not a JSON-RPC request object with a string `method`.
    NotRequest,
    /// The method is not allowed.
    Method(String),
}

/// Checks one raw request against `methods`: `Ok` with the bytes to send
/// to lightningd, the request as it was checked. Re-serialized from the
/// parsed value because with a key given twice serde keeps the last
/// `"method"` and lightningd's parser would run the first.
pub fn check(methods: &Methods, raw: &[u8]) -> Result<Vec<u8>, Refusal> {
    let parsed: Value = serde_json::from_slice(raw).map_err(|_| Refusal::NotRequest)?;
    let method = parsed
        .get("method")
        .and_then(Value::as_str)
        .ok_or(Refusal::NotRequest)?;
    if !methods.permits(method) {
        return Err(Refusal::Method(method.to_owned()));
    }
    serde_json::to_vec(&parsed).map_err(|_| Refusal::NotRequest)
}

/// The id of a raw request, for an answer to it (`null` when there is
/// none to find).
pub fn id_of(raw: &[u8]) -> Value {
    serde_json::from_slice::<Value>(raw)
        .ok()
        .and_then(|v| v.get("id").cloned())
        .unwrap_or(Value::Null)
}

/// A JSON-RPC error answer to the request `raw`.
pub fn error_answer(raw: &[u8], message: &str) -> Vec<u8> {
    let answer = json!({"jsonrpc": "2.0", "id": id_of(raw),
        "error": {"code": cln_protocol::errors::INVALID_REQUEST, "message": message}});
    serde_json::to_vec(&answer).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_and_binding() {
        let l = AllowList::parse(&["getinfo", "a.py::pay", "b.py::listfunds,listpeers"]);
        let a = l.for_plugin("a.py").expect("a has a list");
        assert!(a.permits("getinfo") && a.permits("pay") && !a.permits("listfunds"));
        let b = l.for_plugin("b.py").expect("b has a list");
        assert!(b.permits("listpeers") && !b.permits("pay"));
        assert!(AllowList::parse(&["a.py::pay"]).for_plugin("c").is_none());
        assert!(AllowList::parse(&["*"])
            .for_plugin("c")
            .is_some_and(|m| m.permits("withdraw")));
        let ro = Methods::read_only();
        assert!(ro.permits("getinfo") && ro.permits("notifications"));
        for m in [
            "signmessage",
            "withdraw",
            "pay",
            "close",
            "listconfigs",
            "listdatastore",
        ] {
            assert!(!ro.permits(m), "{m}");
        }
    }

    #[test]
    fn checks_what_is_sent() {
        let ro = Methods::read_only();
        let ok = check(
            &ro,
            br#"{"jsonrpc":"2.0","id":1,"method":"getinfo","params":{}}"#,
        );
        assert!(ok.is_ok());
        // serde keeps the last key: the bytes sent are the parsed value,
        // so lightningd runs what was checked.
        let dup = br#"{"jsonrpc":"2.0","id":1,"method":"signmessage","method":"getinfo"}"#;
        let sent = check(&ro, dup).expect("the last method is getinfo");
        assert!(!String::from_utf8_lossy(&sent).contains("signmessage"));
        assert_eq!(
            check(&ro, br#"{"id":1,"method":"withdraw"}"#),
            Err(Refusal::Method("withdraw".into()))
        );
        assert_eq!(check(&ro, b"[1]"), Err(Refusal::NotRequest));
        assert_eq!(
            check(&ro, br#"{"id":1,"method":7}"#),
            Err(Refusal::NotRequest)
        );
        let e: Value = serde_json::from_slice(&error_answer(br#"{"id":"x"}"#, "no")).unwrap();
        assert_eq!(e["id"], "x");
    }
}
