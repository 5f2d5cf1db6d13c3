//! Registering a changed manifest without restarting lightningd.

use super::*;

#[tokio::test]
async fn a_new_method_is_registered_through_the_wrapper() {
    let launch = tempdir();
    let plugin = launch.path().join("p.py");
    write_testplugin(&plugin, &json!({}));
    let wrapper = write_wrapper(&launch.path().join("autoreload-p"), &plugin);
    let Some(node) = NodeBuilder::new()
        .without_host()
        .launch_dir(launch.path())
        .standin_only()
        .start()
        .await
        .expect("starts")
    else {
        return;
    };
    node.ok("plugin", json!({"subcommand": "start", "plugin": wrapper}))
        .await;
    assert_eq!(node.ok("tp-echo", json!({})).await["version"], "v1");
    let methods = json!([
        {"name": "tp-echo", "usage": "", "description": "echo"},
        {"name": "tp-new", "usage": "", "description": "new"},
    ]);
    write_testplugin(
        &plugin,
        &json!({"version": "v2", "manifest_extra": {"rpcmethods": methods}}),
    );
    node.wait_status("v2 serving", |s| {
        s["reloads"] == 1 && s["state"] == "serving"
    })
    .await;
    let before = node
        .call("tp-new", json!({}))
        .await
        .expect_err("not registered yet");
    assert!(
        !before.message().contains("unknown method tp-new"),
        "{before}"
    );
    // Answered before lightningd restarts the host, or -4 if it was faster.
    match node.call("autoreload-reregister", json!({})).await {
        Ok(r) => assert_eq!(r["wrapper"], json!(wrapper), "{r}"),
        Err(e) => assert_eq!(e.code(), -4, "{e}"),
    }
    tp_new_reaches_the_plugin(&node).await;
    assert_eq!(node.ok("tp-echo", json!({})).await["version"], "v2");
    assert_eq!(node.host_entry().await["active"], true);
}

/// Waits until lightningd passes `tp-new` on to the plugin, which says
/// it has no such method (the test plugin only declares it).
async fn tp_new_reaches_the_plugin(node: &Node) {
    let start = std::time::Instant::now();
    loop {
        match node.call("tp-new", json!({})).await {
            Err(e) if e.message().contains("unknown method tp-new") => return,
            other => assert!(
                start.elapsed() < BOUND,
                "tp-new never registered: {other:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn with_the_option_a_new_method_registers_itself() {
    let launch = tempdir();
    let plugin = launch.path().join("p.py");
    write_testplugin(&plugin, &json!({}));
    let wrapper = write_wrapper(&launch.path().join("autoreload-p"), &plugin);
    let Some(node) = NodeBuilder::new()
        .launch_dir(launch.path())
        .without_host()
        .arg(format!("--plugin={}", wrapper.display()))
        .arg("--autoreload-reregister-on-change=true")
        .standin_only()
        .start()
        .await
        .expect("starts")
    else {
        return;
    };
    assert_eq!(node.ok("tp-echo", json!({})).await["version"], "v1");
    let methods = json!([
        {"name": "tp-echo", "usage": "", "description": "echo"},
        {"name": "tp-new", "usage": "", "description": "new"},
    ]);
    write_testplugin(
        &plugin,
        &json!({"version": "v2", "manifest_extra": {"rpcmethods": methods, "dynamic": true}}),
    );
    tp_new_reaches_the_plugin(&node).await;
    node.wait_log("re-registering: lightningd restarts cln-autoreload")
        .await;
}

#[tokio::test]
async fn a_host_started_directly_says_how_to_re_register() {
    let launch = tempdir();
    write_testplugin(&launch.path().join("p.py"), &json!({}));
    let Some(node) = NodeBuilder::new()
        .launch_dir(launch.path())
        .arg("--autoreload-plugin=p.py")
        .standin_only()
        .start()
        .await
        .expect("starts")
    else {
        return;
    };
    let err = node
        .call("autoreload-reregister", json!({}))
        .await
        .expect_err("no wrapper");
    assert!(err.message().contains("wrapper script"), "{err}");
    assert_eq!(node.ok("tp-echo", json!({})).await["version"], "v1");
}
