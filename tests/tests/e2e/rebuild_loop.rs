//! Build on save when the watched tree holds the build's output (issue
//! #11, section 3): one save is one build and one reload, whatever the
//! build writes next to the sources; a save made while the host starts is
//! not lost; a reload that replaces a generation still starting leaves no
//! misleading warning.

use super::*;
use std::path::{Path, PathBuf};

/// How long the counts must stay still after the build and its reload:
/// thirty times the default settle window.
const QUIET: Duration = Duration::from_millis(1500);

fn write(dir: &Path, rel: &str, text: &str) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().expect("a parent")).expect("mkdir");
    std::fs::write(p, text).expect("write");
}

/// A project: `src/p.py.in` (the source: the test plugin's text at
/// `v1`), the build script, a marker that makes the directory the
/// project's, and the plugin file where the build puts it (written last,
/// so newer than the source).
fn project(dir: &Path, build_sh: &str, plugin: &str) {
    write(dir, "Makefile", "# marks the project's root\n");
    write(dir, "build.sh", build_sh);
    write(
        dir,
        "src/p.py.in",
        &testplugin_text(&json!({"version": "v1"})),
    );
    std::fs::create_dir_all(dir.join(plugin).parent().expect("a parent")).expect("mkdir");
    write_testplugin(&dir.join(plugin), &json!({"version": "v1"}));
}

async fn start(dir: &Path, plugin: &str, watch: &str) -> Option<Node> {
    NodeBuilder::new()
        .launch_dir(dir)
        .arg(format!("--autoreload-plugin={plugin}"))
        .arg("--autoreload-build=sh build.sh")
        .arg(format!("--autoreload-watch={watch}"))
        .start()
        .await
        .expect("starts")
}

async fn wait_version(node: &Node, want: &str) {
    wait_until(node, &format!("version {want} serving"), |v| {
        v["version"] == want
    })
    .await;
}

async fn wait_until(node: &Node, what: &str, f: impl Fn(&Value) -> bool) {
    let start = std::time::Instant::now();
    loop {
        if let Ok(v) = node.call("tp-echo", json!({})).await {
            if f(&v) {
                return;
            }
        }
        if start.elapsed() > BOUND {
            let s = node.ok("autoreload-status", json!({})).await;
            panic!("{what}: not within {BOUND:?}: {s:#}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Once `want` serves and the build is over, the counts stay at one
/// build and one reload through a quiet period.
async fn one_build_one_reload(node: &Node, want: &str) -> Value {
    wait_version(node, want).await;
    node.wait_status("the build over", |s| {
        s["build"]["builds"].as_u64() >= Some(1) && s["build"]["state"] == "idle"
    })
    .await;
    tokio::time::sleep(QUIET).await;
    let s = node.ok("autoreload-status", json!({})).await["plugins"][0].clone();
    assert_eq!(
        (s["build"]["builds"].as_u64(), s["reloads"].as_u64()),
        (Some(1), Some(1)),
        "one save made more than one build or reload: {s:#}"
    );
    assert_eq!(s["build"]["last"]["ok"], true, "{s:#}");
    let logs = node.logs().await;
    assert!(
        !logs.iter().any(|l| l.contains("which nobody asked it")),
        "{}",
        logs.join("\n")
    );
    s
}

/// Saves the source at `v2` the way most editors do, renamed into place:
/// the host may be starting and reading its sources for changes made
/// while it was down, and a save written in place then could be read half
/// done (emptied, not yet written), which rightly takes a second build
/// once it is whole.
fn save_v2(dir: &Path) {
    write_atomically(
        &dir.join("src/p.py.in"),
        testplugin_text(&json!({"version": "v2"})).as_bytes(),
    );
}

#[tokio::test]
async fn watching_the_project_with_the_output_inside_it_builds_once() {
    let launch = tempdir();
    let dir = launch.path();
    // The build writes a temporary file next to the plugin, then renames
    // it over the plugin: neither is a source.
    project(
        dir,
        "mkdir -p out && cp src/p.py.in out/p.py.tmp && chmod +x out/p.py.tmp && mv -f out/p.py.tmp out/p.py\n",
        "out/p.py",
    );
    let Some(node) = start(dir, "out/p.py", ".").await else {
        return;
    };
    assert_eq!(node.ok("tp-echo", json!({})).await["version"], "v1");
    save_v2(dir);
    one_build_one_reload(&node, "v2").await;
    // The log line that starts the build names what changed. A save that
    // lands while the host is starting is found by its start-up check
    // ("sources changed since it was built"), one after it by the watch:
    // the test must not depend on which.
    let line = node.wait_log("[p.py] sources changed").await;
    assert!(
        line.contains("(src/p.py.in): sh build.sh"),
        "the build's line names the source and the command: {line}"
    );
}

#[tokio::test]
async fn a_directory_the_gitignore_names_is_not_watched_for_sources() {
    let launch = tempdir();
    let dir = launch.path();
    // Whatever the build leaves in build/ differs each time: only the
    // .gitignore keeps it from starting another build.
    project(
        dir,
        "mkdir -p build && date +%s%N > build/stamp && cp src/p.py.in build/p.tmp && chmod +x build/p.tmp && mv -f build/p.tmp p.py\n",
        "p.py",
    );
    write(dir, ".gitignore", "/build/\n");
    let Some(node) = start(dir, "p.py", ".").await else {
        return;
    };
    save_v2(dir);
    one_build_one_reload(&node, "v2").await;
}

#[tokio::test]
async fn a_build_rewriting_a_source_with_the_same_bytes_builds_once() {
    let launch = tempdir();
    let dir = launch.path();
    // The build regenerates a file among the sources, always the same.
    write(dir, "src/generated.txt", "generated\n");
    project(
        dir,
        "printf 'generated\\n' > src/generated.txt\ncp src/p.py.in out.tmp && chmod +x out.tmp && mv -f out.tmp p.py\n",
        "p.py",
    );
    let Some(node) = start(dir, "p.py", "src").await else {
        return;
    };
    save_v2(dir);
    let s = one_build_one_reload(&node, "v2").await;
    assert_eq!(s["build"]["watching"][0], json!(dir.join("src")), "{s:#}");
}

#[tokio::test]
async fn a_go_style_output_in_the_project_root_builds_once() {
    let launch = tempdir();
    let dir = launch.path();
    // As `go build -o myplugin .`: the plugin is written in place, in the
    // directory the build runs in and that is watched.
    write(dir, "go.mod", "module example.com/myplugin\n");
    project(
        dir,
        "cp src/p.py.in myplugin && chmod +x myplugin\n",
        "myplugin",
    );
    let Some(node) = start(dir, "myplugin", ".").await else {
        return;
    };
    save_v2(dir);
    one_build_one_reload(&node, "v2").await;
    // A touch of the plugin file itself is a reload, not a build.
    touch(&dir.join("myplugin"));
    node.wait_status("reloaded by the touch", |s| {
        s["reloads"] == 2 && s["state"] == "serving"
    })
    .await;
    tokio::time::sleep(QUIET).await;
    let s = node.ok("autoreload-status", json!({})).await["plugins"][0].clone();
    assert_eq!(s["build"]["builds"], 1, "{s:#}");
    assert_eq!(s["reloads"], 2, "{s:#}");
}

#[tokio::test]
async fn sources_edited_while_lightningd_was_down_are_built_at_start() {
    let launch = tempdir();
    let dir = launch.path();
    project(
        dir,
        "cp src/p.py.in p.tmp && chmod +x p.tmp && mv -f p.tmp p.py\n",
        "p.py",
    );
    // The plugin file was built a while ago; the source changed since.
    save_v2(dir);
    std::fs::File::options()
        .write(true)
        .open(dir.join("p.py"))
        .expect("open")
        .set_modified(std::time::SystemTime::now() - Duration::from_secs(60))
        .expect("set mtime");
    let Some(node) = start(dir, "p.py", "src").await else {
        return;
    };
    one_build_one_reload(&node, "v2").await;
    node.wait_log("[p.py] sources changed since it was built (src/p.py.in): sh build.sh")
        .await;
}

/// The cargo inference learns what to watch from `cargo metadata` after
/// the plugin serves. A stand-in `cargo` holds its answer until the test
/// has saved a source: that save, made before anything watched, still
/// builds.
#[tokio::test]
async fn a_save_while_cargo_metadata_runs_is_not_lost() {
    let launch = tempdir();
    let dir = launch.path();
    let root = dir.display().to_string();
    let elsewhere = tempdir();
    let gate = elsewhere.path().join("metadata-may-answer");
    write(
        dir,
        "Cargo.toml",
        "[package]\nname = \"p\"\nversion = \"0.1.0\"\n",
    );
    write(
        dir,
        "src/p.py.in",
        &testplugin_text(&json!({"version": "v1"})),
    );
    write(
        dir,
        "bin/cargo",
        &format!(
            r#"#!/bin/sh
case "$1" in
metadata)
  while [ ! -e '{gate}' ]; do sleep 0.02; done
  printf '%s\n' '{{"packages":[{{"name":"p","manifest_path":"{root}/Cargo.toml","dependencies":[],"targets":[{{"name":"p","kind":["bin"]}}]}}],"target_directory":"{root}/target"}}'
  ;;
build)
  cp src/p.py.in target/debug/p.tmp && chmod +x target/debug/p.tmp && mv -f target/debug/p.tmp target/debug/p
  ;;
esac
"#,
            gate = gate.display()
        ),
    );
    make_executable(&dir.join("bin/cargo"));
    std::fs::create_dir_all(dir.join("target/debug")).expect("mkdir");
    write_testplugin(&dir.join("target/debug/p"), &json!({"version": "v1"}));
    let path = format!(
        "{}:{}",
        dir.join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let Some(node) = NodeBuilder::new()
        .launch_dir(dir)
        .arg("--autoreload-plugin=target/debug/p")
        .env("PATH", path)
        .start()
        .await
        .expect("starts")
    else {
        return;
    };
    assert_eq!(node.ok("tp-echo", json!({})).await["version"], "v1");
    save_v2(dir);
    std::fs::write(&gate, "").expect("open the gate");
    node.wait_log("[p] on a change in").await;
    one_build_one_reload(&node, "v2").await;
    node.wait_log("sources changed since it was built (src/p.py.in): cargo build -p p --bin p")
        .await;
}

/// A plugin file `p` in `dir` that starts the test plugin only once the
/// gate file `go` exists, deaf to SIGTERM meanwhile (the stop of a replaced
/// generation sends it after a second); the gate starts open.
fn gated_plugin(dir: &Path) -> PathBuf {
    let gate = dir.join("go");
    write_testplugin(&dir.join("real.py"), &json!({}));
    write(
        dir,
        "p",
        &format!(
            "#!/bin/sh\ntrap '' TERM\nwhile [ ! -e '{}' ]; do sleep 0.02; done\nexec python3 '{}'\n",
            gate.display(),
            dir.join("real.py").display()
        ),
    );
    make_executable(&dir.join("p"));
    std::fs::write(&gate, "").expect("gate");
    gate
}

fn touch(path: &Path) {
    std::fs::File::options()
        .write(true)
        .open(path)
        .expect("open")
        .set_modified(std::time::SystemTime::now())
        .expect("touch");
}

/// A save that comes while a native generation is still starting lets
/// that start finish, then reloads once more: saves faster than the
/// plugin starts must not keep it from ever serving.
#[tokio::test]
async fn a_save_during_a_start_reloads_once_that_start_is_done() {
    let launch = tempdir();
    let dir = launch.path();
    let gate = gated_plugin(dir);
    // Break-before-make: the start is the only version (overlapped, the
    // old one serves on and a save simply starts the newest file).
    let Some(node) = NodeBuilder::new()
        .launch_dir(dir)
        .arg("--autoreload-plugin=p")
        .arg("--autoreload-overlap=false")
        .start()
        .await
        .expect("starts")
    else {
        return;
    };
    node.ok("tp-echo", json!({})).await;
    std::fs::remove_file(&gate).expect("close the gate");
    touch(&dir.join("p"));
    node.wait_status("generation 2 starting", |s| {
        s["generation"] == 2 && s["state"] == "starting"
    })
    .await;
    touch(&dir.join("p"));
    std::fs::write(&gate, "").expect("open the gate");
    let s = node
        .wait_status("generation 3 serving", |s| {
            s["generation"] == 3 && s["state"] == "serving"
        })
        .await;
    assert_eq!(s["reloads"], 2, "generation 2 served, then 3: {s}");
    node.ok("tp-echo", json!({})).await;
}

/// A generation that has been starting for longer than the grace period
/// is replaced at once by a save; its late answer to getmanifest is no
/// warning.
#[tokio::test]
async fn a_generation_replaced_while_starting_answers_late_without_a_warning() {
    let launch = tempdir();
    let dir = launch.path();
    let gate = gated_plugin(dir);
    let Some(node) = NodeBuilder::new()
        .launch_dir(dir)
        .arg("--autoreload-plugin=p")
        .arg("--autoreload-grace-ms=100")
        .arg("--autoreload-overlap=false")
        .start()
        .await
        .expect("starts")
    else {
        return;
    };
    node.ok("tp-echo", json!({})).await;
    std::fs::remove_file(&gate).expect("close the gate");
    touch(&dir.join("p"));
    node.wait_status("generation 2 starting", |s| {
        s["generation"] == 2 && s["state"] == "starting"
    })
    .await;
    // Past the grace period for certain: generation 2 counts as stuck.
    tokio::time::sleep(Duration::from_millis(300)).await;
    touch(&dir.join("p"));
    node.wait_status("generation 2 stopping", |s| s["state"] == "stopping")
        .await;
    std::fs::write(&gate, "").expect("open the gate");
    node.wait_log("answered \"autoreload:getmanifest#2\" after it was replaced")
        .await;
    node.wait_status("generation 3 serving", |s| {
        s["generation"] == 3 && s["state"] == "serving"
    })
    .await;
    let logs = node.logs().await;
    assert!(
        !logs.iter().any(|l| l.contains("which nobody asked it")),
        "{}",
        logs.join("\n")
    );
}

/// A build that starts clean (`rm -rf out && mkdir out`) removes the
/// directory the plugin file is watched in: every later build is still
/// noticed, and reloaded.
#[tokio::test]
async fn a_build_that_removes_the_output_directory_keeps_the_watch() {
    let launch = tempdir();
    let dir = launch.path();
    project(
        dir,
        "rm -rf out && mkdir out && cp src/p.py.in out/p.py.tmp && chmod +x out/p.py.tmp && mv -f out/p.py.tmp out/p.py\n",
        "out/p.py",
    );
    let Some(node) = start(dir, "out/p.py", "src").await else {
        return;
    };
    assert_eq!(node.ok("tp-echo", json!({})).await["version"], "v1");
    for v in ["v2", "v3", "v4"] {
        write(dir, "src/p.py.in", &testplugin_text(&json!({"version": v})));
        wait_version(&node, v).await;
    }
}
