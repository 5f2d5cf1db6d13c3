//! End-to-end tests: a real host process, real plugin processes, real
//! pipes and files, driven the way lightningd v26.06 drives a plugin
//! (directly byte for byte, or through the lightningd stand-in).

use cln_autoreload_tests::*;
use serde_json::{json, Value};
use std::time::Duration;

mod build_on_save;
/// Plugins written with the official cln-plugin crate; what a stopping
/// generation says.
mod clnplugin;
/// Unmodified plugins by others, from the lightningd/plugins mirror.
mod community;
mod dbwrite;
mod direct;
mod hostile;
mod hygiene;
mod node;
/// The protocol crate's facts checked against lightningd's source.
mod protocol;
mod rebuild;
mod rebuild_loop;
/// reckless (lightningd's plugin manager) installing the host.
mod reckless;
mod reload;
mod reregister;
/// Native plugins in a Landlock sandbox.
mod sandbox;
mod sandbox_rpc;
/// `cln-autoreload new`: the three templates, end to end.
mod scaffold;
mod several;
/// A short soak: steady mixed load while the plugin is reloaded and crashed
/// again and again. Nothing hangs, nothing is answered twice, and every
/// error says why. (The long version is the bench target's job.)
mod soak;
mod standin;
mod standin_bytes;
mod takes_in_init;
mod wasm;
mod wasm_cache;
