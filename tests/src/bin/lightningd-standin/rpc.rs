//! The JSON-RPC socket: clients, the rpc_command hook, builtin commands,
//! passthrough to plugins, and the stand-in's dev-hook/dev-notify.

use crate::cli::{is_builtin_option, VERSION};
use crate::framing::{printable, FrameError, Framer};
use crate::ld::{Ld, OptDef, OptType, OptVal, Out, Reply};
use crate::logbook::Level;
use crate::plugins::{hooks, BUILTIN_METHODS};
use crate::proto::{
    error_response, error_response_raw, framed, id_text, make_id, ok_response, quote, raw_str,
    span_of, splice, Msg,
};
use cln_protocol::errors::{
    INVALID_PARAMS, INVALID_REQUEST, METHOD_NOT_FOUND, PLUGIN_TERMINATED, PLUGIN_TERMINATED_MESSAGE,
};
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::ops::Range;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};

pub const NODE_ID: &str = "022d223620a359a47ff7f7ac447c85c46c923da53389221a0054c11c1e3ca31d59";

/// Keeps one connection's requests in order: a request is handed to a
/// plugin (or answered) only after the previous one was, as lightningd
/// dispatches each request as soon as it has parsed it.
pub struct Gate(std::sync::Mutex<Option<oneshot::Sender<()>>>);

impl Gate {
    fn new() -> (Arc<Gate>, oneshot::Receiver<()>) {
        let (tx, rx) = oneshot::channel();
        (Arc::new(Gate(std::sync::Mutex::new(Some(tx)))), rx)
    }

    /// This request has been dispatched; the next one may go.
    pub fn open(&self) {
        let tx = self.0.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(tx) = tx {
            let _ = tx.send(());
        }
    }
}

/// A client request, raw, with what is needed to forward it.
pub struct Req {
    pub raw: Vec<u8>,
    /// The client's id token, exactly as sent.
    pub id_raw: String,
    /// Its text, to prefix lightningd's own ids.
    pub id_text: String,
    /// Where the id token sits in `raw`.
    pub id_span: Option<Range<usize>>,
    pub method: String,
    pub params: Option<String>,
    pub gate: Arc<Gate>,
}

fn parse_req(
    raw: Vec<u8>,
    id_override: Option<(&str, &str)>,
    gate: Arc<Gate>,
) -> Result<Req, Vec<u8>> {
    let null = id_override.map(|o| o.0).unwrap_or("null").to_string();
    let Some(m) = Msg::parse(&raw) else {
        return Err(error_response(&null, INVALID_REQUEST, "Invalid request"));
    };
    let id_span = m.id.and_then(|i| span_of(&raw, i));
    let (id_raw, idt) = match (id_override, m.id) {
        (Some((r, t)), _) => (r.to_string(), t.to_string()),
        (None, Some(i)) => (i.get().to_string(), id_text(i.get())),
        (None, None) => return Err(error_response("null", INVALID_REQUEST, "No id")),
    };
    let Some(method) = m.method else {
        return Err(error_response(&id_raw, INVALID_REQUEST, "No method"));
    };
    let Some(method) = raw_str(method) else {
        return Err(error_response(
            &id_raw,
            INVALID_REQUEST,
            "Expected string for method",
        ));
    };
    let params = m.params.map(|p| p.get().to_string());
    Ok(Req {
        raw,
        id_raw,
        id_text: idt,
        id_span,
        method,
        params,
        gate,
    })
}

/// Bind `lightning-rpc` in the current directory (the network directory).
pub fn bind(ld: &Arc<Ld>) -> Result<UnixListener, String> {
    let path = Path::new("lightning-rpc");
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err("lightningd already running? Connection to lightning-rpc succeeded".into());
        }
        let _ = std::fs::remove_file(path);
    }
    let l = UnixListener::bind(path).map_err(|e| format!("Binding rpc socket: {e}"))?;
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
    ld.st().socket_bound = true;
    Ok(l)
}

pub async fn serve(ld: Arc<Ld>, listener: UnixListener) {
    loop {
        match listener.accept().await {
            Ok((s, _)) => {
                tokio::spawn(connection(ld.clone(), s));
            }
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
        }
    }
}

fn ppid(pid: i32) -> Option<i32> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = s.get(s.rfind(')')? + 1..)?;
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// Is `pid` one of our plugins or one of their children?
fn is_descendant(pid: i32) -> bool {
    let me = std::process::id() as i32;
    let mut p = pid;
    for _ in 0..128 {
        if p == me {
            return true;
        }
        if p <= 1 {
            return false;
        }
        match ppid(p) {
            Some(pp) => p = pp,
            None => return false,
        }
    }
    false
}

async fn connection(ld: Arc<Ld>, stream: UnixStream) {
    // Plugins (and their children) may call us while start-up is still
    // going on, as with lightningd; other clients are served once every
    // plugin has answered init.
    let local = stream
        .peer_cred()
        .ok()
        .and_then(|c| c.pid())
        .is_some_and(is_descendant);
    let (mut rd, mut wr) = stream.into_split();
    let (tx, mut rx) = mpsc::unbounded_channel::<Out>();
    tokio::spawn(async move {
        while let Some(o) = rx.recv().await {
            match o {
                Out::Data(d) => {
                    if wr.write_all(&d).await.is_err() {
                        break;
                    }
                }
                Out::Flush(ack) => {
                    let _ = wr.flush().await;
                    let _ = ack.send(());
                }
                Out::Hangup => break,
            }
        }
    });
    if !local {
        let mut r = ld.ready.subscribe();
        let _ = r.wait_for(|v| *v).await;
    }
    let mut framer = Framer::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let mut prev: Option<oneshot::Receiver<()>> = None;
    'outer: loop {
        let n = match rd.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        framer.push(chunk.get(..n).unwrap_or_default());
        loop {
            match framer.next_message() {
                Ok(Some(m)) => {
                    let (gate, next) = Gate::new();
                    tokio::spawn(handle(ld.clone(), tx.clone(), m, prev.take(), gate));
                    prev = Some(next);
                }
                Ok(None) => break,
                Err(e) => {
                    let text = match e {
                        FrameError::Garbage(t) => t,
                        FrameError::NotObject(_) => "not an object".into(),
                    };
                    let _ = tx.send(Out::Data(error_response(
                        "null",
                        INVALID_REQUEST,
                        &format!("Invalid token in json input: '{text}'"),
                    )));
                    break 'outer;
                }
            }
        }
    }
}

async fn handle(
    ld: Arc<Ld>,
    tx: mpsc::UnboundedSender<Out>,
    raw: Vec<u8>,
    prev: Option<oneshot::Receiver<()>>,
    gate: Arc<Gate>,
) {
    if let Some(p) = prev {
        let _ = p.await;
    }
    // Nothing is taken while a db_write is out (see `Ld::db`).
    drop(ld.db.lock().await);
    let req = match parse_req(raw, None, gate) {
        Ok(r) => r,
        Err(resp) => {
            let _ = tx.send(Out::Data(resp));
            return;
        }
    };
    let req = match rpc_command_hook(&ld, &req).await {
        HookOut::Continue => req,
        HookOut::Respond(b) => {
            let _ = tx.send(Out::Data(b));
            return;
        }
        HookOut::Replace(r) => r,
    };
    if let Some(resp) = dispatch(&ld, &tx, &req).await {
        let _ = tx.send(Out::Data(resp));
    }
}

/// Builtin params, named or positional.
pub struct Params {
    pub obj: HashMap<String, Box<RawValue>>,
    pub arr: Vec<Box<RawValue>>,
}

impl Params {
    fn parse(req: &Req) -> Result<Params, Vec<u8>> {
        let mut p = Params {
            obj: HashMap::new(),
            arr: Vec::new(),
        };
        let Some(text) = req.params.as_deref() else {
            return Ok(p);
        };
        match text.trim_start().as_bytes().first() {
            Some(b'{') => {
                p.obj = serde_json::from_str(text).map_err(|e| {
                    error_response(&req.id_raw, INVALID_PARAMS, &format!("Invalid params: {e}"))
                })?
            }
            Some(b'[') => {
                p.arr = serde_json::from_str(text).map_err(|e| {
                    error_response(&req.id_raw, INVALID_PARAMS, &format!("Invalid params: {e}"))
                })?
            }
            _ => {
                return Err(error_response(
                    &req.id_raw,
                    INVALID_PARAMS,
                    "Expected array or object for params",
                ))
            }
        }
        Ok(p)
    }

    fn get(&self, name: &str, pos: usize) -> Option<&RawValue> {
        self.obj
            .get(name)
            .or_else(|| self.arr.get(pos))
            .map(|b| &**b)
    }

    pub fn string(&self, name: &str, pos: usize) -> Option<String> {
        self.get(name, pos).and_then(raw_str)
    }
}

macro_rules! params_or_return {
    ($req:expr) => {
        match Params::parse($req) {
            Ok(p) => p,
            Err(e) => return e,
        }
    };
}

async fn dispatch(ld: &Arc<Ld>, tx: &mpsc::UnboundedSender<Out>, req: &Req) -> Option<Vec<u8>> {
    let id = req.id_raw.as_str();
    Some(match req.method.as_str() {
        "getinfo" => ok_response(id, &getinfo(ld)),
        // What a fresh node with no peer, channel or coin answers (the
        // community plugins' collectors and dashboards ask for these).
        "listfunds" => ok_response(id, r#"{"outputs":[],"channels":[]}"#),
        "listpeers" => ok_response(id, r#"{"peers":[]}"#),
        "listpeerchannels" | "listchannels" => ok_response(id, r#"{"channels":[]}"#),
        "stop" => {
            ld.log.log(Level::Info, "lightningd", "JSON-RPC shutdown");
            ld.shutdown(
                0,
                true,
                Some((tx.clone(), ok_response(id, "\"Shutdown complete\""))),
            )
            .await;
            return None;
        }
        "plugin" => plugin_cmd(ld, req).await,
        "getlog" => getlog(ld, req),
        "check" => check(ld, req).await,
        "setconfig" => setconfig(ld, req).await,
        "help" => help(ld, req),
        "notifications" => ok_response(id, "{}"),
        "datastore" => ld.datastore().datastore(id, req.params.as_deref()),
        "listdatastore" => ld.datastore().list(id, req.params.as_deref()),
        "deldatastore" => ld.datastore().delete(id, req.params.as_deref()),
        "dev-hook" => dev_hook(ld, req).await,
        "dev-db-write" => dev_db_write(ld, req).await,
        "dev-db-log" => {
            let db = ld.db.lock().await;
            let log = serde_json::to_string(&db.log).unwrap_or_else(|_| "[]".into());
            ok_response(
                id,
                &format!("{{\"data_version\":{},\"writes\":{log}}}", db.data_version),
            )
        }
        "dev-notify" => dev_notify(ld, req),
        "signmessage" => signmessage(req),
        "dev-rpc-hangup" => {
            // Hangs up on the caller without an answer, as lightningd does
            // when it goes away with the call in flight.
            let _ = tx.send(Out::Hangup);
            return None;
        }
        "dev-rpc-notify" => {
            for frame in dev_rpc_notify(req) {
                let _ = tx.send(Out::Data(frame));
            }
            dev_rpc_notify_answer(req)
        }
        "dev-counters" => ok_response(
            id,
            &format!(
                "{{\"unknown_id_responses\":{}}}",
                ld.unknown_responses
                    .load(std::sync::atomic::Ordering::SeqCst)
            ),
        ),
        m => match ld.owner_of(m) {
            Some(idx) => forward(ld, req, idx, m).await,
            None => error_response(id, METHOD_NOT_FOUND, &format!("Unknown command '{m}'")),
        },
    })
}

/// Pass a client request to a plugin: raw bytes, only the id swapped.
async fn forward(ld: &Arc<Ld>, req: &Req, idx: usize, suffix: &str) -> Vec<u8> {
    let id = make_id(Some(&req.id_text), suffix, ld.next_id());
    let out = match &req.id_span {
        Some(span) => framed(splice(&req.raw, span, &id)),
        None => format!(
            "{{\"jsonrpc\":\"2.0\",\"id\":{id},\"method\":{},\"params\":{}}}\n\n",
            quote(&req.method),
            req.params.as_deref().unwrap_or("{}")
        )
        .into_bytes(),
    };
    let rx = ld.send_request(idx, &id, out);
    req.gate.open();
    match rx.await {
        Ok(Reply::Msg(raw)) => {
            let span = Msg::parse(&raw).and_then(|m| m.id.and_then(|i| span_of(&raw, i)));
            match span {
                Some(sp) => framed(splice(&raw, &sp, &req.id_raw)),
                None => error_response(&req.id_raw, -32603, "Plugin response without id"),
            }
        }
        // plugin.c plugin_terminated_fail_req: the plugin died first, and
        // lightningd answers as if it had said so, in these bytes (spaces
        // and all), passed on like any response (plugin_rpcmethod_cb).
        _ => terminated_response(&req.id_raw),
    }
}

/// plugin.c plugin_terminated_fail_req's response, with the client's id.
pub fn terminated_response(id_raw: &str) -> Vec<u8> {
    format!("{{\"jsonrpc\": \"2.0\",\"id\": {id_raw},\"error\": {{\"code\":{PLUGIN_TERMINATED}, \"message\":\"{PLUGIN_TERMINATED_MESSAGE}\"}}}}\n\n").into_bytes()
}

enum HookRes {
    Continue,
    Result(String),
}

/// One hook call (not `db_write`, which is `db`'s). An error reply other
/// than -4 is fatal, as in lightningd.
async fn call_hook(
    ld: &Arc<Ld>,
    idx: usize,
    hook: &str,
    prefix: Option<&str>,
    params: &str,
    gate: &Gate,
) -> HookRes {
    let id = make_id(prefix, hook, ld.next_id());
    let msg = format!(
        "{{\"jsonrpc\":\"2.0\",\"id\":{id},\"method\":{},\"params\":{params}}}\n\n",
        quote(hook)
    );
    let rx = ld.send_request(idx, &id, msg.into_bytes());
    gate.open();
    let reply = rx.await;
    let src = ld.plugin_source(idx);
    let short = ld
        .st()
        .plugins
        .get(idx)
        .map(|p| p.name.clone())
        .unwrap_or_default();
    // plugin_hook.c plugin_hook_callback: an error with code -4 (the plugin
    // died) goes on to the next plugin; any other response without a
    // result is fatal().
    let fatal_msg = match reply {
        Ok(Reply::Msg(raw)) => match Msg::parse(&raw) {
            Some(m) if m.error.is_some() => {
                let e = m.error.map(|e| e.get()).unwrap_or("null");
                let code = serde_json::from_str::<Map<String, Value>>(e)
                    .ok()
                    .and_then(|o| o.get("code").and_then(Value::as_i64));
                if code == Some(PLUGIN_TERMINATED) {
                    return HookRes::Continue;
                }
                format!(
                    "Plugin {short} for {hook} returned non-result response {}",
                    String::from_utf8_lossy(&raw)
                )
            }
            Some(Msg {
                result: Some(r), ..
            }) => return HookRes::Result(r.get().to_string()),
            _ => format!(
                "Plugin {short} for {hook} returned non-result response {}",
                printable(&raw)
            ),
        },
        _ => return HookRes::Continue,
    };
    ld.fatal(134, &src, &fatal_msg).await;
    HookRes::Continue
}

fn is_continue(result: &str) -> bool {
    serde_json::from_str::<Map<String, Value>>(result)
        .ok()
        .is_some_and(|o| o.get("result").and_then(Value::as_str) == Some("continue"))
}

enum HookOut {
    Continue,
    Respond(Vec<u8>),
    Replace(Req),
}

async fn rpc_command_hook(ld: &Arc<Ld>, req: &Req) -> HookOut {
    let regs = ld.hook_plugins("rpc_command");
    if regs.is_empty() {
        return HookOut::Continue;
    }
    let params = crate::proto::rpc_command_payload(&req.raw);
    for (idx, reg) in regs {
        if let Some(f) = &reg.filters {
            if !f.iter().any(|v| v.as_str() == Some(req.method.as_str())) {
                continue;
            }
        }
        let r = match call_hook(
            ld,
            idx,
            "rpc_command",
            Some(&req.id_text),
            &params,
            &req.gate,
        )
        .await
        {
            HookRes::Continue => continue,
            HookRes::Result(r) => r,
        };
        if is_continue(&r) {
            continue;
        }
        let bad = |why: &str| {
            HookOut::Respond(error_response(
                &req.id_raw,
                INVALID_REQUEST,
                &format!("Bad response to 'rpc_command' hook: {why}"),
            ))
        };
        let Ok(obj) = serde_json::from_str::<HashMap<String, Box<RawValue>>>(&r) else {
            return bad("result is not an object");
        };
        if let Some(ret) = obj.get("return") {
            let inner: HashMap<String, Box<RawValue>> =
                serde_json::from_str(ret.get()).unwrap_or_default();
            if let Some(res) = inner.get("result") {
                return HookOut::Respond(ok_response(&req.id_raw, res.get()));
            }
            if let Some(err) = inner.get("error") {
                return HookOut::Respond(error_response_raw(&req.id_raw, err.get()));
            }
            return bad("'return' must contain 'result' or 'error'");
        }
        if let Some(rep) = obj.get("replace") {
            return match parse_req(
                rep.get().as_bytes().to_vec(),
                Some((&req.id_raw, &req.id_text)),
                req.gate.clone(),
            ) {
                Ok(r) => HookOut::Replace(r),
                Err(_) => bad("'replace' must be a request object with a method"),
            };
        }
        return bad("unknown response");
    }
    HookOut::Continue
}

fn getinfo(ld: &Ld) -> String {
    format!(
        "{{\"id\":\"{NODE_ID}\",\"alias\":\"standin\",\"color\":\"022d22\",\"num_peers\":0,\"num_pending_channels\":0,\"num_active_channels\":0,\"num_inactive_channels\":0,\"address\":[],\"binding\":[],\"version\":\"{VERSION}\",\"blockheight\":0,\"network\":{},\"fees_collected_msat\":0,\"lightning-dir\":{}}}",
        quote(&ld.cfg.network),
        quote(&ld.cfg.netdir.to_string_lossy())
    )
}

#[derive(Serialize)]
struct PluginInfo {
    name: String,
    active: bool,
    dynamic: bool,
}

/// `[{"name","active","dynamic"}...]` for `plugin list`/`start`.
pub fn plugin_list_json(ld: &Ld) -> String {
    let list: Vec<PluginInfo> = ld
        .st()
        .plugins
        .iter()
        .map(|p| PluginInfo {
            name: p.path.clone(),
            active: p.active(),
            dynamic: p.m.dynamic,
        })
        .collect();
    serde_json::to_string(&list).unwrap_or_else(|_| "[]".into())
}

async fn plugin_cmd(ld: &Arc<Ld>, req: &Req) -> Vec<u8> {
    let p = params_or_return!(req);
    let Some(sub) = p.string("subcommand", 0) else {
        return error_response(
            &req.id_raw,
            INVALID_PARAMS,
            "missing required parameter: subcommand",
        );
    };
    match sub.as_str() {
        "list" => ok_response(
            &req.id_raw,
            &format!(
                "{{\"command\":\"list\",\"plugins\":{}}}",
                plugin_list_json(ld)
            ),
        ),
        "start" => crate::dynamic::start(ld, req, &p).await,
        "stop" => crate::dynamic::stop(ld, req, &p).await,
        _ => error_response(
            &req.id_raw,
            INVALID_PARAMS,
            &format!("subcommand '{sub}' is not supported by lightningd-standin"),
        ),
    }
}

fn getlog(ld: &Ld, req: &Req) -> Vec<u8> {
    let p = params_or_return!(req);
    let level = match p.get("level", 0) {
        None => Level::Debug,
        Some(r) => match raw_str(r).as_deref().and_then(Level::parse) {
            Some(l) => l,
            None => {
                return error_response(
                    &req.id_raw,
                    INVALID_PARAMS,
                    "level: should be 'io', 'debug', 'info', 'unusual' or 'broken'",
                )
            }
        },
    };
    let (entries, bytes) = ld.log.entries(level);
    let log = serde_json::to_string(&entries).unwrap_or_else(|_| "[]".into());
    ok_response(
        &req.id_raw,
        &format!(
            "{{\"created_at\":\"{:.9}\",\"bytes_used\":{bytes},\"bytes_max\":10485760,\"log\":{log}}}",
            ld.log.created_at
        ),
    )
}

async fn check(ld: &Arc<Ld>, req: &Req) -> Vec<u8> {
    let p = params_or_return!(req);
    let Some(cmd) = p.string("command_to_check", 0) else {
        return error_response(
            &req.id_raw,
            INVALID_PARAMS,
            "missing required parameter: command_to_check",
        );
    };
    let done = || {
        ok_response(
            &req.id_raw,
            &format!("{{\"command_to_check\":{}}}", quote(&cmd)),
        )
    };
    if BUILTIN_METHODS.contains(&cmd.as_str()) {
        return done();
    }
    let Some(idx) = ld.owner_of(&cmd) else {
        return error_response(
            &req.id_raw,
            METHOD_NOT_FOUND,
            &format!("Unknown command '{cmd}'"),
        );
    };
    let cancheck = ld.st().plugins.get(idx).is_some_and(|p| p.m.cancheck);
    if cancheck {
        forward(ld, req, idx, "check").await
    } else {
        done()
    }
}

async fn setconfig(ld: &Arc<Ld>, req: &Req) -> Vec<u8> {
    let id = req.id_raw.as_str();
    let p = params_or_return!(req);
    let Some(name) = p.string("config", 0) else {
        return error_response(id, INVALID_PARAMS, "missing required parameter: config");
    };
    let val: Option<String> = p
        .get("val", 1)
        .map(|r| raw_str(r).unwrap_or_else(|| r.get().to_string()));
    let found: Option<(usize, OptDef, String)> = {
        let st = ld.st();
        st.plugins.iter().enumerate().find_map(|(i, pl)| {
            if !pl.alive {
                return None;
            }
            pl.m.options
                .iter()
                .find(|o| o.name == name)
                .map(|o| (i, o.clone(), pl.path.clone()))
        })
    };
    let Some((idx, opt, path)) = found else {
        if is_builtin_option(&name) {
            return error_response(id, INVALID_PARAMS, &format!("{name}: not a dynamic option"));
        }
        return error_response(
            id,
            INVALID_PARAMS,
            &format!("Unknown config option '{name}'"),
        );
    };
    if !opt.dynamic {
        return error_response(id, INVALID_PARAMS, &format!("{name}: not a dynamic option"));
    }
    let value = match (&val, opt.typ) {
        (None, OptType::Flag) => OptVal::Bool(true),
        (None, _) => return error_response(id, INVALID_PARAMS, "missing required parameter: val"),
        (Some(v), t) => match t.value(v) {
            Some(x) => x,
            None => {
                return error_response(
                    id,
                    INVALID_PARAMS,
                    &format!("{name}: {v} does not parse as type {}", t.name()),
                )
            }
        },
    };
    let rid = make_id(Some(&req.id_text), "setconfig", ld.next_id());
    let val_part = match &val {
        Some(v) => format!(",\"val\":{}", quote(v)),
        None => String::new(),
    };
    let msg = format!(
        "{{\"jsonrpc\":\"2.0\",\"id\":{rid},\"method\":\"setconfig\",\"params\":{{\"config\":{}{val_part}}}}}\n\n",
        quote(&name)
    );
    let rx = ld.send_request(idx, &rid, msg.into_bytes());
    req.gate.open();
    let raw = match rx.await {
        Ok(Reply::Msg(raw)) => raw,
        _ => return error_response(id, PLUGIN_TERMINATED, PLUGIN_TERMINATED_MESSAGE),
    };
    // plugin.c plugin_setconfig_done: an error is passed on as its code and
    // message only (the message token's text as written); an error without
    // both, or an answer without result, is "Malformed setvalue".
    let malformed = || error_response(id, -1, &format!("Malformed setvalue {name} plugin return"));
    let parsed = Msg::parse(&raw);
    if let Some(e) = parsed.as_ref().and_then(|m| m.error) {
        let obj: Map<String, Value> = serde_json::from_str(e.get()).unwrap_or_default();
        let code = obj
            .get("code")
            .and_then(Value::as_i64)
            .and_then(|c| i32::try_from(c).ok());
        return match (code, obj.get("message")) {
            (Some(code), Some(m)) => {
                let text = match m {
                    Value::String(s) => s.clone(),
                    v => v.to_string(),
                };
                error_response(id, i64::from(code), &text)
            }
            _ => malformed(),
        };
    }
    if parsed.as_ref().and_then(|m| m.result).is_none() {
        return malformed();
    }
    if let Some(pl) = ld.st().plugins.get_mut(idx) {
        pl.values.insert(name.clone(), vec![value.clone()]);
    }
    let (key, v) = match &value {
        OptVal::Int(i) => ("value_int", i.to_string()),
        OptVal::Bool(b) => ("value_bool", b.to_string()),
        OptVal::Str(s) => ("value_str", quote(s)),
    };
    ok_response(
        id,
        &format!(
            "{{\"config\":{{\"config\":{},\"{key}\":{v},\"plugin\":{},\"dynamic\":true}}}}",
            quote(&name),
            quote(&path)
        ),
    )
}

const BUILTIN_USAGE: &[(&str, &str, &str)] = &[
    (
        "check",
        "command_to_check",
        "Don't run {command_to_check}, just verify parameters.",
    ),
    ("getinfo", "", "Show information about this node."),
    (
        "getlog",
        "[level]",
        "Show logs, with optional log {level} (info|unusual|debug|io).",
    ),
    (
        "help",
        "[command]",
        "List available commands, or give verbose help on one {command}.",
    ),
    (
        "notifications",
        "enable",
        "Enable notifications for individual commands.",
    ),
    (
        "plugin",
        "subcommand=list",
        "Control plugins (start, stop, startdir, rescan, list).",
    ),
    (
        "setconfig",
        "config [val]",
        "Set a dynamic configuration option.",
    ),
    ("stop", "", "Shut down the lightningd process."),
    (
        "dev-hook",
        "hook payload",
        "Stand-in only: call a hook on the plugins registered for it.",
    ),
    (
        "dev-notify",
        "topic payload",
        "Stand-in only: send a notification to subscribed plugins.",
    ),
    (
        "dev-counters",
        "",
        "Stand-in only: how many plugin responses went to an unknown id.",
    ),
];

#[derive(Serialize)]
struct HelpEntry {
    command: String,
    category: String,
    description: String,
    verbose: String,
}

fn help(ld: &Ld, req: &Req) -> Vec<u8> {
    let p = params_or_return!(req);
    let only = p.string("command", 0);
    let mut entries: Vec<(String, HelpEntry)> = BUILTIN_USAGE
        .iter()
        .map(|(n, u, d)| {
            (
                n.to_string(),
                HelpEntry {
                    command: format!("{n} {u}").trim_end().to_string(),
                    category: "utility".into(),
                    description: d.to_string(),
                    verbose: d.to_string(),
                },
            )
        })
        .collect();
    for pl in ld.st().plugins.iter().filter(|p| p.alive) {
        for m in &pl.m.methods {
            entries.push((
                m.name.clone(),
                HelpEntry {
                    command: format!("{} {}", m.name, m.usage).trim_end().to_string(),
                    category: "plugin".into(),
                    description: m.description.clone(),
                    verbose: m.description.clone(),
                },
            ));
        }
    }
    let list: Vec<&HelpEntry> = match &only {
        Some(c) => entries
            .iter()
            .filter(|(n, _)| n == c)
            .map(|(_, e)| e)
            .collect(),
        None => entries.iter().map(|(_, e)| e).collect(),
    };
    if let (Some(c), true) = (&only, list.is_empty()) {
        return error_response(
            &req.id_raw,
            METHOD_NOT_FOUND,
            &format!("Unknown command '{c}'"),
        );
    }
    let list = serde_json::to_string(&list).unwrap_or_else(|_| "[]".into());
    ok_response(&req.id_raw, &format!("{{\"help\":{list}}}"))
}

/// custommsg filters name message types: the payload's first two bytes.
fn custommsg_type(payload: &str) -> Option<u64> {
    let v: Map<String, Value> = serde_json::from_str(payload).ok()?;
    let hex = v.get("payload")?.as_str()?;
    u64::from_str_radix(hex.get(..4)?, 16).ok()
}

async fn dev_hook(ld: &Arc<Ld>, req: &Req) -> Vec<u8> {
    let p = params_or_return!(req);
    let Some(hook) = p.string("hook", 0) else {
        return error_response(
            &req.id_raw,
            INVALID_PARAMS,
            "missing required parameter: hook",
        );
    };
    if !hooks::is_known(&hook) {
        return error_response(
            &req.id_raw,
            INVALID_PARAMS,
            &format!("Unknown hook '{hook}'"),
        );
    }
    if hook == "db_write" {
        let msg = "db_write comes with a data_version lightningd keeps: use dev-db-write";
        return error_response(&req.id_raw, INVALID_PARAMS, msg);
    }
    let payload = p
        .get("payload", 1)
        .map(|r| r.get())
        .unwrap_or("{}")
        .to_string();
    let mtype = custommsg_type(&payload);
    let mut results: Vec<String> = Vec::new();
    for (idx, reg) in ld.hook_plugins(&hook) {
        if let Some(f) = &reg.filters {
            let matches = if hook == "custommsg" {
                mtype.is_some_and(|t| f.iter().any(|v| v.as_u64() == Some(t)))
            } else {
                true
            };
            if !matches {
                continue;
            }
        }
        // plugin_hook.c plugin_hook_call_next: the hook request's id has the
        // id of the command that caused it as its prefix (the trace's
        // `cli:connect#9100/cln:peer_connected#71`): here, dev-hook's.
        match call_hook(ld, idx, &hook, Some(&req.id_text), &payload, &req.gate).await {
            HookRes::Continue => continue,
            HookRes::Result(r) => {
                let cont = is_continue(&r);
                results.push(r);
                if !cont {
                    break;
                }
            }
        }
    }
    ok_response(
        &req.id_raw,
        &format!("{{\"results\":[{}]}}", results.join(",")),
    )
}

/// `dev-db-write writes`: a database transaction, reported to the
/// `db_write` plugins like lightningd's own (see `db`).
async fn dev_db_write(ld: &Arc<Ld>, req: &Req) -> Vec<u8> {
    let p = params_or_return!(req);
    let writes: Option<Vec<String>> = p
        .get("writes", 0)
        .and_then(|w| serde_json::from_str(w.get()).ok());
    let Some(writes) = writes else {
        return error_response(
            &req.id_raw,
            INVALID_PARAMS,
            "writes: an array of strings is required",
        );
    };
    let v = crate::db::write(ld, writes).await;
    ok_response(&req.id_raw, &format!("{{\"data_version\":{v}}}"))
}

fn dev_notify(ld: &Ld, req: &Req) -> Vec<u8> {
    let p = params_or_return!(req);
    let Some(topic) = p.string("topic", 0) else {
        return error_response(
            &req.id_raw,
            INVALID_PARAMS,
            "missing required parameter: topic",
        );
    };
    let payload = p.get("payload", 1).map(|r| r.get()).unwrap_or("{}");
    let t = quote(&topic);
    let msg = format!("{{\"jsonrpc\":\"2.0\",\"method\":{t},\"params\":{{{t}:{payload}}}}}\n\n");
    let n = ld.notify(&topic, msg.as_bytes());
    ok_response(&req.id_raw, &format!("{{\"sent\":{n}}}"))
}

/// `signmessage message`: a fake signature, shaped as lightningd's (a
/// plugin that gets one has used the node's key).
fn signmessage(req: &Req) -> Vec<u8> {
    let p = params_or_return!(req);
    let Some(message) = p.string("message", 0) else {
        return error_response(
            &req.id_raw,
            INVALID_PARAMS,
            "missing required parameter: message",
        );
    };
    let sig = format!("{:0>128}", message.len());
    ok_response(
        &req.id_raw,
        &format!("{{\"signature\":\"{sig}\",\"recid\":\"00\",\"zbase\":\"d{sig}\"}}"),
    )
}

/// `dev-rpc-notify count size [pad]`: `count` notifications on the caller's
/// connection before the answer, each with a `message` of `size` bytes, as
/// lightningd sends `message` notifications to a client that enabled them;
/// `pad` (any size) only makes the request large.
fn dev_rpc_notify(req: &Req) -> Vec<Vec<u8>> {
    let Ok(p) = Params::parse(req) else {
        return vec![];
    };
    let num = |name, pos| {
        p.get(name, pos)
            .and_then(|r| r.get().parse::<usize>().ok())
            .unwrap_or(0)
    };
    let (count, size) = (num("count", 0), num("size", 1));
    (0..count)
        .map(|i| {
            let text = format!("{i}:{}", "n".repeat(size));
            framed(format!(
                "{{\"jsonrpc\":\"2.0\",\"method\":\"message\",\"params\":{{\"id\":{},\"level\":\"info\",\"message\":{}}}}}",
                req.id_raw,
                quote(&text)
            ).into_bytes())
        })
        .collect()
}

/// `dev-rpc-notify`'s answer: how large its `pad` was.
fn dev_rpc_notify_answer(req: &Req) -> Vec<u8> {
    let p = params_or_return!(req);
    let pad = p.string("pad", 2).map_or(0, |s| s.len());
    ok_response(&req.id_raw, &format!("{{\"pad_len\":{pad}}}"))
}
