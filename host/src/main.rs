//! `cln-autoreload`: the binary lightningd runs as a plugin.

use clap::{ArgAction, CommandFactory, FromArgMatches, Parser, Subcommand};
use cln_autoreload::dev;
use cln_autoreload::host::{Config, Host};
use cln_autoreload::link;
use cln_autoreload::scaffold;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// A Core Lightning plugin that runs the plugins you are developing and
/// reloads each one the moment its file changes.
///
/// Run it from lightningd:
///
///   lightningd --plugin=/path/to/cln-autoreload --autoreload-plugin=path/to/plugin
///
/// or from a wrapper script (for `lightning-cli plugin start`, or several
/// independent instances):
///
///   #!/bin/sh
///   exec /path/to/cln-autoreload /path/to/plugin "$@"
///
/// or without a node, to try a plugin from the terminal:
///
///   cln-autoreload dev path/to/plugin
///
/// or to start a new plugin project:
///
///   cln-autoreload new [--lang python|rust|wasm] my-plugin
#[derive(Parser, Debug)]
#[command(
    version,
    about,
    long_about,
    verbatim_doc_comment,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Plugins to manage (otherwise taken from lightningd's options, its
    /// config files, or the AUTORELOAD_PLUGIN environment variable).
    plugins: Vec<PathBuf>,
    /// Given by lightningd when it runs with --developer; passed on.
    #[arg(long, hide = true)]
    developer: bool,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Work on a plugin without a node: run it under the host with a
    /// built-in lightningd stand-in, call its methods from the terminal,
    /// and see it reload when its file changes.
    ///
    /// Prints the plugin's methods and options, then reads calls from
    /// stdin, one a line:
    ///
    ///   METHOD key=value ...     named params (a value that is JSON is JSON)
    ///   METHOD value ...         positional params
    ///   METHOD {"a": 1}          one JSON object or array
    ///   getinfo                  the stand-in's own (plugins often call it)
    ///   help | status | restart | reregister | quit
    ///
    /// With --call, makes the calls instead, prints each result as one line
    /// of JSON on stdout ({"error": ...} for a failed call), and exits 0
    /// when all succeeded, 1 otherwise. The plugin runs in a temporary
    /// lightning dir (<tmp>/regtest) whose lightning-rpc answers getinfo
    /// and the plugin's own methods.
    #[command(verbatim_doc_comment)]
    Dev(DevArgs),
    /// Create a plugin project at PATH that runs under cln-autoreload at
    /// once and reloads on save, then print how to start it.
    ///
    /// PATH's last component names the plugin, in lowercase letters,
    /// digits, '-' and '_' (what lightningd accepts in the plugin's option
    /// names). Each project has one option, one method (NAME-hello), one
    /// hook, one notification, a test, a README and a .gitignore. PATH
    /// must be new or empty.
    #[command(verbatim_doc_comment)]
    New(NewArgs),
}

#[derive(clap::Args, Debug)]
struct NewArgs {
    /// python: pyln-client; rust: native, with the cln-plugin crate;
    /// wasm: Rust with cln-autoreload-guest, built for wasm32-wasip1.
    #[arg(long, value_enum, default_value_t)]
    lang: scaffold::Lang,
    /// The project directory to create.
    path: PathBuf,
}

#[derive(clap::Args, Debug)]
struct DevArgs {
    /// The plugin: an executable (any language) or a .wasm module.
    plugin: PathBuf,
    /// Call METHOD with PARAMS (key=value pairs, plain values, or one JSON
    /// object or array), print the result and exit; may be given several
    /// times. Put PLUGIN before it.
    #[arg(
        long = "call",
        value_names = ["METHOD", "PARAMS"],
        num_args = 1..,
        action = ArgAction::Append,
        allow_negative_numbers = true
    )]
    call: Vec<String>,
    /// Give the plugin's option NAME this value in init, typed as the
    /// option declares (NAME alone sets a flag); repeat for multi options.
    #[arg(long = "opt", value_name = "NAME=VALUE")]
    opt: Vec<String>,
    /// How long a changed file must stay quiet before it counts as saved
    /// (autoreload-settle-ms).
    #[arg(long, value_name = "MS")]
    settle_ms: Option<u64>,
    /// How long to wait for any answer, then say so.
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    timeout_secs: u64,
    /// Also print the host's debug log lines.
    #[arg(short, long)]
    verbose: bool,
}

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    if let Some(Command::New(args)) = cli.command {
        return ExitCode::from(scaffold::main(scaffold::Options {
            lang: args.lang,
            path: args.path,
        }));
    }
    if let Some(Command::Dev(args)) = cli.command {
        // Each --call's values, apart (the derived field has them all).
        let calls = matches
            .subcommand_matches("dev")
            .and_then(|m| m.get_occurrences::<String>("call"))
            .map(|o| o.map(|call| call.cloned().collect()).collect())
            .unwrap_or_default();
        let code = dev::main(dev::Options {
            plugin: args.plugin,
            calls,
            opts: args.opt,
            settle_ms: args.settle_ms,
            timeout: Duration::from_secs(args.timeout_secs),
            verbose: args.verbose,
        });
        // Don't wait for the thread reading stdin.
        std::process::exit(code.into());
    }
    if std::io::stdin().is_terminal() && std::env::var_os("LIGHTNINGD_PLUGIN").is_none() {
        eprintln!(
            "cln-autoreload is a Core Lightning plugin: lightningd starts it.\n\n  lightningd --plugin={} --autoreload-plugin=path/to/your/plugin\n\nTo try a plugin without a node: cln-autoreload dev path/to/your/plugin\nTo start a new one: cln-autoreload new my-plugin\n\nSee --help.",
            std::env::current_exe().map(|p| p.display().to_string()).unwrap_or_else(|_| "cln-autoreload".into())
        );
        // Success, as a pyln-client plugin run by hand: reckless installs
        // a plugin only if running it from its terminal exits 0 (or keeps
        // running).
        return ExitCode::SUCCESS;
    }
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cln-autoreload: cannot start its runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = rt.block_on(async {
        let (link, writer) = link::to_stdout();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let config = Config {
            developer: cli.developer,
            ..Config::default()
        };
        // A task rather than `block_on`'s own future: waking a task from
        // another task on this thread queues it, where waking `block_on`'s
        // future makes the runtime poll its drivers once more first.
        let host = Host::new(config, cli.plugins, link.clone(), tx);
        // A panic in it was printed as it happened; it still ends the host
        // with a failure, as it would have on `block_on`'s own future.
        let ran = tokio::spawn(host.run(rx, link::stdin())).await;
        // Let what is queued reach lightningd, unless it stopped reading.
        let flushed = async {
            link.flushed().await;
            drop(link);
            if let Some(writer) = writer {
                let _ = writer.await;
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(2), flushed).await;
        if ran.is_err() {
            101
        } else {
            0
        }
    });
    // Don't wait for the thread reading a non-pipe stdin.
    std::process::exit(code)
}
