//! Where a reload happens: the transitions of each plugin's life cycle
//! (start, warm up, serve, drain, stop, init, roll back, retire, crash,
//! back off).
//!
//! Three ways to reload ([`ReloadMode`]), native and wasm alike:
//! - warm (the default): the new version starts and answers getmanifest
//!   beside the old one ([`Phase::Swapping`]); then the old one drains
//!   ([`Phase::Draining`] with the new one waiting beside it), hands over
//!   its state and stops ([`Phase::Stopping`], [`Then::Init`]); only once
//!   it is gone does the new one get init ([`Phase::Starting`]), so that
//!   the two never hold a port, a lock or a file at once;
//! - cold (break-before-make; the default for a plugin with the
//!   `db_write` hook, which may read its journal as soon as it starts):
//!   the old one drains, hands over and stops before the new one starts;
//! - full overlap: the new version's init too runs beside the old one,
//!   which serves until the new one has answered it and then retires.
//!
//! A new version that fails while the old one serves never replaced
//! anything. One that fails once the old one is gone (warm, cold) brings
//! the old version back (`Trigger::Rollback`: the host ran a kept copy of
//! its file), with the state it handed over. A failure that says the new
//! version could not take something the old one holds makes this reload,
//! and later ones, more cautious.
//!
//! Owns: every change of a plugin's [`Phase`]. Must not: do I/O (a spawn,
//! a signal, a timer go out as [`Output`]s), parse lightningd's traffic or
//! decide routes.

mod handover;
mod life;
mod startup;

use life::Change;
pub use life::Life;

use super::plugin::*;
use super::{InstanceOp, Output, Source, Spawn, SpawnError, Supervisor, Timer};
use crate::backend::{BackendKind, Exit};
use crate::framing::RawId;
use crate::ids::{Epoch, Gen, OwnRequest, PluginId};
use crate::jsonrpc::{self, ErrorKind};
use crate::link::Level;
pub(crate) use crate::options::Scope;
use crate::options::{self, PerPlugin};
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::time::Duration;

pub(super) const BUSY_RETRY: Duration = Duration::from_millis(20);
pub(super) const BUSY_RETRIES: u32 = 100;
pub(super) const CRASH_WINDOW: Duration = Duration::from_secs(30);
pub(super) const CRASH_LOOP: usize = 5;
/// Whether a plugin's new version starts beside the old one:
/// `[PLUGIN::]MODE`.
pub(crate) const OPT_OVERLAP: &str = options::OVERLAP.name;

/// The `autoreload-overlap` values, each read once: `None` is none of the
/// words [`parse_reload_mode`] knows.
pub(crate) type Overlap = PerPlugin<Option<ReloadMode>>;

/// Reads the `autoreload-overlap` values.
pub(crate) fn parse_overlap(values: &[String]) -> Overlap {
    PerPlugin::parse(values, |v| parse_reload_mode(v.trim()))
}

/// How plugin `name` reloads, by the `autoreload-overlap` values: its own
/// last value, else the last value for all, else `None` (the default). A
/// value that is none of the words below is taken as a warm start: a typo
/// must not stop a plugin for the length of every reload.
pub(crate) fn reload_mode_value(values: &Overlap, name: &str) -> Option<(ReloadMode, Scope)> {
    let v = values.last_for(name)?;
    Some((v.value.unwrap_or(ReloadMode::Warm), v.scope()))
}

/// `warm` (the default), `full` (also `true`, `on`, `yes`, `1`: what
/// `true` always meant, a new version's `init` beside the old one) or
/// `false` (also `cold`, `off`, `no`, `0`: break-before-make).
fn parse_reload_mode(v: &str) -> Option<ReloadMode> {
    match v {
        "warm" => Some(ReloadMode::Warm),
        "full" | "true" | "on" | "yes" | "1" => Some(ReloadMode::Overlap),
        "cold" | "false" | "off" | "no" | "0" => Some(ReloadMode::Cold),
        _ => None,
    }
}

/// Problems with `autoreload-overlap` values, given the plugins' names.
pub(crate) fn overlap_problems(values: &Overlap, names: &[String]) -> Vec<String> {
    let mut out = vec![];
    for v in values.iter() {
        let (raw, rest) = (&v.raw, &v.text);
        if let Some(n) = v.plugin.as_ref().filter(|n| !names.contains(n)) {
            out.push(format!(
                "{OPT_OVERLAP}={raw}: no managed plugin is called '{n}' (managed: {}): ignored",
                names.join(", ")
            ));
        }
        if v.value.is_none() {
            out.push(format!(
                "{OPT_OVERLAP}={raw}: '{rest}' is none of warm, full (true) or false (cold): taken as warm"
            ));
        }
    }
    out
}

/// A line of a new version's stderr saying it could not take something
/// the old version holds (a port, a lock), if there is one: then it is
/// not broken, it only cannot run beside the old one.
pub(super) fn conflict_line<'a>(
    tail: &'a VecDeque<String>,
    answer: Option<&'a str>,
) -> Option<&'a str> {
    const SIGNS: &[&str] = &[
        "address already in use",
        "address in use",
        "eaddrinuse",
        "already in use",
        "resource temporarily unavailable",
        "would block",
        "ewouldblock",
        "database is locked",
        "lock file",
        "lockfile",
        "acquire lock",
        "already locked",
        "already running",
        "another instance",
    ];
    // pyln-client answers an exception in `init` with an error and
    // writes nothing to stderr: the answer counts as much as the lines.
    answer
        .into_iter()
        .chain(tail.iter().rev().map(String::as_str))
        .find(|l| {
            let l = l.to_lowercase();
            SIGNS.iter().any(|s| l.contains(s))
        })
}

impl Supervisor {
    /// Starts a new generation of plugin `p` now: the only one if none
    /// serves, or next to the serving one (wasm). It counts as started
    /// from here on; the loop answers [`Input::Spawned`] or
    /// [`Input::SpawnFailed`] before anything else happens.
    ///
    /// [`Input::Spawned`]: super::Input::Spawned
    /// [`Input::SpawnFailed`]: super::Input::SpawnFailed
    pub(crate) fn start(&mut self, p: PluginId, pending: Pending) {
        let sandbox = self.sandbox_for(p);
        let plugin = &mut self.plugins[p];
        plugin.retry = None;
        let number = plugin.generations.next();
        plugin.generations = number;
        let urgency = match plugin.phase().serving() {
            Some(_) => crate::backend::wasm::Urgency::Background,
            None => crate::backend::wasm::Urgency::Urgent,
        };
        let source = match pending.trigger {
            Trigger::Rollback(gen) | Trigger::TierUp(gen) => Source::Kept(gen),
            _ => Source::File,
        };
        self.out.push(Output::Spawn(Spawn {
            plugin: p,
            gen: number,
            path: plugin.path.clone(),
            source,
            sandbox: sandbox.clone(),
            urgency,
        }));
        let id = OwnRequest::Getmanifest.id(number);
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
            started: self.now,
            compiled: plugin.backend == BackendKind::Native,
        };
        // Beside the one that serves, or in place of whatever was (down,
        // or a start being replaced).
        plugin.life.transition(|old| {
            let new = match old {
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
            Change::To(new, ())
        });
        self.after(self.config.start_timeout, p, Timer::StartTimeout);
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
        let Some(pending) = plugin.phase().start_pending() else {
            return;
        };
        let swapping = match role {
            Some(Role::Current) if matches!(plugin.phase(), Phase::Starting { .. }) => false,
            Some(Role::Next) => true,
            _ => return,
        };
        // Nothing can be in flight to a generation that never answered
        // getmanifest, but nothing must be lost if something were.
        self.orphans(p, number, &Exit::plain("could not be started"), true);
        let plugin = &mut self.plugins[p];
        let soon = matches!(error, SpawnError::Busy | SpawnError::NotExecutable);
        if soon && plugin.busy_retries < BUSY_RETRIES {
            // Still open for writing (a compiler finishing), or renamed
            // into place with its `chmod +x` still to come (the chmod
            // falls in the settle window after the rename and is no save
            // of its own): shortly.
            plugin.busy_retries += 1;
            plugin.life.transition(|old| {
                let new = match old {
                    Phase::Swapping { gen, .. } => Phase::Serving { gen },
                    _ => Phase::Down {
                        reason: "file busy, retrying".into(),
                    },
                };
                Change::To(new, ())
            });
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
        self.start_failed(p, why);
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
        plugin.life.replace(Phase::Down { reason: why });
    }

    /// Asks for a new generation of `p` (file changed, restart); `file`
    /// is the plugin file as it is now, if that matters (a file change).
    pub(crate) fn reload_for(&mut self, p: PluginId, pending: Pending, file: Option<FileStamp>) {
        if let Some(why) = self.plugins[p].refused.clone() {
            return self.answer_waiters(p, Err(why));
        }
        let grace = self.config.grace;
        let start_timeout = self.config.start_timeout;
        let wasm = self.plugins[p].backend == BackendKind::Wasm;
        let beside = self.reload_mode(p) != ReloadMode::Cold;
        let plugin = &mut self.plugins[p];
        match plugin.phase() {
            Phase::Down { .. } => {
                plugin.recent_crashes.clear();
                self.start(p, pending);
            }
            // Warm start or full overlap: the new one starts beside it.
            Phase::Serving { .. } if beside => self.start(p, pending),
            Phase::Serving { .. } => self.break_before_make(p, pending),
            // A version that is starting (and none serves) finishes its
            // start, then the reload goes ahead if the file changed since
            // it started: replacing it would start the next one from
            // nothing again, and saves that come faster than the plugin
            // starts (a pyln-client plugin takes ~160 ms, a wasm compile on
            // a busy machine seconds) would keep it from ever serving. One
            // that has run for longer than the grace period without an
            // answer is likely stuck: it is replaced at once (and the next
            // one is given twice as long). A module still compiling is not
            // stuck, however long that takes.
            Phase::Starting { gen, .. } => {
                let patience = grace
                    .saturating_mul(1 << plugin.stuck_starts.min(5))
                    .min(start_timeout);
                let stuck =
                    gen.compiled && self.now.saturating_duration_since(gen.started) > patience;
                let newer = pending.trigger != Trigger::Restart && file != gen.file;
                if stuck {
                    plugin.stuck_starts += 1;
                    if wasm {
                        self.replace_starting(p, pending);
                    } else {
                        self.stop(p, Then::Start(pending));
                    }
                } else if newer {
                    plugin.again = Some(pending);
                }
            }
            Phase::Swapping { next, .. } => {
                let next = next.number;
                // A state the old one saved for this new one is stale
                // once it serves on: the next hand-over asks it again.
                plugin.saved = None;
                plugin.life.transition(|old| match old {
                    Phase::Swapping { gen, .. } => Change::To(Phase::Serving { gen }, ()),
                    other => Change::Same(other),
                });
                self.instance(p, next, InstanceOp::Kill);
                self.start(p, pending);
                self.release_held(p);
            }
            // Already on the way to a new generation. One that warmed up
            // beside the old version read the file as it was then, and a
            // version brought back is not the file at all: if it changed
            // since, the reload goes ahead once that one serves.
            phase @ (Phase::Draining { .. } | Phase::Stopping { .. }) => {
                // A version brought back, or swapped in for its optimized
                // code, is a kept copy, not the file as it is now.
                let kept = matches!(
                    phase,
                    Phase::Stopping {
                        then: Then::Start(Pending {
                            trigger: Trigger::Rollback(_) | Trigger::TierUp(_),
                            ..
                        }),
                        ..
                    }
                );
                let stale = kept
                    || phase.next().is_some_and(|next| {
                        pending.trigger != Trigger::Restart && file != next.file
                    });
                if stale {
                    plugin.again = Some(pending);
                }
            }
        }
    }

    /// How plugin `p` reloads now: as configured, or more cautiously
    /// since a new version could not run beside the old one.
    ///
    /// The default is a warm start, but for a plugin that takes the
    /// `db_write` hook: such a plugin journals lightningd's database, and
    /// may read its journal as soon as it starts, before getmanifest (the
    /// community `backup` plugin does, in its `__main__`): warmed up beside
    /// the old version, it would read a journal the old one is still
    /// appending to, find itself behind on the next write and shut
    /// lightningd down. Break-before-make lets it read the journal only
    /// once the old version has written its last write; lightningd waits
    /// for the writes meanwhile.
    pub(crate) fn reload_mode(&self, p: PluginId) -> ReloadMode {
        let plugin = &self.plugins[p];
        let journals = plugin
            .current_manifest()
            .is_some_and(|m| m.hooks.contains_key("db_write"));
        // A value meant for every plugin does not reach a journaling one:
        // only its name can take it out of break-before-make.
        let configured = match reload_mode_value(&self.config.overlap, &plugin.name) {
            Some((mode, Scope::Named)) => mode,
            Some((mode, Scope::All)) if !journals => mode,
            _ if journals => ReloadMode::Cold,
            _ => ReloadMode::Warm,
        };
        match &plugin.downgraded {
            Some((mode, _)) => configured.min(*mode),
            None => configured,
        }
    }

    /// Reloads plugin `p`, which serves, break-before-make: it finishes
    /// what it has in flight (new requests wait), hands over its state,
    /// stops, and then the new version starts.
    pub(super) fn break_before_make(&mut self, p: PluginId, pending: Pending) {
        let draining = self.plugins[p].life.transition(|old| match old {
            Phase::Serving { gen } => Change::To(
                Phase::Draining {
                    gen,
                    pending,
                    saving: false,
                    next: None,
                },
                (),
            ),
            other => Change::Same(other),
        });
        if draining.is_some() {
            self.draining(p);
        }
    }

    /// The new version warmed up beside the old one (it answered
    /// getmanifest): the old one finishes what it has in flight (new
    /// requests wait), hands over its state and stops; then the new one
    /// gets `init`, so that it never takes a file, port or lock the old
    /// one still holds.
    pub(super) fn warmed_up(&mut self, p: PluginId) {
        let draining = self.plugins[p].life.transition(|old| match old {
            Phase::Swapping {
                gen, next, pending, ..
            } => Change::To(
                Phase::Draining {
                    gen,
                    pending,
                    saving: false,
                    next: Some(next),
                },
                (),
            ),
            other => Change::Same(other),
        });
        if draining.is_some() {
            self.draining(p);
        }
    }

    /// The plugin drains: its generation finishes what it has in flight
    /// before it is asked for its state and stopped; the version that
    /// warmed up beside it, if any, waits for `init` meanwhile.
    fn draining(&mut self, p: PluginId) {
        if self.router.count(p) == 0 {
            self.drained(p);
        } else {
            self.after(self.config.grace, p, Timer::GraceOver);
        }
    }

    /// Kills the generation in start-up (wasm, or native before it had
    /// init) and starts a new one in its place. What it had in flight
    /// (before lightningd's init it takes requests) is handed on as after
    /// a reload: hooks to the new one.
    pub(super) fn replace_starting(&mut self, p: PluginId, pending: Pending) {
        let Some(number) = self.plugins[p].life.transition(|old| match old {
            Phase::Starting { gen, .. } => Change::To(
                Phase::Down {
                    reason: "replaced during start-up".into(),
                },
                gen.number,
            ),
            other => Change::Same(other),
        }) else {
            return;
        };
        self.instance(p, number, InstanceOp::Kill);
        // Start first, so that the hooks wait for the new generation.
        self.start(p, pending);
        let exit = Exit::plain("was replaced during start-up");
        self.orphans(p, number, &exit, true);
    }

    /// Tells plugin `p`'s generation to stop (shutdown notification, if
    /// it wants one, stdin closed, then SIGTERM and SIGKILL if it
    /// lingers); `then` says what happens once it is gone. A version
    /// beside it must have been dealt with: it goes with the old phase.
    pub(crate) fn stop(&mut self, p: PluginId, then: Then) {
        let stopping = self.plugins[p].life.transition(|old| match old {
            Phase::Serving { gen }
            | Phase::Starting { gen, .. }
            | Phase::Swapping { gen, .. }
            | Phase::Draining { gen, .. }
            | Phase::Stopping { gen, .. } => Change::To(Phase::Stopping { gen, then }, ()),
            down @ Phase::Down { .. } => Change::Same(down),
        });
        if stopping.is_some() {
            self.stopping(p);
        }
    }

    /// The plugin's generation was told to stop: tell it so.
    fn stopping(&mut self, p: PluginId) {
        let Phase::Stopping { gen, .. } = self.plugins[p].phase() else {
            return;
        };
        let (number, shutdown) = (gen.number, gen.subscribes("shutdown"));
        if shutdown {
            let shutdown = jsonrpc::notification("shutdown", json!({"shutdown": {}}));
            self.instance(p, number, InstanceOp::Send(shutdown));
        }
        self.instance(p, number, InstanceOp::CloseStdin);
        self.plugins[p].closing_stdin(number);
        self.after(self.config.stop_timeout, p, Timer::Terminate);
    }

    /// Moves the serving generation out (wasm): it finishes its requests in
    /// flight within the grace period, then stops.
    /// `autoreload-restart` callers waiting for the reload are answered
    /// (`answer`) once it is gone: until then it may still hold what the
    /// caller wants released.
    pub(super) fn retire(
        &mut self,
        p: PluginId,
        gen: Generation,
        waiters: Vec<RawId>,
        answer: Value,
    ) {
        let number = gen.number;
        self.plugins[p].retiring.push(Retiring {
            gen,
            closed: false,
            waiters,
            answer,
        });
        if self.router.count_generation(p, number) == 0 {
            self.close_retiring(p, number);
        } else {
            self.after(self.config.grace, p, Timer::RetireGrace(number));
        }
    }

    pub(super) fn close_retiring(&mut self, p: PluginId, number: Gen) {
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
    pub(super) fn fail(&mut self, p: PluginId, why: String) {
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
        plugin.life.replace(Phase::Down {
            reason: why.clone(),
        });
        self.answer_waiters(p, Err(why));
        self.flush_held(p);
    }

    /// The generation meant to replace the serving one failed before it
    /// got to serve. While the old one serves, it stays. While the old
    /// one is on its way out (warm start, after its state was handed
    /// over), its version comes back once it is gone. A new version that
    /// failed for something the old one holds (a port, a lock: its
    /// stderr or its error answer says so) is not broken: the reload goes
    /// on more cautiously, and later ones too.
    pub(super) fn next_failed(&mut self, p: PluginId, why: String) {
        let plugin = &mut self.plugins[p];
        let name = plugin.name.clone();
        match plugin.phase() {
            Phase::Swapping { next, step, .. } => {
                let (number, step) = (next.number, *step);
                let conflict = conflict_line(&next.stderr_tail, Some(&why)).map(str::to_owned);
                plugin.saved = None;
                self.instance(p, number, InstanceOp::Kill);
                // The old one serves on, without the new one beside it.
                let Some(pending) = self.plugins[p].life.transition(|old| match old {
                    Phase::Swapping { gen, pending, .. } => {
                        Change::To(Phase::Serving { gen }, pending)
                    }
                    other => Change::Same(other),
                }) else {
                    return;
                };
                if let Some(line) = conflict {
                    // Before its init, only its start can have taken
                    // something: it cannot even start beside the old one.
                    // In init (full overlap), a warm start keeps the two
                    // inits apart.
                    let (mode, how) = if step == Step::Manifest {
                        (
                            ReloadMode::Cold,
                            "stopping the old one before the new one starts",
                        )
                    } else {
                        (
                            ReloadMode::Warm,
                            "giving the new one init only once the old one is gone",
                        )
                    };
                    self.out.log(
                        Level::Warn,
                        format!(
                            "[{name}] its new version cannot run beside the old one (\"{line}\"): {how}, for this reload and from now on (autoreload-overlap={name}::{} says so up front)",
                            if mode == ReloadMode::Cold { "false" } else { "warm" }
                        ),
                    );
                    self.plugins[p].downgraded = Some((mode, line));
                    return match mode {
                        ReloadMode::Cold => self.break_before_make(p, pending),
                        _ => self.start(p, pending),
                    };
                }
                self.release_held(p);
            }
            Phase::Draining {
                next: Some(next), ..
            } => {
                // It failed while waiting for init: the old version has
                // not stopped yet, and serves on. A save it may still
                // answer is for nobody now.
                let number = next.number;
                plugin.saved = None;
                self.instance(p, number, InstanceOp::Kill);
                self.plugins[p].life.transition(|old| match old {
                    Phase::Draining { gen, .. } => Change::To(Phase::Serving { gen }, ()),
                    other => Change::Same(other),
                });
                self.release_held(p);
            }
            Phase::Stopping {
                then: Then::Init { next, pending },
                ..
            } => {
                let (number, pending) = (next.number, *pending);
                self.instance(p, number, InstanceOp::Kill);
                // The old one is on its way out all the same: what
                // follows it changes, not its stop.
                let then = self.fallback(p, pending, &why);
                self.plugins[p].life.set_then(then);
                self.plugins[p].last_error = Some(why.clone());
                return self.answer_waiters(p, Err(why));
            }
            _ => return,
        }
        let plugin = &mut self.plugins[p];
        self.out.log(
            Level::Warn,
            format!("[{name}] new version not started, the old one keeps serving: {why}"),
        );
        plugin.last_error = Some(why.clone());
        self.answer_waiters(p, Err(why));
    }

    /// What follows a new version that failed once the old one was
    /// stopped for it: the old one's version comes back (with the state
    /// it handed over), or, if this start was that comeback, the plugin
    /// is down until the next save.
    fn fallback(&mut self, p: PluginId, pending: Pending, why: &str) -> Then {
        let name = &self.plugins[p].name;
        match pending.fallback {
            Some(old) => {
                self.out.log(
                    Level::Warn,
                    format!("[{name}] new version failed after the old one stopped: {why}. Bringing back the version generation {old} ran; save again to retry"),
                );
                Then::Start(Pending::at(Trigger::Rollback(old), self.now))
            }
            None => Then::Down(why.to_string()),
        }
    }

    pub(super) fn answer_waiters(&mut self, p: PluginId, outcome: Result<Value, String>) {
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

    /// The generation in start-up failed.
    pub(super) fn start_failed(&mut self, p: PluginId, why: String) {
        match self.plugins[p].phase() {
            Phase::Starting { .. } => {
                let reason = why.clone();
                let Some((number, pending)) = self.plugins[p].life.transition(|old| match old {
                    Phase::Starting { gen, pending, .. } => {
                        Change::To(Phase::Down { reason }, (gen.number, pending))
                    }
                    other => Change::Same(other),
                }) else {
                    return;
                };
                self.instance(p, number, InstanceOp::Kill);
                self.start_gone(p, pending, why);
            }
            Phase::Swapping { .. } => self.next_failed(p, why),
            _ => {}
        }
    }

    /// A start that no version serves beside failed: a newer file saved
    /// meanwhile is tried, else the version stopped for it comes back,
    /// else the plugin is down.
    fn start_gone(&mut self, p: PluginId, pending: Pending, why: String) {
        let plugin = &mut self.plugins[p];
        if let Some(again) = plugin.again.as_mut() {
            // The newer one may fail too: what comes back then is the same.
            again.fallback = pending.fallback;
        } else if pending.fallback.is_some() {
            plugin.last_error = Some(why.clone());
            self.answer_waiters(p, Err(why.clone()));
            if let Then::Start(rollback) = self.fallback(p, pending, &why) {
                return self.start(p, rollback);
            }
        }
        self.fail(p, why);
        self.startup_progress();
    }

    /// The current generation ended.
    pub(super) fn on_exit(&mut self, p: PluginId, exit: Exit) {
        let Some(number) = self.plugins[p].phase().generation().map(|g| g.number) else {
            return;
        };
        let starting = matches!(self.plugins[p].phase(), Phase::Starting { .. });
        let why = self.exit_reason(
            p,
            Role::Current,
            &exit,
            if starting { "during start-up" } else { "" },
        );
        let why = why.trim_end().to_string();
        let plugin = &mut self.plugins[p];
        // Down, for now: its generation is gone. What the phase was says
        // what comes next.
        let phase = plugin.life.replace(Phase::Down {
            reason: why.clone(),
        });
        let name = plugin.name.clone();
        // Make sure nothing it started outlives it.
        self.instance(p, number, InstanceOp::Kill);
        match phase {
            Phase::Stopping {
                then: Then::Start(pending),
                ..
            } => {
                // Start first, so that hooks it never answered wait for
                // the new generation instead of being answered for it.
                self.start(p, pending);
                self.orphans(p, number, &exit, true);
            }
            Phase::Stopping {
                then: Then::Init { next, pending },
                ..
            } => {
                // Its ports, locks and files are released: the version
                // that warmed up beside it gets init now. Hooks it never
                // answered wait for that one.
                self.plugins[p].life.replace(Phase::Starting {
                    gen: *next,
                    step: Step::WaitInit,
                    pending,
                });
                self.orphans(p, number, &exit, true);
                self.send_init(p);
            }
            Phase::Stopping {
                then: Then::Down(reason),
                ..
            } => {
                self.orphans(p, number, &exit, true);
                self.plugins[p].life.replace(Phase::Down { reason });
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
            Phase::Starting { pending, .. } => {
                self.plugins[p].crashes += 1;
                self.start_gone(p, pending, why);
            }
            Phase::Swapping {
                next,
                step,
                pending,
                ..
            } => {
                // The serving one died mid-swap: the next one carries on;
                // if it is still compiling in the background, where a busy
                // machine may starve it, it starts over at once at normal
                // priority, since calls now wait for it.
                self.plugins[p].crashes += 1;
                self.out.log(Level::Warn, format!("[{name}] {why}"));
                if matches!(step, Step::Handover | Step::Save) {
                    // It died before it handed its state over: the new
                    // one serves as it is.
                    self.plugins[p].saved = None;
                    self.plugins[p].life.replace(Phase::Starting {
                        gen: *next,
                        step,
                        pending,
                    });
                    self.serve(p);
                } else if next.compiled {
                    self.plugins[p].life.replace(Phase::Starting {
                        gen: *next,
                        step,
                        pending,
                    });
                } else {
                    self.instance(p, next.number, InstanceOp::Kill);
                    self.start(p, pending);
                }
                self.orphans(p, number, &exit, false);
            }
            Phase::Draining { next, .. } => {
                // A version that warmed up beside it is not known to work
                // yet: it goes, and the plugin restarts as after any crash.
                if let Some(next) = next {
                    self.instance(p, next.number, InstanceOp::Kill);
                }
                self.crashed(p, number, &exit, why)
            }
            Phase::Serving { .. } => self.crashed(p, number, &exit, why),
            Phase::Down { .. } => {}
        }
    }

    /// The generation that served crashed: answer what it had in flight,
    /// then restart it at once, after a back-off, or not at all (a crash
    /// loop).
    pub(super) fn crashed(&mut self, p: PluginId, number: Gen, exit: &Exit, why: String) {
        let plugin = &mut self.plugins[p];
        plugin.crashes += 1;
        plugin.last_error = Some(why.clone());
        // A crash leaves nothing to hand over: the next version starts
        // fresh.
        plugin.saved = None;
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
        let pending = Pending::at(Trigger::Crash, now);
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
            plugin.life.replace(Phase::Down {
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
            Timer::StateTimeout(number) => return self.state_timed_out(p, number),
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
        if plugin.epoch() != epoch {
            return;
        }
        match timer {
            Timer::GraceOver => match plugin.phase() {
                Phase::Draining { .. } => self.drained(p),
                Phase::Swapping {
                    step: Step::Handover,
                    ..
                } => self.ask_state(p),
                _ => {}
            },
            Timer::Terminate => {
                if let Phase::Stopping { gen, .. } = plugin.phase() {
                    let number = gen.number;
                    self.instance(p, number, InstanceOp::Terminate);
                    let t = self.config.stop_timeout;
                    // Same epoch: the kill is for this very stop.
                    self.after(t, p, Timer::Kill);
                }
            }
            Timer::Kill => {
                if let Phase::Stopping { gen, .. } = plugin.phase() {
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
                // One handing over state has its own, shorter, timeout.
                let waits_for_plugin = plugin
                    .phase()
                    .start_step()
                    .is_some_and(|step| matches!(step, Step::Manifest | Step::Init));
                if waits_for_plugin {
                    let why = format!(
                        "no answer to getmanifest/init within {} ms (autoreload-start-timeout-ms)",
                        self.config.start_timeout.as_millis()
                    );
                    self.start_failed(p, why);
                }
            }
            Timer::Retry => {
                let idle = matches!(plugin.phase(), Phase::Down { .. } | Phase::Serving { .. });
                if let (true, Some(pending)) = (idle, plugin.retry.take()) {
                    self.start(p, pending);
                }
            }
            Timer::RetireGrace(_)
            | Timer::RetireKill(_)
            | Timer::QuietOver(_)
            | Timer::StateTimeout(_) => {}
        }
    }

    /// A draining generation has nothing left in flight (or its grace is
    /// over): it is asked for its state, if it keeps one, then stopped, and
    /// the reload goes on.
    pub(crate) fn drained(&mut self, p: PluginId) {
        let keeps_state = match self.plugins[p].phase() {
            Phase::Draining {
                gen, saving: false, ..
            } => gen.keeps_state(),
            _ => return,
        };
        if !keeps_state {
            return self.stop_drained(p);
        }
        let number = self.plugins[p].life.transition(|old| match old {
            Phase::Draining {
                gen, pending, next, ..
            } => {
                let number = gen.number;
                let saving = Phase::Draining {
                    gen,
                    pending,
                    saving: true,
                    next,
                };
                Change::To(saving, number)
            }
            other => Change::Same(other),
        });
        if let Some(number) = number {
            self.send_save(p, number);
        }
    }

    /// The drained generation (its state saved, if it keeps one) stops.
    /// Once it is gone, the version that warmed up beside it gets init,
    /// or (break-before-make) a new one starts; if that fails, this one's
    /// version comes back.
    pub(super) fn stop_drained(&mut self, p: PluginId) {
        let stopping = self.plugins[p].life.transition(|old| match old {
            Phase::Draining {
                gen, pending, next, ..
            } => {
                let pending = pending.falling_back_to(gen.number);
                let then = match next {
                    Some(next) => Then::Init { next, pending },
                    None => Then::Start(pending),
                };
                Change::To(Phase::Stopping { gen, then }, ())
            }
            other => Change::Same(other),
        });
        if stopping.is_some() {
            self.stopping(p);
        }
    }

    /// The optimized code of generation `number`'s module is ready (wasm
    /// tiering). If that generation still serves, with nothing else on
    /// its way, the same version swaps in running it: a reload of its kept
    /// copy, through the same swap and state hand-over as a save, so no
    /// caller notices. Only a plugin that keeps its state across reloads
    /// asks for this ([`Supervisor::serve`]): another would lose what it
    /// holds in memory to a swap nobody asked for, and gets the optimized
    /// code at its next start.
    pub(crate) fn optimized(
        &mut self,
        p: PluginId,
        number: Gen,
        outcome: Result<crate::backend::wasm::Optimized, crate::backend::wasm::OptimizeError>,
    ) {
        let plugin = &self.plugins[p];
        if let Err(e) = outcome {
            if !matches!(e, crate::backend::wasm::OptimizeError::Off) {
                let name = &plugin.name;
                self.out.log(
                    Level::Info,
                    format!("[{name}] generation {number} keeps running Winch's code: {e}"),
                );
            }
            return;
        }
        let serves = matches!(plugin.phase(), Phase::Serving { gen } if gen.number == number);
        let busy = plugin.again.is_some() || plugin.retry.is_some() || plugin.refused.is_some();
        if serves && !busy && !self.shutting_down {
            self.reload_for(p, Pending::at(Trigger::TierUp(number), self.now), None);
        }
    }

    /// `autoreload-restart`: answer `id` once the new generation serves.
    pub(crate) fn restart(&mut self, p: PluginId, id: RawId) {
        self.plugins[p].restart_waiters.push(id);
        if let Some(why) = self.plugins[p].refused.clone() {
            return self.answer_waiters(p, Err(why));
        }
        let reloading = matches!(
            self.plugins[p].phase(),
            Phase::Draining { .. }
                | Phase::Stopping {
                    then: Then::Start(_) | Then::Init { .. },
                    ..
                }
                | Phase::Swapping { .. }
        );
        if !reloading {
            self.reload_for(p, Pending::at(Trigger::Restart, self.now), None);
        }
    }

    /// Stops everything of plugin `p` for good (shutdown).
    pub(crate) fn shut_down(&mut self, p: PluginId) {
        self.plugins[p].again = None;
        self.plugins[p].retry = None;
        let numbers: Vec<Gen> = self.plugins[p]
            .retiring
            .iter()
            .map(|r| r.gen.number)
            .collect();
        for n in numbers {
            self.close_retiring(p, n);
        }
        if let Some(next) = self.plugins[p].phase().next().map(|g| g.number) {
            self.instance(p, next, InstanceOp::Kill);
        }
        let stopped = || Then::Down("stopped".into());
        match self.plugins[p].phase() {
            Phase::Down { .. } => {}
            // On its way out already: it stays down once it is gone.
            Phase::Stopping { .. } => {
                self.plugins[p].life.set_then(stopped());
            }
            _ => self.stop(p, stopped()),
        }
    }
}
