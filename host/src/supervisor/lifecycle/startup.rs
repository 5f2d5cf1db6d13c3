//! A generation's start-up, step by step: its getmanifest answered, its
//! init sent once lightningd's own init is known (in a sandbox that init
//! may change), its init answered, and then it serves.
//!
//! Owns: those steps of a start and the move to [`Phase::Serving`].
//! Must not: read what an instance says beyond those answers
//! ([`super::super::instance`] hands them over).

use super::super::plugin::*;
use super::super::{InstanceOp, Output, Supervisor, Timer};
use super::life::Change;
use crate::backend::wasm::{Compiler, Tier};
use crate::backend::BackendKind;
use crate::framing::Message;
use crate::ids::{OwnRequest, PluginId};
use crate::init::CachedInit;
use crate::jsonrpc;
use crate::link::Level;
use crate::manifest::{Diff, Manifest};
use serde_json::{json, Value};

impl Supervisor {
    /// The generation in start-up answered getmanifest.
    pub(in crate::supervisor) fn on_manifest(&mut self, p: PluginId, m: &Message) {
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
        let Some(gen) = plugin.life.starting_mut() else {
            return;
        };
        gen.manifest = Some(manifest);
        plugin.life.step(Step::WaitInit);
        if matches!(plugin.phase(), Phase::Swapping { .. })
            && self.reload_mode(p) == ReloadMode::Warm
        {
            return self.warmed_up(p);
        }
        self.send_init(p);
        if self.init.is_none() {
            // lightningd may be waiting on a request held for this plugin
            // (a `db_write` before its init): it goes through now.
            self.release_held(p);
        }
        self.startup_progress();
    }

    /// Sends init to a generation waiting for it, once lightningd's init
    /// is known.
    pub(crate) fn send_init(&mut self, p: PluginId) {
        let Some(cached) = &self.init else { return };
        let plugin = &mut self.plugins[p];
        let registered = plugin.registered.clone();
        if plugin.phase().start_step() != Some(Step::WaitInit) {
            return;
        }
        let Some(gen) = plugin.life.starting_mut() else {
            return;
        };
        let Some(manifest) = &gen.manifest else {
            return;
        };
        let params = CachedInit::params_for(cached, registered.as_ref(), manifest);
        let id = OwnRequest::Init.id(gen.number);
        let number = gen.number;
        // A new epoch: the time spent waiting for lightningd's init was
        // not the plugin's, and its init gets the whole start-up timeout.
        plugin.life.step(Step::Init);
        self.instance(
            p,
            number,
            InstanceOp::Send(jsonrpc::request(&id, "init", params)),
        );
        self.after(self.config.start_timeout, p, Timer::StartTimeout);
    }

    /// lightningd's init has come: the generation that answered
    /// getmanifest at start-up gets it, unless it was started in another
    /// sandbox than init now gives it (wasm: the default one, or the
    /// directories read from lightningd's command line; native: the
    /// `autoreload-native-*` values read there): then a fresh one takes its
    /// place (for wasm, of the same cached module).
    pub(crate) fn init_started(&mut self, p: PluginId) {
        let now = self.sandbox_for(p);
        let plugin = &self.plugins[p];
        match plugin.phase() {
            Phase::Starting {
                gen,
                step: Step::WaitInit,
                pending,
            } if gen.sandbox != now => {
                let pending = *pending;
                if plugin.backend == BackendKind::Native {
                    self.out.log(
                        Level::Info,
                        format!(
                            "[{}] restarted in the sandbox lightningd's init gives it",
                            plugin.name
                        ),
                    );
                }
                self.replace_starting(p, pending)
            }
            _ => self.send_init(p),
        }
    }

    /// The generation in start-up answered init.
    pub(in crate::supervisor) fn on_init_answer(&mut self, p: PluginId, m: &Message) {
        let answer = jsonrpc::parse(&m.raw).unwrap_or(Value::Null);
        if let Some(err) = answer.get("error") {
            return self.start_failed(p, format!("init failed: {err}"));
        }
        if let Some(why) = answer.get("result").and_then(|r| r.get("disable")) {
            return self.start_failed(p, format!("it disabled itself in init: {why}"));
        }
        self.init_answered(p);
    }

    /// The new generation serves from now on: the one it replaces (if any)
    /// retires, the held requests go to it, the reload is reported.
    pub(in crate::supervisor) fn serve(&mut self, p: PluginId) {
        let at = self.wall(self.now);
        let plugin = &mut self.plugins[p];
        let Some((old, pending)) = plugin.life.transition(|phase| match phase {
            Phase::Starting { gen, pending, .. } => {
                Change::To(Phase::Serving { gen }, (None, pending))
            }
            Phase::Swapping {
                gen, next, pending, ..
            } => Change::To(Phase::Serving { gen: *next }, (Some(gen), pending)),
            other => Change::Same(other),
        }) else {
            return;
        };
        let held = std::mem::take(&mut plugin.held_notifications);
        let Some(gen) = plugin.phase().serving() else {
            return;
        };
        let took = self.now.saturating_duration_since(pending.since);
        let number = gen.number;
        let keeps_state = gen.keeps_state();
        // What came while no version could take it, in order, before
        // the requests held meanwhile.
        let notifications: Vec<_> = held
            .into_iter()
            .map(|(topic, msg)| (gen.subscribes(&topic), msg))
            .collect();
        for (subscribes, msg) in notifications {
            if subscribes {
                self.out.push(Output::Instance {
                    plugin: p,
                    gen: number,
                    op: InstanceOp::Send(msg),
                });
            } else {
                plugin.dropped_notifications += 1;
            }
        }
        self.out.push(Output::Served {
            plugin: p,
            gen: number,
        });
        let plugin = &mut self.plugins[p];
        plugin.saved = None;
        // A version brought back serves because the new one failed: why
        // stays in sight.
        if !matches!(pending.trigger, Trigger::Rollback(_)) {
            plugin.last_error = None;
        }
        plugin.stuck_starts = 0;
        let ms = took.as_secs_f64() * 1000.0;
        match pending.trigger {
            Trigger::Startup => {}
            // The same version, faster: not a reload anybody asked for.
            Trigger::TierUp(_) => {
                plugin.tier_ups += 1;
                self.out.log(
                    Level::Info,
                    format!(
                        "[{}] optimized code (Cranelift) serves: generation {number}, swapped in after {ms:.1} ms",
                        plugin.name
                    ),
                );
            }
            trigger => {
                plugin.reloads += 1;
                self.out.log(
                    Level::Info,
                    format!(
                        "[{}] reloaded ({}): generation {number} serving after {ms:.1} ms",
                        plugin.name,
                        trigger.as_str()
                    ),
                );
            }
        }
        if !matches!(pending.trigger, Trigger::TierUp(_)) {
            plugin.last_reload = Some(ReloadRecord {
                trigger: pending.trigger,
                generation: number,
                duration: took,
                at,
            });
        }
        // Winch's code serves first; Cranelift's takes over once it is
        // compiled, in the background, where the swap is invisible: for a
        // plugin that keeps its state across reloads.
        let winch = plugin
            .last_compile
            .as_ref()
            .is_some_and(|c| c.compiler == Compiler::Winch);
        if plugin.backend == BackendKind::Wasm
            && keeps_state
            && winch
            && self.config.wasm.cache.tier == Tier::Auto
            && !matches!(pending.trigger, Trigger::TierUp(_))
        {
            self.out.push(Output::Optimize {
                plugin: p,
                gen: number,
            });
        }
        let answer = json!({
            "plugin": plugin.name,
            "generation": number,
            "duration_ms": took.as_secs_f64() * 1000.0,
            "manifest_changes": plugin.last_diff.as_ref().map(Diff::to_json),
        });
        // A reload still to come (a newer save) answers them later.
        let waiters = match plugin.again {
            None => std::mem::take(&mut plugin.restart_waiters),
            Some(_) => vec![],
        };
        match old {
            // Answered once the old version is gone.
            Some(old) => self.retire(p, old, waiters, answer),
            None => {
                for id in waiters {
                    self.out.send(jsonrpc::response(&id, &answer));
                }
            }
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
}
