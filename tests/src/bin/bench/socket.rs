//! The socket path: calls over a node's `lightning-rpc`, to a plugin the
//! node loads directly, behind the byte pump or the minimal forwarder, and
//! through cln-autoreload, alternating rounds; one caller, then 16
//! concurrent connections.

use crate::client::Conn;
use crate::procs;
use crate::stats::{median, Summary};
use crate::{Bins, Counts, Pass};
use anyhow::{anyhow, Context as _, Result};
use cln_autoreload_tests::{Node, NodeBuilder};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Barrier;
use std::time::{Duration, Instant};

pub const CALL_BOUND: Duration = Duration::from_secs(10);

pub struct ArmResult {
    pub key: &'static str,
    pub label: String,
    pub one_all: Vec<f64>,
    pub one_p50: Vec<f64>,
    pub one_tput: Vec<f64>,
    pub conc_all: Vec<f64>,
    pub conc_p50: Vec<f64>,
    pub conc_p99: Vec<f64>,
    pub conc_tput: Vec<f64>,
    /// Host RSS (MB) idle after warm-up, peak sampled under load, VmHWM.
    pub rss_idle: Option<f64>,
    pub rss_load: Option<f64>,
    pub hwm: Option<f64>,
}

impl ArmResult {
    pub fn one(&self) -> Summary {
        Summary::of(&self.one_all)
    }
    pub fn conc(&self) -> Summary {
        Summary::of(&self.conc_all)
    }
}

/// One placement of the processes.
pub struct SocketMode {
    pub name: String,
    pub arms: Vec<ArmResult>,
}

impl SocketMode {
    pub fn arm(&self, key: &str) -> Option<&ArmResult> {
        self.arms.iter().find(|a| a.key == key)
    }
}

pub struct SocketResults {
    pub modes: Vec<SocketMode>,
    /// Why the one-core mode is missing, if it is.
    pub pin_error: Option<String>,
    pub callers: usize,
    pub rounds: usize,
    pub calls: usize,
    pub conc_rounds: usize,
    pub conc_calls: usize,
}

impl SocketResults {
    /// Not measured (`--only` without socket).
    pub fn empty(counts: &Counts) -> SocketResults {
        SocketResults {
            modes: vec![],
            pin_error: None,
            callers: counts.callers,
            rounds: 0,
            calls: 0,
            conc_rounds: 0,
            conc_calls: 0,
        }
    }

    /// The arms with the processes placed by the scheduler (what a node
    /// sees), for memory and the headline figures.
    pub fn arms(&self) -> &[ArmResult] {
        self.modes.first().map_or(&[], |m| &m.arms)
    }

    pub fn arm(&self, key: &str) -> Option<&ArmResult> {
        self.arms().iter().find(|a| a.key == key)
    }
}

struct Arm {
    key: &'static str,
    label: String,
    node: Node,
    rpc: PathBuf,
    host: Option<u32>,
    method: &'static str,
    params: &'static str,
    _plugin_dir: tempfile::TempDir,
}

/// The node's `lightning-rpc` (NodeBuilder puts it there).
pub fn rpc_path(node: &Node) -> PathBuf {
    node.dir.path().join("regtest/lightning-rpc")
}

/// Starts a node: with the host managing `plugin` (`managed`), or loading
/// `plugin` itself. Returns the node and the plugin copy's directory.
pub fn start_node(
    pass: &Pass,
    plugin: &Path,
    managed: bool,
    extra: &[String],
) -> Result<(Node, PathBuf, tempfile::TempDir)> {
    start_node_env(pass, plugin, managed, extra, &[])
}

/// `start_node`, with environment variables for the node (and so for the
/// host and its plugins).
pub fn start_node_env(
    pass: &Pass,
    plugin: &Path,
    managed: bool,
    extra: &[String],
    env: &[(String, String)],
) -> Result<(Node, PathBuf, tempfile::TempDir)> {
    let dir = cln_autoreload_tests::tempdir();
    let copy = procs::copy_into(plugin, dir.path())?;
    let mut b = if managed {
        NodeBuilder::new().arg(format!("--autoreload-plugin={}", copy.display()))
    } else {
        NodeBuilder::new()
            .without_host()
            .arg(format!("--plugin={}", copy.display()))
    };
    b = b.args(extra.iter().cloned());
    for (k, v) in env {
        b = b.env(k, v.clone());
    }
    let node = pass
        .rt
        .block_on(b.start())
        .with_context(|| format!("starting a node with {}", copy.display()))?
        .ok_or_else(|| anyhow!("the node did not start (skipped?)"))?;
    Ok((node, copy, dir))
}

#[allow(clippy::too_many_arguments)]
fn arm(
    pass: &Pass,
    key: &'static str,
    label: &str,
    plugin: &Path,
    managed: bool,
    extra: &[String],
    method: &'static str,
    params: &'static str,
) -> Result<Arm> {
    let (node, _, dir) = start_node(pass, plugin, managed, extra)?;
    let host = match (managed, node.pid()) {
        (true, Some(pid)) => Some(procs::host_of(pid)?),
        _ => None,
    };
    Ok(Arm {
        key,
        label: label.to_string(),
        rpc: rpc_path(&node),
        node,
        host,
        method,
        params,
        _plugin_dir: dir,
    })
}

/// hello-native behind a proxy that takes the plugin as its argument
/// (`proxy`: the minimal forwarder or the byte pump), loaded by the node
/// directly (through a wrapper script that execs `PROXY hello-native`).
fn proxied_arm(
    pass: &Pass,
    bins: &Bins,
    proxy: &Path,
    key: &'static str,
    what: &str,
) -> Result<Arm> {
    let dir = cln_autoreload_tests::tempdir();
    let plugin = procs::copy_into(&bins.hello_native, dir.path())?;
    let wrapper = dir.path().join(format!("hello-native-via-{key}"));
    let text = format!("#!/bin/sh\nexec {} {}\n", proxy.display(), plugin.display());
    procs::write_atomically(&wrapper, text.as_bytes(), true)?;
    let node = pass
        .rt
        .block_on(
            NodeBuilder::new()
                .without_host()
                .arg(format!("--plugin={}", wrapper.display()))
                .start(),
        )
        .with_context(|| format!("starting a node with hello-native behind {what}"))?
        .ok_or_else(|| anyhow!("the node did not start (skipped?)"))?;
    Ok(Arm {
        key,
        label: format!("hello-native via {what}"),
        rpc: rpc_path(&node),
        node,
        host: None,
        method: "hello-native",
        params: "[\"bench\"]",
        _plugin_dir: dir,
    })
}

fn calls(c: &mut Conn, method: &str, params: &str, n: usize) -> Result<Vec<f64>> {
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        c.ok(method, params)?;
        v.push(t.elapsed().as_secs_f64() * 1e6);
    }
    Ok(v)
}

/// `conns.len()` callers at once, `n` calls each. Returns latencies,
/// calls/s and the host's peak RSS sampled meanwhile.
fn concurrent(a: &Arm, conns: &mut [Conn], n: usize) -> Result<(Vec<f64>, f64, Option<f64>)> {
    let callers = conns.len();
    let barrier = Barrier::new(callers + 1);
    let done = AtomicBool::new(false);
    let (method, params, host) = (a.method, a.params, a.host);
    std::thread::scope(|s| {
        let sampler = s.spawn(|| {
            let mut peak: Option<f64> = None;
            while !done.load(Ordering::Relaxed) {
                if let Some(rss) = host.and_then(|h| procs::rss_mb(h).ok()) {
                    peak = Some(peak.map_or(rss, |p: f64| p.max(rss)));
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            peak
        });
        let workers: Vec<_> = conns
            .iter_mut()
            .map(|c| {
                let barrier = &barrier;
                s.spawn(move || {
                    barrier.wait();
                    calls(c, method, params, n)
                })
            })
            .collect();
        barrier.wait();
        let t = Instant::now();
        let mut all = vec![];
        let mut err = None;
        for w in workers {
            match w.join() {
                Ok(Ok(v)) => all.extend(v),
                Ok(Err(e)) => err = Some(e),
                Err(_) => err = Some(anyhow!("a caller thread panicked")),
            }
        }
        let secs = t.elapsed().as_secs_f64();
        done.store(true, Ordering::Relaxed);
        let peak = sampler.join().ok().flatten();
        match err {
            Some(e) => Err(e.context(format!("16 callers on {}", a.label))),
            None => Ok((all, (callers * n) as f64 / secs, peak)),
        }
    })
}

pub fn run(pass: &Pass, bins: &Bins, counts: &Counts) -> Result<SocketResults> {
    let mut modes = vec![run_mode(
        pass,
        bins,
        counts,
        "processes placed by the scheduler".into(),
    )?];
    let mut pin_error = None;
    match procs::on_one_core(|cpu| {
        run_mode(
            pass,
            bins,
            counts,
            format!("every process on one core (CPU {cpu})"),
        )
    }) {
        Ok(m) => modes.push(m),
        Err(e) => pin_error = Some(format!("{e:#}")),
    }
    Ok(SocketResults {
        modes,
        pin_error,
        callers: counts.callers,
        rounds: counts.epochs * counts.sock_rounds,
        calls: counts.sock_calls,
        conc_rounds: counts.epochs * counts.conc_rounds,
        conc_calls: counts.conc_calls,
    })
}

/// Several epochs, each with fresh nodes (so fresh placements).
fn run_mode(pass: &Pass, bins: &Bins, counts: &Counts, name: String) -> Result<SocketMode> {
    let mut arms: Vec<ArmResult> = vec![];
    for _ in 0..counts.epochs {
        for a in run_epoch(pass, bins, counts)? {
            match arms.iter_mut().find(|x| x.key == a.key) {
                Some(x) => {
                    x.one_all.extend(a.one_all);
                    x.one_p50.extend(a.one_p50);
                    x.one_tput.extend(a.one_tput);
                    x.conc_all.extend(a.conc_all);
                    x.conc_p50.extend(a.conc_p50);
                    x.conc_p99.extend(a.conc_p99);
                    x.conc_tput.extend(a.conc_tput);
                    x.rss_idle = x.rss_idle.or(a.rss_idle);
                    x.rss_load = max_opt(x.rss_load, a.rss_load);
                    x.hwm = max_opt(x.hwm, a.hwm);
                }
                None => arms.push(a),
            }
        }
    }
    Ok(SocketMode { name, arms })
}

fn max_opt(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

fn run_epoch(pass: &Pass, bins: &Bins, counts: &Counts) -> Result<Vec<ArmResult>> {
    let cranelift = vec!["--autoreload-wasm-compiler=cranelift".to_string()];
    let arms = vec![
        arm(
            pass,
            "native-direct",
            "hello-native, loaded directly",
            &bins.hello_native,
            false,
            &[],
            "hello-native",
            "[\"bench\"]",
        )?,
        proxied_arm(pass, bins, &bins.pump, "native-pump", "the byte pump")?,
        proxied_arm(
            pass,
            bins,
            &bins.forwarder,
            "native-forwarder",
            "the minimal forwarder",
        )?,
        arm(
            pass,
            "native-host",
            "hello-native via cln-autoreload",
            &bins.hello_native,
            true,
            &[],
            "hello-native",
            "[\"bench\"]",
        )?,
        arm(
            pass,
            "guest-direct",
            "hello-wasm built natively, loaded directly",
            &bins.hello_wasm_native,
            false,
            &[],
            "hello",
            "[\"bench\"]",
        )?,
        arm(
            pass,
            "wasm-winch",
            "hello-wasm.wasm via cln-autoreload (Winch)",
            &bins.hello_wasm_release,
            true,
            &[],
            "hello",
            "[\"bench\"]",
        )?,
        arm(
            pass,
            "wasm-cranelift",
            "hello-wasm.wasm via cln-autoreload (Cranelift)",
            &bins.hello_wasm_release,
            true,
            &cranelift,
            "hello",
            "[\"bench\"]",
        )?,
    ];
    let n = arms.len();
    let mut one_conns = vec![];
    let mut conc_conns = vec![];
    for a in &arms {
        let mut c = Conn::connect(&a.rpc, CALL_BOUND)?;
        calls(&mut c, a.method, a.params, counts.warmup)
            .with_context(|| format!("warming up {}", a.label))?;
        one_conns.push(c);
        let cs = (0..counts.callers)
            .map(|_| Conn::connect(&a.rpc, CALL_BOUND))
            .collect::<Result<Vec<_>>>()?;
        conc_conns.push(cs);
    }
    std::thread::sleep(Duration::from_millis(300));
    let rss_idle: Vec<Option<f64>> = arms
        .iter()
        .map(|a| a.host.and_then(|h| procs::rss_mb(h).ok()))
        .collect();
    let mut res: Vec<ArmResult> = arms
        .iter()
        .zip(&rss_idle)
        .map(|(a, idle)| ArmResult {
            key: a.key,
            label: a.label.clone(),
            one_all: vec![],
            one_p50: vec![],
            one_tput: vec![],
            conc_all: vec![],
            conc_p50: vec![],
            conc_p99: vec![],
            conc_tput: vec![],
            rss_idle: *idle,
            rss_load: None,
            hwm: None,
        })
        .collect();
    for r in 0..counts.sock_rounds {
        for k in 0..n {
            let i = (k + r) % n;
            let t = Instant::now();
            let v = calls(
                &mut one_conns[i],
                arms[i].method,
                arms[i].params,
                counts.sock_calls,
            )
            .with_context(|| format!("one caller on {}", arms[i].label))?;
            res[i]
                .one_tput
                .push(v.len() as f64 / t.elapsed().as_secs_f64());
            res[i].one_p50.push(median(&v));
            res[i].one_all.extend(v);
        }
    }
    for r in 0..counts.conc_rounds {
        for k in 0..n {
            let i = (k + r) % n;
            let (v, tput, peak) = concurrent(&arms[i], &mut conc_conns[i], counts.conc_calls)?;
            let s = Summary::of(&v);
            res[i].conc_p50.push(s.p50);
            res[i].conc_p99.push(s.p99);
            res[i].conc_tput.push(tput);
            res[i].conc_all.extend(v);
            if let Some(p) = peak {
                res[i].rss_load = Some(res[i].rss_load.map_or(p, |q: f64| q.max(p)));
            }
        }
    }
    for (i, a) in arms.iter().enumerate() {
        res[i].hwm = a.host.and_then(|h| procs::hwm_mb(h).ok());
    }
    drop(one_conns);
    drop(conc_conns);
    for a in arms {
        let _ = pass.rt.block_on(a.node.stop());
    }
    Ok(res)
}
