//! Builds the JSON-RPC messages the host itself sends.
//!
//! Owns: the exact shape of responses, errors, requests and notifications
//! the host writes (to lightningd or to a plugin). Must not: decide what to
//! send; it only serializes.

use crate::framing::RawId;
use bytes::Bytes;
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::Value;

pub use cln_protocol::errors::{INVALID_PARAMS, METHOD_NOT_FOUND, PLUGIN_TERMINATED};

#[derive(Serialize)]
struct Response<'a, T: Serialize> {
    jsonrpc: &'static str,
    id: &'a RawValue,
    result: T,
}

#[derive(Serialize)]
struct ErrorResponse<'a> {
    jsonrpc: &'static str,
    id: &'a RawValue,
    error: ErrorObject<'a>,
}

#[derive(Serialize)]
struct ErrorObject<'a> {
    code: i64,
    message: &'a str,
    data: ErrorData,
}

#[derive(Serialize)]
struct ErrorData {
    kind: ErrorKind,
}

/// Why the host answered a request with an error, for programs: it goes
/// in `error.data.kind` (lightningd forwards a plugin's error object to
/// the caller whole), so a caller can tell a reload from a crash without
/// reading the message, which is for people and may be reworded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorKind {
    /// The plugin was reloaded while the call was in flight: call again.
    Reloaded,
    /// The plugin crashed while the call was in flight.
    Crashed,
    /// It was stopped for running too long on one request (wasm).
    Timeout,
    /// It was stopped for asking for more memory than allowed (wasm).
    OutOfMemory,
    /// No version of the plugin runs (it failed to start, crash loop).
    Down,
    /// cln-autoreload is shutting down.
    ShuttingDown,
    /// The method was removed by the plugin's new version.
    RemovedMethod,
    /// No managed plugin has the method.
    UnknownMethod,
    /// `autoreload-restart` asked for a version that did not start.
    ReloadFailed,
    /// `autoreload-reregister` could not re-register.
    ReregisterFailed,
    /// The request's parameters are wrong.
    InvalidParams,
    /// The request came out of order (a second getmanifest, a request
    /// from a plugin on stdout).
    Protocol,
}

impl ErrorKind {
    /// The JSON-RPC error code: lightningd's own for a plugin that cannot
    /// answer (what it sends when a plugin dies), else the JSON-RPC
    /// standard one.
    pub fn code(self) -> i64 {
        match self {
            ErrorKind::RemovedMethod | ErrorKind::UnknownMethod => METHOD_NOT_FOUND,
            ErrorKind::InvalidParams | ErrorKind::Protocol => INVALID_PARAMS,
            _ => PLUGIN_TERMINATED,
        }
    }
}

#[derive(Serialize)]
struct Request<'a, T: Serialize> {
    jsonrpc: &'static str,
    id: &'a RawValue,
    method: &'a str,
    params: T,
}

#[derive(Serialize)]
struct Notification<'a, T: Serialize> {
    jsonrpc: &'static str,
    method: &'a str,
    params: T,
}

fn to_bytes<T: Serialize>(msg: &T) -> Bytes {
    // Serializing our own plain structs and `Value`s cannot fail.
    Bytes::from(serde_json::to_vec(msg).unwrap_or_default())
}

/// A successful response.
pub fn response<T: Serialize>(id: &RawId, result: T) -> Bytes {
    to_bytes(&Response {
        jsonrpc: "2.0",
        id: id.as_raw(),
        result,
    })
}

/// An error response of the host's own, with its kind in `error.data`.
pub fn error(id: &RawId, kind: ErrorKind, message: &str) -> Bytes {
    to_bytes(&ErrorResponse {
        jsonrpc: "2.0",
        id: id.as_raw(),
        error: ErrorObject {
            code: kind.code(),
            message,
            data: ErrorData { kind },
        },
    })
}

/// A request.
pub fn request<T: Serialize>(id: &RawId, method: &str, params: T) -> Bytes {
    to_bytes(&Request {
        jsonrpc: "2.0",
        id: id.as_raw(),
        method,
        params,
    })
}

/// A notification.
pub fn notification<T: Serialize>(method: &str, params: T) -> Bytes {
    to_bytes(&Notification {
        jsonrpc: "2.0",
        method,
        params,
    })
}

/// A `log` notification: a line in lightningd's log at `level` (one of
/// the names lightningd takes there).
pub fn log(level: &str, message: &str) -> Bytes {
    notification(
        "log",
        serde_json::json!({"level": level, "message": message}),
    )
}

/// The answer that lets lightningd go on as if no plugin had the hook.
pub fn hook_continue(id: &RawId) -> Bytes {
    response(id, serde_json::json!({"result": "continue"}))
}

/// Parses a message's full JSON, for the few messages the host reads in
/// depth (getmanifest and init results, host method params).
pub fn parse(raw: &[u8]) -> Option<Value> {
    serde_json::from_slice(raw).ok()
}
