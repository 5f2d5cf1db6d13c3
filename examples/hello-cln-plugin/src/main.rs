//! hello-cln-plugin: a small Core Lightning plugin written with the
//! official `cln-plugin` crate, the SDK most Rust plugin authors use.
//!
//! Run it under cln-autoreload like any plugin:
//!
//! ```sh
//! cargo build -p hello-cln-plugin
//! lightningd ... --plugin=/path/to/cln-autoreload \
//!   --autoreload-plugin=$PWD/target/debug/hello-cln-plugin
//! lightning-cli hello-clnp Alice   # {"greeting": "Hello, Alice!", "version": "1"}
//! # change VERSION below, then:
//! cargo build -p hello-cln-plugin
//! lightning-cli hello-clnp Alice   # {"greeting": "Hello, Alice!", "version": "2"}
//! ```
//!
//! When it is reloaded, cln-autoreload closes the old process's stdin, and
//! cln-plugin says `Plugin loop returned error Error reading from master`
//! at warn on its way out: cln-autoreload logs that at debug, since it is
//! the reload itself and not news.

use cln_plugin::options::{ConfigOption, DefaultStringConfigOption};
use cln_plugin::{Builder, Error, Plugin, RpcMethodBuilder};
use serde_json::{json, Value};

/// Returned by `hello-clnp`, so you can see which build answered.
const VERSION: &str = "1";

/// `--hello-clnp-greeting=...`: what it says before the name.
const GREETING: DefaultStringConfigOption = ConfigOption::new_str_with_default(
    "hello-clnp-greeting",
    "Hello",
    "What hello-clnp says before the name",
);

// One thread is plenty for a plugin (and needs only tokio's `rt` feature).
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let configured = Builder::new(tokio::io::stdin(), tokio::io::stdout())
        .option(GREETING)
        // lightningd requires a usage string for every method.
        .rpcmethod_from_builder(
            RpcMethodBuilder::new("hello-clnp", hello)
                .usage("[name]")
                .description("Greet someone (default: world)"),
        )
        // It may be started and stopped while lightningd runs.
        .dynamic()
        .start(())
        .await?;
    match configured {
        Some(plugin) => {
            log::info!("hello-cln-plugin version {VERSION} started");
            plugin.join().await
        }
        // lightningd only asked for the manifest (e.g. `lightningd --help`).
        None => Ok(()),
    }
}

/// `hello-clnp [name]`: params come by position (`["Alice"]`) or by name
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
