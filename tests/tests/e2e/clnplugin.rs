//! Plugins written with the official `cln-plugin` crate
//! (examples/hello-cln-plugin), the SDK most Rust plugin authors use, and
//! what the host does with what a generation says on its way out.

use super::*;
use std::path::{Path, PathBuf};

/// The example's binary (and package) name.
const PLUGIN: &str = "hello-cln-plugin";

/// Copies examples/hello-cln-plugin into `dir` as a crate of its own (so it
/// can be edited and rebuilt as a user's plugin is), with the workspace's
/// Cargo.lock (the same crate versions, and no registry needed); returns
/// its main.rs text.
fn copy_example(dir: &Path) -> String {
    let src = root().join("examples").join(PLUGIN);
    std::fs::create_dir_all(dir.join("src")).expect("mkdir");
    let main_rs = std::fs::read_to_string(src.join("src/main.rs")).expect("main.rs");
    std::fs::write(dir.join("src/main.rs"), &main_rs).expect("write main.rs");
    let manifest = std::fs::read_to_string(src.join("Cargo.toml")).expect("Cargo.toml");
    // Its own workspace: what it took from ours, it states itself.
    let manifest = manifest
        .replace("edition.workspace = true", "edition = \"2021\"")
        .replace("license.workspace = true", "license = \"MIT\"")
        .replace("serde_json.workspace = true", "serde_json = \"1\"")
        .replace(
            "tokio = { workspace = true,",
            "tokio = { version = \"1\", default-features = false,",
        );
    assert!(
        !manifest.contains("workspace"),
        "examples/{PLUGIN}/Cargo.toml inherits something copy_example does not replace: {manifest}"
    );
    std::fs::write(dir.join("Cargo.toml"), format!("{manifest}\n[workspace]\n"))
        .expect("write Cargo.toml");
    std::fs::copy(root().join("Cargo.lock"), dir.join("Cargo.lock")).expect("copy Cargo.lock");
    main_rs
}

/// `cargo build` in the copied crate, into a target dir kept between runs
/// (its dependencies compile once); returns the binary.
fn build(krate: &Path) -> PathBuf {
    let target = target_dir().join("example-copies");
    let status =
        std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["build", "-q", "--offline"])
            .current_dir(krate)
            .env("CARGO_TARGET_DIR", &target)
            .status()
            .expect("cargo runs");
    assert!(
        status.success(),
        "cargo build of {} failed",
        krate.display()
    );
    target.join("debug").join(PLUGIN)
}

/// Puts `bin` at `path` the way a build does: complete, executable, and
/// renamed into place at once.
fn install(bin: &Path, path: &Path) {
    let tmp = path.with_file_name(format!(".{PLUGIN}.partial"));
    std::fs::copy(bin, &tmp).expect("copy the binary");
    std::fs::rename(&tmp, path).expect("rename into place");
}

/// Log lines about the plugin above debug and info: what an operator is
/// asked to look at.
fn unusual(logs: &[String]) -> Vec<&String> {
    logs.iter()
        .filter(|l| l.contains(&format!("[{PLUGIN}]")))
        .filter(|l| !l.starts_with("DEBUG ") && !l.starts_with("INFO "))
        .collect()
}

/// Start, call, rebuild with a new version, reload, call: the new version
/// answers, and the old one's "Plugin loop returned error Error reading
/// from master" (cln-plugin's warning when its stdin closes, which is the
/// reload itself) is in lightningd's log at debug, not at warn.
#[tokio::test]
async fn a_cln_plugin_crate_plugin_reloads_without_a_warning() {
    let krate = tempdir();
    let main_rs = copy_example(krate.path());
    let launch = tempdir();
    let plugin = launch.path().join(PLUGIN);
    install(&build(krate.path()), &plugin);
    let Some(node) = NodeBuilder::new()
        .launch_dir(launch.path())
        .arg(format!("--autoreload-plugin={PLUGIN}"))
        .arg("--hello-clnp-greeting=Hi")
        // As the issue had it: cln-plugin's error comes with a backtrace.
        .env("RUST_BACKTRACE", "1")
        .start()
        .await
        .expect("node starts")
    else {
        return;
    };
    let r = node.ok("hello-clnp", json!(["Alice"])).await;
    assert_eq!(r, json!({"greeting": "Hi, Alice!", "version": "1"}));
    let gen = node
        .wait_status("serving", |s| s["state"] == "serving")
        .await["generation"]
        .as_u64()
        .expect("a generation");

    let v2 = main_rs.replace(
        "const VERSION: &str = \"1\";",
        "const VERSION: &str = \"2\";",
    );
    assert_ne!(
        v2, main_rs,
        "VERSION is no longer spelled as the test expects"
    );
    std::fs::write(krate.path().join("src/main.rs"), v2).expect("edit main.rs");
    install(&build(krate.path()), &plugin);
    let s = node
        .wait_status("the rebuilt binary serving", |s| {
            s["state"] == "serving" && s["generation"].as_u64().unwrap_or(0) > gen
        })
        .await;
    assert_eq!(s["reloads"], 1, "{s:#}");
    let r = node.ok("hello-clnp", json!({"name": "Bob"})).await;
    assert_eq!(r, json!({"greeting": "Hi, Bob!", "version": "2"}));

    // Lowered, not lost: the stopped generation said it, at debug.
    let line = node.wait_log("Error reading from master").await;
    assert!(
        line.starts_with("DEBUG ") && line.contains(&format!("[{PLUGIN}] (generation {gen}")),
        "{line}"
    );
    let logs = node.logs().await;
    assert!(
        unusual(&logs).is_empty(),
        "a reload put warnings about the plugin in lightningd's log:\n{}",
        logs.join("\n")
    );
    // Its own log lines at info still read as info.
    assert!(
        logs.iter()
            .any(|l| l.starts_with("INFO ") && l.contains("hello-cln-plugin version 2 started")),
        "{}",
        logs.join("\n")
    );
    node.stop().await.expect("stops");
}

/// The same for a `.wasm` plugin: what a retiring instance says once the
/// host told it to stop (the test guest logs at warn on `shutdown`) is in
/// the log at debug.
#[tokio::test]
async fn a_retiring_wasm_instance_says_its_last_words_at_debug() {
    let last_words = "leaving now, as told";
    let Some(super::wasm::Guest {
        node,
        module,
        _launch,
    }) = super::wasm::guest(
        "v1",
        &[&format!("--tg-greeting=say-on-shutdown:{last_words}")],
    )
    .await
    else {
        return;
    };
    assert_eq!(node.ok("tg-version", json!({})).await["version"], "v1");
    write_atomically(&module, &testguest_version("v2"));
    node.wait_status("v2 serving", |s| {
        s["state"] == "serving" && s["generation"].as_u64().unwrap_or(0) > 1
    })
    .await;
    assert_eq!(node.ok("tg-version", json!({})).await["version"], "v2");
    let line = node.wait_log(last_words).await;
    assert!(
        line.starts_with("DEBUG ") && line.contains("[guest.wasm] (generation 1, stopping"),
        "{line}"
    );
    let logs = node.logs().await;
    let loud: Vec<_> = logs
        .iter()
        .filter(|l| l.contains("[guest.wasm]"))
        .filter(|l| !l.starts_with("DEBUG ") && !l.starts_with("INFO "))
        .collect();
    assert!(loud.is_empty(), "{}", logs.join("\n"));
}

/// What a generation that still serves says keeps its level, before and
/// after a reload: only a generation whose stdin the host closed is
/// lowered to debug.
#[tokio::test]
async fn a_serving_generation_keeps_its_log_levels() {
    let launch = tempdir();
    write_testplugin(&launch.path().join("plugin.py"), &json!({}));
    let Some(node) = NodeBuilder::new()
        .launch_dir(launch.path())
        .arg("--autoreload-plugin=plugin.py")
        .start()
        .await
        .expect("node starts")
    else {
        return;
    };
    for gen in 1..=2 {
        if gen == 2 {
            node.ok("autoreload-restart", json!({})).await;
        }
        let problem = format!("a real problem in generation {gen}");
        node.ok("tp-stderr", json!([problem])).await;
        let line = node.wait_log(&problem).await;
        assert!(line.starts_with("INFO "), "{line}");
        let warning = format!("a real warning in generation {gen}");
        node.ok("tp-log", json!(["warn", warning])).await;
        let line = node.wait_log(&warning).await;
        assert!(line.starts_with("UNUSUAL "), "{line}");
        let error = format!("a real error in generation {gen}");
        node.ok("tp-log", json!(["error", error])).await;
        let line = node.wait_log(&error).await;
        assert!(line.starts_with("BROKEN "), "{line}");
    }
    node.stop().await.expect("stops");
}
