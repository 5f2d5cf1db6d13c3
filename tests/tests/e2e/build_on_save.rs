//! Build on save.

use super::*;

async fn wait_version(node: &Node, method: &str, want: &str, bound: Duration) {
    let start = std::time::Instant::now();
    loop {
        if let Ok(v) = node.call(method, json!({})).await {
            if v["version"] == want {
                return;
            }
        }
        if start.elapsed() > bound {
            let s = node.ok("autoreload-status", json!({})).await;
            panic!("version {want} never served within {bound:?}: {s:#}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_build_command_runs_on_save_and_a_failed_build_keeps_the_old_version() {
    let launch = tempdir();
    let dir = launch.path();
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::write(
            dir.join("build.sh"),
            "if [ -e src/BROKEN ]; then echo 'error: src/BROKEN exists' >&2; exit 1; fi\ncp src/p.py.in p.py.tmp && chmod +x p.py.tmp && mv p.py.tmp p.py\necho built\n",
        )
        .unwrap();
    std::fs::write(
        dir.join("src/p.py.in"),
        testplugin_text(&json!({"version": "v1"})),
    )
    .unwrap();
    write_testplugin(&dir.join("p.py"), &json!({"version": "v1"}));
    let Some(node) = NodeBuilder::new()
        .launch_dir(dir)
        .arg("--autoreload-plugin=p.py")
        .arg("--autoreload-build=sh build.sh")
        .arg("--autoreload-watch=src")
        .start()
        .await
        .expect("starts")
    else {
        return;
    };
    assert_eq!(node.ok("tp-echo", json!({})).await["version"], "v1");
    std::fs::write(
        dir.join("src/p.py.in"),
        testplugin_text(&json!({"version": "v2"})),
    )
    .unwrap();
    wait_version(&node, "tp-echo", "v2", BOUND).await;
    let s = node
        .wait_status("the build recorded", |s| {
            s["build"]["builds"] == 1 && s["build"]["state"] == "idle"
        })
        .await;
    assert_eq!(s["build"]["last"]["ok"], true, "{s:#}");
    assert_eq!(s["reloads"], 1);
    // A failing build: reported, the old version keeps serving.
    std::fs::write(dir.join("src/BROKEN"), "").unwrap();
    let s = node
        .wait_status("the failed build recorded", |s| {
            s["build"]["builds"] == 2 && s["build"]["state"] == "idle"
        })
        .await;
    assert_eq!(s["build"]["last"]["ok"], false, "{s:#}");
    assert!(
        s["build"]["last"]["output"]
            .to_string()
            .contains("error: src/BROKEN exists"),
        "{s:#}"
    );
    node.wait_log("build: error: src/BROKEN exists").await;
    assert_eq!(node.ok("tp-echo", json!({})).await["version"], "v2");
    assert_eq!(s["reloads"], 1);
    // Fixed: rapid saves coalesce into at most one more build after the
    // one running.
    std::fs::remove_file(dir.join("src/BROKEN")).unwrap();
    for v in ["v3", "v4", "v5"] {
        std::fs::write(
            dir.join("src/p.py.in"),
            testplugin_text(&json!({"version": v})),
        )
        .unwrap();
    }
    wait_version(&node, "tp-echo", "v5", BOUND).await;
    let s = node
        .wait_status("builds idle", |s| s["build"]["state"] == "idle")
        .await;
    let builds = s["build"]["builds"].as_u64().unwrap();
    assert!(
        (3..=4).contains(&builds),
        "three saves made {builds} builds in all: {s:#}"
    );
    // The build writes p.py next to src/: no rebuild loop.
    node.ok("autoreload-restart", json!({})).await;
    let s = node.ok("autoreload-status", json!({})).await["plugins"][0].clone();
    assert_eq!(s["build"]["builds"].as_u64(), Some(builds), "{s:#}");
}

#[tokio::test]
async fn saving_a_module_next_to_a_python_plugin_reloads_it() {
    let launch = tempdir();
    write_testplugin(&launch.path().join("p.py"), &json!({}));
    std::fs::write(launch.path().join("helper.py"), "X = 1\n").unwrap();
    let Some(node) = NodeBuilder::new()
        .launch_dir(launch.path())
        .arg("--autoreload-plugin=p.py")
        .start()
        .await
        .expect("starts")
    else {
        return;
    };
    let pid = node.ok("tp-echo", json!({})).await["pid"].clone();
    std::fs::write(launch.path().join("helper.py"), "X = 2\n").unwrap();
    let s = node
        .wait_status("reloaded", |s| s["reloads"] == 1 && s["state"] == "serving")
        .await;
    assert!(
        s.get("build").is_some_and(|b| b["command"].is_null()),
        "{s:#}"
    );
    assert_ne!(node.ok("tp-echo", json!({})).await["pid"], pid);
    // __pycache__ writes by Python itself never count.
    std::fs::create_dir_all(launch.path().join("__pycache__")).unwrap();
    std::fs::write(
        launch.path().join("__pycache__/helper.cpython-311.pyc"),
        "x",
    )
    .unwrap();
    let r = node.ok("autoreload-restart", json!({})).await;
    assert_eq!(r["generation"], 3, "{r}");
}

/// The inferred cargo build of a wasm plugin: edit, save, and the
/// rebuilt module serves; a compile error keeps the old one.
#[tokio::test]
async fn a_cargo_wasm_plugin_is_rebuilt_on_save() {
    let krate = tempdir();
    let main_rs = copy_hello_wasm(krate.path());
    // Its own target dir, as a user's crate has: that is what the
    // inference recognizes.
    let wasm = build_wasm_crate(krate.path(), false, None);
    let Some(node) = NodeBuilder::new()
        .launch_dir(krate.path())
        .arg(format!("--autoreload-plugin={}", wasm.display()))
        .env_remove("CARGO_TARGET_DIR")
        .start()
        .await
        .expect("starts")
    else {
        return;
    };
    node.wait_log("cargo build --target wasm32-wasip1 -p hello-wasm --bin hello-wasm")
        .await;
    assert_eq!(node.ok("hello", json!([])).await["version"], "1");
    let src = krate.path().join("src/main.rs");
    std::fs::write(
        &src,
        main_rs.replace(
            "const VERSION: &str = \"1\";",
            "const VERSION: &str = \"2\";",
        ),
    )
    .unwrap();
    wait_version(&node, "hello", "2", Duration::from_secs(180)).await;
    std::fs::write(
        &src,
        main_rs.replace("const VERSION: &str = \"1\";", "const VERSION: &str = 2;"),
    )
    .unwrap();
    let s = node
        .wait_status("the failed build", |s| {
            s["build"]["last"]["ok"] == false && s["build"]["state"] == "idle"
        })
        .await;
    assert!(
        s["build"]["last"]["output"].to_string().contains("error"),
        "{s:#}"
    );
    assert_eq!(node.ok("hello", json!([])).await["version"], "2");
    assert_eq!(s["reloads"], 1, "{s:#}");
}
