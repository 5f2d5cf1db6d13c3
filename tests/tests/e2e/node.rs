//! Through the lightningd stand-in (or a real lightningd with
//! `LIGHTNINGD`): the host as lightningd runs it.

use super::*;
use std::path::{Path, PathBuf};

/// A launch directory holding `plugin.py` (a test plugin version), and
/// a node started from there with `--autoreload-plugin=plugin.py`.
struct Setup {
    launch: tempfile::TempDir,
    plugin: PathBuf,
    node: Node,
}

async fn setup_with(config: Value, extra: &[&str], standin_only: bool) -> Option<Setup> {
    let launch = tempdir();
    let plugin = launch.path().join("plugin.py");
    write_testplugin(&plugin, &config);
    let mut b = NodeBuilder::new()
        .launch_dir(launch.path())
        .arg("--autoreload-plugin=plugin.py");
    for a in extra {
        b = b.arg(*a);
    }
    if standin_only {
        b = b.standin_only();
    }
    let node = b.start().await.expect("node starts")?;
    Some(Setup {
        launch,
        plugin,
        node,
    })
}

async fn setup(config: Value) -> Option<Setup> {
    setup_with(config, &[], false).await
}

async fn version(node: &Node) -> String {
    node.ok("tp-echo", json!({})).await["version"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

async fn generation(node: &Node) -> u64 {
    node.ok("autoreload-status", json!({})).await["plugins"][0]["generation"]
        .as_u64()
        .unwrap_or(0)
}

/// Waits until the plugin serves a generation after `after`.
async fn reloaded(node: &Node, after: u64) -> Value {
    node.wait_status(&format!("serving a generation after {after}"), |s| {
        s["state"] == "serving" && s["generation"].as_u64().unwrap_or(0) > after
    })
    .await
}

#[tokio::test]
async fn finds_the_plugin_from_every_source() {
    let launch = tempdir();
    let plugin = launch.path().join("found.py");
    write_testplugin(&plugin, &json!({"version": "found"}));
    let abs = plugin.to_str().unwrap().to_string();
    std::fs::create_dir_all(launch.path().join("conf.d")).unwrap();
    std::fs::write(
        launch.path().join("main.conf"),
        "# a config file\ninclude conf.d/extra.conf\n",
    )
    .unwrap();
    std::fs::write(
        launch.path().join("conf.d/extra.conf"),
        format!("autoreload-plugin={abs}\n"),
    )
    .unwrap();
    let wrapper = write_wrapper(&launch.path().join("wrapper.sh"), &plugin);

    let cases: Vec<(&str, NodeBuilder)> = vec![
        (
            "--opt=relative",
            NodeBuilder::new().arg("--autoreload-plugin=found.py"),
        ),
        (
            "--opt relative",
            NodeBuilder::new()
                .arg("--autoreload-plugin")
                .arg("./found.py"),
        ),
        (
            "config file with include",
            NodeBuilder::new().arg("--conf=main.conf"),
        ),
        (
            "environment",
            NodeBuilder::new().env("AUTORELOAD_PLUGIN", abs.clone()),
        ),
        (
            "wrapper script",
            NodeBuilder::new()
                .without_host()
                .arg(format!("--plugin={}", wrapper.display())),
        ),
    ];
    for (what, builder) in cases {
        let Some(node) = builder.launch_dir(launch.path()).start().await.expect(what) else {
            return;
        };
        assert_eq!(version(&node).await, "found", "{what}");
        let s = node.ok("autoreload-status", json!({})).await;
        assert_eq!(s["plugins"][0]["path"], json!(abs), "{what}");
        node.stop().await.expect("stops");
    }
}

#[tokio::test]
async fn every_kind_of_file_change_reloads_exactly_once() {
    let Some(Setup {
        launch,
        plugin,
        node,
    }) = setup(json!({"version": "v0"})).await
    else {
        return;
    };
    let mut gen = generation(&node).await;
    let mut n = 0;
    let mut next = |label: &str| {
        n += 1;
        (
            format!("{label}-{n}"),
            json!({"version": format!("{label}-{n}")}),
        )
    };
    // In-place rewrite (O_TRUNC, write, close), like many editors.
    let (v, c) = next("inplace");
    std::fs::write(&plugin, testplugin_text(&c)).unwrap();
    gen = reloaded(&node, gen).await["generation"].as_u64().unwrap();
    assert_eq!(version(&node).await, v);
    // Atomic rename over the file (cargo, vim, most IDEs).
    let (v, c) = next("rename");
    write_testplugin(&plugin, &c);
    gen = reloaded(&node, gen).await["generation"].as_u64().unwrap();
    assert_eq!(version(&node).await, v);
    // cp from elsewhere.
    let (v, c) = next("cp");
    let other = launch.path().join("other.py");
    std::fs::write(&other, testplugin_text(&c)).unwrap();
    make_executable(&other); // cp copies the mode too
    std::fs::copy(&other, &plugin).unwrap();
    gen = reloaded(&node, gen).await["generation"].as_u64().unwrap();
    assert_eq!(version(&node).await, v);
    // A new hard link to a finished file, as cargo puts an artifact in
    // place: the old name removed, then linked.
    let (v, c) = next("link");
    let built = launch.path().join("built.py");
    std::fs::write(&built, testplugin_text(&c)).unwrap();
    make_executable(&built);
    std::fs::remove_file(&plugin).unwrap();
    std::fs::hard_link(&built, &plugin).unwrap();
    gen = reloaded(&node, gen).await["generation"].as_u64().unwrap();
    assert_eq!(version(&node).await, v);
    // Renamed into place, then chmod: one save, one reload.
    let (v, c) = next("rename-chmod");
    let tmp = launch.path().join("plugin.py.tmp");
    std::fs::write(&tmp, testplugin_text(&c)).unwrap();
    std::fs::rename(&tmp, &plugin).unwrap();
    make_executable(&plugin);
    gen = reloaded(&node, gen).await["generation"].as_u64().unwrap();
    assert_eq!(version(&node).await, v);
    // touch: same content, a deliberate reload.
    let pid_before = node.ok("tp-echo", json!({})).await["pid"].clone();
    let st = std::process::Command::new("touch")
        .arg(&plugin)
        .status()
        .unwrap();
    assert!(st.success());
    gen = reloaded(&node, gen).await["generation"].as_u64().unwrap();
    assert_ne!(node.ok("tp-echo", json!({})).await["pid"], pid_before);
    // A slow writer pausing longer than the settle window mid-file:
    // the half-written file must never start.
    let (v, c) = next("slow");
    let text = testplugin_text(&c);
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&plugin)
            .unwrap();
        f.write_all(&text.as_bytes()[..text.len() / 2]).unwrap();
        f.flush().unwrap();
        tokio::time::sleep(Duration::from_millis(400)).await;
        f.write_all(&text.as_bytes()[text.len() / 2..]).unwrap();
    }
    let s = reloaded(&node, gen).await;
    gen = s["generation"].as_u64().unwrap();
    assert_eq!(version(&node).await, v);
    assert_eq!(s["crashes"], 0, "a half-written file was started: {s:#}");
    // Exactly one reload each: an explicit restart now lands on gen+1.
    let r = node.ok("autoreload-restart", json!({})).await;
    assert_eq!(
        r["generation"].as_u64(),
        Some(gen + 1),
        "extra reloads happened: {r}"
    );
    let s = node.ok("autoreload-status", json!({})).await;
    assert_eq!(s["plugins"][0]["reloads"], json!(8));
    node.wait_log("reloaded (file changed): generation").await;
}

/// A file renamed into place or hard-linked is complete by construction:
/// it reloads without waiting for the settle window (here ten minutes,
/// so only that path can reload within the test's bound).
#[tokio::test]
async fn a_renamed_or_linked_file_does_not_wait_for_the_settle_window() {
    let Some(Setup {
        launch,
        plugin,
        node,
    }) = setup_with(
        json!({"version": "v0"}),
        &["--autoreload-settle-ms=600000"],
        false,
    )
    .await
    else {
        return;
    };
    let gen = generation(&node).await;
    write_testplugin(&plugin, &json!({"version": "renamed"}));
    let gen = reloaded(&node, gen).await["generation"].as_u64().unwrap();
    assert_eq!(version(&node).await, "renamed");
    let built = launch.path().join("built.py");
    std::fs::write(&built, testplugin_text(&json!({"version": "linked"}))).unwrap();
    make_executable(&built);
    std::fs::remove_file(&plugin).unwrap();
    std::fs::hard_link(&built, &plugin).unwrap();
    reloaded(&node, gen).await;
    assert_eq!(version(&node).await, "linked");
}

#[tokio::test]
async fn reload_under_concurrent_calls_loses_nothing() {
    let Some(Setup {
        plugin,
        node,
        launch: _launch,
    }) = setup(json!({"version": "a"})).await
    else {
        return;
    };
    let node = std::sync::Arc::new(node);
    let mut tasks = vec![];
    for t in 0..8 {
        let node = node.clone();
        tasks.push(tokio::spawn(async move {
            let mut results = vec![];
            for i in 0..40 {
                let r = if i % 2 == 0 {
                    node.call("tp-echo", json!({"t": t, "i": i}))
                        .await
                        .map(|v| v["params"]["i"].clone())
                } else {
                    node.call("tp-sleep", json!({"ms": 5}))
                        .await
                        .map(|v| v["slept"].clone())
                };
                results.push(r);
            }
            results
        }));
    }
    let mut gen = generation(&node).await;
    for v in ["b", "c", "d"] {
        write_testplugin(&plugin, &json!({"version": v}));
        gen = reloaded(&node, gen).await["generation"].as_u64().unwrap();
    }
    let mut answered = 0;
    for t in tasks {
        for (i, r) in t.await.unwrap().into_iter().enumerate() {
            match r {
                Ok(v) if i % 2 == 0 => assert_eq!(v, json!(i)),
                Ok(v) => assert_eq!(v, json!(5)),
                Err(e) => panic!("call {i} failed during reloads: {e}"),
            }
            answered += 1;
        }
    }
    assert_eq!(answered, 8 * 40);
    assert_eq!(version(&node).await, "d");
}

#[tokio::test]
async fn calls_past_the_grace_period_get_an_error_and_hooks_move_to_the_new_version() {
    let Some(Setup {
        plugin,
        node,
        launch: _launch,
    }) = setup_with(
        json!({"version": "slow", "hooks": ["peer_connected"], "hook_delay_ms": 600000}),
        &["--autoreload-grace-ms=200"],
        true,
    )
    .await
    else {
        return;
    };
    let node = std::sync::Arc::new(node);
    let n = node.clone();
    let call = tokio::spawn(async move { n.call("tp-never", json!({})).await });
    let n = node.clone();
    let hook = tokio::spawn(async move {
        n.call(
            "dev-hook",
            json!({"hook": "peer_connected", "payload": {"peer": {"id": "02aa"}}}),
        )
        .await
    });
    node.wait_status("two requests in flight", |s| s["in_flight"] == 2)
        .await;
    let gen = generation(&node).await;
    write_testplugin(
        &plugin,
        &json!({"version": "fast", "hooks": ["peer_connected"]}),
    );
    let err = call
        .await
        .unwrap()
        .expect_err("the old version never answers");
    assert_eq!((err.code(), err.kind()), (-4, "reloaded"), "{err}");
    assert!(
        err.message().contains("reloaded") && err.message().contains("tp-never"),
        "{err}"
    );
    let h = hook.await.unwrap().expect("hook answered");
    assert_eq!(h["results"], json!([{"result": "continue"}]));
    reloaded(&node, gen).await;
    let state = node.ok("tp-state", json!({})).await;
    assert_eq!(state["version"], "fast");
    assert_eq!(
        state["hooks"][0]["params"]["peer"]["id"], "02aa",
        "the hook was re-sent to the new version"
    );
}

#[tokio::test]
async fn a_crash_mid_request_is_answered_and_the_plugin_restarts() {
    let Some(Setup {
        node,
        launch: _launch,
        ..
    }) = setup(json!({})).await
    else {
        return;
    };
    let err = node.call("tp-crash", json!({})).await.expect_err("crashed");
    assert_eq!((err.code(), err.kind()), (-4, "crashed"), "{err}");
    assert!(
        err.message().contains("crashed") && err.message().contains("exited with status 7"),
        "{err}"
    );
    let s = reloaded(&node, 1).await;
    assert_eq!(s["crashes"], 1);
    assert_eq!(version(&node).await, "v1");
    assert_eq!(node.host_entry().await["active"], true);
}

#[tokio::test]
async fn a_crash_loop_backs_off_and_answers_for_the_plugin() {
    let Some(Setup {
        plugin,
        node,
        launch: _launch,
    }) = setup_with(json!({"hooks": ["peer_connected"]}), &[], true).await
    else {
        return;
    };
    for i in 1..=5 {
        let _ = node.call("tp-crash", json!({})).await.expect_err("crashed");
        if i < 5 {
            // Restarted after a short back-off; a call made meanwhile waits.
            assert_eq!(version(&node).await, "v1");
        }
    }
    let s = node
        .wait_status("down in a crash loop", |s| s["state"] == "down")
        .await;
    assert_eq!(s["crashes"], 5);
    assert!(
        s["down_reason"].as_str().unwrap().contains("crash loop"),
        "{s:#}"
    );
    let err = node.call("tp-echo", json!({})).await.expect_err("down");
    assert!(err.message().contains("crash loop"), "{err}");
    let h = node
        .ok(
            "dev-hook",
            json!({"hook": "peer_connected", "payload": {"peer": {}}}),
        )
        .await;
    assert_eq!(
        h["results"],
        json!([{"result": "continue"}]),
        "a hook with no live plugin continues"
    );
    // Saving the file brings it back at once.
    write_testplugin(
        &plugin,
        &json!({"version": "fixed", "hooks": ["peer_connected"]}),
    );
    node.wait_status("serving again", |s| s["state"] == "serving")
        .await;
    assert_eq!(version(&node).await, "fixed");
}

#[tokio::test]
async fn a_plugin_that_fails_at_start_does_not_stop_lightningd() {
    let Some(Setup { plugin, node, launch: _launch }) =
            setup(json!({"crash_at": "getmanifest", "stderr_at_start": "SyntaxError: invalid syntax (plugin.py, line 3)"})).await
        else {
            return;
        };
    let s = node.wait_status("down", |s| s["state"] == "down").await;
    let err = s["last_error"].as_str().unwrap();
    assert!(
        err.contains("exited with status 3") && err.contains("SyntaxError"),
        "{s:#}"
    );
    assert_eq!(node.host_entry().await["active"], true);
    node.wait_log("no managed plugin answered getmanifest")
        .await;
    write_testplugin(&plugin, &json!({"version": "fixed"}));
    let s = node
        .wait_status("serving", |s| s["state"] == "serving")
        .await;
    assert!(s["registered"] == false, "{s:#}");
    // Fixing it after start-up cannot register methods with lightningd.
    assert!(node.call("tp-echo", json!({})).await.is_err());
    // A version that cannot start never replaces the one serving; a
    // failed restart says why.
    std::fs::write(&plugin, "#!/bin/sh\nexit 1\n").unwrap();
    let mut perm = std::fs::metadata(&plugin).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o644);
    std::fs::set_permissions(&plugin, perm).unwrap();
    node.wait_status("the old version serving on", |s| {
        s["state"] == "serving"
            && s["last_error"]
                .as_str()
                .is_some_and(|e| e.contains("chmod +x"))
    })
    .await;
    let err = node
        .call("autoreload-restart", json!({}))
        .await
        .expect_err("not executable");
    assert!(err.message().contains("chmod +x"), "{err}");
}

#[tokio::test]
async fn stray_output_bad_answers_and_bad_manifests_never_get_the_host_killed() {
    let bad_methods = json!([
        {"name": "tp-echo", "usage": "", "description": "echo"},
        {"name": "tp-print", "usage": "", "description": "print"},
        {"name": "no-usage", "description": "lightningd kills for this"},
        {"name": "autoreload-status", "usage": "", "description": "clash"}
    ]);
    let Some(Setup { node, launch: _launch, .. }) = setup(json!({
            "print_at_start": "hello from print\n",
            "manifest_extra": {"rpcmethods": bad_methods, "options": [{"name": "no-type", "description": "x"}]},
            "hooks": ["peer_connected", "no_such_hook"],
        }))
        .await
        else {
            return;
        };
    assert_eq!(version(&node).await, "v1");
    for text in [
        "a stray print\n",
        "{\"id\":\"no-jsonrpc\",\"result\":1}",
        "{\"jsonrpc\":\"2.0\",\"id\":\"never-asked\",\"result\":{}}",
        "\u{7f}\u{1}binary\n",
    ] {
        let r = node.ok("tp-print", json!({"text": text})).await;
        assert_eq!(r["printed"], true);
    }
    assert_eq!(version(&node).await, "v1");
    assert_eq!(
        node.host_entry().await["active"],
        true,
        "lightningd killed the host"
    );
    let logs = node.logs().await.join("\n");
    for needle in [
        "hello from print",
        "a stray print",
        "without \"jsonrpc\"",
        "never-asked",
        "no-usage",
        "no-type",
        "no_such_hook",
        "autoreload-status",
    ] {
        assert!(
            logs.contains(needle),
            "no log line mentions {needle:?}:\n{logs}"
        );
    }
    assert!(!logs.contains("Killing plugin"), "{logs}");
    assert!(
        !logs.contains("unknown id"),
        "the stray response reached lightningd:\n{logs}"
    );
}

#[tokio::test]
async fn a_hook_answered_with_an_error_does_not_abort_lightningd() {
    let Some(Setup {
        node,
        launch: _launch,
        ..
    }) = setup_with(
        json!({"hooks": ["peer_connected"], "hook_error": true}),
        &[],
        true,
    )
    .await
    else {
        return;
    };
    let h = node
        .ok(
            "dev-hook",
            json!({"hook": "peer_connected", "payload": {"peer": {}}}),
        )
        .await;
    assert_eq!(h["results"], json!([{"result": "continue"}]));
    node.wait_log("would make lightningd abort").await;
}

/// A hook answer lightningd cannot act on (no verb, not an object)
/// becomes `continue` with a warning; a real verb passes untouched.
#[tokio::test]
async fn a_hook_answered_without_a_verb_does_not_abort_lightningd() {
    let Some(Setup {
        node,
        plugin,
        launch: _launch,
    }) = setup_with(json!({"hooks": ["peer_connected"]}), &[], true).await
    else {
        return;
    };
    let cases = [
        (
            json!({"verdict": "continue"}),
            json!({"result": "continue"}),
            "no \"result\" verb",
        ),
        (
            json!({"result": 1}),
            json!({"result": "continue"}),
            "not a string (a number)",
        ),
        (
            json!("continue"),
            json!({"result": "continue"}),
            "not an object (a string)",
        ),
        (
            json!({"result": "disconnect", "error_message": "go away"}),
            json!({"result": "disconnect", "error_message": "go away"}),
            "",
        ),
    ];
    for (answer, seen, warning) in cases {
        let gen = generation(&node).await;
        write_testplugin(
            &plugin,
            &json!({"hooks": ["peer_connected"], "hook_result": answer}),
        );
        reloaded(&node, gen).await;
        let h = node
            .ok(
                "dev-hook",
                json!({"hook": "peer_connected", "payload": {"peer": {}}}),
            )
            .await;
        assert_eq!(h["results"], json!([seen]), "answering {answer}");
        if !warning.is_empty() {
            let line = node.wait_log(warning).await;
            assert!(line.contains("taken as continue"), "{line}");
        }
    }
}

#[tokio::test]
async fn a_changed_manifest_is_reported_and_removed_methods_say_so() {
    let Some(Setup {
        plugin,
        node,
        launch: _launch,
    }) = setup(json!({})).await
    else {
        return;
    };
    let methods = json!([
        {"name": "tp-sleep", "usage": "[ms]", "description": "sleeps"},
        {"name": "tp-new", "usage": "", "description": "new"},
        {"name": "tp-state", "usage": "", "description": "state"}
    ]);
    write_testplugin(
        &plugin,
        &json!({"version": "v2", "manifest_extra": {"rpcmethods": methods},
                                          "options": [{"name": "tp-added", "type": "int", "default": 9, "description": "added"}]}),
    );
    let s = reloaded(&node, 1).await;
    let changes = s["manifest_changes"].to_string();
    for needle in [
        "method tp-new",
        "method tp-echo",
        "option tp-added",
        "option tp-greeting",
    ] {
        assert!(changes.contains(needle), "{needle}: {changes}");
    }
    let line = node.wait_log("manifest changed").await;
    assert!(
        line.contains("+method tp-new") && line.contains("-method tp-echo"),
        "{line}"
    );
    let err = node.call("tp-echo", json!({})).await.expect_err("removed");
    assert_eq!(
        (err.code(), err.kind()),
        (-32601, "removed-method"),
        "{err}"
    );
    assert!(
        err.message().contains("removed") && err.message().contains("autoreload-reregister"),
        "{err}"
    );
    assert_eq!(node.ok("tp-sleep", json!([1])).await["version"], "v2");
    // The option the new version added got its default in init.
    let state = node.ok("tp-state", json!({})).await;
    assert_eq!(
        state["init"]["options"],
        json!({"tp-added": 9}),
        "{state:#}"
    );
}

#[tokio::test]
async fn setconfig_reaches_the_plugin_and_survives_a_reload() {
    let opts = json!([{"name": "tp-dyn", "type": "int", "default": 1, "dynamic": true, "description": "dynamic"}]);
    let Some(Setup {
        node,
        launch: _launch,
        ..
    }) = setup_with(
        json!({"options": opts, "manifest_extra": {"cancheck": true}}),
        &["--tp-dyn=2"],
        false,
    )
    .await
    else {
        return;
    };
    node.ok("setconfig", json!({"config": "tp-dyn", "val": 5}))
        .await;
    let state = node.ok("tp-state", json!({})).await;
    assert_eq!(
        state["setconfig"],
        json!([{"config": "tp-dyn", "val": "5"}])
    );
    assert_eq!(state["init"]["options"]["tp-dyn"], 2);
    node.ok("autoreload-restart", json!({})).await;
    let state = node.ok("tp-state", json!({})).await;
    assert_eq!(
        state["init"]["options"]["tp-dyn"], 5,
        "the new generation starts with the value set"
    );
    assert!(state["init"]["options"].get("autoreload-plugin").is_none());
    let checked = node
        .ok("check", json!({"command_to_check": "tp-echo", "x": 1}))
        .await;
    assert!(checked.to_string().contains("tp-echo"), "{checked}");
}

#[tokio::test]
async fn logs_and_stderr_carry_the_plugin_name() {
    let Some(Setup {
        node,
        launch: _launch,
        ..
    }) = setup(json!({})).await
    else {
        return;
    };
    node.ok("tp-log", json!({"level": "info", "message": "hello log"}))
        .await;
    node.ok("tp-stderr", json!({"text": "hello stderr"})).await;
    node.wait_log("[plugin.py] hello log").await;
    node.wait_log("[plugin.py] hello stderr").await;
    node.ok("tp-progress", json!({})).await;
}

#[tokio::test]
async fn odd_ids_pass_intact() {
    let Some(Setup {
        node,
        launch: _launch,
        ..
    }) = setup(json!({})).await
    else {
        return;
    };
    for id in [json!("we\"ird \\ / ü 🚀 \u{1} id"), json!(12345), json!("")] {
        let req = json!({"jsonrpc": "2.0", "id": id, "method": "tp-echo", "params": {"k": "v"}});
        let r = node.call_raw(req.to_string().as_bytes()).await;
        assert_eq!(r["id"], id);
        assert_eq!(r["result"]["params"], json!({"k": "v"}));
    }
}

#[tokio::test]
async fn ten_megabyte_messages_pass_intact() {
    let Some(Setup {
        node,
        launch: _launch,
        ..
    }) = setup(json!({})).await
    else {
        return;
    };
    let big = node.ok("tp-big", json!({"bytes": 10_000_000})).await;
    assert_eq!(big["data"].as_str().map(str::len), Some(10_000_000));
    let s = "y".repeat(10_000_000);
    let echoed = node.ok("tp-echo", json!({"s": s})).await;
    assert_eq!(
        echoed["params"]["s"].as_str().map(str::len),
        Some(10_000_000)
    );
}

/// A db_write that finds no version able to answer waits for one:
/// lightningd aborts on any answer but continue, and a write the
/// plugin never saw is a hole in its backup.
#[tokio::test]
async fn db_write_is_never_answered_for_the_plugin() {
    let hooks = json!(["db_write"]);
    // lightningd answers no rpc call while a db_write is out (not even
    // getlog): its log file shows what happens meanwhile.
    let logs = tempdir();
    let log_file = logs.path().join("log");
    let log_arg = format!("--log-file={}", log_file.display());
    let Some(Setup {
        plugin,
        node,
        launch: _launch,
    }) = setup_with(
        // Crashing in init from the start, so that no version can
        // answer: a version broken later would bring the old one back.
        json!({"hooks": hooks, "crash_at": "init"}),
        &[&log_arg],
        true,
    )
    .await
    else {
        return;
    };
    node.wait_status("down", |s| s["state"] == "down").await;
    let node = std::sync::Arc::new(node);
    let n = node.clone();
    let db = tokio::spawn(async move {
        n.call("dev-db-write", json!({"writes": ["INSERT x"]}))
            .await
    });
    // It waits for a version that can answer it, and says so.
    wait_for("the held db_write's warning in lightningd's log", || {
        std::fs::read_to_string(&log_file)
            .ok()
            .filter(|l| l.contains("a db_write waits for a version that can answer it"))
    })
    .await;
    assert!(!db.is_finished());
    write_testplugin(&plugin, &json!({"hooks": hooks, "version": "fixed"}));
    let r = db
        .await
        .unwrap()
        .expect("db_write answered by the fixed version");
    let state = node.ok("tp-state", json!({})).await;
    assert_eq!(state["version"], "fixed");
    let got: Vec<&Value> = state["hooks"]
        .as_array()
        .map(|h| h.iter().filter(|h| h["method"] == "db_write").collect())
        .unwrap_or_default();
    assert_eq!(got.len(), 1, "{state}");
    assert_eq!(got[0]["params"]["data_version"], r["data_version"]);
    assert_eq!(got[0]["params"]["writes"], json!(["INSERT x"]));
}

#[tokio::test]
async fn the_examples_run_under_the_host() {
    let launch = tempdir();
    let native = launch.path().join("hello-native");
    std::fs::copy(hello_native_bin(), &native).unwrap();
    let py = launch.path().join("hello.py");
    std::fs::copy(root().join("examples/hello-py/hello.py"), &py).unwrap();
    // Its state helper beside it, as the README says.
    std::fs::copy(
        root().join("python/cln_autoreload_state.py"),
        launch.path().join("cln_autoreload_state.py"),
    )
    .unwrap();
    let pyln = std::process::Command::new("python3")
        .args(["-c", "import pyln.client"])
        .status()
        .is_ok_and(|s| s.success());
    let mut cases = vec![("hello-native", "hello-native", "Hello, world!")];
    if pyln {
        cases.push(("hello.py", "hello", "Hello, world!"));
    } else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install pyln-client"
        );
        skip("hello.py: pip install pyln-client");
    }
    for (file, method, want) in cases {
        let Some(node) = NodeBuilder::new()
            .launch_dir(launch.path())
            .arg(format!("--autoreload-plugin={file}"))
            .start()
            .await
            .expect("node starts")
        else {
            return;
        };
        let r = node.ok(method, json!(["world"])).await;
        assert_eq!(r["greeting"], want, "{file}: {r}");
        node.ok("autoreload-restart", json!([file])).await;
        let r = node.ok(method, json!(["world"])).await;
        assert_eq!(r["greeting"], want);
        if file == "hello.py" {
            assert_eq!(r["calls"], 2, "the count survives the restart: {r}");
        }
        node.stop().await.expect("stops");
    }
}

#[tokio::test]
async fn shutdown_leaves_no_process_behind() {
    for ignore in [false, true] {
        let Some(Setup {
            node,
            launch: _launch,
            ..
        }) = setup(json!({"ignore_shutdown": ignore})).await
        else {
            return;
        };
        let grandchild = node.ok("tp-spawn-grandchild", json!({})).await["pid"]
            .as_u64()
            .unwrap() as u32;
        let child = node.ok("tp-echo", json!({})).await["pid"].as_u64().unwrap() as u32;
        let host = ppid(child).expect("child has a parent");
        assert!(alive(grandchild) && alive(child) && alive(host));
        let status = node.stop().await.expect("node stops");
        assert!(status.success(), "{status}");
        for (what, pid) in [
            ("host", host),
            ("plugin", child),
            ("plugin's child", grandchild),
        ] {
            wait_for(
                &format!("{what} {pid} to exit (ignore_shutdown={ignore})"),
                || (!alive(pid)).then_some(()),
            )
            .await;
        }
    }
}

#[allow(dead_code)]
fn _unused(_: &Path) {}
