//! lightningd-standin: behaves like Core Lightning's `lightningd` v26.06
//! towards its plugins (process, framing, manifest rules, options, init,
//! passthrough, hooks, notifications, death, shutdown), so end-to-end tests
//! can drive a real plugin without a Bitcoin node.
//!
//! Usage: lightningd-standin --lightning-dir=DIR [--network=regtest]
//!        [--plugin=PATH]... [--conf=FILE] [--developer] [--log-file=FILE]
//!        [--disable-plugin=NAME] [plugin options]...
//!
//! Environment: STANDIN_STARTUP_TIMEOUT_SECS (getmanifest/init, default 120),
//! STANDIN_SHUTDOWN_TIMEOUT_SECS (default 30), STANDIN_LOG_STDERR=1 (echo the
//! log to stderr).

mod cli;
mod datastore;
mod db;
mod dynamic;
mod framing;
mod ld;
mod logbook;
mod plugins;
mod proto;
mod rpc;

use ld::{env_secs, Ld, Phase, Reply};
use logbook::{Level, LogBook};
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn die(msg: &str) -> ! {
    eprintln!("lightningd-standin: {msg}");
    std::process::exit(1);
}

fn main() {
    let mut args = Vec::new();
    for a in std::env::args_os().skip(1) {
        match a.into_string() {
            Ok(s) => args.push(s),
            Err(a) => die(&format!("argument is not UTF-8: {a:?}")),
        }
    }
    let cfg = match cli::parse(&args) {
        Ok(c) => c,
        Err(e) => die(&e),
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => die(&format!("tokio runtime: {e}")),
    };
    rt.block_on(run(cfg));
}

/// `--disable-plugin=NAME`: a path matches by real path, a bare name by basename.
fn disabled(cfg: &cli::Cfg, path: &Path) -> bool {
    cfg.disabled.iter().any(|d| {
        if d.contains('/') {
            let d = cfg.launch_dir.join(d);
            std::fs::canonicalize(d).is_ok_and(|c| c == path)
        } else {
            path.file_name()
                .is_some_and(|n| n.to_string_lossy() == d.as_str())
        }
    })
}

async fn run(cfg: cli::Cfg) {
    if let Err(e) = std::fs::create_dir_all(&cfg.netdir) {
        die(&format!("creating {}: {e}", cfg.netdir.display()));
    }
    // Plugin paths are resolved (symlinks too) against the launch directory.
    let mut paths: Vec<(PathBuf, bool)> = Vec::new();
    for (p, important) in &cfg.plugins {
        match std::fs::canonicalize(p) {
            Ok(c) => match paths.iter_mut().find(|(x, _)| *x == c) {
                Some(existing) => existing.1 |= *important,
                None => paths.push((c, *important)),
            },
            Err(e) => die(&format!("--plugin={}: {e}", p.display())),
        }
    }
    let log_file = match &cfg.log_file {
        Some(f) => match std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(f)
        {
            Ok(f) => Some(f),
            Err(e) => die(&format!("--log-file={}: {e}", f.display())),
        },
        None => None,
    };
    // Like lightningd: work inside <lightning-dir>/<network>. PWD is left alone.
    if let Err(e) = std::env::set_current_dir(&cfg.netdir) {
        die(&format!("chdir {}: {e}", cfg.netdir.display()));
    }
    let ld = Arc::new(Ld::new(cfg, LogBook::new(log_file)));

    {
        let ld = ld.clone();
        tokio::spawn(async move {
            use tokio::signal::unix::{signal, SignalKind};
            let (Ok(mut term), Ok(mut int)) = (
                signal(SignalKind::terminate()),
                signal(SignalKind::interrupt()),
            ) else {
                return;
            };
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            ld.log
                .log(Level::Info, "lightningd", "Shutting down on signal");
            ld.shutdown(0, true, None).await;
        });
    }

    for (path, important) in paths {
        if disabled(&ld.cfg, &path) {
            ld.log.log(
                Level::Info,
                "plugin-manager",
                &format!("{}: disabled via disable-plugin", path.display()),
            );
            continue;
        }
        if let Err(e) = plugins::start_plugin(&ld, &path, important) {
            ld.fatal(
                1,
                "plugin-manager",
                &format!("error starting plugin '{}': {e}", path.display()),
            )
            .await;
        }
    }
    let count = ld.st().plugins.len();
    let timeout = env_secs("STANDIN_STARTUP_TIMEOUT_SECS", 120);

    // getmanifest, to all plugins at once (plugin.c plugins_send_getmanifest,
    // no id prefix at start-up; plugin_send_getmanifest: params
    // `allow-deprecated-apis` only).
    let mut waits = Vec::new();
    for idx in 0..count {
        let id = proto::make_id(None, "getmanifest", ld.next_id());
        let msg = format!(
            "{{\"jsonrpc\":\"2.0\",\"id\":{id},\"method\":\"getmanifest\",\"params\":{{\"allow-deprecated-apis\":{}}}}}\n\n",
            ld.cfg.deprecated_apis
        );
        waits.push((idx, ld.send_request(idx, &id, msg.into_bytes())));
    }
    let deadline = tokio::time::Instant::now() + timeout;
    let mut manifests = Vec::new();
    for (idx, rx) in waits {
        match tokio::time::timeout_at(deadline, rx).await {
            Err(_) => timed_out(&ld, idx, "getmanifest").await,
            Ok(Ok(Reply::Msg(m))) => manifests.push((idx, m)),
            Ok(_) => {}
        }
    }
    for (idx, m) in manifests {
        if let Err(e) = plugins::apply_manifest(&ld, idx, &m, true) {
            ld.fatal(1, "plugin-manager", &e).await;
        }
    }
    plugins::order_hooks(&ld);
    if ld.cfg.help {
        println!("{}", cli::USAGE);
        for p in ld.st().plugins.iter().filter(|p| p.alive) {
            for o in &p.m.options {
                let arg = if o.typ == ld::OptType::Flag {
                    ""
                } else {
                    " <arg>"
                };
                println!("--{}{arg}\t{}", o.name, o.description);
            }
        }
        ld.help_exit().await;
    }
    if let Err(e) = plugins::resolve_options(&ld, None) {
        ld.fatal(1, "lightningd", &e).await;
    }

    // The database is created (or opened) after getmanifest and before
    // the rpc socket and init (lightningd.c main): db_write plugins get
    // the writes now.
    db::open(&ld).await;

    // The RPC socket exists before init, so plugins can call us from init.
    match rpc::bind(&ld) {
        Ok(l) => {
            tokio::spawn(rpc::serve(ld.clone(), l));
        }
        Err(e) => ld.fatal(1, "lightningd", &e).await,
    }

    // init, to all plugins at once (plugin.c plugins_config / plugin_config:
    // no id prefix, also for `plugin start`).
    let mut waits = Vec::new();
    for idx in 0..count {
        let ready = ld
            .st()
            .plugins
            .get(idx)
            .is_some_and(|p| p.alive && p.phase == Phase::NeedsInit);
        if !ready {
            continue;
        }
        let Some((id, msg)) = plugins::init_request(&ld, idx, true) else {
            continue;
        };
        if let Some(p) = ld.st().plugins.get_mut(idx) {
            p.phase = Phase::Init;
        }
        waits.push((idx, ld.send_request(idx, &id, msg)));
    }
    let deadline = tokio::time::Instant::now() + timeout;
    for (idx, rx) in waits {
        match tokio::time::timeout_at(deadline, rx).await {
            Err(_) => timed_out(&ld, idx, "init").await,
            Ok(Ok(Reply::Msg(m))) => plugins::apply_init(&ld, idx, &m),
            Ok(_) => {}
        }
    }
    ld.log.log(
        Level::Info,
        "lightningd",
        &format!(
            "Server started with public key {}, alias standin and lightningd {}",
            rpc::NODE_ID,
            cli::VERSION
        ),
    );
    ld.ready.send_replace(true);
    std::future::pending::<()>().await;
}

/// A plugin did not answer getmanifest/init in time (plugin.c
/// PLUGIN_STARTUP_TIMEOUT, 120 s, armed by plugin_set_timeout for each):
/// plugin_manifest_timeout kills it ("timed out " + state_desc) and, at
/// start-up, lightningd exits.
async fn timed_out(ld: &Arc<Ld>, idx: usize, what: &str) {
    ld.kill_plugin(
        idx,
        Level::Unusual,
        &format!("timed out before replying to {what}"),
    );
    ld.fatal(
        1,
        "plugin-manager",
        "Can't recover from plugin failure, terminating.",
    )
    .await;
}
