//! What the dev node tells the plugin in the handshake.
//!
//! Owns: reading the methods a manifest registers, and building `init`'s
//! params as lightningd would: every option's default typed as lightningd
//! types it, the `--opt` values typed as the option declares, and a regtest
//! node's configuration. Must not: send anything, print, or check the
//! manifest beyond what it needs (the host it runs does that).

use super::args::GivenOpt;
use crate::manifest::HOST_PREFIX;
use serde_json::{json, Map, Value};
use std::collections::BTreeSet;
use std::path::Path;

/// The rpc methods a manifest registers (the host's own included).
pub(super) fn registered_methods(manifest: &Value) -> BTreeSet<String> {
    manifest
        .get("rpcmethods")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|m| m.get("name").and_then(Value::as_str).map(str::to_owned))
        .collect()
}

/// `init`'s params for a plugin with `manifest` in `lightning_dir`, or why
/// the `--opt` values do not fit its options.
pub(super) fn init_params(
    manifest: &Value,
    given: &[GivenOpt],
    lightning_dir: &Path,
) -> Result<Value, String> {
    let options = init_options(manifest, given)?;
    Ok(json!({
        "options": options,
        "configuration": {
            "lightning-dir": lightning_dir.to_string_lossy(),
            "rpc-file": "lightning-rpc",
            "startup": true,
            "network": "regtest",
            "feature_set": {
                "init": "800898880a8a59a1",
                "node": "808898880a8a59a1",
                "channel": "",
                "invoice": "02000002024100",
                "bolt12_offer": "",
                "bolt12_invreq": "",
                "bolt12_invoice": "020000",
                "channel_type": "08800000800000",
            },
        },
    }))
}

/// The option values init gives: each option's default (as lightningd
/// types it), then the `--opt` values, typed as the option declares.
fn init_options(manifest: &Value, given: &[GivenOpt]) -> Result<Map<String, Value>, String> {
    let decls: Vec<&Value> = manifest
        .get("options")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .collect();
    let name_of = |d: &Value| {
        d.get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    let ty_of = |d: &Value| {
        d.get("type")
            .and_then(Value::as_str)
            .unwrap_or("string")
            .to_owned()
    };
    let multi = |d: &Value| d.get("multi") == Some(&Value::Bool(true));
    let mut out = Map::new();
    for d in &decls {
        let ty = ty_of(d);
        let Some(default) = d.get("default").filter(|_| ty != "flag") else {
            continue;
        };
        let v = match default {
            Value::String(s) => typed(&ty, s).unwrap_or_else(|_| default.clone()),
            other => other.clone(),
        };
        out.insert(name_of(d), if multi(d) { json!([v]) } else { v });
    }
    let mut replaced = BTreeSet::new();
    for (name, value) in given {
        let Some(d) = decls.iter().find(|d| name_of(d) == *name) else {
            let mut names: Vec<String> = decls
                .iter()
                .map(|d| name_of(d))
                .filter(|n| !n.starts_with(HOST_PREFIX))
                .collect();
            if names.is_empty() {
                names.push("none".into());
            }
            return Err(format!(
                "--opt {name}: the plugin has no option '{name}' (it has: {}; the host's own are autoreload-*)",
                names.join(", ")
            ));
        };
        let ty = ty_of(d);
        let v = match (ty.as_str(), value.as_deref()) {
            ("flag", None | Some("true")) => Value::Bool(true),
            ("flag", Some("false")) => {
                out.remove(name);
                continue;
            }
            ("flag", Some(_)) => {
                return Err(format!("--opt {name}: a flag takes no value: --opt {name}"))
            }
            (_, None) => return Err(format!("--opt {name}: give a value: --opt {name}=VALUE")),
            (_, Some(s)) => typed(&ty, s).map_err(|e| format!("--opt {name}={s}: {e}"))?,
        };
        if multi(d) {
            if replaced.insert(name.clone()) {
                out.insert(name.clone(), json!([]));
            }
            if let Some(Value::Array(a)) = out.get_mut(name) {
                a.push(v);
            }
        } else {
            out.insert(name.clone(), v);
        }
    }
    Ok(out)
}

/// A value given as text, typed as lightningd types an option's value.
fn typed(ty: &str, s: &str) -> Result<Value, String> {
    match ty {
        "int" => s
            .parse::<i64>()
            .map(Value::from)
            .map_err(|_| "an int option: give a whole number".to_string()),
        "bool" => match s {
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            _ => Err("a bool option: give true or false".to_string()),
        },
        _ => Ok(Value::String(s.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_option_types() {
        let manifest: Value = serde_json::from_str(
            r#"{"options": [
                {"name": "s", "type": "string", "default": "dflt", "description": ""},
                {"name": "i", "type": "int", "default": 7, "description": ""},
                {"name": "is", "type": "int", "default": "8", "description": ""},
                {"name": "b", "type": "bool", "default": false, "description": ""},
                {"name": "f", "type": "flag", "default": false, "description": ""},
                {"name": "m", "type": "string", "multi": true, "description": ""},
                {"name": "md", "type": "int", "multi": true, "default": 1, "description": ""},
                {"name": "n", "type": "string", "description": ""}
            ]}"#,
        )
        .unwrap();
        let defaults = init_options(&manifest, &[]).unwrap();
        assert_eq!(
            Value::Object(defaults),
            json!({"s": "dflt", "i": 7, "is": 8, "b": false, "md": [1]})
        );
        let given: Vec<(String, Option<String>)> = [
            ("i", Some("42")),
            ("b", Some("true")),
            ("f", None),
            ("m", Some("a")),
            ("m", Some("b")),
            ("md", Some("5")),
        ]
        .iter()
        .map(|(n, v)| (n.to_string(), v.map(str::to_string)))
        .collect();
        let set = init_options(&manifest, &given).unwrap();
        assert_eq!(
            Value::Object(set),
            json!({"s": "dflt", "i": 42, "is": 8, "b": true, "f": true, "m": ["a", "b"], "md": [5]})
        );
        let bad = |n: &str, v: Option<&str>| {
            init_options(&manifest, &[(n.to_string(), v.map(str::to_string))]).unwrap_err()
        };
        assert!(bad("i", Some("x")).contains("whole number"));
        assert!(bad("b", Some("yes")).contains("true or false"));
        assert!(bad("nope", Some("1")).contains("no option 'nope'"));
        assert!(bad("s", None).contains("give a value"));
    }
}
