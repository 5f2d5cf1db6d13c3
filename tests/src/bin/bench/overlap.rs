//! Native reloads under load in each reload mode, side by side: a warm
//! start (the default), a full overlap and break-before-make (section
//! `reload-native`), and the cost of a state hand-over by the
//! state's size (section `handover`). Both reuse the stall measurement
//! (stall.rs `measure`): callers call in a closed loop while the file is
//! saved again and again; per reload, the longest wait of a call that
//! overlapped the reload window and the p50 of those calls.

use crate::reload::{pyln_missing, pyln_text};
use crate::stall::{measure, StallResult, Subject};
use crate::{Bins, Counts, Pass};
use anyhow::{anyhow, Context as _, Result};
use serde_json::Value;
use std::collections::BTreeMap;

/// One plugin in one reload mode.
pub struct NativeArm {
    /// "rust" or "pyln".
    pub plugin: &'static str,
    pub label: String,
    /// The `autoreload-overlap` value it ran with.
    pub mode: &'static str,
    pub res: StallResult,
    /// `last_handover` outcomes seen after the reloads (hello.py keeps its
    /// `calls` with python/cln_autoreload_state.py), with their count.
    pub handovers: BTreeMap<String, usize>,
    /// `last_handover.duration_ms` of the restored ones.
    pub handover_ms: Vec<f64>,
}

pub struct NativeResults {
    pub arms: Vec<NativeArm>,
    pub rounds: usize,
    pub per_round: usize,
    /// Why hello.py was left out, if it was.
    pub pyln: Option<String>,
}

impl NativeResults {
    pub fn empty() -> NativeResults {
        NativeResults {
            arms: vec![],
            rounds: 0,
            per_round: 0,
            pyln: None,
        }
    }

    pub fn arm(&self, plugin: &str, mode: &str) -> Option<&NativeArm> {
        self.arms
            .iter()
            .find(|a| a.plugin == plugin && a.mode == mode)
    }
}

/// One state size.
pub struct HandoverCase {
    /// STATE_SIZE: bytes of padding in the state.
    pub size: usize,
    pub res: StallResult,
    /// `last_handover.bytes` (the state's JSON) of the restored hand-overs.
    pub bytes: Vec<f64>,
    /// `last_handover.duration_ms` of the restored hand-overs: from the
    /// save request to the old version to the new version's answer to the
    /// restore.
    pub ms: Vec<f64>,
    pub outcomes: BTreeMap<String, usize>,
}

pub struct HandoverResults {
    pub cases: Vec<HandoverCase>,
    pub rounds: usize,
    pub per_round: usize,
}

impl HandoverResults {
    pub fn empty() -> HandoverResults {
        HandoverResults {
            cases: vec![],
            rounds: 0,
            per_round: 0,
        }
    }
}

/// The hand-over each status reports, if it is this reload's: (outcome,
/// duration_ms, bytes). A reload with no hand-over (a plugin that keeps
/// no state) reports none; one whose `to` is not the generation now
/// serving reports an older hand-over: "stale".
fn handover_of(status: &Value) -> Option<(String, Option<f64>, Option<f64>)> {
    let h = status.get("last_handover")?;
    let outcome = h["outcome"].as_str().unwrap_or("(no outcome)").to_string();
    if h.get("to").is_some() && h["to"] != status["generation"] {
        return Some((format!("stale (for generation {})", h["to"]), None, None));
    }
    Some((outcome, h["duration_ms"].as_f64(), h["bytes"].as_f64()))
}

/// Runs each arm for `rounds` rounds of `per_round` reloads, a fresh node
/// each time, the arms taking turns (rotating which goes first).
fn rotate(
    pass: &Pass,
    counts: &Counts,
    subjects: &[Subject],
    rounds: usize,
) -> Result<Vec<StallResult>> {
    let n = subjects.len();
    let mut out: Vec<Option<StallResult>> = (0..n).map(|_| None).collect();
    for r in 0..rounds {
        for k in 0..n {
            let i = (k + r) % n;
            let got = measure(pass, counts, &subjects[i])
                .with_context(|| format!("{}, round {}", subjects[i].label, r + 1))?;
            match &mut out[i] {
                Some(x) => x.merge(got),
                slot => *slot = Some(got),
            }
        }
    }
    out.into_iter()
        .map(|r| r.ok_or_else(|| anyhow!("no round ran")))
        .collect()
}

pub fn run_native(pass: &Pass, bins: &Bins, counts: &Counts) -> Result<NativeResults> {
    let rust = vec![std::fs::read(&bins.bench_plugin)
        .with_context(|| format!("reading {}", bins.bench_plugin.display()))?];
    let pyln = pyln_missing();
    let keep = cln_autoreload_tests::tempdir();
    let mut py = vec![];
    let py_first = keep.path().join("hello.py");
    if pyln.is_none() {
        let src = std::fs::read_to_string(
            cln_autoreload_tests::root().join("examples/hello-py/hello.py"),
        )
        .context("reading examples/hello-py/hello.py")?;
        py = vec![pyln_text(&src, "1")?, pyln_text(&src, "2")?];
        crate::procs::write_atomically(&py_first, &py[0], true)?;
    }
    // The copy is not beside the repository's python/: hello.py finds
    // cln_autoreload_state through PYTHONPATH, so that its `calls` is
    // handed over as a developer running it from the repository sees.
    let pythonpath = cln_autoreload_tests::root().join("python");
    let mut plan: Vec<(&'static str, &'static str)> = vec![];
    let mut subjects = vec![];
    for (overlap, mode) in MODES {
        let extra = vec![format!("--autoreload-overlap={overlap}")];
        plan.push(("rust", overlap));
        subjects.push(Subject {
            key: "rust",
            label: format!("bench-plugin (Rust), {mode}"),
            first: &bins.bench_plugin,
            versions: &rust,
            executable: true,
            method: "bench-pid",
            params: "[]",
            extra: extra.clone(),
            env: vec![],
            reloads: counts.native_reloads,
            status: true,
        });
        if pyln.is_none() {
            plan.push(("pyln", overlap));
            subjects.push(Subject {
                key: "pyln",
                label: format!("hello.py (pyln-client), {mode}"),
                first: &py_first,
                versions: &py,
                executable: true,
                method: "hello",
                params: "[\"bench\"]",
                extra,
                env: vec![(
                    "PYTHONPATH".to_string(),
                    pythonpath.to_string_lossy().into_owned(),
                )],
                reloads: counts.native_reloads,
                status: true,
            });
        }
    }
    let results = rotate(pass, counts, &subjects, counts.native_rounds)?;
    let arms = plan
        .into_iter()
        .zip(subjects.iter().zip(results))
        .map(|((plugin, mode), (sub, res))| {
            let mut handovers = BTreeMap::new();
            let mut handover_ms = vec![];
            for st in &res.statuses {
                if let Some((outcome, ms, _)) = handover_of(st) {
                    if outcome == "restored" {
                        handover_ms.extend(ms);
                    }
                    *handovers.entry(outcome).or_default() += 1;
                }
            }
            NativeArm {
                plugin,
                label: sub.label.clone(),
                mode,
                res,
                handovers,
                handover_ms,
            }
        })
        .collect();
    Ok(NativeResults {
        arms,
        rounds: counts.native_rounds,
        per_round: counts.native_reloads,
        pyln,
    })
}

/// The reload modes measured: the `autoreload-overlap` value and what it
/// does.
pub const MODES: [(&str, &str); 3] = [
    ("warm", "warm start"),
    ("full", "full overlap"),
    ("false", "break-before-make"),
];

/// The state sizes measured (STATE_SIZE, bytes of padding).
pub const SIZES: [usize; 4] = [0, 64 << 10, 1 << 20, 8 << 20];

/// tests/plugins/stateful.py as version `v` with `size` bytes of state:
/// both set on lines right after the shebang (its header says so).
fn stateful_text(src: &str, v: &str, size: usize) -> Result<Vec<u8>> {
    let (shebang, rest) = src
        .split_once('\n')
        .filter(|(first, _)| first.starts_with("#!"))
        .ok_or_else(|| anyhow!("tests/plugins/stateful.py no longer starts with a shebang"))?;
    Ok(
        format!("{shebang}\nVERSION = \"{v}\"\nCONFIG = {{\"STATE_SIZE\": {size}}}\n{rest}")
            .into_bytes(),
    )
}

pub fn run_handover(pass: &Pass, counts: &Counts) -> Result<HandoverResults> {
    let src_path = cln_autoreload_tests::root().join("tests/plugins/stateful.py");
    let src = std::fs::read_to_string(&src_path)
        .with_context(|| format!("reading {}", src_path.display()))?;
    let keep = cln_autoreload_tests::tempdir();
    let mut texts = vec![];
    let mut firsts = vec![];
    for size in SIZES {
        // `count` answers {"calls", "version"}: numeric versions, so that
        // the stall measurement tells the new version's answers.
        let t = vec![
            stateful_text(&src, "1", size)?,
            stateful_text(&src, "2", size)?,
        ];
        let dir = keep.path().join(format!("s{size}"));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let first = dir.join("stateful.py");
        crate::procs::write_atomically(&first, &t[0], true)?;
        texts.push(t);
        firsts.push(first);
    }
    let subjects: Vec<Subject> = SIZES
        .iter()
        .zip(texts.iter().zip(&firsts))
        .map(|(size, (t, first))| Subject {
            key: "stateful",
            label: format!("stateful.py, STATE_SIZE {}", size_label(*size)),
            first: first.as_path(),
            versions: t,
            executable: true,
            method: "count",
            params: "[]",
            extra: vec![],
            env: vec![],
            reloads: counts.handover_reloads,
            status: true,
        })
        .collect();
    let results = rotate(pass, counts, &subjects, counts.handover_rounds)?;
    let cases = SIZES
        .iter()
        .zip(results)
        .map(|(size, res)| {
            let mut c = HandoverCase {
                size: *size,
                bytes: vec![],
                ms: vec![],
                outcomes: BTreeMap::new(),
                res,
            };
            for st in &c.res.statuses {
                let (outcome, ms, bytes) =
                    handover_of(st).unwrap_or_else(|| ("no hand-over".into(), None, None));
                if outcome == "restored" {
                    c.ms.extend(ms);
                    c.bytes.extend(bytes);
                }
                *c.outcomes.entry(outcome).or_default() += 1;
            }
            c
        })
        .collect();
    Ok(HandoverResults {
        cases,
        rounds: counts.handover_rounds,
        per_round: counts.handover_reloads,
    })
}

/// "0", "64 KiB", "1 MiB", "8 MiB".
pub fn size_label(size: usize) -> String {
    if size >= 1 << 20 {
        format!("{} MiB", size >> 20)
    } else if size >= 1 << 10 {
        format!("{} KiB", size >> 10)
    } else {
        size.to_string()
    }
}
