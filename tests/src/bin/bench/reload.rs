//! Reload latency: from the moment the new file is complete (renamed into
//! place, or closed after a rewrite in place) to the first request answered
//! by the new version, polling in a tight loop; broken down with
//! `autoreload-status`; compared with the child's own start-up, measured in
//! the same rounds.

use crate::client::{Conn, PipeProc};
use crate::procs;
use crate::socket::{rpc_path, start_node};
use crate::{Bins, Counts, Pass};
use anyhow::{anyhow, bail, Context as _, Result};
use cln_autoreload_tests::Node;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const RELOAD_BOUND: Duration = Duration::from_secs(30);

/// The new versions a case alternates between.
enum Versions {
    /// The same binary written again: a new process (pid) is the new version.
    Native(Vec<u8>),
    /// Two texts of a script, answering `version` "a" and "b".
    Script([Vec<u8>; 2]),
    /// Two modules, answering `version` "1" and "2".
    Wasm([Vec<u8>; 2]),
}

/// How a case saves its new version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Save {
    /// Written beside and renamed over the old file (cargo, most editors):
    /// complete the moment it appears, so no settle window.
    Rename,
    /// Truncated and rewritten in place: the host waits out the settle
    /// window (50 ms) after the close.
    InPlace,
}

pub struct CaseResult {
    pub key: String,
    pub label: String,
    pub backend: &'static str,
    pub save: Save,
    /// File renamed → first answer from the new version, ms.
    pub total: Vec<f64>,
    /// `last_reload.duration_ms`: settled trigger → new version serving.
    pub host: Vec<f64>,
    /// `last_compile.duration_ms` (wasm).
    pub compile: Vec<f64>,
    /// Modules that came from a cache (0 where the caches are off; all
    /// of them in a revert case).
    pub cached: usize,
    /// Callers that never pause, calling meanwhile on connections of their
    /// own (0: only the poller).
    pub busy: usize,
    /// Calls the busy callers made during the reloads.
    pub busy_calls: u64,
    /// Polls answered with an error meanwhile (should be 0).
    pub poll_errors: usize,
    /// Host RSS before and after the series, MB.
    pub rss_before: Option<f64>,
    pub rss_after: Option<f64>,
}

impl CaseResult {
    /// total − host: detect (inotify + settle window) and the first answer.
    pub fn detect(&self) -> Vec<f64> {
        crate::stats::zip_with(&self.total, &self.host, |t, h| t - h)
    }
}

pub struct StartupResult {
    pub key: &'static str,
    pub label: String,
    /// spawn → getmanifest and init answered, ms.
    pub ms: Vec<f64>,
}

/// A host restart with bytes already compiled: the start-up's
/// `last_compile.duration_ms` with an empty disk cache, and then with the
/// one the first host filled.
pub struct RestartResult {
    pub compiler: &'static str,
    pub compiled: Vec<f64>,
    pub disk: Vec<f64>,
    /// The size of the module, and of its entry in the disk cache.
    pub wasm_bytes: u64,
    pub entry_bytes: u64,
}

pub struct ReloadResults {
    pub cases: Vec<CaseResult>,
    pub startups: Vec<StartupResult>,
    pub restarts: Vec<RestartResult>,
    pub rounds: usize,
    pub pyln: Option<String>,
}

impl ReloadResults {
    /// Not measured (`--only` without reload).
    pub fn empty(counts: &Counts) -> ReloadResults {
        ReloadResults {
            cases: vec![],
            startups: vec![],
            restarts: vec![],
            rounds: counts.reload_rounds,
            pyln: None,
        }
    }

    pub fn case(&self, key: &str) -> Option<&CaseResult> {
        self.cases.iter().find(|c| c.key == key)
    }
    pub fn startup(&self, key: &str) -> Option<&StartupResult> {
        self.startups.iter().find(|c| c.key == key)
    }
}

struct Case {
    res: CaseResult,
    node: Node,
    file: PathBuf,
    conn: Conn,
    versions: Versions,
    /// Index of the version on disk now.
    current: usize,
    method: &'static str,
    host: Option<u32>,
    _dir: tempfile::TempDir,
}

/// Callers that never pause, each on a connection of its own, until
/// stopped.
struct Busy {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    threads: Vec<std::thread::JoinHandle<Result<u64>>>,
}

impl Busy {
    fn start(rpc: &Path, n: usize, method: &'static str, params: &'static str) -> Result<Busy> {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut threads = vec![];
        for _ in 0..n {
            let mut conn = Conn::connect(rpc, crate::socket::CALL_BOUND)?;
            let stop = stop.clone();
            threads.push(std::thread::spawn(move || {
                let mut calls = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    // An error answer (none is expected) still keeps the
                    // node busy; a broken connection ends the caller.
                    let _ = conn.call(method, params)?;
                    calls += 1;
                }
                Ok(calls)
            }));
        }
        Ok(Busy { stop, threads })
    }

    /// Stops the callers; the calls they made.
    fn finish(self) -> Result<u64> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut calls = 0;
        for t in self.threads {
            calls += t.join().map_err(|_| anyhow!("a busy caller panicked"))??;
        }
        Ok(calls)
    }
}

struct Startup {
    key: &'static str,
    label: String,
    program: PathBuf,
    options: &'static str,
    ms: Vec<f64>,
}

/// What a version answers: (pid, version).
fn tag(v: &Value) -> (Option<u64>, Option<String>) {
    (
        v.get("pid").and_then(Value::as_u64),
        v.get("version").and_then(Value::as_str).map(str::to_owned),
    )
}

impl Case {
    fn params(&self) -> &'static str {
        if self.method == "bench-pid" {
            "[]"
        } else {
            "[\"bench\"]"
        }
    }

    fn answer(&mut self) -> Result<Result<Value, String>> {
        let (m, p) = (self.method, self.params());
        self.conn.call(m, p)
    }

    /// One reload, measured.
    fn measure(&mut self) -> Result<()> {
        let label = self.res.label.clone();
        let before = self
            .answer()?
            .map_err(|e| anyhow!("{label}: {e}"))
            .map(|v| tag(&v))?;
        let next = 1 - self.current;
        let (bytes, expect): (&[u8], Option<&str>) = match &self.versions {
            Versions::Native(b) => (b, None),
            Versions::Script(t) => (&t[next], Some(["a", "b"][next])),
            Versions::Wasm(m) => (&m[next], Some(["1", "2"][next])),
        };
        let executable = !matches!(self.versions, Versions::Wasm(_));
        let busy = match self.res.busy {
            0 => None,
            n => {
                let b = Busy::start(&rpc_path(&self.node), n, self.method, self.params())?;
                // Every caller under way before the save.
                std::thread::sleep(Duration::from_millis(50));
                Some(b)
            }
        };
        let t0 = match self.res.save {
            Save::Rename => procs::write_atomically(&self.file, bytes, executable)?,
            Save::InPlace => procs::write_in_place(&self.file, bytes)?,
        };
        self.current = next;
        let t1 = loop {
            match self.answer() {
                Ok(Ok(v)) => {
                    let now = tag(&v);
                    let new = match expect {
                        Some(want) => now.1.as_deref() == Some(want),
                        None => now.0 != before.0,
                    };
                    if new {
                        break Instant::now();
                    }
                }
                Ok(Err(_)) => self.res.poll_errors += 1,
                Err(e) => return Err(e.context(format!("{label}: polling during a reload"))),
            }
            if t0.elapsed() > RELOAD_BOUND {
                bail!(
                    "{label}: the new version did not answer within {RELOAD_BOUND:?}; node stderr: {}",
                    self.node.stderr()
                );
            }
        };
        let total = (t1 - t0).as_secs_f64() * 1000.0;
        if let Some(b) = busy {
            self.res.busy_calls += b.finish()?;
        }
        let status = self.conn.ok("autoreload-status", "{}")?;
        let s = &status["plugins"][0];
        let r = &s["last_reload"];
        if r["trigger"] != "file changed" || r["generation"] != s["generation"] {
            bail!("{label}: the reload the status reports is not this one: {s}");
        }
        let host = r["duration_ms"]
            .as_f64()
            .ok_or_else(|| anyhow!("{label}: no last_reload.duration_ms in {s}"))?;
        self.res.total.push(total);
        self.res.host.push(host);
        if let Some(c) = s["last_compile"]["duration_ms"].as_f64() {
            self.res.compile.push(c);
            if s["last_compile"]["cached"] == true {
                self.res.cached += 1;
            }
        }
        // Let the old generation go before the next measurement.
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            let s = self.conn.ok("autoreload-status", "{}")?;
            let s = &s["plugins"][0];
            if s["state"] == "serving" && s["retiring"].as_u64().unwrap_or(0) == 0 {
                break;
            }
            if Instant::now() > until {
                bail!("{label}: the old generation did not retire within 10 s: {s}");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }
}

impl Startup {
    fn measure(&mut self) -> Result<()> {
        let dir = cln_autoreload_tests::tempdir();
        let cwd = dir.path().join("regtest");
        std::fs::create_dir_all(&cwd)?;
        let mut cmd = Command::new(&self.program);
        cmd.current_dir(&cwd)
            .env("LIGHTNINGD_PLUGIN", "1")
            .env("LIGHTNINGD_VERSION", "v26.06.6");
        let t = Instant::now();
        let mut p = PipeProc::spawn(&self.label, cmd)?;
        p.handshake(dir.path(), self.options)?;
        self.ms.push(t.elapsed().as_secs_f64() * 1000.0);
        p.finish();
        Ok(())
    }
}

/// hello.py with `hello` answering `"version": v` and its pid (besides
/// its greeting and `calls`).
pub fn pyln_text(src: &str, v: &str) -> Result<Vec<u8>> {
    let from = "return {\"greeting\": \"{}, {}!\".format(greeting, name),";
    if !src.contains(from) {
        bail!("examples/hello-py/hello.py no longer has the line {from:?} to edit");
    }
    let to = format!("{from} \"version\": \"{v}\", \"pid\": __import__(\"os\").getpid(),");
    Ok(src.replace(from, &to).into_bytes())
}

/// Whether pyln-client can be imported; the reason if not.
pub fn pyln_missing() -> Option<String> {
    match Command::new("python3")
        .args(["-c", "import pyln.client"])
        .output()
    {
        Ok(o) if o.status.success() => None,
        Ok(o) => Some(format!(
            "pyln-client is not importable: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => Some(format!("python3 cannot run: {e}")),
    }
}

#[allow(clippy::too_many_arguments)]
fn case(
    pass: &Pass,
    key: &str,
    label: &str,
    backend: &'static str,
    first: &Path,
    versions: Versions,
    method: &'static str,
    save: Save,
    extra: &[&str],
    busy: usize,
) -> Result<Case> {
    let args: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    let (node, file, dir) = start_node(pass, first, true, &args)?;
    let host = node.pid().map(procs::host_of).transpose()?;
    let conn = Conn::connect(&rpc_path(&node), crate::socket::CALL_BOUND)?;
    Ok(Case {
        res: CaseResult {
            key: key.to_string(),
            label: label.to_string(),
            backend,
            save,
            total: vec![],
            host: vec![],
            compile: vec![],
            cached: 0,
            busy,
            busy_calls: 0,
            poll_errors: 0,
            rss_before: None,
            rss_after: None,
        },
        node,
        file,
        conn,
        versions,
        current: 0,
        method,
        host,
        _dir: dir,
    })
}

/// One wasm reload case: which build, compiler and save, under which
/// options and load.
struct WasmCase {
    kind: &'static str,
    compiler: &'static str,
    save: Save,
    /// Its key's suffix.
    suffix: &'static str,
    /// How it saves, in its label.
    how: &'static str,
    extra: &'static [&'static str],
    /// Callers that never pause, besides the poller.
    busy: usize,
}

/// A result with nothing in it, to take another's place.
fn empty_result() -> CaseResult {
    CaseResult {
        key: String::new(),
        label: String::new(),
        backend: "",
        save: Save::Rename,
        total: vec![],
        host: vec![],
        compile: vec![],
        cached: 0,
        busy: 0,
        busy_calls: 0,
        poll_errors: 0,
        rss_before: None,
        rss_after: None,
    }
}

/// The example's module with `VERSION` = "1" and "2", debug and release.
pub struct WasmVersions {
    pub release: [Vec<u8>; 2],
    pub debug: [Vec<u8>; 2],
    /// Where the first versions were copied aside (a case starts with them).
    pub release_1: PathBuf,
    pub debug_1: PathBuf,
    pub sizes: (usize, usize),
}

pub fn build_wasm_versions(keep: &Path) -> Result<WasmVersions> {
    let krate = keep.join("hello-wasm-copy");
    let main_rs = cln_autoreload_tests::copy_hello_wasm(&krate);
    let marker = "const VERSION: &str = \"1\";";
    if !main_rs.contains(marker) {
        bail!("examples/hello-wasm/src/main.rs no longer has {marker:?} to edit");
    }
    let mut out: Vec<Vec<u8>> = vec![];
    let mut first = vec![];
    for v in ["1", "2"] {
        let text = main_rs.replace(marker, &format!("const VERSION: &str = \"{v}\";"));
        std::fs::write(krate.join("src/main.rs"), text).context("writing the copy's main.rs")?;
        for release in [true, false] {
            // Both versions build to the same path: copy each aside.
            let built = cln_autoreload_tests::build_copied_wasm(&krate, release);
            let bytes =
                std::fs::read(&built).with_context(|| format!("reading {}", built.display()))?;
            let kind = if release { "release" } else { "debug" };
            let aside = keep.join(format!("v{v}-{kind}"));
            std::fs::create_dir_all(&aside)?;
            let path = aside.join("hello-wasm.wasm");
            std::fs::write(&path, &bytes)?;
            if v == "1" {
                first.push(path);
            }
            out.push(bytes);
        }
    }
    let [r1, d1, r2, d2]: [Vec<u8>; 4] = out
        .try_into()
        .map_err(|_| anyhow!("expected four builds"))?;
    let sizes = (r1.len(), d1.len());
    Ok(WasmVersions {
        release: [r1, r2],
        debug: [d1, d2],
        release_1: first[0].clone(),
        debug_1: first[1].clone(),
        sizes,
    })
}

pub fn run(pass: &Pass, bins: &Bins, counts: &Counts) -> Result<ReloadResults> {
    let w = &bins.wasm_versions;
    let native_bytes = std::fs::read(&bins.bench_plugin)?;
    let pyln = pyln_missing();
    let mut cases = vec![];
    let mut startups = vec![Startup {
        key: "native-rust",
        label: "bench-plugin (Rust), own start-up".into(),
        program: bins.bench_plugin.clone(),
        options: "{}",
        ms: vec![],
    }];
    // A running executable cannot be rewritten in place (ETXTBSY): the
    // Rust child is only ever renamed over.
    cases.push(case(
        pass,
        "native-rust",
        "native: bench-plugin (Rust), renamed over",
        "native",
        &bins.bench_plugin,
        Versions::Native(native_bytes.clone()),
        "bench-pid",
        Save::Rename,
        &[],
        0,
    )?);
    let py_keep = cln_autoreload_tests::tempdir();
    if pyln.is_none() {
        let src = std::fs::read_to_string(
            cln_autoreload_tests::root().join("examples/hello-py/hello.py"),
        )
        .context("reading examples/hello-py/hello.py")?;
        let texts = [pyln_text(&src, "a")?, pyln_text(&src, "b")?];
        let first = py_keep.path().join("hello.py");
        procs::write_atomically(&first, &texts[0], true)?;
        startups.push(Startup {
            key: "pyln",
            label: "hello.py (pyln-client), own start-up".into(),
            program: first.clone(),
            options: "{\"hello-greeting\":\"Hello\"}",
            ms: vec![],
        });
        for (key, save, how) in [
            ("pyln", Save::Rename, "renamed over"),
            ("pyln-inplace", Save::InPlace, "rewritten in place"),
        ] {
            cases.push(case(
                pass,
                key,
                &format!("native: hello.py (pyln-client), {how}"),
                "native",
                &first,
                Versions::Script(texts.clone()),
                "hello",
                save,
                &[],
                0,
            )?);
        }
    }
    // Every wasm case but the revert runs with both module caches off:
    // each reload compiles, as the first build of a new edit does (two
    // versions alternate, and a cache would serve all but the first two).
    const NO_CACHE: [&str; 2] = [
        "--autoreload-wasm-memory-cache-mb=0",
        "--autoreload-wasm-cache-dir=off",
    ];
    const LOW: &str = "--autoreload-wasm-reload-priority=low";
    const TIER_OFF: [&str; 1] = ["--autoreload-wasm-tier=off"];
    const NO_CACHE_LOW: [&str; 3] = [NO_CACHE[0], NO_CACHE[1], LOW];
    let wasm_case = |kind, compiler, save, suffix, how, extra, busy| WasmCase {
        kind,
        compiler,
        save,
        suffix,
        how,
        extra,
        busy,
    };
    let (rename, inplace) = (Save::Rename, Save::InPlace);
    let busy2 = "renamed over, 2 more callers that never pause";
    let seen = "renamed over, bytes compiled before (caches on)";
    let wasm_cases = [
        wasm_case(
            "release",
            "winch",
            rename,
            "",
            "renamed over",
            &NO_CACHE[..],
            0,
        ),
        wasm_case(
            "release",
            "cranelift",
            rename,
            "",
            "renamed over",
            &NO_CACHE,
            0,
        ),
        wasm_case("debug", "winch", rename, "", "renamed over", &NO_CACHE, 0),
        wasm_case(
            "debug",
            "cranelift",
            rename,
            "",
            "renamed over",
            &NO_CACHE,
            0,
        ),
        wasm_case(
            "release",
            "winch",
            inplace,
            "-inplace",
            "rewritten in place",
            &NO_CACHE,
            0,
        ),
        wasm_case(
            "release",
            "winch",
            rename,
            "-low",
            "renamed over, compile at low priority",
            &NO_CACHE_LOW,
            0,
        ),
        wasm_case("release", "winch", rename, "-busy", busy2, &NO_CACHE, 2),
        wasm_case(
            "release",
            "winch",
            rename,
            "-busy-low",
            "renamed over, 2 more callers that never pause, compile at low priority",
            &NO_CACHE_LOW,
            2,
        ),
        // Winch's code only: with tiering on, a revert would find
        // Cranelift's version of those bytes in memory.
        wasm_case("release", "winch", rename, "-revert", seen, &TIER_OFF, 0),
        wasm_case("release", "cranelift", rename, "-revert", seen, &[], 0),
    ];
    let mut warm = vec![];
    for WasmCase {
        kind,
        compiler,
        save,
        suffix,
        how,
        extra,
        busy,
    } in wasm_cases
    {
        let (first, versions) = if kind == "release" {
            (&w.release_1, w.release.clone())
        } else {
            (&w.debug_1, w.debug.clone())
        };
        let flag = format!("--autoreload-wasm-compiler={compiler}");
        let mut args = vec![flag.as_str()];
        args.extend_from_slice(extra);
        if suffix == "-revert" {
            warm.push(cases.len());
        }
        cases.push(case(
            pass,
            &format!("wasm-{kind}-{compiler}{suffix}"),
            &format!("wasm: hello-wasm {kind} build, {compiler}, {how}"),
            "wasm",
            first,
            Versions::Wasm(versions),
            "hello",
            save,
            &args,
            busy,
        )?);
    }
    // A revert case measures bytes the host has compiled: both versions
    // once, unmeasured.
    for i in warm {
        let c = &mut cases[i];
        c.measure()?;
        c.measure()?;
        let busy = c.res.busy;
        c.res = CaseResult {
            total: vec![],
            host: vec![],
            compile: vec![],
            cached: 0,
            busy,
            busy_calls: 0,
            poll_errors: 0,
            ..std::mem::replace(&mut c.res, empty_result())
        };
    }
    for c in &mut cases {
        c.res.rss_before = c.host.and_then(|h| procs::rss_mb(h).ok());
    }
    // One reload (or start-up) of each case per round, in rotating order.
    let n = cases.len() + startups.len();
    for r in 0..counts.reload_rounds {
        for k in 0..n {
            let i = (k + r) % n;
            if i < cases.len() {
                cases[i].measure()?;
            } else {
                startups[i - cases.len()].measure()?;
            }
            std::thread::sleep(Duration::from_millis(30));
        }
    }
    let mut out = vec![];
    for mut c in cases {
        c.res.rss_after = c.host.and_then(|h| procs::rss_mb(h).ok());
        out.push(c.res);
        drop(c.conn);
        let _ = pass.rt.block_on(c.node.stop());
    }
    let restarts = restarts(pass, &w.release_1, counts)?;
    Ok(ReloadResults {
        restarts,
        cases: out,
        startups: startups
            .into_iter()
            .map(|s| StartupResult {
                key: s.key,
                label: s.label,
                ms: s.ms,
            })
            .collect(),
        rounds: counts.reload_rounds,
        pyln,
    })
}

/// Host restarts with hello-wasm's release build: each round a node on an
/// empty cache directory (the start-up compiles), then another node on
/// the same directory (the start-up loads what the first one kept).
fn restarts(pass: &Pass, module: &Path, counts: &Counts) -> Result<Vec<RestartResult>> {
    let mut out = vec![];
    for compiler in ["winch", "cranelift"] {
        let mut res = RestartResult {
            compiler,
            compiled: vec![],
            disk: vec![],
            wasm_bytes: std::fs::metadata(module)?.len(),
            entry_bytes: 0,
        };
        for _ in 0..counts.reload_rounds {
            let cache = cln_autoreload_tests::tempdir();
            let args = [
                format!("--autoreload-wasm-compiler={compiler}"),
                format!("--autoreload-wasm-cache-dir={}", cache.path().display()),
            ];
            for want in ["compiled", "disk"] {
                let (node, _file, _dir) = start_node(pass, module, true, &args)?;
                let mut conn = Conn::connect(&rpc_path(&node), crate::socket::CALL_BOUND)?;
                let status = conn.ok("autoreload-status", "{}")?;
                let c = &status["plugins"][0]["last_compile"];
                if c["source"] != want {
                    bail!("restart with {compiler}: expected a module from {want}: {c}");
                }
                let ms = c["duration_ms"]
                    .as_f64()
                    .ok_or_else(|| anyhow!("no last_compile.duration_ms: {c}"))?;
                match want {
                    "compiled" => res.compiled.push(ms),
                    _ => res.disk.push(ms),
                }
                // The module reaches the disk after the instance got it.
                let until = Instant::now() + Duration::from_secs(10);
                while cache_entries(cache.path())? == 0 {
                    if Instant::now() > until {
                        bail!("restart with {compiler}: nothing written to the cache in 10 s");
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                res.entry_bytes = std::fs::read_dir(cache.path())?
                    .flatten()
                    .filter_map(|e| e.metadata().ok())
                    .map(|m| m.len())
                    .max()
                    .unwrap_or(0);
                drop(conn);
                pass.rt.block_on(node.stop())?;
            }
        }
        out.push(res);
    }
    Ok(out)
}

/// The entries of a wasm cache directory (not a write under way).
fn cache_entries(dir: &Path) -> Result<usize> {
    Ok(std::fs::read_dir(dir)?
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".cwasm"))
        .count())
}
