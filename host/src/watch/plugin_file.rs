//! Notices when a plugin's file has a new version.
//!
//! One `notify` watcher on the parent directories (editors and compilers
//! replace files by rename, which a watch on the file itself would lose),
//! and a settle window per file, so that one save counts as exactly one
//! change and a file still being written never counts. Arming events are
//! the ones that end a write: close-after-write, rename onto the path,
//! creation (a hard link from `cargo build`), metadata (`touch`, `chmod`).
//! A data write in progress disarms until the writer closes the file.
//!
//! Two events say the file is complete by construction, and fire at once
//! instead of after the settle window: a rename onto the path (the atomic
//! save of editors and build tools) and a new hard link to a file that has
//! other names (how cargo puts an artifact in place). The settle window
//! then still follows them, but only to fold in a trailing `chmod` or
//! `touch` of the same save, which must not count as a second change.
//!
//! A build that starts clean (`rm -rf out && mkdir out`) removes the
//! watched directory, and the watch with it: the directory above it is
//! watched too, and a watched file's directory created again is watched
//! again, with its file armed if it is already there.
//!
//!
//! Owns: the watch of the plugin files (and of their directories and the
//! directories above), their settle window, and [`FileStamp`], what tells
//! one version of a file from the next. Must not: look at source trees
//! ([`super::sources`] does), or start or stop plugins: it only reports
//! "this plugin's file changed".

use super::Watcher;
use notify::event::{AccessKind, AccessMode, EventKind, ModifyKind, RenameMode};
use notify::{RecursiveMode, Watcher as _};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};
use tokio::time::Instant;

/// Watches `files` (each with a key returned on change), reporting a key
/// through `changed` once its file has settled for `settle`.
pub fn watch<K: Copy + Send + 'static>(
    files: &[(K, PathBuf)],
    settle: Duration,
    changed: impl Fn(K) + Send + 'static,
) -> notify::Result<(Watcher, Vec<String>)> {
    let (tx, rx) = unbounded_channel();
    let mut inner = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
        let _ = tx.send(ev);
    })?;
    let mut targets: HashMap<PathBuf, K> = HashMap::new();
    let mut dirs: Vec<PathBuf> = vec![];
    let mut above: Vec<PathBuf> = vec![];
    let mut problems = vec![];
    for (key, path) in files {
        let mut names = vec![path.clone()];
        // A symlink's target changes where the target lives.
        if let Ok(real) = std::fs::canonicalize(path) {
            if &real != path {
                names.push(real);
            }
        }
        for name in names {
            let Some(dir) = name.parent().map(Path::to_path_buf) else {
                continue;
            };
            if !dirs.contains(&dir) {
                match inner.watch(&dir, RecursiveMode::NonRecursive) {
                    Ok(()) => dirs.push(dir.clone()),
                    Err(e) => problems.push(format!("cannot watch {}: {e}", dir.display())),
                }
                // Where the directory comes back after a clean build.
                if let Some(up) = dir.parent().filter(|u| !above.contains(&u.to_path_buf())) {
                    if inner.watch(up, RecursiveMode::NonRecursive).is_ok() {
                        above.push(up.to_path_buf());
                    }
                }
            }
            targets.insert(name, *key);
        }
    }
    let inner = std::sync::Arc::new(std::sync::Mutex::new(inner));
    let rewatch = {
        let inner = inner.clone();
        move |dir: &Path| {
            inner
                .lock()
                .is_ok_and(|mut w| w.watch(dir, RecursiveMode::NonRecursive).is_ok())
        }
    };
    tokio::spawn(settle_loop(rx, targets, dirs, settle, changed, rewatch));
    Ok((
        Watcher {
            _inner: Box::new(inner),
        },
        problems,
    ))
}

#[derive(Default)]
struct FileState {
    /// When it fires, if armed.
    deadline: Option<Instant>,
    /// A write is in progress (data modified, not yet closed).
    writing: bool,
    /// It fired at once on a complete file; metadata events until then
    /// belong to the same save.
    quiet_until: Option<Instant>,
}

/// What an event on a watched file means for it.
enum Effect {
    /// The file is complete now: report at once.
    Complete,
    /// The file may be complete: report once it has settled.
    Arm,
    /// Nothing to report (yet).
    Nothing,
}

/// Whether a newly created name is a hard link to a file written
/// elsewhere (cargo's uplift), rather than a file about to be written.
fn is_extra_link(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::symlink_metadata(path).is_ok_and(|m| m.is_file() && m.nlink() > 1 && m.len() > 0)
}

async fn settle_loop<K: Copy>(
    mut rx: UnboundedReceiver<notify::Result<notify::Event>>,
    targets: HashMap<PathBuf, K>,
    dirs: Vec<PathBuf>,
    settle: Duration,
    changed: impl Fn(K),
    rewatch: impl Fn(&Path) -> bool,
) {
    let mut state: HashMap<PathBuf, FileState> = HashMap::new();
    loop {
        let next = state.values().filter_map(|s| s.deadline).min();
        let ev = match next {
            Some(at) => tokio::select! {
                ev = rx.recv() => ev,
                _ = tokio::time::sleep_until(at) => {
                    let now = Instant::now();
                    for (path, s) in state.iter_mut() {
                        if s.deadline.is_some_and(|d| d <= now) {
                            s.deadline = None;
                            if let Some(k) = targets.get(path) {
                                changed(*k);
                            }
                        }
                    }
                    continue;
                }
            },
            None => rx.recv().await,
        };
        let Some(ev) = ev else { return };
        let Ok(ev) = ev else { continue };
        if let EventKind::Create(_) | EventKind::Modify(ModifyKind::Name(_)) = ev.kind {
            // A watched file's directory made again (a clean build): its
            // watch went with the old one. A file already in it may have
            // been written before the watch was back: it counts as saved
            // once it has settled.
            for dir in ev.paths.iter().filter(|p| dirs.contains(p) && p.is_dir()) {
                if rewatch(dir) {
                    for (path, _) in targets.iter().filter(|(t, _)| t.parent() == Some(dir)) {
                        if path.exists() {
                            state.entry(path.clone()).or_default().deadline =
                                Some(Instant::now() + settle);
                        }
                    }
                }
            }
        }
        for path in &ev.paths {
            if !targets.contains_key(path) {
                continue;
            }
            let s = state.entry(path.clone()).or_default();
            let now = Instant::now();
            let quiet = s.quiet_until.is_some_and(|q| now < q);
            let effect = match ev.kind {
                EventKind::Access(AccessKind::Close(AccessMode::Write)) => {
                    s.writing = false;
                    Effect::Arm
                }
                EventKind::Modify(ModifyKind::Data(_)) => {
                    s.writing = true;
                    Effect::Nothing
                }
                // `Both` repeats a `To` that was already reported (with
                // the source path first), so it must not count again.
                EventKind::Modify(ModifyKind::Name(RenameMode::From | RenameMode::Both)) => {
                    Effect::Nothing
                }
                EventKind::Modify(ModifyKind::Name(RenameMode::To)) => {
                    s.writing = false;
                    Effect::Complete
                }
                EventKind::Create(_) if is_extra_link(path) => {
                    s.writing = false;
                    Effect::Complete
                }
                EventKind::Modify(ModifyKind::Name(_)) | EventKind::Create(_) => {
                    s.writing = false;
                    Effect::Arm
                }
                EventKind::Modify(ModifyKind::Metadata(_)) if quiet => Effect::Nothing,
                EventKind::Modify(ModifyKind::Metadata(_)) if !s.writing => Effect::Arm,
                EventKind::Remove(_) => {
                    s.writing = false;
                    s.deadline = None;
                    Effect::Nothing
                }
                _ => Effect::Nothing,
            };
            let deadline = now + settle;
            match effect {
                Effect::Complete => {
                    s.deadline = None;
                    s.quiet_until = Some(deadline);
                    if let Some(k) = targets.get(path) {
                        changed(*k);
                    }
                }
                Effect::Arm => {
                    s.quiet_until = None;
                    s.deadline = Some(deadline);
                }
                Effect::Nothing if s.writing => s.deadline = None,
                // More activity on an armed file: wait for it to settle.
                Effect::Nothing if s.deadline.is_some() => s.deadline = Some(deadline),
                Effect::Nothing => {}
            }
        }
    }
}

/// What tells one version of a file from the next: a save writes new
/// content (a new mtime) or puts a new file in place (a new inode); a
/// chmod changes neither.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStamp {
    ino: u64,
    len: u64,
    modified: Option<SystemTime>,
}

impl FileStamp {
    /// A made-up stamp: save number `n` (for tests).
    #[cfg(test)]
    pub(crate) fn test(n: u64) -> Option<FileStamp> {
        Some(FileStamp {
            ino: 1,
            len: n,
            modified: None,
        })
    }

    /// The stamp of the file at `path` now (`None`: it is not there).
    pub fn of(path: &std::path::Path) -> Option<FileStamp> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(path).ok()?;
        Some(FileStamp {
            ino: m.ino(),
            len: m.len(),
            modified: m.modified().ok(),
        })
    }
}
