//! The stand-in's state: plugins, requests in flight, hooks, the exit paths.

use crate::cli::Cfg;
use crate::logbook::{Level, LogBook};
use crate::proto::quote;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch, Notify};

/// What a request to a plugin got back.
pub enum Reply {
    /// The whole response message, raw.
    Msg(Vec<u8>),
    /// The plugin died (or was killed) first.
    Died,
}

pub struct Pending {
    pub plugin: usize,
    pub tx: oneshot::Sender<Reply>,
}

/// Bytes for a client connection's writer.
pub enum Out {
    Data(Vec<u8>),
    Flush(oneshot::Sender<()>),
    /// Stop writing to the client: it sees the end of the stream
    /// (`dev-rpc-hangup`).
    Hangup,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Phase {
    Manifest,
    NeedsInit,
    Init,
    Running,
}

#[derive(Clone, Debug, PartialEq)]
pub enum OptVal {
    Str(String),
    Int(i64),
    Bool(bool),
}

impl OptVal {
    pub fn to_json(&self) -> String {
        match self {
            OptVal::Str(s) => quote(s),
            OptVal::Int(i) => i.to_string(),
            OptVal::Bool(b) => b.to_string(),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum OptType {
    Str,
    StrConceal,
    Int,
    Bool,
    Flag,
}

impl OptType {
    pub fn name(self) -> &'static str {
        match self {
            OptType::Str => "string",
            OptType::StrConceal => "string-conceal",
            OptType::Int => "int",
            OptType::Bool => "bool",
            OptType::Flag => "flag",
        }
    }

    /// Parse a textual value as lightningd does (`plugin_opt_value`).
    pub fn value(self, s: &str) -> Option<OptVal> {
        match self {
            OptType::Str | OptType::StrConceal => Some(OptVal::Str(s.to_string())),
            OptType::Int => crate::cli::parse_int(s).map(OptVal::Int),
            OptType::Bool => crate::cli::parse_bool(s).map(OptVal::Bool),
            OptType::Flag => Some(OptVal::Bool(true)),
        }
    }
}

#[derive(Clone, Debug)]
pub struct OptDef {
    pub name: String,
    pub typ: OptType,
    pub multi: bool,
    pub default: Option<OptVal>,
    pub dynamic: bool,
    pub deprecated: bool,
    pub description: String,
}

#[derive(Clone, Debug)]
pub struct MethodDef {
    pub name: String,
    pub usage: String,
    pub description: String,
}

#[derive(Clone, Debug)]
pub struct HookReg {
    pub name: String,
    pub before: Vec<String>,
    pub after: Vec<String>,
    pub filters: Option<Vec<serde_json::Value>>,
}

#[derive(Default, Clone, Debug)]
pub struct Manifest {
    pub methods: Vec<MethodDef>,
    pub options: Vec<OptDef>,
    pub hooks: Vec<HookReg>,
    pub subscriptions: Vec<String>,
    pub notifications: Vec<String>,
    pub cancheck: bool,
    pub dynamic: bool,
}

pub struct PluginRec {
    pub name: String,
    pub path: String,
    pub important: bool,
    /// Its output is still being processed (not killed, no EOF).
    pub alive: bool,
    pub phase: Phase,
    pub stdin: Option<mpsc::UnboundedSender<Vec<u8>>>,
    /// Tells the reaper to SIGKILL the process.
    pub killer: Arc<Notify>,
    /// Tells the stdout reader to stop.
    pub stop_reader: Arc<Notify>,
    /// Set when the stdout reader has finished.
    pub gone: watch::Receiver<bool>,
    /// Set when the process has been reaped.
    pub reaped: watch::Receiver<bool>,
    pub m: Manifest,
    /// Why it was killed, for `plugin start`'s error.
    pub killed_because: Option<String>,
    /// Checksum of the executable when it was started.
    pub checksum: u64,
    /// Option values set by config/command line/setconfig.
    pub values: HashMap<String, Vec<OptVal>>,
}

impl PluginRec {
    pub fn log_source(&self) -> String {
        format!("plugin-{}", self.name)
    }

    pub fn subscribed(&self, topic: &str) -> bool {
        self.m.subscriptions.iter().any(|s| s == topic || s == "*")
    }

    pub fn active(&self) -> bool {
        self.alive && self.phase == Phase::Running
    }
}

#[derive(Default)]
pub struct State {
    pub plugins: Vec<PluginRec>,
    pub pending: HashMap<String, Pending>,
    /// Plugin indices per hook, in call order.
    pub hook_order: HashMap<String, Vec<usize>>,
    pub socket_bound: bool,
}

pub struct Ld {
    pub cfg: Cfg,
    pub log: LogBook,
    counter: AtomicU64,
    st: Mutex<State>,
    exiting: AtomicBool,
    /// Responses from plugins to ids nothing waits for: answered twice, or
    /// to a request never sent (lightningd drops them silently; the soak
    /// counts them through `dev-counters`).
    pub unknown_responses: AtomicU64,
    pub ready: watch::Sender<bool>,
    /// The database. Held while a `db_write` is out: lightningd does
    /// nothing else until every plugin has answered it
    /// (`plugins_exclusive_loop`), so no rpc request is taken meanwhile.
    pub db: tokio::sync::Mutex<crate::db::Db>,
    /// The datastore.
    pub datastore: Mutex<crate::datastore::Store>,
}

pub fn env_secs(name: &str, default: u64) -> Duration {
    Duration::from_secs(
        std::env::var(name)
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(default)
            // Keep `Instant + timeout` from overflowing.
            .min(1 << 32),
    )
}

impl Ld {
    pub fn new(cfg: Cfg, log: LogBook) -> Self {
        Ld {
            cfg,
            log,
            counter: AtomicU64::new(20),
            st: Mutex::new(State::default()),
            exiting: AtomicBool::new(false),
            unknown_responses: AtomicU64::new(0),
            ready: watch::channel(false).0,
            db: tokio::sync::Mutex::new(crate::db::Db::default()),
            datastore: Mutex::new(Default::default()),
        }
    }

    pub fn datastore(&self) -> MutexGuard<'_, crate::datastore::Store> {
        self.datastore.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn st(&self) -> MutexGuard<'_, State> {
        self.st.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The next number for lightningd's request ids.
    pub fn next_id(&self) -> u64 {
        self.counter.fetch_add(1, Ordering::SeqCst)
    }

    pub fn exiting(&self) -> bool {
        self.exiting.load(Ordering::SeqCst)
    }

    pub fn plugin_source(&self, idx: usize) -> String {
        self.st()
            .plugins
            .get(idx)
            .map(|p| p.log_source())
            .unwrap_or_else(|| "plugin-manager".into())
    }

    /// Queue a request (already framed) for a plugin; the receiver gets the
    /// response, or `Died`.
    pub fn send_request(
        &self,
        idx: usize,
        id_json: &str,
        msg: Vec<u8>,
    ) -> oneshot::Receiver<Reply> {
        let (tx, rx) = oneshot::channel();
        let mut st = self.st();
        let sent = match st.plugins.get(idx) {
            Some(p) if p.alive => p.stdin.as_ref().is_some_and(|s| s.send(msg).is_ok()),
            _ => false,
        };
        if sent {
            st.pending
                .insert(id_json.to_string(), Pending { plugin: idx, tx });
        } else {
            let _ = tx.send(Reply::Died);
        }
        rx
    }

    /// A response from plugin `idx` with the raw id token `id_raw`.
    pub fn on_response(&self, idx: usize, id_raw: &str, msg: Vec<u8>) {
        let mut st = self.st();
        let found = match st.pending.remove(id_raw) {
            Some(p) if p.plugin == idx => Some(p),
            Some(p) => {
                st.pending.insert(id_raw.to_string(), p);
                None
            }
            None => None,
        };
        match found {
            Some(p) => {
                drop(st);
                let _ = p.tx.send(Reply::Msg(msg));
            }
            None => {
                self.unknown_responses.fetch_add(1, Ordering::SeqCst);
                let src = st
                    .plugins
                    .get(idx)
                    .map(|p| p.log_source())
                    .unwrap_or_default();
                drop(st);
                self.log.log(
                    Level::Debug,
                    &src,
                    &format!("response to unknown id {id_raw}"),
                );
            }
        }
    }

    /// lightningd's plugin_kill (plugin.c): log "Killing plugin: ...",
    /// SIGKILL, free it; destroy_plugin then fails its pending requests as
    /// if it had answered -4 (plugin_terminated_fail_req) and, if it was
    /// important, exits lightningd (log_broken, lightningd_exit(1)). Here:
    /// log, SIGKILL, forget its methods, fail
    /// whatever was waiting on it.
    pub fn kill_plugin(self: &Arc<Self>, idx: usize, level: Level, reason: &str) {
        let mut st = self.st();
        let Some(p) = st.plugins.get_mut(idx) else {
            return;
        };
        if !p.alive {
            return;
        }
        p.alive = false;
        p.stdin = None;
        p.killed_because = Some(reason.to_string());
        p.killer.notify_one();
        p.stop_reader.notify_one();
        let src = p.log_source();
        let important = p.important;
        let ids: Vec<String> = st
            .pending
            .iter()
            .filter(|(_, v)| v.plugin == idx)
            .map(|(k, _)| k.clone())
            .collect();
        let pendings: Vec<Pending> = ids.iter().filter_map(|k| st.pending.remove(k)).collect();
        drop(st);
        self.log
            .log(level, &src, &format!("Killing plugin: {reason}"));
        for p in pendings {
            let _ = p.tx.send(Reply::Died);
        }
        if important && !self.exiting() {
            let ld = self.clone();
            tokio::spawn(async move {
                ld.fatal(
                    1,
                    &src,
                    "Plugin marked as important, shutting down lightningd!",
                )
                .await;
            });
        }
    }

    /// EOF on a plugin's stdout: plugin.c plugin_conn_finish kills it with
    /// "exited " + state_desc, at LOG_DBG while shutting down, else
    /// LOG_INFORM. Death is only noticed this way.
    pub fn plugin_eof(self: &Arc<Self>, idx: usize) {
        let phase = match self.st().plugins.get(idx) {
            Some(p) if p.alive => p.phase,
            _ => return,
        };
        let desc = match phase {
            Phase::Manifest => "before replying to getmanifest",
            Phase::NeedsInit => "before we sent init",
            Phase::Init => "before replying to init",
            Phase::Running => "during normal operation",
        };
        let level = if self.exiting() {
            Level::Debug
        } else {
            Level::Info
        };
        self.kill_plugin(idx, level, &format!("exited {desc}"));
    }

    /// Send a notification to every live plugin subscribed to `topic`
    /// (plugin.c plugins_notify; lightningd's own notifications are
    /// `{"jsonrpc":"2.0","method":T,"params":{T:{...}}}`, as the trace's
    /// connect/disconnect).
    pub fn notify(&self, topic: &str, msg: &[u8]) -> usize {
        let st = self.st();
        let mut n = 0;
        for p in st.plugins.iter() {
            if p.alive && matches!(p.phase, Phase::Init | Phase::Running) && p.subscribed(topic) {
                if let Some(s) = p.stdin.as_ref() {
                    if s.send(msg.to_vec()).is_ok() {
                        n += 1;
                    }
                }
            }
        }
        n
    }

    /// The live plugin that registered RPC method `name`.
    pub fn owner_of(&self, name: &str) -> Option<usize> {
        self.st()
            .plugins
            .iter()
            .position(|p| p.alive && p.m.methods.iter().any(|m| m.name == name))
    }

    /// Live plugins registered for `hook`, in call order.
    pub fn hook_plugins(&self, hook: &str) -> Vec<(usize, HookReg)> {
        let st = self.st();
        let Some(order) = st.hook_order.get(hook) else {
            return Vec::new();
        };
        order
            .iter()
            .filter_map(|&i| {
                let p = st.plugins.get(i)?;
                if !p.alive {
                    return None;
                }
                p.m.hooks
                    .iter()
                    .find(|h| h.name == hook)
                    .map(|h| (i, h.clone()))
            })
            .collect()
    }

    /// lightningd's fatal(): log BROKEN, tell stderr, exit with `code`.
    pub async fn fatal(self: &Arc<Self>, code: i32, source: &str, msg: &str) {
        self.log.log(Level::Broken, source, msg);
        eprintln!("lightningd-standin: {msg}");
        self.shutdown(code, false, None).await;
    }

    /// Stop everything and exit the process with `code` (plugin.c
    /// shutdown_plugins: the `shutdown` notification to subscribers, up to
    /// 30 s for them to exit, then the rest is killed). With `notify`,
    /// plugins subscribed to `shutdown` are told first and given time.
    pub async fn shutdown(
        self: &Arc<Self>,
        code: i32,
        notify: bool,
        reply: Option<(mpsc::UnboundedSender<Out>, Vec<u8>)>,
    ) {
        if self.exiting.swap(true, Ordering::SeqCst) {
            // Someone else is already shutting down; they will exit.
            std::future::pending::<()>().await;
            return;
        }
        if notify {
            let msg =
                b"{\"jsonrpc\":\"2.0\",\"method\":\"shutdown\",\"params\":{\"shutdown\":{}}}\n\n";
            let waits: Vec<watch::Receiver<bool>> = {
                let st = self.st();
                st.plugins
                    .iter()
                    .filter(|p| p.active() && p.subscribed("shutdown"))
                    .filter(|p| {
                        p.stdin
                            .as_ref()
                            .is_some_and(|s| s.send(msg.to_vec()).is_ok())
                    })
                    .map(|p| p.gone.clone())
                    .collect()
            };
            let deadline =
                tokio::time::Instant::now() + env_secs("STANDIN_SHUTDOWN_TIMEOUT_SECS", 30);
            for mut g in waits {
                let _ = tokio::time::timeout_at(deadline, g.wait_for(|v| *v)).await;
            }
        }
        self.terminate_all().await;
        let bound = self.st().socket_bound;
        if bound {
            let _ = std::fs::remove_file(self.cfg.netdir.join("lightning-rpc"));
        }
        if let Some((tx, bytes)) = reply {
            let (ftx, frx) = oneshot::channel();
            if tx.send(Out::Data(bytes)).is_ok() && tx.send(Out::Flush(ftx)).is_ok() {
                let _ = tokio::time::timeout(Duration::from_secs(5), frx).await;
            }
        }
        self.log.flush();
        std::process::exit(code);
    }

    /// `lightningd --help`: plugins got getmanifest only; their stdin is
    /// closed (no init) and they are given a moment to go by themselves.
    pub async fn help_exit(self: &Arc<Self>) {
        let gone: Vec<watch::Receiver<bool>> = {
            let mut st = self.st();
            st.plugins
                .iter_mut()
                .map(|p| {
                    p.stdin = None;
                    p.gone.clone()
                })
                .collect()
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        for mut g in gone {
            let _ = tokio::time::timeout_at(deadline, g.wait_for(|v| *v)).await;
        }
        self.shutdown(0, false, None).await;
    }

    /// Close every plugin's stdin, SIGKILL what is left, reap them all.
    async fn terminate_all(&self) {
        let reaps: Vec<(String, watch::Receiver<bool>)> = {
            let mut st = self.st();
            st.plugins
                .iter_mut()
                .map(|p| {
                    p.stdin = None;
                    if p.alive && !*p.reaped.borrow() {
                        self.log.log(
                            Level::Debug,
                            "lightningd",
                            &format!("{}: failed to self-terminate in time, killing.", p.name),
                        );
                    }
                    p.killer.notify_one();
                    p.stop_reader.notify_one();
                    (p.name.clone(), p.reaped.clone())
                })
                .collect()
        };
        for (name, mut r) in reaps {
            if tokio::time::timeout(Duration::from_secs(5), r.wait_for(|v| *v))
                .await
                .is_err()
            {
                eprintln!("lightningd-standin: plugin {name} could not be reaped");
            }
        }
    }
}
