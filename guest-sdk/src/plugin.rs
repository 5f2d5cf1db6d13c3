//! [`Plugin`]: what a handler gets to talk to lightningd.

use std::any::Any;
use std::io::{self, Write};

use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::options::{ConfigOption, OptionType};
use crate::{rpc, Level, RpcError};

/// The running plugin, handed to every handler: option values, lightningd's
/// configuration, your own state `S`, and the ways to talk back to
/// lightningd (log, notifications, progress, RPC calls).
///
/// Everything runs on one thread, one message at a time: while a handler
/// runs, nothing else does, so [`Plugin::request_id`] is always the request
/// being handled.
///
/// ```no_run
/// use cln_autoreload_guest::{Builder, Level, Plugin, RpcError};
/// use serde_json::{json, Value};
///
/// Builder::new()
///     .rpcmethod("count-peers", "", "How many peers we have", |p: &mut Plugin, _params: Value| {
///         p.log(Level::Debug, "counting peers");
///         let peers = p.rpc("listpeers", json!({}))?;
///         let n = peers["peers"].as_array().map_or(0, Vec::len);
///         Ok(json!({"peers": n}))
///     })
///     .run();
/// ```
pub struct Plugin<S = ()> {
    state: S,
    pub(crate) decls: Vec<ConfigOption>,
    pub(crate) options: Map<String, Value>,
    pub(crate) configuration: Value,
    pub(crate) current: Option<Current>,
    pub(crate) out: Output,
    rpc_seq: u64,
}

/// The request being handled.
pub(crate) struct Current {
    pub(crate) raw_id: Box<RawValue>,
    pub(crate) id: Value,
}

/// Where messages to lightningd go, and the first write error (after which
/// nothing more is written and the main loop stops).
pub(crate) struct Output {
    writer: Box<dyn Sink>,
    pub(crate) failed: Option<io::Error>,
    /// Each message is serialized here, kept so that its room is reused.
    buf: Vec<u8>,
}

/// A writer that can be had back with its own type at the end.
pub(crate) trait Sink: Write {
    fn into_any(self: Box<Self>) -> Box<dyn Any>;
}

impl<W: Write + 'static> Sink for W {
    fn into_any(self: Box<Self>) -> Box<dyn Any> {
        self
    }
}

impl Output {
    pub(crate) fn new(writer: Box<dyn Sink>) -> Self {
        Output {
            writer,
            failed: None,
            buf: Vec::new(),
        }
    }

    /// The writer given to [`Output::new`], or the first write error.
    pub(crate) fn finish<W: 'static>(self) -> io::Result<W> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        match self.writer.into_any().downcast::<W>() {
            Ok(writer) => Ok(*writer),
            Err(_) => Err(io::Error::other("plugin: the output changed type")),
        }
    }

    /// Writes one message: compact JSON, then `"\n\n"`, flushed.
    pub(crate) fn send<T: Serialize + ?Sized>(&mut self, message: &T) {
        if self.failed.is_some() {
            return;
        }
        self.buf.clear();
        if let Err(e) = serde_json::to_writer(&mut self.buf, message) {
            self.failed = Some(e.into());
            return;
        }
        self.buf.extend_from_slice(cln_protocol::MESSAGE_SEPARATOR);
        if let Err(e) = self
            .writer
            .write_all(&self.buf)
            .and_then(|()| self.writer.flush())
        {
            self.failed = Some(e);
        }
    }

    /// Writes a notification (a message without an id).
    pub(crate) fn notify<P: Serialize>(&mut self, method: &str, params: P) {
        self.send(&Notification {
            jsonrpc: "2.0",
            method,
            params,
        });
    }
}

#[derive(Serialize)]
struct Notification<'a, P: Serialize> {
    jsonrpc: &'static str,
    method: &'a str,
    params: P,
}

#[derive(Serialize)]
struct LogParams<'a> {
    level: &'static str,
    message: &'a str,
}

#[derive(Serialize)]
struct MessageParams<'a> {
    id: &'a RawValue,
    level: &'static str,
    message: &'a str,
}

#[derive(Serialize)]
struct ProgressParams<'a> {
    id: &'a RawValue,
    num: u64,
    total: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    stage: Option<Stage>,
}

#[derive(Serialize)]
struct Stage {
    num: u64,
    total: u64,
}

static FALSE: Value = Value::Bool(false);

impl<S> Plugin<S> {
    pub(crate) fn new(state: S, decls: Vec<ConfigOption>, out: Output) -> Self {
        Plugin {
            state,
            decls,
            options: Map::new(),
            configuration: Value::Null,
            current: None,
            out,
            rpc_seq: 0,
        }
    }

    /// Your state, as given to [`Builder::with_state`](crate::Builder::with_state)
    /// and changed since, or as the previous version left it when
    /// cln-autoreload reloaded a plugin that keeps its state
    /// ([`Builder::keep_state`](crate::Builder::keep_state)).
    pub fn state(&self) -> &S {
        &self.state
    }

    /// Your state, to change.
    ///
    /// ```no_run
    /// use cln_autoreload_guest::Builder;
    /// use serde_json::json;
    ///
    /// Builder::with_state(0u64)
    ///     .rpcmethod("count", "", "Counts calls", |p, _params| {
    ///         *p.state_mut() += 1;
    ///         Ok(json!({"calls": *p.state()}))
    ///     })
    ///     .run();
    /// ```
    pub fn state_mut(&mut self) -> &mut S {
        &mut self.state
    }

    /// An option's value: what lightningd passed in `init` (with its JSON
    /// type: string, number, bool, or an array for `multi` options), as
    /// changed since by `setconfig`. An unset flag is `false`; an option
    /// lightningd has not given (before `init`, or without a default) is its
    /// declared default, or `None`. Undeclared names are `None`.
    pub fn option(&self, name: &str) -> Option<&Value> {
        if let Some(value) = self.options.get(name) {
            return Some(value);
        }
        let decl = self.decls.iter().find(|d| d.name() == name)?;
        match decl.kind() {
            OptionType::Flag if !decl.is_multi() => Some(&FALSE),
            _ => decl.default_value(),
        }
    }

    /// A string option's value ([`Plugin::option`] as a `&str`).
    ///
    /// ```no_run
    /// # use cln_autoreload_guest::Plugin;
    /// # fn f(p: &Plugin) {
    /// let greeting = p.option_str("hello-greeting").unwrap_or("Hello");
    /// # }
    /// ```
    pub fn option_str(&self, name: &str) -> Option<&str> {
        self.option(name).and_then(Value::as_str)
    }

    /// An int option's value ([`Plugin::option`] as an `i64`).
    pub fn option_i64(&self, name: &str) -> Option<i64> {
        self.option(name).and_then(Value::as_i64)
    }

    /// A bool or flag option's value ([`Plugin::option`] as a `bool`).
    pub fn option_bool(&self, name: &str) -> Option<bool> {
        self.option(name).and_then(Value::as_bool)
    }

    /// All option values lightningd gave: `init`'s `options` exactly as
    /// received, then changed by each accepted `setconfig`.
    pub fn options(&self) -> &Map<String, Value> {
        &self.options
    }

    /// `init`'s `configuration` (`lightning-dir`, `rpc-file`, `network`,
    /// `feature_set`, ...); `null` before `init`.
    pub fn configuration(&self) -> &Value {
        &self.configuration
    }

    /// The id of the request being handled (an rpc method, a hook, `init` or
    /// `setconfig`), exactly as lightningd sent it; `None` inside a
    /// notification handler.
    pub fn request_id(&self) -> Option<&Value> {
        self.current.as_ref().map(|c| &c.id)
    }

    /// Writes `message` to lightningd's log at `level` (a `log`
    /// notification).
    ///
    /// ```no_run
    /// # use cln_autoreload_guest::{Level, Plugin};
    /// # fn f(p: &mut Plugin) {
    /// p.log(Level::Info, "started");
    /// p.log(Level::Debug, format!("{} peers", 3));
    /// # }
    /// ```
    pub fn log(&mut self, level: Level, message: impl AsRef<str>) {
        self.out.notify(
            "log",
            LogParams {
                level: level.as_str(),
                message: message.as_ref(),
            },
        );
    }

    /// Sends a notification `method` with `params`: one of your declared
    /// custom notifications ([`Builder::notification`](crate::Builder::notification)).
    /// lightningd passes it to the plugins that subscribed to it, as
    /// `{"method": method, "origin": <your plugin>, "params": params}`.
    pub fn notify(&mut self, method: &str, params: Value) {
        self.out.notify(method, params);
    }

    /// Sends a `message` notification about the request being handled:
    /// `lightning-cli` shows it (as `# text`) while it waits for the answer.
    /// lightningd expects `level` [`Level::Info`] or [`Level::Debug`]. Does
    /// nothing outside a request ([`Plugin::request_id`] is `None`).
    pub fn message(&mut self, level: Level, text: impl AsRef<str>) {
        let Some(current) = &self.current else { return };
        self.out.notify(
            "message",
            MessageParams {
                id: &current.raw_id,
                level: level.as_str(),
                message: text.as_ref(),
            },
        );
    }

    /// Sends a `progress` notification about the request being handled:
    /// step `num` (from 0, below `total`) of `total`, optionally within
    /// stage `stage.0` of `stage.1`. Does nothing outside a request.
    ///
    /// ```no_run
    /// # use cln_autoreload_guest::Plugin;
    /// # fn f(p: &mut Plugin) {
    /// for i in 0..10 {
    ///     p.progress(i, 10, None);
    /// }
    /// # }
    /// ```
    pub fn progress(&mut self, num: u64, total: u64, stage: Option<(u64, u64)>) {
        let Some(current) = &self.current else { return };
        self.out.notify(
            "progress",
            ProgressParams {
                id: &current.raw_id,
                num,
                total,
                stage: stage.map(|(num, total)| Stage { num, total }),
            },
        );
    }

    /// Calls lightningd's rpc method `method` with `params` (`json!({})`
    /// for none) and returns its result, or its error.
    ///
    /// Natively this connects to the unix socket `rpc-file` from `init`.
    /// Under cln-autoreload's WebAssembly host it goes through the host,
    /// which may refuse methods that are not on its allow-list (that comes
    /// back as an ordinary [`RpcError`]). When the call cannot be made at
    /// all (no socket, before `init`, connection lost), the error has code
    /// [`RpcError::TRANSPORT`].
    pub fn rpc(&mut self, method: &str, params: Value) -> Result<Value, RpcError> {
        self.rpc_seq += 1;
        let rpc_file = self.configuration.get("rpc-file").and_then(Value::as_str);
        rpc::call(rpc_file, self.rpc_seq, method, params)
    }
}
