//! The life cycle of each managed plugin: start, serve, reload, drain,
//! crash, back off, stop.
//!
//! Owns: each plugin's state in one place ([`ManagedPlugin`]): its
//! [`Phase`] and the transitions between phases, the generations being
//! retired, the queue of requests held while no generation can take them,
//! the restart due on a timer, and the figures `autoreload-status`
//! reports. Must not: do I/O (what it does to an instance, a timer it
//! needs, a spawn, goes out as an [`Output`]), parse lightningd's traffic
//! or decide routes; the rest of the supervisor hands it requests and
//! events.
//!
//! Native plugins reload break-before-make: the old process may hold
//! something exclusive (a port, a lock), so it finishes its requests in
//! flight (within the grace period), is stopped, and only then does the new
//! one start; requests that arrive meanwhile wait in the held queue.
//! WebAssembly plugins reload make-before-break: the old instance serves
//! until the new one has answered init, then retires, finishing what it has
//! in flight; if the new one fails, the old one simply stays.

use super::{InstanceOp, Output, SpawnError, Supervisor, Timer};
use crate::backend::{wasm, BackendKind, Exit, InstanceEvent};
use crate::framing::{preview, Kind, Message, RawId};
use crate::ids::{Epoch, Gen, PluginId};
use crate::init::CachedInit;
use crate::jsonrpc::{self, ErrorKind};
use crate::link::Level;
use crate::manifest::{Diff, Manifest};
use crate::router::{ReqKind, Request};
use crate::sandbox;
pub use crate::watch::FileStamp;
use serde_json::{json, Value};
use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

/// Why a plugin (re)starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// lightningd started the host.
    Startup,
    /// Its file changed.
    FileChanged,
    /// `autoreload-restart`.
    Restart,
    /// The previous generation exited on its own.
    Crash,
}

impl Trigger {
    fn as_str(self) -> &'static str {
        match self {
            Trigger::Startup => "start-up",
            Trigger::FileChanged => "file changed",
            Trigger::Restart => "autoreload-restart",
            Trigger::Crash => "crash",
        }
    }
}

/// A (re)start on its way: what asked for it and since when.
#[derive(Debug, Clone, Copy)]
pub struct Pending {
    trigger: Trigger,
    since: Instant,
}

impl Pending {
    /// A (re)start asked for at `since`.
    pub fn at(trigger: Trigger, since: Instant) -> Pending {
        Pending { trigger, since }
    }
}

/// One running instance of the plugin.
#[derive(Debug)]
pub struct Generation {
    /// Which one.
    pub number: Gen,
    /// Its process (native), once it runs.
    pid: Option<u32>,
    /// Its manifest, once it answered getmanifest.
    manifest: Option<Manifest>,
    /// Its last stderr lines, to explain a crash.
    stderr_tail: VecDeque<String>,
    /// The sandbox it runs in.
    sandbox: SandboxUsed,
    /// Which file it was started from, once it runs.
    file: Option<FileStamp>,
}

/// The sandbox a generation was started in: init may give another, and a
/// generation that waits for init in the wrong one is replaced.
#[derive(Debug, Clone, PartialEq)]
enum SandboxUsed {
    Wasm(wasm::Settings),
    Native(Option<sandbox::Spec>),
}

impl Generation {
    fn subscribes(&self, topic: &str) -> bool {
        self.manifest.as_ref().is_some_and(|m| m.subscribes(topic))
    }
}

/// Where a generation is in its start-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// getmanifest sent.
    Manifest,
    /// Manifest received; lightningd has not sent init yet.
    WaitInit,
    /// init sent.
    Init,
}

/// What a managed plugin is doing.
#[derive(Debug)]
pub enum Phase {
    /// Not running. Requests are answered on its behalf (or held while a
    /// restart is due shortly).
    Down { reason: String },
    /// A generation is starting and none serves; requests are held.
    Starting {
        gen: Generation,
        step: Step,
        pending: Pending,
    },
    /// A generation is serving; requests go to it.
    Serving { gen: Generation },
    /// (wasm) `gen` serves while `next` starts.
    Swapping {
        gen: Generation,
        next: Box<Generation>,
        step: Step,
        pending: Pending,
    },
    /// (native) A reload was asked for; `gen` finishes what it has in
    /// flight while new requests are held.
    Draining { gen: Generation, pending: Pending },
    /// (native) `gen` was told to stop; `then` says whether a new one
    /// starts once it is gone.
    Stopping {
        gen: Generation,
        then: Option<Pending>,
    },
}

impl Phase {
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Phase::Down { .. } => "down",
            Phase::Starting { .. } => "starting",
            Phase::Serving { .. } => "serving",
            Phase::Swapping { .. } => "swapping",
            Phase::Draining { .. } => "draining",
            Phase::Stopping { .. } => "stopping",
        }
    }

    /// Why no generation takes requests, in words: the reason it is
    /// down, or the phase.
    fn why_not_serving(&self) -> String {
        match self {
            Phase::Down { reason } => reason.clone(),
            other => other.name().to_string(),
        }
    }

    /// The generation that serves (or last served) now, if any.
    pub fn generation(&self) -> Option<&Generation> {
        match self {
            Phase::Down { .. } => None,
            Phase::Starting { gen, .. }
            | Phase::Serving { gen }
            | Phase::Swapping { gen, .. }
            | Phase::Draining { gen, .. }
            | Phase::Stopping { gen, .. } => Some(gen),
        }
    }

    fn generation_mut(&mut self) -> Option<&mut Generation> {
        match self {
            Phase::Down { .. } => None,
            Phase::Starting { gen, .. }
            | Phase::Serving { gen }
            | Phase::Swapping { gen, .. }
            | Phase::Draining { gen, .. }
            | Phase::Stopping { gen, .. } => Some(gen),
        }
    }

    /// The generation requests go to right now.
    pub fn serving(&self) -> Option<&Generation> {
        match self {
            Phase::Serving { gen } | Phase::Swapping { gen, .. } => Some(gen),
            _ => None,
        }
    }

    /// The generation a request goes to now, if one can take it:
    /// the serving one, or, while lightningd has not sent its init
    /// (`before_init`), one that has answered getmanifest and waits for
    /// that init like lightningd's own plugins do.
    fn takes_requests(&self, before_init: bool) -> Option<&Generation> {
        match self {
            Phase::Serving { gen } | Phase::Swapping { gen, .. } => Some(gen),
            Phase::Starting {
                gen,
                step: Step::WaitInit,
                ..
            } if before_init => Some(gen),
            _ => None,
        }
    }

    /// The generation in start-up, its step and why it starts.
    fn starting(&mut self) -> Option<(&mut Generation, &mut Step, Pending)> {
        match self {
            Phase::Starting { gen, step, pending } => Some((gen, step, *pending)),
            Phase::Swapping {
                next,
                step,
                pending,
                ..
            } => Some((next, step, *pending)),
            _ => None,
        }
    }

    fn take(&mut self) -> Phase {
        std::mem::replace(
            self,
            Phase::Down {
                reason: String::new(),
            },
        )
    }
}

/// Which of a plugin's generations an event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// The one in [`Phase::generation`].
    Current,
    /// The one starting in [`Phase::Swapping`].
    Next,
    /// One being retired, at this index.
    Retiring(usize),
}

#[derive(Debug, Clone)]
struct ReloadRecord {
    trigger: Trigger,
    generation: Gen,
    duration: Duration,
    at: SystemTime,
}

/// A generation on its way out (wasm): it finishes its requests in flight,
/// then its stdin is closed.
#[derive(Debug)]
pub struct Retiring {
    gen: Generation,
    closed: bool,
}

/// One plugin under cln-autoreload's care.
#[derive(Debug)]
pub struct ManagedPlugin {
    /// Its file name, as lightningd would call it.
    pub name: String,
    /// The path it was given as (absolute).
    pub path: PathBuf,
    /// How it runs.
    pub backend: BackendKind,
    /// What it is doing.
    pub phase: Phase,
    /// Bumped on every phase change, so stale timers are ignored.
    pub epoch: Epoch,
    /// The last generation started.
    generations: Gen,
    /// A start due when its timer fires (file busy, crash back-off).
    pub(crate) retry: Option<Pending>,
    retiring: Vec<Retiring>,
    /// The manifest lightningd registered for it, if any.
    pub registered: Option<Manifest>,
    /// Requests waiting for a generation that can take them.
    pub held: VecDeque<Request>,
    restart_waiters: Vec<RawId>,
    /// A reload asked for while a generation was starting: it goes ahead
    /// once that one serves (or failed).
    again: Option<Pending>,
    reloads: u64,
    crashes: u64,
    recent_crashes: VecDeque<Instant>,
    last_reload: Option<ReloadRecord>,
    /// The last module compiled for it: ms, from the cache, which compiler.
    last_compile: Option<(f64, bool, Option<wasm::Compiler>)>,
    last_error: Option<String>,
    last_diff: Option<Diff>,
    /// Notifications that found no live generation.
    pub dropped_notifications: u64,
    busy_retries: u32,
    /// Why it may not run at all (a name clash with another plugin).
    refused: Option<String>,
    /// Its warnings of each kind in the current second, to keep a plugin
    /// that misbehaves in a loop from burying lightningd's log.
    noise: HashMap<&'static str, Noise>,
    /// The last generations whose stdin the host closed to stop them.
    closed_stdins: VecDeque<Gen>,
}

/// How many of [`ManagedPlugin::closed_stdins`] are remembered: a
/// generation's last lines come within moments of its stdin closing.
const CLOSED_STDINS_KEPT: usize = 8;

/// How many of a plugin's warnings of one kind were logged, and not, in
/// the current window.
#[derive(Debug)]
struct Noise {
    since: Instant,
    logged: u32,
    suppressed: u64,
}

impl ManagedPlugin {
    /// A plugin not started yet.
    pub fn new(path: PathBuf) -> ManagedPlugin {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string());
        ManagedPlugin {
            name,
            backend: BackendKind::for_path(&path),
            path,
            phase: Phase::Down {
                reason: "not started yet".into(),
            },
            epoch: Epoch::default(),
            generations: Gen::default(),
            retry: None,
            retiring: vec![],
            registered: None,
            held: VecDeque::new(),
            restart_waiters: vec![],
            again: None,
            reloads: 0,
            crashes: 0,
            recent_crashes: VecDeque::new(),
            last_reload: None,
            last_compile: None,
            last_error: None,
            last_diff: None,
            dropped_notifications: 0,
            busy_retries: 0,
            refused: None,
            noise: HashMap::new(),
            closed_stdins: VecDeque::new(),
        }
    }

    /// The manifest of the generation serving now, else the registered one.
    pub fn current_manifest(&self) -> Option<&Manifest> {
        self.phase
            .generation()
            .and_then(|g| g.manifest.as_ref())
            .or(self.registered.as_ref())
    }

    /// Whether it is past getmanifest (manifest known or failed).
    pub fn manifest_settled(&self) -> bool {
        !matches!(
            self.phase,
            Phase::Starting {
                step: Step::Manifest,
                ..
            }
        )
    }

    /// Whether it is past init (serving or down).
    pub fn init_settled(&self) -> bool {
        !matches!(self.phase, Phase::Starting { .. })
    }

    /// Whether nothing of it runs any more.
    pub fn stopped(&self) -> bool {
        matches!(self.phase, Phase::Down { .. }) && self.retiring.is_empty()
    }

    fn set_phase(&mut self, phase: Phase) {
        self.epoch.bump();
        self.phase = phase;
    }

    /// Whether the host closed generation `number`'s stdin to stop it (a
    /// native one stopping, a retiring wasm one past its requests), even
    /// if it has exited since (its last stderr lines may come after its
    /// exit). What it says from then on is its way out, caused by the
    /// reload (a framework complaining that stdin ended, say), not news:
    /// it is logged at debug.
    pub fn stdin_closed(&self, number: Gen) -> bool {
        self.closed_stdins.contains(&number)
    }

    /// Notes that the host closed generation `number`'s stdin.
    fn closing_stdin(&mut self, number: Gen) {
        if self.closed_stdins.len() == CLOSED_STDINS_KEPT {
            self.closed_stdins.pop_front();
        }
        self.closed_stdins.push_back(number);
    }

    fn role(&self, number: Gen) -> Option<Role> {
        if self.phase.generation().is_some_and(|g| g.number == number) {
            return Some(Role::Current);
        }
        if let Phase::Swapping { next, .. } = &self.phase {
            if next.number == number {
                return Some(Role::Next);
            }
        }
        self.retiring
            .iter()
            .position(|r| r.gen.number == number)
            .map(Role::Retiring)
    }

    fn gen_mut(&mut self, role: Role) -> Option<&mut Generation> {
        match (role, &mut self.phase) {
            (Role::Next, Phase::Swapping { next, .. }) => Some(next),
            (Role::Next, _) => None,
            (Role::Retiring(i), _) => self.retiring.get_mut(i).map(|r| &mut r.gen),
            (Role::Current, phase) => phase.generation_mut(),
        }
    }

    /// Every generation still running, for shutdown.
    pub fn all_generations(&self) -> impl Iterator<Item = &Generation> {
        let next = match &self.phase {
            Phase::Swapping { next, .. } => Some(&**next),
            _ => None,
        };
        self.phase
            .generation()
            .into_iter()
            .chain(next)
            .chain(self.retiring.iter().map(|r| &r.gen))
    }

    /// The status entry for `autoreload-status`.
    fn status(&self, in_flight: usize) -> Value {
        let gen = self.phase.generation();
        let mut s = json!({
            "name": self.name,
            "path": self.path,
            "backend": self.backend.name(),
            "state": self.phase.name(),
            "generation": gen.map(|g| g.number),
            "pid": gen.and_then(|g| g.pid),
            "reloads": self.reloads,
            "crashes": self.crashes,
            "in_flight": in_flight,
            "held": self.held.len(),
            "retiring": self.retiring.len(),
            "dropped_notifications": self.dropped_notifications,
            "registered": self.registered.is_some(),
            "last_error": self.last_error,
        });
        if let Phase::Down { reason } = &self.phase {
            s["down_reason"] = json!(reason);
        }
        if let Some(r) = &self.last_reload {
            s["last_reload"] = json!({
                "trigger": r.trigger.as_str(),
                "generation": r.generation,
                "duration_ms": r.duration.as_secs_f64() * 1000.0,
                "at": r.at.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
            });
        }
        if let Some((ms, cached, compiler)) = self.last_compile {
            s["last_compile"] = json!({
                "duration_ms": ms,
                "cached": cached,
                "compiler": compiler.map(wasm::Compiler::name),
            });
        }
        if let Some(d) = &self.last_diff {
            s["manifest_changes"] = d.to_json();
        }
        s
    }
}

const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
const BUSY_RETRY: Duration = Duration::from_millis(20);
const BUSY_RETRIES: u32 = 100;
const CRASH_WINDOW: Duration = Duration::from_secs(30);
const CRASH_LOOP: usize = 5;
/// At most this many warnings of one kind about one plugin per
/// [`NOISE_WINDOW`]; the rest are counted, and the count logged.
const NOISE_MAX: u32 = 10;
const NOISE_WINDOW: Duration = Duration::from_secs(1);

impl Supervisor {
    /// Starts a new generation of plugin `p` now: the only one if none
    /// serves, or next to the serving one (wasm). It counts as started
    /// from here on; the loop answers [`Input::Spawned`] or
    /// [`Input::SpawnFailed`] before anything else happens.
    ///
    /// [`Input::Spawned`]: super::Input::Spawned
    /// [`Input::SpawnFailed`]: super::Input::SpawnFailed
    pub(crate) fn start(&mut self, p: PluginId, pending: Pending) {
        let settings = self.wasm_settings();
        let native = self.config.native.spec(&self.plugins[p].name);
        let plugin = &mut self.plugins[p];
        plugin.retry = None;
        let number = plugin.generations.next();
        plugin.generations = number;
        let (wasm, sandbox) = match plugin.backend {
            BackendKind::Wasm => (Some(settings.clone()), SandboxUsed::Wasm(settings)),
            BackendKind::Native => (None, SandboxUsed::Native(native.clone())),
        };
        self.out.push(Output::Spawn {
            plugin: p,
            gen: number,
            path: plugin.path.clone(),
            backend: plugin.backend,
            wasm,
            native,
        });
        let id = RawId::from_string(&format!("autoreload:getmanifest#{number}"));
        let getmanifest = jsonrpc::request(&id, "getmanifest", &self.getmanifest_params);
        self.instance(p, number, InstanceOp::Send(getmanifest));
        let plugin = &mut self.plugins[p];
        let next = Generation {
            number,
            pid: None,
            manifest: None,
            stderr_tail: VecDeque::new(),
            sandbox,
            file: None,
        };
        let phase = match plugin.phase.take() {
            Phase::Serving { gen } => Phase::Swapping {
                gen,
                next: Box::new(next),
                step: Step::Manifest,
                pending,
            },
            _ => Phase::Starting {
                gen: next,
                step: Step::Manifest,
                pending,
            },
        };
        plugin.set_phase(phase);
        self.after(STARTUP_TIMEOUT, p, Timer::StartTimeout);
    }

    /// A generation the supervisor asked for runs.
    pub(crate) fn spawned(
        &mut self,
        p: PluginId,
        number: Gen,
        pid: Option<u32>,
        file: Option<FileStamp>,
    ) {
        let plugin = &mut self.plugins[p];
        if let Some(g) = plugin.role(number).and_then(|r| plugin.gen_mut(r)) {
            g.pid = pid;
            g.file = file;
            plugin.busy_retries = 0;
        }
    }

    /// A generation the supervisor asked for could not be started: the
    /// start is undone (a plugin that served keeps serving), and tried
    /// again shortly if the file was only busy.
    pub(crate) fn spawn_failed(&mut self, p: PluginId, number: Gen, error: SpawnError) {
        let plugin = &mut self.plugins[p];
        let role = plugin.role(number);
        let Some(pending) = plugin.phase.starting().map(|(_, _, pending)| pending) else {
            return;
        };
        let swapping = match role {
            Some(Role::Current) if matches!(plugin.phase, Phase::Starting { .. }) => false,
            Some(Role::Next) => true,
            _ => return,
        };
        // Nothing can be in flight to a generation that never answered
        // getmanifest, but nothing must be lost if something were.
        self.orphans(p, number, &Exit::plain("could not be started"), true);
        let plugin = &mut self.plugins[p];
        if error == SpawnError::Busy && plugin.busy_retries < BUSY_RETRIES {
            // Still open for writing (a compiler finishing): shortly.
            plugin.busy_retries += 1;
            match plugin.phase.take() {
                Phase::Swapping { gen, .. } => plugin.set_phase(Phase::Serving { gen }),
                _ => plugin.set_phase(Phase::Down {
                    reason: "file busy, retrying".into(),
                }),
            }
            plugin.retry = Some(pending);
            return self.after(BUSY_RETRY, p, Timer::Retry);
        }
        let path = plugin.path.display();
        let why = match error {
            SpawnError::NotFound | SpawnError::NotExecutable => format!("{path} {error}"),
            SpawnError::Busy | SpawnError::Other(_) => format!("cannot start {path}: {error}"),
        };
        if swapping {
            return self.next_failed(p, why);
        }
        plugin.set_phase(Phase::Down {
            reason: why.clone(),
        });
        self.fail(p, why);
        self.startup_progress();
    }

    /// Keeps plugin `p` from running for good (until lightningd restarts).
    pub(crate) fn refuse(&mut self, p: PluginId, why: String) {
        let plugin = &mut self.plugins[p];
        plugin.retry = None;
        plugin.again = None;
        let numbers: Vec<Gen> = plugin.all_generations().map(|g| g.number).collect();
        for number in numbers {
            self.instance(p, number, InstanceOp::Kill);
        }
        let plugin = &mut self.plugins[p];
        self.out
            .log(Level::Warn, format!("[{}] {why}", plugin.name));
        plugin.refused = Some(why.clone());
        plugin.last_error = Some(why.clone());
        plugin.registered = None;
        plugin.set_phase(Phase::Down { reason: why });
    }

    /// Asks for a new generation of `p` (file changed, restart); `file`
    /// is the plugin file as it is now, if that matters (a file change).
    pub(crate) fn reload_for(&mut self, p: PluginId, pending: Pending, file: Option<FileStamp>) {
        if let Some(why) = self.plugins[p].refused.clone() {
            return self.answer_waiters(p, Err(why));
        }
        let grace = self.config.grace;
        let wasm = self.plugins[p].backend == BackendKind::Wasm;
        let plugin = &mut self.plugins[p];
        match plugin.phase.take() {
            Phase::Down { .. } => {
                plugin.recent_crashes.clear();
                self.start(p, pending);
            }
            // Make before break: the new one starts beside it.
            Phase::Serving { gen } if wasm => {
                plugin.phase = Phase::Serving { gen };
                self.start(p, pending);
            }
            Phase::Serving { gen } => {
                if self.router.count(p) == 0 {
                    self.stop(p, gen, Some(pending));
                } else {
                    plugin.set_phase(Phase::Draining { gen, pending });
                    self.after(self.config.grace, p, Timer::GraceOver);
                }
            }
            // A version that is starting (and none serves) finishes its
            // start, then the reload goes ahead if the file changed since
            // it started: replacing it would start the next one from
            // nothing again, and saves that come faster than the plugin
            // starts (a pyln-client plugin takes ~160 ms, a wasm compile on
            // a busy machine as long) would keep it from ever serving. One
            // that has been starting for longer than the grace period is
            // likely stuck: it is replaced at once.
            Phase::Starting {
                gen,
                step,
                pending: started,
            } => {
                if self.now.saturating_duration_since(started.since) > grace {
                    if wasm {
                        self.replace_starting(p, gen, pending);
                    } else {
                        self.stop(p, gen, Some(pending));
                    }
                } else {
                    let newer = pending.trigger != Trigger::Restart && file != gen.file;
                    plugin.phase = Phase::Starting {
                        gen,
                        step,
                        pending: started,
                    };
                    if newer {
                        plugin.again = Some(pending);
                    }
                }
            }
            Phase::Swapping { gen, next, .. } => {
                plugin.phase = Phase::Serving { gen };
                self.instance(p, next.number, InstanceOp::Kill);
                self.start(p, pending);
            }
            // Already on the way to a new generation, which will read the
            // newest file.
            phase @ (Phase::Draining { .. } | Phase::Stopping { .. }) => plugin.phase = phase,
        }
    }

    /// Kills a generation in start-up (wasm, or native before it had
    /// init) and starts a new one in its place. What it had in flight
    /// (before lightningd's init it takes requests) is handed on as after
    /// a reload: hooks to the new one.
    fn replace_starting(&mut self, p: PluginId, gen: Generation, pending: Pending) {
        let number = gen.number;
        self.instance(p, number, InstanceOp::Kill);
        // Start first, so that the hooks wait for the new generation.
        self.start(p, pending);
        let exit = Exit::plain("was replaced during start-up");
        self.orphans(p, number, &exit, true);
    }

    /// Tells a generation to stop: shutdown notification (if it wants
    /// one), stdin closed, then SIGTERM and SIGKILL if it lingers.
    pub(crate) fn stop(&mut self, p: PluginId, gen: Generation, then: Option<Pending>) {
        if gen.subscribes("shutdown") {
            let shutdown = jsonrpc::notification("shutdown", json!({"shutdown": {}}));
            self.instance(p, gen.number, InstanceOp::Send(shutdown));
        }
        self.instance(p, gen.number, InstanceOp::CloseStdin);
        self.plugins[p].closing_stdin(gen.number);
        self.plugins[p].set_phase(Phase::Stopping { gen, then });
        self.after(self.config.stop_timeout, p, Timer::Terminate);
    }

    /// Moves the serving generation out (wasm): it finishes its requests in
    /// flight within the grace period, then stops.
    fn retire(&mut self, p: PluginId, gen: Generation) {
        let number = gen.number;
        self.plugins[p]
            .retiring
            .push(Retiring { gen, closed: false });
        if self.router.count_generation(p, number) == 0 {
            self.close_retiring(p, number);
        } else {
            self.after(self.config.grace, p, Timer::RetireGrace(number));
        }
    }

    fn close_retiring(&mut self, p: PluginId, number: Gen) {
        let plugin = &mut self.plugins[p];
        let Some(r) = plugin.retiring.iter_mut().find(|r| r.gen.number == number) else {
            return;
        };
        if r.closed {
            return;
        }
        r.closed = true;
        let shutdown = r.gen.subscribes("shutdown");
        plugin.closing_stdin(number);
        if shutdown {
            let shutdown = jsonrpc::notification("shutdown", json!({"shutdown": {}}));
            self.instance(p, number, InstanceOp::Send(shutdown));
        }
        self.instance(p, number, InstanceOp::CloseStdin);
        self.after(self.config.stop_timeout, p, Timer::RetireKill(number));
    }

    /// Plugin `p` could not start (or crashed in a loop): it stays down
    /// until its file changes or `autoreload-restart`.
    fn fail(&mut self, p: PluginId, why: String) {
        let plugin = &mut self.plugins[p];
        plugin.retry = None;
        if let Some(again) = plugin.again.take() {
            // A newer version was saved while this one started: try it.
            self.out.log(
                Level::Warn,
                format!(
                    "[{}] not started: {why}; trying the newer version",
                    plugin.name
                ),
            );
            plugin.last_error = Some(why);
            return self.start(p, again);
        }
        self.out
            .log(Level::Warn, format!("[{}] not running: {why}", plugin.name));
        plugin.last_error = Some(why.clone());
        plugin.set_phase(Phase::Down {
            reason: why.clone(),
        });
        self.answer_waiters(p, Err(why));
        self.flush_held(p);
    }

    /// (wasm) The generation meant to replace the serving one failed: the
    /// serving one stays.
    fn next_failed(&mut self, p: PluginId, why: String) {
        let plugin = &mut self.plugins[p];
        match plugin.phase.take() {
            Phase::Swapping { gen, next, .. } => {
                plugin.set_phase(Phase::Serving { gen });
                self.instance(p, next.number, InstanceOp::Kill);
            }
            other => plugin.phase = other,
        }
        let plugin = &mut self.plugins[p];
        self.out.log(
            Level::Warn,
            format!(
                "[{}] new version not started, the old one keeps serving: {why}",
                plugin.name
            ),
        );
        plugin.last_error = Some(why.clone());
        self.answer_waiters(p, Err(why));
    }

    fn answer_waiters(&mut self, p: PluginId, outcome: Result<Value, String>) {
        let plugin = &mut self.plugins[p];
        for id in std::mem::take(&mut plugin.restart_waiters) {
            self.out.send(match &outcome {
                Ok(v) => jsonrpc::response(&id, v),
                Err(why) => jsonrpc::error(
                    &id,
                    ErrorKind::ReloadFailed,
                    &format!("reload of {} failed: {why}", plugin.name),
                ),
            });
        }
    }

    /// Answers every held request on the plugin's behalf, except those
    /// that only the plugin may answer (`db_write`).
    fn flush_held(&mut self, p: PluginId) {
        let held = std::mem::take(&mut self.plugins[p].held);
        for req in held {
            self.unavailable(p, req);
        }
    }

    /// Answers a request no generation of `p` can take now.
    pub(crate) fn unavailable(&mut self, p: PluginId, req: Request) {
        let plugin = &mut self.plugins[p];
        match &req.kind {
            ReqKind::Hook(hook) if req.kind.must_reach_plugin() => {
                let why = plugin.phase.why_not_serving();
                self.out.log(
                    Level::Warn,
                    format!(
                        "[{}] a {hook} waits for a version that can answer it ({why}), and lightningd waits with it: save a fixed version of the plugin",
                        plugin.name
                    ),
                );
                plugin.held.push_back(req)
            }
            ReqKind::Hook(_) => self.hook_continues(req),
            ReqKind::Rpc => {
                let why = plugin.phase.why_not_serving();
                let msg = format!(
                    "{} is not running: {why}. Fix it and save the file, or call autoreload-restart.",
                    plugin.name
                );
                self.out
                    .send(jsonrpc::error(&req.id, ErrorKind::Down, &msg));
            }
        }
    }

    /// Something one of the plugin's instances reported.
    pub(crate) fn on_instance(&mut self, p: PluginId, number: Gen, event: InstanceEvent) {
        let plugin = &mut self.plugins[p];
        let role = plugin.role(number);
        let name = plugin.name.clone();
        match event {
            InstanceEvent::Message(m) => match role {
                Some(role) => self.on_message(p, role, number, m),
                None => {
                    if let Kind::Response { id } = &m.kind {
                        // A stopped generation answering late: its requests
                        // were already answered or handed on.
                        self.out.log(
                            Level::Debug,
                            format!("[{name}] late response {id} from generation {number} dropped"),
                        );
                    }
                }
            },
            InstanceEvent::Garbage { bytes, reason } => {
                let w = format!(
                    "[{name}] wrote something that is not JSON-RPC to stdout ({reason}); lightningd would have killed it for this. Use stderr or a log notification: {}",
                    preview(&bytes, 400)
                );
                // What its output ended with matters more than one more
                // piece of a flood: it is not counted with the others.
                let kind = if reason.starts_with("stream ended") {
                    "truncated"
                } else {
                    "garbage"
                };
                self.plugin_warn(p, kind, w);
            }
            InstanceEvent::Stderr(line) => {
                if let Some(g) = role.and_then(|r| plugin.gen_mut(r)) {
                    if g.stderr_tail.len() == 20 {
                        g.stderr_tail.pop_front();
                    }
                    g.stderr_tail.push_back(line.clone());
                }
                if plugin.stdin_closed(number) {
                    self.out.log(
                        Level::Debug,
                        format!("[{name}] (generation {number}, stopping) {line}"),
                    );
                } else {
                    let level = if line.starts_with("trap: ") {
                        Level::Warn
                    } else {
                        Level::Info
                    };
                    self.out.log(level, format!("[{name}] {line}"));
                }
            }
            InstanceEvent::Warn(w) => self.plugin_warn(p, "warn", format!("[{name}] {w}")),
            InstanceEvent::Compiled { millis, cached } => {
                if let Some(g) = role.and_then(|r| plugin.gen_mut(r)) {
                    let compiler = match &g.sandbox {
                        SandboxUsed::Wasm(s) => Some(s.compiler),
                        SandboxUsed::Native(_) => None,
                    };
                    plugin.last_compile = Some((millis, cached, compiler));
                }
            }
            InstanceEvent::Exited(exit) => match role {
                Some(Role::Current) => self.on_exit(p, exit),
                Some(Role::Next) => {
                    let why = self.exit_reason(p, Role::Next, &exit, "during start-up");
                    self.next_failed(p, why);
                }
                Some(Role::Retiring(i)) => {
                    let r = self.plugins[p].retiring.remove(i);
                    self.orphans(p, r.gen.number, &exit, true);
                    self.shutdown_progress();
                }
                None => {}
            },
        }
    }

    /// How an exit reads in errors and logs, with its last stderr lines.
    fn exit_reason(&mut self, p: PluginId, role: Role, exit: &Exit, when: &str) -> String {
        let plugin = &mut self.plugins[p];
        let Some(g) = plugin.gen_mut(role) else {
            return exit.how.clone();
        };
        let mut w = format!("generation {} {} {when}", g.number, exit.how);
        let tail: Vec<&str> = g
            .stderr_tail
            .iter()
            .map(String::as_str)
            .filter(|l| !l.starts_with("trap: "))
            .collect();
        if !tail.is_empty() {
            w.push_str(&format!("; its last stderr lines: {}", tail.join(" | ")));
        }
        w
    }

    /// Settles what a generation that ended never answered: rpc calls get
    /// an error; hooks go to the next generation, unless it was stopped for
    /// running away (then they continue: the hook would only run away
    /// again).
    fn orphans(&mut self, p: PluginId, number: Gen, exit: &Exit, reloaded: bool) {
        let name = self.plugins[p].name.clone();
        for f in self.router.orphaned(p, number) {
            match f.request.kind {
                ReqKind::Hook(_)
                    if exit.sandbox.is_some() && !f.request.kind.must_reach_plugin() =>
                {
                    self.hook_continues(f.request)
                }
                ReqKind::Hook(_) if reloaded => self.dispatch_to(p, f.request),
                ReqKind::Hook(ref hook)
                    if f.request.crashes > 0 && !f.request.kind.must_reach_plugin() =>
                {
                    let w = format!(
                        "[{name}] the {hook} hook was in flight when generation {number} {} too: answered continue (as lightningd does when a plugin dies in a hook) rather than sent to the next generation",
                        exit.how
                    );
                    self.plugin_warn(p, "hook", w);
                    self.hook_continues(f.request);
                }
                ReqKind::Hook(_) => {
                    let mut req = f.request;
                    req.crashes = req.crashes.saturating_add(1);
                    self.plugins[p].held.push_back(req);
                }
                ReqKind::Rpc => self.out.send(jsonrpc::error(
                    &f.request.id,
                    exit.error_kind(reloaded),
                    &format!(
                        "{name} {} before answering {}: generation {number} {}. Call again.",
                        if reloaded { "was reloaded" } else { "crashed" },
                        f.request.method,
                        exit.how
                    ),
                )),
            }
        }
    }

    fn on_message(&mut self, p: PluginId, role: Role, number: Gen, m: Message) {
        if let Kind::Response { id } = &m.kind {
            let starting = matches!(
                (role, &self.plugins[p].phase),
                (Role::Current, Phase::Starting { .. }) | (Role::Next, Phase::Swapping { .. })
            );
            let step = if starting {
                self.plugins[p].phase.starting().map(|(_, s, _)| *s)
            } else {
                None
            };
            let expected = match step {
                Some(Step::Manifest) => Some(format!("autoreload:getmanifest#{number}")),
                Some(Step::Init) => Some(format!("autoreload:init#{number}")),
                _ => None,
            };
            if let Some(expected) = expected {
                if id == &RawId::from_string(&expected) {
                    match step {
                        Some(Step::Manifest) => self.on_manifest(p, &m),
                        _ => self.on_init_answer(p, &m),
                    }
                    return;
                }
            }
            // A generation replaced while it started (a reload came
            // first: it is stopping now) may still answer its own
            // getmanifest or init: nobody waits for that any more.
            let own = |what| *id == RawId::from_string(&format!("autoreload:{what}#{number}"));
            if own("getmanifest") || own("init") {
                let name = &self.plugins[p].name;
                return self.out.log(
                    Level::Debug,
                    format!(
                        "[{name}] generation {number} answered {id} after it was replaced: dropped"
                    ),
                );
            }
        }
        self.on_plugin_message(p, number, m);
        if let Some(Role::Retiring(_)) = self.plugins[p].role(number) {
            if self.router.count_generation(p, number) == 0 {
                self.close_retiring(p, number);
            }
        }
    }

    fn on_manifest(&mut self, p: PluginId, m: &Message) {
        let answer = jsonrpc::parse(&m.raw);
        let result = answer.as_ref().and_then(|v| v.get("result"));
        let parsed = match result {
            Some(r) => Manifest::from_result(r),
            None => Err(format!(
                "getmanifest failed: {}",
                answer
                    .as_ref()
                    .and_then(|v| v.get("error"))
                    .map_or_else(|| "no result".into(), Value::to_string)
            )),
        };
        let (manifest, problems) = match parsed {
            Ok(x) => x,
            Err(why) => return self.start_failed(p, why),
        };
        let plugin = &mut self.plugins[p];
        for problem in &problems {
            self.out.log(
                Level::Warn,
                format!("[{}] manifest: {problem}", plugin.name),
            );
        }
        if let Some(why) = manifest.disabled() {
            return self.start_failed(p, format!("it disabled itself: {why}"));
        }
        if let Some(registered) = &plugin.registered {
            let diff = Diff::between(registered, &manifest);
            if !diff.is_empty() && plugin.last_diff.as_ref() != Some(&diff) {
                self.out.log(
                    Level::Info,
                    format!(
                        "[{}] manifest changed: {diff}. lightningd registers new methods, hooks and subscriptions after autoreload-reregister (or a restart); removed methods answer an error until then",
                        plugin.name
                    ),
                );
            }
            plugin.last_diff = Some(diff);
        }
        let Some((gen, step, _)) = plugin.phase.starting() else {
            return;
        };
        gen.manifest = Some(manifest);
        *step = Step::WaitInit;
        self.send_init(p);
        if self.init.is_none() {
            // lightningd may be waiting on a request held for this plugin
            // (a `db_write` before its init): it goes through now.
            self.release_held(p);
        }
        self.startup_progress();
    }

    /// Hands every held request to the generation that can take them now
    /// (or holds them again, in order, if none can).
    fn release_held(&mut self, p: PluginId) {
        let held = std::mem::take(&mut self.plugins[p].held);
        for req in held {
            self.dispatch_to(p, req);
        }
    }

    /// Sends init to a generation waiting for it, once lightningd's init
    /// is known.
    pub(crate) fn send_init(&mut self, p: PluginId) {
        let Some(cached) = &self.init else { return };
        let plugin = &mut self.plugins[p];
        let registered = plugin.registered.clone();
        let Some((gen, step, _)) = plugin.phase.starting() else {
            return;
        };
        if *step != Step::WaitInit {
            return;
        }
        let Some(manifest) = &gen.manifest else {
            return;
        };
        let params = CachedInit::params_for(cached, registered.as_ref(), manifest);
        let id = RawId::from_string(&format!("autoreload:init#{}", gen.number));
        let number = gen.number;
        *step = Step::Init;
        // The time spent waiting for lightningd's init was not the
        // plugin's: its init gets the whole start-up timeout.
        plugin.epoch.bump();
        self.instance(
            p,
            number,
            InstanceOp::Send(jsonrpc::request(&id, "init", params)),
        );
        self.after(STARTUP_TIMEOUT, p, Timer::StartTimeout);
    }

    /// lightningd's init has come: the generation that answered
    /// getmanifest at start-up gets it, unless it was started in another
    /// sandbox than init now gives it (wasm: the default one, or the
    /// directories read from lightningd's command line; native: the
    /// `autoreload-native-*` values read there): then a fresh one takes its
    /// place (for wasm, of the same cached module).
    pub(crate) fn init_started(&mut self, p: PluginId) {
        let plugin = &self.plugins[p];
        let now = match plugin.backend {
            BackendKind::Wasm => SandboxUsed::Wasm(self.wasm_settings()),
            BackendKind::Native => SandboxUsed::Native(self.config.native.spec(&plugin.name)),
        };
        let other_sandbox = plugin.phase.generation().is_some_and(|g| g.sandbox != now);
        let plugin = &mut self.plugins[p];
        match plugin.phase.take() {
            Phase::Starting {
                gen,
                step: Step::WaitInit,
                pending,
            } if other_sandbox => {
                if plugin.backend == BackendKind::Native {
                    self.out.log(
                        Level::Info,
                        format!(
                            "[{}] restarted in the sandbox lightningd's init gives it",
                            plugin.name
                        ),
                    );
                }
                self.replace_starting(p, gen, pending)
            }
            other => {
                plugin.phase = other;
                self.send_init(p);
            }
        }
    }

    fn on_init_answer(&mut self, p: PluginId, m: &Message) {
        let answer = jsonrpc::parse(&m.raw).unwrap_or(Value::Null);
        if let Some(err) = answer.get("error") {
            return self.start_failed(p, format!("init failed: {err}"));
        }
        if let Some(why) = answer.get("result").and_then(|r| r.get("disable")) {
            return self.start_failed(p, format!("it disabled itself in init: {why}"));
        }
        let at = self.wall(self.now);
        let plugin = &mut self.plugins[p];
        let (gen, old, pending) = match plugin.phase.take() {
            Phase::Starting { gen, pending, .. } => (gen, None, pending),
            Phase::Swapping {
                gen, next, pending, ..
            } => (*next, Some(gen), pending),
            other => {
                plugin.phase = other;
                return;
            }
        };
        let took = self.now.saturating_duration_since(pending.since);
        let number = gen.number;
        plugin.set_phase(Phase::Serving { gen });
        plugin.last_error = None;
        if pending.trigger != Trigger::Startup {
            plugin.reloads += 1;
            self.out.log(
                Level::Info,
                format!(
                    "[{}] reloaded ({}): generation {number} serving after {:.1} ms",
                    plugin.name,
                    pending.trigger.as_str(),
                    took.as_secs_f64() * 1000.0
                ),
            );
        }
        plugin.last_reload = Some(ReloadRecord {
            trigger: pending.trigger,
            generation: number,
            duration: took,
            at,
        });
        let answer = json!({
            "plugin": plugin.name,
            "generation": number,
            "duration_ms": took.as_secs_f64() * 1000.0,
            "manifest_changes": plugin.last_diff.as_ref().map(Diff::to_json),
        });
        if plugin.again.is_none() {
            self.answer_waiters(p, Ok(answer));
        }
        if let Some(old) = old {
            self.retire(p, old);
        }
        let needs_registering = self.plugins[p]
            .last_diff
            .as_ref()
            .is_some_and(Diff::needs_registering);
        if needs_registering
            && self.config.reregister_on_change
            && pending.trigger != Trigger::Startup
        {
            self.reregister(None);
        }
        self.release_held(p);
        self.startup_progress();
        if let Some(again) = self.plugins[p].again.take() {
            self.reload_for(p, again, None);
        }
    }

    /// The generation in start-up failed.
    fn start_failed(&mut self, p: PluginId, why: String) {
        let plugin = &mut self.plugins[p];
        match plugin.phase.take() {
            Phase::Starting { gen, .. } => {
                self.instance(p, gen.number, InstanceOp::Kill);
                self.fail(p, why);
                self.startup_progress();
            }
            Phase::Swapping {
                gen,
                next,
                step,
                pending,
            } => {
                plugin.phase = Phase::Swapping {
                    gen,
                    next,
                    step,
                    pending,
                };
                self.next_failed(p, why);
            }
            other => plugin.phase = other,
        }
    }

    /// The current generation ended.
    fn on_exit(&mut self, p: PluginId, exit: Exit) {
        let starting = matches!(self.plugins[p].phase, Phase::Starting { .. });
        let why = self.exit_reason(
            p,
            Role::Current,
            &exit,
            if starting { "during start-up" } else { "" },
        );
        let why = why.trim_end().to_string();
        let plugin = &mut self.plugins[p];
        let phase = plugin.phase.take();
        plugin.epoch.bump();
        let name = plugin.name.clone();
        let Some(gen) = phase.generation() else {
            return;
        };
        let number = gen.number;
        // Make sure nothing it started outlives it.
        self.instance(p, number, InstanceOp::Kill);
        match phase {
            Phase::Stopping {
                then: Some(pending),
                ..
            } => {
                // Start first, so that hooks it never answered wait for
                // the new generation instead of being answered for it.
                self.start(p, pending);
                self.orphans(p, number, &exit, true);
            }
            Phase::Stopping { then: None, .. } => {
                self.orphans(p, number, &exit, true);
                self.plugins[p].phase = Phase::Down {
                    reason: "stopped".into(),
                };
                self.flush_held(p);
                self.shutdown_progress();
            }
            // Before lightningd's init, a generation that answered
            // getmanifest serves (lightningd may be waiting on its answer
            // to a db_write): it is restarted like a serving one.
            Phase::Starting {
                step: Step::WaitInit,
                ..
            } if self.init.is_none() => self.crashed(p, number, &exit, why),
            Phase::Starting { .. } => {
                self.plugins[p].crashes += 1;
                self.fail(p, why);
                self.startup_progress();
            }
            Phase::Swapping {
                next,
                step,
                pending,
                ..
            } => {
                // The serving one died mid-swap: the next one carries on.
                self.plugins[p].crashes += 1;
                self.out.log(Level::Warn, format!("[{name}] {why}"));
                self.plugins[p].phase = Phase::Starting {
                    gen: *next,
                    step,
                    pending,
                };
                self.orphans(p, number, &exit, false);
            }
            Phase::Serving { .. } | Phase::Draining { .. } => self.crashed(p, number, &exit, why),
            Phase::Down { .. } => {}
        }
    }

    /// The generation that served crashed: answer what it had in flight,
    /// then restart it at once, after a back-off, or not at all (a crash
    /// loop).
    fn crashed(&mut self, p: PluginId, number: Gen, exit: &Exit, why: String) {
        let plugin = &mut self.plugins[p];
        plugin.crashes += 1;
        plugin.last_error = Some(why.clone());
        self.out
            .log(Level::Warn, format!("[{}] {why}", plugin.name));
        self.orphans(p, number, exit, false);
        let plugin = &mut self.plugins[p];
        let now = self.now;
        plugin.recent_crashes.push_back(now);
        while plugin
            .recent_crashes
            .front()
            .is_some_and(|t| now.duration_since(*t) > CRASH_WINDOW)
        {
            plugin.recent_crashes.pop_front();
        }
        let pending = Pending {
            trigger: Trigger::Crash,
            since: now,
        };
        let n = plugin.recent_crashes.len();
        if n >= CRASH_LOOP {
            let reason = format!(
                "crash loop: {n} crashes within {}s; it stays down until its file changes or autoreload-restart. Last: {why}",
                CRASH_WINDOW.as_secs()
            );
            self.fail(p, reason);
        } else if n == 1 {
            self.start(p, pending);
        } else {
            // Back off a little: calls wait meanwhile.
            let delay = Duration::from_millis(100 << (n - 2));
            plugin.set_phase(Phase::Down {
                reason: format!("restarting in {} ms after a crash", delay.as_millis()),
            });
            plugin.retry = Some(pending);
            self.after(delay, p, Timer::Retry);
        }
    }

    /// A timer set for plugin `p` went off.
    pub(crate) fn on_timer(&mut self, p: PluginId, epoch: Epoch, timer: Timer) {
        match timer {
            Timer::RetireGrace(number) => return self.close_retiring(p, number),
            Timer::QuietOver(kind) => return self.quiet_over(p, kind),
            Timer::RetireKill(number) => {
                if self.plugins[p]
                    .retiring
                    .iter()
                    .any(|r| r.gen.number == number)
                {
                    self.instance(p, number, InstanceOp::Kill);
                }
                return;
            }
            _ => {}
        }
        let plugin = &mut self.plugins[p];
        if plugin.epoch != epoch {
            return;
        }
        match timer {
            Timer::GraceOver => {
                if let Phase::Draining { .. } = plugin.phase {
                    self.drained(p);
                }
            }
            Timer::Terminate => {
                if let Phase::Stopping { gen, .. } = &plugin.phase {
                    let number = gen.number;
                    self.instance(p, number, InstanceOp::Terminate);
                    let t = self.config.stop_timeout;
                    // Same epoch: the kill is for this very stop.
                    self.after(t, p, Timer::Kill);
                }
            }
            Timer::Kill => {
                if let Phase::Stopping { gen, .. } = &plugin.phase {
                    let number = gen.number;
                    self.out.log(
                        Level::Warn,
                        format!("[{}] ignored shutdown and SIGTERM: killed", plugin.name),
                    );
                    self.instance(p, number, InstanceOp::Kill);
                }
            }
            Timer::StartTimeout => {
                // A generation waiting for lightningd's init waits for
                // lightningd, not for the plugin.
                let waits_for_plugin = plugin
                    .phase
                    .starting()
                    .is_some_and(|(_, step, _)| *step != Step::WaitInit);
                if waits_for_plugin {
                    let why = format!(
                        "no answer to getmanifest/init within {}s",
                        STARTUP_TIMEOUT.as_secs()
                    );
                    self.start_failed(p, why);
                }
            }
            Timer::Retry => {
                let idle = matches!(plugin.phase, Phase::Down { .. } | Phase::Serving { .. });
                if let (true, Some(pending)) = (idle, plugin.retry.take()) {
                    self.start(p, pending);
                }
            }
            Timer::RetireGrace(_) | Timer::RetireKill(_) | Timer::QuietOver(_) => {}
        }
    }

    /// A draining generation has nothing left in flight (or its grace is
    /// over): stop it and go on with the reload.
    pub(crate) fn drained(&mut self, p: PluginId) {
        let plugin = &mut self.plugins[p];
        match plugin.phase.take() {
            Phase::Draining { gen, pending } => self.stop(p, gen, Some(pending)),
            other => plugin.phase = other,
        }
    }

    /// `autoreload-restart`: answer `id` once the new generation serves.
    pub(crate) fn restart(&mut self, p: PluginId, id: RawId) {
        self.plugins[p].restart_waiters.push(id);
        if let Some(why) = self.plugins[p].refused.clone() {
            return self.answer_waiters(p, Err(why));
        }
        let reloading = matches!(
            self.plugins[p].phase,
            Phase::Draining { .. } | Phase::Stopping { then: Some(_), .. } | Phase::Swapping { .. }
        );
        if !reloading {
            self.reload_for(p, Pending::at(Trigger::Restart, self.now), None);
        }
    }

    /// Sends a request to `p`'s serving generation, or holds it.
    ///
    /// A request is held only while the host itself is bringing a
    /// generation up (it sent getmanifest or init and waits for the
    /// plugin), or for a restart already on a timer: never for something
    /// only lightningd can send. Before lightningd's own init, a
    /// generation that answered getmanifest takes requests at once:
    /// lightningd calls `db_write` there and waits for each answer before
    /// it sends init (see `cln-v26.06/traces/dbwrite-startup.*`).
    pub(crate) fn dispatch_to(&mut self, p: PluginId, req: Request) {
        let before_init = self.init.is_none();
        let plugin = &mut self.plugins[p];
        if let Some(gen) = plugin.phase.takes_requests(before_init) {
            let number = gen.number;
            self.instance(p, number, InstanceOp::Send(req.raw.clone()));
            return self.router.sent(p, number, req);
        }
        match &plugin.phase {
            Phase::Stopping { then: None, .. } => self.unavailable(p, req),
            Phase::Down { .. } if plugin.retry.is_none() => self.unavailable(p, req),
            // Starting, draining, stopping for a restart, or a restart due
            // shortly (file busy, crash back-off).
            _ => plugin.held.push_back(req),
        }
    }

    /// Stops everything of plugin `p` for good (shutdown).
    pub(crate) fn shut_down(&mut self, p: PluginId) {
        self.plugins[p].again = None;
        let numbers: Vec<Gen> = self.plugins[p]
            .retiring
            .iter()
            .map(|r| r.gen.number)
            .collect();
        for n in numbers {
            self.close_retiring(p, n);
        }
        let plugin = &mut self.plugins[p];
        match plugin.phase.take() {
            Phase::Serving { gen } | Phase::Draining { gen, .. } | Phase::Starting { gen, .. } => {
                self.stop(p, gen, None)
            }
            Phase::Swapping { gen, next, .. } => {
                self.instance(p, next.number, InstanceOp::Kill);
                self.stop(p, gen, None);
            }
            Phase::Stopping { gen, .. } => plugin.phase = Phase::Stopping { gen, then: None },
            Phase::Down { reason } => plugin.phase = Phase::Down { reason },
        }
        self.plugins[p].retry = None;
    }

    /// Logs a warning about something plugin `p` did, unless it already
    /// had [`NOISE_MAX`] of this `kind` within the last [`NOISE_WINDOW`]:
    /// those are counted and summed up when the window is over.
    pub(crate) fn plugin_warn(&mut self, p: PluginId, kind: &'static str, text: String) {
        let now = self.now;
        let noise = self.plugins[p].noise.entry(kind).or_insert(Noise {
            since: now,
            logged: 0,
            suppressed: 0,
        });
        if now.duration_since(noise.since) >= NOISE_WINDOW && noise.suppressed == 0 {
            noise.since = now;
            noise.logged = 0;
        }
        if noise.logged < NOISE_MAX {
            noise.logged += 1;
            return self.out.log(Level::Warn, text);
        }
        noise.suppressed += 1;
        if noise.suppressed == 1 {
            let left = NOISE_WINDOW.saturating_sub(now.duration_since(noise.since));
            self.after(left, p, Timer::QuietOver(kind));
        }
    }

    /// The window of `kind` warnings is over: log how many were not.
    fn quiet_over(&mut self, p: PluginId, kind: &'static str) {
        let plugin = &mut self.plugins[p];
        let Some(noise) = plugin.noise.get_mut(kind) else {
            return;
        };
        let n = std::mem::take(&mut noise.suppressed);
        noise.since = self.now;
        noise.logged = 0;
        if n > 0 {
            let name = &plugin.name;
            self.out.log(
                Level::Warn,
                format!("[{name}] {n} more warnings about {name} like the ones above were not logged (at most {NOISE_MAX} of a kind a second are)"),
            );
        }
    }

    /// The sandbox settings for new wasm instances.
    pub(crate) fn wasm_settings(&self) -> wasm::Settings {
        let mut s = self.config.wasm.clone();
        s.developer = self.config.developer;
        s.rpc_socket = self.config.rpc_socket.clone();
        s
    }

    /// Plugin `p`'s entry in `autoreload-status`.
    pub(crate) fn plugin_status(&self, p: PluginId) -> Value {
        self.plugins[p].status(self.router.count(p))
    }
}
