//! The `init` lightningd sent, kept for replay to every new generation.
//!
//! Owns: which option values a plugin generation receives: lightningd's
//! values with the host's own options removed, the live value of dynamic
//! options changed through `setconfig`, defaults for options a reloaded
//! plugin added, and nothing for options it no longer declares. Must not:
//! know about processes or routing.

use crate::manifest::{Manifest, HOST_PREFIX};
use serde_json::{Map, Value};

/// lightningd's `init` params, minus the host's own options.
#[derive(Debug, Clone)]
pub struct CachedInit {
    options: Map<String, Value>,
    rest: Map<String, Value>,
    host: Map<String, Value>,
}

impl CachedInit {
    /// Splits lightningd's init params into the host's options and the rest.
    pub fn new(params: &Value) -> CachedInit {
        let mut rest = params.as_object().cloned().unwrap_or_default();
        let all = match rest.remove("options") {
            Some(Value::Object(o)) => o,
            _ => Map::new(),
        };
        let (host, options) = all
            .into_iter()
            .partition(|(k, _)| k.starts_with(HOST_PREFIX));
        CachedInit {
            options,
            rest,
            host,
        }
    }

    /// The host's own option values (`autoreload-*`).
    pub fn host_option(&self, name: &str) -> Option<&Value> {
        self.host.get(name)
    }

    /// The host's own option values, to read by their definitions.
    pub fn host_options(&self) -> crate::options::Given<'_> {
        crate::options::Given::new(&self.host)
    }

    /// The init params for a generation whose manifest is `current`, given
    /// the manifest lightningd registered (`registered`): lightningd's
    /// values for options both know, the declared default for options only
    /// the new version has, nothing for options it dropped.
    pub fn params_for(&self, registered: Option<&Manifest>, current: &Manifest) -> Value {
        let mut options = Map::new();
        for decl in &current.options {
            let known = registered.is_some_and(|r| r.option(&decl.name).is_some());
            if let Some(v) = self.options.get(&decl.name) {
                options.insert(decl.name.clone(), v.clone());
            } else if !known {
                // lightningd never parsed this option: give what lightningd
                // would have given for an unset option.
                if let Some(d) = &decl.default {
                    if decl.ty != "flag" {
                        let v = if decl.decl.get("multi") == Some(&Value::Bool(true)) {
                            Value::Array(vec![d.clone()])
                        } else {
                            d.clone()
                        };
                        options.insert(decl.name.clone(), v);
                    }
                }
            }
        }
        let mut params = self.rest.clone();
        params.insert("options".into(), Value::Object(options));
        Value::Object(params)
    }

    /// Records a value lightningd set with `setconfig`, typed as the option
    /// declares (lightningd sends `val` as a string even for ints), so the
    /// next generation starts with it.
    pub fn set(&mut self, decl_type: &str, name: &str, val: &Value) {
        let typed = match (decl_type, val) {
            ("int", Value::String(s)) => s
                .parse::<i64>()
                .map(Value::from)
                .unwrap_or_else(|_| val.clone()),
            ("bool" | "flag", Value::String(s)) => match s.as_str() {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                _ => val.clone(),
            },
            _ => val.clone(),
        };
        self.options.insert(name.to_owned(), typed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn manifest(opts: Value) -> Manifest {
        Manifest::from_result(&json!({"options": opts, "rpcmethods": []}))
            .unwrap()
            .0
    }

    fn trace_init() -> Value {
        json!({"options": {"trace-str": "hello", "trace-int": 42, "trace-flag": true,
                           "trace-multi": ["a", "b"], "autoreload-plugin": ["/x"], "autoreload-grace-ms": 10},
               "configuration": {"lightning-dir": "/l/regtest", "rpc-file": "lightning-rpc", "startup": true}})
    }

    #[test]
    fn strips_host_options_and_keeps_types() {
        let opts = json!([
            {"name": "trace-str", "type": "string", "description": ""},
            {"name": "trace-int", "type": "int", "description": ""},
            {"name": "trace-flag", "type": "flag", "description": ""},
            {"name": "trace-multi", "type": "string", "multi": true, "description": ""}
        ]);
        let m = manifest(opts);
        let c = CachedInit::new(&trace_init());
        let p = c.params_for(Some(&m), &m);
        assert_eq!(
            p["options"],
            json!({"trace-str": "hello", "trace-int": 42, "trace-flag": true, "trace-multi": ["a", "b"]})
        );
        assert_eq!(p["configuration"], trace_init()["configuration"]);
        assert_eq!(c.host_option("autoreload-grace-ms"), Some(&json!(10)));
    }

    #[test]
    fn new_options_get_defaults_and_dropped_ones_disappear() {
        let old = manifest(
            json!([{"name": "trace-str", "type": "string", "description": ""},
                                  {"name": "trace-int", "type": "int", "description": ""}]),
        );
        let new = manifest(
            json!([{"name": "trace-str", "type": "string", "description": ""},
                                  {"name": "added", "type": "int", "default": 5, "description": ""},
                                  {"name": "added-flag", "type": "flag", "default": false, "description": ""},
                                  {"name": "unset-known", "type": "string", "description": ""}]),
        );
        let c = CachedInit::new(&trace_init());
        let p = c.params_for(Some(&old), &new);
        assert_eq!(p["options"], json!({"trace-str": "hello", "added": 5}));
    }

    #[test]
    fn setconfig_values_are_typed_and_replayed() {
        let m = manifest(
            json!([{"name": "trace-int", "type": "int", "dynamic": true, "description": ""}]),
        );
        let mut c = CachedInit::new(&trace_init());
        c.set("int", "trace-int", &json!("5"));
        assert_eq!(c.params_for(Some(&m), &m)["options"]["trace-int"], json!(5));
    }
}
