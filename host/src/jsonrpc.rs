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

/// Error code lightningd itself uses when a plugin cannot answer a call
/// (terminated, crashed); also what a hook treats like `continue`.
pub const PLUGIN_TERMINATED: i64 = -4;
/// JSON-RPC "method not found".
pub const METHOD_NOT_FOUND: i64 = -32601;
/// JSON-RPC "invalid params".
pub const INVALID_PARAMS: i64 = -32602;

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

/// An error response.
pub fn error(id: &RawId, code: i64, message: &str) -> Bytes {
    to_bytes(&ErrorResponse {
        jsonrpc: "2.0",
        id: id.as_raw(),
        error: ErrorObject { code, message },
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

/// The answer that lets lightningd go on as if no plugin had the hook.
pub fn hook_continue(id: &RawId) -> Bytes {
    response(id, serde_json::json!({"result": "continue"}))
}

/// Parses a message's full JSON, for the few messages the host reads in
/// depth (getmanifest and init results, host method params).
pub fn parse(raw: &[u8]) -> Option<Value> {
    serde_json::from_slice(raw).ok()
}
