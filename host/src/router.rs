//! Who answers what: which managed plugin owns each rpc method, hook,
//! option and notification topic, and which requests are in flight where.
//!
//! Owns: the routing tables (built from the manifests registered with
//! lightningd) and the table of requests in flight (id → plugin,
//! generation, kind). Must not: send anything or touch plugin state; the
//! host acts on what it answers.

use crate::framing::RawId;
use crate::manifest::Manifest;
use bytes::Bytes;
use std::collections::HashMap;

/// Index of a managed plugin.
pub type PluginId = usize;

/// What a request from lightningd is, for deciding what to do when no
/// instance can answer it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReqKind {
    /// An rpc method call (or `check`, `setconfig`): a caller waits for it.
    Rpc,
    /// A hook call: lightningd waits, and aborts on an error answer.
    Hook(String),
}

impl ReqKind {
    /// `db_write` must never be answered on the plugin's behalf.
    pub fn must_reach_plugin(&self) -> bool {
        matches!(self, ReqKind::Hook(h) if h == "db_write")
    }
}

/// A request from lightningd on its way to (or held for) a plugin.
#[derive(Debug, Clone)]
pub struct Request {
    /// lightningd's id, echoed byte for byte.
    pub id: RawId,
    /// The method, for error messages.
    pub method: String,
    /// lightningd's bytes, forwarded unchanged.
    pub raw: Bytes,
    /// Rpc or hook.
    pub kind: ReqKind,
    /// For a hook several plugins registered: those still to be asked,
    /// in order, if this one answers `continue`.
    pub chain: Vec<PluginId>,
    /// How many generations crashed while it was in flight: a hook that
    /// kills every generation it reaches is not handed on for ever.
    pub crashes: u8,
}

/// A request a plugin generation has been sent and not answered yet.
#[derive(Debug)]
pub struct InFlight {
    /// Which plugin.
    pub plugin: PluginId,
    /// Which generation of it.
    pub generation: u64,
    /// The request, to re-send (hooks) or answer (rpc) if the generation
    /// ends first.
    pub request: Request,
    seq: u64,
}

/// Where a request from lightningd goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// To a managed plugin.
    Plugin(PluginId),
    /// Nobody registered it.
    Unknown,
}

/// The routing tables and the requests in flight.
#[derive(Debug, Default)]
pub struct Router {
    methods: HashMap<String, PluginId>,
    hooks: HashMap<String, Vec<PluginId>>,
    options: HashMap<String, PluginId>,
    in_flight: HashMap<RawId, InFlight>,
    per_plugin: HashMap<PluginId, usize>,
    seq: u64,
}

impl Router {
    /// Tables for the manifests lightningd registered, by plugin index.
    /// With several plugins, the first to register a name owns it.
    pub fn new(registered: &[Option<&Manifest>]) -> Router {
        let mut r = Router::default();
        for (i, m) in registered.iter().enumerate() {
            let Some(m) = m else { continue };
            for name in m.methods.keys() {
                r.methods.entry(name.clone()).or_insert(i);
            }
            for name in m.hooks.keys() {
                r.hooks.entry(name.clone()).or_default().push(i);
            }
            for o in &m.options {
                r.options.entry(o.name.clone()).or_insert(i);
            }
        }
        r
    }

    /// The owner of an rpc method.
    pub fn method(&self, name: &str) -> Route {
        self.methods
            .get(name)
            .map_or(Route::Unknown, |&p| Route::Plugin(p))
    }

    /// The plugins that registered a hook, in the order given: lightningd
    /// calls them as a chain.
    pub fn hook(&self, name: &str) -> &[PluginId] {
        self.hooks.get(name).map_or(&[], Vec::as_slice)
    }

    /// The owner of an option.
    pub fn option(&self, name: &str) -> Option<PluginId> {
        self.options.get(name).copied()
    }

    /// Records a request sent to a generation.
    pub fn sent(&mut self, plugin: PluginId, generation: u64, request: Request) {
        self.seq += 1;
        let old = self.in_flight.insert(
            request.id.clone(),
            InFlight {
                plugin,
                generation,
                request,
                seq: self.seq,
            },
        );
        // lightningd never reuses an id while it waits; if it did, the
        // older request is replaced, not counted twice.
        if let Some(old) = old {
            self.forget(old.plugin);
        }
        *self.per_plugin.entry(plugin).or_default() += 1;
    }

    /// Takes the request a response answers, if that generation was
    /// waiting for it. A response from anyone else is not taken.
    pub fn answered(&mut self, plugin: PluginId, generation: u64, id: &RawId) -> Option<InFlight> {
        match self.in_flight.get(id) {
            Some(f) if f.plugin == plugin && f.generation == generation => {
                self.forget(plugin);
                self.in_flight.remove(id)
            }
            _ => None,
        }
    }

    fn forget(&mut self, plugin: PluginId) {
        if let Some(n) = self.per_plugin.get_mut(&plugin) {
            *n = n.saturating_sub(1);
        }
    }

    /// Takes every request a generation never answered, oldest first.
    pub fn orphaned(&mut self, plugin: PluginId, generation: u64) -> Vec<InFlight> {
        let ids: Vec<RawId> = self
            .in_flight
            .iter()
            .filter(|(_, f)| f.plugin == plugin && f.generation == generation)
            .map(|(id, _)| id.clone())
            .collect();
        let mut out: Vec<InFlight> = ids
            .iter()
            .filter_map(|id| self.in_flight.remove(id))
            .collect();
        for _ in &out {
            self.forget(plugin);
        }
        out.sort_by_key(|f| f.seq);
        out
    }

    /// How many requests one generation of a plugin has in flight.
    pub fn count_generation(&self, plugin: PluginId, generation: u64) -> usize {
        self.in_flight
            .values()
            .filter(|f| f.plugin == plugin && f.generation == generation)
            .count()
    }

    /// How many requests a plugin (any generation) has in flight.
    pub fn count(&self, plugin: PluginId) -> usize {
        self.per_plugin.get(&plugin).copied().unwrap_or(0)
    }
}
