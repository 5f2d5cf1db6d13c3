//! End-to-end tests: a real host process, real plugin processes, real
//! pipes and files, driven the way lightningd v26.06 drives a plugin
//! (directly byte for byte, or through the lightningd stand-in).

use cln_autoreload_tests::*;
use serde_json::{json, Value};
use std::time::Duration;

mod direct {
    use super::*;

    /// Splits a raw trace into its messages, each with its exact bytes.
    pub(crate) fn messages(raw: &[u8]) -> Vec<(Vec<u8>, Value)> {
        let mut out = vec![];
        let mut it = serde_json::Deserializer::from_slice(raw).into_iter::<Value>();
        let mut last = 0;
        while let Some(v) = it.next() {
            let v = v.expect("trace is JSON");
            let end = it.byte_offset();
            out.push((raw[last..end].to_vec(), v));
            last = end;
        }
        out
    }

    pub(crate) fn trace_plugin_config() -> Option<Value> {
        let manifest: Value =
            serde_json::from_slice(&trace("static-plugin.manifest.json")?).ok()?;
        let mut methods: Vec<Value> = manifest["rpcmethods"].as_array()?.clone();
        methods.push(json!({"name": "trace-state", "usage": "", "description": "state"}));
        Some(json!({
            "methods_prefix": "trace",
            "options": manifest["options"],
            "hooks": manifest["hooks"],
            "subscriptions": manifest["subscriptions"],
            "notifications": manifest["notifications"],
            "manifest_extra": {"rpcmethods": methods, "cancheck": true, "nonnumericids": true, "dynamic": true},
        }))
    }

    /// Replaying lightningd's recorded bytes through the host delivers the
    /// same messages to the plugin, and every request gets exactly one
    /// answer with its id unchanged.
    #[tokio::test]
    async fn trace_replay_reaches_the_plugin_unchanged() {
        let (Some(raw), Some(config)) = (trace("static-plugin.stdin.raw"), trace_plugin_config())
        else {
            return;
        };
        let dir = tempdir();
        let plugin = dir.path().join("tracer.py");
        write_testplugin(&plugin, &config);
        let mut host = Direct::start(&[plugin.to_str().unwrap()], &[]);
        let msgs = messages(&raw);
        let (gm_raw, gm) = &msgs[0];
        host.send(gm_raw).await;
        let manifest = host.response(gm["id"].as_str().unwrap()).await["result"].clone();
        let names: Vec<&str> = manifest["options"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|o| o["name"].as_str())
            .collect();
        assert!(
            names.contains(&"trace-multi") && names.contains(&"autoreload-plugin"),
            "{manifest}"
        );
        assert_eq!(manifest["hooks"], config["hooks"]);
        assert_eq!(manifest["cancheck"], true);

        let (init_raw, init) = &msgs[1];
        host.send(init_raw).await;
        assert_eq!(
            host.response(init["id"].as_str().unwrap()).await["result"],
            json!({})
        );

        // Everything else but the final shutdown, in 7-byte pieces with a
        // pause now and then, so messages are split across reads.
        let body: Vec<u8> = msgs[2..msgs.len() - 1]
            .iter()
            .flat_map(|(r, _)| r.clone())
            .collect();
        for (i, chunk) in body.chunks(7).enumerate() {
            host.send(chunk).await;
            if i % 50 == 0 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        let requests: Vec<&Value> = msgs[2..]
            .iter()
            .map(|(_, v)| v)
            .filter(|v| v.get("id").is_some())
            .collect();
        let mut answers = std::collections::HashMap::new();
        while answers.len() < requests.len() {
            let v = host.next().await.expect("host alive");
            if let (Some(id), None) = (v.get("id").and_then(Value::as_str), v.get("method")) {
                assert!(
                    answers.insert(id.to_string(), v.clone()).is_none(),
                    "answered twice: {v}"
                );
            }
        }
        for r in &requests {
            let a = &answers[r["id"].as_str().unwrap()];
            if r["method"] == "trace-echo" {
                assert_eq!(
                    a["result"]["params"], r["params"],
                    "params reach the plugin unchanged"
                );
                assert_eq!(a["result"]["id"], r["id"]);
            }
        }

        let state = host
            .request("cli:x#1/cln:trace-state#999", "trace-state", json!([]))
            .await["result"]
            .clone();
        assert_eq!(state["getmanifest"], gm["params"]);
        let mut want_opts = init["params"]["options"].clone();
        want_opts
            .as_object_mut()
            .unwrap()
            .retain(|k, _| !k.starts_with("autoreload-"));
        assert_eq!(state["init"]["options"], want_opts);
        assert_eq!(
            state["init"]["configuration"],
            init["params"]["configuration"]
        );
        let notes: Vec<&Value> = msgs
            .iter()
            .map(|(_, v)| v)
            .filter(|v| v.get("id").is_none() && v["method"] != "shutdown")
            .collect();
        let got: Vec<Value> = state["notifications_raw"].as_array().unwrap().clone();
        assert_eq!(got.len(), notes.len(), "{got:#?}");
        for (g, w) in got.iter().zip(notes) {
            assert_eq!(g, w);
        }
        let hooks: Vec<&Value> = requests
            .iter()
            .copied()
            .filter(|v| v["method"] == "rpc_command" || v["method"] == "peer_connected")
            .collect();
        let got_hooks = state["hooks"].as_array().unwrap();
        assert_eq!(got_hooks.len(), hooks.len());
        for (g, w) in got_hooks.iter().zip(hooks) {
            assert_eq!((&g["id"], &g["params"]), (&w["id"], &w["params"]));
        }
        assert_eq!(
            state["setconfig"],
            json!([{"config": "trace-dyn", "val": "5"}])
        );
        assert_eq!(state["check"].as_array().map(Vec::len), Some(2));
        let child_pid = state["pid"].as_u64().unwrap() as u32;

        // The final shutdown: the host passes it on and exits promptly.
        host.send(&msgs.last().unwrap().0).await;
        assert!(host.exited().await.success());
        wait_for("the plugin to exit with the host", || {
            (!alive(child_pid)).then_some(())
        })
        .await;
        let warnings: Vec<String> = host
            .logs()
            .into_iter()
            .filter(|l| l.starts_with("warn"))
            .collect();
        assert!(warnings.is_empty(), "{warnings:#?}");
    }

    /// Bad input from lightningd's side: logged, nothing lost, no crash.
    #[tokio::test]
    async fn bad_input_from_lightningd_is_logged_and_survived() {
        let dir = tempdir();
        let plugin = dir.path().join("p.py");
        write_testplugin(&plugin, &json!({}));
        let mut host = Direct::start(&[plugin.to_str().unwrap()], &[]);
        host.send(&getmanifest_bytes(1)).await;
        host.response("cln:getmanifest#1").await;
        host.request("cln:init#2", "init", json!({"options": {}, "configuration": {"lightning-dir": "/tmp", "rpc-file": "lightning-rpc"}})).await;
        host.send(b"this is not json\n").await;
        host.send(b"{\"jsonrpc\":\"2.0\",\"method\":\"\xff\xfe\"}\n")
            .await;
        host.send(b"{\"id\":\"nojsonrpc\",\"method\":\"tp-echo\"}\n")
            .await;
        host.send(b"{\"jsonrpc\":\"2.0\",\"id\":\"r1\",\"result\":{}}\n")
            .await;
        let v = host
            .request("cli:tp-echo#1/cln:tp-echo#3", "tp-echo", json!({"a": 1}))
            .await;
        assert_eq!(v["result"]["params"], json!({"a": 1}));
        let logs = host.logs().join("\n");
        assert!(logs.contains("not JSON"), "{logs}");
        assert!(
            logs.contains("without \\\"jsonrpc\\\"") || logs.contains("without \"jsonrpc\""),
            "{logs}"
        );
        // Truncated message, then EOF: the host exits, the plugin with it.
        let pid = v["result"]["pid"].as_u64().unwrap() as u32;
        host.send(b"{\"jsonrpc\":\"2.0\",\"id\":\"cut").await;
        host.close();
        assert!(host.exited().await.success());
        wait_for("the plugin to exit with the host", || {
            (!alive(pid)).then_some(())
        })
        .await;
    }

    /// No plugin named anywhere: the host disables itself with a clear
    /// reason instead of failing lightningd.
    #[tokio::test]
    async fn no_plugin_disables_the_host_with_a_reason() {
        let mut host = Direct::start(&[], &[]);
        host.send(&getmanifest_bytes(1)).await;
        let m = host.response("cln:getmanifest#1").await;
        let why = m["result"]["disable"].as_str().expect("disable");
        assert!(why.contains("--autoreload-plugin=PATH"), "{why}");
        host.close();
        assert!(host.exited().await.success());
    }
}

/// Through the lightningd stand-in (or a real lightningd with
/// `LIGHTNINGD`): the host as lightningd runs it.
mod node {
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
            let req =
                json!({"jsonrpc": "2.0", "id": id, "method": "tp-echo", "params": {"k": "v"}});
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
        // Its state helper beside it, as docs/state.md says.
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
}

mod hygiene {
    use super::*;

    /// The host killed outright (no chance to clean up): its plugin dies
    /// too (PR_SET_PDEATHSIG), no orphan is left.
    #[tokio::test]
    async fn a_killed_host_takes_its_plugin_along() {
        let dir = tempdir();
        let plugin = dir.path().join("p.py");
        write_testplugin(&plugin, &json!({"ignore_shutdown": true}));
        let mut host = Direct::start(&[plugin.to_str().unwrap()], &[]);
        host.send(&getmanifest_bytes(1)).await;
        host.response("cln:getmanifest#1").await;
        host.request(
            "cln:init#2",
            "init",
            json!({"options": {}, "configuration": {}}),
        )
        .await;
        let v = host.request("x/cln:tp-echo#3", "tp-echo", json!({})).await;
        let child = v["result"]["pid"].as_u64().unwrap() as u32;
        let pid = host.pid().unwrap();
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
        host.exited().await;
        wait_for("the plugin to die with its host", || {
            (!alive(child)).then_some(())
        })
        .await;
    }
}

/// WebAssembly plugins, through the stand-in.
mod wasm {
    use super::*;
    use std::sync::Arc;

    /// The test guest at `version` under a node, with `extra` arguments.
    pub(crate) struct Guest {
        pub(crate) _launch: tempfile::TempDir,
        pub(crate) module: std::path::PathBuf,
        pub(crate) node: Node,
    }

    pub(crate) async fn guest(version: &str, extra: &[&str]) -> Option<Guest> {
        let launch = tempdir();
        let module = launch.path().join("guest.wasm");
        write_atomically(&module, &testguest_version(version));
        let mut b = NodeBuilder::new()
            .launch_dir(launch.path())
            .arg("--autoreload-plugin=guest.wasm")
            .standin_only();
        for a in extra {
            b = b.arg(*a);
        }
        let node = b.start().await.expect("node starts")?;
        Some(Guest {
            _launch: launch,
            module,
            node,
        })
    }

    async fn version(node: &Node) -> String {
        node.ok("tg-version", json!({})).await["version"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    async fn generation(node: &Node) -> u64 {
        node.ok("autoreload-status", json!({})).await["plugins"][0]["generation"]
            .as_u64()
            .unwrap_or(0)
    }

    #[tokio::test]
    async fn hello_wasm_serves_and_calls_lightningd() {
        let launch = tempdir();
        std::fs::copy(
            wasm_bin("hello-wasm", false),
            launch.path().join("hello.wasm"),
        )
        .unwrap();
        let Some(node) = NodeBuilder::new()
            .launch_dir(launch.path())
            .arg("--autoreload-plugin=hello.wasm")
            .arg("--hello-greeting=Howdy")
            .start()
            .await
            .expect("node starts")
        else {
            return;
        };
        let r = node.ok("hello", json!(["wasm"])).await;
        assert_eq!(r["greeting"], "Howdy, wasm!");
        let info = node.ok("hello-info", json!({})).await;
        let getinfo = node.ok("getinfo", json!({})).await;
        assert_eq!(info["node_id"], getinfo["id"], "{info}");
        let s = node.ok("autoreload-status", json!({})).await["plugins"][0].clone();
        assert_eq!(s["backend"], "wasm");
        assert_eq!(s["state"], "serving");
        // The instance that answered getmanifest got init too: the default
        // sandbox needed no fresh instance.
        assert_eq!(s["generation"], 1);
    }

    #[tokio::test]
    async fn a_new_module_swaps_in_under_load_and_nothing_is_lost() {
        let Some(Guest {
            node,
            module,
            _launch,
        }) = guest("v1", &[]).await
        else {
            return;
        };
        let node = Arc::new(node);
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let answered = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let mut tasks = vec![];
        for t in 0..8 {
            let (node, stop, answered) = (node.clone(), stop.clone(), answered.clone());
            tasks.push(tokio::spawn(async move {
                let mut n = 0u64;
                let mut versions = std::collections::BTreeSet::new();
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    match node.call("tg-echo", json!({"t": t, "n": n})).await {
                        Ok(v) => {
                            answered.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                            assert_eq!(v["params"]["n"], n);
                            versions.insert(v["version"].as_str().unwrap_or_default().to_string());
                        }
                        Err(e) => panic!("call {n} of task {t} failed during a swap: {e}"),
                    }
                    n += 1;
                }
                (n, versions)
            }));
        }
        // The load is on before the first swap, however busy the machine.
        wait_for("calls answered by v1", || {
            (answered.load(std::sync::atomic::Ordering::SeqCst) >= 8).then_some(())
        })
        .await;
        let mut gen = generation(&node).await;
        for v in ["v2", "v3", "v4"] {
            write_atomically(&module, &testguest_version(v));
            let s = node
                .wait_status("the new module serving", |s| {
                    s["generation"].as_u64().unwrap_or(0) > gen && s["state"] == "serving"
                })
                .await;
            gen = s["generation"].as_u64().unwrap();
            assert_eq!(version(&node).await, v);
        }
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let mut total = 0;
        let mut seen = std::collections::BTreeSet::new();
        for t in tasks {
            let (n, versions) = t.await.unwrap();
            total += n;
            seen.extend(versions);
        }
        assert!(total > 0);
        assert!(seen.contains("v1") && seen.contains("v4"), "{seen:?}");
        let s = node.ok("autoreload-status", json!({})).await["plugins"][0].clone();
        assert_eq!(s["reloads"], 3);
        assert_eq!(s["crashes"], 0);
        node.wait_log("reloaded (file changed)").await;
    }

    #[tokio::test]
    async fn a_module_that_does_not_compile_leaves_the_old_one_serving() {
        // A warm start, named: the test guest takes db_write, which makes
        // break-before-make its default (where a module that does not
        // compile brings the old version back instead).
        let Some(Guest {
            node,
            module,
            _launch,
        }) = guest("v1", &["--autoreload-overlap=guest.wasm::warm"]).await
        else {
            return;
        };
        let gen = generation(&node).await;
        write_atomically(&module, b"\0asm\x01\0\0\0 this is not a module");
        let s = node
            .wait_status("an error reported", |s| {
                s["last_error"]
                    .as_str()
                    .is_some_and(|e| e.contains("does not compile"))
            })
            .await;
        assert_eq!(s["state"], "serving");
        assert_eq!(s["generation"].as_u64(), Some(gen));
        assert_eq!(version(&node).await, "v1");
        // A module that traps at start likewise.
        let err = node
            .call("autoreload-restart", json!({}))
            .await
            .expect_err("still broken");
        assert!(err.message().contains("does not compile"), "{err}");
        write_atomically(&module, &testguest_version("v2"));
        node.wait_status("v2 serving", |s| {
            s["last_error"].is_null() && s["state"] == "serving"
        })
        .await;
        assert_eq!(version(&node).await, "v2");
    }

    #[tokio::test]
    async fn a_trap_is_logged_with_its_backtrace_and_answered() {
        let Some(Guest { node, _launch, .. }) = guest("v1", &[]).await else {
            return;
        };
        let err = node.call("tg-trap", json!({})).await.expect_err("trapped");
        assert_eq!((err.code(), err.kind()), (-4, "crashed"), "{err}");
        assert!(err.message().contains("trapped"), "{err}");
        node.wait_log("tg-trap asked for a panic").await;
        node.wait_log("trap:").await;
        assert_eq!(version(&node).await, "v1");
        // The replacement reused the module compiled before.
        let s = node.ok("autoreload-status", json!({})).await["plugins"][0].clone();
        assert_eq!(s["last_compile"]["cached"], true, "{s:#}");
        assert_eq!(node.host_entry().await["active"], true);
    }

    #[tokio::test]
    async fn runaway_guests_are_stopped_and_replaced() {
        let Some(Guest { node, _launch, .. }) = guest(
            "v1",
            &[
                "--autoreload-wasm-request-timeout-ms=300",
                "--autoreload-wasm-max-memory-mb=32",
            ],
        )
        .await
        else {
            return;
        };
        let err = node.call("tg-spin", json!({})).await.expect_err("spins");
        assert!(err.message().contains("computed for"), "{err}");
        assert_eq!(err.kind(), "timeout", "{err}");
        assert_eq!(version(&node).await, "v1");
        let err = node.call("tg-bomb", json!({})).await.expect_err("bombs");
        assert!(
            err.message().contains("ran out of memory") || err.message().contains("trapped"),
            "{err}"
        );
        assert_eq!(version(&node).await, "v1");
        let err = node
            .call("tg-recurse", json!({}))
            .await
            .expect_err("overflows");
        assert!(err.message().contains("trapped"), "{err}");
        assert_eq!(version(&node).await, "v1");
        // A hook that runs away is answered continue, not sent again.
        let h = node
            .ok(
                "dev-hook",
                json!({"hook": "peer_connected", "payload": {"peer": {"id": "spin"}}}),
            )
            .await;
        assert_eq!(h["results"], json!([{"result": "continue"}]));
    }

    #[tokio::test]
    async fn the_sandbox_denies_files_unless_granted_and_filters_rpc() {
        let data = tempdir();
        std::fs::write(data.path().join("note.txt"), "granted").unwrap();
        let dir_arg = format!("--autoreload-wasm-dir={}:/data", data.path().display());
        let Some(Guest { node, _launch, .. }) =
            guest("v1", &[&dir_arg, "--autoreload-wasm-rpc-allow=getinfo"]).await
        else {
            return;
        };
        assert!(node
            .call("tg-read", json!({"path": "/etc/passwd"}))
            .await
            .is_err());
        assert!(node
            .call("tg-read", json!({"path": "../lightning-rpc"}))
            .await
            .is_err());
        let ok = node.ok("tg-read", json!({"path": "/data/note.txt"})).await;
        assert_eq!(ok["content"], "granted");
        let env = node.ok("tg-env", json!({})).await;
        let keys: Vec<&String> = env["env"].as_object().unwrap().keys().collect();
        assert!(
            keys.iter().all(|k| k.starts_with("LIGHTNINGD_")),
            "{keys:?}"
        );
        let info = node
            .ok("tg-rpc", json!({"method": "getinfo", "params": {}}))
            .await;
        assert_eq!(info["alias"], "standin");
        let err = node
            .call("tg-rpc", json!({"method": "getlog", "params": {}}))
            .await
            .expect_err("refused");
        assert!(err.message().contains("not allowed"), "{err}");
        node.wait_log("refused its call to lightningd's 'getlog'")
            .await;
    }

    #[tokio::test]
    async fn cranelift_can_be_chosen() {
        let Some(Guest {
            node,
            module,
            _launch,
        }) = guest("v1", &["--autoreload-wasm-compiler=cranelift"]).await
        else {
            return;
        };
        assert_eq!(version(&node).await, "v1");
        write_atomically(&module, &testguest_version("v2"));
        node.wait_status("v2", |s| s["reloads"] == 1).await;
        assert_eq!(version(&node).await, "v2");
        let s = node.ok("autoreload-status", json!({})).await["plugins"][0].clone();
        assert_eq!(s["last_compile"]["cached"], false);
        assert!(s["last_compile"]["duration_ms"].as_f64().is_some(), "{s:#}");
        // The option was not ignored: Cranelift compiled it.
        assert_eq!(s["last_compile"]["compiler"], "cranelift", "{s:#}");
    }

    #[tokio::test]
    async fn every_sdk_feature_round_trips() {
        let Some(Guest { node, _launch, .. }) = guest("v1", &["--tg-greeting=yo"]).await else {
            return;
        };
        node.ok("setconfig", json!({"config": "tg-dyn", "val": 7}))
            .await;
        node.ok(
            "dev-hook",
            json!({"hook": "peer_connected", "payload": {"peer": {"id": "02bb"}}}),
        )
        .await;
        node.ok(
            "dev-notify",
            json!({"topic": "connect", "payload": {"id": "02bb"}}),
        )
        .await;
        node.ok(
            "tg-notify",
            json!({"method": "tg_custom", "payload": {"x": 1}}),
        )
        .await;
        node.ok(
            "tg-log",
            json!({"level": "info", "message": "from the guest"}),
        )
        .await;
        node.ok("tg-progress", json!({})).await;
        node.wait_log("[guest.wasm] from the guest").await;
        let state = wait_state(&node, |s| {
            s["notifications"].as_array().is_some_and(|n| n.len() >= 2)
        })
        .await;
        assert_eq!(state["init_options"]["tg-greeting"], "yo");
        // The SDK hands the handler the value typed as declared.
        assert_eq!(state["setconfig"], json!([{"config": "tg-dyn", "val": 7}]));
        // (A fresh node's db_writes come first, before init.)
        let peer = state["hooks"]
            .as_array()
            .and_then(|h| h.iter().find(|h| h["method"] == "peer_connected"));
        assert_eq!(
            peer.map(|h| &h["params"]["peer"]["id"]),
            Some(&json!("02bb"))
        );
        let methods: Vec<&str> = state["notifications"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|n| n["method"].as_str())
            .collect();
        assert!(
            methods.contains(&"connect") && methods.contains(&"tg_custom"),
            "{methods:?}"
        );
        // The dynamic option's new value survives a swap.
        node.ok("autoreload-restart", json!({})).await;
        let state = node.ok("tg-state", json!({})).await;
        assert_eq!(state["init_options"]["tg-dyn"], 7);
    }

    async fn wait_state(node: &Node, f: impl Fn(&Value) -> bool) -> Value {
        let start = std::time::Instant::now();
        loop {
            let s = node.ok("tg-state", json!({})).await;
            if f(&s) {
                return s;
            }
            assert!(start.elapsed() < BOUND, "tg-state never matched: {s:#}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A real `cargo build` as the trigger.
mod rebuild {
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
}

/// The stand-in itself, checked against the recorded traces: what a plugin
/// receives from it is what it receives from lightningd v26.06.
mod standin {
    use super::*;

    #[tokio::test]
    async fn a_plugin_under_the_standin_sees_what_lightningd_sent() {
        let (Some(raw), Some(config)) = (
            trace("static-plugin.stdin.raw"),
            direct::trace_plugin_config(),
        ) else {
            return;
        };
        if real_lightningd().is_some() {
            skip("checks the stand-in, not lightningd");
            return;
        }
        let msgs = direct::messages(&raw);
        let (gm, init) = (&msgs[0].1, &msgs[1].1);
        let launch = tempdir();
        write_testplugin(&launch.path().join("tracer.py"), &config);
        let node = NodeBuilder::new()
            .without_host()
            .launch_dir(launch.path())
            .arg("--plugin=tracer.py")
            .args([
                "--trace-str=hello",
                "--trace-multi=a",
                "--trace-multi=b",
                "--trace-flag",
                "--trace-int",
                "42",
            ])
            .start()
            .await
            .expect("stand-in starts")
            .expect("stand-in");
        let state = node.ok("trace-state", json!([])).await;
        assert_eq!(state["getmanifest"], gm["params"]);
        assert_eq!(state["init"]["options"], init["params"]["options"]);
        let (got, want) = (
            &state["init"]["configuration"],
            &init["params"]["configuration"],
        );
        let keys = |v: &Value| {
            v.as_object()
                .map(|o| o.keys().cloned().collect::<Vec<_>>())
                .unwrap_or_default()
        };
        assert_eq!(keys(got), keys(want));
        for k in ["rpc-file", "startup", "network", "feature_set"] {
            assert_eq!(got[k], want[k], "{k}");
        }
        assert!(got["lightning-dir"].as_str().unwrap().ends_with("/regtest"));
        let env = &state["env"];
        assert_eq!(env["LIGHTNINGD_PLUGIN"], "1");
        assert_eq!(env["LIGHTNINGD_VERSION"], "v26.06.6");
        // (PWD is not checked here: this Python may run through a shell
        // shim, and shells reset a PWD that is not their cwd. The host reads
        // PWD itself; the locator tests show it resolves against it.)
        assert!(
            state["cwd"].as_str().unwrap().ends_with("/regtest"),
            "cwd is <lightning-dir>/regtest"
        );
        let argv0 = std::fs::canonicalize(launch.path().join("tracer.py")).unwrap();
        assert_eq!(state["argv"], json!([argv0]));
    }

    /// A wrapper script is how to run the host with `plugin start`.
    #[tokio::test]
    async fn the_host_runs_from_a_wrapper_with_plugin_start() {
        let launch = tempdir();
        let plugin = launch.path().join("p.py");
        write_testplugin(&plugin, &json!({"version": "started"}));
        let wrapper = write_wrapper(&launch.path().join("autoreload-p"), &plugin);
        let Some(node) = NodeBuilder::new()
            .without_host()
            .launch_dir(launch.path())
            .start()
            .await
            .expect("starts")
        else {
            return;
        };
        node.ok("plugin", json!({"subcommand": "start", "plugin": wrapper}))
            .await;
        assert_eq!(node.ok("tp-echo", json!({})).await["version"], "started");
        write_testplugin(&plugin, &json!({"version": "edited"}));
        node.wait_status("reloaded", |s| s["reloads"] == 1 && s["state"] == "serving")
            .await;
        assert_eq!(node.ok("tp-echo", json!({})).await["version"], "edited");
    }
}

/// Several plugins under one host.
mod several {
    use super::*;

    async fn node_with(plugins: &[(&str, Value)]) -> Option<(tempfile::TempDir, Node)> {
        node_with_args(plugins, &[]).await
    }

    async fn node_with_args(
        plugins: &[(&str, Value)],
        args: &[&str],
    ) -> Option<(tempfile::TempDir, Node)> {
        let launch = tempdir();
        let mut b = NodeBuilder::new().launch_dir(launch.path()).standin_only();
        for (file, config) in plugins {
            write_testplugin(&launch.path().join(file), config);
            b = b.arg(format!("--autoreload-plugin={file}"));
        }
        for a in args {
            b = b.arg(*a);
        }
        let node = b.start().await.expect("node starts")?;
        Some((launch, node))
    }

    fn status_of<'a>(s: &'a Value, name: &str) -> &'a Value {
        s["plugins"]
            .as_array()
            .and_then(|a| a.iter().find(|p| p["name"] == name))
            .unwrap_or(&Value::Null)
    }

    #[tokio::test]
    async fn each_plugin_is_routed_logged_and_reloaded_on_its_own() {
        // a.py reloads break-before-make (the option for it alone), b.py
        // make-before-break.
        let Some((launch, node)) = node_with_args(
            &[
                (
                    "a.py",
                    json!({"methods_prefix": "ta", "ignore_shutdown": true}),
                ),
                ("b.py", json!({"methods_prefix": "tb"})),
            ],
            &["--autoreload-overlap=a.py::false"],
        )
        .await
        else {
            return;
        };
        assert_eq!(node.ok("ta-echo", json!({})).await["version"], "v1");
        assert_eq!(node.ok("tb-echo", json!({})).await["version"], "v1");
        node.ok("ta-log", json!({"level": "info", "message": "from a"}))
            .await;
        node.ok("tb-stderr", json!({"text": "from b"})).await;
        node.wait_log("[a.py] from a").await;
        node.wait_log("[b.py] from b").await;
        // a.py ignores shutdown and SIGTERM: its reload takes seconds. b.py
        // answers meanwhile.
        write_testplugin(
            &launch.path().join("a.py"),
            &json!({"methods_prefix": "ta", "version": "v2"}),
        );
        let start = std::time::Instant::now();
        loop {
            let st = node.ok("autoreload-status", json!({})).await;
            if status_of(&st, "a.py")["state"] == "stopping" {
                assert_eq!(node.ok("tb-echo", json!({})).await["version"], "v1");
                let st = node
                    .ok("autoreload-status", json!({"plugin": "a.py"}))
                    .await;
                assert_eq!(st["plugins"].as_array().map(Vec::len), Some(1));
                assert_eq!(
                    st["plugins"][0]["state"], "stopping",
                    "b.py answered while a.py was still stopping"
                );
                break;
            }
            assert!(
                start.elapsed() < BOUND,
                "a.py never reached stopping: {st:#}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(node.ok("ta-echo", json!({})).await["version"], "v2");
        let st = node.ok("autoreload-status", json!({})).await;
        assert_eq!(status_of(&st, "b.py")["reloads"], 0);
        let r = node.ok("autoreload-restart", json!(["b.py"])).await;
        assert_eq!(r["plugin"], "b.py");
        let err = node
            .call("autoreload-restart", json!({}))
            .await
            .expect_err("which one?");
        assert!(
            err.message().contains("a.py") && err.message().contains("b.py"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn two_plugins_on_one_hook_are_chained_like_lightningd_does() {
        let Some((launch, node)) = node_with(&[
            (
                "a.py",
                json!({"methods_prefix": "ta", "hooks": ["peer_connected"]}),
            ),
            (
                "b.py",
                json!({"methods_prefix": "tb", "hooks": ["peer_connected"]}),
            ),
        ])
        .await
        else {
            return;
        };
        let payload = json!({"hook": "peer_connected", "payload": {"peer": {"id": "02cc"}}});
        let r = node.ok("dev-hook", payload.clone()).await;
        assert_eq!(r["results"], json!([{"result": "continue"}]));
        for m in ["ta-state", "tb-state"] {
            let st = node.ok(m, json!({})).await;
            assert_eq!(st["hooks"].as_array().map(Vec::len), Some(1), "{m}: {st:#}");
        }
        // A result other than continue ends the chain.
        let stop = json!({"result": "disconnect", "error_message": "not you"});
        write_testplugin(
            &launch.path().join("a.py"),
            &json!({"methods_prefix": "ta", "hooks": ["peer_connected"], "hook_result": stop}),
        );
        let start = std::time::Instant::now();
        loop {
            let st = node.ok("autoreload-status", json!(["a.py"])).await;
            if st["plugins"][0]["reloads"] == 1 && st["plugins"][0]["state"] == "serving" {
                break;
            }
            assert!(start.elapsed() < BOUND, "{st:#}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let r = node.ok("dev-hook", payload).await;
        assert_eq!(r["results"], json!([stop]));
        let st = node.ok("tb-state", json!({})).await;
        assert_eq!(
            st["hooks"].as_array().map(Vec::len),
            Some(1),
            "b.py was not asked: {st:#}"
        );
    }

    #[tokio::test]
    async fn a_name_clash_refuses_the_second_plugin_and_names_both() {
        let Some((_launch, node)) =
            node_with(&[("a.py", json!({})), ("b.py", json!({"version": "b"}))]).await
        else {
            return;
        };
        assert_eq!(node.ok("tp-echo", json!({})).await["version"], "v1");
        let st = node
            .ok("autoreload-status", json!({"plugin": "b.py"}))
            .await;
        let b = &st["plugins"][0];
        assert_eq!(b["state"], "down");
        let why = b["down_reason"].as_str().unwrap();
        assert!(
            why.contains("a.py")
                && why.contains("method 'tp-echo'")
                && why.contains("option 'tp-greeting'"),
            "{why}"
        );
        assert_eq!(node.host_entry().await["active"], true);
        let err = node
            .call("autoreload-restart", json!(["b.py"]))
            .await
            .expect_err("refused");
        assert!(err.message().contains("refused"), "{err}");
    }

    #[tokio::test]
    async fn native_and_wasm_side_by_side() {
        let launch = tempdir();
        write_testplugin(
            &launch.path().join("n.py"),
            &json!({"methods_prefix": "tn"}),
        );
        write_atomically(&launch.path().join("g.wasm"), &testguest_version("w1"));
        let Some(node) = NodeBuilder::new()
            .launch_dir(launch.path())
            .arg("--autoreload-plugin=n.py")
            .arg("--autoreload-plugin=g.wasm")
            .start()
            .await
            .expect("starts")
        else {
            return;
        };
        assert_eq!(node.ok("tn-echo", json!({})).await["version"], "v1");
        assert_eq!(node.ok("tg-version", json!({})).await["version"], "w1");
        write_atomically(&launch.path().join("g.wasm"), &testguest_version("w2"));
        let start = std::time::Instant::now();
        while node.ok("tg-version", json!({})).await["version"] != "w2" {
            assert!(start.elapsed() < BOUND, "the wasm plugin never swapped");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let st = node.ok("autoreload-status", json!({})).await;
        assert_eq!(
            status_of(&st, "n.py")["generation"],
            1,
            "the native one was not touched"
        );
        assert_eq!(status_of(&st, "g.wasm")["backend"], "wasm");
    }
}

/// Registering a changed manifest without restarting lightningd.
mod reregister {
    use super::*;

    #[tokio::test]
    async fn a_new_method_is_registered_through_the_wrapper() {
        let launch = tempdir();
        let plugin = launch.path().join("p.py");
        write_testplugin(&plugin, &json!({}));
        let wrapper = write_wrapper(&launch.path().join("autoreload-p"), &plugin);
        let Some(node) = NodeBuilder::new()
            .without_host()
            .launch_dir(launch.path())
            .standin_only()
            .start()
            .await
            .expect("starts")
        else {
            return;
        };
        node.ok("plugin", json!({"subcommand": "start", "plugin": wrapper}))
            .await;
        assert_eq!(node.ok("tp-echo", json!({})).await["version"], "v1");
        let methods = json!([
            {"name": "tp-echo", "usage": "", "description": "echo"},
            {"name": "tp-new", "usage": "", "description": "new"},
        ]);
        write_testplugin(
            &plugin,
            &json!({"version": "v2", "manifest_extra": {"rpcmethods": methods}}),
        );
        node.wait_status("v2 serving", |s| {
            s["reloads"] == 1 && s["state"] == "serving"
        })
        .await;
        let before = node
            .call("tp-new", json!({}))
            .await
            .expect_err("not registered yet");
        assert!(
            !before.message().contains("unknown method tp-new"),
            "{before}"
        );
        // Answered before lightningd restarts the host, or -4 if it was faster.
        match node.call("autoreload-reregister", json!({})).await {
            Ok(r) => assert_eq!(r["wrapper"], json!(wrapper), "{r}"),
            Err(e) => assert_eq!(e.code(), -4, "{e}"),
        }
        tp_new_reaches_the_plugin(&node).await;
        assert_eq!(node.ok("tp-echo", json!({})).await["version"], "v2");
        assert_eq!(node.host_entry().await["active"], true);
    }

    /// Waits until lightningd passes `tp-new` on to the plugin, which says
    /// it has no such method (the test plugin only declares it).
    async fn tp_new_reaches_the_plugin(node: &Node) {
        let start = std::time::Instant::now();
        loop {
            match node.call("tp-new", json!({})).await {
                Err(e) if e.message().contains("unknown method tp-new") => return,
                other => assert!(
                    start.elapsed() < BOUND,
                    "tp-new never registered: {other:?}"
                ),
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn with_the_option_a_new_method_registers_itself() {
        let launch = tempdir();
        let plugin = launch.path().join("p.py");
        write_testplugin(&plugin, &json!({}));
        let wrapper = write_wrapper(&launch.path().join("autoreload-p"), &plugin);
        let Some(node) = NodeBuilder::new()
            .launch_dir(launch.path())
            .without_host()
            .arg(format!("--plugin={}", wrapper.display()))
            .arg("--autoreload-reregister-on-change=true")
            .standin_only()
            .start()
            .await
            .expect("starts")
        else {
            return;
        };
        assert_eq!(node.ok("tp-echo", json!({})).await["version"], "v1");
        let methods = json!([
            {"name": "tp-echo", "usage": "", "description": "echo"},
            {"name": "tp-new", "usage": "", "description": "new"},
        ]);
        write_testplugin(
            &plugin,
            &json!({"version": "v2", "manifest_extra": {"rpcmethods": methods, "dynamic": true}}),
        );
        tp_new_reaches_the_plugin(&node).await;
        node.wait_log("re-registering: lightningd restarts cln-autoreload")
            .await;
    }

    #[tokio::test]
    async fn a_host_started_directly_says_how_to_re_register() {
        let launch = tempdir();
        write_testplugin(&launch.path().join("p.py"), &json!({}));
        let Some(node) = NodeBuilder::new()
            .launch_dir(launch.path())
            .arg("--autoreload-plugin=p.py")
            .standin_only()
            .start()
            .await
            .expect("starts")
        else {
            return;
        };
        let err = node
            .call("autoreload-reregister", json!({}))
            .await
            .expect_err("no wrapper");
        assert!(err.message().contains("wrapper script"), "{err}");
        assert_eq!(node.ok("tp-echo", json!({})).await["version"], "v1");
    }
}

/// Build on save.
mod build_on_save {
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
}

/// Plugins written with the official cln-plugin crate; what a stopping
/// generation says.
mod clnplugin;
/// Unmodified plugins by others, from the lightningd/plugins mirror.
mod community;
mod dbwrite;
mod hostile;
/// The protocol crate's facts checked against lightningd's source.
mod protocol;
mod rebuild_loop;
/// reckless (lightningd's plugin manager) installing the host.
mod reckless;
mod reload;
/// Native plugins in a Landlock sandbox.
mod sandbox;
mod sandbox_rpc;
/// `cln-autoreload new`: the three templates, end to end.
mod scaffold;
/// A short soak: steady mixed load while the plugin is reloaded and crashed
/// again and again. Nothing hangs, nothing is answered twice, and every
/// error says why. (The long version is the bench target's job.)
mod soak;
mod standin_bytes;
mod takes_in_init;
mod wasm_cache;
