//! A real `cargo build` as the trigger.

use super::*;

/// Copies examples/hello-wasm into its own crate, builds it, runs it
/// under the host, edits and rebuilds it: exactly one reload, and the
/// new code answers.
#[tokio::test]
async fn a_cargo_rebuild_of_the_example_reloads_once() {
    let krate = tempdir();
    let main_rs = copy_hello_wasm(krate.path());
    let build = || build_copied_wasm(krate.path(), false);
    let wasm = build();
    let Some(node) = NodeBuilder::new()
        .launch_dir(krate.path())
        .arg(format!("--autoreload-plugin={}", wasm.display()))
        .start()
        .await
        .expect("node starts")
    else {
        return;
    };
    assert_eq!(node.ok("hello", json!([])).await["version"], "1");
    let gen = node.ok("autoreload-status", json!({})).await["plugins"][0]["generation"]
        .as_u64()
        .unwrap();
    std::fs::write(
        krate.path().join("src/main.rs"),
        main_rs.replace(
            "const VERSION: &str = \"1\";",
            "const VERSION: &str = \"2\";",
        ),
    )
    .unwrap();
    build();
    let s = node
        .wait_status("the rebuilt module serving", |s| {
            s["generation"].as_u64().unwrap_or(0) > gen && s["state"] == "serving"
        })
        .await;
    assert_eq!(node.ok("hello", json!([])).await["version"], "2");
    let r = node.ok("autoreload-restart", json!({})).await;
    assert_eq!(
        r["generation"].as_u64(),
        Some(s["generation"].as_u64().unwrap() + 1),
        "the rebuild caused more than one reload: {r}"
    );
    assert_eq!(s["reloads"], 1);
}
