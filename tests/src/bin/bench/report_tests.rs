//! The report rendered from fixed, made-up results, compared with the text
//! it rendered before (testdata/): the prose lives in templates, and this
//! keeps moving or editing the code around it from changing BENCHMARKS.md
//! by accident. The numbers are chosen to miss every goal, so that every
//! paragraph of "What bounds the missed goals" is rendered too.
//!
//! After a deliberate change of the report's text, refresh the expected
//! files with `BLESS=1 cargo test -p cln-autoreload-tests --bin bench`
//! and read their diff.

use super::Report;
use crate::dbwrite::DbWriteResult;
use crate::edit::EditResult;
use crate::overlap::{HandoverCase, HandoverResults, NativeArm, NativeResults};
use crate::procs::Machine;
use crate::reload::{CaseResult, ReloadResults, RestartResult, Save, StartupResult, WasmVersions};
use crate::socket::{self, SocketMode, SocketResults};
use crate::stall::StallResult;
use crate::stdio::{self, StdioMode, StdioResults};
use crate::{Bins, Counts, PassResults};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// `n` values from `base` up, 3 % apart: a made-up sample with a spread.
fn v(base: f64, n: usize) -> Vec<f64> {
    (0..n).map(|i| base * (1.0 + 0.03 * i as f64)).collect()
}

fn machine() -> Machine {
    Machine {
        nproc: 2,
        cpu: "Test CPU".into(),
        mem_gib: 7.5,
        kernel: "6.0.0".into(),
        date: "2026-01-01 00:00 UTC".into(),
        rustc: "rustc 1.95.0".into(),
        commit: "0000000".into(),
        lightningd: "none (the stand-in)".into(),
    }
}

fn bins() -> Bins {
    let p = PathBuf::new;
    Bins {
        host: p(),
        bench_plugin: p(),
        forwarder: p(),
        pump: p(),
        hello_native: p(),
        hello_wasm_native: p(),
        hello_wasm_release: p(),
        wasm_versions: WasmVersions {
            release: [vec![], vec![]],
            debug: [vec![], vec![]],
            release_1: p(),
            debug_1: p(),
            sizes: (215_000, 1_200_000),
        },
        guest_versions: ([vec![], vec![]], p()),
    }
}

fn stdio_arm(key: &'static str, label: &str, us: f64, tput: f64) -> stdio::ArmResult {
    stdio::ArmResult {
        key,
        label: label.into(),
        all: v(us, 40),
        round_p50: v(us, 10),
        tput: v(tput, 3),
    }
}

fn stdio_results(pin_error: Option<String>) -> StdioResults {
    let arms = || {
        vec![
            stdio_arm("direct", "bench-plugin, direct", 10.0, 90_000.0),
            stdio_arm("pump", "via the byte pump", 12.0, 80_000.0),
            stdio_arm("forwarder", "via the minimal forwarder", 20.0, 60_000.0),
            stdio_arm("host", "via cln-autoreload", 40.0, 20_000.0),
            stdio_arm("guest-direct", "hello-wasm built natively", 11.0, 85_000.0),
            stdio_arm("host-winch", "hello-wasm.wasm, Winch", 45.0, 18_000.0),
            stdio_arm(
                "host-cranelift",
                "hello-wasm.wasm, Cranelift",
                35.0,
                22_000.0,
            ),
        ]
    };
    StdioResults {
        modes: vec![
            StdioMode {
                name: "placed by the scheduler".into(),
                arms: arms(),
            },
            StdioMode {
                name: "all on one core".into(),
                arms: arms(),
            },
        ],
        pin_error,
        window: 16,
        rounds: 30,
        calls: 50,
        tput_rounds: 3,
        tput_calls: 5_000,
    }
}

fn socket_arm(key: &'static str, label: &str, us: f64, rss: Option<f64>) -> socket::ArmResult {
    socket::ArmResult {
        key,
        label: label.into(),
        one_all: v(us, 40),
        one_p50: v(us, 10),
        one_tput: v(1e6 / us, 10),
        conc_all: v(us * 4.0, 40),
        conc_p50: v(us * 4.0, 10),
        conc_p99: v(us * 9.0, 10),
        conc_tput: v(16e6 / us / 4.0, 4),
        rss_idle: rss,
        rss_load: rss.map(|r| r + 2.0),
        hwm: rss.map(|r| r + 3.0),
    }
}

fn socket_results() -> SocketResults {
    let arms = || {
        vec![
            socket_arm(
                "native-direct",
                "hello-native, loaded directly",
                100.0,
                None,
            ),
            socket_arm("native-pump", "hello-native via the byte pump", 120.0, None),
            socket_arm(
                "native-forwarder",
                "hello-native via the minimal forwarder",
                180.0,
                None,
            ),
            socket_arm(
                "native-host",
                "hello-native via cln-autoreload",
                200.0,
                Some(20.0),
            ),
            socket_arm("guest-direct", "hello-wasm built natively", 90.0, None),
            socket_arm("wasm-winch", "hello-wasm.wasm, Winch", 250.0, Some(30.0)),
            socket_arm(
                "wasm-cranelift",
                "hello-wasm.wasm, Cranelift",
                220.0,
                Some(31.0),
            ),
        ]
    };
    SocketResults {
        modes: vec![
            SocketMode {
                name: "placed by the scheduler".into(),
                arms: arms(),
            },
            SocketMode {
                name: "all on one core".into(),
                arms: arms(),
            },
        ],
        pin_error: None,
        callers: 16,
        rounds: 25,
        calls: 30,
        conc_rounds: 4,
        conc_calls: 50,
    }
}

fn case(key: &str, label: &str, total: f64, host: f64, compile: f64) -> CaseResult {
    CaseResult {
        key: key.into(),
        label: label.into(),
        backend: if key.starts_with("wasm") {
            "wasm"
        } else {
            "native"
        },
        save: if key.ends_with("inplace") {
            Save::InPlace
        } else {
            Save::Rename
        },
        total: v(total, 15),
        host: v(host, 15),
        compile: if compile > 0.0 {
            v(compile, 15)
        } else {
            vec![]
        },
        cached: if key.ends_with("revert") { 15 } else { 0 },
        busy: if key.contains("busy") { 2 } else { 0 },
        busy_calls: if key.contains("busy") { 12_345 } else { 0 },
        poll_errors: 0,
        rss_before: Some(25.0),
        rss_after: Some(33.5),
    }
}

fn reload_results() -> ReloadResults {
    ReloadResults {
        cases: vec![
            case("native-rust", "hello-native (Rust)", 30.0, 25.0, 0.0),
            case("pyln", "hello.py, renamed over", 200.0, 180.0, 0.0),
            case("pyln-inplace", "hello.py, in place", 260.0, 190.0, 0.0),
            case(
                "wasm-release-winch",
                "wasm release, Winch",
                80.0,
                60.0,
                45.0,
            ),
            case(
                "wasm-release-winch-inplace",
                "wasm release, Winch, in place",
                140.0,
                62.0,
                46.0,
            ),
            case(
                "wasm-release-winch-low",
                "wasm release, Winch, low priority",
                90.0,
                70.0,
                55.0,
            ),
            case(
                "wasm-release-winch-busy",
                "wasm release, Winch, busy",
                100.0,
                80.0,
                65.0,
            ),
            case(
                "wasm-release-winch-busy-low",
                "wasm release, Winch, busy, low priority",
                150.0,
                130.0,
                115.0,
            ),
            case(
                "wasm-release-winch-revert",
                "wasm release, Winch, revert",
                12.0,
                4.0,
                0.5,
            ),
            case(
                "wasm-release-cranelift",
                "wasm release, Cranelift",
                260.0,
                240.0,
                220.0,
            ),
            case("wasm-debug-winch", "wasm debug, Winch", 160.0, 140.0, 120.0),
            case(
                "wasm-debug-cranelift",
                "wasm debug, Cranelift",
                700.0,
                680.0,
                660.0,
            ),
        ],
        startups: vec![
            StartupResult {
                key: "native-rust",
                label: "hello-native (Rust)".into(),
                ms: v(5.0, 15),
            },
            StartupResult {
                key: "pyln",
                label: "hello.py".into(),
                ms: v(150.0, 15),
            },
        ],
        restarts: vec![
            RestartResult {
                compiler: "winch",
                compiled: v(50.0, 15),
                disk: v(2.5, 15),
                wasm_bytes: 215_000,
                entry_bytes: 904_000,
            },
            RestartResult {
                compiler: "cranelift",
                compiled: v(250.0, 15),
                disk: v(2.0, 15),
                wasm_bytes: 215_000,
                entry_bytes: 642_000,
            },
        ],
        rounds: 15,
        pyln: None,
    }
}

/// A run under load: `wait` ms the longest wait per reload, half of the
/// reloads answered by the old version before the swap.
fn stall(key: &'static str, label: &str, wait: f64, lost: usize) -> StallResult {
    let reloads = 10;
    let mut errors = BTreeMap::new();
    if lost > 0 {
        errors.insert("the `plugin` was reloaded".to_string(), 2);
    }
    StallResult {
        key,
        label: label.into(),
        callers: 6,
        reloads,
        sent: 5_000,
        ok: 4_998 - lost,
        errors,
        lost,
        steady: v(900.0, 200),
        during: v(wait * 300.0, 50),
        windows: v(70.0, reloads),
        per_reload: (0..reloads)
            .map(|i| {
                let w = wait * (1.0 + 0.05 * i as f64);
                (w, 20.0 + i as f64, if i % 2 == 0 { -3.0 } else { 0.5 })
            })
            .collect(),
        per_reload_p50: v(1.2, reloads),
        per_reload_base: v(4.0, reloads),
        statuses: vec![],
    }
}

fn native_arm(plugin: &'static str, mode: &'static str, wait: f64) -> NativeArm {
    let name = if plugin == "pyln" {
        "hello.py (pyln-client)"
    } else {
        "bench-plugin (Rust)"
    };
    let mut handovers = BTreeMap::new();
    let mut handover_ms = vec![];
    if plugin == "pyln" {
        handovers.insert("restored".to_string(), 6);
        handover_ms = v(3.0, 6);
    }
    NativeArm {
        plugin,
        label: format!("{name}, {mode}"),
        mode,
        res: stall("native", name, wait, usize::from(mode == "false")),
        handovers,
        handover_ms,
    }
}

fn passes() -> Vec<PassResults> {
    let mut outcomes = BTreeMap::new();
    outcomes.insert("restored".to_string(), 6);
    vec![PassResults {
        name: "the lightningd stand-in".into(),
        real: false,
        socket: socket_results(),
        reload: reload_results(),
        stall: vec![
            stall("native-rust", "hello-native (Rust)", 3.0, 0),
            stall("wasm-winch", "hello-wasm.wasm, Winch", 9.0, 0),
            stall(
                "wasm-winch-low",
                "hello-wasm.wasm, Winch, low priority",
                6.0,
                0,
            ),
        ],
        edit: vec![
            EditResult {
                label: "debug".into(),
                total: v(900.0, 6),
                build: v(700.0, 6),
                compile: v(120.0, 6),
                reload: v(140.0, 6),
                module_kb: 1_200,
            },
            EditResult {
                label: "release".into(),
                total: v(2_500.0, 6),
                build: v(2_300.0, 6),
                compile: v(45.0, 6),
                reload: v(60.0, 6),
                module_kb: 215,
            },
        ],
        dbwrite: vec![
            DbWriteResult {
                label: "dbmirror.py (native)".into(),
                steady: v(0.3, 10),
                during: v(8.0, 10),
                states: vec!["draining".into(); 10],
                reloads: v(40.0, 10),
            },
            DbWriteResult {
                label: "testguest.wasm".into(),
                steady: v(0.2, 10),
                during: v(3.0, 10),
                states: (0..10)
                    .map(|i| if i < 7 { "stopping" } else { "starting" }.into())
                    .collect(),
                reloads: v(12.0, 10),
            },
        ],
        native: NativeResults {
            arms: vec![
                native_arm("rust", "warm", 12.0),
                native_arm("rust", "full", 7.0),
                native_arm("rust", "false", 9.0),
                native_arm("pyln", "warm", 30.0),
                native_arm("pyln", "false", 200.0),
            ],
            rounds: 4,
            per_round: 6,
            pyln: None,
        },
        handover: HandoverResults {
            cases: vec![
                HandoverCase {
                    size: 0,
                    res: stall("handover", "0", 4.0, 0),
                    bytes: v(40.0, 6),
                    ms: v(2.0, 6),
                    outcomes: outcomes.clone(),
                },
                HandoverCase {
                    size: 1 << 20,
                    res: stall("handover", "1 MiB", 30.0, 1),
                    bytes: v(1_048_600.0, 6),
                    ms: v(25.0, 6),
                    outcomes,
                },
            ],
            rounds: 3,
            per_round: 6,
        },
    }]
}

/// Compares `got` with the file in testdata/, or rewrites it with BLESS=1.
fn check(name: &str, got: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src/bin/bench/testdata")
        .join(name);
    if std::env::var_os("BLESS").is_some() {
        std::fs::write(&path, got).expect("write the expected report");
        return;
    }
    let want = std::fs::read_to_string(&path).expect("read the expected report");
    if got != want {
        let line = got
            .lines()
            .zip(want.lines())
            .position(|(g, w)| g != w)
            .map_or(got.lines().count().min(want.lines().count()), |i| i);
        panic!(
            "the report differs from {} from line {}:\n got: {:?}\nwant: {:?}",
            path.display(),
            line + 1,
            got.lines().nth(line),
            want.lines().nth(line)
        );
    }
}

#[test]
fn full_report_renders_as_before() {
    let counts = Counts::full();
    let machine = machine();
    let bins = bins();
    let stdio = stdio_results(None);
    let passes = passes();
    let report = Report {
        args: String::new(),
        load: ("0.50 0.40 0.30".into(), "2.00 1.00 0.50".into()),
        quick: false,
        machine: &machine,
        counts: &counts,
        bins: &bins,
        stdio: &stdio,
        passes: &passes,
        build_secs: 120.0,
        measure_secs: 900.0,
    };
    check("full.md", &report.markdown());
}

#[test]
fn empty_quick_report_renders_as_before() {
    let counts = Counts::quick();
    let machine = machine();
    let bins = bins();
    // Nothing measured: every goal is "met", and only the frame is left.
    let mut stdio = stdio_results(None);
    stdio.modes.clear();
    let passes: Vec<PassResults> = vec![];
    let report = Report {
        args: "--quick --only stdio".into(),
        load: ("0.10 0.10 0.10".into(), "0.20 0.10 0.10".into()),
        quick: true,
        machine: &machine,
        counts: &counts,
        bins: &bins,
        stdio: &stdio,
        passes: &passes,
        build_secs: 1.0,
        measure_secs: 10.0,
    };
    check("quick.md", &report.markdown());
}
