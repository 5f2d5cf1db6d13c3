//! lightningd's datastore, as plugins use it to keep what must outlive
//! them: `datastore` (string values, the five modes), `listdatastore` and
//! `deldatastore`, with lightningd's generation counter per entry.
//!
//! Where the rules come from (ElementsProject/lightning at v26.06,
//! `lightningd/datastore.c`): a key is an array of strings (a string is a
//! one-element key); `must-create` fails on an existing key (code 1202),
//! `must-replace` and `must-append` on a missing one (1203); `listdatastore`
//! with a key lists that entry and, as here, those below it; each write
//! bumps the entry's `generation`.

use crate::proto::{error_response, ok_response};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// The entries, by key.
#[derive(Default)]
pub struct Store(BTreeMap<Vec<String>, (u64, String)>);

fn key_of(params: &Value) -> Option<Vec<String>> {
    let k = params.get("key").or_else(|| params.get(0))?;
    match k {
        Value::String(s) => Some(vec![s.clone()]),
        Value::Array(a) => a.iter().map(|x| x.as_str().map(str::to_owned)).collect(),
        _ => None,
    }
}

fn params_of(raw: Option<&str>) -> Value {
    raw.and_then(|p| serde_json::from_str(p).ok())
        .unwrap_or(Value::Null)
}

impl Store {
    /// `datastore`: answers for the caller `id`.
    pub fn datastore(&mut self, id: &str, raw: Option<&str>) -> Vec<u8> {
        let p = params_of(raw);
        let Some(key) = key_of(&p) else {
            return error_response(id, -32602, "key: should be a string or array of strings");
        };
        let Some(string) = p.get("string").or_else(|| p.get(1)).and_then(Value::as_str) else {
            return error_response(id, -32602, "this stand-in keeps string values only");
        };
        let mode = p
            .get("mode")
            .and_then(Value::as_str)
            .unwrap_or("must-create");
        let exists = self.0.contains_key(&key);
        let value = match (mode, exists) {
            ("must-create", true) => {
                return error_response(id, 1202, "Key already exists");
            }
            ("must-replace" | "must-append", false) => {
                return error_response(id, 1203, "Key does not exist");
            }
            ("must-append" | "create-or-append", true) => {
                format!("{}{string}", self.0[&key].1)
            }
            ("must-create" | "must-replace" | "create-or-replace" | "create-or-append", _) => {
                string.to_owned()
            }
            (m, _) => return error_response(id, -32602, &format!("mode: unknown {m}")),
        };
        let generation = self.0.get(&key).map_or(0, |(g, _)| g + 1);
        self.0.insert(key.clone(), (generation, value.clone()));
        ok_response(
            id,
            &json!({"key": key, "generation": generation, "string": value}).to_string(),
        )
    }

    /// `listdatastore`.
    pub fn list(&self, id: &str, raw: Option<&str>) -> Vec<u8> {
        let prefix = key_of(&params_of(raw)).unwrap_or_default();
        let found: Vec<Value> = self
            .0
            .iter()
            .filter(|(k, _)| k.starts_with(&prefix))
            .map(|(k, (g, s))| json!({"key": k, "generation": g, "string": s}))
            .collect();
        ok_response(id, &json!({ "datastore": found }).to_string())
    }

    /// `deldatastore`.
    pub fn delete(&mut self, id: &str, raw: Option<&str>) -> Vec<u8> {
        let Some(key) = key_of(&params_of(raw)) else {
            return error_response(id, -32602, "key: should be a string or array of strings");
        };
        match self.0.remove(&key) {
            Some((g, s)) => ok_response(
                id,
                &json!({"key": key, "generation": g, "string": s}).to_string(),
            ),
            None => error_response(id, 1203, "Key does not exist"),
        }
    }
}
