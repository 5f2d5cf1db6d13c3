//! The start-up handshake with lightningd: its getmanifest starts every
//! plugin and is answered with their merged manifests; its init is cached
//! (the host's options read and stripped) and answered once every plugin
//! has had its own.
//!
//! Owns: the host's settings read from init, which manifests lightningd
//! registers (refusing a plugin that clashes with an earlier one), and the
//! routing tables built from them. Must not: start or stop anything but
//! through [`super::lifecycle`].

use super::lifecycle::{overlap_problems, parse_overlap};
use super::plugin::*;
use super::*;
use crate::backend::wasm;
use crate::framing::{Message, RawId};
use crate::ids::PluginId;
use crate::init::CachedInit;
use crate::jsonrpc::{self, ErrorKind};
use crate::link::Level;
use crate::locate;
use crate::manifest::{self, Manifest};
use crate::options;
use crate::router::Router;
use crate::sandbox;
use serde_json::{json, Value};

impl Supervisor {
    pub(super) fn on_getmanifest(&mut self, id: RawId, m: &Message) {
        if !matches!(self.startup, Startup::NotStarted) {
            let msg = "getmanifest was already answered";
            return self.out.send(jsonrpc::error(&id, ErrorKind::Protocol, msg));
        }
        self.getmanifest_params = jsonrpc::parse(&m.raw)
            .and_then(|v| v.get("params").cloned())
            .unwrap_or(json!({}));
        let Some(located) = self.located.clone() else {
            let why = "no plugin to manage: start lightningd with --autoreload-plugin=PATH (or put autoreload-plugin=PATH in its config, or set AUTORELOAD_PLUGIN=PATH); cln-autoreload disables itself";
            self.out.log(Level::Warn, why);
            let mut manifest = manifest::merged(&[]);
            manifest["disable"] = json!(why);
            self.startup = Startup::Done;
            return self.out.send(jsonrpc::response(&id, manifest));
        };
        for note in &located.notes {
            self.out.log(Level::Info, note);
        }
        // lightningd may call hooks before init (db_write): a plugin starts
        // with the directories (wasm) and the sandbox (native) the user
        // gave it, read where the plugin paths were, so init need not
        // replace it (init's values decide from then on).
        let early = || located.early.iter().map(|(n, v)| (n.as_str(), v.as_str()));
        self.config.wasm.dirs = early()
            .filter(|(n, _)| *n == locate::WASM_DIR)
            .map(|(_, d)| wasm::GrantedDir::parse(d))
            .collect();
        self.config.native = sandbox::Options::from_pairs(early());
        self.config.native.rpc_socket = self.config.rpc_socket.clone();
        // The first compile already looks in the caches (a bad value is
        // warned about at init, which reads them again).
        for (name, value) in early().filter(|(n, _)| wasm::CacheSettings::is_option(n)) {
            let _ = self.config.wasm.cache.apply(name, value);
        }
        if let Some(c) = early()
            .rev()
            .filter(|(n, _)| *n == wasm::OPT_COMPILER)
            .find_map(|(_, v)| wasm::Compiler::parse(v))
        {
            self.config.wasm.compiler = c;
        }
        for path in &located.paths {
            self.out.log(
                Level::Info,
                format!("managing {} (found in {})", path.display(), located.source),
            );
            self.plugins.0.push(ManagedPlugin::new(path.clone()));
        }
        self.startup = Startup::Manifest { id };
        let pending = plugin::Pending::at(Trigger::Startup, self.now);
        for p in self.plugins.ids() {
            self.start(p, pending);
        }
        self.startup_progress();
    }

    pub(super) fn on_init(&mut self, id: RawId, m: &Message) {
        let params = jsonrpc::parse(&m.raw)
            .and_then(|v| v.get("params").cloned())
            .unwrap_or(json!({}));
        let cached = CachedInit::new(&params);
        let given = cached.host_options();
        if let Some(g) = given.millis(&options::GRACE_MS) {
            self.config.grace = g;
        }
        if let Some(s) = given.millis(&options::SETTLE_MS) {
            self.config.settle = s;
        }
        if let Some(t) = given.millis(&options::START_TIMEOUT_MS) {
            self.config.start_timeout = t;
        }
        if let Some(t) = given.millis(&options::WASM_REQUEST_TIMEOUT_MS) {
            self.config.wasm.request_timeout = t;
        }
        if let Some(mb) = given.int(&options::WASM_MAX_MEMORY_MB) {
            self.config.wasm.max_memory = usize::try_from(mb)
                .unwrap_or(usize::MAX / 2)
                .saturating_mul(1 << 20);
        }
        if let Some(c) = given.str(&options::WASM_COMPILER) {
            match wasm::Compiler::parse(c) {
                Some(c) => self.config.wasm.compiler = c,
                None => self.out.log(
                    Level::Warn,
                    format!(
                        "autoreload-wasm-compiler={c} is neither winch nor cranelift: using winch"
                    ),
                ),
            }
        }
        for def in [
            &options::WASM_CACHE_DIR,
            &options::WASM_CACHE_MB,
            &options::WASM_MEMORY_CACHE_MB,
            &options::WASM_MEMORY_CACHE_ENTRIES,
            &options::WASM_TIER,
        ] {
            let Some(value) = given.text(def) else {
                continue;
            };
            if let Err(w) = self.config.wasm.cache.apply(def.name, &value) {
                self.out.log(Level::Warn, w);
            }
        }
        if let Some(v) = given.str(&options::WASM_RELOAD_PRIORITY) {
            match wasm::Priority::parse(v) {
                Some(p) => self.config.wasm.reload_priority = p,
                None => self.out.log(
                    Level::Warn,
                    format!(
                        "{}={v} is neither normal nor low: using normal",
                        wasm::OPT_RELOAD_PRIORITY
                    ),
                ),
            }
        }
        self.config.wasm.dirs = given
            .strings(&options::WASM_DIR)
            .iter()
            .map(|d| wasm::GrantedDir::parse(d))
            .collect();
        let (builds, watches) = (
            given.strings(&options::BUILD),
            given.strings(&options::WATCH),
        );
        let mut native = sandbox::Options::default();
        for def in [
            &options::NATIVE_SANDBOX,
            &options::NATIVE_ALLOW,
            &options::NATIVE_NET,
            &options::NATIVE_ENV,
            &options::NATIVE_RPC_ALLOW,
        ] {
            for v in given.strings(def) {
                native.push(def.name, v);
            }
        }
        let names: Vec<String> = self.plugins.iter().map(|p| p.name.clone()).collect();
        for w in native.check(&names) {
            self.out.log(Level::Warn, w);
        }
        self.config.native = native;
        self.config.overlap = parse_overlap(&given.strings(&options::OVERLAP));
        for w in overlap_problems(&self.config.overlap, &names) {
            self.out.log(Level::Warn, w);
        }
        let allow = given.strings(&options::WASM_RPC_ALLOW);
        self.config.wasm.rpc_allow =
            (!allow.is_empty()).then(|| crate::rpc_allow::AllowList::parse(&allow));
        let conf = params.get("configuration");
        let rpc_file = conf
            .and_then(|c| c.get("rpc-file"))
            .and_then(Value::as_str)
            .unwrap_or("lightning-rpc");
        // rpc-file is relative to lightningd's cwd, which is ours.
        self.config.rpc_socket = self.config.cwd.as_ref().map(|d| d.join(rpc_file));
        self.config.native.rpc_socket = self.config.rpc_socket.clone();
        if let Some(b) = given.bool(&options::REREGISTER_ON_CHANGE) {
            self.config.reregister_on_change = b;
        }
        if let (Some(given), Some(located)) = (given.raw(&options::PLUGIN), &self.located) {
            if located.source == locate::Source::Lightningd {
                let n = given.as_array().map_or(1, Vec::len);
                if n != located.paths.len() {
                    self.out.log(
                        Level::Warn,
                        format!("lightningd passed {n} autoreload-plugin value(s) but {} were found on its command line and config: {given}", located.paths.len()),
                    );
                }
            }
        }
        self.init = Some(cached);
        if !matches!(self.startup, Startup::WaitInit) {
            let msg = "init out of order";
            return self.out.send(jsonrpc::error(&id, ErrorKind::Protocol, msg));
        }
        self.startup = Startup::Init { id };
        let files = self
            .plugins
            .ids()
            .map(|p| (p, self.plugins[p].path.clone()))
            .collect();
        self.out.push(Output::WatchFiles(files));
        self.out.push(Output::SetUpBuilds { builds, watches });
        for p in self.plugins.ids() {
            self.init_started(p);
        }
        self.startup_progress();
    }

    /// Answers lightningd's getmanifest or init once every plugin is past
    /// that step.
    pub(crate) fn startup_progress(&mut self) {
        match &self.startup {
            Startup::Manifest { id }
                if self.plugins.iter().all(ManagedPlugin::manifest_settled) =>
            {
                let id = id.clone();
                self.register_manifests();
                let registered: Vec<Option<&Manifest>> =
                    self.plugins.iter().map(|p| p.registered.as_ref()).collect();
                self.router = Router::new(&registered);
                let present: Vec<&Manifest> = registered.iter().flatten().copied().collect();
                if present.is_empty() {
                    self.out.log(
                        Level::Warn,
                        "no managed plugin answered getmanifest: only cln-autoreload's own methods are registered. Fix the plugin, then restart lightningd to register its methods",
                    );
                }
                let merged = manifest::merged(&present);
                self.out.send(jsonrpc::response(&id, merged));
                self.startup = Startup::WaitInit;
            }
            Startup::Init { id } if self.plugins.iter().all(ManagedPlugin::init_settled) => {
                let answer = jsonrpc::response(id, json!({}));
                self.out.send(answer);
                self.startup = Startup::Done;
            }
            _ => {}
        }
    }

    /// Decides what lightningd registers: each plugin's manifest, unless
    /// it declares a method or option an earlier plugin already has
    /// (lightningd would refuse it); such a plugin is refused, with a
    /// message naming both.
    pub(super) fn register_manifests(&mut self) {
        let mut accepted: Vec<PluginId> = vec![];
        for p in self.plugins.ids() {
            let Some(m) = self.plugins[p].current_manifest().cloned() else {
                continue;
            };
            let clashes: Vec<String> = accepted
                .iter()
                .filter_map(|&q| {
                    let theirs = self.plugins[q].registered.as_ref()?;
                    let c = manifest::conflicts(theirs, &m);
                    (!c.is_empty())
                        .then(|| format!("{} (already {}'s)", c.join(", "), self.plugins[q].name))
                })
                .collect();
            if clashes.is_empty() {
                self.plugins[p].registered = Some(m);
                accepted.push(p);
            } else {
                let why = format!(
                    "refused: it declares {}; lightningd allows each name once. Rename them in one of the plugins and restart lightningd",
                    clashes.join("; ")
                );
                self.refuse(p, why);
            }
        }
    }
}
