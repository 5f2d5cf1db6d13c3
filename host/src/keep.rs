//! Copies of plugin files as they were when each generation started, so
//! that the version that served can come back when a new one fails after
//! the old one stopped (a warm start gives the new version `init` only
//! once the old one is gone; break-before-make starts it only then).
//!
//! Owns: a directory of its own (removed with it), the copy made for each
//! generation started from the plugin's file, and which copies are still
//! needed (the one of the generation that serves, and those of starts
//! still under way). Must not: decide when a copy is run (the supervisor
//! does, with [`Source::Kept`](crate::supervisor::Source::Kept)), or
//! block the loop: a copy is made on a blocking thread and reported back
//! through the callback [`Keeper::keep`] is given.

use crate::ids::{Gen, PluginId};
use crate::watch::FileStamp;
use crate::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// How the name of the directory the copies are kept in begins (in
/// `TMPDIR`): source trees never count what is in one.
pub const DIR_PREFIX: &str = "cln-autoreload-kept-";

/// Why [`Keeper::path`] has no copy to run: still being made (a caller
/// may try again once it is), or none at all.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum NoCopy {
    /// The copy is still being made.
    #[error("the copy of generation {0}'s file is still being made")]
    Making(Gen),
    /// Making it failed.
    #[error("no copy of generation {gen}'s file was kept: {why}")]
    Failed {
        /// Whose copy.
        gen: Gen,
        /// Why it failed.
        why: String,
    },
    /// None was made, or it was dropped as no longer needed.
    #[error("no copy of generation {0}'s file was kept")]
    NotKept(Gen),
}

/// One kept copy, removed when no generation needs it any more.
#[derive(Debug)]
struct Copy(PathBuf);

impl Drop for Copy {
    fn drop(&mut self) {
        if let Some(dir) = self.0.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

#[derive(Debug, Clone)]
enum Entry {
    /// Being copied.
    Making,
    Ready(Arc<Copy>),
    Failed(String),
}

/// The copies, by plugin and generation.
#[derive(Debug, Default)]
pub struct Keeper {
    dir: Option<tempfile::TempDir>,
    copies: HashMap<(PluginId, Gen), Entry>,
    serving: HashMap<PluginId, Gen>,
}

impl Keeper {
    /// Copies `path`, which generation `gen` of `p` was just started from
    /// (its stamp then: `stamp`). `done` is called, from a blocking
    /// thread, with where the copy is or why there is none: its owner's
    /// loop hands that to [`Keeper::made`].
    pub fn keep(
        &mut self,
        p: PluginId,
        gen: Gen,
        path: &Path,
        stamp: Option<FileStamp>,
        done: impl FnOnce(Result<PathBuf, String>) + Send + 'static,
    ) {
        self.prune(p, Some(gen));
        let dir = match self.dir() {
            Ok(d) => d.join(format!("{}-{gen}", p.0)),
            Err(why) => {
                self.copies.insert((p, gen), Entry::Failed(why));
                return;
            }
        };
        self.copies.insert((p, gen), Entry::Making);
        let path = path.to_path_buf();
        tokio::task::spawn_blocking(move || done(copy(&path, &dir, stamp)));
    }

    /// A copy asked for by [`Keeper::keep`] is made (or not).
    pub fn made(&mut self, p: PluginId, gen: Gen, outcome: Result<PathBuf, String>) {
        let Some(entry) = self.copies.get_mut(&(p, gen)) else {
            // No longer needed: the copy goes at once.
            if let Ok(path) = outcome {
                drop(Copy(path));
            }
            return;
        };
        *entry = match outcome {
            Ok(path) => Entry::Ready(Arc::new(Copy(path))),
            Err(why) => Entry::Failed(why),
        };
    }

    /// Generation `to` of `p` runs the copy kept for generation `from`.
    pub fn share(&mut self, p: PluginId, from: Gen, to: Gen) {
        if let Some(e) = self.copies.get(&(p, from)).cloned() {
            self.copies.insert((p, to), e);
        }
    }

    /// The copy kept for generation `gen` of `p`, or why there is none.
    pub fn path(&self, p: PluginId, gen: Gen) -> Result<PathBuf, NoCopy> {
        match self.copies.get(&(p, gen)) {
            Some(Entry::Ready(c)) => Ok(c.0.clone()),
            Some(Entry::Making) => Err(NoCopy::Making(gen)),
            Some(Entry::Failed(why)) => Err(NoCopy::Failed {
                gen,
                why: why.clone(),
            }),
            None => Err(NoCopy::NotKept(gen)),
        }
    }

    /// Generation `gen` of `p` serves: its copy is the one to keep.
    pub fn served(&mut self, p: PluginId, gen: Gen) {
        self.serving.insert(p, gen);
        self.prune(p, None);
    }

    /// Drops the copies of `p` but the serving generation's, those of
    /// starts newer than it, and `also`'s.
    fn prune(&mut self, p: PluginId, also: Option<Gen>) {
        let serving = self.serving.get(&p).copied();
        self.copies.retain(|(q, g), _| {
            *q != p || Some(*g) == serving || Some(*g) == also || serving.is_some_and(|s| *g > s)
        });
    }

    fn dir(&mut self) -> Result<PathBuf, String> {
        if let Some(d) = &self.dir {
            return Ok(d.path().to_path_buf());
        }
        let d = tempfile::Builder::new()
            .prefix(DIR_PREFIX)
            .tempdir()
            .map_err(|e| format!("cannot make a directory to keep it in: {e}"))?;
        let path = d.path().to_path_buf();
        self.dir = Some(d);
        Ok(path)
    }
}

/// Copies `path` into `dir` under its own name (a script's `__file__` and
/// a binary's `argv[0]` keep their name), checking that it did not change
/// meanwhile.
fn copy(path: &Path, dir: &Path, stamp: Option<FileStamp>) -> Result<PathBuf, String> {
    let name = path
        .file_name()
        .ok_or_else(|| format!("{} has no file name", path.display()))?;
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot make {}: {e}", dir.display()))?;
    let to = dir.join(name);
    let made = std::fs::copy(path, &to)
        .map_err(|e| format!("cannot copy {}: {e}", path.display()))
        .and_then(|_| {
            if FileStamp::of(path) == stamp {
                Ok(to.clone())
            } else {
                Err("it changed while it was copied".into())
            }
        });
    if made.is_err() {
        let _ = std::fs::remove_dir_all(dir);
    }
    made
}
