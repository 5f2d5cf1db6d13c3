//! A managed plugin's state, all in one place: its [`Phase`] (which
//! generations run and what each is doing), the generations being retired,
//! the requests held for it, the restart due on a timer, its warnings'
//! rate limit, and the figures `autoreload-status` reports.
//!
//! Owns: the data and the questions asked of it (which generation takes a
//! request now, is it past getmanifest, its status entry). Must not:
//! change phase on its own account: the transitions are in
//! [`super::lifecycle`], and what they do goes out as an [`Output`].

use super::lifecycle::Life;
use super::Sandbox;
use crate::backend::{wasm, BackendKind};
use crate::framing::RawId;
use crate::handover;
use crate::ids::{Epoch, Gen};
use crate::manifest::{Diff, Manifest};
use crate::router::Request;
pub use crate::warning::WarnKind;
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
    /// A new version failed after the old one had stopped: this
    /// generation's file, as it was when it started, comes back.
    Rollback(Gen),
    /// The optimized code of this generation's module is ready (wasm
    /// tiering): the same version, its kept copy, swaps in running it.
    TierUp(Gen),
}

impl Trigger {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Trigger::Startup => "start-up",
            Trigger::FileChanged => "file changed",
            Trigger::Restart => "autoreload-restart",
            Trigger::Crash => "crash",
            Trigger::Rollback(_) => "rollback",
            Trigger::TierUp(_) => "tier-up",
        }
    }
}

/// A (re)start on its way: what asked for it and since when.
#[derive(Debug, Clone, Copy)]
pub struct Pending {
    pub(super) trigger: Trigger,
    pub(super) since: Instant,
    /// The generation whose version comes back if this start fails: the
    /// one that served until it was stopped for this start, so that a new
    /// version broken in `init` (which only runs once the old version is
    /// gone) does not leave the plugin down.
    pub(super) fallback: Option<Gen>,
}

impl Pending {
    /// A (re)start asked for at `since`.
    pub fn at(trigger: Trigger, since: Instant) -> Pending {
        Pending {
            trigger,
            since,
            fallback: None,
        }
    }

    /// The same start, with generation `gen`'s version to come back if
    /// it fails.
    pub(super) fn falling_back_to(self, gen: Gen) -> Pending {
        Pending {
            fallback: Some(gen),
            ..self
        }
    }
}

/// How a plugin is reloaded: what runs beside what.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ReloadMode {
    /// Break-before-make: the old version stops before the new one
    /// starts at all. For plugins that take something as soon as they
    /// start (a port bound at import).
    Cold,
    /// The new version starts and answers getmanifest beside the old one
    /// (the slow part: process start, imports, a compile); then the old
    /// one finishes its calls, hands over its state and exits, and only
    /// then does the new one get `init`, where real plugins take their
    /// files, ports and locks. The default.
    Warm,
    /// The new version starts and answers `init` beside the old one,
    /// which serves until then: for plugins whose `init` takes nothing.
    Overlap,
}

impl ReloadMode {
    /// Its name in `autoreload-status` and in `autoreload-overlap`.
    pub fn name(self) -> &'static str {
        match self {
            ReloadMode::Cold => "cold",
            ReloadMode::Warm => "warm",
            ReloadMode::Overlap => "full",
        }
    }
}

/// What happens once a stopping generation is gone.
#[derive(Debug)]
pub enum Then {
    /// The plugin is down, for this reason (shutdown, or nothing to bring
    /// back).
    Down(String),
    /// A new generation starts (break-before-make, a rollback).
    Start(Pending),
    /// The generation that warmed up beside it gets `init` (warm start).
    Init {
        next: Box<Generation>,
        pending: Pending,
    },
}

/// One running instance of the plugin.
#[derive(Debug)]
pub struct Generation {
    /// Which one.
    pub number: Gen,
    /// Its process (native), once it runs.
    pub(super) pid: Option<u32>,
    /// Its manifest, once it answered getmanifest.
    pub(super) manifest: Option<Manifest>,
    /// Its last stderr lines, to explain a crash.
    pub(super) stderr_tail: VecDeque<String>,
    /// The sandbox it runs in.
    pub(super) sandbox: Sandbox,
    /// Which file it was started from, once it runs.
    pub(super) file: Option<FileStamp>,
    /// When it was started.
    pub(super) started: Instant,
    /// Whether its module is compiled (always, for a native one): a wasm
    /// start still compiling is making progress, however long it takes on
    /// a busy machine.
    pub(super) compiled: bool,
}

impl Generation {
    pub(super) fn subscribes(&self, topic: &str) -> bool {
        self.manifest.as_ref().is_some_and(|m| m.subscribes(topic))
    }

    /// Whether it declared that it hands its state to its next version.
    pub(super) fn keeps_state(&self) -> bool {
        self.manifest.as_ref().is_some_and(|m| m.keeps_state)
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
    /// (Swapping) The new version answered init; the old one finishes
    /// what it has in flight before it is asked for its state, and new
    /// requests are held.
    Handover,
    /// (Swapping) The old version was asked for its state.
    Save,
    /// The new version was given the state saved by the old one.
    Restore,
}

impl Step {
    /// Whether the generation is past init, handing over state: requests
    /// wait until the new version has its state.
    pub(super) fn hands_over(self) -> bool {
        matches!(self, Step::Handover | Step::Save | Step::Restore)
    }
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
    /// `gen` serves while `next` starts (make-before-break); once `next`
    /// answered init, state is handed over (if both keep it) and `next`
    /// serves.
    Swapping {
        gen: Generation,
        next: Box<Generation>,
        step: Step,
        pending: Pending,
    },
    /// `gen` is on its way out for a reload: it finishes what it has in
    /// flight while new requests are held, then (`saving`) is asked for
    /// its state, then stopped. `next` is the new version that warmed up
    /// beside it (warm start), waiting for `init`; without one
    /// (break-before-make) the new version starts once `gen` is gone.
    Draining {
        gen: Generation,
        pending: Pending,
        saving: bool,
        next: Option<Box<Generation>>,
    },
    /// `gen` was told to stop; `then` says what happens once it is gone.
    Stopping { gen: Generation, then: Then },
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
    pub(super) fn why_not_serving(&self) -> String {
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

    pub(super) fn generation_mut(&mut self) -> Option<&mut Generation> {
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
    pub(super) fn takes_requests(&self, before_init: bool) -> Option<&Generation> {
        match self {
            Phase::Serving { gen } => Some(gen),
            Phase::Swapping { gen, step, .. } if !step.hands_over() => Some(gen),
            Phase::Starting {
                gen,
                step: Step::WaitInit,
                ..
            } if before_init => Some(gen),
            _ => None,
        }
    }

    /// The new version waiting beside the current one: starting
    /// ([`Phase::Swapping`]), or warmed up and waiting for `init` until the
    /// old one is gone (warm start).
    pub(super) fn next(&self) -> Option<&Generation> {
        match self {
            Phase::Swapping { next, .. }
            | Phase::Draining {
                next: Some(next), ..
            }
            | Phase::Stopping {
                then: Then::Init { next, .. },
                ..
            } => Some(next),
            _ => None,
        }
    }

    pub(super) fn next_mut(&mut self) -> Option<&mut Generation> {
        match self {
            Phase::Swapping { next, .. }
            | Phase::Draining {
                next: Some(next), ..
            }
            | Phase::Stopping {
                then: Then::Init { next, .. },
                ..
            } => Some(next),
            _ => None,
        }
    }

    /// Why the generation in start-up starts.
    pub(super) fn start_pending(&self) -> Option<Pending> {
        match self {
            Phase::Starting { pending, .. } | Phase::Swapping { pending, .. } => Some(*pending),
            _ => None,
        }
    }

    /// The step the generation in start-up is at.
    pub(super) fn start_step(&self) -> Option<Step> {
        match self {
            Phase::Starting { step, .. } | Phase::Swapping { step, .. } => Some(*step),
            _ => None,
        }
    }

    /// The generation in start-up, its step and why it starts.
    pub(super) fn starting(&mut self) -> Option<(&mut Generation, &mut Step, Pending)> {
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
}

/// Which of a plugin's generations an event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    /// The one in [`Phase::generation`].
    Current,
    /// The one starting in [`Phase::Swapping`].
    Next,
    /// One being retired, at this index.
    Retiring(usize),
}

#[derive(Debug, Clone)]
pub(super) struct ReloadRecord {
    pub(super) trigger: Trigger,
    pub(super) generation: Gen,
    pub(super) duration: Duration,
    pub(super) at: SystemTime,
}

/// A generation on its way out (wasm): it finishes its requests in flight,
/// then its stdin is closed.
#[derive(Debug)]
pub struct Retiring {
    pub(super) gen: Generation,
    pub(super) closed: bool,
    /// `autoreload-restart` callers answered once it is gone (a full
    /// overlap reload serves before the old version has exited), and
    /// their answer.
    pub(super) waiters: Vec<RawId>,
    pub(super) answer: Value,
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
    /// What it is doing: changed by the life cycle alone.
    pub(super) life: Life,
    /// The last generation started.
    pub(super) generations: Gen,
    /// A start due when its timer fires (file busy, crash back-off).
    pub(crate) retry: Option<Pending>,
    pub(super) retiring: Vec<Retiring>,
    /// The manifest lightningd registered for it, if any.
    pub registered: Option<Manifest>,
    /// Requests waiting for a generation that can take them.
    pub held: VecDeque<Request>,
    /// Notifications (topic, message) waiting for the next version.
    pub(super) held_notifications: VecDeque<(String, bytes::Bytes)>,
    pub(super) restart_waiters: Vec<RawId>,
    /// A reload asked for while a generation was starting: it goes ahead
    /// once that one serves (or failed).
    pub(super) again: Option<Pending>,
    pub(super) reloads: u64,
    /// Swaps to optimized code (wasm tiering), not counted as reloads.
    pub(super) tier_ups: u64,
    pub(super) crashes: u64,
    pub(super) recent_crashes: VecDeque<Instant>,
    pub(super) last_reload: Option<ReloadRecord>,
    /// How its last wasm instance got its module.
    pub(super) last_compile: Option<wasm::CompileRecord>,
    pub(super) last_error: Option<String>,
    pub(super) last_diff: Option<Diff>,
    /// Notifications that found no live generation.
    pub dropped_notifications: u64,
    pub(super) busy_retries: u32,
    /// Starts replaced in a row for looking stuck: each one waits twice
    /// as long before it is taken for stuck, so a start that is only slow
    /// (a busy machine) finishes in the end, however often the file is
    /// saved.
    pub(super) stuck_starts: u32,
    /// Why it may not run at all (a name clash with another plugin).
    pub(super) refused: Option<String>,
    /// Its warnings of each kind in the current second, to keep a plugin
    /// that misbehaves in a loop from burying lightningd's log.
    pub(super) noise: HashMap<WarnKind, Noise>,
    /// The last generations whose stdin the host closed to stop them.
    pub(super) closed_stdins: VecDeque<Gen>,
    /// The state the last version saved, until a new one takes it: kept
    /// across a new version that fails to start (break-before-make), so
    /// the one after it still gets it.
    pub(super) saved: Option<handover::Saved>,
    /// When the state was asked for, to report how long the hand-over took.
    pub(super) handover_since: Option<Instant>,
    /// The last hand-over, for `autoreload-status`.
    pub(super) last_handover: Option<Value>,
    /// A reload mode more cautious than configured, and why: a new
    /// version failed for something the old one held (a port, a lock)
    /// while it ran beside it, so it reloads this way from then on.
    pub(super) downgraded: Option<(ReloadMode, String)>,
}

/// How many of [`ManagedPlugin::closed_stdins`] are remembered: a
/// generation's last lines come within moments of its stdin closing.
pub(super) const CLOSED_STDINS_KEPT: usize = 8;

/// How many of a plugin's warnings of one kind were logged, and not, in
/// the current window.
#[derive(Debug)]
pub(super) struct Noise {
    pub(super) since: Instant,
    pub(super) logged: u32,
    pub(super) suppressed: u64,
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
            life: Life::new(),
            generations: Gen::default(),
            retry: None,
            retiring: vec![],
            registered: None,
            held: VecDeque::new(),
            held_notifications: VecDeque::new(),
            restart_waiters: vec![],
            again: None,
            reloads: 0,
            tier_ups: 0,
            crashes: 0,
            recent_crashes: VecDeque::new(),
            last_reload: None,
            last_compile: None,
            last_error: None,
            last_diff: None,
            dropped_notifications: 0,
            busy_retries: 0,
            stuck_starts: 0,
            refused: None,
            noise: HashMap::new(),
            closed_stdins: VecDeque::new(),
            saved: None,
            handover_since: None,
            last_handover: None,
            downgraded: None,
        }
    }

    /// What it is doing.
    pub fn phase(&self) -> &Phase {
        self.life.phase()
    }

    /// Its phase's epoch: a timer set in an earlier one is stale.
    pub fn epoch(&self) -> Epoch {
        self.life.epoch()
    }

    /// The manifest of the generation serving now, else the registered one.
    pub fn current_manifest(&self) -> Option<&Manifest> {
        self.phase()
            .generation()
            .and_then(|g| g.manifest.as_ref())
            .or(self.registered.as_ref())
    }

    /// Whether it is past getmanifest (manifest known or failed).
    pub fn manifest_settled(&self) -> bool {
        !matches!(
            self.phase(),
            Phase::Starting {
                step: Step::Manifest,
                ..
            }
        )
    }

    /// Whether it is past init (serving or down).
    pub fn init_settled(&self) -> bool {
        !matches!(self.phase(), Phase::Starting { .. })
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
    pub(super) fn closing_stdin(&mut self, number: Gen) {
        if self.closed_stdins.len() == CLOSED_STDINS_KEPT {
            self.closed_stdins.pop_front();
        }
        self.closed_stdins.push_back(number);
    }

    pub(super) fn role(&self, number: Gen) -> Option<Role> {
        if self
            .phase()
            .generation()
            .is_some_and(|g| g.number == number)
        {
            return Some(Role::Current);
        }
        if self.phase().next().is_some_and(|g| g.number == number) {
            return Some(Role::Next);
        }
        self.retiring
            .iter()
            .position(|r| r.gen.number == number)
            .map(Role::Retiring)
    }

    pub(super) fn gen_mut(&mut self, role: Role) -> Option<&mut Generation> {
        match role {
            Role::Next => self.life.next_mut(),
            Role::Retiring(i) => self.retiring.get_mut(i).map(|r| &mut r.gen),
            Role::Current => self.life.generation_mut(),
        }
    }

    /// Every generation still running, for shutdown.
    pub fn all_generations(&self) -> impl Iterator<Item = &Generation> {
        self.phase()
            .generation()
            .into_iter()
            .chain(self.phase().next())
            .chain(self.retiring.iter().map(|r| &r.gen))
    }

    /// The status entry for `autoreload-status`.
    pub(super) fn status(&self, in_flight: usize) -> Value {
        let gen = self.phase().generation();
        let mut s = json!({
            "name": self.name,
            "path": self.path,
            "backend": self.backend.name(),
            "state": self.phase().name(),
            "generation": gen.map(|g| g.number),
            "pid": gen.and_then(|g| g.pid),
            "reloads": self.reloads,
            "tier_ups": self.tier_ups,
            "crashes": self.crashes,
            "in_flight": in_flight,
            "held": self.held.len(),
            "retiring": self.retiring.len(),
            "dropped_notifications": self.dropped_notifications,
            "registered": self.registered.is_some(),
            "last_error": self.last_error,
        });
        if let Phase::Down { reason } = &self.phase() {
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
        if let Some(c) = &self.last_compile {
            s["last_compile"] = c.to_json();
        }
        if let Some(d) = &self.last_diff {
            s["manifest_changes"] = d.to_json();
        }
        if let Some(h) = &self.last_handover {
            s["last_handover"] = h.clone();
        }
        if let Some((mode, why)) = &self.downgraded {
            s["reload_mode_why"] = json!(why);
            if *mode == ReloadMode::Cold {
                s["break_before_make"] = json!(why);
            }
        }
        s
    }
}
