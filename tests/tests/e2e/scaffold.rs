//! `cln-autoreload new`: each template is created, built where it needs a
//! build, loaded through the stand-in, called (its method, its hook, its
//! notification), edited and reloaded, and its own tests pass; PATHs and
//! names it must refuse are refused with nothing written. And reckless,
//! Core Lightning's plugin manager, run from lightningd's own source,
//! finds and installs the host from a clone of this repository.
//!
//! The Rust projects build into target directories kept between runs
//! (`<target>/scaffold-*`, reached through a `target` symlink in the
//! project, which is where cargo and the host's build inference look), so
//! that only the first run pays for cln-plugin's and the SDK's
//! dependencies.

use super::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// `cln-autoreload new ARGS...` run in `cwd`.
fn new(cwd: &Path, args: &[&str]) -> Output {
    Command::new(host_bin())
        .arg("new")
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .output()
        .expect("cln-autoreload runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Creates a `lang` project `name` in `parent`; checks that it printed the
/// lightningd line and the `cln-autoreload dev` line for `plugin` (the
/// file lightningd is to run, relative to the project).
fn created(parent: &Path, lang: &str, name: &str, plugin: &str) -> PathBuf {
    let out = new(parent, &["--lang", lang, name]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}{stderr}");
    let dir = parent
        .join(name)
        .canonicalize()
        .expect("the project exists");
    let host = host_bin().canonicalize().expect("the host binary");
    let plugin = dir.join(plugin);
    let lightningd = format!(
        "lightningd --plugin={} --autoreload-plugin={}",
        host.display(),
        plugin.display()
    );
    let dev = format!("{} dev {}", host.display(), plugin.display());
    assert!(
        stdout.contains(&lightningd) && stdout.contains(&dev),
        "{stdout}"
    );
    for f in [".gitignore", "README.md"] {
        assert!(dir.join(f).is_file(), "{f} missing in {}", dir.display());
    }
    dir
}

/// Points `dir/target` at a target directory kept between test runs.
fn kept_target(dir: &Path, which: &str) {
    let kept = target_dir().join(which);
    std::fs::create_dir_all(&kept).expect("mkdir the kept target dir");
    std::os::unix::fs::symlink(&kept, dir.join("target")).expect("symlink target");
}

/// `cargo ARGS` in `dir`, as a plugin author runs it there.
fn cargo(dir: &Path, args: &[&str], env: &[(&str, &Path)]) -> Output {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.args(args)
        .current_dir(dir)
        .env_remove("CARGO_TARGET_DIR")
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("cargo runs");
    assert!(
        out.status.success(),
        "cargo {args:?} in {} failed:\n{}{}",
        dir.display(),
        text(&out.stdout),
        text(&out.stderr)
    );
    out
}

/// Calls the plugin's method, hook and notification through the node;
/// returns the method's answer to `NAME-hello Alice`.
async fn exercise(node: &Node, name: &str) -> Value {
    let r = node.ok(&format!("{name}-hello"), json!(["Alice"])).await;
    assert_eq!(r["greeting"], "Hello, Alice!", "{r}");
    let hook = node
        .ok(
            "dev-hook",
            json!({"hook": "peer_connected", "payload": {"peer": {"id": "02aa"}}}),
        )
        .await;
    assert_eq!(hook["results"], json!([{"result": "continue"}]), "{hook}");
    node.wait_log("peer_connected hook: ").await;
    let sent = node
        .ok(
            "dev-notify",
            json!({"topic": "connect", "payload": {"id": "02bb", "direction": "in", "address": {}}}),
        )
        .await;
    assert_eq!(sent["sent"], 1, "one plugin subscribed: {sent}");
    node.wait_log("connect notification: ").await;
    r
}

/// Waits until `method` answers with version `want`.
async fn wait_version(node: &Node, method: &str, want: &str, bound: Duration) -> Value {
    let start = std::time::Instant::now();
    loop {
        if let Ok(v) = node.call(method, json!(["Alice"])).await {
            if v["version"] == want {
                return v;
            }
        }
        if start.elapsed() > bound {
            let s = node.ok("autoreload-status", json!({})).await;
            panic!("{method} never answered version {want} within {bound:?}: {s:#}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Changes `VERSION = "1"` (Python) or `VERSION: &str = "1"` (Rust) to 2.
fn bump_version(file: &Path) {
    let src = std::fs::read_to_string(file).expect("read the source");
    let bumped = src
        .replacen("VERSION = \"1\"", "VERSION = \"2\"", 1)
        .replacen("VERSION: &str = \"1\"", "VERSION: &str = \"2\"", 1);
    assert_ne!(src, bumped, "no VERSION in {}", file.display());
    std::fs::write(file, bumped).expect("save the source");
}

fn python_has(module: &str) -> bool {
    Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[tokio::test]
async fn python_template_runs_reloads_and_keeps_its_state() {
    let parent = tempdir();
    let dir = created(parent.path(), "python", "greeter", "greeter.py");
    let reqs = std::fs::read_to_string(dir.join("requirements.txt")).expect("requirements");
    assert!(
        reqs.contains("pyln-client") && reqs.contains("cln-autoreload-state"),
        "{reqs}"
    );
    // The state helper, as `pip install -r requirements.txt` would put it.
    let Some(node) = NodeBuilder::new()
        .launch_dir(&dir)
        .arg("--autoreload-plugin=greeter.py")
        .env("PYTHONPATH", root().join("python").display().to_string())
        .standin_only()
        .start()
        .await
        .expect("starts")
    else {
        return;
    };
    let first = exercise(&node, "greeter").await;
    assert_eq!(
        (&first["version"], &first["calls"]),
        (&json!("1"), &json!(1))
    );
    bump_version(&dir.join("greeter.py"));
    let second = wait_version(&node, "greeter-hello", "2", BOUND).await;
    // Every call counts, the ones that found version 1 included.
    assert!(
        second["calls"].as_u64() > first["calls"].as_u64(),
        "the state came over: {first} then {second}"
    );
    let warned = node
        .logs()
        .await
        .into_iter()
        .any(|l| l.contains("cln_autoreload_state is not installed"));
    assert!(!warned, "the helper was there");
    node.stop().await.expect("stops");

    // The generated pytest, through `cln-autoreload dev`.
    if python_has("pytest") {
        let out = Command::new("python3")
            .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
            .current_dir(&dir)
            .env("CLN_AUTORELOAD", host_bin())
            .env("PYTHONPATH", root().join("python"))
            .stdin(Stdio::null())
            .output()
            .expect("pytest runs");
        let said = text(&out.stdout) + &text(&out.stderr);
        assert!(out.status.success(), "{said}");
        assert!(said.contains("2 passed"), "{said}");
    } else {
        skip("pytest is not installed: the generated test_greeter.py was not run");
    }
}

/// Without the state helper, the Python plugin says so in the log.
#[tokio::test]
async fn python_template_says_when_the_state_helper_is_missing() {
    if python_has("cln_autoreload_state") {
        skip("cln_autoreload_state is installed here: its absence cannot be shown");
        return;
    }
    let parent = tempdir();
    let dir = created(parent.path(), "python", "forgetful", "forgetful.py");
    let Some(node) = NodeBuilder::new()
        .launch_dir(&dir)
        .arg("--autoreload-plugin=forgetful.py")
        .env_remove("PYTHONPATH")
        .start()
        .await
        .expect("starts")
    else {
        return;
    };
    let line = node.wait_log("cln_autoreload_state is not installed").await;
    assert!(line.contains("requirements.txt"), "{line}");
    assert_eq!(
        node.ok("forgetful-hello", json!([])).await["greeting"],
        "Hello, world!"
    );
}

#[tokio::test]
async fn rust_template_builds_runs_and_rebuilds_on_save() {
    let parent = tempdir();
    let dir = created(
        parent.path(),
        "rust",
        "clnp-greeter",
        "target/debug/clnp-greeter",
    );
    kept_target(&dir, "scaffold-rust");
    // cln-plugin and its dependencies are in cargo's cache (the workspace's
    // hello-cln-plugin uses them): no network.
    cargo(&dir, &["build", "--offline", "--quiet"], &[]);
    let Some(node) = NodeBuilder::new()
        .launch_dir(&dir)
        .arg("--autoreload-plugin=target/debug/clnp-greeter")
        .env_remove("CARGO_TARGET_DIR")
        .standin_only()
        .start()
        .await
        .expect("starts")
    else {
        return;
    };
    node.wait_log("cargo build -p clnp-greeter --bin clnp-greeter")
        .await;
    let first = exercise(&node, "clnp-greeter").await;
    assert_eq!(first["version"], "1", "{first}");
    bump_version(&dir.join("src/main.rs"));
    wait_version(&node, "clnp-greeter-hello", "2", Duration::from_secs(600)).await;
    let s = node.ok("autoreload-status", json!({})).await["plugins"][0].clone();
    assert_eq!(s["build"]["last"]["ok"], true, "{s:#}");
    node.stop().await.expect("stops");

    // The generated test, through `cln-autoreload dev`.
    let out = cargo(
        &dir,
        &["test", "--offline"],
        &[("CLN_AUTORELOAD", &host_bin())],
    );
    let said = text(&out.stdout);
    assert!(said.contains("2 passed"), "{said}");
}

#[tokio::test]
async fn wasm_template_builds_with_plain_cargo_build_and_swaps_on_save() {
    let parent = tempdir();
    let wasm = "target/wasm32-wasip1/debug/wasm-greeter.wasm";
    let dir = created(parent.path(), "wasm", "wasm-greeter", wasm);
    // Made outside a checkout by a host built from this one: the SDK by
    // path from here.
    let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).expect("Cargo.toml");
    let sdk = root().join("guest-sdk").canonicalize().expect("guest-sdk");
    assert!(
        manifest.contains(&format!("path = {:?}", sdk.display().to_string())),
        "{manifest}"
    );
    kept_target(&dir, "scaffold-wasm");
    // No --target: the project names it.
    cargo(&dir, &["build", "--offline", "--quiet"], &[]);
    assert!(dir.join(wasm).is_file(), "a plain cargo build made {wasm}");
    let Some(node) = NodeBuilder::new()
        .launch_dir(&dir)
        .arg(format!("--autoreload-plugin={wasm}"))
        .env_remove("CARGO_TARGET_DIR")
        .standin_only()
        .start()
        .await
        .expect("starts")
    else {
        return;
    };
    node.wait_log("cargo build --target wasm32-wasip1 -p wasm-greeter --bin wasm-greeter")
        .await;
    let first = exercise(&node, "wasm-greeter").await;
    assert_eq!(
        (&first["version"], &first["calls"]),
        (&json!("1"), &json!(1))
    );
    let st = node.ok("autoreload-status", json!({})).await["plugins"][0].clone();
    assert_eq!(st["backend"], "wasm", "{st:#}");
    bump_version(&dir.join("src/main.rs"));
    let second = wait_version(&node, "wasm-greeter-hello", "2", Duration::from_secs(300)).await;
    assert!(
        second["calls"].as_u64() > first["calls"].as_u64(),
        "the state came over: {first} then {second}"
    );
    node.stop().await.expect("stops");

    // The generated test runs natively (the build target is wasm).
    let host_triple = Command::new("rustc")
        .arg("-vV")
        .current_dir(&dir)
        .output()
        .ok()
        .and_then(|o| {
            text(&o.stdout)
                .lines()
                .find_map(|l| l.strip_prefix("host: ").map(str::to_owned))
        })
        .expect("rustc -vV names the host");
    let out = cargo(
        &dir,
        &["test", "--offline", "--target", &host_triple],
        &[("CLN_AUTORELOAD", &host_bin())],
    );
    let said = text(&out.stdout);
    assert!(said.contains("2 passed"), "{said}");
}

#[tokio::test]
async fn refuses_a_non_empty_path_and_names_lightningd_would_not_take() {
    let parent = tempdir();
    let taken = parent.path().join("taken");
    std::fs::create_dir(&taken).expect("mkdir");
    std::fs::write(taken.join("notes.txt"), "mine").expect("write");
    let out = new(parent.path(), &["taken"]);
    assert_eq!(out.status.code(), Some(2));
    let said = text(&out.stderr);
    assert!(
        said.contains("taken already exists and is not empty"),
        "{said}"
    );
    let left: Vec<_> = std::fs::read_dir(&taken).expect("ls").collect();
    assert_eq!(left.len(), 1, "nothing was written beside notes.txt");

    for (name, why) in [
        ("My.Plugin", "'M' is not allowed"),
        ("my.plugin", "'.' is not allowed"),
        ("9lives", "must start with a letter"),
        ("autoreload-x", "cln-autoreload's own"),
    ] {
        let out = new(parent.path(), &["--lang", "rust", name]);
        let said = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {said}");
        assert!(
            said.contains(&format!("cannot use `{name}` as a plugin name")) && said.contains(why),
            "{name}: {said}"
        );
        assert!(!parent.path().join(name).exists(), "{name} was created");
    }

    // An empty directory is fine (as `git clone` or `mkdir` left it).
    std::fs::create_dir(parent.path().join("empty")).expect("mkdir");
    let out = new(parent.path(), &["empty"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(parent.path().join("empty/empty.py").is_file());
}
