//! The small numbers that name things across the host: which plugin,
//! which of its generations, which phase a timer was set in.
//!
//! Owns: those newtypes, so that a generation number is never passed where
//! a plugin index is meant. Must not: carry any behaviour beyond counting.

use std::fmt;

/// One managed plugin: its place in the order lightningd was given them
/// (which is also the order hooks chain in).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PluginId(pub usize);

/// One running instance of a plugin: 1 for the first, +1 for each start.
/// Requests in flight are recorded per generation, so an answer from an
/// instance that was replaced is told from the current one's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, serde::Serialize)]
#[serde(transparent)]
pub struct Gen(pub u64);

impl Gen {
    /// The generation started after this one.
    pub fn next(self) -> Gen {
        Gen(self.0 + 1)
    }
}

impl fmt::Display for Gen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A plugin's phase counter, bumped on every phase change: a timer carries
/// the epoch it was set in, and one that fires in a later epoch is stale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Epoch(pub u64);

impl Epoch {
    /// The epoch after this one.
    pub fn bump(&mut self) {
        self.0 += 1;
    }
}
