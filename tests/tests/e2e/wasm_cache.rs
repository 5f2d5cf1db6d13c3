//! The caches of compiled wasm modules, through the stand-in: bytes the
//! host compiled before (in this run, or in an earlier one that kept them
//! on disk) are not compiled again; a cache file that is corrupt, or was
//! written for another engine configuration, is compiled again and never
//! used; the disk cache stays within its bound, the memory cache within
//! its number of entries; with tiering on, a module Winch compiled gets a
//! Cranelift version in the background, which the next start of the same
//! bytes runs; with it off, Cranelift never compiles.

use super::*;
use std::path::{Path, PathBuf};

/// A launch directory with the test guest at `guest.wasm`, and a cache
/// directory of its own that outlives the nodes started on it.
struct Setup {
    launch: tempfile::TempDir,
    cache: tempfile::TempDir,
}

impl Setup {
    fn new(version: &str) -> Setup {
        let s = Setup {
            launch: tempdir(),
            cache: tempdir(),
        };
        s.install(version);
        s
    }

    fn module(&self) -> PathBuf {
        self.launch.path().join("guest.wasm")
    }

    /// Puts the test guest at `version` in place, as a build does.
    fn install(&self, version: &str) {
        write_atomically(&self.module(), &testguest_version(version));
    }

    /// A node (a new host) on this cache directory, with `extra` options;
    /// tiering off unless `extra` sets it (with it, a Cranelift version
    /// of each module would come and go in the caches beside Winch's).
    async fn node(&self, extra: &[&str]) -> Option<Node> {
        let mut b = NodeBuilder::new()
            .launch_dir(self.launch.path())
            .arg("--autoreload-plugin=guest.wasm")
            .arg(format!(
                "--autoreload-wasm-cache-dir={}",
                self.cache.path().display()
            ))
            .standin_only();
        for a in extra {
            b = b.arg(*a);
        }
        if !extra
            .iter()
            .any(|a| a.starts_with("--autoreload-wasm-tier="))
        {
            b = b.arg("--autoreload-wasm-tier=off");
        }
        b.start().await.expect("node starts")
    }

    /// The cache's files.
    fn files(&self) -> Vec<PathBuf> {
        cache_files(self.cache.path())
    }

    /// Waits until the cache holds `n` files (a module is written to disk
    /// after the instance got it, by a thread of its own).
    async fn wait_files(&self, n: usize) -> Vec<PathBuf> {
        wait_for(&format!("{n} file(s) in the wasm cache"), || {
            let f = self.files();
            (f.len() == n).then_some(f)
        })
        .await
    }

    /// The one cache file whose name says `compiler`.
    fn file_of(&self, compiler: &str) -> PathBuf {
        let mut f: Vec<PathBuf> = self
            .files()
            .into_iter()
            .filter(|p| name(p).contains(&format!("-{compiler}-")))
            .collect();
        assert_eq!(f.len(), 1, "one {compiler} file: {f:?}");
        f.remove(0)
    }
}

fn name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The cache's entries (not the temporary files of a write under way).
fn cache_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    v.retain(|p| name(p).ends_with(".cwasm"));
    v.sort();
    v
}

async fn version(node: &Node) -> String {
    node.ok("tg-version", json!({})).await["version"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Where the serving generation's module came from.
async fn source(node: &Node) -> String {
    let s = node.ok("autoreload-status", json!({})).await["plugins"][0].clone();
    s["last_compile"]["source"]
        .as_str()
        .unwrap_or_else(|| panic!("no last_compile.source: {s:#}"))
        .to_string()
}

/// A revert to bytes compiled earlier in this run comes from memory; a
/// new host finds what the last one compiled on disk, for the start-up
/// and for a reload alike.
#[tokio::test]
async fn bytes_compiled_before_are_not_compiled_again() {
    let setup = Setup::new("v1");
    let Some(node) = setup.node(&[]).await else {
        return;
    };
    assert_eq!(version(&node).await, "v1");
    assert_eq!(source(&node).await, "compiled");
    let s = node.ok("autoreload-status", json!({})).await["plugins"][0].clone();
    assert_eq!(s["last_compile"]["cached"], false, "{s:#}");
    setup.wait_files(1).await;

    setup.install("v2");
    let s = node.serving_after(s["generation"].as_u64().unwrap()).await;
    assert_eq!(version(&node).await, "v2");
    assert_eq!(source(&node).await, "compiled");
    setup.wait_files(2).await;

    // The revert: the bytes of v1 again.
    setup.install("v1");
    node.serving_after(s["generation"].as_u64().unwrap()).await;
    assert_eq!(version(&node).await, "v1");
    assert_eq!(source(&node).await, "memory");
    let s = node.ok("autoreload-status", json!({})).await["plugins"][0].clone();
    assert_eq!(s["last_compile"]["cached"], true, "{s:#}");
    assert_eq!(s["last_compile"]["compiler"], "winch", "{s:#}");
    node.stop().await.expect("stops");

    // A new host: v1 from disk at start-up, and v2 on a reload.
    let Some(node) = setup.node(&[]).await else {
        return;
    };
    assert_eq!(version(&node).await, "v1");
    assert_eq!(source(&node).await, "disk");
    let gen = node.ok("autoreload-status", json!({})).await["plugins"][0]["generation"]
        .as_u64()
        .unwrap();
    setup.install("v2");
    node.serving_after(gen).await;
    assert_eq!(version(&node).await, "v2");
    assert_eq!(source(&node).await, "disk");
    assert_eq!(setup.files().len(), 2, "nothing new was written");
    node.stop().await.expect("stops");

    // With both caches off, a revert is compiled again.
    let Some(node) = setup
        .node(&[
            "--autoreload-wasm-memory-cache-mb=0",
            "--autoreload-wasm-cache-dir=off",
        ])
        .await
    else {
        return;
    };
    assert_eq!(source(&node).await, "compiled");
    let mut gen = node.ok("autoreload-status", json!({})).await["plugins"][0]["generation"]
        .as_u64()
        .unwrap();
    for v in ["v1", "v2"] {
        setup.install(v);
        gen = node.serving_after(gen).await["generation"]
            .as_u64()
            .unwrap();
        assert_eq!(version(&node).await, v);
        assert_eq!(source(&node).await, "compiled", "{v}");
    }
}

/// A cache file changed on disk (a flipped bit, a cut-off write) is not
/// used: the module is compiled again, and the entry written anew.
#[tokio::test]
async fn a_corrupt_cache_file_is_compiled_again() {
    let setup = Setup::new("v1");
    let Some(node) = setup.node(&[]).await else {
        return;
    };
    assert_eq!(version(&node).await, "v1");
    let file = setup.wait_files(1).await.remove(0);
    node.stop().await.expect("stops");
    let good = std::fs::read(&file).unwrap();

    let mut flipped = good.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x40;
    let cut = good[..good.len() - 1000].to_vec();
    for (what, bytes, why) in [
        ("a flipped bit", flipped, "is corrupt"),
        ("a cut-off write", cut, "is corrupt"),
        (
            "a foreign file",
            b"\0asm\x01\0\0\0".to_vec(),
            "is not a cache file",
        ),
    ] {
        std::fs::write(&file, &bytes).unwrap();
        let Some(node) = setup.node(&[]).await else {
            return;
        };
        assert_eq!(version(&node).await, "v1", "{what}");
        assert_eq!(source(&node).await, "compiled", "{what}");
        let line = node.wait_log(why).await;
        assert!(line.contains("compiling it again"), "{what}: {line}");
        // Written anew, whole.
        wait_for(&format!("the entry rewritten after {what}"), || {
            (std::fs::read(&file).ok()? == good).then_some(())
        })
        .await;
        node.stop().await.expect("stops");
    }
    // The rewritten entry is used again.
    let Some(node) = setup.node(&[]).await else {
        return;
    };
    assert_eq!(source(&node).await, "disk");
}

/// A module compiled for another engine configuration (here Cranelift's,
/// put where Winch's would be) is never loaded: not when the file says
/// so in its header, nor when its header is Winch's and only wasmtime's
/// own check of the configuration can tell.
#[tokio::test]
async fn a_module_for_another_engine_configuration_is_not_used() {
    let setup = Setup::new("v1");
    let Some(node) = setup.node(&["--autoreload-wasm-compiler=cranelift"]).await else {
        return;
    };
    assert_eq!(version(&node).await, "v1");
    setup.wait_files(1).await;
    node.stop().await.expect("stops");
    let Some(node) = setup.node(&[]).await else {
        return;
    };
    assert_eq!(
        source(&node).await,
        "compiled",
        "Cranelift's module is not Winch's"
    );
    setup.wait_files(2).await;
    node.stop().await.expect("stops");
    let (winch, cranelift) = (setup.file_of("winch"), setup.file_of("cranelift"));
    let (w, c) = (
        std::fs::read(&winch).unwrap(),
        std::fs::read(&cranelift).unwrap(),
    );

    // The format line and the key (content, engine, compiler) lead the
    // file, then the payload's checksum, then the payload.
    const KEY_END: usize = 36 + 65;
    let mut spliced = w[..KEY_END].to_vec();
    spliced.extend_from_slice(&c[KEY_END..]);
    for (what, bytes, why) in [
        ("Cranelift's file", c.clone(), "was written for another"),
        (
            "Cranelift's module under Winch's header",
            spliced,
            "wasmtime refused it",
        ),
    ] {
        std::fs::write(&winch, &bytes).unwrap();
        let Some(node) = setup.node(&[]).await else {
            return;
        };
        assert_eq!(version(&node).await, "v1", "{what}");
        let s = node.ok("autoreload-status", json!({})).await["plugins"][0].clone();
        assert_eq!(s["last_compile"]["source"], "compiled", "{what}: {s:#}");
        assert_eq!(s["last_compile"]["compiler"], "winch", "{what}: {s:#}");
        node.wait_log(why).await;
        wait_for(&format!("Winch's entry rewritten after {what}"), || {
            (std::fs::read(&winch).ok()? == w).then_some(())
        })
        .await;
        node.stop().await.expect("stops");
    }
    // Cranelift's own entry was never touched.
    assert_eq!(std::fs::read(&cranelift).unwrap(), c);
}

/// The disk cache holds at most `autoreload-wasm-cache-mb`: the least
/// recently used entries go first, the newest stays; an entry larger
/// than the whole bound is not written.
#[tokio::test]
async fn the_disk_cache_stays_within_its_bound() {
    // The size of one entry, with the default bound.
    let setup = Setup::new("b0");
    let Some(node) = setup.node(&[]).await else {
        return;
    };
    assert_eq!(version(&node).await, "b0");
    let first = setup.wait_files(1).await.remove(0);
    node.stop().await.expect("stops");
    let size = std::fs::metadata(&first).unwrap().len();

    // A bound that holds two entries and a half (in whole MiB, as the
    // option takes it: at least two, fewer than all of them).
    let mb = (size * 5 / 2).div_ceil(1 << 20);
    let bound = mb << 20;
    let fit = (bound / size) as usize;
    let n = fit + 2;
    let Some(node) = setup
        .node(&[&format!("--autoreload-wasm-cache-mb={mb}")])
        .await
    else {
        return;
    };
    assert_eq!(source(&node).await, "disk");
    let mut gen = node.ok("autoreload-status", json!({})).await["plugins"][0]["generation"]
        .as_u64()
        .unwrap();
    let mut seen = vec![first.clone()];
    for i in 1..=n {
        let v = format!("b{i}");
        setup.install(&v);
        gen = node.serving_after(gen).await["generation"]
            .as_u64()
            .unwrap();
        assert_eq!(version(&node).await, v);
        // Each entry is written after its instance serves, then the
        // oldest are dropped: wait for both before the next version, so
        // that the order of use is the order here.
        let new = wait_for(&format!("the entry of {v}, within {mb} MiB"), || {
            let files = setup.files();
            let total: u64 = files
                .iter()
                .filter_map(|p| std::fs::metadata(p).ok())
                .map(|m| m.len())
                .sum();
            let new = files.into_iter().find(|p| !seen.contains(p))?;
            (total <= bound).then_some(new)
        })
        .await;
        seen.push(new);
    }
    let files = setup.files();
    assert_eq!(
        files.len(),
        fit,
        "{size}-byte entries in {mb} MiB: {files:?}"
    );
    // The newest `fit` stayed, the older ones went.
    let mut newest = seen[seen.len() - fit..].to_vec();
    newest.sort();
    assert_eq!(files, newest);
    node.stop().await.expect("stops");

    // A bound smaller than one entry: nothing is written, nothing kept.
    let Some(node) = setup
        .node(&[&format!(
            "--autoreload-wasm-cache-mb={}",
            (size >> 20).saturating_sub(1)
        )])
        .await
    else {
        return;
    };
    let gen = node.ok("autoreload-status", json!({})).await["plugins"][0]["generation"]
        .as_u64()
        .unwrap();
    setup.install("big");
    node.serving_after(gen).await;
    assert_eq!(version(&node).await, "big");
    assert_eq!(source(&node).await, "compiled");
    // The write would come after the instance serves: a status call
    // later, it has been decided; the old entries went too.
    wait_for("the cache emptied", || {
        setup.files().is_empty().then_some(())
    })
    .await;
}

/// The serving generation's `last_compile`.
async fn last_compile(node: &Node) -> Value {
    node.ok("autoreload-status", json!({})).await["plugins"][0]["last_compile"].clone()
}

/// Waits, longer than [`wait_for`] does, for `f`: a compile at the lowest
/// priority takes as long as the machine is busy.
async fn wait_long<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = std::time::Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(600),
            "{what}: not within 600 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// With tiering on (the default), Winch serves a new module first, and
/// Cranelift compiles the same bytes in the background: the next start of
/// those bytes (here a restart) runs Cranelift's code from memory, and a
/// new host finds it on disk. Cranelift's incremental cache gets its
/// entries in its own directory beside the modules.
#[tokio::test]
async fn an_optimized_version_is_made_in_the_background_and_serves_the_next_start() {
    let setup = Setup::new("v1");
    let Some(node) = setup.node(&["--autoreload-wasm-tier=auto"]).await else {
        return;
    };
    assert_eq!(version(&node).await, "v1");
    let c = last_compile(&node).await;
    assert_eq!(
        (&c["tier"], &c["compiler"], &c["source"]),
        (&json!("winch"), &json!("winch"), &json!("compiled")),
        "{c:#}"
    );
    wait_long("a Cranelift version on disk", || {
        setup
            .files()
            .iter()
            .any(|p| name(p).contains("-cranelift-"))
            .then_some(())
    })
    .await;
    let incremental = setup.cache.path().join("cranelift-incremental");
    assert!(
        std::fs::read_dir(&incremental).is_ok_and(|mut d| d.next().is_some()),
        "Cranelift's incremental cache is empty"
    );

    let r = node.ok("autoreload-restart", json!({})).await;
    node.serving_after(r["generation"].as_u64().unwrap() - 1)
        .await;
    assert_eq!(version(&node).await, "v1");
    let c = last_compile(&node).await;
    assert_eq!(
        (&c["tier"], &c["source"]),
        (&json!("cranelift"), &json!("memory")),
        "{c:#}"
    );
    node.stop().await.expect("stops");

    let Some(node) = setup.node(&["--autoreload-wasm-tier=auto"]).await else {
        return;
    };
    assert_eq!(version(&node).await, "v1");
    let c = last_compile(&node).await;
    assert_eq!(
        (&c["tier"], &c["source"]),
        (&json!("cranelift"), &json!("disk")),
        "{c:#}"
    );
}

/// `autoreload-wasm-tier=off`: Winch only. New bytes, a reload, a
/// restart: Cranelift never compiles (no Cranelift module in either cache,
/// no incremental cache), and every start says `tier: winch`.
#[tokio::test]
async fn with_tiering_off_cranelift_never_compiles() {
    let setup = Setup::new("v1");
    let Some(node) = setup.node(&["--autoreload-wasm-tier=off"]).await else {
        return;
    };
    assert_eq!(version(&node).await, "v1");
    let gen = node.ok("autoreload-status", json!({})).await["plugins"][0]["generation"]
        .as_u64()
        .unwrap();
    setup.install("v2");
    let s = node.serving_after(gen).await;
    assert_eq!(version(&node).await, "v2");
    setup.wait_files(2).await;
    // Time for a background compile, had one started (it would have
    // been queued when v1 served).
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let r = node.ok("autoreload-restart", json!({})).await;
    assert!(r["generation"].as_u64() > s["generation"].as_u64(), "{r}");
    node.serving_after(s["generation"].as_u64().unwrap()).await;
    let c = last_compile(&node).await;
    assert_eq!(
        (&c["tier"], &c["source"]),
        (&json!("winch"), &json!("memory")),
        "{c:#}"
    );
    node.stop().await.expect("stops");
    let files = setup.files();
    assert!(
        files.iter().all(|p| name(p).contains("-winch-")),
        "{files:?}"
    );
    assert!(
        !setup.cache.path().join("cranelift-incremental").exists(),
        "Cranelift's incremental cache was made"
    );
}

/// The in-memory cache holds at most
/// `autoreload-wasm-memory-cache-entries` modules, however small: with
/// one, a revert to the bytes before is compiled again; with two, it
/// comes from memory.
#[tokio::test]
async fn the_memory_cache_holds_at_most_its_number_of_entries() {
    for (entries, revert) in [(1, "compiled"), (2, "memory")] {
        let setup = Setup::new("v1");
        let cap = format!("--autoreload-wasm-memory-cache-entries={entries}");
        let Some(node) = setup.node(&["--autoreload-wasm-cache-dir=off", &cap]).await else {
            return;
        };
        assert_eq!(version(&node).await, "v1");
        let mut gen = node.ok("autoreload-status", json!({})).await["plugins"][0]["generation"]
            .as_u64()
            .unwrap();
        for (v, from) in [("v2", "compiled"), ("v1", revert)] {
            setup.install(v);
            gen = node.serving_after(gen).await["generation"]
                .as_u64()
                .unwrap();
            assert_eq!(version(&node).await, v);
            assert_eq!(source(&node).await, from, "{v} with {entries} entries");
        }
        node.stop().await.expect("stops");
    }
}

/// A plugin that keeps its state across reloads (hello-wasm keeps its
/// count of calls) swaps to Cranelift's code once it is compiled in the
/// background, through the same swap and hand-over as a save: its count
/// goes on, the swap is a tier-up (not a reload), and what serves says
/// `tier: cranelift`. The test guest, which keeps no state, stays on
/// Winch's code until its next start.
#[tokio::test]
async fn a_plugin_that_keeps_its_state_swaps_to_the_optimized_code() {
    let launch = tempdir();
    let cache = tempdir();
    std::fs::copy(
        wasm_bin("hello-wasm", false),
        launch.path().join("hello.wasm"),
    )
    .expect("copy hello-wasm");
    write_atomically(&launch.path().join("guest.wasm"), &testguest_version("g1"));
    let Some(node) = NodeBuilder::new()
        .launch_dir(launch.path())
        .arg("--autoreload-plugin=hello.wasm")
        .arg("--autoreload-plugin=guest.wasm")
        .arg(format!(
            "--autoreload-wasm-cache-dir={}",
            cache.path().display()
        ))
        .arg("--autoreload-wasm-tier=auto")
        .standin_only()
        .start()
        .await
        .expect("node starts")
    else {
        return;
    };
    let status = |name: &'static str| {
        let node = &node;
        async move {
            let all = node.ok("autoreload-status", json!({})).await;
            all["plugins"]
                .as_array()
                .and_then(|a| a.iter().find(|p| p["name"] == name).cloned())
                .unwrap_or_else(|| panic!("no {name} in {all:#}"))
        }
    };
    let first = status("hello.wasm").await;
    assert_eq!(first["last_compile"]["tier"], "winch", "{first:#}");
    let mut calls = 0;
    let started = std::time::Instant::now();
    let swapped = loop {
        let r = node.ok("hello", json!({"name": "tier"})).await;
        calls += 1;
        assert_eq!(r["calls"], calls, "no call lost, the count handed over");
        let s = status("hello.wasm").await;
        if s["tier_ups"] == 1 {
            break s;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(600),
            "no tier-up within 600 s: {s:#}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(swapped["last_compile"]["tier"], "cranelift", "{swapped:#}");
    assert_eq!(swapped["last_compile"]["source"], "memory", "{swapped:#}");
    assert_eq!(
        swapped["reloads"], 0,
        "a tier-up is not a reload: {swapped:#}"
    );
    assert!(swapped["generation"].as_u64() > first["generation"].as_u64());
    let r = node.ok("hello", json!({"name": "tier"})).await;
    assert_eq!(
        r["calls"],
        calls + 1,
        "the count goes on in Cranelift's code"
    );
    node.wait_log("[hello.wasm] optimized code (Cranelift) serves")
        .await;
    // The guest keeps no state: it stays on Winch's code, its generation
    // the first.
    let g = status("guest.wasm").await;
    assert_eq!(
        (&g["tier_ups"], &g["generation"], &g["last_compile"]["tier"]),
        (&json!(0), &json!(1), &json!("winch")),
        "{g:#}"
    );
}
