//! One run of the dev node: hosts started one after another, each taken
//! through the handshake and then the calls.
//!
//! Owns: starting this very binary as the plugin host the way lightningd
//! starts a plugin (argv, cwd, environment, pipes, its own process group),
//! getmanifest and init, running the `--call`s (or handing the terminal to
//! the repl), restarting the host for `reregister`, and shutting each host
//! down (`shutdown`, stdin closed, bounded wait, then SIGKILL). Must not:
//! parse what was typed, format what is shown (print does), or reload,
//! watch or route anything itself: the host it runs does that exactly as
//! under lightningd.

use super::args::GivenOpt;
use super::handshake::{init_params, registered_methods};
use super::node::{serve_rpc, Current, Node};
use super::print::{error_text, summary, Ui};
use super::{repl, LIGHTNINGD_VERSION};
use crate::framing::RawId;
use crate::manifest::HOST_PREFIX;
use nix::sys::signal::Signal;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::UnixListener;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::sync::watch;

/// Everything one run needs once the arguments are checked.
pub(super) struct Session {
    /// How long each request (and each start-up step) may take.
    pub(super) timeout: Duration,
    /// The plugin's absolute path.
    pub(super) plugin: PathBuf,
    /// `--opt` values (and the host's own options) for init.
    pub(super) given: Vec<GivenOpt>,
    pub(super) ui: Ui,
    /// `<tmp>/regtest`: the host's working directory, holding
    /// `lightning-rpc`.
    pub(super) lightning_dir: PathBuf,
}

/// Why a host's session ended.
pub(super) enum End {
    /// Done as asked (EOF, `quit`, or all calls made); failed calls?
    Done { failed: bool },
    /// `reregister`: start a new host, which registers the current manifest.
    Reregister,
    /// A signal.
    Signal(Signal),
    /// The host exited, or never got going.
    Broken,
}

impl From<repl::Ended> for End {
    fn from(ended: repl::Ended) -> End {
        match ended {
            repl::Ended::Quit => End::Done { failed: false },
            repl::Ended::Reregister => End::Reregister,
            repl::Ended::HostClosed => End::Broken,
        }
    }
}

/// The host process the dev node runs, seen from the dev node.
struct Host {
    node: Arc<Node>,
    /// Ends once everything queued for the host's stdin is written.
    writer: tokio::task::JoinHandle<()>,
    /// `Some` once the host has exited (with its status, if known).
    exit: watch::Receiver<Option<Option<ExitStatus>>>,
    pid: Option<u32>,
}

impl Session {
    /// Serves `lightning-rpc` and runs hosts, one after another (a new one
    /// for each `reregister`), until done; returns the exit code.
    pub(super) async fn run(
        self,
        calls: Vec<(String, Value)>,
        signals: &mut UnboundedReceiver<Signal>,
    ) -> u8 {
        let socket = self.lightning_dir.join("lightning-rpc");
        let listener = match UnixListener::bind(&socket) {
            Ok(l) => l,
            Err(e) => {
                err!(
                    "cln-autoreload dev: cannot serve {}: {e} (a shorter TMPDIR may help)",
                    socket.display()
                );
                return 1;
            }
        };
        let current = Current::default();
        tokio::spawn(serve_rpc(listener, current.clone()));
        let mut lines = self.ui.interactive.then(repl::stdin_lines);
        loop {
            let host = match self.start_host() {
                Ok(h) => h,
                Err(e) => {
                    err!("cln-autoreload dev: {e}");
                    return 1;
                }
            };
            current.set(Some(host.node.clone()));
            let end = tokio::select! {
                end = self.serve(&host.node, &calls, lines.as_mut()) => end,
                Some(sig) = signals.recv() => End::Signal(sig),
            };
            let unexpected = host.node.is_closed();
            let status = shut_down(host).await;
            current.set(None);
            if unexpected {
                err!(
                    "cln-autoreload dev: the plugin host exited unexpectedly ({})",
                    status.map_or_else(|| "status unknown".into(), |s| s.to_string())
                );
            }
            if matches!(end, End::Reregister) && !unexpected {
                out!("* re-registering: the host starts again and registers the plugin's current manifest");
                continue;
            }
            return match end {
                End::Done { failed: false } if !unexpected => 0,
                End::Signal(Signal::SIGINT) => 130,
                End::Signal(Signal::SIGTERM) => 143,
                End::Signal(Signal::SIGHUP) => 129,
                _ => 1,
            };
        }
    }

    /// Starts the host as lightningd starts a plugin.
    fn start_host(&self) -> Result<Host, String> {
        let exe =
            std::env::current_exe().map_err(|e| format!("cannot find its own executable: {e}"))?;
        let mut cmd = tokio::process::Command::new(&exe);
        cmd.arg(&self.plugin)
            .current_dir(&self.lightning_dir)
            .env("LIGHTNINGD_PLUGIN", "1")
            .env("LIGHTNINGD_VERSION", LIGHTNINGD_VERSION)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            // Ctrl-C is the dev node's to handle: it shuts the host down.
            .process_group(0)
            .kill_on_drop(true);
        if let Ok(cwd) = std::env::current_dir() {
            cmd.env("PWD", cwd);
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start the host {}: {e}", exe.display()))?;
        let pid = child.id();
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err("the host has no pipes".into());
        };
        let (exit_tx, exit) = watch::channel(None);
        tokio::spawn(async move {
            let status = child.wait().await.ok();
            exit_tx.send_replace(Some(status));
        });
        let (node, writer) = Node::start(stdin, stdout, self.timeout, self.ui);
        Ok(Host {
            node,
            writer,
            exit,
            pid,
        })
    }

    /// The handshake, then the calls (or the terminal's lines).
    async fn serve(
        &self,
        node: &Arc<Node>,
        calls: &[(String, Value)],
        lines: Option<&mut UnboundedReceiver<String>>,
    ) -> End {
        let manifest = match node
            .request(
                RawId::from_string("cln:getmanifest#1"),
                "getmanifest",
                json!({"allow-deprecated-apis": true}),
            )
            .await
        {
            Ok(m) => m,
            Err(e) => {
                err!("cln-autoreload dev: getmanifest failed: {}", error_text(&e));
                return End::Broken;
            }
        };
        let methods = registered_methods(&manifest);
        let none = !methods.iter().any(|m| !m.starts_with(HOST_PREFIX));
        node.register(methods);
        let name = self.plugin.file_name().map_or_else(
            || self.plugin.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        let mut summary = summary(&name, &manifest);
        if none {
            summary.push_str(if self.ui.interactive {
                "The plugin registered no method (see above why): fix it, save, then type reregister.\n"
            } else {
                "The plugin registered no method (see above why).\n"
            });
        }
        if self.ui.interactive {
            out_raw!("{summary}");
        } else {
            err_raw!("{summary}");
        }
        let params = match init_params(&manifest, &self.given, &self.lightning_dir) {
            Ok(p) => p,
            Err(e) => {
                err!("cln-autoreload dev: {e}");
                return End::Broken;
            }
        };
        if let Err(e) = node
            .request(RawId::from_string("cln:init#2"), "init", params)
            .await
        {
            err!("cln-autoreload dev: init failed: {}", error_text(&e));
            return End::Broken;
        }
        match lines {
            Some(lines) => repl::run(node, lines, self.ui, &name, &manifest)
                .await
                .into(),
            None => {
                let mut failed = false;
                for (method, params) in calls {
                    let line = match node.dispatch(method, params.clone()).await {
                        Ok(result) => result,
                        Err(error) => {
                            failed = true;
                            json!({ "error": error })
                        }
                    };
                    out!("{line}");
                }
                End::Done { failed }
            }
        }
    }
}

/// Sends `shutdown`, closes the host's stdin and waits for it to exit
/// (bounded; then it is killed). Returns its exit status, if known.
async fn shut_down(host: Host) -> Option<ExitStatus> {
    let Host {
        node,
        writer,
        mut exit,
        pid,
    } = host;
    node.notify("shutdown", json!({"shutdown": {}}));
    node.close_link();
    let _ = tokio::time::timeout(Duration::from_secs(2), writer).await;
    // The host gives its plugins 3 s to stop before it kills them.
    let exited = tokio::time::timeout(Duration::from_secs(10), exit.wait_for(Option::is_some))
        .await
        .is_ok();
    if !exited {
        err!("cln-autoreload dev: the plugin host did not exit within 10 s: killed");
        if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGKILL);
        }
        let _ = tokio::time::timeout(Duration::from_secs(2), exit.wait_for(Option::is_some)).await;
    }
    let status = *exit.borrow();
    status.flatten()
}
