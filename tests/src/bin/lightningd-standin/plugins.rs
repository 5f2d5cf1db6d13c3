//! Plugin processes: spawning, reading their stdout, manifests, options, init.

use crate::cli::{is_builtin_option, is_lenient_option, VERSION};
use crate::framing::{printable, FrameError, Framer};
use crate::ld::{HookReg, Ld, Manifest, MethodDef, OptDef, OptType, OptVal, Phase, PluginRec};
use crate::logbook::Level;
use crate::proto::{quote, raw_str, Msg};
use cln_protocol::LogLevel;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdin, ChildStdout};
use tokio::sync::{mpsc, watch, Notify};

/// Hooks lightningd v26.06 offers: each `REGISTER_PLUGIN_HOOK*` site in
/// `lightningd/` (`git grep -n REGISTER_PLUGIN_HOOK -- lightningd`), plus
/// `db_write`, which plugin_hook.c registers itself (`db_write_hook`), and
/// which filters each takes (plugin_hook.c plugin_hook_register, from the
/// hook's `filter_type`: STRFILTER → strings, INTFILTER → unsigned
/// integers). The list is shared with the host and the guest SDK; each
/// entry names its registration site, and tests/tests/e2e/protocol.rs
/// checks it against lightningd's source.
pub use cln_protocol::hooks::{self, Filter};

/// RPC methods the stand-in answers itself.
pub const BUILTIN_METHODS: &[&str] = &[
    "getinfo",
    "stop",
    "plugin",
    "getlog",
    "check",
    "setconfig",
    "help",
    "notifications",
    "dev-hook",
    "dev-notify",
    "dev-counters",
    "signmessage",
    "dev-rpc-notify",
    "dev-rpc-hangup",
    "dev-db-write",
    "dev-db-log",
];

/// Notification topics only lightningd may send (notification.c, the
/// `REGISTER_NOTIFICATION` sites; plugin.c plugin_notifications_add refuses
/// them in a manifest): shared with the host, each with its line.
pub use cln_protocol::NATIVE_TOPICS;

/// FNV-1a over the file's bytes (lightningd keeps a crc32c to notice that a
/// plugin changed before a `plugin start`).
pub fn file_checksum(path: &Path) -> u64 {
    let Ok(bytes) = std::fs::read(path) else {
        return 0;
    };
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Spawn a plugin the way lightningd does and start its I/O tasks
/// (plugin.c plugin_send_getmanifest: argv is the path, plus `--developer`
/// when lightningd has it; plugins_init sets LIGHTNINGD_PLUGIN=1 and
/// LIGHTNINGD_VERSION in lightningd's own environment; stdin and stdout
/// piped, stderr inherited; cwd is lightningd's, `<lightning-dir>/<network>`).
pub fn start_plugin(ld: &Arc<Ld>, path: &Path, important: bool) -> Result<usize, String> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.to_string_lossy().into_owned());
    let mut cmd = tokio::process::Command::new(path);
    if ld.cfg.developer {
        cmd.arg("--developer");
    }
    cmd.env("LIGHTNINGD_PLUGIN", "1")
        .env("LIGHTNINGD_VERSION", VERSION)
        .current_dir(&ld.cfg.netdir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(false);
    let mut child = cmd.spawn().map_err(|e| format!("opening pipe: {e}"))?;
    let pid = child.id().unwrap_or(0);
    let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
        return Err("opening pipe: no pipes".into());
    };
    let (in_tx, in_rx) = mpsc::unbounded_channel();
    let killer = Arc::new(Notify::new());
    let stop_reader = Arc::new(Notify::new());
    let (gone_tx, gone_rx) = watch::channel(false);
    let (reaped_tx, reaped_rx) = watch::channel(false);
    let idx = {
        let mut st = ld.st();
        st.plugins.push(PluginRec {
            name,
            path: path.to_string_lossy().into_owned(),
            important,
            alive: true,
            phase: Phase::Manifest,
            stdin: Some(in_tx),
            killer: killer.clone(),
            stop_reader: stop_reader.clone(),
            gone: gone_rx,
            reaped: reaped_rx,
            m: Manifest::default(),
            killed_because: None,
            checksum: file_checksum(path),
            values: HashMap::new(),
        });
        st.plugins.len() - 1
    };
    ld.log.log(
        Level::Debug,
        "plugin-manager",
        &format!("started({pid}) {}", path.display()),
    );
    tokio::spawn(writer(stdin, in_rx));
    tokio::spawn(reader(ld.clone(), idx, stdout, stop_reader, gone_tx));
    tokio::spawn(reaper(child, killer, reaped_tx));
    Ok(idx)
}

async fn writer(mut stdin: ChildStdin, mut rx: mpsc::UnboundedReceiver<Vec<u8>>) {
    while let Some(m) = rx.recv().await {
        if stdin.write_all(&m).await.is_err() {
            break;
        }
    }
    // Dropping stdin closes the pipe.
}

async fn reaper(mut child: Child, killer: Arc<Notify>, reaped: watch::Sender<bool>) {
    tokio::select! {
        _ = child.wait() => {}
        _ = killer.notified() => {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
    }
    let _ = reaped.send(true);
}

async fn reader(
    ld: Arc<Ld>,
    idx: usize,
    mut out: ChildStdout,
    stop: Arc<Notify>,
    gone: watch::Sender<bool>,
) {
    let mut framer = Framer::new();
    let mut chunk = vec![0u8; 64 * 1024];
    'outer: loop {
        let n = tokio::select! {
            r = out.read(&mut chunk) => r,
            _ = stop.notified() => break 'outer,
        };
        let n = match n {
            Ok(0) | Err(_) => {
                ld.plugin_eof(idx);
                break;
            }
            Ok(n) => n,
        };
        framer.push(chunk.get(..n).unwrap_or_default());
        loop {
            match framer.next_message() {
                Ok(Some(m)) => {
                    if !handle_msg(&ld, idx, m) {
                        break 'outer;
                    }
                }
                Ok(None) => break,
                Err(FrameError::Garbage(text)) => {
                    ld.kill_plugin(
                        idx,
                        Level::Unusual,
                        &format!("Failed to parse RPC JSON response '{text}'"),
                    );
                    break 'outer;
                }
                Err(FrameError::NotObject(text)) => {
                    // common/jsonrpc_io.c jsonrpc_io_parse: a complete value
                    // that is not an object has no "jsonrpc" member.
                    ld.kill_plugin(
                        idx,
                        Level::Unusual,
                        &format!("JSON-RPC message does not contain \"jsonrpc\" field: '{text}'"),
                    );
                    break 'outer;
                }
            }
        }
    }
    let _ = gone.send(true);
}

/// One message from a plugin. Returns false when the plugin is gone.
fn handle_msg(ld: &Arc<Ld>, idx: usize, raw: Vec<u8>) -> bool {
    let (alive, src, name) = match ld.st().plugins.get(idx) {
        Some(p) => (p.alive, p.log_source(), p.name.clone()),
        None => return false,
    };
    if !alive {
        return false;
    }
    let Some(m) = Msg::parse(&raw) else {
        ld.kill_plugin(
            idx,
            Level::Unusual,
            &format!("Failed to parse RPC JSON response '{}'", printable(&raw)),
        );
        return false;
    };
    // common/jsonrpc_io.c jsonrpc_io_parse: "jsonrpc" must be there (its
    // value is not checked); the message quotes the buffer.
    if m.jsonrpc.is_none() {
        ld.kill_plugin(
            idx,
            Level::Unusual,
            &format!(
                "JSON-RPC message does not contain \"jsonrpc\" field: '{}'",
                printable(&raw)
            ),
        );
        return false;
    }
    if let Some(id) = m.id {
        let id = id.get().to_string();
        ld.on_response(idx, &id, raw);
        return true;
    }
    let method = m.method.and_then(raw_str);
    let (Some(method), Some(params)) = (method, m.params) else {
        ld.kill_plugin(
            idx,
            Level::Unusual,
            &format!(
                "Malformed JSON-RPC notification missing \"method\" or \"params\": {}",
                printable(&raw)
            ),
        );
        return false;
    };
    match method.as_str() {
        "log" => {
            let p: Map<String, Value> = serde_json::from_str(params.get()).unwrap_or_default();
            let Some(Value::String(text)) = p.get("message") else {
                ld.kill_plugin(
                    idx,
                    Level::Unusual,
                    "Log notification from plugin doesn't have a string \"message\" field",
                );
                return false;
            };
            // plugin.c plugin_log_handle: log_level_parse (any case, with
            // the warn and error aliases), then the io levels refused.
            let level = match p.get("level") {
                None => Some(Level::Info),
                Some(Value::String(l)) => LogLevel::parse(l).map(Level::from),
                Some(_) => None,
            };
            let Some(level) = level else {
                let l = p.get("level").map(|v| v.to_string()).unwrap_or_default();
                ld.kill_plugin(
                    idx,
                    Level::Unusual,
                    // plugin.c plugin_log_handle.
                    &format!(
                        "Unknown log-level {l}, valid values are \"trace\", \"debug\", \"info\", \"warn\", or \"error\"."
                    ),
                );
                return false;
            };
            ld.log.log(level, &src, text);
        }
        "message" | "progress" => {
            // plugin.c plugin_notify_handle: params.id must be there (else
            // kill); it names the request the notification belongs to.
            let p: Map<String, Value> = serde_json::from_str(params.get()).unwrap_or_default();
            if p.get("id").is_none() {
                ld.kill_plugin(
                    idx,
                    Level::Unusual,
                    "JSON-RPC notify \"id\"-field is not present",
                );
                return false;
            }
            ld.log
                .log(Level::Debug, &src, &format!("{method}: {}", params.get()));
        }
        _ => {
            let declared = ld
                .st()
                .plugins
                .get(idx)
                .is_some_and(|p| p.m.notifications.contains(&method));
            if declared {
                let msg = format!(
                    "{{\"jsonrpc\":\"2.0\",\"method\":{},\"origin\":{},\"params\":{}}}\n\n",
                    quote(&method),
                    quote(&name),
                    params.get()
                );
                ld.notify(&method, msg.as_bytes());
            } else {
                ld.log.log(
                    Level::Unusual,
                    &src,
                    &format!(
                        "Plugin attempted to send a notification to topic \"{method}\" it hasn't declared in its manifest, not forwarding to subscribers."
                    ),
                );
            }
        }
    }
    true
}

enum MErr {
    Kill(Level, String),
    /// fatal() at start-up (first text), a kill for `plugin start` (second).
    Fatal(String, String),
}

fn kill(s: impl Into<String>) -> MErr {
    MErr::Kill(Level::Unusual, s.into())
}

/// lightningd's json_strdup: a string's content, anything else as written.
fn strdup(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        v => v.to_string(),
    }
}

fn is_hex(s: &str) -> bool {
    s.len().is_multiple_of(2) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// json_parse_deprecated (plugin.c): `deprecated` is a bool, or an array
/// of one or two version strings. Returns whether it is deprecated.
fn parse_deprecated(v: Option<&Value>) -> Result<bool, String> {
    match v {
        None => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::Array(a)) if (1..=2).contains(&a.len()) => {
            let versions = ["start", "end"];
            for (v, which) in a.iter().zip(versions) {
                let s = strdup(v);
                let ok = s
                    .strip_prefix('v')
                    .is_some_and(|r| r.split('.').all(|p| p.parse::<u32>().is_ok()));
                if !ok {
                    return Err(format!("invalid \"deprecated\" {which} version {s}"));
                }
            }
            Ok(true)
        }
        Some(v) => Err(format!(
            "\"deprecated\" must be an array of 1 or 2 elements, not {v}"
        )),
    }
}

/// The manifest checks of plugin.c plugin_parse_getmanifest_response, in
/// its order: disable, dynamic, featurebits, custommessages,
/// nonnumericids, cancheck, then plugin_notifications_add,
/// plugin_opts_add, plugin_rpcmethods_add, plugin_subscriptions_add,
/// plugin_hooks_add. Each error is a kill (plugin_manifest_cb, LOG_UNUSUAL),
/// its text lightningd's.
fn check_manifest(ld: &Ld, idx: usize, raw: &[u8]) -> Result<Manifest, MErr> {
    let result: Option<Map<String, Value>> = Msg::parse(raw)
        .and_then(|m| m.result)
        .and_then(|r| serde_json::from_str(r.get()).ok());
    let Some(res) = result else {
        return Err(kill(format!(
            "Invalid/missing result tok in '{}'",
            printable(raw)
        )));
    };
    // plugin.c plugin_manifest_cb: a plugin that disables itself is killed
    // at LOG_INFORM.
    if let Some(d) = res.get("disable") {
        return Err(MErr::Kill(
            Level::Info,
            format!("disabled itself: {}", strdup(d)),
        ));
    }
    let mut m = Manifest::default();
    match res.get("dynamic") {
        None => {}
        Some(Value::Bool(b)) => m.dynamic = *b,
        Some(v) => return Err(kill(format!("Bad 'dynamic' field ('{v}')"))),
    }
    if let Some(Value::Object(fb)) = res.get("featurebits") {
        let mut have = false;
        for (_, v) in fb.iter() {
            let s = strdup(v);
            if !is_hex(&s) {
                return Err(kill(format!(
                    "Featurebits returned by plugin is not a valid hexadecimal string: {s}"
                )));
            }
            have |= !s.is_empty();
        }
        if m.dynamic && have {
            return Err(kill(format!(
                "Custom featurebits only allows for non-dynamic plugins: dynamic=1, featurebits={}",
                Value::Object(fb.clone())
            )));
        }
    }
    // plugin.c plugin_parse_getmanifest_response: `custommessages`, an
    // array of u16.
    match res.get("custommessages") {
        None => {}
        Some(Value::Array(a)) => {
            for (i, t) in a.iter().enumerate() {
                if t.as_u64().is_none_or(|n| n > u64::from(u16::MAX)) {
                    return Err(kill(format!("custommessages {i} not a u16: '{t}'")));
                }
            }
        }
        Some(v) => return Err(kill(format!("custommessages must be array, not '{v}'"))),
    }
    match res.get("nonnumericids") {
        None | Some(Value::Bool(true)) => {}
        Some(Value::Bool(false)) => {
            return Err(kill("Plugin does not allow nonnumericids"));
        }
        Some(v) => return Err(kill(format!("Invalid nonnumericids: {v}"))),
    }
    match res.get("cancheck") {
        None => {}
        Some(Value::Bool(b)) => m.cancheck = *b,
        Some(v) => return Err(kill(format!("Invalid cancheck: {v}"))),
    }

    // notifications
    match res.get("notifications") {
        None => {}
        Some(Value::Array(a)) => {
            for (i, n) in a.iter().enumerate() {
                let Value::Object(o) = n else {
                    return Err(kill(format!(
                        "\"result.notifications[{i}]\" is not an object"
                    )));
                };
                let Some(Value::String(name)) = o.get("method") else {
                    return Err(kill(format!(
                        "\"result.notifications[{i}].name\" missing or not a string."
                    )));
                };
                if NATIVE_TOPICS.contains(&name.as_str()) {
                    return Err(kill(format!(
                        "plugin attempted to register a native notification topic \"{name}\", these may however only be sent by lightningd"
                    )));
                }
                m.notifications.push(name.clone());
            }
        }
        Some(_) => return Err(kill("\"result.notifications\" is not an array")),
    }

    let (path, taken_opts, taken_methods): (String, Vec<String>, Vec<(String, String)>) = {
        let st = ld.st();
        let path = st
            .plugins
            .get(idx)
            .map(|p| p.path.clone())
            .unwrap_or_default();
        let others = st
            .plugins
            .iter()
            .enumerate()
            .filter(|(i, p)| *i != idx && p.alive);
        let mut opts = Vec::new();
        let mut meths = Vec::new();
        for (_, p) in others {
            opts.extend(p.m.options.iter().map(|o| o.name.clone()));
            meths.extend(p.m.methods.iter().map(|o| (o.name.clone(), p.path.clone())));
        }
        (path, opts, meths)
    };

    // options
    let Some(options) = res.get("options") else {
        return Err(kill("\"result.options\" was not found in the manifest"));
    };
    let Value::Array(options) = options else {
        return Err(kill("\"result.options\" is not an array"));
    };
    for o in options {
        let get = |k: &str| match o {
            Value::Object(map) => map.get(k),
            _ => None,
        };
        let (Some(name), Some(typ), Some(desc)) = (get("name"), get("type"), get("description"))
        else {
            return Err(kill(
                "An option is missing either \"name\", \"description\" or \"type\"",
            ));
        };
        // plugin.c plugin_opt_add, in its order.
        let name = strdup(name);
        if !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        {
            return Err(kill(
                "Option \"name\" must be lowercase alphanumeric, plus _ or -'",
            ));
        }
        // A name taken: fatal() at start-up, a kill for `plugin start`.
        if is_builtin_option(&name)
            || taken_opts.contains(&name)
            || m.options.iter().any(|o| o.name == name)
        {
            return Err(MErr::Fatal(
                format!("error starting plugin '{path}': option name '{name}' is already taken"),
                format!("Option \"{name}\" already registered"),
            ));
        }
        let deprecated = parse_deprecated(get("deprecated")).map_err(kill)?;
        // bool_setting: "--NAME: invalid \"KEY\" field VALUE".
        let boolish = |k: &str| -> Result<bool, MErr> {
            match get(k) {
                None => Ok(false),
                Some(Value::Bool(b)) => Ok(*b),
                Some(v) => Err(kill(format!(
                    "--{name}: invalid \"{k}\" field {}",
                    strdup(v)
                ))),
            }
        };
        let multi = boolish("multi")?;
        let dynamic = boolish("dynamic")?;
        let typ = match typ.as_str() {
            Some("string") => OptType::Str,
            Some("string-conceal") => OptType::StrConceal,
            Some("int") => OptType::Int,
            Some("bool") => OptType::Bool,
            Some("flag") => OptType::Flag,
            _ => {
                return Err(kill(
                    "Only \"string\", \"int\", \"bool\", and \"flag\" options are supported",
                ))
            }
        };
        // A flag's default, if given, must be false (and then means unset);
        // a flag or a bool cannot be multi.
        if typ == OptType::Flag {
            if let Some(d) = get("default") {
                if d != &Value::Bool(false) {
                    return Err(kill(format!(
                        "--{name} type flag default must be 'false' not {d}"
                    )));
                }
            }
            if multi {
                return Err(kill("flag type cannot be multi"));
            }
        }
        if typ == OptType::Bool && multi {
            return Err(kill("bool type cannot be multi"));
        }
        // A default (not null) is parsed like a value given on the command
        // line.
        let default = match get("default") {
            _ if typ == OptType::Flag => None,
            None | Some(Value::Null) => None,
            Some(d) => {
                let s = strdup(d);
                match typ.value(&s) {
                    Some(v) => Some(v),
                    None => {
                        return Err(kill(format!(
                            "Invalid default '{s}': {s} does not parse as type {}",
                            typ.name()
                        )))
                    }
                }
            }
        };
        m.options.push(OptDef {
            name,
            typ,
            multi,
            default,
            dynamic,
            deprecated,
            description: strdup(desc),
        });
    }

    // rpcmethods
    let Some(methods) = res.get("rpcmethods") else {
        return Err(kill("\"result.rpcmethods\" missing"));
    };
    let Value::Array(methods) = methods else {
        return Err(kill("\"result.rpcmethods\" is not an array"));
    };
    for meth in methods {
        let get = |k: &str| match meth {
            Value::Object(map) => map.get(k),
            _ => None,
        };
        let Some(Value::String(name)) = get("name") else {
            return Err(kill(format!(
                "rpcmethod does not have a string \"name\": {meth}"
            )));
        };
        // plugin.c plugin_rpcmethod_add: `usage` is required (whatever
        // allow-deprecated-apis says); `description` is not read at all;
        // `deprecated` as for options.
        let usage = match get("usage") {
            Some(Value::String(s)) => s.clone(),
            Some(_) => return Err(kill(format!("\"usage\" is not a string: {meth}"))),
            None => return Err(kill("\"usage\" not provided by plugin")),
        };
        let description = match get("description") {
            Some(Value::String(s)) => s.clone(),
            _ => String::new(),
        };
        parse_deprecated(get("deprecated")).map_err(kill)?;
        let owner = if m.methods.iter().any(|x| x.name == *name) {
            Some(path.clone())
        } else {
            taken_methods
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, p)| p.clone())
        };
        if let Some(owner) = owner {
            return Err(kill(format!(
                "Could not register method \"{name}\", a method with that name is already registered by plugin {owner}"
            )));
        }
        if BUILTIN_METHODS.contains(&name.as_str()) {
            // (lightningd would crash here: find_plugin_for_command finds no
            // plugin for a builtin; the stand-in kills without "by plugin".)
            return Err(kill(format!(
                "Could not register method \"{name}\", a method with that name is already registered"
            )));
        }
        m.methods.push(MethodDef {
            name: name.clone(),
            usage,
            description,
        });
    }

    // subscriptions
    match res.get("subscriptions") {
        None => {}
        Some(Value::Array(a)) => {
            for (i, s) in a.iter().enumerate() {
                let Value::String(s) = s else {
                    return Err(kill(format!(
                        "result.subscriptions[{i}] is not a string: '{s}'"
                    )));
                };
                m.subscriptions.push(s.clone());
            }
        }
        Some(_) => return Err(kill("\"result.subscriptions\" is not an array")),
    }

    // hooks
    match res.get("hooks") {
        None => {}
        Some(Value::Array(a)) => {
            for h in a {
                let strs = |v: Option<&Value>| -> Vec<String> {
                    match v {
                        Some(Value::Array(a)) => a.iter().map(strdup).collect(),
                        Some(Value::String(s)) => vec![s.clone()],
                        _ => Vec::new(),
                    }
                };
                // plugin.c plugin_hooks_add: an object with a name, or a
                // bare name.
                let (mut reg, filters) = match h {
                    Value::Object(o) => {
                        let Some(name) = o.get("name") else {
                            return Err(kill(format!("no name in hook obj {h}")));
                        };
                        let reg = HookReg {
                            name: strdup(name),
                            before: strs(o.get("before")),
                            after: strs(o.get("after")),
                            filters: None,
                        };
                        (reg, o.get("filters"))
                    }
                    h => {
                        let reg = HookReg {
                            name: strdup(h),
                            before: Vec::new(),
                            after: Vec::new(),
                            filters: None,
                        };
                        (reg, None)
                    }
                };
                // plugin_hook.c plugin_hook_register, in its order.
                let Some(hook) = hooks::find(&reg.name) else {
                    return Err(kill(format!("Unknown hook name {}", reg.name)));
                };
                let ft = hook.filter;
                match (filters, ft) {
                    (None, _) => {}
                    (Some(_), Filter::None) => {
                        return Err(kill(format!("Hook {} does not allow filters", reg.name)));
                    }
                    (Some(Value::Array(fs)), ft) => {
                        reg.filters = Some(fs.clone());
                        for f in fs {
                            let ok = match ft {
                                Filter::Strings => f.is_string(),
                                _ => f.is_u64(),
                            };
                            if !ok {
                                let what = if ft == Filter::Strings {
                                    "strings"
                                } else {
                                    "unsigned integers"
                                };
                                return Err(kill(format!(
                                    "filters must be array of {what}, not '{}'",
                                    strdup(f)
                                )));
                            }
                        }
                    }
                    (Some(_), _) => return Err(kill("filters token must be an array")),
                }
                // Only the same plugin twice is refused: several plugins
                // may register one hook (they are chained).
                if m.hooks.iter().any(|x| x.name == reg.name) {
                    return Err(kill(format!(
                        "Registered for hook {} multiple times",
                        reg.name
                    )));
                }
                m.hooks.push(reg);
            }
        }
        Some(_) => return Err(kill("\"result.hooks\" is not an array")),
    }
    Ok(m)
}

/// Validate and register a getmanifest response. Err = lightningd must exit
/// (an option clash at start-up; later, `plugin start`, it only kills).
pub fn apply_manifest(ld: &Arc<Ld>, idx: usize, raw: &[u8], startup: bool) -> Result<(), String> {
    match check_manifest(ld, idx, raw) {
        Ok(m) => {
            let dynamic = m.dynamic;
            {
                let mut st = ld.st();
                if let Some(p) = st.plugins.get_mut(idx) {
                    if p.alive {
                        p.m = m;
                        p.phase = Phase::NeedsInit;
                    }
                }
            }
            // plugin.c plugin_manifest_cb: at runtime only dynamic plugins.
            if !startup && !dynamic {
                ld.kill_plugin(idx, Level::Info, "Not a dynamic plugin");
            } else {
                check_subscriptions(ld, idx);
            }
            Ok(())
        }
        Err(MErr::Kill(level, reason)) => {
            ld.kill_plugin(idx, level, &reason);
            Ok(())
        }
        Err(MErr::Fatal(_, msg)) if !startup => {
            ld.kill_plugin(idx, Level::Unusual, &msg);
            Ok(())
        }
        Err(MErr::Fatal(msg, _)) => Err(msg),
    }
}

/// plugin.c plugin_check_subscriptions: a subscription to a topic nobody
/// sends is only warned about (`*` is every topic).
fn check_subscriptions(ld: &Arc<Ld>, idx: usize) {
    let (src, unknown): (String, Vec<String>) = {
        let st = ld.st();
        let Some(p) = st.plugins.get(idx) else {
            return;
        };
        let known = |t: &str| {
            t == "*"
                || NATIVE_TOPICS.contains(&t)
                || st
                    .plugins
                    .iter()
                    .any(|o| o.alive && o.m.notifications.iter().any(|n| n == t))
        };
        let unknown =
            p.m.subscriptions
                .iter()
                .filter(|t| !known(t))
                .cloned()
                .collect();
        (p.log_source(), unknown)
    };
    for t in unknown {
        ld.log.log(
            Level::Unusual,
            &src,
            &format!("topic '{t}' is not a known notification topic"),
        );
    }
}

/// Order each hook's plugins (registration order, honouring before/after).
pub fn order_hooks(ld: &Arc<Ld>) {
    let mut failed: Vec<usize> = Vec::new();
    {
        let mut st = ld.st();
        let mut orders = HashMap::new();
        for hook in hooks::names() {
            let mut remaining: Vec<(usize, String, HookReg)> = st
                .plugins
                .iter()
                .enumerate()
                .filter(|(_, p)| p.alive)
                .filter_map(|(i, p)| {
                    p.m.hooks
                        .iter()
                        .find(|h| h.name == *hook)
                        .map(|h| (i, p.name.clone(), h.clone()))
                })
                .collect();
            let mut order = Vec::new();
            while !remaining.is_empty() {
                let pos = remaining.iter().position(|(_, name, reg)| {
                    !remaining.iter().any(|(_, oname, oreg)| {
                        oname != name && (oreg.before.contains(name) || reg.after.contains(oname))
                    })
                });
                match pos {
                    Some(p) => order.push(remaining.remove(p).0),
                    None => {
                        // Only plugins that are starting are refused.
                        for (i, _, _) in remaining.drain(..) {
                            if st
                                .plugins
                                .get(i)
                                .is_some_and(|p| p.phase == Phase::NeedsInit)
                            {
                                failed.push(i);
                            } else {
                                order.push(i);
                            }
                        }
                    }
                }
            }
            orders.insert(hook.to_string(), order);
        }
        st.hook_order = orders;
    }
    failed.sort_unstable();
    failed.dedup();
    for i in failed {
        ld.kill_plugin(i, Level::Unusual, "Cannot meet required hook dependencies");
    }
}

/// Pass 2 of option parsing: plugin options from config files and the
/// command line. Err = print and exit 1.
///
/// With `only`, for `plugin start`: the values given at start-up for the
/// options this one plugin declares (lightningd keeps them), nothing else.
pub fn resolve_options(ld: &Arc<Ld>, only: Option<usize>) -> Result<(), String> {
    let mut st = ld.st();
    for raw in ld.cfg.unknown.iter() {
        let found = st.plugins.iter().enumerate().find_map(|(i, p)| {
            if !p.alive || only.is_some_and(|o| o != i) {
                return None;
            }
            p.m.options
                .iter()
                .find(|o| o.name == raw.name)
                .map(|o| (i, o.clone()))
        });
        let Some((i, o)) = found else {
            if only.is_some() || is_lenient_option(&raw.name) {
                continue;
            }
            return Err(format!("unknown option '{}'", raw.name));
        };
        let text = if o.typ == OptType::Flag {
            if raw.value.is_some() {
                return Err(format!("--{}: doesn't allow an argument", o.name));
            }
            if let Some(n) = &raw.next {
                return Err(format!("Unknown argument '{n}'"));
            }
            "true".to_string()
        } else {
            match raw.value.clone().or_else(|| raw.next.clone()) {
                Some(v) => v,
                None => return Err(format!("--{}: requires an argument", o.name)),
            }
        };
        if o.deprecated && !ld.cfg.deprecated_apis {
            return Err(format!(
                "--{}: deprecated option (will be removed!)",
                o.name
            ));
        }
        let Some(v) = o.typ.value(&text) else {
            return Err(format!(
                "--{}={text}: {text} does not parse as type {}",
                o.name,
                o.typ.name()
            ));
        };
        if let Some(p) = st.plugins.get_mut(i) {
            let vals = p.values.entry(o.name.clone()).or_default();
            if !o.multi {
                vals.clear();
            }
            vals.push(v);
        }
    }
    Ok(())
}

/// The option values a plugin's init gets, in manifest order, as JSON
/// (plugin.c json_add_plugin_options): an option with neither value nor
/// default is left out; multi: an array of every value, or `[default]`;
/// a flag given: `true` (it has no default); int as a number, bool as a
/// bool, strings as strings (json_add_plugin_val). Deprecated options are
/// included in init.
pub fn init_options(p: &PluginRec) -> String {
    let mut parts = Vec::new();
    for o in &p.m.options {
        let vals: Vec<OptVal> = match p.values.get(&o.name) {
            Some(v) if !v.is_empty() => v.clone(),
            _ => match &o.default {
                Some(d) => vec![d.clone()],
                None => continue,
            },
        };
        if o.typ == OptType::Flag {
            if vals.last() == Some(&OptVal::Bool(true)) {
                parts.push(format!("{}:true", quote(&o.name)));
            }
            continue;
        }
        if o.multi {
            let items: Vec<String> = vals.iter().map(|v| v.to_json()).collect();
            parts.push(format!("{}:[{}]", quote(&o.name), items.join(",")));
        } else if let Some(v) = vals.last() {
            parts.push(format!("{}:{}", quote(&o.name), v.to_json()));
        }
    }
    format!("{{{}}}", parts.join(","))
}

pub const FEATURE_SET: &str = "{\"init\":\"800898880a8a59a1\",\"node\":\"808898880a8a59a1\",\"channel\":\"\",\"invoice\":\"02000002024100\",\"bolt12_offer\":\"\",\"bolt12_invreq\":\"\",\"bolt12_invoice\":\"020000\",\"channel_type\":\"08800000800000\"}";

/// The init request for plugin `idx` (framed), with its id literal
/// (plugin.c plugin_populate_init_request: lightning-dir, rpc-file,
/// startup, network, then proxy settings only when a proxy is set, then
/// feature_set; the trace's bytes).
pub fn init_request(ld: &Ld, idx: usize, startup: bool) -> Option<(String, Vec<u8>)> {
    let st = ld.st();
    let p = st.plugins.get(idx)?;
    let id = crate::proto::make_id(None, "init", ld.next_id());
    let msg = format!(
        "{{\"jsonrpc\":\"2.0\",\"id\":{id},\"method\":\"init\",\"params\":{{\"options\":{},\"configuration\":{{\"lightning-dir\":{},\"rpc-file\":\"lightning-rpc\",\"startup\":{startup},\"network\":{},\"feature_set\":{FEATURE_SET}}}}}}}\n\n",
        init_options(p),
        quote(&ld.cfg.netdir.to_string_lossy()),
        quote(&ld.cfg.network),
    );
    Some((id, msg.into_bytes()))
}

/// Handle an init response.
pub fn apply_init(ld: &Arc<Ld>, idx: usize, raw: &[u8]) {
    let disable = Msg::parse(raw)
        .and_then(|m| m.result)
        .and_then(|r| serde_json::from_str::<Map<String, Value>>(r.get()).ok())
        .and_then(|r| r.get("disable").map(strdup));
    if let Some(d) = disable {
        ld.kill_plugin(idx, Level::Debug, &format!("disabled itself at init: {d}"));
        return;
    }
    let mut st = ld.st();
    if let Some(p) = st.plugins.get_mut(idx) {
        if p.alive {
            p.phase = Phase::Running;
        }
    }
}
