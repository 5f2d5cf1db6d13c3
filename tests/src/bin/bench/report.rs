//! BENCHMARKS.md and the plots.

use crate::overlap::{size_label, NativeArm};
use crate::procs::Machine;
use crate::reload::ReloadResults;
use crate::socket::SocketResults;
use crate::stall::StallResult;
use crate::stats::{median, zip_with, Spread, Summary};
use crate::stdio::StdioResults;
use crate::svg::{bars, Row};
use crate::{Bins, Counts, PassResults};
use std::fmt::Write as _;

pub struct Report<'a> {
    /// The bench's own arguments.
    pub args: String,
    /// Load averages before and after measuring.
    pub load: (String, String),
    pub quick: bool,
    pub machine: &'a Machine,
    pub counts: &'a Counts,
    pub bins: &'a Bins,
    pub stdio: &'a StdioResults,
    pub passes: &'a [PassResults],
    pub build_secs: f64,
    pub measure_secs: f64,
}

const COMMAND: &str = "cargo run --release -p cln-autoreload-tests --bin bench";

fn f1(v: f64) -> String {
    if v.is_nan() {
        "–".into()
    } else {
        format!("{v:.1}")
    }
}

fn f2(v: f64) -> String {
    if v.is_nan() {
        "–".into()
    } else {
        format!("{v:.2}")
    }
}

fn f0(v: f64) -> String {
    if v.is_nan() {
        "–".into()
    } else {
        format!("{v:.0}")
    }
}

fn thousands(v: f64) -> String {
    if v.is_nan() {
        return "–".into();
    }
    let n = v.round() as u64;
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push('\u{202f}');
        }
        out.push(c);
    }
    out
}

fn verdict(ok: Option<bool>) -> &'static str {
    match ok {
        Some(true) => "met",
        Some(false) => "**missed**",
        None => "not measured",
    }
}

/// Per-round `b/a` of two arms' per-round figures.
fn ratio(a: &[f64], b: &[f64]) -> Spread {
    Spread::of(&zip_with(b, a, |b, a| b / a))
}

/// Per-round differences minus a baseline, per round.
fn added(base: &[f64], x: &[f64]) -> Vec<f64> {
    zip_with(x, base, |x, b| x - b)
}

/// The stdio-path goal figures of one placement mode.
struct StdioGoal {
    mode: String,
    host_added: Spread,
    fwd_added: Spread,
    ratio: Spread,
    tput: Spread,
    /// Against the byte pump, if it was measured.
    pump: Option<PumpGoal>,
}

/// What cln-autoreload adds to a round trip against what the byte pump
/// adds (both over direct, per round).
struct PumpGoal {
    /// Where: the path and the placement.
    place: String,
    host_added: Spread,
    pump_added: Spread,
    /// Per round, host added / pump added (the goal: ≤ 1.25).
    ratio: Spread,
    /// Per round, forwarder added / pump added.
    fwd_ratio: Option<Spread>,
}

/// The host's goal against the pump: it adds at most this many times what
/// the pump adds.
const PUMP_GOAL: f64 = 1.25;

impl PumpGoal {
    /// From per-round p50s of direct, the pump, the host and (if measured)
    /// the forwarder.
    fn of(place: String, d: &[f64], p: &[f64], h: &[f64], f: Option<&[f64]>) -> PumpGoal {
        let hv = added(d, h);
        let pv = added(d, p);
        PumpGoal {
            place,
            host_added: Spread::of(&hv),
            pump_added: Spread::of(&pv),
            ratio: Spread::of(&zip_with(&hv, &pv, |h, p| h / p)),
            fwd_ratio: f.map(|f| Spread::of(&zip_with(&added(d, f), &pv, |f, p| f / p))),
        }
    }

    fn met(&self) -> bool {
        self.ratio.p50 <= PUMP_GOAL
    }
}

/// Goal figures computed once, shared by the table and the analysis.
struct Goals {
    /// (pass name, per-round host/direct p50 spread)
    socket_ratio: Vec<(String, Spread)>,
    /// hello-native over lightning-rpc, one caller: the host against the
    /// byte pump, per pass and placement.
    socket_pump: Vec<PumpGoal>,
    /// Per stdio mode.
    stdio: Vec<StdioGoal>,
    socket_tput: Vec<(String, Spread, Spread)>,
    /// wasm inside the host against the same source built natively and
    /// driven directly, stdio path, per mode: (mode, Winch, Cranelift).
    wasm_stdio: Vec<(String, Spread, Spread)>,
    /// The same through the node, one caller, per pass and mode: (where,
    /// wasm (Winch) / native direct, wasm (Winch) / hello-native through
    /// the host, 16 callers: wasm calls/s / native-through-host calls/s).
    wasm_socket: Vec<(String, Spread, Spread, Spread)>,
    /// (pass, renamed over: total, rewritten in place: total, compile)
    wasm_reload: Vec<(String, Summary, Option<Summary>, Summary)>,
    /// (pass, reload − startup, host-side − startup)
    native_extra: Vec<(String, Spread, Spread)>,
    /// (pass, max, p99 during, steady p99)
    wasm_stall: Vec<(String, f64, f64, f64)>,
    lost: usize,
    errors: usize,
    /// (pass, idle, load peak, hwm)
    native_rss: Vec<(String, f64, f64, f64)>,
    /// (pass, plugin label, make-before-break and break-before-make:
    /// longest wait per reload, ms)
    native_wait: Vec<(String, String, &'static str, Spread, f64)>,
}

impl Report<'_> {
    fn goals(&self) -> Goals {
        let mut stdio = vec![];
        for m in &self.stdio.modes {
            let (d, f, h) = (m.arm("direct"), m.arm("forwarder"), m.arm("host"));
            if let (Some(d), Some(f), Some(h)) = (d, f, h) {
                let hv = added(&d.round_p50, &h.round_p50);
                let fv = added(&d.round_p50, &f.round_p50);
                stdio.push(StdioGoal {
                    mode: m.name.clone(),
                    host_added: Spread::of(&hv),
                    fwd_added: Spread::of(&fv),
                    ratio: Spread::of(&zip_with(&hv, &fv, |h, f| h / f)),
                    tput: Spread::of(&h.tput),
                    pump: m.arm("pump").map(|p| {
                        PumpGoal::of(
                            format!("stdio path, {}", m.name),
                            &d.round_p50,
                            &p.round_p50,
                            &h.round_p50,
                            Some(&f.round_p50),
                        )
                    }),
                });
            }
        }
        let wasm_stdio = self
            .stdio
            .modes
            .iter()
            .filter_map(|m| {
                let (d, w, c) = (
                    m.arm("guest-direct")?,
                    m.arm("host-winch")?,
                    m.arm("host-cranelift")?,
                );
                Some((
                    m.name.clone(),
                    ratio(&d.round_p50, &w.round_p50),
                    ratio(&d.round_p50, &c.round_p50),
                ))
            })
            .collect();
        let mut g = Goals {
            wasm_stdio,
            wasm_socket: vec![],
            socket_ratio: vec![],
            socket_pump: vec![],
            stdio,
            socket_tput: vec![],
            wasm_reload: vec![],
            native_extra: vec![],
            wasm_stall: vec![],
            lost: 0,
            errors: 0,
            native_rss: vec![],
            native_wait: vec![],
        };
        for p in self.passes {
            for m in &p.socket.modes {
                if let (Some(d), Some(h)) = (m.arm("native-direct"), m.arm("native-host")) {
                    g.socket_ratio.push((
                        format!("{}, {}", p.name, m.name),
                        ratio(&d.one_p50, &h.one_p50),
                    ));
                    if let (Some(gd), Some(w)) = (m.arm("guest-direct"), m.arm("wasm-winch")) {
                        g.wasm_socket.push((
                            format!("through {}, {}", p.name, m.name),
                            ratio(&gd.one_p50, &w.one_p50),
                            ratio(&h.one_p50, &w.one_p50),
                            ratio(&h.conc_tput, &w.conc_tput),
                        ));
                    }
                    if let Some(pu) = m.arm("native-pump") {
                        g.socket_pump.push(PumpGoal::of(
                            format!("through {}, one caller, {}", p.name, m.name),
                            &d.one_p50,
                            &pu.one_p50,
                            &h.one_p50,
                            m.arm("native-forwarder").map(|f| f.one_p50.as_slice()),
                        ));
                    }
                }
            }
            let s = &p.socket;
            if let (Some(d), Some(h)) = (s.arm("native-direct"), s.arm("native-host")) {
                g.socket_tput.push((
                    p.name.clone(),
                    Spread::of(&h.conc_tput),
                    Spread::of(&d.conc_tput),
                ));
                g.native_rss.push((
                    p.name.clone(),
                    h.rss_idle.unwrap_or(f64::NAN),
                    h.rss_load.unwrap_or(f64::NAN),
                    h.hwm.unwrap_or(f64::NAN),
                ));
            }
            let r = &p.reload;
            if let Some(c) = r.case("wasm-release-winch") {
                g.wasm_reload.push((
                    p.name.clone(),
                    Summary::of(&c.total),
                    r.case("wasm-release-winch-inplace")
                        .map(|c| Summary::of(&c.total)),
                    Summary::of(&c.compile),
                ));
            }
            if let (Some(c), Some(su)) = (r.case("native-rust"), r.startup("native-rust")) {
                g.native_extra.push((
                    p.name.clone(),
                    Spread::of(&added(&su.ms, &c.total)),
                    Spread::of(&added(&su.ms, &c.host)),
                ));
            }
            for a in &p.native.arms {
                let waits = a.res.waits();
                g.native_wait.push((
                    p.name.clone(),
                    plugin_name(a).to_string(),
                    a.mode,
                    Spread::of(&waits),
                    waits.iter().copied().fold(f64::NAN, f64::max),
                ));
            }
            for r in p
                .native
                .arms
                .iter()
                .map(|a| &a.res)
                .chain(p.handover.cases.iter().map(|c| &c.res))
            {
                g.lost += r.lost;
                g.errors += r.errors.values().sum::<usize>();
            }
            for s in &p.stall {
                g.lost += s.lost;
                g.errors += s.errors.values().sum::<usize>();
                if s.key == "wasm-winch" {
                    let d = Summary::of(&s.during);
                    g.wasm_stall.push((
                        p.name.clone(),
                        d.max / 1000.0,
                        d.p99 / 1000.0,
                        Summary::of(&s.steady).p99 / 1000.0,
                    ));
                }
            }
        }
        g
    }

    pub fn plots(&self) -> Vec<(String, String)> {
        let mut out = vec![];
        let st = self.stdio;
        let mut rows: Vec<Row> = vec![];
        for m in &st.modes {
            rows.push(Row::header(&m.name));
            for a in &m.arms {
                let s = a.summary();
                rows.push(Row::bar(
                    &a.label,
                    s.p10,
                    s.p50,
                    s.p90,
                    format!("{} µs", f1(s.p50)),
                ));
            }
        }
        if !rows.is_empty() {
            out.push((
                "stdio-latency.svg".to_string(),
                bars(
                    "Round trip over a plugin's stdio (the bench acting as lightningd)",
                    &format!(
                        "one request at a time; bar: p50, whisker: p10–p90; {} rounds × {} calls per arm, arms alternating",
                        st.rounds, st.calls
                    ),
                    "µs per round trip",
                    &[],
                    &rows,
                ),
            ));
        }
        let mut rows = vec![];
        for (p, m) in self
            .passes
            .iter()
            .flat_map(|p| p.socket.modes.iter().map(move |m| (p, m)))
        {
            rows.push(Row::header(&format!("through {}, {}", p.name, m.name)));
            for a in &m.arms {
                let s = a.one();
                rows.push(Row::bar(
                    &a.label,
                    s.p10,
                    s.p50,
                    s.p90,
                    format!("{} µs", f0(s.p50)),
                ));
            }
        }
        if !rows.is_empty() {
            out.push((
                "socket-latency.svg".to_string(),
                bars(
                    "Round trip over lightning-rpc, one caller",
                    "bar: p50, whisker: p10–p90; arms alternating round by round",
                    "µs per call",
                    &[],
                    &rows,
                ),
            ));
        }
        for (file, title, family) in [
            (
                "reload-rust.svg",
                "Reload of a tiny Rust plugin (bench-plugin)",
                "native-rust",
            ),
            (
                "reload-pyln.svg",
                "Reload of a pyln-client plugin (hello.py)",
                "pyln",
            ),
            (
                "reload-wasm.svg",
                "Reload of the wasm example (hello-wasm)",
                "wasm",
            ),
        ] {
            let mut rows = vec![];
            for p in self.passes {
                let startups: Vec<_> = p
                    .reload
                    .startups
                    .iter()
                    .filter(|s| s.key == family)
                    .collect();
                let cases: Vec<_> = p
                    .reload
                    .cases
                    .iter()
                    .filter(|c| c.key.starts_with(family))
                    .collect();
                if cases.is_empty() {
                    continue;
                }
                rows.push(Row::header(&format!("through {}", p.name)));
                for s in startups {
                    let m = Summary::of(&s.ms);
                    rows.push(Row {
                        label: "the child's own start-up".into(),
                        segments: vec![(3, m.p50)],
                        whisker: Some((m.p10, m.p90)),
                        note: format!("{} ms", f1(m.p50)),
                    });
                }
                for c in cases {
                    let t = Summary::of(&c.total);
                    let detect = median(&c.detect());
                    let host = median(&c.host);
                    let compile = if c.compile.is_empty() {
                        0.0
                    } else {
                        median(&c.compile)
                    };
                    let label = c
                        .label
                        .split_once(": ")
                        .map_or(c.label.as_str(), |(_, l)| l)
                        .replace("hello-wasm ", "")
                        .replace("bench-plugin (Rust), ", "")
                        .replace("hello.py (pyln-client), ", "");
                    rows.push(Row {
                        label: format!("reload, {label}"),
                        segments: vec![(0, detect), (1, compile), (2, host - compile)],
                        whisker: Some((t.p10, t.p90)),
                        note: format!("{} ms", f1(t.p50)),
                    });
                }
            }
            if rows.is_empty() {
                continue;
            }
            out.push((
                file.to_string(),
                bars(
                    title,
                    "new file complete (renamed into place, or closed) → first answer from the new version; segments: medians; whisker: p10–p90 of the total",
                    "ms",
                    &[
                        "detect: inotify (and for an in-place write the settle window), first answer",
                        "compile (wasm)",
                        "the rest of trigger → serving: stop old (native), start, getmanifest, init",
                        "the child's own start-up, no host",
                    ],
                    &rows,
                ),
            ));
        }
        out
    }

    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let m = self.machine;
        let g = self.goals();
        let _ = writeln!(s, "# Benchmarks\n");
        let _ = writeln!(
            s,
            "Written by the benchmark itself (`tests/src/bin/bench.rs`); run it again to refresh:\n\n```sh\n{COMMAND}\n```\n\nThis run: `{COMMAND}{}`{}.\n",
            if self.args.is_empty() {
                String::new()
            } else {
                format!(" -- {}", self.args)
            },
            if self.quick {
                " (`--quick`: a smoke run with small counts; `--out PATH` writes elsewhere)"
            } else {
                " (`--quick` for a smoke run with small counts; `--out PATH` writes elsewhere)"
            }
        );
        if self.quick {
            let _ = writeln!(
                s,
                "**This is a `--quick` smoke run: the counts are small and the figures rough.**\n"
            );
        }
        let _ = writeln!(s, "| | |\n| --- | --- |");
        let _ = writeln!(s, "| date | {} |", m.date);
        let _ = writeln!(s, "| CPU | {} (`nproc` = {}) |", m.cpu, m.nproc);
        let _ = writeln!(s, "| memory | {:.1} GiB |", m.mem_gib);
        let _ = writeln!(s, "| kernel | {} |", m.kernel);
        let _ = writeln!(s, "| rustc | {} |", m.rustc);
        let _ = writeln!(s, "| commit | {} |", m.commit);
        let _ = writeln!(s, "| LIGHTNINGD | {} |", m.lightningd);
        let _ = writeln!(
            s,
            "| run time | {:.0} s measuring, {:.0} s building first |",
            self.measure_secs, self.build_secs
        );
        let _ = writeln!(
            s,
            "| load average (1, 5, 15 min) | {} before measuring, {} after |",
            self.load.0, self.load.1
        );
        let _ = writeln!(
            s,
            "| wasm module | hello-wasm: release {} kB, debug {} kB |",
            self.bins.wasm_versions.sizes.0 / 1000,
            self.bins.wasm_versions.sizes.1 / 1000
        );
        let _ = writeln!(
            s,
            "\nHow to read: every comparison is measured in the same run, its arms \
             taking turns in short rounds (rotating which goes first), so that a noisy \
             machine affects both sides alike; the processes are started afresh several \
             times, and the call paths are measured twice, with the processes placed by \
             the scheduler and all on one core (see section 1). Latencies are medians \
             (p50) with their spread (p10–p90, or p99); a ratio or difference is \
             computed within each round and the table gives its median across rounds \
             and, in brackets, its p10–p90 across rounds. Everything measured is a \
             release build.\n"
        );
        self.goals_table(&mut s, &g);
        if !self.stdio.modes.is_empty() || self.passes.iter().any(|p| !p.socket.modes.is_empty()) {
            let _ = writeln!(s, "## 1. Call latency and throughput\n");
        }
        if !self.stdio.modes.is_empty() {
            self.stdio_section(&mut s);
        }
        for p in self.passes.iter().filter(|p| !p.socket.modes.is_empty()) {
            socket_section(&mut s, p, self.counts);
        }
        for p in self.passes.iter().filter(|p| !p.reload.cases.is_empty()) {
            reload_section(&mut s, p);
        }
        for p in self.passes.iter().filter(|p| !p.stall.is_empty()) {
            stall_section(&mut s, &p.name, &p.stall, self.counts);
        }
        if self
            .passes
            .iter()
            .any(|p| !p.socket.modes.is_empty() || !p.reload.cases.is_empty())
        {
            self.memory_section(&mut s);
        }
        for p in self.passes.iter().filter(|p| !p.edit.is_empty()) {
            edit_section(&mut s, p, self.counts);
        }
        for p in self.passes.iter().filter(|p| !p.dbwrite.is_empty()) {
            dbwrite_section(&mut s, p);
        }
        for p in self.passes.iter().filter(|p| !p.native.arms.is_empty()) {
            native_section(&mut s, p, self.counts);
        }
        for p in self.passes.iter().filter(|p| !p.handover.cases.is_empty()) {
            handover_section(&mut s, p, self.counts);
        }
        self.analysis(&mut s, &g);
        s
    }

    fn goals_table(&self, s: &mut String, g: &Goals) {
        let _ = writeln!(s, "## Goals\n");
        let _ = writeln!(s, "| goal | measured | |\n| --- | --- | --- |");
        for (name, r) in &g.socket_ratio {
            let _ = writeln!(
                s,
                "| the proxy adds ≤ 10 % to a direct round trip through lightningd ({name}) | hello-native via cln-autoreload / loaded directly, one caller, p50: ×{} | {} |",
                r.show(3),
                verdict(Some(r.p50 <= 1.10))
            );
        }
        for sg in &g.stdio {
            let _ = writeln!(
                s,
                "| stdio path: cln-autoreload adds ≤ 1.2× what a minimal forwarder adds ({}) | cln-autoreload adds {} µs, the forwarder {} µs (p50 over direct): ×{} | {} |",
                sg.mode,
                sg.host_added.show(1),
                sg.fwd_added.show(1),
                sg.ratio.show(2),
                verdict(Some(sg.ratio.p50 <= 1.2))
            );
        }
        for pg in g
            .stdio
            .iter()
            .filter_map(|sg| sg.pump.as_ref())
            .chain(&g.socket_pump)
        {
            let fwd = pg
                .fwd_ratio
                .map(|f| {
                    format!(
                        "; the minimal forwarder adds ×{} what the pump adds",
                        f.show(2)
                    )
                })
                .unwrap_or_default();
            let _ = writeln!(
                s,
                "| cln-autoreload adds ≤ {PUMP_GOAL}× what the byte pump adds ({}) | cln-autoreload adds {} µs, the pump {} µs (p50 over direct): ×{}{fwd} | {} |",
                pg.place,
                pg.host_added.show(1),
                pg.pump_added.show(1),
                pg.ratio.show(2),
                verdict(Some(pg.met()))
            );
        }
        for (i, sg) in g.stdio.iter().enumerate() {
            let sock = if i == 0 {
                g.socket_tput
                    .iter()
                    .map(|(n, h, d)| {
                        format!(
                            "; over lightning-rpc ({n}), {} connections: {} calls/s (loaded directly: {})",
                            self.counts.callers,
                            thousands(h.p50),
                            thousands(d.p50)
                        )
                    })
                    .collect::<String>()
            } else {
                String::new()
            };
            let t = sg.tput;
            let _ = writeln!(
                s,
                "| ≥ 50 000 calls/s through the host with a trivial native child | stdio ({}), {} requests in flight: {} calls/s (p10–p90 {}–{}){sock} | {} |",
                sg.mode,
                self.counts.window,
                thousands(t.p50),
                thousands(t.p10),
                thousands(t.p90),
                verdict(Some(t.p50 >= 50_000.0))
            );
        }
        for (mode, w, c) in &g.wasm_stdio {
            let _ = writeln!(
                s,
                "| stdio path: hello-wasm inside cln-autoreload ≤ 1.5× the same source built natively and driven directly ({mode}) | Winch ×{}, Cranelift ×{} (round trip p50, per round) | {} |",
                w.show(2),
                c.show(2),
                verdict(Some(w.p50 <= 1.5))
            );
        }
        for (place, direct, host, tput) in &g.wasm_socket {
            let _ = writeln!(
                s,
                "| hello-wasm.wasm via cln-autoreload ≤ 1.25× hello-wasm built natively and loaded directly, one caller, and faster than hello-native via cln-autoreload ({place}) | Winch / native direct ×{}; Winch / hello-native via cln-autoreload ×{} | {} |",
                direct.show(2),
                host.show(2),
                verdict(Some(direct.p50 <= 1.25 && host.p50 < 1.0))
            );
            let _ = writeln!(
                s,
                "| 16 callers: wasm calls/s ≥ native-through-host calls/s ({place}) | hello-wasm.wasm (Winch) / hello-native, both via cln-autoreload: ×{} | {} |",
                tput.show(2),
                verdict(Some(tput.p50 >= 1.0))
            );
        }
        for (name, t, inplace, c) in &g.wasm_reload {
            let inplace = inplace
                .map(|t| {
                    format!(
                        "; rewritten in place instead (so the 50 ms settle window applies): {} ms",
                        f1(t.p50)
                    )
                })
                .unwrap_or_default();
            let _ = writeln!(
                s,
                "| a wasm file change serves within 50 ms (release, Winch; {name}) | renamed into place → the new version answering: {} ms p50 ({}–{}), of which compiling {} ms{inplace} | {} |",
                f1(t.p50),
                f1(t.p10),
                f1(t.p90),
                f1(c.p50),
                verdict(Some(t.p50 <= 50.0))
            );
        }
        for (name, extra, host) in &g.native_extra {
            let _ = writeln!(
                s,
                "| a native reload adds ≤ 10 ms to the child's own start-up ({name}) | file renamed → new pid answering, minus the child's own start-up: +{} ms; trigger → serving minus start-up: +{} ms | {} |",
                extra.show(1),
                host.show(1),
                verdict(Some(extra.p50 <= 10.0))
            );
        }
        for (name, max, p99, steady) in &g.wasm_stall {
            let _ = writeln!(
                s,
                "| the stall during a wasm swap is ≤ 5 ms ({name}) | longest wait of a call overlapping a swap: {} ms (p99 {} ms; steady-state p99 {} ms) | {} |",
                f1(*max),
                f1(*p99),
                f1(*steady),
                verdict(Some(*max <= 5.0))
            );
        }
        for (name, plugin, mode, w, max) in &g.native_wait {
            // The goals: a full overlap hides the whole start (≤ 5 ms); a
            // warm start hides all but the old version's exit and the new
            // one's init (≤ 10 ms); break-before-make hides nothing (its
            // figure stands beside them, with no goal).
            let goal = match *mode {
                "full" => Some(5.0),
                "warm" => Some(10.0),
                _ => None,
            };
            let what = match goal {
                Some(ms) => format!("a call waits ≤ {ms} ms during a native reload, {mode}"),
                None => format!("the wait of a call during a native reload, {mode}"),
            };
            let _ = writeln!(
                s,
                "| {what} ({plugin}; {name}) | longest wait of a call overlapping a reload, per reload, p50 (p10–p90): {} ms, worst reload {} ms | {} |",
                w.show(1),
                f1(*max),
                goal.map_or_else(|| "–".to_string(), |ms| verdict(Some(w.p50 <= ms)).to_string())
            );
        }
        let _ = writeln!(
            s,
            "| no call lost during reloads | {} lost, {} errors | {} |",
            g.lost,
            g.errors,
            verdict(Some(g.lost == 0))
        );
        for (name, idle, load, hwm) in &g.native_rss {
            let _ = writeln!(
                s,
                "| host RSS ≤ 15 MB with only native plugins ({name}) | idle {} MB, under load {} MB (peak sampled), VmHWM {} MB | {} |",
                f1(*idle),
                f1(*load),
                f1(*hwm),
                verdict(Some(idle.max(*load).max(*hwm) <= 15.0))
            );
        }
        let _ = writeln!(
            s,
            "\nMB here is 10⁶ bytes. Where a goal is missed, [what bounds it](#what-bounds-the-missed-goals) says why.\n"
        );
    }

    fn stdio_section(&self, s: &mut String) {
        let st = self.stdio;
        let _ = writeln!(s, "### Over a plugin's stdio\n");
        let _ = writeln!(
            s,
            "The benchmark plays lightningd: it starts the process with piped stdin/stdout \
             (cwd `<lightning-dir>/regtest`, `LIGHTNINGD_PLUGIN=1`), sends getmanifest and \
             init, then one request at a time: {} rounds of {} calls per arm, the arms \
             taking turns (short rounds, so that every arm sees the same mix of the \
             machine's moods). `bench-plugin` (tests/src/bin/bench-plugin.rs) is a trivial \
             serde_json plugin answering `bench-pid`; the byte pump \
             (tests/src/bin/pump.rs) is the true floor of any proxy: one blocking thread \
             per direction, a plain `read` and a `write_all` of exactly what was read, \
             nothing parsed; the forwarder (tests/src/bin/forwarder.rs) is a bare \
             blocking proxy, one thread per direction, that parses and re-serializes \
             each message: the floor for any proxy that reads the messages. cln-autoreload is started as lightningd would \
             start `cln-autoreload PLUGIN`. Throughput: {} rounds of {} calls with {} \
             requests in flight.\n\n\
             Everything is measured twice: with the processes placed by the scheduler, \
             and with all of them on one core (`taskset`). On this VM a wake-up across \
             cores costs far more than one on the same core, and where the scheduler \
             puts a pair of processes sticks for a while, so free placement is bimodal \
             (a direct round trip takes either ~8 or ~30 µs); on one core the figures \
             are the processes' own costs.\n",
            st.rounds, st.calls, st.tput_rounds, st.tput_calls, st.window
        );
        if let Some(e) = &st.pin_error {
            let _ = writeln!(s, "The one-core measurement could not run: {e}.\n");
        }
        for m in &st.modes {
            let _ = writeln!(s, "#### {}\n", m.name);
            let base = |k: &str| m.arm(k).map(|a| a.round_p50.clone());
            let _ = writeln!(
                s,
                "| path | p10 µs | p50 µs | p90 µs | p99 µs | added to p50 vs direct, µs | calls/s, {} in flight |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
                st.window
            );
            for a in &m.arms {
                let sm = a.summary();
                let base_key = if a.key.starts_with("host-") || a.key == "guest-direct" {
                    "guest-direct"
                } else {
                    "direct"
                };
                let add = match base(base_key) {
                    Some(b) if a.key != base_key => Spread::of(&added(&b, &a.round_p50)).show(1),
                    _ => "–".into(),
                };
                let t = Spread::of(&a.tput);
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {} | {} | {} | {} ({}–{}) |",
                    a.label,
                    f1(sm.p10),
                    f1(sm.p50),
                    f1(sm.p90),
                    f1(sm.p99),
                    add,
                    thousands(t.p50),
                    thousands(t.p10),
                    thousands(t.p90)
                );
            }
            if let (Some(d), Some(f), Some(h)) =
                (m.arm("direct"), m.arm("forwarder"), m.arm("host"))
            {
                let hv = added(&d.round_p50, &h.round_p50);
                let fv = added(&d.round_p50, &f.round_p50);
                let _ = writeln!(
                    s,
                    "\nWhat cln-autoreload adds over what the minimal forwarder adds, per round: \
                     **×{}**. Round trip through cln-autoreload / direct: ×{}; through the \
                     forwarder / direct: ×{}. Throughput through cln-autoreload / through the \
                     forwarder: ×{}.",
                    Spread::of(&zip_with(&hv, &fv, |h, f| h / f)).show(2),
                    ratio(&d.round_p50, &h.round_p50).show(2),
                    ratio(&d.round_p50, &f.round_p50).show(2),
                    ratio(&f.tput, &h.tput).show(2),
                );
                if let Some(p) = m.arm("pump") {
                    let pg = PumpGoal::of(
                        String::new(),
                        &d.round_p50,
                        &p.round_p50,
                        &h.round_p50,
                        Some(&f.round_p50),
                    );
                    let _ = writeln!(
                        s,
                        "\nAgainst the byte pump, the true floor (goal: ≤ {PUMP_GOAL}×): what \
                         cln-autoreload adds over what the pump adds, per round: **×{}** \
                         (cln-autoreload adds {} µs, the pump {} µs); what the minimal \
                         forwarder adds over what the pump adds: ×{}. Round trip through the \
                         pump / direct: ×{}. Throughput through cln-autoreload / through the \
                         pump: ×{}.",
                        pg.ratio.show(2),
                        pg.host_added.show(1),
                        pg.pump_added.show(1),
                        pg.fwd_ratio.map_or("–".into(), |f| f.show(2)),
                        ratio(&d.round_p50, &p.round_p50).show(2),
                        ratio(&p.tput, &h.tput).show(2),
                    );
                }
            }
            if let (Some(d), Some(w), Some(c)) = (
                m.arm("guest-direct"),
                m.arm("host-winch"),
                m.arm("host-cranelift"),
            ) {
                let _ = writeln!(
                    s,
                    "\nThe wasm guest (hello-wasm, the guest SDK) inside cln-autoreload / the \
                     same source built natively and driven directly: ×{} with Winch, ×{} \
                     with Cranelift.",
                    ratio(&d.round_p50, &w.round_p50).show(2),
                    ratio(&d.round_p50, &c.round_p50).show(2)
                );
            }
            s.push('\n');
        }
        let _ = writeln!(s, "![stdio round trips](bench/stdio-latency.svg)\n");
    }

    fn memory_section(&self, s: &mut String) {
        let _ = writeln!(s, "## 4. Memory\n");
        let _ = writeln!(
            s,
            "Resident set of the cln-autoreload process (the node's child whose executable \
             is cln-autoreload; `VmRSS` in /proc/PID/status): idle after the warm-up, the \
             peak sampled every 5 ms while {} connections call it, and the kernel's \
             high-water mark (`VmHWM`) at the end. MB = 10⁶ bytes.\n",
            self.counts.callers
        );
        let _ = writeln!(
            s,
            "| node | plugin | idle MB | under load MB | VmHWM MB |\n| --- | --- | ---: | ---: | ---: |"
        );
        for p in self.passes {
            for a in p.socket.arms().iter().filter(|a| a.rss_idle.is_some()) {
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {} | {} |",
                    p.name,
                    a.label,
                    f1(a.rss_idle.unwrap_or(f64::NAN)),
                    f1(a.rss_load.unwrap_or(f64::NAN)),
                    f1(a.hwm.unwrap_or(f64::NAN))
                );
            }
        }
        let _ = writeln!(
            s,
            "\nAcross the reload series (section 2), host RSS before the first and after \
             the last reload:\n\n| node | case | reloads | before MB | after MB |\n| --- | --- | ---: | ---: | ---: |"
        );
        for p in self.passes {
            for c in &p.reload.cases {
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {} | {} |",
                    p.name,
                    c.label,
                    c.total.len(),
                    f1(c.rss_before.unwrap_or(f64::NAN)),
                    f1(c.rss_after.unwrap_or(f64::NAN))
                );
            }
        }
        s.push('\n');
    }

    fn analysis(&self, s: &mut String, g: &Goals) {
        let _ = writeln!(s, "## What bounds the missed goals\n");
        let mut any = false;
        for p in self.passes {
            let mut parts = vec![];
            for m in &p.socket.modes {
                let (Some(d), Some(h)) = (m.arm("native-direct"), m.arm("native-host")) else {
                    continue;
                };
                let r = ratio(&d.one_p50, &h.one_p50);
                if r.p50 <= 1.10 {
                    continue;
                }
                let host = Spread::of(&added(&d.one_p50, &h.one_p50)).p50;
                let direct = d.one().p50;
                let floor = m
                    .arm("native-forwarder")
                    .map(|f| Spread::of(&added(&d.one_p50, &f.one_p50)).p50);
                parts.push(format!(
                    "with {}: ×{:.2}, i.e. +{} µs on a {} µs round trip{}",
                    m.name,
                    r.p50,
                    f1(host),
                    f0(direct),
                    floor.map_or(String::new(), |f| format!(
                        ", where the minimal forwarder adds {} µs (+{:.0} %)",
                        f1(f),
                        f / direct * 100.0
                    ))
                ));
            }
            if parts.is_empty() {
                continue;
            }
            any = true;
            let _ = writeln!(
                s,
                "- **+10 % over a direct round trip, through {}**: {}. Every call through \
                 a proxy takes two more pipe hops, node → proxy → plugin and back, each a \
                 process wake-up plus the proxy's own work; the node's own round trip here \
                 is so short that even the minimal forwarder, which does nothing but \
                 parse and re-serialize, costs several times the 10 % budget: no \
                 out-of-process proxy meets this goal through the stand-in. \
                 cln-autoreload costs about what the forwarder does (section 1). {} \
                 What is left to gain inside the host is its CPU per message (profile \
                 notes below).\n",
                p.name,
                parts.join("; "),
                REAL_LIGHTNINGD
            );
        }
        for sg in g.stdio.iter().filter(|sg| sg.ratio.p50 > 1.2) {
            any = true;
            let _ = writeln!(
                s,
                "- **1.2× the minimal forwarder, {}** (cln-autoreload adds {} µs, the \
                 forwarder {} µs): the host's CPU per message (see the \
                 profile notes).\n",
                sg.mode,
                f1(sg.host_added.p50),
                f1(sg.fwd_added.p50)
            );
        }
        let missed: Vec<String> = g
            .stdio
            .iter()
            .filter_map(|sg| sg.pump.as_ref())
            .chain(&g.socket_pump)
            .filter(|pg| !pg.met())
            .map(|pg| {
                format!(
                    "{}: ×{:.2} (cln-autoreload adds {} µs, the pump {} µs)",
                    pg.place,
                    pg.ratio.p50,
                    f1(pg.host_added.p50),
                    f1(pg.pump_added.p50)
                )
            })
            .collect();
        if !missed.is_empty() {
            any = true;
            let _ = writeln!(
                s,
                "- **{PUMP_GOAL}× what the byte pump adds**: {}. Not wake-ups but the \
                 host's CPU per message: per round trip the host makes the pump's one \
                 `read` and one `write` per message plus one `epoll_wait` (where the \
                 pump blocks in `read`), and its one thread switches about as often as \
                 the pump's two; but it runs ~65 times the pump's user-space \
                 instructions (~22 000 per round trip: finding each message's end, \
                 its id and method, the routing tables, the async runtime), about what \
                 the minimal forwarder runs, which parses and re-serializes and adds \
                 about 1.5× what the pump adds itself (see the profile notes, \
                 *syscalls, wake-ups and CPU per message against the byte pump*). \
                 Placed by the scheduler, where a wake-up across cores dominates, the \
                 host adds what the pump adds.\n",
                missed.join("; ")
            );
        }
        let wasm_missed: Vec<String> = g
            .wasm_stdio
            .iter()
            .filter(|(_, w, _)| w.p50 > 1.5)
            .map(|(mode, w, c)| format!("stdio, {mode}: ×{:.2} (Cranelift ×{:.2})", w.p50, c.p50))
            .chain(
                g.wasm_socket
                    .iter()
                    .filter(|(_, d, h, t)| d.p50 > 1.25 || h.p50 >= 1.0 || t.p50 < 1.0)
                    .map(|(place, d, h, t)| {
                        format!(
                            "{place}: ×{:.2} native direct, ×{:.2} hello-native via the host, 16 callers ×{:.2} its calls/s",
                            d.p50, h.p50, t.p50
                        )
                    }),
            )
            .collect();
        if !wasm_missed.is_empty() {
            any = true;
            let _ = writeln!(
                s,
                "- **wasm inside the host as fast as native loaded directly** ({}): the \
                 guest's own code. A wasm call crosses no pipe and no process inside the \
                 host (the instance is a task on the host's loop, its stdio in-process), \
                 but the guest runs compiled wasm: by callgrind, one `hello` call runs \
                 ~10 000 instructions in hello-wasm built natively, and ~64 000 in the \
                 host with the same source as wasm under Winch, ~51 000 under Cranelift. \
                 Of those, ~36 000 (Winch) or ~23 000 (Cranelift) are the guest's \
                 compiled code doing what the native build does in 10 000 (a baseline \
                 compiler, bounds-checked memory, wasm's own allocator), ~5 000 its two \
                 WASI calls and fiber switches, and ~11 000 the host's own routing \
                 of the two messages, as for any plugin. Winch is the default because \
                 it compiles several times faster (section 2: the 50 ms reload goal); \
                 `autoreload-wasm-compiler=cranelift` trades that for faster code \
                 (see the profile notes, *a wasm call*).\n",
                wasm_missed.join("; ")
            );
        }
        if g.stdio.iter().any(|sg| sg.tput.p50 < 50_000.0) {
            any = true;
            let _ = writeln!(
                s,
                "- **50 000 calls/s**: one event-loop thread handles every message; its \
                 CPU per call bounds the rate (see the profile notes).\n"
            );
        }
        for p in self.passes {
            let Some(c) = p.reload.case("wasm-release-winch") else {
                continue;
            };
            let t = Summary::of(&c.total);
            if t.p50 <= 50.0 {
                continue;
            }
            any = true;
            let detect = median(&c.detect());
            let compile = median(&c.compile);
            let rest = median(&c.host) - compile;
            let _ = writeln!(
                s,
                "- **a wasm change serving within 50 ms, through {}** (measured {} ms p50): \
                 {} ms from the rename to the reload starting (inotify, and the first \
                 answer), {} ms compiling the {} kB module with Winch (at normal priority, \
                 the default, sharing the 2 cores with the tight polling loop and the node), then \
                 {} ms to instantiate it and answer getmanifest and init. Winch's compile \
                 is the bound: its time grows with the module's size, which is why the \
                 example is built with the README's release profile (`lto`, \
                 `opt-level = \"s\"`), and with the CPU: the same module compiled in \
                 ~46 ms on the AMD EPYC of the runs of 2026-11-26, and takes 75–110 ms \
                 on the Intel Xeon of 2026-11-30 with the machine idle (profile notes, \
                 *the stall during a wasm swap*).\n",
                p.name,
                f1(t.p50),
                f1(detect),
                f1(compile),
                self.bins.wasm_versions.sizes.0 / 1000,
                f1(rest)
            );
        }
        for p in self.passes {
            let (Some(c), Some(su)) = (
                p.reload.case("native-rust"),
                p.reload.startup("native-rust"),
            ) else {
                continue;
            };
            let extra = Spread::of(&added(&su.ms, &c.total));
            if extra.p50 <= 10.0 {
                continue;
            }
            any = true;
            let host_extra = Spread::of(&added(&su.ms, &c.host));
            let _ = writeln!(
                s,
                "- **a native reload within 10 ms of the child's start-up, through {}** \
                 (measured +{} ms): {} ms of it from the rename to the reload starting \
                 (inotify, and the first answer); from then to the new process answering \
                 init, the host adds {} ms to the child's own {} ms start-up (stopping the \
                 old process: shutdown notification, stdin closed, waiting for its exit, \
                 then the spawn).\n",
                p.name,
                f1(extra.p50),
                f1(median(&c.detect())),
                f1(host_extra.p50),
                f1(Summary::of(&su.ms).p50)
            );
        }
        for p in self.passes {
            let Some(st) = p.stall.iter().find(|r| r.key == "wasm-winch") else {
                continue;
            };
            let d = Summary::of(&st.during);
            if d.max / 1000.0 <= 5.0 {
                continue;
            }
            any = true;
            let steady = Summary::of(&st.steady);
            let before = st.per_reload.iter().filter(|w| w.2 < -1.0).count();
            let per: Vec<f64> = st.per_reload.iter().map(|w| w.0).collect();
            let began: Vec<f64> = st
                .per_reload
                .iter()
                .filter(|w| w.2 < -1.0)
                .map(|w| w.1)
                .collect();
            let _ = writeln!(
                s,
                "- **a stall of at most 5 ms during a wasm swap, through {}** (longest wait \
                 {} ms; p99 during reloads {} ms against {} ms steady). In {before} of {} \
                 reloads the longest wait ended more than 1 ms before the swap, answered \
                 by the old instance while the new module was being compiled; those waits \
                 began a median {} ms after the rename, i.e. during the compile. The swap \
                 itself does not stall. The compile ({} ms here) runs at normal priority \
                 by default, since a save must not wait behind a busy node (#22; \
                 `--autoreload-wasm-reload-priority=low` runs it at nice 19, the \
                 *low priority* arm beside it), and on 2 cores the callers, the \
                 node, the host and the serving plugin still share the CPU with it (a median {} ms per \
                 reload was the longest wait). The single longest call is bounded by the machine: the \
                 longest steady-state wait in this run was {} ms (other work shares \
                 these 2 cores; see the load average above).\n",
                p.name,
                f1(d.max / 1000.0),
                f1(d.p99 / 1000.0),
                f1(steady.p99 / 1000.0),
                st.per_reload.len(),
                f0(median(&began)),
                p.reload
                    .case("wasm-release-winch")
                    .map_or("~50".into(), |c| f0(median(&c.compile))),
                f1(median(&per)),
                f1(steady.max / 1000.0)
            );
        }
        for p in self.passes {
            for a in p.native.arms.iter().filter(|a| a.mode != "false") {
                let w = Spread::of(&a.res.waits());
                if w.p50 <= if a.mode == "warm" { 10.0 } else { 5.0 } {
                    continue;
                }
                any = true;
                let _ = writeln!(s, "- {}\n", native_bound(a, p, w));
            }
        }
        if g.lost > 0 {
            any = true;
            let _ = writeln!(
                s,
                "- **lost calls**: {} calls got no answer within 10 s: a bug, see section 3.\n",
                g.lost
            );
        }
        if g.native_rss.iter().any(|r| r.1.max(r.2).max(r.3) > 15.0) {
            any = true;
            let _ = writeln!(
                s,
                "- **15 MB RSS**: compare with the wasm rows of section 4: whatever the \
                 host maps beyond its event loop shows there.\n"
            );
        }
        if !any {
            let _ = writeln!(s, "Every goal was met in this run.\n");
        }
        s.push_str(PROFILE_NOTES);
        s.push_str(BUILD_NOTES);
    }
}

/// The goal against a real lightningd, as the issue's reviewer measured it
/// (this bench with `LIGHTNINGD` set): kept here, not computed, because
/// this machine has no real lightningd to measure against. It replaces an
/// estimate from the stand-in's figures (8 %) that the measurement showed
/// to be far off: a real lightningd's round trip is longer, but so are the
/// two extra hops through it.
const REAL_LIGHTNINGD: &str = "Against a real lightningd the goal is missed \
    too, and the host still costs about what the forwarder does: measured by the \
    issue's reviewer on a real lightningd v26.06.6 (this machine kind, this bench \
    with `LIGHTNINGD` set, one caller, p50), hello-native loaded directly answers in \
    151 µs, through cln-autoreload in 224 µs (×1.50), through the minimal forwarder \
    in 215 µs (×1.43): the host is within 5 % of the forwarder.";

/// Build time and size with and without the `wasm` feature, timed by hand:
/// the bench measures the host running, not building it.
const BUILD_NOTES: &str = r#"
## Build time and size

Timed by hand, not by the bench (2026-11-30, the host of commit f4b490b
with the `wasm` feature added): a cold release build of the host with its
default features (wasm on) and without them (native plugins only), each in
a fresh, empty target directory, one after the other, at normal priority,
on a machine of this kind with another CPU (`nproc` = 2, Intel Xeon, 23 GiB,
rustc 1.95.0), then the binary stripped:

```sh
CARGO_TARGET_DIR=/tmp/bt-wasm /usr/bin/time -v cargo build --release -p cln-autoreload
CARGO_TARGET_DIR=/tmp/bt-native /usr/bin/time -v cargo build --release -p cln-autoreload --no-default-features
cp /tmp/bt-wasm/release/cln-autoreload host-wasm && strip host-wasm && ls -l host-wasm   # likewise for bt-native
```

| build | crates compiled | wall | CPU (user + sys) | binary | stripped |
| --- | ---: | ---: | ---: | ---: | ---: |
| default (`wasm`) | 208 | 57 min 42 s | 23 min 28 s (1 330 + 78 s) | 126.7 MB | 19.3 MB |
| `--no-default-features` | 61 | 7 min 6 s | 3 min 57 s (222 + 16 s) | 29.0 MB | 4.3 MB |

Other builds and test suites shared the 2 cores all along (load average
3.0 when the first build started, 11–17 during it, 11.4 when the
second started; the wasm build got 40 % of a core on average, the native one 55 %), so
the wall
times say mostly how busy the machine was: the CPU time is the steadier
figure. Without wasmtime the build takes about a sixth of the CPU time and
the stripped binary is under a quarter of the size.
The unstripped binaries carry line tables (`debug = "line-tables-only"`
in the workspace's release profile).
"#;

/// Findings from profiling by hand (callgrind, and the host patched
/// outside the repository): not regenerated by the bench.
const PROFILE_NOTES: &str = r#"## Profile notes

Taken by hand on this machine kind (the date and commit are given with
each), not regenerated by the bench: re-check them after changing the
host.

- **The host's CPU per call** (stdio path; 2026-11-26, commit b4690a2, the
  history of the figures below): `valgrind --tool=callgrind` on
  `cln-autoreload bench-plugin` over 20 000 calls with 16 in flight counts
  ~19 000 instructions per round trip in the host. 63 % of them are in
  `framing::Framer::next_frame` (host/src/framing.rs), ~6 000 per message,
  two messages per call: each message is scanned byte by byte for its end
  (`Scan::advance`), then parsed by serde_json twice, once as `IgnoredAny`
  to find where it ends and once more by `classify` into `Envelope` (which
  also runs UTF-8 validation over it), and its id copied with
  `RawValue::to_owned`. Since then (commit 1182d7e) a message whose end the
  scan found is parsed once, by `classify` alone. The rest is the event
  loop, the router's `HashMap`s (SipHash, ~900 instructions per call) and
  the writes. Re-measured with tests/profile/stdio-callgrind.py (20 000 calls,
  16 in flight) at the commit of this run's figures: ~16 250
  instructions per round trip, 16 % in `next_frame`, ~7 % in UTF-8
  validation (the repair of plugin output, then `classify`), ~15 % in
  malloc/free. So the host's CPU per call went down since the forwarder
  comparison was first made; the one-core figures of this run put the
  forwarder itself lower than earlier runs did (9 µs against 14 µs, the
  same binary), which is the machine, not the code.
- **Winch compile time**: `Module::new` with Winch on hello-wasm's release
  build (380 kB, 3 720 functions) executes ~444 M instructions, ~57 ms on an
  idle core here. 29 % of them are `memcpy` inside winch-codegen
  (`compile_function`, `emit_prologue`: large values copied per function),
  21 % compiling trampolines with Cranelift. `parallel_compilation` made no
  difference on 2 cores then (a later side-by-side run, see the stall note
  below, put the serial compile at 58.9 ms against 45.6); `generate_address_map(false)` a few percent. The
  module's size is what we control: the same source with `lto = true`,
  `codegen-units = 1`, `opt-level = "s"` is about half the size and
  compiles in ~33 ms (opt-level 3 with LTO: 250 kB, ~44 ms); the README
  recommends that profile and the bench builds the example with it.
- **Cranelift reloads**: wasmtime's `incremental-cache` feature
  (`Config::enable_incremental_compilation` with an in-memory `CacheStore`)
  caches compiled functions by their body: recompiling the other version of
  hello-wasm (one constant changed) took ~90 ms instead of ~375 ms cold.
  Winch has no such cache.
- **The stall during a wasm swap** happens while the next module compiles,
  not at the swap. Measured by hand before the change: a serial compile
  (`Config::parallel_compilation(false)`) lowered the p99 during reloads
  from ~4.3 to ~2.4–3.1 ms; compiling at nice 19 brought it down to the
  steady-state p99. The host now compiles on a nice-19 thread and a nice-19
  rayon pool (backend/wasm.rs `compile`). Measured by hand (2026-11-26, `--only
  reload,stall`, same machine): adding `parallel_compilation(false)` to
  that brings the longest wait during swaps to 6.9 ms and its p99 to 0.9 ms
  (against 10.4 and 2.2 in the full run beside it), but the compile to 58.9
  ms (against 45.6): the wasm reload goal is missed then. We keep the parallel compile:
  a quick reload first, a few ms of worst-case wait second.
  `SCHED_IDLE` instead of nice 19 for the compile threads (issue #13), run
  with `--only reload,stall` one after the other on 2026-11-30 (Intel
  Xeon, the machine otherwise idle; the bench's own load average 5–6):
  nice 19 compiled in 127 ms p50 (reload 138 ms), longest wait during
  swaps 13.9 ms, p99 2.6 ms; `SCHED_IDLE` compiled in 216 ms (reload
  233 ms), longest wait 14.3 ms, p99 1.3 ms (a full run beside them: 159
  ms, 14.6 ms, 1.1 ms). The same longest wait, half the p99, but reloads
  under load 1.3–1.7 times as slow: back to nice 19. On this CPU the
  compile alone takes 75–110 ms with the machine idle (`cln-autoreload
  dev` swapping two builds of the 220 kB module, six times), where the
  AMD EPYC of the earlier runs took ~46 ms: the 50 ms reload goal depends
  on the CPU the bench runs on.
- **Host memory across wasm reloads** (section 4) grows over the first
  reloads and then stays: 80 reloads of hello-wasm (release, Winch) in one
  host went from 25.2 MB to 33.3 MB after 10 and 33.7 MB after 80, with 6
  threads throughout. No leak per reload.
- **Syscalls, wake-ups and CPU per message against the byte pump**
  (stdio path, bench-plugin, one call at a time, taken by hand on
  2026-11-30 on an otherwise idle machine, after the host's I/O path was
  rebuilt for issue #13, below): system calls with `strace -c -f` over
  4 000 calls (the plugin's own one `read` and one `write` per call
  subtracted), context switches and on-CPU time with
  tests/profile/switches.py (20 000 calls, everything on one core, two
  runs), and user-space instructions with tests/profile/stdio-callgrind.py
  (`INFLIGHT=1`, 4 000 calls minus a run of none). Per round trip (two
  messages):

  | proxy | system calls | voluntary / involuntary switches | on-CPU µs | instructions |
  | --- | --- | ---: | ---: | ---: |
  | byte pump (2 threads) | 4: 2 `read`, 2 `write` | 1.95–1.96 / 0.17 | 6.9–9.7 | ~330 |
  | minimal forwarder (2 threads) | 4: 2 `read`, 2 `write` | 1.95–1.96 / 0.28–0.30 | 11.6–16.2 | ~17 200 |
  | cln-autoreload (1 thread), before | 8: 2 `read`, 2 `write`, 4 `epoll_wait` | 1.25–1.31 / 0.70–0.76 | 22.9–23.8 | ~36 400 |
  | cln-autoreload (1 thread), now | 6: 2 `read`, 2 `writev`, 2 `epoll_wait` | 1.52–1.53 / 0.48–0.49 | 19.8–29.2 | ~22 100 |

  ("Before" is the host at the start of this work, commit e1e7e16; its
  switches and CPU were taken the same way on 2026-11-30 with other builds
  sharing the machine.) What changed, each measured by the instruction
  count: the loop reads lightningd's stdin itself instead of a reader task
  passing frames over a channel, and writes to lightningd and to a native
  plugin's stdin straight into the pipe (`writev` of the message and its
  `"\n\n"`; host/src/outbox.rs), where a writer task per pipe took them
  from a channel (36 400 → 25 050 with the three items after); a child's
  exit is awaited by a task of its own, where the wait was polled beside
  every read of its stdout; the maps looked up per message hash with
  foldhash instead of SipHash; an answer from a plugin no longer builds
  the ids of its start-up requests to compare with. Then (25 050 →
  22 100): the loop is a spawned task, not `block_on`'s own future (waking
  that future made the runtime poll its drivers once more: an
  `epoll_wait` per message); a read makes room in its buffer only when
  less than 4 KiB is left (asking for 64 KiB every time allocated a fresh
  buffer per read, since the frames taken from it, kept in the table of
  requests in flight, share the old one); a plugin's output, already
  checked for UTF-8 as it is repaired, is not checked again.
  Of the ~22 100 instructions left per round trip: ~8 200 find each
  message's end and parse its envelope (`Framer::next_frame`, of which
  `classify`'s serde_json parse ~4 900), ~3 300 the supervisor and router
  (routing, the table of requests in flight), ~2 700 malloc/free, ~2 400
  the runtime's parks (the time driver's wheel, `clock_gettime`, the IO
  driver), ~1 200 the pipes' readiness, ~900 the writes. The host now
  makes the pump's system calls plus one `epoll_wait` per message where
  the pump blocks in `read`; it switches less often than the pump's two
  threads (one thread that blocks once per message, and is preempted by
  the plugin it writes to about every other call). What it spends beyond
  the pump is the CPU above: placed by the scheduler it adds what the pump
  adds (section 1), on one core about 1.9× (1.2× what the minimal
  forwarder adds, which parses each message too).
- **A wasm call** (stdio path, one `hello` at a time, callgrind as above
  with `METHOD=hello`, 2 000 calls minus none, the module compiled in
  both runs): hello-wasm built natively and driven directly runs ~10 150
  instructions per call (14 850 before the guest SDK read its stdin as
  below); inside the host, the same source as wasm runs ~64 400 with
  Winch and ~51 400 with Cranelift. Of the Winch figure, ~36 000 are the
  guest's compiled code (its fiber, less the WASI calls), ~5 000 its two
  `fd_read` (one returns the message, one finds nothing and suspends the
  fiber) and one `fd_write` through wasmtime-wasi's preview 1 adapter,
  ~6 000 framing what it wrote, and ~11 000 the host's loop routing the
  two messages, as for a native plugin. So the guest's own code is the
  bound: compiled wasm does the native build's 10 000 instructions of work
  in ~3.5 times as many with Winch (a baseline compiler) and ~2.3 times
  with Cranelift. The guest SDK used to read stdin through serde_json's
  reader-based stream deserializer, which reads a byte at a time and copies
  each into a growing buffer, then parsed each message twice; it now reads
  64 KiB at a time, finds each message's end with a bracket scan and parses
  it once from the slice (guest-sdk/src/stream.rs), and serializes answers
  into a reused buffer: a third fewer instructions natively, ~17 000 fewer
  per call in wasm.
- **Context switches per call** over lightning-rpc, all on one core: the
  host's thread switches ~2.9 times per call (~1.1 voluntary, ~1.7
  involuntary: the plugin it writes to preempts it), the forwarder's two
  threads ~1.5 each; the stand-in's ~2 in both cases.
"#;

fn socket_section(s: &mut String, p: &PassResults, counts: &Counts) {
    let r: &SocketResults = &p.socket;
    let _ = writeln!(s, "### Over lightning-rpc, through {}\n", p.name);
    let _ = writeln!(
        s,
        "Calls over the node's unix socket, each connection kept open, to the plugin \
         loaded by the node directly (`--plugin=X`) and through cln-autoreload \
         (`--plugin=cln-autoreload --autoreload-plugin=X`), all nodes running side by \
         side and taking turns. One caller: {} rounds × {} calls per arm. Concurrent: \
         {} connections × {} calls each, {} rounds per arm; calls/s over the whole \
         round. The nodes are started afresh {} times (so placed afresh), once with the \
         processes placed by the scheduler and once all on one core. The wasm guest is \
         examples/hello-wasm built for wasm32-wasip1 (release); its direct baseline is \
         the same source built natively.\n",
        r.rounds, r.calls, r.callers, r.conc_calls, r.conc_rounds, counts.epochs
    );
    if let Some(e) = &r.pin_error {
        let _ = writeln!(s, "The one-core measurement could not run: {e}.\n");
    }
    for m in &r.modes {
        let _ = writeln!(s, "#### {}\n", m.name);
        let _ = writeln!(
            s,
            "| path | 1 caller p10 µs | p50 µs | p90 µs | p99 µs | 1 caller calls/s | {n} callers p50 µs | p99 µs | {n} callers calls/s |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
            n = counts.callers
        );
        for a in &m.arms {
            let o = a.one();
            let c = a.conc();
            let t1 = Spread::of(&a.one_tput);
            let tc = Spread::of(&a.conc_tput);
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} ({}–{}) |",
                a.label,
                f0(o.p10),
                f0(o.p50),
                f0(o.p90),
                f0(o.p99),
                thousands(t1.p50),
                f0(c.p50),
                f0(c.p99),
                thousands(tc.p50),
                thousands(tc.p10),
                thousands(tc.p90)
            );
        }
        let _ = writeln!(
            s,
            "\n| comparison (per round) | 1 caller p50 | {n} callers p50 | {n} callers p99 | {n} callers calls/s |\n| --- | ---: | ---: | ---: | ---: |",
            n = counts.callers
        );
        for (what, a, b) in [
            (
                "hello-native: via cln-autoreload / direct",
                "native-direct",
                "native-host",
            ),
            (
                "hello-native: via the byte pump / direct",
                "native-direct",
                "native-pump",
            ),
            (
                "hello-native: via the minimal forwarder / direct",
                "native-direct",
                "native-forwarder",
            ),
            (
                "hello-native: via cln-autoreload / via the byte pump",
                "native-pump",
                "native-host",
            ),
            (
                "hello-native: via cln-autoreload / via the minimal forwarder",
                "native-forwarder",
                "native-host",
            ),
            (
                "hello-wasm: wasm (Winch) via cln-autoreload / native direct",
                "guest-direct",
                "wasm-winch",
            ),
            (
                "hello-wasm: wasm (Cranelift) via cln-autoreload / native direct",
                "guest-direct",
                "wasm-cranelift",
            ),
        ] {
            if let (Some(a), Some(b)) = (m.arm(a), m.arm(b)) {
                let _ = writeln!(
                    s,
                    "| {what} | ×{} | ×{} | ×{} | ×{} |",
                    ratio(&a.one_p50, &b.one_p50).show(3),
                    ratio(&a.conc_p50, &b.conc_p50).show(2),
                    ratio(&a.conc_p99, &b.conc_p99).show(2),
                    ratio(&a.conc_tput, &b.conc_tput).show(2)
                );
            }
        }
        if let (Some(d), Some(h)) = (m.arm("native-direct"), m.arm("native-host")) {
            let f = m
                .arm("native-forwarder")
                .map(|f| {
                    format!(
                        "; by the minimal forwarder: {} µs",
                        Spread::of(&added(&d.one_p50, &f.one_p50)).show(1)
                    )
                })
                .unwrap_or_default();
            let pump = m
                .arm("native-pump")
                .map(|p| {
                    format!(
                        "; by the byte pump: {} µs",
                        Spread::of(&added(&d.one_p50, &p.one_p50)).show(1)
                    )
                })
                .unwrap_or_default();
            let _ = writeln!(
                s,
                "\nAdded to the one-caller p50 by cln-autoreload: {} µs per call{pump}{f} (per round, p10–p90).",
                Spread::of(&added(&d.one_p50, &h.one_p50)).show(1)
            );
            if let Some(p) = m.arm("native-pump") {
                let pg = PumpGoal::of(
                    String::new(),
                    &d.one_p50,
                    &p.one_p50,
                    &h.one_p50,
                    m.arm("native-forwarder").map(|f| f.one_p50.as_slice()),
                );
                let c = PumpGoal::of(
                    String::new(),
                    &d.conc_p50,
                    &p.conc_p50,
                    &h.conc_p50,
                    m.arm("native-forwarder").map(|f| f.conc_p50.as_slice()),
                );
                let _ = writeln!(
                    s,
                    "What cln-autoreload adds over what the byte pump adds (goal: ≤ {PUMP_GOAL}×), \
                     per round: one caller **×{}**, {} callers (p50) ×{}; the minimal \
                     forwarder over the pump: ×{} and ×{}.",
                    pg.ratio.show(2),
                    counts.callers,
                    c.ratio.show(2),
                    pg.fwd_ratio.map_or("–".into(), |f| f.show(2)),
                    c.fwd_ratio.map_or("–".into(), |f| f.show(2)),
                );
            }
        }
        s.push('\n');
    }
    if !p.real {
        let _ = writeln!(s, "![socket round trips](bench/socket-latency.svg)\n");
    }
}

fn reload_section(s: &mut String, p: &PassResults) {
    let r: &ReloadResults = &p.reload;
    let _ = writeln!(s, "## 2. Reload latency, through {}\n", p.name);
    let _ = writeln!(
        s,
        "Each case is its own node; one reload of every case per round, {} rounds, in \
         rotating order. The new file is either written beside the old and renamed over \
         it (how cargo and most editors save), or rewritten in place (truncate, write, \
         close); **total** runs from the rename, or the close, to the first answer from \
         the new version (a new pid, or the new `version`), polling the method over one \
         connection in a tight loop. **trigger → serving** is `autoreload-status`'s \
         `last_reload.duration_ms` (from the change being reported to the new version \
         answering init); **compile** is `last_compile.duration_ms`; **detect** is total \
         − trigger → serving: inotify, for an in-place write the settle window \
         (`--autoreload-settle-ms`, 50 ms by default; a renamed file is complete when it \
         appears and does not wait for it), and the first answer. wasm versions \
         alternate between two builds of a copy of examples/hello-wasm with `VERSION` \
         \"1\" and \"2\" (release builds with the README's release profile: `lto`, \
         `opt-level = \"s\"`), real code edits built by cargo; every wasm case but \
         the *revert* ones runs with both module caches off \
         (`--autoreload-wasm-memory-cache-mb=0 --autoreload-wasm-cache-dir=off`), so \
         each of its reloads compiles, as the first build of a new edit does; a \
         *revert* case has both versions compiled once before it is measured, so each \
         of its reloads is bytes the host has seen (caches on, the default). *Busy* \
         cases add callers that call `hello` over connections of their own without \
         pausing, from just before the save to the new version's first answer; *low \
         priority* is `--autoreload-wasm-reload-priority=low` (nice 19, the host's \
         behaviour before #22), side by side with the default (normal). Native \
         versions are the same binary written again (a new pid), or a copy of \
         examples/hello-py/hello.py alternating between two edits.\n",
        r.rounds
    );
    if let Some(why) = &r.pyln {
        let _ = writeln!(s, "pyln-client cases skipped: {why}.\n");
    }
    let _ = writeln!(
        s,
        "| case | total p10 ms | p50 ms | p90 ms | trigger → serving p50 ms | compile p50 ms | detect p50 ms | polls answered with an error |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    for c in &r.cases {
        let t = Summary::of(&c.total);
        let compile = if c.compile.is_empty() {
            "–".to_string()
        } else {
            let mut x = f1(median(&c.compile));
            if c.cached > 0 {
                let _ = write!(x, " ({} cached)", c.cached);
            }
            x
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            c.label,
            f1(t.p10),
            f1(t.p50),
            f1(t.p90),
            f1(median(&c.host)),
            compile,
            f1(median(&c.detect())),
            c.poll_errors
        );
    }
    let _ = writeln!(
        s,
        "\nThe child's own start-up, measured in the same rounds: the benchmark spawns it \
         and sends getmanifest and init itself, no host involved.\n\n| child | p10 ms | p50 ms | p90 ms |\n| --- | ---: | ---: | ---: |"
    );
    for st in &r.startups {
        let m = Summary::of(&st.ms);
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} |",
            st.label,
            f1(m.p10),
            f1(m.p50),
            f1(m.p90)
        );
    }
    let _ = writeln!(
        s,
        "\nWhat a native reload adds to the child's own start-up (per round, p10–p90):\n\n| case | total − start-up ms | trigger → serving − start-up ms |\n| --- | ---: | ---: |"
    );
    for (case, su) in [
        ("native-rust", "native-rust"),
        ("pyln", "pyln"),
        ("pyln-inplace", "pyln"),
    ] {
        if let (Some(c), Some(st)) = (r.case(case), r.startup(su)) {
            let _ = writeln!(
                s,
                "| {} | {} | {} |",
                c.label,
                Spread::of(&added(&st.ms, &c.total)).show(1),
                Spread::of(&added(&st.ms, &c.host)).show(1)
            );
        }
    }
    let mut first = true;
    for (normal, low) in [
        ("wasm-release-winch", "wasm-release-winch-low"),
        ("wasm-release-winch-busy", "wasm-release-winch-busy-low"),
    ] {
        if let (Some(n), Some(l)) = (r.case(normal), r.case(low)) {
            if first {
                let _ = writeln!(
                    s,
                    "\nA save's compile at normal priority (the default) against low (nice 19), \
                     per round, p10–p90:\n\n| case | total: low / normal | compile: low / normal | calls by the busy callers, normal / low |\n| --- | ---: | ---: | ---: |"
                );
                first = false;
            }
            let calls = if n.busy > 0 {
                format!("{} / {}", n.busy_calls, l.busy_calls)
            } else {
                "–".into()
            };
            let _ = writeln!(
                s,
                "| {} | ×{} | ×{} | {calls} |",
                n.label,
                ratio(&n.total, &l.total).show(2),
                ratio(&n.compile, &l.compile).show(2),
            );
        }
    }
    if !r.restarts.is_empty() {
        let _ = writeln!(
            s,
            "\nA host restart with hello-wasm's release build already compiled: each round \
             a node on an empty cache directory (its start-up compiles), then a second node \
             on the same directory (its start-up loads the module the first one kept). \
             `last_compile.duration_ms`: from reading the file to the module ready, {} \
             rounds.\n\n| compiler | compiled p10 / p50 / p90 ms | from disk p10 / p50 / p90 ms | module kB | disk entry kB |\n| --- | ---: | ---: | ---: | ---: |",
            r.rounds
        );
        for x in &r.restarts {
            let (c, d) = (Summary::of(&x.compiled), Summary::of(&x.disk));
            let _ = writeln!(
                s,
                "| {} | {} / {} / {} | {} / {} / {} | {} | {} |",
                x.compiler,
                f1(c.p10),
                f1(c.p50),
                f1(c.p90),
                f2(d.p10),
                f2(d.p50),
                f2(d.p90),
                x.wasm_bytes / 1000,
                x.entry_bytes / 1000
            );
        }
    }
    issue22_goals(s, r);
    let pairs = [
        ("release", "wasm-release-winch", "wasm-release-cranelift"),
        ("debug", "wasm-debug-winch", "wasm-debug-cranelift"),
    ];
    let mut first = true;
    for (kind, w, c) in pairs {
        if let (Some(w), Some(c)) = (r.case(w), r.case(c)) {
            if first {
                let _ = writeln!(
                    s,
                    "\nWinch against Cranelift (per round, p10–p90):\n\n| build | compile: Cranelift / Winch | total: Cranelift − Winch ms |\n| --- | ---: | ---: |"
                );
                first = false;
            }
            let _ = writeln!(
                s,
                "| {kind} | ×{} | {} |",
                ratio(&w.compile, &c.compile).show(1),
                Spread::of(&added(&w.total, &c.total)).show(1)
            );
        }
    }
    if !p.real {
        for (f, family) in [
            ("reload-rust.svg", "native-rust"),
            ("reload-pyln.svg", "pyln"),
            ("reload-wasm.svg", "wasm"),
        ] {
            if r.cases.iter().any(|c| c.key.starts_with(family)) {
                let _ = writeln!(s, "\n![{family} reloads](bench/{f})");
            }
        }
    }
    s.push('\n');
}

/// The wasm goals of #22 that section 2 measures, one row each.
fn issue22_goals(s: &mut String, r: &ReloadResults) {
    let total = |key: &str| r.case(key).map(|c| median(&c.total));
    let compile = |key: &str| r.case(key).map(|c| median(&c.compile));
    let show = |v: Option<f64>| v.map(f1).unwrap_or_else(|| "–".into());
    let mut rows: Vec<(String, &str, Option<f64>, f64)> = vec![
        (
            "hello-wasm release change → serving, Winch, one caller polling (total p50)".into(),
            "≤ 30 ms",
            total("wasm-release-winch"),
            30.0,
        ),
        (
            "the same with 2 more callers that never pause (total p50)".into(),
            "≤ 60 ms",
            total("wasm-release-winch-busy"),
            60.0,
        ),
        (
            "revert to bytes compiled before, Winch: module ready (compile p50)".into(),
            "≤ 5 ms",
            compile("wasm-release-winch-revert"),
            5.0,
        ),
        (
            "revert, Winch: change → serving (total p50)".into(),
            "–",
            total("wasm-release-winch-revert"),
            f64::INFINITY,
        ),
    ];
    for x in &r.restarts {
        rows.push((
            format!("host restart, {}: module ready from disk (p50)", x.compiler),
            "≤ 5 ms",
            (!x.disk.is_empty()).then(|| median(&x.disk)),
            5.0,
        ));
    }
    if rows.iter().all(|r| r.2.is_none()) {
        return;
    }
    let _ = writeln!(
        s,
        "\nThe goals of #22 measured here (the stall is section 3's):\n\n| figure | goal | measured ms | verdict |\n| --- | --- | ---: | --- |"
    );
    for (what, goal, v, bound) in rows {
        let verdict = if bound.is_finite() {
            verdict(v.map(|v| v <= bound))
        } else {
            "–"
        };
        let _ = writeln!(s, "| {what} | {goal} | {} | {verdict} |", show(v));
    }
}

fn edit_section(s: &mut String, p: &PassResults, counts: &Counts) {
    let _ = writeln!(s, "## 5. Edit to live, through {}\n", p.name);
    let _ = writeln!(
        s,
        "A developer's loop with build on save: `src/main.rs` of a copy of \
         examples/hello-wasm (a crate of its own, kept between runs so its builds are \
         warm) is saved in place with a new `VERSION`, and `hello` is called every \
         millisecond until it answers with it. Nothing is run by hand: the host infers \
         `cargo build --target wasm32-wasip1 [--release] -p hello-wasm` from the \
         module's path, runs it on the save, and the rebuilt module reloads (Winch). Each \
         build kind has its own copy and node; they take turns, {} save(s) each. The \
         release build uses the README's release profile (`lto`, `opt-level = \"s\"`, \
         `codegen-units = 1`): a smaller module that compiles faster, for a longer \
         build. **rest** is total − build − reload: the sources' settle window (50 ms), \
         starting cargo, the first answer; it can be shorter than the settle window, \
         because the new module is noticed the moment cargo links it into place, before \
         cargo itself has exited, so the build and the reload overlap.\n",
        counts.edit_rounds
    );
    let _ = writeln!(
        s,
        "| build | module kB | total p10 ms | p50 ms | p90 ms | cargo build p50 ms | compile p50 ms | reload p50 ms | rest p50 ms |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    for e in &p.edit {
        let t = Summary::of(&e.total);
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            e.label,
            e.module_kb,
            f0(t.p10),
            f0(t.p50),
            f0(t.p90),
            f0(median(&e.build)),
            f1(median(&e.compile)),
            f1(median(&e.reload)),
            f1(median(&e.rest()))
        );
    }
    s.push('\n');
}

fn stall_section(s: &mut String, name: &str, st: &[StallResult], counts: &Counts) {
    let _ = writeln!(s, "## 3. Stall during reloads under load, through {name}\n");
    let _ = writeln!(
        s,
        "{} callers, each on its own connection, call in a closed loop while the plugin \
         is reloaded {} times, {} ms apart (renamed into place). A reload window runs \
         from the rename to the first answer from the new version; a call overlapping a \
         window counts as *during*, a call clear of every window by 100 ms as *steady*. \
         **Stall** is the longest any call waited during a reload. A call with no answer \
         within 10 s is *lost*.\n",
        counts.stall_callers,
        counts.stall_reloads,
        counts.stall_gap.as_millis()
    );
    let _ = writeln!(
        s,
        "| plugin | reloads | calls | answered | errors | lost | steady p50 / p99 / max ms | during p50 / p99 ms | **stall** ms | reload under load p50 ms |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    for r in st {
        let sd = Summary::of(&r.steady);
        let du = Summary::of(&r.during);
        let w = Summary::of(&r.windows);
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {:.2} / {:.2} / {:.2} | {:.2} / {:.2} | **{:.2}** | {} |",
            r.label,
            r.reloads,
            r.sent,
            r.ok,
            r.errors.values().sum::<usize>(),
            r.lost,
            sd.p50 / 1000.0,
            sd.p99 / 1000.0,
            sd.max / 1000.0,
            du.p50 / 1000.0,
            du.p99 / 1000.0,
            du.max / 1000.0,
            f1(w.p50)
        );
    }
    let _ = writeln!(
        s,
        "\nWhere in each reload its longest call waited: *before the swap* means it \
         was answered more than 1 ms before the new version's first answer (by the \
         old version, while the new one was being prepared), *at the swap* within \
         1 ms of it or after.\n\n| plugin | longest wait per reload: p50 ms | max ms | before the swap | at the swap | the longest began after the rename, ms |\n| --- | ---: | ---: | ---: | ---: | ---: |"
    );
    for r in st {
        let waits: Vec<f64> = r.per_reload.iter().map(|w| w.0).collect();
        let before = r.per_reload.iter().filter(|w| w.2 < -1.0).count();
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} |",
            r.label,
            f1(median(&waits)),
            f1(waits.iter().copied().fold(f64::NAN, f64::max)),
            before,
            r.per_reload.len() - before,
            r.worst().map_or("–".into(), |w| f1(w.1))
        );
    }
    for r in st {
        for (msg, n) in &r.errors {
            let _ = writeln!(s, "\n- {}: {n} × `{}`", r.label, msg.replace('`', "'"));
        }
    }
    s.push('\n');
}

fn dbwrite_section(s: &mut String, p: &PassResults) {
    let _ = writeln!(s, "## 6. db_write during a reload, through {}\n", p.name);
    let _ = writeln!(
        s,
        "lightningd does nothing else while a `db_write` is unanswered (the whole node \
         waits), so a write that comes while the plugin reloads freezes the node until a \
         version can answer it. Each round: one write to the serving plugin (*steady*), \
         then the plugin file is renamed over, and once `autoreload-status` no longer says \
         *serving* one write is sent and timed until answered (*during*). Both plugins take \
         `db_write`, so they reload break-before-make by default (a plugin that journals \
         the database may read its journal as it starts): a write sent during a reload \
         waits while the old version finishes, exits and the new one starts and answers \
         init (for wasm, a module compiled before comes from the cache). The \
         stand-in's `dev-db-write` sends the write exactly as lightningd does. Only \
         against the stand-in: a real lightningd writes when it has something to write.\n"
    );
    let _ = writeln!(
        s,
        "| plugin | rounds | steady p50 / max ms | **during a reload p50 / p90 / max ms** | reload p50 ms | state when sent |\n| --- | ---: | ---: | ---: | ---: | --- |"
    );
    for r in &p.dbwrite {
        let st = Summary::of(&r.steady);
        let du = Summary::of(&r.during);
        let mut states: Vec<(String, usize)> = vec![];
        for x in &r.states {
            match states.iter_mut().find(|(k, _)| k == x) {
                Some((_, n)) => *n += 1,
                None => states.push((x.clone(), 1)),
            }
        }
        let states: Vec<String> = states.iter().map(|(k, n)| format!("{k} ×{n}")).collect();
        let _ = writeln!(
            s,
            "| {} | {} | {:.2} / {:.2} | **{:.2} / {:.2} / {:.2}** | {} | {} |",
            r.label,
            r.during.len(),
            st.p50,
            st.max,
            du.p50,
            du.p90,
            du.max,
            f1(median(&r.reloads)),
            states.join(", ")
        );
    }
    s.push('\n');
}

/// "bench-plugin (Rust)" or "hello.py (pyln-client)".
fn plugin_name(a: &NativeArm) -> &str {
    a.label
        .split_once(", ")
        .map_or(a.label.as_str(), |(p, _)| p)
}

/// How many of a run's reloads had their longest wait end more than 1 ms
/// before the new version's first answer (answered by the old version).
fn before_swap(r: &StallResult) -> usize {
    r.per_reload.iter().filter(|w| w.2 < -1.0).count()
}

/// What bounds the wait of a native reload that missed its goal (5 ms
/// overlapped, 10 ms warm).
fn native_bound(a: &NativeArm, p: &PassResults, w: Spread) -> String {
    let r = &a.res;
    let steady = Summary::of(&r.steady);
    let before = before_swap(r);
    let base = Spread::of(&r.per_reload_base);
    let bbm = p
        .native
        .arm(a.plugin, "false")
        .map(|b| Spread::of(&b.res.waits()).p50);
    let goal = if a.mode == "warm" { 10 } else { 5 };
    let start = if a.plugin == "pyln" {
        "a pyln-client plugin spends ~150 ms of CPU starting (section 2)"
    } else {
        "even a Rust plugin's start is a fork, an exec and a few ms of CPU"
    };
    let handover = if a.handover_ms.is_empty() {
        String::new()
    } else {
        format!(
            " Its state hand-over (calls held meanwhile) took {} ms p50.",
            f1(median(&a.handover_ms))
        )
    };
    format!(
        "**a call waits ≤ {goal} ms during a native reload of {}, {}, through {}** \
         (longest wait per reload {} ms p50; break-before-make {} ms). The baseline is \
         the longest of as many steady-state calls: {} ms p50 ({} callers in a closed \
         loop; steady p99 {} ms, max {} ms), so most of the figure is the machine, not \
         the reload: the longest of a thousand calls on 2 cores shared by the callers, \
         the node, the host and the plugin is several ms with no reload at all. What the \
         reload adds: in {before} of {} reloads the longest wait ended more than 1 ms \
         before the new version's first answer, i.e. the old version answered it late \
         while the new one was starting beside it and taking CPU ({start}); the others \
         waited at the switch.{handover} No call is held for the start-up: that is what \
         break-before-make costs.",
        plugin_name(a),
        a.mode,
        p.name,
        w.show(1),
        bbm.map_or("–".into(), f1),
        base.show(1),
        r.callers,
        f1(steady.p99 / 1000.0),
        f1(steady.max / 1000.0),
        r.per_reload.len(),
    )
}

fn native_section(s: &mut String, p: &PassResults, counts: &Counts) {
    let n = &p.native;
    let _ = writeln!(
        s,
        "## 7. Native reloads under load: warm start, full overlap and break-before-make, through {}\n",
        p.name
    );
    let _ = writeln!(
        s,
        "As in section 3: {} callers, each on its own connection, call in a closed loop \
         while the plugin file is saved (renamed into place) {} times per round, {} ms \
         apart; {} rounds, each on a fresh node, the arms taking turns. \
         *Warm start* is the default (`--autoreload-overlap=warm`): the new version \
         starts and answers getmanifest beside the old one; then calls wait while the \
         old one drains, hands over its state and exits, and the new one gets init. \
         *Full overlap* (`=full`): the new version answers init too beside the old \
         one, which serves until then. *Break-before-make* (`=false`): the old version \
         drains and stops, then the new one starts, calls waiting meanwhile. A reload window runs from the \
         rename to the first answer from the new version (a new pid); for each reload, \
         the longest wait of a call overlapping its window and the p50 of those calls; \
         the table gives the median over the reloads and, in brackets, p10–p90. \
         **longest of as many steady calls** is the baseline for the longest wait: per \
         reload, the longest of as many calls as overlapped its window, taken from the \
         steady-state calls just before it (clear of every reload by 100 ms): with \
         callers in a closed loop on 2 shared cores, the longest of a few thousand \
         calls is several ms without any reload. \
         `bench-plugin` (Rust) keeps no state; hello.py (examples/hello-py, pyln-client) \
         keeps its `calls` with python/cln_autoreload_state.py (found through \
         `PYTHONPATH`), so each of its reloads includes a state hand-over, calls held \
         meanwhile (break-before-make saves the state while the old version drains and \
         restores it after the new one's init, so there its hand-over time spans the \
         start-up).\n",
        counts.stall_callers,
        n.per_round,
        counts.stall_gap.as_millis(),
        n.rounds
    );
    if let Some(why) = &n.pyln {
        let _ = writeln!(s, "hello.py skipped: {why}.\n");
    }
    let _ = writeln!(
        s,
        "| plugin, mode | reloads | calls | errors | lost | steady p50 / p99 ms | **longest wait per reload ms** | worst reload ms | longest of as many steady calls ms | p50 of calls during a reload ms | reload under load p50 ms | hand-overs |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
    );
    for a in &n.arms {
        let r = &a.res;
        let sd = Summary::of(&r.steady);
        let waits = r.waits();
        let handovers = if a.handovers.is_empty() {
            "–".to_string()
        } else {
            let mut h: Vec<String> = a
                .handovers
                .iter()
                .map(|(k, v)| format!("{k} ×{v}"))
                .collect();
            if !a.handover_ms.is_empty() {
                h.push(format!("{} ms p50", f1(median(&a.handover_ms))));
            }
            h.join(", ")
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {:.2} / {:.2} | **{}** | {} | {} | {} | {} | {} |",
            a.label,
            r.reloads,
            r.sent,
            r.errors.values().sum::<usize>(),
            r.lost,
            sd.p50 / 1000.0,
            sd.p99 / 1000.0,
            Spread::of(&waits).show(1),
            f1(waits.iter().copied().fold(f64::NAN, f64::max)),
            Spread::of(&r.per_reload_base).show(1),
            Spread::of(&r.per_reload_p50).show(2),
            f1(median(&r.windows)),
            handovers
        );
    }
    let mut rows = vec![];
    for a in n.arms.iter().filter(|a| a.mode != "false") {
        if let Some(b) = n.arm(a.plugin, "false") {
            let (wa, wb) = (median(&a.res.waits()), median(&b.res.waits()));
            let before = before_swap(&a.res);
            rows.push(format!(
                "| {}, {} | ×{:.1} | {} of {} | {} of {} |",
                plugin_name(a),
                a.mode,
                wb / wa,
                before,
                a.res.per_reload.len(),
                before_swap(&b.res),
                b.res.per_reload.len()
            ));
        }
    }
    if !rows.is_empty() {
        let _ = writeln!(
            s,
            "\n*Before the swap* means the longest call of a reload was answered more \
             than 1 ms before the new version's first answer (by the old version, while \
             the new one started); otherwise it waited at the switch or for the new \
             version.\n\n| plugin, mode | longest wait p50: break-before-make / this mode | longest before the swap, this mode | longest before the swap, break-before-make |\n| --- | ---: | ---: | ---: |"
        );
        for r in rows {
            let _ = writeln!(s, "{r}");
        }
    }
    for a in &n.arms {
        for (msg, k) in &a.res.errors {
            let _ = writeln!(s, "\n- {}: {k} × `{}`", a.label, msg.replace('`', "'"));
        }
    }
    s.push('\n');
}

fn handover_section(s: &mut String, p: &PassResults, counts: &Counts) {
    let h = &p.handover;
    let _ = writeln!(
        s,
        "## 8. State hand-over by state size, through {}\n",
        p.name
    );
    let _ = writeln!(
        s,
        "tests/plugins/stateful.py (stdlib Python, declares `\"autoreload\": {{\"state\": \
         true}}`) with `STATE_SIZE` bytes of padding in its state, two versions saved in \
         turn (renamed into place), reloaded warm (the default), {} callers calling `count` in a \
         closed loop as in section 7; {} rounds of {} reloads per size, each on a fresh \
         node, the sizes taking turns. **hand-over** is `autoreload-status`'s \
         `last_handover.duration_ms`, read after each reload: from the save request to \
         the old version (sent once it has nothing in flight) to the new version's \
         answer to the restore; calls are held meanwhile. **longest wait** is, per \
         reload, the longest wait of a call overlapping the reload window (rename → first \
         answer from the new version). Medians over the reloads, p10–p90 in brackets.\n",
        counts.stall_callers, h.rounds, h.per_round
    );
    let _ = writeln!(
        s,
        "| STATE_SIZE | state JSON bytes | reloads | outcomes | **hand-over ms** | hand-over MB/s | **longest wait per reload ms** | worst reload ms | longest of as many steady calls ms | reload under load p50 ms |\n| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    for c in &h.cases {
        let r = &c.res;
        let waits = r.waits();
        let outcomes: Vec<String> = c
            .outcomes
            .iter()
            .map(|(k, v)| format!("{k} ×{v}"))
            .collect();
        let mbs = Spread::of(&zip_with(&c.bytes, &c.ms, |b, ms| b / 1e6 / (ms / 1000.0)));
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | **{}** | {} | **{}** | {} | {} | {} |",
            size_label(c.size),
            thousands(median(&c.bytes)),
            r.reloads,
            outcomes.join(", "),
            Spread::of(&c.ms).show(1),
            if c.size >= 1 << 20 {
                f0(mbs.p50)
            } else {
                "–".into()
            },
            Spread::of(&waits).show(1),
            f1(waits.iter().copied().fold(f64::NAN, f64::max)),
            Spread::of(&r.per_reload_base).show(1),
            f1(median(&r.windows))
        );
    }
    if let (Some(small), Some(big)) = (h.cases.first(), h.cases.last()) {
        if big.size > small.size && !big.ms.is_empty() && !small.ms.is_empty() {
            let per_mib =
                (median(&big.ms) - median(&small.ms)) / (big.size as f64 / f64::from(1 << 20));
            let _ = writeln!(
                s,
                "\nEach MiB of state adds about {} ms to the hand-over (the medians of {} and {}), \
                 the calls waiting as long: the old version serializes it (Python's `json`), \
                 the host reads, checks and forwards it, the new version parses it. \
                 An empty state's hand-over is two round trips to Python processes.",
                f1(per_mib),
                size_label(big.size),
                size_label(small.size)
            );
        }
    }
    for c in &h.cases {
        for (msg, k) in &c.res.errors {
            let _ = writeln!(
                s,
                "\n- STATE_SIZE {}: {k} × `{}`",
                size_label(c.size),
                msg.replace('`', "'")
            );
        }
    }
    s.push('\n');
}

#[cfg(test)]
#[path = "report_tests.rs"]
mod tests;
