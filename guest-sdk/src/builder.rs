//! [`Builder`]: declare what the plugin offers, then [`Builder::run`] it.

use std::io::{self, Read, Write};

use cln_protocol::{errors, handover, hooks};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};

use crate::options::ConfigOption;
use crate::plugin::{Current, Output};
use crate::state::{Keeper, RESTORE_STATE, SAVE_STATE};
use crate::stream::Texts;
use crate::{Plugin, RpcError};

type MethodFn<S> = Box<dyn FnMut(&mut Plugin<S>, Value) -> Result<Value, RpcError>>;
type HookFn<S> = Box<dyn FnMut(&mut Plugin<S>, Value) -> Value>;
type SubscriptionFn<S> = Box<dyn FnMut(&mut Plugin<S>, Value)>;
type InitFn<S> = Box<dyn FnMut(&mut Plugin<S>) -> Result<(), String>>;
type SetconfigFn<S> = Box<dyn FnMut(&mut Plugin<S>, &str, &Value) -> Result<(), String>>;

/// A hook registration with ordering and filters, for
/// [`Builder::hook_with`].
///
/// ```
/// use cln_autoreload_guest::Hook;
/// use serde_json::json;
///
/// let hook = Hook::new("rpc_command").filters(["getinfo"]).before(["other.py"]);
/// assert_eq!(
///     hook.to_json(),
///     json!({"name": "rpc_command", "before": ["other.py"], "filters": ["getinfo"]})
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hook {
    name: String,
    before: Vec<String>,
    after: Vec<String>,
    filters: Option<Vec<String>>,
}

impl Hook {
    /// The hook `name` (e.g. `"peer_connected"`), no ordering, no filters.
    pub fn new(name: impl Into<String>) -> Self {
        Hook {
            name: name.into(),
            before: Vec::new(),
            after: Vec::new(),
            filters: None,
        }
    }

    /// Run before these plugins (by file name) in the hook chain.
    pub fn before<I: IntoIterator<Item = T>, T: Into<String>>(mut self, plugins: I) -> Self {
        self.before.extend(plugins.into_iter().map(Into::into));
        self
    }

    /// Run after these plugins (by file name) in the hook chain.
    pub fn after<I: IntoIterator<Item = T>, T: Into<String>>(mut self, plugins: I) -> Self {
        self.after.extend(plugins.into_iter().map(Into::into));
        self
    }

    /// Only be called for these commands (`rpc_command`) or message types
    /// (`custommsg`). lightningd refuses `filters` on any other hook (and
    /// kills the plugin).
    pub fn filters<I: IntoIterator<Item = T>, T: Into<String>>(mut self, filters: I) -> Self {
        self.filters
            .get_or_insert_with(Vec::new)
            .extend(filters.into_iter().map(Into::into));
        self
    }

    /// The hook's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The hook as a manifest entry.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("name".into(), json!(self.name));
        if !self.before.is_empty() {
            m.insert("before".into(), json!(self.before));
        }
        if !self.after.is_empty() {
            m.insert("after".into(), json!(self.after));
        }
        if let Some(filters) = &self.filters {
            m.insert("filters".into(), json!(filters));
        }
        Value::Object(m)
    }
}

struct Method<S> {
    name: String,
    usage: String,
    description: String,
    handler: MethodFn<S>,
}

struct HookEntry<S> {
    hook: Hook,
    handler: HookFn<S>,
}

struct Subscription<S> {
    topic: String,
    handler: Option<SubscriptionFn<S>>,
}

/// Declares a plugin — options, rpc methods, hooks, subscriptions — and
/// runs it.
///
/// The handlers are plain closures. Each gets the [`Plugin`] (option
/// values, your state, logging, RPC) and the request's `params` exactly as
/// lightningd sent them: an object (`lightning-cli -k`, other plugins) or an
/// array (positional `lightning-cli` arguments); see [`param`](crate::param).
///
/// ```no_run
/// use cln_autoreload_guest::{options::ConfigOption, param, Builder, Hook, Level, Plugin, RpcError};
/// use serde_json::{json, Value};
///
/// fn main() {
///     Builder::new()
///         .option(ConfigOption::string("hello-greeting", "Hello", "What to say"))
///         .option(ConfigOption::int("hello-limit", 3, "A dynamic limit").dynamic())
///         .rpcmethod("hello", "[name]", "Say hello", |p: &mut Plugin, params: Value| {
///             let name = param(&params, "name", 0).and_then(Value::as_str).unwrap_or("world");
///             let greeting = p.option_str("hello-greeting").unwrap_or("Hello");
///             Ok(json!({"greeting": format!("{greeting}, {name}!")}))
///         })
///         .hook("peer_connected", |p, params| {
///             p.log(Level::Info, format!("peer {}", params["peer"]["id"]));
///             json!({"result": "continue"})
///         })
///         .hook_with(Hook::new("rpc_command").filters(["getinfo"]), |_p, _params| {
///             json!({"result": "continue"})
///         })
///         .subscribe("connect", |p, params| p.log(Level::Debug, params.to_string()))
///         .notification("hello_said")
///         .dynamic(true)
///         .on_init(|p| match p.option_i64("hello-limit") {
///             Some(n) if n < 0 => Err("hello-limit must not be negative".into()),
///             _ => Ok(()),
///         })
///         .on_setconfig(|_p, name, value| {
///             if name == "hello-limit" && value.as_i64() < Some(0) {
///                 return Err("must not be negative".into());
///             }
///             Ok(())
///         })
///         .run();
/// }
/// ```
pub struct Builder<S = ()> {
    state: S,
    options: Vec<ConfigOption>,
    methods: Vec<Method<S>>,
    hooks: Vec<HookEntry<S>>,
    subscriptions: Vec<Subscription<S>>,
    notifications: Vec<String>,
    dynamic: bool,
    on_init: Option<InitFn<S>>,
    on_setconfig: Option<SetconfigFn<S>>,
    keeper: Option<Keeper<S>>,
}

impl Builder<()> {
    /// A plugin without state of its own (`Plugin<()>`).
    pub fn new() -> Self {
        Builder::with_state(())
    }
}

impl Default for Builder<()> {
    fn default() -> Self {
        Builder::new()
    }
}

impl<S> Builder<S> {
    /// A plugin whose handlers share `state`, reachable as
    /// [`Plugin::state`] and [`Plugin::state_mut`].
    ///
    /// ```no_run
    /// use cln_autoreload_guest::Builder;
    /// use serde_json::json;
    ///
    /// #[derive(Default)]
    /// struct Seen { connects: u64 }
    ///
    /// Builder::with_state(Seen::default())
    ///     .subscribe("connect", |p, _params| p.state_mut().connects += 1)
    ///     .rpcmethod("seen", "", "Connections seen", |p, _params| {
    ///         Ok(json!({"connects": p.state().connects}))
    ///     })
    ///     .run();
    /// ```
    pub fn with_state(state: S) -> Self {
        Builder {
            state,
            options: Vec::new(),
            methods: Vec::new(),
            hooks: Vec::new(),
            subscriptions: Vec::new(),
            notifications: Vec::new(),
            dynamic: false,
            on_init: None,
            on_setconfig: None,
            keeper: None,
        }
    }

    /// Adds an option (see [`ConfigOption`]).
    pub fn option(mut self, option: ConfigOption) -> Self {
        self.options.push(option);
        self
    }

    /// Adds the rpc method `name`, shown by `lightning-cli help` with its
    /// `usage` (e.g. `"name [amount]"`) and `description`. The handler gets
    /// the request's params and answers a result, or an [`RpcError`] which
    /// reaches the caller unchanged.
    pub fn rpcmethod<F>(
        mut self,
        name: impl Into<String>,
        usage: impl Into<String>,
        description: impl Into<String>,
        handler: F,
    ) -> Self
    where
        F: FnMut(&mut Plugin<S>, Value) -> Result<Value, RpcError> + 'static,
    {
        self.methods.push(Method {
            name: name.into(),
            usage: usage.into(),
            description: description.into(),
            handler: Box::new(handler),
        });
        self
    }

    /// Registers for the hook `name`. The handler gets the hook's params and
    /// returns the hook's answer, usually `json!({"result": "continue"})`.
    /// There is deliberately no error answer: lightningd aborts on one.
    pub fn hook<F>(self, name: impl Into<String>, handler: F) -> Self
    where
        F: FnMut(&mut Plugin<S>, Value) -> Value + 'static,
    {
        self.hook_with(Hook::new(name), handler)
    }

    /// Registers for a hook with ordering (`before`/`after`) or `filters`.
    pub fn hook_with<F>(mut self, hook: Hook, handler: F) -> Self
    where
        F: FnMut(&mut Plugin<S>, Value) -> Value + 'static,
    {
        self.hooks.push(HookEntry {
            hook,
            handler: Box::new(handler),
        });
        self
    }

    /// Subscribes to the notification `topic` (`"connect"`,
    /// `"invoice_payment"`, another plugin's custom notification, ...). The
    /// handler gets its params (for a custom notification, the `params` the
    /// sender gave).
    ///
    /// `shutdown` is always subscribed to: on it, after calling your
    /// handler if you subscribed one, [`Builder::run`] returns.
    pub fn subscribe<F>(mut self, topic: impl Into<String>, handler: F) -> Self
    where
        F: FnMut(&mut Plugin<S>, Value) + 'static,
    {
        self.subscriptions.push(Subscription {
            topic: topic.into(),
            handler: Some(Box::new(handler)),
        });
        self
    }

    /// Declares a custom notification this plugin may send with
    /// [`Plugin::notify`]. lightningd refuses undeclared ones.
    pub fn notification(mut self, method: impl Into<String>) -> Self {
        self.notifications.push(method.into());
        self
    }

    /// Whether the plugin may be stopped and started while lightningd runs
    /// (`plugin stop`/`plugin start`). Default `false`.
    pub fn dynamic(mut self, dynamic: bool) -> Self {
        self.dynamic = dynamic;
        self
    }

    /// Called on `init`, once the option values and the configuration are
    /// known. `Err(reason)` disables the plugin (`init` answers
    /// `{"disable": reason}` and lightningd stops it cleanly).
    pub fn on_init<F>(mut self, handler: F) -> Self
    where
        F: FnMut(&mut Plugin<S>) -> Result<(), String> + 'static,
    {
        self.on_init = Some(Box::new(handler));
        self
    }

    /// Called on `setconfig` for a dynamic option, with its name and its new
    /// value converted to the option's type (lightningd sends it as a
    /// string). [`Plugin::option`] still has the old value; `Ok` makes the
    /// new one current, `Err(reason)` refuses it (the user sees the error).
    /// Without a handler every well-typed value is accepted.
    pub fn on_setconfig<F>(mut self, handler: F) -> Self
    where
        F: FnMut(&mut Plugin<S>, &str, &Value) -> Result<(), String> + 'static,
    {
        self.on_setconfig = Some(Box::new(handler));
        self
    }

    /// Whether the state is handed from version to version across a
    /// reload ([`Builder::keep_state`]).
    fn keeps_state(&self) -> bool {
        self.keeper.is_some()
    }

    /// The `getmanifest` answer this builder produces.
    ///
    /// ```
    /// use cln_autoreload_guest::Builder;
    /// use serde_json::json;
    ///
    /// let manifest = Builder::new()
    ///     .rpcmethod("hi", "", "Says hi", |_p, _params| Ok(json!("hi")))
    ///     .manifest();
    /// assert_eq!(manifest["rpcmethods"][0]["name"], "hi");
    /// assert_eq!(manifest["subscriptions"], json!(["shutdown"]));
    /// assert_eq!(manifest["nonnumericids"], true);
    /// ```
    pub fn manifest(&self) -> Value {
        let mut subscriptions: Vec<&str> = Vec::new();
        for topic in self
            .subscriptions
            .iter()
            .map(|s| s.topic.as_str())
            .chain(["shutdown"])
        {
            if !subscriptions.contains(&topic) {
                subscriptions.push(topic);
            }
        }
        // The host's state requests are answered by the SDK, not offered to
        // lightningd (whose users could otherwise call them).
        let methods = self
            .methods
            .iter()
            .filter(|m| !(self.keeps_state() && is_state_request(&m.name)));
        let mut manifest = json!({
            "options": self.options.iter().map(ConfigOption::to_json).collect::<Vec<_>>(),
            "rpcmethods": methods.map(|m| json!({
                "name": m.name,
                "usage": m.usage,
                "description": m.description,
            })).collect::<Vec<_>>(),
            "hooks": self.hooks.iter().map(|h| h.hook.to_json()).collect::<Vec<_>>(),
            "subscriptions": subscriptions,
            "notifications": self.notifications.iter().map(|n| json!({"method": n})).collect::<Vec<_>>(),
            "dynamic": self.dynamic,
            "nonnumericids": true,
        });
        if self.keeps_state() {
            // Read (and removed) by cln-autoreload; lightningd ignores
            // fields it does not know, so a plain `--plugin=` is fine too.
            manifest[handover::MANIFEST_FIELD] = json!({"state": true});
        }
        manifest
    }

    /// Runs the plugin on stdin/stdout until stdin ends or lightningd sends
    /// `shutdown`, then returns (so `main` returns and the process exits 0).
    ///
    /// If stdin is not a JSON stream, or stdout is gone, it says so on
    /// stderr and exits with status 1. A handler that panics ends the
    /// process (in WebAssembly the instance traps): cln-autoreload restarts
    /// it.
    pub fn run(self) {
        if let Err(e) = self.run_on(io::stdin().lock(), io::stdout()) {
            stderr(format_args!("{e}"));
            std::process::exit(1);
        }
    }

    /// Runs the plugin reading lightningd's messages from `input` and writing
    /// its own to `output`, which it gives back at the end; what
    /// [`Builder::run`] does on stdin and stdout. Handy to test a plugin
    /// without lightningd. Returns at the end of `input` or on `shutdown`;
    /// fails if `input` is not a JSON stream or writing to `output` fails.
    ///
    /// ```
    /// use cln_autoreload_guest::Builder;
    /// use serde_json::json;
    ///
    /// let input = br#"{"jsonrpc":"2.0","id":"a","method":"hi","params":[]}"#;
    /// let output = Builder::new()
    ///     .rpcmethod("hi", "", "Says hi", |_p, _params| Ok(json!("hi")))
    ///     .run_on(&input[..], Vec::new())
    ///     .unwrap();
    /// assert_eq!(output, b"{\"jsonrpc\":\"2.0\",\"id\":\"a\",\"result\":\"hi\"}\n\n");
    /// ```
    pub fn run_on<W: Write + 'static>(self, input: impl Read, output: W) -> io::Result<W> {
        let manifest = self.manifest();
        let Builder {
            state,
            options,
            mut methods,
            mut hooks,
            mut subscriptions,
            notifications: _,
            dynamic: _,
            mut on_init,
            mut on_setconfig,
            mut keeper,
        } = self;
        subscriptions.push(Subscription {
            topic: "shutdown".into(),
            handler: None,
        });
        let mut plugin = Plugin::new(state, options, Output::new(Box::new(output)));

        // At its end (even in the middle of a message), lightningd is gone.
        let mut texts = Texts::new(input);
        while let Some(text) = texts.next_text()? {
            // (Checked first: serde would also take an array for a struct.)
            if text.first() != Some(&b'{') {
                stderr(format_args!("ignoring a message that is not a JSON object"));
                continue;
            }
            let message: Incoming = match serde_json::from_slice(text) {
                Ok(message) => message,
                // Not JSON: the stream is not a JSON stream.
                Err(e) if e.classify() != serde_json::error::Category::Data => return Err(e.into()),
                Err(e) => {
                    stderr(format_args!(
                        "ignoring a message that is not a JSON object: {e}"
                    ));
                    continue;
                }
            };
            let method = message.method.as_ref().and_then(Value::as_str);
            let params = message.params.unwrap_or(Value::Null);

            let Some(raw_id) = message.id else {
                // A notification.
                let Some(method) = method else { continue };
                for sub in subscriptions.iter_mut().filter(|s| s.topic == method) {
                    if let Some(handler) = &mut sub.handler {
                        handler(&mut plugin, params.clone());
                    }
                }
                if method == "shutdown" {
                    return plugin.out.finish();
                }
                if let Some(e) = plugin.out.failed.take() {
                    return Err(e);
                }
                continue;
            };

            let id = serde_json::from_str(raw_id.get()).unwrap_or(Value::Null);
            plugin.current = Some(Current { raw_id, id });
            let answer = match method {
                None => Err(RpcError::new(
                    errors::INVALID_REQUEST,
                    "Invalid request: no method",
                )),
                Some("getmanifest") => Ok(manifest.clone()),
                Some("init") => Ok(init(&mut plugin, params, on_init.as_mut())),
                Some("setconfig") => setconfig(&mut plugin, params, on_setconfig.as_mut()),
                // The host's state requests, only for a plugin that keeps
                // state: for any other they are unknown methods, as the
                // protocol expects (it sends them only to plugins that
                // declared state).
                Some(method) => match (&mut keeper, method) {
                    (Some(keeper), SAVE_STATE) => keeper.save(&plugin),
                    (Some(keeper), RESTORE_STATE) => keeper.restore(&mut plugin, params),
                    _ => {
                        if let Some(m) = methods.iter_mut().find(|m| m.name == method) {
                            (m.handler)(&mut plugin, params)
                        } else if let Some(h) = hooks.iter_mut().find(|h| h.hook.name == method) {
                            Ok((h.handler)(&mut plugin, params))
                        } else if hooks::is_known(method) {
                            // A hook lightningd knows but nothing here handles:
                            // an error answer to a hook would make lightningd
                            // abort, so let the call go on.
                            Ok(json!({"result": "continue"}))
                        } else {
                            Err(RpcError::new(
                                RpcError::METHOD_NOT_FOUND,
                                format!("Unknown method {method}"),
                            ))
                        }
                    }
                },
            };
            if let Some(current) = plugin.current.take() {
                let (result, error) = match &answer {
                    Ok(result) => (Some(result), None),
                    Err(error) => (None, Some(error)),
                };
                plugin.out.send(&Response {
                    jsonrpc: "2.0",
                    id: &current.raw_id,
                    result,
                    error,
                });
            }
            if let Some(e) = plugin.out.failed.take() {
                return Err(e);
            }
        }
        plugin.out.finish()
    }
}

/// State that survives a reload: see the crate docs' "State that survives
/// a reload". These need the state to be serde; the rest of the builder
/// does not.
impl<S: Serialize + DeserializeOwned> Builder<S> {
    /// Hands the state ([`Plugin::state`]) over to the next version when
    /// cln-autoreload reloads the plugin: the old version's state is
    /// serialized with serde and the new version starts from it, with
    /// schema 1 unless [`Builder::state_schema`] says otherwise.
    ///
    /// The manifest then carries `"autoreload": {"state": true}` and the SDK
    /// answers the host's `autoreload-save-state` and
    /// `autoreload-restore-state` requests (neither is an rpc method
    /// lightningd sees). The handed-over state replaces the whole state
    /// after `init` ([`Builder::on_init`]) and before any other call; when
    /// it cannot be used, the plugin keeps the state it started with (from
    /// [`Builder::with_state`], as `on_init` left it) and logs why at
    /// [`Level::Warn`](crate::Level::Warn). Without cln-autoreload (a plain
    /// `--plugin=`), or after a crash, the plugin simply starts fresh.
    ///
    /// ```
    /// use cln_autoreload_guest::Builder;
    /// use serde_json::json;
    ///
    /// let manifest = Builder::with_state(0u64).keep_state().manifest();
    /// assert_eq!(manifest["autoreload"], json!({"state": true}));
    /// ```
    pub fn keep_state(mut self) -> Self {
        if self.keeper.is_none() {
            self.keeper = Some(Keeper::new());
        }
        self
    }

    /// The state's schema number (default 1), saved along with it. Raise it
    /// when the state type changes in a way the old data does not
    /// deserialize into (or deserializes into with the wrong meaning): a
    /// handed-over state with another schema is given to
    /// [`Builder::migrate_state`], or dropped with a warning. Implies
    /// [`Builder::keep_state`].
    pub fn state_schema(mut self, schema: u64) -> Self {
        self = self.keep_state();
        if let Some(keeper) = &mut self.keeper {
            keeper.schema = schema;
        }
        self
    }

    /// Converts a handed-over state this version cannot use as is: one with
    /// another schema number, or one whose data does not deserialize into
    /// `S`. The conversion gets the old schema number and the old data (the
    /// state as JSON) and returns the new state, or `None` to start fresh
    /// (with a warning in the log). Implies [`Builder::keep_state`].
    ///
    /// ```no_run
    /// use cln_autoreload_guest::Builder;
    /// use serde::{Deserialize, Serialize};
    /// use serde_json::{json, Value};
    ///
    /// // Schema 1 was a bare counter; schema 2 counts per name.
    /// #[derive(Default, Serialize, Deserialize)]
    /// struct Calls { total: u64, by_name: std::collections::BTreeMap<String, u64> }
    ///
    /// Builder::with_state(Calls::default())
    ///     .state_schema(2)
    ///     .migrate_state(|schema, data: Value| match schema {
    ///         1 => Some(Calls { total: data.as_u64()?, ..Calls::default() }),
    ///         _ => None,
    ///     })
    ///     .rpcmethod("calls", "", "How many calls", |p, _params| Ok(json!(p.state().total)))
    ///     .run();
    /// ```
    pub fn migrate_state<F>(mut self, migrate: F) -> Self
    where
        F: FnMut(u64, Value) -> Option<S> + 'static,
    {
        self = self.keep_state();
        if let Some(keeper) = &mut self.keeper {
            keeper.migrate = Some(Box::new(migrate));
        }
        self
    }
}

/// One of the host's requests the SDK answers for a plugin that keeps state.
fn is_state_request(method: &str) -> bool {
    method == SAVE_STATE || method == RESTORE_STATE
}

/// A line on stderr (which lightningd passes through to its own). Unlike
/// `eprintln!`, never panics when stderr is gone.
fn stderr(message: std::fmt::Arguments<'_>) {
    let _ = writeln!(io::stderr(), "plugin: {message}");
}

/// `init`: keep the options and configuration, ask the handler.
fn init<S>(plugin: &mut Plugin<S>, params: Value, on_init: Option<&mut InitFn<S>>) -> Value {
    let mut params = match params {
        Value::Object(params) => params,
        _ => Map::new(),
    };
    if let Some(Value::Object(options)) = params.remove("options") {
        plugin.options = options;
    }
    if let Some(configuration) = params.remove("configuration") {
        plugin.configuration = configuration;
    }
    match on_init.map(|handler| handler(plugin)) {
        Some(Err(reason)) => json!({"disable": reason}),
        _ => json!({}),
    }
}

/// `setconfig {config, val}`: convert, ask the handler, keep.
fn setconfig<S>(
    plugin: &mut Plugin<S>,
    params: Value,
    on_setconfig: Option<&mut SetconfigFn<S>>,
) -> Result<Value, RpcError> {
    let name = crate::param(&params, "config", 0)
        .and_then(Value::as_str)
        .ok_or_else(|| RpcError::invalid_params("setconfig: config must be a string"))?;
    let decl = plugin
        .decls
        .iter()
        .find(|d| d.name() == name)
        .ok_or_else(|| {
            RpcError::invalid_params(format!("setconfig: {name} is not an option of this plugin"))
        })?;
    let value = decl
        .parse_setconfig(crate::param(&params, "val", 1))
        .map_err(RpcError::invalid_params)?;
    if let Some(handler) = on_setconfig {
        handler(plugin, name, &value).map_err(RpcError::invalid_params)?;
    }
    plugin.options.insert(name.to_owned(), value);
    Ok(json!({}))
}

/// A message from lightningd, any shape. The id is kept raw, to be echoed
/// byte for byte.
#[derive(Deserialize)]
struct Incoming {
    #[serde(default, deserialize_with = "present")]
    id: Option<Box<RawValue>>,
    #[serde(default)]
    method: Option<Value>,
    #[serde(default)]
    params: Option<Value>,
}

/// `"id": null` is still an id (only a missing one makes a notification).
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Box<RawValue>>, D::Error> {
    Box::<RawValue>::deserialize(d).map(Some)
}

#[derive(Serialize)]
struct Response<'a> {
    jsonrpc: &'static str,
    id: &'a RawValue,
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a RpcError>,
}
