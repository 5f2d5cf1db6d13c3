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
//! Owns: file system events and the settle window. Must not: start or stop
//! plugins; it only reports "this plugin's file changed".

use notify::event::{AccessKind, AccessMode, EventKind, ModifyKind, RenameMode};
use notify::{RecommendedWatcher, RecursiveMode, Watcher as _};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};
use tokio::time::Instant;

/// Keeps the watch alive; dropping it stops watching.
pub struct Watcher {
    _inner: RecommendedWatcher,
}

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
                    Ok(()) => dirs.push(dir),
                    Err(e) => problems.push(format!("cannot watch {}: {e}", dir.display())),
                }
            }
            targets.insert(name, *key);
        }
    }
    tokio::spawn(settle_loop(rx, targets, settle, changed));
    Ok((Watcher { _inner: inner }, problems))
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
    settle: Duration,
    changed: impl Fn(K),
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

/// A directory tree whose sources are watched for one key.
#[derive(Debug, Clone)]
pub struct Tree<K> {
    /// Reported when something in the tree changed and settled.
    pub key: K,
    /// The directory, watched recursively.
    pub dir: PathBuf,
    /// Directories inside it whose changes do not count (build outputs).
    pub ignore: Vec<PathBuf>,
    /// Only files with these extensions count (empty: all).
    pub extensions: Vec<String>,
}

/// Names that never count as a source change: version control, build and
/// cache directories, and editors' temporary files.
fn ignored_name(name: &str) -> bool {
    matches!(
        name,
        ".git" | "target" | "__pycache__" | "node_modules" | ".hg" | "4913" | "Cargo.lock"
    ) || name.ends_with('~')
        || name.ends_with(".swp")
        || name.ends_with(".swx")
        || name.starts_with(".#")
}

/// Watches source trees: any change to a counted file in a tree reports its
/// key once things have been quiet for `settle` (a save touching several
/// files, or several saves in a row, count once).
pub fn watch_trees<K: Copy + PartialEq + Send + Sync + 'static>(
    trees: Vec<Tree<K>>,
    settle: Duration,
    changed: impl Fn(K) + Send + 'static,
) -> notify::Result<(Watcher, Vec<String>)> {
    let (tx, mut rx) = unbounded_channel::<notify::Result<notify::Event>>();
    let mut inner = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
        let _ = tx.send(ev);
    })?;
    let mut problems = vec![];
    for t in &trees {
        if let Err(e) = inner.watch(&t.dir, RecursiveMode::Recursive) {
            problems.push(format!("cannot watch {}: {e}", t.dir.display()));
        }
    }
    tokio::spawn(async move {
        let mut due: Vec<(K, Instant)> = vec![];
        loop {
            let next = due.iter().map(|(_, at)| *at).min();
            let ev = match next {
                Some(at) => tokio::select! {
                    ev = rx.recv() => ev,
                    _ = tokio::time::sleep_until(at) => {
                        let now = Instant::now();
                        due.retain(|(k, at)| {
                            if *at <= now {
                                changed(*k);
                                false
                            } else {
                                true
                            }
                        });
                        continue;
                    }
                },
                None => rx.recv().await,
            };
            let Some(ev) = ev else { return };
            let Ok(ev) = ev else { continue };
            if matches!(ev.kind, EventKind::Access(_)) {
                continue;
            }
            for path in &ev.paths {
                for t in &trees {
                    if !counts(t, path) {
                        continue;
                    }
                    let at = Instant::now() + settle;
                    match due.iter_mut().find(|(k, _)| *k == t.key) {
                        Some(d) => d.1 = at,
                        None => due.push((t.key, at)),
                    }
                }
            }
        }
    });
    Ok((Watcher { _inner: inner }, problems))
}

fn counts<K>(t: &Tree<K>, path: &Path) -> bool {
    let Ok(rel) = path.strip_prefix(&t.dir) else {
        return false;
    };
    if t.ignore.iter().any(|i| path.starts_with(i)) {
        return false;
    }
    if rel
        .components()
        .any(|c| ignored_name(&c.as_os_str().to_string_lossy()))
    {
        return false;
    }
    t.extensions.is_empty()
        || path
            .extension()
            .is_some_and(|e| t.extensions.iter().any(|x| e == x.as_str()))
}
