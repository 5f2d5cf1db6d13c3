//! The host driven directly, byte for byte, the way lightningd drives a
//! plugin: its pipes, with no stand-in between.

use super::*;

/// Splits a raw trace into its messages, each with its exact bytes.
pub(crate) fn messages(raw: &[u8]) -> Vec<(Vec<u8>, Value)> {
    let mut out = vec![];
    let mut it = serde_json::Deserializer::from_slice(raw).into_iter::<Value>();
    let mut last = 0;
    while let Some(v) = it.next() {
        let v = v.expect("trace is JSON");
        let end = it.byte_offset();
        out.push((raw[last..end].to_vec(), v));
        last = end;
    }
    out
}

pub(crate) fn trace_plugin_config() -> Option<Value> {
    let manifest: Value = serde_json::from_slice(&trace("static-plugin.manifest.json")?).ok()?;
    let mut methods: Vec<Value> = manifest["rpcmethods"].as_array()?.clone();
    methods.push(json!({"name": "trace-state", "usage": "", "description": "state"}));
    Some(json!({
        "methods_prefix": "trace",
        "options": manifest["options"],
        "hooks": manifest["hooks"],
        "subscriptions": manifest["subscriptions"],
        "notifications": manifest["notifications"],
        "manifest_extra": {"rpcmethods": methods, "cancheck": true, "nonnumericids": true, "dynamic": true},
    }))
}

/// Replaying lightningd's recorded bytes through the host delivers the
/// same messages to the plugin, and every request gets exactly one
/// answer with its id unchanged.
#[tokio::test]
async fn trace_replay_reaches_the_plugin_unchanged() {
    let (Some(raw), Some(config)) = (trace("static-plugin.stdin.raw"), trace_plugin_config())
    else {
        return;
    };
    let dir = tempdir();
    let plugin = dir.path().join("tracer.py");
    write_testplugin(&plugin, &config);
    let mut host = Direct::start(&[plugin.to_str().unwrap()], &[]);
    let msgs = messages(&raw);
    let (gm_raw, gm) = &msgs[0];
    host.send(gm_raw).await;
    let manifest = host.response(gm["id"].as_str().unwrap()).await["result"].clone();
    let names: Vec<&str> = manifest["options"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|o| o["name"].as_str())
        .collect();
    assert!(
        names.contains(&"trace-multi") && names.contains(&"autoreload-plugin"),
        "{manifest}"
    );
    assert_eq!(manifest["hooks"], config["hooks"]);
    assert_eq!(manifest["cancheck"], true);

    let (init_raw, init) = &msgs[1];
    host.send(init_raw).await;
    assert_eq!(
        host.response(init["id"].as_str().unwrap()).await["result"],
        json!({})
    );

    // Everything else but the final shutdown, in 7-byte pieces with a
    // pause now and then, so messages are split across reads.
    let body: Vec<u8> = msgs[2..msgs.len() - 1]
        .iter()
        .flat_map(|(r, _)| r.clone())
        .collect();
    for (i, chunk) in body.chunks(7).enumerate() {
        host.send(chunk).await;
        if i % 50 == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    let requests: Vec<&Value> = msgs[2..]
        .iter()
        .map(|(_, v)| v)
        .filter(|v| v.get("id").is_some())
        .collect();
    let mut answers = std::collections::HashMap::new();
    while answers.len() < requests.len() {
        let v = host.next().await.expect("host alive");
        if let (Some(id), None) = (v.get("id").and_then(Value::as_str), v.get("method")) {
            assert!(
                answers.insert(id.to_string(), v.clone()).is_none(),
                "answered twice: {v}"
            );
        }
    }
    for r in &requests {
        let a = &answers[r["id"].as_str().unwrap()];
        if r["method"] == "trace-echo" {
            assert_eq!(
                a["result"]["params"], r["params"],
                "params reach the plugin unchanged"
            );
            assert_eq!(a["result"]["id"], r["id"]);
        }
    }

    let state = host
        .request("cli:x#1/cln:trace-state#999", "trace-state", json!([]))
        .await["result"]
        .clone();
    assert_eq!(state["getmanifest"], gm["params"]);
    let mut want_opts = init["params"]["options"].clone();
    want_opts
        .as_object_mut()
        .unwrap()
        .retain(|k, _| !k.starts_with("autoreload-"));
    assert_eq!(state["init"]["options"], want_opts);
    assert_eq!(
        state["init"]["configuration"],
        init["params"]["configuration"]
    );
    let notes: Vec<&Value> = msgs
        .iter()
        .map(|(_, v)| v)
        .filter(|v| v.get("id").is_none() && v["method"] != "shutdown")
        .collect();
    let got: Vec<Value> = state["notifications_raw"].as_array().unwrap().clone();
    assert_eq!(got.len(), notes.len(), "{got:#?}");
    for (g, w) in got.iter().zip(notes) {
        assert_eq!(g, w);
    }
    let hooks: Vec<&Value> = requests
        .iter()
        .copied()
        .filter(|v| v["method"] == "rpc_command" || v["method"] == "peer_connected")
        .collect();
    let got_hooks = state["hooks"].as_array().unwrap();
    assert_eq!(got_hooks.len(), hooks.len());
    for (g, w) in got_hooks.iter().zip(hooks) {
        assert_eq!((&g["id"], &g["params"]), (&w["id"], &w["params"]));
    }
    assert_eq!(
        state["setconfig"],
        json!([{"config": "trace-dyn", "val": "5"}])
    );
    assert_eq!(state["check"].as_array().map(Vec::len), Some(2));
    let child_pid = state["pid"].as_u64().unwrap() as u32;

    // The final shutdown: the host passes it on and exits promptly.
    host.send(&msgs.last().unwrap().0).await;
    assert!(host.exited().await.success());
    wait_for("the plugin to exit with the host", || {
        (!alive(child_pid)).then_some(())
    })
    .await;
    let warnings: Vec<String> = host
        .logs()
        .into_iter()
        .filter(|l| l.starts_with("warn"))
        .collect();
    assert!(warnings.is_empty(), "{warnings:#?}");
}

/// Bad input from lightningd's side: logged, nothing lost, no crash.
#[tokio::test]
async fn bad_input_from_lightningd_is_logged_and_survived() {
    let dir = tempdir();
    let plugin = dir.path().join("p.py");
    write_testplugin(&plugin, &json!({}));
    let mut host = Direct::start(&[plugin.to_str().unwrap()], &[]);
    host.send(&getmanifest_bytes(1)).await;
    host.response("cln:getmanifest#1").await;
    host.request("cln:init#2", "init", json!({"options": {}, "configuration": {"lightning-dir": "/tmp", "rpc-file": "lightning-rpc"}})).await;
    host.send(b"this is not json\n").await;
    host.send(b"{\"jsonrpc\":\"2.0\",\"method\":\"\xff\xfe\"}\n")
        .await;
    host.send(b"{\"id\":\"nojsonrpc\",\"method\":\"tp-echo\"}\n")
        .await;
    host.send(b"{\"jsonrpc\":\"2.0\",\"id\":\"r1\",\"result\":{}}\n")
        .await;
    let v = host
        .request("cli:tp-echo#1/cln:tp-echo#3", "tp-echo", json!({"a": 1}))
        .await;
    assert_eq!(v["result"]["params"], json!({"a": 1}));
    let logs = host.logs().join("\n");
    assert!(logs.contains("not JSON"), "{logs}");
    assert!(
        logs.contains("without \\\"jsonrpc\\\"") || logs.contains("without \"jsonrpc\""),
        "{logs}"
    );
    // Truncated message, then EOF: the host exits, the plugin with it.
    let pid = v["result"]["pid"].as_u64().unwrap() as u32;
    host.send(b"{\"jsonrpc\":\"2.0\",\"id\":\"cut").await;
    host.close();
    assert!(host.exited().await.success());
    wait_for("the plugin to exit with the host", || {
        (!alive(pid)).then_some(())
    })
    .await;
}

/// No plugin named anywhere: the host disables itself with a clear
/// reason instead of failing lightningd.
#[tokio::test]
async fn no_plugin_disables_the_host_with_a_reason() {
    let mut host = Direct::start(&[], &[]);
    host.send(&getmanifest_bytes(1)).await;
    let m = host.response("cln:getmanifest#1").await;
    let why = m["result"]["disable"].as_str().expect("disable");
    assert!(why.contains("--autoreload-plugin=PATH"), "{why}");
    host.close();
    assert!(host.exited().await.success());
}
