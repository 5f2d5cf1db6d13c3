//! `cln-autoreload`: the binary lightningd runs as a plugin.

use clap::Parser;
use cln_autoreload::host::{Config, Event, Host};
use cln_autoreload::link;
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
#[derive(Parser, Debug)]
#[command(version, about, long_about, verbatim_doc_comment)]
struct Cli {
    /// Plugins to manage (otherwise taken from lightningd's options, its
    /// config files, or the AUTORELOAD_PLUGIN environment variable).
    plugins: Vec<PathBuf>,
    /// Given by lightningd when it runs with --developer; passed on.
    #[arg(long, hide = true)]
    developer: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if std::io::stdin().is_terminal() && std::env::var_os("LIGHTNINGD_PLUGIN").is_none() {
        eprintln!(
            "cln-autoreload is a Core Lightning plugin: lightningd starts it.\n\n  lightningd --plugin={} --autoreload-plugin=path/to/your/plugin\n\nSee --help.",
            std::env::current_exe().map(|p| p.display().to_string()).unwrap_or_else(|_| "cln-autoreload".into())
        );
        return ExitCode::from(2);
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
    rt.block_on(async {
        let (link, writer) = link::writer(link::stdout());
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let reader_tx = tx.clone();
        tokio::spawn(async move {
            let close_tx = reader_tx.clone();
            link::read_loop(
                link::stdin(),
                move |f| {
                    let _ = reader_tx.send(Event::Lightningd(f));
                },
                move || {
                    let _ = close_tx.send(Event::LightningdClosed);
                },
            )
            .await;
        });
        let config = Config {
            developer: cli.developer,
            ..Config::default()
        };
        Host::new(config, cli.plugins, link, tx).run(rx).await;
        // The host dropped its link: the writer ends once it has written
        // everything queued, unless lightningd stopped reading.
        let _ = tokio::time::timeout(Duration::from_secs(2), writer).await;
    });
    // Don't wait for the thread reading a non-pipe stdin.
    std::process::exit(0)
}
