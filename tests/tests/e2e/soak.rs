//! Soaks: a mixed load (rpc calls, hooks, notifications both ways) while
//! the plugin is reloaded, restarted and crashed at random points; and the
//! host's resources across many reloads. The long versions are the `soak`
//! bin (RELIABILITY.md).

use cln_autoreload_tests::soak::{self, Flavor, Settings};
use std::time::Duration;

/// The seed from `SOAK_SEED` (to try another), else a fixed one: a test
/// run is repeatable; random seeds are the `soak` bin's business.
fn seed() -> u64 {
    std::env::var("SOAK_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_c1a0)
}

async fn mixed(flavor: Flavor) {
    let report = soak::run(&Settings {
        flavor,
        duration: Duration::from_secs(6),
        seed: seed(),
        callers: 4,
        chaos_pause_ms: (20, 250),
    })
    .await;
    let problems = report.problems();
    assert!(
        problems.is_empty(),
        "{problems:#?}\n{}\n(replay with SOAK_SEED={})",
        report.summary(),
        report.seed
    );
    // Every chaos action ended with a new generation serving, under load.
    let actions: u64 = report
        .chaos
        .iter()
        .filter(|(k, _)| !k.contains("crash loop"))
        .map(|(_, n)| n)
        .sum();
    assert!(
        actions > 0 && report.generations >= actions,
        "{}",
        report.summary()
    );
}

#[tokio::test]
async fn native_mixed_load_under_reloads_restarts_and_crashes() {
    mixed(Flavor::Native).await;
}

#[tokio::test]
async fn wasm_mixed_load_under_swaps_restarts_and_traps() {
    mixed(Flavor::Wasm).await;
}

fn check_hygiene(h: &soak::Hygiene) {
    eprintln!("{h:#?}");
    let problems = h.problems();
    assert!(problems.is_empty(), "{problems:#?}\n{h:#?}");
    assert_eq!(h.samples.last().map(|s| s.0), Some(h.reloads));
}

#[tokio::test]
async fn native_host_resources_stay_bounded_over_reloads() {
    check_hygiene(&soak::hygiene(Flavor::Native, 5, 50, 10).await);
}

#[tokio::test]
async fn wasm_host_resources_stay_bounded_over_swaps() {
    check_hygiene(&soak::hygiene(Flavor::Wasm, 5, 50, 10).await);
}

/// While a new `.wasm` version starts beside the serving one (make before
/// break), the serving instance still gets the notifications it subscribed
/// to: one version runs all along, so none may be dropped. (Found by the
/// soak: the host dropped them for the whole swap.)
#[tokio::test]
async fn wasm_notifications_reach_the_serving_instance_during_swaps() {
    use cln_autoreload_tests::*;
    use serde_json::json;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let launch = tempdir();
    let module = launch.path().join("g.wasm");
    write_atomically(&module, &testguest_version("n0"));
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
    let stop = Arc::new(AtomicBool::new(false));
    let notifier = {
        let (node, stop) = (node.clone(), stop.clone());
        tokio::spawn(async move {
            let mut sent = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let r = node
                    .ok(
                        "dev-notify",
                        json!({"topic": "connect", "payload": {"id": "02dd"}}),
                    )
                    .await;
                sent += r["sent"].as_u64().unwrap_or(0);
            }
            sent
        })
    };
    for round in 1..=3 {
        let before = node.ok("autoreload-status", json!({})).await["plugins"][0]["generation"]
            .as_u64()
            .unwrap_or(0);
        write_atomically(&module, &testguest_version(&format!("n{round}")));
        node.wait_status("the new version serves", |s| {
            s["state"] == "serving" && s["generation"].as_u64().unwrap_or(0) > before
        })
        .await;
    }
    stop.store(true, Ordering::SeqCst);
    let sent = notifier.await.expect("the notifier");
    let s = node.ok("autoreload-status", json!({})).await;
    assert!(sent > 0);
    assert_eq!(s["plugins"][0]["dropped_notifications"], 0, "{s:#}");
}

/// The soak's "answered twice" figure is the stand-in's count of responses
/// to an id nothing waits for: a plugin loaded directly that writes one
/// shows up in it (so a zero from the soak means none came).
#[tokio::test]
async fn the_standin_counts_responses_to_an_id_nothing_waits_for() {
    use cln_autoreload_tests::*;
    use serde_json::json;
    let launch = tempdir();
    let plugin = launch.path().join("direct.py");
    write_testplugin(&plugin, &json!({"version": "d1"}));
    let Some(node) = NodeBuilder::new()
        .without_host()
        .launch_dir(launch.path())
        .arg(format!("--plugin={}", plugin.display()))
        .standin_only()
        .start()
        .await
        .expect("starts")
    else {
        return;
    };
    assert_eq!(
        node.ok("dev-counters", json!({})).await["unknown_id_responses"],
        0
    );
    node.ok("tp-echo", json!({})).await;
    node.ok(
        "tp-print",
        json!({"text": "{\"jsonrpc\":\"2.0\",\"id\":\"nobody\",\"result\":{}}\n\n"}),
    )
    .await;
    // The stray response came on the same stdout before tp-print's own:
    // it has been seen by now.
    assert_eq!(
        node.ok("dev-counters", json!({})).await["unknown_id_responses"],
        1
    );
}
