//! lightningd's database writes: the `db_write` calls lightningd makes
//! between getmanifest and init on a fresh node (the stand-in's bytes
//! against the recorded trace, and the same calls through the host), and a
//! plugin that mirrors every write the way the community `backup` plugin
//! does, across reloads and crashes, native and wasm.

use super::direct::messages;
use super::standin_bytes::{assert_framed, normalized};
use cln_autoreload_tests::*;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// `trace-plugin.py` from `../shared/tools`, copied into `dir`, or `None`
/// (with a note) where `../shared` is not beside the checkout.
fn trace_plugin(dir: &Path) -> Option<PathBuf> {
    trace("dbwrite-startup.stdin.raw")?;
    let to = dir.join("trace-plugin.py");
    std::fs::copy(shared().join("tools/trace-plugin.py"), &to).expect("copy trace-plugin.py");
    make_executable(&to);
    Some(to)
}

/// The messages of a raw stream up to and including init.
fn until_init(raw: &[u8]) -> Vec<(Vec<u8>, Value)> {
    let mut out = vec![];
    for (bytes, v) in messages(raw) {
        let init = v["method"] == "init";
        out.push((bytes, v));
        if init {
            break;
        }
    }
    out
}

/// The stand-in writes the traced database creation to a `db_write`
/// plugin before init, byte for byte as lightningd v26.06 did.
#[tokio::test]
async fn the_standin_sends_lightningds_db_writes_before_init() {
    let launch = tempdir();
    let Some(plugin) = trace_plugin(launch.path()) else {
        return;
    };
    if real_lightningd().is_some() {
        skip("checks the stand-in, not lightningd");
        return;
    }
    let out = launch.path().join("out.raw");
    let node = NodeBuilder::new()
        .without_host()
        .launch_dir(launch.path())
        .arg(format!("--plugin={}", plugin.display()))
        .arg("--allow-deprecated-apis=false")
        .env("TRACE_OUT", out.display().to_string())
        .start()
        .await
        .expect("the stand-in starts")
        .expect("stand-in");
    node.ok("getinfo", json!({})).await;
    let want = trace("dbwrite-startup.stdin.raw").expect("trace");
    let got = std::fs::read(&out).expect("trace-plugin wrote what it got");
    assert_framed(&got, "the stand-in");
    let (want, got) = (until_init(&want), until_init(&got));
    let names = |m: &[(Vec<u8>, Value)]| -> Vec<String> {
        m.iter().map(|(_, v)| v["method"].to_string()).collect()
    };
    assert_eq!(
        names(&got),
        names(&want),
        "the same calls in the same order"
    );
    for ((gb, gv), (wb, wv)) in got.iter().zip(&want) {
        if wv["method"] == "init" {
            let keys = |v: &Value| -> Vec<String> {
                v["params"]["configuration"]
                    .as_object()
                    .map(|o| o.keys().cloned().collect())
                    .unwrap_or_default()
            };
            assert_eq!(keys(gv), keys(wv), "init's configuration keys");
            continue;
        }
        assert_eq!(normalized(gb, gv), normalized(wb, wv), "{}", wv["method"]);
    }
    let log = node.ok("dev-db-log", json!({})).await;
    assert_eq!(log["writes"].as_array().map(Vec::len), Some(9));
}

/// Through the host, lightningd's `db_write`s before init reach the
/// plugin, which has answered getmanifest and not had init: lightningd
/// waits for each answer before it sends init (it used to wait forever).
#[tokio::test]
async fn db_writes_before_init_reach_the_plugin_through_the_host() {
    let launch = tempdir();
    let Some(_plugin) = trace_plugin(launch.path()) else {
        return;
    };
    let out = launch.path().join("out.raw");
    let node = NodeBuilder::new()
        .launch_dir(launch.path())
        .arg("--autoreload-plugin=trace-plugin.py")
        .env("TRACE_OUT", out.display().to_string())
        .start()
        .await
        .expect("lightningd starts with a db_write plugin under the host")
        .expect("node");
    node.wait_status("serving", |s| s["state"] == "serving")
        .await;
    let order = std::fs::read_to_string(out.with_extension("raw.order")).expect("order file");
    let methods: Vec<&str> = order
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    let init = methods
        .iter()
        .position(|m| *m == "init")
        .expect("the plugin got init");
    assert_eq!(methods[0], "getmanifest");
    let before: Vec<&&str> = methods[1..init].iter().collect();
    assert!(
        !before.is_empty() && before.iter().all(|m| **m == "db_write"),
        "db_writes, and only those, between getmanifest and init: {methods:?}"
    );
    if node.real {
        return;
    }
    // The host passes lightningd's bytes on unchanged.
    let want = trace("dbwrite-startup.stdin.raw").expect("trace");
    let got = std::fs::read(&out).expect("what the plugin got");
    let dbw = |raw: &[u8]| -> Vec<String> {
        until_init(raw)
            .iter()
            .filter(|(_, v)| v["method"] == "db_write")
            .map(|(b, v)| normalized(b, v))
            .collect()
    };
    assert_eq!(dbw(&got), dbw(&want));
}

/// The mirror plugin's directory: what it kept and what it found wrong.
struct Mirror {
    dir: tempfile::TempDir,
}

impl Mirror {
    fn new() -> Mirror {
        Mirror { dir: tempdir() }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The next db_write crashes the plugin, `before` or `after` it kept
    /// the write.
    fn crash_next(&self, when: &str) {
        std::fs::write(self.path().join("crash-next"), when).expect("crash-next");
    }

    fn kept(&self) -> Vec<Value> {
        std::fs::read_to_string(self.path().join("mirror.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("a mirror line is JSON"))
            .collect()
    }

    fn violations(&self) -> String {
        std::fs::read_to_string(self.path().join("violations")).unwrap_or_default()
    }
}

/// Writes `n` transactions through the stand-in, crashing the plugin
/// before some and after others, while `reload` swaps in a new version
/// every `every`; then checks that the mirror holds every write lightningd
/// made, once, in order.
async fn mirror_survives(node: Node, mirror: &Mirror, reload: impl Fn(u32) + Send + 'static) {
    mirror_survives_arc(Arc::new(node), mirror, reload).await
}
async fn mirror_survives_arc(
    node: Arc<Node>,
    mirror: &Mirror,
    reload: impl Fn(u32) + Send + 'static,
) {
    let done = Arc::new(AtomicBool::new(false));
    let reloader = {
        let done = done.clone();
        tokio::spawn(async move {
            let mut n = 0;
            while !done.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(150)).await;
                n += 1;
                reload(n);
            }
            n
        })
    };
    let first = node.ok("dev-db-log", json!({})).await["data_version"]
        .as_u64()
        .expect("data_version");
    let n = 300u64;
    for i in 0..n {
        match i {
            60 | 200 => mirror.crash_next("after"),
            130 => mirror.crash_next("before"),
            _ => {}
        }
        let r = node
            .ok(
                "dev-db-write",
                json!({"writes": [format!("INSERT INTO t VALUES ({i})")]}),
            )
            .await;
        assert_eq!(r["data_version"], first + i + 1);
        // Spread the writes over several reloads.
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    done.store(true, Ordering::SeqCst);
    let reloads = reloader.await.expect("reloader");
    let log = node.ok("dev-db-log", json!({})).await;
    let sent = log["writes"].as_array().cloned().unwrap_or_default();
    assert_eq!(sent.len() as u64, 9 + n);
    assert_eq!(mirror.violations(), "", "the mirror found no gap or repeat");
    let kept = mirror.kept();
    assert_eq!(kept.len(), sent.len(), "every write kept once");
    for (i, (k, s)) in kept.iter().zip(&sent).enumerate() {
        assert_eq!(k, s, "write {i}");
    }
    let status = node.ok("autoreload-status", json!({})).await["plugins"][0].clone();
    assert!(
        status["crashes"].as_u64() >= Some(3),
        "the crashes happened: {status}"
    );
    assert!(
        status["reloads"].as_u64() >= Some(3),
        "{reloads} new versions, reloaded: {status}"
    );
    node.ok("getinfo", json!({})).await;
}

/// A native plugin mirroring every db_write (like `backup`) sees each one
/// exactly once, in order: on a fresh node's start-up (crashing on the
/// first write, before init), then across reloads every 150 ms and
/// crashes before and after it kept a write. It reads its mirror as soon
/// as it starts, as `backup` does, so it must start only once the old
/// version has written its last write: `autoreload-overlap=true`, meant
/// for all plugins, leaves it break-before-make.
#[tokio::test]
async fn a_native_mirror_keeps_every_db_write_once_across_reloads_and_crashes() {
    native_mirror(Some("true")).await;
}

/// The same with the default, break-before-make for a `db_write` plugin:
/// the old version is stopped before the new one starts, and the writes
/// meanwhile wait for it.
#[tokio::test]
async fn a_native_mirror_keeps_every_db_write_once_across_break_before_make_reloads() {
    native_mirror(None).await;
}

/// Two versions never both get a db_write, and none is lost or answered
/// for the plugin, whatever `autoreload-overlap` says for all plugins.
async fn native_mirror(overlap: Option<&str>) {
    let launch = tempdir();
    let plugin = launch.path().join("dbmirror.py");
    let text = std::fs::read_to_string(root().join("tests/plugins/dbmirror.py")).expect("source");
    let install = {
        let plugin = plugin.clone();
        move |n: u32| {
            let tmp = plugin.with_extension("tmp~");
            std::fs::write(&tmp, format!("{text}\n# version {n}\n")).expect("write");
            make_executable(&tmp);
            std::fs::rename(&tmp, &plugin).expect("rename");
        }
    };
    install(0);
    let mirror = Mirror::new();
    mirror.crash_next("after");
    let Some(node) = NodeBuilder::new()
        .launch_dir(launch.path())
        .arg("--autoreload-plugin=dbmirror.py")
        .args(overlap.map(|o| format!("--autoreload-overlap={o}")))
        .env("DBMIRROR_DIR", mirror.path().display().to_string())
        .standin_only()
        .start()
        .await
        .expect("lightningd starts though the plugin crashed before init")
    else {
        return;
    };
    assert_eq!(mirror.kept().len(), 9, "the schema writes, once each");
    let status = node.ok("autoreload-status", json!({})).await["plugins"][0].clone();
    assert_eq!(status["reload_mode"], "cold", "{status}");
    mirror_survives(node, &mirror, install).await;
}

/// The same for a wasm plugin: the mirror is the test guest's `db_write`
/// hook writing into a granted directory (granted before init too: the
/// host reads `autoreload-wasm-dir` where it finds the plugin paths), with
/// a new module swapped in every 150 ms.
#[tokio::test]
async fn a_wasm_mirror_keeps_every_db_write_once_across_swaps_and_crashes() {
    wasm_mirror(None).await;
}

/// The same with warm starts, asked for by the plugin's name (a value for
/// all plugins leaves a `db_write` plugin cold): the guest reads its
/// mirror in init, which a new instance gets only once the old one is
/// gone.
#[tokio::test]
async fn a_wasm_mirror_read_in_init_keeps_every_db_write_once_across_warm_swaps() {
    wasm_mirror(Some("warm")).await;
}

async fn wasm_mirror(mode: Option<&str>) {
    let launch = tempdir();
    let plugin = launch.path().join("guest.wasm");
    write_atomically(&plugin, &testguest_version("m0"));
    let mirror = Mirror::new();
    mirror.crash_next("after");
    let Some(node) = NodeBuilder::new()
        .launch_dir(launch.path())
        .arg("--autoreload-plugin=guest.wasm")
        .arg(format!(
            "--autoreload-wasm-dir={}:/mirror",
            mirror.path().display()
        ))
        .args(mode.map(|m| format!("--autoreload-overlap=guest.wasm::{m}")))
        .standin_only()
        .start()
        .await
        .expect("lightningd starts though the guest exited before init")
    else {
        return;
    };
    assert_eq!(mirror.kept().len(), 9, "the schema writes, once each");
    let install = move |n: u32| write_atomically(&plugin, &testguest_version(&format!("m{n}")));
    let node = std::sync::Arc::new(node);
    let n2 = node.clone();
    let t = std::time::Instant::now();
    mirror_survives_arc(n2, &mirror, install).await;
    eprintln!(
        "TOOK {:?}\n{}",
        t.elapsed(),
        node.ok("autoreload-status", json!({})).await
    );
}
