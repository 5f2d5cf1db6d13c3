//! Who answers what: which managed plugin a request from lightningd goes
//! to, in what order, and what is answered on the plugins' behalf; and
//! which requests are in flight where.
//!
//! Owns: the routing tables (built from the manifests registered with
//! lightningd), [`Router::route`], the one decision for every request that
//! is not the host's own, and the table of requests in flight (id →
//! plugin, generation, kind). Must not: send anything or touch plugin
//! state; the supervisor acts on what it answers.

use crate::framing::RawId;
pub use crate::ids::{Gen, PluginId};
use crate::jsonrpc::ErrorKind;
use crate::manifest::{self, Manifest};
use crate::HashMap;
use bytes::Bytes;
use serde_json::{json, Value};

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
    pub generation: Gen,
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

/// What to do with a request from lightningd that is not the host's own
/// (getmanifest, init and the `autoreload-*` methods are the
/// supervisor's).
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// An rpc call (or `check` of one) for this plugin.
    Call(PluginId),
    /// `setconfig` of this plugin's option: the cached init takes the new
    /// value (a later generation starts with it), then the plugin gets
    /// the call.
    SetConfig {
        /// The plugin that owns the option.
        owner: PluginId,
        /// The option.
        name: String,
        /// Its new value, if given.
        val: Option<Value>,
    },
    /// A hook: these plugins, in order, each until one answers other than
    /// `continue`; none left means lightningd is told to continue.
    Hook(Vec<PluginId>),
    /// Answered on the plugins' behalf with this result.
    Answer(Value),
    /// Answered on the plugins' behalf with this error.
    Refuse(ErrorKind, String),
}

/// What the router needs to know of a plugin now: the manifest of the
/// version serving (hooks it still wants, methods it still has) and its
/// name (for messages).
pub trait Plugins {
    /// The manifest of its current version (or the registered one).
    fn current(&self, p: PluginId) -> Option<&Manifest>;
    /// Its name.
    fn name(&self, p: PluginId) -> &str;
    /// How many plugins there are.
    fn count(&self) -> usize;
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
            let i = PluginId(i);
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

    /// Decides what happens to a request from lightningd: `params` parses
    /// its params, only for the few requests that need them (a full parse
    /// of every call would cost every call).
    pub fn route(
        &self,
        method: &str,
        params: impl FnOnce() -> Option<Value>,
        plugins: &impl Plugins,
    ) -> Decision {
        match method {
            "check" => {
                let cmd = params().and_then(|p| match p {
                    Value::Array(a) => a.first().and_then(Value::as_str).map(str::to_owned),
                    Value::Object(o) => o
                        .get("command_to_check")
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                    _ => None,
                });
                match cmd.as_deref().map(|c| (c, self.method(c))) {
                    Some((_, Route::Plugin(p))) => Decision::Call(p),
                    // The host's own methods are registered by the host.
                    Some((c, Route::Unknown)) if c.starts_with(manifest::HOST_PREFIX) => {
                        Decision::Answer(json!({"command_to_check": c}))
                    }
                    _ => {
                        Decision::Refuse(ErrorKind::UnknownMethod, "check: unknown command".into())
                    }
                }
            }
            "setconfig" => {
                let p = params();
                let name = p
                    .as_ref()
                    .and_then(|p| p.get("config"))
                    .and_then(Value::as_str);
                match name.and_then(|n| Some((n, self.option(n)?))) {
                    Some((name, owner)) => Decision::SetConfig {
                        owner,
                        name: name.to_owned(),
                        val: p.as_ref().and_then(|p| p.get("val")).cloned(),
                    },
                    None => Decision::Refuse(
                        ErrorKind::InvalidParams,
                        "setconfig: not an option of a managed plugin".into(),
                    ),
                }
            }
            _ => {
                let owners = self.hook(method);
                if !owners.is_empty() {
                    // Only a hook that takes filters needs its params.
                    let filtered = cln_protocol::hooks::find(method)
                        .is_some_and(|h| h.filter != cln_protocol::Filter::None);
                    let hook_params = if filtered { params() } else { None };
                    let must = ReqKind::Hook(method.to_owned()).must_reach_plugin();
                    // The plugins whose current version still has the hook
                    // and wants this call, in the order given.
                    return Decision::Hook(
                        owners
                            .iter()
                            .copied()
                            .filter(|&p| {
                                must || plugins.current(p).is_some_and(|m| {
                                    manifest::hook_wants(m, method, hook_params.as_ref())
                                })
                            })
                            .collect(),
                    );
                }
                match self.method(method) {
                    Route::Plugin(p)
                        if plugins
                            .current(p)
                            .is_some_and(|m| m.methods.contains_key(method)) =>
                    {
                        Decision::Call(p)
                    }
                    Route::Plugin(p) => Decision::Refuse(
                        ErrorKind::RemovedMethod,
                        format!(
                            "{method} was removed by the new version of {}; lightningd keeps it registered until it re-registers the plugin: call autoreload-reregister (or restart lightningd)",
                            plugins.name(p)
                        ),
                    ),
                    Route::Unknown => Decision::Refuse(
                        ErrorKind::UnknownMethod,
                        format!("cln-autoreload: no managed plugin has a method '{method}'"),
                    ),
                }
            }
        }
    }

    /// The plugins a notification from lightningd goes to: those whose
    /// current version subscribes to its topic (or to all, `*`), in order.
    pub fn subscribers(&self, topic: &str, plugins: &impl Plugins) -> Vec<PluginId> {
        (0..plugins.count())
            .map(PluginId)
            .filter(|&p| plugins.current(p).is_some_and(|m| m.subscribes(topic)))
            .collect()
    }

    /// Records a request sent to a generation.
    pub fn sent(&mut self, plugin: PluginId, generation: Gen, request: Request) {
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
    pub fn answered(&mut self, plugin: PluginId, generation: Gen, id: &RawId) -> Option<InFlight> {
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
    pub fn orphaned(&mut self, plugin: PluginId, generation: Gen) -> Vec<InFlight> {
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
    pub fn count_generation(&self, plugin: PluginId, generation: Gen) -> usize {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Two plugins as lightningd registered them, and their current
    /// versions.
    struct Two {
        current: Vec<Manifest>,
    }

    impl Plugins for Two {
        fn current(&self, p: PluginId) -> Option<&Manifest> {
            self.current.get(p.0)
        }
        fn name(&self, p: PluginId) -> &str {
            ["a.py", "b.wasm"][p.0]
        }
        fn count(&self) -> usize {
            self.current.len()
        }
    }

    fn manifest(v: Value) -> Manifest {
        Manifest::from_result(&v).expect("a manifest").0
    }

    fn a() -> Manifest {
        manifest(json!({
            "options": [{"name": "a-opt", "type": "string", "default": "x", "description": "d"}],
            "rpcmethods": [{"name": "a-hello", "usage": "", "description": "d"}, {"name": "a-old", "usage": "", "description": "d"}],
            "hooks": [{"name": "peer_connected"}, {"name": "rpc_command", "filters": ["pay"]}, {"name": "db_write"}],
            "dynamic": true
        }))
    }

    fn b() -> Manifest {
        manifest(json!({
            "rpcmethods": [{"name": "b-hello", "usage": "", "description": "d"}],
            "hooks": [{"name": "peer_connected"}, {"name": "rpc_command"}],
            "dynamic": true
        }))
    }

    fn router() -> (Router, Two) {
        let (a, b) = (a(), b());
        let r = Router::new(&[Some(&a), Some(&b)]);
        (
            r,
            Two {
                current: vec![a, b],
            },
        )
    }

    #[test]
    fn each_request_goes_where_its_name_says() {
        let (r, plugins) = router();
        let none = || None;
        let cases: Vec<(&str, Option<Value>, Decision)> = vec![
            ("a-hello", None, Decision::Call(PluginId(0))),
            ("b-hello", None, Decision::Call(PluginId(1))),
            (
                "nobody",
                None,
                Decision::Refuse(
                    ErrorKind::UnknownMethod,
                    "cln-autoreload: no managed plugin has a method 'nobody'".into(),
                ),
            ),
            // Hooks chain in the order the plugins were given.
            (
                "peer_connected",
                None,
                Decision::Hook(vec![PluginId(0), PluginId(1)]),
            ),
            // rpc_command's filters: a only wants pay.
            (
                "rpc_command",
                Some(json!({"rpc_command": {"method": "pay"}})),
                Decision::Hook(vec![PluginId(0), PluginId(1)]),
            ),
            (
                "rpc_command",
                Some(json!({"rpc_command": {"method": "getinfo"}})),
                Decision::Hook(vec![PluginId(1)]),
            ),
            ("db_write", None, Decision::Hook(vec![PluginId(0)])),
            // check asks the owner; the host's own are answered here.
            (
                "check",
                Some(json!({"command_to_check": "b-hello"})),
                Decision::Call(PluginId(1)),
            ),
            (
                "check",
                Some(json!(["autoreload-status"])),
                Decision::Answer(json!({"command_to_check": "autoreload-status"})),
            ),
            (
                "check",
                Some(json!(["nobody"])),
                Decision::Refuse(ErrorKind::UnknownMethod, "check: unknown command".into()),
            ),
            (
                "setconfig",
                Some(json!({"config": "a-opt", "val": "y"})),
                Decision::SetConfig {
                    owner: PluginId(0),
                    name: "a-opt".into(),
                    val: Some(json!("y")),
                },
            ),
            (
                "setconfig",
                Some(json!({"config": "log-level", "val": "debug"})),
                Decision::Refuse(
                    ErrorKind::InvalidParams,
                    "setconfig: not an option of a managed plugin".into(),
                ),
            ),
        ];
        for (method, params, want) in cases {
            let got = match params {
                Some(p) => r.route(method, || Some(p.clone()), &plugins),
                None => r.route(method, none, &plugins),
            };
            assert_eq!(got, want, "{method}");
        }
    }

    #[test]
    fn a_new_version_without_a_method_or_hook_is_not_sent_it() {
        let (r, mut plugins) = router();
        // a's new version dropped a-old and peer_connected.
        plugins.current[0] = manifest(json!({
            "rpcmethods": [{"name": "a-hello", "usage": "", "description": "d"}],
            "hooks": [{"name": "db_write"}],
            "dynamic": true
        }));
        match r.route("a-old", || None, &plugins) {
            Decision::Refuse(ErrorKind::RemovedMethod, msg) => {
                assert!(
                    msg.contains("a.py") && msg.contains("autoreload-reregister"),
                    "{msg}"
                )
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            r.route("peer_connected", || None, &plugins),
            Decision::Hook(vec![PluginId(1)])
        );
        // db_write goes to its owner whatever its version says: it must
        // never be answered on the plugin's behalf.
        plugins.current[0] = manifest(json!({"dynamic": true}));
        assert_eq!(
            r.route("db_write", || None, &plugins),
            Decision::Hook(vec![PluginId(0)])
        );
    }

    #[test]
    fn notifications_go_to_the_subscribers_of_their_current_version() {
        let (r, mut plugins) = router();
        plugins.current[0] = manifest(json!({"subscriptions": ["connect"], "dynamic": true}));
        plugins.current[1] = manifest(json!({"subscriptions": ["*"], "dynamic": true}));
        assert_eq!(
            r.subscribers("connect", &plugins),
            vec![PluginId(0), PluginId(1)]
        );
        assert_eq!(r.subscribers("disconnect", &plugins), vec![PluginId(1)]);
    }

    #[test]
    fn params_are_parsed_only_for_the_requests_that_need_them() {
        let (r, plugins) = router();
        for method in ["a-hello", "peer_connected", "db_write", "nobody"] {
            r.route(method, || panic!("{method} parsed its params"), &plugins);
        }
    }

    #[test]
    fn in_flight_requests_are_settled_per_generation() {
        let mut r = Router::default();
        let req = |id: &str| Request {
            id: RawId::from_string(id),
            method: "m".into(),
            raw: Bytes::new(),
            kind: ReqKind::Rpc,
            chain: vec![],
            crashes: 0,
        };
        let p = PluginId(0);
        r.sent(p, Gen(1), req("x"));
        r.sent(p, Gen(2), req("y"));
        r.sent(p, Gen(1), req("z"));
        assert_eq!((r.count(p), r.count_generation(p, Gen(1))), (3, 2));
        // An answer from the wrong generation is not taken.
        assert!(r.answered(p, Gen(2), &RawId::from_string("x")).is_none());
        assert!(r.answered(p, Gen(1), &RawId::from_string("x")).is_some());
        let orphans: Vec<String> = r
            .orphaned(p, Gen(1))
            .into_iter()
            .map(|f| f.request.id.to_string())
            .collect();
        assert_eq!(orphans, vec!["\"z\""]);
        assert_eq!(r.count(p), 1);
    }
}
