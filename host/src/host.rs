//! The host's event loop: one task owns all state and handles, one at a
//! time, everything that happens: lightningd's messages, plugins' output
//! and exits, file changes and timers.
//!
//! Owns: the start-up handshake with lightningd (getmanifest, init), the
//! dispatch of lightningd's requests and notifications, what plugins send
//! back, the host's own rpc methods, and shutdown. Must not: block (all
//! I/O happens in tasks that talk to it over channels), or write to stdout
//! other than through the [`Link`].

use crate::backend::{wasm, BackendKind, InstanceEvent};
use crate::framing::{preview, Frame, Kind, Message, RawId};
use crate::init::CachedInit;
use crate::jsonrpc::{self, ErrorKind};
use crate::link::{Level, Link};
use crate::locate::{self, Located};
use crate::manifest::{self, Manifest};
use crate::rebuild;
use crate::reregister;
use crate::router::{PluginId, ReqKind, Request, Route, Router};
use crate::rpc;
use crate::sandbox;
use crate::supervisor::{ManagedPlugin, Pending, Phase, Trigger};
use crate::watch;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};

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
    /// Landlock sandbox for native plugins.
    pub native: sandbox::Settings,
    /// lightningd's rpc socket.
    pub rpc_socket: Option<PathBuf>,
    /// Re-register with lightningd by itself when a reload changed what
    /// needs registering.
    pub reregister_on_change: bool,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            grace: Duration::from_millis(2000),
            settle: Duration::from_millis(50),
            stop_timeout: Duration::from_millis(1000),
            developer: false,
            wasm: wasm::Settings::default(),
            native: sandbox::Settings::default(),
            rpc_socket: None,
            reregister_on_change: false,
        }
    }
}

/// Timers a plugin's life cycle sets.
#[derive(Debug, Clone, Copy)]
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
    RetireGrace(u64),
    /// A retiring generation lingers: stop it.
    RetireKill(u64),
    /// A second of a plugin's warnings of this kind is over: say how many
    /// were not logged.
    QuietOver(&'static str),
}

/// Everything the event loop reacts to.
#[derive(Debug)]
pub enum Event {
    /// A frame from lightningd.
    Lightningd(Frame),
    /// lightningd closed our stdin.
    LightningdClosed,
    /// A plugin instance reported something.
    Instance {
        plugin: PluginId,
        generation: u64,
        event: InstanceEvent,
    },
    /// A plugin's file changed and settled.
    FileChanged(PluginId),
    /// A plugin's timer.
    Timer {
        plugin: PluginId,
        epoch: u64,
        timer: Timer,
    },
    /// A plugin's sources changed and settled.
    SourcesChanged {
        plugin: PluginId,
        change: watch::Change,
    },
    /// What to build for a plugin was inferred (or why not).
    BuildSpec {
        plugin: PluginId,
        spec: Result<rebuild::Spec, String>,
    },
    /// A plugin's build ended.
    BuildDone {
        plugin: PluginId,
        outcome: rebuild::Outcome,
    },
    /// Shutdown took too long: exit anyway.
    ShutdownDeadline,
    /// The wrapper to re-register through was found and marked changed
    /// (or why not).
    Reregister {
        caller: Option<RawId>,
        outcome: Result<PathBuf, String>,
    },
}

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

/// All of the host's state, owned by the event loop.
pub struct Host {
    pub(crate) config: Config,
    pub(crate) link: Link,
    pub(crate) events: UnboundedSender<Event>,
    pub(crate) plugins: Vec<ManagedPlugin>,
    pub(crate) router: Router,
    pub(crate) init: Option<CachedInit>,
    pub(crate) getmanifest_params: Value,
    pub(crate) retry_pending: Vec<Option<Pending>>,
    reregistering: bool,
    startup: Startup,
    shutting_down: bool,
    exit: bool,
    argv: Vec<PathBuf>,
    located: Option<Located>,
    watcher: Option<watch::Watcher>,
    /// When the host started: a source saved after it may not have been
    /// seen by the plugin's first generation.
    started: SystemTime,
}

impl Host {
    /// A host that will manage the plugins it finds once lightningd asks
    /// for the manifest. `argv` are plugin paths given on its command line.
    pub fn new(
        mut config: Config,
        argv: Vec<PathBuf>,
        link: Link,
        events: UnboundedSender<Event>,
    ) -> Host {
        // lightningd's default; init may name another (relative to its cwd,
        // which is ours).
        config.rpc_socket = std::env::current_dir()
            .ok()
            .map(|d| d.join("lightning-rpc"));
        Host {
            config,
            link,
            events,
            plugins: vec![],
            router: Router::default(),
            init: None,
            getmanifest_params: json!({}),
            retry_pending: vec![],
            reregistering: false,
            startup: Startup::NotStarted,
            shutting_down: false,
            exit: false,
            argv,
            located: None,
            watcher: None,
            started: SystemTime::now(),
        }
    }

    /// Runs until lightningd shuts us down.
    pub async fn run(mut self, mut rx: UnboundedReceiver<Event>) {
        while let Some(ev) = rx.recv().await {
            self.handle(ev);
            if self.exit {
                break;
            }
        }
        // Whatever is still running dies with us.
        for p in &self.plugins {
            if let Some(g) = p.phase.generation() {
                g.instance_kill();
            }
        }
    }

    fn handle(&mut self, ev: Event) {
        match ev {
            Event::Lightningd(Frame::Message(m)) => self.on_lightningd_message(m),
            Event::Lightningd(Frame::Garbage { bytes, reason }) => self.link.log(
                Level::Warn,
                format!(
                    "ignored input from lightningd that is not JSON-RPC ({reason}): {}",
                    preview(&bytes, 200)
                ),
            ),
            Event::LightningdClosed => self.begin_shutdown(),
            Event::Instance {
                plugin,
                generation,
                event,
            } => {
                if matches!(
                    event,
                    InstanceEvent::Message(_)
                        | InstanceEvent::Garbage { .. }
                        | InstanceEvent::Stderr(_)
                ) {
                    crate::backend::backlog().handled();
                }
                self.on_instance(plugin, generation, event)
            }
            Event::FileChanged(p) => {
                if !self.shutting_down {
                    self.reload(p, Trigger::FileChanged);
                }
            }
            Event::Timer {
                plugin,
                epoch,
                timer,
            } => self.on_timer(plugin, epoch, timer),
            Event::Reregister { caller, outcome } => self.on_reregister(caller, outcome),
            Event::SourcesChanged { plugin, change } => self.on_sources_changed(plugin, change),
            Event::BuildSpec { plugin, spec } => self.on_build_spec(plugin, spec),
            Event::BuildDone { plugin, outcome } => self.on_build_done(plugin, outcome),
            Event::ShutdownDeadline => {
                self.link
                    .log(Level::Warn, "plugins did not stop in time: killed");
                self.exit = true;
            }
        }
    }

    /// Sends `timer` for plugin `p` after `d`, tagged with its current
    /// epoch.
    pub(crate) fn after(&self, d: Duration, p: PluginId, timer: Timer) {
        let tx = self.events.clone();
        let epoch = self.plugins[p].epoch;
        tokio::spawn(async move {
            tokio::time::sleep(d).await;
            let _ = tx.send(Event::Timer {
                plugin: p,
                epoch,
                timer,
            });
        });
    }

    fn on_lightningd_message(&mut self, m: Message) {
        match m.kind.clone() {
            Kind::Request { id, method } => self.on_request(id, method, m),
            Kind::Notification { method } => self.on_notification(&method, m),
            Kind::Response { id } => self.link.log(
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
                .link
                .send(jsonrpc::error(&id, ErrorKind::ShuttingDown, msg));
        }
        let params = || jsonrpc::parse(&m.raw).and_then(|v| v.get("params").cloned());
        let req = |kind| Request {
            id: id.clone(),
            method: method.clone(),
            raw: m.raw.clone(),
            kind,
            chain: vec![],
            crashes: 0,
        };
        match method.as_str() {
            "check" => {
                let cmd = params().and_then(|p| match p {
                    Value::Array(a) => a.first().and_then(Value::as_str).map(str::to_owned),
                    Value::Object(o) => o
                        .get("command_to_check")
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                    _ => None,
                });
                match cmd.as_deref().map(|c| (c, self.router.method(c))) {
                    Some((_, Route::Plugin(p))) => self.dispatch_to(p, req(ReqKind::Rpc)),
                    Some((c, Route::Unknown)) if c.starts_with(manifest::HOST_PREFIX) => self
                        .link
                        .send(jsonrpc::response(&id, json!({"command_to_check": c}))),
                    _ => self.link.send(jsonrpc::error(
                        &id,
                        ErrorKind::UnknownMethod,
                        "check: unknown command",
                    )),
                }
            }
            "setconfig" => {
                let p = params();
                let name = p
                    .as_ref()
                    .and_then(|p| p.get("config"))
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                let owner = name.as_deref().and_then(|n| self.router.option(n));
                match (name, owner) {
                    (Some(name), Some(owner)) => {
                        let ty = self.plugins[owner]
                            .registered
                            .as_ref()
                            .and_then(|m| m.option(&name))
                            .map(|o| o.ty.clone());
                        if let (Some(init), Some(ty), Some(val)) = (
                            self.init.as_mut(),
                            ty,
                            p.as_ref().and_then(|p| p.get("val")),
                        ) {
                            init.set(&ty, &name, val);
                        }
                        self.dispatch_to(owner, req(ReqKind::Rpc));
                    }
                    _ => self.link.send(jsonrpc::error(
                        &id,
                        ErrorKind::InvalidParams,
                        "setconfig: not an option of a managed plugin",
                    )),
                }
            }
            _ => {
                let owners = self.router.hook(&method).to_vec();
                if !owners.is_empty() {
                    // Filters matter only for these two hooks.
                    let filtered = matches!(method.as_str(), "rpc_command" | "custommsg");
                    let hook_params = if filtered { params() } else { None };
                    let must = ReqKind::Hook(method.clone()).must_reach_plugin();
                    // The plugins whose current version still has the hook
                    // and wants this call, in the order given.
                    let chain: Vec<PluginId> = owners
                        .into_iter()
                        .filter(|&p| {
                            must || self.plugins[p].current_manifest().is_some_and(|m| {
                                manifest::hook_wants(m, &method, hook_params.as_ref())
                            })
                        })
                        .collect();
                    let mut r = req(ReqKind::Hook(method.clone()));
                    r.chain = chain;
                    return self.hook_continues(r);
                }
                match self.router.method(&method) {
                    Route::Plugin(p) => {
                        let still = self.plugins[p]
                            .current_manifest()
                            .is_some_and(|m| m.methods.contains_key(&method));
                        if still {
                            self.dispatch_to(p, req(ReqKind::Rpc));
                        } else {
                            let msg = format!(
                                "{method} was removed by the new version of {}; lightningd keeps it registered until it re-registers the plugin: call autoreload-reregister (or restart lightningd)",
                                self.plugins[p].name
                            );
                            self.link
                                .send(jsonrpc::error(&id, ErrorKind::RemovedMethod, &msg));
                        }
                    }
                    Route::Unknown => {
                        let msg =
                            format!("cln-autoreload: no managed plugin has a method '{method}'");
                        self.link
                            .send(jsonrpc::error(&id, ErrorKind::UnknownMethod, &msg));
                    }
                }
            }
        }
    }

    fn on_notification(&mut self, method: &str, m: Message) {
        if method == "shutdown" {
            return self.begin_shutdown();
        }
        for plugin in &mut self.plugins {
            if !plugin
                .current_manifest()
                .is_some_and(|man| man.subscribes(method))
            {
                continue;
            }
            // While a wasm swap starts the next instance, the old one
            // still serves: it gets them (the next one has not finished
            // init, when lightningd would not send it any either).
            match &plugin.phase {
                Phase::Serving { gen }
                | Phase::Swapping { gen, .. }
                | Phase::Draining { gen, .. } => gen.send(m.raw.clone()),
                _ => plugin.dropped_notifications += 1,
            }
        }
    }

    /// A message from plugin `p`'s current generation, other than its
    /// start-up answers.
    pub(crate) fn on_plugin_message(&mut self, p: PluginId, number: u64, m: Message) {
        let name = &self.plugins[p].name;
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
                        self.link.log(
                            Level::Warn,
                            format!("[{name}] answered the {hook} hook with an error, which would make lightningd abort: taken as continue. The error: {err}"),
                        );
                        self.hook_continues(f.request);
                        return self.check_drained(p);
                    }
                    if !f.request.kind.must_reach_plugin() {
                        if let Some(why) = answer.as_ref().and_then(bad_hook_result) {
                            self.link.log(
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
                self.link.send(m.raw);
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
                        self.link.send(jsonrpc::notification(
                            "log",
                            json!({"level": level, "message": format!("[{name}] {text}")}),
                        ));
                    }
                    "message" | "progress" if params.get("id").is_none() => {
                        let w = format!("[{name}] sent a '{method}' notification without \"params.id\" (the request it is about; lightningd would have killed it for this): dropped");
                        self.plugin_warn(p, "notification", w)
                    }
                    "message" | "progress" => self.link.send(m.raw),
                    custom => {
                        let declared = self.plugins[p]
                            .registered
                            .as_ref()
                            .is_some_and(|r| r.notifications.iter().any(|n| n == custom));
                        if declared {
                            self.link.send(m.raw);
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
                    g.send(jsonrpc::error(id, ErrorKind::Protocol, msg));
                }
            }
        }
    }

    /// A hook goes on to the next plugin of its chain, or, at the end of
    /// the chain, lightningd is told to continue.
    pub(crate) fn hook_continues(&mut self, mut req: Request) {
        if req.chain.is_empty() {
            return self.link.send(jsonrpc::hook_continue(&req.id));
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
            return self
                .link
                .send(jsonrpc::error(&id, ErrorKind::Protocol, msg));
        }
        self.getmanifest_params = jsonrpc::parse(&m.raw)
            .and_then(|v| v.get("params").cloned())
            .unwrap_or(json!({}));
        let ctx = locate::Context::from_process(self.argv.iter().map(|p| p.into()).collect());
        let Some(located) = locate::locate(&ctx) else {
            let why = "no plugin to manage: start lightningd with --autoreload-plugin=PATH (or put autoreload-plugin=PATH in its config, or set AUTORELOAD_PLUGIN=PATH); cln-autoreload disables itself";
            self.link.log(Level::Warn, why);
            let mut manifest = manifest::merged(&[]);
            manifest["disable"] = json!(why);
            self.startup = Startup::Done;
            return self.link.send(jsonrpc::response(&id, manifest));
        };
        for note in &located.notes {
            self.link.log(Level::Info, note);
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
        self.config.native.options = sandbox::Options::from_pairs(early());
        for path in &located.paths {
            self.link.log(
                Level::Info,
                format!("managing {} (found in {})", path.display(), located.source),
            );
            self.plugins.push(ManagedPlugin::new(path.clone()));
            self.retry_pending.push(None);
        }
        self.located = Some(located);
        self.startup = Startup::Manifest { id };
        let pending = Pending::now(Trigger::Startup);
        for p in 0..self.plugins.len() {
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
                None => self.link.log(
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
            self.link.log(Level::Warn, w);
        }
        self.config.native.options = native;
        let allow = strings("autoreload-wasm-rpc-allow");
        self.config.wasm.rpc_allow = (!allow.is_empty()).then_some(allow);
        let conf = params.get("configuration");
        let rpc_file = conf
            .and_then(|c| c.get("rpc-file"))
            .and_then(Value::as_str)
            .unwrap_or("lightning-rpc");
        // rpc-file is relative to lightningd's cwd, which is ours.
        self.config.rpc_socket = std::env::current_dir().ok().map(|d| d.join(rpc_file));
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
                    self.link.log(
                        Level::Warn,
                        format!("lightningd passed {n} autoreload-plugin value(s) but {} were found on its command line and config: {given}", located.paths.len()),
                    );
                }
            }
        }
        self.init = Some(cached);
        if !matches!(self.startup, Startup::WaitInit) {
            let msg = "init out of order";
            return self
                .link
                .send(jsonrpc::error(&id, ErrorKind::Protocol, msg));
        }
        self.startup = Startup::Init { id };
        self.start_watching();
        self.setup_builds(&builds, &watches);
        for p in 0..self.plugins.len() {
            self.init_started(p);
        }
        self.startup_progress();
    }

    /// Works out, for each plugin, what a change of its sources means: a
    /// build (given, or inferred for a cargo artifact), or a reload (a
    /// Python plugin's modules, or `autoreload-watch` without a build).
    fn setup_builds(&mut self, builds: &[String], watches: &[String]) {
        let names: Vec<String> = self.plugins.iter().map(|p| p.name.clone()).collect();
        let (builds, w1) = rebuild::bind(builds, &names);
        let (watches, w2) = rebuild::bind(watches, &names);
        for w in w1.into_iter().chain(w2) {
            self.link.log(Level::Warn, w);
        }
        for p in 0..self.plugins.len() {
            let path = self.plugins[p].path.clone();
            let command = builds[p].last().cloned().filter(|c| c != "none");
            let explicit = command.is_some() || !watches[p].is_empty();
            if builds[p].last().is_some_and(|c| c == "none") && watches[p].is_empty() {
                continue;
            }
            if explicit {
                let cwd = rebuild::project_dir(&path);
                let watch = if watches[p].is_empty() {
                    vec![cwd.clone()]
                } else {
                    watches[p].iter().map(|w| cwd.join(w)).collect()
                };
                let spec = rebuild::Spec {
                    command,
                    ignore: vec![cwd.join("target"), path.clone()],
                    cwd,
                    watch,
                    extensions: vec![],
                    inferred: false,
                };
                self.on_build_spec(p, Ok(spec));
            } else if path.extension().is_some_and(|e| e == "py") {
                let dir = path
                    .parent()
                    .map(Path::to_path_buf)
                    .unwrap_or_else(|| PathBuf::from("/"));
                let spec = rebuild::Spec {
                    command: None,
                    cwd: dir.clone(),
                    watch: vec![dir],
                    ignore: vec![path.clone()],
                    extensions: vec!["py".into()],
                    inferred: true,
                };
                self.on_build_spec(p, Ok(spec));
            } else if let Some(artifact) = rebuild::cargo_artifact(&path) {
                let tx = self.events.clone();
                tokio::spawn(async move {
                    let spec = rebuild::infer_cargo(&artifact).await;
                    let _ = tx.send(Event::BuildSpec { plugin: p, spec });
                });
            }
        }
    }

    fn on_build_spec(&mut self, p: PluginId, spec: Result<rebuild::Spec, String>) {
        let name = self.plugins[p].name.clone();
        let mut spec = match spec {
            Ok(s) => s,
            Err(why) => {
                return self
                    .link
                    .log(Level::Info, format!("[{name}] no build on save: {why}"));
            }
        };
        // Every managed plugin's own file is the file watcher's business:
        // saving one plugin must not rebuild or reload another that lives
        // in the same directory.
        for other in &self.plugins {
            if !spec.ignore.contains(&other.path) {
                spec.ignore.push(other.path.clone());
            }
        }
        // Sources saved while nothing watched count once watching starts:
        // those newer than the plugin file, for a build (edited while
        // lightningd was down, or while the host started); those newer
        // than the host, for a reload.
        let changed_after = if spec.command.is_some() {
            let path = &self.plugins[p].path;
            Some(
                std::fs::metadata(path)
                    .and_then(|m| m.modified())
                    .unwrap_or(SystemTime::UNIX_EPOCH),
            )
        } else {
            Some(self.started)
        };
        let trees = spec
            .watch
            .iter()
            .map(|dir| watch::Tree {
                key: p,
                dir: dir.clone(),
                ignore: spec.ignore.clone(),
                extensions: spec.extensions.clone(),
                changed_after,
            })
            .collect();
        let tx = self.events.clone();
        match watch::watch_trees(trees, self.config.settle, move |plugin, change| {
            let _ = tx.send(Event::SourcesChanged { plugin, change });
        }) {
            Ok((w, problems)) => {
                for problem in problems {
                    self.link.log(Level::Warn, format!("[{name}] {problem}"));
                }
                self.plugins[p].build.watcher = Some(w);
            }
            Err(e) => {
                return self.link.log(
                    Level::Warn,
                    format!("[{name}] cannot watch its sources: {e}"),
                )
            }
        }
        let dirs: Vec<String> = spec.watch.iter().map(|d| d.display().to_string()).collect();
        self.link.log(
            Level::Info,
            match &spec.command {
                Some(c) => format!(
                    "[{name}] on a change in {}: {c} (in {})",
                    dirs.join(", "),
                    spec.cwd.display()
                ),
                None => format!("[{name}] a change in {} reloads it", dirs.join(", ")),
            },
        );
        self.plugins[p].build.spec = Some(spec);
    }

    fn on_sources_changed(&mut self, p: PluginId, change: watch::Change) {
        if self.shutting_down {
            return;
        }
        let name = self.plugins[p].name.clone();
        let b = &mut self.plugins[p].build;
        let Some(spec) = &b.spec else { return };
        let names = change.describe(&spec.cwd);
        let what = if change.at_start {
            format!("sources changed since it was built ({names})")
        } else {
            format!("sources changed ({names})")
        };
        let Some(command) = spec.command.clone() else {
            self.link
                .log(Level::Debug, format!("[{name}] {what}: reloading"));
            return self.reload(p, Trigger::FileChanged);
        };
        if b.running {
            // One more build once this one is done, however many saves.
            b.again
                .get_or_insert_with(watch::Change::default)
                .merge(change);
            return;
        }
        b.running = true;
        b.count += 1;
        let cwd = spec.cwd.clone();
        self.link
            .log(Level::Info, format!("[{name}] {what}: {command}"));
        let tx = self.events.clone();
        tokio::spawn(async move {
            let outcome = rebuild::run(&command, &cwd).await;
            let _ = tx.send(Event::BuildDone { plugin: p, outcome });
        });
    }

    fn on_build_done(&mut self, p: PluginId, outcome: rebuild::Outcome) {
        let name = self.plugins[p].name.clone();
        let secs = outcome.duration.as_secs_f64();
        if outcome.ok {
            self.link.log(
                Level::Info,
                format!("[{name}] build succeeded in {secs:.1} s"),
            );
            for line in &outcome.lines {
                self.link
                    .log(Level::Debug, format!("[{name}] build: {line}"));
            }
        } else {
            self.link.log(
                Level::Warn,
                format!(
                    "[{name}] build failed ({}) in {secs:.1} s; the running version keeps serving:",
                    outcome.status
                ),
            );
            for line in &outcome.lines {
                self.link
                    .log(Level::Warn, format!("[{name}] build: {line}"));
            }
        }
        let b = &mut self.plugins[p].build;
        b.running = false;
        b.last = Some(outcome);
        if let Some(change) = b.again.take() {
            self.on_sources_changed(p, change);
        }
    }

    fn start_watching(&mut self) {
        let files: Vec<(PluginId, PathBuf)> = self
            .plugins
            .iter()
            .enumerate()
            .map(|(i, p)| (i, p.path.clone()))
            .collect();
        let tx = self.events.clone();
        match watch::watch(&files, self.config.settle, move |p| {
            let _ = tx.send(Event::FileChanged(p));
        }) {
            Ok((w, problems)) => {
                for problem in problems {
                    self.link.log(
                        Level::Warn,
                        format!("{problem}: changes there will not reload anything"),
                    );
                }
                self.watcher = Some(w);
            }
            Err(e) => self.link.log(
                Level::Warn,
                format!("cannot watch files ({e}): reload with autoreload-restart"),
            ),
        }
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
                    self.link.log(
                        Level::Warn,
                        "no managed plugin answered getmanifest: only cln-autoreload's own methods are registered. Fix the plugin, then restart lightningd to register its methods",
                    );
                }
                self.link
                    .send(jsonrpc::response(&id, manifest::merged(&present)));
                self.startup = Startup::WaitInit;
            }
            Startup::Init { id } if self.plugins.iter().all(ManagedPlugin::init_settled) => {
                self.link.send(jsonrpc::response(id, json!({})));
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
        for p in 0..self.plugins.len() {
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
    /// restarting the host through its wrapper (see [`reregister`]).
    pub(crate) fn reregister(&mut self, caller: Option<RawId>) {
        let refuse = |why: String| -> Result<PathBuf, String> { Err(why) };
        let registered: Vec<&Manifest> = self
            .plugins
            .iter()
            .filter_map(|p| p.registered.as_ref())
            .collect();
        let check = if self.reregistering {
            refuse("a re-registration is already under way".into())
        } else if manifest::merged(&registered)["dynamic"] != Value::Bool(true) {
            refuse("lightningd keeps a non-dynamic plugin registered as it started: a plugin declares \"dynamic\": false. Restart lightningd".into())
        } else if self.shutting_down {
            refuse("shutting down".into())
        } else {
            self.config
                .rpc_socket
                .clone()
                .ok_or_else(|| "lightningd's rpc socket is not known".to_string())
        };
        let socket = match check {
            Ok(s) => s,
            Err(why) => return self.on_reregister(caller, Err(why)),
        };
        self.reregistering = true;
        let managed: Vec<PathBuf> = self.plugins.iter().map(|p| p.path.clone()).collect();
        let tx = self.events.clone();
        tokio::spawn(async move {
            let outcome = async {
                let list = rpc::call(&socket, "plugin", json!({"subcommand": "list"}))
                    .await
                    .map_err(|e| format!("{e:#}"))?;
                let exe = std::env::current_exe()
                    .map_err(|e| format!("cannot tell its own path: {e}"))?;
                let wrapper = reregister::find_wrapper(&list, &exe, &managed)?;
                let stamp = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_millis() as u64)
                    .unwrap_or(0);
                reregister::mark_changed(&wrapper, stamp)
                    .map_err(|e| format!("cannot change {}: {e}", wrapper.display()))?;
                Ok(wrapper)
            }
            .await;
            let _ = tx.send(Event::Reregister { caller, outcome });
        });
    }

    fn on_reregister(&mut self, caller: Option<RawId>, outcome: Result<PathBuf, String>) {
        match outcome {
            Ok(wrapper) => {
                let msg = format!(
                    "re-registering: lightningd restarts cln-autoreload from {}, which registers the plugins' current manifests; calls in flight at that moment get error -4",
                    wrapper.display()
                );
                self.link.log(Level::Info, &msg);
                if let Some(id) = caller {
                    self.link.send(jsonrpc::response(
                        &id,
                        json!({"wrapper": wrapper, "message": msg}),
                    ));
                }
                let Some(socket) = self.config.rpc_socket.clone() else {
                    return;
                };
                let tx = self.events.clone();
                tokio::spawn(async move {
                    // Let the answer above reach lightningd before it kills us.
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    let r = rpc::call(
                        &socket,
                        "plugin",
                        json!({"subcommand": "start", "plugin": wrapper}),
                    )
                    .await;
                    if let Err(e) = r {
                        let _ = tx.send(Event::Reregister {
                            caller: None,
                            outcome: Err(format!("lightningd refused to restart it: {e:#}")),
                        });
                    }
                });
            }
            Err(why) => {
                self.reregistering = false;
                self.link
                    .log(Level::Warn, format!("cannot re-register: {why}"));
                if let Some(id) = caller {
                    self.link.send(jsonrpc::error(
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
            None | Some(Value::Null) if self.plugins.len() == 1 => Ok(0),
            None | Some(Value::Null) => Err(format!("which plugin? one of: {}", names())),
            Some(Value::String(s)) => self
                .plugins
                .iter()
                .position(|p| p.name == s || p.path.as_os_str() == s.as_str())
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
                        .link
                        .send(jsonrpc::error(&id, ErrorKind::InvalidParams, &e))
                }
            }
        } else {
            (0..self.plugins.len()).collect()
        };
        let list: Vec<Value> = chosen
            .iter()
            .map(|&p| {
                let mut s = self.plugins[p].status(self.router.count(p));
                if self.plugins[p].backend == BackendKind::Native {
                    s["sandbox"] = self.config.native.status(p, &self.plugins[p].name);
                }
                s
            })
            .collect();
        self.link
            .send(jsonrpc::response(&id, json!({ "plugins": list })));
    }

    fn restart_method(&mut self, id: RawId, m: &Message) {
        if self.shutting_down {
            return self.link.send(jsonrpc::error(
                &id,
                ErrorKind::ShuttingDown,
                "shutting down",
            ));
        }
        let params = jsonrpc::parse(&m.raw).and_then(|v| v.get("params").cloned());
        match self.find_plugin(params.as_ref()) {
            Ok(p) => self.restart(p, id),
            Err(e) => self
                .link
                .send(jsonrpc::error(&id, ErrorKind::InvalidParams, &e)),
        }
    }

    fn begin_shutdown(&mut self) {
        if self.shutting_down {
            return;
        }
        self.shutting_down = true;
        self.watcher = None;
        for p in 0..self.plugins.len() {
            self.shut_down(p);
        }
        let tx = self.events.clone();
        let deadline = self.config.stop_timeout * 3;
        tokio::spawn(async move {
            tokio::time::sleep(deadline).await;
            let _ = tx.send(Event::ShutdownDeadline);
        });
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
            self.exit = true;
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
