//! Stall: callers in a closed loop while the plugin is reloaded again and
//! again. How long does a request wait during a reload, compared with
//! steady state, and is every call answered?

use crate::client::{Conn, NoAnswer};
use crate::procs;
use crate::socket::{rpc_path, start_node_env};
use crate::stats::median;
use crate::{Bins, Counts, Pass};
use anyhow::{anyhow, bail, Result};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A call with no answer within this is lost.
const LOST_BOUND: Duration = Duration::from_secs(10);
/// Calls this long after a reload's first new answer still count as
/// "around a reload", not steady state.
const AFTERMATH: Duration = Duration::from_millis(100);

pub struct StallResult {
    pub key: &'static str,
    pub label: String,
    pub callers: usize,
    pub reloads: usize,
    pub sent: usize,
    pub ok: usize,
    pub errors: BTreeMap<String, usize>,
    pub lost: usize,
    /// Latencies (µs) of calls clear of any reload.
    pub steady: Vec<f64>,
    /// Latencies (µs) of calls that overlapped a reload window.
    pub during: Vec<f64>,
    /// Each reload under load: rename → first answer by the new version, ms.
    pub windows: Vec<f64>,
    /// For each reload, its longest call: (ms it waited, ms from the
    /// rename to its start, ms from the new version's first answer to its
    /// end).
    pub per_reload: Vec<(f64, f64, f64)>,
    /// For each reload, the p50 (ms) of the calls overlapping its window.
    pub per_reload_p50: Vec<f64>,
    /// For each reload, the baseline for its longest wait: the longest (ms)
    /// of as many steady-state calls as overlapped its window, the last
    /// ones before it. With callers in a closed loop on 2 busy cores the
    /// longest of a thousand calls is several ms with no reload at all.
    pub per_reload_base: Vec<f64>,
    /// With `Subject::status`: the plugin's `autoreload-status` entry read
    /// right after each reload's first new answer (its hand-over is over
    /// by then: the host restores the state before the new version serves).
    pub statuses: Vec<Value>,
}

impl StallResult {
    /// The reload whose longest call waited longest.
    pub fn worst(&self) -> Option<(f64, f64, f64)> {
        self.per_reload
            .iter()
            .copied()
            .max_by(|a, b| a.0.total_cmp(&b.0))
    }

    /// Each reload's longest wait, ms.
    pub fn waits(&self) -> Vec<f64> {
        self.per_reload.iter().map(|w| w.0).collect()
    }

    /// Adds another run of the same subject (a fresh node, a later round).
    pub fn merge(&mut self, o: StallResult) {
        self.reloads += o.reloads;
        self.sent += o.sent;
        self.ok += o.ok;
        for (k, n) in o.errors {
            *self.errors.entry(k).or_default() += n;
        }
        self.lost += o.lost;
        self.steady.extend(o.steady);
        self.during.extend(o.during);
        self.windows.extend(o.windows);
        self.per_reload.extend(o.per_reload);
        self.per_reload_p50.extend(o.per_reload_p50);
        self.per_reload_base.extend(o.per_reload_base);
        self.statuses.extend(o.statuses);
    }
}

/// What is reloaded under load, and how.
pub struct Subject<'a> {
    pub key: &'static str,
    pub label: String,
    /// The file the node starts with (copied into a directory of its own).
    pub first: &'a Path,
    /// The file's contents, saved in turn (reload i writes
    /// `versions[(i + 1) % len]`); one version: the same bytes again.
    pub versions: &'a [Vec<u8>],
    /// Whether the file is an executable to chmod +x (the host starts
    /// scripts through their shebang too).
    pub executable: bool,
    /// Answers with a `pid` or a numeric `version`, so a new version shows.
    pub method: &'static str,
    pub params: &'static str,
    pub extra: Vec<String>,
    pub env: Vec<(String, String)>,
    pub reloads: usize,
    /// Read `autoreload-status` after each reload.
    pub status: bool,
}

enum Outcome {
    Ok,
    Err(String),
    Lost,
}

struct Rec {
    start: Duration,
    end: Duration,
    outcome: Outcome,
}

struct Shared {
    epoch: Instant,
    stop: AtomicBool,
    /// The version answering before the current reload; 0 when none runs.
    old: AtomicU64,
    /// When a caller first got an answer from another version (ns).
    first_new: AtomicU64,
    /// When the current reload's file was about to be written (ns): only a
    /// call started after it can be the new version's first answer (a
    /// retiring instance answering late may bear the new version's tag when
    /// the versions alternate).
    since: AtomicU64,
    new: AtomicU64,
}

fn version_of(v: &Value) -> u64 {
    v.get("pid")
        .and_then(Value::as_u64)
        .or_else(|| {
            v.get("version")
                .and_then(Value::as_str)
                .and_then(|s| s.parse().ok())
        })
        .unwrap_or(0)
}

fn caller(sh: &Shared, rpc: &Path, method: &str, params: &str) -> Result<Vec<Rec>> {
    let mut conn = Conn::connect(rpc, LOST_BOUND)?;
    let mut recs = vec![];
    while !sh.stop.load(Ordering::Relaxed) {
        let start = sh.epoch.elapsed();
        let r = conn.call(method, params);
        let end = sh.epoch.elapsed();
        let outcome = match r {
            Ok(Ok(v)) => {
                let tag = version_of(&v);
                let old = sh.old.load(Ordering::SeqCst);
                let since = Duration::from_nanos(sh.since.load(Ordering::SeqCst));
                if old != 0 && tag != old && tag != 0 && start >= since {
                    let ns = u64::try_from(end.as_nanos()).unwrap_or(u64::MAX);
                    if sh
                        .first_new
                        .compare_exchange(0, ns, Ordering::SeqCst, Ordering::SeqCst)
                        .is_ok()
                    {
                        sh.new.store(tag, Ordering::SeqCst);
                    }
                }
                Outcome::Ok
            }
            Ok(Err(msg)) => Outcome::Err(msg),
            Err(e) => {
                // Its answer may still come: never reuse that connection.
                conn = Conn::connect(rpc, LOST_BOUND)?;
                if e.is::<NoAnswer>() {
                    Outcome::Lost
                } else {
                    Outcome::Err(format!("{e:#}"))
                }
            }
        };
        recs.push(Rec {
            start,
            end,
            outcome,
        });
    }
    Ok(recs)
}

#[allow(clippy::too_many_arguments)]
fn one(
    pass: &Pass,
    counts: &Counts,
    key: &'static str,
    label: &str,
    first: &Path,
    versions: &[Vec<u8>],
    method: &'static str,
    extra: &[String],
) -> Result<StallResult> {
    let native = method == "bench-pid";
    let params = if native { "[]" } else { "[\"bench\"]" };
    measure(
        pass,
        counts,
        &Subject {
            key,
            label: label.to_string(),
            first,
            versions,
            executable: native,
            method,
            params,
            extra: extra.to_vec(),
            env: vec![],
            reloads: counts.stall_reloads,
            status: false,
        },
    )
}

/// Callers call `sub.method` in a closed loop while `sub.first` is saved
/// `sub.reloads` times, `counts.stall_gap` apart.
pub fn measure(pass: &Pass, counts: &Counts, sub: &Subject) -> Result<StallResult> {
    let (key, label, method, params) = (sub.key, sub.label.as_str(), sub.method, sub.params);
    let (node, file, _dir) = start_node_env(pass, sub.first, true, &sub.extra, &sub.env)?;
    let rpc = rpc_path(&node);
    let mut probe = Conn::connect(&rpc, LOST_BOUND)?;
    let mut current = version_of(&probe.ok(method, params)?);
    // Kept for `autoreload-status` (not one of the callers).
    let mut status = probe;
    let sh = Shared {
        epoch: Instant::now(),
        stop: AtomicBool::new(false),
        old: AtomicU64::new(0),
        first_new: AtomicU64::new(0),
        new: AtomicU64::new(0),
        since: AtomicU64::new(0),
    };
    if sub.versions.is_empty() {
        bail!("{label}: no version to save");
    }
    let mut windows: Vec<(Duration, Duration)> = vec![];
    let mut statuses: Vec<Value> = vec![];
    let (recs, reload_err) = std::thread::scope(|s| {
        let workers: Vec<_> = (0..counts.stall_callers)
            .map(|_| s.spawn(|| caller(&sh, &rpc, method, params)))
            .collect();
        let reloads = (|| -> Result<()> {
            std::thread::sleep(counts.stall_gap);
            for i in 0..sub.reloads {
                sh.first_new.store(0, Ordering::SeqCst);
                sh.old.store(current, Ordering::SeqCst);
                // Native: the same binary again (a new pid); wasm and
                // scripts: the other version.
                let bytes = &sub.versions[(i + 1) % sub.versions.len()];
                let ns = u64::try_from(sh.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
                sh.since.store(ns, Ordering::SeqCst);
                procs::write_atomically(&file, bytes, sub.executable)?;
                let t0 = sh.epoch.elapsed();
                let until = Instant::now() + Duration::from_secs(30);
                let t1 = loop {
                    let ns = sh.first_new.load(Ordering::SeqCst);
                    if ns != 0 {
                        break Duration::from_nanos(ns);
                    }
                    if Instant::now() > until {
                        bail!("{label}: reload {i} not serving within 30 s under load");
                    }
                    std::thread::sleep(Duration::from_micros(200));
                };
                // On a loaded machine this thread can lose the CPU between
                // the rename and reading the clock for longer than the
                // reload takes: the first new answer then comes "before"
                // t0, and the window is empty (it began at the rename).
                windows.push((t0.min(t1), t1));
                if sub.status {
                    let st = status.ok("autoreload-status", "{}")?;
                    statuses.push(st["plugins"][0].clone());
                }
                current = sh.new.load(Ordering::SeqCst);
                sh.old.store(0, Ordering::SeqCst);
                std::thread::sleep(counts.stall_gap);
            }
            Ok(())
        })();
        sh.stop.store(true, Ordering::SeqCst);
        let mut recs = vec![];
        let mut err = reloads.err();
        for w in workers {
            match w.join() {
                Ok(Ok(r)) => recs.extend(r),
                Ok(Err(e)) => err = Some(e),
                Err(_) => err = Some(anyhow!("a caller panicked")),
            }
        }
        (recs, err)
    });
    if let Some(e) = reload_err {
        return Err(e.context(format!("node stderr: {}", node.stderr())));
    }
    let _ = pass.rt.block_on(node.stop());
    let mut res = StallResult {
        key,
        label: label.to_string(),
        callers: counts.stall_callers,
        reloads: windows.len(),
        sent: recs.len(),
        ok: 0,
        errors: BTreeMap::new(),
        lost: 0,
        steady: vec![],
        during: vec![],
        windows: windows
            .iter()
            .map(|(a, b)| (*b - *a).as_secs_f64() * 1000.0)
            .collect(),
        per_reload: vec![],
        per_reload_p50: vec![],
        per_reload_base: vec![],
        statuses,
    };
    let ms = |a: Duration, b: Duration| (a.as_secs_f64() - b.as_secs_f64()) * 1000.0;
    let mut worst: Vec<Option<&Rec>> = vec![None; windows.len()];
    let mut lats: Vec<Vec<f64>> = vec![vec![]; windows.len()];
    // Steady calls by start: (start, latency ms).
    let mut steady_at: Vec<(Duration, f64)> = vec![];
    for r in &recs {
        match &r.outcome {
            Outcome::Ok => res.ok += 1,
            Outcome::Err(m) => *res.errors.entry(m.clone()).or_default() += 1,
            Outcome::Lost => res.lost += 1,
        }
        let lat = (r.end - r.start).as_secs_f64() * 1e6;
        let overlaps = |pad: Duration| {
            windows
                .iter()
                .any(|(a, b)| r.start <= *b + pad && r.end >= *a)
        };
        if overlaps(Duration::ZERO) {
            res.during.push(lat);
            for (w, (a, b)) in windows.iter().enumerate() {
                if r.start <= *b && r.end >= *a {
                    lats[w].push(lat / 1000.0);
                    if worst[w].is_none_or(|x| x.end - x.start < r.end - r.start) {
                        worst[w] = Some(r);
                    }
                }
            }
        } else if !overlaps(AFTERMATH) {
            res.steady.push(lat);
            steady_at.push((r.start, lat / 1000.0));
        }
    }
    res.per_reload = worst
        .iter()
        .zip(&windows)
        .filter_map(|(r, (a, b))| r.map(|r| (ms(r.end, r.start), ms(r.start, *a), ms(r.end, *b))))
        .collect();
    res.per_reload_p50 = lats.iter().map(|v| median(v)).collect();
    steady_at.sort_by_key(|x| x.0);
    res.per_reload_base = windows
        .iter()
        .zip(&lats)
        .map(|((a, _), l)| {
            let before = steady_at.partition_point(|x| x.0 < *a);
            steady_at[before.saturating_sub(l.len())..before]
                .iter()
                .map(|x| x.1)
                .fold(f64::NAN, f64::max)
        })
        .collect();
    Ok(res)
}

pub fn run(pass: &Pass, bins: &Bins, counts: &Counts) -> Result<Vec<StallResult>> {
    let native = std::fs::read(&bins.bench_plugin)?;
    let w = &bins.wasm_versions;
    // Both module caches off: every swap follows a compile, as a new
    // edit's does (two versions alternate; a cache would serve the rest).
    let no_cache = [
        "--autoreload-wasm-memory-cache-mb=0".to_string(),
        "--autoreload-wasm-cache-dir=off".to_string(),
    ];
    let with = |more: &[&str]| -> Vec<String> {
        let mut v = no_cache.to_vec();
        v.extend(more.iter().map(|s| s.to_string()));
        v
    };
    Ok(vec![
        one(
            pass,
            counts,
            "native",
            "native: bench-plugin",
            &bins.bench_plugin,
            &[native],
            "bench-pid",
            &[],
        )?,
        one(
            pass,
            counts,
            "wasm-winch",
            "wasm: hello-wasm release, Winch",
            &w.release_1,
            &w.release,
            "hello",
            &with(&[]),
        )?,
        one(
            pass,
            counts,
            "wasm-winch-low",
            "wasm: hello-wasm release, Winch, compile at low priority",
            &w.release_1,
            &w.release,
            "hello",
            &with(&["--autoreload-wasm-reload-priority=low"]),
        )?,
        one(
            pass,
            counts,
            "wasm-cranelift",
            "wasm: hello-wasm release, Cranelift",
            &w.release_1,
            &w.release,
            "hello",
            &with(&["--autoreload-wasm-compiler=cranelift"]),
        )?,
    ])
}
