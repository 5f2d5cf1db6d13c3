//! The supervisor's vocabulary with its loop: the [`Input`]s it takes,
//! the [`Output`]s it asks for, and the small types they carry.
//!
//! Owns: those types and what each promises (an [`Output::Spawn`] is
//! answered before anything else happens). Must not: hold behaviour.

use crate::backend::{wasm, InstanceEvent};
use crate::framing::{Frame, RawId};
use crate::ids::{Gen, PluginId};
use crate::sandbox;
use crate::watch::FileStamp;
use bytes::Bytes;
use serde_json::Value;
use std::path::PathBuf;

/// Timers a plugin's life cycle sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timer {
    /// A draining generation's grace period is over.
    GraceOver,
    /// A stopping generation lingers: SIGTERM.
    Terminate,
    /// It still lingers: SIGKILL.
    Kill,
    /// A starting generation took too long.
    StartTimeout,
    /// Try starting again (file busy, crash back-off).
    Retry,
    /// A retiring generation's grace period is over: close its stdin.
    RetireGrace(Gen),
    /// A retiring generation lingers: stop it.
    RetireKill(Gen),
    /// A second of a plugin's warnings of this kind is over: say how many
    /// were not logged.
    QuietOver(super::plugin::WarnKind),
    /// This generation was asked to save or restore its state and has not
    /// answered in time (the grace period, at least 5 s): go on without.
    StateTimeout(Gen),
}

/// Why a spawn failed: the supervisor retries a busy file shortly and
/// reports the rest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpawnError {
    /// The file is still open for writing (a compiler finishing it).
    #[error("it stays open for writing")]
    Busy,
    /// It does not exist (or its `#!` interpreter is missing).
    #[error("does not exist (or its #! interpreter is missing)")]
    NotFound,
    /// It is not executable.
    #[error("is not executable: chmod +x it")]
    NotExecutable,
    /// Anything else, in words.
    #[error("{0}")]
    Other(String),
}

/// Everything the supervisor reacts to.
#[derive(Debug)]
pub enum Input {
    /// A frame from lightningd.
    Lightningd(Frame),
    /// lightningd closed our stdin.
    LightningdClosed,
    /// An instance the supervisor asked for runs.
    Spawned {
        /// Whose.
        plugin: PluginId,
        /// Which generation.
        gen: Gen,
        /// Its process id (native).
        pid: Option<u32>,
        /// The file it was started from, as it was then.
        file: Option<FileStamp>,
    },
    /// An instance the supervisor asked for could not be started.
    SpawnFailed {
        /// Whose.
        plugin: PluginId,
        /// Which generation.
        gen: Gen,
        /// Why.
        error: SpawnError,
    },
    /// A plugin instance reported something.
    Instance {
        /// Whose.
        plugin: PluginId,
        /// Which generation.
        gen: Gen,
        /// What.
        event: InstanceEvent,
    },
    /// A plugin's file (or, with build on save, its sources) changed and
    /// settled: reload it.
    Changed {
        /// Which.
        plugin: PluginId,
        /// The plugin file as it is now.
        file: Option<FileStamp>,
    },
    /// The optimized code of a generation's module is ready (wasm
    /// tiering), or cannot be: the answer to [`Output::Optimize`].
    Optimized {
        /// Whose.
        plugin: PluginId,
        /// Which generation's module.
        gen: Gen,
        /// Ready, or why not.
        outcome: Result<wasm::Optimized, wasm::OptimizeError>,
    },
    /// The wrapper to re-register through was found and marked changed
    /// (or why not).
    Reregistered {
        /// Who asked (`None`: the host itself, after a reload).
        caller: Option<RawId>,
        /// The wrapper, or why not.
        outcome: Result<PathBuf, String>,
    },
}

/// An instance to start.
#[derive(Debug, Clone)]
pub struct Spawn {
    /// Whose.
    pub plugin: PluginId,
    /// Which generation it will be.
    pub gen: Gen,
    /// The plugin file.
    pub path: PathBuf,
    /// Which version of it.
    pub source: Source,
    /// How it runs, and in what sandbox.
    pub sandbox: Sandbox,
    /// Whether calls wait for it (no version serves): a wasm module is
    /// then compiled at normal priority, not in the background.
    pub urgency: wasm::Urgency,
}

/// Which version of a plugin's file an instance runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The file as it is now.
    File,
    /// The file as it was when this generation started: the host keeps a
    /// copy of the one that serves, to bring it back when a new version
    /// fails after the old one stopped.
    Kept(Gen),
}

/// How an instance runs and the sandbox it runs in. A generation keeps
/// the one it was started in: init may give another, and a generation
/// that waits for init in the wrong one is replaced.
#[derive(Debug, Clone, PartialEq)]
pub enum Sandbox {
    /// In wasmtime, with these settings.
    Wasm(wasm::Settings),
    /// A child process, in this Landlock sandbox (`None`: not sandboxed).
    Native(Option<sandbox::Spec>),
}

/// What to do to one running instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstanceOp {
    /// Write this message to it.
    Send(Bytes),
    /// Close its stdin (the way lightningd tells a plugin to stop).
    CloseStdin,
    /// SIGTERM (native) or stop (wasm).
    Terminate,
    /// SIGKILL its process group, or stop it (wasm).
    Kill,
}

/// What the supervisor asks its loop to do, in order.
#[derive(Debug)]
pub enum Output {
    /// Write this message to lightningd.
    ToLightningd(Bytes),
    /// Start an instance of a plugin; answer with [`Input::Spawned`] or
    /// [`Input::SpawnFailed`], and report what it does as
    /// [`Input::Instance`].
    Spawn(Spawn),
    /// Do something to a running instance (nothing, if it is gone).
    Instance {
        /// Whose.
        plugin: PluginId,
        /// Which generation.
        gen: Gen,
        /// What.
        op: InstanceOp,
    },
    /// Make the optimized (Cranelift) code of generation `gen`'s module
    /// ready, from the copy of the file it runs, in the background (wasm
    /// tiering); answer with [`Input::Optimized`].
    Optimize {
        /// Whose.
        plugin: PluginId,
        /// Which generation.
        gen: Gen,
    },
    /// Watch these plugin files and send [`Input::Changed`] when one
    /// changes and settles.
    WatchFiles(Vec<(PluginId, PathBuf)>),
    /// Stop watching anything.
    StopWatching,
    /// Set up build on save with these `autoreload-build` and
    /// `autoreload-watch` values.
    SetUpBuilds {
        /// `autoreload-build` values.
        builds: Vec<String>,
        /// `autoreload-watch` values.
        watches: Vec<String>,
    },
    /// Find the wrapper lightningd started the host from and mark it
    /// changed; answer with [`Input::Reregistered`].
    FindWrapper {
        /// Who asked.
        caller: Option<RawId>,
        /// lightningd's rpc socket.
        socket: PathBuf,
        /// The managed plugins' paths (to recognize the host's entry).
        managed: Vec<PathBuf>,
    },
    /// Ask lightningd to `plugin start` the wrapper (which restarts the
    /// host), shortly, so the answers already sent reach it first.
    RestartThrough {
        /// lightningd's rpc socket.
        socket: PathBuf,
        /// The wrapper.
        wrapper: PathBuf,
    },
    /// Answer `autoreload-status` with these entries, after adding what
    /// the loop knows of each plugin (its builds, its native sandbox).
    Status {
        /// The caller.
        id: RawId,
        /// Each chosen plugin and its entry.
        entries: Vec<(PluginId, Value)>,
    },
    /// This generation serves now: the copy of its file is the one to keep
    /// (see [`Source::Kept`]); the others are no longer needed.
    Served {
        /// Whose.
        plugin: PluginId,
        /// Which generation.
        gen: Gen,
    },
    /// Every plugin is down after a shutdown: exit.
    Exit,
}
