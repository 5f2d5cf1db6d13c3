//! What a plugin's instances say: messages on stdout (its answers to
//! getmanifest and init during start-up, the rest handed on), stderr
//! lines, warnings, compile figures and exits, told apart by generation.
//!
//! Owns: telling an instance's own answers (getmanifest, init, the state
//! hand-over: handed to [`super::lifecycle`]) from the rest, what a plugin
//! may and may not send lightningd, and the rate limit on warnings about a
//! plugin. Must not: change a phase (it cannot: the phase is
//! [`super::lifecycle`]'s).

use super::plugin::*;
use super::{InstanceOp, Sandbox, Supervisor, Timer};
use crate::backend::{BackendKind, Exit, InstanceEvent};
use crate::framing::{preview, Kind, Message, RawId};
use crate::handover;
use crate::ids::{Gen, OwnRequest, PluginId};
use crate::jsonrpc::{self, ErrorKind};
use crate::link::Level;
use crate::router::ReqKind;
use cln_protocol::log::LOG_LEVEL_NAMES;
use cln_protocol::LogLevel;
use serde_json::{json, Value};
use std::time::Duration;

/// At most this many warnings of one kind about one plugin per
/// [`NOISE_WINDOW`]; the rest are counted, and the count logged.
const NOISE_MAX: u32 = 10;
const NOISE_WINDOW: Duration = Duration::from_secs(1);

impl Supervisor {
    /// Something one of the plugin's instances reported.
    pub(crate) fn on_instance(&mut self, p: PluginId, number: Gen, event: InstanceEvent) {
        let plugin = &mut self.plugins[p];
        let role = plugin.role(number);
        let name = plugin.name.clone();
        match event {
            InstanceEvent::Message(m) => match role {
                Some(role) => self.on_message(p, role, number, m),
                None => {
                    if let Kind::Response { id } = &m.kind {
                        // A stopped generation answering late: its requests
                        // were already answered or handed on.
                        self.out.log(
                            Level::Debug,
                            format!("[{name}] late response {id} from generation {number} dropped"),
                        );
                    }
                }
            },
            InstanceEvent::Garbage { bytes, reason } => {
                let w = format!(
                    "[{name}] wrote something that is not JSON-RPC to stdout ({reason}); lightningd would have killed it for this. Use stderr or a log notification: {}",
                    preview(&bytes, 400)
                );
                // What its output ended with matters more than one more
                // piece of a flood: it is not counted with the others.
                let kind = if reason.starts_with("stream ended") {
                    WarnKind::Truncated
                } else {
                    WarnKind::Garbage
                };
                self.plugin_warn(p, kind, w);
            }
            InstanceEvent::Stderr(line) => {
                if let Some(g) = role.and_then(|r| plugin.gen_mut(r)) {
                    if g.stderr_tail.len() == 20 {
                        g.stderr_tail.pop_front();
                    }
                    g.stderr_tail.push_back(line.clone());
                }
                if plugin.stdin_closed(number) {
                    self.out.log(
                        Level::Debug,
                        format!("[{name}] (generation {number}, stopping) {line}"),
                    );
                } else {
                    let level = if line.starts_with("trap: ") {
                        Level::Warn
                    } else {
                        Level::Info
                    };
                    self.out.log(level, format!("[{name}] {line}"));
                }
            }
            InstanceEvent::Warn(w) => {
                self.plugin_warn(p, WarnKind::Backend, format!("[{name}] {w}"))
            }
            InstanceEvent::Compiled(record) => {
                if let Some(g) = role.and_then(|r| plugin.gen_mut(r)) {
                    g.compiled = true;
                    plugin.last_compile = Some(record);
                }
            }
            InstanceEvent::Exited(exit) => match role {
                Some(Role::Current) => self.on_exit(p, exit),
                Some(Role::Next) => {
                    let why = self.exit_reason(p, Role::Next, &exit, "during start-up");
                    self.next_failed(p, why);
                }
                Some(Role::Retiring(i)) => {
                    let r = self.plugins[p].retiring.remove(i);
                    for id in r.waiters {
                        self.out.send(jsonrpc::response(&id, &r.answer));
                    }
                    self.orphans(p, r.gen.number, &exit, true);
                    self.shutdown_progress();
                }
                None => {}
            },
        }
    }

    /// How an exit reads in errors and logs, with its last stderr lines.
    pub(super) fn exit_reason(
        &mut self,
        p: PluginId,
        role: Role,
        exit: &Exit,
        when: &str,
    ) -> String {
        let plugin = &mut self.plugins[p];
        let Some(g) = plugin.gen_mut(role) else {
            return exit.how.clone();
        };
        let mut w = format!("generation {} {} {when}", g.number, exit.how);
        let tail: Vec<&str> = g
            .stderr_tail
            .iter()
            .map(String::as_str)
            .filter(|l| !l.starts_with("trap: "))
            .collect();
        if !tail.is_empty() {
            w.push_str(&format!("; its last stderr lines: {}", tail.join(" | ")));
        }
        w
    }

    pub(super) fn on_message(&mut self, p: PluginId, role: Role, number: Gen, m: Message) {
        if let Kind::Response { id } = &m.kind {
            // Only this generation's own ids, exactly: lightningd puts the
            // caller's id first in the ids it sends, so a prefix could be
            // chosen by any caller. The prefix only spares every other
            // answer building the host's ids to compare with.
            if id.as_json().starts_with(OwnRequest::JSON_PREFIX)
                && self.on_own_answer(p, role, number, id, &m)
            {
                return;
            }
        }
        self.on_plugin_message(p, number, m);
        if let Some(Role::Retiring(_)) = self.plugins[p].role(number) {
            if self.router.count_generation(p, number) == 0 {
                self.close_retiring(p, number);
            }
        }
    }

    /// An answer to one of the host's own requests to generation `number`
    /// (its getmanifest, its init, a state hand-over), handled; whether it
    /// was one.
    fn on_own_answer(
        &mut self,
        p: PluginId,
        role: Role,
        number: Gen,
        id: &RawId,
        m: &Message,
    ) -> bool {
        for op in [handover::Op::Save, handover::Op::Restore] {
            if *id == op.id(number) {
                self.on_state_answer(p, number, op, m);
                return true;
            }
        }
        let own = |what: OwnRequest| *id == what.id(number);
        let phase = self.plugins[p].phase();
        let step = match (role, phase) {
            (Role::Current, Phase::Starting { .. }) | (Role::Next, Phase::Swapping { .. }) => {
                phase.start_step()
            }
            _ => None,
        };
        match step {
            Some(Step::Manifest) if own(OwnRequest::Getmanifest) => self.on_manifest(p, m),
            Some(Step::Init) if own(OwnRequest::Init) => self.on_init_answer(p, m),
            // A generation replaced while it started (a reload came
            // first: it is stopping now) may still answer its own
            // getmanifest or init: nobody waits for that any more.
            _ if own(OwnRequest::Getmanifest) || own(OwnRequest::Init) => {
                let name = &self.plugins[p].name;
                self.out.log(
                    Level::Debug,
                    format!(
                        "[{name}] generation {number} answered {id} after it was replaced: dropped"
                    ),
                );
            }
            _ => return false,
        }
        true
    }

    /// Logs a warning about something plugin `p` did, unless it already
    /// had [`NOISE_MAX`] of this `kind` within the last [`NOISE_WINDOW`]:
    /// those are counted and summed up when the window is over.
    pub(crate) fn plugin_warn(&mut self, p: PluginId, kind: WarnKind, text: String) {
        let now = self.now;
        let noise = self.plugins[p].noise.entry(kind).or_insert(Noise {
            since: now,
            logged: 0,
            suppressed: 0,
        });
        if now.duration_since(noise.since) >= NOISE_WINDOW && noise.suppressed == 0 {
            noise.since = now;
            noise.logged = 0;
        }
        if noise.logged < NOISE_MAX {
            noise.logged += 1;
            return self.out.log(Level::Warn, text);
        }
        noise.suppressed += 1;
        if noise.suppressed == 1 {
            let left = NOISE_WINDOW.saturating_sub(now.duration_since(noise.since));
            self.after(left, p, Timer::QuietOver(kind));
        }
    }

    /// The window of `kind` warnings is over: log how many were not.
    pub(super) fn quiet_over(&mut self, p: PluginId, kind: WarnKind) {
        let plugin = &mut self.plugins[p];
        let Some(noise) = plugin.noise.get_mut(&kind) else {
            return;
        };
        let n = std::mem::take(&mut noise.suppressed);
        noise.since = self.now;
        noise.logged = 0;
        if n > 0 {
            let name = &plugin.name;
            self.out.log(
                Level::Warn,
                format!("[{name}] {n} more warnings about {name} like the ones above were not logged (at most {NOISE_MAX} of a kind a second are)"),
            );
        }
    }

    /// The sandbox a new instance of `p` gets now.
    pub(crate) fn sandbox_for(&self, p: PluginId) -> Sandbox {
        let plugin = &self.plugins[p];
        match plugin.backend {
            BackendKind::Wasm => {
                let mut s = self.config.wasm.clone();
                s.developer = self.config.developer;
                s.rpc_socket = self.config.rpc_socket.clone();
                Sandbox::Wasm(s)
            }
            BackendKind::Native => Sandbox::Native(self.config.native.spec(&plugin.name)),
        }
    }

    /// Plugin `p`'s entry in `autoreload-status`.
    pub(crate) fn plugin_status(&self, p: PluginId) -> Value {
        let mut s = self.plugins[p].status(self.router.count(p));
        s["reload_mode"] = json!(self.reload_mode(p).name());
        s
    }

    /// A message from plugin `p`'s current generation, other than its
    /// start-up answers.
    pub(crate) fn on_plugin_message(&mut self, p: PluginId, number: Gen, m: Message) {
        let name = self.plugins[p].name.clone();
        match &m.kind {
            Kind::Response { id } => {
                let Some(f) = self.router.answered(p, number, id) else {
                    let w = format!("[{name}] answered {id}, which nobody asked it (or it answered twice): dropped");
                    return self.plugin_warn(p, WarnKind::Response, w);
                };
                if let ReqKind::Hook(hook) = &f.request.kind {
                    let answer = jsonrpc::parse(&m.raw);
                    let error = answer.as_ref().and_then(|v| v.get("error"));
                    if let Some(err) = error.filter(|_| !f.request.kind.must_reach_plugin()) {
                        self.out.log(
                            Level::Warn,
                            format!("[{name}] answered the {hook} hook with an error, which would make lightningd abort: taken as continue. The error: {err}"),
                        );
                        self.hook_continues(f.request);
                        return self.check_drained(p);
                    }
                    if !f.request.kind.must_reach_plugin() {
                        if let Some(why) = answer.as_ref().and_then(bad_hook_result) {
                            self.out.log(
                                Level::Warn,
                                format!("[{name}] answered the {hook} hook with {why}, which lightningd would reject (it aborts on most hooks): taken as continue. A hook answers {{\"result\": \"continue\"}} or one of the hook's own verbs. The answer: {}", preview(&m.raw, 300)),
                            );
                            self.hook_continues(f.request);
                            return self.check_drained(p);
                        }
                    }
                    let goes_on = answer
                        .as_ref()
                        .and_then(|v| v.pointer("/result/result"))
                        .is_some_and(|r| r == "continue");
                    if goes_on && !f.request.chain.is_empty() {
                        self.hook_continues(f.request);
                        return self.check_drained(p);
                    }
                }
                self.out.send(m.raw);
                self.check_drained(p);
            }
            Kind::Notification { method } => {
                // lightningd kills a plugin for a notification it cannot
                // use (no params, a log level it does not know, a message
                // for no request): such a one is logged here instead.
                let v = jsonrpc::parse(&m.raw).unwrap_or(Value::Null);
                let params = v.get("params").filter(|p| p.is_object());
                let Some(params) = params else {
                    let w = format!("[{name}] sent a '{method}' notification without \"params\" object (lightningd would have killed it for this): dropped: {}", preview(&m.raw, 200));
                    return self.plugin_warn(p, WarnKind::Notification, w);
                };
                match method.as_str() {
                    "log" => {
                        let text = params
                            .get("message")
                            .map(|t| t.as_str().map_or_else(|| t.to_string(), str::to_owned))
                            .unwrap_or_default();
                        // Read as lightningd reads it; the host logs at
                        // the same level, in the names its `log` takes.
                        let parsed = match params.get("level") {
                            None => Ok(LogLevel::Info),
                            Some(v @ Value::String(l)) => {
                                LogLevel::parse(l).ok_or_else(|| v.to_string())
                            }
                            Some(other) => Err(other.to_string()),
                        };
                        let (level, text) = match parsed {
                            Ok(LogLevel::Trace) => (Level::Trace, text),
                            Ok(LogLevel::Debug) => (Level::Debug, text),
                            Ok(LogLevel::Info) => (Level::Info, text),
                            Ok(LogLevel::Unusual) => (Level::Warn, text),
                            Ok(LogLevel::Broken) => (Level::Error, text),
                            Err(l) => (
                                Level::Warn,
                                format!("(log level {l} is not one of {}: lightningd would have killed it for this) {text}", LOG_LEVEL_NAMES.join(", ")),
                            ),
                        };
                        // Once the host closed its stdin, what it says is
                        // its way out (cln-plugin warns "Error reading from
                        // master"), caused by the reload: debug. An error
                        // stays an error.
                        let (level, text) = match level {
                            Level::Info | Level::Warn if self.plugins[p].stdin_closed(number) => (
                                Level::Debug,
                                format!(
                                    "(generation {number}, stopping; said at {}) {text}",
                                    level.as_str()
                                ),
                            ),
                            _ => (level, text),
                        };
                        self.out.log(level, format!("[{name}] {text}"));
                    }
                    "message" | "progress" if params.get("id").is_none() => {
                        let w = format!("[{name}] sent a '{method}' notification without \"params.id\" (the request it is about; lightningd would have killed it for this): dropped");
                        self.plugin_warn(p, WarnKind::Notification, w)
                    }
                    "message" | "progress" => self.out.send(m.raw),
                    custom => {
                        let declared = self.plugins[p]
                            .registered
                            .as_ref()
                            .is_some_and(|r| r.notifications.iter().any(|n| n == custom));
                        if declared {
                            self.out.send(m.raw);
                        } else {
                            let w = format!("[{name}] sent notification '{custom}' that its registered manifest does not declare: dropped");
                            self.plugin_warn(p, WarnKind::Notification, w);
                        }
                    }
                }
            }
            Kind::Request { id, method } => {
                let w = format!("[{name}] sent a request ({method}) on stdout; plugins call lightningd over its rpc socket instead");
                self.plugin_warn(p, WarnKind::Request, w);
                let msg =
                    "plugins cannot send requests on stdout: use lightningd's lightning-rpc socket";
                if let Some(g) = self.plugins[p].phase().generation() {
                    let gen = g.number;
                    self.instance(
                        p,
                        gen,
                        InstanceOp::Send(jsonrpc::error(id, ErrorKind::Protocol, msg)),
                    );
                }
            }
        }
    }
}

/// What is wrong with a hook's answer that lightningd cannot act on, if
/// anything: every hook's answer is an object with a `result` verb
/// (`rpc_command` may instead `replace` the command or `return` an answer).
/// Unknown verbs are left to lightningd: which verbs a hook takes is its
/// business, and a newer lightningd may know more.
fn bad_hook_result(answer: &Value) -> Option<String> {
    let Some(result) = answer.get("result") else {
        return Some("neither \"result\" nor \"error\"".into());
    };
    let Some(obj) = result.as_object() else {
        return Some(format!(
            "a result that is not an object ({})",
            kind_of(result)
        ));
    };
    match obj.get("result") {
        Some(Value::String(_)) => None,
        Some(other) => Some(format!(
            "a \"result\" verb that is not a string ({})",
            kind_of(other)
        )),
        None if obj.contains_key("replace") || obj.contains_key("return") => None,
        None => Some("no \"result\" verb in its result".into()),
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
