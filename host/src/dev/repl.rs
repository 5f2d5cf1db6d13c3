//! The terminal loop: one call a line, until EOF, `quit` or `reregister`.
//!
//! Owns: reading the terminal (on a thread of its own: plain blocking
//! reads), the prompt, the dev node's own words (`help`, `status`,
//! `restart`, `reregister`, `quit`), and showing each call's result.
//! Must not: start or stop the host (it returns why it ended to the
//! session), or parse a line itself (args does).

use super::args::parse_line;
use super::node::Node;
use super::print::{error_text, pretty, summary, Ui, AT_PROMPT};
use crate::manifest::HOST_PREFIX;
use serde_json::Value;
use std::io::{BufRead, Write};
use std::sync::atomic::Ordering;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

/// Why the terminal loop ended; the session decides what follows.
pub(super) enum Ended {
    /// EOF, `quit` or `exit`.
    Quit,
    /// `reregister`: the session starts a new host.
    Reregister,
    /// The host's link closed under it.
    HostClosed,
}

/// Runs the terminal's lines, until EOF, `quit` or `reregister`.
pub(super) async fn run(
    node: &Node,
    lines: &mut UnboundedReceiver<String>,
    ui: Ui,
    name: &str,
    manifest: &Value,
) -> Ended {
    out!("Type METHOD [key=value ...|value ...|JSON], or help, status, restart, reregister, quit (or Ctrl-D).");
    let mut closed = node.watch_closed();
    loop {
        if ui.tty {
            out_raw!("> ");
            let _ = std::io::stdout().flush();
            AT_PROMPT.store(true, Ordering::Relaxed);
        }
        let line = tokio::select! {
            line = lines.recv() => line,
            _ = closed.wait_for(|c| *c) => return Ended::HostClosed,
        };
        AT_PROMPT.store(false, Ordering::Relaxed);
        let Some(line) = line else {
            if ui.tty {
                out!();
            }
            return Ended::Quit;
        };
        let (method, params) = match parse_line(&line) {
            Ok(None) => continue,
            Ok(Some(call)) => call,
            Err(e) => {
                out!("{e}");
                continue;
            }
        };
        let method = match method.as_str() {
            // The plugin's own method wins over the dev node's words.
            _ if node.has_method(&method) => method,
            "quit" | "exit" => return Ended::Quit,
            "reregister" | "autoreload-reregister" => return Ended::Reregister,
            "help" => {
                out_raw!("{}", summary(name, manifest));
                continue;
            }
            "status" | "restart" => format!("{HOST_PREFIX}{method}"),
            _ => method,
        };
        match node.dispatch(&method, params).await {
            Ok(result) => out!("{}", pretty(&result)),
            Err(error) => out!("{}", error_text(&error)),
        }
    }
}

/// The terminal's lines, read by a thread (plain blocking reads).
pub(super) fn stdin_lines() -> UnboundedReceiver<String> {
    let (tx, lines) = unbounded_channel();
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match stdin.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let line = String::from_utf8_lossy(&buf).into_owned();
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            }
        }
    });
    lines
}
