//! Calls to lightningd's JSON-RPC socket (`lightning-rpc`).
//!
//! Owns: one request/response exchange on the unix socket. Used for wasm
//! guests' calls and for the host's own (re-registration). Must not: keep
//! connections or state.

use anyhow::{bail, Context as _};
use serde_json::{json, Value};
use std::path::Path;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Sends one raw JSON-RPC request and returns the raw response object.
pub async fn call_raw(socket: &Path, req: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut s = tokio::net::UnixStream::connect(socket)
        .await
        .with_context(|| format!("cannot connect to {}", socket.display()))?;
    s.write_all(req).await?;
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            bail!("lightningd closed the connection without answering");
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut it =
            serde_json::Deserializer::from_slice(&buf).into_iter::<serde::de::IgnoredAny>();
        match it.next() {
            Some(Ok(_)) => {
                let end = it.byte_offset();
                buf.truncate(end);
                let start = buf
                    .iter()
                    .position(|b| !b.is_ascii_whitespace())
                    .unwrap_or(0);
                return Ok(buf.split_off(start));
            }
            Some(Err(e)) if e.is_eof() => continue,
            None => continue,
            Some(Err(e)) => bail!("lightningd's answer is not JSON: {e}"),
        }
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
