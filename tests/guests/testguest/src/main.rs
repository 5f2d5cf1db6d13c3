//! testguest: a WebAssembly guest plugin for cln-autoreload's end-to-end
//! tests, with well-behaved methods and fault behaviours (spin, memory bomb,
//! stack overflow, panic, sandbox probes).
//!
//! Build: `cargo build --target wasm32-wasip1 -p testguest` gives
//! `target/wasm32-wasip1/debug/testguest.wasm` (a plain `cargo build` gives
//! a native binary with the same behaviour, except the sandbox).
//!
//! Versions: `tg-version` reads its version from `VERSION_MARK`, 18 bytes
//! in the data section, `TGVERSION:` then 8 bytes of version padded with
//! `_`. The marker appears exactly once in the built `.wasm`, so a test
//! makes "version 2" by replacing `TGVERSION:v1______` with
//! `TGVERSION:v2______` in the file (same length), without a rebuild.
//! A version starting with `tgm` traps before answering getmanifest, one
//! starting with `tin` traps in init.
//!
//! Methods (params by name or by position, in the order shown):
//!
//! | method | answer |
//! | --- | --- |
//! | `tg-echo` | `{"version", "params", "id"}` |
//! | `tg-version` | `{"version"}` |
//! | `tg-spin` | never: loops forever without calling the host |
//! | `tg-bomb [max_mib]` | allocates and touches 1 MiB after 1 MiB forever (natively too: pass `max_mib` there), or up to `max_mib`, then `{"allocated_mib"}` |
//! | `tg-recurse` | never: unbounded recursion (stack overflow) |
//! | `tg-trap` | never: panics |
//! | `tg-read path` | `{"content"}`, or error -1 with the io error |
//! | `tg-rpc method [params]` | lightningd's result, or its error |
//! | `tg-big bytes` | `{"data": "xxx..."}` |
//! | `tg-env` | `{"env": {...}, "args": [...]}` |
//! | `tg-log [level] [message]` | `{}` after a `log` notification |
//! | `tg-notify [method] [payload]` | `{}` after a notification |
//! | `tg-progress` | `{}` after a `message` notification for this request |
//! | `tg-state` | what it has seen (see [`State`]) |
//! | `tg-spew bytes` | writes that many x's straight to stdout (1 MiB writes, no newline), then `{"spewed"}` |
//! | `tg-alloc mib` | never: one allocation of `mib` MiB (past the cap: out of memory) |
//! | `tg-rpc-raw request` | the whole response to `request` (a string, sent byte for byte through `cln.rpc_call`, bypassing the SDK; wasm only) |
//!
//! Options `tg-greeting` (string, "hi") and `tg-dyn` (int, 1, dynamic);
//! hooks `peer_connected` and `db_write` (recorded, continue; with a
//! directory granted as `/mirror`, `db_write` also mirrors the database
//! like `tests/plugins/dbmirror.py`; a
//! `peer_connected` whose `peer.id` is `spin`, `bomb` or `recurse` behaves
//! like the method of that name instead);
//! subscriptions `connect`, `shutdown`, `tg_custom` (recorded; with
//! `tg-greeting=say-on-shutdown:TEXT`, `shutdown` also logs TEXT at warn);
//! custom notification `tg_custom`.

use cln_autoreload_guest::options::ConfigOption;
use cln_autoreload_guest::serde_json::{json, Map, Value};
use cln_autoreload_guest::{param, Builder, Level, Plugin, RpcError};
use core::hint::black_box;

/// The version, patched in the `.wasm` by the tests. Read only through
/// `black_box`, so the bytes stay in the data section, in one piece.
static VERSION_MARK: [u8; 18] = *b"TGVERSION:v1______";

/// The version in `VERSION_MARK`, padding stripped (`"v1"`).
fn version() -> String {
    let mark: &[u8; 18] = black_box(&VERSION_MARK);
    // Skip the 10-byte prefix by position: spelling it out here would put a
    // second copy of the marker's text into the module.
    let tail = &mark[10..];
    let end = tail.iter().rposition(|&b| b != b'_').map_or(0, |i| i + 1);
    String::from_utf8_lossy(&tail[..end]).into_owned()
}

/// Everything the guest has seen, for `tg-state`.
#[derive(Default)]
struct State {
    /// `init`'s options as received.
    init_options: Value,
    /// Each hook request: `{"method", "id", "params"}`.
    hooks: Vec<Value>,
    /// Each subscribed notification: `{"method", "params"}`.
    notifications: Vec<Value>,
    /// Each accepted `setconfig`: `{"config", "val"}` (val converted to the
    /// option's type).
    setconfig: Vec<Value>,
    /// The database mirror, once a `db_write` found `/mirror`.
    mirror: Option<Mirror>,
}

type P = Plugin<State>;
type Method = fn(&mut P, Value) -> Result<Value, RpcError>;

fn main() {
    // Versions that fail at start-up, for the soak: "tgm…" traps before
    // answering getmanifest (which the host has sent by then), "tin…" in
    // init.
    if version().starts_with("tgm") {
        panic!(
            "testguest {}: trapping before answering getmanifest, as told",
            version()
        );
    }
    let mut builder = Builder::with_state(State::default())
        .option(ConfigOption::string("tg-greeting", "hi", "a greeting"))
        .option(ConfigOption::int("tg-dyn", 1, "a dynamic int").dynamic())
        .notification("tg_custom")
        .dynamic(true)
        .on_init(|p| {
            if version().starts_with("tin") {
                panic!("testguest {}: trapping in init, as told", version());
            }
            p.state_mut().init_options = Value::Object(p.options().clone());
            // Like `backup`, the mirror reads where it stands once, here
            // (or at the first write, if that comes before init), and
            // keeps it in memory: a version whose init ran while another
            // still appended would start behind.
            if std::path::Path::new(MIRROR_DIR).is_dir() && p.state().mirror.is_none() {
                p.state_mut().mirror = Some(Mirror::open());
            }
            Ok(())
        })
        .on_setconfig(|p, name, value| {
            p.state_mut()
                .setconfig
                .push(json!({"config": name, "val": value}));
            Ok(())
        });

    let methods: [(&str, &str, &str, Method); 17] = [
        (
            "tg-echo",
            "[params]",
            "returns its version, params and request id",
            tg_echo,
        ),
        (
            "tg-version",
            "",
            "returns the version patched into the module",
            tg_version,
        ),
        (
            "tg-spin",
            "",
            "loops forever without calling the host",
            tg_spin,
        ),
        (
            "tg-bomb",
            "[max_mib]",
            "allocates memory 1 MiB at a time, forever",
            tg_bomb,
        ),
        (
            "tg-recurse",
            "",
            "recurses until the stack overflows",
            tg_recurse,
        ),
        ("tg-trap", "", "panics", tg_trap),
        (
            "tg-read",
            "path",
            "reads a file (the sandbox should refuse)",
            tg_read,
        ),
        ("tg-rpc", "method [params]", "calls lightningd", tg_rpc),
        (
            "tg-big",
            "bytes",
            "returns a string of that many x's",
            tg_big,
        ),
        (
            "tg-env",
            "",
            "returns the environment and arguments",
            tg_env,
        ),
        (
            "tg-log",
            "[level] [message]",
            "sends a log notification",
            tg_log,
        ),
        (
            "tg-notify",
            "[method] [payload]",
            "sends a custom notification",
            tg_notify,
        ),
        (
            "tg-progress",
            "",
            "sends a message notification for this request",
            tg_progress,
        ),
        (
            "tg-state",
            "",
            "returns everything the guest has seen",
            tg_state,
        ),
        (
            "tg-spew",
            "bytes",
            "writes that many x's straight to stdout",
            tg_spew,
        ),
        (
            "tg-alloc",
            "mib",
            "allocates that many MiB at once",
            tg_alloc,
        ),
        (
            "tg-rpc-raw",
            "request",
            "sends raw bytes as a call to lightningd",
            tg_rpc_raw,
        ),
    ];
    for (name, usage, description, handler) in methods {
        builder = builder.rpcmethod(name, usage, description, handler);
    }

    builder
        .hook("peer_connected", |p, params| {
            record_hook(p, "peer_connected", params)
        })
        .hook("db_write", |p, params| {
            if std::path::Path::new(MIRROR_DIR).is_dir() {
                let m = p.state_mut().mirror.get_or_insert_with(Mirror::open);
                m.write(&params);
            }
            record_hook(p, "db_write", params)
        })
        .subscribe("connect", |p, params| {
            record_notification(p, "connect", params)
        })
        .subscribe("shutdown", |p, params| {
            let last_words = p
                .option_str("tg-greeting")
                .and_then(|g| g.strip_prefix("say-on-shutdown:"))
                .map(str::to_owned);
            if let Some(text) = last_words {
                p.log(Level::Warn, text);
            }
            record_notification(p, "shutdown", params)
        })
        .subscribe("tg_custom", |p, params| {
            record_notification(p, "tg_custom", params)
        })
        .run();
}

fn record_hook(p: &mut P, method: &str, params: Value) -> Value {
    let runaway: Option<Method> = match params["peer"]["id"].as_str() {
        Some("spin") => Some(tg_spin),
        Some("bomb") => Some(tg_bomb),
        Some("recurse") => Some(tg_recurse),
        _ => None,
    };
    if let Some(run) = runaway {
        // None of these returns.
        let _ = run(p, json!({}));
    }
    let id = p.request_id().cloned().unwrap_or(Value::Null);
    p.state_mut()
        .hooks
        .push(json!({"method": method, "id": id, "params": params}));
    json!({"result": "continue"})
}

fn record_notification(p: &mut P, method: &str, params: Value) {
    p.state_mut()
        .notifications
        .push(json!({"method": method, "params": params}));
}

fn tg_echo(p: &mut P, params: Value) -> Result<Value, RpcError> {
    Ok(json!({"version": version(), "params": params, "id": p.request_id()}))
}

fn tg_version(_p: &mut P, _params: Value) -> Result<Value, RpcError> {
    Ok(json!({"version": version()}))
}

fn tg_spin(_p: &mut P, _params: Value) -> Result<Value, RpcError> {
    let mut n: u64 = 0;
    loop {
        n = black_box(n).wrapping_add(1);
    }
}

fn tg_bomb(_p: &mut P, params: Value) -> Result<Value, RpcError> {
    const MIB: usize = 1 << 20;
    let max = param(&params, "max_mib", 0).and_then(Value::as_u64);
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        if max.is_some_and(|max| hoard.len() as u64 >= max) {
            return Ok(json!({"allocated_mib": hoard.len()}));
        }
        let mut chunk = vec![0u8; MIB];
        // Touch every page so the memory is really used.
        for i in (0..MIB).step_by(4096) {
            chunk[i] = 1;
        }
        hoard.push(black_box(chunk));
    }
}

fn tg_recurse(_p: &mut P, _params: Value) -> Result<Value, RpcError> {
    Ok(json!({"depth": recurse(0)}))
}

/// Recurses (in practice) forever, with a frame that cannot be optimised
/// away or turned into a loop.
#[inline(never)]
fn recurse(depth: u64) -> u64 {
    let frame = black_box([depth; 32]);
    if black_box(depth) == u64::MAX {
        return 0;
    }
    let below = recurse(black_box(depth + 1));
    black_box(below).wrapping_add(frame[depth as usize % 32])
}

fn tg_trap(_p: &mut P, _params: Value) -> Result<Value, RpcError> {
    panic!("tg-trap asked for a panic")
}

fn tg_read(_p: &mut P, params: Value) -> Result<Value, RpcError> {
    let path = param(&params, "path", 0)
        .and_then(Value::as_str)
        .ok_or_else(|| RpcError::invalid_params("path must be a string"))?;
    match std::fs::read_to_string(path) {
        Ok(content) => Ok(json!({"content": content})),
        Err(e) => Err(RpcError::new(-1, format!("{path}: {e}"))),
    }
}

fn tg_rpc(p: &mut P, params: Value) -> Result<Value, RpcError> {
    let method = param(&params, "method", 0)
        .and_then(Value::as_str)
        .ok_or_else(|| RpcError::invalid_params("method must be a string"))?
        .to_owned();
    let call_params = param(&params, "params", 1)
        .cloned()
        .unwrap_or_else(|| json!({}));
    p.rpc(&method, call_params)
}

fn tg_big(_p: &mut P, params: Value) -> Result<Value, RpcError> {
    let bytes = param(&params, "bytes", 0)
        .and_then(Value::as_u64)
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| RpcError::invalid_params("bytes must be a non-negative integer"))?;
    Ok(json!({"data": "x".repeat(bytes)}))
}

fn tg_env(_p: &mut P, _params: Value) -> Result<Value, RpcError> {
    let env: Map<String, Value> = std::env::vars_os()
        .map(|(k, v)| {
            (
                k.to_string_lossy().into_owned(),
                Value::String(v.to_string_lossy().into_owned()),
            )
        })
        .collect();
    let args: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    Ok(json!({"env": env, "args": args}))
}

fn tg_log(p: &mut P, params: Value) -> Result<Value, RpcError> {
    let level = match param(&params, "level", 0).and_then(Value::as_str) {
        None => Level::Info,
        Some(level) => level.parse().map_err(RpcError::invalid_params)?,
    };
    let message = match param(&params, "message", 1) {
        None => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    };
    p.log(level, message);
    Ok(json!({}))
}

fn tg_notify(p: &mut P, params: Value) -> Result<Value, RpcError> {
    let method = param(&params, "method", 0)
        .and_then(Value::as_str)
        .unwrap_or("tg_custom")
        .to_owned();
    let payload = param(&params, "payload", 1)
        .cloned()
        .unwrap_or_else(|| json!({}));
    p.notify(&method, payload);
    Ok(json!({}))
}

fn tg_progress(p: &mut P, _params: Value) -> Result<Value, RpcError> {
    p.message(Level::Info, "working");
    Ok(json!({}))
}

fn tg_state(p: &mut P, _params: Value) -> Result<Value, RpcError> {
    let s = p.state();
    Ok(json!({
        "version": version(),
        "init_options": s.init_options,
        "options": p.options(),
        "configuration": p.configuration(),
        "hooks": s.hooks,
        "notifications": s.notifications,
        "setconfig": s.setconfig,
    }))
}

fn tg_spew(_p: &mut P, params: Value) -> Result<Value, RpcError> {
    use std::io::Write;
    let bytes = param(&params, "bytes", 0)
        .and_then(Value::as_u64)
        .ok_or_else(|| RpcError::invalid_params("bytes must be a non-negative integer"))?;
    let chunk = vec![b'x'; 1 << 20];
    let mut out = std::io::stdout().lock();
    let mut left = bytes;
    while left > 0 {
        let n = usize::try_from(left.min(chunk.len() as u64)).unwrap_or(chunk.len());
        out.write_all(&chunk[..n])
            .map_err(|e| RpcError::new(-1, format!("stdout: {e}")))?;
        left -= n as u64;
    }
    out.flush()
        .map_err(|e| RpcError::new(-1, format!("stdout: {e}")))?;
    Ok(json!({"spewed": bytes}))
}

fn tg_alloc(_p: &mut P, params: Value) -> Result<Value, RpcError> {
    let mib = param(&params, "mib", 0)
        .and_then(Value::as_u64)
        .and_then(|n| usize::try_from(n).ok())
        .and_then(|n| n.checked_mul(1 << 20))
        .ok_or_else(|| RpcError::invalid_params("mib must be a non-negative integer"))?;
    let mut block = vec![0u8; mib];
    for i in (0..block.len()).step_by(4096) {
        block[i] = 1;
    }
    Ok(json!({"allocated_mib": black_box(block).len() >> 20}))
}

#[cfg(target_arch = "wasm32")]
#[link(wasm_import_module = "cln")]
extern "C" {
    fn rpc_call(req_ptr: *const u8, req_len: usize) -> i32;
    fn rpc_result(buf_ptr: *mut u8, buf_len: usize) -> i32;
}

#[cfg(target_arch = "wasm32")]
fn tg_rpc_raw(_p: &mut P, params: Value) -> Result<Value, RpcError> {
    let request = param(&params, "request", 0)
        .and_then(Value::as_str)
        .ok_or_else(|| RpcError::invalid_params("request must be a string"))?;
    // SAFETY: the host reads exactly `request.len()` bytes from a live slice.
    let len = unsafe { rpc_call(request.as_ptr(), request.len()) };
    let len = usize::try_from(len).map_err(|_| RpcError::new(-1, format!("rpc_call: {len}")))?;
    let mut buf = vec![0u8; len];
    // SAFETY: the host writes at most `buf.len()` bytes into a live buffer.
    let got = unsafe { rpc_result(buf.as_mut_ptr(), buf.len()) };
    let got = usize::try_from(got).map_err(|_| RpcError::new(-1, format!("rpc_result: {got}")))?;
    buf.truncate(got);
    cln_autoreload_guest::serde_json::from_slice(&buf)
        .map_err(|e| RpcError::new(-1, format!("not JSON: {e}")))
}

#[cfg(not(target_arch = "wasm32"))]
fn tg_rpc_raw(_p: &mut P, _params: Value) -> Result<Value, RpcError> {
    Err(RpcError::new(-1, "tg-rpc-raw needs the wasm host"))
}

/// Where a granted directory turns the `db_write` hook into a mirror of
/// lightningd's database (`autoreload-wasm-dir=HOST:/mirror`).
const MIRROR_DIR: &str = "/mirror";

/// The database mirror, as `tests/plugins/dbmirror.py` keeps it (see
/// there): `mirror.jsonl` holds every write once, `violations` what broke
/// the `backup` plugin's checks, `crash-next` (`before` or `after`) makes
/// the next write exit the instance without an answer.
struct Mirror {
    last: Option<Value>,
    first: bool,
}

impl Mirror {
    fn file(name: &str) -> String {
        format!("{MIRROR_DIR}/{name}")
    }

    fn open() -> Mirror {
        let last = std::fs::read_to_string(Self::file("mirror.jsonl"))
            .unwrap_or_default()
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .and_then(|l| cln_autoreload_guest::serde_json::from_str(l).ok());
        Mirror { last, first: true }
    }

    fn append(name: &str, line: &str) {
        use std::io::Write;
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(Self::file(name));
        match f.and_then(|mut f| writeln!(f, "{line}").and_then(|_| f.sync_all())) {
            Ok(()) => {}
            // Nothing to mirror into: the test sees the gap.
            Err(e) => eprintln!("mirror: {name}: {e}"),
        }
    }

    fn write(&mut self, params: &Value) {
        let crash = std::fs::read_to_string(Self::file("crash-next")).ok();
        if crash.is_some() {
            let _ = std::fs::remove_file(Self::file("crash-next"));
        }
        let crash = crash.as_deref().map(str::trim);
        if crash == Some("before") {
            std::process::exit(3);
        }
        let entry = json!({"data_version": params["data_version"], "writes": params["writes"]});
        let first = std::mem::replace(&mut self.first, false);
        let version = |v: &Value| v["data_version"].as_u64().unwrap_or(0);
        let keep = match &self.last {
            None if version(&entry) != 1 => {
                Self::append(
                    "violations",
                    &format!("a fresh mirror began at {}", entry["data_version"]),
                );
                true
            }
            None => true,
            Some(last) if *last == entry => {
                if !first {
                    Self::append(
                        "violations",
                        &format!("delivered twice to one instance: {}", entry["data_version"]),
                    );
                }
                false
            }
            Some(last) => {
                let (l, v) = (version(last), version(&entry));
                if v != l && v != l + 1 {
                    Self::append("violations", &format!("data_version {v} after {l}"));
                }
                true
            }
        };
        if keep {
            Self::append("mirror.jsonl", &entry.to_string());
            self.last = Some(entry);
        }
        if crash == Some("after") {
            std::process::exit(3);
        }
    }
}
