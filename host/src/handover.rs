//! The state hand-over protocol between two versions of a plugin: how a
//! plugin says it keeps state (`"autoreload": {"state": true}` in its
//! manifest), the two requests the host sends of its own
//! (`autoreload-save-state` to the old version, `autoreload-restore-state`
//! to the new one), and how their answers are read.
//!
//! Owns: the wire format of the hand-over and its limits (size). Must not:
//! decide when a hand-over happens or what a failure does to the plugin's
//! life cycle; that is [`crate::supervisor`]'s.

use crate::framing::RawId;
use crate::ids::{Gen, OwnRequest};
use crate::jsonrpc;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{json, Value};
use std::fmt;

/// The manifest field a plugin declares its state in.
pub use cln_protocol::handover::MANIFEST_FIELD;
/// Sent to the new version: `{"state": <the value>}`; answer `{}`.
pub use cln_protocol::handover::RESTORE_STATE as RESTORE;
/// Sent to the old version: answer `{"state": <any JSON value>}`.
pub use cln_protocol::handover::SAVE_STATE as SAVE;
/// The largest state handed over, as the JSON of the save answer: the host
/// holds it in memory and writes it to the new version in one message.
pub const MAX_BYTES: usize = 16 << 20;

/// Which of the two requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `autoreload-save-state`.
    Save,
    /// `autoreload-restore-state`.
    Restore,
}

impl Op {
    /// The id the host gives this request to generation `number`.
    pub fn id(self, number: Gen) -> RawId {
        let own = match self {
            Op::Save => OwnRequest::SaveState,
            Op::Restore => OwnRequest::RestoreState,
        };
        own.id(number)
    }
}

/// What a manifest says about its state: `Ok(true)` when the plugin keeps
/// state, `Err` with the reason when the field is there but malformed.
pub fn declared(field: Option<&Value>) -> Result<bool, String> {
    let Some(field) = field else { return Ok(false) };
    match field.get("state") {
        Some(Value::Bool(b)) => Ok(*b),
        None if field.is_object() => Ok(false),
        _ => Err(format!(
            "\"{MANIFEST_FIELD}\": {field} ignored: it should be {{\"state\": true}} (or false)"
        )),
    }
}

/// The save request to generation `number`.
pub fn save_request(number: Gen) -> Bytes {
    jsonrpc::request(&Op::Save.id(number), SAVE, json!({}))
}

/// The restore request to generation `number`, carrying `state`.
pub fn restore_request(number: Gen, state: &RawValue) -> Bytes {
    #[derive(Serialize)]
    struct Params<'a> {
        state: &'a RawValue,
    }
    jsonrpc::request(&Op::Restore.id(number), RESTORE, Params { state })
}

/// A state saved by one version, for the next.
#[derive(Debug, Clone)]
pub struct Saved {
    /// The value the old version answered, as it wrote it: it goes to the
    /// new version byte for byte, never parsed into a tree (a state of
    /// megabytes would be copied twice more for nothing).
    pub state: Box<RawValue>,
    /// Which generation saved it.
    pub from: Gen,
    /// The size of its save answer.
    pub bytes: usize,
}

/// Why no state was handed over.
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    /// The plugin answered an error.
    Refused(String),
    /// The answer is larger than [`MAX_BYTES`].
    TooLarge(usize),
    /// The answer is not `{"result": {"state": ...}}`.
    Malformed(String),
    /// No answer in time.
    Timeout,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Refused(e) => write!(f, "it answered an error: {e}"),
            Failure::TooLarge(n) => write!(
                f,
                "its state is {:.1} MiB, more than the {} MiB handed over; keep less, or keep it in a file or lightningd's datastore",
                *n as f64 / f64::from(1 << 20),
                MAX_BYTES >> 20
            ),
            Failure::Malformed(why) => write!(f, "{why}"),
            Failure::Timeout => write!(f, "it did not answer in time"),
        }
    }
}

/// Reads an answer to the save request from generation `from`, given as
/// its raw bytes.
pub fn read_save(raw: &[u8], from: Gen) -> Result<Saved, Failure> {
    if raw.len() > MAX_BYTES {
        return Err(Failure::TooLarge(raw.len()));
    }
    #[derive(Deserialize)]
    struct Answer<'a> {
        #[serde(borrow)]
        result: Option<Result<'a>>,
        error: Option<&'a RawValue>,
    }
    #[derive(Deserialize)]
    struct Result<'a> {
        #[serde(borrow)]
        state: Option<&'a RawValue>,
    }
    let malformed = || {
        Failure::Malformed(format!(
            "its answer to {SAVE} is not {{\"result\": {{\"state\": ...}}}}: {}",
            crate::framing::preview(raw, 200)
        ))
    };
    match serde_json::from_slice::<Answer>(raw) {
        Ok(Answer {
            result: Some(Result { state: Some(state) }),
            error: None,
        }) => Ok(Saved {
            state: state.to_owned(),
            from,
            bytes: raw.len(),
        }),
        Ok(Answer { error: Some(_), .. }) => answer(raw).map_or_else(Err, |_| Err(malformed())),
        _ => Err(malformed()),
    }
}

/// Reads an answer to the restore request: `Ok` when the plugin took the
/// state.
pub fn read_restore(raw: &[u8]) -> Result<(), Failure> {
    answer(raw).map(drop)
}

fn answer(raw: &[u8]) -> Result<Value, Failure> {
    let Some(v) = jsonrpc::parse(raw) else {
        return Err(Failure::Malformed(format!(
            "its answer is not JSON: {}",
            crate::framing::preview(raw, 200)
        )));
    };
    match v.get("error") {
        Some(e) => {
            let text = e
                .get("message")
                .and_then(Value::as_str)
                .map_or_else(|| e.to_string(), str::to_owned);
            Err(Failure::Refused(text))
        }
        None => Ok(v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_name_the_request_and_the_generation() {
        let id = Op::Save.id(Gen(3));
        assert!(id != Op::Restore.id(Gen(3)) && id != Op::Save.id(Gen(4)));
        assert_eq!(id.to_string(), "\"autoreload:save-state#3\"");
    }

    #[test]
    fn the_declaration_is_read_or_explained() {
        assert_eq!(declared(None), Ok(false));
        assert_eq!(declared(Some(&json!({"state": true}))), Ok(true));
        assert_eq!(declared(Some(&json!({}))), Ok(false));
        assert!(declared(Some(&json!({"state": "yes"}))).is_err());
        assert!(declared(Some(&json!(true))).is_err());
    }

    #[test]
    fn save_answers_are_read_or_refused_with_a_reason() {
        let ok =
            br#"{"jsonrpc":"2.0","id":"autoreload:save-state#2","result":{"state":{"calls":3}}}"#;
        let saved = read_save(ok, Gen(2)).expect("a good answer");
        assert_eq!(saved.state.get(), r#"{"calls":3}"#);
        let restore = restore_request(Gen(3), &saved.state);
        let v: Value = serde_json::from_slice(&restore).expect("JSON");
        assert_eq!(v["params"]["state"], json!({"calls": 3}));
        assert_eq!(v["id"], "autoreload:restore-state#3");
        assert_eq!(saved.bytes, ok.len());
        let err = br#"{"jsonrpc":"2.0","id":"x","error":{"code":-1,"message":"no"}}"#;
        assert_eq!(
            read_save(err, Gen(2)).err(),
            Some(Failure::Refused("no".into()))
        );
        let bare = br#"{"jsonrpc":"2.0","id":"x","result":{}}"#;
        assert!(matches!(
            read_save(bare, Gen(2)),
            Err(Failure::Malformed(_))
        ));
        let big = vec![b' '; MAX_BYTES + 1];
        assert_eq!(
            read_save(&big, Gen(2)).err(),
            Some(Failure::TooLarge(MAX_BYTES + 1))
        );
    }
}
