//! A native Rust plugin that tries things a sandbox may forbid, for the
//! sandbox tests (the Python twin is tests/plugins/probe.py). Methods
//! answer `{"ok": true, ...}` or `{"ok": false, "errno": N, "error": ...}`:
//! `rprobe-read path`, `rprobe-spawn-read path` (a child `cat` reads it),
//! `rprobe-connect host port`, `rprobe-rpc` (getinfo over lightning-rpc).

use serde_json::{json, Value};
use std::io::{Read, Write};

fn param(params: &Value, name: &str, i: usize) -> Value {
    params
        .get(name)
        .or_else(|| params.get(i))
        .cloned()
        .unwrap_or(Value::Null)
}

fn failed(e: std::io::Error) -> Value {
    json!({"ok": false, "errno": e.raw_os_error(), "error": e.to_string()})
}

fn handle(method: &str, params: &Value, rpc_file: &str) -> Option<Value> {
    let text = |v: Value| v.as_str().unwrap_or_default().to_owned();
    Some(match method {
        "rprobe-read" => match std::fs::read(text(param(params, "path", 0))) {
            Ok(b) => json!({"ok": true, "data": String::from_utf8_lossy(&b)}),
            Err(e) => failed(e),
        },
        "rprobe-spawn-read" => {
            match std::process::Command::new("cat")
                .arg(text(param(params, "path", 0)))
                .output()
            {
                Ok(o) => json!({"ok": o.status.success(), "status": o.status.code(),
                                "error": String::from_utf8_lossy(&o.stderr)}),
                Err(e) => failed(e),
            }
        }
        "rprobe-connect" => {
            let host = text(param(params, "host", 0));
            let port = param(params, "port", 1).as_u64().unwrap_or(0);
            match std::net::TcpStream::connect(format!("{host}:{port}")) {
                Ok(_) => json!({"ok": true}),
                Err(e) => failed(e),
            }
        }
        "rprobe-rpc" => {
            let call = || -> std::io::Result<Value> {
                let mut s = std::os::unix::net::UnixStream::connect(rpc_file)?;
                s.write_all(br#"{"jsonrpc":"2.0","id":"rprobe","method":"getinfo","params":{}}"#)?;
                let mut buf = vec![];
                let mut chunk = [0u8; 65536];
                loop {
                    let n = s.read(&mut chunk)?;
                    if n == 0 {
                        return Err(std::io::Error::other("lightning-rpc closed"));
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let mut it = serde_json::Deserializer::from_slice(&buf).into_iter::<Value>();
                    if let Some(Ok(v)) = it.next() {
                        return Ok(v);
                    }
                }
            };
            match call() {
                Ok(v) => json!({"ok": v.get("result").is_some(), "answer": v}),
                Err(e) => failed(e),
            }
        }
        _ => return None,
    })
}

fn send(v: &Value) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(format!("{v}\n\n").as_bytes());
    let _ = out.flush();
}

fn main() {
    let methods: Vec<Value> = [
        "rprobe-read",
        "rprobe-spawn-read",
        "rprobe-connect",
        "rprobe-rpc",
    ]
    .iter()
    .map(|m| json!({"name": m, "usage": "[args]", "description": "sandbox probe"}))
    .collect();
    let mut rpc_file = "lightning-rpc".to_string();
    let stdin = std::io::stdin();
    let stream = serde_json::Deserializer::from_reader(stdin.lock()).into_iter::<Value>();
    for msg in stream {
        let Ok(msg) = msg else { return };
        let Some(id) = msg.get("id").cloned() else {
            continue;
        };
        let method = msg["method"].as_str().unwrap_or_default();
        let result = match method {
            "getmanifest" => json!({"options": [], "rpcmethods": methods, "dynamic": true}),
            "init" => {
                if let Some(f) = msg["params"]["configuration"]["rpc-file"].as_str() {
                    rpc_file = f.to_owned();
                }
                json!({})
            }
            m => match handle(m, &msg["params"], &rpc_file) {
                Some(r) => r,
                None => {
                    send(&json!({"jsonrpc": "2.0", "id": id,
                                 "error": {"code": -32601, "message": format!("unknown method {m}")}}));
                    continue;
                }
            },
        };
        send(&json!({"jsonrpc": "2.0", "id": id, "result": result}));
    }
}
