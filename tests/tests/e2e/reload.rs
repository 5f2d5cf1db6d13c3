//! Reloads that keep the plugin up and its state: make-before-break for
//! native plugins (a broken version never replaces a working one; one that
//! cannot run beside the old one falls back to break-before-make), and the
//! state hand-over (`"autoreload": {"state": true}`), through the stand-in
//! with real plugin processes and modules and real files replaced on disk.

use cln_autoreload_tests::*;
use serde_json::{json, Value};
use std::path::Path;

/// stateful.py as version `version` with knobs `config` (see its header).
fn stateful_text(version: &str, config: &Value) -> String {
    let text = std::fs::read_to_string(root().join("tests/plugins/stateful.py"))
        .expect("tests/plugins/stateful.py");
    let (shebang, rest) = text.split_once('\n').expect("a shebang line");
    format!("{shebang}\nVERSION = {version:?}\nCONFIG = r'''{config}'''\n{rest}")
}

/// Puts an executable file in place in one step, as a build does.
fn install(path: &Path, content: impl AsRef<[u8]>) {
    let tmp = path.with_extension("tmp~");
    std::fs::write(&tmp, content).expect("write");
    make_executable(&tmp);
    std::fs::rename(&tmp, path).expect("rename into place");
}

async fn generation(node: &Node) -> u64 {
    node.ok("autoreload-status", json!({})).await["plugins"][0]["generation"]
        .as_u64()
        .expect("a generation")
}

/// Waits for a generation newer than `after` to serve.
async fn serving_after(node: &Node, after: u64) -> Value {
    node.wait_status(&format!("a generation after {after} serving"), |s| {
        s["state"] == "serving" && s["generation"].as_u64() > Some(after)
    })
    .await
}

/// Log lines containing `needle`, so far.
async fn count_logs(node: &Node, needle: &str) -> usize {
    node.logs()
        .await
        .iter()
        .filter(|l| l.contains(needle))
        .count()
}

/// Waits until more log lines than `before` contain `needle`.
async fn next_log(node: &Node, needle: &str, before: usize) {
    let start = std::time::Instant::now();
    while count_logs(node, needle).await <= before {
        assert!(
            start.elapsed() < BOUND,
            "no new log line with {needle:?} within {BOUND:?}:\n{}",
            node.logs().await.join("\n")
        );
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
}

/// Calls `method` and reloads (`reload(i)`) `reloads` times: the call
/// counter it answers goes on from where the last version left it.
async fn counter_survives(node: &Node, method: &str, reloads: u64, reload: impl Fn(u64)) {
    for i in 1..=reloads {
        let r = node.ok(method, json!([])).await;
        assert_eq!(r["calls"], i, "after {} reloads: {r}", i - 1);
        let before = generation(node).await;
        reload(i);
        let s = serving_after(node, before).await;
        assert_eq!(
            s["last_handover"]["outcome"], "restored",
            "reload {i}: {s:#}"
        );
    }
    let r = node.ok(method, json!([])).await;
    assert_eq!(r["calls"], reloads + 1, "{r}");
}

#[tokio::test]
async fn a_python_counter_survives_100_reloads() {
    let launch = tempdir();
    let plugin = launch.path().join("hello.py");
    let text =
        std::fs::read_to_string(root().join("examples/hello-py/hello.py")).expect("hello.py");
    install(&plugin, &text);
    let Some(node) = NodeBuilder::new()
        .launch_dir(launch.path())
        .arg("--autoreload-plugin=hello.py")
        // The copy is not beside the repository's python/ directory.
        .env("PYTHONPATH", root().join("python").display().to_string())
        .start()
        .await
        .expect("node starts")
    else {
        return;
    };
    counter_survives(&node, "hello", 100, |i| {
        install(&plugin, format!("{text}\n# save {i}\n"))
    })
    .await;
}

#[tokio::test]
async fn a_rust_counter_survives_100_reloads_native_and_wasm() {
    let launch = tempdir();
    let native = std::fs::read(built_bin("hello-wasm", "hello-wasm")).expect("hello-wasm");
    let wasm = std::fs::read(wasm_bin("hello-wasm", false)).expect("hello-wasm.wasm");
    for (file, bytes) in [("hello-native-rs", native), ("hello.wasm", wasm)] {
        let path = launch.path().join(file);
        let put = |bytes: &[u8]| install(&path, bytes);
        put(&bytes);
        let Some(node) = NodeBuilder::new()
            .launch_dir(launch.path())
            .arg(format!("--autoreload-plugin={file}"))
            .start()
            .await
            .expect("node starts")
        else {
            return;
        };
        // The same build again, as a rebuild that changed nothing would
        // write it: a new file all the same.
        counter_survives(&node, "hello", 100, |_| put(&bytes)).await;
    }
}

/// A new version that fails to start (a syntax error, an exit) never
/// replaces the serving one: its calls and its state go on, and the log
/// and the status say why. One that fails in init (no answer), which runs
/// only once the old one has gone, brings the old version back with its
/// state.
#[tokio::test]
async fn broken_versions_leave_the_old_one_serving_with_its_state() {
    let launch = tempdir();
    let plugin = launch.path().join("stateful.py");
    install(&plugin, stateful_text("v1", &json!({})));
    let Some(node) = NodeBuilder::new()
        .launch_dir(launch.path())
        .arg("--autoreload-plugin=stateful.py")
        .arg("--autoreload-start-timeout-ms=3000")
        .start()
        .await
        .expect("node starts")
    else {
        return;
    };
    let mut calls = 0;
    for (fail, says) in [("syntax", "SyntaxError"), ("exit", "FAIL_START=exit")] {
        calls += 1;
        assert_eq!(node.ok("count", json!({})).await["calls"], calls);
        let serving = generation(&node).await;
        let before = count_logs(&node, "new version not started").await;
        install(&plugin, stateful_text("v2", &json!({"FAIL_START": fail})));
        next_log(&node, "new version not started", before).await;
        let s = node.ok("autoreload-status", json!({})).await["plugins"][0].clone();
        assert_eq!(s["state"], "serving", "{fail}: {s:#}");
        assert_eq!(s["generation"], serving, "{fail}: {s:#}");
        let err = s["last_error"].as_str().unwrap_or_default();
        assert!(err.contains(says), "{fail}: {s:#}");
    }
    calls += 1;
    assert_eq!(node.ok("count", json!({})).await["calls"], calls);
    let before = generation(&node).await;
    install(
        &plugin,
        stateful_text("v2", &json!({"FAIL_START": "hang-init"})),
    );
    let s = serving_after(&node, before).await;
    assert_eq!(s["last_reload"]["trigger"], "rollback", "{s:#}");
    let err = s["last_error"].as_str().unwrap_or_default();
    assert!(
        err.contains("no answer to getmanifest/init within 3000 ms"),
        "{s:#}"
    );
    node.wait_log("Bringing back the version generation").await;
    let r = node.ok("count", json!({})).await;
    assert_eq!(r, json!({"calls": calls + 1, "version": "v1"}));
    let before = generation(&node).await;
    install(&plugin, stateful_text("v2", &json!({})));
    serving_after(&node, before).await;
    let r = node.ok("count", json!({})).await;
    assert_eq!(r, json!({"calls": calls + 2, "version": "v2"}));
}

/// A plugin holding a port cannot start beside its old version: the reload
/// falls back to break-before-make, and stays so for that plugin.
#[tokio::test]
async fn a_plugin_holding_a_port_reloads_through_the_fallback() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let launch = tempdir();
    let plugin = launch.path().join("portbind.py");
    let text =
        std::fs::read_to_string(root().join("tests/plugins/portbind.py")).expect("portbind.py");
    let version = |v: &str| {
        let (shebang, rest) = text.split_once('\n').expect("a shebang line");
        format!("{shebang}\nVERSION = {v:?}\n{rest}")
    };
    install(&plugin, version("v1"));
    let Some(node) = NodeBuilder::new()
        .launch_dir(launch.path())
        .arg("--autoreload-plugin=portbind.py")
        .env("PORTBIND_PORT", port.to_string())
        .start()
        .await
        .expect("node starts")
    else {
        return;
    };
    let first = node.ok("portbind", json!({})).await;
    assert_eq!(first["version"], "v1");
    install(&plugin, version("v2"));
    node.wait_log("cannot run beside the old one").await;
    let s = serving_after(&node, 1).await;
    assert!(
        s["break_before_make"]
            .as_str()
            .is_some_and(|w| w.contains("Address already in use")),
        "{s:#}"
    );
    let second = node.ok("portbind", json!({})).await;
    assert_eq!(second["version"], "v2");
    assert_ne!(second["pid"], first["pid"]);
    // From now on it goes straight to break-before-make: no second failed
    // start.
    let before = generation(&node).await;
    let in_use = count_logs(&node, "Address already in use").await;
    install(&plugin, version("v3"));
    serving_after(&node, before).await;
    assert_eq!(node.ok("portbind", json!({})).await["version"], "v3");
    assert_eq!(count_logs(&node, "cannot run beside the old one").await, 1);
    assert_eq!(count_logs(&node, "Address already in use").await, in_use);
}

/// One reload of stateful.py from `old` knobs to `new` knobs after two
/// calls: the new version's first count, and the node for more checks.
async fn hand_over(
    old: Value,
    new: Value,
    args: &[&str],
) -> Option<(Value, Node, tempfile::TempDir)> {
    let launch = tempdir();
    let plugin = launch.path().join("stateful.py");
    install(&plugin, stateful_text("v1", &old));
    let node = NodeBuilder::new()
        .launch_dir(launch.path())
        .arg("--autoreload-plugin=stateful.py")
        .args(args.iter().copied())
        .start()
        .await
        .expect("node starts")?;
    node.ok("count", json!({})).await;
    assert_eq!(node.ok("count", json!({})).await["calls"], 2);
    install(&plugin, stateful_text("v2", &new));
    serving_after(&node, 1).await;
    let r = node.ok("count", json!({})).await;
    assert_eq!(r["version"], "v2");
    Some((r, node, launch))
}

#[tokio::test]
async fn a_state_handed_over_reaches_the_new_version_before_any_call() {
    for overlap in ["true", "false"] {
        let arg = format!("--autoreload-overlap={overlap}");
        let Some((r, node, _launch)) = hand_over(json!({}), json!({}), &[&arg]).await else {
            return;
        };
        assert_eq!(r["calls"], 3, "overlap={overlap}");
        let s = node.ok("autoreload-status", json!({})).await["plugins"][0].clone();
        assert_eq!(s["last_handover"]["outcome"], "restored", "{s:#}");
        assert_eq!(s["last_handover"]["from"], 1);
        assert_eq!(s["last_handover"]["to"], 2);
        // lightningd never saw the hand-over's methods or field.
        let help = node.ok("help", json!({})).await.to_string();
        assert!(!help.contains("autoreload-save-state"), "{help}");
    }
}

#[tokio::test]
async fn a_state_too_large_is_not_handed_over_and_the_new_version_starts_fresh() {
    let big = json!({"STATE_SIZE": 17 << 20});
    let Some((r, node, _launch)) = hand_over(big, json!({}), &[]).await else {
        return;
    };
    assert_eq!(r["calls"], 1, "fresh");
    node.wait_log("more than the 16 MiB handed over").await;
}

#[tokio::test]
async fn a_state_the_new_version_refuses_leaves_it_fresh_with_a_warning() {
    let Some((r, node, _launch)) =
        hand_over(json!({}), json!({"RESTORE_MODE": "error"}), &[]).await
    else {
        return;
    };
    assert_eq!(r["calls"], 1, "fresh");
    node.wait_log("did not take the state from generation 1")
        .await;
    node.wait_log("restore refused on purpose").await;
}

#[tokio::test]
async fn a_state_of_an_old_schema_starts_the_new_version_from_zero_with_a_warning() {
    let Some((r, node, _launch)) = hand_over(json!({}), json!({"SCHEMA": 2}), &[]).await else {
        return;
    };
    assert_eq!(r["calls"], 1, "from zero");
    node.wait_log("saved state has schema 1, this version has schema 2")
        .await;
}

#[tokio::test]
async fn a_version_that_cannot_save_hands_over_nothing_and_nothing_waits_long() {
    for mode in ["error", "hang", "garbage"] {
        let Some((r, node, _launch)) = hand_over(
            json!({"SAVE_MODE": mode}),
            json!({}),
            &["--autoreload-grace-ms=500"],
        )
        .await
        else {
            return;
        };
        assert_eq!(r["calls"], 1, "{mode}: fresh");
        node.wait_log("did not hand over its state").await;
    }
}
