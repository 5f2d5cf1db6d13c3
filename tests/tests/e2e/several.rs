//! Several plugins under one host.

use super::*;

async fn node_with(plugins: &[(&str, Value)]) -> Option<(tempfile::TempDir, Node)> {
    node_with_args(plugins, &[]).await
}

async fn node_with_args(
    plugins: &[(&str, Value)],
    args: &[&str],
) -> Option<(tempfile::TempDir, Node)> {
    let launch = tempdir();
    let mut b = NodeBuilder::new().launch_dir(launch.path()).standin_only();
    for (file, config) in plugins {
        write_testplugin(&launch.path().join(file), config);
        b = b.arg(format!("--autoreload-plugin={file}"));
    }
    for a in args {
        b = b.arg(*a);
    }
    let node = b.start().await.expect("node starts")?;
    Some((launch, node))
}

fn status_of<'a>(s: &'a Value, name: &str) -> &'a Value {
    s["plugins"]
        .as_array()
        .and_then(|a| a.iter().find(|p| p["name"] == name))
        .unwrap_or(&Value::Null)
}

#[tokio::test]
async fn each_plugin_is_routed_logged_and_reloaded_on_its_own() {
    // a.py reloads break-before-make (the option for it alone), b.py
    // make-before-break.
    let Some((launch, node)) = node_with_args(
        &[
            (
                "a.py",
                json!({"methods_prefix": "ta", "ignore_shutdown": true}),
            ),
            ("b.py", json!({"methods_prefix": "tb"})),
        ],
        &["--autoreload-overlap=a.py::false"],
    )
    .await
    else {
        return;
    };
    assert_eq!(node.ok("ta-echo", json!({})).await["version"], "v1");
    assert_eq!(node.ok("tb-echo", json!({})).await["version"], "v1");
    node.ok("ta-log", json!({"level": "info", "message": "from a"}))
        .await;
    node.ok("tb-stderr", json!({"text": "from b"})).await;
    node.wait_log("[a.py] from a").await;
    node.wait_log("[b.py] from b").await;
    // a.py ignores shutdown and SIGTERM: its reload takes seconds. b.py
    // answers meanwhile.
    write_testplugin(
        &launch.path().join("a.py"),
        &json!({"methods_prefix": "ta", "version": "v2"}),
    );
    let start = std::time::Instant::now();
    loop {
        let st = node.ok("autoreload-status", json!({})).await;
        if status_of(&st, "a.py")["state"] == "stopping" {
            assert_eq!(node.ok("tb-echo", json!({})).await["version"], "v1");
            let st = node
                .ok("autoreload-status", json!({"plugin": "a.py"}))
                .await;
            assert_eq!(st["plugins"].as_array().map(Vec::len), Some(1));
            assert_eq!(
                st["plugins"][0]["state"], "stopping",
                "b.py answered while a.py was still stopping"
            );
            break;
        }
        assert!(
            start.elapsed() < BOUND,
            "a.py never reached stopping: {st:#}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(node.ok("ta-echo", json!({})).await["version"], "v2");
    let st = node.ok("autoreload-status", json!({})).await;
    assert_eq!(status_of(&st, "b.py")["reloads"], 0);
    let r = node.ok("autoreload-restart", json!(["b.py"])).await;
    assert_eq!(r["plugin"], "b.py");
    let err = node
        .call("autoreload-restart", json!({}))
        .await
        .expect_err("which one?");
    assert!(
        err.message().contains("a.py") && err.message().contains("b.py"),
        "{err}"
    );
}

#[tokio::test]
async fn two_plugins_on_one_hook_are_chained_like_lightningd_does() {
    let Some((launch, node)) = node_with(&[
        (
            "a.py",
            json!({"methods_prefix": "ta", "hooks": ["peer_connected"]}),
        ),
        (
            "b.py",
            json!({"methods_prefix": "tb", "hooks": ["peer_connected"]}),
        ),
    ])
    .await
    else {
        return;
    };
    let payload = json!({"hook": "peer_connected", "payload": {"peer": {"id": "02cc"}}});
    let r = node.ok("dev-hook", payload.clone()).await;
    assert_eq!(r["results"], json!([{"result": "continue"}]));
    for m in ["ta-state", "tb-state"] {
        let st = node.ok(m, json!({})).await;
        assert_eq!(st["hooks"].as_array().map(Vec::len), Some(1), "{m}: {st:#}");
    }
    // A result other than continue ends the chain.
    let stop = json!({"result": "disconnect", "error_message": "not you"});
    write_testplugin(
        &launch.path().join("a.py"),
        &json!({"methods_prefix": "ta", "hooks": ["peer_connected"], "hook_result": stop}),
    );
    let start = std::time::Instant::now();
    loop {
        let st = node.ok("autoreload-status", json!(["a.py"])).await;
        if st["plugins"][0]["reloads"] == 1 && st["plugins"][0]["state"] == "serving" {
            break;
        }
        assert!(start.elapsed() < BOUND, "{st:#}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let r = node.ok("dev-hook", payload).await;
    assert_eq!(r["results"], json!([stop]));
    let st = node.ok("tb-state", json!({})).await;
    assert_eq!(
        st["hooks"].as_array().map(Vec::len),
        Some(1),
        "b.py was not asked: {st:#}"
    );
}

#[tokio::test]
async fn a_name_clash_refuses_the_second_plugin_and_names_both() {
    let Some((_launch, node)) =
        node_with(&[("a.py", json!({})), ("b.py", json!({"version": "b"}))]).await
    else {
        return;
    };
    assert_eq!(node.ok("tp-echo", json!({})).await["version"], "v1");
    let st = node
        .ok("autoreload-status", json!({"plugin": "b.py"}))
        .await;
    let b = &st["plugins"][0];
    assert_eq!(b["state"], "down");
    let why = b["down_reason"].as_str().unwrap();
    assert!(
        why.contains("a.py")
            && why.contains("method 'tp-echo'")
            && why.contains("option 'tp-greeting'"),
        "{why}"
    );
    assert_eq!(node.host_entry().await["active"], true);
    let err = node
        .call("autoreload-restart", json!(["b.py"]))
        .await
        .expect_err("refused");
    assert!(err.message().contains("refused"), "{err}");
}

#[tokio::test]
async fn native_and_wasm_side_by_side() {
    let launch = tempdir();
    write_testplugin(
        &launch.path().join("n.py"),
        &json!({"methods_prefix": "tn"}),
    );
    write_atomically(&launch.path().join("g.wasm"), &testguest_version("w1"));
    let Some(node) = NodeBuilder::new()
        .launch_dir(launch.path())
        .arg("--autoreload-plugin=n.py")
        .arg("--autoreload-plugin=g.wasm")
        .start()
        .await
        .expect("starts")
    else {
        return;
    };
    assert_eq!(node.ok("tn-echo", json!({})).await["version"], "v1");
    assert_eq!(node.ok("tg-version", json!({})).await["version"], "w1");
    write_atomically(&launch.path().join("g.wasm"), &testguest_version("w2"));
    let start = std::time::Instant::now();
    while node.ok("tg-version", json!({})).await["version"] != "w2" {
        assert!(start.elapsed() < BOUND, "the wasm plugin never swapped");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let st = node.ok("autoreload-status", json!({})).await;
    assert_eq!(
        status_of(&st, "n.py")["generation"],
        1,
        "the native one was not touched"
    );
    assert_eq!(status_of(&st, "g.wasm")["backend"], "wasm");
}
