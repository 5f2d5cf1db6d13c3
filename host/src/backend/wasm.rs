//! WebAssembly plugins: a WASI preview 1 module run by wasmtime inside the
//! host, on a thread of its own, with its stdio piped to the same pumps as
//! a native child's.
//!
//! Owns: engines (Winch or Cranelift), compiling and caching modules,
//! the sandbox (no preopened directory unless granted, a memory cap, a CPU
//! deadline per request, an allow-list for lightningd rpc calls), the
//! `cln.rpc_call`/`cln.rpc_result` imports, and stopping an instance
//! whatever it is doing. Must not: interpret the plugin protocol.
//!
//! Each instance runs as an async call on its own current-thread runtime:
//! a guest blocked reading stdin is just a pending future, so closing its
//! stdin or dropping the call stops it at once, and a guest computing away
//! is interrupted by the epoch callback.

use super::{
    read_messages, spawn_stderr_lines, Control, Exit, Instance, InstanceEvent, SandboxStop,
};
use crate::framing::write_messages;
use anyhow::{anyhow, Context as _};
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use wasmtime::{
    Caller, Config, Engine, Linker, Module, ResourceLimiter, Store, Strategy, UpdateDeadline,
};
use wasmtime_wasi::cli::{AsyncStdinStream, AsyncStdoutStream};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::{FsPerms, I32Exit, WasiCtxBuilder};

pub use super::wasm_settings::{Compiler, GrantedDir, Settings, Urgency};

/// Tells an instance's thread to stop now.
#[derive(Debug, Default)]
pub struct Stop {
    flag: AtomicBool,
    wake: Notify,
}

impl Stop {
    /// Stops the instance: a pending call is dropped, running code traps at
    /// its next epoch check.
    pub fn stop(&self) {
        self.flag.store(true, Ordering::SeqCst);
        self.wake.notify_one();
    }
}

const EPOCH_TICK: Duration = Duration::from_millis(5);

struct Engines {
    engine: Engine,
    linker: Linker<State>,
}

fn engines(compiler: Compiler) -> anyhow::Result<&'static Engines> {
    static WINCH: OnceLock<Result<Engines, String>> = OnceLock::new();
    static CRANELIFT: OnceLock<Result<Engines, String>> = OnceLock::new();
    let cell = match compiler {
        Compiler::Winch => &WINCH,
        Compiler::Cranelift => &CRANELIFT,
    };
    cell.get_or_init(|| make_engines(compiler).map_err(|e| format!("{e:#}")))
        .as_ref()
        .map_err(|e| anyhow!("cannot set up wasmtime: {e}"))
}

fn make_engines(compiler: Compiler) -> anyhow::Result<Engines> {
    let mut config = Config::new();
    config.epoch_interruption(true).strategy(match compiler {
        Compiler::Winch => Strategy::Winch,
        Compiler::Cranelift => Strategy::Cranelift,
    });
    let engine = Engine::new(&config).map_err(|e| anyhow!("{e:#}"))?;
    let ticker = engine.weak();
    std::thread::Builder::new()
        .name(format!("wasm-epoch-{}", compiler.name()))
        .spawn(move || {
            while let Some(engine) = ticker.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })?;
    let mut linker: Linker<State> = Linker::new(&engine);
    wasmtime_wasi::p1::add_to_linker_async(&mut linker, |s: &mut State| &mut s.wasi)
        .map_err(|e| anyhow!("{e:#}"))?;
    linker
        .func_wrap_async(
            "cln",
            "rpc_call",
            |caller: Caller<'_, State>, (ptr, len): (i32, i32)| {
                Box::new(rpc_call(caller, ptr, len))
            },
        )
        .map_err(|e| anyhow!("{e:#}"))?;
    linker
        .func_wrap(
            "cln",
            "rpc_result",
            |mut caller: Caller<'_, State>, ptr: i32, len: i32| -> i32 {
                let Some(mem) = caller.get_export("memory").and_then(|e| e.into_memory()) else {
                    return -1;
                };
                let pending = caller.data_mut().rpc_pending.take().unwrap_or_default();
                let n = pending.len().min(usize::try_from(len).unwrap_or(0));
                let Ok(at) = usize::try_from(ptr) else {
                    return -1;
                };
                if mem.write(&mut caller, at, &pending[..n]).is_err() {
                    return -1;
                }
                i32::try_from(n).unwrap_or(-1)
            },
        )
        .map_err(|e| anyhow!("{e:#}"))?;
    Ok(Engines { engine, linker })
}

/// Per-instance state inside the store.
struct State {
    wasi: WasiP1Ctx,
    memory_cap: usize,
    memory_refused: Option<usize>,
    rpc_socket: Option<PathBuf>,
    rpc_allow: Option<Vec<String>>,
    rpc_pending: Option<Vec<u8>>,
    io: Arc<IoClock>,
    warn: Box<dyn Fn(String) + Send + Sync>,
}

impl ResourceLimiter for State {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_cap {
            self.memory_refused = Some(desired);
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}

/// When the guest last did I/O (read a request, wrote an answer, got an
/// rpc result): the CPU deadline counts from there.
#[derive(Debug)]
struct IoClock {
    start: Instant,
    last_ms: AtomicU64,
}

impl IoClock {
    fn new() -> IoClock {
        IoClock {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }
    fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }
    fn idle(&self) -> Duration {
        let now = self.start.elapsed();
        now.saturating_sub(Duration::from_millis(self.last_ms.load(Ordering::Relaxed)))
    }
}

/// Wraps a stdio pipe so every completed read or write counts as I/O.
struct Tracked<T> {
    inner: T,
    clock: Arc<IoClock>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Tracked<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if r.is_ready() {
            self.clock.touch();
        }
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Tracked<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if r.is_ready() {
            self.clock.touch();
        }
        r
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The last module compiled for each plugin file, so a restart of the same
/// content (a crash, `autoreload-restart`, a `touch`) skips compiling.
type ModuleCache = Mutex<HashMap<PathBuf, (u64, Compiler, Module)>>;

fn cache() -> &'static ModuleCache {
    static CACHE: OnceLock<ModuleCache> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

fn module_for(
    path: &Path,
    compiler: Compiler,
    urgency: Urgency,
    report: &impl Fn(InstanceEvent),
) -> anyhow::Result<(Module, Compiler)> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    let hash = h.finish();
    if let Ok(c) = cache().lock() {
        if let Some((h, comp, m)) = c.get(path) {
            if *h == hash && *comp == compiler {
                report(InstanceEvent::Compiled {
                    millis: 0.0,
                    cached: true,
                });
                return Ok((m.clone(), compiler));
            }
        }
    }
    let t = Instant::now();
    if !bytes.starts_with(b"\0asm") {
        anyhow::bail!("{} is not a wasm module (no \\0asm header)", path.display());
    }
    let (module, used) = match compile(&engines(compiler)?.engine, &bytes, urgency) {
        Ok(m) => (m, compiler),
        // Winch does not support every proposal: fall back, and say so.
        Err(e) if compiler == Compiler::Winch => {
            report(InstanceEvent::Warn(format!(
                "Winch cannot compile it ({e:#}); using Cranelift"
            )));
            let m = compile(&engines(Compiler::Cranelift)?.engine, &bytes, urgency)
                .map_err(|e| anyhow!("{e:#}"))?;
            (m, Compiler::Cranelift)
        }
        Err(e) => return Err(anyhow!("{e:#}")),
    };
    report(InstanceEvent::Compiled {
        millis: t.elapsed().as_secs_f64() * 1000.0,
        cached: false,
    });
    if let Ok(mut c) = cache().lock() {
        c.insert(path.to_path_buf(), (hash, compiler, module.clone()));
    }
    Ok((module, used))
}

/// Compiles a module. In the background (a version serves meanwhile):
/// on a thread of its own at the lowest CPU priority, and wasmtime spreads
/// the functions over rayon's pool, whose threads are lowered too (see
/// [`compile_pool`]): the serving version's calls must not wait for the
/// compiler; on an idle machine this costs nothing, on a busy one the swap
/// comes later instead of every call stalling. Urgently (no version
/// serves, calls wait for this one): at normal priority, on a pool of its
/// own, since starving it on a busy machine would only keep the plugin
/// down longer.
fn compile(engine: &Engine, bytes: &[u8], urgency: Urgency) -> wasmtime::Result<Module> {
    if urgency == Urgency::Urgent {
        static URGENT: OnceLock<Option<rayon::ThreadPool>> = OnceLock::new();
        let pool = URGENT.get_or_init(|| {
            rayon::ThreadPoolBuilder::new()
                .thread_name(|i| format!("wasm-compile-now-{i}"))
                .build()
                .ok()
        });
        return match pool {
            // Nested parallel work runs on the pool it is installed in.
            Some(pool) => pool.install(|| Module::new(engine, bytes)),
            None => Module::new(engine, bytes),
        };
    }

    compile_pool();
    std::thread::scope(|scope| {
        let compiling = std::thread::Builder::new()
            .name("wasm-compile".into())
            .spawn_scoped(scope, || {
                lower_priority();
                Module::new(engine, bytes)
            });
        match compiling {
            Ok(handle) => handle
                .join()
                .unwrap_or_else(|_| Err(wasmtime::Error::msg("the compiler panicked"))),
            // No thread to be had: compile here rather than not at all.
            Err(_) => Module::new(engine, bytes),
        }
    })
}

/// Makes rayon's global pool, which wasmtime's parallel compilation uses,
/// out of low-priority threads (once; if something else made the pool
/// first, it stays as it is).
fn compile_pool() {
    static POOL: OnceLock<()> = OnceLock::new();
    POOL.get_or_init(|| {
        let _ = rayon::ThreadPoolBuilder::new()
            .thread_name(|i| format!("wasm-compile-{i}"))
            .start_handler(|_| lower_priority())
            .build_global();
    });
}

/// Sets the calling thread's nice value to 19. On Linux a thread has a
/// nice value of its own, so this leaves the rest of the host alone. A
/// failure only costs the priority, so it is ignored.
fn lower_priority() {
    // SAFETY: setpriority takes no pointers; `who` = 0 is the calling thread.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, 19);
    }
}

/// Starts `path` as a wasm instance with `settings`, reporting through
/// `report`. Compiling happens on the instance's thread, off the caller's.
pub fn spawn(
    path: &Path,
    settings: &Settings,
    urgency: Urgency,
    report: impl Fn(InstanceEvent) + Send + Sync + Clone + 'static,
) -> std::io::Result<Instance> {
    let (stdin_host, stdin_guest) = tokio::io::duplex(64 * 1024);
    let (stdout_guest, stdout_host) = tokio::io::duplex(64 * 1024);
    let (stderr_guest, stderr_host) = tokio::io::duplex(16 * 1024);
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(write_messages(stdin_host, rx));
    spawn_stderr_lines(stderr_host, report.clone());
    let stop = Arc::new(Stop::default());
    let (exit_tx, exit_rx) = tokio::sync::oneshot::channel();
    let thread_stop = stop.clone();
    let thread_report = report.clone();
    let path_buf = path.to_path_buf();
    let settings = settings.clone();
    std::thread::Builder::new()
        .name(format!(
            "wasm {}",
            path.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        ))
        .spawn(move || {
            let exit = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt.block_on(run(
                    &path_buf,
                    &settings,
                    urgency,
                    Pipes {
                        stdin: stdin_guest,
                        stdout: stdout_guest,
                        stderr: stderr_guest,
                    },
                    thread_stop,
                    thread_report,
                )),
                Err(e) => Exit::plain(format!("cannot start a runtime for it: {e}")),
            };
            let _ = exit_tx.send(exit);
        })?;
    tokio::spawn(async move {
        read_messages(stdout_host, &report).await;
        let exit = exit_rx
            .await
            .unwrap_or(Exit::plain("its thread ended without a word"));
        report(InstanceEvent::Exited(exit));
    });
    Ok(Instance {
        stdin: Some(tx),
        control: Control::Wasm(stop),
    })
}

struct Pipes {
    stdin: tokio::io::DuplexStream,
    stdout: tokio::io::DuplexStream,
    stderr: tokio::io::DuplexStream,
}

async fn run(
    path: &Path,
    settings: &Settings,
    urgency: Urgency,
    pipes: Pipes,
    stop: Arc<Stop>,
    report: impl Fn(InstanceEvent) + Send + Sync + Clone + 'static,
) -> Exit {
    let fail = |how: String| Exit::plain(how);
    let (module, compiler) = match module_for(path, settings.compiler, urgency, &report) {
        Ok(m) => m,
        Err(e) => return fail(format!("does not compile: {e:#}")),
    };
    let engines = match engines(compiler) {
        Ok(e) => e,
        Err(e) => return fail(format!("{e:#}")),
    };
    let clock = Arc::new(IoClock::new());
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut b = WasiCtxBuilder::new();
    b.stdin(AsyncStdinStream::new(Tracked {
        inner: pipes.stdin,
        clock: clock.clone(),
    }))
    .stdout(AsyncStdoutStream::new(
        64 * 1024,
        Tracked {
            inner: pipes.stdout,
            clock: clock.clone(),
        },
    ))
    .stderr(AsyncStdoutStream::new(16 * 1024, pipes.stderr))
    .arg(&name)
    .env("LIGHTNINGD_PLUGIN", "1");
    if settings.developer {
        b.arg("--developer");
    }
    if let Ok(v) = std::env::var("LIGHTNINGD_VERSION") {
        b.env("LIGHTNINGD_VERSION", v);
    }
    for d in &settings.dirs {
        if let Err(e) = b.preopened_dir(&d.host, &d.guest, FsPerms::ReadWrite) {
            return fail(format!(
                "cannot grant {} as {}: {e:#}",
                d.host.display(),
                d.guest
            ));
        }
    }
    let warn_report = report.clone();
    let mut store = Store::new(
        &engines.engine,
        State {
            wasi: b.build_p1(),
            memory_cap: settings.max_memory,
            memory_refused: None,
            rpc_socket: settings.rpc_socket.clone(),
            rpc_allow: settings.rpc_allow.clone(),
            rpc_pending: None,
            io: clock.clone(),
            warn: Box::new(move |w| warn_report(InstanceEvent::Warn(w))),
        },
    );
    store.limiter(|s| s as &mut dyn ResourceLimiter);
    let runaway = Arc::new(AtomicBool::new(false));
    let (cb_stop, cb_runaway, timeout) = (stop.clone(), runaway.clone(), settings.request_timeout);
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |ctx| {
        if cb_stop.flag.load(Ordering::SeqCst) {
            return Err(wasmtime::format_err!("stopped by cln-autoreload"));
        }
        let idle = ctx.data().io.idle();
        if idle > timeout {
            cb_runaway.store(true, Ordering::SeqCst);
            return Err(wasmtime::format_err!(
                "computed for {} ms without reading or writing anything (autoreload-wasm-request-timeout-ms is {})",
                idle.as_millis(),
                timeout.as_millis()
            ));
        }
        Ok(UpdateDeadline::Continue(1))
    });
    clock.touch();
    let instance = match engines.linker.instantiate_async(&mut store, &module).await {
        Ok(i) => i,
        Err(e) => return fail(format!("cannot be instantiated: {e:#}")),
    };
    let Ok(start) = instance.get_typed_func::<(), ()>(&mut store, "_start") else {
        return fail("has no _start function: build a binary crate for wasm32-wasip1".into());
    };
    let woken = stop.wake.notified();
    tokio::pin!(woken);
    if stop.flag.load(Ordering::SeqCst) {
        return fail("stopped".into());
    }
    let result = tokio::select! {
        r = start.call_async(&mut store, ()) => r,
        _ = &mut woken => return fail("stopped".into()),
    };
    match result {
        Ok(()) => fail("exited with status 0".into()),
        Err(e) => {
            if let Some(code) = e.downcast_ref::<I32Exit>() {
                return fail(format!("exited with status {}", code.0));
            }
            if let Some(desired) = store.data().memory_refused {
                report(InstanceEvent::Stderr(format!("trap: {}", e.root_cause())));
                // Stopped by the sandbox, like a runaway: the hook it was
                // on continues rather than bombing the next instance.
                return Exit {
                    how: format!(
                        "ran out of memory: it asked for {} MiB, autoreload-wasm-max-memory-mb allows {}",
                        desired >> 20,
                        settings.max_memory >> 20
                    ),
                    sandbox: Some(SandboxStop::OutOfMemory),
                };
            }
            // The trap with its wasm backtrace goes to the log (not the
            // host's own Rust backtrace, which says nothing about the guest).
            let cause = e.root_cause().to_string();
            report(InstanceEvent::Stderr(format!("trap: {cause}")));
            for context in e.chain().take_while(|c| c.to_string() != cause) {
                for line in context.to_string().lines().filter(|l| !l.trim().is_empty()) {
                    report(InstanceEvent::Stderr(format!("trap: {line}")));
                }
            }
            Exit {
                how: format!("trapped: {cause}"),
                sandbox: runaway
                    .load(Ordering::SeqCst)
                    .then_some(SandboxStop::Timeout),
            }
        }
    }
}

async fn rpc_call(mut caller: Caller<'_, State>, ptr: i32, len: i32) -> i32 {
    let Some(mem) = caller.get_export("memory").and_then(|e| e.into_memory()) else {
        return -1;
    };
    let (Ok(at), Ok(n)) = (usize::try_from(ptr), usize::try_from(len)) else {
        return -1;
    };
    let mut req = vec![0u8; n];
    if mem.read(&caller, at, &mut req).is_err() {
        return -1;
    }
    let response = match check_rpc(caller.data(), &req) {
        Err(refused) => refused,
        Ok((socket, checked)) => match crate::rpc::call_raw(&socket, &checked).await {
            Ok(r) => r,
            Err(e) => rpc_error(
                &req,
                format!("cln-autoreload: calling lightningd failed: {e:#}"),
            ),
        },
    };
    caller.data().io.touch();
    let out = i32::try_from(response.len()).unwrap_or(-1);
    caller.data_mut().rpc_pending = Some(response);
    out
}

/// A JSON-RPC error response to the guest's request.
fn rpc_error(req: &[u8], message: String) -> Vec<u8> {
    let id = serde_json::from_slice::<serde_json::Value>(req)
        .ok()
        .and_then(|v| v.get("id").cloned())
        .unwrap_or(serde_json::Value::Null);
    serde_json::to_vec(&serde_json::json!({"jsonrpc": "2.0", "id": id, "error": {"code": cln_protocol::errors::INVALID_REQUEST, "message": message}}))
        .unwrap_or_default()
}

/// Where to send the guest's call and what to send (the request as it was
/// checked: with a key given twice, serde keeps the last `"method"` and
/// lightningd would run the first), or the error response that refuses it.
fn check_rpc(state: &State, req: &[u8]) -> Result<(PathBuf, Vec<u8>), Vec<u8>> {
    let parsed: Option<serde_json::Value> = serde_json::from_slice(req).ok();
    let Some(method) = parsed
        .as_ref()
        .and_then(|v| v.get("method"))
        .and_then(|m| m.as_str())
    else {
        return Err(rpc_error(
            req,
            "cln-autoreload: not a JSON-RPC request".into(),
        ));
    };
    if let Some(allow) = &state.rpc_allow {
        if !allow.iter().any(|a| a == method) {
            (state.warn)(format!(
                "refused its call to lightningd's '{method}': not in autoreload-wasm-rpc-allow ({})",
                allow.join(", ")
            ));
            return Err(rpc_error(
                req,
                format!(
                    "cln-autoreload: calling '{method}' is not allowed (autoreload-wasm-rpc-allow)"
                ),
            ));
        }
    }
    let socket = state.rpc_socket.clone().ok_or_else(|| {
        rpc_error(
            req,
            "cln-autoreload: lightningd's rpc socket is not known yet (init has not happened)"
                .into(),
        )
    })?;
    let checked = match &parsed {
        Some(v) if state.rpc_allow.is_some() => serde_json::to_vec(v).unwrap_or_default(),
        _ => req.to_vec(),
    };
    Ok((socket, checked))
}
