//! The host's option values as lightningd passes them in `init`, read by
//! their definitions: lightningd has already checked each against the
//! type the manifest declared (an `int` is a JSON number, a `multi` an
//! array), so reading is picking the JSON type out.
//!
//! Owns: turning one option's JSON value into a Rust value. Must not:
//! decide what a value means for the host (the caller does), or warn.

use super::Def;
use serde_json::{Map, Value};
use std::time::Duration;

/// The host's option values from `init` (`autoreload-*` only).
#[derive(Debug, Clone, Copy)]
pub struct Given<'a> {
    values: &'a Map<String, Value>,
}

impl<'a> Given<'a> {
    /// Reads from these values (name → JSON value).
    pub fn new(values: &'a Map<String, Value>) -> Given<'a> {
        Given { values }
    }

    /// The value as lightningd passed it, if it did.
    pub fn raw(&self, def: &Def) -> Option<&'a Value> {
        self.values.get(def.name)
    }

    /// An `int` option's value (a negative one is none: lightningd takes
    /// any integer, and none of the host's is meant below 0).
    pub fn int(&self, def: &Def) -> Option<u64> {
        self.raw(def).and_then(Value::as_u64)
    }

    /// An `int` option counted in milliseconds.
    pub fn millis(&self, def: &Def) -> Option<Duration> {
        self.int(def).map(Duration::from_millis)
    }

    /// A `bool` option's value.
    pub fn bool(&self, def: &Def) -> Option<bool> {
        self.raw(def).and_then(Value::as_bool)
    }

    /// A `string` option's value.
    pub fn str(&self, def: &Def) -> Option<&'a str> {
        self.raw(def).and_then(Value::as_str)
    }

    /// A value as text, whatever its JSON type (a number as its digits):
    /// for settings that read text from the command line as well.
    pub fn text(&self, def: &Def) -> Option<String> {
        match self.raw(def)? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }

    /// A `multi` option's values (one value, if lightningd passed a lone
    /// string).
    pub fn strings(&self, def: &Def) -> Vec<String> {
        match self.raw(def) {
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            Some(Value::String(s)) => vec![s.clone()],
            _ => vec![],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::*;
    use super::*;
    use serde_json::json;

    #[test]
    fn values_are_read_by_their_json_type() {
        let v = json!({"autoreload-grace-ms": 10, "autoreload-settle-ms": -1,
                       "autoreload-build": ["a", "b"], "autoreload-watch": "w",
                       "autoreload-reregister-on-change": true,
                       "autoreload-wasm-cache-mb": 3, "autoreload-wasm-compiler": "cranelift"});
        let map = v.as_object().cloned().unwrap_or_default();
        let g = Given::new(&map);
        assert_eq!(g.millis(&GRACE_MS), Some(Duration::from_millis(10)));
        assert_eq!(g.int(&SETTLE_MS), None);
        assert_eq!(g.strings(&BUILD), ["a", "b"]);
        assert_eq!(g.strings(&WATCH), ["w"]);
        assert_eq!(g.bool(&REREGISTER_ON_CHANGE), Some(true));
        assert_eq!(g.text(&WASM_CACHE_MB).as_deref(), Some("3"));
        assert_eq!(g.str(&WASM_COMPILER), Some("cranelift"));
        assert_eq!(g.raw(&PLUGIN), None);
    }
}
