//! The host's core, without I/O: everything cln-autoreload decides, as a
//! state machine that takes [`Input`]s (a message from lightningd, one
//! from a plugin instance, a spawn's outcome, a timer, a file change) and
//! queues [`Output`]s (bytes for lightningd, a message for an instance, a
//! process to spawn, a timer to arm). In the style of `quinn-proto` and
//! `rustls`: [`crate::host`] is the loop that feeds it and performs what it
//! asks for; the unit tests feed it by hand, with no process, file or
//! clock.
//!
//! Owns: the start-up handshake with lightningd (getmanifest, init), the
//! dispatch of lightningd's requests and notifications (where they go is
//! [`crate::router`]'s decision), what plugins send back, the host's own
//! rpc methods and shutdown; each plugin's life cycle is in [`lifecycle`].
//! Must not: do I/O of any kind (no channel, process, file, clock or
//! socket: the time comes with each input), or write to lightningd other
//! than through [`Output::ToLightningd`].

pub mod lifecycle;
#[cfg(test)]
mod tests;

use crate::backend::{wasm, BackendKind, InstanceEvent};
use crate::framing::{preview, Frame, Kind, Message, RawId};
use crate::ids::{Epoch, Gen, PluginId};
use crate::init::CachedInit;
use crate::jsonrpc::{self, ErrorKind};
use crate::link::Level;
use crate::locate::{self, Located};
use crate::manifest::{self, Manifest};
use crate::router::{Decision, ReqKind, Request, Router};
use crate::sandbox;
use bytes::Bytes;
pub use lifecycle::{FileStamp, ManagedPlugin, Phase, Trigger};
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

/// The log levels lightningd accepts in a plugin's `log` notification.
const LOG_LEVELS: &[&str] = &["trace", "debug", "info", "warn", "error"];

/// Settings, from the command line first and lightningd's init after.
#[derive(Debug, Clone)]
pub struct Config {
    /// How long a draining generation may take to finish its requests.
    pub grace: Duration,
    /// How long a changed file must stay quiet.
    pub settle: Duration,
    /// How long a stopping generation gets before SIGTERM, and again
    /// before SIGKILL.
    pub stop_timeout: Duration,
    /// lightningd runs with `--developer`: pass it on.
    pub developer: bool,
    /// Sandbox and compiler for wasm plugins.
    pub wasm: wasm::Settings,
    /// Landlock sandbox options for native plugins.
    pub native: sandbox::Options,
    /// lightningd's rpc socket.
    pub rpc_socket: Option<PathBuf>,
    /// Re-register with lightningd by itself when a reload changed what
    /// needs registering.
    pub reregister_on_change: bool,
    /// The directory lightningd started us in (its `<lightning-dir>/<network>`),
    /// which `rpc-file` is relative to.
    pub cwd: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            grace: Duration::from_millis(2000),
            settle: Duration::from_millis(50),
            stop_timeout: Duration::from_millis(1000),
            developer: false,
            wasm: wasm::Settings::default(),
            native: sandbox::Options::default(),
            rpc_socket: None,
            reregister_on_change: false,
            cwd: None,
        }
    }
}

/// Timers a plugin's life cycle sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timer {
    /// A draining generation's grace period is over.
    GraceOver,
    /// A stopping generation lingers: SIGTERM.
    Terminate,
    /// It still lingers: SIGKILL.
    Kill,
    /// A starting generation took too long.
    StartTimeout,
    /// Try starting again (file busy, crash back-off).
    Retry,
    /// A retiring generation's grace period is over: close its stdin.
    RetireGrace(Gen),
    /// A retiring generation lingers: stop it.
    RetireKill(Gen),
    /// A second of a plugin's warnings of this kind is over: say how many
    /// were not logged.
    QuietOver(&'static str),
}

/// Why a spawn failed: the supervisor retries a busy file shortly and
/// reports the rest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpawnError {
    /// The file is still open for writing (a compiler finishing it).
    #[error("it stays open for writing")]
    Busy,
    /// It does not exist (or its `#!` interpreter is missing).
    #[error("does not exist (or its #! interpreter is missing)")]
    NotFound,
    /// It is not executable.
    #[error("is not executable: chmod +x it")]
    NotExecutable,
    /// Anything else, in words.
    #[error("{0}")]
    Other(String),
}

/// Everything the supervisor reacts to.
#[derive(Debug)]
pub enum Input {
    /// A frame from lightningd.
    Lightningd(Frame),
    /// lightningd closed our stdin.
    LightningdClosed,
    /// An instance the supervisor asked for runs.
    Spawned {
        /// Whose.
        plugin: PluginId,
        /// Which generation.
        gen: Gen,
        /// Its process id (native).
        pid: Option<u32>,
        /// The file it was started from, as it was then.
        file: Option<FileStamp>,
    },
    /// An instance the supervisor asked for could not be started.
    SpawnFailed {
        /// Whose.
        plugin: PluginId,
        /// Which generation.
        gen: Gen,
        /// Why.
        error: SpawnError,
    },
    /// A plugin instance reported something.
    Instance {
        /// Whose.
        plugin: PluginId,
        /// Which generation.
        gen: Gen,
        /// What.
        event: InstanceEvent,
    },
    /// A plugin's file (or, with build on save, its sources) changed and
    /// settled: reload it.
    Changed {
        /// Which.
        plugin: PluginId,
        /// The plugin file as it is now.
        file: Option<FileStamp>,
    },
    /// A plugin's timer went off.
    Timer {
        /// Whose.
        plugin: PluginId,
        /// The epoch it was set in.
        epoch: Epoch,
        /// Which.
        timer: Timer,
    },
    /// Shutdown took too long: exit anyway.
    ShutdownDeadline,
    /// The wrapper to re-register through was found and marked changed
    /// (or why not).
    Reregistered {
        /// Who asked (`None`: the host itself, after a reload).
        caller: Option<RawId>,
        /// The wrapper, or why not.
        outcome: Result<PathBuf, String>,
    },
}

/// What to do to one running instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstanceOp {
    /// Write this message to it.
    Send(Bytes),
    /// Close its stdin (the way lightningd tells a plugin to stop).
    CloseStdin,
    /// SIGTERM (native) or stop (wasm).
    Terminate,
    /// SIGKILL its process group, or stop it (wasm).
    Kill,
}

/// What the supervisor asks its loop to do, in order.
#[derive(Debug)]
pub enum Output {
    /// Write this message to lightningd.
    ToLightningd(Bytes),
    /// Start an instance of a plugin; answer with [`Input::Spawned`] or
    /// [`Input::SpawnFailed`], and report what it does as
    /// [`Input::Instance`].
    Spawn {
        /// Whose.
        plugin: PluginId,
        /// Which generation it will be.
        gen: Gen,
        /// The plugin file.
        path: PathBuf,
        /// How it runs.
        backend: BackendKind,
        /// Its sandbox (wasm).
        wasm: Option<wasm::Settings>,
        /// Its Landlock sandbox (native), if any.
        native: Option<sandbox::Spec>,
    },
    /// Do something to a running instance (nothing, if it is gone).
    Instance {
        /// Whose.
        plugin: PluginId,
        /// Which generation.
        gen: Gen,
        /// What.
        op: InstanceOp,
    },
    /// Feed back [`Input::Timer`] after `after`.
    Timer {
        /// Whose.
        plugin: PluginId,
        /// The plugin's epoch now.
        epoch: Epoch,
        /// Which.
        timer: Timer,
        /// When.
        after: Duration,
    },
    /// Feed back [`Input::ShutdownDeadline`] after this long.
    ShutdownDeadline(Duration),
    /// Watch these plugin files and send [`Input::Changed`] when one
    /// changes and settles.
    WatchFiles(Vec<(PluginId, PathBuf)>),
    /// Stop watching anything.
    StopWatching,
    /// Set up build on save with these `autoreload-build` and
    /// `autoreload-watch` values.
    SetUpBuilds {
        /// `autoreload-build` values.
        builds: Vec<String>,
        /// `autoreload-watch` values.
        watches: Vec<String>,
    },
    /// Find the wrapper lightningd started the host from and mark it
    /// changed; answer with [`Input::Reregistered`].
    FindWrapper {
        /// Who asked.
        caller: Option<RawId>,
        /// lightningd's rpc socket.
        socket: PathBuf,
        /// The managed plugins' paths (to recognize the host's entry).
        managed: Vec<PathBuf>,
    },
    /// Ask lightningd to `plugin start` the wrapper (which restarts the
    /// host), shortly, so the answers already sent reach it first.
    RestartThrough {
        /// lightningd's rpc socket.
        socket: PathBuf,
        /// The wrapper.
        wrapper: PathBuf,
    },
    /// Answer `autoreload-status` with these entries, after adding what
    /// the loop knows of each plugin (its builds, its native sandbox).
    Status {
        /// The caller.
        id: RawId,
        /// Each chosen plugin and its entry.
        entries: Vec<(PluginId, Value)>,
    },
    /// Every plugin is down after a shutdown: exit.
    Exit,
}

/// Where the handshake with lightningd is.
#[derive(Debug)]
enum Startup {
    /// Waiting for lightningd's getmanifest.
    NotStarted,
    /// Plugins are answering getmanifest; lightningd waits on `id`.
    Manifest { id: RawId },
    /// Manifest sent; waiting for lightningd's init.
    WaitInit,
    /// Plugins are answering init; lightningd waits on `id`.
    Init { id: RawId },
    /// Up and running.
    Done,
}

/// The plugins, indexed by [`PluginId`].
#[derive(Debug, Default)]
pub struct Plugins(Vec<ManagedPlugin>);

impl Plugins {
    /// Every plugin's id, in order.
    pub fn ids(&self) -> impl Iterator<Item = PluginId> {
        (0..self.0.len()).map(PluginId)
    }

    /// How many there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Every plugin, in order.
    pub fn iter(&self) -> impl Iterator<Item = &ManagedPlugin> {
        self.0.iter()
    }
}

impl std::ops::Index<PluginId> for Plugins {
    type Output = ManagedPlugin;
    fn index(&self, p: PluginId) -> &ManagedPlugin {
        &self.0[p.0]
    }
}

impl std::ops::IndexMut<PluginId> for Plugins {
    fn index_mut(&mut self, p: PluginId) -> &mut ManagedPlugin {
        &mut self.0[p.0]
    }
}

impl crate::router::Plugins for Plugins {
    fn current(&self, p: PluginId) -> Option<&Manifest> {
        self[p].current_manifest()
    }
    fn name(&self, p: PluginId) -> &str {
        &self[p].name
    }
    fn count(&self) -> usize {
        self.len()
    }
}

/// The queue of [`Output`]s, with the two the supervisor queues most
/// named for what they are.
#[derive(Debug, Default)]
pub struct Outbox(VecDeque<Output>);

impl Outbox {
    /// Bytes for lightningd.
    pub fn send(&mut self, msg: Bytes) {
        self.0.push_back(Output::ToLightningd(msg));
    }

    /// A line in lightningd's log.
    pub fn log(&mut self, level: Level, message: impl AsRef<str>) {
        self.send(jsonrpc::notification(
            "log",
            json!({"level": level.as_str(), "message": message.as_ref()}),
        ));
    }

    /// Anything else.
    pub fn push(&mut self, o: Output) {
        self.0.push_back(o);
    }
}

/// All of the host's state: the core the loop drives.
#[derive(Debug)]
pub struct Supervisor {
    pub(crate) config: Config,
    pub(crate) out: Outbox,
    pub(crate) plugins: Plugins,
    pub(crate) router: Router,
    pub(crate) init: Option<CachedInit>,
    pub(crate) getmanifest_params: Value,
    reregistering: bool,
    startup: Startup,
    shutting_down: bool,
    located: Option<Located>,
    /// The time of the input being handled.
    pub(crate) now: Instant,
    /// When the supervisor was made, by both clocks: the wall-clock time
    /// of an [`Instant`] for `autoreload-status`.
    t0: Instant,
    t0_wall: SystemTime,
}

impl Supervisor {
    /// A supervisor that will manage the plugins `located` names once
    /// lightningd asks for the manifest (`None`: none were found).
    pub fn new(
        config: Config,
        located: Option<Located>,
        now: Instant,
        wall: SystemTime,
    ) -> Supervisor {
        let mut config = config;
        // lightningd's default; init may name another.
        if config.rpc_socket.is_none() {
            config.rpc_socket = config.cwd.as_ref().map(|d| d.join("lightning-rpc"));
        }
        Supervisor {
            config,
            out: Outbox::default(),
            plugins: Plugins::default(),
            router: Router::default(),
            init: None,
            getmanifest_params: json!({}),
            reregistering: false,
            startup: Startup::NotStarted,
            shutting_down: false,
            located,
            now,
            t0: now,
            t0_wall: wall,
        }
    }

    /// Handles one input at `now`; what it calls for is then in
    /// [`Supervisor::poll_output`].
    pub fn handle(&mut self, now: Instant, input: Input) {
        self.now = self.now.max(now);
        match input {
            Input::Lightningd(Frame::Message(m)) => self.on_lightningd_message(m),
            Input::Lightningd(Frame::Garbage { bytes, reason }) => self.out.log(
                Level::Warn,
                format!(
                    "ignored input from lightningd that is not JSON-RPC ({reason}): {}",
                    preview(&bytes, 200)
                ),
            ),
            Input::LightningdClosed => self.begin_shutdown(),
            Input::Spawned {
                plugin,
                gen,
                pid,
                file,
            } => self.spawned(plugin, gen, pid, file),
            Input::SpawnFailed { plugin, gen, error } => self.spawn_failed(plugin, gen, error),
            Input::Instance { plugin, gen, event } => self.on_instance(plugin, gen, event),
            Input::Changed { plugin, file } => {
                if !self.shutting_down {
                    self.reload_for(
                        plugin,
                        lifecycle::Pending::at(Trigger::FileChanged, now),
                        file,
                    );
                }
            }
            Input::Timer {
                plugin,
                epoch,
                timer,
            } => self.on_timer(plugin, epoch, timer),
            Input::Reregistered { caller, outcome } => self.on_reregister(caller, outcome),
            Input::ShutdownDeadline => {
                self.out
                    .log(Level::Warn, "plugins did not stop in time: killed");
                self.out.push(Output::Exit);
            }
        }
    }

    /// The next thing to do, in the order the supervisor decided them.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.0.pop_front()
    }

    /// The plugins under its care.
    pub fn plugins(&self) -> &Plugins {
        &self.plugins
    }

    /// Whether lightningd told it to shut down.
    pub fn shutting_down(&self) -> bool {
        self.shutting_down
    }

    /// The settings in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The wall-clock time of `t`.
    pub(crate) fn wall(&self, t: Instant) -> SystemTime {
        self.t0_wall + t.saturating_duration_since(self.t0)
    }

    /// Queues `timer` for plugin `p` after `d`, tagged with its current
    /// epoch.
    pub(crate) fn after(&mut self, d: Duration, p: PluginId, timer: Timer) {
        let epoch = self.plugins[p].epoch;
        self.out.push(Output::Timer {
            plugin: p,
            epoch,
            timer,
            after: d,
        });
    }

    /// Queues something to do to one instance.
    pub(crate) fn instance(&mut self, plugin: PluginId, gen: Gen, op: InstanceOp) {
        self.out.push(Output::Instance { plugin, gen, op });
    }

    fn on_lightningd_message(&mut self, m: Message) {
        match m.kind.clone() {
            Kind::Request { id, method } => self.on_request(id, method, m),
            Kind::Notification { method } => self.on_notification(&method, m),
            Kind::Response { id } => self.out.log(
                Level::Debug,
                format!("ignored a response from lightningd to {id}"),
            ),
        }
    }

    fn on_request(&mut self, id: RawId, method: String, m: Message) {
        match method.as_str() {
            "getmanifest" => return self.on_getmanifest(id, &m),
            "init" => return self.on_init(id, &m),
            "autoreload-status" => return self.status(id, &m),
            "autoreload-restart" => return self.restart_method(id, &m),
            "autoreload-reregister" => return self.reregister(Some(id)),
            _ => {}
        }
        if self.shutting_down {
            let msg = "cln-autoreload is shutting down";
            return self
                .out
                .send(jsonrpc::error(&id, ErrorKind::ShuttingDown, msg));
        }
        let raw = m.raw.clone();
        let decision = self.router.route(
            &method,
            || jsonrpc::parse(&raw).and_then(|v| v.get("params").cloned()),
            &self.plugins,
        );
        let req = |kind| Request {
            id: id.clone(),
            method: method.clone(),
            raw: m.raw.clone(),
            kind,
            chain: vec![],
            crashes: 0,
        };
        match decision {
            Decision::Call(p) => self.dispatch_to(p, req(ReqKind::Rpc)),
            Decision::SetConfig { owner, name, val } => {
                let ty = self.plugins[owner]
                    .registered
                    .as_ref()
                    .and_then(|m| m.option(&name))
                    .map(|o| o.ty.clone());
                if let (Some(init), Some(ty), Some(val)) = (self.init.as_mut(), ty, val) {
                    init.set(&ty, &name, &val);
                }
                self.dispatch_to(owner, req(ReqKind::Rpc));
            }
            Decision::Hook(chain) => {
                let mut r = req(ReqKind::Hook(method.clone()));
                r.chain = chain;
                self.hook_continues(r);
            }
            Decision::Answer(v) => self.out.send(jsonrpc::response(&id, v)),
            Decision::Refuse(kind, msg) => self.out.send(jsonrpc::error(&id, kind, &msg)),
        }
    }

    fn on_notification(&mut self, method: &str, m: Message) {
        if method == "shutdown" {
            return self.begin_shutdown();
        }
        let mut sends = vec![];
        for p in self.router.subscribers(method, &self.plugins) {
            let plugin = &mut self.plugins[p];
            // While a wasm swap starts the next instance, the old one
            // still serves: it gets them (the next one has not finished
            // init, when lightningd would not send it any either).
            match &plugin.phase {
                Phase::Serving { gen }
                | Phase::Swapping { gen, .. }
                | Phase::Draining { gen, .. } => sends.push((p, gen.number)),
                _ => plugin.dropped_notifications += 1,
            }
        }
        for (p, gen) in sends {
            self.instance(p, gen, InstanceOp::Send(m.raw.clone()));
        }
    }

    /// A message from plugin `p`'s current generation, other than its
    /// start-up answers.
    pub(crate) fn on_plugin_message(&mut self, p: PluginId, number: Gen, m: Message) {
        let name = self.plugins[p].name.clone();
        match &m.kind {
            Kind::Response { id } => {
                let Some(f) = self.router.answered(p, number, id) else {
                    let w = format!("[{name}] answered {id}, which nobody asked it (or it answered twice): dropped");
                    return self.plugin_warn(p, "response", w);
                };
                if let ReqKind::Hook(hook) = &f.request.kind {
                    let answer = jsonrpc::parse(&m.raw);
                    let error = answer.as_ref().and_then(|v| v.get("error"));
                    if let Some(err) = error.filter(|_| !f.request.kind.must_reach_plugin()) {
                        self.out.log(
                            Level::Warn,
                            format!("[{name}] answered the {hook} hook with an error, which would make lightningd abort: taken as continue. The error: {err}"),
                        );
                        self.hook_continues(f.request);
                        return self.check_drained(p);
                    }
                    if !f.request.kind.must_reach_plugin() {
                        if let Some(why) = answer.as_ref().and_then(bad_hook_result) {
                            self.out.log(
                                Level::Warn,
                                format!("[{name}] answered the {hook} hook with {why}, which lightningd would reject (it aborts on most hooks): taken as continue. A hook answers {{\"result\": \"continue\"}} or one of the hook's own verbs. The answer: {}", preview(&m.raw, 300)),
                            );
                            self.hook_continues(f.request);
                            return self.check_drained(p);
                        }
                    }
                    let goes_on = answer
                        .as_ref()
                        .and_then(|v| v.pointer("/result/result"))
                        .is_some_and(|r| r == "continue");
                    if goes_on && !f.request.chain.is_empty() {
                        self.hook_continues(f.request);
                        return self.check_drained(p);
                    }
                }
                self.out.send(m.raw);
                self.check_drained(p);
            }
            Kind::Notification { method } => {
                // lightningd kills a plugin for a notification it cannot
                // use (no params, a log level it does not know, a message
                // for no request): such a one is logged here instead.
                let v = jsonrpc::parse(&m.raw).unwrap_or(Value::Null);
                let params = v.get("params").filter(|p| p.is_object());
                let Some(params) = params else {
                    let w = format!("[{name}] sent a '{method}' notification without \"params\" object (lightningd would have killed it for this): dropped: {}", preview(&m.raw, 200));
                    return self.plugin_warn(p, "notification", w);
                };
                match method.as_str() {
                    "log" => {
                        let text = params
                            .get("message")
                            .map(|t| t.as_str().map_or_else(|| t.to_string(), str::to_owned))
                            .unwrap_or_default();
                        let (level, text) = match params.get("level") {
                            None => ("info", text),
                            Some(Value::String(l)) if LOG_LEVELS.contains(&l.as_str()) => (l.as_str(), text),
                            Some(Value::String(l)) if l == "unusual" => ("warn", text),
                            Some(Value::String(l)) if l == "broken" => ("error", text),
                            Some(Value::String(l)) if l == "io" => ("debug", text),
                            Some(l) => (
                                "warn",
                                format!("(log level {l} is not one of {}: lightningd would have killed it for this) {text}", LOG_LEVELS.join(", ")),
                            ),
                        };
                        // Once the host closed its stdin, what it says is
                        // its way out (cln-plugin warns "Error reading from
                        // master"), caused by the reload: debug. An error
                        // stays an error.
                        let (level, text) = match level {
                            "info" | "warn" if self.plugins[p].stdin_closed(number) => (
                                "debug",
                                format!("(generation {number}, stopping; said at {level}) {text}"),
                            ),
                            _ => (level, text),
                        };
                        self.out.send(jsonrpc::notification(
                            "log",
                            json!({"level": level, "message": format!("[{name}] {text}")}),
                        ));
                    }
                    "message" | "progress" if params.get("id").is_none() => {
                        let w = format!("[{name}] sent a '{method}' notification without \"params.id\" (the request it is about; lightningd would have killed it for this): dropped");
                        self.plugin_warn(p, "notification", w)
                    }
                    "message" | "progress" => self.out.send(m.raw),
                    custom => {
                        let declared = self.plugins[p]
                            .registered
                            .as_ref()
                            .is_some_and(|r| r.notifications.iter().any(|n| n == custom));
                        if declared {
                            self.out.send(m.raw);
                        } else {
                            let w = format!("[{name}] sent notification '{custom}' that its registered manifest does not declare: dropped");
                            self.plugin_warn(p, "notification", w);
                        }
                    }
                }
            }
            Kind::Request { id, method } => {
                let w = format!("[{name}] sent a request ({method}) on stdout; plugins call lightningd over its rpc socket instead");
                self.plugin_warn(p, "request", w);
                let msg =
                    "plugins cannot send requests on stdout: use lightningd's lightning-rpc socket";
                if let Some(g) = self.plugins[p].phase.generation() {
                    let gen = g.number;
                    self.instance(
                        p,
                        gen,
                        InstanceOp::Send(jsonrpc::error(id, ErrorKind::Protocol, msg)),
                    );
                }
            }
        }
    }

    /// A hook goes on to the next plugin of its chain, or, at the end of
    /// the chain, lightningd is told to continue.
    pub(crate) fn hook_continues(&mut self, mut req: Request) {
        if req.chain.is_empty() {
            return self.out.send(jsonrpc::hook_continue(&req.id));
        }
        let next = req.chain.remove(0);
        self.dispatch_to(next, req);
    }

    fn check_drained(&mut self, p: PluginId) {
        if matches!(self.plugins[p].phase, Phase::Draining { .. }) && self.router.count(p) == 0 {
            self.drained(p);
        }
    }

    fn on_getmanifest(&mut self, id: RawId, m: &Message) {
        if !matches!(self.startup, Startup::NotStarted) {
            let msg = "getmanifest was already answered";
            return self.out.send(jsonrpc::error(&id, ErrorKind::Protocol, msg));
        }
        self.getmanifest_params = jsonrpc::parse(&m.raw)
            .and_then(|v| v.get("params").cloned())
            .unwrap_or(json!({}));
        let Some(located) = self.located.clone() else {
            let why = "no plugin to manage: start lightningd with --autoreload-plugin=PATH (or put autoreload-plugin=PATH in its config, or set AUTORELOAD_PLUGIN=PATH); cln-autoreload disables itself";
            self.out.log(Level::Warn, why);
            let mut manifest = manifest::merged(&[]);
            manifest["disable"] = json!(why);
            self.startup = Startup::Done;
            return self.out.send(jsonrpc::response(&id, manifest));
        };
        for note in &located.notes {
            self.out.log(Level::Info, note);
        }
        // lightningd may call hooks before init (db_write): a plugin starts
        // with the directories (wasm) and the sandbox (native) the user
        // gave it, read where the plugin paths were, so init need not
        // replace it (init's values decide from then on).
        let early = || located.early.iter().map(|(n, v)| (n.as_str(), v.as_str()));
        self.config.wasm.dirs = early()
            .filter(|(n, _)| *n == locate::WASM_DIR)
            .map(|(_, d)| wasm::GrantedDir::parse(d))
            .collect();
        self.config.native = sandbox::Options::from_pairs(early());
        for path in &located.paths {
            self.out.log(
                Level::Info,
                format!("managing {} (found in {})", path.display(), located.source),
            );
            self.plugins.0.push(ManagedPlugin::new(path.clone()));
        }
        self.startup = Startup::Manifest { id };
        let pending = lifecycle::Pending::at(Trigger::Startup, self.now);
        for p in self.plugins.ids() {
            self.start(p, pending);
        }
        self.startup_progress();
    }

    fn on_init(&mut self, id: RawId, m: &Message) {
        let params = jsonrpc::parse(&m.raw)
            .and_then(|v| v.get("params").cloned())
            .unwrap_or(json!({}));
        let cached = CachedInit::new(&params);
        let ms = |name| {
            cached
                .host_option(name)
                .and_then(Value::as_u64)
                .map(Duration::from_millis)
        };
        if let Some(g) = ms("autoreload-grace-ms") {
            self.config.grace = g;
        }
        if let Some(s) = ms("autoreload-settle-ms") {
            self.config.settle = s;
        }
        if let Some(t) = ms("autoreload-wasm-request-timeout-ms") {
            self.config.wasm.request_timeout = t;
        }
        if let Some(mb) = cached
            .host_option("autoreload-wasm-max-memory-mb")
            .and_then(Value::as_u64)
        {
            self.config.wasm.max_memory = usize::try_from(mb)
                .unwrap_or(usize::MAX / 2)
                .saturating_mul(1 << 20);
        }
        if let Some(c) = cached
            .host_option("autoreload-wasm-compiler")
            .and_then(Value::as_str)
        {
            match wasm::Compiler::parse(c) {
                Some(c) => self.config.wasm.compiler = c,
                None => self.out.log(
                    Level::Warn,
                    format!(
                        "autoreload-wasm-compiler={c} is neither winch nor cranelift: using winch"
                    ),
                ),
            }
        }
        let strings = |name| -> Vec<String> {
            match cached.host_option(name) {
                Some(Value::Array(a)) => a
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect(),
                Some(Value::String(s)) => vec![s.clone()],
                _ => vec![],
            }
        };
        self.config.wasm.dirs = strings("autoreload-wasm-dir")
            .iter()
            .map(|d| wasm::GrantedDir::parse(d))
            .collect();
        let (builds, watches) = (strings("autoreload-build"), strings("autoreload-watch"));
        let mut native = sandbox::Options::default();
        for name in [
            sandbox::OPT_SANDBOX,
            sandbox::OPT_ALLOW,
            sandbox::OPT_NET,
            sandbox::OPT_ENV,
        ] {
            for v in strings(name) {
                native.push(name, v);
            }
        }
        let names: Vec<String> = self.plugins.iter().map(|p| p.name.clone()).collect();
        for w in native.check(&names) {
            self.out.log(Level::Warn, w);
        }
        self.config.native = native;
        let allow = strings("autoreload-wasm-rpc-allow");
        self.config.wasm.rpc_allow = (!allow.is_empty()).then_some(allow);
        let conf = params.get("configuration");
        let rpc_file = conf
            .and_then(|c| c.get("rpc-file"))
            .and_then(Value::as_str)
            .unwrap_or("lightning-rpc");
        // rpc-file is relative to lightningd's cwd, which is ours.
        self.config.rpc_socket = self.config.cwd.as_ref().map(|d| d.join(rpc_file));
        if let Some(b) = cached
            .host_option("autoreload-reregister-on-change")
            .and_then(Value::as_bool)
        {
            self.config.reregister_on_change = b;
        }
        if let (Some(given), Some(located)) =
            (cached.host_option("autoreload-plugin"), &self.located)
        {
            if located.source == locate::Source::Lightningd {
                let n = given.as_array().map_or(1, Vec::len);
                if n != located.paths.len() {
                    self.out.log(
                        Level::Warn,
                        format!("lightningd passed {n} autoreload-plugin value(s) but {} were found on its command line and config: {given}", located.paths.len()),
                    );
                }
            }
        }
        self.init = Some(cached);
        if !matches!(self.startup, Startup::WaitInit) {
            let msg = "init out of order";
            return self.out.send(jsonrpc::error(&id, ErrorKind::Protocol, msg));
        }
        self.startup = Startup::Init { id };
        let files = self
            .plugins
            .ids()
            .map(|p| (p, self.plugins[p].path.clone()))
            .collect();
        self.out.push(Output::WatchFiles(files));
        self.out.push(Output::SetUpBuilds { builds, watches });
        for p in self.plugins.ids() {
            self.init_started(p);
        }
        self.startup_progress();
    }

    /// Answers lightningd's getmanifest or init once every plugin is past
    /// that step.
    pub(crate) fn startup_progress(&mut self) {
        match &self.startup {
            Startup::Manifest { id }
                if self.plugins.iter().all(ManagedPlugin::manifest_settled) =>
            {
                let id = id.clone();
                self.register_manifests();
                let registered: Vec<Option<&Manifest>> =
                    self.plugins.iter().map(|p| p.registered.as_ref()).collect();
                self.router = Router::new(&registered);
                let present: Vec<&Manifest> = registered.iter().flatten().copied().collect();
                if present.is_empty() {
                    self.out.log(
                        Level::Warn,
                        "no managed plugin answered getmanifest: only cln-autoreload's own methods are registered. Fix the plugin, then restart lightningd to register its methods",
                    );
                }
                let merged = manifest::merged(&present);
                self.out.send(jsonrpc::response(&id, merged));
                self.startup = Startup::WaitInit;
            }
            Startup::Init { id } if self.plugins.iter().all(ManagedPlugin::init_settled) => {
                let answer = jsonrpc::response(id, json!({}));
                self.out.send(answer);
                self.startup = Startup::Done;
            }
            _ => {}
        }
    }

    /// Decides what lightningd registers: each plugin's manifest, unless
    /// it declares a method or option an earlier plugin already has
    /// (lightningd would refuse it); such a plugin is refused, with a
    /// message naming both.
    fn register_manifests(&mut self) {
        let mut accepted: Vec<PluginId> = vec![];
        for p in self.plugins.ids() {
            let Some(m) = self.plugins[p].current_manifest().cloned() else {
                continue;
            };
            let clashes: Vec<String> = accepted
                .iter()
                .filter_map(|&q| {
                    let theirs = self.plugins[q].registered.as_ref()?;
                    let c = manifest::conflicts(theirs, &m);
                    (!c.is_empty())
                        .then(|| format!("{} (already {}'s)", c.join(", "), self.plugins[q].name))
                })
                .collect();
            if clashes.is_empty() {
                self.plugins[p].registered = Some(m);
                accepted.push(p);
            } else {
                let why = format!(
                    "refused: it declares {}; lightningd allows each name once. Rename them in one of the plugins and restart lightningd",
                    clashes.join("; ")
                );
                self.refuse(p, why);
            }
        }
    }

    /// Makes lightningd register the plugins' current manifests, by
    /// restarting the host through its wrapper (see
    /// [`crate::reregister`]).
    pub(crate) fn reregister(&mut self, caller: Option<RawId>) {
        let registered: Vec<&Manifest> = self
            .plugins
            .iter()
            .filter_map(|p| p.registered.as_ref())
            .collect();
        let check = if self.reregistering {
            Err("a re-registration is already under way".to_string())
        } else if manifest::merged(&registered)["dynamic"] != Value::Bool(true) {
            Err("lightningd keeps a non-dynamic plugin registered as it started: a plugin declares \"dynamic\": false. Restart lightningd".into())
        } else if self.shutting_down {
            Err("shutting down".into())
        } else {
            self.config
                .rpc_socket
                .clone()
                .ok_or_else(|| "lightningd's rpc socket is not known".to_string())
        };
        match check {
            Ok(socket) => {
                self.reregistering = true;
                let managed = self.plugins.iter().map(|p| p.path.clone()).collect();
                self.out.push(Output::FindWrapper {
                    caller,
                    socket,
                    managed,
                });
            }
            Err(why) => self.on_reregister(caller, Err(why)),
        }
    }

    fn on_reregister(&mut self, caller: Option<RawId>, outcome: Result<PathBuf, String>) {
        match outcome {
            Ok(wrapper) => {
                let msg = format!(
                    "re-registering: lightningd restarts cln-autoreload from {}, which registers the plugins' current manifests; calls in flight at that moment get error -4",
                    wrapper.display()
                );
                self.out.log(Level::Info, &msg);
                if let Some(id) = caller {
                    self.out.send(jsonrpc::response(
                        &id,
                        json!({"wrapper": wrapper, "message": msg}),
                    ));
                }
                if let Some(socket) = self.config.rpc_socket.clone() {
                    self.out.push(Output::RestartThrough { socket, wrapper });
                }
            }
            Err(why) => {
                self.reregistering = false;
                self.out
                    .log(Level::Warn, format!("cannot re-register: {why}"));
                if let Some(id) = caller {
                    self.out.send(jsonrpc::error(
                        &id,
                        ErrorKind::ReregisterFailed,
                        &format!("cannot re-register: {why}"),
                    ));
                }
            }
        }
    }

    fn find_plugin(&self, params: Option<&Value>) -> Result<PluginId, String> {
        let arg = params.and_then(|p| match p {
            Value::Array(a) => a.first().cloned(),
            Value::Object(o) => o.get("plugin").cloned(),
            _ => None,
        });
        let names = || {
            self.plugins
                .iter()
                .map(|p| p.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        match arg {
            None | Some(Value::Null) if self.plugins.len() == 1 => Ok(PluginId(0)),
            None | Some(Value::Null) => Err(format!("which plugin? one of: {}", names())),
            Some(Value::String(s)) => self
                .plugins
                .ids()
                .find(|&p| {
                    self.plugins[p].name == s || self.plugins[p].path.as_os_str() == s.as_str()
                })
                .ok_or_else(|| format!("no managed plugin '{s}'; managed: {}", names())),
            Some(other) => Err(format!("plugin must be a name, not {other}")),
        }
    }

    fn status(&mut self, id: RawId, m: &Message) {
        let params = jsonrpc::parse(&m.raw).and_then(|v| v.get("params").cloned());
        let has_arg = match &params {
            Some(Value::Array(a)) => !a.is_empty(),
            Some(Value::Object(o)) => o.contains_key("plugin"),
            _ => false,
        };
        let chosen: Vec<PluginId> = if has_arg {
            match self.find_plugin(params.as_ref()) {
                Ok(p) => vec![p],
                Err(e) => {
                    return self
                        .out
                        .send(jsonrpc::error(&id, ErrorKind::InvalidParams, &e))
                }
            }
        } else {
            self.plugins.ids().collect()
        };
        let entries = chosen
            .into_iter()
            .map(|p| (p, self.plugin_status(p)))
            .collect();
        self.out.push(Output::Status { id, entries });
    }

    fn restart_method(&mut self, id: RawId, m: &Message) {
        if self.shutting_down {
            return self.out.send(jsonrpc::error(
                &id,
                ErrorKind::ShuttingDown,
                "shutting down",
            ));
        }
        let params = jsonrpc::parse(&m.raw).and_then(|v| v.get("params").cloned());
        match self.find_plugin(params.as_ref()) {
            Ok(p) => self.restart(p, id),
            Err(e) => self
                .out
                .send(jsonrpc::error(&id, ErrorKind::InvalidParams, &e)),
        }
    }

    fn begin_shutdown(&mut self) {
        if self.shutting_down {
            return;
        }
        self.shutting_down = true;
        self.out.push(Output::StopWatching);
        for p in self.plugins.ids() {
            self.shut_down(p);
        }
        self.out
            .push(Output::ShutdownDeadline(self.config.stop_timeout * 3));
        self.shutdown_progress();
    }

    /// Exits once every plugin is down.
    pub(crate) fn shutdown_progress(&mut self) {
        if self.shutting_down
            && self
                .plugins
                .iter()
                .all(|p| matches!(p.phase, Phase::Down { .. }))
        {
            self.out.push(Output::Exit);
        }
    }
}

/// What is wrong with a hook's answer that lightningd cannot act on, if
/// anything: every hook's answer is an object with a `result` verb
/// (`rpc_command` may instead `replace` the command or `return` an answer).
/// Unknown verbs are left to lightningd: which verbs a hook takes is its
/// business, and a newer lightningd may know more.
fn bad_hook_result(answer: &Value) -> Option<String> {
    let Some(result) = answer.get("result") else {
        return Some("neither \"result\" nor \"error\"".into());
    };
    let Some(obj) = result.as_object() else {
        return Some(format!(
            "a result that is not an object ({})",
            kind_of(result)
        ));
    };
    match obj.get("result") {
        Some(Value::String(_)) => None,
        Some(other) => Some(format!(
            "a \"result\" verb that is not a string ({})",
            kind_of(other)
        )),
        None if obj.contains_key("replace") || obj.contains_key("return") => None,
        None => Some("no \"result\" verb in its result".into()),
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
