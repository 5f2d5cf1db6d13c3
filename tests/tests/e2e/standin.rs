//! The stand-in itself, checked against the recorded traces: what a plugin
//! receives from it is what it receives from lightningd v26.06.

use super::*;

#[tokio::test]
async fn a_plugin_under_the_standin_sees_what_lightningd_sent() {
    let (Some(raw), Some(config)) = (
        trace("static-plugin.stdin.raw"),
        direct::trace_plugin_config(),
    ) else {
        return;
    };
    if real_lightningd().is_some() {
        skip("checks the stand-in, not lightningd");
        return;
    }
    let msgs = direct::messages(&raw);
    let (gm, init) = (&msgs[0].1, &msgs[1].1);
    let launch = tempdir();
    write_testplugin(&launch.path().join("tracer.py"), &config);
    let node = NodeBuilder::new()
        .without_host()
        .launch_dir(launch.path())
        .arg("--plugin=tracer.py")
        .args([
            "--trace-str=hello",
            "--trace-multi=a",
            "--trace-multi=b",
            "--trace-flag",
            "--trace-int",
            "42",
        ])
        .start()
        .await
        .expect("stand-in starts")
        .expect("stand-in");
    let state = node.ok("trace-state", json!([])).await;
    assert_eq!(state["getmanifest"], gm["params"]);
    assert_eq!(state["init"]["options"], init["params"]["options"]);
    let (got, want) = (
        &state["init"]["configuration"],
        &init["params"]["configuration"],
    );
    let keys = |v: &Value| {
        v.as_object()
            .map(|o| o.keys().cloned().collect::<Vec<_>>())
            .unwrap_or_default()
    };
    assert_eq!(keys(got), keys(want));
    for k in ["rpc-file", "startup", "network", "feature_set"] {
        assert_eq!(got[k], want[k], "{k}");
    }
    assert!(got["lightning-dir"].as_str().unwrap().ends_with("/regtest"));
    let env = &state["env"];
    assert_eq!(env["LIGHTNINGD_PLUGIN"], "1");
    assert_eq!(env["LIGHTNINGD_VERSION"], "v26.06.6");
    // (PWD is not checked here: this Python may run through a shell
    // shim, and shells reset a PWD that is not their cwd. The host reads
    // PWD itself; the locator tests show it resolves against it.)
    assert!(
        state["cwd"].as_str().unwrap().ends_with("/regtest"),
        "cwd is <lightning-dir>/regtest"
    );
    let argv0 = std::fs::canonicalize(launch.path().join("tracer.py")).unwrap();
    assert_eq!(state["argv"], json!([argv0]));
}

/// A wrapper script is how to run the host with `plugin start`.
#[tokio::test]
async fn the_host_runs_from_a_wrapper_with_plugin_start() {
    let launch = tempdir();
    let plugin = launch.path().join("p.py");
    write_testplugin(&plugin, &json!({"version": "started"}));
    let wrapper = write_wrapper(&launch.path().join("autoreload-p"), &plugin);
    let Some(node) = NodeBuilder::new()
        .without_host()
        .launch_dir(launch.path())
        .start()
        .await
        .expect("starts")
    else {
        return;
    };
    node.ok("plugin", json!({"subcommand": "start", "plugin": wrapper}))
        .await;
    assert_eq!(node.ok("tp-echo", json!({})).await["version"], "started");
    write_testplugin(&plugin, &json!({"version": "edited"}));
    node.wait_status("reloaded", |s| s["reloads"] == 1 && s["state"] == "serving")
        .await;
    assert_eq!(node.ok("tp-echo", json!({})).await["version"], "edited");
}
