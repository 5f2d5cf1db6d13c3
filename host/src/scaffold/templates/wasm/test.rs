//! Builds the module and runs it under `cln-autoreload dev`, which plays
//! lightningd, then calls its method; no node needed. The build target is
//! wasm32-wasip1, so run the tests natively:
//!
//! ```sh
//! cargo test --target "$(rustc -vV | sed -n 's/^host: //p')"
//! ```
//!
//! cln-autoreload is taken from `CLN_AUTORELOAD`, or else from `PATH`.
#![cfg(not(target_family = "wasm"))]

use cln_autoreload_guest::serde_json::{self, Value};
use std::path::Path;
use std::process::Command;

/// The module, built as a plain `cargo build` builds it.
fn module() -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let built = Command::new(cargo)
        .arg("build")
        .current_dir(dir)
        .status()
        .expect("cargo runs");
    assert!(built.success(), "cargo build failed");
    dir.join("target/wasm32-wasip1/debug/{{name}}.wasm")
        .display()
        .to_string()
}

/// The results of `calls` (each `[METHOD, PARAM...]`) made to the plugin.
fn dev(calls: &[&[&str]], opts: &[&str]) -> Vec<Value> {
    let host = std::env::var("CLN_AUTORELOAD").unwrap_or_else(|_| "cln-autoreload".into());
    let mut cmd = Command::new(&host);
    cmd.arg("dev").arg(module());
    for opt in opts {
        cmd.args(["--opt", opt]);
    }
    for call in calls {
        cmd.arg("--call").args(*call);
    }
    let out = cmd.output().unwrap_or_else(|e| {
        panic!("cannot run {host}: {e} (put cln-autoreload on PATH, or set CLN_AUTORELOAD)")
    });
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("a result is JSON"))
        .collect()
}

#[test]
fn hello_greets_and_counts() {
    let results = dev(&[&["{{name}}-hello", "Alice"], &["{{name}}-hello"]], &[]);
    assert_eq!(results[0]["greeting"], "Hello, Alice!");
    assert_eq!(results[1]["greeting"], "Hello, world!");
    assert_eq!(results[1]["calls"], 2);
}

#[test]
fn the_greeting_option() {
    let results = dev(&[&["{{name}}-hello", "Bob"]], &["{{name}}-greeting=Hi"]);
    assert_eq!(results[0]["greeting"], "Hi, Bob!");
}
