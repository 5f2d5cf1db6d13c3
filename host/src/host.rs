//! The host's event loop: the thin shell around the [`Supervisor`] that
//! does its I/O. One task owns everything and handles, one at a time,
//! what happens (lightningd's frames, instances' output and exits, file
//! changes, the supervisor's next deadline, finished builds), hands it to
//! the supervisor, and performs the [`Output`]s it queues: writing to
//! lightningd, spawning and signalling instances, watching files. It reads
//! lightningd's stdin itself and writes to lightningd and to native
//! plugins' stdin straight into their pipes ([`crate::outbox`]), so a
//! request goes from lightningd's pipe to its plugin's within one wake-up
//! of this task. wasm instances are tasks on this same loop
//! (backend/wasm.rs): a message sent to one and what it reports cross no
//! thread.
//!
//! Owns: the link to lightningd, the running [`Instance`]s, the file
//! watcher, build on save ([`Builds`]) and the native sandboxes as
//! prepared. Must not: decide anything the supervisor decides (where a
//! request goes, when a plugin reloads), or block: every I/O that waits
//! runs in a task that reports back over the channel.

use crate::backend::{native, wasm, BackendKind, Instance, InstanceEvent};
use crate::builds::{self, Builds};
use crate::decode::Decoder;
use crate::framing::RawId;
use crate::ids::{Gen, PluginId};
use crate::jsonrpc;
use crate::keep::{Keeper, NoCopy};
use crate::link::{Level, Link};
use crate::locate;
use crate::reregister;
use crate::sandbox;
use crate::supervisor::{
    FileStamp, Input, InstanceOp, Output, Sandbox, Source, Spawn, SpawnError, Supervisor,
};
use crate::watch;
use serde_json::json;
use std::collections::VecDeque;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};
use tokio::io::AsyncRead;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};

pub use crate::supervisor::Config;

/// Everything the loop reacts to besides lightningd's stream, which it
/// reads itself.
#[derive(Debug)]
pub enum Event {
    /// A plugin instance reported something.
    Instance {
        /// Whose.
        plugin: PluginId,
        /// Which generation.
        gen: Gen,
        /// What.
        event: InstanceEvent,
    },
    /// A plugin's file changed and settled.
    FileChanged(PluginId),
    /// Build on save reported something.
    Build(builds::Report),
    /// The copy of the file a generation started from is made (or not).
    Kept {
        /// Whose.
        plugin: PluginId,
        /// Which generation.
        gen: Gen,
        /// Where the copy is, or why there is none.
        outcome: Result<PathBuf, String>,
    },
    /// The optimized code of a generation's module is ready, or cannot be.
    Optimized {
        /// Whose.
        plugin: PluginId,
        /// Which generation.
        gen: Gen,
        /// Ready, or why not.
        outcome: Result<wasm::Optimized, wasm::OptimizeError>,
    },
    /// The wrapper to re-register through was found and marked changed
    /// (or why not).
    Reregister {
        /// Who asked.
        caller: Option<RawId>,
        /// The wrapper, or why not.
        outcome: Result<PathBuf, String>,
    },
}

/// The loop's state: the supervisor and the I/O it stands for.
pub struct Host {
    core: Supervisor,
    link: Link,
    events: UnboundedSender<Event>,
    instances: crate::HashMap<(PluginId, Gen), Instance>,
    sandboxes: sandbox::Settings,
    watcher: Option<watch::Watcher>,
    builds: Builds,
    kept: Keeper,
    /// Outcomes known at once (a spawn's, an optimization's that cannot
    /// start), fed back once the outputs in hand are performed.
    answers: VecDeque<Input>,
    /// Optimizations asked for while the copy of their file was being made.
    optimize_later: Vec<(PluginId, Gen)>,
    exit: bool,
}

impl Host {
    /// A host that will manage the plugins it finds once lightningd asks
    /// for the manifest. `argv` are plugin paths given on its command line.
    pub fn new(
        mut config: Config,
        argv: Vec<PathBuf>,
        link: Link,
        events: UnboundedSender<Event>,
    ) -> Host {
        config.cwd = std::env::current_dir().ok();
        // lightningd has read its command line and config by the time it
        // starts us: the plugins are there to find now.
        let ctx = locate::Context::from_process(argv.iter().map(|p| p.into()).collect());
        let located = locate::locate(&ctx);
        let started = SystemTime::now();
        Host {
            core: Supervisor::new(config, located, Instant::now(), started),
            builds: {
                let events = events.clone();
                let report = move |r| {
                    let _ = events.send(Event::Build(r));
                };
                Builds::new(link.clone(), report, started)
            },
            link,
            events,
            instances: Default::default(),
            sandboxes: sandbox::Settings::default(),
            watcher: None,
            kept: Keeper::default(),
            answers: VecDeque::new(),
            optimize_later: vec![],
            exit: false,
        }
    }

    /// Runs until lightningd shuts us down, reading lightningd's stream
    /// from `lightningd` and everything else from `rx`.
    pub async fn run<R: AsyncRead + Unpin>(
        mut self,
        mut rx: UnboundedReceiver<Event>,
        mut lightningd: R,
    ) {
        // lightningd's stream is read here, not by a task of its own: a
        // request is routed and written to its plugin in the same wake-up
        // that read it, with no hop between tasks.
        let mut decoder = Decoder::new();
        let mut open = true;
        // The supervisor's next deadline, and the one sleep that waits for
        // it: reset only when the deadline moves.
        let sleep = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(sleep);
        let mut armed: Option<Instant> = None;
        while !self.exit {
            let next = self.core.poll_timeout();
            if next != armed {
                if let Some(at) = next {
                    sleep.as_mut().reset(tokio::time::Instant::from_std(at));
                }
                armed = next;
            }
            tokio::select! {
                () = &mut sleep, if armed.is_some() => {
                    armed = None;
                    self.core.handle_timeout(Instant::now());
                    self.perform_all();
                }
                ev = rx.recv() => match ev {
                    Some(ev) => self.handle(ev),
                    None => break,
                },
                read = decoder.read_from(&mut lightningd), if open => {
                    let mut sink = |f| {
                        self.feed(Input::Lightningd(f));
                        if self.exit { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
                    };
                    if matches!(read, Ok(n) if n > 0) {
                        let _ = decoder.frames(&mut sink);
                    } else {
                        decoder.finish(&mut sink);
                        open = false;
                        if !self.exit {
                            self.feed(Input::LightningdClosed);
                        }
                    }
                }
            }
        }
        // Whatever is still running dies with us.
        for instance in self.instances.values() {
            instance.kill();
        }
    }

    fn handle(&mut self, ev: Event) {
        let input = match ev {
            Event::Instance { plugin, gen, event } => {
                if matches!(
                    event,
                    InstanceEvent::Message(_)
                        | InstanceEvent::Garbage { .. }
                        | InstanceEvent::Stderr(_)
                ) {
                    crate::backend::backlog().handled();
                }
                if matches!(event, InstanceEvent::Exited(_)) {
                    // The supervisor may still act on it (kill what the
                    // process left behind in its group): forgotten after.
                    self.feed(Input::Instance { plugin, gen, event });
                    self.instances.remove(&(plugin, gen));
                    return;
                }
                Input::Instance { plugin, gen, event }
            }
            Event::FileChanged(p) => self.changed(p),
            Event::Reregister { caller, outcome } => Input::Reregistered { caller, outcome },
            Event::Kept {
                plugin,
                gen,
                outcome,
            } => {
                self.kept.made(plugin, gen, outcome);
                // An optimization asked for before its copy was made.
                if let Some(i) = self.optimize_later.iter().position(|k| *k == (plugin, gen)) {
                    self.optimize_later.swap_remove(i);
                    self.optimize(plugin, gen);
                    // Its outcome, if known at once (no copy after all).
                    self.perform_all();
                }
                return;
            }
            Event::Optimized {
                plugin,
                gen,
                outcome,
            } => Input::Optimized {
                plugin,
                gen,
                outcome,
            },
            Event::Build(builds::Report::SourcesChanged { plugin, change }) => {
                if self.core.shutting_down() {
                    return;
                }
                match self.builds.on_sources_changed(plugin, change) {
                    Some(p) => self.changed(p),
                    None => return,
                }
            }
            Event::Build(builds::Report::Spec { plugin, spec }) => {
                return self.builds.on_spec(plugin, spec)
            }
            Event::Build(builds::Report::Done { plugin, outcome }) => {
                match self.builds.on_build_done(plugin, outcome) {
                    Some(p) if !self.core.shutting_down() => self.changed(p),
                    _ => return,
                }
            }
        };
        self.feed(input);
    }

    /// Plugin `p` is to be reloaded: its file as it is now goes with it.
    fn changed(&self, p: PluginId) -> Input {
        let file = FileStamp::of(&self.core.plugins()[p].path);
        Input::Changed { plugin: p, file }
    }

    /// Hands `input` to the supervisor and performs what it asks for.
    fn feed(&mut self, input: Input) {
        self.core.handle(Instant::now(), input);
        self.perform_all();
    }

    /// Performs what the supervisor asks for, then feeds back the outcomes
    /// known at once (what spawning answered), before any other input is
    /// handled.
    fn perform_all(&mut self) {
        loop {
            while let Some(o) = self.core.poll_output() {
                self.perform(o);
            }
            match self.answers.pop_front() {
                Some(answer) => self.core.handle(Instant::now(), answer),
                None => break,
            }
        }
    }

    fn perform(&mut self, o: Output) {
        match o {
            Output::ToLightningd(bytes) => self.link.send(bytes),
            Output::Spawn(s) => {
                let (plugin, gen) = (s.plugin, s.gen);
                let answer = match self.spawn(&s) {
                    Ok(instance) => {
                        let pid = instance.pid();
                        self.instances.insert((plugin, gen), instance);
                        // A version brought back is not the file as it is
                        // now: any save is newer than it.
                        let file = match s.source {
                            Source::File => FileStamp::of(&s.path),
                            Source::Kept(_) => None,
                        };
                        match s.source {
                            Source::File => {
                                let events = self.events.clone();
                                let done = move |outcome| {
                                    let _ = events.send(Event::Kept {
                                        plugin,
                                        gen,
                                        outcome,
                                    });
                                };
                                self.kept.keep(plugin, gen, &s.path, file, done)
                            }
                            Source::Kept(from) => self.kept.share(plugin, from, gen),
                        }
                        Input::Spawned {
                            plugin,
                            gen,
                            pid,
                            file,
                        }
                    }
                    Err(error) => Input::SpawnFailed { plugin, gen, error },
                };
                self.answers.push_back(answer);
            }
            Output::Instance { plugin, gen, op } => {
                let Some(i) = self.instances.get_mut(&(plugin, gen)) else {
                    // Gone already: its exit settles whatever this was.
                    return;
                };
                match op {
                    InstanceOp::Send(bytes) => i.send(bytes),
                    InstanceOp::CloseStdin => i.close_stdin(),
                    InstanceOp::Terminate => i.terminate(),
                    InstanceOp::Kill => i.kill(),
                }
            }
            Output::WatchFiles(files) => self.watch_files(&files),
            Output::StopWatching => self.watcher = None,
            Output::SetUpBuilds { builds, watches } => {
                let settle = self.core.config().settle;
                self.builds
                    .set_up(&builds, &watches, self.core.plugins(), settle)
            }
            Output::FindWrapper {
                caller,
                socket,
                managed,
            } => {
                let tx = self.events.clone();
                tokio::spawn(async move {
                    // The supervisor only reports why not.
                    let outcome = reregister::prepare(&socket, &managed)
                        .await
                        .map_err(|e| e.to_string());
                    let _ = tx.send(Event::Reregister { caller, outcome });
                });
            }
            Output::RestartThrough { socket, wrapper } => {
                let tx = self.events.clone();
                tokio::spawn(async move {
                    // Let the answers already sent reach lightningd before
                    // it kills us.
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    if let Err(why) = reregister::restart_through(&socket, &wrapper).await {
                        let _ = tx.send(Event::Reregister {
                            caller: None,
                            outcome: Err(why.to_string()),
                        });
                    }
                });
            }
            Output::Status { id, mut entries } => {
                for (p, entry) in &mut entries {
                    let plugin = &self.core.plugins()[*p];
                    if plugin.backend == BackendKind::Native {
                        let configured = self.core.config().native.spec(&plugin.name).is_some();
                        entry["sandbox"] = self.sandboxes.status(p.0, configured);
                    }
                    if let Some(b) = self.builds.status(*p) {
                        entry["build"] = b;
                    }
                }
                let list: Vec<_> = entries.into_iter().map(|(_, e)| e).collect();
                self.link
                    .send(jsonrpc::response(&id, json!({ "plugins": list })));
            }
            Output::Served { plugin, gen } => self.kept.served(plugin, gen),
            Output::Optimize { plugin, gen } => self.optimize(plugin, gen),
            Output::Exit => self.exit = true,
        }
    }

    /// Makes the optimized code of generation `gen`'s module ready, from
    /// the copy kept of the file it runs (the file itself may hold a newer
    /// version by now), on the optimizer's thread; the outcome comes back
    /// as [`Event::Optimized`]. A copy still being made is waited for.
    fn optimize(&mut self, plugin: PluginId, gen: Gen) {
        let path = match self.kept.path(plugin, gen) {
            Ok(path) => path,
            Err(NoCopy::Making(_)) => return self.optimize_later.push((plugin, gen)),
            Err(why) => {
                let outcome = Err(wasm::OptimizeError::Read(why.to_string()));
                return self.answers.push_back(Input::Optimized {
                    plugin,
                    gen,
                    outcome,
                });
            }
        };
        let settings = self.core.config().wasm.clone();
        let tx = self.events.clone();
        tokio::spawn(async move {
            let outcome = wasm::optimize(&path, &settings).await;
            let _ = tx.send(Event::Optimized {
                plugin,
                gen,
                outcome,
            });
        });
    }

    /// Starts an instance that reports as generation `gen` of `p`.
    fn spawn(&mut self, s: &Spawn) -> Result<Instance, SpawnError> {
        let kept = match s.source {
            Source::File => None,
            Source::Kept(from) => Some(
                self.kept
                    .path(s.plugin, from)
                    .map_err(|e| SpawnError::Other(e.to_string()))?,
            ),
        };
        let (p, gen) = (s.plugin, s.gen);
        let path = kept.as_deref().unwrap_or(&s.path);
        let tx = self.events.clone();
        let report = move |event| {
            let _ = tx.send(Event::Instance {
                plugin: p,
                gen,
                event,
            });
        };
        let spawned = match &s.sandbox {
            Sandbox::Wasm(settings) => wasm::spawn(path, settings, s.urgency, report),
            Sandbox::Native(spec) => {
                let name = self.core.plugins()[p].name.clone();
                let prepared = self
                    .sandboxes
                    .prepare(p.0, spec.as_ref(), &name, path, &self.link)
                    .map_err(SpawnError::Other)?;
                let developer = self.core.config().developer;
                native::spawn(path, developer, prepared, report)
            }
        };
        spawned.map_err(|e| match e.kind() {
            _ if native::is_busy(&e) => SpawnError::Busy,
            std::io::ErrorKind::NotFound => SpawnError::NotFound,
            std::io::ErrorKind::PermissionDenied => SpawnError::NotExecutable,
            _ => SpawnError::Other(e.to_string()),
        })
    }

    fn watch_files(&mut self, files: &[(PluginId, PathBuf)]) {
        let tx = self.events.clone();
        match watch::watch(files, self.core.config().settle, move |p| {
            let _ = tx.send(Event::FileChanged(p));
        }) {
            Ok((w, problems)) => {
                for problem in problems {
                    self.link.log(
                        Level::Warn,
                        format!("{problem}: changes there will not reload anything"),
                    );
                }
                self.watcher = Some(w);
            }
            Err(e) => self.link.log(
                Level::Warn,
                format!("cannot watch files ({e}): reload with autoreload-restart"),
            ),
        }
    }
}
