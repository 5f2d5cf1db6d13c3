//! Write Core Lightning plugins in Rust that run as WebAssembly under
//! cln-autoreload — or natively, from the same source.
//!
//! A plugin is a program that lightningd talks to over stdin/stdout in
//! JSON-RPC. This crate does that part: you declare options, rpc methods,
//! hooks and subscriptions on a [`Builder`] with plain closures, and
//! [`Builder::run`] answers lightningd until it goes away. No async
//! runtime, one thread, one message at a time; the only dependencies are
//! `serde` and `serde_json`.
//!
//! # Quick start
//!
//! ```no_run
//! use cln_autoreload_guest::{options::ConfigOption, param, Builder, Level};
//! use serde_json::{json, Value};
//!
//! fn main() {
//!     Builder::new()
//!         .option(ConfigOption::string("hello-greeting", "Hello", "What to say"))
//!         .rpcmethod("hello", "[name]", "Say hello", |p, params| {
//!             let name = param(&params, "name", 0).and_then(Value::as_str).unwrap_or("world");
//!             let greeting = p.option_str("hello-greeting").unwrap_or("Hello");
//!             Ok(json!({"greeting": format!("{greeting}, {name}!")}))
//!         })
//!         .hook("peer_connected", |p, params| {
//!             p.log(Level::Info, format!("peer {} connected", params["peer"]["id"]));
//!             json!({"result": "continue"})
//!         })
//!         .run();
//! }
//! ```
//!
//! Build it for WebAssembly and let cln-autoreload run (and reload) it:
//!
//! ```text
//! rustup target add wasm32-wasip1
//! cargo build --release --target wasm32-wasip1
//! lightningd --plugin=/path/to/cln-autoreload \
//!     --autoreload-plugin=target/wasm32-wasip1/release/my-plugin.wasm
//! ```
//!
//! A plain `cargo build` gives a native plugin for `--plugin=` as usual.
//! `examples/hello-wasm` in the cln-autoreload repository is a complete,
//! commented example.
//!
//! # The protocol, handled for you
//!
//! * `getmanifest` is answered from the builder ([`Builder::manifest`]),
//!   with `nonnumericids: true`; `shutdown` is always subscribed to.
//! * `init` stores the option values and configuration ([`Plugin::option`],
//!   [`Plugin::configuration`]) and calls [`Builder::on_init`].
//! * `setconfig` converts lightningd's string value to the option's type
//!   and calls [`Builder::on_setconfig`].
//! * Request ids are echoed byte for byte. An unknown method is answered
//!   with error -32601; a hook without a handler with `{"result":"continue"}`.
//! * Messages to lightningd are compact JSON followed by `"\n\n"`, flushed at
//!   once. Nothing else is ever written to stdout: use [`Plugin::log`], or
//!   `eprintln!` (stderr) for debugging.
//! * End of stdin or the `shutdown` notification: [`Builder::run`] returns.
//! * With [`Builder::keep_state`], cln-autoreload's `autoreload-save-state`
//!   and `autoreload-restore-state` requests (see below).
//!
//! # State that survives a reload
//!
//! A plugin keeps whatever it needs in a state of its own type `S`, given
//! to [`Builder::with_state`] and reached in every handler (rpc methods,
//! hooks, subscriptions, `on_init`, `on_setconfig`) as [`Plugin::state`]
//! and [`Plugin::state_mut`]. ([`Builder::new`] is `Builder<()>`: no
//! state, and handlers take a plain `&mut Plugin`.)
//!
//! When cln-autoreload reloads the plugin (a new build, a restart), that
//! state is lost with the old version unless the plugin asks to keep it:
//! with [`Builder::keep_state`], and `S: Serialize + DeserializeOwned`, the
//! old version's state is saved as JSON and the new version starts from it.
//!
//! ```no_run
//! use cln_autoreload_guest::Builder;
//! use serde::{Deserialize, Serialize};
//! use serde_json::json;
//!
//! #[derive(Default, Serialize, Deserialize)]
//! struct Seen {
//!     connects: u64,
//! }
//!
//! fn main() {
//!     Builder::with_state(Seen::default())
//!         .keep_state()
//!         .subscribe("connect", |p, _params| p.state_mut().connects += 1)
//!         .rpcmethod("seen", "", "Connections seen", |p, _params| {
//!             Ok(json!({"connects": p.state().connects}))
//!         })
//!         .run();
//! }
//! ```
//!
//! The state is saved with a schema number, 1 unless
//! [`Builder::state_schema`] says otherwise. The new version takes a saved
//! state of its own schema that deserializes into `S`; anything else goes
//! to [`Builder::migrate_state`] if there is one, and otherwise the new
//! version keeps its fresh state and logs a warning saying why. So adding a
//! field with `#[serde(default)]` needs nothing more; a change the old data
//! does not fit needs a higher schema and, to keep the data, a conversion.
//! Nothing is kept after a crash, nor without cln-autoreload: a plain
//! `--plugin=` starts fresh each time.
//!
//! # Calling lightningd
//!
//! [`Plugin::rpc`] makes one JSON-RPC call. Natively it uses lightningd's
//! unix socket. In WebAssembly (WASI preview 1 has no sockets) it calls two
//! functions the cln-autoreload host provides, in the import module `cln`:
//! `rpc_call(req_ptr, req_len) -> i32` (performs the call, returns the
//! response's length, negative on failure) and `rpc_result(buf_ptr,
//! buf_len) -> i32` (copies the response). The host may restrict which
//! methods a guest can call; a refusal is an ordinary [`RpcError`].
//!
//! # Panics and faults
//!
//! A handler that panics ends the plugin (in WebAssembly the instance
//! traps); cln-autoreload notices and restarts it. Return an [`RpcError`]
//! for anything that is the caller's fault.
//!
//! # Smaller `.wasm` files
//!
//! Sizes depend mostly on your release profile, which belongs to the
//! workspace root. For a plugin in its own workspace, this typically
//! halves the module:
//!
//! ```toml
//! [profile.release]
//! opt-level = "s"     # or "z"
//! lto = true
//! codegen-units = 1
//! panic = "abort"
//! strip = true
//! ```
//!
//! Measured for `examples/hello-wasm` (Rust 1.95): with cln-autoreload's own
//! profiles the module is about 6.1 MB in debug and 3.3 MB in release, but
//! most of that is DWARF debug info in custom sections (the code and data
//! are about 560 kB and 320 kB; `strip = true` alone gives the latter).
//! With the profile above it is about 180 kB.

#![warn(missing_docs)]

mod builder;
pub mod options;
mod plugin;
mod rpc;
mod state;
mod stream;

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use builder::{Builder, Hook};
pub use plugin::Plugin;
pub use serde_json;

/// A log level, for [`Plugin::log`] and [`Plugin::message`]: the names a
/// `log` notification may give, stated once in the protocol crate, `warn`
/// and `error` kept apart from `unusual` and `broken` as a plugin writes
/// them (`"warn".parse::<Level>()` is `Ok(Level::Warn)`).
pub use cln_protocol::LevelName as Level;

/// A JSON-RPC error: what an rpc method answers when it fails (it reaches
/// the caller unchanged), and what [`Plugin::rpc`] returns when lightningd
/// answers one.
///
/// ```
/// use cln_autoreload_guest::RpcError;
/// use serde_json::json;
///
/// let e = RpcError::new(1234, "nope").with_data(json!({"x": 1}));
/// assert_eq!(serde_json::to_value(&e).unwrap(), json!({"code": 1234, "message": "nope", "data": {"x": 1}}));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RpcError {
    /// The error code (JSON-RPC's, lightningd's, or your own).
    pub code: i64,
    /// What went wrong, for a human.
    pub message: String,
    /// Anything else, for a program.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

impl RpcError {
    /// JSON-RPC's "invalid params" code (-32602).
    pub const INVALID_PARAMS: i64 = cln_protocol::errors::INVALID_PARAMS;
    /// JSON-RPC's "method not found" code (-32601).
    pub const METHOD_NOT_FOUND: i64 = cln_protocol::errors::METHOD_NOT_FOUND;
    /// The code [`Plugin::rpc`] uses when the call could not be made at all
    /// (no socket, connection lost, not JSON).
    pub const TRANSPORT: i64 = -32000;

    /// An error with `code` and `message`, without data.
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        RpcError {
            code,
            message: message.into(),
            data: None,
        }
    }

    /// Adds `data` to the error.
    pub fn with_data(mut self, data: Value) -> Self {
        self.data = Some(data);
        self
    }

    /// An "invalid params" error (-32602): the caller got something wrong.
    ///
    /// ```
    /// use cln_autoreload_guest::RpcError;
    /// assert_eq!(RpcError::invalid_params("name must be a string").code, -32602);
    /// ```
    pub fn invalid_params(message: impl Into<String>) -> Self {
        RpcError::new(RpcError::INVALID_PARAMS, message)
    }

    pub(crate) fn transport(message: impl Into<String>) -> Self {
        RpcError::new(RpcError::TRANSPORT, message)
    }
}

impl fmt::Display for RpcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (code {})", self.message, self.code)
    }
}

impl std::error::Error for RpcError {}

/// A request parameter, given by name (`{"name": "Alice"}`, from
/// `lightning-cli -k` or other plugins) or by position (`["Alice"]`, from
/// plain `lightning-cli`). A `null` counts as absent.
///
/// ```
/// use cln_autoreload_guest::param;
/// use serde_json::json;
///
/// assert_eq!(param(&json!({"name": "Alice"}), "name", 0), Some(&json!("Alice")));
/// assert_eq!(param(&json!(["Alice"]), "name", 0), Some(&json!("Alice")));
/// assert_eq!(param(&json!([]), "name", 0), None);
/// assert_eq!(param(&json!({"name": null}), "name", 0), None);
/// ```
pub fn param<'a>(params: &'a Value, name: &str, index: usize) -> Option<&'a Value> {
    let value = match params {
        Value::Object(map) => map.get(name),
        Value::Array(list) => list.get(index),
        _ => None,
    };
    value.filter(|v| !v.is_null())
}

#[cfg(test)]
mod tests;
