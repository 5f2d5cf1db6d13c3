//! Calls to lightningd's JSON-RPC socket (`lightning-rpc`).
//!
//! Owns: one request/response exchange on the unix socket (the answer read
//! through [`crate::decode::FrameReader`]). Used for wasm guests' calls and
//! for the host's own (re-registration). Must not: keep connections or
//! state.

use crate::decode::{Ended, FrameReader};
use crate::framing::Frame;
use anyhow::{bail, Context as _};
use serde_json::{json, Value};
use std::ops::ControlFlow;
use std::path::Path;
use tokio::io::AsyncWriteExt;

/// Sends one raw JSON-RPC request and returns the raw response object
/// (the first message lightningd sends back, exactly as it came).
pub async fn call_raw(socket: &Path, req: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut s = tokio::net::UnixStream::connect(socket)
        .await
        .with_context(|| format!("cannot connect to {}", socket.display()))?;
    s.write_all(req).await?;
    // The framer finds where the answer ends as bytes arrive, however many
    // reads a large answer takes, without parsing it again from its start.
    let mut answer = None;
    let ended = FrameReader::new(s)
        .run(&mut |frame| {
            answer = Some(frame);
            ControlFlow::Break(())
        })
        .await;
    match (ended, answer) {
        (Ended::Stopped, Some(Frame::Message(m))) => Ok(m.raw.to_vec()),
        (Ended::Stopped, Some(Frame::Garbage { reason, .. })) => {
            bail!("lightningd's answer is not a JSON-RPC message: {reason}")
        }
        _ => bail!("lightningd closed the connection without answering"),
    }
}

/// Calls `method` and returns its result, or its error as an error.
pub async fn call(socket: &Path, method: &str, params: Value) -> anyhow::Result<Value> {
    let req = json!({"jsonrpc": "2.0", "id": format!("cln-autoreload:{method}"), "method": method, "params": params});
    let raw = call_raw(socket, req.to_string().as_bytes()).await?;
    let v: Value = serde_json::from_slice(&raw)?;
    if let Some(e) = v.get("error") {
        bail!("{method}: {e}");
    }
    Ok(v.get("result").cloned().unwrap_or(Value::Null))
}
