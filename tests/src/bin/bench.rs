//! The benchmark: what cln-autoreload costs and how fast it reloads.
//!
//! ```text
//! cargo run --release -p cln-autoreload-tests --bin bench -- [--quick] [--out PATH] [--only LIST]
//! ```
//!
//! `--quick`: small counts, a smoke run (under a minute once built).
//! `--out PATH`: where BENCHMARKS.md goes (default: the workspace root).
//! `--only stdio,socket,reload,stall,edit,dbwrite,reload-native,handover`:
//! some sections only, for profiling.
//!
//! Builds what it measures (release), then measures, every comparison side
//! by side in the same run with the arms taking turns in short rounds
//! (and on fresh processes several times, and once all on one core):
//! 1. call latency and throughput, over stdio (the benchmark acting as
//!    lightningd: plugin direct, through a byte pump, through a minimal
//!    forwarder, through cln-autoreload) and over a node's `lightning-rpc`
//!    socket (plugin loaded by the node directly, behind the pump and the
//!    forwarder, through cln-autoreload; native and wasm; one caller and 16
//!    concurrent connections);
//! 2. reload latency, file renamed into place → first answer by the new
//!    version, broken down with `autoreload-status`, against the child's
//!    own start-up;
//! 3. the stall of calls during reloads under steady load, and whether any
//!    call is lost;
//! 4. the host's memory;
//! 5. edit to live: a source file of examples/hello-wasm saved → the new
//!    behaviour answering (build on save), debug and release;
//! 6. how long lightningd waits on a `db_write` that comes during a reload;
//! 7. the longest wait of a call during a native reload, make-before-break
//!    against break-before-make (`reload-native`), and the cost of a state
//!    hand-over by the state's size (`handover`).
//!
//! The node is the project's lightningd stand-in; with `LIGHTNINGD` set,
//! the node-based measurements run a second time against that lightningd.
//! Writes BENCHMARKS.md (or `--out`) and SVG plots in `bench/` beside it.

#[path = "bench/client.rs"]
mod client;
#[path = "bench/dbwrite.rs"]
mod dbwrite;
#[path = "bench/edit.rs"]
mod edit;
#[path = "bench/overlap.rs"]
mod overlap;
#[path = "bench/procs.rs"]
mod procs;
#[path = "bench/reload.rs"]
mod reload;
#[path = "bench/report.rs"]
mod report;
#[path = "bench/socket.rs"]
mod socket;
#[path = "bench/stall.rs"]
mod stall;
#[path = "bench/stats.rs"]
mod stats;
#[path = "bench/stdio.rs"]
mod stdio;
#[path = "bench/svg.rs"]
mod svg;

use anyhow::{bail, Context as _, Result};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Everything measured, built once.
pub struct Bins {
    pub host: PathBuf,
    pub bench_plugin: PathBuf,
    pub forwarder: PathBuf,
    pub pump: PathBuf,
    pub hello_native: PathBuf,
    pub hello_wasm_native: PathBuf,
    pub hello_wasm_release: PathBuf,
    pub wasm_versions: reload::WasmVersions,
    /// testguest (release, it has the `db_write` hook) in two versions,
    /// and where the first was copied.
    pub guest_versions: ([Vec<u8>; 2], PathBuf),
}

/// How much to measure.
#[derive(Debug, Clone)]
pub struct Counts {
    pub warmup: usize,
    /// Fresh processes (nodes) this many times: the scheduler places them
    /// anew each time.
    pub epochs: usize,
    /// Requests in flight on the stdio throughput runs.
    pub window: usize,
    pub stdio_rounds: usize,
    /// Calls per arm per round (rounds are short, so that every arm sees
    /// the same mix of the machine's moods).
    pub stdio_calls: usize,
    pub stdio_tput_rounds: usize,
    pub stdio_tput_calls: usize,
    /// Concurrent connections on the socket throughput runs.
    pub callers: usize,
    pub sock_rounds: usize,
    pub sock_calls: usize,
    pub conc_rounds: usize,
    /// Calls per connection per concurrent round.
    pub conc_calls: usize,
    pub reload_rounds: usize,
    pub stall_callers: usize,
    pub stall_reloads: usize,
    pub stall_gap: Duration,
    /// Saves of hello-wasm's source per build kind (edit to live).
    pub edit_rounds: usize,
    /// Native reloads under load: rounds (a fresh node per arm each), and
    /// reloads per round.
    pub native_rounds: usize,
    pub native_reloads: usize,
    /// State hand-overs: rounds per state size, reloads per round.
    pub handover_rounds: usize,
    pub handover_reloads: usize,
}

impl Counts {
    fn full() -> Counts {
        Counts {
            warmup: 300,
            epochs: 6,
            window: 16,
            stdio_rounds: 30,
            stdio_calls: 50,
            stdio_tput_rounds: 3,
            stdio_tput_calls: 5_000,
            callers: 16,
            sock_rounds: 25,
            sock_calls: 30,
            conc_rounds: 4,
            conc_calls: 50,
            reload_rounds: 15,
            stall_callers: 6,
            stall_reloads: 20,
            stall_gap: Duration::from_millis(300),
            edit_rounds: 6,
            native_rounds: 4,
            native_reloads: 6,
            handover_rounds: 3,
            handover_reloads: 6,
        }
    }

    fn quick() -> Counts {
        Counts {
            warmup: 50,
            epochs: 1,
            stdio_rounds: 20,
            stdio_calls: 30,
            stdio_tput_rounds: 2,
            stdio_tput_calls: 1000,
            sock_rounds: 10,
            sock_calls: 20,
            conc_rounds: 2,
            conc_calls: 20,
            reload_rounds: 2,
            stall_reloads: 2,
            stall_gap: Duration::from_millis(200),
            edit_rounds: 1,
            native_rounds: 1,
            native_reloads: 2,
            handover_rounds: 1,
            handover_reloads: 2,
            ..Counts::full()
        }
    }
}

/// One node kind the node-based sections run against.
pub struct Pass {
    pub rt: tokio::runtime::Runtime,
    /// "the lightningd stand-in" or the real lightningd's path.
    pub name: String,
    pub real: bool,
}

/// What the node-based sections measured against one node kind.
pub struct PassResults {
    pub name: String,
    pub real: bool,
    pub socket: socket::SocketResults,
    pub reload: reload::ReloadResults,
    pub stall: Vec<stall::StallResult>,
    pub edit: Vec<edit::EditResult>,
    pub dbwrite: Vec<dbwrite::DbWriteResult>,
    pub native: overlap::NativeResults,
    pub handover: overlap::HandoverResults,
}

/// The sections `--only` can pick.
const SECTIONS: [&str; 8] = [
    "stdio",
    "socket",
    "reload",
    "stall",
    "edit",
    "dbwrite",
    "reload-native",
    "handover",
];

struct Opts {
    quick: bool,
    out: PathBuf,
    /// Only these sections (for profiling one thing at a time).
    only: Vec<String>,
}

fn opts() -> Result<Opts> {
    let mut o = Opts {
        quick: false,
        out: {
            let root = cln_autoreload_tests::root();
            root.canonicalize().unwrap_or(root).join("BENCHMARKS.md")
        },
        only: vec![],
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--quick" => o.quick = true,
            "--only" => match args.next() {
                Some(list) => o.only = list.split(',').map(str::to_owned).collect(),
                None => bail!("--only needs a list: {}", SECTIONS.join(",")),
            },
            "--out" => match args.next() {
                Some(p) => o.out = PathBuf::from(p),
                None => bail!("--out needs a path"),
            },
            s if s.starts_with("--out=") => o.out = PathBuf::from(&s["--out=".len()..]),
            "-h" | "--help" => {
                println!("usage: cargo run --release -p cln-autoreload-tests --bin bench -- [--quick] [--out PATH] [--only {}]", SECTIONS.join(","));
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?} (--quick, --out PATH, --only LIST)"),
        }
    }
    if let Some(bad) = o.only.iter().find(|s| !SECTIONS.contains(&s.as_str())) {
        bail!("--only: unknown section {bad:?} ({})", SECTIONS.join(", "));
    }
    Ok(o)
}

impl Opts {
    fn runs(&self, section: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|s| s == section)
    }
}

fn step(what: &str) {
    eprintln!("bench: {what}");
}

fn build(keep: &std::path::Path) -> Result<Bins> {
    use cln_autoreload_tests::{built_bin, host_bin, wasm_bin};
    step("building (release) what is measured");
    // `cargo run --bin bench` builds only this binary: build the others.
    built_bin("cln-autoreload-tests", "lightningd-standin");
    let bins = Bins {
        host: host_bin(),
        bench_plugin: built_bin("cln-autoreload-tests", "bench-plugin"),
        forwarder: built_bin("cln-autoreload-tests", "forwarder"),
        pump: built_bin("cln-autoreload-tests", "pump"),
        hello_native: cln_autoreload_tests::hello_native_bin(),
        hello_wasm_native: built_bin("hello-wasm", "hello-wasm"),
        hello_wasm_release: wasm_bin("hello-wasm", true),
        wasm_versions: reload::build_wasm_versions(keep)?,
        guest_versions: dbwrite::guest_versions(keep)?,
    };
    for p in [
        &bins.host,
        &bins.bench_plugin,
        &bins.forwarder,
        &bins.pump,
        &bins.hello_native,
        &bins.hello_wasm_native,
        &bins.hello_wasm_release,
    ] {
        if !p.exists() {
            bail!("{} was not built", p.display());
        }
    }
    Ok(bins)
}

fn run_pass(
    name: String,
    real: bool,
    bins: &Bins,
    counts: &Counts,
    opts: &Opts,
) -> Result<PassResults> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("a tokio runtime for the nodes")?;
    let pass = Pass { rt, name, real };
    let mut socket = socket::SocketResults::empty(counts);
    if opts.runs("socket") {
        step(&format!("socket path, through {}", pass.name));
        let t = Instant::now();
        socket = socket::run(&pass, bins, counts).context("socket path")?;
        step(&format!("  {:.0} s", t.elapsed().as_secs_f64()));
    }
    let mut reload = reload::ReloadResults::empty(counts);
    if opts.runs("reload") {
        step(&format!("reload latency, through {}", pass.name));
        let t = Instant::now();
        reload = reload::run(&pass, bins, counts).context("reload latency")?;
        step(&format!("  {:.0} s", t.elapsed().as_secs_f64()));
    }
    let mut stall = vec![];
    if opts.runs("stall") {
        step(&format!("stall under load, through {}", pass.name));
        let t = Instant::now();
        stall = stall::run(&pass, bins, counts).context("stall")?;
        step(&format!("  {:.0} s", t.elapsed().as_secs_f64()));
    }
    let mut edit = vec![];
    if opts.runs("edit") {
        step(&format!("edit to live, through {}", pass.name));
        let t = Instant::now();
        edit = edit::run(&pass, counts).context("edit to live")?;
        step(&format!("  {:.0} s", t.elapsed().as_secs_f64()));
    }
    let mut dbwrite = vec![];
    if opts.runs("dbwrite") && !pass.real {
        step(&format!("db_write during reloads, through {}", pass.name));
        let t = Instant::now();
        dbwrite = dbwrite::run(&pass, bins, counts).context("db_write during reloads")?;
        step(&format!("  {:.0} s", t.elapsed().as_secs_f64()));
    }
    let mut native = overlap::NativeResults::empty();
    if opts.runs("reload-native") {
        step(&format!(
            "native reloads under load, overlapped and not, through {}",
            pass.name
        ));
        let t = Instant::now();
        native = overlap::run_native(&pass, bins, counts).context("native reloads under load")?;
        step(&format!("  {:.0} s", t.elapsed().as_secs_f64()));
    }
    let mut handover = overlap::HandoverResults::empty();
    if opts.runs("handover") {
        step(&format!("state hand-over by size, through {}", pass.name));
        let t = Instant::now();
        handover = overlap::run_handover(&pass, counts).context("state hand-over")?;
        step(&format!("  {:.0} s", t.elapsed().as_secs_f64()));
    }
    Ok(PassResults {
        name: pass.name,
        real: pass.real,
        socket,
        reload,
        stall,
        edit,
        dbwrite,
        native,
        handover,
    })
}

fn main() -> Result<()> {
    let opts = opts()?;
    if cfg!(debug_assertions) {
        // host_bin() and friends build the profile this binary was built
        // with: a debug build would measure debug builds.
        bail!(
            "build the bench in release: cargo run --release -p cln-autoreload-tests --bin bench"
        );
    }
    let started = Instant::now();
    // The node-based sections run against the stand-in first, then (if
    // set) against the real lightningd: NodeBuilder reads LIGHTNINGD, so it
    // is taken out of the environment now, before any thread exists, and
    // put back for the second pass.
    let real = cln_autoreload_tests::real_lightningd();
    if real.is_some() {
        std::env::remove_var("LIGHTNINGD");
    }
    let counts = if opts.quick {
        Counts::quick()
    } else {
        Counts::full()
    };
    let keep = cln_autoreload_tests::tempdir();
    let bins = build(keep.path())?;
    let build_secs = started.elapsed().as_secs_f64();
    let machine = procs::Machine::facts(real.as_deref());
    let load_before = cln_autoreload_tests::facts::loadavg();
    let measuring = Instant::now();

    let mut stdio = stdio::StdioResults::empty(&counts);
    if opts.runs("stdio") {
        step("stdio path");
        let t = Instant::now();
        stdio = stdio::run(&bins, &counts).context("stdio path")?;
        step(&format!("  {:.0} s", t.elapsed().as_secs_f64()));
    }

    let node_sections = SECTIONS[1..].iter().any(|s| opts.runs(s));
    let mut passes = vec![];
    if node_sections {
        passes.push(run_pass(
            "the lightningd stand-in".into(),
            false,
            &bins,
            &counts,
            &opts,
        )?);
    }
    if let Some(ld) = real.as_ref().filter(|_| node_sections) {
        // No other thread of ours runs now: the previous runtime is gone.
        std::env::set_var("LIGHTNINGD", ld);
        passes.push(run_pass(
            format!("lightningd ({})", ld.display()),
            true,
            &bins,
            &counts,
            &opts,
        )?);
    }
    let measure_secs = measuring.elapsed().as_secs_f64();
    let load_after = cln_autoreload_tests::facts::loadavg();

    let out_dir = opts
        .out
        .parent()
        .map(|p| {
            if p.as_os_str().is_empty() {
                PathBuf::from(".")
            } else {
                p.to_path_buf()
            }
        })
        .unwrap_or_else(|| PathBuf::from("."));
    let plots = out_dir.join("bench");
    std::fs::create_dir_all(&plots).with_context(|| format!("creating {}", plots.display()))?;
    let args: Vec<String> = std::env::args().skip(1).collect();
    let doc = report::Report {
        args: args.join(" "),
        load: (load_before, load_after),
        quick: opts.quick,
        machine: &machine,
        counts: &counts,
        bins: &bins,
        stdio: &stdio,
        passes: &passes,
        build_secs,
        measure_secs,
    };
    for (name, svg) in doc.plots() {
        let p = plots.join(name);
        std::fs::write(&p, svg).with_context(|| format!("writing {}", p.display()))?;
    }
    std::fs::write(&opts.out, doc.markdown())
        .with_context(|| format!("writing {}", opts.out.display()))?;
    step(&format!(
        "wrote {} and {} ({:.0} s measuring, {:.0} s building)",
        opts.out.display(),
        plots.display(),
        measure_secs,
        build_secs
    ));
    Ok(())
}
