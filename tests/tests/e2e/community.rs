//! Real plugins written by others, unmodified, reloaded through the
//! stand-in: `backup` (a `db_write` journal, read as it starts, checked on
//! its first write; it shuts lightningd down when it finds itself behind),
//! with its own `backup-cli restore` compared with every write the
//! stand-in made; and `prometheus` (an HTTP server bound in `init`).
//!
//! They come from the lightningd/plugins mirror beside the checkout
//! (`../.mirror/lightningd+plugins/repo`, or `PLUGINS_SRC`), read with
//! `git archive` into a temporary directory: nothing of them is in the
//! project. Their Python dependencies come from PyPI (`.ci/run` installs
//! them when the mirror is there). Ignored by default, like the protocol
//! tests: `.ci/run` runs them with `--ignored` where the mirror is.
//!
//! Each runs through a wrapper script, as reckless installs Python
//! plugins (their `#!` line asks for `uv run`, which resolves their
//! dependencies from the network at every start): the wrapper is the file
//! cln-autoreload manages, and saving it reloads the plugin.

use cln_autoreload_tests::*;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const IGNORED: &str = "runs plugins from the lightningd/plugins mirror: fetch it beside the project (or set PLUGINS_SRC), then run with --ignored";

/// `dir` of the community plugins' repository, extracted into `into`.
fn community_plugin(dir: &str, into: &Path) -> PathBuf {
    let src = std::env::var_os("PLUGINS_SRC")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("../.mirror/lightningd+plugins/repo"));
    if !src.exists() {
        panic!("no lightningd/plugins at {}: {IGNORED}", src.display());
    }
    let archive = Command::new("git")
        .arg("--git-dir")
        .arg(&src)
        .args(["archive", "HEAD", dir])
        .output()
        .expect("git archive");
    assert!(archive.status.success(), "git archive {dir}: {archive:?}");
    let mut tar = Command::new("tar")
        .args(["-x", "-C"])
        .arg(into)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("tar");
    {
        use std::io::Write;
        tar.stdin
            .take()
            .expect("stdin")
            .write_all(&archive.stdout)
            .expect("untar");
    }
    assert!(tar.wait().expect("tar").success());
    into.join(dir)
}

/// Whether python3 can import each module (their dependencies).
fn python_has(modules: &[&str]) -> bool {
    modules.iter().all(|m| {
        Command::new("python3")
            .args(["-c", &format!("import {m}")])
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// The wrapper that runs `script` with python3, as reckless's does,
/// saved (renamed into place) for the `n`th time.
fn wrapper(dir: &Path, script: &Path, n: u32) -> PathBuf {
    let stem = script
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("plugin");
    let w = dir.join(format!("{stem}-wrapper"));
    let tmp = w.with_extension("save~");
    let text = format!(
        "#!/bin/sh\n# save {n}\nexec python3 {} \"$@\"\n",
        script.display()
    );
    std::fs::write(&tmp, text).expect("wrapper");
    make_executable(&tmp);
    std::fs::rename(&tmp, &w).expect("rename");
    w
}

/// `backup`, reloaded 20 times while lightningd writes: lightningd is
/// never shut down, and `backup-cli restore` gives back every write.
#[tokio::test]
#[ignore = "runs plugins from the lightningd/plugins mirror: fetch it beside the project (or set PLUGINS_SRC), then run with --ignored"]
async fn backup_keeps_every_write_across_reloads() {
    if !python_has(&["pyln.client", "psutil", "click", "sqlite3"]) {
        panic!("backup needs pyln-client, psutil and click: pip install them");
    }
    let work = tempdir();
    let plugin_dir = community_plugin("backup", work.path());
    let ldir = work.path().join("ld");
    std::fs::create_dir_all(ldir.join("regtest")).expect("lightning dir");
    let backup_file = work.path().join("backup.bkp");
    let url = format!("file://{}", backup_file.display());
    let cli = plugin_dir.join("backup-cli");
    let init = Command::new("python3")
        .arg(&cli)
        .args(["init", "--lightning-dir"])
        .arg(ldir.join("regtest"))
        .arg(&url)
        .output()
        .expect("backup-cli init");
    assert!(init.status.success(), "backup-cli init: {init:?}");
    let script = plugin_dir.join("backup.py");
    let w = wrapper(work.path(), &script, 0);
    let Some(node) = NodeBuilder::new()
        .launch_dir(work.path())
        .lightning_dir(&ldir)
        .arg(format!("--autoreload-plugin={}", w.display()))
        .standin_only()
        .start()
        .await
        .expect("node")
    else {
        return;
    };
    node.ok(
        "dev-db-write",
        json!({"writes": ["CREATE TABLE autoreload_t (i INTEGER)"]}),
    )
    .await;
    let mut inserted = 0u64;
    for n in 1..=20 {
        let before = node.generation().await;
        wrapper(work.path(), &script, n);
        // Writes go on while it reloads: each waits for the version that
        // can take it.
        let start = Instant::now();
        loop {
            node.ok(
                "dev-db-write",
                json!({"writes": [format!("INSERT INTO autoreload_t VALUES ({inserted})")]}),
            )
            .await;
            inserted += 1;
            let s = node.ok("autoreload-status", json!({})).await["plugins"][0].clone();
            if s["state"] == "serving" && s["generation"].as_u64() > Some(before) {
                break;
            }
            assert!(start.elapsed() < BOUND, "no reload within {BOUND:?}: {s:#}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        node.serving_after(before).await;
    }
    let logs = node.logs().await;
    assert!(
        !logs
            .iter()
            .any(|l| l.contains("Emergency shutdown") || l.contains("out of date")),
        "backup found itself behind:\n{}",
        logs.join("\n")
    );
    let s = node.ok("autoreload-status", json!({})).await["plugins"][0].clone();
    assert_eq!(s["reload_mode"], "cold", "{s:#}");
    assert!(s["reloads"].as_u64() >= Some(20), "{s:#}");
    node.stop().await.expect("stop");
    let restored = work.path().join("restored.sqlite3");
    let restore = Command::new("python3")
        .arg(&cli)
        .arg("restore")
        .arg(&url)
        .arg(&restored)
        .output()
        .expect("backup-cli restore");
    assert!(restore.status.success(), "backup-cli restore: {restore:?}");
    let rows = Command::new("python3")
        .args([
            "-c",
            "import sqlite3, sys; print(','.join(str(r[0]) for r in sqlite3.connect(sys.argv[1]).execute('SELECT i FROM autoreload_t ORDER BY rowid')))",
        ])
        .arg(&restored)
        .output()
        .expect("read the restored database");
    let got = String::from_utf8_lossy(&rows.stdout).trim().to_string();
    let want = (0..inserted)
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(",");
    assert_eq!(got, want, "the restored database has every insert, once");
}

/// `prometheus` binds its HTTP port in `init`: every save goes live, and
/// the port answers after each.
#[tokio::test]
#[ignore = "runs plugins from the lightningd/plugins mirror: fetch it beside the project (or set PLUGINS_SRC), then run with --ignored"]
async fn prometheus_serves_its_port_after_every_reload() {
    if !python_has(&["pyln.client", "prometheus_client"]) {
        panic!("prometheus needs pyln-client and prometheus-client: pip install them");
    }
    let work = tempdir();
    let plugin_dir = community_plugin("prometheus", work.path());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let script = plugin_dir.join("prometheus.py");
    let w = wrapper(work.path(), &script, 0);
    let Some(node) = NodeBuilder::new()
        .launch_dir(work.path())
        .arg(format!("--autoreload-plugin={}", w.display()))
        .arg(format!("--prometheus-listen=127.0.0.1:{port}"))
        .start()
        .await
        .expect("node")
    else {
        return;
    };
    let scrape = || async move {
        let start = Instant::now();
        loop {
            if let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let _ = s
                    .write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
                    .await;
                let mut reply = String::new();
                let _ = s.read_to_string(&mut reply).await;
                if reply.starts_with("HTTP/1.0 200") {
                    return reply;
                }
            }
            assert!(start.elapsed() < BOUND, "port {port} never answered");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    assert!(scrape().await.contains("lightning_node_info"));
    for n in 1..=5 {
        let before = node.generation().await;
        wrapper(work.path(), &script, n);
        let s = node.serving_after(before).await;
        assert!(s["last_error"].is_null(), "{s:#}");
        assert!(scrape().await.contains("lightning_node_info"));
    }
    let s = node.ok("autoreload-status", json!({})).await["plugins"][0].clone();
    assert_eq!(s["reload_mode"], "warm", "{s:#}");
}
