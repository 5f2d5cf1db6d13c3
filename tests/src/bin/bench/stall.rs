//! Stall: callers in a closed loop while the plugin is reloaded again and
//! again. How long does a request wait during a reload, compared with
//! steady state, and is every call answered?

use crate::client::{Conn, NoAnswer};
use crate::procs;
use crate::socket::{rpc_path, start_node};
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
}

impl StallResult {
    /// The reload whose longest call waited longest.
    pub fn worst(&self) -> Option<(f64, f64, f64)> {
        self.per_reload
            .iter()
            .copied()
            .max_by(|a, b| a.0.total_cmp(&b.0))
    }
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
                if old != 0 && tag != old && tag != 0 {
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
    versions: &[Vec<u8>; 2],
    method: &'static str,
    extra: &[String],
) -> Result<StallResult> {
    let (node, file, _dir) = start_node(pass, first, true, extra)?;
    let rpc = rpc_path(&node);
    let params = if method == "bench-pid" {
        "[]"
    } else {
        "[\"bench\"]"
    };
    let mut probe = Conn::connect(&rpc, LOST_BOUND)?;
    let mut current = version_of(&probe.ok(method, params)?);
    drop(probe);
    let sh = Shared {
        epoch: Instant::now(),
        stop: AtomicBool::new(false),
        old: AtomicU64::new(0),
        first_new: AtomicU64::new(0),
        new: AtomicU64::new(0),
    };
    let native = method == "bench-pid";
    let mut windows: Vec<(Duration, Duration)> = vec![];
    let (recs, reload_err) = std::thread::scope(|s| {
        let workers: Vec<_> = (0..counts.stall_callers)
            .map(|_| s.spawn(|| caller(&sh, &rpc, method, params)))
            .collect();
        let reloads = (|| -> Result<()> {
            std::thread::sleep(counts.stall_gap);
            for i in 0..counts.stall_reloads {
                sh.first_new.store(0, Ordering::SeqCst);
                sh.old.store(current, Ordering::SeqCst);
                // Native: the same binary again (a new pid); wasm: the
                // other module.
                let bytes = if native {
                    &versions[0]
                } else {
                    &versions[(i + 1) % 2]
                };
                procs::write_atomically(&file, bytes, native)?;
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
                windows.push((t0, t1));
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
    };
    let ms = |a: Duration, b: Duration| (a.as_secs_f64() - b.as_secs_f64()) * 1000.0;
    let mut worst: Vec<Option<&Rec>> = vec![None; windows.len()];
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
                if r.start <= *b
                    && r.end >= *a
                    && worst[w].is_none_or(|x| x.end - x.start < r.end - r.start)
                {
                    worst[w] = Some(r);
                }
            }
        } else if !overlaps(AFTERMATH) {
            res.steady.push(lat);
        }
    }
    res.per_reload = worst
        .iter()
        .zip(&windows)
        .filter_map(|(r, (a, b))| r.map(|r| (ms(r.end, r.start), ms(r.start, *a), ms(r.end, *b))))
        .collect();
    Ok(res)
}

pub fn run(pass: &Pass, bins: &Bins, counts: &Counts) -> Result<Vec<StallResult>> {
    let native = std::fs::read(&bins.bench_plugin)?;
    let w = &bins.wasm_versions;
    let cranelift = vec!["--autoreload-wasm-compiler=cranelift".to_string()];
    Ok(vec![
        one(
            pass,
            counts,
            "native",
            "native: bench-plugin",
            &bins.bench_plugin,
            &[native.clone(), native],
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
            &[],
        )?,
        one(
            pass,
            counts,
            "wasm-cranelift",
            "wasm: hello-wasm release, Cranelift",
            &w.release_1,
            &w.release,
            "hello",
            &cranelift,
        )?,
    ])
}
