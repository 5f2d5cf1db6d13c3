//! The stand-in, byte for byte against lightningd v26.06: a plugin under the
//! stand-in (no host) records every byte on its stdin while the test replays
//! the traced sessions (`../shared/cln-v26.06/traces/`); each message must
//! equal the trace's, with only these values normalized:
//!
//! - the number after the last `#` of lightningd's own request id
//!   (`cln:<method>#N`): lightningd numbers its requests with one counter
//!   across all its plugins, which had other plugins in the trace;
//! - `configuration.lightning-dir` in `init`: the machine's path.
//!
//! The framing is compared too: each message followed by `"\n\n"`.

use super::direct::{messages, trace_plugin_config};
use cln_autoreload_tests::*;
use serde_json::value::RawValue;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::Path;

/// The node flags of the traced session (`cln-v26.06/README.md`).
const NODE_FLAGS: &[&str] = &[
    "--trace-str=hello",
    "--trace-multi=a",
    "--trace-multi=b",
    "--trace-flag",
    "--trace-int=42",
];

/// The traced manifest as a test plugin named like the traced one
/// (`tracer.py`, the `origin` of its custom notification) that records its
/// stdin to `record`. `trace-raw` is added so the test can make it emit the
/// custom notification with the traced plugin's bytes.
fn write_tracer(path: &Path, record: &Path) -> Option<()> {
    let mut config = trace_plugin_config()?;
    config["record_stdin"] = json!(record.display().to_string());
    let methods = config["manifest_extra"]["rpcmethods"].as_array_mut()?;
    methods.push(json!({"name": "trace-raw", "usage": "hex", "description": "raw"}));
    write_testplugin(path, &config);
    Some(())
}

/// A member of a JSON object, as its raw bytes.
fn raw_member(bytes: &[u8], key: &str) -> String {
    let m: HashMap<String, Box<RawValue>> =
        serde_json::from_slice(bytes).expect("a traced message is an object");
    m.get(key)
        .map(|r| r.get().to_string())
        .unwrap_or_else(|| panic!("no {key} in {}", String::from_utf8_lossy(bytes)))
}

/// What lightning-cli v26.06 writes for a request (the passthrough lines
/// of the trace show its spacing).
fn cli_request(method: &str, id: &str, params: &str) -> String {
    format!("{{ \"jsonrpc\" : \"2.0\", \"method\" : \"{method}\", \"id\" : \"{id}\", \"params\" :{params} }}")
}

/// The client's id inside one of lightningd's ids: what comes before the
/// last `/cln:`.
fn client_id(id: &str) -> &str {
    id.rsplit_once("/cln:").map(|(c, _)| c).unwrap_or(id)
}

/// A message's bytes, trimmed, with the number of lightningd's request id
/// (after the id's last `#`) replaced by `N`, and init's lightning-dir by
/// `DIR`.
pub(crate) fn normalized(bytes: &[u8], v: &Value) -> String {
    let mut text = String::from_utf8_lossy(bytes).trim().to_string();
    if let Some(id) = v.get("id").and_then(Value::as_str) {
        let (head, num) = id.rsplit_once('#').expect("lightningd's ids end in #N");
        assert!(
            !num.is_empty() && num.bytes().all(|b| b.is_ascii_digit()),
            "id {id}"
        );
        let quoted = serde_json::to_string(id).expect("id");
        assert!(text.contains(&quoted), "no {quoted} in {text}");
        text = text.replacen(&quoted, &format!("\"{head}#N\""), 1);
    }
    if v["method"] == "init" {
        let dir = v["params"]["configuration"]["lightning-dir"].to_string();
        let member = format!("\"lightning-dir\":{dir}");
        assert!(text.contains(&member), "no {member} in {text}");
        text = text.replacen(&member, "\"lightning-dir\":DIR", 1);
    }
    text
}

/// Each message lightningd writes ends with `"\n\n"`, and nothing else is
/// between messages.
pub(crate) fn assert_framed(raw: &[u8], what: &str) {
    let mut rebuilt = Vec::new();
    for (bytes, _) in messages(raw) {
        let start = bytes
            .iter()
            .position(|b| !b.is_ascii_whitespace())
            .expect("a message");
        rebuilt.extend_from_slice(&bytes[start..]);
        rebuilt.extend_from_slice(b"\n\n");
    }
    assert!(
        raw == rebuilt.as_slice(),
        "{what}: not framed as lightningd frames (each message, then \\n\\n):\n{}",
        String::from_utf8_lossy(raw)
    );
}

/// Compares the recorded stream with the trace, message by message, in
/// order, after dropping the recorded messages `skip` says are the test's
/// own.
fn assert_same_session(got_raw: &[u8], want_raw: &[u8], skip: impl Fn(&Value) -> bool) {
    assert_framed(want_raw, "the trace");
    assert_framed(got_raw, "the stand-in");
    let want: Vec<String> = messages(want_raw)
        .iter()
        .map(|(b, v)| normalized(b, v))
        .collect();
    let got: Vec<String> = messages(got_raw)
        .iter()
        .filter(|(_, v)| !skip(v))
        .map(|(b, v)| normalized(b, v))
        .collect();
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(g, w, "message {i} differs from lightningd's");
    }
    assert_eq!(
        got.len(),
        want.len(),
        "as many messages as lightningd sent; the stand-in sent:\n{}",
        got.join("\n")
    );
}

/// Starts the stand-in with the traced node flags and the recording
/// tracer; `None` where the test does not apply.
async fn standin_with_tracer(launch: &Path, record: &Path) -> Option<Node> {
    if real_lightningd().is_some() {
        skip("checks the stand-in's bytes, not lightningd's");
        return None;
    }
    write_tracer(&launch.join("tracer.py"), record)?;
    let node = NodeBuilder::new()
        .without_host()
        .launch_dir(launch)
        .arg("--plugin=tracer.py")
        .args(NODE_FLAGS.iter().copied())
        .start()
        .await
        .expect("the stand-in starts")
        .expect("stand-in");
    Some(node)
}

/// Waits until the recording holds `n` messages matching `f`.
async fn wait_recorded(record: &Path, what: &str, n: usize, f: impl Fn(&Value) -> bool) {
    wait_for(what, || {
        let raw = std::fs::read(record).unwrap_or_default();
        // A message may be half written: count only complete ones.
        let mut it = serde_json::Deserializer::from_slice(&raw).into_iter::<Value>();
        let mut count = 0;
        while let Some(Ok(v)) = it.next() {
            count += usize::from(f(&v));
        }
        (count >= n).then_some(())
    })
    .await
}

/// The whole traced session of a static plugin (`static-plugin.stdin.raw`):
/// getmanifest, init with the node's option values, the rpc_command hook
/// for other plugins' and lightning-cli's `getinfo`, passthrough of the
/// client's raw bytes (positional and named), the plugin's own custom
/// notification, `check` both ways, `setconfig`, `peer_connected`,
/// `connect`/`disconnect`, `shutdown`: the same messages, in the same
/// order, byte for byte.
#[tokio::test]
async fn the_standin_replays_a_static_plugins_session_byte_for_byte() {
    let Some(want_raw) = trace("static-plugin.stdin.raw") else {
        return;
    };
    let launch = tempdir();
    let record = launch.path().join("stdin.raw");
    let Some(node) = standin_with_tracer(launch.path(), &record).await else {
        return;
    };
    let trace_msgs = messages(&want_raw);
    let mut customs = 0;
    for (bytes, v) in &trace_msgs {
        let method = v["method"].as_str().unwrap_or_default();
        let id = v.get("id").and_then(Value::as_str);
        match (method, id) {
            ("getmanifest" | "init", _) => {}
            ("rpc_command", Some(_)) => {
                // The request that went through the hook: lightning-cli's
                // bytes, or (from another plugin) the compact bytes that
                // lightningd's re-serialization left as they were.
                let inner = &v["params"]["rpc_command"];
                let cid = inner["id"].as_str().expect("inner id");
                let inner_raw = raw_member(raw_member(bytes, "params").as_bytes(), "rpc_command");
                let req = if cid.starts_with("cli:") {
                    cli_request(
                        inner["method"].as_str().expect("method"),
                        cid,
                        &raw_member(inner_raw.as_bytes(), "params"),
                    )
                } else {
                    inner_raw
                };
                node.call_raw(req.as_bytes()).await;
            }
            ("setconfig", Some(id)) => {
                // `lightning-cli setconfig trace-dyn 5`: 5 goes as a number.
                let p = &v["params"];
                let req = cli_request(
                    "setconfig",
                    client_id(id),
                    &format!("[ {}, {}]", p["config"], p["val"].as_str().expect("val")),
                );
                node.call_raw(req.as_bytes()).await;
            }
            ("peer_connected", Some(id)) => {
                // The stand-in's `dev-hook` plays `connect`.
                let req = format!(
                    "{{\"jsonrpc\":\"2.0\",\"id\":\"{}\",\"method\":\"dev-hook\",\"params\":{{\"hook\":\"peer_connected\",\"payload\":{}}}}}",
                    client_id(id),
                    raw_member(bytes, "params")
                );
                node.call_raw(req.as_bytes()).await;
            }
            ("trace_custom", None) => {
                // The plugin emits it with the traced plugin's bytes (its
                // params as Python's json.dumps wrote them).
                let note = format!(
                    "{{\"jsonrpc\":\"2.0\",\"method\":\"trace_custom\",\"params\":{}}}\n\n",
                    raw_member(bytes, "params")
                );
                let hex: String = note.bytes().map(|b| format!("{b:02x}")).collect();
                node.ok("trace-raw", json!([hex])).await;
                customs += 1;
                wait_recorded(&record, "the custom notification", customs, |m| {
                    m["method"] == "trace_custom"
                })
                .await;
            }
            ("connect" | "disconnect", None) => {
                let p = raw_member(bytes, "params");
                let payload = raw_member(p.as_bytes(), method);
                let req = format!(
                    "{{\"jsonrpc\":\"2.0\",\"id\":\"dev-notify\",\"method\":\"dev-notify\",\"params\":{{\"topic\":\"{method}\",\"payload\":{payload}}}}}"
                );
                let sent = node.call_raw(req.as_bytes()).await;
                assert_eq!(sent["result"]["sent"], 1, "{sent}");
            }
            ("shutdown", None) => {
                assert!(node.stop().await.expect("the stand-in stops").success());
                break;
            }
            (_, Some(id)) => {
                // Passthrough (and `check`): the client's raw bytes are
                // lightningd's with the client's id.
                let text = String::from_utf8_lossy(bytes).trim().to_string();
                let req = text.replacen(
                    &serde_json::to_string(id).expect("id"),
                    &serde_json::to_string(client_id(id)).expect("id"),
                    1,
                );
                node.call_raw(req.as_bytes()).await;
            }
            (m, None) => panic!("a notification the test cannot replay: {m}"),
        }
    }
    let got = std::fs::read(&record).expect("the plugin recorded its stdin");
    assert_same_session(&got, &want_raw, |v| {
        let m = &v["method"];
        // The test's own: trace-raw, and NodeBuilder's readiness getinfo.
        m == "trace-raw" || (m == "rpc_command" && v["params"]["rpc_command"]["id"] == "ready")
    });
}

/// `plugin start` of the traced plugin at runtime with an option value
/// (`dynamic-start.stdin.raw`): getmanifest with the command's id as its
/// prefix, init with `startup: false` and the value given, then
/// `plugin stop`'s shutdown.
#[tokio::test]
async fn the_standin_replays_a_dynamic_start_byte_for_byte() {
    let Some(want_raw) = trace("dynamic-start.stdin.raw") else {
        return;
    };
    let launch = tempdir();
    let first = launch.path().join("first.raw");
    let Some(node) = standin_with_tracer(launch.path(), &first).await else {
        return;
    };
    // The node's command line values outlive a plugin stop (lightningd
    // keeps its configvars), as the trace's init shows.
    let stopped = node
        .ok(
            "plugin",
            json!({"subcommand": "stop", "plugin": "tracer.py"}),
        )
        .await;
    assert_eq!(stopped["result"], "Successfully stopped tracer.py.");
    let record = launch.path().join("stdin.raw");
    let path = launch.path().join("tracer.py");
    write_tracer(&path, &record).expect("tracer");
    let path = std::fs::canonicalize(&path).expect("path");
    let req = cli_request(
        "plugin",
        "cli:plugin#8711",
        &format!(
            "{{ \"subcommand\" : \"start\", \"plugin\" : {}, \"trace-str\" : \"dynval2\"}}",
            serde_json::to_string(&path.display().to_string()).expect("path")
        ),
    );
    let started = node.call_raw(req.as_bytes()).await;
    assert!(started.get("result").is_some(), "{started}");
    let stopped = node
        .ok(
            "plugin",
            json!({"subcommand": "stop", "plugin": "tracer.py"}),
        )
        .await;
    assert_eq!(stopped["result"], "Successfully stopped tracer.py.");
    let got = std::fs::read(&record).expect("the plugin recorded its stdin");
    assert_same_session(&got, &want_raw, |_| false);
}
