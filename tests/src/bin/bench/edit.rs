//! Edit to live: a source file of examples/hello-wasm saved → the new
//! behaviour answering, with nothing run by hand in between. The host
//! infers the build from the module's path (`cargo build --target
//! wasm32-wasip1 [--release] -p hello-wasm`), runs it when `src/main.rs`
//! changes, and the rebuilt module reloads like any other change.
//!
//! Each build kind has its own copy of the example, a crate of its own kept
//! under the target dir between runs (so its builds are as warm as a
//! developer's), and its own node; the kinds take turns, one save each per
//! round.

use crate::client::Conn;
use crate::socket::{rpc_path, CALL_BOUND};
use crate::{Counts, Pass};
use anyhow::{anyhow, bail, Context as _, Result};
use cln_autoreload_tests::{Node, NodeBuilder};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Bound on one edit going live (a cold release build with LTO included).
const LIVE_BOUND: Duration = Duration::from_secs(300);

pub struct EditResult {
    pub label: String,
    /// Saved → the new `version` answering, ms.
    pub total: Vec<f64>,
    /// `build.last.duration_ms`: the cargo build.
    pub build: Vec<f64>,
    /// `last_compile.duration_ms`: wasmtime compiling the new module.
    pub compile: Vec<f64>,
    /// `last_reload.duration_ms`: the artifact's change reported → serving.
    pub reload: Vec<f64>,
    /// Size of the module built.
    pub module_kb: u64,
}

impl EditResult {
    /// total − build − reload: noticing the save (the sources' settle
    /// window), starting cargo, noticing the artifact, the first answer.
    pub fn rest(&self) -> Vec<f64> {
        self.total
            .iter()
            .zip(&self.build)
            .zip(&self.reload)
            .map(|((t, b), r)| t - b - r)
            .collect()
    }
}

struct Arm {
    res: EditResult,
    main_rs: PathBuf,
    text: String,
    node: Node,
    conn: Conn,
    wasm: PathBuf,
    saves: usize,
}

const MARKER: &str = "const VERSION: &str = \"1\";";

fn arm(pass: &Pass, kind: &str, release: bool) -> Result<Arm> {
    let krate = cln_autoreload_tests::target_dir()
        .join("bench-edit")
        .join(kind);
    let main_rs = cln_autoreload_tests::copy_hello_wasm(&krate);
    if !main_rs.contains(MARKER) {
        bail!("examples/hello-wasm/src/main.rs no longer has {MARKER:?} to edit");
    }
    // Built once by hand first, as its developer would have.
    let wasm = cln_autoreload_tests::build_wasm_crate(&krate, release, None);
    let node = pass
        .rt
        .block_on(
            NodeBuilder::new()
                .launch_dir(&krate)
                .arg(format!("--autoreload-plugin={}", wasm.display()))
                .env_remove("CARGO_TARGET_DIR")
                .start(),
        )
        .with_context(|| format!("starting a node with {}", wasm.display()))?
        .ok_or_else(|| anyhow!("the node did not start (skipped?)"))?;
    let mut conn = Conn::connect(&rpc_path(&node), CALL_BOUND)?;
    // The inference (`cargo metadata`) runs beside the start-up.
    let asked = Instant::now();
    loop {
        let status = conn.ok("autoreload-status", "{}")?;
        if !status["plugins"][0]["build"].is_null() {
            break;
        }
        if asked.elapsed() > Duration::from_secs(60) {
            bail!(
                "{kind}: the host inferred no build for {} within 60 s: {status}",
                wasm.display()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(Arm {
        res: EditResult {
            label: format!("hello-wasm, {kind} build"),
            total: vec![],
            build: vec![],
            compile: vec![],
            reload: vec![],
            module_kb: 0,
        },
        main_rs: krate.join("src/main.rs"),
        text: main_rs,
        node,
        conn,
        wasm,
        saves: 0,
    })
}

impl Arm {
    /// One save of main.rs with a new `VERSION`, until it answers.
    fn measure(&mut self) -> Result<()> {
        self.saves += 1;
        let version = format!("e{}", self.saves);
        let text = self
            .text
            .replace(MARKER, &format!("const VERSION: &str = \"{version}\";"));
        let label = self.res.label.clone();
        // Saved in place, as an editor does.
        std::fs::write(&self.main_rs, text)
            .with_context(|| format!("saving {}", self.main_rs.display()))?;
        let t0 = Instant::now();
        loop {
            if let Ok(v) = self.conn.call("hello", "[\"bench\"]")? {
                if v["version"] == version.as_str() {
                    break;
                }
            }
            if t0.elapsed() > LIVE_BOUND {
                bail!(
                    "{label}: version {version} did not answer within {LIVE_BOUND:?}; status: {}",
                    self.conn.ok("autoreload-status", "{}")?
                );
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let total = t0.elapsed().as_secs_f64() * 1000.0;
        let status = self.conn.ok("autoreload-status", "{}")?;
        let s = &status["plugins"][0];
        let field = |v: &serde_json::Value, what: &str| {
            v.as_f64()
                .ok_or_else(|| anyhow!("{label}: no {what} in the status: {s}"))
        };
        if s["build"]["last"]["ok"] != true {
            bail!("{label}: the build failed: {s}");
        }
        self.res.total.push(total);
        self.res
            .build
            .push(field(&s["build"]["last"]["duration_ms"], "build.last")?);
        self.res
            .compile
            .push(field(&s["last_compile"]["duration_ms"], "last_compile")?);
        self.res
            .reload
            .push(field(&s["last_reload"]["duration_ms"], "last_reload")?);
        self.res.module_kb = std::fs::metadata(&self.wasm).map_or(0, |m| m.len() / 1000);
        Ok(())
    }
}

pub fn run(pass: &Pass, counts: &Counts) -> Result<Vec<EditResult>> {
    let mut arms = vec![arm(pass, "debug", false)?, arm(pass, "release", true)?];
    for r in 0..counts.edit_rounds {
        for k in 0..arms.len() {
            let i = (k + r) % arms.len();
            arms[i].measure()?;
            // Let the old generation retire and the watchers go quiet.
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    let mut out = vec![];
    for a in arms {
        out.push(a.res);
        drop(a.conn);
        let _ = pass.rt.block_on(a.node.stop());
    }
    Ok(out)
}
