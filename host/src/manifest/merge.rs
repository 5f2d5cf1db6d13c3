//! What the host registers with lightningd: its plugins' manifests
//! merged into one, plus the host's own options and methods.
//!
//! Owns: how several plugins' manifests become one lightningd accepts
//! (each hook once, filters joined; the first plugin's scalars), the
//! host's own entries, and which names two plugins would both declare.
//! Must not: check a single plugin's answer ([`super::check`] did) or
//! refuse a plugin (the supervisor decides, from [`conflicts`]).

use super::check::has_featurebits;
use super::Manifest;
use serde_json::{json, Map, Value};

/// The host's own options, as declared to lightningd (from their
/// definitions, [`crate::options::ALL`]).
pub fn host_options() -> Vec<Value> {
    crate::options::manifest_entries()
}

/// The host's own rpc methods, as declared to lightningd.
pub fn host_methods() -> Vec<Value> {
    vec![
        json!({"name": "autoreload-restart", "usage": "[plugin]",
               "description": "Reload a managed plugin now; answers once the new version serves, or with why it could not start"}),
        json!({"name": "autoreload-reregister", "usage": "",
               "description": "Make lightningd register the plugins' current methods, hooks and options, without restarting lightningd (cln-autoreload must run from a wrapper script as a dynamic plugin)"}),
        json!({"name": "autoreload-status", "usage": "[plugin]",
               "description": "State of each plugin cln-autoreload manages: path, generation, pid, reloads, errors, requests in flight"}),
    ]
}

/// What the host registers with lightningd: the plugins' manifests merged,
/// plus the host's own options and methods, plus the `shutdown`
/// subscription the host needs to stop its children cleanly.
pub fn merged(children: &[&Manifest]) -> Value {
    let mut out = Map::new();
    let mut options = vec![];
    let mut methods = vec![];
    let mut hooks = vec![];
    let mut subs: Vec<Value> = vec![];
    let mut notes = vec![];
    for m in children {
        for (k, v) in &m.value {
            match k.as_str() {
                "options" | "rpcmethods" | "hooks" | "subscriptions" | "notifications" => {}
                // First plugin's values win for scalars; several plugins are
                // merged field by field only where lightningd allows it.
                _ => {
                    out.entry(k.clone()).or_insert_with(|| v.clone());
                }
            }
        }
        options.extend(
            m.value
                .get("options")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
        );
        methods.extend(
            m.value
                .get("rpcmethods")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
        );
        for h in m
            .value
            .get("hooks")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            merge_hook(&mut hooks, h);
        }
        for s in m
            .value
            .get("subscriptions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if !subs.contains(s) {
                subs.push(s.clone());
            }
        }
        notes.extend(
            m.value
                .get("notifications")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
        );
    }
    // The host must see shutdown to stop its children before lightningd
    // closes the pipes; it forwards it only to children that asked for it.
    let shutdown = Value::String("shutdown".into());
    if !subs.contains(&shutdown) && !subs.contains(&Value::String("*".into())) {
        subs.push(shutdown);
    }
    options.extend(host_options());
    methods.extend(host_methods());
    out.remove("disable");
    // lightningd kills a dynamic plugin that sets featurebits: when any
    // child sets them (only the first's are kept, and its "dynamic" may
    // not be the one kept), the host must not be dynamic either.
    if has_featurebits(&out) {
        out.insert("dynamic".into(), Value::Bool(false));
    } else {
        out.entry("dynamic").or_insert(Value::Bool(true));
    }
    out.insert("options".into(), Value::Array(options));
    out.insert("rpcmethods".into(), Value::Array(methods));
    if !hooks.is_empty() {
        out.insert("hooks".into(), Value::Array(hooks));
    }
    out.insert("subscriptions".into(), Value::Array(subs));
    if !notes.is_empty() {
        out.insert("notifications".into(), Value::Array(notes));
    }
    Value::Object(out)
}

/// Adds a hook registration to `hooks`, once per hook name: lightningd
/// kills a plugin that registers a hook twice, so when several managed
/// plugins want the same hook the host registers it once and chains them
/// itself. Filters are the union (no filter if any of them has none).
fn merge_hook(hooks: &mut Vec<Value>, h: &Value) {
    let name = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        other => other.get("name").and_then(Value::as_str).map(str::to_owned),
    };
    let Some(n) = name(h) else { return };
    let Some(existing) = hooks.iter_mut().find(|e| name(e).as_deref() == Some(&n)) else {
        hooks.push(h.clone());
        return;
    };
    let filters = |v: &Value| v.get("filters").and_then(Value::as_array).cloned();
    let merged = match (filters(existing), filters(h)) {
        (Some(mut a), Some(b)) => {
            for f in b {
                if !a.contains(&f) {
                    a.push(f);
                }
            }
            Some(a)
        }
        _ => None,
    };
    let mut decl = match &*existing {
        Value::String(s) => json!({ "name": s }),
        other => other.clone(),
    };
    if let Some(o) = decl.as_object_mut() {
        match merged {
            Some(f) => o.insert("filters".into(), Value::Array(f)),
            None => o.remove("filters"),
        };
    }
    *existing = decl;
}

/// Names two plugins both declare (methods, options, notifications), which
/// lightningd would refuse.
pub fn conflicts(a: &Manifest, b: &Manifest) -> Vec<String> {
    let mut out = vec![];
    for m in b.methods.keys().filter(|m| a.methods.contains_key(*m)) {
        out.push(format!("method '{m}'"));
    }
    for o in b.options.iter().filter(|o| a.option(&o.name).is_some()) {
        out.push(format!("option '{}'", o.name));
    }
    out
}
