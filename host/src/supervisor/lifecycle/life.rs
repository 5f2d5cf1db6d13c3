//! A plugin's phase, kept where only the life cycle can change it.
//!
//! Owns: [`Life`], whose fields are private here and whose changes
//! ([`Life::transition`], [`Life::replace`], [`Life::step`],
//! [`Life::set_then`]) are visible only inside [`super`], the life cycle:
//! anything else reads the phase. Must not: decide a transition (that is
//! [`super`]'s), or do anything but change the phase and its epoch.

use crate::ids::Epoch;
use crate::supervisor::plugin::{Generation, Phase, Step, Then};

/// What a transition makes of the phase it was given.
pub(super) enum Change<R> {
    /// This phase from now on, and what the caller goes on with.
    To(Phase, R),
    /// The phase given, unchanged: no transition.
    Same(Phase),
}

/// A plugin's [`Phase`] and its [`Epoch`]. Only this module changes the
/// phase (its fields are private here), by value: a transition takes the
/// old phase and returns the new one, and each transition starts a new
/// epoch, so that a timer set before it is stale. Other modules read the
/// phase, and reach the data of the generations it holds (a pid, a
/// manifest, stderr lines), which is not the phase.
#[derive(Debug)]
pub struct Life {
    phase: Phase,
    epoch: Epoch,
}

impl Life {
    pub(in crate::supervisor) fn new() -> Life {
        Life {
            phase: Phase::Down {
                reason: "not started yet".into(),
            },
            epoch: Epoch::default(),
        }
    }

    /// What the plugin is doing.
    pub fn phase(&self) -> &Phase {
        &self.phase
    }

    /// The current epoch.
    pub fn epoch(&self) -> Epoch {
        self.epoch
    }

    /// The generation the phase is about (see [`Phase::generation`]).
    pub(in crate::supervisor) fn generation_mut(&mut self) -> Option<&mut Generation> {
        self.phase.generation_mut()
    }

    /// The generation in start-up (see [`Phase::starting`]).
    pub(in crate::supervisor) fn starting_mut(&mut self) -> Option<&mut Generation> {
        self.phase.starting().map(|(gen, _, _)| gen)
    }

    /// The new version waiting beside the current one (see
    /// [`Phase::next`]).
    pub(in crate::supervisor) fn next_mut(&mut self) -> Option<&mut Generation> {
        self.phase.next_mut()
    }

    /// A transition: `f` takes the phase by value and returns the new one
    /// with what the caller goes on with, or gives it back unchanged
    /// ([`Change::Same`]: no transition, and the epoch stays). `f` cannot
    /// see the supervisor, so nothing observes the phase while it is out.
    pub(super) fn transition<R>(&mut self, f: impl FnOnce(Phase) -> Change<R>) -> Option<R> {
        let old = std::mem::replace(
            &mut self.phase,
            Phase::Down {
                reason: String::new(),
            },
        );
        match f(old) {
            Change::To(new, r) => {
                self.phase = new;
                self.epoch.bump();
                Some(r)
            }
            Change::Same(old) => {
                self.phase = old;
                None
            }
        }
    }

    /// A transition whatever the phase was: it becomes `new`, and the old
    /// one is returned.
    pub(super) fn replace(&mut self, new: Phase) -> Phase {
        self.epoch.bump();
        std::mem::replace(&mut self.phase, new)
    }

    /// A step within a start or a swap (see [`Step`]), if the phase is
    /// one: a new epoch too, since the step's timeout is a new one.
    pub(super) fn step(&mut self, to: Step) -> bool {
        match self.phase.starting() {
            Some((_, step, _)) => {
                *step = to;
                self.epoch.bump();
                true
            }
            None => false,
        }
    }

    /// What follows a stop, changed: the stop and its timers (SIGTERM,
    /// then SIGKILL, if the generation lingers) go on, so no new epoch.
    pub(super) fn set_then(&mut self, then: Then) -> bool {
        match &mut self.phase {
            Phase::Stopping { then: t, .. } => {
                *t = then;
                true
            }
            _ => false,
        }
    }
}
