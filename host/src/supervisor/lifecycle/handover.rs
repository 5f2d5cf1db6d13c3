//! A plugin's state across a reload: once a new version has answered init,
//! the old one (once it has nothing in flight) is asked for its state and
//! the new one is given it, before the new one takes any request; in a
//! break-before-make reload the old one is asked before it is stopped.
//!
//! Owns: when the two requests of [`crate::handover`] go out, what their
//! answers (or their absence) do, and the warnings that say why a state
//! was not handed over. Must not: leave a version down because of its
//! state: every failure goes on with a fresh state.

use super::super::plugin::*;
use super::super::{InstanceOp, Supervisor, Timer};
use crate::framing::Message;
use crate::handover::{self, Failure, Op};
use crate::ids::{Gen, PluginId};
use crate::link::Level;
use serde_json::json;
use std::time::Duration;

/// The least time a version gets to save or restore its state, however
/// short `autoreload-grace-ms` is: on a loaded machine a slow answer is
/// likelier than a hung one, and a state given up is lost for good.
const STATE_TIMEOUT_MIN: Duration = Duration::from_secs(5);

impl Supervisor {
    /// The starting generation answered init: it is given the state the
    /// old version saved, or the old one (still serving) is asked for it
    /// first, or it serves at once.
    pub(super) fn init_answered(&mut self, p: PluginId) {
        let plugin = &mut self.plugins[p];
        let name = plugin.name.clone();
        let has_saved = plugin.saved.is_some();
        match plugin.phase() {
            Phase::Swapping { gen, next, .. } if gen.keeps_state() => {
                let (old, new) = (gen.number, next.number);
                if !next.keeps_state() {
                    self.out.log(
                        Level::Info,
                        format!("[{name}] generation {new} no longer declares \"autoreload\": {{\"state\": true}}: generation {old}'s state is not handed over"),
                    );
                    return self.serve(p);
                }
                // A new epoch: the timers of the start (its timeout) are
                // over.
                plugin.life.step(Step::Handover);
                if self.router.count_generation(p, old) == 0 {
                    self.ask_state(p);
                } else {
                    self.after(self.config.grace, p, Timer::GraceOver);
                }
            }
            Phase::Starting { gen, .. } if has_saved && gen.keeps_state() => {
                let number = gen.number;
                self.give_state(p, number);
            }
            _ => self.serve(p),
        }
    }

    /// The old version has nothing left in flight (or its grace is over):
    /// it is asked for its state.
    pub(in crate::supervisor) fn ask_state(&mut self, p: PluginId) {
        let plugin = &mut self.plugins[p];
        let Phase::Swapping {
            gen,
            step: Step::Handover,
            ..
        } = plugin.phase()
        else {
            return;
        };
        let number = gen.number;
        plugin.life.step(Step::Save);
        self.send_save(p, number);
    }

    pub(super) fn send_save(&mut self, p: PluginId, number: Gen) {
        self.plugins[p].handover_since = Some(self.now);
        self.instance(p, number, InstanceOp::Send(handover::save_request(number)));
        self.after(self.state_timeout(), p, Timer::StateTimeout(number));
    }

    fn give_state(&mut self, p: PluginId, number: Gen) {
        let plugin = &mut self.plugins[p];
        let Some(saved) = &plugin.saved else {
            return self.serve(p);
        };
        let request = handover::restore_request(number, &saved.state);
        plugin.life.step(Step::Restore);
        self.instance(p, number, InstanceOp::Send(request));
        self.after(self.state_timeout(), p, Timer::StateTimeout(number));
    }

    fn state_timeout(&self) -> Duration {
        self.config.grace.max(STATE_TIMEOUT_MIN)
    }

    /// Whether generation `number` is the one waiting for an answer to
    /// `op` now.
    fn waits_for(&self, p: PluginId, number: Gen, op: Op) -> bool {
        match (self.plugins[p].phase(), op) {
            (
                Phase::Swapping {
                    gen,
                    step: Step::Save,
                    ..
                },
                Op::Save,
            )
            | (
                Phase::Draining {
                    gen, saving: true, ..
                },
                Op::Save,
            ) => gen.number == number,
            (
                Phase::Swapping {
                    next,
                    step: Step::Restore,
                    ..
                },
                Op::Restore,
            ) => next.number == number,
            (
                Phase::Starting {
                    gen,
                    step: Step::Restore,
                    ..
                },
                Op::Restore,
            ) => gen.number == number,
            _ => false,
        }
    }

    /// A generation answered a request of the hand-over.
    pub(in crate::supervisor) fn on_state_answer(
        &mut self,
        p: PluginId,
        number: Gen,
        op: Op,
        m: &Message,
    ) {
        if !self.waits_for(p, number, op) {
            let name = &self.plugins[p].name;
            return self.out.log(
                Level::Debug,
                format!("[{name}] generation {number} answered {op:?} too late: dropped"),
            );
        }
        let outcome = match op {
            Op::Save => handover::read_save(&m.raw, number).map(|saved| {
                self.plugins[p].saved = Some(saved);
            }),
            Op::Restore => handover::read_restore(&m.raw),
        };
        self.state_step_done(p, number, op, outcome);
    }

    /// A hand-over request had no answer in time.
    pub(super) fn state_timed_out(&mut self, p: PluginId, number: Gen) {
        for op in [Op::Save, Op::Restore] {
            if self.waits_for(p, number, op) {
                return self.state_step_done(p, number, op, Err(Failure::Timeout));
            }
        }
    }

    /// One step of the hand-over is over, for better or worse: go on.
    fn state_step_done(&mut self, p: PluginId, number: Gen, op: Op, outcome: Result<(), Failure>) {
        let plugin = &mut self.plugins[p];
        let name = plugin.name.clone();
        let took = plugin.handover_since.map_or(0.0, |t| {
            self.now.saturating_duration_since(t).as_secs_f64() * 1000.0
        });
        match (op, outcome) {
            (Op::Save, Ok(())) => {}
            (Op::Save, Err(why)) => {
                plugin.last_handover = Some(json!({
                    "from": number, "outcome": format!("not saved: {why}"),
                }));
                self.out.log(
                    Level::Warn,
                    format!("[{name}] generation {number} did not hand over its state: {why}. The new version starts with a fresh state"),
                );
            }
            (Op::Restore, outcome) => {
                let saved = plugin.saved.take();
                let (from, bytes) = saved.map_or((None, 0), |s| (Some(s.from), s.bytes));
                let from_text = from.map_or_else(String::new, |f| format!(" from generation {f}"));
                let result = match outcome {
                    Ok(()) => {
                        self.out.log(
                            Level::Info,
                            format!("[{name}] state handed over{from_text} to generation {number}: {bytes} bytes in {took:.1} ms"),
                        );
                        "restored".to_string()
                    }
                    Err(why) => {
                        self.out.log(
                            Level::Warn,
                            format!("[{name}] generation {number} did not take the state{from_text}: {why}. It runs with its fresh state"),
                        );
                        format!("not restored: {why}")
                    }
                };
                self.plugins[p].last_handover = Some(json!({
                    "from": from, "to": number, "bytes": bytes,
                    "duration_ms": took, "outcome": result,
                }));
            }
        }
        match (op, self.plugins[p].phase()) {
            (Op::Save, Phase::Draining { .. }) => self.stop_drained(p),
            (Op::Save, Phase::Swapping { next, .. }) => {
                let next = next.number;
                self.give_state(p, next);
            }
            (Op::Restore, _) => self.serve(p),
            _ => {}
        }
    }
}
