//! The stdio path: the benchmark acts as lightningd and drives a plugin's
//! stdin/stdout directly, through the byte pump, through the minimal
//! forwarder and through cln-autoreload, alternating rounds; once with the scheduler free to place
//! the processes, once with all of them on one core.

use crate::client::PipeProc;
use crate::stats::{median, Summary};
use crate::{Bins, Counts};
use anyhow::{bail, Context as _, Result};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// One way of reaching a plugin over stdio.
pub struct ArmResult {
    pub key: &'static str,
    pub label: String,
    /// Every round trip, µs.
    pub all: Vec<f64>,
    /// Each round's median, µs.
    pub round_p50: Vec<f64>,
    /// Each throughput round, calls/s.
    pub tput: Vec<f64>,
}

impl ArmResult {
    pub fn summary(&self) -> Summary {
        Summary::of(&self.all)
    }
}

/// One placement of the processes.
pub struct StdioMode {
    pub name: String,
    pub arms: Vec<ArmResult>,
}

impl StdioMode {
    pub fn arm(&self, key: &str) -> Option<&ArmResult> {
        self.arms.iter().find(|a| a.key == key)
    }
}

pub struct StdioResults {
    pub modes: Vec<StdioMode>,
    /// Why the one-core mode is missing, if it is.
    pub pin_error: Option<String>,
    pub window: usize,
    pub rounds: usize,
    pub calls: usize,
    pub tput_rounds: usize,
    pub tput_calls: usize,
}

impl StdioResults {
    /// Not measured (`--only` without stdio).
    pub fn empty(counts: &Counts) -> StdioResults {
        StdioResults {
            modes: vec![],
            pin_error: None,
            window: counts.window,
            rounds: 0,
            calls: 0,
            tput_rounds: 0,
            tput_calls: 0,
        }
    }
}

pub fn run(bins: &Bins, counts: &Counts) -> Result<StdioResults> {
    let mut modes = vec![run_mode(
        bins,
        counts,
        "processes placed by the scheduler".into(),
    )?];
    let mut pin_error = None;
    match crate::procs::on_one_core(|cpu| {
        run_mode(
            bins,
            counts,
            format!("every process on one core (CPU {cpu})"),
        )
    }) {
        Ok(m) => modes.push(m),
        Err(e) => pin_error = Some(format!("{e:#}")),
    }
    Ok(StdioResults {
        modes,
        pin_error,
        window: counts.window,
        rounds: counts.epochs * counts.stdio_rounds,
        calls: counts.stdio_calls,
        tput_rounds: counts.epochs * counts.stdio_tput_rounds,
        tput_calls: counts.stdio_tput_calls,
    })
}

/// Several epochs, each with fresh processes (so fresh placements).
fn run_mode(bins: &Bins, counts: &Counts, name: String) -> Result<StdioMode> {
    let mut arms: Vec<ArmResult> = vec![];
    for _ in 0..counts.epochs {
        for a in run_epoch(bins, counts)? {
            match arms.iter_mut().find(|x| x.key == a.key) {
                Some(x) => {
                    x.all.extend(a.all);
                    x.round_p50.extend(a.round_p50);
                    x.tput.extend(a.tput);
                }
                None => arms.push(a),
            }
        }
    }
    Ok(StdioMode { name, arms })
}

struct Arm {
    key: &'static str,
    label: String,
    proc: PipeProc,
    method: &'static str,
    params: &'static str,
    _dir: tempfile::TempDir,
}

fn lightningd_like(cmd: &mut Command, cwd: &Path) {
    cmd.current_dir(cwd)
        .env("LIGHTNINGD_PLUGIN", "1")
        .env("LIGHTNINGD_VERSION", "v26.06.6");
}

#[allow(clippy::too_many_arguments)]
fn arm(
    key: &'static str,
    label: &str,
    program: &Path,
    args: &[&Path],
    plugin_file: Option<&Path>,
    options: &str,
    method: &'static str,
    params: &'static str,
) -> Result<Arm> {
    let dir = cln_autoreload_tests::tempdir();
    let cwd = dir.path().join("regtest");
    std::fs::create_dir_all(&cwd)?;
    // The managed plugin gets a directory of its own: the host watches it.
    let mut args: Vec<std::path::PathBuf> = args.iter().map(|a| a.to_path_buf()).collect();
    if let Some(p) = plugin_file {
        args.push(crate::procs::copy_into(p, dir.path())?);
    }
    let mut cmd = Command::new(program);
    cmd.args(&args);
    lightningd_like(&mut cmd, &cwd);
    let mut proc = PipeProc::spawn(label, cmd)?;
    proc.handshake(dir.path(), options)
        .with_context(|| format!("start-up of {label}"))?;
    Ok(Arm {
        key,
        label: label.to_string(),
        proc,
        method,
        params,
        _dir: dir,
    })
}

fn latency_round(a: &mut Arm, calls: usize) -> Result<Vec<f64>> {
    let mut v = Vec::with_capacity(calls);
    a.proc.dog.arm(Duration::from_secs(60));
    for _ in 0..calls {
        let t = Instant::now();
        a.proc.request(a.method, a.params)?;
        v.push(t.elapsed().as_secs_f64() * 1e6);
    }
    a.proc.dog.disarm();
    Ok(v)
}

/// `calls` requests with up to `window` in flight; calls/s.
fn throughput_round(a: &mut Arm, calls: usize, window: usize) -> Result<f64> {
    a.proc.dog.arm(Duration::from_secs(120));
    let t = Instant::now();
    let (mut sent, mut got) = (0, 0);
    while got < calls {
        while sent < calls && sent - got < window {
            a.proc.send(a.method, a.params)?;
            sent += 1;
        }
        let m = a.proc.recv()?;
        if let Err(e) = m.outcome() {
            bail!(
                "{}: {} answered an error under load: {e}",
                a.label,
                a.method
            );
        }
        got += 1;
    }
    let secs = t.elapsed().as_secs_f64();
    a.proc.dog.disarm();
    Ok(calls as f64 / secs)
}

fn run_epoch(bins: &Bins, counts: &Counts) -> Result<Vec<ArmResult>> {
    let none: &[&Path] = &[];
    let host = bins.host.as_path();
    let mut arms = vec![
        arm(
            "direct",
            "bench-plugin, direct",
            &bins.bench_plugin,
            none,
            None,
            "{}",
            "bench-pid",
            "[]",
        )?,
        arm(
            "pump",
            "bench-plugin via the byte pump",
            &bins.pump,
            &[&bins.bench_plugin],
            None,
            "{}",
            "bench-pid",
            "[]",
        )?,
        arm(
            "forwarder",
            "bench-plugin via the minimal forwarder",
            &bins.forwarder,
            &[&bins.bench_plugin],
            None,
            "{}",
            "bench-pid",
            "[]",
        )?,
        arm(
            "host",
            "bench-plugin via cln-autoreload",
            host,
            none,
            Some(&bins.bench_plugin),
            "{}",
            "bench-pid",
            "[]",
        )?,
        arm(
            "guest-direct",
            "hello-wasm built natively, direct",
            &bins.hello_wasm_native,
            none,
            None,
            "{}",
            "hello",
            "[\"bench\"]",
        )?,
        arm(
            "host-winch",
            "hello-wasm.wasm via cln-autoreload (Winch)",
            host,
            none,
            Some(&bins.hello_wasm_release),
            "{}",
            "hello",
            "[\"bench\"]",
        )?,
        arm(
            "host-cranelift",
            "hello-wasm.wasm via cln-autoreload (Cranelift)",
            host,
            none,
            Some(&bins.hello_wasm_release),
            "{\"autoreload-wasm-compiler\":\"cranelift\"}",
            "hello",
            "[\"bench\"]",
        )?,
    ];
    // Warm up every path (page faults, branch predictors, lazy statics).
    for a in &mut arms {
        latency_round(a, counts.warmup)?;
        throughput_round(a, counts.warmup, counts.window)?;
    }
    let n = arms.len();
    let mut all: Vec<Vec<f64>> = vec![vec![]; n];
    let mut round_p50: Vec<Vec<f64>> = vec![vec![]; n];
    let mut tput: Vec<Vec<f64>> = vec![vec![]; n];
    for r in 0..counts.stdio_rounds {
        for k in 0..n {
            let i = (k + r) % n;
            let v = latency_round(&mut arms[i], counts.stdio_calls)?;
            round_p50[i].push(median(&v));
            all[i].extend(v);
        }
    }
    for r in 0..counts.stdio_tput_rounds {
        for k in 0..n {
            let i = (k + r) % n;
            tput[i].push(throughput_round(
                &mut arms[i],
                counts.stdio_tput_calls,
                counts.window,
            )?);
        }
    }
    let mut out = vec![];
    for (i, a) in arms.into_iter().enumerate() {
        out.push(ArmResult {
            key: a.key,
            label: a.label,
            all: std::mem::take(&mut all[i]),
            round_p50: std::mem::take(&mut round_p50[i]),
            tput: std::mem::take(&mut tput[i]),
        });
        a.proc.finish();
    }
    Ok(out)
}
