//! The settings a WebAssembly plugin runs with: which compiler, its
//! sandbox, and the caches of compiled modules; and what a compile
//! reports. Plain data, compiled with or without the `wasm` feature, so
//! the rest of the host (options, status, the supervisor) is the same in
//! both builds; both `wasm.rs` and its stand-in `wasm_disabled.rs` re-export it
//! as `backend::wasm::{Compiler, GrantedDir, Settings}`.
//!
//! Owns: parsing and naming these settings. Must not: use wasmtime.

use crate::options;
use std::path::PathBuf;
use std::time::Duration;

/// Which compiler turns a module into machine code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compiler {
    /// Baseline compiler: compiles several times faster, runs slower.
    Winch,
    /// Optimizing compiler.
    Cranelift,
}

impl Compiler {
    /// Parses `winch` or `cranelift`.
    pub fn parse(s: &str) -> Option<Compiler> {
        match s {
            "winch" => Some(Compiler::Winch),
            "cranelift" => Some(Compiler::Cranelift),
            _ => None,
        }
    }

    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            Compiler::Winch => "winch",
            Compiler::Cranelift => "cranelift",
        }
    }
}

/// A directory granted to guests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantedDir {
    /// Where it is on the host.
    pub host: PathBuf,
    /// Where the guest sees it.
    pub guest: String,
}

impl GrantedDir {
    /// Parses `HOST[:GUEST]` (the guest path defaults to the host path).
    pub fn parse(s: &str) -> GrantedDir {
        match s.split_once(':') {
            Some((h, g)) if !g.is_empty() => GrantedDir {
                host: PathBuf::from(h),
                guest: g.to_string(),
            },
            _ => GrantedDir {
                host: PathBuf::from(s.trim_end_matches(':')),
                guest: s.trim_end_matches(':').to_string(),
            },
        }
    }
}

/// The sandbox and compiler settings an instance starts with.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Which compiler.
    pub compiler: Compiler,
    /// Linear memory cap, in bytes.
    pub max_memory: usize,
    /// How long the guest may compute without waiting for input.
    pub request_timeout: Duration,
    /// Directories it may use.
    pub dirs: Vec<GrantedDir>,
    /// lightningd methods it may call (`[PLUGIN::]METHOD`); `None`: all.
    pub rpc_allow: Option<crate::rpc_allow::AllowList>,
    /// lightningd's rpc socket, once init has told us.
    pub rpc_socket: Option<PathBuf>,
    /// `--developer` is passed on as an argument.
    pub developer: bool,
    /// Where compiled modules are kept, and how many.
    pub cache: CacheSettings,
    /// The CPU priority of the compile of a new version while the old one
    /// serves.
    pub reload_priority: Priority,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            compiler: Compiler::Winch,
            max_memory: usize::try_from(options::WASM_MAX_MEMORY_MB.default.mib())
                .unwrap_or(usize::MAX),
            request_timeout: options::WASM_REQUEST_TIMEOUT_MS.default.millis(),
            dirs: vec![],
            rpc_allow: None,
            rpc_socket: None,
            developer: false,
            cache: CacheSettings::default(),
            reload_priority: Priority::Normal,
        }
    }
}

/// The caches of compiled modules: one in memory, for this run of the
/// host, and one on disk, across runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheSettings {
    /// The on-disk cache's directory; `None`: no disk cache.
    pub dir: Option<PathBuf>,
    /// The most the on-disk cache holds, in bytes (0: nothing).
    pub disk_max: u64,
    /// The most compiled code the in-memory cache holds, in bytes (0:
    /// nothing).
    pub memory_max: usize,
    /// The most modules the in-memory cache holds (0: nothing): small
    /// modules would otherwise pile up under the byte bound, each with its
    /// instance metadata, which the byte count does not see.
    pub memory_entries: usize,
    /// Whether a module Winch compiled gets a Cranelift version in the
    /// background. (Kept here, with the options applied by name, until the
    /// options have one table.)
    pub tier: Tier,
}

/// Tiering: Winch serves first (it compiles several times faster), and
/// Cranelift compiles the same bytes in the background, at the lowest
/// priority, for the next start of those bytes (a restart, a revert, a
/// tier-up reload) to run faster code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    /// Tier up modules that Winch compiled (with the default
    /// `autoreload-wasm-compiler=winch`; with `cranelift` there is
    /// nothing to tier up).
    Auto,
    /// One compiler only: the one `autoreload-wasm-compiler` names.
    Off,
}

impl Tier {
    /// Parses `auto` or `off`.
    pub fn parse(s: &str) -> Option<Tier> {
        match s.trim() {
            "auto" => Some(Tier::Auto),
            "off" => Some(Tier::Off),
            _ => None,
        }
    }
}

/// `autoreload-wasm-compiler`: winch or cranelift.
pub const OPT_COMPILER: &str = options::WASM_COMPILER.name;
/// `autoreload-wasm-cache-dir`: where the on-disk cache is (`off`: none).
pub const OPT_CACHE_DIR: &str = options::WASM_CACHE_DIR.name;
/// `autoreload-wasm-cache-mb`: the on-disk cache's bound.
pub const OPT_CACHE_MB: &str = options::WASM_CACHE_MB.name;
/// `autoreload-wasm-memory-cache-mb`: the in-memory cache's bound.
pub const OPT_MEMORY_CACHE_MB: &str = options::WASM_MEMORY_CACHE_MB.name;
/// `autoreload-wasm-memory-cache-entries`: the in-memory cache's bound
/// in modules.
pub const OPT_MEMORY_CACHE_ENTRIES: &str = options::WASM_MEMORY_CACHE_ENTRIES.name;
/// `autoreload-wasm-tier`: auto (Cranelift in the background after Winch)
/// or off.
pub const OPT_TIER: &str = options::WASM_TIER.name;
/// `autoreload-wasm-reload-priority`: the CPU priority of a reload's
/// compile.
pub const OPT_RELOAD_PRIORITY: &str = options::WASM_RELOAD_PRIORITY.name;

/// The directory, inside the on-disk cache's, of Cranelift's incremental
/// compilation cache.
pub const INCREMENTAL_DIR: &str = "cranelift-incremental";

impl Default for CacheSettings {
    fn default() -> CacheSettings {
        CacheSettings {
            dir: CacheSettings::default_dir(),
            disk_max: options::WASM_CACHE_MB.default.mib(),
            memory_max: usize::try_from(options::WASM_MEMORY_CACHE_MB.default.mib())
                .unwrap_or(usize::MAX),
            memory_entries: usize::try_from(options::WASM_MEMORY_CACHE_ENTRIES.default.int())
                .unwrap_or(0),
            tier: Tier::parse(options::WASM_TIER.default.str()).unwrap_or(Tier::Auto),
        }
    }
}

impl CacheSettings {
    /// The user's cache directory (`$XDG_CACHE_HOME`, else `~/.cache`)
    /// followed by `cln-autoreload/wasm`; `None` when neither is known
    /// (no `HOME`: then there is no disk cache rather than one in a place
    /// nobody would look for it).
    pub fn default_dir() -> Option<PathBuf> {
        let base = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .or_else(|| {
                std::env::var_os("HOME")
                    .map(PathBuf::from)
                    .filter(|p| p.is_absolute())
                    .map(|h| h.join(".cache"))
            })?;
        Some(base.join("cln-autoreload").join("wasm"))
    }

    /// Applies one option by name (`value` as lightningd or the command
    /// line gave it); a problem with the value, in words.
    pub fn apply(&mut self, name: &str, value: &str) -> Result<(), String> {
        let value = value.trim();
        let mib = || {
            value
                .parse::<u64>()
                .map_err(|_| format!("{name}={value} is not a whole number of MiB: ignored"))
        };
        match name {
            OPT_CACHE_DIR => {
                self.dir = match value {
                    "off" | "none" | "" => None,
                    dir => Some(PathBuf::from(dir)),
                }
            }
            OPT_CACHE_MB => self.disk_max = mib()?.saturating_mul(1 << 20),
            OPT_MEMORY_CACHE_MB => {
                self.memory_max =
                    usize::try_from(mib()?.saturating_mul(1 << 20)).unwrap_or(usize::MAX)
            }
            OPT_MEMORY_CACHE_ENTRIES => {
                self.memory_entries = value
                    .parse::<usize>()
                    .map_err(|_| format!("{name}={value} is not a whole number: ignored"))?
            }
            OPT_TIER => {
                self.tier = Tier::parse(value)
                    .ok_or_else(|| format!("{name}={value} is neither auto nor off: ignored"))?
            }
            _ => return Err(format!("{name} is not a cache option")),
        }
        Ok(())
    }

    /// The cache's options.
    pub const OPTIONS: [&'static str; 5] = [
        OPT_CACHE_DIR,
        OPT_CACHE_MB,
        OPT_MEMORY_CACHE_MB,
        OPT_MEMORY_CACHE_ENTRIES,
        OPT_TIER,
    ];

    /// Where Cranelift's incremental compilation cache is kept: beside
    /// the compiled modules, in a directory of its own.
    pub fn incremental_dir(&self) -> Option<PathBuf> {
        let dir = self.dir.as_ref().filter(|_| self.disk_max > 0)?;
        Some(dir.join(INCREMENTAL_DIR))
    }

    /// The most Cranelift's incremental compilation cache holds, in bytes:
    /// a quarter of the bound of the compiled modules (it holds one entry
    /// per compiled function, worth keeping only for functions that have
    /// not changed since).
    pub fn incremental_max(&self) -> u64 {
        self.disk_max / 4
    }

    /// Whether `name` is one of the cache's options.
    pub fn is_option(name: &str) -> bool {
        Self::OPTIONS.contains(&name)
    }
}

/// The CPU priority a compile runs at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    /// Like the rest of the host: the compile of a change the user has
    /// just saved must not wait behind a busy node.
    Normal,
    /// Nice 19: every call gets the CPU first, and a reload under load
    /// waits for the CPU the calls leave.
    Low,
}

impl Priority {
    /// Parses `normal` or `low`.
    pub fn parse(s: &str) -> Option<Priority> {
        match s.trim() {
            "normal" => Some(Priority::Normal),
            "low" => Some(Priority::Low),
            _ => None,
        }
    }
}

/// How soon a module must be compiled: in the background while another
/// version of the plugin serves, or now, when calls wait for this one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Urgency {
    /// A version serves meanwhile: compile at
    /// [`Settings::reload_priority`] (normal by default: the user who
    /// saved waits for it).
    Background,
    /// No version serves: compile at normal priority.
    Urgent,
}

/// Where an instance's module came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModuleSource {
    /// Compiled for it now.
    Compiled,
    /// The same bytes were compiled earlier in this run of the host.
    Memory,
    /// The same bytes were compiled by an earlier run of the host, which
    /// kept the result on disk.
    Disk,
}

impl ModuleSource {
    /// Its name in `autoreload-status`.
    pub fn name(self) -> &'static str {
        match self {
            ModuleSource::Compiled => "compiled",
            ModuleSource::Memory => "memory",
            ModuleSource::Disk => "disk",
        }
    }
}

/// How an instance got its module, for `autoreload-status`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CompileRecord {
    /// How long it took to get it (compile, or find and load), ms.
    pub millis: f64,
    /// Where it came from.
    pub source: ModuleSource,
    /// The compiler that made it (Cranelift when Winch could not).
    pub compiler: Compiler,
}

impl CompileRecord {
    /// Its entry in `autoreload-status`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "duration_ms": self.millis,
            "cached": self.source != ModuleSource::Compiled,
            "source": self.source.name(),
            "compiler": self.compiler.name(),
            // The tier is the compiler whose code serves: "winch" until a
            // Cranelift version of the same bytes is taken.
            "tier": self.compiler.name(),
        })
    }
}

/// What `optimize` made ready.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Optimized {
    /// How long it took, from the request (waiting for the queue, and
    /// the compile or the cache lookup), ms.
    pub millis: f64,
    /// Where the Cranelift version came from: compiled now, or found in a
    /// cache.
    pub source: ModuleSource,
}

/// Why `optimize` has no Cranelift version to offer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OptimizeError {
    /// Tiering does not apply: `autoreload-wasm-tier=off`, a compiler
    /// other than Winch asked for, or the in-memory cache off (where the
    /// optimized version would wait).
    #[error("tiering is off (autoreload-wasm-tier=off, autoreload-wasm-compiler=cranelift, or no in-memory cache)")]
    Off,
    /// The file could not be read, or is not a wasm module.
    #[error("{0}")]
    Read(String),
    /// Cranelift could not compile it, or it cannot be instantiated.
    #[error("Cranelift cannot compile it: {0}")]
    Compile(String),
    /// This host cannot optimize at all (no thread for it, or no wasm
    /// support in this build).
    #[error("{0}")]
    Unavailable(String),
}
