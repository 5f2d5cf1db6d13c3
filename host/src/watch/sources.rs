//! Watches source trees, for build on save.
//!
//! Source trees are watched recursively, and what counts in them is
//! decided here: the project's ignore files (`.gitignore`,
//! `.ignore`, `.git/info/exclude`, git's global excludes, through the
//! `ignore` crate), a short built-in list (version control, caches,
//! editors' temporary files), and paths never to count (the plugin files,
//! `target/`). A source changes when its content does: the tree's sources
//! are read once watching has started, and a file rewritten with the same
//! bytes, or created and removed within the settle window, is no change.
//!
//! Owns: the recursive watch of the source trees (on a thread of its own:
//! it reads files), their settle window, and what counts as a source.
//! Must not: watch the plugin files ([`super::plugin_file`] does), run
//! builds or reload anything: it only reports "these sources changed".

use super::Watcher;
use ignore::gitignore::{Gitignore, GitignoreBuilder};
use ignore::Match;
use notify::event::EventKind;
use notify::{RecursiveMode, Watcher as _};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// A directory tree whose sources are watched for one key.
#[derive(Debug, Clone)]
pub struct Tree<K> {
    /// Reported when a source in the tree changed and things settled.
    pub key: K,
    /// The directory, watched recursively.
    pub dir: PathBuf,
    /// Paths inside it that are never sources (build outputs, the plugin
    /// files themselves).
    pub ignore: Vec<PathBuf>,
    /// Only files with these extensions count (empty: all).
    pub extensions: Vec<String>,
    /// Sources modified after this time, found once watching has started,
    /// are reported as a change then: they were saved while nothing
    /// watched (before the plugin file was built, or while the host
    /// started).
    pub changed_after: Option<SystemTime>,
}

/// What changed in a key's source trees.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Change {
    /// The sources that were added, removed or given new content, sorted.
    pub paths: Vec<PathBuf>,
    /// Found when watching started: sources newer than
    /// [`Tree::changed_after`].
    pub at_start: bool,
}

impl Change {
    /// Adds `other`'s paths (saves coalesced into one build).
    pub fn merge(&mut self, other: Change) {
        for p in other.paths {
            if !self.paths.contains(&p) {
                self.paths.push(p);
            }
        }
        self.paths.sort();
        self.at_start |= other.at_start;
    }

    /// The first few paths (relative to `base` where they are under it),
    /// and how many more: `src/main.rs, src/lib.rs and 3 more`.
    pub fn describe(&self, base: &Path) -> String {
        const SHOWN: usize = 3;
        let base = std::fs::canonicalize(base).unwrap_or_else(|_| base.to_path_buf());
        let names: Vec<String> = self
            .paths
            .iter()
            .take(SHOWN)
            .map(|p| p.strip_prefix(&base).unwrap_or(p).display().to_string())
            .collect();
        let mut text = names.join(", ");
        if self.paths.len() > SHOWN {
            text.push_str(&format!(" and {} more", self.paths.len() - SHOWN));
        }
        text
    }
}

/// What never counts as a source, whatever the project's ignore files say:
/// version control, caches that tools write by themselves, editors'
/// temporary and swap files, and the copies of plugin files the host keeps
/// in `TMPDIR` ([`crate::keep::DIR_PREFIX`]), should that be inside a
/// watched tree (gitignore syntax).
const BUILTIN_IGNORES: &[&str] = &[
    "cln-autoreload-kept-*/",
    ".git",
    ".hg",
    ".svn",
    ".jj",
    "__pycache__/",
    "node_modules/",
    "*.py[co]",
    "Cargo.lock",
    "*~",
    "*.swp",
    "*.swx",
    ".#*",
    "#*#",
    "4913",
    ".DS_Store",
];

/// The names of ignore files: `.ignore` (ripgrep's, watchexec's), which
/// outranks `.gitignore`.
const IGNORE_FILES: [&str; 2] = [".ignore", ".gitignore"];

/// Files larger than this are compared by size and time, not content.
const MAX_HASHED: u64 = 64 << 20;

fn is_ignore_file(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|n| IGNORE_FILES.iter().any(|i| n == *i))
}

/// Which files of a tree are sources: not excluded, not ignored by the
/// built-in list or the project's ignore files (`.ignore`, `.gitignore`
/// in the tree and above it up to the repository's root,
/// `.git/info/exclude`, git's global excludes), and of a counted
/// extension. Ignore files themselves are not sources: a change to one
/// changes what counts.
pub struct Sources {
    root: PathBuf,
    excluded: Vec<PathBuf>,
    extensions: Vec<String>,
    builtin: Gitignore,
    /// `.ignore` matchers, deepest directory first.
    dot_ignores: Vec<Gitignore>,
    /// `.gitignore` matchers, deepest directory first.
    gitignores: Vec<Gitignore>,
    git_exclude: Gitignore,
    global: Gitignore,
    /// Directories whose ignore files were read.
    loaded: HashSet<PathBuf>,
}

impl Sources {
    /// The rules for the tree at `root` (read now, with the ignore files
    /// above it; those inside it are read as `Sources::scan` enters
    /// their directories).
    pub fn new(root: &Path, excluded: &[PathBuf], extensions: &[String]) -> Sources {
        let mut builtin = GitignoreBuilder::new(root);
        for line in BUILTIN_IGNORES {
            let _ = builtin.add_line(None, line);
        }
        let repo = root.ancestors().find(|a| a.join(".git").exists());
        let base = repo.unwrap_or(root);
        let git_exclude = repo
            .map(|r| r.join(".git/info/exclude"))
            .filter(|f| f.is_file())
            .map_or_else(Gitignore::empty, |f| {
                let mut b = GitignoreBuilder::new(base);
                let _ = b.add(f);
                b.build().unwrap_or_else(|_| Gitignore::empty())
            });
        let mut s = Sources {
            root: root.to_path_buf(),
            excluded: excluded.to_vec(),
            extensions: extensions.to_vec(),
            builtin: builtin.build().unwrap_or_else(|_| Gitignore::empty()),
            dot_ignores: vec![],
            gitignores: vec![],
            git_exclude,
            global: GitignoreBuilder::new(base).build_global().0,
            loaded: HashSet::new(),
        };
        // The ignore files above the tree, up to the repository's root.
        if let Some(repo) = repo {
            let above: Vec<PathBuf> = root
                .ancestors()
                .skip(1)
                .take_while(|a| a.starts_with(repo))
                .map(Path::to_path_buf)
                .collect();
            for dir in above {
                s.load_dir(&dir);
            }
        }
        s
    }

    fn load_dir(&mut self, dir: &Path) {
        if !self.loaded.insert(dir.to_path_buf()) {
            return;
        }
        for name in IGNORE_FILES {
            let file = dir.join(name);
            if !file.is_file() {
                continue;
            }
            // A line that is not a valid glob is skipped; the rest count.
            let (gi, _) = Gitignore::new(&file);
            if gi.is_empty() {
                continue;
            }
            let list = if name == ".ignore" {
                &mut self.dot_ignores
            } else {
                &mut self.gitignores
            };
            list.push(gi);
            list.sort_by_key(|g| std::cmp::Reverse(g.path().components().count()));
        }
    }

    /// The rules' verdict on `path` itself: the built-in list, then the
    /// deepest `.ignore` that has a say, then the deepest `.gitignore`,
    /// then `.git/info/exclude`, then the global excludes (ripgrep's
    /// order).
    fn ignored_itself(&self, path: &Path, is_dir: bool) -> bool {
        if self.excluded.iter().any(|e| path.starts_with(e)) {
            return true;
        }
        if self.builtin.matched(path, is_dir).is_ignore() {
            return true;
        }
        let layers = self
            .dot_ignores
            .iter()
            .chain(&self.gitignores)
            .chain([&self.git_exclude, &self.global]);
        for g in layers {
            if g.is_empty() || !path.starts_with(g.path()) {
                continue;
            }
            match g.matched(path, is_dir) {
                Match::None => continue,
                m => return m.is_ignore(),
            }
        }
        false
    }

    /// Whether `path` (in the tree) is ignored, itself or through a
    /// directory above it.
    pub fn ignored(&self, path: &Path, is_dir: bool) -> bool {
        let Ok(rel) = path.strip_prefix(&self.root) else {
            return true;
        };
        let n = rel.components().count();
        let mut at = self.root.clone();
        for (i, c) in rel.components().enumerate() {
            at.push(c);
            if self.ignored_itself(&at, i + 1 < n || is_dir) {
                return true;
            }
        }
        false
    }

    fn counted_file(&self, path: &Path) -> bool {
        !is_ignore_file(path)
            && (self.extensions.is_empty()
                || path
                    .extension()
                    .is_some_and(|e| self.extensions.iter().any(|x| e == x.as_str())))
    }

    /// Whether a file at `path` is a source.
    pub fn counts(&self, path: &Path) -> bool {
        self.counted_file(path) && !self.ignored(path, false)
    }

    /// The sources under `dir` (itself not ignored), with what they hold
    /// now; reads the ignore files of the directories it enters.
    fn scan(&mut self, dir: &Path, out: &mut HashMap<PathBuf, Fingerprint>) {
        self.load_dir(dir);
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            // A symbolic link is not followed into a directory; one to a
            // file counts by its target's content.
            let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
            if self.ignored_itself(&path, is_dir) {
                continue;
            }
            if is_dir {
                self.scan(&path, out);
            } else if self.counted_file(&path) {
                if let Some(f) = fingerprint(&path) {
                    out.insert(path, f);
                }
            }
        }
    }
}

/// What a file holds, as far as a change is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fingerprint {
    len: u64,
    hash: u64,
}

fn fingerprint(path: &Path) -> Option<Fingerprint> {
    use std::hash::Hasher as _;
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_file() {
        return None;
    }
    let mut h = std::hash::DefaultHasher::new();
    if meta.len() > MAX_HASHED {
        let t = meta.modified().ok()?;
        h.write_u128(t.duration_since(SystemTime::UNIX_EPOCH).ok()?.as_nanos());
    } else {
        h.write(&std::fs::read(path).ok()?);
    }
    Some(Fingerprint {
        len: meta.len(),
        hash: h.finish(),
    })
}

/// One watched tree: its rules, what its sources held when last looked
/// at, and the paths events named since.
struct TreeWatch<K> {
    key: K,
    root: PathBuf,
    excluded: Vec<PathBuf>,
    extensions: Vec<String>,
    changed_after: Option<SystemTime>,
    sources: Sources,
    snapshot: HashMap<PathBuf, Fingerprint>,
    pending: HashSet<PathBuf>,
}

impl<K> TreeWatch<K> {
    fn new(t: Tree<K>) -> TreeWatch<K> {
        let root = std::fs::canonicalize(&t.dir).unwrap_or(t.dir);
        // Each excluded path as given, and as events name it (through
        // the canonical tree, a symbolic link's target).
        let mut excluded = vec![];
        for p in t.ignore {
            let canonical_parent = p
                .parent()
                .and_then(|d| std::fs::canonicalize(d).ok())
                .zip(p.file_name())
                .map(|(d, n)| d.join(n));
            let canonical = std::fs::canonicalize(&p).ok();
            for q in [Some(p), canonical_parent, canonical].into_iter().flatten() {
                if !excluded.contains(&q) {
                    excluded.push(q);
                }
            }
        }
        let sources = Sources::new(&root, &excluded, &t.extensions);
        TreeWatch {
            key: t.key,
            root,
            excluded,
            extensions: t.extensions,
            changed_after: t.changed_after,
            sources,
            snapshot: HashMap::new(),
            pending: HashSet::new(),
        }
    }

    /// Reads the rules and every source afresh.
    fn rescan(&mut self) {
        self.sources = Sources::new(&self.root, &self.excluded, &self.extensions);
        let mut snapshot = HashMap::new();
        let root = self.root.clone();
        self.sources.scan(&root, &mut snapshot);
        self.snapshot = snapshot;
    }

    /// The sources modified after `changed_after`, at start. Their
    /// content is read again: a save that came between the scan and now
    /// is what this report builds, so its event must not count it twice
    /// (under load, a save right after start-up did: two builds).
    fn newer(&mut self) -> Vec<PathBuf> {
        let Some(after) = self.changed_after else {
            return vec![];
        };
        let mut newer: Vec<PathBuf> = self
            .snapshot
            .keys()
            .filter(|p| {
                std::fs::metadata(p)
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| t > after)
            })
            .cloned()
            .collect();
        newer.sort();
        for p in &newer {
            match fingerprint(p) {
                Some(f) => self.snapshot.insert(p.clone(), f),
                None => self.snapshot.remove(p),
            };
        }
        newer
    }

    /// Whether an event on `path` may be about a source of this tree (or
    /// its rules).
    fn concerns(&self, path: &Path) -> bool {
        if !path.starts_with(&self.root) || path == self.root {
            return false;
        }
        if self.excluded.iter().any(|e| path.starts_with(e)) {
            return false;
        }
        if is_ignore_file(path) {
            // An ignore file changes the rules, unless it sits in an
            // ignored directory.
            return path
                .parent()
                .is_some_and(|d| d == self.root || !self.sources.ignored(d, true));
        }
        let is_dir = std::fs::symlink_metadata(path).is_ok_and(|m| m.is_dir());
        !self.sources.ignored(path, is_dir)
    }

    /// The sources whose content differs from what it was, among those
    /// the events named (and under the directories they named); the
    /// snapshot is brought up to date.
    fn settle(&mut self) -> Vec<PathBuf> {
        let pending: Vec<PathBuf> = self.pending.drain().collect();
        if pending.iter().any(|p| p == &self.root) {
            // The watch lost events (a queue overflow): look at everything.
            let old = std::mem::take(&mut self.snapshot);
            self.rescan();
            return self.differences(&old, std::slice::from_ref(&self.root));
        }
        if pending.iter().any(|p| is_ignore_file(p)) {
            // What counts may have changed: read the rules afresh, and
            // count only the files the events named.
            let old = std::mem::take(&mut self.snapshot);
            self.rescan();
            return self.differences(&old, &pending);
        }
        let mut now = HashMap::new();
        for p in &pending {
            let is_dir = std::fs::symlink_metadata(p).is_ok_and(|m| m.is_dir());
            if is_dir {
                if !self.sources.ignored(p, true) {
                    self.sources.scan(p, &mut now);
                }
            } else if self.sources.counts(p) {
                if let Some(f) = fingerprint(p) {
                    now.insert(p.clone(), f);
                }
            }
        }
        let mut old = HashMap::new();
        for p in &pending {
            for (f, fp) in &self.snapshot {
                if f.starts_with(p) {
                    old.insert(f.clone(), *fp);
                }
            }
        }
        for f in old.keys() {
            self.snapshot.remove(f);
        }
        self.snapshot
            .extend(now.iter().map(|(f, fp)| (f.clone(), *fp)));
        self.differences_between(&old, &now)
    }

    /// The paths under `under` whose fingerprint in `old` differs from
    /// the snapshot's.
    fn differences(&self, old: &HashMap<PathBuf, Fingerprint>, under: &[PathBuf]) -> Vec<PathBuf> {
        let pick = |m: &HashMap<PathBuf, Fingerprint>| -> HashMap<PathBuf, Fingerprint> {
            m.iter()
                .filter(|(f, _)| under.iter().any(|u| f.starts_with(u)))
                .map(|(f, fp)| (f.clone(), *fp))
                .collect()
        };
        self.differences_between(&pick(old), &pick(&self.snapshot))
    }

    fn differences_between(
        &self,
        old: &HashMap<PathBuf, Fingerprint>,
        now: &HashMap<PathBuf, Fingerprint>,
    ) -> Vec<PathBuf> {
        let mut changed: Vec<PathBuf> = old
            .keys()
            .chain(now.keys())
            .filter(|f| old.get(*f) != now.get(*f))
            .cloned()
            .collect();
        changed.sort();
        changed.dedup();
        changed
    }
}

/// Watches source trees. Once watching, it reads what the sources hold
/// (and reports those newer than [`Tree::changed_after`]); then a source
/// given new content, added or removed reports its key with what changed,
/// once things have been quiet for `settle` (a save touching several
/// files, or several saves in a row, count once). A file rewritten with
/// the same bytes, or created and removed within the window (a temporary
/// file), is no change. The work runs on a thread of its own: it reads
/// files.
pub fn watch_trees<K: Copy + PartialEq + Send + 'static>(
    trees: Vec<Tree<K>>,
    settle: Duration,
    changed: impl Fn(K, Change) + Send + 'static,
) -> notify::Result<(Watcher, Vec<String>)> {
    let (tx, rx) = std::sync::mpsc::channel::<notify::Result<notify::Event>>();
    let mut inner = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
        let _ = tx.send(ev);
    })?;
    let mut problems = vec![];
    let mut watches = vec![];
    for t in trees {
        let w = TreeWatch::new(t);
        match inner.watch(&w.root, RecursiveMode::Recursive) {
            Ok(()) => watches.push(w),
            Err(e) => problems.push(format!("cannot watch {}: {e}", w.root.display())),
        }
    }
    std::thread::Builder::new()
        .name("autoreload-sources".into())
        .spawn(move || sources_loop(rx, watches, settle, changed))
        .map_err(notify::Error::io)?;
    Ok((
        Watcher {
            _inner: Box::new(inner),
        },
        problems,
    ))
}

fn sources_loop<K: Copy + PartialEq>(
    rx: std::sync::mpsc::Receiver<notify::Result<notify::Event>>,
    mut trees: Vec<TreeWatch<K>>,
    settle: Duration,
    changed: impl Fn(K, Change),
) {
    use std::sync::mpsc::RecvTimeoutError;
    // Watching already: a save from now on is an event, and one made
    // before is newer than the plugin file (or the host's start).
    let mut found: Vec<(K, Change)> = vec![];
    for t in &mut trees {
        t.rescan();
        let paths = t.newer();
        if paths.is_empty() {
            continue;
        }
        let change = Change {
            paths,
            at_start: true,
        };
        match found.iter_mut().find(|(k, _)| *k == t.key) {
            Some((_, c)) => c.merge(change),
            None => found.push((t.key, change)),
        }
    }
    for (k, c) in found {
        changed(k, c);
    }
    let mut due: Vec<(K, std::time::Instant)> = vec![];
    loop {
        let ev = match due.iter().map(|(_, at)| *at).min() {
            Some(at) => {
                let wait = at.saturating_duration_since(std::time::Instant::now());
                match rx.recv_timeout(wait) {
                    Ok(ev) => Some(ev),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => return,
                }
            }
            None => match rx.recv() {
                Ok(ev) => Some(ev),
                Err(_) => return,
            },
        };
        let Some(ev) = ev else {
            let now = std::time::Instant::now();
            let (fire, wait): (Vec<_>, Vec<_>) = due.into_iter().partition(|(_, at)| *at <= now);
            due = wait;
            for (k, _) in fire {
                let mut change = Change::default();
                for t in trees.iter_mut().filter(|t| t.key == k) {
                    change.merge(Change {
                        paths: t.settle(),
                        at_start: false,
                    });
                }
                if !change.paths.is_empty() {
                    changed(k, change);
                }
            }
            continue;
        };
        let Ok(ev) = ev else { continue };
        if matches!(ev.kind, EventKind::Access(_)) {
            continue;
        }
        let at = std::time::Instant::now() + settle;
        for t in &mut trees {
            let mut named = false;
            if ev.need_rescan() {
                t.pending.insert(t.root.clone());
                named = true;
            }
            for path in &ev.paths {
                if t.concerns(path) {
                    t.pending.insert(path.clone());
                    named = true;
                }
            }
            if named {
                match due.iter_mut().find(|(k, _)| *k == t.key) {
                    Some(d) => d.1 = at,
                    None => due.push((t.key, at)),
                }
            }
        }
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A fresh directory (canonical, as the tree watcher sees it).
    fn scratch() -> PathBuf {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let d = std::env::temp_dir().join(format!("watch-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::canonicalize(&d).unwrap()
    }

    fn write(root: &Path, rel: &str, text: &str) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    fn tree(root: &Path, ignore: Vec<PathBuf>) -> TreeWatch<u8> {
        let mut t = TreeWatch::new(Tree {
            key: 0,
            dir: root.to_path_buf(),
            ignore,
            extensions: vec![],
            changed_after: None,
        });
        t.rescan();
        t
    }

    /// What an event on each path, then the settle window, reports.
    fn touched(t: &mut TreeWatch<u8>, rels: &[&str]) -> Vec<String> {
        for rel in rels {
            let p = t.root.join(rel);
            if t.concerns(&p) {
                t.pending.insert(p);
            }
        }
        let root = t.root.clone();
        t.settle()
            .iter()
            .map(|p| p.strip_prefix(&root).unwrap().display().to_string())
            .collect()
    }

    #[test]
    fn the_same_bytes_again_are_no_change_and_new_bytes_are() {
        let root = scratch();
        write(&root, "src/main.rs", "fn main() {}\n");
        let mut t = tree(&root, vec![]);
        write(&root, "src/main.rs", "fn main() {}\n");
        assert!(touched(&mut t, &["src/main.rs"]).is_empty());
        write(&root, "src/main.rs", "fn main() { println!() }\n");
        assert_eq!(touched(&mut t, &["src/main.rs"]), ["src/main.rs"]);
        // Back to what it was: a change again.
        write(&root, "src/main.rs", "fn main() {}\n");
        assert_eq!(touched(&mut t, &["src/main.rs"]), ["src/main.rs"]);
        // Removed, added (a whole new directory at once).
        std::fs::remove_file(root.join("src/main.rs")).unwrap();
        assert_eq!(touched(&mut t, &["src/main.rs"]), ["src/main.rs"]);
        write(&root, "src/m/a.rs", "a");
        write(&root, "src/m/b.rs", "b");
        assert_eq!(touched(&mut t, &["src/m"]), ["src/m/a.rs", "src/m/b.rs"]);
        std::fs::remove_dir_all(root.join("src/m")).unwrap();
        assert_eq!(touched(&mut t, &["src/m"]), ["src/m/a.rs", "src/m/b.rs"]);
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn a_temporary_file_gone_before_the_window_closed_is_no_change() {
        let root = scratch();
        write(&root, "out/p.tmp", "new plugin");
        std::fs::create_dir_all(root.join("out")).unwrap();
        let mut t = tree(&root, vec![root.join("out/p")]);
        assert!(t.snapshot.contains_key(&root.join("out/p.tmp")));
        std::fs::remove_file(root.join("out/p.tmp")).unwrap();
        let mut t2 = tree(&root, vec![root.join("out/p")]);
        write(&root, "out/p.tmp", "x");
        std::fs::rename(root.join("out/p.tmp"), root.join("out/p")).unwrap();
        assert!(touched(&mut t2, &["out/p.tmp", "out/p", "out"]).is_empty());
        // The plugin file itself is never a source.
        write(&root, "out/p", "y");
        assert!(touched(&mut t2, &["out/p"]).is_empty());
        assert_eq!(touched(&mut t, &["out/p.tmp"]), ["out/p.tmp"]);
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn ignore_files_and_the_builtin_list_decide_what_counts() {
        let root = scratch();
        write(&root, ".gitignore", "/build/\n*.log\n!keep.log\n");
        write(&root, "sub/.gitignore", "gen.rs\n");
        write(&root, "sub/.ignore", "!gen.rs\nlocal.txt\n");
        write(&root, "src/main.rs", "");
        let t = tree(&root, vec![root.join("target")]);
        let s = &t.sources;
        let counts = |rel: &str| s.counts(&root.join(rel));
        assert!(counts("src/main.rs"));
        assert!(!counts("build/out.o"), "a directory the .gitignore names");
        assert!(counts("src/build/x.rs"), "/build/ is anchored at its file");
        assert!(!counts("x.log"));
        assert!(counts("keep.log"), "whitelisted");
        assert!(counts("sub/gen.rs"), ".ignore outranks .gitignore");
        assert!(!counts("sub/local.txt"));
        assert!(!counts("target/debug/p"), "excluded");
        assert!(!counts(".git/index"));
        assert!(!counts("src/.main.rs.swp"));
        assert!(!counts("src/main.rs~"));
        assert!(!counts("__pycache__/m.cpython-311.pyc"));
        assert!(!counts(".gitignore"), "rules, not sources");
        // A new ignore file is read once an event names it.
        let mut t = t;
        write(&root, "gen/.gitignore", "*\n");
        write(&root, "gen/x.rs", "1");
        assert_eq!(
            touched(&mut t, &["gen", "gen/.gitignore", "gen/x.rs"]),
            Vec::<String>::new()
        );
        assert!(!t.sources.counts(&root.join("gen/y.rs")));
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn ignore_files_above_the_tree_count_inside_a_repository() {
        let root = scratch();
        std::fs::create_dir_all(root.join(".git/info")).unwrap();
        write(&root, ".git/info/exclude", "*.bak\n");
        write(&root, ".gitignore", "generated/\n");
        write(&root, "crate/src/main.rs", "");
        let t = tree(&root.join("crate"), vec![]);
        assert!(t.sources.counts(&root.join("crate/src/main.rs")));
        assert!(!t.sources.counts(&root.join("crate/generated/a.rs")));
        assert!(!t.sources.counts(&root.join("crate/src/main.rs.bak")));
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn sources_newer_than_the_plugin_are_found_at_start() {
        let root = scratch();
        write(&root, "src/old.rs", "");
        write(&root, "src/new.rs", "");
        let old = SystemTime::now() - Duration::from_secs(120);
        let set = |rel: &str, t: SystemTime| {
            std::fs::File::options()
                .write(true)
                .open(root.join(rel))
                .unwrap()
                .set_modified(t)
                .unwrap();
        };
        set("src/old.rs", old);
        let mut t = tree(&root, vec![]);
        t.changed_after = Some(old + Duration::from_secs(60));
        assert_eq!(t.newer(), [root.join("src/new.rs")]);
        t.changed_after = None;
        assert!(t.newer().is_empty());
        let _ = std::fs::remove_dir_all(&root);
    }

    /// A save between the start-up scan and the "newer than the plugin"
    /// check is reported once, by the check: its event then finds the
    /// content it already reported.
    #[test]
    fn a_save_during_the_start_up_scan_is_reported_once() {
        let root = scratch();
        write(&root, "src/p.rs", "v1");
        let old = SystemTime::now() - Duration::from_secs(120);
        std::fs::File::options()
            .write(true)
            .open(root.join("src/p.rs"))
            .unwrap()
            .set_modified(old)
            .unwrap();
        let mut t = tree(&root, vec![]);
        t.changed_after = Some(old + Duration::from_secs(60));
        // The save lands after the scan read "v1".
        write(&root, "src/p.rs", "v2");
        assert_eq!(t.newer(), [root.join("src/p.rs")]);
        assert!(touched(&mut t, &["src/p.rs"]).is_empty());
        write(&root, "src/p.rs", "v3");
        assert_eq!(touched(&mut t, &["src/p.rs"]), ["src/p.rs"]);
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn a_change_names_a_few_paths_and_counts_the_rest() {
        let mut c = Change {
            paths: vec!["src/main.rs".into()],
            at_start: false,
        };
        assert_eq!(c.describe(Path::new("/p")), "src/main.rs");
        c.merge(Change {
            paths: ["/p/a", "/p/b", "/q/c", "src/main.rs"]
                .map(PathBuf::from)
                .to_vec(),
            at_start: true,
        });
        assert!(c.at_start);
        assert_eq!(c.describe(Path::new("/p")), "a, b, /q/c and 1 more");
    }
}
