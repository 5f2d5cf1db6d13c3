//! The main job: cln-autoreload doing its job in front of you.
//!
//! Starts a node (the project's lightningd stand-in, or the real lightningd
//! named by `LIGHTNINGD`) with cln-autoreload managing a copy of
//! examples/hello-py/hello.py, calls `hello`, edits the plugin file, and
//! shows the new answer and how long the reload took.

use anyhow::{bail, Context, Result};
use cln_autoreload_tests::{host_bin, root, tempdir, NodeBuilder};
use serde_json::json;
use std::time::{Duration, Instant};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let python_ok = std::process::Command::new("python3")
        .args(["-c", "import pyln.client"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !python_ok {
        bail!(
            "the demo plugin needs pyln-client: pip install -r examples/hello-py/requirements.txt"
        );
    }
    let host = host_bin();
    let launch = tempdir();
    let plugin = launch.path().join("hello.py");
    std::fs::copy(root().join("examples/hello-py/hello.py"), &plugin).context("copy hello.py")?;
    let lightningd =
        std::env::var("LIGHTNINGD").unwrap_or_else(|_| "the lightningd stand-in".into());
    println!("== cln-autoreload demo, with {lightningd}");
    println!(
        "   lightningd --plugin={} --autoreload-plugin=hello.py   (from {})",
        host.display(),
        launch.path().display()
    );
    let node = NodeBuilder::new()
        .launch_dir(launch.path())
        .arg("--autoreload-plugin=hello.py")
        .start()
        .await?
        .context("node did not start")?;

    let show = |v: &serde_json::Value| v.to_string();
    println!(
        "$ lightning-cli hello world\n  {}",
        show(&node.ok("hello", json!(["world"])).await)
    );

    let before = node.ok("autoreload-status", json!({})).await["plugins"][0]["generation"]
        .as_u64()
        .unwrap_or(0);
    let text = std::fs::read_to_string(&plugin)?;
    let edited = text.replace(
        "\"{}, {}!\"",
        "\"{}, {}! This answer was edited while lightningd kept running.\"",
    );
    if edited == text {
        bail!("could not find the line to edit in hello.py");
    }
    println!("editing hello.py (the answer gains a sentence) and saving it...");
    let saved = Instant::now();
    std::fs::write(&plugin, edited)?;
    let status = loop {
        let s = node.ok("autoreload-status", json!({})).await["plugins"][0].clone();
        if s["state"] == "serving" && s["generation"].as_u64().unwrap_or(0) > before {
            break s;
        }
        if saved.elapsed() > Duration::from_secs(30) {
            bail!("no reload within 30s: {s}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let seen = saved.elapsed();
    println!(
        "reloaded: generation {}, {:.1} ms from the file settling to the new version serving ({:.0} ms after the save, including the {} ms settle window)",
        status["generation"],
        status["last_reload"]["duration_ms"].as_f64().unwrap_or(0.0),
        seen.as_secs_f64() * 1000.0,
        50
    );
    println!(
        "$ lightning-cli hello world\n  {}",
        show(&node.ok("hello", json!(["world"])).await)
    );
    let s = node.ok("autoreload-status", json!({})).await;
    println!(
        "$ lightning-cli autoreload-status\n{}",
        serde_json::to_string_pretty(&s)?
    );
    node.stop().await?;
    println!("== done: lightningd never restarted, no call was lost.");
    Ok(())
}
