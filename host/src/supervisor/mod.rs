//! The host's core, without I/O: everything cln-autoreload decides, as a
//! state machine that takes [`Input`]s (a message from lightningd, one
//! from a plugin instance, a spawn's outcome, a file change) and the time
//! ([`Supervisor::handle_timeout`], when [`Supervisor::poll_timeout`] says)
//! and queues [`Output`]s (bytes for lightningd, a message for an
//! instance, a process to spawn). In the style of `quinn-proto` and
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

mod events;
mod handshake;
mod instance;
pub mod lifecycle;
mod methods;
pub mod plugin;
mod requests;
#[cfg(test)]
mod tests;
mod timers;

use crate::backend::wasm;
use crate::framing::{preview, Frame, Kind, Message, RawId};
use crate::ids::{Gen, PluginId};
use crate::init::CachedInit;
use crate::jsonrpc::{self, ErrorKind};
use crate::link::Level;
use crate::locate::Located;
use crate::manifest::Manifest;
use crate::options;
use crate::router::{Decision, ReqKind, Request, Router};
use crate::sandbox;
use bytes::Bytes;
pub use events::{Input, InstanceOp, Output, Sandbox, Source, Spawn, SpawnError, Timer};
pub use plugin::{FileStamp, ManagedPlugin, Phase, Trigger};
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

/// How many notifications a plugin's next version gets once it has
/// answered init (those that came while no version could take them);
/// more are dropped, and counted.
const HELD_NOTIFICATIONS: usize = 10_000;

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
    /// How long a new version may take to answer getmanifest, and then
    /// init.
    pub start_timeout: Duration,
    /// `autoreload-overlap` values: `[PLUGIN::]MODE`.
    pub overlap: lifecycle::Overlap,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            grace: options::GRACE_MS.default.millis(),
            settle: options::SETTLE_MS.default.millis(),
            stop_timeout: Duration::from_millis(1000),
            developer: false,
            wasm: wasm::Settings::default(),
            native: sandbox::Options::default(),
            rpc_socket: None,
            reregister_on_change: options::REREGISTER_ON_CHANGE.default.bool(),
            cwd: None,
            start_timeout: options::START_TIMEOUT_MS.default.millis(),
            overlap: lifecycle::Overlap::default(),
        }
    }
}

/// Where the handshake with lightningd is.
#[derive(Debug)]
pub(super) enum Startup {
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
        self.send(jsonrpc::log(level.as_str(), message.as_ref()));
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
    timers: timers::Timers,
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
            timers: timers::Timers::default(),
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
                    self.reload_for(plugin, plugin::Pending::at(Trigger::FileChanged, now), file);
                }
            }
            Input::Optimized {
                plugin,
                gen,
                outcome,
            } => self.optimized(plugin, gen, outcome),
            Input::Reregistered { caller, outcome } => self.on_reregister(caller, outcome),
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
            match plugin.phase() {
                Phase::Serving { gen }
                | Phase::Swapping { gen, .. }
                | Phase::Draining { gen, .. } => sends.push((p, gen.number)),
                // A new version is on its way (the old one has stopped, or
                // crashed): it gets them once it has answered init.
                Phase::Starting { .. }
                | Phase::Stopping {
                    then: plugin::Then::Start(_) | plugin::Then::Init { .. },
                    ..
                } if plugin.held_notifications.len() < HELD_NOTIFICATIONS => plugin
                    .held_notifications
                    .push_back((method.to_owned(), m.raw.clone())),
                _ => plugin.dropped_notifications += 1,
            }
        }
        for (p, gen) in sends {
            self.instance(p, gen, InstanceOp::Send(m.raw.clone()));
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
        self.shutdown_deadline(self.config.stop_timeout * 3);
        self.shutdown_progress();
    }

    /// Exits once every plugin is down.
    pub(crate) fn shutdown_progress(&mut self) {
        if self.shutting_down
            && self
                .plugins
                .iter()
                .all(|p| matches!(p.phase(), Phase::Down { .. }))
        {
            self.out.push(Output::Exit);
        }
    }
}
