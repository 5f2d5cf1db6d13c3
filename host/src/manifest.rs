//! Plugin manifests: reading a plugin's `getmanifest` answer, making it safe
//! to hand to lightningd, merging it with the host's own options and
//! methods, and describing what changed between two versions.
//!
//! Owns: every rule about manifest contents. Must not: talk to processes or
//! lightningd; it works on values only.

use crate::handover;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::fmt;

/// Prefix of every option and method that belongs to the host itself.
pub const HOST_PREFIX: &str = "autoreload-";

// The hooks lightningd knows, which of them take filters, the option types
// and the topics only lightningd may send are facts the guest SDK and the
// lightningd stand-in need too: they live in cln_protocol, with the line of
// lightningd's source each comes from.
use cln_protocol::{hooks, notifications, Filter, OptionType};

/// lightningd v26.06's own rpc commands (not its built-in plugins'): a
/// plugin declaring one gets killed, so the host would be.
const BUILTIN_METHODS: &[&str] = &[
    "help",
    "stop",
    "getinfo",
    "check",
    "plugin",
    "getlog",
    "setconfig",
    "listconfigs",
    "notifications",
    "batching",
    "deprecations",
    "listpeers",
    "listpeerchannels",
    "listfunds",
    "connect",
    "disconnect",
    "ping",
    "invoice",
    "listinvoices",
    "delinvoice",
    "waitinvoice",
    "waitanyinvoice",
    "createinvoice",
    "sendpay",
    "waitsendpay",
    "sendonion",
    "createonion",
    "listsendpays",
    "delpay",
    "listforwards",
    "delforward",
    "listhtlcs",
    "newaddr",
    "listaddresses",
    "fundpsbt",
    "utxopsbt",
    "reserveinputs",
    "unreserveinputs",
    "signpsbt",
    "sendpsbt",
    "setpsbtversion",
    "listtransactions",
    "fundchannel_start",
    "fundchannel_complete",
    "fundchannel_cancel",
    "close",
    "setchannel",
    "listclosedchannels",
    "openchannel_init",
    "openchannel_update",
    "openchannel_signed",
    "openchannel_abort",
    "openchannel_bump",
    "datastore",
    "deldatastore",
    "listdatastore",
    "datastoreusage",
    "signmessage",
    "checkmessage",
    "createrune",
    "showrunes",
    "blacklistrune",
    "checkrune",
    "wait",
    "waitblockheight",
    "feerates",
    "parsefeerate",
    "makesecret",
    "sendcustommsg",
    "staticbackup",
    "getemergencyrecoverdata",
    "upgradewallet",
    "splice_init",
    "splice_update",
    "splice_signed",
    "addgossip",
];

/// lightningd v26.06's own options: a plugin declaring one is killed, and
/// at start-up lightningd exits.
const BUILTIN_OPTIONS: &[&str] = &[
    "conf",
    "lightning-dir",
    "network",
    "mainnet",
    "testnet",
    "testnet4",
    "signet",
    "regtest",
    "allow-deprecated-apis",
    "help",
    "version",
    "developer",
    "rpc-file",
    "rpc-file-mode",
    "log-level",
    "log-prefix",
    "log-file",
    "log-timestamps",
    "alias",
    "rgb",
    "addr",
    "bind-addr",
    "announce-addr",
    "offline",
    "autolisten",
    "proxy",
    "always-use-proxy",
    "tor-service-password",
    "daemon",
    "pid-file",
    "plugin",
    "plugin-dir",
    "clear-plugins",
    "disable-plugin",
    "important-plugin",
    "database-upgrade",
    "wallet",
    "fee-base",
    "fee-per-satoshi",
    "min-capacity-sat",
    "ignore-fee-limits",
    "cltv-delta",
    "cltv-final",
    "htlc-minimum-msat",
    "htlc-maximum-msat",
    "max-concurrent-htlcs",
    "max-dust-htlc-exposure-msat",
    "watchtime-blocks",
    "funding-confirms",
    "max-locktime-blocks",
    "commit-time",
    "large-channels",
    "encrypted-hsm",
    "subdaemon",
    "force-feerates",
    "experimental-offers",
    "experimental-dual-fund",
    "experimental-splicing",
    "experimental-peer-storage",
    "require-confirmed-inputs",
];

/// Why lightningd would refuse an option declaration, if it would.
fn bad_option(name: &str, ty: &str, o: &Value) -> Option<String> {
    if BUILTIN_OPTIONS.contains(&name) {
        return Some("lightningd has an option of that name".into());
    }
    if name.contains('|') {
        return Some("lightningd does not allow '|' in option names".into());
    }
    for k in ["multi", "dynamic", "deprecated"] {
        if o.get(k).is_some_and(|v| !v.is_boolean()) {
            return Some(format!("\"{k}\" must be true or false"));
        }
    }
    if o.get("multi") == Some(&Value::Bool(true)) && matches!(ty, "bool" | "flag") {
        return Some(format!("a {ty} option cannot be multi"));
    }
    let default = o.get("default").filter(|d| !d.is_null() && ty != "flag")?;
    let text = default
        .as_str()
        .map_or_else(|| default.to_string(), str::to_owned);
    let fits = match ty {
        "int" => text.parse::<i64>().is_ok(),
        "bool" => matches!(text.as_str(), "true" | "false"),
        _ => true,
    };
    (!fits).then(|| format!("its default {default} is not a valid {ty}"))
}

/// One option a plugin declares.
#[derive(Debug, Clone, PartialEq)]
pub struct OptionDecl {
    /// Option name, without `--`.
    pub name: String,
    /// `string`, `int`, `bool`, `flag` or `string-conceal`.
    pub ty: String,
    /// Declared default, if any.
    pub default: Option<Value>,
    /// The whole declaration, to compare versions.
    pub decl: Value,
}

/// A plugin's manifest, checked: everything in it is safe to register.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    /// The manifest object, with anything lightningd would refuse removed.
    pub value: Map<String, Value>,
    /// Rpc method name → its declaration.
    pub methods: BTreeMap<String, Value>,
    /// Options, in declaration order.
    pub options: Vec<OptionDecl>,
    /// Hook name → its declaration.
    pub hooks: BTreeMap<String, Value>,
    /// Subscribed notification topics (`*` for all).
    pub subscriptions: Vec<String>,
    /// Custom notifications the plugin may send.
    pub notifications: Vec<String>,
    /// It declared `"autoreload": {"state": true}`: it hands its state to
    /// its next version (see [`crate::handover`]).
    pub keeps_state: bool,
}

impl Manifest {
    /// Checks a `getmanifest` result. Entries lightningd would kill the
    /// plugin for are removed; each removal is described in the returned
    /// list, so the user learns what to fix.
    pub fn from_result(result: &Value) -> Result<(Manifest, Vec<String>), String> {
        let Some(obj) = result.as_object() else {
            return Err(format!(
                "getmanifest result is not a JSON object: {}",
                short(result)
            ));
        };
        let mut value = obj.clone();
        let mut problems = vec![];
        // Ours, not lightningd's: it never sees the field, nor the two
        // methods a framework may have listed to answer the hand-over.
        let keeps_state = handover::declared(value.remove(handover::MANIFEST_FIELD).as_ref())
            .unwrap_or_else(|why| {
                problems.push(why);
                false
            });

        let mut methods = BTreeMap::new();
        let mut kept = vec![];
        for m in take_array(&mut value, "rpcmethods", &mut problems) {
            let name = m.get("name").and_then(Value::as_str).map(str::to_owned);
            let Some(name) = name else {
                problems.push(format!(
                    "rpc method without a \"name\" dropped: {}",
                    short(&m)
                ));
                continue;
            };
            if !m.get("usage").is_some_and(Value::is_string) {
                problems.push(format!(
                    "rpc method '{name}' dropped: it has no \"usage\" string (lightningd requires one, e.g. \"usage\": \"[arg]\")"
                ));
                continue;
            }
            if name == handover::SAVE || name == handover::RESTORE {
                continue;
            }
            if name.starts_with(HOST_PREFIX) {
                problems.push(format!(
                    "rpc method '{name}' dropped: names starting with '{HOST_PREFIX}' belong to cln-autoreload"
                ));
                continue;
            }
            if BUILTIN_METHODS.contains(&name.as_str()) {
                problems.push(format!(
                    "rpc method '{name}' dropped: lightningd has a command of that name"
                ));
                continue;
            }
            if m.get("description").is_some_and(|d| !d.is_string()) {
                problems.push(format!(
                    "rpc method '{name}' dropped: its \"description\" is not a string"
                ));
                continue;
            }
            if methods.contains_key(&name) {
                problems.push(format!(
                    "rpc method '{name}' declared twice; the second dropped"
                ));
                continue;
            }
            methods.insert(name, m.clone());
            kept.push(m);
        }
        value.insert("rpcmethods".into(), Value::Array(kept));

        let mut options: Vec<OptionDecl> = vec![];
        let mut kept = vec![];
        for o in take_array(&mut value, "options", &mut problems) {
            let name = o.get("name").and_then(Value::as_str).map(str::to_owned);
            let ty = o.get("type").and_then(Value::as_str).map(str::to_owned);
            let (Some(name), Some(ty)) = (name, ty) else {
                problems.push(format!(
                    "option dropped: it needs a \"name\" and a \"type\": {}",
                    short(&o)
                ));
                continue;
            };
            if !o.get("description").is_some_and(Value::is_string) {
                problems.push(format!(
                    "option '{name}' dropped: it has no \"description\""
                ));
                continue;
            }
            if OptionType::from_name(&ty).is_none() {
                let all: Vec<&str> = OptionType::ALL.iter().map(|t| t.as_str()).collect();
                problems.push(format!(
                    "option '{name}' dropped: type '{ty}' is not one of {}",
                    all.join(", ")
                ));
                continue;
            }
            if name.starts_with(HOST_PREFIX) {
                problems.push(format!(
                    "option '{name}' dropped: names starting with '{HOST_PREFIX}' belong to cln-autoreload"
                ));
                continue;
            }
            if let Some(why) = bad_option(&name, &ty, &o) {
                problems.push(format!("option '{name}' dropped: {why}"));
                continue;
            }
            if options.iter().any(|d| d.name == name) {
                problems.push(format!(
                    "option '{name}' declared twice; the second dropped"
                ));
                continue;
            }
            options.push(OptionDecl {
                name,
                ty,
                default: o.get("default").cloned(),
                decl: o.clone(),
            });
            kept.push(o);
        }
        value.insert("options".into(), Value::Array(kept));

        let mut hooks = BTreeMap::new();
        if let Some(list) = value.remove("hooks") {
            let mut kept = vec![];
            for h in as_list(list, "hooks", &mut problems) {
                let (name, mut decl) = match &h {
                    Value::String(s) => (s.clone(), json!({ "name": s })),
                    Value::Object(o) => match o.get("name").and_then(Value::as_str) {
                        Some(n) => (n.to_owned(), h.clone()),
                        None => {
                            problems
                                .push(format!("hook without a \"name\" dropped: {}", short(&h)));
                            continue;
                        }
                    },
                    _ => {
                        problems.push(format!("hook dropped: {}", short(&h)));
                        continue;
                    }
                };
                let Some(known) = hooks::find(&name) else {
                    problems.push(format!(
                        "hook '{name}' dropped: lightningd v26.06 has no such hook"
                    ));
                    continue;
                };
                if hooks.contains_key(&name) {
                    problems.push(format!(
                        "hook '{name}' registered twice; the second dropped"
                    ));
                    continue;
                }
                if let Some(o) = decl.as_object_mut() {
                    if known.filter == Filter::None {
                        if o.remove("filters").is_some() {
                            problems.push(format!(
                                "hook '{name}': \"filters\" removed (only rpc_command and custommsg take filters)"
                            ));
                        }
                    } else if o.get("filters").is_some_and(|f| !f.is_array()) {
                        o.remove("filters");
                        problems.push(format!(
                            "hook '{name}': \"filters\" is not an array, removed (the hook gets every call)"
                        ));
                    }
                }
                hooks.insert(name, decl.clone());
                kept.push(if h.is_string() { h } else { decl });
            }
            value.insert("hooks".into(), Value::Array(kept));
        }

        let subscriptions = strings(&value, "subscriptions");
        let mut notifications = vec![];
        if let Some(list) = value.remove("notifications") {
            let mut kept = vec![];
            for n in as_list(list, "notifications", &mut problems) {
                match n.get("method").and_then(Value::as_str) {
                    None => problems.push(format!(
                        "notification without a \"method\" dropped: {}",
                        short(&n)
                    )),
                    Some(m) if notifications::is_native(m) => problems.push(format!(
                        "notification '{m}' dropped: only lightningd may send it"
                    )),
                    Some(m) => {
                        notifications.push(m.to_owned());
                        kept.push(n);
                    }
                }
            }
            value.insert("notifications".into(), Value::Array(kept));
        }

        if let Some(v) = value.get("nonnumericids") {
            if v != &Value::Bool(true) {
                problems.push(format!(
                    "\"nonnumericids\": {v} removed (lightningd only accepts true)"
                ));
                value.remove("nonnumericids");
            }
        }
        if let Some(v) = value.get("dynamic").filter(|v| !v.is_boolean()) {
            problems.push(format!(
                "\"dynamic\": {v} removed (lightningd kills a plugin whose \"dynamic\" is not a boolean)"
            ));
            value.remove("dynamic");
        }
        if value.get("dynamic") == Some(&Value::Bool(true)) && has_featurebits(&value) {
            problems.push(
                "\"dynamic\" set to false: lightningd refuses featurebits from a dynamic plugin"
                    .into(),
            );
            value.insert("dynamic".into(), Value::Bool(false));
        }

        Ok((
            Manifest {
                value,
                methods,
                options,
                hooks,
                subscriptions,
                notifications,
                keeps_state,
            },
            problems,
        ))
    }

    /// Whether the plugin asked to be disabled, and why.
    pub fn disabled(&self) -> Option<String> {
        self.value.get("disable").map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
    }

    /// Whether the plugin wants notifications of this topic.
    pub fn subscribes(&self, topic: &str) -> bool {
        self.subscriptions.iter().any(|s| s == topic || s == "*")
    }

    /// The declaration of an option.
    pub fn option(&self, name: &str) -> Option<&OptionDecl> {
        self.options.iter().find(|o| o.name == name)
    }
}

/// Whether a manifest sets featurebits, which lightningd refuses from a
/// dynamic plugin.
fn has_featurebits(value: &Map<String, Value>) -> bool {
    value
        .get("featurebits")
        .is_some_and(|f| f.as_object().is_some_and(|o| !o.is_empty()))
}

fn take_array(value: &mut Map<String, Value>, key: &str, problems: &mut Vec<String>) -> Vec<Value> {
    match value.remove(key) {
        Some(v) => as_list(v, key, problems),
        None => {
            problems.push(format!(
                "\"{key}\" missing (lightningd requires an array; an empty one used)"
            ));
            vec![]
        }
    }
}

fn as_list(v: Value, key: &str, problems: &mut Vec<String>) -> Vec<Value> {
    match v {
        Value::Array(a) => a,
        other => {
            problems.push(format!(
                "\"{key}\" is not an array, ignored: {}",
                short(&other)
            ));
            vec![]
        }
    }
}

fn strings(value: &Map<String, Value>, key: &str) -> Vec<String> {
    value
        .get(key)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn short(v: &Value) -> String {
    crate::framing::preview(v.to_string().as_bytes(), 200)
}

/// The host's own options, as declared to lightningd.
pub fn host_options() -> Vec<Value> {
    vec![
        json!({"name": "autoreload-plugin", "type": "string", "multi": true,
               "description": "Path of a plugin to run and reload when its file changes (an executable, or a .wasm module); may be given several times"}),
        json!({"name": "autoreload-grace-ms", "type": "int", "default": 2000,
               "description": "On reload, how long the old instance may take to finish requests in flight before it is stopped"}),
        json!({"name": "autoreload-settle-ms", "type": "int", "default": 50,
               "description": "How long a changed file must stay quiet before it is reloaded"}),
        json!({"name": "autoreload-overlap", "type": "string", "multi": true,
               "description": "[PLUGIN::]true|false: start a new version while the old one serves (true, the default), or stop the old one first (false: for plugins that cannot run twice at once, holding a port or a lock)"}),
        json!({"name": "autoreload-start-timeout-ms", "type": "int", "default": 60000,
               "description": "How long a new version may take to answer getmanifest, and then init, before it counts as broken"}),
        json!({"name": "autoreload-build", "type": "string", "multi": true,
               "description": "[PLUGIN::]COMMAND to run (sh -c, in the plugin's project directory) when its sources change; 'none' turns off the inferred cargo build"}),
        json!({"name": "autoreload-watch", "type": "string", "multi": true,
               "description": "[PLUGIN::]DIR whose changes rebuild (or, without a build, reload) the plugin; relative to its project directory"}),
        json!({"name": "autoreload-reregister-on-change", "type": "bool", "default": false,
               "description": "When a reload adds methods, hooks or options, make lightningd re-register cln-autoreload (needs a wrapper script; see autoreload-reregister)"}),
        json!({"name": "autoreload-wasm-compiler", "type": "string", "default": "winch",
               "description": "Compiler for .wasm plugins: winch (fast reloads) or cranelift (faster code)"}),
        json!({"name": "autoreload-wasm-max-memory-mb", "type": "int", "default": 256,
               "description": "Memory cap of a .wasm plugin instance, in MiB"}),
        json!({"name": "autoreload-wasm-request-timeout-ms", "type": "int", "default": 10000,
               "description": "A .wasm plugin computing this long without reading or writing is stopped, its request answered"}),
        json!({"name": "autoreload-wasm-cache-dir", "type": "string",
               "description": "Directory of the on-disk cache of compiled .wasm modules (default: $XDG_CACHE_HOME or ~/.cache, then cln-autoreload/wasm); off: none"}),
        json!({"name": "autoreload-wasm-cache-mb", "type": "int", "default": 256,
               "description": "The most the on-disk cache of compiled .wasm modules holds, in MiB (least recently used dropped first; 0: none)"}),
        json!({"name": "autoreload-wasm-memory-cache-mb", "type": "int", "default": 64,
               "description": "The most compiled code the host keeps in memory for .wasm modules seen in this run, in MiB (0: none)"}),
        json!({"name": "autoreload-wasm-memory-cache-entries", "type": "int", "default": 32,
               "description": "The most compiled .wasm modules the host keeps in memory (least recently used dropped first; 0: none)"}),
        json!({"name": "autoreload-wasm-tier", "type": "string", "default": "auto",
               "description": "auto: after Winch serves a .wasm module, compile it with Cranelift in the background (lowest priority) for its next start; off: Winch only (autoreload-wasm-compiler=cranelift: Cranelift only)"}),
        json!({"name": "autoreload-wasm-reload-priority", "type": "string", "default": "normal",
               "description": "CPU priority of a .wasm reload's compile while the old version serves: normal (a save serves soonest) or low (calls first)"}),
        json!({"name": "autoreload-wasm-dir", "type": "string", "multi": true,
               "description": "HOST[:GUEST] directory a .wasm plugin may use (none by default)"}),
        json!({"name": "autoreload-wasm-rpc-allow", "type": "string", "multi": true,
               "description": "[PLUGIN::]METHOD lightningd methods a .wasm plugin may call (default: all; * for all)"}),
        json!({"name": "autoreload-native-sandbox", "type": "string", "multi": true,
               "description": "[PLUGIN::]on|best-effort|off: run native plugins (all, or PLUGIN) in a Landlock sandbox that hides the lightning dir's secrets"}),
        json!({"name": "autoreload-native-allow", "type": "string", "multi": true,
               "description": "[PLUGIN::]PATH[:rw] a sandboxed native plugin may also read (or write); relative to <lightning-dir>/<network>"}),
        json!({"name": "autoreload-native-net", "type": "string", "multi": true,
               "description": "[PLUGIN::]any|none|PORT,... TCP a sandboxed native plugin may connect to and bind (default: none)"}),
        json!({"name": "autoreload-native-env", "type": "string", "multi": true,
               "description": "[PLUGIN::]NAME,... environment variables a sandboxed native plugin keeps (default: all; NAME* for a prefix)"}),
        json!({"name": "autoreload-native-rpc-allow", "type": "string", "multi": true,
               "description": "[PLUGIN::]METHOD lightningd methods a sandboxed native plugin may call over lightning-rpc (default: read-only methods; * for all)"}),
    ]
}

/// The host's own rpc methods, as declared to lightningd.
pub fn host_methods() -> Vec<Value> {
    vec![
        json!({"name": "autoreload-restart", "usage": "[plugin]",
               "description": "Reload a managed plugin now; answers once the new version serves, or with why it could not start"}),
        json!({"name": "autoreload-reregister", "usage": "",
               "description": "Make lightningd register the plugins' current methods, hooks and options, without restarting lightningd (cln-autoreload must run from a wrapper script as a dynamic plugin)"}),
        json!({"name": "autoreload-status", "usage": "[plugin]",
               "description": "State of each plugin cln-autoreload manages: path, generation, pid, reloads, errors, requests in flight"}),
    ]
}

/// What the host registers with lightningd: the plugins' manifests merged,
/// plus the host's own options and methods, plus the `shutdown`
/// subscription the host needs to stop its children cleanly.
pub fn merged(children: &[&Manifest]) -> Value {
    let mut out = Map::new();
    let mut options = vec![];
    let mut methods = vec![];
    let mut hooks = vec![];
    let mut subs: Vec<Value> = vec![];
    let mut notes = vec![];
    for m in children {
        for (k, v) in &m.value {
            match k.as_str() {
                "options" | "rpcmethods" | "hooks" | "subscriptions" | "notifications" => {}
                // First plugin's values win for scalars; several plugins are
                // merged field by field only where lightningd allows it.
                _ => {
                    out.entry(k.clone()).or_insert_with(|| v.clone());
                }
            }
        }
        options.extend(
            m.value
                .get("options")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
        );
        methods.extend(
            m.value
                .get("rpcmethods")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
        );
        for h in m
            .value
            .get("hooks")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            merge_hook(&mut hooks, h);
        }
        for s in m
            .value
            .get("subscriptions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if !subs.contains(s) {
                subs.push(s.clone());
            }
        }
        notes.extend(
            m.value
                .get("notifications")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
        );
    }
    // The host must see shutdown to stop its children before lightningd
    // closes the pipes; it forwards it only to children that asked for it.
    let shutdown = Value::String("shutdown".into());
    if !subs.contains(&shutdown) && !subs.contains(&Value::String("*".into())) {
        subs.push(shutdown);
    }
    options.extend(host_options());
    methods.extend(host_methods());
    out.remove("disable");
    // lightningd kills a dynamic plugin that sets featurebits: when any
    // child sets them (only the first's are kept, and its "dynamic" may
    // not be the one kept), the host must not be dynamic either.
    if has_featurebits(&out) {
        out.insert("dynamic".into(), Value::Bool(false));
    } else {
        out.entry("dynamic").or_insert(Value::Bool(true));
    }
    out.insert("options".into(), Value::Array(options));
    out.insert("rpcmethods".into(), Value::Array(methods));
    if !hooks.is_empty() {
        out.insert("hooks".into(), Value::Array(hooks));
    }
    out.insert("subscriptions".into(), Value::Array(subs));
    if !notes.is_empty() {
        out.insert("notifications".into(), Value::Array(notes));
    }
    Value::Object(out)
}

/// Adds a hook registration to `hooks`, once per hook name: lightningd
/// kills a plugin that registers a hook twice, so when several managed
/// plugins want the same hook the host registers it once and chains them
/// itself. Filters are the union (no filter if any of them has none).
fn merge_hook(hooks: &mut Vec<Value>, h: &Value) {
    let name = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        other => other.get("name").and_then(Value::as_str).map(str::to_owned),
    };
    let Some(n) = name(h) else { return };
    let Some(existing) = hooks.iter_mut().find(|e| name(e).as_deref() == Some(&n)) else {
        hooks.push(h.clone());
        return;
    };
    let filters = |v: &Value| v.get("filters").and_then(Value::as_array).cloned();
    let merged = match (filters(existing), filters(h)) {
        (Some(mut a), Some(b)) => {
            for f in b {
                if !a.contains(&f) {
                    a.push(f);
                }
            }
            Some(a)
        }
        _ => None,
    };
    let mut decl = match &*existing {
        Value::String(s) => json!({ "name": s }),
        other => other.clone(),
    };
    if let Some(o) = decl.as_object_mut() {
        match merged {
            Some(f) => o.insert("filters".into(), Value::Array(f)),
            None => o.remove("filters"),
        };
    }
    *existing = decl;
}

/// Names two plugins both declare (methods, options, notifications), which
/// lightningd would refuse.
pub fn conflicts(a: &Manifest, b: &Manifest) -> Vec<String> {
    let mut out = vec![];
    for m in b.methods.keys().filter(|m| a.methods.contains_key(*m)) {
        out.push(format!("method '{m}'"));
    }
    for o in b.options.iter().filter(|o| a.option(&o.name).is_some()) {
        out.push(format!("option '{}'", o.name));
    }
    out
}

/// Whether a plugin's hook registration wants this call (its `filters`):
/// rpc_command filters name methods, custommsg filters message types.
pub fn hook_wants(manifest: &Manifest, hook: &str, params: Option<&Value>) -> bool {
    let Some(decl) = manifest.hooks.get(hook) else {
        return false;
    };
    let Some(filters) = decl.get("filters").and_then(Value::as_array) else {
        return true;
    };
    let Some(params) = params else { return true };
    match hook {
        "rpc_command" => {
            let method = params
                .pointer("/rpc_command/method")
                .and_then(Value::as_str);
            method.is_none_or(|m| filters.iter().any(|f| f.as_str() == Some(m)))
        }
        "custommsg" => {
            let ty = params
                .get("payload")
                .and_then(Value::as_str)
                .and_then(|p| p.get(..4))
                .and_then(|t| u64::from_str_radix(t, 16).ok());
            ty.is_none_or(|t| filters.iter().any(|f| f.as_u64() == Some(t)))
        }
        _ => true,
    }
}

/// What changed between the manifest lightningd knows and a new one.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Diff {
    /// `(what, name)` pairs, e.g. `("method", "hello")`.
    pub added: Vec<(&'static str, String)>,
    /// Removed entries.
    pub removed: Vec<(&'static str, String)>,
    /// Entries whose declaration changed.
    pub changed: Vec<(&'static str, String)>,
}

impl Diff {
    /// Compares two manifests.
    pub fn between(old: &Manifest, new: &Manifest) -> Diff {
        let mut d = Diff::default();
        d.compare("method", &old.methods, &new.methods);
        let opts = |m: &Manifest| {
            m.options
                .iter()
                .map(|o| (o.name.clone(), o.decl.clone()))
                .collect::<BTreeMap<_, _>>()
        };
        d.compare("option", &opts(old), &opts(new));
        d.compare("hook", &old.hooks, &new.hooks);
        let set = |v: &[String]| {
            v.iter()
                .map(|s| (s.clone(), Value::Null))
                .collect::<BTreeMap<_, _>>()
        };
        d.compare(
            "subscription",
            &set(&old.subscriptions),
            &set(&new.subscriptions),
        );
        d.compare(
            "notification",
            &set(&old.notifications),
            &set(&new.notifications),
        );
        for key in [
            "featurebits",
            "dynamic",
            "cancheck",
            "custommessages",
            "nonnumericids",
        ] {
            let (a, b) = (old.value.get(key), new.value.get(key));
            if a != b {
                match (a, b) {
                    (None, Some(_)) => d.added.push(("field", key.into())),
                    (Some(_), None) => d.removed.push(("field", key.into())),
                    _ => d.changed.push(("field", key.into())),
                }
            }
        }
        d
    }

    fn compare(
        &mut self,
        what: &'static str,
        old: &BTreeMap<String, Value>,
        new: &BTreeMap<String, Value>,
    ) {
        for (k, v) in new {
            match old.get(k) {
                None => self.added.push((what, k.clone())),
                Some(o) if o != v => self.changed.push((what, k.clone())),
                _ => {}
            }
        }
        for k in old.keys() {
            if !new.contains_key(k) {
                self.removed.push((what, k.clone()));
            }
        }
    }

    /// Whether lightningd must re-read the manifest for the change to
    /// work: something new to route, or a changed method or option.
    pub fn needs_registering(&self) -> bool {
        let relevant = |w: &str| {
            matches!(
                w,
                "method" | "hook" | "subscription" | "notification" | "option"
            )
        };
        self.added.iter().any(|(w, _)| relevant(w)) || self.changed.iter().any(|(w, _)| relevant(w))
    }

    /// True when nothing changed.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }

    /// The difference as JSON, for `autoreload-status`.
    pub fn to_json(&self) -> Value {
        let list = |v: &[(&str, String)]| {
            v.iter()
                .map(|(w, n)| format!("{w} {n}"))
                .collect::<Vec<_>>()
        };
        json!({"added": list(&self.added), "removed": list(&self.removed), "changed": list(&self.changed)})
    }
}

impl fmt::Display for Diff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = vec![];
        for (sign, list) in [
            ("+", &self.added),
            ("-", &self.removed),
            ("~", &self.changed),
        ] {
            for (what, name) in list {
                parts.push(format!("{sign}{what} {name}"));
            }
        }
        f.write_str(&parts.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trace_manifest() -> Value {
        json!({
            "options": [
                {"name": "trace-str", "type": "string", "default": "dflt", "description": "a string"},
                {"name": "trace-multi", "type": "string", "multi": true, "description": "multi string"},
                {"name": "trace-dyn", "type": "int", "default": 1, "dynamic": true, "description": "dynamic int"},
                {"name": "trace-secret", "type": "string-conceal", "default": "s", "description": "concealed"}
            ],
            "rpcmethods": [{"name": "trace-echo", "usage": "[a] [b]", "description": "echo"}],
            "subscriptions": ["connect", "shutdown", "trace_custom"],
            "hooks": [{"name": "rpc_command", "filters": ["getinfo"]}, {"name": "peer_connected"}],
            "notifications": [{"method": "trace_custom"}],
            "featurebits": {},
            "nonnumericids": true, "cancheck": true, "dynamic": true,
            "custommessages": [11008]
        })
    }

    #[test]
    fn a_good_manifest_passes_unchanged_and_merges_with_host_entries() {
        let (m, problems) = Manifest::from_result(&trace_manifest()).unwrap();
        assert!(problems.is_empty(), "{problems:?}");
        let merged = merged(&[&m]);
        let orig = trace_manifest();
        for key in [
            "nonnumericids",
            "cancheck",
            "dynamic",
            "custommessages",
            "featurebits",
            "hooks",
            "notifications",
        ] {
            assert_eq!(merged[key], orig[key], "{key}");
        }
        let opts = merged["options"].as_array().unwrap();
        assert_eq!(&opts[..4], orig["options"].as_array().unwrap().as_slice());
        assert!(opts
            .iter()
            .any(|o| o["name"] == "autoreload-plugin" && o["multi"] == true));
        let methods = merged["rpcmethods"].as_array().unwrap();
        assert_eq!(methods[0], orig["rpcmethods"][0]);
        assert!(methods.iter().any(|o| o["name"] == "autoreload-status"));
        // "shutdown" already there: not added twice.
        assert_eq!(merged["subscriptions"], orig["subscriptions"]);
    }

    #[test]
    fn the_state_declaration_and_its_methods_never_reach_lightningd() {
        let mut v = trace_manifest();
        v["autoreload"] = json!({"state": true});
        v["rpcmethods"].as_array_mut().unwrap().extend([
            json!({"name": "autoreload-save-state", "usage": ""}),
            json!({"name": "autoreload-restore-state", "usage": "state"}),
        ]);
        let (m, problems) = Manifest::from_result(&v).unwrap();
        assert!(problems.is_empty(), "{problems:?}");
        assert!(m.keeps_state);
        let merged = merged(&[&m]);
        assert!(merged.get("autoreload").is_none());
        let names: Vec<&str> = merged["rpcmethods"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|m| m["name"].as_str())
            .collect();
        assert!(!names.iter().any(|n| n.ends_with("-state")), "{names:?}");

        v["autoreload"] = json!({"state": "yes"});
        let (m, problems) = Manifest::from_result(&v).unwrap();
        assert!(!m.keeps_state);
        assert!(problems[0].contains("{\"state\": true}"), "{problems:?}");
        assert!(
            !Manifest::from_result(&trace_manifest())
                .unwrap()
                .0
                .keeps_state
        );
    }

    #[test]
    fn several_plugins_register_each_hook_once_with_filters_merged() {
        let a = json!({"options": [], "rpcmethods": [{"name": "a", "usage": ""}],
                       "hooks": [{"name": "rpc_command", "filters": ["getinfo"]}, "peer_connected"]});
        let b = json!({"options": [], "rpcmethods": [{"name": "b", "usage": ""}],
                       "hooks": [{"name": "rpc_command", "filters": ["pay"]}, {"name": "peer_connected"}]});
        let (a, _) = Manifest::from_result(&a).unwrap();
        let (b, _) = Manifest::from_result(&b).unwrap();
        let m = merged(&[&a, &b]);
        assert_eq!(
            m["hooks"],
            json!([{"name": "rpc_command", "filters": ["getinfo", "pay"]}, {"name": "peer_connected"}])
        );
        assert_eq!(
            m["rpcmethods"].as_array().unwrap().len(),
            2 + host_methods().len()
        );
        assert!(conflicts(&a, &b).is_empty());
        assert_eq!(conflicts(&a, &a), vec!["method 'a'".to_string()]);
        let call = |m: &str| json!({"rpc_command": {"method": m}});
        assert!(hook_wants(&a, "rpc_command", Some(&call("getinfo"))));
        assert!(!hook_wants(&a, "rpc_command", Some(&call("pay"))));
        assert!(hook_wants(&a, "peer_connected", None));
    }

    #[test]
    fn host_subscribes_to_shutdown_even_if_child_does_not() {
        let (m, _) = Manifest::from_result(&json!({"options": [], "rpcmethods": []})).unwrap();
        assert_eq!(merged(&[&m])["subscriptions"], json!(["shutdown"]));
    }

    #[test]
    fn entries_lightningd_would_kill_for_are_dropped_with_a_reason() {
        let bad = json!({
            "rpcmethods": [{"name": "ok", "usage": ""}, {"name": "nousage"}, {"usage": "x"},
                           {"name": "ok", "usage": "dup"}, {"name": "autoreload-status", "usage": ""}],
            "options": [{"name": "o", "type": "float", "description": "d"}, {"name": "p", "type": "int"}],
            "hooks": ["peer_connected", "no_such_hook", "peer_connected", {"name": "db_write", "filters": ["x"]},
                      {"name": "rpc_command", "filters": "getinfo"}],
            "nonnumericids": false,
            "featurebits": {"node": "0100"},
            "dynamic": true
        });
        let (m, problems) = Manifest::from_result(&bad).unwrap();
        assert_eq!(m.methods.keys().collect::<Vec<_>>(), vec!["ok"]);
        assert!(m.options.is_empty());
        assert_eq!(
            m.hooks.keys().collect::<Vec<_>>(),
            vec!["db_write", "peer_connected", "rpc_command"]
        );
        assert!(m.hooks["db_write"].get("filters").is_none());
        assert!(m.hooks["rpc_command"].get("filters").is_none());
        assert!(m.value.get("nonnumericids").is_none());
        assert_eq!(m.value["dynamic"], false);
        let text = problems.join("\n");
        for needle in [
            "nousage",
            "usage",
            "float",
            "'p'",
            "no_such_hook",
            "twice",
            "filters",
            "not an array",
            "nonnumericids",
            "featurebits",
            "autoreload-status",
        ] {
            assert!(
                text.contains(needle),
                "no problem mentions {needle}: {text}"
            );
        }
    }

    // Found by fuzzing: the host registered itself as dynamic (its default)
    // while passing on a child's featurebits, and lightningd kills that.
    #[test]
    fn featurebits_make_the_merged_manifest_non_dynamic() {
        let plain = json!({"options": [], "rpcmethods": [], "dynamic": true});
        let feat = json!({"options": [], "rpcmethods": [], "featurebits": {"node": "0100"}});
        let (plain, _) = Manifest::from_result(&plain).unwrap();
        let (feat, _) = Manifest::from_result(&feat).unwrap();
        for children in [vec![&feat], vec![&plain, &feat], vec![&feat, &plain]] {
            let m = merged(&children);
            assert_eq!(m["featurebits"], json!({"node": "0100"}));
            assert_eq!(m["dynamic"], false, "{m}");
        }
        assert_eq!(merged(&[&plain])["dynamic"], true);
    }

    // Found by fuzzing: lightningd kills a plugin whose "dynamic" is not a
    // boolean, and the checks passed any value on.
    #[test]
    fn a_dynamic_that_is_not_a_boolean_is_removed() {
        let (m, problems) =
            Manifest::from_result(&json!({"options": [], "rpcmethods": [], "dynamic": 1})).unwrap();
        assert!(m.value.get("dynamic").is_none());
        assert!(
            problems.iter().any(|p| p.contains("dynamic")),
            "{problems:?}"
        );
        assert_eq!(merged(&[&m])["dynamic"], true);
    }

    #[test]
    fn missing_arrays_and_non_objects_are_reported() {
        let (m, problems) = Manifest::from_result(&json!({})).unwrap();
        assert!(m.methods.is_empty());
        assert_eq!(problems.len(), 2);
        assert!(Manifest::from_result(&json!([1])).is_err());
    }

    #[test]
    fn diff_names_every_kind_of_change() {
        let (a, _) = Manifest::from_result(&trace_manifest()).unwrap();
        let mut v = trace_manifest();
        v["rpcmethods"] = json!([{"name": "trace-echo", "usage": "[a]", "description": "echo"},
                                 {"name": "new-one", "usage": "", "description": "n"}]);
        v["hooks"] = json!(["peer_connected"]);
        v["featurebits"] = json!({"node": "02"});
        v["dynamic"] = json!(false);
        let (b, _) = Manifest::from_result(&v).unwrap();
        let d = Diff::between(&a, &b);
        let s = d.to_string();
        assert!(s.contains("+method new-one"), "{s}");
        assert!(s.contains("~method trace-echo"), "{s}");
        assert!(s.contains("-hook rpc_command"), "{s}");
        assert!(s.contains("~field featurebits"), "{s}");
        assert!(Diff::between(&a, &a).is_empty());
    }
}
