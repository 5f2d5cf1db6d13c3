//! The small numbers that name things across the host: which plugin,
//! which of its generations, which phase a timer was set in; and the ids
//! of the host's own requests to a generation, made of those numbers.
//!
//! Owns: those newtypes, so that a generation number is never passed where
//! a plugin index is meant, and [`OwnRequest::id`], the one place an own
//! request's id is spelt. Must not: carry any behaviour beyond counting
//! and naming.

use crate::framing::RawId;
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

/// A request the host sends a plugin generation of its own, not on
/// lightningd's behalf. Its id, `autoreload:<what>#<generation>`, names
/// the generation, so that an answer from one that was replaced is told
/// from the current one's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnRequest {
    /// `getmanifest`.
    Getmanifest,
    /// `init`.
    Init,
    /// The state hand-over's save, to the old version.
    SaveState,
    /// The state hand-over's restore, to the new version.
    RestoreState,
}

impl OwnRequest {
    /// How the JSON of every own id starts: a cheap test that spares an
    /// answer to lightningd's requests building the ids to compare with
    /// (only a whole id, compared exactly, says it is one: a caller of
    /// lightningd's chooses the start of the ids lightningd sends).
    pub const JSON_PREFIX: &'static str = "\"autoreload:";

    fn tag(self) -> &'static str {
        match self {
            OwnRequest::Getmanifest => "getmanifest",
            OwnRequest::Init => "init",
            OwnRequest::SaveState => "save-state",
            OwnRequest::RestoreState => "restore-state",
        }
    }

    /// The id of this request to generation `number`.
    pub fn id(self, number: Gen) -> RawId {
        RawId::from_string(&format!("autoreload:{}#{number}", self.tag()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_ids_name_the_request_and_the_generation() {
        assert_eq!(
            OwnRequest::Getmanifest.id(Gen(1)).as_json(),
            "\"autoreload:getmanifest#1\""
        );
        assert_eq!(
            OwnRequest::Init.id(Gen(2)).as_json(),
            "\"autoreload:init#2\""
        );
        assert_eq!(
            OwnRequest::SaveState.id(Gen(3)).as_json(),
            "\"autoreload:save-state#3\""
        );
        assert_eq!(
            OwnRequest::RestoreState.id(Gen(4)).as_json(),
            "\"autoreload:restore-state#4\""
        );
        for r in [
            OwnRequest::Getmanifest,
            OwnRequest::Init,
            OwnRequest::SaveState,
            OwnRequest::RestoreState,
        ] {
            assert!(r.id(Gen(9)).as_json().starts_with(OwnRequest::JSON_PREFIX));
            assert_ne!(r.id(Gen(1)), r.id(Gen(2)));
        }
    }
}
