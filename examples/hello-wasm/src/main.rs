//! hello-wasm: a Core Lightning plugin written with cln-autoreload-guest.
//!
//! The same source builds to WebAssembly, for cln-autoreload to run and
//! hot-reload, or to a native binary for a plain `--plugin=`:
//!
//! ```text
//! cargo build --target wasm32-wasip1 -p hello-wasm
//! lightningd --plugin=/path/to/cln-autoreload \
//!     --autoreload-plugin=target/wasm32-wasip1/debug/hello-wasm.wasm
//! lightning-cli hello Alice     # {"calls": 1, "greeting": "Hello, Alice!", "version": "1"}
//! ```
//!
//! Demo: change `VERSION` below, run the same `cargo build` again, and the
//! next `lightning-cli hello` answers with the new version while `calls`
//! keeps counting: the old version handed its state over to the new one.
//! lightningd keeps running throughout.
//!
//! What it shows:
//! - an option, `--hello-greeting` (default "Hello");
//! - an rpc method, `hello [name]`;
//! - state that survives a reload: the number of `hello` calls since the
//!   node started (a crash, or a plain `--plugin=`, starts again from 0);
//! - a hook, `peer_connected`, and a subscription, `connect`;
//! - a call back into lightningd, `hello-info` (calls `getinfo`).

use cln_autoreload_guest::options::ConfigOption;
use cln_autoreload_guest::serde_json::{json, Value};
use cln_autoreload_guest::{param, Builder, Level, Plugin, RpcError};

/// Returned by `hello`, so you can see which build answered. Edit, rebuild.
const VERSION: &str = "1";

/// What the plugin keeps across reloads: the number of `hello` calls. Any
/// type that is serde `Serialize` and `Deserialize` will do; a struct
/// deriving both (with `serde` as a dependency) works the same way.
type HelloCalls = u64;

fn main() {
    // Every handler gets this state as `p.state()` / `p.state_mut()`.
    Builder::with_state(HelloCalls::default())
        // Hand it to the next version when cln-autoreload reloads us.
        .keep_state()
        // `--hello-greeting=Hi` on lightningd's command line (or in its
        // config file); lightningd passes the value in `init`.
        .option(ConfigOption::string(
            "hello-greeting",
            "Hello",
            "What hello says before the name",
        ))
        // `lightning-cli hello [name]`.
        .rpcmethod("hello", "[name]", "Greet someone (default: world)", hello)
        // `lightning-cli hello-info`: asks lightningd for its node id.
        .rpcmethod(
            "hello-info",
            "",
            "Our node id and alias, from getinfo",
            hello_info,
        )
        // Called whenever a peer connects. A hook must answer; "continue"
        // lets lightningd go on as if we were not there.
        .hook("peer_connected", |p, params| {
            let id = params["peer"]["id"].as_str().unwrap_or("?");
            p.log(Level::Info, format!("peer_connected hook: {id}"));
            json!({"result": "continue"})
        })
        // A notification: lightningd just tells us, we answer nothing.
        .subscribe("connect", |p, params| {
            // v26.06 nests the fields under "connect"; older versions did not.
            let connect = params.get("connect").unwrap_or(&params);
            let id = connect["id"].as_str().unwrap_or("?");
            p.log(Level::Info, format!("connect notification: {id}"));
        })
        // We may be started and stopped while lightningd runs.
        .dynamic(true)
        // Answer lightningd until it says goodbye.
        .run();
}

/// `hello [name]`: params come by position (`["Alice"]`) or by name
/// (`{"name": "Alice"}`, from `lightning-cli -k`).
fn hello(p: &mut Plugin<HelloCalls>, params: Value) -> Result<Value, RpcError> {
    let name = match param(&params, "name", 0) {
        None => "world",
        Some(Value::String(name)) => name,
        // An error goes back to the caller as is: no crash, no log spam.
        Some(_) => return Err(RpcError::invalid_params("name must be a string")),
    };
    // This call included: the first one answers 1.
    *p.state_mut() += 1;
    let greeting = p.option_str("hello-greeting").unwrap_or("Hello");
    Ok(json!({
        "greeting": format!("{greeting}, {name}!"),
        "version": VERSION,
        "calls": p.state(),
    }))
}

/// `hello-info`: one JSON-RPC call back into lightningd. In WebAssembly it
/// goes through cln-autoreload (which may only allow some methods);
/// natively over lightningd's unix socket. `?` passes lightningd's error on.
fn hello_info(p: &mut Plugin<HelloCalls>, _params: Value) -> Result<Value, RpcError> {
    let info = p.rpc("getinfo", json!({}))?;
    Ok(json!({
        "node_id": info["id"],
        "alias": info["alias"],
    }))
}
