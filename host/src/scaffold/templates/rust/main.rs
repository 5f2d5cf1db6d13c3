//! {{name}}: a Core Lightning plugin written with the `cln-plugin` crate.
//!
//! Made by `cln-autoreload new`. Under cln-autoreload, a save of a source
//! file rebuilds it (`cargo build`) and the new binary replaces the old
//! one while lightningd keeps running:
//!
//! ```sh
//! cargo build
//! lightningd --plugin=/path/to/cln-autoreload \
//!     --autoreload-plugin={{plugin_path}}
//! lightning-cli {{name}}-hello Alice
//! ```
//!
//! stdout is the channel to lightningd: never `println!`; use `log`.

use cln_plugin::options::{ConfigOption, DefaultStringConfigOption};
use cln_plugin::{Builder, Error, Plugin, RpcMethodBuilder};
use serde_json::{json, Value};

/// Returned by `{{name}}-hello`. Change it and save: the rebuilt plugin
/// answers.
const VERSION: &str = "1";

/// `--{{name}}-greeting=Hi` on lightningd's command line or in its config.
const GREETING: DefaultStringConfigOption = ConfigOption::new_str_with_default(
    "{{name}}-greeting",
    "Hello",
    "What {{name}}-hello says before the name",
);

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let configured = Builder::new(tokio::io::stdin(), tokio::io::stdout())
        .option(GREETING)
        .rpcmethod_from_builder(
            RpcMethodBuilder::new("{{name}}-hello", hello)
                .usage("[name]")
                .description("Greet someone (default: world)"),
        )
        // A hook: lightningd waits for the answer; "continue" lets the
        // peer in.
        .hook("peer_connected", |_plugin: Plugin<()>, params: Value| async move {
            log::info!("peer_connected hook: {}", params["peer"]["id"]);
            Ok(json!({"result": "continue"}))
        })
        // A notification: lightningd tells, nobody answers.
        .subscribe("connect", |_plugin: Plugin<()>, params: Value| async move {
            log::info!("connect notification: {}", params["connect"]["id"]);
            Ok(())
        })
        .dynamic()
        .start(())
        .await?;
    match configured {
        Some(plugin) => {
            log::info!("{{name}} version {VERSION} started");
            plugin.join().await
        }
        // lightningd only asked for the manifest (`lightningd --help`).
        None => Ok(()),
    }
}

/// `{{name}}-hello [name]`: by position (`["Alice"]`) or by name
/// (`{"name": "Alice"}`, from `lightning-cli -k`).
async fn hello(plugin: Plugin<()>, params: Value) -> Result<Value, Error> {
    let name = match &params {
        Value::Array(args) => args.first(),
        Value::Object(args) => args.get("name"),
        _ => None,
    };
    let name = match name {
        None | Some(Value::Null) => "world",
        Some(Value::String(name)) => name,
        Some(other) => return Err(cln_plugin::anyhow!("name must be a string, not {other}")),
    };
    let greeting = plugin.option(&GREETING)?;
    Ok(json!({
        "greeting": format!("{greeting}, {name}!"),
        "version": VERSION,
    }))
}
