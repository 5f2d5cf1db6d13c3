//! Native plugins in a Landlock sandbox (`autoreload-native-sandbox`): a
//! stdlib Python probe and a Rust one cannot read `hsm_secret` or the
//! database (relative or absolute path, through a symlink, from a child
//! process), can use `lightning-rpc`, their own files and what is granted,
//! reach TCP only as `autoreload-native-net` says; and a kernel without
//! the Landlock ABI the sandbox needs does not start them.

use super::*;
use std::path::{Path, PathBuf};

/// EACCES: what a plugin sees when the sandbox denies something.
const EACCES: i64 = 13;

/// Copies a probe into a directory of its own; returns its path.
pub(crate) fn install_probe(dir: &Path, src: &Path) -> PathBuf {
    let to = dir.join(src.file_name().expect("a file name"));
    std::fs::copy(src, &to).expect("copy the probe");
    make_executable(&to);
    to
}

pub(crate) fn python_probe() -> PathBuf {
    root().join("tests/plugins/probe.py")
}

pub(crate) fn rust_probe() -> PathBuf {
    // Cargo builds the tests crate's binaries before its integration tests.
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    target_dir().join(profile).join("probe-native")
}

/// The node's network directory, with a fake `hsm_secret` and database.
fn plant_secrets(node: &Node) -> PathBuf {
    let net = node.dir.path().join("regtest");
    std::fs::write(net.join("hsm_secret"), "the node's keys").expect("hsm_secret");
    std::fs::write(net.join("lightningd.sqlite3"), "the channels").expect("db");
    net
}

pub(crate) fn status_of<'a>(s: &'a Value, name: &str) -> &'a Value {
    s["plugins"]
        .as_array()
        .and_then(|a| a.iter().find(|p| p["name"] == name))
        .unwrap_or(&Value::Null)
}

async fn restart_all(node: &Node, names: &[&str]) {
    for n in names {
        node.ok("autoreload-restart", json!([n])).await;
    }
}

#[tokio::test]
async fn secrets_are_hidden_rpc_and_own_files_work() {
    if real_lightningd().is_some() {
        // Runs the same against lightningd, but the secrets planted here
        // would be a real node's: stand-in only.
        skip("against the real lightningd: plants a fake hsm_secret");
        return;
    }
    let pdir = tempdir();
    let granted = tempdir();
    let py = install_probe(pdir.path(), &python_probe());
    let rs = install_probe(pdir.path(), &rust_probe());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
    let port = listener.local_addr().unwrap().port();
    let Some(node) = NodeBuilder::new()
        .arg(format!("--autoreload-plugin={}", py.display()))
        .arg(format!("--autoreload-plugin={}", rs.display()))
        .arg("--autoreload-native-sandbox=on")
        .arg("--autoreload-native-net=probe.py::none")
        .arg("--autoreload-native-net=probe-native::any")
        // The community backup plugin's grant (its lock file is hidden).
        .arg("--autoreload-native-allow=probe-native::backup.lock")
        .arg(format!(
            "--autoreload-native-allow=probe.py::{}:rw",
            granted.path().display()
        ))
        .start()
        .await
        .expect("node starts")
    else {
        return;
    };
    let net = plant_secrets(&node);
    std::fs::write(net.join("backup.lock"), "{}").unwrap();
    // Planted after the start: listed (and hidden) by the next start too.
    restart_all(&node, &["probe.py", "probe-native"]).await;
    std::os::unix::fs::symlink(net.join("hsm_secret"), pdir.path().join("link")).unwrap();
    let hsm = net.join("hsm_secret");
    let db = net.join("lightningd.sqlite3");
    let denied = |v: &Value, what: &str| {
        assert_eq!(v["ok"], false, "{what} was readable: {v}");
        assert_eq!(v["errno"], EACCES, "{what}: {v}");
    };
    for (prefix, read) in [("probe", "probe-read"), ("rprobe", "rprobe-read")] {
        for path in [
            hsm.display().to_string(),
            "hsm_secret".into(),
            "../regtest/hsm_secret".into(),
            "/proc/self/cwd/hsm_secret".into(),
            db.display().to_string(),
            "lightningd.sqlite3".into(),
            pdir.path().join("link").display().to_string(),
        ] {
            denied(
                &node.ok(read, json!([path])).await,
                &format!("{read} {path}"),
            );
        }
        // From a child of the plugin (a grandchild of the host).
        let v = node
            .ok(
                &format!("{prefix}-spawn-read"),
                json!([hsm.display().to_string()]),
            )
            .await;
        assert_eq!(v["ok"], false, "a child read hsm_secret: {v}");
        assert!(
            v["error"]
                .as_str()
                .unwrap_or("")
                .contains("ermission denied"),
            "{v}"
        );
        // lightning-rpc works.
        let v = node.ok(&format!("{prefix}-rpc"), json!([])).await;
        assert_eq!(v["ok"], true, "{prefix}: lightning-rpc: {v}");
        assert!(v["answer"]["result"]["id"].is_string(), "{v}");
        // Its own files.
        let v = node
            .ok(
                read,
                json!([pdir.path().join("probe.py").display().to_string()]),
            )
            .await;
        assert_eq!(v["ok"], true, "{read} its own file: {v}");
    }
    // Writing its own directory and TMPDIR; not the lightning dir.
    let own = pdir.path().join("own.txt").display().to_string();
    assert_eq!(node.ok("probe-write", json!([own])).await["ok"], true);
    let env = node.ok("probe-env", json!(["HOME"])).await;
    let tmp = env["tmpdir"].as_str().expect("TMPDIR is set").to_owned();
    let v = node.ok("probe-write", json!([format!("{tmp}/x")])).await;
    assert_eq!(v["ok"], true, "TMPDIR {tmp}: {v}");
    denied(
        &node.ok("probe-write", json!(["mine"])).await,
        "a new file in the network dir",
    );
    // TCP: none for the Python probe, any for the Rust one.
    let v = node.ok("probe-connect", json!(["127.0.0.1", port])).await;
    denied(&v, "TCP under none");
    let v = node.ok("rprobe-connect", json!(["127.0.0.1", port])).await;
    assert_eq!(v["ok"], true, "TCP under any: {v}");
    // Grants: the Rust probe reads backup.lock, the Python one does not;
    // the Python one writes its read-write directory.
    let v = node.ok("rprobe-read", json!(["backup.lock"])).await;
    assert_eq!(v["data"], "{}", "{v}");
    denied(
        &node.ok("probe-read", json!(["backup.lock"])).await,
        "a file granted to the other plugin",
    );
    let g = granted.path().join("new.txt").display().to_string();
    assert_eq!(node.ok("probe-write", json!([g])).await["ok"], true);
    let elsewhere = tempdir();
    let g = elsewhere.path().join("new.txt").display().to_string();
    denied(
        &node.ok("probe-write", json!([g])).await,
        "writing a directory not granted",
    );
    // The status says what each got.
    let s = node.ok("autoreload-status", json!({})).await;
    let py = &status_of(&s, "probe.py")["sandbox"];
    assert_eq!(py["sandboxed"], true, "{s:#}");
    assert_eq!(py["enforced"], "full", "{s:#}");
    assert_eq!(py["net"], "none", "{s:#}");
    let hidden = py["hidden_in_network_dir"].to_string();
    assert!(
        hidden.contains("hsm_secret") && hidden.contains("lightningd.sqlite3"),
        "{s:#}"
    );
    assert!(
        py["readable_in_network_dir"]
            .to_string()
            .contains("lightning-rpc"),
        "{s:#}"
    );
    let rs = &status_of(&s, "probe-native")["sandbox"];
    assert_eq!(rs["net"], "any", "{s:#}");
    assert_eq!(rs["granted"][0]["access"], "ro", "{s:#}");
    assert_eq!(py["granted"][0]["access"], "rw", "{s:#}");
    drop(listener);
}

/// A port list lets exactly those ports through; a reload keeps the
/// sandbox.
#[tokio::test]
async fn ports_and_reload() {
    let pdir = tempdir();
    let py = install_probe(pdir.path(), &python_probe());
    let open = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
    let (p1, p2) = (
        open.local_addr().unwrap().port(),
        closed.local_addr().unwrap().port(),
    );
    let Some(node) = NodeBuilder::new()
        .arg(format!("--autoreload-plugin={}", py.display()))
        .arg("--autoreload-native-sandbox=probe.py::on")
        .arg(format!("--autoreload-native-net={p1}"))
        .arg("--autoreload-native-env=PATH")
        .start()
        .await
        .expect("node starts")
    else {
        return;
    };
    // The options were read from lightningd's command line before
    // getmanifest: the first generation already ran in the sandbox, and
    // init did not have to replace it.
    let s = node
        .wait_status("serving", |s| s["state"] == "serving")
        .await;
    assert_eq!(s["generation"], 1, "{s:#}");
    assert_eq!(s["sandbox"]["sandboxed"], true, "{s:#}");
    for round in 0..2 {
        let v = node.ok("probe-connect", json!(["127.0.0.1", p1])).await;
        assert_eq!(v["ok"], true, "round {round}: the granted port: {v}");
        let v = node.ok("probe-connect", json!(["127.0.0.1", p2])).await;
        assert_eq!(v["errno"], EACCES, "round {round}: another port: {v}");
        // The environment is narrowed to PATH (and LIGHTNINGD_*, TMPDIR).
        let v = node.ok("probe-env", json!(["HOME"])).await;
        assert_eq!(v["value"], Value::Null, "{v}");
        assert_eq!(
            node.ok("probe-env", json!(["LIGHTNINGD_PLUGIN"])).await["value"],
            "1"
        );
        // Save the file: the new version runs in the same sandbox.
        let text = std::fs::read(&py).unwrap();
        write_atomically(&py, &text);
        make_executable(&py);
        node.wait_status("reloaded", |s| {
            s["reloads"] == round + 1 && s["state"] == "serving"
        })
        .await;
    }
    drop((open, closed));
}

/// A kernel below the Landlock ABI the sandbox needs (simulated by asking
/// for more than any kernel has): the plugin is not started, and the status
/// and log say why; `best-effort` starts it anyway.
#[tokio::test]
async fn old_kernel_refuses_unless_best_effort() {
    let pdir = tempdir();
    let py = install_probe(pdir.path(), &python_probe());
    let Some(node) = NodeBuilder::new()
        .arg(format!("--autoreload-plugin={}", py.display()))
        .arg("--autoreload-native-sandbox=on")
        .env("AUTORELOAD_LANDLOCK_ABI_REQUIRED", "99")
        .start()
        .await
        .expect("node starts")
    else {
        return;
    };
    let s = node.wait_status("down", |s| s["state"] == "down").await;
    let why = s["down_reason"].as_str().unwrap_or("").to_owned();
    assert!(
        why.contains("Landlock") && why.contains("best-effort"),
        "{s:#}"
    );
    assert!(s["sandbox"]["refused"].is_string(), "{s:#}");
    assert_eq!(s["pid"], Value::Null, "{s:#}");
    node.wait_log("not running: cannot start").await;
    let err = node.call("probe-read", json!(["/etc/hostname"])).await;
    assert!(err.is_err(), "a refused plugin answered: {err:?}");
    drop(node);

    let Some(node) = NodeBuilder::new()
        .arg(format!("--autoreload-plugin={}", py.display()))
        .arg("--autoreload-native-sandbox=best-effort")
        .env("AUTORELOAD_LANDLOCK_ABI_REQUIRED", "99")
        .start()
        .await
        .expect("node starts")
    else {
        return;
    };
    let s = node
        .wait_status("serving", |s| s["state"] == "serving")
        .await;
    assert_eq!(s["sandbox"]["mode"], "best-effort", "{s:#}");
    assert_eq!(s["sandbox"]["enforced"], "partial", "{s:#}");
    assert!(
        s["sandbox"]["limits"][0]
            .as_str()
            .unwrap_or("")
            .contains("99"),
        "{s:#}"
    );
}
