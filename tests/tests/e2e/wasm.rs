//! WebAssembly plugins, through the stand-in.

use super::*;
use std::sync::Arc;

/// The test guest at `version` under a node, with `extra` arguments.
pub(crate) struct Guest {
    pub(crate) _launch: tempfile::TempDir,
    pub(crate) module: std::path::PathBuf,
    pub(crate) node: Node,
}

pub(crate) async fn guest(version: &str, extra: &[&str]) -> Option<Guest> {
    let launch = tempdir();
    let module = launch.path().join("guest.wasm");
    write_atomically(&module, &testguest_version(version));
    let mut b = NodeBuilder::new()
        .launch_dir(launch.path())
        .arg("--autoreload-plugin=guest.wasm")
        .standin_only();
    for a in extra {
        b = b.arg(*a);
    }
    let node = b.start().await.expect("node starts")?;
    Some(Guest {
        _launch: launch,
        module,
        node,
    })
}

async fn version(node: &Node) -> String {
    node.ok("tg-version", json!({})).await["version"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

async fn generation(node: &Node) -> u64 {
    node.ok("autoreload-status", json!({})).await["plugins"][0]["generation"]
        .as_u64()
        .unwrap_or(0)
}

#[tokio::test]
async fn hello_wasm_serves_and_calls_lightningd() {
    let launch = tempdir();
    std::fs::copy(
        wasm_bin("hello-wasm", false),
        launch.path().join("hello.wasm"),
    )
    .unwrap();
    let Some(node) = NodeBuilder::new()
        .launch_dir(launch.path())
        .arg("--autoreload-plugin=hello.wasm")
        .arg("--hello-greeting=Howdy")
        .start()
        .await
        .expect("node starts")
    else {
        return;
    };
    let r = node.ok("hello", json!(["wasm"])).await;
    assert_eq!(r["greeting"], "Howdy, wasm!");
    let info = node.ok("hello-info", json!({})).await;
    let getinfo = node.ok("getinfo", json!({})).await;
    assert_eq!(info["node_id"], getinfo["id"], "{info}");
    let s = node.ok("autoreload-status", json!({})).await["plugins"][0].clone();
    assert_eq!(s["backend"], "wasm");
    assert_eq!(s["state"], "serving");
    // The instance that answered getmanifest got init too: the default
    // sandbox needed no fresh instance.
    assert_eq!(s["generation"], 1);
}

#[tokio::test]
async fn a_new_module_swaps_in_under_load_and_nothing_is_lost() {
    let Some(Guest {
        node,
        module,
        _launch,
    }) = guest("v1", &[]).await
    else {
        return;
    };
    let node = Arc::new(node);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let answered = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut tasks = vec![];
    for t in 0..8 {
        let (node, stop, answered) = (node.clone(), stop.clone(), answered.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            let mut versions = std::collections::BTreeSet::new();
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                match node.call("tg-echo", json!({"t": t, "n": n})).await {
                    Ok(v) => {
                        answered.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        assert_eq!(v["params"]["n"], n);
                        versions.insert(v["version"].as_str().unwrap_or_default().to_string());
                    }
                    Err(e) => panic!("call {n} of task {t} failed during a swap: {e}"),
                }
                n += 1;
            }
            (n, versions)
        }));
    }
    // The load is on before the first swap, however busy the machine.
    wait_for("calls answered by v1", || {
        (answered.load(std::sync::atomic::Ordering::SeqCst) >= 8).then_some(())
    })
    .await;
    let mut gen = generation(&node).await;
    for v in ["v2", "v3", "v4"] {
        write_atomically(&module, &testguest_version(v));
        let s = node
            .wait_status("the new module serving", |s| {
                s["generation"].as_u64().unwrap_or(0) > gen && s["state"] == "serving"
            })
            .await;
        gen = s["generation"].as_u64().unwrap();
        assert_eq!(version(&node).await, v);
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut total = 0;
    let mut seen = std::collections::BTreeSet::new();
    for t in tasks {
        let (n, versions) = t.await.unwrap();
        total += n;
        seen.extend(versions);
    }
    assert!(total > 0);
    assert!(seen.contains("v1") && seen.contains("v4"), "{seen:?}");
    let s = node.ok("autoreload-status", json!({})).await["plugins"][0].clone();
    assert_eq!(s["reloads"], 3);
    assert_eq!(s["crashes"], 0);
    node.wait_log("reloaded (file changed)").await;
}

#[tokio::test]
async fn a_module_that_does_not_compile_leaves_the_old_one_serving() {
    // A warm start, named: the test guest takes db_write, which makes
    // break-before-make its default (where a module that does not
    // compile brings the old version back instead).
    let Some(Guest {
        node,
        module,
        _launch,
    }) = guest("v1", &["--autoreload-overlap=guest.wasm::warm"]).await
    else {
        return;
    };
    let gen = generation(&node).await;
    write_atomically(&module, b"\0asm\x01\0\0\0 this is not a module");
    let s = node
        .wait_status("an error reported", |s| {
            s["last_error"]
                .as_str()
                .is_some_and(|e| e.contains("does not compile"))
        })
        .await;
    assert_eq!(s["state"], "serving");
    assert_eq!(s["generation"].as_u64(), Some(gen));
    assert_eq!(version(&node).await, "v1");
    // A module that traps at start likewise.
    let err = node
        .call("autoreload-restart", json!({}))
        .await
        .expect_err("still broken");
    assert!(err.message().contains("does not compile"), "{err}");
    write_atomically(&module, &testguest_version("v2"));
    node.wait_status("v2 serving", |s| {
        s["last_error"].is_null() && s["state"] == "serving"
    })
    .await;
    assert_eq!(version(&node).await, "v2");
}

#[tokio::test]
async fn a_trap_is_logged_with_its_backtrace_and_answered() {
    let Some(Guest { node, _launch, .. }) = guest("v1", &[]).await else {
        return;
    };
    let err = node.call("tg-trap", json!({})).await.expect_err("trapped");
    assert_eq!((err.code(), err.kind()), (-4, "crashed"), "{err}");
    assert!(err.message().contains("trapped"), "{err}");
    node.wait_log("tg-trap asked for a panic").await;
    node.wait_log("trap:").await;
    assert_eq!(version(&node).await, "v1");
    // The replacement reused the module compiled before.
    let s = node.ok("autoreload-status", json!({})).await["plugins"][0].clone();
    assert_eq!(s["last_compile"]["cached"], true, "{s:#}");
    assert_eq!(node.host_entry().await["active"], true);
}

#[tokio::test]
async fn runaway_guests_are_stopped_and_replaced() {
    let Some(Guest { node, _launch, .. }) = guest(
        "v1",
        &[
            "--autoreload-wasm-request-timeout-ms=300",
            "--autoreload-wasm-max-memory-mb=32",
        ],
    )
    .await
    else {
        return;
    };
    let err = node.call("tg-spin", json!({})).await.expect_err("spins");
    assert!(err.message().contains("computed for"), "{err}");
    assert_eq!(err.kind(), "timeout", "{err}");
    assert_eq!(version(&node).await, "v1");
    let err = node.call("tg-bomb", json!({})).await.expect_err("bombs");
    assert!(
        err.message().contains("ran out of memory") || err.message().contains("trapped"),
        "{err}"
    );
    assert_eq!(version(&node).await, "v1");
    let err = node
        .call("tg-recurse", json!({}))
        .await
        .expect_err("overflows");
    assert!(err.message().contains("trapped"), "{err}");
    assert_eq!(version(&node).await, "v1");
    // A hook that runs away is answered continue, not sent again.
    let h = node
        .ok(
            "dev-hook",
            json!({"hook": "peer_connected", "payload": {"peer": {"id": "spin"}}}),
        )
        .await;
    assert_eq!(h["results"], json!([{"result": "continue"}]));
}

#[tokio::test]
async fn the_sandbox_denies_files_unless_granted_and_filters_rpc() {
    let data = tempdir();
    std::fs::write(data.path().join("note.txt"), "granted").unwrap();
    let dir_arg = format!("--autoreload-wasm-dir={}:/data", data.path().display());
    let Some(Guest { node, _launch, .. }) =
        guest("v1", &[&dir_arg, "--autoreload-wasm-rpc-allow=getinfo"]).await
    else {
        return;
    };
    assert!(node
        .call("tg-read", json!({"path": "/etc/passwd"}))
        .await
        .is_err());
    assert!(node
        .call("tg-read", json!({"path": "../lightning-rpc"}))
        .await
        .is_err());
    let ok = node.ok("tg-read", json!({"path": "/data/note.txt"})).await;
    assert_eq!(ok["content"], "granted");
    let env = node.ok("tg-env", json!({})).await;
    let keys: Vec<&String> = env["env"].as_object().unwrap().keys().collect();
    assert!(
        keys.iter().all(|k| k.starts_with("LIGHTNINGD_")),
        "{keys:?}"
    );
    let info = node
        .ok("tg-rpc", json!({"method": "getinfo", "params": {}}))
        .await;
    assert_eq!(info["alias"], "standin");
    let err = node
        .call("tg-rpc", json!({"method": "getlog", "params": {}}))
        .await
        .expect_err("refused");
    assert!(err.message().contains("not allowed"), "{err}");
    node.wait_log("refused its call to lightningd's 'getlog'")
        .await;
}

#[tokio::test]
async fn cranelift_can_be_chosen() {
    let Some(Guest {
        node,
        module,
        _launch,
    }) = guest("v1", &["--autoreload-wasm-compiler=cranelift"]).await
    else {
        return;
    };
    assert_eq!(version(&node).await, "v1");
    write_atomically(&module, &testguest_version("v2"));
    node.wait_status("v2", |s| s["reloads"] == 1).await;
    assert_eq!(version(&node).await, "v2");
    let s = node.ok("autoreload-status", json!({})).await["plugins"][0].clone();
    assert_eq!(s["last_compile"]["cached"], false);
    assert!(s["last_compile"]["duration_ms"].as_f64().is_some(), "{s:#}");
    // The option was not ignored: Cranelift compiled it.
    assert_eq!(s["last_compile"]["compiler"], "cranelift", "{s:#}");
}

#[tokio::test]
async fn every_sdk_feature_round_trips() {
    let Some(Guest { node, _launch, .. }) = guest("v1", &["--tg-greeting=yo"]).await else {
        return;
    };
    node.ok("setconfig", json!({"config": "tg-dyn", "val": 7}))
        .await;
    node.ok(
        "dev-hook",
        json!({"hook": "peer_connected", "payload": {"peer": {"id": "02bb"}}}),
    )
    .await;
    node.ok(
        "dev-notify",
        json!({"topic": "connect", "payload": {"id": "02bb"}}),
    )
    .await;
    node.ok(
        "tg-notify",
        json!({"method": "tg_custom", "payload": {"x": 1}}),
    )
    .await;
    node.ok(
        "tg-log",
        json!({"level": "info", "message": "from the guest"}),
    )
    .await;
    node.ok("tg-progress", json!({})).await;
    node.wait_log("[guest.wasm] from the guest").await;
    let state = wait_state(&node, |s| {
        s["notifications"].as_array().is_some_and(|n| n.len() >= 2)
    })
    .await;
    assert_eq!(state["init_options"]["tg-greeting"], "yo");
    // The SDK hands the handler the value typed as declared.
    assert_eq!(state["setconfig"], json!([{"config": "tg-dyn", "val": 7}]));
    // (A fresh node's db_writes come first, before init.)
    let peer = state["hooks"]
        .as_array()
        .and_then(|h| h.iter().find(|h| h["method"] == "peer_connected"));
    assert_eq!(
        peer.map(|h| &h["params"]["peer"]["id"]),
        Some(&json!("02bb"))
    );
    let methods: Vec<&str> = state["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n["method"].as_str())
        .collect();
    assert!(
        methods.contains(&"connect") && methods.contains(&"tg_custom"),
        "{methods:?}"
    );
    // The dynamic option's new value survives a swap.
    node.ok("autoreload-restart", json!({})).await;
    let state = node.ok("tg-state", json!({})).await;
    assert_eq!(state["init_options"]["tg-dyn"], 7);
}

async fn wait_state(node: &Node, f: impl Fn(&Value) -> bool) -> Value {
    let start = std::time::Instant::now();
    loop {
        let s = node.ok("tg-state", json!({})).await;
        if f(&s) {
            return s;
        }
        assert!(start.elapsed() < BOUND, "tg-state never matched: {s:#}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
