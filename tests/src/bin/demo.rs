//! The main job: cln-autoreload doing its job in front of you.
//!
//! Starts a node (the project's lightningd stand-in, or the real lightningd
//! named by `LIGHTNINGD`) with cln-autoreload managing, in turn:
//! 1. a copy of examples/hello-wasm: calls `hello`, edits the source,
//!    runs `cargo build --target wasm32-wasip1`, and shows the rebuilt
//!    module hot-swapped inside the running host, its call counter carried
//!    over;
//! 2. a copy of examples/hello-py/hello.py (pyln-client): edits the file
//!    and shows the reload, make-before-break, the counter carried over.

use anyhow::{bail, Context, Result};
use cln_autoreload_tests::{
    build_copied_wasm, build_copied_wasm_showing_progress, copy_hello_wasm, host_bin, root,
    target_dir, tempdir, Node, NodeBuilder,
};
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let lightningd =
        std::env::var("LIGHTNINGD").unwrap_or_else(|_| "the lightningd stand-in".into());
    println!("== cln-autoreload demo, with {lightningd}\n");
    wasm_scene().await?;
    println!();
    python_scene().await?;
    println!("\n== done: lightningd never restarted, and no call was lost.");
    Ok(())
}

async fn start(launch: &Path, plugin: &str) -> Result<Node> {
    println!(
        "$ lightningd --plugin={} --autoreload-plugin={plugin}",
        host_bin().display()
    );
    NodeBuilder::new()
        .launch_dir(launch)
        .arg(format!("--autoreload-plugin={plugin}"))
        .start()
        .await?
        .context("the node did not start")
}

async fn status(node: &Node) -> Value {
    node.ok("autoreload-status", json!({})).await["plugins"][0].clone()
}

/// Waits for a generation after `before` to serve; returns its status.
async fn swapped(node: &Node, before: u64, since: Instant) -> Result<Value> {
    loop {
        let s = status(node).await;
        if s["state"] == "serving" && s["generation"].as_u64().unwrap_or(0) > before {
            return Ok(s);
        }
        if since.elapsed() > Duration::from_secs(60) {
            bail!("no reload within 60s: {s}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn wasm_scene() -> Result<()> {
    println!("-- 1. a Rust plugin built for wasm32-wasip1, run inside the host by wasmtime");
    let krate = tempdir();
    let main_rs = copy_hello_wasm(krate.path());
    println!(
        "$ cargo build --target wasm32-wasip1   (a copy of examples/hello-wasm in {})",
        krate.path().display()
    );
    // The first time, cargo compiles the SDK's dependencies for
    // wasm32-wasip1 into a target dir kept for later runs: show it.
    let first = !target_dir()
        .join("example-copies/wasm32-wasip1/debug/hello-wasm.wasm")
        .exists();
    let wasm = if first {
        println!(
            "(the first time: serde and the guest SDK compile for wasm32-wasip1, a minute or so)"
        );
        build_copied_wasm_showing_progress(krate.path(), false)
    } else {
        build_copied_wasm(krate.path(), false)
    };
    let node = start(krate.path(), &wasm.display().to_string()).await?;
    for _ in 0..2 {
        println!(
            "$ lightning-cli hello world\n  {}",
            node.ok("hello", json!(["world"])).await
        );
    }
    let before = status(&node).await["generation"].as_u64().unwrap_or(0);
    println!(
        "editing src/main.rs (VERSION \"1\" -> \"2\") and rebuilding, while calls keep coming..."
    );
    std::fs::write(
        krate.path().join("src/main.rs"),
        main_rs.replace(
            "const VERSION: &str = \"1\";",
            "const VERSION: &str = \"2\";",
        ),
    )?;
    let t = Instant::now();
    build_copied_wasm(krate.path(), false);
    let built = t.elapsed();
    let s = swapped(&node, before, t).await?;
    println!(
        "cargo build took {:.1} s; the host noticed the new module, compiled it ({:.1} ms, winch), started it beside the old one and swapped: {:.1} ms from the file settling to generation {} serving",
        built.as_secs_f64(),
        s["last_compile"]["duration_ms"].as_f64().unwrap_or(0.0),
        s["last_reload"]["duration_ms"].as_f64().unwrap_or(0.0),
        s["generation"]
    );
    let r = node.ok("hello", json!(["world"])).await;
    println!("$ lightning-cli hello world\n  {r}");
    println!(
        "\"calls\": {} — the new version took the old one's state (handed over in {:.1} ms), so the count goes on",
        r["calls"],
        s["last_handover"]["duration_ms"].as_f64().unwrap_or(0.0)
    );
    node.stop().await?;
    Ok(())
}

async fn python_scene() -> Result<()> {
    println!("-- 2. a Python plugin (pyln-client), run as a child process");
    let python_ok = std::process::Command::new("python3")
        .args(["-c", "import pyln.client"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !python_ok {
        bail!("this part needs pyln-client: pip install -r examples/hello-py/requirements.txt");
    }
    let launch = tempdir();
    let plugin = launch.path().join("hello.py");
    std::fs::copy(root().join("examples/hello-py/hello.py"), &plugin).context("copy hello.py")?;
    // The state helper beside it, as docs/state.md says to do (or pip
    // install ./python).
    std::fs::copy(
        root().join("python/cln_autoreload_state.py"),
        launch.path().join("cln_autoreload_state.py"),
    )
    .context("copy the state helper")?;
    let node = start(launch.path(), "hello.py").await?;
    for _ in 0..2 {
        println!(
            "$ lightning-cli hello world\n  {}",
            node.ok("hello", json!(["world"])).await
        );
    }
    let before = status(&node).await["generation"].as_u64().unwrap_or(0);
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
    let s = swapped(&node, before, saved).await?;
    println!(
        "reloaded: {:.1} ms from the file settling to generation {} serving (most of it is Python importing pyln); the old process answered every call meanwhile, then handed its state over",
        s["last_reload"]["duration_ms"].as_f64().unwrap_or(0.0),
        s["generation"]
    );
    let r = node.ok("hello", json!(["world"])).await;
    println!("$ lightning-cli hello world\n  {r}");
    println!("\"calls\": {} — counted across the reload", r["calls"]);
    println!(
        "$ lightning-cli autoreload-status\n{}",
        serde_json::to_string_pretty(&status(&node).await)?
    );
    node.stop().await?;
    Ok(())
}
