//! Reloads of plugins that take things in `init`, as real plugins do: a
//! TCP port bound in `init` (pyln-client) and one bound at start-up
//! (stdlib), a journal of lightningd's database read in `init` and checked
//! on every `db_write` (as the community `backup` plugin checks its
//! backup), and a counter kept in lightningd's datastore, read in `init`.
//! The default reload (a warm start: the new version's `init` only once
//! the old one is gone) must keep each of them whole; a version that fails
//! in `init` after the old one stopped brings the old version back.

use cln_autoreload_tests::*;
use serde_json::{json, Value};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// tests/plugins/`name` as version `version`, at `path`, put in place in
/// one step as an editor or a build does.
fn install(name: &str, version: &str, path: &Path) {
    install_text(&plugin_text(name, version), path);
}

fn plugin_text(name: &str, version: &str) -> String {
    let text = std::fs::read_to_string(root().join("tests/plugins").join(name)).expect("plugin");
    assert!(
        text.contains("VERSION = \"v1\""),
        "{name} has a VERSION line"
    );
    text.replacen("VERSION = \"v1\"", &format!("VERSION = {version:?}"), 1)
}

fn install_text(text: &str, path: &Path) {
    let tmp = path.with_extension("tmp~");
    std::fs::write(&tmp, text).expect("write");
    make_executable(&tmp);
    std::fs::rename(&tmp, path).expect("rename into place");
}

/// A TCP port on loopback that nothing listens on now.
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 0");
    l.local_addr().expect("addr").port()
}

/// Calls `method` until it answers with `version`, bounded.
async fn wait_version(node: &Node, method: &str, version: &str) -> Value {
    let start = Instant::now();
    loop {
        if let Ok(r) = node.call(method, json!({})).await {
            if r["version"] == version {
                return r;
            }
        }
        if start.elapsed() > BOUND {
            panic!(
                "{method} never answered {version} within {BOUND:?}; status {:#}\nlog:\n{}",
                node.ok("autoreload-status", json!({})).await,
                node.logs().await.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A pyln-client plugin binding its port in `init`: every save goes live
/// (the old version has released the port before the new one's `init`),
/// in the default mode; asked for a full overlap, the new version's
/// `init` fails with pyln's error answer, and the same reload goes on as
/// a warm start, and every later one.
#[tokio::test]
async fn a_port_bound_in_init_goes_live_on_every_save() {
    for mode in [None, Some("full")] {
        let launch = tempdir();
        let path = launch.path().join("portinit.py");
        install("portinit.py", "v1", &path);
        let port = free_port();
        let mut b = NodeBuilder::new()
            .launch_dir(launch.path())
            .arg("--autoreload-plugin=portinit.py")
            .arg(format!("--portinit-port={port}"));
        if let Some(m) = mode {
            b = b.arg(format!("--autoreload-overlap={m}"));
        }
        let Some(node) = b.start().await.expect("node") else {
            return;
        };
        let r = wait_version(&node, "portinit", "v1").await;
        assert_eq!(r["port"], port);
        for i in 2..=5 {
            let v = format!("v{i}");
            install("portinit.py", &v, &path);
            let r = wait_version(&node, "portinit", &v).await;
            assert_eq!(r["port"], port, "{mode:?}");
        }
        let s = node.ok("autoreload-status", json!({})).await["plugins"][0].clone();
        assert_eq!(s["reload_mode"], "warm", "{mode:?}: {s:#}");
        assert_eq!(s["state"], "serving");
        match mode {
            None => assert!(s["last_error"].is_null(), "{s:#}"),
            Some(_) => assert!(
                s["reload_mode_why"]
                    .as_str()
                    .is_some_and(|w| w.contains("Address already in use")),
                "{s:#}"
            ),
        }
        node.stop().await.expect("stop");
    }
}

/// A plugin that binds its port as it starts (before getmanifest), saved
/// while its first version is still starting: the new version cannot even
/// start beside the old one, says so on stderr, and the reload goes on
/// break-before-make, and so does every later one.
#[tokio::test]
async fn a_port_bound_at_start_up_and_saved_early_reloads_cold() {
    let launch = tempdir();
    let path = launch.path().join("portbind.py");
    let text = std::fs::read_to_string(root().join("tests/plugins/portbind.py")).expect("portbind");
    let version = |v: &str| {
        let (shebang, rest) = text.split_once('\n').expect("shebang");
        format!("{shebang}\nVERSION = {v:?}\n{rest}")
    };
    install_text(&version("v1"), &path);
    let port = free_port();
    let node = NodeBuilder::new()
        .launch_dir(launch.path())
        .arg("--autoreload-plugin=portbind.py")
        .env("PORTBIND_PORT", port.to_string());
    // Saved as soon as lightningd has the host's manifest: the first
    // version is still starting or has just started serving, whichever
    // side of that the save lands on.
    let Some(node) = node.start().await.expect("node") else {
        return;
    };
    install_text(&version("v2"), &path);
    let r = wait_version(&node, "portbind", "v2").await;
    assert!(r["pid"].as_u64().is_some());
    install_text(&version("v3"), &path);
    wait_version(&node, "portbind", "v3").await;
    let s = node.ok("autoreload-status", json!({})).await["plugins"][0].clone();
    assert_eq!(s["state"], "serving");
    assert!(
        s["break_before_make"]
            .as_str()
            .is_some_and(|w| w.contains("Address already in use")),
        "{s:#}\n{}",
        node.logs().await.join("\n")
    );
    assert_eq!(s["reload_mode"], "cold");
}

/// What journal.py kept and found wrong, in `dir`.
fn journal(dir: &Path) -> (Vec<Value>, String) {
    let kept = std::fs::read_to_string(dir.join("journal.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("a journal line is JSON"))
        .collect();
    let violations = std::fs::read_to_string(dir.join("violations")).unwrap_or_default();
    (kept, violations)
}

/// journal.py reloaded `reloads` times (each one waited for) while
/// lightningd writes without pause: every write is kept exactly once, in
/// order, and the journal never finds itself behind lightningd (which
/// `backup` answers by shutting lightningd down).
async fn journal_survives(mode: Option<&str>, reloads: u32) {
    let launch = tempdir();
    let dir = tempdir();
    let path = launch.path().join("journal.py");
    install("journal.py", "v1", &path);
    let mut b = NodeBuilder::new()
        .launch_dir(launch.path())
        .arg("--autoreload-plugin=journal.py")
        .env("JOURNAL_DIR", dir.path().display().to_string())
        .standin_only();
    if let Some(m) = mode {
        b = b.arg(format!("--autoreload-overlap={m}"));
    }
    let Some(node) = b.start().await.expect("node") else {
        return;
    };
    let node = Arc::new(node);
    let done = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicU64::new(0));
    let writer = {
        let (node, done, written) = (node.clone(), done.clone(), written.clone());
        tokio::spawn(async move {
            let mut i = 0u64;
            while !done.load(Ordering::SeqCst) {
                node.ok(
                    "dev-db-write",
                    json!({"writes": [format!("INSERT INTO t VALUES ({i})")]}),
                )
                .await;
                i += 1;
                written.store(i, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };
    for n in 2..=reloads + 1 {
        let before = node.generation().await;
        let w = written.load(Ordering::SeqCst);
        install("journal.py", &format!("v{n}"), &path);
        node.serving_after(before).await;
        // Writes went on across this reload.
        let start = Instant::now();
        while written.load(Ordering::SeqCst) < w + 2 {
            assert!(start.elapsed() < BOUND, "writes stopped after reload {n}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    done.store(true, Ordering::SeqCst);
    writer.await.expect("writer");
    let log = node.ok("dev-db-log", json!({})).await;
    let sent = log["writes"].as_array().cloned().unwrap_or_default();
    let (kept, violations) = journal(dir.path());
    assert_eq!(violations, "", "the journal was never behind lightningd");
    assert_eq!(kept.len(), sent.len(), "every write kept once");
    for (i, (k, s)) in kept.iter().zip(&sent).enumerate() {
        assert_eq!(k, s, "write {i}");
    }
    let s = node.ok("autoreload-status", json!({})).await["plugins"][0].clone();
    assert!(s["reloads"].as_u64() >= Some(u64::from(reloads)), "{s:#}");
    assert!(s["crashes"] == 0, "{s:#}");
}

/// By default (break-before-make, for a plugin with the `db_write`
/// hook), over 100 reloads.
#[tokio::test]
async fn a_journal_read_at_start_keeps_every_write_once_across_100_reloads() {
    journal_survives(None, 100).await;
}

/// As a warm start, asked for: the journal is read in `init`, once the
/// old version has written its last write.
#[tokio::test]
async fn a_journal_read_in_init_keeps_every_write_once_across_warm_reloads() {
    journal_survives(Some("warm"), 25).await;
}

/// A node running counter.py (version v1, installed at `path`).
async fn counter_node(path: &Path) -> Option<Node> {
    install("counter.py", "v1", path);
    let dir = path.parent().expect("a directory");
    NodeBuilder::new()
        .launch_dir(dir)
        .arg("--autoreload-plugin=counter.py")
        .start()
        .await
        .expect("node")
}

/// counter.py keeps its count in lightningd's datastore, read in `init`:
/// a caller calling without pause across reloads sees every call counted
/// once, none lost (an `init` beside the old version would read the count
/// while the old one still raised it).
#[tokio::test]
async fn a_datastore_counter_read_in_init_loses_nothing_across_reloads() {
    let launch = tempdir();
    let path = launch.path().join("counter.py");
    let Some(node) = counter_node(&path).await else {
        return;
    };
    let node = Arc::new(node);
    let done = Arc::new(AtomicBool::new(false));
    let caller = {
        let (node, done) = (node.clone(), done.clone());
        tokio::spawn(async move {
            let mut last = 0u64;
            while !done.load(Ordering::SeqCst) {
                let r = node.call("count", json!({})).await;
                let r = r.unwrap_or_else(|e| panic!("a count call failed: {}", e.message()));
                let calls = r["calls"].as_u64().expect("calls");
                assert_eq!(calls, last + 1, "a count was lost or repeated: {r}");
                last = calls;
            }
            last
        })
    };
    for n in 2..=11 {
        let before = node.generation().await;
        install("counter.py", &format!("v{n}"), &path);
        node.serving_after(before).await;
    }
    done.store(true, Ordering::SeqCst);
    let last = caller.await.expect("caller");
    let r = node.ok("count", json!({})).await;
    assert_eq!(r["calls"].as_u64(), Some(last + 1), "{r}");
    assert_eq!(r["version"], "v11");
}

/// A version whose `init` fails once the old one has stopped: the old
/// version comes back (from the copy the host kept of its file) with its
/// count, the log says why, and the next save goes live.
#[tokio::test]
async fn a_version_broken_in_init_brings_the_old_version_back() {
    let launch = tempdir();
    let path = launch.path().join("counter.py");
    let Some(node) = counter_node(&path).await else {
        return;
    };
    for i in 1..=3 {
        assert_eq!(node.ok("count", json!({})).await["calls"], i);
    }
    let broken = plugin_text("counter.py", "v2").replacen(
        "    found = plugin.rpc",
        "    open('/nonexistent/conf.json')\n    found = plugin.rpc",
        1,
    );
    let before = node.generation().await;
    install_text(&broken, &path);
    let s = node.serving_after(before).await;
    assert_eq!(s["last_reload"]["trigger"], "rollback", "{s:#}");
    assert!(
        s["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("conf.json")),
        "{s:#}"
    );
    node.wait_log("Bringing back the version generation").await;
    let r = node.ok("count", json!({})).await;
    assert_eq!(r["version"], "v1", "the old version is back");
    assert_eq!(r["calls"], 4, "with the count it kept in the datastore");
    install("counter.py", "v3", &path);
    let r = wait_version(&node, "count", "v3").await;
    assert!(r["calls"].as_u64() > Some(4));
}

/// `autoreload-restart` answers once the new version serves and the old
/// process is gone (its port released), in every mode.
#[tokio::test]
async fn autoreload_restart_answers_once_the_old_process_is_gone() {
    for mode in ["warm", "full", "false"] {
        let launch = tempdir();
        let path = launch.path().join("portinit.py");
        install("portinit.py", "v1", &path);
        let port = free_port();
        let Some(node) = NodeBuilder::new()
            .launch_dir(launch.path())
            .arg("--autoreload-plugin=portinit.py")
            .arg(format!("--portinit-port={port}"))
            .arg(format!("--autoreload-overlap={mode}"))
            .start()
            .await
            .expect("node")
        else {
            return;
        };
        let old = wait_version(&node, "portinit", "v1").await["pid"]
            .as_u64()
            .and_then(|p| u32::try_from(p).ok())
            .expect("a pid");
        let r = node.ok("autoreload-restart", json!({})).await;
        assert!(!alive(old), "{mode}: answered {r} while {old} runs");
        let now = node.ok("portinit", json!({})).await;
        assert_ne!(now["pid"], json!(old), "{mode}");
        assert_eq!(now["port"], port, "{mode}");
        node.stop().await.expect("stop");
    }
}
