//! The host's own options (`autoreload-*`), each defined once: its name,
//! lightningd type, default, the description lightningd shows, and the
//! row of README.md's options table. In the style of ripgrep's
//! `crates/core/flags/defs.rs`: everything else is derived from [`ALL`],
//! the entries of the manifest the host sends lightningd
//! ([`manifest_entries`]), the defaults the host starts with, and the
//! README table (a unit test keeps it in step: run it with
//! `UPDATE_README=1` to rewrite it).
//!
//! Owns: the definitions, the `[PLUGIN::]VALUE` form ([`PerPlugin`]) and
//! reading the values lightningd passes in `init`. Must not: act on a
//! value (the supervisor, the sandbox, the wasm backend do), log, or do
//! I/O (but for the README test).

mod given;
mod per_plugin;

pub use given::Given;
pub use per_plugin::{PerPlugin, Scope, Scoped, BIND};

use cln_protocol::OptionType;
use serde_json::{json, Value};
use std::time::Duration;

/// What an option is worth when lightningd's command line and config do
/// not give it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultValue {
    /// No default: lightningd leaves the option out of `init`.
    None,
    /// An `int` option's default.
    Int(i64),
    /// A `bool` option's default.
    Bool(bool),
    /// A `string` option's default.
    Str(&'static str),
}

impl DefaultValue {
    /// The default as the manifest declares it (`None`: no `default`).
    pub fn to_json(self) -> Option<Value> {
        match self {
            DefaultValue::None => None,
            DefaultValue::Int(i) => Some(json!(i)),
            DefaultValue::Bool(b) => Some(json!(b)),
            DefaultValue::Str(s) => Some(json!(s)),
        }
    }

    /// An `int` default, for the host's own settings; 0 for any other.
    pub const fn int(self) -> i64 {
        match self {
            DefaultValue::Int(i) => i,
            _ => 0,
        }
    }

    /// A `bool` default, for the host's own settings; false for any other.
    pub const fn bool(self) -> bool {
        matches!(self, DefaultValue::Bool(true))
    }

    /// An `int` default counted in milliseconds; 0 for any other.
    pub const fn millis(self) -> Duration {
        Duration::from_millis(self.int().unsigned_abs())
    }

    /// An `int` default counted in MiB, in bytes; 0 for any other.
    pub const fn mib(self) -> u64 {
        self.int().unsigned_abs() << 20
    }

    /// A `string` default, for the host's own settings; "" for any other.
    pub const fn str(self) -> &'static str {
        match self {
            DefaultValue::Str(s) => s,
            _ => "",
        }
    }
}

/// One of the host's options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Def {
    /// Its name, without `--`.
    pub name: &'static str,
    /// Its lightningd type.
    pub ty: OptionType,
    /// May be given several times (`init` passes an array).
    pub multi: bool,
    /// Its default.
    pub default: DefaultValue,
    /// The one line lightningd shows (`listconfigs`, `--help`).
    pub description: &'static str,
    /// The form of its value in README.md (`[PLUGIN::]MODE`).
    pub syntax: &'static str,
    /// Its default in README.md's words (`none`, `` `warm` ``).
    pub shown_default: &'static str,
    /// What it does, in README.md's words.
    pub doc: &'static str,
    /// Read from lightningd's command line and config files already at
    /// start-up (see [`crate::locate::Located::early`]): a plugin's first
    /// start, before `init`, needs it.
    pub early: bool,
}

impl Def {
    /// Its entry in the manifest the host sends lightningd.
    pub fn manifest_entry(&self) -> Value {
        let mut o = json!({"name": self.name, "type": self.ty.as_str()});
        if self.multi {
            o["multi"] = json!(true);
        }
        if let Some(d) = self.default.to_json() {
            o["default"] = d;
        }
        o["description"] = json!(self.description);
        o
    }

    /// Its row in README.md's options table.
    pub fn readme_row(&self) -> String {
        format!(
            "| `{}={}` | {} | {} |",
            self.name, self.syntax, self.shown_default, self.doc
        )
    }
}

/// Prefix of every option and method that belongs to the host itself.
pub const HOST_PREFIX: &str = "autoreload-";

/// `autoreload-plugin`.
pub const PLUGIN: Def = Def {
    name: "autoreload-plugin",
    ty: OptionType::String,
    multi: true,
    default: DefaultValue::None,
    description: "Path of a plugin to run and reload when its file changes (an executable, or a .wasm module); may be given several times",
    syntax: "PATH",
    shown_default: "none",
    doc: "the plugin to run and reload; may be given several times (native and wasm mixed)",
    early: false,
};

/// `autoreload-build`.
pub const BUILD: Def = Def {
    name: "autoreload-build",
    ty: OptionType::String,
    multi: true,
    default: DefaultValue::None,
    description: "[PLUGIN::]COMMAND to run (sh -c, in the plugin's project directory) when its sources change; 'none' turns off the inferred cargo build",
    syntax: "[PLUGIN::]COMMAND",
    shown_default: "inferred",
    doc: "the command that rebuilds the plugin when its sources change (`sh -c`, in its project directory); `none` turns the inferred one off. See \"Build on save\"",
    early: false,
};

/// `autoreload-watch`.
pub const WATCH: Def = Def {
    name: "autoreload-watch",
    ty: OptionType::String,
    multi: true,
    default: DefaultValue::None,
    description: "[PLUGIN::]DIR whose changes rebuild (or, without a build, reload) the plugin; relative to its project directory",
    syntax: "[PLUGIN::]DIR",
    shown_default: "inferred",
    doc: "a source directory (relative to the project directory) whose changes rebuild the plugin, or reload it if there is no build; may be given several times",
    early: false,
};

/// `autoreload-reregister-on-change`.
pub const REREGISTER_ON_CHANGE: Def = Def {
    name: "autoreload-reregister-on-change",
    ty: OptionType::Bool,
    multi: false,
    default: DefaultValue::Bool(false),
    description: "When a reload adds methods, hooks or options, make lightningd re-register cln-autoreload (needs a wrapper script; see autoreload-reregister)",
    syntax: "BOOL",
    shown_default: "false",
    doc: "when a reload adds or changes methods, hooks, subscriptions or options, re-register with lightningd by itself (see `autoreload-reregister`)",
    early: false,
};

/// `autoreload-overlap`.
pub const OVERLAP: Def = Def {
    name: "autoreload-overlap",
    ty: OptionType::String,
    multi: true,
    default: DefaultValue::None,
    description: "[PLUGIN::]warm|full|false: how a new version runs beside the old one: warm (the default: it starts beside it and gets init once the old one is gone), full (also true: its init too runs beside it), false (also cold: the old one stops first; the default for a plugin with the db_write hook, unless PLUGIN:: names it)",
    syntax: "[PLUGIN::]MODE",
    shown_default: "`warm` (`false` for a plugin with the `db_write` hook, unless `PLUGIN::` names it)",
    doc: "how a new version runs beside the old one: `warm` (it starts and answers getmanifest beside it, and gets `init` once the old one is gone), `false` or `cold` (the old one stops before the new one starts), `full` or `true` (its `init` too runs beside the old one). See \"What happens on a reload\"",
    early: false,
};

/// `autoreload-grace-ms`.
pub const GRACE_MS: Def = Def {
    name: "autoreload-grace-ms",
    ty: OptionType::Int,
    multi: false,
    default: DefaultValue::Int(2000),
    description: "On reload, how long the old instance may take to finish requests in flight before it is stopped",
    syntax: "N",
    shown_default: "2000",
    doc: "on reload, how long the old version may take to finish the calls it has in flight before it is stopped; also how long a version may take to save or restore its state (at least 5 s)",
    early: false,
};

/// `autoreload-start-timeout-ms`.
pub const START_TIMEOUT_MS: Def = Def {
    name: "autoreload-start-timeout-ms",
    ty: OptionType::Int,
    multi: false,
    default: DefaultValue::Int(60000),
    description: "How long a new version may take to answer getmanifest, and then init, before it counts as broken",
    syntax: "N",
    shown_default: "60000",
    doc: "how long a new version may take to answer `getmanifest`, and then `init`, before it counts as broken",
    early: false,
};

/// `autoreload-settle-ms`.
pub const SETTLE_MS: Def = Def {
    name: "autoreload-settle-ms",
    ty: OptionType::Int,
    multi: false,
    default: DefaultValue::Int(50),
    description: "How long a changed file must stay quiet before it is reloaded",
    syntax: "N",
    shown_default: "50",
    doc: "how long a file rewritten in place must stay quiet before it counts as saved (a file renamed into place or hard-linked, as cargo and most editors save, is complete at once and does not wait); also how long source trees must stay quiet before a build",
    early: false,
};

/// `autoreload-wasm-compiler`.
pub const WASM_COMPILER: Def = Def {
    name: "autoreload-wasm-compiler",
    ty: OptionType::String,
    multi: false,
    default: DefaultValue::Str("winch"),
    description: "Compiler for .wasm plugins: winch (fast reloads) or cranelift (faster code)",
    syntax: "C",
    shown_default: "`winch`",
    doc: "compiler for `.wasm` plugins: `winch` (compiles several times faster: quick reloads) or `cranelift` (optimizes: faster code, a quarter fewer instructions per call for hello-wasm)",
    early: true,
};

/// `autoreload-wasm-max-memory-mb`.
pub const WASM_MAX_MEMORY_MB: Def = Def {
    name: "autoreload-wasm-max-memory-mb",
    ty: OptionType::Int,
    multi: false,
    default: DefaultValue::Int(256),
    description: "Memory cap of a .wasm plugin instance, in MiB",
    syntax: "N",
    shown_default: "256",
    doc: "memory cap of a `.wasm` instance; past it, allocation fails and the instance is replaced",
    early: false,
};

/// `autoreload-wasm-request-timeout-ms`.
pub const WASM_REQUEST_TIMEOUT_MS: Def = Def {
    name: "autoreload-wasm-request-timeout-ms",
    ty: OptionType::Int,
    multi: false,
    default: DefaultValue::Int(10000),
    description: "A .wasm plugin computing this long without reading or writing is stopped, its request answered",
    syntax: "N",
    shown_default: "10000",
    doc: "a `.wasm` instance that computes this long without reading or writing anything is stopped: its request is answered with an error (a hook with `continue`) and a fresh instance takes over",
    early: false,
};

/// `autoreload-wasm-dir`.
pub const WASM_DIR: Def = Def {
    name: "autoreload-wasm-dir",
    ty: OptionType::String,
    multi: true,
    default: DefaultValue::None,
    description: "HOST[:GUEST] directory a .wasm plugin may use (none by default)",
    syntax: "HOST[:GUEST]",
    shown_default: "none",
    doc: "a directory a `.wasm` plugin may use (read-write), seen by it as `GUEST`; may be given several times. By default it sees no file at all: the lightning dir holds `hsm_secret`. Read from lightningd's command line and config files already at start-up, so a plugin has it before `init` (where `db_write` comes)",
    early: true,
};

/// `autoreload-wasm-rpc-allow`.
pub const WASM_RPC_ALLOW: Def = Def {
    name: "autoreload-wasm-rpc-allow",
    ty: OptionType::String,
    multi: true,
    default: DefaultValue::None,
    description: "[PLUGIN::]METHOD lightningd methods a .wasm plugin may call (default: all; * for all)",
    syntax: "[PLUGIN::]METHOD",
    shown_default: "all",
    doc: "lightningd methods a `.wasm` plugin may call (`*`: all); may be given several times. A refused call is an error to the plugin and a warning in the log",
    early: false,
};

/// `autoreload-wasm-cache-dir`.
pub const WASM_CACHE_DIR: Def = Def {
    name: "autoreload-wasm-cache-dir",
    ty: OptionType::String,
    multi: false,
    default: DefaultValue::None,
    description: "Directory of the on-disk cache of compiled .wasm modules (default: $XDG_CACHE_HOME or ~/.cache, then cln-autoreload/wasm); off: none",
    syntax: "DIR",
    shown_default: "`$XDG_CACHE_HOME` or `~/.cache`, then `cln-autoreload/wasm`",
    doc: "where compiled `.wasm` modules are kept across restarts; `off`: nowhere. See [docs/wasm.md](docs/wasm.md#the-module-caches)",
    early: true,
};

/// `autoreload-wasm-cache-mb`.
pub const WASM_CACHE_MB: Def = Def {
    name: "autoreload-wasm-cache-mb",
    ty: OptionType::Int,
    multi: false,
    default: DefaultValue::Int(256),
    description: "The most the on-disk cache of compiled .wasm modules holds, in MiB (least recently used dropped first; 0: none)",
    syntax: "N",
    shown_default: "256",
    doc: "the most that directory holds (least recently used dropped first); 0: no disk cache",
    early: true,
};

/// `autoreload-wasm-memory-cache-mb`.
pub const WASM_MEMORY_CACHE_MB: Def = Def {
    name: "autoreload-wasm-memory-cache-mb",
    ty: OptionType::Int,
    multi: false,
    default: DefaultValue::Int(64),
    description: "The most compiled code the host keeps in memory for .wasm modules seen in this run, in MiB (0: none)",
    syntax: "N",
    shown_default: "64",
    doc: "the most compiled code kept in memory for modules seen in this run (a revert, a crash, `autoreload-restart`); 0: none",
    early: true,
};

/// `autoreload-wasm-memory-cache-entries`.
pub const WASM_MEMORY_CACHE_ENTRIES: Def = Def {
    name: "autoreload-wasm-memory-cache-entries",
    ty: OptionType::Int,
    multi: false,
    default: DefaultValue::Int(32),
    description: "The most compiled .wasm modules the host keeps in memory (least recently used dropped first; 0: none)",
    syntax: "N",
    shown_default: "32",
    doc: "the most compiled modules kept in memory, whatever their size (least recently used dropped first); 0: none",
    early: true,
};

/// `autoreload-wasm-tier`.
pub const WASM_TIER: Def = Def {
    name: "autoreload-wasm-tier",
    ty: OptionType::String,
    multi: false,
    default: DefaultValue::Str("auto"),
    description: "auto: after Winch serves a .wasm module, compile it with Cranelift in the background (lowest priority) for its next start; off: Winch only (autoreload-wasm-compiler=cranelift: Cranelift only)",
    syntax: "T",
    shown_default: "`auto`",
    doc: "`auto`: once Winch's code serves, Cranelift compiles the same bytes in the background (nice 19), and a plugin that keeps its state swaps to the optimized code; `off`: Winch only (`autoreload-wasm-compiler=cranelift`: Cranelift only). See [docs/wasm.md](docs/wasm.md)",
    early: true,
};

/// `autoreload-wasm-reload-priority`.
pub const WASM_RELOAD_PRIORITY: Def = Def {
    name: "autoreload-wasm-reload-priority",
    ty: OptionType::String,
    multi: false,
    default: DefaultValue::Str("normal"),
    description: "CPU priority of a .wasm reload's compile while the old version serves: normal (a save serves soonest) or low (calls first)",
    syntax: "P",
    shown_default: "`normal`",
    doc: "CPU priority of a reload's compile while the old version serves: `normal` (a save serves soonest) or `low` (nice 19: calls first, the reload waits on a busy node)",
    early: false,
};

/// `autoreload-native-sandbox`.
pub const NATIVE_SANDBOX: Def = Def {
    name: "autoreload-native-sandbox",
    ty: OptionType::String,
    multi: true,
    default: DefaultValue::None,
    description: "[PLUGIN::]on|best-effort|off: run native plugins (all, or PLUGIN) in a Landlock sandbox that hides the lightning dir's secrets",
    syntax: "[PLUGIN::]MODE",
    shown_default: "off",
    doc: "`on`: run the native plugin (every one, or `PLUGIN`) in a Landlock sandbox that hides the lightning dir's secrets; `best-effort`: the same, but started even where the kernel cannot enforce it all; `off`. See \"Sandboxing native plugins\"",
    early: true,
};

/// `autoreload-native-allow`.
pub const NATIVE_ALLOW: Def = Def {
    name: "autoreload-native-allow",
    ty: OptionType::String,
    multi: true,
    default: DefaultValue::None,
    description: "[PLUGIN::]PATH[:rw] a sandboxed native plugin may also read (or write); relative to <lightning-dir>/<network>",
    syntax: "[PLUGIN::]PATH[:rw]",
    shown_default: "none",
    doc: "a path a sandboxed plugin may also read (`:rw`: and write); relative paths are in `<lightning-dir>/<network>`; may be given several times",
    early: true,
};

/// `autoreload-native-net`.
pub const NATIVE_NET: Def = Def {
    name: "autoreload-native-net",
    ty: OptionType::String,
    multi: true,
    default: DefaultValue::None,
    description: "[PLUGIN::]any|none|PORT,... TCP a sandboxed native plugin may connect to and bind (default: none)",
    syntax: "[PLUGIN::]NET",
    shown_default: "`none`",
    doc: "TCP a sandboxed plugin may connect to and bind: `any`, `none`, or ports `9735,8080`",
    early: true,
};

/// `autoreload-native-env`.
pub const NATIVE_ENV: Def = Def {
    name: "autoreload-native-env",
    ty: OptionType::String,
    multi: true,
    default: DefaultValue::None,
    description: "[PLUGIN::]NAME,... environment variables a sandboxed native plugin keeps (default: all; NAME* for a prefix)",
    syntax: "[PLUGIN::]NAME,...",
    shown_default: "all",
    doc: "the environment variables a sandboxed plugin keeps (`NAME*` for a prefix); `LIGHTNINGD_*` and `TMPDIR` always",
    early: true,
};

/// `autoreload-native-rpc-allow`.
pub const NATIVE_RPC_ALLOW: Def = Def {
    name: "autoreload-native-rpc-allow",
    ty: OptionType::String,
    multi: true,
    default: DefaultValue::None,
    description: "[PLUGIN::]METHOD lightningd methods a sandboxed native plugin may call over lightning-rpc (default: read-only methods; * for all)",
    syntax: "[PLUGIN::]METHOD",
    shown_default: "read-only methods",
    doc: "lightningd methods a sandboxed plugin may call over `lightning-rpc` (`*`: all); a refused call is an error to the plugin and a warning in the log. See [docs/sandbox.md](docs/sandbox.md)",
    early: true,
};

/// Every option, in the order the manifest declares them and README.md
/// lists them.
pub const ALL: &[&Def] = &[
    &PLUGIN,
    &BUILD,
    &WATCH,
    &REREGISTER_ON_CHANGE,
    &OVERLAP,
    &GRACE_MS,
    &START_TIMEOUT_MS,
    &SETTLE_MS,
    &WASM_COMPILER,
    &WASM_MAX_MEMORY_MB,
    &WASM_REQUEST_TIMEOUT_MS,
    &WASM_DIR,
    &WASM_RPC_ALLOW,
    &WASM_CACHE_DIR,
    &WASM_CACHE_MB,
    &WASM_MEMORY_CACHE_MB,
    &WASM_MEMORY_CACHE_ENTRIES,
    &WASM_TIER,
    &WASM_RELOAD_PRIORITY,
    &NATIVE_SANDBOX,
    &NATIVE_ALLOW,
    &NATIVE_NET,
    &NATIVE_ENV,
    &NATIVE_RPC_ALLOW,
];

/// The definition of option `name`, if it is one of the host's.
pub fn find(name: &str) -> Option<&'static Def> {
    ALL.iter().copied().find(|d| d.name == name)
}

/// The host's own options, as declared to lightningd.
pub fn manifest_entries() -> Vec<Value> {
    ALL.iter().map(|d| d.manifest_entry()).collect()
}

/// The first line of README.md's generated block.
pub const README_BEGIN: &str = "<!-- options:begin (generated from host/src/options/mod.rs: edit the definitions there, then run UPDATE_README=1 cargo test -p cln-autoreload --lib options) -->";
/// The line that ends it.
pub const README_END: &str = "<!-- options:end -->";

/// README.md's options table, between (and with) its markers.
pub fn readme_table() -> String {
    let mut out = vec![
        README_BEGIN.to_string(),
        "| option | default | meaning |".into(),
        "| --- | --- | --- |".into(),
    ];
    out.extend(ALL.iter().map(|d| d.readme_row()));
    out.push(README_END.into());
    out.join("\n")
}

/// `text` (README.md) with its options block replaced by `table`; `None`
/// when it has no block (no begin marker, or no end marker after it).
pub fn with_readme_table(text: &str, table: &str) -> Option<String> {
    let start = text.find("<!-- options:begin")?;
    let end = start + text[start..].find(README_END)? + README_END.len();
    Some(format!("{}{table}{}", &text[..start], &text[end..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_definition_is_one_lightningd_accepts() {
        for d in ALL {
            assert!(d.name.starts_with(HOST_PREFIX), "{}", d.name);
            assert!(
                !(d.multi && matches!(d.ty, OptionType::Bool | OptionType::Flag)),
                "{}",
                d.name
            );
            let fits = matches!(
                (d.ty, d.default),
                (_, DefaultValue::None)
                    | (OptionType::Int, DefaultValue::Int(_))
                    | (OptionType::Bool, DefaultValue::Bool(_))
                    | (OptionType::String, DefaultValue::Str(_))
            );
            assert!(fits, "{}: default does not fit its type", d.name);
            assert_eq!(find(d.name), Some(*d));
            assert_eq!(
                ALL.iter().filter(|e| e.name == d.name).count(),
                1,
                "{}",
                d.name
            );
        }
    }

    // The settings that are enums take their default from their own type;
    // the definitions must say the same.
    #[test]
    fn the_hosts_settings_start_at_the_defined_defaults() {
        use crate::backend::wasm;
        let w = wasm::Settings::default();
        assert_eq!(
            wasm::Compiler::parse(WASM_COMPILER.default.str()),
            Some(w.compiler)
        );
        assert_eq!(
            wasm::Priority::parse(WASM_RELOAD_PRIORITY.default.str()),
            Some(w.reload_priority)
        );
        assert_eq!(w.max_memory as u64, WASM_MAX_MEMORY_MB.default.mib());
        assert_eq!(w.cache.disk_max, 256 << 20);
        let c = crate::supervisor::Config::default();
        assert_eq!(c.grace, std::time::Duration::from_millis(2000));
        assert_eq!(c.start_timeout, std::time::Duration::from_secs(60));
        assert!(!c.reregister_on_change);
    }

    #[test]
    fn the_readme_table_is_generated_from_the_definitions() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md");
        let text = std::fs::read_to_string(&path).expect("README.md is readable");
        let table = readme_table();
        let updated = with_readme_table(&text, &table)
            .expect("README.md has the <!-- options:begin --> and <!-- options:end --> markers");
        if updated == text {
            return;
        }
        if std::env::var_os("UPDATE_README").is_some() {
            std::fs::write(&path, updated).expect("README.md is writable");
            return;
        }
        panic!(
            "README.md's options table is not the one host/src/options/mod.rs defines: run `UPDATE_README=1 cargo test -p cln-autoreload --lib options` to rewrite it"
        );
    }
}
