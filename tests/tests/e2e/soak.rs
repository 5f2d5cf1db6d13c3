//! Soaks: steady load while the plugin is reloaded, restarted and crashed.

use super::*;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Default, Debug)]
struct Tally {
    sent: u64,
    ok: u64,
    errors: BTreeMap<String, u64>,
}

/// The kind of an error, for counting: its message up to the first
/// detail.
fn kind(message: &str) -> String {
    for k in [
        "was reloaded",
        "crashed",
        "is not running",
        "trapped",
        "computed for",
    ] {
        if message.contains(k) {
            return k.to_string();
        }
    }
    message.chars().take(80).collect()
}

async fn load(
    node: Arc<Node>,
    stop: Arc<AtomicBool>,
    tally: Arc<Mutex<Tally>>,
    calls: Vec<(&'static str, Value)>,
) {
    let mut i = 0usize;
    while !stop.load(Ordering::SeqCst) {
        let (method, params) = &calls[i % calls.len()];
        i += 1;
        // `call` fails the test if no answer comes within the bound.
        let r = node.call(method, params.clone()).await;
        let mut t = tally.lock().unwrap();
        t.sent += 1;
        match r {
            Ok(_) => t.ok += 1,
            Err(e) => *t.errors.entry(kind(&e.message())).or_default() += 1,
        }
    }
}

/// Six callers in a closed loop until [`Load::finish`].
struct Load {
    stop: Arc<AtomicBool>,
    tally: Arc<Mutex<Tally>>,
    workers: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(node: &Arc<Node>, calls: Vec<(&'static str, Value)>) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let tally = Arc::new(Mutex::new(Tally::default()));
        let workers = (0..6)
            .map(|_| {
                tokio::spawn(load(
                    node.clone(),
                    stop.clone(),
                    tally.clone(),
                    calls.clone(),
                ))
            })
            .collect();
        Load {
            stop,
            tally,
            workers,
        }
    }

    async fn finish(self, allowed: &[&str]) {
        self.stop.store(true, Ordering::SeqCst);
        for w in self.workers {
            w.await.unwrap();
        }
        check(&self.tally.lock().unwrap(), allowed);
    }
}

fn check(tally: &Tally, allowed: &[&str]) {
    eprintln!("soak: {tally:?}");
    assert!(tally.sent > 0 && tally.ok > 0, "{tally:?}");
    for k in tally.errors.keys() {
        assert!(
            allowed.contains(&k.as_str()),
            "unexpected error kind {k:?}: {tally:?}"
        );
    }
}

#[tokio::test]
async fn native_plugin_reloaded_and_crashed_under_load() {
    let launch = tempdir();
    let plugin = launch.path().join("p.py");
    let config = |v: &str, extra: Value| {
        let mut c =
            json!({"version": v, "hooks": ["peer_connected"], "subscriptions": ["connect"]});
        if let (Some(c), Some(e)) = (c.as_object_mut(), extra.as_object()) {
            c.extend(e.clone());
        }
        c
    };
    write_testplugin(&plugin, &config("v0", json!({})));
    let Some(node) = NodeBuilder::new()
        .launch_dir(launch.path())
        .arg("--autoreload-plugin=p.py")
        .arg("--autoreload-grace-ms=300")
        .standin_only()
        .start()
        .await
        .expect("starts")
    else {
        return;
    };
    let node = Arc::new(node);
    let calls = vec![
        ("tp-echo", json!({"x": 1})),
        (
            "dev-hook",
            json!({"hook": "peer_connected", "payload": {"peer": {"id": "02dd"}}}),
        ),
        ("tp-sleep", json!({"ms": 20})),
        (
            "dev-notify",
            json!({"topic": "connect", "payload": {"id": "02dd"}}),
        ),
    ];
    let load = Load::start(&node, calls);
    let mut gen = node.ok("autoreload-status", json!({})).await["plugins"][0]["generation"]
        .as_u64()
        .unwrap();
    for round in 0..10 {
        let reloads = match round % 5 {
            0 => {
                write_testplugin(&plugin, &config(&format!("v{round}"), json!({})));
                true
            }
            1 => node.call("autoreload-restart", json!({})).await.is_ok(),
            2 => node.call("tp-crash", json!({})).await.is_err(),
            // A version that dies in init, then a good one.
            3 => {
                write_testplugin(&plugin, &config("bad", json!({"crash_at": "init"})));
                node.wait_status("the bad version refused", |s| s["state"] == "down")
                    .await;
                write_testplugin(&plugin, &config(&format!("v{round}"), json!({})));
                true
            }
            // Half a message on stdout: the host must not lose the
            // answers that follow it.
            _ => {
                let r = node
                    .call(
                        "tp-print",
                        json!({"text": "{\"jsonrpc\":\"2.0\",\"id\":\"half"}),
                    )
                    .await;
                assert!(r.is_ok(), "{r:?}");
                false
            }
        };
        if reloads {
            let s = node
                .wait_status("serving again", |s| {
                    s["state"] == "serving" && s["generation"].as_u64().unwrap_or(0) > gen
                })
                .await;
            gen = s["generation"].as_u64().unwrap();
        }
    }
    load.finish(&["was reloaded", "crashed", "is not running"])
        .await;
    let logs = node.logs().await.join("\n");
    assert!(
        !logs.contains("unknown id"),
        "something was answered twice or to nobody:\n{logs}"
    );
    assert_eq!(node.host_entry().await["active"], true);
}

#[tokio::test]
async fn wasm_plugin_swapped_and_trapped_under_load() {
    let launch = tempdir();
    let module = launch.path().join("g.wasm");
    write_atomically(&module, &testguest_version("w0"));
    let Some(node) = NodeBuilder::new()
        .launch_dir(launch.path())
        .arg("--autoreload-plugin=g.wasm")
        .standin_only()
        .start()
        .await
        .expect("starts")
    else {
        return;
    };
    let node = Arc::new(node);
    let calls = vec![
        ("tg-echo", json!({"x": 1})),
        (
            "dev-hook",
            json!({"hook": "peer_connected", "payload": {"peer": {"id": "02ee"}}}),
        ),
        (
            "dev-notify",
            json!({"topic": "connect", "payload": {"id": "02ee"}}),
        ),
    ];
    let load = Load::start(&node, calls);
    for round in 0..10 {
        let before = node.ok("autoreload-status", json!({})).await["plugins"][0]["generation"]
            .as_u64()
            .unwrap();
        match round % 3 {
            0 => write_atomically(&module, &testguest_version(&format!("w{round}"))),
            1 => drop(node.call("autoreload-restart", json!({})).await),
            _ => drop(node.call("tg-trap", json!({})).await),
        }
        node.wait_status("serving a new instance", |s| {
            s["state"] == "serving" && s["generation"].as_u64().unwrap_or(0) > before
        })
        .await;
    }
    // Swaps are make-before-break: only the injected traps may cost a
    // call (the ones in flight in the trapping instance).
    load.finish(&["crashed", "trapped"]).await;
    let logs = node.logs().await.join("\n");
    assert!(!logs.contains("unknown id"), "{logs}");
}
