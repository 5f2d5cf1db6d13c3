//! Plugin manifests: reading a plugin's `getmanifest` answer and making it
//! safe to hand to lightningd (`check.rs`), merging it with the other
//! plugins' and the host's own options and methods (`merge.rs`), and
//! describing what changed between two versions (`diff.rs`); which names
//! lightningd keeps for itself is in `builtin.rs`.
//!
//! Owns: every rule about manifest contents. Must not: talk to processes or
//! lightningd; it works on values only.

mod builtin;
mod check;
mod diff;
mod merge;
#[cfg(test)]
mod tests;

pub use crate::options::HOST_PREFIX;
pub use diff::Diff;
pub use merge::{conflicts, host_methods, host_options, merged};

use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// One option a plugin declares.
#[derive(Debug, Clone, PartialEq)]
pub struct OptionDecl {
    /// Option name, without `--`.
    pub name: String,
    /// `string`, `int`, `bool`, `flag` or `string-conceal`.
    pub ty: String,
    /// Declared default, if any.
    pub default: Option<Value>,
    /// The whole declaration, to compare versions.
    pub decl: Value,
}

/// A plugin's manifest, checked: everything in it is safe to register.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    /// The manifest object, with anything lightningd would refuse removed.
    pub value: Map<String, Value>,
    /// Rpc method name → its declaration.
    pub methods: BTreeMap<String, Value>,
    /// Options, in declaration order.
    pub options: Vec<OptionDecl>,
    /// Hook name → its declaration.
    pub hooks: BTreeMap<String, Value>,
    /// Subscribed notification topics (`*` for all).
    pub subscriptions: Vec<String>,
    /// Custom notifications the plugin may send.
    pub notifications: Vec<String>,
    /// It declared `"autoreload": {"state": true}`: it hands its state to
    /// its next version (see [`crate::handover`]).
    pub keeps_state: bool,
}

impl Manifest {
    /// Checks a `getmanifest` result. Entries lightningd would kill the
    /// plugin for are removed; each removal is described in the returned
    /// list, so the user learns what to fix.
    pub fn from_result(result: &Value) -> Result<(Manifest, Vec<String>), String> {
        let Some(obj) = result.as_object() else {
            return Err(format!(
                "getmanifest result is not a JSON object: {}",
                check::short(result)
            ));
        };
        let mut value = obj.clone();
        let mut problems = vec![];
        // One step per part, in this order: each takes its part out of
        // `value` and puts back what lightningd may see.
        let keeps_state = check::state_declaration(&mut value, &mut problems);
        let methods = check::methods(&mut value, &mut problems);
        let options = check::options(&mut value, &mut problems);
        let hooks = check::hooks(&mut value, &mut problems);
        let subscriptions = check::strings(&value, "subscriptions");
        let notifications = check::notifications(&mut value, &mut problems);
        check::fields(&mut value, &mut problems);
        Ok((
            Manifest {
                value,
                methods,
                options,
                hooks,
                subscriptions,
                notifications,
                keeps_state,
            },
            problems,
        ))
    }

    /// Whether the plugin asked to be disabled, and why.
    pub fn disabled(&self) -> Option<String> {
        self.value.get("disable").map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
    }

    /// Whether the plugin wants notifications of this topic.
    pub fn subscribes(&self, topic: &str) -> bool {
        self.subscriptions.iter().any(|s| s == topic || s == "*")
    }

    /// The declaration of an option.
    pub fn option(&self, name: &str) -> Option<&OptionDecl> {
        self.options.iter().find(|o| o.name == name)
    }
}

/// Whether a plugin's hook registration wants this call (its `filters`):
/// rpc_command filters name methods, custommsg filters message types.
pub fn hook_wants(manifest: &Manifest, hook: &str, params: Option<&Value>) -> bool {
    let Some(decl) = manifest.hooks.get(hook) else {
        return false;
    };
    let Some(filters) = decl.get("filters").and_then(Value::as_array) else {
        return true;
    };
    let Some(params) = params else { return true };
    match hook {
        "rpc_command" => {
            let method = params
                .pointer("/rpc_command/method")
                .and_then(Value::as_str);
            method.is_none_or(|m| filters.iter().any(|f| f.as_str() == Some(m)))
        }
        "custommsg" => {
            let ty = params
                .get("payload")
                .and_then(Value::as_str)
                .and_then(|p| p.get(..4))
                .and_then(|t| u64::from_str_radix(t, 16).ok());
            ty.is_none_or(|t| filters.iter().any(|f| f.as_u64() == Some(t)))
        }
        _ => true,
    }
}
