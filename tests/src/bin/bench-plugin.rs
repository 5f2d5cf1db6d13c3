//! bench-plugin: the trivial native plugin the benchmark measures.
//!
//! One method, `bench-pid`, answered with `{"pid": <its pid>}`, so a
//! reload shows up as a new pid; the `db_write` hook, answered `continue`
//! (what lightningd waits for on every database write). serde_json only, one message at a time,
//! like the smallest plugin anyone would write: whatever the benchmark
//! measures on top of it is the cost of what stands in between.

use serde_json::{json, Value};
use std::io::{self, BufWriter, Write};
use std::process::ExitCode;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench-plugin: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> io::Result<()> {
    let pid = std::process::id();
    let mut out = BufWriter::new(io::stdout().lock());
    let messages = serde_json::Deserializer::from_reader(io::stdin().lock()).into_iter::<Value>();
    for message in messages {
        let message = match message {
            Ok(m) => m,
            Err(e) if e.is_eof() => break,
            Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e)),
        };
        let method = message
            .get("method")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let Some(id) = message.get("id") else {
            if method == "shutdown" {
                break;
            }
            continue;
        };
        let response = match method {
            "getmanifest" => json!({"jsonrpc": "2.0", "id": id, "result": {
                "options": [],
                "rpcmethods": [{
                    "name": "bench-pid",
                    "usage": "",
                    "description": "This process's pid (a new one after each reload)",
                }],
                "hooks": [{"name": "db_write"}],
                "subscriptions": ["shutdown"],
                "dynamic": true,
            }}),
            "init" => json!({"jsonrpc": "2.0", "id": id, "result": {}}),
            "bench-pid" => json!({"jsonrpc": "2.0", "id": id, "result": {"pid": pid}}),
            "db_write" => json!({"jsonrpc": "2.0", "id": id, "result": {"result": "continue"}}),
            _ => json!({"jsonrpc": "2.0", "id": id, "error": {
                "code": -32601,
                "message": format!("unknown method {method}"),
            }}),
        };
        serde_json::to_writer(&mut out, &response)?;
        out.write_all(b"\n\n")?;
        out.flush()?;
    }
    Ok(())
}
