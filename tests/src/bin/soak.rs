//! The long soak and the 1000-reload hygiene measurement; writes their
//! figures into RELIABILITY.md.
//!
//! ```text
//! cargo run --release -p cln-autoreload-tests --bin soak -- [--minutes N] [--seed S] [--reloads R] [--out PATH]
//! ```
//!
//! `--minutes N` (default 10): the mixed soak's total time, half native,
//! half wasm. `--seed S`: the chaos task's seed (default: from the clock;
//! printed either way). `--reloads R` (default 1000): reloads of the
//! hygiene measurement, for each flavour, sampled every 100. `--out PATH`:
//! the file whose `<!-- soak:begin -->`/`<!-- soak:end -->` and
//! `<!-- soak-table:begin -->`/`<!-- soak-table:end -->` sections are
//! replaced (default: RELIABILITY.md at the workspace root). `--only
//! soak|hygiene`: one part only (for a quick look; the sections written
//! then hold that part only).
//!
//! Exits non-zero if anything did not hold: a hung call, a response to an
//! id nothing waited for, an unknown error kind, a hook that failed, a
//! lost log notification, a plugin that does not serve afterwards, or a
//! resource past its stated bound.

use anyhow::{bail, Context as _, Result};
use cln_autoreload_tests::soak::{self, Flavor, Hygiene, Report, Settings, Tally};
use cln_autoreload_tests::{built_bin, facts, host_bin, root};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

struct Args {
    minutes: f64,
    seed: u64,
    reloads: u64,
    out: PathBuf,
    soak: bool,
    hygiene: bool,
}

fn args() -> Result<Args> {
    let mut a = Args {
        minutes: 10.0,
        seed: soak::clock_seed(),
        reloads: 1000,
        out: root().join("RELIABILITY.md"),
        soak: true,
        hygiene: true,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--minutes" => a.minutes = value()?.parse().context("--minutes")?,
            "--seed" => a.seed = value()?.parse().context("--seed")?,
            "--reloads" => a.reloads = value()?.parse().context("--reloads")?,
            "--out" => a.out = PathBuf::from(value()?),
            "--only" => match value()?.as_str() {
                "soak" => a.hygiene = false,
                "hygiene" => a.soak = false,
                other => bail!("--only soak|hygiene, not {other:?}"),
            },
            other => bail!("unknown argument {other:?} (see the doc comment of src/bin/soak.rs)"),
        }
    }
    if a.reloads == 0 || a.minutes.is_nan() || a.minutes <= 0.0 {
        bail!("--minutes and --reloads must be positive");
    }
    Ok(a)
}

fn machine() -> String {
    let cpu = facts::cpu_model();
    let mem_gib = facts::mem_gib();
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!(
        "{nproc} × {cpu}, {mem_gib:.0} GiB, {}; shared with other jobs",
        facts::command_line("uname", &["-sr"])
    )
}

fn commit() -> String {
    facts::commit(&["host", "tests/src", "tests/plugins", "tests/guests"])
}

fn errors(t: &Tally) -> String {
    if t.errors.is_empty() {
        return "none".into();
    }
    t.errors
        .iter()
        .map(|(k, n)| format!("{k:?} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn held(ok: bool) -> &'static str {
    if ok {
        "held"
    } else {
        "**BROKEN**"
    }
}

fn soak_row(r: &Report) -> String {
    let load = r.load();
    let actions: u64 = r.chaos.values().sum();
    let chaos = r
        .chaos
        .iter()
        .map(|(k, n)| format!("{k} ×{n}"))
        .collect::<Vec<_>>()
        .join("; ");
    format!(
        "| Mixed soak, {} plugin: {} rpc callers, a hook, notifications to and from the plugin, all at once, while a seeded chaos task (seed {}) reloads and crashes it at random points: {chaos} | {:.1} min; {} calls, {actions} chaos actions, {} generations | {}: hung {}, answered twice {}, errors all of known kinds by `error.data.kind` ({}), every hook answered (continue), every log notification answered for reached lightningd ({} of {}), serves afterwards |",
        r.flavor,
        r.callers,
        r.seed,
        r.elapsed.as_secs_f64() / 60.0,
        load.sent + r.chaos_calls.sent,
        r.generations,
        held(r.problems().is_empty()),
        load.hung + r.chaos_calls.hung,
        r.answered_twice,
        errors(&load),
        r.notifications_out_seen,
        r.notifications_out.ok,
    )
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn hygiene_row(h: &Hygiene) -> String {
    let b = &h.baseline;
    let p = &h.peak;
    format!(
        "| Resource hygiene, {} plugin: reloads one after another (new file / `autoreload-restart` in turn), the host's fds, threads, children and RSS sampled every 100 once each reload settled | {} reloads after 5 of warm-up | {}: fds {} → max {} (bound +{}), threads {} → max {} (bound +{}), children max {} (bound {}), RSS {} → max {} (bound +{}) |",
        h.flavor,
        h.reloads,
        held(h.problems().is_empty()),
        b.fds,
        p.fds,
        h.bounds.fds,
        b.threads,
        p.threads,
        h.bounds.threads,
        p.children,
        h.bounds.children,
        mib(b.rss_kib),
        mib(p.rss_kib),
        mib(h.bounds.rss_kib),
    )
}

fn tally_line(name: &str, t: &Tally) -> String {
    format!(
        "| {name} | {} | {} | {} | {} |\n",
        t.sent,
        t.ok,
        errors(t),
        t.hung
    )
}

fn details(r: &Report) -> String {
    let mut s = format!(
        "#### Mixed soak, {} (seed {}, {:.1} min)\n\n| stream | sent | ok | errors by kind | hung |\n| --- | --- | --- | --- | --- |\n",
        r.flavor,
        r.seed,
        r.elapsed.as_secs_f64() / 60.0
    );
    s += &tally_line("rpc calls (echo, sleep/version)", &r.rpc);
    s += &tally_line("hooks (`dev-hook peer_connected`)", &r.hooks);
    s += &tally_line(
        "notifications to the plugin (`dev-notify connect`)",
        &r.notifications_in,
    );
    s += &tally_line(
        "calls making it send a log notification",
        &r.notifications_out,
    );
    s += &tally_line("the chaos task's own calls", &r.chaos_calls);
    let _ = write!(
        s,
        "\nHooks answered `continue`: {}. Notifications handed to the host: {}, of which it had no running version for: {}. Log notifications that reached lightningd: {} (answered for: {}). Generations: {}; crashes counted by the host: {}. Responses to an id nothing waited for: {}. Serves afterwards: {}.\n\nChaos actions:\n\n",
        r.hooks_continued,
        r.notifications_in_sent,
        r.notifications_in_dropped,
        r.notifications_out_seen,
        r.notifications_out.ok,
        r.generations,
        r.crashes,
        r.answered_twice,
        r.serves_after
    );
    for (k, n) in &r.chaos {
        let _ = writeln!(s, "- {k}: {n}");
    }
    let problems = r.problems();
    if !problems.is_empty() {
        let _ = writeln!(s, "\n**Did not hold:** {}", problems.join("; "));
    }
    s.push('\n');
    s
}

fn hygiene_details(h: &Hygiene) -> String {
    let mut s = format!(
        "#### Resource hygiene, {} ({} reloads)\n\n| after reloads | fds | threads | children | RSS |\n| --- | --- | --- | --- | --- |\n| baseline (after warm-up) | {} | {} | {} | {} |\n",
        h.flavor,
        h.reloads,
        h.baseline.fds,
        h.baseline.threads,
        h.baseline.children,
        mib(h.baseline.rss_kib)
    );
    for (n, u) in &h.samples {
        let _ = writeln!(
            s,
            "| {n} | {} | {} | {} | {} |",
            u.fds,
            u.threads,
            u.children,
            mib(u.rss_kib)
        );
    }
    let _ = writeln!(
        s,
        "\nBound (checked at every sample): fds ≤ baseline + {}, threads ≤ baseline + {}, children ≤ {}, RSS ≤ baseline + {}.",
        h.bounds.fds,
        h.bounds.threads,
        h.bounds.children,
        mib(h.bounds.rss_kib)
    );
    let problems = h.problems();
    if !problems.is_empty() {
        let _ = writeln!(s, "\n**Did not hold:** {}", problems.join("; "));
    }
    s.push('\n');
    s
}

/// Replaces what lies between `<!-- NAME:begin -->` and `<!-- NAME:end -->`
/// in `text` (appends the pair if missing).
fn replace_section(text: &str, name: &str, body: &str) -> String {
    let begin = format!("<!-- {name}:begin -->");
    let end = format!("<!-- {name}:end -->");
    match (text.find(&begin), text.find(&end)) {
        (Some(b), Some(e)) if b < e => format!("{}{begin}\n{body}{}", &text[..b], &text[e..]),
        _ => format!("{text}\n{begin}\n{body}{end}\n"),
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let a = args()?;
    eprintln!("soak: seed {}", a.seed);
    // `cargo run --bin soak` builds this bin only: build what it drives.
    built_bin("cln-autoreload-tests", "lightningd-standin");
    host_bin();
    let commit = commit();
    let date = facts::command_line("date", &["-u", "+%Y-%m-%d %H:%M UTC"]);
    let load_before = facts::loadavg();
    let half = Duration::from_secs_f64(a.minutes * 60.0 / 2.0);
    let mut reports = Vec::new();
    let soaks = if a.soak {
        &[Flavor::Native, Flavor::Wasm][..]
    } else {
        &[]
    };
    for (i, &flavor) in soaks.iter().enumerate() {
        reports.push(
            soak::run(&Settings {
                flavor,
                duration: half,
                seed: a.seed.wrapping_add(i as u64),
                callers: 4,
                chaos_pause_ms: (50, 1500),
            })
            .await,
        );
    }
    let load_mid = facts::loadavg();
    let mut hygiene = Vec::new();
    let hygienes = if a.hygiene {
        &[Flavor::Native, Flavor::Wasm][..]
    } else {
        &[]
    };
    for &flavor in hygienes {
        let h = soak::hygiene(flavor, 5, a.reloads, 100).await;
        eprintln!("{h:?}");
        hygiene.push(h);
    }
    let load_after = facts::loadavg();

    let mut table =
        String::from("| what was tried | how often | what held |\n| --- | --- | --- |\n");
    for r in &reports {
        table += &soak_row(r);
        table.push('\n');
    }
    for h in &hygiene {
        table += &hygiene_row(h);
        table.push('\n');
    }
    let mut body = format!(
        "Generated by `cargo run --release -p cln-autoreload-tests --bin soak -- --minutes {} --seed {} --reloads {}` on {date}, commit {commit}.\nMachine: {}. Load average (1, 5, 15 min): {load_before} at the start, {load_mid} after the soaks, {load_after} at the end.\n\n",
        a.minutes,
        a.seed,
        a.reloads,
        machine()
    );
    for r in &reports {
        body += &details(r);
    }
    for h in &hygiene {
        body += &hygiene_details(h);
    }
    let old = std::fs::read_to_string(&a.out).unwrap_or_default();
    let new = replace_section(&old, "soak-table", &table);
    let new = replace_section(&new, "soak", &body);
    std::fs::write(&a.out, new).with_context(|| format!("writing {}", a.out.display()))?;
    eprintln!("soak: wrote {}", a.out.display());

    let problems: Vec<String> = reports
        .iter()
        .flat_map(|r| {
            r.problems()
                .into_iter()
                .map(move |p| format!("{}: {p}", r.flavor))
        })
        .chain(hygiene.iter().flat_map(|h| {
            h.problems()
                .into_iter()
                .map(move |p| format!("{} hygiene: {p}", h.flavor))
        }))
        .collect();
    if !problems.is_empty() {
        bail!("did not hold:\n{}", problems.join("\n"));
    }
    eprintln!("soak: everything held");
    Ok(())
}
