//! reckless, Core Lightning's plugin manager (`tools/reckless`, a Python
//! script in lightningd's source), installing cln-autoreload the way its
//! docs/getting-started.md tells a new user to: `reckless source add` a clone of this
//! repository, `reckless search cln-autoreload`, `reckless install
//! cln-autoreload`; then the installed host runs a plugin under the
//! stand-in with the `--autoreload-plugin=` line the set-up adds.
//!
//! The script is read from `LIGHTNING_SRC` (a clone of
//! ElementsProject/lightning) or the mirror beside the checkout, at tag
//! [`TAG`]. Like the protocol tests it is `#[ignore]`d, and `.ci/run` runs
//! it with `--ignored` where that source is there.
//!
//! reckless builds with `cargo build --release` in its own copy of the
//! repository, which is wasmtime in release from scratch each time: the
//! test puts a `cargo` first on reckless's PATH that makes that copy's
//! `target` a symlink to a directory kept between runs, then runs the
//! real cargo with reckless's arguments unchanged.

use super::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The lightningd release whose reckless is tested.
const TAG: &str = "v26.06.6";

/// reckless at [`TAG`], written to `dir`; `None` (after a skip note) when
/// there is no lightningd source to read it from.
fn reckless_script(dir: &Path) -> Option<PathBuf> {
    let src = lightning_src()?;
    let out = Command::new("git")
        .arg("-C")
        .arg(&src)
        .args(["show", &format!("{TAG}:tools/reckless")])
        .output()
        .expect("git runs");
    if !out.status.success() {
        skip(format!(
            "no tools/reckless at {TAG} in {}: {}",
            src.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
        return None;
    }
    let script = dir.join("reckless");
    std::fs::write(&script, out.stdout).expect("write reckless");
    Some(script)
}

fn git(dir: &Path, args: &[&str]) -> Output {
    let out = Command::new("git")
        .args(["-c", "user.name=test", "-c", "user.email=test@example.com"])
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A git repository at `dest` holding this working tree as it is (tracked
/// and new files, not what .gitignore leaves out), committed: a clone
/// that includes the changes not committed yet.
fn clone_of_this_repository(dest: &Path) {
    let listed = git(
        &root(),
        &[
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
        ],
    );
    for rel in listed.stdout.split(|b| *b == 0).filter(|p| !p.is_empty()) {
        let rel = Path::new(std::str::from_utf8(rel).expect("a UTF-8 path"));
        let from = root().join(rel);
        // A file deleted but not yet committed is listed too.
        if !from.exists() {
            continue;
        }
        let to = dest.join(rel);
        std::fs::create_dir_all(to.parent().expect("a parent")).expect("mkdir");
        std::fs::copy(&from, &to).expect("copy");
    }
    git(dest, &["init", "-q"]);
    git(dest, &["add", "-A"]);
    git(dest, &["commit", "-q", "-m", "snapshot"]);
}

/// Runs reckless with `args` for the lightning dir `ln` (regtest).
fn reckless(script: &Path, ln: &Path, env_path: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new("python3")
        .arg(script)
        .args(args)
        .arg(format!("--lightning={}", ln.display()))
        .arg("--regtest")
        .current_dir(ln)
        .env("PATH", env_path)
        // No node runs: lightning-cli says so as it does then (exit 2).
        .env("LIGHTNING_CLI", ln.join("lightning-cli"))
        .env_remove("CARGO_TARGET_DIR")
        .stdin(Stdio::null())
        .output()
        .expect("python3 runs");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("reckless {args:?}:\n{said}");
    (out.status.success(), said)
}

#[tokio::test]
#[ignore = "needs lightningd's source; .ci/run runs it where it is"]
async fn reckless_installs_the_host_from_a_clone() {
    let tmp = tempdir();
    let Some(script) = reckless_script(tmp.path()) else {
        return;
    };
    // A clone not named cln-autoreload: reckless must find the plugin by
    // the directory inside.
    let source = tmp.path().join("my-checkout");
    clone_of_this_repository(&source);

    let ln = tmp.path().join("lightning");
    std::fs::create_dir_all(ln.join("regtest")).expect("mkdir");
    // A lightning dir as lightningd leaves it (reckless asks before
    // creating a config, and no one answers here).
    std::fs::write(ln.join("regtest/config"), "# regtest\n").expect("config");
    let cli = ln.join("lightning-cli");
    std::fs::write(
        &cli,
        "#!/bin/sh\necho \"lightning-cli: Connecting to 'lightning-rpc': No such file or directory\" >&2\nexit 2\n",
    )
    .expect("write lightning-cli");
    make_executable(&cli);

    let shims = tmp.path().join("shims");
    std::fs::create_dir_all(&shims).expect("mkdir");
    let kept = target_dir().join("reckless-install");
    std::fs::create_dir_all(&kept).expect("mkdir");
    let real_cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let shim = shims.join("cargo");
    std::fs::write(
        &shim,
        format!(
            "#!/bin/sh\n[ -e target ] || ln -s '{}' target\nexec '{real_cargo}' \"$@\"\n",
            kept.display()
        ),
    )
    .expect("write the cargo shim");
    make_executable(&shim);
    let path = format!(
        "{}:{}",
        shims.display(),
        std::env::var("PATH").unwrap_or_default()
    );

    let src = source.display().to_string();
    let (ok, said) = reckless(&script, &ln, &path, &["source", "add", &src]);
    assert!(ok, "{said}");
    // Only this source: the default one is on GitHub, which the machines
    // running the tests may not reach.
    let (ok, said) = reckless(
        &script,
        &ln,
        &path,
        &["source", "remove", "https://github.com/lightningd/plugins"],
    );
    assert!(ok, "{said}");

    let (ok, said) = reckless(&script, &ln, &path, &["search", "cln-autoreload"]);
    assert!(
        ok && said.contains("found cln-autoreload in source"),
        "{said}"
    );

    let (ok, said) = reckless(&script, &ln, &path, &["install", "cln-autoreload"]);
    assert!(ok && said.contains("plugin installed"), "{said}");
    let installed = ln.join("reckless/cln-autoreload/cln-autoreload");
    assert!(installed.is_file(), "{} is there", installed.display());
    let conf = std::fs::read_to_string(ln.join("reckless/regtest-reckless.conf"))
        .expect("reckless's config");
    assert!(
        conf.lines()
            .any(|l| l == format!("plugin={}", installed.display())),
        "{conf}"
    );

    // The set-up's last step: the plugin to develop, on lightningd's
    // command line (reckless cannot set a plugin's options).
    let launch = tempdir();
    write_testplugin(&launch.path().join("p.py"), &json!({}));
    let Some(node) = NodeBuilder::new()
        .host_path(&installed)
        .launch_dir(launch.path())
        .arg("--autoreload-plugin=p.py")
        .start()
        .await
        .expect("starts")
    else {
        return;
    };
    assert_eq!(node.ok("tp-echo", json!({})).await["version"], "v1");
    assert_eq!(node.host_entry().await["active"], true);
}
