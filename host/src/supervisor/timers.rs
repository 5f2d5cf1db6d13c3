//! The supervisor's deadlines, kept the sans-I/O way (as quinn-proto
//! does): the loop asks for the earliest one ([`Supervisor::poll_timeout`]),
//! sleeps until then with a single sleep, and hands the time back
//! ([`Supervisor::handle_timeout`]), which fires whatever is due.
//!
//! Owns: the set of deadlines and the order they fire in (by time, then
//! in the order they were set). Must not: sleep, spawn a task or read a
//! clock: the time comes from the caller.

use super::{Output, Supervisor, Timer};
use crate::ids::{Epoch, PluginId};
use crate::link::Level;
use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

/// What a deadline is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Due {
    /// One of a plugin's life-cycle timers, with the epoch it was set in
    /// (a phase change since makes most of them stale).
    Plugin {
        plugin: PluginId,
        epoch: Epoch,
        timer: Timer,
    },
    /// Shutdown takes too long: exit anyway.
    Shutdown,
}

/// The deadlines set and not fired yet, earliest first. The loop asks
/// for the earliest after every input (every message), and a timer made
/// stale by a phase change stays until its time (a start's timeout is a
/// minute, and a plugin saved every 150 ms sets hundreds): a heap keeps
/// that question O(1).
#[derive(Debug, Default)]
pub(super) struct Timers {
    due: BinaryHeap<Reverse<Entry>>,
    /// Breaks ties between equal deadlines: first set, first fired.
    seq: u64,
}

/// One deadline, ordered by its time, then by when it was set.
#[derive(Debug)]
struct Entry {
    at: Instant,
    seq: u64,
    due: Due,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Entry) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}

impl Eq for Entry {}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Entry) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Entry {
    fn cmp(&self, other: &Entry) -> Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

impl Timers {
    pub(super) fn set(&mut self, at: Instant, due: Due) {
        self.seq += 1;
        let seq = self.seq;
        self.due.push(Reverse(Entry { at, seq, due }));
    }

    /// The earliest deadline.
    pub(super) fn next(&self) -> Option<Instant> {
        self.due.peek().map(|Reverse(e)| e.at)
    }

    /// The earliest deadline at or before `now`, removed.
    fn pop_due(&mut self, now: Instant) -> Option<Due> {
        if self.next()? > now {
            return None;
        }
        self.due.pop().map(|Reverse(e)| e.due)
    }
}

impl Supervisor {
    /// When [`Supervisor::handle_timeout`] is next due, if ever.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next()
    }

    /// Fires every deadline due at `now`, earliest first; what they call
    /// for is then in [`Supervisor::poll_output`].
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = self.now.max(now);
        while let Some(due) = self.timers.pop_due(self.now) {
            match due {
                Due::Plugin {
                    plugin,
                    epoch,
                    timer,
                } => self.on_timer(plugin, epoch, timer),
                Due::Shutdown => {
                    self.out
                        .log(Level::Warn, "plugins did not stop in time: killed");
                    self.out.push(Output::Exit);
                }
            }
        }
    }

    /// Sets `timer` for plugin `p` after `d`, tagged with its current
    /// epoch.
    pub(crate) fn after(&mut self, d: Duration, p: PluginId, timer: Timer) {
        let epoch = self.plugins[p].epoch();
        self.timers.set(
            self.now + d,
            Due::Plugin {
                plugin: p,
                epoch,
                timer,
            },
        );
    }

    /// Exits after `d` if shutdown has not finished by then.
    pub(super) fn shutdown_deadline(&mut self, d: Duration) {
        self.timers.set(self.now + d, Due::Shutdown);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_deadlines_fire_earliest_first_then_in_the_order_set() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut t = Timers::default();
        let plugin = |n| Due::Plugin {
            plugin: PluginId(n),
            epoch: Epoch::default(),
            timer: Timer::Retry,
        };
        t.set(t0 + ms(20), plugin(0));
        t.set(t0 + ms(10), plugin(1));
        t.set(t0 + ms(10), plugin(2));
        t.set(t0 + ms(30), Due::Shutdown);
        assert_eq!(t.next(), Some(t0 + ms(10)));
        assert_eq!(t.pop_due(t0 + ms(5)), None);
        assert_eq!(t.pop_due(t0 + ms(25)), Some(plugin(1)));
        assert_eq!(t.pop_due(t0 + ms(25)), Some(plugin(2)));
        assert_eq!(t.pop_due(t0 + ms(25)), Some(plugin(0)));
        assert_eq!(t.pop_due(t0 + ms(25)), None);
        assert_eq!(t.next(), Some(t0 + ms(30)));
        assert_eq!(t.pop_due(t0 + ms(30)), Some(Due::Shutdown));
        assert_eq!(t.next(), None);
    }
}
