//! Runs the plugin under `cln-autoreload dev`, which plays lightningd, and
//! calls its method: `cargo test`, no node needed. cln-autoreload is taken
//! from `CLN_AUTORELOAD`, or else from `PATH`.

use serde_json::Value;
use std::process::Command;

/// The results of `calls` (each `[METHOD, PARAM...]`) made to the plugin.
fn dev(calls: &[&[&str]], opts: &[&str]) -> Vec<Value> {
    let host = std::env::var("CLN_AUTORELOAD").unwrap_or_else(|_| "cln-autoreload".into());
    let mut cmd = Command::new(&host);
    cmd.arg("dev").arg(env!("CARGO_BIN_EXE_{{name}}"));
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
fn hello_greets() {
    let results = dev(&[&["{{name}}-hello", "Alice"], &["{{name}}-hello"]], &[]);
    assert_eq!(results[0]["greeting"], "Hello, Alice!");
    assert_eq!(results[1]["greeting"], "Hello, world!");
}

#[test]
fn the_greeting_option() {
    let results = dev(&[&["{{name}}-hello", "Bob"]], &["{{name}}-greeting=Hi"]);
    assert_eq!(results[0]["greeting"], "Hi, Bob!");
}
