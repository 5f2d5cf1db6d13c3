//! One JSON-RPC call to lightningd.
//!
//! Natively the call goes over lightningd's unix socket (`rpc-file` from
//! `init`, relative to the working directory). In WebAssembly (WASI
//! preview 1 has no unix sockets) it goes through the two functions the
//! cln-autoreload host provides in the import module `"cln"`.

use serde_json::{json, Value};

use crate::RpcError;

/// Makes the call and returns lightningd's `result`, or its `error`.
pub(crate) fn call(
    rpc_file: Option<&str>,
    id: u64,
    method: &str,
    params: Value,
) -> Result<Value, RpcError> {
    let request = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
    let bytes = serde_json::to_vec(&request)
        .map_err(|e| RpcError::transport(format!("rpc {method}: {e}")))?;
    let response = exchange(rpc_file, id, &bytes)
        .map_err(|e| RpcError::transport(format!("rpc {method}: {e}")))?;
    interpret(response)
}

/// Splits a JSON-RPC response into its result or its error.
fn interpret(response: Value) -> Result<Value, RpcError> {
    let Value::Object(mut map) = response else {
        return Err(RpcError::transport(
            "rpc: the response is not a JSON object",
        ));
    };
    if let Some(error) = map.remove("error") {
        return Err(match serde_json::from_value::<RpcError>(error.clone()) {
            Ok(e) => e,
            // Not a {code, message} object: keep it whole in `data`.
            Err(_) => {
                RpcError::new(RpcError::TRANSPORT, "rpc: malformed error response").with_data(error)
            }
        });
    }
    match map.remove("result") {
        Some(result) => Ok(result),
        None => Err(RpcError::transport(
            "rpc: the response has neither result nor error",
        )),
    }
}

#[cfg(target_arch = "wasm32")]
mod host {
    #[link(wasm_import_module = "cln")]
    extern "C" {
        /// Performs one JSON-RPC call on lightningd. `req` is a whole JSON-RPC
        /// request object (UTF-8 JSON). Returns the byte length of the whole
        /// JSON-RPC response object; it stays available for `rpc_result`
        /// until the next `rpc_call`. Negative on a host failure.
        pub fn rpc_call(req_ptr: *const u8, req_len: usize) -> i32;
        /// Copies the pending response into `buf` (up to `buf_len` bytes);
        /// returns the number of bytes copied (negative on failure).
        pub fn rpc_result(buf_ptr: *mut u8, buf_len: usize) -> i32;
    }
}

/// Sends `request` through the host and returns its response.
#[cfg(target_arch = "wasm32")]
fn exchange(_rpc_file: Option<&str>, _id: u64, request: &[u8]) -> Result<Value, String> {
    // SAFETY: the host reads exactly `request.len()` bytes from a live slice.
    let len = unsafe { host::rpc_call(request.as_ptr(), request.len()) };
    let len =
        usize::try_from(len).map_err(|_| format!("the host could not make the call ({len})"))?;
    let mut buf = vec![0u8; len];
    // SAFETY: the host writes at most `buf.len()` bytes into our buffer.
    let got = unsafe { host::rpc_result(buf.as_mut_ptr(), buf.len()) };
    let got = usize::try_from(got).map_err(|_| format!("the host lost the response ({got})"))?;
    buf.truncate(got);
    serde_json::from_slice(&buf).map_err(|e| format!("the response is not JSON: {e}"))
}

/// Connects to lightningd's socket, sends `request`, and reads until the
/// response with our id (skipping anything else, such as notifications).
#[cfg(all(unix, not(target_arch = "wasm32")))]
fn exchange(rpc_file: Option<&str>, id: u64, request: &[u8]) -> Result<Value, String> {
    use std::io::Write;
    use std::os::unix::net::UnixStream;

    let path = rpc_file.ok_or("no rpc-file known yet (before init?)")?;
    let mut stream = UnixStream::connect(path).map_err(|e| format!("{path}: {e}"))?;
    // Do not shut down our half: lightningd drops a connection at EOF,
    // response and all.
    stream
        .write_all(request)
        .map_err(|e| format!("{path}: {e}"))?;
    // The reader stdin is read with: serde_json's reader would take the
    // socket a byte at a time (see stream.rs), and a `listpeers` answer
    // can be megabytes.
    let mut texts = crate::stream::Texts::new(&stream);
    let want = Value::from(id);
    while let Some(text) = texts.next_text().map_err(|e| format!("{path}: {e}"))? {
        let message: Value = serde_json::from_slice(text).map_err(|e| format!("{path}: {e}"))?;
        if message.get("id") == Some(&want) {
            return Ok(message);
        }
    }
    Err(format!(
        "{path}: lightningd closed the connection without answering"
    ))
}

#[cfg(not(any(unix, target_arch = "wasm32")))]
fn exchange(_rpc_file: Option<&str>, _id: u64, _request: &[u8]) -> Result<Value, String> {
    Err("calling lightningd is only supported on unix and in wasm32".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interprets_results_and_errors() {
        assert_eq!(
            interpret(json!({"id": 1, "result": {"a": 1}})),
            Ok(json!({"a": 1}))
        );
        let e = interpret(
            json!({"id": 1, "error": {"code": 1234, "message": "nope", "data": {"x": 1}}}),
        );
        assert_eq!(
            e,
            Err(RpcError::new(1234, "nope").with_data(json!({"x": 1})))
        );
        let e = interpret(json!({"id": 1, "error": "weird"})).unwrap_err();
        assert_eq!(e.code, RpcError::TRANSPORT);
        assert_eq!(e.data, Some(json!("weird")));
        assert!(interpret(json!({"id": 1})).is_err());
        assert!(interpret(json!([1])).is_err());
    }

    /// Over a real socket: what comes before the answer with our id (a
    /// notification, another id) is skipped, an answer split across
    /// writes is whole, and a connection closed without one is an error.
    #[cfg(all(unix, not(target_arch = "wasm32")))]
    #[test]
    fn reads_the_answer_with_its_id_off_the_socket() {
        use std::io::{Read, Write};
        use std::os::unix::net::UnixListener;

        let dir = std::env::temp_dir().join(format!("guest-rpc-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("lightning-rpc");
        let listener = UnixListener::bind(&path).unwrap();
        let server = std::thread::spawn(move || {
            for answer in [true, false] {
                let (mut s, _) = listener.accept().unwrap();
                let mut got = [0u8; 256];
                let _ = s.read(&mut got).unwrap();
                if !answer {
                    continue;
                }
                s.write_all(b"{\"jsonrpc\":\"2.0\",\"method\":\"log\",\"params\":{}}\n\n")
                    .unwrap();
                s.write_all(b"{\"jsonrpc\":\"2.0\",\"id\":6,\"result\":{}}\n\n")
                    .unwrap();
                s.write_all(b"{\"jsonrpc\":\"2.0\",\"id\":7,\"res").unwrap();
                s.flush().unwrap();
                std::thread::sleep(std::time::Duration::from_millis(20));
                s.write_all(b"ult\":{\"s\":\"}{\\\"\"}}\n\n").unwrap();
            }
        });
        let file = path.to_str().unwrap();
        assert_eq!(
            call(Some(file), 7, "x", json!({})),
            Ok(json!({"s": "}{\""}))
        );
        let e = call(Some(file), 8, "x", json!({})).unwrap_err();
        assert_eq!(e.code, RpcError::TRANSPORT);
        assert!(e.message.contains("without answering"), "{e:?}");
        server.join().unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
