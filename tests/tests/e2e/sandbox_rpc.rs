//! A sandboxed native plugin's calls to lightningd
//! (`autoreload-native-rpc-allow`): through the stand-in's (or a real
//! lightningd's) `lightning-rpc`, an allowed method works, a refused one
//! is refused and logged, the real socket cannot be reached (by its path
//! it is the plugin's filter; through another namespace, or another
//! plugin's filter, not at all), an
//! unsandboxed control reaches every method; a pyln-client plugin goes
//! through the filter too; the filter answers every call (under many
//! connections at once, when lightningd hangs up, on garbage), and passes
//! lightningd's large answers and notifications through; where the kernel
//! cannot fence the socket, `on` refuses and `best-effort` says so.

use super::sandbox::{install_probe, python_probe, rust_probe, status_of};
use super::*;

/// A call through the probe's `lightning-rpc` (or the socket at `path`).
async fn rpc(node: &Node, method: &str, params: Value, path: Option<&str>) -> Value {
    node.ok("probe-rpc", json!([method, params, path])).await
}

/// Whether the probe's call was refused by the filter.
fn refused(v: &Value) -> bool {
    v["ok"] == false
        && v["answer"]["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("is not allowed (autoreload-native-rpc-allow)"))
}

fn sign() -> Value {
    json!({"message": "a stranger's plugin"})
}

#[tokio::test]
async fn allowed_refused_and_the_real_socket_out_of_reach() {
    let pdir = tempdir();
    let py = install_probe(pdir.path(), &python_probe());
    let Some(node) = NodeBuilder::new()
        .arg(format!("--autoreload-plugin={}", py.display()))
        .arg("--autoreload-native-sandbox=on")
        .arg("--autoreload-native-rpc-allow=probe.py::getinfo")
        .start()
        .await
        .expect("node starts")
    else {
        return;
    };
    let real = node.dir.path().join("regtest/lightning-rpc");
    let real = real.display().to_string();
    for round in 0..2 {
        let v = rpc(&node, "getinfo", json!({}), None).await;
        assert_eq!(v["ok"], true, "round {round}: getinfo: {v}");
        assert!(v["answer"]["result"]["id"].is_string(), "{v}");
        let v = rpc(&node, "signmessage", sign(), None).await;
        assert!(refused(&v), "round {round}: signmessage: {v}");
        // By its absolute path, the real socket is the filter.
        let v = rpc(&node, "signmessage", sign(), Some(&real)).await;
        assert!(refused(&v), "round {round}: {real}: {v}");
        let v = rpc(&node, "getinfo", json!({}), Some(&real)).await;
        assert_eq!(v["ok"], true, "round {round}: getinfo at {real}: {v}");
        // Through the host's working directory, seen from outside the
        // plugin's namespaces: not at all.
        let v = rpc(
            &node,
            "getinfo",
            json!({}),
            Some("/proc/{ppid}/cwd/lightning-rpc"),
        )
        .await;
        assert_eq!(v["ok"], false, "round {round}: /proc/<host>/cwd: {v}");
        assert!(v["errno"].is_i64(), "round {round}: {v}");
        // A new version runs behind the same filter.
        let text = std::fs::read(&py).expect("the probe");
        write_atomically(&py, &text);
        make_executable(&py);
        node.wait_status("reloaded", |s| {
            s["reloads"] == round + 1 && s["state"] == "serving"
        })
        .await;
    }
    node.wait_log("[probe.py] refused its call to lightningd's 'signmessage': not in autoreload-native-rpc-allow (getinfo)")
        .await;
    let s = node.ok("autoreload-status", json!({})).await;
    let r = &status_of(&s, "probe.py")["sandbox"]["rpc"];
    assert_eq!(r["fenced"], true, "{s:#}");
    assert_eq!(r["allow"]["methods"], json!(["getinfo"]), "{s:#}");
    assert_eq!(r["allow"]["default"], "given", "{s:#}");
    assert!(r["calls"]["refused"].as_u64() >= Some(4), "{s:#}");
}

/// The control: without the sandbox, the same probe signs with the node's
/// key, straight through lightningd's socket.
#[tokio::test]
async fn an_unsandboxed_plugin_reaches_every_method() {
    let pdir = tempdir();
    let py = install_probe(pdir.path(), &python_probe());
    let Some(node) = NodeBuilder::new()
        .arg(format!("--autoreload-plugin={}", py.display()))
        .arg("--autoreload-native-rpc-allow=probe.py::getinfo")
        .start()
        .await
        .expect("node starts")
    else {
        return;
    };
    let v = rpc(&node, "signmessage", sign(), None).await;
    assert_eq!(v["ok"], true, "{v}");
    assert!(v["answer"]["result"]["signature"].is_string(), "{v}");
    // The list is not in force, and the log says so.
    node.wait_log("probe.py is not sandboxed").await;
    let s = node.ok("autoreload-status", json!({})).await;
    assert_eq!(
        status_of(&s, "probe.py")["sandbox"]["rpc"]["filtered"],
        false,
        "{s:#}"
    );
}

/// Without a list, a sandboxed plugin gets the read-only methods; many
/// connections at once, each sending all its calls before reading, get
/// every answer, refused or not.
#[tokio::test]
async fn read_only_by_default_and_every_call_answered() {
    let pdir = tempdir();
    let py = install_probe(pdir.path(), &python_probe());
    let Some(node) = NodeBuilder::new()
        .arg(format!("--autoreload-plugin={}", py.display()))
        .arg("--autoreload-native-sandbox=on")
        .start()
        .await
        .expect("node starts")
    else {
        return;
    };
    let s = node.ok("autoreload-status", json!({})).await;
    let r = &status_of(&s, "probe.py")["sandbox"]["rpc"];
    assert_eq!(r["allow"]["default"], "read-only", "{s:#}");
    assert!(
        r["allow"]["methods"].to_string().contains("listfunds"),
        "{s:#}"
    );
    assert_eq!(rpc(&node, "getinfo", json!({}), None).await["ok"], true);
    assert!(refused(&rpc(&node, "signmessage", sign(), None).await));
    let v = node.ok("probe-rpc-many", json!([16, 64, "getinfo"])).await;
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["results"], 16 * 64, "{v}");
    let v = node
        .ok("probe-rpc-many", json!([8, 32, "signmessage"]))
        .await;
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["errors"], 8 * 32, "{v}");
    assert_eq!(v["results"], 0, "{v}");
}

/// lightningd's notifications on the connection (once the client turned
/// them on) and large messages both ways pass through the filter whole.
#[tokio::test]
async fn notifications_and_large_messages_pass_through() {
    let pdir = tempdir();
    let py = install_probe(pdir.path(), &python_probe());
    let Some(node) = NodeBuilder::new()
        .standin_only()
        .arg(format!("--autoreload-plugin={}", py.display()))
        .arg("--autoreload-native-sandbox=on")
        .arg("--autoreload-native-rpc-allow=dev-rpc-notify")
        .start()
        .await
        .expect("node starts")
    else {
        return;
    };
    let (count, size, pad) = (3usize, 3_000_000usize, 2_000_000usize);
    let params = json!({"count": count, "size": size, "pad": "p".repeat(pad)});
    let v = node
        .ok("probe-rpc", json!(["dev-rpc-notify", params, null, true]))
        .await;
    assert_eq!(
        v["ok"],
        true,
        "{}",
        &v.to_string()[..500.min(v.to_string().len())]
    );
    assert_eq!(v["notifications"], count, "{}", v["notification_sizes"]);
    for (i, n) in v["notification_sizes"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        assert_eq!(n.as_u64(), Some((size + format!("{i}:").len()) as u64));
    }
    assert_eq!(v["answer"]["result"]["pad_len"], pad, "{}", v["answer"]);
}

/// A kernel that refuses unprivileged user namespaces (simulated): `on`
/// does not start the plugin and says why; `best-effort` starts it, and
/// the status and log say the socket is not fenced (which is true: the
/// plugin signs through it).
#[tokio::test]
async fn without_namespaces_on_refuses_and_best_effort_says_so() {
    let pdir = tempdir();
    let py = install_probe(pdir.path(), &python_probe());
    let Some(node) = NodeBuilder::new()
        .arg(format!("--autoreload-plugin={}", py.display()))
        .arg("--autoreload-native-sandbox=on")
        .env("AUTORELOAD_FENCE_UNAVAILABLE", "1")
        .start()
        .await
        .expect("node starts")
    else {
        return;
    };
    let s = node.wait_status("down", |s| s["state"] == "down").await;
    let why = s["down_reason"].as_str().unwrap_or("").to_owned();
    assert!(
        why.contains("lightning-rpc is not fenced") && why.contains("best-effort"),
        "{s:#}"
    );
    assert_eq!(s["pid"], Value::Null, "{s:#}");
    drop(node);

    let Some(node) = NodeBuilder::new()
        .arg(format!("--autoreload-plugin={}", py.display()))
        .arg("--autoreload-native-sandbox=best-effort")
        .env("AUTORELOAD_FENCE_UNAVAILABLE", "1")
        .start()
        .await
        .expect("node starts")
    else {
        return;
    };
    let s = node
        .wait_status("serving", |s| s["state"] == "serving")
        .await;
    assert_eq!(s["sandbox"]["rpc"]["fenced"], false, "{s:#}");
    assert_eq!(s["sandbox"]["enforced"], "partial", "{s:#}");
    assert!(
        s["sandbox"]["limits"]
            .to_string()
            .contains("lightning-rpc is not fenced"),
        "{s:#}"
    );
    let v = rpc(&node, "signmessage", sign(), None).await;
    assert_eq!(v["ok"], true, "not fenced, as the status says: {v}");
}

/// A pyln-client plugin, which builds the socket's path from `init`'s
/// `lightning-dir` and `rpc-file` itself and turns notifications on before
/// its call when asked to pass them on, goes through the filter.
#[tokio::test]
async fn a_pyln_client_plugin_goes_through_the_filter() {
    let pyln = std::process::Command::new("python3")
        .args(["-c", "import pyln.client"])
        .status()
        .is_ok_and(|s| s.success());
    if !pyln {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install pyln-client"
        );
        skip("pylnrpc.py: pip install pyln-client");
        return;
    }
    let pdir = tempdir();
    let py = install_probe(pdir.path(), &root().join("tests/plugins/pylnrpc.py"));
    let Some(node) = NodeBuilder::new()
        .arg(format!("--autoreload-plugin={}", py.display()))
        .arg("--autoreload-native-sandbox=on")
        .arg("--autoreload-native-rpc-allow=pylnrpc.py::getinfo,dev-rpc-notify")
        .start()
        .await
        .expect("node starts")
    else {
        return;
    };
    let v = node.ok("pyln-rpc", json!(["getinfo"])).await;
    assert_eq!(v["ok"], true, "{v}");
    assert!(v["result"]["id"].is_string(), "{v}");
    let v = node.ok("pyln-rpc", json!(["signmessage", sign()])).await;
    assert_eq!(v["ok"], false, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("not allowed")),
        "{v}"
    );
    if real_lightningd().is_none() {
        let params = json!({"count": 2, "size": 10});
        let v = node
            .ok("pyln-rpc", json!(["dev-rpc-notify", params, true]))
            .await;
        assert_eq!(v["ok"], true, "{v}");
        assert_eq!(v["messages"], 2, "{v}");
    }
}

/// No call waits forever: one in flight when lightningd hangs up gets an
/// error from the filter, and what is not a request gets an error and the
/// connection closed (as lightningd does).
#[tokio::test]
async fn every_call_is_answered_when_lightningd_hangs_up_or_on_garbage() {
    let pdir = tempdir();
    let py = install_probe(pdir.path(), &python_probe());
    let Some(node) = NodeBuilder::new()
        .standin_only()
        .arg(format!("--autoreload-plugin={}", py.display()))
        .arg("--autoreload-native-sandbox=on")
        .arg("--autoreload-native-rpc-allow=dev-rpc-hangup,getinfo")
        .start()
        .await
        .expect("node starts")
    else {
        return;
    };
    let v = rpc(&node, "dev-rpc-hangup", json!({}), None).await;
    assert_eq!(v["ok"], false, "{v}");
    assert!(
        v["answer"]["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("lightningd closed the connection before answering")),
        "{v}"
    );
    for (text, id) in [
        ("[1, 2, 3]", Value::Null),
        (r#"{"jsonrpc": "2.0", "id": 7}"#, json!(7)),
    ] {
        let v = node.ok("probe-rpc-raw", json!([text])).await;
        assert_eq!(v["ok"], true, "{text}: {v}");
        assert_eq!(v["answer"]["id"], id, "{text}: {v}");
        assert!(
            v["answer"]["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("not a JSON-RPC request")),
            "{text}: {v}"
        );
        assert_eq!(v["closed"], true, "{text}: {v}");
    }
    // The filter still serves.
    assert_eq!(rpc(&node, "getinfo", json!({}), None).await["ok"], true);
}

/// Another plugin's filter, which may allow more, is out of reach: the
/// directory of the filters is hidden in each plugin's namespace.
#[tokio::test]
async fn another_plugins_filter_is_out_of_reach() {
    let pdir = tempdir();
    let py = install_probe(pdir.path(), &python_probe());
    let rs = install_probe(pdir.path(), &rust_probe());
    let Some(node) = NodeBuilder::new()
        .arg(format!("--autoreload-plugin={}", py.display()))
        .arg(format!("--autoreload-plugin={}", rs.display()))
        .arg("--autoreload-native-sandbox=on")
        .arg("--autoreload-native-rpc-allow=probe-native::*")
        .start()
        .await
        .expect("node starts")
    else {
        return;
    };
    let s = node.ok("autoreload-status", json!({})).await;
    let theirs = status_of(&s, "probe-native")["sandbox"]["rpc"]["filter"]
        .as_str()
        .expect("probe-native's filter")
        .to_owned();
    assert!(std::path::Path::new(&theirs).exists(), "{s:#}");
    let v = rpc(&node, "signmessage", sign(), Some(&theirs)).await;
    assert_eq!(v["ok"], false, "{theirs}: {v}");
    assert_eq!(v["errno"], 2, "ENOENT: hidden: {v}");
    assert!(refused(&rpc(&node, "signmessage", sign(), None).await));
    // The other plugin reaches lightningd through its own.
    let v = node.ok("rprobe-rpc", json!([])).await;
    assert_eq!(v["ok"], true, "{v}");
}
