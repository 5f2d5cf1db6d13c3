//! hello-native: a tiny Core Lightning plugin with no plugin framework.
//!
//! A plugin is a program that lightningd starts and talks to over
//! stdin/stdout, in JSON-RPC 2.0: lightningd writes requests and
//! notifications to our stdin, we write responses (and our own
//! notifications) to stdout. That is the whole protocol this file needs:
//!
//! 1. `getmanifest`: we answer with what we offer (methods, options, ...).
//! 2. `init`: we get our option values and lightningd's configuration.
//! 3. Then requests for our methods, and notifications we subscribed to.
//!
//! Rules: every response carries the request's `id` unchanged; nothing but
//! JSON may ever go to stdout (use stderr for debugging, or a `log`
//! notification); we exit on EOF on stdin or on the `shutdown` notification.
//!
//! Demo with cln-autoreload: change `VERSION` below, `cargo build -p
//! hello-native`, and `lightning-cli hello-native` answers with the new
//! version without restarting lightningd.

use std::io::{self, Write};
use std::process::ExitCode;

use serde_json::{json, Value};

/// Returned by `hello-native`, so you can see which build answered.
const VERSION: &str = "1";

/// Our option, `--hello-native-greeting=...`, and its default.
const GREETING_OPTION: &str = "hello-native-greeting";
const DEFAULT_GREETING: &str = "Hello";

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // stderr, never stdout: stdout belongs to lightningd.
            eprintln!("hello-native: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> io::Result<()> {
    let mut stdout = io::stdout().lock();
    let mut greeting = DEFAULT_GREETING.to_owned();

    // lightningd sends a stream of JSON objects, not lines: a request may
    // span several reads, several may arrive at once. Let serde_json cut it.
    let messages = serde_json::Deserializer::from_reader(io::stdin().lock()).into_iter::<Value>();

    for message in messages {
        let message = match message {
            Ok(message) => message,
            // stdin closed in the middle of a message: just stop.
            Err(e) if e.is_eof() => break,
            Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e)),
        };
        let method = message
            .get("method")
            .and_then(Value::as_str)
            .unwrap_or_default();

        // A message without an id is a notification: no answer expected.
        let Some(id) = message.get("id") else {
            if method == "shutdown" {
                break;
            }
            continue;
        };

        let params = message.get("params").unwrap_or(&Value::Null);
        let outcome = match method {
            "getmanifest" => Ok(manifest()),
            "init" => {
                if let Some(value) = params
                    .get("options")
                    .and_then(|options| options.get(GREETING_OPTION))
                    .and_then(Value::as_str)
                {
                    greeting = value.to_owned();
                }
                Ok(json!({}))
            }
            "hello-native" => hello(&greeting, params),
            _ => Err(json!({
                "code": -32601,
                "message": format!("unknown method {method}"),
            })),
        };

        let response = match outcome {
            Ok(result) => json!({"jsonrpc": "2.0", "id": id, "result": result}),
            Err(error) => json!({"jsonrpc": "2.0", "id": id, "error": error}),
        };
        send(&mut stdout, &response)?;
    }
    // EOF on stdin (lightningd went away) or shutdown: exit cleanly.
    Ok(())
}

/// What this plugin offers. lightningd requires `options` and `rpcmethods`,
/// each method with a `name`, `usage` and `description`.
fn manifest() -> Value {
    json!({
        "options": [{
            "name": GREETING_OPTION,
            "type": "string",
            "default": DEFAULT_GREETING,
            "description": "What hello-native says before the name",
        }],
        "rpcmethods": [{
            "name": "hello-native",
            "usage": "[name]",
            "description": "Greet someone (default: world)",
        }],
        // Ask for the shutdown notification, so we can exit cleanly.
        "subscriptions": ["shutdown"],
        // We may be started and stopped while lightningd runs.
        "dynamic": true,
    })
}

/// `hello-native [name]`: params come by position (`["Alice"]`) or by name
/// (`{"name": "Alice"}`, from `lightning-cli -k`).
fn hello(greeting: &str, params: &Value) -> Result<Value, Value> {
    let name = match params {
        Value::Array(args) => args.first(),
        Value::Object(args) => args.get("name"),
        _ => None,
    };
    let name = match name {
        None | Some(Value::Null) => "world",
        Some(Value::String(name)) => name,
        Some(_) => {
            return Err(json!({"code": -32602, "message": "name must be a string"}));
        }
    };
    Ok(json!({
        "greeting": format!("{greeting}, {name}!"),
        "version": VERSION,
    }))
}

/// One message: compact JSON, then "\n\n", flushed right away so lightningd
/// sees it now and not when a buffer fills up.
fn send(out: &mut impl Write, message: &Value) -> io::Result<()> {
    serde_json::to_writer(&mut *out, message)?;
    out.write_all(b"\n\n")?;
    out.flush()
}
