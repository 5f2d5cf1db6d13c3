//! Build on save, as the host's loop runs it: for each plugin, what a
//! change of its sources means (a build, or a reload), the watch of those
//! sources, and the builds it runs.
//!
//! Owns: each plugin's [`PluginBuild`] (spec, watcher, the build running
//! and the one due after it) and the log lines about builds. Must not:
//! reload anything itself (a build rewrites the plugin file, and the file
//! watcher does the rest; a change without a build is handed back to the
//! loop, which tells the supervisor), or block the loop.

use crate::ids::PluginId;
use crate::link::{Level, Link};
use crate::rebuild;
use crate::supervisor::Plugins;
use crate::watch;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// What build on save reports back to its owner's loop: it happens on
/// watch threads and build tasks, and is acted on (through [`Builds`]'s
/// methods) by the loop that owns the [`Builds`].
#[derive(Debug)]
pub enum Report {
    /// A plugin's sources changed and settled: hand it to
    /// [`Builds::on_sources_changed`].
    SourcesChanged {
        /// Whose.
        plugin: PluginId,
        /// What changed.
        change: watch::Change,
    },
    /// What to build for a plugin was inferred (or why not): hand it to
    /// [`Builds::on_spec`].
    Spec {
        /// Whose.
        plugin: PluginId,
        /// The spec, or why there is none.
        spec: Result<rebuild::Spec, String>,
    },
    /// A plugin's build ended: hand it to [`Builds::on_build_done`].
    Done {
        /// Whose.
        plugin: PluginId,
        /// How it went.
        outcome: rebuild::Outcome,
    },
}

/// Where [`Report`]s go: shared by the source watches and the tasks that
/// infer specs and run builds, each of which reports from where it runs.
type Reporter = Arc<dyn Fn(Report) + Send + Sync>;

/// Build on save, for one plugin.
pub struct PluginBuild {
    name: String,
    path: PathBuf,
    /// What to build and watch, if anything.
    spec: Option<rebuild::Spec>,
    /// Keeps the source watch alive.
    watcher: Option<watch::Watcher>,
    /// A build is running.
    running: bool,
    /// Sources changed while it ran: build once more after it.
    again: Option<watch::Change>,
    /// How the last build went.
    last: Option<rebuild::Outcome>,
    /// Builds run.
    count: u64,
}

impl PluginBuild {
    fn new(name: &str, path: &Path) -> PluginBuild {
        PluginBuild {
            name: name.to_owned(),
            path: path.to_owned(),
            spec: None,
            watcher: None,
            running: false,
            again: None,
            last: None,
            count: 0,
        }
    }
}

/// Build on save for every plugin.
pub struct Builds {
    link: Link,
    report: Reporter,
    settle: Duration,
    /// When the host started: a source saved after it may not have been
    /// seen by the plugin's first generation.
    started: SystemTime,
    plugins: Vec<PluginBuild>,
}

impl Builds {
    /// Nothing set up yet; [`Builds::set_up`] does, once init is known.
    /// `report` is called (from watch threads and tasks) with what the
    /// owner's loop is to hand back to these methods.
    pub fn new(
        link: Link,
        report: impl Fn(Report) + Send + Sync + 'static,
        started: SystemTime,
    ) -> Builds {
        Builds {
            link,
            report: Arc::new(report),
            settle: Duration::from_millis(50),
            started,
            plugins: vec![],
        }
    }

    /// The `build` entry of `p`'s status, if it has build on save.
    pub fn status(&self, p: PluginId) -> Option<Value> {
        let b = self.plugins.get(p.0)?;
        let spec = b.spec.as_ref()?;
        let mut j = spec.to_json();
        j["state"] = json!(if b.running { "building" } else { "idle" });
        j["builds"] = json!(b.count);
        j["last"] = b
            .last
            .as_ref()
            .map_or(Value::Null, rebuild::Outcome::to_json);
        Some(j)
    }

    /// Works out, for each plugin, what a change of its sources means: a
    /// build (given, or inferred for a cargo artifact), or a reload (a
    /// Python plugin's modules, or `autoreload-watch` without a build).
    pub fn set_up(
        &mut self,
        builds: &[String],
        watches: &[String],
        plugins: &Plugins,
        settle: Duration,
    ) {
        self.settle = settle;
        let names: Vec<String> = plugins.iter().map(|p| p.name.clone()).collect();
        self.plugins = plugins
            .iter()
            .map(|p| PluginBuild::new(&p.name, &p.path))
            .collect();
        let (builds, w1) = rebuild::bind(builds, &names);
        let (watches, w2) = rebuild::bind(watches, &names);
        for w in w1.into_iter().chain(w2) {
            self.link.log(Level::Warn, w);
        }
        for (i, p) in plugins.ids().enumerate() {
            let path = self.plugins[i].path.clone();
            let command = builds[i].last().cloned().filter(|c| c != "none");
            let explicit = command.is_some() || !watches[i].is_empty();
            if builds[i].last().is_some_and(|c| c == "none") && watches[i].is_empty() {
                continue;
            }
            if explicit {
                let cwd = rebuild::project_dir(&path);
                let watch = if watches[i].is_empty() {
                    vec![cwd.clone()]
                } else {
                    watches[i].iter().map(|w| cwd.join(w)).collect()
                };
                let spec = rebuild::Spec {
                    command,
                    ignore: vec![cwd.join("target"), path.clone()],
                    cwd,
                    watch,
                    extensions: vec![],
                    inferred: false,
                };
                self.on_spec(p, Ok(spec));
            } else if path.extension().is_some_and(|e| e == "py") {
                let dir = path
                    .parent()
                    .map(Path::to_path_buf)
                    .unwrap_or_else(|| PathBuf::from("/"));
                let spec = rebuild::Spec {
                    command: None,
                    cwd: dir.clone(),
                    watch: vec![dir],
                    ignore: vec![path.clone()],
                    extensions: vec!["py".into()],
                    inferred: true,
                };
                self.on_spec(p, Ok(spec));
            } else if let Some(artifact) = rebuild::cargo_artifact(&path) {
                let report = self.report.clone();
                tokio::spawn(async move {
                    let spec = rebuild::infer_cargo(&artifact).await;
                    report(Report::Spec { plugin: p, spec });
                });
            }
        }
    }

    /// What to build and watch for `p` is known (or why there is none):
    /// start watching its sources.
    pub fn on_spec(&mut self, p: PluginId, spec: Result<rebuild::Spec, String>) {
        let Some(name) = self.plugins.get(p.0).map(|b| b.name.clone()) else {
            return;
        };
        let mut spec = match spec {
            Ok(s) => s,
            Err(why) => {
                return self
                    .link
                    .log(Level::Info, format!("[{name}] no build on save: {why}"));
            }
        };
        // Every managed plugin's own file is the file watcher's business:
        // saving one plugin must not rebuild or reload another that lives
        // in the same directory.
        for other in &self.plugins {
            if !spec.ignore.contains(&other.path) {
                spec.ignore.push(other.path.clone());
            }
        }
        // Sources saved while nothing watched count once watching starts:
        // those newer than the plugin file, for a build (edited while
        // lightningd was down, or while the host started); those newer
        // than the host, for a reload.
        let changed_after = if spec.command.is_some() {
            let path = &self.plugins[p.0].path;
            Some(
                std::fs::metadata(path)
                    .and_then(|m| m.modified())
                    .unwrap_or(SystemTime::UNIX_EPOCH),
            )
        } else {
            Some(self.started)
        };
        let trees = spec
            .watch
            .iter()
            .map(|dir| watch::Tree {
                key: p,
                dir: dir.clone(),
                ignore: spec.ignore.clone(),
                extensions: spec.extensions.clone(),
                changed_after,
            })
            .collect();
        let report = self.report.clone();
        match watch::watch_trees(trees, self.settle, move |plugin, change| {
            report(Report::SourcesChanged { plugin, change });
        }) {
            Ok((w, problems)) => {
                for problem in problems {
                    self.link.log(Level::Warn, format!("[{name}] {problem}"));
                }
                self.plugins[p.0].watcher = Some(w);
            }
            Err(e) => {
                return self.link.log(
                    Level::Warn,
                    format!("[{name}] cannot watch its sources: {e}"),
                )
            }
        }
        let dirs: Vec<String> = spec.watch.iter().map(|d| d.display().to_string()).collect();
        self.link.log(
            Level::Info,
            match &spec.command {
                Some(c) => format!(
                    "[{name}] on a change in {}: {c} (in {})",
                    dirs.join(", "),
                    spec.cwd.display()
                ),
                None => format!("[{name}] a change in {} reloads it", dirs.join(", ")),
            },
        );
        self.plugins[p.0].spec = Some(spec);
    }

    /// `p`'s sources changed: build it, or (no build command) return
    /// that it is to be reloaded.
    #[must_use]
    pub fn on_sources_changed(&mut self, p: PluginId, change: watch::Change) -> Option<PluginId> {
        let b = self.plugins.get_mut(p.0)?;
        let name = b.name.clone();
        let Some(spec) = &b.spec else { return None };
        let names = change.describe(&spec.cwd);
        let what = if change.at_start {
            format!("sources changed since it was built ({names})")
        } else {
            format!("sources changed ({names})")
        };
        let Some(command) = spec.command.clone() else {
            self.link
                .log(Level::Debug, format!("[{name}] {what}: reloading"));
            return Some(p);
        };
        if b.running {
            // One more build once this one is done, however many saves.
            b.again
                .get_or_insert_with(watch::Change::default)
                .merge(change);
            return None;
        }
        b.running = true;
        b.count += 1;
        let cwd = spec.cwd.clone();
        self.link
            .log(Level::Info, format!("[{name}] {what}: {command}"));
        let report = self.report.clone();
        tokio::spawn(async move {
            let outcome = rebuild::run(&command, &cwd).await;
            report(Report::Done { plugin: p, outcome });
        });
        None
    }

    /// `p`'s build ended; returns what [`Builds::on_sources_changed`]
    /// returns for changes made while it ran.
    #[must_use]
    pub fn on_build_done(&mut self, p: PluginId, outcome: rebuild::Outcome) -> Option<PluginId> {
        let name = self.plugins.get(p.0).map(|b| b.name.clone())?;
        let secs = outcome.duration.as_secs_f64();
        if outcome.ok {
            self.link.log(
                Level::Info,
                format!("[{name}] build succeeded in {secs:.1} s"),
            );
            for line in &outcome.lines {
                self.link
                    .log(Level::Debug, format!("[{name}] build: {line}"));
            }
        } else {
            self.link.log(
                Level::Warn,
                format!(
                    "[{name}] build failed ({}) in {secs:.1} s; the running version keeps serving:",
                    outcome.status
                ),
            );
            for line in &outcome.lines {
                self.link
                    .log(Level::Warn, format!("[{name}] build: {line}"));
            }
        }
        let b = &mut self.plugins[p.0];
        b.running = false;
        b.last = Some(outcome);
        let change = b.again.take()?;
        self.on_sources_changed(p, change)
    }
}
