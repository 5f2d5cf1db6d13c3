//! cln-autoreload: a Core Lightning plugin that runs the plugins you are
//! developing, forwards everything between them and lightningd, and reloads
//! each one the moment its file changes.
pub mod backend;
pub mod builds;
pub mod decode;
pub mod dev;
pub mod framing;
#[cfg(any(test, fuzzing))]
pub mod fuzzing;
pub mod handover;
pub mod host;
pub mod ids;
pub mod init;
pub mod jsonrpc;
pub mod keep;
pub mod link;
pub mod locate;
pub mod manifest;
pub mod options;
pub mod outbox;
pub mod rebuild;
pub mod reregister;
pub mod router;
pub mod rpc;
pub mod rpc_allow;
pub mod rpc_fence;
pub mod rpc_filter;
pub mod sandbox;
pub mod scaffold;
pub mod supervisor;
pub mod warning;
pub mod watch;

/// The maps looked up for every message, with a fast hasher: ids come from
/// lightningd and from the plugins being developed, not from strangers.
pub type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
