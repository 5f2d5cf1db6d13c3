//! `cln-autoreload dev PLUGIN`: work on a plugin without a node.
//!
//! A minimal lightningd for one developer at a terminal. It makes a
//! temporary lightning dir, starts this very binary as the plugin host the
//! way lightningd starts a plugin, does the getmanifest/init handshake,
//! serves `lightning-rpc` (`getinfo` and the plugin's methods), turns
//! terminal lines or `--call`s into requests, and prints what the host
//! says. Its parts:
//!
//! - this module: the entry point: checking the arguments and the plugin,
//!   the temporary lightning dir, signals;
//! - `args`: `--opt`, `--call` and terminal line parsing;
//! - `handshake`: the methods a manifest registers, and init's params;
//! - `node`: the lightningd side of the host's pipes, and `lightning-rpc`;
//! - `session`: starting hosts, the handshake, the calls, shutting down;
//! - `repl`: the terminal loop;
//! - `print`: everything written to the terminal.
//!
//! Owns: what the dev node as a whole does. Must not: reload, watch, route
//! or sandbox anything itself (the host it runs does that exactly as under
//! lightningd, so what the developer sees is what lightningd would get),
//! call hooks or send notifications other than `shutdown`, or be used by
//! the host.

// First: the print macros are used by every module after it.
#[macro_use]
mod print;
mod args;
mod handshake;
mod node;
mod repl;
mod session;

pub use args::{params_from_args, parse_line};

use args::parse_opts;
use nix::sys::signal::{SigSet, Signal};
use print::Ui;
use session::Session;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

/// The lightningd version the dev node claims to be.
pub const LIGHTNINGD_VERSION: &str = "v26.06.6";
/// The dev node's alias in `getinfo`.
pub const ALIAS: &str = "cln-autoreload-dev";
/// The dev node's (made-up) node id in `getinfo`.
pub const NODE_ID: &str = "02d3c0de0000000000000000000000000000000000000000000000000000000001";

/// What `cln-autoreload dev` was asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    /// The plugin: an executable or a `.wasm` module.
    pub plugin: PathBuf,
    /// Calls to make, each `[METHOD, PARAMS...]`; none: read calls from
    /// stdin, one a line.
    pub calls: Vec<Vec<String>>,
    /// Values for the plugin's options in init: `NAME=VALUE`, or `NAME`
    /// alone for a flag.
    pub opts: Vec<String>,
    /// The host's `autoreload-settle-ms`, if given.
    pub settle_ms: Option<u64>,
    /// How long a call (and each start-up step) may take.
    pub timeout: Duration,
    /// Print the host's debug log lines too.
    pub verbose: bool,
}

/// Runs `cln-autoreload dev`; returns the process exit code: 0 when all
/// went well, 1 when a call failed or the host died, 2 for bad usage.
pub fn main(opts: Options) -> u8 {
    // Before any other thread exists, so that every thread inherits the
    // mask and only the signal thread takes these signals. Child processes
    // start with an empty mask (the standard library resets it).
    let signals = signal_thread();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            err!("cln-autoreload dev: cannot start its runtime: {e}");
            return 1;
        }
    };
    let code = rt.block_on(run(opts, signals));
    rt.shutdown_timeout(Duration::from_secs(1));
    code
}

/// SIGINT, SIGTERM and SIGHUP, delivered on a channel: Ctrl-C shuts the
/// plugin down cleanly instead of leaving it and the temporary dir behind.
fn signal_thread() -> UnboundedReceiver<Signal> {
    let (tx, rx) = unbounded_channel();
    let mut set = SigSet::empty();
    for s in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        set.add(s);
    }
    if set.thread_block().is_ok() {
        std::thread::spawn(move || {
            while let Ok(sig) = set.wait() {
                if tx.send(sig).is_err() {
                    break;
                }
            }
        });
    }
    rx
}

/// Checks the arguments and the plugin, makes the lightning dir, and runs
/// the session in it.
async fn run(opts: Options, mut signals: UnboundedReceiver<Signal>) -> u8 {
    let plugin = match check_plugin(&opts.plugin) {
        Ok(p) => p,
        Err(e) => {
            err!("cln-autoreload dev: {e}");
            return 2;
        }
    };
    let mut given = match parse_opts(&opts.opts) {
        Ok(g) => g,
        Err(e) => {
            err!("cln-autoreload dev: {e}");
            return 2;
        }
    };
    if let Some(ms) = opts.settle_ms {
        given.push(("autoreload-settle-ms".into(), Some(ms.to_string())));
    }
    let mut calls = vec![];
    for call in &opts.calls {
        let Some((method, args)) = call.split_first() else {
            continue;
        };
        match params_from_args(args) {
            Ok(p) => calls.push((method.clone(), p)),
            Err(e) => {
                err!("cln-autoreload dev: --call {method}: {e}");
                return 2;
            }
        }
    }
    let dir = match temp_lightning_dir() {
        Ok(d) => d,
        Err(e) => {
            err!("cln-autoreload dev: cannot make a temporary lightning dir: {e}");
            return 1;
        }
    };
    let ui = Ui {
        interactive: calls.is_empty(),
        tty: calls.is_empty() && std::io::stdin().is_terminal(),
        verbose: opts.verbose,
    };
    let session = Session {
        timeout: opts.timeout,
        plugin,
        given,
        ui,
        lightning_dir: dir.path().join("regtest"),
    };
    let code = session.run(calls, &mut signals).await;
    drop(dir);
    code
}

/// The plugin's absolute path, if it looks runnable.
fn check_plugin(path: &Path) -> Result<PathBuf, String> {
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => format!(
            "{shown}: no such file: give the path to your plugin (an executable or a .wasm module)"
        ),
        _ => format!("{shown}: {e}"),
    })?;
    if meta.is_dir() {
        return Err(format!(
            "{shown} is a directory: give the plugin's executable or .wasm file"
        ));
    }
    let wasm = path.extension().is_some_and(|e| e == "wasm");
    {
        use std::os::unix::fs::PermissionsExt;
        if !wasm && meta.permissions().mode() & 0o111 == 0 {
            return Err(format!(
                "{shown} is not executable: chmod +x it (lightningd runs plugins as executables; so does cln-autoreload)"
            ));
        }
    }
    std::path::absolute(path)
        .map(|p| std::fs::canonicalize(&p).unwrap_or(p))
        .map_err(|e| format!("{shown}: {e}"))
}

/// A fresh `cln-autoreload-dev.*` directory in the temporary directory
/// (`TMPDIR`), holding the lightning dir `regtest`; removed, with
/// everything in it, when dropped.
fn temp_lightning_dir() -> std::io::Result<tempfile::TempDir> {
    let dir = tempfile::Builder::new()
        .prefix("cln-autoreload-dev.")
        .tempdir()?;
    std::fs::create_dir(dir.path().join("regtest"))?;
    Ok(dir)
}
