//! `db_write` during a reload: lightningd stops everything until every
//! `db_write` plugin has answered a database write, so a write that comes
//! while the plugin reloads freezes the node until a version can answer.
//! How long, native (break-before-make: until the new process answered
//! init) and wasm (make-before-break: the old instance answers at once),
//! against a write to a plugin that serves.

use crate::client::Conn;
use crate::procs;
use crate::socket::{rpc_path, start_node};
use crate::{Bins, Counts, Pass};
use anyhow::{bail, Result};
use std::path::Path;
use std::time::{Duration, Instant};

const BOUND: Duration = Duration::from_secs(30);
const WRITE: &str = r#"{"writes":["UPDATE vars SET intval=intval+1 WHERE name='data_version'"]}"#;

pub struct DbWriteResult {
    pub label: String,
    /// A write to a plugin that serves, ms.
    pub steady: Vec<f64>,
    /// A write sent while a reload was under way, ms until answered.
    pub during: Vec<f64>,
    /// What the plugin was doing when those writes were sent.
    pub states: Vec<String>,
    /// The reloads' own durations (status), ms.
    pub reloads: Vec<f64>,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn one(
    pass: &Pass,
    counts: &Counts,
    label: &str,
    first: &Path,
    versions: &[Vec<u8>; 2],
    native: bool,
) -> Result<DbWriteResult> {
    let (node, file, _dir) = start_node(pass, first, true, &[])?;
    let rpc = rpc_path(&node);
    let mut conn = Conn::connect(&rpc, BOUND)?;
    let mut res = DbWriteResult {
        label: label.into(),
        steady: vec![],
        during: vec![],
        states: vec![],
        reloads: vec![],
    };
    let status = |conn: &mut Conn| -> Result<serde_json::Value> {
        Ok(conn.ok("autoreload-status", "{}")?["plugins"][0].clone())
    };
    let rounds = counts.reload_rounds * 2;
    let mut misses = 0;
    let mut i = 0;
    while res.during.len() < rounds {
        // Steady: the plugin serves.
        let t = Instant::now();
        conn.ok("dev-db-write", WRITE)?;
        res.steady.push(ms(t.elapsed()));
        let before = status(&mut conn)?["generation"].as_u64().unwrap_or(0);
        procs::write_atomically(&file, &versions[(i + 1) % 2], native)?;
        i += 1;
        // Send the write once the reload is under way: the host has seen
        // the change when status no longer says "serving" generation
        // `before` (a native reload drains, stops, starts; a wasm one
        // swaps).
        let until = Instant::now() + BOUND;
        let state = loop {
            let s = status(&mut conn)?;
            let g = s["generation"].as_u64().unwrap_or(0);
            let st = s["state"].as_str().unwrap_or("").to_string();
            if st != "serving" {
                break Some(st);
            }
            if g != before {
                break None; // missed: the reload was over already
            }
            if Instant::now() > until {
                bail!("{label}: no reload within {BOUND:?}: {s}");
            }
        };
        let t = Instant::now();
        conn.ok("dev-db-write", WRITE)?;
        let waited = ms(t.elapsed());
        match state {
            Some(st) => {
                res.during.push(waited);
                res.states.push(st);
            }
            None => misses += 1,
        }
        if misses > rounds * 10 {
            bail!("{label}: reloads too fast to catch ({misses} missed)");
        }
        // Let it settle before the next round.
        let until = Instant::now() + BOUND;
        loop {
            let s = status(&mut conn)?;
            if s["state"] == "serving" && s["generation"].as_u64().unwrap_or(0) > before {
                if let Some(d) = s["last_reload"]["duration_ms"].as_f64() {
                    res.reloads.push(d);
                }
                break;
            }
            if Instant::now() > until {
                bail!("{label}: reload not done within {BOUND:?}: {s}");
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    drop(conn);
    let _ = pass.rt.block_on(node.stop());
    Ok(res)
}

pub fn run(pass: &Pass, bins: &Bins, counts: &Counts) -> Result<Vec<DbWriteResult>> {
    let native = std::fs::read(&bins.bench_plugin)?;
    let w = &bins.guest_versions;
    Ok(vec![
        one(
            pass,
            counts,
            "native: bench-plugin",
            &bins.bench_plugin,
            &[native.clone(), native],
            true,
        )?,
        one(
            pass,
            counts,
            "wasm: testguest release, Winch",
            &w.1,
            &w.0,
            false,
        )?,
    ])
}

/// testguest (release) in two versions, and the first copied aside.
pub fn guest_versions(keep: &Path) -> Result<([Vec<u8>; 2], std::path::PathBuf)> {
    let built = cln_autoreload_tests::wasm_bin("testguest", true);
    let bytes = std::fs::read(&built)?;
    let versions =
        ["b1", "b2"].map(|v| cln_autoreload_tests::with_testguest_version(bytes.clone(), v));
    let first = keep.join("testguest.wasm");
    std::fs::write(&first, &versions[0])?;
    Ok((versions, first))
}
