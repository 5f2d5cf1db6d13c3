//! Checking a plugin's `getmanifest` answer, one part at a time: each
//! step removes from the manifest what lightningd would kill the plugin
//! (and so the host) for, and says why in words the user can act on.
//!
//! Owns: the rules each part of a manifest must follow to be registered.
//! Must not: merge manifests ([`super::merge`]) or compare versions
//! ([`super::diff`]); it sees one plugin's answer only.

use super::builtin;
use super::OptionDecl;
use crate::handover;
use crate::options::HOST_PREFIX;
use cln_protocol::{hooks, notifications, Filter, OptionType};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// What is wrong with a manifest, one line per removal, for the user.
pub(super) type Problems = Vec<String>;

/// The state hand-over declaration (`"autoreload": {"state": true}`),
/// taken out of the manifest: it is ours, not lightningd's, which never
/// sees the field, nor the two methods a framework may have listed to
/// answer the hand-over.
pub(super) fn state_declaration(value: &mut Map<String, Value>, problems: &mut Problems) -> bool {
    handover::declared(value.remove(handover::MANIFEST_FIELD).as_ref()).unwrap_or_else(|why| {
        problems.push(why);
        false
    })
}

/// `rpcmethods`: each needs a name and a usage, and a name neither
/// lightningd nor the host has. Returns name → declaration.
pub(super) fn methods(
    value: &mut Map<String, Value>,
    problems: &mut Problems,
) -> BTreeMap<String, Value> {
    let mut methods = BTreeMap::new();
    let mut kept = vec![];
    for m in take_array(value, "rpcmethods", problems) {
        let name = m.get("name").and_then(Value::as_str).map(str::to_owned);
        let Some(name) = name else {
            problems.push(format!(
                "rpc method without a \"name\" dropped: {}",
                short(&m)
            ));
            continue;
        };
        if !m.get("usage").is_some_and(Value::is_string) {
            problems.push(format!(
                "rpc method '{name}' dropped: it has no \"usage\" string (lightningd requires one, e.g. \"usage\": \"[arg]\")"
            ));
            continue;
        }
        if name == handover::SAVE || name == handover::RESTORE {
            continue;
        }
        if name.starts_with(HOST_PREFIX) {
            problems.push(format!(
                "rpc method '{name}' dropped: names starting with '{HOST_PREFIX}' belong to cln-autoreload"
            ));
            continue;
        }
        if builtin::METHODS.contains(&name.as_str()) {
            problems.push(format!(
                "rpc method '{name}' dropped: lightningd has a command of that name"
            ));
            continue;
        }
        if m.get("description").is_some_and(|d| !d.is_string()) {
            problems.push(format!(
                "rpc method '{name}' dropped: its \"description\" is not a string"
            ));
            continue;
        }
        if methods.contains_key(&name) {
            problems.push(format!(
                "rpc method '{name}' declared twice; the second dropped"
            ));
            continue;
        }
        methods.insert(name, m.clone());
        kept.push(m);
    }
    value.insert("rpcmethods".into(), Value::Array(kept));
    methods
}

/// `options`: each needs a name, a type lightningd knows and a
/// description, and a name neither lightningd nor the host has.
pub(super) fn options(value: &mut Map<String, Value>, problems: &mut Problems) -> Vec<OptionDecl> {
    let mut options: Vec<OptionDecl> = vec![];
    let mut kept = vec![];
    for o in take_array(value, "options", problems) {
        let name = o.get("name").and_then(Value::as_str).map(str::to_owned);
        let ty = o.get("type").and_then(Value::as_str).map(str::to_owned);
        let (Some(name), Some(ty)) = (name, ty) else {
            problems.push(format!(
                "option dropped: it needs a \"name\" and a \"type\": {}",
                short(&o)
            ));
            continue;
        };
        if !o.get("description").is_some_and(Value::is_string) {
            problems.push(format!(
                "option '{name}' dropped: it has no \"description\""
            ));
            continue;
        }
        if OptionType::from_name(&ty).is_none() {
            let all: Vec<&str> = OptionType::ALL.iter().map(|t| t.as_str()).collect();
            problems.push(format!(
                "option '{name}' dropped: type '{ty}' is not one of {}",
                all.join(", ")
            ));
            continue;
        }
        if name.starts_with(HOST_PREFIX) {
            problems.push(format!(
                "option '{name}' dropped: names starting with '{HOST_PREFIX}' belong to cln-autoreload"
            ));
            continue;
        }
        if let Some(why) = bad_option(&name, &ty, &o) {
            problems.push(format!("option '{name}' dropped: {why}"));
            continue;
        }
        if options.iter().any(|d| d.name == name) {
            problems.push(format!(
                "option '{name}' declared twice; the second dropped"
            ));
            continue;
        }
        options.push(OptionDecl {
            name,
            ty,
            default: o.get("default").cloned(),
            decl: o.clone(),
        });
        kept.push(o);
    }
    value.insert("options".into(), Value::Array(kept));
    options
}

/// `hooks`: each must be one lightningd v26.06 has, registered once;
/// `filters` only where lightningd takes them. Returns name →
/// declaration.
pub(super) fn hooks(
    value: &mut Map<String, Value>,
    problems: &mut Problems,
) -> BTreeMap<String, Value> {
    let mut hooks = BTreeMap::new();
    if let Some(list) = value.remove("hooks") {
        let mut kept = vec![];
        for h in as_list(list, "hooks", problems) {
            let (name, mut decl) = match &h {
                Value::String(s) => (s.clone(), json!({ "name": s })),
                Value::Object(o) => match o.get("name").and_then(Value::as_str) {
                    Some(n) => (n.to_owned(), h.clone()),
                    None => {
                        problems.push(format!("hook without a \"name\" dropped: {}", short(&h)));
                        continue;
                    }
                },
                _ => {
                    problems.push(format!("hook dropped: {}", short(&h)));
                    continue;
                }
            };
            let Some(known) = hooks::find(&name) else {
                problems.push(format!(
                    "hook '{name}' dropped: lightningd v26.06 has no such hook"
                ));
                continue;
            };
            if hooks.contains_key(&name) {
                problems.push(format!(
                    "hook '{name}' registered twice; the second dropped"
                ));
                continue;
            }
            if let Some(o) = decl.as_object_mut() {
                if known.filter == Filter::None {
                    if o.remove("filters").is_some() {
                        problems.push(format!(
                            "hook '{name}': \"filters\" removed (only rpc_command and custommsg take filters)"
                        ));
                    }
                } else if o.get("filters").is_some_and(|f| !f.is_array()) {
                    o.remove("filters");
                    problems.push(format!(
                        "hook '{name}': \"filters\" is not an array, removed (the hook gets every call)"
                    ));
                }
            }
            hooks.insert(name, decl.clone());
            kept.push(if h.is_string() { h } else { decl });
        }
        value.insert("hooks".into(), Value::Array(kept));
    }
    hooks
}

/// `notifications` the plugin may send: not one only lightningd sends.
/// Returns their names.
pub(super) fn notifications(
    value: &mut Map<String, Value>,
    problems: &mut Problems,
) -> Vec<String> {
    let mut notifications = vec![];
    if let Some(list) = value.remove("notifications") {
        let mut kept = vec![];
        for n in as_list(list, "notifications", problems) {
            match n.get("method").and_then(Value::as_str) {
                None => problems.push(format!(
                    "notification without a \"method\" dropped: {}",
                    short(&n)
                )),
                Some(m) if notifications::is_native(m) => problems.push(format!(
                    "notification '{m}' dropped: only lightningd may send it"
                )),
                Some(m) => {
                    notifications.push(m.to_owned());
                    kept.push(n);
                }
            }
        }
        value.insert("notifications".into(), Value::Array(kept));
    }
    notifications
}

/// The fields lightningd is strict about: `nonnumericids` may only be
/// true, `dynamic` must be a boolean, and false when the plugin sets
/// featurebits.
pub(super) fn fields(value: &mut Map<String, Value>, problems: &mut Problems) {
    if let Some(v) = value.get("nonnumericids") {
        if v != &Value::Bool(true) {
            problems.push(format!(
                "\"nonnumericids\": {v} removed (lightningd only accepts true)"
            ));
            value.remove("nonnumericids");
        }
    }
    if let Some(v) = value.get("dynamic").filter(|v| !v.is_boolean()) {
        problems.push(format!(
            "\"dynamic\": {v} removed (lightningd kills a plugin whose \"dynamic\" is not a boolean)"
        ));
        value.remove("dynamic");
    }
    if value.get("dynamic") == Some(&Value::Bool(true)) && has_featurebits(value) {
        problems.push(
            "\"dynamic\" set to false: lightningd refuses featurebits from a dynamic plugin".into(),
        );
        value.insert("dynamic".into(), Value::Bool(false));
    }
}

/// Why lightningd would refuse an option declaration, if it would.
fn bad_option(name: &str, ty: &str, o: &Value) -> Option<String> {
    if builtin::OPTIONS.contains(&name) {
        return Some("lightningd has an option of that name".into());
    }
    if name.contains('|') {
        return Some("lightningd does not allow '|' in option names".into());
    }
    for k in ["multi", "dynamic", "deprecated"] {
        if o.get(k).is_some_and(|v| !v.is_boolean()) {
            return Some(format!("\"{k}\" must be true or false"));
        }
    }
    if o.get("multi") == Some(&Value::Bool(true)) && matches!(ty, "bool" | "flag") {
        return Some(format!("a {ty} option cannot be multi"));
    }
    let default = o.get("default").filter(|d| !d.is_null() && ty != "flag")?;
    let text = default
        .as_str()
        .map_or_else(|| default.to_string(), str::to_owned);
    let fits = match ty {
        "int" => text.parse::<i64>().is_ok(),
        "bool" => matches!(text.as_str(), "true" | "false"),
        _ => true,
    };
    (!fits).then(|| format!("its default {default} is not a valid {ty}"))
}

/// Whether a manifest sets featurebits, which lightningd refuses from a
/// dynamic plugin.
pub(super) fn has_featurebits(value: &Map<String, Value>) -> bool {
    value
        .get("featurebits")
        .is_some_and(|f| f.as_object().is_some_and(|o| !o.is_empty()))
}

/// The array under `key`, taken out (an empty one, with a problem, when
/// it is missing).
fn take_array(value: &mut Map<String, Value>, key: &str, problems: &mut Vec<String>) -> Vec<Value> {
    match value.remove(key) {
        Some(v) => as_list(v, key, problems),
        None => {
            problems.push(format!(
                "\"{key}\" missing (lightningd requires an array; an empty one used)"
            ));
            vec![]
        }
    }
}

/// `v` as an array (an empty one, with a problem, when it is not).
fn as_list(v: Value, key: &str, problems: &mut Vec<String>) -> Vec<Value> {
    match v {
        Value::Array(a) => a,
        other => {
            problems.push(format!(
                "\"{key}\" is not an array, ignored: {}",
                short(&other)
            ));
            vec![]
        }
    }
}

/// The strings of the array under `key`.
pub(super) fn strings(value: &Map<String, Value>, key: &str) -> Vec<String> {
    value
        .get(key)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// A value, shortened for a message.
pub(super) fn short(v: &Value) -> String {
    crate::framing::preview(v.to_string().as_bytes(), 200)
}
