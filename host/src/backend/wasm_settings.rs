//! The settings a WebAssembly plugin runs with: which compiler, and its
//! sandbox. Plain data, compiled with or without the `wasm` feature, so the
//! rest of the host (options, status, the supervisor) is the same in both
//! builds; both `wasm.rs` and its stand-in `wasm_disabled.rs` re-export it
//! as `backend::wasm::{Compiler, GrantedDir, Settings}`.
//!
//! Owns: parsing and naming these settings. Must not: use wasmtime.

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
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            compiler: Compiler::Winch,
            max_memory: 256 << 20,
            request_timeout: Duration::from_millis(10_000),
            dirs: vec![],
            rpc_allow: None,
            rpc_socket: None,
            developer: false,
        }
    }
}

/// How soon a module must be compiled: in the background while another
/// version of the plugin serves, or now, when calls wait for this one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Urgency {
    /// A version serves meanwhile: compile at the lowest priority.
    Background,
    /// No version serves: compile at normal priority.
    Urgent,
}
