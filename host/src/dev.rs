//! `cln-autoreload dev PLUGIN`: work on a plugin without a node.
//!
//! Owns: a minimal lightningd for one developer at a terminal. It makes a
//! temporary lightning dir, starts this very binary as the plugin host the
//! way lightningd starts a plugin (argv, cwd, environment, pipes), does the
//! getmanifest/init handshake, serves `lightning-rpc` (`getinfo` and the
//! plugin's methods), turns terminal lines or `--call`s into requests, and
//! prints what the host says. Must not: reload, watch, route or sandbox
//! anything itself (the host it runs does that exactly as under lightningd,
//! so what the developer sees is what lightningd would get), call hooks or
//! send notifications other than `shutdown`, or be used by the host.

use crate::framing::{preview, Frame, Framer, Kind, Message, RawId};
use crate::jsonrpc::{self, METHOD_NOT_FOUND};
use crate::link::{self, Link};
use crate::manifest::HOST_PREFIX;
use bytes::Bytes;
use nix::sys::signal::{SigSet, Signal};
use serde_json::{json, Map, Value};
use std::collections::{BTreeSet, HashMap};
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};
use tokio::sync::{oneshot, watch};

// Printing that does not panic when stdout or stderr is closed (`| head`).
macro_rules! out {
    ($($t:tt)*) => {{
        let _ = writeln!(std::io::stdout(), $($t)*);
    }};
}
macro_rules! out_raw {
    ($($t:tt)*) => {{
        let _ = write!(std::io::stdout(), $($t)*);
    }};
}
macro_rules! err {
    ($($t:tt)*) => {{
        let _ = writeln!(std::io::stderr(), $($t)*);
    }};
}
macro_rules! err_raw {
    ($($t:tt)*) => {{
        let _ = write!(std::io::stderr(), $($t)*);
    }};
}

/// The lightningd version the dev node claims to be.
pub const LIGHTNINGD_VERSION: &str = "v26.06.6";
/// The dev node's alias in `getinfo`.
pub const ALIAS: &str = "cln-autoreload-dev";
/// The dev node's (made-up) node id in `getinfo`.
pub const NODE_ID: &str = "02d3c0de0000000000000000000000000000000000000000000000000000000001";
/// Error code of the dev node's own failures (no answer in time, host gone).
const DEV_ERROR: i64 = -1;

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
    let dir = match TempDir::new() {
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
        opts: &opts,
        plugin,
        given,
        ui,
        lightning_dir: dir.0.join("regtest"),
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

/// A directory removed (with everything in it) when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> std::io::Result<TempDir> {
        let base = std::env::temp_dir();
        let pid = std::process::id();
        for n in 0..100 {
            let dir = base.join(format!("cln-autoreload-dev.{pid}.{n}"));
            match std::fs::create_dir(&dir) {
                Ok(()) => {
                    let d = TempDir(dir);
                    std::fs::create_dir(d.0.join("regtest"))?;
                    return Ok(d);
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        Err(std::io::Error::other(format!(
            "{} holds too many cln-autoreload-dev.{pid}.* dirs",
            base.display()
        )))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Parses `--opt` arguments: `NAME=VALUE`, or `NAME` (a flag).
fn parse_opts(opts: &[String]) -> Result<Vec<(String, Option<String>)>, String> {
    opts.iter()
        .map(|o| {
            let o = o.trim_start_matches("--");
            let (name, value) = match o.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (o, None),
            };
            if name.is_empty() {
                return Err(format!(
                    "--opt {o}: give NAME=VALUE (or NAME alone for a flag)"
                ));
            }
            Ok((name.to_string(), value))
        })
        .collect()
}

/// How the dev node prints what it gets.
#[derive(Debug, Clone, Copy)]
struct Ui {
    /// Reading calls from stdin (reloads are announced on stdout) rather
    /// than running `--call`s (stdout holds only their results).
    interactive: bool,
    /// stdin is a terminal: prompt.
    tty: bool,
    /// Print debug log lines too.
    verbose: bool,
}

/// The prompt is shown and nothing typed has been read yet.
static AT_PROMPT: AtomicBool = AtomicBool::new(false);

impl Ui {
    /// Prints a line that arrived by itself (a log line, a reload), and
    /// the prompt again if it was showing.
    fn line(&self, stdout: bool, line: &str) {
        let prompt = self.tty && AT_PROMPT.load(Ordering::Relaxed);
        let cr = if prompt { "\r" } else { "" };
        if stdout {
            out!("{cr}{line}");
        } else {
            err!("{cr}{line}");
        }
        if prompt {
            out_raw!("> ");
            let _ = std::io::stdout().flush();
        }
    }

    fn notification(&self, method: &str, params: &Value) {
        let text = |v: &Value| v.as_str().map_or_else(|| v.to_string(), str::to_owned);
        match method {
            "log" => {
                let level = params
                    .get("level")
                    .and_then(Value::as_str)
                    .unwrap_or("info");
                let message = params.get("message").map(text).unwrap_or_default();
                if matches!(level, "debug" | "trace" | "io") && !self.verbose {
                    return;
                }
                if self.interactive && message.contains("] reloaded (") {
                    return self.line(true, &format!("* {message}"));
                }
                self.line(false, &format!("[{}] {message}", level.to_uppercase()));
                if self.interactive && message.contains("] manifest changed: ") {
                    self.line(
                        true,
                        "* in the dev node, type reregister to register the new manifest",
                    );
                }
            }
            "message" => self.line(
                false,
                &format!(
                    "[message] {}",
                    params.get("message").map(text).unwrap_or_default()
                ),
            ),
            other => self.line(false, &format!("[{other}] {params}")),
        }
    }
}

/// The dev node's side of the host's pipes, shared by the terminal, the
/// rpc socket's connections and the task reading the host's stdout.
struct Node {
    /// To the host's stdin; `None` once closed.
    link: Mutex<Option<Link>>,
    /// Requests sent to the host, by id (its JSON text).
    waiters: Mutex<HashMap<String, oneshot::Sender<Value>>>,
    next_id: AtomicU64,
    /// Methods registered from the host's manifest (as lightningd does).
    methods: OnceLock<BTreeSet<String>>,
    /// Set once the host's stdout has closed.
    closed: watch::Sender<bool>,
    timeout: Duration,
    ui: Ui,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn dev_error(message: impl Into<String>) -> Value {
    json!({"code": DEV_ERROR, "message": message.into()})
}

impl Node {
    /// Sends a request to the host and waits (bounded) for its answer:
    /// the result, or the error object.
    async fn request(&self, id: RawId, method: &str, params: Value) -> Result<Value, Value> {
        let key = id.as_json().to_owned();
        let (tx, rx) = oneshot::channel();
        lock(&self.waiters).insert(key.clone(), tx);
        let sent = match &*lock(&self.link) {
            Some(link) => {
                link.send(jsonrpc::request(&id, method, &params));
                true
            }
            None => false,
        };
        if !sent || *self.closed.borrow() {
            lock(&self.waiters).remove(&key);
            return Err(dev_error("the plugin host is not running"));
        }
        match tokio::time::timeout(self.timeout, rx).await {
            Ok(Ok(answer)) => match answer.get("error") {
                Some(e) => Err(e.clone()),
                None => Ok(answer.get("result").cloned().unwrap_or(Value::Null)),
            },
            Ok(Err(_)) => Err(dev_error(format!(
                "the plugin host exited before answering {method}"
            ))),
            Err(_) => {
                lock(&self.waiters).remove(&key);
                Err(dev_error(format!(
                    "no answer to {method} within {} s (--timeout-secs); it may still be running in the plugin",
                    self.timeout.as_secs()
                )))
            }
        }
    }

    /// A call from the terminal or the rpc socket, answered as lightningd
    /// would: `getinfo` by the node, the plugin's (and host's) methods by
    /// the host, nothing else.
    async fn dispatch(&self, method: &str, params: Value) -> Result<Value, Value> {
        if method == "getinfo" {
            return Ok(json!({
                "id": NODE_ID,
                "alias": ALIAS,
                "network": "regtest",
                "version": LIGHTNINGD_VERSION,
                "blockheight": 0,
            }));
        }
        let methods = self.methods.get();
        if methods.is_some_and(|m| m.contains(method)) {
            let n = self.next_id.fetch_add(1, Ordering::Relaxed);
            let id = RawId::from_string(&format!("cli:{method}#{n}/cln:{method}#{n}"));
            return self.request(id, method, params).await;
        }
        let known: Vec<&str> = methods
            .into_iter()
            .flatten()
            .map(String::as_str)
            .filter(|m| !m.starts_with(HOST_PREFIX))
            .collect();
        Err(json!({
            "code": METHOD_NOT_FOUND,
            "message": format!(
                "Unknown command '{method}': the dev node only knows getinfo and the plugin's methods ({})",
                if known.is_empty() { "none".to_string() } else { known.join(", ") }
            ),
        }))
    }

    /// Sends a notification to the host.
    fn notify(&self, method: &str, params: Value) {
        if let Some(link) = &*lock(&self.link) {
            link.send(jsonrpc::notification(method, params));
        }
    }

    /// Something the host wrote on its stdout.
    fn on_frame(&self, frame: Frame) {
        match frame {
            Frame::Message(Message { raw, kind }) => match kind {
                Kind::Response { id } => {
                    let waiter = lock(&self.waiters).remove(id.as_json());
                    match waiter {
                        Some(tx) => {
                            let _ = tx.send(jsonrpc::parse(&raw).unwrap_or(Value::Null));
                        }
                        None if self.ui.verbose => {
                            err!("[dev] late answer to {id} dropped");
                        }
                        None => {}
                    }
                }
                Kind::Notification { method } => {
                    let params = jsonrpc::parse(&raw)
                        .and_then(|mut v| v.get_mut("params").map(Value::take))
                        .unwrap_or(Value::Null);
                    self.ui.notification(&method, &params);
                }
                Kind::Request { method, .. } => err!(
                    "[dev] the host sent a request ({method}) on stdout, which lightningd would not answer"
                ),
            },
            Frame::Garbage { bytes, reason } => err!(
                "[dev] the host wrote something that is not JSON-RPC ({reason}), which would make lightningd kill it: {}",
                preview(&bytes, 200)
            ),
        }
    }

    /// The host's stdout closed: nothing will be answered any more.
    fn on_closed(&self) {
        self.closed.send_replace(true);
        lock(&self.waiters).clear();
    }
}

/// Everything one run needs once the arguments are checked.
struct Session<'a> {
    opts: &'a Options,
    plugin: PathBuf,
    given: Vec<(String, Option<String>)>,
    ui: Ui,
    lightning_dir: PathBuf,
}

/// Why a host's session ended.
enum End {
    /// Done as asked (EOF, `quit`, or all calls made); failed calls?
    Done { failed: bool },
    /// `reregister`: start a new host, which registers the current manifest.
    Reregister,
    /// A signal.
    Signal(Signal),
    /// The host exited, or never got going.
    Broken,
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

/// The node `lightning-rpc` requests go to (`None` between hosts).
type Current = Arc<Mutex<Option<Arc<Node>>>>;

impl Session<'_> {
    async fn run(self, calls: Vec<(String, Value)>, signals: &mut UnboundedReceiver<Signal>) -> u8 {
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
        let mut lines = self.ui.interactive.then(stdin_lines);
        loop {
            let host = match self.start_host() {
                Ok(h) => h,
                Err(e) => {
                    err!("cln-autoreload dev: {e}");
                    return 1;
                }
            };
            *lock(&current) = Some(host.node.clone());
            let end = tokio::select! {
                end = self.serve(&host.node, &calls, lines.as_mut()) => end,
                Some(sig) = signals.recv() => End::Signal(sig),
            };
            let unexpected = *host.node.closed.borrow();
            let status = shut_down(host).await;
            *lock(&current) = None;
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
        let (link, writer) = link::writer(stdin);
        let node = Arc::new(Node {
            link: Mutex::new(Some(link)),
            waiters: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            methods: OnceLock::new(),
            closed: watch::channel(false).0,
            timeout: self.opts.timeout,
            ui: self.ui,
        });
        let (on_frame, on_close) = (node.clone(), node.clone());
        tokio::spawn(link::read_loop(
            stdout,
            move |f| on_frame.on_frame(f),
            move || on_close.on_closed(),
        ));
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
        let methods: BTreeSet<String> = manifest
            .get("rpcmethods")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|m| m.get("name").and_then(Value::as_str).map(str::to_owned))
            .collect();
        let none = !methods.iter().any(|m| !m.starts_with(HOST_PREFIX));
        let _ = node.methods.set(methods);
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
        let options = match init_options(&manifest, &self.given) {
            Ok(o) => o,
            Err(e) => {
                err!("cln-autoreload dev: {e}");
                return End::Broken;
            }
        };
        let params = json!({
            "options": options,
            "configuration": {
                "lightning-dir": self.lightning_dir.to_string_lossy(),
                "rpc-file": "lightning-rpc",
                "startup": true,
                "network": "regtest",
                "feature_set": {
                    "init": "800898880a8a59a1",
                    "node": "808898880a8a59a1",
                    "channel": "",
                    "invoice": "02000002024100",
                    "bolt12_offer": "",
                    "bolt12_invreq": "",
                    "bolt12_invoice": "020000",
                    "channel_type": "08800000800000",
                },
            },
        });
        if let Err(e) = node
            .request(RawId::from_string("cln:init#2"), "init", params)
            .await
        {
            err!("cln-autoreload dev: init failed: {}", error_text(&e));
            return End::Broken;
        }
        match lines {
            Some(lines) => self.interactive(node, lines, &name, &manifest).await,
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

    /// Runs the terminal's lines, until EOF, `quit` or `reregister`.
    async fn interactive(
        &self,
        node: &Arc<Node>,
        lines: &mut UnboundedReceiver<String>,
        name: &str,
        manifest: &Value,
    ) -> End {
        out!("Type METHOD [key=value ...|value ...|JSON], or help, status, restart, reregister, quit (or Ctrl-D).");
        let mut closed = node.closed.subscribe();
        loop {
            if self.ui.tty {
                out_raw!("> ");
                let _ = std::io::stdout().flush();
                AT_PROMPT.store(true, Ordering::Relaxed);
            }
            let line = tokio::select! {
                line = lines.recv() => line,
                _ = closed.wait_for(|c| *c) => return End::Broken,
            };
            AT_PROMPT.store(false, Ordering::Relaxed);
            let Some(line) = line else {
                if self.ui.tty {
                    out!();
                }
                return End::Done { failed: false };
            };
            let (method, params) = match parse_line(&line) {
                Ok(None) => continue,
                Ok(Some(call)) => call,
                Err(e) => {
                    out!("{e}");
                    continue;
                }
            };
            let plugin_has = |m: &str| node.methods.get().is_some_and(|ms| ms.contains(m));
            let method = match method.as_str() {
                _ if plugin_has(&method) => method,
                "quit" | "exit" => return End::Done { failed: false },
                "reregister" | "autoreload-reregister" => return End::Reregister,
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
}

/// The terminal's lines, read by a thread (plain blocking reads).
fn stdin_lines() -> UnboundedReceiver<String> {
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
    drop(lock(&node.link).take());
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

/// Serves `lightning-rpc`: each request is answered by [`Node::dispatch`].
async fn serve_rpc(listener: UnixListener, current: Current) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(serve_connection(stream, current.clone()));
            }
            Err(e) => {
                err!("[dev] lightning-rpc: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn serve_connection(stream: UnixStream, current: Current) {
    let (mut rd, mut wr) = stream.into_split();
    let (tx, mut rx) = unbounded_channel::<Bytes>();
    tokio::spawn(async move {
        while let Some(answer) = rx.recv().await {
            if wr.write_all(&answer).await.is_err() || wr.write_all(b"\n\n").await.is_err() {
                break;
            }
        }
    });
    let mut framer = Framer::new();
    loop {
        framer.buffer().reserve(64 * 1024);
        match rd.read_buf(framer.buffer()).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        while let Some(frame) = framer.next_frame() {
            let (raw, id, method) = match frame {
                Frame::Message(Message {
                    raw,
                    kind: Kind::Request { id, method },
                }) => (raw, id, method),
                Frame::Message(_) => continue,
                // lightningd, too, drops a client that sends garbage.
                Frame::Garbage { .. } => return,
            };
            let params = jsonrpc::parse(&raw)
                .and_then(|mut v| v.get_mut("params").map(Value::take))
                .unwrap_or(json!({}));
            let (node, tx) = (lock(&current).clone(), tx.clone());
            tokio::spawn(async move {
                let answered = match node {
                    Some(node) => node.dispatch(&method, params).await,
                    None => Err(dev_error("the dev node is restarting the host: call again")),
                };
                let answer = match answered {
                    Ok(result) => jsonrpc::response(&id, result),
                    Err(error) => Bytes::from(format!(
                        r#"{{"jsonrpc":"2.0","id":{},"error":{error}}}"#,
                        id.as_json()
                    )),
                };
                let _ = tx.send(answer);
            });
        }
    }
}

/// The option values init gives: each option's default (as lightningd
/// types it), then the `--opt` values, typed as the option declares.
fn init_options(
    manifest: &Value,
    given: &[(String, Option<String>)],
) -> Result<Map<String, Value>, String> {
    let decls: Vec<&Value> = manifest
        .get("options")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .collect();
    let name_of = |d: &Value| {
        d.get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    let ty_of = |d: &Value| {
        d.get("type")
            .and_then(Value::as_str)
            .unwrap_or("string")
            .to_owned()
    };
    let multi = |d: &Value| d.get("multi") == Some(&Value::Bool(true));
    let mut out = Map::new();
    for d in &decls {
        let ty = ty_of(d);
        let Some(default) = d.get("default").filter(|_| ty != "flag") else {
            continue;
        };
        let v = match default {
            Value::String(s) => typed(&ty, s).unwrap_or_else(|_| default.clone()),
            other => other.clone(),
        };
        out.insert(name_of(d), if multi(d) { json!([v]) } else { v });
    }
    let mut replaced = BTreeSet::new();
    for (name, value) in given {
        let Some(d) = decls.iter().find(|d| name_of(d) == *name) else {
            let mut names: Vec<String> = decls
                .iter()
                .map(|d| name_of(d))
                .filter(|n| !n.starts_with(HOST_PREFIX))
                .collect();
            if names.is_empty() {
                names.push("none".into());
            }
            return Err(format!(
                "--opt {name}: the plugin has no option '{name}' (it has: {}; the host's own are autoreload-*)",
                names.join(", ")
            ));
        };
        let ty = ty_of(d);
        let v = match (ty.as_str(), value.as_deref()) {
            ("flag", None | Some("true")) => Value::Bool(true),
            ("flag", Some("false")) => {
                out.remove(name);
                continue;
            }
            ("flag", Some(_)) => {
                return Err(format!("--opt {name}: a flag takes no value: --opt {name}"))
            }
            (_, None) => return Err(format!("--opt {name}: give a value: --opt {name}=VALUE")),
            (_, Some(s)) => typed(&ty, s).map_err(|e| format!("--opt {name}={s}: {e}"))?,
        };
        if multi(d) {
            if replaced.insert(name.clone()) {
                out.insert(name.clone(), json!([]));
            }
            if let Some(Value::Array(a)) = out.get_mut(name) {
                a.push(v);
            }
        } else {
            out.insert(name.clone(), v);
        }
    }
    Ok(out)
}

/// A value given as text, typed as lightningd types an option's value.
fn typed(ty: &str, s: &str) -> Result<Value, String> {
    match ty {
        "int" => s
            .parse::<i64>()
            .map(Value::from)
            .map_err(|_| "an int option: give a whole number".to_string()),
        "bool" => match s {
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            _ => Err("a bool option: give true or false".to_string()),
        },
        _ => Ok(Value::String(s.to_string())),
    }
}

/// What the manifest offers, compactly: methods, options, and hooks and
/// subscriptions (which the dev node never exercises).
fn summary(name: &str, manifest: &Value) -> String {
    let list = |key: &str| -> Vec<&Value> {
        manifest
            .get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|v| {
                let n = v.get("name").and_then(Value::as_str).unwrap_or("");
                !n.starts_with(HOST_PREFIX)
            })
            .collect()
    };
    let field = |v: &Value, k: &str| -> String {
        match v.get(k) {
            Some(Value::String(s)) => s.lines().next().unwrap_or("").to_string(),
            Some(Value::Null) | None => String::new(),
            Some(other) => other.to_string(),
        }
    };
    let methods = list("rpcmethods");
    let options = list("options");
    let mut out = format!(
        "{name}: {} method{}, {} option{}\n",
        methods.len(),
        if methods.len() == 1 { "" } else { "s" },
        options.len(),
        if options.len() == 1 { "" } else { "s" },
    );
    let rows: Vec<(String, String)> = methods
        .iter()
        .map(|m| {
            let head = format!("{} {}", field(m, "name"), field(m, "usage"));
            (head.trim_end().to_string(), field(m, "description"))
        })
        .collect();
    table(&mut out, &rows);
    if !options.is_empty() {
        out.push_str("options (--opt NAME=VALUE):\n");
        let rows: Vec<(String, String)> = options
            .iter()
            .map(|o| {
                let mut head = format!("{} ({}", field(o, "name"), field(o, "type"));
                if o.get("multi") == Some(&Value::Bool(true)) {
                    head.push_str(", multi");
                }
                if let Some(d) = o.get("default") {
                    head.push_str(&format!(", default {d}"));
                }
                head.push(')');
                (head, field(o, "description"))
            })
            .collect();
        table(&mut out, &rows);
    }
    let names = |key: &str| -> Vec<String> {
        manifest
            .get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|v| match v {
                Value::String(s) => Some(s.clone()),
                other => other.get("name").and_then(Value::as_str).map(str::to_owned),
            })
            .filter(|s| s != "shutdown")
            .collect()
    };
    for (key, what) in [("hooks", "hooks"), ("subscriptions", "subscriptions")] {
        let n = names(key);
        if !n.is_empty() {
            out.push_str(&format!(
                "{what} (the dev node never sends them): {}\n",
                n.join(", ")
            ));
        }
    }
    out
}

fn table(out: &mut String, rows: &[(String, String)]) {
    let width = rows
        .iter()
        .map(|(h, _)| h.chars().count())
        .max()
        .unwrap_or(0);
    for (head, desc) in rows {
        let line = format!("  {head:<width$}  {desc}");
        out.push_str(line.trim_end());
        out.push('\n');
    }
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
}

/// An error object as one or more lines: `error CODE: message`, then its
/// data, if any.
fn error_text(e: &Value) -> String {
    let code = e.get("code").map_or_else(|| "?".into(), Value::to_string);
    let message = match e.get("message") {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => e.to_string(),
    };
    let mut s = format!("error {code}: {message}");
    if let Some(data) = e.get("data") {
        s.push_str(&format!("\n{}", pretty(data)));
    }
    s
}

/// A terminal line: `METHOD [ARGS]`, where ARGS are `key=value` pairs,
/// plain values, or a single JSON object or array. `None` for a blank
/// line.
pub fn parse_line(line: &str) -> Result<Option<(String, Value)>, String> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    let (method, rest) = line
        .split_once(char::is_whitespace)
        .map_or((line, ""), |(m, r)| (m, r.trim()));
    if rest.starts_with(['{', '[']) {
        if let Ok(v @ (Value::Object(_) | Value::Array(_))) = serde_json::from_str(rest) {
            return Ok(Some((method.to_string(), v)));
        }
    }
    let words = split_words(rest)?;
    Ok(Some((method.to_string(), params_from_args(&words)?)))
}

/// Params from separate arguments: a single JSON object or array as is;
/// `key=value` pairs as named params; otherwise positional. A value that
/// parses as JSON is taken as JSON (`1`, `true`, `[1,2]`), else as a
/// string.
pub fn params_from_args(args: &[String]) -> Result<Value, String> {
    if let [one] = args {
        if one.trim_start().starts_with(['{', '[']) {
            // Starting with `{` or `[`, it can only be an object or array.
            return serde_json::from_str(one).map_err(|e| format!("{one}: not JSON ({e})"));
        }
    }
    let value = |s: &str| serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.to_string()));
    fn named(a: &str) -> Option<(&str, &str)> {
        a.split_once('=').filter(|(k, _)| {
            !k.is_empty()
                && k.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        })
    }
    let mut by_name = Map::new();
    let mut by_position = vec![];
    for a in args {
        match named(a) {
            Some((k, v)) => {
                by_name.insert(k.to_string(), value(v));
            }
            None => by_position.push(value(a)),
        }
    }
    match (by_name.is_empty(), by_position.is_empty()) {
        (true, false) => Ok(Value::Array(by_position)),
        (false, false) => Err(
            "give either key=value pairs or plain values, not both (or one JSON object or array)"
                .to_string(),
        ),
        _ => Ok(Value::Object(by_name)),
    }
}

/// Splits a line into words at whitespace; single and double quotes group
/// (and are removed), a backslash escapes the next character outside
/// single quotes.
fn split_words(s: &str) -> Result<Vec<String>, String> {
    let mut words = vec![];
    let mut word: Option<String> = None;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if let Some(w) = word.take() {
                    words.push(w);
                }
            }
            '\'' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => w.push(c),
                        None => return Err("unterminated ' quote".to_string()),
                    }
                }
            }
            '"' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c) => w.push(c),
                            None => return Err("unterminated \" quote".to_string()),
                        },
                        Some(c) => w.push(c),
                        None => return Err("unterminated \" quote".to_string()),
                    }
                }
            }
            '\\' => {
                let w = word.get_or_insert_with(String::new);
                if let Some(c) = chars.next() {
                    w.push(c);
                }
            }
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word);
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(s: &str) -> (String, Value) {
        parse_line(s).unwrap().unwrap()
    }

    #[test]
    fn terminal_lines() {
        assert_eq!(parse_line("   ").unwrap(), None);
        assert_eq!(line("getinfo"), ("getinfo".into(), json!({})));
        assert_eq!(
            line("hello name=world"),
            ("hello".into(), json!({"name": "world"}))
        );
        assert_eq!(
            line("x a=1 b=true c=[1,2]").1,
            json!({"a": 1, "b": true, "c": [1, 2]})
        );
        assert_eq!(
            line("x 1 two \"three four\"").1,
            json!([1, "two", "three four"])
        );
        assert_eq!(
            line(r#"x {"a": [1, 2], "b": "c d"}"#).1,
            json!({"a": [1, 2], "b": "c d"})
        );
        assert_eq!(line(r#"x [1, "two"]"#).1, json!([1, "two"]));
        assert_eq!(line("x msg='hello world'").1, json!({"msg": "hello world"}));
        assert_eq!(line("x url=a=b").1, json!({"url": "a=b"}));
        assert!(parse_line("x a=1 2").is_err());
        assert!(parse_line("x 'open").is_err());
    }

    #[test]
    fn call_args() {
        let args =
            |a: &[&str]| params_from_args(&a.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(args(&[]).unwrap(), json!({}));
        assert_eq!(args(&["a=1"]).unwrap(), json!({"a": 1}));
        assert_eq!(args(&[r#"[1,"two"]"#]).unwrap(), json!([1, "two"]));
        assert_eq!(args(&["x", "2"]).unwrap(), json!(["x", 2]));
        assert!(args(&["{nope"]).is_err());
    }

    #[test]
    fn init_option_types() {
        let manifest: Value = serde_json::from_str(
            r#"{"options": [
                {"name": "s", "type": "string", "default": "dflt", "description": ""},
                {"name": "i", "type": "int", "default": 7, "description": ""},
                {"name": "is", "type": "int", "default": "8", "description": ""},
                {"name": "b", "type": "bool", "default": false, "description": ""},
                {"name": "f", "type": "flag", "default": false, "description": ""},
                {"name": "m", "type": "string", "multi": true, "description": ""},
                {"name": "md", "type": "int", "multi": true, "default": 1, "description": ""},
                {"name": "n", "type": "string", "description": ""}
            ]}"#,
        )
        .unwrap();
        let defaults = init_options(&manifest, &[]).unwrap();
        assert_eq!(
            Value::Object(defaults),
            json!({"s": "dflt", "i": 7, "is": 8, "b": false, "md": [1]})
        );
        let given: Vec<(String, Option<String>)> = [
            ("i", Some("42")),
            ("b", Some("true")),
            ("f", None),
            ("m", Some("a")),
            ("m", Some("b")),
            ("md", Some("5")),
        ]
        .iter()
        .map(|(n, v)| (n.to_string(), v.map(str::to_string)))
        .collect();
        let set = init_options(&manifest, &given).unwrap();
        assert_eq!(
            Value::Object(set),
            json!({"s": "dflt", "i": 42, "is": 8, "b": true, "f": true, "m": ["a", "b"], "md": [5]})
        );
        let bad = |n: &str, v: Option<&str>| {
            init_options(&manifest, &[(n.to_string(), v.map(str::to_string))]).unwrap_err()
        };
        assert!(bad("i", Some("x")).contains("whole number"));
        assert!(bad("b", Some("yes")).contains("true or false"));
        assert!(bad("nope", Some("1")).contains("no option 'nope'"));
        assert!(bad("s", None).contains("give a value"));
    }
}
