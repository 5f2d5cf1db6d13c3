//! What changed between the manifest lightningd registered and a new
//! version's.
//!
//! Owns: the comparison, and whether lightningd must re-read the manifest
//! for a change to work. Must not: decide to re-register (the supervisor
//! does) or check a manifest.

use super::Manifest;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::fmt;

/// What changed between the manifest lightningd knows and a new one.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Diff {
    /// `(what, name)` pairs, e.g. `("method", "hello")`.
    pub added: Vec<(&'static str, String)>,
    /// Removed entries.
    pub removed: Vec<(&'static str, String)>,
    /// Entries whose declaration changed.
    pub changed: Vec<(&'static str, String)>,
}

impl Diff {
    /// Compares two manifests.
    pub fn between(old: &Manifest, new: &Manifest) -> Diff {
        let mut d = Diff::default();
        d.compare("method", &old.methods, &new.methods);
        let opts = |m: &Manifest| {
            m.options
                .iter()
                .map(|o| (o.name.clone(), o.decl.clone()))
                .collect::<BTreeMap<_, _>>()
        };
        d.compare("option", &opts(old), &opts(new));
        d.compare("hook", &old.hooks, &new.hooks);
        let set = |v: &[String]| {
            v.iter()
                .map(|s| (s.clone(), Value::Null))
                .collect::<BTreeMap<_, _>>()
        };
        d.compare(
            "subscription",
            &set(&old.subscriptions),
            &set(&new.subscriptions),
        );
        d.compare(
            "notification",
            &set(&old.notifications),
            &set(&new.notifications),
        );
        for key in [
            "featurebits",
            "dynamic",
            "cancheck",
            "custommessages",
            "nonnumericids",
        ] {
            let (a, b) = (old.value.get(key), new.value.get(key));
            if a != b {
                match (a, b) {
                    (None, Some(_)) => d.added.push(("field", key.into())),
                    (Some(_), None) => d.removed.push(("field", key.into())),
                    _ => d.changed.push(("field", key.into())),
                }
            }
        }
        d
    }

    fn compare(
        &mut self,
        what: &'static str,
        old: &BTreeMap<String, Value>,
        new: &BTreeMap<String, Value>,
    ) {
        for (k, v) in new {
            match old.get(k) {
                None => self.added.push((what, k.clone())),
                Some(o) if o != v => self.changed.push((what, k.clone())),
                _ => {}
            }
        }
        for k in old.keys() {
            if !new.contains_key(k) {
                self.removed.push((what, k.clone()));
            }
        }
    }

    /// Whether lightningd must re-read the manifest for the change to
    /// work: something new to route, or a changed method or option.
    pub fn needs_registering(&self) -> bool {
        let relevant = |w: &str| {
            matches!(
                w,
                "method" | "hook" | "subscription" | "notification" | "option"
            )
        };
        self.added.iter().any(|(w, _)| relevant(w)) || self.changed.iter().any(|(w, _)| relevant(w))
    }

    /// True when nothing changed.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }

    /// The difference as JSON, for `autoreload-status`.
    pub fn to_json(&self) -> Value {
        let list = |v: &[(&str, String)]| {
            v.iter()
                .map(|(w, n)| format!("{w} {n}"))
                .collect::<Vec<_>>()
        };
        json!({"added": list(&self.added), "removed": list(&self.removed), "changed": list(&self.changed)})
    }
}

impl fmt::Display for Diff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = vec![];
        for (sign, list) in [
            ("+", &self.added),
            ("-", &self.removed),
            ("~", &self.changed),
        ] {
            for (what, name) in list {
                parts.push(format!("{sign}{what} {name}"));
            }
        }
        f.write_str(&parts.join(", "))
    }
}
