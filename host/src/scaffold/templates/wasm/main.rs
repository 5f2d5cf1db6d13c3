//! {{name}}: a Core Lightning plugin written with cln-autoreload-guest,
//! built for WebAssembly (`wasm32-wasip1`, set in .cargo/config.toml).
//!
//! Made by `cln-autoreload new`. cln-autoreload runs the module inside
//! itself; a save of a source file rebuilds it (`cargo build`), and the
//! new module takes over, with the old one's state, while lightningd keeps
//! running:
//!
//! ```sh
//! cargo build
//! lightningd --plugin=/path/to/cln-autoreload \
//!     --autoreload-plugin={{plugin_path}}
//! lightning-cli {{name}}-hello Alice
//! ```

use cln_autoreload_guest::options::ConfigOption;
use cln_autoreload_guest::serde_json::{json, Value};
use cln_autoreload_guest::{param, Builder, Level, Plugin, RpcError};

/// Returned by `{{name}}-hello`. Change it and save: the rebuilt module
/// answers, and `calls` keeps counting.
const VERSION: &str = "1";

/// What a reload hands from the old version to the new one: the number of
/// `{{name}}-hello` calls. Any serde `Serialize + Deserialize` type will do.
type Calls = u64;

fn main() {
    Builder::with_state(Calls::default())
        .keep_state()
        // `--{{name}}-greeting=Hi` on lightningd's command line or in its
        // config file.
        .option(ConfigOption::string(
            "{{name}}-greeting",
            "Hello",
            "What {{name}}-hello says before the name",
        ))
        .rpcmethod(
            "{{name}}-hello",
            "[name]",
            "Greet someone (default: world)",
            hello,
        )
        // A hook: lightningd waits for the answer; "continue" lets the
        // peer in.
        .hook("peer_connected", |p, params| {
            let id = params["peer"]["id"].as_str().unwrap_or("?");
            p.log(Level::Info, format!("peer_connected hook: {id}"));
            json!({"result": "continue"})
        })
        // A notification: lightningd tells, nobody answers.
        .subscribe("connect", |p, params| {
            let id = params["connect"]["id"].as_str().unwrap_or("?");
            p.log(Level::Info, format!("connect notification: {id}"));
        })
        .dynamic(true)
        .run();
}

/// `{{name}}-hello [name]`: by position (`["Alice"]`) or by name
/// (`{"name": "Alice"}`, from `lightning-cli -k`).
fn hello(p: &mut Plugin<Calls>, params: Value) -> Result<Value, RpcError> {
    let name = match param(&params, "name", 0) {
        None => "world",
        Some(Value::String(name)) => name,
        Some(_) => return Err(RpcError::invalid_params("name must be a string")),
    };
    *p.state_mut() += 1;
    let greeting = p.option_str("{{name}}-greeting").unwrap_or("Hello");
    Ok(json!({
        "greeting": format!("{greeting}, {name}!"),
        "version": VERSION,
        "calls": p.state(),
    }))
}
