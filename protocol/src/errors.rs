//! JSON-RPC error codes that lightningd uses and this workspace answers
//! with too (`common/jsonrpc_errors.h` `enum jsonrpc_errcode` at v26.06).

/// The request is not a valid JSON-RPC request (`JSONRPC2_INVALID_REQUEST`,
/// line 12).
pub const INVALID_REQUEST: i64 = -32600;

/// No such method (`JSONRPC2_METHOD_NOT_FOUND`, line 13).
pub const METHOD_NOT_FOUND: i64 = -32601;

/// The method exists but its parameters are wrong
/// (`JSONRPC2_INVALID_PARAMS`, line 14).
pub const INVALID_PARAMS: i64 = -32602;

/// The plugin handling the request exited before it answered
/// (`PLUGIN_TERMINATED`, line 29). lightningd answers pending calls with
/// it ([`PLUGIN_TERMINATED_MESSAGE`]), and a hook answered with it counts
/// as `continue` (except `db_write`).
pub const PLUGIN_TERMINATED: i64 = -4;

/// The message lightningd sends with [`PLUGIN_TERMINATED`] for each call
/// a dead plugin left unanswered (`lightningd/plugin.c`
/// `plugin_terminated_fail_req`, lines 224–241).
pub const PLUGIN_TERMINATED_MESSAGE: &str = "Plugin terminated before replying to RPC call.";
